/*
 * Tests services/loyalty/churn/specfun: log-gamma, digamma and 2F1.
 *
 * Every expected value is a closed form (DLMF chapter 15 for 2F1) or an
 * independent computation in this file (the Gauss series summed in long
 * double over as many terms as it takes), never an output of the code under
 * test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>

#include "churn/specfun.h"

static void
s_close (double got, double want, double rel, const char *what)
{
    double err = fabs (got - want) / fmax (fabs (want), 1e-300);
    if (!(err <= rel))
        fail_msg ("%s: got %.17g, want %.17g (relative error %.3g > %.3g)", what, got, want, err,
                  rel);
}

/* The Gauss series in long double, summed until the terms are negligible;
 * only for parameters where it converges in a reasonable number of terms. */
static double
s_series (double a, double b, double c, double z)
{
    long double term = 1, sum = 1;
    for (long n = 0; n < 5000000; n++) {
        term *= (long double)(a + n) * (b + n) / ((c + n) * (n + 1)) * z;
        sum += term;
        if (fabsl (term) < 1e-22L * fabsl (sum) && n > 10)
            break;
    }
    return (double)sum;
}

static void
test_lgamma_digamma (void **state)
{
    (void)state;
    s_close (churn_specfun_lgamma (0.5), 0.5 * log (M_PI), 1e-15, "lgamma(1/2)");
    s_close (churn_specfun_lgamma (10), log (362880.0), 1e-15, "lgamma(10)");
    /* Large arguments: Stirling's series to its third term is exact to
     * double precision at 1e6. */
    double x = 1e6;
    s_close (churn_specfun_lgamma (x),
             (x - 0.5) * log (x) - x + 0.5 * log (2 * M_PI) + 1 / (12 * x), 1e-15, "lgamma(1e6)");
    s_close (churn_specfun_lbeta (2, 3), log (1.0 / 12), 1e-14, "lbeta(2,3)");

    const double euler = 0.57721566490153286061;
    s_close (churn_specfun_digamma (1), -euler, 1e-14, "psi(1)");
    s_close (churn_specfun_digamma (0.5), -euler - 2 * log (2), 1e-14, "psi(1/2)");
    double harmonic = 0;
    for (int n = 1; n <= 30; n++) {
        harmonic += 1.0 / n;
        s_close (churn_specfun_digamma (n + 1), harmonic - euler, 1e-14, "psi(n+1) = H_n - gamma");
    }
    /* The recurrence psi(x + 1) = psi(x) + 1/x across the switch to the
     * asymptotic series, and the reflection formula for negative x. */
    for (double v = 0.013; v < 40; v *= 1.37)
        s_close (churn_specfun_digamma (v + 1), churn_specfun_digamma (v) + 1 / v, 1e-13,
                 "psi recurrence");
    /* Negative arguments: the same recurrence, which the reflection formula
     * used there must satisfy. */
    for (double v = -3.7; v < 0; v += 0.43)
        s_close (churn_specfun_digamma (v + 1), churn_specfun_digamma (v) + 1 / v, 1e-12,
                 "psi recurrence below 0");
    assert_true (isnan (churn_specfun_digamma (-2)));
    assert_true (churn_specfun_log1pexp (800) == 800);
    s_close (churn_specfun_log1pexp (-800), 0, 1, "log1pexp(-800) is tiny and not NaN");
    s_close (churn_specfun_log1pexp (0), log (2), 1e-15, "log1pexp(0)");
}

static void
test_hyp2f1_closed_forms (void **state)
{
    (void)state;
    /* z from the series region through the continuation region to 1 - 1e-12,
     * and negative z through Pfaff's transformation. */
    const double zs[] = {1e-3,     0.2,       0.5,  0.51, 0.75, 0.9, 0.99,
                         0.999999, 1 - 1e-12, -0.3, -0.9, -5,   -1e4};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        double z = zs[i];
        /* DLMF 15.4.1: F(1,1;2;z) = -log(1-z)/z; c - a - b = 0, the case
         * where connection formulas need special treatment. */
        s_close (churn_specfun_hyp2f1 (1, 1, 2, z), -log1p (-z) / z, 1e-13, "F(1,1;2;z)");
        /* DLMF 15.4.6: F(a,b;b;z) = (1-z)^-a. */
        s_close (churn_specfun_hyp2f1 (0.3, 0.7, 0.7, z), pow (1 - z, -0.3), 1e-13, "F(a,b;b;z)");
        s_close (churn_specfun_hyp2f1 (2.6, 1.4, 1.4, z), pow (1 - z, -2.6), 2e-13,
                 "F(a,b;b;z) big");
        if (z > 0) {
            /* DLMF 15.4.3 with z -> sqrt(z): F(1/2,1/2;3/2;z) = asin(sqrt z)/sqrt z,
             * written as atan(sqrt(z/(1-z))) which stays well conditioned
             * near z = 1 (1 - z is exact there). */
            s_close (churn_specfun_hyp2f1 (0.5, 0.5, 1.5, z), atan (sqrt (z / (1 - z))) / sqrt (z),
                     1e-13, "F(1/2,1/2;3/2;z)");
        } else {
            /* DLMF 15.4.2 with z -> -z: F(1/2,1;3/2;-x) = atan(sqrt x)/sqrt x. */
            s_close (churn_specfun_hyp2f1 (0.5, 1, 1.5, z), atan (sqrt (-z)) / sqrt (-z), 1e-13,
                     "F(1/2,1;3/2;-x)");
        }
    }
    /* Terminating series: F(-3, b; c; z) is a cubic, valid for any z. */
    double b = 1.7, c = 2.3, z = -2.5;
    double cubic = 1 - 3 * b / c * z + 3 * b * (b + 1) / (c * (c + 1)) * z * z -
                   b * (b + 1) * (b + 2) / (c * (c + 1) * (c + 2)) * z * z * z;
    s_close (churn_specfun_hyp2f1 (-3, b, c, z), cubic, 1e-13, "F(-3,b;c;z)");
    /* Gauss's theorem at z = 1 (DLMF 15.4.20). */
    double a = 0.4;
    b = 0.9;
    c = 2.1;
    s_close (churn_specfun_hyp2f1 (a, b, c, 1),
             tgamma (c) * tgamma (c - a - b) / (tgamma (c - a) * tgamma (c - b)), 1e-13,
             "F(a,b;c;1)");
    assert_true (isinf (churn_specfun_hyp2f1 (1, 1, 2, 1)));
    assert_true (isnan (churn_specfun_hyp2f1 (1, 1, -2, 0.5)));
    assert_true (isnan (churn_specfun_hyp2f1 (1, 1, 2, 1.5)));
}

static void
test_hyp2f1_against_series (void **state)
{
    (void)state;
    /* The parameter shapes the BG/NBD asks for after Euler's transformation,
     * (a+b-1-r, a-1; a+b+x-1; z) with CDNOW-like a, b, r, for small and
     * large x and z up to 0.9999, where the continuation or the series is
     * used; plus a c - a - b within 1e-9 of an integer. Each is checked
     * against the long-double series, which converges for all of them. */
    const double cases[][4] = {
        {1.976, -0.207, 2.219, 0.9},  {1.976, -0.207, 2.219, 0.99},   {1.976, -0.207, 12.2, 0.97},
        {1.976, -0.207, 52.2, 0.999}, {1.976, -0.207, 302.2, 0.9999}, {2.5, 1.5, 60.3, 0.97},
        {1, 1.5, 3.5 + 1e-9, 0.99},   {0.3, 0.4, 20.7, 0.9999},       {-0.5, 0.8, 1.2, 0.95},
        {3.2, 2.1, 4.3, 0.8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double *p = cases[i];
        s_close (churn_specfun_hyp2f1 (p[0], p[1], p[2], p[3]), s_series (p[0], p[1], p[2], p[3]),
                 1e-12, "F against the long-double series");
    }
    /* Large c with a and b of the same size: the case where the forward
     * Taylor recurrence would be unstable without the step control.
     * Euler: F(a,b;c;z) = (1-z)^(c-a-b) F(c-a,c-b;c;z); the right side's
     * series converges fast because its c - a - b is large. */
    double a = 150, b = 150, c = 300.5, z = 0.9;
    s_close (churn_specfun_hyp2f1 (a, b, c, z),
             pow (1 - z, c - a - b) * s_series (c - a, c - b, c, z), 1e-11, "F(150,150;300.5;0.9)");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_lgamma_digamma),
        cmocka_unit_test (test_hyp2f1_closed_forms),
        cmocka_unit_test (test_hyp2f1_against_series),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
