/*
 * rt_signal: clean stop on SIGTERM and SIGINT.
 *
 * The handler does the two things that are async-signal-safe and enough:
 * it sets an atomic flag and writes one byte to a non-blocking self-pipe.
 * The pipe is never drained, so once a stop is requested its read end stays
 * readable for every loop that polls it, however many there are. A full pipe
 * (EAGAIN) is fine: it is readable already.
 *
 * SA_RESTART is deliberately off, so a blocking call in the main thread
 * returns EINTR on the signal instead of resuming as if nothing happened.
 */
#include "rt_signal.h"

#include "rt_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* The process-wide state signals force on us (see the header). Lock-free
 * atomics, so the handler may touch them. */
static atomic_bool s_stopping = false;
static atomic_int s_pipe_read = -1;
static atomic_int s_pipe_write = -1;

static void
s_wake (void)
{
    int fd = atomic_load (&s_pipe_write);
    if (fd >= 0) {
        ssize_t rc = write (fd, "x", 1);
        (void)rc; /* EAGAIN means a byte is waiting already */
    }
}

static void
s_on_signal (int signum)
{
    (void)signum;
    int saved_errno = errno;
    atomic_store (&s_stopping, true);
    s_wake ();
    errno = saved_errno;
}

int
rt_signal_install (void)
{
    int fds[2] = {-1, -1};
    struct sigaction stop = {0};
    struct sigaction ignore = {0};

    if (atomic_load (&s_pipe_read) < 0) {
        if (pipe2 (fds, O_NONBLOCK | O_CLOEXEC) != 0)
            return -1;
        atomic_store (&s_pipe_write, fds[1]);
        atomic_store (&s_pipe_read, fds[0]);
        /* A stop requested before install must still be visible on the fd. */
        if (atomic_load (&s_stopping))
            s_wake ();
    }

    stop.sa_handler = s_on_signal;
    sigemptyset (&stop.sa_mask);
    stop.sa_flags = 0;
    ignore.sa_handler = SIG_IGN;
    sigemptyset (&ignore.sa_mask);
    if (sigaction (SIGTERM, &stop, NULL) != 0 || sigaction (SIGINT, &stop, NULL) != 0 ||
        sigaction (SIGPIPE, &ignore, NULL) != 0)
        return -1;
    return 0;
}

bool
rt_signal_stopping (void)
{
    return atomic_load (&s_stopping);
}

int
rt_signal_fd (void)
{
    return atomic_load (&s_pipe_read);
}

void
rt_signal_request_stop (void)
{
    atomic_store (&s_stopping, true);
    s_wake ();
}

bool
rt_signal_sleep_ms (int ms)
{
    int64_t deadline = rt_clock_elapsed_us () / 1000 + (ms > 0 ? ms : 0);
    for (;;) {
        if (rt_signal_stopping ())
            return true;
        int64_t left = deadline - rt_clock_elapsed_us () / 1000;
        if (left <= 0)
            return false;
        int fd = rt_signal_fd ();
        if (fd >= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            /* EINTR and a readable pipe both loop back to the flag check. */
            poll (&pfd, 1, (int)left);
        } else {
            /* Not installed: nothing can wake us, so check the flag often. */
            int slice = left < 10 ? (int)left : 10;
            struct timespec nap = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000};
            nanosleep (&nap, NULL);
        }
    }
}
