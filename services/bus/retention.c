/*
 * retention: the housekeeping of the log, run by the writer between
 * batches: at every takeover, at every change of the UTC day on busd's
 * clock, and every --housekeeping interval besides.
 *
 * What busd accepts and what the log holds agree by construction:
 * - busd accepts ids made from (now - retention + 1 h) to (now + 24 h);
 * - housekeeping creates the daily partitions of bus.events from the day
 *   of (now - retention) to two days past (now + 24 h), so every id in
 *   the window has its partition, whatever the host's uptime or the hour;
 * - a partition is dropped only when it ended more than the retention
 *   before now, so no id it could hold is still accepted (the hour of
 *   margin covers the time between two runs), and only once every
 *   consumer group has consumed it (bus.drop_expired checks the offsets);
 * - after each run busd reads which days exist and refuses, with a reason,
 *   an id whose day has no partition (a day dropped by hand, a run that
 *   failed), so such an id is answered at once instead of failing the
 *   batch it would join.
 * Every date here is busd's clock (rt_clock), passed to PostgreSQL, never
 * the server's now(). Envelope ids are de-duplicated by the log's primary
 * key, so they are remembered exactly as long as their events are kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busd.h"
#include "rt_clock.h"
#include "rt_log.h"

#define DAY_MS 86400000LL

static void
s_date (int64_t ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r (&t, &tm);
    strftime (out, outlen, "%Y-%m-%d", &tm);
}

/* Days since the epoch of a partition name's date ("events_20261201"). */
static int64_t
s_partition_day (const char *relname)
{
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    if (strlen (relname) != 15 ||
        sscanf (relname + 7, "%4d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm (&tm) / 86400;
}

/* Reads which days have a partition and keeps the contiguous run around
 * today as the span busd accepts ids from. */
static void
s_read_coverage (busd_t *self, int64_t now_ms)
{
    PGresult *res = rt_db_exec_params (
        self->db,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'bus.events'::regclass AND c.relname ~ '^events_[0-9]{8}$' "
        "ORDER BY 1",
        0, NULL);
    int64_t today = now_ms / DAY_MS, first = -1, last = -1;
    int r;
    if (!res) {
        rt_log (RT_LOG_ERROR, "reading the log's partitions failed",
                rt_log_str ("error", rt_db_error (self->db)));
        return;
    }
    for (r = 0; r < PQntuples (res); r++) {
        int64_t day = s_partition_day (PQgetvalue (res, r, 0));
        if (day < 0)
            continue;
        if (first >= 0 && day == last + 1) {
            last = day;
            continue;
        }
        if (first >= 0 && first <= today && last >= today)
            break; /* the run around today is complete */
        first = last = day;
    }
    PQclear (res);
    if (first < 0 || first > today || last < today) {
        self->covered_from_ms = self->covered_to_ms = 0;
        rt_log (RT_LOG_ERROR, "no log partition holds today's ids");
        return;
    }
    self->covered_from_ms = first * DAY_MS;
    self->covered_to_ms = (last + 1) * DAY_MS;
}

void
retention_run (busd_t *self)
{
    int64_t now = rt_clock_now_ms ();
    int64_t from_ms = now - self->retention_ms;
    int64_t to_ms = now + DAY_MS + 2 * DAY_MS;
    char from[16], days[16], interval[64], at[64];
    const char *params[2];
    PGresult *res;
    int r;

    s_date (from_ms, from, sizeof from);
    snprintf (days, sizeof days, "%lld", (long long)(to_ms / DAY_MS - from_ms / DAY_MS + 1));
    params[0] = from;
    params[1] = days;
    res =
        rt_db_exec_params (self->db, "SELECT bus.ensure_partitions($1::date, $2::int)", 2, params);
    if (!res) {
        rt_log (RT_LOG_ERROR, "creating log partitions failed",
                rt_log_str ("error", rt_db_error (self->db)));
        return;
    }
    if (atoi (PQgetvalue (res, 0, 0)) > 0)
        rt_log (RT_LOG_INFO, "log partitions created",
                rt_log_int ("count", atoi (PQgetvalue (res, 0, 0))), rt_log_str ("from", from));
    PQclear (res);

    snprintf (interval, sizeof interval, "%lld milliseconds", (long long)self->retention_ms);
    snprintf (at, sizeof at, "%lld", (long long)now);
    params[0] = interval;
    params[1] = at;
    res = rt_db_exec_params (
        self->db, "SELECT bus.drop_expired($1::interval, to_timestamp($2::bigint / 1000.0))", 2,
        params);
    if (!res)
        rt_log (RT_LOG_ERROR, "retention failed", rt_log_str ("error", rt_db_error (self->db)));
    else {
        for (r = 0; r < PQntuples (res); r++)
            rt_log (RT_LOG_INFO, "log partition dropped",
                    rt_log_str ("partition", PQgetvalue (res, r, 0)));
        PQclear (res);
    }
    s_read_coverage (self, now);
}
