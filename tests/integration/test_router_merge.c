/*
 * routerd's routing side of customer merges, call-backs and order events,
 * against a real PostgreSQL: two customers with a conversation open each
 * merged into one (the waiting messages and the open call-back wait in the
 * survivor's conversation, counted once, the oldest wait kept, the absorbed
 * conversation closed and its operator's capacity freed) and the undo
 * leaving both customers' conversations, timelines and operators' counters
 * as they were; an open conversation moved whole when the survivor has
 * none, and back; unanswered equal to a recount from the timeline through
 * all of it; a missed call as a call-back item the operator marks done, or
 * an outbound call to that number closes; an outbound missed call asking
 * nothing; orders and shipments in the timeline once, uncounted.
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
#include "retain/v1/message.pb-c.h"
#include "routing.h"
#include "rt_clock.h"
#include "rt_db.h"
#include "rt_test.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

static rt_test_router_t s_f;
/* routing's merge hooks on s_f.db */
static identity_hooks_t s_hooks;

/* --- helpers --- */

static int
s_setup (void **state)
{
    static const rt_test_router_opts_t opts = {.routing = true, .clock = true};
    char err[512];
    (void)state;
    rt_test_router_open (&s_f, "router_merge", &opts);
    if (routing_merge_hooks (s_f.db, &s_hooks, err, sizeof err) != 0)
        fail_msg ("routing_merge_hooks: %s", err);
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
s_resolve (const char *conv)
{
    char err[512];
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_resolve (s_f.db, conv, "op", err, sizeof err) != ROUTING_OK)
        fail_msg ("routing_resolve: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
}

/* Everything a merge and its undo may touch, as one text: conversations
 * (all but their version), timeline entries but the status entries the
 * merge and the undo add, operators' open counts. */
static char *
s_snapshot (void)
{
    PGresult *res = PQexec (
        s_f.pg,
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
        " SELECT concat_ws('|', 'c', id, customer_id, status, assignee, unanswered,"
        " waiting_since, channel, inbox, last_inbound_at, last_outbound_at, snoozed_until,"
        " resolved_at, merged_into, queued_since, team_id) AS x FROM routing.conversations"
        " UNION ALL SELECT concat_ws('|', 't', seq, conversation_id, kind, counted, channel,"
        " done_at, linked_from) FROM routing.timeline WHERE kind <> 'status'"
        " UNION ALL SELECT concat_ws('|', 'o', id, open_count) FROM routing.operators) s");
    char *out;
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("snapshot: %s", PQerrorMessage (s_f.pg));
    out = strdup (PQgetvalue (res, 0, 0));
    PQclear (res);
    assert_non_null (out);
    return out;
}

static void
s_merge (const char *survivor, const char *absorbed, char merge_id[RT_UUID_STR_LEN + 1])
{
    char err[512];
    identity_status_t st;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    st = identity_merge (s_f.db, survivor, absorbed, "olena", "same person", NULL, &s_hooks,
                         merge_id, err, sizeof err);
    if (st != IDENTITY_OK)
        fail_msg ("identity_merge: %d %s", st, err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
}

static void
s_unmerge (const char *merge_id)
{
    char err[512];
    identity_status_t st;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    st = identity_unmerge (s_f.db, merge_id, "olena", &s_hooks, err, sizeof err);
    if (st != IDENTITY_OK)
        fail_msg ("identity_unmerge: %d %s", st, err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
}

/* A call event (event "call_missed", "call_started", ...) in a
 * transaction of its own. */
static routing_inbound_result_t
s_call (const char *customer, const char *event, const char *direction, const char *number)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    routing_inbound_result_t out;
    routing_inbound_t in;

    rt_test_router_uuid (id);
    memset (&in, 0, sizeof in);
    in.customer_id = customer;
    in.event_id = id;
    in.channel = RETAIN__V1__CHANNEL__PHONE;
    in.inbox = "main";
    in.event = event;
    in.call_direction = direction;
    in.call_number = number;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_inbound (s_f.db, &in, &out, err, sizeof err) != ROUTING_OK)
        fail_msg ("routing_inbound: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    return out;
}

static long long
s_callbacks (const char *op)
{
    char err[512];
    long long n;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (routing_callbacks_open (s_f.db, op, NULL, &n, err, sizeof err) != ROUTING_OK)
        fail_msg ("routing_callbacks_open: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    return n;
}

static routing_counts_t
s_counts (const char *op)
{
    routing_counts_t c;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_counts (s_f.db, op, NULL, &c, NULL, 0), ROUTING_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    return c;
}

/* --- tests --- */

static void
test_merge_joins_and_undo_restores (void **state)
{
    char a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1], merge_id[RT_UUID_STR_LEN + 1];
    char ca[RT_UUID_STR_LEN + 1], cb[RT_UUID_STR_LEN + 1], old_b[RT_UUID_STR_LEN + 1];
    char *before, *after;
    routing_inbound_result_t r;
    routing_outbound_result_t o;
    routing_counts_t olena, taras;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 3, true, NULL);
    rt_test_router_operator (&s_f, "taras", "sales", 3, true, NULL);
    rt_test_router_customer (s_f.pg, a, "olena", "telegram");
    rt_test_router_customer (s_f.pg, b, "taras", "instagram,phone");

    /* B wrote before, and that conversation was resolved: history. */
    r = s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    snprintf (old_b, sizeof old_b, "%s", r.conversation_id);
    s_resolve (old_b);
    /* B waits since first: two messages and a missed call, with taras. */
    rt_test_router_clock_advance (&s_f, 60000);
    r = s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    snprintf (cb, sizeof cb, "%s", r.conversation_id);
    assert_string_equal (r.assignee, "taras");
    rt_test_router_clock_advance (&s_f, 1000);
    s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    rt_test_router_clock_advance (&s_f, 1000);
    r = s_call (b, "call_missed", "inbound", "+380501234567");
    assert_int_equal (r.unanswered, 3);
    /* A: answered once, then one more message, with olena. */
    rt_test_router_clock_advance (&s_f, 1000);
    r = s_inbound (a, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    snprintf (ca, sizeof ca, "%s", r.conversation_id);
    assert_string_equal (r.assignee, "olena");
    rt_test_router_clock_advance (&s_f, 1000);
    assert_int_equal (rt_test_router_reply (s_f.db, ca, "olena",
                                            RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, &o),
                      ROUTING_OK);
    rt_test_router_clock_advance (&s_f, 1000);
    s_inbound (a, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
    before = s_snapshot ();

    rt_test_router_clock_advance (&s_f, 1000);
    s_merge (a, b, merge_id);
    /* One open conversation, A's: B's three waiting items wait there too. */
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations WHERE status <> "
                                     "'resolved'"),
        1);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations WHERE id = '%s'",
                             ca),
        4);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                             " AND waiting_since = (SELECT min(occurred_at) FROM routing.timeline"
                             " WHERE conversation_id = '%s' AND counted)",
                             ca, cb),
        1);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
    /* B's conversations are A's now; the joined one closed, naming A's. */
    assert_int_equal (
        rt_test_router_long (
            s_f.pg, "SELECT count(*) FROM routing.conversations WHERE customer_id = '%s'", a),
        3);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                             " AND status = 'resolved' AND merged_into = '%s'",
                             cb, ca),
        1);
    /* taras's room is free again; olena has the one conversation. */
    olena = s_counts ("olena");
    taras = s_counts ("taras");
    assert_int_equal (olena.open, 1);
    assert_int_equal (olena.messages, 4);
    assert_int_equal (taras.open, 0);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'taras'"),
        0);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'olena'"),
        1);
    assert_int_equal (s_callbacks ("olena"), 1);
    assert_int_equal (s_callbacks ("taras"), 0);
    /* The absorbed customer's closed conversation cannot be reopened. */
    {
        char err[512];
        assert_int_equal (rt_db_begin (s_f.db), 0);
        assert_int_equal (routing_reopen (s_f.db, cb, "olena", err, sizeof err), ROUTING_ERR_STATE);
        rt_db_rollback (s_f.db);
    }

    /* The undo: both customers' conversations and counters as before. */
    rt_test_router_clock_advance (&s_f, 1000);
    s_unmerge (merge_id);
    after = s_snapshot ();
    assert_string_equal (after, before);
    free (after);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
    assert_int_equal (s_callbacks ("taras"), 1);
    assert_int_equal (s_callbacks ("olena"), 0);

    /* Merged again and answered in the joined conversation: the undo
     * recounts, nothing is counted twice or lost. */
    rt_test_router_clock_advance (&s_f, 1000);
    s_merge (a, b, merge_id);
    rt_test_router_clock_advance (&s_f, 1000);
    assert_int_equal (rt_test_router_reply (s_f.db, ca, "olena",
                                            RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, &o),
                      ROUTING_OK);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations WHERE id = '%s'",
                             ca),
        0);
    rt_test_router_clock_advance (&s_f, 1000);
    s_inbound (a, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
    s_unmerge (merge_id);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations WHERE id = '%s'",
                             ca),
        1);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT unanswered FROM routing.conversations WHERE id = '%s'"
                             " AND status = 'open' AND customer_id = '%s' AND assignee = 'taras'",
                             cb, b),
        3);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT open_count FROM routing.operators WHERE id = 'taras'"),
        1);
    free (before);
}

static void
test_merge_moves_a_lone_conversation (void **state)
{
    char a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1], merge_id[RT_UUID_STR_LEN + 1];
    char cb[RT_UUID_STR_LEN + 1], *before, *after;
    routing_inbound_result_t r;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "taras", "sales", 3, true, NULL);
    rt_test_router_customer (s_f.pg, a, NULL, "telegram");
    rt_test_router_customer (s_f.pg, b, "taras", "instagram");
    r = s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    snprintf (cb, sizeof cb, "%s", r.conversation_id);
    before = s_snapshot ();
    s_merge (a, b, merge_id);
    /* Moved whole, as it was: still open, still taras's. */
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                             " AND customer_id = '%s' AND status = 'open' AND assignee = 'taras'"
                             " AND unanswered = 1",
                             cb, a),
        1);
    assert_int_equal (
        rt_test_router_long (s_f.pg,
                             "SELECT count(*) FROM routing.conversations WHERE status <> "
                             "'resolved' AND customer_id = '%s'",
                             b),
        0);
    s_unmerge (merge_id);
    after = s_snapshot ();
    assert_string_equal (after, before);
    free (after);
    free (before);
}

static void
test_callbacks (void **state)
{
    char c[RT_UUID_STR_LEN + 1], err[512];
    routing_inbound_result_t r;
    long long item;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 3, true, NULL);
    rt_test_router_customer (s_f.pg, c, NULL, "phone");

    /* The shop called and the customer did not pick up: nothing asked. */
    r = s_call (c, "call_missed", "outbound", "+380501234567");
    assert_string_equal (r.conversation_id, "");
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.conversations"),
                      0);

    /* A missed call from them: a call-back item, counted, assigned. */
    r = s_call (c, "call_missed", "inbound", "+380501234567");
    assert_true (r.counted);
    assert_string_equal (r.assignee, "olena");
    assert_int_equal (s_callbacks ("olena"), 1);
    item =
        rt_test_router_long (s_f.pg, "SELECT seq FROM routing.timeline WHERE kind = 'call_back'");
    /* Marked done by the operator; again changes nothing. */
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (
        routing_callback_done (s_f.db, r.conversation_id, item, "olena", err, sizeof err),
        ROUTING_OK);
    assert_int_equal (
        routing_callback_done (s_f.db, r.conversation_id, item, "olena", err, sizeof err),
        ROUTING_OK);
    assert_int_equal (
        routing_callback_done (s_f.db, r.conversation_id, item + 1000, "olena", err, sizeof err),
        ROUTING_ERR_NOT_FOUND);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (s_callbacks ("olena"), 0);
    assert_int_equal (
        rt_test_router_long (
            s_f.pg, "SELECT count(*) FROM routing.timeline WHERE seq = %lld AND done_by = 'olena'",
            item),
        1);

    /* Another missed call; an outbound call to another number leaves it
     * open, one to that number closes it. */
    r = s_call (c, "call_missed", "inbound", "+380501234567");
    assert_int_equal (s_callbacks ("olena"), 1);
    s_call (c, "call_started", "outbound", "+380661112233");
    assert_int_equal (s_callbacks ("olena"), 1);
    s_call (c, "call_started", "outbound", "+380501234567");
    assert_int_equal (s_callbacks ("olena"), 0);
    assert_int_equal (rt_test_router_long (
                          s_f.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'call_back'"
                                  " AND done_event IS NOT NULL AND done_by IS NULL"),
                      1);
    /* The outbound calls asked nothing of anyone. */
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations"),
                      2);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
}

static void
test_order_events (void **state)
{
    char c[RT_UUID_STR_LEN + 1], lone[RT_UUID_STR_LEN + 1], ev[RT_UUID_STR_LEN + 1];
    char conv[RT_UUID_STR_LEN + 1], err[512];
    const char *summary = "{\"order_id\":\"A-1001\",\"total\":\"1250.00 UAH\","
                          "\"note\":\"<b>'; DROP TABLE x;--\"}";
    routing_inbound_result_t r;
    bool added;
    (void)state;
    rt_test_router_team (s_f.pg, "sales", "balanced", 0);
    rt_test_router_operator (&s_f, "olena", "sales", 3, true, NULL);
    rt_test_router_customer (s_f.pg, c, NULL, "telegram");
    rt_test_router_customer (s_f.pg, lone, NULL, "telegram");
    r = s_inbound (c, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    rt_test_router_uuid (ev);
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (
        routing_order_event (s_f.db, c, ev, "order", summary, 0, conv, &added, err, sizeof err),
        ROUTING_OK);
    assert_true (added);
    assert_string_equal (conv, r.conversation_id);
    /* The same event again adds nothing. */
    assert_int_equal (
        routing_order_event (s_f.db, c, ev, "order", summary, 0, conv, &added, err, sizeof err),
        ROUTING_OK);
    assert_false (added);
    assert_string_equal (conv, r.conversation_id);
    assert_int_equal (
        routing_order_event (s_f.db, c, ev, "refund", summary, 0, conv, &added, err, sizeof err),
        ROUTING_ERR_INVALID);
    assert_int_equal (
        routing_order_event (s_f.db, c, ev, "order", "[1]", 0, conv, &added, err, sizeof err),
        ROUTING_ERR_INVALID);
    /* A customer with no conversation: recorded nowhere. */
    rt_test_router_uuid (ev);
    assert_int_equal (
        routing_order_event (s_f.db, lone, ev, "order", summary, 0, conv, &added, err, sizeof err),
        ROUTING_OK);
    assert_string_equal (conv, "");
    assert_false (added);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (
        rt_test_router_long (s_f.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'order'"),
        1);
    assert_int_equal (
        rt_test_router_long (
            s_f.pg,
            "SELECT count(*) FROM routing.timeline WHERE kind = 'order' AND body = '%s'::jsonb",
            "{\"order_id\":\"A-1001\",\"total\":\"1250.00 UAH\","
            "\"note\":\"<b>''; DROP TABLE x;--\"}"),
        1);
    assert_int_equal (rt_test_router_long (s_f.pg, "SELECT unanswered FROM routing.conversations"),
                      1);

    /* Resolved: the shipment goes to the latest conversation, which stays
     * resolved. */
    s_resolve (r.conversation_id);
    rt_test_router_uuid (ev);
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_order_event (s_f.db, c, ev, "shipment", "{\"tracking\":\"2040\"}", 0,
                                           conv, &added, err, sizeof err),
                      ROUTING_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_true (added);
    assert_string_equal (conv, r.conversation_id);
    assert_int_equal (
        rt_test_router_long (
            s_f.pg, "SELECT count(*) FROM routing.conversations WHERE status = 'resolved'"),
        1);
    assert_int_equal (rt_test_router_miscounted (s_f.pg), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_merge_joins_and_undo_restores, s_clean),
        cmocka_unit_test_setup (test_merge_moves_a_lone_conversation, s_clean),
        cmocka_unit_test_setup (test_callbacks, s_clean),
        cmocka_unit_test_setup (test_order_events, s_clean),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
