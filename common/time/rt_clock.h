/*
 * rt_clock: the one clock every time-based behaviour of retain reads.
 *
 * Two readings: the wall clock (unix milliseconds: ids, windows, days,
 * deadlines stored in PostgreSQL) and a monotonic clock (intervals and
 * timeouts within one process). Both are the system's clocks plus an
 * offset, zero unless a test sets it.
 *
 * Setting the time for tests: when the environment names a file in
 * RETAIN_CLOCK_FILE, every process that reads the clock maps that file
 * (shared, 16 bytes: the wall and the monotonic offsets in milliseconds,
 * two int64 in host order) and adds its offsets to every reading. A test
 * starts its daemons with the same RETAIN_CLOCK_FILE and moves the time of
 * all of them at once with rt_clock_file_set: no restart, no sleep, and no
 * cost to a reading beyond a memory load. A process that finds the
 * variable set says so once on stderr, so a production host cannot run on
 * a moved clock unawares. Without the variable the offsets are zero.
 *
 * Thread-safe; no initialisation call is needed.
 */
#ifndef RT_CLOCK_H
#define RT_CLOCK_H

#include <stdint.h>

/* Wall clock: unix milliseconds (and microseconds), offset applied. */
int64_t rt_clock_now_ms (void);
int64_t rt_clock_now_us (void);

/* Monotonic milliseconds (and microseconds), offset applied: only
 * differences mean anything. */
int64_t rt_clock_mono_ms (void);
int64_t rt_clock_mono_us (void);

/* The wall and monotonic offsets in effect (0 without a clock file). */
void rt_clock_offsets (int64_t *wall_ms, int64_t *mono_ms);

/* Writes the offsets into the clock file at `path`, creating it when
 * missing; processes that map it see the new time at their next reading.
 * 0, or -1 with errno set. */
int rt_clock_file_set (const char *path, int64_t wall_offset_ms, int64_t mono_offset_ms);

#endif
