/*
 * identity_merge: merging two customers, undoing a merge, and operators'
 * edits of the card (identity.h has the contract).
 *
 * A merge locks both customers' rows (in id order, so two merges of the
 * same pair cannot deadlock) and checks before it writes anything, so a
 * refusal leaves the caller's transaction as it was. It then moves the
 * absorbed customer's identities and points in one statement that also
 * returns, as JSON, exactly what it moved: an unproven point the survivor
 * holds too is dropped rather than moved (one claim per customer) and
 * recorded as dropped, so the undo brings it back. The shop id moves last
 * (a customer has one), the conversation side's hook adds what it moved,
 * and the record, merged_into and the event follow.
 *
 * The undo reads that record back: each identity and point still on the
 * survivor returns to the absorbed customer; what reached the survivor
 * after the merge (a new channel, a number proven since) stays with it. A
 * merge is undone only while its survivor stands: once the survivor was
 * merged in turn, what this merge moved is on a third customer, and that
 * later merge has to be undone first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "identity_int.h"
#include "retain/v1/customer.pb-c.h"
#include "rt_channel.h"
#include "rt_civil.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_tz.h"
#include "rt_utf8.h"

#define S_LOCK2        "crm_merge_lock"
#define S_MOVE         "crm_merge_move"
#define S_SHOP_CLEAR   "crm_merge_shop_clear"
#define S_SHOP_GIVE    "crm_merge_shop_give"
#define S_MERGED_INTO  "crm_merge_into"
#define S_MERGE_INSERT "crm_merge_insert"
#define S_SUGG_RESOLVE "crm_merge_suggestions"
#define S_MERGE_GET    "crm_unmerge_get"
#define S_MERGE_LATER  "crm_unmerge_later"
#define S_UNDO_IDS     "crm_unmerge_identities"
#define S_UNDO_MOVED   "crm_unmerge_points"
#define S_UNDO_DROPPED "crm_unmerge_dropped"
#define S_MERGE_UNDONE "crm_unmerge_mark"
#define S_PROFILE_LOCK "crm_profile_lock"
#define S_PROFILE      "crm_profile_update"
#define S_CARD         "crm_card"
#define S_CARD_IDS     "crm_card_identities"
#define S_SUGG_GET     "crm_suggestion_get"
#define S_SUGG_MARK    "crm_suggestion_mark"

/* An unproven point of the absorbed customer that the survivor also holds
 * unproven (the same number typed to both). */
#define S_BOTH_CLAIM                                                                               \
    "EXISTS (SELECT 1 FROM crm.contact_points s WHERE s.customer_id = $1::uuid AND NOT s.proven"   \
    " AND s.kind = a.kind AND s.value = a.value)"

/* The point's record in crm.merges.moved. */
#define S_POINT_JSON(dropped)                                                                      \
    "jsonb_build_object('kind', kind, 'value', value, 'proven', proven, 'proven_by', proven_by,"   \
    " 'created_at', created_at, 'dropped', " dropped ")"

const identity_stmt_t identity_merge_stmts[] = {
    {S_LOCK2, "SELECT id, merged_into, shop_customer_id FROM crm.customers"
              " WHERE id IN ($1::uuid, $2::uuid) ORDER BY id FOR UPDATE"},
    /* $1 survivor, $2 absorbed. The two point statements select disjoint
     * rows, so none is touched twice in the one statement. */
    {S_MOVE,
     "WITH ids AS (UPDATE crm.identities SET customer_id = $1::uuid WHERE customer_id = $2::uuid"
     " RETURNING channel, inbox, external_user_id),"
     " dropped AS (DELETE FROM crm.contact_points a WHERE a.customer_id = $2::uuid"
     " AND NOT a.proven AND " S_BOTH_CLAIM " RETURNING kind, value, proven, proven_by, created_at),"
     " moved AS (UPDATE crm.contact_points a SET customer_id = $1::uuid"
     " WHERE a.customer_id = $2::uuid AND (a.proven OR NOT " S_BOTH_CLAIM ")"
     " RETURNING kind, value, proven, proven_by, created_at)"
     " SELECT jsonb_build_object("
     " 'identities', COALESCE((SELECT jsonb_agg(jsonb_build_object('channel', channel,"
     " 'inbox', inbox, 'external_user_id', external_user_id)"
     " ORDER BY channel, inbox, external_user_id) FROM ids), '[]'::jsonb),"
     " 'points', COALESCE((SELECT jsonb_agg(p ORDER BY p->>'kind', p->>'value', p->>'proven')"
     " FROM (SELECT " S_POINT_JSON ("false") " AS p FROM moved"
                                             " UNION ALL SELECT " S_POINT_JSON (
                                                 "true") " FROM dropped) x), '[]'::jsonb))::text"},
    {S_SHOP_CLEAR, "UPDATE crm.customers SET shop_customer_id = NULL, updated_at = now()"
                   " WHERE id = $1::uuid AND shop_customer_id = $2"},
    {S_SHOP_GIVE, "UPDATE crm.customers SET shop_customer_id = $2, updated_at = now()"
                  " WHERE id = $1::uuid AND shop_customer_id IS NULL"},
    {S_MERGED_INTO, "UPDATE crm.customers SET merged_into = $2::uuid, updated_at = now()"
                    " WHERE id = $1::uuid"},
    {S_MERGE_INSERT,
     "INSERT INTO crm.merges (id, survivor, absorbed, by_operator, reason, evidence,"
     " moved) VALUES ($1::uuid, $2::uuid, $3::uuid, $4, COALESCE($5, ''),"
     " $6::jsonb, $7::jsonb)"},
    {S_SUGG_RESOLVE, "UPDATE crm.merge_suggestions SET resolved_at = now(), resolution = 'merged',"
                     " resolved_by = $3 WHERE resolved_at IS NULL"
                     " AND LEAST(customer_id, candidate_id) = LEAST($1::uuid, $2::uuid)"
                     " AND GREATEST(customer_id, candidate_id) = GREATEST($1::uuid, $2::uuid)"},
    {S_MERGE_GET, "SELECT survivor, absorbed, undone_at IS NOT NULL, moved::text FROM crm.merges"
                  " WHERE id = $1::uuid FOR UPDATE"},
    {S_MERGE_LATER, "SELECT id, survivor FROM crm.merges WHERE absorbed = $1::uuid"
                    " AND undone_at IS NULL ORDER BY created_at DESC LIMIT 1"},
    /* $1 survivor, $2 absorbed, $3 the moved record (the dropped points'
     * statement: $1 absorbed, $2 the record). */
    {S_UNDO_IDS, "UPDATE crm.identities i SET customer_id = $2::uuid"
                 " FROM jsonb_to_recordset($3::jsonb -> 'identities')"
                 " AS x(channel text, inbox text, external_user_id text)"
                 " WHERE i.channel = x.channel AND i.inbox = x.inbox AND i.external_user_id = "
                 "x.external_user_id"
                 " AND i.customer_id = $1::uuid"},
    {S_UNDO_MOVED, "UPDATE crm.contact_points p SET customer_id = $2::uuid"
                   " FROM jsonb_to_recordset($3::jsonb -> 'points')"
                   " AS x(kind text, value text, proven boolean, dropped boolean)"
                   " WHERE NOT x.dropped AND p.customer_id = $1::uuid AND p.kind = x.kind"
                   " AND p.value = x.value AND p.proven = x.proven"},
    {S_UNDO_DROPPED,
     "INSERT INTO crm.contact_points (kind, value, customer_id, proven, proven_by, created_at)"
     " SELECT x.kind, x.value, $1::uuid, x.proven, x.proven_by, x.created_at"
     " FROM jsonb_to_recordset($2::jsonb -> 'points') AS x(kind text, value text,"
     " proven boolean, proven_by text, created_at timestamptz, dropped boolean)"
     " WHERE x.dropped ON CONFLICT DO NOTHING"},
    {S_MERGE_UNDONE, "UPDATE crm.merges SET undone_at = now(), undone_by = $2 WHERE id = $1::uuid"},
    {S_PROFILE_LOCK, "SELECT merged_into FROM crm.customers WHERE id = $1::uuid FOR UPDATE"},
    /* NULL keeps a field; '' clears the nullable ones. */
    {S_PROFILE, "UPDATE crm.customers SET name = COALESCE($2, name),"
                " birthday = CASE WHEN $3::text IS NULL THEN birthday"
                " WHEN $3::text = '' THEN NULL ELSE $3::date END,"
                " locale = COALESCE($4, locale), time_zone = COALESCE($5, time_zone),"
                " preferred_channel = COALESCE($6, preferred_channel),"
                " notes = COALESCE($7, notes),"
                " manager = CASE WHEN $8::text IS NULL THEN manager ELSE NULLIF($8::text, '') END,"
                " updated_at = now() WHERE id = $1::uuid"},
    /* The card as CustomerUpserted carries it: one phone and one e-mail,
     * a proven one first, the newest first. */
    {S_CARD, "SELECT c.name, COALESCE(to_char(c.birthday, 'YYYY-MM-DD'), ''), c.locale,"
             " c.preferred_channel, COALESCE(c.shop_customer_id, ''),"
             " (extract(epoch FROM c.created_at) * 1000)::bigint,"
             " COALESCE((SELECT value FROM crm.contact_points WHERE customer_id = c.id"
             " AND kind = 'phone' ORDER BY proven DESC, created_at DESC LIMIT 1), ''),"
             " COALESCE((SELECT value FROM crm.contact_points WHERE customer_id = c.id"
             " AND kind = 'email' ORDER BY proven DESC, created_at DESC LIMIT 1), '')"
             " FROM crm.customers c WHERE c.id = $1::uuid"},
    /* A suggestion, locked, with both its customers as they stand now. */
    {S_SUGG_GET, "SELECT crm.root(customer_id), crm.root(candidate_id), resolution"
                 " FROM crm.merge_suggestions WHERE id = $1::uuid FOR UPDATE"},
    {S_SUGG_MARK, "UPDATE crm.merge_suggestions SET resolved_at = now(), resolution = $2,"
                  " resolved_by = $3 WHERE id = $1::uuid"},
    {S_CARD_IDS,
     "SELECT channel, inbox, external_user_id FROM crm.identities"
     " WHERE customer_id = $1::uuid ORDER BY first_seen, channel, inbox, external_user_id"},
};
const size_t identity_merge_nstmts = sizeof identity_merge_stmts / sizeof identity_merge_stmts[0];

/* Runs a statement whose result is not needed. 0 or -1. */
static int
s_run (rt_db_t *db, const char *name, int n, const char *const *v, char *err, size_t errlen)
{
    PGresult *res = identity_exec (db, name, n, v, err, errlen);
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}

/* The two customers of a merge, locked. */
typedef struct {
    bool found;           /* the row exists */
    char merged_into[64]; /* "" when standing */
    char shop[256];       /* "" when none */
} s_side_t;

/* Locks a and b and reads them into sa and sb. 0 or -1. */
static int
s_lock_pair (rt_db_t *db, const char *a, const char *b, s_side_t *sa, s_side_t *sb, char *err,
             size_t errlen)
{
    const char *v[2] = {a, b};
    PGresult *res = identity_exec (db, S_LOCK2, 2, v, err, errlen);
    int i;
    if (!res)
        return -1;
    memset (sa, 0, sizeof *sa);
    memset (sb, 0, sizeof *sb);
    for (i = 0; i < PQntuples (res); i++) {
        s_side_t *s = strcmp (PQgetvalue (res, i, 0), a) == 0 ? sa : sb;
        s->found = true;
        snprintf (s->merged_into, sizeof s->merged_into, "%s", PQgetvalue (res, i, 1));
        snprintf (s->shop, sizeof s->shop, "%s", PQgetvalue (res, i, 2));
    }
    PQclear (res);
    return 0;
}

/* Lower-case canonical form of an id, so comparisons and locks agree
 * whatever case the caller used; -1 when it is not an id. */
static int
s_id_canon (const char *in, char out[IDENTITY_ID_LEN + 1])
{
    rt_uuid_t id;
    if (!identity_id_ok (in) || rt_uuid_parse (in, &id) != 0)
        return -1;
    rt_uuid_format (&id, out);
    return 0;
}

/* The merge's refusals, decided on the locked rows. */
static identity_status_t
s_merge_check (rt_db_t *db, const char *survivor, const char *absorbed, s_side_t *ss, s_side_t *sa,
               char *err, size_t errlen)
{
    if (strcmp (survivor, absorbed) == 0) {
        rt_errf (err, errlen, "a customer cannot be merged with itself");
        return IDENTITY_ERR_SAME;
    }
    if (s_lock_pair (db, survivor, absorbed, ss, sa, err, errlen) != 0)
        return IDENTITY_ERR_DB;
    if (!ss->found || !sa->found) {
        rt_errf (err, errlen, "no customer %s", ss->found ? absorbed : survivor);
        return IDENTITY_ERR_NOT_FOUND;
    }
    if (ss->merged_into[0] || sa->merged_into[0]) {
        const s_side_t *m = ss->merged_into[0] ? ss : sa;
        rt_errf (err, errlen, "customer %s was merged into %s already",
                 m == ss ? survivor : absorbed, m->merged_into);
        return IDENTITY_ERR_MERGED;
    }
    if (ss->shop[0] && sa->shop[0] && strcmp (ss->shop, sa->shop) != 0) {
        rt_errf (err, errlen,
                 "customers %s and %s are two shop accounts (%s, %s): never merged into one",
                 survivor, absorbed, ss->shop, sa->shop);
        return IDENTITY_ERR_SHOP_IDS;
    }
    return IDENTITY_OK;
}

/* Moves identities and points; *moved gets the record (owned). */
static int
s_merge_move (rt_db_t *db, const char *survivor, const char *absorbed, const s_side_t *sa,
              json_t **moved, char *err, size_t errlen)
{
    const char *v[2] = {survivor, absorbed};
    PGresult *res = identity_exec (db, S_MOVE, 2, v, err, errlen);
    json_error_t jerr;

    if (!res)
        return -1;
    *moved = json_loads (PQgetvalue (res, 0, 0), 0, &jerr);
    PQclear (res);
    if (!*moved) {
        rt_errf (err, errlen, "the moved record: %s", jerr.text);
        return -1;
    }
    if (sa->shop[0]) {
        const char *cv[2] = {absorbed, sa->shop};
        const char *gv[2] = {survivor, sa->shop};
        if (s_run (db, S_SHOP_CLEAR, 2, cv, err, errlen) != 0 ||
            s_run (db, S_SHOP_GIVE, 2, gv, err, errlen) != 0)
            return -1;
        json_object_set_new (*moved, "shop_customer_id", json_string (sa->shop));
    } else {
        json_object_set_new (*moved, "shop_customer_id", json_null ());
    }
    return 0;
}

identity_status_t
identity_merge (rt_db_t *db, const char *survivor_in, const char *absorbed_in, const char *by,
                const char *reason, const char *evidence, const identity_hooks_t *hooks,
                char *merge_id, char *err, size_t errlen)
{
    char survivor[IDENTITY_ID_LEN + 1], absorbed[IDENTITY_ID_LEN + 1];
    Retain__V1__CustomerMerged ev = RETAIN__V1__CUSTOMER_MERGED__INIT;
    identity_status_t st = IDENTITY_ERR_DB;
    json_t *moved = NULL, *evj = NULL;
    char *moved_text = NULL, *ev_text = NULL;
    s_side_t ss, sa;
    rt_uuid_t uuid;

    if (merge_id)
        merge_id[0] = '\0';
    if (s_id_canon (survivor_in, survivor) != 0 || s_id_canon (absorbed_in, absorbed) != 0) {
        rt_errf (err, errlen, "a merge names two customer ids");
        return IDENTITY_ERR_INVALID;
    }
    evj = evidence ? json_loads (evidence, 0, NULL) : json_object ();
    if (!json_is_object (evj)) {
        rt_errf (err, errlen, "the evidence is not a JSON object");
        st = IDENTITY_ERR_INVALID;
        goto cleanup;
    }
    if ((by && !rt_utf8_text_ok (by, strlen (by))) ||
        (reason && !rt_utf8_text_ok (reason, strlen (reason)))) {
        rt_errf (err, errlen, "who and why must be UTF-8 text");
        st = IDENTITY_ERR_INVALID;
        goto cleanup;
    }
    st = s_merge_check (db, survivor, absorbed, &ss, &sa, err, errlen);
    if (st != IDENTITY_OK)
        goto cleanup;
    st = IDENTITY_ERR_DB;
    if (s_merge_move (db, survivor, absorbed, &sa, &moved, err, errlen) != 0)
        goto cleanup;
    if (hooks && hooks->on_merge &&
        hooks->on_merge (db, survivor, absorbed, moved, hooks->arg, err, errlen) != 0)
        goto cleanup;
    moved_text = json_dumps (moved, JSON_COMPACT);
    ev_text = json_dumps (evj, JSON_COMPACT);
    if (!moved_text || !ev_text) {
        rt_errf (err, errlen, "merge: out of memory");
        goto cleanup;
    }
    uuid = rt_uuid_v7 ();
    {
        char id[IDENTITY_ID_LEN + 1];
        const char *iv[7] = {id, survivor, absorbed, by, reason, ev_text, moved_text};
        const char *mv[2] = {absorbed, survivor};
        const char *sv[3] = {survivor, absorbed, by};
        rt_uuid_format (&uuid, id);
        if (s_run (db, S_MERGED_INTO, 2, mv, err, errlen) != 0 ||
            s_run (db, S_MERGE_INSERT, 7, iv, err, errlen) != 0 ||
            s_run (db, S_SUGG_RESOLVE, 3, sv, err, errlen) != 0)
            goto cleanup;
        ev.merge_id = id;
        ev.survivor_id = survivor;
        ev.absorbed_id = absorbed;
        ev.by = (char *)(by ? by : "");
        ev.reason = (char *)(reason ? reason : "");
        ev.merged_at = rt_clock_now_ms ();
        if (identity_emit (db, "CustomerMerged", survivor, &ev.base, err, errlen) != 0)
            goto cleanup;
        if (merge_id)
            snprintf (merge_id, IDENTITY_ID_LEN + 1, "%s", id);
    }
    st = IDENTITY_OK;
cleanup:
    free (moved_text);
    free (ev_text);
    json_decref (moved);
    json_decref (evj);
    return st;
}

/* The undo's refusals, decided on the locked rows: the merge, then both
 * customers. *moved gets the record (owned). */
static identity_status_t
s_unmerge_check (rt_db_t *db, const char *merge_id, char *survivor, char *absorbed, json_t **moved,
                 char *err, size_t errlen)
{
    const char *v[1] = {merge_id};
    PGresult *res = identity_exec (db, S_MERGE_GET, 1, v, err, errlen);
    s_side_t ss, sa;
    bool undone;

    if (!res)
        return IDENTITY_ERR_DB;
    if (PQntuples (res) == 0) {
        PQclear (res);
        rt_errf (err, errlen, "no merge %s", merge_id);
        return IDENTITY_ERR_NOT_FOUND;
    }
    snprintf (survivor, IDENTITY_ID_LEN + 1, "%s", PQgetvalue (res, 0, 0));
    snprintf (absorbed, IDENTITY_ID_LEN + 1, "%s", PQgetvalue (res, 0, 1));
    undone = PQgetvalue (res, 0, 2)[0] == 't';
    *moved = json_loads (PQgetvalue (res, 0, 3), 0, NULL);
    PQclear (res);
    if (undone) {
        rt_errf (err, errlen, "merge %s was undone already", merge_id);
        return IDENTITY_ERR_UNDONE;
    }
    if (!*moved) {
        rt_errf (err, errlen, "merge %s: its record does not parse", merge_id);
        return IDENTITY_ERR_DB;
    }
    if (s_lock_pair (db, survivor, absorbed, &ss, &sa, err, errlen) != 0)
        return IDENTITY_ERR_DB;
    if (ss.merged_into[0]) {
        const char *lv[1] = {survivor};
        res = identity_exec (db, S_MERGE_LATER, 1, lv, err, errlen);
        if (!res)
            return IDENTITY_ERR_DB;
        if (PQntuples (res) > 0)
            rt_errf (err, errlen,
                     "merge %s depends on it (customer %s into %s came later): undo it first",
                     PQgetvalue (res, 0, 0), survivor, PQgetvalue (res, 0, 1));
        else
            rt_errf (err, errlen, "customer %s was merged into %s since: undo that first", survivor,
                     ss.merged_into);
        PQclear (res);
        return IDENTITY_ERR_DEPENDS;
    }
    return IDENTITY_OK;
}

identity_status_t
identity_unmerge (rt_db_t *db, const char *merge_in, const char *by, const identity_hooks_t *hooks,
                  char *err, size_t errlen)
{
    char merge_id[IDENTITY_ID_LEN + 1], survivor[IDENTITY_ID_LEN + 1],
        absorbed[IDENTITY_ID_LEN + 1];
    Retain__V1__CustomerUnmerged ev = RETAIN__V1__CUSTOMER_UNMERGED__INIT;
    identity_status_t st;
    json_t *moved = NULL;
    char *moved_text = NULL;
    const char *shop;

    if (s_id_canon (merge_in, merge_id) != 0) {
        rt_errf (err, errlen, "not a merge id");
        return IDENTITY_ERR_INVALID;
    }
    if (by && !rt_utf8_text_ok (by, strlen (by))) {
        rt_errf (err, errlen, "who must be UTF-8 text");
        return IDENTITY_ERR_INVALID;
    }
    st = s_unmerge_check (db, merge_id, survivor, absorbed, &moved, err, errlen);
    if (st != IDENTITY_OK)
        goto cleanup;
    st = IDENTITY_ERR_DB;
    moved_text = json_dumps (moved, JSON_COMPACT);
    if (!moved_text) {
        rt_errf (err, errlen, "unmerge: out of memory");
        goto cleanup;
    }
    {
        const char *v[3] = {survivor, absorbed, moved_text};
        if (s_run (db, S_UNDO_IDS, 3, v, err, errlen) != 0 ||
            s_run (db, S_UNDO_MOVED, 3, v, err, errlen) != 0 ||
            s_run (db, S_UNDO_DROPPED, 2, v + 1, err, errlen) != 0)
            goto cleanup;
    }
    /* The shop id goes back only if the survivor still has it. */
    shop = json_string_value (json_object_get (moved, "shop_customer_id"));
    if (shop) {
        const char *cv[2] = {survivor, shop};
        const char *gv[2] = {absorbed, shop};
        PGresult *res = identity_exec (db, S_SHOP_CLEAR, 2, cv, err, errlen);
        bool cleared;
        if (!res)
            goto cleanup;
        cleared = strcmp (PQcmdTuples (res), "1") == 0;
        PQclear (res);
        if (cleared && s_run (db, S_SHOP_GIVE, 2, gv, err, errlen) != 0)
            goto cleanup;
    }
    if (hooks && hooks->on_unmerge &&
        hooks->on_unmerge (db, survivor, absorbed, moved, hooks->arg, err, errlen) != 0)
        goto cleanup;
    {
        const char *mv[2] = {absorbed, NULL};
        const char *uv[2] = {merge_id, by};
        if (s_run (db, S_MERGED_INTO, 2, mv, err, errlen) != 0 ||
            s_run (db, S_MERGE_UNDONE, 2, uv, err, errlen) != 0)
            goto cleanup;
    }
    ev.merge_id = merge_id;
    ev.survivor_id = survivor;
    ev.absorbed_id = absorbed;
    ev.by = (char *)(by ? by : "");
    ev.unmerged_at = rt_clock_now_ms ();
    if (identity_emit (db, "CustomerUnmerged", survivor, &ev.base, err, errlen) != 0)
        goto cleanup;
    st = IDENTITY_OK;
cleanup:
    free (moved_text);
    json_decref (moved);
    return st;
}

/* --- the card --- */

/* Checks an edit's values before anything is written. */
static identity_status_t
s_profile_check (const identity_profile_t *c, char *err, size_t errlen)
{
    const char *texts[] = {c->name,  c->birthday, c->locale, c->time_zone, c->preferred_channel,
                           c->notes, c->manager};
    size_t i;

    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (texts[i] && !rt_utf8_text_ok (texts[i], strlen (texts[i]))) {
            rt_errf (err, errlen, "the card's fields must be UTF-8 text");
            return IDENTITY_ERR_INVALID;
        }
    }
    if (c->birthday && *c->birthday) {
        int y, m, d, n = 0;
        if (strlen (c->birthday) != 10 ||
            sscanf (c->birthday, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
            !rt_civil_valid (y, m, d) || y < 1900) {
            rt_errf (err, errlen, "birthday \"%s\" is not a date (YYYY-MM-DD)", c->birthday);
            return IDENTITY_ERR_INVALID;
        }
    }
    if (c->time_zone && *c->time_zone) {
        char why[128];
        rt_tz_t *tz = rt_tz_new (c->time_zone, why, sizeof why);
        if (!tz) {
            rt_errf (err, errlen, "time zone \"%s\": %s", c->time_zone, why);
            return IDENTITY_ERR_INVALID;
        }
        rt_tz_destroy (&tz);
    }
    if (c->preferred_channel && *c->preferred_channel &&
        !rt_channel_by_name (c->preferred_channel)) {
        char list[256];
        rt_channel_list (list, sizeof list);
        rt_errf (err, errlen, "preferred channel \"%s\" is none of %s", c->preferred_channel, list);
        return IDENTITY_ERR_INVALID;
    }
    if (c->locale && strlen (c->locale) > 35) {
        rt_errf (err, errlen, "locale \"%s\" is not a BCP 47 tag", c->locale);
        return IDENTITY_ERR_INVALID;
    }
    for (i = 0; c->locale && c->locale[i]; i++) {
        char ch = c->locale[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-')) {
            rt_errf (err, errlen, "locale \"%s\" is not a BCP 47 tag", c->locale);
            return IDENTITY_ERR_INVALID;
        }
    }
    return IDENTITY_OK;
}

/* Puts the whole card in the outbox as CustomerUpserted. */
static int
s_emit_card (rt_db_t *db, const char *id, char *err, size_t errlen)
{
    Retain__V1__CustomerUpserted ev = RETAIN__V1__CUSTOMER_UPSERTED__INIT;
    Retain__V1__ChannelIdentity *idents = NULL, **iptrs = NULL;
    const char *v[1] = {id};
    PGresult *card = NULL, *ids = NULL;
    const rt_channel_t *pref;
    int i, n, rc = -1;

    card = identity_exec (db, S_CARD, 1, v, err, errlen);
    if (!card)
        goto cleanup;
    ids = identity_exec (db, S_CARD_IDS, 1, v, err, errlen);
    if (!ids)
        goto cleanup;
    n = PQntuples (ids);
    idents = calloc ((size_t)n + 1, sizeof *idents);
    iptrs = calloc ((size_t)n + 1, sizeof *iptrs);
    if (!idents || !iptrs) {
        rt_errf (err, errlen, "card: out of memory");
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        const rt_channel_t *ch = rt_channel_by_name (PQgetvalue (ids, i, 0));
        retain__v1__channel_identity__init (&idents[i]);
        idents[i].channel = ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
        idents[i].inbox = PQgetvalue (ids, i, 1);
        idents[i].external_user_id = PQgetvalue (ids, i, 2);
        iptrs[i] = &idents[i];
    }
    ev.customer_id = (char *)id;
    ev.name = PQgetvalue (card, 0, 0);
    ev.birthday = PQgetvalue (card, 0, 1);
    ev.locale = PQgetvalue (card, 0, 2);
    pref = rt_channel_by_name (PQgetvalue (card, 0, 3));
    ev.preferred_channel = pref ? pref->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
    ev.external_id = PQgetvalue (card, 0, 4);
    ev.created_at = strtoll (PQgetvalue (card, 0, 5), NULL, 10);
    ev.phone = PQgetvalue (card, 0, 6);
    ev.email = PQgetvalue (card, 0, 7);
    ev.n_identities = (size_t)n;
    ev.identities = iptrs;
    rc = identity_emit (db, "CustomerUpserted", id, &ev.base, err, errlen);
cleanup:
    free (iptrs);
    free (idents);
    PQclear (ids);
    PQclear (card);
    return rc;
}

identity_status_t
identity_update_profile (rt_db_t *db, const char *customer_in, const identity_profile_t *c,
                         const char *by, char *err, size_t errlen)
{
    char id[IDENTITY_ID_LEN + 1];
    identity_status_t st;
    PGresult *res;

    if (s_id_canon (customer_in, id) != 0) {
        rt_errf (err, errlen, "not a customer id");
        return IDENTITY_ERR_INVALID;
    }
    st = s_profile_check (c, err, errlen);
    if (st != IDENTITY_OK)
        return st;
    {
        const char *v[1] = {id};
        res = identity_exec (db, S_PROFILE_LOCK, 1, v, err, errlen);
    }
    if (!res)
        return IDENTITY_ERR_DB;
    if (PQntuples (res) == 0) {
        PQclear (res);
        rt_errf (err, errlen, "no customer %s", id);
        return IDENTITY_ERR_NOT_FOUND;
    }
    if (!PQgetisnull (res, 0, 0)) {
        rt_errf (err, errlen, "customer %s was merged into %s: edit that card", id,
                 PQgetvalue (res, 0, 0));
        PQclear (res);
        return IDENTITY_ERR_MERGED;
    }
    PQclear (res);
    {
        const char *v[8] = {id,        c->name,      c->birthday,
                            c->locale, c->time_zone, c->preferred_channel,
                            c->notes,  c->manager};
        if (s_run (db, S_PROFILE, 8, v, err, errlen) != 0)
            return IDENTITY_ERR_DB;
    }
    if (s_emit_card (db, id, err, errlen) != 0)
        return IDENTITY_ERR_DB;
    rt_log (RT_LOG_INFO, "customer card edited", rt_log_str ("customer", id),
            rt_log_str ("by", by ? by : ""));
    return IDENTITY_OK;
}

/* --- suggestions --- */

/* Reads suggestion `id` (locked): both customers' survivors and its
 * resolution ("" while open) into the buffers. */
static identity_status_t
s_suggestion_get (rt_db_t *db, const char *in, char *id, char *a, char *b, char *resolution,
                  size_t reslen, char *err, size_t errlen)
{
    const char *v[1] = {id};
    PGresult *res;
    if (s_id_canon (in, id) != 0) {
        rt_errf (err, errlen, "no suggestion %s", in ? in : "");
        return IDENTITY_ERR_NOT_FOUND;
    }
    res = identity_exec (db, S_SUGG_GET, 1, v, err, errlen);
    if (!res)
        return IDENTITY_ERR_DB;
    if (PQntuples (res) == 0) {
        PQclear (res);
        rt_errf (err, errlen, "no suggestion %s", id);
        return IDENTITY_ERR_NOT_FOUND;
    }
    snprintf (a, IDENTITY_ID_LEN + 1, "%s", PQgetvalue (res, 0, 0));
    snprintf (b, IDENTITY_ID_LEN + 1, "%s", PQgetvalue (res, 0, 1));
    snprintf (resolution, reslen, "%s", PQgetvalue (res, 0, 2));
    PQclear (res);
    return IDENTITY_OK;
}

identity_status_t
identity_suggestion_reject (rt_db_t *db, const char *suggestion_id, const char *by, char *err,
                            size_t errlen)
{
    char id[IDENTITY_ID_LEN + 1], a[IDENTITY_ID_LEN + 1], b[IDENTITY_ID_LEN + 1], resolution[16];
    identity_status_t st;
    if (by && !rt_utf8_text_ok (by, strlen (by))) {
        rt_errf (err, errlen, "who must be UTF-8 text");
        return IDENTITY_ERR_INVALID;
    }
    st = s_suggestion_get (db, suggestion_id, id, a, b, resolution, sizeof resolution, err, errlen);
    if (st != IDENTITY_OK)
        return st;
    if (strcmp (resolution, "merged") == 0) {
        rt_errf (err, errlen, "suggestion %s was merged already: undo the merge instead", id);
        return IDENTITY_ERR_RESOLVED;
    }
    if (strcmp (resolution, "rejected") == 0)
        return IDENTITY_OK;
    {
        const char *v[3] = {id, "rejected", by};
        if (s_run (db, S_SUGG_MARK, 3, v, err, errlen) != 0)
            return IDENTITY_ERR_DB;
    }
    rt_log (RT_LOG_INFO, "merge suggestion rejected", rt_log_str ("suggestion", id),
            rt_log_str ("by", by ? by : ""));
    return IDENTITY_OK;
}

identity_status_t
identity_suggestion_accept (rt_db_t *db, const char *suggestion_id, const char *survivor_in,
                            const char *absorbed_in, const char *by, char *err, size_t errlen)
{
    char id[IDENTITY_ID_LEN + 1], a[IDENTITY_ID_LEN + 1], b[IDENTITY_ID_LEN + 1], resolution[16];
    char survivor[IDENTITY_ID_LEN + 1], absorbed[IDENTITY_ID_LEN + 1];
    identity_status_t st;
    if (s_id_canon (survivor_in, survivor) != 0 || s_id_canon (absorbed_in, absorbed) != 0) {
        rt_errf (err, errlen, "a merge names two customer ids");
        return IDENTITY_ERR_INVALID;
    }
    if (by && !rt_utf8_text_ok (by, strlen (by))) {
        rt_errf (err, errlen, "who must be UTF-8 text");
        return IDENTITY_ERR_INVALID;
    }
    st = s_suggestion_get (db, suggestion_id, id, a, b, resolution, sizeof resolution, err, errlen);
    if (st != IDENTITY_OK)
        return st;
    if (!((strcmp (a, survivor) == 0 && strcmp (b, absorbed) == 0) ||
          (strcmp (a, absorbed) == 0 && strcmp (b, survivor) == 0))) {
        rt_errf (err, errlen, "suggestion %s is about customers %s and %s, not these two", id, a,
                 b);
        return IDENTITY_ERR_INVALID;
    }
    if (strcmp (resolution, "merged") == 0)
        return IDENTITY_OK;
    {
        const char *v[3] = {id, "merged", by};
        if (s_run (db, S_SUGG_MARK, 3, v, err, errlen) != 0)
            return IDENTITY_ERR_DB;
    }
    return IDENTITY_OK;
}
