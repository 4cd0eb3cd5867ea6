/*
 * test_signal: a daemon told to stop notices at once. SIGTERM (or SIGINT)
 * sets the flag, makes the self-pipe readable and cuts a sleep short;
 * SIGPIPE no longer kills the process.
 *
 * The stop flag cannot be cleared, so the tests run in order and those that
 * need a fresh process fork one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_signal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static bool
s_readable (int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll (&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

/* Runs body in a child process and asserts it exited 0. */
static void
s_in_child (void (*body) (void))
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        body ();
        _exit (0);
    }
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_before_install (void **state)
{
    (void)state;
    assert_int_equal (rt_signal_fd (), -1);
    assert_false (rt_signal_stopping ());
}

static void
test_sleep_without_stop_sleeps (void **state)
{
    (void)state;
    assert_int_equal (rt_signal_install (), 0);
    int fd = rt_signal_fd ();
    assert_true (fd >= 0);
    /* Installing twice keeps the same pipe. */
    assert_int_equal (rt_signal_install (), 0);
    assert_int_equal (rt_signal_fd (), fd);

    assert_false (s_readable (fd, 0));
    int64_t start = s_now_ms ();
    assert_false (rt_signal_sleep_ms (150));
    int64_t slept = s_now_ms () - start;
    assert_true (slept >= 150);
    assert_true (slept < 1500);
    assert_false (rt_signal_stopping ());
}

static void
test_sigpipe_is_ignored (void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal (pipe (fds), 0);
    close (fds[0]);
    /* Without the handler this write would kill the test. */
    errno = 0;
    assert_int_equal (write (fds[1], "x", 1), -1);
    assert_int_equal (errno, EPIPE);
    close (fds[1]);
}

static void *
s_send_sigterm (void *arg)
{
    (void)arg;
    struct timespec nap = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
    nanosleep (&nap, NULL);
    kill (getpid (), SIGTERM);
    return NULL;
}

static void
test_sigterm_cuts_sleep_short (void **state)
{
    (void)state;
    pthread_t sender;
    assert_false (rt_signal_stopping ());
    assert_int_equal (pthread_create (&sender, NULL, s_send_sigterm, NULL), 0);
    int64_t start = s_now_ms ();
    assert_true (rt_signal_sleep_ms (10000));
    int64_t slept = s_now_ms () - start;
    pthread_join (sender, NULL);

    assert_true (slept >= 90);
    assert_true (slept < 2000);
    assert_true (rt_signal_stopping ());
    /* The pipe stays readable for every loop that polls it, not just one. */
    assert_true (s_readable (rt_signal_fd (), 0));
    assert_true (s_readable (rt_signal_fd (), 0));
    /* Further sleeps return at once. */
    start = s_now_ms ();
    assert_true (rt_signal_sleep_ms (10000));
    assert_true (s_now_ms () - start < 100);
}

static void
s_child_request_stop (void)
{
    if (rt_signal_install () != 0)
        _exit (10);
    if (rt_signal_stopping () || s_readable (rt_signal_fd (), 0))
        _exit (11);
    rt_signal_request_stop ();
    if (!rt_signal_stopping ())
        _exit (12);
    if (!s_readable (rt_signal_fd (), 0))
        _exit (13);
    if (!rt_signal_sleep_ms (10000))
        _exit (14);
}

static void
test_request_stop (void **state)
{
    (void)state;
    s_in_child (s_child_request_stop);
}

static void
s_child_sigint (void)
{
    if (rt_signal_install () != 0)
        _exit (10);
    raise (SIGINT);
    if (!rt_signal_stopping ())
        _exit (11);
    if (!s_readable (rt_signal_fd (), 1000))
        _exit (12);
}

static void
test_sigint_stops_too (void **state)
{
    (void)state;
    s_in_child (s_child_sigint);
}

static void
s_child_stop_before_install (void)
{
    /* A stop requested early (a fatal path at start) must still show on the
     * fd once installed, and sleeping without a pipe still returns. */
    rt_signal_request_stop ();
    if (!rt_signal_sleep_ms (10000))
        _exit (10);
    if (rt_signal_install () != 0)
        _exit (11);
    if (!s_readable (rt_signal_fd (), 0))
        _exit (12);
}

static void
test_stop_before_install (void **state)
{
    (void)state;
    s_in_child (s_child_stop_before_install);
}

int
main (void)
{
    /* Order matters: the flag, once set by the SIGTERM test, stays set. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_before_install),
        cmocka_unit_test (test_request_stop),
        cmocka_unit_test (test_sigint_stops_too),
        cmocka_unit_test (test_stop_before_install),
        cmocka_unit_test (test_sleep_without_stop_sleeps),
        cmocka_unit_test (test_sigpipe_is_ignored),
        cmocka_unit_test (test_sigterm_cuts_sleep_short),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
