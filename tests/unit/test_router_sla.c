/*
 * test_router_sla: routerd's SLA clock (services/router/sla), without a
 * database.
 *
 * What an operator and a shop owner notice: when a conversation is due,
 * counted in the team's opening hours (a night shift past midnight, a
 * weekend, a holiday, a DST change in Kyiv) or in plain hours (the
 * marketplace's "answer within 24 hours"); the warning at 80% of the
 * target; a snoozed or pending conversation whose clock waits; the policy
 * that applies when several could; and every policy a person could type
 * wrong refused with a reason that says what is wrong.
 *
 * Expected instants are written by hand as UTC (s_utc, through timegm),
 * from the local times and the offsets of Europe/Kyiv: EET, UTC+2, in
 * winter; EEST, UTC+3, from Sunday 29 March 2026 01:00 UTC (local 03:00
 * becomes 04:00) to Sunday 25 October 2026 01:00 UTC (local 04:00 becomes
 * 03:00). test_tz.c checks those dates against ICU's own data. Weekdays of
 * 2026: 13 February is a Friday, 28 March a Saturday, 24 October a
 * Saturday, 25 December a Friday.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sla.h"

#define MIN_MS  (60 * 1000LL)
#define HOUR_MS (60 * MIN_MS)

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

static sla_policy_t *
s_policy (const char *json)
{
    char err[256] = "";
    sla_policy_t *p = sla_policy_parse (json, strlen (json), err, sizeof err);
    if (!p)
        fail_msg ("%s refused: %s", json, err);
    return p;
}

/* A team's calendar from its JSON object. */
static sla_calendar_t *
s_calendar (const char *json)
{
    char err[256] = "";
    json_error_t jerr;
    json_t *obj = json_loads (json, 0, &jerr);
    sla_calendar_t *cal;
    if (!obj)
        fail_msg ("test calendar %s: %s", json, jerr.text);
    cal = sla_calendar_from_json (obj, err, sizeof err);
    json_decref (obj);
    if (!cal)
        fail_msg ("%s refused: %s", json, err);
    return cal;
}

static void
s_assert_ms (int64_t got, int64_t expected, const char *what)
{
    if (got != expected)
        fail_msg ("%s: got %lld, expected %lld (%+lld min)", what, (long long)got,
                  (long long)expected, (long long)((got - expected) / MIN_MS));
}

/* The due and warning instants of kind from start. */
static void
s_assert_due (const sla_policy_t *p, const sla_calendar_t *team, sla_kind_t kind, int64_t start,
              int64_t due, int64_t warn)
{
    char err[256] = "";
    int64_t got_due = -1, got_warn = -1;
    int rc = sla_due (p, team, kind, start, &got_due, &got_warn, err, sizeof err);
    if (rc != 1)
        fail_msg ("sla_due %s: %d (%s)", sla_kind_name (kind), rc, err);
    s_assert_ms (got_due, due, "due");
    s_assert_ms (got_warn, warn, "warning");
}

static void
s_assert_state (const sla_timer_t *t, int64_t now, sla_status_t status, int64_t left, bool paused)
{
    sla_state_t st;
    sla_state (t, now, &st);
    if (st.status != status || st.left_ms != left || st.paused != paused)
        fail_msg ("state at %lld: %s, left %lld ms%s; expected %s, left %lld ms%s", (long long)now,
                  sla_status_name (st.status), (long long)st.left_ms, st.paused ? ", paused" : "",
                  sla_status_name (status), (long long)left, paused ? ", paused" : "");
}

/* --- business hours --------------------------------------------------- */

/* A night shift 20:00-02:00 (Kyiv, February: EET, UTC+2) belongs to the
 * day it starts on, so Friday's runs into Saturday and the next is
 * Monday's. */
static void
test_business_hours_across_midnight (void **state)
{
    sla_policy_t *p =
        s_policy ("{\"team\": \"night\", \"clock\": \"business\", \"first_response_minutes\": 120,"
                  " \"business_hours\": {\"zone\": \"Europe/Kyiv\","
                  " \"weekly\": \"mon-fri 20:00-02:00\"}}");
    /* The team's day hours, which the policy's own override. */
    sla_calendar_t *team =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}");
    (void)state;
    /* Tue 10 Feb 01:00 local (Mon 23:00 UTC), inside Monday's shift: one
     * hour to 02:00, then Tuesday 20:00 local (18:00 UTC) plus one hour. */
    s_assert_due (p, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 2, 9, 23, 0),
                  s_utc (2026, 2, 10, 19, 0), s_utc (2026, 2, 10, 19, 0));
    /* Sat 14 Feb 01:30 local (Fri 23:30 UTC), in Friday's shift: 30 min
     * to 02:00, none on the weekend, then Monday 20:00 local (18:00 UTC)
     * plus 1 h 30. */
    s_assert_due (p, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 2, 13, 23, 30),
                  s_utc (2026, 2, 16, 19, 30), s_utc (2026, 2, 16, 19, 30));
    /* Sat 14 Feb 12:00 local, closed: the clock starts Monday 20:00
     * local, due 22:00 local = 20:00 UTC. */
    s_assert_due (p, team, SLA_FIRST_RESPONSE, s_utc (2026, 2, 14, 10, 0),
                  s_utc (2026, 2, 16, 20, 0), s_utc (2026, 2, 16, 20, 0));
    sla_policy_destroy (&p);
    assert_null (p);
    sla_calendar_destroy (&team);
}

/* Two business hours from Friday afternoon, and from Friday evening, for
 * Mon-Fri 09:00-18:00, in the team's calendar (the policy has none of its
 * own). */
static void
test_business_hours_weekend (void **state)
{
    sla_calendar_t *team =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}");
    sla_policy_t *p = s_policy (
        "{\"team\": \"support\", \"clock\": \"business\", \"first_response_minutes\": 120}");
    (void)state;
    /* Fri 13 Feb 17:00 local = 15:00 UTC: 1 h on Friday to 18:00, the
     * weekend closed, 1 h on Monday from 09:00: Mon 16 Feb 10:00 local =
     * 08:00 UTC. */
    s_assert_due (p, team, SLA_FIRST_RESPONSE, s_utc (2026, 2, 13, 15, 0),
                  s_utc (2026, 2, 16, 8, 0), s_utc (2026, 2, 16, 8, 0));
    /* Fri 13 Feb 19:00 local = 17:00 UTC, after closing: both hours on
     * Monday, 09:00 to 11:00 local = 09:00 UTC. */
    s_assert_due (p, team, SLA_FIRST_RESPONSE, s_utc (2026, 2, 13, 17, 0),
                  s_utc (2026, 2, 16, 9, 0), s_utc (2026, 2, 16, 9, 0));
    sla_policy_destroy (&p);
    sla_calendar_destroy (&team);
    assert_null (team);
}

/* A holiday is closed all day: Christmas on Friday 25 December 2026. */
static void
test_business_hours_holiday (void **state)
{
    sla_calendar_t *open =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}");
    sla_calendar_t *closed =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\","
                    " \"holidays\": [\"2026-01-01\", \"2026-12-25\"]}");
    sla_policy_t *p = s_policy ("{\"clock\": \"business\", \"first_response_minutes\": 120}");
    (void)state;
    /* Thu 24 Dec 17:00 local = 15:00 UTC: 1 h Thursday, then 1 h from
     * Friday 09:00 (10:00 local = 08:00 UTC) without the holiday... */
    s_assert_due (p, open, SLA_FIRST_RESPONSE, s_utc (2026, 12, 24, 15, 0),
                  s_utc (2026, 12, 25, 8, 0), s_utc (2026, 12, 25, 8, 0));
    /* ...and from Monday 28 Dec 09:00 with it: 10:00 local = 08:00 UTC. */
    s_assert_due (p, closed, SLA_FIRST_RESPONSE, s_utc (2026, 12, 24, 15, 0),
                  s_utc (2026, 12, 28, 8, 0), s_utc (2026, 12, 28, 8, 0));
    sla_policy_destroy (&p);
    sla_calendar_destroy (&open);
    sla_calendar_destroy (&closed);
}

/* Europe/Kyiv's DST changes: a 24-hour wall-clock SLA is 24 real hours,
 * so the shop's clock shows one hour more or less at its due time; an
 * 8-business-hour SLA counts the hours the shop is open, which a night
 * shift spanning the change has one fewer (March) or one more (October)
 * of, and a day shift opens at 09:00 local on either side. */
static void
test_dst_kyiv_wall_and_business (void **state)
{
    sla_policy_t *wall = s_policy ("{\"clock\": \"wall\", \"first_response_minutes\": 1440}");
    sla_policy_t *night = s_policy (
        "{\"clock\": \"business\", \"first_response_minutes\": 480,"
        " \"business_hours\": {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-sun 00:00-08:00\"}}");
    sla_policy_t *day = s_policy (
        "{\"clock\": \"business\", \"first_response_minutes\": 480,"
        " \"business_hours\": {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}}");
    (void)state;

    /* March. Sat 28 Mar 12:00 EET = 10:00 UTC; + 24 h = Sun 29 Mar 10:00
     * UTC, which Kyiv's clock shows as 13:00 EEST. */
    s_assert_due (wall, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 3, 28, 10, 0),
                  s_utc (2026, 3, 29, 10, 0), s_utc (2026, 3, 29, 10, 0));
    /* The night desk from Sun 29 Mar 00:00 EET (Sat 22:00 UTC): its shift
     * to 08:00 EEST (05:00 UTC) lasts 7 real hours; the 8th is Monday's
     * first, from 00:00 EEST (Sun 21:00 UTC): due Sun 29 Mar 22:00 UTC,
     * Monday 01:00 local. */
    s_assert_due (night, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 3, 28, 22, 0),
                  s_utc (2026, 3, 29, 22, 0), s_utc (2026, 3, 29, 22, 0));
    /* The day shift from Fri 27 Mar 14:00 EET (12:00 UTC): 4 h to 18:00
     * EET (16:00 UTC), then Monday 09:00 EEST (06:00 UTC) + 4 h = 10:00
     * UTC, 13:00 local (a fixed UTC+2 would say 11:00 UTC). */
    s_assert_due (day, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 3, 27, 12, 0),
                  s_utc (2026, 3, 30, 10, 0), s_utc (2026, 3, 30, 10, 0));

    /* October. Sat 24 Oct 12:00 EEST = 09:00 UTC; + 24 h = Sun 25 Oct
     * 09:00 UTC, which Kyiv's clock shows as 11:00 EET. */
    s_assert_due (wall, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 10, 24, 9, 0),
                  s_utc (2026, 10, 25, 9, 0), s_utc (2026, 10, 25, 9, 0));
    /* The night desk from Sun 25 Oct 00:00 EEST (Sat 21:00 UTC): its
     * shift to 08:00 EET (06:00 UTC) lasts 9 real hours, so 8 are done at
     * 05:00 UTC, 07:00 local. */
    s_assert_due (night, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 10, 24, 21, 0),
                  s_utc (2026, 10, 25, 5, 0), s_utc (2026, 10, 25, 5, 0));
    /* The day shift from Fri 23 Oct 14:00 EEST (11:00 UTC): 4 h to 18:00
     * EEST (15:00 UTC), then Monday 26 Oct 09:00 EET (07:00 UTC) + 4 h =
     * 11:00 UTC, 13:00 local. */
    s_assert_due (day, NULL, SLA_FIRST_RESPONSE, s_utc (2026, 10, 23, 11, 0),
                  s_utc (2026, 10, 26, 11, 0), s_utc (2026, 10, 26, 11, 0));
    sla_policy_destroy (&wall);
    sla_policy_destroy (&night);
    sla_policy_destroy (&day);
}

/* --- wall clock and warnings ------------------------------------------ */

/* The marketplace's "answer within 24 hours": nights, the weekend and the
 * team's hours do not matter; 80% of 24 h is 19 h 12 min. */
static void
test_marketplace_24h_wall_clock (void **state)
{
    sla_calendar_t *team =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}");
    sla_policy_t *p =
        s_policy ("{\"name\": \"marketplace 24h\", \"inbox\": \"rozetka-main\","
                  " \"clock\": \"wall\", \"first_response_minutes\": 1440,"
                  " \"next_response_minutes\": 1440, \"warning\": {\"percent\": 80}}");
    sla_timer_t t;
    char err[256] = "";
    int64_t start = s_utc (2026, 2, 13, 15, 0); /* Fri 13 Feb 17:00 local */
    int64_t due = s_utc (2026, 2, 14, 15, 0);   /* Saturday, + 24 h */
    int64_t warn = s_utc (2026, 2, 14, 10, 12); /* + 19 h 12 min */
    (void)state;
    s_assert_due (p, team, SLA_FIRST_RESPONSE, start, due, warn);
    s_assert_due (p, NULL, SLA_NEXT_RESPONSE, start, due, warn);
    assert_int_equal (sla_timer_start (p, team, SLA_FIRST_RESPONSE, start, &t, err, sizeof err), 1);
    s_assert_state (&t, start, SLA_OK, 24 * HOUR_MS, false);
    s_assert_state (&t, warn - 1, SLA_OK, 4 * HOUR_MS + 48 * MIN_MS + 1, false);
    s_assert_state (&t, warn, SLA_WARNING, 4 * HOUR_MS + 48 * MIN_MS, false);
    s_assert_state (&t, due - 1, SLA_WARNING, 1, false);
    /* A reply at the due instant is late. */
    s_assert_state (&t, due, SLA_BREACHED, 0, false);
    s_assert_state (&t, due + HOUR_MS, SLA_BREACHED, -HOUR_MS, false);
    sla_policy_destroy (&p);
    sla_calendar_destroy (&team);
}

/* Warnings in business time: 80% of 2 business hours is 96 min of them;
 * "15 minutes before" is 105 min; a lead longer than the target warns at
 * once. */
static void
test_warning_in_business_time (void **state)
{
    sla_calendar_t *team =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}");
    sla_policy_t *pct = s_policy ("{\"clock\": \"business\", \"first_response_minutes\": 120,"
                                  " \"warning\": {\"percent\": 80}}");
    sla_policy_t *before = s_policy ("{\"clock\": \"business\", \"first_response_minutes\": 120,"
                                     " \"next_response_minutes\": 10,"
                                     " \"warning\": {\"minutes_before\": 15}}");
    sla_timer_t t;
    char err[256] = "";
    int64_t start = s_utc (2026, 2, 13, 15, 0); /* Fri 13 Feb 17:00 local */
    (void)state;
    /* 60 min on Friday, then Monday from 09:00 local (07:00 UTC): the
     * warning after 36 more, 09:36 local; the due time after 60 more,
     * 10:00 local (08:00 UTC). */
    s_assert_due (pct, team, SLA_FIRST_RESPONSE, start, s_utc (2026, 2, 16, 8, 0),
                  s_utc (2026, 2, 16, 7, 36));
    /* 105 min: 45 on Monday, 09:45 local. */
    s_assert_due (before, team, SLA_FIRST_RESPONSE, start, s_utc (2026, 2, 16, 8, 0),
                  s_utc (2026, 2, 16, 7, 45));
    /* A 10-min target with a 15-min lead: warned from the start; due in
     * Friday's last hour, 17:10 local. */
    s_assert_due (before, team, SLA_NEXT_RESPONSE, start, s_utc (2026, 2, 13, 15, 10), start);
    /* The weekend uses none of the target: Saturday noon is still ok. */
    assert_int_equal (sla_timer_start (pct, team, SLA_FIRST_RESPONSE, start, &t, err, sizeof err),
                      1);
    s_assert_state (&t, s_utc (2026, 2, 14, 10, 0), SLA_OK,
                    s_utc (2026, 2, 16, 8, 0) - s_utc (2026, 2, 14, 10, 0), false);
    s_assert_state (&t, s_utc (2026, 2, 16, 7, 36), SLA_WARNING, 24 * MIN_MS, false);
    sla_policy_destroy (&pct);
    sla_policy_destroy (&before);
    sla_calendar_destroy (&team);
}

/* --- paused clocks ---------------------------------------------------- */

/* Snoozed: the business time the snooze covered is added; a snooze over
 * the night adds nothing. */
static void
test_paused_while_snoozed_business (void **state)
{
    sla_calendar_t *team =
        s_calendar ("{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}");
    sla_policy_t *p = s_policy ("{\"clock\": \"business\", \"first_response_minutes\": 240,"
                                " \"warning\": {\"percent\": 80}}");
    sla_timer_t t, before;
    char err[256] = "";
    (void)state;
    /* Mon 16 Feb 10:00 local (08:00 UTC): due 14:00 local (12:00 UTC),
     * warning at 3 h 12 min, 13:12 local (11:12 UTC). */
    assert_int_equal (sla_timer_start (p, team, SLA_FIRST_RESPONSE, s_utc (2026, 2, 16, 8, 0), &t,
                                       err, sizeof err),
                      1);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 16, 12, 0), "due");
    s_assert_ms (t.warn_ms, s_utc (2026, 2, 16, 11, 12), "warning");
    /* Snoozed at 11:00 local (09:00 UTC), 1 h used. A second pause (the
     * conversation going pending) keeps the first's start. */
    sla_pause (&t, s_utc (2026, 2, 16, 9, 0));
    sla_pause (&t, s_utc (2026, 2, 16, 10, 0));
    /* At 17:00 local, past the old due time, still ok: 3 h were left. */
    s_assert_state (&t, s_utc (2026, 2, 16, 15, 0), SLA_OK, 3 * HOUR_MS, true);
    /* Resumed Tue 17 Feb 10:00 local (08:00 UTC): 3 h left, so due 13:00
     * local (11:00 UTC), the warning 2 h 12 min on, 12:12 local (10:12
     * UTC). Equally: the snooze covered 7 + 1 business hours. */
    assert_int_equal (sla_resume (p, team, &t, s_utc (2026, 2, 17, 8, 0), err, sizeof err), 0);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 17, 11, 0), "due after the snooze");
    s_assert_ms (t.warn_ms, s_utc (2026, 2, 17, 10, 12), "warning after the snooze");
    s_assert_state (&t, s_utc (2026, 2, 17, 8, 0), SLA_OK, 3 * HOUR_MS, false);
    /* Resuming a running timer changes nothing. */
    before = t;
    assert_int_equal (sla_resume (p, team, &t, s_utc (2026, 2, 18, 8, 0), err, sizeof err), 0);
    assert_memory_equal (&before, &t, sizeof t);

    /* Mon 16 Feb 16:00 local (14:00 UTC): 2 h Monday, 2 h Tuesday, due
     * Tue 11:00 local (09:00 UTC); snoozed 18:30 to 08:30 local: no open
     * hour in between, the due time stays. */
    assert_int_equal (sla_timer_start (p, team, SLA_FIRST_RESPONSE, s_utc (2026, 2, 16, 14, 0), &t,
                                       err, sizeof err),
                      1);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 17, 9, 0), "due");
    sla_pause (&t, s_utc (2026, 2, 16, 16, 30));
    assert_int_equal (sla_resume (p, team, &t, s_utc (2026, 2, 17, 6, 30), err, sizeof err), 0);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 17, 9, 0), "due after a night's snooze");
    sla_policy_destroy (&p);
    sla_calendar_destroy (&team);
}

/* Pending on a wall-clock policy: every hour of the pause is added, and a
 * warning or breach that came before the pause stays. */
static void
test_paused_while_pending_wall_clock (void **state)
{
    sla_policy_t *p =
        s_policy ("{\"inbox\": \"rozetka-main\", \"clock\": \"wall\","
                  " \"first_response_minutes\": 1440, \"warning\": {\"percent\": 80}}");
    sla_timer_t t;
    char err[256] = "";
    int64_t start = s_utc (2026, 2, 13, 15, 0); /* due Sat 15:00 UTC, warning Sat 10:12 UTC */
    (void)state;
    /* Pending Fri 16:00 to Sat 10:00 UTC, 18 h: due Sun 09:00, warning Sun
     * 04:12 UTC. */
    assert_int_equal (sla_timer_start (p, NULL, SLA_FIRST_RESPONSE, start, &t, err, sizeof err), 1);
    sla_pause (&t, s_utc (2026, 2, 13, 16, 0));
    assert_int_equal (sla_resume (p, NULL, &t, s_utc (2026, 2, 14, 10, 0), err, sizeof err), 0);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 15, 9, 0), "due");
    s_assert_ms (t.warn_ms, s_utc (2026, 2, 15, 4, 12), "warning");

    /* Pending Sat 12:00 to 14:00 UTC, after the warning: the warning
     * stays at 10:12 and the state while paused is still a warning; the
     * due time moves 2 h, to 17:00. */
    assert_int_equal (sla_timer_start (p, NULL, SLA_FIRST_RESPONSE, start, &t, err, sizeof err), 1);
    sla_pause (&t, s_utc (2026, 2, 14, 12, 0));
    s_assert_state (&t, s_utc (2026, 2, 14, 13, 0), SLA_WARNING, 3 * HOUR_MS, true);
    assert_int_equal (sla_resume (p, NULL, &t, s_utc (2026, 2, 14, 14, 0), err, sizeof err), 0);
    s_assert_ms (t.warn_ms, s_utc (2026, 2, 14, 10, 12), "warning");
    s_assert_ms (t.due_ms, s_utc (2026, 2, 14, 17, 0), "due");

    /* Pending from Sat 16:00 UTC, after the breach: still breached. */
    assert_int_equal (sla_timer_start (p, NULL, SLA_FIRST_RESPONSE, start, &t, err, sizeof err), 1);
    sla_pause (&t, s_utc (2026, 2, 14, 16, 0));
    s_assert_state (&t, s_utc (2026, 2, 14, 18, 0), SLA_BREACHED, -HOUR_MS, true);
    assert_int_equal (sla_resume (p, NULL, &t, s_utc (2026, 2, 14, 20, 0), err, sizeof err), 0);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 14, 15, 0), "due");

    /* Pending from the due instant itself: breached already, it stays. */
    assert_int_equal (sla_timer_start (p, NULL, SLA_FIRST_RESPONSE, start, &t, err, sizeof err), 1);
    sla_pause (&t, s_utc (2026, 2, 14, 15, 0));
    assert_int_equal (sla_resume (p, NULL, &t, s_utc (2026, 2, 14, 20, 0), err, sizeof err), 0);
    s_assert_ms (t.due_ms, s_utc (2026, 2, 14, 15, 0), "due");
    sla_policy_destroy (&p);
}

/* --- which policy ----------------------------------------------------- */

static void
test_select_most_specific_wins (void **state)
{
    sla_policy_t *all = s_policy ("{\"name\": \"default\", \"clock\": \"wall\","
                                  " \"resolution_minutes\": 4320}");
    sla_policy_t *support = s_policy ("{\"name\": \"support\", \"team\": \"support\","
                                      " \"clock\": \"wall\", \"first_response_minutes\": 60}");
    sla_policy_t *support2 = s_policy ("{\"name\": \"support again\", \"team\": \"support\","
                                       " \"clock\": \"wall\", \"first_response_minutes\": 30}");
    sla_policy_t *sales = s_policy ("{\"name\": \"sales\", \"team\": \"sales\","
                                    " \"clock\": \"wall\", \"first_response_minutes\": 15}");
    sla_policy_t *insta = s_policy ("{\"name\": \"instagram\", \"channel\": \"instagram\","
                                    " \"clock\": \"wall\", \"first_response_minutes\": 30}");
    sla_policy_t *market = s_policy ("{\"name\": \"marketplace\", \"inbox\": \"rozetka-main\","
                                     " \"clock\": \"wall\", \"first_response_minutes\": 1440}");
    /* The inbox's policy listed first, the default last: order does not
     * rank them. */
    const sla_policy_t *list[] = {market, support, insta, support2, sales, all};
    const sla_policy_t *no_default[] = {market, support, insta};
    (void)state;
    /* The inbox over its channel and its team. */
    assert_ptr_equal (sla_select (list, 6, "support", "rozetka-main", RETAIN__V1__CHANNEL__WEBCHAT),
                      market);
    /* The channel over the team. */
    assert_ptr_equal (sla_select (list, 6, "support", "shop-ig", RETAIN__V1__CHANNEL__INSTAGRAM),
                      insta);
    /* The team, the first of two for it. */
    assert_ptr_equal (sla_select (list, 6, "support", "shop-tg", RETAIN__V1__CHANNEL__TELEGRAM),
                      support);
    assert_ptr_equal (sla_select (list, 6, "sales", "shop-tg", RETAIN__V1__CHANNEL__TELEGRAM),
                      sales);
    /* No team's policy (another team, or none): the default. */
    assert_ptr_equal (sla_select (list, 6, "returns", "shop-tg", RETAIN__V1__CHANNEL__TELEGRAM),
                      all);
    assert_ptr_equal (sla_select (list, 6, NULL, NULL, RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED),
                      all);
    /* Without a default, nothing. */
    assert_null (sla_select (no_default, 3, "returns", "shop-tg", RETAIN__V1__CHANNEL__TELEGRAM));
    assert_null (
        sla_select (no_default, 0, "support", "rozetka-main", RETAIN__V1__CHANNEL__WEBCHAT));
    sla_policy_destroy (&all);
    sla_policy_destroy (&support);
    sla_policy_destroy (&support2);
    sla_policy_destroy (&sales);
    sla_policy_destroy (&insta);
    sla_policy_destroy (&market);
}

/* --- the stored form -------------------------------------------------- */

/* Every documented field lands where the daemon reads it. */
static void
test_policy_fields (void **state)
{
    sla_policy_t *p = s_policy (
        "{\"name\": \"Підтримка 24/7\", \"channel\": \"telegram\", \"clock\": \"business\","
        " \"business_hours\": {\"zone\": \"America/New_York\", \"weekly\": \"mon-sun 00:00-24:00\","
        "   \"holidays\": []},"
        " \"first_response_minutes\": 5, \"next_response_minutes\": 10,"
        " \"resolution_minutes\": 527040, \"warning\": {\"minutes_before\": 2},"
        " \"escalation\": {\"flag_supervisor\": false, \"reassign\": true,"
        "   \"reassign_team\": \"senior\"}}");
    sla_policy_t *plain = s_policy ("{\"team\": \"support\", \"clock\": \"wall\","
                                    " \"first_response_minutes\": 60}");
    int64_t due, warn;
    char err[256] = "";
    (void)state;
    assert_string_equal (p->name, "Підтримка 24/7");
    assert_int_equal (p->scope, SLA_SCOPE_CHANNEL);
    assert_int_equal (p->channel, RETAIN__V1__CHANNEL__TELEGRAM);
    assert_int_equal (p->clock, SLA_CLOCK_BUSINESS);
    assert_non_null (p->calendar);
    assert_string_equal (rt_tz_name (p->calendar->tz), "America/New_York");
    assert_int_equal (p->target_ms[SLA_FIRST_RESPONSE], 5 * MIN_MS);
    assert_int_equal (p->target_ms[SLA_NEXT_RESPONSE], 10 * MIN_MS);
    assert_int_equal (p->target_ms[SLA_RESOLUTION], 527040 * MIN_MS);
    assert_int_equal (p->warn_percent, 0);
    assert_int_equal (p->warn_before_ms, 2 * MIN_MS);
    assert_false (p->escalation.flag_supervisor);
    assert_true (p->escalation.reassign);
    assert_string_equal (p->escalation.reassign_team, "senior");
    /* Defaults: unnamed, a breach flags and moves nothing, no warning. */
    assert_string_equal (plain->name, "");
    assert_int_equal (plain->scope, SLA_SCOPE_TEAM);
    assert_string_equal (plain->scope_id, "support");
    assert_true (plain->escalation.flag_supervisor);
    assert_false (plain->escalation.reassign);
    assert_null (plain->escalation.reassign_team);
    assert_null (plain->calendar);
    /* A target it does not set is not measured. */
    assert_int_equal (sla_due (plain, NULL, SLA_RESOLUTION, 0, &due, &warn, err, sizeof err), 0);
    assert_int_equal (sla_due (plain, NULL, SLA_FIRST_RESPONSE, 0, &due, &warn, err, sizeof err),
                      1);
    assert_int_equal (due, HOUR_MS);
    assert_int_equal (warn, HOUR_MS);
    assert_string_equal (sla_kind_name (SLA_NEXT_RESPONSE), "next_response");
    assert_string_equal (sla_status_name (SLA_BREACHED), "breached");
    sla_policy_destroy (&p);
    sla_policy_destroy (&plain);
}

/* A business policy with no calendar anywhere cannot be due: an error
 * that says so, not a guess. */
static void
test_business_without_calendar_refused (void **state)
{
    sla_policy_t *p = s_policy ("{\"clock\": \"business\", \"first_response_minutes\": 60}");
    sla_timer_t t = {.start_ms = 0, .due_ms = HOUR_MS, .warn_ms = HOUR_MS};
    int64_t due = 7, warn = 7;
    char err[256] = "";
    (void)state;
    assert_int_equal (sla_due (p, NULL, SLA_FIRST_RESPONSE, 0, &due, &warn, err, sizeof err), -1);
    assert_non_null (strstr (err, "calendar"));
    assert_int_equal (due, 7);
    err[0] = '\0';
    sla_pause (&t, 0);
    assert_int_equal (sla_resume (p, NULL, &t, HOUR_MS, err, sizeof err), -1);
    assert_non_null (strstr (err, "calendar"));
    assert_true (t.paused);
    sla_policy_destroy (&p);
}

/* Every wrong policy is refused with its reason. */
static void
test_bad_policies_refused (void **state)
{
    static const struct {
        const char *json;   /* the policy */
        const char *reason; /* a part of the reason */
    } cases[] = {
        {"", "not JSON"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60", "not JSON"},
        {"[1, 2]", "must be a JSON object"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"clock\": \"business\"}",
         "not JSON: duplicate object key"},
        /* a misspelt field */
        {"{\"clock\": \"wall\", \"first_reponse_minutes\": 60}",
         "unknown field \"first_reponse_minutes\""},
        {"{\"clock\": \"wall\", \"first_response_minutes\": -5}",
         "first_response_minutes must not be negative"},
        {"{\"clock\": \"wall\", \"next_response_minutes\": 0}",
         "next_response_minutes must be at least 1 minute"},
        {"{\"clock\": \"wall\", \"resolution_minutes\": 2.5}",
         "resolution_minutes must be a whole number of minutes"},
        {"{\"clock\": \"wall\", \"resolution_minutes\": \"2h\"}",
         "resolution_minutes must be a whole number of minutes"},
        {"{\"clock\": \"wall\", \"resolution_minutes\": 527041}",
         "resolution_minutes is more than 527040 minutes"},
        {"{\"clock\": \"wall\"}", "no target"},
        {"{\"first_response_minutes\": 60}", "clock missing"},
        {"{\"clock\": \"business hours\", \"first_response_minutes\": 60}",
         "clock must be \"business\""},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}}",
         "business_hours with clock \"wall\""},
        /* the zone, the hours, the holidays */
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyev\", \"weekly\": \"mon-fri 09:00-18:00\"}}",
         "business_hours: zone: unknown time zone \"Europe/Kyev\""},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"GMT+2\", \"weekly\": \"mon-fri 09:00-18:00\"}}",
         "business_hours: zone: unknown time zone \"GMT+2\""},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"weekly\": \"mon-fri 09:00-18:00\"}}",
         "business_hours: zone must be a string"},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 9-18\"}}",
         "business_hours: weekly: bad interval \"9-18\""},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fry 09:00-18:00\"}}",
         "business_hours: weekly: unknown day"},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00; fri 17:00-20:00\"}}",
         "overlaps"},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-sun closed\"}}",
         "business_hours: weekly: no opening hours at all"},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\","
         " \"holidays\": [\"2026-13-01\"]}}",
         "business_hours: holidays[0]: holiday \"2026-13-01\" is not a date"},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\","
         " \"holidays\": \"2026-12-25\"}}",
         "business_hours: holidays must be an array"},
        {"{\"clock\": \"business\", \"first_response_minutes\": 60, \"business_hours\":"
         " {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\", \"tz\": \"UTC\"}}",
         "business_hours: unknown field \"tz\" in business hours"},
        /* what it applies to */
        {"{\"team\": \"support\", \"inbox\": \"rozetka-main\", \"clock\": \"wall\","
         " \"first_response_minutes\": 60}",
         "one of team, channel or inbox, not two"},
        {"{\"channel\": \"fax\", \"clock\": \"wall\", \"first_response_minutes\": 60}",
         "channel must be one of telegram"},
        {"{\"inbox\": \"Rozetka Main\", \"clock\": \"wall\", \"first_response_minutes\": 60}",
         "inbox \"Rozetka Main\" is not an inbox id"},
        {"{\"team\": \"\", \"clock\": \"wall\", \"first_response_minutes\": 60}",
         "team must not be empty"},
        {"{\"team\": 7, \"clock\": \"wall\", \"first_response_minutes\": 60}",
         "team must be a string"},
        {"{\"name\": \"0123456789012345678901234567890123456789012345678901234567890123456789\","
         " \"clock\": \"wall\", \"first_response_minutes\": 60}",
         "name is longer than 64 bytes"},
        /* the warning */
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"warning\": {\"percent\": 100}}",
         "warning.percent must be from 1 to 99"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"warning\": {\"percent\": 0}}",
         "warning.percent must be from 1 to 99"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"warning\": {\"percent\": 80.5}}",
         "warning.percent must be a whole number"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60,"
         " \"warning\": {\"percent\": 80, \"minutes_before\": 10}}",
         "percent or minutes_before, not both"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"warning\": {}}",
         "warning: set percent or minutes_before"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60,"
         " \"warning\": {\"minutes_before\": -10}}",
         "warning.minutes_before must not be negative"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"warning\": {\"at\": 80}}",
         "unknown field \"at\" in warning"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60, \"warning\": 80}",
         "warning must be an object"},
        /* the escalation */
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60,"
         " \"escalation\": {\"reassign_team\": \"senior\"}}",
         "reassign_team without \"reassign\": true"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60,"
         " \"escalation\": {\"reassign\": \"yes\"}}",
         "escalation.reassign must be true or false"},
        {"{\"clock\": \"wall\", \"first_response_minutes\": 60,"
         " \"escalation\": {\"notify\": true}}",
         "unknown field \"notify\" in escalation"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        sla_policy_t *p = sla_policy_parse (cases[i].json, strlen (cases[i].json), err, sizeof err);
        if (p) {
            sla_policy_destroy (&p);
            fail_msg ("accepted: %s", cases[i].json);
        }
        if (!strstr (err, cases[i].reason))
            fail_msg ("%s\n  refused with \"%s\"\n  expected a reason with \"%s\"", cases[i].json,
                      err, cases[i].reason);
    }
    /* A team's calendar is the same object, and refused the same way. */
    {
        char err[256] = "";
        json_t *obj = json_pack ("{s:s, s:s}", "zone", "Mars/Olympus", "weekly", "mon 09:00-18:00");
        assert_null (sla_calendar_from_json (obj, err, sizeof err));
        assert_non_null (strstr (err, "zone: unknown time zone \"Mars/Olympus\""));
        json_decref (obj);
        assert_null (sla_calendar_from_json (NULL, err, sizeof err));
        assert_non_null (strstr (err, "must be an object"));
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_business_hours_across_midnight),
        cmocka_unit_test (test_business_hours_weekend),
        cmocka_unit_test (test_business_hours_holiday),
        cmocka_unit_test (test_dst_kyiv_wall_and_business),
        cmocka_unit_test (test_marketplace_24h_wall_clock),
        cmocka_unit_test (test_warning_in_business_time),
        cmocka_unit_test (test_paused_while_snoozed_business),
        cmocka_unit_test (test_paused_while_pending_wall_clock),
        cmocka_unit_test (test_select_most_specific_wins),
        cmocka_unit_test (test_policy_fields),
        cmocka_unit_test (test_business_without_calendar_refused),
        cmocka_unit_test (test_bad_policies_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
