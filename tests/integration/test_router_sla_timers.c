/*
 * routerd's SLA clocks against a real PostgreSQL, on a moved clock: a
 * policy of 2 business hours, Monday to Friday 09:00-18:00 in Kyiv, asked
 * on Friday at 17:00 is due on Monday at 10:00; the tick warns at 80%
 * (Monday 09:36) and breaches at 10:00 with one SlaBreached naming the
 * conversation, the operator, the kind and the due time, the conversation
 * flagged for a supervisor and reassigned to another of its team; no
 * second SlaBreached after many ticks or a replayed one; a reply in time
 * breaches nothing and the next wait starts the next-response clock; a
 * snooze and a pending spell move the due time by what they covered; the
 * marketplace's 24 wall-clock hours on a channel beat the team's policy;
 * bad policies and hours refused with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "identity.h"
#include "retain/v1/conversation.pb-c.h"
#include "retain/v1/envelope.pb-c.h"
#include "routing.h"
#include "rt_clock.h"
#include "rt_db.h"
#include "rt_test.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

#define MIN_MS  60000LL
#define HOUR_MS (60 * MIN_MS)

/* Instants in Kyiv (UTC+2 in January 2026), unix ms. */
#define FRI_1700 1767970800000LL /* Friday 9 January, 17:00 */
#define FRI_1830 1767976200000LL /* Friday, 18:30: closed */
#define MON_0936 1768203360000LL /* Monday 12 January, 09:36: 80% of 2 business hours */
#define MON_0950 1768204200000LL /* Monday, 09:50 */
#define MON_1000 1768204800000LL /* Monday, 10:00: due */

#define HOURS "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}"
#define SUPPORT_2H                                                                                 \
    "{\"name\": \"support 2h\", \"team\": \"support\", \"clock\": \"business\","                   \
    " \"first_response_minutes\": 120, \"next_response_minutes\": 120,"                            \
    " \"warning\": {\"percent\": 80}, \"escalation\": {\"reassign\": true}}"
/* The marketplace's rule; its messages reach the shop by e-mail. */
#define MARKETPLACE_24H                                                                            \
    "{\"name\": \"marketplace 24h\", \"channel\": \"email\", \"clock\": \"wall\","                 \
    " \"first_response_minutes\": 1440}"

static rt_test_router_t s_f;

static const routing_config_t s_cfg = {
    .offline_grace_ms = 10 * MIN_MS,
    .heartbeat_timeout_ms = 0,
    .auto_resolve_ms = 0,
    .batch = 100,
};

/* --- helpers --- */

static int
s_setup (void **state)
{
    static const rt_test_router_opts_t opts = {.routing = true, .clock = true};
    (void)state;
    rt_test_router_open (&s_f, "router_sla_timers", &opts);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_router_close (&s_f);
    return 0;
}

/* Sets this process's clock to the instant `ms`. */
static void
s_clock_at (int64_t ms)
{
    int64_t wall, mono, real;
    rt_clock_offsets (&wall, &mono);
    real = rt_clock_now_ms () - wall;
    assert_int_equal (rt_clock_file_set (s_f.clock, ms - real, mono + (ms - real - wall)), 0);
}

/* Runs one routing call in a transaction of its own, failing on an error. */
#define S_TX(call)                                                                                 \
    do {                                                                                           \
        routing_status_t st_;                                                                      \
        assert_int_equal (rt_db_begin (s_f.db), 0);                                                \
        st_ = (call);                                                                              \
        if (st_ != ROUTING_OK)                                                                     \
            fail_msg ("%s: %d %s", #call, st_, err);                                               \
        assert_int_equal (rt_db_commit (s_f.db), 0);                                               \
    } while (0)

/* The team "support" with its hours and policy, olena and petro online,
 * the marketplace's policy; the clock on Friday at 17:00. */
static int
s_clean (void **state)
{
    char err[512] = "";
    (void)state;
    rt_test_router_clean (&s_f);
    s_clock_at (FRI_1700);
    rt_test_router_sql (
        s_f.pg,
        "INSERT INTO routing.teams (id, name, manager_wait_ms) VALUES ('support', 'Support', 0)");
    rt_test_router_sql (
        s_f.pg,
        "INSERT INTO routing.operators (id, team_id, capacity) VALUES ('olena', 'support', 5),"
        " ('petro', 'support', 5)");
    S_TX (routing_team_hours_set (s_f.db, "support", HOURS, err, sizeof err));
    S_TX (routing_sla_policy_set (s_f.db, SUPPORT_2H, err, sizeof err));
    S_TX (routing_sla_policy_set (s_f.db, MARKETPLACE_24H, err, sizeof err));
    S_TX (routing_presence (s_f.db, "olena", "online", rt_clock_now_ms (), NULL, err, sizeof err));
    S_TX (routing_presence (s_f.db, "petro", "online", rt_clock_now_ms (), NULL, err, sizeof err));
    return 0;
}

/* A customer's message to the support team at `at`. */
static routing_inbound_result_t
s_inbound (const char *customer, Retain__V1__Channel channel, int64_t at)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    rt_uuid_t u = rt_uuid_v7 ();
    routing_inbound_result_t out;
    routing_inbound_t in;

    rt_uuid_format (&u, id);
    memset (&in, 0, sizeof in);
    in.customer_id = customer;
    in.event_id = id;
    in.channel = channel;
    in.inbox = "main";
    in.text = "Де моя посилка?";
    in.team_id = "support";
    in.occurred_at = at;
    S_TX (routing_inbound (s_f.db, &in, &out, err, sizeof err));
    return out;
}

static void
s_reply (const char *conv, const char *op)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    rt_uuid_t u = rt_uuid_v7 ();
    routing_outbound_result_t res;
    routing_outbound_t in;

    rt_uuid_format (&u, id);
    memset (&in, 0, sizeof in);
    in.conversation_id = conv;
    in.operator_id = op;
    in.message_id = id;
    in.text = "Вже в дорозі";
    S_TX (routing_outbound (s_f.db, &in, &res, err, sizeof err));
}

static routing_tick_result_t
s_tick (int64_t now)
{
    char err[512] = "";
    routing_tick_result_t r;
    S_TX (routing_tick (s_f.db, &s_cfg, now, &r, err, sizeof err));
    return r;
}

/* A clock's column (due_at, warn_at, ...) as unix ms, -1 for none. */
static long long
s_timer_ms (const char *conv, const char *kind, const char *col)
{
    return rt_test_router_long (
        s_f.pg,
        "SELECT COALESCE((SELECT (extract(epoch FROM %s) * 1000)::bigint"
        " FROM routing.sla_timers WHERE conversation_id = '%s' AND kind = '%s'), -1)",
        col, conv, kind);
}

/* The payloads of the outbox's SlaBreached events: how many, the last
 * into *last (free with retain__v1__sla_breached__free_unpacked) when
 * last is not NULL and there is one. */
static long long
s_breaches (Retain__V1__SlaBreached **last)
{
    PGresult *res = PQexec (s_f.pg, "SELECT envelope FROM outbox.pending ORDER BY id");
    long long n = 0;
    int i;
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    if (last)
        *last = NULL;
    for (i = 0; i < PQntuples (res); i++) {
        size_t len;
        unsigned char *raw = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, i, 0), &len);
        Retain__V1__Envelope *env = retain__v1__envelope__unpack (NULL, len, raw);
        assert_non_null (env);
        if (strcmp (env->type, "SlaBreached") == 0) {
            n++;
            assert_string_equal (env->stream, "conversation");
            if (last) {
                if (*last)
                    retain__v1__sla_breached__free_unpacked (*last, NULL);
                *last =
                    retain__v1__sla_breached__unpack (NULL, env->payload.len, env->payload.data);
                assert_non_null (*last);
                assert_string_equal (env->key, (*last)->customer_id);
            }
        }
        retain__v1__envelope__free_unpacked (env, NULL);
        PQfreemem (raw);
    }
    PQclear (res);
    return n;
}

/* Whether the conversation carries the supervisor flag. */
static bool
s_flagged (const char *conv)
{
    return rt_test_router_long (s_f.pg,
                                "SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                                " AND 'supervisor' = ANY (flags)",
                                conv) == 1;
}

/* --- tests --- */

static void
test_breach_across_the_weekend (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], err[512] = "", text[128];
    routing_sla_warning_t w[4];
    Retain__V1__SlaBreached *b;
    routing_inbound_result_t in;
    routing_tick_result_t r;
    size_t n;
    (void)state;

    rt_test_router_customer (s_f.pg, cust, NULL, NULL);
    in = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, FRI_1700);
    assert_string_equal (in.assignee, "olena");
    /* One business hour on Friday, one on Monday. */
    assert_int_equal (s_timer_ms (in.conversation_id, "first_response", "due_at"), MON_1000);
    assert_int_equal (s_timer_ms (in.conversation_id, "first_response", "warn_at"), MON_0936);
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT policy FROM routing.sla_timers WHERE conversation_id = '%s'",
                         in.conversation_id);
    assert_string_equal (text, "support 2h");

    /* Friday evening, closed: nothing. */
    r = s_tick (FRI_1830);
    assert_int_equal (r.sla_warned, 0);
    assert_int_equal (r.sla_breached, 0);
    /* Monday 09:36: the warning, listed for the team and the operator. */
    r = s_tick (MON_0936);
    assert_int_equal (r.sla_warned, 1);
    assert_int_equal (r.sla_breached, 0);
    S_TX (routing_sla_warnings (s_f.db, NULL, "support", 0, w, 4, &n, err, sizeof err));
    assert_int_equal (n, 1);
    assert_string_equal (w[0].conversation_id, in.conversation_id);
    assert_string_equal (w[0].kind, "first_response");
    assert_string_equal (w[0].assignee, "olena");
    assert_int_equal (w[0].due_ms, MON_1000);
    assert_int_equal (w[0].warned_ms, MON_0936);
    S_TX (routing_sla_warnings (s_f.db, "petro", NULL, 0, w, 4, &n, err, sizeof err));
    assert_int_equal (n, 0);
    /* Warned once. */
    r = s_tick (MON_0936 + MIN_MS);
    assert_int_equal (r.sla_warned, 0);
    /* Due means before: one millisecond before, still in time. */
    r = s_tick (MON_1000 - 1);
    assert_int_equal (r.sla_breached, 0);
    assert_int_equal (s_breaches (NULL), 0);
    assert_false (s_flagged (in.conversation_id));

    r = s_tick (MON_1000);
    assert_int_equal (r.sla_breached, 1);
    assert_int_equal (s_breaches (&b), 1);
    assert_string_equal (b->conversation_id, in.conversation_id);
    assert_string_equal (b->customer_id, cust);
    assert_string_equal (b->operator_id, "olena");
    assert_string_equal (b->team_id, "support");
    assert_string_equal (b->kind, "first_response");
    assert_string_equal (b->policy, "support 2h");
    assert_int_equal (b->due_at, MON_1000);
    assert_int_equal (b->breached_at, MON_1000);
    assert_string_equal (b->escalation, "reassign");
    retain__v1__sla_breached__free_unpacked (b, NULL);
    assert_true (s_flagged (in.conversation_id));
    /* The escalation: to another of the team, with its reason. */
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT assignee FROM routing.conversations WHERE id = '%s'",
                         in.conversation_id);
    assert_string_equal (text, "petro");
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT body->>'reason' FROM routing.timeline WHERE conversation_id = '%s'"
                         " AND kind = 'assignment' ORDER BY seq DESC LIMIT 1",
                         in.conversation_id);
    assert_string_equal (text, "sla_escalation");
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'olena'"),
        0);
    /* A breached clock is no longer a warning. */
    S_TX (routing_sla_warnings (s_f.db, NULL, NULL, 0, w, 4, &n, err, sizeof err));
    assert_int_equal (n, 0);

    /* Once: a replayed tick, and many later ones. */
    r = s_tick (MON_1000);
    assert_int_equal (r.sla_breached, 0);
    for (int i = 1; i <= 5; i++) {
        r = s_tick (MON_1000 + i * HOUR_MS);
        assert_int_equal (r.sla_breached, 0);
    }
    assert_int_equal (s_breaches (NULL), 1);
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT assignee FROM routing.conversations WHERE id = '%s'",
                         in.conversation_id);
    assert_string_equal (text, "petro");
}

static void
test_reply_in_time_then_next_response (void **state)
{
    char cust[RT_UUID_STR_LEN + 1];
    Retain__V1__SlaBreached *b;
    routing_inbound_result_t in;
    routing_tick_result_t r;
    (void)state;

    rt_test_router_customer (s_f.pg, cust, NULL, NULL);
    in = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, FRI_1700);
    s_clock_at (MON_0950);
    s_reply (in.conversation_id, "olena");
    r = s_tick (MON_1000);
    assert_int_equal (r.sla_breached, 0);
    r = s_tick (MON_1000 + 2 * HOUR_MS);
    assert_int_equal (r.sla_warned, 0);
    assert_int_equal (r.sla_breached, 0);
    assert_int_equal (s_breaches (NULL), 0);
    assert_false (s_flagged (in.conversation_id));

    /* The next wait, Monday at noon: the next response clock. */
    s_clock_at (MON_1000 + 2 * HOUR_MS);
    s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, MON_1000 + 2 * HOUR_MS);
    assert_int_equal (s_timer_ms (in.conversation_id, "next_response", "due_at"),
                      MON_1000 + 4 * HOUR_MS);
    /* A second message of the same wait does not restart it. */
    s_clock_at (MON_1000 + 3 * HOUR_MS);
    s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, MON_1000 + 3 * HOUR_MS);
    assert_int_equal (s_timer_ms (in.conversation_id, "next_response", "due_at"),
                      MON_1000 + 4 * HOUR_MS);
    r = s_tick (MON_1000 + 4 * HOUR_MS);
    assert_int_equal (r.sla_breached, 1);
    assert_int_equal (s_breaches (&b), 1);
    assert_string_equal (b->kind, "next_response");
    assert_int_equal (b->due_at, MON_1000 + 4 * HOUR_MS);
    retain__v1__sla_breached__free_unpacked (b, NULL);
}

static void
test_snooze_and_pending_move_the_due_time (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], err[512] = "";
    routing_inbound_result_t in;
    routing_tick_result_t r;
    long long due;
    (void)state;

    rt_test_router_customer (s_f.pg, cust, NULL, NULL);
    s_clock_at (MON_1000);
    in = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, MON_1000);
    assert_int_equal (s_timer_ms (in.conversation_id, "first_response", "due_at"),
                      MON_1000 + 2 * HOUR_MS);

    /* Snoozed at 11:00 with an hour left, woken by the tick at 13:00: due
     * at 14:00 (the clock file moves in real time too: within a second). */
    s_clock_at (MON_1000 + HOUR_MS);
    S_TX (routing_snooze (s_f.db, in.conversation_id, MON_1000 + 3 * HOUR_MS, "olena", err,
                          sizeof err));
    r = s_tick (MON_1000 + 2 * HOUR_MS + 30 * MIN_MS);
    assert_int_equal (r.sla_breached, 0);
    assert_int_equal (r.sla_warned, 0);
    r = s_tick (MON_1000 + 3 * HOUR_MS);
    assert_int_equal (r.woken, 1);
    assert_int_equal (r.sla_breached, 0);
    due = s_timer_ms (in.conversation_id, "first_response", "due_at");
    assert_true (due > MON_1000 + 4 * HOUR_MS - 1000 && due <= MON_1000 + 4 * HOUR_MS);

    /* Pending at 13:30 with half an hour left, reopened at 15:00: 15:30. */
    s_clock_at (MON_1000 + 3 * HOUR_MS + 30 * MIN_MS);
    S_TX (routing_pending (s_f.db, in.conversation_id, "olena", err, sizeof err));
    r = s_tick (MON_1000 + 4 * HOUR_MS + 30 * MIN_MS);
    assert_int_equal (r.sla_breached, 0);
    s_clock_at (MON_1000 + 5 * HOUR_MS);
    S_TX (routing_reopen (s_f.db, in.conversation_id, "olena", err, sizeof err));
    due = s_timer_ms (in.conversation_id, "first_response", "due_at");
    assert_true (due > MON_1000 + 5 * HOUR_MS + 30 * MIN_MS - 2000 &&
                 due <= MON_1000 + 5 * HOUR_MS + 30 * MIN_MS + 1000);
    r = s_tick (MON_1000 + 5 * HOUR_MS + 29 * MIN_MS);
    assert_int_equal (r.sla_breached, 0);
    r = s_tick (MON_1000 + 5 * HOUR_MS + 31 * MIN_MS);
    assert_int_equal (r.sla_breached, 1);
    assert_int_equal (s_breaches (NULL), 1);
}

static void
test_marketplace_channel_beats_team (void **state)
{
    char market[RT_UUID_STR_LEN + 1], chat[RT_UUID_STR_LEN + 1], text[128];
    routing_inbound_result_t a, b;
    Retain__V1__SlaBreached *e;
    routing_tick_result_t r;
    (void)state;

    rt_test_router_customer (s_f.pg, market, NULL, NULL);
    rt_test_router_customer (s_f.pg, chat, NULL, NULL);
    a = s_inbound (market, RETAIN__V1__CHANNEL__EMAIL, FRI_1700);
    b = s_inbound (chat, RETAIN__V1__CHANNEL__TELEGRAM, FRI_1700);
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT policy FROM routing.sla_timers WHERE conversation_id = '%s'"
                         " AND kind = 'first_response'",
                         a.conversation_id);
    assert_string_equal (text, "marketplace 24h");
    /* 24 real hours: Saturday at 17:00, closed or not. */
    assert_int_equal (s_timer_ms (a.conversation_id, "first_response", "due_at"),
                      FRI_1700 + 24 * HOUR_MS);
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT policy FROM routing.sla_timers WHERE conversation_id = '%s'"
                         " AND kind = 'first_response'",
                         b.conversation_id);
    assert_string_equal (text, "support 2h");

    r = s_tick (FRI_1700 + 24 * HOUR_MS);
    assert_int_equal (r.sla_breached, 1);
    assert_int_equal (s_breaches (&e), 1);
    assert_string_equal (e->conversation_id, a.conversation_id);
    assert_string_equal (e->policy, "marketplace 24h");
    /* Its policy flags and does not reassign. */
    assert_string_equal (e->escalation, "flag_supervisor");
    retain__v1__sla_breached__free_unpacked (e, NULL);
    assert_true (s_flagged (a.conversation_id));
    assert_false (s_flagged (b.conversation_id));
    rt_test_router_text (s_f.pg, text, sizeof text,
                         "SELECT assignee FROM routing.conversations WHERE id = '%s'",
                         a.conversation_id);
    assert_string_equal (text, a.assignee);
}

/* One call that must be refused with `want`, err naming `needle`. */
static void
s_refused (routing_status_t got, routing_status_t want, const char *err, const char *needle)
{
    rt_db_rollback (s_f.db);
    if (got != want || !strstr (err, needle))
        fail_msg ("want %d naming \"%s\", got %d: %s", want, needle, got, err);
}

static void
test_bad_policies_refused (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], err[512];
    routing_inbound_result_t in;
    routing_tick_result_t r;
    (void)state;

    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_sla_policy_set (s_f.db, "{\"name\": ", err, sizeof err), ROUTING_ERR_INVALID,
               err, "not JSON");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_sla_policy_set (s_f.db,
                                       "{\"name\": \"x\", \"clock\": \"wall\","
                                       " \"first_response_minutes\": 0}",
                                       err, sizeof err),
               ROUTING_ERR_INVALID, err, "first_response_minutes");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_sla_policy_set (
                   s_f.db, "{\"clock\": \"wall\", \"first_response_minutes\": 5}", err, sizeof err),
               ROUTING_ERR_INVALID, err, "name");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_sla_policy_set (s_f.db,
                                       "{\"name\": \"x\", \"clock\": \"wall\","
                                       " \"first_responce_minutes\": 5}",
                                       err, sizeof err),
               ROUTING_ERR_INVALID, err, "first_responce_minutes");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_team_hours_set (s_f.db, "support",
                                       "{\"zone\": \"Mars/Olympus\", \"weekly\": \"mon-fri "
                                       "09:00-18:00\"}",
                                       err, sizeof err),
               ROUTING_ERR_INVALID, err, "zone");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_team_hours_set (s_f.db, "nobody", HOURS, err, sizeof err),
               ROUTING_ERR_NOT_FOUND, err, "nobody");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    s_refused (routing_sla_policy_delete (s_f.db, "no such", err, sizeof err),
               ROUTING_ERR_NOT_FOUND, err, "no such");
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.sla_policies"), 2);

    /* Deleted: its running clock stops, nothing breaches. */
    rt_test_router_customer (s_f.pg, cust, NULL, NULL);
    in = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, FRI_1700);
    S_TX (routing_sla_policy_delete (s_f.db, "support 2h", err, sizeof err));
    r = s_tick (MON_1000 + HOUR_MS);
    assert_int_equal (r.sla_breached, 0);
    assert_false (s_flagged (in.conversation_id));
    /* Business hours without a calendar: the message is taken, no clock. */
    S_TX (routing_team_hours_set (s_f.db, "support", NULL, err, sizeof err));
    S_TX (routing_sla_policy_set (s_f.db, SUPPORT_2H, err, sizeof err));
    rt_test_router_customer (s_f.pg, cust, NULL, NULL);
    in = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, FRI_1700);
    assert_string_not_equal (in.conversation_id, "");
    assert_int_equal (s_timer_ms (in.conversation_id, "first_response", "due_at"), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_breach_across_the_weekend, s_clean),
        cmocka_unit_test_setup (test_reply_in_time_then_next_response, s_clean),
        cmocka_unit_test_setup (test_snooze_and_pending_move_the_due_time, s_clean),
        cmocka_unit_test_setup (test_marketplace_channel_beats_team, s_clean),
        cmocka_unit_test_setup (test_bad_policies_refused, s_clean),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
