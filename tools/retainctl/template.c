/*
 * retainctl template: notifyd's templates (notify.templates), as their
 * authors write and check them.
 *
 *   template add --name N --locale L [--channel C|default] [--subject S]
 *                --text-file F [--html-file F] [--quiet-hours yes|no]
 *   template list
 *   template show --name N [--locale L]
 *   template preview --name N --customer C [--channel C] [--var k=v ...]
 *
 * add parses every part (text, HTML, subject) with notifyd's own parser
 * (services/notify/template.h) before anything is written, so a template
 * notifyd would refuse never reaches the table: a mistake exits 2 with the
 * file, the line and the column. One of the same name, locale and
 * channel variant is replaced. Only an e-mail (its own variant, or the
 * default one an e-mail falls back to) has a subject and an HTML part.
 * --quiet-hours says whether a transactional notification of the variant
 * waits out the customer's quiet hours as marketing always does
 * (notify.templates.quiet_hours, which notifyd reads when it queues and
 * again when it claims); without it a new variant takes the column's
 * default (no) and a replaced one keeps what it had. list and show print
 * it.
 *
 * preview renders as notifyd would, without sending: the customer's row
 * in crm (following merges) gives the locale that starts the fallback
 * chain, the time zone of dates (notifyd's: the profile's, else the
 * phone's country's), and the customer's variables as notifyd gives
 * them (template_customer_vars: customer.id, customer.name and name,
 * customer.birthday and birthday); --var adds variables and wins over the
 * customer's. The channel is --channel,
 * else the customer's preferred one, else only the default variants
 * count. For SMS the segment count and encoding are shown (what the
 * provider bills), and for any channel a text past its limit
 * (rt_channel.h) is said to be, as notifyd would refuse it.
 *
 * --var may be given any number of times, which rt_config's flags cannot
 * be: its pairs are taken out of argv before the other flags are parsed.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_tz.h"
#include "rt_utf8.h"
#include "rt_uuid.h"
#include "segments.h"
#include "template.h"

#define S_VARS_MAX 64  /* --var pairs in one preview */
#define S_NAME_MAX 128 /* a template's name, as notify.templates checks it */

static const rt_config_setting_t s_add_settings[] = {
    RETAINCTL_PG_DSN,
    {"name", NULL, "", "the template's name: lower-case letters, digits, '_', '.', '-' (required)"},
    {"locale", NULL, "", "its language, BCP 47: uk, ru, en-US (required)"},
    {"channel", NULL, "default", "the channel it is worded for, or default for every other one"},
    {"subject", NULL, "", "an e-mail's subject (a template too)"},
    {"text-file", NULL, "", "the text (an e-mail's plain-text part), a file or - for stdin"},
    {"html-file", NULL, "", "an e-mail's HTML part, a file"},
    {"quiet-hours", NULL, "",
     "yes: a transactional notification waits out the customer's quiet hours, as marketing "
     "does; no: it goes at once (new: no; a replaced variant keeps its own)"},
    RETAINCTL_END};
static const rt_config_setting_t s_list_settings[] = {RETAINCTL_PG_DSN, RETAINCTL_END};
static const rt_config_setting_t s_show_settings[] = {
    RETAINCTL_PG_DSN,
    {"name", NULL, "", "the template's name (required)"},
    {"locale", NULL, "", "only this locale's variants"},
    RETAINCTL_END};
static const rt_config_setting_t s_preview_settings[] = {
    RETAINCTL_PG_DSN,
    {"name", NULL, "", "the template's name (required)"},
    {"customer", NULL, "", "the customer: crm's id, or the shop's customer id (required)"},
    {"channel", NULL, "", "the channel to preview for (default: the customer's preferred one)"},
    {"var", NULL, "", "a variable, k=v; may be given many times"},
    {"locale-chain", "RETAIN_NOTIFY_LOCALE_CHAIN", TEMPLATE_CHAIN_DEFAULT,
     "the locales tried after the customer's, in order"},
    {"zone", "RETAIN_NOTIFY_DEFAULT_ZONE", "Europe/Kyiv",
     "the time zone of dates for a customer without one"},
    RETAINCTL_END};

/* Without --quiet-hours the column is left out: the table's default for
 * a new variant, the stored value for a replaced one. With it, $7. */
#define S_SQL_UPSERT_SET                                                                           \
    " ON CONFLICT (name, locale, variant) DO UPDATE SET subject = EXCLUDED.subject,"               \
    " text = EXCLUDED.text, html = EXCLUDED.html, updated_at = now()"
#define S_SQL_UPSERT_RETURNING " RETURNING (xmax = 0), quiet_hours"
static const char *s_sql_upsert =
    "INSERT INTO notify.templates (name, locale, variant, subject, text, html)"
    " VALUES ($1, $2, $3, nullif($4, ''), $5, nullif($6, ''))" S_SQL_UPSERT_SET
        S_SQL_UPSERT_RETURNING;
static const char *s_sql_upsert_quiet =
    "INSERT INTO notify.templates (name, locale, variant, subject, text, html, quiet_hours)"
    " VALUES ($1, $2, $3, nullif($4, ''), $5, nullif($6, ''), $7::boolean)" S_SQL_UPSERT_SET
    ", quiet_hours = EXCLUDED.quiet_hours" S_SQL_UPSERT_RETURNING;
static const char *s_sql_list =
    "SELECT name, locale, variant, coalesce(subject, ''), html IS NOT NULL,"
    " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), quiet_hours"
    " FROM notify.templates ORDER BY name, locale, variant";
static const char *s_sql_show =
    "SELECT locale, variant, subject, text, html,"
    " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), quiet_hours"
    " FROM notify.templates WHERE name = $1 AND ($2 = '' OR lower(locale) = lower($2))"
    " ORDER BY locale, variant";
static const char *s_sql_variants =
    "SELECT locale, variant, coalesce(subject, ''), text, coalesce(html, '')"
    " FROM notify.templates WHERE name = $1 ORDER BY locale, variant";
/* A customer by crm's id, or by the shop's, as the survivor of any merge.
 * Two statements: a uuid cast of a shop's id would fail even in a CASE
 * branch not taken, once the planner folds it. */
#define S_SQL_CUSTOMER                                                                             \
    "SELECT c.id, c.name, c.locale, COALESCE(notify.customer_zone(c.id), ''), "                    \
    "c.preferred_channel,"                                                                         \
    " coalesce(to_char(c.birthday, 'YYYY-MM-DD'), '') FROM crm.customers c WHERE c.id = crm.root"
static const char *s_sql_customer_id = S_SQL_CUSTOMER "($1::uuid)";
static const char *s_sql_customer_shop =
    S_SQL_CUSTOMER "((SELECT id FROM crm.customers WHERE shop_customer_id = $1))";

/* The whole file at path ("-": stdin), NUL-terminated, into *text
 * (owned). false with the reason on stderr: unreadable, longer than a
 * template may be, or not UTF-8 text. */
static bool
s_read_file (const retainctl_cmd_t *cmd, const char *flag, const char *path, char **text)
{
    size_t n;
    if (!retainctl_cmd_read_file (cmd, flag, path, TEMPLATE_SOURCE_MAX, text, &n))
        return false;
    if (!rt_utf8_text_ok (*text, n)) {
        fprintf (stderr, "%s: --%s %s: not UTF-8 text (byte %zu)\n", cmd->program, flag, path,
                 rt_utf8_bad_at (*text, n, false));
        free (*text);
        *text = NULL;
        return false;
    }
    return true;
}

/* Parses one part; false with where it is wrong on stderr. */
static bool
s_check (const retainctl_cmd_t *cmd, const char *what, const char *src)
{
    template_error_t err;
    char where[400];
    template_t *t = template_parse (src, strlen (src), &err);
    if (!t) {
        template_error_format (&err, where, sizeof where);
        fprintf (stderr, "%s: %s: %s\n", cmd->program, what, where);
        return false;
    }
    template_destroy (&t);
    return true;
}

static bool
s_name_ok (const char *name)
{
    size_t i, n = strlen (name);
    if (n == 0 || n > S_NAME_MAX)
        return false;
    for (i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* The locale as stored, in BCP 47's customary case: '-' between subtags,
 * the language lower-case, a region upper-case, a script title-case
 * ("UK_ua" is "uk-UA", "sr_latn_rs" "sr-Latn-RS"). */
static void
s_locale_norm (const char *in, char *out, size_t outlen)
{
    size_t i = 0, start, n;
    snprintf (out, outlen, "%s", in);
    while (out[i]) {
        bool alpha = true;
        start = i;
        for (; out[i] && out[i] != '-' && out[i] != '_'; i++)
            alpha = alpha && isalpha ((unsigned char)out[i]);
        n = i - start;
        for (size_t k = start; k < i; k++) {
            bool upper = start > 0 && alpha && (n == 2 || (n == 4 && k == start));
            out[k] =
                (char)(upper ? toupper ((unsigned char)out[k]) : tolower ((unsigned char)out[k]));
        }
        if (out[i])
            out[i++] = '-';
    }
}

/* How a quiet_hours cell reads. */
static const char *
s_quiet_words (const char *cell)
{
    return strcmp (cell, "t") == 0 ? "yes (waits them out)" : "no";
}

/* --- add --- */

static int
s_add (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char locale[64], what[1100];
    char *text = NULL, *html = NULL;
    const char *name, *channel, *subject, *text_file, *html_file;
    const char *params[7];
    bool quiet = false, quiet_given;
    PGresult *res = NULL;
    int rc;

    if (!retainctl_cmd_begin (
            &cmd, "template",
            "Store a template for one locale and channel variant, parsed first: a mistake "
            "exits 2 with its line and column. One of the same name, locale and variant "
            "is replaced.",
            s_add_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    name = rt_config_get (cmd.config, "name");
    channel = rt_config_get (cmd.config, "channel");
    subject = rt_config_get (cmd.config, "subject");
    text_file = rt_config_get (cmd.config, "text-file");
    html_file = rt_config_get (cmd.config, "html-file");
    quiet_given = *rt_config_get (cmd.config, "quiet-hours") != '\0';
    if (quiet_given && !retainctl_cmd_bool (&cmd, "quiet-hours", &quiet))
        goto cleanup;
    if (!s_name_ok (name)) {
        fprintf (stderr,
                 "%s: --name is required: lower-case letters and digits, then also '_', '.', "
                 "'-', at most %d\n",
                 cmd.program, S_NAME_MAX);
        goto cleanup;
    }
    if (template_locale_check (rt_config_get (cmd.config, "locale")) != 0) {
        fprintf (stderr, "%s: --locale \"%s\" is not a BCP 47 tag such as uk, ru or en-US\n",
                 cmd.program, rt_config_get (cmd.config, "locale"));
        goto cleanup;
    }
    s_locale_norm (rt_config_get (cmd.config, "locale"), locale, sizeof locale);
    if (strcmp (channel, "default") != 0 && !rt_channel_by_name (channel)) {
        char all[256];
        rt_channel_list (all, sizeof all);
        fprintf (stderr, "%s: --channel \"%s\" is none of default, %s\n", cmd.program, channel,
                 all);
        goto cleanup;
    }
    if ((*subject || *html_file) && strcmp (channel, "email") != 0 &&
        strcmp (channel, "default") != 0) {
        fprintf (stderr, "%s: only an e-mail has a subject and an HTML part, not %s\n", cmd.program,
                 channel);
        goto cleanup;
    }
    if (strchr (subject, '\n') || strchr (subject, '\r')) {
        fprintf (stderr, "%s: --subject is one line\n", cmd.program);
        goto cleanup;
    }
    if (!*text_file) {
        fprintf (stderr, "%s: --text-file is required (a file, or - for stdin)\n", cmd.program);
        goto cleanup;
    }
    if (!s_read_file (&cmd, "text-file", text_file, &text))
        goto cleanup;
    if (!*text) {
        fprintf (stderr, "%s: --text-file %s is empty\n", cmd.program, text_file);
        goto cleanup;
    }
    if (*html_file && !s_read_file (&cmd, "html-file", html_file, &html))
        goto cleanup;
    snprintf (what, sizeof what, "--text-file %s", text_file);
    if (!s_check (&cmd, what, text))
        goto cleanup;
    snprintf (what, sizeof what, "--html-file %s", html_file);
    if (html && !s_check (&cmd, what, html))
        goto cleanup;
    if (*subject && !s_check (&cmd, "--subject", subject))
        goto cleanup;

    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    params[0] = name;
    params[1] = locale;
    params[2] = channel;
    params[3] = subject;
    params[4] = text;
    params[5] = html ? html : "";
    params[6] = quiet ? "true" : "false";
    res = retainctl_cmd_query (&cmd, quiet_given ? s_sql_upsert_quiet : s_sql_upsert,
                               quiet_given ? 7 : 6, params);
    if (!res)
        goto cleanup;
    printf ("template %s (%s, %s) %s, quiet hours: %s\n", name, locale, channel,
            strcmp (PQgetvalue (res, 0, 0), "t") == 0 ? "stored" : "replaced",
            s_quiet_words (PQgetvalue (res, 0, 1)));
    rc = 0;
cleanup:
    PQclear (res);
    free (html);
    free (text);
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- list and show --- */

static int
s_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    PGresult *res = NULL;
    int rc, r;

    if (!retainctl_cmd_begin (&cmd, "template",
                              "List the templates, one line per locale and channel variant.",
                              s_list_settings, argc, argv, &rc))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    res = retainctl_cmd_query (&cmd, s_sql_list, 0, NULL);
    if (!res)
        goto cleanup;
    printf ("%-32s %-8s %-10s %-5s %-5s %-16s %s\n", "NAME", "LOCALE", "VARIANT", "HTML", "QUIET",
            "UPDATED", "SUBJECT");
    for (r = 0; r < PQntuples (res); r++)
        printf ("%-32s %-8s %-10s %-5s %-5s %-16s %s\n", PQgetvalue (res, r, 0),
                PQgetvalue (res, r, 1), PQgetvalue (res, r, 2),
                strcmp (PQgetvalue (res, r, 4), "t") == 0 ? "yes" : "no",
                strcmp (PQgetvalue (res, r, 6), "t") == 0 ? "yes" : "no", PQgetvalue (res, r, 5),
                PQgetvalue (res, r, 3));
    rc = 0;
cleanup:
    PQclear (res);
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_show (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    PGresult *res = NULL;
    const char *params[2];
    int rc, r;

    if (!retainctl_cmd_begin (&cmd, "template", "Show a template's variants as stored.",
                              s_show_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    params[1] = rt_config_get (cmd.config, "locale");
    if (!retainctl_cmd_required (&cmd, "name", &params[0]))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    res = retainctl_cmd_query (&cmd, s_sql_show, 2, params);
    if (!res)
        goto cleanup;
    if (PQntuples (res) == 0) {
        fprintf (stderr, "%s: no template \"%s\"%s%s\n", cmd.program, params[0],
                 *params[1] ? " in locale " : "", params[1]);
        goto cleanup;
    }
    for (r = 0; r < PQntuples (res); r++) {
        printf ("%s== %s (%s, %s), updated %s UTC\n", r ? "\n" : "", params[0],
                PQgetvalue (res, r, 0), PQgetvalue (res, r, 1), PQgetvalue (res, r, 5));
        printf ("quiet hours: %s\n", s_quiet_words (PQgetvalue (res, r, 6)));
        if (!PQgetisnull (res, r, 2))
            printf ("subject: %s\n", PQgetvalue (res, r, 2));
        printf ("-- text\n%s%s", PQgetvalue (res, r, 3),
                PQgetlength (res, r, 3) > 0 &&
                        PQgetvalue (res, r, 3)[PQgetlength (res, r, 3) - 1] == '\n'
                    ? ""
                    : "\n");
        if (!PQgetisnull (res, r, 4))
            printf ("-- html\n%s%s", PQgetvalue (res, r, 4),
                    PQgetlength (res, r, 4) > 0 &&
                            PQgetvalue (res, r, 4)[PQgetlength (res, r, 4) - 1] == '\n'
                        ? ""
                        : "\n");
    }
    rc = 0;
cleanup:
    PQclear (res);
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- preview --- */

/* The --var pairs of argv, taken out of it (into keep, with *keepc). */
typedef struct {
    char *names[S_VARS_MAX];        /* owned copies of the names */
    const char *values[S_VARS_MAX]; /* lent from argv, after the '=' */
    int n;                          /* how many */
} s_vars_t;

static void
s_vars_free (s_vars_t *v)
{
    int i;
    for (i = 0; i < v->n; i++)
        free (v->names[i]);
    v->n = 0;
}

/* Takes every "--var k=v" and "--var=k=v" out of argv into vars, the rest
 * into keep (argc entries at most, NULL-terminated). -1 with the reason
 * on stderr for a pair without '=' or a name, or too many. */
static int
s_take_vars (const char *program, int argc, char **argv, char **keep, int *keepc, s_vars_t *vars)
{
    int i;
    *keepc = 0;
    for (i = 0; i < argc; i++) {
        const char *pair = NULL, *eq;
        if (strcmp (argv[i], "--var") == 0) {
            if (i + 1 == argc) {
                fprintf (stderr, "%s: --var needs k=v\n", program);
                return -1;
            }
            pair = argv[++i];
        } else if (strncmp (argv[i], "--var=", 6) == 0)
            pair = argv[i] + 6;
        else {
            keep[(*keepc)++] = argv[i];
            continue;
        }
        eq = strchr (pair, '=');
        if (!eq || eq == pair) {
            fprintf (stderr, "%s: --var \"%s\" is not k=v\n", program, pair);
            return -1;
        }
        if (vars->n == S_VARS_MAX) {
            fprintf (stderr, "%s: more than %d --var\n", program, S_VARS_MAX);
            return -1;
        }
        vars->names[vars->n] = strndup (pair, (size_t)(eq - pair));
        if (!vars->names[vars->n]) {
            fprintf (stderr, "%s: out of memory\n", program);
            return -1;
        }
        vars->values[vars->n++] = eq + 1;
    }
    keep[*keepc] = NULL;
    return 0;
}

/* Renders one part; prints it under its heading, or the reason. */
static bool
s_preview_part (const retainctl_cmd_t *cmd, const char *heading, const char *src,
                const template_ctx_t *ctx, rt_buf_t *out)
{
    char err[512], where[400];
    template_error_t perr;
    template_t *t = template_parse (src, strlen (src), &perr);
    rt_buf_reset (out);
    if (!t) {
        /* Stored before this parser's rules, or by hand. */
        template_error_format (&perr, where, sizeof where);
        fprintf (stderr, "%s: the stored %s does not parse: %s\n", cmd->program, heading, where);
        return false;
    }
    if (template_render (t, ctx, out, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s: %s%s\n", cmd->program, heading, err,
                 strncmp (err, "missing variable", 16) == 0 ? " (give it with --var)" : "");
        template_destroy (&t);
        return false;
    }
    template_destroy (&t);
    if (strcmp (heading, "subject") == 0)
        printf ("subject: %s\n", out->data ? out->data : "");
    else
        printf ("-- %s\n%s%s", heading, out->data ? out->data : "",
                out->len > 0 && out->data[out->len - 1] == '\n' ? "" : "\n");
    return true;
}

/* What the channel makes of the text: SMS segments, or the limit. */
static void
s_preview_limits (const char *channel, const rt_buf_t *text)
{
    const rt_channel_t *ch = *channel ? rt_channel_by_name (channel) : NULL;
    size_t chars = rt_utf8_count (text->data ? text->data : "", text->len);
    if (strcmp (channel, "sms") == 0) {
        segments_t s;
        if (segments_count (text->data ? text->data : "", text->len, &s) == 0)
            printf ("sms: %zu segment%s, %s, %zu %s (%zu per segment)\n", s.segments,
                    s.segments == 1 ? "" : "s", segments_encoding_name (s.encoding), s.units,
                    s.encoding == SEGMENTS_GSM7 ? "septets" : "UTF-16 units", s.per_segment);
        return;
    }
    if (ch && ch->text_max > 0 && chars > (size_t)ch->text_max)
        printf ("%s: %zu characters, over its limit of %ld: notifyd would refuse it\n", ch->name,
                chars, ch->text_max);
}

static int
s_preview (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    s_vars_t given = {0};
    char **keep = NULL;
    char birthday_ms[TEMPLATE_CUSTOMER_BUF] = "", rlocale[64];
    int keepc, rc = 2, r, i, pick;
    const char *name, *customer, *channel, *zone;
    const char *params[2];
    PGresult *cust = NULL, *rows = NULL;
    template_variant_t *variants = NULL;
    template_var_t vars[S_VARS_MAX + TEMPLATE_CUSTOMER_VARS];
    template_ctx_t ctx;
    rt_buf_t out = {0};
    rt_uuid_t id;
    size_t nvars = 0;

    memset (&cmd, 0, sizeof cmd);
    keep = calloc ((size_t)argc + 1, sizeof *keep);
    if (!keep)
        return 1;
    if (s_take_vars ("retainctl template preview", argc, argv, keep, &keepc, &given) != 0)
        goto cleanup;
    if (!retainctl_cmd_begin (
            &cmd, "template",
            "Render a template for a customer as notifyd would, without sending: the "
            "customer's locale, time zone and name from crm, --var for the rest.",
            s_preview_settings, keepc, keep, &rc))
        goto cleanup;
    rc = 2;
    name = rt_config_get (cmd.config, "name");
    customer = rt_config_get (cmd.config, "customer");
    if (!*name || !*customer) {
        fprintf (stderr, "%s: --name and --customer are required\n", cmd.program);
        goto cleanup;
    }
    channel = rt_config_get (cmd.config, "channel");
    if (*channel && !rt_channel_by_name (channel)) {
        fprintf (stderr, "%s: --channel \"%s\" is no channel\n", cmd.program, channel);
        goto cleanup;
    }
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    params[0] = customer;
    cust = retainctl_cmd_query (
        &cmd, rt_uuid_parse (customer, &id) == 0 ? s_sql_customer_id : s_sql_customer_shop, 1,
        params);
    if (!cust)
        goto cleanup;
    if (PQntuples (cust) == 0) {
        fprintf (stderr, "%s: no customer \"%s\" in crm\n", cmd.program, customer);
        goto cleanup;
    }
    params[0] = name;
    rows = retainctl_cmd_query (&cmd, s_sql_variants, 1, params);
    if (!rows)
        goto cleanup;
    if (PQntuples (rows) == 0) {
        fprintf (stderr, "%s: no template \"%s\"\n", cmd.program, name);
        goto cleanup;
    }
    if (!*channel)
        channel = PQgetvalue (cust, 0, 4);
    variants = calloc ((size_t)PQntuples (rows), sizeof *variants);
    if (!variants)
        goto cleanup;
    for (r = 0; r < PQntuples (rows); r++) {
        variants[r].locale = PQgetvalue (rows, r, 0);
        variants[r].variant = PQgetvalue (rows, r, 1);
    }
    pick = template_pick (variants, (size_t)PQntuples (rows), channel, PQgetvalue (cust, 0, 2),
                          rt_config_get (cmd.config, "locale-chain"));
    if (pick < 0) {
        fprintf (stderr,
                 "%s: template \"%s\" has no variant for locale \"%s\" or the chain %s, on "
                 "channel %s or default\n",
                 cmd.program, name, PQgetvalue (cust, 0, 2),
                 rt_config_get (cmd.config, "locale-chain"), *channel ? channel : "(none)");
        goto cleanup;
    }

    zone = PQgetvalue (cust, 0, 3);
    if (!*zone)
        zone = rt_config_get (cmd.config, "zone");
    /* --var first: the first of a name counts. */
    for (i = 0; i < given.n; i++) {
        vars[nvars].name = given.names[i];
        vars[nvars++].value = given.values[i];
    }
    /* The customer's, as notifyd gives them. */
    {
        template_customer_t c = {.id = PQgetvalue (cust, 0, 0),
                                 .name = PQgetvalue (cust, 0, 1),
                                 .birthday = PQgetvalue (cust, 0, 5),
                                 .zone = zone};
        template_customer_vars (&c, vars, &nvars, birthday_ms);
    }
    template_render_locale (variants[pick].locale, PQgetvalue (cust, 0, 2), rlocale,
                            sizeof rlocale);
    memset (&ctx, 0, sizeof ctx);
    ctx.locale = rlocale;
    ctx.zone = zone;
    ctx.vars = vars;
    ctx.nvars = nvars;

    printf ("template %s (%s, %s) for customer %s (%s; locale %s, zone %s, channel %s)\n", name,
            variants[pick].locale, variants[pick].variant, PQgetvalue (cust, 0, 0),
            PQgetvalue (cust, 0, 1), *PQgetvalue (cust, 0, 2) ? PQgetvalue (cust, 0, 2) : "unknown",
            zone, *channel ? channel : "none");
    if (*PQgetvalue (rows, pick, 2) &&
        !s_preview_part (&cmd, "subject", PQgetvalue (rows, pick, 2), &ctx, &out))
        goto cleanup;
    if (!s_preview_part (&cmd, "text", PQgetvalue (rows, pick, 3), &ctx, &out))
        goto cleanup;
    s_preview_limits (channel, &out);
    if (*PQgetvalue (rows, pick, 4)) {
        ctx.html = true;
        if (!s_preview_part (&cmd, "html", PQgetvalue (rows, pick, 4), &ctx, &out))
            goto cleanup;
    }
    rc = 0;
cleanup:
    rt_buf_free (&out);
    free (variants);
    PQclear (rows);
    PQclear (cust);
    retainctl_cmd_end (&cmd);
    s_vars_free (&given);
    free (keep);
    return rc;
}

const retainctl_command_t retainctl_template_commands[] = {
    {.name = "add",
     .summary = "store a template: --name N --locale L [--channel C] --text-file F (parsed first)",
     .run = s_add},
    {.name = "list", .summary = "list the templates and their variants", .run = s_list},
    {.name = "show", .summary = "show a template as stored: --name N [--locale L]", .run = s_show},
    {.name = "preview",
     .summary = "render for a customer without sending: --name N --customer C [--var k=v]",
     .run = s_preview},
    {.name = "whatsapp",
     .summary = "the WhatsApp templates Meta approved, as notifications go outside the window: "
                "set, list, remove",
     .subs = retainctl_template_whatsapp_commands},
    {.name = NULL}};
