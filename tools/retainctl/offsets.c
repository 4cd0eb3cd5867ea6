/*
 * retainctl offsets: every consumer group's position per partition, the
 * log's head there, the lag between them, and which replica owns it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_config.h"
#include "rt_db.h"

static const rt_config_setting_t s_settings[] = {
    RETAINCTL_PG_DSN,
    {"group", NULL, "", "only this group"},
    {"all", NULL, "false", "list every partition (default: a line per group and stream)"},
    RETAINCTL_END};

/* Each partition of each group ($1 one group, '' for all). */
static const char *s_sql_partitions =
    "SELECT o.grp, o.stream, o.partition::text, o.pseq, c.pseq, c.pseq - o.pseq, "
    "o.owner, o.epoch FROM bus.offsets o JOIN bus.counters c USING (stream, partition) "
    "WHERE $1 = '' OR o.grp = $1 ORDER BY 1, 2, o.partition";

/* The same summed over each group's partitions of a stream. */
static const char *s_sql_groups =
    "SELECT o.grp, o.stream, count(*)::text || ' partitions', sum(o.pseq), sum(c.pseq), "
    "sum(c.pseq - o.pseq), string_agg(DISTINCT NULLIF(o.owner, ''), ','), max(o.epoch) "
    "FROM bus.offsets o JOIN bus.counters c USING (stream, partition) "
    "WHERE $1 = '' OR o.grp = $1 GROUP BY 1, 2 ORDER BY 1, 2";

int
retainctl_offsets (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const PGresult *res;
    const char *group;
    bool all = false;
    int rc, r;

    if (!retainctl_cmd_begin (&cmd, NULL, "Show each consumer group's lag per partition.",
                              s_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_bool (&cmd, "all", &all))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    group = rt_config_get (cmd.config, "group");
    if (!retainctl_cmd_exec (&cmd, all ? s_sql_partitions : s_sql_groups, 1, &group))
        goto cleanup;
    res = cmd.res;
    printf ("%-20s %-13s %-14s %12s %12s %10s  %s\n", "GROUP", "STREAM", "PARTITION", "CONSUMED",
            "HEAD", "LAG", "OWNER");
    for (r = 0; r < PQntuples (res); r++)
        printf ("%-20s %-13s %-14s %12s %12s %10s  %s\n", PQgetvalue (res, r, 0),
                PQgetvalue (res, r, 1), PQgetvalue (res, r, 2), PQgetvalue (res, r, 3),
                PQgetvalue (res, r, 4), PQgetvalue (res, r, 5), PQgetvalue (res, r, 6));
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}
