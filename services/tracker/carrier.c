/*
 * carrier: the one list of carriers and what every adapter shares: the
 * table lookup, the mapping rule, the verdict names and the frees
 * (carrier.h), then the adapters' helpers.
 *
 * Every adapter builds a URL, a few headers and maybe a body, and reads an
 * answer that may not be what its carrier documents: a proxy's HTML page
 * in front of a 502, a body cut short, JSON of another shape. The helpers
 * do those parts once, so every adapter says the same thing of the same
 * garbage: "not JSON: <the parser's words> (HTTP 502, body \"<html>...\")".
 *
 * Kyiv time. Nova Poshta, Ukrposhta and Meest write wall-clock times in
 * Kyiv without a zone. rt_tz converts one in about 0.8 us (ICU clones a
 * calendar per call), which a poll of 100 parcels times four dates pays
 * 400 times; so the zone's UTC offset is computed once per month of 2000
 * to 2099 (and the day the clocks change in that month, when they do) and
 * a time on any other day is plain arithmetic. The table is filled once per
 * process (pthread_once) and only read after: no state changes. A time on
 * a day the clocks change, or outside the table's years, goes to rt_tz.
 */
#include "carrier.h"

#include "rt_civil.h"
#include "rt_tz.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const carrier_t carrier_nova_poshta;
extern const carrier_t carrier_ukrposhta;
extern const carrier_t carrier_meest;
extern const carrier_t carrier_dhl;
extern const carrier_t carrier_ups;

const carrier_t *const carrier_all[] = {
    &carrier_nova_poshta, &carrier_ukrposhta, &carrier_meest, &carrier_dhl, &carrier_ups, NULL,
};

const carrier_t *
carrier_find (const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; carrier_all[i]; i++) {
        if (strcmp (carrier_all[i]->name, name) == 0)
            return carrier_all[i];
    }
    return NULL;
}

const carrier_code_t *
carrier_code_find (const carrier_t *carrier, const char *code)
{
    if (!carrier || !code)
        return NULL;
    for (size_t i = 0; i < carrier->n_codes; i++) {
        if (strcmp (carrier->codes[i].code, code) == 0)
            return &carrier->codes[i];
    }
    return NULL;
}

void
carrier_result_map (const carrier_t *carrier, carrier_result_t *result)
{
    const carrier_code_t *c = carrier_code_find (carrier, result->raw_code);
    result->mapped = c != NULL;
    if (!c) {
        result->sub_status[0] = '\0';
        return;
    }
    result->tag = c->tag;
    snprintf (result->sub_status, sizeof result->sub_status, "%s", c->sub_status);
    /* A carrier may flag a return beside the code (Ukrposhta's delivered
     * event with the return reason): the adapter's flag stands. */
    result->returning = result->returning || c->returning;
}

const char *
carrier_verdict_name (carrier_verdict_t verdict)
{
    switch (verdict) {
    case CARRIER_OK:
        return "ok";
    case CARRIER_RETRY:
        return "retry";
    case CARRIER_WAIT:
        return "wait";
    case CARRIER_STOP_ACCOUNT:
        return "stop_account";
    case CARRIER_BAD_REQUEST:
        return "bad_request";
    }
    return "unknown";
}

static void
s_result_free (carrier_result_t *r)
{
    free (r->raw_code);
    free (r->raw_text);
    free (r->location);
    free (r->origin_city);
    free (r->destination_city);
    free (r->cod_state);
    for (size_t i = 0; i < r->n_events; i++) {
        free (r->events[i].code);
        free (r->events[i].text);
        free (r->events[i].location);
    }
    free (r->events);
}

void
carrier_answer_free (carrier_answer_t *answer)
{
    if (!answer)
        return;
    for (size_t i = 0; i < answer->n_results; i++)
        s_result_free (&answer->results[i]);
    free (answer->results);
    memset (answer, 0, sizeof *answer);
}

/* --- building --- */

int
carrier_check_base (const carrier_t *carrier, const carrier_account_t *account, int *len, char *err,
                    size_t errlen)
{
    const char *base = account->base_url;
    if (!base || (strncmp (base, "http://", 7) != 0 && strncmp (base, "https://", 8) != 0)) {
        snprintf (err, errlen, "%s account has no http(s) base URL", carrier->display);
        return -1;
    }
    size_t n = strlen (base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    *len = (int)n;
    return 0;
}

int
carrier_check_secret (const carrier_t *carrier, const char *what, const char *value, char *err,
                      size_t errlen)
{
    if (!value || !value[0]) {
        snprintf (err, errlen, "%s account has no %s", carrier->display, what);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            snprintf (err, errlen, "%s account's %s holds a control character", carrier->display,
                      what);
            return -1;
        }
    }
    return 0;
}

/* --- reading --- */

void
carrier_set (carrier_answer_t *out, carrier_verdict_t verdict, const char *code, const char *fmt,
             ...)
{
    out->verdict = verdict;
    snprintf (out->code, sizeof out->code, "%s", code ? code : "");
    va_list args;
    va_start (args, fmt);
    vsnprintf (out->reason, sizeof out->reason, fmt, args);
    va_end (args);
}

bool
carrier_http_failed (int status, int64_t retry_after_ms, carrier_answer_t *out)
{
    if (status <= 0) {
        carrier_set (out, CARRIER_RETRY, NULL, "no answer (a transport failure)");
        return true;
    }
    if (status == 429) {
        carrier_set (out, CARRIER_WAIT, "429", "rate limited (HTTP 429)");
        out->wait_ms = retry_after_ms > 0 ? retry_after_ms : 0;
        return true;
    }
    if (status >= 500) {
        char code[16];
        snprintf (code, sizeof code, "%d", status);
        carrier_set (out, CARRIER_RETRY, code, "the carrier failed (HTTP %d)", status);
        return true;
    }
    if (status < 200 || (status >= 300 && status < 400)) {
        /* A redirect not followed, or no final answer: nothing to read. */
        char code[16];
        snprintf (code, sizeof code, "%d", status);
        carrier_set (out, CARRIER_RETRY, code, "an unexpected HTTP status %d", status);
        return true;
    }
    return false;
}

/* Printable bytes of an unreadable body kept in the reason. */
#define S_SNIPPET 48

/* The first printable ASCII bytes of body into out, others as '.'. */
static void
s_snippet (const char *body, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; body && i < len && n + 1 < outlen && i < S_SNIPPET; i++) {
        unsigned char c = (unsigned char)body[i];
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
    }
    out[n] = '\0';
}

json_t *
carrier_json (int status, const char *body, size_t len, carrier_answer_t *out)
{
    json_error_t error;
    /* Numbers as reals: an integer past 64 bits anywhere in the answer
     * (jansson refuses those) must not make a whole poll unreadable. */
    json_t *doc = body && len > 0 ? json_loadb (body, len, JSON_DECODE_INT_AS_REAL, &error) : NULL;
    if (doc)
        return doc;
    char snippet[S_SNIPPET + 1];
    s_snippet (body, len, snippet, sizeof snippet);
    if (!body || len == 0)
        carrier_set (out, CARRIER_RETRY, NULL, "not JSON: an empty body (HTTP %d)", status);
    else
        carrier_set (out, CARRIER_RETRY, NULL, "not JSON: %s (HTTP %d, body \"%s\")", error.text,
                     status, snippet);
    return NULL;
}

void
carrier_unexpected (carrier_answer_t *out, int status, const char *what)
{
    carrier_set (out, CARRIER_RETRY, NULL, "unexpected JSON: %s (HTTP %d)", what, status);
}

static void
s_result_empty (carrier_result_t *r)
{
    memset (r, 0, sizeof *r);
    r->raw_code = strdup ("");
    r->raw_text = strdup ("");
    r->location = strdup ("");
    r->origin_city = strdup ("");
    r->destination_city = strdup ("");
    r->cod_state = strdup ("");
}

int
carrier_results_new (carrier_answer_t *out, size_t n)
{
    out->results = calloc (n ? n : 1, sizeof *out->results);
    if (!out->results) {
        carrier_set (out, CARRIER_RETRY, NULL, "out of memory");
        return -1;
    }
    out->n_results = n;
    for (size_t i = 0; i < n; i++)
        s_result_empty (&out->results[i]);
    out->verdict = CARRIER_OK;
    return 0;
}

int
carrier_events_new (carrier_result_t *r, size_t n)
{
    if (n == 0)
        return 0;
    r->events = calloc (n, sizeof *r->events);
    if (!r->events)
        return -1;
    r->n_events = n;
    for (size_t i = 0; i < n; i++) {
        r->events[i].code = strdup ("");
        r->events[i].text = strdup ("");
        r->events[i].location = strdup ("");
    }
    return 0;
}

void
carrier_str_set (char **field, const char *value)
{
    free (*field);
    *field = strdup (value ? value : "");
}

/* Whether every string r owns is there. */
static bool
s_result_whole (const carrier_result_t *r)
{
    if (!r->raw_code || !r->raw_text || !r->location || !r->origin_city || !r->destination_city ||
        !r->cod_state)
        return false;
    for (size_t i = 0; i < r->n_events; i++) {
        if (!r->events[i].code || !r->events[i].text || !r->events[i].location)
            return false;
    }
    return true;
}

void
carrier_answer_settle (carrier_answer_t *out)
{
    bool whole = true;
    for (size_t i = 0; i < out->n_results && whole; i++)
        whole = s_result_whole (&out->results[i]);
    if (out->verdict == CARRIER_OK && whole)
        return;
    carrier_verdict_t verdict = out->verdict;
    char code[CARRIER_CODE_MAX], reason[CARRIER_REASON_MAX];
    int64_t wait_ms = out->wait_ms;
    memcpy (code, out->code, sizeof code);
    memcpy (reason, out->reason, sizeof reason);
    carrier_answer_free (out);
    if (whole) {
        out->verdict = verdict;
        memcpy (out->code, code, sizeof code);
        memcpy (out->reason, reason, sizeof reason);
        out->wait_ms = wait_ms;
    } else {
        carrier_set (out, CARRIER_RETRY, NULL, "out of memory");
    }
}

const char *
carrier_json_text (const json_t *obj, const char *key, char *buf, size_t buflen)
{
    return carrier_json_as_text (json_is_object (obj) ? json_object_get (obj, key) : NULL, buf,
                                 buflen);
}

const char *
carrier_json_as_text (const json_t *v, char *buf, size_t buflen)
{
    if (json_is_string (v))
        return json_string_value (v);
    /* carrier_json reads numbers as reals: a whole one is a code. */
    double x = json_is_number (v) ? json_number_value (v) : 0.5;
    if (x > -1e15 && x < 1e15 && x == (double)(long long)x && buf && buflen > 0) {
        snprintf (buf, buflen, "%lld", (long long)x);
        return buf;
    }
    return "";
}

/* --- time --- */

#define S_KYIV_YEAR0  2000 /* the first year of the month table */
#define S_KYIV_YEARS  100  /* its years */
#define S_KYIV_MONTHS (S_KYIV_YEARS * 12)

/* One month of Kyiv's offsets. */
typedef struct {
    int32_t start_s; /* the UTC offset at the month's first midnight, seconds east */
    int32_t end_s;   /* the offset from the day after change_day on */
    int8_t change;   /* the day of the month the clocks change; 0: they do not */
} s_month_t;

static rt_tz_t *s_kyiv;                   /* Europe/Kyiv, NULL when ICU has no such zone */
static s_month_t s_months[S_KYIV_MONTHS]; /* written once, in s_kyiv_init */
static bool s_months_ok;                  /* the table was filled */
static pthread_once_t s_kyiv_once = PTHREAD_ONCE_INIT;

/* The UTC offset at local midnight of y-m-d (d may be one past the
 * month's end: the next month's first), into *off_s. 0 or -1. */
static int
s_midnight_offset (int y, int m, int d, int32_t *off_s)
{
    int64_t days = rt_civil_days (y, m, d);
    int64_t y2;
    int m2, d2;
    rt_civil_date (days, &y2, &m2, &d2);
    int64_t at;
    if (rt_tz_to_unix (s_kyiv, (int)y2, m2, d2, 0, 0, 0, &at) != 0)
        return -1;
    *off_s = (int32_t)((days * 86400000 - at) / 1000);
    return 0;
}

static int
s_month_days (int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

static void
s_kyiv_init (void)
{
    char err[128];
    s_kyiv = rt_tz_new ("Europe/Kyiv", err, sizeof err);
    if (!s_kyiv) /* ICU before tzdata 2022b knows the old spelling only */
        s_kyiv = rt_tz_new ("Europe/Kiev", err, sizeof err);
    if (!s_kyiv)
        return;
    int32_t next = 0;
    if (s_midnight_offset (S_KYIV_YEAR0, 1, 1, &next) != 0)
        return;
    for (int i = 0; i < S_KYIV_MONTHS; i++) {
        int y = S_KYIV_YEAR0 + i / 12, m = i % 12 + 1, last = s_month_days (y, m);
        s_month_t *mo = &s_months[i];
        mo->start_s = next;
        if (s_midnight_offset (y, m, last + 1, &next) != 0)
            return;
        mo->end_s = next;
        mo->change = 0;
        if (mo->start_s == mo->end_s)
            continue;
        /* The first midnight at the new offset: the clocks changed on the
         * day before it. Kyiv changes at most once a month. */
        int lo = 2, hi = last + 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            int32_t off;
            if (s_midnight_offset (y, m, mid, &off) != 0)
                return;
            if (off == mo->end_s)
                hi = mid;
            else
                lo = mid + 1;
        }
        mo->change = (int8_t)(lo - 1);
    }
    s_months_ok = true;
}

int
carrier_kyiv_to_unix (int year, int month, int day, int hour, int minute, int second,
                      int64_t *unix_ms)
{
    pthread_once (&s_kyiv_once, s_kyiv_init);
    if (!rt_civil_valid (year, month, day) || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
        second < 0 || second > 59)
        return -1;
    if (!s_kyiv)
        return -1;
    int i = (year - S_KYIV_YEAR0) * 12 + month - 1;
    if (!s_months_ok || year < S_KYIV_YEAR0 || i >= S_KYIV_MONTHS || s_months[i].change == day)
        return rt_tz_to_unix (s_kyiv, year, month, day, hour, minute, second, unix_ms);
    const s_month_t *mo = &s_months[i];
    int32_t off = mo->change && day > mo->change ? mo->end_s : mo->start_s;
    int64_t local_s = rt_civil_days (year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    *unix_ms = (local_s - off) * 1000;
    return 0;
}

/* Reads exactly n digits at *p into *v, advancing; false when they are
 * not there. */
static bool
s_digits (const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit ((unsigned char)(*p)[i]))
            return false;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return true;
}

/* "HH:MM[:SS]" at *p, advancing. */
static bool
s_clock (const char **p, int *h, int *mi, int *s)
{
    *s = 0;
    if (!s_digits (p, 2, h) || **p != ':')
        return false;
    (*p)++;
    if (!s_digits (p, 2, mi))
        return false;
    if (**p == ':') {
        (*p)++;
        if (!s_digits (p, 2, s))
            return false;
    }
    return true;
}

/* Only spaces are left at p. */
static bool
s_end (const char *p)
{
    while (*p == ' ')
        p++;
    return *p == '\0';
}

int64_t
carrier_kyiv_ms (const char *text)
{
    const char *p = text;
    int y = 0, m = 0, d = 0, h = 0, mi = 0, s = 0;
    if (!p)
        return 0;
    while (*p == ' ')
        p++;
    const char *start = p;
    bool clock_first = false;
    if (s_digits (&p, 4, &y) && *p == '-') {
        /* 2026-07-01[ 14:30[:00]] */
        p++;
        if (!s_digits (&p, 2, &m) || *p++ != '-' || !s_digits (&p, 2, &d))
            return 0;
        if ((*p == ' ' || *p == 'T') && !s_end (p)) {
            p++;
            if (!s_clock (&p, &h, &mi, &s))
                return 0;
        }
    } else {
        p = start;
        if (isdigit ((unsigned char)p[0]) && isdigit ((unsigned char)p[1]) && p[2] == ':') {
            /* 14:30[:00] 01.07.2026 (Nova Poshta's DateScan) */
            clock_first = true;
            if (!s_clock (&p, &h, &mi, &s) || *p++ != ' ')
                return 0;
        }
        /* 01-07-2026 or 01.07.2026, [ 14:30[:00]] */
        char sep;
        if (!s_digits (&p, 2, &d) || (*p != '-' && *p != '.'))
            return 0;
        sep = *p++;
        if (!s_digits (&p, 2, &m) || *p++ != sep || !s_digits (&p, 4, &y))
            return 0;
        if (*p == ' ' && !s_end (p) && !clock_first) {
            p++;
            if (!s_clock (&p, &h, &mi, &s))
                return 0;
        }
    }
    if (!s_end (p) || y < 1971)
        return 0;
    int64_t ms;
    if (carrier_kyiv_to_unix (y, m, d, h, mi, s, &ms) != 0)
        return 0;
    return ms;
}

int64_t
carrier_iso_ms (const char *text)
{
    const char *p = text;
    int y, m, d, h = 0, mi = 0, s = 0;
    int64_t frac_ms = 0, off_s = 0;
    if (!p || !s_digits (&p, 4, &y) || *p++ != '-' || !s_digits (&p, 2, &m) || *p++ != '-' ||
        !s_digits (&p, 2, &d))
        return 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!s_clock (&p, &h, &mi, &s))
            return 0;
        if (*p == '.' || *p == ',') {
            int64_t scale = 100;
            p++;
            if (!isdigit ((unsigned char)*p))
                return 0;
            while (isdigit ((unsigned char)*p)) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!s_digits (&p, 2, &oh))
                return 0;
            if (*p == ':')
                p++;
            if (isdigit ((unsigned char)*p) && !s_digits (&p, 2, &om))
                return 0;
            if (oh > 18 || om > 59)
                return 0;
            off_s = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p != '\0' || !rt_civil_valid (y, m, d) || h > 23 || mi > 59 || s > 60 || y < 1971)
        return 0;
    /* A leap second reads as the second after it. */
    int64_t local_s = rt_civil_days (y, m, d) * 86400 + h * 3600 + mi * 60 + s;
    return (local_s - off_s) * 1000 + frac_ms;
}
