/*
 * bgnbd: maximum-likelihood fit and predictions of the BG/NBD model.
 *
 * The fit works on distinct (x, t_x, T) rows with a count each: purchase
 * dates are whole days, so a shop's customers share few distinct rows
 * (every one-time buyer acquired on the same day is the same row), and the
 * likelihood is a weighted sum over rows. Rows are sorted by x, so the terms
 * that depend on x alone (log-gammas, digammas) are computed once per
 * distinct x and the inner loop costs two logs and one exp per row.
 *
 * With many rows the starting points are first tried on a stratified
 * subsample (every k-th row in x order); the best of them is then polished
 * on all rows, starting from the subsample's inverse-Hessian estimate. The
 * objective is the mean log-likelihood per customer, so the two have the
 * same scale and the estimate carries over.
 */
#include "bgnbd.h"

#include "optim.h"
#include "specfun.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Above this many distinct rows the starts are screened on a subsample. */
#define SUBSAMPLE_ROWS 20000

/* Screening runs stop at this gradient; only the winner is polished. */
#define SCREEN_GTOL 1e-5

/* Width of the interval around a removable singularity of the closed form
 * (a = 1, or a + b = 1 when x = 0) that is bridged by interpolation. */
#define SINGULAR_DELTA 1e-5

typedef struct {
    double x;     /* repeat purchases of this group */
    size_t start; /* first row */
    size_t end;   /* one past the last row */
    double w;     /* customers in the group */
} s_group_t;

typedef struct {
    size_t rows;
    double *t_x; /* per row */
    double *T;
    double *w; /* customers sharing the row */
    size_t ngroups;
    s_group_t *groups;
    double total_w;
} s_data_t;

typedef struct {
    double x, t_x, T, w;
} s_row_t;

static void
s_data_free (s_data_t *d)
{
    free (d->t_x);
    free (d->T);
    free (d->w);
    free (d->groups);
    memset (d, 0, sizeof *d);
}

static uint64_t
s_hash3 (double x, double t_x, double T)
{
    uint64_t k[3];
    memcpy (&k[0], &x, 8);
    memcpy (&k[1], &t_x, 8);
    memcpy (&k[2], &T, 8);
    uint64_t h = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 3; i++) {
        h ^= k[i];
        h *= 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    return h;
}

static int
s_row_cmp (const void *pa, const void *pb)
{
    const s_row_t *a = pa;
    const s_row_t *b = pb;
    if (a->x != b->x)
        return a->x < b->x ? -1 : 1;
    if (a->T != b->T)
        return a->T < b->T ? -1 : 1;
    if (a->t_x != b->t_x)
        return a->t_x < b->t_x ? -1 : 1;
    return 0;
}

/* Collapses customers into distinct rows sorted by x, then T, then t_x. */
static int
s_data_build (const double *x, const double *t_x, const double *T, size_t n, s_data_t *d)
{
    int rc = -1;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    s_row_t *table = calloc (cap, sizeof *table);
    s_row_t *rows = NULL;
    if (!table)
        goto cleanup;
    /* w = 0 marks an empty slot. */
    size_t nrows = 0;
    for (size_t i = 0; i < n; i++) {
        double tx = x[i] > 0 ? t_x[i] : 0; /* t_x means nothing when x = 0 */
        size_t slot = s_hash3 (x[i], tx, T[i]) & (cap - 1);
        while (table[slot].w > 0 &&
               !(table[slot].x == x[i] && table[slot].t_x == tx && table[slot].T == T[i]))
            slot = (slot + 1) & (cap - 1);
        if (table[slot].w == 0) {
            table[slot] = (s_row_t){x[i], tx, T[i], 0};
            nrows++;
        }
        table[slot].w += 1;
    }
    rows = malloc (nrows * sizeof *rows);
    if (!rows)
        goto cleanup;
    size_t k = 0;
    for (size_t i = 0; i < cap; i++)
        if (table[i].w > 0)
            rows[k++] = table[i];
    qsort (rows, nrows, sizeof *rows, s_row_cmp);

    memset (d, 0, sizeof *d);
    d->rows = nrows;
    d->t_x = malloc (nrows * sizeof (double));
    d->T = malloc (nrows * sizeof (double));
    d->w = malloc (nrows * sizeof (double));
    size_t ngroups = 0;
    for (size_t i = 0; i < nrows; i++)
        if (i == 0 || rows[i].x != rows[i - 1].x)
            ngroups++;
    d->groups = calloc (ngroups, sizeof *d->groups);
    if (!d->t_x || !d->T || !d->w || !d->groups) {
        s_data_free (d);
        goto cleanup;
    }
    size_t g = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (i > 0 && rows[i].x != rows[i - 1].x)
            g++;
        if (d->groups[g].end == 0) {
            d->groups[g].x = rows[i].x;
            d->groups[g].start = i;
        }
        d->groups[g].end = i + 1;
        d->groups[g].w += rows[i].w;
        d->t_x[i] = rows[i].t_x;
        d->T[i] = rows[i].T;
        d->w[i] = rows[i].w;
        d->total_w += rows[i].w;
    }
    d->ngroups = ngroups;
    rc = 0;
cleanup:
    free (table);
    free (rows);
    return rc;
}

/* Every k-th row, groups kept in order: a sample stratified by x. */
static int
s_data_subsample (const s_data_t *src, size_t k, s_data_t *d)
{
    memset (d, 0, sizeof *d);
    size_t cap = src->rows / k + src->ngroups + 1;
    d->t_x = malloc (cap * sizeof (double));
    d->T = malloc (cap * sizeof (double));
    d->w = malloc (cap * sizeof (double));
    d->groups = calloc (src->ngroups, sizeof *d->groups);
    if (!d->t_x || !d->T || !d->w || !d->groups) {
        s_data_free (d);
        return -1;
    }
    size_t out = 0;
    for (size_t g = 0; g < src->ngroups; g++) {
        const s_group_t *sg = &src->groups[g];
        s_group_t *dg = &d->groups[d->ngroups];
        dg->x = sg->x;
        dg->start = out;
        /* Start each group at its middle offset so that small groups (the
         * rare heavy buyers) are represented too. */
        for (size_t i = sg->start + (sg->end - sg->start) % k / 2; i < sg->end; i += k) {
            d->t_x[out] = src->t_x[i];
            d->T[out] = src->T[i];
            d->w[out] = src->w[i];
            dg->w += src->w[i];
            d->total_w += src->w[i];
            out++;
        }
        dg->end = out;
        if (dg->end > dg->start)
            d->ngroups++;
    }
    d->rows = out;
    return 0;
}

/* Sum of w * loglik over the data and its gradient in (r, alpha, a, b). */
static double
s_loglik_data (const churn_bgnbd_params_t *p, const s_data_t *d, double grad[4])
{
    double r = p->r, alpha = p->alpha, a = p->a, b = p->b;
    double la = log (alpha), lna = log (a);
    double lg_r = churn_specfun_lgamma (r), lg_b = churn_specfun_lgamma (b),
           lg_ab = churn_specfun_lgamma (a + b);
    double ps_r = churn_specfun_digamma (r), ps_b = churn_specfun_digamma (b),
           ps_ab = churn_specfun_digamma (a + b);
    double ll = 0, g_r = 0, g_al = 0, g_a = 0, g_b = 0;

    for (size_t k = 0; k < d->ngroups; k++) {
        const s_group_t *gr = &d->groups[k];
        double x = gr->x;
        double rx = r + x;
        /* Terms of x alone: A1 + A2 in the notation of the paper's note. */
        double base = churn_specfun_lgamma (rx) - lg_r + r * la + lg_ab +
                      churn_specfun_lgamma (b + x) - lg_b - churn_specfun_lgamma (a + b + x);
        double dr_x = churn_specfun_digamma (rx) - ps_r + la;
        double dab_x = ps_ab - churn_specfun_digamma (a + b + x);
        double db_x = dab_x + churn_specfun_digamma (b + x) - ps_b;
        ll += gr->w * base;
        g_r += gr->w * dr_x;
        g_al += gr->w * r / alpha;
        g_a += gr->w * dab_x;
        g_b += gr->w * db_x;

        double s_ll = 0, s_r = 0, s_al = 0, s_wgt = 0;
        if (x == 0) {
            for (size_t i = gr->start; i < gr->end; i++) {
                double lT = log (alpha + d->T[i]);
                s_ll -= d->w[i] * lT;
                s_al -= d->w[i] / (alpha + d->T[i]);
            }
            ll += r * s_ll;
            g_r += s_ll;
            g_al += r * s_al;
            continue;
        }
        double lbx = log (b + x - 1);
        for (size_t i = gr->start; i < gr->end; i++) {
            double w = d->w[i];
            double lT = log (alpha + d->T[i]);
            double ltx = log (alpha + d->t_x[i]);
            /* D = log of (dropped-out term / still-alive term). */
            double D = lna - lbx + rx * (lT - ltx);
            double e = exp (-fabs (D));
            double l1 = (D > 0 ? D : 0) + log1p (e);
            double dead = D > 0 ? 1 / (1 + e) : e / (1 + e); /* 1 - P(alive) */
            double iT = 1 / (alpha + d->T[i]);
            double itx = 1 / (alpha + d->t_x[i]);
            s_ll += w * (l1 - rx * lT);
            s_r += w * (-lT + dead * (lT - ltx));
            s_al += w * rx * (-iT + dead * (iT - itx));
            s_wgt += w * dead;
        }
        ll += s_ll;
        g_r += s_r;
        g_al += s_al;
        g_a += s_wgt / a;
        g_b -= s_wgt / (b + x - 1);
    }
    if (grad) {
        grad[0] = g_r;
        grad[1] = g_al;
        grad[2] = g_a;
        grad[3] = g_b;
    }
    return ll;
}

/* The optimiser's objective: minus the mean log-likelihood, in log-params. */
static double
s_objective (const double *theta, double *grad, void *arg)
{
    const s_data_t *d = arg;
    churn_bgnbd_params_t p = {exp (theta[0]), exp (theta[1]), exp (theta[2]), exp (theta[3])};
    if (!(p.r > 0 && p.alpha > 0 && p.a > 0 && p.b > 0) || !isfinite (p.r) || !isfinite (p.alpha) ||
        !isfinite (p.a) || !isfinite (p.b))
        return INFINITY;
    double g[4];
    double ll = s_loglik_data (&p, d, g);
    grad[0] = -g[0] * p.r / d->total_w;
    grad[1] = -g[1] * p.alpha / d->total_w;
    grad[2] = -g[2] * p.a / d->total_w;
    grad[3] = -g[3] * p.b / d->total_w;
    for (int i = 0; i < 4; i++)
        if (!isfinite (grad[i]))
            return INFINITY;
    return -ll / d->total_w;
}

double
churn_bgnbd_loglik (const churn_bgnbd_params_t *p, double x, double t_x, double T)
{
    double r = p->r, alpha = p->alpha, a = p->a, b = p->b;
    double A = churn_specfun_lgamma (r + x) - churn_specfun_lgamma (r) + r * log (alpha) +
               churn_specfun_lgamma (a + b) + churn_specfun_lgamma (b + x) -
               churn_specfun_lgamma (b) - churn_specfun_lgamma (a + b + x) -
               (r + x) * log (alpha + T);
    if (x <= 0)
        return A;
    double D = log (a) - log (b + x - 1) + (r + x) * (log (alpha + T) - log (alpha + t_x));
    return A + churn_specfun_log1pexp (D);
}

double
churn_bgnbd_loglik_sum (const churn_bgnbd_params_t *p, const double *x, const double *t_x,
                        const double *T, size_t n, double grad[4])
{
    s_data_t d;
    if (s_data_build (x, t_x, T, n, &d) != 0)
        return NAN;
    double g[4];
    double ll = s_loglik_data (p, &d, g);
    if (grad) {
        grad[0] = g[0] * p->r;
        grad[1] = g[1] * p->alpha;
        grad[2] = g[2] * p->a;
        grad[3] = g[3] * p->b;
    }
    s_data_free (&d);
    return ll;
}

static int
s_check (const double *x, const double *t_x, const double *T, size_t n, size_t *repeaters,
         char *err, size_t errlen)
{
    *repeaters = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (!isfinite (x[i]) || !isfinite (t_x[i]) || !isfinite (T[i]))
            why = "a value is not a finite number";
        else if (x[i] < 0 || x[i] != floor (x[i]))
            why = "frequency must be a whole number >= 0";
        else if (T[i] < 0 || t_x[i] < 0)
            why = "recency and T must be >= 0";
        else if (t_x[i] > T[i])
            why = "recency is greater than T";
        if (why) {
            snprintf (err, errlen, "row %zu: %s", i + 1, why);
            return -1;
        }
        if (x[i] > 0)
            (*repeaters)++;
    }
    return 0;
}

int
churn_bgnbd_fit (const double *x, const double *t_x, const double *T, size_t n,
                 const churn_bgnbd_opts_t *opts, churn_bgnbd_fit_t *fit, char *err, size_t errlen)
{
    int rc = -1;
    s_data_t data = {0}, sub = {0};
    memset (fit, 0, sizeof *fit);
    if (n == 0) {
        snprintf (err, errlen, "no customers to fit");
        return -1;
    }
    size_t repeaters;
    if (s_check (x, t_x, T, n, &repeaters, err, errlen) != 0)
        return -1;
    if (repeaters == 0) {
        snprintf (err, errlen,
                  "nobody made a repeat purchase: the BG/NBD model has no estimate "
                  "(the likelihood grows as the purchase rate goes to zero)");
        return -1;
    }
    if (s_data_build (x, t_x, T, n, &data) != 0) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    int starts = opts && opts->starts > 0 ? opts->starts : 3;
    int max_iter = opts && opts->max_iterations > 0 ? opts->max_iterations : 300;
    double gtol = opts && opts->gtol > 0 ? opts->gtol : 1e-9;

    const s_data_t *screen = &data;
    if (data.rows > SUBSAMPLE_ROWS) {
        if (s_data_subsample (&data, data.rows / SUBSAMPLE_ROWS + 1, &sub) != 0) {
            snprintf (err, errlen, "out of memory");
            goto cleanup;
        }
        screen = &sub;
    }

    /* Starts around the observed repeat rate m: lambda has mean r / alpha. */
    double sx = 0, sT = 0;
    for (size_t i = 0; i < n; i++) {
        sx += x[i];
        sT += T[i];
    }
    double m = sT > 0 ? sx / sT : 1;
    static const double start_table[][4] = {
        {1.0, 1.0, 1.0, 1.0}, {0.3, 0.3, 0.5, 3.0}, {3.0, 3.0, 2.0, 8.0}, {0.1, 0.1, 0.1, 0.1}};
    int nstart_table = sizeof start_table / sizeof start_table[0];

    double best[4] = {0};
    double best_f = INFINITY;
    churn_optim_result_t best_res = {0};
    churn_optim_opts_t screen_opts = {.max_iterations = max_iter, .gtol = SCREEN_GTOL};
    for (int s = 0; s < starts; s++) {
        const double *st = start_table[s % nstart_table];
        /* Beyond the table, spread further starts by scaling the rate. */
        double spread = pow (3.0, s / nstart_table);
        double theta[4] = {log (st[0]), log (st[1] / m * spread), log (st[2]), log (st[3])};
        churn_optim_result_t res;
        int orc = churn_optim_bfgs (4, theta, s_objective, (void *)screen, &screen_opts, &res);
        fit->evaluations += res.evaluations;
        if (orc >= 0 && res.f < best_f) {
            best_f = res.f;
            memcpy (best, theta, sizeof best);
            best_res = res;
        }
    }
    if (!isfinite (best_f)) {
        snprintf (err, errlen, "the likelihood could not be evaluated at any starting point");
        goto cleanup;
    }
    churn_optim_opts_t polish_opts = {
        .max_iterations = max_iter, .gtol = gtol, .hinv0 = best_res.hinv};
    churn_optim_result_t res;
    if (churn_optim_bfgs (4, best, s_objective, &data, &polish_opts, &res) < 0) {
        snprintf (err, errlen, "the likelihood could not be evaluated at the estimate");
        goto cleanup;
    }
    fit->params =
        (churn_bgnbd_params_t){exp (best[0]), exp (best[1]), exp (best[2]), exp (best[3])};
    fit->log_likelihood = -res.f * data.total_w;
    fit->iterations = (screen == &data ? best_res.iterations : 0) + res.iterations;
    fit->evaluations += res.evaluations;
    fit->converged = res.converged;
    fit->gradient_norm = res.gnorm;
    fit->customers = n;
    fit->repeat_customers = repeaters;
    rc = 0;
cleanup:
    s_data_free (&data);
    s_data_free (&sub);
    return rc;
}

double
churn_bgnbd_p_alive (const churn_bgnbd_params_t *p, double x, double t_x, double T)
{
    if (x <= 0)
        return 1;
    /* log of (dropped-out term / alive term); log1p keeps (alpha+T)/(alpha+t_x)
     * exact when T - t_x is small. */
    double D = log (p->a) - log (p->b + x - 1) + (p->r + x) * log1p ((T - t_x) / (p->alpha + t_x));
    if (D > 0) {
        double e = exp (-D);
        return e / (1 + e);
    }
    return 1 / (1 + exp (D));
}

/* The closed form of E[Y(t) | alive] away from its removable singularities.
 *
 * Paper, equation 10, without the P(alive) denominator:
 *   (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
 * with z = t/(alpha+T+t). Euler's transformation turns the power times 2F1
 * into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose 2F1 stays bounded as
 * z -> 1 and for large x (where the original overflows: lifetimes switches
 * to the same form when it does). With e = a-1 and F - 1 computed apart:
 *   1 - (1-z)^e F = -expm1(e L) - (1-z)^e (F - 1),   L = log(1-z). */
static double
s_if_alive_raw (double r, double alpha, double a, double b, double x, double T, double t)
{
    double c = a + b + x - 1;
    double e = a - 1;
    double z = t / (alpha + T + t);
    double L = -log1p (t / (alpha + T));
    double F = churn_specfun_hyp2f1 (a + b - 1 - r, e, c, z);
    double pw = exp (e * L);
    double one_minus = -expm1 (e * L) - pw * (F - 1);
    return c / e * one_minus;
}

static double
s_if_alive_b (double r, double alpha, double a, double b, double x, double T, double t)
{
    if (x == 0 && fabs (a + b - 1) < SINGULAR_DELTA) {
        /* c = a + b - 1 = 0: interpolate between b on either side. */
        double b1 = fmax (1 - a - SINGULAR_DELTA, 0.5 * b);
        double b2 = 1 - a + SINGULAR_DELTA;
        double v1 = s_if_alive_raw (r, alpha, a, b1, x, T, t);
        double v2 = s_if_alive_raw (r, alpha, a, b2, x, T, t);
        return v1 + (v2 - v1) * (b - b1) / (b2 - b1);
    }
    return s_if_alive_raw (r, alpha, a, b, x, T, t);
}

double
churn_bgnbd_expected_if_alive (const churn_bgnbd_params_t *p, double x, double T, double t)
{
    if (!(t > 0))
        return 0;
    double r = p->r, alpha = p->alpha, a = p->a, b = p->b;
    if (fabs (a - 1) < SINGULAR_DELTA) {
        /* (a+b+x-1)/(a-1) [1 - ...] is 0/0 at a = 1 but smooth in a: take
         * the straight line through a = 1 -+ delta (error ~ delta^2). */
        double a1 = 1 - SINGULAR_DELTA, a2 = 1 + SINGULAR_DELTA;
        double v1 = s_if_alive_b (r, alpha, a1, b, x, T, t);
        double v2 = s_if_alive_b (r, alpha, a2, b, x, T, t);
        return v1 + (v2 - v1) * (a - a1) / (a2 - a1);
    }
    return s_if_alive_b (r, alpha, a, b, x, T, t);
}

double
churn_bgnbd_expected (const churn_bgnbd_params_t *p, double x, double t_x, double T, double t)
{
    return churn_bgnbd_p_alive (p, x, t_x, T) * churn_bgnbd_expected_if_alive (p, x, T, t);
}

double
churn_bgnbd_population_expected (const churn_bgnbd_params_t *p, double t)
{
    /* A new customer is alive, has x = 0 and has been observed for T = 0. */
    return churn_bgnbd_expected_if_alive (p, 0, 0, t);
}

double
churn_bgnbd_pmf (const churn_bgnbd_params_t *p, double t, unsigned n)
{
    double r = p->r, alpha = p->alpha, a = p->a, b = p->b;
    if (!(t > 0))
        return n == 0 ? 1 : 0;
    double lp = -log1p (t / alpha); /* log(alpha / (alpha + t)) */
    double lq = log (t / (alpha + t));
    double lbab = churn_specfun_lbeta (a, b);
    /* The negative binomial pmf of the purchases of an active customer. */
    double lg_r = churn_specfun_lgamma (r);
    double nb_n = exp (churn_specfun_lgamma (r + n) - lg_r - churn_specfun_lgamma (n + 1.0) +
                       r * lp + n * lq);
    double alive = exp (churn_specfun_lbeta (a, b + n) - lbab) * nb_n;
    if (n == 0)
        return alive;
    /* Dropped out after the n-th purchase: needs at least n purchases
     * before dropping, P(NB >= n). Sum the smaller side to avoid 1 - 1. */
    double cdf = 0;
    double term = exp (r * lp); /* j = 0 */
    for (unsigned j = 0; j < n; j++) {
        cdf += term;
        term *= (r + j) / (j + 1.0) * exp (lq);
    }
    double tail;
    if (cdf < 0.5)
        tail = 1 - cdf;
    else {
        tail = 0;
        double q = exp (lq);
        for (unsigned j = n; j < n + 100000; j++) {
            tail += term;
            if (term < 1e-17 * tail && (r + j) / (j + 1.0) * q < 1)
                break;
            term *= (r + j) / (j + 1.0) * q;
        }
    }
    return alive + exp (churn_specfun_lbeta (a + 1, b + n - 1) - lbab) * tail;
}
