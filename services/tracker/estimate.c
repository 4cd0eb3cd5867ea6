/*
 * estimate: the lane statistics and the conditional log-normal estimate
 * (estimate.h has the model and the formulas).
 *
 * Everything conditional is a ratio of survivals, S(a) / S(b), taken in
 * logarithms: on a tight lane, a parcel checked long after the lane's
 * usual time has a survival below what a double holds (a 36 h lane at
 * the sd floor, checked at 30 days, is 60 sd out: S = 1e-784), and the
 * ratio of two underflowed numbers is NaN. ln S is erfc's logarithm where
 * erfc is representable and the asymptotic series of the normal tail
 * beyond; the quantiles invert ln S by Newton's method, which cannot
 * overshoot twice because ln S is concave (the normal is log-concave).
 */
#include "estimate.h"

#include <math.h>
#include <string.h>

#define HOUR_MS 3600000.0

/* ln Q(z), Q the standard normal's upper tail 1 - Phi(z). Past z = 30,
 * where erfc is near its underflow, the asymptotic series
 * Q(z) = phi(z) / z * (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8 ...), whose
 * first omitted term is below 2e-12 there. */
static double
s_log_upper (double z)
{
    double r;
    if (z < 30)
        return log (0.5 * erfc (z / M_SQRT2));
    r = 1 / (z * z);
    return -0.5 * z * z - log (z) - 0.5 * log (2 * M_PI) +
           log1p (r * (-1 + r * (3 + r * (-15 + r * 105))));
}

/* The z with ln Q(z) = log_p, for log_p < 0. The start is Abramowitz and
 * Stegun 26.2.23 (error below 4.5e-4); Newton on the concave ln Q then
 * lands right of the root after one step and decreases to it. */
static double
s_upper_inverse (double log_p)
{
    double t, z;
    int i;

    if (log_p < -M_LN2)
        t = sqrt (-2 * log_p);
    else
        t = sqrt (-2 * log (-expm1 (log_p))); /* the lower tail, 1 - p <= 1/2 */
    z = t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                (1 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
    if (log_p >= -M_LN2)
        z = -z;
    for (i = 0; i < 60; i++) {
        double log_q = s_log_upper (z);
        double slope = -exp (-0.5 * z * z - 0.5 * log (2 * M_PI) - log_q); /* d ln Q / dz */
        double step = (log_q - log_p) / slope;
        if (!isfinite (step))
            break;
        z -= step;
        if (fabs (step) <= 1e-14 * (1 + fabs (z)))
            break;
    }
    return z;
}

bool
estimate_sample (int64_t transit_ms, double *x)
{
    if (transit_ms <= 0 || transit_ms > ESTIMATE_MAX_TRANSIT_MS)
        return false;
    *x = log ((double)transit_ms / HOUR_MS);
    return true;
}

bool
estimate_lane_add (estimate_lane_t *lane, int64_t transit_ms)
{
    double x, d;
    if (!estimate_sample (transit_ms, &x))
        return false;
    lane->n++;
    d = x - lane->mean;
    lane->mean = lane->mean + d / (double)lane->n;
    lane->m2 = lane->m2 + d * (x - lane->mean);
    return true;
}

void
estimate_lane_merge (estimate_lane_t *into, const estimate_lane_t *other)
{
    double na, nb, n, d;
    if (other->n <= 0)
        return;
    if (into->n <= 0) {
        *into = *other;
        return;
    }
    na = (double)into->n;
    nb = (double)other->n;
    n = na + nb;
    d = other->mean - into->mean;
    into->mean = into->mean + d * nb / n;
    into->m2 = into->m2 + other->m2 + d * d * na * nb / n;
    into->n = into->n + other->n;
}

void
estimate_lane_compute (estimate_lane_t *out, const int64_t *transit_ms, size_t count)
{
    estimate_lane_t lane = {0};
    double sum = 0, x;
    size_t i;

    for (i = 0; i < count; i++) {
        if (estimate_sample (transit_ms[i], &x)) {
            lane.n++;
            sum += x;
        }
    }
    if (lane.n > 0) {
        lane.mean = sum / (double)lane.n;
        for (i = 0; i < count; i++) {
            if (estimate_sample (transit_ms[i], &x))
                lane.m2 += (x - lane.mean) * (x - lane.mean);
        }
    }
    *out = lane;
}

const estimate_lane_t *
estimate_pick (const estimate_lane_t *lane, const estimate_lane_t *to_destination,
               const estimate_lane_t *carrier, int64_t min_samples)
{
    const estimate_lane_t *order[3] = {lane, to_destination, carrier};
    size_t i;

    if (min_samples < 2)
        min_samples = 2;
    for (i = 0; i < 3; i++) {
        if (order[i] && order[i]->n >= min_samples)
            return order[i];
    }
    return NULL;
}

/* Whether a lane holds what learning could have made: at least two
 * deliveries, a mean within the accepted transit times, and an m2 no
 * larger than n values within that range allow (n * range^2 / 4). A row
 * damaged in PostgreSQL must give no estimate rather than a wrong one. */
static bool
s_lane_usable (const estimate_lane_t *lane)
{
    double lo = log (1 / HOUR_MS);
    double hi = log ((double)ESTIMATE_MAX_TRANSIT_MS / HOUR_MS);
    double slack = 1e-9;

    if (!lane || lane->n < 2)
        return false;
    if (!isfinite (lane->mean) || !isfinite (lane->m2) || lane->m2 < 0)
        return false;
    if (lane->mean < lo - slack || lane->mean > hi + slack)
        return false;
    return lane->m2 <= (double)lane->n * (hi - lo) * (hi - lo) / 4 * (1 + slack);
}

/* base + hours, in ms, saturating at INT64_MAX (hours >= 0 here). */
static int64_t
s_after (int64_t base, double hours)
{
    double ms = hours * HOUR_MS;
    int64_t offset;

    if (!(ms >= 0))
        ms = 0;
    if (ms >= 9.0e18)
        return INT64_MAX;
    offset = llround (ms);
    if (base > INT64_MAX - offset)
        return INT64_MAX;
    return base + offset;
}

/* The transit hours by which the fraction `share` of the parcels still on
 * their way (ln S(elapsed) = log_s_elapsed) are delivered. */
static double
s_quantile_hours (double mean, double sd, double log_s_elapsed, double share)
{
    double z = s_upper_inverse (log1p (-share) + log_s_elapsed);
    return exp (mean + sd * z);
}

int
estimate_predict (const estimate_lane_t *lane, int64_t shipped_at_ms, int64_t now_ms,
                  int64_t promised_by_ms, double risk_threshold, estimate_t *out)
{
    double sd, elapsed_h, log_s_elapsed = 0;
    double shares[3] = {0.1, 0.5, 0.9};
    int64_t *dates[3];
    size_t i;

    memset (out, 0, sizeof *out);
    if (!s_lane_usable (lane))
        return -1;
    sd = sqrt (lane->m2 / (double)(lane->n - 1));
    if (!(sd >= ESTIMATE_SD_FLOOR))
        sd = ESTIMATE_SD_FLOOR;

    /* In double: now - shipped may not fit an int64. */
    elapsed_h = ((double)now_ms - (double)shipped_at_ms) / HOUR_MS;
    if (elapsed_h > 0)
        log_s_elapsed = s_log_upper ((log (elapsed_h) - lane->mean) / sd);
    else
        elapsed_h = 0;

    dates[0] = &out->low_ms;
    dates[1] = &out->at_ms;
    dates[2] = &out->high_ms;
    for (i = 0; i < 3; i++) {
        double hours = s_quantile_hours (lane->mean, sd, log_s_elapsed, shares[i]);
        /* Mathematically past elapsed already; rounding must not put a
         * parcel still on its way into the past. */
        if (!(hours >= elapsed_h))
            hours = elapsed_h;
        *dates[i] = s_after (shipped_at_ms, hours);
        if (elapsed_h > 0 && *dates[i] < now_ms)
            *dates[i] = now_ms;
    }

    if (promised_by_ms == 0)
        return 0;
    if (promised_by_ms <= now_ms || promised_by_ms <= shipped_at_ms) {
        out->miss_probability = 1;
    } else {
        double promise_h = ((double)promised_by_ms - (double)shipped_at_ms) / HOUR_MS;
        double log_s_promise = s_log_upper ((log (promise_h) - lane->mean) / sd);
        double p = exp (log_s_promise - log_s_elapsed);
        out->miss_probability = p > 1 ? 1 : (p >= 0 ? p : 0);
    }
    out->at_risk = out->miss_probability >= risk_threshold;
    return 0;
}
