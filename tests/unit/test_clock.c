/*
 * common/time rt_clock: the one clock, and a test's hold on it. Another
 * process that names the same RETAIN_CLOCK_FILE sees a change at its next
 * reading, without a restart: checked with a child process, as a daemon
 * under test would be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_clock.h"
#include "rt_test.h"

#define DAY_MS 86400000LL

static char s_file[512];

static int64_t
s_system_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_offsets_move_this_process (void **state)
{
    int64_t wall, mono, m0;
    (void)state;
    assert_int_equal (rt_clock_file_set (s_file, 0, 0), 0);
    assert_true (llabs (rt_clock_now_ms () - s_system_ms ()) < 1000);
    m0 = rt_clock_mono_ms ();
    assert_int_equal (rt_clock_file_set (s_file, 3 * DAY_MS, -m0 + 5000), 0);
    assert_true (llabs (rt_clock_now_ms () - (s_system_ms () + 3 * DAY_MS)) < 1000);
    /* The host "freshly booted": five seconds of uptime. */
    assert_true (rt_clock_mono_ms () >= 5000 && rt_clock_mono_ms () < 6000);
    rt_clock_offsets (&wall, &mono);
    assert_int_equal (wall, 3 * DAY_MS);
    assert_int_equal (mono, -m0 + 5000);
    assert_int_equal (rt_clock_file_set (s_file, 0, 0), 0);
    assert_true (llabs (rt_clock_now_ms () - s_system_ms ()) < 1000);
}

/* A child reads its clock when told, through a pipe: the parent moves the
 * file in between, and the child's second reading follows. */
static void
test_another_process_follows_at_once (void **state)
{
    int to_child[2], from_child[2];
    int64_t first, second;
    char go = 'g';
    pid_t pid;
    int status;
    (void)state;
    assert_int_equal (rt_clock_file_set (s_file, 0, 0), 0);
    assert_int_equal (pipe (to_child), 0);
    assert_int_equal (pipe (from_child), 0);
    pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        int k;
        for (k = 0; k < 2; k++) {
            int64_t now;
            if (read (to_child[0], &go, 1) != 1)
                _exit (1);
            now = rt_clock_now_ms ();
            if (write (from_child[1], &now, sizeof now) != (ssize_t)sizeof now)
                _exit (1);
        }
        _exit (0);
    }
    assert_int_equal (write (to_child[1], &go, 1), 1);
    assert_int_equal (read (from_child[0], &first, sizeof first), (ssize_t)sizeof first);
    assert_int_equal (rt_clock_file_set (s_file, DAY_MS, 0), 0);
    assert_int_equal (write (to_child[1], &go, 1), 1);
    assert_int_equal (read (from_child[0], &second, sizeof second), (ssize_t)sizeof second);
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    /* A day later, give or take the time between the two readings. */
    assert_true (second - first >= DAY_MS && second - first < DAY_MS + 5000);
    assert_int_equal (rt_clock_file_set (s_file, 0, 0), 0);
    close (to_child[0]);
    close (to_child[1]);
    close (from_child[0]);
    close (from_child[1]);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_offsets_move_this_process),
        cmocka_unit_test (test_another_process_follows_at_once),
    };
    snprintf (s_file, sizeof s_file, "%s/test-clock.%d", rt_test_dir (), (int)getpid ());
    /* Before the first reading: the clock maps the file it names then. */
    if (rt_clock_file_set (s_file, 0, 0) != 0 || setenv ("RETAIN_CLOCK_FILE", s_file, 1) != 0)
        return 1;
    return cmocka_run_group_tests (tests, NULL, NULL);
}
