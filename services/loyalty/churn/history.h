/*
 * history: purchase history, every customer's purchases by day, and the
 * summaries taken from it at any date. (What customers bought, in money;
 * the loyalty daemon's points ledger is another thing.)
 *
 * Dates are whole days since 1970-01-01 (proleptic Gregorian, no time
 * zone): a purchase belongs to the calendar day the shop recorded. Purchases
 * of one customer on one day merge into one purchase whose value is their
 * sum, as in the BG/NBD literature, where a "transaction" is a day with at
 * least one order.
 */
#ifndef LOYALTY_CHURN_HISTORY_H
#define LOYALTY_CHURN_HISTORY_H

#include "summary.h"

#include <stddef.h>
#include <stdint.h>

typedef struct churn_history_t churn_history_t;

/* Parses YYYY-MM-DD or YYYYMMDD, optionally followed by 'T' or ' ' and a
 * time of day (ignored), into days since 1970-01-01. Returns 0, or -1 when
 * it is not a valid calendar date. len is the text's length. */
int churn_history_parse_date (const char *text, size_t len, int32_t *day);

/* Writes day as YYYY-MM-DD plus NUL into out. */
void churn_history_format_date (int32_t day, char out[11]);

/* An empty history; NULL when out of memory. */
churn_history_t *churn_history_new (void);

/* Frees the history; safe on NULL; sets *self_p to NULL. */
void churn_history_destroy (churn_history_t **self_p);

/* Records a purchase of customer (len bytes, copied) on day for amount.
 * Returns 0, or -1 when out of memory. */
int churn_history_add (churn_history_t *self, const char *customer, size_t len, int32_t day,
                       double amount);

/* Customers and recorded purchases (before same-day merging). */
size_t churn_history_customers (const churn_history_t *self);
size_t churn_history_purchases (const churn_history_t *self);

/* First and last purchase day over all customers; 0 when empty. */
int32_t churn_history_first_day (const churn_history_t *self);
int32_t churn_history_last_day (const churn_history_t *self);

/* The customer's id (borrowed) and purchase days, sorted and merged: sets
 * *days and *amounts (borrowed, valid until the next churn_history_add) and
 * returns their count. customer < churn_history_customers (). */
const char *churn_history_customer (churn_history_t *self, size_t customer, const int32_t **days,
                                    const double **amounts, size_t *count);

/* Summaries as of calibration_end (inclusive), in units of unit_days days,
 * for the customers whose first purchase is on or before it, in order of
 * first appearance in the history. When observation_end > calibration_end the
 * purchases in (calibration_end, observation_end] form the holdout. With
 * ids and money. NULL when out of memory. */
churn_summary_t *churn_history_summarize (churn_history_t *self, int32_t calibration_end,
                                          int32_t observation_end, double unit_days);

#endif
