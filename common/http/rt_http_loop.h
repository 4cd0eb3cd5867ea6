/*
 * rt_http_loop: the loop of a worker that calls outside APIs (notifyd's
 * sender, trackerd's poller), on the worker's own thread.
 *
 * A loop is a libevent base, its HTTP client (rt_http_client: many
 * requests in flight, none blocking), the tick timer that drives the
 * worker (claims, sweeps) and a watch that notices the owner's stop flag
 * within RT_HTTP_LOOP_WATCH_MS, while the tick may sleep an hour. Once
 * stopping, the worker's tick calls rt_http_loop_drain, which waits for the
 * answers in flight up to the request timeout and then ends the loop.
 *
 * The struct is open so the worker reaches its base, client and tick; the
 * functions own what is in it.
 */
#ifndef RT_HTTP_LOOP_H
#define RT_HTTP_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "rt_http_client.h"

/* How soon a loop notices its owner's stop. */
#define RT_HTTP_LOOP_WATCH_MS 100

typedef struct {
    struct event_base *base; /* the loop; NULL before open and after close */
    rt_http_client_t *http;  /* its client; NULL once cancelled */
    struct event *tick;      /* the worker's timer */
    struct event *watch;     /* notices *stop while the tick sleeps */
    const atomic_bool *stop; /* the owner's stop flag (lent) */
    int64_t drain_until;     /* mono ms: stop waiting for answers then, 0: not draining */
} rt_http_loop_t;

/* Makes loop's base, its client from hc, the tick (calling tick with arg)
 * and the watch of *stop (lent: it must outlive the loop). 0, or -1 with
 * err filled; what was made is freed by rt_http_loop_close either way. */
int rt_http_loop_open (rt_http_loop_t *loop, const rt_http_client_config_t *hc,
                       event_callback_fn tick, void *arg, const atomic_bool *stop, char *err,
                       size_t errlen);

/* Ticks at once and runs the loop until rt_http_loop_drain ends it. */
void rt_http_loop_run (rt_http_loop_t *loop);

/* Stopping: the first call starts the drain, until mono + timeout_ms; true
 * (the loop ends once the tick returns) when idle (nothing in flight,
 * nothing left to record) or the time is up, false to tick again. */
bool rt_http_loop_drain (rt_http_loop_t *loop, int64_t mono, int64_t timeout_ms, bool idle);

/* Destroys the client: what is still in flight ends CANCELLED, its done
 * callbacks run now, so what they use must still be there. Safe twice. */
void rt_http_loop_cancel (rt_http_loop_t *loop);

/* Cancels (rt_http_loop_cancel), then frees the events and the base, and
 * zeroes loop. The worker frees its own events on the base first. Safe on
 * a zeroed loop and twice. */
void rt_http_loop_close (rt_http_loop_t *loop);

/* Arms timer ev to fire in ms (a pending one moves). */
void rt_http_loop_arm (struct event *ev, int64_t ms);

/* Frees *ev, if any, and sets it NULL. */
void rt_http_loop_event_free (struct event **ev);

/* Worker i's share of an in-flight cap split between n workers: the cap
 * spread as evenly as it goes, at least 1 each. */
int rt_http_loop_share (int cap, int n, int i);

#endif
