/*
 * retainctl notify failed: notifyd's dead letters (the failed rows of
 * notify.sends).
 *
 *   notify failed [--since 1h] [--limit N] [--json]
 *   notify failed retry --id M | --all [--since 1h]
 *
 * A dead letter is a send notifyd failed: after its last retry, refused by
 * the provider, or before any attempt (no identity on the channel, a text
 * too long). failed lists them, newest first, with what notifyd kept (the
 * provider's code and words); failed retry queues them again (attempts and
 * failures reset, due now) for the running notifyd to claim, except those
 * that never had a recipient or an inbox: nothing could send them, and
 * they are counted apart. The accounts are notify.c's. Times come from
 * rt_clock, as notifyd's.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_uuid.h"

#define S_LIMIT_MAX 100000 /* --limit at most */

/* PostgreSQL's DETAIL repeats the failing row (a recipient, a message's
 * text): never shown. A missing schema gets the hint to migrate. */
#define S_DB_ERRORS (RETAINCTL_DB_NO_DETAIL | RETAINCTL_DB_MIGRATE_HINT)

static const rt_config_setting_t s_failed_settings[] = {
    RETAINCTL_PG_DSN,
    {"since", NULL, "", "only those failed within this long (30m, 1h, 7d); default: all"},
    {"limit", NULL, "100", "the newest this many at most"},
    RETAINCTL_JSON,
    RETAINCTL_END};
static const rt_config_setting_t s_retry_settings[] = {
    RETAINCTL_PG_DSN,
    {"id", NULL, "", "the message id of one dead letter"},
    {"all", NULL, "false", "every dead letter (with --since: those failed within it)"},
    {"since", NULL, "", "with --all: only those failed within this long (30m, 1h, 7d)"},
    RETAINCTL_END};

/* $1 since (unix ms, '' for all), $2 limit; one row more than the limit
 * tells that there are more. */
static const char *s_sql_failed =
    "SELECT id, COALESCE(customer_id::text, ''), channel, COALESCE(inbox, ''),"
    " COALESCE(account, ''), attempts, failures, COALESCE(last_code, ''),"
    " COALESCE(last_reason, ''),"
    " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " inbox IS NOT NULL AND recipient IS NOT NULL"
    " FROM notify.sends WHERE status = 'failed'"
    "   AND ($1 = '' OR updated_at >= to_timestamp(NULLIF($1, '')::bigint / 1000.0))"
    " ORDER BY updated_at DESC, id LIMIT $2::integer + 1";

/* Queued again, due now: $1 now (ms), $2 one message id ('' for all), $3
 * since (ms, '' for all). Only those something can send. */
static const char *s_sql_retry =
    "UPDATE notify.sends SET status = 'queued', attempts = 0, failures = 0,"
    " next_at = to_timestamp($1::bigint / 1000.0), claimed_by = NULL, claimed_at = NULL,"
    " last_verdict = 'retried', updated_at = to_timestamp($1::bigint / 1000.0)"
    " WHERE status = 'failed' AND inbox IS NOT NULL AND recipient IS NOT NULL"
    "   AND ($2 = '' OR id = NULLIF($2, '')::uuid)"
    "   AND ($3 = '' OR updated_at >= to_timestamp(NULLIF($3, '')::bigint / 1000.0))"
    " RETURNING id";

/* What became of one message a retry did not queue: $1 its id. */
static const char *s_sql_state = "SELECT status, COALESCE(last_code, ''), COALESCE(last_reason, '')"
                                 " FROM notify.sends WHERE id = $1::uuid";

/* The dead letters --all leaves, after the retry in the same transaction:
 * those nothing can send. $1 since (ms, '' for all). */
static const char *s_sql_left =
    "SELECT count(*) FROM notify.sends WHERE status = 'failed'"
    "   AND ($1 = '' OR updated_at >= to_timestamp(NULLIF($1, '')::bigint / 1000.0))";

/* --since as unix ms of its start, into out ("" when not given); false
 * with the reason on stderr. */
static bool
s_since (const retainctl_cmd_t *cmd, char *out, size_t outlen)
{
    char err[256];
    int64_t ms = 0;
    out[0] = '\0';
    if (!rt_config_get (cmd->config, "since")[0])
        return true;
    if (rt_config_get_ms (cmd->config, "since", &ms, err, sizeof err) != 0 || ms <= 0) {
        fprintf (stderr, "%s: --since \"%s\" must be a duration such as 30m, 1h or 7d\n",
                 cmd->program, rt_config_get (cmd->config, "since"));
        return false;
    }
    snprintf (out, outlen, "%lld", (long long)(rt_clock_now_ms () - ms));
    return true;
}

/* --- failed --- */

static json_t *
s_failed_json (const PGresult *r, int row)
{
    return json_pack (
        "{s:s, s:s?, s:s, s:s?, s:s?, s:I, s:I, s:s, s:s, s:s, s:b}", "message_id",
        PQgetvalue (r, row, 0), "customer_id",
        *PQgetvalue (r, row, 1) ? PQgetvalue (r, row, 1) : NULL, "channel", PQgetvalue (r, row, 2),
        "inbox", *PQgetvalue (r, row, 3) ? PQgetvalue (r, row, 3) : NULL, "account",
        *PQgetvalue (r, row, 4) ? PQgetvalue (r, row, 4) : NULL, "attempts",
        (json_int_t)strtoll (PQgetvalue (r, row, 5), NULL, 10), "failures",
        (json_int_t)strtoll (PQgetvalue (r, row, 6), NULL, 10), "code", PQgetvalue (r, row, 7),
        "reason", PQgetvalue (r, row, 8), "failed_at", PQgetvalue (r, row, 9), "retryable",
        strcmp (PQgetvalue (r, row, 10), "t") == 0);
}

static int s_failed_retry (int argc, char **argv);

const retainctl_command_t retainctl_notify_failed_commands[] = {
    {.name = "retry",
     .summary = "queue dead letters again: --id M or --all [--since 1h]",
     .run = s_failed_retry},
    {.name = NULL}};

int
retainctl_notify_failed (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char since[24], limit[24];
    int64_t limit_n = 0;
    bool json;
    int rc, n;

    if (!retainctl_cmd_begin_list (
            &cmd, "notify",
            "List the dead letters, newest first (`retainctl notify failed retry` queues "
            "them again).",
            s_failed_settings, argc, argv, &json, &rc))
        goto cleanup;
    rc = 2;
    if (!s_since (&cmd, since, sizeof since) ||
        !retainctl_cmd_int (&cmd, "limit", 1, S_LIMIT_MAX, &limit_n))
        goto cleanup;
    rc = 1;
    snprintf (limit, sizeof limit, "%lld", (long long)limit_n);
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_failed, 2, (const char *[]){since, limit}))
        goto cleanup;
    n = PQntuples (cmd.res) > limit_n ? (int)limit_n : PQntuples (cmd.res);
    if (json) {
        if (retainctl_print_rows (cmd.res, n, s_failed_json, JSON_COMPACT) == 0)
            rc = 0;
        goto cleanup;
    }
    printf ("%-20s %-36s %-36s %-10s %-8s %-14s %s\n", "FAILED_AT", "MESSAGE_ID", "CUSTOMER",
            "CHANNEL", "ATTEMPTS", "CODE", "REASON");
    for (int r = 0; r < n; r++)
        printf ("%-20s %-36s %-36s %-10s %-8s %-14s %s%s\n", PQgetvalue (cmd.res, r, 9),
                PQgetvalue (cmd.res, r, 0),
                *PQgetvalue (cmd.res, r, 1) ? PQgetvalue (cmd.res, r, 1) : "-",
                PQgetvalue (cmd.res, r, 2), PQgetvalue (cmd.res, r, 5),
                *PQgetvalue (cmd.res, r, 7) ? PQgetvalue (cmd.res, r, 7) : "-",
                PQgetvalue (cmd.res, r, 8),
                strcmp (PQgetvalue (cmd.res, r, 10), "t") == 0 ? "" : " (nothing to send it to)");
    if (PQntuples (cmd.res) > n)
        printf ("(more: --limit or --since)\n");
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_failed_retry (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char since[24], now[24];
    const char *id;
    rt_uuid_t uuid;
    bool all;
    int rc, queued, left;

    if (!retainctl_cmd_begin (
            &cmd, "notify failed",
            "Queue dead letters again (attempts reset, due now) for the running notifyd.",
            s_retry_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    id = rt_config_get (cmd.config, "id");
    if (!retainctl_cmd_bool (&cmd, "all", &all))
        goto cleanup;
    if (!*id == !all) {
        fprintf (stderr, "%s: give either --id M (one message) or --all\n", cmd.program);
        goto cleanup;
    }
    if (*id && rt_uuid_parse (id, &uuid) != 0) {
        fprintf (stderr, "%s: --id \"%s\" is not a message id (a UUID)\n", cmd.program, id);
        goto cleanup;
    }
    if (*id && rt_config_get (cmd.config, "since")[0]) {
        fprintf (stderr, "%s: --since goes with --all, not --id\n", cmd.program);
        goto cleanup;
    }
    if (!s_since (&cmd, since, sizeof since))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    if (!retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (!retainctl_cmd_exec (&cmd, s_sql_retry, 3, (const char *[]){now, id, since}))
        goto cleanup;
    queued = PQntuples (cmd.res);
    if (*id ? !retainctl_cmd_exec (&cmd, s_sql_state, 1, &id)
            : !retainctl_cmd_exec (&cmd, s_sql_left, 1, (const char *[]){since}))
        goto cleanup;
    if (!retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
    if (*id) {
        if (queued == 1) {
            printf ("message %s: queued again\n", id);
            rc = 0;
        } else if (PQntuples (cmd.res) == 0) {
            fprintf (stderr, "%s: no message %s\n", cmd.program, id);
        } else if (strcmp (PQgetvalue (cmd.res, 0, 0), "failed") != 0) {
            fprintf (stderr, "%s: message %s is %s, not a dead letter\n", cmd.program, id,
                     PQgetvalue (cmd.res, 0, 0));
        } else {
            fprintf (stderr,
                     "%s: message %s failed before any attempt (%s: %s): nothing can send it, so "
                     "it stays a dead letter\n",
                     cmd.program, id, PQgetvalue (cmd.res, 0, 1), PQgetvalue (cmd.res, 0, 2));
        }
        goto cleanup;
    }
    left = atoi (PQgetvalue (cmd.res, 0, 0));
    printf ("%d dead letter%s queued again", queued, queued == 1 ? "" : "s");
    if (left > 0)
        printf ("; %d left: they failed before any attempt, with nothing to send them to "
                "(`retainctl notify failed` shows why)",
                left);
    printf ("\n");
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}
