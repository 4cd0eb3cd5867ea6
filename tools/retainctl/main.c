/*
 * retainctl: publish to and read from the bus, inspect state, migrate.
 *
 * Each command is a function in its own file (retainctl.h) with its own
 * settings table, so `retainctl <command> --help` lists exactly what that
 * command takes, environment variables included.
 */
#include <stdio.h>
#include <string.h>

#include "retainctl.h"
#include "rt_log.h"
#include "rt_signal.h"

typedef struct {
    const char *name;                   /* command word */
    int (*run) (int argc, char **argv); /* its entry point */
    const char *summary;                /* one line for the usage text */
} s_command_t;

static const s_command_t s_commands[] = {
    {"migrate", retainctl_migrate, "apply every schema's migrations"},
    {"publish", retainctl_publish, "publish one event from JSON and wait for its ack"},
    {"tail", retainctl_tail, "print events from the log as JSON lines"},
    {"offsets", retainctl_offsets, "show each consumer group's position and lag"},
    {"keygen", retainctl_keygen, "print a new ZeroMQ CURVE key pair"},
    {"inbox", retainctl_inbox, "manage ingest inboxes: add, list, rotate-secret, ..."},
    {"churn", retainctl_churn, "customer value and churn: fit, score, report, summary"},
    {NULL, NULL, NULL}};

static void
s_usage (FILE *out)
{
    const s_command_t *c;
    fprintf (out, "usage: retainctl <command> [--flags]   (retainctl <command> --help)\n\n");
    for (c = s_commands; c->name; c++)
        fprintf (out, "  %-10s %s\n", c->name, c->summary);
}

int
main (int argc, char **argv)
{
    const s_command_t *c;
    rt_log_init ("retainctl", RT_LOG_WARN);
    rt_signal_install ();
    if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "help") == 0) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (c = s_commands; c->name; c++) {
        if (strcmp (argv[1], c->name) == 0)
            return c->run (argc - 1, argv + 1);
    }
    fprintf (stderr, "retainctl: unknown command \"%s\"\n\n", argv[1]);
    s_usage (stderr);
    return 2;
}
