/*
 * outcome: what a provider's answer does to a send, recorded with the
 * events it makes; the answers that came together in one transaction.
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
 *                   sends through it meanwhile, and the send is due at
 *                   once when another account of its inbox and channel is
 *                   usable: it fails over rather than wait out a pause
 *                   that is not its own. A wait counts no failure.
 *   MIGRATED        the chat has a new id (Telegram's group became a
 *                   supergroup): the same send, its recipient the new
 *                   chat, due at once. It counts as a failure, so a
 *                   provider that kept moving a chat could not make a
 *                   send go round for ever. crm's identity keeps the old
 *                   id (crm is routerd's: notifyd writes only its own
 *                   schema), which a log line says.
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
 * A part of a message (notify 008: Telegram takes one medium a request)
 * is a send as any other, but speaks for its message: its events carry
 * the message's id, MessageDelivered only for the last part (the message
 * delivered whole), MessageFailed for the part that failed (the parts
 * after it fail with it in the same transaction, by 008's trigger, and
 * never go). So the bus, and the timeline routerd keeps from it, hears of
 * one message once, however many requests it took; which parts went is
 * in notify.sends.
 *
 * A batch: the sender adds each answer as it comes (its consequence is
 * decided then, the backoff drawn and the instant kept) and flushes every
 * few milliseconds or when the batch is full. A flush is one transaction:
 * one UPDATE over arrays moves every send, the rare verdicts with more to
 * do (an account paused or stopped, a recipient out of reach) do it row by
 * row, and the events go to the outbox in one insert. One statement per
 * answer cost about 0.25 ms of PostgreSQL's time and a commit each; the
 * batch costs a fraction of that per answer.
 *
 * Every update names the claim that sent it (claimed_by, attempts): a send
 * the crash policy took back while its answer was on the way is not
 * touched again, and the answer is counted as fenced. A flush that fails
 * keeps its answers for the next one: the send stays `sending`, so no
 * replica takes it, and its answer is recorded once PostgreSQL is back;
 * nothing is sent again for a failed flush unless the lease runs out
 * first, when the crash policy decides as for a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifyd.h"
#include "rt_buf.h"
#include "rt_bus.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"

/* The claims' sends, moved to their outcomes, all at once
 * (notify.record_outcomes, notify 006): $1 claimed_by, then one array
 * each, element i about one answer. */
#define S_DONE "notify_outcome_done"
static const char *s_done_sql =
    "SELECT id, attempts, event_id, notification_id FROM notify.record_outcomes($1,"
    " $2::uuid[], $3::integer[], $4::text[], $5::bigint[], $6::integer[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::bigint[])";

/* The account waits until $2 (ms), or longer when it already does. */
#define S_PAUSE "notify_outcome_pause"
static const char *s_pause_sql = "UPDATE notify.accounts SET updated_at = now(),"
                                 "  paused_until = GREATEST(COALESCE(paused_until, '-infinity'),"
                                 "                          to_timestamp($2::bigint / 1000.0))"
                                 " WHERE id = $1";

/* A paused account's send, due at once ($3, ms) when another account of
 * its inbox and channel can send now ($1 the paused one). */
#define S_ELSEWHERE "notify_outcome_elsewhere"
static const char *s_elsewhere_sql =
    "UPDATE notify.sends s SET next_at = to_timestamp($3::bigint / 1000.0)"
    " WHERE s.id = $2::uuid AND s.status = 'queued' AND EXISTS ("
    "   SELECT 1 FROM notify.accounts a WHERE a.inbox_id = s.inbox AND a.channel = s.channel"
    "      AND a.id <> $1 AND a.disabled_at IS NULL AND a.stopped_at IS NULL"
    "      AND (a.paused_until IS NULL OR a.paused_until <= to_timestamp($3::bigint / 1000.0)))";

/* A send whose chat moved: its recipient the new chat. */
#define S_MOVE "notify_outcome_move"
static const char *s_move_sql =
    "UPDATE notify.sends SET recipient = $2 WHERE id = $1::uuid AND status = 'queued'";

/* The account refused by its provider; the first reason is kept. */
#define S_STOP "notify_outcome_stop"
static const char *s_stop_sql =
    "UPDATE notify.accounts SET updated_at = now(),"
    "  stopped_at = COALESCE(stopped_at, to_timestamp($3::bigint / 1000.0)),"
    "  stopped_reason = COALESCE(stopped_reason, $2)"
    " WHERE id = $1";

/* What becomes of a send one verdict settles. */
typedef struct {
    const char *status; /* the send's new status */
    int64_t next_at;    /* when it is due again, 0: unchanged */
    int add_failures;   /* 1 for a transient failure */
    bool failed_event;  /* MessageFailed ... */
    bool permanent;     /* ... permanent or not */
    bool delivered;     /* MessageDelivered */
} s_effect_t;

/* Where an answer is in a flush. */
typedef enum {
    S_PENDING = 0, /* not recorded yet */
    S_RECORDED,    /* its send moved in the flush's transaction */
    S_FENCED,      /* its send was no longer its claim's: left alone */
} s_state_t;

/* One answer waiting in a batch. */
typedef struct {
    notify_claim_t claim;                      /* the send (owned) */
    provider_outcome_t o;                      /* what the provider said, or notifyd's refusal */
    s_effect_t e;                              /* what it does to the send */
    const char *verdict;                       /* last_verdict: the verdict's name or "refused" */
    int64_t at_ms;                             /* rt_clock_now_ms when it came */
    s_state_t state;                           /* in the flush under way */
    bool handed_over;                          /* its notification went on to the next channel */
    char event_id[RT_UUID_STR_LEN + 1];        /* its events' message id: the notification's,
                                                  else the send's */
    char notification_id[RT_UUID_STR_LEN + 1]; /* "" when it is no notification's */
} s_answer_t;

struct outcome_batch_t {
    s_answer_t *items; /* n answers, oldest first */
    size_t n;          /* answers held */
    size_t cap;        /* room allocated */
};

/* An envelope of type about key carrying payload, packed into *out
 * (owned by the caller: free out->data). */
static int
s_pack (const char *type, const char *key, const ProtobufCMessage *payload,
        ProtobufCBinaryData *out, char *err, size_t errlen)
{
    return rt_envelope_new_packed (type, key, payload, NOTIFYD_PRODUCER, out, err, errlen);
}

/* Appends packed[0..n) to the outbox and frees their data. */
static int
s_append (rt_db_t *db, ProtobufCBinaryData *packed, size_t n, char *err, size_t errlen)
{
    int rc = n ? rt_outbox_append_batch (db, packed, n) : 0;
    if (rc != 0)
        rt_errf (err, errlen, "events to the outbox: %s", rt_db_error (db));
    for (size_t i = 0; i < n; i++) {
        free (packed[i].data);
        packed[i].data = NULL;
    }
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

static int
s_pack_failed (const notify_event_t *ev, const char *code, const char *reason, bool permanent,
               int attempts, ProtobufCBinaryData *out, char *err, size_t errlen)
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
    return s_pack ("MessageFailed", s_key (ev), &m.base, out, err, errlen);
}

static int
s_pack_delivered (const notify_event_t *ev, bool read, int64_t at_ms, ProtobufCBinaryData *out,
                  char *err, size_t errlen)
{
    Retain__V1__MessageDelivered m = RETAIN__V1__MESSAGE_DELIVERED__INIT;
    m.message_id = (char *)ev->message_id;
    m.channel = s_channel (ev->channel);
    m.external_id = (char *)(ev->external_id ? ev->external_id : "");
    m.delivered_at = at_ms;
    m.read = read;
    m.customer_id = (char *)(ev->customer_id ? ev->customer_id : "");
    return s_pack ("MessageDelivered", s_key (ev), &m.base, out, err, errlen);
}

int
notify_emit_failed (rt_db_t *db, const notify_event_t *ev, const char *code, const char *reason,
                    bool permanent, int attempts, char *err, size_t errlen)
{
    ProtobufCBinaryData packed;
    if (s_pack_failed (ev, code, reason, permanent, attempts, &packed, err, errlen) != 0)
        return -1;
    return s_append (db, &packed, 1, err, errlen);
}

int
notify_emit_delivered (rt_db_t *db, const notify_event_t *ev, bool read, int64_t at_ms, char *err,
                       size_t errlen)
{
    ProtobufCBinaryData packed;
    if (s_pack_delivered (ev, read, at_ms, &packed, err, errlen) != 0)
        return -1;
    return s_append (db, &packed, 1, err, errlen);
}

int
outcome_prepare (rt_db_t *db)
{
    if (rt_db_prepare (db, S_DONE, s_done_sql) != 0 ||
        rt_db_prepare (db, S_PAUSE, s_pause_sql) != 0 ||
        rt_db_prepare (db, S_STOP, s_stop_sql) != 0 ||
        rt_db_prepare (db, S_ELSEWHERE, s_elsewhere_sql) != 0 ||
        rt_db_prepare (db, S_MOVE, s_move_sql) != 0)
        return -1;
    return 0;
}

void
notify_claim_free (notify_claim_t *c)
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
    free (c->suppressed_by);
    free (c->attachments);
    free (c->part_of);
    memset (c, 0, sizeof *c);
}

int
notify_claim_from_row (const PGresult *r, int row, int64_t claimed_ms, notify_claim_t *c)
{
    /* By the claim's column; NULL: one that is no string. */
    char **text[] = {&c->id,         &c->channel,  &c->recipient,   &c->text,
                     NULL,           NULL,         &c->customer_id, &c->category,
                     &c->account,    &c->provider, &c->base_url,    &c->token,
                     &c->account_id, &c->sender,   &c->status_url,  &c->suppressed_by};
    memset (c, 0, sizeof *c);
    c->attempts = atoi (PQgetvalue (r, row, 4));
    c->failures = atoi (PQgetvalue (r, row, 5));
    c->human = strcmp (PQgetvalue (r, row, 16), "t") == 0;
    c->attached = strcmp (PQgetvalue (r, row, 17), "t") == 0;
    c->claimed_ms = claimed_ms;
    c->attachments = strdup ("");
    c->part_of = strdup ("");
    if (!c->attachments || !c->part_of) {
        notify_claim_free (c);
        return -1;
    }
    for (int k = 0; k < (int)(sizeof text / sizeof text[0]); k++) {
        if (!text[k])
            continue;
        *text[k] = strdup (PQgetvalue (r, row, k));
        if (!*text[k]) {
            notify_claim_free (c);
            return -1;
        }
    }
    return 0;
}

/* The delay before retry number failures + 1 (rt_clock_backoff_ms). */
static int64_t
s_backoff_ms (const sender_config_t *cfg, int failures)
{
    return rt_clock_backoff_ms (cfg->backoff_ms, cfg->backoff_max_ms, failures);
}

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
        if (notification_consent (ctx->db, c->customer_id, c->channel, NULL, false, source,
                                  o->reason, now) != 0) {
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
s_effect (const sender_config_t *cfg, const notify_claim_t *c, const provider_outcome_t *o,
          int64_t now, s_effect_t *e)
{
    memset (e, 0, sizeof *e);
    switch (o->verdict) {
    case PROVIDER_SENT:
        e->delivered = o->delivered;
        e->status = e->delivered ? "delivered" : "sent";
        break;
    case PROVIDER_RETRY:
    case PROVIDER_MIGRATED:
        e->add_failures = 1;
        if (c->failures + 1 >= cfg->retry_max) {
            e->status = "failed";
            e->failed_event = true;
        } else {
            /* A chat that moved is sent to at once; a transient failure
             * waits out its backoff. */
            e->status = "queued";
            e->next_at =
                now + (o->verdict == PROVIDER_MIGRATED ? 0 : s_backoff_ms (cfg, c->failures));
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

outcome_batch_t *
outcome_batch_new (void)
{
    return calloc (1, sizeof (outcome_batch_t));
}

void
outcome_batch_destroy (outcome_batch_t **self_p)
{
    outcome_batch_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        notify_claim_free (&self->items[i].claim);
    free (self->items);
    free (self);
    *self_p = NULL;
}

size_t
outcome_batch_size (const outcome_batch_t *self)
{
    return self ? self->n : 0;
}

/* A zeroed slot at the batch's end, NULL when out of memory. */
static s_answer_t *
s_push (outcome_batch_t *self)
{
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        s_answer_t *items = realloc (self->items, cap * sizeof *items);
        if (!items)
            return NULL;
        self->items = items;
        self->cap = cap;
    }
    memset (&self->items[self->n], 0, sizeof self->items[0]);
    return &self->items[self->n++];
}

int
outcome_add (outcome_batch_t *self, const sender_config_t *config, notify_claim_t *c,
             const provider_outcome_t *o)
{
    s_answer_t *a = s_push (self);
    if (!a) {
        rt_log (RT_LOG_WARN,
                "outcome not recorded (out of memory): the lease will bring the "
                "send back",
                rt_log_str ("message_id", c->id));
        notify_claim_free (c);
        return -1;
    }
    a->claim = *c;
    memset (c, 0, sizeof *c);
    a->o = *o;
    a->at_ms = rt_clock_now_ms ();
    a->verdict = provider_verdict_name (o->verdict);
    s_effect (config, &a->claim, o, a->at_ms, &a->e);
    return 0;
}

int
outcome_add_refusal (outcome_batch_t *self, notify_claim_t *c, const char *code, const char *reason)
{
    s_answer_t *a = s_push (self);
    if (!a) {
        notify_claim_free (c);
        return -1;
    }
    a->claim = *c;
    memset (c, 0, sizeof *c);
    a->o.verdict = PROVIDER_BAD_REQUEST;
    snprintf (a->o.code, sizeof a->o.code, "%s", code);
    snprintf (a->o.reason, sizeof a->o.reason, "%s", reason);
    a->e = (s_effect_t){.status = "failed", .failed_event = true, .permanent = true};
    a->verdict = "refused";
    a->at_ms = rt_clock_now_ms ();
    return 0;
}

/* Orders answers by send and attempt, as the flush finds them again. */
static int
s_cmp_answer (const void *x, const void *y)
{
    const s_answer_t *a = *(const s_answer_t *const *)x, *b = *(const s_answer_t *const *)y;
    int c = strcmp (a->claim.id, b->claim.id);
    return c ? c
             : (a->claim.attempts > b->claim.attempts) - (a->claim.attempts < b->claim.attempts);
}

/* The one UPDATE of a flush over answers a[0..n): marks each RECORDED
 * (with its events' ids) or FENCED. 0, or -1 with the reason in err. */
static int
s_update (const outcome_ctx_t *ctx, s_answer_t **a, size_t n, char *err, size_t errlen)
{
    rt_buf_t col[10] = {{0}};
    const char *v[11];
    s_answer_t **sorted = malloc (n * sizeof *sorted);
    PGresult *r = NULL;
    int rc = -1;
    char num[24];
    if (!sorted) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    memcpy (sorted, a, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_cmp_answer);
    for (int k = 0; k < 10; k++)
        rt_buf_array_begin (&col[k]);
    for (size_t i = 0; i < n; i++) {
        const s_answer_t *x = a[i];
        rt_buf_array_raw (&col[0], x->claim.id);
        snprintf (num, sizeof num, "%d", x->claim.attempts);
        rt_buf_array_raw (&col[1], num);
        rt_buf_array_text (&col[2], x->e.status);
        snprintf (num, sizeof num, "%lld", (long long)x->e.next_at);
        rt_buf_array_raw (&col[3], num);
        snprintf (num, sizeof num, "%d", x->e.add_failures);
        rt_buf_array_raw (&col[4], num);
        rt_buf_array_text (&col[5], x->o.external_id);
        rt_buf_array_text (&col[6], x->verdict);
        rt_buf_array_text (&col[7], x->o.code);
        rt_buf_array_text (&col[8], x->o.reason);
        snprintf (num, sizeof num, "%lld", (long long)x->at_ms);
        rt_buf_array_raw (&col[9], num);
    }
    v[0] = ctx->config->member;
    for (int k = 0; k < 10; k++) {
        rt_buf_array_end (&col[k]);
        if (col[k].failed) {
            rt_errf (err, errlen, "out of memory");
            goto cleanup;
        }
        v[k + 1] = col[k].data;
    }
    r = rt_db_exec_prepared (ctx->db, S_DONE, 11, v, NULL, NULL, 0);
    if (!r) {
        rt_errf (err, errlen, "%s", rt_db_error (ctx->db));
        goto cleanup;
    }
    for (int row = 0; row < PQntuples (r); row++) {
        s_answer_t key, *kp = &key, **hit;
        key.claim.id = PQgetvalue (r, row, 0);
        key.claim.attempts = atoi (PQgetvalue (r, row, 1));
        hit = bsearch (&kp, sorted, n, sizeof *sorted, s_cmp_answer);
        if (!hit)
            continue;
        (*hit)->state = S_RECORDED;
        snprintf ((*hit)->event_id, sizeof (*hit)->event_id, "%s", PQgetvalue (r, row, 2));
        snprintf ((*hit)->notification_id, sizeof (*hit)->notification_id, "%s",
                  PQgetvalue (r, row, 3));
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i]->state != S_RECORDED)
            a[i]->state = S_FENCED;
    }
    rc = 0;
cleanup:
    PQclear (r);
    for (int k = 0; k < 10; k++)
        rt_buf_free (&col[k]);
    free (sorted);
    return rc;
}

/* What a recorded answer does besides moving its send, inside the flush's
 * transaction: a recipient out of reach, an account paused or stopped;
 * its events into *packed (advanced). 0 or -1 (err). */
static int
s_consequences (const outcome_ctx_t *ctx, s_answer_t *a, ProtobufCBinaryData **packed, char *err,
                size_t errlen)
{
    rt_db_t *db = ctx->db;
    const notify_claim_t *c = &a->claim;
    const provider_outcome_t *o = &a->o;
    /* A part speaks for its message: delivered once its last part is,
     * failed when any part fails (the parts after it fail with it,
     * notify 008), so the bus hears of a message once, by its id. */
    notify_event_t ev = {c->part_of[0] ? c->part_of : a->event_id, c->customer_id, c->channel,
                         o->external_id[0] ? o->external_id : NULL};
    bool last = !c->part_of[0] || c->part == c->parts;
    char until[24], nows[24];
    PGresult *r;
    snprintf (until, sizeof until, "%lld", (long long)a->e.next_at);
    snprintf (nows, sizeof nows, "%lld", (long long)a->at_ms);
    if (strcmp (a->e.status, "failed") == 0 &&
        (o->verdict == PROVIDER_STOP_RECIPIENT || o->verdict == PROVIDER_WINDOW)) {
        int h = s_unreachable (ctx, c, o, a->notification_id, a->at_ms, err, errlen);
        if (h < 0)
            return -1;
        a->handed_over = h > 0;
    }
    if (o->verdict == PROVIDER_WAIT && !o->per_recipient) {
        const char *v[3] = {c->account, until, nows};
        r = rt_db_exec_prepared (db, S_PAUSE, 2, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        PQclear (r);
        v[1] = c->id;
        r = rt_db_exec_prepared (db, S_ELSEWHERE, 3, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        PQclear (r);
    }
    if (o->verdict == PROVIDER_MIGRATED && strcmp (a->e.status, "queued") == 0) {
        const char *v[2] = {c->id, o->migrate_to};
        r = rt_db_exec_prepared (db, S_MOVE, 2, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        PQclear (r);
    }
    if (o->verdict == PROVIDER_STOP_ACCOUNT) {
        char why[PROVIDER_REASON_MAX + PROVIDER_CODE_MAX + 8];
        snprintf (why, sizeof why, "%s%s%s", o->code, o->code[0] ? ": " : "", o->reason);
        const char *v[3] = {c->account, why, nows};
        r = rt_db_exec_prepared (db, S_STOP, 3, v, NULL, NULL, 0);
        if (!r)
            goto failed;
        PQclear (r);
    }
    if (a->e.delivered && last) {
        if (s_pack_delivered (&ev, false, a->at_ms, *packed, err, errlen) != 0)
            return -1;
        (*packed)++;
    }
    if (a->e.failed_event && !a->handed_over) {
        if (s_pack_failed (&ev, o->code, o->reason, a->e.permanent, c->attempts, *packed, err,
                           errlen) != 0)
            return -1;
        (*packed)++;
    }
    return 0;
failed:
    rt_errf (err, errlen, "%s", rt_db_error (db));
    return -1;
}

/* Answers a[0..n) in one transaction. 0, or -1 with everything rolled
 * back and the answers pending again. */
static int
s_flush_set (const outcome_ctx_t *ctx, s_answer_t **a, size_t n)
{
    rt_db_t *db = ctx->db;
    /* At most two events an answer (MessageDelivered, or MessageFailed). */
    ProtobufCBinaryData *packed = calloc (2 * n, sizeof *packed), *next = packed;
    char err[256] = "";
    if (!packed) {
        rt_errf (err, sizeof err, "out of memory");
        goto failed;
    }
    if (rt_db_begin (db) != 0) {
        rt_errf (err, sizeof err, "%s", rt_db_error (db));
        goto failed;
    }
    if (s_update (ctx, a, n, err, sizeof err) != 0)
        goto failed;
    for (size_t i = 0; i < n; i++) {
        if (a[i]->state == S_RECORDED && s_consequences (ctx, a[i], &next, err, sizeof err) != 0)
            goto failed;
    }
    if (s_append (db, packed, (size_t)(next - packed), err, sizeof err) != 0)
        goto failed;
    if (rt_db_commit (db) != 0) {
        rt_errf (err, sizeof err, "%s", rt_db_error (db));
        goto failed;
    }
    free (packed);
    return 0;
failed:
    rt_db_rollback (db);
    for (ProtobufCBinaryData *p = packed; p && p < next; p++)
        free (p->data);
    free (packed);
    for (size_t i = 0; i < n; i++) {
        a[i]->state = S_PENDING;
        a[i]->handed_over = false;
    }
    rt_log (RT_LOG_WARN, "outcomes not recorded yet: kept for the next flush",
            rt_log_int ("answers", (long long)n), rt_log_str ("error", err));
    return -1;
}

/* A send failed after its last retry (RETRY, or MIGRATED once too
 * often): logged and counted. */
static void
s_dead_letter (const sender_config_t *cfg, const s_answer_t *a)
{
    const notify_claim_t *c = &a->claim;
    rt_log (RT_LOG_WARN, "send failed after its retries", rt_log_str ("message_id", c->id),
            rt_log_int ("failures", c->failures + 1), rt_log_str ("code", a->o.code),
            rt_log_str ("reason", a->o.reason));
    rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_dead_letters_total", "",
                                        "sends failed after their last retry"));
}

/* The logs and metrics of an answer once its transaction committed. */
static void
s_after (const sender_config_t *cfg, const s_answer_t *a)
{
    const notify_claim_t *c = &a->claim;
    const provider_outcome_t *o = &a->o;
    if (a->state == S_FENCED) {
        rt_log (RT_LOG_WARN, "outcome of a send taken back as uncertain, not recorded",
                rt_log_str ("message_id", c->id), rt_log_str ("verdict", a->verdict));
        rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_fenced_total", "",
                                            "answers that came after the crash policy took "
                                            "their send back"));
        return;
    }
    s_count_verdict (cfg, c->provider, a->verdict);
    if (strcmp (a->verdict, "refused") == 0) {
        rt_log (RT_LOG_WARN, "send refused before its request", rt_log_str ("message_id", c->id),
                rt_log_str ("code", o->code), rt_log_str ("reason", o->reason));
        return;
    }
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
    case PROVIDER_MIGRATED:
        if (strcmp (a->e.status, "failed") == 0) {
            s_dead_letter (cfg, a);
            break;
        }
        rt_log (RT_LOG_WARN,
                "chat moved to a new id (a Telegram group became a supergroup): the send goes "
                "there; crm's identity keeps the old id (crm is routerd's to change), so the "
                "next message to it is moved again",
                rt_log_str ("message_id", c->id), rt_log_str ("customer_id", c->customer_id),
                rt_log_str ("account", c->account), rt_log_str ("from", c->recipient),
                rt_log_str ("to", o->migrate_to));
        rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_chat_moved_total", "",
                                            "sends whose chat moved to a new id, sent there"));
        break;
    case PROVIDER_RETRY:
        if (strcmp (a->e.status, "failed") == 0)
            s_dead_letter (cfg, a);
        if (o->uncertain)
            rt_counter_inc (rt_metrics_counter (cfg->metrics, "retain_notify_retry_uncertain_total",
                                                "",
                                                "retries of requests the provider may have "
                                                "taken"));
        break;
    default:
        break;
    }
}

int
outcome_flush (const outcome_ctx_t *ctx, outcome_batch_t *batch)
{
    const sender_config_t *cfg = ctx->config;
    size_t n = batch->n, kept = 0;
    s_answer_t **all;
    int64_t mono = rt_clock_mono_ms ();
    int done = 0;
    if (n == 0)
        return 0;
    all = malloc (n * sizeof *all);
    if (!all)
        return -1;
    for (size_t i = 0; i < n; i++)
        all[i] = &batch->items[i];
    if (s_flush_set (ctx, all, n) != 0 && rt_db_is_ok (ctx->db) && n > 1) {
        /* PostgreSQL refused a statement and the connection lives: one
         * answer may be what it refuses, so each goes alone. */
        for (size_t i = 0; i < n; i++)
            (void)s_flush_set (ctx, &all[i], 1);
    }
    free (all);
    for (size_t i = 0; i < n; i++) {
        s_answer_t *a = &batch->items[i];
        if (a->state == S_PENDING && mono - a->claim.claimed_ms <= cfg->lease_ms) {
            batch->items[kept++] = *a;
            continue;
        }
        if (a->state == S_PENDING)
            rt_log (RT_LOG_WARN,
                    "outcome not recorded within the lease: the crash policy settles "
                    "the send",
                    rt_log_str ("message_id", a->claim.id), rt_log_str ("verdict", a->verdict));
        else {
            s_after (cfg, a);
            done++;
        }
        notify_claim_free (&a->claim);
    }
    batch->n = kept;
    return kept ? -1 : done;
}
