/*
 * Gap recovery: a consumer whose SUB socket keeps only a handful of
 * messages (rcvhwm 4) and whose handler is slow cannot keep up with what
 * retain-busd publishes, so live messages are dropped on the way (busd's
 * PUB never blocks; the test gives it a small high-water mark). The
 * consumer notices each jump in pseq and reads what it missed from the
 * log: the effect table still holds every event exactly once, and
 * retain_consumer_gaps_total shows that recovery really ran.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_clock.h"
#include "rt_bus.h"
#include "rt_producer.h"
#include "rt_test.h"
#include "retain/v1/message.pb-c.h"

#define S_EVENTS     20000
#define S_WINDOW     2000 /* envelopes in flight */
#define S_KEYS       64   /* conversations */
#define S_TEXT       2000 /* bytes of message text: fills socket buffers sooner */
#define S_RCVHWM     "4"
#define S_PUB_HWM    "16" /* busd's PUB, per subscriber */
#define S_SLEEP_US   "200"
#define S_GROUP      "gaps"
#define S_PARTITIONS 16
#define S_HELPER     RT_TEST_BIN_DIR "/../tests/helper_consumer"

/* Everything a failing test must clean up. */
typedef struct {
    char dsn[1024];    /* the test's database */
    PGconn *pg;        /* the test's connection */
    pid_t busd;        /* 0 when not running */
    pid_t replica;     /* 0 when not running */
    int replica_admin; /* its admin port */
    char (*ids)[40];   /* produced envelope ids */
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    if (!f)
        return -1;
    f->ids = calloc (S_EVENTS, sizeof *f->ids);
    if (!f->ids) {
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
    if (f->replica > 0)
        rt_test_kill (f->replica, SIGKILL);
    if (f->busd > 0)
        rt_test_kill (f->busd, SIGKILL);
    if (f->pg)
        PQfinish (f->pg);
    free (f->ids);
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

static size_t s_acked;   /* answered OK or DUPLICATE */
static size_t s_refused; /* answered REJECTED */

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    (void)arg;
    if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED)
        s_refused++;
    else
        s_acked++;
}

/* Produces S_EVENTS chat messages as fast as busd takes them. */
static void
s_produce (s_fixture_t *f, const char *ingress)
{
    char err[256], key[32], text[S_TEXT + 1];
    int64_t deadline = rt_test_now_ms () + 120000;
    size_t i = 0;
    rt_producer_t *producer = rt_producer_new (ingress, NULL, err, sizeof err);

    if (!producer)
        RT_TEST_FAIL ("producer: %s", err);
    memset (text, 'x', S_TEXT);
    text[S_TEXT] = '\0';
    while (i < S_EVENTS || rt_producer_pending (producer) > 0) {
        while (i < S_EVENTS && rt_producer_pending (producer) < S_WINDOW) {
            Retain__V1__InboundMessage m = RETAIN__V1__INBOUND_MESSAGE__INIT;
            Retain__V1__Envelope *env;
            snprintf (key, sizeof key, "conversation-%02zu", i % S_KEYS);
            m.inbox = "test";
            m.external_id = key;
            m.text = text;
            m.sent_at = rt_clock_now_ms ();
            env = rt_envelope_new ("InboundMessage", key, &m.base, "test_bus_gaps");
            if (!env || rt_producer_post (producer, env) != 0) {
                rt_envelope_free (env);
                rt_producer_destroy (&producer);
                RT_TEST_FAIL ("cannot post event %zu", i);
            }
            snprintf (f->ids[i], sizeof f->ids[i], "%s", env->id);
            rt_envelope_free (env);
            i++;
        }
        if (rt_producer_poll (producer, 50, s_on_ack, NULL) < 0 || rt_test_now_ms () > deadline) {
            rt_producer_destroy (&producer);
            RT_TEST_FAIL ("producing: %zu posted, %zu acknowledged", i, s_acked);
        }
    }
    rt_producer_destroy (&producer);
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
        int len = snprintf (line, sizeof line, "%s\n", f->ids[i]);
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
test_slow_subscriber_recovers_gaps_from_the_log (void **state)
{
    s_fixture_t *f = *state;
    char ingress[64], pub[64], busd_admin[64], admin[64];
    int busd_port = rt_test_free_port ();
    int64_t t0 = rt_test_now_ms (), deadline;
    double gaps, handled;

    rt_test_db_create ("bus_gaps", f->dsn, sizeof f->dsn);
    f->pg = rt_test_pg (f->dsn);
    /* No unique constraint: an event handled twice must show, not fail. */
    rt_test_pg_exec (f->pg, "CREATE TABLE effects (id uuid NOT NULL, stream text NOT NULL, "
                            "partition int NOT NULL, pseq bigint NOT NULL, replica text NOT NULL)");

    snprintf (ingress, sizeof ingress, "tcp://127.0.0.1:%d", rt_test_free_port ());
    snprintf (pub, sizeof pub, "tcp://127.0.0.1:%d", rt_test_free_port ());
    snprintf (busd_admin, sizeof busd_admin, "127.0.0.1:%d", busd_port);
    /* busd's PUB holds 64k events per subscriber by default, more than this
     * test sends: a small mark makes it drop as it does under a real
     * overload. */
    char *busd_argv[] = {"retain-busd", "--pg-dsn", f->dsn,     "--ingress", ingress,   "--pub",
                         pub,           "--admin",  busd_admin, "--pub-hwm", S_PUB_HWM, NULL};
    f->busd = rt_test_spawn ("retain-busd", busd_argv, NULL, "gaps-busd.log");
    if (!rt_test_wait_ready (busd_port, 60000))
        RT_TEST_FAIL ("retain-busd not ready within 60 s (see %s/gaps-busd.log)", rt_test_dir ());

    f->replica_admin = rt_test_free_port ();
    snprintf (admin, sizeof admin, "127.0.0.1:%d", f->replica_admin);
    char *argv[] = {"helper_consumer", "--pg-dsn", f->dsn,   "--group",    S_GROUP,
                    "--name",          "slow",     "--pub",  pub,          "--streams",
                    "message",         "--rcvhwm", S_RCVHWM, "--sleep-us", S_SLEEP_US,
                    "--admin",         admin,      NULL};
    f->replica = rt_test_spawn (S_HELPER, argv, NULL, "gaps-consumer.log");
    if (!rt_test_wait_ready (f->replica_admin, 60000))
        RT_TEST_FAIL ("consumer owns no partition within 60 s (see %s/gaps-consumer.log)",
                      rt_test_dir ());

    s_produce (f, ingress);
    assert_int_equal (s_refused, 0);
    assert_int_equal (s_acked, S_EVENTS);
    print_message ("# produced %d events in %.1f s\n", S_EVENTS,
                   (double)(rt_test_now_ms () - t0) / 1000);

    deadline = rt_test_now_ms () + 150000;
    while (rt_test_pg_long (f->pg, "SELECT coalesce(sum(pseq), 0) FROM bus.offsets WHERE grp = "
                                   "'" S_GROUP "'") < S_EVENTS) {
        if (rt_test_now_ms () > deadline)
            RT_TEST_FAIL ("the consumer has not caught up with the log after 150 s");
        usleep (200000);
    }
    print_message ("# consumed in %.1f s\n", (double)(rt_test_now_ms () - t0) / 1000);

    /* Each event exactly once, at the position the log gave it. */
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM effects"), S_EVENTS);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(DISTINCT id) FROM effects"), S_EVENTS);
    s_load_produced (f);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM produced p WHERE NOT EXISTS "
                                              "(SELECT 1 FROM effects e WHERE e.id = p.id)"),
                      0);
    assert_int_equal (rt_test_pg_long (f->pg,
                                       "SELECT count(*) FROM effects f JOIN bus.events e ON "
                                       "e.stream = f.stream AND e.partition = f.partition AND "
                                       "e.pseq = f.pseq AND e.id = f.id"),
                      S_EVENTS);
    assert_int_equal (rt_test_pg_long (f->pg, "SELECT count(*) FROM bus.counters c WHERE c.stream "
                                              "= 'message' AND c.pseq <> (SELECT count(DISTINCT "
                                              "f.pseq) FROM effects f WHERE f.stream = c.stream "
                                              "AND f.partition = c.partition AND f.pseq BETWEEN 1 "
                                              "AND c.pseq)"),
                      0);

    /* Live delivery really lost messages, and the log made up for them. */
    gaps = rt_test_metric (f->replica_admin, "retain_consumer_gaps_total{group=\"" S_GROUP "\"}");
    handled =
        rt_test_metric (f->replica_admin, "retain_consumer_events_total{group=\"" S_GROUP "\"}");
    print_message ("# %.0f gaps recovered\n", gaps);
    assert_true (gaps > 0);
    assert_true (handled == S_EVENTS);

    s_stop_clean (&f->replica, "gaps-consumer");
    s_stop_clean (&f->busd, "gaps-busd");
    print_message ("# total %.1f s\n", (double)(rt_test_now_ms () - t0) / 1000);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_slow_subscriber_recovers_gaps_from_the_log, s_setup,
                                         s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
