/*
 * retention: the housekeeping of the log, run by the writer between
 * batches (hourly, and at takeover).
 *
 * - daily partitions of bus.events exist from yesterday to three days
 *   ahead, so an append never finds its day missing;
 * - partitions older than the retention window are dropped, except those
 *   holding an event some consumer group has not consumed yet
 *   (bus.drop_expired checks every group's offsets). Envelope ids are
 *   de-duplicated by the log's primary key, so they are remembered exactly
 *   as long as their events are kept.
 */
#include <stdio.h>
#include <stdlib.h>

#include "busd.h"
#include "rt_log.h"

void
retention_run (busd_t *self)
{
    char interval[64];
    const char *params[1] = {interval};
    PGresult *res;
    int r;

    res = rt_db_exec_params (
        self->db, "SELECT bus.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, 5)", 0, NULL);
    if (!res) {
        rt_log (RT_LOG_ERROR, "creating log partitions failed", "error", "%s",
                rt_db_error (self->db), NULL);
        return;
    }
    if (atoi (PQgetvalue (res, 0, 0)) > 0)
        rt_log (RT_LOG_INFO, "log partitions created", "count", "%d", atoi (PQgetvalue (res, 0, 0)),
                NULL);
    PQclear (res);

    snprintf (interval, sizeof interval, "%lld milliseconds", (long long)self->retention_ms);
    res = rt_db_exec_params (self->db, "SELECT bus.drop_expired($1::interval)", 1, params);
    if (!res) {
        rt_log (RT_LOG_ERROR, "retention failed", "error", "%s", rt_db_error (self->db), NULL);
        return;
    }
    for (r = 0; r < PQntuples (res); r++)
        rt_log (RT_LOG_INFO, "log partition dropped", "partition", "%s", PQgetvalue (res, r, 0),
                NULL);
    PQclear (res);
}
