/*
 * bench_bus: the durable end-to-end throughput and latency of the bus,
 * against the raw limit of PostgreSQL on the same machine.
 *
 *   bench_bus --pg-dsn DSN --ingress EP --pub EP [--events N] [--runs R]
 *
 * Throughput: producers send N OrderPlaced events with 256-byte payloads
 * as fast as busd acknowledges them (after commit); one consumer group
 * replica (a child process) handles them and commits its offsets; the
 * figure is N over the time from the first send to the last offset commit.
 * Baseline: the same N rows COPYed into a plain table, in the same run.
 * Latency: one producer at a fixed 10,000 events/s; each event carries its
 * send time; the consumer's handler records now minus that (CLOCK_MONOTONIC
 * is one clock for every process of the machine).
 * Prints a line per run, then the medians as one JSON line, last.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_bus.h"
#include "rt_consumer.h"
#include "rt_db.h"
#include "rt_log.h"
#include "rt_producer.h"
#include "rt_signal.h"
#include "rt_uuid.h"
#include "retain/v1/order.pb-c.h"

#define PAYLOAD_BYTES 256
#define PRODUCERS     2
#define WINDOW        8000
#define MAX_LATENCIES 400000

typedef struct {
    atomic_long nlat;             /* latencies recorded */
    atomic_int measure;           /* record latencies now */
    double lat_ms[MAX_LATENCIES]; /* send-to-handler latencies */
} s_shared_t;

typedef struct {
    const char *endpoint; /* busd ingress */
    int index;            /* producer number */
    long count;           /* events to send */
    long rate;            /* events/s, 0: as fast as acknowledged */
    int run;              /* run number, in the keys */
    int failed;           /* a send could not be made */
} s_producer_t;

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* An envelope whose serialized OrderPlaced payload is PAYLOAD_BYTES long. */
static Retain__V1__Envelope *
s_event (int producer, long i, int run)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    char key[48], order_id[48], pad[PAYLOAD_BYTES];
    Retain__V1__Envelope *env;
    size_t size;
    snprintf (key, sizeof key, "customer-%d-%ld", run, (i * 7919 + producer) % 5000);
    snprintf (order_id, sizeof order_id, "order-%d-%d-%ld", run, producer, i);
    order.order_id = order_id;
    order.customer_id = key;
    order.placed_at = s_now_us ();
    order.coupon_code = "";
    size = protobuf_c_message_get_packed_size (&order.base);
    memset (pad, 'x', sizeof pad);
    /* coupon_code (field 6) takes the rest: 2 bytes of tag and length. */
    pad[PAYLOAD_BYTES - size - 2] = '\0';
    order.coupon_code = pad;
    env = rt_envelope_new ("OrderPlaced", key, &order.base, "bench");
    return env;
}

static void *
s_produce (void *arg)
{
    s_producer_t *p = arg;
    char err[256];
    rt_producer_t *producer = rt_producer_new (p->endpoint, err, sizeof err);
    long sent = 0, acked = 0;
    int64_t start = s_now_us ();
    if (!producer) {
        fprintf (stderr, "producer: %s\n", err);
        p->failed = 1;
        return NULL;
    }
    rt_producer_set_resend_ms (producer, 5000);
    while (acked < p->count) {
        long due = p->count;
        if (p->rate > 0) {
            due = (long)((s_now_us () - start) * p->rate / 1000000) + 1;
            if (due > p->count)
                due = p->count;
        }
        while (sent < due && rt_producer_pending (producer) < WINDOW) {
            Retain__V1__Envelope *env = s_event (p->index, sent, p->run);
            if (!env || rt_producer_post (producer, env) != 0) {
                p->failed = 1;
                rt_envelope_free (env);
                goto done;
            }
            rt_envelope_free (env);
            sent++;
        }
        {
            int n = rt_producer_poll (producer, p->rate > 0 ? 0 : 5, NULL, NULL);
            if (n < 0) {
                p->failed = 1;
                goto done;
            }
            acked += n;
        }
        if (p->rate > 0 && sent >= due)
            usleep (200);
    }
done:
    rt_producer_destroy (&producer);
    return NULL;
}

static int
s_handler (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    s_shared_t *shared = arg;
    (void)db;
    if (atomic_load (&shared->measure)) {
        Retain__V1__OrderPlaced *order =
            retain__v1__order_placed__unpack (NULL, event->payload.len, event->payload.data);
        if (order) {
            long n = atomic_fetch_add (&shared->nlat, 1);
            if (n < MAX_LATENCIES)
                shared->lat_ms[n] = (double)(s_now_us () - order->placed_at) / 1000.0;
            retain__v1__order_placed__free_unpacked (order, NULL);
        }
    }
    return 0;
}

/* The consumer replica: counts what it has committed into shared memory. */
static int
s_consumer_main (const char *dsn, const char *pub, s_shared_t *shared)
{
    const char *streams[] = {"order"};
    rt_consumer_config_t config = {0};
    rt_consumer_t *consumer;
    rt_metrics_t *metrics = rt_metrics_new ();
    char err[256];
    int rc;
    rt_signal_install ();
    config.dsn = dsn;
    config.group = "bench";
    config.pub_endpoints = pub;
    config.streams = streams;
    config.nstreams = 1;
    config.batch_max = 4000;
    config.metrics = metrics;
    config.handler = s_handler;
    config.handler_arg = shared;
    consumer = rt_consumer_new (&config, err, sizeof err);
    if (!consumer) {
        fprintf (stderr, "consumer: %s\n", err);
        return 1;
    }
    rc = rt_consumer_run (consumer);
    rt_consumer_destroy (&consumer);
    rt_metrics_destroy (&metrics);
    return rc;
}

static long long
s_query_long (PGconn *conn, const char *sql)
{
    PGresult *res = PQexec (conn, sql);
    long long v = -1;
    if (PQresultStatus (res) == PGRES_TUPLES_OK && PQntuples (res) == 1)
        v = strtoll (PQgetvalue (res, 0, 0), NULL, 10);
    else
        fprintf (stderr, "%s: %s", sql, PQresultErrorMessage (res));
    PQclear (res);
    return v;
}

/* Rows like bus.events' into a plain table with COPY: the ceiling. */
static double
s_copy_baseline (PGconn *conn, long rows)
{
    PGresult *res;
    char pad[PAYLOAD_BYTES * 2 + 1];
    char line[1024];
    int64_t t0, t1;
    long i;
    memset (pad, 'a', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    PQclear (PQexec (conn, "DROP TABLE IF EXISTS bench_copy"));
    PQclear (PQexec (conn, "CREATE TABLE bench_copy (seq bigint, stream text, partition int, "
                           "pseq bigint, id uuid, type text, key text, occurred_at bigint, "
                           "producer text, correlation_id text, payload bytea, "
                           "appended_at timestamptz)"));
    t0 = s_now_us ();
    res = PQexec (conn, "COPY bench_copy FROM STDIN");
    if (PQresultStatus (res) != PGRES_COPY_IN) {
        fprintf (stderr, "COPY: %s", PQresultErrorMessage (res));
        PQclear (res);
        return 0;
    }
    PQclear (res);
    for (i = 0; i < rows; i++) {
        rt_uuid_t id = rt_uuid_v7 ();
        char idtext[RT_UUID_STR_LEN + 1];
        int n;
        rt_uuid_format (&id, idtext);
        n = snprintf (
            line, sizeof line,
            "%ld\torder\t%ld\t%ld\t%s\tOrderPlaced\tcustomer-%ld\t%lld\tbench\t\t\\\\x%s\t"
            "2026-11-24 10:00:00+00\n",
            i + 1, i % 16, i / 16 + 1, idtext, i % 5000, (long long)i, pad);
        PQputCopyData (conn, line, n);
    }
    PQputCopyEnd (conn, NULL);
    res = PQgetResult (conn);
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        fprintf (stderr, "COPY: %s", PQresultErrorMessage (res));
    PQclear (res);
    while ((res = PQgetResult (conn)) != NULL)
        PQclear (res);
    t1 = s_now_us ();
    PQclear (PQexec (conn, "DROP TABLE bench_copy"));
    return (double)rows / ((double)(t1 - t0) / 1e6);
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
s_median (double *v, int n)
{
    qsort (v, (size_t)n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double
s_percentile (double *v, long n, double p)
{
    long i;
    if (n == 0)
        return NAN;
    qsort (v, (size_t)n, sizeof *v, s_cmp_double);
    i = (long)ceil (p * (double)n) - 1;
    return v[i < 0 ? 0 : i];
}

static int
s_run_producers (const char *ingress, int n, long per, long rate, int run)
{
    s_producer_t p[PRODUCERS];
    pthread_t t[PRODUCERS];
    int i, failed = 0;
    for (i = 0; i < n; i++) {
        p[i] = (s_producer_t){ingress, i, per, rate, run, 0};
        pthread_create (&t[i], NULL, s_produce, &p[i]);
    }
    for (i = 0; i < n; i++) {
        pthread_join (t[i], NULL);
        failed |= p[i].failed;
    }
    return failed ? -1 : 0;
}

int
main (int argc, char **argv)
{
    const char *dsn = NULL, *ingress = NULL, *pub = NULL;
    long events = 200000, latency_events = 100000;
    int runs = 3, r, i;
    double eps[16], copy[16], ratio[16], p50[16], p99[16];
    s_shared_t *shared;
    PGconn *conn;
    pid_t child;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp (argv[i], "--pg-dsn") == 0)
            dsn = argv[i + 1];
        else if (strcmp (argv[i], "--ingress") == 0)
            ingress = argv[i + 1];
        else if (strcmp (argv[i], "--pub") == 0)
            pub = argv[i + 1];
        else if (strcmp (argv[i], "--events") == 0)
            events = atol (argv[i + 1]);
        else if (strcmp (argv[i], "--latency-events") == 0)
            latency_events = atol (argv[i + 1]);
        else if (strcmp (argv[i], "--runs") == 0)
            runs = atoi (argv[i + 1]);
    }
    if (!dsn || !ingress || !pub || runs < 1 || runs > 16) {
        fprintf (stderr, "usage: bench_bus --pg-dsn DSN --ingress EP --pub EP [--events N] "
                         "[--latency-events N] [--runs R<=16]\n");
        return 2;
    }
    rt_log_init ("bench_bus", RT_LOG_WARN);
    shared = mmap (NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        return 1;
    conn = PQconnectdb (dsn);
    if (PQstatus (conn) != CONNECTION_OK) {
        fprintf (stderr, "%s", PQerrorMessage (conn));
        return 1;
    }

    for (r = 0; r < runs; r++) {
        long base, target;
        int64_t t0, t1;
        memset (shared, 0, sizeof *shared);
        child = fork ();
        if (child == 0)
            _exit (s_consumer_main (dsn, pub, shared));
        /* Wait until the replica owns the partitions and caught up. */
        base = s_query_long (conn, "SELECT coalesce(sum(pseq), 0) FROM bus.counters "
                                   "WHERE stream = 'order'");
        {
            int64_t deadline = s_now_us () + 30000000;
            while (s_query_long (conn, "SELECT count(*) FROM bus.offsets WHERE grp = 'bench' "
                                       "AND owner <> ''") < 16 ||
                   s_query_long (conn, "SELECT coalesce(sum(pseq), 0) FROM bus.offsets WHERE "
                                       "grp = 'bench'") < base) {
                if (s_now_us () > deadline) {
                    fprintf (stderr, "consumer did not start\n");
                    return 1;
                }
                usleep (50000);
            }
        }

        /* Throughput. */
        target = base + events;
        t0 = s_now_us ();
        if (s_run_producers (ingress, PRODUCERS, events / PRODUCERS, 0, r) != 0)
            return 1;
        while (s_query_long (conn, "SELECT coalesce(sum(pseq), 0) FROM bus.offsets WHERE grp = "
                                   "'bench'") < target)
            usleep (2000);
        t1 = s_now_us ();
        eps[r] = (double)events / ((double)(t1 - t0) / 1e6);

        /* Latency at a fixed 10,000 events/s. */
        atomic_store (&shared->nlat, 0);
        atomic_store (&shared->measure, 1);
        if (s_run_producers (ingress, 1, latency_events, 10000, r + 100) != 0)
            return 1;
        {
            int64_t deadline = s_now_us () + 60000000;
            while (atomic_load (&shared->nlat) < latency_events && s_now_us () < deadline)
                usleep (2000);
        }
        atomic_store (&shared->measure, 0);
        {
            long n = atomic_load (&shared->nlat);
            if (n > MAX_LATENCIES)
                n = MAX_LATENCIES;
            p50[r] = s_percentile (shared->lat_ms, n, 0.50);
            p99[r] = s_percentile (shared->lat_ms, n, 0.99);
        }
        kill (child, SIGTERM);
        waitpid (child, NULL, 0);

        copy[r] = s_copy_baseline (conn, events);
        ratio[r] = eps[r] / copy[r];
        printf ("run %d: events_per_s=%.0f copy_rows_per_s=%.0f ratio=%.3f p50_ms=%.2f "
                "p99_ms=%.2f\n",
                r + 1, eps[r], copy[r], ratio[r], p50[r], p99[r]);
        fflush (stdout);
    }
    printf ("{\"events_per_s\":%.0f,\"copy_rows_per_s\":%.0f,\"ratio\":%.3f,\"p50_ms\":%.2f,"
            "\"p99_ms\":%.2f,\"runs\":%d,\"events\":%ld,\"payload_bytes\":%d}\n",
            s_median (eps, runs), s_median (copy, runs), s_median (ratio, runs),
            s_median (p50, runs), s_median (p99, runs), runs, events, PAYLOAD_BYTES);
    PQfinish (conn);
    munmap (shared, sizeof *shared);
    return 0;
}
