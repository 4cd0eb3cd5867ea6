/*
 * rate: the churn rate over a period.
 *
 * A customer's state on a day needs only their purchases up to that day,
 * which the history keeps sorted; each customer is visited once per period.
 */
#include "rate.h"

#include <stdio.h>
#include <string.h>

void
churn_rate_describe (const churn_rate_definition_t *def, char *buf, size_t len)
{
    if (def->rule == CHURN_RATE_INACTIVE)
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
s_active (const churn_rate_definition_t *def, const int32_t *days, size_t count, int32_t day)
{
    if (count == 0 || days[0] > day)
        return false;
    size_t k = 0; /* purchase days on or before day */
    while (k < count && days[k] <= day)
        k++;
    int32_t last = days[k - 1];
    if (def->rule == CHURN_RATE_INACTIVE)
        return day - last < def->inactive_days;
    double u = def->unit_days;
    double x = (double)(k - 1);
    double t_x = (last - days[0]) / u;
    double T = (day - days[0]) / u;
    return churn_bgnbd_p_alive (&def->params, x, t_x, T) >= def->p_alive_threshold;
}

int
churn_rate_compute (churn_history_t *history, const churn_rate_definition_t *def, int32_t from,
                    int32_t to, churn_rate_t *out, char *err, size_t errlen)
{
    memset (out, 0, sizeof *out);
    if (from >= to) {
        snprintf (err, errlen, "the period must end after it starts");
        return -1;
    }
    if (def->rule == CHURN_RATE_INACTIVE && def->inactive_days <= 0) {
        snprintf (err, errlen, "the inactivity period must be at least one day");
        return -1;
    }
    if (def->rule == CHURN_RATE_P_ALIVE &&
        !(def->p_alive_threshold > 0 && def->p_alive_threshold < 1 && def->unit_days > 0)) {
        snprintf (err, errlen, "the P(alive) threshold must be between 0 and 1");
        return -1;
    }
    out->from = from;
    out->to = to;
    size_t n = churn_history_customers (history);
    for (size_t c = 0; c < n; c++) {
        const int32_t *days;
        const double *amounts;
        size_t count;
        if (!churn_history_customer (history, c, &days, &amounts, &count)) {
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
