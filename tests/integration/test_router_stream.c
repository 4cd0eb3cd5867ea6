/*
 * routerd's operator event stream (GET /v1/stream) across replicas: busd
 * and two retain-routerd processes (A and B) on one database, following
 * one clock file. An operator connected to A receives what was caused
 * through B or handled by either replica's consumer (an inbound message
 * published on the bus, a reply and a transfer posted on B), in order and
 * each once, exactly the rows of the feed their team may see; an operator
 * of another team connected at the same time gets none of them (and does
 * get their own team's event that came after). Disconnected, with more
 * events caused meanwhile, the operator reconnects to B with Last-Event-ID
 * (and to A with ?last_event_id=) and gets exactly the missed events: no
 * gap, no duplicate. A position retention has deleted gets "reset". On the
 * set clock an SLA warning and then the breach reach the stream. Writers
 * that commit out of seq order (the later transaction first, and rounds of
 * eight committing in reverse) are held back until the earlier ones end,
 * then given in order, and a reader resuming from before them gets the
 * same rows: the xid rule never skips. A replica stopped with streams
 * open ends them at once and exits cleanly. The answers (200 event stream, 400,
 * 401) are checked against the OpenAPI document by
 * tests/integration/openapi/check.mjs (node; fails without it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "rt_clock.h"
#include "rt_test.h"
#include "rt_test_api.h"
#include "rt_test_sse.h"

#define MIN_MS 60000LL

/* The care team's rule of who sees a row of routing.stream (api.h's). */
#define S_CARE_SEES                                                                                \
    "(s.team_id = 'care' OR o.team_id = 'care' OR (s.team_id IS NULL AND s.assignee IS NULL)"      \
    " OR s.prev_team_id = 'care' OR po.team_id = 'care')"
#define S_FROM_STREAM                                                                              \
    " FROM routing.stream s LEFT JOIN routing.operators o ON o.id = s.assignee"                    \
    " LEFT JOIN routing.operators po ON po.id = s.prev_assignee"

/* A routerd replica. */
typedef struct {
    pid_t pid;      /* the process */
    int admin_port; /* its admin port */
    int http_port;  /* its operator API */
    char name[8];   /* "a", "b" */
} s_routerd_t;

/* The test's world. */
static struct {
    char dsn[1024];      /* the database */
    char clock[1024];    /* the clock file every daemon follows */
    int64_t offset_ms;   /* how far it is moved */
    PGconn *pg;          /* the test's own connection */
    rt_test_busd_t busd; /* the bus */
    s_routerd_t a, b;    /* the replicas */
    char anna[80];       /* key of op-anna, operator in care */
    char bob[80];        /* key of op-bob, operator in care */
    char olga[80];       /* key of op-olga, operator in sales */
    char root[80];       /* key of op-root, admin */
    char c1[40];         /* the first customer's conversation */
    char last[48];       /* the last event id anna's first session got */
    rt_test_api_t api;   /* the answers for the OpenAPI check */
} s;

/* --- the operators' streams --- */

/* The ids of the events received, comma-joined (owned). */
static char *
s_sse_ids (rt_test_sse_t *c)
{
    size_t n, used = 0;
    rt_test_sse_event_t *evs = rt_test_sse_events (c, &n);
    char *out = calloc (1, n * 48 + 1);
    assert_non_null (out);
    for (size_t i = 0; i < n; i++)
        used += (size_t)sprintf (out + used, "%s%s", i ? "," : "", evs[i].id);
    rt_test_sse_events_free (evs, n);
    return out;
}

static const char *
s_conv_of (const rt_test_sse_event_t *ev)
{
    const char *id = json_string_value (json_object_get (ev->data, "conversation_id"));
    return id ? id : "";
}

/* Waits up to 30 s for an event of `kind` about conversation `conv`
 * (NULL: any) whose data's `field` (NULL: none) is `value`; fails
 * otherwise. */
static void
s_sse_wait (rt_test_sse_t *c, const char *kind, const char *conv, const char *path,
            const char *field, const char *value)
{
    for (int i = 0; i < 1500; i++) {
        size_t n;
        rt_test_sse_event_t *evs = rt_test_sse_events (c, &n);
        bool found = false;
        for (size_t j = 0; j < n && !found; j++) {
            json_t *d = evs[j].data;
            if (strcmp (evs[j].kind, kind) != 0 || (conv && strcmp (s_conv_of (&evs[j]), conv)))
                continue;
            if (path)
                d = json_object_get (d, path);
            found = !field || (json_string_value (json_object_get (d, field)) &&
                               strcmp (json_string_value (json_object_get (d, field)), value) == 0);
        }
        rt_test_sse_events_free (evs, n);
        if (found)
            return;
        if (atomic_load (&c->done))
            fail_msg ("the stream ended (curl %d, status %ld) waiting for %s", c->result, c->status,
                      kind);
        usleep (20000);
    }
    pthread_mutex_lock (&c->lock);
    fail_msg ("no %s event (%s %s=%s) within 30 s; got:\n%s", kind, path ? path : "",
              field ? field : "", value ? value : "", c->buf ? c->buf : "");
    pthread_mutex_unlock (&c->lock);
}

/* Waits up to 30 s until the last event received is `id`. */
static void
s_sse_wait_id (rt_test_sse_t *c, const char *id)
{
    for (int i = 0; i < 1500; i++) {
        char *ids = s_sse_ids (c);
        const char *comma = strrchr (ids, ',');
        bool at = strcmp (comma ? comma + 1 : ids, id) == 0;
        free (ids);
        if (at)
            return;
        usleep (20000);
    }
    fail_msg ("the stream did not reach event %s within 30 s", id);
}

/* --- the world --- */

static void s_sql (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static void
s_sql (const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    rt_test_pg_exec (s.pg, sql);
}

/* The first column of the first row as text (owned; "" when none). */
static char *s_text (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *
s_text (const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    PGresult *res;
    char *out;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    res = PQexec (s.pg, sql);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQerrorMessage (s.pg));
    out = strdup (PQntuples (res) > 0 ? PQgetvalue (res, 0, 0) : "");
    PQclear (res);
    assert_non_null (out);
    return out;
}

/* The ids of the feed's rows after `after` ("x-s") that care may see, in
 * order, comma-joined (owned). */
static char *
s_care_ids_after (const char *after)
{
    char x[24] = "0", q[24] = "0";
    sscanf (after, "%23[0-9]-%23[0-9]", x, q);
    return s_text ("SELECT coalesce(string_agg(s.xid || '-' || s.seq, ',' ORDER BY s.xid, s.seq),"
                   " '')" S_FROM_STREAM " WHERE (s.xid, s.seq) > ('%s'::xid8, %s) AND " S_CARE_SEES,
                   x, q);
}

/* The last id of the feed (among the rows whose transactions ended). */
static char *
s_feed_end (void)
{
    return s_text ("SELECT coalesce(max(xid || '-' || seq), '0-0') FROM (SELECT xid, seq FROM"
                   " routing.stream ORDER BY xid DESC, seq DESC LIMIT 1) t");
}

/* Moves every daemon's clock forward by ms. */
static void
s_clock_advance (int64_t ms)
{
    s.offset_ms += ms;
    assert_int_equal (rt_clock_file_set (s.clock, s.offset_ms, s.offset_ms), 0);
}

static void
s_routerd_start (s_routerd_t *r, const char *name)
{
    char dsn[1100], pub[96], admin[48], http[48], clock[1100], member[32], log[64];
    snprintf (r->name, sizeof r->name, "%s", name);
    r->admin_port = rt_test_free_port ();
    r->http_port = rt_test_free_port ();
    snprintf (dsn, sizeof dsn, "--pg-dsn=%s", s.dsn);
    snprintf (pub, sizeof pub, "--pub=%s", s.busd.pub);
    snprintf (admin, sizeof admin, "--admin=127.0.0.1:%d", r->admin_port);
    snprintf (http, sizeof http, "--http=127.0.0.1:%d", r->http_port);
    snprintf (clock, sizeof clock, "--clock-file=%s", s.clock);
    snprintf (member, sizeof member, "--member=routerd-%s", name);
    snprintf (log, sizeof log, "router_stream-routerd-%s.log", name);
    char *argv[] = {"retain-routerd",   dsn, pub, admin, http, clock, member, "--tick=200ms",
                    "--http-threads=2", NULL};
    r->pid = rt_test_spawn ("retain-routerd", argv, NULL, log);
    if (!rt_test_wait_ready (r->admin_port, 30000))
        fail_msg ("retain-routerd %s not ready; see %s/%s", name, rt_test_dir (), log);
}

static void
s_operator (const char *id, const char *team, const char *role, char *key)
{
    const char *args[] = {"operator", "add", "--id",   id,   "--name", id,
                          "--team",   team,  "--role", role, NULL};
    char *out = NULL;
    const char *t;
    assert_int_equal (rt_test_retainctl (s.dsn, args, &out), 0);
    t = strstr (out, "token: ");
    assert_non_null (t);
    sscanf (t + 7, "%79s", key);
    free (out);
}

static void
s_team (const char *id)
{
    const char *args[] = {"team", "add", "--id", id, "--name", id, NULL};
    assert_int_equal (rt_test_retainctl (s.dsn, args, NULL), 0);
}

/* An inbound Telegram message from user `from`, published on the bus for
 * whichever replica's consumer owns its partition. */
static void
s_inbound (const char *from, const char *external_id, const char *text)
{
    char key[64], json[512];
    snprintf (key, sizeof key, "telegram:shop-bot:%s", from);
    snprintf (json, sizeof json,
              "{\"channel\": \"TELEGRAM\", \"inbox\": \"shop-bot\", \"external_id\": \"%s\","
              " \"external_user_id\": \"%s\", \"display_name\": \"Olena\", \"text\": \"%s\"}",
              external_id, from, text);
    rt_test_retainctl_publish (s.busd.ingress, "router_stream-publish.log", "InboundMessage", key,
                               json, NULL);
}

/* Sends a request to a replica as `key`; returns the status, the body in
 * body (may be NULL). */
static long
s_call (const s_routerd_t *r, const char *method, const char *path, const char *key,
        const char *json, char *body, size_t bodylen)
{
    char auth[160];
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    rt_test_reply_t reply;
    long st;
    snprintf (auth, sizeof auth, "Authorization: Bearer %s", key);
    st = rt_test_http_request (r->http_port, method, path, json, json ? strlen (json) : 0, headers,
                               &reply);
    if (body)
        snprintf (body, bodylen, "%s", reply.body);
    return st;
}

/* Records an answer for the OpenAPI check. */
static void
s_seen (const char *method, long status, const char *type, const char *body)
{
    rt_test_api_record (&s.api, method, "/v1/stream", "/v1/stream", status, type, body);
}

static int
s_setup (void **state)
{
    (void)state;
    /* Only answers read here are recorded: the port is never called. */
    rt_test_api_open (&s.api, "router_stream", 0);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    snprintf (s.clock, sizeof s.clock, "%s/router_stream.clock", rt_test_dir ());
    assert_int_equal (rt_clock_file_set (s.clock, 0, 0), 0);
    rt_test_db_create ("router_stream", s.dsn, sizeof s.dsn);
    s.pg = rt_test_pg (s.dsn);
    rt_test_busd_start (&s.busd, s.dsn, "router_stream-busd.log", NULL, true);
    s_routerd_start (&s.a, "a");
    s_routerd_start (&s.b, "b");

    s_team ("care");
    s_team ("sales");
    s_operator ("op-anna", "care", "operator", s.anna);
    s_operator ("op-bob", "care", "operator", s.bob);
    s_operator ("op-olga", "sales", "operator", s.olga);
    s_operator ("op-root", "care", "admin", s.root);
    /* anna and bob take the conversations; nobody else gets one. */
    s_sql ("UPDATE routing.operators SET presence = 'online', presence_at = now()"
           " WHERE id IN ('op-anna', 'op-bob')");
    s_sql ("UPDATE routing.operators SET capacity = 0 WHERE id IN ('op-olga', 'op-root')");
    /* A first response within 10 minutes of wall time, warned at half. */
    s_sql ("INSERT INTO routing.sla_policies (name, policy, created_at, updated_at) VALUES"
           " ('wall 10m', '{\"name\": \"wall 10m\", \"clock\": \"wall\","
           " \"first_response_minutes\": 10, \"warning\": {\"percent\": 50}}', now(), now())");
    /* A conversation of sales', for olga's stream. */
    s_sql ("INSERT INTO crm.customers (id, name) VALUES"
           " ('0190a000-0000-7000-8000-0000000000b1', 'Ahmed')");
    s_sql ("INSERT INTO routing.conversations (id, customer_id, team_id, status, channel,"
           " created_at) VALUES ('0190a000-0000-7000-8000-0000000000b2',"
           " '0190a000-0000-7000-8000-0000000000b1', 'sales', 'pending', 'telegram', now())");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s.a.pid > 0)
        rt_test_stop (s.a.pid, "retain-routerd a");
    if (s.b.pid > 0)
        rt_test_stop (s.b.pid, "retain-routerd b");
    if (s.busd.pid > 0)
        rt_test_stop (s.busd.pid, "retain-busd");
    if (s.pg)
        PQfinish (s.pg);
    curl_global_cleanup ();
    return 0;
}

/* --- tests --- */

/* Events caused through B and by the consumers reach anna on A, in order,
 * each once, exactly the feed's rows care may see; olga, in sales, gets
 * none of them. */
static void
test_across_replicas (void **state)
{
    rt_test_sse_t *anna, *olga;
    char body[4096], path[128], json[256], *start, *want, *got, *assignee, *other;
    size_t n;
    rt_test_sse_event_t *evs;
    (void)state;
    start = s_feed_end ();
    anna = rt_test_sse_open (s.a.http_port, s.anna, NULL, NULL);
    olga = rt_test_sse_open (s.a.http_port, s.olga, NULL, NULL);
    /* Both streams are placed once the reader answers their first round;
     * a keepalive-free way to know: the retry field has arrived. */
    for (int i = 0; i < 500; i++) {
        bool up;
        pthread_mutex_lock (&anna->lock);
        up = anna->buf && strstr (anna->buf, "retry: 2000");
        pthread_mutex_unlock (&anna->lock);
        if (up)
            break;
        usleep (10000);
    }
    usleep (300000);

    /* An inbound message, handled by whichever replica's consumer. */
    s_inbound ("501", "m-1", "Where is my parcel?");
    s_sse_wait (anna, "message", NULL, "message", "text", "Where is my parcel?");
    evs = rt_test_sse_events (anna, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp (evs[i].kind, "message") == 0)
            snprintf (s.c1, sizeof s.c1, "%s", s_conv_of (&evs[i]));
    }
    rt_test_sse_events_free (evs, n);
    assert_int_equal (strlen (s.c1), 36);
    assignee = s_text ("SELECT assignee FROM routing.conversations WHERE id = '%s'", s.c1);
    assert_true (strcmp (assignee, "op-anna") == 0 || strcmp (assignee, "op-bob") == 0);

    /* A reply posted on B, by its operator. */
    snprintf (path, sizeof path, "/v1/conversations/%s/messages", s.c1);
    assert_int_equal (s_call (&s.b, "POST", path,
                              strcmp (assignee, "op-anna") == 0 ? s.anna : s.bob,
                              "{\"text\": \"It left the warehouse today.\"}", body, sizeof body),
                      202);
    s_sse_wait (anna, "message", s.c1, "message", "text", "It left the warehouse today.");
    s_sse_wait (anna, "counters", s.c1, NULL, NULL, NULL);

    /* A transfer on B to the other care operator. */
    other = strcmp (assignee, "op-anna") == 0 ? "op-bob" : "op-anna";
    snprintf (path, sizeof path, "/v1/conversations/%s/assign", s.c1);
    snprintf (json, sizeof json, "{\"operator_id\": \"%s\"}", other);
    assert_int_equal (s_call (&s.b, "POST", path, s.root, json, body, sizeof body), 200);
    s_sse_wait (anna, "assignment", s.c1, NULL, "assignee", other);

    /* Sales' own event, after all of care's: olga gets it, and only it. */
    s_sql ("UPDATE routing.conversations SET unanswered = 1, waiting_since = now()"
           " WHERE id = '0190a000-0000-7000-8000-0000000000b2'");
    s_sse_wait (olga, "counters", "0190a000-0000-7000-8000-0000000000b2", NULL, NULL, NULL);
    evs = rt_test_sse_events (olga, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp (s_conv_of (&evs[i]), "0190a000-0000-7000-8000-0000000000b2") != 0)
            fail_msg ("olga (sales) got a %s event of %s", evs[i].kind, s_conv_of (&evs[i]));
    }
    rt_test_sse_events_free (evs, n);

    /* anna's events are exactly care's rows of the feed since she came,
     * in order, each once (the sales row is not among them). */
    want = s_care_ids_after (start);
    s_sse_wait_id (anna, strrchr (want, ',') ? strrchr (want, ',') + 1 : want);
    got = s_sse_ids (anna);
    assert_string_equal (got, want);
    assert_non_null (strchr (want, ',')); /* several events, not one */
    snprintf (s.last, sizeof s.last, "%s", strrchr (got, ',') + 1);
    rt_test_sse_close (anna);
    rt_test_sse_close (olga);
    free (start);
    free (want);
    free (got);
    free (assignee);
}

/* Disconnected, with events caused meanwhile, anna resumes on B with
 * Last-Event-ID, and on A with ?last_event_id=: exactly what she missed. A
 * position retention deleted gets "reset". */
static void
test_resume (void **state)
{
    rt_test_sse_t *b, *a, *r;
    char body[4096], path[128], query[96], *want, *got, *end;
    const char *op;
    size_t n;
    rt_test_sse_event_t *evs;
    (void)state;
    assert_true (s.last[0]);
    s_inbound ("501", "m-2", "And the tracking number?");
    op = s_text ("SELECT assignee FROM routing.conversations WHERE id = '%s'", s.c1);
    snprintf (path, sizeof path, "/v1/conversations/%s/messages", s.c1);
    assert_int_equal (
        rt_test_pg_wait_long (s.pg, "SELECT count(*) FROM routing.timeline WHERE kind = 'inbound'",
                              2, 30000),
        2);
    assert_int_equal (s_call (&s.b, "POST", path, strcmp (op, "op-anna") == 0 ? s.anna : s.bob,
                              "{\"text\": \"20450000000000.\"}", body, sizeof body),
                      202);
    free ((char *)op);
    want = s_care_ids_after (s.last);
    assert_non_null (strchr (want, ','));

    b = rt_test_sse_open (s.b.http_port, s.anna, s.last, NULL);
    snprintf (query, sizeof query, "last_event_id=%s", s.last);
    a = rt_test_sse_open (s.a.http_port, s.anna, NULL, query);
    s_sse_wait_id (b, strrchr (want, ',') + 1);
    s_sse_wait_id (a, strrchr (want, ',') + 1);
    usleep (500000); /* nothing more comes */
    got = s_sse_ids (b);
    assert_string_equal (got, want);
    free (got);
    got = s_sse_ids (a);
    assert_string_equal (got, want);
    free (got);
    s_sse_wait (b, "message", s.c1, "message", "text", "And the tracking number?");
    s_sse_wait (b, "message", s.c1, "message", "text", "20450000000000.");
    pthread_mutex_lock (&b->lock);
    assert_non_null (strstr (b->buf, "retry: 2000\n"));
    pthread_mutex_unlock (&b->lock);
    s_seen ("GET", 200, "text/event-stream", "");
    rt_test_sse_close (a);
    rt_test_sse_close (b);

    /* Retention deletes what anna last saw: resuming from it is a reset,
     * whose id is where the live feed is. */
    end = s_feed_end ();
    free (s_text ("SELECT routing.stream_prune('0 seconds')::text"));
    r = rt_test_sse_open (s.b.http_port, s.anna, s.last, NULL);
    s_sse_wait (r, "reset", NULL, NULL, NULL, NULL);
    evs = rt_test_sse_events (r, &n);
    assert_true (n >= 1);
    assert_string_equal (evs[0].kind, "reset");
    assert_string_equal (evs[0].id, end);
    rt_test_sse_events_free (evs, n);
    rt_test_sse_close (r);
    free (end);
    free (want);

    /* Bad input: an id this stream never gave, no key. */
    {
        char auth[160];
        const char *h[] = {auth, "Last-Event-ID: yesterday", NULL};
        rt_test_reply_t reply;
        snprintf (auth, sizeof auth, "Authorization: Bearer %s", s.anna);
        assert_int_equal (
            rt_test_http_request (s.a.http_port, "GET", "/v1/stream", NULL, 0, h, &reply), 400);
        assert_string_equal (reply.type, "application/problem+json");
        assert_non_null (strstr (reply.body, "bad-last-event-id"));
        s_seen ("GET", reply.status, reply.type, reply.body);
        assert_int_equal (
            rt_test_http_request (s.a.http_port, "GET", "/v1/stream", NULL, 0, NULL, &reply), 401);
        s_seen ("GET", reply.status, reply.type, reply.body);
    }
}

/* On the set clock: the SLA's warning at half of 10 minutes, then the
 * breach, reach the stream of the operator on the other replica. */
static void
test_sla_events (void **state)
{
    rt_test_sse_t *c;
    char conv[40];
    char *id;
    (void)state;
    c = rt_test_sse_open (s.a.http_port, s.anna, NULL, NULL);
    usleep (500000);
    s_inbound ("502", "m-3", "Hello?");
    assert_int_equal (
        rt_test_pg_wait_long (s.pg,
                              "SELECT count(*) FROM routing.sla_timers t JOIN routing.conversations"
                              " c ON c.id = t.conversation_id JOIN crm.identities i ON"
                              " i.customer_id = c.customer_id WHERE i.external_user_id = '502'",
                              1, 30000),
        1);
    id = s_text ("SELECT c.id FROM routing.conversations c JOIN crm.identities i ON"
                 " i.customer_id = c.customer_id WHERE i.external_user_id = '502'");
    snprintf (conv, sizeof conv, "%s", id);
    free (id);
    s_sse_wait (c, "message", conv, "message", "text", "Hello?");
    s_clock_advance (6 * MIN_MS);
    s_sse_wait (c, "sla_warning", conv, "sla", "kind", "first_response");
    s_clock_advance (5 * MIN_MS);
    s_sse_wait (c, "sla_breached", conv, "sla", "kind", "first_response");
    rt_test_sse_close (c);
}

/* Transactions that commit out of seq order: nothing is given while an
 * earlier one is open, then everything, in order, each once; a reader
 * resuming from before them gets the same. */
static void
test_commit_order (void **state)
{
    enum { CONNS = 8, ROUNDS = 5 };
    PGconn *w[CONNS];
    rt_test_sse_t *c, *again;
    char sql[512], *start, *want, *got;
    size_t n;
    rt_test_sse_event_t *evs;
    int marks = 0;
    (void)state;
    for (int i = 0; i < CONNS; i++)
        w[i] = rt_test_pg (s.dsn);
    start = s_feed_end ();
    c = rt_test_sse_open (s.b.http_port, s.root, NULL, NULL);
    usleep (500000);

#define S_MARK_SQL(k)                                                                              \
    (snprintf (sql, sizeof sql,                                                                    \
               "INSERT INTO routing.stream (kind, conversation_id, team_id, payload) VALUES"       \
               " ('counters', '%s', 'care', jsonb_build_object('conversation_id', '%s',"           \
               " 'mark', '%d')); NOTIFY routing_stream",                                           \
               s.c1, s.c1, (k)),                                                                   \
     sql)
    /* The later transaction commits first: held back until the earlier
     * one ends. */
    rt_test_pg_exec (w[0], "BEGIN");
    rt_test_pg_exec (w[0], S_MARK_SQL (marks++));
    rt_test_pg_exec (w[1], "BEGIN");
    rt_test_pg_exec (w[1], S_MARK_SQL (marks++));
    rt_test_pg_exec (w[1], "COMMIT");
    usleep (1500000);
    evs = rt_test_sse_events (c, &n);
    for (size_t i = 0; i < n; i++) {
        if (json_object_get (evs[i].data, "mark"))
            fail_msg ("a row was given while an older transaction was still open");
    }
    rt_test_sse_events_free (evs, n);
    rt_test_pg_exec (w[0], "COMMIT");
    s_sse_wait (c, "counters", s.c1, NULL, "mark", "1");

    /* Rounds of eight, committing in reverse. */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CONNS; i++) {
            rt_test_pg_exec (w[i], "BEGIN");
            rt_test_pg_exec (w[i], S_MARK_SQL (marks++));
        }
        for (int i = CONNS - 1; i >= 0; i--) {
            rt_test_pg_exec (w[i], "COMMIT");
            usleep (30000);
        }
    }
#undef S_MARK_SQL
    want = s_text ("SELECT string_agg(xid || '-' || seq, ',' ORDER BY xid, seq) FROM"
                   " routing.stream WHERE payload ? 'mark'");
    s_sse_wait_id (c, strrchr (want, ',') + 1);
    evs = rt_test_sse_events (c, &n);
    {
        char *marked = calloc (1, n * 48 + 1);
        size_t used = 0;
        int count = 0;
        assert_non_null (marked);
        for (size_t i = 0; i < n; i++) {
            if (!json_object_get (evs[i].data, "mark"))
                continue;
            used += (size_t)sprintf (marked + used, "%s%s", count ? "," : "", evs[i].id);
            count++;
        }
        assert_int_equal (count, marks);
        assert_string_equal (marked, want);
        free (marked);
    }
    rt_test_sse_events_free (evs, n);

    /* A reader resuming from before them: the same rows, as a backlog. */
    again = rt_test_sse_open (s.a.http_port, s.root, start, NULL);
    got = NULL;
    {
        char *all = s_text ("SELECT string_agg(xid || '-' || seq, ',' ORDER BY xid, seq) FROM"
                            " routing.stream WHERE (xid, seq) > ('%.*s'::xid8, %s)",
                            (int)(strchr (start, '-') - start), start, strchr (start, '-') + 1);
        s_sse_wait_id (again, strrchr (all, ',') + 1);
        got = s_sse_ids (again);
        assert_string_equal (got, all);
        free (all);
    }
    rt_test_sse_close (again);
    rt_test_sse_close (c);
    for (int i = 0; i < CONNS; i++)
        PQfinish (w[i]);
    free (start);
    free (want);
    free (got);
}

/* HEAD: the stream's head alone. */
static void
test_head (void **state)
{
    char auth[160], url[128];
    struct curl_slist *h = NULL;
    rt_test_reply_t reply = {0};
    CURL *curl = curl_easy_init ();
    char *ct = NULL;
    (void)state;
    assert_non_null (curl);
    snprintf (auth, sizeof auth, "Authorization: Bearer %s", s.root);
    snprintf (url, sizeof url, "http://127.0.0.1:%d/v1/stream", s.b.http_port);
    h = curl_slist_append (h, auth);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, rt_test_reply_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 10L);
    assert_int_equal (curl_easy_perform (curl), CURLE_OK);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_getinfo (curl, CURLINFO_CONTENT_TYPE, &ct);
    assert_int_equal (reply.status, 200);
    assert_non_null (ct);
    assert_string_equal (ct, "text/event-stream");
    assert_int_equal (reply.len, 0);
    curl_easy_cleanup (curl);
    curl_slist_free_all (h);
}

/* A replica stopped (SIGTERM) with streams open: they end with a whole
 * response, at once, and the replica exits cleanly (its leak check
 * included); the other replica still streams. */
static void
test_stop_with_streams (void **state)
{
    rt_test_sse_t *a1, *a2, *b;
    int64_t t0;
    (void)state;
    a1 = rt_test_sse_open (s.a.http_port, s.anna, NULL, NULL);
    a2 = rt_test_sse_open (s.a.http_port, s.root, NULL, NULL);
    b = rt_test_sse_open (s.b.http_port, s.root, NULL, NULL);
    for (int i = 0; i < 500; i++) {
        bool up;
        pthread_mutex_lock (&a1->lock);
        up = a1->len > 0;
        pthread_mutex_unlock (&a1->lock);
        pthread_mutex_lock (&a2->lock);
        up = up && a2->len > 0;
        pthread_mutex_unlock (&a2->lock);
        if (up)
            break;
        usleep (10000);
    }
    t0 = rt_test_now_ms ();
    rt_test_stop (s.a.pid, "retain-routerd a");
    s.a.pid = 0;
    if (rt_test_now_ms () - t0 > 5000)
        fail_msg ("routerd took %lld ms to stop with streams open",
                  (long long)(rt_test_now_ms () - t0));
    for (int i = 0; i < 250 && !(atomic_load (&a1->done) && atomic_load (&a2->done)); i++)
        usleep (20000);
    assert_true (atomic_load (&a1->done));
    assert_true (atomic_load (&a2->done));
    assert_int_equal (a1->result, CURLE_OK);
    assert_int_equal (a2->result, CURLE_OK);
    assert_int_equal (a1->status, 200);
    s_sql ("UPDATE routing.conversations SET unanswered = 2, waiting_since = now()"
           " WHERE id = '0190a000-0000-7000-8000-0000000000b2'");
    s_sse_wait (b, "counters", "0190a000-0000-7000-8000-0000000000b2", NULL, NULL, NULL);
    rt_test_sse_close (a1);
    rt_test_sse_close (a2);
    rt_test_sse_close (b);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_across_replicas),
        cmocka_unit_test (test_resume),
        cmocka_unit_test (test_sla_events),
        cmocka_unit_test (test_commit_order),
        cmocka_unit_test (test_head),
        cmocka_unit_test (test_stop_with_streams),
        /* The answers recorded above, against the OpenAPI document. */
        cmocka_unit_test_prestate (rt_test_api_check_router, &s.api),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
