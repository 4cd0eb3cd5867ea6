/*
 * gammagamma: the Gamma-Gamma model of spend per transaction (Fader, Hardie
 * & Lee 2005, "RFM and CLV: using iso-value curves for customer base
 * analysis", J. Marketing Research 42(4); Fader & Hardie 2013, "The
 * Gamma-Gamma model of monetary value").
 *
 * A customer's transaction values are Gamma(p, nu) around their own mean
 * p / nu, and nu ~ Gamma(q, v) across customers. A customer is summarised by
 * x, the number of repeat transactions, and m, their mean value (the first
 * purchase is left out, as in the BG/NBD). The model assumes spend does not
 * depend on how often one buys; the fit reports the correlation of x and m
 * so the caller can see whether that holds.
 *
 * Expected average spend, conditional on (x, m), is the weighted mean
 *   (q - 1) / (p x + q - 1) * p v / (q - 1) + p x / (p x + q - 1) * m
 * of the population mean p v / (q - 1) and the customer's own mean; it is
 * undefined when p x + q <= 1 (for a customer without repeat purchases:
 * when q <= 1, the population mean is infinite).
 */
#ifndef LOYALTY_CHURN_GAMMAGAMMA_H
#define LOYALTY_CHURN_GAMMAGAMMA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double p; /* shape of a customer's transaction values */
    double q; /* shape of the distribution of nu across customers */
    double v; /* scale of that distribution, in money */
} churn_gammagamma_params_t;

typedef struct {
    churn_gammagamma_params_t params;
    double log_likelihood; /* total over the customers fitted */
    int iterations;
    int evaluations;
    bool converged;
    double gradient_norm; /* max |gradient| of the mean log-likelihood */
    size_t customers;     /* customers fitted: x > 0 and m > 0 */
    double correlation;   /* Pearson correlation of x and m among them */
} churn_gammagamma_fit_t;

/* One customer's log-likelihood of their mean spend m over x transactions. */
double churn_gammagamma_loglik (const churn_gammagamma_params_t *p, double x, double m);

/* Fits (p, q, v) by maximum likelihood to the customers with x > 0 and
 * m > 0 (the others carry no information on spend and are skipped).
 * Returns 0 and fills fit; -1 with the reason in err when an x or m is
 * negative or not finite (naming the 1-based row), when no customer
 * qualifies, or when memory runs out. */
int churn_gammagamma_fit (const double *x, const double *m, size_t n, churn_gammagamma_fit_t *fit,
                          char *err, size_t errlen);

/* Expected average spend per future transaction given (x, m). Returns 0 and
 * writes *spend, or -1 when it is undefined (see above). */
int churn_gammagamma_expected_spend (const churn_gammagamma_params_t *p, double x, double m,
                                     double *spend);

#endif
