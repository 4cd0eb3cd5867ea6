/*
 * retain-notifyd: every outbound message, through its provider, once.
 *
 * What is notifyd's own: its settings, its migrations (the outbox's and
 * notify's), the consumer group "notify" over the streams "message",
 * "notification" and "customer" (daemon/handler.c: requests become sends,
 * receipts move them, consent changes are kept, in the round's
 * transaction; daemon/notification.c: a notification's template, channel,
 * consent and quiet hours) and the sender (daemon/sender.c: workers
 * claiming due sends within the rate limits and recording each outcome;
 * the crash policy in daemon/recover.c) and the campaign runner
 * (daemon/campaign.c). The main loop is the consumer's until
 * SIGTERM; the rest is common/daemon's.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "notifyd.h"
#include "rt_channel.h"
#include "rt_consumer.h"
#include "rt_daemon.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signed.h"
#include "rt_tz.h"
#include "template.h"

/* notify's migrations (sql/): rt_migrations_notify. */
extern const rt_migration_set_t rt_migrations_notify;

static const rt_migration_set_t *const s_migrations[] = {&rt_migrations_outbox,
                                                         &rt_migrations_notify, NULL};

/* message: operators' replies and the providers' receipts; notification:
 * NotificationRequested; customer: ConsentChanged. */
static const char *const s_streams[] = {"message", "notification", "customer"};

static const rt_config_setting_t s_settings[] = {
    RT_DAEMON_CONSUMER_SETTINGS ("RETAIN_NOTIFY"),
    {"telegram-api", "RETAIN_NOTIFY_TELEGRAM_API", "https://api.telegram.org",
     "Telegram Bot API base URL (an account's base_url overrides)"},
    {"viber-api", "RETAIN_NOTIFY_VIBER_API", "https://chatapi.viber.com",
     "Viber REST Bot API base URL (an account's base_url overrides)"},
    {"meta-api", "RETAIN_NOTIFY_META_API", "https://graph.facebook.com",
     "Meta Graph API base URL: Messenger, Instagram, WhatsApp (an account's base_url overrides)"},
    {"twilio-api", "RETAIN_NOTIFY_TWILIO_API", "https://api.twilio.com",
     "Twilio API base URL (an account's base_url overrides)"},
    {"smtp-url", "RETAIN_NOTIFY_SMTP_URL", "smtp://127.0.0.1:25",
     "SMTP server for e-mail, smtp:// (STARTTLS) or smtps:// (an account's base_url overrides)"},
    {"smtp-tls", "RETAIN_NOTIFY_SMTP_TLS", "required",
     "STARTTLS on smtp://: required (no TLS, no mail) or try (plain when not offered)"},
    {"smtp-tls-no-verify-tests-only", "RETAIN_NOTIFY_SMTP_TLS_NO_VERIFY_TESTS_ONLY", "false",
     "tests only: the SMTP server's certificate is not checked"},
    {"smtp-threads", "RETAIN_NOTIFY_SMTP_THREADS", "4", "SMTP sessions at once, per worker"},
    {"link-base", "RETAIN_NOTIFY_LINK_BASE", "",
     "https base of the one-click unsubscribe link ingestd serves (https://shop.example/u/)"},
    {"link-keys", "RETAIN_NOTIFY_LINK_KEYS", "",
     "key set signing the link's tokens, id:secret[,id:secret] (ingestd's to verify them)"},
    {"link-ttl", "RETAIN_NOTIFY_LINK_TTL", "365d", "how long an unsubscribe link works"},
    {"unsubscribe-mail", "RETAIN_NOTIFY_UNSUBSCRIBE_MAIL", "",
     "List-Unsubscribe's mailto address beside the link; empty: none"},
    {"workers", "RETAIN_NOTIFY_WORKERS", "1", "sender threads, each with its own loop"},
    {"in-flight", "RETAIN_NOTIFY_IN_FLIGHT", "256",
     "requests to providers in flight at most (all workers): bounds a crash's duplicates"},
    {"claim-batch", "RETAIN_NOTIFY_CLAIM_BATCH", "100", "sends one claim takes at most"},
    {"poll", "RETAIN_NOTIFY_POLL", "50ms",
     "between two claims when nothing woke the sender (sends queued wake it at once)"},
    {"flush", "RETAIN_NOTIFY_FLUSH", "5ms",
     "an answer waits this long at most for its outcome to be recorded with the others"},
    {"flush-max", "RETAIN_NOTIFY_FLUSH_MAX", "256", "outcomes one transaction records at most"},
    {"request-timeout", "RETAIN_NOTIFY_REQUEST_TIMEOUT", "10s", "one request to a provider"},
    {"lease", "RETAIN_NOTIFY_LEASE", "0",
     "a send left sending this long is uncertain (crash policy); 0: twice the request timeout"},
    {"retry-max", "RETAIN_NOTIFY_RETRY_MAX", "8",
     "transient failures before a send fails (kept as a dead letter)"},
    {"backoff", "RETAIN_NOTIFY_BACKOFF", "1s", "the first retry's delay, doubled per failure"},
    {"backoff-max", "RETAIN_NOTIFY_BACKOFF_MAX", "10m", "the longest retry delay"},
    {"wait-default", "RETAIN_NOTIFY_WAIT_DEFAULT", "1s",
     "how long a rate-limited send waits when the provider names no delay"},
    {"sweep", "RETAIN_NOTIFY_SWEEP", "5s",
     "between two runs of the crash policy, expiry and the queue gauge"},
    {"host-connections", "RETAIN_NOTIFY_HOST_CONNECTIONS", "8",
     "connections to one provider host at most, per worker"},
    {"locale-chain", "RETAIN_NOTIFY_LOCALE_CHAIN", TEMPLATE_CHAIN_DEFAULT,
     "template locales tried after the customer's own, in order"},
    {"fallback-chain", "RETAIN_NOTIFY_FALLBACK_CHAIN", "viber,sms,email",
     "channels a notification tries, in order, after its first choice"},
    {"marketing-consent", "RETAIN_NOTIFY_MARKETING_CONSENT", "opt-in",
     "opt-in: marketing needs consent granted; opt-out: it goes unless withdrawn"},
    {"quiet-hours", "RETAIN_NOTIFY_QUIET_HOURS", "21:00-09:00",
     "HH:MM-HH:MM in the customer's zone when marketing waits; none: no quiet hours"},
    {"default-zone", "RETAIN_NOTIFY_DEFAULT_ZONE", "Europe/Kyiv",
     "the customer's IANA zone when neither the profile nor the phone tells"},
    {"sms-segments-max", "RETAIN_NOTIFY_SMS_SEGMENTS_MAX", "10",
     "an SMS notification of more segments is refused (text_too_long)"},
    {"important-categories", "RETAIN_NOTIFY_IMPORTANT_CATEGORIES", "transactional",
     "categories that go on the next channel when no delivery receipt came in time"},
    {"receipt-wait", "RETAIN_NOTIFY_RECEIPT_WAIT", "15m",
     "how long an important notification waits for its receipt; 0: forever"},
    {"campaign-batch", "RETAIN_NOTIFY_CAMPAIGN_BATCH", "50",
     "campaign targets one step of the runner claims at most"},
    {"campaign-poll", "RETAIN_NOTIFY_CAMPAIGN_POLL", "100ms",
     "between two rounds of the campaign runner that claimed nothing"},
    {"campaign-refresh", "RETAIN_NOTIFY_CAMPAIGN_REFRESH", "2s",
     "between two recounts of the campaigns' sent and failed"},
    {NULL, NULL, NULL, NULL}};

/* The daemon's one context. */
typedef struct {
    char member[NOTIFYD_MEMBER_MAX];    /* this replica's name */
    sender_config_t sender_config;      /* the sender's settings */
    notification_config_t notification; /* routing, consent and timing of notifications */
    handler_t handler;                  /* the consumer handler's state */
    rt_consumer_t *consumer;            /* the group "notify" */
    sender_t *sender;                   /* the workers */
    campaign_config_t campaign_config;  /* the campaign runner's settings */
    campaign_runner_t *campaigns;       /* the campaign runner */
    _Atomic (sender_t *) live;          /* the sender, once started, for `ready` */
    atomic_bool consuming;              /* the consumer runs */
} notifyd_t;

/* E-mail's settings, checked: the key set parses, the link is https. */
static int
s_smtp_config (smtp_config_t *m, const rt_config_t *c, char *err, size_t errlen)
{
    const char *tls = rt_config_get (c, "smtp-tls");
    int64_t threads;
    rt_signed_keys_t *keys = NULL;
    m->url = rt_config_get (c, "smtp-url");
    m->link_base = rt_config_get (c, "link-base");
    m->link_keys = rt_config_get (c, "link-keys");
    m->unsubscribe_mail = rt_config_get (c, "unsubscribe-mail");
    if (rt_config_get_int (c, "smtp-threads", 1, 64, &threads, err, errlen) != 0 ||
        rt_config_get_bool (c, "smtp-tls-no-verify-tests-only", &m->tls_no_verify, err, errlen) !=
            0 ||
        rt_config_get_ms (c, "link-ttl", &m->link_ttl_ms, err, errlen) != 0)
        return -1;
    m->threads = (int)threads;
    if (strcmp (tls, "required") != 0 && strcmp (tls, "try") != 0) {
        rt_errf (err, errlen, "--smtp-tls: required or try");
        return -1;
    }
    m->tls_required = strcmp (tls, "required") == 0;
    if (strncmp (m->url, "smtp://", 7) != 0 && strncmp (m->url, "smtps://", 8) != 0) {
        rt_errf (err, errlen, "--smtp-url: smtp://host:port or smtps://host:port");
        return -1;
    }
    if (m->link_base[0] && strncmp (m->link_base, "https://", 8) != 0) {
        rt_errf (err, errlen, "--link-base: an https:// URL (RFC 8058 one-click needs one)");
        return -1;
    }
    if (m->link_base[0] && !m->link_keys[0]) {
        rt_errf (err, errlen, "--link-base needs --link-keys to sign the links");
        return -1;
    }
    if (m->link_keys[0]) {
        keys = rt_signed_keys_parse (m->link_keys, err, errlen);
        if (!keys)
            return -1;
        rt_signed_keys_destroy (&keys);
    }
    return 0;
}

static int
s_sender_config (notifyd_t *self, const rt_config_t *c, char *err, size_t errlen)
{
    sender_config_t *s = &self->sender_config;
    int64_t workers, in_flight, batch, retry_max, host, flush_max;
    if (rt_config_get_int (c, "workers", 1, 64, &workers, err, errlen) != 0 ||
        rt_config_get_int (c, "in-flight", 1, 100000, &in_flight, err, errlen) != 0 ||
        rt_config_get_int (c, "claim-batch", 1, 10000, &batch, err, errlen) != 0 ||
        rt_config_get_int (c, "flush-max", 1, 100000, &flush_max, err, errlen) != 0 ||
        rt_config_get_ms (c, "flush", &s->flush_ms, err, errlen) != 0 ||
        rt_config_get_int (c, "retry-max", 1, 1000, &retry_max, err, errlen) != 0 ||
        rt_config_get_int (c, "host-connections", 1, 1024, &host, err, errlen) != 0 ||
        rt_config_get_ms (c, "poll", &s->poll_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "request-timeout", &s->request_timeout_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "lease", &s->lease_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "backoff", &s->backoff_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "backoff-max", &s->backoff_max_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "wait-default", &s->wait_default_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "sweep", &s->sweep_ms, err, errlen) != 0)
        return -1;
    if (s->poll_ms < 1 || s->sweep_ms < 10 || s->request_timeout_ms < 100 || s->backoff_ms < 1 ||
        s->backoff_max_ms < s->backoff_ms) {
        rt_errf (err, errlen,
                 "--poll must be at least 1ms, --sweep 10ms, --request-timeout "
                 "100ms, --backoff 1ms and --backoff-max at least --backoff");
        return -1;
    }
    if (s->lease_ms == 0)
        s->lease_ms = 2 * s->request_timeout_ms;
    if (s->lease_ms <= s->request_timeout_ms) {
        rt_errf (err, errlen, "--lease must be longer than --request-timeout");
        return -1;
    }
    s->workers = (int)workers;
    s->in_flight = (int)in_flight;
    s->claim_batch = (int)batch;
    s->flush_max = (int)flush_max;
    s->retry_max = (int)retry_max;
    s->host_connections = (int)host;
    s->base_urls[0] = rt_config_get (c, "telegram-api");
    s->base_urls[1] = rt_config_get (c, "viber-api");
    s->base_urls[2] = rt_config_get (c, "meta-api");
    s->base_urls[3] = rt_config_get (c, "twilio-api");
    if (s_smtp_config (&s->smtp, c, err, errlen) != 0)
        return -1;
    return 0;
}

/* "HH:MM" into minutes of the day; -1 when it is not one. */
static int
s_minutes (const char *s, size_t len)
{
    int h, m, n = 0;
    char buf[8];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy (buf, s, len);
    buf[len] = '\0';
    if (sscanf (buf, "%d:%d%n", &h, &m, &n) != 2 || n != (int)len || h < 0 || h > 23 || m < 0 ||
        m > 59)
        return -1;
    return h * 60 + m;
}

/* Every name of a comma-separated list passes check. */
static int
s_list_ok (const char *list, int (*check) (const char *))
{
    char buf[256], *save = NULL;
    int n = 0;
    snprintf (buf, sizeof buf, "%s", list);
    for (char *p = strtok_r (buf, ",", &save); p; p = strtok_r (NULL, ",", &save), n++) {
        if (check (p) != 0)
            return -1;
    }
    return n > 0 && strlen (list) < sizeof buf ? 0 : -1;
}

static int
s_channel_ok (const char *name)
{
    return rt_channel_by_name (name) ? 0 : -1;
}

static int
s_category_ok (const char *name)
{
    return strcmp (name, "transactional") == 0 || strcmp (name, "marketing") == 0 ? 0 : -1;
}

static int
s_notification_config (notifyd_t *self, const rt_config_t *c, char *err, size_t errlen)
{
    notification_config_t *n = &self->notification;
    const char *quiet = rt_config_get (c, "quiet-hours"), *dash = strchr (quiet, '-');
    const char *consent = rt_config_get (c, "marketing-consent");
    int64_t segments;
    rt_tz_t *tz;
    if (rt_config_get_int (c, "sms-segments-max", 1, 255, &segments, err, errlen) != 0 ||
        rt_config_get_ms (c, "receipt-wait", &n->receipt_wait_ms, err, errlen) != 0)
        return -1;
    n->sms_segments_max = (int)segments;
    n->locale_chain = rt_config_get (c, "locale-chain");
    n->fallback_chain = rt_config_get (c, "fallback-chain");
    n->important = rt_config_get (c, "important-categories");
    n->default_zone = rt_config_get (c, "default-zone");
    if (s_list_ok (n->locale_chain, template_locale_check) != 0) {
        rt_errf (err, errlen, "--locale-chain: BCP 47 tags separated by commas, e.g. uk,ru,en");
        return -1;
    }
    if (s_list_ok (n->fallback_chain, s_channel_ok) != 0) {
        rt_errf (err, errlen,
                 "--fallback-chain: channel names separated by commas, e.g. viber,sms");
        return -1;
    }
    if (n->important[0] && s_list_ok (n->important, s_category_ok) != 0) {
        rt_errf (err, errlen, "--important-categories: transactional, marketing or both");
        return -1;
    }
    if (strcmp (consent, "opt-in") != 0 && strcmp (consent, "opt-out") != 0) {
        rt_errf (err, errlen, "--marketing-consent: opt-in or opt-out");
        return -1;
    }
    n->marketing_opt_out = strcmp (consent, "opt-out") == 0;
    if (strcmp (quiet, "none") == 0 || !quiet[0]) {
        n->quiet_start_min = n->quiet_end_min = 0;
    } else {
        n->quiet_start_min = dash ? s_minutes (quiet, (size_t)(dash - quiet)) : -1;
        n->quiet_end_min = dash ? s_minutes (dash + 1, strlen (dash + 1)) : -1;
        if (n->quiet_start_min < 0 || n->quiet_end_min < 0) {
            rt_errf (err, errlen, "--quiet-hours: HH:MM-HH:MM (21:00-09:00) or none");
            return -1;
        }
    }
    tz = rt_tz_new (n->default_zone, err, errlen);
    if (!tz)
        return -1;
    rt_tz_destroy (&tz);
    return 0;
}

static int
s_campaign_config (notifyd_t *self, const rt_config_t *c, char *err, size_t errlen)
{
    campaign_config_t *k = &self->campaign_config;
    int64_t batch;
    if (rt_config_get_int (c, "campaign-batch", 1, 10000, &batch, err, errlen) != 0 ||
        rt_config_get_ms (c, "campaign-poll", &k->poll_ms, err, errlen) != 0 ||
        rt_config_get_ms (c, "campaign-refresh", &k->refresh_ms, err, errlen) != 0)
        return -1;
    if (k->poll_ms < 1 || k->refresh_ms < 10) {
        rt_errf (err, errlen, "--campaign-poll must be at least 1ms, --campaign-refresh 10ms");
        return -1;
    }
    k->batch = (int)batch;
    k->notification = &self->notification;
    return 0;
}

static int
s_configure (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    notifyd_t *self = arg;
    const rt_config_t *c = rt_daemon_config (d);
    if (s_sender_config (self, c, err, errlen) != 0 ||
        s_notification_config (self, c, err, errlen) != 0 ||
        s_campaign_config (self, c, err, errlen) != 0)
        return -1;
    rt_daemon_member (rt_config_get (c, "member"), self->member, sizeof self->member);
    self->sender_config.dsn = rt_daemon_dsn (d);
    self->sender_config.member = self->member;
    self->sender_config.metrics = rt_daemon_metrics (d);
    self->campaign_config.dsn = rt_daemon_dsn (d);
    self->campaign_config.metrics = rt_daemon_metrics (d);
    self->notification.metrics = rt_daemon_metrics (d);
    self->sender_config.notification = &self->notification;
    handler_init (&self->handler, rt_daemon_metrics (d), &self->notification);
    self->consumer = rt_daemon_consumer_new (d, "notify", self->member, s_streams,
                                             sizeof s_streams / sizeof s_streams[0], handler_handle,
                                             &self->handler, err, errlen);
    return self->consumer ? 0 : -1;
}

static int
s_start (rt_daemon_t *d, void *arg, char *err, size_t errlen)
{
    notifyd_t *self = arg;
    (void)d;
    self->sender = sender_start (&self->sender_config, err, errlen);
    if (!self->sender)
        return -1;
    self->campaigns = campaign_start (&self->campaign_config, err, errlen);
    if (!self->campaigns)
        return -1;
    atomic_store (&self->live, self->sender);
    return 0;
}

static int
s_run (rt_daemon_t *d, void *arg)
{
    notifyd_t *self = arg;
    (void)d;
    return rt_daemon_consume (self->consumer, &self->consuming) == 0 && !self->handler.fatal ? 0
                                                                                             : -1;
}

static void
s_stop (rt_daemon_t *d, void *arg)
{
    notifyd_t *self = arg;
    (void)d;
    atomic_store (&self->live, NULL);
    campaign_stop (&self->campaigns);
    sender_stop (&self->sender);
    rt_consumer_destroy (&self->consumer);
}

/* On the admin thread: atomics. */
static bool
s_ready (void *arg, char *why, size_t whylen)
{
    notifyd_t *self = arg;
    if (!rt_daemon_consuming (&self->consuming, why, whylen))
        return false;
    if (!sender_ready (atomic_load (&self->live))) {
        snprintf (why, whylen, "the sender has not connected and applied the crash policy");
        return false;
    }
    return true;
}

int
main (int argc, char **argv)
{
    static const rt_daemon_spec_t spec = {
        .name = "retain-notifyd",
        .summary = "Every outbound message through its provider, once, within its limits.",
        .settings = s_settings,
        .admin_env = "RETAIN_NOTIFY_ADMIN",
        .admin_default = "127.0.0.1:9704",
        .bus_client = true,
        .migrations = s_migrations,
        .configure = s_configure,
        .start = s_start,
        .run = s_run,
        .stop = s_stop,
        .ready = s_ready,
    };
    static notifyd_t self;
    return rt_daemon_main (&spec, &self, argc, argv);
}
