/*
 * retain-routerd's operator API over real sockets: busd and routerd
 * started as processes, teams, operators and their keys made with
 * retainctl, conversations written into crm and routing (this test is
 * about the API, not about how messages arrive). Each endpoint, each bad
 * input of the issue (401, 400, 404, 409, 422), team isolation (another
 * team's conversation is 404, like an unknown one), a reply replayed with
 * the same Idempotency-Key (the same message id, one
 * OutboundMessageRequested on the bus), text in several scripts and
 * strings that look like SQL or HTML returned verbatim.
 *
 * Every answer the test receives is recorded (rt_test_api), and the last
 * test checks the OpenAPI document and every answer against it with npm's
 * validators: the test fails when the document is invalid or an answer
 * does not match. Without node it fails, never skips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "rt_test.h"
#include "rt_test_api.h"

#define DOC RT_TEST_SOURCE_DIR "/services/router/api/openapi.json"

/* Conversations, by the team they belong to. */
#define C_CARE   "0190a000-0000-7000-8000-000000000001" /* care, anna's, 2 waiting */
#define C_SALES  "0190a000-0000-7000-8000-000000000002" /* sales, olga's */
#define C_QUEUE  "0190a000-0000-7000-8000-000000000003" /* care, nobody's */
#define C_NONE   "0190a000-0000-7000-8000-0000000000ff" /* exists nowhere */
#define CU_CARE  "0190a000-0000-7000-8000-0000000000a1"
#define CU_SALES "0190a000-0000-7000-8000-0000000000a2"
#define CU_QUEUE "0190a000-0000-7000-8000-0000000000a3"

#define TEXT_UK  "Привіт! Де моя посилка? 📦"
#define TEXT_SQL "'; DROP TABLE routing.timeline; -- <script>alert(1)</script> &amp;"

/* The test's world. */
static struct {
    char dsn[1024];      /* the database */
    PGconn *pg;          /* the test's own connection */
    rt_test_busd_t busd; /* the bus */
    pid_t routerd;       /* retain-routerd */
    int admin_port;      /* its admin port */
    int http_port;       /* its operator API */
    char anna[80];       /* key of op-anna, operator in care */
    char bob[80];        /* key of op-bob, operator in care */
    char sam[80];        /* key of op-sam, supervisor in care */
    char olga[80];       /* key of op-olga, operator in sales */
    char root[80];       /* key of op-root, admin */
    char full[80];       /* key of op-full, operator in care with no room */
    rt_test_api_t api;   /* the operator API, its answers recorded */
} s;

/* The ids of a page's items, comma-joined, into out. */
static void
s_ids (const rt_test_api_reply_t *r, char *out, size_t outlen)
{
    json_t *items = json_object_get (r->json, "items"), *it;
    size_t i;
    out[0] = '\0';
    assert_true (json_is_array (items));
    json_array_foreach (items, i, it)
    {
        size_t n = strlen (out);
        snprintf (out + n, outlen - n, "%s%s", n ? "," : "",
                  json_string_value (json_object_get (it, "id")));
    }
}

/* The token retainctl printed for a new operator, into key. */
static void
s_operator (const char *id, const char *team, const char *role, const char *capacity, char *key)
{
    const char *args[] = {"operator", "add",    "--id", id,           "--name", id,  "--team",
                          team,       "--role", role,   "--capacity", capacity, NULL};
    char *out = NULL;
    const char *t;
    assert_int_equal (rt_test_retainctl (s.dsn, args, &out), 0);
    t = strstr (out, "token: ");
    assert_non_null (t);
    sscanf (t + 7, "%79s", key);
    assert_true (strncmp (key, "rk_", 3) == 0);
    free (out);
}

static void
s_team (const char *id)
{
    const char *args[] = {"team", "add", "--id", id, "--name", id, NULL};
    assert_int_equal (rt_test_retainctl (s.dsn, args, NULL), 0);
}

static int
s_setup (void **state)
{
    char dsn[1100], pub[96], admin[48], http[48];
    (void)state;
    rt_test_db_create ("router_api", s.dsn, sizeof s.dsn);
    s.pg = rt_test_pg (s.dsn);
    rt_test_busd_start (&s.busd, s.dsn, "router_api-busd.log", NULL, true);
    s.admin_port = rt_test_free_port ();
    s.http_port = rt_test_free_port ();
    rt_test_api_open (&s.api, "router_api", s.http_port);
    snprintf (dsn, sizeof dsn, "--pg-dsn=%s", s.dsn);
    snprintf (pub, sizeof pub, "--pub=%s", s.busd.pub);
    snprintf (admin, sizeof admin, "--admin=127.0.0.1:%d", s.admin_port);
    snprintf (http, sizeof http, "--http=127.0.0.1:%d", s.http_port);
    char *argv[] = {"retain-routerd", dsn, pub, admin, http, "--http-threads=2", NULL};
    s.routerd = rt_test_spawn ("retain-routerd", argv, NULL, "router_api-routerd.log");
    if (!rt_test_wait_ready (s.admin_port, 30000))
        fail_msg ("retain-routerd not ready; see %s/router_api-routerd.log", rt_test_dir ());

    s_team ("care");
    s_team ("sales");
    s_operator ("op-anna", "care", "operator", "8", s.anna);
    s_operator ("op-bob", "care", "operator", "8", s.bob);
    s_operator ("op-sam", "care", "supervisor", "8", s.sam);
    s_operator ("op-olga", "sales", "operator", "8", s.olga);
    s_operator ("op-root", "care", "admin", "8", s.root);
    s_operator ("op-full", "care", "operator", "0", s.full);

    /* Three customers, each with a Telegram identity, and their
     * conversations: anna's in care (waiting the longest), olga's in
     * sales, one in care's queue. */
    rt_test_pg_exec (s.pg, "INSERT INTO crm.customers (id, name) VALUES"
                           " ('" CU_CARE "', 'Олена Коваленко'), ('" CU_SALES "', 'Ahmed'),"
                           " ('" CU_QUEUE "', '王芳')");
    rt_test_pg_exec (s.pg, "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                           " customer_id) VALUES ('telegram', 'shop-bot', '1', '" CU_CARE "'),"
                           " ('telegram', 'shop-bot', '2', '" CU_SALES "'),"
                           " ('telegram', 'shop-bot', '3', '" CU_QUEUE "')");
    rt_test_pg_exec (
        s.pg, "INSERT INTO routing.conversations (id, customer_id, team_id, assignee,"
              " channel, inbox, unanswered, waiting_since, queued_since, created_at) VALUES"
              " ('" C_CARE "', '" CU_CARE "', 'care', 'op-anna', 'telegram', 'shop-bot', 2,"
              " now() - interval '10 minutes', NULL, now() - interval '1 hour'),"
              " ('" C_SALES "', '" CU_SALES "', 'sales', 'op-olga', 'telegram', 'shop-bot', 1,"
              " now() - interval '9 minutes', NULL, now() - interval '1 hour'),"
              " ('" C_QUEUE "', '" CU_QUEUE "', 'care', NULL, 'telegram', 'shop-bot', 1,"
              " now() - interval '5 minutes', now() - interval '5 minutes',"
              " now() - interval '1 hour')");
    rt_test_pg_exec (s.pg, "UPDATE routing.operators SET open_count = 1 WHERE id IN ('op-anna',"
                           " 'op-olga')");
    rt_test_pg_exec (
        s.pg, "INSERT INTO routing.timeline (conversation_id, kind, event_id, channel,"
              " counted, body, occurred_at) VALUES"
              " ('" C_CARE "', 'inbound', '0190a000-0000-7000-8000-0000000000e1', 'telegram',"
              " true, jsonb_build_object('text', '" TEXT_UK "'), now() - interval '10 minutes'),"
              " ('" C_CARE "', 'inbound', '0190a000-0000-7000-8000-0000000000e2', 'telegram',"
              " true, jsonb_build_object('text', $$" TEXT_SQL "$$),"
              " now() - interval '8 minutes'),"
              " ('" C_SALES "', 'inbound', '0190a000-0000-7000-8000-0000000000e3', 'telegram',"
              " true, '{\"text\": \"hi\"}', now() - interval '9 minutes'),"
              " ('" C_QUEUE "', 'inbound', '0190a000-0000-7000-8000-0000000000e4', 'telegram',"
              " true, '{\"text\": \"你好\"}', now() - interval '5 minutes')");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s.routerd > 0)
        rt_test_stop (s.routerd, "retain-routerd");
    if (s.busd.pid > 0)
        rt_test_stop (s.busd.pid, "retain-busd");
    if (s.pg)
        PQfinish (s.pg);
    return 0;
}

/* --- tests --- */

static void
test_keys (void **state)
{
    (void)state;
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, NULL, NULL, NULL, NULL), 401,
        "unauthorized");
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, NULL,
                          "rk_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                          NULL, NULL),
        401, "unauthorized");
}

static void
test_lists_and_isolation (void **state)
{
    char ids[1024], cursor[128], seen[1024] = "";
    rt_test_api_reply_t r;
    json_t *first;
    (void)state;
    /* anna, an operator in care: care's two, the longest waiting first. */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, NULL, s.anna, NULL, NULL);
    assert_int_equal (r.status, 200);
    s_ids (&r, ids, sizeof ids);
    assert_string_equal (ids, C_CARE "," C_QUEUE);
    first = json_array_get (json_object_get (r.json, "items"), 0);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (first, "customer"), "name")),
        "Олена Коваленко");
    assert_string_equal (json_string_value (json_object_get (first, "assignee")), "op-anna");
    assert_int_equal (json_integer_value (json_object_get (first, "unanswered")), 2);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (first, "last_message"), "text")),
        TEXT_SQL);
    assert_true (json_is_null (json_object_get (r.json, "next_cursor")));
    rt_test_api_reply_free (&r);

    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, "assignee=me", s.anna, NULL,
                          NULL);
    s_ids (&r, ids, sizeof ids);
    assert_string_equal (ids, C_CARE);
    rt_test_api_reply_free (&r);
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, "assignee=unassigned", s.sam,
                          NULL, NULL);
    s_ids (&r, ids, sizeof ids);
    assert_string_equal (ids, C_QUEUE);
    rt_test_api_reply_free (&r);
    /* olga, in sales, sees sales' only, even asking for care's. */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, NULL, s.olga, NULL, NULL);
    s_ids (&r, ids, sizeof ids);
    assert_string_equal (ids, C_SALES);
    rt_test_api_reply_free (&r);
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, "team=care", s.olga, NULL,
                          NULL);
    s_ids (&r, ids, sizeof ids);
    assert_string_equal (ids, "");
    rt_test_api_reply_free (&r);

    /* The admin sees all three, one page at a time, each once. */
    cursor[0] = '\0';
    for (int page = 0; page < 3; page++) {
        char q[256];
        snprintf (q, sizeof q, "limit=1%s%s", cursor[0] ? "&cursor=" : "", cursor);
        r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, q, s.root, NULL, NULL);
        assert_int_equal (r.status, 200);
        s_ids (&r, ids, sizeof ids);
        assert_int_equal (strlen (ids), 36);
        assert_null (strstr (seen, ids));
        strcat (seen, ids);
        if (page < 2)
            snprintf (cursor, sizeof cursor, "%s",
                      json_string_value (json_object_get (r.json, "next_cursor")));
        else
            assert_true (json_is_null (json_object_get (r.json, "next_cursor")));
        rt_test_api_reply_free (&r);
    }
    assert_non_null (strstr (seen, C_CARE));
    assert_non_null (strstr (seen, C_SALES));
    assert_non_null (strstr (seen, C_QUEUE));

    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL,
                                                  "cursor=nonsense", s.root, NULL, NULL),
                                400, "bad-cursor");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL,
                                                  "status=closed", s.root, NULL, NULL),
                                400, "bad-query");

    /* One conversation: another team's is 404, as an unknown id. */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_SALES, NULL, s.olga, NULL,
                          NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "id")), C_SALES);
    rt_test_api_reply_free (&r);
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_SALES,
                                                  NULL, s.anna, NULL, NULL),
                                404, "not-found");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_NONE,
                                                  NULL, s.anna, NULL, NULL),
                                404, "not-found");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", "nope",
                                                  NULL, s.anna, NULL, NULL),
                                404, "not-found");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}/messages",
                                                  C_SALES, NULL, s.sam, NULL, NULL),
                                404, "not-found");
}

static void
test_timeline (void **state)
{
    rt_test_api_reply_t r;
    json_t *items;
    (void)state;
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}/messages", C_CARE, NULL, s.anna,
                          NULL, NULL);
    assert_int_equal (r.status, 200);
    items = json_object_get (r.json, "items");
    assert_int_equal (json_array_size (items), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 0), "text")),
                         TEXT_UK);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 1), "text")),
                         TEXT_SQL);
    rt_test_api_reply_free (&r);
    /* Paged one by one, the second page holds the second message. */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}/messages", C_CARE, "limit=1",
                          s.anna, NULL, NULL);
    {
        char q[128];
        snprintf (q, sizeof q, "limit=1&cursor=%s",
                  json_string_value (json_object_get (r.json, "next_cursor")));
        rt_test_api_reply_free (&r);
        r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}/messages", C_CARE, q, s.anna,
                              NULL, NULL);
    }
    items = json_object_get (r.json, "items");
    assert_int_equal (json_array_size (items), 1);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 0), "text")),
                         TEXT_SQL);
    rt_test_api_reply_free (&r);
}

/* OutboundMessageRequested events with that id on the bus, once the
 * outbox is drained; and of any id. */
static long long
s_sent (const char *id, long long *all)
{
    char sql[256];
    rt_test_pg_wait_long (s.pg,
                          "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM"
                          " outbox.pending",
                          1, 20000);
    *all = rt_test_pg_long (
        s.pg, "SELECT count(*) FROM bus.events WHERE type = 'OutboundMessageRequested'");
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM bus.events WHERE type = 'OutboundMessageRequested' AND"
              " id = '%s'",
              id);
    return rt_test_pg_long (s.pg, sql);
}

static void
test_reply (void **state)
{
    char body[20000], id[64];
    rt_test_api_reply_t r, again;
    long long all;
    (void)state;
    snprintf (body, sizeof body, "{\"text\": \"%s\"}", "Вже в дорозі — 今天 <b>'ok'</b>");
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages", C_CARE, NULL, s.anna,
                          body, "reply-1");
    assert_int_equal (r.status, 202);
    snprintf (id, sizeof id, "%s", json_string_value (json_object_get (r.json, "message_id")));
    assert_int_equal (strlen (id), 36);
    assert_false (r.replayed);
    rt_test_api_reply_free (&r);
    /* The same key again: the same answer, marked replayed, no second send. */
    again = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages", C_CARE, NULL,
                              s.anna, body, "reply-1");
    assert_int_equal (again.status, 202);
    assert_true (again.replayed);
    assert_string_equal (json_string_value (json_object_get (again.json, "message_id")), id);
    rt_test_api_reply_free (&again);
    assert_int_equal (s_sent (id, &all), 1);
    assert_int_equal (all, 1);
    /* The same key with another body is refused. */
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages",
                                                  C_CARE, NULL, s.anna,
                                                  "{\"text\": \"something else\"}", "reply-1"),
                                422, "idempotency-key-reused");
    /* The reply is in the timeline, verbatim, and the counter is 0. */
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM routing.timeline WHERE kind ="
                                             " 'outbound' AND body->>'text' = 'Вже в дорозі — 今天"
                                             " <b>''ok''</b>'"),
                      1);
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_CARE, NULL, s.anna, NULL,
                          NULL);
    assert_int_equal (json_integer_value (json_object_get (r.json, "unanswered")), 0);
    assert_true (json_is_null (json_object_get (r.json, "waiting_since")));
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (r.json, "last_message"), "kind")),
        "outbound");
    rt_test_api_reply_free (&r);

    /* A note: recorded, never sent. */
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages", C_CARE, NULL, s.anna,
                          "{\"text\": \"demanding; call before noon\", \"private\": true}", NULL);
    assert_int_equal (r.status, 202);
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM routing.timeline WHERE kind ="
                                             " 'note' AND body->>'text' = 'demanding; call before"
                                             " noon'"),
                      1);
    s_sent (id, &all);
    assert_int_equal (all, 1);

    /* Bad input. */
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages",
                                                  C_CARE, NULL, s.anna, "{\"text\": ", NULL),
                                400, "bad-json");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages",
                                                  C_CARE, NULL, s.anna, "{\"text\": \"\"}", NULL),
                                422, "invalid");
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages", C_CARE, NULL, s.anna,
                          "{\"text\": \"by SMS\", \"channel\": \"sms\"}", NULL),
        422, "channel-not-used");
    /* 4097 characters (two bytes each) on Telegram: 422 naming 4096. */
    {
        size_t n = strlen ("{\"text\": \"");
        memcpy (body, "{\"text\": \"", n);
        for (int i = 0; i < 4097; i++) {
            memcpy (body + n, "я", 2);
            n += 2;
        }
        memcpy (body + n, "\"}", 3);
    }
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages", C_CARE, NULL, s.anna,
                          body, NULL);
    assert_int_equal (r.status, 422);
    assert_string_equal (rt_test_api_problem_type (&r), "reply-too-long");
    assert_int_equal (json_integer_value (json_object_get (r.json, "limit")), 4096);
    assert_non_null (strstr (json_string_value (json_object_get (r.json, "detail")), "4096"));
    rt_test_api_reply_free (&r);
    /* Exactly 4096 goes. */
    memcpy (body + strlen ("{\"text\": \"") + 2 * 4096, "\"}", 3);
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages", C_CARE, NULL, s.anna,
                          body, NULL);
    assert_int_equal (r.status, 202);
    rt_test_api_reply_free (&r);
    /* Another team's conversation: 404, and nothing written. */
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/messages",
                                                  C_CARE, NULL, s.olga, "{\"text\": \"hello\"}",
                                                  NULL),
                                404, "not-found");
}

static void
test_assign_and_status (void **state)
{
    rt_test_api_reply_t r;
    char body[256];
    long long version;
    (void)state;
    /* The queue's conversation to bob, naming the version seen. */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_QUEUE, NULL, s.sam, NULL,
                          NULL);
    version = json_integer_value (json_object_get (r.json, "version"));
    rt_test_api_reply_free (&r);
    snprintf (body, sizeof body, "{\"operator_id\": \"op-bob\", \"version\": %lld}", version);
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign", C_QUEUE, NULL, s.sam,
                          body, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "assignee")), "op-bob");
    rt_test_api_reply_free (&r);
    /* A second transfer naming the same (now old) version loses. */
    snprintf (body, sizeof body, "{\"operator_id\": \"op-anna\", \"version\": %lld}", version);
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign",
                                                  C_QUEUE, NULL, s.sam, body, NULL),
                                409, "conflict");
    /* An operator with no room. */
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign",
                                                  C_QUEUE, NULL, s.sam,
                                                  "{\"operator_id\": \"op-full\"}", NULL),
                                409, "capacity");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign",
                                                  C_QUEUE, NULL, s.sam,
                                                  "{\"operator_id\": \"op-nobody\"}", NULL),
                                404, "not-found");
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign", C_QUEUE, NULL, s.sam,
                          "{\"operator_id\": \"op-bob\", \"team_id\": \"care\"}", NULL),
        422, "invalid");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign",
                                                  C_QUEUE, NULL, s.sam, "[1,", NULL),
                                400, "bad-json");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/assign",
                                                  C_SALES, NULL, s.sam,
                                                  "{\"operator_id\": \"op-sam\"}", NULL),
                                404, "not-found");

    /* Snooze, reopen, resolve. */
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/snooze",
                                                  C_QUEUE, NULL, s.bob, "{\"until\": \"tomorrow\"}",
                                                  NULL),
                                422, "invalid");
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/snooze", C_QUEUE, NULL, s.bob,
                          "{\"until\": \"2999-01-01T09:00:00+02:00\"}", NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "status")), "snoozed");
    assert_string_equal (json_string_value (json_object_get (r.json, "snoozed_until")),
                         "2999-01-01T07:00:00.000Z");
    rt_test_api_reply_free (&r);
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/reopen", C_QUEUE, NULL, s.bob,
                          NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "status")), "open");
    rt_test_api_reply_free (&r);
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/resolve", C_QUEUE, NULL, s.bob,
                          NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "status")), "resolved");
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT open_count FROM routing.operators WHERE id ="
                                             " 'op-bob'"),
                      0);
    /* Resolved conversations leave the default list and show with status. */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, "status=resolved", s.bob, NULL,
                          NULL);
    {
        char ids[256];
        s_ids (&r, ids, sizeof ids);
        assert_string_equal (ids, C_QUEUE);
    }
    rt_test_api_reply_free (&r);
}

static void
test_presence (void **state)
{
    rt_test_api_reply_t r;
    (void)state;
    r = rt_test_api_call (&s.api, "PUT", "/v1/operators/me/presence", NULL, NULL, s.bob,
                          "{\"presence\": \"online\"}", NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "presence")), "online");
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM routing.operators WHERE id ="
                                             " 'op-bob' AND presence = 'online'"),
                      1);
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "PUT", "/v1/operators/me/presence", NULL,
                                                  NULL, s.bob, "{\"presence\": \"asleep\"}", NULL),
                                422, "invalid");
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "PUT", "/v1/operators/me/presence", NULL, NULL, s.bob, "{", NULL),
        400, "bad-json");
}

static void
test_disabled_key (void **state)
{
    const char *args[] = {"operator", "disable", "--id", "op-bob", NULL};
    (void)state;
    assert_int_equal (rt_test_retainctl (s.dsn, args, NULL), 0);
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, NULL, s.bob, NULL, NULL), 401,
        "unauthorized");
}

/* A transcript by link: made by an operator who sees the conversation
 * (another team's is 404), opened with no key as JSON and as text, every
 * message verbatim, in order; a message's line breaks cannot fake an
 * entry in the text; malformed, unknown and expired tokens all 404; the
 * link's lifetime bounded. */
static void
test_transcript_link (void **state)
{
    rt_test_api_reply_t r;
    char token[80], url[160], sql[256], sql_q[256], *line;
    (void)state;
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST",
                                                  "/v1/conversations/{id}/transcript-link", C_CARE,
                                                  NULL, s.olga, NULL, NULL),
                                404, "not-found");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST",
                                                  "/v1/conversations/{id}/transcript-link", C_CARE,
                                                  NULL, NULL, NULL, NULL),
                                401, "unauthorized");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST",
                                                  "/v1/conversations/{id}/transcript-link", C_CARE,
                                                  NULL, s.anna, "{\"expires_in\": 10}", NULL),
                                422, "invalid");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST",
                                                  "/v1/conversations/{id}/transcript-link", C_CARE,
                                                  NULL, s.anna, "{\"ttl\": 600}", NULL),
                                400, "bad-request");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "POST",
                                                  "/v1/conversations/{id}/transcript-link", C_CARE,
                                                  NULL, s.anna, "{\"expires_in\": ", NULL),
                                400, "bad-json");

    /* A line break in a customer's message, made to look like an entry. */
    rt_test_pg_exec (s.pg,
                     "INSERT INTO routing.timeline (conversation_id, kind, channel, counted,"
                     " body, occurred_at) VALUES ('" C_CARE "', 'inbound', 'telegram', true,"
                     " jsonb_build_object('text', E'thanks\\n[2026-01-01T00:00:00.000Z]"
                     " op-anna via telegram: refund approved'), now() - interval '7 minutes')");
    r = rt_test_api_call (&s.api, "POST", "/v1/conversations/{id}/transcript-link", C_CARE, NULL,
                          s.anna, NULL, NULL);
    assert_int_equal (r.status, 201);
    snprintf (url, sizeof url, "%s", json_string_value (json_object_get (r.json, "url")));
    assert_true (strncmp (url, "/v1/transcripts/", 16) == 0);
    snprintf (token, sizeof token, "%s", url + 16);
    assert_int_equal (strlen (token), 64);
    rt_test_api_reply_free (&r);
    /* Only the token's hash is kept. */
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM routing.transcript_links WHERE token_hash = sha256('%s')",
              token);
    assert_int_equal (rt_test_pg_long (s.pg, sql), 1);
    snprintf (
        sql, sizeof sql,
        "SELECT count(*) FROM routing.transcript_links WHERE encode(token_hash, 'hex') = '%s'",
        token);
    assert_int_equal (rt_test_pg_long (s.pg, sql), 0);

    r = rt_test_api_call (&s.api, "GET", "/v1/transcripts/{token}", token, NULL, NULL, NULL, NULL);
    assert_int_equal (r.status, 200);
    {
        json_t *e = json_object_get (r.json, "entries"), *it;
        long uk = -1, sql = -1, n;
        size_t i;
        assert_string_equal (
            json_string_value (json_object_get (json_object_get (r.json, "customer"), "name")),
            "Олена Коваленко");
        /* Every entry of the timeline, in its order. */
        snprintf (sql_q, sizeof sql_q,
                  "SELECT count(*) FROM routing.timeline WHERE conversation_id = '%s'", C_CARE);
        n = (long)rt_test_pg_long (s.pg, sql_q);
        assert_int_equal ((long)json_array_size (e), n);
        json_array_foreach (e, i, it)
        {
            const char *t =
                json_string_value (json_object_get (json_object_get (it, "body"), "text"));
            if (t && strcmp (t, TEXT_UK) == 0)
                uk = (long)i;
            if (t && strcmp (t, TEXT_SQL) == 0)
                sql = (long)i;
        }
        assert_true (uk >= 0 && sql > uk);
        assert_false (json_is_true (json_object_get (r.json, "truncated")));
    }
    rt_test_api_reply_free (&r);
    r = rt_test_api_call (&s.api, "GET", "/v1/transcripts/{token}", token, "format=text", NULL,
                          NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_true (strncmp (r.type, "text/plain", 10) == 0);
    assert_non_null (strstr (r.body, "customer via telegram: " TEXT_UK "\n"));
    assert_non_null (strstr (r.body, TEXT_SQL));
    /* The forged line is indented under its message, never a line of its own. */
    line = strstr (r.body, "thanks\n");
    assert_non_null (line);
    assert_true (strncmp (line + 7, "    [2026-01-01", 15) == 0);
    assert_null (strstr (r.body, "\n[2026-01-01"));
    rt_test_api_reply_free (&r);

    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/transcripts/{token}", token,
                                                  "format=pdf", NULL, NULL, NULL),
                                400, "bad-query");
    rt_test_api_expect_problem (rt_test_api_call (&s.api, "GET", "/v1/transcripts/{token}",
                                                  "not-a-token", NULL, NULL, NULL, NULL),
                                404, "not-found");
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "GET", "/v1/transcripts/{token}",
                          "00000000000000000000000000000000000000000000000000000000000000ff", NULL,
                          NULL, NULL, NULL),
        404, "not-found");
    /* Expired: the same answer as one never made. */
    rt_test_pg_exec (s.pg, "UPDATE routing.transcript_links SET created_at = now() - interval '2"
                           " days', expires_at = now() - interval '1 second'");
    rt_test_api_expect_problem (
        rt_test_api_call (&s.api, "GET", "/v1/transcripts/{token}", token, NULL, NULL, NULL, NULL),
        404, "not-found");
}

/* The SLA clock due next, in the list and the conversation: the running
 * one due first; a breached clock not yet stopped flags it, and is no
 * longer "due"; an escalation's supervisor flag shows. */
static void
test_sla_in_list (void **state)
{
    rt_test_api_reply_t r;
    json_t *due;
    (void)state;
    rt_test_pg_exec (s.pg, "INSERT INTO routing.sla_timers (conversation_id, kind, policy,"
                           " team_id, start_at, due_at, warn_at) VALUES"
                           " ('" C_QUEUE "', 'resolution', 'care', 'care', now(),"
                           " now() + interval '8 hours', now() + interval '7 hours'),"
                           " ('" C_QUEUE "', 'first_response', 'care', 'care', now(),"
                           " now() + interval '1 hour', now() + interval '50 minutes')");
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_QUEUE, NULL, s.anna, NULL,
                          NULL);
    assert_int_equal (r.status, 200);
    due = json_object_get (r.json, "sla_due");
    assert_string_equal (json_string_value (json_object_get (due, "kind")), "first_response");
    assert_false (json_is_true (json_object_get (r.json, "sla_breached")));
    rt_test_api_reply_free (&r);
    rt_test_pg_exec (s.pg, "UPDATE routing.sla_timers SET breached_at = now(), due_at = now()"
                           " - interval '1 second', warn_at = now() - interval '1 minute'"
                           " WHERE conversation_id = '" C_QUEUE "' AND kind = 'first_response'");
    rt_test_pg_exec (s.pg, "UPDATE routing.conversations SET flags = '{supervisor}'"
                           " WHERE id = '" C_QUEUE "'");
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations/{id}", C_QUEUE, NULL, s.anna, NULL,
                          NULL);
    assert_int_equal (r.status, 200);
    assert_true (json_is_true (json_object_get (r.json, "sla_breached")));
    assert_int_equal (json_array_size (json_object_get (r.json, "flags")), 1);
    assert_string_equal (json_string_value (json_array_get (json_object_get (r.json, "flags"), 0)),
                         "supervisor");
    due = json_object_get (r.json, "sla_due");
    assert_string_equal (json_string_value (json_object_get (due, "kind")), "resolution");
    rt_test_api_reply_free (&r);
    /* The list shows the same (its every item is checked by the OpenAPI
     * test too). */
    r = rt_test_api_call (&s.api, "GET", "/v1/conversations", NULL, NULL, s.root, NULL, NULL);
    assert_int_equal (r.status, 200);
    {
        json_t *items = json_object_get (r.json, "items"), *it;
        size_t i;
        json_array_foreach (items, i, it)
        {
            if (strcmp (json_string_value (json_object_get (it, "id")), C_QUEUE) == 0)
                assert_true (json_is_true (json_object_get (it, "sla_breached")));
            else
                assert_false (json_is_true (json_object_get (it, "sla_breached")));
        }
    }
    rt_test_api_reply_free (&r);
    rt_test_pg_exec (s.pg, "DELETE FROM routing.sla_timers WHERE conversation_id = '" C_QUEUE "'");
    rt_test_pg_exec (s.pg,
                     "UPDATE routing.conversations SET flags = '{}' WHERE id = '" C_QUEUE "'");
}

static void
test_openapi (void **state)
{
    rt_test_api_reply_t r;
    (void)state;
    r = rt_test_api_call (&s.api, "GET", "/openapi.json", NULL, NULL, s.anna, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (json_string_value (json_object_get (r.json, "openapi")), "3.1.0");
    {
        size_t len;
        char *doc = rt_test_file_read (DOC, &len);
        assert_non_null (doc);
        /* The binary serves the document the repository holds. */
        assert_int_equal (len, r.len);
        assert_memory_equal (doc, r.body, len);
        free (doc);
    }
    rt_test_api_reply_free (&r);
    rt_test_api_check (&s.api, DOC);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_keys),
        cmocka_unit_test (test_lists_and_isolation),
        cmocka_unit_test (test_timeline),
        cmocka_unit_test (test_reply),
        cmocka_unit_test (test_assign_and_status),
        cmocka_unit_test (test_presence),
        cmocka_unit_test (test_disabled_key),
        cmocka_unit_test (test_transcript_link),
        cmocka_unit_test (test_sla_in_list),
        cmocka_unit_test (test_openapi),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
