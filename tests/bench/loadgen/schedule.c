/*
 * schedule: due times, the rate check and percentiles (see schedule.h).
 * Kept apart from loadgen's HTTP machinery so that bench_bus links the
 * same definitions instead of a copy that could drift.
 */
#include "schedule.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

int64_t
loadgen_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
loadgen_due_ns (int64_t t0_ns, double rate, int64_t i)
{
    return t0_ns + (int64_t)((double)i * 1e9 / rate);
}

bool
loadgen_rate_ok (double achieved, double target)
{
    return target <= 0 || achieved >= (1.0 - LOADGEN_RATE_SHORTAGE) * target;
}

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void
loadgen_sort_i64 (int64_t *v, int64_t n)
{
    if (n > 1)
        qsort (v, (size_t)n, sizeof *v, s_cmp_i64);
}

double
loadgen_pct_ms (const int64_t *sorted_us, int64_t n, double p)
{
    if (n == 0)
        return 0;
    int64_t k = (int64_t)ceil (p * (double)n) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return (double)sorted_us[k] / 1000.0;
}
