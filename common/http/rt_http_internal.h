/*
 * rt_http_internal: what the files of rt_http_server share (private to
 * common/http; daemons use rt_http_server.h).
 *
 *   rt_http_server.c   the server's life: listening, workers, their post
 *                      queues, the connection caps, refusal accounting
 *   rt_http_conn.c     a connection's state machine: reading, deadlines,
 *                      dispatch, writing answers and streams, closing
 *   rt_http_request.c  the request as a handler sees it, and the answers
 *   rt_http_route.c    routing and the access metrics by route
 *   rt_http_api.c      the API layers a route can have: authentication,
 *                      CORS, Idempotency-Key replay
 *   rt_http_idem_mem.c the in-memory idempotency store (rt_http_idem.h)
 *   rt_http_parse.c    the parser (rt_http_parse.h)
 *
 * Everything here runs on the worker that owns the object, except where a
 * comment names a lock.
 */
#ifndef RT_HTTP_INTERNAL_H
#define RT_HTTP_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "rt_http_idem.h"
#include "rt_http_parse.h"
#include "rt_http_server.h"

/* A route holds at most this many segments and {params}. */
#define RT_HTTP_MAX_SEGMENTS 16
/* Buckets of the per-address connection counts. */
#define RT_HTTP_ADDR_BUCKETS 1024

typedef struct rt_http_conn_t rt_http_conn_t;

/* A function posted to a worker (rt_http_post). */
typedef struct rt_http_post_t {
    rt_http_request_t *req;      /* its request (rt_http_post), NULL for a task */
    rt_http_request_fn req_fn;   /* what to run with req */
    rt_http_task_fn task_fn;     /* or what to run alone (rt_http_worker_post) */
    void *arg;                   /* passed to either */
    struct rt_http_post_t *next; /* queue order */
} rt_http_post_t;

struct rt_http_worker_t {
    rt_http_server_t *server;        /* the server */
    struct event_base *base;         /* this worker's loop; owned */
    struct evconnlistener *listener; /* accepts on the shared socket; owned */
    struct event *retry_accept;      /* re-enables the listener after EMFILE */
    int wake_fd;                     /* eventfd: posts and the stop wake the loop */
    struct event *wake_ev;           /* watches wake_fd */
    struct event *stop_timer;        /* the bounded wait of a stop */
    pthread_t thread;                /* runs base */
    bool started;                    /* thread must be joined */
    pthread_mutex_t lock;            /* guards posts (any thread) */
    rt_http_post_t *posts;           /* functions to run on this loop */
    rt_http_post_t *posts_tail;      /* where the next is appended */
    rt_http_conn_t *conns;           /* open connections (rt_http_conn.c) */
    int nconns;                      /* their number */
    rt_http_request_t *deferred;     /* deferred requests not answered yet */
    int ndeferred;                   /* their number */
    bool stopping;                   /* this worker has begun to stop */
    time_t date_second;              /* the second `date` shows */
    char date[40];                   /* the Date header's value */
};

/* A client address and the connections it holds. */
typedef struct rt_http_addr_t {
    unsigned char key[16];       /* address bytes */
    size_t keylen;               /* 4 or 16 */
    int count;                   /* open connections counted against it */
    struct rt_http_addr_t *next; /* bucket chain */
} rt_http_addr_t;

/* A {name} of the matched route and its decoded value. */
typedef struct {
    const char *name;  /* the pattern's name, lent by the route */
    const char *value; /* decoded, in the request's param_buf */
} rt_http_param_t;

struct rt_http_request_t {
    rt_http_worker_t *worker; /* the loop it belongs to */
    rt_http_conn_t *conn;     /* its connection; NULL once the client is gone */
    rt_http_route_t *route;   /* the matched route, NULL before or without one */
    char *head;               /* request line and headers as received; parsed in place */
    size_t head_len;          /* bytes in head */
    size_t head_cap;          /* bytes allocated */
    rt_http_scan_t scan;      /* the search for the head's end */
    rt_http_head_t h;         /* the parsed head */
    rt_http_field_t *fields;  /* h.fields' storage */
    bool head_parsed;         /* the request line was valid: method and path are set */
    char *path;               /* the path, NUL-terminated; query follows in the block */
    char *query;              /* the query, NUL-terminated */
    rt_http_param_t params[RT_HTTP_MAX_SEGMENTS]; /* the route's params */
    size_t nparams;                               /* params used */
    char *param_buf;                              /* their decoded values */
    char allow[128];                              /* the Allow header of a 405 */
    rt_buf_t body;                                /* the body read so far */
    rt_http_chunked_t chunked;                    /* the chunked decoder's state */
    uint64_t body_left;                           /* Content-Length bytes still to read */
    char peer[INET6_ADDRSTRLEN];                  /* the client's address as text */
    int64_t arrival_us;                           /* CLOCK_MONOTONIC at the first byte */
    bool head_only;                               /* HEAD: the answer has no body */
    bool keep_alive;                              /* the connection may carry another request */
    bool deferred;                                /* the handler kept it (rt_http_defer) */
    bool answered;                                /* a reply was given */
    bool gone;                                    /* the client left while it was deferred */
    bool streaming;                               /* rt_http_stream_begin wrote the head */
    bool chunked_out;                             /* the stream's body is chunked (HTTP/1.1);
                                                     else the close ends it (HTTP/1.0) */
    rt_http_request_fn on_gone;                   /* told when the client leaves */
    void *on_gone_arg;                            /* passed to on_gone */
    rt_buf_t out_headers;                         /* response header lines, "Name: value\r\n" */
    size_t out_mark;                              /* bytes of them the server added (CORS)
                                                     before the handler ran */
    char *principal;                              /* who the auth hook let in; owned, NULL
                                                     when the route has no hook */
    rt_http_idem_store_t *idem_store;             /* where idem is kept; lent */
    rt_http_idem_key_t *idem;                     /* the key this request reserved, until its
                                                     answer is stored; owned */
    rt_http_request_t *prev;                      /* the worker's deferred list */
    rt_http_request_t *next;
};

/* CORS settings as a route keeps them (rt_http_api.c). */
typedef struct rt_http_cors_rules_t rt_http_cors_rules_t;

/* A route's API layers, or the server's defaults for them (rt_http_api.c). */
typedef struct {
    bool auth_set;              /* an auth hook (or none) was chosen here */
    rt_http_auth_fn auth;       /* the hook; NULL: the route is public */
    void *auth_arg;             /* passed to auth */
    bool cors_set;              /* CORS (or none) was chosen here */
    rt_http_cors_rules_t *cors; /* owned; NULL: no CORS headers */
    rt_http_idem_store_t *idem; /* lent; NULL: Idempotency-Key is ignored */
    bool idem_required;         /* a request without the key is refused */
    rt_counter_t *replays;      /* retain_http_idempotent_replays_total of the route */
} rt_http_layers_t;

void rt_http_cors_rules_free (rt_http_cors_rules_t *rules);

/* The routing table (rt_http_route.c). */
typedef struct {
    rt_http_route_t *first;    /* in registration order; owned */
    rt_http_route_t *last;     /* where the next is appended */
    rt_http_route_t *none;     /* the metrics of requests that matched no route; owned */
    rt_metrics_t *metrics;     /* lent; may be NULL */
    const char *server;        /* the server's name, for labels; lent */
    rt_http_layers_t defaults; /* the server's auth hook and CORS, for routes that set none */
} rt_http_routes_t;

int rt_http_routes_init (rt_http_routes_t *routes, rt_metrics_t *metrics, const char *server);
void rt_http_routes_fini (rt_http_routes_t *routes);

/* See rt_http_route in rt_http_server.h. */
rt_http_route_t *rt_http_routes_add (rt_http_routes_t *routes, const char *method,
                                     const char *pattern, rt_http_handler_fn handler, void *arg);

/* Finds the route of req (method and path parsed) and decodes its params
 * into req; NONE, NOT_FOUND, METHOD_NOT_ALLOWED (req->allow filled) or
 * NO_MEMORY. */
rt_http_refusal_t rt_http_routes_match (const rt_http_routes_t *routes, rt_http_request_t *req);

/* The route that would serve `method` on req's path, or NULL; fills
 * allow (size bytes) with the path's methods. Params are not decoded. */
rt_http_route_t *rt_http_routes_find (const rt_http_routes_t *routes, const char *method,
                                      const rt_http_request_t *req, char *allow, size_t size);

/* Counts a response of route (NULL: none) with its duration in seconds. */
void rt_http_routes_count (rt_http_routes_t *routes, rt_http_route_t *route, int status,
                           double seconds);

rt_http_handler_fn rt_http_route_handler (const rt_http_route_t *route);
void *rt_http_route_arg (const rt_http_route_t *route);
/* The route's layers (its own settings; rt_http_api.c resolves the
 * server's defaults), and the table it belongs to. */
rt_http_layers_t *rt_http_route_layers (rt_http_route_t *route);
rt_http_routes_t *rt_http_route_table (const rt_http_route_t *route);
/* The method the route was registered for, NULL for any; its pattern. */
const char *rt_http_route_method (const rt_http_route_t *route);
const char *rt_http_route_pattern_of (const rt_http_route_t *route);

struct rt_http_server_t {
    rt_http_server_config_t config;               /* defaults applied; address and name are ours */
    char *address;                                /* owned copy */
    char *name;                                   /* owned copy */
    int fd;                                       /* the listening socket */
    int port;                                     /* bound port */
    rt_http_routes_t routes;                      /* the routing table */
    rt_http_worker_t *workers;                    /* nworkers of them */
    int nworkers;                                 /* workers set up */
    bool started;                                 /* rt_http_server_start ran */
    atomic_bool stopping;                         /* destroy has begun */
    pthread_mutex_t conn_lock;                    /* guards total and addrs (all workers) */
    int total;                                    /* open connections, all workers */
    rt_http_addr_t *addrs[RT_HTTP_ADDR_BUCKETS];  /* per-address counts */
    pthread_mutex_t log_lock;                     /* guards the refusal log's rate (all workers) */
    time_t log_second;                            /* the second being counted */
    int log_lines;                                /* refusal lines written in it */
    uint64_t log_suppressed;                      /* refusals not written since */
    rt_counter_t *refused[RT_HTTP_REFUSAL_COUNT]; /* by reason */
    rt_gauge_t *connections;                      /* open connections */
    char *canned_503;                             /* the answer at the total cap */
    size_t canned_503_len;                        /* its length */
};

/* --- rt_http_server.c --- */

/* Counts a refusal, tells the refused callback and logs it (at a bounded
 * rate). req is NULL when there is no valid request line. */
void rt_http_refusal_count (rt_http_server_t *srv, rt_http_refusal_t refusal,
                            const rt_http_request_t *req, const char *peer, const char *detail);

/* Counts a new connection from addr (addrlen 0: not an IP peer) against
 * the caps: NONE (counted in both), TOO_MANY_CONNECTIONS (not counted) or
 * TOO_MANY_PER_ADDRESS (counted in the total only); *by_address tells
 * which, for the release. Any worker thread. */
rt_http_refusal_t rt_http_caps_take (rt_http_server_t *srv, const unsigned char *addr,
                                     size_t addrlen, bool *by_address);
void rt_http_caps_release (rt_http_server_t *srv, const unsigned char *addr, size_t addrlen,
                           bool by_address);

/* Leaves the worker's loop when it stops and holds nothing any more. */
void rt_http_worker_check_done (rt_http_worker_t *w);

/* --- rt_http_conn.c --- */

/* Takes an accepted socket (owned from here) onto worker w. */
void rt_http_conn_accept (rt_http_worker_t *w, int fd, const struct sockaddr *sa);

/* At a stop: closes the connections that await nothing; those with a
 * deferred request or an answer being written finish first. */
void rt_http_conn_stop_all (rt_http_worker_t *w);

/* Closes every connection of w at once (their deferred requests are told
 * they are gone). */
void rt_http_conn_free_all (rt_http_worker_t *w);

/* Answers req (discarded when its client is gone) and ends it: see
 * rt_http_reply. 0, or -1 when it was already answered. */
int rt_http_request_respond (rt_http_request_t *req, int status, const char *content_type,
                             const void *body, size_t len);

/* The streams of rt_http_server.h (rt_http_stream_begin, ...): the head
 * without Content-Length, chunks, the bytes queued, the last chunk. */
int rt_http_request_stream_begin (rt_http_request_t *req, int status, const char *content_type);
int rt_http_request_stream_write (rt_http_request_t *req, const void *data, size_t len);
size_t rt_http_request_stream_pending (const rt_http_request_t *req);
int rt_http_request_stream_end (rt_http_request_t *req);

/* The server's own refusal of req: counted, told, logged, answered. */
void rt_http_request_refuse (rt_http_request_t *req, rt_http_refusal_t refusal, const char *detail);

void rt_http_request_free (rt_http_request_t *req);

/* --- rt_http_request.c --- */

/* The problem details JSON text (owned), NULL when out of memory. */
char *rt_http_problem_body (int status, const char *type_suffix, const char *detail);

/* Appends a header line to req's answer, unchecked; -1 when out of memory
 * (nothing appended). */
int rt_http_header_put (rt_http_request_t *req, const char *name, const char *value);

/* --- rt_http_api.c --- */

/* When req is a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method, and no OPTIONS route of its own) for a
 * route with CORS: that route. NULL otherwise. */
rt_http_route_t *rt_http_api_preflight_route (const rt_http_request_t *req);

/* Answers the preflight req for route: 204 with the CORS headers when the
 * origin is allowed, without them when it is not. */
void rt_http_api_preflight (rt_http_request_t *req, rt_http_route_t *route);

/* Once req is routed, before its body is read: its CORS headers, then its
 * auth hook. NONE, or UNAUTHORIZED / FORBIDDEN (WWW-Authenticate added)
 * with *detail set, for the caller to refuse. */
rt_http_refusal_t rt_http_api_admit (rt_http_request_t *req, const char **detail);

/* Hands the complete request to its handler, through the Idempotency-Key
 * layer when the route has one (which may answer itself). */
void rt_http_api_dispatch (rt_http_request_t *req);

/* At req's answer, before it is written: stores it under the key req
 * reserved (a status under 500), or releases the key (5xx). */
void rt_http_api_answered (rt_http_request_t *req, int status, const char *content_type,
                           const void *body, size_t len);

/* When req ends unanswered (a stop): releases the key it reserved. */
void rt_http_api_abandon (rt_http_request_t *req);

#endif
