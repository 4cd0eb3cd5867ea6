/*
 * simulate: customers drawn from the BG/NBD process with Gamma-Gamma spend,
 * for testing that the fits recover known parameters and for benchmarks.
 *
 * Each customer gets lambda ~ Gamma(r, rate alpha), a dropout probability
 * p ~ Beta(a, b) and nu ~ Gamma(q, rate v); an age T uniform in
 * [T_min, T_max]; then purchases at exponential gaps of mean 1 / lambda up
 * to T, dropping out after each repeat purchase with probability p. Every
 * purchase, the first included, is worth Gamma(p_spend, rate nu).
 *
 * With resolution > 0 times are whole multiples of it, as dates are whole
 * days: T is rounded down, a purchase belongs to the slot it falls in and
 * purchases in one slot merge into one (values summed), exactly as the
 * summaries of real transactions are built.
 *
 * The generator is xoshiro256** seeded through splitmix64: the same seed
 * gives the same customers on every machine.
 */
#ifndef LOYALTY_CHURN_SIMULATE_H
#define LOYALTY_CHURN_SIMULATE_H

#include "bgnbd.h"
#include "gammagamma.h"
#include "summary.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} churn_simulate_rng_t;

typedef struct {
    churn_bgnbd_params_t bgnbd;      /* the purchase and dropout process */
    churn_gammagamma_params_t spend; /* spend; v = 0 leaves the money arrays NULL */
    double T_min, T_max;             /* range of customer ages */
    double resolution;               /* 0 for continuous times */
    double unit_days;                /* recorded in the summary */
} churn_simulate_opts_t;

void churn_simulate_seed (churn_simulate_rng_t *rng, uint64_t seed);

/* Uniform in (0, 1). */
double churn_simulate_uniform (churn_simulate_rng_t *rng);

/* Gamma with the given shape and scale (Marsaglia & Tsang 2000). */
double churn_simulate_gamma (churn_simulate_rng_t *rng, double shape, double scale);

/* n simulated customers (without ids). NULL when out of memory. */
churn_summary_t *churn_simulate_customers (const churn_simulate_opts_t *opts, size_t n,
                                           uint64_t seed);

#endif
