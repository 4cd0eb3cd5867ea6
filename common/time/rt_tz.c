/*
 * rt_tz: zones through ICU's ucal_* API, business hours on top (see
 * rt_tz.h for the contract and the rule for skipped and repeated times).
 *
 * ICU does the zone rules and nothing else: a calendar clone per call
 * turns an instant into local fields and back. Dates are counted here as
 * civil day numbers (days since 1970-01-01, proleptic Gregorian), so
 * "the next day" and "which weekday" are arithmetic and never depend on
 * how long a local day happens to be.
 *
 * The rule "a local time names the earliest instant showing it or later"
 * is ICU's UCAL_WALLTIME_FIRST for repeated times and
 * UCAL_WALLTIME_NEXT_VALID for skipped ones, set once on the prototype
 * calendar; it makes the map from local time to instant monotonic, which
 * is what lets business hours be walked as one ordered run of intervals.
 *
 * Business arithmetic walks the shop's intervals ("shifts", as instants)
 * in order from the local day before t (whose interval may run past
 * midnight into t's day). The walk ends when it passes the question's
 * end, or after more consecutive days without a shift than the week and
 * the holidays can explain (7 + holidays + 7): then no opening will come.
 */
#include "rt_tz.h"

#include "rt_civil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#define S_NAME_MAX      64
#define S_SPANS_PER_DAY 8
#define S_DAY_MS        86400000LL
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: any zone's local
 * date of these is still in years 0 to 10000, which ICU and the civil
 * arithmetic below both handle exactly. */
#define S_MIN_MS (-62135596800000LL)
#define S_MAX_MS 253402300799999LL

struct rt_tz_t {
    char *name;       /* as given to rt_tz_new */
    UCalendar *proto; /* set up once, then only cloned (see rt_tz.h) */
};

/* One interval of a weekday, in minutes from that day's local midnight. */
typedef struct {
    int start; /* 0 to 1439 */
    int end;   /* after start, at most start + 1440: past 1440 is the next day */
} s_span_t;

struct rt_tz_hours_t {
    s_span_t spans[7][S_SPANS_PER_DAY]; /* by weekday, 0 Monday; sorted by start */
    int nspans[7];                      /* intervals of each weekday */
    int64_t *holidays;                  /* civil day numbers, sorted, unique */
    size_t nholidays;                   /* holidays in use */
    size_t capholidays;                 /* holidays allocated */
};

static const char *const s_day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static int s_fail (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen > 0) {
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return -1;
}

/* --- civil dates (rt_civil.h) ------------------------------------------ */

/* A date ICU and the holiday list take: years 1 to 9999. */
static bool
s_date_ok (int y, int m, int d)
{
    return y >= 1 && y <= 9999 && rt_civil_valid (y, m, d);
}

/* --- the zone --------------------------------------------------------- */

rt_tz_t *
rt_tz_new (const char *iana_name, char *err, size_t errlen)
{
    UChar id[S_NAME_MAX + 1], canonical[S_NAME_MAX + 1];
    UErrorCode status = U_ZERO_ERROR;
    UBool is_system = 0;
    rt_tz_t *self = NULL;
    size_t i, len = iana_name ? strlen (iana_name) : 0;
    if (len == 0 || len > S_NAME_MAX) {
        s_fail (err, errlen, "time zone name empty or longer than %d", S_NAME_MAX);
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)iana_name[i] <= ' ' || (unsigned char)iana_name[i] >= 0x7F) {
            s_fail (err, errlen, "time zone \"%.64s\" is not an IANA name", iana_name);
            return NULL;
        }
    }
    u_uastrncpy (id, iana_name, S_NAME_MAX + 1);
    /* ucal_open takes any id and quietly gives GMT for one it does not
     * know: ask first whether ICU has the zone. */
    ucal_getCanonicalTimeZoneID (id, -1, canonical, S_NAME_MAX + 1, &is_system, &status);
    if (U_FAILURE (status) || !is_system) {
        s_fail (err, errlen, "unknown time zone \"%s\" (an IANA name, e.g. Europe/Kyiv)",
                iana_name);
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    self->name = strdup (iana_name);
    if (!self->name)
        goto oom;
    self->proto = ucal_open (id, -1, "en_US_POSIX", UCAL_GREGORIAN, &status);
    if (U_FAILURE (status)) {
        s_fail (err, errlen, "time zone \"%s\": %s", iana_name, u_errorName (status));
        goto error;
    }
    /* Proleptic Gregorian, as the civil arithmetic here. */
    ucal_setGregorianChange (self->proto, -8.64e15, &status);
    ucal_setAttribute (self->proto, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    ucal_setAttribute (self->proto, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    ucal_setAttribute (self->proto, UCAL_LENIENT, 1);
    if (U_FAILURE (status)) {
        s_fail (err, errlen, "time zone \"%s\": %s", iana_name, u_errorName (status));
        goto error;
    }
    return self;
oom:
    s_fail (err, errlen, "out of memory");
error:
    rt_tz_destroy (&self);
    return NULL;
}

void
rt_tz_destroy (rt_tz_t **self_p)
{
    rt_tz_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    if (self->proto)
        ucal_close (self->proto);
    free (self->name);
    free (self);
    *self_p = NULL;
}

const char *
rt_tz_name (const rt_tz_t *self)
{
    return self->name;
}

/* A calendar of the zone for this call only; NULL when ICU fails. */
static UCalendar *
s_cal (const rt_tz_t *tz)
{
    UErrorCode status = U_ZERO_ERROR;
    UCalendar *cal = ucal_clone (tz->proto, &status);
    if (U_FAILURE (status)) {
        if (cal)
            ucal_close (cal);
        return NULL;
    }
    return cal;
}

static int
s_local (UCalendar *cal, int64_t unix_ms, rt_tz_local_t *out)
{
    UErrorCode status = U_ZERO_ERROR;
    int dow, zone, dst;
    if (unix_ms < S_MIN_MS || unix_ms > S_MAX_MS)
        return -1;
    ucal_setMillis (cal, (UDate)unix_ms, &status);
    out->year = ucal_get (cal, UCAL_EXTENDED_YEAR, &status);
    out->month = ucal_get (cal, UCAL_MONTH, &status) + 1;
    out->day = ucal_get (cal, UCAL_DATE, &status);
    out->hour = ucal_get (cal, UCAL_HOUR_OF_DAY, &status);
    out->minute = ucal_get (cal, UCAL_MINUTE, &status);
    out->second = ucal_get (cal, UCAL_SECOND, &status);
    out->millisecond = ucal_get (cal, UCAL_MILLISECOND, &status);
    dow = ucal_get (cal, UCAL_DAY_OF_WEEK, &status); /* 1 Sunday to 7 Saturday */
    zone = ucal_get (cal, UCAL_ZONE_OFFSET, &status);
    dst = ucal_get (cal, UCAL_DST_OFFSET, &status);
    if (U_FAILURE (status))
        return -1;
    out->weekday = dow == UCAL_SUNDAY ? 7 : dow - 1;
    out->offset_s = (zone + dst) / 1000;
    out->dst = dst != 0;
    return 0;
}

/* The civil day number of unix_ms's local date. */
static int
s_local_day (UCalendar *cal, int64_t unix_ms, int64_t *days)
{
    rt_tz_local_t l;
    if (s_local (cal, unix_ms, &l) != 0)
        return -1;
    *days = rt_civil_days (l.year, l.month, l.day);
    return 0;
}

/* The instant of local day `days` at `minute` minutes past its midnight
 * (1440 and more: the days after). */
static int
s_wall (UCalendar *cal, int64_t days, int minute, int64_t *unix_ms)
{
    UErrorCode status = U_ZERO_ERROR;
    int64_t y;
    int m, d;
    UDate ms;
    days += minute / 1440;
    minute %= 1440;
    rt_civil_date (days, &y, &m, &d);
    if (y < 1 || y > 9999)
        return -1;
    ucal_clear (cal);
    ucal_setDateTime (cal, (int32_t)y, m - 1, d, minute / 60, minute % 60, 0, &status);
    ms = ucal_getMillis (cal, &status);
    if (U_FAILURE (status))
        return -1;
    *unix_ms = (int64_t)ms;
    return 0;
}

int
rt_tz_local (const rt_tz_t *tz, int64_t unix_ms, rt_tz_local_t *out)
{
    UCalendar *cal = s_cal (tz);
    int rc;
    if (!cal)
        return -1;
    rc = s_local (cal, unix_ms, out);
    ucal_close (cal);
    return rc;
}

int
rt_tz_to_unix (const rt_tz_t *tz, int year, int month, int day, int hour, int minute, int second,
               int64_t *unix_ms)
{
    UErrorCode status = U_ZERO_ERROR;
    UCalendar *cal;
    UDate ms;
    if (!s_date_ok (year, month, day) || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
        second < 0 || second > 59)
        return -1;
    cal = s_cal (tz);
    if (!cal)
        return -1;
    ucal_clear (cal);
    ucal_setDateTime (cal, year, month - 1, day, hour, minute, second, &status);
    ms = ucal_getMillis (cal, &status);
    ucal_close (cal);
    if (U_FAILURE (status))
        return -1;
    *unix_ms = (int64_t)ms;
    return 0;
}

static int
s_day_start (const rt_tz_t *tz, int64_t unix_ms, int next, int64_t *start_ms)
{
    UCalendar *cal = s_cal (tz);
    int64_t days;
    int rc = -1;
    if (!cal)
        return -1;
    if (s_local_day (cal, unix_ms, &days) == 0)
        rc = s_wall (cal, days + next, 0, start_ms);
    ucal_close (cal);
    return rc;
}

int
rt_tz_day_start (const rt_tz_t *tz, int64_t unix_ms, int64_t *start_ms)
{
    return s_day_start (tz, unix_ms, 0, start_ms);
}

int
rt_tz_next_day_start (const rt_tz_t *tz, int64_t unix_ms, int64_t *start_ms)
{
    return s_day_start (tz, unix_ms, 1, start_ms);
}

/* --- business hours: parsing ------------------------------------------ */

/* A day name at *p (three letters, any case) as 0 Monday to 6 Sunday;
 * -1 when it is none. Advances *p past it. */
static int
s_day_name (const char **p)
{
    int i;
    for (i = 0; i < 7; i++) {
        if (strncasecmp (*p, s_day_names[i], 3) == 0) {
            *p += 3;
            return i;
        }
    }
    return -1;
}

/* "H:MM" or "HH:MM" at *p as minutes; 24:00 only when end is set. */
static int
s_time (const char **p, bool end)
{
    const char *s = *p;
    int h = 0, m, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 2) {
        h = h * 10 + (*s++ - '0');
        digits++;
    }
    if (digits == 0 || *s != ':' || !(s[1] >= '0' && s[1] <= '5') || !(s[2] >= '0' && s[2] <= '9'))
        return -1;
    m = (s[1] - '0') * 10 + (s[2] - '0');
    if (h > 24 || (h == 24 && (m != 0 || !end)))
        return -1;
    *p = s + 3;
    return h * 60 + m;
}

static void
s_span_text (char *buf, size_t len, int day, const s_span_t *s)
{
    int end = s->end > 1440 ? s->end - 1440 : s->end;
    snprintf (buf, len, "%s %02d:%02d-%02d:%02d", s_day_names[day], s->start / 60, s->start % 60,
              end / 60, end % 60);
}

/* True when two intervals, placed in the week, share a minute; the week is
 * a ring (Sunday's night runs into Monday). */
static bool
s_overlap (int da, const s_span_t *a, int db, const s_span_t *b)
{
    int64_t a0 = da * 1440 + a->start, a1 = da * 1440 + a->end;
    int k;
    for (k = -1; k <= 1; k++) {
        int64_t b0 = db * 1440 + b->start + k * 10080, b1 = db * 1440 + b->end + k * 10080;
        if (a0 < b1 && b0 < a1)
            return true;
    }
    return false;
}

static int
s_span_cmp (const void *a, const void *b)
{
    return ((const s_span_t *)a)->start - ((const s_span_t *)b)->start;
}

/* One entry ("mon-fri 09:00-18:00, 19:00-21:00") of len bytes into h. */
static int
s_parse_entry (rt_tz_hours_t *h, const char *entry, size_t len, char *err, size_t errlen)
{
    char text[256];
    const char *p;
    bool days[7] = {false};
    int i, nranges = 0;
    if (len >= sizeof text)
        return s_fail (err, errlen, "opening hours entry too long: \"%.40s...\"", entry);
    memcpy (text, entry, len);
    text[len] = '\0';
    p = text;
    /* The days: a list of names and ranges, up to the first blank. */
    for (;;) {
        const char *at = p;
        int first = s_day_name (&p), last;
        if (first < 0)
            return s_fail (err, errlen,
                           "unknown day \"%.10s\" in \"%s\" (mon tue wed thu fri sat sun)", at,
                           text);
        last = first;
        if (*p == '-') {
            p++;
            at = p;
            last = s_day_name (&p);
            if (last < 0)
                return s_fail (err, errlen, "unknown day \"%.10s\" in \"%s\"", at, text);
        }
        for (i = first;; i = (i + 1) % 7) {
            days[i] = true;
            if (i == last)
                break;
        }
        if (*p != ',')
            break;
        p++;
    }
    if (*p != ' ' && *p != '\t' && *p != '\0')
        return s_fail (err, errlen, "unknown day \"%.10s\" in \"%s\"", p, text);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return s_fail (err, errlen, "\"%s\": no hours (e.g. 09:00-18:00, or closed)", text);
    if (strncasecmp (p, "closed", 6) == 0 && (p[6] == '\0' || p[6] == ' ' || p[6] == '\t')) {
        p += 6;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return s_fail (err, errlen, "\"%s\": nothing may follow closed", text);
        return 0;
    }
    /* The intervals, separated by commas and blanks. */
    while (*p) {
        const char *at = p;
        s_span_t span;
        span.start = s_time (&p, false);
        if (span.start < 0 || *p != '-')
            return s_fail (err, errlen, "bad interval \"%.20s\" in \"%s\" (HH:MM-HH:MM)", at, text);
        p++;
        span.end = s_time (&p, true);
        if (span.end < 0 || (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t'))
            return s_fail (err, errlen, "bad interval \"%.20s\" in \"%s\" (HH:MM-HH:MM)", at, text);
        if (span.end == span.start)
            return s_fail (err, errlen,
                           "empty interval \"%.11s\" in \"%s\" (00:00-24:00 is the whole day)", at,
                           text);
        if (span.end < span.start)
            span.end += 1440;
        for (i = 0; i < 7; i++) {
            if (!days[i])
                continue;
            if (h->nspans[i] == S_SPANS_PER_DAY)
                return s_fail (err, errlen, "more than %d intervals on %s", S_SPANS_PER_DAY,
                               s_day_names[i]);
            h->spans[i][h->nspans[i]++] = span;
        }
        nranges++;
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
    }
    return nranges > 0 ? 0 : s_fail (err, errlen, "\"%s\": no hours", text);
}

/* Sorts each day's intervals and refuses any two that overlap. */
static int
s_check_week (rt_tz_hours_t *h, char *err, size_t errlen)
{
    int da, db, i, j, total = 0;
    char a[32], b[32];
    for (da = 0; da < 7; da++) {
        qsort (h->spans[da], (size_t)h->nspans[da], sizeof (s_span_t), s_span_cmp);
        total += h->nspans[da];
    }
    if (total == 0)
        return s_fail (err, errlen, "no opening hours at all: a due time could never be computed");
    for (da = 0; da < 7; da++) {
        for (i = 0; i < h->nspans[da]; i++) {
            for (db = da; db < 7; db++) {
                for (j = db == da ? i + 1 : 0; j < h->nspans[db]; j++) {
                    if (!s_overlap (da, &h->spans[da][i], db, &h->spans[db][j]))
                        continue;
                    s_span_text (a, sizeof a, da, &h->spans[da][i]);
                    s_span_text (b, sizeof b, db, &h->spans[db][j]);
                    return s_fail (err, errlen, "%s overlaps %s", b, a);
                }
            }
        }
    }
    return 0;
}

static int
s_holiday_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Adds the date of len bytes at s ("YYYY-MM-DD"). */
static int
s_add_holiday (rt_tz_hours_t *h, const char *s, size_t len, char *err, size_t errlen)
{
    int y, m, d;
    int64_t day;
    size_t i, lo = 0, hi = h->nholidays;
    bool ok = len == 10;
    for (i = 0; ok && i < len; i++)
        ok = (i == 4 || i == 7) ? s[i] == '-' : s[i] >= '0' && s[i] <= '9';
    if (ok) {
        y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        m = (s[5] - '0') * 10 + (s[6] - '0');
        d = (s[8] - '0') * 10 + (s[9] - '0');
        ok = s_date_ok (y, m, d);
    }
    if (!ok)
        return s_fail (err, errlen, "holiday \"%.*s\" is not a date (YYYY-MM-DD)",
                       (int)(len > 20 ? 20 : len), s);
    day = rt_civil_days (y, m, d);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->holidays[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < h->nholidays && h->holidays[lo] == day)
        return 0;
    if (h->nholidays == h->capholidays) {
        size_t cap = h->capholidays ? h->capholidays * 2 : 16;
        int64_t *grown = realloc (h->holidays, cap * sizeof *grown);
        if (!grown)
            return s_fail (err, errlen, "out of memory");
        h->holidays = grown;
        h->capholidays = cap;
    }
    memmove (h->holidays + lo + 1, h->holidays + lo, (h->nholidays - lo) * sizeof *h->holidays);
    h->holidays[lo] = day;
    h->nholidays++;
    return 0;
}

int
rt_tz_hours_add_holiday (rt_tz_hours_t *self, const char *iso_date, char *err, size_t errlen)
{
    if (!iso_date)
        return s_fail (err, errlen, "holiday missing");
    return s_add_holiday (self, iso_date, strlen (iso_date), err, errlen);
}

rt_tz_hours_t *
rt_tz_hours_new (const char *weekly, const char *holidays, char *err, size_t errlen)
{
    rt_tz_hours_t *self = calloc (1, sizeof *self);
    const char *p;
    if (!self) {
        s_fail (err, errlen, "out of memory");
        return NULL;
    }
    for (p = weekly ? weekly : ""; *p;) {
        const char *end = strchr (p, ';');
        size_t len = end ? (size_t)(end - p) : strlen (p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > 0 && s_parse_entry (self, p, len, err, errlen) != 0)
            goto error;
        if (!end)
            break;
        p = end + 1;
    }
    if (s_check_week (self, err, errlen) != 0)
        goto error;
    for (p = holidays ? holidays : ""; *p;) {
        size_t len = strcspn (p, ",; \t\n");
        if (len > 0 && s_add_holiday (self, p, len, err, errlen) != 0)
            goto error;
        p += len;
        p += strspn (p, ",; \t\n");
    }
    return self;
error:
    rt_tz_hours_destroy (&self);
    return NULL;
}

void
rt_tz_hours_destroy (rt_tz_hours_t **self_p)
{
    rt_tz_hours_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    free (self->holidays);
    free (self);
    *self_p = NULL;
}

/* --- business hours: the walk ----------------------------------------- */

static bool
s_is_holiday (const rt_tz_hours_t *h, int64_t day)
{
    return h->nholidays > 0 &&
           bsearch (&day, h->holidays, h->nholidays, sizeof *h->holidays, s_holiday_cmp);
}

/* The shop's intervals as instants, in order. */
typedef struct {
    const rt_tz_hours_t *hours;
    UCalendar *cal;   /* this call's clone */
    int64_t day;      /* civil day whose intervals come next */
    int next;         /* index of the next interval of that day */
    bool found;       /* the day gave a non-empty interval */
    int64_t idle;     /* days in a row without one */
    int64_t idle_max; /* more than this: no opening will ever come */
} s_walk_t;

static int
s_walk_init (s_walk_t *w, const rt_tz_hours_t *hours, UCalendar *cal, int64_t t)
{
    memset (w, 0, sizeof *w);
    w->hours = hours;
    w->cal = cal;
    w->idle_max = 14 + (int64_t)hours->nholidays;
    if (s_local_day (cal, t, &w->day) != 0)
        return -1;
    /* Yesterday's interval may run past midnight into t's day. */
    w->day--;
    return 0;
}

/* The next interval [*start, *end) with *end > *start: 1, or 0 when none
 * will come, or -1 out of range. */
static int
s_walk_next (s_walk_t *w, int64_t *start, int64_t *end)
{
    const rt_tz_hours_t *h = w->hours;
    for (;;) {
        int wd = rt_civil_weekday (w->day);
        if (w->next < h->nspans[wd] && !s_is_holiday (h, w->day)) {
            const s_span_t *s = &h->spans[wd][w->next++];
            if (s_wall (w->cal, w->day, s->start, start) != 0 ||
                s_wall (w->cal, w->day, s->end, end) != 0)
                return -1;
            /* An interval inside a skipped hour has no instants. */
            if (*end > *start) {
                w->found = true;
                return 1;
            }
            continue;
        }
        w->idle = w->found ? 0 : w->idle + 1;
        if (w->idle > w->idle_max)
            return 0;
        w->day++;
        w->next = 0;
        w->found = false;
    }
}

/* The first interval that ends after t: 1, 0 (none), -1. */
static int
s_first_after (s_walk_t *w, int64_t t, int64_t *start, int64_t *end)
{
    int rc;
    do {
        rc = s_walk_next (w, start, end);
    } while (rc == 1 && *end <= t);
    return rc;
}

int
rt_tz_business_open (const rt_tz_hours_t *hours, const rt_tz_t *tz, int64_t t)
{
    UCalendar *cal = s_cal (tz);
    s_walk_t w;
    int64_t start, end;
    int rc = -1;
    if (!cal)
        return -1;
    if (s_walk_init (&w, hours, cal, t) == 0)
        rc = s_first_after (&w, t, &start, &end);
    if (rc == 1)
        rc = start <= t;
    ucal_close (cal);
    return rc;
}

int
rt_tz_business_next_open (const rt_tz_hours_t *hours, const rt_tz_t *tz, int64_t t, int64_t *at)
{
    UCalendar *cal = s_cal (tz);
    s_walk_t w;
    int64_t start, end;
    int rc = -1;
    if (!cal)
        return -1;
    if (s_walk_init (&w, hours, cal, t) == 0)
        rc = s_first_after (&w, t, &start, &end);
    ucal_close (cal);
    if (rc != 1)
        return -1;
    *at = start > t ? start : t;
    return 0;
}

int
rt_tz_business_add (const rt_tz_hours_t *hours, const rt_tz_t *tz, int64_t t, int64_t duration_ms,
                    int64_t *due)
{
    UCalendar *cal;
    s_walk_t w;
    int64_t start, end, left = duration_ms;
    int rc;
    if (duration_ms < 0 || t < S_MIN_MS || t > S_MAX_MS)
        return -1;
    if (duration_ms == 0) {
        *due = t;
        return 0;
    }
    cal = s_cal (tz);
    if (!cal)
        return -1;
    rc = s_walk_init (&w, hours, cal, t);
    if (rc == 0)
        rc = s_first_after (&w, t, &start, &end);
    while (rc == 1) {
        int64_t from = start > t ? start : t;
        if (left <= end - from) {
            *due = from + left;
            break;
        }
        left -= end - from;
        rc = s_walk_next (&w, &start, &end);
    }
    ucal_close (cal);
    return rc == 1 ? 0 : -1;
}

int
rt_tz_business_between (const rt_tz_hours_t *hours, const rt_tz_t *tz, int64_t a, int64_t b,
                        int64_t *ms)
{
    UCalendar *cal;
    s_walk_t w;
    int64_t start, end, sum = 0;
    int rc;
    if (a < S_MIN_MS || a > S_MAX_MS || b < S_MIN_MS || b > S_MAX_MS)
        return -1;
    if (b <= a) {
        *ms = 0;
        return 0;
    }
    cal = s_cal (tz);
    if (!cal)
        return -1;
    rc = s_walk_init (&w, hours, cal, a);
    if (rc == 0)
        rc = s_first_after (&w, a, &start, &end);
    while (rc == 1 && start < b) {
        int64_t from = start > a ? start : a, to = end < b ? end : b;
        sum += to - from;
        rc = s_walk_next (&w, &start, &end);
    }
    ucal_close (cal);
    /* Running out of openings before b is an answer, not an error. */
    if (rc < 0)
        return -1;
    *ms = sum;
    return 0;
}
