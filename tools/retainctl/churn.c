/*
 * retainctl churn: customer value and churn figures from purchase history.
 *
 *   retainctl churn fit     the BG/NBD parameters (and the spend model's)
 *   retainctl churn score   per customer: P(alive), expected purchases,
 *                           RFM segment, expected spend, CLV
 *   retainctl churn report  churn rate over a period and the Pareto share
 *   retainctl churn summary per-customer summaries built from transactions
 *
 * All input is read and checked before anything is printed, so bad data
 * gives an error naming the file and line, exit status 1 and an empty
 * stdout; bad usage gives status 2. The models are in services/loyalty/churn.
 */
#include "cmd.h"
#include "retainctl.h"

#include "churn/bgnbd.h"
#include "churn/files.h"
#include "churn/gammagamma.h"
#include "churn/history.h"
#include "churn/pareto.h"
#include "churn/rate.h"
#include "churn/rfm.h"
#include "churn/score.h"
#include "churn/summary.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_LEN 512

typedef struct {
    const char *summary;      /* --summary FILE */
    const char *transactions; /* --transactions FILE */
    const char *format;       /* --format csv|cdnow */
    const char *cal_end;      /* --calibration-end DATE */
    const char *obs_end;      /* --observation-end DATE */
    const char *unit;         /* --unit days|weeks */
    const char *output;       /* --output */
    const char *from;         /* --from DATE */
    const char *to;           /* --to DATE */
    const char *lost;         /* --lost inactive:N | palive:P */
    const char *horizon;      /* --horizon-days N */
    const char *clv_months;   /* --clv-months N */
    const char *discount;     /* --discount R */
    const char *top;          /* --top F */
} s_args_t;

/* Where each flag lands in s_args_t; a flag not given (or given empty) is
 * NULL there. */
static const struct {
    const char *name; /* the setting's name */
    size_t offset;    /* of its const char * in s_args_t */
} s_fields[] = {
    {"summary", offsetof (s_args_t, summary)},
    {"transactions", offsetof (s_args_t, transactions)},
    {"format", offsetof (s_args_t, format)},
    {"calibration-end", offsetof (s_args_t, cal_end)},
    {"observation-end", offsetof (s_args_t, obs_end)},
    {"unit", offsetof (s_args_t, unit)},
    {"output", offsetof (s_args_t, output)},
    {"from", offsetof (s_args_t, from)},
    {"to", offsetof (s_args_t, to)},
    {"lost", offsetof (s_args_t, lost)},
    {"horizon-days", offsetof (s_args_t, horizon)},
    {"clv-months", offsetof (s_args_t, clv_months)},
    {"discount", offsetof (s_args_t, discount)},
    {"top", offsetof (s_args_t, top)},
};

/* Each flag once; each subcommand's table lists those it takes, so a flag
 * that does not apply is refused and --help shows exactly the right ones.
 * Defaults the code tells apart from "not given" stay empty here. */
#define S_SUMMARY                                                                                  \
    {                                                                                              \
        "summary", NULL, NULL,                                                                     \
            "FILE: CSV with a header: frequency,recency,T [,id,monetary_value,revenue]"            \
    }
#define S_TRANSACTIONS                                                                             \
    {                                                                                              \
        "transactions", NULL, NULL, "FILE: purchases, one a line"                                  \
    }
#define S_FORMAT                                                                                   \
    {                                                                                              \
        "format", NULL, NULL,                                                                      \
            "csv|cdnow: layout of --transactions: csv = customer,date,amount with a header "       \
            "(default); cdnow = the CDNOW sample's layout"                                         \
    }
#define S_CAL_END                                                                                  \
    {                                                                                              \
        "calibration-end", NULL, NULL,                                                             \
            "DATE: summarise purchases up to this day (default: the last)"                         \
    }
#define S_OBS_END                                                                                  \
    {                                                                                              \
        "observation-end", NULL, NULL,                                                             \
            "DATE: count purchases after the calibration end up to this day as a holdout period"   \
    }
#define S_UNIT                                                                                     \
    {                                                                                              \
        "unit", NULL, "weeks", "weeks|days: time unit of the model and of --summary files"         \
    }
#define S_HORIZON                                                                                  \
    {                                                                                              \
        "horizon-days", NULL, "90", "N: expected purchases over the next N days"                   \
    }
#define S_CLV_MONTHS                                                                               \
    {                                                                                              \
        "clv-months", NULL, "12", "N: CLV over N months of 30 days (0: no CLV)"                    \
    }
#define S_DISCOUNT                                                                                 \
    {                                                                                              \
        "discount", NULL, "0.01", "R: monthly discount rate of the CLV"                            \
    }
#define S_SCORE_OUTPUT                                                                             \
    {                                                                                              \
        "output", NULL, NULL, "csv|jsonl (default csv)"                                            \
    }
#define S_REPORT_OUTPUT                                                                            \
    {                                                                                              \
        "output", NULL, NULL, "json|text (default json)"                                           \
    }
#define S_FROM                                                                                     \
    {                                                                                              \
        "from", NULL, NULL, "DATE: start of the period (default: 30 days before --to)"             \
    }
#define S_TO                                                                                       \
    {                                                                                              \
        "to", NULL, NULL, "DATE: end of the period (default: the last purchase)"                   \
    }
#define S_LOST                                                                                     \
    {                                                                                              \
        "lost", NULL, "inactive:90",                                                               \
            "inactive:N: lost = no purchase for N days; palive:P: lost = BG/NBD P(alive) below P"  \
    }
#define S_TOP                                                                                      \
    {                                                                                              \
        "top", NULL, "0.2", "F: Pareto: share of top customers"                                    \
    }

static const rt_config_setting_t s_fit_settings[] = {S_SUMMARY, S_TRANSACTIONS, S_FORMAT,
                                                     S_CAL_END, S_UNIT,         RETAINCTL_END};
static const rt_config_setting_t s_score_settings[] = {
    S_SUMMARY, S_TRANSACTIONS, S_FORMAT,   S_CAL_END,      S_UNIT,
    S_HORIZON, S_CLV_MONTHS,   S_DISCOUNT, S_SCORE_OUTPUT, RETAINCTL_END};
static const rt_config_setting_t s_report_settings[] = {
    S_TRANSACTIONS, S_FORMAT, S_UNIT, S_FROM, S_TO, S_LOST, S_TOP, S_REPORT_OUTPUT, RETAINCTL_END};
static const rt_config_setting_t s_summary_settings[] = {S_TRANSACTIONS, S_FORMAT, S_CAL_END,
                                                         S_OBS_END,      S_UNIT,   RETAINCTL_END};

/* Said under every subcommand's --help. */
#define S_NOTES                                                                                    \
    " Dates are YYYY-MM-DD or YYYYMMDD. Exit status: 0 ok, 1 bad data or failure (the message "    \
    "names the file and line), 2 bad usage."

static int
s_usage_error (const char *fmt, const char *what)
{
    fprintf (stderr, "retainctl churn: ");
    fprintf (stderr, fmt, what);
    fprintf (stderr, "\n(retainctl churn --help lists the commands)\n");
    return 2;
}

/* Parses a number with nothing after it; -1 otherwise. */
static int
s_number (const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod (text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite (v))
        return -1;
    *out = v;
    return 0;
}

static int
s_date (const char *flag, const char *text, int32_t *day)
{
    if (churn_history_parse_date (text, strlen (text), day) == 0)
        return 0;
    fprintf (stderr,
             "retainctl churn: %s: not a date: \"%s\" (YYYY-MM-DD or YYYYMMDD)\n"
             "(retainctl churn --help lists the flags)\n",
             flag, text);
    return 2;
}

static double
s_unit_days (const s_args_t *args)
{
    if (!args->unit || strcmp (args->unit, "weeks") == 0)
        return 7;
    if (strcmp (args->unit, "days") == 0)
        return 1;
    return 0;
}

static const char *
s_unit_name (double unit_days)
{
    return unit_days == 1 ? "days" : "weeks";
}

/* The figures' JSON: one line, keys in the order set, 10 digits. */
#define S_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (10))

/* A JSON number, or null for values that are not numbers. */
static json_t *
s_real (double v)
{
    return isfinite (v) ? json_real (v) : json_null ();
}

/* Loads the customers: from --summary, or from --transactions summarised at
 * the calibration end. *history_out (when not NULL) receives the history.
 * Returns 0, 1 on bad data (message printed), 2 on bad usage. */
static int
s_load (const s_args_t *args, bool allow_summary, churn_summary_t **out,
        churn_history_t **history_out)
{
    char err[ERR_LEN];
    double unit_days = s_unit_days (args);
    if (unit_days == 0)
        return s_usage_error ("--unit must be days or weeks, not \"%s\"", args->unit);
    if (allow_summary && args->summary && args->transactions)
        return s_usage_error ("%s", "give --summary or --transactions, not both");
    if (allow_summary && args->summary) {
        if (args->format || args->cal_end)
            return s_usage_error ("%s", "--format and --calibration-end go with --transactions");
        *out = churn_files_read_summary (args->summary, unit_days, err, sizeof err);
        if (!*out) {
            fprintf (stderr, "retainctl churn: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (!args->transactions)
        return s_usage_error ("%s", allow_summary ? "give --summary FILE or --transactions FILE"
                                                  : "give --transactions FILE");
    churn_files_format_t format = CHURN_FILES_CSV;
    if (args->format && churn_files_parse_format (args->format, &format) != 0)
        return s_usage_error ("--format must be csv or cdnow, not \"%s\"", args->format);
    int32_t cal_end = 0, obs_end = 0;
    if (args->cal_end && s_date ("--calibration-end", args->cal_end, &cal_end) != 0)
        return 2;
    if (args->obs_end && s_date ("--observation-end", args->obs_end, &obs_end) != 0)
        return 2;
    churn_history_t *history =
        churn_files_read_transactions (args->transactions, format, err, sizeof err);
    if (!history) {
        fprintf (stderr, "retainctl churn: %s\n", err);
        return 1;
    }
    if (!args->cal_end)
        cal_end = churn_history_last_day (history);
    if (args->obs_end && obs_end <= cal_end) {
        churn_history_destroy (&history);
        return s_usage_error ("%s", "--observation-end must be after the calibration end");
    }
    churn_summary_t *s =
        churn_history_summarize (history, cal_end, args->obs_end ? obs_end : cal_end, unit_days);
    if (!s) {
        churn_history_destroy (&history);
        fprintf (stderr, "retainctl churn: out of memory\n");
        return 1;
    }
    if (s->n == 0) {
        char day[11];
        churn_history_format_date (cal_end, day);
        fprintf (stderr, "retainctl churn: %s: no customer made a first purchase by %s\n",
                 args->transactions, day);
        churn_summary_destroy (&s);
        churn_history_destroy (&history);
        return 1;
    }
    *out = s;
    if (history_out)
        *history_out = history;
    else
        churn_history_destroy (&history);
    return 0;
}

/* Fits both models. Returns 0 or 1 (message printed). *have_gg tells
 * whether a spend model was fitted. */
static int
s_fit (const char *source, const churn_summary_t *s, churn_bgnbd_fit_t *bg,
       churn_gammagamma_fit_t *gg, bool *have_gg)
{
    char err[ERR_LEN];
    if (churn_bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, bg, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl churn: %s: %s\n", source, err);
        return 1;
    }
    if (!bg->converged)
        fprintf (stderr,
                 "retainctl churn: warning: the BG/NBD fit did not converge (gradient %g); "
                 "the parameters may be unreliable\n",
                 bg->gradient_norm);
    *have_gg = false;
    if (s->monetary) {
        if (churn_gammagamma_fit (s->frequency, s->monetary, s->n, gg, err, sizeof err) == 0)
            *have_gg = true;
        else
            fprintf (stderr, "retainctl churn: warning: no spend model: %s\n", err);
    }
    return 0;
}

static const char *
s_source (const s_args_t *args)
{
    return args->summary ? args->summary : args->transactions;
}

static int
s_cmd_fit (const s_args_t *args)
{
    churn_summary_t *s = NULL;
    int rc = s_load (args, true, &s, NULL);
    if (rc != 0)
        return rc;
    churn_bgnbd_fit_t bg;
    churn_gammagamma_fit_t gg;
    bool have_gg;
    rc = s_fit (s_source (args), s, &bg, &gg, &have_gg);
    if (rc == 0) {
        json_t *o = json_object ();
        json_object_set_new (o, "r", s_real (bg.params.r));
        json_object_set_new (o, "alpha", s_real (bg.params.alpha));
        json_object_set_new (o, "a", s_real (bg.params.a));
        json_object_set_new (o, "b", s_real (bg.params.b));
        json_object_set_new (o, "log_likelihood", s_real (bg.log_likelihood));
        json_object_set_new (o, "iterations", json_integer (bg.iterations));
        json_object_set_new (o, "converged", json_boolean (bg.converged));
        json_object_set_new (o, "customers", json_integer ((json_int_t)bg.customers));
        json_object_set_new (o, "unit", json_string (s_unit_name (s->unit_days)));
        if (have_gg) {
            json_t *g = json_object ();
            json_object_set_new (g, "p", s_real (gg.params.p));
            json_object_set_new (g, "q", s_real (gg.params.q));
            json_object_set_new (g, "v", s_real (gg.params.v));
            json_object_set_new (g, "log_likelihood", s_real (gg.log_likelihood));
            json_object_set_new (g, "converged", json_boolean (gg.converged));
            json_object_set_new (g, "customers", json_integer ((json_int_t)gg.customers));
            json_object_set_new (g, "frequency_spend_correlation", s_real (gg.correlation));
            json_object_set_new (o, "gamma_gamma", g);
        }
        retainctl_print_json (o, S_JSON_FLAGS);
    }
    churn_summary_destroy (&s);
    return rc;
}

static int
s_cmd_score (const s_args_t *args)
{
    double horizon_days = 90, months = 12, discount = 0.01;
    if (args->horizon && (s_number (args->horizon, &horizon_days) != 0 || horizon_days <= 0))
        return s_usage_error ("--horizon-days must be a number > 0, not \"%s\"", args->horizon);
    if (args->clv_months && (s_number (args->clv_months, &months) != 0 || months < 0 ||
                             months > 1200 || months != floor (months)))
        return s_usage_error ("--clv-months must be a whole number 0..1200, not \"%s\"",
                              args->clv_months);
    if (args->discount && (s_number (args->discount, &discount) != 0 || discount < 0))
        return s_usage_error ("--discount must be a rate >= 0, not \"%s\"", args->discount);
    bool jsonl = false;
    if (args->output) {
        if (strcmp (args->output, "jsonl") == 0)
            jsonl = true;
        else if (strcmp (args->output, "csv") != 0)
            return s_usage_error ("--output must be csv or jsonl, not \"%s\"", args->output);
    }
    churn_summary_t *s = NULL;
    int rc = s_load (args, true, &s, NULL);
    if (rc != 0)
        return rc;
    churn_bgnbd_fit_t bg;
    churn_gammagamma_fit_t gg;
    bool have_gg;
    churn_score_t *sc = NULL;
    rc = s_fit (s_source (args), s, &bg, &gg, &have_gg);
    if (rc != 0)
        goto cleanup;
    churn_score_opts_t opts = {.horizon = horizon_days / s->unit_days,
                               .clv_periods = (int)months,
                               .period = 30 / s->unit_days,
                               .discount = discount};
    char err[ERR_LEN];
    sc = churn_score_run (s, &bg.params, have_gg ? &gg.params : NULL, &opts, err, sizeof err);
    if (!sc) {
        fprintf (stderr, "retainctl churn: %s\n", err);
        rc = 1;
        goto cleanup;
    }
    if (!jsonl)
        printf ("id,frequency,recency,T,p_alive,expected_purchases,r,f,m,segment,"
                "expected_spend,clv\n");
    for (size_t i = 0; i < s->n; i++) {
        char idbuf[32];
        const char *id = s->id ? s->id[i] : NULL;
        if (!id) {
            snprintf (idbuf, sizeof idbuf, "%zu", i + 1);
            id = idbuf;
        }
        double spend = sc->spend ? sc->spend[i] : -1;
        double clv = sc->clv ? sc->clv[i] : -1;
        const char *segment = churn_rfm_segment_name ((churn_rfm_segment_t)sc->segment[i]);
        if (jsonl) {
            json_t *o = json_object ();
            json_object_set_new (o, "id", json_string (id));
            json_object_set_new (o, "frequency", s_real (s->frequency[i]));
            json_object_set_new (o, "recency", s_real (s->recency[i]));
            json_object_set_new (o, "T", s_real (s->T[i]));
            json_object_set_new (o, "p_alive", s_real (sc->p_alive[i]));
            json_object_set_new (o, "expected_purchases", s_real (sc->expected[i]));
            json_object_set_new (o, "r", json_integer (sc->r[i]));
            json_object_set_new (o, "f", json_integer (sc->f[i]));
            json_object_set_new (o, "m", json_integer (sc->m[i]));
            json_object_set_new (o, "segment", json_string (segment));
            json_object_set_new (o, "expected_spend", spend >= 0 ? s_real (spend) : json_null ());
            json_object_set_new (o, "clv", clv >= 0 ? s_real (clv) : json_null ());
            retainctl_print_json (o, S_JSON_FLAGS);
            continue;
        }
        /* An id with a comma or quote is quoted as CSV wants. */
        if (strpbrk (id, ",\"\n")) {
            putchar ('"');
            for (const char *c = id; *c; c++) {
                if (*c == '"')
                    putchar ('"');
                putchar (*c);
            }
            putchar ('"');
        } else
            fputs (id, stdout);
        printf (",%.10g,%.10g,%.10g,%.6f,%.6f,%d,%d,%d,%s,", s->frequency[i], s->recency[i],
                s->T[i], sc->p_alive[i], sc->expected[i], sc->r[i], sc->f[i], sc->m[i], segment);
        if (spend >= 0)
            printf ("%.2f", spend);
        putchar (',');
        if (clv >= 0)
            printf ("%.2f", clv);
        putchar ('\n');
    }
cleanup:
    churn_score_destroy (&sc);
    churn_summary_destroy (&s);
    return rc;
}

static int
s_cmd_summary (const s_args_t *args)
{
    churn_summary_t *s = NULL;
    int rc = s_load (args, false, &s, NULL);
    if (rc != 0)
        return rc;
    bool holdout = s->frequency_holdout != NULL;
    printf ("id,frequency,recency,T,monetary_value,revenue%s\n",
            holdout ? ",frequency_holdout,monetary_value_holdout,duration_holdout" : "");
    for (size_t i = 0; i < s->n; i++) {
        printf ("%s,%.10g,%.10g,%.10g,%.10g,%.10g", s->id[i], s->frequency[i], s->recency[i],
                s->T[i], s->monetary[i], s->revenue[i]);
        if (holdout)
            printf (",%.10g,%.10g,%.10g", s->frequency_holdout[i], s->monetary_holdout[i],
                    s->duration_holdout);
        putchar ('\n');
    }
    churn_summary_destroy (&s);
    return 0;
}

static int
s_cmd_report (const s_args_t *args)
{
    char err[ERR_LEN];
    double top = 0.2;
    if (args->top && (s_number (args->top, &top) != 0 || !(top > 0 && top <= 1)))
        return s_usage_error ("--top must be a share in (0, 1], not \"%s\"", args->top);
    bool text = false;
    if (args->output) {
        if (strcmp (args->output, "text") == 0)
            text = true;
        else if (strcmp (args->output, "json") != 0)
            return s_usage_error ("--output must be json or text, not \"%s\"", args->output);
    }
    churn_rate_definition_t def = {.rule = CHURN_RATE_INACTIVE, .inactive_days = 90};
    if (args->lost) {
        double v;
        if (strncmp (args->lost, "inactive:", 9) == 0 && s_number (args->lost + 9, &v) == 0 &&
            v >= 1 && v <= 100000 && v == floor (v))
            def.inactive_days = (int)v;
        else if (strncmp (args->lost, "palive:", 7) == 0 && s_number (args->lost + 7, &v) == 0 &&
                 v > 0 && v < 1) {
            def.rule = CHURN_RATE_P_ALIVE;
            def.p_alive_threshold = v;
        } else
            return s_usage_error ("--lost must be inactive:DAYS or palive:P (0 < P < 1), not "
                                  "\"%s\"",
                                  args->lost);
    }
    int32_t from = 0, to = 0;
    if (args->from && s_date ("--from", args->from, &from) != 0)
        return 2;
    if (args->to && s_date ("--to", args->to, &to) != 0)
        return 2;
    if (args->from && args->to && from >= to)
        return s_usage_error ("%s", "--from must be before --to");
    if (s_unit_days (args) == 0)
        return s_usage_error ("--unit must be days or weeks, not \"%s\"", args->unit);

    churn_summary_t *s = NULL;
    churn_history_t *history = NULL;
    s_args_t load_args = *args;
    load_args.cal_end = args->to; /* the model sees what was known at the end */
    int rc = s_load (&load_args, false, &s, &history);
    if (rc != 0)
        return rc;
    if (!args->to)
        to = churn_history_last_day (history);
    if (!args->from)
        from = to - 30;
    if (from >= to) {
        rc = s_usage_error ("%s", "--from must be before the end of the period");
        goto cleanup;
    }
    if (def.rule == CHURN_RATE_P_ALIVE) {
        churn_bgnbd_fit_t bg;
        churn_gammagamma_fit_t gg;
        bool have_gg;
        rc = s_fit (args->transactions, s, &bg, &gg, &have_gg);
        if (rc != 0)
            goto cleanup;
        def.params = bg.params;
        def.unit_days = s->unit_days;
    }
    churn_rate_t rate;
    if (churn_rate_compute (history, &def, from, to, &rate, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl churn: %s\n", err);
        rc = 1;
        goto cleanup;
    }
    churn_pareto_t pareto;
    if (churn_pareto_compute (s->revenue, s->n, top, &pareto) != 0) {
        fprintf (stderr, "retainctl churn: out of memory\n");
        rc = 1;
        goto cleanup;
    }
    char definition[256], day_from[11], day_to[11];
    churn_rate_describe (&def, definition, sizeof definition);
    churn_history_format_date (from, day_from);
    churn_history_format_date (to, day_to);
    if (text) {
        printf ("Period: after %s up to %s\n", day_from, day_to);
        printf ("Definition: %s\n", definition);
        if (rate.defined)
            printf ("Churn rate: %.1f%% (%zu of the %zu customers active at the start were "
                    "lost; %zu stayed)\n",
                    100 * rate.rate, rate.lost, rate.at_start, rate.retained);
        else
            printf ("Churn rate: not defined (no customer was active at the start)\n");
        printf ("New customers: %zu; returned after being lost: %zu\n", rate.new_customers,
                rate.returned);
        if (pareto.defined)
            printf ("Revenue: the top %g%% of customers (%zu of %zu) bring %.1f%% of it; "
                    "%.1f%% of customers bring 80%%\n",
                    100 * top, pareto.top_customers, pareto.customers,
                    100 * pareto.top_revenue_share, 100 * pareto.customers_for_80);
        else
            printf ("Revenue: none recorded\n");
    } else {
        json_t *o = json_object ();
        json_t *period = json_object ();
        json_object_set_new (period, "from", json_string (day_from));
        json_object_set_new (period, "to", json_string (day_to));
        json_object_set_new (o, "period", period);
        json_object_set_new (o, "definition", json_string (definition));
        json_object_set_new (o, "churn_rate", rate.defined ? s_real (rate.rate) : json_null ());
        json_object_set_new (o, "customers_at_start", json_integer ((json_int_t)rate.at_start));
        json_object_set_new (o, "lost", json_integer ((json_int_t)rate.lost));
        json_object_set_new (o, "retained", json_integer ((json_int_t)rate.retained));
        json_object_set_new (o, "returned", json_integer ((json_int_t)rate.returned));
        json_object_set_new (o, "new_customers", json_integer ((json_int_t)rate.new_customers));
        json_t *p = json_object ();
        json_object_set_new (p, "customers", json_integer ((json_int_t)pareto.customers));
        json_object_set_new (p, "top_fraction", s_real (top));
        json_object_set_new (p, "top_customers", json_integer ((json_int_t)pareto.top_customers));
        json_object_set_new (p, "top_revenue_share",
                             pareto.defined ? s_real (pareto.top_revenue_share) : json_null ());
        json_object_set_new (p, "customers_for_80_percent",
                             pareto.defined ? s_real (pareto.customers_for_80) : json_null ());
        json_object_set_new (p, "total_revenue", s_real (pareto.total_revenue));
        json_object_set_new (o, "pareto", p);
        retainctl_print_json (o, S_JSON_FLAGS);
    }
cleanup:
    churn_summary_destroy (&s);
    churn_history_destroy (&history);
    return rc;
}

/* The subcommands retainctl_churn_commands lists, by their word. */
static const struct {
    const char *name;                    /* the word */
    const char *help;                    /* heads its --help */
    const rt_config_setting_t *settings; /* the flags it takes */
    int (*run) (const s_args_t *);       /* its work, on the flags read */
} s_subs[] = {
    {"fit",
     "Fit BG/NBD (and Gamma-Gamma when spend is known) to --summary or --transactions; prints "
     "one JSON object." S_NOTES,
     s_fit_settings, s_cmd_fit},
    {"score",
     "Per customer: P(alive), expected purchases, RFM segment, expected spend and CLV." S_NOTES,
     s_score_settings, s_cmd_score},
    {"report",
     "Churn rate over a period and the revenue share of the top customers, from "
     "--transactions." S_NOTES,
     s_report_settings, s_cmd_report},
    {"summary",
     "Per-customer frequency, recency, T and spend built from --transactions (CSV)." S_NOTES,
     s_summary_settings, s_cmd_summary},
};

/* Parses the flags of the subcommand argv[0] names into args and runs
 * it. */
static int
s_run (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    s_args_t args;
    size_t k = 0;
    int rc;
    while (k < sizeof s_subs / sizeof s_subs[0] && strcmp (s_subs[k].name, argv[0]) != 0)
        k++;
    /* retainctl_churn_commands runs this for the words of s_subs alone. */
    assert (k < sizeof s_subs / sizeof s_subs[0]);
    if (!retainctl_cmd_begin (&cmd, "churn", s_subs[k].help, s_subs[k].settings, argc, argv, &rc))
        goto cleanup;
    memset (&args, 0, sizeof args);
    for (const rt_config_setting_t *s = s_subs[k].settings; s->name; s++) {
        const char *value = rt_config_get (cmd.config, s->name);
        for (size_t i = 0; i < sizeof s_fields / sizeof s_fields[0]; i++) {
            if (strcmp (s_fields[i].name, s->name) == 0)
                *(const char **)((char *)&args + s_fields[i].offset) = *value ? value : NULL;
        }
    }
    rc = s_subs[k].run (&args);
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_churn_commands[] = {
    {.name = "fit",
     .summary = "fit BG/NBD (and Gamma-Gamma when spend is known); one JSON object",
     .run = s_run},
    {.name = "score",
     .summary = "per customer: P(alive), expected purchases, RFM segment, spend, CLV",
     .run = s_run},
    {.name = "report",
     .summary = "churn rate over a period and the revenue share of the top customers",
     .run = s_run},
    {.name = "summary",
     .summary = "per-customer frequency, recency, T and spend from transactions (CSV)",
     .run = s_run},
    {.name = NULL}};
