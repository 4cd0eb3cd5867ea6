/*
 * retainctl campaign create: a campaign (notify.campaigns) and its targets
 * (notify.campaign_targets), evaluated from a segment of customers; the
 * rest of the campaign's commands are campaign.c's.
 *
 *   campaign create --template T --segment S [--rate 50] [--category marketing]
 *                   [--start] [--by NAME]
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
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_uuid.h"

#define S_SEGMENT_BATCH 5000     /* customers one segment statement looks at */
#define S_CSV_BATCH     1000     /* ids of a CSV one statement takes */
#define S_RATE_MAX      100000.0 /* targets a second, a bound a typo cannot pass */
#define S_FIELD_MAX     128      /* a segment's value, a CSV id */

static const rt_config_setting_t s_create_settings[] = {
    RETAINCTL_PG_DSN,
    {"template", NULL, "", "the template's name (notify.templates; required)"},
    {"segment", NULL, "",
     "who: carrier=C[,status=S], wrote=CHANNEL,since=7d, csv=FILE (- for stdin) or all "
     "(required)"},
    {"rate", NULL, "50", "targets a second at most, all notifyd replicas together"},
    {"category", NULL, "marketing",
     "marketing (needs consent, waits out quiet hours) or transactional"},
    {"start", NULL, "false", "start it at once (otherwise a draft: campaign start)"},
    {"by", NULL, "", "who made it, kept with it; default: $USER"},
    RETAINCTL_END};

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

/* A parsed --segment. */
typedef struct {
    char kind[16];           /* carrier, wrote, csv, all */
    char a[S_FIELD_MAX + 1]; /* carrier: the carrier; wrote: the channel; csv: the file */
    char b[S_FIELD_MAX + 1]; /* carrier: the status */
    int64_t since_ms;        /* wrote: the period */
} s_segment_t;

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
s_segment_parse (const retainctl_cmd_t *cmd, const char *text, s_segment_t *sg)
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
s_segment_sql (retainctl_cmd_t *cmd, const char *id, const s_segment_t *sg, long long *added)
{
    char after[RT_UUID_STR_LEN + 1] = "00000000-0000-0000-0000-000000000000", batch[16], since[24];
    snprintf (batch, sizeof batch, "%d", S_SEGMENT_BATCH);
    snprintf (since, sizeof since, "%lld", (long long)(rt_clock_now_ms () - sg->since_ms));
    for (;;) {
        const char *v[7] = {id, after, batch, sg->kind, sg->a, sg->b, since};
        PGresult *r = retainctl_cmd_query (cmd, s_sql_segment, 7, v);
        if (!r)
            return -1;
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
s_csv_flush (retainctl_cmd_t *cmd, const char *id, rt_buf_t *uuids, rt_buf_t *shops,
             long long *added, long long *unmatched)
{
    PGresult *r;
    rt_buf_array_end (uuids);
    rt_buf_array_end (shops);
    if (uuids->failed || shops->failed) {
        fprintf (stderr, "%s: out of memory\n", cmd->program);
        return -1;
    }
    r = retainctl_cmd_query (cmd, s_sql_csv, 3, (const char *[]){id, uuids->data, shops->data});
    if (!r)
        return -1;
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
s_segment_csv (retainctl_cmd_t *cmd, const char *id, const s_segment_t *sg, long long *added,
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
s_rate (const retainctl_cmd_t *cmd, char *out, size_t outlen)
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

int
retainctl_campaign_create (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    s_segment_t sg;
    rt_uuid_t u = rt_uuid_v7 ();
    char id[RT_UUID_STR_LEN + 1], rate[32], now[24], by[RETAINCTL_BY_MAX + 1], targeted[24],
        extra[256];
    const char *template_name, *segment_text, *category;
    char *segment = NULL;
    long long added = 0, rows = 0, unmatched = 0;
    bool start;
    int rc;
    if (!retainctl_cmd_begin (&cmd, "campaign",
                              "Make a campaign: a template to a segment of customers, throttled.",
                              s_create_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    category = rt_config_get (cmd.config, "category");
    if (!retainctl_cmd_required (&cmd, "template", &template_name) ||
        !retainctl_cmd_required (&cmd, "segment", &segment_text))
        goto cleanup;
    if (strcmp (category, "marketing") != 0 && strcmp (category, "transactional") != 0) {
        fprintf (stderr, "%s: --category is marketing or transactional\n", cmd.program);
        goto cleanup;
    }
    if (!retainctl_cmd_bool (&cmd, "start", &start) || !s_rate (&cmd, rate, sizeof rate) ||
        !s_segment_parse (&cmd, segment_text, &sg) || !retainctl_cmd_by (&cmd, by))
        goto cleanup;
    rc = 1;
    segment = s_segment_json (&sg);
    if (!segment) {
        fprintf (stderr, "%s: out of memory\n", cmd.program);
        goto cleanup;
    }
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_template, 1, &template_name))
        goto cleanup;
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr, "%s: no template is named \"%s\" (retainctl template list)\n", cmd.program,
                 template_name);
        rc = 2;
        goto cleanup;
    }
    rt_uuid_format (&u, id);
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (!retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_insert, 7,
                             (const char *[]){id, template_name, category, segment, rate, by, now}))
        goto cleanup;
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
    if (!retainctl_cmd_exec (&cmd, s_sql_targeted, 5,
                             (const char *[]){id, targeted, extra, now, start ? "true" : "false"}))
        goto cleanup;
    if (!retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
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
    retainctl_cmd_end (&cmd);
    return rc;
}
