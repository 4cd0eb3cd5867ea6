/*
 * retain-ingestd: every channel in, verified, de-duplicated, durable.
 *
 * What is ingestd's own: its settings (the webhook server's:
 * daemon/server_settings.c), its migrations, its parts (inboxes, writer,
 * webhook server, inbox_sync's announcements and IMAP pollers) and its
 * loop: reload the inboxes every second and follow their changes until
 * SIGTERM; then stop taking requests, answer those in flight once the
 * writer has settled them, and stop. The rest is common/daemon's.
 *
 * With busd's ingress endpoints (--bus-ingress) the writer publishes what
 * it committed straight to busd, the outbox behind it (writer.c); without,
 * every webhook goes through the outbox. Neither way does readiness wait
 * on busd: a 2xx needs PostgreSQL's commit alone.
 *
 * /readyz is 200 only while ingestd serves and can reach PostgreSQL: every
 * webhook must commit there before its 2xx, so while the inbox reload or
 * the writer's connection cannot, a load balancer should send providers
 * elsewhere, and the reason says why.
 */
#include "inbox_sync.h"
#include "inboxes.h"
#include "retention.h"
#include "rt_daemon.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "server.h"
#include "server_settings.h"
#include "writer.h"

extern const rt_migration_set_t rt_migrations_ingest;

/* The outbox first: ingestd's writer appends to it. */
static const rt_migration_set_t *const s_migrations[] = {&rt_migrations_outbox,
                                                         &rt_migrations_ingest, NULL};

/* The daemon's one context. */
typedef struct {
    server_config_t server_config; /* the webhook server's settings */
    writer_bus_t bus;              /* the writer's direct path to busd */
    char member[128];              /* this process, host:pid, in ingest.publishers */
    inboxes_t *inboxes;            /* configured inboxes */
    writer_t *writer;              /* group commit */
    server_t *server;              /* webhooks */
    inbox_sync_t *sync;            /* announcements and IMAP pollers */
    int64_t keep_ms;               /* --keep */
    retention_t *retention;        /* what is older than --keep goes, hourly */
} ingestd_t;

/* On the admin thread: the inboxes' and the writer's own locked state (the
 * writer makes a webhook durable: its connection counts too), and
 * retention's, which runs on the inboxes' loop: stuck on a silent server,
 * it keeps their refresh from starting, and from saying so. */
static bool
s_ready (void *arg, char *why, size_t whylen)
{
    ingestd_t *self = arg;
    return inboxes_db_ok (self->inboxes, why, whylen) &&
           retention_db_ok (self->retention, INBOXES_STALL_MS, why, whylen) &&
           writer_db_ok (self->writer, why, whylen);
}

static int
s_configure (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    ingestd_t *self = arg;
    server_config_t *sc = &self->server_config;
    if (server_settings_read (rt_daemon_config (d), sc, err, errlen) != 0 ||
        server_settings_read_bus (rt_daemon_config (d), &self->bus, err, errlen) != 0 ||
        server_settings_read_keep (rt_daemon_config (d), &self->keep_ms, err, errlen) != 0)
        return -1;
    rt_daemon_member (NULL, self->member, sizeof self->member);
    self->bus.member = self->member;
    self->bus.curve = rt_daemon_bus_curve (d);
    sc->metrics = rt_daemon_metrics (d);
    self->inboxes = inboxes_new (rt_daemon_dsn (d));
    sc->inboxes = self->inboxes;
    self->retention = retention_new (rt_daemon_dsn (d), self->keep_ms, sc->metrics);
    if (!self->inboxes || !self->retention) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The first inbox load, then the writer, then the door. */
static int
s_start (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    ingestd_t *self = arg;
    server_config_t *sc = &self->server_config;
    rt_daemon_starting (d, "loading the inboxes");
    while (inboxes_refresh (self->inboxes) < 0) {
        if (rt_daemon_wait_ms (d, 1000))
            return 0;
    }
    rt_daemon_starting (d, "starting the writer and the webhook server");
    self->writer = writer_start_bus (rt_daemon_dsn (d), sc->metrics, &self->bus, err, errlen);
    if (!self->writer)
        return -1;
    sc->writer = self->writer;
    self->server = server_start (sc, err, errlen);
    if (!self->server)
        return -1;
    self->sync = inbox_sync_new (self->inboxes, self->writer, rt_daemon_dsn (d), sc->metrics,
                                 sc->public_url);
    if (!self->sync) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    rt_log (RT_LOG_INFO, "listening", rt_log_str ("http", sc->address),
            rt_log_int ("port", server_port (self->server)),
            rt_log_str ("public_url", sc->public_url));
    inbox_sync_apply (self->sync);
    return 0;
}

static int
s_run (rt_daemon_t *d, void *arg)
{
    ingestd_t *self = arg;
    while (!rt_daemon_wait_ms (d, 1000)) {
        if (inboxes_refresh (self->inboxes) == 1)
            inbox_sync_apply (self->sync);
        retention_tick (self->retention);
    }
    rt_log (RT_LOG_INFO, "stopping");
    /* No new requests; those in flight are answered once the writer has
     * settled them. The writer stops last, after the admin server. */
    server_stop (&self->server);
    inbox_sync_destroy (&self->sync);
    return 0;
}

static void
s_stop (rt_daemon_t *d, void *arg)
{
    ingestd_t *self = arg;
    (void)d;
    server_stop (&self->server); /* when start failed half-way */
    inbox_sync_destroy (&self->sync);
    writer_stop (&self->writer);
    inboxes_destroy (&self->inboxes);
    retention_destroy (&self->retention);
}

int
main (int argc, char **argv)
{
    static const rt_daemon_spec_t spec = {
        .name = "retain-ingestd",
        .summary = "Channel webhooks and pollers in: verified, de-duplicated, durable before 2xx.",
        .settings = server_settings,
        .admin_env = "RETAIN_INGEST_ADMIN",
        .admin_default = "127.0.0.1:9702",
        .bus_client = true,
        .migrations = s_migrations,
        .configure = s_configure,
        .start = s_start,
        .run = s_run,
        .stop = s_stop,
        .ready = s_ready,
    };
    ingestd_t self = {0};
    return rt_daemon_main (&spec, &self, argc, argv);
}
