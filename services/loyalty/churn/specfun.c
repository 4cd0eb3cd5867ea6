/*
 * specfun: log-gamma, digamma and 2F1 for the customer-value models.
 *
 * The hypergeometric function is the delicate one. The BG/NBD conditional
 * expectation evaluates it at z = t / (alpha + T + t), which approaches 1 for
 * long horizons and young customers, exactly where the Gauss series crawls
 * (its terms shrink like z^n). Past z = 1/2 we therefore continue the
 * function along the real axis as the solution of its differential equation
 *
 *     z (1 - z) F'' + [c - (a + b + 1) z] F' - a b F = 0,
 *
 * re-expanding it in a Taylor series around each point z0 and stepping at
 * most half the distance to the singularity at 1, so that every expansion
 * converges like 2^-n. Halving the remaining distance each time reaches
 * z = 1 - 1e-12 in about 40 steps of some 50 terms.
 */
#include "specfun.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

/* Terms below this fraction of the running sum no longer change it. */
#define SERIES_EPS 1e-17

/* The Gauss series at |z| <= 1/2 needs about 60 terms for ordinary
 * parameters; large parameters make the terms grow before they shrink. */
#define SERIES_MAX_TERMS 200000

/* A Taylor step of the continuation converges like 2^-n: 1100 terms
 * underflow any start. */
#define STEP_MAX_TERMS 1100

double
churn_specfun_lgamma (double x)
{
    int sign;
    return lgamma_r (x, &sign);
}

double
churn_specfun_lbeta (double a, double b)
{
    return churn_specfun_lgamma (a) + churn_specfun_lgamma (b) - churn_specfun_lgamma (a + b);
}

double
churn_specfun_digamma (double x)
{
    if (isnan (x))
        return x;
    if (x <= 0) {
        if (x == floor (x))
            return NAN;
        /* Reflection: psi(1 - x) - psi(x) = pi cot(pi x). */
        return churn_specfun_digamma (1 - x) - M_PI / tan (M_PI * x);
    }
    double result = 0;
    /* Recurrence up to where the asymptotic series has 1e-16 accuracy. */
    while (x < 10) {
        result -= 1 / x;
        x += 1;
    }
    double inv2 = 1 / (x * x);
    /* Bernoulli numbers B_2k / 2k: 1/12, -1/120, 1/252, -1/240, 1/132,
     * -691/32760, 1/12; the next term is below 1e-16 at x >= 10. */
    double tail =
        inv2 * (1.0 / 12 -
                inv2 * (1.0 / 120 -
                        inv2 * (1.0 / 252 -
                                inv2 * (1.0 / 240 -
                                        inv2 * (1.0 / 132 - inv2 * (691.0 / 32760 - inv2 / 12))))));
    return result + log (x) - 0.5 / x - tail;
}

double
churn_specfun_log1pexp (double x)
{
    if (x > 36)
        return x + exp (-x);
    if (x < -36)
        return exp (x);
    return log1p (exp (x));
}

static bool
s_is_nonpos_int (double v)
{
    return v <= 0 && v == floor (v);
}

/* The Gauss series sum_n (a)_n (b)_n / ((c)_n n!) z^n and, when deriv is not
 * NULL, its derivative in z. Terminates by itself when a or b is a
 * non-positive integer. Sets *converged (when not NULL) to whether the terms
 * became negligible within max_terms. */
static double
s_series (double a, double b, double c, double z, int max_terms, double *deriv, bool *converged)
{
    double term = 1;
    double sum = 1;
    double dsum = 0;
    bool done = false;
    for (int n = 0; n < max_terms; n++) {
        double den = (c + n) * (n + 1);
        if (den == 0)
            return NAN;
        term *= (a + n) * (b + n) / den * z;
        sum += term;
        dsum += (n + 1) * term;
        if (term == 0) {
            done = true;
            break;
        }
        /* Stop once terms are negligible and shrinking: the ratio of
         * successive terms tends to z from here on. */
        double ratio = fabs ((a + n + 1) * (b + n + 1) / ((c + n + 1) * (n + 2)) * z);
        if (fabs (term) <= SERIES_EPS * fabs (sum) && ratio < 1) {
            done = true;
            break;
        }
        if (!isfinite (sum)) {
            done = true;
            break;
        }
    }
    if (deriv)
        *deriv = z != 0 ? dsum / z : a * b / c;
    if (converged)
        *converged = done;
    return sum;
}

/* Continues F from z0 (value f, derivative df) to z, with 1/2 <= z0 < z < 1.
 *
 * The Taylor coefficients come from a forward three-term recurrence, whose
 * other solution belongs to z^(1-c), singular at 0. When |c|, |a| or |b| is
 * large that solution's coefficients grow fast over the first terms and
 * would swamp the wanted ones with amplified rounding; the step is kept
 * short enough that the multipliers of the recurrence stay below about one
 * half (|q0| h / 2p for the first terms, |(n+a)(n+b)| h^2 / p n^2 for the
 * next; |1 - 2 z0| h / p, the limit for large n, is below 1/2 already),
 * which makes it a contraction. */
static double
s_continue (double a, double b, double c, double z0, double f, double df, double z)
{
    double ab = (1 + fabs (a)) * (1 + fabs (b));
    while (z0 < z) {
        double p = z0 * (1 - z0);
        double q0 = c - (a + b + 1) * z0;
        double k = 1 - 2 * z0;
        double h = fmin (z - z0, 0.5 * (1 - z0));
        h = fmin (h, p / (fabs (q0) + DBL_MIN));
        h = fmin (h, sqrt (p / (2 * ab)));
        /* Land exactly on a representable point: near z = 1, where F' grows
         * like 1/(1-z), expanding around a rounded z0 would shift the
         * result by F' times an ulp at every step. z0 + h - z0 is exact
         * (Sterbenz) because z0 >= 1/2. */
        double next = z0 + h;
        h = next - z0;
        /* g_n = f_n h^n, the scaled Taylor coefficients at z0; the
         * differential equation gives
         *   p (n+1)(n+2) f_{n+2} = -(n+1) (k n + q0) f_{n+1} + (n+a)(n+b) f_n. */
        double g0 = f;
        double g1 = df * h;
        double sum = g0 + g1;
        double dsum = g1;
        for (int n = 0; n < STEP_MAX_TERMS; n++) {
            double g2 = (-(n + 1) * (k * n + q0) * h * g1 + (n + a) * (n + b) * h * h * g0) /
                        (p * (n + 1) * (n + 2));
            sum += g2;
            dsum += (n + 2) * g2;
            double scale = fabs (sum) + DBL_MIN;
            if (fabs (g2) <= SERIES_EPS * scale && fabs (g1) <= SERIES_EPS * scale)
                break;
            if (!isfinite (sum))
                return sum;
            g0 = g1;
            g1 = g2;
        }
        f = sum;
        df = dsum / h;
        z0 = next;
    }
    return f;
}

/* Gamma(c) Gamma(c-a-b) / (Gamma(c-a) Gamma(c-b)), Gauss's value at z = 1. */
static double
s_gauss_at_one (double a, double b, double c)
{
    double d = c - a - b;
    if (d <= 0)
        return INFINITY;
    if (s_is_nonpos_int (c - a) || s_is_nonpos_int (c - b))
        return 0;
    int s1, s2, s3, s4;
    double l =
        lgamma_r (c, &s1) + lgamma_r (d, &s2) - lgamma_r (c - a, &s3) - lgamma_r (c - b, &s4);
    return s1 * s2 * s3 * s4 * exp (l);
}

double
churn_specfun_hyp2f1 (double a, double b, double c, double z)
{
    if (isnan (a) || isnan (b) || isnan (c) || isnan (z) || z > 1)
        return NAN;
    if (z == 0 || a == 0 || b == 0)
        return 1;
    bool terminates = s_is_nonpos_int (a) || s_is_nonpos_int (b);
    if (s_is_nonpos_int (c)) {
        /* Defined only if the series stops before (c)_n reaches zero. */
        double m = s_is_nonpos_int (a) ? -a : INFINITY;
        if (s_is_nonpos_int (b))
            m = fmin (m, -b);
        if (!(m < -c))
            return NAN;
    }
    if (terminates)
        return s_series (a, b, c, z, SERIES_MAX_TERMS, NULL, NULL);
    if (z == 1)
        return s_gauss_at_one (a, b, c);
    if (fabs (z) <= 0.5)
        return s_series (a, b, c, z, SERIES_MAX_TERMS, NULL, NULL);
    if (z < 0) {
        /* Pfaff: F(a,b;c;z) = (1-z)^-a F(a, c-b; c; z/(z-1)). Take the form
         * whose new series terminates, if either does. */
        double w = z / (z - 1);
        if (s_is_nonpos_int (c - a) && !s_is_nonpos_int (c - b))
            return pow (1 - z, -b) * churn_specfun_hyp2f1 (c - a, b, c, w);
        return pow (1 - z, -a) * churn_specfun_hyp2f1 (a, c - b, c, w);
    }
    double d = c - a - b;
    if (d < 0) {
        /* Euler: F = (1-z)^(c-a-b) F(c-a, c-b; c; z). The new function is
         * bounded at z = 1 (its own c-a-b is -d > 0), so the growth is all in
         * the power and the sum converges the faster of the two. */
        return pow (1 - z, d) * churn_specfun_hyp2f1 (c - a, c - b, c, z);
    }
    /* With c-a-b = d >= 0 the terms end up shrinking like z^n n^-(d+1): when
     * that reaches 1e-17 within a few hundred terms the plain series is the
     * cheapest and most accurate choice. */
    double n_est = 400;
    if (n_est * log (1 / z) + (d + 1) * log (n_est) > 40) {
        bool converged = false;
        double f = s_series (a, b, c, z, 2000, NULL, &converged);
        if (converged)
            return f;
    }
    double df = 0;
    double f = s_series (a, b, c, 0.5, SERIES_MAX_TERMS, &df, NULL);
    return s_continue (a, b, c, 0.5, f, df, z);
}
