/*
 * api: the server, the worker's connection, the caller, problem answers,
 * JSON of rows and the query string: what every route of the operator
 * API stands on (api.h has the rules of who sees what), and the routes
 * (api_start). The handlers of the conversations' routes and of presence
 * are in api_conversations.c, apart so that each file holds one concern;
 * /openapi.json, the server's own document, is served here.
 *
 * A request goes: the apikey hook (401 before the body is read), then
 * api_begin: the principal split into operator and role, the worker's
 * connection, the caller's team (NULL for an admin: no restriction), then
 * the handler. A handler that changes something does it in one
 * transaction on routing's functions, so what it writes and what it puts
 * in the outbox commit together; a routing refusal is decided before
 * anything is written and maps to its status (api_routing_problem).
 *
 * Every statement the API runs is here, prepared on each worker's
 * connection (s_register); the handlers run them by name.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "api_int.h"
#include "routing.h"
#include "rt_apikey.h"
#include "rt_db_local.h"
#include "rt_form.h"
#include "rt_http_idem_pg.h"
#include "rt_http_parse.h"
#include "rt_http_server.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_uuid.h"

/* Between two connection attempts of one worker. */
#define S_RECONNECT_MS 1000

/* Page sizes: the default and the most a client may ask. */
#define S_LIMIT_DEFAULT 50
#define S_LIMIT_MAX     200

struct api_t {
    rt_http_server_t *server;   /* the operator API */
    rt_apikey_auth_t *auth;     /* keys of service "router" */
    rt_http_idem_store_t *idem; /* Idempotency-Key store (PostgreSQL) */
    rt_db_local_t *dbs;         /* each worker's connection, statements registered */
    api_stream_t *stream;       /* GET /v1/stream's feed (api_stream.c) */
    char country[8];            /* api_config_t.default_country, "" for rt_phone's */
};

/* --- SQL --- */

#define S_TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The caller's team and whether they may work. */
static const char *s_sql_me =
    "SELECT team_id, disabled_at IS NOT NULL FROM routing.operators WHERE id = $1";

/* What the caller (team $1, NULL: everything) may see. */
#define S_VISIBLE                                                                                  \
    "($1::text IS NULL OR c.team_id = $1 OR EXISTS (SELECT 1 FROM routing.operators o"             \
    " WHERE o.id = c.assignee AND o.team_id = $1) OR (c.team_id IS NULL AND c.assignee IS NULL))"

/* The list's order: the oldest unanswered message's unix ms, answered
 * conversations last. AT TIME ZONE 'UTC' gives the same value as the
 * timestamptz's epoch in a form that is immutable, so routing's 006
 * indexes it. */
#define S_LIST_K                                                                                   \
    "coalesce((extract(epoch FROM c.waiting_since AT TIME ZONE 'UTC') * 1000)::bigint,"            \
    " 9223372036854775807)"

/* A conversation as the API shows it: its row, its last message, the SLA
 * clock due next among those running (none while paused) and whether one
 * is breached and not yet stopped; the last column is its list order. */
/* clang-format off */
#define S_CONV_COLS                                                                                \
    "SELECT c.id, c.customer_id, cu.name, c.channel, c.assignee, c.team_id, c.status,"             \
    " c.unanswered, " S_TS ("c.waiting_since") ", c.version, " S_TS ("c.created_at") ","           \
    " " S_TS ("c.snoozed_until") ", lm.kind, lm.body->>'text', lm.channel,"                        \
    " " S_TS ("lm.occurred_at") ", sla.kind, " S_TS ("sla.due_at") ","                             \
    " array_to_json(c.flags)::text,"                                                              \
    " EXISTS (SELECT 1 FROM routing.sla_timers b WHERE b.conversation_id = c.id"                   \
    " AND b.breached_at IS NOT NULL AND b.stopped_at IS NULL),"                                    \
    " " S_LIST_K " AS k"                                                                           \
    " FROM routing.conversations c JOIN crm.customers cu ON cu.id = c.customer_id"                 \
    " LEFT JOIN LATERAL (SELECT t.kind, t.body, t.channel, t.occurred_at FROM routing.timeline t"  \
    " WHERE t.conversation_id = c.id AND t.kind IN ('inbound', 'outbound')"                        \
    " ORDER BY t.seq DESC LIMIT 1) lm ON true"                                                     \
    " LEFT JOIN LATERAL (SELECT st.kind, st.due_at FROM routing.sla_timers st"                     \
    " WHERE st.conversation_id = c.id AND st.stopped_at IS NULL AND st.breached_at IS NULL"        \
    " AND st.paused_at IS NULL ORDER BY st.due_at LIMIT 1) sla ON true"
/* clang-format on */

static const char *s_sql_conv = S_CONV_COLS " WHERE c.id = $2::uuid AND " S_VISIBLE;

/* The list, in two steps: the page's ids from the conversations alone,
 * read in order from routing's 006 indexes, then the columns of those
 * rows only. One statement per way in, chosen by api_list from the
 * parameters, so that each has one generic plan as good as a custom one
 * and PostgreSQL plans it once per connection (one statement for every
 * case would be planned afresh at each request, the cheapest plan
 * depending on which parameters are NULL). Together they split S_VISIBLE
 * and the filters without overlap:
 *   api_list        a team's (no assignee filter, not resolved): routed to
 *                   the team (a conversation held by one of its operators
 *                   is in its team: routing 008), or with no team and
 *                   nobody;
 *   api_list_all    an admin's, everything not resolved;
 *   api_list_held   one operator's (the visibility checked on their rows);
 *   api_list_nobody nobody's, the team's or no team's;
 *   api_list_done   resolved ones (read without an index; S_VISIBLE with
 *                   the team's operators as one set, so that the estimate
 *                   of a scan stays below what would have it JIT-compiled).
 * Every statement takes the same parameters, and names each: $1 the
 * caller's team (NULL: an admin); $2 assignee filter: NULL any, '' nobody,
 * else that operator; $3 team; $4 status (NULL: all but resolved); $5/$6
 * the cursor; $7 the limit. The conditions on parameters alone ("$2 IS
 * NULL") are the statement's case, checked once per run. */
/* clang-format off */
#define S_LIST_BRANCH(from, where)                                                                 \
    "(SELECT c.id, " S_LIST_K " AS k FROM " from " WHERE " where                                   \
    " AND ($3::text IS NULL OR c.team_id = $3) AND (" S_LIST_K ", c.id) >"                         \
    " (coalesce($5::bigint, -9223372036854775807),"                                                \
    " coalesce($6::uuid, '00000000-0000-0000-0000-000000000000')) ORDER BY 2, 1 LIMIT $7)"
#define S_LIST_C    "routing.conversations c"
#define S_LIST_OPEN " AND c.status <> 'resolved' AND ($4::text IS NULL OR c.status = $4)"
#define S_LIST(page)                                                                               \
    "SELECT * FROM (" S_CONV_COLS " WHERE c.id = ANY (ARRAY (SELECT id FROM (" page ") u"          \
    " ORDER BY k, id LIMIT $7))) s ORDER BY s.k, s.id"
static const char *s_sql_list = S_LIST (
    S_LIST_BRANCH (S_LIST_C, "$2::text IS NULL AND c.team_id = $1" S_LIST_OPEN)
    " UNION ALL " S_LIST_BRANCH (S_LIST_C, "$2::text IS NULL AND $1::text IS NOT NULL"
                                           " AND c.team_id IS NULL AND c.assignee IS NULL" S_LIST_OPEN));
static const char *s_sql_list_all =
    S_LIST (S_LIST_BRANCH (S_LIST_C, "$2::text IS NULL AND $1::text IS NULL" S_LIST_OPEN));
static const char *s_sql_list_held = S_LIST (
    S_LIST_BRANCH (S_LIST_C, "c.assignee = $2 AND $2 <> '' AND " S_VISIBLE S_LIST_OPEN));
static const char *s_sql_list_nobody = S_LIST (S_LIST_BRANCH (
    S_LIST_C, "$2 = '' AND c.assignee IS NULL AND ($1::text IS NULL OR c.team_id = $1"
              " OR c.team_id IS NULL)" S_LIST_OPEN));
static const char *s_sql_list_done = S_LIST (S_LIST_BRANCH (
    S_LIST_C, "$4::text = 'resolved' AND c.status = 'resolved' AND ($1::text IS NULL"
              " OR c.team_id = $1 OR c.assignee IN (SELECT o.id FROM routing.operators o"
              " WHERE o.team_id = $1) OR (c.team_id IS NULL AND c.assignee IS NULL))"
              " AND ($2::text IS NULL OR ($2 = '' AND c.assignee IS NULL) OR c.assignee = $2)"));
/* clang-format on */

/* The origin (routing 009) as the API shows it: private_reply_until, kept
 * in unix ms, as RFC 3339 like every time the API gives. */
/* clang-format off */
static const char *s_sql_timeline =
    "SELECT seq, kind, event_id, channel, operator_id, body::text, " S_TS ("occurred_at") ","
    " CASE WHEN jsonb_typeof(origin->'private_reply_until') = 'number'"
    " THEN jsonb_set(origin, '{private_reply_until}', to_jsonb(" S_TS (
        "to_timestamp((origin->>'private_reply_until')::float8 / 1000)") "))"
    " ELSE origin END::text"
    " FROM routing.timeline WHERE conversation_id = $1::uuid AND seq > $2::bigint"
    " ORDER BY seq LIMIT $3::integer";
/* clang-format on */

/* An outbound entry of this conversation whose id ends with $2 (the bits
 * derived from an Idempotency-Key). */
static const char *s_sql_sent =
    "SELECT event_id FROM routing.timeline WHERE conversation_id = $1::uuid"
    " AND kind IN ('outbound', 'note') AND right(event_id::text, 22) = $2 LIMIT 1";

/* --- the worker's connection --- */

static int
s_register (rt_db_t *db, void *arg)
{
    char err[256] = "";
    (void)arg;
    if (rt_outbox_prepare (db) != 0 || identity_prepare (db, err, sizeof err) != 0 ||
        routing_prepare (db, err, sizeof err) != 0 || rt_db_prepare (db, "api_me", s_sql_me) != 0 ||
        rt_db_prepare (db, "api_conv", s_sql_conv) != 0 ||
        rt_db_prepare (db, "api_list", s_sql_list) != 0 ||
        rt_db_prepare (db, "api_list_all", s_sql_list_all) != 0 ||
        rt_db_prepare (db, "api_list_held", s_sql_list_held) != 0 ||
        rt_db_prepare (db, "api_list_nobody", s_sql_list_nobody) != 0 ||
        rt_db_prepare (db, "api_list_done", s_sql_list_done) != 0 ||
        rt_db_prepare (db, "api_timeline", s_sql_timeline) != 0 ||
        rt_db_prepare (db, "api_sent", s_sql_sent) != 0 || api_transcript_prepare (db) != 0 ||
        api_customers_prepare (db, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "operator API: statements not prepared",
                rt_log_str ("error", err[0] ? err : rt_db_error (db)));
        return -1;
    }
    return 0;
}

/* --- answers --- */

/* A problem with extra members (steals ext's references; ext may be NULL). */
void
api_problem_ext (rt_http_request_t *req, int status, const char *suffix, const char *detail,
                 json_t *ext)
{
    char type[128];
    json_t *j;
    char *text;
    snprintf (type, sizeof type, "https://retain.dev/problems/%s", suffix);
    j = json_pack ("{s:s, s:s, s:i, s:s}", "type", type, "title", rt_http_status_text (status),
                   "status", status, "detail", detail);
    if (j && ext)
        json_object_update (j, ext);
    json_decref (ext);
    text = j ? json_dumps (j, JSON_COMPACT) : NULL;
    json_decref (j);
    if (!text) {
        rt_http_problem (req, 500, "internal", "out of memory");
        return;
    }
    rt_http_reply (req, status, "application/problem+json", text, strlen (text));
    free (text);
}

void
api_routing_problem (rt_http_request_t *req, routing_status_t st, const char *err)
{
    switch (st) {
    case ROUTING_ERR_INVALID:
        rt_http_problem (req, 422, "invalid", err);
        break;
    case ROUTING_ERR_NOT_FOUND:
        rt_http_problem (req, 404, "not-found", err);
        break;
    case ROUTING_ERR_CONFLICT:
        rt_http_problem (req, 409, "conflict", err);
        break;
    case ROUTING_ERR_CAPACITY:
        rt_http_problem (req, 409, "capacity", err);
        break;
    case ROUTING_ERR_CHANNEL:
        rt_http_problem (req, 422, "channel-not-used", err);
        break;
    case ROUTING_ERR_STATE:
        rt_http_problem (req, 409, "state", err);
        break;
    default:
        rt_log (RT_LOG_ERROR, "operator API: database failed", rt_log_str ("error", err));
        rt_http_problem (req, 503, "database", "the database failed; try again");
        break;
    }
}

void
api_db_problem (rt_http_request_t *req, rt_db_t *db)
{
    rt_log (RT_LOG_ERROR, "operator API: query failed", rt_log_str ("error", rt_db_error (db)));
    rt_http_problem (req, 503, "database", "the database failed; try again");
}

static void
s_not_found (rt_http_request_t *req)
{
    rt_http_problem (req, 404, "not-found", "no such conversation");
}

/* --- the caller --- */

rt_db_t *
api_db (api_t *self)
{
    return rt_db_local_get (self->dbs, NULL);
}

/* Lets the request in or answers it: 0 with caller filled, or -1. */
int
api_begin (api_t *self, rt_http_request_t *req, api_caller_t *caller)
{
    const char *principal = rt_http_principal (req);
    const char *v[1];
    PGresult *res;
    memset (caller, 0, sizeof *caller);
    if (!principal || rt_apikey_principal_split (principal, caller->who, sizeof caller->who,
                                                 caller->role, sizeof caller->role) != 0) {
        rt_http_problem (req, 401, "unauthorized", NULL);
        return -1;
    }
    caller->db = api_db (self);
    if (!caller->db) {
        rt_http_problem (req, 503, "database", "the database is unavailable; try again");
        return -1;
    }
    v[0] = caller->who;
    res = rt_db_exec_prepared (caller->db, "api_me", 1, v, NULL, NULL, 0);
    if (!res) {
        api_db_problem (req, caller->db);
        return -1;
    }
    /* A key whose operator is gone or disabled opens nothing (disable
     * revokes the keys too; this closes the cache's window). */
    if (PQntuples (res) != 1 || strcmp (PQgetvalue (res, 0, 1), "t") == 0) {
        PQclear (res);
        rt_http_problem (req, 401, "unauthorized", NULL);
        return -1;
    }
    snprintf (caller->team, sizeof caller->team, "%s", PQgetvalue (res, 0, 0));
    PQclear (res);
    caller->scope = strcmp (caller->role, "admin") == 0 ? NULL : caller->team;
    caller->country = self->country[0] ? self->country : NULL;
    return 0;
}

/* --- JSON of rows --- */

json_t *
api_str_or_null (PGresult *res, int row, int col)
{
    return PQgetisnull (res, row, col) ? json_null () : json_string (PQgetvalue (res, row, col));
}

/* A nullable column as a string or null. */
static void
s_kcol (rt_jsonw_t *w, const char *key, PGresult *res, int row, int col)
{
    rt_jsonw_kstring (w, key, PQgetisnull (res, row, col) ? NULL : PQgetvalue (res, row, col));
}

void
api_conv_write (rt_jsonw_t *w, PGresult *res, int row)
{
    const char *flags = PQgetvalue (res, row, C_FLAGS);
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "id", PQgetvalue (res, row, C_ID));
    rt_jsonw_key (w, "customer");
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "id", PQgetvalue (res, row, C_CUSTOMER));
    rt_jsonw_kstring (w, "name", PQgetvalue (res, row, C_NAME));
    rt_jsonw_object_end (w);
    rt_jsonw_kstring (w, "channel", PQgetvalue (res, row, C_CHANNEL));
    s_kcol (w, "assignee", res, row, C_ASSIGNEE);
    s_kcol (w, "team", res, row, C_TEAM);
    rt_jsonw_kstring (w, "status", PQgetvalue (res, row, C_STATUS));
    rt_jsonw_kint (w, "unanswered", atoi (PQgetvalue (res, row, C_UNANSWERED)));
    s_kcol (w, "waiting_since", res, row, C_WAITING);
    rt_jsonw_kint (w, "version", strtoll (PQgetvalue (res, row, C_VERSION), NULL, 10));
    rt_jsonw_kstring (w, "created_at", PQgetvalue (res, row, C_CREATED));
    s_kcol (w, "snoozed_until", res, row, C_SNOOZED);
    rt_jsonw_key (w, "last_message");
    if (PQgetisnull (res, row, C_LM_KIND)) {
        rt_jsonw_null (w);
    } else {
        rt_jsonw_object (w);
        rt_jsonw_kstring (w, "kind", PQgetvalue (res, row, C_LM_KIND));
        s_kcol (w, "text", res, row, C_LM_TEXT);
        s_kcol (w, "channel", res, row, C_LM_CHANNEL);
        rt_jsonw_kstring (w, "at", PQgetvalue (res, row, C_LM_AT));
        rt_jsonw_object_end (w);
    }
    rt_jsonw_key (w, "sla_due");
    if (PQgetisnull (res, row, C_SLA_KIND)) {
        rt_jsonw_null (w);
    } else {
        rt_jsonw_object (w);
        rt_jsonw_kstring (w, "kind", PQgetvalue (res, row, C_SLA_KIND));
        rt_jsonw_kstring (w, "due_at", PQgetvalue (res, row, C_SLA_DUE));
        rt_jsonw_object_end (w);
    }
    rt_jsonw_kbool (w, "sla_breached", strcmp (PQgetvalue (res, row, C_SLA_BREACHED), "t") == 0);
    /* PostgreSQL's own JSON (the row's flags array). */
    rt_jsonw_key (w, "flags");
    rt_jsonw_raw (w, !PQgetisnull (res, row, C_FLAGS) && flags[0] ? flags : "[]");
    rt_jsonw_object_end (w);
}

json_t *
api_conv_json (PGresult *res, int row)
{
    rt_buf_t b = {0};
    rt_jsonw_t w;
    json_t *j = NULL;
    rt_jsonw_init (&w, &b);
    api_conv_write (&w, res, row);
    if (rt_jsonw_ok (&w))
        j = json_loadb (b.data, b.len, 0, NULL);
    rt_buf_free (&b);
    return j;
}

int
api_reply_written (rt_http_request_t *req, int status, rt_buf_t *b, const rt_jsonw_t *w)
{
    int rc;
    if (!rt_jsonw_ok (w)) {
        rt_buf_free (b);
        return rt_http_problem (req, 500, "internal", "the answer could not be encoded");
    }
    rc = rt_http_reply (req, status, "application/json", b->data, b->len);
    rt_buf_free (b);
    return rc;
}

/* The conversation `id` as the caller may see it: the row (owned), or
 * NULL having answered 404 or 503. */
PGresult *
api_conv_get (rt_http_request_t *req, const api_caller_t *caller, const char *id)
{
    rt_uuid_t u;
    const char *v[2] = {caller->scope, id};
    PGresult *res;
    if (!id || rt_uuid_parse (id, &u) != 0) {
        s_not_found (req);
        return NULL;
    }
    res = rt_db_exec_prepared (caller->db, "api_conv", 2, v, NULL, NULL, 0);
    if (!res) {
        api_db_problem (req, caller->db);
        return NULL;
    }
    if (PQntuples (res) != 1) {
        PQclear (res);
        s_not_found (req);
        return NULL;
    }
    return res;
}

/* Answers `status` with the conversation as it is now. */
void
api_reply_conv (rt_http_request_t *req, const api_caller_t *caller, const char *id, int status)
{
    PGresult *res = api_conv_get (req, caller, id);
    rt_buf_t b = {0};
    rt_jsonw_t w;
    if (!res)
        return;
    rt_jsonw_init (&w, &b);
    api_conv_write (&w, res, 0);
    PQclear (res);
    api_reply_written (req, status, &b, &w);
}

/* --- the query string --- */

/* The page size asked (default S_LIMIT_DEFAULT), or -1 having answered 400. */
int
api_limit (rt_http_request_t *req, const rt_form_t *q)
{
    const char *l = rt_form_get (q, "limit");
    char *end;
    long n;
    if (!l)
        return S_LIMIT_DEFAULT;
    n = strtol (l, &end, 10);
    if (!*l || *end || n < 1 || n > S_LIMIT_MAX) {
        rt_http_problem (req, 400, "bad-query", "limit must be an integer from 1 to 200");
        return -1;
    }
    return (int)n;
}

rt_form_t *
api_query (rt_http_request_t *req)
{
    char err[128];
    const char *q = rt_http_query (req);
    rt_form_t *f = rt_form_parse (q, strlen (q), err, sizeof err);
    if (!f)
        rt_http_problem (req, 400, "bad-query", err);
    return f;
}

/* --- GET /openapi.json --- */

static void
s_openapi (rt_http_request_t *req, void *arg)
{
    (void)arg;
    rt_http_reply (req, 200, "application/json", api_openapi_json, api_openapi_json_len);
}

/* --- the server --- */

int
api_migrate (rt_db_t *db, char *err, size_t errlen)
{
    if (rt_apikey_migrate (db, err, errlen) < 0 || rt_http_idem_pg_migrate (db, err, errlen) < 0)
        return -1;
    return 0;
}

api_t *
api_start (const api_config_t *config, char *err, size_t errlen)
{
    static const struct {
        const char *method;
        const char *pattern;
        rt_http_handler_fn fn;
        bool idempotent;
    } routes[] = {
        {"GET", "/v1/conversations", api_list, false},
        {"GET", "/v1/conversations/{id}", api_get, false},
        {"GET", "/v1/conversations/{id}/messages", api_timeline, false},
        {"POST", "/v1/conversations/{id}/messages", api_post_message, true},
        {"POST", "/v1/conversations/{id}/assign", api_assign, false},
        {"POST", "/v1/conversations/{id}/resolve", api_resolve, false},
        {"POST", "/v1/conversations/{id}/snooze", api_snooze, false},
        {"POST", "/v1/conversations/{id}/reopen", api_reopen, false},
        {"POST", "/v1/conversations/{id}/transcript-link", api_transcript_link, false},
        {"PUT", "/v1/operators/me/presence", api_presence, false},
        {"GET", "/v1/customers", api_customer_list, false},
        {"GET", "/v1/customers/{id}", api_customer_get, false},
        {"PATCH", "/v1/customers/{id}", api_customer_patch, false},
        {"POST", "/v1/customers/{id}/merge", api_customer_merge, true},
        {"POST", "/v1/merges/{id}/undo", api_merge_undo, false},
        {"POST", "/v1/suggestions/{id}/reject", api_suggestion_reject, false},
        {"GET", "/v1/stream", api_stream_get, false},
        {"GET", "/openapi.json", s_openapi, false},
    };
    rt_http_server_config_t sc = {0};
    api_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    snprintf (self->country, sizeof self->country, "%s",
              config->default_country ? config->default_country : "");
    self->dbs = rt_db_local_new (config->dsn, "retain-routerd-api", s_register, NULL,
                                 S_RECONNECT_MS, err, errlen);
    if (!self->dbs)
        goto fail;
    self->auth = rt_apikey_auth_new (config->dsn, "router", 0, config->metrics, err, errlen);
    if (!self->auth)
        goto fail;
    self->idem = rt_http_idem_pg_new (config->dsn, NULL, err, errlen);
    if (!self->idem)
        goto fail;
    self->stream =
        api_stream_new (config->dsn, config->stream_retention_ms, config->metrics, err, errlen);
    if (!self->stream)
        goto fail;
    sc.address = config->address;
    sc.name = "router";
    sc.threads = config->threads;
    sc.metrics = config->metrics;
    self->server = rt_http_server_new (&sc, err, errlen);
    if (!self->server)
        goto fail;
    rt_http_server_auth (self->server, rt_apikey_auth_fn, self->auth);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        rt_http_route_t *r =
            rt_http_route (self->server, routes[i].method, routes[i].pattern, routes[i].fn, self);
        if (!r || (routes[i].idempotent && rt_http_route_idempotent (r, self->idem, false) != 0)) {
            rt_errf (err, errlen, "route %s %s not registered", routes[i].method,
                     routes[i].pattern);
            goto fail;
        }
    }
    {
        /* A transcript's link is its own credential: no key is asked. */
        rt_http_route_t *r = rt_http_route (self->server, "GET", "/v1/transcripts/{token}",
                                            api_transcript_open, self);
        if (!r) {
            rt_errf (err, errlen, "route GET /v1/transcripts/{token} not registered");
            goto fail;
        }
        rt_http_route_auth (r, NULL, NULL);
    }
    if (rt_http_server_start (self->server, err, errlen) != 0)
        goto fail;
    return self;
fail:
    api_stop (&self);
    return NULL;
}

int
api_port (const api_t *self)
{
    return rt_http_server_port (self->server);
}

api_stream_t *
api_streams (api_t *self)
{
    return self->stream;
}

void
api_stop (api_t **self_p)
{
    api_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    /* The workers first: no thread uses a connection once the server is gone. */
    api_stream_stop (self->stream); /* no more posts; the destroy ends the streams */
    rt_http_server_destroy (&self->server);
    api_stream_destroy (&self->stream);
    rt_apikey_auth_destroy (&self->auth);
    rt_http_idem_store_destroy (&self->idem);
    rt_db_local_destroy (&self->dbs);
    free (self);
    *self_p = NULL;
}
