/*
 * pareto: how concentrated a shop's revenue is. The share of revenue
 * brought by the top 20% of customers (by revenue), and the share of
 * customers who bring 80% of it; `retainctl churn report` prints them next
 * to the churn rate (rate.h).
 */
#ifndef LOYALTY_CHURN_PARETO_H
#define LOYALTY_CHURN_PARETO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    size_t customers;         /* with any revenue counted (zeros included) */
    double total_revenue;     /* the sum of their revenues */
    double top_fraction;      /* the "top" share of customers, e.g. 0.2 */
    size_t top_customers;     /* ceil(top_fraction * customers) */
    bool defined;             /* total_revenue > 0 */
    double top_revenue_share; /* their share of the revenue */
    double customers_for_80;  /* fewest customers bringing 80%, as a share */
} churn_pareto_t;

/* The Pareto report over n customers' revenues (each >= 0) with the given
 * top fraction (0 < top_fraction <= 1). Returns 0, or -1 when out of memory
 * or top_fraction is out of range. */
int churn_pareto_compute (const double *revenue, size_t n, double top_fraction,
                          churn_pareto_t *out);

#endif
