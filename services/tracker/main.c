/*
 * retain-trackerd: every parcel followed with its carrier; late ones caught
 * before the customer asks.
 *
 * What is trackerd's own: its settings (one base URL per carrier, named by
 * the carrier's table in carrier.h, so a carrier added there is
 * configurable without a line here), its migrations (the outbox's and
 * tracking's), the consumer group "tracker" over the stream "order"
 * (daemon/handler.c: OrderShipped registers a parcel), the poller
 * (daemon/poller.c: workers asking the carriers within their limits;
 * daemon/outcome.c: what an answer changes) and the sweep (daemon/sweep.c:
 * what time alone decides). The main loop is the consumer's until SIGTERM;
 * the rest is common/daemon's.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_apikey.h"
#include "rt_consumer.h"
#include "rt_daemon.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signed.h"
#include "rt_tz.h"
#include "shipment.h"
#include "trackerd.h"

static const rt_migration_set_t *const s_migrations[] = {&rt_migrations_outbox,
                                                         &rt_migrations_tracking, NULL};

/* order: OrderShipped. */
static const char *const s_streams[] = {"order"};

/* The settings that are trackerd's whatever the carriers; the carriers'
 * base URLs go before them (s_settings_make). */
static const rt_config_setting_t s_own[] = {
    RT_DAEMON_CONSUMER_SETTINGS ("RETAIN_TRACKER"),
    {"workers", "RETAIN_TRACKER_WORKERS", "1", "poller threads, each with its own loop"},
    {"in-flight", "RETAIN_TRACKER_IN_FLIGHT", "32",
     "carrier calls in flight at most (all workers)"},
    {"claim-batch", "RETAIN_TRACKER_CLAIM_BATCH", "100",
     "parcels one call asks about at most (under the carrier's own limit)"},
    {"poll", "RETAIN_TRACKER_POLL", "1s", "between two claims when nothing was due"},
    {"request-timeout", "RETAIN_TRACKER_REQUEST_TIMEOUT", "20s", "one call to a carrier"},
    {"lease", "RETAIN_TRACKER_LEASE", "0",
     "a claimed parcel is polled again after this if its answer was never recorded; 0: twice "
     "the request timeout"},
    {"spacing-margin", "RETAIN_TRACKER_SPACING_MARGIN", "50ms",
     "added to a carrier's spacing of calls: the way from the claim to the carrier varies"},
    {"host-connections", "RETAIN_TRACKER_HOST_CONNECTIONS", "4",
     "connections to one carrier host at most, per worker"},
    {"interval-fresh", "RETAIN_TRACKER_INTERVAL_FRESH", "1h",
     "a parcel the carrier does not have yet (Pending, InfoReceived) is asked about again after"},
    {"interval-transit", "RETAIN_TRACKER_INTERVAL_TRANSIT", "3h",
     "a parcel in transit (or in an exception) is asked about again after"},
    {"interval-near", "RETAIN_TRACKER_INTERVAL_NEAR", "20m",
     "a parcel out for delivery (or after a failed attempt) is asked about again after"},
    {"interval-pickup", "RETAIN_TRACKER_INTERVAL_PICKUP", "6h",
     "a parcel waiting at a pickup point is asked about again after"},
    {"interval-bad", "RETAIN_TRACKER_INTERVAL_BAD", "6h",
     "a parcel whose request the carrier refused is asked about again after"},
    {"backoff", "RETAIN_TRACKER_BACKOFF", "30s",
     "an account's first transient failure (5xx, garbage) delays it this, doubled per failure"},
    {"backoff-max", "RETAIN_TRACKER_BACKOFF_MAX", "30m", "the longest transient delay"},
    {"wait-default", "RETAIN_TRACKER_WAIT_DEFAULT", "60s",
     "a rate-limited account waits this when the carrier names no delay"},
    {"storage-lead", "RETAIN_TRACKER_STORAGE_LEAD", "24h",
     "the reminder before a pickup point's free storage ends goes this long before"},
    {"risk-threshold", "RETAIN_TRACKER_RISK_THRESHOLD", "0.5",
     "a parcel whose chance of missing the promise passes this is flagged at risk (0..1)"},
    {"sweep", "RETAIN_TRACKER_SWEEP", "60s",
     "between two sweeps: promises passed, parcels stuck, storage ending, expiry"},
    {"link-base", "RETAIN_TRACKER_LINK_BASE", "",
     "base URL of the customer's tracking page (https://shop.example/t/); empty: no links"},
    {"link-keys", "RETAIN_TRACKER_LINK_KEYS", "",
     "key set signing the tracking links, id:secret[,id:secret]"},
    {"link-ttl", "RETAIN_TRACKER_LINK_TTL", "90d", "how long a tracking link works"},
    {"http", "RETAIN_TRACKER_HTTP", "127.0.0.1:8782",
     "the API and tracking page's address (GET /v1/shipments, /t/{token})"},
    {"http-threads", "RETAIN_TRACKER_HTTP_THREADS", "2", "the API's worker threads"},
    {"page-zone", "RETAIN_TRACKER_PAGE_ZONE", "Europe/Kyiv",
     "the IANA zone the tracking page shows times in"},
};

#define S_OWN (sizeof s_own / sizeof s_own[0])

/* The carriers' settings, then s_own, then the end. */
static rt_config_setting_t s_settings[TRACKERD_CARRIERS + S_OWN + 1];
static char s_names[TRACKERD_CARRIERS][48];
static char s_helps[TRACKERD_CARRIERS][160];

/* One "<carrier>-api" setting per carrier of carrier_all, from its table:
 * "nova_poshta" becomes --nova-poshta-api, read from its api_env. */
static void
s_settings_make (void)
{
    size_t k = 0;
    for (size_t i = 0; carrier_all[i] && i < TRACKERD_CARRIERS; i++, k++) {
        const carrier_t *c = carrier_all[i];
        size_t j = 0;
        for (; c->name[j] && j < sizeof s_names[i] - 5; j++)
            s_names[i][j] = c->name[j] == '_' ? '-' : c->name[j];
        memcpy (s_names[i] + j, "-api", 5);
        snprintf (s_helps[i], sizeof s_helps[i],
                  "%s tracking API base URL (an account's base_url overrides)", c->display);
        s_settings[k] = (rt_config_setting_t){s_names[i], c->api_env, c->api_default, s_helps[i]};
    }
    for (size_t i = 0; i < S_OWN; i++)
        s_settings[k++] = s_own[i];
    s_settings[k] = (rt_config_setting_t){NULL, NULL, NULL, NULL};
}

/* The daemon's one context. */
typedef struct {
    char member[TRACKERD_MEMBER_MAX]; /* this replica's name */
    poller_config_t poller_config;    /* the poller's settings, the outcome's within */
    int64_t sweep_ms;                 /* between sweeps */
    rt_signed_keys_t *link_keys;      /* signs the tracking links, NULL: none */
    handler_t handler;                /* the consumer handler's state */
    rt_consumer_t *consumer;          /* the group "tracker" */
    poller_t *poller;                 /* the workers */
    sweep_t *sweep;                   /* the sweep's thread */
    api_config_t api_config;          /* the API's settings */
    api_t *api;                       /* the API and tracking page */
    _Atomic (poller_t *) live;        /* the poller, once started, for `ready` */
    atomic_bool consuming;            /* the consumer runs */
} trackerd_t;

static int
s_outcome_config (trackerd_t *self, const rt_config_t *c, char *err, size_t errlen)
{
    outcome_config_t *o = &self->poller_config.outcome;
    poll_intervals_t *iv = &o->intervals;
    const char *risk = rt_config_get (c, "risk-threshold");
    const char *keys = rt_config_get (c, "link-keys");
    char *end = NULL;
    if (rt_config_get_ms (c, "interval-fresh", &iv->fresh_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "interval-transit", &iv->transit_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "interval-near", &iv->near_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "interval-pickup", &iv->pickup_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "interval-bad", &iv->bad_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "backoff", &o->backoff_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "backoff-max", &o->backoff_max_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "wait-default", &o->wait_default_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "storage-lead", &o->storage_lead_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "link-ttl", &o->link_ttl_ms, err, errlen) != 0)
        return -1;
    if (iv->fresh_ms < 1000 || iv->transit_ms < 1000 || iv->near_ms < 1000 ||
        iv->pickup_ms < 1000 || iv->bad_ms < 1000 || o->backoff_ms < 1 ||
        o->backoff_max_ms < o->backoff_ms || o->wait_default_ms < 1) {
        rt_errf (err, errlen,
                 "--interval-* must be at least 1s, --backoff and --wait-default 1ms, "
                 "--backoff-max at least --backoff");
        return -1;
    }
    o->risk_threshold = strtod (risk, &end);
    if (!risk[0] || *end || !(o->risk_threshold > 0.0 && o->risk_threshold < 1.0)) {
        rt_errf (err, errlen, "--risk-threshold: a probability between 0 and 1, e.g. 0.5");
        return -1;
    }
    o->link_base = rt_config_get (c, "link-base");
    if (o->link_base[0] && !keys[0]) {
        rt_errf (err, errlen, "--link-base needs --link-keys to sign the links");
        return -1;
    }
    if (keys[0]) {
        self->link_keys = rt_signed_keys_parse (keys, err, errlen);
        if (!self->link_keys)
            return -1;
    }
    o->link_keys = self->link_keys;
    return 0;
}

static int
s_poller_config (trackerd_t *self, const rt_config_t *c, char *err, size_t errlen)
{
    poller_config_t *p = &self->poller_config;
    int64_t workers, in_flight, batch, host;
    if (rt_config_get_int (c, "workers", 1, 64, &workers, err, errlen) != 0 ||
        rt_config_get_int (c, "in-flight", 1, 10000, &in_flight, err, errlen) != 0 ||
        rt_config_get_int (c, "claim-batch", 1, 1000, &batch, err, errlen) != 0 ||
        rt_config_get_int (c, "host-connections", 1, 1024, &host, err, errlen) != 0 ||
        rt_config_get_ms (c, "poll", &p->poll_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "request-timeout", &p->request_timeout_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "lease", &p->lease_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "spacing-margin", &p->spacing_margin_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "sweep", &self->sweep_ms, err, errlen) != 0)
        return -1;
    if (p->poll_ms < 1 || p->request_timeout_ms < 100 || self->sweep_ms < 10) {
        rt_errf (err, errlen, "--poll must be at least 1ms, --request-timeout 100ms, --sweep 10ms");
        return -1;
    }
    if (p->lease_ms == 0)
        p->lease_ms = 2 * p->request_timeout_ms;
    if (p->lease_ms <= p->request_timeout_ms) {
        rt_errf (err, errlen, "--lease must be longer than --request-timeout");
        return -1;
    }
    if (in_flight < workers) {
        rt_errf (err, errlen, "--in-flight must be at least --workers");
        return -1;
    }
    p->workers = (int)workers;
    p->in_flight = (int)in_flight;
    p->batch = (int)batch;
    p->host_connections = (int)host;
    for (size_t i = 0; carrier_all[i] && i < TRACKERD_CARRIERS; i++) {
        p->base_urls[i] = rt_config_get (c, s_settings[i].name);
        if (strncmp (p->base_urls[i], "http://", 7) != 0 &&
            strncmp (p->base_urls[i], "https://", 8) != 0) {
            rt_errf (err, errlen, "--%s: an http:// or https:// URL", s_settings[i].name);
            return -1;
        }
    }
    return s_outcome_config (self, c, err, errlen);
}

static int
s_configure (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    trackerd_t *self = arg;
    const rt_config_t *c = rt_daemon_config (d);
    int64_t threads;
    rt_tz_t *tz;
    if (s_poller_config (self, c, err, errlen) != 0)
        return -1;
    if (rt_config_get_int (c, "http-threads", 1, 64, &threads, err, errlen) != 0)
        return -1;
    tz = rt_tz_new (rt_config_get (c, "page-zone"), err, errlen);
    if (!tz)
        return -1;
    rt_tz_destroy (&tz);
    self->api_config = (api_config_t){.dsn = rt_daemon_dsn (d),
                                      .address = rt_config_get (c, "http"),
                                      .threads = (int)threads,
                                      .page_zone = rt_config_get (c, "page-zone"),
                                      .outcome = &self->poller_config.outcome,
                                      .metrics = rt_daemon_metrics (d)};
    rt_daemon_member (rt_config_get (c, "member"), self->member, sizeof self->member);
    self->poller_config.dsn = rt_daemon_dsn (d);
    self->poller_config.member = self->member;
    self->poller_config.outcome.metrics = rt_daemon_metrics (d);
    handler_init (&self->handler, &self->poller_config.outcome, rt_daemon_metrics (d));
    self->consumer = rt_daemon_consumer_new (d, "tracker", self->member, s_streams,
                                             sizeof s_streams / sizeof s_streams[0], handler_handle,
                                             &self->handler, err, errlen);
    return self->consumer ? 0 : -1;
}

static int
s_start (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    trackerd_t *self = arg;
    rt_db_t *db = rt_daemon_db_take (d);
    int n;
    /* The shop's milestone settings are read once: a change takes a
     * restart, as every other setting does. */
    n = db ? outcome_milestones (db, &self->poller_config.outcome) : -1;
    if (n < 0)
        rt_errf (err, errlen, "the milestone settings could not be read: %s",
                 db ? rt_db_error (db) : "no connection");
    /* The API's keys are common/http's schema, not a set of trackerd's. */
    else if (rt_apikey_migrate (db, err, errlen) < 0)
        n = -1;
    rt_db_destroy (&db);
    if (n < 0)
        return -1;
    rt_log (RT_LOG_INFO, "milestones read", rt_log_int ("enabled", n));
    self->poller = poller_start (&self->poller_config, err, errlen);
    if (!self->poller)
        return -1;
    self->sweep =
        sweep_start (rt_daemon_dsn (d), &self->poller_config.outcome, self->sweep_ms, err, errlen);
    if (!self->sweep)
        return -1;
    self->api = api_start (&self->api_config, err, errlen);
    if (!self->api)
        return -1;
    rt_log (RT_LOG_INFO, "API listening", rt_log_int ("port", api_port (self->api)));
    atomic_store (&self->live, self->poller);
    return 0;
}

static int
s_run (rt_daemon_t *d, void *arg)
{
    trackerd_t *self = arg;
    (void)d;
    return rt_daemon_consume (self->consumer, &self->consuming);
}

static void
s_stop (rt_daemon_t *d, void *arg)
{
    trackerd_t *self = arg;
    (void)d;
    atomic_store (&self->live, NULL);
    api_stop (&self->api);
    sweep_stop (&self->sweep);
    poller_stop (&self->poller);
    rt_consumer_destroy (&self->consumer);
    rt_signed_keys_destroy (&self->link_keys);
}

/* On the admin thread: atomics. */
static bool
s_ready (void *arg, char *why, size_t whylen)
{
    trackerd_t *self = arg;
    if (!rt_daemon_consuming (&self->consuming, why, whylen))
        return false;
    if (!poller_ready (atomic_load (&self->live))) {
        snprintf (why, whylen, "the poller has no PostgreSQL connection");
        return false;
    }
    return true;
}

int
main (int argc, char **argv)
{
    static rt_daemon_spec_t spec = {
        .name = "retain-trackerd",
        .summary = "Every parcel followed with its carrier; late ones caught before the customer "
                   "asks.",
        .settings = s_settings,
        .admin_env = "RETAIN_TRACKER_ADMIN",
        .admin_default = "127.0.0.1:9705",
        .bus_client = true,
        .migrations = s_migrations,
        .configure = s_configure,
        .start = s_start,
        .run = s_run,
        .stop = s_stop,
        .ready = s_ready,
    };
    static trackerd_t self;
    s_settings_make ();
    return rt_daemon_main (&spec, &self, argc, argv);
}
