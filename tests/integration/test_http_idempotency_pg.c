/*
 * Idempotency-Key across replicas: two servers of one daemon (same name,
 * each its own PostgreSQL store, one database) replay each other's
 * answers, refuse a key another replica is still running (409) or that
 * came with another body (422), keep no 5xx, and take over a reservation
 * whose replica stopped answering once its lock time has passed, while
 * that replica's late answer is kept by nobody. Expired rows are purged
 * by the stores themselves; a database that goes away costs a 503
 * ("idempotency-store") and no wait, and the store is back as soon as it
 * is. Time moves through RETAIN_CLOCK_FILE, never by sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_clock.h"
#include "rt_db.h"
#include "rt_http_idem_pg.h"
#include "rt_http_server.h"
#include "rt_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY_MS (24LL * 3600 * 1000)

/* One replica: its server, its store, what its handlers did. */
typedef struct {
    const char *id;             /* "a" or "b", in every answer it makes */
    rt_http_server_t *srv;      /* named "shop", as replicas of one daemon are */
    rt_http_idem_store_t *idem; /* its own store on the shared database */
    int port;                   /* where it listens */
    atomic_int runs;            /* handler runs */
    pthread_mutex_t lock;       /* guards held */
    rt_http_request_t *held;    /* the request /slow holds */
} s_replica_t;

static s_replica_t s_a = {.id = "a"}, s_b = {.id = "b"};
static char s_dsn[1024];
static char s_clock_file[512];
static PGconn *s_pg;
static atomic_int s_fails; /* /fail runs, across replicas */

static rt_http_auth_t
s_auth (const rt_http_request_t *req, void *arg, char *principal, size_t size)
{
    const char *token = rt_http_bearer (req);
    (void)arg;
    if (!token || strncmp (token, "key-", 4) != 0)
        return RT_HTTP_AUTH_UNAUTHORIZED;
    snprintf (principal, size, "%s", token + 4);
    return RT_HTTP_AUTH_ALLOW;
}

static void
h_orders (rt_http_request_t *req, void *arg)
{
    s_replica_t *r = arg;
    char text[256];
    size_t len;
    const char *body = rt_http_body (req, &len);
    int n = atomic_fetch_add (&r->runs, 1) + 1;
    int m = snprintf (text, sizeof text, "{\"replica\":\"%s\",\"run\":%d,\"body\":\"%.*s\"}", r->id,
                      n, (int)len, body);
    rt_http_header_add (req, "X-Replica", r->id);
    rt_http_reply (req, 201, "application/json", text, (size_t)m);
}

static void
h_slow (rt_http_request_t *req, void *arg)
{
    s_replica_t *r = arg;
    atomic_fetch_add (&r->runs, 1);
    rt_http_defer (req);
    pthread_mutex_lock (&r->lock);
    r->held = req;
    pthread_mutex_unlock (&r->lock);
}

static void
s_answer_held (rt_http_request_t *req, void *arg)
{
    s_replica_t *r = arg;
    char text[64];
    int n = snprintf (text, sizeof text, "slow from %s", r->id);
    rt_http_reply (req, 200, "text/plain", text, (size_t)n);
}

static void
h_fail (rt_http_request_t *req, void *arg)
{
    s_replica_t *r = arg;
    if (atomic_fetch_add (&s_fails, 1) == 0) {
        rt_http_problem (req, 503, "busy", "try again");
        return;
    }
    rt_http_reply (req, 201, "text/plain", r->id, strlen (r->id));
}

static void
s_replica_start (s_replica_t *r)
{
    rt_http_server_config_t cfg = {.address = "127.0.0.1:0", .name = "shop", .threads = 2};
    rt_http_route_t *route;
    char err[256];
    pthread_mutex_init (&r->lock, NULL);
    r->idem = rt_http_idem_pg_new (s_dsn, NULL, err, sizeof err);
    if (!r->idem)
        fail_msg ("store: %s", err);
    r->srv = rt_http_server_new (&cfg, err, sizeof err);
    if (!r->srv)
        fail_msg ("server: %s", err);
    rt_http_server_auth (r->srv, s_auth, NULL);
    route = rt_http_route (r->srv, "POST", "/orders", h_orders, r);
    assert_int_equal (rt_http_route_idempotent (route, r->idem, true), 0);
    route = rt_http_route (r->srv, "POST", "/slow", h_slow, r);
    assert_int_equal (rt_http_route_idempotent (route, r->idem, true), 0);
    route = rt_http_route (r->srv, "POST", "/fail", h_fail, r);
    assert_int_equal (rt_http_route_idempotent (route, r->idem, true), 0);
    if (rt_http_server_start (r->srv, err, sizeof err) != 0)
        fail_msg ("start: %s", err);
    r->port = rt_http_server_port (r->srv);
}

static void
s_replica_stop (s_replica_t *r)
{
    rt_http_server_destroy (&r->srv);
    rt_http_idem_store_destroy (&r->idem);
    pthread_mutex_destroy (&r->lock);
}

static int
s_setup (void **state)
{
    char err[512];
    (void)state;
    rt_test_db_create ("http_idem", s_dsn, sizeof s_dsn);
    rt_db_t *db = rt_db_new (s_dsn, "test-http-idempotency");
    assert_int_equal (rt_db_connect (db), 0);
    /* The store's own migration set: applied once, then nothing to do. */
    if (rt_http_idem_pg_migrate (db, err, sizeof err) != 1)
        fail_msg ("migrate: %s", err);
    assert_int_equal (rt_http_idem_pg_migrate (db, err, sizeof err), 0);
    rt_db_destroy (&db);
    s_pg = PQconnectdb (s_dsn);
    assert_int_equal (PQstatus (s_pg), CONNECTION_OK);
    s_replica_start (&s_a);
    s_replica_start (&s_b);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    s_replica_stop (&s_a);
    s_replica_stop (&s_b);
    PQfinish (s_pg);
    return 0;
}

/* POST path to replica r as key-<who> with Idempotency-Key key. */
static long
s_post (const s_replica_t *r, const char *path, const char *who, const char *key, const char *body,
        rt_test_reply_t *reply)
{
    char auth[128], idem[300];
    snprintf (auth, sizeof auth, "Authorization: Bearer key-%s", who);
    snprintf (idem, sizeof idem, "Idempotency-Key: %s", key);
    const char *headers[] = {auth, idem, "Expect:", NULL};
    return rt_test_http_request (r->port, "POST", path, body, strlen (body), headers, reply);
}

static void
s_clock_move (int64_t wall_offset_ms)
{
    assert_int_equal (rt_clock_file_set (s_clock_file, wall_offset_ms, 0), 0);
}

static long long
s_rows (const char *where)
{
    char sql[512];
    snprintf (sql, sizeof sql, "SELECT count(*) FROM http.idempotency WHERE %s", where);
    return rt_test_pg_long (s_pg, sql);
}

static void
test_replicas_share_keys (void **state)
{
    rt_test_reply_t first, again;
    (void)state;
    assert_int_equal (s_post (&s_a, "/orders", "shop1", "k-1", "{\"sku\":1}", &first), 201);
    assert_non_null (strstr (first.body, "\"replica\":\"a\""));
    assert_int_equal (s_rows ("key = 'k-1' AND done AND scope = 'shop:shop1'"), 1);

    /* The retry reaches the other replica: A's answer, B's handler idle. */
    assert_int_equal (s_post (&s_b, "/orders", "shop1", "k-1", "{\"sku\":1}", &again), 201);
    assert_string_equal (again.body, first.body);
    assert_string_equal (again.type, "application/json");
    assert_int_equal (atomic_load (&s_b.runs), 0);

    /* Another body on B: 422; another shop's k-1 is its own key. */
    assert_int_equal (s_post (&s_b, "/orders", "shop1", "k-1", "{\"sku\":2}", &again), 422);
    assert_non_null (strstr (again.body, "idempotency-key-reused"));
    assert_int_equal (s_post (&s_b, "/orders", "shop2", "k-1", "{\"sku\":2}", &again), 201);
    assert_non_null (strstr (again.body, "\"replica\":\"b\""));
    assert_int_equal (atomic_load (&s_a.runs), 1);
    assert_int_equal (atomic_load (&s_b.runs), 1);
}

/* A request on a thread of its own: /slow holds it. */
typedef struct {
    const s_replica_t *to; /* the replica asked */
    const char *key;       /* its Idempotency-Key */
    rt_test_reply_t reply; /* what it got */
    long status;           /* its status */
    pthread_t thread;      /* runs it */
} s_bg_t;

static void *
s_bg_run (void *arg)
{
    s_bg_t *bg = arg;
    bg->status = s_post (bg->to, "/slow", "shop1", bg->key, "{\"slow\":1}", &bg->reply);
    return NULL;
}

static rt_http_request_t *
s_wait_held (s_replica_t *r)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock (&r->lock);
        rt_http_request_t *req = r->held;
        r->held = NULL;
        pthread_mutex_unlock (&r->lock);
        if (req)
            return req;
        usleep (10000);
    }
    fail_msg ("replica %s never held its request", r->id);
    return NULL;
}

static void
test_in_progress_across_replicas (void **state)
{
    rt_test_reply_t r;
    s_bg_t *bg = calloc (1, sizeof *bg);
    (void)state;
    int a_runs = atomic_load (&s_a.runs);
    bg->to = &s_a;
    bg->key = "slow-1";
    pthread_create (&bg->thread, NULL, s_bg_run, bg);
    rt_http_request_t *held = s_wait_held (&s_a);

    assert_int_equal (s_post (&s_b, "/slow", "shop1", "slow-1", "{\"slow\":1}", &r), 409);
    assert_non_null (strstr (r.body, "idempotency-key-in-progress"));

    assert_int_equal (rt_http_post (held, s_answer_held, &s_a), 0);
    pthread_join (bg->thread, NULL);
    assert_int_equal (bg->status, 200);
    assert_string_equal (bg->reply.body, "slow from a");
    assert_int_equal (s_post (&s_b, "/slow", "shop1", "slow-1", "{\"slow\":1}", &r), 200);
    assert_string_equal (r.body, "slow from a");
    assert_int_equal (atomic_load (&s_a.runs), a_runs + 1);
    free (bg);
}

/* A replica that took a key and then answers nothing (it hangs, or it
 * died: the database cannot tell) holds the key for the lock time only. */
static void
test_abandoned_reservation_taken_over (void **state)
{
    rt_test_reply_t r;
    s_bg_t *stuck = calloc (1, sizeof *stuck), *retry = calloc (1, sizeof *retry);
    (void)state;
    stuck->to = &s_a;
    stuck->key = "crash-1";
    pthread_create (&stuck->thread, NULL, s_bg_run, stuck);
    rt_http_request_t *held_a = s_wait_held (&s_a);
    assert_int_equal (s_post (&s_b, "/slow", "shop1", "crash-1", "{\"slow\":1}", &r), 409);

    /* 59 s on, still A's; 61 s on, B takes the key and runs it. */
    s_clock_move (59000);
    assert_int_equal (s_post (&s_b, "/slow", "shop1", "crash-1", "{\"slow\":1}", &r), 409);
    s_clock_move (61000);
    int b_runs = atomic_load (&s_b.runs);
    retry->to = &s_b;
    retry->key = "crash-1";
    pthread_create (&retry->thread, NULL, s_bg_run, retry);
    rt_http_request_t *held_b = s_wait_held (&s_b);
    assert_int_equal (atomic_load (&s_b.runs), b_runs + 1);

    /* A wakes up and answers its client; the key keeps none of it. */
    assert_int_equal (rt_http_post (held_a, s_answer_held, &s_a), 0);
    pthread_join (stuck->thread, NULL);
    assert_string_equal (stuck->reply.body, "slow from a");
    assert_int_equal (s_rows ("key = 'crash-1' AND done"), 0);

    assert_int_equal (rt_http_post (held_b, s_answer_held, &s_b), 0);
    pthread_join (retry->thread, NULL);
    assert_string_equal (retry->reply.body, "slow from b");
    assert_int_equal (s_post (&s_a, "/slow", "shop1", "crash-1", "{\"slow\":1}", &r), 200);
    assert_string_equal (r.body, "slow from b");
    s_clock_move (0);
    free (stuck);
    free (retry);
}

static void
test_5xx_not_kept (void **state)
{
    rt_test_reply_t r;
    (void)state;
    assert_int_equal (s_post (&s_a, "/fail", "shop1", "fail-1", "{}", &r), 503);
    assert_int_equal (s_rows ("key = 'fail-1'"), 0);
    assert_int_equal (s_post (&s_b, "/fail", "shop1", "fail-1", "{}", &r), 201);
    assert_string_equal (r.body, "b");
    assert_int_equal (s_post (&s_a, "/fail", "shop1", "fail-1", "{}", &r), 201);
    assert_string_equal (r.body, "b");
    assert_int_equal (atomic_load (&s_fails), 2);
}

static void
test_expired_rows_purged (void **state)
{
    rt_test_reply_t r;
    (void)state;
    assert_true (s_rows ("true") >= 5);
    /* Two days on, every row so far has expired: the next request's store
     * purges them (and replays nothing of them). */
    s_clock_move (2 * DAY_MS);
    assert_int_equal (s_post (&s_a, "/orders", "shop1", "k-1", "{\"sku\":3}", &r), 201);
    assert_non_null (strstr (r.body, "\"replica\":\"a\""));
    assert_int_equal (s_post (&s_b, "/orders", "shop1", "k-after", "{}", &r), 201);
    assert_int_equal (s_rows ("true"), 2);
    s_clock_move (0);
}

static void
test_database_away (void **state)
{
    rt_test_reply_t r;
    (void)state;
    rt_test_db_refuse (s_dsn);
    int64_t t0 = rt_test_now_ms ();
    assert_int_equal (s_post (&s_a, "/orders", "shop1", "away-1", "{}", &r), 503);
    assert_non_null (strstr (r.body, "idempotency-store"));
    /* No wait for the database: answered at once, and again at once. */
    assert_int_equal (s_post (&s_a, "/orders", "shop1", "away-1", "{}", &r), 503);
    assert_true (rt_test_now_ms () - t0 < 3000);
    rt_test_db_allow (s_dsn);
    /* A worker tries again a second after its last failed connect. */
    s_clock_move (2000);
    assert_int_equal (s_post (&s_a, "/orders", "shop1", "away-1", "{}", &r), 201);
    assert_int_equal (s_post (&s_a, "/orders", "shop1", "away-1", "{}", &r), 201);
    s_clock_move (0);
    PQfinish (s_pg);
    s_pg = PQconnectdb (s_dsn);
    assert_int_equal (s_rows ("key = 'away-1' AND done"), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_replicas_share_keys),
        cmocka_unit_test (test_in_progress_across_replicas),
        cmocka_unit_test (test_abandoned_reservation_taken_over),
        cmocka_unit_test (test_5xx_not_kept),
        cmocka_unit_test (test_expired_rows_purged),
        cmocka_unit_test (test_database_away),
    };
    snprintf (s_clock_file, sizeof s_clock_file, "%s/test-http-idem-clock.%d", rt_test_dir (),
              (int)getpid ());
    /* Before the first reading: the clock maps the file it names then. */
    if (rt_clock_file_set (s_clock_file, 0, 0) != 0 ||
        setenv ("RETAIN_CLOCK_FILE", s_clock_file, 1) != 0)
        return 1;
    int rc = cmocka_run_group_tests (tests, s_setup, s_teardown);
    unlink (s_clock_file);
    return rc;
}
