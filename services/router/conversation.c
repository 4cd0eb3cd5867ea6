/*
 * conversation: a customer's one open conversation, its timeline and its
 * statuses (routing.h has the rules).
 *
 * routing_inbound's steps:
 *   1. the event id already in the timeline: a replay, nothing changes;
 *   2. a message or a missed call finds or opens the customer's
 *      conversation in one statement (INSERT ... ON CONFLICT on the partial
 *      unique index: a second replica opening one for the same customer
 *      waits for the first and takes its row); any other event only finds
 *      the open one;
 *   3. the timeline entry, claimed by its event id (ON CONFLICT DO
 *      NOTHING: a replay racing this one adds nothing and changes no
 *      counter, since the counters move only after the claim);
 *   4. the counters, the reply channel, the status (pending and snoozed
 *      reopen);
 *   5. assignment of an open conversation nobody has (assign.c).
 * The conversation's row is locked from step 2 on, so one conversation's
 * events apply one after another whichever replica handles them. A call
 * the shop makes (any step, direction outbound) first closes the
 * customer's open call-backs for that number, before step 2, since it
 * closes them even when no conversation is open.
 *
 * Call-backs done and counted, and the customer's orders, are entries of
 * the same timeline kept apart in events.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reply.h"
#include "retain/v1/message.pb-c.h"
#include "routing.h"
#include "routing_int.h"
#include "rt_attachment.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_uuid.h"
#include "sla_store.h"

#define S_CONV_OPEN    "routing_conv_open"
#define S_CONV_CURRENT "routing_conv_current"
#define S_CONV_INBOUND "routing_conv_inbound"
#define S_CONV_GET     "routing_conv_get"
#define S_CHANNEL_USED "routing_channel_used"
#define S_ANSWERED     "routing_conv_answered"
#define S_OUTBOUND_OF  "routing_outbound_of"
#define S_RESOLVE      "routing_conv_resolve"
#define S_STATUS       "routing_conv_status"
#define S_OPEN_OTHER   "routing_conv_open_other"
#define S_REOPEN       "routing_conv_reopen"
#define S_MERGED_OF    "routing_conv_merged_of"
#define S_CB_CALLED    "routing_callback_called"
#define S_ORDERS_EARLY "routing_orders_earlier"

/* A new conversation's context: the customer's orders of the last
 * S_EARLIER_DAYS, at most S_EARLIER_MAX, oldest first (the order events
 * that came while the customer had no conversation had nowhere to go). */
#define S_EARLIER_DAYS "30"
#define S_EARLIER_MAX  "5"

/* S_CONV_INBOUND's times: the message's ($4) and now ($5). */
#define S_TS4 ROUTING_TS (4)
#define S_TS5 ROUTING_TS (5)

const routing_stmt_t routing_conversation_stmts[] = {
    {ROUTING_EVENT_FIND, "SELECT t.conversation_id, COALESCE(t.channel, ''), c.customer_id,"
                         " COALESCE(c.assignee, ''), c.unanswered FROM routing.timeline t"
                         " JOIN routing.conversations c ON c.id = t.conversation_id"
                         " WHERE t.event_id = $1::uuid"},
    /* DO UPDATE rather than DO NOTHING: it waits for another replica's
     * uncommitted conversation and returns it, locked. A new conversation
     * takes the inbox's team, else its customer's manager's, and is born
     * waiting for the message that opens it ($8 its instant): what
     * S_CONV_INBOUND does to one that exists, without a second write of
     * the row and its eight indexes. */
    {S_CONV_OPEN,
     "INSERT INTO routing.conversations (id, customer_id, channel, inbox, team_id, language,"
     " created_at, queued_since, unanswered, waiting_since, last_inbound_at)"
     " VALUES ($1::uuid, $2::uuid, $3, $4, COALESCE($5,"
     " (SELECT o.team_id FROM crm.customers cu JOIN routing.operators o ON o.id = cu.manager"
     " WHERE cu.id = $2::uuid)), $6, " ROUTING_TS (7) ", " ROUTING_TS (7) ", 1, " ROUTING_TS (
         8) ", " ROUTING_TS (8) ")"
                                " ON CONFLICT (customer_id) WHERE status <> 'resolved'"
                                " DO UPDATE SET version = routing.conversations.version"
                                " RETURNING id, id = $1::uuid"},
    {S_CONV_CURRENT, "SELECT id FROM routing.conversations WHERE customer_id = $1::uuid"
                     " AND status <> 'resolved' FOR UPDATE"},
    /* One customer's messages on two channels are keyed apart and can be
     * handled out of their order (on two replicas): the wait starts at the
     * oldest waiting message, and the reply channel is the newest's. */
    {S_CONV_INBOUND,
     "UPDATE routing.conversations SET status = 'open', snoozed_until = NULL,"
     " channel = CASE WHEN last_inbound_at > " S_TS4 " THEN channel ELSE $2 END,"
     " inbox = CASE WHEN last_inbound_at > " S_TS4 " THEN inbox ELSE $3 END,"
     " unanswered = unanswered + 1, waiting_since = LEAST(waiting_since, " S_TS4 "),"
     " last_inbound_at = GREATEST(last_inbound_at, " S_TS4 "),"
     " queued_since = CASE WHEN assignee IS NULL THEN COALESCE(queued_since, " S_TS5 ")"
     " END WHERE id = $1::uuid RETURNING COALESCE(assignee, ''), unanswered"},
    {S_CONV_GET, "SELECT customer_id, status, channel, COALESCE(assignee, ''), unanswered"
                 " FROM routing.conversations WHERE id = $1::uuid FOR UPDATE"},
    /* A channel the customer used: one they have an identity on (merges
     * move those), or wrote on in any of their conversations. */
    {S_CHANNEL_USED,
     "SELECT EXISTS (SELECT 1 FROM crm.identities WHERE customer_id = $1::uuid AND channel = $2)"
     " OR EXISTS (SELECT 1 FROM routing.timeline t JOIN routing.conversations c"
     " ON c.id = t.conversation_id WHERE c.customer_id = $1::uuid"
     " AND t.kind IN ('inbound', 'call_back') AND t.channel = $2)"},
    {S_ANSWERED,
     "UPDATE routing.conversations SET unanswered = 0, waiting_since = NULL,"
     " last_outbound_at = GREATEST(last_outbound_at, " ROUTING_TS (2) ")"
                                                                      " WHERE id = $1::uuid"},
    {S_OUTBOUND_OF, "SELECT conversation_id FROM routing.timeline WHERE event_id = $1::uuid"
                    " AND kind = 'outbound'"},
    {S_RESOLVE, "UPDATE routing.conversations SET status = 'resolved', resolved_at = " ROUTING_TS (
                    2) ", snoozed_until = NULL, queued_since = NULL, manager_until = NULL"
                       " WHERE id = $1::uuid"},
    {S_STATUS,
     "UPDATE routing.conversations SET status = $2, snoozed_until = " ROUTING_TS (
         3) ","
            " queued_since = CASE WHEN $2 = 'open' AND assignee IS NULL"
            " THEN COALESCE(queued_since, waiting_since, " ROUTING_TS (4) ") END"
                                                                          " WHERE id = $1::uuid"},
    {S_OPEN_OTHER, "SELECT 1 FROM routing.conversations WHERE customer_id = $1::uuid"
                   " AND status <> 'resolved' AND id <> $2::uuid"},
    /* Reopened resolved: assigned afresh (the manager first, as ever). */
    {S_REOPEN, "UPDATE routing.conversations SET status = 'open', resolved_at = NULL,"
               " assignee = NULL, queued_since = " ROUTING_TS (
                   2) ", manager_until = NULL,"
                      " version = version + 1 WHERE id = $1::uuid"},
    {S_MERGED_OF, "SELECT merged_into FROM routing.conversations WHERE id = $1::uuid"
                  " AND merged_into IS NOT NULL"},
    /* An outbound call to the customer: their call-backs for that number
     * (or for no number; or all, when the call names none) are done. */
    {S_CB_CALLED,
     "UPDATE routing.timeline t SET done_at = " ROUTING_TS (
         3) ", done_event = $4::uuid"
            " FROM routing.conversations c WHERE c.id = t.conversation_id"
            " AND c.customer_id = $1::uuid AND t.kind = 'call_back' AND t.done_at IS NULL"
            " AND ($2::text IS NULL OR t.body->>'number' IS NULL OR t.body->>'number' = $2)"},
    /* $1 new conversations, $2 their customers, $3 now. Not counted:
     * nobody waits for an answer to an order. */
    {S_ORDERS_EARLY,
     "INSERT INTO routing.timeline (conversation_id, kind, body, occurred_at)"
     " SELECT u.conv, 'order', jsonb_build_object('order_id', o.order_id, 'placed_at',"
     " (extract(epoch FROM o.placed_at) * 1000)::bigint, 'status', o.status, 'earlier', true),"
     " o.placed_at FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS u(conv, customer, ord)"
     " CROSS JOIN LATERAL (SELECT order_id, placed_at, status FROM crm.card_orders"
     " WHERE customer_id IN (SELECT crm.family(u.customer)) AND placed_at IS NOT NULL"
     " AND placed_at >= " ROUTING_TS (3) " - interval '" S_EARLIER_DAYS " days'"
                                         " ORDER BY placed_at DESC LIMIT " S_EARLIER_MAX
                                         ") o ORDER BY u.ord, o.placed_at, o.order_id"},
};
const size_t routing_conversation_nstmts =
    sizeof routing_conversation_stmts / sizeof routing_conversation_stmts[0];

/* A conversation as S_CONV_GET reads it (locked). */
typedef struct {
    char customer[ROUTING_ID_LEN + 1]; /* its customer */
    char status[16];                   /* open, pending, snoozed, resolved */
    char channel[32];                  /* the reply channel's name */
    char assignee[ROUTING_OP_MAX + 1]; /* "" for none */
    int unanswered;                    /* the counter */
} s_conv_t;

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

/* Reads and locks a conversation: 1, 0 when there is none, -1. */
static int
s_conv_get (rt_db_t *db, const char *id, s_conv_t *c, char *err, size_t errlen)
{
    const char *v[1] = {id};
    PGresult *res = routing_exec (db, S_CONV_GET, 1, v, err, errlen);
    int found;
    if (!res)
        return -1;
    found = PQntuples (res) > 0;
    if (found) {
        s_copy (c->customer, sizeof c->customer, PQgetvalue (res, 0, 0));
        s_copy (c->status, sizeof c->status, PQgetvalue (res, 0, 1));
        s_copy (c->channel, sizeof c->channel, PQgetvalue (res, 0, 2));
        s_copy (c->assignee, sizeof c->assignee, PQgetvalue (res, 0, 3));
        c->unanswered = atoi (PQgetvalue (res, 0, 4));
    }
    PQclear (res);
    return found;
}

/* A JSON object's text from pairs of (key, string or NULL), ending with a
 * NULL key; NULL values are left out. Owned, NULL when out of memory. */
static char *
s_body (const char *key, ...)
{
    json_t *j = json_object ();
    va_list ap;
    char *out;

    if (!j)
        return NULL;
    va_start (ap, key);
    while (key) {
        const char *value = va_arg (ap, const char *);
        if (value)
            json_object_set_new (j, key, json_string (value));
        key = va_arg (ap, const char *);
    }
    va_end (ap);
    out = json_dumps (j, JSON_COMPACT);
    json_decref (j);
    return out;
}

/* An outbound entry's body: {"text", "message_id", "attachments"?: [{kind,
 * url, name?, mime_type?}], "reply_to"?: the entry it answers,
 * "visibility"?: "public" or "private" when that is a comment}. Owned,
 * NULL when out of memory. */
static char *
s_outbound_body (const routing_outbound_t *in)
{
    json_t *j =
        json_pack ("{s:s, s:s}", "text", in->text ? in->text : "", "message_id", in->message_id);
    json_t *list = in->n_attachments ? json_array () : NULL;
    char *out;
    if (j && routing_set (in->reply_to) &&
        (json_object_set_new (j, "reply_to", json_string (in->reply_to)) != 0 ||
         (in->reply_origin &&
          json_object_set_new (j, "visibility",
                               json_string (in->public_reply ? "public" : "private")) != 0))) {
        json_decref (list);
        json_decref (j);
        return NULL;
    }
    for (size_t i = 0; j && list && i < in->n_attachments; i++) {
        const routing_attachment_t *a = &in->attachments[i];
        json_t *o = rt_attachment_json (a->kind, a->url, a->name, a->mime_type);
        if (!o || json_array_append_new (list, o) != 0) {
            json_decref (list);
            json_decref (j);
            return NULL;
        }
    }
    if (j && list && json_object_set_new (j, "attachments", list) != 0) {
        json_decref (j);
        return NULL;
    }
    out = j ? json_dumps (j, JSON_COMPACT) : NULL;
    json_decref (j);
    return out;
}

char *
routing_inbound_body (const routing_inbound_t *in)
{
    return s_body ("text", in->text ? in->text : "", "event",
                   routing_set (in->event) ? in->event : NULL, "external_id",
                   routing_set (in->external_id) ? in->external_id : NULL, "inbox",
                   in->inbox ? in->inbox : "", "edited", in->edited ? "true" : NULL, "number",
                   routing_set (in->call_number) ? in->call_number : NULL, NULL);
}

int
routing_orders_earlier (rt_db_t *db, const char *const *conv, const char *const *customer, size_t n,
                        int64_t now, char *err, size_t errlen)
{
    rt_buf_t a[2] = {{0}};
    routing_ms_t ts = routing_ms (now);
    int rc = -1;
    if (!rt_buf_array_of (&a[0], conv, n) || !rt_buf_array_of (&a[1], customer, n)) {
        rt_errf (err, errlen, "earlier orders: out of memory");
    } else {
        const char *v[3] = {a[0].data, a[1].data, ts.s};
        rc = routing_run (db, S_ORDERS_EARLY, 3, v, err, errlen);
    }
    rt_buf_free (&a[0]);
    rt_buf_free (&a[1]);
    return rc;
}

/* A status entry in the timeline. */
static int
s_status_entry (rt_db_t *db, const char *conv, const char *status, const char *from, const char *by,
                const char *why, int64_t now, char *err, size_t errlen)
{
    char *body = s_body ("status", status, "from", from, "why", why, NULL);
    int rc;
    if (!body) {
        rt_errf (err, errlen, "status entry: out of memory");
        return -1;
    }
    rc = routing_timeline_add (db, conv, "status", NULL, NULL, false, by, body, now, NULL, err,
                               errlen);
    free (body);
    return rc;
}

/* Whether an event is a call the shop made (any step of it). */
static bool
s_outbound_call (const routing_inbound_t *in)
{
    return in->event && strncmp (in->event, "call_", 5) == 0 && in->call_direction &&
           strcmp (in->call_direction, "outbound") == 0;
}

/* Whether an inbound event counts as waiting for an answer, and its
 * timeline kind. A missed call the shop made (the customer did not pick
 * up) asks nothing of anyone. */
static bool
s_counts (const routing_inbound_t *in, const char **kind)
{
    const char *ev = in->event ? in->event : "";
    *kind = "inbound";
    if (strcmp (ev, "call_missed") == 0 && !s_outbound_call (in)) {
        *kind = "call_back";
        return true;
    }
    return !in->edited && (*ev == '\0' || strcmp (ev, "message") == 0);
}

bool
routing_inbound_batchable (const routing_inbound_t *in)
{
    const char *kind;
    return routing_id_ok (in->customer_id) && routing_id_ok (in->event_id) &&
           rt_channel_by_value (in->channel) && s_counts (in, &kind) &&
           strcmp (kind, "inbound") == 0 && !s_outbound_call (in) && !routing_set (in->team_id) &&
           !routing_set (in->language) && !routing_set (in->call_number);
}

/* Fills a replay's result from ROUTING_EVENT_FIND's row. */
static void
s_replay (PGresult *res, routing_inbound_result_t *out)
{
    out->replay = true;
    s_copy (out->conversation_id, sizeof out->conversation_id, PQgetvalue (res, 0, 0));
    s_copy (out->assignee, sizeof out->assignee, PQgetvalue (res, 0, 3));
    out->unanswered = atoi (PQgetvalue (res, 0, 4));
}

/* Step 2: the conversation the event goes to, locked, into out
 * (conversation_id "" when a quiet event has none). */
static int
s_find_or_open (rt_db_t *db, const routing_inbound_t *in, const char *channel, bool counts,
                int64_t now, int64_t at, routing_inbound_result_t *out, char *err, size_t errlen)
{
    PGresult *res;
    if (counts) {
        rt_uuid_t uuid = rt_uuid_v7 ();
        char fresh[ROUTING_ID_LEN + 1], lang[16];
        routing_ms_t ts = routing_ms (now), ts_at = routing_ms (at);
        size_t n;
        rt_uuid_format (&uuid, fresh);
        /* The language's primary tag: "uk-UA" wants an operator who speaks "uk". */
        s_copy (lang, sizeof lang, in->language);
        n = strcspn (lang, "-_");
        lang[n] = '\0';
        {
            const char *v[8] = {fresh,
                                in->customer_id,
                                channel,
                                in->inbox ? in->inbox : "",
                                routing_set (in->team_id) ? in->team_id : NULL,
                                *lang ? lang : NULL,
                                ts.s,
                                ts_at.s};
            res = routing_exec (db, S_CONV_OPEN, 8, v, err, errlen);
        }
        if (!res)
            return -1;
        s_copy (out->conversation_id, sizeof out->conversation_id, PQgetvalue (res, 0, 0));
        out->is_new = strcmp (PQgetvalue (res, 0, 1), "t") == 0;
        PQclear (res);
        return 0;
    }
    {
        const char *v[1] = {in->customer_id};
        res = routing_exec (db, S_CONV_CURRENT, 1, v, err, errlen);
    }
    if (!res)
        return -1;
    if (PQntuples (res) > 0)
        s_copy (out->conversation_id, sizeof out->conversation_id, PQgetvalue (res, 0, 0));
    PQclear (res);
    return 0;
}

routing_status_t
routing_inbound (rt_db_t *db, const routing_inbound_t *in, routing_inbound_result_t *out, char *err,
                 size_t errlen)
{
    const rt_channel_t *ch = rt_channel_by_value (in->channel);
    int64_t now = rt_clock_now_ms ();
    int64_t at = in->occurred_at > 0 ? in->occurred_at : now;
    const char *kind;
    bool counts = s_counts (in, &kind), added, oom;
    char *body, *origin;
    PGresult *res;

    memset (out, 0, sizeof *out);
    if (!routing_id_ok (in->customer_id) || !routing_id_ok (in->event_id) || !ch) {
        rt_errf (err, errlen, "an inbound event needs a customer id, an event id and a channel");
        return ROUTING_ERR_INVALID;
    }
    {
        const char *v[1] = {in->event_id};
        res = routing_exec (db, ROUTING_EVENT_FIND, 1, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    if (PQntuples (res) > 0) {
        s_replay (res, out);
        PQclear (res);
        return ROUTING_OK;
    }
    PQclear (res);

    if (s_outbound_call (in)) {
        routing_ms_t ts_at = routing_ms (at);
        const char *v[4] = {in->customer_id, routing_set (in->call_number) ? in->call_number : NULL,
                            ts_at.s, in->event_id};
        if (routing_run (db, S_CB_CALLED, 4, v, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    if (s_find_or_open (db, in, ch->name, counts, now, at, out, err, errlen) != 0)
        return ROUTING_ERR_DB;
    if (!*out->conversation_id)
        return ROUTING_OK;
    if (out->is_new) {
        const char *conv = out->conversation_id, *customer = in->customer_id;
        if (routing_orders_earlier (db, &conv, &customer, 1, now, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    body = routing_inbound_body (in);
    if (!body) {
        rt_errf (err, errlen, "inbound entry: out of memory");
        return ROUTING_ERR_DB;
    }
    origin = reply_origin_json (in->origin, &oom);
    if (oom) {
        free (body);
        rt_errf (err, errlen, "inbound entry: out of memory");
        return ROUTING_ERR_DB;
    }
    if (routing_timeline_add_origin (db, out->conversation_id, kind, in->event_id, ch->name, counts,
                                     NULL, body, origin, at, &added, err, errlen) != 0) {
        free (body);
        free (origin);
        return ROUTING_ERR_DB;
    }
    free (body);
    free (origin);
    if (!added) {
        /* Another transaction recorded this event meanwhile. */
        out->replay = true;
        return ROUTING_OK;
    }
    if (!counts) {
        s_conv_t c;
        if (s_conv_get (db, out->conversation_id, &c, err, errlen) < 0)
            return ROUTING_ERR_DB;
        s_copy (out->assignee, sizeof out->assignee, c.assignee);
        out->unanswered = c.unanswered;
        return ROUTING_OK;
    }
    out->counted = true;
    if (out->is_new) {
        /* Born counting this message (S_CONV_OPEN): nobody else can have
         * recorded it, the row being this transaction's alone. */
        out->unanswered = 1;
    } else {
        routing_ms_t ts_at = routing_ms (at), ts_now = routing_ms (now);
        const char *v[5] = {out->conversation_id, ch->name, in->inbox ? in->inbox : "", ts_at.s,
                            ts_now.s};
        res = routing_exec (db, S_CONV_INBOUND, 5, v, err, errlen);
        if (!res)
            return ROUTING_ERR_DB;
        s_copy (out->assignee, sizeof out->assignee, PQgetvalue (res, 0, 0));
        out->unanswered = atoi (PQgetvalue (res, 0, 1));
        PQclear (res);
    }
    if (!*out->assignee) {
        routing_assign_result_t a;
        if (routing_assign (db, out->conversation_id, NULL, false, ROUTING_REASON_NONE, now, &a,
                            err, errlen) != 0)
            return ROUTING_ERR_DB;
        s_copy (out->assignee, sizeof out->assignee, a.assignee);
        out->reason = a.reason;
        out->waiting_for_manager = a.waiting_for_manager;
    }
    /* After the assignment: a new customer's conversation has its team
     * only once assigned, and the team picks the SLA policy. */
    if (routing_sla_inbound (db, out->conversation_id, out->is_new, out->unanswered, at, now, err,
                             errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}

routing_status_t
routing_outbound (rt_db_t *db, const routing_outbound_t *in, routing_outbound_result_t *out,
                  char *err, size_t errlen)
{
    int64_t now = rt_clock_now_ms ();
    const rt_channel_t *ch;
    s_conv_t c;
    PGresult *res;
    char *body;
    bool added;
    int found;

    memset (out, 0, sizeof *out);
    if (!routing_id_ok (in->conversation_id) || !routing_id_ok (in->message_id) ||
        !routing_set (in->operator_id) || (!routing_set (in->text) && in->n_attachments == 0) ||
        in->n_attachments > RT_ATTACHMENTS_MAX) {
        rt_errf (err, errlen,
                 "a reply needs a conversation, a message id, an operator and text or "
                 "attachments (at most %d)",
                 RT_ATTACHMENTS_MAX);
        return ROUTING_ERR_INVALID;
    }
    found = s_conv_get (db, in->conversation_id, &c, err, errlen);
    if (found < 0)
        return ROUTING_ERR_DB;
    if (found == 0) {
        rt_errf (err, errlen, "no conversation %s", in->conversation_id);
        return ROUTING_ERR_NOT_FOUND;
    }
    s_copy (out->customer_id, sizeof out->customer_id, c.customer);
    {
        const char *v[1] = {in->message_id};
        res = routing_exec (db, ROUTING_EVENT_FIND, 1, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    if (PQntuples (res) > 0) {
        /* A retried request: 202 again, nothing new. */
        ch = rt_channel_by_name (PQgetvalue (res, 0, 1));
        out->replay = true;
        out->channel = ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
        PQclear (res);
        return ROUTING_OK;
    }
    PQclear (res);
    if (strcmp (c.status, "resolved") == 0) {
        rt_errf (err, errlen, "conversation %s is resolved: reopen it first", in->conversation_id);
        return ROUTING_ERR_STATE;
    }
    if (in->channel == RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
        ch = rt_channel_by_name (c.channel);
    } else {
        bool used;
        ch = rt_channel_by_value (in->channel);
        if (!ch) {
            rt_errf (err, errlen, "unknown channel %d", (int)in->channel);
            return ROUTING_ERR_INVALID;
        }
        {
            const char *v[2] = {c.customer, ch->name};
            res = routing_exec (db, S_CHANNEL_USED, 2, v, err, errlen);
        }
        if (!res)
            return ROUTING_ERR_DB;
        used = strcmp (PQgetvalue (res, 0, 0), "t") == 0;
        PQclear (res);
        if (!used) {
            rt_errf (err, errlen, "the customer never wrote on %s", ch->name);
            return ROUTING_ERR_CHANNEL;
        }
    }
    if (!ch) {
        rt_errf (err, errlen, "conversation %s has no known reply channel (%s)",
                 in->conversation_id, c.channel);
        return ROUTING_ERR_CHANNEL;
    }
    out->channel = ch->value;
    body = s_outbound_body (in);
    if (!body) {
        rt_errf (err, errlen, "outbound entry: out of memory");
        return ROUTING_ERR_DB;
    }
    if (routing_timeline_add (db, in->conversation_id, "outbound", in->message_id, ch->name, false,
                              in->operator_id, body, now, &added, err, errlen) != 0) {
        free (body);
        return ROUTING_ERR_DB;
    }
    free (body);
    if (!added) {
        out->replay = true;
        return ROUTING_OK;
    }
    {
        routing_ms_t ts = routing_ms (now);
        const char *v[2] = {in->conversation_id, ts.s};
        if (routing_run (db, S_ANSWERED, 2, v, err, errlen) != 0 ||
            routing_sla_answered (db, in->conversation_id, now, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    return ROUTING_OK;
}

routing_status_t
routing_outbound_emit (rt_db_t *db, const routing_outbound_t *in,
                       const routing_outbound_result_t *res, char *err, size_t errlen)
{
    Retain__V1__OutboundMessageRequested msg = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    Retain__V1__Attachment atts[RT_ATTACHMENTS_MAX], *attp[RT_ATTACHMENTS_MAX];
    char id[ROUTING_ID_LEN + 1];

    if (res->replay)
        return ROUTING_OK;
    if (in->n_attachments > RT_ATTACHMENTS_MAX) {
        rt_errf (err, errlen, "at most %d attachments", RT_ATTACHMENTS_MAX);
        return ROUTING_ERR_INVALID;
    }
    for (size_t i = 0; i < in->n_attachments; i++) {
        const routing_attachment_t *a = &in->attachments[i];
        retain__v1__attachment__init (&atts[i]);
        atts[i].kind = (char *)a->kind;
        atts[i].url = (char *)a->url;
        if (a->name)
            atts[i].name = (char *)a->name;
        if (a->mime_type)
            atts[i].mime_type = (char *)a->mime_type;
        attp[i] = &atts[i];
    }
    msg.n_attachments = in->n_attachments;
    msg.attachments = in->n_attachments ? attp : NULL;
    s_copy (id, sizeof id, in->message_id);
    msg.message_id = id;
    msg.customer_id = (char *)res->customer_id;
    msg.channel = res->channel;
    msg.conversation_id = (char *)in->conversation_id;
    msg.text = (char *)(in->text ? in->text : "");
    msg.operator_id = (char *)in->operator_id;
    msg.reply_to = (Retain__V1__Origin *)in->reply_origin;
    msg.public_reply = in->reply_origin && in->public_reply;
    /* Keyed by customer, as InboundMessage is once known: one customer's
     * messages keep their order on the bus. */
    if (routing_emit (db, "OutboundMessageRequested", res->customer_id, &msg.base, id, err,
                      errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}

routing_status_t
routing_note (rt_db_t *db, const char *conversation_id, const char *operator_id,
              const char *event_id, const char *text, char *err, size_t errlen)
{
    s_conv_t c;
    char *body;
    int found, rc;

    if (!routing_id_ok (conversation_id) || !routing_set (operator_id) || !routing_set (text) ||
        (routing_set (event_id) && !routing_id_ok (event_id))) {
        rt_errf (err, errlen, "a note needs a conversation, an operator and text");
        return ROUTING_ERR_INVALID;
    }
    found = s_conv_get (db, conversation_id, &c, err, errlen);
    if (found <= 0) {
        if (found == 0)
            rt_errf (err, errlen, "no conversation %s", conversation_id);
        return found < 0 ? ROUTING_ERR_DB : ROUTING_ERR_NOT_FOUND;
    }
    body = s_body ("text", text, NULL);
    if (!body) {
        rt_errf (err, errlen, "note: out of memory");
        return ROUTING_ERR_DB;
    }
    rc = routing_timeline_add (db, conversation_id, "note",
                               routing_set (event_id) ? event_id : NULL, NULL, false, operator_id,
                               body, rt_clock_now_ms (), NULL, err, errlen);
    free (body);
    return rc == 0 ? ROUTING_OK : ROUTING_ERR_DB;
}

routing_status_t
routing_receipt (rt_db_t *db, const char *event_id, const char *message_id, const char *status,
                 int64_t occurred_at, bool *found, char *err, size_t errlen)
{
    char conv[ROUTING_ID_LEN + 1], *body;
    PGresult *res;
    int rc;

    *found = false;
    if (!routing_id_ok (event_id) || !routing_id_ok (message_id) || !routing_set (status)) {
        rt_errf (err, errlen, "a receipt needs an event id, a message id and a status");
        return ROUTING_ERR_INVALID;
    }
    {
        const char *v[1] = {message_id};
        res = routing_exec (db, S_OUTBOUND_OF, 1, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    if (PQntuples (res) == 0) {
        PQclear (res);
        return ROUTING_OK;
    }
    s_copy (conv, sizeof conv, PQgetvalue (res, 0, 0));
    PQclear (res);
    *found = true;
    body = s_body ("message_id", message_id, "status", status, NULL);
    if (!body) {
        rt_errf (err, errlen, "receipt: out of memory");
        return ROUTING_ERR_DB;
    }
    rc = routing_timeline_add (db, conv, "receipt", event_id, NULL, false, NULL, body,
                               occurred_at > 0 ? occurred_at : rt_clock_now_ms (), NULL, err,
                               errlen);
    free (body);
    return rc == 0 ? ROUTING_OK : ROUTING_ERR_DB;
}

int
routing_resolve_at (rt_db_t *db, const char *conv, const char *by, const char *why, int64_t now,
                    char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    s_conv_t c;
    int found = s_conv_get (db, conv, &c, err, errlen);

    if (found <= 0) {
        if (found == 0)
            rt_errf (err, errlen, "no conversation %s", conv);
        return -1;
    }
    if (strcmp (c.status, "resolved") == 0)
        return 0;
    {
        const char *v[2] = {conv, ts.s};
        if (routing_run (db, S_RESOLVE, 2, v, err, errlen) != 0 ||
            routing_sla_resolved (db, conv, now, err, errlen) != 0)
            return -1;
    }
    if (s_status_entry (db, conv, "resolved", c.status, by, why, now, err, errlen) != 0)
        return -1;
    /* Their room is free: the queue's oldest they may take is theirs. */
    if (*c.assignee && (routing_release (db, c.assignee, err, errlen) != 0 ||
                        routing_hand_out (db, c.assignee, now, NULL, err, errlen) != 0))
        return -1;
    return 0;
}

/* The common head of the status calls: a valid id of a conversation that
 * exists, read and locked into c. */
static routing_status_t
s_status_begin (rt_db_t *db, const char *conv, s_conv_t *c, char *err, size_t errlen)
{
    int found;
    if (!routing_id_ok (conv)) {
        rt_errf (err, errlen, "not a conversation id");
        return ROUTING_ERR_INVALID;
    }
    found = s_conv_get (db, conv, c, err, errlen);
    if (found < 0)
        return ROUTING_ERR_DB;
    if (found == 0) {
        rt_errf (err, errlen, "no conversation %s", conv);
        return ROUTING_ERR_NOT_FOUND;
    }
    return ROUTING_OK;
}

routing_status_t
routing_resolve (rt_db_t *db, const char *conv, const char *by, char *err, size_t errlen)
{
    s_conv_t c;
    routing_status_t st = s_status_begin (db, conv, &c, err, errlen);
    if (st != ROUTING_OK)
        return st;
    return routing_resolve_at (db, conv, by, NULL, rt_clock_now_ms (), err, errlen) == 0
               ? ROUTING_OK
               : ROUTING_ERR_DB;
}

/* Sets pending or snoozed (until > 0) on a conversation that is not
 * resolved. */
static routing_status_t
s_hold (rt_db_t *db, const char *conv, const char *status, int64_t until, const char *by, char *err,
        size_t errlen)
{
    int64_t now = rt_clock_now_ms ();
    routing_ms_t ts_until = routing_ms (until), ts_now = routing_ms (now);
    s_conv_t c;
    routing_status_t st = s_status_begin (db, conv, &c, err, errlen);

    if (st != ROUTING_OK)
        return st;
    if (strcmp (c.status, "resolved") == 0) {
        rt_errf (err, errlen, "conversation %s is resolved", conv);
        return ROUTING_ERR_STATE;
    }
    {
        const char *v[4] = {conv, status, until > 0 ? ts_until.s : NULL, ts_now.s};
        if (routing_run (db, S_STATUS, 4, v, err, errlen) != 0 ||
            routing_sla_pause (db, conv, now, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    if (s_status_entry (db, conv, status, c.status, by, NULL, now, err, errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}

routing_status_t
routing_snooze (rt_db_t *db, const char *conv, int64_t until, const char *by, char *err,
                size_t errlen)
{
    if (until <= rt_clock_now_ms ()) {
        rt_errf (err, errlen, "a snooze ends in the future");
        return ROUTING_ERR_INVALID;
    }
    return s_hold (db, conv, "snoozed", until, by, err, errlen);
}

routing_status_t
routing_pending (rt_db_t *db, const char *conv, const char *by, char *err, size_t errlen)
{
    return s_hold (db, conv, "pending", 0, by, err, errlen);
}

routing_status_t
routing_reopen (rt_db_t *db, const char *conv, const char *by, char *err, size_t errlen)
{
    int64_t now = rt_clock_now_ms ();
    routing_ms_t ts = routing_ms (now);
    routing_assign_result_t a;
    s_conv_t c;
    routing_status_t st = s_status_begin (db, conv, &c, err, errlen);

    if (st != ROUTING_OK)
        return st;
    if (strcmp (c.status, "open") == 0)
        return ROUTING_OK;
    if (strcmp (c.status, "resolved") == 0) {
        const char *v[2] = {c.customer, conv};
        PGresult *res = routing_exec (db, S_MERGED_OF, 1, v + 1, err, errlen);
        bool other;
        if (!res)
            return ROUTING_ERR_DB;
        if (PQntuples (res) > 0) {
            rt_errf (err, errlen, "conversation %s was merged into %s: reopen that one", conv,
                     PQgetvalue (res, 0, 0));
            PQclear (res);
            return ROUTING_ERR_STATE;
        }
        PQclear (res);
        res = routing_exec (db, S_OPEN_OTHER, 2, v, err, errlen);
        if (!res)
            return ROUTING_ERR_DB;
        other = PQntuples (res) > 0;
        PQclear (res);
        if (other) {
            rt_errf (err, errlen, "the customer has another open conversation");
            return ROUTING_ERR_STATE;
        }
        {
            const char *w[2] = {conv, ts.s};
            if (routing_run (db, S_REOPEN, 2, w, err, errlen) != 0)
                return ROUTING_ERR_DB;
        }
    } else {
        const char *v[4] = {conv, "open", NULL, ts.s};
        if (routing_run (db, S_STATUS, 4, v, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    if (s_status_entry (db, conv, "open", c.status, by, NULL, now, err, errlen) != 0 ||
        routing_sla_reopened (db, conv, strcmp (c.status, "resolved") == 0, now, err, errlen) != 0)
        return ROUTING_ERR_DB;
    if (routing_assign (db, conv, NULL, false, ROUTING_REASON_NONE, now, &a, err, errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}
