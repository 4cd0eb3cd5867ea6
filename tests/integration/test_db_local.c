/*
 * Per-thread connections (common/db/rt_db_local) against a real
 * PostgreSQL: each thread gets a session of its own (its own backend),
 * with what setup registered prepared on it; a database that is away is
 * answered NULL at once and shows as not healthy, no attempt is made
 * within reconnect_ms of a failed one (nor is one held off by a clock
 * moved back), and the connection is back within reconnect_ms of the
 * database returning, its statements prepared again. Destroy closes every
 * thread's session (ASan checks that nothing is left).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_db_local.h"
#include "rt_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS      4
#define RECONNECT_MS 300
#define APP          "test-db-local"

static char s_dsn[1024];
static PGconn *s_admin; /* on database postgres: outlives rt_test_db_refuse */

/* What setup counts and may refuse. */
typedef struct {
    atomic_int runs;  /* setup calls */
    atomic_int fails; /* calls left to refuse */
} s_setup_t;

static int
s_setup_fn (rt_db_t *db, void *arg)
{
    s_setup_t *st = arg;
    atomic_fetch_add (&st->runs, 1);
    if (atomic_load (&st->fails) > 0) {
        atomic_fetch_sub (&st->fails, 1);
        return -1;
    }
    return rt_db_prepare (db, "pid", "SELECT pg_backend_pid()");
}

/* The backend pid of db through the prepared statement; -1 when it fails. */
static long
s_pid (rt_db_t *db)
{
    PGresult *res = rt_db_exec_prepared (db, "pid", 0, NULL, NULL, NULL, 0);
    long pid;
    if (!res)
        return -1;
    pid = strtol (PQgetvalue (res, 0, 0), NULL, 10);
    PQclear (res);
    return pid;
}

/* Sessions of this test's database that show APP. */
static long long
s_sessions (void)
{
    char name[128], sql[256];
    rt_test_db_name (s_dsn, name, sizeof name);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
              " AND application_name = '" APP "'",
              name);
    return rt_test_pg_long (s_admin, sql);
}

static int
s_group_setup (void **state)
{
    char admin[1200];
    (void)state;
    rt_test_db_create ("db_local", s_dsn, sizeof s_dsn);
    snprintf (admin, sizeof admin, "%s dbname=postgres", getenv ("RETAIN_TEST_PG"));
    s_admin = rt_test_pg (admin);
    return 0;
}

static int
s_group_teardown (void **state)
{
    (void)state;
    PQfinish (s_admin);
    return 0;
}

/* --- threads --- */

/* One thread's findings. */
typedef struct {
    rt_db_local_t *dbs;         /* shared */
    pthread_barrier_t *barrier; /* all threads hold their connection at once */
    long pid;                   /* its backend; -1 when it had none */
    bool same;                  /* a second call gave the same handle and backend */
    int64_t user_seen;          /* its own value at its second call */
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *w = arg;
    int64_t *user = NULL;
    rt_db_t *db = rt_db_local_get (w->dbs, &user);
    w->pid = db ? s_pid (db) : -1;
    if (user)
        *user = w->pid;
    pthread_barrier_wait (w->barrier);
    int64_t *again_user = NULL;
    rt_db_t *again = rt_db_local_get (w->dbs, &again_user);
    w->same = db && again == db && s_pid (again) == w->pid;
    w->user_seen = again_user ? *again_user : -1;
    pthread_barrier_wait (w->barrier);
    return NULL;
}

static void
test_each_thread_its_own_connection (void **state)
{
    s_setup_t st = {0};
    char err[256];
    pthread_barrier_t barrier;
    pthread_t threads[THREADS];
    s_worker_t workers[THREADS];
    int up = -1, down = -1;
    (void)state;
    rt_db_local_t *dbs =
        rt_db_local_new (s_dsn, APP, s_setup_fn, &st, RECONNECT_MS, err, sizeof err);
    assert_non_null (dbs);
    /* Nothing connects before a thread asks. */
    assert_true (rt_db_local_healthy (dbs));
    assert_int_equal (s_sessions (), 0);

    pthread_barrier_init (&barrier, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (s_worker_t){.dbs = dbs, .barrier = &barrier};
        assert_int_equal (pthread_create (&threads[i], NULL, s_worker, &workers[i]), 0);
    }
    pthread_barrier_wait (&barrier);
    /* Every thread holds its connection now: one session each. */
    assert_int_equal (s_sessions (), THREADS);
    pthread_barrier_wait (&barrier);
    for (int i = 0; i < THREADS; i++)
        pthread_join (threads[i], NULL);
    pthread_barrier_destroy (&barrier);

    for (int i = 0; i < THREADS; i++) {
        assert_true (workers[i].pid > 0);
        assert_true (workers[i].same);
        /* Each connection's own value is its thread's alone. */
        assert_int_equal (workers[i].user_seen, workers[i].pid);
        for (int j = 0; j < i; j++)
            assert_true (workers[i].pid != workers[j].pid);
    }
    assert_int_equal (atomic_load (&st.runs), THREADS);
    assert_true (rt_db_local_healthy (dbs));
    rt_db_local_stats (dbs, &up, &down);
    assert_int_equal (up, THREADS);
    assert_int_equal (down, 0);

    /* The threads are gone, their sessions stay until destroy closes them. */
    assert_int_equal (s_sessions (), THREADS);
    rt_db_local_destroy (&dbs);
    assert_null (dbs);
    assert_int_equal (rt_test_pg_wait_long (s_admin,
                                            "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END"
                                            " FROM pg_stat_activity WHERE application_name = '" APP
                                            "'",
                                            1, 5000),
                      1);
}

/* --- setup --- */

static void
test_setup_refused_then_tried_again (void **state)
{
    s_setup_t st = {0};
    char err[256];
    (void)state;
    atomic_store (&st.fails, 1);
    rt_db_local_t *dbs =
        rt_db_local_new (s_dsn, APP, s_setup_fn, &st, RECONNECT_MS, err, sizeof err);
    assert_non_null (dbs);
    assert_null (rt_db_local_get (dbs, NULL));
    assert_non_null (strstr (rt_db_local_error (dbs), "setup"));
    /* A refused setup holds nothing back: the next call makes a new handle. */
    rt_db_t *db = rt_db_local_get (dbs, NULL);
    assert_non_null (db);
    assert_true (s_pid (db) > 0);
    assert_int_equal (atomic_load (&st.runs), 2);
    rt_db_local_destroy (&dbs);
    assert_null (rt_db_local_new (s_dsn, APP, NULL, NULL, 0, err, sizeof err));
    assert_non_null (strstr (err, "reconnect_ms"));
}

/* --- the database away --- */

static void
test_database_away_and_back (void **state)
{
    s_setup_t st = {0};
    char err[256];
    int up = -1, down = -1;
    (void)state;
    rt_db_local_t *dbs =
        rt_db_local_new (s_dsn, APP, s_setup_fn, &st, RECONNECT_MS, err, sizeof err);
    assert_non_null (dbs);
    rt_db_t *db = rt_db_local_get (dbs, NULL);
    assert_non_null (db);
    long pid = s_pid (db);
    assert_true (pid > 0);

    rt_test_db_refuse (s_dsn);
    /* The session is gone: the statement fails and says so. */
    assert_int_equal (s_pid (db), -1);
    assert_false (rt_db_is_ok (db));
    int64_t t0 = rt_test_now_ms ();
    /* The first call tries once and fails, the next ones try nothing:
     * NULL at once, every time. */
    for (int i = 0; i < 20; i++)
        assert_null (rt_db_local_get (dbs, NULL));
    int64_t took = rt_test_now_ms () - t0;
    assert_true (took < 100);
    assert_false (rt_db_local_healthy (dbs));
    assert_non_null (strstr (rt_db_local_error (dbs), "not currently accepting connections"));
    rt_db_local_stats (dbs, &up, &down);
    assert_int_equal (up, 0);
    assert_int_equal (down, 1);

    rt_test_db_allow (s_dsn);
    int64_t back = rt_test_now_ms ();
    rt_db_t *again = NULL;
    while (!again && rt_test_now_ms () - back < 5000) {
        again = rt_db_local_get (dbs, NULL);
        if (!again)
            usleep (10 * 1000);
    }
    assert_non_null (again);
    /* Within reconnect_ms of the database returning (and of the failed
     * attempt), with slack for a loaded machine. */
    assert_true (rt_test_now_ms () - back <= RECONNECT_MS + 150);
    /* The same thread's handle, on a new session, statements prepared again. */
    assert_ptr_equal (again, db);
    long pid2 = s_pid (again);
    assert_true (pid2 > 0);
    assert_true (pid2 != pid);
    assert_true (rt_db_local_healthy (dbs));
    rt_db_local_stats (dbs, &up, &down);
    assert_int_equal (up, 1);
    assert_int_equal (down, 0);
    rt_db_local_destroy (&dbs);
}

/* The backoff on the caller's clock: no attempt within reconnect_ms of a
 * failed one even with the database back, one as soon as it has passed,
 * and a clock moved back far does not hold attempts off. */
static void
test_backoff_on_the_callers_clock (void **state)
{
    s_setup_t st = {0};
    char err[256];
    const int64_t t = 1000000;
    (void)state;
    rt_db_local_t *dbs =
        rt_db_local_new (s_dsn, APP, s_setup_fn, &st, RECONNECT_MS, err, sizeof err);
    assert_non_null (dbs);

    rt_test_db_refuse (s_dsn);
    assert_null (rt_db_local_get_at (dbs, t, NULL));
    assert_false (rt_db_local_healthy (dbs));
    rt_test_db_allow (s_dsn);
    /* Back, but the last attempt failed within reconnect_ms: none made. */
    assert_null (rt_db_local_get_at (dbs, t + RECONNECT_MS - 1, NULL));
    assert_false (rt_db_local_healthy (dbs));
    rt_db_t *db = rt_db_local_get_at (dbs, t + RECONNECT_MS, NULL);
    assert_non_null (db);
    assert_true (s_pid (db) > 0);
    assert_true (rt_db_local_healthy (dbs));

    /* Away again; then the clock goes back by much more than reconnect_ms:
     * the next call tries at once. */
    rt_test_db_refuse (s_dsn);
    assert_int_equal (s_pid (db), -1);
    assert_null (rt_db_local_get_at (dbs, t + 2 * RECONNECT_MS, NULL));
    rt_test_db_allow (s_dsn);
    db = rt_db_local_get_at (dbs, t - 100 * RECONNECT_MS, NULL);
    assert_non_null (db);
    assert_true (s_pid (db) > 0);
    rt_db_local_destroy (&dbs);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_each_thread_its_own_connection),
        cmocka_unit_test (test_setup_refused_then_tried_again),
        cmocka_unit_test (test_database_away_and_back),
        cmocka_unit_test (test_backoff_on_the_callers_clock),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
