/*
 * rt_clock: the one clock every time-based behaviour of retain reads.
 *
 * Two readings: the wall clock (unix milliseconds: ids, windows, days,
 * deadlines stored in PostgreSQL) and a monotonic clock (intervals and
 * timeouts within one process). Both are the system's clocks plus an
 * offset, zero unless a test sets it.
 *
 * Setting the time for tests: a process that follows a clock file maps it
 * (shared, 16 bytes: the wall and the monotonic offsets in milliseconds,
 * two int64 in host order) and adds its offsets to every reading. A test
 * starts its daemons with the same file and moves the time of all of them
 * at once with rt_clock_file_set: no restart, no sleep, and no cost to a
 * reading beyond a memory load. A daemon is told the file by its settings
 * (--clock-file, RETAIN_CLOCK_FILE: common/daemon passes it to
 * rt_clock_init, and logs a warning, so a production host cannot run on a
 * moved clock unawares). A program that never calls rt_clock_init (a test
 * program) follows RETAIN_CLOCK_FILE from its environment at its first
 * reading, and says so once on stderr. Without a file the offsets are
 * zero.
 *
 * Thread-safe.
 */
#ifndef RT_CLOCK_H
#define RT_CLOCK_H

#include <stdint.h>

/* Makes this process's clock follow the clock file at `path` (created when
 * missing), or the system clock alone when path is NULL or "". Call it at
 * start, before threads read the clock; the environment is not read after
 * it. 0, or -1 with errno set when the file cannot be mapped (the clock
 * stays as it was). */
int rt_clock_init (const char *path);

/* Wall clock: unix milliseconds (and microseconds), offset applied. */
int64_t rt_clock_now_ms (void);
int64_t rt_clock_now_us (void);

/* Monotonic milliseconds (and microseconds), offset applied: only
 * differences mean anything. */
int64_t rt_clock_mono_ms (void);
int64_t rt_clock_mono_us (void);

/* The system's monotonic microseconds, never offset: for how long
 * something took (metrics) and for the timeouts of waits in system calls,
 * which a test moving the clock back must not stretch. No behaviour reads
 * it. */
int64_t rt_clock_elapsed_us (void);

/* The delay before retry number failures + 1 of something that failed
 * `failures` times in a row: base_ms doubled per failure up to max_ms,
 * its later half drawn at random (per thread), so that what failed
 * together in one outage does not come back together. */
int64_t rt_clock_backoff_ms (int64_t base_ms, int64_t max_ms, int failures);

/* The wall and monotonic offsets in effect (0 without a clock file). */
void rt_clock_offsets (int64_t *wall_ms, int64_t *mono_ms);

/* Writes the offsets into the clock file at `path`, creating it when
 * missing; processes that map it see the new time at their next reading.
 * 0, or -1 with errno set. */
int rt_clock_file_set (const char *path, int64_t wall_offset_ms, int64_t mono_offset_ms);

#endif
