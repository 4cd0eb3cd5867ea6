/*
 * identity: resolving an event to its customer (identity.h has the rules).
 *
 * The steps of identity_resolve:
 *   1. normalise the points (E.164, lower-cased e-mail), skipping those that
 *      do not read as one;
 *   2. look the customer up by the rules, in their order, reading only;
 *   3. nobody found: claim for a new id, in the rules' order, the identity
 *      and then each proven point (INSERT ... ON CONFLICT; the foreign keys
 *      wait for commit, so the claims come before the customer row), then
 *      write the customer row, which claims the shop id. The first claim
 *      another transaction holds decides instead: what was claimed for the
 *      new id is moved to that customer and the row is never written;
 *   4. attach to the customer what the event says that it does not have
 *      yet: the identity, the shop id, a blank name or locale, the points;
 *   5. for every point, each other customer holding the same value becomes
 *      a suggestion (one open per pair, by the unique index).
 * Everything runs in the caller's transaction and can be replayed: a second
 * run of the same event finds what the first attached and adds nothing.
 */
#include "identity.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity_int.h"
#include "rt_bus.h"
#include "rt_channel.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_buf.h"
#include "rt_phone.h"
#include "rt_uuid.h"

/* E-mail addresses longer than this are refused (RFC 5321's path limit). */
#define S_EMAIL_MAX 254

/* One source: its stored name, the kind of point it proves (-1: none). */
static const struct {
    identity_source_t source;
    const char *name;
    int proves;
} s_sources[] = {
    {IDENTITY_SOURCE_TEXT, "text", -1},
    {IDENTITY_SOURCE_FORM, "form", -1},
    {IDENTITY_SOURCE_SHOP, "shop", -1},
    {IDENTITY_SOURCE_SMS, "sms", IDENTITY_POINT_PHONE},
    {IDENTITY_SOURCE_WHATSAPP, "whatsapp", IDENTITY_POINT_PHONE},
    {IDENTITY_SOURCE_CALL, "call", IDENTITY_POINT_PHONE},
    {IDENTITY_SOURCE_TELEGRAM_CONTACT, "telegram_contact", IDENTITY_POINT_PHONE},
    {IDENTITY_SOURCE_EMAIL_INBOUND, "email_inbound", IDENTITY_POINT_EMAIL},
};
#define S_NSOURCES (sizeof s_sources / sizeof s_sources[0])

/* A point as resolution uses it: normalised, with what became of it. */
typedef struct {
    const char *kind;            /* "phone" or "email" */
    char value[S_EMAIL_MAX + 1]; /* normalised */
    identity_source_t source;    /* where it came from */
    bool proven;                 /* the source proves it */
    const char *seen_in;         /* evidence text, "" for none */
    bool claimed;                /* its proven row is the new customer's */
} s_point_t;

/* One resolution in progress. */
typedef struct {
    rt_db_t *db;                           /* the caller's connection */
    const identity_input_t *in;            /* the event */
    identity_result_t *out;                /* what it came to */
    char *err;                             /* the caller's error buffer */
    size_t errlen;                         /* its size */
    s_point_t points[IDENTITY_MAX_POINTS]; /* the points that normalised */
    size_t npoints;                        /* used entries of points */
    bool has_identity;                     /* the event names a channel identity */
    const char *channel;                   /* its channel's name */
    const char *inbox;                     /* its inbox ("" when the event gave none) */
    const char *shop;                      /* the shop id, NULL for none */
    bool identity_done;                    /* the identity is the customer's already */
} s_run_t;

/* --- statements --- */

#define S_CUSTOMER_GET "crm_customer_get"
#define S_IDENT_SEEN   "crm_identity_seen"
#define S_IDENT_CLAIM  "crm_identity_claim"
#define S_IDENT_MOVE   "crm_identity_move"
#define S_SHOP_FIND    "crm_shop_find"
#define S_SHOP_LOCK    "crm_shop_lock"
#define S_SHOP_SET     "crm_shop_set"
#define S_CUSTOMER_NEW "crm_customer_new"
#define S_FILL         "crm_customer_fill"
#define S_PROVEN_FIND  "crm_point_proven_find"
#define S_SHOP_POINTS  "crm_point_shop_find"
#define S_PROVEN_CLAIM "crm_point_proven_claim"
#define S_CLAIM_DROP   "crm_point_claim_drop"
#define S_CLAIM_ADD    "crm_point_claim_add"
#define S_POINTS_MOVE  "crm_points_move"
#define S_HOLDERS      "crm_point_holders"
#define S_SUGGEST      "crm_suggest"
#define S_SEEN_BATCH   "crm_identity_seen_batch"

/* crm.root() of a customer this transaction has claimed rows for but not
 * yet written is NULL: such ids are taken as they are. */
static const identity_stmt_t s_stmts[] = {
    {S_CUSTOMER_GET,
     "SELECT id, crm.root(id), shop_customer_id FROM crm.customers WHERE id = $1::uuid"},
    {S_IDENT_SEEN, "UPDATE crm.identities SET last_seen = now()"
                   " WHERE channel = $1 AND inbox = $2 AND external_user_id = $3"
                   " RETURNING customer_id, crm.root(customer_id)"},
    /* DO UPDATE rather than DO NOTHING: it waits for a claim in flight and
     * returns the winner's row, and last_seen moves either way. */
    /* S_IDENT_SEEN for many: $1 channels, $2 inboxes, $3 user ids, $4
     * the proven phones and $5 e-mails ("" for none), in the events'
     * order; a row per event whose identity exists, with its index
     * (1-based), the survivor, whether the customer's name is blank and
     * whether each point is settled: proven as theirs, and nobody else's
     * (else identity_resolve attaches it, or suggests a merge).
     * The rows are read by the identities' key, not from the update's
     * RETURNING: a join on a CTE's rows is planned as a nested loop over
     * both (n² comparisons, 20 ms for 400). */
    {S_SEEN_BATCH,
     "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
     " WITH ORDINALITY AS u(channel, inbox, ext, phone, email, ord)),"
     " s AS (UPDATE crm.identities i SET last_seen = now()"
     " FROM (SELECT DISTINCT channel, inbox, ext FROM u) d WHERE i.channel = d.channel"
     " AND i.inbox = d.inbox AND i.external_user_id = d.ext)"
     " SELECT u.ord, i.customer_id, r.root, cu.name = '', COALESCE(q.settled, true)"
     " FROM u JOIN crm.identities i"
     " ON i.channel = u.channel AND i.inbox = u.inbox AND i.external_user_id = u.ext"
     " CROSS JOIN LATERAL crm.root(i.customer_id) AS r(root)"
     " JOIN crm.customers cu ON cu.id = COALESCE(r.root, i.customer_id)"
     " CROSS JOIN LATERAL (SELECT bool_and(EXISTS (SELECT 1 FROM crm.contact_points cp"
     " WHERE cp.kind = v.kind AND cp.value = v.value AND cp.proven"
     " AND crm.root(cp.customer_id) = cu.id) AND NOT EXISTS (SELECT 1 FROM crm.contact_points cp"
     " WHERE cp.kind = v.kind AND cp.value = v.value AND crm.root(cp.customer_id) <> cu.id))"
     " FROM (VALUES ('phone', u.phone), ('email', u.email)) AS v(kind, value)"
     " WHERE v.value <> '') AS q(settled)"},
    {S_IDENT_CLAIM,
     "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
     " VALUES ($1, $2, $3, $4::uuid)"
     " ON CONFLICT (channel, inbox, external_user_id) DO UPDATE SET last_seen = now()"
     " RETURNING customer_id, crm.root(customer_id)"},
    {S_IDENT_MOVE, "UPDATE crm.identities SET customer_id = $5::uuid"
                   " WHERE channel = $1 AND inbox = $2 AND external_user_id = $3"
                   " AND customer_id = $4::uuid"},
    {S_SHOP_FIND, "SELECT id, crm.root(id) FROM crm.customers WHERE shop_customer_id = $1"},
    {S_SHOP_LOCK, "SELECT pg_advisory_xact_lock(hashtextextended('crm.shop:' || $1, 0))"},
    {S_SHOP_SET, "UPDATE crm.customers SET shop_customer_id = $2, updated_at = now()"
                 " WHERE id = $1::uuid AND shop_customer_id IS NULL"
                 " AND NOT EXISTS (SELECT 1 FROM crm.customers WHERE shop_customer_id = $2)"},
    /* The row of a new customer, and the claim of its shop id: a shop id
     * another transaction holds returns that customer instead. */
    {S_CUSTOMER_NEW,
     "INSERT INTO crm.customers (id, shop_customer_id, name, locale)"
     " VALUES ($1::uuid, $2, COALESCE($3, ''), COALESCE($4, ''))"
     " ON CONFLICT (shop_customer_id) DO UPDATE SET shop_customer_id = EXCLUDED.shop_customer_id"
     " RETURNING id, crm.root(id)"},
    {S_FILL, "UPDATE crm.customers SET"
             " name = CASE WHEN name = '' THEN $2 ELSE name END,"
             " locale = CASE WHEN locale = '' THEN $3 ELSE locale END, updated_at = now()"
             " WHERE id = $1::uuid AND ((name = '' AND $2 <> '') OR (locale = '' AND $3 <> ''))"},
    {S_PROVEN_FIND, "SELECT customer_id, crm.root(customer_id) FROM crm.contact_points"
                    " WHERE kind = $1 AND value = $2 AND proven"},
    /* Two rows are enough to know the shop's point is not one customer's. */
    {S_SHOP_POINTS, "SELECT DISTINCT crm.root(customer_id) FROM crm.contact_points"
                    " WHERE kind = $1 AND value = $2 AND NOT proven AND proven_by = 'shop'"
                    " LIMIT 2"},
    {S_PROVEN_CLAIM, "INSERT INTO crm.contact_points (kind, value, customer_id, proven, proven_by)"
                     " VALUES ($1, $2, $3::uuid, true, $4)"
                     " ON CONFLICT (kind, value) WHERE proven DO NOTHING RETURNING customer_id"},
    {S_CLAIM_DROP, "DELETE FROM crm.contact_points"
                   " WHERE customer_id = $3::uuid AND kind = $1 AND value = $2 AND NOT proven"},
    {S_CLAIM_ADD, "INSERT INTO crm.contact_points (kind, value, customer_id, proven, proven_by)"
                  " SELECT $1::text, $2::text, $3::uuid, false, $4::text"
                  " WHERE NOT EXISTS (SELECT 1 FROM crm.contact_points WHERE kind = $1"
                  " AND value = $2 AND customer_id = $3::uuid AND proven)"
                  " ON CONFLICT (customer_id, kind, value) WHERE NOT proven DO NOTHING"},
    {S_POINTS_MOVE, "UPDATE crm.contact_points SET customer_id = $2::uuid"
                    " WHERE customer_id = $1::uuid"},
    /* Customers other than $3 holding the value, whom $3 could be merged
     * with: not two shop ids, not a pair an operator rejected. */
    {S_HOLDERS,
     "SELECT o.id FROM (SELECT DISTINCT crm.root(customer_id) AS id FROM crm.contact_points"
     " WHERE kind = $1 AND value = $2) o"
     " JOIN crm.customers oc ON oc.id = o.id JOIN crm.customers me ON me.id = $3::uuid"
     " WHERE o.id <> me.id AND (oc.shop_customer_id IS NULL OR me.shop_customer_id IS NULL"
     " OR oc.shop_customer_id = me.shop_customer_id)"
     " AND NOT EXISTS (SELECT 1 FROM crm.merge_suggestions s WHERE s.resolution = 'rejected'"
     " AND LEAST(s.customer_id, s.candidate_id) = LEAST(o.id, me.id)"
     " AND GREATEST(s.customer_id, s.candidate_id) = GREATEST(o.id, me.id))"
     " ORDER BY o.id"},
    {S_SUGGEST, "INSERT INTO crm.merge_suggestions (id, customer_id, candidate_id, evidence)"
                " VALUES ($1::uuid, $2::uuid, $3::uuid, $4::jsonb)"
                " ON CONFLICT DO NOTHING RETURNING id"},
};
#define S_NSTMTS (sizeof s_stmts / sizeof s_stmts[0])

/* --- shared helpers --- */

PGresult *
identity_exec (rt_db_t *db, const char *name, int nparams, const char *const *values, char *err,
               size_t errlen)
{
    PGresult *res = rt_db_exec_prepared (db, name, nparams, values, NULL, NULL, 0);
    if (!res)
        rt_errf (err, errlen, "%s: %s", name, rt_db_error (db));
    return res;
}

int
identity_emit (rt_db_t *db, const char *type, const char *key, const ProtobufCMessage *payload,
               char *err, size_t errlen)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, "retain-routerd");
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

bool
identity_id_ok (const char *text)
{
    rt_uuid_t id;
    return text && strlen (text) == RT_UUID_STR_LEN && rt_uuid_parse (text, &id) == 0;
}

int
identity_prepare (rt_db_t *db, char *err, size_t errlen)
{
    size_t i;
    for (i = 0; i < S_NSTMTS; i++) {
        if (rt_db_prepare (db, s_stmts[i].name, s_stmts[i].sql) != 0) {
            rt_errf (err, errlen, "preparing %s: %s", s_stmts[i].name, rt_db_error (db));
            return -1;
        }
    }
    for (i = 0; i < identity_merge_nstmts; i++) {
        if (rt_db_prepare (db, identity_merge_stmts[i].name, identity_merge_stmts[i].sql) != 0) {
            rt_errf (err, errlen, "preparing %s: %s", identity_merge_stmts[i].name,
                     rt_db_error (db));
            return -1;
        }
    }
    return 0;
}

const char *
identity_source_name (identity_source_t source)
{
    size_t i;
    for (i = 0; i < S_NSOURCES; i++) {
        if (s_sources[i].source == source)
            return s_sources[i].name;
    }
    return "text";
}

bool
identity_source_proves (identity_source_t source, identity_point_kind_t kind)
{
    size_t i;
    for (i = 0; i < S_NSOURCES; i++) {
        if (s_sources[i].source == source)
            return s_sources[i].proves == (int)kind;
    }
    return false;
}

/* --- resolution --- */

static bool
s_set (const char *s)
{
    return s && *s;
}

/* Lower-cases and trims an e-mail address into out; -1 when it is not
 * one (no '@' between two non-empty parts, spaces or controls inside). */
static int
s_email_normalize (const char *in, char out[S_EMAIL_MAX + 1])
{
    size_t start = 0, end = strlen (in), i, n = 0;
    const char *at;

    while (start < end && isspace ((unsigned char)in[start]))
        start++;
    while (end > start && isspace ((unsigned char)in[end - 1]))
        end--;
    if (end - start > S_EMAIL_MAX || end == start)
        return -1;
    for (i = start; i < end; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c == 0x7f)
            return -1;
        /* ASCII only is lower-cased: an internationalised local part keeps
         * its bytes, as its server compares them. */
        out[n++] = (char)((c < 0x80) ? tolower (c) : c);
    }
    out[n] = '\0';
    at = strchr (out, '@');
    if (!at || at == out || at[1] == '\0' || strchr (at + 1, '@'))
        return -1;
    return 0;
}

int
identity_point_normalize (identity_point_kind_t kind, const char *value,
                          const char *default_country, char *out, size_t outlen, char *why,
                          size_t whylen)
{
    char buf[S_EMAIL_MAX + 1];
    if (!value || outlen < sizeof buf) {
        rt_errf (why, whylen, "no value");
        return -1;
    }
    if (kind == IDENTITY_POINT_PHONE) {
        char e164[RT_PHONE_E164_MAX + 1];
        if (rt_phone_normalize (value, default_country, e164, why, whylen) != 0)
            return -1;
        snprintf (out, outlen, "%s", e164);
        return 0;
    }
    if (s_email_normalize (value, buf) != 0) {
        rt_errf (why, whylen, "not an e-mail address");
        return -1;
    }
    snprintf (out, outlen, "%s", buf);
    return 0;
}

/* A point's value normalised (E.164, a lower-cased e-mail) into value
 * (S_EMAIL_MAX + 1 bytes) and its stored kind: 0, or -1 when it does not
 * read as one. */
static int
s_point_norm (const identity_point_t *p, const char *country, char *value, const char **kind)
{
    char e164[RT_PHONE_E164_MAX + 1];
    if (!s_set (p->value))
        return -1;
    if (p->kind == IDENTITY_POINT_PHONE) {
        *kind = "phone";
        if (rt_phone_normalize (p->value, country, e164, NULL, 0) != 0)
            return -1;
        snprintf (value, S_EMAIL_MAX + 1, "%s", e164);
        return 0;
    }
    *kind = "email";
    return s_email_normalize (p->value, value);
}

/* Step 1: the points that read as a phone or an address. */
static void
s_points_read (s_run_t *r)
{
    size_t i;
    for (i = 0; i < r->in->npoints && i < IDENTITY_MAX_POINTS; i++) {
        const identity_point_t *p = &r->in->points[i];
        s_point_t *q = &r->points[r->npoints];
        int ok;

        ok = s_point_norm (p, r->in->default_country, q->value, &q->kind);
        if (ok != 0) {
            r->out->points_refused++;
            continue;
        }
        q->source = p->source;
        q->proven = identity_source_proves (p->source, p->kind);
        q->seen_in = p->seen_in ? p->seen_in : "";
        q->claimed = false;
        r->npoints++;
    }
}

/* Takes a found customer: `id` as stored, `root` its survivor (NULL or ""
 * when the row is this transaction's own, not yet written). */
static void
s_found (s_run_t *r, const char *id, const char *root, identity_rule_t rule)
{
    const char *survivor = s_set (root) ? root : id;
    snprintf (r->out->customer_id, sizeof r->out->customer_id, "%s", survivor);
    r->out->followed_merge = strcmp (survivor, id) != 0;
    r->out->rule = rule;
}

/* Runs a lookup whose first row is (id, root); 1 when a row came and was
 * taken, 0 when none, -1 on error. */
static int
s_lookup (s_run_t *r, const char *stmt, int n, const char *const *v, identity_rule_t rule)
{
    PGresult *res = identity_exec (r->db, stmt, n, v, r->err, r->errlen);
    int found;
    if (!res)
        return -1;
    found = PQntuples (res) > 0;
    if (found)
        s_found (r, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1), rule);
    PQclear (res);
    return found;
}

/* The shop id of a customer into shop ("" for none); -1 on error or when
 * there is no such customer. */
static int
s_shop_of (s_run_t *r, const char *customer, char *shop, size_t shoplen)
{
    const char *v[1] = {customer};
    PGresult *res = identity_exec (r->db, S_CUSTOMER_GET, 1, v, r->err, r->errlen);
    int rc = -1;
    if (!res)
        return -1;
    if (PQntuples (res) > 0) {
        snprintf (shop, shoplen, "%s", PQgetvalue (res, 0, 2));
        rc = 0;
    } else {
        rt_errf (r->err, r->errlen, "customer %s vanished", customer);
    }
    PQclear (res);
    return rc;
}

/* Step 2's third rule: a proven point, then a proof matched to the shop's
 * point, then a shop's point matched to a proof. 1 found, 0 not, -1. */
static int
s_lookup_points (s_run_t *r)
{
    size_t i;
    int found;

    for (i = 0; i < r->npoints; i++) {
        const char *v[2] = {r->points[i].kind, r->points[i].value};
        if (!r->points[i].proven)
            continue;
        found = s_lookup (r, S_PROVEN_FIND, 2, v, IDENTITY_BY_PROVEN_POINT);
        if (found != 0)
            return found;
    }
    for (i = 0; i < r->npoints; i++) {
        const char *v[2] = {r->points[i].kind, r->points[i].value};
        PGresult *res;
        if (!r->points[i].proven)
            continue;
        res = identity_exec (r->db, S_SHOP_POINTS, 2, v, r->err, r->errlen);
        if (!res)
            return -1;
        found = PQntuples (res) == 1;
        if (found)
            s_found (r, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 0), IDENTITY_BY_SHOP_POINT);
        PQclear (res);
        if (found)
            return 1;
    }
    for (i = 0; i < r->npoints; i++) {
        const char *v[2] = {r->points[i].kind, r->points[i].value};
        char shop[256];
        if (r->points[i].source != IDENTITY_SOURCE_SHOP)
            continue;
        found = s_lookup (r, S_PROVEN_FIND, 2, v, IDENTITY_BY_SHOP_POINT);
        if (found <= 0) {
            if (found < 0)
                return -1;
            continue;
        }
        if (s_shop_of (r, r->out->customer_id, shop, sizeof shop) != 0)
            return -1;
        /* The prover has another shop account: the same number on two
         * accounts is not this rule's to join (a suggestion may be). */
        if (!s_set (shop) || !r->shop || strcmp (shop, r->shop) == 0)
            return 1;
        r->out->customer_id[0] = '\0';
        r->out->followed_merge = false;
    }
    return 0;
}

/* Step 2. 1 found, 0 not, -1 error. */
static int
s_lookup_all (s_run_t *r)
{
    int found;
    if (identity_id_ok (r->in->customer_id)) {
        const char *v[1] = {r->in->customer_id};
        found = s_lookup (r, S_CUSTOMER_GET, 1, v, IDENTITY_BY_CUSTOMER_ID);
        if (found != 0)
            return found;
    }
    if (r->has_identity) {
        const char *v[3] = {r->channel, r->inbox, r->in->external_user_id};
        found = s_lookup (r, S_IDENT_SEEN, 3, v, IDENTITY_BY_IDENTITY);
        if (found != 0) {
            r->identity_done = found > 0;
            return found;
        }
    }
    if (r->shop) {
        const char *v[1] = {r->shop};
        found = s_lookup (r, S_SHOP_FIND, 1, v, IDENTITY_BY_SHOP_ID);
        if (found != 0)
            return found;
    }
    return s_lookup_points (r);
}

/* What was claimed for the new id `fresh` goes to the customer another
 * transaction won with (out->customer_id). */
static int
s_claims_move (s_run_t *r, const char *fresh)
{
    const char *winner = r->out->customer_id;
    PGresult *res;
    size_t i;

    if (r->identity_done) {
        const char *v[5] = {r->channel, r->inbox, r->in->external_user_id, fresh, winner};
        res = identity_exec (r->db, S_IDENT_MOVE, 5, v, r->err, r->errlen);
        if (!res)
            return -1;
        PQclear (res);
    }
    for (i = 0; i < r->npoints; i++) {
        const char *v[2] = {fresh, winner};
        if (!r->points[i].claimed)
            continue;
        res = identity_exec (r->db, S_POINTS_MOVE, 2, v, r->err, r->errlen);
        if (!res)
            return -1;
        PQclear (res);
        /* The winner's proven row is theirs now: attach adds nothing twice. */
        break;
    }
    return 0;
}

/* Step 3: nobody was found, so claim for a new id. */
static int
s_create (s_run_t *r)
{
    rt_uuid_t uuid = rt_uuid_v7 ();
    char fresh[RT_UUID_STR_LEN + 1];
    PGresult *res;
    size_t i;

    rt_uuid_format (&uuid, fresh);
    if (r->has_identity) {
        const char *v[4] = {r->channel, r->inbox, r->in->external_user_id, fresh};
        res = identity_exec (r->db, S_IDENT_CLAIM, 4, v, r->err, r->errlen);
        if (!res)
            return -1;
        r->identity_done = true;
        if (strcmp (PQgetvalue (res, 0, 0), fresh) != 0) {
            s_found (r, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1), IDENTITY_BY_IDENTITY);
            PQclear (res);
            return 0;
        }
        PQclear (res);
    }
    for (i = 0; i < r->npoints; i++) {
        s_point_t *p = &r->points[i];
        const char *v[4] = {p->kind, p->value, fresh, identity_source_name (p->source)};
        int found;
        if (!p->proven)
            continue;
        res = identity_exec (r->db, S_PROVEN_CLAIM, 4, v, r->err, r->errlen);
        if (!res)
            return -1;
        p->claimed = PQntuples (res) > 0;
        PQclear (res);
        if (p->claimed)
            continue;
        /* Held: the conflict waited for its holder's commit, so this
         * statement's snapshot sees who it is. */
        found = s_lookup (r, S_PROVEN_FIND, 2, v, IDENTITY_BY_PROVEN_POINT);
        if (found < 0)
            return -1;
        if (found > 0)
            return s_claims_move (r, fresh);
    }
    {
        const char *v[4] = {fresh, r->shop, s_set (r->in->name) ? r->in->name : NULL,
                            s_set (r->in->locale) ? r->in->locale : NULL};
        res = identity_exec (r->db, S_CUSTOMER_NEW, 4, v, r->err, r->errlen);
        if (!res)
            return -1;
        s_found (r, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1),
                 strcmp (PQgetvalue (res, 0, 0), fresh) == 0 ? IDENTITY_BY_NEW
                                                             : IDENTITY_BY_SHOP_ID);
        PQclear (res);
    }
    if (strcmp (r->out->customer_id, fresh) == 0) {
        r->out->is_new = true;
        return 0;
    }
    return s_claims_move (r, fresh);
}

/* Step 4's identity: claimed for a customer found by another rule; an
 * identity another transaction gave someone else meanwhile decides. */
static int
s_attach_identity (s_run_t *r)
{
    const char *v[4] = {r->channel, r->inbox, r->in->external_user_id, r->out->customer_id};
    PGresult *res;

    if (!r->has_identity || r->identity_done)
        return 0;
    res = identity_exec (r->db, S_IDENT_CLAIM, 4, v, r->err, r->errlen);
    if (!res)
        return -1;
    if (strcmp (PQgetvalue (res, 0, 1), r->out->customer_id) != 0)
        s_found (r, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1), IDENTITY_BY_IDENTITY);
    PQclear (res);
    r->identity_done = true;
    return 0;
}

/* Step 4's shop id, onto a customer who has none; a shop id someone else
 * holds stays theirs. */
static int
s_attach_shop (s_run_t *r)
{
    char shop[256];
    PGresult *res;

    if (!r->shop || r->out->is_new)
        return 0;
    if (s_shop_of (r, r->out->customer_id, shop, sizeof shop) != 0)
        return -1;
    if (s_set (shop))
        return 0;
    {
        const char *v[1] = {r->shop};
        res = identity_exec (r->db, S_SHOP_LOCK, 1, v, r->err, r->errlen);
        if (!res)
            return -1;
        PQclear (res);
    }
    {
        const char *v[2] = {r->out->customer_id, r->shop};
        res = identity_exec (r->db, S_SHOP_SET, 2, v, r->err, r->errlen);
        if (!res)
            return -1;
        PQclear (res);
    }
    return 0;
}

/* Step 4's points. */
static int
s_attach_points (s_run_t *r)
{
    const char *me = r->out->customer_id;
    PGresult *res;
    size_t i;

    for (i = 0; i < r->npoints; i++) {
        s_point_t *p = &r->points[i];
        const char *v[4] = {p->kind, p->value, me, identity_source_name (p->source)};
        if (p->proven) {
            if (!p->claimed) {
                res = identity_exec (r->db, S_PROVEN_CLAIM, 4, v, r->err, r->errlen);
                if (!res)
                    return -1;
                p->claimed = PQntuples (res) > 0;
                PQclear (res);
            }
            /* Proven now: the customer's own claim of it has served. A
             * point someone else proved is left to the suggestions. */
            if (p->claimed) {
                res = identity_exec (r->db, S_CLAIM_DROP, 3, v, r->err, r->errlen);
                if (!res)
                    return -1;
                PQclear (res);
            }
            continue;
        }
        res = identity_exec (r->db, S_CLAIM_ADD, 4, v, r->err, r->errlen);
        if (!res)
            return -1;
        PQclear (res);
    }
    return 0;
}

/* Step 5: each other holder of a point becomes a suggestion. */
static int
s_suggest (s_run_t *r)
{
    const char *me = r->out->customer_id;
    size_t i;
    int j;

    for (i = 0; i < r->npoints; i++) {
        s_point_t *p = &r->points[i];
        const char *hv[3] = {p->kind, p->value, me};
        PGresult *holders = identity_exec (r->db, S_HOLDERS, 3, hv, r->err, r->errlen);
        if (!holders)
            return -1;
        for (j = 0; j < PQntuples (holders); j++) {
            rt_uuid_t uuid = rt_uuid_v7 ();
            char id[RT_UUID_STR_LEN + 1], *evidence;
            json_t *ev = json_pack ("{s:s, s:s, s:b}", p->kind, p->value, "proven_by",
                                    identity_source_name (p->source), "proven", p->proven);
            PGresult *res;

            if (ev && *p->seen_in)
                json_object_set_new (ev, "seen_in", json_string (p->seen_in));
            evidence = ev ? json_dumps (ev, JSON_COMPACT) : NULL;
            json_decref (ev);
            if (!evidence) {
                PQclear (holders);
                rt_errf (r->err, r->errlen, "suggestion: out of memory");
                return -1;
            }
            rt_uuid_format (&uuid, id);
            {
                const char *v[4] = {id, me, PQgetvalue (holders, j, 0), evidence};
                res = identity_exec (r->db, S_SUGGEST, 4, v, r->err, r->errlen);
            }
            free (evidence);
            if (!res) {
                PQclear (holders);
                return -1;
            }
            if (PQntuples (res) > 0 && r->out->nsuggestions < IDENTITY_MAX_SUGGESTIONS)
                snprintf (r->out->suggestions[r->out->nsuggestions++], IDENTITY_ID_LEN + 1, "%s",
                          PQgetvalue (res, 0, 0));
            PQclear (res);
        }
        PQclear (holders);
    }
    return 0;
}

/* Checks the event names someone, and reads its identity. */
static identity_status_t
s_input_check (s_run_t *r)
{
    const identity_input_t *in = r->in;
    bool named = identity_id_ok (in->customer_id);

    if (in->channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
        const rt_channel_t *ch = rt_channel_by_value (in->channel);
        if (!ch || !s_set (in->external_user_id)) {
            rt_errf (r->err, r->errlen, "a channel identity needs a known channel and a user id");
            return IDENTITY_ERR_INVALID;
        }
        r->channel = ch->name;
        r->inbox = in->inbox ? in->inbox : "";
        r->has_identity = true;
        named = true;
    }
    if (s_set (in->shop_customer_id)) {
        r->shop = in->shop_customer_id;
        named = true;
    }
    if (!named && r->npoints == 0) {
        rt_errf (r->err, r->errlen,
                 "nobody to resolve: no customer id, channel identity, shop id or contact point");
        return IDENTITY_ERR_INVALID;
    }
    return IDENTITY_OK;
}

identity_status_t
identity_resolve (rt_db_t *db, const identity_input_t *in, identity_result_t *out, char *err,
                  size_t errlen)
{
    s_run_t r;
    identity_status_t st;
    int found;

    memset (out, 0, sizeof *out);
    memset (&r, 0, sizeof r);
    r.db = db;
    r.in = in;
    r.out = out;
    r.err = err;
    r.errlen = errlen;
    s_points_read (&r);
    st = s_input_check (&r);
    if (st != IDENTITY_OK)
        return st;

    found = s_lookup_all (&r);
    if (found < 0)
        return IDENTITY_ERR_DB;
    if (found == 0 && s_create (&r) != 0)
        return IDENTITY_ERR_DB;
    if (s_attach_identity (&r) != 0 || s_attach_shop (&r) != 0)
        return IDENTITY_ERR_DB;
    if (!out->is_new && (s_set (in->name) || s_set (in->locale))) {
        const char *v[3] = {out->customer_id, s_set (in->name) ? in->name : "",
                            s_set (in->locale) ? in->locale : ""};
        PGresult *res = identity_exec (db, S_FILL, 3, v, err, errlen);
        if (!res)
            return IDENTITY_ERR_DB;
        PQclear (res);
    }
    if (s_attach_points (&r) != 0 || s_suggest (&r) != 0)
        return IDENTITY_ERR_DB;
    return IDENTITY_OK;
}

/* Whether identity_seen_batch may resolve the event: a channel identity
 * and, besides it, at most a phone and an e-mail the channel proves
 * (normalised into phone and email, "" for none) and nothing else. */
static bool
s_seen_only (const identity_input_t *in, char phone[S_EMAIL_MAX + 1], char email[S_EMAIL_MAX + 1])
{
    phone[0] = email[0] = '\0';
    if (s_set (in->customer_id) || s_set (in->shop_customer_id) || s_set (in->locale) ||
        in->channel == RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED ||
        !rt_channel_by_value (in->channel) || !s_set (in->external_user_id))
        return false;
    for (size_t i = 0; i < in->npoints; i++) {
        const identity_point_t *p = &in->points[i];
        char *slot = p->kind == IDENTITY_POINT_PHONE ? phone : email;
        const char *kind;
        if (*slot || !identity_source_proves (p->source, p->kind) ||
            s_point_norm (p, in->default_country, slot, &kind) != 0)
            return false;
    }
    return true;
}

int
identity_seen_batch (rt_db_t *db, const identity_input_t *in, size_t n, identity_result_t *out,
                     bool *found, char *err, size_t errlen)
{
    rt_buf_t arrays[5] = {0};
    size_t i, asked = 0, *index = NULL;
    char phone[S_EMAIL_MAX + 1], email[S_EMAIL_MAX + 1];
    PGresult *res = NULL;
    int rc = -1;

    index = malloc ((n + 1) * sizeof *index);
    if (!index) {
        rt_errf (err, errlen, "identities: out of memory");
        return -1;
    }
    for (i = 0; i < 5; i++)
        rt_buf_array_begin (&arrays[i]);
    for (i = 0; i < n; i++) {
        found[i] = false;
        memset (&out[i], 0, sizeof out[i]);
        if (!s_seen_only (&in[i], phone, email))
            continue;
        rt_buf_array_text (&arrays[0], rt_channel_by_value (in[i].channel)->name);
        rt_buf_array_text (&arrays[1], in[i].inbox ? in[i].inbox : "");
        rt_buf_array_text (&arrays[2], in[i].external_user_id);
        rt_buf_array_text (&arrays[3], phone);
        rt_buf_array_text (&arrays[4], email);
        /* The statement's ordinals count the events asked; index maps
         * them back to the caller's. */
        index[asked++] = i;
    }
    for (i = 0; i < 5; i++)
        rt_buf_array_end (&arrays[i]);
    if (asked == 0) {
        rc = 0;
        goto cleanup;
    }
    for (i = 0; i < 5; i++) {
        if (arrays[i].failed) {
            rt_errf (err, errlen, "identities: out of memory");
            goto cleanup;
        }
    }
    {
        const char *v[5] = {arrays[0].data, arrays[1].data, arrays[2].data, arrays[3].data,
                            arrays[4].data};
        res = identity_exec (db, S_SEEN_BATCH, 5, v, err, errlen);
    }
    if (!res)
        goto cleanup;
    for (int row = 0; row < PQntuples (res); row++) {
        long ord = atol (PQgetvalue (res, row, 0));
        const char *id = PQgetvalue (res, row, 1), *root = PQgetvalue (res, row, 2);
        bool blank = strcmp (PQgetvalue (res, row, 3), "t") == 0;
        bool settled = strcmp (PQgetvalue (res, row, 4), "t") == 0;
        const char *survivor = s_set (root) ? root : id;
        size_t k;
        if (ord < 1 || (size_t)ord > asked)
            continue;
        k = index[ord - 1];
        /* A name to fill the card, a point not yet the customer's alone:
         * identity_resolve's. */
        if ((blank && s_set (in[k].name)) || !settled)
            continue;
        snprintf (out[k].customer_id, sizeof out[k].customer_id, "%s", survivor);
        out[k].followed_merge = strcmp (survivor, id) != 0;
        out[k].rule = IDENTITY_BY_IDENTITY;
        found[k] = true;
    }
    rc = 0;
cleanup:
    PQclear (res);
    free (index);
    for (i = 0; i < 5; i++)
        rt_buf_free (&arrays[i]);
    return rc;
}
