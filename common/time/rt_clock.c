/*
 * rt_clock: system clocks plus the offsets of an optional shared clock
 * file (see rt_clock.h).
 *
 * The file is mapped MAP_SHARED, so a writer's store is visible to every
 * reader on the host at once; each offset is one aligned 64-bit word read
 * and written with atomics, so a reading never sees half of a change.
 *
 * Which file, if any, is chosen once: by rt_clock_init, or at the first
 * reading of a process that never called it, from RETAIN_CLOCK_FILE. The
 * environment is read here only for programs without settings of their
 * own (test programs); a daemon names the file through rt_config, so its
 * --help lists it.
 */
#include "rt_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CLOCK_FILE_SIZE 16

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
/* The mapped offsets (wall, mono), or NULL without a clock file. */
static _Atomic (_Atomic int64_t *) s_offsets;
/* Set by rt_clock_init: the environment is not to be read. */
static atomic_bool s_chosen;

static _Atomic int64_t *
s_map (const char *path, int create)
{
    void *p;
    int fd = open (path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd < 0)
        return NULL;
    if (ftruncate (fd, CLOCK_FILE_SIZE) != 0) {
        close (fd);
        return NULL;
    }
    p = mmap (NULL, CLOCK_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close (fd);
    return p == MAP_FAILED ? NULL : p;
}

static void
s_init_from_env (void)
{
    if (atomic_load (&s_chosen))
        return;
    const char *path = getenv ("RETAIN_CLOCK_FILE");
    if (!path || !*path)
        return;
    /* Created when missing, so a process started before the test writes
     * the file still follows it. */
    _Atomic int64_t *m = s_map (path, 1);
    atomic_store (&s_offsets, m);
    if (m)
        fprintf (stderr, "retain: the clock follows RETAIN_CLOCK_FILE=%s (a test clock)\n", path);
    else
        fprintf (stderr, "retain: cannot map RETAIN_CLOCK_FILE=%s; using the system clock\n", path);
}

int
rt_clock_init (const char *path)
{
    _Atomic int64_t *m = NULL;
    if (path && *path) {
        m = s_map (path, 1);
        if (!m)
            return -1;
    }
    atomic_store (&s_chosen, true);
    /* Runs the environment's turn now (a no-op once chosen), so that it
     * can never come later and replace this choice. */
    pthread_once (&s_once, s_init_from_env);
    /* A mapping replaced is left mapped: a reader may still hold it. */
    atomic_store (&s_offsets, m);
    return 0;
}

static int64_t
s_offset (int which)
{
    pthread_once (&s_once, s_init_from_env);
    _Atomic int64_t *m = atomic_load_explicit (&s_offsets, memory_order_acquire);
    return m ? atomic_load_explicit (&m[which], memory_order_relaxed) : 0;
}

static int64_t
s_read_us (clockid_t id)
{
    struct timespec ts;
    clock_gettime (id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
rt_clock_elapsed_us (void)
{
    return s_read_us (CLOCK_MONOTONIC);
}

int64_t
rt_clock_backoff_ms (int64_t base_ms, int64_t max_ms, int failures)
{
    static __thread unsigned s_seed;
    int64_t d = base_ms;
    for (int i = 0; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (s_seed == 0)
        s_seed = (unsigned)s_read_us (CLOCK_MONOTONIC) | 1u;
    return d / 2 + (d > 1 ? (int64_t)(rand_r (&s_seed) % (d - d / 2)) : 0);
}

int64_t
rt_clock_now_us (void)
{
    return s_read_us (CLOCK_REALTIME) + s_offset (0) * 1000;
}

int64_t
rt_clock_now_ms (void)
{
    return rt_clock_now_us () / 1000;
}

int64_t
rt_clock_mono_us (void)
{
    return s_read_us (CLOCK_MONOTONIC) + s_offset (1) * 1000;
}

int64_t
rt_clock_mono_ms (void)
{
    return rt_clock_mono_us () / 1000;
}

void
rt_clock_offsets (int64_t *wall_ms, int64_t *mono_ms)
{
    if (wall_ms)
        *wall_ms = s_offset (0);
    if (mono_ms)
        *mono_ms = s_offset (1);
}

int
rt_clock_file_set (const char *path, int64_t wall_offset_ms, int64_t mono_offset_ms)
{
    _Atomic int64_t *m = s_map (path, 1);
    if (!m)
        return -1;
    atomic_store (&m[0], wall_offset_ms);
    atomic_store (&m[1], mono_offset_ms);
    munmap ((void *)m, CLOCK_FILE_SIZE);
    return 0;
}
