/*
 * test_http_loop: what notifyd's sender and trackerd's poller rely on in
 * their workers' loop: a stop set while the tick sleeps an hour is noticed
 * within the watch's period; the drain ends the loop at once when idle and
 * at the request timeout when not; the in-flight cap is shared out evenly,
 * at least one each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_clock.h"
#include "rt_http_loop.h"

typedef struct {
    rt_http_loop_t loop;
    atomic_bool stop;
    int ticks;          /* tick calls */
    bool idle;          /* what the drain is told */
    int64_t timeout_ms; /* the drain's bound */
    int64_t stopped_at; /* mono ms of the stop */
} s_worker_t;

static const rt_http_client_config_t s_hc = {.max_host_connections = 1,
                                             .max_total_connections = 1,
                                             .timeout_ms = 1000,
                                             .user_agent = "test_http_loop"};

/* The first tick sets the stop, as another thread would, and sleeps an
 * hour; the later ones drain. */
static void
s_tick (evutil_socket_t fd, short what, void *arg)
{
    s_worker_t *w = arg;
    int64_t mono = rt_clock_mono_ms ();
    (void)fd;
    (void)what;
    w->ticks++;
    if (w->ticks == 1) {
        atomic_store (&w->stop, true);
        w->stopped_at = mono;
        rt_http_loop_arm (w->loop.tick, 3600 * 1000);
        return;
    }
    if (!rt_http_loop_drain (&w->loop, mono, w->timeout_ms, w->idle))
        rt_http_loop_arm (w->loop.tick, 10);
}

static int64_t
s_run (s_worker_t *w)
{
    char err[256] = "";
    int64_t t0;
    assert_int_equal (rt_http_loop_open (&w->loop, &s_hc, s_tick, w, &w->stop, err, sizeof err), 0);
    assert_non_null (w->loop.http);
    t0 = rt_clock_mono_ms ();
    rt_http_loop_run (&w->loop);
    rt_http_loop_close (&w->loop);
    assert_null (w->loop.base);
    rt_http_loop_close (&w->loop); /* twice is harmless */
    return rt_clock_mono_ms () - t0;
}

static void
test_stop_noticed_while_the_tick_sleeps (void **state)
{
    s_worker_t w = {.idle = true, .timeout_ms = 10000};
    (void)state;
    int64_t took = s_run (&w);
    /* The watch woke the hour-long tick; idle, the drain ended at once. */
    assert_int_equal (w.ticks, 2);
    assert_true (took < 2000);
}

static void
test_drain_waits_for_the_timeout (void **state)
{
    s_worker_t w = {.idle = false, .timeout_ms = 300};
    (void)state;
    int64_t took = s_run (&w);
    assert_true (w.ticks > 3);
    assert_true (took >= 300);
    assert_true (took < 5000);
}

static void
test_share (void **state)
{
    (void)state;
    /* 10 over 4: 3, 3, 2, 2. */
    assert_int_equal (rt_http_loop_share (10, 4, 0), 3);
    assert_int_equal (rt_http_loop_share (10, 4, 1), 3);
    assert_int_equal (rt_http_loop_share (10, 4, 2), 2);
    assert_int_equal (rt_http_loop_share (10, 4, 3), 2);
    /* Fewer slots than workers: one each all the same. */
    assert_int_equal (rt_http_loop_share (2, 4, 3), 1);
    assert_int_equal (rt_http_loop_share (256, 1, 0), 256);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_stop_noticed_while_the_tick_sleeps),
        cmocka_unit_test (test_drain_waits_for_the_timeout),
        cmocka_unit_test (test_share),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
