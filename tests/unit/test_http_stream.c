/*
 * test_http_stream: rt_http_server's streamed answers over real sockets on
 * 127.0.0.1, read by libcurl with a write callback: chunks arrive in
 * order and each as soon as it is written (the next is written only once
 * the client holds the one before), the connection is kept alive after
 * the stream's end, HTTP/1.0 gets a body ended by the close, HEAD gets the
 * head alone, a client that leaves is told to the handler (on_gone) and
 * everything is freed (ASan's leak check at exit), a client that reads
 * nothing shows in the bytes pending, and a server destroyed under an
 * open stream ends it at once with a whole response.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_http_server.h"
#include "rt_metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --- the server under test --- */

/* The stream the test drives, and what its handler saw. */
typedef struct {
    pthread_mutex_t lock;     /* guards req */
    rt_http_request_t *req;   /* the open stream, NULL when none */
    atomic_int begun;         /* streams begun (begin returned 0) */
    atomic_int head_only;     /* begins that returned 1 (HEAD) */
    atomic_bool gone;         /* on_gone ran */
    atomic_int write_gone;    /* rt_http_stream_write's result once gone (-1 expected) */
    atomic_int ended;         /* streams ended by the handler */
    atomic_size_t pending;    /* rt_http_stream_pending at the last write */
    atomic_int reply_refused; /* rt_http_reply after the begin: -1 expected */
    atomic_int header_late;   /* rt_http_header_add after the begin: -1 expected */
    atomic_int failures;      /* calls on the worker that failed (0 expected) */
    rt_http_server_t *srv;    /* the server */
    rt_metrics_t *metrics;    /* its registry */
} s_world_t;

static s_world_t s_w;

static void
s_gone (rt_http_request_t *req, void *arg)
{
    (void)arg;
    atomic_store (&s_w.write_gone, rt_http_stream_write (req, "x", 1));
    pthread_mutex_lock (&s_w.lock);
    if (s_w.req == req)
        s_w.req = NULL;
    pthread_mutex_unlock (&s_w.lock);
    atomic_store (&s_w.gone, true);
    rt_http_stream_end (req);
    atomic_fetch_add (&s_w.ended, 1);
}

static void
h_stream (rt_http_request_t *req, void *arg)
{
    int rc;
    (void)arg;
    /* On the worker thread: results are noted for the test's thread. */
    if (rt_http_header_add (req, "Cache-Control", "no-cache") != 0)
        atomic_fetch_add (&s_w.failures, 1);
    rc = rt_http_stream_begin (req, 200, "text/event-stream");
    if (rc == 1) {
        atomic_fetch_add (&s_w.head_only, 1);
        return;
    }
    if (rc != 0) {
        atomic_fetch_add (&s_w.failures, 1);
        return;
    }
    /* Once streaming, a plain answer and a header are refused. */
    atomic_store (&s_w.reply_refused, rt_http_reply (req, 500, NULL, NULL, 0));
    atomic_store (&s_w.header_late, rt_http_header_add (req, "X-Late", "1"));
    rt_http_on_gone (req, s_gone, NULL);
    pthread_mutex_lock (&s_w.lock);
    s_w.req = req;
    pthread_mutex_unlock (&s_w.lock);
    atomic_fetch_add (&s_w.begun, 1);
}

static void
h_hello (rt_http_request_t *req, void *arg)
{
    (void)arg;
    rt_http_reply (req, 200, "text/plain", "hello", 5);
}

/* A chunk the test asks the worker to write. */
typedef struct {
    size_t len;  /* bytes */
    char data[]; /* the chunk */
} s_chunk_t;

static void
s_write_on_worker (rt_http_request_t *req, void *arg)
{
    s_chunk_t *c = arg;
    if (!rt_http_request_gone (req)) {
        if (rt_http_stream_write (req, c->data, c->len) != 0)
            atomic_fetch_add (&s_w.failures, 1);
        atomic_store (&s_w.pending, rt_http_stream_pending (req));
    }
    free (c);
}

static void
s_end_on_worker (rt_http_request_t *req, void *arg)
{
    (void)arg;
    pthread_mutex_lock (&s_w.lock);
    s_w.req = NULL;
    pthread_mutex_unlock (&s_w.lock);
    if (rt_http_stream_end (req) != 0)
        atomic_fetch_add (&s_w.failures, 1);
    atomic_fetch_add (&s_w.ended, 1);
}

/* The open stream, waiting up to 5 s for a client to open one. */
static rt_http_request_t *
s_stream_req (void)
{
    for (int i = 0; i < 500; i++) {
        rt_http_request_t *req;
        pthread_mutex_lock (&s_w.lock);
        req = s_w.req;
        pthread_mutex_unlock (&s_w.lock);
        if (req)
            return req;
        usleep (10000);
    }
    fail_msg ("no stream was opened");
    return NULL;
}

/* Writes `len` bytes of text (repeated to fill) from the test's thread. */
static void
s_post_write (const char *text, size_t len)
{
    s_chunk_t *c = malloc (sizeof *c + len);
    size_t tl = strlen (text);
    assert_non_null (c);
    c->len = len;
    for (size_t i = 0; i < len; i++)
        c->data[i] = text[i % tl];
    assert_int_equal (rt_http_post (s_stream_req (), s_write_on_worker, c), 0);
}

static void
s_post_end (void)
{
    assert_int_equal (rt_http_post (s_stream_req (), s_end_on_worker, NULL), 0);
}

static int
s_start (void **state)
{
    char err[256];
    rt_http_server_config_t cfg = {0};
    (void)state;
    memset (&s_w, 0, sizeof s_w);
    pthread_mutex_init (&s_w.lock, NULL);
    s_w.metrics = rt_metrics_new ();
    assert_non_null (s_w.metrics);
    cfg.address = "127.0.0.1:0";
    cfg.name = "stream";
    cfg.threads = 2;
    /* Short read deadlines, to show they do not cut a stream. */
    cfg.header_timeout_ms = 300;
    cfg.body_timeout_ms = 300;
    cfg.stop_timeout_ms = 8000;
    cfg.metrics = s_w.metrics;
    s_w.srv = rt_http_server_new (&cfg, err, sizeof err);
    if (!s_w.srv)
        fail_msg ("new: %s", err);
    assert_non_null (rt_http_route (s_w.srv, "GET", "/stream", h_stream, NULL));
    assert_non_null (rt_http_route (s_w.srv, "GET", "/hello", h_hello, NULL));
    if (rt_http_server_start (s_w.srv, err, sizeof err) != 0)
        fail_msg ("start: %s", err);
    return 0;
}

static int
s_stop (void **state)
{
    (void)state;
    rt_http_server_destroy (&s_w.srv);
    rt_metrics_destroy (&s_w.metrics);
    pthread_mutex_destroy (&s_w.lock);
    return 0;
}

/* --- a libcurl client on a thread of its own --- */

typedef struct {
    CURL *curl;           /* the handle (kept for a second request) */
    char url[128];        /* what it asks */
    bool nobody;          /* HEAD */
    size_t stop_after;    /* abort once this many bytes came (0: never) */
    pthread_mutex_t lock; /* guards body and len */
    char body[1 << 16];   /* what came */
    size_t len;           /* its length */
    char headers[4096];   /* the head, as received */
    size_t hlen;          /* its length */
    CURLcode result;      /* curl_easy_perform's */
    long status;          /* the HTTP status */
    atomic_bool done;     /* the exchange is over */
    pthread_t thread;     /* runs it */
} s_curl_t;

static size_t
s_curl_body (char *data, size_t size, size_t n, void *arg)
{
    s_curl_t *c = arg;
    size_t len = size * n;
    pthread_mutex_lock (&c->lock);
    if (c->len + len < sizeof c->body) {
        memcpy (c->body + c->len, data, len);
        c->len += len;
        c->body[c->len] = '\0';
    }
    pthread_mutex_unlock (&c->lock);
    if (c->stop_after && c->len >= c->stop_after)
        return 0; /* the client leaves */
    return len;
}

static size_t
s_curl_header (char *data, size_t size, size_t n, void *arg)
{
    s_curl_t *c = arg;
    size_t len = size * n;
    if (c->hlen + len < sizeof c->headers) {
        memcpy (c->headers + c->hlen, data, len);
        c->hlen += len;
        c->headers[c->hlen] = '\0';
    }
    return len;
}

static void *
s_curl_run (void *arg)
{
    s_curl_t *c = arg;
    c->result = curl_easy_perform (c->curl);
    curl_easy_getinfo (c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    atomic_store (&c->done, true);
    return NULL;
}

static s_curl_t *
s_curl_start (const char *path, bool nobody, size_t stop_after)
{
    s_curl_t *c = calloc (1, sizeof *c);
    assert_non_null (c);
    pthread_mutex_init (&c->lock, NULL);
    snprintf (c->url, sizeof c->url, "http://127.0.0.1:%d%s", rt_http_server_port (s_w.srv), path);
    c->nobody = nobody;
    c->stop_after = stop_after;
    c->curl = curl_easy_init ();
    assert_non_null (c->curl);
    curl_easy_setopt (c->curl, CURLOPT_URL, c->url);
    curl_easy_setopt (c->curl, CURLOPT_NOBODY, nobody ? 1L : 0L);
    curl_easy_setopt (c->curl, CURLOPT_WRITEFUNCTION, s_curl_body);
    curl_easy_setopt (c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt (c->curl, CURLOPT_HEADERFUNCTION, s_curl_header);
    curl_easy_setopt (c->curl, CURLOPT_HEADERDATA, c);
    curl_easy_setopt (c->curl, CURLOPT_TIMEOUT, 30L);
    assert_int_equal (pthread_create (&c->thread, NULL, s_curl_run, c), 0);
    return c;
}

static void
s_curl_join (s_curl_t *c)
{
    pthread_join (c->thread, NULL);
}

static void
s_curl_free (s_curl_t *c)
{
    curl_easy_cleanup (c->curl);
    pthread_mutex_destroy (&c->lock);
    free (c);
}

/* Waits up to ms for the client to hold `want` (as the end of its body). */
static bool
s_curl_wait_body (s_curl_t *c, const char *want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        bool got;
        pthread_mutex_lock (&c->lock);
        got = c->len >= strlen (want) && strcmp (c->body + c->len - strlen (want), want) == 0;
        pthread_mutex_unlock (&c->lock);
        if (got)
            return true;
        usleep (5000);
    }
    return false;
}

static bool
s_wait_flag (atomic_bool *flag, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (atomic_load (flag))
            return true;
        usleep (5000);
    }
    return false;
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- tests --- */

/* Each chunk reaches the client while the stream is open (the next is
 * written only once it is there), in order; the read deadlines (300 ms)
 * pass without cutting it; the connection serves another request after
 * the end; the response was counted at its begin. */
static void
test_chunks_in_order (void **state)
{
    char chunk[64], all[1024] = "";
    long connects = -1;
    char *text, url[128];
    s_curl_t *c;
    (void)state;
    c = s_curl_start ("/stream", false, 0);
    s_stream_req ();
    /* Counted at the begin, before any chunk. */
    text = rt_metrics_render (s_w.metrics);
    assert_non_null (strstr (text, "retain_http_requests_total{server=\"stream\",route=\"/stream\","
                                   "status=\"200\"} 1"));
    free (text);
    for (int i = 0; i < 6; i++) {
        snprintf (chunk, sizeof chunk, "data: event %d\n\n", i);
        strcat (all, chunk);
        s_post_write (chunk, strlen (chunk));
        if (!s_curl_wait_body (c, chunk, 2000))
            fail_msg ("chunk %d did not reach the client while the stream was open", i);
        assert_false (atomic_load (&c->done));
        if (i == 2)
            usleep (500000); /* past both read deadlines */
    }
    s_post_end ();
    s_curl_join (c);
    assert_int_equal (c->result, CURLE_OK);
    assert_int_equal (c->status, 200);
    assert_string_equal (c->body, all);
    assert_non_null (strcasestr (c->headers, "Transfer-Encoding: chunked"));
    assert_non_null (strcasestr (c->headers, "Content-Type: text/event-stream"));
    assert_non_null (strcasestr (c->headers, "Cache-Control: no-cache"));
    assert_null (strcasestr (c->headers, "Content-Length"));
    assert_int_equal (atomic_load (&s_w.reply_refused), -1);
    assert_int_equal (atomic_load (&s_w.header_late), -1);
    assert_int_equal (atomic_load (&s_w.failures), 0);

    /* The same connection, kept alive, serves the next request. */
    c->len = 0;
    snprintf (url, sizeof url, "http://127.0.0.1:%d/hello", rt_http_server_port (s_w.srv));
    curl_easy_setopt (c->curl, CURLOPT_URL, url);
    assert_int_equal (curl_easy_perform (c->curl), CURLE_OK);
    curl_easy_getinfo (c->curl, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal (connects, 0);
    assert_string_equal (c->body, "hello");
    s_curl_free (c);
}

/* A client that leaves mid-stream: the handler is told, a write then
 * fails, the end frees the request (ASan checks the rest at exit), and
 * the server goes on serving. */
static void
test_client_leaves (void **state)
{
    s_curl_t *c, *d;
    (void)state;
    c = s_curl_start ("/stream", false, 5);
    s_stream_req ();
    s_post_write ("data: bye\n\n", 11); /* the client aborts on these bytes */
    s_curl_join (c);
    assert_int_equal (c->result, CURLE_WRITE_ERROR);
    if (!s_wait_flag (&s_w.gone, 3000))
        fail_msg ("on_gone was not called after the client left");
    assert_int_equal (atomic_load (&s_w.write_gone), -1);
    assert_int_equal (atomic_load (&s_w.ended), 1);
    s_curl_free (c);

    d = s_curl_start ("/hello", false, 0);
    s_curl_join (d);
    assert_int_equal (d->result, CURLE_OK);
    assert_string_equal (d->body, "hello");
    s_curl_free (d);
}

/* HEAD: the head of the stream alone, the request finished at once. */
static void
test_head (void **state)
{
    s_curl_t *c;
    (void)state;
    c = s_curl_start ("/stream", true, 0);
    s_curl_join (c);
    assert_int_equal (c->result, CURLE_OK);
    assert_int_equal (c->status, 200);
    assert_int_equal (c->len, 0);
    assert_non_null (strcasestr (c->headers, "Content-Type: text/event-stream"));
    assert_int_equal (atomic_load (&s_w.head_only), 1);
    assert_int_equal (atomic_load (&s_w.begun), 0);
    s_curl_free (c);
}

/* --- a raw client, for what libcurl would hide --- */

static int
s_raw_connect (void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons ((uint16_t)rt_http_server_port (s_w.srv))};
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
    assert_true (fd >= 0);
    /* A small receive buffer: what the client does not read stays with
     * the server. */
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (connect (fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        fail_msg ("connect: %s", strerror (errno));
    return fd;
}

/* Reads until the server closes or 5 s pass; the bytes into buf. */
static size_t
s_raw_read_all (int fd, char *buf, size_t cap)
{
    size_t len = 0;
    int64_t until = s_now_ms () + 5000;
    while (len + 1 < cap && s_now_ms () < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll (&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv (fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* HTTP/1.0 has no chunks: the body is the bytes as written, ended by the
 * close. */
static void
test_http10_close_delimited (void **state)
{
    static const char get[] = "GET /stream HTTP/1.0\r\n\r\n";
    char buf[4096];
    int fd;
    (void)state;
    fd = s_raw_connect ();
    assert_int_equal (send (fd, get, sizeof get - 1, 0), (ssize_t)(sizeof get - 1));
    s_stream_req ();
    s_post_write ("data: one\n\n", 11);
    s_post_write ("data: two\n\n", 11);
    s_post_end ();
    s_raw_read_all (fd, buf, sizeof buf);
    close (fd);
    assert_non_null (strstr (buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null (strcasestr (buf, "Connection: close\r\n"));
    assert_null (strcasestr (buf, "Transfer-Encoding"));
    assert_null (strcasestr (buf, "Content-Length"));
    assert_non_null (strstr (buf, "\r\n\r\ndata: one\n\ndata: two\n\n"));
    assert_int_equal (strlen (strstr (buf, "\r\n\r\n")), 4 + 22);
}

/* A client that reads nothing: what the server holds for it shows in
 * rt_http_stream_pending, for the handler to cut it off. */
static void
test_pending (void **state)
{
    static const char get[] = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd;
    size_t pending;
    (void)state;
    fd = s_raw_connect ();
    assert_int_equal (send (fd, get, sizeof get - 1, 0), (ssize_t)(sizeof get - 1));
    s_stream_req ();
    for (int i = 0; i < 16; i++)
        s_post_write ("0123456789abcdef", 256 * 1024);
    for (int i = 0; i < 200; i++) {
        if (atomic_load (&s_w.pending) > 2 * 1024 * 1024)
            break;
        usleep (10000);
    }
    pending = atomic_load (&s_w.pending);
    if (pending <= 2 * 1024 * 1024 || pending > 4 * 1024 * 1024 + 4096)
        fail_msg ("pending is %zu after 4 MiB written to a client that reads nothing", pending);
    s_post_end ();
    close (fd);
}

/* The server destroyed under an open stream: the stream ends at once
 * (long before stop_timeout_ms) with the last chunk, so the client has a
 * whole response, and the handler is told through on_gone. */
static void
test_destroy_ends_streams (void **state)
{
    s_curl_t *c;
    int64_t t0;
    (void)state;
    c = s_curl_start ("/stream", false, 0);
    s_stream_req ();
    s_post_write ("data: last\n\n", 12);
    assert_true (s_curl_wait_body (c, "data: last\n\n", 2000));
    t0 = s_now_ms ();
    rt_http_server_destroy (&s_w.srv);
    if (s_now_ms () - t0 > 2000)
        fail_msg ("destroy waited %lld ms for a stream", (long long)(s_now_ms () - t0));
    assert_true (atomic_load (&s_w.gone));
    assert_int_equal (atomic_load (&s_w.ended), 1);
    s_curl_join (c);
    assert_int_equal (c->result, CURLE_OK);
    assert_string_equal (c->body, "data: last\n\n");
    s_curl_free (c);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_chunks_in_order, s_start, s_stop),
        cmocka_unit_test_setup_teardown (test_client_leaves, s_start, s_stop),
        cmocka_unit_test_setup_teardown (test_head, s_start, s_stop),
        cmocka_unit_test_setup_teardown (test_http10_close_delimited, s_start, s_stop),
        cmocka_unit_test_setup_teardown (test_pending, s_start, s_stop),
        cmocka_unit_test_setup_teardown (test_destroy_ends_streams, s_start, s_stop),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
