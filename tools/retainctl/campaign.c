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
 * create, and the segments it evaluates, are campaign_create.c's.
 *
 * start, pause, resume and cancel move the status (draft → running ⇄
 * paused; any of them, or done while sends wait for a customer's morning,
 * → cancelled); the running notifyd's runner claims
 * only a running campaign's targets, so a pause holds from its next step.
 * A move the status does not allow exits 1 naming the status.
 *
 * status prints the counts; with --follow it prints them again every
 * --interval until the campaign is over and its counts final (done or
 * cancelled, and no send left queued or sending), or Ctrl-C: a progress
 * bar redrawn in place on a terminal, a plain line whenever they change
 * otherwise.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_signal.h"

#define S_BAR_WIDTH 30 /* the progress bar's cells */

#define S_JSON                                                                                     \
    {                                                                                              \
        "json", NULL, "false", "print JSON instead of text"                                        \
    }
#define S_ID                                                                                       \
    {                                                                                              \
        "id", NULL, "", "the campaign's id (required)"                                             \
    }

static const rt_config_setting_t s_id_settings[] = {RETAINCTL_PG_DSN, S_ID, RETAINCTL_END};

static const rt_config_setting_t s_list_settings[] = {RETAINCTL_PG_DSN, S_JSON, RETAINCTL_END};

static const rt_config_setting_t s_status_settings[] = {
    RETAINCTL_PG_DSN,
    S_ID,
    {"follow", NULL, "false", "print again until the campaign is over and its counts final"},
    {"interval", NULL, "1s", "between two prints with --follow"},
    S_JSON,
    RETAINCTL_END};

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
    " cancelled,"                                                                                  \
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
    C_CANCELLED,
    C_PENDING,
    C_SETTLED,
    C_BY,
    C_CREATED,
    C_SEGMENT
};

/* --id as a UUID; false (usage) otherwise. */
static bool
s_campaign_id (const retainctl_cmd_t *cmd, const char **id)
{
    return retainctl_cmd_uuid (cmd, "id", "a campaign id", id);
}

/* --- start, pause, resume, cancel --- */

static int
s_move (int argc, char **argv, const char *summary, const char *to, const char *from)
{
    retainctl_cmd_t cmd;
    const char *id;
    char now[24];
    int rc;
    if (!retainctl_cmd_begin (&cmd, "campaign", summary, s_id_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_campaign_id (&cmd, &id))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (!retainctl_cmd_exec (&cmd, s_sql_move, 4, (const char *[]){id, to, from, now}))
        goto cleanup;
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
    retainctl_cmd_end (&cmd);
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
    return s_move (argc, argv,
                   "Cancel a campaign: its pending targets are never claimed, and its sends "
                   "still queued (waiting for a customer's morning, even once it is done) are "
                   "cancelled.",
                   "cancelled", "{draft,running,paused,done}");
}

/* --- list, status --- */

static json_t *
s_row_json (const PGresult *r, int i)
{
    json_t *o = json_pack (
        "{ss ss ss ss sf sI sI sI sI sI sI sI sb ss ss}", "id", PQgetvalue (r, i, C_ID), "template",
        PQgetvalue (r, i, C_TEMPLATE), "category", PQgetvalue (r, i, C_CATEGORY), "status",
        PQgetvalue (r, i, C_STATUS), "rate_per_s", atof (PQgetvalue (r, i, C_RATE)), "targeted",
        (json_int_t)atoll (PQgetvalue (r, i, C_TARGETED)), "queued",
        (json_int_t)atoll (PQgetvalue (r, i, C_QUEUED)), "sent",
        (json_int_t)atoll (PQgetvalue (r, i, C_SENT)), "skipped",
        (json_int_t)atoll (PQgetvalue (r, i, C_SKIPPED)), "failed",
        (json_int_t)atoll (PQgetvalue (r, i, C_FAILED)), "cancelled",
        (json_int_t)atoll (PQgetvalue (r, i, C_CANCELLED)), "pending",
        (json_int_t)atoll (PQgetvalue (r, i, C_PENDING)), "settled",
        strcmp (PQgetvalue (r, i, C_SETTLED), "t") == 0, "created_by", PQgetvalue (r, i, C_BY),
        "created_at", PQgetvalue (r, i, C_CREATED));
    json_t *seg = o ? json_loads (PQgetvalue (r, i, C_SEGMENT), 0, NULL) : NULL;
    if (o)
        json_object_set_new (o, "segment", seg ? seg : json_null ());
    return o;
}

static int
s_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    bool json;
    int rc;
    if (!retainctl_cmd_begin_list (&cmd, "campaign", "List the campaigns, newest first.",
                                   s_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_list, 0, NULL))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_row_json, JSON_COMPACT) != 0)
            goto cleanup;
    } else {
        printf ("%-36s  %-10s  %-20s  %9s  %8s  %8s  %8s  %8s  %8s  %9s\n", "ID", "STATUS",
                "TEMPLATE", "RATE/S", "TARGETED", "QUEUED", "SENT", "SKIPPED", "FAILED",
                "CANCELLED");
        for (int i = 0; i < PQntuples (cmd.res); i++)
            printf ("%-36s  %-10s  %-20s  %9g  %8s  %8s  %8s  %8s  %8s  %9s\n",
                    PQgetvalue (cmd.res, i, C_ID), PQgetvalue (cmd.res, i, C_STATUS),
                    PQgetvalue (cmd.res, i, C_TEMPLATE), atof (PQgetvalue (cmd.res, i, C_RATE)),
                    PQgetvalue (cmd.res, i, C_TARGETED), PQgetvalue (cmd.res, i, C_QUEUED),
                    PQgetvalue (cmd.res, i, C_SENT), PQgetvalue (cmd.res, i, C_SKIPPED),
                    PQgetvalue (cmd.res, i, C_FAILED), PQgetvalue (cmd.res, i, C_CANCELLED));
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* The counts of row 0 as one line of words. */
static void
s_counts (const PGresult *r, char *out, size_t len)
{
    snprintf (
        out, len,
        "targeted %s  queued %s  sent %s  skipped %s  failed %s  cancelled %s  pending %s  (%s)",
        PQgetvalue (r, 0, C_TARGETED), PQgetvalue (r, 0, C_QUEUED), PQgetvalue (r, 0, C_SENT),
        PQgetvalue (r, 0, C_SKIPPED), PQgetvalue (r, 0, C_FAILED), PQgetvalue (r, 0, C_CANCELLED),
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
    retainctl_cmd_t cmd;
    const char *id;
    bool follow, json, tty = isatty (STDOUT_FILENO) == 1;
    int64_t interval;
    char err[256], line[512], last[512] = "";
    int rc;
    if (!retainctl_cmd_begin (&cmd, "campaign",
                              "Show a campaign's counts; --follow until it is over.",
                              s_status_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_campaign_id (&cmd, &id) || !retainctl_cmd_bool (&cmd, "follow", &follow) ||
        !retainctl_cmd_bool (&cmd, "json", &json))
        goto cleanup;
    if (rt_config_get_ms (cmd.config, "interval", &interval, err, sizeof err) != 0 ||
        interval < 10) {
        fprintf (stderr, "%s: %s\n", cmd.program,
                 interval < 10 ? "--interval is at least 10ms" : err);
        goto cleanup;
    }
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT))
        goto cleanup;
    for (;;) {
        if (!retainctl_cmd_exec (&cmd, s_sql_status, 1, &id))
            goto cleanup;
        if (PQntuples (cmd.res) == 0) {
            fprintf (stderr, "%s: no campaign %s\n", cmd.program, id);
            goto cleanup;
        }
        s_counts (cmd.res, line, sizeof line);
        if (json) {
            if (strcmp (line, last) != 0 &&
                retainctl_print_json (s_row_json (cmd.res, 0), JSON_COMPACT) != 0)
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
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_campaign_commands[] = {
    {.name = "create",
     .summary = "make a campaign: --template, --segment",
     .run = retainctl_campaign_create},
    {.name = "start", .summary = "start a draft campaign", .run = s_start},
    {.name = "pause", .summary = "pause a running campaign", .run = s_pause},
    {.name = "resume", .summary = "resume a paused campaign", .run = s_resume},
    {.name = "cancel", .summary = "cancel a campaign", .run = s_cancel},
    {.name = "list", .summary = "list the campaigns and their counts", .run = s_list},
    {.name = "status",
     .summary = "a campaign's counts, --follow with a progress bar",
     .run = s_status},
    {.name = NULL}};
