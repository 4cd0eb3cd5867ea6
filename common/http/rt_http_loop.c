/*
 * rt_http_loop: an outside-API worker's loop (rt_http_loop.h).
 *
 * The watch is a persistent timer rather than an event the stopping thread
 * activates: the stop flag is set by the daemon's main thread, which
 * touches no worker's base, so the loop looks at the flag itself. Once the
 * drain has begun the tick polls on its own and the watch leaves it be.
 */
#include "rt_http_loop.h"

#include <stdio.h>
#include <string.h>

static void
s_watch_cb (evutil_socket_t fd, short what, void *arg)
{
    rt_http_loop_t *loop = arg;
    (void)fd;
    (void)what;
    if (atomic_load (loop->stop) && loop->drain_until == 0)
        rt_http_loop_arm (loop->tick, 0);
}

int
rt_http_loop_open (rt_http_loop_t *loop, const rt_http_client_config_t *hc, event_callback_fn tick,
                   void *arg, const atomic_bool *stop, char *err, size_t errlen)
{
    memset (loop, 0, sizeof *loop);
    loop->stop = stop;
    loop->base = event_base_new ();
    if (!loop->base) {
        snprintf (err, errlen, "event_base_new failed");
        return -1;
    }
    loop->http = rt_http_client_new (loop->base, hc, err, errlen);
    if (!loop->http)
        return -1;
    loop->tick = evtimer_new (loop->base, tick, arg);
    loop->watch = event_new (loop->base, -1, EV_PERSIST, s_watch_cb, loop);
    if (!loop->tick || !loop->watch) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void
rt_http_loop_run (rt_http_loop_t *loop)
{
    rt_http_loop_arm (loop->watch, RT_HTTP_LOOP_WATCH_MS);
    rt_http_loop_arm (loop->tick, 0);
    event_base_dispatch (loop->base);
}

bool
rt_http_loop_drain (rt_http_loop_t *loop, int64_t mono, int64_t timeout_ms, bool idle)
{
    if (loop->drain_until == 0)
        loop->drain_until = mono + timeout_ms;
    if (!idle && mono < loop->drain_until)
        return false;
    event_base_loopbreak (loop->base);
    return true;
}

void
rt_http_loop_cancel (rt_http_loop_t *loop)
{
    rt_http_client_destroy (&loop->http);
}

void
rt_http_loop_close (rt_http_loop_t *loop)
{
    rt_http_loop_cancel (loop);
    rt_http_loop_event_free (&loop->watch);
    rt_http_loop_event_free (&loop->tick);
    if (loop->base)
        event_base_free (loop->base);
    memset (loop, 0, sizeof *loop);
}

void
rt_http_loop_arm (struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add (ev, &tv);
}

void
rt_http_loop_event_free (struct event **ev)
{
    if (*ev)
        event_free (*ev);
    *ev = NULL;
}

int
rt_http_loop_share (int cap, int n, int i)
{
    int share = cap / n + (i < cap % n);
    return share < 1 ? 1 : share;
}
