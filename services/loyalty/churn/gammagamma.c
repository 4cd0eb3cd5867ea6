/*
 * gammagamma: maximum-likelihood fit of the Gamma-Gamma spend model.
 *
 * The log-likelihood of a customer with x transactions of mean m is
 *   lgamma(px+q) - lgamma(px) - lgamma(q) + q log v + (px-1) log m
 *     + px log x - (px+q) log(x m + v).
 * Customers are grouped by x so the gamma and digamma terms are computed
 * once per distinct x; per customer remain one log and one division. As in
 * bgnbd.c, large inputs screen the starts on a stratified subsample first.
 */
#include "gammagamma.h"

#include "optim.h"
#include "specfun.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBSAMPLE_ROWS 20000
#define SCREEN_GTOL    1e-5
/* q and v are nearly collinear (the mean spend is p v / (q - 1)), so the
 * last digits of the gradient are noisier than in the BG/NBD. */
#define FIT_GTOL 1e-8
#define MAX_ITER 300

typedef struct {
    double x;
    size_t start, end;
    double w;      /* customers in the group */
    double sum_lm; /* sum of log m over them */
} s_group_t;

typedef struct {
    size_t rows;
    double *m; /* per customer, grouped by x */
    size_t ngroups;
    s_group_t *groups;
    double total_w;
} s_data_t;

typedef struct {
    double x, m;
} s_pair_t;

static void
s_data_free (s_data_t *d)
{
    free (d->m);
    free (d->groups);
    memset (d, 0, sizeof *d);
}

static int
s_pair_cmp (const void *pa, const void *pb)
{
    const s_pair_t *a = pa, *b = pb;
    if (a->x != b->x)
        return a->x < b->x ? -1 : 1;
    return (a->m > b->m) - (a->m < b->m);
}

/* Keeps every k-th customer of each group (k = 1: all of them). */
static int
s_data_build (const s_pair_t *pairs, size_t n, size_t k, s_data_t *d)
{
    memset (d, 0, sizeof *d);
    size_t ngroups = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || pairs[i].x != pairs[i - 1].x)
            ngroups++;
    d->m = malloc ((n / k + ngroups + 1) * sizeof (double));
    d->groups = calloc (ngroups + 1, sizeof *d->groups);
    if (!d->m || !d->groups) {
        s_data_free (d);
        return -1;
    }
    size_t out = 0;
    size_t start = 0;
    while (start < n) {
        size_t end = start;
        while (end < n && pairs[end].x == pairs[start].x)
            end++;
        s_group_t *g = &d->groups[d->ngroups];
        g->x = pairs[start].x;
        g->start = out;
        for (size_t i = start + (end - start) % k / 2; i < end; i += k) {
            d->m[out++] = pairs[i].m;
            g->w += 1;
            g->sum_lm += log (pairs[i].m);
        }
        g->end = out;
        d->total_w += g->w;
        if (g->end > g->start)
            d->ngroups++;
        start = end;
    }
    d->rows = out;
    return 0;
}

static double
s_objective (const double *theta, double *grad, void *arg)
{
    const s_data_t *d = arg;
    double p = exp (theta[0]), q = exp (theta[1]), v = exp (theta[2]);
    if (!(p > 0 && q > 0 && v > 0) || !isfinite (p) || !isfinite (q) || !isfinite (v))
        return INFINITY;
    double lv = log (v), lg_q = churn_specfun_lgamma (q), ps_q = churn_specfun_digamma (q);
    double ll = 0, g_p = 0, g_q = 0, g_v = 0;
    for (size_t k = 0; k < d->ngroups; k++) {
        const s_group_t *g = &d->groups[k];
        double x = g->x, px = p * x, lx = log (x);
        double ps_pxq = churn_specfun_digamma (px + q);
        ll += g->w * (churn_specfun_lgamma (px + q) - churn_specfun_lgamma (px) - lg_q + q * lv +
                      px * lx) +
              (px - 1) * g->sum_lm;
        g_p += g->w * x * (ps_pxq - churn_specfun_digamma (px) + lx) + x * g->sum_lm;
        g_q += g->w * (ps_pxq - ps_q + lv);
        g_v += g->w * q / v;
        double s_l = 0, s_i = 0;
        for (size_t i = g->start; i < g->end; i++) {
            double u = x * d->m[i] + v;
            s_l += log (u);
            s_i += 1 / u;
        }
        ll -= (px + q) * s_l;
        g_p -= x * s_l;
        g_q -= s_l;
        g_v -= (px + q) * s_i;
    }
    grad[0] = -g_p * p / d->total_w;
    grad[1] = -g_q * q / d->total_w;
    grad[2] = -g_v * v / d->total_w;
    for (int i = 0; i < 3; i++)
        if (!isfinite (grad[i]))
            return INFINITY;
    return -ll / d->total_w;
}

double
churn_gammagamma_loglik (const churn_gammagamma_params_t *pr, double x, double m)
{
    double p = pr->p, q = pr->q, v = pr->v, px = p * x;
    return churn_specfun_lgamma (px + q) - churn_specfun_lgamma (px) - churn_specfun_lgamma (q) +
           q * log (v) + (px - 1) * log (m) + px * log (x) - (px + q) * log (x * m + v);
}

int
churn_gammagamma_fit (const double *x, const double *m, size_t n, churn_gammagamma_fit_t *fit,
                      char *err, size_t errlen)
{
    int rc = -1;
    s_pair_t *pairs = NULL;
    s_data_t data = {0}, sub = {0};
    memset (fit, 0, sizeof *fit);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite (x[i]) || !isfinite (m[i]) || x[i] < 0 || m[i] < 0) {
            snprintf (err, errlen, "row %zu: frequency and spend must be finite and >= 0", i + 1);
            return -1;
        }
        if (x[i] > 0 && m[i] > 0)
            used++;
    }
    if (used == 0) {
        snprintf (err, errlen,
                  "no customer with a repeat purchase of positive value: the spend model "
                  "has nothing to fit");
        return -1;
    }
    pairs = malloc (used * sizeof *pairs);
    if (!pairs)
        goto oom;
    size_t k = 0;
    double mx = 0, mm = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] > 0 && m[i] > 0) {
            pairs[k++] = (s_pair_t){x[i], m[i]};
            mx += x[i];
            mm += m[i];
        }
    mx /= used;
    mm /= used;
    double sxx = 0, smm = 0, sxm = 0;
    for (size_t i = 0; i < used; i++) {
        sxx += (pairs[i].x - mx) * (pairs[i].x - mx);
        smm += (pairs[i].m - mm) * (pairs[i].m - mm);
        sxm += (pairs[i].x - mx) * (pairs[i].m - mm);
    }
    fit->correlation = sxx > 0 && smm > 0 ? sxm / sqrt (sxx * smm) : 0;
    qsort (pairs, used, sizeof *pairs, s_pair_cmp);
    if (s_data_build (pairs, used, 1, &data) != 0)
        goto oom;
    const s_data_t *screen = &data;
    if (used > SUBSAMPLE_ROWS) {
        if (s_data_build (pairs, used, used / SUBSAMPLE_ROWS + 1, &sub) != 0)
            goto oom;
        screen = &sub;
    }

    /* Starts with the population mean p v / (q - 1) at the sample mean. */
    static const double starts[][2] = {{1.0, 2.0}, {5.0, 4.0}, {0.5, 1.5}};
    double best[3] = {0}, best_f = INFINITY;
    churn_optim_result_t best_res = {0};
    churn_optim_opts_t screen_opts = {.max_iterations = MAX_ITER, .gtol = SCREEN_GTOL};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        double p0 = starts[s][0], q0 = starts[s][1];
        double theta[3] = {log (p0), log (q0), log (mm * (q0 - 1) / p0)};
        churn_optim_result_t res;
        int orc = churn_optim_bfgs (3, theta, s_objective, (void *)screen, &screen_opts, &res);
        fit->evaluations += res.evaluations;
        if (orc >= 0 && res.f < best_f) {
            best_f = res.f;
            memcpy (best, theta, sizeof best);
            best_res = res;
        }
    }
    if (!isfinite (best_f)) {
        snprintf (err, errlen, "the spend likelihood could not be evaluated at any start");
        goto cleanup;
    }
    churn_optim_opts_t polish = {
        .max_iterations = MAX_ITER, .gtol = FIT_GTOL, .hinv0 = best_res.hinv};
    churn_optim_result_t res;
    if (churn_optim_bfgs (3, best, s_objective, &data, &polish, &res) < 0) {
        snprintf (err, errlen, "the spend likelihood could not be evaluated at the estimate");
        goto cleanup;
    }
    fit->params = (churn_gammagamma_params_t){exp (best[0]), exp (best[1]), exp (best[2])};
    fit->log_likelihood = -res.f * data.total_w;
    fit->iterations = (screen == &data ? best_res.iterations : 0) + res.iterations;
    fit->evaluations += res.evaluations;
    fit->converged = res.converged;
    fit->gradient_norm = res.gnorm;
    fit->customers = used;
    rc = 0;
    goto cleanup;
oom:
    snprintf (err, errlen, "out of memory");
cleanup:
    free (pairs);
    s_data_free (&data);
    s_data_free (&sub);
    return rc;
}

int
churn_gammagamma_expected_spend (const churn_gammagamma_params_t *pr, double x, double m,
                                 double *spend)
{
    double den = pr->p * x + pr->q - 1;
    if (!(den > 0))
        return -1;
    *spend = pr->p * (pr->v + x * m) / den;
    return 0;
}
