/*
 * retainctl sla and team hours: routerd's SLA policies
 * (routing.sla_policies) and the business hours of its teams
 * (routing.teams.business_hours).
 *
 *   sla set --file F|-          a policy in sla.h's JSON form; one of the
 *                               same name is replaced (keeping its place)
 *   sla list [--json]           name, clock, scope, targets, as stored
 *   sla delete --name N
 *   team hours --id T --file F|-   a calendar: {"zone", "weekly", "holidays"}
 *   team hours --id T --clear
 *
 * Writes go through routerd's own functions (routing_sla_policy_set,
 * routing_sla_policy_delete, routing_team_hours_set), so what retainctl
 * accepts is exactly what routerd's clocks count with, refused for the
 * same reasons in the same words: a policy or calendar is parsed before
 * anything is written, and a refusal (exit 2, the parser's reason on
 * stderr) writes nothing. routerd reads the policies at the start of each
 * wait, so a change here applies to the next clock any replica starts;
 * clocks already running keep the due times they have.
 *
 * routing.h has no listing of policies, so list reads the table here and
 * parses each stored text with sla_policy_parse to show what it means;
 * the order is routing's (created_at), the one that decides between two
 * policies of the same kind.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "routing.h"
#include "rt_channel.h"
#include "rt_config.h"
#include "rt_db.h"
#include "sla.h"

/* A policy or a calendar is a few hundred bytes; a file past this is not
 * one (a log, a binary named by mistake). */
#define S_INPUT_MAX (64 * 1024)

static const rt_config_setting_t s_set_settings[] = {
    RETAINCTL_PG_DSN,
    {"file", NULL, "",
     "the policy as JSON (services/router/sla.h's form), a file or - for stdin (required)"},
    RETAINCTL_END};
static const rt_config_setting_t s_list_settings[] = {
    RETAINCTL_PG_DSN,
    {"json", NULL, "false", "print a JSON array (each with the policy as stored)"},
    RETAINCTL_END};
static const rt_config_setting_t s_delete_settings[] = {
    RETAINCTL_PG_DSN, {"name", NULL, "", "the policy's name (required)"}, RETAINCTL_END};
static const rt_config_setting_t s_hours_settings[] = {
    RETAINCTL_PG_DSN,
    {"id", NULL, "", "the team's id (required)"},
    {"file", NULL, "",
     "the calendar as JSON: {\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\", "
     "\"holidays\": [\"2026-12-25\"]}, a file or - for stdin"},
    {"clear", NULL, "false", "remove the team's business hours instead"},
    RETAINCTL_END};

/* Read in the order routerd applies them. */
static const char *s_sql_list =
    "SELECT name, policy, (extract(epoch FROM updated_at) * 1000)::bigint"
    " FROM routing.sla_policies ORDER BY created_at, name";

/* Connects and registers routing's statements, which the routing_
 * functions run by name; then begins the transaction of a write (tx). */
static bool
s_connect (retainctl_cmd_t *cmd, bool tx)
{
    char err[512];
    if (!retainctl_cmd_connect (cmd, RETAINCTL_DB_AS_IS))
        return false;
    if (routing_prepare (cmd->db, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s (has `retainctl migrate` run?)\n", cmd->program, err);
        return false;
    }
    return !tx || retainctl_cmd_tx_begin (cmd);
}

/* Turns one routing call's outcome into the exit status: commits on
 * ROUTING_OK (0, or 1 when the commit fails); a refusal is bad input (2)
 * with why on stderr, a database failure 1. */
static int
s_finish (retainctl_cmd_t *cmd, routing_status_t st, const char *why)
{
    if (st == ROUTING_OK)
        return retainctl_cmd_tx_commit (cmd) ? 0 : 1;
    fprintf (stderr, "%s: %s\n", cmd->program, why);
    return st == ROUTING_ERR_DB ? 1 : 2;
}

/* The whole of --file (a path, or "-" for stdin), NUL-terminated, into
 * *text (owned). false with the reason on stderr: none given, unreadable,
 * too long, or holding a NUL byte (the stored text is a C string). */
static bool
s_read_input (const retainctl_cmd_t *cmd, char **text)
{
    const char *path = rt_config_get (cmd->config, "file");
    size_t n;
    if (!*path) {
        fprintf (stderr, "%s: --file is required (a file, or - for stdin)\n", cmd->program);
        return false;
    }
    if (!retainctl_cmd_read_file (cmd, "file", path, S_INPUT_MAX, text, &n))
        return false;
    if (memchr (*text, '\0', n)) {
        fprintf (stderr, "%s: --file %s: holds a NUL byte, so it is no JSON text\n", cmd->program,
                 path);
        free (*text);
        *text = NULL;
        return false;
    }
    return true;
}

/* --- what a policy says, for list and set --- */

/* Minutes as they read best: "2h", "90m", "-" for not measured. Never
 * days: 24 business hours are three working days, not one. */
static void
s_format_target (int64_t ms, char *out, size_t outlen)
{
    long long min = (long long)(ms / 60000);
    if (ms <= 0)
        snprintf (out, outlen, "-");
    else if (min % 60 == 0)
        snprintf (out, outlen, "%lldh", min / 60);
    else
        snprintf (out, outlen, "%lldm", min);
}

/* "default", "team support", "channel email", "inbox rozetka-main". */
static void
s_format_scope (const sla_policy_t *p, char *out, size_t outlen)
{
    switch (p->scope) {
    case SLA_SCOPE_TEAM:
        snprintf (out, outlen, "team %s", p->scope_id);
        break;
    case SLA_SCOPE_CHANNEL:
        snprintf (out, outlen, "channel %s", rt_channel_name (p->channel));
        break;
    case SLA_SCOPE_INBOX:
        snprintf (out, outlen, "inbox %s", p->scope_id);
        break;
    default:
        snprintf (out, outlen, "default");
        break;
    }
}

/* "business (team's hours)", "business (own hours)", "wall". */
static const char *
s_clock_name (const sla_policy_t *p)
{
    if (p->clock == SLA_CLOCK_WALL)
        return "wall";
    return p->calendar ? "business (own hours)" : "business (team's hours)";
}

/* "80%", "15m before", "-"; "flag", "flag, reassign to senior", ... */
static void
s_format_warning (const sla_policy_t *p, char *out, size_t outlen)
{
    char lead[24];
    if (p->warn_percent > 0)
        snprintf (out, outlen, "%d%%", p->warn_percent);
    else if (p->warn_before_ms > 0) {
        s_format_target (p->warn_before_ms, lead, sizeof lead);
        snprintf (out, outlen, "%s before", lead);
    } else
        snprintf (out, outlen, "-");
}

static void
s_format_escalation (const sla_policy_t *p, char *out, size_t outlen)
{
    const sla_escalation_t *e = &p->escalation;
    snprintf (out, outlen, "%s%s%s%s%s", e->flag_supervisor ? "flag" : "",
              e->flag_supervisor && e->reassign ? ", " : "", e->reassign ? "reassign" : "",
              e->reassign && e->reassign_team ? " to " : "",
              e->reassign && e->reassign_team ? e->reassign_team : "");
    if (!*out)
        snprintf (out, outlen, "-");
}

/* --- sla --- */

static int
s_sla_set (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512] = "", scope[96], first[24], next[24], resolution[24];
    char *text = NULL;
    sla_policy_t *p = NULL;
    routing_status_t st;
    int rc;

    if (!retainctl_cmd_begin (
            &cmd, "sla",
            "Store an SLA policy (JSON, services/router/sla.h's form); one of the same name "
            "is replaced.",
            s_set_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_read_input (&cmd, &text))
        goto cleanup;
    /* Parsed here too, for the summary and to refuse without a database;
     * routing_sla_policy_set parses again, and has the last word. */
    p = sla_policy_parse (text, strlen (text), err, sizeof err);
    if (!p) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    rc = 1;
    if (!s_connect (&cmd, true))
        goto cleanup;
    st = routing_sla_policy_set (cmd.db, text, err, sizeof err);
    rc = s_finish (&cmd, st, err);
    if (rc != 0)
        goto cleanup;
    s_format_scope (p, scope, sizeof scope);
    s_format_target (p->target_ms[SLA_FIRST_RESPONSE], first, sizeof first);
    s_format_target (p->target_ms[SLA_NEXT_RESPONSE], next, sizeof next);
    s_format_target (p->target_ms[SLA_RESOLUTION], resolution, sizeof resolution);
    printf ("SLA policy \"%s\" stored: %s, %s; first response %s, next response %s, resolution "
            "%s\n",
            p->name, scope, s_clock_name (p), first, next, resolution);
cleanup:
    sla_policy_destroy (&p);
    free (text);
    retainctl_cmd_end (&cmd);
    return rc;
}

/* One stored policy as list --json shows it: what it means, and the
 * stored text as a JSON value (so that it can be fed back to set). NULL
 * when out of memory. */
static json_t *
s_policy_json (const sla_policy_t *p, const char *text, long long updated_ms)
{
    char scope[96], warning[32], escalation[96];
    json_t *stored = json_loads (text, 0, NULL);
    json_t *row;
    s_format_scope (p, scope, sizeof scope);
    s_format_warning (p, warning, sizeof warning);
    s_format_escalation (p, escalation, sizeof escalation);
    row = json_pack (
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:o}", "name", p->name, "clock",
        p->clock == SLA_CLOCK_WALL ? "wall" : "business", "scope", scope, "first_response_minutes",
        (json_int_t)(p->target_ms[SLA_FIRST_RESPONSE] / 60000), "next_response_minutes",
        (json_int_t)(p->target_ms[SLA_NEXT_RESPONSE] / 60000), "resolution_minutes",
        (json_int_t)(p->target_ms[SLA_RESOLUTION] / 60000), "warning", warning, "escalation",
        escalation, "updated_ms", (json_int_t)updated_ms, "policy", stored ? stored : json_null ());
    return row;
}

static int
s_sla_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char scope[96], first[24], next[24], resolution[24], warning[32], escalation[96];
    const PGresult *res;
    json_t *all = NULL;
    bool json;
    int rc, r;

    if (!retainctl_cmd_begin_list (&cmd, "sla",
                                   "List the SLA policies, in the order routerd applies them.",
                                   s_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    if (!s_connect (&cmd, false))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_list, 0, NULL))
        goto cleanup;
    res = cmd.res;
    all = json ? json_array () : NULL;
    if (json && !all)
        goto cleanup;
    if (!json)
        printf ("%-24s %-24s %-24s %-8s %-8s %-10s %-12s %s\n", "NAME", "CLOCK", "SCOPE", "FIRST",
                "NEXT", "RESOLUTION", "WARNING", "ESCALATION");
    for (r = 0; r < PQntuples (res); r++) {
        const char *name = PQgetvalue (res, r, 0), *text = PQgetvalue (res, r, 1);
        char why[256] = "";
        sla_policy_t *p = sla_policy_parse (text, strlen (text), why, sizeof why);
        if (!p) {
            /* Stored by an older routerd and refused by this one: routerd
             * leaves it out too, and says so in its log. */
            fprintf (stderr, "%s: policy \"%s\" no longer parses (routerd ignores it): %s\n",
                     cmd.program, name, why);
            continue;
        }
        if (json) {
            json_t *row = s_policy_json (p, text, strtoll (PQgetvalue (res, r, 2), NULL, 10));
            sla_policy_destroy (&p);
            if (json_array_append_new (all, row) != 0)
                goto cleanup;
            continue;
        }
        s_format_scope (p, scope, sizeof scope);
        s_format_target (p->target_ms[SLA_FIRST_RESPONSE], first, sizeof first);
        s_format_target (p->target_ms[SLA_NEXT_RESPONSE], next, sizeof next);
        s_format_target (p->target_ms[SLA_RESOLUTION], resolution, sizeof resolution);
        s_format_warning (p, warning, sizeof warning);
        s_format_escalation (p, escalation, sizeof escalation);
        printf ("%-24s %-24s %-24s %-8s %-8s %-10s %-12s %s\n", name, s_clock_name (p), scope,
                first, next, resolution, warning, escalation);
        sla_policy_destroy (&p);
    }
    if (json) {
        int printed = retainctl_print_json (all, JSON_COMPACT);
        all = NULL;
        if (printed != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref (all);
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_sla_delete (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512] = "";
    const char *name;
    routing_status_t st;
    int rc;

    if (!retainctl_cmd_begin (
            &cmd, "sla",
            "Delete an SLA policy; the clocks it runs stop now (one already past due still "
            "breaches).",
            s_delete_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "name", &name))
        goto cleanup;
    rc = 1;
    if (!s_connect (&cmd, true))
        goto cleanup;
    st = routing_sla_policy_delete (cmd.db, name, err, sizeof err);
    if (st == ROUTING_ERR_NOT_FOUND) {
        /* A failure, as an unknown operator is for `operator disable`:
         * the command itself was well formed. */
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    rc = s_finish (&cmd, st, err);
    if (rc == 0)
        printf ("SLA policy \"%s\" deleted\n", name);
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- team hours --- */

int
retainctl_team_hours (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512] = "";
    char *text = NULL;
    const char *team;
    json_t *cal = NULL;
    routing_status_t st;
    bool clear;
    int rc;

    if (!retainctl_cmd_begin (
            &cmd, "team",
            "Set a team's business hours (its zone, weekly hours and holidays), which its "
            "business-hours SLA policies count in; or --clear them.",
            s_hours_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "id", &team))
        goto cleanup;
    if (!retainctl_cmd_bool (&cmd, "clear", &clear))
        goto cleanup;
    if (clear == (*rt_config_get (cmd.config, "file") != '\0')) {
        fprintf (stderr, "%s: give exactly one of --file and --clear\n", cmd.program);
        goto cleanup;
    }
    if (!clear && !s_read_input (&cmd, &text))
        goto cleanup;
    rc = 1;
    if (!s_connect (&cmd, true))
        goto cleanup;
    st = routing_team_hours_set (cmd.db, team, text, err, sizeof err);
    if (st == ROUTING_ERR_NOT_FOUND)
        snprintf (err, sizeof err, "no team \"%s\" (add it first: retainctl team add --id %s ...)",
                  team, team);
    rc = s_finish (&cmd, st, err);
    if (rc != 0)
        goto cleanup;
    if (clear) {
        printf ("team %s: business hours cleared\n", team);
        goto cleanup;
    }
    /* Accepted, so a JSON object with a zone and a week. */
    cal = json_loads (text, 0, NULL);
    {
        const char *weekly = json_string_value (json_object_get (cal, "weekly"));
        const char *zone = json_string_value (json_object_get (cal, "zone"));
        printf ("team %s: business hours set, %s in %s\n", team, weekly ? weekly : "?",
                zone ? zone : "?");
    }
cleanup:
    json_decref (cal);
    free (text);
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_sla_commands[] = {
    {.name = "set",
     .summary = "store an SLA policy from JSON: --file F|- (replaced by its name)",
     .run = s_sla_set},
    {.name = "list", .summary = "list the SLA policies in the order they apply", .run = s_sla_list},
    {.name = "delete", .summary = "delete an SLA policy: --name N", .run = s_sla_delete},
    {.name = NULL}};
