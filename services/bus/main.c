/*
 * retain-busd: the durable event log.
 *
 * What is busd's own: its settings, its migrations (the outbox's, then the
 * bus's), the context (busd.h), and the loop of run.c: standby until the
 * writer lock is ours, then read, write, commit, acknowledge, publish,
 * until SIGTERM; then finish the batch in hand and stop. Everything every
 * daemon does (settings and --help, logs, admin, signals, PostgreSQL and
 * migrations, the stop) is common/daemon's.
 */
#include <errno.h>
#include <pthread.h>

#include <zmq.h>

#include "busd.h"
#include "rt_daemon.h"
#include "rt_log.h"
#include "rt_outbox.h"

extern const rt_migration_set_t rt_migrations_bus;

/* The outbox first: busd drains it, and the bus's migration 003 moves the
 * rows of the old bus.outbox into it. */
static const rt_migration_set_t *const s_migrations[] = {&rt_migrations_outbox, &rt_migrations_bus,
                                                         NULL};

static const rt_config_setting_t s_settings[] = {
    {"ingress", "RETAIN_BUS_INGRESS", "tcp://127.0.0.1:7701",
     "ZeroMQ ROUTER endpoint producers connect to"},
    {"pub", "RETAIN_BUS_PUB", "tcp://127.0.0.1:7702", "ZeroMQ PUB endpoint subscribers connect to"},
    {"max-message", "RETAIN_BUS_MAX_MESSAGE", "1M", "largest envelope accepted, bytes"},
    {"batch-max", "RETAIN_BUS_BATCH_MAX", "16384", "most envelopes written in one transaction"},
    {"pub-hwm", "RETAIN_BUS_PUB_HWM", "65536",
     "events PUB holds per subscriber; beyond, it drops and the consumer reads them from the log"},
    {"retention", "RETAIN_BUS_RETENTION", "7d",
     "how long events (and their ids, for de-duplication) are kept once every group consumed "
     "them; at least 1d"},
    {"outbox-poll", "RETAIN_BUS_OUTBOX_POLL", "1s", "outbox polling interval besides NOTIFY"},
    {"housekeeping", "RETAIN_BUS_HOUSEKEEPING", "1h",
     "interval of partition creation, retention and id pruning"},
    {"curve-server-secret", "RETAIN_BUSD_CURVE_SECRET", "",
     "busd's own CURVE secret key (Z85; the public key clients verify is derived and logged); "
     "empty: plain TCP"},
    {"curve-clients", "RETAIN_BUSD_CURVE_CLIENTS", "",
     "file of admitted client public keys (Z85, one per line)"},
    {NULL, NULL, NULL, NULL}};

/* RETAIN_BUS_CURVE_SECRET_KEY meant busd's secret here and a client's own in
 * every client: busd refuses it rather than start without CURVE. */
static const rt_config_retired_t s_retired[] = {
    {"RETAIN_BUS_CURVE_SECRET_KEY", "RETAIN_BUSD_CURVE_SECRET (busd's own secret key)"},
    {"RETAIN_BUS_CURVE_CLIENTS", "RETAIN_BUSD_CURVE_CLIENTS (the file of admitted client keys)"},
    {NULL, NULL}};

/* Reads the settings, makes the context and checks the CURVE keys and the
 * client list, all before anything serves. */
static int
s_configure (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    busd_t *self = arg;
    const rt_config_t *config = rt_daemon_config (d);
    int64_t batch_max, pub_hwm;
    self->ingress_endpoint = rt_config_get (config, "ingress");
    self->pub_endpoint = rt_config_get (config, "pub");
    self->curve_secret = rt_config_get (config, "curve-server-secret");
    self->curve_clients = rt_config_get (config, "curve-clients");
    if (rt_config_get_size (config, "max-message", &self->max_message, err, errlen) != 0 ||
        rt_config_get_int (config, "batch-max", 1, 1000000, &batch_max, err, errlen) != 0 ||
        rt_config_get_int (config, "pub-hwm", 1, 10000000, &pub_hwm, err, errlen) != 0 ||
        rt_config_get_ms (config, "retention", &self->retention_ms, err, errlen) != 0 ||
        rt_config_get_ms (config, "outbox-poll", &self->outbox_poll_ms, err, errlen) != 0 ||
        rt_config_get_ms (config, "housekeeping", &self->housekeeping_ms, err, errlen) != 0)
        return -1;
    self->batch_max = (int)batch_max;
    self->pub_hwm = (int)pub_hwm;
    if (self->retention_ms < 86400000) {
        rt_errf (err, errlen, "--retention must be at least 1d (the log is partitioned by day)");
        return -1;
    }
    if (busd_init (self, rt_daemon_metrics (d)) != 0) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    self->zmq_ctx = zmq_ctx_new ();
    if (!self->zmq_ctx) {
        rt_errf (err, errlen, "ZeroMQ: %s", zmq_strerror (errno));
        return -1;
    }
    return zap_start (self, err, errlen);
}

/* Takes the migrations' connection as the writer's. */
static int
s_start (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    busd_t *self = arg;
    self->db = rt_daemon_db_take (d);
    /* The statements are registered on a connection marked for renewal, so
     * that one lost half-way through cannot leave some of them out: the
     * loop's first rt_db_ensure connects again and prepares them all, as
     * rt_db does after every reconnection. */
    rt_db_invalidate (self->db);
    if (writer_prepare (self) != 0) {
        rt_errf (err, errlen, "the writer's statements: %s", rt_db_error (self->db));
        return -1;
    }
    return 0;
}

static int
s_run (rt_daemon_t *d, void *arg)
{
    (void)d;
    return run_loop (arg);
}

static void
s_stop (rt_daemon_t *d, void *arg)
{
    (void)d;
    busd_release (arg);
}

int
main (int argc, char **argv)
{
    static const rt_daemon_spec_t spec = {
        .name = "retain-busd",
        .summary = "The durable event log of retain: sequences, persists and fans out every event.",
        .settings = s_settings,
        .retired = s_retired,
        .admin_env = "RETAIN_BUS_ADMIN",
        .admin_default = "127.0.0.1:9701",
        .migrations = s_migrations,
        .configure = s_configure,
        .start = s_start,
        .run = s_run,
        .stop = s_stop,
        .ready = run_ready,
    };
    busd_t self = {.why_lock = PTHREAD_MUTEX_INITIALIZER};
    return rt_daemon_main (&spec, &self, argc, argv);
}
