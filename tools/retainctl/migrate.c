/*
 * retainctl migrate: applies every schema's migrations, in dependency
 * order: the outbox first (every producer appends to it, and the bus's
 * migration 003 moves the rows of the old bus.outbox into it), then the
 * bus, then each daemon's own: ingest's; routerd's crm, then routing
 * (whose conversations name crm's customers); notifyd's (its sends
 * and templates, whose customers are crm's); then the tables of the
 * HTTP APIs, the API keys (apikey) and the shared Idempotency-Key store
 * (http), which reference nobody's.
 */
#include <stdio.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_migrate.h"
#include "rt_outbox.h"

/* Each set is generated beside its library (rt_embed_sql); the headers
 * that declare some of them are their libraries' own. */
extern const rt_migration_set_t rt_migrations_bus;
extern const rt_migration_set_t rt_migrations_ingest;
extern const rt_migration_set_t rt_migrations_crm;
extern const rt_migration_set_t rt_migrations_routing;
extern const rt_migration_set_t rt_migrations_notify;
extern const rt_migration_set_t rt_migrations_apikey;
extern const rt_migration_set_t rt_migrations_http;
extern const rt_migration_set_t rt_migrations_tracking;

static const rt_migration_set_t *const s_sets[] = {&rt_migrations_outbox,   &rt_migrations_bus,
                                                   &rt_migrations_ingest,   &rt_migrations_crm,
                                                   &rt_migrations_routing,  &rt_migrations_notify,
                                                   &rt_migrations_apikey,   &rt_migrations_http,
                                                   &rt_migrations_tracking, NULL};

static const rt_config_setting_t s_settings[] = {RETAINCTL_PG_DSN, RETAINCTL_END};

int
retainctl_migrate (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512];
    int rc, i;
    if (!retainctl_cmd_begin (&cmd, NULL, "Apply every schema's migrations.", s_settings, argc,
                              argv, &rc) ||
        !retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    for (i = 0; s_sets[i]; i++) {
        int n = rt_migrate_apply (cmd.db, s_sets[i], err, sizeof err);
        if (n < 0) {
            fprintf (stderr, "%s: %s\n", cmd.program, err);
            goto cleanup;
        }
        printf ("%s: %d applied, %zu known\n", s_sets[i]->schema, n, s_sets[i]->count);
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}
