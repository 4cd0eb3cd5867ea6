/*
 * rt_producer: the producing side of the bus's ZeroMQ ingress door.
 *
 * A DEALER socket connected to one or more busd ingress endpoints (a
 * comma-separated list: the active busd and its standby; only the one that
 * holds the writer lock binds, so messages flow to it). Every envelope is
 * kept until busd acknowledges it after commit; an envelope without an ack
 * after the resend interval is sent again with the same id, which busd
 * de-duplicates, so a retry is never a second event.
 *
 * Two ways to use it: rt_producer_send (one envelope, wait for its ack) and
 * the windowed pair rt_producer_post / rt_producer_poll for throughput.
 * Not thread-safe: one producer per thread.
 */
#ifndef RT_PRODUCER_H
#define RT_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "rt_bus.h"
#include "retain/v1/envelope.pb-c.h"

typedef struct rt_producer_t rt_producer_t;

/* Called once per envelope with its final ack (OK, DUPLICATE or REJECTED). */
typedef void (*rt_producer_ack_fn) (const Retain__V1__Ack *ack, void *arg);

/* Connects to `endpoints` (e.g. "tcp://127.0.0.1:7701,tcp://10.0.0.2:7701"),
 * with CURVE when `curve` (copied; NULL: plain TCP) names busd's key. NULL
 * with err filled on a bad endpoint or bad keys. */
rt_producer_t *rt_producer_new (const char *endpoints, const rt_bus_curve_t *curve, char *err,
                                size_t errlen);
void rt_producer_destroy (rt_producer_t **self_p);

/* Resend interval for unacknowledged envelopes (default 1000 ms). */
void rt_producer_set_resend_ms (rt_producer_t *self, int ms);

/* Sends one envelope (its id must be set) and waits up to timeout_ms for the
 * ack, resending meanwhile. Returns 0 when acknowledged (OK or DUPLICATE)
 * and, when ack_out is not NULL, copies the ack's status, seq, partition and
 * pseq into it (its strings are left empty); -1 on REJECTED (the reason in
 * err) or timeout ("timeout" in err). Acks of envelopes posted earlier that
 * arrive meanwhile are handled as if polled with no callback. */
int rt_producer_send (rt_producer_t *self, const Retain__V1__Envelope *env, int timeout_ms,
                      Retain__V1__Ack *ack_out, char *err, size_t errlen);

/* Queues an envelope (its id must be set) and sends it. Returns 0, or -1
 * when it cannot be serialized or its id is already pending. */
int rt_producer_post (rt_producer_t *self, const Retain__V1__Envelope *env);

/* Same with an already serialized envelope and its id. The bytes are copied. */
int rt_producer_post_packed (rt_producer_t *self, const char *id, const uint8_t *data, size_t len);

/* Waits up to timeout_ms for acks, calls `cb` for each final one, resends
 * what is overdue. Returns the number of acks handled, -1 on a socket error. */
int rt_producer_poll (rt_producer_t *self, int timeout_ms, rt_producer_ack_fn cb, void *arg);

/* rt_producer_poll that also returns when the plain descriptor fd (an
 * eventfd, a pipe; -1 for none) turns readable; the caller drains fd. */
int rt_producer_poll_fd (rt_producer_t *self, int timeout_ms, int fd, rt_producer_ack_fn cb,
                         void *arg);

/* Stops resending the pending envelope `id` and forgets it: a late ack is
 * ignored. For a caller that took another way to the log (the outbox).
 * 0 when it was pending, -1 when not. */
int rt_producer_forget (rt_producer_t *self, const char *id);

/* Envelopes posted and not yet acknowledged. */
size_t rt_producer_pending (const rt_producer_t *self);

#endif
