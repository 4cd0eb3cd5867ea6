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
 *      account and recipient budgets held in PostgreSQL and outside the
 *      customers' quiet hours, and marks them `sending`: every one is
 *      committed as such before its request leaves.
 *   3. Each claimed send is built by its provider's adapter (provider.h)
 *      and submitted; a send the adapter refuses fails at once. A send
 *      the claim says is attached has its media and its part read first
 *      (one statement, for those sends alone). E-mail
 *      (provider "smtp") is built by provider_smtp_build, its subject and
 *      HTML read from the send, and goes to the worker's SMTP threads
 *      (smtp.h), which hand its end back to the loop.
 *   4. Each answer is classified by the adapter and added to the worker's
 *      batch of outcomes (outcome.c), flushed in one transaction flush_ms
 *      after its first answer, at once when it holds flush_max answers or
 *      when nothing else is in flight.
 *
 * A claim's slot is held from the claim until its outcome is committed (a
 * crash duplicates at most the in-flight cap). A worker claims when at
 * least half a batch's worth of slots is free, not as soon as one is: the
 * claim costs about the same for one send or a hundred. It claims again at
 * once when the last claim was full, when a flush freed slots, and when
 * PostgreSQL says sends were queued (LISTEN notify_sends: the trigger of
 * notify 006 on the consumer's inserts); otherwise after poll_ms, which
 * finds the sends that became due later (a retry's backoff, the morning
 * after quiet hours).
 *
 * On stop the workers claim nothing more, wait for their requests in
 * flight up to the request timeout and record their outcomes, then close;
 * what was still in flight stays `sending` and the crash policy settles it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "notifyd.h"
#include "rt_attachment.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_http_client.h"
#include "rt_http_loop.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "rt_utf8.h"

#define S_CLAIM "notify_sender_claim"
static const char *s_claim_sql =
    "SELECT id, channel, recipient, text, attempts, failures, COALESCE(customer_id::text, ''),"
    " category, account, provider, base_url, token, account_id, sender, status_url,"
    " COALESCE(suppressed_by, ''), human, attached"
    " FROM notify.claim($1, $2::bigint, $3::integer, $4::integer, $5::integer, $6)";

/* The channel notify 006's trigger speaks on when sends are queued. */
#define S_CHANNEL "notify_sends"

/* A failed flush is tried again after this, doubled up to S_RETRY_MAX_MS. */
#define S_RETRY_MS     50
#define S_RETRY_MAX_MS 1000

/* An e-mail's subject and HTML part, which the claim does not carry. */
#define S_MAIL "notify_sender_mail"
static const char *s_mail_sql =
    "SELECT COALESCE(subject, ''), COALESCE(html, '') FROM notify.sends WHERE id = $1::uuid";

/* A WhatsApp send's approved template, when it goes as one (notify 009):
 * a row per parameter, in order (one with a NULL parameter when it has
 * none); no row: free text. */
#define S_WA "notify_sender_wa"
static const char *s_wa_sql =
    "SELECT s.wa_template, s.wa_language, p.param FROM notify.sends s"
    " LEFT JOIN LATERAL unnest(s.wa_params) WITH ORDINALITY AS p(param, n) ON true"
    " WHERE s.id = $1::uuid AND s.wa_template IS NOT NULL ORDER BY p.n";

/* The comment an operator's reply on Messenger or Instagram answers
 * (notify 011), read for those sends alone; no row: a direct message. */
#define S_REPLY "notify_sender_reply"
static const char *s_reply_sql = "SELECT reply_comment, reply_public FROM notify.sends"
                                 " WHERE id = $1::uuid AND reply_comment IS NOT NULL";

/* Template parameters a send carries at most. */
#define S_WA_PARAMS_MAX 32

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
    sender_t *owner;        /* the sender */
    int index;              /* 0 runs the crash policy */
    pthread_t thread;       /* its thread */
    bool started;           /* the thread was created */
    rt_http_loop_t loop;    /* its loop, client and timer (the tick: claims, sweeps,
                               reconnects) */
    struct event *flush;    /* the outcomes' timer */
    struct event *listen;   /* the connection's socket, for NOTIFY; NULL when not watched */
    uint64_t listening;     /* the connection generation listen watches */
    smtp_t *smtp;           /* its e-mail sessions */
    rt_db_t *db;            /* its connection */
    outcome_ctx_t octx;     /* outcome.c's view of it */
    outcome_batch_t *batch; /* answers not recorded yet */
    int cap;                /* its share of the in-flight cap */
    int in_flight;          /* its requests in flight */
    int64_t retry_ms;       /* a failed flush's delay before the next, 0: none failed */
    int64_t next_sweep;     /* mono ms of the next sweep (worker 0) */
    bool counted_ready;     /* it added itself to owner->ready */
    bool in_tick;           /* the tick runs: a wake-up waits for its end */
    bool again;             /* claim again as soon as the tick ends */
};

/* One request in flight. */
typedef struct {
    worker_t *w;          /* its worker */
    notify_claim_t claim; /* the send, owned */
    const provider_t *adapter;
    provider_send_t send; /* the adapter's view (points into claim and media) */
    json_t *media_doc;    /* claim.attachments parsed; media's strings are its */
    provider_attachment_t media[RT_ATTACHMENTS_MAX]; /* send.attachments */
    int64_t started_us;                              /* rt_clock_elapsed_us at submit */
    char mail_id[PROVIDER_EXT_MAX];                  /* e-mail: its Message-ID, the external id */
} s_request_t;

static void
s_request_free (s_request_t *rq)
{
    if (!rq)
        return;
    notify_claim_free (&rq->claim);
    json_decref (rq->media_doc);
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

/* Claims again as soon as the loop is free: from inside the tick, when
 * the tick ends. */
static void
s_wake (worker_t *w)
{
    if (w->in_tick)
        w->again = true;
    else
        rt_http_loop_arm (w->loop.tick, 0);
}

/* Drains the NOTIFYs libpq holds; true when there were any. */
static bool
s_drain (worker_t *w)
{
    PGconn *conn = rt_db_conn (w->db);
    PGnotify *n;
    bool any = false;
    while (conn && (n = PQnotifies (conn)) != NULL) {
        any = true;
        PQfreemem (n);
    }
    return any;
}

/* The connection's socket became readable between two statements: only
 * NOTIFYs come then (or the server's goodbye). */
static void
s_listen_cb (evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    PGconn *conn = rt_db_conn (w->db);
    (void)fd;
    (void)what;
    if (!conn || !PQconsumeInput (conn)) {
        rt_db_invalidate (w->db);
        rt_http_loop_event_free (&w->listen);
        s_wake (w);
        return;
    }
    if (s_drain (w))
        s_wake (w);
}

/* The connection up (reconnecting for a second at most) and its socket
 * watched; false when PostgreSQL cannot be reached. */
static bool
s_connected (worker_t *w)
{
    PGconn *conn;
    if (!rt_db_is_ok (w->db)) {
        /* Before libpq closes the socket the event watches. */
        rt_http_loop_event_free (&w->listen);
        if (rt_db_ensure_for (w->db, 1000) != 0)
            return false;
    }
    conn = rt_db_conn (w->db);
    if (conn && (!w->listen || w->listening != rt_db_generation (w->db))) {
        rt_http_loop_event_free (&w->listen);
        w->listen = event_new (w->loop.base, PQsocket (conn), EV_READ | EV_PERSIST, s_listen_cb, w);
        if (w->listen && event_add (w->listen, NULL) != 0)
            rt_http_loop_event_free (&w->listen);
        w->listening = rt_db_generation (w->db);
    }
    return true;
}

static int
s_on_connect (rt_db_t *db, void *arg)
{
    (void)arg;
    return rt_db_exec (db, "LISTEN " S_CHANNEL);
}

/* Records the answers in the batch now; a failure is tried again later. */
static void
s_flush_now (worker_t *w)
{
    size_t before = outcome_batch_size (w->batch);
    bool failed;
    if (before == 0)
        return;
    evtimer_del (w->flush);
    failed = !s_connected (w) || outcome_flush (&w->octx, w->batch) < 0;
    if (failed) {
        w->retry_ms = w->retry_ms ? w->retry_ms * 2 : S_RETRY_MS;
        if (w->retry_ms > S_RETRY_MAX_MS)
            w->retry_ms = S_RETRY_MAX_MS;
        rt_http_loop_arm (w->flush, w->retry_ms);
    } else {
        w->retry_ms = 0;
    }
    /* Slots freed, or NOTIFYs libpq read during the flush: claim. */
    if (outcome_batch_size (w->batch) < before || s_drain (w))
        s_wake (w);
}

static void
s_flush_cb (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_flush_now (arg);
}

/* An answer joined the batch: flushed at once when the batch is full or
 * nothing else is in flight, else within flush_ms. */
static void
s_added (worker_t *w)
{
    const sender_config_t *cfg = &w->owner->cfg;
    if (w->retry_ms)
        return; /* a failed flush's timer is set: it takes this one too */
    if (outcome_batch_size (w->batch) >= (size_t)cfg->flush_max || w->in_flight == 0) {
        s_flush_now (w);
    } else if (!evtimer_pending (w->flush, NULL)) {
        rt_http_loop_arm (w->flush, cfg->flush_ms);
    }
}

/* What the provider answered to claim c, or a failure of notifyd's own
 * (takes c's strings). */
static void
s_record (worker_t *w, notify_claim_t *c, const provider_outcome_t *o)
{
    if (o->verdict != PROVIDER_SENT)
        rt_log (RT_LOG_INFO, "attempt not sent", rt_log_str ("message_id", c->id),
                rt_log_str ("verdict", provider_verdict_name (o->verdict)),
                rt_log_str ("code", o->code), rt_log_str ("reason", o->reason),
                rt_log_int ("attempt", c->attempts));
    (void)outcome_add (w->batch, &w->owner->cfg, c, o);
    s_added (w);
}

/* Claim c fails for good before its request (takes c's strings). */
static void
s_refuse (worker_t *w, notify_claim_t *c, const char *code, const char *reason)
{
    (void)outcome_add_refusal (w->batch, c, code, reason);
    s_added (w);
}

static void
s_done (void *arg, const rt_http_response_t *resp)
{
    s_request_t *rq = arg;
    worker_t *w = rq->w;
    provider_outcome_t o;
    s_observe (w, rq->claim.provider, rq->started_us);
    s_in_flight (w, -1);
    if (resp->outcome != RT_HTTP_OUTCOME_CANCELLED) {
        rq->adapter->classify (&rq->send, resp, &o);
        s_record (w, &rq->claim, &o);
    }
    s_request_free (rq);
}

/* A failure of notifyd's own before the request left, recorded as the
 * transient failure it is. */
static void
s_local_retry (worker_t *w, notify_claim_t *c, const char *why)
{
    provider_outcome_t o;
    memset (&o, 0, sizeof o);
    o.verdict = PROVIDER_RETRY;
    snprintf (o.code, sizeof o.code, "submit");
    snprintf (o.reason, sizeof o.reason, "%s", why);
    s_record (w, c, &o);
}

static void
s_mail_done (void *arg, const smtp_result_t *res)
{
    s_request_t *rq = arg;
    worker_t *w = rq->w;
    provider_outcome_t o;
    s_observe (w, rq->claim.provider, rq->started_us);
    s_in_flight (w, -1);
    if (!res->cancelled) {
        provider_smtp_classify (&res->answer, rq->mail_id, &o);
        s_record (w, &rq->claim, &o);
    }
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
        s_refuse (w, c, "no_adapter", err);
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
        s_refuse (w, c, "bad_request", err);
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

/* A send whose address was suppressed after it was queued: nothing goes
 * out, and it is recorded as out of reach on its channel (a notification
 * goes on to its next channel, anything else fails `suppressed`). */
static void
s_suppressed (worker_t *w, notify_claim_t *c)
{
    provider_outcome_t o;
    memset (&o, 0, sizeof o);
    o.verdict = PROVIDER_STOP_RECIPIENT;
    snprintf (o.code, sizeof o.code, "suppressed");
    snprintf (o.reason, sizeof o.reason, "the address is suppressed (%s)", c->suppressed_by);
    s_record (w, c, &o);
}

/* Reads the media and the part of rq's claim when the claim says it has
 * them; the media go to the adapter only on a channel that sends them
 * (elsewhere their links are in the text). 0 or -1. */
static int
s_attachments (worker_t *w, s_request_t *rq, const rt_channel_t *ch)
{
    int n;
    if (parts_read (w->db, &rq->claim) != 0)
        return -1;
    if (!ch || ch->caption_max <= 0)
        return 0;
    n = parts_media (&rq->claim, &rq->media_doc, rq->media);
    if (n < 0)
        return -1;
    rq->send.attachments = n ? rq->media : NULL;
    rq->send.n_attachments = (size_t)n;
    return 0;
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
    const char *params[S_WA_PARAMS_MAX + 1];
    PGresult *wa = NULL, *reply = NULL;
    int built;
    s_request_t *rq = calloc (1, sizeof *rq);

    memset (&req, 0, sizeof req);
    if (!rq) {
        s_local_retry (w, c, "out of memory");
        notify_claim_free (c);
        return;
    }
    rq->w = w;
    rq->claim = *c;
    memset (c, 0, sizeof *c);
    c = &rq->claim;
    if (s_attachments (w, rq, ch) != 0) {
        s_local_retry (w, c, "the send's attachments were not read");
        goto cleanup;
    }
    if (c->suppressed_by[0]) {
        s_suppressed (w, c);
        goto cleanup;
    }
    if (strcmp (c->provider, PROVIDER_SMTP) == 0) {
        s_submit_mail (w, rq, ch);
        return;
    }
    rq->adapter = ch ? provider_find_for (c->provider, ch->value) : NULL;
    if (!rq->adapter) {
        snprintf (err, sizeof err, "no adapter sends %s through %s", c->channel, c->provider);
        s_refuse (w, c, "no_adapter", err);
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
                                 .human_agent = c->human,
                                 .attachments = rq->send.attachments,
                                 .n_attachments = rq->send.n_attachments};
    if (ch->value == RETAIN__V1__CHANNEL__WHATSAPP) {
        const char *v[1] = {c->id};
        wa = rt_db_exec_prepared (w->db, S_WA, 1, v, NULL, NULL, 0);
        if (!wa) {
            s_local_retry (w, c, "the WhatsApp template was not read");
            goto cleanup;
        }
        if (PQntuples (wa) > 0) {
            int n = 0;
            for (int i = 0; i < PQntuples (wa) && n < S_WA_PARAMS_MAX; i++) {
                if (!PQgetisnull (wa, i, 2))
                    params[n++] = PQgetvalue (wa, i, 2);
            }
            params[n] = NULL;
            rq->send.template_name = PQgetvalue (wa, 0, 0);
            rq->send.template_lang = PQgetvalue (wa, 0, 1);
            rq->send.template_params = params;
        }
    }
    if (c->human && (ch->value == RETAIN__V1__CHANNEL__MESSENGER ||
                     ch->value == RETAIN__V1__CHANNEL__INSTAGRAM)) {
        const char *v[1] = {c->id};
        reply = rt_db_exec_prepared (w->db, S_REPLY, 1, v, NULL, NULL, 0);
        if (!reply) {
            s_local_retry (w, c, "the comment the reply answers was not read");
            goto cleanup;
        }
        if (PQntuples (reply) == 1) {
            rq->send.reply_to = PQgetvalue (reply, 0, 0);
            rq->send.reply_public = strcmp (PQgetvalue (reply, 0, 1), "t") == 0;
        }
    }
    built = rq->adapter->build (&acc, &rq->send, &req, err, sizeof err);
    /* The template's and the comment's strings are the results': the
     * request holds copies. The classifier reads only whether it was a
     * public reply. */
    rq->send.template_name = rq->send.template_lang = NULL;
    rq->send.template_params = NULL;
    rq->send.reply_to = NULL;
    PQclear (wa);
    PQclear (reply);
    wa = reply = NULL;
    if (built != 0) {
        s_refuse (w, c, "bad_request", err);
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
    if (rt_http_client_submit (w->loop.http, &hr, err, sizeof err) != 0) {
        rt_log (RT_LOG_WARN, "request not submitted", rt_log_str ("url", req.log_url),
                rt_log_str ("error", err));
        s_local_retry (w, c, err);
        goto cleanup;
    }
    s_in_flight (w, 1);
    rt_http_outreq_free (&req);
    return;
cleanup:
    PQclear (wa);
    PQclear (reply);
    rt_http_outreq_free (&req);
    s_request_free (rq);
}

/* One claim of up to want sends; returns how many it took, -1 when
 * PostgreSQL failed. */
static int
s_claim (worker_t *w, int want)
{
    const sender_config_t *cfg = &w->owner->cfg;
    const notification_config_t *ncfg = cfg->notification;
    char now[24], limit[16], qs[16], qe[16];
    const char *v[6] = {cfg->member, now, limit, qs, qe, ncfg ? ncfg->default_zone : "UTC"};
    PGresult *r;
    int64_t mono = rt_clock_mono_ms ();
    int n;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (limit, sizeof limit, "%d", want);
    snprintf (qs, sizeof qs, "%d", ncfg ? ncfg->quiet_start_min : 0);
    snprintf (qe, sizeof qe, "%d", ncfg ? ncfg->quiet_end_min : 0);
    r = rt_db_exec_prepared (w->db, S_CLAIM, 6, v, NULL, NULL, 0);
    if (!r) {
        rt_log (RT_LOG_WARN, "claim failed", rt_log_str ("error", rt_db_error (w->db)));
        return -1;
    }
    n = PQntuples (r);
    for (int i = 0; i < n; i++) {
        notify_claim_t c;
        /* Out of memory: the send stays `sending` and the lease brings it
         * back. */
        if (notify_claim_from_row (r, i, mono, &c) == 0)
            s_submit (w, &c);
    }
    PQclear (r);
    return n;
}

/* Stopping: the answers in flight come back and are recorded, until the
 * request timeout. The delay to the next tick, -1 when the loop ends. */
static int64_t
s_drain_step (worker_t *w, int64_t mono)
{
    size_t left = outcome_batch_size (w->batch);
    if (left && w->retry_ms == 0)
        s_flush_now (w);
    left = outcome_batch_size (w->batch);
    if (!rt_http_loop_drain (&w->loop, mono, w->owner->cfg.request_timeout_ms,
                             w->in_flight == 0 && left == 0))
        return 10;
    if (left)
        rt_log (RT_LOG_WARN, "outcomes not recorded at stop: the crash policy settles their sends",
                rt_log_int ("answers", (long long)left));
    return -1;
}

/* One tick: the delay to the next, -1 when the loop ends. */
static int64_t
s_step (worker_t *w)
{
    sender_t *s = w->owner;
    const sender_config_t *cfg = &s->cfg;
    int64_t mono = rt_clock_mono_ms ();
    int room, target, want, n;

    if (atomic_load (&s->stop))
        return s_drain_step (w, mono);
    if (!s_connected (w))
        return cfg->poll_ms;
    if (w->index == 0 && mono >= w->next_sweep) {
        bool first = !atomic_load (&s->swept);
        if (recover_sweep (&w->octx, first) == 0) {
            atomic_store (&s->swept, true);
            w->next_sweep = mono + cfg->sweep_ms;
        } else {
            w->next_sweep = mono + cfg->poll_ms;
        }
    }
    if (!atomic_load (&s->swept))
        return cfg->poll_ms;
    if (!w->counted_ready) {
        w->counted_ready = true;
        atomic_fetch_add (&s->ready, 1);
    }
    /* Half a batch free, or wait for the flush that frees it. */
    room = w->cap - w->in_flight - (int)outcome_batch_size (w->batch);
    target = cfg->claim_batch < w->cap ? cfg->claim_batch : w->cap;
    if (room < (target + 1) / 2)
        return cfg->poll_ms;
    want = room < cfg->claim_batch ? room : cfg->claim_batch;
    (void)s_drain (w); /* this claim answers the NOTIFYs so far */
    n = s_claim (w, want);
    if (s_drain (w))
        w->again = true;
    return n == want ? 0 : cfg->poll_ms;
}

static void
s_tick (evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    int64_t next;
    (void)fd;
    (void)what;
    w->in_tick = true;
    w->again = false;
    next = s_step (w);
    w->in_tick = false;
    if (next < 0)
        return;
    if (w->again)
        next = 0;
    if (w->index == 0 && w->next_sweep > 0) {
        /* The sweep's turn comes even when nothing wakes the worker. */
        int64_t to_sweep = w->next_sweep - rt_clock_mono_ms ();
        if (to_sweep < next)
            next = to_sweep > 0 ? to_sweep : 0;
    }
    rt_http_loop_arm (w->loop.tick, next);
}

static int
s_worker_prepare (worker_t *w)
{
    if (rt_outbox_prepare (w->db) != 0 || outcome_prepare (w->db) != 0 ||
        recover_prepare (w->db) != 0 || notification_prepare (w->db) != 0 ||
        rt_db_prepare (w->db, S_CLAIM, s_claim_sql) != 0 ||
        rt_db_prepare (w->db, S_MAIL, s_mail_sql) != 0 ||
        rt_db_prepare (w->db, S_WA, s_wa_sql) != 0 ||
        rt_db_prepare (w->db, S_REPLY, s_reply_sql) != 0 || parts_prepare (w->db) != 0)
        return -1;
    return 0;
}

/* The worker's loop and, on it, its flush timer and SMTP sessions, and its
 * batch. 0, or -1 with err filled; s_worker_main frees what was made. */
static int
s_worker_open (worker_t *w, const rt_http_client_config_t *hc, char *err, size_t errlen)
{
    if (rt_http_loop_open (&w->loop, hc, s_tick, w, &w->owner->stop, err, errlen) != 0)
        return -1;
    w->flush = evtimer_new (w->loop.base, s_flush_cb, w);
    w->batch = outcome_batch_new ();
    if (!w->flush || !w->batch) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    w->smtp = smtp_new (w->loop.base, &w->owner->cfg.smtp, w->cap, err, errlen);
    return w->smtp ? 0 : -1;
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
    if (s_worker_open (w, &hc, err, sizeof err) == 0)
        rt_http_loop_run (&w->loop);
    else
        rt_log (RT_LOG_ERROR, "the sender's loop could not start", rt_log_str ("error", err));
    /* Cancels what is still in flight: its sends stay `sending`. Their
     * done callbacks use the batch and the flush timer, freed after. */
    smtp_destroy (&w->smtp);
    rt_http_loop_cancel (&w->loop);
    outcome_batch_destroy (&w->batch);
    rt_http_loop_event_free (&w->listen);
    rt_http_loop_event_free (&w->flush);
    rt_http_loop_close (&w->loop);
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
        w->cap = rt_http_loop_share (config->in_flight, config->workers, i);
        snprintf (app, sizeof app, "retain-notifyd-sender-%d", i);
        w->db = rt_db_new (config->dsn, app);
        if (!w->db) {
            rt_errf (err, errlen, "out of memory");
            goto failed;
        }
        rt_db_set_on_connect (w->db, s_on_connect, w);
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
