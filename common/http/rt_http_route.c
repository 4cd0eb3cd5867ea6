/*
 * rt_http_route: routes by method and path pattern, and the access metrics
 * by route and status (see rt_http_route in rt_http_server.h).
 *
 * Routes are registered before the server starts and never change after,
 * so the workers read the table without a lock. A route's counters are
 * created on the first response of each status and kept in an array of
 * atomic pointers: the registry's mutex is taken once per (route, status),
 * never per request. Two workers racing on the first response of a status
 * get the same counter from the registry, so the race is harmless.
 *
 * Matching is a linear scan: a server has a handful of routes, and the
 * comparison stops at the first differing segment.
 *
 * Each route also carries the settings of its API layers (auth, CORS,
 * Idempotency-Key), which rt_http_api.c reads and applies.
 */
#include "rt_codec.h"
#include "rt_http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STATUSES 500 /* 100..599 */

struct rt_http_route_t {
    char *method;                          /* NULL: any method */
    char *pattern;                         /* as registered; slash-asterisk for a catch-all */
    char *segbuf;                          /* the pattern's segments, NUL-separated */
    const char *seg[RT_HTTP_MAX_SEGMENTS]; /* a literal, or a param's name */
    size_t seglen[RT_HTTP_MAX_SEGMENTS];   /* the literal's length */
    bool is_param[RT_HTTP_MAX_SEGMENTS];   /* {name} segment */
    size_t nsegments;                      /* segments used */
    size_t literals;                       /* literal segments: the more, the more specific */
    bool catch_all;                        /* matches any path, tried last */
    rt_http_handler_fn handler;            /* what answers */
    void *arg;                             /* passed to handler */
    rt_http_layers_t layers;               /* auth, CORS, Idempotency-Key (rt_http_api.c) */
    rt_http_routes_t *table;               /* the table it belongs to */
    rt_histogram_t *duration;              /* first byte to response, seconds */
    _Atomic (rt_counter_t *) by_status[S_STATUSES]; /* responses by status, made on first use */
    rt_http_route_t *next;                          /* the table's order */
};

static void
s_route_free (rt_http_route_t *route)
{
    if (!route)
        return;
    free (route->method);
    free (route->pattern);
    free (route->segbuf);
    rt_http_cors_rules_free (route->layers.cors);
    free (route);
}

static int
s_route_metrics (rt_http_routes_t *routes, rt_http_route_t *route)
{
    char labels[512];
    if (!routes->metrics)
        return 0;
    snprintf (labels, sizeof labels, "server=\"%s\",route=\"%s\"", routes->server, route->pattern);
    route->duration =
        rt_metrics_histogram (routes->metrics, "retain_http_request_duration_seconds", labels,
                              "HTTP request first byte to response.", NULL, 0);
    return route->duration ? 0 : -1;
}

int
rt_http_routes_init (rt_http_routes_t *routes, rt_metrics_t *metrics, const char *server)
{
    memset (routes, 0, sizeof *routes);
    routes->metrics = metrics;
    routes->server = server;
    routes->none = calloc (1, sizeof *routes->none);
    if (!routes->none)
        return -1;
    routes->none->pattern = strdup ("none");
    if (!routes->none->pattern)
        return -1;
    return s_route_metrics (routes, routes->none);
}

void
rt_http_routes_fini (rt_http_routes_t *routes)
{
    rt_http_route_t *route = routes->first;
    while (route) {
        rt_http_route_t *next = route->next;
        s_route_free (route);
        route = next;
    }
    s_route_free (routes->none);
    rt_http_cors_rules_free (routes->defaults.cors);
    memset (routes, 0, sizeof *routes);
}

/* A pattern byte: visible ASCII that needs no escaping in a metric label
 * and cannot start a query or fragment. */
static bool
s_pattern_byte (char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '?' && c != '#';
}

/* Splits pattern into route's segments; -1 on a malformed pattern. */
static int
s_compile (rt_http_route_t *route, const char *pattern)
{
    char *p;
    if (pattern[0] != '/')
        return -1;
    for (const char *q = pattern; *q; q++) {
        if (!s_pattern_byte (*q))
            return -1;
    }
    route->segbuf = strdup (pattern + 1);
    if (!route->segbuf)
        return -1;
    p = route->segbuf;
    for (;;) {
        char *slash = strchr (p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen (p);
        if (route->nsegments == RT_HTTP_MAX_SEGMENTS)
            return -1;
        if (slash)
            *slash = '\0';
        if (n >= 3 && p[0] == '{' && p[n - 1] == '}') {
            p[n - 1] = '\0';
            for (char *c = p + 1; *c; c++) {
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '_'))
                    return -1;
            }
            route->seg[route->nsegments] = p + 1;
            route->is_param[route->nsegments] = true;
        } else {
            if (memchr (p, '{', n) || memchr (p, '}', n))
                return -1;
            route->seg[route->nsegments] = p;
            route->seglen[route->nsegments] = n;
            route->literals++;
        }
        route->nsegments++;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

rt_http_route_t *
rt_http_routes_add (rt_http_routes_t *routes, const char *method, const char *pattern,
                    rt_http_handler_fn handler, void *arg)
{
    rt_http_route_t *route = calloc (1, sizeof *route);
    if (!route)
        return NULL;
    route->handler = handler;
    route->arg = arg;
    route->table = routes;
    if (method) {
        for (const char *p = method; *p; p++) {
            if (!rt_http_is_tchar ((unsigned char)*p))
                goto error;
        }
        route->method = strdup (method);
        if (!route->method || !*method)
            goto error;
    }
    if (!pattern || strcmp (pattern, "/*") == 0) {
        route->catch_all = true;
        route->pattern = strdup ("/*");
        if (!route->pattern)
            goto error;
    } else {
        route->pattern = strdup (pattern);
        if (!route->pattern || s_compile (route, pattern) != 0)
            goto error;
    }
    if (s_route_metrics (routes, route) != 0)
        goto error;
    if (routes->last)
        routes->last->next = route;
    else
        routes->first = route;
    routes->last = route;
    return route;
error:
    s_route_free (route);
    return NULL;
}

/* The request path's segments (after the leading '/'); returns their
 * number, or RT_HTTP_MAX_SEGMENTS + 1 when there are more. */
static size_t
s_split (const char *path, const char **seg, size_t *len)
{
    size_t n = 0;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr (p, '/');
        if (n == RT_HTTP_MAX_SEGMENTS)
            return n + 1;
        seg[n] = p;
        len[n] = slash ? (size_t)(slash - p) : strlen (p);
        n++;
        if (!slash)
            return n;
        p = slash + 1;
    }
}

static bool
s_path_matches (const rt_http_route_t *route, const char **seg, const size_t *len, size_t n)
{
    if (route->catch_all)
        return true;
    if (n != route->nsegments)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (route->is_param[i]) {
            if (len[i] == 0)
                return false;
        } else if (len[i] != route->seglen[i] || memcmp (seg[i], route->seg[i], len[i]) != 0)
            return false;
    }
    return true;
}

static void
s_allow_add (char *allow, size_t size, const char *method)
{
    size_t n = strlen (method), used = strlen (allow);
    /* Already listed? */
    for (const char *p = allow; *p;) {
        size_t m = strcspn (p, ",");
        if (m == n && strncmp (p, method, n) == 0)
            return;
        p += m;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (used + (used ? 2 : 0) + n + 1 > size)
        return;
    snprintf (allow + used, size - used, "%s%s", used ? ", " : "", method);
}

/* Percent-decodes seg[0..len) into out; "%00" and malformed escapes are
 * kept as they are, so a value never holds a NUL. Returns the bytes
 * written (at most len). */
static size_t
s_decode (const char *seg, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (seg[i] == '%' && i + 2 < len) {
            hi = rt_hex_value (seg[i + 1]);
            lo = rt_hex_value (seg[i + 2]);
        } else
            hi = lo = -1;
        if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else
            out[o++] = seg[i];
    }
    return o;
}

/* The route of method on req's path (NULL when none), with *path_matched
 * telling whether any route has the path and allow (size bytes) filled
 * with the methods it has. */
static rt_http_route_t *
s_find (const rt_http_routes_t *routes, const char *method, const rt_http_request_t *req,
        const char **seg, size_t *len, size_t *nseg, bool *path_matched, char *allow, size_t size)
{
    size_t n = 0;
    bool is_head = strcmp (method, "HEAD") == 0;
    bool any_get = false;
    rt_http_route_t *best = NULL, *best_get = NULL;

    *path_matched = false;
    allow[0] = '\0';
    if (req->path[0] == '/')
        n = s_split (req->path, seg, len);
    *nseg = n;
    /* Specific routes first, then the catch-alls. */
    for (int pass = 0; pass < 2 && !best && !best_get && !*path_matched; pass++) {
        for (rt_http_route_t *r = routes->first; r; r = r->next) {
            if (r->catch_all != (pass == 1))
                continue;
            if (!r->catch_all && (n == 0 || n > RT_HTTP_MAX_SEGMENTS))
                continue;
            if (!s_path_matches (r, seg, len, n))
                continue;
            *path_matched = true;
            if (r->method) {
                s_allow_add (allow, size, r->method);
                any_get = any_get || strcmp (r->method, "GET") == 0;
            }
            if (!r->method || strcmp (r->method, method) == 0) {
                if (!best || r->literals > best->literals)
                    best = r;
            } else if (is_head && strcmp (r->method, "GET") == 0) {
                if (!best_get || r->literals > best_get->literals)
                    best_get = r;
            }
        }
    }
    if (any_get)
        s_allow_add (allow, size, "HEAD");
    return best ? best : best_get;
}

rt_http_route_t *
rt_http_routes_find (const rt_http_routes_t *routes, const char *method,
                     const rt_http_request_t *req, char *allow, size_t size)
{
    const char *seg[RT_HTTP_MAX_SEGMENTS];
    size_t len[RT_HTTP_MAX_SEGMENTS];
    size_t n;
    bool path_matched;
    return s_find (routes, method, req, seg, len, &n, &path_matched, allow, size);
}

rt_http_refusal_t
rt_http_routes_match (const rt_http_routes_t *routes, rt_http_request_t *req)
{
    const char *seg[RT_HTTP_MAX_SEGMENTS];
    size_t len[RT_HTTP_MAX_SEGMENTS];
    size_t n = 0;
    bool path_matched = false;
    rt_http_route_t *best = s_find (routes, req->h.method, req, seg, len, &n, &path_matched,
                                    req->allow, sizeof req->allow);
    if (!best)
        return path_matched ? RT_HTTP_REFUSAL_METHOD_NOT_ALLOWED : RT_HTTP_REFUSAL_NOT_FOUND;
    req->route = best;
    if (best->catch_all || best->literals == best->nsegments)
        return RT_HTTP_REFUSAL_NONE;

    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += len[i] + 1;
    req->param_buf = malloc (total);
    if (!req->param_buf)
        return RT_HTTP_REFUSAL_NO_MEMORY;
    char *out = req->param_buf;
    for (size_t i = 0; i < n; i++) {
        if (!best->is_param[i])
            continue;
        size_t m = s_decode (seg[i], len[i], out);
        out[m] = '\0';
        req->params[req->nparams].name = best->seg[i];
        req->params[req->nparams].value = out;
        req->nparams++;
        out += m + 1;
    }
    return RT_HTTP_REFUSAL_NONE;
}

void
rt_http_routes_count (rt_http_routes_t *routes, rt_http_route_t *route, int status, double seconds)
{
    rt_http_route_t *r = route ? route : routes->none;
    rt_counter_t *counter;
    if (!routes->metrics || status < 100 || status >= 100 + S_STATUSES)
        return;
    counter = atomic_load_explicit (&r->by_status[status - 100], memory_order_acquire);
    if (!counter) {
        char labels[512];
        snprintf (labels, sizeof labels, "server=\"%s\",route=\"%s\",status=\"%d\"", routes->server,
                  r->pattern, status);
        counter = rt_metrics_counter (routes->metrics, "retain_http_requests_total", labels,
                                      "HTTP responses by route and status.");
        if (!counter)
            return;
        atomic_store_explicit (&r->by_status[status - 100], counter, memory_order_release);
    }
    rt_counter_inc (counter);
    if (r->duration)
        rt_histogram_observe (r->duration, seconds);
}

rt_http_handler_fn
rt_http_route_handler (const rt_http_route_t *route)
{
    return route->handler;
}

void *
rt_http_route_arg (const rt_http_route_t *route)
{
    return route->arg;
}

rt_http_layers_t *
rt_http_route_layers (rt_http_route_t *route)
{
    return &route->layers;
}

rt_http_routes_t *
rt_http_route_table (const rt_http_route_t *route)
{
    return route->table;
}

const char *
rt_http_route_method (const rt_http_route_t *route)
{
    return route->method;
}

const char *
rt_http_route_pattern_of (const rt_http_route_t *route)
{
    return route->pattern;
}

const char *
rt_http_route_pattern (const rt_http_request_t *req)
{
    return req->route ? req->route->pattern : NULL;
}

const char *
rt_http_param (const rt_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp (req->params[i].name, name) == 0)
            return req->params[i].value;
    }
    return NULL;
}
