/*
 * files: strict readers for summary CSVs and transaction files.
 *
 * Every value is checked before anything is returned, so a caller either
 * gets all the data or an error naming the first bad line: nothing partial.
 */
#include "files.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FIELDS 256

typedef struct {
    char *text; /* the field, NUL-terminated inside the line buffer */
    size_t len;
} s_field_t;

int
churn_files_parse_format (const char *name, churn_files_format_t *format)
{
    if (strcmp (name, "csv") == 0)
        *format = CHURN_FILES_CSV;
    else if (strcmp (name, "cdnow") == 0)
        *format = CHURN_FILES_CDNOW;
    else
        return -1;
    return 0;
}

/* Strips the line ending (LF or CRLF); true when nothing but blanks is left. */
static bool
s_chomp_blank (char *line, ssize_t *len)
{
    while (*len > 0 && (line[*len - 1] == '\n' || line[*len - 1] == '\r'))
        line[--*len] = '\0';
    for (ssize_t i = 0; i < *len; i++)
        if (!isspace ((unsigned char)line[i]))
            return false;
    return true;
}

/* Splits a CSV line in place. Quoted fields may hold commas and doubled
 * quotes; blanks around unquoted fields are trimmed. Returns the number of
 * fields, or -1 on an unterminated quote or too many fields. */
static int
s_split_csv (char *line, s_field_t *fields)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == MAX_FIELDS)
            return -1;
        while (*p == ' ' || *p == '\t')
            p++;
        char *start = p, *out = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    return -1;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else
                    *out++ = *p++;
            }
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != ',' && *p != '\0')
                return -1;
        } else {
            while (*p != ',' && *p != '\0')
                out = ++p;
            while (out > start && (out[-1] == ' ' || out[-1] == '\t'))
                out--;
        }
        char sep = *p;
        *out = '\0';
        fields[n].text = start;
        fields[n].len = (size_t)(out - start);
        n++;
        if (sep == '\0')
            return n;
        p++;
    }
}

/* Splits on runs of blanks (the CDNOW layout). */
static int
s_split_blanks (char *line, s_field_t *fields)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (isspace ((unsigned char)*p))
            p++;
        if (*p == '\0')
            return n;
        if (n == MAX_FIELDS)
            return -1;
        char *start = p;
        while (*p && !isspace ((unsigned char)*p))
            p++;
        fields[n].text = start;
        fields[n].len = (size_t)(p - start);
        n++;
        if (*p)
            *p++ = '\0';
    }
}

/* A plain decimal number: digits, sign, point and exponent only, so that
 * strtod's "nan", "inf" and hexadecimal forms are refused. */
static int
s_number (const s_field_t *f, double *out)
{
    if (f->len == 0)
        return -1;
    for (size_t i = 0; i < f->len; i++)
        if (!strchr ("0123456789+-.eE", f->text[i]))
            return -1;
    char *end;
    errno = 0;
    double v = strtod (f->text, &end);
    if (end != f->text + f->len || errno == ERANGE || !isfinite (v))
        return -1;
    *out = v;
    return 0;
}

static int
s_find (const s_field_t *header, int n, const char *const *names)
{
    for (int i = 0; i < n; i++)
        for (const char *const *name = names; *name; name++)
            if (strcasecmp (header[i].text, *name) == 0)
                return i;
    return -1;
}

typedef struct {
    size_t n, cap;
    char **id;
    double *x, *t_x, *T, *m, *rev;
} s_rows_t;

static void
s_rows_free (s_rows_t *r)
{
    if (r->id)
        for (size_t i = 0; i < r->n; i++)
            free (r->id[i]);
    free (r->id);
    free (r->x);
    free (r->t_x);
    free (r->T);
    free (r->m);
    free (r->rev);
}

static int
s_rows_grow (s_rows_t *r)
{
    size_t cap = r->cap ? 2 * r->cap : 1024;
    char **id = realloc (r->id, cap * sizeof *id);
    if (id)
        r->id = id;
    double **arrays[] = {&r->x, &r->t_x, &r->T, &r->m, &r->rev};
    bool ok = id != NULL;
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        double *a = realloc (*arrays[i], cap * sizeof (double));
        if (a)
            *arrays[i] = a;
        else
            ok = false;
    }
    if (!ok)
        return -1;
    r->cap = cap;
    return 0;
}

churn_summary_t *
churn_files_read_summary (const char *path, double unit_days, char *err, size_t errlen)
{
    static const char *const id_names[] = {"id", "customer", "customer_id", NULL};
    static const char *const x_names[] = {"frequency", "x", NULL};
    static const char *const tx_names[] = {"recency", "t_x", NULL};
    static const char *const T_names[] = {"T", "age", NULL};
    static const char *const m_names[] = {"monetary_value", "monetary", NULL};
    static const char *const rev_names[] = {"revenue", NULL};

    churn_summary_t *result = NULL;
    s_rows_t rows = {0};
    char *line = NULL;
    size_t cap = 0;
    s_field_t header[MAX_FIELDS], fields[MAX_FIELDS];
    char *header_line = NULL;
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (err, errlen, "%s: %s", path, strerror (errno));
        return NULL;
    }
    size_t lineno = 0;
    int ncols = 0;
    int c_id = -1, c_x = -1, c_tx = -1, c_T = -1, c_m = -1, c_rev = -1;
    ssize_t len;
    while ((len = getline (&line, &cap, file)) >= 0) {
        lineno++;
        if (s_chomp_blank (line, &len))
            continue;
        if (!header_line) {
            header_line = strdup (line);
            if (!header_line)
                goto oom;
            ncols = s_split_csv (header_line, header);
            if (ncols < 0) {
                snprintf (err, errlen, "%s:%zu: malformed header line", path, lineno);
                goto cleanup;
            }
            c_id = s_find (header, ncols, id_names);
            c_x = s_find (header, ncols, x_names);
            c_tx = s_find (header, ncols, tx_names);
            c_T = s_find (header, ncols, T_names);
            c_m = s_find (header, ncols, m_names);
            c_rev = s_find (header, ncols, rev_names);
            if (c_x < 0 || c_tx < 0 || c_T < 0) {
                snprintf (err, errlen,
                          "%s:%zu: missing column%s%s%s (the header must name frequency, "
                          "recency and T)",
                          path, lineno, c_x < 0 ? " frequency" : "", c_tx < 0 ? " recency" : "",
                          c_T < 0 ? " T" : "");
                goto cleanup;
            }
            continue;
        }
        int nf = s_split_csv (line, fields);
        if (nf != ncols) {
            if (nf < 0)
                snprintf (err, errlen, "%s:%zu: malformed line (unbalanced quotes?)", path, lineno);
            else
                snprintf (err, errlen, "%s:%zu: expected %d fields as in the header, found %d",
                          path, lineno, ncols, nf);
            goto cleanup;
        }
        double x, tx, T, m = 0, rev = 0;
        struct {
            int col;
            double *out;
            const char *name;
        } want[] = {{c_x, &x, "frequency"},
                    {c_tx, &tx, "recency"},
                    {c_T, &T, "T"},
                    {c_m, &m, "monetary_value"},
                    {c_rev, &rev, "revenue"}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            if (want[i].col < 0)
                continue;
            if (s_number (&fields[want[i].col], want[i].out) != 0) {
                snprintf (err, errlen, "%s:%zu: %s is not a number: '%s'", path, lineno,
                          want[i].name, fields[want[i].col].text);
                goto cleanup;
            }
            if (*want[i].out < 0) {
                snprintf (err, errlen, "%s:%zu: %s is negative: %s", path, lineno, want[i].name,
                          fields[want[i].col].text);
                goto cleanup;
            }
        }
        const char *why = NULL;
        if (x != floor (x))
            why = "frequency must be a whole number of purchases";
        else if (tx > T)
            why = "recency is greater than T (the last purchase cannot be after the end)";
        else if (x == 0 && tx != 0)
            why = "recency must be 0 when frequency is 0";
        if (why) {
            snprintf (err, errlen, "%s:%zu: %s", path, lineno, why);
            goto cleanup;
        }
        if (rows.n == rows.cap && s_rows_grow (&rows) != 0)
            goto oom;
        rows.id[rows.n] = NULL;
        if (c_id >= 0) {
            rows.id[rows.n] = strdup (fields[c_id].text);
            if (!rows.id[rows.n])
                goto oom;
        }
        rows.x[rows.n] = x;
        rows.t_x[rows.n] = tx;
        rows.T[rows.n] = T;
        rows.m[rows.n] = m;
        rows.rev[rows.n] = rev;
        rows.n++;
    }
    if (ferror (file)) {
        snprintf (err, errlen, "%s: %s", path, strerror (errno));
        goto cleanup;
    }
    if (!header_line) {
        snprintf (err, errlen,
                  "%s:1: empty file: expected a header line naming frequency, "
                  "recency and T",
                  path);
        goto cleanup;
    }
    if (rows.n == 0) {
        snprintf (err, errlen, "%s:%zu: no customers after the header", path, lineno);
        goto cleanup;
    }
    unsigned fields_wanted =
        (c_id >= 0 ? CHURN_SUMMARY_IDS : 0) | (c_m >= 0 ? CHURN_SUMMARY_MONEY : 0);
    result = churn_summary_new (rows.n, fields_wanted, unit_days);
    if (!result)
        goto oom;
    memcpy (result->frequency, rows.x, rows.n * sizeof (double));
    memcpy (result->recency, rows.t_x, rows.n * sizeof (double));
    memcpy (result->T, rows.T, rows.n * sizeof (double));
    if (c_m >= 0) {
        memcpy (result->monetary, rows.m, rows.n * sizeof (double));
        if (c_rev >= 0)
            memcpy (result->revenue, rows.rev, rows.n * sizeof (double));
        else {
            /* Without a revenue column, RFM's M reads the mean spend. */
            free (result->revenue);
            result->revenue = NULL;
        }
    }
    if (c_id >= 0) {
        memcpy (result->id, rows.id, rows.n * sizeof (char *));
        memset (rows.id, 0, rows.n * sizeof (char *)); /* moved */
    }
    goto cleanup;
oom:
    snprintf (err, errlen, "%s: out of memory", path);
cleanup:
    s_rows_free (&rows);
    free (header_line);
    free (line);
    fclose (file);
    return result;
}

churn_history_t *
churn_files_read_transactions (const char *path, churn_files_format_t format, char *err,
                               size_t errlen)
{
    static const char *const cust_names[] = {"customer", "customer_id", "id", NULL};
    static const char *const date_names[] = {"date", "datetime", "timestamp", NULL};
    static const char *const amount_names[] = {"amount", "value", "revenue", NULL};

    churn_history_t *history = NULL;
    char *line = NULL;
    size_t cap = 0;
    s_field_t fields[MAX_FIELDS];
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (err, errlen, "%s: %s", path, strerror (errno));
        return NULL;
    }
    history = churn_history_new ();
    if (!history)
        goto oom;
    bool have_header = format == CHURN_FILES_CDNOW; /* CDNOW has none */
    int ncols = 5, c_cust = 1, c_date = 2, c_amount = 4;
    size_t lineno = 0;
    bool any_line = false;
    ssize_t len;
    while ((len = getline (&line, &cap, file)) >= 0) {
        lineno++;
        if (s_chomp_blank (line, &len))
            continue;
        any_line = true;
        int nf = format == CHURN_FILES_CDNOW ? s_split_blanks (line, fields)
                                             : s_split_csv (line, fields);
        if (!have_header) {
            if (nf < 0) {
                snprintf (err, errlen, "%s:%zu: malformed header line", path, lineno);
                goto fail;
            }
            ncols = nf;
            c_cust = s_find (fields, nf, cust_names);
            c_date = s_find (fields, nf, date_names);
            c_amount = s_find (fields, nf, amount_names);
            if (c_cust < 0 || c_date < 0 || c_amount < 0) {
                snprintf (err, errlen,
                          "%s:%zu: missing column%s%s%s (the header must name customer, date "
                          "and amount)",
                          path, lineno, c_cust < 0 ? " customer" : "", c_date < 0 ? " date" : "",
                          c_amount < 0 ? " amount" : "");
                goto fail;
            }
            have_header = true;
            continue;
        }
        if (nf != ncols) {
            if (nf < 0)
                snprintf (err, errlen, "%s:%zu: malformed line", path, lineno);
            else
                snprintf (err, errlen, "%s:%zu: expected %d fields, found %d", path, lineno, ncols,
                          nf);
            goto fail;
        }
        int32_t day;
        double amount;
        if (fields[c_cust].len == 0) {
            snprintf (err, errlen, "%s:%zu: empty customer id", path, lineno);
            goto fail;
        }
        if (churn_history_parse_date (fields[c_date].text, fields[c_date].len, &day) != 0) {
            snprintf (err, errlen, "%s:%zu: not a date (YYYY-MM-DD or YYYYMMDD): '%s'", path,
                      lineno, fields[c_date].text);
            goto fail;
        }
        if (s_number (&fields[c_amount], &amount) != 0) {
            snprintf (err, errlen, "%s:%zu: amount is not a number: '%s'", path, lineno,
                      fields[c_amount].text);
            goto fail;
        }
        if (amount < 0) {
            snprintf (err, errlen, "%s:%zu: amount is negative: %s", path, lineno,
                      fields[c_amount].text);
            goto fail;
        }
        if (churn_history_add (history, fields[c_cust].text, fields[c_cust].len, day, amount) != 0)
            goto oom;
    }
    if (ferror (file)) {
        snprintf (err, errlen, "%s: %s", path, strerror (errno));
        goto fail;
    }
    if (!any_line) {
        snprintf (err, errlen, "%s:1: empty file: no transactions", path);
        goto fail;
    }
    if (churn_history_purchases (history) == 0) {
        snprintf (err, errlen, "%s:%zu: no transactions after the header", path, lineno);
        goto fail;
    }
    goto done;
oom:
    snprintf (err, errlen, "%s: out of memory", path);
fail:
    churn_history_destroy (&history);
done:
    free (line);
    fclose (file);
    return history;
}
