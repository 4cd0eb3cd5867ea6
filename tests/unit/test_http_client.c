/*
 * test_http_client: what notifyd and trackerd see of the outbound client,
 * against a small HTTP/1.1 server of the test's own on 127.0.0.1 (raw
 * bufferevents on a thread of their own, so it can misbehave on purpose
 * and count what a provider would see: connections accepted and open at
 * once, bytes written before the client went away).
 *
 * Keep-alive (100 sequential requests over at most 2 connections), 10,000
 * requests at once never holding more than 4 connections, a queue wait not
 * counted as a timeout, a server that never answers (timeout within its
 * bound), one that drops the connection mid-answer, oversized bodies and
 * headers (too_large, the download stopped early), Retry-After in both
 * forms, a 503 that is still an HTTP answer, refused connections, an
 * unknown host, a TLS handshake with a plain HTTP server, malformed
 * requests refused at submit, a full queue, and a destroy with requests
 * running and waiting (each told once, cancelled; LSan finds no leak).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_http_client.h"
#include "rt_test.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* /big streams at most this much: far more than a bounded client reads. */
#define S_BIG_LIMIT (1024LL * 1024 * 1024)
#define S_BIG_CHUNK (64 * 1024)

typedef struct s_server_t s_server_t;
typedef struct s_conn_t s_conn_t;

/* One connection the test server accepted. */
struct s_conn_t {
    s_server_t *server;      /* owner */
    struct bufferevent *bev; /* the socket; owned */
    struct event *timer;     /* a delayed answer (/slow); owned, may be NULL */
    bool busy;               /* answering (or never answering): read nothing more */
    bool close_after;        /* close once the output is written */
    bool streaming;          /* /big: write more as the output drains */
    long long sent;          /* body bytes of /big queued for writing */
    s_conn_t *prev;          /* server's list */
    s_conn_t *next;          /* server's list */
};

/* The test server and what it saw; counters are read by the test thread. */
struct s_server_t {
    struct event_base *base;         /* the server thread's loop; owned */
    struct evconnlistener *listener; /* on 127.0.0.1:port; owned */
    struct event *stop;              /* activated by the test thread to end the loop */
    pthread_t thread;                /* runs base */
    int port;                        /* the port bound */
    s_conn_t *conns;                 /* open connections */
    atomic_int accepted;             /* connections accepted */
    atomic_int open;                 /* connections open now */
    atomic_int max_open;             /* most connections open at once */
    atomic_long requests;            /* requests read */
    atomic_llong big_sent;           /* /big body bytes written when the client left */
    atomic_int big_done;             /* /big connections that ended */
};

/* What the test thread keeps of one response. */
typedef struct {
    int calls;                 /* done callbacks received */
    rt_http_outcome_t outcome; /* the last outcome */
    int status;                /* its status */
    char body[512];            /* its body, truncated */
    size_t body_len;           /* its full body length */
    char error[256];           /* its error */
    char mixed[64];            /* its X-Mixed-Case header, looked up in lower case */
    int64_t retry_after_ms;    /* its Retry-After */
    int64_t total_us;          /* its total time */
    int64_t queued_us;         /* its queue wait */
    bool reused;               /* its connection was kept from before */
} s_result_t;

/* --- the test server --- */

static void s_conn_read (struct bufferevent *bev, void *arg);

static void
s_conn_free (s_conn_t *c)
{
    s_server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->timer)
        event_free (c->timer);
    bufferevent_free (c->bev);
    atomic_fetch_sub (&s->open, 1);
    free (c);
}

static void s_write (s_conn_t *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_write (s_conn_t *c, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    evbuffer_add_vprintf (bufferevent_get_output (c->bev), fmt, args);
    va_end (args);
}

static void
s_reply (s_conn_t *c, int status, const char *extra, const char *body)
{
    s_write (c, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n%s", status, strlen (body), extra,
             body);
}

static void
s_http_date (time_t when, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r (&when, &tm);
    strftime (out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Queues /big body chunks while little is waiting to be written. */
static void
s_stream (s_conn_t *c)
{
    static char chunk[S_BIG_CHUNK];
    struct evbuffer *out = bufferevent_get_output (c->bev);
    while (c->sent < S_BIG_LIMIT && evbuffer_get_length (out) < 4 * S_BIG_CHUNK) {
        evbuffer_add_printf (out, "%x\r\n", S_BIG_CHUNK);
        evbuffer_add (out, chunk, sizeof chunk);
        evbuffer_add (out, "\r\n", 2);
        c->sent += S_BIG_CHUNK;
    }
    if (c->sent >= S_BIG_LIMIT) {
        evbuffer_add (out, "0\r\n\r\n", 5);
        c->streaming = false;
    }
}

static void
s_on_slow (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_conn_t *c = arg;
    s_reply (c, 200, "", "slow");
    c->busy = false;
    s_conn_read (c->bev, c);
}

/* Answers one request by its path; false when it closed the connection
 * (c is then gone). */
static bool
s_answer (s_conn_t *c, const char *head, const char *body)
{
    char method[16] = "", path[256] = "";
    sscanf (head, "%15s %255s", method, path);
    if (strcmp (path, "/ok") == 0) {
        s_reply (c, 200, "", "hello");
    } else if (strcmp (path, "/echo") == 0) {
        const char *test = strcasestr (head, "\r\nX-Test:");
        const char *agent = strcasestr (head, "\r\nUser-Agent:");
        char line[128] = "", ua[128] = "";
        if (test)
            sscanf (test + 9, " %127[^\r]", line);
        if (agent)
            sscanf (agent + 13, " %127[^\r]", ua);
        char out[4096];
        snprintf (out, sizeof out, "%s %s\nx-test=%s\nua=%s\nexpect=%s\n%s", method, path, line, ua,
                  strcasestr (head, "\r\nExpect:") ? "yes" : "no", body);
        s_reply (c, 200, "X-Mixed-Case: yes\r\nX-Folded: one\r\n two\r\n", out);
    } else if (strcmp (path, "/status/503") == 0) {
        s_reply (c, 503, "Retry-After: 2\r\n", "busy");
    } else if (strcmp (path, "/retry-seconds") == 0) {
        s_reply (c, 429, "Retry-After: 7\r\n", "slow down");
    } else if (strcmp (path, "/retry-date") == 0) {
        /* Two minutes after the server's own Date, whatever our clock says. */
        s_reply (c, 503,
                 "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                 "Retry-After: Sun, 06 Nov 1994 08:51:37 GMT\r\n",
                 "");
    } else if (strcmp (path, "/retry-date-nodate") == 0) {
        char date[64], extra[128];
        s_http_date (time (NULL) + 30, date, sizeof date);
        snprintf (extra, sizeof extra, "Retry-After: %s\r\n", date);
        s_reply (c, 503, extra, "");
    } else if (strcmp (path, "/retry-bad") == 0) {
        s_reply (c, 503, "Retry-After: soon\r\n", "");
    } else if (strcmp (path, "/slow") == 0) {
        struct timeval tv = {0, 50 * 1000};
        if (!c->timer)
            c->timer = evtimer_new (c->server->base, s_on_slow, c);
        evtimer_add (c->timer, &tv);
        c->busy = true;
    } else if (strcmp (path, "/never") == 0) {
        c->busy = true;
    } else if (strcmp (path, "/drop") == 0) {
        s_write (c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        c->busy = true;
        c->close_after = true;
    } else if (strcmp (path, "/close") == 0) {
        s_conn_free (c);
        return false;
    } else if (strcmp (path, "/big") == 0) {
        s_write (c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        c->busy = true;
        c->streaming = true;
        s_stream (c);
    } else if (strcmp (path, "/big-announced") == 0) {
        s_write (c, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n", S_BIG_LIMIT);
        c->busy = strcmp (method, "HEAD") != 0; /* the body never comes */
    } else if (strcmp (path, "/huge-headers") == 0) {
        s_write (c, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 2000; i++)
            s_write (c, "X-Filler-%d: %080d\r\n", i, i);
        s_write (c, "Content-Length: 0\r\n\r\n");
    } else {
        s_reply (c, 404, "", "no such path");
    }
    return true;
}

static void
s_conn_read (struct bufferevent *bev, void *arg)
{
    s_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input (bev);
    while (!c->busy && !c->close_after) {
        size_t len = evbuffer_get_length (in);
        if (len == 0)
            return;
        unsigned char first = 0;
        evbuffer_copyout (in, &first, 1);
        if (first == 0x16) {
            /* A TLS ClientHello: this server speaks plain HTTP only. */
            s_write (c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            c->close_after = true;
            return;
        }
        struct evbuffer_ptr end = evbuffer_search (in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0)
            return;
        size_t head_len = (size_t)end.pos + 4;
        char *head = malloc (head_len + 1);
        assert_non_null (head);
        evbuffer_copyout (in, head, head_len);
        head[head_len] = '\0';
        const char *cl = strcasestr (head, "\r\nContent-Length:");
        size_t body_len = cl ? strtoul (cl + 17, NULL, 10) : 0;
        if (len < head_len + body_len) {
            free (head);
            return;
        }
        evbuffer_drain (in, head_len);
        char *body = malloc (body_len + 1);
        assert_non_null (body);
        evbuffer_remove (in, body, body_len);
        body[body_len] = '\0';
        atomic_fetch_add (&c->server->requests, 1);
        bool open = s_answer (c, head, body);
        free (head);
        free (body);
        if (!open)
            return;
    }
}

static void
s_conn_write (struct bufferevent *bev, void *arg)
{
    (void)bev;
    s_conn_t *c = arg;
    if (c->streaming)
        s_stream (c);
    else if (c->close_after)
        s_conn_free (c);
}

static void
s_conn_event (struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    s_conn_t *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->sent > 0) {
            atomic_store (&c->server->big_sent, c->sent);
            atomic_fetch_add (&c->server->big_done, 1);
        }
        s_conn_free (c);
    }
}

static void
s_on_accept (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
             void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    s_server_t *s = arg;
    s_conn_t *c = calloc (1, sizeof *c);
    assert_non_null (c);
    c->server = s;
    c->bev = bufferevent_socket_new (s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null (c->bev);
    bufferevent_setcb (c->bev, s_conn_read, s_conn_write, s_conn_event, c);
    bufferevent_enable (c->bev, EV_READ | EV_WRITE);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    atomic_fetch_add (&s->accepted, 1);
    int open = atomic_fetch_add (&s->open, 1) + 1;
    int max = atomic_load (&s->max_open);
    while (open > max && !atomic_compare_exchange_weak (&s->max_open, &max, open))
        ;
}

/* On the server thread: a loopbreak from the test thread would be lost if
 * it came before the loop started; an active event is not. */
static void
s_on_stop (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_server_t *s = arg;
    event_base_loopbreak (s->base);
}

static void *
s_server_main (void *arg)
{
    s_server_t *s = arg;
    event_base_dispatch (s->base);
    return NULL;
}

static s_server_t *
s_server_start (void)
{
    s_server_t *s = calloc (1, sizeof *s);
    assert_non_null (s);
    s->base = event_base_new ();
    assert_non_null (s->base);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    s->listener =
        evconnlistener_new_bind (s->base, s_on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                 1024, (struct sockaddr *)&sin, sizeof sin);
    assert_non_null (s->listener);
    socklen_t len = sizeof sin;
    getsockname (evconnlistener_get_fd (s->listener), (struct sockaddr *)&sin, &len);
    s->port = ntohs (sin.sin_port);
    s->stop = event_new (s->base, -1, 0, s_on_stop, s);
    assert_non_null (s->stop);
    assert_int_equal (pthread_create (&s->thread, NULL, s_server_main, s), 0);
    return s;
}

static void
s_server_stop (s_server_t *s)
{
    event_active (s->stop, EV_TIMEOUT, 0);
    pthread_join (s->thread, NULL);
    event_free (s->stop);
    while (s->conns)
        s_conn_free (s->conns);
    evconnlistener_free (s->listener);
    event_base_free (s->base);
    free (s);
}

/* --- the client side, on the test thread --- */

/* The per-test state: the server and the client's loop. */
typedef struct {
    s_server_t *server;      /* the peer */
    struct event_base *base; /* the client's loop */
    struct event *tick;      /* wakes the loop so waits notice their deadline */
} s_fixture_t;

static void
s_on_tick (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->server = s_server_start ();
    f->base = event_base_new ();
    assert_non_null (f->base);
    f->tick = event_new (f->base, -1, EV_PERSIST, s_on_tick, NULL);
    struct timeval tv = {0, 50 * 1000};
    event_add (f->tick, &tv);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    event_free (f->tick);
    event_base_free (f->base);
    s_server_stop (f->server);
    free (f);
    return 0;
}

/* Runs the client's loop until *count reaches want or timeout_ms pass. */
static void
s_run_until (s_fixture_t *f, const int *count, int want, int timeout_ms)
{
    struct timespec t0, now;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    while (*count < want) {
        clock_gettime (CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (elapsed > timeout_ms)
            fail_msg ("waited %d ms for %d responses, got %d", timeout_ms, want, *count);
        event_base_loop (f->base, EVLOOP_ONCE);
    }
}

static void
s_on_result (void *arg, const rt_http_response_t *resp)
{
    s_result_t *r = arg;
    r->calls++;
    r->outcome = resp->outcome;
    r->status = resp->status;
    r->body_len = resp->body_len;
    snprintf (r->body, sizeof r->body, "%s", resp->body);
    snprintf (r->error, sizeof r->error, "%s", resp->error);
    const char *mixed = rt_http_response_header (resp, "x-mixed-case");
    snprintf (r->mixed, sizeof r->mixed, "%s", mixed ? mixed : "");
    r->retry_after_ms = resp->retry_after_ms;
    r->total_us = resp->total_us;
    r->queued_us = resp->queued_us;
    r->reused = resp->reused;
}

static void
s_url (s_fixture_t *f, const char *path, char *url, size_t urllen)
{
    snprintf (url, urllen, "http://127.0.0.1:%d%s", f->server->port, path);
}

/* One request, waited for; fills r. */
static void
s_fetch (s_fixture_t *f, rt_http_client_t *client, const rt_http_client_request_t *req,
         s_result_t *r)
{
    char err[256] = "";
    memset (r, 0, sizeof *r);
    rt_http_client_request_t copy = *req;
    copy.done = s_on_result;
    copy.arg = r;
    if (rt_http_client_submit (client, &copy, err, sizeof err) != 0)
        fail_msg ("submit %s: %s", req->url, err);
    s_run_until (f, &r->calls, 1, 10000);
    assert_int_equal (r->calls, 1);
}

static void
s_get (s_fixture_t *f, rt_http_client_t *client, const char *path, s_result_t *r)
{
    char url[256];
    s_url (f, path, url, sizeof url);
    rt_http_client_request_t req = {.url = url};
    s_fetch (f, client, &req, r);
}

static rt_http_client_t *
s_client (s_fixture_t *f, const rt_http_client_config_t *config)
{
    char err[256] = "";
    rt_http_client_t *client = rt_http_client_new (f->base, config, err, sizeof err);
    if (!client)
        fail_msg ("client: %s", err);
    return client;
}

/* --- the tests --- */

static void
test_request_and_response (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_config_t config = {.user_agent = "retain-test/1"};
    rt_http_client_t *client = s_client (f, &config);

    char url[256];
    s_url (f, "/echo", url, sizeof url);
    const char *headers[] = {"X-Test: abc", "Content-Type: text/plain", NULL};
    /* Over 1 KiB, where libcurl would otherwise ask for 100 Continue. */
    char body[2048];
    memset (body, 'b', sizeof body);
    memcpy (body, "payload", 7);
    rt_http_client_request_t req = {
        .method = "PATCH", .url = url, .headers = headers, .body = body, .body_len = sizeof body};
    s_result_t r;
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_string_equal (r.error, "");
    assert_int_equal (r.status, 200);
    assert_non_null (strstr (r.body, "PATCH /echo\n"));
    assert_non_null (strstr (r.body, "x-test=abc\n"));
    assert_non_null (strstr (r.body, "ua=retain-test/1\n"));
    assert_non_null (strstr (r.body, "expect=no\n"));
    assert_non_null (strstr (r.body, "\npayloadbbb"));
    assert_true (r.body_len > sizeof body);
    /* Header names match whatever their case. */
    assert_string_equal (r.mixed, "yes");
    assert_int_equal (r.retry_after_ms, -1);
    assert_false (r.reused);
    assert_true (r.total_us > 0);

    /* The same connection serves the next one; GET when no body. */
    req = (rt_http_client_request_t){.url = url};
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_non_null (strstr (r.body, "GET /echo\n"));
    assert_true (r.reused);
    assert_int_equal (atomic_load (&f->server->accepted), 1);
    rt_http_client_destroy (&client);
    assert_null (client);
    rt_http_client_destroy (&client); /* safe on NULL */
}

/* The folded field and the lookup by any case, from inside the callback. */
static void
s_on_headers (void *arg, const rt_http_response_t *resp)
{
    int *checked = arg;
    assert_string_equal (rt_http_response_header (resp, "X-MIXED-CASE"), "yes");
    assert_string_equal (rt_http_response_header (resp, "x-folded"), "one two");
    assert_null (rt_http_response_header (resp, "X-Absent"));
    bool found = false;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcmp (resp->headers[i].name, "X-Mixed-Case") == 0)
            found = true;
    assert_true (found);
    (*checked)++;
}

static void
test_response_headers (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    char url[256], err[256];
    s_url (f, "/echo", url, sizeof url);
    int checked = 0;
    rt_http_client_request_t req = {.url = url, .done = s_on_headers, .arg = &checked};
    assert_int_equal (rt_http_client_submit (client, &req, err, sizeof err), 0);
    s_run_until (f, &checked, 1, 5000);
    rt_http_client_destroy (&client);
}

/* Sequential requests: each submits the next from its done callback. */
typedef struct {
    rt_http_client_t *client; /* the client */
    char url[256];            /* what to fetch */
    int done;                 /* responses received */
    int ok;                   /* of them ok */
    int reused;               /* of them on a kept connection */
    int want;                 /* how many in all */
} s_chain_t;

static void
s_on_chain (void *arg, const rt_http_response_t *resp)
{
    s_chain_t *c = arg;
    c->done++;
    if (resp->outcome == RT_HTTP_OUTCOME_OK && resp->status == 200)
        c->ok++;
    if (resp->reused)
        c->reused++;
    if (c->done < c->want) {
        char err[256];
        rt_http_client_request_t req = {.url = c->url, .done = s_on_chain, .arg = c};
        assert_int_equal (rt_http_client_submit (c->client, &req, err, sizeof err), 0);
    }
}

static void
test_keep_alive (void **state)
{
    s_fixture_t *f = *state;
    s_chain_t chain = {.client = s_client (f, NULL), .want = 100};
    s_url (f, "/ok", chain.url, sizeof chain.url);
    char err[256];
    rt_http_client_request_t req = {.url = chain.url, .done = s_on_chain, .arg = &chain};
    assert_int_equal (rt_http_client_submit (chain.client, &req, err, sizeof err), 0);
    s_run_until (f, &chain.done, chain.want, 10000);
    assert_int_equal (chain.ok, 100);
    int accepted = atomic_load (&f->server->accepted);
    assert_true (accepted >= 1 && accepted <= 2);
    assert_true (chain.reused >= 100 - accepted);
    assert_int_equal (rt_http_client_in_flight (chain.client), 0);
    rt_http_client_destroy (&chain.client);
}

/* Counts of a burst. */
typedef struct {
    int done;              /* responses */
    int ok;                /* of them ok with 200 */
    int64_t max_us;        /* longest total time */
    int64_t max_queued_us; /* longest queue wait */
} s_burst_t;

static void
s_on_burst (void *arg, const rt_http_response_t *resp)
{
    s_burst_t *b = arg;
    b->done++;
    if (resp->outcome == RT_HTTP_OUTCOME_OK && resp->status == 200)
        b->ok++;
    else
        fprintf (stderr, "burst: %s %d %s\n", rt_http_outcome_name (resp->outcome), resp->status,
                 resp->error);
    if (resp->total_us > b->max_us)
        b->max_us = resp->total_us;
    if (resp->queued_us > b->max_queued_us)
        b->max_queued_us = resp->queued_us;
}

static void
test_ten_thousand_at_four_connections (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_config_t config = {.max_host_connections = 4};
    rt_http_client_t *client = s_client (f, &config);
    char url[256], err[256];
    s_url (f, "/ok", url, sizeof url);
    s_burst_t burst = {0};
    enum { N = 10000 };
    for (int i = 0; i < N; i++) {
        rt_http_client_request_t req = {.url = url, .done = s_on_burst, .arg = &burst};
        assert_int_equal (rt_http_client_submit (client, &req, err, sizeof err), 0);
    }
    assert_int_equal (rt_http_client_in_flight (client), N);
    s_run_until (f, &burst.done, N, 60000);
    assert_int_equal (burst.ok, N);
    assert_int_equal (atomic_load (&f->server->requests), N);
    assert_true (atomic_load (&f->server->max_open) <= 4);
    /* Kept alive under load too. */
    assert_true (atomic_load (&f->server->accepted) <= 4);
    assert_int_equal (rt_http_client_in_flight (client), 0);
    rt_http_client_destroy (&client);
}

static void
test_queue_wait_is_not_timeout (void **state)
{
    s_fixture_t *f = *state;
    /* 40 answers of 50 ms over 2 connections take a second, well over the
     * 300 ms each may take once it is sent. */
    rt_http_client_config_t config = {.max_host_connections = 2, .timeout_ms = 300};
    rt_http_client_t *client = s_client (f, &config);
    char url[256], err[256];
    s_url (f, "/slow", url, sizeof url);
    s_burst_t burst = {0};
    for (int i = 0; i < 40; i++) {
        rt_http_client_request_t req = {.url = url, .done = s_on_burst, .arg = &burst};
        assert_int_equal (rt_http_client_submit (client, &req, err, sizeof err), 0);
    }
    s_run_until (f, &burst.done, 40, 10000);
    assert_int_equal (burst.ok, 40);
    assert_true (burst.max_queued_us > 300 * 1000);
    assert_true (burst.max_us < 300 * 1000);
    assert_true (atomic_load (&f->server->max_open) <= 2);
    rt_http_client_destroy (&client);
}

static void
test_timeout (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    char url[256];
    s_url (f, "/never", url, sizeof url);
    rt_http_client_request_t req = {.url = url, .timeout_ms = 400};
    s_result_t r;
    struct timespec t0, t1;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    s_fetch (f, client, &req, &r);
    clock_gettime (CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_TIMEOUT);
    assert_int_equal (r.status, 0);
    assert_true (r.error[0] != '\0');
    assert_true (ms >= 380 && ms < 1500);
    assert_true (r.total_us >= 380 * 1000 && r.total_us < 1500 * 1000);
    rt_http_client_destroy (&client);
}

static void
test_dropped_connection (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    s_result_t r;
    /* Headers and 10 of 1000 bytes, then the server closes. */
    s_get (f, client, "/drop", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OTHER);
    assert_int_equal (r.status, 200);
    assert_int_equal (r.body_len, 10);
    assert_string_equal (r.body, "0123456789");
    assert_true (r.error[0] != '\0');
    /* Closed after reading the request, without a byte of answer. */
    s_get (f, client, "/close", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OTHER);
    assert_int_equal (r.status, 0);
    /* The client goes on. */
    s_get (f, client, "/ok", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    rt_http_client_destroy (&client);
}

static void
test_too_large (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_config_t config = {.max_body = 64 * 1024, .max_header_bytes = 16 * 1024};
    rt_http_client_t *client = s_client (f, &config);
    s_result_t r;
    /* A chunked body with no announced length: cut as it passes the cap. */
    s_get (f, client, "/big", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_TOO_LARGE);
    assert_int_equal (r.status, 200);
    assert_true (r.body_len <= 64 * 1024);
    assert_true (r.error[0] != '\0');
    /* The client stopped reading at once: the server got rid of a few MiB
     * (socket buffers), not the GiB it had to send. */
    for (int i = 0; i < 100 && atomic_load (&f->server->big_done) == 0; i++)
        usleep (10 * 1000);
    assert_int_equal (atomic_load (&f->server->big_done), 1);
    long long sent = atomic_load (&f->server->big_sent);
    assert_true (sent > 0 && sent < 64LL * 1024 * 1024);

    /* An announced length over the cap: refused before the body. */
    s_get (f, client, "/big-announced", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_TOO_LARGE);
    assert_int_equal (r.body_len, 0);

    /* HEAD announces a length it does not send: an answer like any. */
    char url[256];
    s_url (f, "/big-announced", url, sizeof url);
    rt_http_client_request_t head = {.method = "HEAD", .url = url};
    s_fetch (f, client, &head, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_int_equal (r.status, 200);

    /* Headers over their cap. */
    s_get (f, client, "/huge-headers", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_TOO_LARGE);

    s_get (f, client, "/ok", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    rt_http_client_destroy (&client);
}

static void
test_retry_after (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    s_result_t r;
    s_get (f, client, "/retry-seconds", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_int_equal (r.status, 429);
    assert_int_equal (r.retry_after_ms, 7000);

    s_get (f, client, "/retry-date", &r);
    assert_int_equal (r.status, 503);
    assert_int_equal (r.retry_after_ms, 120000);

    /* Without a Date, against our clock: 30 s, give or take the test. */
    s_get (f, client, "/retry-date-nodate", &r);
    assert_true (r.retry_after_ms > 27000 && r.retry_after_ms <= 31000);

    s_get (f, client, "/retry-bad", &r);
    assert_int_equal (r.retry_after_ms, -1);
    s_get (f, client, "/ok", &r);
    assert_int_equal (r.retry_after_ms, -1);
    rt_http_client_destroy (&client);
}

static void
test_503_is_an_answer (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    s_result_t r;
    s_get (f, client, "/status/503", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_int_equal (r.status, 503);
    assert_string_equal (r.body, "busy");
    assert_int_equal (r.retry_after_ms, 2000);
    s_get (f, client, "/nowhere", &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_int_equal (r.status, 404);
    rt_http_client_destroy (&client);
}

static void
test_connection_refused (void **state)
{
    s_fixture_t *f = *state;
    /* A port bound but not listening refuses, and nobody else takes it. */
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname (fd, (struct sockaddr *)&sin, &len);
    char url[256];
    snprintf (url, sizeof url, "http://127.0.0.1:%d/ok", ntohs (sin.sin_port));

    rt_http_client_t *client = s_client (f, NULL);
    rt_http_client_request_t req = {.url = url};
    s_result_t r;
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_CONNECT_FAILED);
    assert_string_equal (rt_http_outcome_name (r.outcome), "connect_failed");
    assert_int_equal (r.status, 0);
    assert_false (r.reused);
    close (fd);
    rt_http_client_destroy (&client);
}

static void
test_unknown_host (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    /* .invalid never resolves (RFC 6761). */
    rt_http_client_request_t req = {.url = "http://no-such-host.invalid/x", .timeout_ms = 5000};
    s_result_t r;
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_DNS_FAILED);
    rt_http_client_destroy (&client);
}

static void
test_tls_with_a_plain_server (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_t *client = s_client (f, NULL);
    char url[256];
    snprintf (url, sizeof url, "https://127.0.0.1:%d/ok", f->server->port);
    rt_http_client_request_t req = {.url = url};
    s_result_t r;
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_TLS_FAILED);
    rt_http_client_destroy (&client);
}

static void
test_hosts_take_turns (void **state)
{
    s_fixture_t *f = *state;
    s_server_t *other = s_server_start ();
    /* Two slots in all, each host may take both: the busy host's queue
     * must not hold the other host's one request back. */
    rt_http_client_config_t config = {.max_host_connections = 2, .max_total_connections = 2};
    rt_http_client_t *client = s_client (f, &config);
    char url[256], err[256];
    s_url (f, "/slow", url, sizeof url);
    s_burst_t burst = {0};
    for (int i = 0; i < 20; i++) {
        rt_http_client_request_t req = {.url = url, .done = s_on_burst, .arg = &burst};
        assert_int_equal (rt_http_client_submit (client, &req, err, sizeof err), 0);
    }
    char other_url[256];
    snprintf (other_url, sizeof other_url, "http://127.0.0.1:%d/ok", other->port);
    s_result_t r = {0};
    rt_http_client_request_t req = {.url = other_url, .done = s_on_result, .arg = &r};
    assert_int_equal (rt_http_client_submit (client, &req, err, sizeof err), 0);
    s_run_until (f, &r.calls, 1, 5000);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    /* It waited for one slow answer (50 ms), not for the ten rounds of
     * them (500 ms) queued before it. */
    assert_true (r.queued_us < 250 * 1000);
    assert_true (burst.done < 20);
    s_run_until (f, &burst.done, 20, 10000);
    assert_int_equal (burst.ok, 20);
    rt_http_client_destroy (&client);
    s_server_stop (other);
}

/* Waits until something accepts on 127.0.0.1:port. */
static bool
s_wait_listening (int port, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
        sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        bool up = connect (fd, (struct sockaddr *)&sin, sizeof sin) == 0;
        close (fd);
        if (up)
            return true;
        usleep (20 * 1000);
    }
    return false;
}

static void
test_tls_verification (void **state)
{
    s_fixture_t *f = *state;
    /* A self-signed certificate for 127.0.0.1 and `openssl s_server`
     * answering with a status page over TLS. */
    char dir[PATH_MAX], cert[PATH_MAX + 16], key[PATH_MAX + 16], cmd[4 * PATH_MAX];
    snprintf (dir, sizeof dir, "%s/http_client_tls_%d", rt_test_dir (), (int)getpid ());
    mkdir (dir, 0755);
    snprintf (cert, sizeof cert, "%s/cert.pem", dir);
    snprintf (key, sizeof key, "%s/key.pem", dir);
    snprintf (cmd, sizeof cmd,
              "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
              "-keyout %s -out %s >%s/req.log 2>&1",
              key, cert, dir);
    if (system (cmd) != 0)
        fail_msg ("making a certificate needs the openssl command: see %s/req.log", dir);
    int port = rt_test_free_port ();
    char server[3 * PATH_MAX];
    snprintf (server, sizeof server,
              "exec openssl s_server -quiet -www -accept 127.0.0.1:%d -cert %s -key %s", port, cert,
              key);
    char *argv[] = {"sh", "-c", server, NULL};
    pid_t pid = rt_test_spawn ("/bin/sh", argv, NULL, "http_client_tls.log");
    if (!s_wait_listening (port, 10000)) {
        rt_test_kill (pid, SIGKILL);
        fail_msg ("openssl s_server did not listen: see %s/http_client_tls.log", rt_test_dir ());
    }
    char url[256];
    snprintf (url, sizeof url, "https://127.0.0.1:%d/", port);
    rt_http_client_request_t req = {.url = url};
    s_result_t r;

    /* Verified by default: a certificate nobody vouches for is refused. */
    rt_http_client_t *client = s_client (f, NULL);
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_TLS_FAILED);
    assert_int_equal (r.status, 0);
    rt_http_client_destroy (&client);

    /* Trusted through ca_file. */
    rt_http_client_config_t trusted = {.ca_file = cert};
    client = s_client (f, &trusted);
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    assert_int_equal (r.status, 200);
    rt_http_client_destroy (&client);

    /* Or not verified at all, when asked. */
    rt_http_client_config_t blind = {.tls_no_verify = true};
    client = s_client (f, &blind);
    s_fetch (f, client, &req, &r);
    assert_int_equal (r.outcome, RT_HTTP_OUTCOME_OK);
    rt_http_client_destroy (&client);
    rt_test_kill (pid, SIGTERM);
}

static void
s_never_called (void *arg, const rt_http_response_t *resp)
{
    (void)arg;
    (void)resp;
    fail_msg ("done called for a refused request");
}

static void
test_refused_at_submit (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_config_t config = {.max_host_connections = 1, .max_queued = 2};
    rt_http_client_t *client = s_client (f, &config);
    char url[256], err[256];
    s_url (f, "/never", url, sizeof url);
    const char *smuggle[] = {"X-A: 1\r\nX-B: 2", NULL};
    const char *nameless[] = {": value", NULL};
    rt_http_client_request_t bad[] = {
        {.url = "not a url"},
        {.url = "ftp://127.0.0.1/file"},
        {.url = "file:///etc/passwd"},
        {.url = url, .method = "GET /x HTTP/1.1\r\n"},
        {.url = url, .headers = smuggle},
        {.url = url, .headers = nameless},
        {.url = url, .timeout_ms = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bad[i].done = s_never_called;
        err[0] = '\0';
        assert_int_equal (rt_http_client_submit (client, &bad[i], err, sizeof err), -1);
        assert_true (err[0] != '\0');
    }
    assert_int_equal (rt_http_client_in_flight (client), 0);

    /* One running and two waiting fill it; the next is refused. */
    s_result_t results[3] = {0};
    for (int i = 0; i < 3; i++) {
        rt_http_client_request_t req = {.url = url, .done = s_on_result, .arg = &results[i]};
        assert_int_equal (rt_http_client_submit (client, &req, err, sizeof err), 0);
    }
    rt_http_client_request_t more = {.url = url, .done = s_never_called};
    assert_int_equal (rt_http_client_submit (client, &more, err, sizeof err), -1);
    assert_non_null (strstr (err, "waiting"));
    assert_int_equal (rt_http_client_in_flight (client), 3);
    rt_http_client_destroy (&client);
    for (int i = 0; i < 3; i++) {
        assert_int_equal (results[i].calls, 1);
        assert_int_equal (results[i].outcome, RT_HTTP_OUTCOME_CANCELLED);
    }
}

/* Told of a cancel; tries to submit again, which must fail. */
typedef struct {
    rt_http_client_t *client; /* being destroyed */
    int cancelled;            /* cancelled outcomes */
    int others;               /* any other outcome */
    int resubmitted;          /* submits that were accepted */
} s_cancel_t;

static void
s_on_cancel (void *arg, const rt_http_response_t *resp)
{
    s_cancel_t *c = arg;
    if (resp->outcome == RT_HTTP_OUTCOME_CANCELLED)
        c->cancelled++;
    else
        c->others++;
    rt_http_client_request_t req = {.url = "http://127.0.0.1:1/", .done = s_never_called};
    char err[256];
    if (rt_http_client_submit (c->client, &req, err, sizeof err) == 0)
        c->resubmitted++;
}

static void
test_destroy_in_flight (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_config_t config = {.max_host_connections = 4};
    s_cancel_t cancel = {.client = s_client (f, &config)};
    char url[256], err[256];
    s_url (f, "/never", url, sizeof url);
    for (int i = 0; i < 20; i++) {
        /* A body too, so a running request holds copies to free. */
        rt_http_client_request_t req = {
            .url = url, .body = "x=1", .body_len = 3, .done = s_on_cancel, .arg = &cancel};
        assert_int_equal (rt_http_client_submit (cancel.client, &req, err, sizeof err), 0);
    }
    /* Let four reach the server and wait there. */
    for (int i = 0; i < 200 && atomic_load (&f->server->requests) < 4; i++)
        event_base_loop (f->base, EVLOOP_ONCE);
    assert_int_equal (atomic_load (&f->server->requests), 4);
    assert_int_equal (rt_http_client_in_flight (cancel.client), 20);
    assert_int_equal (cancel.cancelled, 0);
    rt_http_client_destroy (&cancel.client);
    assert_null (cancel.client);
    assert_int_equal (cancel.cancelled, 20);
    assert_int_equal (cancel.others, 0);
    assert_int_equal (cancel.resubmitted, 0);
}

static void
test_bad_config (void **state)
{
    s_fixture_t *f = *state;
    char err[256] = "";
    rt_http_client_config_t config = {.timeout_ms = -5};
    assert_null (rt_http_client_new (f->base, &config, err, sizeof err));
    assert_true (err[0] != '\0');
}

int
main (void)
{
    /* The test server's loop is stopped from the test thread. */
    evthread_use_pthreads ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_request_and_response, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_response_headers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_keep_alive, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ten_thousand_at_four_connections, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_queue_wait_is_not_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_dropped_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_too_large, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_retry_after, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_503_is_an_answer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_connection_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_host, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_tls_with_a_plain_server, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_tls_verification, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hosts_take_turns, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refused_at_submit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_destroy_in_flight, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_config, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
