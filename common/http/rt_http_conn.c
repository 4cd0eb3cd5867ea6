/*
 * rt_http_conn: one connection's life on its worker's loop (see
 * rt_http_internal.h for how the server's files divide the work).
 *
 * A small state machine:
 *
 *   HEAD    waiting for, then reading, a request's head; the bytes are
 *           copied from the socket's buffer into the request's own head
 *           buffer (never past max_header_bytes) and scanned for its end.
 *   BODY    reading the body into the request (never past max_body).
 *   HANDLE  the handler has the request; nothing more is read from the
 *           connection (pipelined bytes wait in its input buffer, which
 *           libevent stops filling at a watermark).
 *   FLUSH   the last response is being written; then the write side is
 *           shut and the connection goes to LINGER.
 *   LINGER  reading and dropping what the client still sends, until it
 *           closes or S_LINGER_MS pass: closing a socket with unread bytes
 *           sends a reset, which can destroy the answer in flight.
 *
 * One timer per connection holds its current deadline: the header
 * deadline from the accept (or from a keep-alive request's first byte),
 * the body deadline from the end of the headers, the keep-alive idle
 * deadline, the linger deadline. Each is set once when its phase starts,
 * never pushed back by a read, so a client trickling bytes gains nothing.
 *
 * Nothing is freed under a caller's feet: s_conn_process runs the steps of
 * one connection in a loop (a pipeline of requests answered at once is a
 * loop, not a recursion), and a connection closed while it runs is only
 * marked and freed when the loop ends. A deferred answer resumes the
 * connection through a deferred read callback, never from inside the
 * stack of whoever answered.
 *
 * Refusing at the total connection cap costs no allocation: a canned 503
 * is sent on the raw socket, which is closed. A connection over its
 * address's cap is answered 429 like any refusal (and counts in the total
 * until it is gone, so a flood from one address meets the total cap).
 */
#include "rt_clock.h"
#include "rt_http_internal.h"

#include "rt_log.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* A head is copied in steps of this size, so the bytes of pipelined
 * requests after it are copied back at most once each. */
#define S_HEAD_STEP 2048
/* The first allocation of a head buffer; it doubles up to the cap. */
#define S_HEAD_INITIAL 1024
/* A body of known length up to this size is allocated at once. */
#define S_BODY_PREALLOC (64 * 1024)
/* Output beyond which pipelined requests wait until it is written. */
#define S_OUT_HIGH (64 * 1024)
/* Lingering after the last answer: how long, and how much to drop. */
#define S_LINGER_MS    2000
#define S_LINGER_BYTES (256 * 1024)

typedef enum {
    S_HEAD,   /* waiting for or reading a request's head */
    S_BODY,   /* reading its body */
    S_HANDLE, /* the handler has the request */
    S_FLUSH,  /* writing the last response, then shutting the write side */
    S_LINGER  /* dropping input until the client closes or the deadline */
} s_state_t;

/* What the connection's timer means when it fires. */
typedef enum {
    S_T_HEADER, /* 408: the headers are late */
    S_T_BODY,   /* 408: the body is late */
    S_T_IDLE,   /* keep-alive idle: close silently */
    S_T_LINGER  /* the linger is over: close */
} s_timer_kind_t;

struct rt_http_conn_t {
    rt_http_worker_t *worker;    /* the loop it lives on */
    struct bufferevent *bev;     /* the socket; owns the descriptor */
    struct event *timer;         /* the current deadline */
    s_timer_kind_t timer_kind;   /* what the deadline means */
    s_state_t state;             /* see the file head */
    rt_http_request_t *req;      /* the request being read or handled, NULL between */
    unsigned served;             /* requests answered on it */
    bool close_after;            /* close once the current response is out */
    bool wait_drain;             /* the next request waits for the output to drain */
    bool busy;                   /* s_conn_process is running for it */
    bool dead;                   /* closed while busy: freed when the loop ends */
    bool eof;                    /* the client shut its side */
    bool by_address;             /* counts against its address's cap */
    size_t dropped;              /* bytes dropped while lingering */
    unsigned char addr[16];      /* the client's address bytes (IPv4: 4) */
    size_t addrlen;              /* 4, 16, or 0 for a non-IP peer */
    char peer[INET6_ADDRSTRLEN]; /* the address as text */
    rt_http_conn_t *prev, *next; /* the worker's open connections */
};

static void s_conn_process (rt_http_conn_t *conn);
static void s_conn_close (rt_http_conn_t *conn);

/* The client's address as table key and text; IPv4-mapped IPv6 counts as
 * the IPv4 address it is. */
static void
s_peer_of (const struct sockaddr *sa, rt_http_conn_t *conn)
{
    conn->addrlen = 0;
    snprintf (conn->peer, sizeof conn->peer, "unknown");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy (conn->addr, &in->sin_addr, 4);
        conn->addrlen = 4;
        inet_ntop (AF_INET, &in->sin_addr, conn->peer, sizeof conn->peer);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr)) {
            memcpy (conn->addr, &in6->sin6_addr.s6_addr[12], 4);
            conn->addrlen = 4;
            inet_ntop (AF_INET, conn->addr, conn->peer, sizeof conn->peer);
        } else {
            memcpy (conn->addr, &in6->sin6_addr, 16);
            conn->addrlen = 16;
            inet_ntop (AF_INET6, &in6->sin6_addr, conn->peer, sizeof conn->peer);
        }
    }
}

static rt_http_request_t *
s_request_new (rt_http_conn_t *conn)
{
    rt_http_request_t *req = calloc (1, sizeof *req);
    if (!req)
        return NULL;
    req->worker = conn->worker;
    req->conn = conn;
    req->arrival_us = rt_clock_elapsed_us ();
    snprintf (req->peer, sizeof req->peer, "%s", conn->peer);
    return req;
}

void
rt_http_request_free (rt_http_request_t *req)
{
    if (!req)
        return;
    rt_http_api_abandon (req);
    free (req->head);
    free (req->fields);
    free (req->path);
    free (req->param_buf);
    free (req->principal);
    rt_buf_free (&req->body);
    rt_buf_free (&req->out_headers);
    free (req);
}

/* The client of a request went away: a deferred request lives on, told. */
static void
s_request_detach (rt_http_request_t *req)
{
    req->conn = NULL;
    if (!req->deferred) {
        rt_http_request_free (req);
        return;
    }
    req->gone = true;
    if (req->on_gone) {
        rt_http_request_fn fn = req->on_gone;
        req->on_gone = NULL;
        fn (req, req->on_gone_arg); /* may answer, and so free, req */
    }
}

static void
s_timer_arm (rt_http_conn_t *conn, int ms, s_timer_kind_t kind)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    conn->timer_kind = kind;
    evtimer_add (conn->timer, &tv);
}

static void
s_timer_off (rt_http_conn_t *conn)
{
    evtimer_del (conn->timer);
}

static void
s_conn_free (rt_http_conn_t *conn)
{
    rt_http_worker_t *w = conn->worker;
    rt_http_server_t *srv = w->server;
    rt_http_request_t *req = conn->req;
    conn->req = NULL;
    if (conn->timer)
        event_free (conn->timer);
    if (conn->bev)
        bufferevent_free (conn->bev);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        w->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    w->nconns--;
    rt_http_caps_release (srv, conn->addr, conn->addrlen, conn->by_address);
    if (srv->connections)
        rt_gauge_add (srv->connections, -1);
    free (conn);
    if (req)
        s_request_detach (req);
    rt_http_worker_check_done (w);
}

static void
s_conn_close (rt_http_conn_t *conn)
{
    if (conn->busy)
        conn->dead = true;
    else
        s_conn_free (conn);
}

/* The last answer is out: shut the write side and drop what still comes. */
static void
s_conn_linger (rt_http_conn_t *conn)
{
    if (conn->eof || conn->worker->stopping) {
        s_conn_close (conn);
        return;
    }
    conn->state = S_LINGER;
    shutdown (bufferevent_getfd (conn->bev), SHUT_WR);
    s_timer_arm (conn, S_LINGER_MS, S_T_LINGER);
    s_conn_process (conn); /* drops what is already there */
}

static void
s_date (rt_http_worker_t *w)
{
    time_t now = time (NULL);
    struct tm tm;
    if (now == w->date_second)
        return;
    w->date_second = now;
    gmtime_r (&now, &tm);
    strftime (w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Writes a response's status line and headers to the request's
 * connection and counts the response. A stream (`stream`) has no
 * Content-Length: its body is chunked on HTTP/1.1, delimited by the close
 * on HTTP/1.0. */
static void
s_write_head (rt_http_request_t *req, int status, const char *content_type, size_t len, bool stream)
{
    rt_http_conn_t *conn = req->conn;
    rt_http_worker_t *w = req->worker;
    rt_http_server_t *srv = w->server;
    struct evbuffer *out = bufferevent_get_output (conn->bev);
    bool no_length = status == 204 || status == 304;
    bool http10 = req->head_parsed && req->h.minor == 0;
    char head[512];
    int n;

    if (!req->keep_alive || w->stopping || atomic_load (&srv->stopping) || (stream && http10))
        conn->close_after = true;
    if (content_type && strpbrk (content_type, "\r\n"))
        content_type = NULL; /* never split a response */
    s_date (w);
    n = snprintf (head, sizeof head, "HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s", status,
                  rt_http_status_text (status), w->date, content_type ? "Content-Type: " : "",
                  content_type ? content_type : "", content_type ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head)
        n = snprintf (head, sizeof head, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
                      rt_http_status_text (status), w->date);
    if (stream && !http10)
        n += snprintf (head + n, sizeof head - (size_t)n, "Transfer-Encoding: chunked\r\n");
    else if (!stream && !no_length)
        n += snprintf (head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", len);
    if (conn->close_after)
        n += snprintf (head + n, sizeof head - (size_t)n, "Connection: close\r\n");
    else if (http10)
        n += snprintf (head + n, sizeof head - (size_t)n, "Connection: keep-alive\r\n");
    evbuffer_add (out, head, (size_t)n);
    if (req->out_headers.len)
        evbuffer_add (out, req->out_headers.data, req->out_headers.len);
    evbuffer_add (out, "\r\n", 2);
    rt_http_routes_count (&srv->routes, req->route, status,
                          (double)(rt_clock_elapsed_us () - req->arrival_us) / 1e6);
}

/* Writes a response to the request's connection and counts it. */
static void
s_write_response (rt_http_request_t *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    bool no_body = status == 204 || status == 304 || req->head_only;
    s_write_head (req, status, content_type, len, false);
    if (!no_body && len)
        evbuffer_add (bufferevent_get_output (req->conn->bev), body, len);
}

/* After an answer: the next request, or the close. */
static void
s_conn_after_response (rt_http_conn_t *conn)
{
    conn->served++;
    if (conn->close_after) {
        conn->state = S_FLUSH;
        s_timer_off (conn);
        if (evbuffer_get_length (bufferevent_get_output (conn->bev)) == 0)
            s_conn_linger (conn);
        return;
    }
    conn->state = S_HEAD;
    s_timer_arm (conn, conn->worker->server->config.idle_timeout_ms, S_T_IDLE);
    if (evbuffer_get_length (bufferevent_get_output (conn->bev)) >= S_OUT_HIGH)
        conn->wait_drain = true;
    else if (!conn->busy)
        /* A deferred answer: take up pipelined bytes from the loop, not
         * from the stack of whoever answered. */
        bufferevent_trigger (conn->bev, EV_READ,
                             BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The request's answer is complete: it leaves the worker's deferred list
 * and is freed, and its connection moves on. */
static void
s_request_finish (rt_http_request_t *req)
{
    rt_http_worker_t *w = req->worker;
    rt_http_conn_t *conn = req->conn;
    if (req->deferred) {
        if (req->prev)
            req->prev->next = req->next;
        else
            w->deferred = req->next;
        if (req->next)
            req->next->prev = req->prev;
        w->ndeferred--;
    }
    rt_http_request_free (req);
    if (conn) {
        conn->req = NULL;
        s_conn_after_response (conn);
    }
    rt_http_worker_check_done (w);
}

int
rt_http_request_respond (rt_http_request_t *req, int status, const char *content_type,
                         const void *body, size_t len)
{
    if (req->answered || req->streaming)
        return -1;
    req->answered = true;
    /* Kept for a retry even when the client is gone: the work is done. */
    rt_http_api_answered (req, status, content_type, body, len);
    if (req->conn)
        s_write_response (req, status, content_type, body, len);
    s_request_finish (req);
    return 0;
}

/* --- streams --- */

int
rt_http_request_stream_begin (rt_http_request_t *req, int status, const char *content_type)
{
    if (req->answered || req->streaming)
        return -1;
    /* A stream is no answer to store: a key it reserved is released. */
    rt_http_api_abandon (req);
    if (!req->conn || req->head_only) {
        /* Nobody to stream to, or HEAD: the head alone, and done. */
        req->answered = true;
        if (req->conn)
            s_write_head (req, status, content_type, 0, true);
        s_request_finish (req);
        return 1;
    }
    req->streaming = true;
    req->chunked_out = req->h.minor != 0;
    if (!req->deferred)
        rt_http_defer (req);
    s_write_head (req, status, content_type, 0, true);
    return 0;
}

int
rt_http_request_stream_write (rt_http_request_t *req, const void *data, size_t len)
{
    struct evbuffer *out;
    if (!req->streaming || req->answered || !req->conn)
        return -1;
    if (len == 0)
        return 0; /* an empty chunk would end the body */
    out = bufferevent_get_output (req->conn->bev);
    if (req->chunked_out && evbuffer_add_printf (out, "%zx\r\n", len) < 0)
        return -1;
    if (evbuffer_add (out, data, len) != 0 ||
        (req->chunked_out && evbuffer_add (out, "\r\n", 2) != 0))
        return -1;
    return 0;
}

size_t
rt_http_request_stream_pending (const rt_http_request_t *req)
{
    if (!req->conn)
        return 0;
    return evbuffer_get_length (bufferevent_get_output (req->conn->bev));
}

int
rt_http_request_stream_end (rt_http_request_t *req)
{
    if (!req->streaming || req->answered)
        return -1;
    req->answered = true;
    if (req->conn && req->chunked_out)
        evbuffer_add (bufferevent_get_output (req->conn->bev), "0\r\n\r\n", 5);
    s_request_finish (req);
    return 0;
}

/* At a stop, a stream's body is ended by the server (the last chunk, so
 * the client sees a whole response, then the close) and its handler is
 * told the client is gone; the request lives until the handler ends it. */
static void
s_stream_cut (rt_http_conn_t *conn)
{
    rt_http_request_t *req = conn->req;
    struct evbuffer *out = bufferevent_get_output (conn->bev);
    if (req->chunked_out)
        evbuffer_add (out, "0\r\n\r\n", 5);
    conn->req = NULL;
    conn->close_after = true;
    conn->state = S_FLUSH;
    s_timer_off (conn);
    s_request_detach (req); /* on_gone may end it, and so free it */
    if (evbuffer_get_length (out) == 0)
        s_conn_linger (conn);
}

void
rt_http_request_refuse (rt_http_request_t *req, rt_http_refusal_t refusal, const char *detail)
{
    rt_http_server_t *srv = req->worker->server;
    const rt_http_refusal_info_t *info = rt_http_refusal_info (refusal);
    rt_http_refusal_count (srv, refusal, req->head_parsed ? req : NULL, req->peer, detail);
    if (info->closes && req->conn)
        req->conn->close_after = true;
    if (refusal == RT_HTTP_REFUSAL_METHOD_NOT_ALLOWED && req->allow[0])
        rt_http_header_add (req, "Allow", req->allow);
    rt_http_problem (req, info->status, info->type, detail ? detail : info->detail);
}

/* A refusal on a connection, with or without a request under way. */
static void
s_refuse (rt_http_conn_t *conn, rt_http_refusal_t refusal, const char *detail)
{
    if (!conn->req) {
        conn->req = s_request_new (conn);
        if (!conn->req) {
            s_conn_close (conn);
            return;
        }
    }
    s_timer_off (conn);
    rt_http_request_refuse (conn->req, refusal, detail);
}

/* Hands the complete request to its handler. */
static void
s_dispatch (rt_http_conn_t *conn)
{
    rt_http_request_t *req = conn->req;
    conn->state = S_HANDLE;
    s_timer_off (conn);
    rt_http_api_dispatch (req);
    /* Answered, the request is gone and conn->req is NULL (nothing else
     * can start a request on this connection meanwhile). */
    if (conn->req && !conn->req->deferred) {
        rt_log (RT_LOG_ERROR, "HTTP handler returned without answering",
                rt_log_str ("server", conn->worker->server->name),
                rt_log_str ("route", rt_http_route_pattern (req)));
        rt_http_request_refuse (conn->req, RT_HTTP_REFUSAL_HANDLER, NULL);
    }
}

/* Makes room for n more bytes in the head buffer. */
static int
s_head_reserve (rt_http_request_t *req, size_t n, size_t cap_max)
{
    size_t want = req->head_len + n;
    if (want <= req->head_cap)
        return 0;
    size_t cap = req->head_cap ? req->head_cap : S_HEAD_INITIAL;
    while (cap < want)
        cap *= 2;
    if (cap > cap_max)
        cap = cap_max;
    char *grown = realloc (req->head, cap);
    if (!grown)
        return -1;
    req->head = grown;
    req->head_cap = cap;
    return 0;
}

/* The head is complete: parse, route, decide about the body. */
static void
s_head_complete (rt_http_conn_t *conn)
{
    rt_http_request_t *req = conn->req;
    rt_http_server_t *srv = conn->worker->server;
    const char *detail = NULL;
    size_t nfields = req->scan.lines > 0 ? req->scan.lines - 1 : 0;
    rt_http_refusal_t r;

    req->fields = calloc (nfields ? nfields : 1, sizeof *req->fields);
    if (!req->fields) {
        s_refuse (conn, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
        return;
    }
    r = rt_http_parse_head (req->head, req->head_len, req->scan.skip, &req->h, req->fields, nfields,
                            &detail);
    if (req->h.method && req->h.target) {
        req->path = malloc (req->h.path_len + 1 + req->h.query_len + 1);
        if (!req->path) {
            s_refuse (conn, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
            return;
        }
        memcpy (req->path, req->h.path, req->h.path_len);
        req->path[req->h.path_len] = '\0';
        req->query = req->path + req->h.path_len + 1;
        memcpy (req->query, req->h.query, req->h.query_len);
        req->query[req->h.query_len] = '\0';
        req->head_parsed = true;
        req->head_only = strcmp (req->h.method, "HEAD") == 0;
    }
    if (r != RT_HTTP_REFUSAL_NONE) {
        s_refuse (conn, r, detail);
        return;
    }
    req->keep_alive = req->h.keep_alive;
    bool has_body = req->h.chunked || (req->h.has_length && req->h.length > 0);

    /* A preflight and a refusal are answered before the body is read,
     * which then ends the connection. */
    rt_http_route_t *preflight = rt_http_api_preflight_route (req);
    if (preflight) {
        if (has_body)
            conn->close_after = true;
        s_timer_off (conn);
        rt_http_api_preflight (req, preflight);
        return;
    }
    detail = NULL;
    r = rt_http_routes_match (&srv->routes, req);
    if (r == RT_HTTP_REFUSAL_NONE)
        r = rt_http_api_admit (req, &detail);
    if (r != RT_HTTP_REFUSAL_NONE) {
        if (has_body)
            conn->close_after = true;
        s_refuse (conn, r, detail);
        return;
    }
    if (req->h.has_length && req->h.length > srv->config.max_body) {
        s_refuse (conn, RT_HTTP_REFUSAL_TOO_LARGE, NULL);
        return;
    }
    if (!has_body) {
        s_dispatch (conn);
        return;
    }
    if (req->h.expect_continue && req->h.minor == 1)
        bufferevent_write (conn->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    req->body_left = req->h.chunked ? 0 : req->h.length;
    conn->state = S_BODY;
    s_timer_arm (conn, srv->config.body_timeout_ms, S_T_BODY);
}

/* One step in HEAD; true when the state moved on. */
static bool
s_step_head (rt_http_conn_t *conn)
{
    rt_http_server_t *srv = conn->worker->server;
    struct evbuffer *in = bufferevent_get_input (conn->bev);
    rt_http_request_t *req = conn->req;
    size_t head_len = 0;
    rt_http_refusal_t refusal = RT_HTTP_REFUSAL_NONE;
    const char *detail = NULL;
    int rc = 0;

    if (conn->wait_drain)
        return false;
    if (!req) {
        if (evbuffer_get_length (in) == 0)
            return false;
        req = s_request_new (conn);
        if (!req) {
            s_conn_close (conn);
            return false;
        }
        conn->req = req;
        if (conn->served > 0)
            s_timer_arm (conn, srv->config.header_timeout_ms, S_T_HEADER);
    }
    while (rc == 0) {
        size_t avail = evbuffer_get_length (in);
        size_t room = srv->config.max_header_bytes - req->head_len;
        size_t n = avail < room ? avail : room;
        if (n > S_HEAD_STEP)
            n = S_HEAD_STEP;
        if (n == 0)
            break;
        if (s_head_reserve (req, n, srv->config.max_header_bytes) != 0) {
            s_refuse (conn, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
            return true;
        }
        evbuffer_remove (in, req->head + req->head_len, n);
        req->head_len += n;
        rc = rt_http_scan_head (&req->scan, req->head, req->head_len, srv->config.max_headers,
                                &head_len, &refusal, &detail);
    }
    if (rc < 0) {
        s_refuse (conn, refusal, detail);
        return true;
    }
    if (rc == 0) {
        if (req->head_len < srv->config.max_header_bytes)
            return false;
        s_refuse (conn, RT_HTTP_REFUSAL_HEADERS_TOO_LARGE, NULL);
        return true;
    }
    if (head_len < req->head_len) {
        /* Bytes past the head belong to the body or the next request. */
        evbuffer_prepend (in, req->head + head_len, req->head_len - head_len);
        req->head_len = head_len;
    }
    s_head_complete (conn);
    return true;
}

/* One step in BODY; true when the state moved on. */
static bool
s_step_body (rt_http_conn_t *conn)
{
    rt_http_server_t *srv = conn->worker->server;
    struct evbuffer *in = bufferevent_get_input (conn->bev);
    rt_http_request_t *req = conn->req;
    rt_buf_t *body = &req->body;

    if (!req->h.chunked) {
        size_t avail = evbuffer_get_length (in);
        size_t n = (uint64_t)avail < req->body_left ? avail : (size_t)req->body_left;
        if (n > 0) {
            /* Known length: allocate it at once when small, else grow with
             * what arrives, so a slow client holds only what it sent. */
            size_t length = (size_t)req->h.length;
            size_t want = length < S_BODY_PREALLOC ? length - body->len : n;
            if (!rt_buf_reserve_within (body, want, length)) {
                s_refuse (conn, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
                return true;
            }
            evbuffer_remove (in, body->data + body->len, n);
            body->len += n;
            body->data[body->len] = '\0';
            req->body_left -= n;
        }
        if (req->body_left > 0)
            return false;
    } else {
        bool done = false;
        while (!done && evbuffer_get_length (in) > 0) {
            struct evbuffer_iovec v[4];
            int nv = evbuffer_peek (in, -1, NULL, v, 4);
            if (nv > 4)
                nv = 4; /* the count is of the extents it would need */
            size_t used = 0;
            rt_http_refusal_t refusal = RT_HTTP_REFUSAL_NONE;
            const char *detail = NULL;
            for (int i = 0; i < nv && !done && refusal == RT_HTTP_REFUSAL_NONE; i++) {
                used += rt_http_chunked_feed (&req->chunked, v[i].iov_base, v[i].iov_len, body,
                                              srv->config.max_body, srv->config.max_header_bytes,
                                              &done, &refusal, &detail);
            }
            evbuffer_drain (in, used);
            if (refusal != RT_HTTP_REFUSAL_NONE) {
                s_refuse (conn, refusal, detail);
                return true;
            }
        }
        if (!done)
            return false;
    }
    s_dispatch (conn);
    return true;
}

/* Drops input while closing; gives up on a client that sends too much. */
static void
s_drop_input (rt_http_conn_t *conn)
{
    struct evbuffer *in = bufferevent_get_input (conn->bev);
    size_t n = evbuffer_get_length (in);
    evbuffer_drain (in, n);
    conn->dropped += n;
    if (conn->state == S_LINGER && conn->dropped > S_LINGER_BYTES)
        s_conn_close (conn);
}

/* Runs the connection's steps until it waits for something. */
static void
s_conn_process (rt_http_conn_t *conn)
{
    bool progress = true;
    if (conn->busy)
        return;
    conn->busy = true;
    while (progress && !conn->dead) {
        switch (conn->state) {
        case S_HEAD:
            progress = s_step_head (conn);
            break;
        case S_BODY:
            progress = s_step_body (conn);
            break;
        case S_FLUSH:
        case S_LINGER:
            s_drop_input (conn);
            progress = false;
            break;
        case S_HANDLE:
            progress = false;
            break;
        }
    }
    conn->busy = false;
    if (conn->dead)
        s_conn_free (conn);
}

static void
s_on_read (struct bufferevent *bev, void *arg)
{
    (void)bev;
    s_conn_process (arg);
}

static void
s_on_write (struct bufferevent *bev, void *arg)
{
    rt_http_conn_t *conn = arg;
    (void)bev;
    if (conn->state == S_FLUSH)
        s_conn_linger (conn);
    else if (conn->wait_drain) {
        conn->wait_drain = false;
        s_conn_process (conn);
    }
}

static void
s_on_event (struct bufferevent *bev, short what, void *arg)
{
    rt_http_conn_t *conn = arg;
    if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
        conn->eof = true;
        /* A response still being written is finished first. */
        if (conn->state != S_HANDLE && evbuffer_get_length (bufferevent_get_output (bev)) > 0) {
            if (conn->state != S_FLUSH) {
                rt_http_request_t *req = conn->req;
                conn->req = NULL;
                rt_http_request_free (req); /* a request half read: nothing to answer */
                conn->state = S_FLUSH;
                s_timer_off (conn);
            }
            return;
        }
    }
    s_conn_close (conn);
}

static void
s_on_timer (evutil_socket_t fd, short what, void *arg)
{
    rt_http_conn_t *conn = arg;
    (void)fd;
    (void)what;
    switch (conn->timer_kind) {
    case S_T_HEADER:
        if (conn->state == S_HEAD)
            s_refuse (conn, RT_HTTP_REFUSAL_HEADER_TIMEOUT, NULL);
        break;
    case S_T_BODY:
        if (conn->state == S_BODY)
            s_refuse (conn, RT_HTTP_REFUSAL_BODY_TIMEOUT, NULL);
        break;
    case S_T_IDLE:
        if (conn->state == S_HEAD && !conn->req)
            s_conn_close (conn);
        break;
    case S_T_LINGER:
        s_conn_close (conn);
        break;
    }
}

/* At the total cap: the canned 503 on the raw socket, without allocating. */
static void
s_refuse_raw (rt_http_server_t *srv, evutil_socket_t fd)
{
    char sink[4096];
    ssize_t rc = send (fd, srv->canned_503, srv->canned_503_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)rc;
    shutdown (fd, SHUT_WR);
    /* Read what already came, so the close sends FIN rather than a reset. */
    for (int i = 0; i < 4; i++) {
        if (recv (fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
    }
    close (fd);
}

void
rt_http_conn_accept (rt_http_worker_t *w, int fd, const struct sockaddr *sa)
{
    rt_http_server_t *srv = w->server;
    rt_http_conn_t *conn;
    rt_http_refusal_t verdict;
    int one = 1;

    conn = calloc (1, sizeof *conn);
    if (!conn) {
        close (fd);
        return;
    }
    conn->worker = w;
    s_peer_of (sa, conn);
    verdict = rt_http_caps_take (srv, conn->addr, conn->addrlen, &conn->by_address);
    if (verdict == RT_HTTP_REFUSAL_TOO_MANY_CONNECTIONS) {
        rt_http_refusal_count (srv, verdict, NULL, conn->peer, NULL);
        free (conn);
        s_refuse_raw (srv, fd);
        return;
    }
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->bev = bufferevent_socket_new (w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    conn->timer = evtimer_new (w->base, s_on_timer, conn);
    /* Linked before anything can fail, so s_conn_free undoes it all. */
    conn->next = w->conns;
    if (w->conns)
        w->conns->prev = conn;
    w->conns = conn;
    w->nconns++;
    if (srv->connections)
        rt_gauge_add (srv->connections, 1);
    if (!conn->bev || !conn->timer) {
        if (!conn->bev)
            close (fd);
        s_conn_free (conn);
        return;
    }
    struct timeval write_tv = {srv->config.idle_timeout_ms / 1000,
                               (srv->config.idle_timeout_ms % 1000) * 1000};
    size_t high = srv->config.max_header_bytes > 16384 ? srv->config.max_header_bytes : 16384;
    bufferevent_setcb (conn->bev, s_on_read, s_on_write, s_on_event, conn);
    bufferevent_setwatermark (conn->bev, EV_READ, 0, high);
    bufferevent_set_timeouts (conn->bev, NULL, &write_tv);
    bufferevent_enable (conn->bev, EV_READ | EV_WRITE);
    conn->state = S_HEAD;
    s_timer_arm (conn, srv->config.header_timeout_ms, S_T_HEADER);
    if (verdict == RT_HTTP_REFUSAL_TOO_MANY_PER_ADDRESS) {
        conn->busy = true;
        s_refuse (conn, verdict, NULL);
        conn->busy = false;
        if (conn->dead)
            s_conn_free (conn);
    }
}

void
rt_http_conn_stop_all (rt_http_worker_t *w)
{
    rt_http_conn_t *next;
    for (rt_http_conn_t *c = w->conns; c; c = next) {
        next = c->next;
        if (c->state == S_HANDLE && c->req && c->req->streaming) {
            s_stream_cut (c);
            continue;
        }
        if (c->state == S_HANDLE)
            continue; /* its answer is awaited */
        if (evbuffer_get_length (bufferevent_get_output (c->bev)) > 0) {
            /* An answer is being written: finish it, then close. */
            c->close_after = true;
            if (c->state != S_FLUSH) {
                rt_http_request_free (c->req);
                c->req = NULL;
                c->state = S_FLUSH;
                s_timer_off (c);
            }
            continue;
        }
        s_conn_free (c);
    }
}

void
rt_http_conn_free_all (rt_http_worker_t *w)
{
    while (w->conns)
        s_conn_free (w->conns);
}
