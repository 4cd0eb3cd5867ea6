/*
 * card: the customer card's projection (card.h has the contract; the
 * tables and their guards are in sql/crm/002_card.sql).
 *
 * Every apply goes: claim the event by envelope id (a replay stops here),
 * find whose card it is (the order's or parcel's owner when the card
 * knows it, else identity_resolve on the event's customer id), then one
 * upsert whose WHERE keeps a newer fact against an older event. Times
 * are the event's own (placed_at, changed_at, ...) and the envelope's
 * occurred_at where the message has none, so replays and late arrivals
 * agree whatever order the bus gave them.
 *
 * The card is read as one statement that builds the JSON in PostgreSQL
 * (json_build_object keeps every string as stored, in any script), over
 * crm.family, so a merged customer's rows show on their survivor's card.
 */
#include "card.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_uuid.h"

#define S_CLAIM        "card_claim"
#define S_ORDER_OWNER  "card_order_owner"
#define S_SHIP_OWNER   "card_shipment_owner"
#define S_PLACED       "card_order_placed"
#define S_PAID         "card_order_paid"
#define S_SHIPPED      "card_order_shipped"
#define S_SHIP_OPEN    "card_shipment_open"
#define S_CANCELLED    "card_order_cancelled"
#define S_REFUNDED     "card_order_refunded"
#define S_SHIP_STATUS  "card_shipment_status"
#define S_SHIP_DELAYED "card_shipment_delayed"
#define S_POINTS       "card_points"
#define S_TIER         "card_tier"
#define S_RISK         "card_risk"
#define S_FEEDBACK     "card_feedback"
#define S_READ         "card_read"

/* Times are unix ms ($n::bigint through crm.from_ms); NULL for none. An
 * upsert's WHERE is its guard: the row changes only when the event's time
 * is not older than the one it holds. Blank text columns take what an
 * event says; filled ones keep theirs (COALESCE(NULLIF(...))). */
/* clang-format off */
static const struct {
    const char *name; /* the statement's name */
    const char *sql;  /* its text */
} s_stmts[] = {
    {S_CLAIM,
     "INSERT INTO crm.card_events (event_id, type) VALUES ($1, $2)"
     " ON CONFLICT DO NOTHING RETURNING 1"},
    {S_ORDER_OWNER,
     "SELECT crm.root(customer_id) FROM crm.card_orders WHERE order_id = $1"},
    {S_SHIP_OWNER,
     "SELECT crm.root(customer_id) FROM crm.card_shipments WHERE shipment_id = $1"},
    /* $1 order, $2 customer, $3 total, $4 currency, $5 channel, $6 placed_at. */
    {S_PLACED,
     "INSERT INTO crm.card_orders AS o (order_id, customer_id, total_minor, currency, channel,"
     " placed_at) VALUES ($1, $2::uuid, $3::bigint, $4, $5, crm.from_ms($6::bigint))"
     " ON CONFLICT (order_id) DO UPDATE SET total_minor = EXCLUDED.total_minor,"
     " currency = EXCLUDED.currency, channel = EXCLUDED.channel,"
     " placed_at = EXCLUDED.placed_at, updated_at = now()"
     " WHERE o.placed_at IS NULL OR o.placed_at <= EXCLUDED.placed_at"},
    /* $1 order, $2 customer, $3 paid_at, $4 amount, $5 currency, $6 method. */
    {S_PAID,
     "INSERT INTO crm.card_orders AS o (order_id, customer_id, paid_at, paid_minor, currency,"
     " payment_method) VALUES ($1, $2::uuid, crm.from_ms($3::bigint), $4::bigint, $5, $6)"
     " ON CONFLICT (order_id) DO UPDATE SET paid_at = EXCLUDED.paid_at,"
     " paid_minor = EXCLUDED.paid_minor, payment_method = EXCLUDED.payment_method,"
     " currency = COALESCE(NULLIF(o.currency, ''), EXCLUDED.currency), updated_at = now()"
     " WHERE o.paid_at IS NULL OR o.paid_at <= EXCLUDED.paid_at"},
    /* $1 order, $2 customer, $3 shipped_at, $4 promised_by. */
    {S_SHIPPED,
     "INSERT INTO crm.card_orders AS o (order_id, customer_id, shipped_at, promised_by)"
     " VALUES ($1, $2::uuid, crm.from_ms($3::bigint), crm.from_ms($4::bigint))"
     " ON CONFLICT (order_id) DO UPDATE SET shipped_at = EXCLUDED.shipped_at,"
     " promised_by = COALESCE(EXCLUDED.promised_by, o.promised_by), updated_at = now()"
     " WHERE o.shipped_at IS NULL OR o.shipped_at <= EXCLUDED.shipped_at"},
    /* The parcel OrderShipped names, its blanks only (the carrier's own
     * events say more). $1 shipment, $2 customer, $3 order, $4 carrier,
     * $5 tracking number. */
    {S_SHIP_OPEN,
     "INSERT INTO crm.card_shipments AS s (shipment_id, customer_id, order_id, carrier,"
     " tracking_number) VALUES ($1, $2::uuid, $3, $4, $5)"
     " ON CONFLICT (shipment_id) DO UPDATE SET"
     " order_id = COALESCE(NULLIF(s.order_id, ''), EXCLUDED.order_id),"
     " carrier = COALESCE(NULLIF(s.carrier, ''), EXCLUDED.carrier),"
     " tracking_number = COALESCE(NULLIF(s.tracking_number, ''), EXCLUDED.tracking_number),"
     " updated_at = now()"},
    /* $1 order, $2 customer, $3 cancelled_at, $4 reason. */
    {S_CANCELLED,
     "INSERT INTO crm.card_orders AS o (order_id, customer_id, cancelled_at, cancel_reason)"
     " VALUES ($1, $2::uuid, crm.from_ms($3::bigint), $4)"
     " ON CONFLICT (order_id) DO UPDATE SET cancelled_at = EXCLUDED.cancelled_at,"
     " cancel_reason = EXCLUDED.cancel_reason, updated_at = now()"
     " WHERE o.cancelled_at IS NULL OR o.cancelled_at <= EXCLUDED.cancelled_at"},
    /* $1 order, $2 customer, $3 refunded_at, $4 amount, $5 currency, $6 reason. */
    {S_REFUNDED,
     "INSERT INTO crm.card_orders AS o (order_id, customer_id, refunded_at, refunded_minor,"
     " currency, refund_reason) VALUES ($1, $2::uuid, crm.from_ms($3::bigint), $4::bigint, $5,"
     " $6)"
     " ON CONFLICT (order_id) DO UPDATE SET refunded_at = EXCLUDED.refunded_at,"
     " refunded_minor = EXCLUDED.refunded_minor, refund_reason = EXCLUDED.refund_reason,"
     " currency = COALESCE(NULLIF(o.currency, ''), EXCLUDED.currency), updated_at = now()"
     " WHERE o.refunded_at IS NULL OR o.refunded_at <= EXCLUDED.refunded_at"},
    /* $1 shipment, $2 customer, $3 order, $4 carrier, $5 tracking number,
     * $6 status (NULL: none said), $7 carrier status, $8 location,
     * $9 changed_at, $10 estimated delivery. */
    {S_SHIP_STATUS,
     "INSERT INTO crm.card_shipments AS s (shipment_id, customer_id, order_id, carrier,"
     " tracking_number, status, carrier_status, location, status_at, estimated_delivery)"
     " VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, crm.from_ms($9::bigint),"
     " crm.from_ms($10::bigint))"
     " ON CONFLICT (shipment_id) DO UPDATE SET status = COALESCE(EXCLUDED.status, s.status),"
     " carrier_status = EXCLUDED.carrier_status, location = EXCLUDED.location,"
     " status_at = EXCLUDED.status_at,"
     " estimated_delivery = COALESCE(EXCLUDED.estimated_delivery, s.estimated_delivery),"
     " order_id = COALESCE(NULLIF(s.order_id, ''), EXCLUDED.order_id),"
     " carrier = COALESCE(NULLIF(s.carrier, ''), EXCLUDED.carrier),"
     " tracking_number = COALESCE(NULLIF(s.tracking_number, ''), EXCLUDED.tracking_number),"
     " updated_at = now()"
     " WHERE s.status_at IS NULL OR s.status_at <= EXCLUDED.status_at"},
    /* $1 shipment, $2 customer, $3 order, $4 carrier, $5 tracking number,
     * $6 promised_by, $7 estimated delivery, $8 delay_ms, $9 reason,
     * $10 the event's time. */
    {S_SHIP_DELAYED,
     "INSERT INTO crm.card_shipments AS s (shipment_id, customer_id, order_id, carrier,"
     " tracking_number, promised_by, estimated_delivery, delayed, delay_ms, delay_reason,"
     " delayed_at) VALUES ($1, $2::uuid, $3, $4, $5, crm.from_ms($6::bigint),"
     " crm.from_ms($7::bigint), true, $8::bigint, $9, crm.from_ms($10::bigint))"
     " ON CONFLICT (shipment_id) DO UPDATE SET delayed = true, delay_ms = EXCLUDED.delay_ms,"
     " delay_reason = EXCLUDED.delay_reason, delayed_at = EXCLUDED.delayed_at,"
     " promised_by = COALESCE(EXCLUDED.promised_by, s.promised_by),"
     " estimated_delivery = COALESCE(EXCLUDED.estimated_delivery, s.estimated_delivery),"
     " order_id = COALESCE(NULLIF(s.order_id, ''), EXCLUDED.order_id),"
     " carrier = COALESCE(NULLIF(s.carrier, ''), EXCLUDED.carrier),"
     " tracking_number = COALESCE(NULLIF(s.tracking_number, ''), EXCLUDED.tracking_number),"
     " updated_at = now()"
     " WHERE s.delayed_at IS NULL OR s.delayed_at <= EXCLUDED.delayed_at"},
    /* $1 customer, $2 balance, $3 the event's time. */
    {S_POINTS,
     "INSERT INTO crm.card_loyalty AS l (customer_id, points, points_at)"
     " VALUES ($1::uuid, $2::bigint, crm.from_ms($3::bigint))"
     " ON CONFLICT (customer_id) DO UPDATE SET points = EXCLUDED.points,"
     " points_at = EXCLUDED.points_at, updated_at = now()"
     " WHERE l.points_at IS NULL OR l.points_at <= EXCLUDED.points_at"},
    /* $1 customer, $2 tier, $3 discount, $4 the event's time. */
    {S_TIER,
     "INSERT INTO crm.card_loyalty AS l (customer_id, tier, discount_percent, tier_at)"
     " VALUES ($1::uuid, $2, $3::integer, crm.from_ms($4::bigint))"
     " ON CONFLICT (customer_id) DO UPDATE SET tier = EXCLUDED.tier,"
     " discount_percent = EXCLUDED.discount_percent, tier_at = EXCLUDED.tier_at,"
     " updated_at = now()"
     " WHERE l.tier_at IS NULL OR l.tier_at <= EXCLUDED.tier_at"},
    /* $1 customer, $2 risk, $3 p_alive, $4 segment, $5 the event's time. */
    {S_RISK,
     "INSERT INTO crm.card_loyalty AS l (customer_id, risk, p_alive, segment, risk_at)"
     " VALUES ($1::uuid, $2, $3::double precision, $4, crm.from_ms($5::bigint))"
     " ON CONFLICT (customer_id) DO UPDATE SET risk = EXCLUDED.risk,"
     " p_alive = EXCLUDED.p_alive, segment = EXCLUDED.segment, risk_at = EXCLUDED.risk_at,"
     " updated_at = now()"
     " WHERE l.risk_at IS NULL OR l.risk_at <= EXCLUDED.risk_at"},
    /* $1 event, $2 customer, $3 kind, $4 score, $5 comment,
     * $6 conversation, $7 order, $8 channel, $9 the event's time. */
    {S_FEEDBACK,
     "INSERT INTO crm.card_feedback (event_id, customer_id, kind, score, comment,"
     " conversation_id, order_id, channel, received_at)"
     " VALUES ($1, $2::uuid, $3, $4::integer, $5, $6, $7, $8, crm.from_ms($9::bigint))"
     " ON CONFLICT (event_id) DO NOTHING"},
    /* The card of $1's survivor, over the survivor's family. */
    {S_READ,
     "WITH me AS (SELECT crm.root($1::uuid) AS id),"
     " fam AS (SELECT crm.family(me.id) AS id FROM me)"
     " SELECT json_build_object("
     "  'id', r.id, 'requested_id', $1::uuid,"
     "  'merged_into', CASE WHEN r.id <> $1::uuid THEN r.id END,"
     "  'shop_customer_id', r.shop_customer_id,"
     "  'profile', json_build_object('name', r.name,"
     "   'birthday', to_char(r.birthday, 'YYYY-MM-DD'), 'locale', r.locale,"
     "   'time_zone', r.time_zone, 'preferred_channel', NULLIF(r.preferred_channel, ''),"
     "   'notes', r.notes, 'manager', r.manager),"
     "  'created_at', crm.iso(r.created_at), 'updated_at', crm.iso(r.updated_at),"
     "  'identities', COALESCE((SELECT json_agg(json_build_object('channel', i.channel,"
     "   'inbox', i.inbox, 'external_user_id', i.external_user_id,"
     "   'first_seen', crm.iso(i.first_seen), 'last_seen', crm.iso(i.last_seen))"
     "   ORDER BY i.first_seen, i.channel, i.inbox, i.external_user_id)"
     "   FROM crm.identities i WHERE i.customer_id = r.id), '[]'::json),"
     "  'contact_points', COALESCE((SELECT json_agg(json_build_object('kind', p.kind,"
     "   'value', p.value, 'proven', p.proven, 'source', p.proven_by,"
     "   'created_at', crm.iso(p.created_at))"
     "   ORDER BY p.kind, p.proven DESC, p.created_at, p.value)"
     "   FROM crm.contact_points p WHERE p.customer_id = r.id), '[]'::json),"
     "  'orders_count', (SELECT count(*) FROM crm.card_orders o"
     "   WHERE o.customer_id IN (SELECT id FROM fam)),"
     "  'orders', COALESCE((SELECT json_agg(x.j ORDER BY x.n) FROM (SELECT json_build_object("
     "   'order_id', o.order_id, 'customer_id', o.customer_id, 'status', o.status,"
     "   'total', CASE WHEN o.total_minor IS NULL THEN NULL ELSE json_build_object("
     "    'amount_minor', o.total_minor, 'currency', o.currency) END,"
     "   'paid', CASE WHEN o.paid_minor IS NULL THEN NULL ELSE json_build_object("
     "    'amount_minor', o.paid_minor, 'currency', o.currency) END,"
     "   'refunded', CASE WHEN o.refunded_minor IS NULL THEN NULL ELSE json_build_object("
     "    'amount_minor', o.refunded_minor, 'currency', o.currency) END,"
     "   'channel', NULLIF(o.channel, ''), 'payment_method', NULLIF(o.payment_method, ''),"
     "   'placed_at', crm.iso(o.placed_at), 'paid_at', crm.iso(o.paid_at),"
     "   'shipped_at', crm.iso(o.shipped_at), 'promised_by', crm.iso(o.promised_by),"
     "   'cancelled_at', crm.iso(o.cancelled_at),"
     "   'cancel_reason', NULLIF(o.cancel_reason, ''),"
     "   'refunded_at', crm.iso(o.refunded_at),"
     "   'refund_reason', NULLIF(o.refund_reason, '')) AS j,"
     "   row_number() OVER (ORDER BY o.at DESC NULLS LAST, o.order_id) AS n"
     "   FROM crm.card_orders o WHERE o.customer_id IN (SELECT id FROM fam)"
     "   ORDER BY n LIMIT 20) x), '[]'::json),"
     "  'shipments', COALESCE((SELECT json_agg(x.j ORDER BY x.n) FROM (SELECT json_build_object("
     "   'shipment_id', s.shipment_id, 'customer_id', s.customer_id,"
     "   'order_id', NULLIF(s.order_id, ''), 'carrier', s.carrier,"
     "   'tracking_number', s.tracking_number, 'status', s.status,"
     "   'carrier_status', NULLIF(s.carrier_status, ''), 'location', NULLIF(s.location, ''),"
     "   'status_at', crm.iso(s.status_at), 'estimated_delivery', crm.iso(s.estimated_delivery),"
     "   'promised_by', crm.iso(s.promised_by), 'delayed', s.delayed, 'delay_ms', s.delay_ms,"
     "   'delay_reason', NULLIF(s.delay_reason, ''), 'updated_at', crm.iso(s.updated_at)) AS j,"
     "   row_number() OVER (ORDER BY s.updated_at DESC, s.shipment_id) AS n"
     "   FROM crm.card_shipments s WHERE s.customer_id IN (SELECT id FROM fam)"
     "   ORDER BY n LIMIT 20) x), '[]'::json),"
     /* The card's own customer's loyalty first: loyaltyd scores the
      * survivor once it learns of the merge. */
     "  'loyalty', COALESCE((SELECT json_build_object('points', l.points, 'tier', l.tier,"
     "   'discount_percent', l.discount_percent, 'churn', CASE WHEN l.risk_at IS NULL"
     "   THEN NULL ELSE json_build_object('risk', NULLIF(l.risk, ''), 'p_alive', l.p_alive,"
     "   'segment', NULLIF(l.segment, ''), 'at', crm.iso(l.risk_at)) END)"
     "   FROM crm.card_loyalty l WHERE l.customer_id IN (SELECT id FROM fam)"
     "   ORDER BY l.customer_id = r.id DESC, l.updated_at DESC LIMIT 1),"
     "   json_build_object('points', NULL, 'tier', NULL, 'discount_percent', NULL,"
     "   'churn', NULL)),"
     "  'feedback', COALESCE((SELECT json_agg(x.j ORDER BY x.n) FROM (SELECT json_build_object("
     "   'kind', f.kind, 'score', f.score, 'comment', f.comment,"
     "   'order_id', NULLIF(f.order_id, ''), 'conversation_id', NULLIF(f.conversation_id, ''),"
     "   'channel', NULLIF(f.channel, ''), 'at', crm.iso(f.received_at)) AS j,"
     "   row_number() OVER (ORDER BY f.received_at DESC, f.event_id) AS n"
     "   FROM crm.card_feedback f WHERE f.customer_id IN (SELECT id FROM fam)"
     "   ORDER BY n LIMIT 20) x), '[]'::json),"
     "  'suggestions', COALESCE((SELECT json_agg(json_build_object('id', g.id,"
     "   'candidate_id', CASE WHEN g.customer_id = r.id THEN g.candidate_id"
     "   ELSE g.customer_id END, 'evidence', g.evidence, 'created_at', crm.iso(g.created_at))"
     "   ORDER BY g.created_at, g.id) FROM crm.merge_suggestions g"
     "   WHERE g.resolved_at IS NULL AND r.id IN (g.customer_id, g.candidate_id)), '[]'::json),"
     "  'merges', COALESCE((SELECT json_agg(x.j ORDER BY x.n) FROM (SELECT json_build_object("
     "   'id', m.id, 'survivor', m.survivor, 'absorbed', m.absorbed, 'by', m.by_operator,"
     "   'reason', m.reason, 'created_at', crm.iso(m.created_at),"
     "   'undone_at', crm.iso(m.undone_at), 'undone_by', m.undone_by) AS j,"
     "   row_number() OVER (ORDER BY m.created_at DESC, m.id) AS n"
     "   FROM crm.merges m WHERE r.id IN (m.survivor, m.absorbed)"
     "   ORDER BY n LIMIT 20) x), '[]'::json)"
     " )::text FROM crm.customers r, me WHERE r.id = me.id"},
};
/* clang-format on */
#define S_NSTMTS (sizeof s_stmts / sizeof s_stmts[0])

/* --- helpers --- */

static bool
s_set (const char *s)
{
    return s && *s;
}

/* Whether text is a canonical UUID (a retain id; anything else an event
 * names its customer by is the shop's id). */
static bool
s_is_id (const char *text)
{
    rt_uuid_t id;
    return text && strlen (text) == RT_UUID_STR_LEN && rt_uuid_parse (text, &id) == 0;
}

/* A number as a statement's parameter. */
static const char *
s_i64 (char buf[24], int64_t v)
{
    snprintf (buf, 24, "%" PRId64, v);
    return buf;
}

/* A time as a parameter: the message's own when it has one, else the
 * envelope's, else now. */
static const char *
s_at (char buf[24], int64_t own, const Retain__V1__Envelope *env)
{
    if (own > 0)
        return s_i64 (buf, own);
    if (env->occurred_at > 0)
        return s_i64 (buf, env->occurred_at);
    return s_i64 (buf, rt_clock_now_ms ());
}

/* A time that may be unknown (0): NULL then. */
static const char *
s_maybe (char buf[24], int64_t v)
{
    return v > 0 ? s_i64 (buf, v) : NULL;
}

/* Runs a statement; the result (owned), or NULL with err filled. */
static PGresult *
s_exec (rt_db_t *db, const char *name, int n, const char *const *v, char *err, size_t errlen)
{
    PGresult *res = rt_db_exec_prepared (db, name, n, v, NULL, NULL, 0);
    if (!res)
        rt_errf (err, errlen, "%s: %s", name, rt_db_error (db));
    return res;
}

static card_status_t
s_run (rt_db_t *db, const char *name, int n, const char *const *v, char *err, size_t errlen)
{
    PGresult *res = s_exec (db, name, n, v, err, errlen);
    if (!res)
        return CARD_ERR_DB;
    PQclear (res);
    return CARD_TAKEN;
}

/* Claims the event: CARD_TAKEN the first time, CARD_REPLAYED after. */
static card_status_t
s_claim (rt_db_t *db, const Retain__V1__Envelope *env, char *err, size_t errlen)
{
    const char *v[2] = {env->id ? env->id : "", env->type ? env->type : ""};
    PGresult *res;
    bool first;
    if (!s_set (env->id)) {
        rt_errf (err, errlen, "an event without an id");
        return CARD_NO_CUSTOMER;
    }
    res = s_exec (db, S_CLAIM, 2, v, err, errlen);
    if (!res)
        return CARD_ERR_DB;
    first = PQntuples (res) == 1;
    PQclear (res);
    return first ? CARD_TAKEN : CARD_REPLAYED;
}

/* The survivor owning the order or parcel `id` through statement stmt
 * into out; 1 when the card knows it, 0 when not, -1 on error. */
static int
s_owner (rt_db_t *db, const char *stmt, const char *id, card_result_t *out, char *err,
         size_t errlen)
{
    const char *v[1] = {id};
    PGresult *res;
    int found;
    if (!s_set (id))
        return 0;
    res = s_exec (db, stmt, 1, v, err, errlen);
    if (!res)
        return -1;
    found = PQntuples (res) == 1 && !PQgetisnull (res, 0, 0);
    if (found)
        snprintf (out->customer_id, sizeof out->customer_id, "%s", PQgetvalue (res, 0, 0));
    PQclear (res);
    return found;
}

/* The customer an event's customer_id names, through identity: a retain
 * id, else the shop's id (handler.c reads OrderPlaced's the same way). */
static card_status_t
s_resolve (rt_db_t *db, const char *named, card_result_t *out, char *err, size_t errlen)
{
    identity_input_t in = {0};
    identity_result_t who;
    identity_status_t st;
    if (!s_set (named)) {
        rt_errf (err, errlen, "the event names no customer");
        return CARD_NO_CUSTOMER;
    }
    if (s_is_id (named))
        in.customer_id = named;
    else
        in.shop_customer_id = named;
    st = identity_resolve (db, &in, &who, err, errlen);
    if (st == IDENTITY_ERR_DB)
        return CARD_ERR_DB;
    if (st != IDENTITY_OK)
        return CARD_NO_CUSTOMER;
    snprintf (out->customer_id, sizeof out->customer_id, "%s", who.customer_id);
    out->is_new = who.is_new;
    return CARD_TAKEN;
}

/* Whose card: the owner the card knows of the entity (statement stmt on
 * id, may be NULL), else the event's customer, else the order's owner. */
static card_status_t
s_whose (rt_db_t *db, const char *stmt, const char *id, const char *named, const char *order_id,
         card_result_t *out, char *err, size_t errlen)
{
    int found = stmt ? s_owner (db, stmt, id, out, err, errlen) : 0;
    if (found != 0)
        return found > 0 ? CARD_TAKEN : CARD_ERR_DB;
    if (s_set (named))
        return s_resolve (db, named, out, err, errlen);
    found = s_owner (db, S_ORDER_OWNER, order_id, out, err, errlen);
    if (found != 0)
        return found > 0 ? CARD_TAKEN : CARD_ERR_DB;
    rt_errf (err, errlen, "the event names no customer, and no order the card knows");
    return CARD_NO_CUSTOMER;
}

/* The claim and the owner, the steps every apply but OrderPlaced's
 * starts with. */
static card_status_t
s_begin (rt_db_t *db, const Retain__V1__Envelope *env, const char *stmt, const char *id,
         const char *named, const char *order_id, card_result_t *out, char *err, size_t errlen)
{
    card_status_t st;
    memset (out, 0, sizeof *out);
    st = s_claim (db, env, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    return s_whose (db, stmt, id, named, order_id, out, err, errlen);
}

/* A ShipmentStatus as the card stores it ("in_transit"); NULL for
 * unspecified or a value this build does not know. */
static const char *
s_status_name (Retain__V1__ShipmentStatus status, char *buf, size_t buflen)
{
    const ProtobufCEnumValue *v;
    size_t i;
    if (status == RETAIN__V1__SHIPMENT_STATUS__SHIPMENT_STATUS_UNSPECIFIED)
        return NULL;
    v = protobuf_c_enum_descriptor_get_value (&retain__v1__shipment_status__descriptor,
                                              (int)status);
    if (!v)
        return NULL;
    for (i = 0; v->name[i] && i + 1 < buflen; i++)
        buf[i] = (char)tolower ((unsigned char)v->name[i]);
    buf[i] = '\0';
    return buf;
}

static const char *
s_str (const char *s)
{
    return s ? s : "";
}

/* --- the contract --- */

int
card_prepare (rt_db_t *db, char *err, size_t errlen)
{
    size_t i;
    for (i = 0; i < S_NSTMTS; i++) {
        if (rt_db_prepare (db, s_stmts[i].name, s_stmts[i].sql) != 0) {
            rt_errf (err, errlen, "preparing %s: %s", s_stmts[i].name, rt_db_error (db));
            return -1;
        }
    }
    return 0;
}

card_status_t
card_apply_order_placed (rt_db_t *db, const Retain__V1__OrderPlaced *m,
                         const Retain__V1__Envelope *env, const char *customer_id, char *err,
                         size_t errlen)
{
    char total[24], at[24];
    const char *v[6];
    card_status_t st;
    if (!s_set (m->order_id)) {
        rt_errf (err, errlen, "an order without an id");
        return CARD_NO_CUSTOMER;
    }
    st = s_claim (db, env, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    v[0] = m->order_id;
    v[1] = customer_id;
    v[2] = m->total ? s_i64 (total, m->total->amount_minor) : NULL;
    v[3] = m->total ? s_str (m->total->currency) : "";
    v[4] =
        m->channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED ? rt_channel_name (m->channel) : "";
    v[5] = s_at (at, m->placed_at, env);
    return s_run (db, S_PLACED, 6, v, err, errlen);
}

/* The start of an order's later step: the order named, the event taken
 * once, the order's owner found (card_result_t.customer_id). */
static card_status_t
s_order_begin (rt_db_t *db, const Retain__V1__Envelope *env, const char *order_id,
               const char *customer_id, card_result_t *out, char *err, size_t errlen)
{
    if (!s_set (order_id)) {
        rt_errf (err, errlen, "an order without an id");
        return CARD_NO_CUSTOMER;
    }
    return s_begin (db, env, S_ORDER_OWNER, order_id, customer_id, NULL, out, err, errlen);
}

card_status_t
card_apply_order_paid (rt_db_t *db, const Retain__V1__OrderPaid *m, const Retain__V1__Envelope *env,
                       card_result_t *out, char *err, size_t errlen)
{
    char amount[24], at[24];
    card_status_t st;
    st = s_order_begin (db, env, m->order_id, m->customer_id, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[6] = {m->order_id,
                            out->customer_id,
                            s_at (at, m->paid_at, env),
                            m->amount ? s_i64 (amount, m->amount->amount_minor) : NULL,
                            m->amount ? s_str (m->amount->currency) : "",
                            s_str (m->method)};
        return s_run (db, S_PAID, 6, v, err, errlen);
    }
}

card_status_t
card_apply_order_shipped (rt_db_t *db, const Retain__V1__OrderShipped *m,
                          const Retain__V1__Envelope *env, card_result_t *out, char *err,
                          size_t errlen)
{
    char at[24], promised[24];
    card_status_t st;
    st = s_order_begin (db, env, m->order_id, m->customer_id, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[4] = {m->order_id, out->customer_id, s_at (at, m->shipped_at, env),
                            s_maybe (promised, m->promised_by)};
        st = s_run (db, S_SHIPPED, 4, v, err, errlen);
    }
    if (st != CARD_TAKEN || !s_set (m->shipment_id))
        return st;
    {
        /* The parcel keeps the customer it was first written for. */
        card_result_t owner = {0};
        int known = s_owner (db, S_SHIP_OWNER, m->shipment_id, &owner, err, errlen);
        const char *v[5] = {m->shipment_id, known > 0 ? owner.customer_id : out->customer_id,
                            m->order_id, s_str (m->carrier), s_str (m->tracking_number)};
        if (known < 0)
            return CARD_ERR_DB;
        return s_run (db, S_SHIP_OPEN, 5, v, err, errlen);
    }
}

card_status_t
card_apply_order_cancelled (rt_db_t *db, const Retain__V1__OrderCancelled *m,
                            const Retain__V1__Envelope *env, card_result_t *out, char *err,
                            size_t errlen)
{
    char at[24];
    card_status_t st;
    st = s_order_begin (db, env, m->order_id, m->customer_id, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[4] = {m->order_id, out->customer_id, s_at (at, m->cancelled_at, env),
                            s_str (m->reason)};
        return s_run (db, S_CANCELLED, 4, v, err, errlen);
    }
}

card_status_t
card_apply_order_refunded (rt_db_t *db, const Retain__V1__OrderRefunded *m,
                           const Retain__V1__Envelope *env, card_result_t *out, char *err,
                           size_t errlen)
{
    char amount[24], at[24];
    card_status_t st;
    st = s_order_begin (db, env, m->order_id, m->customer_id, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[6] = {m->order_id,
                            out->customer_id,
                            s_at (at, m->refunded_at, env),
                            m->amount ? s_i64 (amount, m->amount->amount_minor) : NULL,
                            m->amount ? s_str (m->amount->currency) : "",
                            s_str (m->reason)};
        return s_run (db, S_REFUNDED, 6, v, err, errlen);
    }
}

card_status_t
card_apply_shipment_status_changed (rt_db_t *db, const Retain__V1__ShipmentStatusChanged *m,
                                    const Retain__V1__Envelope *env, card_result_t *out, char *err,
                                    size_t errlen)
{
    char at[24], eta[24], status[32];
    card_status_t st;
    if (!s_set (m->shipment_id)) {
        rt_errf (err, errlen, "a shipment without an id");
        return CARD_NO_CUSTOMER;
    }
    st = s_begin (db, env, S_SHIP_OWNER, m->shipment_id, m->customer_id, m->order_id, out, err,
                  errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[10] = {m->shipment_id,
                             out->customer_id,
                             s_str (m->order_id),
                             s_str (m->carrier),
                             s_str (m->tracking_number),
                             s_status_name (m->status, status, sizeof status),
                             s_str (m->carrier_status),
                             s_str (m->location),
                             s_at (at, m->changed_at, env),
                             s_maybe (eta, m->estimated_delivery)};
        return s_run (db, S_SHIP_STATUS, 10, v, err, errlen);
    }
}

card_status_t
card_apply_shipment_delayed (rt_db_t *db, const Retain__V1__ShipmentDelayed *m,
                             const Retain__V1__Envelope *env, card_result_t *out, char *err,
                             size_t errlen)
{
    char promised[24], eta[24], delay[24], at[24];
    card_status_t st;
    if (!s_set (m->shipment_id)) {
        rt_errf (err, errlen, "a shipment without an id");
        return CARD_NO_CUSTOMER;
    }
    st = s_begin (db, env, S_SHIP_OWNER, m->shipment_id, m->customer_id, m->order_id, out, err,
                  errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[10] = {m->shipment_id,
                             out->customer_id,
                             s_str (m->order_id),
                             s_str (m->carrier),
                             s_str (m->tracking_number),
                             s_maybe (promised, m->promised_by),
                             s_maybe (eta, m->estimated_delivery),
                             s_i64 (delay, m->delay_ms),
                             s_str (m->reason),
                             s_at (at, 0, env)};
        return s_run (db, S_SHIP_DELAYED, 10, v, err, errlen);
    }
}

card_status_t
card_apply_points_earned (rt_db_t *db, const Retain__V1__PointsEarned *m,
                          const Retain__V1__Envelope *env, card_result_t *out, char *err,
                          size_t errlen)
{
    char balance[24], at[24];
    card_status_t st = s_begin (db, env, NULL, NULL, m->customer_id, m->order_id, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[3] = {out->customer_id, s_i64 (balance, m->balance), s_at (at, 0, env)};
        return s_run (db, S_POINTS, 3, v, err, errlen);
    }
}

card_status_t
card_apply_tier_changed (rt_db_t *db, const Retain__V1__TierChanged *m,
                         const Retain__V1__Envelope *env, card_result_t *out, char *err,
                         size_t errlen)
{
    char discount[24], at[24];
    card_status_t st = s_begin (db, env, NULL, NULL, m->customer_id, NULL, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[4] = {out->customer_id, s_str (m->tier),
                            s_i64 (discount, m->discount_percent), s_at (at, 0, env)};
        return s_run (db, S_TIER, 4, v, err, errlen);
    }
}

card_status_t
card_apply_churn_risk_changed (rt_db_t *db, const Retain__V1__ChurnRiskChanged *m,
                               const Retain__V1__Envelope *env, card_result_t *out, char *err,
                               size_t errlen)
{
    char p[32], at[24];
    card_status_t st = s_begin (db, env, NULL, NULL, m->customer_id, NULL, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    /* %.17g: a double read back exactly. */
    snprintf (p, sizeof p, "%.17g", m->p_alive);
    {
        const char *v[5] = {out->customer_id, s_str (m->risk), p, s_str (m->segment),
                            s_at (at, 0, env)};
        return s_run (db, S_RISK, 5, v, err, errlen);
    }
}

card_status_t
card_apply_feedback_received (rt_db_t *db, const Retain__V1__FeedbackReceived *m,
                              const Retain__V1__Envelope *env, card_result_t *out, char *err,
                              size_t errlen)
{
    char score[24], at[24];
    card_status_t st = s_begin (db, env, NULL, NULL, m->customer_id, m->order_id, out, err, errlen);
    if (st != CARD_TAKEN)
        return st;
    {
        const char *v[9] = {env->id,
                            out->customer_id,
                            s_str (m->kind),
                            s_i64 (score, m->score),
                            s_str (m->comment),
                            s_str (m->conversation_id),
                            s_str (m->order_id),
                            m->channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED
                                ? rt_channel_name (m->channel)
                                : "",
                            s_at (at, 0, env)};
        return s_run (db, S_FEEDBACK, 9, v, err, errlen);
    }
}

/* card_apply's table: each type, its message and its apply through a
 * common shape (a cast of the applies themselves would call them through
 * a type they do not have). */
typedef card_status_t (*s_apply_fn) (rt_db_t *db, const ProtobufCMessage *m,
                                     const Retain__V1__Envelope *env, card_result_t *out, char *err,
                                     size_t errlen);

#define S_APPLY(fn, type)                                                                          \
    static card_status_t s_##fn (rt_db_t *db, const ProtobufCMessage *m,                           \
                                 const Retain__V1__Envelope *env, card_result_t *out, char *err,   \
                                 size_t errlen)                                                    \
    {                                                                                              \
        return card_apply_##fn (db, (const type *)m, env, out, err, errlen);                       \
    }
S_APPLY (order_paid, Retain__V1__OrderPaid)
S_APPLY (order_shipped, Retain__V1__OrderShipped)
S_APPLY (order_cancelled, Retain__V1__OrderCancelled)
S_APPLY (order_refunded, Retain__V1__OrderRefunded)
S_APPLY (shipment_status_changed, Retain__V1__ShipmentStatusChanged)
S_APPLY (shipment_delayed, Retain__V1__ShipmentDelayed)
S_APPLY (points_earned, Retain__V1__PointsEarned)
S_APPLY (tier_changed, Retain__V1__TierChanged)
S_APPLY (churn_risk_changed, Retain__V1__ChurnRiskChanged)
S_APPLY (feedback_received, Retain__V1__FeedbackReceived)

static const struct {
    const char *type;                       /* the envelope's type */
    const ProtobufCMessageDescriptor *desc; /* its payload's message */
    s_apply_fn fn;                          /* its apply */
} s_applies[] = {
    {"OrderPaid", &retain__v1__order_paid__descriptor, s_order_paid},
    {"OrderShipped", &retain__v1__order_shipped__descriptor, s_order_shipped},
    {"OrderCancelled", &retain__v1__order_cancelled__descriptor, s_order_cancelled},
    {"OrderRefunded", &retain__v1__order_refunded__descriptor, s_order_refunded},
    {"ShipmentStatusChanged", &retain__v1__shipment_status_changed__descriptor,
     s_shipment_status_changed},
    {"ShipmentDelayed", &retain__v1__shipment_delayed__descriptor, s_shipment_delayed},
    {"PointsEarned", &retain__v1__points_earned__descriptor, s_points_earned},
    {"TierChanged", &retain__v1__tier_changed__descriptor, s_tier_changed},
    {"ChurnRiskChanged", &retain__v1__churn_risk_changed__descriptor, s_churn_risk_changed},
    {"FeedbackReceived", &retain__v1__feedback_received__descriptor, s_feedback_received},
};
#define S_NAPPLIES (sizeof s_applies / sizeof s_applies[0])

bool
card_takes (const char *type)
{
    size_t i;
    for (i = 0; type && i < S_NAPPLIES; i++) {
        if (strcmp (s_applies[i].type, type) == 0)
            return true;
    }
    return false;
}

card_status_t
card_apply (rt_db_t *db, const Retain__V1__Envelope *env, card_result_t *out, char *err,
            size_t errlen)
{
    size_t i;
    memset (out, 0, sizeof *out);
    for (i = 0; env->type && i < S_NAPPLIES; i++) {
        ProtobufCMessage *m;
        card_status_t st;
        if (strcmp (s_applies[i].type, env->type) != 0)
            continue;
        m = protobuf_c_message_unpack (s_applies[i].desc, NULL, env->payload.len,
                                       env->payload.data);
        if (!m) {
            rt_errf (err, errlen, "the payload is no %s", s_applies[i].type);
            return CARD_UNREADABLE;
        }
        st = s_applies[i].fn (db, m, env, out, err, errlen);
        protobuf_c_message_free_unpacked (m, NULL);
        return st;
    }
    rt_errf (err, errlen, "the card takes no %s", env->type ? env->type : "(no type)");
    return CARD_UNREADABLE;
}

int
card_read (rt_db_t *db, const char *customer_id, json_t **out, char *err, size_t errlen)
{
    const char *v[1] = {customer_id};
    json_error_t jerr;
    PGresult *res;
    *out = NULL;
    if (!s_is_id (customer_id))
        return 0;
    res = s_exec (db, S_READ, 1, v, err, errlen);
    if (!res)
        return -1;
    if (PQntuples (res) == 1) {
        *out = json_loads (PQgetvalue (res, 0, 0), 0, &jerr);
        if (!*out) {
            rt_errf (err, errlen, "the card does not parse: %s", jerr.text);
            PQclear (res);
            return -1;
        }
    }
    PQclear (res);
    return 0;
}
