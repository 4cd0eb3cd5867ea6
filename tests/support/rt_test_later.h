/*
 * rt_test_later: the answers a test's fake server gives late (the fake
 * providers', the fake carriers'): a delay that is a timeout to a client
 * with a shorter one, while the server's worker answers other requests
 * meanwhile.
 *
 * A late answer defers its request and arms a timer on the request's
 * worker loop; at the delay it is sent, once. Before the fake's server is
 * destroyed, rt_test_later_flush posts every answer still waiting to its
 * worker, so no request is left unanswered at stop. Thread-safe: the
 * server's workers add answers while the test's thread flushes.
 * Failures (out of memory, no timer) abort the process, naming the fake:
 * they happen on a server thread, where cmocka cannot fail a test.
 */
#ifndef RT_TEST_LATER_H
#define RT_TEST_LATER_H

#include <stddef.h>

#include "rt_http_server.h"

typedef struct rt_test_later_t rt_test_later_t;

/* The late answers of the fake `name` (for its failure messages; lent). */
rt_test_later_t *rt_test_later_new (const char *name);

/* Answers req after delay_ms on its worker's loop: status, content_type
 * (NULL or "": none), body[0..len) (copied), retry_after (NULL or "":
 * none) as a Retry-After header. */
void rt_test_later_reply (rt_test_later_t *self, rt_http_request_t *req, int delay_ms, int status,
                          const char *content_type, const char *body, size_t len,
                          const char *retry_after);

/* Answers at once, as a late answer would be sent: the same arguments. */
void rt_test_later_send (rt_http_request_t *req, int status, const char *content_type,
                         const char *body, size_t len, const char *retry_after);

/* Posts every answer still waiting to its worker, to be sent now; before
 * the server is destroyed. */
void rt_test_later_flush (rt_test_later_t *self);

/* Frees everything, after the server is destroyed. Safe on NULL; sets
 * *self_p NULL. */
void rt_test_later_destroy (rt_test_later_t **self_p);

#endif
