/*
 * rate: how many customers a shop lost in a period.
 *
 * The churn rate over the period (from, to]: of the customers who were active
 * on day `from`, the share who are no longer active on day `to`. "Active"
 * has two definitions, chosen by the caller and always printed with the
 * figure:
 *   - inactivity: a purchase within the last N days (a customer is lost
 *     once N days pass without one);
 *   - P(alive): the BG/NBD probability that the customer is still a
 *     customer, given their purchases up to that day, at or above a
 *     threshold. Note the model's view of one-time buyers: without a repeat
 *     purchase P(alive) stays 1, so they never count as lost by this rule.
 * Customers whose first purchase falls inside the period are new, not part
 * of the rate; customers inactive at the start who are active again at the
 * end are counted as returned. With nobody active at the start the rate is
 * undefined (defined = false), never a division by zero.
 */
#ifndef LOYALTY_CHURN_RATE_H
#define LOYALTY_CHURN_RATE_H

#include "bgnbd.h"
#include "history.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CHURN_RATE_INACTIVE = 0, /* no purchase for inactive_days */
    CHURN_RATE_P_ALIVE,      /* P(alive) below p_alive_threshold */
} churn_rate_rule_t;

typedef struct {
    churn_rate_rule_t rule;
    int inactive_days;           /* CHURN_RATE_INACTIVE: N */
    double p_alive_threshold;    /* CHURN_RATE_P_ALIVE: in (0, 1) */
    churn_bgnbd_params_t params; /* CHURN_RATE_P_ALIVE: the fitted model */
    double unit_days;            /* CHURN_RATE_P_ALIVE: the model's time unit in days */
} churn_rate_definition_t;

typedef struct {
    int32_t from, to;     /* the period (from, to], days since 1970-01-01 */
    size_t at_start;      /* customers active on day from */
    size_t lost;          /* of them, not active on day to */
    size_t retained;      /* of them, still active on day to */
    size_t new_customers; /* first purchase within the period */
    size_t returned;      /* inactive on day from, active again on day to */
    bool defined;         /* at_start > 0 */
    double rate;          /* lost / at_start; 0 when not defined */
} churn_rate_t;

/* One sentence stating the definition of "lost", for printing with the
 * figure, e.g. "lost = no purchase in the last 90 days". */
void churn_rate_describe (const churn_rate_definition_t *def, char *buf, size_t len);

/* Computes the churn rate over (from, to] from the history. Returns 0, or -1
 * with the reason in err (from >= to, a bad definition, out of memory). */
int churn_rate_compute (churn_history_t *history, const churn_rate_definition_t *def, int32_t from,
                        int32_t to, churn_rate_t *out, char *err, size_t errlen);

#endif
