/*
 * rt_admin: the admin HTTP server every daemon serves, on its own thread.
 *
 * GET /healthz: 200 "ok" while the process runs its loop.
 * GET /readyz:  200 "ready" when the ready callback says so, else 503 with
 *               the reason the callback gave.
 * GET /metrics: the registry in Prometheus text format
 *               (Content-Type: text/plain; version=0.0.4).
 * Anything else: 404; a method other than GET/HEAD: 405.
 *
 * The server runs a libevent loop on a thread of its own, so a daemon's main
 * loop may block (on ZeroMQ, on PostgreSQL) without making the admin port
 * unresponsive. The ready callback therefore runs on the admin thread: it
 * must only read state that is safe to read concurrently (atomics).
 */
#ifndef RT_ADMIN_H
#define RT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "rt_metrics.h"

typedef struct rt_admin_t rt_admin_t;

/* Returns true when ready; otherwise writes a short reason into `why`. */
typedef bool (*rt_admin_ready_fn) (void *arg, char *why, size_t whylen);

/* Binds `address` ("127.0.0.1:9100", "0.0.0.0:9100", or ":0" / port 0 for
 * any free port) and starts serving. `metrics` is lent and must outlive the
 * server. Returns NULL and fills err when the address cannot be bound. */
rt_admin_t *rt_admin_start (const char *address, rt_metrics_t *metrics, rt_admin_ready_fn ready,
                            void *ready_arg, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int rt_admin_port (const rt_admin_t *self);

/* Stops the thread and frees the server; safe on NULL. */
void rt_admin_stop (rt_admin_t **self_p);

#endif
