/*
 * retain-ingestd: every channel in, verified, de-duplicated, durable.
 *
 * main owns the context: configuration, the inboxes, the writer, the
 * webhook server, the IMAP pollers and the admin server. After start it
 * runs the control loop: reload inboxes when they change, start and stop
 * the pollers of e-mail inboxes to match, until SIGTERM; then it stops
 * taking requests, answers those in flight once the writer has settled
 * them, and stops.
 *
 * /readyz is 200 only while ingestd serves and can reach PostgreSQL: every
 * webhook it accepts must commit there before its 2xx, so while it cannot
 * (the inbox reload, which asks PostgreSQL every second, fails or hangs)
 * a load balancer should send providers elsewhere, and the reason says why.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "inboxes.h"
#include "rt_admin.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_log.h"
#include "rt_migrate.h"
#include "rt_signal.h"
#include "server.h"
#include "writer.h"

extern const rt_migration_set_t rt_migrations_bus;
extern const rt_migration_set_t rt_migrations_ingest;

#define MAX_POLLERS 256

static const rt_config_setting_t s_settings[] = {
    {"pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"},
    {"http", "RETAIN_INGEST_HTTP", "127.0.0.1:8780", "webhook HTTP address"},
    {"public-url", "RETAIN_INGEST_PUBLIC_URL", "http://127.0.0.1:8780",
     "the base URL providers call (behind a proxy: the proxy's); signatures over URLs use it"},
    {"admin", "RETAIN_INGEST_ADMIN", "127.0.0.1:9702",
     "admin HTTP address (/healthz /readyz /metrics)"},
    {"http-threads", "RETAIN_INGEST_HTTP_THREADS", "2", "webhook worker threads"},
    {"max-body", "RETAIN_INGEST_MAX_BODY", "1M", "largest request body accepted (larger: 413)"},
    {"request-timeout", "RETAIN_INGEST_REQUEST_TIMEOUT", "10s",
     "longest wait for a webhook's commit before answering 503"},
    {"http-header-timeout", "RETAIN_INGEST_HTTP_HEADER_TIMEOUT", "10s",
     "longest time for a request's line and headers to arrive (then 408 and close)"},
    {"http-per-address", "RETAIN_INGEST_HTTP_PER_ADDRESS", "256",
     "open webhook connections per client IP address (more: 429 and close)"},
    {"log-level", "RETAIN_LOG_LEVEL", "info", "debug, info, warn or error"},
    {NULL, NULL, NULL, NULL}};

typedef struct {
    char id[96];           /* inbox id */
    char *fingerprint;     /* its configuration and secret when started */
    imap_poller_t *poller; /* the running poller */
} s_poller_slot_t;

typedef struct {
    const char *dsn;                      /* PostgreSQL */
    inboxes_t *inboxes;                   /* configured inboxes */
    writer_t *writer;                     /* group commit */
    server_t *server;                     /* webhooks */
    rt_metrics_t *metrics;                /* the registry */
    s_poller_slot_t pollers[MAX_POLLERS]; /* IMAP pollers of e-mail inboxes */
    size_t npollers;                      /* used slots */
    atomic_int phase;                     /* an s_phase_t */
} ingestd_t;

typedef enum {
    S_STARTING = 0, /* migrations, first inbox load, servers */
    S_SERVING,      /* taking webhooks */
    S_STOPPING,     /* SIGTERM: finishing what is in flight */
} s_phase_t;

/* Runs on the admin thread: reads only the phase (atomic) and the inboxes'
 * own locked state, both set up before the admin server starts. */
static bool
s_ready (void *arg, char *why, size_t whylen)
{
    ingestd_t *self = arg;
    int phase = atomic_load (&self->phase);
    if (phase == S_STOPPING) {
        snprintf (why, whylen, "stopping");
        return false;
    }
    if (!inboxes_db_ok (self->inboxes, why, whylen))
        return false;
    if (phase == S_STARTING) {
        snprintf (why, whylen, "starting: inboxes not loaded yet");
        return false;
    }
    /* The writer is what makes a webhook durable: its own connection
     * counts, not only the inbox loader's. */
    if (!writer_db_ok (self->writer, why, whylen))
        return false;
    return true;
}

static char *
s_fingerprint (const ingest_inbox_t *inbox)
{
    char *config = json_dumps (inbox->config, JSON_SORT_KEYS | JSON_COMPACT);
    char *out = NULL;
    if (config && asprintf (&out, "%s\n%s", inbox->secret, config) < 0)
        out = NULL;
    free (config);
    return out;
}

/* Starts, restarts and stops IMAP pollers to match the inboxes that are
 * polled rather than called (their kind has no route: IMAP mailboxes) and
 * have an "imap_url". */
static void
s_sync_pollers (ingestd_t *self)
{
    inboxes_snapshot_t *snap = inboxes_acquire (self->inboxes);
    size_t i, k;
    char err[256];

    /* Stop pollers whose inbox is gone or changed. */
    for (k = 0; k < self->npollers;) {
        s_poller_slot_t *slot = &self->pollers[k];
        const ingest_inbox_t *inbox = inboxes_find (snap, slot->id);
        char *fp = inbox ? s_fingerprint (inbox) : NULL;
        bool keep = inbox && fp && strcmp (fp, slot->fingerprint) == 0 &&
                    !inboxes_kind (inbox)->route &&
                    json_is_string (json_object_get (inbox->config, "imap_url"));
        free (fp);
        if (keep) {
            k++;
            continue;
        }
        rt_log (RT_LOG_INFO, "stopping IMAP poller", rt_log_str ("inbox", slot->id));
        imap_poller_stop (&slot->poller);
        free (slot->fingerprint);
        self->pollers[k] = self->pollers[--self->npollers];
    }
    /* Start pollers for inboxes that have none. */
    for (i = 0; i < inboxes_count (snap); i++) {
        const ingest_inbox_t *inbox = inboxes_at (snap, i);
        bool running = false;
        if (inboxes_kind (inbox)->route ||
            !json_is_string (json_object_get (inbox->config, "imap_url")))
            continue;
        for (k = 0; k < self->npollers && !running; k++)
            running = strcmp (self->pollers[k].id, inbox->id) == 0;
        if (running || self->npollers == MAX_POLLERS)
            continue;
        {
            s_poller_slot_t *slot = &self->pollers[self->npollers];
            slot->poller =
                imap_poller_start (inbox, self->writer, self->dsn, self->metrics, err, sizeof err);
            if (!slot->poller) {
                rt_log (RT_LOG_ERROR, "IMAP poller not started", rt_log_str ("inbox", inbox->id),
                        rt_log_str ("error", err));
                continue;
            }
            snprintf (slot->id, sizeof slot->id, "%s", inbox->id);
            slot->fingerprint = s_fingerprint (inbox);
            if (!slot->fingerprint)
                slot->fingerprint = strdup ("");
            self->npollers++;
            rt_log (RT_LOG_INFO, "IMAP poller started", rt_log_str ("inbox", inbox->id));
        }
    }
    inboxes_release (snap);
}

static void
s_announce (ingestd_t *self, const char *public_url)
{
    inboxes_snapshot_t *snap = inboxes_acquire (self->inboxes);
    size_t i;
    for (i = 0; i < inboxes_count (snap); i++) {
        const ingest_inbox_t *inbox = inboxes_at (snap, i);
        const rt_channel_kind_t *kind = inboxes_kind (inbox);
        const char *channel = ingest_channel_name (inbox->channel);
        char url[1024];
        /* The provider's address, not the channel's: a Twilio WhatsApp
         * number posts to Twilio's route. */
        if (!kind->route) {
            rt_log (RT_LOG_INFO, "inbox polled", rt_log_str ("inbox", inbox->id),
                    rt_log_str ("channel", channel), rt_log_str ("provider", kind->provider));
            continue;
        }
        rt_channel_kind_url (kind, public_url, inbox->id, url, sizeof url);
        rt_log (RT_LOG_INFO, "inbox webhook", rt_log_str ("inbox", inbox->id),
                rt_log_str ("channel", channel), rt_log_str ("provider", kind->provider),
                rt_log_str ("url", url));
    }
    inboxes_release (snap);
}

static int
s_migrate (const char *dsn)
{
    rt_db_t *db = rt_db_new (dsn, "retain-ingestd");
    char err[512];
    int rc = -1;
    if (!db)
        return -1;
    while (rt_db_ensure (db) == 0) {
        /* The bus schema first: ingestd writes to bus.outbox. */
        if (rt_migrate_apply (db, &rt_migrations_bus, err, sizeof err) >= 0 &&
            rt_migrate_apply (db, &rt_migrations_ingest, err, sizeof err) >= 0) {
            rc = 0;
            break;
        }
        rt_log (RT_LOG_ERROR, "migration failed", rt_log_str ("error", err));
        if (rt_db_is_ok (db))
            break; /* a real error, not a lost connection */
    }
    rt_db_destroy (&db);
    return rc;
}

int
main (int argc, char **argv)
{
    ingestd_t self;
    rt_config_t *config = NULL;
    rt_admin_t *admin = NULL;
    rt_log_level_t level = RT_LOG_INFO;
    server_config_t sc;
    char err[512];
    int64_t threads, max_body, timeout_ms, header_timeout_ms, per_address;
    int rc = 1;
    size_t k;

    memset (&self, 0, sizeof self);
    if (rt_signal_install () != 0)
        return 1;
    config = rt_config_new ("retain-ingestd",
                            "Channel webhooks and pollers in: verified, de-duplicated, durable "
                            "before 2xx.",
                            s_settings);
    if (!config)
        return 1;
    switch (rt_config_parse (config, argc, argv, err, sizeof err)) {
    case 1:
        rt_config_destroy (&config);
        return 0;
    case -1:
        fprintf (stderr, "retain-ingestd: %s (see --help)\n", err);
        rt_config_destroy (&config);
        return 2;
    }
    if (rt_log_level_parse (rt_config_get (config, "log-level"), &level) != 0) {
        fprintf (stderr, "retain-ingestd: bad --log-level\n");
        goto cleanup;
    }
    rt_log_init ("retain-ingestd", level);
    if (rt_config_get_int (config, "http-threads", 1, 64, &threads, err, sizeof err) != 0 ||
        rt_config_get_size (config, "max-body", &max_body, err, sizeof err) != 0 ||
        rt_config_get_ms (config, "request-timeout", &timeout_ms, err, sizeof err) != 0 ||
        rt_config_get_ms (config, "http-header-timeout", &header_timeout_ms, err, sizeof err) !=
            0 ||
        rt_config_get_int (config, "http-per-address", 1, 100000, &per_address, err, sizeof err) !=
            0) {
        rt_log (RT_LOG_ERROR, "bad configuration", rt_log_str ("error", err));
        goto cleanup;
    }
    rt_config_log (config);
    self.dsn = rt_config_get (config, "pg-dsn");
    atomic_init (&self.phase, S_STARTING);
    self.metrics = rt_metrics_new ();
    self.inboxes = inboxes_new (self.dsn);
    if (!self.metrics || !self.inboxes)
        goto cleanup;
    admin = rt_admin_start (rt_config_get (config, "admin"), self.metrics, s_ready, &self, err,
                            sizeof err);
    if (!admin) {
        rt_log (RT_LOG_ERROR, "admin server failed", rt_log_str ("error", err));
        goto cleanup;
    }
    if (s_migrate (self.dsn) != 0)
        goto cleanup;
    while (inboxes_refresh (self.inboxes) < 0) {
        if (rt_signal_sleep_ms (1000))
            goto cleanup;
    }
    self.writer = writer_start (self.dsn, self.metrics, err, sizeof err);
    if (!self.writer) {
        rt_log (RT_LOG_ERROR, "writer failed", rt_log_str ("error", err));
        goto cleanup;
    }
    memset (&sc, 0, sizeof sc);
    sc.address = rt_config_get (config, "http");
    sc.threads = (int)threads;
    sc.max_body = (size_t)max_body;
    sc.request_timeout_ms = (int)timeout_ms;
    sc.header_timeout_ms = (int)header_timeout_ms;
    sc.per_address = (int)per_address;
    sc.public_url = rt_config_get (config, "public-url");
    sc.inboxes = self.inboxes;
    sc.writer = self.writer;
    sc.metrics = self.metrics;
    self.server = server_start (&sc, err, sizeof err);
    if (!self.server) {
        rt_log (RT_LOG_ERROR, "webhook server failed", rt_log_str ("error", err));
        goto cleanup;
    }
    rt_log (RT_LOG_INFO, "listening", rt_log_str ("http", sc.address),
            rt_log_int ("port", server_port (self.server)),
            rt_log_str ("public_url", sc.public_url));
    s_announce (&self, sc.public_url);
    s_sync_pollers (&self);
    atomic_store (&self.phase, S_SERVING);

    while (!rt_signal_sleep_ms (1000)) {
        if (inboxes_refresh (self.inboxes) == 1) {
            s_announce (&self, sc.public_url);
            s_sync_pollers (&self);
        }
    }
    rc = 0;
    rt_log (RT_LOG_INFO, "stopping");

cleanup:
    atomic_store (&self.phase, S_STOPPING);
    server_stop (&self.server);
    for (k = 0; k < self.npollers; k++) {
        imap_poller_stop (&self.pollers[k].poller);
        free (self.pollers[k].fingerprint);
    }
    /* The admin thread reads the writer and the inboxes: it stops first. */
    rt_admin_stop (&admin);
    writer_stop (&self.writer);
    inboxes_destroy (&self.inboxes);
    rt_metrics_destroy (&self.metrics);
    rt_config_destroy (&config);
    return rc;
}
