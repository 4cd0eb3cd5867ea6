/*
 * churn: churn rate over a period and the Pareto report.
 *
 * A customer's state on a day needs only their purchases up to that day,
 * which the ledger keeps sorted; each customer is visited once per period.
 */
#include "churn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
churn_describe (const churn_definition_t *def, char *buf, size_t len)
{
    if (def->rule == CHURN_RULE_INACTIVE)
        snprintf (buf, len, "lost = no purchase in the last %d days", def->inactive_days);
    else
        snprintf (buf, len,
                  "lost = BG/NBD P(alive) below %g (one-time buyers keep P(alive) = 1 "
                  "in this model)",
                  def->p_alive_threshold);
}

/* Whether a customer with these purchases is active on day; false when not
 * yet a customer. */
static bool
s_active (const churn_definition_t *def, const int32_t *days, size_t count, int32_t day)
{
    if (count == 0 || days[0] > day)
        return false;
    size_t k = 0; /* purchase days on or before day */
    while (k < count && days[k] <= day)
        k++;
    int32_t last = days[k - 1];
    if (def->rule == CHURN_RULE_INACTIVE)
        return day - last < def->inactive_days;
    double u = def->unit_days;
    double x = (double)(k - 1);
    double t_x = (last - days[0]) / u;
    double T = (day - days[0]) / u;
    return bgnbd_p_alive (&def->params, x, t_x, T) >= def->p_alive_threshold;
}

int
churn_rate (ledger_t *ledger, const churn_definition_t *def, int32_t from, int32_t to,
            churn_rate_t *out, char *err, size_t errlen)
{
    memset (out, 0, sizeof *out);
    if (from >= to) {
        snprintf (err, errlen, "the period must end after it starts");
        return -1;
    }
    if (def->rule == CHURN_RULE_INACTIVE && def->inactive_days <= 0) {
        snprintf (err, errlen, "the inactivity period must be at least one day");
        return -1;
    }
    if (def->rule == CHURN_RULE_P_ALIVE &&
        !(def->p_alive_threshold > 0 && def->p_alive_threshold < 1 && def->unit_days > 0)) {
        snprintf (err, errlen, "the P(alive) threshold must be between 0 and 1");
        return -1;
    }
    out->from = from;
    out->to = to;
    size_t n = ledger_customers (ledger);
    for (size_t c = 0; c < n; c++) {
        const int32_t *days;
        const double *amounts;
        size_t count;
        if (!ledger_customer (ledger, c, &days, &amounts, &count)) {
            snprintf (err, errlen, "out of memory");
            return -1;
        }
        if (count == 0 || days[0] > to)
            continue;
        if (days[0] > from) {
            out->new_customers++;
            continue;
        }
        bool was = s_active (def, days, count, from);
        bool is = s_active (def, days, count, to);
        if (was && is)
            out->retained++;
        else if (was)
            out->lost++;
        else if (is)
            out->returned++;
    }
    out->at_start = out->retained + out->lost;
    out->defined = out->at_start > 0;
    out->rate = out->defined ? (double)out->lost / (double)out->at_start : 0;
    return 0;
}

static int
s_desc (const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

int
churn_pareto (const double *revenue, size_t n, double top_fraction, churn_pareto_t *out)
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
