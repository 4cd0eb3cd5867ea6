/*
 * files: reads customer summaries and raw transactions from files, and
 * refuses bad data with the file and line at fault.
 *
 * Summary CSV: a header line naming the columns, then one customer a line.
 * Required: frequency (or x), recency (or t_x), T (or age); optional: an id
 * (id, customer, customer_id), monetary_value (mean repeat spend) and
 * revenue (total spend). Other columns are ignored. Every line must have as
 * many fields as the header; frequency must be a whole number >= 0, recency
 * and T numbers >= 0 with recency <= T, and recency 0 when frequency is 0.
 *
 * Transactions, format "csv": a header with customer (or customer_id, id),
 * date (or datetime, timestamp) and amount (or value, revenue), one purchase
 * a line; dates as YYYY-MM-DD or YYYYMMDD, a time after them is ignored.
 * Format "cdnow": the CDNOW sample's whitespace-separated lines (master id,
 * sample id, YYYYMMDD, number of CDs, dollar value; no header), the customer
 * being the sample id. Amounts must be numbers >= 0.
 *
 * Lines may end in CRLF; blank lines are skipped. A file with no data line
 * is an error. Errors are written to err as "PATH:LINE: what is wrong".
 */
#ifndef LOYALTY_CHURN_FILES_H
#define LOYALTY_CHURN_FILES_H

#include "history.h"
#include "summary.h"

#include <stddef.h>

typedef enum {
    CHURN_FILES_CSV = 0, /* customer,date,amount with a header */
    CHURN_FILES_CDNOW,   /* the CDNOW sample's layout */
} churn_files_format_t;

/* Parses "csv" or "cdnow". Returns 0, or -1 for another name. */
int churn_files_parse_format (const char *name, churn_files_format_t *format);

/* Reads a summary CSV whose times are in units of unit_days days. Returns
 * an owned summary (destroy with churn_summary_destroy), or NULL with the reason
 * in err. */
churn_summary_t *churn_files_read_summary (const char *path, double unit_days, char *err,
                                           size_t errlen);

/* Reads transactions into a new history (destroy with churn_history_destroy), or
 * returns NULL with the reason in err. */
churn_history_t *churn_files_read_transactions (const char *path, churn_files_format_t format,
                                                char *err, size_t errlen);

#endif
