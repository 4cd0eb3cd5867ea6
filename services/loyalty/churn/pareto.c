/*
 * pareto: the revenue shares, from the revenues sorted once, largest first.
 */
#include "pareto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
s_desc (const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

int
churn_pareto_compute (const double *revenue, size_t n, double top_fraction, churn_pareto_t *out)
{
    memset (out, 0, sizeof *out);
    if (!(top_fraction > 0 && top_fraction <= 1))
        return -1;
    out->customers = n;
    out->top_fraction = top_fraction;
    if (n == 0)
        return 0;
    double *sorted = malloc (n * sizeof *sorted);
    if (!sorted)
        return -1;
    memcpy (sorted, revenue, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_desc);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += sorted[i];
    out->total_revenue = total;
    /* The small epsilon keeps 0.2 * 10 from becoming 3 through rounding. */
    out->top_customers = (size_t)ceil (top_fraction * (double)n - 1e-9);
    if (out->top_customers == 0)
        out->top_customers = 1;
    if (total > 0) {
        double top = 0;
        for (size_t i = 0; i < out->top_customers; i++)
            top += sorted[i];
        out->top_revenue_share = top / total;
        double cum = 0;
        size_t k = 0;
        while (k < n && cum < 0.8 * total * (1 - 1e-12))
            cum += sorted[k++];
        out->customers_for_80 = (double)k / (double)n;
        out->defined = true;
    }
    free (sorted);
    return 0;
}
