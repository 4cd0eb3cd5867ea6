/*
 * handler: every event the group "router" reads, taken to identity and
 * routing inside the consumer's round.
 *
 * InboundMessage names its customer through identity (the channel
 * identity, and the contact points the channel proves: an SMS, a WhatsApp
 * message or an inbound call proves the number it came from, a Telegram
 * contact share of the sender's own number proves it, an inbound mail
 * proves its address; a number typed in the text is only a claim) and then
 * joins that customer's conversation (routing_inbound). OrderPlaced and
 * the shop's CustomerUpserted resolve the shop's customer with the shop's
 * claims, so the person who ordered by phone is recognised when they write
 * from that number. Receipts go to the timeline of the message they
 * concern. Orders, parcels, loyalty and feedback go to the customer's
 * card (card.h; OrderPlaced to the timeline too). Everything else is
 * counted and passed over.
 *
 * Only PostgreSQL failing returns -1 (the round rolls back and is tried
 * again): an event identity or routing refuses would be refused again, so
 * it is logged, counted and passed over, never retried for ever.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "card.h"
#include "identity.h"
#include "routerd.h"
#include "routing.h"
#include "rt_channel.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "rt_uuid.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "retain/v1/order.pb-c.h"

#define S_TEXT_PHONES 2   /* numbers taken from one message's text at most */
#define S_LABEL_MAX   64  /* a type's name in a label, bytes */
#define S_SUMMARY_MAX 256 /* an attachment-only message's summary, bytes */

/* A counter of one event type: name{type="<type>"}. Types on the bus are
 * registered names (busd refuses others); anything but [A-Za-z0-9_] is
 * dropped all the same, so a label can never break the exposition. */
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
s_handled (handler_t *self, const Retain__V1__Envelope *event)
{
    s_count (self, "retain_router_events_total", "events taken into identity and routing",
             event->type);
}

/* An event that cannot be taken: logged and counted, then passed over. */
static int
s_refused (handler_t *self, const Retain__V1__Envelope *event, const char *why)
{
    rt_log (RT_LOG_WARN, "event refused", rt_log_str ("type", event->type),
            rt_log_str ("id", event->id), rt_log_str ("reason", why));
    s_count (self, "retain_router_refused_total",
             "events passed over because identity or routing refused them", event->type);
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

static void
s_point (identity_input_t *in, identity_point_kind_t kind, const char *value,
         identity_source_t source, const char *seen_in)
{
    if (!s_set (value) || in->npoints >= IDENTITY_MAX_POINTS)
        return;
    in->points[in->npoints].kind = kind;
    in->points[in->npoints].value = value;
    in->points[in->npoints].source = source;
    in->points[in->npoints].seen_in = seen_in;
    in->npoints++;
}

/* What the channel proves of the number it gives (InboundMessage.phone). */
static identity_source_t
s_phone_source (const Retain__V1__InboundMessage *msg)
{
    switch (msg->channel) {
    case RETAIN__V1__CHANNEL__SMS:
        return IDENTITY_SOURCE_SMS;
    case RETAIN__V1__CHANNEL__WHATSAPP:
        return IDENTITY_SOURCE_WHATSAPP;
    case RETAIN__V1__CHANNEL__PHONE:
        /* A call the shop placed to a number proves nothing of who holds it. */
        if (msg->call && msg->call->direction && strcmp (msg->call->direction, "outbound") == 0)
            return IDENTITY_SOURCE_TEXT;
        return IDENTITY_SOURCE_CALL;
    case RETAIN__V1__CHANNEL__TELEGRAM:
        /* ingest sets the phone only for a share of the sender's own contact. */
        return IDENTITY_SOURCE_TELEGRAM_CONTACT;
    case RETAIN__V1__CHANNEL__WEBCHAT:
        return IDENTITY_SOURCE_FORM;
    default:
        return IDENTITY_SOURCE_TEXT;
    }
}

static identity_source_t
s_email_source (const Retain__V1__InboundMessage *msg)
{
    if (msg->channel == RETAIN__V1__CHANNEL__EMAIL)
        return IDENTITY_SOURCE_EMAIL_INBOUND;
    if (msg->channel == RETAIN__V1__CHANNEL__WEBCHAT)
        return IDENTITY_SOURCE_FORM;
    return IDENTITY_SOURCE_TEXT;
}

/* Numbers typed in a text: runs of digits, spaces, dashes, dots and
 * brackets, maybe after a '+', holding 10 to 15 digits. Each goes into
 * bufs[i] (as typed, without the separators); identity normalises them
 * and skips what is no phone. Returns how many. */
static size_t
s_text_phones (const char *text, char bufs[][24], size_t max)
{
    size_t n = 0;
    const char *p = text;
    if (!text)
        return 0;
    while (*p && n < max) {
        char digits[24];
        size_t nd = 0, plus = 0;
        const char *q = p;
        if (*q == '+') {
            plus = 1;
            q++;
        }
        if (!isdigit ((unsigned char)*q)) {
            p++;
            continue;
        }
        if (plus)
            digits[nd++] = '+';
        while (*q && (isdigit ((unsigned char)*q) || strchr (" -.()", *q))) {
            if (isdigit ((unsigned char)*q) && nd < sizeof digits - 1)
                digits[nd++] = *q;
            q++;
        }
        digits[nd] = '\0';
        if (nd - plus >= 10 && nd - plus <= 15) {
            memcpy (bufs[n], digits, nd + 1);
            n++;
        }
        p = q;
    }
    return n;
}

/* "[image, document]": what routing keeps as the text of a message made
 * of attachments only. */
static void
s_summary (const Retain__V1__InboundMessage *msg, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < msg->n_attachments && used + 2 < outlen; i++) {
        const char *kind = s_set (msg->attachments[i]->kind) ? msg->attachments[i]->kind : "file";
        int w = snprintf (out + used, outlen - used, "%s%s", i ? ", " : "[", kind);
        if (w < 0 || (size_t)w >= outlen - used)
            break;
        used += (size_t)w;
    }
    if (used > 0 && used + 2 <= outlen)
        snprintf (out + used, outlen - used, "]");
}

/* identity's verdict: 0 resolved, 1 refused (logged, counted), -1 roll back. */
static int
s_resolve (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event,
           const identity_input_t *in, identity_result_t *out)
{
    char err[256];
    identity_status_t st = identity_resolve (db, in, out, err, sizeof err);
    if (st == IDENTITY_OK)
        return 0;
    if (st == IDENTITY_ERR_DB) {
        rt_log (RT_LOG_WARN, "identity failed", rt_log_str ("id", event->id),
                rt_log_str ("error", err));
        return -1;
    }
    s_refused (self, event, err);
    return 1;
}

/* One InboundMessage on its way: what identity and routing are asked
 * (pointing into the item itself, so items stay where they are made). */
typedef struct {
    const Retain__V1__Envelope *event;
    Retain__V1__InboundMessage *msg; /* NULL: refused (counted) or not read */
    identity_input_t in;
    identity_result_t who;
    routing_inbound_t r;
    bool resolved; /* identity found the customer */
    char seen_in[160], typed[S_TEXT_PHONES][24], summary[S_SUMMARY_MAX];
} s_item_t;

/* Reads the event into the item: 0, or 1 refused (logged, counted). */
static int
s_read (handler_t *self, const Retain__V1__Envelope *event, s_item_t *it)
{
    Retain__V1__InboundMessage *msg;
    size_t ntyped;

    memset (it, 0, sizeof *it);
    it->event = event;
    msg = retain__v1__inbound_message__unpack (NULL, event->payload.len, event->payload.data);
    if (!msg) {
        s_refused (self, event, "the payload is no InboundMessage");
        return 1;
    }
    it->msg = msg;
    snprintf (it->seen_in, sizeof it->seen_in, "%s message %s", rt_channel_name (msg->channel),
              msg->external_id);
    if (s_is_uuid (msg->customer_id))
        it->in.customer_id = msg->customer_id;
    if (s_set (msg->external_user_id)) {
        it->in.channel = msg->channel;
        it->in.inbox = msg->inbox;
        it->in.external_user_id = msg->external_user_id;
    }
    s_point (&it->in, IDENTITY_POINT_PHONE, msg->phone, s_phone_source (msg), it->seen_in);
    s_point (&it->in, IDENTITY_POINT_EMAIL, msg->email, s_email_source (msg), it->seen_in);
    ntyped = s_text_phones (msg->text, it->typed, S_TEXT_PHONES);
    for (size_t i = 0; i < ntyped; i++)
        s_point (&it->in, IDENTITY_POINT_PHONE, it->typed[i], IDENTITY_SOURCE_TEXT, it->seen_in);
    it->in.default_country = self->default_country;
    it->in.name = msg->display_name;
    return 0;
}

/* The routing request of a resolved item. */
static void
s_request (s_item_t *it)
{
    const Retain__V1__InboundMessage *msg = it->msg;
    routing_inbound_t *r = &it->r;
    memset (r, 0, sizeof *r);
    r->customer_id = it->who.customer_id;
    r->event_id = it->event->id;
    r->channel = msg->channel;
    r->inbox = msg->inbox;
    r->event = msg->event;
    r->text = msg->text;
    if (!s_set (msg->text) && msg->n_attachments > 0) {
        s_summary (msg, it->summary, sizeof it->summary);
        r->text = it->summary;
    }
    r->external_id = msg->external_id;
    r->edited = msg->edited;
    r->origin = msg->origin;
    if (msg->call) {
        /* The customer's end of the call: who called, or whom the shop
         * called (an outbound call to them closes their call-backs). */
        bool outbound =
            s_set (msg->call->direction) && strcmp (msg->call->direction, "outbound") == 0;
        r->call_direction = msg->call->direction;
        r->call_number = outbound ? msg->call->to : msg->call->from;
    }
    r->occurred_at = msg->sent_at > 0 ? msg->sent_at : it->event->occurred_at;
}

/* routing's verdict on an item: 0 taken or refused (counted), -1 roll back. */
static int
s_routed (handler_t *self, const s_item_t *it, routing_status_t st,
          const routing_inbound_result_t *res, const char *err)
{
    if (st == ROUTING_ERR_DB) {
        rt_log (RT_LOG_WARN, "routing failed", rt_log_str ("id", it->event->id),
                rt_log_str ("error", err));
        return -1;
    }
    if (st != ROUTING_OK)
        return s_refused (self, it->event, err);
    s_handled (self, it->event);
    if (res->reason != ROUTING_REASON_NONE)
        rt_log (RT_LOG_DEBUG, "assigned", rt_log_str ("conversation", res->conversation_id),
                rt_log_str ("operator", res->assignee),
                rt_log_str ("reason", routing_reason_name (res->reason)));
    return 0;
}

static void
s_items_free (s_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        retain__v1__inbound_message__free_unpacked (items[i].msg, NULL);
}

/* Routes items[idx[0..n)] together (routing_inbound_many). */
static int
s_route_many (handler_t *self, rt_db_t *db, s_item_t *items, const size_t *idx, size_t n)
{
    routing_inbound_t *r = calloc (n + 1, sizeof *r);
    routing_inbound_result_t *res = calloc (n + 1, sizeof *res);
    char err[256] = "";
    routing_status_t st;
    int rc = 0;

    if (!r || !res) {
        free (r);
        free (res);
        rt_log (RT_LOG_WARN, "routing failed", rt_log_str ("error", "out of memory"));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        r[i] = items[idx[i]].r;
    st = routing_inbound_many (db, r, n, res, err, sizeof err);
    if (st == ROUTING_ERR_DB) {
        rt_log (RT_LOG_WARN, "routing failed", rt_log_str ("id", items[idx[0]].event->id),
                rt_log_str ("events", n > 1 ? "several" : "one"), rt_log_str ("error", err));
        rc = -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_routed (self, &items[idx[i]], st, &res[i], err);
    free (r);
    free (res);
    return rc;
}

/* A run of InboundMessages: identity for all (the known identities in
 * one statement, the rest one by one, in order), then routing, runs of
 * batchable events together and the others one by one, in order. */
static int
s_inbound_all (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *const *events, size_t n)
{
    s_item_t *items = calloc (n, sizeof *items);
    identity_input_t *ins = calloc (n, sizeof *ins);
    identity_result_t *who = calloc (n, sizeof *who);
    bool *found = calloc (n, sizeof *found);
    size_t *group = calloc (n, sizeof *group), ngroup = 0, i;
    char err[256];
    int rc = -1;

    if (!items || !ins || !who || !found || !group) {
        rt_log (RT_LOG_WARN, "routing failed", rt_log_str ("error", "out of memory"));
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        if (s_read (self, events[i], &items[i]) == 0)
            ins[i] = items[i].in;
        else
            ins[i].channel = RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED; /* not asked */
    }
    if (identity_seen_batch (db, ins, n, who, found, err, sizeof err) != 0) {
        rt_log (RT_LOG_WARN, "identity failed", rt_log_str ("id", events[0]->id),
                rt_log_str ("error", err));
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        s_item_t *it = &items[i];
        int v;
        if (!it->msg)
            continue;
        if (found[i]) {
            it->who = who[i];
            it->resolved = true;
        } else {
            v = s_resolve (self, db, it->event, &it->in, &it->who);
            if (v < 0)
                goto cleanup;
            it->resolved = v == 0;
        }
        if (it->resolved)
            s_request (it);
    }
    for (i = 0; i <= n; i++) {
        s_item_t *it = i < n ? &items[i] : NULL;
        if (it && !it->resolved)
            continue;
        if (it && routing_inbound_batchable (&it->r)) {
            group[ngroup++] = i;
            continue;
        }
        if (ngroup > 0 && s_route_many (self, db, items, group, ngroup) != 0)
            goto cleanup;
        ngroup = 0;
        if (it) {
            routing_inbound_result_t res;
            routing_status_t st = routing_inbound (db, &it->r, &res, err, sizeof err);
            if (s_routed (self, it, st, &res, err) != 0)
                goto cleanup;
        }
    }
    rc = 0;
cleanup:
    if (items)
        s_items_free (items, n);
    free (items);
    free (ins);
    free (who);
    free (found);
    free (group);
    return rc;
}

/* Whether PostgreSQL refused the last statement for its data (SQLSTATE
 * class 22, a data exception, or 23, a constraint), the connection up:
 * what one event carries, not what a retry can mend. */
static bool
s_data_error (rt_db_t *db)
{
    const char *st = rt_db_sqlstate (db);
    return rt_db_is_ok (db) && st && (strncmp (st, "22", 2) == 0 || strncmp (st, "23", 2) == 0);
}

static int
s_sql (rt_db_t *db, const char *sql)
{
    if (rt_db_exec (db, sql) == 0)
        return 0;
    rt_log (RT_LOG_WARN, "routing failed", rt_log_str ("statement", sql),
            rt_log_str ("error", rt_db_error (db)));
    return -1;
}

/* Whether event id was refused as data alone before; it is, from now on. */
static bool
s_suspect (handler_t *self, const char *id)
{
    for (size_t i = 0; i < self->nsuspects && i < HANDLER_SUSPECTS; i++) {
        if (strcmp (self->suspects[i], id) == 0)
            return true;
    }
    snprintf (self->suspects[self->nsuspects++ % HANDLER_SUSPECTS], sizeof self->suspects[0], "%s",
              id ? id : "");
    return false;
}

/* The run under a savepoint. PostgreSQL refusing one event's data must
 * not hold up the rest, nor its partition for ever: the run is taken
 * again one event at a time, each under a savepoint of its own; an event
 * refused alone rolls the round back once (a race with another replica
 * would not come again), and refused alone a second time it is logged,
 * counted and passed over. Anything else rolls the round back. */
static int
s_inbound_run (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *const *events, size_t n)
{
    char why[320];
    if (s_sql (db, "SAVEPOINT inbound_run") != 0)
        return -1;
    if (s_inbound_all (self, db, events, n) == 0)
        return s_sql (db, "RELEASE SAVEPOINT inbound_run");
    if (!s_data_error (db) || s_sql (db, "ROLLBACK TO SAVEPOINT inbound_run") != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s_sql (db, "SAVEPOINT inbound_one") != 0)
            return -1;
        if (s_inbound_all (self, db, &events[i], 1) == 0) {
            if (s_sql (db, "RELEASE SAVEPOINT inbound_one") != 0)
                return -1;
            continue;
        }
        snprintf (why, sizeof why, "PostgreSQL refused its data: %s %s", rt_db_sqlstate (db),
                  rt_db_error (db));
        if (!s_data_error (db) || !s_suspect (self, events[i]->id) ||
            s_sql (db, "ROLLBACK TO SAVEPOINT inbound_one") != 0)
            return -1;
        s_refused (self, events[i], why);
    }
    return s_sql (db, "RELEASE SAVEPOINT inbound_run");
}

static int
s_inbound (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    return s_inbound_run (self, db, &event, 1);
}

/* The card's verdict: 0 taken or passed over (counted), -1 roll back.
 * count: an event the card alone takes is counted as handled here. */
static int
s_card_verdict (handler_t *self, const Retain__V1__Envelope *event, card_status_t st,
                const char *err, bool count)
{
    switch (st) {
    case CARD_TAKEN:
        if (count)
            s_handled (self, event);
        return 0;
    case CARD_REPLAYED:
        s_count (self, "retain_router_card_replays_total",
                 "events the customer card had taken already (replays), passed over", event->type);
        return 0;
    case CARD_ERR_DB:
        rt_log (RT_LOG_WARN, "card failed", rt_log_str ("id", event->id),
                rt_log_str ("error", err));
        return -1;
    default:
        return s_refused (self, event, err);
    }
}

/* Orders' later steps, parcels, loyalty and feedback: the card's. */
static int
s_card (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    char err[256] = "";
    card_result_t out;
    card_status_t st = card_apply (db, event, &out, err, sizeof err);
    return s_card_verdict (self, event, st, err, true);
}

/* The shop's id of its customer: an id that is no retain id is the shop's. */
static void
s_shop_ids (identity_input_t *in, const char *customer_id, const char *shop_id)
{
    if (s_is_uuid (customer_id))
        in->customer_id = customer_id;
    if (s_set (shop_id))
        in->shop_customer_id = shop_id;
    else if (s_set (customer_id) && !s_is_uuid (customer_id))
        in->shop_customer_id = customer_id;
}

/* An order names the shop's customer and the shop's claims of their phone
 * and e-mail: the customer is resolved (and made when new), and the order
 * joins their conversation's timeline (never counted as unanswered; none
 * when the customer has no conversation). */
static int
s_order (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__OrderPlaced *o;
    identity_input_t in = {0};
    identity_result_t who;
    char seen_in[160];
    int rc;

    o = retain__v1__order_placed__unpack (NULL, event->payload.len, event->payload.data);
    if (!o)
        return s_refused (self, event, "the payload is no OrderPlaced");
    snprintf (seen_in, sizeof seen_in, "order %s", o->order_id);
    s_shop_ids (&in, o->customer_id, NULL);
    s_point (&in, IDENTITY_POINT_PHONE, o->customer_phone, IDENTITY_SOURCE_SHOP, seen_in);
    s_point (&in, IDENTITY_POINT_EMAIL, o->customer_email, IDENTITY_SOURCE_SHOP, seen_in);
    in.default_country = self->default_country;
    in.name = o->customer_name;
    rc = s_resolve (self, db, event, &in, &who);
    if (rc == 0) {
        char cerr[256] = "";
        card_status_t cst =
            card_apply_order_placed (db, o, event, who.customer_id, cerr, sizeof cerr);
        rc = s_card_verdict (self, event, cst, cerr, false);
    }
    if (rc == 0) {
        json_t *summary = json_pack ("{s:s, s:I}", "order_id", o->order_id ? o->order_id : "",
                                     "placed_at", (json_int_t)o->placed_at);
        char *text = summary ? json_dumps (summary, JSON_COMPACT) : NULL;
        char conversation[IDENTITY_ID_LEN + 1];
        char err[256];
        routing_status_t st =
            text ? routing_order_event (db, who.customer_id, event->id, "order", text,
                                        o->placed_at > 0 ? o->placed_at : event->occurred_at,
                                        conversation, NULL, err, sizeof err)
                 : ROUTING_ERR_DB;
        if (st == ROUTING_ERR_DB)
            rc = -1;
        else if (st != ROUTING_OK)
            rc = s_refused (self, event, err);
        else
            s_handled (self, event);
        free (text);
        json_decref (summary);
    }
    retain__v1__order_placed__free_unpacked (o, NULL);
    return rc < 0 ? -1 : 0;
}

/* The shop's record of a customer. routerd's own CustomerUpserted (an
 * operator's edit going out) comes back on the stream it wrote to: it is
 * what crm holds already. */
static int
s_customer (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__CustomerUpserted *c;
    identity_input_t in = {0};
    identity_result_t who;
    char seen_in[160];
    int rc;

    if (event->producer && strcmp (event->producer, ROUTERD_PRODUCER) == 0) {
        s_count (self, "retain_router_own_events_total",
                 "routerd's own events read back from the bus and passed over", event->type);
        return 0;
    }
    c = retain__v1__customer_upserted__unpack (NULL, event->payload.len, event->payload.data);
    if (!c)
        return s_refused (self, event, "the payload is no CustomerUpserted");
    snprintf (seen_in, sizeof seen_in, "shop customer %s",
              s_set (c->external_id) ? c->external_id : c->customer_id);
    s_shop_ids (&in, c->customer_id, c->external_id);
    s_point (&in, IDENTITY_POINT_PHONE, c->phone, IDENTITY_SOURCE_SHOP, seen_in);
    s_point (&in, IDENTITY_POINT_EMAIL, c->email, IDENTITY_SOURCE_SHOP, seen_in);
    in.default_country = self->default_country;
    in.name = c->name;
    in.locale = c->locale;
    rc = s_resolve (self, db, event, &in, &who);
    if (rc == 0)
        s_handled (self, event);
    retain__v1__customer_upserted__free_unpacked (c, NULL);
    return rc < 0 ? -1 : 0;
}

static int
s_receipt_status (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event,
                  const char *message_id, const char *status, int64_t at)
{
    char err[256];
    bool found = false;
    routing_status_t st =
        routing_receipt (db, event->id, message_id, status, at > 0 ? at : event->occurred_at,
                         &found, err, sizeof err);
    if (st == ROUTING_ERR_DB) {
        rt_log (RT_LOG_WARN, "routing failed", rt_log_str ("id", event->id),
                rt_log_str ("error", err));
        return -1;
    }
    if (st != ROUTING_OK)
        return s_refused (self, event, err);
    if (found)
        s_handled (self, event);
    else
        s_count (self, "retain_router_receipts_unknown_total",
                 "receipts of messages retain did not record", event->type);
    return 0;
}

static int
s_receipt (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    int rc;
    if (strcmp (event->type, "MessageDelivered") == 0) {
        Retain__V1__MessageDelivered *m;
        m = retain__v1__message_delivered__unpack (NULL, event->payload.len, event->payload.data);
        if (!m)
            return s_refused (self, event, "the payload is no MessageDelivered");
        rc = s_receipt_status (self, db, event, m->message_id, m->read ? "read" : "delivered",
                               m->delivered_at);
        retain__v1__message_delivered__free_unpacked (m, NULL);
    } else {
        Retain__V1__MessageFailed *m;
        m = retain__v1__message_failed__unpack (NULL, event->payload.len, event->payload.data);
        if (!m)
            return s_refused (self, event, "the payload is no MessageFailed");
        rc = s_receipt_status (self, db, event, m->message_id, "failed", 0);
        retain__v1__message_failed__free_unpacked (m, NULL);
    }
    return rc;
}

/* The statements, registered once per handle (rt_db prepares them again
 * after every reconnection). A registration that fails half-way would
 * leave some unregistered for good: the daemon stops (exit 1) rather than
 * run on without them, and its supervisor starts it again. */
static int
s_prepare (handler_t *self, rt_db_t *db)
{
    char err[256];
    if (self->prepared == db)
        return 0;
    self->prepared = db;
    if (rt_outbox_prepare (db) != 0) {
        rt_errf (err, sizeof err, "%s", rt_db_error (db));
        goto fatal;
    }
    if (identity_prepare (db, err, sizeof err) != 0 || routing_prepare (db, err, sizeof err) != 0 ||
        card_prepare (db, err, sizeof err) != 0)
        goto fatal;
    return 0;
fatal:
    rt_log (RT_LOG_ERROR, "the consumer's statements were not prepared", rt_log_str ("error", err));
    self->fatal = true;
    rt_signal_request_stop ();
    return -1;
}

void
handler_init (handler_t *self, rt_metrics_t *metrics, const char *default_country)
{
    memset (self, 0, sizeof *self);
    self->metrics = metrics;
    self->default_country = default_country;
}

int
handler_batch (rt_db_t *db, const Retain__V1__Envelope *const *events, size_t n, void *arg)
{
    handler_t *self = arg;
    size_t i = 0;
    if (self->fatal || s_prepare (self, db) != 0)
        return -1;
    while (i < n) {
        size_t j = i;
        while (j < n && events[j]->type && strcmp (events[j]->type, "InboundMessage") == 0)
            j++;
        if (j > i) {
            if (s_inbound_run (self, db, events + i, j - i) != 0)
                return -1;
            i = j;
            continue;
        }
        if (handler_handle (db, events[i], arg) != 0)
            return -1;
        i++;
    }
    return 0;
}

int
handler_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    handler_t *self = arg;
    const char *type = event->type ? event->type : "";
    if (self->fatal || s_prepare (self, db) != 0)
        return -1;
    if (strcmp (type, "InboundMessage") == 0)
        return s_inbound (self, db, event);
    if (strcmp (type, "OrderPlaced") == 0)
        return s_order (self, db, event);
    if (strcmp (type, "CustomerUpserted") == 0)
        return s_customer (self, db, event);
    if (strcmp (type, "MessageDelivered") == 0 || strcmp (type, "MessageFailed") == 0)
        return s_receipt (self, db, event);
    if (card_takes (type))
        return s_card (self, db, event);
    s_count (self, "retain_router_skipped_total", "events of types routerd does not take", type);
    return 0;
}
