/*
 * api: the server, the caller, the worker's connection, and every route of
 * the operator API (api.h has the rules of who sees what).
 *
 * A request goes: the apikey hook (401 before the body is read), then
 * s_begin: the principal split into operator and role, the worker's
 * connection, the caller's team (NULL for an admin: no restriction), then
 * the handler. A handler that changes something does it in one
 * transaction on routing's functions, so what it writes and what it puts
 * in the outbox commit together; a routing refusal is decided before
 * anything is written and maps to its status (s_routing_problem).
 *
 * Lists page by an opaque cursor: conversations in the order of their
 * wait (the longest waiting first, the answered ones after, by id among
 * equals), a timeline by its global seq. The cursor names the last row
 * given, so rows added meanwhile neither repeat nor push others out.
 *
 * A reply's message id: with an Idempotency-Key, a UUIDv7 of this moment
 * whose 74 bits after the time are the SHA-256 of the caller and the key;
 * before recording it, the conversation's outbound entries are searched
 * for those bits, so a request the idempotency store runs twice (a
 * reservation taken over after a crash) finds the first one's id and
 * routing records and sends nothing twice. Without the header, a new
 * UUIDv7.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "routing.h"
#include "rt_apikey.h"
#include "rt_channel.h"
#include "rt_civil.h"
#include "rt_clock.h"
#include "rt_crypto.h"
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

/* One worker's connection. */
typedef struct s_conn_t {
    rt_db_t *db;           /* owned; statements registered */
    int64_t retry_ms;      /* after a failed connect: no attempt before this (wall ms) */
    struct s_conn_t *next; /* the API's list, for destroy */
} s_conn_t;

struct api_t {
    rt_http_server_t *server;   /* the operator API */
    rt_apikey_auth_t *auth;     /* keys of service "router" */
    rt_http_idem_store_t *idem; /* Idempotency-Key store (PostgreSQL) */
    char *dsn;                  /* owned */
    pthread_key_t key;          /* each worker's s_conn_t */
    pthread_mutex_t lock;       /* guards conns */
    s_conn_t *conns;            /* every worker's connection */
};

/* A request's caller, once s_begin has let it in. */
typedef struct {
    rt_db_t *db;                       /* the worker's connection, up */
    char who[ROUTING_OP_MAX + 1];      /* the operator id */
    char role[RT_APIKEY_ROLE_MAX + 1]; /* operator, supervisor, admin */
    char team[ROUTING_OP_MAX + 1];     /* their team */
    const char *scope;                 /* team to restrict to; NULL for an admin */
} s_caller_t;

/* --- SQL --- */

#define S_TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The caller's team and whether they may work. */
static const char *s_sql_me =
    "SELECT team_id, disabled_at IS NOT NULL FROM routing.operators WHERE id = $1";

/* What the caller (team $1, NULL: everything) may see. */
#define S_VISIBLE                                                                                  \
    "($1::text IS NULL OR c.team_id = $1 OR EXISTS (SELECT 1 FROM routing.operators o"             \
    " WHERE o.id = c.assignee AND o.team_id = $1) OR (c.team_id IS NULL AND c.assignee IS NULL))"

/* A conversation as the API shows it; the last column is its list order. */
#define S_CONV_COLS                                                                                \
    "SELECT c.id, c.customer_id, cu.name, c.channel, c.assignee, c.team_id, c.status,"             \
    " c.unanswered, " S_TS ("c.waiting_since") ", c.version, " S_TS ("c.created_at") ", " S_TS (   \
        "c.snoozed_until") ", lm.kind, lm.body->>'text', "                                         \
                           "lm.channel, " S_TS ("lm.occurred_at") ","                              \
                                                                  " co"                            \
                                                                  "ale"                            \
                                                                  "sce"                            \
                                                                  "(("                             \
                                                                  "ext"                            \
                                                                  "rac"                            \
                                                                  "t("                             \
                                                                  "epo"                            \
                                                                  "ch "                            \
                                                                  "FRO"                            \
                                                                  "M "                             \
                                                                  "c."                             \
                                                                  "wai"                            \
                                                                  "tin"                            \
                                                                  "g_"                             \
                                                                  "sin"                            \
                                                                  "ce)"                            \
                                                                  " * "                            \
                                                                  "100"                            \
                                                                  "0):"                            \
                                                                  ":bi"                            \
                                                                  "gin"                            \
                                                                  "t,"                             \
                                                                  " 92"                            \
                                                                  "233"                            \
                                                                  "720"                            \
                                                                  "368"                            \
                                                                  "547"                            \
                                                                  "758"                            \
                                                                  "07)"                            \
                                                                  " AS"                            \
                                                                  " k"                             \
                                                                  " FR"                            \
                                                                  "OM "                            \
                                                                  "rou"                            \
                                                                  "tin"                            \
                                                                  "g."                             \
                                                                  "con"                            \
                                                                  "ver"                            \
                                                                  "sat"                            \
                                                                  "ion"                            \
                                                                  "s "                             \
                                                                  "c "                             \
                                                                  "JOI"                            \
                                                                  "N "                             \
                                                                  "crm"                            \
                                                                  ".cu"                            \
                                                                  "sto"                            \
                                                                  "mer"                            \
                                                                  "s "                             \
                                                                  "cu "                            \
                                                                  "ON "                            \
                                                                  "cu."                            \
                                                                  "id "                            \
                                                                  "="                              \
                                                                  " c."                            \
                                                                  "cus"                            \
                                                                  "tom"                            \
                                                                  "er_"                            \
                                                                  "id "                            \
                                                                  "LEF"                            \
                                                                  "T "                             \
                                                                  "JOI"                            \
                                                                  "N "                             \
                                                                  "LAT"                            \
                                                                  "ERA"                            \
                                                                  "L "                             \
                                                                  "(SE"                            \
                                                                  "LEC"                            \
                                                                  "T "                             \
                                                                  "t."                             \
                                                                  "kin"                            \
                                                                  "d, "                            \
                                                                  "t."                             \
                                                                  "bod"                            \
                                                                  "y, "                            \
                                                                  "t."                             \
                                                                  "cha"                            \
                                                                  "nne"                            \
                                                                  "l,"                             \
                                                                  " t."                            \
                                                                  "occ"                            \
                                                                  "urr"                            \
                                                                  "ed_"                            \
                                                                  "at "                            \
                                                                  "FRO"                            \
                                                                  "M "                             \
                                                                  "rou"                            \
                                                                  "tin"                            \
                                                                  "g."                             \
                                                                  "tim"                            \
                                                                  "eli"                            \
                                                                  "ne "                            \
                                                                  "t "                             \
                                                                  "WHE"                            \
                                                                  "RE "                            \
                                                                  "t."                             \
                                                                  "con"                            \
                                                                  "ver"                            \
                                                                  "sat"                            \
                                                                  "ion"                            \
                                                                  "_id"                            \
                                                                  " = "                            \
                                                                  "c."                             \
                                                                  "id"                             \
                                                                  " AN"                            \
                                                                  "D "                             \
                                                                  "t."                             \
                                                                  "kin"                            \
                                                                  "d "                             \
                                                                  "IN "                            \
                                                                  "('"                             \
                                                                  "inb"                            \
                                                                  "oun"                            \
                                                                  "d',"                            \
                                                                  " '"                             \
                                                                  "out"                            \
                                                                  "bou"                            \
                                                                  "nd'"                            \
                                                                  ") "                             \
                                                                  "ORD"                            \
                                                                  "ER "                            \
                                                                  "BY "                            \
                                                                  "t."                             \
                                                                  "seq"                            \
                                                                  " DE"                            \
                                                                  "SC "                            \
                                                                  "LIM"                            \
                                                                  "IT "                            \
                                                                  "1) "                            \
                                                                  "lm"                             \
                                                                  " ON"                            \
                                                                  " tr"                            \
                                                                  "ue"

static const char *s_sql_conv = S_CONV_COLS " WHERE c.id = $2::uuid AND " S_VISIBLE;

/* $2 assignee filter: NULL any, '' nobody, else that operator; $3 team;
 * $4 status (NULL: all but resolved); $5/$6 the cursor; $7 the limit. */
static const char *s_sql_list =
    "SELECT * FROM (" S_CONV_COLS " WHERE " S_VISIBLE
    " AND ($2::text IS NULL OR ($2 = '' AND c.assignee IS NULL) OR c.assignee = $2)"
    " AND ($3::text IS NULL OR c.team_id = $3)"
    " AND (($4::text IS NULL AND c.status <> 'resolved') OR c.status = $4)) s"
    " WHERE ($5::bigint IS NULL OR (s.k, s.id) > ($5::bigint, $6::uuid))"
    " ORDER BY s.k, s.id LIMIT $7::integer";

static const char *s_sql_timeline =
    "SELECT seq, kind, event_id, channel, operator_id, body::text, " S_TS (
        "occurred_at") " FROM routing.timeline WHERE conversation_id = $1::uuid AND seq > "
                       "$2::bigint"
                       " ORDER BY seq LIMIT $3::integer";

/* An outbound entry of this conversation whose id ends with $2 (the bits
 * derived from an Idempotency-Key). */
static const char *s_sql_sent =
    "SELECT event_id FROM routing.timeline WHERE conversation_id = $1::uuid"
    " AND kind IN ('outbound', 'note') AND right(event_id::text, 22) = $2 LIMIT 1";

/* Columns of S_CONV_COLS. */
enum {
    C_ID,
    C_CUSTOMER,
    C_NAME,
    C_CHANNEL,
    C_ASSIGNEE,
    C_TEAM,
    C_STATUS,
    C_UNANSWERED,
    C_WAITING,
    C_VERSION,
    C_CREATED,
    C_SNOOZED,
    C_LM_KIND,
    C_LM_TEXT,
    C_LM_CHANNEL,
    C_LM_AT,
    C_KEY
};

/* --- the worker's connection --- */

static int
s_register (rt_db_t *db)
{
    char err[256] = "";
    if (rt_outbox_prepare (db) != 0 || identity_prepare (db, err, sizeof err) != 0 ||
        routing_prepare (db, err, sizeof err) != 0 || rt_db_prepare (db, "api_me", s_sql_me) != 0 ||
        rt_db_prepare (db, "api_conv", s_sql_conv) != 0 ||
        rt_db_prepare (db, "api_list", s_sql_list) != 0 ||
        rt_db_prepare (db, "api_timeline", s_sql_timeline) != 0 ||
        rt_db_prepare (db, "api_sent", s_sql_sent) != 0) {
        rt_log (RT_LOG_ERROR, "operator API: statements not prepared",
                rt_log_str ("error", err[0] ? err : rt_db_error (db)));
        return -1;
    }
    return 0;
}

/* This worker's connection, up; NULL when the database cannot be had now. */
static rt_db_t *
s_db (api_t *self)
{
    s_conn_t *c = pthread_getspecific (self->key);
    int64_t now = rt_clock_mono_ms ();
    if (!c) {
        c = calloc (1, sizeof *c);
        if (!c)
            return NULL;
        c->db = rt_db_new (self->dsn, "retain-routerd-api");
        if (!c->db) {
            free (c);
            return NULL;
        }
        pthread_mutex_lock (&self->lock);
        c->next = self->conns;
        self->conns = c;
        pthread_mutex_unlock (&self->lock);
        pthread_setspecific (self->key, c);
        /* Statements are registered before the first connect: rt_db
         * prepares them on that and every later connection. */
        if (s_register (c->db) != 0)
            return NULL;
    }
    if (rt_db_is_ok (c->db))
        return c->db;
    if (now < c->retry_ms)
        return NULL;
    if (rt_db_connect (c->db) == 0)
        return c->db;
    c->retry_ms = now + S_RECONNECT_MS;
    rt_log (RT_LOG_WARN, "operator API: database unavailable",
            rt_log_str ("error", rt_db_error (c->db)));
    return NULL;
}

/* --- answers --- */

/* A problem with extra members (steals ext's references; ext may be NULL). */
static void
s_problem_ext (rt_http_request_t *req, int status, const char *suffix, const char *detail,
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

static void
s_routing_problem (rt_http_request_t *req, routing_status_t st, const char *err)
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

static void
s_db_problem (rt_http_request_t *req, rt_db_t *db)
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

/* Lets the request in or answers it: 0 with caller filled, or -1. */
static int
s_begin (api_t *self, rt_http_request_t *req, s_caller_t *caller)
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
    caller->db = s_db (self);
    if (!caller->db) {
        rt_http_problem (req, 503, "database", "the database is unavailable; try again");
        return -1;
    }
    v[0] = caller->who;
    res = rt_db_exec_prepared (caller->db, "api_me", 1, v, NULL, NULL, 0);
    if (!res) {
        s_db_problem (req, caller->db);
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
    return 0;
}

/* --- JSON of rows --- */

static json_t *
s_str_or_null (PGresult *res, int row, int col)
{
    return PQgetisnull (res, row, col) ? json_null () : json_string (PQgetvalue (res, row, col));
}

static json_t *
s_conv_json (PGresult *res, int row)
{
    json_t *last = json_null ();
    if (!PQgetisnull (res, row, C_LM_KIND))
        last = json_pack ("{s:s, s:o, s:o, s:s}", "kind", PQgetvalue (res, row, C_LM_KIND), "text",
                          s_str_or_null (res, row, C_LM_TEXT), "channel",
                          s_str_or_null (res, row, C_LM_CHANNEL), "at",
                          PQgetvalue (res, row, C_LM_AT));
    return json_pack (
        "{s:s, s:{s:s, s:s}, s:s, s:o, s:o, s:s, s:i, s:o, s:I, s:s, s:o, s:o}", "id",
        PQgetvalue (res, row, C_ID), "customer", "id", PQgetvalue (res, row, C_CUSTOMER), "name",
        PQgetvalue (res, row, C_NAME), "channel", PQgetvalue (res, row, C_CHANNEL), "assignee",
        s_str_or_null (res, row, C_ASSIGNEE), "team", s_str_or_null (res, row, C_TEAM), "status",
        PQgetvalue (res, row, C_STATUS), "unanswered", atoi (PQgetvalue (res, row, C_UNANSWERED)),
        "waiting_since", s_str_or_null (res, row, C_WAITING), "version",
        (json_int_t)strtoll (PQgetvalue (res, row, C_VERSION), NULL, 10), "created_at",
        PQgetvalue (res, row, C_CREATED), "snoozed_until", s_str_or_null (res, row, C_SNOOZED),
        "last_message", last);
}

/* The conversation `id` as the caller may see it: the row (owned), or
 * NULL having answered 404 or 503. */
static PGresult *
s_conv_get (rt_http_request_t *req, const s_caller_t *caller, const char *id)
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
        s_db_problem (req, caller->db);
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
static void
s_reply_conv (rt_http_request_t *req, const s_caller_t *caller, const char *id, int status)
{
    PGresult *res = s_conv_get (req, caller, id);
    if (!res)
        return;
    rt_http_reply_json (req, status, s_conv_json (res, 0));
    PQclear (res);
}

/* --- the query string --- */

/* The page size asked (default S_LIMIT_DEFAULT), or -1 having answered 400. */
static int
s_limit (rt_http_request_t *req, const rt_form_t *q)
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

static rt_form_t *
s_query (rt_http_request_t *req)
{
    char err[128];
    const char *q = rt_http_query (req);
    rt_form_t *f = rt_form_parse (q, strlen (q), err, sizeof err);
    if (!f)
        rt_http_problem (req, 400, "bad-query", err);
    return f;
}

/* --- GET /v1/conversations --- */

static void
s_list (rt_http_request_t *req, void *arg)
{
    api_t *self = arg;
    s_caller_t caller;
    rt_form_t *q = NULL;
    PGresult *res = NULL;
    const char *assignee, *team, *status, *cursor;
    char key[24] = "", id[ROUTING_ID_LEN + 1] = "", limit_s[16], next[64];
    const char *v[7];
    json_t *items, *body;
    int limit, n;
    if (s_begin (self, req, &caller) != 0)
        return;
    q = s_query (req);
    if (!q)
        return;
    limit = s_limit (req, q);
    if (limit < 0)
        goto cleanup;
    assignee = rt_form_get (q, "assignee");
    if (assignee && strcmp (assignee, "me") == 0)
        assignee = caller.who;
    else if (assignee && strcmp (assignee, "unassigned") == 0)
        assignee = "";
    else if (assignee && !assignee[0]) {
        rt_http_problem (req, 400, "bad-query", "assignee must be me, unassigned or an id");
        goto cleanup;
    }
    team = rt_form_get (q, "team");
    status = rt_form_get (q, "status");
    if (status && strcmp (status, "open") != 0 && strcmp (status, "pending") != 0 &&
        strcmp (status, "snoozed") != 0 && strcmp (status, "resolved") != 0) {
        rt_http_problem (req, 400, "bad-query",
                         "status must be open, pending, snoozed or resolved");
        goto cleanup;
    }
    cursor = rt_form_get (q, "cursor");
    if (cursor) {
        rt_uuid_t u;
        const char *dot = strchr (cursor, '.');
        char *end;
        long long k;
        if (dot) {
            k = strtoll (cursor, &end, 10);
            (void)k;
        }
        if (!dot || end != dot || dot == cursor || strlen (dot + 1) != ROUTING_ID_LEN ||
            rt_uuid_parse (dot + 1, &u) != 0 || (size_t)(dot - cursor) >= sizeof key) {
            rt_http_problem (req, 400, "bad-cursor", "the cursor is not one this API gave");
            goto cleanup;
        }
        memcpy (key, cursor, (size_t)(dot - cursor));
        key[dot - cursor] = '\0';
        snprintf (id, sizeof id, "%s", dot + 1);
    }
    /* One more than the page: whether there is a next one. */
    snprintf (limit_s, sizeof limit_s, "%d", limit + 1);
    v[0] = caller.scope;
    v[1] = assignee;
    v[2] = team;
    v[3] = status;
    v[4] = cursor ? key : NULL;
    v[5] = cursor ? id : NULL;
    v[6] = limit_s;
    res = rt_db_exec_prepared (caller.db, "api_list", 7, v, NULL, NULL, 0);
    if (!res) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    n = PQntuples (res);
    items = json_array ();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new (items, s_conv_json (res, i));
    body = json_pack ("{s:o}", "items", items);
    if (n > limit) {
        snprintf (next, sizeof next, "%s.%s", PQgetvalue (res, limit - 1, C_KEY),
                  PQgetvalue (res, limit - 1, C_ID));
        json_object_set_new (body, "next_cursor", json_string (next));
    } else {
        json_object_set_new (body, "next_cursor", json_null ());
    }
    rt_http_reply_json (req, 200, body);
cleanup:
    PQclear (res);
    rt_form_destroy (&q);
}

/* --- GET /v1/conversations/{id} --- */

static void
s_get (rt_http_request_t *req, void *arg)
{
    s_caller_t caller;
    if (s_begin (arg, req, &caller) != 0)
        return;
    s_reply_conv (req, &caller, rt_http_param (req, "id"), 200);
}

/* --- GET /v1/conversations/{id}/messages --- */

static void
s_timeline (rt_http_request_t *req, void *arg)
{
    s_caller_t caller;
    rt_form_t *q = NULL;
    PGresult *conv = NULL, *res = NULL;
    const char *id = rt_http_param (req, "id"), *cursor;
    const char *v[3];
    char limit_s[16], *end;
    json_t *items, *body, *b;
    int limit, n;
    if (s_begin (arg, req, &caller) != 0)
        return;
    conv = s_conv_get (req, &caller, id);
    if (!conv)
        return;
    q = s_query (req);
    if (!q)
        goto cleanup;
    limit = s_limit (req, q);
    if (limit < 0)
        goto cleanup;
    cursor = rt_form_get (q, "cursor");
    if (cursor) {
        long long seq = strtoll (cursor, &end, 10);
        if (!*cursor || *end || seq < 0) {
            rt_http_problem (req, 400, "bad-cursor", "the cursor is not one this API gave");
            goto cleanup;
        }
    }
    snprintf (limit_s, sizeof limit_s, "%d", limit + 1);
    v[0] = id;
    v[1] = cursor ? cursor : "0";
    v[2] = limit_s;
    res = rt_db_exec_prepared (caller.db, "api_timeline", 3, v, NULL, NULL, 0);
    if (!res) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    n = PQntuples (res);
    items = json_array ();
    for (int i = 0; i < n && i < limit; i++) {
        b = json_loads (PQgetvalue (res, i, 5), 0, NULL);
        if (!b)
            b = json_object ();
        json_array_append_new (
            items,
            json_pack ("{s:I, s:s, s:o, s:o, s:o, s:O, s:o, s:s}", "seq",
                       (json_int_t)strtoll (PQgetvalue (res, i, 0), NULL, 10), "kind",
                       PQgetvalue (res, i, 1), "id", s_str_or_null (res, i, 2), "channel",
                       s_str_or_null (res, i, 3), "operator_id", s_str_or_null (res, i, 4), "text",
                       json_is_string (json_object_get (b, "text")) ? json_object_get (b, "text")
                                                                    : json_null (),
                       "body", b, "at", PQgetvalue (res, i, 6)));
    }
    body = json_pack ("{s:o, s:o}", "items", items, "next_cursor",
                      n > limit ? json_string (PQgetvalue (res, limit - 1, 0)) : json_null ());
    rt_http_reply_json (req, 200, body);
cleanup:
    PQclear (res);
    PQclear (conv);
    rt_form_destroy (&q);
}

/* --- POST /v1/conversations/{id}/messages --- */

/* The most characters a reply may have on a channel; 0: no limit retain
 * knows of. Telegram's and Viber's are in ../shared/reference/providers.md;
 * the others are the providers' own documented limits: WhatsApp's text
 * body 4096, Messenger's 2000, Instagram's 1000, Twilio's SMS Body 1600. */
static long
s_channel_limit (const char *channel)
{
    static const struct {
        const char *name;
        long limit;
    } limits[] = {{"telegram", 4096},  {"viber", 7000},     {"whatsapp", 4096},
                  {"messenger", 2000}, {"instagram", 1000}, {"sms", 1600}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        if (strcmp (limits[i].name, channel) == 0)
            return limits[i].limit;
    }
    return 0;
}

/* Characters (code points) of valid UTF-8. */
static long
s_chars (const char *s)
{
    long n = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    }
    return n;
}

/* A UUIDv7 of now whose bits after the time come from the caller and
 * their Idempotency-Key; *suffix gets those bits' text (22 characters). */
static void
s_derived_id (const char *principal, const char *key, char out[ROUTING_ID_LEN + 1], char suffix[23])
{
    rt_uuid_t u = rt_uuid_v7 ();
    uint8_t h[RT_SHA256_LEN];
    char *buf = NULL;
    size_t len;
    len = strlen (principal) + strlen (key) + 2;
    buf = malloc (len);
    if (buf) {
        snprintf (buf, len, "%s\n%s", principal, key);
        rt_sha256 (buf, strlen (buf), h);
        free (buf);
        /* Bytes 6-15 but the version nibble and the variant bits. */
        u.b[6] = (uint8_t)(0x70 | (h[0] & 0x0F));
        u.b[7] = h[1];
        u.b[8] = (uint8_t)(0x80 | (h[2] & 0x3F));
        memcpy (&u.b[9], &h[3], 7);
    }
    rt_uuid_format (&u, out);
    snprintf (suffix, 23, "%s", out + 14);
}

static void
s_post_message (rt_http_request_t *req, void *arg)
{
    s_caller_t caller;
    PGresult *conv = NULL, *res = NULL;
    const char *id = rt_http_param (req, "id"), *text, *chname, *key;
    json_t *body = NULL, *jpriv;
    char msgid[ROUTING_ID_LEN + 1], suffix[23], err[256] = "", detail[256];
    const rt_channel_t *ch = NULL;
    bool priv;
    long limit;
    routing_status_t st;
    if (s_begin (arg, req, &caller) != 0)
        return;
    conv = s_conv_get (req, &caller, id);
    if (!conv)
        return;
    body = rt_http_body_json (req);
    if (!body)
        goto cleanup;
    text = json_string_value (json_object_get (body, "text"));
    jpriv = json_object_get (body, "private");
    if (!json_is_object (body) || !text || !text[0] || (jpriv && !json_is_boolean (jpriv))) {
        rt_http_problem (req, 422, "invalid",
                         "the body must be an object with a non-empty string \"text\", and "
                         "\"private\" a boolean when given");
        goto cleanup;
    }
    priv = json_is_true (jpriv);
    chname = json_string_value (json_object_get (body, "channel"));
    if (json_object_get (body, "channel") && !chname) {
        rt_http_problem (req, 422, "invalid", "\"channel\" must be a channel's name");
        goto cleanup;
    }
    if (chname) {
        ch = rt_channel_by_name (chname);
        if (!ch) {
            snprintf (detail, sizeof detail, "no channel \"%.64s\"", chname);
            rt_http_problem (req, 422, "invalid", detail);
            goto cleanup;
        }
    }
    key = rt_http_header (req, "Idempotency-Key");
    if (key)
        s_derived_id (rt_http_principal (req), key, msgid, suffix);
    else {
        rt_uuid_t u = rt_uuid_v7 ();
        rt_uuid_format (&u, msgid);
    }
    if (!priv) {
        const char *used = ch ? ch->name : PQgetvalue (conv, 0, C_CHANNEL);
        limit = s_channel_limit (used);
        if (limit > 0 && s_chars (text) > limit) {
            snprintf (detail, sizeof detail, "the reply has %ld characters; %s allows at most %ld",
                      s_chars (text), used, limit);
            s_problem_ext (req, 422, "reply-too-long", detail,
                           json_pack ("{s:s, s:I}", "channel", used, "limit", (json_int_t)limit));
            goto cleanup;
        }
    }
    if (rt_db_begin (caller.db) != 0) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    if (key) {
        const char *v[2] = {id, suffix};
        res = rt_db_exec_prepared (caller.db, "api_sent", 2, v, NULL, NULL, 0);
        if (!res) {
            rt_db_rollback (caller.db);
            s_db_problem (req, caller.db);
            goto cleanup;
        }
        if (PQntuples (res) == 1)
            snprintf (msgid, sizeof msgid, "%s", PQgetvalue (res, 0, 0));
    }
    if (priv)
        st = routing_note (caller.db, id, caller.who, msgid, text, err, sizeof err);
    else {
        routing_outbound_t out = {.conversation_id = id,
                                  .operator_id = caller.who,
                                  .message_id = msgid,
                                  .text = text,
                                  .channel =
                                      ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED};
        routing_outbound_result_t r;
        st = routing_outbound (caller.db, &out, &r, err, sizeof err);
        if (st == ROUTING_OK)
            st = routing_outbound_emit (caller.db, &out, &r, err, sizeof err);
    }
    if (st != ROUTING_OK) {
        rt_db_rollback (caller.db);
        s_routing_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    rt_http_reply_json (req, 202, json_pack ("{s:s}", "message_id", msgid));
cleanup:
    PQclear (res);
    PQclear (conv);
    json_decref (body);
}

/* --- POST .../assign, resolve, snooze, reopen --- */

/* Unix ms of an RFC 3339 time ("2026-05-01T10:00:00Z", fraction and
 * offset optional parts), or -1. */
static int64_t
s_rfc3339 (const char *s)
{
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
    int64_t ms = 0, scale = 100;
    const char *p;
    if (!s || sscanf (s, "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19 || !rt_civil_valid (y, mo, d) || h > 23 || mi > 59 || sec > 60)
        return -1;
    p = s + n;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z')
        p++;
    else if ((*p == '+' || *p == '-') && sscanf (p + 1, "%2d:%2d", &oh, &om) == 2 &&
             strlen (p) == 6) {
        int sign = *p == '-' ? -1 : 1;
        oh *= sign;
        om *= sign;
        p += 6;
    } else
        return -1;
    if (*p)
        return -1;
    return ((rt_civil_days (y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - (oh * 3600 + om * 60)) *
               1000 +
           ms;
}

/* What one state change calls. */
typedef enum { S_RESOLVE, S_SNOOZE, S_REOPEN, S_ASSIGN } s_change_t;

static void
s_change (rt_http_request_t *req, void *arg, s_change_t what)
{
    s_caller_t caller;
    PGresult *conv = NULL;
    const char *id = rt_http_param (req, "id"), *op = NULL, *team = NULL;
    json_t *body = NULL, *jv;
    char err[256] = "";
    int64_t until = 0, version = 0;
    routing_status_t st;
    if (s_begin (arg, req, &caller) != 0)
        return;
    conv = s_conv_get (req, &caller, id);
    if (!conv)
        return;
    if (what == S_SNOOZE || what == S_ASSIGN) {
        body = rt_http_body_json (req);
        if (!body)
            goto cleanup;
        if (!json_is_object (body)) {
            rt_http_problem (req, 422, "invalid", "the body must be a JSON object");
            goto cleanup;
        }
    }
    if (what == S_SNOOZE) {
        until = s_rfc3339 (json_string_value (json_object_get (body, "until")));
        if (until < 0) {
            rt_http_problem (req, 422, "invalid", "\"until\" must be an RFC 3339 date-time");
            goto cleanup;
        }
        if (until <= rt_clock_now_ms ()) {
            rt_http_problem (req, 422, "invalid", "\"until\" must be in the future");
            goto cleanup;
        }
    }
    if (what == S_ASSIGN) {
        op = json_string_value (json_object_get (body, "operator_id"));
        team = json_string_value (json_object_get (body, "team_id"));
        jv = json_object_get (body, "version");
        if ((!op) == (!team) || (jv && !json_is_integer (jv))) {
            rt_http_problem (req, 422, "invalid",
                             "give exactly one of \"operator_id\" and \"team_id\" (strings), and "
                             "\"version\" an integer when given");
            goto cleanup;
        }
        version =
            jv ? json_integer_value (jv) : strtoll (PQgetvalue (conv, 0, C_VERSION), NULL, 10);
    }
    if (rt_db_begin (caller.db) != 0) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    switch (what) {
    case S_RESOLVE:
        st = routing_resolve (caller.db, id, caller.who, err, sizeof err);
        break;
    case S_SNOOZE:
        st = routing_snooze (caller.db, id, until, caller.who, err, sizeof err);
        break;
    case S_REOPEN:
        st = routing_reopen (caller.db, id, caller.who, err, sizeof err);
        break;
    default:
        st = routing_transfer (caller.db, id, op, team, caller.who, version, NULL, err, sizeof err);
        break;
    }
    if (st != ROUTING_OK) {
        rt_db_rollback (caller.db);
        s_routing_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    s_reply_conv (req, &caller, id, 200);
cleanup:
    PQclear (conv);
    json_decref (body);
}

static void
s_assign (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_ASSIGN);
}

static void
s_resolve (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_RESOLVE);
}

static void
s_snooze (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_SNOOZE);
}

static void
s_reopen (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_REOPEN);
}

/* --- PUT /v1/operators/me/presence --- */

static void
s_presence (rt_http_request_t *req, void *arg)
{
    s_caller_t caller;
    json_t *body;
    const char *p;
    char err[256] = "";
    size_t handed = 0;
    routing_status_t st;
    if (s_begin (arg, req, &caller) != 0)
        return;
    body = rt_http_body_json (req);
    if (!body)
        return;
    p = json_string_value (json_object_get (body, "presence"));
    if (!p ||
        (strcmp (p, "online") != 0 && strcmp (p, "away") != 0 && strcmp (p, "offline") != 0)) {
        rt_http_problem (req, 422, "invalid", "\"presence\" must be online, away or offline");
        goto cleanup;
    }
    if (rt_db_begin (caller.db) != 0) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    st = routing_presence (caller.db, caller.who, p, rt_clock_now_ms (), &handed, err, sizeof err);
    if (st != ROUTING_OK) {
        rt_db_rollback (caller.db);
        s_routing_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        s_db_problem (req, caller.db);
        goto cleanup;
    }
    rt_http_reply_json (req, 200,
                        json_pack ("{s:s, s:s, s:I}", "operator_id", caller.who, "presence", p,
                                   "handed", (json_int_t)handed));
cleanup:
    json_decref (body);
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
        {"GET", "/v1/conversations", s_list, false},
        {"GET", "/v1/conversations/{id}", s_get, false},
        {"GET", "/v1/conversations/{id}/messages", s_timeline, false},
        {"POST", "/v1/conversations/{id}/messages", s_post_message, true},
        {"POST", "/v1/conversations/{id}/assign", s_assign, false},
        {"POST", "/v1/conversations/{id}/resolve", s_resolve, false},
        {"POST", "/v1/conversations/{id}/snooze", s_snooze, false},
        {"POST", "/v1/conversations/{id}/reopen", s_reopen, false},
        {"PUT", "/v1/operators/me/presence", s_presence, false},
        {"GET", "/openapi.json", s_openapi, false},
    };
    rt_http_server_config_t sc = {0};
    api_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    if (pthread_key_create (&self->key, NULL) != 0) {
        pthread_mutex_destroy (&self->lock);
        free (self);
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->dsn = strdup (config->dsn);
    if (!self->dsn) {
        rt_errf (err, errlen, "out of memory");
        goto fail;
    }
    self->auth = rt_apikey_auth_new (config->dsn, "router", 0, config->metrics, err, errlen);
    if (!self->auth)
        goto fail;
    self->idem = rt_http_idem_pg_new (config->dsn, NULL, err, errlen);
    if (!self->idem)
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

void
api_stop (api_t **self_p)
{
    api_t *self;
    s_conn_t *c, *next;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    rt_http_server_destroy (&self->server);
    rt_apikey_auth_destroy (&self->auth);
    rt_http_idem_store_destroy (&self->idem);
    for (c = self->conns; c; c = next) {
        next = c->next;
        rt_db_destroy (&c->db);
        free (c);
    }
    pthread_key_delete (self->key);
    pthread_mutex_destroy (&self->lock);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}
