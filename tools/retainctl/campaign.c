/*
 * retainctl campaign: notifyd's campaigns (notify.campaigns), one template
 * to a segment of customers, throttled, each customer once.
 *
 *   campaign create --template T --segment S [--rate 50] [--category marketing]
 *                   [--start] [--by NAME]
 *   campaign start|pause|resume|cancel --id C
 *   campaign list [--json]
 *   campaign status --id C [--follow] [--interval 1s] [--json]
 *
 * create evaluates the segment into notify.campaign_targets, in the same
 * transaction as the campaign's row, so a campaign exists whole or not at
 * all; the customers are never held here: the SQL segments go
 * INSERT ... SELECT over crm.customers in batches of S_SEGMENT_BATCH (a
 * keyset on the id, each customer followed to the survivor of its merges),
 * and a CSV is read line by line and sent S_CSV_BATCH ids at a time. The
 * segments:
 *   carrier=C[,status=S]  customers with a parcel of carrier C whose status
 *                         is S (in_transit when not named): crm.card_shipments
 *   wrote=CH,since=D      customers who wrote on channel CH within D (7d,
 *                         12h): crm.identities.last_seen
 *   csv=FILE              the first field of each line of FILE (- for
 *                         stdin): a customer id (a UUID) or a shop's
 *                         customer id; blank lines, # comments and a
 *                         header (customer_id, shop_customer_id, id) are
 *                         passed over; ids matching nobody are counted
 *   all                   every customer
 * A segment that matches nobody still makes the campaign, done at once
 * with 0 targets: the question was answered, so the exit is 0, and a
 * warning on stderr says so plainly.
 *
 * start, pause, resume and cancel move the status (draft → running ⇄
 * paused; any of them → cancelled); the running notifyd's runner claims
 * only a running campaign's targets, so a pause holds from its next step.
 * A move the status does not allow exits 1 naming the status.
 *
 * status prints the counts; with --follow it prints them again every
 * --interval until the campaign is over and its counts final (done or
 * cancelled, and no send left queued or sending), or Ctrl-C: a progress
 * bar redrawn in place on a terminal, a plain line whenever they change
 * otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "retainctl.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_signal.h"
#include "rt_uuid.h"

#define S_SEGMENT_BATCH 5000     /* customers one segment statement looks at */
#define S_CSV_BATCH     1000     /* ids of a CSV one statement takes */
#define S_RATE_MAX      100000.0 /* targets a second, a bound a typo cannot pass */
#define S_FIELD_MAX     128      /* a segment's value, a CSV id */
#define S_BAR_WIDTH     30       /* the progress bar's cells */

#define S_PG_DSN                                                                                   \
    {                                                                                              \
        "pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"               \
    }
#define S_JSON                                                                                     \
    {                                                                                              \
        "json", NULL, "false", "print JSON instead of text"                                        \
    }
#define S_ID                                                                                       \
    {                                                                                              \
        "id", NULL, "", "the campaign's id (required)"                                             \
    }
#define S_END                                                                                      \
    {                                                                                              \
        NULL, NULL, NULL, NULL                                                                     \
    }

static const rt_config_setting_t s_create_settings[] = {
    S_PG_DSN,
    {"template", NULL, "", "the template's name (notify.templates; required)"},
    {"segment", NULL, "",
     "who: carrier=C[,status=S], wrote=CHANNEL,since=7d, csv=FILE (- for stdin) or all "
     "(required)"},
    {"rate", NULL, "50", "targets a second at most, all notifyd replicas together"},
    {"category", NULL, "marketing",
     "marketing (needs consent, waits out quiet hours) or transactional"},
    {"start", NULL, "false", "start it at once (otherwise a draft: campaign start)"},
    {"by", NULL, "", "who made it, kept with it; default: $USER"},
    S_END};
static const rt_config_setting_t s_id_settings[] = {S_PG_DSN, S_ID, S_END};
static const rt_config_setting_t s_list_settings[] = {S_PG_DSN, S_JSON, S_END};
static const rt_config_setting_t s_status_settings[] = {
    S_PG_DSN,
    S_ID,
    {"follow", NULL, "false", "print again until the campaign is over and its counts final"},
    {"interval", NULL, "1s", "between two prints with --follow"},
    S_JSON,
    S_END};

/* $1 id, $2 template, $3 category, $4 segment (JSON), $5 rate, $6 by, $7 now (ms). */
static const char *s_sql_insert =
    "INSERT INTO notify.campaigns (id, template, category, segment, rate_per_s, created_by,"
    "  created_at, updated_at)"
    " VALUES ($1::uuid, $2, $3, $4::jsonb, $5::float8, $6, to_timestamp($7::bigint / 1000.0),"
    "  to_timestamp($7::bigint / 1000.0))";

static const char *s_sql_template = "SELECT 1 FROM notify.templates WHERE name = $1 LIMIT 1";

/* One batch of a SQL segment: the customers after $2 in id order ($3 of
 * them), those matching ($4 the kind, $5 and $6 its values, $7 since in
 * ms) followed to their survivor and added to campaign $1. Returns the
 * batch's last id (NULL: no customer left) and the targets added. */
static const char *s_sql_segment =
    "WITH b AS (SELECT id, merged_into FROM crm.customers WHERE id > $2::uuid"
    "           ORDER BY id LIMIT $3::integer),"
    " m AS (SELECT DISTINCT CASE WHEN b.merged_into IS NULL THEN b.id ELSE crm.root(b.id) END"
    "         AS cid FROM b"
    "        WHERE $4 = 'all'"
    "           OR ($4 = 'carrier' AND EXISTS (SELECT 1 FROM crm.card_shipments s"
    "                WHERE s.customer_id = b.id AND s.carrier = $5 AND s.status = $6))"
    "           OR ($4 = 'wrote' AND EXISTS (SELECT 1 FROM crm.identities i"
    "                WHERE i.customer_id = b.id AND i.channel = $5"
    "                  AND i.last_seen >= to_timestamp($7::bigint / 1000.0)))),"
    " ins AS (INSERT INTO notify.campaign_targets (campaign_id, customer_id)"
    "         SELECT $1::uuid, cid FROM m WHERE cid IS NOT NULL ON CONFLICT DO NOTHING"
    "         RETURNING 1)"
    " SELECT (SELECT id::text FROM b ORDER BY id DESC LIMIT 1), (SELECT count(*) FROM ins)";

/* One batch of a CSV: customer ids $2 (uuid[]) and shop ids $3 (text[])
 * added to campaign $1, followed to their survivor. Returns the targets
 * added and the ids that matched nobody. */
static const char *s_sql_csv =
    "WITH v AS (SELECT id, merged_into FROM crm.customers WHERE id = ANY ($2::uuid[])"
    "           UNION SELECT id, merged_into FROM crm.customers"
    "            WHERE shop_customer_id = ANY ($3::text[])),"
    " ins AS (INSERT INTO notify.campaign_targets (campaign_id, customer_id)"
    "         SELECT DISTINCT $1::uuid, CASE WHEN merged_into IS NULL THEN id"
    "                                       ELSE crm.root(id) END FROM v"
    "         ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM ins),"
    "  (SELECT count(*) FROM unnest($2::uuid[]) u(x)"
    "    WHERE NOT EXISTS (SELECT 1 FROM crm.customers c WHERE c.id = u.x))"
    "  + (SELECT count(*) FROM unnest($3::text[]) u(x)"
    "    WHERE NOT EXISTS (SELECT 1 FROM crm.customers c WHERE c.shop_customer_id = u.x))";

/* The campaign evaluated: its count, its segment's figures, and its
 * status ($5: start it). 0 targets: done and settled at once. */
static const char *s_sql_targeted =
    "UPDATE notify.campaigns SET targeted = $2::bigint, segment = segment || $3::jsonb,"
    "  status = CASE WHEN $2::bigint = 0 THEN 'done' WHEN $5::boolean THEN 'running'"
    "                ELSE 'draft' END,"
    "  settled = $2::bigint = 0,"
    "  started_at = CASE WHEN $2::bigint > 0 AND $5::boolean"
    "                    THEN to_timestamp($4::bigint / 1000.0) END,"
    "  finished_at = CASE WHEN $2::bigint = 0 THEN to_timestamp($4::bigint / 1000.0) END"
    " WHERE id = $1::uuid RETURNING status";

/* A move of the status: $2 the new one, $3 the ones it may come from
 * (text[]), $4 now (ms). Returns the status before and after (no row: no
 * such campaign); the status is unchanged when the move was not allowed. */
static const char *s_sql_move =
    "WITH old AS (SELECT id, status FROM notify.campaigns WHERE id = $1::uuid FOR UPDATE),"
    " u AS (UPDATE notify.campaigns k SET status = $2,"
    "         started_at = CASE WHEN $2 = 'running' THEN COALESCE(k.started_at,"
    "                             to_timestamp($4::bigint / 1000.0)) ELSE k.started_at END,"
    "         finished_at = CASE WHEN $2 = 'cancelled' THEN to_timestamp($4::bigint / 1000.0)"
    "                            ELSE k.finished_at END,"
    "         updated_at = to_timestamp($4::bigint / 1000.0)"
    "        FROM old WHERE k.id = old.id AND old.status = ANY ($3::text[]) RETURNING k.status)"
    " SELECT old.status, COALESCE((SELECT status FROM u), old.status) FROM old";

#define S_COLUMNS                                                                                  \
    "id::text, template, category, status, rate_per_s, targeted, queued, sent, skipped, failed,"   \
    " (SELECT count(*) FROM notify.campaign_targets t WHERE t.campaign_id = k.id"                  \
    "   AND t.state = 'pending'),"                                                                 \
    " settled, created_by, to_char(created_at AT TIME ZONE 'UTC', "                                \
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"                                                           \
    " segment::text"

static const char *s_sql_list =
    "SELECT " S_COLUMNS " FROM notify.campaigns k ORDER BY created_at DESC, id LIMIT 200";
static const char *s_sql_status =
    "SELECT " S_COLUMNS " FROM notify.campaigns k WHERE id = $1::uuid";

/* The columns of S_COLUMNS, by number. */
enum {
    C_ID,
    C_TEMPLATE,
    C_CATEGORY,
    C_STATUS,
    C_RATE,
    C_TARGETED,
    C_QUEUED,
    C_SENT,
    C_SKIPPED,
    C_FAILED,
    C_PENDING,
    C_SETTLED,
    C_BY,
    C_CREATED,
    C_SEGMENT
};

/* One subcommand's run: its flags and its connection. */
typedef struct {
    char program[64];    /* "retainctl campaign create", heads messages */
    rt_config_t *config; /* its flags */
    rt_db_t *db;         /* reads crm, writes notify's campaigns */
    PGresult *res;       /* the statement's result */
} s_cmd_t;

/* A parsed --segment. */
typedef struct {
    char kind[16];           /* carrier, wrote, csv, all */
    char a[S_FIELD_MAX + 1]; /* carrier: the carrier; wrote: the channel; csv: the file */
    char b[S_FIELD_MAX + 1]; /* carrier: the status */
    int64_t since_ms;        /* wrote: the period */
} s_segment_t;

/* --- the run of one subcommand --- */

static bool
s_begin (s_cmd_t *cmd, const char *summary, const rt_config_setting_t *settings, int argc,
         char **argv, int *rc)
{
    memset (cmd, 0, sizeof *cmd);
    snprintf (cmd->program, sizeof cmd->program, "retainctl campaign %s", argv[0]);
    *rc = 1;
    cmd->config = rt_config_new (cmd->program, summary, settings);
    if (!cmd->config)
        return false;
    return retainctl_parse (cmd->config, cmd->program, argc, argv, rc);
}

static bool
s_connect (s_cmd_t *cmd)
{
    cmd->db = rt_db_new (rt_config_get (cmd->config, "pg-dsn"), "retainctl");
    if (!cmd->db || rt_db_connect (cmd->db) != 0) {
        fprintf (stderr, "%s: cannot connect: %s\n", cmd->program,
                 cmd->db ? rt_db_error (cmd->db) : "");
        return false;
    }
    return true;
}

static void
s_end (s_cmd_t *cmd)
{
    PQclear (cmd->res);
    cmd->res = NULL;
    /* A transaction not committed ends with the connection, rolled back. */
    rt_db_destroy (&cmd->db);
    rt_config_destroy (&cmd->config);
}

static void
s_db_error (const s_cmd_t *cmd)
{
    fprintf (stderr, "%s: %s%s\n", cmd->program, rt_db_error (cmd->db),
             strcmp (rt_db_sqlstate (cmd->db), "42P01") == 0 ? " (has `retainctl migrate` run?)"
                                                             : "");
}

static bool
s_flag_bool (const s_cmd_t *cmd, const char *flag, bool *out)
{
    char err[256];
    if (rt_config_get_bool (cmd->config, flag, out, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd->program, err);
        return false;
    }
    return true;
}

/* --id as a UUID; false (usage) otherwise. */
static bool
s_campaign_id (const s_cmd_t *cmd, const char **id)
{
    rt_uuid_t u;
    *id = rt_config_get (cmd->config, "id");
    if (!**id) {
        fprintf (stderr, "%s: --id is required\n", cmd->program);
        return false;
    }
    if (rt_uuid_parse (*id, &u) != 0) {
        fprintf (stderr, "%s: --id \"%s\" is not a campaign id (a UUID)\n", cmd->program, *id);
        return false;
    }
    return true;
}

/* --- segments --- */

/* "7d", "12h", "30m", "90s": ms into *out; -1 when it is none of them. */
static int
s_period (const char *s, int64_t *out)
{
    char *end = NULL;
    long long n;
    int64_t unit;
    errno = 0;
    n = strtoll (s, &end, 10);
    if (errno || end == s || n <= 0 || !end[0] || end[1])
        return -1;
    switch (end[0]) {
    case 'd':
        unit = 86400000;
        break;
    case 'h':
        unit = 3600000;
        break;
    case 'm':
        unit = 60000;
        break;
    case 's':
        unit = 1000;
        break;
    default:
        return -1;
    }
    if (n > INT64_MAX / unit)
        return -1;
    *out = n * unit;
    return 0;
}

/* A segment value: 1 to S_FIELD_MAX bytes, no control characters. */
static bool
s_value_ok (const char *v)
{
    size_t n = strlen (v);
    if (n == 0 || n > S_FIELD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < ' ' || v[i] == 0x7f)
            return false;
    return true;
}

/* Parses --segment into sg; false with the reason printed (usage). */
static bool
s_segment_parse (const s_cmd_t *cmd, const char *text, s_segment_t *sg)
{
    char buf[512], *save = NULL;
    const char *why = NULL;
    bool have_since = false;
    memset (sg, 0, sizeof *sg);
    if (strcmp (text, "all") == 0) {
        snprintf (sg->kind, sizeof sg->kind, "all");
        return true;
    }
    if (strncmp (text, "csv=", 4) == 0) {
        snprintf (sg->kind, sizeof sg->kind, "csv");
        if (!text[4] || strlen (text + 4) > S_FIELD_MAX) {
            why = "csv= names a file, or - for stdin";
            goto bad;
        }
        snprintf (sg->a, sizeof sg->a, "%s", text + 4);
        return true;
    }
    if (strlen (text) >= sizeof buf) {
        why = "it is too long";
        goto bad;
    }
    snprintf (buf, sizeof buf, "%s", text);
    for (char *p = strtok_r (buf, ",", &save); p; p = strtok_r (NULL, ",", &save)) {
        char *eq = strchr (p, '=');
        if (!eq || !s_value_ok (eq + 1)) {
            why = "each part is name=value";
            goto bad;
        }
        *eq = '\0';
        if (strcmp (p, "carrier") == 0 && !sg->kind[0]) {
            snprintf (sg->kind, sizeof sg->kind, "carrier");
            snprintf (sg->a, sizeof sg->a, "%s", eq + 1);
        } else if (strcmp (p, "wrote") == 0 && !sg->kind[0]) {
            if (!rt_channel_by_name (eq + 1)) {
                why = "wrote= names a channel (telegram, viber, sms, ...)";
                goto bad;
            }
            snprintf (sg->kind, sizeof sg->kind, "wrote");
            snprintf (sg->a, sizeof sg->a, "%s", eq + 1);
        } else if (strcmp (p, "status") == 0 && strcmp (sg->kind, "carrier") == 0) {
            snprintf (sg->b, sizeof sg->b, "%s", eq + 1);
        } else if (strcmp (p, "since") == 0 && strcmp (sg->kind, "wrote") == 0) {
            if (s_period (eq + 1, &sg->since_ms) != 0) {
                why = "since= is a period such as 7d, 12h, 30m";
                goto bad;
            }
            have_since = true;
        } else {
            why = "the segments are carrier=C[,status=S], wrote=CHANNEL,since=7d, csv=FILE, all";
            goto bad;
        }
    }
    if (!sg->kind[0]) {
        why = "the segments are carrier=C[,status=S], wrote=CHANNEL,since=7d, csv=FILE, all";
        goto bad;
    }
    if (strcmp (sg->kind, "wrote") == 0 && !have_since) {
        why = "wrote= needs since= (7d, 12h)";
        goto bad;
    }
    if (strcmp (sg->kind, "carrier") == 0 && !sg->b[0])
        snprintf (sg->b, sizeof sg->b, "in_transit");
    return true;
bad:
    fprintf (stderr, "%s: --segment \"%s\": %s\n", cmd->program, text, why);
    return false;
}

/* The segment as stored (JSON text, owned), NULL when out of memory. */
static char *
s_segment_json (const s_segment_t *sg)
{
    json_t *o = json_pack ("{ss}", "kind", sg->kind);
    char *text;
    if (!o)
        return NULL;
    if (strcmp (sg->kind, "carrier") == 0) {
        json_object_set_new (o, "carrier", json_string (sg->a));
        json_object_set_new (o, "status", json_string (sg->b));
    } else if (strcmp (sg->kind, "wrote") == 0) {
        json_object_set_new (o, "channel", json_string (sg->a));
        json_object_set_new (o, "since_ms", json_integer (sg->since_ms));
    } else if (strcmp (sg->kind, "csv") == 0) {
        json_object_set_new (o, "file", json_string (sg->a));
    }
    text = json_dumps (o, JSON_COMPACT);
    json_decref (o);
    return text;
}

/* A SQL segment into campaign id, batch by batch: targets added into
 * *added. 0 or -1 (PostgreSQL, printed). */
static int
s_segment_sql (s_cmd_t *cmd, const char *id, const s_segment_t *sg, long long *added)
{
    char after[RT_UUID_STR_LEN + 1] = "00000000-0000-0000-0000-000000000000", batch[16], since[24];
    snprintf (batch, sizeof batch, "%d", S_SEGMENT_BATCH);
    snprintf (since, sizeof since, "%lld", (long long)(rt_clock_now_ms () - sg->since_ms));
    for (;;) {
        const char *v[7] = {id, after, batch, sg->kind, sg->a, sg->b, since};
        PGresult *r = rt_db_exec_params (cmd->db, s_sql_segment, 7, v);
        if (!r) {
            s_db_error (cmd);
            return -1;
        }
        if (PQgetisnull (r, 0, 0)) {
            PQclear (r);
            return 0;
        }
        snprintf (after, sizeof after, "%s", PQgetvalue (r, 0, 0));
        *added += atoll (PQgetvalue (r, 0, 1));
        PQclear (r);
    }
}

/* The first field of a CSV line, unquoted and trimmed, in place. */
static char *
s_csv_field (char *line)
{
    char *p = line, *end;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strcspn (p, ",;\t\r\n");
    *end = '\0';
    while (end > p && end[-1] == ' ')
        *--end = '\0';
    if (*p == '"' && end > p + 1 && end[-1] == '"') {
        end[-1] = '\0';
        p++;
    }
    return p;
}

/* Sends one CSV batch (the arrays built so far) and starts the next. */
static int
s_csv_flush (s_cmd_t *cmd, const char *id, rt_buf_t *uuids, rt_buf_t *shops, long long *added,
             long long *unmatched)
{
    PGresult *r;
    rt_buf_array_end (uuids);
    rt_buf_array_end (shops);
    if (uuids->failed || shops->failed) {
        fprintf (stderr, "%s: out of memory\n", cmd->program);
        return -1;
    }
    {
        const char *v[3] = {id, uuids->data, shops->data};
        r = rt_db_exec_params (cmd->db, s_sql_csv, 3, v);
    }
    if (!r) {
        s_db_error (cmd);
        return -1;
    }
    *added += atoll (PQgetvalue (r, 0, 0));
    *unmatched += atoll (PQgetvalue (r, 0, 1));
    PQclear (r);
    rt_buf_reset (uuids);
    rt_buf_reset (shops);
    rt_buf_array_begin (uuids);
    rt_buf_array_begin (shops);
    return 0;
}

/* A CSV segment, streamed S_CSV_BATCH ids at a time. 0, -1 (printed), or
 * 2 when the file cannot be read or holds a bad id. */
static int
s_segment_csv (s_cmd_t *cmd, const char *id, const s_segment_t *sg, long long *added,
               long long *rows, long long *unmatched)
{
    FILE *f = strcmp (sg->a, "-") == 0 ? stdin : fopen (sg->a, "r");
    rt_buf_t uuids = {0}, shops = {0};
    char *line = NULL;
    size_t cap = 0;
    long long lineno = 0;
    int n = 0, rc = -1;
    bool first = true;
    if (!f) {
        fprintf (stderr, "%s: cannot read %s: %s\n", cmd->program, sg->a, strerror (errno));
        return 2;
    }
    rt_buf_array_begin (&uuids);
    rt_buf_array_begin (&shops);
    while (getline (&line, &cap, f) >= 0) {
        char *v = s_csv_field (line);
        rt_uuid_t u;
        lineno++;
        if (!*v || *v == '#')
            continue;
        if (first && (strcasecmp (v, "customer_id") == 0 ||
                      strcasecmp (v, "shop_customer_id") == 0 || strcasecmp (v, "id") == 0)) {
            first = false;
            continue;
        }
        first = false;
        if (strlen (v) > S_FIELD_MAX) {
            fprintf (stderr, "%s: %s:%lld: the id is longer than %d bytes\n", cmd->program, sg->a,
                     lineno, S_FIELD_MAX);
            rc = 2;
            goto cleanup;
        }
        if (rt_uuid_parse (v, &u) == 0)
            rt_buf_array_raw (&uuids, v);
        else
            rt_buf_array_text (&shops, v);
        (*rows)++;
        if (++n == S_CSV_BATCH) {
            if (s_csv_flush (cmd, id, &uuids, &shops, added, unmatched) != 0)
                goto cleanup;
            n = 0;
        }
    }
    if (ferror (f)) {
        fprintf (stderr, "%s: reading %s: %s\n", cmd->program, sg->a, strerror (errno));
        rc = 2;
        goto cleanup;
    }
    if (n > 0 && s_csv_flush (cmd, id, &uuids, &shops, added, unmatched) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    free (line);
    rt_buf_free (&uuids);
    rt_buf_free (&shops);
    if (f != stdin)
        fclose (f);
    return rc;
}

/* --- create --- */

/* --rate as its canonical text; false (usage) when out of range. */
static bool
s_rate (const s_cmd_t *cmd, char *out, size_t outlen)
{
    const char *v = rt_config_get (cmd->config, "rate");
    char *end = NULL;
    double d;
    errno = 0;
    d = strtod (v, &end);
    if (errno || end == v || *end || !isfinite (d) || d <= 0 || d > S_RATE_MAX) {
        fprintf (stderr, "%s: --rate \"%s\" must be a number above 0, at most %g\n", cmd->program,
                 v, S_RATE_MAX);
        return false;
    }
    snprintf (out, outlen, "%.17g", d);
    return true;
}

static int
s_create (int argc, char **argv)
{
    s_cmd_t cmd;
    s_segment_t sg;
    rt_uuid_t u = rt_uuid_v7 ();
    char id[RT_UUID_STR_LEN + 1], rate[32], now[24], by[128], targeted[24], extra[256];
    const char *template_name, *category;
    char *segment = NULL;
    long long added = 0, rows = 0, unmatched = 0;
    bool start;
    int rc;
    if (!s_begin (&cmd, "Make a campaign: a template to a segment of customers, throttled.",
                  s_create_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    template_name = rt_config_get (cmd.config, "template");
    category = rt_config_get (cmd.config, "category");
    if (!*template_name) {
        fprintf (stderr, "%s: --template is required\n", cmd.program);
        goto cleanup;
    }
    if (!*rt_config_get (cmd.config, "segment")) {
        fprintf (stderr, "%s: --segment is required\n", cmd.program);
        goto cleanup;
    }
    if (strcmp (category, "marketing") != 0 && strcmp (category, "transactional") != 0) {
        fprintf (stderr, "%s: --category is marketing or transactional\n", cmd.program);
        goto cleanup;
    }
    if (!s_flag_bool (&cmd, "start", &start) || !s_rate (&cmd, rate, sizeof rate) ||
        !s_segment_parse (&cmd, rt_config_get (cmd.config, "segment"), &sg))
        goto cleanup;
    snprintf (by, sizeof by, "%s",
              *rt_config_get (cmd.config, "by")     ? rt_config_get (cmd.config, "by")
              : getenv ("USER") && *getenv ("USER") ? getenv ("USER")
                                                    : "retainctl");
    rc = 1;
    segment = s_segment_json (&sg);
    if (!segment) {
        fprintf (stderr, "%s: out of memory\n", cmd.program);
        goto cleanup;
    }
    if (!s_connect (&cmd))
        goto cleanup;
    {
        const char *v[1] = {template_name};
        cmd.res = rt_db_exec_params (cmd.db, s_sql_template, 1, v);
        if (!cmd.res) {
            s_db_error (&cmd);
            goto cleanup;
        }
        if (PQntuples (cmd.res) == 0) {
            fprintf (stderr, "%s: no template is named \"%s\" (retainctl template list)\n",
                     cmd.program, template_name);
            rc = 2;
            goto cleanup;
        }
        PQclear (cmd.res);
        cmd.res = NULL;
    }
    rt_uuid_format (&u, id);
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (rt_db_begin (cmd.db) != 0) {
        s_db_error (&cmd);
        goto cleanup;
    }
    {
        const char *v[7] = {id, template_name, category, segment, rate, by, now};
        cmd.res = rt_db_exec_params (cmd.db, s_sql_insert, 7, v);
        if (!cmd.res) {
            s_db_error (&cmd);
            goto cleanup;
        }
        PQclear (cmd.res);
        cmd.res = NULL;
    }
    if (strcmp (sg.kind, "csv") == 0) {
        int crc = s_segment_csv (&cmd, id, &sg, &added, &rows, &unmatched);
        if (crc != 0) {
            rc = crc < 0 ? 1 : crc;
            goto cleanup;
        }
        snprintf (extra, sizeof extra, "{\"rows\": %lld, \"unmatched\": %lld}", rows, unmatched);
    } else {
        if (s_segment_sql (&cmd, id, &sg, &added) != 0)
            goto cleanup;
        snprintf (extra, sizeof extra, "{}");
    }
    snprintf (targeted, sizeof targeted, "%lld", added);
    {
        const char *v[5] = {id, targeted, extra, now, start ? "true" : "false"};
        cmd.res = rt_db_exec_params (cmd.db, s_sql_targeted, 5, v);
        if (!cmd.res) {
            s_db_error (&cmd);
            goto cleanup;
        }
    }
    if (rt_db_commit (cmd.db) != 0) {
        s_db_error (&cmd);
        goto cleanup;
    }
    if (strcmp (sg.kind, "csv") == 0 && unmatched > 0)
        fprintf (stderr, "%s: warning: %lld of %lld ids in %s matched no customer\n", cmd.program,
                 unmatched, rows, sg.a);
    if (added == 0) {
        fprintf (stderr,
                 "%s: warning: the segment matches nobody; campaign %s is done with 0 targets\n",
                 cmd.program, id);
        printf ("%s done targeted=0\n", id);
    } else {
        printf ("%s %s targeted=%lld\n", id, start ? "running" : "draft", added);
        if (!start)
            fprintf (stderr, "%s: a draft: retainctl campaign start --id %s\n", cmd.program, id);
    }
    rc = 0;
cleanup:
    free (segment);
    s_end (&cmd);
    return rc;
}

/* --- start, pause, resume, cancel --- */

static int
s_move (int argc, char **argv, const char *summary, const char *to, const char *from)
{
    s_cmd_t cmd;
    const char *id;
    char now[24];
    int rc;
    if (!s_begin (&cmd, summary, s_id_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_campaign_id (&cmd, &id))
        goto cleanup;
    rc = 1;
    if (!s_connect (&cmd))
        goto cleanup;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[4] = {id, to, from, now};
        cmd.res = rt_db_exec_params (cmd.db, s_sql_move, 4, v);
    }
    if (!cmd.res) {
        s_db_error (&cmd);
        goto cleanup;
    }
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr, "%s: no campaign %s\n", cmd.program, id);
        goto cleanup;
    }
    if (strcmp (PQgetvalue (cmd.res, 0, 1), to) != 0 ||
        strcmp (PQgetvalue (cmd.res, 0, 0), to) == 0) {
        fprintf (stderr, "%s: campaign %s is %s: it cannot be made %s\n", cmd.program, id,
                 PQgetvalue (cmd.res, 0, 0), to);
        goto cleanup;
    }
    printf ("%s %s (was %s)\n", id, to, PQgetvalue (cmd.res, 0, 0));
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

static int
s_start (int argc, char **argv)
{
    return s_move (argc, argv, "Start a draft campaign.", "running", "{draft}");
}

static int
s_pause (int argc, char **argv)
{
    return s_move (argc, argv, "Pause a running campaign: no further target is claimed.", "paused",
                   "{running}");
}

static int
s_resume (int argc, char **argv)
{
    return s_move (argc, argv, "Resume a paused campaign.", "running", "{paused}");
}

static int
s_cancel (int argc, char **argv)
{
    return s_move (argc, argv, "Cancel a campaign: its pending targets are never claimed.",
                   "cancelled", "{draft,running,paused}");
}

/* --- list, status --- */

static json_t *
s_row_json (const PGresult *r, int i)
{
    json_t *o = json_pack (
        "{ss ss ss ss sf sI sI sI sI sI sI sb ss ss}", "id", PQgetvalue (r, i, C_ID), "template",
        PQgetvalue (r, i, C_TEMPLATE), "category", PQgetvalue (r, i, C_CATEGORY), "status",
        PQgetvalue (r, i, C_STATUS), "rate_per_s", atof (PQgetvalue (r, i, C_RATE)), "targeted",
        (json_int_t)atoll (PQgetvalue (r, i, C_TARGETED)), "queued",
        (json_int_t)atoll (PQgetvalue (r, i, C_QUEUED)), "sent",
        (json_int_t)atoll (PQgetvalue (r, i, C_SENT)), "skipped",
        (json_int_t)atoll (PQgetvalue (r, i, C_SKIPPED)), "failed",
        (json_int_t)atoll (PQgetvalue (r, i, C_FAILED)), "pending",
        (json_int_t)atoll (PQgetvalue (r, i, C_PENDING)), "settled",
        strcmp (PQgetvalue (r, i, C_SETTLED), "t") == 0, "created_by", PQgetvalue (r, i, C_BY),
        "created_at", PQgetvalue (r, i, C_CREATED));
    json_t *seg = o ? json_loads (PQgetvalue (r, i, C_SEGMENT), 0, NULL) : NULL;
    if (o)
        json_object_set_new (o, "segment", seg ? seg : json_null ());
    return o;
}

static int
s_print_json (json_t *value)
{
    char *text = value ? json_dumps (value, JSON_COMPACT) : NULL;
    json_decref (value);
    if (!text)
        return -1;
    printf ("%s\n", text);
    free (text);
    return 0;
}

static int
s_list (int argc, char **argv)
{
    s_cmd_t cmd;
    bool json;
    int rc;
    if (!s_begin (&cmd, "List the campaigns, newest first.", s_list_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_flag_bool (&cmd, "json", &json))
        goto cleanup;
    rc = 1;
    if (!s_connect (&cmd))
        goto cleanup;
    cmd.res = rt_db_exec_params (cmd.db, s_sql_list, 0, NULL);
    if (!cmd.res) {
        s_db_error (&cmd);
        goto cleanup;
    }
    if (json) {
        json_t *a = json_array ();
        for (int i = 0; a && i < PQntuples (cmd.res); i++)
            json_array_append_new (a, s_row_json (cmd.res, i));
        if (s_print_json (a) != 0)
            goto cleanup;
    } else {
        printf ("%-36s  %-10s  %-20s  %9s  %8s  %8s  %8s  %8s  %8s\n", "ID", "STATUS", "TEMPLATE",
                "RATE/S", "TARGETED", "QUEUED", "SENT", "SKIPPED", "FAILED");
        for (int i = 0; i < PQntuples (cmd.res); i++)
            printf ("%-36s  %-10s  %-20s  %9g  %8s  %8s  %8s  %8s  %8s\n",
                    PQgetvalue (cmd.res, i, C_ID), PQgetvalue (cmd.res, i, C_STATUS),
                    PQgetvalue (cmd.res, i, C_TEMPLATE), atof (PQgetvalue (cmd.res, i, C_RATE)),
                    PQgetvalue (cmd.res, i, C_TARGETED), PQgetvalue (cmd.res, i, C_QUEUED),
                    PQgetvalue (cmd.res, i, C_SENT), PQgetvalue (cmd.res, i, C_SKIPPED),
                    PQgetvalue (cmd.res, i, C_FAILED));
    }
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

/* The counts of row 0 as one line of words. */
static void
s_counts (const PGresult *r, char *out, size_t len)
{
    snprintf (out, len, "targeted %s  queued %s  sent %s  skipped %s  failed %s  pending %s  (%s)",
              PQgetvalue (r, 0, C_TARGETED), PQgetvalue (r, 0, C_QUEUED), PQgetvalue (r, 0, C_SENT),
              PQgetvalue (r, 0, C_SKIPPED), PQgetvalue (r, 0, C_FAILED),
              PQgetvalue (r, 0, C_PENDING), PQgetvalue (r, 0, C_STATUS));
}

/* The progress bar: the share of targets no longer pending. */
static void
s_bar (const PGresult *r, const char *counts)
{
    long long targeted = atoll (PQgetvalue (r, 0, C_TARGETED));
    long long pending = atoll (PQgetvalue (r, 0, C_PENDING));
    double share = targeted > 0 ? (double)(targeted - pending) / (double)targeted : 1.0;
    int cells = (int)(share * S_BAR_WIDTH + 0.5);
    char bar[S_BAR_WIDTH + 1];
    for (int i = 0; i < S_BAR_WIDTH; i++)
        bar[i] = i < cells ? '#' : '-';
    bar[S_BAR_WIDTH] = '\0';
    /* \033[K clears what a longer line left. */
    printf ("\r[%s] %3d%%  %s\033[K", bar, (int)(share * 100.0), counts);
    fflush (stdout);
}

static bool
s_over (const PGresult *r)
{
    const char *status = PQgetvalue (r, 0, C_STATUS);
    return (strcmp (status, "done") == 0 || strcmp (status, "cancelled") == 0) &&
           strcmp (PQgetvalue (r, 0, C_SETTLED), "t") == 0;
}

static int
s_status (int argc, char **argv)
{
    s_cmd_t cmd;
    const char *id;
    bool follow, json, tty = isatty (STDOUT_FILENO) == 1;
    int64_t interval;
    char err[256], line[512], last[512] = "";
    int rc;
    if (!s_begin (&cmd, "Show a campaign's counts; --follow until it is over.", s_status_settings,
                  argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_campaign_id (&cmd, &id) || !s_flag_bool (&cmd, "follow", &follow) ||
        !s_flag_bool (&cmd, "json", &json))
        goto cleanup;
    if (rt_config_get_ms (cmd.config, "interval", &interval, err, sizeof err) != 0 ||
        interval < 10) {
        fprintf (stderr, "%s: %s\n", cmd.program,
                 interval < 10 ? "--interval is at least 10ms" : err);
        goto cleanup;
    }
    rc = 1;
    if (!s_connect (&cmd))
        goto cleanup;
    for (;;) {
        const char *v[1] = {id};
        PQclear (cmd.res);
        cmd.res = rt_db_exec_params (cmd.db, s_sql_status, 1, v);
        if (!cmd.res) {
            s_db_error (&cmd);
            goto cleanup;
        }
        if (PQntuples (cmd.res) == 0) {
            fprintf (stderr, "%s: no campaign %s\n", cmd.program, id);
            goto cleanup;
        }
        s_counts (cmd.res, line, sizeof line);
        if (json) {
            if (strcmp (line, last) != 0 && s_print_json (s_row_json (cmd.res, 0)) != 0)
                goto cleanup;
            fflush (stdout);
        } else if (follow && tty) {
            s_bar (cmd.res, line);
        } else if (strcmp (line, last) != 0) {
            printf ("%s\n", line);
            fflush (stdout);
        }
        snprintf (last, sizeof last, "%s", line);
        if (!follow || s_over (cmd.res) || rt_signal_sleep_ms ((int)interval))
            break;
    }
    if (follow && tty && !json)
        printf ("\n");
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_campaign_commands[] = {
    {.name = "create", .summary = "make a campaign: --template, --segment", .run = s_create},
    {.name = "start", .summary = "start a draft campaign", .run = s_start},
    {.name = "pause", .summary = "pause a running campaign", .run = s_pause},
    {.name = "resume", .summary = "resume a paused campaign", .run = s_resume},
    {.name = "cancel", .summary = "cancel a campaign", .run = s_cancel},
    {.name = "list", .summary = "list the campaigns and their counts", .run = s_list},
    {.name = "status",
     .summary = "a campaign's counts, --follow with a progress bar",
     .run = s_status},
    {.name = NULL}};
