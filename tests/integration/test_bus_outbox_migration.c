/*
 * The outbox's own schema: a database that kept its outbox in bus.outbox
 * loses none of the rows waiting there when busd moves it (bus migration
 * 003), and they reach the log before anything a producer of the new
 * version already wrote; a producer (ingestd) applies the outbox's schema
 * and its own, never the bus's, and what it appends reaches the log once a
 * busd runs.
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

#include "retain/v1/loyalty.pb-c.h"
#include "rt_bus.h"
#include "rt_db.h"
#include "rt_migrate.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "rt_test_ingest.h"

#define OLD_ROWS 5
#define NEW_ROWS 5

/* Applies the bus's migrations 001 and 002 only, from the source tree: a
 * database as retain left it while the outbox was bus.outbox. */
static void
s_migrate_bus_before_the_move (rt_db_t *db)
{
    char err[512];
    char *first = rt_test_source ("services/bus/sql/001_bus.sql", NULL);
    char *second = rt_test_source ("services/bus/sql/002_retention_clock.sql", NULL);
    rt_migration_t m[] = {{1, "001_bus.sql", first}, {2, "002_retention_clock.sql", second}};
    rt_migration_set_t set = {"bus", m, 2};
    if (rt_migrate_apply (db, &set, err, sizeof err) != 2)
        fail_msg ("bus migrations 001-002: %s", err);
    free (first);
    free (second);
}

/* A PointsEarned for the one customer of this test, its points saying in
 * which order it was written. Owned: rt_envelope_free. */
static Retain__V1__Envelope *
s_points (int points)
{
    Retain__V1__PointsEarned msg = RETAIN__V1__POINTS_EARNED__INIT;
    Retain__V1__Envelope *env;
    msg.customer_id = "customer-upgrade";
    msg.points = points;
    env = rt_envelope_new ("PointsEarned", "customer-upgrade", &msg.base, "outbox-test");
    assert_non_null (env);
    return env;
}

/* Inserts the envelope as a producer of the old version did. */
static void
s_old_append (PGconn *conn, const Retain__V1__Envelope *env)
{
    size_t len;
    uint8_t *data = rt_envelope_pack (env, &len);
    const char *values[1] = {(const char *)data};
    int lengths[1] = {(int)len};
    int formats[1] = {1};
    PGresult *res;
    assert_non_null (data);
    res = PQexecParams (conn, "INSERT INTO bus.outbox (envelope) VALUES ($1)", 1, NULL, values,
                        lengths, formats, 0);
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        fail_msg ("insert into bus.outbox: %s", PQresultErrorMessage (res));
    PQclear (res);
    free (data);
}

static void
test_upgrade_keeps_pending_rows (void **state)
{
    (void)state;
    char dsn[1024];
    char err[512];
    char *out = NULL;
    const char *migrate[] = {"migrate", NULL};
    rt_test_busd_t busd;
    rt_db_t *db;
    PGconn *conn;
    PGresult *res;
    int i, status;

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("outbox_upgrade", dsn, sizeof dsn);
    db = rt_db_new (dsn, "outbox-upgrade-test");
    assert_int_equal (rt_db_connect (db), 0);
    conn = rt_test_pg (dsn);

    /* The old install: events waiting in bus.outbox, one row set aside. */
    s_migrate_bus_before_the_move (db);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM pg_namespace "
                                             "WHERE nspname = 'outbox'"),
                      0);
    for (i = 1; i <= OLD_ROWS; i++) {
        Retain__V1__Envelope *env = s_points (i);
        s_old_append (conn, env);
        rt_envelope_free (env);
    }
    rt_test_pg_exec (conn, "INSERT INTO bus.outbox_rejected (id, envelope, reason) "
                           "VALUES (7, '\\xdeadbeef', 'set aside before the move')");

    /* A producer of the new version starts first and appends behind them. */
    assert_int_equal (rt_outbox_migrate (db, err, sizeof err), 1);
    for (i = OLD_ROWS + 1; i <= OLD_ROWS + NEW_ROWS; i++) {
        Retain__V1__Envelope *env = s_points (i);
        assert_int_equal (rt_outbox_append (db, env), 0);
        rt_envelope_free (env);
    }

    /* busd of the new version: migration 003, then the drain. */
    rt_test_busd_start (&busd, dsn, "outbox-upgrade-busd.log", NULL, true);
    assert_int_equal (
        rt_test_pg_wait_long (conn, "SELECT count(*) FROM bus.events", OLD_ROWS + NEW_ROWS, 10000),
        OLD_ROWS + NEW_ROWS);
    assert_int_equal (rt_test_pg_wait_long (conn, "SELECT count(*) FROM outbox.pending", 0, 5000),
                      0);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                             "ON n.oid = c.relnamespace WHERE n.nspname = 'bus' "
                                             "AND c.relname LIKE 'outbox%'"),
                      0);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
                                             "ON n.oid = p.pronamespace WHERE n.nspname = 'bus' "
                                             "AND p.proname = 'outbox_notify'"),
                      0);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM outbox.rejected WHERE id = 7 "
                                             "AND reason = 'set aside before the move'"),
                      1);

    /* One customer's events in the order they were written: the old
     * outbox's before the new one's. */
    res = PQexec (conn, "SELECT payload FROM bus.events ORDER BY seq");
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    assert_int_equal (PQntuples (res), OLD_ROWS + NEW_ROWS);
    for (i = 0; i < PQntuples (res); i++) {
        size_t len;
        unsigned char *payload =
            PQunescapeBytea ((const unsigned char *)PQgetvalue (res, i, 0), &len);
        Retain__V1__PointsEarned *points;
        assert_non_null (payload);
        points = retain__v1__points_earned__unpack (NULL, len, payload);
        assert_non_null (points);
        assert_int_equal (points->points, i + 1);
        retain__v1__points_earned__free_unpacked (points, NULL);
        PQfreemem (payload);
    }
    PQclear (res);

    /* Nothing is left to apply, and the files this test applied are those
     * busd carries (an edited one would be refused). */
    status = rt_test_retainctl (dsn, migrate, &out);
    if (status != 0 || !strstr (out, "outbox: 0 applied, 1 known") ||
        !strstr (out, "bus: 0 applied, 3 known"))
        fail_msg ("retainctl migrate after the upgrade (exit %d):\n%s", status, out);
    free (out);

    rt_db_destroy (&db);
    PQfinish (conn);
    status = rt_test_kill (busd.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_ingestd_applies_no_bus_schema (void **state)
{
    (void)state;
    static const char body[] =
        "{\"update_id\":1,\"message\":{\"message_id\":1,\"from\":{\"id\":42,\"is_bot\":false,"
        "\"first_name\":\"Olena\"},\"chat\":{\"id\":42,\"type\":\"private\"},\"date\":1795500000,"
        "\"text\":\"Where is my order?\"}}";
    const char *headers[] = {"Content-Type: application/json",
                             "X-Telegram-Bot-Api-Secret-Token: outbox-secret", NULL};
    const rt_test_inbox_t inbox = {"outbox-bot", "telegram", "outbox-secret", NULL};
    rt_test_ingest_t t;

    memset (&t, 0, sizeof t);
    rt_test_db_create ("outbox_ingestd", t.dsn, sizeof t.dsn);
    rt_test_ingestd_start (&t.ingestd, t.dsn, "outbox-ingestd.log", NULL, NULL);
    t.conn = rt_test_pg (t.dsn);
    assert_int_equal (rt_test_pg_long (t.conn, "SELECT count(*) FROM pg_namespace "
                                               "WHERE nspname = 'bus'"),
                      0);
    assert_int_equal (rt_test_pg_long (t.conn, "SELECT count(*) FROM outbox.pending"), 0);

    /* With no busd at all, a webhook is taken: its event waits in the
     * outbox. */
    rt_test_ingest_inboxes (&t, &inbox, 1);
    assert_int_equal (rt_test_http_request (t.ingestd.http_port, "POST",
                                            "/hooks/telegram/outbox-bot", body, strlen (body),
                                            headers, NULL),
                      200);
    assert_int_equal (rt_test_pg_long (t.conn, "SELECT count(*) FROM outbox.pending"), 1);
    assert_int_equal (rt_test_pg_long (t.conn, "SELECT count(*) FROM pg_namespace "
                                               "WHERE nspname = 'bus'"),
                      0);

    /* The bus comes later and drains it. */
    rt_test_busd_start (&t.busd, t.dsn, "outbox-ingestd-busd.log", NULL, true);
    assert_int_equal (rt_test_ingest_wait_events (t.conn, NULL, "InboundMessage", 1, 10000), 1);
    assert_int_equal (rt_test_pg_wait_long (t.conn, "SELECT count(*) FROM outbox.pending", 0, 5000),
                      0);
    rt_test_ingest_stop (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_upgrade_keeps_pending_rows),
        cmocka_unit_test (test_ingestd_applies_no_bus_schema),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
