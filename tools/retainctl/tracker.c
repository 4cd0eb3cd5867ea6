/*
 * retainctl carrier and retainctl shipment: trackerd's carrier accounts
 * and the parcels it follows (schema tracking).
 *
 *   carrier add --id ID --carrier NAME [--api-key K] [--client-id I
 * --client-secret S]
 *               [--base-url URL] [--language L] [--default]
 *               [--min-interval MS] [--daily-quota N] [--per-parcel-day N]
 *   carrier list [--json]
 *   carrier resume --id ID      an account paused for refused credentials polls
 * again shipment add --carrier NAME --tracking-number N [--order-id O]
 * [--customer-id UUID]
 *                [--id S] [--account ID] [--service S] [--phone P]
 * [--promised-by DATE]
 *                [--origin-city C] [--destination-city C]
 *   shipment show (--id S | --order-id O) [--json]
 *   shipment key --name NAME    an API key for GET /v1/shipments (the shop's
 * site)
 *
 * carrier add names one of carrier.h's carriers (an unknown one is
 * refused, the known ones listed) and checks the credentials that carrier
 * needs are there; the limits default to what the carrier documents
 * (carrier_t: DHL's 1 call/s, 250 calls a day, 10 fetches of a parcel a
 * day), and a shop on a larger tier raises them. The first account of a
 * carrier is its default; --default moves that. Adding an id again
 * updates it (new credentials after a refusal), and a paused account is
 * resumed by that as by `carrier resume`. A key is never printed back.
 *
 * shipment add registers a parcel exactly as trackerd's consumer does with
 * an OrderShipped (shipment.h: the same checks, the same refusals, the
 * same row for the same parcel); trackerd polls it at its next claim. It
 * sends no "shipped" message: that moment belongs to the shop's own
 * OrderShipped, which tells the customer what this command cannot know.
 *
 * shipment milestones lists tracking.milestones, or changes one moment:
 * a tag that reaches the customer (Shipped, a tag's name, StorageReminder)
 * gets its template or is turned on or off. trackerd reads the settings
 * when it starts: a change holds from its next start (the command says
 * so).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "carrier.h"
#include "cmd.h"
#include "retainctl.h"
#include "rt_apikey.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "shipment.h"

/* --- carrier --- */

static const rt_config_setting_t s_carrier_add_settings[] = {
    RETAINCTL_PG_DSN,
    {"id", NULL, "", "the account's id (lower-case letters, digits, . _ -) (required)"},
    {"carrier", NULL, "", "nova_poshta, ukrposhta, meest, dhl or ups (required)"},
    {"api-key", "RETAIN_TRACKER_API_KEY", "",
     "the API key (Nova Poshta, Meest token, DHL) or bearer (Ukrposhta)"},
    {"client-id", NULL, "", "UPS: the OAuth client id"},
    {"client-secret", "RETAIN_TRACKER_CLIENT_SECRET", "", "UPS: the OAuth client secret"},
    {"base-url", NULL, "", "this account's API base URL; empty: trackerd's RETAIN_TRACKER_*_API"},
    {"language", NULL, "", "the language answers come in (Nova Poshta UA, RU, EN)"},
    {"default", NULL, "false", "the carrier's account for parcels that name none"},
    {"min-interval", NULL, "", "ms between two calls at least; empty: the carrier's documented"},
    {"daily-quota", NULL, "", "calls a UTC day at most, 0: none; empty: the carrier's documented"},
    {"per-parcel-day", NULL, "",
     "fetches of one parcel a day at most, 0: none; empty: the carrier's "
     "documented"},
    RETAINCTL_END};
static const rt_config_setting_t s_carrier_list_settings[] = {RETAINCTL_PG_DSN, RETAINCTL_JSON,
                                                              RETAINCTL_END};
static const rt_config_setting_t s_carrier_resume_settings[] = {
    RETAINCTL_PG_DSN, {"id", NULL, "", "the account's id (required)"}, RETAINCTL_END};

/* $1 id .. $12 per_parcel_day; a second add of the id is an update, and
 * new credentials lift a pause. The default moves to this account when
 * asked, or when the carrier has none yet. */
static const char *s_sql_undefault = "UPDATE tracking.accounts SET is_default = false WHERE "
                                     "carrier = $1 AND is_default AND id <> $2";
static const char *s_sql_upsert =
    "INSERT INTO tracking.accounts (id, carrier, is_default, base_url, "
    "api_key, client_id,"
    " client_secret, language, min_interval_ms, daily_quota, per_parcel_day)"
    " VALUES ($1, $2, $3::boolean OR NOT EXISTS (SELECT 1 FROM "
    "tracking.accounts"
    "          WHERE carrier = $2 AND is_default), $4, $5, $6, $7, $8, "
    "$9::integer,"
    "         NULLIF($10::integer, 0), NULLIF($11::integer, 0))"
    " ON CONFLICT (id) DO UPDATE SET is_default = tracking.accounts.is_default "
    "OR $3::boolean,"
    "  base_url = $4, api_key = $5, client_id = $6, client_secret = $7, "
    "language = $8,"
    "  min_interval_ms = $9::integer, daily_quota = NULLIF($10::integer, 0),"
    "  per_parcel_day = NULLIF($11::integer, 0), paused_at = NULL, "
    "paused_reason = NULL,"
    "  failures = 0, next_call_at = 0, access_token = NULL, token_expires = "
    "NULL,"
    "  updated_at = now()"
    " WHERE tracking.accounts.carrier = $2"
    " RETURNING is_default, (xmax <> 0)";
static const char *s_sql_list =
    "SELECT id, carrier, is_default, base_url, min_interval_ms, "
    "COALESCE(daily_quota, 0),"
    " COALESCE(per_parcel_day, 0), CASE WHEN quota_day = (now() AT TIME ZONE "
    "'UTC')::date"
    " THEN quota_used ELSE 0 END, failures, COALESCE(paused_reason, ''),"
    " (SELECT count(*) FROM tracking.shipments s WHERE NOT s.final AND "
    "(s.account = a.id"
    "   OR (s.account IS NULL AND a.is_default AND s.carrier = a.carrier)))"
    " FROM tracking.accounts a ORDER BY carrier, id";
static const char *s_sql_resume =
    "UPDATE tracking.accounts SET paused_at = NULL, paused_reason = NULL, "
    "failures = 0,"
    " next_call_at = 0, updated_at = now() WHERE id = $1 RETURNING id";

/* The known carriers, for a refusal: "nova_poshta, ukrposhta, ...". */
static void
s_carrier_names (char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; carrier_all[i]; i++) {
        int w = snprintf (out + n, outlen - n, "%s%s", i ? ", " : "", carrier_all[i]->name);
        if (w < 0 || (size_t)w >= outlen - n)
            break;
        n += (size_t)w;
    }
}

/* --flag as a whole number in [0, max], or the carrier's documented
 * figure when empty, into *out. */
static bool
s_limit (const retainctl_cmd_t *cmd, const char *flag, int64_t deflt, int64_t max, int64_t *out)
{
    if (!rt_config_get (cmd->config, flag)[0]) {
        *out = deflt;
        return true;
    }
    return retainctl_cmd_int (cmd, flag, 0, max, out);
}

static int
s_carrier_add (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *id, *name, *key, *client_id, *secret, *base;
    const carrier_t *carrier;
    int64_t interval, quota, per_parcel;
    char si[24], sq[24], sp[24], names[128];
    bool is_default;
    int rc;

    if (!retainctl_cmd_begin_id (&cmd, "carrier",
                                 "Add a carrier account (or update its credentials and limits).",
                                 s_carrier_add_settings, argc, argv, &id, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "carrier", &name))
        goto cleanup;
    carrier = carrier_find (name);
    if (!carrier) {
        s_carrier_names (names, sizeof names);
        fprintf (stderr, "%s: --carrier \"%s\" is not a carrier trackerd knows (%s)\n", cmd.program,
                 name, names);
        goto cleanup;
    }
    key = rt_config_get (cmd.config, "api-key");
    client_id = rt_config_get (cmd.config, "client-id");
    secret = rt_config_get (cmd.config, "client-secret");
    base = rt_config_get (cmd.config, "base-url");
    if (carrier->needs_token ? (!client_id[0] || !secret[0]) : !key[0]) {
        fprintf (stderr, "%s: %s needs %s\n", cmd.program, carrier->display,
                 carrier->needs_token ? "--client-id and --client-secret (OAuth)" : "--api-key");
        goto cleanup;
    }
    if (base[0] && strncmp (base, "https://", 8) != 0 && strncmp (base, "http://", 7) != 0) {
        fprintf (stderr, "%s: --base-url must be an http:// or https:// URL\n", cmd.program);
        goto cleanup;
    }
    if (!retainctl_cmd_line (&cmd, "language", 8) ||
        !retainctl_cmd_bool (&cmd, "default", &is_default) ||
        !s_limit (&cmd, "min-interval", carrier->min_interval_ms, 86400000, &interval) ||
        !s_limit (&cmd, "daily-quota", carrier->daily_quota, 100000000, &quota) ||
        !s_limit (&cmd, "per-parcel-day", carrier->per_parcel_day, 100000, &per_parcel))
        goto cleanup;
    snprintf (si, sizeof si, "%lld", (long long)interval);
    snprintf (sq, sizeof sq, "%lld", (long long)quota);
    snprintf (sp, sizeof sp, "%lld", (long long)per_parcel);
    rc = 1;
    /* The statement repeats the key: its errors are read without DETAIL. */
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_NO_DETAIL | RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    if (is_default &&
        !retainctl_cmd_exec (&cmd, s_sql_undefault, 2, (const char *[]){carrier->name, id}))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_upsert, 11,
                             (const char *[]){id, carrier->name, is_default ? "true" : "false",
                                              base, key, client_id, secret,
                                              rt_config_get (cmd.config, "language"), si, sq, sp}))
        goto cleanup;
    if (PQntuples (cmd.res) != 1) {
        fprintf (stderr, "%s: account %s belongs to another carrier; not changed\n", cmd.program,
                 id);
        goto cleanup;
    }
    is_default = strcmp (PQgetvalue (cmd.res, 0, 0), "t") == 0;
    {
        char limits[160];
        if (interval == 0 && quota == 0 && per_parcel == 0)
            snprintf (limits, sizeof limits, "no limits");
        else
            snprintf (limits, sizeof limits,
                      "calls %s ms apart at least, %s a day at most, %s fetches of a parcel a day "
                      "at most (0: no limit)",
                      si, sq, sp);
        printf ("carrier account %s %s (%s%s; %s)\n", id,
                strcmp (PQgetvalue (cmd.res, 0, 1), "t") == 0 ? "updated" : "added",
                carrier->display, is_default ? ", the default" : "", limits);
    }
    if (!retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static json_t *
s_account_json (const PGresult *r, int i)
{
    return json_pack ("{ss ss sb ss si si si si si ss si}", "id", PQgetvalue (r, i, 0), "carrier",
                      PQgetvalue (r, i, 1), "default", strcmp (PQgetvalue (r, i, 2), "t") == 0,
                      "base_url", PQgetvalue (r, i, 3), "min_interval_ms",
                      atoi (PQgetvalue (r, i, 4)), "daily_quota", atoi (PQgetvalue (r, i, 5)),
                      "per_parcel_day", atoi (PQgetvalue (r, i, 6)), "used_today",
                      atoi (PQgetvalue (r, i, 7)), "failures", atoi (PQgetvalue (r, i, 8)),
                      "paused", PQgetvalue (r, i, 9), "parcels", atoi (PQgetvalue (r, i, 10)));
}

static int
s_carrier_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    bool json;
    int rc;

    if (!retainctl_cmd_begin_list (&cmd, "carrier",
                                   "List the carrier accounts: limits, today's calls, pauses.",
                                   s_carrier_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_list, 0, NULL))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_account_json, JSON_COMPACT) != 0)
            goto cleanup;
    } else {
        printf ("%-20s  %-12s  %-7s  %-8s  %-11s  %-8s  %s\n", "ID", "CARRIER", "DEFAULT",
                "PARCELS", "TODAY/QUOTA", "FAILURES", "PAUSED");
        for (int i = 0; i < PQntuples (cmd.res); i++) {
            char today[32];
            snprintf (today, sizeof today, "%s/%s", PQgetvalue (cmd.res, i, 7),
                      strcmp (PQgetvalue (cmd.res, i, 5), "0") == 0 ? "-"
                                                                    : PQgetvalue (cmd.res, i, 5));
            printf ("%-20s  %-12s  %-7s  %-8s  %-11s  %-8s  %s\n", PQgetvalue (cmd.res, i, 0),
                    PQgetvalue (cmd.res, i, 1),
                    strcmp (PQgetvalue (cmd.res, i, 2), "t") == 0 ? "yes" : "",
                    PQgetvalue (cmd.res, i, 10), today, PQgetvalue (cmd.res, i, 8),
                    PQgetvalue (cmd.res, i, 9));
        }
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_carrier_resume (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *id;
    int rc;

    if (!retainctl_cmd_begin_id (&cmd, "carrier",
                                 "Resume an account paused for refused credentials (after the "
                                 "carrier's key was mended).",
                                 s_carrier_resume_settings, argc, argv, &id, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_resume, 1, (const char *[]){id}))
        goto cleanup;
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr, "%s: no carrier account %s\n", cmd.program, id);
        goto cleanup;
    }
    printf ("carrier account %s resumed: its parcels are polled at the next claim\n", id);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --pg-dsn is taken like every command's (the environment may set it for
 * all of them) and read by none: the tables are the binary's. */
static const rt_config_setting_t s_carrier_codes_settings[] = {
    RETAINCTL_PG_DSN,
    {"carrier", NULL, "", "only this carrier's table"},
    RETAINCTL_JSON,
    RETAINCTL_END};

/* Needs no database: the tables are the binary's. */
static int
s_carrier_codes (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *only;
    bool json;
    json_t *rows = NULL;
    int rc;

    if (!retainctl_cmd_begin_list (&cmd, "carrier",
                                   "Each carrier's documented status codes, and the tag and "
                                   "sub-status retain makes of them.",
                                   s_carrier_codes_settings, argc, argv, &json, &rc))
        goto cleanup;
    only = rt_config_get (cmd.config, "carrier");
    if (only[0] && !carrier_find (only)) {
        char names[128];
        s_carrier_names (names, sizeof names);
        fprintf (stderr, "%s: --carrier \"%s\" is not a carrier trackerd knows (%s)\n", cmd.program,
                 only, names);
        rc = 2;
        goto cleanup;
    }
    rows = json_array ();
    if (!json)
        printf ("%-12s  %-6s  %-18s  %-24s  %s\n", "CARRIER", "CODE", "TAG", "SUB-STATUS",
                "MEANING");
    for (size_t i = 0; carrier_all[i]; i++) {
        const carrier_t *c = carrier_all[i];
        if (only[0] && strcmp (only, c->name) != 0)
            continue;
        for (size_t k = 0; k < c->n_codes; k++) {
            const carrier_code_t *e = &c->codes[k];
            if (json)
                json_array_append_new (
                    rows, json_pack ("{ss ss ss ss sb ss}", "carrier", c->name, "code", e->code,
                                     "tag", status_tag_name (e->tag), "sub_status", e->sub_status,
                                     "to_sender", e->returning, "meaning", e->meaning));
            else
                printf ("%-12s  %-6s  %-18s  %-24s  %s\n", c->name, e->code,
                        status_tag_name (e->tag), e->sub_status, e->meaning);
        }
    }
    if (json) {
        char *text = json_dumps (rows, JSON_COMPACT);
        if (!text)
            goto cleanup;
        printf ("%s\n", text);
        free (text);
    }
    rc = 0;
cleanup:
    json_decref (rows);
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_carrier_commands[] = {
    {.name = "add",
     .summary = "add or update an account: --id ID --carrier NAME --api-key K",
     .run = s_carrier_add},
    {.name = "list", .summary = "the accounts, their limits and pauses", .run = s_carrier_list},
    {.name = "resume", .summary = "poll a paused account again: --id ID", .run = s_carrier_resume},
    {.name = "codes",
     .summary = "the carriers' status codes and retain's tags for them",
     .run = s_carrier_codes},
    {.name = NULL}};

/* --- shipment --- */

static const rt_config_setting_t s_shipment_add_settings[] = {
    RETAINCTL_PG_DSN,
    {"carrier", NULL, "", "nova_poshta, ukrposhta, meest, dhl or ups (required)"},
    {"tracking-number", NULL, "", "the carrier's tracking number (required)"},
    {"id", NULL, "", "the shop's shipment id; empty: retain makes one"},
    {"order-id", NULL, "", "the order it carries"},
    {"customer-id", NULL, "", "crm's customer (a UUID): who hears the milestones"},
    {"account", NULL, "", "the carrier account; empty: the carrier's default"},
    {"service", NULL, "", "DHL: the service (express, parcel-de, ecommerce, ...)"},
    {"phone", NULL, "", "the recipient's phone (Nova Poshta's full record)"},
    {"promised-by", NULL, "", "the date delivery was promised by, YYYY-MM-DD (UTC end of day)"},
    {"origin-city", NULL, "", "where it leaves from (the lane of retain's estimate)"},
    {"destination-city", NULL, "", "where it goes"},
    RETAINCTL_END};
static const rt_config_setting_t s_shipment_show_settings[] = {
    RETAINCTL_PG_DSN,
    {"id", NULL, "", "the shipment's id"},
    {"order-id", NULL, "", "or the order's id: its shipments"},
    RETAINCTL_JSON,
    RETAINCTL_END};

static const char *s_sql_show =
    "SELECT id, order_id, carrier, tracking_number, tag, sub_status, raw_code, "
    "raw_text,"
    " location, final, COALESCE(to_char(to_timestamp(carrier_eta / 1000.0) AT "
    "TIME ZONE 'UTC',"
    "  'YYYY-MM-DD'), ''), COALESCE(to_char(to_timestamp(est_at / 1000.0) AT "
    "TIME ZONE 'UTC',"
    "  'YYYY-MM-DD'), ''), COALESCE(to_char(to_timestamp(promised_by / 1000.0) "
    "AT TIME ZONE"
    "  'UTC', 'YYYY-MM-DD'), ''), array_to_string(delays, ','), last_error,"
    " COALESCE(to_char(to_timestamp(storage_until / 1000.0) AT TIME ZONE "
    "'UTC', 'YYYY-MM-DD'),"
    "  '')"
    " FROM tracking.shipments WHERE ($1 <> '' AND id = $1) OR ($2 <> '' AND "
    "order_id = $2)"
    " ORDER BY created_at";

/* YYYY-MM-DD into the end of that UTC day in unix ms; -1 when it is none. */
static int64_t
s_date_end_ms (const char *s)
{
    int y, m, d, n = 0;
    struct tm tm = {0};
    if (sscanf (s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || s[10] || m < 1 || m > 12 ||
        d < 1 || d > 31)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 23;
    tm.tm_min = 59;
    tm.tm_sec = 59;
    time_t t = timegm (&tm);
    if (tm.tm_mday != d)
        return -1; /* 2026-02-30 normalised away */
    return (int64_t)t * 1000 + 999;
}

static int
s_shipment_add (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    shipment_spec_t spec = {0};
    char id[SHIPMENT_ID_MAX], why[256];
    const char *promised;
    int rc;

    if (!retainctl_cmd_begin (&cmd, "shipment", "Register a parcel for trackerd to follow.",
                              s_shipment_add_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "carrier", &spec.carrier) ||
        !retainctl_cmd_required (&cmd, "tracking-number", &spec.tracking_number))
        goto cleanup;
    spec.id = rt_config_get (cmd.config, "id");
    spec.order_id = rt_config_get (cmd.config, "order-id");
    spec.account = rt_config_get (cmd.config, "account");
    spec.service = rt_config_get (cmd.config, "service");
    spec.phone = rt_config_get (cmd.config, "phone");
    spec.origin_city = rt_config_get (cmd.config, "origin-city");
    spec.destination_city = rt_config_get (cmd.config, "destination-city");
    if (rt_config_get (cmd.config, "customer-id")[0] &&
        !retainctl_cmd_uuid (&cmd, "customer-id", "a customer id", &spec.customer_id))
        goto cleanup;
    promised = rt_config_get (cmd.config, "promised-by");
    if (promised[0]) {
        spec.promised_by_ms = s_date_end_ms (promised);
        if (spec.promised_by_ms < 0) {
            fprintf (stderr, "%s: --promised-by \"%s\" is not a date YYYY-MM-DD\n", cmd.program,
                     promised);
            goto cleanup;
        }
    }
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    switch (shipment_register (cmd.db, &spec, rt_clock_now_ms (), id, why, sizeof why)) {
    case SHIPMENT_CREATED:
        printf ("shipment %s registered: trackerd polls it at its next claim\n", id);
        rc = 0;
        break;
    case SHIPMENT_KNOWN:
        printf ("shipment %s was registered before: unchanged\n", id);
        rc = 0;
        break;
    case SHIPMENT_REFUSED:
        fprintf (stderr, "%s: refused: %s\n", cmd.program, why);
        rc = 2;
        break;
    case SHIPMENT_DB_ERROR:
        retainctl_cmd_db_error (&cmd);
        break;
    }
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static json_t *
s_shipment_json (const PGresult *r, int i)
{
    return json_pack (
        "{ss ss ss ss ss ss ss ss ss sb ss ss ss ss ss ss}", "id", PQgetvalue (r, i, 0), "order_id",
        PQgetvalue (r, i, 1), "carrier", PQgetvalue (r, i, 2), "tracking_number",
        PQgetvalue (r, i, 3), "tag", PQgetvalue (r, i, 4), "sub_status", PQgetvalue (r, i, 5),
        "carrier_code", PQgetvalue (r, i, 6), "carrier_status", PQgetvalue (r, i, 7), "location",
        PQgetvalue (r, i, 8), "final", strcmp (PQgetvalue (r, i, 9), "t") == 0, "carrier_estimate",
        PQgetvalue (r, i, 10), "retain_estimate", PQgetvalue (r, i, 11), "promised_by",
        PQgetvalue (r, i, 12), "delays", PQgetvalue (r, i, 13), "last_error", PQgetvalue (r, i, 14),
        "storage_until", PQgetvalue (r, i, 15));
}

static int
s_shipment_show (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *id, *order;
    bool json;
    int rc;

    if (!retainctl_cmd_begin_list (&cmd, "shipment",
                                   "Show a parcel (or an order's parcels): status, dates, delays.",
                                   s_shipment_show_settings, argc, argv, &json, &rc))
        goto cleanup;
    id = rt_config_get (cmd.config, "id");
    order = rt_config_get (cmd.config, "order-id");
    if (!id[0] == !order[0]) {
        fprintf (stderr, "%s: give --id or --order-id\n", cmd.program);
        rc = 2;
        goto cleanup;
    }
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_show, 2, (const char *[]){id, order}))
        goto cleanup;
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr, "%s: no shipment %s%s\n", cmd.program, id[0] ? "" : "of order ",
                 id[0] ? id : order);
        goto cleanup;
    }
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_shipment_json, JSON_COMPACT) != 0)
            goto cleanup;
    } else {
        for (int i = 0; i < PQntuples (cmd.res); i++) {
            const PGresult *r = cmd.res;
            printf ("%s  order %s  %s %s\n  %s (%s)%s  carrier says %s \"%s\"%s%s\n",
                    PQgetvalue (r, i, 0), PQgetvalue (r, i, 1), PQgetvalue (r, i, 2),
                    PQgetvalue (r, i, 3), PQgetvalue (r, i, 4), PQgetvalue (r, i, 5),
                    strcmp (PQgetvalue (r, i, 9), "t") == 0 ? " final" : "", PQgetvalue (r, i, 6),
                    PQgetvalue (r, i, 7), *PQgetvalue (r, i, 8) ? " at " : "",
                    PQgetvalue (r, i, 8));
            printf ("  promised %s  carrier's estimate %s  retain's estimate %s  "
                    "storage until "
                    "%s\n",
                    *PQgetvalue (r, i, 12) ? PQgetvalue (r, i, 12) : "-",
                    *PQgetvalue (r, i, 10) ? PQgetvalue (r, i, 10) : "-",
                    *PQgetvalue (r, i, 11) ? PQgetvalue (r, i, 11) : "-",
                    *PQgetvalue (r, i, 15) ? PQgetvalue (r, i, 15) : "-");
            if (*PQgetvalue (r, i, 13))
                printf ("  delayed: %s\n", PQgetvalue (r, i, 13));
            if (*PQgetvalue (r, i, 14))
                printf ("  the carrier refused its request: %s\n", PQgetvalue (r, i, 14));
        }
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static const rt_config_setting_t s_shipment_key_settings[] = {
    RETAINCTL_PG_DSN,
    {"name", NULL, "", "who holds the key, e.g. shop-site (required; kept with the key)"},
    RETAINCTL_END};

static int
s_shipment_key (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *name;
    char token[RT_APIKEY_TOKEN_SIZE], key[RT_APIKEY_ID_SIZE], err[256];
    int rc;

    if (!retainctl_cmd_begin (&cmd, "shipment",
                              "Make an API key for trackerd's GET /v1/shipments (the shop's site "
                              "showing a customer's parcels).",
                              s_shipment_key_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "name", &name) || !retainctl_cmd_id (&cmd, "name", name))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    if (rt_apikey_create (cmd.db, "tracker", name, "shop", 0, token, key, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    printf ("key: %s (for %s)\n", key, name);
    printf ("token: %s   (shown once: the shop's site sends it as "
            "\"Authorization: Bearer "
            "<token>\")\n",
            token);
    rc = 0;
cleanup:
    memset (token, 0, sizeof token);
    retainctl_cmd_end (&cmd);
    return rc;
}

static const rt_config_setting_t s_milestones_settings[] = {
    RETAINCTL_PG_DSN,
    {"tag", NULL, "", "the moment: Shipped, StorageReminder or a tag (OutForDelivery, ...)"},
    {"template", NULL, "", "notifyd's template for it"},
    {"on", NULL, "false", "the moment speaks"},
    {"off", NULL, "false", "the moment says nothing"},
    RETAINCTL_JSON,
    RETAINCTL_END};

static const char *s_sql_milestones = "SELECT tag, template, enabled FROM tracking.milestones"
                                      " ORDER BY tag";
/* $1 tag, $2 template ('' keeps it, or the default shipment_<tag>), $3 enabled ('' keeps it). */
static const char *s_sql_milestone_set =
    "INSERT INTO tracking.milestones AS m (tag, template, enabled)"
    " VALUES ($1, COALESCE(NULLIF($2, ''), $4), COALESCE(NULLIF($3, '')::boolean, true))"
    " ON CONFLICT (tag) DO UPDATE SET template = COALESCE(NULLIF($2, ''), m.template),"
    "  enabled = COALESCE(NULLIF($3, '')::boolean, m.enabled)"
    " RETURNING template, enabled";

/* Whether tag names a moment: Shipped, StorageReminder or a tag. */
static bool
s_moment_ok (const char *tag)
{
    tracking_tag_t t;
    return strcmp (tag, "Shipped") == 0 || strcmp (tag, "StorageReminder") == 0 ||
           status_tag_parse (tag, &t) == 0;
}

static json_t *
s_milestone_json (const PGresult *r, int i)
{
    return json_pack ("{ss ss sb}", "tag", PQgetvalue (r, i, 0), "template", PQgetvalue (r, i, 1),
                      "enabled", strcmp (PQgetvalue (r, i, 2), "t") == 0);
}

static int
s_shipment_milestones (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *tag, *template_;
    bool json, on, off;
    char deflt[96];
    int rc;

    if (!retainctl_cmd_begin_list (&cmd, "shipment",
                                   "List the moments that speak to the customer, or change one.",
                                   s_milestones_settings, argc, argv, &json, &rc))
        goto cleanup;
    rc = 2;
    tag = rt_config_get (cmd.config, "tag");
    template_ = rt_config_get (cmd.config, "template");
    if (!retainctl_cmd_bool (&cmd, "on", &on) || !retainctl_cmd_bool (&cmd, "off", &off))
        goto cleanup;
    if (on && off) {
        fprintf (stderr, "%s: --on or --off, not both\n", cmd.program);
        goto cleanup;
    }
    if (!tag[0] && (template_[0] || on || off)) {
        fprintf (stderr, "%s: --template, --on and --off need --tag\n", cmd.program);
        goto cleanup;
    }
    if (tag[0] && !s_moment_ok (tag)) {
        fprintf (stderr,
                 "%s: --tag \"%s\" is no moment: Shipped, StorageReminder or a tag (Pending, "
                 "InfoReceived, InTransit, OutForDelivery, AttemptFail, Delivered, "
                 "AvailableForPickup, Exception, Expired)\n",
                 cmd.program, tag);
        goto cleanup;
    }
    if (template_[0] &&
        (strlen (template_) > 63 || strspn (template_, "abcdefghijklmnopqrstuvwxyz"
                                                       "0123456789_") != strlen (template_))) {
        fprintf (stderr, "%s: --template \"%s\" is no template name ([a-z0-9_])\n", cmd.program,
                 template_);
        goto cleanup;
    }
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    if (tag[0]) {
        /* shipment_<tag> in snake case: OutForDelivery -> shipment_out_for_delivery. */
        size_t n = (size_t)snprintf (deflt, sizeof deflt, "shipment");
        for (const char *p = tag; *p && n + 3 < sizeof deflt; p++) {
            if (*p >= 'A' && *p <= 'Z') {
                deflt[n++] = '_';
                deflt[n++] = (char)(*p - 'A' + 'a');
            } else {
                deflt[n++] = *p;
            }
        }
        deflt[n] = '\0';
        if (!retainctl_cmd_exec (&cmd, s_sql_milestone_set, 4,
                                 (const char *[]){tag, template_,
                                                  on    ? "true"
                                                  : off ? "false"
                                                        : "",
                                                  deflt}))
            goto cleanup;
        printf ("%s: template %s, %s (trackerd reads this when it starts)\n", tag,
                PQgetvalue (cmd.res, 0, 0),
                strcmp (PQgetvalue (cmd.res, 0, 1), "t") == 0 ? "on" : "off");
        rc = 0;
        goto cleanup;
    }
    if (!retainctl_cmd_exec (&cmd, s_sql_milestones, 0, NULL))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_milestone_json, JSON_COMPACT) !=
            0)
            goto cleanup;
    } else {
        printf ("%-20s  %-34s  %s\n", "MOMENT", "TEMPLATE", "SPEAKS");
        for (int i = 0; i < PQntuples (cmd.res); i++)
            printf ("%-20s  %-34s  %s\n", PQgetvalue (cmd.res, i, 0), PQgetvalue (cmd.res, i, 1),
                    strcmp (PQgetvalue (cmd.res, i, 2), "t") == 0 ? "yes" : "no");
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_shipment_commands[] = {
    {.name = "add",
     .summary = "follow a parcel: --carrier NAME --tracking-number N [--order-id]",
     .run = s_shipment_add},
    {.name = "show",
     .summary = "a parcel's status: --id S or --order-id O",
     .run = s_shipment_show},
    {.name = "key",
     .summary = "an API key for GET /v1/shipments: --name NAME",
     .run = s_shipment_key},
    {.name = "milestones",
     .summary = "the moments that speak: list, or --tag T [--template N] [--on|--off]",
     .run = s_shipment_milestones},
    {.name = NULL}};
