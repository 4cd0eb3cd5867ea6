/*
 * phases: one run of bench_bus against one target. The consumer replicas
 * started (each caught up) and stopped; throughput, closed loop; the
 * backlog, loaded then caught up by new groups; latency, open loop; and
 * the checks over every slot so far. The head of bench_bus.c says what
 * each phase measures and checks.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_bus.h"
#include "schedule.h"

/* Fails the bench when a consumer child has exited. */
static void
s_child_alive (const bench_t *b)
{
    int status, g;
    for (g = 0; g < b->groups; g++)
        if (b->child[g] > 0 && waitpid (b->child[g], &status, WNOHANG) == b->child[g])
            bench_fail ("%s: the consumer of group %d exited (status %d)", b->name, g + 1, status);
}

/* ---- waits and checks ---------------------------------------------------- */

/* The highest acknowledged pseq of each partition over slots [lo, hi). */
static void
s_required (const bench_shared_t *sh, long lo, long hi, int nparts, uint64_t *req)
{
    long i;
    memset (req, 0, (size_t)nparts * sizeof *req);
    for (i = lo; i < hi; i++) {
        const bench_slot_t *s = &sh->slot[i];
        if ((int)s->ack_partition >= nparts)
            bench_fail ("event %ld acknowledged in partition %u of %d", i, s->ack_partition,
                        nparts);
        if (s->ack_pseq > req[s->ack_partition])
            req[s->ack_partition] = s->ack_pseq;
    }
}

/* Waits until every group's handler has seen `target` slots in all. */
static void
s_wait_handled (const bench_t *b, long target, int64_t deadline_ns, const char *phase)
{
    int g;
    for (g = 0; g < b->groups; g++)
        while (atomic_load (&b->sh->handled[g]) < target) {
            if (loadgen_mono_ns () > deadline_ns)
                bench_fail ("%s %s: the consumer of group %d handled %ld of %ld events by the "
                            "deadline",
                            b->name, phase, g + 1, atomic_load (&b->sh->handled[g]), target);
            s_child_alive (b);
            bench_sleep_until (loadgen_mono_ns () + MS);
        }
}

/* Whether the offsets in `have` cover `req`. */
static bool
s_covered (const uint64_t *have, const uint64_t *req, int nparts)
{
    int p;
    for (p = 0; p < nparts; p++)
        if (have[p] < req[p])
            return false;
    return true;
}

/* Checks every slot in [0, hi): acknowledged, handled exactly once by each
 * of the `groups` groups at its acknowledged position; nothing foreign
 * handled. Returns the DUPLICATE acks. */
static long
s_verify (const bench_shared_t *sh, int groups, long hi)
{
    long i, dups = 0;
    int g;
    if (atomic_load (&sh->foreign) != 0)
        bench_fail ("the consumer handled %ld events the bench did not send (or ids that differ)",
                    atomic_load (&sh->foreign));
    for (i = 0; i < hi; i++) {
        const bench_slot_t *s = &sh->slot[i];
        if (s->ack != RETAIN__V1__ACK__STATUS__OK && s->ack != RETAIN__V1__ACK__STATUS__DUPLICATE)
            bench_fail ("event %ld: no acknowledgement (status %d)", i, s->ack);
        dups += s->ack == RETAIN__V1__ACK__STATUS__DUPLICATE;
        for (g = 0; g < groups; g++) {
            const bench_seen_t *seen = &sh->seen[(size_t)g * (size_t)sh->nslots + (size_t)i];
            int handled = atomic_load (&seen->handled);
            if (handled != 1)
                bench_fail ("event %ld: handled %d times by group %d, not once", i, handled, g + 1);
            if (seen->partition != s->ack_partition || seen->pseq != s->ack_pseq)
                bench_fail ("event %ld: acknowledged at %u:%" PRIu64 ", handled by group %d at "
                            "%u:%" PRIu64,
                            i, s->ack_partition, s->ack_pseq, g + 1, seen->partition, seen->pseq);
        }
    }
    for (g = 0; g < groups; g++)
        if (atomic_load (&sh->handled[g]) != hi)
            bench_fail ("the consumer of group %d handled %ld distinct events, the bench sent %ld",
                        g + 1, atomic_load (&sh->handled[g]), hi);
    return dups;
}

/* ---- the phases of a run ------------------------------------------------- */

/* Starts group g's replica for run r; returns at once. */
static void
s_consumer_fork (bench_t *b, int r, int g)
{
    char member[64];
    pid_t child, parent = getpid ();

    snprintf (member, sizeof member, "bench-run-%d", r + 1);
    atomic_store (&b->sh->gaps[g], 0); /* each replica counts from 0 */
    child = fork ();
    if (child < 0)
        bench_fail ("fork: %s", strerror (errno));
    if (child == 0) {
        /* A bench that fails exits at once: its replica goes with it. */
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (1);
        _exit (traffic_consumer_main (b->dsn, b->pub, g, member, b->rcvhwm, b->sh));
    }
    b->child[g] = child;
}

/* Starts run r's replica of every group and waits until each owns every
 * partition and has caught up with the log. */
void
phases_consumer_start (bench_t *b, int r)
{
    char sql[400], group[32];
    int64_t deadline;
    int g;

    for (g = 0; g < b->groups; g++)
        s_consumer_fork (b, r, g);
    deadline = loadgen_mono_ns () + b->deadline_s * 1000 * MS;
    for (g = 0; g < b->groups; g++) {
        /* The owner column names this run's replica: an earlier one's name
         * stays in the rows it released. */
        traffic_group_name (g, group, sizeof group);
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM bus.offsets o JOIN bus.counters c USING (stream, "
                  "partition) WHERE o.grp = '%s' AND o.stream = '" STREAM "' "
                  "AND o.owner = 'bench-run-%d' AND o.pseq = c.pseq",
                  group, r + 1);
        while (measure_query_long (b->conn, sql) < b->nparts) {
            if (loadgen_mono_ns () > deadline)
                bench_fail ("%s run %d: the consumer of group %d did not own and catch up every "
                            "partition",
                            b->name, r + 1, g + 1);
            s_child_alive (b);
            bench_sleep_until (loadgen_mono_ns () + 50 * MS);
        }
    }
}

/* Stops every replica (each commits what it handled) within the deadline. */
void
phases_consumer_stop (bench_t *b, int r)
{
    int64_t deadline = loadgen_mono_ns () + b->deadline_s * 1000 * MS;
    int g;
    for (g = 0; g < b->groups; g++)
        if (b->child[g] > 0)
            kill (b->child[g], SIGTERM);
    for (g = 0; g < b->groups; g++) {
        int status = 0;
        if (b->child[g] <= 0)
            continue;
        while (waitpid (b->child[g], &status, WNOHANG) != b->child[g]) {
            if (loadgen_mono_ns () > deadline) {
                kill (b->child[g], SIGKILL);
                waitpid (b->child[g], NULL, 0);
                bench_fail ("%s run %d: the consumer of group %d did not stop", b->name, r + 1,
                            g + 1);
            }
            bench_sleep_until (loadgen_mono_ns () + 10 * MS);
        }
        b->child[g] = 0;
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
            bench_fail ("%s run %d: the consumer of group %d ended with status %d", b->name, r + 1,
                        g + 1, status);
    }
}

/* A phase's deadline: the slack, and time for n events at 2,000/s. */
static int64_t
s_deadline (const bench_t *b, long n)
{
    return loadgen_mono_ns () + (b->deadline_s * 2 + n / 2000) * 1000 * MS;
}

/* Waits until every group's offsets cover what slots [first, first + n)
 * were acknowledged at; returns when the covering answer came. */
static int64_t
s_wait_committed (bench_t *b, int r, long first, long n, int64_t deadline, const char *phase)
{
    char why[256];
    int64_t t = 0;
    int g;
    s_required (b->sh, first, first + n, b->nparts, b->req);
    for (g = 0; g < b->groups; g++)
        for (;;) {
            if (measure_offsets_read (b->conn, g, b->nparts, b->have, why, sizeof why) != 0)
                bench_fail ("%s run %d: %s", b->name, r + 1, why);
            t = loadgen_mono_ns ();
            if (s_covered (b->have, b->req, b->nparts))
                break;
            if (t > deadline)
                bench_fail ("%s run %d %s: offsets of group %d not committed by the deadline",
                            b->name, r + 1, phase, g + 1);
            s_child_alive (b);
            bench_sleep_until (t + MS);
        }
    return t;
}

/* The first send and the last ack of the producers. */
static void
s_send_span (const bench_t *b, const bench_producer_t *prod, int n, int64_t *t0, int64_t *last_ack)
{
    int i;
    /* A closed loop's due time is its post: t0 is the first send. */
    *t0 = b->sh->slot[prod[0].first].due_ns;
    *last_ack = 0;
    for (i = 0; i < n; i++) {
        if (b->sh->slot[prod[i].first].due_ns < *t0)
            *t0 = b->sh->slot[prod[i].first].due_ns;
        if (prod[i].last_ack_ns > *last_ack)
            *last_ack = prod[i].last_ack_ns;
    }
}

/* Microseconds a clock tick of /proc's. */
static double
s_tick_us (void)
{
    return 1e6 / (double)sysconf (_SC_CLK_TCK);
}

/* CPU per event (us) and WAL per event between two samples. */
static void
s_costs (const bench_cpu_t *c0, const bench_cpu_t *c1, long long wal0, long long wal1, long n,
         bench_figures_t *f)
{
    double tick_us = s_tick_us ();
    f->cpu_busd = (double)(c1->busd - c0->busd) * tick_us / (double)n;
    f->cpu_pg = (double)(c1->pg - c0->pg) * tick_us / (double)n;
    f->cpu_consumer = (double)(c1->consumer - c0->consumer) * tick_us / (double)n;
    f->wal = (double)(wal1 - wal0) / (double)n;
}

/* Throughput over slots [first, first + events): from the first send to
 * the commit (of every group) covering the last event, with the CPU over
 * the same span. */
void
phases_throughput (bench_t *b, int r, long first, bench_figures_t *f)
{
    int64_t deadline = s_deadline (b, b->events);
    int64_t t0, t1, last_ack, last_handled = 0;
    bench_producer_t prod[PRODUCERS];
    long gaps0 = atomic_load (&b->sh->gaps[0]), i;
    long long wal0, wal1, ck0, ck1;
    bench_cpu_t c0, c1;

    measure_wal_sample (b->conn, &wal0, &ck0);
    measure_cpu_sample (&c0, b);
    traffic_run_producers (b, PRODUCERS, first, b->events / PRODUCERS, 0, 1, 0, deadline, prod);
    s_send_span (b, prod, PRODUCERS, &t0, &last_ack);
    /* Only the handlers' counts while events flow: no query load. */
    s_wait_handled (b, first + b->events, deadline, "throughput");
    t1 = s_wait_committed (b, r, first, b->events, deadline, "throughput");
    measure_cpu_sample (&c1, b);
    measure_wal_sample (b->conn, &wal1, &ck1);

    for (i = first; i < first + b->events; i++) {
        const bench_slot_t *s = &b->sh->slot[i];
        const bench_seen_t *seen = &b->sh->seen[i];
        if (seen->handled_ns > last_handled)
            last_handled = seen->handled_ns;
        if (b->rec)
            fprintf (b->rec, "%s,%d,throughput,%ld,%u,%" PRIu64 ",%.3f,%.3f,%.3f,\n", b->name,
                     r + 1, i, s->ack_partition, s->ack_pseq, (double)(s->due_ns - t0) / 1e6,
                     (double)(s->acked_ns - t0) / 1e6, (double)(seen->handled_ns - t0) / 1e6);
    }
    f->eps = (double)b->events / ((double)(t1 - t0) / 1e9);
    f->tail_ms = (double)(t1 - last_ack) / 1e6;
    s_costs (&c0, &c1, wal0, wal1, b->events, f);
    f->ckpt = (double)(ck1 - ck0);
    f->gaps_tput = (double)(atomic_load (&b->sh->gaps[0]) - gaps0);
    fprintf (stderr,
             "%s run %d throughput: %ld events in %.3f s; last ack at %.3f s, last handled "
             "(group 1) at %.3f s, covering commit at %.3f s; consumer gaps %.0f\n",
             b->name, r + 1, b->events, (double)(t1 - t0) / 1e9, (double)(last_ack - t0) / 1e9,
             (double)(last_handled - t0) / 1e9, (double)(t1 - t0) / 1e9, f->gaps_tput);
}

/* The backlog over slots [first, first + backlog): loaded into the log at
 * full speed with no group running, then caught up by a new group (every
 * --groups group, each new, at once). events_per_s is the catch-up: from
 * the replicas' start to the commit covering the last event; the CPU and
 * WAL likewise. */
void
phases_backlog (bench_t *b, int r, long first, bench_figures_t *f)
{
    int64_t deadline = s_deadline (b, b->backlog);
    int64_t t0, t1, last_ack;
    bench_producer_t prod[PRODUCERS];
    long long wal0, wal1, ck0, ck1;
    bench_cpu_t c0, c1;
    int g;

    measure_wal_sample (b->conn, &wal0, &ck0);
    measure_cpu_sample (&c0, b);
    traffic_run_producers (b, PRODUCERS, first, b->backlog / PRODUCERS, 0, 1, 0, deadline, prod);
    s_send_span (b, prod, PRODUCERS, &t0, &last_ack);
    measure_cpu_sample (&c1, b);
    measure_wal_sample (b->conn, &wal1, &ck1);
    f->load_cpu_busd = (double)(c1.busd - c0.busd) * s_tick_us () / (double)b->backlog;
    f->load_cpu_pg = (double)(c1.pg - c0.pg) * s_tick_us () / (double)b->backlog;
    f->load_eps = (double)b->backlog / ((double)(last_ack - t0) / 1e9);
    f->load_wal = (double)(wal1 - wal0) / (double)b->backlog;
    f->load_ckpt = (double)(ck1 - ck0);
    fprintf (stderr, "%s run %d backlog: %ld events loaded in %.3f s\n", b->name, r + 1, b->backlog,
             (double)(last_ack - t0) / 1e9);

    deadline = s_deadline (b, b->backlog);
    measure_wal_sample (b->conn, &wal0, &ck0);
    measure_cpu_sample (&c0, b);
    t0 = loadgen_mono_ns ();
    for (g = 0; g < b->groups; g++)
        s_consumer_fork (b, r, g);
    s_wait_handled (b, first + b->backlog, deadline, "catch-up");
    t1 = s_wait_committed (b, r, first, b->backlog, deadline, "catch-up");
    measure_cpu_sample (&c1, b);
    measure_wal_sample (b->conn, &wal1, &ck1);
    f->eps = (double)b->backlog / ((double)(t1 - t0) / 1e9);
    s_costs (&c0, &c1, wal0, wal1, b->backlog, f);
    f->ckpt = (double)(ck1 - ck0);
    f->gaps_tput = (double)atomic_load (&b->sh->gaps[0]);
    fprintf (stderr, "%s run %d catch-up: %ld events in %.3f s\n", b->name, r + 1, b->backlog,
             (double)(t1 - t0) / 1e9);
}

/* Latency over slots [first, first + latency_events), open loop; measured
 * at group 1 (every group must handle every event all the same). */
void
phases_latency (bench_t *b, int r, long first, bench_figures_t *f)
{
    static const double quantiles[5] = {0.50, 0.90, 0.99, 0.999, 1.0};
    long n = b->latency_events, gaps0 = atomic_load (&b->sh->gaps[0]), slow = 0, i;
    bench_producer_t prod[1];
    int64_t t0, deadline;
    bench_poller_t *pl = &b->pl;
    int p;

    measure_poll_start (pl);
    t0 = loadgen_mono_ns () + 20 * MS; /* the poller has seen the offsets by then */
    deadline = loadgen_due_ns (t0, (double)b->rate, n) + b->deadline_s * 1000 * MS;
    traffic_run_producers (b, 1, first, n, (double)b->rate, (int)b->burst, t0, deadline, prod);
    s_wait_handled (b, first + n, deadline, "latency");
    s_required (b->sh, first, first + n, b->nparts, b->req);
    for (;;) {
        for (p = 0; p < b->nparts; p++)
            b->have[p] = atomic_load (&pl->committed[p]);
        if (s_covered (b->have, b->req, b->nparts))
            break;
        if (loadgen_mono_ns () > deadline)
            bench_fail ("%s run %d latency: offsets not committed by the deadline", b->name, r + 1);
        s_child_alive (b);
        bench_sleep_until (loadgen_mono_ns () + MS);
    }
    measure_poll_stop (pl);
    /* The other groups' commits, so that the next phase starts clean. */
    s_wait_committed (b, r, first, n, deadline, "latency");

    for (i = 0; i < n; i++) {
        const bench_slot_t *s = &b->sh->slot[first + i];
        const bench_seen_t *seen = &b->sh->seen[first + i];
        int64_t c = measure_commit_ns (pl, s->ack_partition, s->ack_pseq);
        if (c < 0)
            bench_fail ("%s run %d: the commit of event %ld was never seen", b->name, r + 1,
                        first + i);
        b->lat[i] = (seen->handled_ns - s->due_ns) / 1000;
        b->clat[i] = (c - s->due_ns) / 1000;
        slow += b->lat[i] >= SLOW_MS * 1000;
        if (b->rec)
            fprintf (b->rec, "%s,%d,latency,%ld,%u,%" PRIu64 ",%.3f,%.3f,%.3f,%.3f\n", b->name,
                     r + 1, first + i, s->ack_partition, s->ack_pseq,
                     (double)(s->due_ns - t0) / 1e6, (double)(s->acked_ns - t0) / 1e6,
                     (double)(seen->handled_ns - t0) / 1e6, (double)(c - t0) / 1e6);
    }
    loadgen_sort_i64 (b->lat, n);
    loadgen_sort_i64 (b->clat, n);
    for (i = 0; i < 5; i++) {
        f->lat[i] = loadgen_pct_ms (b->lat, n, quantiles[i]);
        f->commit[i] = loadgen_pct_ms (b->clat, n, quantiles[i]);
    }
    f->slow = (double)slow;
    f->poll_ms =
        pl->polls > 1 ? (double)(pl->last_ns - pl->first_ns) / 1e6 / (double)(pl->polls - 1) : 0;
    f->achieved = prod[0].last_send_ns > t0
                      ? (double)prod[0].sent / ((double)(prod[0].last_send_ns - t0) / 1e9)
                      : 0;
    f->gaps_lat = (double)(atomic_load (&b->sh->gaps[0]) - gaps0);
    fprintf (stderr,
             "%s run %d latency: consumer gaps %.0f, %ld events handled %d ms or more late\n",
             b->name, r + 1, f->gaps_lat, slow, SLOW_MS);
}

/* The checks of a run, over every slot so far (see the head of the file).
 * Returns the DUPLICATE acks. */
long
phases_check (bench_t *b, long slots)
{
    long dups = s_verify (b->sh, b->groups, slots);
    long logged =
        (long)measure_query_long (b->conn, "SELECT count(*) FROM bus.events WHERE stream = "
                                           "'" STREAM "'");
    long gapped;
    if (logged - b->log_before != slots)
        bench_fail ("%s: the log holds %ld events of the stream, the bench had %ld acknowledged",
                    b->name, logged - b->log_before, slots);
    /* No gap and no pseq twice in any partition of the log, from 1 (the
     * bench's log is new) to its counter. */
    gapped = (long)measure_query_long (
        b->conn, "SELECT count(*) FROM bus.counters c LEFT JOIN (SELECT partition, count(*) AS n, "
                 "count(DISTINCT pseq) AS d, min(pseq) AS lo, max(pseq) AS hi FROM bus.events "
                 "WHERE stream = '" STREAM "' GROUP BY partition) e USING (partition) "
                 "WHERE c.stream = '" STREAM "' AND (coalesce(e.n, 0) <> c.pseq "
                 "OR coalesce(e.d, 0) <> c.pseq OR coalesce(e.lo, 1) <> 1 "
                 "OR coalesce(e.hi, 0) <> c.pseq)");
    if (gapped != 0)
        bench_fail ("%s: %ld partitions of the log have a gap, a pseq twice or a counter that "
                    "differs",
                    b->name, gapped);
    return dups;
}
