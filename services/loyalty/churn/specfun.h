/*
 * specfun: the special functions the customer-value models need, for real
 * arguments: log-gamma, digamma and the Gauss hypergeometric function 2F1.
 *
 * Everything here is pure and thread-safe (no errno, no signgam). Outside a
 * function's domain the result is NaN; callers in this library never leave
 * the domain, so a NaN from here is a programmer's mistake, not data.
 */
#ifndef LOYALTY_CHURN_SPECFUN_H
#define LOYALTY_CHURN_SPECFUN_H

/* log |Gamma(x)|; +inf at the poles (0, -1, -2, ...). */
double churn_specfun_lgamma (double x);

/* log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b), for a, b > 0. */
double churn_specfun_lbeta (double a, double b);

/* The digamma function psi(x) = Gamma'(x) / Gamma(x); NaN at the poles.
 * Absolute error below 1e-14 for x > 0. */
double churn_specfun_digamma (double x);

/* log(1 + exp(x)) without overflow for large x nor loss for small x. */
double churn_specfun_log1pexp (double x);

/* The Gauss hypergeometric function 2F1(a, b; c; z) for real a, b, c and
 * z <= 1 (z = 1 only when c - a - b > 0, by Gauss's theorem).
 *
 * Where it is computed how:
 *   - a or b a non-positive integer: the terminating polynomial, any z;
 *   - |z| <= 1/2: the Gauss series, which converges at least like 2^-n;
 *   - z < -1/2: Pfaff's transformation to z / (z - 1) in (0, 1);
 *   - 1/2 < z < 1: analytic continuation along the real axis, re-expanding
 *     the solution of the hypergeometric differential equation in Taylor
 *     series, each used within half its radius of convergence (the distance
 *     to the singular point z = 1). Unlike the 1 - z connection formulas this
 *     has no special case when c - a - b is an integer.
 * Relative accuracy is about 1e-14 where the result does not come from
 * cancellation of large terms. NaN when c is a non-positive integer (and the
 * series does not terminate first) or z > 1; +inf when the true value
 * overflows or when z = 1 and c - a - b <= 0. */
double churn_specfun_hyp2f1 (double a, double b, double c, double z);

#endif
