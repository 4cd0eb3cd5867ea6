/*
 * bgnbd: the BG/NBD model of repeat buying (Fader, Hardie & Lee 2005,
 * "Counting your customers the easy way: an alternative to the Pareto/NBD
 * model", Marketing Science 24(2), 275-284).
 *
 * While active, a customer buys at a Poisson rate lambda; after each repeat
 * purchase they become inactive for good with probability p. Across
 * customers lambda ~ Gamma(r, alpha) and p ~ Beta(a, b). A customer is
 * summarised by x (repeat purchases), t_x (time of the last one since the
 * first purchase; 0 when x = 0) and T (time from the first purchase to the
 * end of observation), all in one time unit of the caller's choice (alpha
 * is in that unit).
 *
 * Fitting maximises the log-likelihood over log r, log alpha, log a, log b
 * with BFGS and the analytic gradient, from several starts. Predictions are
 * closed forms, the conditional expectation through 2F1 (specfun.h).
 *
 * Edge cases: fitting needs at least one customer and at least one repeat
 * purchase; without repeat purchases the likelihood keeps rising as the
 * purchase rate goes to zero and there is no estimate (churn_bgnbd_fit fails and
 * says so). A customer with x = 0 has P(alive) = 1: in this model customers
 * can only drop out right after a purchase.
 */
#ifndef LOYALTY_CHURN_BGNBD_H
#define LOYALTY_CHURN_BGNBD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double r;     /* shape of the purchase-rate distribution */
    double alpha; /* scale of the purchase-rate distribution, in time units */
    double a;     /* dropout-probability Beta, first shape */
    double b;     /* dropout-probability Beta, second shape */
} churn_bgnbd_params_t;

typedef struct {
    int max_iterations; /* per BFGS run; 0 means 300 */
    /* Convergence: max |gradient| of the mean log-likelihood per customer
     * in the log-parameters; 0 means 1e-9. */
    double gtol;
    int starts; /* starting points tried; 0 means 3 */
} churn_bgnbd_opts_t;

typedef struct {
    churn_bgnbd_params_t params;
    double log_likelihood;   /* total over customers, at params */
    int iterations;          /* BFGS iterations of the winning path */
    int evaluations;         /* likelihood evaluations, all runs */
    bool converged;          /* the gradient test held at the end */
    double gradient_norm;    /* max |gradient| of the mean log-likelihood */
    size_t customers;        /* customers fitted */
    size_t repeat_customers; /* of which with x > 0 */
} churn_bgnbd_fit_t;

/* One customer's log-likelihood (paper, equation 6). */
double churn_bgnbd_loglik (const churn_bgnbd_params_t *p, double x, double t_x, double T);

/* The total log-likelihood of n customers and, when grad is not NULL, its
 * gradient in (log r, log alpha, log a, log b). Inputs are not checked. */
double churn_bgnbd_loglik_sum (const churn_bgnbd_params_t *p, const double *x, const double *t_x,
                               const double *T, size_t n, double grad[4]);

/* Fits the model to n customers (arrays x, t_x, T). opts may be NULL.
 * Returns 0 and fills fit (check fit->converged); -1 with the reason in err
 * when the data are invalid (negative, non-integer x, t_x > T, not finite:
 * the message names the 1-based row), empty, without any repeat purchase,
 * or when memory runs out. */
int churn_bgnbd_fit (const double *x, const double *t_x, const double *T, size_t n,
                     const churn_bgnbd_opts_t *opts, churn_bgnbd_fit_t *fit, char *err,
                     size_t errlen);

/* P(alive | x, t_x, T): the probability that the customer has not dropped
 * out by T (Fader, Hardie & Lee 2008, "Computing P(alive) using the BG/NBD
 * model"). 1 when x = 0. */
double churn_bgnbd_p_alive (const churn_bgnbd_params_t *p, double x, double t_x, double T);

/* E[purchases in (T, T + t] | x, t_x, T, alive at T]: the expectation for a
 * customer known to be alive. The conditional expectation is this times
 * P(alive), and it depends on x and T only, which lets scoring share it
 * between customers. */
double churn_bgnbd_expected_if_alive (const churn_bgnbd_params_t *p, double x, double T, double t);

/* E[Y(t) | x, t_x, T]: expected purchases in the next t time units (paper,
 * equation 10). */
double churn_bgnbd_expected (const churn_bgnbd_params_t *p, double x, double t_x, double T,
                             double t);

/* E[X(t)]: expected repeat purchases of a new customer in (0, t] (paper,
 * equation 9). */
double churn_bgnbd_population_expected (const churn_bgnbd_params_t *p, double t);

/* P(X(t) = n): the probability that a new customer makes exactly n repeat
 * purchases in (0, t] (paper, equation 8). */
double churn_bgnbd_pmf (const churn_bgnbd_params_t *p, double t, unsigned n);

#endif
