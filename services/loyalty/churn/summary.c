/*
 * summary: allocation of the per-customer arrays.
 */
#include "summary.h"

#include <stdbool.h>
#include <stdlib.h>

churn_summary_t *
churn_summary_new (size_t n, unsigned fields, double unit_days)
{
    churn_summary_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->unit_days = unit_days;
    /* calloc (0, ...) may return NULL; one element keeps "NULL = absent". */
    size_t count = n > 0 ? n : 1;
    bool ok = true;
    self->frequency = calloc (count, sizeof (double));
    self->recency = calloc (count, sizeof (double));
    self->T = calloc (count, sizeof (double));
    ok = self->frequency && self->recency && self->T;
    if (fields & CHURN_SUMMARY_IDS) {
        self->id = calloc (count, sizeof (char *));
        ok = ok && self->id;
    }
    if (fields & CHURN_SUMMARY_MONEY) {
        self->monetary = calloc (count, sizeof (double));
        self->revenue = calloc (count, sizeof (double));
        ok = ok && self->monetary && self->revenue;
    }
    if (fields & CHURN_SUMMARY_HOLDOUT) {
        self->frequency_holdout = calloc (count, sizeof (double));
        self->monetary_holdout = calloc (count, sizeof (double));
        ok = ok && self->frequency_holdout && self->monetary_holdout;
    }
    if (!ok)
        churn_summary_destroy (&self);
    return self;
}

void
churn_summary_destroy (churn_summary_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    churn_summary_t *self = *self_p;
    if (self->id)
        for (size_t i = 0; i < self->n; i++)
            free (self->id[i]);
    free (self->id);
    free (self->frequency);
    free (self->recency);
    free (self->T);
    free (self->monetary);
    free (self->revenue);
    free (self->frequency_holdout);
    free (self->monetary_holdout);
    free (self);
    *self_p = NULL;
}
