/*
 * helper_daemon: the smallest daemon built on rt_daemon, for
 * test_daemon.c, which starts it as a user would start any daemon.
 *
 * Its own settings: --workers (an integer in [1, 8], so a bad value can be
 * given), --hold-file (start waits while that file exists, so the test
 * sees /readyz while starting), --unready-file (its readiness callback says
 * no while that file exists) and --fail-migration (adds a migration set
 * that fails). It is a bus client, so the CURVE client keys are among its
 * settings. Its migrations make schema helper (a table and a row) and
 * schema helper_after, whose table refers to helper's: applied in the
 * wrong order they would fail.
 *
 * What the test reads from its log: "helper clock" (its wall clock when
 * starting, now_ms), "helper items" (rows in helper.items, read on the
 * connection the migrations ran on) and "helper finishing" (run saw the
 * stop).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rt_clock.h"
#include "rt_daemon.h"
#include "rt_log.h"

static const rt_config_setting_t s_settings[] = {
    {"workers", "RETAIN_HELPER_WORKERS", "2", "worker threads, 1 to 8 (none are started)"},
    {"hold-file", "RETAIN_HELPER_HOLD_FILE", "", "start waits while this file exists"},
    {"unready-file", "RETAIN_HELPER_UNREADY_FILE", "", "not ready while this file exists"},
    {"fail-migration", "RETAIN_HELPER_FAIL_MIGRATION", "false", "add a migration that fails"},
    {NULL, NULL, NULL, NULL}};

static const rt_migration_t s_helper_files[] = {
    {1, "001_items.sql", "CREATE TABLE helper.items (id int PRIMARY KEY)"},
    {2, "002_first.sql", "INSERT INTO helper.items VALUES (1)"},
};
static const rt_migration_set_t s_helper = {"helper", s_helper_files, 2};

static const rt_migration_t s_after_files[] = {
    {1, "001_refs.sql", "CREATE TABLE helper_after.refs (item int REFERENCES helper.items (id))"},
};
static const rt_migration_set_t s_after = {"helper_after", s_after_files, 1};

static const rt_migration_t s_broken_files[] = {
    {1, "001_broken.sql", "SELECT no_such_column FROM helper.items"},
};
static const rt_migration_set_t s_broken = {"helper_broken", s_broken_files, 1};

/* Not const: configure appends s_broken when asked, before the skeleton
 * applies the list. */
static const rt_migration_set_t *s_migrations[] = {&s_helper, &s_after, NULL, NULL};

/* The daemon's one context. */
typedef struct {
    const char *hold_file;    /* start waits while it exists; "" none */
    const char *unready_file; /* not ready while it exists; "" none */
    rt_db_t *db;              /* the migrations' connection, taken in start */
} helper_t;

static bool
s_exists (const char *path)
{
    return path[0] && access (path, F_OK) == 0;
}

static int
s_configure (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    helper_t *self = arg;
    const rt_config_t *config = rt_daemon_config (d);
    int64_t workers;
    bool fail = false;
    if (rt_config_get_int (config, "workers", 1, 8, &workers, err, errlen) != 0 ||
        rt_config_get_bool (config, "fail-migration", &fail, err, errlen) != 0)
        return -1;
    if (fail)
        s_migrations[2] = &s_broken;
    self->hold_file = rt_config_get (config, "hold-file");
    self->unready_file = rt_config_get (config, "unready-file");
    return 0;
}

static int
s_start (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    helper_t *self = arg;
    PGresult *res;
    rt_log (RT_LOG_INFO, "helper clock", rt_log_int ("now_ms", rt_clock_now_ms ()));
    rt_daemon_starting (d, "holding for the test");
    while (s_exists (self->hold_file)) {
        if (rt_daemon_wait_ms (d, 20))
            return 0;
    }
    self->db = rt_daemon_db_take (d);
    res = self->db ? rt_db_exec_params (self->db, "SELECT count(*) FROM helper.items", 0, NULL)
                   : NULL;
    if (!res) {
        rt_errf (err, errlen, "counting helper.items: %s",
                 self->db ? rt_db_error (self->db) : "no connection");
        return -1;
    }
    rt_log (RT_LOG_INFO, "helper items", rt_log_str ("count", PQgetvalue (res, 0, 0)));
    PQclear (res);
    return 0;
}

static int
s_run (rt_daemon_t *d, void *arg)
{
    (void)arg;
    while (!rt_daemon_wait_ms (d, 1000))
        ;
    rt_log (RT_LOG_INFO, "helper finishing");
    return 0;
}

static void
s_stop (rt_daemon_t *d, void *arg)
{
    helper_t *self = arg;
    (void)d;
    rt_db_destroy (&self->db);
}

static bool
s_ready (void *arg, char *why, size_t whylen)
{
    helper_t *self = arg;
    if (!s_exists (self->unready_file))
        return true;
    snprintf (why, whylen, "helper: %s exists", self->unready_file);
    return false;
}

int
main (int argc, char **argv)
{
    static const rt_daemon_spec_t spec = {
        .name = "helper-daemon",
        .summary = "A daemon of the tests, built on rt_daemon.",
        .settings = s_settings,
        .admin_env = "RETAIN_HELPER_ADMIN",
        .admin_default = "127.0.0.1:0",
        .bus_client = true,
        .migrations = s_migrations,
        .configure = s_configure,
        .start = s_start,
        .run = s_run,
        .stop = s_stop,
        .ready = s_ready,
    };
    helper_t self = {0};
    return rt_daemon_main (&spec, &self, argc, argv);
}
