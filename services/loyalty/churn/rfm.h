/*
 * rfm: recency, frequency and monetary quintile scores and the segment each
 * customer falls in.
 *
 * Each score is 1 to 5, 5 the best: the most recent purchase, the most
 * purchases, the most money. Scores are quintiles of ranks: a customer
 * whose value is better than that of l of the n customers gets
 * 1 + floor(5 l / n). Equal values share a score (the lowest of their
 * span, so the many customers with no repeat purchase all get F = 1), the
 * worst value always gets 1, and the order of the input never matters. Recency is the time since
 * the last purchase (T - t_x, smaller is better), frequency the repeat
 * purchases, monetary the revenue (or the mean spend when only that is
 * known, or the frequency score when neither is).
 *
 * The segment reads R and FM = round-half-up of (F + M) / 2:
 *
 *   R \ FM   1               2                  3                  4         5
 *   5        new             potential_loyalist potential_loyalist champions champions
 *   4        promising       potential_loyalist potential_loyalist loyal     loyal
 *   3        about_to_sleep  about_to_sleep     need_attention     loyal     loyal
 *   2        hibernating     hibernating        at_risk            at_risk   cant_lose
 *   1        hibernating     hibernating        at_risk            at_risk   cant_lose
 */
#ifndef LOYALTY_CHURN_RFM_H
#define LOYALTY_CHURN_RFM_H

#include "summary.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CHURN_RFM_CHAMPIONS = 0,
    CHURN_RFM_LOYAL,
    CHURN_RFM_POTENTIAL_LOYALIST,
    CHURN_RFM_NEW,
    CHURN_RFM_PROMISING,
    CHURN_RFM_NEED_ATTENTION,
    CHURN_RFM_ABOUT_TO_SLEEP,
    CHURN_RFM_AT_RISK,
    CHURN_RFM_CANT_LOSE,
    CHURN_RFM_HIBERNATING,
    CHURN_RFM_SEGMENTS /* how many there are */
} churn_rfm_segment_t;

/* The segment's name as in the table above (a static string). */
const char *churn_rfm_segment_name (churn_rfm_segment_t segment);

/* The segment for scores r and fm, each 1..5. */
churn_rfm_segment_t churn_rfm_segment (int r, int fm);

/* Mid-rank quintile scores of n values into scores (1..5), 5 for the
 * largest values when higher_is_better, for the smallest otherwise. Returns
 * 0, or -1 when out of memory. */
int churn_rfm_quintiles (const double *values, size_t n, bool higher_is_better, uint8_t *scores);

/* Scores every customer of the summary and names their segment. Each output
 * array holds s->n entries. Returns 0, or -1 when out of memory. */
int churn_rfm_score (const churn_summary_t *s, uint8_t *r, uint8_t *f, uint8_t *m,
                     uint8_t *segment);

#endif
