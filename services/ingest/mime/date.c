/*
 * mime date: the Date header as unix milliseconds (see mime_int.h).
 *
 * RFC 5322's date-time ("Mon, 15 Jan 2024 10:00:00 +0300") is read
 * leniently, token by token in any order, as mailers produce it: asctime's
 * "Mon Jan 15 10:00:00 2024" and ISO 8601 too, obsolete zone names,
 * two- and three-digit years. Whatever does not make a real calendar date
 * and time (a 31st of April, a minute 60, a year before 1900) is no date:
 * 0, never a guess. Pure and linear in the value.
 */
#include <string.h>
#include <strings.h>

#include "mime_int.h"
#include "rt_civil.h"

/* A date-time as its tokens fill it in. */
typedef struct {
    int day;        /* 1-31, -1 until read */
    int month;      /* 1-12, 0 until read */
    long year;      /* four digits, -1 until read */
    int hour;       /* 0-23, -1 until read */
    int min;        /* 0-59 */
    int sec;        /* 0-60 (a leap second) */
    int zone;       /* offset from UTC in minutes */
    bool have_zone; /* zone was read */
} s_date_t;

static int
s_month (const char *p, size_t n)
{
    static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec"};
    int m;
    if (n < 3)
        return 0;
    for (m = 0; m < 12; m++) {
        if (strncasecmp (p, months[m], 3) == 0)
            return m + 1;
    }
    return 0;
}

/* Offset in minutes of a zone name (RFC 5322 obsolete zones). */
static bool
s_zone_name (const char *p, size_t n, int *minutes)
{
    static const struct {
        const char *name; /* as written, matched without case */
        int minutes;      /* its offset from UTC */
    } zones[] = {{"UT", 0},        {"UTC", 0},       {"GMT", 0},       {"Z", 0},
                 {"EST", -5 * 60}, {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60},
                 {"MST", -7 * 60}, {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60},
                 {"MSK", 3 * 60},  {"CET", 60},      {"CEST", 120},    {"EET", 120},
                 {"EEST", 180},    {"BST", 60}};
    size_t i;
    for (i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        if (strlen (zones[i].name) == n && strncasecmp (p, zones[i].name, n) == 0) {
            *minutes = zones[i].minutes;
            return true;
        }
    }
    return false;
}

/* Sets the zone to sign * (hh:mm); false when mm is no minute. */
static bool
s_zone_set (s_date_t *d, char sign, int hh, int mm)
{
    if (mm >= 60)
        return false;
    d->zone = (hh * 60 + mm) * (sign == '-' ? -1 : 1);
    d->have_zone = true;
    return true;
}

/* A numeric zone at s[*i] ('+' or '-'): "+0300", or ISO 8601's "+03:00".
 * Anything else of that shape is skipped. False when it is no zone. */
static bool
s_numeric_zone (const char *s, size_t n, size_t *i, s_date_t *d)
{
    size_t at = *i, e = at + 1;
    while (e < n && mime_is_digit (s[e]))
        e++;
    if (e - at - 1 == 2 && e + 2 < n && s[e] == ':' && mime_is_digit (s[e + 1]) &&
        mime_is_digit (s[e + 2])) {
        if (!s_zone_set (d, s[at], (s[at + 1] - '0') * 10 + (s[at + 2] - '0'),
                         (s[e + 1] - '0') * 10 + (s[e + 2] - '0')))
            return false;
        e += 3;
    } else if (e - at - 1 == 4) {
        if (!s_zone_set (d, s[at], (s[at + 1] - '0') * 10 + (s[at + 2] - '0'),
                         (s[at + 3] - '0') * 10 + (s[at + 4] - '0')))
            return false;
    }
    *i = e;
    return true;
}

/* HH:MM[:SS][.fraction] after the hour v (of `digits` digits), s[*j] the
 * first ':'. False when it is no time. */
static bool
s_time (const char *s, size_t n, size_t *j, long v, size_t digits, s_date_t *d)
{
    int parts[3] = {(int)v, 0, 0}, np = 1;
    size_t k = *j;
    while (k < n && s[k] == ':' && np < 3) {
        int w = 0, wd = 0;
        k++;
        while (k < n && mime_is_digit (s[k]) && wd < 2) {
            w = w * 10 + (s[k] - '0');
            k++;
            wd++;
        }
        if (wd == 0)
            return false;
        parts[np++] = w;
    }
    if (digits > 2)
        return false;
    d->hour = parts[0];
    d->min = parts[1];
    d->sec = parts[2];
    if (k < n && s[k] == '.') {
        k++;
        while (k < n && mime_is_digit (s[k]))
            k++;
    }
    *j = k;
    return true;
}

/* ISO 8601's YYYY-MM-DD[T] after the year v, s[*j] the first '-'. */
static void
s_iso_date (const char *s, size_t n, size_t *j, long v, s_date_t *d)
{
    int mo = 0, dd = 0;
    size_t k = *j + 1;
    d->year = v;
    /* Capped: more digits only need to stay invalid. */
    for (; k < n && mime_is_digit (s[k]); k++)
        mo = mo < 100 ? mo * 10 + (s[k] - '0') : mo;
    if (k < n && s[k] == '-')
        k++;
    for (; k < n && mime_is_digit (s[k]); k++)
        dd = dd < 100 ? dd * 10 + (s[k] - '0') : dd;
    d->month = mo;
    d->day = dd;
    if (k < n && (s[k] == 'T' || s[k] == 't'))
        k++;
    *j = k;
}

/* A token of digits at s[*i]: a time, an ISO date, the day or the year.
 * False when it makes the value no date. */
static bool
s_number (const char *s, size_t n, size_t *i, s_date_t *d)
{
    size_t j = *i, digits = 0;
    long v = 0;
    while (j < n && mime_is_digit (s[j]) && digits < 9) {
        v = v * 10 + (s[j] - '0');
        j++;
        digits++;
    }
    if (j < n && s[j] == ':') {
        if (!s_time (s, n, &j, v, digits, d))
            return false;
    } else if (j < n && s[j] == '-' && digits == 4 && d->year < 0) {
        s_iso_date (s, n, &j, v, d);
    } else if (digits <= 2 && d->day < 0) {
        d->day = (int)v;
    } else if (d->year < 0) {
        d->year = v;
        if (digits == 2)
            d->year += v < 50 ? 2000 : 1900;
        else if (digits == 3)
            d->year += 1900;
    }
    *i = j;
    return true;
}

/* A word at s[*i]: a month, or a zone name once the time is read. Week
 * days and anything else are skipped. */
static void
s_word (const char *s, size_t n, size_t *i, s_date_t *d)
{
    size_t j = *i;
    int m, z;
    while (j < n && mime_is_alpha (s[j]))
        j++;
    m = s_month (s + *i, j - *i);
    if (m > 0 && d->month == 0 && j - *i <= 9) {
        d->month = m;
    } else if (!d->have_zone && d->hour >= 0 && s_zone_name (s + *i, j - *i, &z)) {
        d->zone = z;
        d->have_zone = true;
    }
    *i = j;
}

/* The date-time as unix ms; 0 when it is not a real one. */
static int64_t
s_date_ms (const s_date_t *d)
{
    int sec = d->sec;
    if (d->year < 1900 || d->year > 9999 || d->hour < 0 || d->hour > 23 || d->min > 59 ||
        d->sec > 60 || !rt_civil_valid (d->year, d->month, d->day))
        return 0;
    if (sec == 60)
        sec = 59;
    return ((rt_civil_days (d->year, d->month, d->day) * 86400 + d->hour * 3600 + d->min * 60 +
             sec) -
            (int64_t)d->zone * 60) *
           1000;
}

int64_t
mime_date_parse (const char *s)
{
    size_t n = strlen (s), i = 0;
    s_date_t d = {-1, 0, -1, -1, 0, 0, 0, false};
    while (i < n) {
        bool ok = true;
        i = mime_skip_cfws (s, n, i);
        if (i >= n)
            break;
        if (s[i] == ',')
            i++;
        else if ((s[i] == '+' || s[i] == '-') && !d.have_zone && d.hour >= 0)
            ok = s_numeric_zone (s, n, &i, &d);
        else if (mime_is_digit (s[i]))
            ok = s_number (s, n, &i, &d);
        else if (mime_is_alpha (s[i]))
            s_word (s, n, &i, &d);
        else
            i++;
        if (!ok)
            return 0;
    }
    return s_date_ms (&d);
}
