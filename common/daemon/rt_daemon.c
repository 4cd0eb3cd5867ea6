/*
 * rt_daemon: what every daemon's main did on its own, once (rt_daemon.h
 * lists the steps).
 *
 * The common settings are one table here, so "pg-dsn" / RETAIN_PG_DSN and
 * the log level are declared once for every daemon; only the admin
 * address differs by daemon (its variable and port), and is filled into a
 * copy of the table from the spec. The clock file is a setting like any
 * other, passed to rt_clock_init, so --help lists it and nothing else
 * reads the environment.
 *
 * Readiness has three phases, held in one atomic that the admin thread
 * reads: starting (with the step in progress, so a 503 says what it waits
 * for), serving (the daemon's own callback decides), stopping (from the
 * moment a stop is requested, before the loop has noticed: a load balancer
 * should stop sending at once).
 *
 * Exit codes: 0 after a requested stop, 1 after a failure, 2 for a bad
 * setting (as every retainctl command answers a bad argument).
 */
#include "rt_daemon.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_admin.h"
#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_signal.h"

enum { S_STARTING = 0, S_SERVING, S_STOPPING };

#define S_ADMIN 1 /* index of "admin" in s_common */

/* The settings every daemon has; the admin entry's variable and default
 * come from the daemon's spec. */
static const rt_config_setting_t s_common[] = {
    {"pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"},
    {"admin", NULL, NULL, "admin HTTP address (/healthz /readyz /metrics)"},
    {"log-level", "RETAIN_LOG_LEVEL", "info", "debug, info, warn or error"},
    {"clock-file", "RETAIN_CLOCK_FILE", "",
     "tests only: follow the clock offsets in this file (common/time/rt_clock.h); empty: the "
     "system clock"},
    {NULL, NULL, NULL, NULL}};

#define S_NCOMMON (sizeof s_common / sizeof *s_common)

static const rt_config_setting_t s_none[] = {{NULL, NULL, NULL, NULL}};

struct rt_daemon_t {
    const rt_daemon_spec_t *spec;          /* what the daemon is; lent */
    void *arg;                             /* its context, for the callbacks; lent */
    rt_config_setting_t common[S_NCOMMON]; /* s_common with the daemon's admin setting */
    rt_config_t *config;                   /* every setting */
    rt_metrics_t *metrics;                 /* the registry /metrics serves */
    rt_admin_t *admin;                     /* the admin server, NULL before step 3 and after */
    rt_db_t *db;                           /* the migrations' connection until taken */
    rt_bus_curve_t curve;                  /* a bus client's CURVE keys, from its settings */
    atomic_int phase;                      /* S_STARTING, S_SERVING or S_STOPPING */
    _Atomic (const char *) step;           /* what starting waits for, for /readyz */
};

/* The admin thread's view: the skeleton's phases, then the daemon's own. */
static bool
s_ready (void *arg, char *why, size_t whylen)
{
    rt_daemon_t *d = arg;
    int phase = atomic_load (&d->phase);
    if (phase == S_STOPPING || rt_signal_stopping ()) {
        snprintf (why, whylen, "stopping");
        return false;
    }
    if (phase == S_STARTING) {
        snprintf (why, whylen, "starting: %s", atomic_load (&d->step));
        return false;
    }
    return d->spec->ready ? d->spec->ready (d->arg, why, whylen) : true;
}

/* Declares and parses the settings. 0 to go on, else *code is the exit
 * code (0 after --help). */
static int
s_settings (rt_daemon_t *d, int argc, char **argv, int *code)
{
    const rt_daemon_spec_t *spec = d->spec;
    char err[512];
    memcpy (d->common, s_common, sizeof s_common);
    d->common[S_ADMIN].env = spec->admin_env;
    d->common[S_ADMIN].deflt = spec->admin_default;
    *code = 1;
    d->config = rt_config_new (spec->name, spec->summary, spec->settings ? spec->settings : s_none);
    if (!d->config || rt_config_add (d->config, "Common to every retain daemon", d->common) != 0)
        return -1;
    if (spec->bus_client && rt_bus_client_declare (d->config) != 0)
        return -1;
    if (spec->retired && rt_config_retire (d->config, spec->retired) != 0)
        return -1;
    switch (rt_config_parse (d->config, argc, argv, err, sizeof err)) {
    case 0:
        return 0;
    case 1:
        *code = 0;
        return -1;
    default:
        fprintf (stderr, "%s: %s\n", spec->name, err);
        *code = 2;
        return -1;
    }
}

/* Logs, the clock, the bus keys: what the rest of the process relies on.
 * 0, or -1 for a bad setting (reported on stderr or in the log). */
static int
s_process (rt_daemon_t *d)
{
    const char *name = d->spec->name;
    const char *clock_file = rt_config_get (d->config, "clock-file");
    rt_log_level_t level;
    char err[512];
    if (rt_log_level_parse (rt_config_get (d->config, "log-level"), &level) != 0) {
        fprintf (stderr,
                 "%s: --log-level / RETAIN_LOG_LEVEL: expected debug, info, warn or error, "
                 "got \"%s\" (see --help)\n",
                 name, rt_config_get (d->config, "log-level"));
        return -1;
    }
    if (rt_clock_init (clock_file) != 0) {
        fprintf (stderr, "%s: --clock-file / RETAIN_CLOCK_FILE: cannot map \"%s\": %s\n", name,
                 clock_file, strerror (errno));
        return -1;
    }
    rt_log_init (name, level);
    if (clock_file[0])
        rt_log (RT_LOG_WARN, "the clock follows a test clock file",
                rt_log_str ("file", clock_file));
    if (d->spec->bus_client && rt_bus_curve_read (d->config, &d->curve, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "bad configuration", rt_log_str ("error", err));
        return -1;
    }
    return 0;
}

/* Connects and applies the migration sets, waiting out a lost connection.
 * 0, 1 when a stop came first, -1 when a migration failed. */
static int
s_migrate (rt_daemon_t *d)
{
    char err[512];
    d->db = rt_db_new (rt_daemon_dsn (d), d->spec->name);
    if (!d->db)
        return -1;
    for (;;) {
        const rt_migration_set_t *const *set = d->spec->migrations;
        rt_daemon_starting (d, "connecting to PostgreSQL");
        if (rt_db_ensure (d->db) != 0)
            return 1;
        rt_daemon_starting (d, "applying migrations");
        for (; set && *set; set++) {
            if (rt_migrate_apply (d->db, *set, err, sizeof err) < 0)
                break;
        }
        if (!set || !*set)
            return 0;
        rt_log (RT_LOG_ERROR, "migration failed", rt_log_str ("schema", (*set)->schema),
                rt_log_str ("error", err));
        if (rt_db_is_ok (d->db))
            return -1; /* a real error, not a lost connection */
    }
}

/* Steps 3 to 5: admin, PostgreSQL, start, run. Returns the exit code. */
static int
s_serve (rt_daemon_t *d)
{
    const rt_daemon_spec_t *spec = d->spec;
    const char *address = rt_config_get (d->config, "admin");
    char err[512] = "";
    int rc;

    d->admin = rt_admin_start (address, d->metrics, s_ready, d, err, sizeof err);
    if (!d->admin) {
        rt_log (RT_LOG_ERROR, "admin server failed", rt_log_str ("error", err));
        return 1;
    }
    rc = s_migrate (d);
    if (rc != 0)
        return rc < 0 ? 1 : 0;
    rt_daemon_starting (d, "starting");
    if (spec->start && spec->start (d, d->arg, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "start failed", rt_log_str ("error", err));
        return 1;
    }
    rt_db_destroy (&d->db);
    if (rt_signal_stopping ())
        return 0;
    atomic_store (&d->phase, S_SERVING);
    rc = spec->run ? spec->run (d, d->arg) : 0;
    atomic_store (&d->phase, S_STOPPING);
    return rc == 0 ? 0 : 1;
}

int
rt_daemon_main (const rt_daemon_spec_t *spec, void *arg, int argc, char **argv)
{
    rt_daemon_t d;
    char err[512] = "";
    int code = 1;
    bool logging = false, configured = false;

    memset (&d, 0, sizeof d);
    d.spec = spec;
    d.arg = arg;
    atomic_init (&d.phase, S_STARTING);
    atomic_init (&d.step, "reading the settings");
    if (rt_signal_install () != 0) {
        fprintf (stderr, "%s: cannot install signal handlers: %s\n", spec->name, strerror (errno));
        return 1;
    }
    if (s_settings (&d, argc, argv, &code) != 0)
        goto cleanup;
    code = 2;
    if (s_process (&d) != 0)
        goto cleanup;
    logging = true;
    code = 1;
    d.metrics = rt_metrics_new ();
    if (!d.metrics)
        goto cleanup;
    configured = true;
    if (spec->configure && spec->configure (&d, arg, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "bad configuration", rt_log_str ("error", err));
        code = 2;
        goto cleanup;
    }
    rt_config_log (d.config);
    code = s_serve (&d);

cleanup:
    atomic_store (&d.phase, S_STOPPING);
    /* The admin thread calls `ready`, which reads what stop releases. */
    rt_admin_stop (&d.admin);
    if (configured && spec->stop)
        spec->stop (&d, arg);
    rt_db_destroy (&d.db);
    rt_metrics_destroy (&d.metrics);
    rt_config_destroy (&d.config);
    if (logging)
        rt_log (RT_LOG_INFO, "stopped", rt_log_int ("exit_code", code));
    return code;
}

void
rt_daemon_member (const char *given, char *out, size_t outlen)
{
    char host[64] = "";
    if (given && given[0]) {
        snprintf (out, outlen, "%s", given);
        return;
    }
    gethostname (host, sizeof host - 1);
    snprintf (out, outlen, "%s:%d", host, (int)getpid ());
}

rt_consumer_t *
rt_daemon_consumer_new (rt_daemon_t *d, const char *group, const char *member,
                        const char *const *streams, size_t nstreams, rt_consumer_handler_fn handler,
                        void *handler_arg, char *err, size_t errlen)
{
    const rt_config_t *c = rt_daemon_config (d);
    rt_consumer_config_t cc = {0};
    int64_t batch_max;
    if (rt_config_get_int (c, "batch-max", 1, 100000, &batch_max, err, errlen) != 0)
        return NULL;
    cc.dsn = rt_daemon_dsn (d);
    cc.group = group;
    cc.member = member;
    cc.pub_endpoints = rt_config_get (c, "pub");
    cc.curve = rt_daemon_bus_curve (d);
    cc.streams = streams;
    cc.nstreams = nstreams;
    cc.batch_max = (int)batch_max;
    cc.metrics = rt_daemon_metrics (d);
    cc.handler = handler;
    cc.handler_arg = handler_arg;
    return rt_consumer_new (&cc, err, errlen);
}

int
rt_daemon_consume (rt_consumer_t *consumer, atomic_bool *running)
{
    int rc;
    atomic_store (running, true);
    rc = rt_consumer_run (consumer);
    atomic_store (running, false);
    rt_log (RT_LOG_INFO, "stopping");
    return rc == 0 ? 0 : -1;
}

bool
rt_daemon_consuming (atomic_bool *running, char *why, size_t whylen)
{
    if (atomic_load (running))
        return true;
    snprintf (why, whylen, "the consumer is not running");
    return false;
}

const rt_bus_curve_t *
rt_daemon_bus_curve (const rt_daemon_t *d)
{
    return d->spec->bus_client ? &d->curve : NULL;
}

const rt_config_t *
rt_daemon_config (const rt_daemon_t *d)
{
    return d->config;
}

rt_metrics_t *
rt_daemon_metrics (rt_daemon_t *d)
{
    return d->metrics;
}

const char *
rt_daemon_dsn (const rt_daemon_t *d)
{
    return rt_config_get (d->config, "pg-dsn");
}

rt_db_t *
rt_daemon_db_take (rt_daemon_t *d)
{
    rt_db_t *db = d->db;
    d->db = NULL;
    return db;
}

void
rt_daemon_starting (rt_daemon_t *d, const char *step)
{
    atomic_store (&d->step, step);
}

bool
rt_daemon_stopping (const rt_daemon_t *d)
{
    (void)d;
    return rt_signal_stopping ();
}

void
rt_daemon_request_stop (rt_daemon_t *d)
{
    (void)d;
    rt_signal_request_stop ();
}

bool
rt_daemon_wait_ms (rt_daemon_t *d, int ms)
{
    (void)d;
    return rt_signal_sleep_ms (ms);
}

int
rt_daemon_stop_fd (const rt_daemon_t *d)
{
    (void)d;
    return rt_signal_fd ();
}
