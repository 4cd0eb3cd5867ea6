/*
 * routerd's routing core against a real PostgreSQL: one conversation per
 * customer across channels; a replayed event adds nothing; the customer's
 * manager first, the wait for them on a moved clock, then the team's
 * policy; balanced and round robin; two connections assigning many
 * conversations at once never putting an operator over capacity nor a
 * conversation to two; the queue handed out at a login and as capacity
 * frees; an operator offline past the grace rebalanced with the manager
 * kept; two concurrent transfers, one conflicting; unanswered counters
 * equal to a recount from the timeline after a random mix; deleted
 * comments and receipts never counted; a reply on a channel the customer
 * never used refused and an operator's reply going out once; a round's
 * messages taken together coming to what one by one would.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity.h"
#include "retain/v1/conversation.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "routing.h"
#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_db.h"
#include "rt_test.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

#define MIN_MS 60000LL

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
    static const rt_test_router_opts_t opts = {.routing = true, .clock = true, .second = true};
    (void)state;
    rt_test_router_open (&s_f, "router_routing", &opts);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_router_close (&s_f);
    return 0;
}

static int
s_clean (void **state)
{
    (void)state;
    rt_test_router_clock_reset (&s_f);
    rt_test_router_clean (&s_f);
    return 0;
}

static void
s_presence (const char *id, const char *presence, size_t *handed)
{
    char err[512];
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_presence (s_f.db, id, presence, rt_clock_now_ms (), handed, err, sizeof err) !=
        ROUTING_OK)
        fail_msg ("presence: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
}

static routing_inbound_result_t
s_inbound (const char *customer, Retain__V1__Channel channel, const char *event,
           const char *event_id)
{
    routing_inbound_result_t out;
    routing_status_t st = rt_test_router_inbound (s_f.db, customer, channel, event, event_id, &out);
    if (st != ROUTING_OK)
        fail_msg ("routing_inbound: %d %s", st, rt_db_error (s_f.db));
    return out;
}

static void
s_assignee (char *out, size_t outlen, const char *conv)
{
    rt_test_router_text (s_f.pg, out, outlen,
                         "SELECT COALESCE(assignee, '') FROM routing.conversations WHERE id = '%s'",
                         conv);
}

static void
s_tick (int64_t now, routing_tick_result_t *out)
{
    char err[512];
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_tick (s_f.db, &s_cfg, now, out, err, sizeof err) != ROUTING_OK)
        fail_msg ("routing_tick: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
}

static void
s_resolve (const char *conv)
{
    char err[512];
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_resolve (s_f.db, conv, "op", err, sizeof err) != ROUTING_OK)
        fail_msg ("routing_resolve: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
}

/* Outbox events of a type; the last one's envelope id into last_id
 * (may be NULL). */
static long long
s_events_id (const char *type, char *last_id, size_t idlen)
{
    PGresult *res = PQexec (s_f.pg, "SELECT envelope FROM outbox.pending ORDER BY id");
    long long n = 0;
    int i;
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    for (i = 0; i < PQntuples (res); i++) {
        size_t len;
        unsigned char *raw = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, i, 0), &len);
        Retain__V1__Envelope *env = retain__v1__envelope__unpack (NULL, len, raw);
        assert_non_null (env);
        if (strcmp (env->type, type) == 0) {
            n++;
            if (last_id)
                snprintf (last_id, idlen, "%s", env->id);
        }
        retain__v1__envelope__free_unpacked (env, NULL);
        PQfreemem (raw);
    }
    PQclear (res);
    return n;
}

static long long
s_events (const char *type)
{
    return s_events_id (type, NULL, 0);
}

/* Every operator's open_count is what they hold, and within capacity. */
static void
s_assert_capacity (void)
{
    assert_int_equal (rt_test_router_over_capacity (s_f.pg), 0);
}

/* --- tests --- */

static void
test_one_conversation_across_channels (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], first[RT_UUID_STR_LEN + 1], ch[32], err[512];
    routing_inbound_result_t a, b, c;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 5, true, NULL);
    rt_test_router_customer (s_f.pg, cust, NULL, "telegram,instagram");

    a = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_true (a.is_new);
    assert_string_equal (a.assignee, "olena");
    assert_int_equal (a.reason, ROUTING_REASON_POLICY);
    b = s_inbound (cust, RETAIN__V1__CHANNEL__INSTAGRAM, "message", NULL);
    assert_false (b.is_new);
    assert_string_equal (b.conversation_id, a.conversation_id);
    assert_int_equal (b.unanswered, 2);
    assert_int_equal (b.reason, ROUTING_REASON_NONE);
    /* The reply channel follows the last message. */
    rt_test_router_text (s_f.pg, ch, sizeof ch,
                         "SELECT channel FROM routing.conversations WHERE id = '%s'",
                         a.conversation_id);
    assert_string_equal (ch, "instagram");
    /* The first operator became the customer's manager. */
    rt_test_router_text (s_f.pg, ch, sizeof ch, "SELECT manager FROM crm.customers WHERE id = '%s'",
                         cust);
    assert_string_equal (ch, "olena");
    /* Text of any script, SQL- and HTML-looking, stored verbatim. */
    rt_test_router_text (s_f.pg, ch, sizeof ch,
                         "SELECT count(*) FROM routing.timeline WHERE body->>'text' ="
                         " 'Where is my parcel? Де моя посилка? <b>''; DROP TABLE x;--'");
    assert_string_equal (ch, "2");

    /* Snoozed: the next message reopens it, the same conversation. */
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_snooze (s_f.db, a.conversation_id, rt_clock_now_ms () + MIN_MS,
                                      "olena", err, sizeof err),
                      ROUTING_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    c = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_string_equal (c.conversation_id, a.conversation_id);
    rt_test_router_text (s_f.pg, ch, sizeof ch,
                         "SELECT status FROM routing.conversations WHERE id = '%s'",
                         a.conversation_id);
    assert_string_equal (ch, "open");

    /* Resolved: never reopened by a message; a new one opens. */
    snprintf (first, sizeof first, "%s", a.conversation_id);
    s_resolve (first);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'olena'"),
        0);
    c = s_inbound (cust, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    assert_true (c.is_new);
    assert_string_not_equal (c.conversation_id, first);
    assert_int_equal (c.unanswered, 1);
    assert_string_equal (c.assignee, "olena");
    assert_int_equal (c.reason, ROUTING_REASON_MANAGER);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.conversations WHERE customer_id = '%s'"
                             " AND status <> 'resolved'",
                             cust),
        1);
    /* Reopening the old one while the new is open is refused, unchanged. */
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_reopen (s_f.db, first, "olena", err, sizeof err), ROUTING_ERR_STATE);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    s_assert_capacity ();
}

static void
test_replay_adds_nothing (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], ev[RT_UUID_STR_LEN + 1];
    routing_inbound_result_t a, b;
    long long entries, assigned;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 5, true, NULL);
    rt_test_router_customer (s_f.pg, cust, NULL, "telegram");
    rt_test_router_uuid (ev);
    a = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, ev);
    entries = rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.timeline");
    assigned = s_events ("ConversationAssigned");
    assert_int_equal (assigned, 1);
    b = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, ev);
    assert_true (b.replay);
    assert_string_equal (b.conversation_id, a.conversation_id);
    assert_int_equal (b.unanswered, 1);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations"),
                      1);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.timeline"),
                      entries);
    assert_int_equal (s_events ("ConversationAssigned"), assigned);
    /* Still a replay after the conversation was resolved: nothing opens. */
    s_resolve (a.conversation_id);
    b = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, ev);
    assert_true (b.replay);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations"),
                      1);
}

static void
test_sticky_manager_with_wait (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], other[RT_UUID_STR_LEN + 1], who[64];
    routing_inbound_result_t a, b;
    routing_tick_result_t t;
    size_t handed;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 5 * MIN_MS);
    rt_test_router_operator (&s_f, "maria", "sales", 5, false, NULL);
    rt_test_router_operator (&s_f, "petro", "sales", 5, true, NULL);
    rt_test_router_customer (s_f.pg, cust, "maria", "telegram");

    /* Maria is offline: the conversation waits for her, though Petro is free. */
    a = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_string_equal (a.assignee, "");
    assert_true (a.waiting_for_manager);
    s_tick (rt_clock_now_ms (), &t);
    assert_int_equal (t.assigned, 0);
    rt_test_router_clock_advance (&s_f, 4 * MIN_MS);
    s_tick (rt_clock_now_ms (), &t);
    assert_int_equal (t.assigned, 0);
    s_assignee (who, sizeof who, a.conversation_id);
    assert_string_equal (who, "");
    /* Past the wait: the policy's operator, and Maria stays the manager. */
    rt_test_router_clock_advance (&s_f, MIN_MS + 1000);
    s_tick (rt_clock_now_ms (), &t);
    assert_int_equal (t.assigned, 1);
    s_assignee (who, sizeof who, a.conversation_id);
    assert_string_equal (who, "petro");
    rt_test_router_text (s_f.pg, who, sizeof who,
                         "SELECT manager FROM crm.customers WHERE id = '%s'", cust);
    assert_string_equal (who, "maria");
    rt_test_router_text (s_f.pg, who, sizeof who,
                         "SELECT body->>'reason' FROM routing.timeline WHERE kind = 'assignment'"
                         " AND conversation_id = '%s' ORDER BY seq DESC LIMIT 1",
                         a.conversation_id);
    assert_string_equal (who, "policy");

    /* A second customer of Maria's waits; she logs in within the wait and
     * gets it from the queue, as their manager. */
    rt_test_router_customer (s_f.pg, other, "maria", "viber");
    b = s_inbound (other, RETAIN__V1__CHANNEL__VIBER, NULL, NULL);
    assert_true (b.waiting_for_manager);
    rt_test_router_clock_advance (&s_f, MIN_MS);
    s_presence ("maria", "online", &handed);
    assert_int_equal (handed, 1);
    s_assignee (who, sizeof who, b.conversation_id);
    assert_string_equal (who, "maria");
    /* Online with room, she gets her customer's next conversation at once. */
    s_resolve (b.conversation_id);
    b = s_inbound (other, RETAIN__V1__CHANNEL__VIBER, NULL, NULL);
    assert_string_equal (b.assignee, "maria");
    assert_int_equal (b.reason, ROUTING_REASON_MANAGER);
    s_assert_capacity ();
}

/* n conversations of new customers without a manager, on an inbox of
 * `team`; their assignees in order into out (each ROUTING_OP_MAX + 1). */
static void
s_many (int n, const char *team, const char *language, char out[][ROUTING_OP_MAX + 1])
{
    int i;
    for (i = 0; i < n; i++) {
        char cust[RT_UUID_STR_LEN + 1], ev[RT_UUID_STR_LEN + 1], err[512];
        routing_inbound_t in;
        routing_inbound_result_t r;
        rt_test_router_customer (s_f.pg, cust, NULL, "telegram");
        rt_test_router_uuid (ev);
        memset (&in, 0, sizeof in);
        in.customer_id = cust;
        in.event_id = ev;
        in.channel = RETAIN__V1__CHANNEL__TELEGRAM;
        in.text = "hi";
        in.language = language;
        in.team_id = team;
        assert_int_equal (rt_db_begin (s_f.db), 0);
        if (routing_inbound (s_f.db, &in, &r, err, sizeof err) != ROUTING_OK)
            fail_msg ("routing_inbound: %s", err);
        assert_int_equal (rt_db_commit (s_f.db), 0);
        snprintf (out[i], ROUTING_OP_MAX + 1, "%s", r.assignee);
        /* Round robin orders by the time of the last assignment. */
        rt_test_router_clock_advance (&s_f, 10);
    }
}

static void
test_balanced_and_round_robin (void **state)
{
    char got[6][ROUTING_OP_MAX + 1];
    (void)state;
    /* Balanced: fewest open first. Anna holds two when Bohdan logs in. */
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "anna", "sales", 10, true, NULL);
    rt_test_router_operator (&s_f, "bohdan", "sales", 10, false, NULL);
    s_many (2, "sales", NULL, got);
    s_presence ("bohdan", "online", NULL);
    s_many (4, "sales", NULL, got);
    assert_string_equal (got[0], "bohdan");
    assert_string_equal (got[1], "bohdan");
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'anna'"),
        3);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'bohdan'"),
                      3);
    /* Language: the one who speaks it, even with more open. */
    rt_test_router_sql (s_f.pg,
                        "UPDATE routing.operators SET languages = '{uk,en}' WHERE id = 'anna'");
    s_many (2, "sales", "uk-UA", got);
    assert_string_equal (got[0], "anna");
    assert_string_equal (got[1], "anna");
    s_assert_capacity ();

    /* Round robin: the least recently assigned, whatever they hold. */
    s_clean (NULL);
    rt_test_router_team (s_f.pg, "support", "round_robin", 0);
    rt_test_router_operator (&s_f, "a", "support", 10, true, NULL);
    rt_test_router_operator (&s_f, "b", "support", 10, true, NULL);
    rt_test_router_operator (&s_f, "c", "support", 10, true, NULL);
    rt_test_router_sql (s_f.pg, "UPDATE routing.operators SET open_count = 5 WHERE id = 'a'");
    s_many (6, "support", NULL, got);
    assert_string_equal (got[3], got[0]);
    assert_string_equal (got[4], got[1]);
    assert_string_equal (got[5], got[2]);
    assert_string_not_equal (got[0], got[1]);
    assert_string_not_equal (got[1], got[2]);
    assert_string_not_equal (got[0], got[2]);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'a'"), 7);
}

/* --- concurrency --- */

#define S_CUSTOMERS  60
#define S_PER_THREAD 45

static char s_custs[S_CUSTOMERS][RT_UUID_STR_LEN + 1];

/* One replica's share: customers [first, first + S_PER_THREAD), each its
 * own transaction, retried on a failure (a deadlock is the database's to
 * report, the consumer's to retry). */
typedef struct {
    rt_db_t *db;  /* its connection */
    int first;    /* first customer index */
    int failures; /* attempts that failed and were retried */
    int gave_up;  /* events that never went through */
} s_replica_t;

static void *
s_replica_run (void *arg)
{
    s_replica_t *r = arg;
    int i;
    for (i = 0; i < S_PER_THREAD; i++) {
        const char *cust = s_custs[(r->first + i) % S_CUSTOMERS];
        routing_inbound_result_t out;
        int k;
        for (k = 0; k < 5; k++) {
            if (rt_test_router_inbound (r->db, cust,
                                        (r->first == 0) ? RETAIN__V1__CHANNEL__TELEGRAM
                                                        : RETAIN__V1__CHANNEL__INSTAGRAM,
                                        NULL, NULL, &out) == ROUTING_OK)
                break;
            r->failures++;
        }
        if (k == 5)
            r->gave_up++;
    }
    return NULL;
}

static void
test_capacity_concurrent (void **state)
{
    s_replica_t r1 = {.db = NULL, .first = 0}, r2 = {.db = NULL, .first = 15};
    pthread_t t1, t2;
    int i;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "o1", "sales", 4, true, NULL);
    rt_test_router_operator (&s_f, "o2", "sales", 5, true, NULL);
    rt_test_router_operator (&s_f, "o3", "sales", 6, true, NULL);
    for (i = 0; i < S_CUSTOMERS; i++)
        rt_test_router_customer (s_f.pg, s_custs[i], NULL, "telegram,instagram");
    r1.db = s_f.db;
    r2.db = s_f.db2;
    assert_int_equal (pthread_create (&t1, NULL, s_replica_run, &r1), 0);
    assert_int_equal (pthread_create (&t2, NULL, s_replica_run, &r2), 0);
    assert_int_equal (pthread_join (t1, NULL), 0);
    assert_int_equal (pthread_join (t2, NULL), 0);
    assert_int_equal (r1.gave_up + r2.gave_up, 0);

    /* Customers 0..59 all wrote (15..44 on both replicas): one
     * conversation each, every message in it. */
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations"),
                      S_CUSTOMERS);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'inbound'"),
                      2 * S_PER_THREAD);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT sum(unanswered) FROM routing.conversations"),
        2 * S_PER_THREAD);
    /* Exactly the capacity assigned, each conversation once. */
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT sum(open_count) FROM routing.operators"),
                      15);
    assert_int_equal (
        rt_test_router_long (
            s_f.pg, "SELECT count(*) FROM routing.conversations WHERE assignee IS NOT NULL"),
        15);
    assert_int_equal (s_events ("ConversationAssigned"), 15);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.timeline WHERE kind = 'assignment'"),
        15);
    s_assert_capacity ();
    if (r1.failures + r2.failures)
        print_message ("retried attempts: %d\n", r1.failures + r2.failures);
}

/* A round's messages taken together (routing_inbound_many, as routerd's
 * consumer takes them) come to what one by one would: a replay and the
 * same event twice add nothing; two messages of one customer, one
 * conversation counting both; a manager with room for two of their three
 * new conversations takes two and the third goes to the policy, as does a
 * customer whose manager is away; a manager with room is given the new
 * conversation as it opens; an existing conversation only counts. */
static void
test_many_as_one_by_one (void **state)
{
    enum { A, B, C, D, E, F, G, NCUST };
    char cust[NCUST][RT_UUID_STR_LEN + 1], ev[13][RT_UUID_STR_LEN + 1], err[512] = "";
    const int who[] = {A, A, B, B, C, D, E, F, F, F, G};
    routing_inbound_t in[11];
    routing_inbound_result_t out[11], early;
    size_t i;
    (void)state;

    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "m1", "sales", 2, true, NULL);
    rt_test_router_operator (&s_f, "m2", "sales", 5, false, NULL);
    rt_test_router_operator (&s_f, "o3", "sales", 10, true, NULL);
    rt_test_router_customer (s_f.pg, cust[A], "m1", "telegram");
    rt_test_router_customer (s_f.pg, cust[B], "m1", "telegram");
    rt_test_router_customer (s_f.pg, cust[C], "m1", "telegram");
    rt_test_router_customer (s_f.pg, cust[D], "m2", "telegram");
    rt_test_router_customer (s_f.pg, cust[E], NULL, "telegram");
    rt_test_router_customer (s_f.pg, cust[F], "o3", "telegram");
    rt_test_router_customer (s_f.pg, cust[G], "o3", "telegram");
    for (i = 0; i < 13; i++)
        rt_test_router_uuid (ev[i]);
    /* F wrote before: an open conversation, with their manager o3. */
    early = s_inbound (cust[F], RETAIN__V1__CHANNEL__TELEGRAM, NULL, ev[11]);
    assert_string_equal (early.assignee, "o3");

    memset (in, 0, sizeof in);
    for (i = 0; i < 11; i++) {
        in[i].customer_id = cust[who[i]];
        in[i].event_id = ev[i];
        in[i].channel = i % 2 ? RETAIN__V1__CHANNEL__INSTAGRAM : RETAIN__V1__CHANNEL__TELEGRAM;
        in[i].inbox = "main";
        in[i].text = "Привіт <b>'; DROP TABLE x; --</b>";
        in[i].occurred_at = rt_clock_now_ms () + (int64_t)i;
        assert_true (routing_inbound_batchable (&in[i]));
    }
    in[3].event_id = ev[2];  /* B's message twice */
    in[9].event_id = ev[11]; /* F's earlier message again */
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_inbound_many (s_f.db, in, 11, out, err, sizeof err) != ROUTING_OK)
        fail_msg ("routing_inbound_many: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);

    /* The replays say so and change nothing. */
    for (i = 0; i < 11; i++)
        assert_int_equal (out[i].replay, i == 3 || i == 9);
    assert_string_equal (out[9].conversation_id, early.conversation_id);
    /* One conversation a customer, every message once in it, the counts
     * equal to a recount. */
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations"),
                      NCUST);
    assert_int_equal (rt_test_router_doubly_open (s_f.pg), 0);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'inbound'"),
                      1 + 9);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(DISTINCT event_id)"
                                                   " FROM routing.timeline WHERE kind = 'inbound'"),
                      1 + 9);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
    assert_string_equal (out[0].conversation_id, out[1].conversation_id);
    assert_true (out[0].is_new);
    assert_false (out[1].is_new);
    assert_int_equal (out[1].unanswered, 2);
    assert_false (out[7].is_new);
    assert_string_equal (out[7].conversation_id, early.conversation_id);
    assert_int_equal (out[8].unanswered, 3);
    /* The newest message's channel is the reply channel. */
    assert_int_equal (rt_test_router_long (s_f.pg,
                                           "SELECT count(*) FROM routing.conversations"
                                           " WHERE id = '%s' AND channel = 'instagram'",
                                           out[0].conversation_id),
                      1);
    /* m1 took two of A, B, C; the third, D's (m2 away) and E's went to o3,
     * who also keeps F's and was given G's as it opened. */
    assert_int_equal (rt_test_router_long (s_f.pg,
                                           "SELECT count(*) FROM routing.conversations c"
                                           " JOIN crm.customers cu ON cu.id = c.customer_id"
                                           " WHERE cu.manager = 'm1' AND c.assignee = 'm1'"),
                      2);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'o3'"),
        5);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations"
                                                   " WHERE assignee IS NULL"),
                      0);
    assert_string_equal (out[0].assignee, "m1");
    assert_int_equal (out[0].reason, ROUTING_REASON_MANAGER);
    assert_string_equal (out[5].assignee, "o3");
    assert_int_equal (out[5].reason, ROUTING_REASON_POLICY);
    assert_string_equal (out[10].assignee, "o3");
    assert_int_equal (out[10].reason, ROUTING_REASON_MANAGER);
    /* Opened assigned: out of the queue, at the version of one change. */
    assert_int_equal (rt_test_router_long (s_f.pg,
                                           "SELECT count(*) FROM routing.conversations WHERE id = "
                                           "'%s' AND version = 2 AND queued_since IS NULL",
                                           out[10].conversation_id),
                      1);
    s_assert_capacity ();
    /* The operators' stream: an event per message and one per change of
     * a conversation (F's two messages one counters event), each naming
     * the conversation's operator and team as the batch left them. */
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.stream WHERE kind = 'message'"),
        1 + 9);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT count(*) FROM routing.stream WHERE kind = 'assignment'"),
                      1 + 6);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.stream WHERE kind = 'counters'"),
        1);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.stream s"
                                     " JOIN routing.conversations c ON c.id = s.conversation_id"
                                     " WHERE s.assignee IS DISTINCT FROM c.assignee"
                                     " OR s.team_id IS DISTINCT FROM c.team_id"),
        0);
    assert_int_equal (rt_test_router_long (s_f.pg,
                                           "SELECT count(*) FROM routing.stream"
                                           " WHERE kind = 'counters'"
                                           " AND (payload->>'unanswered')::int = 3"
                                           " AND (payload->'previous'->>'unanswered')::int = 1"),
                      1);
    /* One announcement and one entry per assignment. */
    assert_int_equal (s_events ("ConversationAssigned"), NCUST);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.timeline WHERE kind = 'assignment'"),
        NCUST);
}

static void
test_queue_on_login (void **state)
{
    char c[4][RT_UUID_STR_LEN + 1], conv[4][RT_UUID_STR_LEN + 1], who[64];
    size_t handed;
    int i;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "iryna", "sales", 2, false, NULL);
    for (i = 0; i < 3; i++) {
        routing_inbound_result_t r;
        rt_test_router_customer (s_f.pg, c[i], NULL, "telegram");
        r = s_inbound (c[i], RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
        assert_string_equal (r.assignee, "");
        snprintf (conv[i], sizeof conv[i], "%s", r.conversation_id);
        rt_test_router_clock_advance (&s_f, 1000);
    }
    /* Login: the two oldest, up to her capacity. */
    s_presence ("iryna", "online", &handed);
    assert_int_equal (handed, 2);
    s_assignee (who, sizeof who, conv[0]);
    assert_string_equal (who, "iryna");
    s_assignee (who, sizeof who, conv[1]);
    assert_string_equal (who, "iryna");
    s_assignee (who, sizeof who, conv[2]);
    assert_string_equal (who, "");
    /* A heartbeat hands out nothing more: she is full. */
    s_presence ("iryna", "online", &handed);
    assert_int_equal (handed, 0);
    /* Resolving frees room: the third is hers. */
    s_resolve (conv[0]);
    s_assignee (who, sizeof who, conv[2]);
    assert_string_equal (who, "iryna");
    rt_test_router_text (s_f.pg, who, sizeof who,
                         "SELECT body->>'reason' FROM routing.timeline WHERE kind = 'assignment'"
                         " AND conversation_id = '%s'",
                         conv[2]);
    assert_string_equal (who, "queue");
    s_assert_capacity ();
}

static void
test_offline_rebalance_keeps_manager (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], who[64];
    routing_inbound_result_t a;
    routing_tick_result_t t;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "maria", "sales", 5, true, NULL);
    rt_test_router_operator (&s_f, "petro", "sales", 5, true, NULL);
    rt_test_router_customer (s_f.pg, cust, "maria", "telegram");
    a = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_string_equal (a.assignee, "maria");

    s_presence ("maria", "offline", NULL);
    rt_test_router_clock_advance (&s_f, s_cfg.offline_grace_ms - 1000);
    s_tick (rt_clock_now_ms (), &t);
    assert_int_equal (t.rebalanced, 0);
    s_assignee (who, sizeof who, a.conversation_id);
    assert_string_equal (who, "maria");
    rt_test_router_clock_advance (&s_f, 2000);
    s_tick (rt_clock_now_ms (), &t);
    assert_int_equal (t.rebalanced, 1);
    s_assignee (who, sizeof who, a.conversation_id);
    assert_string_equal (who, "petro");
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'maria'"),
        0);
    rt_test_router_text (s_f.pg, who, sizeof who,
                         "SELECT manager FROM crm.customers WHERE id = '%s'", cust);
    assert_string_equal (who, "maria");
    rt_test_router_text (s_f.pg, who, sizeof who,
                         "SELECT body->>'reason' FROM routing.timeline WHERE kind = 'assignment'"
                         " AND conversation_id = '%s' ORDER BY seq DESC LIMIT 1",
                         a.conversation_id);
    assert_string_equal (who, "rebalance");
    /* Back next time: her customer's new conversation is hers. */
    s_resolve (a.conversation_id);
    s_presence ("maria", "online", NULL);
    a = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_string_equal (a.assignee, "maria");
    s_assert_capacity ();
}

/* The second transfer, on the second replica's connection. */
typedef struct {
    const char *conv;    /* the conversation */
    int64_t version;     /* the version it saw */
    routing_status_t st; /* what it got */
    char err[512];       /* its reason */
} s_transfer_job_t;

static void *
s_transfer_run (void *arg)
{
    s_transfer_job_t *j = arg;
    if (rt_db_begin (s_f.db2) != 0) {
        j->st = ROUTING_ERR_DB;
        return NULL;
    }
    j->st = routing_transfer (s_f.db2, j->conv, "c", NULL, "supervisor", j->version, NULL, j->err,
                              sizeof j->err);
    if (j->st == ROUTING_OK)
        rt_db_commit (s_f.db2);
    else
        rt_db_rollback (s_f.db2);
    return NULL;
}

static void
test_concurrent_transfers (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], who[64], err[512];
    routing_inbound_result_t a;
    routing_assignment_t moved;
    s_transfer_job_t job;
    int64_t version, deadline;
    pthread_t t;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "a", "sales", 5, true, NULL);
    rt_test_router_operator (&s_f, "b", "sales", 5, true, NULL);
    rt_test_router_operator (&s_f, "c", "sales", 5, true, NULL);
    rt_test_router_customer (s_f.pg, cust, "a", "telegram");
    a = s_inbound (cust, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_string_equal (a.assignee, "a");
    version = rt_test_router_long (
        s_f.pg, "SELECT version FROM routing.conversations WHERE id = '%s'", a.conversation_id);

    memset (&job, 0, sizeof job);
    job.conv = a.conversation_id;
    job.version = version;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_transfer (s_f.db, a.conversation_id, "b", NULL, "supervisor", version,
                                        &moved, err, sizeof err),
                      ROUTING_OK);
    assert_int_equal (moved.version, version + 1);
    assert_int_equal (pthread_create (&t, NULL, s_transfer_run, &job), 0);
    deadline = rt_test_now_ms () + 10000;
    while (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM pg_stat_activity"
                                    " WHERE application_name = 'router-routing-b'"
                                    " AND wait_event_type = 'Lock'") == 0) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("the second transfer never waited on the first");
        usleep (10000);
    }
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (pthread_join (t, NULL), 0);
    assert_int_equal (job.st, ROUTING_ERR_CONFLICT);
    s_assignee (who, sizeof who, a.conversation_id);
    assert_string_equal (who, "b");
    s_assert_capacity ();

    /* Over capacity refused; to a team, its policy. */
    rt_test_router_sql (s_f.pg, "UPDATE routing.operators SET capacity = 0 WHERE id = 'c'");
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_transfer (s_f.db, a.conversation_id, "c", NULL, "b", version + 1,
                                        NULL, err, sizeof err),
                      ROUTING_ERR_CAPACITY);
    assert_int_equal (routing_transfer (s_f.db, a.conversation_id, NULL, "sales", "b", version + 1,
                                        &moved, err, sizeof err),
                      ROUTING_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_string_equal (moved.assignee, "a");
    assert_string_equal (moved.previous, "b");
    assert_int_equal (s_events ("ConversationAssigned"), 3);
    s_assert_capacity ();
}

static void
test_unanswered_recount (void **state)
{
    char custs[5][RT_UUID_STR_LEN + 1], convs[5][RT_UUID_STR_LEN + 1];
    char replayed[RT_UUID_STR_LEN + 1] = "";
    routing_counts_t team, op_total;
    unsigned seed = 20240611;
    int i;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 3, true, NULL);
    rt_test_router_operator (&s_f, "taras", "sales", 3, true, NULL);
    for (i = 0; i < 5; i++) {
        routing_inbound_result_t r;
        rt_test_router_customer (s_f.pg, custs[i], NULL, "telegram,whatsapp");
        r = s_inbound (custs[i], RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
        snprintf (convs[i], sizeof convs[i], "%s", r.conversation_id);
    }
    for (i = 0; i < 300; i++) {
        int k = rand_r (&seed) % 5, what = rand_r (&seed) % 10;
        routing_inbound_result_t r;
        routing_outbound_result_t o;
        rt_test_router_clock_advance (&s_f, 1000);
        if (what < 5) {
            s_inbound (custs[k],
                       (what & 1) ? RETAIN__V1__CHANNEL__WHATSAPP : RETAIN__V1__CHANNEL__TELEGRAM,
                       NULL, NULL);
        } else if (what == 5) {
            s_inbound (custs[k], RETAIN__V1__CHANNEL__TELEGRAM, "deleted", NULL);
        } else if (what == 6) {
            /* The same event twice. */
            if (!*replayed)
                rt_test_router_uuid (replayed);
            s_inbound (custs[k], RETAIN__V1__CHANNEL__TELEGRAM, NULL, replayed);
        } else {
            char op[64];
            s_assignee (op, sizeof op, convs[k]);
            assert_int_equal (rt_test_router_reply (s_f.db, convs[k], *op ? op : "olena",
                                                    RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL,
                                                    &o),
                              ROUTING_OK);
        }
        (void)r;
    }
    /* The counter is the number of counted entries after the last reply. */
    assert_int_equal (
        rt_test_router_long (
            s_f.pg, "SELECT count(*) FROM routing.conversations c WHERE c.unanswered <>"
                    " (SELECT count(*) FROM routing.timeline t WHERE t.conversation_id = c.id"
                    " AND t.counted AND t.seq > COALESCE((SELECT max(seq) FROM routing.timeline o"
                    " WHERE o.conversation_id = c.id AND o.kind = 'outbound'), 0))"),
        0);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.conversations c WHERE c.unanswered > 0"
                             " AND c.waiting_since IS DISTINCT FROM (SELECT min(occurred_at)"
                             " FROM routing.timeline t WHERE t.conversation_id = c.id AND t.counted"
                             " AND t.seq > COALESCE((SELECT max(seq) FROM routing.timeline o"
                             " WHERE o.conversation_id = c.id AND o.kind = 'outbound'), 0))"),
        0);
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_counts (s_f.db, NULL, "sales", &team, NULL, 0), ROUTING_OK);
    memset (&op_total, 0, sizeof op_total);
    {
        const char *ops[2] = {"olena", "taras"};
        for (i = 0; i < 2; i++) {
            routing_counts_t c;
            assert_int_equal (routing_counts (s_f.db, ops[i], NULL, &c, NULL, 0), ROUTING_OK);
            op_total.open += c.open;
            op_total.messages += c.messages;
        }
    }
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (team.open, 5);
    assert_int_equal (op_total.open, 5);
    assert_int_equal (
        team.messages,
        rt_test_router_long (s_f.pg, "SELECT sum(unanswered) FROM routing.conversations"));
    assert_int_equal (op_total.messages, team.messages);
}

static void
test_quiet_events_and_replies (void **state)
{
    char cust[RT_UUID_STR_LEN + 1], lone[RT_UUID_STR_LEN + 1], mid[RT_UUID_STR_LEN + 1];
    char rid[RT_UUID_STR_LEN + 1], err[512];
    routing_inbound_result_t a, d;
    routing_outbound_result_t o;
    bool found;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 5, true, NULL);
    rt_test_router_customer (s_f.pg, cust, NULL, "instagram");
    a = s_inbound (cust, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    assert_int_equal (a.unanswered, 1);
    /* The customer deleted their comment: recorded, not counted. */
    d = s_inbound (cust, RETAIN__V1__CHANNEL__INSTAGRAM, "deleted", NULL);
    assert_string_equal (d.conversation_id, a.conversation_id);
    assert_false (d.counted);
    assert_int_equal (d.unanswered, 1);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations"),
                      1);
    /* With no conversation open, a deletion opens none. */
    rt_test_router_customer (s_f.pg, lone, NULL, "instagram");
    d = s_inbound (lone, RETAIN__V1__CHANNEL__INSTAGRAM, "deleted", NULL);
    assert_string_equal (d.conversation_id, "");
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations"),
                      1);

    /* A channel the customer never used: refused, nothing written. */
    assert_int_equal (rt_test_router_reply (s_f.db, a.conversation_id, "olena",
                                            RETAIN__V1__CHANNEL__SMS, NULL, &o),
                      ROUTING_ERR_CHANNEL);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'outbound'"),
                      0);
    /* The reply: on the last inbound channel, once however often retried. */
    rt_test_router_uuid (mid);
    assert_int_equal (rt_test_router_reply (s_f.db, a.conversation_id, "olena",
                                            RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, mid, &o),
                      ROUTING_OK);
    assert_int_equal (o.channel, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_int_equal (rt_test_router_reply (s_f.db, a.conversation_id, "olena",
                                            RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, mid, &o),
                      ROUTING_OK);
    assert_true (o.replay);
    assert_int_equal (s_events ("OutboundMessageRequested"), 1);
    /* The message id is its envelope's: busd drops a retried request's. */
    {
        char envelope_id[RT_UUID_STR_LEN + 1] = "";
        s_events_id ("OutboundMessageRequested", envelope_id, sizeof envelope_id);
        assert_string_equal (envelope_id, mid);
    }
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations"),
                      0);
    assert_int_equal (
        rt_test_router_long (
            s_f.pg, "SELECT count(*) FROM routing.conversations WHERE waiting_since IS NULL"),
        1);
    /* Its receipt: in the timeline, never counted. */
    rt_test_router_uuid (rid);
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_receipt (s_f.db, rid, mid, "read", 0, &found, err, sizeof err),
                      ROUTING_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_true (found);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'receipt'"),
                      1);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations"),
                      0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_one_conversation_across_channels, s_clean),
        cmocka_unit_test_setup (test_replay_adds_nothing, s_clean),
        cmocka_unit_test_setup (test_sticky_manager_with_wait, s_clean),
        cmocka_unit_test_setup (test_balanced_and_round_robin, s_clean),
        cmocka_unit_test_setup (test_capacity_concurrent, s_clean),
        cmocka_unit_test_setup (test_many_as_one_by_one, s_clean),
        cmocka_unit_test_setup (test_queue_on_login, s_clean),
        cmocka_unit_test_setup (test_offline_rebalance_keeps_manager, s_clean),
        cmocka_unit_test_setup (test_concurrent_transfers, s_clean),
        cmocka_unit_test_setup (test_unanswered_recount, s_clean),
        cmocka_unit_test_setup (test_quiet_events_and_replies, s_clean),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
