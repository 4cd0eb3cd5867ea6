/*
 * api_customers: the operator API's handlers of the customers' routes:
 * the card (GET /v1/customers/{id}), the search (GET /v1/customers), the
 * card's edits (PATCH), merges and their undo, and the rejection of a
 * merge suggestion. api.h says who may see what; the server, the caller
 * and the answers they share are in api.c (api_int.h).
 *
 * The card is card_read's (crm: profile, identities, contact points, the
 * projection of orders, parcels, loyalty and feedback, suggestions,
 * merges) with the conversations of the customer the caller may see,
 * each read through api.c's own "api_conv" statement, so a card shows a
 * conversation exactly when GET /v1/conversations/{id} would.
 *
 * Changes run in one transaction on identity's functions (the edit, the
 * merge with routing's hooks, the undo, the rejection), so what they
 * write and what they put in the outbox (CustomerUpserted,
 * CustomerMerged, CustomerUnmerged) commit together; a refusal is decided
 * before anything is written and maps to its status
 * (s_identity_problem). A merge answers the card as it is after the
 * commit.
 *
 * routing_merge_hooks registers routing's merge statements with a handle
 * and hands back the hooks: once per handle. The API has one handle per
 * worker thread (rt_db_local), set up on that thread, so the hooks are
 * kept per thread beside it (s_hooks).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_int.h"
#include "card.h"
#include "identity.h"
#include "routing.h"
#include "rt_form.h"
#include "rt_http_server.h"
#include "rt_log.h"
#include "rt_utf8.h"
#include "rt_uuid.h"

/* Conversations a card lists at most, the newest first. */
#define S_CARD_CONVERSATIONS 20

/* A search's q, in bytes. */
#define S_Q_MAX 200

/* The merge hooks of this thread's handle (see the file head). */
static _Thread_local identity_hooks_t s_hooks;

/* --- SQL --- */

/* clang-format off */
/* A customer as the search lists them; the second column is the cursor. */
#define S_SUMMARY                                                                                  \
    "SELECT json_build_object('id', c.id, 'name', c.name,"                                         \
    " 'shop_customer_id', c.shop_customer_id,"                                                     \
    " 'phones', COALESCE((SELECT json_agg(p.value ORDER BY p.proven DESC, p.created_at, p.value)"  \
    " FROM crm.contact_points p WHERE p.customer_id = c.id AND p.kind = 'phone'), '[]'::json),"    \
    " 'emails', COALESCE((SELECT json_agg(p.value ORDER BY p.proven DESC, p.created_at, p.value)"  \
    " FROM crm.contact_points p WHERE p.customer_id = c.id AND p.kind = 'email'), '[]'::json),"    \
    " 'created_at', crm.iso(c.created_at))::text, c.id FROM crm.customers c"

/* Customers holding a point ($1 kind, $2 value), as survivors; $3 the
 * cursor (the last id given, NULL first), $4 the limit. */
static const char *s_sql_by_point =
    S_SUMMARY " WHERE c.id IN (SELECT crm.root(customer_id) FROM crm.contact_points"
    " WHERE kind = $1 AND value = $2)"
    " AND ($3::uuid IS NULL OR c.id > $3::uuid) ORDER BY c.id LIMIT $4::integer";

/* Standing customers whose name or notes hold $1 (an ILIKE pattern,
 * trigram-indexed); $2 the cursor, $3 the limit. */
static const char *s_sql_by_text =
    S_SUMMARY " WHERE c.merged_into IS NULL AND (c.name ILIKE $1 OR c.notes ILIKE $1)"
    " AND ($2::uuid IS NULL OR c.id > $2::uuid) ORDER BY c.id LIMIT $3::integer";
/* clang-format on */

/* The customer's conversations, newest first (the caller's view is
 * api_conv's). */
static const char *s_sql_convs = "SELECT id FROM routing.conversations WHERE customer_id = $1::uuid"
                                 " ORDER BY created_at DESC, id LIMIT $2::integer";

static const char *s_sql_operator = "SELECT 1 FROM routing.operators WHERE id = $1";

int
api_customers_prepare (rt_db_t *db, char *err, size_t errlen)
{
    if (card_prepare (db, err, errlen) != 0 || routing_merge_hooks (db, &s_hooks, err, errlen) != 0)
        return -1;
    if (rt_db_prepare (db, "api_cust_by_point", s_sql_by_point) != 0 ||
        rt_db_prepare (db, "api_cust_by_text", s_sql_by_text) != 0 ||
        rt_db_prepare (db, "api_cust_convs", s_sql_convs) != 0 ||
        rt_db_prepare (db, "api_cust_operator", s_sql_operator) != 0) {
        rt_errf (err, errlen, "%s", rt_db_error (db));
        return -1;
    }
    return 0;
}

/* --- answers --- */

/* Answers an identity refusal with its status, anything else as 503. */
static void
s_identity_problem (rt_http_request_t *req, identity_status_t st, const char *err)
{
    switch (st) {
    case IDENTITY_ERR_INVALID:
        rt_http_problem (req, 422, "invalid", err);
        break;
    case IDENTITY_ERR_NOT_FOUND:
        rt_http_problem (req, 404, "not-found", err);
        break;
    case IDENTITY_ERR_SHOP_IDS:
        rt_http_problem (req, 422, "shop-ids", err);
        break;
    case IDENTITY_ERR_SAME:
        rt_http_problem (req, 422, "same-customer", err);
        break;
    case IDENTITY_ERR_MERGED:
        rt_http_problem (req, 409, "merged", err);
        break;
    case IDENTITY_ERR_UNDONE:
        rt_http_problem (req, 409, "undone", err);
        break;
    case IDENTITY_ERR_DEPENDS:
        rt_http_problem (req, 409, "depends", err);
        break;
    case IDENTITY_ERR_RESOLVED:
        rt_http_problem (req, 409, "resolved", err);
        break;
    default:
        rt_log (RT_LOG_ERROR, "operator API: database failed", rt_log_str ("error", err));
        rt_http_problem (req, 503, "database", "the database failed; try again");
        break;
    }
}

static void
s_no_customer (rt_http_request_t *req)
{
    rt_http_problem (req, 404, "not-found", "no such customer");
}

/* The conversations of customer `id` the caller may see, as a JSON array
 * (owned), or NULL after a failed statement. */
static json_t *
s_conversations (const api_caller_t *caller, const char *id)
{
    char limit[16];
    const char *v[2] = {id, limit};
    json_t *items = json_array ();
    PGresult *ids;
    int i;
    snprintf (limit, sizeof limit, "%d", S_CARD_CONVERSATIONS);
    ids = rt_db_exec_prepared (caller->db, "api_cust_convs", 2, v, NULL, NULL, 0);
    if (!ids || !items) {
        PQclear (ids);
        json_decref (items);
        return NULL;
    }
    for (i = 0; i < PQntuples (ids); i++) {
        const char *cv[2] = {caller->scope, PQgetvalue (ids, i, 0)};
        PGresult *conv = rt_db_exec_prepared (caller->db, "api_conv", 2, cv, NULL, NULL, 0);
        if (!conv) {
            PQclear (ids);
            json_decref (items);
            return NULL;
        }
        if (PQntuples (conv) == 1)
            json_array_append_new (items, api_conv_json (conv, 0));
        PQclear (conv);
    }
    PQclear (ids);
    return items;
}

/* Answers `status` with the card of `id` as it is now; with ext (may be
 * NULL; its reference stolen), with ext holding the card as "card". */
static void
s_reply_card (rt_http_request_t *req, const api_caller_t *caller, const char *id, int status,
              json_t *ext)
{
    char err[256] = "";
    json_t *card = NULL, *convs;
    if (card_read (caller->db, id, &card, err, sizeof err) != 0) {
        json_decref (ext);
        rt_log (RT_LOG_ERROR, "operator API: card failed", rt_log_str ("error", err));
        rt_http_problem (req, 503, "database", "the database failed; try again");
        return;
    }
    if (!card) {
        json_decref (ext);
        s_no_customer (req);
        return;
    }
    convs = s_conversations (caller, json_string_value (json_object_get (card, "id")));
    if (!convs) {
        json_decref (ext);
        json_decref (card);
        api_db_problem (req, caller->db);
        return;
    }
    json_object_set_new (card, "conversations", convs);
    if (ext) {
        json_object_set_new (ext, "card", card);
        card = ext;
    }
    rt_http_reply_json (req, status, card);
}

/* A path's id that is a UUID, canonical into out; else answers 404 (an
 * id that cannot exist is not found) and returns -1. */
static int
s_path_id (rt_http_request_t *req, const char *what, char out[RT_UUID_STR_LEN + 1])
{
    const char *id = rt_http_param (req, "id");
    rt_uuid_t u;
    char detail[96];
    if (!id || rt_uuid_parse (id, &u) != 0) {
        snprintf (detail, sizeof detail, "no such %s", what);
        rt_http_problem (req, 404, "not-found", detail);
        return -1;
    }
    rt_uuid_format (&u, out);
    return 0;
}

/* --- GET /v1/customers/{id} --- */

void
api_customer_get (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    char id[RT_UUID_STR_LEN + 1];
    if (api_begin (arg, req, &caller) != 0)
        return;
    if (s_path_id (req, "customer", id) != 0)
        return;
    s_reply_card (req, &caller, id, 200, NULL);
}

/* --- GET /v1/customers --- */

/* q as an ILIKE pattern matching it anywhere: '\', '%' and '_' escaped. */
static char *
s_like (const char *q)
{
    size_t n = strlen (q), i, o = 0;
    char *p = malloc (2 * n + 3);
    if (!p)
        return NULL;
    p[o++] = '%';
    for (i = 0; i < n; i++) {
        if (q[i] == '\\' || q[i] == '%' || q[i] == '_')
            p[o++] = '\\';
        p[o++] = q[i];
    }
    p[o++] = '%';
    p[o] = '\0';
    return p;
}

void
api_customer_list (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    rt_form_t *q = NULL;
    PGresult *res = NULL;
    const char *phone, *email, *text, *cursor;
    char value[256], why[128], detail[512], limit_s[16], *pattern = NULL;
    json_t *items, *body;
    int limit, n, given;
    rt_uuid_t u;
    if (api_begin (arg, req, &caller) != 0)
        return;
    q = api_query (req);
    if (!q)
        return;
    limit = api_limit (req, q);
    if (limit < 0)
        goto cleanup;
    phone = rt_form_get (q, "phone");
    email = rt_form_get (q, "email");
    text = rt_form_get (q, "q");
    given = (phone != NULL) + (email != NULL) + (text != NULL);
    if (given != 1) {
        rt_http_problem (req, 400, "bad-query", "give exactly one of phone, email and q");
        goto cleanup;
    }
    cursor = rt_form_get (q, "cursor");
    if (cursor && rt_uuid_parse (cursor, &u) != 0) {
        rt_http_problem (req, 400, "bad-cursor", "the cursor is not one this API gave");
        goto cleanup;
    }
    snprintf (limit_s, sizeof limit_s, "%d", limit + 1);
    if (phone || email) {
        /* National numbers are read in --default-country, as the
         * consumer reads them. */
        const char *v[4] = {phone ? "phone" : "email", value, cursor, limit_s};
        if (identity_point_normalize (phone ? IDENTITY_POINT_PHONE : IDENTITY_POINT_EMAIL,
                                      phone ? phone : email, caller.country, value, sizeof value,
                                      why, sizeof why) != 0) {
            snprintf (detail, sizeof detail, "%s \"%.200s\" cannot be read: %s",
                      phone ? "phone" : "email", phone ? phone : email, why);
            rt_http_problem (req, 400, "bad-query", detail);
            goto cleanup;
        }
        res = rt_db_exec_prepared (caller.db, "api_cust_by_point", 4, v, NULL, NULL, 0);
    } else {
        const char *v[3] = {NULL, cursor, limit_s};
        if (!text[0] || strlen (text) > S_Q_MAX || !rt_utf8_text_ok (text, strlen (text))) {
            rt_http_problem (req, 400, "bad-query", "q must be UTF-8 text of 1 to 200 bytes");
            goto cleanup;
        }
        pattern = s_like (text);
        if (!pattern) {
            rt_http_problem (req, 500, "internal", "out of memory");
            goto cleanup;
        }
        v[0] = pattern;
        res = rt_db_exec_prepared (caller.db, "api_cust_by_text", 3, v, NULL, NULL, 0);
    }
    if (!res) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    n = PQntuples (res);
    items = json_array ();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new (items, json_loads (PQgetvalue (res, i, 0), 0, NULL));
    body = json_pack ("{s:o, s:o}", "items", items, "next_cursor",
                      n > limit ? json_string (PQgetvalue (res, limit - 1, 1)) : json_null ());
    rt_http_reply_json (req, 200, body);
cleanup:
    free (pattern);
    PQclear (res);
    rt_form_destroy (&q);
}

/* --- PATCH /v1/customers/{id} --- */

/* The card's fields an operator may edit, and where each goes. */
static const struct {
    const char *name; /* the JSON member */
    size_t offset;    /* its identity_profile_t field */
} s_fields[] = {
    {"name", offsetof (identity_profile_t, name)},
    {"birthday", offsetof (identity_profile_t, birthday)},
    {"locale", offsetof (identity_profile_t, locale)},
    {"time_zone", offsetof (identity_profile_t, time_zone)},
    {"preferred_channel", offsetof (identity_profile_t, preferred_channel)},
    {"notes", offsetof (identity_profile_t, notes)},
    {"manager", offsetof (identity_profile_t, manager)},
};
#define S_NFIELDS (sizeof s_fields / sizeof s_fields[0])

/* Reads a merge patch into changes: a string sets a field, null clears
 * it (RFC 7396). 0, or -1 having answered 400 (an unknown member) or 422
 * (a value of the wrong type). Strings are lent from patch. */
static int
s_patch_read (rt_http_request_t *req, json_t *patch, identity_profile_t *changes, size_t *nchanges)
{
    const char *key;
    json_t *value;
    char detail[256];
    *nchanges = 0;
    json_object_foreach (patch, key, value)
    {
        size_t i;
        for (i = 0; i < S_NFIELDS && strcmp (s_fields[i].name, key) != 0; i++)
            ;
        if (i == S_NFIELDS) {
            snprintf (detail, sizeof detail,
                      "unknown field \"%.64s\": the card's editable fields are name, birthday,"
                      " locale, time_zone, preferred_channel, notes and manager",
                      key);
            rt_http_problem (req, 400, "unknown-field", detail);
            return -1;
        }
        if (!json_is_string (value) && !json_is_null (value)) {
            snprintf (detail, sizeof detail, "\"%s\" must be a string, or null to clear it", key);
            rt_http_problem (req, 422, "invalid", detail);
            return -1;
        }
        *(const char **)((char *)changes + s_fields[i].offset) =
            json_is_null (value) ? "" : json_string_value (value);
        (*nchanges)++;
    }
    return 0;
}

void
api_customer_patch (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    identity_profile_t changes = {0};
    char id[RT_UUID_STR_LEN + 1], err[256] = "", detail[256];
    json_t *patch = NULL;
    size_t nchanges;
    identity_status_t st;
    if (api_begin (arg, req, &caller) != 0)
        return;
    if (s_path_id (req, "customer", id) != 0)
        return;
    patch = rt_http_body_json (req);
    if (!patch)
        return;
    if (!json_is_object (patch)) {
        rt_http_problem (req, 422, "invalid", "the body must be a JSON object (a merge patch)");
        goto cleanup;
    }
    if (s_patch_read (req, patch, &changes, &nchanges) != 0)
        goto cleanup;
    if (changes.manager && changes.manager[0]) {
        const char *v[1] = {changes.manager};
        PGresult *res = rt_db_exec_prepared (caller.db, "api_cust_operator", 1, v, NULL, NULL, 0);
        bool known;
        if (!res) {
            api_db_problem (req, caller.db);
            goto cleanup;
        }
        known = PQntuples (res) == 1;
        PQclear (res);
        if (!known) {
            snprintf (detail, sizeof detail, "manager \"%.64s\" is no operator", changes.manager);
            rt_http_problem (req, 422, "invalid", detail);
            goto cleanup;
        }
    }
    if (nchanges > 0) {
        if (rt_db_begin (caller.db) != 0) {
            api_db_problem (req, caller.db);
            goto cleanup;
        }
        st = identity_update_profile (caller.db, id, &changes, caller.who, err, sizeof err);
        if (st != IDENTITY_OK) {
            rt_db_rollback (caller.db);
            s_identity_problem (req, st, err);
            goto cleanup;
        }
        if (rt_db_commit (caller.db) != 0) {
            api_db_problem (req, caller.db);
            goto cleanup;
        }
    }
    s_reply_card (req, &caller, id, 200, NULL);
cleanup:
    json_decref (patch);
}

/* --- POST /v1/customers/{id}/merge --- */

/* An optional string member: 0 with *out set (NULL when absent), or -1
 * having answered 422. */
static int
s_opt_string (rt_http_request_t *req, json_t *body, const char *name, const char **out)
{
    json_t *v = json_object_get (body, name);
    char detail[128];
    *out = NULL;
    if (!v || json_is_null (v))
        return 0;
    if (!json_is_string (v)) {
        snprintf (detail, sizeof detail, "\"%s\" must be a string", name);
        rt_http_problem (req, 422, "invalid", detail);
        return -1;
    }
    *out = json_string_value (v);
    return 0;
}

void
api_customer_merge (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    char id[RT_UUID_STR_LEN + 1], merge_id[IDENTITY_ID_LEN + 1], err[512] = "";
    const char *with, *reason, *suggestion;
    json_t *body = NULL;
    identity_status_t st;
    rt_uuid_t u;
    if (api_begin (arg, req, &caller) != 0)
        return;
    if (s_path_id (req, "customer", id) != 0)
        return;
    body = rt_http_body_json (req);
    if (!body)
        return;
    if (!json_is_object (body)) {
        rt_http_problem (req, 422, "invalid", "the body must be a JSON object");
        goto cleanup;
    }
    if (s_opt_string (req, body, "with", &with) != 0 ||
        s_opt_string (req, body, "reason", &reason) != 0 ||
        s_opt_string (req, body, "suggestion_id", &suggestion) != 0)
        goto cleanup;
    if (!with) {
        rt_http_problem (req, 422, "invalid", "\"with\" names the customer to merge into this one");
        goto cleanup;
    }
    if (rt_uuid_parse (with, &u) != 0) {
        rt_http_problem (req, 404, "not-found", "no such customer to merge");
        goto cleanup;
    }
    if (rt_db_begin (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    st = suggestion ? identity_suggestion_accept (caller.db, suggestion, id, with, caller.who, err,
                                                  sizeof err)
                    : IDENTITY_OK;
    if (st == IDENTITY_OK)
        st = identity_merge (caller.db, id, with, caller.who, reason, NULL, &s_hooks, merge_id, err,
                             sizeof err);
    if (st != IDENTITY_OK) {
        rt_db_rollback (caller.db);
        s_identity_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    s_reply_card (req, &caller, id, 200, json_pack ("{s:s}", "merge_id", merge_id));
cleanup:
    json_decref (body);
}

/* --- POST /v1/merges/{id}/undo --- */

void
api_merge_undo (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    identity_status_t st;
    if (api_begin (arg, req, &caller) != 0)
        return;
    if (s_path_id (req, "merge", id) != 0)
        return;
    if (rt_db_begin (caller.db) != 0) {
        api_db_problem (req, caller.db);
        return;
    }
    st = identity_unmerge (caller.db, id, caller.who, &s_hooks, err, sizeof err);
    if (st != IDENTITY_OK) {
        rt_db_rollback (caller.db);
        s_identity_problem (req, st, err);
        return;
    }
    if (rt_db_commit (caller.db) != 0) {
        api_db_problem (req, caller.db);
        return;
    }
    rt_http_reply_json (req, 200, json_pack ("{s:s, s:b}", "merge_id", id, "undone", 1));
}

/* --- POST /v1/suggestions/{id}/reject --- */

void
api_suggestion_reject (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    identity_status_t st;
    if (api_begin (arg, req, &caller) != 0)
        return;
    if (s_path_id (req, "suggestion", id) != 0)
        return;
    if (rt_db_begin (caller.db) != 0) {
        api_db_problem (req, caller.db);
        return;
    }
    st = identity_suggestion_reject (caller.db, id, caller.who, err, sizeof err);
    if (st != IDENTITY_OK) {
        rt_db_rollback (caller.db);
        s_identity_problem (req, st, err);
        return;
    }
    if (rt_db_commit (caller.db) != 0) {
        api_db_problem (req, caller.db);
        return;
    }
    rt_http_reply_json (req, 200,
                        json_pack ("{s:s, s:s}", "suggestion_id", id, "resolution", "rejected"));
}
