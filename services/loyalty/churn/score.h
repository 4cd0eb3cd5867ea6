/*
 * score: every figure for every customer in one pass: P(alive), expected
 * purchases over a horizon, RFM scores and segment, expected spend and CLV.
 *
 * CLV follows the discounted sum used by the lifetimes library: over K
 * periods of length L (e.g. 12 months of 30 days), each period's expected
 * purchases times the expected spend, discounted by (1 + d)^k:
 *   CLV = spend * sum_k [E(k L) - E((k-1) L)] / (1 + d)^k.
 *
 * The expected purchases of a customer are P(alive | x, t_x, T) times an
 * expectation that depends on x and T only, so customers sharing (x, T),
 * which whole-day dates make common, share the expensive 2F1 evaluations.
 */
#ifndef LOYALTY_CHURN_SCORE_H
#define LOYALTY_CHURN_SCORE_H

#include "bgnbd.h"
#include "gammagamma.h"
#include "summary.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double horizon;  /* expected purchases over this many time units */
    int clv_periods; /* K; 0 for no CLV */
    double period;   /* L, in time units */
    double discount; /* d, per period */
} churn_score_opts_t;

typedef struct {
    size_t n;
    double *p_alive;    /* P(alive) */
    double *expected;   /* expected purchases over the horizon */
    double *spend;      /* expected spend per purchase; NULL without a spend
                           model, -1 where undefined (gammagamma.h) */
    double *clv;        /* NULL without a spend model or periods; -1 where
                           the spend is undefined */
    uint8_t *r, *f, *m; /* RFM scores 1..5 */
    uint8_t *segment;   /* churn_rfm_segment_t */
} churn_score_t;

/* Scores the customers of s with the fitted models (gg may be NULL, or s
 * may lack spend: then no spend nor CLV). Returns an owned score, or NULL
 * with the reason in err (out of memory). */
churn_score_t *churn_score_run (const churn_summary_t *s, const churn_bgnbd_params_t *bg,
                                const churn_gammagamma_params_t *gg, const churn_score_opts_t *opts,
                                char *err, size_t errlen);

/* Frees the score; safe on NULL; sets *self_p to NULL. */
void churn_score_destroy (churn_score_t **self_p);

#endif
