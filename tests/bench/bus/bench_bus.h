/*
 * bench_bus's parts and what they share; bench_bus.c says what the bench
 * measures, from when to when, and how every figure is checked.
 *
 *   bench_bus.c  the command line, the runs over the targets, the figures
 *   phases.c     the phases of a run (consumers started and stopped,
 *                throughput, backlog, latency) and the checks
 *   traffic.c    the events, the producers, the consumer replicas
 *   measure.c    PostgreSQL's queries and the COPY baseline, the commit
 *                poller, CPU from /proc and the cluster's WAL
 *
 * Every function here fails the bench (bench_fail: the reason on stderr,
 * exit 1) rather than return an error, unless it says otherwise.
 */
#ifndef BENCH_BUS_H
#define BENCH_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "rt_db.h"
#include "rt_uuid.h"
#include "retain/v1/envelope.pb-c.h"

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
} bench_slot_t;

/* What one group's handler saw of one event, written by its replica. */
typedef struct {
    atomic_int handled; /* handler calls for it */
    uint32_t partition; /* the partition the handler saw */
    uint64_t pseq;      /* the pseq the handler saw */
    int64_t handled_ns; /* the first call's entry */
} bench_seen_t;

/* Shared with the consumer children (MAP_SHARED), for the whole bench. */
typedef struct {
    atomic_long handled[MAX_GROUPS]; /* per group: slots handled at least once */
    atomic_long foreign;             /* events that are no slot of the bench, or whose id differs */
    atomic_long gaps[MAX_GROUPS];    /* per group: its replica's gaps recovered from the log */
    long nslots;                     /* slots below */
    bench_seen_t *seen;              /* group g's record of slot i at seen[g * nslots + i] */
    bench_slot_t slot[];             /* every event of every run */
} bench_shared_t;

/* One producer thread and its slots. */
typedef struct {
    const char *endpoint; /* busd ingress */
    bench_shared_t *sh;   /* the shared record */
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
} bench_producer_t;

/* One committed offset as the poller first saw it. */
typedef struct {
    int64_t t_ns;  /* when the poll's answer arrived */
    uint64_t pseq; /* the group's committed pseq */
} bench_obs_t;

/* The commit poller: a thread reading the group's offsets. */
typedef struct {
    PGconn *conn;                /* its own connection, kept for the bench */
    int nparts;                  /* partitions of the stream */
    int64_t period_ns;           /* between polls */
    pthread_t thread;            /* the thread, while it runs */
    atomic_int stop;             /* asks it to end */
    _Atomic uint64_t *committed; /* per partition: the last committed pseq seen */
    bench_obs_t **obs;           /* per partition: every change seen, in order */
    size_t *nobs;                /* their counts */
    size_t *cap;                 /* allocated */
    long polls;                  /* polls made this phase */
    int64_t first_ns;            /* the phase's first poll */
    int64_t last_ns;             /* its last */
    char why[256];               /* set when it failed */
} bench_poller_t;

/* CPU ticks of the measured processes at one moment. */
typedef struct {
    long long busd;     /* busd, every thread */
    long long pg;       /* the cluster (s_pg_ticks) */
    long long consumer; /* the consumer children */
} bench_cpu_t;

/* The figures of one run (all double, so that s_med reads any of them). */
typedef struct {
    double eps;           /* throughput: events per second */
    double copy;          /* baseline: COPY rows per second */
    double ratio;         /* eps / copy */
    double tail_ms;       /* throughput: last ack to the covering commit */
    double cpu_busd;      /* CPU per event, microseconds: busd */
    double cpu_pg;        /* ... the PostgreSQL cluster */
    double cpu_consumer;  /* ... the consumer process */
    double achieved;      /* latency: events sent per second */
    double lat[5];        /* due to handler: p50, p90, p99, p999, max (ms) */
    double commit[5];     /* due to commit, likewise */
    double poll_ms;       /* mean period of the commit poller */
    double slow;          /* latency events handled SLOW_MS or more after due */
    double gaps_tput;     /* the consumer's gaps in the throughput phase */
    double gaps_lat;      /* ... and in the latency phase */
    double wal;           /* throughput (or catch-up): WAL bytes per event */
    double ckpt;          /* ... checkpoints that began meanwhile */
    double load_eps;      /* backlog: events per second while loading it */
    double load_wal;      /* ... WAL bytes per event */
    double load_ckpt;     /* ... checkpoints */
    double load_cpu_busd; /* ... CPU per event (us) of busd */
    double load_cpu_pg;   /* ... of the PostgreSQL cluster */
} bench_figures_t;

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
    bench_shared_t *sh;      /* shared with the replicas */
    size_t shsize;           /* its mapping's size */
    pid_t child[MAX_GROUPS]; /* each group's replica, while it runs */
    PGconn *conn;            /* the bench's queries */
    bench_poller_t pl;       /* the commit poller */
    int nparts;              /* partitions of the stream */
    long log_before;         /* events of the stream in the log before the bench */
    uint64_t *req;           /* per partition: the pseq a phase needs committed */
    uint64_t *have;          /* per partition: the pseq committed */
    int64_t *lat;            /* latency events: due to handler, us */
    int64_t *clat;           /* latency events: due to commit, us */
    FILE *rec;               /* --record, or NULL */
} bench_t;

/* ---- bench_bus.c --------------------------------------------------------- */

/* Prints the reason of a failed check or wait on stderr and exits 1. */
void bench_fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2), noreturn));

/* Sleeps until t_ns on CLOCK_MONOTONIC. */
void bench_sleep_until (int64_t t_ns);

/* ---- traffic.c ----------------------------------------------------------- */

/* n characters that do not compress, from `seed`, then a NUL. */
void traffic_fill_random (char *out, size_t n, uint64_t seed);

/* The envelope of slot i (an OrderPlaced of `payload` bytes), owned by the
 * caller; NULL when it cannot be made that long. */
Retain__V1__Envelope *traffic_event (long i, int payload);

/* Runs n producer threads over slots [first, first + n * per) (rate 0: as
 * fast as acknowledged, else open loop from t0_ns); p receives each one's
 * record. */
void traffic_run_producers (const bench_t *b, int n, long first, long per, double rate, int burst,
                            int64_t t0_ns, int64_t deadline_ns, bench_producer_t *p);

/* The name of group g ("bench", "bench-2", ...). */
void traffic_group_name (int g, char *out, size_t len);

/* Group g's replica, until SIGTERM (the child's main); its exit status. */
int traffic_consumer_main (const char *dsn, const char *pub, int g, const char *member, int rcvhwm,
                           bench_shared_t *sh);

/* ---- measure.c ----------------------------------------------------------- */

/* The one value of a one-row query. */
long long measure_query_long (PGconn *conn, const char *sql);

/* Reads group g's committed pseq of every partition into out. 0, or -1
 * with why (the poller's thread may not exit the bench). */
int measure_offsets_read (PGconn *conn, int g, int nparts, uint64_t *out, char *why, size_t whylen);

/* A connection with the offsets query prepared. */
PGconn *measure_connect (const char *dsn);

/* COPY of `rows` rows like bus.events' into a plain table: rows/s. */
double measure_copy_baseline (PGconn *conn, long rows, int payload);

/* Starts and stops the commit poller of a latency phase. */
void measure_poll_start (bench_poller_t *pl);
void measure_poll_stop (bench_poller_t *pl);

/* When the poller first saw partition p committed at or past pseq; -1
 * when it never did. */
int64_t measure_commit_ns (const bench_poller_t *pl, uint32_t p, uint64_t pseq);

/* The CPU ticks of b's busd, cluster and running consumer children. */
void measure_cpu_sample (bench_cpu_t *c, const bench_t *b);

/* The cluster's WAL position in bytes, and its checkpoints so far. */
void measure_wal_sample (PGconn *conn, long long *wal, long long *ckpt);

/* The postmaster's pid, from its data folder. */
pid_t measure_postmaster_pid (const char *pgdata);

/* ---- phases.c ------------------------------------------------------------ */

/* Starts run r's replica of every group; returns once each owns every
 * partition and has caught up with the log. */
void phases_consumer_start (bench_t *b, int r);

/* Stops every replica (each commits what it handled). */
void phases_consumer_stop (bench_t *b, int r);

/* The phases of run r over the slots from `first`, into f. */
void phases_throughput (bench_t *b, int r, long first, bench_figures_t *f);
void phases_backlog (bench_t *b, int r, long first, bench_figures_t *f);
void phases_latency (bench_t *b, int r, long first, bench_figures_t *f);

/* The checks over every slot below `slots`; the DUPLICATE acks. */
long phases_check (bench_t *b, long slots);

#endif
