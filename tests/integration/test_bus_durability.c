/*
 * Nothing acknowledged is lost, nothing is written twice, pseq has no gaps:
 * four producers send 50,000 events each while something is killed three
 * times:
 *   - retain-busd itself, restarted each time;
 *   - busd's PostgreSQL backend, caught in the act by pg_stat_activity:
 *     once while its batch's COPY runs and twice while its COMMIT does,
 *     so the commit's answer is lost whether or not it reached the WAL
 *     (s_kill_backend says how).
 * Every acknowledgement must name the place its event has in the log.
 *
 * The test proves its kills hit load: at each kill the producers had
 * events posted and not yet acknowledged and events still to post, and
 * acknowledgements came between every two kills and after the last. Every
 * wait has a deadline, so a busd that stops making progress fails the test
 * with what it had reached instead of hanging it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "rt_bus.h"
#include "rt_producer.h"
#include "rt_test.h"
#include "retain/v1/order.pb-c.h"

#define PRODUCERS    4
#define PER_PRODUCER 50000
#define WINDOW       2000
#define KILLS        3
/* A healthy run takes seconds; this is far beyond it, inside ctest's TIMEOUT. */
#define DEADLINE_MS 300000

/* Kills so far: bumped just before each SIGKILL. */
static atomic_int s_generation;
/* Acknowledgements before the first kill, between kills, after the last. */
static atomic_long s_acked_in[KILLS + 1];
/* When producers give up and the main thread stops waiting. */
static int64_t s_deadline;

/* An acknowledgement: the id and the place busd gave it. */
typedef struct {
    char id[40];
    unsigned long long seq, pseq;
    unsigned partition;
} s_ack_t;

typedef struct {
    int index;            /* producer number */
    const char *endpoint; /* busd ingress */
    s_ack_t *acked;       /* acknowledged, in ack order */
    size_t nacked;        /* their count */
    size_t duplicates;    /* acks that said DUPLICATE */
    size_t rejected;      /* acks that said REJECTED (must stay 0) */
    atomic_int failed;    /* the producer could not run; 2: out of time */
    atomic_long posted;   /* events posted so far, read by the main thread */
    atomic_long answered; /* acks so far (nacked + rejected), read likewise */
} s_producer_t;

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    s_producer_t *p = arg;
    int generation = atomic_load (&s_generation);
    atomic_fetch_add (&p->answered, 1);
    if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED) {
        p->rejected++;
        return;
    }
    if (ack->status == RETAIN__V1__ACK__STATUS__DUPLICATE)
        p->duplicates++;
    atomic_fetch_add (&s_acked_in[generation < KILLS ? generation : KILLS], 1);
    snprintf (p->acked[p->nacked].id, sizeof p->acked[p->nacked].id, "%s", ack->id);
    p->acked[p->nacked].seq = (unsigned long long)ack->seq;
    p->acked[p->nacked].pseq = (unsigned long long)ack->pseq;
    p->acked[p->nacked].partition = ack->partition;
    p->nacked++;
}

static void *
s_produce (void *arg)
{
    s_producer_t *p = arg;
    char err[256];
    rt_producer_t *producer = rt_producer_new (p->endpoint, NULL, err, sizeof err);
    int sent = 0;
    if (!producer) {
        p->failed = 1;
        return NULL;
    }
    rt_producer_set_resend_ms (producer, 700);
    while (p->nacked + p->rejected < PER_PRODUCER) {
        while (sent < PER_PRODUCER && rt_producer_pending (producer) < WINDOW) {
            Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
            Retain__V1__Envelope *env;
            char key[32], order_id[32];
            snprintf (key, sizeof key, "customer-%d-%d", p->index, sent % 997);
            snprintf (order_id, sizeof order_id, "order-%d-%d", p->index, sent);
            order.order_id = order_id;
            order.customer_id = key;
            env = rt_envelope_new ("OrderPlaced", key, &order.base, "durability-test");
            if (!env || rt_producer_post (producer, env) != 0)
                p->failed = 1;
            rt_envelope_free (env);
            sent++;
            atomic_store (&p->posted, sent);
        }
        if (rt_producer_poll (producer, 50, s_on_ack, p) < 0)
            p->failed = 1;
        if (!p->failed && rt_test_now_ms () > s_deadline)
            p->failed = 2;
        if (p->failed)
            break;
    }
    rt_producer_destroy (&producer);
    return NULL;
}

static pid_t
s_start_busd (const char *dsn, const char *ingress, const char *pub, int admin_port)
{
    char a_dsn[1024], a_ingress[128], a_pub[128], a_admin[64];
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (a_ingress, sizeof a_ingress, "--ingress=%s", ingress);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", admin_port);
    char *argv[] = {"retain-busd", a_dsn, a_ingress, a_pub, a_admin, NULL};
    pid_t pid = rt_test_spawn ("retain-busd", argv, NULL, "durability-busd.log");
    if (!rt_test_wait_ready (admin_port, 30000))
        fail_msg ("retain-busd did not become ready; see %s/durability-busd.log", rt_test_dir ());
    return pid;
}

/* What a test kills: busd (restarted) or its backend. kill returns false
 * while the moment it waits for has not come (tried again shortly). */
typedef struct {
    const char *dsn, *ingress, *pub;
    int admin_port;
    pid_t busd;
    PGconn *conn; /* the test's own; reset after a crash */
    bool (*kill) (void *self, int k);
    int spread; /* kill k comes when the log holds (k + 1) / spread of the events */
} s_run_t;

/* A statement of the test's own that survives the crash restarts: on a
 * failure the connection is reset until it answers or time runs out. */
static long long
s_long (s_run_t *run, const char *sql)
{
    for (;;) {
        PGresult *res = PQexec (run->conn, sql);
        if (PQresultStatus (res) == PGRES_TUPLES_OK && PQntuples (res) == 1) {
            long long v = PQgetisnull (res, 0, 0) ? 0 : strtoll (PQgetvalue (res, 0, 0), NULL, 10);
            PQclear (res);
            return v;
        }
        PQclear (res);
        if (rt_test_now_ms () > s_deadline) {
            rt_test_kill (run->busd, SIGKILL);
            fail_msg ("%s: %s", sql, PQerrorMessage (run->conn));
        }
        usleep (100000);
        PQreset (run->conn);
    }
}

/* busd itself, with SIGKILL, and started again. */
static bool
s_kill_busd (void *arg, int k)
{
    s_run_t *run = arg;
    (void)k;
    rt_test_kill (run->busd, SIGKILL);
    run->busd = s_start_busd (run->dsn, run->ingress, run->pub, run->admin_port);
    return true;
}

/* busd's backend, caught at work and terminated (pg_terminate_backend:
 * that process alone; a SIGKILL would make the postmaster restart every
 * backend of the shared test cluster, and its crash recovery syncs the
 * whole data directory). The first kill comes while a batch's COPY runs,
 * the others while its COMMIT runs: a backend terminated there may die
 * after its commit is durable and before busd hears so, the case where a
 * false ack or a gap would show. Each stage lasts milliseconds, so
 * pg_stat_activity is watched for a while; when the watch misses it, a
 * lock held by the test (a share lock on the log, a row lock on
 * bus.state) makes busd wait inside the batch's transaction, and it is
 * terminated there. */
static bool
s_kill_backend (void *arg, int k)
{
    static const char *const running[2] = {"COPY bus.events%", "COMMIT"};
    static const char *const locks[2] = {"LOCK TABLE bus.events IN SHARE MODE",
                                         "SELECT seq FROM bus.state FOR UPDATE"};
    s_run_t *run = arg;
    int stage = k == 0 ? 0 : 1;
    PGconn *holder = NULL;
    char sql[512];
    long long pid = 0;
    int64_t watch_until = rt_test_now_ms () + 1000;

    snprintf (sql, sizeof sql,
              "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = "
              "'retain-busd' AND state = 'active' AND query LIKE '%s'",
              running[stage]);
    while (pid <= 0 && rt_test_now_ms () < watch_until)
        pid = s_long (run, sql);
    if (pid <= 0) {
        holder = rt_test_pg (run->dsn);
        rt_test_pg_exec (holder, "BEGIN");
        rt_test_pg_exec (holder, locks[stage]);
        /* Whatever statement of its transaction waits on the lock: a
         * batch's COPY or counters, or housekeeping after a reconnection. */
        snprintf (sql, sizeof sql,
                  "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = "
                  "'retain-busd' AND wait_event_type = 'Lock'");
        while ((pid = s_long (run, sql)) <= 0) {
            if (rt_test_now_ms () > s_deadline) {
                rt_test_kill (run->busd, SIGKILL);
                fail_msg ("busd never waited on the test's lock (%s)", locks[stage]);
            }
            usleep (1000);
        }
    }
    snprintf (sql, sizeof sql, "SELECT pg_terminate_backend(%lld)::int", pid);
    s_long (run, sql);
    print_message ("kill %d: busd's backend %lld, %s %s\n", k + 1, pid,
                   holder ? "held by the test's lock, the watch having missed it running"
                          : "caught running",
                   running[stage]);
    if (holder)
        PQfinish (holder);
    snprintf (sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld", pid);
    while (s_long (run, sql) > 0)
        usleep (10000);
    /* The next kill watches a busd that writes again, not one still
     * reconnecting: the log moves on first. */
    {
        long long seq = s_long (run, "SELECT seq FROM bus.state");
        while (s_long (run, "SELECT seq FROM bus.state") <= seq) {
            if (rt_test_now_ms () > s_deadline) {
                rt_test_kill (run->busd, SIGKILL);
                fail_msg ("busd wrote nothing after kill %d", k + 1);
            }
            usleep (10000);
        }
    }
    return true;
}

static void
s_run_load (s_run_t *run)
{
    s_producer_t producers[PRODUCERS];
    pthread_t threads[PRODUCERS];
    int kills = 0, i;
    size_t total = 0, duplicates = 0;
    long in_flight[KILLS], to_post[KILLS];
    char dsn[1024], ingress[64], pub[64];

    rt_test_db_create ("bus_durability", dsn, sizeof dsn);
    snprintf (ingress, sizeof ingress, "tcp://127.0.0.1:%d", rt_test_free_port ());
    snprintf (pub, sizeof pub, "tcp://127.0.0.1:%d", rt_test_free_port ());
    run->dsn = dsn;
    run->ingress = ingress;
    run->pub = pub;
    run->admin_port = rt_test_free_port ();
    run->busd = s_start_busd (dsn, ingress, pub, run->admin_port);
    run->conn = rt_test_pg (dsn);
    s_deadline = rt_test_now_ms () + DEADLINE_MS;
    atomic_store (&s_generation, 0);
    for (i = 0; i <= KILLS; i++)
        atomic_store (&s_acked_in[i], 0);

    memset (producers, 0, sizeof producers);
    for (i = 0; i < PRODUCERS; i++) {
        producers[i].index = i;
        producers[i].endpoint = ingress;
        producers[i].acked = calloc (PER_PRODUCER, sizeof *producers[i].acked);
        assert_non_null (producers[i].acked);
        assert_int_equal (pthread_create (&threads[i], NULL, s_produce, &producers[i]), 0);
    }

    /* Kill at 1, 2 and 3 spreads' worth of the log (quarters of it for
     * busd, eighths for its backend),
     * noting what the producers had in flight and still to post. */
    while (kills < KILLS) {
        long long appended = s_long (run, "SELECT seq FROM bus.state");
        if (appended >= (long long)PRODUCERS * PER_PRODUCER * (kills + 1) / run->spread) {
            long flight = 0, left = 0;
            for (i = 0; i < PRODUCERS; i++) {
                long posted = atomic_load (&producers[i].posted);
                flight += posted - atomic_load (&producers[i].answered);
                left += PER_PRODUCER - posted;
            }
            atomic_fetch_add (&s_generation, 1);
            if (run->kill (run, kills)) {
                in_flight[kills] = flight;
                to_post[kills] = left;
                kills++;
                continue;
            }
            atomic_fetch_sub (&s_generation, 1);
        }
        /* On a failure busd goes first: a stuck one spins on, loading the
         * machine after the test. */
        {
            long answered = 0;
            for (i = 0; i < PRODUCERS; i++) {
                if (atomic_load (&producers[i].failed)) {
                    rt_test_kill (run->busd, SIGKILL);
                    fail_msg ("producer %d %s after kill %d, the log at %lld events", i,
                              atomic_load (&producers[i].failed) == 2 ? "ran out of time"
                                                                      : "failed",
                              kills, appended);
                }
                answered += atomic_load (&producers[i].answered);
            }
            if (answered >= (long)PRODUCERS * PER_PRODUCER) {
                rt_test_kill (run->busd, SIGKILL);
                fail_msg ("every event was answered before kill %d, yet bus.state says %lld",
                          kills + 1, appended);
            }
        }
        if (rt_test_now_ms () > s_deadline) {
            rt_test_kill (run->busd, SIGKILL);
            fail_msg ("after kill %d the log stopped at %lld events of %d", kills, appended,
                      PRODUCERS * PER_PRODUCER);
        }
        usleep (kills < KILLS &&
                        appended >= (long long)PRODUCERS * PER_PRODUCER * (kills + 1) / run->spread
                    ? 500
                    : 20000);
    }
    for (i = 0; i < PRODUCERS; i++)
        pthread_join (threads[i], NULL);

    /* The kills landed under load: events in flight and more to come at
     * each, acknowledgements on both sides of each. */
    for (i = 0; i < KILLS; i++) {
        print_message ("kill %d: %ld events posted and not yet acknowledged, %ld still to post, "
                       "%ld acknowledged since the %s\n",
                       i + 1, in_flight[i], to_post[i], atomic_load (&s_acked_in[i]),
                       i ? "kill before" : "start");
        if (in_flight[i] <= 0 || to_post[i] <= 0)
            fail_msg ("kill %d did not land under load", i + 1);
    }
    if (atomic_load (&s_acked_in[0]) == 0)
        fail_msg ("no acknowledgement before the first kill");
    for (i = 1; i <= KILLS; i++) {
        if (atomic_load (&s_acked_in[i]) == 0)
            fail_msg ("no acknowledgement after kill %d%s", i,
                      i < KILLS ? " and before the next" : "");
    }

    for (i = 0; i < PRODUCERS; i++) {
        if (producers[i].failed == 2)
            fail_msg ("producer %d: %zu of %d acknowledged when time ran out", i,
                      producers[i].nacked, PER_PRODUCER);
        assert_int_equal (producers[i].failed, 0);
        assert_int_equal (producers[i].rejected, 0);
        assert_int_equal (producers[i].nacked, PER_PRODUCER);
        total += producers[i].nacked;
        duplicates += producers[i].duplicates;
    }
    assert_int_equal (total, PRODUCERS * PER_PRODUCER);
    /* Retries after each kill found their events already committed. */
    print_message ("acked %zu events, %zu of them as duplicates after %d kills\n", total,
                   duplicates, kills);

    /* Every acknowledged id is in the log exactly once, where its
     * acknowledgement said. */
    {
        PGconn *conn = run->conn;
        s_long (run, "SELECT 1");
        rt_test_pg_exec (conn, "CREATE TEMP TABLE acked (id uuid, seq bigint, partition int, "
                               "pseq bigint)");
        PGresult *res = PQexec (conn, "COPY acked FROM STDIN");
        assert_int_equal (PQresultStatus (res), PGRES_COPY_IN);
        PQclear (res);
        for (i = 0; i < PRODUCERS; i++) {
            for (size_t k = 0; k < producers[i].nacked; k++) {
                const s_ack_t *a = &producers[i].acked[k];
                char line[128];
                int n = snprintf (line, sizeof line, "%s\t%llu\t%u\t%llu\n", a->id, a->seq,
                                  a->partition, a->pseq);
                assert_int_equal (PQputCopyData (conn, line, n), 1);
            }
        }
        assert_int_equal (PQputCopyEnd (conn, NULL), 1);
        res = PQgetResult (conn);
        assert_int_equal (PQresultStatus (res), PGRES_COMMAND_OK);
        PQclear (res);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(DISTINCT id) FROM acked"),
                          PRODUCERS * PER_PRODUCER);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM acked a WHERE NOT EXISTS "
                                                 "(SELECT 1 FROM bus.events e WHERE e.id = a.id)"),
                          0);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM acked a JOIN bus.events e "
                                                 "USING (id) WHERE e.seq <> a.seq OR e.partition "
                                                 "<> a.partition OR e.pseq <> a.pseq"),
                          0);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"),
                          PRODUCERS * PER_PRODUCER);
        assert_int_equal (
            rt_test_pg_long (conn, "SELECT count(*) - count(DISTINCT id) FROM bus.events"), 0);
        /* pseq is 1..n in every partition, and the counters agree with the log. */
        assert_int_equal (rt_test_pg_long (conn,
                                           "SELECT count(*) FROM (SELECT stream, partition "
                                           "FROM bus.events GROUP BY 1, 2 HAVING min(pseq) <> 1 "
                                           "OR max(pseq) <> count(*) OR count(DISTINCT pseq) "
                                           "<> count(*)) g"),
                          0);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.counters c WHERE pseq "
                                                 "<> (SELECT coalesce(max(pseq), 0) FROM "
                                                 "bus.events e WHERE e.stream = c.stream AND "
                                                 "e.partition = c.partition)"),
                          0);
        /* seq is gapless too, and the stored state agrees. */
        assert_int_equal (rt_test_pg_long (conn, "SELECT max(seq) - count(*) FROM bus.events"), 0);
        assert_int_equal (rt_test_pg_long (conn, "SELECT seq FROM bus.state"),
                          PRODUCERS * PER_PRODUCER);
        assert_true (rt_test_pg_long (conn, "SELECT count(DISTINCT partition) FROM bus.events") >
                     8);
        PQfinish (conn);
    }
    {
        int status = rt_test_kill (run->busd, SIGTERM);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
    }
    for (i = 0; i < PRODUCERS; i++)
        free (producers[i].acked);
}

static void
test_kill_busd_during_load (void **state)
{
    s_run_t run = {.kill = s_kill_busd, .spread = KILLS + 1};
    (void)state;
    s_run_load (&run);
}

static void
test_kill_backend_mid_commit (void **state)
{
    /* Early kills: catching the backend at work takes a while, during
     * which the log runs on, and the last kill must still find load. */
    s_run_t run = {.kill = s_kill_backend, .spread = 2 * (KILLS + 1)};
    (void)state;
    s_run_load (&run);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_kill_busd_during_load),
        cmocka_unit_test (test_kill_backend_mid_commit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
