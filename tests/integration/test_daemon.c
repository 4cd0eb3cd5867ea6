/*
 * common/daemon rt_daemon: what every daemon built on the skeleton shows
 * its operator, seen on helper_daemon (the smallest such daemon) as a user
 * would see busd or ingestd. --help lists its own settings, the common
 * ones and the bus client's CURVE keys; a bad setting, an unknown flag or
 * a retired variable still set stops it with exit 2 and the reason; it
 * applies its migration sets in order (a failing one: exit 1); /readyz
 * says 503 with the step while starting (PostgreSQL away, its own start
 * still running), 200 once serving, the daemon's own reason when it says
 * no; the test clock file it is given moves its clock; SIGTERM stops it
 * cleanly with exit 0 and "stopped", also while it is still starting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_clock.h"
#include "rt_test.h"

#define S_HELPER RT_TEST_BIN_DIR "/../tests/helper_daemon"
#define DAY_MS   86400000LL

/* A helper_daemon started for one test. */
typedef struct {
    pid_t pid;      /* the process */
    int admin_port; /* its admin port */
    char log[64];   /* its log under rt_test_dir */
} s_helper_t;

/* Starts helper_daemon with the arguments (NULL-terminated) after
 * --admin, and the environment entries env (may be NULL), into a fresh
 * log. */
static void
s_start (s_helper_t *h, const char *log, char *const env[], ...)
{
    char admin[64], path[1024];
    char *argv[16];
    int argc = 0;
    va_list ap;
    memset (h, 0, sizeof *h);
    h->admin_port = rt_test_free_port ();
    snprintf (h->log, sizeof h->log, "%s", log);
    snprintf (path, sizeof path, "%s/%s", rt_test_dir (), log);
    unlink (path);
    snprintf (admin, sizeof admin, "--admin=127.0.0.1:%d", h->admin_port);
    argv[argc++] = "helper_daemon";
    argv[argc++] = admin;
    va_start (ap, env);
    for (char *arg = va_arg (ap, char *); arg && argc < 15; arg = va_arg (ap, char *))
        argv[argc++] = arg;
    va_end (ap);
    argv[argc] = NULL;
    h->pid = rt_test_spawn (S_HELPER, argv, env, log);
}

/* Waits for the helper to exit by itself; returns its exit code. */
static int
s_exit_code (s_helper_t *h)
{
    int status = rt_test_wait (h->pid, 30000);
    if (status == -1) {
        rt_test_kill (h->pid, SIGKILL);
        fail_msg ("helper_daemon did not exit; see %s/%s", rt_test_dir (), h->log);
    }
    if (!WIFEXITED (status))
        fail_msg ("helper_daemon died (wait status %#x); see %s/%s", (unsigned)status,
                  rt_test_dir (), h->log);
    return WEXITSTATUS (status);
}

/* The first JSON line of the helper's log whose msg is `msg` (owned;
 * json_decref), or NULL. */
static json_t *
s_line (const s_helper_t *h, const char *msg)
{
    char *text = rt_test_log (h->log), *save = NULL;
    json_t *found = NULL;
    for (char *line = strtok_r (text, "\n", &save); line && !found;
         line = strtok_r (NULL, "\n", &save)) {
        json_t *j = json_loads (line, 0, NULL);
        const char *m = json_string_value (json_object_get (j, "msg"));
        if (m && strcmp (m, msg) == 0)
            found = j;
        else
            json_decref (j);
    }
    free (text);
    return found;
}

/* Polls /readyz until its status is `want` and its body holds `holding`
 * (may be NULL); fails the test after 20 s. */
static void
s_readyz_until (const s_helper_t *h, long want, const char *holding)
{
    char body[512] = "";
    long status = 0;
    int64_t deadline = rt_test_now_ms () + 20000;
    while (rt_test_now_ms () < deadline) {
        status = rt_test_http_get (h->admin_port, "/readyz", body, sizeof body);
        if (status == want && (!holding || strstr (body, holding)))
            return;
        usleep (20000);
    }
    fail_msg ("/readyz: %ld \"%s\", wanted %ld with \"%s\"; see %s/%s", status, body, want,
              holding ? holding : "", rt_test_dir (), h->log);
}

/* SIGTERM: exit 0, and the last words are "stopped" with exit_code 0. */
static void
s_stop_cleanly (s_helper_t *h)
{
    int status = rt_test_kill (h->pid, SIGTERM);
    json_t *stopped;
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        fail_msg ("SIGTERM: wait status %#x, wanted exit 0; see %s/%s", (unsigned)status,
                  rt_test_dir (), h->log);
    stopped = s_line (h, "stopped");
    if (!stopped)
        fail_msg ("no \"stopped\" line in %s/%s", rt_test_dir (), h->log);
    assert_int_equal (json_integer_value (json_object_get (stopped, "exit_code")), 0);
    json_decref (stopped);
}

static void
test_help_lists_own_common_and_bus_settings (void **state)
{
    (void)state;
    s_helper_t h;
    char *out;
    static const char *const listed[] = {
        /* its own */
        "--workers", "RETAIN_HELPER_WORKERS", "--hold-file", "--fail-migration",
        /* common to every daemon, its admin variable its own */
        "--pg-dsn", "RETAIN_PG_DSN", "--admin", "RETAIN_HELPER_ADMIN", "127.0.0.1:0", "--log-level",
        "RETAIN_LOG_LEVEL", "--clock-file", "RETAIN_CLOCK_FILE",
        /* a bus client's keys */
        "--curve-server-key", "RETAIN_BUS_CURVE_SERVER_KEY", "--curve-client-public",
        "RETAIN_BUS_CURVE_CLIENT_PUBLIC", "--curve-client-secret", "RETAIN_BUS_CURVE_CLIENT_SECRET",
        /* and what they replace */
        "RETAIN_BUS_CURVE_SECRET_KEY", "RETAIN_BUS_CURVE_PUBLIC_KEY"};
    s_start (&h, "daemon-help.log", NULL, "--help", NULL);
    assert_int_equal (s_exit_code (&h), 0);
    out = rt_test_log (h.log);
    assert_non_null (strstr (out, "helper-daemon"));
    for (size_t i = 0; i < sizeof listed / sizeof *listed; i++) {
        if (!strstr (out, listed[i]))
            fail_msg ("--help does not mention %s:\n%s", listed[i], out);
    }
    /* Its own settings come first, the common ones under their heading. */
    assert_true (strstr (out, "--workers") < strstr (out, "Common to every retain daemon"));
    assert_true (strstr (out, "Common to every retain daemon") < strstr (out, "--pg-dsn"));
    free (out);
}

/* Each case: what was given, and what the refusal must name. */
static void
test_bad_settings_exit_2_with_the_reason (void **state)
{
    (void)state;
    /* A valid Z85 key (ZeroMQ's own example), wherever one is needed. */
#define S_KEY "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
    static char env_retired[] = "RETAIN_BUS_CURVE_SECRET_KEY=" S_KEY;
    static char env_partial[] = "RETAIN_BUS_CURVE_SERVER_KEY=" S_KEY;
    static char env_public[] = "RETAIN_BUS_CURVE_CLIENT_PUBLIC=" S_KEY;
    static char env_secret[] = "RETAIN_BUS_CURVE_CLIENT_SECRET=" S_KEY;
    char *const retired[] = {env_retired, NULL};
    char *const partial[] = {env_partial, NULL};
    char *const pair[] = {env_public, env_secret, NULL};
    struct {
        const char *arg;    /* the flag given, or NULL */
        char *const *env;   /* the environment added, or NULL */
        const char *reason; /* what the log must say */
    } cases[] = {
        {"--workers=99", NULL, "--workers"},
        {"--workers=many", NULL, "RETAIN_HELPER_WORKERS"},
        {"--no-such-setting=1", NULL, "unknown flag --no-such-setting"},
        {"--log-level=loud", NULL, "--log-level"},
        {NULL, retired, "RETAIN_BUS_CURVE_CLIENT_SECRET"},
        {NULL, partial, "--curve-client-secret"},
        {"--curve-server-key=short", pair, "--curve-server-key must be a CURVE key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        s_helper_t h;
        char log[64], *out;
        snprintf (log, sizeof log, "daemon-bad-%zu.log", i);
        s_start (&h, log, cases[i].env, "--pg-dsn=host=/nonexistent", cases[i].arg, NULL);
        int code = s_exit_code (&h);
        out = rt_test_log (log);
        if (code != 2 || !strstr (out, cases[i].reason))
            fail_msg ("case %zu: exit %d, wanted 2 naming \"%s\":\n%s", i, code, cases[i].reason,
                      out);
        /* Refused before anything serves. */
        assert_null (strstr (out, "HTTP server listening"));
        free (out);
    }
}

static void
test_migrations_readiness_clock_and_stop (void **state)
{
    (void)state;
    char dsn[1024], a_dsn[1100], hold[600], unready[600], clock[600];
    char a_hold[700], a_unready[700], a_clock[700];
    s_helper_t h;
    PGconn *conn;
    json_t *line;
    FILE *f;
    struct timeval tv;
    int64_t system_ms, now_ms;

    rt_test_db_create ("daemon_skeleton", dsn, sizeof dsn);
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (hold, sizeof hold, "%s/daemon.hold", rt_test_dir ());
    snprintf (unready, sizeof unready, "%s/daemon.unready", rt_test_dir ());
    snprintf (clock, sizeof clock, "%s/daemon.clock", rt_test_dir ());
    snprintf (a_hold, sizeof a_hold, "--hold-file=%s", hold);
    snprintf (a_unready, sizeof a_unready, "--unready-file=%s", unready);
    snprintf (a_clock, sizeof a_clock, "--clock-file=%s", clock);
    unlink (unready);
    f = fopen (hold, "w");
    assert_non_null (f);
    fclose (f);
    /* Three days ahead, for this daemon only: the test's own clock is
     * the system's. */
    assert_int_equal (rt_clock_file_set (clock, 3 * DAY_MS, 0), 0);

    s_start (&h, "daemon-life.log", NULL, a_dsn, a_hold, a_unready, a_clock, NULL);
    /* Its start holds: alive, not ready, and saying why. */
    s_readyz_until (&h, 503, "starting: holding for the test");
    assert_int_equal (rt_test_http_get (h.admin_port, "/healthz", NULL, 0), 200);
    /* The migrations ran before start, in order. */
    conn = rt_test_pg (dsn);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM helper.items"), 1);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM helper.schema_migrations"), 2);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM helper_after.schema_migrations"),
                      1);

    unlink (hold);
    s_readyz_until (&h, 200, NULL);
    /* start read the table on the connection the migrations left it. */
    line = s_line (&h, "helper items");
    assert_non_null (line);
    assert_string_equal (json_string_value (json_object_get (line, "count")), "1");
    json_decref (line);
    /* The clock file named in its settings moved its clock. */
    line = s_line (&h, "helper clock");
    assert_non_null (line);
    now_ms = json_integer_value (json_object_get (line, "now_ms"));
    json_decref (line);
    gettimeofday (&tv, NULL);
    system_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (now_ms < system_ms + 3 * DAY_MS - 60000 || now_ms > system_ms + 3 * DAY_MS)
        fail_msg ("its clock read %lld, wanted three days after %lld", (long long)now_ms,
                  (long long)system_ms);
    line = s_line (&h, "the clock follows a test clock file");
    assert_non_null (line);
    json_decref (line);
    /* Its settings are logged once, secrets masked. */
    line = s_line (&h, "config");
    assert_non_null (line);
    assert_string_equal (json_string_value (json_object_get (line, "pg-dsn")), "********");
    assert_string_equal (json_string_value (json_object_get (line, "workers")), "2");
    json_decref (line);

    /* While serving, the daemon's own answer counts. */
    f = fopen (unready, "w");
    assert_non_null (f);
    fclose (f);
    s_readyz_until (&h, 503, "daemon.unready exists");
    unlink (unready);
    s_readyz_until (&h, 200, NULL);

    s_stop_cleanly (&h);
    line = s_line (&h, "helper finishing");
    assert_non_null (line);
    json_decref (line);
    /* Started again: the migrations are found applied, nothing twice. */
    s_start (&h, "daemon-again.log", NULL, a_dsn, NULL);
    s_readyz_until (&h, 200, NULL);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM helper.items"), 1);
    s_stop_cleanly (&h);
    PQfinish (conn);
    unlink (clock);
}

static void
test_failed_migration_exits_1 (void **state)
{
    (void)state;
    char dsn[1024], a_dsn[1100], *out;
    s_helper_t h;
    PGconn *conn;
    json_t *line;
    rt_test_db_create ("daemon_broken", dsn, sizeof dsn);
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    s_start (&h, "daemon-broken.log", NULL, a_dsn, "--fail-migration", NULL);
    assert_int_equal (s_exit_code (&h), 1);
    line = s_line (&h, "migration failed");
    if (!line) {
        out = rt_test_log (h.log);
        fail_msg ("no \"migration failed\" line:\n%s", out);
    }
    assert_string_equal (json_string_value (json_object_get (line, "schema")), "helper_broken");
    assert_non_null (
        strstr (json_string_value (json_object_get (line, "error")), "no_such_column"));
    json_decref (line);
    /* The sets before it were applied; the daemon never started. */
    conn = rt_test_pg (dsn);
    assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM helper_after.schema_migrations"),
                      1);
    PQfinish (conn);
    assert_null (s_line (&h, "helper clock"));
    line = s_line (&h, "stopped");
    assert_non_null (line);
    assert_int_equal (json_integer_value (json_object_get (line, "exit_code")), 1);
    json_decref (line);
}

/* PostgreSQL unreachable, then its own start holding: /readyz says which,
 * and SIGTERM in either is a clean stop. */
static void
test_stop_while_starting (void **state)
{
    (void)state;
    char dsn[1024], a_dsn[1100], a_nowhere[128], hold[600], a_hold[700];
    s_helper_t h;
    FILE *f;

    snprintf (a_nowhere, sizeof a_nowhere, "--pg-dsn=host=127.0.0.1 port=%d dbname=none",
              rt_test_free_port ());
    s_start (&h, "daemon-nopg.log", NULL, a_nowhere, NULL);
    s_readyz_until (&h, 503, "starting: connecting to PostgreSQL");
    s_stop_cleanly (&h);
    assert_null (s_line (&h, "helper clock"));

    rt_test_db_create ("daemon_hold", dsn, sizeof dsn);
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (hold, sizeof hold, "%s/daemon-stop.hold", rt_test_dir ());
    snprintf (a_hold, sizeof a_hold, "--hold-file=%s", hold);
    f = fopen (hold, "w");
    assert_non_null (f);
    fclose (f);
    s_start (&h, "daemon-hold.log", NULL, a_dsn, a_hold, NULL);
    s_readyz_until (&h, 503, "starting: holding for the test");
    s_stop_cleanly (&h);
    /* Stopped before it served: run never ran. */
    assert_null (s_line (&h, "helper finishing"));
    unlink (hold);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_help_lists_own_common_and_bus_settings),
        cmocka_unit_test (test_bad_settings_exit_2_with_the_reason),
        cmocka_unit_test (test_migrations_readiness_clock_and_stop),
        cmocka_unit_test (test_failed_migration_exits_1),
        cmocka_unit_test (test_stop_while_starting),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
