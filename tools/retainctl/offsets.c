/*
 * retainctl offsets: every consumer group's position per partition, the
 * log's head there, the lag between them, and which replica owns it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "retainctl.h"
#include "rt_config.h"
#include "rt_db.h"

static const rt_config_setting_t s_settings[] = {
    {"pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"},
    {"group", NULL, "", "only this group"},
    {"all", NULL, "false", "list every partition (default: a line per group and stream)"},
    {NULL, NULL, NULL, NULL}};

int
retainctl_offsets (int argc, char **argv)
{
    char err[512];
    rt_config_t *config = rt_config_new (
        "retainctl offsets", "Show each consumer group's lag per partition.", s_settings);
    rt_db_t *db = NULL;
    PGresult *res = NULL;
    const char *params[1];
    bool all = false;
    int rc = 1, r;

    if (!config)
        return 1;
    if (!retainctl_parse (config, "retainctl offsets", argc, argv, &rc))
        goto cleanup;
    if (rt_config_get_bool (config, "all", &all, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl offsets: %s\n", err);
        rc = 2;
        goto cleanup;
    }
    db = rt_db_new (rt_config_get (config, "pg-dsn"), "retainctl");
    if (!db || rt_db_connect (db) != 0) {
        fprintf (stderr, "retainctl offsets: cannot connect: %s\n", db ? rt_db_error (db) : "");
        goto cleanup;
    }
    params[0] = rt_config_get (config, "group");
    if (all)
        res = rt_db_exec_params (
            db,
            "SELECT o.grp, o.stream, o.partition::text, o.pseq, c.pseq, c.pseq - o.pseq, "
            "o.owner, o.epoch FROM bus.offsets o JOIN bus.counters c USING (stream, partition) "
            "WHERE $1 = '' OR o.grp = $1 ORDER BY 1, 2, o.partition",
            1, params);
    else
        res = rt_db_exec_params (
            db,
            "SELECT o.grp, o.stream, count(*)::text || ' partitions', sum(o.pseq), sum(c.pseq), "
            "sum(c.pseq - o.pseq), string_agg(DISTINCT NULLIF(o.owner, ''), ','), max(o.epoch) "
            "FROM bus.offsets o JOIN bus.counters c USING (stream, partition) "
            "WHERE $1 = '' OR o.grp = $1 GROUP BY 1, 2 ORDER BY 1, 2",
            1, params);
    if (!res) {
        fprintf (stderr, "retainctl offsets: %s\n", rt_db_error (db));
        goto cleanup;
    }
    printf ("%-20s %-13s %-14s %12s %12s %10s  %s\n", "GROUP", "STREAM", "PARTITION", "CONSUMED",
            "HEAD", "LAG", "OWNER");
    for (r = 0; r < PQntuples (res); r++)
        printf ("%-20s %-13s %-14s %12s %12s %10s  %s\n", PQgetvalue (res, r, 0),
                PQgetvalue (res, r, 1), PQgetvalue (res, r, 2), PQgetvalue (res, r, 3),
                PQgetvalue (res, r, 4), PQgetvalue (res, r, 5), PQgetvalue (res, r, 6));
    rc = 0;
cleanup:
    PQclear (res);
    rt_db_destroy (&db);
    rt_config_destroy (&config);
    return rc;
}
