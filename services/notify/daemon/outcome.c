/*
 * outcome: what a provider's answer does to a send, recorded in one
 * transaction with the events it makes.
 *
 *   SENT            sent, with the provider's id; where the provider has
 *                   no delivery receipts (Telegram's bots) it is delivered
 *                   at once and MessageDelivered says so; elsewhere ingest's
 *                   receipt moves it on (handler.c).
 *   RETRY           queued again after the backoff (backoff_ms doubled per
 *                   failure, capped at backoff_max_ms, the later half
 *                   jittered); the retry_max-th failure fails it for good,
 *                   MessageFailed permanent = false: a dead letter that
 *                   keeps its reason.
 *   WAIT            queued again after the provider's delay (else
 *                   wait_default_ms); unless the code names one recipient
 *                   (WhatsApp's pair limits) the whole account pauses as
 *                   long (notify.accounts.paused_until), so no replica
 *                   sends through it meanwhile. A wait counts no failure.
 *   STOP_RECIPIENT, WINDOW, BAD_REQUEST
 *                   failed, MessageFailed permanent with the provider's
 *                   code and words. For the first two (s_unreachable): an
 *                   opt-out withdraws consent on the channel (source
 *                   "provider:<code>"), and a notification's send hands
 *                   over to the next channel of its route in the same
 *                   transaction (notification.c): the failed send keeps
 *                   the provider's words and names its successor, and no
 *                   MessageFailed is said while a channel is left.
 *   STOP_ACCOUNT    the account stopped (stopped_at, stopped_reason,
 *                   logged, counted); the send is queued again and waits
 *                   for another usable account of its inbox, or for an
 *                   operator to clear the stop. No failure counted.
 *
 * Every update names the claim that sent it (claimed_by, attempts): a send
 * the crash policy took back while its answer was on the way is not
 * touched again, and the answer is counted as fenced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifyd.h"
#include "rt_bus.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"

/* The claim's send, moved to its outcome: $1 id, $2 claimed_by, $3
 * attempts, $4 status, $5 next_at (ms, NULL: unchanged), $6 failures to
 * add, $7 external id ('' none), $8 verdict, $9 code, $10 reason, $11 now. */
#define S_DONE "notify_outcome_done"
static const char *s_done_sql =
    "UPDATE notify.sends SET status = $4,"
    "  next_at = COALESCE(to_timestamp($5::bigint / 1000.0), next_at),"
    "  failures = failures + $6::integer, external_id = COALESCE(NULLIF($7, ''), external_id),"
    "  last_verdict = $8, last_code = NULLIF($9, ''), last_reason = NULLIF($10, ''),"
    "  sent_at = CASE WHEN $4 IN ('sent', 'delivered') THEN to_timestamp($11::bigint / 1000.0)"
    "                 ELSE sent_at END,"
    "  delivered_at = CASE WHEN $4 = 'delivered' THEN to_timestamp($11::bigint / 1000.0)"
    "                      ELSE delivered_at END,"
    "  updated_at = to_timestamp($11::bigint / 1000.0)"
    " WHERE id = $1::uuid AND status = 'sending' AND claimed_by = $2 AND attempts = $3::integer"
    " RETURNING COALESCE(notification_id, id)::text, COALESCE(notification_id::text, '')";

/* The account waits until $2 (ms), or longer when it already does. */
#define S_PAUSE "notify_outcome_pause"
static const char *s_pause_sql = "UPDATE notify.accounts SET updated_at = now(),"
                                 "  paused_until = GREATEST(COALESCE(paused_until, '-infinity'),"
                                 "                          to_timestamp($2::bigint / 1000.0))"
                                 " WHERE id = $1";

/* The account refused by its provider; the first reason is kept. */
#define S_STOP "notify_outcome_stop"
static const char *s_stop_sql =
    "UPDATE notify.accounts SET updated_at = now(),"
    "  stopped_at = COALESCE(stopped_at, to_timestamp($3::bigint / 1000.0)),"
    "  stopped_reason = COALESCE(stopped_reason, $2)"
    " WHERE id = $1";

static int
s_emit (rt_db_t *db, const char *type, const char *key, const ProtobufCMessage *payload, char *err,
        size_t errlen)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, NOTIFYD_PRODUCER);
    ProtobufCBinaryData packed = {0};
    int rc = -1;
    if (!env) {
        rt_errf (err, errlen, "%s: no envelope (out of memory)", type);
        return -1;
    }
    packed.data = rt_envelope_pack (env, &packed.len);
    if (!packed.data) {
        rt_errf (err, errlen, "%s: out of memory", type);
        goto cleanup;
    }
    if (rt_outbox_append_batch (db, &packed, 1) != 0) {
        rt_errf (err, errlen, "%s to the outbox: %s", type, rt_db_error (db));
        goto cleanup;
    }
    rc = 0;
cleanup:
    free (packed.data);
    rt_envelope_free (env);
    return rc;
}

/* Keyed by customer, as routerd keys the request: one customer's messages
 * keep their order on the bus. */
static const char *
s_key (const notify_event_t *ev)
{
    return ev->customer_id && *ev->customer_id ? ev->customer_id : ev->message_id;
}

static Retain__V1__Channel
s_channel (const char *name)
{
    const rt_channel_t *ch = name ? rt_channel_by_name (name) : NULL;
    return ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
}

int
notify_emit_failed (rt_db_t *db, const notify_event_t *ev, const char *code, const char *reason,
                    bool permanent, int attempts, char *err, size_t errlen)
{
    Retain__V1__MessageFailed m = RETAIN__V1__MESSAGE_FAILED__INIT;
    m.message_id = (char *)ev->message_id;
    m.channel = s_channel (ev->channel);
    m.external_id = (char *)(ev->external_id ? ev->external_id : "");
    m.error_code = (char *)(code ? code : "");
    m.error = (char *)(reason ? reason : "");
    m.permanent = permanent;
    m.attempts = attempts > 0 ? (uint32_t)attempts : 0;
    m.customer_id = (char *)(ev->customer_id ? ev->customer_id : "");
    return s_emit (db, "MessageFailed", s_key (ev), &m.base, err, errlen);
}

int
notify_emit_delivered (rt_db_t *db, const notify_event_t *ev, bool read, int64_t at_ms, char *err,
                       size_t errlen)
{
    Retain__V1__MessageDelivered m = RETAIN__V1__MESSAGE_DELIVERED__INIT;
    m.message_id = (char *)ev->message_id;
    m.channel = s_channel (ev->channel);
    m.external_id = (char *)(ev->external_id ? ev->external_id : "");
    m.delivered_at = at_ms;
    m.read = read;
    m.customer_id = (char *)(ev->customer_id ? ev->customer_id : "");
    return s_emit (db, "MessageDelivered", s_key (ev), &m.base, err, errlen);
}

int
outcome_prepare (rt_db_t *db)
{
    if (rt_db_prepare (db, S_DONE, s_done_sql) != 0 ||
        rt_db_prepare (db, S_PAUSE, s_pause_sql) != 0 ||
        rt_db_prepare (db, S_STOP, s_stop_sql) != 0)
        return -1;
    return 0;
}

/* The delay before retry number failures + 1: backoff doubled per failure
 * up to the cap, its later half drawn at random so that the sends of one
 * outage do not come back together. */
static int64_t
s_backoff_ms (const sender_config_t *cfg, int failures)
{
    static __thread unsigned s_seed;
    int64_t d = cfg->backoff_ms;
    for (int i = 0; i < failures && d < cfg->backoff_max_ms; i++)
        d *= 2;
    if (d > cfg->backoff_max_ms)
        d = cfg->backoff_max_ms;
    if (s_seed == 0)
        s_seed = (unsigned)rt_clock_elapsed_us () | 1u;
    return d / 2 + (d > 1 ? (int64_t)(rand_r (&s_seed) % (d - d / 2)) : 0);
}

/* What becomes of a send one verdict settles. */
typedef struct {
    const char *status; /* the send's new status */
    int64_t next_at;    /* when it is due again, 0: unchanged */
    int add_failures;   /* 1 for a transient failure */
    bool failed_event;  /* MessageFailed ... */
    bool permanent;     /* ... permanent or not */
    bool delivered;     /* MessageDelivered */
} s_effect_t;

/* A recipient out of reach on this channel (STOP_RECIPIENT, WINDOW),
 * inside the outcome's transaction: an opt-out (Twilio 21610, Viber's
 * unsubscribed) withdraws the customer's consent on the channel, both
 * categories, source "provider:<code>"; a notification's send hands over
 * to the next channel of its route. 1 handed over (no MessageFailed: the
 * notification goes on), 0 not, -1 PostgreSQL failed (err filled). */
static int
s_unreachable (const outcome_ctx_t *ctx, const notify_claim_t *c, const provider_outcome_t *o,
               const char *notification_id, int64_t now, char *err, size_t errlen)
{
    char why[PROVIDER_REASON_MAX + PROVIDER_CODE_MAX + 32];
    rt_log (RT_LOG_INFO, "recipient out of reach", rt_log_str ("message_id", c->id),
            rt_log_str ("channel", c->channel),
            rt_log_str ("verdict", provider_verdict_name (o->verdict)),
            rt_log_str ("code", o->code), rt_log_str ("reason", o->reason),
            rt_log_str ("opt_out", o->opt_out ? "true" : "false"));
    if (o->opt_out && c->customer_id[0]) {
        char source[PROVIDER_CODE_MAX + 16];
        snprintf (source, sizeof source, "provider:%s", o->code[0] ? o->code : c->provider);
        if (notification_consent (ctx->db, c->customer_id, c->channel, NULL, false, source, now) !=
            0) {
            rt_errf (err, errlen, "consent: %s", rt_db_error (ctx->db));
            return -1;
        }
    }
    if (!notification_id[0] ||
        (o->verdict != PROVIDER_STOP_RECIPIENT && o->verdict != PROVIDER_WINDOW))
        return 0;
    snprintf (why, sizeof why, "%s %s: %s", provider_verdict_name (o->verdict), o->code, o->reason);
    return notification_route (ctx->db, ctx->config->notification, notification_id, c->channel,
                               c->id, why, err, errlen);
}

static void
s_effect (const outcome_ctx_t *ctx, const notify_claim_t *c, const provider_outcome_t *o,
          int64_t now, s_effect_t *e)
{
    const sender_config_t *cfg = ctx->config;
    memset (e, 0, sizeof *e);
    switch (o->verdict) {
    case PROVIDER_SENT:
        e->delivered = o->delivered;
        e->status = e->delivered ? "delivered" : "sent";
        break;
    case PROVIDER_RETRY:
        e->add_failures = 1;
        if (c->failures + 1 >= cfg->retry_max) {
            e->status = "failed";
            e->failed_event = true;
        } else {
            e->status = "queued";
            e->next_at = now + s_backoff_ms (cfg, c->failures);
        }
        break;
    case PROVIDER_WAIT:
        e->status = "queued";
        e->next_at = now + (o->wait_ms > 0 ? o->wait_ms : cfg->wait_default_ms);
        break;
    case PROVIDER_STOP_ACCOUNT:
        e->status = "queued";
        e->next_at = now;
        break;
    case PROVIDER_STOP_RECIPIENT:
    case PROVIDER_WINDOW:
    case PROVIDER_BAD_REQUEST:
    default:
        e->status = "failed";
        e->failed_event = true;
        e->permanent = true;
        break;
    }
}

static void
s_count_verdict (const sender_config_t *cfg, const char *provider, const char *verdict)
{
    char labels[128];
    snprintf (labels, sizeof labels, "provider=\"%s\",verdict=\"%s\"", provider, verdict);
    rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_sends_total", labels,
                                        "attempts by provider and verdict"));
}

/* The send's update and its events, in one transaction. 1 done, 0 fenced,
 * -1 PostgreSQL failed. */
static int
s_apply (const outcome_ctx_t *ctx, const notify_claim_t *c, const provider_outcome_t *o,
         const s_effect_t *e, const char *verdict, int64_t now)
{
    rt_db_t *db = ctx->db;
    char attempts[16], next[24], add[8], nows[24], err[256], event_id[RT_UUID_STR_LEN + 1];
    char notification_id[RT_UUID_STR_LEN + 1];
    notify_event_t ev = {event_id, c->customer_id, c->channel,
                         o && o->external_id[0] ? o->external_id : NULL};
    bool handed_over = false;
    PGresult *r;
    snprintf (attempts, sizeof attempts, "%d", c->attempts);
    snprintf (next, sizeof next, "%lld", (long long)e->next_at);
    snprintf (add, sizeof add, "%d", e->add_failures);
    snprintf (nows, sizeof nows, "%lld", (long long)now);
    if (rt_db_begin (db) != 0)
        goto failed;
    {
        const char *v[11] = {
            c->id, ctx->config->member,     attempts, e->status,        e->next_at ? next : NULL,
            add,   o ? o->external_id : "", verdict,  o ? o->code : "", o ? o->reason : "",
            nows};
        r = rt_db_exec_prepared (db, S_DONE, 11, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        if (PQntuples (r) != 1) {
            PQclear (r);
            rt_db_rollback (db);
            return 0;
        }
        snprintf (event_id, sizeof event_id, "%s", PQgetvalue (r, 0, 0));
        snprintf (notification_id, sizeof notification_id, "%s", PQgetvalue (r, 0, 1));
        PQclear (r);
    }
    if (o && strcmp (e->status, "failed") == 0 &&
        (o->verdict == PROVIDER_STOP_RECIPIENT || o->verdict == PROVIDER_WINDOW)) {
        int h = s_unreachable (ctx, c, o, notification_id, now, err, sizeof err);
        if (h < 0)
            goto failed_err;
        handed_over = h > 0;
    }
    if (o && o->verdict == PROVIDER_WAIT && !o->per_recipient) {
        const char *v[2] = {c->account, next};
        r = rt_db_exec_prepared (db, S_PAUSE, 2, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        PQclear (r);
    }
    if (o && o->verdict == PROVIDER_STOP_ACCOUNT) {
        char why[PROVIDER_REASON_MAX + PROVIDER_CODE_MAX + 8];
        snprintf (why, sizeof why, "%s%s%s", o->code, o->code[0] ? ": " : "", o->reason);
        const char *v[3] = {c->account, why, nows};
        r = rt_db_exec_prepared (db, S_STOP, 3, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        PQclear (r);
    }
    if (e->delivered && notify_emit_delivered (db, &ev, false, now, err, sizeof err) != 0)
        goto failed_err;
    if (e->failed_event && !handed_over &&
        notify_emit_failed (db, &ev, o ? o->code : verdict, o ? o->reason : "", e->permanent,
                            c->attempts, err, sizeof err) != 0)
        goto failed_err;
    if (rt_db_commit (db) != 0)
        goto failed;
    return 1;
failed:
    rt_errf (err, sizeof err, "%s", rt_db_error (db));
failed_err:
    rt_db_rollback (db);
    rt_log (RT_LOG_WARN, "outcome not recorded: the lease will bring the send back",
            rt_log_str ("message_id", c->id), rt_log_str ("error", err));
    return -1;
}

int
outcome_record (const outcome_ctx_t *ctx, const notify_claim_t *c, const provider_outcome_t *o)
{
    const sender_config_t *cfg = ctx->config;
    const char *verdict = provider_verdict_name (o->verdict);
    int64_t now = rt_clock_now_ms ();
    s_effect_t e;
    int rc;

    s_effect (ctx, c, o, now, &e);
    rc = s_apply (ctx, c, o, &e, verdict, now);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        rt_log (RT_LOG_WARN, "outcome of a send taken back as uncertain, not recorded",
                rt_log_str ("message_id", c->id), rt_log_str ("verdict", verdict));
        rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_fenced_total", "",
                                            "answers that came after the crash policy took "
                                            "their send back"));
        return 0;
    }
    s_count_verdict (cfg, c->provider, verdict);
    switch (o->verdict) {
    case PROVIDER_STOP_ACCOUNT: {
        char labels[96];
        rt_log (RT_LOG_WARN, "account stopped by its provider", rt_log_str ("account", c->account),
                rt_log_str ("provider", c->provider), rt_log_str ("code", o->code),
                rt_log_str ("reason", o->reason));
        snprintf (labels, sizeof labels, "provider=\"%s\"", c->provider);
        rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_account_stopped_total",
                                            labels, "accounts their provider refused"));
        break;
    }
    case PROVIDER_RETRY:
        if (strcmp (e.status, "failed") == 0) {
            rt_log (RT_LOG_WARN, "send failed after its retries", rt_log_str ("message_id", c->id),
                    rt_log_int ("failures", c->failures + 1), rt_log_str ("code", o->code),
                    rt_log_str ("reason", o->reason));
            rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_dead_letters_total",
                                                "", "sends failed after their last retry"));
        }
        if (o->uncertain)
            rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_retry_uncertain_total",
                                                "",
                                                "retries of requests the provider may have "
                                                "taken"));
        break;
    default:
        break;
    }
    return 0;
}

int
outcome_refuse (const outcome_ctx_t *ctx, const notify_claim_t *c, const char *code,
                const char *reason)
{
    provider_outcome_t o;
    s_effect_t e = {.status = "failed", .failed_event = true, .permanent = true};
    int rc;
    memset (&o, 0, sizeof o);
    o.verdict = PROVIDER_BAD_REQUEST;
    snprintf (o.code, sizeof o.code, "%s", code);
    snprintf (o.reason, sizeof o.reason, "%s", reason);
    rc = s_apply (ctx, c, &o, &e, "refused", rt_clock_now_ms ());
    if (rc > 0) {
        rt_log (RT_LOG_WARN, "send refused before its request", rt_log_str ("message_id", c->id),
                rt_log_str ("code", code), rt_log_str ("reason", reason));
        s_count_verdict (ctx->config, c->provider, "refused");
    }
    return rc < 0 ? -1 : 0;
}
