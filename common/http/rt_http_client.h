/*
 * rt_http_client: retain's one outbound HTTP client (providers, carriers),
 * libcurl's multi interface driven by a libevent loop.
 *
 * Many requests are in flight on one loop, none blocks it. Connections are
 * kept alive and reused; per host (scheme, host name and port) at most
 * max_host_connections transfers run at once, and at most
 * max_total_connections in all. Requests beyond those caps wait in the
 * client's own queue, first come first served per host, and hosts take
 * turns for the total: a request leaves the queue only when a connection
 * slot is free, so its connect and total timeouts count from then, never
 * from the wait (libcurl's own queue would count the wait in the timeout,
 * and a burst would time out at its tail without ever reaching the
 * network). At most max_queued requests wait; beyond, submitting fails.
 * Over HTTP/2 (offered for https by ALPN) transfers to one host share a
 * connection; the caps count transfers either way.
 *
 * Every request ends in exactly one call of its done callback, with an
 * outcome: ok means a complete HTTP response arrived, whatever its status
 * (a 503 is ok, status 503). connect_failed, dns_failed and tls_failed mean
 * the request never reached the server's HTTP layer; after timeout, other
 * or too_large the server may have seen it. A request on a reused
 * connection that dies before any byte of the answer is sent once more on
 * a new connection by libcurl (as browsers do): a server that processed
 * the first copy sees it twice, which a provider's idempotency key
 * covers where it has one. Redirects are not followed (a 3xx is ok with
 * its status and Location); only http and https are spoken; proxies named
 * by the environment (https_proxy, no_proxy) apply, as in libcurl.
 *
 * Memory stays bounded per transfer: a body beyond max_body (announced by
 * Content-Length, or as it arrives) or headers beyond max_header_bytes end
 * the transfer as too_large and close its connection.
 *
 * Threads: a client belongs to the thread running its event_base. Every
 * function here, rt_http_client_new and rt_http_client_destroy included,
 * is called on that thread (or while the loop is not running), and done
 * callbacks run on it, never from inside rt_http_client_submit. A thread
 * that is not the loop's hands its requests to the loop by its own means
 * (a queue and an event it activates).
 *
 * TLS peers are verified against the system's CA store (or ca_file) unless
 * tls_no_verify is set; TLS sessions are resumed across the client's
 * connections.
 */
#ifndef RT_HTTP_CLIENT_H
#define RT_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct rt_http_client_t rt_http_client_t;

/* Settings; a field left 0 (or NULL) takes the default in brackets. */
typedef struct {
    int max_host_connections;  /* transfers at once per scheme, host and port [8] */
    int max_total_connections; /* transfers at once in all, and connections kept [64] */
    size_t max_queued;         /* requests waiting for a slot; more: submit fails [100000] */
    int connect_timeout_ms;    /* default time to connect, TLS included [5 s] */
    int timeout_ms;            /* default time from leaving the queue to the last byte
                                  of the answer [30 s] */
    size_t max_body;           /* bytes of response body; more: too_large [1 MiB] */
    size_t max_header_bytes;   /* bytes of response header lines; more: too_large [64 KiB] */
    const char *user_agent;    /* User-Agent sent unless a request sets its own ["retain"] */
    const char *ca_file;       /* PEM file of the CAs to trust; NULL: the system's store */
    bool tls_no_verify;        /* true: accept any certificate and host name (tests only) */
} rt_http_client_config_t;

/* How a request ended. */
typedef enum {
    RT_HTTP_OUTCOME_OK = 0,         /* a complete HTTP response, of any status */
    RT_HTTP_OUTCOME_TIMEOUT,        /* the connect or total timeout passed */
    RT_HTTP_OUTCOME_CONNECT_FAILED, /* no TCP connection (refused, unreachable) */
    RT_HTTP_OUTCOME_DNS_FAILED,     /* the host name did not resolve */
    RT_HTTP_OUTCOME_TLS_FAILED,     /* the TLS handshake or the peer's verification failed */
    RT_HTTP_OUTCOME_TOO_LARGE,      /* the body or headers passed their cap */
    RT_HTTP_OUTCOME_CANCELLED,      /* the client was destroyed first */
    RT_HTTP_OUTCOME_OTHER           /* anything else (a connection closed mid-answer, a
                                       malformed answer): see `error` */
} rt_http_outcome_t;

/* One response header field; both strings lent with the response. */
typedef struct {
    const char *name;  /* as received (case kept) */
    const char *value; /* without surrounding whitespace */
} rt_http_client_header_t;

/* What a request got; everything is lent until the done callback returns
 * (copy what must live longer). */
typedef struct {
    rt_http_outcome_t outcome;              /* how it ended */
    const char *error;                      /* libcurl's message, "" when ok */
    int status;                             /* the HTTP status; 0 when no status line came */
    const rt_http_client_header_t *headers; /* the final response's fields in arrival order
                                               (interim 1xx responses dropped) */
    size_t nheaders;                        /* entries in headers */
    const char *body;       /* the body, NUL-terminated ("" when none); when not ok, the part
                               that arrived, at most max_body bytes */
    size_t body_len;        /* its length */
    int64_t retry_after_ms; /* Retry-After in ms (delta-seconds, or an HTTP-date less the
                               response's Date, or rt_clock's when it has none; a past date
                               is 0); -1 when absent or unparsable */
    int64_t queued_us;      /* time waiting in the client's queue for a connection slot */
    int64_t total_us;       /* time from leaving the queue to the end (libcurl's total) */
    bool reused;            /* it went over a connection kept from an earlier request */
} rt_http_response_t;

/* Told of a request's end, on the loop's thread, exactly once. The client
 * may be used from inside (submit follow-ups, read in_flight) but not
 * destroyed. */
typedef void (*rt_http_client_done_fn) (void *arg, const rt_http_response_t *resp);

/* A request; everything in it is copied by rt_http_client_submit. */
typedef struct {
    const char *method;          /* a token ("PATCH"); NULL: POST with a body, else GET */
    const char *url;             /* "http://..." or "https://..." */
    const char *const *headers;  /* "Name: value" lines, NULL-terminated; may be NULL.
                                    No Expect: 100-continue is sent unless one is given;
                                    a body without a Content-Type line goes as
                                    application/x-www-form-urlencoded (libcurl's) */
    const void *body;            /* request body; NULL: none */
    size_t body_len;             /* its length */
    int timeout_ms;              /* the total timeout; 0: the client's */
    int connect_timeout_ms;      /* the connect timeout; 0: the client's */
    rt_http_client_done_fn done; /* called once at the end; required */
    void *arg;                   /* passed to done */
} rt_http_client_request_t;

/* A client on `base`, which must outlive it. `config` may be NULL (all
 * defaults); its strings are copied. NULL with err filled on a bad setting
 * or when libcurl cannot start. */
rt_http_client_t *rt_http_client_new (struct event_base *base,
                                      const rt_http_client_config_t *config, char *err,
                                      size_t errlen);

/* Queues a request (it starts at once when a slot is free). 0: done will
 * be called exactly once, later, from the loop. -1 with err filled and
 * done never called: a malformed URL, method or header line, a scheme
 * other than http/https, a full queue, a client being destroyed, or out
 * of memory. */
int rt_http_client_submit (rt_http_client_t *self, const rt_http_client_request_t *req, char *err,
                           size_t errlen);

/* Requests submitted and not yet told done: waiting plus running. */
size_t rt_http_client_in_flight (const rt_http_client_t *self);

/* Aborts every running transfer and drops every waiting one, calling each
 * done with RT_HTTP_OUTCOME_CANCELLED (submits from those callbacks fail),
 * closes the connections and frees the client. Not from inside a done
 * callback. Safe on NULL; sets *self_p NULL. */
void rt_http_client_destroy (rt_http_client_t **self_p);

/* The value of the first header named `name` (case-insensitively), NULL
 * when absent. */
const char *rt_http_response_header (const rt_http_response_t *resp, const char *name);

/* "ok", "timeout", "connect_failed", "dns_failed", "tls_failed",
 * "too_large", "cancelled", "other": for logs and metric labels. */
const char *rt_http_outcome_name (rt_http_outcome_t outcome);

#endif
