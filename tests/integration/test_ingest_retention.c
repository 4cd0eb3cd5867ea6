/*
 * ingestd's retention: de-duplication rows (with their envelopes) and raw
 * payloads older than --keep are deleted, by ingestd's clock, hourly; what
 * is younger stays; a --keep under a week is refused at start.
 *
 * The rows are written by SQL with the ages under test (received_at is
 * PostgreSQL's time); ingestd follows a clock file, so moving its clock
 * eight days on makes the next hourly run due and every row then older
 * than a week.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_clock.h"
#include "rt_test.h"
#include "rt_test_ingest.h"

#define DAY_MS 86400000LL

/* n rows of each table received `days` ago (PostgreSQL's clock), their
 * provider ids starting with `tag`. */
static void
s_rows (PGconn *conn, const char *tag, int n, int days)
{
    char sql[1024];
    snprintf (sql, sizeof sql,
              "WITH r AS (INSERT INTO ingest.raw (id, channel, inbox, content_type, body, "
              "received_at) SELECT gen_random_uuid(), 'telegram', 'shop-bot', "
              "'application/json', '\\x7b7d', now() - interval '%d days' FROM "
              "generate_series(1, %d) RETURNING id) "
              "INSERT INTO ingest.messages (channel, inbox, external_id, event_id, type, raw_id, "
              "received_at, envelope) SELECT 'telegram', 'shop-bot', '%s-' || row_number() OVER "
              "(), gen_random_uuid(), 'InboundMessage', id, now() - interval '%d days', NULL "
              "FROM r",
              days, n, tag, days);
    rt_test_pg_exec (conn, sql);
}

/* The de-duplication rows whose provider ids start with `tag`. */
static long long
s_count (PGconn *conn, const char *tag)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM ingest.messages WHERE external_id LIKE '%s-%%'", tag);
    return rt_test_pg_long (conn, sql);
}

/* Waits up to 20 s until the query's number is `want`: a run deletes
 * table after table, batch after batch, so each is waited for. */
static void
s_wait_sql (PGconn *conn, const char *sql, long long want)
{
    int64_t deadline = rt_test_now_ms () + 20000;
    while (rt_test_pg_long (conn, sql) != want) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("%s: %lld, expected %lld", sql, rt_test_pg_long (conn, sql), want);
        usleep (100000);
    }
}

/* Waits until the rows tagged `tag` are `want`. */
static void
s_wait_count (PGconn *conn, const char *tag, long long want)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM ingest.messages WHERE external_id LIKE '%s-%%'", tag);
    s_wait_sql (conn, sql, want);
}

static void
test_old_rows_go_young_rows_stay (void **state)
{
    rt_test_ingest_t t;
    char clock[512], clock_arg[600];
    (void)state;

    snprintf (clock, sizeof clock, "%s/ingest-retention.clock", rt_test_dir ());
    assert_int_equal (rt_clock_file_set (clock, 0, 0), 0);
    snprintf (clock_arg, sizeof clock_arg, "--clock-file=%s", clock);
    {
        const char *extra[] = {clock_arg, "--keep=7d", NULL};
        rt_test_ingest_start (&t, "ingest_retention", NULL, extra);
    }
    /* ingestd made the schema; its first run (at its first tick) may come
     * before these rows or after. Either way the next is due an hour
     * later by its clock, so two hours on makes it due. */
    s_rows (t.conn, "old", 25000, 10); /* more than two batches of 10,000 */
    s_rows (t.conn, "young", 300, 6);
    s_rows (t.conn, "fresh", 200, 0);
    assert_int_equal (rt_clock_file_set (clock, 2 * 3600000LL, 0), 0);
    s_wait_count (t.conn, "old", 0);
    s_wait_sql (t.conn,
                "SELECT count(*) FROM ingest.raw WHERE received_at < now() - interval '9 days'", 0);
    assert_int_equal (s_count (t.conn, "young"), 300);
    assert_int_equal (s_count (t.conn, "fresh"), 200);
    assert_int_equal (rt_test_pg_long (t.conn, "SELECT count(*) FROM ingest.raw"), 500);
    assert_true (rt_test_metric (t.ingestd.admin_port,
                                 "retain_ingest_retention_deleted_total{table=\"messages\"}") >=
                 25000);
    assert_true (rt_test_metric (t.ingestd.admin_port,
                                 "retain_ingest_retention_deleted_total{table=\"raw\"}") >= 25000);

    /* Eight days on by ingestd's clock: the young and the fresh are more
     * than a week old now, and the next run takes them. */
    assert_int_equal (rt_clock_file_set (clock, 8 * DAY_MS + 4 * 3600000LL, 0), 0);
    s_wait_count (t.conn, "young", 0);
    s_wait_count (t.conn, "fresh", 0);
    s_wait_sql (t.conn, "SELECT count(*) FROM ingest.raw", 0);
    rt_test_ingest_stop (&t);
}

/* A --keep under a week would forget what a provider may still retry:
 * refused, exit 2, with the reason. */
static void
test_short_keep_refused (void **state)
{
    char dsn[1024], arg[1100], *log;
    char *argv[] = {"retain-ingestd",      arg, "--keep=2d", "--http=127.0.0.1:0",
                    "--admin=127.0.0.1:0", NULL};
    pid_t pid;
    int status;
    (void)state;
    rt_test_db_create ("ingest_retention_bad", dsn, sizeof dsn);
    snprintf (arg, sizeof arg, "--pg-dsn=%s", dsn);
    pid = rt_test_spawn ("retain-ingestd", argv, NULL, "ingest-retention-bad.log");
    status = rt_test_wait (pid, 20000);
    assert_true (status != -1 && WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
    log = rt_test_log ("ingest-retention-bad.log");
    if (!strstr (log, "--keep must be at least 7d"))
        fail_msg ("no reason in the log: %s", log);
    free (log);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_old_rows_go_young_rows_stay),
        cmocka_unit_test (test_short_keep_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
