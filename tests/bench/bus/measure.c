/*
 * measure: what bench_bus reads to measure. PostgreSQL's queries (the
 * offsets, one-value queries) and the COPY baseline; the commit poller, a
 * thread with its own connection reading a group's offsets during the
 * latency phase; the CPU of busd, the cluster and the replicas from
 * /proc/<pid>/stat; the cluster's WAL position and checkpoints.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_bus.h"
#include "schedule.h"

/* ---- PostgreSQL ---------------------------------------------------------- */

long long
measure_query_long (PGconn *conn, const char *sql)
{
    PGresult *res = PQexec (conn, sql);
    long long v;
    if (PQresultStatus (res) != PGRES_TUPLES_OK || PQntuples (res) != 1)
        bench_fail ("%s: %s", sql, PQresultErrorMessage (res));
    v = strtoll (PQgetvalue (res, 0, 0), NULL, 10);
    PQclear (res);
    return v;
}

static const char *s_sql_offsets = "SELECT partition, pseq FROM bus.offsets "
                                   "WHERE grp = $1 AND stream = '" STREAM "'";

/* Reads group g's committed pseq of every partition into out. 0, or -1
 * with why. */
int
measure_offsets_read (PGconn *conn, int g, int nparts, uint64_t *out, char *why, size_t whylen)
{
    char group[32];
    const char *params[1] = {group};
    PGresult *res;
    traffic_group_name (g, group, sizeof group);
    res = PQexecPrepared (conn, "offsets", 1, params, NULL, NULL, 0);
    int r;
    if (PQresultStatus (res) != PGRES_TUPLES_OK || PQntuples (res) != nparts) {
        snprintf (why, whylen, "reading bus.offsets: %s (%d rows for %d partitions)",
                  PQresultErrorMessage (res), PQntuples (res), nparts);
        PQclear (res);
        return -1;
    }
    for (r = 0; r < nparts; r++) {
        int p = atoi (PQgetvalue (res, r, 0));
        if (p < 0 || p >= nparts) {
            snprintf (why, whylen, "bus.offsets names partition %d", p);
            PQclear (res);
            return -1;
        }
        out[p] = strtoull (PQgetvalue (res, r, 1), NULL, 10);
    }
    PQclear (res);
    return 0;
}

PGconn *
measure_connect (const char *dsn)
{
    PGconn *conn = PQconnectdb (dsn);
    PGresult *res;
    if (PQstatus (conn) != CONNECTION_OK)
        bench_fail ("PostgreSQL: %s", PQerrorMessage (conn));
    /* The baseline's DROP TABLE IF EXISTS would NOTICE on every run. */
    res = PQexec (conn, "SET client_min_messages = warning");
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        bench_fail ("PostgreSQL: %s", PQresultErrorMessage (res));
    PQclear (res);
    res = PQprepare (conn, "offsets", s_sql_offsets, 0, NULL);
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        bench_fail ("preparing the offsets query: %s", PQresultErrorMessage (res));
    PQclear (res);
    return conn;
}

/* Rows like bus.events' (payloads of `payload` random bytes) into a plain
 * table with COPY: the ceiling. */
double
measure_copy_baseline (PGconn *conn, long rows, int payload)
{
    static const char hex[] = "0123456789abcdef";
    PGresult *res;
    char pad[MAX_PAYLOAD * 2 + 1];
    char line[MAX_PAYLOAD * 2 + 512];
    int64_t t0, t1;
    long i;
    int k;
    PQclear (PQexec (conn, "DROP TABLE IF EXISTS bench_copy"));
    res = PQexec (conn, "CREATE TABLE bench_copy (seq bigint, stream text, partition int, "
                        "pseq bigint, id uuid, type text, key text, occurred_at bigint, "
                        "producer text, correlation_id text, payload bytea, "
                        "appended_at timestamptz)");
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        bench_fail ("baseline table: %s", PQresultErrorMessage (res));
    PQclear (res);
    t0 = loadgen_mono_ns ();
    res = PQexec (conn, "COPY bench_copy FROM STDIN");
    if (PQresultStatus (res) != PGRES_COPY_IN)
        bench_fail ("COPY: %s", PQresultErrorMessage (res));
    PQclear (res);
    for (i = 0; i < rows; i++) {
        rt_uuid_t id = rt_uuid_v7 ();
        char idtext[RT_UUID_STR_LEN + 1];
        int n;
        rt_uuid_format (&id, idtext);
        traffic_fill_random (pad, (size_t)payload * 2, (uint64_t)i);
        for (k = 0; k < payload * 2; k++)
            pad[k] = hex[(unsigned char)pad[k] & 15];
        n = snprintf (
            line, sizeof line,
            "%ld\torder\t%ld\t%ld\t%s\tOrderPlaced\tcustomer-%ld\t%lld\tbench\t\t\\\\x%s\t"
            "2026-11-24 10:00:00+00\n",
            i + 1, i % 16, i / 16 + 1, idtext, i % 5000, (long long)i, pad);
        if (PQputCopyData (conn, line, n) != 1)
            bench_fail ("COPY: %s", PQerrorMessage (conn));
    }
    if (PQputCopyEnd (conn, NULL) != 1)
        bench_fail ("COPY: %s", PQerrorMessage (conn));
    res = PQgetResult (conn);
    if (PQresultStatus (res) != PGRES_COMMAND_OK || atol (PQcmdTuples (res)) != rows)
        bench_fail ("COPY: %s (%s rows of %ld)", PQresultErrorMessage (res), PQcmdTuples (res),
                    rows);
    PQclear (res);
    while ((res = PQgetResult (conn)) != NULL)
        PQclear (res);
    t1 = loadgen_mono_ns ();
    PQclear (PQexec (conn, "DROP TABLE bench_copy"));
    return (double)rows / ((double)(t1 - t0) / 1e9);
}

/* ---- the commit poller --------------------------------------------------- */

static void *
s_poll_run (void *arg)
{
    bench_poller_t *pl = arg;
    uint64_t *now = calloc ((size_t)pl->nparts, sizeof *now);
    if (!now) {
        snprintf (pl->why, sizeof pl->why, "out of memory");
        return NULL;
    }
    while (!atomic_load (&pl->stop)) {
        int64_t t;
        int p;
        if (measure_offsets_read (pl->conn, 0, pl->nparts, now, pl->why, sizeof pl->why) != 0)
            break;
        t = loadgen_mono_ns ();
        if (pl->polls++ == 0)
            pl->first_ns = t;
        pl->last_ns = t;
        for (p = 0; p < pl->nparts; p++) {
            if (pl->nobs[p] > 0 && pl->obs[p][pl->nobs[p] - 1].pseq >= now[p])
                continue;
            if (pl->nobs[p] == pl->cap[p]) {
                size_t cap = pl->cap[p] ? 2 * pl->cap[p] : 1024;
                bench_obs_t *grown = realloc (pl->obs[p], cap * sizeof *grown);
                if (!grown) {
                    snprintf (pl->why, sizeof pl->why, "out of memory");
                    goto done;
                }
                pl->obs[p] = grown;
                pl->cap[p] = cap;
            }
            pl->obs[p][pl->nobs[p]++] = (bench_obs_t){t, now[p]};
            atomic_store (&pl->committed[p], now[p]);
        }
        bench_sleep_until (t + pl->period_ns);
    }
done:
    free (now);
    return NULL;
}

void
measure_poll_start (bench_poller_t *pl)
{
    int p;
    for (p = 0; p < pl->nparts; p++) {
        pl->nobs[p] = 0;
        atomic_store (&pl->committed[p], 0);
    }
    pl->polls = 0;
    pl->why[0] = '\0';
    atomic_store (&pl->stop, 0);
    if (pthread_create (&pl->thread, NULL, s_poll_run, pl) != 0)
        bench_fail ("cannot start the commit poller");
}

void
measure_poll_stop (bench_poller_t *pl)
{
    atomic_store (&pl->stop, 1);
    pthread_join (pl->thread, NULL);
    if (pl->why[0])
        bench_fail ("commit poller: %s", pl->why);
}

/* When the poller first saw partition p committed at or past pseq; -1 when
 * it never did. */
int64_t
measure_commit_ns (const bench_poller_t *pl, uint32_t p, uint64_t pseq)
{
    size_t lo = 0, hi = pl->nobs[p];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->obs[p][mid].pseq < pseq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < pl->nobs[p] ? pl->obs[p][lo].t_ns : -1;
}

/* ---- CPU from /proc ------------------------------------------------------ */

/* utime + stime of pid in clock ticks (+ cutime + cstime with children:
 * what its reaped children used), and its parent. -1 when it is gone. */
static long long
s_proc_ticks (pid_t pid, bool children, pid_t *ppid)
{
    char path[64], buf[1024], *close_paren;
    unsigned long utime, stime;
    long cutime, cstime;
    int parent;
    size_t n;
    FILE *f;
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen (path, "r");
    if (!f)
        return -1;
    n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf[n] = '\0';
    /* The command name, in parentheses, may hold spaces: fields follow the
     * last ')'. */
    close_paren = strrchr (buf, ')');
    if (!close_paren ||
        sscanf (close_paren + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld",
                &parent, &utime, &stime, &cutime, &cstime) != 5)
        return -1;
    if (ppid)
        *ppid = parent;
    return (long long)(utime + stime) + (children ? cutime + cstime : 0);
}

/* Every process of the cluster: the postmaster's children alive now, then
 * the postmaster with what its reaped children used. A backend that exits
 * between the two readings is counted twice (alive, then reaped), never
 * missed, so the figure errs high; the bench keeps its connections for
 * the whole run and so does the consumer, so few do. */
static long long
s_pg_ticks (pid_t postmaster)
{
    long long total = 0, t;
    struct dirent *e;
    DIR *d = opendir ("/proc");
    if (!d)
        bench_fail ("/proc: %s", strerror (errno));
    while ((e = readdir (d)) != NULL) {
        pid_t ppid = 0;
        if (!isdigit ((unsigned char)e->d_name[0]))
            continue;
        t = s_proc_ticks ((pid_t)atoi (e->d_name), false, &ppid);
        if (t >= 0 && ppid == postmaster)
            total += t;
    }
    closedir (d);
    t = s_proc_ticks (postmaster, true, NULL);
    if (t < 0)
        bench_fail ("the postmaster (pid %d) is gone", (int)postmaster);
    return total + t;
}

/* The CPU of the target's busd, cluster and running consumer children. */
void
measure_cpu_sample (bench_cpu_t *c, const bench_t *b)
{
    int g;
    c->pg = s_pg_ticks (b->postmaster);
    c->busd = s_proc_ticks (b->busd, false, NULL);
    c->consumer = 0;
    if (c->busd < 0)
        bench_fail ("busd (pid %d) is gone", (int)b->busd);
    for (g = 0; g < b->groups; g++) {
        long long t;
        if (b->child[g] <= 0)
            continue;
        t = s_proc_ticks (b->child[g], false, NULL);
        if (t < 0)
            bench_fail ("the consumer (pid %d) is gone", (int)b->child[g]);
        c->consumer += t;
    }
}

/* The cluster's WAL position in bytes, and its checkpoints so far. */
void
measure_wal_sample (PGconn *conn, long long *wal, long long *ckpt)
{
    *wal = measure_query_long (conn, "SELECT pg_current_wal_insert_lsn () - '0/0'");
    *ckpt =
        measure_query_long (conn, PQserverVersion (conn) >= 170000
                                      ? "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
                                      : "SELECT checkpoints_timed + checkpoints_req "
                                        "FROM pg_stat_bgwriter");
}

pid_t
measure_postmaster_pid (const char *pgdata)
{
    char path[4096];
    long pid = 0;
    FILE *f;
    snprintf (path, sizeof path, "%s/postmaster.pid", pgdata);
    f = fopen (path, "r");
    if (!f || fscanf (f, "%ld", &pid) != 1 || pid <= 0)
        bench_fail ("%s: no postmaster pid (%s)", path, f ? "unreadable" : strerror (errno));
    fclose (f);
    return (pid_t)pid;
}
