/*
 * The log's other doors and its housekeeping: the outbox drains into the
 * log (NOTIFY-driven, rejected rows set aside, replays de-duplicated), and
 * retention drops old partitions only once every consumer group has
 * consumed them.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_bus.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "retain/v1/loyalty.pb-c.h"

static long long
s_wait_count (PGconn *conn, const char *sql, long long want, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    long long n = rt_test_pg_long (conn, sql);
    while (n != want && rt_test_now_ms () < deadline) {
        usleep (20000);
        n = rt_test_pg_long (conn, sql);
    }
    return n;
}

static double
s_wait_metric (int port, const char *series, double want, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    double v = rt_test_metric (port, series);
    while (v < want && rt_test_now_ms () < deadline) {
        usleep (20000);
        v = rt_test_metric (port, series);
    }
    return v;
}

static void
test_outbox_drains (void **state)
{
    (void)state;
    char dsn[1024];
    rt_test_busd_t busd;
    /* A long poll interval: only NOTIFY can make the drain quick. */
    const char *extra[] = {"--outbox-poll=60s", NULL};
    rt_db_t *db;
    PGconn *conn;
    Retain__V1__Envelope *envs[50];
    int64_t t0;
    int i, status;

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_outbox", dsn, sizeof dsn);
    rt_test_busd_start (&busd, dsn, "outbox-busd.log", extra, true);
    db = rt_db_new (dsn, "outbox-test");
    assert_int_equal (rt_db_connect (db), 0);
    conn = rt_test_pg (dsn);

    /* A service's transaction: its own change and its events, together. */
    assert_int_equal (rt_db_begin (db), 0);
    for (i = 0; i < 50; i++) {
        Retain__V1__PointsEarned points = RETAIN__V1__POINTS_EARNED__INIT;
        char customer[32];
        snprintf (customer, sizeof customer, "customer-%d", i % 7);
        points.customer_id = customer;
        points.points = 10 * i;
        envs[i] = rt_envelope_new ("PointsEarned", customer, &points.base, "outbox-test");
        assert_int_equal (rt_outbox_append (db, envs[i]), 0);
    }
    /* Not yet committed: nothing may reach the log. */
    usleep (300000);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"), 0);
    t0 = rt_test_now_ms ();
    assert_int_equal (rt_db_commit (db), 0);
    assert_int_equal (s_wait_count (conn, "SELECT count(*) FROM bus.events", 50, 5000), 50);
    print_message ("outbox drained %lld ms after commit\n", (long long)(rt_test_now_ms () - t0));
    assert_true (rt_test_now_ms () - t0 < 5000);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM outbox.pending"), 0);

    /* A handler replayed after a crash writes the same envelopes again:
     * still one event each. A row that is not an envelope is set aside. */
    assert_int_equal (rt_db_begin (db), 0);
    for (i = 0; i < 10; i++)
        assert_int_equal (rt_outbox_append (db, envs[i]), 0);
    assert_int_equal (
        rt_db_exec (db, "INSERT INTO outbox.pending (envelope) VALUES ('\\xdeadbeef')"), 0);
    assert_int_equal (rt_db_commit (db), 0);
    assert_int_equal (s_wait_count (conn, "SELECT count(*) FROM outbox.pending", 0, 5000), 0);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"), 50);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM outbox.rejected"), 1);
    /* Metrics move right after COMMIT, a moment after the rows do. */
    assert_true (s_wait_metric (busd.admin_port, "retain_bus_outbox_rejected_total", 1, 2000) == 1);
    assert_true (s_wait_metric (busd.admin_port, "retain_bus_duplicates_total", 10, 2000) >= 10);
    /* Events of one customer keep their outbox order. */
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM (SELECT key, pseq, seq, "
                                             "lag(seq) OVER (PARTITION BY stream, partition "
                                             "ORDER BY pseq) AS prev FROM bus.events) e "
                                             "WHERE prev > seq"),
                      0);

    for (i = 0; i < 50; i++)
        rt_envelope_free (envs[i]);
    rt_db_destroy (&db);
    PQfinish (conn);
    status = rt_test_kill (busd.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_retention_waits_for_consumers (void **state)
{
    (void)state;
    char dsn[1024];
    rt_test_busd_t busd;
    const char *extra[] = {"--retention=1d", "--housekeeping=200ms", NULL};
    PGconn *conn;
    int status;

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_retention", dsn, sizeof dsn);
    conn = rt_test_pg (dsn);
    /* Prepare the schema with busd, then stop it to plant old history. */
    rt_test_busd_start (&busd, dsn, "retention-busd.log", NULL, true);
    rt_test_kill (busd.pid, SIGTERM);
    rt_test_pg_exec (conn, "SELECT bus.ensure_partitions(current_date - 30, 1)");
    rt_test_pg_exec (conn, "INSERT INTO bus.events VALUES (1, 'order', 3, 1, "
                           "bus.uuid_v7_floor((current_date - 30)::timestamp AT TIME ZONE 'UTC' "
                           "+ interval '1 hour'), 'OrderPlaced', 'k', 0, 'p', '', '', "
                           "now() - interval '30 days')");
    rt_test_pg_exec (conn,
                     "UPDATE bus.counters SET pseq = 1 WHERE stream = 'order' AND partition = 3");
    rt_test_pg_exec (conn, "UPDATE bus.state SET seq = 1");
    /* A group that has not consumed it yet. */
    rt_test_pg_exec (conn, "INSERT INTO bus.offsets (grp, stream, partition, pseq) "
                           "VALUES ('loyalty', 'order', 3, 0)");
    busd.pid = 0;
    rt_test_busd_start (&busd, dsn, "retention-busd.log", extra, true);
    usleep (800000);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM pg_class WHERE relname = "
                                             "'events_' || to_char(current_date - 30, 'YYYYMMDD')"),
                      1);
    /* Partitions exist ahead of today, so appends never miss their day. */
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM pg_class WHERE relname = "
                                             "'events_' || to_char(current_date + 2, 'YYYYMMDD')"),
                      1);
    /* Once the group has consumed it, the expired partition goes. */
    rt_test_pg_exec (conn, "UPDATE bus.offsets SET pseq = 1 WHERE grp = 'loyalty'");
    assert_int_equal (s_wait_count (conn,
                                    "SELECT count(*) FROM pg_class WHERE relname = 'events_' || "
                                    "to_char(current_date - 30, 'YYYYMMDD')",
                                    0, 5000),
                      0);
    /* Today's partition (inside the window) stays. */
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM pg_class WHERE relname = "
                                             "'events_' || to_char(now() AT TIME ZONE 'UTC', "
                                             "'YYYYMMDD')"),
                      1);
    PQfinish (conn);
    status = rt_test_kill (busd.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_outbox_drains),
        cmocka_unit_test (test_retention_waits_for_consumers),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
