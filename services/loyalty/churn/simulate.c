/*
 * simulate: the BG/NBD and Gamma-Gamma data-generating process.
 */
#include "simulate.h"

#include <math.h>

static uint64_t
s_rotl (uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
s_splitmix (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void
churn_simulate_seed (churn_simulate_rng_t *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = s_splitmix (&seed);
}

static uint64_t
s_next (churn_simulate_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl (s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl (s[3], 45);
    return result;
}

double
churn_simulate_uniform (churn_simulate_rng_t *rng)
{
    /* 53 random bits, shifted by half a step so 0 never comes out. */
    return ((double)(s_next (rng) >> 11) + 0.5) * 0x1.0p-53;
}

static double
s_normal (churn_simulate_rng_t *rng)
{
    /* Marsaglia's polar method; the second value is dropped for simplicity. */
    for (;;) {
        double u = 2 * churn_simulate_uniform (rng) - 1;
        double v = 2 * churn_simulate_uniform (rng) - 1;
        double s = u * u + v * v;
        if (s > 0 && s < 1)
            return u * sqrt (-2 * log (s) / s);
    }
}

double
churn_simulate_gamma (churn_simulate_rng_t *rng, double shape, double scale)
{
    if (shape < 1) {
        /* Gamma(k) = Gamma(k + 1) * U^(1/k). */
        double u = churn_simulate_uniform (rng);
        return churn_simulate_gamma (rng, shape + 1, scale) * pow (u, 1 / shape);
    }
    double d = shape - 1.0 / 3, c = 1 / sqrt (9 * d);
    for (;;) {
        double x = s_normal (rng);
        double v = 1 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = churn_simulate_uniform (rng);
        if (log (u) < 0.5 * x * x + d - d * v + d * log (v))
            return d * v * scale;
    }
}

churn_summary_t *
churn_simulate_customers (const churn_simulate_opts_t *o, size_t n, uint64_t seed)
{
    bool money = o->spend.v > 0;
    churn_summary_t *s = churn_summary_new (n, money ? CHURN_SUMMARY_MONEY : 0, o->unit_days);
    if (!s)
        return NULL;
    churn_simulate_rng_t rng;
    churn_simulate_seed (&rng, seed);
    const churn_bgnbd_params_t *bg = &o->bgnbd;
    double res = o->resolution;
    for (size_t i = 0; i < n; i++) {
        double lambda = churn_simulate_gamma (&rng, bg->r, 1 / bg->alpha);
        double g1 = churn_simulate_gamma (&rng, bg->a, 1);
        double g2 = churn_simulate_gamma (&rng, bg->b, 1);
        double p = g1 / (g1 + g2);
        double nu = money ? churn_simulate_gamma (&rng, o->spend.q, 1 / o->spend.v) : 1;
        double T = o->T_min + (o->T_max - o->T_min) * churn_simulate_uniform (&rng);
        if (res > 0)
            T = floor (T / res) * res;
        double revenue = money ? churn_simulate_gamma (&rng, o->spend.p, 1 / nu) : 0;
        double repeat_value = 0;
        double t = 0, t_x = 0, x = 0;
        double slot = 0; /* time of the last recorded purchase slot */
        for (;;) {
            t += -log (churn_simulate_uniform (&rng)) / lambda;
            if (!(t <= T))
                break;
            double value = money ? churn_simulate_gamma (&rng, o->spend.p, 1 / nu) : 0;
            double at = res > 0 ? floor (t / res) * res : t;
            if (res > 0 && at == slot) {
                /* Same day as the previous purchase: one transaction. */
                revenue += value;
                if (x > 0)
                    repeat_value += value;
            } else {
                x += 1;
                t_x = at;
                slot = at;
                revenue += value;
                repeat_value += value;
            }
            if (churn_simulate_uniform (&rng) < p)
                break;
        }
        s->frequency[i] = x;
        s->recency[i] = t_x;
        s->T[i] = T;
        if (money) {
            s->monetary[i] = x > 0 ? repeat_value / x : 0;
            s->revenue[i] = revenue;
        }
    }
    return s;
}
