/*
 * handler: what the group "notify" reads on the stream "message", taken
 * into notify.sends inside the consumer's round.
 *
 * OutboundMessageRequested (an operator's reply, from routerd) becomes one
 * queued send, keyed by its message id, so a replayed or repeated request
 * finds its row and adds nothing. Its recipient is the customer's channel
 * identity in crm: on the request's channel the inbox the customer wrote
 * to last (crm.identities.last_seen), and with no channel named the
 * identity they wrote from last. A request that cannot be sent at all is
 * still a row, failed, with its MessageFailed in the outbox, so its replay
 * says nothing twice: no identity (no_channel), no text (no_text: a
 * template named in a request is rendered in a later slice), text over
 * the channel's limit (text_too_long, the limit named), an inbox without
 * a sending account on that channel (no_account).
 *
 * NotificationRequested (a template for a customer, from the daemon that
 * decided to say something) becomes one notify.notifications row keyed by
 * its notification_id, with its route (the request's channel, else the
 * customer's preferred one, else the one they wrote on last, then the
 * fallback chain), and notification.c queues its first send or fails it
 * with its MessageFailed; a replay finds the row and adds nothing.
 * ConsentChanged (stream "customer") is recorded in notify.consent and its
 * history. An InboundMessage that ingest marked as a STOP keyword (opt
 * "out") withdraws both categories on the channel it came by, as a
 * provider's opt-out does (SMS carriers stop every message from the
 * number after a STOP); a START (opt "in") grants transactional messages
 * again, and marketing only when it was a STOP keyword that withdrew them
 * (a START is no consent to what the customer never asked for). The
 * customer is the one crm knows for the sender's channel identity: a STOP
 * from a sender routerd has not named yet is counted
 * (retain_notify_opt_unresolved_total) and passed over.
 *
 * MessageDelivered and MessageFailed from ingest are the providers'
 * receipts: they name the provider's id (external_id) on a channel, or the
 * message id. The send they name moves forward (sent, delivered, read; or
 * failed) and notifyd says so on the bus with the message id, which
 * ingest's receipt does not carry, so routerd's timeline links it; a
 * receipt that moves nothing (a repeated one, an older one) says nothing.
 * A receipt for a message nobody sent is counted and passed over. notifyd's
 * own events come back on the stream and are passed over, as is every
 * other type (counted).
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

/* The customer's identity on a channel ('' for any): the one they wrote
 * from last, following merges to the survivor. */
#define S_RECIPIENT "notify_handler_recipient"
static const char *s_recipient_sql =
    "SELECT channel, inbox, external_user_id FROM crm.identities"
    " WHERE customer_id = crm.root($1::uuid) AND ($2 = '' OR channel = $2)"
    " ORDER BY last_seen DESC, inbox LIMIT 1";

/* Whether the inbox has a sending account on the channel (a stopped or
 * paused one counts: its sends wait for it). */
#define S_ACCOUNT "notify_handler_account"
static const char *s_account_sql = "SELECT 1 FROM notify.accounts WHERE inbox_id = $1"
                                   " AND channel = $2 AND disabled_at IS NULL LIMIT 1";

/* A new send; $9 the status ('queued', or 'failed' with $10-$11). */
#define S_INSERT "notify_handler_insert"
static const char *s_insert_sql =
    "INSERT INTO notify.sends (id, event_id, customer_id, conversation_id, channel, inbox,"
    "  recipient, text, status, last_verdict, last_code, last_reason, next_at, created_at,"
    "  updated_at)"
    " VALUES ($1::uuid, $2::uuid, NULLIF($3, '')::uuid, $4, $5, $6, $7, $8, $9,"
    "  CASE WHEN $9 = 'failed' THEN 'refused' END, $10, $11, to_timestamp($12::bigint / 1000.0),"
    "  to_timestamp($12::bigint / 1000.0), to_timestamp($12::bigint / 1000.0))"
    " ON CONFLICT (id) DO NOTHING";

/* A delivery receipt: by message id, else by (channel, external id). It
 * moves a send forward only: sent to delivered or read, delivered to read.
 * Returns the send when it moved. */
#define S_DELIVERED "notify_handler_delivered"
static const char *s_delivered_sql =
    "UPDATE notify.sends s SET status = CASE WHEN $4 THEN 'read' ELSE 'delivered' END,"
    "  delivered_at = COALESCE(s.delivered_at, to_timestamp($5::bigint / 1000.0)),"
    "  updated_at = to_timestamp($6::bigint / 1000.0)"
    " WHERE s.id = (SELECT id FROM notify.sends"
    "               WHERE ($1 <> '' AND id = NULLIF($1, '')::uuid)"
    "                  OR ($1 = '' AND channel = $2 AND external_id = $3) LIMIT 1)"
    "   AND (s.status = 'sent' OR (s.status = 'delivered' AND $4))"
    " RETURNING COALESCE(s.notification_id, s.id), COALESCE(s.customer_id::text, ''), s.channel,"
    "           s.external_id";

/* Whether a receipt names any send at all (one that moved nothing). */
#define S_KNOWN "notify_handler_known"
static const char *s_known_sql =
    "SELECT 1 FROM notify.sends WHERE ($1 <> '' AND id = NULLIF($1, '')::uuid)"
    "  OR ($1 = '' AND channel = $2 AND external_id = $3) LIMIT 1";

/* A failure receipt: a sent (or delivered) send failed after all. */
#define S_FAILED "notify_handler_failed"
static const char *s_failed_sql =
    "UPDATE notify.sends s SET status = 'failed', last_verdict = 'receipt', last_code = $4,"
    "  last_reason = $5, updated_at = to_timestamp($6::bigint / 1000.0)"
    " WHERE s.id = (SELECT id FROM notify.sends"
    "               WHERE ($1 <> '' AND id = NULLIF($1, '')::uuid)"
    "                  OR ($1 = '' AND channel = $2 AND external_id = $3) LIMIT 1)"
    "   AND s.status IN ('sent', 'delivered')"
    " RETURNING COALESCE(s.notification_id, s.id), COALESCE(s.customer_id::text, ''), s.channel,"
    "           s.external_id, s.attempts";

/* Is the notification there already (a replay). */
/* A keyword's customer ($1 channel, $2 inbox, $3 sender), and whether
 * their marketing on that channel was withdrawn by a STOP keyword. */
#define S_OPT_WHO "notify_handler_opt_who"
static const char *s_opt_who_sql =
    "SELECT crm.root(i.customer_id), COALESCE((SELECT NOT c.granted AND c.source = 'stop_keyword'"
    " FROM notify.consent c WHERE c.customer_id = crm.root(i.customer_id) AND c.channel = $1"
    " AND c.category = 'marketing'), false) FROM crm.identities i"
    " WHERE i.channel = $1 AND i.inbox = $2 AND i.external_user_id = $3";

#define S_N_EXISTS "notify_handler_n_exists"
static const char *s_n_exists_sql = "SELECT 1 FROM notify.notifications WHERE id = $1::uuid";

/* The customer's first channel when the request names none: their
 * preferred one, else the one they wrote on last; '' for none. */
#define S_N_FIRST "notify_handler_n_first"
static const char *s_n_first_sql =
    "SELECT COALESCE(NULLIF((SELECT preferred_channel FROM crm.customers"
    "                        WHERE id = crm.root($1::uuid)), ''),"
    "  (SELECT channel FROM crm.identities WHERE customer_id = crm.root($1::uuid)"
    "    ORDER BY last_seen DESC, inbox LIMIT 1), '')";

/* A new notification; notification_route decides its status. */
#define S_N_INSERT "notify_handler_n_insert"
static const char *s_n_insert_sql =
    "INSERT INTO notify.notifications (id, event_id, customer_id, template, variables, category,"
    "  correlation, route, not_before, expires_at, status, created_at, updated_at)"
    " VALUES ($1::uuid, $2::uuid, NULLIF($3, '')::uuid, $4, $5::jsonb, $6, $7, $8::text[],"
    "  to_timestamp(NULLIF($9::bigint, 0) / 1000.0), to_timestamp(NULLIF($10::bigint, 0) / 1000.0),"
    "  'routed', to_timestamp($11::bigint / 1000.0), to_timestamp($11::bigint / 1000.0))"
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

/* Why a request cannot be sent at all, into code and reason; NULL code
 * when it can. */
static const char *
s_refusal (const Retain__V1__OutboundMessageRequested *m, const rt_channel_t *ch, char *reason,
           size_t len)
{
    size_t n;
    if (!s_set (m->text)) {
        snprintf (reason, len, "the request has no text%s",
                  s_set (m->template_) ? " (templates are rendered for NotificationRequested)"
                                       : "");
        return "no_text";
    }
    n = rt_utf8_count (m->text, strlen (m->text));
    if (ch && ch->text_max > 0 && (long)n > ch->text_max) {
        snprintf (reason, len, "the text is %zu characters; %s takes at most %ld", n, ch->title,
                  ch->text_max);
        return "text_too_long";
    }
    return NULL;
}

static int
s_outbound (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__OutboundMessageRequested *m;
    const rt_channel_t *want = NULL, *ch = NULL;
    const char *code = NULL, *channel_name = "", *inbox = NULL, *recipient = NULL;
    char reason[S_REASON_MAX] = "", now[24], err[256];
    PGresult *r = NULL, *found = NULL;
    int rc = -1;

    m = retain__v1__outbound_message_requested__unpack (NULL, event->payload.len,
                                                        event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no OutboundMessageRequested");
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
    {
        const char *v[1] = {m->message_id};
        r = rt_db_exec_prepared (db, S_EXISTS, 1, v, NULL, NULL, 0);
        if (!r) {
            rc = s_db_failed ("exists", db);
            goto cleanup;
        }
        if (PQntuples (r) > 0) {
            s_count (self, "retain_notify_replayed_total",
                     "requests whose send was already recorded", event->type);
            rc = 0;
            goto cleanup;
        }
        PQclear (r);
        r = NULL;
    }
    if (s_set (m->customer_id)) {
        const char *v[2] = {m->customer_id, want ? want->name : ""};
        found = rt_db_exec_prepared (db, S_RECIPIENT, 2, v, NULL, NULL, 0);
        if (!found) {
            rc = s_db_failed ("recipient", db);
            goto cleanup;
        }
    }
    if (found && PQntuples (found) > 0) {
        ch = rt_channel_by_name (PQgetvalue (found, 0, 0));
        channel_name = PQgetvalue (found, 0, 0);
        inbox = PQgetvalue (found, 0, 1);
        recipient = PQgetvalue (found, 0, 2);
        code = s_refusal (m, ch, reason, sizeof reason);
        if (!code) {
            const char *v[2] = {inbox, channel_name};
            r = rt_db_exec_prepared (db, S_ACCOUNT, 2, v, NULL, NULL, 0);
            if (!r) {
                rc = s_db_failed ("account", db);
                goto cleanup;
            }
            if (PQntuples (r) == 0) {
                code = "no_account";
                snprintf (reason, sizeof reason, "the inbox %s has no sending account on %s", inbox,
                          ch ? ch->title : channel_name);
            }
        }
    } else {
        ch = want;
        channel_name = want ? want->name : "";
        code = "no_channel";
        snprintf (reason, sizeof reason, "the customer has no identity on %s",
                  want ? want->title : "any channel");
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[12] = {m->message_id,
                             event->id,
                             s_set (m->customer_id) ? m->customer_id : "",
                             m->conversation_id ? m->conversation_id : "",
                             channel_name,
                             inbox,
                             recipient,
                             m->text ? m->text : "",
                             code ? "failed" : "queued",
                             code,
                             code ? reason : NULL,
                             now};
        PGresult *ins = rt_db_exec_prepared (db, S_INSERT, 12, v, NULL, NULL, 0);
        if (!ins) {
            rc = s_db_failed ("insert", db);
            goto cleanup;
        }
        PQclear (ins);
    }
    if (code) {
        notify_event_t ev = {m->message_id, m->customer_id, channel_name, NULL};
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
    PQclear (r);
    PQclear (found);
    retain__v1__outbound_message_requested__free_unpacked (m, NULL);
    return rc;
}

/* Appends name to the route literal being built in r ("{a,b"), once. */
static void
s_route_add (char *r, size_t len, const char *name)
{
    char probe[32];
    size_t n = strlen (r);
    if (!rt_channel_by_name (name))
        return;
    snprintf (probe, sizeof probe, ",%s,", name);
    {
        char have[NOTIFICATION_CHANNELS_MAX * 16 + 2];
        snprintf (have, sizeof have, ",%s,", r + 1);
        if (strstr (have, probe))
            return;
    }
    snprintf (r + n, len - n, "%s%s", n > 1 ? "," : "", name);
}

/* The route: the first choice, then the fallback chain. */
static int
s_route (handler_t *self, rt_db_t *db, const Retain__V1__NotificationRequested *m, char *route,
         size_t len)
{
    char chain[256], *save = NULL, *name;
    snprintf (route, len, "{");
    if (m->preferred_channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
        s_route_add (route, len, rt_channel_name (m->preferred_channel));
    } else {
        const char *v[1] = {m->customer_id};
        PGresult *r = rt_db_exec_prepared (db, S_N_FIRST, 1, v, NULL, NULL, 0);
        if (!r)
            return s_db_failed ("first channel", db);
        if (PQntuples (r) > 0 && !PQgetisnull (r, 0, 0))
            s_route_add (route, len, PQgetvalue (r, 0, 0));
        PQclear (r);
    }
    snprintf (chain, sizeof chain, "%s", self->notification->fallback_chain);
    for (name = strtok_r (chain, ", ", &save); name; name = strtok_r (NULL, ", ", &save))
        s_route_add (route, len, name);
    snprintf (route + strlen (route), len - strlen (route), "}");
    return 0;
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
    char route[NOTIFICATION_CHANNELS_MAX * 16 + 4], now[24], nb[24], ex[24], err[256];
    char *vars = NULL;
    PGresult *r = NULL;
    int rc = -1;

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
    {
        const char *v[1] = {m->notification_id};
        r = rt_db_exec_prepared (db, S_N_EXISTS, 1, v, NULL, NULL, 0);
        if (!r) {
            rc = s_db_failed ("notification exists", db);
            goto cleanup;
        }
        if (PQntuples (r) > 0) {
            s_count (self, "retain_notify_replayed_total",
                     "requests whose send was already recorded", event->type);
            rc = 0;
            goto cleanup;
        }
        PQclear (r);
        r = NULL;
    }
    if (s_route (self, db, m, route, sizeof route) != 0)
        goto cleanup;
    vars = s_variables (m);
    if (!vars) {
        rt_log (RT_LOG_WARN, "out of memory", rt_log_str ("step", "variables"));
        goto cleanup;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (nb, sizeof nb, "%lld", (long long)(m->not_before > 0 ? m->not_before : 0));
    snprintf (ex, sizeof ex, "%lld", (long long)(m->expires_at > 0 ? m->expires_at : 0));
    {
        const char *v[11] = {m->notification_id,
                             event->id,
                             m->customer_id,
                             m->template_ ? m->template_ : "",
                             vars,
                             category,
                             m->correlation ? m->correlation : "",
                             route,
                             nb,
                             ex,
                             now};
        r = rt_db_exec_prepared (db, S_N_INSERT, 11, v, NULL, NULL, 0);
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
                              s_set (m->source) ? m->source : "event",
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
    int64_t at;
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
    {
        const char *v[3] = {ch->name, m->inbox ? m->inbox : "", m->external_user_id};
        r = rt_db_exec_prepared (db, S_OPT_WHO, 3, v, NULL, NULL, 0);
    }
    if (!r) {
        rc = s_db_failed ("opt", db);
        goto cleanup;
    }
    if (PQntuples (r) == 0 || PQgetisnull (r, 0, 0)) {
        s_count (self, "retain_notify_opt_unresolved_total",
                 "STOP and START keywords from senders crm does not know yet, passed over",
                 event->type);
        rt_log (RT_LOG_WARN, "opt keyword from an unknown sender", rt_log_str ("id", event->id),
                rt_log_str ("channel", ch->name), rt_log_str ("opt", m->opt));
        rc = 0;
        goto cleanup;
    }
    at = m->sent_at > 0           ? m->sent_at
         : event->occurred_at > 0 ? event->occurred_at
                                  : rt_clock_now_ms ();
    {
        const char *customer = PQgetvalue (r, 0, 0);
        bool restore_marketing = strcmp (PQgetvalue (r, 0, 1), "t") == 0;
        if (notification_consent (db, customer, ch->name, "transactional", !out, "stop_keyword",
                                  at) != 0 ||
            ((out || restore_marketing) &&
             notification_consent (db, customer, ch->name, "marketing", !out, "stop_keyword", at) !=
                 0)) {
            rc = s_db_failed ("opt", db);
            goto cleanup;
        }
        rt_log (RT_LOG_INFO,
                out ? "STOP keyword: consent withdrawn" : "START keyword: consent granted",
                rt_log_str ("customer_id", customer), rt_log_str ("channel", ch->name),
                rt_log_str ("marketing", out || restore_marketing ? "true" : "false"));
    }
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

static int
s_delivered (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__MessageDelivered *m;
    char now[24], at[24], err[256];
    PGresult *r = NULL;
    int rc = -1;

    m = retain__v1__message_delivered__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no MessageDelivered");
    if ((s_set (m->message_id) && !s_is_uuid (m->message_id)) ||
        (!s_set (m->message_id) && !s_set (m->external_id))) {
        rc = s_receipt_unmoved (self, db, event,
                                (const char *const[3]){"", rt_channel_name (m->channel), ""});
        goto cleanup;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (at, sizeof at, "%lld",
              (long long)(m->delivered_at > 0 ? m->delivered_at : rt_clock_now_ms ()));
    {
        const char *v[6] = {m->message_id ? m->message_id : "",
                            rt_channel_name (m->channel),
                            m->external_id ? m->external_id : "",
                            m->read ? "true" : "false",
                            at,
                            now};
        r = rt_db_exec_prepared (db, S_DELIVERED, 6, v, NULL, NULL, 0);
        if (!r) {
            rc = s_db_failed ("delivered", db);
            goto cleanup;
        }
        if (PQntuples (r) == 0) {
            rc = s_receipt_unmoved (self, db, event, v);
            goto cleanup;
        }
    }
    {
        notify_event_t ev = {PQgetvalue (r, 0, 0), PQgetvalue (r, 0, 1), PQgetvalue (r, 0, 2),
                             PQgetisnull (r, 0, 3) ? NULL : PQgetvalue (r, 0, 3)};
        if (notify_emit_delivered (db, &ev, m->read,
                                   m->delivered_at > 0 ? m->delivered_at : rt_clock_now_ms (), err,
                                   sizeof err) != 0) {
            rt_log (RT_LOG_WARN, "MessageDelivered not written", rt_log_str ("error", err));
            goto cleanup;
        }
    }
    s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
    rc = 0;
cleanup:
    PQclear (r);
    retain__v1__message_delivered__free_unpacked (m, NULL);
    return rc;
}

static int
s_failed (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__MessageFailed *m;
    char now[24], err[256];
    PGresult *r = NULL;
    int rc = -1;

    m = retain__v1__message_failed__unpack (NULL, event->payload.len, event->payload.data);
    if (!m)
        return s_unreadable (self, event, "the payload is no MessageFailed");
    if ((s_set (m->message_id) && !s_is_uuid (m->message_id)) ||
        (!s_set (m->message_id) && !s_set (m->external_id))) {
        rc = s_receipt_unmoved (self, db, event,
                                (const char *const[3]){"", rt_channel_name (m->channel), ""});
        goto cleanup;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[6] = {m->message_id ? m->message_id : "",
                            rt_channel_name (m->channel),
                            m->external_id ? m->external_id : "",
                            m->error_code ? m->error_code : "",
                            m->error ? m->error : "",
                            now};
        r = rt_db_exec_prepared (db, S_FAILED, 6, v, NULL, NULL, 0);
        if (!r) {
            rc = s_db_failed ("failed", db);
            goto cleanup;
        }
        if (PQntuples (r) == 0) {
            rc = s_receipt_unmoved (self, db, event, v);
            goto cleanup;
        }
    }
    {
        notify_event_t ev = {PQgetvalue (r, 0, 0), PQgetvalue (r, 0, 1), PQgetvalue (r, 0, 2),
                             PQgetisnull (r, 0, 3) ? NULL : PQgetvalue (r, 0, 3)};
        /* A failure after the provider took the message (WhatsApp's async
         * errors, Twilio's undelivered): the fallback channel comes in a
         * later slice; the send stays failed with the provider's words. */
        if (notify_emit_failed (db, &ev, m->error_code, m->error, m->permanent,
                                atoi (PQgetvalue (r, 0, 4)), err, sizeof err) != 0) {
            rt_log (RT_LOG_WARN, "MessageFailed not written", rt_log_str ("error", err));
            goto cleanup;
        }
    }
    s_count (self, "retain_notify_events_total", "events taken into notify.sends", event->type);
    rc = 0;
cleanup:
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
        rt_db_prepare (db, S_RECIPIENT, s_recipient_sql) != 0 ||
        rt_db_prepare (db, S_ACCOUNT, s_account_sql) != 0 ||
        rt_db_prepare (db, S_INSERT, s_insert_sql) != 0 ||
        rt_db_prepare (db, S_DELIVERED, s_delivered_sql) != 0 ||
        rt_db_prepare (db, S_KNOWN, s_known_sql) != 0 ||
        rt_db_prepare (db, S_FAILED, s_failed_sql) != 0 ||
        rt_db_prepare (db, S_N_EXISTS, s_n_exists_sql) != 0 ||
        rt_db_prepare (db, S_N_FIRST, s_n_first_sql) != 0 ||
        rt_db_prepare (db, S_N_INSERT, s_n_insert_sql) != 0 ||
        rt_db_prepare (db, S_OPT_WHO, s_opt_who_sql) != 0 || notification_prepare (db) != 0) {
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
