/*
 * test_tz: common/time/rt_tz, local time in IANA zones and business hours.
 *
 * What a caller relies on: the wall clock a shop sees (Europe/Kyiv above
 * all) across its DST changes, local days of 23 and 25 hours, one stated
 * rule for the skipped and the repeated hour, SLA due times that skip
 * nights, weekends and holidays (and the hour the clocks lose), unknown
 * zones refused rather than read as GMT, and the same answers from many
 * threads at once.
 *
 * Europe/Kyiv in 2026, as ICU's own transition data says (checked first,
 * below): clocks go forward on Sunday 29 March 2026 at 03:00 local (EET,
 * +02:00) to 04:00 (EEST, +03:00), at 01:00 UTC; and back on Sunday
 * 25 October 2026 at 04:00 local (EEST) to 03:00 (EET), at 01:00 UTC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "rt_tz.h"

#define HOUR_MS (3600 * 1000LL)
#define MIN_MS  (60 * 1000LL)

/* Unix ms of a UTC date and time. */
static int64_t
s_utc (int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm (&tm) * 1000;
}

static rt_tz_t *
s_tz (const char *name)
{
    char err[128] = "";
    rt_tz_t *tz = rt_tz_new (name, err, sizeof err);
    if (!tz)
        fail_msg ("%s refused: %s", name, err);
    return tz;
}

/* Unix ms of a local date and time in tz. */
static int64_t
s_at (const rt_tz_t *tz, int y, int mo, int d, int h, int mi)
{
    int64_t ms = 0;
    assert_int_equal (rt_tz_to_unix (tz, y, mo, d, h, mi, 0, &ms), 0);
    return ms;
}

static rt_tz_hours_t *
s_hours (const char *weekly, const char *holidays)
{
    char err[160] = "";
    rt_tz_hours_t *h = rt_tz_hours_new (weekly, holidays, err, sizeof err);
    if (!h)
        fail_msg ("\"%s\" refused: %s", weekly, err);
    return h;
}

static void
s_assert_local (const rt_tz_t *tz, int64_t t, int y, int mo, int d, int h, int mi, int offset_s,
                int weekday)
{
    rt_tz_local_t l;
    assert_int_equal (rt_tz_local (tz, t, &l), 0);
    if (l.year != y || l.month != mo || l.day != d || l.hour != h || l.minute != mi ||
        l.offset_s != offset_s || l.weekday != weekday)
        fail_msg ("%s at %lld: got %04d-%02d-%02d %02d:%02d %+d wd %d, expected %04d-%02d-%02d "
                  "%02d:%02d %+d wd %d",
                  rt_tz_name (tz), (long long)t, l.year, l.month, l.day, l.hour, l.minute,
                  l.offset_s, l.weekday, y, mo, d, h, mi, offset_s, weekday);
}

/* The dates this file states are ICU's, not ours. */
static void
test_kyiv_transitions_as_icu_has_them (void **state)
{
    UChar id[32];
    UErrorCode status = U_ZERO_ERROR;
    UCalendar *cal;
    UDate at;
    (void)state;
    u_uastrcpy (id, "Europe/Kyiv");
    cal = ucal_open (id, -1, "en_US_POSIX", UCAL_GREGORIAN, &status);
    assert_true (U_SUCCESS (status));
    ucal_setMillis (cal, (UDate)s_utc (2026, 1, 1, 0, 0), &status);
    assert_true (ucal_getTimeZoneTransitionDate (cal, UCAL_TZ_TRANSITION_NEXT, &at, &status));
    assert_int_equal ((int64_t)at, s_utc (2026, 3, 29, 1, 0));
    ucal_setMillis (cal, at, &status);
    assert_true (ucal_getTimeZoneTransitionDate (cal, UCAL_TZ_TRANSITION_NEXT, &at, &status));
    assert_int_equal ((int64_t)at, s_utc (2026, 10, 25, 1, 0));
    assert_true (U_SUCCESS (status));
    ucal_close (cal);
}

static void
test_kyiv_local_time_across_dst (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_local_t l;
    (void)state;
    assert_string_equal (rt_tz_name (kyiv), "Europe/Kyiv");
    /* Winter, the last second of EET, the first of EEST. */
    s_assert_local (kyiv, s_utc (2026, 1, 15, 10, 0), 2026, 1, 15, 12, 0, 7200, 4);
    s_assert_local (kyiv, s_utc (2026, 3, 29, 1, 0) - 1000, 2026, 3, 29, 2, 59, 7200, 7);
    s_assert_local (kyiv, s_utc (2026, 3, 29, 1, 0), 2026, 3, 29, 4, 0, 10800, 7);
    assert_int_equal (rt_tz_local (kyiv, s_utc (2026, 3, 29, 1, 0), &l), 0);
    assert_true (l.dst);
    assert_int_equal (l.second, 0);
    /* Autumn: 03:59:59 EEST, then 03:00 EET again. */
    s_assert_local (kyiv, s_utc (2026, 10, 25, 1, 0) - 1000, 2026, 10, 25, 3, 59, 10800, 7);
    s_assert_local (kyiv, s_utc (2026, 10, 25, 1, 0), 2026, 10, 25, 3, 0, 7200, 7);
    assert_int_equal (rt_tz_local (kyiv, s_utc (2026, 10, 25, 1, 0) - 1, &l), 0);
    assert_int_equal (l.second, 59);
    assert_int_equal (l.millisecond, 999);
    assert_true (l.dst);
    assert_int_equal (rt_tz_local (kyiv, s_utc (2026, 10, 25, 1, 0), &l), 0);
    assert_false (l.dst);
    /* Out of the years 1 to 9999. */
    assert_int_equal (rt_tz_local (kyiv, INT64_MAX, &l), -1);
    assert_int_equal (rt_tz_local (kyiv, INT64_MIN, &l), -1);
    rt_tz_destroy (&kyiv);
    assert_null (kyiv);
    rt_tz_destroy (&kyiv);
    rt_tz_destroy (NULL);
}

static void
test_kyiv_days_of_23_and_25_hours (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    int64_t start, next;
    (void)state;
    /* Sunday 29 March: from 00:00 EET to 00:00 EEST. */
    assert_int_equal (rt_tz_day_start (kyiv, s_utc (2026, 3, 29, 12, 0), &start), 0);
    assert_int_equal (rt_tz_next_day_start (kyiv, s_utc (2026, 3, 29, 12, 0), &next), 0);
    assert_int_equal (start, s_utc (2026, 3, 28, 22, 0));
    assert_int_equal (next, s_utc (2026, 3, 29, 21, 0));
    assert_int_equal (next - start, 23 * HOUR_MS);
    /* Sunday 25 October. */
    assert_int_equal (rt_tz_day_start (kyiv, s_utc (2026, 10, 25, 12, 0), &start), 0);
    assert_int_equal (rt_tz_next_day_start (kyiv, s_utc (2026, 10, 25, 12, 0), &next), 0);
    assert_int_equal (start, s_utc (2026, 10, 24, 21, 0));
    assert_int_equal (next, s_utc (2026, 10, 25, 22, 0));
    assert_int_equal (next - start, 25 * HOUR_MS);
    /* The day after is an ordinary one. */
    assert_int_equal (rt_tz_day_start (kyiv, next, &start), 0);
    assert_int_equal (start, next);
    assert_int_equal (rt_tz_next_day_start (kyiv, next, &next), 0);
    assert_int_equal (next - start, 24 * HOUR_MS);
    /* The last millisecond of a day belongs to it; the next day's first
     * does not (22:00 UTC is local midnight in winter). */
    assert_int_equal (rt_tz_day_start (kyiv, s_utc (2026, 12, 1, 22, 0) - 1, &start), 0);
    assert_int_equal (start, s_utc (2026, 11, 30, 22, 0));
    assert_int_equal (rt_tz_day_start (kyiv, s_utc (2026, 12, 1, 22, 0), &start), 0);
    assert_int_equal (start, s_utc (2026, 12, 1, 22, 0));
    rt_tz_destroy (&kyiv);
}

static void
test_kyiv_skipped_and_repeated_times (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    int64_t t;
    (void)state;
    /* 29 March, 03:00-03:59 does not exist: it names the change, 04:00 EEST. */
    assert_int_equal (s_at (kyiv, 2026, 3, 29, 2, 59), s_utc (2026, 3, 29, 0, 59));
    assert_int_equal (s_at (kyiv, 2026, 3, 29, 3, 0), s_utc (2026, 3, 29, 1, 0));
    assert_int_equal (s_at (kyiv, 2026, 3, 29, 3, 30), s_utc (2026, 3, 29, 1, 0));
    assert_int_equal (s_at (kyiv, 2026, 3, 29, 4, 0), s_utc (2026, 3, 29, 1, 0));
    assert_int_equal (s_at (kyiv, 2026, 3, 29, 4, 30), s_utc (2026, 3, 29, 1, 30));
    /* 25 October, 03:00-03:59 happens twice: it names the first (EEST). */
    assert_int_equal (s_at (kyiv, 2026, 10, 25, 3, 30), s_utc (2026, 10, 25, 0, 30));
    s_assert_local (kyiv, s_utc (2026, 10, 25, 0, 30), 2026, 10, 25, 3, 30, 10800, 7);
    s_assert_local (kyiv, s_utc (2026, 10, 25, 1, 30), 2026, 10, 25, 3, 30, 7200, 7);
    assert_int_equal (s_at (kyiv, 2026, 10, 25, 4, 0), s_utc (2026, 10, 25, 2, 0));
    assert_int_equal (s_at (kyiv, 2026, 10, 25, 2, 59), s_utc (2026, 10, 24, 23, 59));
    /* Seconds count; fields are not normalised. */
    assert_int_equal (rt_tz_to_unix (kyiv, 2026, 7, 1, 12, 0, 30, &t), 0);
    assert_int_equal (t, s_utc (2026, 7, 1, 9, 0) + 30000);
    assert_int_equal (rt_tz_to_unix (kyiv, 2026, 2, 29, 12, 0, 0, &t), -1);
    assert_int_equal (rt_tz_to_unix (kyiv, 2028, 2, 29, 12, 0, 0, &t), 0);
    assert_int_equal (rt_tz_to_unix (kyiv, 2026, 4, 31, 12, 0, 0, &t), -1);
    assert_int_equal (rt_tz_to_unix (kyiv, 2026, 13, 1, 12, 0, 0, &t), -1);
    assert_int_equal (rt_tz_to_unix (kyiv, 2026, 1, 1, 24, 0, 0, &t), -1);
    assert_int_equal (rt_tz_to_unix (kyiv, 2026, 1, 1, 12, 60, 0, &t), -1);
    assert_int_equal (rt_tz_to_unix (kyiv, 0, 1, 1, 12, 0, 0, &t), -1);
    rt_tz_destroy (&kyiv);
}

static void
test_unknown_zone_refused (void **state)
{
    static const char *const bad[] = {
        "Mars/Olympus",
        "Europe/Kyyiv",
        "europe/kyiv",
        "Europe/Kyiv ",
        "GMT+2",
        "",
        "Europe/\xD0\x9A",
        "Etc/Nowhere/At/All/And/Then/Some/More/Characters/Than/Sixty/Four/Of/Them",
    };
    char err[128];
    size_t i;
    rt_tz_t *tz;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        tz = rt_tz_new (bad[i], err, sizeof err);
        if (tz)
            fail_msg ("\"%s\" accepted as a zone", bad[i]);
        assert_true (err[0] != '\0');
    }
    assert_null (rt_tz_new (NULL, err, sizeof err));
    assert_null (rt_tz_new ("Mars/Olympus", NULL, 0));
    assert_int_equal (rt_tz_new ("Mars/Olympus", err, sizeof err) == NULL, 1);
    assert_non_null (strstr (err, "unknown time zone"));
    /* The old spelling is still the same zone. */
    tz = s_tz ("Europe/Kiev");
    s_assert_local (tz, s_utc (2026, 3, 29, 1, 0), 2026, 3, 29, 4, 0, 10800, 7);
    rt_tz_destroy (&tz);
    tz = s_tz ("UTC");
    s_assert_local (tz, s_utc (2026, 3, 29, 1, 0), 2026, 3, 29, 1, 0, 0, 7);
    rt_tz_destroy (&tz);
}

static void
test_new_york_and_kolkata (void **state)
{
    rt_tz_t *ny = s_tz ("America/New_York");
    rt_tz_t *kol = s_tz ("Asia/Kolkata");
    rt_tz_local_t l;
    int64_t start, next;
    (void)state;
    s_assert_local (ny, s_utc (2026, 1, 15, 17, 0), 2026, 1, 15, 12, 0, -18000, 4);
    s_assert_local (ny, s_utc (2026, 7, 4, 16, 0), 2026, 7, 4, 12, 0, -14400, 6);
    /* Sunday 8 March 2026: 02:00 EST becomes 03:00 EDT, at 07:00 UTC. */
    assert_int_equal (s_at (ny, 2026, 3, 8, 2, 30), s_utc (2026, 3, 8, 7, 0));
    assert_int_equal (rt_tz_day_start (ny, s_utc (2026, 3, 8, 17, 0), &start), 0);
    assert_int_equal (rt_tz_next_day_start (ny, s_utc (2026, 3, 8, 17, 0), &next), 0);
    assert_int_equal (next - start, 23 * HOUR_MS);
    /* Sunday 1 November 2026: back an hour. */
    assert_int_equal (rt_tz_day_start (ny, s_utc (2026, 11, 1, 17, 0), &start), 0);
    assert_int_equal (rt_tz_next_day_start (ny, s_utc (2026, 11, 1, 17, 0), &next), 0);
    assert_int_equal (next - start, 25 * HOUR_MS);
    /* A half-hour offset, no DST. */
    s_assert_local (kol, s_utc (2026, 3, 29, 0, 0), 2026, 3, 29, 5, 30, 19800, 7);
    s_assert_local (kol, s_utc (2026, 7, 1, 18, 29), 2026, 7, 1, 23, 59, 19800, 3);
    assert_int_equal (rt_tz_local (kol, s_utc (2026, 7, 1, 0, 0), &l), 0);
    assert_false (l.dst);
    assert_int_equal (rt_tz_day_start (kol, s_utc (2026, 6, 1, 0, 0), &start), 0);
    assert_int_equal (start, s_utc (2026, 5, 31, 18, 30));
    assert_int_equal (s_at (kol, 2026, 6, 1, 9, 0), s_utc (2026, 6, 1, 3, 30));
    rt_tz_destroy (&ny);
    rt_tz_destroy (&kol);
}

/* The example: "first response within 2 business hours", asked
 * on Friday 27 March 2026 at 17:30 in Kyiv, Mon-Fri 09:00-18:00; the
 * clocks go forward on the Sunday between. */
static void
test_sla_over_the_weekend_and_the_dst_change (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *h = s_hours ("mon-fri 09:00-18:00", NULL);
    int64_t fri = s_at (kyiv, 2026, 3, 27, 17, 30), due = 0, ms = 0, at = 0;
    (void)state;
    assert_int_equal (fri, s_utc (2026, 3, 27, 15, 30));
    assert_int_equal (rt_tz_business_add (h, kyiv, fri, 2 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 3, 30, 10, 30));
    assert_int_equal (due, s_utc (2026, 3, 30, 7, 30));
    assert_int_equal (rt_tz_business_between (h, kyiv, fri, due, &ms), 0);
    assert_int_equal (ms, 2 * HOUR_MS);
    /* On the wall clock that is 2 days 17 hours, less the hour lost. */
    assert_int_equal (due - fri, (2 * 24 + 17 - 1) * HOUR_MS);
    assert_int_equal (rt_tz_business_open (h, kyiv, fri), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 3, 27, 18, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 3, 28, 12, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 3, 30, 9, 0)), 1);
    assert_int_equal (rt_tz_business_next_open (h, kyiv, s_at (kyiv, 2026, 3, 28, 12, 0), &at), 0);
    assert_int_equal (at, s_utc (2026, 3, 30, 6, 0));
    assert_int_equal (rt_tz_business_next_open (h, kyiv, fri, &at), 0);
    assert_int_equal (at, fri);
    /* Asked while closed, the clock starts at the opening. */
    assert_int_equal (
        rt_tz_business_add (h, kyiv, s_at (kyiv, 2026, 3, 28, 3, 0), 30 * MIN_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 3, 30, 9, 30));
    /* Exactly the rest of a day ends at its closing, not the next opening. */
    assert_int_equal (rt_tz_business_add (h, kyiv, fri, 30 * MIN_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 3, 27, 18, 0));
    assert_int_equal (rt_tz_business_add (h, kyiv, fri, 0, &due), 0);
    assert_int_equal (due, fri);
    assert_int_equal (rt_tz_business_add (h, kyiv, fri, -1, &due), -1);
    /* A whole working week is 45 hours. */
    assert_int_equal (rt_tz_business_between (h, kyiv, s_at (kyiv, 2026, 3, 23, 0, 0),
                                              s_at (kyiv, 2026, 3, 30, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 45 * HOUR_MS);
    assert_int_equal (rt_tz_business_between (h, kyiv, due, fri - 1, &ms), 0);
    assert_int_equal (ms, 0);
    rt_tz_hours_destroy (&h);
    assert_null (h);
    rt_tz_hours_destroy (&h);
    rt_tz_destroy (&kyiv);
}

static void
test_business_over_a_weekend_with_saturday (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *h = s_hours ("mon-fri 09:00-18:00; sat 10:00-14:00", NULL);
    int64_t fri = s_at (kyiv, 2026, 6, 5, 17, 0), due, ms;
    (void)state;
    assert_int_equal (rt_tz_business_add (h, kyiv, fri, 3 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 6, 6, 12, 0));
    assert_int_equal (rt_tz_business_add (h, kyiv, fri, 6 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 6, 8, 10, 0));
    assert_int_equal (rt_tz_business_between (h, kyiv, fri, due, &ms), 0);
    assert_int_equal (ms, 6 * HOUR_MS);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 6, 13, 59)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 6, 14, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 7, 12, 0)), 0);
    rt_tz_hours_destroy (&h);
    rt_tz_destroy (&kyiv);
}

static void
test_business_across_midnight (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *h = s_hours ("fri-sat 22:00-02:00", NULL);
    int64_t due, ms;
    (void)state;
    /* 5 June 2026 is a Friday. */
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 5, 21, 59)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 5, 23, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 6, 1, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 6, 3, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 7, 1, 30)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 7, 2, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 8, 1, 0)), 0);
    assert_int_equal (
        rt_tz_business_add (h, kyiv, s_at (kyiv, 2026, 6, 5, 21, 0), 3 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 6, 6, 1, 0));
    assert_int_equal (rt_tz_business_add (h, kyiv, due, 2 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 6, 6, 23, 0));
    assert_int_equal (rt_tz_business_between (h, kyiv, s_at (kyiv, 2026, 6, 5, 0, 0),
                                              s_at (kyiv, 2026, 6, 8, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 8 * HOUR_MS);
    /* Asked in the middle of a night, the rest of it counts. */
    assert_int_equal (rt_tz_business_between (h, kyiv, s_at (kyiv, 2026, 6, 6, 1, 0),
                                              s_at (kyiv, 2026, 6, 6, 22, 30), &ms),
                      0);
    assert_int_equal (ms, 90 * MIN_MS);
    rt_tz_hours_destroy (&h);

    /* Sunday's night runs into Monday morning, the week's wrap. */
    h = s_hours ("sun 20:00-04:00; mon 09:00-18:00", NULL);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 8, 3, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 8, 5, 0)), 0);
    assert_int_equal (
        rt_tz_business_add (h, kyiv, s_at (kyiv, 2026, 6, 8, 3, 0), 2 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 6, 8, 10, 0));
    rt_tz_hours_destroy (&h);
    rt_tz_destroy (&kyiv);
}

static void
test_business_over_holidays (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *h = s_hours ("mon-fri 09:00-18:00", "2026-01-01, 2026-01-07");
    char err[128];
    int64_t due, ms;
    (void)state;
    /* Wednesday 31 December 17:00, 2 hours: Thursday 1 January is closed. */
    assert_int_equal (
        rt_tz_business_add (h, kyiv, s_at (kyiv, 2025, 12, 31, 17, 0), 2 * HOUR_MS, &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 1, 2, 10, 0));
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 1, 1, 12, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 1, 7, 12, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 1, 8, 12, 0)), 1);
    /* The week of 5 January: four days, not five. */
    assert_int_equal (rt_tz_business_between (h, kyiv, s_at (kyiv, 2026, 1, 5, 0, 0),
                                              s_at (kyiv, 2026, 1, 12, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 4 * 9 * HOUR_MS);
    /* One more, added later (and a repeat is harmless). */
    assert_int_equal (rt_tz_hours_add_holiday (h, "2026-01-08", err, sizeof err), 0);
    assert_int_equal (rt_tz_hours_add_holiday (h, "2026-01-08", err, sizeof err), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 1, 8, 12, 0)), 0);
    assert_int_equal (rt_tz_hours_add_holiday (h, "2026-01-32", err, sizeof err), -1);
    assert_non_null (strstr (err, "not a date"));
    rt_tz_hours_destroy (&h);

    /* A night shift belongs to the evening it starts: Thursday's runs into
     * the holiday Friday, Friday's own is cancelled, past midnight too. */
    h = s_hours ("thu-fri 22:00-02:00", "2026-06-05");
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 5, 1, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 5, 23, 0)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 6, 1, 0)), 0);
    assert_int_equal (rt_tz_business_next_open (h, kyiv, s_at (kyiv, 2026, 6, 5, 3, 0), &due), 0);
    assert_int_equal (due, s_at (kyiv, 2026, 6, 11, 22, 0));
    rt_tz_hours_destroy (&h);
    rt_tz_destroy (&kyiv);
}

/* Intervals on the days the clocks change last what the clock allows. */
static void
test_business_hours_on_dst_days (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *night = s_hours ("sun 02:00-05:00", NULL);
    rt_tz_hours_t *always = s_hours ("mon-sun 00:00-24:00", NULL);
    int64_t start, next, ms, due;
    (void)state;
    assert_int_equal (rt_tz_business_between (night, kyiv, s_at (kyiv, 2026, 3, 29, 0, 0),
                                              s_at (kyiv, 2026, 3, 30, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 2 * HOUR_MS);
    assert_int_equal (rt_tz_business_between (night, kyiv, s_at (kyiv, 2026, 10, 25, 0, 0),
                                              s_at (kyiv, 2026, 10, 26, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 4 * HOUR_MS);
    /* The same hours on an ordinary Sunday. */
    assert_int_equal (rt_tz_business_between (night, kyiv, s_at (kyiv, 2026, 6, 7, 0, 0),
                                              s_at (kyiv, 2026, 6, 8, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 3 * HOUR_MS);
    /* Always open: business time is wall time, 23 and 25 hour days too. */
    assert_int_equal (rt_tz_day_start (kyiv, s_utc (2026, 3, 29, 12, 0), &start), 0);
    assert_int_equal (rt_tz_next_day_start (kyiv, s_utc (2026, 3, 29, 12, 0), &next), 0);
    assert_int_equal (rt_tz_business_between (always, kyiv, start, next, &ms), 0);
    assert_int_equal (ms, 23 * HOUR_MS);
    assert_int_equal (rt_tz_day_start (kyiv, s_utc (2026, 10, 25, 12, 0), &start), 0);
    assert_int_equal (rt_tz_next_day_start (kyiv, s_utc (2026, 10, 25, 12, 0), &next), 0);
    assert_int_equal (rt_tz_business_between (always, kyiv, start, next, &ms), 0);
    assert_int_equal (ms, 25 * HOUR_MS);
    assert_int_equal (rt_tz_business_add (always, kyiv, start, 25 * HOUR_MS, &due), 0);
    assert_int_equal (due, next);
    assert_int_equal (rt_tz_business_open (always, kyiv, s_utc (2026, 10, 25, 1, 30)), 1);
    rt_tz_hours_destroy (&night);
    rt_tz_hours_destroy (&always);
    rt_tz_destroy (&kyiv);
}

static void
test_hours_forms_accepted (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *h;
    int64_t ms;
    (void)state;
    /* Lists, split days, any case, H:MM, closed, stray separators. */
    h = s_hours (" MON,wed-Fri 9:00-13:00, 14:00-18:00 ; sun closed;;", "2026-06-10\n2026-06-11");
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 8, 9, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 8, 13, 30)), 0);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 9, 10, 0)), 0);
    assert_int_equal (rt_tz_business_between (h, kyiv, s_at (kyiv, 2026, 6, 8, 0, 0),
                                              s_at (kyiv, 2026, 6, 15, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 2 * 8 * HOUR_MS); /* Monday and Friday: the rest holidays */
    rt_tz_hours_destroy (&h);
    /* A range that wraps the week. */
    h = s_hours ("fri-mon 10:00-12:00", NULL);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 7, 11, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 8, 11, 0)), 1);
    assert_int_equal (rt_tz_business_open (h, kyiv, s_at (kyiv, 2026, 6, 9, 11, 0)), 0);
    rt_tz_hours_destroy (&h);
    /* Touching intervals are not overlapping ones. */
    h = s_hours ("mon 09:00-12:00, 12:00-18:00; mon 18:00-00:00; tue 00:00-01:00", NULL);
    assert_int_equal (rt_tz_business_between (h, kyiv, s_at (kyiv, 2026, 6, 8, 0, 0),
                                              s_at (kyiv, 2026, 6, 10, 0, 0), &ms),
                      0);
    assert_int_equal (ms, 16 * HOUR_MS);
    rt_tz_hours_destroy (&h);
    rt_tz_destroy (&kyiv);
}

static void
test_hours_bad_input_refused (void **state)
{
    static const struct {
        const char *weekly;   /* weekly form */
        const char *holidays; /* holidays */
        const char *reason;   /* fragment of the reason */
    } bad[] = {
        {"", NULL, "no opening hours"},
        {NULL, NULL, "no opening hours"},
        {"sun closed", NULL, "no opening hours"},
        {"mon", NULL, "no hours"},
        {"mon-fri", NULL, "no hours"},
        {"xyz 09:00-18:00", NULL, "unknown day"},
        {"monday 09:00-18:00", NULL, "unknown day"},
        {"mon-xyz 09:00-18:00", NULL, "unknown day"},
        {"09:00-18:00", NULL, "unknown day"},
        {"mon 9-18", NULL, "bad interval"},
        {"mon 09:00", NULL, "bad interval"},
        {"mon 09:00-18:00 x", NULL, "bad interval"},
        {"mon 25:00-26:00", NULL, "bad interval"},
        {"mon 09:60-10:00", NULL, "bad interval"},
        {"mon 24:00-02:00", NULL, "bad interval"},
        {"mon 09:00-24:30", NULL, "bad interval"},
        {"mon 10:00-10:00", NULL, "empty interval"},
        {"mon closed 09:00-10:00", NULL, "nothing may follow"},
        {"mon 09:00-18:00; mon 17:00-19:00", NULL, "overlaps"},
        {"mon-fri 09:00-18:00; wed 08:00-09:30", NULL, "overlaps"},
        {"sun 22:00-02:00; mon 01:00-05:00", NULL, "overlaps"},
        {"mon 22:00-10:00; tue 09:00-12:00", NULL, "overlaps"},
        {"mon 01:00-02:00 03:00-04:00 05:00-06:00 07:00-08:00 09:00-10:00 11:00-12:00 "
         "13:00-14:00 15:00-16:00 17:00-18:00",
         NULL, "more than 8"},
        {"mon-fri 09:00-18:00", "2026-02-30", "not a date"},
        {"mon-fri 09:00-18:00", "2026/01/01", "not a date"},
        {"mon-fri 09:00-18:00", "+026-01-01", "not a date"},
        {"mon-fri 09:00-18:00", "2026-01-01, tomorrow", "not a date"},
        {"mon-fri 09:00-18:00", "0000-01-01", "not a date"},
    };
    char err[200];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rt_tz_hours_t *h;
        err[0] = '\0';
        h = rt_tz_hours_new (bad[i].weekly, bad[i].holidays, err, sizeof err);
        if (h) {
            rt_tz_hours_destroy (&h);
            fail_msg ("\"%s\" / \"%s\" accepted", bad[i].weekly ? bad[i].weekly : "(null)",
                      bad[i].holidays ? bad[i].holidays : "");
        }
        if (!strstr (err, bad[i].reason))
            fail_msg ("\"%s\": reason \"%s\" does not say \"%s\"",
                      bad[i].weekly ? bad[i].weekly : "(null)", err, bad[i].reason);
    }
}

/* --- many threads, one zone and one set of hours ----------------------- */

#define N_THREADS  4
#define N_ROUNDS   10000
#define N_INSTANTS 16

typedef struct {
    int64_t local_key; /* local fields packed */
    int64_t back;      /* rt_tz_to_unix of those fields */
    int64_t day_start; /* start of the local day */
    int64_t due;       /* 2 business hours after */
    int64_t between;   /* business time to a week later */
} s_answer_t;

typedef struct {
    const rt_tz_t *tz;          /* shared */
    const rt_tz_hours_t *hours; /* shared */
    const int64_t *instants;    /* the questions */
    const s_answer_t *expected; /* single-threaded answers */
    int mismatches;             /* answers that differed */
    int errors;                 /* calls that failed */
} s_thread_t;

static int
s_answer (const rt_tz_t *tz, const rt_tz_hours_t *hours, int64_t t, s_answer_t *a)
{
    rt_tz_local_t l;
    if (rt_tz_local (tz, t, &l) != 0)
        return -1;
    a->local_key =
        ((((((int64_t)l.year * 13 + l.month) * 32 + l.day) * 24 + l.hour) * 60 + l.minute) * 8 +
         l.weekday) *
            100000 +
        l.offset_s;
    if (rt_tz_to_unix (tz, l.year, l.month, l.day, l.hour, l.minute, l.second, &a->back) != 0 ||
        rt_tz_day_start (tz, t, &a->day_start) != 0 ||
        rt_tz_business_add (hours, tz, t, 2 * HOUR_MS, &a->due) != 0 ||
        rt_tz_business_between (hours, tz, t, t + 7 * 24 * HOUR_MS, &a->between) != 0)
        return -1;
    return 0;
}

static void *
s_thread (void *arg)
{
    s_thread_t *th = arg;
    int i;
    for (i = 0; i < N_ROUNDS; i++) {
        int k = i % N_INSTANTS;
        s_answer_t a;
        if (s_answer (th->tz, th->hours, th->instants[k], &a) != 0) {
            th->errors++;
            continue;
        }
        if (memcmp (&a, &th->expected[k], sizeof a) != 0)
            th->mismatches++;
    }
    return NULL;
}

static void
test_threads_agree (void **state)
{
    rt_tz_t *kyiv = s_tz ("Europe/Kyiv");
    rt_tz_hours_t *h =
        s_hours ("mon-fri 09:00-18:00; sat 10:00-14:00; sun 22:00-02:00", "2026-03-30");
    int64_t instants[N_INSTANTS];
    s_answer_t expected[N_INSTANTS];
    s_thread_t th[N_THREADS];
    pthread_t tid[N_THREADS];
    int i;
    (void)state;
    /* Around both DST changes, every hour of the day covered. */
    for (i = 0; i < N_INSTANTS; i++) {
        int64_t base = i % 2 ? s_utc (2026, 10, 23, 0, 0) : s_utc (2026, 3, 27, 0, 0);
        instants[i] = base + (int64_t)i * 7 * HOUR_MS + 17 * MIN_MS;
        memset (&expected[i], 0, sizeof expected[i]);
        assert_int_equal (s_answer (kyiv, h, instants[i], &expected[i]), 0);
    }
    /* One answer checked by hand: Friday 27 March 02:17 EET, two hours. */
    assert_int_equal (expected[0].due, s_at (kyiv, 2026, 3, 27, 11, 0));
    for (i = 0; i < N_THREADS; i++) {
        th[i] = (s_thread_t){kyiv, h, instants, expected, 0, 0};
        assert_int_equal (pthread_create (&tid[i], NULL, s_thread, &th[i]), 0);
    }
    for (i = 0; i < N_THREADS; i++) {
        assert_int_equal (pthread_join (tid[i], NULL), 0);
        assert_int_equal (th[i].errors, 0);
        assert_int_equal (th[i].mismatches, 0);
    }
    rt_tz_hours_destroy (&h);
    rt_tz_destroy (&kyiv);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_kyiv_transitions_as_icu_has_them),
        cmocka_unit_test (test_kyiv_local_time_across_dst),
        cmocka_unit_test (test_kyiv_days_of_23_and_25_hours),
        cmocka_unit_test (test_kyiv_skipped_and_repeated_times),
        cmocka_unit_test (test_unknown_zone_refused),
        cmocka_unit_test (test_new_york_and_kolkata),
        cmocka_unit_test (test_sla_over_the_weekend_and_the_dst_change),
        cmocka_unit_test (test_business_over_a_weekend_with_saturday),
        cmocka_unit_test (test_business_across_midnight),
        cmocka_unit_test (test_business_over_holidays),
        cmocka_unit_test (test_business_hours_on_dst_days),
        cmocka_unit_test (test_hours_forms_accepted),
        cmocka_unit_test (test_hours_bad_input_refused),
        cmocka_unit_test (test_threads_agree),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
