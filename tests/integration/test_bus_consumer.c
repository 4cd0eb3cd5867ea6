/*
 * A consumer group under failure: two replicas of helper_consumer share the
 * partitions of three streams while 100,000 events are produced through
 * retain-busd, and one replica after the other is SIGKILLed mid-stream and
 * started again. What the group promises, and what this test checks from
 * the outside: every event's effect is in the effect table exactly once, at
 * the position the log gave it; no partition misses a pseq; the replicas
 * shared the work; a dead replica's partitions go to the survivor under a
 * new epoch; the outbox events the handler wrote reached the log exactly
 * once; and every process stops cleanly on SIGTERM. One replica handles
 * events one by one, the other a round at once (rt_consumer_set_batch).
 *
 * And a set-based handler that fails on one key's events: its round rolls
 * back, the round's partitions are read again from the log one at a time,
 * every other partition's events land exactly once, the bad events
 * never, and the replica stays up and stops cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_clock.h"
#include "rt_bus.h"
#include "rt_producer.h"
#include "rt_test.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/order.pb-c.h"
#include "retain/v1/shipment.pb-c.h"

#define S_EVENTS       100000
#define S_WINDOW       4000 /* envelopes in flight */
#define S_RATE         5000 /* events per second: a stream long enough to kill into */
#define S_KEYS         500  /* keys per stream */
#define S_OUTBOX_EVERY "10" /* the handler answers events whose pseq is a multiple of it */
#define S_GROUP        "effects"
#define S_STREAMS      "order,shipment,customer"
#define S_STREAMS_SQL  "'{order,shipment,customer}'::text[]"
#define S_PARTITIONS   48 /* 3 streams of 16 */
#define S_REPLICAS     2
#define S_KILLS        3
#define S_HELPER       RT_TEST_BIN_DIR "/../tests/helper_consumer"

/* The producing thread's state; the main thread reads the atomics. */
typedef struct {
    size_t total;          /* events to produce */
    size_t rate;           /* a second */
    char ingress[64];      /* busd ingress endpoint */
    char (*ids)[40];       /* produced envelope ids, in order */
    atomic_size_t acked;   /* answered OK or DUPLICATE: in the log */
    atomic_size_t refused; /* answered REJECTED */
    atomic_bool stop;      /* the test is over: give up */
    atomic_bool done;      /* the thread returned */
    char error[320];       /* why it gave up, "" when it did not */
} s_producer_t;

/* Everything a failing test must clean up. */
typedef struct {
    char dsn[1024];            /* the test's database */
    PGconn *pg;                /* the test's connection */
    char pub[64];              /* busd PUB endpoint */
    pid_t busd;                /* 0 when not running */
    int busd_admin;            /* its admin port */
    pid_t replica[S_REPLICAS]; /* 0 when not running */
    int admin[S_REPLICAS];     /* their admin ports */
    s_producer_t producer;     /* the producing thread's state */
    pthread_t thread;          /* the producing thread */
    bool thread_started;       /* thread is joinable */
} s_fixture_t;

static const char *const s_names[S_REPLICAS] = {"r1", "r2"};

/* Events the handler should have answered with an outbox event, whose
 * answer is not in the log. */
static const char *s_sql_unanswered =
    "SELECT count(*) FROM bus.events e WHERE e.stream = ANY(" S_STREAMS_SQL ") "
    "AND e.pseq % " S_OUTBOX_EVERY " = 0 AND NOT EXISTS (SELECT 1 FROM bus.events n "
    "WHERE n.stream = 'notification' AND n.correlation_id = e.id::text)";

static Retain__V1__Envelope *
s_event (size_t i)
{
    char key[32], ref[32];
    snprintf (key, sizeof key, "customer-%03zu", (i / 3) % S_KEYS);
    snprintf (ref, sizeof ref, "ref-%zu", i);
    switch (i % 3) {
    case 0: {
        Retain__V1__OrderPlaced m = RETAIN__V1__ORDER_PLACED__INIT;
        m.order_id = ref;
        m.customer_id = key;
        m.placed_at = rt_clock_now_ms ();
        return rt_envelope_new ("OrderPlaced", key, &m.base, "test_bus_consumer");
    }
    case 1: {
        Retain__V1__ShipmentStatusChanged m = RETAIN__V1__SHIPMENT_STATUS_CHANGED__INIT;
        m.shipment_id = ref;
        m.customer_id = key;
        m.changed_at = rt_clock_now_ms ();
        return rt_envelope_new ("ShipmentStatusChanged", key, &m.base, "test_bus_consumer");
    }
    default: {
        Retain__V1__CustomerUpserted m = RETAIN__V1__CUSTOMER_UPSERTED__INIT;
        m.customer_id = key;
        m.name = ref;
        return rt_envelope_new ("CustomerUpserted", key, &m.base, "test_bus_consumer");
    }
    }
}

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    s_producer_t *p = arg;
    if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED)
        atomic_fetch_add (&p->refused, 1);
    else
        atomic_fetch_add (&p->acked, 1);
}

/* Produces p->total events at p->rate a second with at most S_WINDOW
 * unacknowledged. */
static void *
s_produce (void *arg)
{
    s_producer_t *p = arg;
    char err[256];
    int64_t start = rt_test_now_ms (), deadline = start + 300000;
    size_t i = 0;
    rt_producer_t *producer = rt_producer_new (p->ingress, NULL, err, sizeof err);

    if (!producer) {
        snprintf (p->error, sizeof p->error, "producer: %s", err);
        atomic_store (&p->done, true);
        return NULL;
    }
    while (!atomic_load (&p->stop) && (i < p->total || rt_producer_pending (producer) > 0)) {
        size_t due = (size_t)(rt_test_now_ms () - start) * p->rate / 1000;
        while (i < p->total && i < due && rt_producer_pending (producer) < S_WINDOW) {
            Retain__V1__Envelope *env = s_event (i);
            if (!env || rt_producer_post (producer, env) != 0) {
                snprintf (p->error, sizeof p->error, "cannot post event %zu", i);
                rt_envelope_free (env);
                goto done;
            }
            snprintf (p->ids[i], sizeof p->ids[i], "%s", env->id);
            rt_envelope_free (env);
            i++;
        }
        if (rt_producer_poll (producer, 10, s_on_ack, p) < 0) {
            snprintf (p->error, sizeof p->error, "producer poll failed");
            break;
        }
        if (rt_test_now_ms () > deadline) {
            snprintf (p->error, sizeof p->error, "timeout: %zu posted, %zu acknowledged", i,
                      atomic_load (&p->acked));
            break;
        }
    }
done:
    rt_producer_destroy (&producer);
    atomic_store (&p->done, true);
    return NULL;
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    if (!f)
        return -1;
    f->producer.ids = calloc (S_EVENTS, sizeof *f->producer.ids);
    f->producer.total = S_EVENTS;
    f->producer.rate = S_RATE;
    if (!f->producer.ids) {
        free (f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    int i;
    if (f->thread_started) {
        atomic_store (&f->producer.stop, true);
        pthread_join (f->thread, NULL);
    }
    for (i = 0; i < S_REPLICAS; i++) {
        if (f->replica[i] > 0)
            rt_test_kill (f->replica[i], SIGKILL);
    }
    if (f->busd > 0)
        rt_test_kill (f->busd, SIGKILL);
    if (f->pg)
        PQfinish (f->pg);
    free (f->producer.ids);
    free (f);
    return 0;
}

/* Stops a child with SIGTERM and fails unless it exits 0 (under ASan a
 * leak or a memory error makes the exit status non-zero). */
static void
s_stop_clean (pid_t *pid, const char *what)
{
    int status = rt_test_kill (*pid, SIGTERM);
    *pid = 0;
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        RT_TEST_FAIL ("%s did not stop cleanly on SIGTERM (wait status 0x%x, see %s/%s.log)", what,
                      status, rt_test_dir (), what);
}

static void
s_start_busd (s_fixture_t *f)
{
    char ingress[64], admin[64];
    f->busd_admin = rt_test_free_port ();
    snprintf (ingress, sizeof ingress, "tcp://127.0.0.1:%d", rt_test_free_port ());
    snprintf (f->pub, sizeof f->pub, "tcp://127.0.0.1:%d", rt_test_free_port ());
    snprintf (admin, sizeof admin, "127.0.0.1:%d", f->busd_admin);
    snprintf (f->producer.ingress, sizeof f->producer.ingress, "%s", ingress);
    char *argv[] = {"retain-busd", "--pg-dsn", f->dsn,    "--ingress", ingress,
                    "--pub",       f->pub,     "--admin", admin,       NULL};
    f->busd = rt_test_spawn ("retain-busd", argv, NULL, "consumer-busd.log");
    if (!rt_test_wait_ready (f->busd_admin, 60000))
        RT_TEST_FAIL ("retain-busd not ready within 60 s (see %s/consumer-busd.log)",
                      rt_test_dir ());
}

/* Starts replica i on a fresh admin port (batch "1": the set-based
 * handler; fail_key: events it fails, "" for none) and waits until it
 * owns a partition. */
static void
s_start_replica_as (s_fixture_t *f, int i, const char *batch, const char *fail_key)
{
    char admin[64], log[64];
    f->admin[i] = rt_test_free_port ();
    snprintf (admin, sizeof admin, "127.0.0.1:%d", f->admin[i]);
    snprintf (log, sizeof log, "consumer-%s.log", s_names[i]);
    char *argv[] = {"helper_consumer", "--pg-dsn",         f->dsn,         "--group", S_GROUP,
                    "--name",          (char *)s_names[i], "--pub",        f->pub,    "--streams",
                    S_STREAMS,         "--outbox-every",   S_OUTBOX_EVERY, "--batch", (char *)batch,
                    "--fail-key",      (char *)fail_key,   "--admin",      admin,     NULL};
    f->replica[i] = rt_test_spawn (S_HELPER, argv, NULL, log);
    if (!rt_test_wait_ready (f->admin[i], 60000))
        RT_TEST_FAIL ("replica %s owns no partition within 60 s (see %s/%s)", s_names[i],
                      rt_test_dir (), log);
}

/* Replica i as the kill test runs it: r1 one event at a time, r2 a round
 * at once. */
static void
s_start_replica (s_fixture_t *f, int i)
{
    s_start_replica_as (f, i, i == 1 ? "1" : "0", "");
}

static int
s_owned (const s_fixture_t *f, int i)
{
    return (int)rt_test_metric (f->admin[i],
                                "retain_consumer_partitions_owned{group=\"" S_GROUP "\"}");
}

/* Waits until the live replicas own every partition between them, each
 * at least one when both run. */
static void
s_wait_shared (const s_fixture_t *f, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    int owned[S_REPLICAS];
    for (;;) {
        int total = 0, i;
        bool each = true;
        for (i = 0; i < S_REPLICAS; i++) {
            owned[i] = f->replica[i] > 0 ? s_owned (f, i) : 0;
            total += owned[i];
            each = each && (f->replica[i] <= 0 || owned[i] > 0);
        }
        if (total == S_PARTITIONS && each)
            return;
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("partitions not shared within %d ms: %s owns %d, %s owns %d of %d",
                          timeout_ms, s_names[0], owned[0], s_names[1], owned[1], S_PARTITIONS);
        usleep (100000);
    }
}

static long long
s_consumed (PGconn *pg)
{
    return rt_test_pg_long (
        pg, "SELECT coalesce(sum(pseq), 0) FROM bus.offsets WHERE grp = '" S_GROUP "'");
}

/* Waits until the group has committed n events. */
static void
s_wait_consumed (s_fixture_t *f, long long n, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    while (s_consumed (f->pg) < n) {
        if (atomic_load (&f->producer.done) && f->producer.error[0])
            RT_TEST_FAIL ("producer stopped at %zu acknowledged: %s",
                          atomic_load (&f->producer.acked), f->producer.error);
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("the group committed only %lld of %lld events within %d ms",
                          s_consumed (f->pg), n, timeout_ms);
        usleep (20000);
    }
}

static long long
s_lag (PGconn *pg)
{
    return rt_test_pg_long (
        pg, "SELECT coalesce(sum(c.pseq - o.pseq), 0) FROM bus.counters c "
            "JOIN bus.offsets o ON o.grp = '" S_GROUP "' AND o.stream = "
            "c.stream AND o.partition = c.partition WHERE c.stream = ANY(" S_STREAMS_SQL ")");
}

/* SIGKILLs replica `victim` while events flow and checks that the other
 * takes over each of its partitions under a higher epoch; then starts it
 * again. */
static void
s_kill_and_restart (s_fixture_t *f, int victim)
{
    int survivor = 1 - victim;
    const char *params[1] = {s_names[victim]};
    char stream[S_PARTITIONS][32];
    int partition[S_PARTITIONS];
    long long epoch[S_PARTITIONS];
    int n, r, i;
    int64_t deadline;
    size_t produced;
    PGresult *res;

    /* The partitions the victim holds now (the last owner it claimed). */
    res = PQexecParams (f->pg,
                        "SELECT stream, partition, epoch FROM bus.offsets WHERE grp = '" S_GROUP
                        "' AND owner = $1",
                        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        RT_TEST_FAIL ("offsets: %s", PQresultErrorMessage (res));
    n = PQntuples (res);
    for (r = 0; r < n && r < S_PARTITIONS; r++) {
        snprintf (stream[r], sizeof stream[r], "%s", PQgetvalue (res, r, 0));
        partition[r] = atoi (PQgetvalue (res, r, 1));
        epoch[r] = atoll (PQgetvalue (res, r, 2));
    }
    PQclear (res);
    if (n == 0)
        RT_TEST_FAIL ("replica %s owns no partition before the kill", s_names[victim]);

    produced = atomic_load (&f->producer.acked);
    rt_test_kill (f->replica[victim], SIGKILL);
    f->replica[victim] = 0;
    print_message ("# SIGKILL %s (%d partitions) at %zu produced, %lld consumed\n", s_names[victim],
                   n, produced, s_consumed (f->pg));
    /* Otherwise the kill proves little: it must hit the group mid-stream. */
    if (produced >= S_EVENTS)
        RT_TEST_FAIL ("%s was killed after the stream ended", s_names[victim]);

    deadline = rt_test_now_ms () + 30000;
    while (s_owned (f, survivor) != S_PARTITIONS) {
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("%s owns %d of %d partitions 30 s after %s died", s_names[survivor],
                          s_owned (f, survivor), S_PARTITIONS, s_names[victim]);
        usleep (50000);
    }
    for (i = 0; i < n; i++) {
        char part[16];
        const char *p[2] = {stream[i], part};
        snprintf (part, sizeof part, "%d", partition[i]);
        res = PQexecParams (f->pg,
                            "SELECT owner, epoch FROM bus.offsets WHERE grp = '" S_GROUP
                            "' AND stream = $1 AND partition = $2::int",
                            2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus (res) != PGRES_TUPLES_OK || PQntuples (res) != 1)
            RT_TEST_FAIL ("offsets: %s", PQresultErrorMessage (res));
        if (strcmp (PQgetvalue (res, 0, 0), s_names[survivor]) != 0 ||
            atoll (PQgetvalue (res, 0, 1)) <= epoch[i])
            RT_TEST_FAIL ("%s.%d: owner %s epoch %s after %s died (was epoch %lld)", stream[i],
                          partition[i], PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1),
                          s_names[victim], epoch[i]);
        PQclear (res);
    }
    s_start_replica (f, victim);
    s_wait_shared (f, 30000);
}

/* Loads the produced ids into a temporary table `produced`. */
static void
s_load_produced (s_fixture_t *f)
{
    PGresult *res;
    size_t i;
    rt_test_pg_exec (f->pg, "CREATE TEMP TABLE produced (id uuid NOT NULL)");
    res = PQexec (f->pg, "COPY produced (id) FROM STDIN");
    if (PQresultStatus (res) != PGRES_COPY_IN)
        RT_TEST_FAIL ("copy: %s", PQresultErrorMessage (res));
    PQclear (res);
    for (i = 0; i < S_EVENTS; i++) {
        char line[48];
        int len = snprintf (line, sizeof line, "%s\n", f->producer.ids[i]);
        if (PQputCopyData (f->pg, line, len) != 1)
            RT_TEST_FAIL ("copy: %s", PQerrorMessage (f->pg));
    }
    if (PQputCopyEnd (f->pg, NULL) != 1)
        RT_TEST_FAIL ("copy: %s", PQerrorMessage (f->pg));
    res = PQgetResult (f->pg);
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        RT_TEST_FAIL ("copy: %s", PQresultErrorMessage (res));
    PQclear (res);
    while ((res = PQgetResult (f->pg)) != NULL)
        PQclear (res);
}

static void
test_group_survives_replica_kills (void **state)
{
    s_fixture_t *f = *state;
    /* Kills when the group has committed this many events. */
    static const long long kill_at[S_KILLS] = {15000, 37500, 60000};
    static const int victims[S_KILLS] = {1, 0, 1};
    int64_t t0 = rt_test_now_ms (), deadline;
    long long expected;
    int k, i;

    rt_test_db_create ("bus_consumer", f->dsn, sizeof f->dsn);
    f->pg = rt_test_pg (f->dsn);
    /* No unique constraint: an event handled twice must show, not fail. */
    rt_test_pg_exec (f->pg, "CREATE TABLE effects (id uuid NOT NULL, stream text NOT NULL, "
                            "partition int NOT NULL, pseq bigint NOT NULL, replica text NOT NULL)");
    s_start_busd (f);
    for (i = 0; i < S_REPLICAS; i++)
        s_start_replica (f, i);
    s_wait_shared (f, 30000);

    if (pthread_create (&f->thread, NULL, s_produce, &f->producer) != 0)
        RT_TEST_FAIL ("pthread_create failed");
    f->thread_started = true;
    for (k = 0; k < S_KILLS; k++) {
        s_wait_consumed (f, kill_at[k], 120000);
        s_kill_and_restart (f, victims[k]);
    }
    pthread_join (f->thread, NULL);
    f->thread_started = false;
    if (f->producer.error[0])
        RT_TEST_FAIL ("producer: %s", f->producer.error);
    assert_int_equal (atomic_load (&f->producer.refused), 0);
    assert_int_equal (atomic_load (&f->producer.acked), S_EVENTS);
    print_message ("# produced %d events in %.1f s\n", S_EVENTS,
                   (double)(rt_test_now_ms () - t0) / 1000);

    /* The group's offsets reach the heads of the log. */
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT sum(pseq) FROM bus.counters WHERE stream = "
                                              "ANY(" S_STREAMS_SQL ")"),
                      S_EVENTS);
    deadline = rt_test_now_ms () + 180000;
    while (s_lag (f->pg) > 0) {
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("the group is still %lld events behind after 180 s", s_lag (f->pg));
        usleep (200000);
    }
    /* busd drains what the handlers left in the outbox. */
    deadline = rt_test_now_ms () + 60000;
    while (rt_test_pg_long (f->pg, "SELECT count(*) FROM outbox.pending") > 0) {
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("outbox.pending not drained within 60 s");
        usleep (100000);
    }
    print_message ("# consumed in %.1f s\n", (double)(rt_test_now_ms () - t0) / 1000);

    /* Each event exactly once. */
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM effects"), S_EVENTS);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(DISTINCT id) FROM effects"), S_EVENTS);
    /* Every produced event, at the position the log gave it. */
    s_load_produced (f);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(DISTINCT id) FROM produced"), S_EVENTS);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM produced p WHERE NOT EXISTS "
                                              "(SELECT 1 FROM effects e WHERE e.id = p.id)"),
                      0);
    assert_int_equal (rt_test_pg_long (f->pg,
                                       "SELECT count(*) FROM effects f JOIN bus.events e ON "
                                       "e.stream = f.stream AND e.partition = f.partition AND "
                                       "e.pseq = f.pseq AND e.id = f.id"),
                      S_EVENTS);
    /* No pseq missing in any partition: 1 .. head, each once. */
    assert_int_equal (
        rt_test_pg_long (f->pg,
                         "SELECT count(*) FROM bus.counters c WHERE c.stream = ANY(" S_STREAMS_SQL
                         ") AND c.pseq <> (SELECT count(DISTINCT f.pseq) FROM effects f "
                         "WHERE f.stream = c.stream AND f.partition = c.partition AND "
                         "f.pseq BETWEEN 1 AND c.pseq)"),
        0);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM bus.counters WHERE stream = "
                                              "ANY(" S_STREAMS_SQL ") AND pseq > 0"),
                      S_PARTITIONS);
    /* Both replicas did part of the work. */
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(DISTINCT replica) FROM effects"),
                      S_REPLICAS);

    /* The handler's outbox events: one per answered event, each in the log
     * exactly once. */
    expected = rt_test_pg_long (f->pg, "SELECT sum(pseq / " S_OUTBOX_EVERY ") FROM bus.counters "
                                       "WHERE stream = ANY(" S_STREAMS_SQL ")");
    assert_true (expected > 0);
    assert_int_equal (
        rt_test_pg_long (f->pg, "SELECT count(*) FROM bus.events WHERE stream = 'notification'"),
        expected);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(DISTINCT correlation_id) FROM "
                                              "bus.events WHERE stream = 'notification'"),
                      expected);
    assert_int_equal (rt_test_pg_long (f->pg, s_sql_unanswered), 0);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM outbox.rejected"), 0);

    for (i = 0; i < S_REPLICAS; i++) {
        char what[32];
        snprintf (what, sizeof what, "consumer-%s", s_names[i]);
        s_stop_clean (&f->replica[i], what);
    }
    s_stop_clean (&f->busd, "consumer-busd");
    print_message ("# total %.1f s\n", (double)(rt_test_now_ms () - t0) / 1000);
}

#define S_FAIL_EVENTS 3000
#define S_FAIL_KEY    "customer-007"
/* The events of partitions that hold a bad key's event. */
#define S_SQL_BAD_PARTS                                                                            \
    "(SELECT DISTINCT stream, partition FROM bus.events WHERE key = '" S_FAIL_KEY "')"

static void
test_set_handler_failure_stays_in_its_partition (void **state)
{
    s_fixture_t *f = *state;
    int64_t deadline;
    long long good;

    rt_test_db_create ("bus_consumer_fail", f->dsn, sizeof f->dsn);
    f->pg = rt_test_pg (f->dsn);
    rt_test_pg_exec (f->pg, "CREATE TABLE effects (id uuid NOT NULL, stream text NOT NULL, "
                            "partition int NOT NULL, pseq bigint NOT NULL, replica text NOT NULL)");
    s_start_busd (f);
    s_start_replica_as (f, 0, "1", S_FAIL_KEY);
    f->producer.total = S_FAIL_EVENTS;
    f->producer.rate = 3000;
    if (pthread_create (&f->thread, NULL, s_produce, &f->producer) != 0)
        RT_TEST_FAIL ("pthread_create failed");
    f->thread_started = true;
    pthread_join (f->thread, NULL);
    f->thread_started = false;
    if (f->producer.error[0])
        RT_TEST_FAIL ("producer: %s", f->producer.error);
    assert_int_equal (atomic_load (&f->producer.acked), S_FAIL_EVENTS);

    /* Every event of the other partitions lands, each once. */
    good = rt_test_pg_long (f->pg,
                            "SELECT count(*) FROM bus.events e WHERE e.stream = ANY(" S_STREAMS_SQL
                            ") AND (e.stream, e.partition) NOT IN " S_SQL_BAD_PARTS);
    assert_true (good > S_FAIL_EVENTS / 2);
    deadline = rt_test_now_ms () + 60000;
    while (rt_test_pg_long (f->pg, "SELECT count(*) FROM effects f WHERE (f.stream, f.partition)"
                                   " NOT IN " S_SQL_BAD_PARTS) < good) {
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("the good partitions' events did not all land within 60 s: %lld of %lld",
                          rt_test_pg_long (f->pg,
                                           "SELECT count(*) FROM effects f WHERE"
                                           " (f.stream, f.partition) NOT IN " S_SQL_BAD_PARTS),
                          good);
        usleep (200000);
    }
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(DISTINCT id) FROM effects f WHERE"
                                              " (f.stream, f.partition) NOT IN " S_SQL_BAD_PARTS),
                      good);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM effects f WHERE"
                                              " (f.stream, f.partition) NOT IN " S_SQL_BAD_PARTS),
                      good);
    /* The bad events never, and the failures counted. */
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM effects f JOIN bus.events e"
                                              " ON e.id = f.id WHERE e.key = '" S_FAIL_KEY "'"),
                      0);
    assert_true (rt_test_metric (f->admin[0],
                                 "retain_consumer_handler_failures_total{group=\"" S_GROUP
                                 "\"}") > 0);
    s_stop_clean (&f->replica[0], "consumer-r1");
    s_stop_clean (&f->busd, "consumer-busd");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_group_survives_replica_kills, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_set_handler_failure_stays_in_its_partition, s_setup,
                                         s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
