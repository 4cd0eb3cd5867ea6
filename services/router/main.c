/*
 * retain-routerd: one customer across channels, one conversation, routed
 * to the operator who knows them.
 *
 * What is routerd's own: its settings, its migrations (the outbox's, crm's,
 * routing's), the consumer group "router" over the streams message, order,
 * shipment, loyalty and customer (daemon/handler.c: identity, then routing
 * and the customer card, in the round's transaction) and the timer
 * (daemon/timer.c: routing_tick and the gauges) and the operator API
 * (api/: its own HTTP workers, each with a connection of its own, on
 * RETAIN_ROUTER_HTTP). The main loop is the consumer's until SIGTERM; the
 * rest is common/daemon's.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "api.h"
#include "identity.h"
#include "routerd.h"
#include "routing.h"
#include "rt_consumer.h"
#include "rt_daemon.h"
#include "rt_log.h"
#include "rt_outbox.h"

/* crm's foreign keys come before routing's: identity's set first. */
static const rt_migration_set_t *const s_migrations[] = {&rt_migrations_outbox, &rt_migrations_crm,
                                                         &rt_migrations_routing, NULL};

/* shipment and loyalty feed the customer card (card.h). */
static const char *const s_streams[] = {"message", "order", "shipment", "loyalty", "customer"};

static const rt_config_setting_t s_settings[] = {
    {"http", "RETAIN_ROUTER_HTTP", "127.0.0.1:8781", "operator API address (host:port)"},
    {"http-threads", "RETAIN_ROUTER_HTTP_THREADS", "2", "operator API worker threads"},
    {"pub", "RETAIN_BUS_PUB", "tcp://127.0.0.1:7702", "busd PUB endpoints, comma-separated"},
    {"member", "RETAIN_ROUTER_MEMBER", "", "this replica's name in logs; empty: host:pid"},
    {"batch-max", "RETAIN_ROUTER_BATCH_MAX", "500", "events per transaction when catching up"},
    {"tick", "RETAIN_ROUTER_TICK", "1s",
     "interval of the routing timer (queue, heartbeats, rebalancing, snoozes, auto-resolve)"},
    {"offline-grace", "RETAIN_ROUTER_OFFLINE_GRACE", "5m",
     "an operator offline this long has their conversations rebalanced"},
    {"heartbeat-timeout", "RETAIN_ROUTER_HEARTBEAT_TIMEOUT", "0",
     "no heartbeat this long: the operator counts as offline; 0: presence changes only when set"},
    {"auto-resolve", "RETAIN_ROUTER_AUTO_RESOLVE", "0",
     "answered conversations quiet this long are resolved; 0: never"},
    {"tick-batch", "RETAIN_ROUTER_TICK_BATCH", "500", "rows one tick step handles at most"},
    {"gauges", "RETAIN_ROUTER_GAUGES", "5s", "interval of the conversation gauges' refresh"},
    {"stream-retention", "RETAIN_ROUTER_STREAM_RETENTION", "24h",
     "how long GET /v1/stream's events are kept for a reconnect to resume from"},
    {"default-country", "RETAIN_ROUTER_DEFAULT_COUNTRY", "UA",
     "ISO 3166 country national phone numbers are read in"},
    {NULL, NULL, NULL, NULL}};

/* The daemon's one context. */
typedef struct {
    routerd_timer_config_t timer_config; /* the timer's settings */
    handler_t handler;                   /* the consumer handler's state */
    rt_consumer_t *consumer;             /* the group "router" */
    routerd_timer_t *timer;              /* routing_tick and the gauges */
    api_config_t api_config;             /* the operator API's settings */
    api_t *api;                          /* the operator API */
    atomic_bool consuming;               /* the consumer runs: /readyz is 200 */
} routerd_t;

static int
s_configure (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    routerd_t *self = arg;
    const rt_config_t *c = rt_daemon_config (d);
    routerd_timer_config_t *t = &self->timer_config;
    int64_t tick_batch, http_threads;
    if (rt_config_get_int (c, "http-threads", 1, 64, &http_threads, err, errlen) != 0 ||
        rt_config_get_int (c, "tick-batch", 1, 100000, &tick_batch, err, errlen) != 0 ||
        rt_config_get_ms (c, "tick", &t->tick_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "gauges", &t->gauges_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "offline-grace", &t->cfg.offline_grace_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "heartbeat-timeout", &t->cfg.heartbeat_timeout_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "auto-resolve", &t->cfg.auto_resolve_ms, err, errlen) != 0)
        return -1;
    if (t->tick_ms < 10 || t->gauges_ms < 10) {
        rt_errf (err, errlen, "--tick and --gauges must be at least 10ms");
        return -1;
    }
    t->cfg.batch = (size_t)tick_batch;
    t->dsn = rt_daemon_dsn (d);
    t->metrics = rt_daemon_metrics (d);
    self->api_config.address = rt_config_get (c, "http");
    self->api_config.dsn = rt_daemon_dsn (d);
    self->api_config.threads = (int)http_threads;
    self->api_config.metrics = t->metrics;
    self->api_config.default_country = rt_config_get (c, "default-country");
    if (rt_config_get_ms (c, "stream-retention", &self->api_config.stream_retention_ms, err,
                          errlen) != 0)
        return -1;
    if (self->api_config.stream_retention_ms < 60000) {
        rt_errf (err, errlen, "--stream-retention must be at least 1m");
        return -1;
    }
    handler_init (&self->handler, t->metrics, rt_config_get (c, "default-country"));
    /* An empty member is the consumer's own host:pid. */
    self->consumer = rt_daemon_consumer_new (
        d, "router", rt_config_get (c, "member")[0] ? rt_config_get (c, "member") : NULL, s_streams,
        sizeof s_streams / sizeof s_streams[0], handler_handle, &self->handler, err, errlen);
    if (!self->consumer)
        return -1;
    rt_consumer_set_batch (self->consumer, handler_batch);
    return 0;
}

static int
s_start (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    routerd_t *self = arg;
    rt_db_t *db = rt_daemon_db_take (d);
    int rc;
    /* The API keys' and the Idempotency-Key store's tables, beside
     * routerd's own sets (their migrations are common/http's). */
    rc = db ? api_migrate (db, err, errlen) : -1;
    if (!db)
        rt_errf (err, errlen, "no database connection for the API's migrations");
    rt_db_destroy (&db);
    if (rc != 0)
        return -1;
    self->timer = routerd_timer_start (&self->timer_config, err, errlen);
    if (!self->timer)
        return -1;
    self->api = api_start (&self->api_config, err, errlen);
    return self->api ? 0 : -1;
}

static int
s_run (rt_daemon_t *d, void *arg)
{
    routerd_t *self = arg;
    int rc;
    (void)d;
    atomic_store (&self->consuming, true);
    rc = rt_consumer_run (self->consumer);
    atomic_store (&self->consuming, false);
    rt_log (RT_LOG_INFO, "stopping");
    return rc == 0 && !self->handler.fatal ? 0 : -1;
}

static void
s_stop (rt_daemon_t *d, void *arg)
{
    routerd_t *self = arg;
    (void)d;
    api_stop (&self->api);
    routerd_timer_stop (&self->timer);
    rt_consumer_destroy (&self->consumer);
}

/* On the admin thread: an atomic. */
static bool
s_ready (void *arg, char *why, size_t whylen)
{
    routerd_t *self = arg;
    if (atomic_load (&self->consuming))
        return true;
    snprintf (why, whylen, "the consumer is not running");
    return false;
}

int
main (int argc, char **argv)
{
    static const rt_daemon_spec_t spec = {
        .name = "retain-routerd",
        .summary = "Customers across channels, one conversation each, routed to their operator.",
        .settings = s_settings,
        .admin_env = "RETAIN_ROUTER_ADMIN",
        .admin_default = "127.0.0.1:9703",
        .bus_client = true,
        .migrations = s_migrations,
        .configure = s_configure,
        .start = s_start,
        .run = s_run,
        .stop = s_stop,
        .ready = s_ready,
    };
    routerd_t self = {0};
    return rt_daemon_main (&spec, &self, argc, argv);
}
