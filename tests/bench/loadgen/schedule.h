/*
 * schedule: the arithmetic of an open-loop measurement, shared by loadgen
 * (HTTP) and bench_bus (the bus's ZeroMQ door), so that both mean the same
 * thing by "due", "achieved rate" and "p99".
 *
 * Request (or event) i of a run at R per second is due at t0 + i/R on
 * CLOCK_MONOTONIC, whatever the server does; its latency counts from that
 * due time, so a sender that falls behind shows the queue in the figures
 * instead of lowering the load. A run whose achieved rate is more than
 * LOADGEN_RATE_SHORTAGE below its target was not taken at the rate it
 * claims. Percentiles are nearest-rank over every request due, none left
 * out.
 */
#ifndef LOADGEN_SCHEDULE_H
#define LOADGEN_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#define LOADGEN_RATE_SHORTAGE 0.05 /* an achieved rate this far below target fails */

/* CLOCK_MONOTONIC in nanoseconds: one clock for every process of the
 * machine, so a time taken in one process compares with another's. */
int64_t loadgen_mono_ns (void);

/* When request i of a run at `rate` per second starting at t0_ns is due. */
int64_t loadgen_due_ns (int64_t t0_ns, double rate, int64_t i);

/* Whether `achieved` per second is within LOADGEN_RATE_SHORTAGE of `target`
 * (a target of 0 or less, a closed loop, always is). */
bool loadgen_rate_ok (double achieved, double target);

/* Sorts n values ascending, in place. */
void loadgen_sort_i64 (int64_t *v, int64_t n);

/* The nearest-rank p-th quantile (0 < p <= 1) of n sorted values in
 * microseconds, in milliseconds; 0 when n is 0. */
double loadgen_pct_ms (const int64_t *sorted_us, int64_t n, double p);

#endif
