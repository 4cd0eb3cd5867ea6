/*
 * rt_http_server: retain's one HTTP/1.1 server, for every API, the
 * webhooks and the admin port.
 *
 * N worker threads, each with its own libevent loop, accept on one
 * listening socket; a connection stays on the worker that accepted it. A
 * hand-written strict parser (rt_http_parse.h) reads one request at a time
 * per connection: keep-alive and pipelined requests are answered in
 * order, HTTP/1.0 closes unless it asked for keep-alive, `Expect:
 * 100-continue` is answered with `100 Continue` before the body is read,
 * bodies come with Content-Length or chunked, HEAD is answered without a
 * body; a handler may stream its answer instead (chunked, see "streams"
 * below).
 *
 * The door holds against hostile clients: the headers must be complete
 * within header_timeout_ms and the body within body_timeout_ms, both
 * counted from their start, not per read, so a trickle gains nothing; a
 * connection holds at most twice max_header_bytes before its headers end
 * (the head copied so far and the socket's buffer, which stops filling at
 * a watermark), and at most max_body of body; connections are capped in
 * total and per client IP address. Every refusal is answered by the server
 * itself as RFC 9457 problem details (application/problem+json, type
 * "https://retain.dev/problems/<suffix>"), counted in
 * retain_http_refused_total{server,reason}, logged (one line with the
 * reason and the peer, at most 20 lines a second, the rest counted in the
 * next line), and on a framing error the connection is closed after the
 * answer. The refusals: 400 malformed request line or header field (bad
 * token, space before the colon, obs-fold, bare CR or LF, NUL or another
 * control byte in a value, missing or repeated Host in HTTP/1.1), invalid
 * or conflicting Content-Length, Content-Length with Transfer-Encoding,
 * malformed chunks; 404 no route; 405 no route for the method (with Allow);
 * 408 header or body deadline; 413 body over max_body; 417 an Expect other
 * than 100-continue; 429 too many connections from one address; 431 headers
 * over max_header_bytes or max_headers; 501 a transfer coding other than
 * chunked; 503 too many connections; 505 an HTTP version other than 1.x.
 * Bytes 0x80-0xFF in header values are obs-text and reach handlers as they
 * are (a handler that stores them makes them valid UTF-8 itself).
 *
 * Threads: handlers run on the worker that read the request, one request
 * at a time per worker; they must not block for long (a handler that waits
 * for something defers its reply, below). Every function taking a request
 * must be called on that request's worker thread, except rt_http_post and
 * rt_http_request_worker; rt_http_worker_post works from any thread.
 *
 * Deferred replies: a handler that cannot answer at once calls
 * rt_http_defer and returns; it owns the request until it calls a reply
 * function, on the request's worker thread: from another thread it gets
 * there with rt_http_post. The connection reads nothing more meanwhile
 * (pipelined requests wait their turn). If the client disconnects first
 * (or shuts its sending side), the request stays valid until the reply
 * (which is then discarded): rt_http_request_gone says so, and an
 * rt_http_on_gone callback is told at once.
 *
 * Metrics (when a registry is given), labelled server="<name>":
 * retain_http_requests_total{route,status} for every response written
 * (route is the matched pattern, "none" when no route matched),
 * retain_http_request_duration_seconds{route} from the request's first byte
 * to its response, retain_http_refused_total{reason}, and the gauge
 * retain_http_connections.
 *
 * API layers attach to a route through the rt_http_route_t handle that
 * rt_http_route returns (authentication and CORS also to every route at
 * once, as the server's default), and run in this order, all on the
 * worker thread:
 *
 *   1. CORS (rt_http_route_cors): a preflight (OPTIONS with Origin and
 *      Access-Control-Request-Method, on a path whose route for that
 *      method has CORS and no OPTIONS route of its own) is answered 204 by
 *      the server, Access-Control-Allow-Methods listing the path's
 *      methods, without reaching a handler; every other answer of the
 *      route, refusals included, carries `Vary: Origin` and, for an
 *      allowed Origin, Access-Control-Allow-Origin (and -Credentials,
 *      -Expose-Headers as configured). A disallowed origin
 *      gets no CORS headers (its browser then hides the answer), never an
 *      error of its own.
 *   2. Authentication (rt_http_route_auth): once the headers are in and
 *      before the body is read, a synchronous hook decides: allowed, with
 *      a principal (rt_http_principal), or 401 problem details with
 *      `WWW-Authenticate: Bearer`, or 403.
 *   3. Idempotency-Key (rt_http_route_idempotent, after
 *      draft-ietf-httpapi-idempotency-key-header and Stripe's practice):
 *      a request that carries the header (the key bare, as Stripe's
 *      clients send it, or the draft's quoted string) is fingerprinted
 *      (SHA-256 of its method, path with query, and body) and its key
 *      scoped to the server's name and the principal, so two clients'
 *      keys never meet.
 *      The first time, the key is reserved and the handler runs; its
 *      answer (status, Content-Type, the headers it added, body), given at
 *      once or deferred, is stored, then sent. The same key and
 *      fingerprint again: the stored answer, with `Idempotent-Replayed:
 *      true`, and the handler does not run. Refused as problem details:
 *      the key with another fingerprint 422 ("idempotency-key-reused");
 *      while its first request runs 409 ("idempotency-key-in-progress");
 *      none on a route that requires one 400 ("idempotency-key-missing");
 *      over 255 bytes or not visible ASCII 400 ("idempotency-key-invalid");
 *      the store failing 503 ("idempotency-store"). A 5xx answer is not
 *      stored (the key is released, so a retry runs again); a reservation
 *      whose process died is taken over after the store's lock time. GET,
 *      HEAD and OPTIONS ignore the header. The stores: rt_http_idem.h.
 *
 * Each layer's refusals are refusals like the others (counted by reason,
 * logged, told to the refused callback) and responses of their route in
 * retain_http_requests_total; a replay is also counted in
 * retain_http_idempotent_replays_total{server,route}.
 */
#ifndef RT_HTTP_SERVER_H
#define RT_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_http_idem.h"
#include "rt_metrics.h"

struct event_base;

typedef struct rt_http_server_t rt_http_server_t;
typedef struct rt_http_request_t rt_http_request_t;
typedef struct rt_http_route_t rt_http_route_t;
typedef struct rt_http_worker_t rt_http_worker_t;

/* Handles a request. Before returning it either answers (rt_http_reply,
 * rt_http_reply_json, rt_http_problem) or calls rt_http_defer; returning
 * with neither is a bug, answered 500 and logged. */
typedef void (*rt_http_handler_fn) (rt_http_request_t *req, void *arg);

/* Told of each refusal the server answers itself (`reason` is the metric
 * label, e.g. "too_large"), on the worker thread (so on several threads at
 * once when there are several workers), before the answer goes out. `req` is NULL when the refusal
 * came before a valid request line (or at accept); once the headers are complete the route is
 * matched, so rt_http_param works on it (too_large, method_not_allowed, ...). */
typedef void (*rt_http_refused_fn) (void *arg, const rt_http_request_t *req, int status,
                                    const char *reason);

/* Runs on the request's worker thread (rt_http_post, rt_http_on_gone). */
typedef void (*rt_http_request_fn) (rt_http_request_t *req, void *arg);

/* Runs on a worker thread (rt_http_worker_post). */
typedef void (*rt_http_task_fn) (void *arg);

/* Settings; a field left 0 (or NULL) takes the default in brackets. */
typedef struct {
    const char *address;             /* "host:port", "[v6]:port", port 0 = any ["127.0.0.1:8780"] */
    const char *name;                /* server="<name>" in metrics and logs ["http"] */
    int threads;                     /* worker threads [1] */
    size_t max_body;                 /* bytes of body; more: 413 [1 MiB] */
    size_t max_header_bytes;         /* request line and headers; more: 431 [64 KiB] */
    size_t max_headers;              /* header fields; more: 431 [100] */
    int header_timeout_ms;           /* accept (or a keep-alive request's first byte) to the
                                        end of the headers; then 408 and close [10 s] */
    int body_timeout_ms;             /* end of the headers to the end of the body; then 408
                                        and close [30 s] */
    int idle_timeout_ms;             /* keep-alive wait for the next request's first byte, and
                                        longest stall of a response's write; then a silent
                                        close [60 s] */
    int max_connections;             /* open connections in all; more: 503 and close [10000] */
    int max_connections_per_address; /* open connections per client IP; more: 429 and close
                                        [256] */
    int stop_timeout_ms;             /* how long destroy waits for deferred replies [10 s] */
    rt_metrics_t *metrics;           /* lent, outlives the server; NULL: no metrics */
    rt_http_refused_fn refused;      /* told of each refusal; may be NULL */
    void *refused_arg;               /* passed to refused */
} rt_http_server_config_t;

/* Binds the address (so the port is known, and a taken port is reported
 * here) and prepares the workers without starting them. The config's
 * strings are copied. NULL with err filled on failure. */
rt_http_server_t *rt_http_server_new (const rt_http_server_config_t *config, char *err,
                                      size_t errlen);

/* Registers a route; before rt_http_server_start only. `method` is a
 * method name ("POST"), or NULL for any method. `pattern` is a path of
 * literal segments and {name} segments, e.g. "/hooks/{channel}/{inbox}": a
 * {name} matches one non-empty segment (percent-decoded, readable with
 * rt_http_param), the rest match exactly; NULL, or the pattern
 * slash-asterisk, is a catch-all, tried after every other route. Among routes matching a path, one
 * with more literal segments wins, then the first registered. HEAD uses the GET route when it has
 * none of its own. Returns the route (owned by the server), or NULL on a malformed pattern or out
 * of memory. */
rt_http_route_t *rt_http_route (rt_http_server_t *self, const char *method, const char *pattern,
                                rt_http_handler_fn handler, void *arg);

/* --- API layers (see the file head); set before rt_http_server_start --- */

/* An auth hook's decision. */
typedef enum {
    RT_HTTP_AUTH_ALLOW = 0,    /* go on, as the principal it wrote */
    RT_HTTP_AUTH_UNAUTHORIZED, /* 401: no credentials, or none it knows */
    RT_HTTP_AUTH_FORBIDDEN     /* 403: known credentials, not allowed this request */
} rt_http_auth_t;

/* Bytes of a principal, its NUL included. */
#define RT_HTTP_PRINCIPAL_MAX 256

/* Decides from req's headers (its body is not read yet) whether it goes
 * on; on ALLOW writes who asks into principal (NUL-terminated, at most
 * `size` bytes with the NUL; "" is a valid principal). Runs on the worker
 * thread for every request of its routes, so it must be quick: a hashed
 * lookup, not a network call. */
typedef rt_http_auth_t (*rt_http_auth_fn) (const rt_http_request_t *req, void *arg, char *principal,
                                           size_t size);

/* The hook of every route that sets none of its own; NULL: none. */
void rt_http_server_auth (rt_http_server_t *self, rt_http_auth_fn fn, void *arg);

/* The route's hook, in place of the server's; NULL makes the route public. */
void rt_http_route_auth (rt_http_route_t *route, rt_http_auth_fn fn, void *arg);

/* The token of `Authorization: Bearer <token>` (the scheme in any case,
 * the token RFC 6750's b64token), lent; NULL when there is no such
 * header, more than one, or another scheme or a malformed token. */
const char *rt_http_bearer (const rt_http_request_t *req);

/* The principal the route's auth hook wrote, lent; NULL when the route
 * has no hook. */
const char *rt_http_principal (const rt_http_request_t *req);

/* Cross-origin access for browsers' pages. */
typedef struct {
    const char *const *origins; /* the allowed origins ("https://shop.example"), NULL-
                                   terminated and compared exactly; {"*", NULL}: any
                                   origin (answered "*"), not with credentials */
    const char *const *headers; /* request headers a page may send, NULL-terminated;
                                   NULL: Authorization, Content-Type, Idempotency-Key */
    const char *const *expose;  /* response headers a page may read; NULL: none */
    int max_age_s;              /* how long a browser keeps a preflight's answer [600] */
    bool credentials;           /* pages may send cookies and credentials */
} rt_http_cors_t;

/* The CORS of every route that sets none of its own (copied); NULL: none.
 * 0, or -1 on "*" with credentials, an empty origin list or out of memory. */
int rt_http_server_cors (rt_http_server_t *self, const rt_http_cors_t *cors);

/* The route's CORS, in place of the server's (copied); NULL: none on this
 * route. 0 or -1, as rt_http_server_cors. */
int rt_http_route_cors (rt_http_route_t *route, const rt_http_cors_t *cors);

/* Makes the route honour Idempotency-Key with `store` (lent; it outlives
 * the server); `required`: a request without the key is refused 400.
 * 0, or -1 when out of memory. */
int rt_http_route_idempotent (rt_http_route_t *route, rt_http_idem_store_t *store, bool required);

/* Starts the workers. 0, or -1 with err filled. */
int rt_http_server_start (rt_http_server_t *self, char *err, size_t errlen);

/* The port bound (useful with port 0). */
int rt_http_server_port (const rt_http_server_t *self);

/* Stops accepting, closes idle and half-read connections, waits up to
 * stop_timeout_ms for deferred requests to be answered (their responses
 * are still written), closes what is left and frees everything. Handlers
 * must hold no request once this returns. Safe on NULL; sets *self_p NULL. */
void rt_http_server_destroy (rt_http_server_t **self_p);

/* --- the request, as a handler reads it (strings lent, valid until the
 *     request is answered) --- */

const char *rt_http_method (const rt_http_request_t *req);
/* The path as sent, without the query ("/hooks/telegram/shop-bot"). */
const char *rt_http_path (const rt_http_request_t *req);
/* The query without '?', "" when none. */
const char *rt_http_query (const rt_http_request_t *req);
/* The raw request-target ("/hooks/x?a=1"). */
const char *rt_http_target (const rt_http_request_t *req);
/* The pattern of the matched route, NULL when none matched. */
const char *rt_http_route_pattern (const rt_http_request_t *req);
/* The value of the route's {name} segment, NULL when it has none. */
const char *rt_http_param (const rt_http_request_t *req, const char *name);
/* The first value of a header, case-insensitively; NULL when absent. */
const char *rt_http_header (const rt_http_request_t *req, const char *name);
/* The headers in arrival order: false once i is past the last. */
size_t rt_http_header_count (const rt_http_request_t *req);
bool rt_http_header_at (const rt_http_request_t *req, size_t i, const char **name,
                        const char **value);
/* The body, NUL-terminated ("" when none); its length in *len (may be NULL). */
const char *rt_http_body (const rt_http_request_t *req, size_t *len);
/* The client's IP address as text ("127.0.0.1", "::1"). */
const char *rt_http_peer (const rt_http_request_t *req);
/* The worker's loop, for a handler's own timers (events on it run on the
 * request's worker thread). */
struct event_base *rt_http_base (const rt_http_request_t *req);
/* CLOCK_MONOTONIC microseconds when the request's first byte arrived. */
int64_t rt_http_arrival_us (const rt_http_request_t *req);

/* Parses the body as JSON. On failure answers 400 problem details
 * ("bad-json", with the parser's message) itself, counts it as a refusal
 * and returns NULL: the handler then returns. The result is owned. */
json_t *rt_http_body_json (rt_http_request_t *req);

/* --- the answer --- */

/* Adds a response header; before the reply. Names the server writes itself
 * (Content-Length, Transfer-Encoding, Connection, Date) are refused, so
 * are a name that is not a token and a value holding CR, LF or NUL.
 * 0, or -1. */
int rt_http_header_add (rt_http_request_t *req, const char *name, const char *value);

/* Answers status (200-599) with body[0..len) (copied) of content_type (NULL:
 * no Content-Type). Every response carries Content-Length (but 204 and
 * 304, which must not), and `Connection: close` when the server closes the
 * connection after it. The body is left out for HEAD. For a request whose
 * client is gone the answer is discarded. After this the request is
 * invalid. 0, or -1 when already answered. */
int rt_http_reply (rt_http_request_t *req, int status, const char *content_type, const void *body,
                   size_t len);

/* Answers with `body` as application/json; steals the reference (NULL
 * answers 500). */
int rt_http_reply_json (rt_http_request_t *req, int status, json_t *body);

/* Answers RFC 9457 problem details: {"type":
 * "https://retain.dev/problems/<type_suffix>", "title": the status's
 * reason phrase, "status": status, "detail": detail (left out when NULL)}. */
int rt_http_problem (rt_http_request_t *req, int status, const char *type_suffix,
                     const char *detail);

/* --- streams ---
 *
 * A response whose body is written as it comes (Server-Sent Events, a long
 * export): rt_http_stream_begin writes the status line and headers without
 * Content-Length (`Transfer-Encoding: chunked` on HTTP/1.1, so the
 * connection is kept alive after the stream's end; on HTTP/1.0 the close
 * ends the body) and defers the request; each rt_http_stream_write is one
 * chunk, handed to the socket as soon as the loop runs (nothing is held
 * back until the end); rt_http_stream_end writes the last chunk and ends
 * the request (invalid after it). Headers the stream needs beyond the
 * server's (Cache-Control: no-cache, X-Accel-Buffering: no for a proxy)
 * are the handler's to add before the begin. The deferred requests' rules
 * hold throughout: calls on the request's worker thread only (another
 * thread gets there with rt_http_post or rt_http_worker_post); a client
 * that disconnects is told through rt_http_on_gone, after which writes
 * fail (-1) and the handler ends the stream to free the request. The
 * header and body deadlines concern reading the request and never cut a
 * stream; a client that reads nothing while output waits is closed after
 * idle_timeout_ms like any stalled write. The server buffers what the
 * client has not read yet without bound: the handler watches
 * rt_http_stream_pending and ends a stream whose client falls too far
 * behind. When the server is destroyed, every stream's body is ended by
 * the server (the last chunk, then the close) and its handler is told
 * through on_gone, so a stop waits for no stream; the handler still ends
 * it. The response is counted in retain_http_requests_total at the begin,
 * with its status. A stream is never stored by the Idempotency-Key layer
 * (a key it reserved is released). */

/* Writes the head of a streamed answer (status 200-599, but not 204 or
 * 304; content_type as rt_http_reply's) and keeps the request. 0: the
 * stream is open. 1: the request is already finished and invalid: it was
 * HEAD (answered with the head alone) or its client is gone. -1: it was
 * already answered or streaming (a bug). */
int rt_http_stream_begin (rt_http_request_t *req, int status, const char *content_type);

/* Queues len bytes (copied) as one chunk of the stream; len 0 writes
 * nothing. 0, or -1 when the client is gone, the request is not streaming,
 * or out of memory. */
int rt_http_stream_write (rt_http_request_t *req, const void *data, size_t len);

/* Bytes of the connection's output not yet taken by the socket (the
 * head, earlier chunks); 0 once the client is gone. */
size_t rt_http_stream_pending (const rt_http_request_t *req);

/* Ends the stream (the last chunk; nothing when the client is gone) and
 * the request, which is invalid after it; the connection then serves the
 * next request. 0, or -1 when the request is not streaming. */
int rt_http_stream_end (rt_http_request_t *req);

/* --- deferred replies --- */

/* Keeps the request after the handler returns; the handler must answer
 * it later, on its worker thread. */
void rt_http_defer (rt_http_request_t *req);

/* Runs fn (req, arg) on the request's worker thread, soon; callable from
 * any thread while the request is unanswered (fn may answer it). 0, or -1
 * when out of memory. */
int rt_http_post (rt_http_request_t *req, rt_http_request_fn fn, void *arg);

/* The worker a request belongs to; the handle stays valid after the
 * request is answered, as long as the server lives. */
rt_http_worker_t *rt_http_request_worker (const rt_http_request_t *req);

/* Runs fn (arg) on worker w's thread, soon; callable from any thread. For
 * work that outlives a request (what a daemon still holds for a request
 * it already answered, say at its own timeout). A task posted once
 * rt_http_server_destroy has begun may not run. 0, or -1 when out of
 * memory. */
int rt_http_worker_post (rt_http_worker_t *w, rt_http_task_fn fn, void *arg);

/* True once the client of a deferred request has disconnected. */
bool rt_http_request_gone (const rt_http_request_t *req);

/* Calls fn (req, arg) on the worker thread when the client of the
 * deferred request disconnects (at most once; not after the answer). */
void rt_http_on_gone (rt_http_request_t *req, rt_http_request_fn fn, void *arg);

#endif
