/*
 * rt_daemon: the skeleton every retain daemon's main stands on.
 *
 * A daemon describes itself in an rt_daemon_spec_t (its name, its own
 * settings, its migrations, four callbacks) and hands its main over to
 * rt_daemon_main, which does what every daemon does, in this order:
 *
 *   1. settings: the daemon's own table, then the common one (pg-dsn,
 *      admin, log-level, clock-file) and, for a bus client, the CURVE keys
 *      (rt_bus_client_settings), all from the environment overridden by
 *      --flags; --help lists every one; a retired variable still set, an
 *      unknown flag or a bad value exits 2 with the reason;
 *   2. JSON logs (rt_log_init), the test clock when one is named
 *      (rt_clock_init), the metrics registry, then `configure`: the daemon
 *      reads its own settings (a bad one exits 2) and makes what its
 *      readiness callback reads; then the settings are logged (one
 *      "config" line, secrets masked);
 *   3. the admin server (/healthz, /readyz, /metrics): /readyz is 503
 *      "starting: <step>" from here until `start` has returned;
 *   4. PostgreSQL: connect (waiting out an unreachable server), apply the
 *      daemon's migration sets in order, each under rt_migrate's advisory
 *      lock (a lost connection is waited out and the sets tried again; a
 *      migration that fails on a live connection exits 1);
 *   5. `start` (its sockets, threads, servers; -1 exits 1), then `run`,
 *      the main loop, while /readyz asks the daemon's `ready`;
 *   6. on SIGTERM or SIGINT /readyz turns 503 "stopping" at once; `run`
 *      finishes what it has in hand and returns; the admin server stops;
 *      `stop` releases what configure and start made; "stopped" is logged
 *      and the exit code returned: 0 after a requested stop (also one that
 *      came while starting), 1 after a failure, 2 for a bad setting.
 *
 * The callbacks run on the main thread, except `ready`, which the admin
 * server calls on its own thread from step 3 to the end of step 6: it must
 * read only what is safe to read concurrently (atomics, locked state), and
 * everything it reads must stay valid until `stop`.
 */
#ifndef RT_DAEMON_H
#define RT_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "rt_bus.h"
#include "rt_config.h"
#include "rt_consumer.h"
#include "rt_db.h"
#include "rt_metrics.h"
#include "rt_migrate.h"

typedef struct rt_daemon_t rt_daemon_t;

/* What a daemon is, for rt_daemon_main. Every callback may be NULL. */
typedef struct {
    const char *name;    /* "retain-busd": the logs' service, --help's head, application_name */
    const char *summary; /* one line under --help's usage */
    const rt_config_setting_t *settings; /* the daemon's own settings (NULL-name ended), listed
                                            first; NULL: none */
    const rt_config_retired_t *retired;  /* variables it no longer reads (env NULL ended), refused
                                            while set; NULL: none */
    const char *admin_env;               /* the variable of its admin address, "RETAIN_BUS_ADMIN" */
    const char *admin_default;           /* its default, "127.0.0.1:9701" */
    bool bus_client; /* it connects to busd: the CURVE client keys join its settings, read
                        before configure (rt_daemon_bus_curve) */
    const rt_migration_set_t *const *migrations; /* applied in order at start (NULL ended);
                                                    NULL: none */
    /* Reads the daemon's own settings (rt_daemon_config) and makes what
     * `ready` reads, before anything serves; nothing that blocks. -1 with
     * the reason in err: a bad setting, the daemon exits 2. */
    int (*configure) (rt_daemon_t *d, void *arg, char *err, size_t errlen);
    /* Starts the daemon's work once the migrations are applied (may take
     * the connection they ran on: rt_daemon_db_take). -1 with the reason
     * in err: the daemon exits 1. */
    int (*start) (rt_daemon_t *d, void *arg, char *err, size_t errlen);
    /* The main loop: returns once rt_daemon_stopping and what was in hand
     * is finished (0), or on a failure it cannot go on from (-1: exit 1).
     * Not called when a stop came while starting. */
    int (*run) (rt_daemon_t *d, void *arg);
    /* Releases what configure and start made; called once configure was
     * called, whatever happened since, so it must cope with what was never
     * made. The admin server has stopped: nothing calls `ready` any more. */
    void (*stop) (rt_daemon_t *d, void *arg);
    /* Readiness while serving, beyond the skeleton's own phases: true, or
     * false with the reason in why. Runs on the admin thread. */
    bool (*ready) (void *arg, char *why, size_t whylen);
} rt_daemon_spec_t;

/* Runs the daemon described by spec (lent, with arg, the daemon's context,
 * handed to every callback) as its main; returns the process's exit code. */
int rt_daemon_main (const rt_daemon_spec_t *spec, void *arg, int argc, char **argv);

/* The parsed settings, the daemon's own and the common ones (lent). */
const rt_config_t *rt_daemon_config (const rt_daemon_t *d);

/* A bus client's CURVE keys from its settings, for rt_producer_new and
 * rt_consumer_config_t.curve (lent; no server key when CURVE is off);
 * NULL for a daemon that is no bus client. */
const rt_bus_curve_t *rt_daemon_bus_curve (const rt_daemon_t *d);

/* A replica's name for logs and claims into out: `given` (its --member
 * setting) when not empty, else host:pid, unique per process. */
void rt_daemon_member (const char *given, char *out, size_t outlen);

/* The consumer group `group` of a daemon that reads the bus, as every
 * consuming daemon makes it: its busd PUB endpoints from the daemon's
 * setting "pub" (RETAIN_BUS_PUB), its batch from "batch-max" (1 to
 * 100,000; a bad value fails with the reason), the daemon's PostgreSQL,
 * CURVE keys and metrics, member as this replica's name. NULL with err
 * filled. Owned: rt_consumer_destroy. */
rt_consumer_t *rt_daemon_consumer_new (rt_daemon_t *d, const char *group, const char *member,
                                       const char *const *streams, size_t nstreams,
                                       rt_consumer_handler_fn handler, void *handler_arg, char *err,
                                       size_t errlen);

/* The settings rt_daemon_consumer_new and the member's name read, for a
 * consuming daemon's table (`prefix` "RETAIN_NOTIFY": RETAIN_NOTIFY_MEMBER,
 * RETAIN_NOTIFY_BATCH_MAX), so their defaults and help are said once. */
/* clang-format off */
#define RT_DAEMON_CONSUMER_SETTINGS(prefix)                                                       \
    {"pub", "RETAIN_BUS_PUB", "tcp://127.0.0.1:7702", "busd PUB endpoints, comma-separated"},    \
    {"member", prefix "_MEMBER", "",                                                              \
     "this replica's name in logs and claims (unique per replica); empty: host:pid"},             \
    {"batch-max", prefix "_BATCH_MAX", "500", "events per transaction when catching up"}
/* clang-format on */

/* The `run` of a daemon whose main loop is its consumer group: runs
 * consumer (rt_consumer_run) until a stop, with *running true meanwhile
 * for rt_daemon_consuming, then logs "stopping". 0, or -1 when the
 * consumer failed. */
int rt_daemon_consume (rt_consumer_t *consumer, atomic_bool *running);

/* For that daemon's `ready` (on the admin thread): true while
 * rt_daemon_consume runs, else false with "the consumer is not running"
 * in why. */
bool rt_daemon_consuming (atomic_bool *running, char *why, size_t whylen);

/* The metrics registry /metrics serves (lent; it outlives `stop`). */
rt_metrics_t *rt_daemon_metrics (rt_daemon_t *d);

/* The PostgreSQL connection string (--pg-dsn; lent). */
const char *rt_daemon_dsn (const rt_daemon_t *d);

/* The connection the migrations ran on, handed over: owned by the caller
 * (rt_db_destroy it in `stop`). NULL before the migrations and after the
 * first call. Not taken by the end of `start`, it is closed. */
rt_db_t *rt_daemon_db_take (rt_daemon_t *d);

/* Names what starting waits for now, shown by /readyz as "starting: <step>"
 * (`step` must live as long as the daemon: a literal). */
void rt_daemon_starting (rt_daemon_t *d, const char *step);

/* True once a stop was requested (SIGTERM, SIGINT, rt_daemon_request_stop). */
bool rt_daemon_stopping (const rt_daemon_t *d);

/* Requests a stop as SIGTERM would (a fatal path of the daemon's own). */
void rt_daemon_request_stop (rt_daemon_t *d);

/* Sleeps up to ms milliseconds; true (at once) when a stop is requested. */
bool rt_daemon_wait_ms (rt_daemon_t *d, int ms);

/* A descriptor that turns readable when a stop is requested, for a loop
 * that polls its sockets (zmq_poll takes plain descriptors). */
int rt_daemon_stop_fd (const rt_daemon_t *d);

#endif
