/*
 * test_http_api: rt_http_server's API layers as a client sees them, over
 * real sockets with libcurl: the auth hook (401 with WWW-Authenticate,
 * 403, the principal a handler reads, a public route under a server-wide
 * hook), Idempotency-Key replay with the in-memory store (the answer
 * replayed byte for byte with its headers while the handler ran once, 422
 * for another body, 409 while the first runs, 400 for a missing or
 * malformed key, 5xx not kept, expiry and the lock time passed by moving
 * rt_clock, keys scoped per principal), CORS (preflight answered by the
 * server, the origin echoed with Vary, nothing for a stranger, 404 on an
 * unknown path), and the metrics of all of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_clock.h"
#include "rt_http_server.h"
#include "rt_metrics.h"
#include "rt_test.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DAY_MS (24LL * 3600 * 1000)
#define S_HELD 4

/* --- the server under test --- */

/* What the handlers did, and the requests /slow holds. */
typedef struct {
    pthread_mutex_t lock;            /* guards held and nheld */
    rt_http_request_t *held[S_HELD]; /* requests /slow deferred, in arrival order */
    int nheld;                       /* their number */
    atomic_int orders;               /* /orders handler runs */
    atomic_int slow;                 /* /slow handler runs */
    atomic_int fails;                /* /fail handler runs */
    atomic_int chats;                /* /chat handler runs */
} s_world_t;

static s_world_t s_w;
static rt_http_server_t *s_srv;
static rt_http_idem_store_t *s_store;
static rt_metrics_t *s_metrics;
static int s_port;
static char s_clock_file[512];

/* Two API keys, a key that may not order, and anything else unknown. */
static rt_http_auth_t
s_auth (const rt_http_request_t *req, void *arg, char *principal, size_t size)
{
    const char *token = rt_http_bearer (req);
    (void)arg;
    if (!token)
        return RT_HTTP_AUTH_UNAUTHORIZED;
    if (strcmp (token, "key-alice") == 0) {
        snprintf (principal, size, "alice");
        return RT_HTTP_AUTH_ALLOW;
    }
    if (strcmp (token, "key-bob") == 0) {
        snprintf (principal, size, "bob");
        return RT_HTTP_AUTH_ALLOW;
    }
    if (strcmp (token, "key-reader") == 0)
        return RT_HTTP_AUTH_FORBIDDEN;
    return RT_HTTP_AUTH_UNAUTHORIZED;
}

/* POST /orders: a new order, numbered, with headers of its own. */
static void
h_orders (rt_http_request_t *req, void *arg)
{
    char location[64], text[512];
    size_t len;
    const char *body = rt_http_body (req, &len);
    int n = atomic_fetch_add (&s_w.orders, 1) + 1;
    (void)arg;
    snprintf (location, sizeof location, "/orders/%d", n);
    rt_http_header_add (req, "Location", location);
    rt_http_header_add (req, "X-Order-Seq", location + 8);
    int m = snprintf (text, sizeof text, "{\"order\":%d,\"by\":\"%s\",\"body\":\"%.*s\"}", n,
                      rt_http_principal (req), (int)len, body);
    rt_http_reply (req, 201, "application/json", text, (size_t)m);
}

/* GET /me: who the hook said. */
static void
h_me (rt_http_request_t *req, void *arg)
{
    const char *who = rt_http_principal (req);
    (void)arg;
    rt_http_reply (req, 200, "text/plain", who, strlen (who));
}

/* GET /public: no hook, so no principal. */
static void
h_public (rt_http_request_t *req, void *arg)
{
    (void)arg;
    rt_http_reply (req, 200, "text/plain", rt_http_principal (req) ? "principal" : "none",
                   rt_http_principal (req) ? 9 : 4);
}

/* POST /slow: held until the test answers it. */
static void
h_slow (rt_http_request_t *req, void *arg)
{
    (void)arg;
    atomic_fetch_add (&s_w.slow, 1);
    rt_http_defer (req);
    pthread_mutex_lock (&s_w.lock);
    if (s_w.nheld < S_HELD)
        s_w.held[s_w.nheld++] = req;
    pthread_mutex_unlock (&s_w.lock);
}

/* Answers a held request with the text in arg, on its worker. */
static void
s_answer_held (rt_http_request_t *req, void *arg)
{
    rt_http_header_add (req, "X-Answer", arg);
    rt_http_reply (req, 200, "text/plain", arg, strlen (arg));
}

/* POST /fail: 503 the first time, then 201. */
static void
h_fail (rt_http_request_t *req, void *arg)
{
    (void)arg;
    if (atomic_fetch_add (&s_w.fails, 1) == 0) {
        rt_http_problem (req, 503, "busy", "try again");
        return;
    }
    rt_http_reply (req, 201, "text/plain", "made", 4);
}

/* /chat/{site}/messages: the web chat's door, for browsers. */
static void
h_chat (rt_http_request_t *req, void *arg)
{
    (void)arg;
    atomic_fetch_add (&s_w.chats, 1);
    rt_http_reply (req, 200, "text/plain", "chat", 4);
}

static void
s_start (void)
{
    static const char *const origins[] = {"https://shop.example", NULL};
    static const char *const expose[] = {"Idempotent-Replayed", NULL};
    static const char *const star[] = {"*", NULL};
    rt_http_cors_t cors = {.origins = origins, .expose = expose, .max_age_s = 300};
    rt_http_cors_t bad = {.origins = star, .credentials = true};
    rt_http_server_config_t cfg = {.address = "127.0.0.1:0", .name = "api"};
    rt_http_route_t *r;
    char err[256];

    pthread_mutex_init (&s_w.lock, NULL);
    s_metrics = rt_metrics_new ();
    cfg.metrics = s_metrics;
    s_store = rt_http_idem_memory_new (NULL);
    assert_non_null (s_store);
    s_srv = rt_http_server_new (&cfg, err, sizeof err);
    if (!s_srv)
        fail_msg ("new: %s", err);
    rt_http_server_auth (s_srv, s_auth, NULL);

    r = rt_http_route (s_srv, "POST", "/orders", h_orders, NULL);
    assert_int_equal (rt_http_route_idempotent (r, s_store, false), 0);
    r = rt_http_route (s_srv, "POST", "/must", h_orders, NULL);
    assert_int_equal (rt_http_route_idempotent (r, s_store, true), 0);
    r = rt_http_route (s_srv, "POST", "/slow", h_slow, NULL);
    assert_int_equal (rt_http_route_idempotent (r, s_store, true), 0);
    r = rt_http_route (s_srv, "POST", "/fail", h_fail, NULL);
    assert_int_equal (rt_http_route_idempotent (r, s_store, true), 0);
    assert_non_null (rt_http_route (s_srv, "GET", "/me", h_me, NULL));
    r = rt_http_route (s_srv, "GET", "/public", h_public, NULL);
    rt_http_route_auth (r, NULL, NULL);

    r = rt_http_route (s_srv, "POST", "/chat/{site}/messages", h_chat, NULL);
    rt_http_route_auth (r, NULL, NULL);
    assert_int_equal (rt_http_route_cors (r, &cors), 0);
    r = rt_http_route (s_srv, "GET", "/chat/{site}/messages", h_chat, NULL);
    rt_http_route_auth (r, NULL, NULL);
    assert_int_equal (rt_http_route_cors (r, &cors), 0);
    /* Browsers refuse "*" with credentials, so the server does too. */
    assert_int_equal (rt_http_route_cors (r, &bad), -1);

    if (rt_http_server_start (s_srv, err, sizeof err) != 0)
        fail_msg ("start: %s", err);
    s_port = rt_http_server_port (s_srv);
}

static int
s_setup (void **state)
{
    (void)state;
    s_start ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_http_server_destroy (&s_srv);
    rt_http_idem_store_destroy (&s_store);
    rt_metrics_destroy (&s_metrics);
    pthread_mutex_destroy (&s_w.lock);
    return 0;
}

/* --- a client --- */

typedef struct {
    long status;     /* 0 when no answer came */
    char head[8192]; /* the header lines of the answer */
    size_t head_len; /* their bytes */
    char body[8192]; /* the body, NUL-terminated */
    size_t body_len; /* its bytes */
} s_resp_t;

static size_t
s_on_head (char *data, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp (data, "HTTP/", 5) == 0)
        r->head_len = 0; /* a 100 Continue's lines are not the answer's */
    if (r->head_len + len < sizeof r->head) {
        memcpy (r->head + r->head_len, data, len);
        r->head_len += len;
        r->head[r->head_len] = '\0';
    }
    return len;
}

static size_t
s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    if (r->body_len + len < sizeof r->body) {
        memcpy (r->body + r->body_len, data, len);
        r->body_len += len;
        r->body[r->body_len] = '\0';
    }
    return len;
}

/* Sends method path with headers ("Name: value", NULL-terminated) and a
 * body (NULL: none); returns the status. */
static long
s_call (const char *method, const char *path, const char *const *headers, const char *body,
        s_resp_t *r)
{
    char url[256];
    struct curl_slist *list = NULL;
    CURL *curl = curl_easy_init ();
    memset (r, 0, sizeof *r);
    assert_non_null (curl);
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", s_port, path);
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append (list, headers[i]);
    list = curl_slist_append (list, "Expect:");
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long)strlen (body));
    }
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_head);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, r);
    curl_easy_perform (curl);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all (list);
    curl_easy_cleanup (curl);
    return r->status;
}

/* The value of the answer's header `name`, copied into a static buffer;
 * NULL when absent. */
static const char *
s_header (const s_resp_t *r, const char *name)
{
    static char value[1024];
    size_t n = strlen (name);
    for (const char *line = r->head; line && *line;) {
        if (strncasecmp (line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            snprintf (value, sizeof value, "%.*s", (int)strcspn (v, "\r\n"), v);
            return value;
        }
        line = strchr (line, '\n');
        line = line ? line + 1 : NULL;
    }
    return NULL;
}

/* The answer is problem details of status whose type ends in suffix. */
static void
s_assert_problem (const s_resp_t *r, int status, const char *suffix)
{
    char type[128];
    json_t *json = json_loadb (r->body, r->body_len, 0, NULL);
    assert_int_equal (r->status, status);
    assert_string_equal (s_header (r, "Content-Type"), "application/problem+json");
    if (!json)
        fail_msg ("not JSON: %s", r->body);
    snprintf (type, sizeof type, "https://retain.dev/problems/%s", suffix);
    assert_string_equal (json_string_value (json_object_get (json, "type")), type);
    assert_int_equal (json_integer_value (json_object_get (json, "status")), status);
    json_decref (json);
}

static void
s_clock_move (int64_t wall_offset_ms)
{
    assert_int_equal (rt_clock_file_set (s_clock_file, wall_offset_ms, 0), 0);
}

/* A line of the metrics text, or NULL. */
static bool
s_metric_has (const char *series)
{
    char *text = rt_metrics_render (s_metrics);
    bool found = text && strstr (text, series);
    free (text);
    return found;
}

/* --- auth --- */

static void
test_auth (void **state)
{
    s_resp_t r;
    const char *alice[] = {"Authorization: Bearer key-alice", NULL};
    const char *lower[] = {"Authorization: bearer   key-bob", NULL};
    const char *unknown[] = {"Authorization: Bearer key-mallory", NULL};
    const char *reader[] = {"Authorization: Bearer key-reader", NULL};
    const char *basic[] = {"Authorization: Basic a2V5LWFsaWNlOg==", NULL};
    const char *spaced[] = {"Authorization: Bearer key alice", NULL};
    (void)state;

    /* No credentials: 401, told the scheme. */
    assert_int_equal (s_call ("GET", "/me", NULL, NULL, &r), 401);
    s_assert_problem (&r, 401, "unauthorized");
    assert_non_null (s_header (&r, "WWW-Authenticate"));
    assert_string_equal (s_header (&r, "WWW-Authenticate"), "Bearer realm=\"api\"");

    /* An unknown key, another scheme, a malformed token: 401, invalid. */
    assert_int_equal (s_call ("GET", "/me", unknown, NULL, &r), 401);
    s_assert_problem (&r, 401, "unauthorized");
    assert_non_null (strstr (s_header (&r, "WWW-Authenticate"), "error=\"invalid_token\""));
    assert_int_equal (strncmp (s_header (&r, "WWW-Authenticate"), "Bearer ", 7), 0);
    assert_int_equal (s_call ("GET", "/me", basic, NULL, &r), 401);
    assert_int_equal (s_call ("GET", "/me", spaced, NULL, &r), 401);

    /* Known but refused: 403, and no challenge. */
    assert_int_equal (s_call ("GET", "/me", reader, NULL, &r), 403);
    s_assert_problem (&r, 403, "forbidden");
    assert_null (s_header (&r, "WWW-Authenticate"));

    /* Allowed: the handler reads the principal; the scheme in any case. */
    assert_int_equal (s_call ("GET", "/me", alice, NULL, &r), 200);
    assert_string_equal (r.body, "alice");
    assert_int_equal (s_call ("GET", "/me", lower, NULL, &r), 200);
    assert_string_equal (r.body, "bob");

    /* Refused before the body is read: the handler never runs. */
    int before = atomic_load (&s_w.orders);
    const char *key[] = {"Idempotency-Key: unauthorized-1", NULL};
    assert_int_equal (s_call ("POST", "/orders", key, "{\"sku\":1}", &r), 401);
    assert_int_equal (atomic_load (&s_w.orders), before);

    /* A public route under the server's hook: no hook, no principal. */
    assert_int_equal (s_call ("GET", "/public", NULL, NULL, &r), 200);
    assert_string_equal (r.body, "none");

    assert_true (s_metric_has ("retain_http_requests_total{server=\"api\",route=\"/me\","
                               "status=\"401\"} 4"));
    assert_true (s_metric_has ("retain_http_requests_total{server=\"api\",route=\"/me\","
                               "status=\"403\"} 1"));
    assert_true (s_metric_has ("retain_http_refused_total{server=\"api\",reason=\"forbidden\"} 1"));
}

/* --- Idempotency-Key --- */

static void
test_replay_is_identical (void **state)
{
    s_resp_t first, again;
    const char *h[] = {"Authorization: Bearer key-alice", "Idempotency-Key: order-1", NULL};
    (void)state;
    int before = atomic_load (&s_w.orders);
    assert_int_equal (s_call ("POST", "/orders", h, "{\"sku\":7}", &first), 201);
    assert_null (s_header (&first, "Idempotent-Replayed"));
    char location[64];
    snprintf (location, sizeof location, "%s", s_header (&first, "Location"));

    for (int i = 0; i < 3; i++) {
        assert_int_equal (s_call ("POST", "/orders", h, "{\"sku\":7}", &again), 201);
        assert_string_equal (s_header (&again, "Idempotent-Replayed"), "true");
        assert_string_equal (s_header (&again, "Location"), location);
        assert_string_equal (s_header (&again, "X-Order-Seq"), location + 8);
        assert_string_equal (s_header (&again, "Content-Type"), "application/json");
        assert_int_equal (again.body_len, first.body_len);
        assert_memory_equal (again.body, first.body, first.body_len);
    }
    /* The handler ran once. */
    assert_int_equal (atomic_load (&s_w.orders), before + 1);
    /* The draft's form of the key, a quoted string, is the same key. */
    const char *quoted[] = {"Authorization: Bearer key-alice", "Idempotency-Key: \"order-1\"",
                            NULL};
    assert_int_equal (s_call ("POST", "/orders", quoted, "{\"sku\":7}", &again), 201);
    assert_string_equal (s_header (&again, "Idempotent-Replayed"), "true");
    assert_int_equal (atomic_load (&s_w.orders), before + 1);
    assert_true (s_metric_has ("retain_http_idempotent_replays_total{server=\"api\","
                               "route=\"/orders\"} 4"));

    /* Without a key on a route that does not require one: runs each time. */
    const char *nokey[] = {"Authorization: Bearer key-alice", NULL};
    assert_int_equal (s_call ("POST", "/orders", nokey, "{\"sku\":7}", &again), 201);
    assert_int_equal (s_call ("POST", "/orders", nokey, "{\"sku\":7}", &again), 201);
    assert_int_equal (atomic_load (&s_w.orders), before + 3);
}

static void
test_reused_key_and_bad_keys (void **state)
{
    s_resp_t r;
    const char *h[] = {"Authorization: Bearer key-alice", "Idempotency-Key: order-2", NULL};
    (void)state;
    assert_int_equal (s_call ("POST", "/orders", h, "{\"sku\":1}", &r), 201);
    int after = atomic_load (&s_w.orders);
    /* The same key with another body, or on another path: 422. */
    assert_int_equal (s_call ("POST", "/orders", h, "{\"sku\":2}", &r), 422);
    s_assert_problem (&r, 422, "idempotency-key-reused");
    assert_int_equal (s_call ("POST", "/must", h, "{\"sku\":1}", &r), 422);
    assert_int_equal (s_call ("POST", "/orders?x=1", h, "{\"sku\":1}", &r), 422);
    assert_int_equal (atomic_load (&s_w.orders), after);

    /* A route that requires a key: 400 without one. */
    const char *nokey[] = {"Authorization: Bearer key-alice", NULL};
    assert_int_equal (s_call ("POST", "/must", nokey, "{}", &r), 400);
    s_assert_problem (&r, 400, "idempotency-key-missing");

    /* Over 255 bytes, not visible ASCII, empty: 400. */
    char longkey[300] = "Idempotency-Key: ";
    memset (longkey + strlen (longkey), 'k', 256);
    const char *too_long[] = {"Authorization: Bearer key-alice", longkey, NULL};
    assert_int_equal (s_call ("POST", "/must", too_long, "{}", &r), 400);
    s_assert_problem (&r, 400, "idempotency-key-invalid");
    longkey[strlen ("Idempotency-Key: ") + 255] = '\0';
    assert_int_equal (s_call ("POST", "/must", too_long, "{}", &r), 201); /* 255 is fine */
    const char *spaced[] = {"Authorization: Bearer key-alice", "Idempotency-Key: two words", NULL};
    assert_int_equal (s_call ("POST", "/must", spaced, "{}", &r), 400);
    s_assert_problem (&r, 400, "idempotency-key-invalid");
    const char *empty[] = {"Authorization: Bearer key-alice", "Idempotency-Key: \"\"", NULL};
    assert_int_equal (s_call ("POST", "/must", empty, "{}", &r), 400);
    const char *twice[] = {"Authorization: Bearer key-alice", "Idempotency-Key: a",
                           "Idempotency-Key: b", NULL};
    assert_int_equal (s_call ("POST", "/must", twice, "{}", &r), 400);
    assert_true (s_metric_has (
        "retain_http_refused_total{server=\"api\",reason=\"idempotency_key_reused\"} 3"));
}

/* Runs a request on a thread of its own (it waits for a held answer). */
typedef struct {
    const char *const *headers; /* the request's */
    const char *body;           /* its body */
    s_resp_t resp;              /* what it got */
    pthread_t thread;           /* runs it */
} s_bg_t;

static void *
s_bg_run (void *arg)
{
    s_bg_t *bg = arg;
    s_call ("POST", "/slow", bg->headers, bg->body, &bg->resp);
    return NULL;
}

/* Waits until /slow holds n requests; returns the n-th. */
static rt_http_request_t *
s_wait_held (int n)
{
    for (int i = 0; i < 500; i++) {
        rt_http_request_t *req = NULL;
        pthread_mutex_lock (&s_w.lock);
        if (s_w.nheld >= n)
            req = s_w.held[n - 1];
        pthread_mutex_unlock (&s_w.lock);
        if (req)
            return req;
        usleep (10000);
    }
    fail_msg ("/slow never held request %d", n);
    return NULL;
}

static void
test_in_progress_and_lock_time (void **state)
{
    s_resp_t r;
    static const char *h[] = {"Authorization: Bearer key-alice", "Idempotency-Key: slow-1", NULL};
    s_bg_t *first = calloc (1, sizeof *first), *third = calloc (1, sizeof *third);
    (void)state;
    first->headers = h;
    first->body = "{\"slow\":1}";
    pthread_create (&first->thread, NULL, s_bg_run, first);
    rt_http_request_t *held1 = s_wait_held (1);

    /* While the first runs: 409, and the handler does not run again. */
    assert_int_equal (s_call ("POST", "/slow", h, "{\"slow\":1}", &r), 409);
    s_assert_problem (&r, 409, "idempotency-key-in-progress");
    assert_int_equal (atomic_load (&s_w.slow), 1);

    /* Past the lock time (60 s) the reservation is taken over: the
     * process that held it is taken for dead. */
    s_clock_move (61000);
    third->headers = h;
    third->body = "{\"slow\":1}";
    pthread_create (&third->thread, NULL, s_bg_run, third);
    rt_http_request_t *held2 = s_wait_held (2);
    assert_int_equal (atomic_load (&s_w.slow), 2);

    /* The first answers late: its client gets it, the key keeps nothing
     * of it (the reservation is the second's now). */
    assert_int_equal (rt_http_post (held1, s_answer_held, "first"), 0);
    pthread_join (first->thread, NULL);
    assert_int_equal (first->resp.status, 200);
    assert_string_equal (first->resp.body, "first");
    assert_int_equal (s_call ("POST", "/slow", h, "{\"slow\":1}", &r), 409);

    assert_int_equal (rt_http_post (held2, s_answer_held, "second"), 0);
    pthread_join (third->thread, NULL);
    assert_string_equal (third->resp.body, "second");
    assert_int_equal (s_call ("POST", "/slow", h, "{\"slow\":1}", &r), 200);
    assert_string_equal (r.body, "second");
    assert_string_equal (s_header (&r, "X-Answer"), "second");
    assert_string_equal (s_header (&r, "Idempotent-Replayed"), "true");
    assert_int_equal (atomic_load (&s_w.slow), 2);
    s_clock_move (0);
    free (first);
    free (third);
}

static void
test_5xx_not_kept (void **state)
{
    s_resp_t r;
    const char *h[] = {"Authorization: Bearer key-alice", "Idempotency-Key: fail-1", NULL};
    (void)state;
    assert_int_equal (s_call ("POST", "/fail", h, "{}", &r), 503);
    assert_null (s_header (&r, "Idempotent-Replayed"));
    /* The retry runs again, and its 201 is kept. */
    assert_int_equal (s_call ("POST", "/fail", h, "{}", &r), 201);
    assert_null (s_header (&r, "Idempotent-Replayed"));
    assert_int_equal (s_call ("POST", "/fail", h, "{}", &r), 201);
    assert_string_equal (s_header (&r, "Idempotent-Replayed"), "true");
    assert_string_equal (r.body, "made");
    assert_int_equal (atomic_load (&s_w.fails), 2);
}

static void
test_expiry (void **state)
{
    s_resp_t r;
    const char *h[] = {"Authorization: Bearer key-alice", "Idempotency-Key: expiring", NULL};
    (void)state;
    int before = atomic_load (&s_w.orders);
    assert_int_equal (s_call ("POST", "/orders", h, "{\"e\":1}", &r), 201);
    /* A day less a second later: still replayed. */
    s_clock_move (DAY_MS - 1000);
    assert_int_equal (s_call ("POST", "/orders", h, "{\"e\":1}", &r), 201);
    assert_string_equal (s_header (&r, "Idempotent-Replayed"), "true");
    assert_int_equal (atomic_load (&s_w.orders), before + 1);
    /* A day and a second: forgotten, so it runs again (and with another
     * body it is no longer a reuse). */
    s_clock_move (DAY_MS + 1000);
    assert_int_equal (s_call ("POST", "/orders", h, "{\"e\":2}", &r), 201);
    assert_null (s_header (&r, "Idempotent-Replayed"));
    assert_int_equal (atomic_load (&s_w.orders), before + 2);
    s_clock_move (0);
}

static void
test_keys_per_principal (void **state)
{
    s_resp_t a, b;
    const char *alice[] = {"Authorization: Bearer key-alice", "Idempotency-Key: shared", NULL};
    const char *bob[] = {"Authorization: Bearer key-bob", "Idempotency-Key: shared", NULL};
    (void)state;
    assert_int_equal (s_call ("POST", "/orders", alice, "{\"who\":1}", &a), 201);
    /* Bob's "shared" is his own: neither a replay of Alice's nor a reuse. */
    assert_int_equal (s_call ("POST", "/orders", bob, "{\"who\":2}", &b), 201);
    assert_null (s_header (&b, "Idempotent-Replayed"));
    assert_non_null (strstr (b.body, "\"by\":\"bob\""));
    assert_int_equal (s_call ("POST", "/orders", bob, "{\"who\":1}", &b), 422);
    assert_int_equal (s_call ("POST", "/orders", alice, "{\"who\":1}", &b), 201);
    assert_string_equal (s_header (&b, "Idempotent-Replayed"), "true");
    assert_string_equal (b.body, a.body);
}

/* --- CORS --- */

static void
test_cors (void **state)
{
    s_resp_t r;
    const char *preflight[] = {"Origin: https://shop.example",
                               "Access-Control-Request-Method: POST",
                               "Access-Control-Request-Headers: content-type", NULL};
    const char *stranger[] = {"Origin: https://evil.example", "Access-Control-Request-Method: POST",
                              NULL};
    const char *shop[] = {"Origin: https://shop.example", NULL};
    const char *evil[] = {"Origin: https://evil.example", NULL};
    (void)state;
    int chats = atomic_load (&s_w.chats);

    /* The preflight: 204 by the server, the path's methods, no handler. */
    assert_int_equal (s_call ("OPTIONS", "/chat/shop/messages", preflight, NULL, &r), 204);
    assert_string_equal (s_header (&r, "Access-Control-Allow-Origin"), "https://shop.example");
    const char *methods = s_header (&r, "Access-Control-Allow-Methods");
    assert_non_null (methods);
    assert_non_null (strstr (methods, "POST"));
    assert_non_null (strstr (methods, "GET"));
    assert_string_equal (s_header (&r, "Access-Control-Allow-Headers"),
                         "Authorization, Content-Type, Idempotency-Key");
    assert_string_equal (s_header (&r, "Access-Control-Max-Age"), "300");
    assert_string_equal (s_header (&r, "Vary"), "Origin");
    assert_int_equal (atomic_load (&s_w.chats), chats);

    /* A stranger's preflight: answered, with nothing that lets it in. */
    assert_int_equal (s_call ("OPTIONS", "/chat/shop/messages", stranger, NULL, &r), 204);
    assert_null (s_header (&r, "Access-Control-Allow-Origin"));
    assert_null (s_header (&r, "Access-Control-Allow-Methods"));

    /* Actual requests: the allowed origin echoed, with Vary. */
    assert_int_equal (s_call ("POST", "/chat/shop/messages", shop, "hi", &r), 200);
    assert_string_equal (s_header (&r, "Access-Control-Allow-Origin"), "https://shop.example");
    assert_string_equal (s_header (&r, "Access-Control-Expose-Headers"), "Idempotent-Replayed");
    assert_string_equal (s_header (&r, "Vary"), "Origin");
    assert_int_equal (s_call ("GET", "/chat/shop/messages", evil, NULL, &r), 200);
    assert_null (s_header (&r, "Access-Control-Allow-Origin"));
    assert_string_equal (s_header (&r, "Vary"), "Origin");
    assert_int_equal (atomic_load (&s_w.chats), chats + 2);

    /* An unknown path: 404; a path without CORS: no preflight, 405. */
    assert_int_equal (s_call ("OPTIONS", "/nowhere", preflight, NULL, &r), 404);
    s_assert_problem (&r, 404, "not-found");
    assert_int_equal (s_call ("OPTIONS", "/orders", preflight, NULL, &r), 405);
    assert_null (s_header (&r, "Access-Control-Allow-Origin"));
    assert_true (s_metric_has ("retain_http_requests_total{server=\"api\","
                               "route=\"/chat/{site}/messages\",status=\"204\"} 2"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_auth),
        cmocka_unit_test (test_replay_is_identical),
        cmocka_unit_test (test_reused_key_and_bad_keys),
        cmocka_unit_test (test_in_progress_and_lock_time),
        cmocka_unit_test (test_5xx_not_kept),
        cmocka_unit_test (test_expiry),
        cmocka_unit_test (test_keys_per_principal),
        cmocka_unit_test (test_cors),
    };
    snprintf (s_clock_file, sizeof s_clock_file, "%s/test-http-api-clock.%d", rt_test_dir (),
              (int)getpid ());
    /* Before the first reading: the clock maps the file it names then. */
    if (rt_clock_file_set (s_clock_file, 0, 0) != 0 ||
        setenv ("RETAIN_CLOCK_FILE", s_clock_file, 1) != 0)
        return 1;
    curl_global_init (CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests (tests, s_setup, s_teardown);
    curl_global_cleanup ();
    unlink (s_clock_file);
    return rc;
}
