/*
 * outcome: what a carrier's answer changes, recorded in one transaction
 * with the events it makes.
 *
 * The verdict of the call (carrier.h) decides for the account first:
 *
 *   OK            each parcel's result is weighed against its stored
 *                 status (below); the account's failure count goes back
 *                 to zero.
 *   RETRY         the account waits a backoff (backoff_ms doubled per
 *                 failure in a row, capped, its later half jittered:
 *                 rt_clock_backoff_ms) and counts a failure; its parcels
 *                 are released, due when the account may call again.
 *   WAIT          the account waits the carrier's Retry-After (else
 *                 wait_default_ms); no failure is counted.
 *   STOP_ACCOUNT  the account is paused with the carrier's words (logged
 *                 as an error, counted in retain_tracker_accounts_paused_total)
 *                 until an operator runs `retainctl carrier resume`; its
 *                 parcels wait, due at once when it resumes. A UPS call
 *                 refused with a cached token drops the token and retries
 *                 instead: the token may have been revoked, and the token
 *                 call that follows is what tells a refused account.
 *   BAD_REQUEST   (one parcel: the poller splits batches) the parcel keeps
 *                 the reason in last_error and is asked again only after
 *                 intervals.bad_ms; counted.
 *
 * A parcel's result, on OK:
 *   - not found: counted in not_found, the status left as it is, asked
 *     again after intervals.fresh_ms (a fresh Nova Poshta waybill is "not
 *     found" until the parcel is handed in); the sweep expires it after 30
 *     days without news.
 *   - a code not in the carrier's table: the raw code and words kept, the
 *     tag left as it was, logged and counted
 *     (retain_tracker_unknown_codes_total{carrier}).
 *   - a mapped status: the move rule (status_may_move) decides; a change
 *     of tag or sub-status is published as ShipmentStatusChanged, and a
 *     tag with an enabled milestone asks notifyd for its message
 *     (NotificationRequested, once per parcel and template: the template
 *     is added to the parcel's milestones in the same statement).
 *   - the carrier's estimate past the promise: ShipmentDelayed
 *     "carrier_estimate_late", once (the reason joins the parcel's delays).
 *   - retain's own estimate (estimate.h), from the lanes delivered parcels
 *     taught (tracking.lanes, the parcel's lane or its fallbacks): kept
 *     with its spread and the chance of missing the promise; above the
 *     risk threshold while the promise is still ahead, ShipmentDelayed
 *     "at_risk", once, before the carrier's own date moves. A parcel
 *     delivered now teaches its lanes its transit time in the same
 *     transaction (tracking.lane_learn).
 *   - every event the answer carried goes to tracking.events, each once
 *     (its unique key), and the next poll is set by the tag
 *     (poll_intervals_t); a final tag ends polling.
 *
 * The fence. The claim stamped the batch with a poll token; the
 * transaction first locks the batch's rows that still carry it. A row that
 * does not (the lease ran out and another worker took it) is left alone,
 * and nothing is said of it: the other worker's answer will be. Whatever
 * is decided is decided from the claim's copy of the row, which the lock
 * guarantees is still the row.
 *
 * Statements: a call of a hundred Nova Poshta parcels costs one lock, one
 * UPDATE over arrays, one INSERT of events over arrays, one outbox insert
 * and the account's update, whatever the batch's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "rt_buf.h"
#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_uuid.h"
#include "estimate.h"
#include "status.h"
#include "trackerd.h"
#include "retain/v1/notification.pb-c.h"
#include "retain/v1/shipment.pb-c.h"

/* The batch's rows still under this claim, locked. */
#define S_FENCE "tracker_outcome_fence"
static const char *s_fence_sql = "SELECT id FROM tracking.shipments"
                                 " WHERE id = ANY($1::text[]) AND poll_token = $2::uuid"
                                 " FOR UPDATE";

/* Every fenced parcel's new state, one array per column. */
#define S_MOVE "tracker_outcome_move"
static const char *s_move_sql =
    "UPDATE tracking.shipments s SET tag = u.tag, sub_status = u.sub, to_sender = u.ret,"
    "  raw_code = u.raw_code, raw_text = u.raw_text,"
    "  location = CASE WHEN u.location <> '' THEN u.location ELSE s.location END,"
    "  status_at = COALESCE(NULLIF(u.status_at, 0), s.status_at),"
    "  carrier_eta = COALESCE(NULLIF(u.eta, 0), s.carrier_eta),"
    "  delivered_at = COALESCE(NULLIF(u.delivered, 0), s.delivered_at),"
    "  storage_until = COALESCE(NULLIF(u.storage, 0), s.storage_until),"
    "  cod_state = CASE WHEN u.cod <> '' THEN u.cod ELSE s.cod_state END,"
    "  origin_city = CASE WHEN s.origin_city = '' THEN u.origin ELSE s.origin_city END,"
    "  destination_city = CASE WHEN s.destination_city = '' THEN u.dest"
    "                          ELSE s.destination_city END,"
    "  news_at = u.news_at, not_found = u.not_found, final = u.final,"
    "  next_poll_at = u.next_poll, delays = u.delays::text[], milestones = u.milestones::text[],"
    "  last_error = u.error, est_at = NULLIF(u.est_at, 0), est_low = NULLIF(u.est_low, 0),"
    "  est_high = NULLIF(u.est_high, 0), risk = CASE WHEN u.risk < 0 THEN NULL ELSE u.risk END,"
    "  poll_token = NULL, updated_at = now()"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[],"
    "             $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],"
    "             $12::text[], $13::text[], $14::text[], $15::bigint[], $16::integer[],"
    "             $17::boolean[], $18::bigint[], $19::text[], $20::text[], $21::text[],"
    "             $22::bigint[], $23::bigint[], $24::bigint[], $25::float8[])"
    "   AS u(id, tag, sub, ret, raw_code, raw_text, location, status_at, eta, delivered,"
    "        storage, cod, origin, dest, news_at, not_found, final, next_poll, delays,"
    "        milestones, error, est_at, est_low, est_high, risk)"
    " WHERE s.id = u.id AND s.poll_token = $26::uuid";

/* The lanes a batch's estimates may use: its cities' and the fallbacks'
 * ('*'). $1 carrier, $2 origins, $3 destinations, each with '*'. */
#define S_LANES "tracker_outcome_lanes"
static const char *s_lanes_sql =
    "SELECT origin, destination, n, mean, m2 FROM tracking.lanes"
    " WHERE carrier = $1 AND origin = ANY($2::text[]) AND destination = ANY($3::text[])";

/* What the batch's deliveries teach their lanes (tracking.lane_learn). */
#define S_LEARN "tracker_outcome_learn"
static const char *s_learn_sql = "SELECT tracking.lane_learn($1, u.o, u.d, u.x)"
                                 " FROM unnest($2::text[], $3::text[], $4::float8[]) AS u(o, d, x)";

/* The answers' events, each once. */
#define S_EVENTS "tracker_outcome_events"
static const char *s_events_sql =
    "INSERT INTO tracking.events (shipment_id, at, code, text, location, tag, sub_status)"
    " SELECT u.id, u.at, u.code, u.text, u.location, NULLIF(u.tag, ''), NULLIF(u.sub, '')"
    "   FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],"
    "               $7::text[]) AS u(id, at, code, text, location, tag, sub)"
    " ON CONFLICT (shipment_id, code, at) DO NOTHING";

/* Parcels handed back unasked, due at $3. */
#define S_RELEASE "tracker_outcome_release"
static const char *s_release_sql =
    "UPDATE tracking.shipments SET poll_token = NULL, next_poll_at = $3::bigint,"
    "  updated_at = now() WHERE id = ANY($1::text[]) AND poll_token = $2::uuid";

/* The account after a good answer. */
#define S_ACC_OK "tracker_outcome_account_ok"
static const char *s_acc_ok_sql =
    "UPDATE tracking.accounts SET failures = 0, updated_at = now() WHERE id = $1 AND failures <> 0";

/* The account waits until $2; $3 adds to its failures. */
#define S_ACC_WAIT "tracker_outcome_account_wait"
static const char *s_acc_wait_sql =
    "UPDATE tracking.accounts SET next_call_at = GREATEST(next_call_at, $2::bigint),"
    "  failures = failures + $3::integer, updated_at = now() WHERE id = $1";

/* The account paused by the carrier's refusal; the first reason stays. */
#define S_ACC_PAUSE "tracker_outcome_account_pause"
static const char *s_acc_pause_sql =
    "UPDATE tracking.accounts SET paused_at = COALESCE(paused_at, $2::bigint),"
    "  paused_reason = COALESCE(paused_reason, $3), access_token = NULL, token_expires = NULL,"
    "  updated_at = now() WHERE id = $1";

/* UPS: the cached token refused, dropped. */
#define S_ACC_UNTOKEN "tracker_outcome_account_untoken"
static const char *s_acc_untoken_sql =
    "UPDATE tracking.accounts SET access_token = NULL, token_expires = NULL, updated_at = now()"
    " WHERE id = $1";

#define S_MILESTONES_SQL "SELECT tag, template FROM tracking.milestones WHERE enabled ORDER BY tag"

/* A delay reason said of this parcel once. */
#define S_ESTIMATE_LATE "carrier_estimate_late"
#define S_AT_RISK       "at_risk"

/* S_MOVE's array columns. */
#define S_MOVE_COLS 25

/* What an answer decided for one fenced parcel. */
typedef struct {
    const parcel_t *p;            /* the claim's row */
    const carrier_result_t *r;    /* the carrier's result, NULL: none (released) */
    tracking_tag_t tag;           /* the status after */
    const char *sub;              /* ... its sub-status */
    bool returning;               /* ... going back */
    tracking_tag_t old_tag;       /* the status before */
    bool changed;                 /* tag or sub-status changed: ShipmentStatusChanged */
    bool news;                    /* the carrier said something new */
    const milestone_t *milestone; /* the milestone reached, NULL: none */
    bool estimate_late;           /* ShipmentDelayed carrier_estimate_late */
    bool has_estimate;            /* est holds retain's own estimate */
    estimate_t est;               /* ... given what is known now */
    bool at_risk;                 /* ShipmentDelayed at_risk */
    bool learn;                   /* delivered now: x teaches its lanes */
    double x;                     /* ... ln(transit hours) */
    const char *origin;           /* the lane's cities: the shop's, else the carrier's */
    const char *destination;      /* */
    int64_t next_poll;            /* when to ask again */
    const char *error;            /* last_error */
} s_decision_t;

int
outcome_prepare (rt_db_t *db)
{
    if (rt_db_prepare (db, S_FENCE, s_fence_sql) != 0 ||
        rt_db_prepare (db, S_MOVE, s_move_sql) != 0 ||
        rt_db_prepare (db, S_EVENTS, s_events_sql) != 0 ||
        rt_db_prepare (db, S_RELEASE, s_release_sql) != 0 ||
        rt_db_prepare (db, S_ACC_OK, s_acc_ok_sql) != 0 ||
        rt_db_prepare (db, S_ACC_WAIT, s_acc_wait_sql) != 0 ||
        rt_db_prepare (db, S_ACC_PAUSE, s_acc_pause_sql) != 0 ||
        rt_db_prepare (db, S_ACC_UNTOKEN, s_acc_untoken_sql) != 0 ||
        rt_db_prepare (db, S_LANES, s_lanes_sql) != 0 ||
        rt_db_prepare (db, S_LEARN, s_learn_sql) != 0)
        return -1;
    return 0;
}

int
outcome_milestones (rt_db_t *db, outcome_config_t *config)
{
    PGresult *r = rt_db_exec_params (db, S_MILESTONES_SQL, 0, NULL);
    int n;
    if (!r)
        return -1;
    n = PQntuples (r);
    config->n_milestones = 0;
    for (int i = 0; i < n && config->n_milestones < TRACKERD_MILESTONES_MAX; i++) {
        milestone_t *m = &config->milestones[config->n_milestones++];
        snprintf (m->tag, sizeof m->tag, "%s", PQgetvalue (r, i, 0));
        snprintf (m->template, sizeof m->template, "%s", PQgetvalue (r, i, 1));
    }
    PQclear (r);
    return config->n_milestones;
}

const milestone_t *
outcome_milestone_find (const outcome_config_t *config, const char *tag)
{
    for (int i = 0; i < config->n_milestones; i++) {
        if (strcmp (config->milestones[i].tag, tag) == 0)
            return &config->milestones[i];
    }
    return NULL;
}

bool
outcome_array_has (const char *literal, const char *word)
{
    size_t wl = strlen (word);
    const char *s = literal;
    /* Elements are retain's own words ([a-z0-9_]): PostgreSQL prints them
     * unquoted, separated by commas inside the braces. */
    while (s && (s = strstr (s, word)) != NULL) {
        char before = s == literal ? '{' : s[-1];
        char after = s[wl];
        if ((before == '{' || before == ',') && (after == '}' || after == ','))
            return true;
        s += wl;
    }
    return false;
}

/* literal with word added, into b as a literal. */
static void
s_array_with (rt_buf_t *b, const char *literal, const char *word)
{
    size_t len = strlen (literal);
    rt_buf_reset (b);
    if (len < 2 || strcmp (literal, "{}") == 0)
        rt_buf_printf (b, "{%s}", word);
    else
        rt_buf_printf (b, "%.*s,%s}", (int)(len - 1), literal, word);
}

void
outcome_link (const outcome_config_t *config, const char *shipment_id, int64_t now_ms, char *out,
              size_t outlen)
{
    char token[RT_SIGNED_TOKEN_MAX];
    size_t idlen = strlen (shipment_id);
    out[0] = '\0';
    if (!config->link_base || !config->link_base[0] || !config->link_keys ||
        idlen > RT_SIGNED_PAYLOAD_MAX)
        return;
    if (rt_signed_make (config->link_keys, "tracking", (now_ms + config->link_ttl_ms) / 1000,
                        (const uint8_t *)shipment_id, idlen, token, sizeof token) < 0)
        return;
    snprintf (out, outlen, "%s%s", config->link_base, token);
}

static void
s_count (const outcome_config_t *config, const char *name, const char *labels, const char *help)
{
    rt_counter_inc (rt_metrics_counter (config->metrics, name, labels, help));
}

static bool
s_is_uuid (const char *s)
{
    rt_uuid_t u;
    return s && rt_uuid_parse (s, &u) == 0;
}

int
outcome_pack_milestone (const outcome_config_t *config, const milestone_t *m, const parcel_t *p,
                        const carrier_t *carrier, int64_t now_ms, ProtobufCBinaryData *out)
{
    Retain__V1__NotificationRequested n = RETAIN__V1__NOTIFICATION_REQUESTED__INIT;
    Retain__V1__NotificationRequested__VariablesEntry e[8];
    Retain__V1__NotificationRequested__VariablesEntry *ep[8];
    char nid[RT_UUID_STR_LEN + 1], name[256], link[512], storage[24], eta[24];
    char err[128];
    rt_uuid_t u;
    size_t k = 0;
    int len;

    out->data = NULL;
    out->len = 0;
    if (!s_is_uuid (p->customer_id)) {
        /* notifyd addresses a customer of crm; a parcel the shop registered
         * without one has nobody to tell. */
        rt_log (RT_LOG_INFO, "a milestone with no customer to tell", rt_log_str ("shipment", p->id),
                rt_log_str ("milestone", m->tag));
        s_count (config, "retain_tracker_milestones_skipped_total", "reason=\"no_customer\"",
                 "milestone messages not asked for, by reason");
        return 0;
    }
    len = snprintf (name, sizeof name, "tracking:%s:%s", p->id, m->template);
    u = rt_uuid_v8_name (name, len > 0 && (size_t)len < sizeof name ? (size_t)len : strlen (name));
    rt_uuid_format (&u, nid);
    outcome_link (config, p->id, now_ms, link, sizeof link);
    snprintf (storage, sizeof storage, "%lld", (long long)p->storage_until);
    snprintf (eta, sizeof eta, "%lld", (long long)p->carrier_eta);
    {
        const char *kv[][2] = {{"shipment_id", p->id},
                               {"order_id", p->order_id},
                               {"tracking_number", p->tracking_number},
                               {"carrier", carrier->display},
                               {"tracking_url", link},
                               {"storage_until", p->storage_until > 0 ? storage : ""},
                               {"estimated_delivery", p->carrier_eta > 0 ? eta : ""}};
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
            if (!kv[i][1][0])
                continue; /* absent, so the template's {{#if}} tells */
            e[k] = (Retain__V1__NotificationRequested__VariablesEntry)
                RETAIN__V1__NOTIFICATION_REQUESTED__VARIABLES_ENTRY__INIT;
            e[k].key = (char *)kv[i][0];
            e[k].value = (char *)kv[i][1];
            ep[k] = &e[k];
            k++;
        }
    }
    n.notification_id = nid;
    n.customer_id = p->customer_id;
    n.template_ = (char *)m->template;
    n.variables = ep;
    n.n_variables = k;
    n.category = "transactional";
    n.correlation = p->id;
    /* A moment's message is worth little late: "out for delivery" by the
     * evening, the others within two days; the storage reminder until the
     * storage ends. */
    n.expires_at = now_ms + (strcmp (m->tag, "OutForDelivery") == 0 ? 12 : 48) * 3600000LL;
    if (strcmp (m->tag, "StorageReminder") == 0 && p->storage_until > now_ms)
        n.expires_at = p->storage_until;
    if (rt_envelope_new_packed ("NotificationRequested", p->customer_id, &n.base, TRACKERD_PRODUCER,
                                out, err, sizeof err) != 0) {
        rt_log (RT_LOG_WARN, "a milestone was not packed", rt_log_str ("error", err));
        return -1;
    }
    return 1;
}

static int
s_pack_changed (const call_t *call, const s_decision_t *d, ProtobufCBinaryData *out, char *err,
                size_t errlen)
{
    Retain__V1__ShipmentStatusChanged m = RETAIN__V1__SHIPMENT_STATUS_CHANGED__INIT;
    const parcel_t *p = d->p;
    const carrier_result_t *r = d->r;
    m.shipment_id = p->id;
    m.order_id = p->order_id;
    m.customer_id = p->customer_id;
    m.carrier = (char *)call->carrier->name;
    m.tracking_number = p->tracking_number;
    m.status = status_tag_proto (d->tag);
    m.previous_status = status_tag_proto (d->old_tag);
    m.carrier_status = r->raw_code;
    m.location = r->location;
    m.changed_at = r->status_at_ms;
    m.estimated_delivery = r->estimated_ms ? r->estimated_ms : p->carrier_eta;
    m.tag = (char *)status_tag_name (d->tag);
    m.sub_status = (char *)d->sub;
    m.previous_tag = p->tag;
    m.previous_sub_status = p->sub_status;
    m.storage_until = r->storage_until_ms ? r->storage_until_ms : p->storage_until;
    return rt_envelope_new_packed ("ShipmentStatusChanged", p->id, &m.base, TRACKERD_PRODUCER, out,
                                   err, errlen);
}

int
outcome_pack_delayed (const parcel_t *p, const carrier_t *carrier, const char *reason,
                      const char *tag, int64_t delay_ms, int64_t estimated_ms, double probability,
                      ProtobufCBinaryData *out, char *err, size_t errlen)
{
    Retain__V1__ShipmentDelayed m = RETAIN__V1__SHIPMENT_DELAYED__INIT;
    m.shipment_id = p->id;
    m.order_id = p->order_id;
    m.customer_id = p->customer_id;
    m.carrier = (char *)carrier->name;
    m.tracking_number = p->tracking_number;
    m.promised_by = p->promised_by;
    m.estimated_delivery = estimated_ms;
    m.delay_ms = delay_ms;
    m.reason = (char *)reason;
    m.probability = probability;
    m.tag = (char *)tag;
    return rt_envelope_new_packed ("ShipmentDelayed", p->id, &m.base, TRACKERD_PRODUCER, out, err,
                                   errlen);
}

/* When a parcel at this tag is asked about again. */
static int64_t
s_interval (const poll_intervals_t *iv, tracking_tag_t tag)
{
    switch (tag) {
    case TAG_PENDING:
    case TAG_INFO_RECEIVED:
        return iv->fresh_ms;
    case TAG_OUT_FOR_DELIVERY:
    case TAG_ATTEMPT_FAIL:
        return iv->near_ms;
    case TAG_AVAILABLE_FOR_PICKUP:
        return iv->pickup_ms;
    default:
        return iv->transit_ms;
    }
}

static tracking_tag_t
s_tag (const char *name)
{
    tracking_tag_t t = TAG_PENDING;
    (void)status_tag_parse (name, &t);
    return t;
}

/* Weighs one found-or-not result against the claim's row. */
static void
s_decide (const outcome_config_t *config, const call_t *call, s_decision_t *d, int64_t now)
{
    const parcel_t *p = d->p;
    const carrier_result_t *r = d->r;
    d->old_tag = s_tag (p->tag);
    d->tag = d->old_tag;
    d->sub = p->sub_status;
    d->returning = p->returning;
    d->error = "";
    if (!r->found) {
        d->next_poll = now + config->intervals.fresh_ms;
        return;
    }
    if (!r->mapped) {
        char labels[64];
        snprintf (labels, sizeof labels, "carrier=\"%s\"", call->carrier->name);
        s_count (config, "retain_tracker_unknown_codes_total", labels,
                 "statuses a carrier gave that its table does not know, kept raw");
        rt_log (RT_LOG_WARN, "a status code not in the carrier's table: kept raw, tag unchanged",
                rt_log_str ("carrier", call->carrier->name), rt_log_str ("shipment", p->id),
                rt_log_str ("code", r->raw_code), rt_log_str ("text", r->raw_text));
    } else if (status_may_move (d->old_tag, p->sub_status, r->tag, r->sub_status)) {
        d->tag = r->tag;
        d->sub = r->sub_status;
        d->returning = r->returning;
    } else {
        rt_log (RT_LOG_INFO, "a stale status after a final one, not applied",
                rt_log_str ("shipment", p->id), rt_log_str ("tag", p->tag),
                rt_log_str ("code", r->raw_code));
    }
    d->changed = d->tag != d->old_tag || strcmp (d->sub, p->sub_status) != 0;
    d->news = d->changed || strcmp (r->raw_code, p->raw_code) != 0 ||
              (r->status_at_ms && r->status_at_ms != p->status_at) || r->n_events > 0;
    if (d->changed) {
        const milestone_t *m = outcome_milestone_find (config, status_tag_name (d->tag));
        if (m && !outcome_array_has (p->milestones, m->template))
            d->milestone = m;
    }
    d->estimate_late = p->promised_by > 0 && r->estimated_ms > p->promised_by &&
                       d->tag != TAG_DELIVERED && !outcome_array_has (p->delays, S_ESTIMATE_LATE);
    d->next_poll = now + s_interval (&config->intervals, d->tag);
    d->origin = p->origin_city[0] ? p->origin_city : r->origin_city;
    d->destination = p->destination_city[0] ? p->destination_city : r->destination_city;
    if (d->tag == TAG_DELIVERED && d->old_tag != TAG_DELIVERED)
        d->learn =
            estimate_sample ((r->delivered_ms ? r->delivered_ms : now) - p->shipped_at, &d->x);
}

/* The learned lanes of a batch, as S_LANES read them. */
typedef struct {
    const PGresult *r; /* the rows */
} s_lanes_t;

/* The lane (origin, destination) of the rows into *out; false when none. */
static bool
s_lane (const s_lanes_t *l, const char *origin, const char *destination, estimate_lane_t *out)
{
    for (int i = 0; l->r && i < PQntuples (l->r); i++) {
        if (strcmp (PQgetvalue (l->r, i, 0), origin) == 0 &&
            strcmp (PQgetvalue (l->r, i, 1), destination) == 0) {
            out->n = strtoll (PQgetvalue (l->r, i, 2), NULL, 10);
            out->mean = strtod (PQgetvalue (l->r, i, 3), NULL);
            out->m2 = strtod (PQgetvalue (l->r, i, 4), NULL);
            return true;
        }
    }
    memset (out, 0, sizeof *out);
    return false;
}

/* retain's own estimate of a parcel still on its way, and whether it is
 * newly at risk of missing the promise. */
static void
s_estimate (const outcome_config_t *config, const s_lanes_t *lanes, s_decision_t *d, int64_t now)
{
    const parcel_t *p = d->p;
    estimate_lane_t exact, to_dest, any;
    const estimate_lane_t *lane;
    const char *o = d->origin && d->origin[0] ? d->origin : "*";
    const char *dest = d->destination && d->destination[0] ? d->destination : "*";
    if (status_tag_final (d->tag))
        return;
    s_lane (lanes, o, dest, &exact);
    s_lane (lanes, "*", dest, &to_dest);
    s_lane (lanes, "*", "*", &any);
    lane = estimate_pick (&exact, &to_dest, &any, ESTIMATE_MIN_SAMPLES);
    if (!lane || estimate_predict (lane, p->shipped_at, now, p->promised_by, config->risk_threshold,
                                   &d->est) != 0)
        return;
    d->has_estimate = true;
    /* The early warning: the promise is still ahead, and nothing has been
     * said of this parcel's being late yet. */
    d->at_risk =
        d->est.at_risk && p->promised_by > now && !outcome_array_has (p->delays, S_AT_RISK);
}

/* The arrays of S_MOVE and S_EVENTS, built over the fenced parcels. */
typedef struct {
    rt_buf_t col[S_MOVE_COLS]; /* S_MOVE's $1..$25 */
    rt_buf_t ev[7];            /* S_EVENTS' $1..$7 */
    size_t n_events;           /* elements in ev */
    rt_buf_t tmp;              /* one literal at a time */
} s_arrays_t;

static void
s_arrays_init (s_arrays_t *a)
{
    memset (a, 0, sizeof *a);
    for (size_t i = 0; i < S_MOVE_COLS; i++) {
        a->col[i] = (rt_buf_t){0};
        rt_buf_array_begin (&a->col[i]);
    }
    for (size_t i = 0; i < 7; i++) {
        a->ev[i] = (rt_buf_t){0};
        rt_buf_array_begin (&a->ev[i]);
    }
    a->tmp = (rt_buf_t){0};
}

static void
s_arrays_free (s_arrays_t *a)
{
    for (size_t i = 0; i < S_MOVE_COLS; i++)
        rt_buf_free (&a->col[i]);
    for (size_t i = 0; i < 7; i++)
        rt_buf_free (&a->ev[i]);
    rt_buf_free (&a->tmp);
}

static void
s_num (rt_buf_t *b, long long v)
{
    char s[24];
    snprintf (s, sizeof s, "%lld", v);
    rt_buf_array_raw (b, s);
}

static void
s_event (s_arrays_t *a, const char *id, int64_t at, const char *code, const char *text,
         const char *location, const char *tag, const char *sub)
{
    rt_buf_array_text (&a->ev[0], id);
    s_num (&a->ev[1], at);
    rt_buf_array_text (&a->ev[2], code);
    rt_buf_array_text (&a->ev[3], text);
    rt_buf_array_text (&a->ev[4], location);
    rt_buf_array_text (&a->ev[5], tag);
    rt_buf_array_text (&a->ev[6], sub);
    a->n_events++;
}

/* Adds one decided parcel to the arrays. */
static void
s_arrays_add (s_arrays_t *a, const call_t *call, const s_decision_t *d, int64_t now)
{
    const parcel_t *p = d->p;
    const carrier_result_t *r = d->r;
    bool found = r && r->found;
    const char *delays = p->delays, *milestones = p->milestones;
    char *delays_new = NULL, *milestones_new = NULL;

    if (d->estimate_late) {
        s_array_with (&a->tmp, p->delays, S_ESTIMATE_LATE);
        delays_new = strdup (a->tmp.data);
        delays = delays_new ? delays_new : delays;
    }
    if (d->at_risk) {
        char *with;
        s_array_with (&a->tmp, delays, S_AT_RISK);
        with = strdup (a->tmp.data);
        if (with) {
            free (delays_new);
            delays = delays_new = with;
        }
    }
    if (d->milestone) {
        s_array_with (&a->tmp, p->milestones, d->milestone->template);
        milestones_new = strdup (a->tmp.data);
        milestones = milestones_new ? milestones_new : milestones;
    }
    rt_buf_array_text (&a->col[0], p->id);
    rt_buf_array_text (&a->col[1], status_tag_name (d->tag));
    rt_buf_array_text (&a->col[2], d->sub);
    rt_buf_array_raw (&a->col[3], d->returning ? "t" : "f");
    rt_buf_array_text (&a->col[4], found ? r->raw_code : p->raw_code);
    rt_buf_array_text (&a->col[5], found ? r->raw_text : "");
    rt_buf_array_text (&a->col[6], found ? r->location : "");
    s_num (&a->col[7], found ? r->status_at_ms : 0);
    s_num (&a->col[8], found ? r->estimated_ms : 0);
    s_num (&a->col[9], found ? r->delivered_ms : 0);
    s_num (&a->col[10], found ? r->storage_until_ms : 0);
    rt_buf_array_text (&a->col[11], found ? r->cod_state : "");
    rt_buf_array_text (&a->col[12], found ? r->origin_city : "");
    rt_buf_array_text (&a->col[13], found ? r->destination_city : "");
    s_num (&a->col[14], d->news ? now : p->news_at);
    s_num (&a->col[15], r && !r->found ? p->not_found + 1 : (found ? 0 : p->not_found));
    rt_buf_array_raw (&a->col[16], status_tag_final (d->tag) ? "t" : "f");
    s_num (&a->col[17], d->next_poll);
    rt_buf_array_text (&a->col[18], delays);
    rt_buf_array_text (&a->col[19], milestones);
    rt_buf_array_text (&a->col[20], d->error);
    s_num (&a->col[21], d->has_estimate ? d->est.at_ms : 0);
    s_num (&a->col[22], d->has_estimate ? d->est.low_ms : 0);
    s_num (&a->col[23], d->has_estimate ? d->est.high_ms : 0);
    if (d->has_estimate) {
        char risk[32];
        snprintf (risk, sizeof risk, "%.6f", d->est.miss_probability);
        rt_buf_array_raw (&a->col[24], risk);
    } else {
        rt_buf_array_raw (&a->col[24], "-1");
    }
    free (delays_new);
    free (milestones_new);
    if (!found)
        return;
    for (size_t i = 0; i < r->n_events; i++) {
        const carrier_event_t *e = &r->events[i];
        const carrier_code_t *c = carrier_code_find (call->carrier, e->code);
        s_event (a, p->id, e->at_ms ? e->at_ms : now, e->code, e->text, e->location,
                 c ? status_tag_name (c->tag) : "", c ? c->sub_status : "");
    }
    /* A last-status carrier gives no history: the current status is the
     * event, kept when it is news. */
    if (r->n_events == 0 && d->news)
        s_event (a, p->id, r->status_at_ms ? r->status_at_ms : now, r->raw_code, r->raw_text,
                 r->location, r->mapped ? status_tag_name (r->tag) : "",
                 r->mapped ? r->sub_status : "");
}

static void
s_arrays_end (s_arrays_t *a)
{
    for (size_t i = 0; i < S_MOVE_COLS; i++)
        rt_buf_array_end (&a->col[i]);
    for (size_t i = 0; i < 7; i++)
        rt_buf_array_end (&a->ev[i]);
}

/* The batch's ids as a text[] literal, into b. */
static void
s_ids (rt_buf_t *b, const call_t *call)
{
    rt_buf_array_begin (b);
    for (size_t i = 0; i < call->n; i++)
        rt_buf_array_text (b, call->parcels[i].id);
    rt_buf_array_end (b);
}

/* Releases the fenced parcels, due at due_ms; the account's update is the
 * caller's. */
static int
s_release (rt_db_t *db, const call_t *call, int64_t due_ms)
{
    rt_buf_t ids;
    char due[24];
    const char *v[3];
    PGresult *r;
    ids = (rt_buf_t){0};
    s_ids (&ids, call);
    snprintf (due, sizeof due, "%lld", (long long)due_ms);
    v[0] = ids.data;
    v[1] = call->token;
    v[2] = due;
    r = rt_db_exec_prepared (db, S_RELEASE, 3, v, NULL, NULL, 0);
    rt_buf_free (&ids);
    if (!r)
        return -1;
    PQclear (r);
    return 0;
}

static int
s_exec (rt_db_t *db, const char *name, int n, const char *const *v)
{
    PGresult *r = rt_db_exec_prepared (db, name, n, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear (r);
    return 0;
}

/* An account's call that came to nothing: its effect on the account and
 * the release of its parcels, inside the caller's transaction. */
static int
s_not_ok (rt_db_t *db, const outcome_config_t *config, const call_t *call,
          const carrier_answer_t *answer, bool token_refused, int64_t now)
{
    char until[24], add[4], at[24], reason[CARRIER_REASON_MAX + CARRIER_CODE_MAX + 8];
    const char *v[3];
    int64_t due = now;

    switch (answer->verdict) {
    case CARRIER_STOP_ACCOUNT:
        if (call->carrier->needs_token && !token_refused) {
            /* A refused bearer token: dropped, a new one asked for next. */
            v[0] = call->account;
            if (s_exec (db, S_ACC_UNTOKEN, 1, v) != 0)
                return -1;
            due = now + rt_clock_backoff_ms (config->backoff_ms, config->backoff_max_ms,
                                             call->account_failures);
            snprintf (until, sizeof until, "%lld", (long long)due);
            snprintf (add, sizeof add, "1");
            v[1] = until;
            v[2] = add;
            if (s_exec (db, S_ACC_WAIT, 3, v) != 0)
                return -1;
            break;
        }
        snprintf (at, sizeof at, "%lld", (long long)now);
        snprintf (reason, sizeof reason, "%s%s%s", answer->code, answer->code[0] ? ": " : "",
                  answer->reason);
        v[0] = call->account;
        v[1] = at;
        v[2] = reason;
        if (s_exec (db, S_ACC_PAUSE, 3, v) != 0)
            return -1;
        {
            char labels[160];
            snprintf (labels, sizeof labels, "carrier=\"%s\",account=\"%s\"", call->carrier->name,
                      call->account);
            s_count (config, "retain_tracker_accounts_paused_total", labels,
                     "carrier accounts paused because the carrier refused their credentials");
        }
        rt_log (RT_LOG_ERROR,
                "a carrier refused the account's credentials: the account is paused until "
                "`retainctl carrier resume`",
                rt_log_str ("carrier", call->carrier->name), rt_log_str ("account", call->account),
                rt_log_str ("code", answer->code), rt_log_str ("reason", answer->reason));
        break;
    case CARRIER_WAIT:
    case CARRIER_RETRY:
        due = now + (answer->verdict == CARRIER_WAIT
                         ? (answer->wait_ms > 0 ? answer->wait_ms : config->wait_default_ms)
                         : rt_clock_backoff_ms (config->backoff_ms, config->backoff_max_ms,
                                                call->account_failures));
        snprintf (until, sizeof until, "%lld", (long long)due);
        snprintf (add, sizeof add, "%d", answer->verdict == CARRIER_RETRY);
        v[0] = call->account;
        v[1] = until;
        v[2] = add;
        if (s_exec (db, S_ACC_WAIT, 3, v) != 0)
            return -1;
        rt_log (RT_LOG_INFO, "a carrier call to try again",
                rt_log_str ("carrier", call->carrier->name), rt_log_str ("account", call->account),
                rt_log_str ("verdict", carrier_verdict_name (answer->verdict)),
                rt_log_str ("reason", answer->reason),
                rt_log_int ("in_ms", (long long)(due - now)));
        break;
    default:
        break;
    }
    return s_release (db, call, due);
}

/* Decides and records an OK answer (or one parcel's BAD_REQUEST) for the
 * fenced rows, inside the caller's transaction. */
/* The learned lanes this batch's estimates may use: the parcels' cities
 * (the shop's, and the carrier's answer) and '*'. NULL when the query
 * failed. */
static PGresult *
s_lanes_read (rt_db_t *db, const call_t *call, const carrier_answer_t *answer)
{
    rt_buf_t o = {0}, dst = {0};
    PGresult *r;
    rt_buf_array_begin (&o);
    rt_buf_array_begin (&dst);
    rt_buf_array_text (&o, "*");
    rt_buf_array_text (&dst, "*");
    for (size_t i = 0; i < call->n; i++) {
        const parcel_t *p = &call->parcels[i];
        const carrier_result_t *res =
            answer->verdict == CARRIER_OK && i < answer->n_results ? &answer->results[i] : NULL;
        if (p->origin_city[0])
            rt_buf_array_text (&o, p->origin_city);
        else if (res && res->origin_city && res->origin_city[0])
            rt_buf_array_text (&o, res->origin_city);
        if (p->destination_city[0])
            rt_buf_array_text (&dst, p->destination_city);
        else if (res && res->destination_city && res->destination_city[0])
            rt_buf_array_text (&dst, res->destination_city);
    }
    rt_buf_array_end (&o);
    rt_buf_array_end (&dst);
    r = o.failed || dst.failed
            ? NULL
            : rt_db_exec_prepared (db, S_LANES, 3,
                                   (const char *[]){call->carrier->name, o.data, dst.data}, NULL,
                                   NULL, 0);
    rt_buf_free (&o);
    rt_buf_free (&dst);
    return r;
}

static int
s_record_ok (rt_db_t *db, const outcome_config_t *config, const call_t *call,
             const carrier_answer_t *answer, int64_t now)
{
    rt_buf_t ids;
    s_arrays_t a;
    s_decision_t *d = NULL;
    ProtobufCBinaryData *packed = NULL;
    size_t n_packed = 0, n_fenced = 0;
    PGresult *r = NULL, *lanes_r = NULL;
    s_lanes_t lanes = {0};
    const char *v[S_MOVE_COLS + 1];
    char err[256] = "";
    int rc = -1;
    carrier_result_t bad = {.found = true};
    rt_buf_t learn[3];
    size_t n_learn = 0;

    ids = (rt_buf_t){0};
    for (size_t i = 0; i < 3; i++) {
        learn[i] = (rt_buf_t){0};
        rt_buf_array_begin (&learn[i]);
    }
    s_arrays_init (&a);
    s_ids (&ids, call);
    v[0] = ids.data;
    v[1] = call->token;
    r = rt_db_exec_prepared (db, S_FENCE, 2, v, NULL, NULL, 0);
    if (!r)
        goto cleanup;
    lanes_r = s_lanes_read (db, call, answer);
    if (!lanes_r)
        goto cleanup;
    lanes.r = lanes_r;
    d = calloc (call->n ? call->n : 1, sizeof *d);
    packed = calloc (call->n * 4 + 1, sizeof *packed);
    if (!d || !packed)
        goto cleanup;
    for (size_t i = 0; i < call->n; i++) {
        const parcel_t *p = &call->parcels[i];
        bool fenced = false;
        for (int k = 0; k < PQntuples (r) && !fenced; k++)
            fenced = strcmp (PQgetvalue (r, k, 0), p->id) == 0;
        if (!fenced) {
            s_count (config, "retain_tracker_fenced_total", "",
                     "answers for parcels another claim had taken: not recorded");
            continue;
        }
        d[n_fenced].p = p;
        if (answer->verdict == CARRIER_BAD_REQUEST) {
            char labels[64];
            /* The carrier refused this parcel's request: its status
             * stays, the reason is kept, it is asked again much later. */
            bad.raw_code = p->raw_code;
            bad.raw_text = "";
            bad.location = "";
            bad.cod_state = "";
            bad.origin_city = "";
            bad.destination_city = "";
            d[n_fenced].r = &bad;
            d[n_fenced].old_tag = d[n_fenced].tag = s_tag (p->tag);
            d[n_fenced].sub = p->sub_status;
            d[n_fenced].returning = p->returning;
            d[n_fenced].error = answer->reason;
            d[n_fenced].next_poll = now + config->intervals.bad_ms;
            snprintf (labels, sizeof labels, "carrier=\"%s\"", call->carrier->name);
            s_count (config, "retain_tracker_refused_parcels_total", labels,
                     "parcels whose request the carrier refused as bad");
            rt_log (RT_LOG_WARN, "a carrier refused a parcel's request",
                    rt_log_str ("carrier", call->carrier->name), rt_log_str ("shipment", p->id),
                    rt_log_str ("code", answer->code), rt_log_str ("reason", answer->reason));
        } else {
            d[n_fenced].r = i < answer->n_results ? &answer->results[i] : NULL;
            if (!d[n_fenced].r)
                continue; /* an adapter's bug: the lease brings it back */
            s_decide (config, call, &d[n_fenced], now);
            s_estimate (config, &lanes, &d[n_fenced], now);
            if (d[n_fenced].learn) {
                rt_buf_array_text (&learn[0], d[n_fenced].origin);
                rt_buf_array_text (&learn[1], d[n_fenced].destination);
                {
                    char x[40];
                    snprintf (x, sizeof x, "%.17g", d[n_fenced].x);
                    rt_buf_array_raw (&learn[2], x);
                }
                n_learn++;
            }
        }
        s_arrays_add (&a, call, &d[n_fenced], now);
        n_fenced++;
    }
    PQclear (r);
    r = NULL;
    if (n_fenced == 0) {
        rc = 0;
        goto cleanup;
    }
    s_arrays_end (&a);
    for (int i = 0; i < S_MOVE_COLS; i++)
        v[i] = a.col[i].data;
    v[S_MOVE_COLS] = call->token;
    if (s_exec (db, S_MOVE, S_MOVE_COLS + 1, v) != 0)
        goto cleanup;
    if (n_learn > 0) {
        for (size_t i = 0; i < 3; i++)
            rt_buf_array_end (&learn[i]);
        v[0] = call->carrier->name;
        v[1] = learn[0].data;
        v[2] = learn[1].data;
        v[3] = learn[2].data;
        if (s_exec (db, S_LEARN, 4, v) != 0)
            goto cleanup;
    }
    if (a.n_events > 0) {
        for (int i = 0; i < 7; i++)
            v[i] = a.ev[i].data;
        if (s_exec (db, S_EVENTS, 7, v) != 0)
            goto cleanup;
    }
    for (size_t i = 0; i < n_fenced; i++) {
        const s_decision_t *x = &d[i];
        int got;
        if (x->changed && s_pack_changed (call, x, &packed[n_packed++], err, sizeof err) != 0)
            goto cleanup;
        if (x->estimate_late &&
            outcome_pack_delayed (x->p, call->carrier, S_ESTIMATE_LATE, status_tag_name (x->tag),
                                  x->r->estimated_ms - x->p->promised_by, x->r->estimated_ms, 0,
                                  &packed[n_packed++], err, sizeof err) != 0)
            goto cleanup;
        if (x->at_risk &&
            outcome_pack_delayed (
                x->p, call->carrier, S_AT_RISK, status_tag_name (x->tag),
                x->est.at_ms > x->p->promised_by ? x->est.at_ms - x->p->promised_by : 0,
                x->est.at_ms, x->est.miss_probability, &packed[n_packed++], err, sizeof err) != 0)
            goto cleanup;
        if (x->milestone) {
            parcel_t now_p = *x->p;
            /* The message speaks of the parcel as it is now. */
            if (x->r->storage_until_ms)
                now_p.storage_until = x->r->storage_until_ms;
            if (x->r->estimated_ms)
                now_p.carrier_eta = x->r->estimated_ms;
            got = outcome_pack_milestone (config, x->milestone, &now_p, call->carrier, now,
                                          &packed[n_packed]);
            if (got < 0)
                goto cleanup;
            n_packed += (size_t)got;
        }
    }
    if (n_packed && rt_outbox_append_batch (db, packed, n_packed) != 0)
        goto cleanup;
    if (call->account_failures > 0) {
        v[0] = call->account;
        if (s_exec (db, S_ACC_OK, 1, v) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    if (rc != 0 && err[0])
        rt_log (RT_LOG_WARN, "an outcome was not recorded", rt_log_str ("error", err));
    if (r)
        PQclear (r);
    if (lanes_r)
        PQclear (lanes_r);
    for (size_t i = 0; i < 3; i++)
        rt_buf_free (&learn[i]);
    for (size_t i = 0; packed && i < call->n * 4 + 1; i++)
        free (packed[i].data);
    free (packed);
    free (d);
    s_arrays_free (&a);
    rt_buf_free (&ids);
    return rc;
}

static int
s_in_tx (rt_db_t *db, const outcome_config_t *config, const call_t *call,
         const carrier_answer_t *answer, bool token_refused, int64_t now)
{
    int rc;
    if (rt_db_begin (db) != 0)
        return -1;
    if (answer->verdict == CARRIER_OK ||
        (answer->verdict == CARRIER_BAD_REQUEST && call->n == 1 && !token_refused))
        rc = s_record_ok (db, config, call, answer, now);
    else if (answer->verdict == CARRIER_BAD_REQUEST) {
        /* A batch refused whole where no split is possible, or a refused
         * token request: the account's setup is wrong, and only an
         * operator can mend it. */
        carrier_answer_t stop = *answer;
        stop.verdict = CARRIER_STOP_ACCOUNT;
        rc = s_not_ok (db, config, call, &stop, true, now);
    } else
        rc = s_not_ok (db, config, call, answer, token_refused, now);
    if (rc != 0) {
        rt_db_rollback (db);
        return -1;
    }
    return rt_db_commit (db);
}

int
outcome_record (rt_db_t *db, const outcome_config_t *config, const call_t *call,
                const carrier_answer_t *answer, int64_t now_ms)
{
    return s_in_tx (db, config, call, answer, false, now_ms);
}

int
outcome_fail_call (rt_db_t *db, const outcome_config_t *config, const call_t *call,
                   const carrier_answer_t *answer, int64_t now_ms)
{
    return s_in_tx (db, config, call, answer, true, now_ms);
}
