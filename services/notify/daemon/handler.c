/*
 * handler: what the group "notify" reads on the stream "message", taken
 * into notify.sends inside the consumer's round.
 *
 * OutboundMessageRequested (an operator's reply, from routerd) becomes one
 * queued send, keyed by its message id, so a replayed or repeated request
 * finds its row and adds nothing. Its recipient is notify.recipient's
 * (007): on the request's channel an address of the customer's there
 * that can be sent to (a channel identity in crm, or for e-mail a contact
 * point), and with no channel named the identity they wrote from last. A
 * request that cannot be sent at all is still a row, failed, with its
 * MessageFailed in the outbox, so its replay says nothing twice: no
 * identity (no_channel), no text (no_text: a template named in a request
 * is rendered in a later slice), text over the channel's limit
 * (text_too_long, the limit named), a suppressed address (suppressed), an
 * inbox without a sending account on that channel (no_account), an
 * attachment that cannot go out (bad_attachment: more than
 * RT_ATTACHMENTS_MAX, a kind other than image or document, a URL that is
 * not https; rt_attachment.h), a reply to a comment on a channel other
 * than Messenger or Instagram (bad_reply_to). A reply to a comment keeps
 * the comment on its send (notify 011) for the sender to answer there.
 *
 * Attachments: where the channel sends no media their links go in the
 * text, one send; where it does (Telegram) the request may become several
 * sends, its parts, all made here in the one transaction (parts.c).
 *
 * NotificationRequested (a template for a customer, from the daemon that
 * decided to say something) becomes one notify.notifications row keyed by
 * its notification_id, with the route notify.route gives (the request's
 * channel, else the customer's preferred one, else the one they wrote on
 * last, then the fallback chain), and notification.c queues its first
 * send or fails it with its MessageFailed; a replay finds the row and adds
 * nothing. ConsentChanged (stream "customer") is recorded in notify.consent
 * and its history, with its source and reason (an operator's words).
 *
 * An InboundMessage that ingest marked as a STOP keyword (opt "out")
 * withdraws both categories on the channel it came by, as a provider's
 * opt-out does (SMS carriers stop every message from the number after a
 * STOP); a START (opt "in") grants transactional messages again, and
 * marketing only when it was a STOP keyword that withdrew them (a START
 * is no consent to what the customer never asked for); notify.opt_keyword
 * has the rule. The word is kept by the sender's channel identity (the
 * address, notify.address_consent), and for their customer too when crm
 * knows them. Why by the address rather than held until the customer is
 * known: routerd reads the same stream in a group of its own and says
 * nothing on the bus when it makes the sender's identity, so this
 * consumer may read the STOP first and would hear of no moment to apply
 * it later; the chooser honours the address's word from the moment it is
 * read. A STOP from a sender crm does not know yet is also counted
 * (retain_notify_opt_unresolved_total).
 *
 * MessageDelivered and MessageFailed from ingest are the providers'
 * receipts: they name the provider's id (external_id) on a channel, or the
 * message id. The send they name moves forward (sent, delivered, read; or
 * failed) and notifyd says so on the bus with the message id, which
 * ingest's receipt does not carry, so routerd's timeline links it; a
 * receipt that moves nothing (a repeated one, an older one) says nothing.
 * A failure receipt (Twilio's undelivered, WhatsApp's failed status) on a
 * send of an important category hands the notification over to the next
 * channel of its route, as a missing receipt does (recover.c); nothing is
 * said on the bus while a channel is left. A permanent one on an e-mail
 * send is a hard bounce: its verdict (receipt_permanent) puts the address
 * on the suppression list (007's trigger). A receipt for a message nobody
 * sent is counted and passed over. notifyd's own events come back on the
 * stream and are passed over, as is every other type (counted).
 *
 * Only PostgreSQL failing returns -1 (the round rolls back and is tried
 * again): anything else would be refused again.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "notifyd.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "rt_utf8.h"
#include "rt_uuid.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "retain/v1/notification.pb-c.h"

#define S_LABEL_MAX  64  /* a type's name in a label, bytes */
#define S_REASON_MAX 256 /* a refusal's words */

/* Is the send there already (a replay). */
#define S_EXISTS "notify_handler_exists"
static const char *s_exists_sql = "SELECT 1 FROM notify.sends WHERE id = $1::uuid";

/* Where a reply to the customer goes on a channel ('' for any). */
#define S_RECIPIENT "notify_handler_recipient"
static const char *s_recipient_sql = "SELECT channel, inbox, recipient, sendable, suppressed_by"
                                     " FROM notify.recipient($1::uuid, $2)";

/* The send a receipt names: by message id, else by (channel, external
 * id). */
#define S_NAMED                                                                                    \
    " WHERE s.id = (SELECT id FROM notify.sends"                                                   \
    "               WHERE ($1 <> '' AND id = NULLIF($1, '')::uuid)"                                \
    "                  OR ($1 = '' AND channel = $2 AND external_id = $3) LIMIT 1)"

/* A delivery receipt moves a send forward only: sent to delivered or
 * read, delivered to read. Returns the send when it moved. */
#define S_DELIVERED "notify_handler_delivered"
static const char *s_delivered_sql =
    "UPDATE notify.sends s SET status = CASE WHEN $4 THEN 'read' ELSE 'delivered' END,"
    "  delivered_at = COALESCE(s.delivered_at, to_timestamp($5::bigint / 1000.0)),"
    "  updated_at = to_timestamp($6::bigint / 1000.0)" S_NAMED
    "   AND (s.status = 'sent' OR (s.status = 'delivered' AND $4))"
    " RETURNING COALESCE(s.notification_id, s.id), COALESCE(s.customer_id::text, ''), s.channel,"
    "           s.external_id";

/* Whether a receipt names any send at all (one that moved nothing). */
#define S_KNOWN "notify_handler_known"
static const char *s_known_sql =
    "SELECT 1 FROM notify.sends WHERE ($1 <> '' AND id = NULLIF($1, '')::uuid)"
    "  OR ($1 = '' AND channel = $2 AND external_id = $3) LIMIT 1";

/* A failure receipt: a sent (or delivered) send failed after all ($7
 * permanent, $8 the important categories). Returns, besides the event's
 * fields, the send, its notification, whether that goes on to its next
 * channel (important, not handed over yet) and whether another send
 * carries it already. */
#define S_FAILED "notify_handler_failed"
static const char *s_failed_sql =
    "UPDATE notify.sends s SET status = 'failed',"
    "  last_verdict = CASE WHEN $7::boolean THEN 'receipt_permanent' ELSE 'receipt' END,"
    "  last_code = $4, last_reason = $5, updated_at = to_timestamp($6::bigint / 1000.0)" S_NAMED
    "   AND s.status IN ('sent', 'delivered')"
    " RETURNING COALESCE(s.notification_id, s.id), COALESCE(s.customer_id::text, ''), s.channel,"
    "           s.external_id, s.attempts, s.id, COALESCE(s.notification_id::text, ''),"
    "           s.notification_id IS NOT NULL AND s.fallback_to IS NULL"
    "             AND s.fallback_reason IS NULL AND s.category = ANY (string_to_array($8, ',')),"
    "           s.fallback_to IS NOT NULL";

/* A STOP or START keyword ($4: out) from $3 on channel $1 through inbox
 * $2 at $5 (ms); its customer, NULL when crm does not know them yet. */
#define S_OPT "notify_handler_opt"
static const char *s_opt_sql =
    "SELECT customer_id::text, marketing"
    " FROM notify.opt_keyword($1, $2, $3, $4::boolean, to_timestamp($5::bigint / 1000.0))";

/* Is the notification there already (a replay). */
#define S_N_EXISTS "notify_handler_n_exists"
static const char *s_n_exists_sql = "SELECT 1 FROM notify.notifications WHERE id = $1::uuid";

/* A new notification with its route ($11 the fallback chain, $12 the
 * request's channel or ''); notification_route decides its status. */
#define S_N_INSERT "notify_handler_n_insert"
static const char *s_n_insert_sql =
    "INSERT INTO notify.notifications (id, event_id, customer_id, template, variables, category,"
    "  correlation, route, not_before, expires_at, status, created_at, updated_at)"
    " VALUES ($1::uuid, $2::uuid, NULLIF($3, '')::uuid, $4, $5::jsonb, $6, $7,"
    "  notify.route($3::uuid, $11, $12),"
    "  to_timestamp(NULLIF($8::bigint, 0) / 1000.0), to_timestamp(NULLIF($9::bigint, 0) / 1000.0),"
    "  'routed', to_timestamp($10::bigint / 1000.0), to_timestamp($10::bigint / 1000.0))"
    " ON CONFLICT (id) DO NOTHING";

/* A counter of one event type: name{type="<type>"}, the type cleaned so a
 * label can never break the exposition. */
static void
s_count (handler_t *self, const char *name, const char *help, const char *type)
{
    char labels[S_LABEL_MAX + 16], clean[S_LABEL_MAX + 1];
    size_t n = 0;
    for (const char *p = type ? type : ""; *p && n < S_LABEL_MAX; p++) {
        if (isalnum ((unsigned char)*p) || *p == '_')
            clean[n++] = *p;
    }
    clean[n] = '\0';
    snprintf (labels, sizeof labels, "type=\"%s\"", clean);
    rt_counter_inc (rt_metrics_counter (self->metrics, name, labels, help));
}

static void
s_count_refused (handler_t *self, const char *code)
{
    char labels[S_LABEL_MAX + 16];
    snprintf (labels, sizeof labels, "code=\"%s\"", code);
    rt_counter_inc (rt_metrics_counter (self->metrics, "retain_notify_refused_total", labels,
                                        "requested messages failed before any attempt, by code"));
}

/* An event that cannot be taken: logged and counted, then passed over. */
static int
s_unreadable (handler_t *self, const Retain__V1__Envelope *event, const char *why)
{
    rt_log (RT_LOG_WARN, "event passed over", rt_log_str ("type", event->type),
            rt_log_str ("id", event->id), rt_log_str ("reason", why));
    s_count (self, "retain_notify_unreadable_total", "events notifyd could not read", event->type);
    return 0;
}

static bool
s_set (const char *s)
{
    return s && *s;
}

static bool
s_is_uuid (const char *s)
{
    rt_uuid_t id;
    return s_set (s) && rt_uuid_parse (s, &id) == 0;
}

static int
s_db_failed (const char *what, rt_db_t *db)
{
    rt_log (RT_LOG_WARN, "the consumer's statement failed", rt_log_str ("step", what),
            rt_log_str ("error", rt_db_error (db)));
    return -1;
}

/* Why a request's text (with its attachments' links where the channel
 * sends no media) cannot be sent at all, into code and reason; NULL code
 * when it can. */
static const char *
s_refusal (const Retain__V1__OutboundMessageRequested *m, const char *text, bool links,
           const rt_channel_t *ch, char *reason, size_t len)
{
    size_t n;
    if (!s_set (text) && m->n_attachments == 0) {
        snprintf (reason, len, "the request has no text%s",
                  s_set (m->template_) ? " (templates are rendered for NotificationRequested)"
                                       : "");
        return "no_text";
    }
    if (m->reply_to && s_set (m->reply_to->comment_id) &&
        (!ch || (ch->value != RETAIN__V1__CHANNEL__MESSENGER &&
                 ch->value != RETAIN__V1__CHANNEL__INSTAGRAM))) {
        snprintf (reason, len, "a reply to a comment goes on Messenger or Instagram, not %s",
                  ch ? ch->title : "no channel");
        return "bad_reply_to";
    }
    n = text ? rt_utf8_count (text, strlen (text)) : 0;
    if (ch && ch->text_max > 0 && (long)n > ch->text_max) {
        snprintf (reason, len, "the text%s is %zu characters; %s takes at most %ld",
                  links ? " with the attachments' links" : "", n, ch->title, ch->text_max);
        return "text_too_long";
    }
    return NULL;
}

/* Whether the row id names (stmt: a send's or a notification's) is there
 * already, a replay (counted): 1, 0, or -1 when PostgreSQL failed. */
static int
s_replayed (handler_t *self, rt_db_t *db, const char *stmt, const char *id, const char *type)
{
    const char *v[1] = {id};
    PGresult *r = rt_db_exec_prepared (db, stmt, 1, v, NULL, NULL, 0);
    int found;
    if (!r)
        return s_db_failed ("exists", db);
    found = PQntuples (r) > 0;
    PQclear (r);
    if (found)
        s_count (self, "retain_notify_replayed_total", "requests whose send was already recorded",
                 type);
    return found;
}

/* Why the recipient found (row 0 of notify.recipient) cannot be sent to,
 * into code and reason; NULL code when it can. */
static const char *
s_unsendable (const PGresult *found, const rt_channel_t *ch, char *reason, size_t len)
{
    const char *inbox = PQgetvalue (found, 0, 1), *channel = PQgetvalue (found, 0, 0);
    if (!PQgetisnull (found, 0, 4)) {
        snprintf (reason, len, "the address is suppressed (%s)", PQgetvalue (found, 0, 4));
        return "suppressed";
    }
    if (strcmp (PQgetvalue (found, 0, 3), "t") != 0) {
        snprintf (reason, len, "the inbox %s has no sending account on %s", inbox,
                  ch ? ch->title : channel);
        return "no_account";
    }
    return NULL;
}

static int
s_outbound (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__OutboundMessageRequested *m;
    const rt_channel_t *want = NULL, *ch = NULL;
    const char *code = NULL, *text;
    char reason[S_REASON_MAX] = "", now[24], err[256];
    char *composed = NULL;
    parts_where_t at = {"", NULL, NULL, now};
    PGresult *found = NULL;
    int rc = -1, seen;

    m = retain__v1__outbound_message_requested__unpack (NULL, event->payload.len,
                                                        event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no OutboundMessageRequested");
    text = m->text ? m->text : "";
    if (!s_is_uuid (m->message_id) || (s_set (m->customer_id) && !s_is_uuid (m->customer_id)) ||
        !s_is_uuid (event->id)) {
        rc = s_unreadable (self, event, "message_id and customer_id must be UUIDs");
        goto cleanup;
    }
    if (m->channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
        want = rt_channel_by_value (m->channel);
        if (!want) {
            rc = s_unreadable (self, event, "unknown channel");
            goto cleanup;
        }
    }
    seen = s_replayed (self, db, S_EXISTS, m->message_id, event->type);
    if (seen != 0) {
        rc = seen > 0 ? 0 : -1;
        goto cleanup;
    }
    if (s_set (m->customer_id)) {
        const char *v[2] = {m->customer_id, want ? want->name : ""};
        found = rt_db_exec_prepared (db, S_RECIPIENT, 2, v, NULL, NULL, 0);
        if (!found) {
            rc = s_db_failed ("recipient", db);
            goto cleanup;
        }
    }
    code = parts_refusal (m, reason, sizeof reason);
    if (found && PQntuples (found) > 0) {
        ch = rt_channel_by_name (PQgetvalue (found, 0, 0));
        at.channel = PQgetvalue (found, 0, 0);
        at.inbox = PQgetvalue (found, 0, 1);
        at.recipient = PQgetvalue (found, 0, 2);
        if (!code) {
            /* Where the channel sends no media the links go in the text,
             * and the customer still gets them. */
            text = parts_text (m, ch, &composed);
            if (!text) {
                rt_log (RT_LOG_WARN, "out of memory", rt_log_str ("step", "links"));
                goto cleanup;
            }
        }
        if (!code)
            code = s_refusal (m, text, composed != NULL, ch, reason, sizeof reason);
        if (!code)
            code = s_unsendable (found, ch, reason, sizeof reason);
    } else if (!code) {
        ch = want;
        at.channel = want ? want->name : "";
        code = "no_channel";
        snprintf (reason, sizeof reason, "the customer has no identity on %s",
                  want ? want->title : "any channel");
    } else {
        at.channel = want ? want->name : "";
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (code ? parts_refused (db, event, m, &at, code, reason) != 0
             : parts_queue (db, event, m, ch, &at, text) != 0)
        goto cleanup;
    if (code) {
        notify_event_t ev = {m->message_id, m->customer_id, at.channel, NULL};
        rt_log (RT_LOG_INFO, "message refused", rt_log_str ("message_id", m->message_id),
                rt_log_str ("code", code), rt_log_str ("reason", reason));
        if (notify_emit_failed (db, &ev, code, reason, true, 0, err, sizeof err) != 0) {
            rt_log (RT_LOG_WARN, "MessageFailed not written", rt_log_str ("error", err));
            goto cleanup;
        }
        s_count_refused (self, code);
    } else {
        s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
    }
    rc = 0;
cleanup:
    free (composed);
    PQclear (found);
    retain__v1__outbound_message_requested__free_unpacked (m, NULL);
    return rc;
}

/* A request's variables as a JSON object (owned), NULL when out of memory. */
static char *
s_variables (const Retain__V1__NotificationRequested *m)
{
    json_t *o = json_object ();
    char *text;
    for (size_t i = 0; o && i < m->n_variables; i++) {
        const Retain__V1__NotificationRequested__VariablesEntry *e = m->variables[i];
        if (e && e->key && rt_utf8_text_ok (e->key, strlen (e->key)) && e->value &&
            rt_utf8_text_ok (e->value, strlen (e->value)))
            json_object_set_new (o, e->key, json_string (e->value));
    }
    text = o ? json_dumps (o, JSON_COMPACT) : NULL;
    json_decref (o);
    return text;
}

static int
s_notification (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__NotificationRequested *m;
    const char *category;
    char now[24], nb[24], ex[24], err[256];
    char *vars = NULL;
    PGresult *r = NULL;
    int rc = -1, seen;

    m = retain__v1__notification_requested__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no NotificationRequested");
    category = s_set (m->category) ? m->category : "transactional";
    if (!s_is_uuid (m->notification_id) || !s_is_uuid (m->customer_id) || !s_is_uuid (event->id)) {
        rc = s_unreadable (self, event, "notification_id and customer_id must be UUIDs");
        goto cleanup;
    }
    if (strcmp (category, "transactional") != 0 && strcmp (category, "marketing") != 0) {
        rc = s_unreadable (self, event, "category must be transactional or marketing");
        goto cleanup;
    }
    if (m->preferred_channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED &&
        !rt_channel_by_value (m->preferred_channel)) {
        rc = s_unreadable (self, event, "unknown channel");
        goto cleanup;
    }
    seen = s_replayed (self, db, S_N_EXISTS, m->notification_id, event->type);
    if (seen != 0) {
        rc = seen > 0 ? 0 : -1;
        goto cleanup;
    }
    vars = s_variables (m);
    if (!vars) {
        rt_log (RT_LOG_WARN, "out of memory", rt_log_str ("step", "variables"));
        goto cleanup;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (nb, sizeof nb, "%lld", (long long)(m->not_before > 0 ? m->not_before : 0));
    snprintf (ex, sizeof ex, "%lld", (long long)(m->expires_at > 0 ? m->expires_at : 0));
    {
        const char *v[12] = {m->notification_id,
                             event->id,
                             m->customer_id,
                             m->template_ ? m->template_ : "",
                             vars,
                             category,
                             m->correlation ? m->correlation : "",
                             nb,
                             ex,
                             now,
                             self->notification->fallback_chain,
                             m->preferred_channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED
                                 ? rt_channel_name (m->preferred_channel)
                                 : ""};
        r = rt_db_exec_prepared (db, S_N_INSERT, 12, v, NULL, NULL, 0);
        if (!r) {
            rc = s_db_failed ("notification insert", db);
            goto cleanup;
        }
    }
    if (notification_route (db, self->notification, m->notification_id, NULL, NULL, NULL, err,
                            sizeof err) < 0) {
        rt_log (RT_LOG_WARN, "notification not routed", rt_log_str ("error", err));
        goto cleanup;
    }
    s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
    rc = 0;
cleanup:
    PQclear (r);
    free (vars);
    retain__v1__notification_requested__free_unpacked (m, NULL);
    return rc;
}

/* A change of consent from the bus (ingest's STOP keywords, the
 * unsubscribe link, an operator). */
static int
s_consent (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__ConsentChanged *m;
    const char *category, *channel = NULL;
    int rc = -1;

    m = retain__v1__consent_changed__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no ConsentChanged");
    category = s_set (m->category) ? m->category : NULL;
    if (!s_is_uuid (m->customer_id) || (category && strcmp (category, "transactional") != 0 &&
                                        strcmp (category, "marketing") != 0)) {
        rc = s_unreadable (self, event,
                           "customer_id must be a UUID, category transactional or marketing");
        goto cleanup;
    }
    if (m->channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
        const rt_channel_t *ch = rt_channel_by_value (m->channel);
        if (!ch) {
            rc = s_unreadable (self, event, "unknown channel");
            goto cleanup;
        }
        channel = ch->name;
    }
    if (notification_consent (db, m->customer_id, channel, category, m->granted,
                              s_set (m->source) ? m->source : "event", m->reason,
                              m->at > 0                ? m->at
                              : event->occurred_at > 0 ? event->occurred_at
                                                       : rt_clock_now_ms ()) != 0) {
        rc = s_db_failed ("consent", db);
        goto cleanup;
    }
    rt_log (RT_LOG_INFO, "consent changed", rt_log_str ("customer_id", m->customer_id),
            rt_log_str ("channel", channel ? channel : "any"),
            rt_log_str ("category", category ? category : "all"),
            rt_log_str ("granted", m->granted ? "true" : "false"),
            rt_log_str ("source", s_set (m->source) ? m->source : "event"));
    s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
    rc = 0;
cleanup:
    retain__v1__consent_changed__free_unpacked (m, NULL);
    return rc;
}

/* A STOP or START keyword (InboundMessage.opt, set by ingest). */
static int
s_opt (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__InboundMessage *m;
    const rt_channel_t *ch;
    PGresult *r = NULL;
    char at[24];
    bool out;
    int rc = -1;

    m = retain__v1__inbound_message__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no InboundMessage");
    if (!s_set (m->opt)) {
        s_count (self, "retain_notify_skipped_total", "events of types notifyd does not take",
                 event->type);
        rc = 0;
        goto cleanup;
    }
    out = strcmp (m->opt, "out") == 0;
    ch = rt_channel_by_value (m->channel);
    if ((!out && strcmp (m->opt, "in") != 0) || !ch || !s_set (m->external_user_id)) {
        rc = s_unreadable (self, event, "opt must be out or in, on a known channel and sender");
        goto cleanup;
    }
    snprintf (at, sizeof at, "%lld",
              (long long)(m->sent_at > 0           ? m->sent_at
                          : event->occurred_at > 0 ? event->occurred_at
                                                   : rt_clock_now_ms ()));
    {
        const char *v[5] = {ch->name, m->inbox ? m->inbox : "", m->external_user_id,
                            out ? "true" : "false", at};
        r = rt_db_exec_prepared (db, S_OPT, 5, v, NULL, NULL, 0);
    }
    if (!r || PQntuples (r) != 1) {
        rc = s_db_failed ("opt", db);
        goto cleanup;
    }
    if (PQgetisnull (r, 0, 0))
        s_count (self, "retain_notify_opt_unresolved_total",
                 "STOP and START keywords from senders crm does not know yet, kept by the address",
                 event->type);
    rt_log (
        RT_LOG_INFO, out ? "STOP keyword: consent withdrawn" : "START keyword: consent granted",
        rt_log_str ("customer_id", PQgetisnull (r, 0, 0) ? "unknown yet" : PQgetvalue (r, 0, 0)),
        rt_log_str ("channel", ch->name),
        rt_log_str ("marketing", strcmp (PQgetvalue (r, 0, 1), "t") == 0 ? "true" : "false"));
    s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
    rc = 0;
cleanup:
    PQclear (r);
    retain__v1__inbound_message__free_unpacked (m, NULL);
    return rc;
}

/* A receipt naming nothing notifyd sent, or nothing it can move. */
static int
s_receipt_unmoved (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event,
                   const char *const v[3])
{
    PGresult *r = rt_db_exec_prepared (db, S_KNOWN, 3, v, NULL, NULL, 0);
    if (!r)
        return s_db_failed ("known", db);
    if (PQntuples (r) == 0) {
        s_count (self, "retain_notify_receipts_unknown_total",
                 "receipts of messages notifyd did not send", event->type);
        rt_log (RT_LOG_INFO, "receipt for no send", rt_log_str ("type", event->type),
                rt_log_str ("message_id", v[0]), rt_log_str ("external_id", v[2]));
    } else {
        s_count (self, "retain_notify_receipts_stale_total",
                 "receipts that moved no send (repeated, or behind its status)", event->type);
    }
    PQclear (r);
    return 0;
}

/* Moves the send a receipt names with stmt (v: the message id, the
 * channel and the external id, then stmt's own parameters, n in all): 1
 * with the send's row in *out (owned), else what s_receipt_unmoved
 * answers (0, or -1 when PostgreSQL failed). */
static int
s_receipt_move (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event, const char *stmt,
                const char *const *v, int n, PGresult **out)
{
    *out = NULL;
    if ((v[0][0] && !s_is_uuid (v[0])) || (!v[0][0] && !v[2][0]))
        return s_receipt_unmoved (self, db, event, (const char *const[3]){"", v[1], ""});
    *out = rt_db_exec_prepared (db, stmt, n, v, NULL, NULL, 0);
    if (!*out)
        return s_db_failed (stmt, db);
    if (PQntuples (*out) > 0)
        return 1;
    PQclear (*out);
    *out = NULL;
    return s_receipt_unmoved (self, db, event, v);
}

static int
s_delivered (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__MessageDelivered *m;
    char now[24], at[24], err[256];
    PGresult *r = NULL;
    int64_t at_ms;
    int rc;

    m = retain__v1__message_delivered__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no MessageDelivered");
    at_ms = m->delivered_at > 0 ? m->delivered_at : rt_clock_now_ms ();
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (at, sizeof at, "%lld", (long long)at_ms);
    {
        const char *v[6] = {m->message_id ? m->message_id : "",
                            rt_channel_name (m->channel),
                            m->external_id ? m->external_id : "",
                            m->read ? "true" : "false",
                            at,
                            now};
        rc = s_receipt_move (self, db, event, S_DELIVERED, v, 6, &r);
    }
    if (rc > 0) {
        notify_event_t ev = {PQgetvalue (r, 0, 0), PQgetvalue (r, 0, 1), PQgetvalue (r, 0, 2),
                             PQgetisnull (r, 0, 3) ? NULL : PQgetvalue (r, 0, 3)};
        rc = -1;
        if (notify_emit_delivered (db, &ev, m->read, at_ms, err, sizeof err) != 0) {
            rt_log (RT_LOG_WARN, "MessageDelivered not written", rt_log_str ("error", err));
            goto cleanup;
        }
        s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
        rc = 0;
    }
cleanup:
    PQclear (r);
    retain__v1__message_delivered__free_unpacked (m, NULL);
    return rc;
}

/* What became of a failed send's notification (row 0 of S_FAILED, its
 * receipt m): an important one goes on to the next channel of its route
 * (notification_route, from this send); MessageFailed is said unless a
 * channel took it over or another send carries it already. 0 or -1. */
static int
s_failed_next (handler_t *self, rt_db_t *db, const PGresult *r, const Retain__V1__MessageFailed *m)
{
    notify_event_t ev = {PQgetvalue (r, 0, 0), PQgetvalue (r, 0, 1), PQgetvalue (r, 0, 2),
                         PQgetisnull (r, 0, 3) ? NULL : PQgetvalue (r, 0, 3)};
    char why[S_REASON_MAX], err[256];
    int handed = 0;
    if (strcmp (PQgetvalue (r, 0, 7), "t") == 0) {
        snprintf (why, sizeof why, "failure receipt %s: %s", m->error_code ? m->error_code : "",
                  m->error ? m->error : "");
        handed = notification_route (db, self->notification, PQgetvalue (r, 0, 6), ev.channel,
                                     PQgetvalue (r, 0, 5), why, err, sizeof err);
        if (handed < 0) {
            rt_log (RT_LOG_WARN, "failed send not handed over", rt_log_str ("error", err));
            return -1;
        }
    }
    if (handed > 0 || strcmp (PQgetvalue (r, 0, 8), "t") == 0)
        return 0;
    if (notify_emit_failed (db, &ev, m->error_code, m->error, m->permanent,
                            atoi (PQgetvalue (r, 0, 4)), err, sizeof err) != 0) {
        rt_log (RT_LOG_WARN, "MessageFailed not written", rt_log_str ("error", err));
        return -1;
    }
    return 0;
}

static int
s_failed (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__MessageFailed *m;
    char now[24];
    PGresult *r = NULL;
    int rc;

    m = retain__v1__message_failed__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no MessageFailed");
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[8] = {m->message_id ? m->message_id : "",
                            rt_channel_name (m->channel),
                            m->external_id ? m->external_id : "",
                            m->error_code ? m->error_code : "",
                            m->error ? m->error : "",
                            now,
                            m->permanent ? "true" : "false",
                            self->notification->important};
        rc = s_receipt_move (self, db, event, S_FAILED, v, 8, &r);
    }
    if (rc > 0) {
        rc = s_failed_next (self, db, r, m);
        if (rc == 0)
            s_count (self, "retain_notify_events_total", "events taken into notify.sends",
                     event->type);
    }
    PQclear (r);
    retain__v1__message_failed__free_unpacked (m, NULL);
    return rc;
}

/* The statements, registered once per handle (rt_db prepares them again
 * after every reconnection). A registration that fails half-way would
 * leave some unregistered for good: the daemon stops (exit 1) rather than
 * run on without them, and its supervisor starts it again. */
static int
s_prepare (handler_t *self, rt_db_t *db)
{
    if (self->prepared == db)
        return 0;
    self->prepared = db;
    if (rt_outbox_prepare (db) != 0 || rt_db_prepare (db, S_EXISTS, s_exists_sql) != 0 ||
        rt_db_prepare (db, S_RECIPIENT, s_recipient_sql) != 0 || parts_prepare (db) != 0 ||
        rt_db_prepare (db, S_DELIVERED, s_delivered_sql) != 0 ||
        rt_db_prepare (db, S_KNOWN, s_known_sql) != 0 ||
        rt_db_prepare (db, S_FAILED, s_failed_sql) != 0 ||
        rt_db_prepare (db, S_N_EXISTS, s_n_exists_sql) != 0 ||
        rt_db_prepare (db, S_N_INSERT, s_n_insert_sql) != 0 ||
        rt_db_prepare (db, S_OPT, s_opt_sql) != 0 || notification_prepare (db) != 0) {
        rt_log (RT_LOG_ERROR, "the consumer's statements were not prepared",
                rt_log_str ("error", rt_db_error (db)));
        self->fatal = true;
        rt_signal_request_stop ();
        return -1;
    }
    return 0;
}

void
handler_init (handler_t *self, rt_metrics_t *metrics, const notification_config_t *notification)
{
    memset (self, 0, sizeof *self);
    self->metrics = metrics;
    self->notification = notification;
}

int
handler_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    handler_t *self = arg;
    const char *type = event->type ? event->type : "";
    if (self->fatal || s_prepare (self, db) != 0)
        return -1;
    if (event->producer && strcmp (event->producer, NOTIFYD_PRODUCER) == 0) {
        s_count (self, "retain_notify_own_total", "notifyd's own events, read back and passed over",
                 type);
        return 0;
    }
    if (strcmp (type, "OutboundMessageRequested") == 0)
        return s_outbound (self, db, event);
    if (strcmp (type, "MessageDelivered") == 0)
        return s_delivered (self, db, event);
    if (strcmp (type, "MessageFailed") == 0)
        return s_failed (self, db, event);
    if (strcmp (type, "NotificationRequested") == 0)
        return s_notification (self, db, event);
    if (strcmp (type, "ConsentChanged") == 0)
        return s_consent (self, db, event);
    if (strcmp (type, "InboundMessage") == 0)
        return s_opt (self, db, event);
    s_count (self, "retain_notify_skipped_total", "events of types notifyd does not take", type);
    return 0;
}
