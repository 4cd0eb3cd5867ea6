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
 * the last ack; then every group starts new and catches up from the log:
 * events_per_s is N over the time from the replicas' start to the commit
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
 * exactly that many events of the stream; every group's committed offsets
 * cover every ack. Every wait has a deadline (--deadline, default 60 s,
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
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_bus.h"
#include "rt_consumer.h"
#include "rt_db.h"
#include "rt_log.h"
#include "rt_metrics.h"
#include "rt_producer.h"
#include "rt_signal.h"
#include "rt_uuid.h"
#include "retain/v1/order.pb-c.h"
#include "schedule.h"

#define PAYLOAD_BYTES 256  /* default --payload */
#define MAX_PAYLOAD   8192 /* largest --payload */
#define PRODUCERS     2
#define WINDOW        8000
#define MAX_RUNS      16
#define MAX_GROUPS    8 /* largest --groups */
#define MAX_TARGETS   2 /* clusters compared in one run (--config) */
#define STREAM        "order"
#define GROUP         "bench" /* the first group; the others are bench-2, bench-3, ... */
#define SLOW_MS       500     /* latencies at least this long are counted apart */
#define MS            1000000LL

/* One event of the bench: what the producer sent and busd answered,
 * written by the parent. */
typedef struct {
    rt_uuid_t id;           /* the envelope id, set before the post */
    int64_t due_ns;         /* open loop: its due time; closed loop: its post */
    int ack;                /* 0: none yet, else the Ack's status */
    uint32_t ack_partition; /* where busd put it */
    uint64_t ack_pseq;      /* its position there */
    int64_t acked_ns;       /* when the ack arrived */
} s_slot_t;

/* What one group's handler saw of one event, written by its replica. */
typedef struct {
    atomic_int handled; /* handler calls for it */
    uint32_t partition; /* the partition the handler saw */
    uint64_t pseq;      /* the pseq the handler saw */
    int64_t handled_ns; /* the first call's entry */
} s_seen_t;

/* Shared with the consumer children (MAP_SHARED), for the whole bench. */
typedef struct {
    atomic_long handled[MAX_GROUPS]; /* per group: slots handled at least once */
    atomic_long foreign;             /* events that are no slot of the bench, or whose id differs */
    atomic_long gaps[MAX_GROUPS];    /* per group: its replica's gaps recovered from the log */
    long nslots;                     /* slots below */
    s_seen_t *seen;                  /* group g's record of slot i at seen[g * nslots + i] */
    s_slot_t slot[];                 /* every event of every run */
} s_shared_t;

/* What a consumer child's handler needs. */
typedef struct {
    s_shared_t *sh;     /* the shared record */
    s_seen_t *seen;     /* its group's records */
    int g;              /* its group's index */
    rt_counter_t *gaps; /* the replica's gap counter */
} s_child_t;

/* One producer thread and its slots. */
typedef struct {
    const char *endpoint; /* busd ingress */
    s_shared_t *sh;       /* the shared record */
    long first;           /* its first slot */
    long count;           /* its number of slots */
    int payload;          /* bytes of each event's payload */
    double rate;          /* events/s; 0: as fast as acknowledged */
    int burst;            /* open loop: events due together */
    int64_t t0_ns;        /* open loop: when event 0 is due */
    int64_t deadline_ns;  /* every ack by then */
    long sent;            /* events posted */
    long acked;           /* final acks received */
    int64_t last_send_ns; /* when the last event was posted */
    int64_t last_ack_ns;  /* when the last ack arrived */
    char why[256];        /* set when it failed */
} s_producer_t;

/* One committed offset as the poller first saw it. */
typedef struct {
    int64_t t_ns;  /* when the poll's answer arrived */
    uint64_t pseq; /* the group's committed pseq */
} s_obs_t;

/* The commit poller: a thread reading the group's offsets. */
typedef struct {
    PGconn *conn;                /* its own connection, kept for the bench */
    int nparts;                  /* partitions of the stream */
    int64_t period_ns;           /* between polls */
    pthread_t thread;            /* the thread, while it runs */
    atomic_int stop;             /* asks it to end */
    _Atomic uint64_t *committed; /* per partition: the last committed pseq seen */
    s_obs_t **obs;               /* per partition: every change seen, in order */
    size_t *nobs;                /* their counts */
    size_t *cap;                 /* allocated */
    long polls;                  /* polls made this phase */
    int64_t first_ns;            /* the phase's first poll */
    int64_t last_ns;             /* its last */
    char why[256];               /* set when it failed */
} s_poller_t;

/* CPU ticks of the measured processes at one moment. */
typedef struct {
    long long busd;     /* busd, every thread */
    long long pg;       /* the cluster (s_pg_ticks) */
    long long consumer; /* the consumer children */
} s_cpu_t;

/* The figures of one run (all double, so that s_med reads any of them). */
typedef struct {
    double eps;          /* throughput: events per second */
    double copy;         /* baseline: COPY rows per second */
    double ratio;        /* eps / copy */
    double tail_ms;      /* throughput: last ack to the covering commit */
    double cpu_busd;     /* CPU per event, microseconds: busd */
    double cpu_pg;       /* ... the PostgreSQL cluster */
    double cpu_consumer; /* ... the consumer process */
    double achieved;     /* latency: events sent per second */
    double lat[5];       /* due to handler: p50, p90, p99, p999, max (ms) */
    double commit[5];    /* due to commit, likewise */
    double poll_ms;      /* mean period of the commit poller */
    double slow;         /* latency events handled SLOW_MS or more after due */
    double gaps_tput;    /* the consumer's gaps in the throughput phase */
    double gaps_lat;     /* ... and in the latency phase */
    double wal;          /* throughput (or catch-up): WAL bytes per event */
    double ckpt;         /* ... checkpoints that began meanwhile */
    double load_eps;     /* backlog: events per second while loading it */
    double load_wal;     /* ... WAL bytes per event */
    double load_ckpt;    /* ... checkpoints */
} s_figures_t;

/* The bench against one cluster and its busd (a --config): the settings
 * and what its phases share. */
typedef struct {
    const char *name;        /* the --config's name ("defaults", "tuned") */
    const char *dsn;         /* PostgreSQL */
    const char *ingress;     /* busd's ingress */
    const char *pub;         /* busd's PUB */
    long events;             /* throughput events per run */
    long latency_events;     /* latency events per run */
    long rate;               /* latency: events/s */
    long burst;              /* latency: events due together */
    long deadline_s;         /* slack of every wait */
    int rcvhwm;              /* the replica's SUB high-water mark, 0: ZeroMQ's */
    int groups;              /* consumer groups, one replica each */
    int payload;             /* bytes of each event's payload */
    long backlog;            /* >0: the log is loaded with this many, then a new group catches up */
    long copy_rows;          /* rows of the COPY baseline */
    pid_t busd;              /* busd's pid */
    pid_t postmaster;        /* the cluster's postmaster */
    s_shared_t *sh;          /* shared with the replicas */
    size_t shsize;           /* its mapping's size */
    pid_t child[MAX_GROUPS]; /* each group's replica, while it runs */
    PGconn *conn;            /* the bench's queries */
    s_poller_t pl;           /* the commit poller */
    int nparts;              /* partitions of the stream */
    long log_before;         /* events of the stream in the log before the bench */
    uint64_t *req;           /* per partition: the pseq a phase needs committed */
    uint64_t *have;          /* per partition: the pseq committed */
    int64_t *lat;            /* latency events: due to handler, us */
    int64_t *clat;           /* latency events: due to commit, us */
    FILE *rec;               /* --record, or NULL */
} s_bench_t;

/* Prints the reason of a failed check or wait on stderr and exits 1. */
static void s_fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2), noreturn));

static void
s_fail (const char *fmt, ...)
{
    va_list ap;
    fprintf (stderr, "bench_bus: FAIL: ");
    va_start (ap, fmt);
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fprintf (stderr, "\n");
    exit (1);
}

/* ---- the events ---------------------------------------------------------- */

/* n characters that do not compress (6 random bits each, from a generator
 * seeded with `seed`), so that neither TOAST nor wal_compression finds more
 * to squeeze in the bench's payloads than in real ones, then a NUL. */
static void
s_fill_random (char *out, size_t n, uint64_t seed)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    size_t i;
    for (i = 0; i < n; i++) {
        if (i % 10 == 0) {
            x ^= x << 13; /* xorshift64: 10 characters a draw */
            x ^= x >> 7;
            x ^= x << 17;
        }
        out[i] = alphabet[(x >> (6 * (i % 10))) & 63];
    }
    out[n] = '\0';
}

/* The envelope of slot i: an OrderPlaced whose serialized payload is
 * `payload` bytes long, its order id naming the slot. NULL when it cannot
 * be made that long. */
static Retain__V1__Envelope *
s_event (long i, int payload)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    char key[48], order_id[48], pad[MAX_PAYLOAD];
    struct timespec now;
    size_t size, n;
    clock_gettime (CLOCK_REALTIME, &now);
    snprintf (key, sizeof key, "customer-%ld", (i * 7919) % 5000);
    snprintf (order_id, sizeof order_id, "bench-%ld", i);
    order.order_id = order_id;
    order.customer_id = key;
    order.placed_at = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    order.coupon_code = "";
    size = protobuf_c_message_get_packed_size (&order.base);
    /* coupon_code (field 6) takes the rest: a byte of tag, and one or two
     * of length (a varint: two from 128 to 16383). */
    if ((size_t)payload < size + 3)
        return NULL;
    n = (size_t)payload - size - 2;
    if (n >= 128)
        n--;
    s_fill_random (pad, n, (uint64_t)i);
    order.coupon_code = pad;
    if (protobuf_c_message_get_packed_size (&order.base) != (size_t)payload)
        return NULL;
    return rt_envelope_new ("OrderPlaced", key, &order.base, "bench");
}

/* The slot of p whose id is `id`, by bisection (a producer's ids increase,
 * s_post checks it); NULL when none. */
static s_slot_t *
s_find_slot (s_producer_t *p, const rt_uuid_t *id)
{
    long lo = p->first, hi = p->first + p->sent;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        int c = memcmp (p->sh->slot[mid].id.b, id->b, sizeof id->b);
        if (c == 0)
            return &p->sh->slot[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    s_producer_t *p = arg;
    rt_uuid_t id;
    s_slot_t *slot = NULL;
    if (rt_uuid_parse (ack->id, &id) == 0)
        slot = s_find_slot (p, &id);
    if (!slot) {
        snprintf (p->why, sizeof p->why, "an ack for an id never sent: %s", ack->id);
        return;
    }
    if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED) {
        snprintf (p->why, sizeof p->why, "busd rejected %s: %s", ack->id,
                  ack->error ? ack->error : "");
        return;
    }
    if (slot->ack != 0) {
        snprintf (p->why, sizeof p->why, "two final acks for %s", ack->id);
        return;
    }
    slot->ack = ack->status;
    slot->ack_partition = ack->partition;
    slot->ack_pseq = ack->pseq;
    slot->acked_ns = loadgen_mono_ns ();
    p->acked++;
    p->last_ack_ns = slot->acked_ns;
}

/* Posts the producer's next event, due at due_ns. 0, or -1 with p->why. */
static int
s_post (s_producer_t *p, rt_producer_t *producer, int64_t due_ns)
{
    long i = p->first + p->sent;
    s_slot_t *slot = &p->sh->slot[i];
    Retain__V1__Envelope *env = s_event (i, p->payload);
    if (!env || rt_uuid_parse (env->id, &slot->id) != 0) {
        snprintf (p->why, sizeof p->why, "cannot make event %ld", i);
        rt_envelope_free (env);
        return -1;
    }
    if (p->sent > 0 && memcmp (slot[-1].id.b, slot->id.b, sizeof slot->id.b) >= 0) {
        snprintf (p->why, sizeof p->why, "ids do not increase at event %ld", i);
        rt_envelope_free (env);
        return -1;
    }
    slot->due_ns = due_ns;
    if (rt_producer_post (producer, env) != 0) {
        snprintf (p->why, sizeof p->why, "cannot post event %ld", i);
        rt_envelope_free (env);
        return -1;
    }
    rt_envelope_free (env);
    p->sent++;
    p->last_send_ns = loadgen_mono_ns ();
    return 0;
}

/* When the producer's event j is due (open loop). */
static int64_t
s_due (const s_producer_t *p, long j)
{
    return loadgen_due_ns (p->t0_ns, p->rate / p->burst, j / p->burst);
}

static void
s_sleep_until (int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *
s_produce (void *arg)
{
    s_producer_t *p = arg;
    char err[200];
    rt_producer_t *producer = rt_producer_new (p->endpoint, NULL, err, sizeof err);
    if (!producer) {
        snprintf (p->why, sizeof p->why, "producer: %s", err);
        return NULL;
    }
    /* Longer than any ack should take: a resend here would be a DUPLICATE. */
    rt_producer_set_resend_ms (producer, 5000);
    while (p->acked < p->count && !p->why[0]) {
        int64_t now = loadgen_mono_ns ();
        int timeout = 5;
        if (now > p->deadline_ns) {
            snprintf (p->why, sizeof p->why, "%ld of %ld events acknowledged by the deadline",
                      p->acked, p->count);
            break;
        }
        while (p->sent < p->count && rt_producer_pending (producer) < WINDOW) {
            int64_t due = p->rate > 0 ? s_due (p, p->sent) : now;
            if (due > now)
                break;
            if (s_post (p, producer, p->rate > 0 ? due : loadgen_mono_ns ()) != 0)
                goto done;
        }
        if (p->rate > 0 && p->sent < p->count && rt_producer_pending (producer) < WINDOW) {
            /* Open loop: take the acks that are in, then wait for the next
             * due time exactly (a millisecond poll would send late). */
            int64_t wait = s_due (p, p->sent) - loadgen_mono_ns ();
            timeout = wait > 2 * MS ? (int)((wait - MS) / MS) : 0;
        } else if (p->rate > 0 && p->sent < p->count)
            timeout = 1; /* the window is full: the next events are late */
        if (rt_producer_poll (producer, timeout, s_on_ack, p) < 0) {
            snprintf (p->why, sizeof p->why, "producer socket failed");
            break;
        }
        if (p->rate > 0 && p->sent < p->count && rt_producer_pending (producer) < WINDOW) {
            int64_t due = s_due (p, p->sent);
            if (due - loadgen_mono_ns () <= 2 * MS)
                s_sleep_until (due);
        }
    }
done:
    rt_producer_destroy (&producer);
    return NULL;
}

/* Runs n producers over slots [first, first + n * per); fails the bench
 * with the first one's reason. */
static void
s_run_producers (const s_bench_t *b, int n, long first, long per, double rate, int burst,
                 int64_t t0_ns, int64_t deadline_ns, s_producer_t *p)
{
    pthread_t t[PRODUCERS];
    int i;
    for (i = 0; i < n; i++) {
        p[i] = (s_producer_t){.endpoint = b->ingress,
                              .sh = b->sh,
                              .payload = b->payload,
                              .first = first + i * per,
                              .count = per,
                              .rate = rate,
                              .burst = burst,
                              .t0_ns = t0_ns,
                              .deadline_ns = deadline_ns};
        if (pthread_create (&t[i], NULL, s_produce, &p[i]) != 0)
            s_fail ("cannot start a producer thread");
    }
    for (i = 0; i < n; i++)
        pthread_join (t[i], NULL);
    for (i = 0; i < n; i++)
        if (p[i].why[0])
            s_fail ("producer %d: %s", i, p[i].why);
}

/* ---- the consumer child -------------------------------------------------- */

static int
s_handler (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    s_child_t *child = arg;
    s_shared_t *sh = child->sh;
    int64_t now = loadgen_mono_ns ();
    Retain__V1__OrderPlaced *order;
    rt_uuid_t id;
    long i = -1;
    (void)db;
    atomic_store (&sh->gaps[child->g], (long)rt_counter_value (child->gaps));
    order = retain__v1__order_placed__unpack (NULL, event->payload.len, event->payload.data);
    if (order && strncmp (order->order_id, "bench-", 6) == 0 &&
        isdigit ((unsigned char)order->order_id[6]))
        i = strtol (order->order_id + 6, NULL, 10);
    if (order)
        retain__v1__order_placed__free_unpacked (order, NULL);
    if (i < 0 || i >= sh->nslots || rt_uuid_parse (event->id, &id) != 0 ||
        memcmp (id.b, sh->slot[i].id.b, sizeof id.b) != 0) {
        atomic_fetch_add (&sh->foreign, 1);
        return 0;
    }
    if (atomic_fetch_add (&child->seen[i].handled, 1) == 0) {
        child->seen[i].handled_ns = now;
        child->seen[i].partition = event->partition;
        child->seen[i].pseq = event->pseq;
        atomic_fetch_add (&sh->handled[child->g], 1);
    }
    return 0;
}

/* The name of group g. */
static void
s_group_name (int g, char *out, size_t len)
{
    if (g == 0)
        snprintf (out, len, "%s", GROUP);
    else
        snprintf (out, len, "%s-%d", GROUP, g + 1);
}

/* Group g's replica, until SIGTERM. */
static int
s_consumer_main (const char *dsn, const char *pub, int g, const char *member, int rcvhwm,
                 s_shared_t *sh)
{
    const char *streams[] = {STREAM};
    rt_consumer_config_t config = {0};
    rt_consumer_t *consumer;
    rt_metrics_t *metrics = rt_metrics_new ();
    s_child_t child = {sh, sh->seen + (size_t)g * (size_t)sh->nslots, g, NULL};
    char err[256], group[32], labels[48];
    int rc;
    rt_signal_install ();
    s_group_name (g, group, sizeof group);
    snprintf (labels, sizeof labels, "group=\"%s\"", group);
    config.dsn = dsn;
    config.group = group;
    config.member = member;
    config.pub_endpoints = pub;
    config.streams = streams;
    config.nstreams = 1;
    config.batch_max = 4000;
    config.rcvhwm = rcvhwm;
    config.metrics = metrics;
    config.handler = s_handler;
    config.handler_arg = &child;
    consumer = rt_consumer_new (&config, err, sizeof err);
    if (!consumer) {
        fprintf (stderr, "consumer: %s\n", err);
        return 1;
    }
    child.gaps = rt_metrics_counter (metrics, "retain_consumer_gaps_total", labels,
                                     "Gaps in live events recovered from the log.");
    rc = rt_consumer_run (consumer);
    rt_consumer_destroy (&consumer);
    rt_metrics_destroy (&metrics);
    return rc;
}

/* Fails the bench when a consumer child has exited. */
static void
s_child_alive (const s_bench_t *b)
{
    int status, g;
    for (g = 0; g < b->groups; g++)
        if (b->child[g] > 0 && waitpid (b->child[g], &status, WNOHANG) == b->child[g])
            s_fail ("%s: the consumer of group %d exited (status %d)", b->name, g + 1, status);
}

/* ---- PostgreSQL ---------------------------------------------------------- */

static long long
s_query_long (PGconn *conn, const char *sql)
{
    PGresult *res = PQexec (conn, sql);
    long long v;
    if (PQresultStatus (res) != PGRES_TUPLES_OK || PQntuples (res) != 1)
        s_fail ("%s: %s", sql, PQresultErrorMessage (res));
    v = strtoll (PQgetvalue (res, 0, 0), NULL, 10);
    PQclear (res);
    return v;
}

static const char *s_sql_offsets = "SELECT partition, pseq FROM bus.offsets "
                                   "WHERE grp = $1 AND stream = '" STREAM "'";

/* Reads group g's committed pseq of every partition into out. 0, or -1
 * with why. */
static int
s_offsets_read (PGconn *conn, int g, int nparts, uint64_t *out, char *why, size_t whylen)
{
    char group[32];
    const char *params[1] = {group};
    PGresult *res;
    s_group_name (g, group, sizeof group);
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

static PGconn *
s_connect (const char *dsn)
{
    PGconn *conn = PQconnectdb (dsn);
    PGresult *res;
    if (PQstatus (conn) != CONNECTION_OK)
        s_fail ("PostgreSQL: %s", PQerrorMessage (conn));
    /* The baseline's DROP TABLE IF EXISTS would NOTICE on every run. */
    res = PQexec (conn, "SET client_min_messages = warning");
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        s_fail ("PostgreSQL: %s", PQresultErrorMessage (res));
    PQclear (res);
    res = PQprepare (conn, "offsets", s_sql_offsets, 0, NULL);
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        s_fail ("preparing the offsets query: %s", PQresultErrorMessage (res));
    PQclear (res);
    return conn;
}

/* Rows like bus.events' (payloads of `payload` random bytes) into a plain
 * table with COPY: the ceiling. */
static double
s_copy_baseline (PGconn *conn, long rows, int payload)
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
        s_fail ("baseline table: %s", PQresultErrorMessage (res));
    PQclear (res);
    t0 = loadgen_mono_ns ();
    res = PQexec (conn, "COPY bench_copy FROM STDIN");
    if (PQresultStatus (res) != PGRES_COPY_IN)
        s_fail ("COPY: %s", PQresultErrorMessage (res));
    PQclear (res);
    for (i = 0; i < rows; i++) {
        rt_uuid_t id = rt_uuid_v7 ();
        char idtext[RT_UUID_STR_LEN + 1];
        int n;
        rt_uuid_format (&id, idtext);
        s_fill_random (pad, (size_t)payload * 2, (uint64_t)i);
        for (k = 0; k < payload * 2; k++)
            pad[k] = hex[(unsigned char)pad[k] & 15];
        n = snprintf (
            line, sizeof line,
            "%ld\torder\t%ld\t%ld\t%s\tOrderPlaced\tcustomer-%ld\t%lld\tbench\t\t\\\\x%s\t"
            "2026-11-24 10:00:00+00\n",
            i + 1, i % 16, i / 16 + 1, idtext, i % 5000, (long long)i, pad);
        if (PQputCopyData (conn, line, n) != 1)
            s_fail ("COPY: %s", PQerrorMessage (conn));
    }
    if (PQputCopyEnd (conn, NULL) != 1)
        s_fail ("COPY: %s", PQerrorMessage (conn));
    res = PQgetResult (conn);
    if (PQresultStatus (res) != PGRES_COMMAND_OK || atol (PQcmdTuples (res)) != rows)
        s_fail ("COPY: %s (%s rows of %ld)", PQresultErrorMessage (res), PQcmdTuples (res), rows);
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
    s_poller_t *pl = arg;
    uint64_t *now = calloc ((size_t)pl->nparts, sizeof *now);
    if (!now) {
        snprintf (pl->why, sizeof pl->why, "out of memory");
        return NULL;
    }
    while (!atomic_load (&pl->stop)) {
        int64_t t;
        int p;
        if (s_offsets_read (pl->conn, 0, pl->nparts, now, pl->why, sizeof pl->why) != 0)
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
                s_obs_t *grown = realloc (pl->obs[p], cap * sizeof *grown);
                if (!grown) {
                    snprintf (pl->why, sizeof pl->why, "out of memory");
                    goto done;
                }
                pl->obs[p] = grown;
                pl->cap[p] = cap;
            }
            pl->obs[p][pl->nobs[p]++] = (s_obs_t){t, now[p]};
            atomic_store (&pl->committed[p], now[p]);
        }
        s_sleep_until (t + pl->period_ns);
    }
done:
    free (now);
    return NULL;
}

static void
s_poll_start (s_poller_t *pl)
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
        s_fail ("cannot start the commit poller");
}

static void
s_poll_stop (s_poller_t *pl)
{
    atomic_store (&pl->stop, 1);
    pthread_join (pl->thread, NULL);
    if (pl->why[0])
        s_fail ("commit poller: %s", pl->why);
}

/* When the poller first saw partition p committed at or past pseq; -1 when
 * it never did. */
static int64_t
s_commit_ns (const s_poller_t *pl, uint32_t p, uint64_t pseq)
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

/* ---- waits and checks ---------------------------------------------------- */

/* The highest acknowledged pseq of each partition over slots [lo, hi). */
static void
s_required (const s_shared_t *sh, long lo, long hi, int nparts, uint64_t *req)
{
    long i;
    memset (req, 0, (size_t)nparts * sizeof *req);
    for (i = lo; i < hi; i++) {
        const s_slot_t *s = &sh->slot[i];
        if ((int)s->ack_partition >= nparts)
            s_fail ("event %ld acknowledged in partition %u of %d", i, s->ack_partition, nparts);
        if (s->ack_pseq > req[s->ack_partition])
            req[s->ack_partition] = s->ack_pseq;
    }
}

/* Waits until every group's handler has seen `target` slots in all. */
static void
s_wait_handled (const s_bench_t *b, long target, int64_t deadline_ns, const char *phase)
{
    int g;
    for (g = 0; g < b->groups; g++)
        while (atomic_load (&b->sh->handled[g]) < target) {
            if (loadgen_mono_ns () > deadline_ns)
                s_fail ("%s %s: the consumer of group %d handled %ld of %ld events by the "
                        "deadline",
                        b->name, phase, g + 1, atomic_load (&b->sh->handled[g]), target);
            s_child_alive (b);
            s_sleep_until (loadgen_mono_ns () + MS);
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
s_verify (const s_shared_t *sh, int groups, long hi)
{
    long i, dups = 0;
    int g;
    if (atomic_load (&sh->foreign) != 0)
        s_fail ("the consumer handled %ld events the bench did not send (or ids that differ)",
                atomic_load (&sh->foreign));
    for (i = 0; i < hi; i++) {
        const s_slot_t *s = &sh->slot[i];
        if (s->ack != RETAIN__V1__ACK__STATUS__OK && s->ack != RETAIN__V1__ACK__STATUS__DUPLICATE)
            s_fail ("event %ld: no acknowledgement (status %d)", i, s->ack);
        dups += s->ack == RETAIN__V1__ACK__STATUS__DUPLICATE;
        for (g = 0; g < groups; g++) {
            const s_seen_t *seen = &sh->seen[(size_t)g * (size_t)sh->nslots + (size_t)i];
            int handled = atomic_load (&seen->handled);
            if (handled != 1)
                s_fail ("event %ld: handled %d times by group %d, not once", i, handled, g + 1);
            if (seen->partition != s->ack_partition || seen->pseq != s->ack_pseq)
                s_fail ("event %ld: acknowledged at %u:%" PRIu64 ", handled by group %d at "
                        "%u:%" PRIu64,
                        i, s->ack_partition, s->ack_pseq, g + 1, seen->partition, seen->pseq);
        }
    }
    for (g = 0; g < groups; g++)
        if (atomic_load (&sh->handled[g]) != hi)
            s_fail ("the consumer of group %d handled %ld distinct events, the bench sent %ld",
                    g + 1, atomic_load (&sh->handled[g]), hi);
    return dups;
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
        s_fail ("/proc: %s", strerror (errno));
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
        s_fail ("the postmaster (pid %d) is gone", (int)postmaster);
    return total + t;
}

/* The CPU of the target's busd, cluster and running consumer children. */
static void
s_cpu_sample (s_cpu_t *c, const s_bench_t *b)
{
    int g;
    c->pg = s_pg_ticks (b->postmaster);
    c->busd = s_proc_ticks (b->busd, false, NULL);
    c->consumer = 0;
    if (c->busd < 0)
        s_fail ("busd (pid %d) is gone", (int)b->busd);
    for (g = 0; g < b->groups; g++) {
        long long t;
        if (b->child[g] <= 0)
            continue;
        t = s_proc_ticks (b->child[g], false, NULL);
        if (t < 0)
            s_fail ("the consumer (pid %d) is gone", (int)b->child[g]);
        c->consumer += t;
    }
}

/* The cluster's WAL position in bytes, and its checkpoints so far. */
static void
s_wal_sample (PGconn *conn, long long *wal, long long *ckpt)
{
    *wal = s_query_long (conn, "SELECT pg_current_wal_insert_lsn () - '0/0'");
    *ckpt = s_query_long (conn, PQserverVersion (conn) >= 170000
                                    ? "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
                                    : "SELECT checkpoints_timed + checkpoints_req "
                                      "FROM pg_stat_bgwriter");
}

static pid_t
s_postmaster_pid (const char *pgdata)
{
    char path[4096];
    long pid = 0;
    FILE *f;
    snprintf (path, sizeof path, "%s/postmaster.pid", pgdata);
    f = fopen (path, "r");
    if (!f || fscanf (f, "%ld", &pid) != 1 || pid <= 0)
        s_fail ("%s: no postmaster pid (%s)", path, f ? "unreadable" : strerror (errno));
    fclose (f);
    return (pid_t)pid;
}

/* ---- the phases of a run ------------------------------------------------- */

/* Starts group g's replica for run r; returns at once. */
static void
s_consumer_fork (s_bench_t *b, int r, int g)
{
    char member[64];
    pid_t child, parent = getpid ();

    snprintf (member, sizeof member, "bench-run-%d", r + 1);
    atomic_store (&b->sh->gaps[g], 0); /* each replica counts from 0 */
    child = fork ();
    if (child < 0)
        s_fail ("fork: %s", strerror (errno));
    if (child == 0) {
        /* A bench that fails exits at once: its replica goes with it. */
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (1);
        _exit (s_consumer_main (b->dsn, b->pub, g, member, b->rcvhwm, b->sh));
    }
    b->child[g] = child;
}

/* Starts run r's replica of every group and waits until each owns every
 * partition and has caught up with the log. */
static void
s_consumer_start (s_bench_t *b, int r)
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
        s_group_name (g, group, sizeof group);
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM bus.offsets o JOIN bus.counters c USING (stream, "
                  "partition) WHERE o.grp = '%s' AND o.stream = '" STREAM "' "
                  "AND o.owner = 'bench-run-%d' AND o.pseq = c.pseq",
                  group, r + 1);
        while (s_query_long (b->conn, sql) < b->nparts) {
            if (loadgen_mono_ns () > deadline)
                s_fail ("%s run %d: the consumer of group %d did not own and catch up every "
                        "partition",
                        b->name, r + 1, g + 1);
            s_child_alive (b);
            s_sleep_until (loadgen_mono_ns () + 50 * MS);
        }
    }
}

/* Stops every replica (each commits what it handled) within the deadline. */
static void
s_consumer_stop (s_bench_t *b, int r)
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
                s_fail ("%s run %d: the consumer of group %d did not stop", b->name, r + 1, g + 1);
            }
            s_sleep_until (loadgen_mono_ns () + 10 * MS);
        }
        b->child[g] = 0;
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
            s_fail ("%s run %d: the consumer of group %d ended with status %d", b->name, r + 1,
                    g + 1, status);
    }
}

/* A phase's deadline: the slack, and time for n events at 2,000/s. */
static int64_t
s_deadline (const s_bench_t *b, long n)
{
    return loadgen_mono_ns () + (b->deadline_s * 2 + n / 2000) * 1000 * MS;
}

/* Waits until every group's offsets cover what slots [first, first + n)
 * were acknowledged at; returns when the covering answer came. */
static int64_t
s_wait_committed (s_bench_t *b, int r, long first, long n, int64_t deadline, const char *phase)
{
    char why[256];
    int64_t t = 0;
    int g;
    s_required (b->sh, first, first + n, b->nparts, b->req);
    for (g = 0; g < b->groups; g++)
        for (;;) {
            if (s_offsets_read (b->conn, g, b->nparts, b->have, why, sizeof why) != 0)
                s_fail ("%s run %d: %s", b->name, r + 1, why);
            t = loadgen_mono_ns ();
            if (s_covered (b->have, b->req, b->nparts))
                break;
            if (t > deadline)
                s_fail ("%s run %d %s: offsets of group %d not committed by the deadline", b->name,
                        r + 1, phase, g + 1);
            s_child_alive (b);
            s_sleep_until (t + MS);
        }
    return t;
}

/* The first send and the last ack of the producers. */
static void
s_send_span (const s_bench_t *b, const s_producer_t *prod, int n, int64_t *t0, int64_t *last_ack)
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

/* CPU per event (us) and WAL per event between two samples. */
static void
s_costs (const s_cpu_t *c0, const s_cpu_t *c1, long long wal0, long long wal1, long n,
         s_figures_t *f)
{
    double tick_us = 1e6 / (double)sysconf (_SC_CLK_TCK);
    f->cpu_busd = (double)(c1->busd - c0->busd) * tick_us / (double)n;
    f->cpu_pg = (double)(c1->pg - c0->pg) * tick_us / (double)n;
    f->cpu_consumer = (double)(c1->consumer - c0->consumer) * tick_us / (double)n;
    f->wal = (double)(wal1 - wal0) / (double)n;
}

/* Throughput over slots [first, first + events): from the first send to
 * the commit (of every group) covering the last event, with the CPU over
 * the same span. */
static void
s_throughput (s_bench_t *b, int r, long first, s_figures_t *f)
{
    int64_t deadline = s_deadline (b, b->events);
    int64_t t0, t1, last_ack, last_handled = 0;
    s_producer_t prod[PRODUCERS];
    long gaps0 = atomic_load (&b->sh->gaps[0]), i;
    long long wal0, wal1, ck0, ck1;
    s_cpu_t c0, c1;

    s_wal_sample (b->conn, &wal0, &ck0);
    s_cpu_sample (&c0, b);
    s_run_producers (b, PRODUCERS, first, b->events / PRODUCERS, 0, 1, 0, deadline, prod);
    s_send_span (b, prod, PRODUCERS, &t0, &last_ack);
    /* Only the handlers' counts while events flow: no query load. */
    s_wait_handled (b, first + b->events, deadline, "throughput");
    t1 = s_wait_committed (b, r, first, b->events, deadline, "throughput");
    s_cpu_sample (&c1, b);
    s_wal_sample (b->conn, &wal1, &ck1);

    for (i = first; i < first + b->events; i++) {
        const s_slot_t *s = &b->sh->slot[i];
        const s_seen_t *seen = &b->sh->seen[i];
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
static void
s_backlog (s_bench_t *b, int r, long first, s_figures_t *f)
{
    int64_t deadline = s_deadline (b, b->backlog);
    int64_t t0, t1, last_ack;
    s_producer_t prod[PRODUCERS];
    long long wal0, wal1, ck0, ck1;
    s_cpu_t c0, c1;
    int g;

    s_wal_sample (b->conn, &wal0, &ck0);
    s_run_producers (b, PRODUCERS, first, b->backlog / PRODUCERS, 0, 1, 0, deadline, prod);
    s_send_span (b, prod, PRODUCERS, &t0, &last_ack);
    s_wal_sample (b->conn, &wal1, &ck1);
    f->load_eps = (double)b->backlog / ((double)(last_ack - t0) / 1e9);
    f->load_wal = (double)(wal1 - wal0) / (double)b->backlog;
    f->load_ckpt = (double)(ck1 - ck0);
    fprintf (stderr, "%s run %d backlog: %ld events loaded in %.3f s\n", b->name, r + 1, b->backlog,
             (double)(last_ack - t0) / 1e9);

    deadline = s_deadline (b, b->backlog);
    s_wal_sample (b->conn, &wal0, &ck0);
    s_cpu_sample (&c0, b);
    t0 = loadgen_mono_ns ();
    for (g = 0; g < b->groups; g++)
        s_consumer_fork (b, r, g);
    s_wait_handled (b, first + b->backlog, deadline, "catch-up");
    t1 = s_wait_committed (b, r, first, b->backlog, deadline, "catch-up");
    s_cpu_sample (&c1, b);
    s_wal_sample (b->conn, &wal1, &ck1);
    f->eps = (double)b->backlog / ((double)(t1 - t0) / 1e9);
    s_costs (&c0, &c1, wal0, wal1, b->backlog, f);
    f->ckpt = (double)(ck1 - ck0);
    f->gaps_tput = (double)atomic_load (&b->sh->gaps[0]);
    fprintf (stderr, "%s run %d catch-up: %ld events in %.3f s\n", b->name, r + 1, b->backlog,
             (double)(t1 - t0) / 1e9);
}

/* Latency over slots [first, first + latency_events), open loop; measured
 * at group 1 (every group must handle every event all the same). */
static void
s_latency (s_bench_t *b, int r, long first, s_figures_t *f)
{
    static const double quantiles[5] = {0.50, 0.90, 0.99, 0.999, 1.0};
    long n = b->latency_events, gaps0 = atomic_load (&b->sh->gaps[0]), slow = 0, i;
    s_producer_t prod[1];
    int64_t t0, deadline;
    s_poller_t *pl = &b->pl;
    int p;

    s_poll_start (pl);
    t0 = loadgen_mono_ns () + 20 * MS; /* the poller has seen the offsets by then */
    deadline = loadgen_due_ns (t0, (double)b->rate, n) + b->deadline_s * 1000 * MS;
    s_run_producers (b, 1, first, n, (double)b->rate, (int)b->burst, t0, deadline, prod);
    s_wait_handled (b, first + n, deadline, "latency");
    s_required (b->sh, first, first + n, b->nparts, b->req);
    for (;;) {
        for (p = 0; p < b->nparts; p++)
            b->have[p] = atomic_load (&pl->committed[p]);
        if (s_covered (b->have, b->req, b->nparts))
            break;
        if (loadgen_mono_ns () > deadline)
            s_fail ("%s run %d latency: offsets not committed by the deadline", b->name, r + 1);
        s_child_alive (b);
        s_sleep_until (loadgen_mono_ns () + MS);
    }
    s_poll_stop (pl);
    /* The other groups' commits, so that the next phase starts clean. */
    s_wait_committed (b, r, first, n, deadline, "latency");

    for (i = 0; i < n; i++) {
        const s_slot_t *s = &b->sh->slot[first + i];
        const s_seen_t *seen = &b->sh->seen[first + i];
        int64_t c = s_commit_ns (pl, s->ack_partition, s->ack_pseq);
        if (c < 0)
            s_fail ("%s run %d: the commit of event %ld was never seen", b->name, r + 1, first + i);
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
static long
s_check (s_bench_t *b, long slots)
{
    long dups = s_verify (b->sh, b->groups, slots);
    long logged = (long)s_query_long (b->conn, "SELECT count(*) FROM bus.events WHERE stream = "
                                               "'" STREAM "'");
    if (logged - b->log_before != slots)
        s_fail ("%s: the log holds %ld events of the stream, the bench had %ld acknowledged",
                b->name, logged - b->log_before, slots);
    return dups;
}

/* ---- figures and the command line ---------------------------------------- */

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over the runs of the figure at `offset` in s_figures_t. */
static double
s_med (const s_figures_t *fig, int runs, size_t offset)
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
s_sum (const s_figures_t *fig, int runs, size_t offset)
{
    double sum = 0;
    int r;
    for (r = 0; r < runs; r++)
        sum += *(const double *)((const char *)&fig[r] + offset);
    return sum;
}

#define MED(field) s_med (fig, runs, offsetof (s_figures_t, field))
#define SUM(field) s_sum (fig, runs, offsetof (s_figures_t, field))

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
s_print_target (const s_bench_t *b, const s_figures_t *fig, int runs, long dups, long verified)
{
    printf ("{\"events_per_s\":%.0f,\"copy_rows_per_s\":%.0f,\"ratio\":%.3f,"
            "\"cpu_us_per_event_busd\":%.1f,\"cpu_us_per_event_pg\":%.1f,"
            "\"cpu_us_per_event_consumer\":%.1f,\"wal_bytes_per_event\":%.0f,"
            "\"checkpoints\":%.0f,",
            MED (eps), MED (copy), MED (ratio), MED (cpu_busd), MED (cpu_pg), MED (cpu_consumer),
            MED (wal), MED (ckpt));
    if (b->backlog > 0)
        printf ("\"load_events_per_s\":%.0f,\"load_wal_bytes_per_event\":%.0f,"
                "\"load_checkpoints\":%.0f,",
                MED (load_eps), MED (load_wal), MED (load_ckpt));
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
s_target_open (s_bench_t *b, const char *pgdata, int runs, long poll_us)
{
    long per_run = b->backlog > 0 ? b->backlog : b->events + b->latency_events;
    long nslots = per_run * runs;
    b->postmaster = s_postmaster_pid (pgdata);
    b->shsize = sizeof *b->sh + (size_t)nslots * sizeof (s_slot_t) +
                (size_t)b->groups * (size_t)nslots * sizeof (s_seen_t);
    b->sh = mmap (NULL, b->shsize, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->sh == MAP_FAILED)
        s_fail ("cannot map %zu bytes: %s", b->shsize, strerror (errno));
    b->sh->nslots = nslots;
    b->sh->seen = (s_seen_t *)(void *)&b->sh->slot[nslots];

    b->conn = s_connect (b->dsn);
    b->nparts = (int)s_query_long (b->conn, "SELECT partitions FROM bus.streams WHERE stream = "
                                            "'" STREAM "'");
    b->log_before = (long)s_query_long (b->conn, "SELECT count(*) FROM bus.events WHERE stream "
                                                 "= '" STREAM "'");
    b->pl.conn = s_connect (b->dsn);
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
        s_fail ("out of memory");
}

/* Run r against target b: every phase, the checks, the baseline. Returns
 * the DUPLICATE acks so far. */
static long
s_target_run (s_bench_t *b, int r, s_figures_t *f)
{
    long per_run = b->backlog > 0 ? b->backlog : b->events + b->latency_events;
    long first = r * per_run, dups;

    memset (f, 0, sizeof *f);
    if (b->backlog > 0) {
        s_backlog (b, r, first, f);
    } else {
        s_consumer_start (b, r);
        s_throughput (b, r, first, f);
        if (b->latency_events > 0)
            s_latency (b, r, first + b->events, f);
    }
    s_consumer_stop (b, r);
    dups = s_check (b, first + per_run);
    f->copy = s_copy_baseline (b->conn, b->copy_rows, b->payload);
    f->ratio = f->eps / f->copy;
    printf ("%s run %d: events_per_s=%.0f copy_rows_per_s=%.0f ratio=%.3f cpu_us_per_event: "
            "busd=%.1f pg=%.1f consumer=%.1f wal_bytes_per_event=%.0f checkpoints=%.0f",
            b->name, r + 1, f->eps, f->copy, f->ratio, f->cpu_busd, f->cpu_pg, f->cpu_consumer,
            f->wal, f->ckpt);
    if (b->backlog > 0)
        printf (" load_events_per_s=%.0f load_wal_bytes_per_event=%.0f", f->load_eps, f->load_wal);
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
    s_bench_t set = {.name = "defaults",
                     .events = 200000,
                     .latency_events = 100000,
                     .rate = 10000,
                     .burst = 1,
                     .deadline_s = 60,
                     .groups = 1,
                     .payload = PAYLOAD_BYTES};
    s_bench_t bench[MAX_TARGETS];
    const char *pgdata[MAX_TARGETS] = {NULL}, *record = NULL, *cell = NULL;
    const char *name[MAX_TARGETS] = {NULL}, *dsn[MAX_TARGETS] = {NULL};
    const char *ingress[MAX_TARGETS] = {NULL}, *pub[MAX_TARGETS] = {NULL};
    long poll_us = 1000, dups[MAX_TARGETS] = {0}, busd_pid[MAX_TARGETS] = {0};
    static s_figures_t figs[MAX_TARGETS][MAX_RUNS];
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
            s_fail ("%s: %s", record, strerror (errno));
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
            s_fail ("%s has %d partitions of the stream, %s %d: not one cell", bench[t].name,
                    bench[t].nparts, bench[0].name, bench[0].nparts);
    }

    /* Interleaved, each run in the other order than the one before (ABBA),
     * so that the machine's drift falls on both alike. */
    for (r = 0; r < runs; r++)
        for (i = 0; i < nt; i++) {
            s_bench_t *b;
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
        const s_figures_t *fig = figs[0];
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
        s_fail ("%s: %s", record, strerror (errno));
    for (t = 0; t < nt; t++) {
        PQfinish (bench[t].pl.conn);
        PQfinish (bench[t].conn);
        munmap (bench[t].sh, bench[t].shsize);
    }
    return rate_ok ? 0 : 1;
}
