/*
 * rt_test_burst: a burst of numbered webhooks sent the way a provider sends
 * them, for the tests that kill a daemon under load.
 *
 * A thread of its own POSTs messages first .. first + total - 1 to one URL
 * with the same headers, keeping in_flight requests going at once with
 * libcurl's multi interface, and retries each after retry_ms on anything
 * but a 2xx (no answer, a cut connection, a timeout, any other status)
 * until it is answered 2xx; then the message is done and never sent again.
 * The caller writes each body (from the message id) and may watch every
 * request go out and end through two hooks, called on the burst's thread:
 * enough to count, per kill, the requests a kill cut off. Setup errors
 * fail the test (cmocka); a libcurl failure on the burst's thread stops
 * the burst, and rt_test_burst_join fails the test on it.
 */
#ifndef RT_TEST_BURST_H
#define RT_TEST_BURST_H

#include <stddef.h>

/* Room for one body, its NUL included. */
#define RT_TEST_BURST_BODY_MAX 512

typedef struct rt_test_burst_t rt_test_burst_t;

/* Writes the body of message id into buf (size bytes, NUL-terminated);
 * returns its length as snprintf does. A length that does not fit stops
 * the burst as a failure. */
typedef int (*rt_test_burst_body_fn) (char *buf, size_t size, int id, void *arg);

/* A request of message id is about to go out (first send or retry);
 * returns a tag the burst keeps with that request and hands to ended. */
typedef int (*rt_test_burst_sent_fn) (int id, void *arg);

/* A request of message id ended: status is the HTTP status, 0 when none
 * came (libcurl's transfer failed: refused, cut, timed out); sent is the
 * request bytes libcurl wrote (CURLINFO_REQUEST_SIZE); tag is what sent
 * returned for it (0 without a sent hook). Called before the burst counts
 * a 2xx, so a caller's counters never lag rt_test_burst_ok. */
typedef void (*rt_test_burst_ended_fn) (int id, int tag, long status, long sent, void *arg);

/* What to send and how. Everything is copied at rt_test_burst_start but
 * arg, which the hooks share with the caller's thread (atomics, then). */
typedef struct {
    const char *url;              /* where every message is POSTed */
    const char *const *headers;   /* header lines, NULL-terminated; NULL for none */
    int first;                    /* the first message id (> 0) */
    int total;                    /* messages: ids first .. first + total - 1 */
    int in_flight;                /* requests kept going at once */
    int retry_ms;                 /* wait before a message is sent again */
    long timeout_s;               /* a request's whole time (CURLOPT_TIMEOUT) */
    rt_test_burst_body_fn body;   /* writes a message's body; required */
    rt_test_burst_sent_fn sent;   /* NULL for none */
    rt_test_burst_ended_fn ended; /* NULL for none */
    void *arg;                    /* handed to body, sent and ended */
} rt_test_burst_opts_t;

/* Starts the burst's thread. Owned: rt_test_burst_join, then
 * rt_test_burst_destroy. Fails the test when it cannot start. */
rt_test_burst_t *rt_test_burst_start (const rt_test_burst_opts_t *opts);

/* 2xx answers so far: messages done. Any thread. */
int rt_test_burst_ok (rt_test_burst_t *self);

/* Waits until the burst has ok 2xx answers, or stopped on a failure. */
void rt_test_burst_wait (rt_test_burst_t *self, int ok);

/* Waits for the burst's thread to end; fails the test when a libcurl call
 * failed or fewer than total messages were answered 2xx. */
void rt_test_burst_join (rt_test_burst_t *self);

/* The 2xx answers message id got (the burst stops sending a message at its
 * first, so more than 1 is the burst's bug); 0 for an id outside it. */
int rt_test_burst_answered (const rt_test_burst_t *self, int id);

/* Frees a joined burst; safe on NULL, sets *self_p to NULL. */
void rt_test_burst_destroy (rt_test_burst_t **self_p);

#endif
