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

#include "retainctl.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_uuid.h"

#define S_LIMIT_MAX 100000 /* --limit at most */

#define S_PG_DSN                                                                                   \
    {                                                                                              \
        "pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"               \
    }
#define S_JSON                                                                                     \
    {                                                                                              \
        "json", NULL, "false", "print a JSON array instead of a table"                             \
    }
#define S_END                                                                                      \
    {                                                                                              \
        NULL, NULL, NULL, NULL                                                                     \
    }

static const rt_config_setting_t s_failed_settings[] = {
    S_PG_DSN,
    {"since", NULL, "", "only those failed within this long (30m, 1h, 7d); default: all"},
    {"limit", NULL, "100", "the newest this many at most"},
    S_JSON,
    S_END};
static const rt_config_setting_t s_retry_settings[] = {
    S_PG_DSN,
    {"id", NULL, "", "the message id of one dead letter"},
    {"all", NULL, "false", "every dead letter (with --since: those failed within it)"},
    {"since", NULL, "", "with --all: only those failed within this long (30m, 1h, 7d)"},
    S_END};

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

/* One subcommand's run: its flags and its connection. */
typedef struct {
    char program[64];    /* "retainctl notify account set", heads messages */
    rt_config_t *config; /* its flags */
    rt_db_t *db;         /* reads ingest.inboxes, writes schema notify */
    PGresult *res;       /* the statement's result */
} s_cmd_t;

/* --- the run of one subcommand --- */

/* Parses the flags of `notify <group> <argv[0]>`. Returns true to go on;
 * otherwise *rc is the exit status. */
static bool
s_begin (s_cmd_t *cmd, const char *group, const char *summary, const rt_config_setting_t *settings,
         int argc, char **argv, int *rc)
{
    memset (cmd, 0, sizeof *cmd);
    snprintf (cmd->program, sizeof cmd->program, "retainctl notify %s%s%s", group,
              *group ? " " : "", argv[0]);
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

/* PostgreSQL's DETAIL repeats the failing row: never show
 * it. A missing schema gets the hint to migrate. */
static void
s_db_error (const s_cmd_t *cmd)
{
    const char *msg = rt_db_error (cmd->db);
    const char *detail = strstr (msg, "\nDETAIL");
    fprintf (stderr, "%s: %.*s%s\n", cmd->program,
             (int)(detail ? (size_t)(detail - msg) : strlen (msg)), msg,
             strcmp (rt_db_sqlstate (cmd->db), "42P01") == 0 ? " (has `retainctl migrate` run?)"
                                                             : "");
}

static int
s_json_flag (const s_cmd_t *cmd, bool *json)
{
    char err[256];
    if (rt_config_get_bool (cmd->config, "json", json, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd->program, err);
        return -1;
    }
    return 0;
}

/* Prints a JSON value on its own line and frees it; 0, or -1 when out of
 * memory. */
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

/* --since as unix ms of its start, into out ("" when not given); false
 * with the reason on stderr. */
static bool
s_since (const s_cmd_t *cmd, char *out, size_t outlen)
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
    s_cmd_t cmd;
    char since[24], limit[24], err[256];
    int64_t limit_n = 0;
    bool json;
    int rc, n;

    if (!s_begin (&cmd, "",
                  "List the dead letters, newest first (`retainctl notify failed retry` queues "
                  "them again).",
                  s_failed_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (s_json_flag (&cmd, &json) != 0 || !s_since (&cmd, since, sizeof since))
        goto cleanup;
    if (rt_config_get_int (cmd.config, "limit", 1, S_LIMIT_MAX, &limit_n, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    rc = 1;
    snprintf (limit, sizeof limit, "%lld", (long long)limit_n);
    if (!s_connect (&cmd))
        goto cleanup;
    {
        const char *v[2] = {since, limit};
        cmd.res = rt_db_exec_params (cmd.db, s_sql_failed, 2, v);
    }
    if (!cmd.res) {
        s_db_error (&cmd);
        goto cleanup;
    }
    n = PQntuples (cmd.res) > limit_n ? (int)limit_n : PQntuples (cmd.res);
    if (json) {
        json_t *all = json_array ();
        for (int r = 0; all && r < n; r++)
            json_array_append_new (all, s_failed_json (cmd.res, r));
        if (s_print_json (all) != 0)
            goto cleanup;
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
    s_end (&cmd);
    return rc;
}

static int
s_failed_retry (int argc, char **argv)
{
    s_cmd_t cmd;
    char since[24], now[24], err[256];
    const char *id;
    rt_uuid_t uuid;
    bool all;
    int rc, queued, left;

    if (!s_begin (&cmd, "failed",
                  "Queue dead letters again (attempts reset, due now) for the running notifyd.",
                  s_retry_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    id = rt_config_get (cmd.config, "id");
    if (rt_config_get_bool (cmd.config, "all", &all, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
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
    if (!s_connect (&cmd))
        goto cleanup;
    if (rt_db_begin (cmd.db) != 0) {
        s_db_error (&cmd);
        goto cleanup;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[3] = {now, id, since};
        cmd.res = rt_db_exec_params (cmd.db, s_sql_retry, 3, v);
        if (!cmd.res) {
            s_db_error (&cmd);
            goto cleanup;
        }
        queued = PQntuples (cmd.res);
        PQclear (cmd.res);
        if (*id)
            cmd.res = rt_db_exec_params (cmd.db, s_sql_state, 1, v + 1);
        else
            cmd.res = rt_db_exec_params (cmd.db, s_sql_left, 1, v + 2);
    }
    if (!cmd.res) {
        s_db_error (&cmd);
        goto cleanup;
    }
    if (rt_db_commit (cmd.db) != 0) {
        s_db_error (&cmd);
        goto cleanup;
    }
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
    s_end (&cmd);
    return rc;
}
