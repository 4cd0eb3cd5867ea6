/*
 * retainctl's commands. main.c holds the table of them and dispatches argv
 * to one: a command is a function given argc/argv from its own word on
 * (argv[0] is e.g. "publish", or "add" for "retainctl inbox add"); a group
 * (inbox, churn, team, operator, sla, template, notify) is a table of
 * subcommands dispatched the same way, so "--help", "help" and the listing
 * behave alike at every level; a command with subcommands of its own
 * ("notify failed", "notify failed retry") runs them when the next word
 * names one. Each command returns the process exit status: 0 success, 1
 * failure, 2 bad usage.
 */
#ifndef RETAINCTL_H
#define RETAINCTL_H

#include <stdbool.h>

#include "rt_config.h"

typedef struct retainctl_command_t retainctl_command_t;

struct retainctl_command_t {
    const char *name;                   /* the command word; NULL ends a table */
    const char *summary;                /* one line for the usage text */
    int (*run) (int argc, char **argv); /* its entry point; NULL for a group */
    const retainctl_command_t *subs;    /* a group's subcommands, or a command's own
                                           (run when the next word names one); NULL: none */
};

/* Parses a command's flags (argv[0] is its word) into config; a positional
 * argument is a usage error, since no command takes one. Returns true when
 * the command goes on; false when it is over, with *status set to 0 after
 * --help was printed or 2 after a usage error was (to stderr, headed by
 * `program`). */
bool retainctl_parse (rt_config_t *config, const char *program, int argc, char **argv, int *status);

int retainctl_migrate (int argc, char **argv);
int retainctl_publish (int argc, char **argv);
int retainctl_tail (int argc, char **argv);
int retainctl_offsets (int argc, char **argv);
int retainctl_keygen (int argc, char **argv);
/* retainctl team hours (sla.c, beside the SLA policies it serves). */
int retainctl_team_hours (int argc, char **argv);

/* The groups' subcommands (inbox.c, churn.c, operator.c, sla.c, template.c,
 * notify.c). */
extern const retainctl_command_t retainctl_inbox_commands[];
extern const retainctl_command_t retainctl_churn_commands[];
extern const retainctl_command_t retainctl_team_commands[];
extern const retainctl_command_t retainctl_operator_commands[];
extern const retainctl_command_t retainctl_sla_commands[];
extern const retainctl_command_t retainctl_template_commands[];
extern const retainctl_command_t retainctl_template_whatsapp_commands[];
extern const retainctl_command_t retainctl_notify_commands[];
/* retainctl carrier's and shipment's subcommands (tracker.c). */
extern const retainctl_command_t retainctl_carrier_commands[];
extern const retainctl_command_t retainctl_shipment_commands[];

/* retainctl consent's and suppress's subcommands (consent.c, suppress.c). */
extern const retainctl_command_t retainctl_consent_commands[];
extern const retainctl_command_t retainctl_suppress_commands[];
/* retainctl campaign's subcommands (campaign.c), and campaign create
 * (campaign_create.c). */
extern const retainctl_command_t retainctl_campaign_commands[];
int retainctl_campaign_create (int argc, char **argv);
/* retainctl notify failed, and its own subcommands (notify_failed.c). */
int retainctl_notify_failed (int argc, char **argv);
extern const retainctl_command_t retainctl_notify_failed_commands[];

#endif
