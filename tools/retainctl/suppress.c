/*
 * retainctl suppress: notifyd's suppression list (notify.suppressions),
 * the addresses never to be messaged whoever they belong to, as an
 * operator keeps it.
 *
 *   suppress add --address A [--reason TEXT] [--by NAME] [--default-country UA]
 *   suppress remove --address A [--reason TEXT] [--by NAME] [--default-country UA]
 *   suppress list [--json]
 *
 * An address is written as notifyd compares it with a send's recipient:
 * a phone number in E.164, read by common/phone as routerd reads the
 * numbers it matches customers on (a national number in --default-country,
 * routerd's own setting RETAIN_ROUTER_DEFAULT_COUNTRY), or an e-mail
 * address lower-cased, one address notifyd's SMTP adapter could send to
 * (no display name, no list). Anything else exits 2 and writes nothing.
 *
 * add and remove go through notify.suppression_set (source
 * "operator:<by>"), which keeps every change in suppression_history; a
 * suppression is lifted, not deleted. The change is stamped now, or just
 * after the address's last change when that is later (a clock behind
 * another daemon's), so an operator's word is always the newest. add of
 * an address already suppressed changes nothing and says so; remove of
 * one that is not exits 1. notifyd reads the list at every send, so a
 * change holds from the next send on, queued ones included.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "provider.h"
#include "retainctl.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_phone.h"

#define S_REASON_MAX 500 /* --reason's bytes at most */

static const rt_config_setting_t s_change_settings[] = {
    RETAINCTL_PG_DSN,
    {"address", NULL, "", "a phone number or an e-mail address (required)"},
    {"reason", NULL, "", "why, kept with the change (one line)"},
    {"by", NULL, "", "who changed it, kept in the source operator:<by>; default: $USER"},
    {"default-country", "RETAIN_ROUTER_DEFAULT_COUNTRY", "UA",
     "ISO 3166 country a national phone number is read in (routerd's setting)"},
    RETAINCTL_END};
static const rt_config_setting_t s_list_settings[] = {RETAINCTL_PG_DSN, RETAINCTL_JSON,
                                                      RETAINCTL_END};

#define S_AT "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const char *s_sql_current = "SELECT suppressed, source, reason, " S_AT
                                   " FROM notify.suppressions WHERE address = $1 FOR UPDATE";
/* $1 address, $2 suppressed, $3 source, $4 reason, $5 now (ms). */
static const char *s_sql_set =
    "SELECT notify.suppression_set($1, $2::boolean, $3, $4,"
    " GREATEST(to_timestamp($5::bigint / 1000.0),"
    "          (SELECT at + interval '1 millisecond' FROM notify.suppressions"
    "            WHERE address = $1)))";
static const char *s_sql_list = "SELECT address, source, reason, " S_AT " FROM notify.suppressions"
                                " WHERE suppressed ORDER BY at DESC, address";

/* --address as notifyd compares it into out. false with the reason
 * printed. */
static bool
s_address (const retainctl_cmd_t *cmd, char out[PROVIDER_ADDR_MAX])
{
    const char *in = rt_config_get (cmd->config, "address");
    size_t start = 0, end = strlen (in);
    char why[256];

    while (start < end && isspace ((unsigned char)in[start]))
        start++;
    while (end > start && isspace ((unsigned char)in[end - 1]))
        end--;
    if (start == end) {
        fprintf (stderr, "%s: --address is required (a phone number or an e-mail address)\n",
                 cmd->program);
        return false;
    }
    if (memchr (in + start, '@', end - start)) {
        bool ok = end - start < PROVIDER_ADDR_MAX;
        for (size_t i = 0; ok && i < end - start; i++)
            out[i] = (char)tolower ((unsigned char)in[start + i]);
        if (ok) {
            out[end - start] = '\0';
            ok = provider_smtp_address_ok (out);
        }
        if (!ok)
            fprintf (stderr,
                     "%s: --address \"%s\" is not one e-mail address notifyd could send to "
                     "(name@domain, ASCII, no display name, no list)\n",
                     cmd->program, in);
        return ok;
    }
    if (rt_phone_normalize (in, rt_config_get (cmd->config, "default-country"), out, why,
                            sizeof why) != 0) {
        fprintf (stderr,
                 "%s: --address \"%s\" is neither an e-mail address nor a phone number: %s\n",
                 cmd->program, in, why);
        return false;
    }
    return true;
}

/* --- add, remove --- */

static int
s_change (int argc, char **argv, bool suppress, const char *summary)
{
    retainctl_cmd_t cmd;
    char address[PROVIDER_ADDR_MAX], by[RETAINCTL_BY_MAX + 1], source[RETAINCTL_BY_MAX + 16];
    char now[24];
    const char *reason;
    bool was;
    int rc;

    if (!retainctl_cmd_begin (&cmd, "suppress", summary, s_change_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    reason = rt_config_get (cmd.config, "reason");
    if (!s_address (&cmd, address) || !retainctl_cmd_by (&cmd, by) ||
        !retainctl_cmd_line (&cmd, "reason", S_REASON_MAX))
        goto cleanup;
    snprintf (source, sizeof source, "operator:%s", by);
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) || !retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_current, 1, (const char *[]){address}))
        goto cleanup;
    was = PQntuples (cmd.res) > 0 && strcmp (PQgetvalue (cmd.res, 0, 0), "t") == 0;
    if (suppress && was) {
        printf ("%s is already suppressed (since %s, %s%s%s): unchanged\n", address,
                PQgetvalue (cmd.res, 0, 3), PQgetvalue (cmd.res, 0, 1),
                *PQgetvalue (cmd.res, 0, 2) ? ": " : "", PQgetvalue (cmd.res, 0, 2));
        rc = 0;
        goto cleanup;
    }
    if (!suppress && !was) {
        fprintf (stderr, "%s: %s is not suppressed\n", cmd.program, address);
        goto cleanup;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (!retainctl_cmd_exec (
            &cmd, s_sql_set, 5,
            (const char *[]){address, suppress ? "true" : "false", source, reason, now}) ||
        !retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
    printf ("%s %s (source %s)\n", address, suppress ? "suppressed" : "no longer suppressed",
            source);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_add (int argc, char **argv)
{
    return s_change (argc, argv, true,
                     "Suppress an address: notifyd never messages it, whoever it belongs to.");
}

static int
s_remove (int argc, char **argv)
{
    return s_change (argc, argv, false, "Lift an address's suppression.");
}

/* --- list --- */

static json_t *
s_row_json (const PGresult *r, int i)
{
    return json_pack ("{ss ss ss ss}", "address", PQgetvalue (r, i, 0), "source",
                      PQgetvalue (r, i, 1), "reason", PQgetvalue (r, i, 2), "at",
                      PQgetvalue (r, i, 3));
}

static int
s_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    bool json;
    int rc;

    if (!retainctl_cmd_begin_list (&cmd, "suppress",
                                   "List the suppressed addresses, the newest first.",
                                   s_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_list, 0, NULL))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_row_json, JSON_COMPACT) != 0)
            goto cleanup;
    } else {
        printf ("%-32s  %-20s  %-24s  %s\n", "ADDRESS", "SINCE", "SOURCE", "REASON");
        for (int i = 0; i < PQntuples (cmd.res); i++)
            printf ("%-32s  %-20s  %-24s  %s\n", PQgetvalue (cmd.res, i, 0),
                    PQgetvalue (cmd.res, i, 3), PQgetvalue (cmd.res, i, 1),
                    PQgetvalue (cmd.res, i, 2));
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_suppress_commands[] = {
    {.name = "add", .summary = "never message an address: --address A [--reason]", .run = s_add},
    {.name = "remove", .summary = "lift a suppression: --address A", .run = s_remove},
    {.name = "list", .summary = "the suppressed addresses", .run = s_list},
    {.name = NULL}};
