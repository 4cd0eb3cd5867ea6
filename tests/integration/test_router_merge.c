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
#include "rt_migrate.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "rt_uuid.h"

static struct {
    char dsn[1024];         /* the test database */
    char clock[1024];       /* the clock file this process follows */
    PGconn *pg;             /* for assertions */
    rt_db_t *db;            /* the connection under test */
    rt_db_t *db2;           /* unused second handle (s_connect's pair) */
    identity_hooks_t hooks; /* routing's merge hooks on db */
} s_f;

/* --- helpers --- */

static rt_db_t *
s_connect (const char *app)
{
    char err[512];
    rt_db_t *db = rt_db_new (s_f.dsn, app);
    assert_non_null (db);
    assert_int_equal (rt_db_connect (db), 0);
    if (rt_outbox_prepare (db) != 0)
        fail_msg ("rt_outbox_prepare: %s", rt_db_error (db));
    if (identity_prepare (db, err, sizeof err) != 0)
        fail_msg ("identity_prepare: %s", err);
    if (routing_prepare (db, err, sizeof err) != 0)
        fail_msg ("routing_prepare: %s", err);
    return db;
}

static int
s_setup (void **state)
{
    char err[512];
    rt_db_t *db;
    (void)state;
    memset (&s_f, 0, sizeof s_f);
    snprintf (s_f.clock, sizeof s_f.clock, "%s/merge.clock", rt_test_dir ());
    assert_int_equal (rt_clock_file_set (s_f.clock, 0, 0), 0);
    assert_int_equal (rt_clock_init (s_f.clock), 0);
    rt_test_db_create ("router_merge", s_f.dsn, sizeof s_f.dsn);
    db = rt_db_new (s_f.dsn, "router-merge-migrate");
    assert_int_equal (rt_db_connect (db), 0);
    if (rt_outbox_migrate (db, err, sizeof err) < 0)
        fail_msg ("outbox migrations: %s", err);
    if (rt_migrate_apply (db, &rt_migrations_crm, err, sizeof err) < 1)
        fail_msg ("crm migrations: %s", err);
    if (rt_migrate_apply (db, &rt_migrations_routing, err, sizeof err) < 1)
        fail_msg ("routing migrations: %s", err);
    rt_db_destroy (&db);
    s_f.db = s_connect ("router-merge-a");
    s_f.db2 = NULL;
    {
        char herr[512];
        if (routing_merge_hooks (s_f.db, &s_f.hooks, herr, sizeof herr) != 0)
            fail_msg ("routing_merge_hooks: %s", herr);
    }
    s_f.pg = rt_test_pg (s_f.dsn);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_db_destroy (&s_f.db);
    rt_db_destroy (&s_f.db2);
    PQfinish (s_f.pg);
    return 0;
}

static int
s_clean (void **state)
{
    (void)state;
    assert_int_equal (rt_clock_file_set (s_f.clock, 0, 0), 0);
    rt_test_pg_exec (s_f.pg, "TRUNCATE routing.timeline, routing.conversations, routing.operators,"
                             " routing.teams, crm.merge_suggestions, crm.merges,"
                             " crm.contact_points, crm.identities, crm.customers, outbox.pending");
    return 0;
}

static void
s_clock_advance (int64_t ms)
{
    int64_t wall, mono;
    rt_clock_offsets (&wall, &mono);
    assert_int_equal (rt_clock_file_set (s_f.clock, wall + ms, mono + ms), 0);
}

static void s_sql (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static void
s_sql (const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    rt_test_pg_exec (s_f.pg, sql);
}

static long long s_long (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static long long
s_long (const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    return rt_test_pg_long (s_f.pg, sql);
}

static void
s_team (const char *id, const char *policy, long long wait_ms)
{
    s_sql ("INSERT INTO routing.teams (id, name, policy, manager_wait_ms)"
           " VALUES ('%s', '%s', '%s', %lld)",
           id, id, policy, wait_ms);
}

/* An operator, online (through routing_presence) or not. */
static void
s_operator (const char *id, const char *team, int capacity, bool online, const char *languages)
{
    char err[512];
    s_sql ("INSERT INTO routing.operators (id, name, team_id, capacity, languages)"
           " VALUES ('%s', '%s', '%s', %d, '%s')",
           id, id, team, capacity, languages ? languages : "{}");
    if (online) {
        assert_int_equal (rt_db_begin (s_f.db), 0);
        if (routing_presence (s_f.db, id, "online", rt_clock_now_ms (), NULL, err, sizeof err) !=
            ROUTING_OK)
            fail_msg ("presence: %s", err);
        assert_int_equal (rt_db_commit (s_f.db), 0);
    }
}

/* A customer (manager NULL for none) with identities on the channels
 * named ("telegram,instagram"). */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *manager, const char *channels)
{
    rt_uuid_t u = rt_uuid_v7 ();
    char list[256], *save = NULL, *ch;
    rt_uuid_format (&u, id);
    if (manager)
        s_sql ("INSERT INTO crm.customers (id, manager) VALUES ('%s', '%s')", id, manager);
    else
        s_sql ("INSERT INTO crm.customers (id) VALUES ('%s')", id);
    snprintf (list, sizeof list, "%s", channels ? channels : "");
    for (ch = strtok_r (list, ",", &save); ch; ch = strtok_r (NULL, ",", &save))
        s_sql ("INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
               " VALUES ('%s', 'main', '%s', '%s')",
               ch, id, id);
}

static void
s_fresh (char id[RT_UUID_STR_LEN + 1])
{
    rt_uuid_t u = rt_uuid_v7 ();
    rt_uuid_format (&u, id);
}

/* An inbound event on db in a transaction of its own; event_id NULL for
 * a fresh one. Returns routing_inbound's status (the result in out). */
static routing_status_t
s_inbound_on (rt_db_t *db, const char *customer, Retain__V1__Channel channel, const char *event,
              const char *event_id, routing_inbound_result_t *out)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    routing_inbound_t in;
    routing_status_t st;

    if (!event_id) {
        s_fresh (id);
        event_id = id;
    }
    memset (&in, 0, sizeof in);
    in.customer_id = customer;
    in.event_id = event_id;
    in.channel = channel;
    in.inbox = "main";
    in.event = event;
    in.text = "Where is my parcel? Де моя посилка? <b>'; DROP TABLE x;--";
    if (rt_db_begin (db) != 0)
        return ROUTING_ERR_DB;
    st = routing_inbound (db, &in, out, err, sizeof err);
    if (st != ROUTING_OK || rt_db_commit (db) != 0) {
        rt_db_rollback (db);
        return st != ROUTING_OK ? st : ROUTING_ERR_DB;
    }
    return ROUTING_OK;
}

static routing_inbound_result_t
s_inbound (const char *customer, Retain__V1__Channel channel, const char *event,
           const char *event_id)
{
    routing_inbound_result_t out;
    routing_status_t st = s_inbound_on (s_f.db, customer, channel, event, event_id, &out);
    if (st != ROUTING_OK)
        fail_msg ("routing_inbound: %d %s", st, rt_db_error (s_f.db));
    return out;
}

/* A reply on db in a transaction of its own (with its send). */
static routing_status_t
s_reply (const char *conv, const char *op, Retain__V1__Channel channel, const char *message_id,
         routing_outbound_result_t *out)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    routing_outbound_t in;
    routing_status_t st;

    if (!message_id) {
        s_fresh (id);
        message_id = id;
    }
    memset (&in, 0, sizeof in);
    in.conversation_id = conv;
    in.operator_id = op;
    in.message_id = message_id;
    in.text = "It left the warehouse today";
    in.channel = channel;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    st = routing_outbound (s_f.db, &in, out, err, sizeof err);
    if (st == ROUTING_OK)
        st = routing_outbound_emit (s_f.db, &in, out, err, sizeof err);
    if (st != ROUTING_OK) {
        rt_db_rollback (s_f.db);
        return st;
    }
    assert_int_equal (rt_db_commit (s_f.db), 0);
    return st;
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

/* Conversations whose counter or wait differs from a recount of their
 * timeline (counted entries after the last reply). */
static long long
s_miscounted (void)
{
    return s_long (
        "SELECT count(*) FROM routing.conversations c, LATERAL (SELECT count(*) AS n,"
        " min(t.occurred_at) AS since FROM routing.timeline t WHERE t.conversation_id = c.id"
        " AND t.counted AND t.seq > COALESCE((SELECT max(o.seq) FROM routing.timeline o"
        " WHERE o.conversation_id = c.id AND o.kind = 'outbound'), 0)) r"
        " WHERE c.unanswered <> r.n OR c.waiting_since IS DISTINCT FROM r.since");
}

static void
s_merge (const char *survivor, const char *absorbed, char merge_id[RT_UUID_STR_LEN + 1])
{
    char err[512];
    identity_status_t st;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    st = identity_merge (s_f.db, survivor, absorbed, "olena", "same person", NULL, &s_f.hooks,
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
    st = identity_unmerge (s_f.db, merge_id, "olena", &s_f.hooks, err, sizeof err);
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

    s_fresh (id);
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
    s_team ("sales", "balanced", 0);
    s_operator ("olena", "sales", 3, true, NULL);
    s_operator ("taras", "sales", 3, true, NULL);
    s_customer (a, "olena", "telegram");
    s_customer (b, "taras", "instagram,phone");

    /* B wrote before, and that conversation was resolved: history. */
    r = s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    snprintf (old_b, sizeof old_b, "%s", r.conversation_id);
    s_resolve (old_b);
    /* B waits since first: two messages and a missed call, with taras. */
    s_clock_advance (60000);
    r = s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    snprintf (cb, sizeof cb, "%s", r.conversation_id);
    assert_string_equal (r.assignee, "taras");
    s_clock_advance (1000);
    s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    s_clock_advance (1000);
    r = s_call (b, "call_missed", "inbound", "+380501234567");
    assert_int_equal (r.unanswered, 3);
    /* A: answered once, then one more message, with olena. */
    s_clock_advance (1000);
    r = s_inbound (a, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    snprintf (ca, sizeof ca, "%s", r.conversation_id);
    assert_string_equal (r.assignee, "olena");
    s_clock_advance (1000);
    assert_int_equal (s_reply (ca, "olena", RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, &o),
                      ROUTING_OK);
    s_clock_advance (1000);
    s_inbound (a, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    assert_int_equal (s_miscounted (), 0);
    before = s_snapshot ();

    s_clock_advance (1000);
    s_merge (a, b, merge_id);
    /* One open conversation, A's: B's three waiting items wait there too. */
    assert_int_equal (s_long ("SELECT count(*) FROM routing.conversations WHERE status <> "
                              "'resolved'"),
                      1);
    assert_int_equal (s_long ("SELECT unanswered FROM routing.conversations WHERE id = '%s'", ca),
                      4);
    assert_int_equal (s_long ("SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                              " AND waiting_since = (SELECT min(occurred_at) FROM routing.timeline"
                              " WHERE conversation_id = '%s' AND counted)",
                              ca, cb),
                      1);
    assert_int_equal (s_miscounted (), 0);
    /* B's conversations are A's now; the joined one closed, naming A's. */
    assert_int_equal (
        s_long ("SELECT count(*) FROM routing.conversations WHERE customer_id = '%s'", a), 3);
    assert_int_equal (s_long ("SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                              " AND status = 'resolved' AND merged_into = '%s'",
                              cb, ca),
                      1);
    /* taras's room is free again; olena has the one conversation. */
    olena = s_counts ("olena");
    taras = s_counts ("taras");
    assert_int_equal (olena.open, 1);
    assert_int_equal (olena.messages, 4);
    assert_int_equal (taras.open, 0);
    assert_int_equal (s_long ("SELECT open_count FROM routing.operators WHERE id = 'taras'"), 0);
    assert_int_equal (s_long ("SELECT open_count FROM routing.operators WHERE id = 'olena'"), 1);
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
    s_clock_advance (1000);
    s_unmerge (merge_id);
    after = s_snapshot ();
    assert_string_equal (after, before);
    free (after);
    assert_int_equal (s_miscounted (), 0);
    assert_int_equal (s_callbacks ("taras"), 1);
    assert_int_equal (s_callbacks ("olena"), 0);

    /* Merged again and answered in the joined conversation: the undo
     * recounts, nothing is counted twice or lost. */
    s_clock_advance (1000);
    s_merge (a, b, merge_id);
    s_clock_advance (1000);
    assert_int_equal (s_reply (ca, "olena", RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, &o),
                      ROUTING_OK);
    assert_int_equal (s_long ("SELECT unanswered FROM routing.conversations WHERE id = '%s'", ca),
                      0);
    s_clock_advance (1000);
    s_inbound (a, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    assert_int_equal (s_miscounted (), 0);
    s_unmerge (merge_id);
    assert_int_equal (s_miscounted (), 0);
    assert_int_equal (s_long ("SELECT unanswered FROM routing.conversations WHERE id = '%s'", ca),
                      1);
    assert_int_equal (s_long ("SELECT unanswered FROM routing.conversations WHERE id = '%s'"
                              " AND status = 'open' AND customer_id = '%s' AND assignee = 'taras'",
                              cb, b),
                      3);
    assert_int_equal (s_long ("SELECT open_count FROM routing.operators WHERE id = 'taras'"), 1);
    free (before);
}

static void
test_merge_moves_a_lone_conversation (void **state)
{
    char a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1], merge_id[RT_UUID_STR_LEN + 1];
    char cb[RT_UUID_STR_LEN + 1], *before, *after;
    routing_inbound_result_t r;
    (void)state;
    s_team ("sales", "balanced", 0);
    s_operator ("taras", "sales", 3, true, NULL);
    s_customer (a, NULL, "telegram");
    s_customer (b, "taras", "instagram");
    r = s_inbound (b, RETAIN__V1__CHANNEL__INSTAGRAM, NULL, NULL);
    snprintf (cb, sizeof cb, "%s", r.conversation_id);
    before = s_snapshot ();
    s_merge (a, b, merge_id);
    /* Moved whole, as it was: still open, still taras's. */
    assert_int_equal (s_long ("SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                              " AND customer_id = '%s' AND status = 'open' AND assignee = 'taras'"
                              " AND unanswered = 1",
                              cb, a),
                      1);
    assert_int_equal (s_long ("SELECT count(*) FROM routing.conversations WHERE status <> "
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
    s_team ("sales", "balanced", 0);
    s_operator ("olena", "sales", 3, true, NULL);
    s_customer (c, NULL, "phone");

    /* The shop called and the customer did not pick up: nothing asked. */
    r = s_call (c, "call_missed", "outbound", "+380501234567");
    assert_string_equal (r.conversation_id, "");
    assert_int_equal (s_long ("SELECT count(*) FROM routing.conversations"), 0);

    /* A missed call from them: a call-back item, counted, assigned. */
    r = s_call (c, "call_missed", "inbound", "+380501234567");
    assert_true (r.counted);
    assert_string_equal (r.assignee, "olena");
    assert_int_equal (s_callbacks ("olena"), 1);
    item = s_long ("SELECT seq FROM routing.timeline WHERE kind = 'call_back'");
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
        s_long ("SELECT count(*) FROM routing.timeline WHERE seq = %lld AND done_by = 'olena'",
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
    assert_int_equal (s_long ("SELECT count(*) FROM routing.timeline WHERE kind = 'call_back'"
                              " AND done_event IS NOT NULL AND done_by IS NULL"),
                      1);
    /* The outbound calls asked nothing of anyone. */
    assert_int_equal (s_long ("SELECT unanswered FROM routing.conversations"), 2);
    assert_int_equal (s_miscounted (), 0);
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
    s_team ("sales", "balanced", 0);
    s_operator ("olena", "sales", 3, true, NULL);
    s_customer (c, NULL, "telegram");
    s_customer (lone, NULL, "telegram");
    r = s_inbound (c, RETAIN__V1__CHANNEL__TELEGRAM, NULL, NULL);
    s_fresh (ev);
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
    s_fresh (ev);
    assert_int_equal (
        routing_order_event (s_f.db, lone, ev, "order", summary, 0, conv, &added, err, sizeof err),
        ROUTING_OK);
    assert_string_equal (conv, "");
    assert_false (added);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (s_long ("SELECT count(*) FROM routing.timeline WHERE kind = 'order'"), 1);
    assert_int_equal (
        s_long ("SELECT count(*) FROM routing.timeline WHERE kind = 'order' AND body = '%s'::jsonb",
                "{\"order_id\":\"A-1001\",\"total\":\"1250.00 UAH\","
                "\"note\":\"<b>''; DROP TABLE x;--\"}"),
        1);
    assert_int_equal (s_long ("SELECT unanswered FROM routing.conversations"), 1);

    /* Resolved: the shipment goes to the latest conversation, which stays
     * resolved. */
    s_resolve (r.conversation_id);
    s_fresh (ev);
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (routing_order_event (s_f.db, c, ev, "shipment", "{\"tracking\":\"2040\"}", 0,
                                           conv, &added, err, sizeof err),
                      ROUTING_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_true (added);
    assert_string_equal (conv, r.conversation_id);
    assert_int_equal (
        s_long ("SELECT count(*) FROM routing.conversations WHERE status = 'resolved'"), 1);
    assert_int_equal (s_miscounted (), 0);
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
