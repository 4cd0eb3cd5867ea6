/*
 * estimate: retain's own delivery estimate, learned per carrier and lane
 * from the parcels already delivered, and the early warning that a
 * parcel will likely miss the date the shop promised.
 *
 * A carrier's own expected date tends to move only once the parcel is
 * already late; the shop wants to hear "likely late" while it can still
 * tell the customer first. trackerd learns how long each lane (carrier,
 * origin city, destination city) really takes and, for a parcel not yet
 * delivered, asks: given that it has been on its way this long, when will
 * it arrive, and how likely is it to arrive after the promise?
 *
 * The model. ln(transit hours) on a lane is taken as normal, so transit
 * times are log-normal: a parcel's time is the product of many stage
 * delays (collection, sorting, line haul, the last mile), skewed right
 * with a long tail, and the log-normal is the usual fit for parcel
 * networks. A lane's state is then three sufficient statistics (n, mean,
 * m2 of ln hours), updated one delivery at a time: PostgreSQL keeps one
 * row per lane and updates it in the transaction that records a delivery,
 * with nothing kept per parcel and nothing refitted.
 *
 * The formulas, with x = ln(transit hours) from estimate_sample, so that
 * an UPDATE statement does exactly what this file does:
 *   add x:      n' = n + 1
 *               d  = x - mean
 *               mean' = mean + d / n'
 *               m2'   = m2 + d * (x - mean')              (Welford)
 *   merge a, b: n  = na + nb
 *               d  = mean_b - mean_a
 *               mean = mean_a + d * nb / n
 *               m2   = m2_a + m2_b + d * d * na * nb / n  (Chan et al.)
 *   spread:     sd = sqrt (m2 / (n - 1)), at least ESTIMATE_SD_FLOOR.
 * A rebuild from the deliveries themselves is n = count(x), mean = avg(x),
 * m2 = coalesce(var_samp(x) * (count(x) - 1), 0).
 *
 * The statistics never forget: a lane whose times change (a peak season,
 * a new hub) follows at a weight of 1/n per delivery. An exponentially
 * weighted form of the same three numbers would follow faster; that is
 * for when real lanes show the need.
 *
 * The estimate. Unconditionally the expected delivery is shipped_at +
 * exp(mean), the median; the spread is p10 to p90, exp(mean -+ 1.2816 sd).
 * For a parcel still on its way at now, everything is conditional on
 * T > elapsed (elapsed = now - shipped_at): the expected date is the
 * median of T given T > elapsed, so a parcel older than its lane's median
 * moves later instead of staying in the past, and the spread is the
 * conditional p10 and p90. The chance of missing the promise is
 *   P(T > promise - shipped | T > elapsed) = S(promise - shipped) / S(elapsed),
 * S the log-normal survival (erfc), computed in logarithms so that a
 * parcel far past its lane's times still gets a number. The parameters
 * are used as estimated (no widening for their own uncertainty): with the
 * 20 deliveries a lane needs, that would widen p10..p90 by about 6%.
 *
 * What the log-normal cannot know: its tail is thin, so for a parcel far
 * past its lane's p90 it answers "any moment now" (the conditional median
 * a little after now). Once its promise has passed as well, that alone
 * makes it at risk (probability 1).
 *
 * The fallback. A lane with fewer than ESTIMATE_MIN_SAMPLES deliveries
 * says too little; the caller then uses (carrier, *, destination), then
 * (carrier, *, *): the same statistics, learned over every origin (and
 * every destination). estimate_pick is that rule. A wide lane mixes lanes
 * of different lengths, so its spread is wider, which is the honest
 * answer for a lane never seen.
 *
 * Everything here is pure: no I/O, no clock, no PostgreSQL; times are
 * unix milliseconds.
 */
#ifndef TRACKER_ESTIMATE_H
#define TRACKER_ESTIMATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deliveries a lane needs before it is used. */
#define ESTIMATE_MIN_SAMPLES 20
/* A longer transit is a data error (or a lost parcel found), not a lane. */
#define ESTIMATE_MAX_TRANSIT_MS (120LL * 24 * 3600 * 1000)
/* The least sd of ln(hours) used: a lane whose deliveries all took the
 * same time (a tiny or synthetic one) would otherwise claim certainty and
 * divide by zero; 0.05 is about +-6% around the median at p10..p90. */
#define ESTIMATE_SD_FLOOR 0.05

/* A lane's learned state; all zero is a lane with nothing learned. */
typedef struct {
    int64_t n;   /* deliveries learned */
    double mean; /* their mean ln(transit hours) */
    double m2;   /* the sum of their squared differences from mean */
} estimate_lane_t;

/* A parcel's estimate (estimate_predict). */
typedef struct {
    int64_t at_ms;           /* the expected delivery: the median, given not delivered by now */
    int64_t low_ms;          /* p10 of the delivery, given the same */
    int64_t high_ms;         /* p90 */
    double miss_probability; /* the chance of delivery after the promise; 0 with none */
    bool at_risk;            /* a promise is set and miss_probability >= the threshold */
} estimate_t;

/* The value a delivery adds to its lane, x = ln(transit hours), into *x;
 * false (and *x untouched) when transit_ms is not positive or longer than
 * ESTIMATE_MAX_TRANSIT_MS: a clock error or a lost parcel found, which the
 * lane must not learn. The SQL side passes *x as the update's parameter. */
bool estimate_sample (int64_t transit_ms, double *x);

/* Learns one delivery that took transit_ms (delivered_at - shipped_at)
 * into lane; false, lane unchanged, when estimate_sample refuses it. */
bool estimate_lane_add (estimate_lane_t *lane, int64_t transit_ms);

/* Adds everything other learned into into (other is unchanged): the same
 * lane as adding other's deliveries one by one, up to rounding. */
void estimate_lane_merge (estimate_lane_t *into, const estimate_lane_t *other);

/* The lane learned from count deliveries at once (two passes, for tests
 * and rebuilds) into *out; refused durations are skipped as in
 * estimate_lane_add. */
void estimate_lane_compute (estimate_lane_t *out, const int64_t *transit_ms, size_t count);

/* The lane to estimate with: the parcel's own lane, else its (carrier, *,
 * destination), else its (carrier, *, *), the first with at least
 * min_samples deliveries (values below 2 read as 2); NULL when none has.
 * Any argument may be NULL (no row for it). Returns one of the arguments. */
const estimate_lane_t *estimate_pick (const estimate_lane_t *lane,
                                      const estimate_lane_t *to_destination,
                                      const estimate_lane_t *carrier, int64_t min_samples);

/* The estimate for a parcel shipped at shipped_at_ms and not delivered by
 * now_ms (a now before shipping reads as at shipping), promised by
 * promised_by_ms (0: no promise), into *out. miss_probability is 1 when
 * the promise is already at or before now (or before the shipping), 0
 * with no promise (never at risk then); at_risk when miss_probability >=
 * risk_threshold. low_ms <= at_ms <= high_ms, all at or after now. 0, or -1
 * and *out zeroed when lane cannot estimate: NULL, n < 2, or values no
 * learning could produce (NaN, negative m2, a mean outside the transit
 * times estimate_sample accepts). Dates saturate at the int64 range. */
int estimate_predict (const estimate_lane_t *lane, int64_t shipped_at_ms, int64_t now_ms,
                      int64_t promised_by_ms, double risk_threshold, estimate_t *out);

#endif
