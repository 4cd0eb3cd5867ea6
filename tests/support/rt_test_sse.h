/*
 * rt_test_sse: a client of routerd's operator event stream (GET
 * /v1/stream, text/event-stream) on a thread of its own, as an operator's
 * console keeps one open.
 *
 * rt_test_sse_open connects with the operator's key (and, to resume, a
 * Last-Event-ID or a query), and the thread keeps everything the stream
 * sends until the test ends it; the test meanwhile reads the complete
 * events received so far, parsed (id, event, data as JSON). When the
 * exchange is over (the server ended it, or rt_test_sse_end), its status,
 * Content-Type and libcurl's result are there for the OpenAPI check.
 * Setup errors fail the test (cmocka).
 */
#ifndef RT_TEST_SSE_H
#define RT_TEST_SSE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

/* One open stream. The fields the thread writes (buf, len under lock;
 * status, type, result before done) are the test's to read; buf only
 * under lock, the others once done is true. */
typedef struct {
    CURL *curl;              /* the handle */
    struct curl_slist *hdrs; /* its request headers */
    char url[256];           /* what it asked for */
    pthread_mutex_t lock;    /* guards buf and len */
    char *buf;               /* the body so far, NUL-terminated (NULL before any) */
    size_t len;              /* its length */
    char type[128];          /* Content-Type */
    long status;             /* HTTP status */
    CURLcode result;         /* curl_easy_perform's */
    atomic_bool stop;        /* asks the thread to leave */
    atomic_bool done;        /* the exchange is over */
    bool joined;             /* the thread has been waited for */
    pthread_t thread;        /* runs it */
} rt_test_sse_t;

/* One event as the client parsed it. */
typedef struct {
    char id[48];   /* "<xid>-<seq>", "" when none */
    char kind[32]; /* event: */
    json_t *data;  /* data: parsed, NULL when not JSON (owned) */
} rt_test_sse_event_t;

/* Opens GET http://127.0.0.1:<port>/v1/stream as `key`, with Last-Event-ID
 * `last` (NULL: none) and `query` (NULL: none). Owned: rt_test_sse_close. */
rt_test_sse_t *rt_test_sse_open (int port, const char *key, const char *last, const char *query);

/* Ends the exchange (when the server has not) and waits for the thread:
 * status, type and result are final after it. A second call does nothing. */
void rt_test_sse_end (rt_test_sse_t *c);

/* rt_test_sse_end and frees c. */
void rt_test_sse_close (rt_test_sse_t *c);

/* A copy of the body received so far (owned; free()). */
char *rt_test_sse_body (rt_test_sse_t *c);

/* The complete events received so far (owned; rt_test_sse_events_free),
 * comments and the retry field left out; *n their count. */
rt_test_sse_event_t *rt_test_sse_events (rt_test_sse_t *c, size_t *n);

void rt_test_sse_events_free (rt_test_sse_event_t *evs, size_t n);

#endif
