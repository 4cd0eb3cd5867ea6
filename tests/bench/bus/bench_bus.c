/*
 * bench_bus: the durable end-to-end throughput and latency of the bus,
 * every figure checked before it is printed, against the raw limit of
 * PostgreSQL on the same machine.
 *
 *   bench_bus [--config NAME] --pg-dsn DSN --ingress EP --pub EP
 *             --busd-pid PID --pg-data DIR [--config NAME2 --pg-dsn ...]
 *             [--events N] [--latency-events N] [--rate R] [--burst B]
 *             [--runs R] [--deadline S] [--commit-poll-us U] [--rcvhwm N]
 *             [--record FILE] [--groups G] [--payload BYTES] [--backlog N]
 *             [--cell NAME]
 *
 * Targets. Each --config names a PostgreSQL cluster and the busd writing
 * to it (at most MAX_TARGETS; tests/bench/bus/run passes "defaults" and
 * "tuned"). Every run measures every target, one after the other, in the
 * other order than the run before (ABBA), so that a machine whose load
 * drifts weighs on both alike; every figure is kept and printed per
 * target, and with two the second's medians over the first's.
 *
 * The consumers: one replica of each of --groups groups (default 1;
 * "bench", "bench-2", ...) reading the stream "order", each in a child
 * process (one per run), committing its offsets in rounds like any group.
 * Its handler only records, in memory shared with this process, when it
 * saw each event and where (partition, pseq); it never fails.
 *
 * Each run (--runs, default 3; every figure is the median of the runs):
 *
 * Throughput. PRODUCERS threads send --events OrderPlaced events with
 * --payload-byte payloads (default 256; random characters, which neither
 * TOAST nor wal_compression squeezes more than real ones) as fast as busd
 * acknowledges them (after its commit; WINDOW unacknowledged each).
 * events_per_s is N over the time from the first send to the last offset
 * commit, of every group, covering the last event (the committed offsets
 * are polled every millisecond once every handler has seen every event,
 * so the bench adds no query load while events flow).
 * cpu_us_per_event_*: user + system CPU (/proc/<pid>/stat) over that same
 * interval, per event, of busd, of the whole PostgreSQL cluster (see
 * s_pg_ticks) and of the consumer processes together;
 * wal_bytes_per_event: the cluster's WAL over the same interval, and
 * checkpoints the checkpoints counted meanwhile.
 *
 * Backlog (--backlog N, instead of both phases; one run): N events sent as
 * above with no group running, load_events_per_s over the first send to
 * the last ack (and load_* the CPU, WAL and checkpoints over it); then every group starts new and
 * catches up from the log: events_per_s is N over the time from the replicas' start to the commit
 * covering the last event, and the CPU and WAL figures are the catch-up's.
 *
 * Latency, open loop (none with --latency-events 0; measured at the first
 * group). One producer at --rate (default 10,000/s) for
 * --latency-events: event i is due at t0 + i/rate (with --burst B, B
 * events are due together every B/rate s), whatever busd does; each event's
 * due time is kept; a producer that falls behind (a full window, a slow
 * post) sends the late events at once, never skips one, and their latency
 * still counts from the due time. achieved_rate is the events sent over the
 * time from the first due time to the last send (with --burst, which is for
 * looking at bursts, the last burst is due one burst interval before the
 * end, so the figure overstates by that); more than 5% short of the
 * target sets rate_ok false and the exit status 1. Two latencies, over
 * every event of the phase (none left out: a missing one fails the run):
 *   p50_ms ... max_ms          due time to the consumer's handler entry;
 *   commit_p50_ms ... _max_ms  due time to the consumer's commit of an
 *                              offset covering the event (durable). A
 *                              thread with its own connection reads the
 *                              group's offsets in bus.offsets every
 *                              --commit-poll-us (default 1000); an event
 *                              counts as committed when the answer of the
 *                              first poll showing its partition's offset at
 *                              or past its pseq arrives: an upper bound,
 *                              late by at most one poll period plus one
 *                              query (commit_poll_ms is the mean period).
 *                              rt_consumer has no commit callback to stamp
 *                              it exactly.
 * CLOCK_MONOTONIC is one clock for every process of the machine, so the
 * producer's due times, the handler's stamps and the poller's compare.
 *
 * Baseline. The same N rows (at most a million) COPYed into a plain table
 * of the same cluster, in the same run (ratio = events_per_s /
 * copy_rows_per_s).
 *
 * Checks, at the end of every run, over every event of the bench so far:
 * each was acknowledged OK (or DUPLICATE, counted) by busd; every group's
 * handler was called exactly once for each (by envelope id: every slot's
 * id is compared with the one posted; a group has one replica and a
 * handler that never fails, so a second call is a redelivery), at the
 * partition and pseq of its ack, and for nothing else; the log holds
 * exactly that many events of the stream, and each of its partitions
 * every pseq from 1 to its counter once, no gap; every group's committed
 * offsets cover every ack. Every wait has a deadline (--deadline, default 60 s,
 * doubled, beyond the time the phase's events take at 2,000/s).
 * A failed check exits 1 with the reason on stderr and prints no figures.
 *
 * Where the time went, beside the figures: throughput_tail_ms is the time
 * from the last ack to the covering commit (the consumer's lag at the end
 * of the burst); consumer_gaps_* count the first group's replica's gaps
 * (live events lost between busd's PUB and the replica, read back from the
 * log) in each phase, summed over the runs; slow_events counts the latency events
 * handled SLOW_MS or more after they were due. On stderr, per run: when
 * the last ack, the last handler call and the covering commit came.
 * --rcvhwm sets the replica's SUB high-water mark (default ZeroMQ's, as
 * the daemons run); --record FILE writes one CSV line per event (times in
 * ms from the phase's start) to look at where the time went.
 *
 * Prints a line per run and target, then one JSON object, last: the
 * cell's settings (--cell names it), then per target its medians.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_bus.h"
#include "rt_log.h"
#include "schedule.h"

void
bench_fail (const char *fmt, ...)
{
    va_list ap;
    fprintf (stderr, "bench_bus: FAIL: ");
    va_start (ap, fmt);
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fprintf (stderr, "\n");
    exit (1);
}

void
bench_sleep_until (int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- figures and the command line ---------------------------------------- */

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over the runs of the figure at `offset` in bench_figures_t. */
static double
s_med (const bench_figures_t *fig, int runs, size_t offset)
{
    double v[MAX_RUNS];
    int r;
    for (r = 0; r < runs; r++)
        v[r] = *(const double *)((const char *)&fig[r] + offset);
    qsort (v, (size_t)runs, sizeof *v, s_cmp_double);
    return runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
}

/* The sum over the runs, likewise. */
static double
s_sum (const bench_figures_t *fig, int runs, size_t offset)
{
    double sum = 0;
    int r;
    for (r = 0; r < runs; r++)
        sum += *(const double *)((const char *)&fig[r] + offset);
    return sum;
}

#define MED(field) s_med (fig, runs, offsetof (bench_figures_t, field))
#define SUM(field) s_sum (fig, runs, offsetof (bench_figures_t, field))

static long
s_arg_long (const char *name, const char *v, long min, long max)
{
    char *end = NULL;
    long n;
    errno = 0;
    n = strtol (v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        fprintf (stderr, "bench_bus: %s must be a number from %ld to %ld\n", name, min, max);
        exit (2);
    }
    return n;
}

static void
s_usage (void)
{
    fprintf (stderr,
             "usage: bench_bus [--config NAME] --pg-dsn DSN --ingress EP --pub EP --busd-pid PID\n"
             "                 --pg-data DIR [--config NAME2 --pg-dsn ... --pg-data DIR2]\n"
             "                 [--events N] [--latency-events N] [--rate R] [--burst B]\n"
             "                 [--runs R<=16] [--deadline S] [--commit-poll-us U]\n"
             "                 [--rcvhwm N] [--record FILE] [--groups G<=8]\n"
             "                 [--payload BYTES] [--backlog N] [--cell NAME]\n");
    exit (2);
}

/* One target's medians, as a JSON object (no newline). */
static void
s_print_target (const bench_t *b, const bench_figures_t *fig, int runs, long dups, long verified)
{
    printf ("{\"events_per_s\":%.0f,\"copy_rows_per_s\":%.0f,\"ratio\":%.3f,"
            "\"cpu_us_per_event_busd\":%.1f,\"cpu_us_per_event_pg\":%.1f,"
            "\"cpu_us_per_event_consumer\":%.1f,\"wal_bytes_per_event\":%.0f,"
            "\"checkpoints\":%.0f,",
            MED (eps), MED (copy), MED (ratio), MED (cpu_busd), MED (cpu_pg), MED (cpu_consumer),
            MED (wal), MED (ckpt));
    if (b->backlog > 0)
        printf ("\"load_events_per_s\":%.0f,\"load_cpu_us_per_event_busd\":%.1f,"
                "\"load_cpu_us_per_event_pg\":%.1f,\"load_wal_bytes_per_event\":%.0f,"
                "\"load_checkpoints\":%.0f,",
                MED (load_eps), MED (load_cpu_busd), MED (load_cpu_pg), MED (load_wal),
                MED (load_ckpt));
    else
        printf ("\"throughput_tail_ms\":%.1f,", MED (tail_ms));
    if (b->latency_events > 0)
        printf ("\"achieved_rate\":%.0f,\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,"
                "\"p999_ms\":%.2f,\"max_ms\":%.2f,\"commit_p50_ms\":%.2f,\"commit_p90_ms\":%.2f,"
                "\"commit_p99_ms\":%.2f,\"commit_p999_ms\":%.2f,\"commit_max_ms\":%.2f,"
                "\"commit_poll_ms\":%.2f,\"slow_events\":%.0f,\"consumer_gaps_latency\":%.0f,",
                MED (achieved), MED (lat[0]), MED (lat[1]), MED (lat[2]), MED (lat[3]),
                MED (lat[4]), MED (commit[0]), MED (commit[1]), MED (commit[2]), MED (commit[3]),
                MED (commit[4]), MED (poll_ms), MED (slow), SUM (gaps_lat));
    printf ("\"consumer_gaps_throughput\":%.0f,\"verified\":%ld,\"duplicate_acks\":%ld}",
            SUM (gaps_tput), verified, dups);
}

/* Connects target b, reads its stream, maps its shared record. */
static void
s_target_open (bench_t *b, const char *pgdata, int runs, long poll_us)
{
    long per_run = b->backlog > 0 ? b->backlog : b->events + b->latency_events;
    long nslots = per_run * runs;
    b->postmaster = measure_postmaster_pid (pgdata);
    b->shsize = sizeof *b->sh + (size_t)nslots * sizeof (bench_slot_t) +
                (size_t)b->groups * (size_t)nslots * sizeof (bench_seen_t);
    b->sh = mmap (NULL, b->shsize, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->sh == MAP_FAILED)
        bench_fail ("cannot map %zu bytes: %s", b->shsize, strerror (errno));
    b->sh->nslots = nslots;
    b->sh->seen = (bench_seen_t *)(void *)&b->sh->slot[nslots];

    b->conn = measure_connect (b->dsn);
    b->nparts =
        (int)measure_query_long (b->conn, "SELECT partitions FROM bus.streams WHERE stream = "
                                          "'" STREAM "'");
    b->log_before =
        (long)measure_query_long (b->conn, "SELECT count(*) FROM bus.events WHERE stream "
                                           "= '" STREAM "'");
    b->pl.conn = measure_connect (b->dsn);
    b->pl.nparts = b->nparts;
    b->pl.period_ns = poll_us * 1000;
    b->pl.committed = calloc ((size_t)b->nparts, sizeof *b->pl.committed);
    b->pl.obs = calloc ((size_t)b->nparts, sizeof *b->pl.obs);
    b->pl.nobs = calloc ((size_t)b->nparts, sizeof *b->pl.nobs);
    b->pl.cap = calloc ((size_t)b->nparts, sizeof *b->pl.cap);
    b->req = calloc ((size_t)b->nparts, sizeof *b->req);
    b->have = calloc ((size_t)b->nparts, sizeof *b->have);
    b->lat = malloc ((size_t)(b->latency_events + 1) * sizeof *b->lat);
    b->clat = malloc ((size_t)(b->latency_events + 1) * sizeof *b->clat);
    if (!b->pl.committed || !b->pl.obs || !b->pl.nobs || !b->pl.cap || !b->req || !b->have ||
        !b->lat || !b->clat)
        bench_fail ("out of memory");
}

/* Run r against target b: every phase, the checks, the baseline. Returns
 * the DUPLICATE acks so far. */
static long
s_target_run (bench_t *b, int r, bench_figures_t *f)
{
    long per_run = b->backlog > 0 ? b->backlog : b->events + b->latency_events;
    long first = r * per_run, dups;

    memset (f, 0, sizeof *f);
    if (b->backlog > 0) {
        phases_backlog (b, r, first, f);
    } else {
        phases_consumer_start (b, r);
        phases_throughput (b, r, first, f);
        if (b->latency_events > 0)
            phases_latency (b, r, first + b->events, f);
    }
    phases_consumer_stop (b, r);
    dups = phases_check (b, first + per_run);
    f->copy = measure_copy_baseline (b->conn, b->copy_rows, b->payload);
    f->ratio = f->eps / f->copy;
    printf ("%s run %d: events_per_s=%.0f copy_rows_per_s=%.0f ratio=%.3f cpu_us_per_event: "
            "busd=%.1f pg=%.1f consumer=%.1f wal_bytes_per_event=%.0f checkpoints=%.0f",
            b->name, r + 1, f->eps, f->copy, f->ratio, f->cpu_busd, f->cpu_pg, f->cpu_consumer,
            f->wal, f->ckpt);
    if (b->backlog > 0)
        printf (" load_events_per_s=%.0f load_cpu_us_per_event: busd=%.1f pg=%.1f "
                "load_wal_bytes_per_event=%.0f load_checkpoints=%.0f",
                f->load_eps, f->load_cpu_busd, f->load_cpu_pg, f->load_wal, f->load_ckpt);
    if (b->latency_events > 0)
        printf (" achieved_rate=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f "
                "commit_p50_ms=%.2f commit_p99_ms=%.2f commit_p999_ms=%.2f commit_max_ms=%.2f",
                f->achieved, f->lat[0], f->lat[2], f->lat[3], f->lat[4], f->commit[0], f->commit[2],
                f->commit[3], f->commit[4]);
    printf ("\n");
    fflush (stdout);
    return dups;
}

int
main (int argc, char **argv)
{
    bench_t set = {.name = "defaults",
                   .events = 200000,
                   .latency_events = 100000,
                   .rate = 10000,
                   .burst = 1,
                   .deadline_s = 60,
                   .groups = 1,
                   .payload = PAYLOAD_BYTES};
    bench_t bench[MAX_TARGETS];
    const char *pgdata[MAX_TARGETS] = {NULL}, *record = NULL, *cell = NULL;
    const char *name[MAX_TARGETS] = {NULL}, *dsn[MAX_TARGETS] = {NULL};
    const char *ingress[MAX_TARGETS] = {NULL}, *pub[MAX_TARGETS] = {NULL};
    long poll_us = 1000, dups[MAX_TARGETS] = {0}, busd_pid[MAX_TARGETS] = {0};
    static bench_figures_t figs[MAX_TARGETS][MAX_RUNS];
    int runs = 3, r, i, t, nt = 0;
    bool rate_ok = true;
    FILE *rec = NULL;

    for (i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int cur;
        if (!v)
            s_usage ();
        /* A target's settings follow its --config (the first may omit it). */
        if (strcmp (argv[i], "--config") == 0) {
            if (nt == MAX_TARGETS)
                s_usage ();
            name[nt++] = v;
            continue;
        }
        if (nt == 0)
            nt = 1;
        cur = nt - 1;
        if (strcmp (argv[i], "--pg-dsn") == 0)
            dsn[cur] = v;
        else if (strcmp (argv[i], "--ingress") == 0)
            ingress[cur] = v;
        else if (strcmp (argv[i], "--pub") == 0)
            pub[cur] = v;
        else if (strcmp (argv[i], "--pg-data") == 0)
            pgdata[cur] = v;
        else if (strcmp (argv[i], "--busd-pid") == 0)
            busd_pid[cur] = s_arg_long ("--busd-pid", v, 1, 1L << 30);
        else if (strcmp (argv[i], "--events") == 0)
            set.events = s_arg_long ("--events", v, PRODUCERS, 100000000);
        else if (strcmp (argv[i], "--latency-events") == 0)
            set.latency_events = s_arg_long ("--latency-events", v, 0, 100000000);
        else if (strcmp (argv[i], "--rate") == 0)
            set.rate = s_arg_long ("--rate", v, 1, 10000000);
        else if (strcmp (argv[i], "--burst") == 0)
            set.burst = s_arg_long ("--burst", v, 1, WINDOW);
        else if (strcmp (argv[i], "--runs") == 0)
            runs = (int)s_arg_long ("--runs", v, 1, MAX_RUNS);
        else if (strcmp (argv[i], "--deadline") == 0)
            set.deadline_s = s_arg_long ("--deadline", v, 1, 86400);
        else if (strcmp (argv[i], "--commit-poll-us") == 0)
            poll_us = s_arg_long ("--commit-poll-us", v, 100, 1000000);
        else if (strcmp (argv[i], "--rcvhwm") == 0)
            set.rcvhwm = (int)s_arg_long ("--rcvhwm", v, 0, 100000000);
        else if (strcmp (argv[i], "--groups") == 0)
            set.groups = (int)s_arg_long ("--groups", v, 1, MAX_GROUPS);
        else if (strcmp (argv[i], "--payload") == 0)
            set.payload = (int)s_arg_long ("--payload", v, 64, MAX_PAYLOAD);
        else if (strcmp (argv[i], "--backlog") == 0)
            set.backlog = s_arg_long ("--backlog", v, PRODUCERS, 100000000);
        else if (strcmp (argv[i], "--cell") == 0)
            cell = v;
        else if (strcmp (argv[i], "--record") == 0)
            record = v;
        else
            s_usage ();
    }
    if (nt == 0)
        s_usage ();
    for (t = 0; t < nt; t++)
        if (!dsn[t] || !ingress[t] || !pub[t] || !pgdata[t] || busd_pid[t] == 0)
            s_usage ();
    set.events -= set.events % PRODUCERS;
    set.backlog -= set.backlog % PRODUCERS;
    /* The baseline: as many rows as the phase measured, at most a million
     * (a ratio of rates; a 10 M-row COPY would only add minutes). */
    set.copy_rows = set.backlog > 0 ? set.backlog : set.events;
    if (set.copy_rows > 1000000)
        set.copy_rows = 1000000;
    if (set.backlog > 0) {
        set.latency_events = 0; /* the backlog replaces both phases */
        runs = 1;               /* one load of the log a target is the point */
    }
    rt_log_init ("bench_bus", RT_LOG_WARN);
    if (record) {
        rec = fopen (record, "w");
        if (!rec)
            bench_fail ("%s: %s", record, strerror (errno));
        fprintf (rec, "config,run,phase,event,partition,pseq,due_ms,acked_ms,handled_ms,"
                      "committed_ms\n");
    }
    for (t = 0; t < nt; t++) {
        bench[t] = set;
        if (name[t])
            bench[t].name = name[t];
        bench[t].dsn = dsn[t];
        bench[t].ingress = ingress[t];
        bench[t].pub = pub[t];
        bench[t].busd = (pid_t)busd_pid[t];
        bench[t].rec = rec;
        s_target_open (&bench[t], pgdata[t], runs, poll_us);
        if (bench[t].nparts != bench[0].nparts)
            bench_fail ("%s has %d partitions of the stream, %s %d: not one cell", bench[t].name,
                        bench[t].nparts, bench[0].name, bench[0].nparts);
    }

    /* Interleaved, each run in the other order than the one before (ABBA),
     * so that the machine's drift falls on both alike. */
    for (r = 0; r < runs; r++)
        for (i = 0; i < nt; i++) {
            bench_t *b;
            t = r % 2 ? nt - 1 - i : i;
            b = &bench[t];
            dups[t] = s_target_run (b, r, &figs[t][r]);
            if (b->latency_events > 0 && !loadgen_rate_ok (figs[t][r].achieved, (double)b->rate))
                rate_ok = false;
        }
    /* Said before the figures, so that the JSON stays the last line. */
    if (!rate_ok)
        fprintf (stderr,
                 "bench_bus: FAIL: the achieved rate fell more than %.0f%% short of %ld/s "
                 "in some run\n",
                 LOADGEN_RATE_SHORTAGE * 100, set.rate);
    printf ("{");
    if (cell)
        printf ("\"cell\":\"%s\",", cell);
    printf ("\"groups\":%d,\"partitions\":%d,\"payload_bytes\":%d,\"events\":%ld,"
            "\"backlog\":%ld,\"latency_events\":%ld,\"rate\":%ld,\"burst\":%ld,\"runs\":%d,"
            "\"copy_rows\":%ld,\"rate_ok\":%s",
            set.groups, bench[0].nparts, set.payload, set.backlog > 0 ? 0 : set.events, set.backlog,
            set.latency_events, set.rate, set.burst, runs, set.copy_rows,
            rate_ok ? "true" : "false");
    for (t = 0; t < nt; t++) {
        long per_run = set.backlog > 0 ? set.backlog : set.events + set.latency_events;
        printf (",\"%s\":", bench[t].name);
        s_print_target (&bench[t], figs[t], runs, dups[t], per_run * runs);
    }
    if (nt == 2) {
        /* The second configuration against the first, medians over medians. */
        const bench_figures_t *fig = figs[0];
        double e0 = MED (eps), p0 = MED (cpu_pg), w0 = MED (wal);
        fig = figs[1];
        printf (",\"%s_over_%s\":{\"events_per_s\":%.3f,\"cpu_us_per_event_pg\":%.3f,"
                "\"wal_bytes_per_event\":%.3f}",
                bench[1].name, bench[0].name, MED (eps) / e0, MED (cpu_pg) / p0,
                w0 > 0 ? MED (wal) / w0 : 0);
    }
    printf ("}\n");
    fflush (stdout);
    if (rec && fclose (rec) != 0)
        bench_fail ("%s: %s", record, strerror (errno));
    for (t = 0; t < nt; t++) {
        PQfinish (bench[t].pl.conn);
        PQfinish (bench[t].conn);
        munmap (bench[t].sh, bench[t].shsize);
    }
    return rate_ok ? 0 : 1;
}
