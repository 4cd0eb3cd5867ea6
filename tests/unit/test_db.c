/*
 * common/db: the connection that survives the server going away, and the
 * migration runner. Needs the PostgreSQL of ./tests/run (RETAIN_TEST_PG).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_db.h"
#include "rt_migrate.h"
#include "rt_test.h"

static char s_dsn[1024];

static int
s_setup (void **state)
{
    (void)state;
    rt_test_db_create ("unit_db", s_dsn, sizeof s_dsn);
    return 0;
}

static int
s_count_connect (rt_db_t *db, void *arg)
{
    (void)db;
    (*(int *)arg)++;
    return 0;
}

static void
test_prepared_statements_survive_reconnect (void **state)
{
    (void)state;
    rt_db_t *db = rt_db_new (s_dsn, "unit-db");
    PGconn *admin = rt_test_pg (s_dsn);
    PGresult *res;
    const char *params[1] = {"41"};
    int connects = 0;
    char sql[256];

    rt_db_set_on_connect (db, s_count_connect, &connects);
    assert_int_equal (rt_db_ensure (db), 0);
    assert_int_equal (rt_db_generation (db), 1);
    assert_int_equal (connects, 1);
    assert_int_equal (rt_db_prepare (db, "plus_one", "SELECT $1::int + 1"), 0);
    res = rt_db_exec_prepared (db, "plus_one", 1, params, NULL, NULL, 0);
    assert_non_null (res);
    assert_string_equal (PQgetvalue (res, 0, 0), "42");
    PQclear (res);

    /* The server ends the session under us. */
    snprintf (sql, sizeof sql,
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
              "'unit-db'");
    rt_test_pg_exec (admin, sql);
    res = rt_db_exec_prepared (db, "plus_one", 1, params, NULL, NULL, 0);
    assert_null (res);
    assert_false (rt_db_is_ok (db));
    assert_true (strlen (rt_db_error (db)) > 0);

    /* Reconnecting prepares the statement again and runs the hook again. */
    assert_int_equal (rt_db_ensure (db), 0);
    assert_int_equal (rt_db_generation (db), 2);
    assert_int_equal (connects, 2);
    res = rt_db_exec_prepared (db, "plus_one", 1, params, NULL, NULL, 0);
    assert_non_null (res);
    assert_string_equal (PQgetvalue (res, 0, 0), "42");
    PQclear (res);
    PQfinish (admin);
    rt_db_destroy (&db);
    assert_null (db);
}

static void
test_sql_error_keeps_connection (void **state)
{
    (void)state;
    rt_db_t *db = rt_db_new (s_dsn, "unit-db");
    assert_int_equal (rt_db_connect (db), 0);
    assert_int_equal (rt_db_exec (db, "SELECT * FROM no_such_table"), -1);
    assert_string_equal (rt_db_sqlstate (db), "42P01");
    assert_non_null (strstr (rt_db_error (db), "no_such_table"));
    assert_true (rt_db_is_ok (db));
    assert_int_equal (rt_db_exec (db, "SELECT 1"), 0);
    rt_db_destroy (&db);
}

static void
test_transactions_and_copy (void **state)
{
    (void)state;
    rt_db_t *db = rt_db_new (s_dsn, "unit-db");
    PGconn *check = rt_test_pg (s_dsn);
    const char rows[] = "1\tone\n2\ttwo\n3\tthree\n";
    assert_int_equal (rt_db_connect (db), 0);
    assert_int_equal (rt_db_exec (db, "CREATE TABLE t (n int, s text)"), 0);

    assert_int_equal (rt_db_begin (db), 0);
    assert_int_equal (rt_db_copy_in (db, "COPY t FROM STDIN", rows, sizeof rows - 1), 0);
    assert_int_equal (rt_test_pg_long (check, "SELECT count(*) FROM t"), 0); /* not committed */
    rt_db_rollback (db);
    assert_int_equal (rt_test_pg_long (check, "SELECT count(*) FROM t"), 0);

    assert_int_equal (rt_db_begin (db), 0);
    assert_int_equal (rt_db_copy_in (db, "COPY t FROM STDIN", rows, sizeof rows - 1), 0);
    assert_int_equal (rt_db_commit (db), 0);
    assert_int_equal (rt_test_pg_long (check, "SELECT sum(n) FROM t"), 6);

    /* Bad COPY data fails the statement, not the process. */
    assert_int_equal (rt_db_copy_in (db, "COPY t FROM STDIN", "x\ty\n", 4), -1);
    assert_string_equal (rt_db_sqlstate (db), "22P02");
    assert_true (rt_db_is_ok (db));
    /* A rollback with nothing open is harmless. */
    rt_db_rollback (db);
    PQfinish (check);
    rt_db_destroy (&db);
}

static const rt_migration_t s_v1[] = {
    {1, "001_items.sql", "CREATE TABLE unitm.items (id int PRIMARY KEY);"},
    {2, "002_names.sql", "ALTER TABLE unitm.items ADD COLUMN name text;"},
};
static const rt_migration_set_t s_set = {"unitm", s_v1, 2};

static void *
s_migrate_thread (void *arg)
{
    rt_db_t *db = rt_db_new (s_dsn, "unit-migrate");
    char err[256];
    long n = -1;
    if (db && rt_db_connect (db) == 0)
        n = rt_migrate_apply (db, &s_set, err, sizeof err);
    rt_db_destroy (&db);
    *(long *)arg = n;
    return NULL;
}

static void
test_migrations_apply_once (void **state)
{
    (void)state;
    pthread_t threads[4];
    long applied[4];
    long total = 0;
    int i;
    rt_db_t *db = rt_db_new (s_dsn, "unit-migrate");
    PGconn *check = rt_test_pg (s_dsn);
    char err[256];

    /* Four daemons starting at once: the lock makes one of them do it. */
    for (i = 0; i < 4; i++)
        pthread_create (&threads[i], NULL, s_migrate_thread, &applied[i]);
    for (i = 0; i < 4; i++) {
        pthread_join (threads[i], NULL);
        assert_true (applied[i] >= 0);
        total += applied[i];
    }
    assert_int_equal (total, 2);
    assert_int_equal (rt_test_pg_long (check, "SELECT count(*) FROM unitm.schema_migrations"), 2);
    assert_int_equal (
        rt_test_pg_long (check,
                         "SELECT count(*) FROM information_schema.columns "
                         "WHERE table_schema = 'unitm' AND table_name = 'items' AND column_name = "
                         "'name'"),
        1);

    /* A released migration edited afterwards is refused, by name. */
    {
        rt_migration_t edited[2] = {s_v1[0], s_v1[1]};
        rt_migration_set_t set = {"unitm", edited, 2};
        edited[0].sql = "CREATE TABLE unitm.items (id bigint PRIMARY KEY);";
        assert_int_equal (rt_db_connect (db), 0);
        assert_int_equal (rt_migrate_apply (db, &set, err, sizeof err), -1);
        assert_non_null (strstr (err, "001_items.sql"));
    }
    /* A failing migration leaves the schema at the last good version. */
    {
        rt_migration_t more[3] = {
            s_v1[0], s_v1[1], {3, "003_bad.sql", "ALTER TABLE nowhere ADD x int;"}};
        rt_migration_set_t set = {"unitm", more, 3};
        assert_int_equal (rt_migrate_apply (db, &set, err, sizeof err), -1);
        assert_non_null (strstr (err, "003_bad.sql"));
        assert_int_equal (
            rt_test_pg_long (check, "SELECT max(version) FROM unitm.schema_migrations"), 2);
        assert_true (rt_db_is_ok (db));
    }
    PQfinish (check);
    rt_db_destroy (&db);
}

static void
test_unreachable_server (void **state)
{
    (void)state;
    rt_db_t *db = rt_db_new ("host=127.0.0.1 port=1 connect_timeout=2", "unit-db");
    assert_int_equal (rt_db_connect (db), -1);
    assert_non_null (strstr (rt_db_error (db), "127.0.0.1"));
    /* ensure_for gives up after its timeout instead of hanging. */
    assert_int_equal (rt_db_ensure_for (db, 300), -1);
    assert_null (rt_db_conn (db));
    rt_db_destroy (&db);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_prepared_statements_survive_reconnect),
        cmocka_unit_test (test_sql_error_keeps_connection),
        cmocka_unit_test (test_transactions_and_copy),
        cmocka_unit_test (test_migrations_apply_once),
        cmocka_unit_test (test_unreachable_server),
    };
    return cmocka_run_group_tests (tests, s_setup, NULL);
}
