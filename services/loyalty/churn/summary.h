/*
 * summary: the per-customer figures the models read, as parallel arrays.
 *
 * For each customer, in one time unit (unit_days days: 1 for days, 7 for
 * weeks), over a calibration period that ends at a chosen date:
 *   frequency  x    repeat purchases: purchase days after the first one
 *                   (several purchases on one day count once);
 *   recency    t_x  time from the first purchase to the last (0 if x = 0);
 *   T               time from the first purchase to the calibration end;
 *   monetary        mean value of the repeat purchase days (0 if x = 0),
 *                   the spend the Gamma-Gamma model reads;
 *   revenue         total value of all purchases in the period, first
 *                   included (RFM's M and the Pareto report read it).
 * A holdout period after the calibration end adds the purchases made in it
 * and their mean value. Arrays that a source cannot provide are NULL.
 */
#ifndef LOYALTY_CHURN_SUMMARY_H
#define LOYALTY_CHURN_SUMMARY_H

#include <stddef.h>

enum {
    CHURN_SUMMARY_IDS = 1,     /* allocate id */
    CHURN_SUMMARY_MONEY = 2,   /* allocate monetary and revenue */
    CHURN_SUMMARY_HOLDOUT = 4, /* allocate frequency_holdout and monetary_holdout */
};

typedef struct {
    size_t n;                  /* customers */
    char **id;                 /* customer ids, owned; NULL if unknown */
    double *frequency;         /* x */
    double *recency;           /* t_x */
    double *T;                 /* age at the calibration end */
    double *monetary;          /* mean repeat spend; NULL if unknown */
    double *revenue;           /* total spend; NULL if unknown */
    double *frequency_holdout; /* purchase days in the holdout; NULL if none */
    double *monetary_holdout;  /* their mean value (0 if none) */
    double duration_holdout;   /* length of the holdout period */
    double unit_days;          /* days per time unit */
} churn_summary_t;

/* A summary of n customers with the arrays that fields asks for (an OR of
 * the CHURN_SUMMARY_ flags), zero-filled; ids start NULL. NULL when out of
 * memory. */
churn_summary_t *churn_summary_new (size_t n, unsigned fields, double unit_days);

/* Frees the summary and its ids; safe on NULL; sets *self_p to NULL. */
void churn_summary_destroy (churn_summary_t **self_p);

#endif
