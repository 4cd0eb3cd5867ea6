/*
 * rt_http_api: the layers an API route can have between routing and its
 * handler (see rt_http_server.h's head for what each answers): CORS,
 * authentication and Idempotency-Key replay.
 *
 * Where each runs in a connection's life (rt_http_conn.c calls in):
 *
 *   head complete  a preflight is answered (rt_http_api_preflight_route,
 *                  rt_http_api_preflight); else, once routed, the CORS
 *                  headers go into the answer and the auth hook decides
 *                  (rt_http_api_admit), before a byte of body is read;
 *   body complete  the Idempotency-Key is looked up, and the handler runs
 *                  only for a key reserved now (rt_http_api_dispatch);
 *   the answer     stored under the reserved key, or the key released for
 *                  a 5xx (rt_http_api_answered), before it is written;
 *   request freed  a key still reserved is released (rt_http_api_abandon):
 *                  the request ended unanswered, at a stop.
 *
 * A route's own settings win over the server's defaults; "set" flags tell
 * a route that chose none from one that chose nothing. The headers the
 * server adds before the handler runs (CORS) are left out of a stored
 * answer, so a replay carries the CORS headers of its own request.
 *
 * The fingerprint hashes the body first and then the method, path, query
 * and that hash, so a large body is never copied to be hashed with the
 * rest.
 */
#include "rt_http_internal.h"

#include "rt_clock.h"
#include "rt_crypto.h"
#include "rt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest Idempotency-Key (Stripe's, and the draft's examples fit). */
#define S_KEY_MAX         255
#define S_DEFAULT_MAX_AGE 600

struct rt_http_cors_rules_t {
    char **origins;      /* the allowed origins; owned */
    size_t norigins;     /* their number */
    bool any;            /* "*": every origin */
    char *allow_headers; /* Access-Control-Allow-Headers' value; owned */
    char *expose;        /* Access-Control-Expose-Headers' value; owned, NULL when none */
    char max_age[24];    /* Access-Control-Max-Age's value */
    bool credentials;    /* Access-Control-Allow-Credentials: true */
};

/* --- settings --- */

void
rt_http_cors_rules_free (rt_http_cors_rules_t *rules)
{
    if (!rules)
        return;
    for (size_t i = 0; i < rules->norigins; i++)
        free (rules->origins[i]);
    free (rules->origins);
    free (rules->allow_headers);
    free (rules->expose);
    free (rules);
}

/* A NULL-terminated list joined with ", "; NULL when out of memory. */
static char *
s_join (const char *const *list)
{
    rt_buf_t b = {0};
    rt_buf_reserve (&b, 0);
    for (size_t i = 0; list[i]; i++) {
        if (i > 0)
            rt_buf_puts (&b, ", ");
        rt_buf_puts (&b, list[i]);
    }
    if (b.failed) {
        rt_buf_free (&b);
        return NULL;
    }
    return b.data;
}

/* A header value from the settings: no CR, LF, and not empty. */
static bool
s_value_ok (const char *v)
{
    return v && *v && !strpbrk (v, "\r\n");
}

static int
s_cors_compile (const rt_http_cors_t *cors, rt_http_cors_rules_t **out)
{
    static const char *const default_headers[] = {"Authorization", "Content-Type",
                                                  "Idempotency-Key", NULL};
    rt_http_cors_rules_t *rules;
    size_t n = 0;
    *out = NULL;
    if (!cors)
        return 0;
    if (!cors->origins || !cors->origins[0])
        return -1;
    while (cors->origins[n]) {
        if (!s_value_ok (cors->origins[n]))
            return -1;
        n++;
    }
    rules = calloc (1, sizeof *rules);
    if (!rules)
        return -1;
    rules->origins = calloc (n, sizeof *rules->origins);
    if (!rules->origins)
        goto error;
    for (size_t i = 0; i < n; i++) {
        if (strcmp (cors->origins[i], "*") == 0)
            rules->any = true;
        rules->origins[i] = strdup (cors->origins[i]);
        if (!rules->origins[i])
            goto error;
        rules->norigins++;
    }
    rules->credentials = cors->credentials;
    if (rules->any && rules->credentials)
        goto error; /* browsers refuse "*" with credentials */
    rules->allow_headers = s_join (cors->headers ? cors->headers : default_headers);
    if (!rules->allow_headers)
        goto error;
    if (cors->expose && cors->expose[0]) {
        rules->expose = s_join (cors->expose);
        if (!rules->expose)
            goto error;
    }
    snprintf (rules->max_age, sizeof rules->max_age, "%d",
              cors->max_age_s > 0 ? cors->max_age_s : S_DEFAULT_MAX_AGE);
    *out = rules;
    return 0;
error:
    rt_http_cors_rules_free (rules);
    return -1;
}

void
rt_http_server_auth (rt_http_server_t *self, rt_http_auth_fn fn, void *arg)
{
    self->routes.defaults.auth_set = true;
    self->routes.defaults.auth = fn;
    self->routes.defaults.auth_arg = arg;
}

void
rt_http_route_auth (rt_http_route_t *route, rt_http_auth_fn fn, void *arg)
{
    rt_http_layers_t *l = rt_http_route_layers (route);
    l->auth_set = true;
    l->auth = fn;
    l->auth_arg = arg;
}

static int
s_cors_set (rt_http_layers_t *l, const rt_http_cors_t *cors)
{
    rt_http_cors_rules_t *rules;
    if (s_cors_compile (cors, &rules) != 0)
        return -1;
    rt_http_cors_rules_free (l->cors);
    l->cors = rules;
    l->cors_set = true;
    return 0;
}

int
rt_http_server_cors (rt_http_server_t *self, const rt_http_cors_t *cors)
{
    return s_cors_set (&self->routes.defaults, cors);
}

int
rt_http_route_cors (rt_http_route_t *route, const rt_http_cors_t *cors)
{
    return s_cors_set (rt_http_route_layers (route), cors);
}

int
rt_http_route_idempotent (rt_http_route_t *route, rt_http_idem_store_t *store, bool required)
{
    rt_http_layers_t *l = rt_http_route_layers (route);
    rt_http_routes_t *table = rt_http_route_table (route);
    l->idem = store;
    l->idem_required = required;
    if (table->metrics && !l->replays) {
        char labels[512];
        snprintf (labels, sizeof labels, "server=\"%s\",route=\"%s\"", table->server,
                  rt_http_route_pattern_of (route));
        l->replays =
            rt_metrics_counter (table->metrics, "retain_http_idempotent_replays_total", labels,
                                "Answers replayed for a repeated Idempotency-Key.");
        if (!l->replays)
            return -1;
    }
    return 0;
}

/* The layer settings that apply to route. */
static const rt_http_layers_t *
s_auth_of (rt_http_route_t *route)
{
    const rt_http_layers_t *l = rt_http_route_layers (route);
    return l->auth_set ? l : &rt_http_route_table (route)->defaults;
}

static const rt_http_cors_rules_t *
s_cors_of (rt_http_route_t *route)
{
    const rt_http_layers_t *l = rt_http_route_layers (route);
    return l->cors_set ? l->cors : rt_http_route_table (route)->defaults.cors;
}

/* --- the request's side --- */

const char *
rt_http_principal (const rt_http_request_t *req)
{
    return req->principal;
}

/* RFC 6750's b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/",
 * then any "=". */
static bool
s_b64token (const char *p)
{
    const char *start = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           (*p && strchr ("-._~+/", *p)))
        p++;
    if (p == start)
        return false;
    while (*p == '=')
        p++;
    return *p == '\0';
}

const char *
rt_http_bearer (const rt_http_request_t *req)
{
    const char *value = NULL, *name, *v;
    int count = 0;
    for (size_t i = 0; rt_http_header_at (req, i, &name, &v); i++) {
        if (strcasecmp (name, "Authorization") == 0) {
            value = v;
            count++;
        }
    }
    if (count != 1 || strncasecmp (value, "Bearer", 6) != 0 || value[6] != ' ')
        return NULL;
    value += 6;
    while (*value == ' ')
        value++;
    return s_b64token (value) ? value : NULL;
}

/* --- CORS --- */

static bool
s_origin_allowed (const rt_http_cors_rules_t *rules, const char *origin)
{
    if (!origin || !*origin)
        return false;
    if (rules->any)
        return true;
    for (size_t i = 0; i < rules->norigins; i++) {
        if (strcmp (rules->origins[i], origin) == 0)
            return true;
    }
    return false;
}

/* Vary, and for an allowed origin the headers every answer carries;
 * -1 when out of memory. */
static int
s_cors_headers (rt_http_request_t *req, const rt_http_cors_rules_t *rules)
{
    const char *origin = rt_http_header (req, "Origin");
    int rc = rt_http_header_put (req, "Vary", "Origin");
    if (!s_origin_allowed (rules, origin))
        return rc;
    rc |= rt_http_header_put (req, "Access-Control-Allow-Origin", rules->any ? "*" : origin);
    if (rules->credentials)
        rc |= rt_http_header_put (req, "Access-Control-Allow-Credentials", "true");
    if (rules->expose)
        rc |= rt_http_header_put (req, "Access-Control-Expose-Headers", rules->expose);
    return rc;
}

rt_http_route_t *
rt_http_api_preflight_route (const rt_http_request_t *req)
{
    const rt_http_routes_t *routes = &req->worker->server->routes;
    const char *wanted;
    char allow[128];
    rt_http_route_t *own, *route;
    if (strcmp (req->h.method, "OPTIONS") != 0 || !rt_http_header (req, "Origin"))
        return NULL;
    wanted = rt_http_header (req, "Access-Control-Request-Method");
    if (!wanted || !*wanted)
        return NULL;
    own = rt_http_routes_find (routes, "OPTIONS", req, allow, sizeof allow);
    if (own && rt_http_route_method (own))
        return NULL; /* a route of its own for OPTIONS answers */
    route = rt_http_routes_find (routes, wanted, req, allow, sizeof allow);
    return route && s_cors_of (route) ? route : NULL;
}

void
rt_http_api_preflight (rt_http_request_t *req, rt_http_route_t *route)
{
    const rt_http_cors_rules_t *rules = s_cors_of (route);
    const char *origin = rt_http_header (req, "Origin");
    const char *wanted = rt_http_header (req, "Access-Control-Request-Method");
    char allow[128];
    int rc = 0;
    req->route = route; /* counted as an answer of the route it asks about */
    rt_http_routes_find (&req->worker->server->routes, wanted, req, allow, sizeof allow);
    rc |= rt_http_header_put (req, "Vary", "Origin");
    if (s_origin_allowed (rules, origin)) {
        /* A route for any method lists none: the method asked is allowed. */
        const char *methods = allow[0] ? allow : wanted;
        bool token = true;
        for (const char *p = methods; *p && token; p++)
            token = rt_http_is_tchar ((unsigned char)*p) || *p == ',' || *p == ' ';
        rc |= rt_http_header_put (req, "Access-Control-Allow-Origin", rules->any ? "*" : origin);
        if (rules->credentials)
            rc |= rt_http_header_put (req, "Access-Control-Allow-Credentials", "true");
        if (token)
            rc |= rt_http_header_put (req, "Access-Control-Allow-Methods", methods);
        rc |= rt_http_header_put (req, "Access-Control-Allow-Headers", rules->allow_headers);
        rc |= rt_http_header_put (req, "Access-Control-Max-Age", rules->max_age);
    }
    if (rc != 0) {
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
        return;
    }
    rt_http_reply (req, 204, NULL, NULL, 0);
}

/* --- authentication --- */

rt_http_refusal_t
rt_http_api_admit (rt_http_request_t *req, const char **detail)
{
    const rt_http_cors_rules_t *rules = s_cors_of (req->route);
    const rt_http_layers_t *auth = s_auth_of (req->route);
    char principal[RT_HTTP_PRINCIPAL_MAX] = "";
    char challenge[320];
    rt_http_auth_t verdict;

    *detail = NULL;
    if (rules && s_cors_headers (req, rules) != 0)
        return RT_HTTP_REFUSAL_NO_MEMORY;
    if (!auth->auth)
        return RT_HTTP_REFUSAL_NONE;
    verdict = auth->auth (req, auth->auth_arg, principal, sizeof principal);
    principal[sizeof principal - 1] = '\0';
    switch (verdict) {
    case RT_HTTP_AUTH_ALLOW:
        req->principal = strdup (principal);
        return req->principal ? RT_HTTP_REFUSAL_NONE : RT_HTTP_REFUSAL_NO_MEMORY;
    case RT_HTTP_AUTH_FORBIDDEN:
        return RT_HTTP_REFUSAL_FORBIDDEN;
    case RT_HTTP_AUTH_UNAUTHORIZED:
        break;
    }
    /* RFC 6750 section 3: a token that was sent and refused is named
     * invalid; a request without one is only told the scheme. */
    if (rt_http_header (req, "Authorization")) {
        snprintf (challenge, sizeof challenge, "Bearer realm=\"%s\", error=\"invalid_token\"",
                  req->worker->server->name);
        *detail = "the credentials are not valid";
    } else {
        snprintf (challenge, sizeof challenge, "Bearer realm=\"%s\"", req->worker->server->name);
        *detail = "credentials are required: Authorization: Bearer <API key>";
    }
    if (rt_http_header_put (req, "WWW-Authenticate", challenge) != 0)
        return RT_HTTP_REFUSAL_NO_MEMORY;
    return RT_HTTP_REFUSAL_UNAUTHORIZED;
}

/* --- Idempotency-Key --- */

static bool
s_is_safe (const char *method)
{
    return strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0 ||
           strcmp (method, "OPTIONS") == 0;
}

/* The key of a header value: the bare value (Stripe's form) or an
 * RFC 8941 string (the draft's form, "..." without escapes); 0, or -1
 * when it is empty, over S_KEY_MAX bytes or not visible ASCII. */
static int
s_key_parse (const char *value, char *key, size_t size)
{
    size_t n = strlen (value);
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value++;
        n -= 2;
    }
    if (n == 0 || n > S_KEY_MAX || n >= size)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return -1;
    }
    memcpy (key, value, n);
    key[n] = '\0';
    return 0;
}

/* SHA-256 over the method, path, query and the body's own SHA-256; -1
 * when out of memory. */
static int
s_fingerprint (const rt_http_request_t *req, uint8_t out[RT_HTTP_IDEM_FINGERPRINT_LEN])
{
    rt_buf_t b = {0};
    size_t len;
    const char *body = rt_http_body (req, &len);
    uint8_t body_hash[RT_SHA256_LEN];
    rt_sha256 (body, len, body_hash);
    /* NUL-separated: a method is a token, a path and a query hold no NUL. */
    rt_buf_puts (&b, rt_http_method (req));
    rt_buf_put (&b, "", 1);
    rt_buf_puts (&b, rt_http_path (req));
    rt_buf_put (&b, "", 1);
    rt_buf_puts (&b, rt_http_query (req));
    rt_buf_put (&b, "", 1);
    rt_buf_put (&b, body_hash, sizeof body_hash);
    if (!b.failed)
        rt_sha256 (b.data, b.len, out);
    rt_buf_free (&b);
    return b.failed ? -1 : 0;
}

/* A key and its strings in one block: scope "<server>:<principal>". */
static rt_http_idem_key_t *
s_key_new (const rt_http_request_t *req, const char *key)
{
    const char *server = req->worker->server->name;
    const char *principal = req->principal ? req->principal : "";
    size_t s = strlen (server) + 1 + strlen (principal) + 1, k = strlen (key) + 1;
    rt_http_idem_key_t *self = calloc (1, sizeof *self + s + k);
    char *scope, *copy;
    if (!self)
        return NULL;
    scope = (char *)(self + 1);
    copy = scope + s;
    snprintf (scope, s, "%s:%s", server, principal);
    memcpy (copy, key, k);
    self->scope = scope;
    self->key = copy;
    self->now_ms = rt_clock_now_ms ();
    if (s_fingerprint (req, self->fingerprint) != 0) {
        free (self);
        return NULL;
    }
    return self;
}

static void
s_store_failed (const rt_http_request_t *req, const char *what)
{
    rt_log (RT_LOG_WARN, "HTTP idempotency store failed",
            rt_log_str ("server", req->worker->server->name),
            rt_log_str ("route", rt_http_route_pattern (req)), rt_log_str ("step", what));
}

/* Answers the stored answer again. */
static void
s_replay (rt_http_request_t *req, const rt_http_layers_t *l, const rt_http_idem_response_t *r)
{
    if (!rt_buf_reserve (&req->out_headers, r->headers_len)) {
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
        return;
    }
    rt_buf_put (&req->out_headers, r->headers, r->headers_len);
    if (rt_http_header_put (req, "Idempotent-Replayed", "true") != 0) {
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
        return;
    }
    if (l->replays)
        rt_counter_inc (l->replays);
    rt_http_reply (req, r->status >= 200 && r->status < 500 ? r->status : 500, r->content_type,
                   r->body, r->body_len);
}

/* The Idempotency-Key layer: true when the handler is to run (the key is
 * reserved, or the request has none and needs none), false when the
 * request was answered here. */
static bool
s_idempotent (rt_http_request_t *req, const rt_http_layers_t *l)
{
    const char *value = NULL, *name, *v;
    char key[S_KEY_MAX + 1];
    int count = 0;
    rt_http_idem_key_t *k;
    rt_http_idem_response_t stored = {0};

    for (size_t i = 0; rt_http_header_at (req, i, &name, &v); i++) {
        if (strcasecmp (name, "Idempotency-Key") == 0) {
            value = value ? value : v;
            count++;
        }
    }
    if (!value) {
        if (!l->idem_required)
            return true;
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_IDEMPOTENCY_MISSING, NULL);
        return false;
    }
    if (count > 1 || s_key_parse (value, key, sizeof key) != 0) {
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_IDEMPOTENCY_INVALID, NULL);
        return false;
    }
    k = s_key_new (req, key);
    if (!k) {
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_NO_MEMORY, NULL);
        return false;
    }
    switch (l->idem->ops->begin (l->idem, k, &stored)) {
    case RT_HTTP_IDEM_NEW:
        req->idem = k;
        req->idem_store = l->idem;
        return true;
    case RT_HTTP_IDEM_REPLAY:
        s_replay (req, l, &stored);
        rt_http_idem_response_free (&stored);
        break;
    case RT_HTTP_IDEM_IN_PROGRESS:
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_IDEMPOTENCY_BUSY, NULL);
        break;
    case RT_HTTP_IDEM_MISMATCH:
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_IDEMPOTENCY_REUSED, NULL);
        break;
    case RT_HTTP_IDEM_ERROR:
        s_store_failed (req, "begin");
        rt_http_request_refuse (req, RT_HTTP_REFUSAL_IDEMPOTENCY_STORE, NULL);
        break;
    }
    free (k);
    return false;
}

void
rt_http_api_dispatch (rt_http_request_t *req)
{
    rt_http_route_t *route = req->route;
    const rt_http_layers_t *l = rt_http_route_layers (route);
    if (l->idem && !s_is_safe (req->h.method) && !s_idempotent (req, l))
        return;
    req->out_mark = req->out_headers.len;
    rt_http_route_handler (route) (req, rt_http_route_arg (route));
}

void
rt_http_api_answered (rt_http_request_t *req, int status, const char *content_type,
                      const void *body, size_t len)
{
    rt_http_idem_key_t *k = req->idem;
    rt_http_idem_store_t *store = req->idem_store;
    if (!k)
        return;
    req->idem = NULL;
    k->now_ms = rt_clock_now_ms ();
    if (status >= 500) {
        if (store->ops->release (store, k) != 0)
            s_store_failed (req, "release");
    } else {
        /* Lent for the call: the store copies what it keeps. */
        rt_http_idem_response_t r = {
            .status = status,
            .content_type = (char *)content_type,
            .headers = req->out_headers.data ? req->out_headers.data + req->out_mark : (char *)"",
            .headers_len = req->out_headers.len - req->out_mark,
            .body = body ? (char *)body : (char *)"",
            .body_len = len,
        };
        if (store->ops->complete (store, k, &r) != 0)
            s_store_failed (req, "complete");
    }
    free (k);
}

void
rt_http_api_abandon (rt_http_request_t *req)
{
    rt_http_idem_key_t *k = req->idem;
    if (!k)
        return;
    req->idem = NULL;
    k->now_ms = rt_clock_now_ms ();
    if (req->idem_store->ops->release (req->idem_store, k) != 0)
        s_store_failed (req, "release");
    free (k);
}
