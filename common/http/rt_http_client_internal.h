/*
 * rt_http_client_internal: what the files of rt_http_client share
 * (private to common/http; daemons use rt_http_client.h).
 *
 *   rt_http_client.c           the client's life, the per-host queues and
 *                              slots, libcurl's multi handle on the loop
 *   rt_http_client_response.c  a response as it arrives (body, header
 *                              lines, their caps), how a transfer ended,
 *                              and the rt_http_response_t its done
 *                              callback is told (Retry-After included)
 *
 * Everything runs on the client's loop thread.
 */
#ifndef RT_HTTP_CLIENT_INTERNAL_H
#define RT_HTTP_CLIENT_INTERNAL_H

#include <curl/curl.h>

#include "rt_buf.h"
#include "rt_http_client.h"

typedef struct rt_http_client_host_t rt_http_client_host_t;
typedef struct rt_http_transfer_t rt_http_transfer_t;
typedef struct rt_http_client_sock_t rt_http_client_sock_t;

/* One request, from submit to its done callback. */
struct rt_http_transfer_t {
    rt_http_client_t *client;    /* owner */
    rt_http_client_host_t *host; /* its host's slots and queue; NULL once it left them */
    rt_http_transfer_t *prev;    /* running list only */
    rt_http_transfer_t *next;    /* host queue, running list or failed list */
    CURL *easy;                  /* while running */
    char *url;                   /* owned copy */
    char *method;                /* owned copy of the method to send */
    struct curl_slist *headers;  /* owned request header lines */
    char *body;                  /* owned copy of the request body; NULL: none */
    size_t body_len;             /* its length */
    long timeout_ms;             /* total timeout */
    long connect_timeout_ms;     /* connect timeout */
    rt_http_client_done_fn done; /* told at the end */
    void *arg;                   /* passed to done */
    rt_buf_t resp;               /* response body so far (never over max_body) */
    rt_buf_t hdr;                /* response fields as "name\0value\0" pairs */
    size_t nheaders;             /* pairs in hdr */
    size_t hdr_bytes;            /* raw header bytes of the current response */
    bool too_large;              /* a cap was passed: the transfer was aborted */
    int64_t submitted_us;        /* monotonic, at submit */
    int64_t started_us;          /* monotonic, when handed to libcurl */
    char error[CURL_ERROR_SIZE]; /* libcurl's (or our) message */
};

/* The connection slots and waiting requests of one scheme://host:port. */
struct rt_http_client_host_t {
    char *key;                   /* "scheme://host:port", host lower-cased; owned */
    int running;                 /* transfers of this host handed to libcurl */
    rt_http_transfer_t *head;    /* first waiting request */
    rt_http_transfer_t *tail;    /* last waiting request */
    rt_http_client_host_t *prev; /* turn order */
    rt_http_client_host_t *next; /* turn order */
};

/* A socket libcurl asked us to watch. */
struct rt_http_client_sock_t {
    struct event *ev;            /* persistent read and/or write event; owned */
    rt_http_client_sock_t *prev; /* client's list (freed at destroy if libcurl kept it) */
    rt_http_client_sock_t *next; /* client's list */
};

struct rt_http_client_t {
    struct event_base *base;           /* the loop; lent */
    CURLM *multi;                      /* the transfers and the connection cache; owned */
    CURLSH *share;                     /* TLS sessions shared by every transfer; owned */
    struct event *timer;               /* libcurl's single timeout; owned */
    struct event *later;               /* reports failed starts off the submit path; owned */
    rt_http_client_host_t *hosts;      /* hosts in turn order (head is asked first) */
    rt_http_client_host_t *hosts_tail; /* last host */
    rt_http_transfer_t *running;       /* transfers handed to libcurl */
    rt_http_transfer_t *failed;        /* transfers that could not start, to be told */
    rt_http_transfer_t *failed_tail;   /* last of them */
    rt_http_client_sock_t *socks;      /* sockets being watched */
    size_t nqueued;                    /* requests waiting in host queues */
    size_t nrunning;                   /* transfers handed to libcurl */
    size_t nfailed;                    /* transfers in the failed list */
    int max_host;                      /* config, defaults applied */
    int max_total;                     /* config */
    size_t max_queued;                 /* config */
    long connect_timeout_ms;           /* config */
    long timeout_ms;                   /* config */
    size_t max_body;                   /* config */
    size_t max_header_bytes;           /* config */
    char *user_agent;                  /* owned copy */
    char *ca_file;                     /* owned copy, NULL: system store */
    bool tls_no_verify;                /* config */
    bool closing;                      /* destroy is cancelling: submits fail */
    bool in_done;                      /* a done callback is running (destroy is then a bug) */
};

/* What libcurl tells of a finished transfer, read before its handle is
 * cleaned up. */
typedef struct {
    long status;       /* CURLINFO_RESPONSE_CODE */
    long connects;     /* CURLINFO_NUM_CONNECTS: new connections it made */
    long request_size; /* CURLINFO_REQUEST_SIZE: bytes of request sent */
    curl_off_t total;  /* CURLINFO_TOTAL_TIME_T, microseconds */
} rt_http_transfer_info_t;

/* --- rt_http_client.c --- */

void rt_http_transfer_free (rt_http_transfer_t *t);

/* --- rt_http_client_response.c --- */

/* libcurl's CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION for a
 * transfer (arg): they keep the body and the final response's fields,
 * and abort the transfer (too_large) past the client's caps. */
size_t rt_http_transfer_on_body (char *data, size_t size, size_t count, void *arg);
size_t rt_http_transfer_on_header (char *data, size_t size, size_t count, void *arg);

/* How a transfer that libcurl ended with rc went. */
rt_http_outcome_t rt_http_transfer_classify (const rt_http_transfer_t *t, CURLcode rc);

void rt_http_transfer_info_read (CURL *easy, rt_http_transfer_info_t *info);

/* Calls the transfer's done callback with what it got and frees it. `rc`
 * is libcurl's result; `info` NULL when the transfer never reached
 * libcurl. */
void rt_http_transfer_tell (rt_http_client_t *self, rt_http_transfer_t *t,
                            rt_http_outcome_t outcome, CURLcode rc,
                            const rt_http_transfer_info_t *info);

#endif
