/*
 * retainctl: publish to and read from the bus, inspect state, migrate.
 *
 * Each command is a function in its own file (retainctl.h) with its own
 * settings table, so `retainctl <command> --help` lists exactly what that
 * command takes, environment variables included. The commands form one
 * table here, groups (inbox, churn, team, operator, sla, template, notify,
 * campaign, consent, suppress) nesting their own, and one dispatcher walks it: at every level
 * "--help" and "help" print the usage on stdout and exit 0, a missing or unknown word prints it on
 * stderr and exits 2. A command may have subcommands of its own ("notify failed" and "notify failed
 * retry"): a next word naming one runs it, anything else runs the command. `retainctl help
 * --commands` prints every command line the table holds, one per line, so a test (or a shell
 * completion) covers a new command without being told about it.
 */
#include <stdio.h>
#include <string.h>

#include "retainctl.h"
#include "rt_log.h"
#include "rt_signal.h"

#define S_MAX_ARGS 256

static const retainctl_command_t s_commands[] = {
    {.name = "migrate", .summary = "apply every schema's migrations", .run = retainctl_migrate},
    {.name = "publish",
     .summary = "publish one event from JSON and wait for its ack",
     .run = retainctl_publish},
    {.name = "tail", .summary = "print events from the log as JSON lines", .run = retainctl_tail},
    {.name = "offsets",
     .summary = "show each consumer group's position and lag",
     .run = retainctl_offsets},
    {.name = "keygen",
     .summary = "print a new CURVE key pair for busd or a client (--for)",
     .run = retainctl_keygen},
    {.name = "inbox",
     .summary = "manage ingest inboxes: add, list, rotate-secret, ...",
     .subs = retainctl_inbox_commands},
    {.name = "churn",
     .summary = "customer value and churn: fit, score, report, summary",
     .subs = retainctl_churn_commands},
    {.name = "team",
     .summary = "routerd's teams of operators: add, list, hours",
     .subs = retainctl_team_commands},
    {.name = "operator",
     .summary = "routerd's operators and their API keys: add, list, disable, rotate-key",
     .subs = retainctl_operator_commands},
    {.name = "sla",
     .summary = "routerd's SLA policies: set, list, delete",
     .subs = retainctl_sla_commands},
    {.name = "template",
     .summary = "notifyd's templates: add, list, show, preview",
     .subs = retainctl_template_commands},
    {.name = "notify",
     .summary = "notifyd's sending accounts and dead letters: account, failed",
     .subs = retainctl_notify_commands},
    {.name = "campaign",
     .summary = "notifyd's campaigns: create, start, pause, resume, cancel, list, status",
     .subs = retainctl_campaign_commands},
    {.name = "consent",
     .summary = "a customer's consent to messages: set, show",
     .subs = retainctl_consent_commands},
    {.name = "suppress",
     .summary = "the addresses never to be messaged: add, remove, list",
     .subs = retainctl_suppress_commands},
    {.name = "carrier",
     .summary = "trackerd's carrier accounts: add, list, resume, codes",
     .subs = retainctl_carrier_commands},
    {.name = "shipment",
     .summary = "the parcels trackerd follows: add, show, key, milestones",
     .subs = retainctl_shipment_commands},
    {.name = NULL}};

bool
retainctl_parse (rt_config_t *config, const char *program, int argc, char **argv, int *status)
{
    char err[512];
    switch (rt_config_parse (config, argc, argv, err, sizeof err)) {
    case 1:
        *status = 0;
        return false;
    case -1:
        fprintf (stderr, "%s: %s\n", program, err);
        *status = 2;
        return false;
    }
    if (rt_config_argc (config) > 0) {
        fprintf (stderr, "%s: unexpected argument \"%s\" (see %s --help)\n", program,
                 rt_config_argv (config, 0), program);
        *status = 2;
        return false;
    }
    return true;
}

static void
s_usage (FILE *out, const char *prefix, const retainctl_command_t *table)
{
    const retainctl_command_t *c;
    fprintf (out, "usage: %s <command> [--flags]   (%s <command> --help)\n\n", prefix, prefix);
    for (c = table; c->name; c++)
        fprintf (out, "  %-14s %s\n", c->name, c->summary);
    fprintf (out, "\n  %-14s %s\n", "help [command]", "this text, or the command's (as --help)");
}

/* Every command line under table, one per line, groups included. */
static void
s_list (const char *prefix, const retainctl_command_t *table)
{
    const retainctl_command_t *c;
    char line[256];
    for (c = table; c->name; c++) {
        int w = snprintf (line, sizeof line, "%s%s%s", prefix, *prefix ? " " : "", c->name);
        if (w < 0 || (size_t)w >= sizeof line)
            continue; /* no command line is this long */
        printf ("%s\n", line);
        if (c->subs)
            s_list (line, c->subs);
    }
}

/* Whether argv[2] names one of c's subcommands (c a command with them). */
static bool
s_names_sub (const retainctl_command_t *c, int argc, char **argv)
{
    const retainctl_command_t *sub;
    for (sub = c->subs; sub && argc > 2 && sub->name; sub++) {
        if (strcmp (argv[2], sub->name) == 0)
            return true;
    }
    return false;
}

/* Runs argv against table; argv[0] is the word that led here and prefix
 * names it for the usage text ("retainctl", "retainctl inbox"). */
static int
s_dispatch (const char *prefix, const retainctl_command_t *table, int argc, char **argv)
{
    const retainctl_command_t *c;
    char sub[256];
    if (argc < 2) {
        s_usage (stderr, prefix, table);
        return 2;
    }
    if (strcmp (argv[1], "help") == 0 && argc > 2 && strncmp (argv[2], "--", 2) != 0) {
        /* "help inbox add" is "inbox add --help". */
        char *again[S_MAX_ARGS];
        int n = 0, i;
        if (argc + 1 > S_MAX_ARGS) {
            fprintf (stderr, "%s: too many arguments\n", prefix);
            return 2;
        }
        again[n++] = argv[0];
        for (i = 2; i < argc; i++)
            again[n++] = argv[i];
        again[n++] = "--help";
        again[n] = NULL;
        return s_dispatch (prefix, table, n, again);
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "help") == 0) {
        s_usage (stdout, prefix, table);
        return 0;
    }
    for (c = table; c->name; c++) {
        if (strcmp (argv[1], c->name) != 0)
            continue;
        if (c->run && !s_names_sub (c, argc, argv))
            return c->run (argc - 1, argv + 1);
        snprintf (sub, sizeof sub, "%s %s", prefix, c->name);
        return s_dispatch (sub, c->subs, argc - 1, argv + 1);
    }
    fprintf (stderr, "%s: unknown command \"%s\"\n\n", prefix, argv[1]);
    s_usage (stderr, prefix, table);
    return 2;
}

int
main (int argc, char **argv)
{
    rt_log_init ("retainctl", RT_LOG_WARN);
    rt_signal_install ();
    if (argc == 3 && strcmp (argv[1], "help") == 0 && strcmp (argv[2], "--commands") == 0) {
        s_list ("", s_commands);
        return 0;
    }
    return s_dispatch ("retainctl", s_commands, argc, argv);
}
