/*
 * busd's failure modes: a standby takes over when the writer dies, and a
 * writer that loses PostgreSQL stops acknowledging (producers see
 * timeouts, never a false ack), reconnects and resumes.
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
#include "rt_producer.h"
#include "rt_test.h"
#include "retain/v1/order.pb-c.h"

static Retain__V1__Envelope *
s_order (const char *key)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    order.order_id = "o-1";
    return rt_envelope_new ("OrderPlaced", key, &order.base, "failover-test");
}

static void
s_send_ok (rt_producer_t *producer, const char *key, int timeout_ms)
{
    char err[256];
    Retain__V1__Envelope *env = s_order (key);
    if (rt_producer_send (producer, env, timeout_ms, NULL, err, sizeof err) != 0)
        fail_msg ("send failed: %s", err);
    rt_envelope_free (env);
}

static void
test_standby_takes_over (void **state)
{
    (void)state;
    char dsn[1024], err[256];
    rt_test_busd_t a, b;
    rt_producer_t *producer;
    PGconn *conn;
    int64_t deadline;
    int i, status;

    memset (&a, 0, sizeof a);
    memset (&b, 0, sizeof b);
    rt_test_db_create ("bus_failover", dsn, sizeof dsn);
    rt_test_busd_start (&a, dsn, "failover-a.log", NULL, true);
    /* The standby shares the endpoints; only the lock holder binds them. */
    snprintf (b.ingress, sizeof b.ingress, "%s", a.ingress);
    snprintf (b.pub, sizeof b.pub, "%s", a.pub);
    rt_test_busd_start (&b, dsn, "failover-b.log", NULL, false);
    usleep (1500000);
    assert_int_equal (rt_test_http_get (b.admin_port, "/healthz", NULL, 0), 200);
    assert_int_equal (rt_test_http_get (b.admin_port, "/readyz", NULL, 0), 503);
    assert_true (rt_test_metric (b.admin_port, "retain_bus_primary") == 0);

    producer = rt_producer_new (a.ingress, NULL, err, sizeof err);
    assert_non_null (producer);
    rt_producer_set_resend_ms (producer, 300);
    for (i = 0; i < 100; i++)
        s_send_ok (producer, "before", 5000);

    /* Envelopes in flight when the writer dies are resent to the standby. */
    for (i = 0; i < 500; i++) {
        Retain__V1__Envelope *env = s_order ("during");
        assert_int_equal (rt_producer_post (producer, env), 0);
        rt_envelope_free (env);
    }
    rt_test_kill (a.pid, SIGKILL);
    deadline = rt_test_now_ms () + 30000;
    while (rt_producer_pending (producer) > 0 && rt_test_now_ms () < deadline)
        rt_producer_poll (producer, 100, NULL, NULL);
    assert_int_equal (rt_producer_pending (producer), 0);
    assert_true (rt_test_wait_ready (b.admin_port, 10000));
    assert_true (rt_test_metric (b.admin_port, "retain_bus_primary") == 1);
    for (i = 0; i < 100; i++)
        s_send_ok (producer, "after", 5000);

    conn = rt_test_pg (dsn);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"), 700);
    assert_int_equal (
        rt_test_pg_long (conn, "SELECT count(*) - count(DISTINCT id) FROM bus.events"), 0);
    assert_int_equal (rt_test_pg_long (conn, "SELECT max(seq) FROM bus.events"), 700);
    PQfinish (conn);
    rt_producer_destroy (&producer);
    status = rt_test_kill (b.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
s_admin_exec (const char *sql)
{
    char admin[1024];
    PGconn *conn;
    snprintf (admin, sizeof admin, "%s dbname=postgres", getenv ("RETAIN_TEST_PG"));
    conn = rt_test_pg (admin);
    rt_test_pg_exec (conn, sql);
    PQfinish (conn);
}

static void
test_postgres_goes_away (void **state)
{
    (void)state;
    char dsn[1024], err[256], sql[512], dbname[128];
    rt_test_busd_t busd;
    rt_producer_t *producer;
    Retain__V1__Envelope *env;
    Retain__V1__Ack ack = RETAIN__V1__ACK__INIT;
    PGconn *conn;
    int status;

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_pg_away", dsn, sizeof dsn);
    snprintf (dbname, sizeof dbname, "bus_pg_away_%d", (int)getpid ());
    rt_test_busd_start (&busd, dsn, "pg-away-busd.log", NULL, true);
    producer = rt_producer_new (busd.ingress, NULL, err, sizeof err);
    assert_non_null (producer);
    s_send_ok (producer, "before", 5000);

    /* PostgreSQL "goes away" for busd: its session is cut and the database
     * refuses new ones. */
    snprintf (sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false", dbname);
    s_admin_exec (sql);
    snprintf (sql, sizeof sql,
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
              dbname);
    s_admin_exec (sql);

    env = s_order ("during");
    /* No ack while the log cannot commit: a timeout, never a false yes. */
    assert_int_equal (rt_producer_send (producer, env, 3000, &ack, err, sizeof err), -1);
    assert_non_null (strstr (err, "timeout"));
    {
        /* Not ready, and it says why. */
        char body[512];
        assert_int_equal (rt_test_http_get (busd.admin_port, "/readyz", body, sizeof body), 503);
        if (!strstr (body, "cannot commit"))
            fail_msg ("/readyz gave no reason: \"%s\"", body);
    }
    assert_int_equal (rt_test_http_get (busd.admin_port, "/healthz", NULL, 0), 200);
    assert_int_equal (waitpid (busd.pid, &status, WNOHANG), 0); /* still running */

    snprintf (sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true", dbname);
    s_admin_exec (sql);
    /* The producer retries the same envelope (same id) and gets it in. */
    if (rt_producer_send (producer, env, 20000, &ack, err, sizeof err) != 0)
        fail_msg ("after PostgreSQL came back: %s", err);
    assert_true (rt_test_wait_ready (busd.admin_port, 5000));
    s_send_ok (producer, "after", 5000);

    conn = rt_test_pg (dsn);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"), 3);
    {
        char q[256];
        snprintf (q, sizeof q, "SELECT count(*) FROM bus.events WHERE id = '%s'", env->id);
        assert_int_equal (rt_test_pg_long (conn, q), 1);
    }
    assert_int_equal (rt_test_pg_long (conn,
                                       "SELECT max(pseq) FROM bus.events WHERE stream = "
                                       "'order' GROUP BY partition ORDER BY 1 DESC LIMIT 1") >= 1,
                      1);
    PQfinish (conn);
    rt_envelope_free (env);
    rt_producer_destroy (&producer);
    status = rt_test_kill (busd.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_standby_takes_over),
        cmocka_unit_test (test_postgres_goes_away),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
