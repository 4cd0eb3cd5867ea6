/*
 * sender: the workers that take due sends to the providers.
 *
 * Each worker is a thread with its own libevent loop, HTTP client
 * (rt_http_client: libcurl multi, many requests in flight, none blocking
 * the loop) and PostgreSQL connection, used blocking from the loop's
 * thread between events. A timer drives it:
 *
 *   1. Worker 0 runs the crash policy (recover.c) first, before any
 *      worker of this replica claims (the others wait for it), then every
 *      sweep interval.
 *   2. A claim (notify.claim, one statement: its own committed
 *      transaction) takes due sends up to the room left under the worker's
 *      share of the in-flight cap and up to claim_batch, within the
 *      account and recipient budgets held in PostgreSQL, and marks them
 *      `sending`: every one is committed as such before its request
 *      leaves.
 *   3. Each claimed send is built by its provider's adapter (provider.h)
 *      and submitted; a send the adapter refuses fails at once. E-mail
 *      (provider "smtp") is built by provider_smtp_build, its subject and
 *      HTML read from the send, and goes to the worker's SMTP threads
 *      (smtp.h), which hand its end back to the loop.
 *   4. Each answer is classified by the adapter and recorded (outcome.c)
 *      in a transaction of its own on the loop's thread.
 *   A claim that filled its batch is followed at once by the next; one
 *   that found less waits poll_ms.
 *
 * On stop the workers claim nothing more, wait for their requests in
 * flight up to the request timeout, then close; what was still in flight
 * stays `sending` and the crash policy settles it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "notifyd.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_http_client.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "rt_utf8.h"

#define S_CLAIM "notify_sender_claim"
static const char *s_claim_sql = "SELECT id, channel, recipient, text, attempts, failures,"
                                 " COALESCE(customer_id::text, ''), category, account, provider,"
                                 " base_url, token, account_id, sender, status_url"
                                 " FROM notify.claim($1, $2::bigint, $3::integer)";

/* An e-mail's subject and HTML part, which the claim does not carry. */
#define S_MAIL "notify_sender_mail"
static const char *s_mail_sql =
    "SELECT COALESCE(subject, ''), COALESCE(html, '') FROM notify.sends WHERE id = $1::uuid";

/* A subject made from the text's first line when the send has none (an
 * operator's reply), in characters. */
#define S_SUBJECT_CHARS 60

/* The providers' default API bases, in sender_config_t.base_urls order. */
static const char *const s_base_names[4] = {"telegram", "viber", "meta", "twilio"};

typedef struct worker_t worker_t;

struct sender_t {
    sender_config_t cfg;         /* the settings (strings lent by the daemon) */
    worker_t *workers;           /* cfg.workers of them */
    atomic_bool stop;            /* stop claiming, drain, end */
    atomic_bool swept;           /* the start's crash policy has run: claims may begin */
    atomic_int ready;            /* workers connected and looping */
    rt_gauge_t *in_flight_gauge; /* requests in flight, all workers */
};

struct worker_t {
    sender_t *owner;         /* the sender */
    int index;               /* 0 runs the crash policy */
    pthread_t thread;        /* its thread */
    bool started;            /* the thread was created */
    struct event_base *base; /* its loop */
    struct event *tick;      /* the timer */
    rt_http_client_t *http;  /* its client */
    smtp_t *smtp;            /* its e-mail sessions */
    rt_db_t *db;             /* its connection */
    outcome_ctx_t octx;      /* outcome.c's view of it */
    int cap;                 /* its share of the in-flight cap */
    int in_flight;           /* its requests in flight */
    int64_t next_sweep;      /* mono ms of the next sweep (worker 0) */
    int64_t drain_until;     /* mono ms: stop waiting for answers then, 0: not stopping */
    bool counted_ready;      /* it added itself to owner->ready */
};

/* One request in flight. */
typedef struct {
    worker_t *w;          /* its worker */
    notify_claim_t claim; /* the send, owned */
    const provider_t *adapter;
    provider_send_t send;           /* the adapter's view (points into claim) */
    int64_t started_us;             /* rt_clock_elapsed_us at submit */
    char mail_id[PROVIDER_EXT_MAX]; /* e-mail: its Message-ID, the external id */
} s_request_t;

static void
s_claim_free (notify_claim_t *c)
{
    free (c->id);
    free (c->channel);
    free (c->recipient);
    free (c->text);
    free (c->customer_id);
    free (c->category);
    free (c->account);
    free (c->provider);
    free (c->base_url);
    free (c->token);
    free (c->account_id);
    free (c->sender);
    free (c->status_url);
    memset (c, 0, sizeof *c);
}

static void
s_request_free (s_request_t *rq)
{
    if (!rq)
        return;
    s_claim_free (&rq->claim);
    free (rq);
}

static const char *
s_base_url (const sender_config_t *cfg, const notify_claim_t *c)
{
    if (c->base_url[0])
        return c->base_url;
    for (int i = 0; i < 4; i++) {
        if (strcmp (s_base_names[i], c->provider) == 0)
            return cfg->base_urls[i];
    }
    return "";
}

static void
s_in_flight (worker_t *w, int delta)
{
    w->in_flight += delta;
    rt_gauge_add (w->owner->in_flight_gauge, delta);
}

static void
s_observe (worker_t *w, const char *provider, int64_t started_us)
{
    char labels[64];
    snprintf (labels, sizeof labels, "provider=\"%s\"", provider);
    rt_histogram_observe (
        rt_metrics_histogram (w->owner->cfg.metrics, "retain_notify_attempt_seconds", labels,
                              "one request to a provider, submit to answer", NULL, 0),
        (double)(rt_clock_elapsed_us () - started_us) / 1e6);
}

static void
s_done (void *arg, const rt_http_response_t *resp)
{
    s_request_t *rq = arg;
    worker_t *w = rq->w;
    provider_outcome_t o;
    s_observe (w, rq->claim.provider, rq->started_us);
    if (resp->outcome != RT_HTTP_OUTCOME_CANCELLED) {
        rq->adapter->classify (&rq->send, resp, &o);
        if (o.verdict != PROVIDER_SENT)
            rt_log (RT_LOG_INFO, "attempt not sent", rt_log_str ("message_id", rq->claim.id),
                    rt_log_str ("verdict", provider_verdict_name (o.verdict)),
                    rt_log_str ("code", o.code), rt_log_str ("reason", o.reason),
                    rt_log_int ("attempt", rq->claim.attempts));
        (void)outcome_record (&w->octx, &rq->claim, &o);
    }
    s_in_flight (w, -1);
    s_request_free (rq);
}

/* A failure of notifyd's own before the request left, recorded as the
 * transient failure it is. */
static void
s_local_retry (worker_t *w, const notify_claim_t *c, const char *why)
{
    provider_outcome_t o;
    memset (&o, 0, sizeof o);
    o.verdict = PROVIDER_RETRY;
    snprintf (o.code, sizeof o.code, "submit");
    snprintf (o.reason, sizeof o.reason, "%s", why);
    (void)outcome_record (&w->octx, c, &o);
}

static void
s_mail_done (void *arg, const smtp_result_t *res)
{
    s_request_t *rq = arg;
    worker_t *w = rq->w;
    provider_outcome_t o;
    s_observe (w, rq->claim.provider, rq->started_us);
    if (!res->cancelled) {
        provider_smtp_classify (&res->answer, rq->mail_id, &o);
        if (o.verdict != PROVIDER_SENT)
            rt_log (RT_LOG_INFO, "attempt not sent", rt_log_str ("message_id", rq->claim.id),
                    rt_log_str ("verdict", provider_verdict_name (o.verdict)),
                    rt_log_str ("code", o.code), rt_log_str ("reason", o.reason),
                    rt_log_int ("attempt", rq->claim.attempts));
        (void)outcome_record (&w->octx, &rq->claim, &o);
    }
    s_in_flight (w, -1);
    s_request_free (rq);
}

/* The text's first line, whole characters up to S_SUBJECT_CHARS. */
static void
s_subject_from_text (const char *text, char *out, size_t outlen)
{
    size_t n = 0, chars = 0, len = strcspn (text, "\r\n");
    while (n < len && chars < S_SUBJECT_CHARS) {
        size_t k = rt_utf8_seq_len (text + n, len - n);
        if (k == 0 || n + k >= outlen)
            break;
        n += k;
        chars++;
    }
    snprintf (out, outlen, "%.*s", (int)n, text);
}

/* Builds and hands one e-mail to the worker's SMTP threads; takes rq. */
static void
s_submit_mail (worker_t *w, s_request_t *rq, const rt_channel_t *ch)
{
    const sender_config_t *cfg = &w->owner->cfg;
    notify_claim_t *c = &rq->claim;
    provider_mail_msg_t msg;
    provider_mail_t mail;
    smtp_job_t job;
    char err[256], link[1024], subject[4 * S_SUBJECT_CHARS + 1];
    const char *v[1] = {c->id};
    PGresult *r = NULL;
    long n;

    memset (&msg, 0, sizeof msg);
    if (!ch || ch->value != RETAIN__V1__CHANNEL__EMAIL) {
        snprintf (err, sizeof err, "no adapter sends %s through smtp", c->channel);
        (void)outcome_refuse (&w->octx, c, "no_adapter", err);
        goto cleanup;
    }
    r = rt_db_exec_prepared (w->db, S_MAIL, 1, v, NULL, NULL, 0);
    if (!r || PQntuples (r) != 1) {
        s_local_retry (w, c, "the e-mail's subject was not read");
        goto cleanup;
    }
    n = smtp_link (w->smtp, c->customer_id, ch->value, c->category, rt_clock_now_ms (), link,
                   sizeof link);
    if (n < 0)
        rt_log (RT_LOG_WARN, "no unsubscribe link could be made", rt_log_str ("message_id", c->id));
    s_subject_from_text (c->text, subject, sizeof subject);
    mail = (provider_mail_t){.from = c->sender,
                             .to = c->recipient,
                             .subject = PQgetvalue (r, 0, 0)[0] ? PQgetvalue (r, 0, 0) : subject,
                             .text = c->text,
                             .html = PQgetvalue (r, 0, 1),
                             .message_id = c->id,
                             .date_s = rt_clock_now_ms () / 1000,
                             .unsubscribe_url = n > 0 ? link : NULL,
                             .unsubscribe_mail =
                                 cfg->smtp.unsubscribe_mail[0] ? cfg->smtp.unsubscribe_mail : NULL};
    if (provider_smtp_build (&mail, &msg, err, sizeof err) != 0) {
        (void)outcome_refuse (&w->octx, c, "bad_request", err);
        goto cleanup;
    }
    snprintf (rq->mail_id, sizeof rq->mail_id, "%s", msg.message_id);
    job = (smtp_job_t){.url = c->base_url[0] ? c->base_url : cfg->smtp.url,
                       .user = c->account_id,
                       .password = c->token,
                       .from = msg.envelope_from,
                       .to = msg.envelope_to,
                       .data = msg.data,
                       .len = msg.len,
                       .timeout_ms = cfg->request_timeout_ms};
    rq->started_us = rt_clock_elapsed_us ();
    if (smtp_submit (w->smtp, &job, s_mail_done, rq, err, sizeof err) != 0) {
        s_local_retry (w, c, err);
        goto cleanup;
    }
    s_in_flight (w, 1);
    PQclear (r);
    provider_mail_msg_free (&msg);
    return;
cleanup:
    PQclear (r);
    provider_mail_msg_free (&msg);
    s_request_free (rq);
}

/* Builds and submits one claimed send; takes c's strings. */
static void
s_submit (worker_t *w, notify_claim_t *c)
{
    const sender_config_t *cfg = &w->owner->cfg;
    const rt_channel_t *ch = rt_channel_by_name (c->channel);
    provider_request_t req;
    provider_account_t acc;
    rt_http_client_request_t hr;
    char err[256];
    s_request_t *rq = calloc (1, sizeof *rq);

    memset (&req, 0, sizeof req);
    if (!rq) {
        s_local_retry (w, c, "out of memory");
        s_claim_free (c);
        return;
    }
    rq->w = w;
    rq->claim = *c;
    memset (c, 0, sizeof *c);
    c = &rq->claim;
    if (strcmp (c->provider, "smtp") == 0) {
        s_submit_mail (w, rq, ch);
        return;
    }
    rq->adapter = ch ? provider_find_for (c->provider, ch->value) : NULL;
    if (!rq->adapter) {
        snprintf (err, sizeof err, "no adapter sends %s through %s", c->channel, c->provider);
        (void)outcome_refuse (&w->octx, c, "no_adapter", err);
        goto cleanup;
    }
    acc = (provider_account_t){.provider = rq->adapter->name,
                               .base_url = s_base_url (cfg, c),
                               .token = c->token,
                               .account_id = c->account_id[0] ? c->account_id : NULL,
                               .sender = c->sender[0] ? c->sender : NULL,
                               .status_url = c->status_url[0] ? c->status_url : NULL};
    rq->send = (provider_send_t){.message_id = c->id,
                                 .channel = ch->value,
                                 .to = c->recipient,
                                 .text = c->text,
                                 .human_agent = strcmp (c->category, "transactional") == 0};
    if (rq->adapter->build (&acc, &rq->send, &req, err, sizeof err) != 0) {
        (void)outcome_refuse (&w->octx, c, "bad_request", err);
        goto cleanup;
    }
    hr = (rt_http_client_request_t){.method = req.method,
                                    .url = req.url,
                                    .headers = (const char *const *)req.headers,
                                    .body = req.body,
                                    .body_len = req.body_len,
                                    .timeout_ms = (int)cfg->request_timeout_ms,
                                    .done = s_done,
                                    .arg = rq};
    rq->started_us = rt_clock_elapsed_us ();
    if (rt_http_client_submit (w->http, &hr, err, sizeof err) != 0) {
        rt_log (RT_LOG_WARN, "request not submitted", rt_log_str ("url", req.log_url),
                rt_log_str ("error", err));
        s_local_retry (w, c, err);
        goto cleanup;
    }
    s_in_flight (w, 1);
    provider_request_free (&req);
    return;
cleanup:
    provider_request_free (&req);
    s_request_free (rq);
}

static char *
s_dup (const PGresult *r, int row, int col)
{
    return strdup (PQgetvalue (r, row, col));
}

/* One claim; returns how many sends it took, -1 when PostgreSQL failed. */
static int
s_claim (worker_t *w, int room)
{
    const sender_config_t *cfg = &w->owner->cfg;
    char now[24], limit[16];
    const char *v[3] = {cfg->member, now, limit};
    PGresult *r;
    int n;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (limit, sizeof limit, "%d", room < cfg->claim_batch ? room : cfg->claim_batch);
    r = rt_db_exec_prepared (w->db, S_CLAIM, 3, v, NULL, NULL, 0);
    if (!r) {
        rt_log (RT_LOG_WARN, "claim failed", rt_log_str ("error", rt_db_error (w->db)));
        return -1;
    }
    n = PQntuples (r);
    for (int i = 0; i < n; i++) {
        notify_claim_t c = {.id = s_dup (r, i, 0),
                            .channel = s_dup (r, i, 1),
                            .recipient = s_dup (r, i, 2),
                            .text = s_dup (r, i, 3),
                            .attempts = atoi (PQgetvalue (r, i, 4)),
                            .failures = atoi (PQgetvalue (r, i, 5)),
                            .customer_id = s_dup (r, i, 6),
                            .category = s_dup (r, i, 7),
                            .account = s_dup (r, i, 8),
                            .provider = s_dup (r, i, 9),
                            .base_url = s_dup (r, i, 10),
                            .token = s_dup (r, i, 11),
                            .account_id = s_dup (r, i, 12),
                            .sender = s_dup (r, i, 13),
                            .status_url = s_dup (r, i, 14)};
        if (!c.id || !c.channel || !c.recipient || !c.text || !c.customer_id || !c.category ||
            !c.account || !c.provider || !c.base_url || !c.token || !c.account_id || !c.sender ||
            !c.status_url) {
            /* Out of memory: the send stays `sending` and the lease
             * brings it back. */
            s_claim_free (&c);
            continue;
        }
        s_submit (w, &c);
    }
    PQclear (r);
    return n;
}

static void
s_schedule (worker_t *w, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add (w->tick, &tv);
}

static void
s_tick (evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    sender_t *s = w->owner;
    const sender_config_t *cfg = &s->cfg;
    int64_t mono = rt_clock_mono_ms ();
    int room, n = 0;
    (void)fd;
    (void)what;

    if (atomic_load (&s->stop)) {
        if (w->drain_until == 0)
            w->drain_until = mono + cfg->request_timeout_ms;
        if (w->in_flight == 0 || mono >= w->drain_until) {
            event_base_loopbreak (w->base);
            return;
        }
        s_schedule (w, 10);
        return;
    }
    if (!rt_db_is_ok (w->db) && rt_db_ensure_for (w->db, 1000) != 0) {
        s_schedule (w, cfg->poll_ms);
        return;
    }
    if (w->index == 0 && mono >= w->next_sweep) {
        bool first = !atomic_load (&s->swept);
        if (recover_sweep (&w->octx, first) == 0) {
            atomic_store (&s->swept, true);
            w->next_sweep = mono + cfg->sweep_ms;
        }
    }
    if (!atomic_load (&s->swept)) {
        s_schedule (w, cfg->poll_ms);
        return;
    }
    if (!w->counted_ready) {
        w->counted_ready = true;
        atomic_fetch_add (&s->ready, 1);
    }
    room = w->cap - w->in_flight;
    if (room > 0)
        n = s_claim (w, room);
    s_schedule (
        w, n > 0 && n >= (room < cfg->claim_batch ? room : cfg->claim_batch) ? 0 : cfg->poll_ms);
}

static int
s_worker_prepare (worker_t *w)
{
    if (rt_outbox_prepare (w->db) != 0 || outcome_prepare (w->db) != 0 ||
        recover_prepare (w->db) != 0 || notification_prepare (w->db) != 0 ||
        rt_db_prepare (w->db, S_CLAIM, s_claim_sql) != 0 ||
        rt_db_prepare (w->db, S_MAIL, s_mail_sql) != 0)
        return -1;
    return 0;
}

static void *
s_worker_main (void *arg)
{
    worker_t *w = arg;
    const sender_config_t *cfg = &w->owner->cfg;
    rt_http_client_config_t hc = {.max_host_connections = cfg->host_connections,
                                  .max_total_connections = cfg->host_connections * 4,
                                  .timeout_ms = (int)cfg->request_timeout_ms,
                                  .user_agent = "retain-notifyd"};
    char err[256];

    /* Registered before the first connection, so rt_db prepares them on
     * it and on every later one. */
    if (s_worker_prepare (w) != 0) {
        rt_log (RT_LOG_ERROR, "the sender's statements were not registered",
                rt_log_str ("error", rt_db_error (w->db)));
        return NULL;
    }
    while (!atomic_load (&w->owner->stop) && rt_db_ensure_for (w->db, 1000) != 0)
        rt_signal_sleep_ms (100);
    if (atomic_load (&w->owner->stop))
        return NULL;
    w->base = event_base_new ();
    w->http = w->base ? rt_http_client_new (w->base, &hc, err, sizeof err) : NULL;
    w->tick = w->base ? evtimer_new (w->base, s_tick, w) : NULL;
    w->smtp = w->http && w->tick ? smtp_new (w->base, &cfg->smtp, w->cap, err, sizeof err) : NULL;
    if (!w->base || !w->http || !w->tick || !w->smtp) {
        rt_log (RT_LOG_ERROR, "the sender's loop could not start",
                rt_log_str ("error", w->base ? err : "event_base_new failed"));
        goto cleanup;
    }
    s_schedule (w, 0);
    event_base_dispatch (w->base);
cleanup:
    /* Cancels what is still in flight: its sends stay `sending`. */
    smtp_destroy (&w->smtp);
    rt_http_client_destroy (&w->http);
    if (w->tick)
        event_free (w->tick);
    w->tick = NULL;
    if (w->base)
        event_base_free (w->base);
    w->base = NULL;
    return NULL;
}

sender_t *
sender_start (const sender_config_t *config, char *err, size_t errlen)
{
    sender_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *config;
    self->in_flight_gauge = rt_metrics_gauge (config->metrics, "retain_notify_in_flight", "",
                                              "requests to providers in flight");
    self->workers = calloc ((size_t)config->workers, sizeof *self->workers);
    if (!self->workers) {
        rt_errf (err, errlen, "out of memory");
        goto failed;
    }
    for (int i = 0; i < config->workers; i++) {
        worker_t *w = &self->workers[i];
        char app[64];
        w->owner = self;
        w->index = i;
        w->cap = config->in_flight / config->workers + (i < config->in_flight % config->workers);
        if (w->cap < 1)
            w->cap = 1;
        snprintf (app, sizeof app, "retain-notifyd-sender-%d", i);
        w->db = rt_db_new (config->dsn, app);
        if (!w->db) {
            rt_errf (err, errlen, "out of memory");
            goto failed;
        }
        w->octx.config = &self->cfg;
        w->octx.db = w->db;
    }
    for (int i = 0; i < config->workers; i++) {
        worker_t *w = &self->workers[i];
        if (pthread_create (&w->thread, NULL, s_worker_main, w) != 0) {
            rt_errf (err, errlen, "the sender's thread %d did not start", i);
            goto failed;
        }
        w->started = true;
    }
    return self;
failed:
    sender_stop (&self);
    return NULL;
}

bool
sender_ready (const sender_t *self)
{
    return self && atomic_load (&self->swept) &&
           atomic_load (&((sender_t *)self)->ready) == self->cfg.workers;
}

void
sender_stop (sender_t **self_p)
{
    sender_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    for (int i = 0; self->workers && i < self->cfg.workers; i++) {
        if (self->workers[i].started)
            pthread_join (self->workers[i].thread, NULL);
    }
    for (int i = 0; self->workers && i < self->cfg.workers; i++)
        rt_db_destroy (&self->workers[i].db);
    free (self->workers);
    free (self);
    *self_p = NULL;
}
