/*
 * Tests services/loyalty/churn/bgnbd: the BG/NBD fit and predictions.
 *
 * Where each expected value comes from:
 *   - [FHL05] Fader, Hardie & Lee (2005), "Counting your customers the easy
 *     way", Marketing Science 24(2): on CDNOW's 2,357-customer sample
 *     r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4.
 *   - [XLS] Fader, Hardie & Lee, "Implementing the BG/NBD model in Excel"
 *     (brucehardie.com/notes/004), as asserted by the lifetimes library's
 *     tests (tests/test_estimation.py, TestBetaGeoFitter):
 *     E[Y(39) | x=2, t_x=30.43, T=38.86] = 1.226 and E[X(t)] at
 *     t = 0.1429, 1, 3, 31.8571, 32, 78 = 0.0078, 0.0532, 0.1506, 1.0405,
 *     1.0437, 1.8576.
 *   - [BTYD] the BTYD R package's bgnbd.pmf with the paper's parameters,
 *     as asserted by the same lifetimes test file
 *     (test_probability_of_n_purchases_up_to_time_same_as_R_BTYD).
 *   - Independent computations in this file: P(alive) and the conditional
 *     expectation by numerical integration over the posterior of lambda and
 *     p (no gamma, beta nor hypergeometric function involved), E[X(t)] as
 *     the mean of the PMF, the gradient by finite differences, and fits of
 *     data simulated with known parameters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "churn/bgnbd.h"
#include "churn/files.h"
#include "churn/simulate.h"

#define CDNOW_SUMMARY RT_TEST_SOURCE_DIR "/tests/data/cdnow/cdnow_customers_summary.csv"

static const churn_bgnbd_params_t s_paper = {0.243, 4.414, 0.793, 2.426};

static void
s_close (double got, double want, double tol, const char *what)
{
    if (!(fabs (got - want) <= tol))
        fail_msg ("%s: got %.10g, want %.10g (+- %.3g)", what, got, want, tol);
}

static churn_summary_t *
s_cdnow (void)
{
    char err[512];
    churn_summary_t *s = churn_files_read_summary (CDNOW_SUMMARY, 7, err, sizeof err);
    if (!s)
        fail_msg ("%s", err);
    return s;
}

/* Tanh-sinh (double-exponential) quadrature over p in (0, 1) of
 * f(p, 1 - p): exact to about 1e-13 for integrands with algebraic
 * singularities at the ends, like the Beta densities here. Both p and
 * 1 - p are passed so that neither loses precision near its end. */
static double
s_tanh_sinh (double (*f) (double p, double q, const void *arg), const void *arg)
{
    const double h = 1.0 / 64;
    double sum = 0;
    for (int k = -256; k <= 256; k++) {
        double t = k * h;
        double u = M_PI * sinh (t);
        double p = 1 / (1 + exp (-u)), q = 1 / (1 + exp (u));
        double w = h * M_PI * cosh (t) * p * q;
        if (w > 0 && p > 0 && q > 0)
            sum += w * f (p, q, arg);
    }
    return sum;
}

typedef struct {
    churn_bgnbd_params_t p;
    double x, T, t;
    int which; /* 0: alive weight, 1: dropped weight, 2: expected-if-alive numerator */
} s_post_t;

/* The p-part of the posterior: the Beta(a, b) prior density (without
 * B(a,b), which cancels in every ratio below) times the likelihood's
 * (1-p)^x if alive, p (1-p)^(x-1) if dropped after the x-th purchase. */
static double
s_p_integrand (double p, double q, const void *arg)
{
    const s_post_t *s = arg;
    double a = s->p.a, b = s->p.b, x = s->x;
    switch (s->which) {
    case 0:
        return exp ((a - 1) * log (p) + (x + b - 1) * log (q));
    case 1:
        return exp (a * log (p) + (x + b - 2) * log (q));
    default: {
        /* Alive with dropout p and lambda ~ Gamma(r+x, alpha+T): expected
         * purchases in t are (1/p)(1 - E[exp(-lambda p t)]), and that
         * expectation is the Gamma's Laplace transform
         * ((alpha+T)/(alpha+T+p t))^(r+x). */
        double k = s->p.r + x, scale = s->p.alpha + s->T;
        double e = -expm1 (-k * log1p (p * s->t / scale)) / p;
        return e * exp ((a - 1) * log (p) + (x + b - 1) * log (q));
    }
    }
}

typedef struct {
    double r, alpha, x, s, L;
} s_lam_t;

/* The lambda-part: lambda^x exp(-lambda s) times the Gamma(r, alpha) prior
 * density without alpha^r / Gamma(r), over lambda = L p / (1 - p). */
static double
s_lambda_integrand (double p, double q, const void *arg)
{
    const s_lam_t *s = arg;
    double lam = s->L * p / q;
    return exp ((s->x + s->r - 1) * log (lam) - (s->alpha + s->s) * lam + log (s->L) - 2 * log (q));
}

/* P(alive | x, t_x, T) by Bayes over (lambda, p): the alive and dropped
 * likelihood terms each factor into a lambda integral times a p integral. */
static double
s_p_alive_numeric (const churn_bgnbd_params_t *p, double x, double t_x, double T)
{
    s_post_t qa = {*p, x, T, 0, 0}, qd = qa;
    qd.which = 1;
    double L = (x + p->r) / (p->alpha + T);
    s_lam_t la = {p->r, p->alpha, x, T, L}, ld = {p->r, p->alpha, x, t_x, L};
    double alive = s_tanh_sinh (s_p_integrand, &qa) * s_tanh_sinh (s_lambda_integrand, &la);
    double dead = s_tanh_sinh (s_p_integrand, &qd) * s_tanh_sinh (s_lambda_integrand, &ld);
    return alive / (alive + dead);
}

/* E[purchases in (T, T+t] | alive at T] by integration over p. */
static double
s_expected_if_alive_numeric (const churn_bgnbd_params_t *p, double x, double T, double t)
{
    s_post_t num = {*p, x, T, t, 2}, den = num;
    den.which = 0;
    return s_tanh_sinh (s_p_integrand, &num) / s_tanh_sinh (s_p_integrand, &den);
}

static void
test_cdnow_fit_matches_paper (void **state)
{
    (void)state;
    churn_summary_t *s = s_cdnow ();
    assert_int_equal (s->n, 2357);
    churn_bgnbd_fit_t fit;
    char err[256];
    assert_int_equal (
        churn_bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &fit, err, sizeof err), 0);
    assert_true (fit.converged);
    /* [FHL05], to the three decimals published. */
    s_close (round (fit.params.r * 1000) / 1000, 0.243, 1e-12, "r");
    s_close (round (fit.params.alpha * 1000) / 1000, 4.414, 1e-12, "alpha");
    s_close (round (fit.params.a * 1000) / 1000, 0.793, 1e-12, "a");
    s_close (round (fit.params.b * 1000) / 1000, 2.426, 1e-12, "b");
    s_close (fit.log_likelihood, -9582.4, 0.05, "log-likelihood");
    assert_int_equal (fit.customers, 2357);
    assert_int_equal (fit.repeat_customers, 946);
    /* The fit is a maximum: the total log-likelihood at the paper's rounded
     * values is no higher. */
    double ll_paper = churn_bgnbd_loglik_sum (&s_paper, s->frequency, s->recency, s->T, s->n, NULL);
    assert_true (ll_paper <= fit.log_likelihood);

    /* [XLS] conditional expectation and E[X(t)] with the fitted values. */
    s_close (churn_bgnbd_expected (&fit.params, 2, 30.43, 38.86, 39), 1.226, 0.001,
             "E[Y(39)|2,30.43]");
    const double times[] = {0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00};
    const double want[] = {0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576};
    for (int i = 0; i < 6; i++)
        s_close (churn_bgnbd_population_expected (&fit.params, times[i]), want[i], 0.0015,
                 "E[X(t)]");
    churn_summary_destroy (&s);
}

static void
test_pmf_matches_btyd (void **state)
{
    (void)state;
    /* [BTYD] */
    s_close (churn_bgnbd_pmf (&s_paper, 2, 10), 1.07869e-07, 1e-11, "P(X(2)=10)");
    s_close (churn_bgnbd_pmf (&s_paper, 39, 0), 0.5737864, 1e-7, "P(X(39)=0)");
    const double want[] = {0.0019995214, 0.0015170236, 0.0011633150, 0.0009003148, 0.0007023638,
                           0.0005517902, 0.0004361913, 0.0003467171, 0.0002769613, 0.0002222260};
    for (unsigned n = 11; n <= 20; n++)
        s_close (churn_bgnbd_pmf (&s_paper, 30, n), want[n - 11], 1e-9, "P(X(30)=n)");
}

static void
test_population_expectation_is_pmf_mean (void **state)
{
    (void)state;
    /* E[X(t)] through 2F1 against sum n P(X(t)=n), which needs no 2F1: the
     * two formulas of the paper (equations 8 and 9) must agree. Long t puts
     * z = t/(alpha+t) close to 1 (0.99 at t = 520). */
    churn_bgnbd_params_t other = {1.7, 12.0, 2.9, 4.1};
    const churn_bgnbd_params_t *params[] = {&s_paper, &other};
    const double times[] = {0.5, 39, 78, 520};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) {
            double sum = 0, mean = 0;
            for (unsigned n = 0; n < 200000; n++) {
                double pn = churn_bgnbd_pmf (params[k], times[i], n);
                sum += pn;
                mean += n * pn;
                if (n > 50 && n * pn < 1e-16)
                    break;
            }
            s_close (sum, 1, 1e-9, "PMF sums to 1");
            double e = churn_bgnbd_population_expected (params[k], times[i]);
            s_close (e, mean, 1e-8 * fmax (1, mean), "E[X(t)] = sum n P(X(t)=n)");
        }
}

static void
test_p_alive_against_integration (void **state)
{
    (void)state;
    /* lifetimes: a customer without repeat purchases is alive. */
    assert_true (churn_bgnbd_p_alive (&s_paper, 0, 1, 1) == 1.0);
    const double cases[][3] = {{2, 30.43, 38.86}, {1, 1.71, 38.86}, {7, 29.43, 38.86},
                               {10, 36, 38.86},   {1, 38.0, 38.86}, {25, 10, 38.86}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double want = s_p_alive_numeric (&s_paper, cases[i][0], cases[i][1], cases[i][2]);
        double got = churn_bgnbd_p_alive (&s_paper, cases[i][0], cases[i][1], cases[i][2]);
        s_close (got, want, 1e-9, "P(alive) against Bayes by quadrature");
    }
}

static void
test_expected_against_integration (void **state)
{
    (void)state;
    /* Cases from short horizons to z = t/(alpha+T+t) near 1, and large x,
     * where the un-transformed 2F1 would overflow. Also a = 1 exactly and
     * next to it, where the closed form is 0/0. */
    churn_bgnbd_params_t a_one = {0.5, 3.0, 1.0, 2.0}, a_near = {0.5, 3.0, 1.0 + 3e-6, 2.0},
                         small_ab = {0.3, 2.0, 0.3, 0.7};
    const struct {
        const churn_bgnbd_params_t *p;
        double x, T, t;
    } cases[] = {
        {&s_paper, 2, 38.86, 39},   {&s_paper, 0, 38.86, 52}, {&s_paper, 10, 38.86, 10},
        {&s_paper, 300, 38.86, 39}, {&s_paper, 1, 20, 500},   {&s_paper, 5, 12, 2000},
        {&s_paper, 0, 0, 78},       {&a_one, 3, 30, 52},      {&a_near, 3, 30, 52},
        {&a_one, 0, 0, 100},        {&small_ab, 0, 10, 20},   {&small_ab, 4, 10, 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double want = s_expected_if_alive_numeric (cases[i].p, cases[i].x, cases[i].T, cases[i].t);
        double got = churn_bgnbd_expected_if_alive (cases[i].p, cases[i].x, cases[i].T, cases[i].t);
        if (!(fabs (got - want) <= 1e-9 * fmax (1, want)))
            fail_msg ("case %zu: E[Y(t)|alive] = %.10g, quadrature %.10g", i, got, want);
    }
    /* The conditional expectation is P(alive) times the above. */
    double x = 2, t_x = 30.43, T = 38.86;
    s_close (churn_bgnbd_expected (&s_paper, x, t_x, T, 39),
             churn_bgnbd_p_alive (&s_paper, x, t_x, T) *
                 s_expected_if_alive_numeric (&s_paper, x, T, 39),
             1e-9, "E[Y(t)|x,t_x,T]");
}

static void
test_gradient_matches_finite_differences (void **state)
{
    (void)state;
    churn_summary_t *s = s_cdnow ();
    churn_bgnbd_params_t p = {0.4, 6.0, 0.6, 3.0}; /* away from the optimum */
    double g[4];
    churn_bgnbd_loglik_sum (&p, s->frequency, s->recency, s->T, s->n, g);
    for (int k = 0; k < 4; k++) {
        double h = 1e-5;
        churn_bgnbd_params_t up = p, down = p;
        double *pu = &up.r + k, *pd = &down.r + k;
        *pu *= exp (h);
        *pd *= exp (-h);
        double fd = (churn_bgnbd_loglik_sum (&up, s->frequency, s->recency, s->T, s->n, NULL) -
                     churn_bgnbd_loglik_sum (&down, s->frequency, s->recency, s->T, s->n, NULL)) /
                    (2 * h);
        s_close (g[k], fd, 1e-5 * fmax (1, fabs (fd)), "d loglik / d log param");
    }
    /* The sum equals the per-customer function added up. */
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += churn_bgnbd_loglik (&p, s->frequency[i], s->recency[i], s->T[i]);
    s_close (churn_bgnbd_loglik_sum (&p, s->frequency, s->recency, s->T, s->n, NULL), sum, 1e-8,
             "sum of churn_bgnbd_loglik");
    churn_summary_destroy (&s);
}

/* Fits simulated data and checks every parameter within 4 standard errors
 * (from the observed information: the Hessian of the log-likelihood in
 * log-parameters by differences of the analytic gradient). */
static void
s_recover (const churn_bgnbd_params_t *truth, size_t n, uint64_t seed)
{
    churn_simulate_opts_t o = {.bgnbd = *truth, .T_min = 26, .T_max = 52, .unit_days = 7};
    churn_summary_t *s = churn_simulate_customers (&o, n, seed);
    assert_non_null (s);
    churn_bgnbd_fit_t fit;
    char err[256];
    assert_int_equal (
        churn_bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &fit, err, sizeof err), 0);
    assert_true (fit.converged);
    double H[4][4];
    for (int j = 0; j < 4; j++) {
        double h = 1e-4, gu[4], gd[4];
        churn_bgnbd_params_t up = fit.params, down = fit.params;
        (&up.r)[j] *= exp (h);
        (&down.r)[j] *= exp (-h);
        churn_bgnbd_loglik_sum (&up, s->frequency, s->recency, s->T, s->n, gu);
        churn_bgnbd_loglik_sum (&down, s->frequency, s->recency, s->T, s->n, gd);
        for (int i = 0; i < 4; i++)
            H[i][j] = -(gu[i] - gd[i]) / (2 * h);
    }
    /* Invert the 4x4 information matrix by Gauss-Jordan. */
    double A[4][8];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            A[i][j] = j < 4 ? 0.5 * (H[i][j] + H[j][i]) : (j - 4 == i);
    for (int c = 0; c < 4; c++) {
        double piv = A[c][c];
        assert_true (piv > 0);
        for (int j = 0; j < 8; j++)
            A[c][j] /= piv;
        for (int i = 0; i < 4; i++)
            if (i != c) {
                double f = A[i][c];
                for (int j = 0; j < 8; j++)
                    A[i][j] -= f * A[c][j];
            }
    }
    const char *names[] = {"r", "alpha", "a", "b"};
    for (int k = 0; k < 4; k++) {
        double se = sqrt (A[k][k + 4]);
        double diff = log ((&fit.params.r)[k]) - log ((&truth->r)[k]);
        if (!(fabs (diff) <= 4 * se))
            fail_msg ("%s: fitted %.4f, true %.4f: %.1f standard errors off", names[k],
                      (&fit.params.r)[k], (&truth->r)[k], diff / se);
    }
    churn_summary_destroy (&s);
}

static void
test_simulated_data_recovers_parameters (void **state)
{
    (void)state;
    churn_bgnbd_params_t cdnow_like = {0.243, 4.414, 0.793, 2.426};
    s_recover (&cdnow_like, 20000, 1);
    churn_bgnbd_params_t busier = {1.5, 10.0, 1.8, 6.0};
    s_recover (&busier, 20000, 2);
}

static void
test_edge_cases (void **state)
{
    (void)state;
    char err[256];
    churn_bgnbd_fit_t fit;
    /* Empty input. */
    assert_int_equal (churn_bgnbd_fit (NULL, NULL, NULL, 0, NULL, &fit, err, sizeof err), -1);
    assert_non_null (strstr (err, "no customers"));
    /* Nobody bought twice: no estimate exists, and the fit says why. */
    double x0[] = {0, 0, 0}, tx0[] = {0, 0, 0}, T0[] = {10, 20, 30};
    assert_int_equal (churn_bgnbd_fit (x0, tx0, T0, 3, NULL, &fit, err, sizeof err), -1);
    assert_non_null (strstr (err, "repeat purchase"));
    /* Bad rows are named. */
    double x1[] = {1, 2, 3}, tx1[] = {1, 2, 9}, T1[] = {5, 5, 5};
    assert_int_equal (churn_bgnbd_fit (x1, tx1, T1, 3, NULL, &fit, err, sizeof err), -1);
    assert_non_null (strstr (err, "row 3"));
    double x2[] = {1.5}, tx2[] = {1}, T2[] = {5};
    assert_int_equal (churn_bgnbd_fit (x2, tx2, T2, 1, NULL, &fit, err, sizeof err), -1);
    assert_non_null (strstr (err, "whole number"));
    /* A single repeat buyer: whatever the optimiser ends with, every
     * number it reports is finite. */
    double x3[] = {1, 0}, tx3[] = {3, 0}, T3[] = {5, 5};
    if (churn_bgnbd_fit (x3, tx3, T3, 2, NULL, &fit, err, sizeof err) == 0) {
        assert_true (isfinite (fit.params.r) && isfinite (fit.params.alpha));
        assert_true (isfinite (fit.params.a) && isfinite (fit.params.b));
        assert_true (isfinite (fit.log_likelihood));
    }

    /* Hundreds or thousands of purchases, tiny and huge times: no overflow,
     * no NaN, probabilities in [0, 1]. */
    const double xs[] = {0, 1, 100, 500, 5000};
    const double ts[] = {0, 1e-6, 1, 39, 1e4, 1e7};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 6; j++)
            for (size_t k = 0; k <= j; k++) {
                double x = xs[i], T = ts[j], t_x = x > 0 ? ts[k] : 0;
                double pa = churn_bgnbd_p_alive (&s_paper, x, t_x, T);
                double ll = churn_bgnbd_loglik (&s_paper, x, t_x, T);
                assert_true (pa >= 0 && pa <= 1);
                assert_true (isfinite (ll));
                for (size_t m = 0; m < 6; m++) {
                    double e = churn_bgnbd_expected (&s_paper, x, t_x, T, ts[m]);
                    if (!(isfinite (e) && e >= 0))
                        fail_msg ("E[Y(%g)|%g,%g,%g] = %g", ts[m], x, t_x, T, e);
                }
            }
    assert_true (churn_bgnbd_expected (&s_paper, 2, 30, 38, 0) == 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_cdnow_fit_matches_paper),
        cmocka_unit_test (test_pmf_matches_btyd),
        cmocka_unit_test (test_population_expectation_is_pmf_mean),
        cmocka_unit_test (test_p_alive_against_integration),
        cmocka_unit_test (test_expected_against_integration),
        cmocka_unit_test (test_gradient_matches_finite_differences),
        cmocka_unit_test (test_simulated_data_recovers_parameters),
        cmocka_unit_test (test_edge_cases),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
