/*
 * rt_http_request: the request as a handler sees it, and its answers (see
 * rt_http_server.h).
 *
 * A request's strings live in buffers the request owns (its head, parsed
 * in place, its path and params, its body), so they stay valid while a
 * deferred request outlives its connection. Every answer goes through
 * rt_http_request_respond (rt_http_conn.c), which writes it when the
 * client is still there and ends the request either way; a stream's head,
 * chunks and end go through rt_http_request_stream_* there in the same
 * way.
 */
#include "rt_http_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *
rt_http_method (const rt_http_request_t *req)
{
    return req->head_parsed ? req->h.method : "";
}

const char *
rt_http_path (const rt_http_request_t *req)
{
    return req->head_parsed ? req->path : "";
}

const char *
rt_http_query (const rt_http_request_t *req)
{
    return req->head_parsed ? req->query : "";
}

const char *
rt_http_target (const rt_http_request_t *req)
{
    return req->head_parsed ? req->h.target : "";
}

const char *
rt_http_header (const rt_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->h.nfields; i++) {
        if (strcasecmp (req->h.fields[i].name, name) == 0)
            return req->h.fields[i].value;
    }
    return NULL;
}

size_t
rt_http_header_count (const rt_http_request_t *req)
{
    return req->h.nfields;
}

bool
rt_http_header_at (const rt_http_request_t *req, size_t i, const char **name, const char **value)
{
    if (i >= req->h.nfields)
        return false;
    *name = req->h.fields[i].name;
    *value = req->h.fields[i].value;
    return true;
}

const char *
rt_http_body (const rt_http_request_t *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *
rt_http_peer (const rt_http_request_t *req)
{
    return req->peer;
}

struct event_base *
rt_http_base (const rt_http_request_t *req)
{
    return req->worker->base;
}

int64_t
rt_http_arrival_us (const rt_http_request_t *req)
{
    return req->arrival_us;
}

json_t *
rt_http_body_json (rt_http_request_t *req)
{
    json_error_t error;
    char detail[256];
    json_t *json = json_loadb (req->body.data ? req->body.data : "", req->body.len, 0, &error);
    if (json)
        return json;
    snprintf (detail, sizeof detail, "the body is not valid JSON: %s (line %d, column %d)",
              error.text, error.line, error.column);
    rt_http_request_refuse (req, RT_HTTP_REFUSAL_BAD_JSON, detail);
    return NULL;
}

static void
s_assert_on_worker (const rt_http_request_t *req)
{
    (void)req;
    assert (!req->worker->started || pthread_equal (pthread_self (), req->worker->thread));
}

int
rt_http_header_add (rt_http_request_t *req, const char *name, const char *value)
{
    static const char *const reserved[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                           "Date"};
    s_assert_on_worker (req);
    if (!name || !value || !*name || req->answered || req->streaming)
        return -1;
    for (const char *p = name; *p; p++) {
        if (!rt_http_is_tchar ((unsigned char)*p))
            return -1;
    }
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        if (strcasecmp (name, reserved[i]) == 0)
            return -1;
    }
    if (strpbrk (value, "\r\n"))
        return -1;
    return rt_http_header_put (req, name, value);
}

int
rt_http_header_put (rt_http_request_t *req, const char *name, const char *value)
{
    size_t n = strlen (name), v = strlen (value);
    /* Room for the whole line first: a line cut by a failed allocation
     * would be written into the answer. */
    if (!rt_buf_reserve (&req->out_headers, n + v + 4))
        return -1;
    rt_buf_put (&req->out_headers, name, n);
    rt_buf_put (&req->out_headers, ": ", 2);
    rt_buf_put (&req->out_headers, value, v);
    rt_buf_put (&req->out_headers, "\r\n", 2);
    return 0;
}

int
rt_http_reply (rt_http_request_t *req, int status, const char *content_type, const void *body,
               size_t len)
{
    s_assert_on_worker (req);
    assert (status >= 200 && status <= 599);
    if (status < 200 || status > 599)
        status = 500;
    return rt_http_request_respond (req, status, content_type, body, len);
}

int
rt_http_reply_json (rt_http_request_t *req, int status, json_t *body)
{
    char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
    int rc;
    json_decref (body);
    if (!text)
        return rt_http_problem (req, 500, "internal", "the answer could not be encoded");
    rc = rt_http_reply (req, status, "application/json", text, strlen (text));
    free (text);
    return rc;
}

char *
rt_http_problem_body (int status, const char *type_suffix, const char *detail)
{
    char type[256];
    json_t *json, *d = NULL;
    char *text;
    if (type_suffix)
        snprintf (type, sizeof type, "https://retain.dev/problems/%s", type_suffix);
    else
        snprintf (type, sizeof type, "about:blank");
    json = json_pack ("{s:s, s:s, s:i}", "type", type, "title", rt_http_status_text (status),
                      "status", status);
    if (json && detail) {
        /* A detail quoting the peer's bytes may not be UTF-8. */
        d = json_string (detail);
        if (!d)
            d = json_string ("(the detail is not valid UTF-8)");
        json_object_set_new (json, "detail", d);
    }
    text = json ? json_dumps (json, JSON_COMPACT) : NULL;
    json_decref (json);
    return text;
}

int
rt_http_problem (rt_http_request_t *req, int status, const char *type_suffix, const char *detail)
{
    char *text = rt_http_problem_body (status, type_suffix, detail);
    int rc;
    if (!text) {
        static const char fallback[] = "{\"type\":\"about:blank\",\"status\":500}";
        return rt_http_reply (req, 500, "application/problem+json", fallback, sizeof fallback - 1);
    }
    rc = rt_http_reply (req, status, "application/problem+json", text, strlen (text));
    free (text);
    return rc;
}

int
rt_http_stream_begin (rt_http_request_t *req, int status, const char *content_type)
{
    s_assert_on_worker (req);
    assert (status >= 200 && status <= 599 && status != 204 && status != 304);
    if (status < 200 || status > 599 || status == 204 || status == 304)
        status = 500;
    return rt_http_request_stream_begin (req, status, content_type);
}

int
rt_http_stream_write (rt_http_request_t *req, const void *data, size_t len)
{
    s_assert_on_worker (req);
    return rt_http_request_stream_write (req, data, len);
}

size_t
rt_http_stream_pending (const rt_http_request_t *req)
{
    s_assert_on_worker (req);
    return rt_http_request_stream_pending (req);
}

int
rt_http_stream_end (rt_http_request_t *req)
{
    s_assert_on_worker (req);
    return rt_http_request_stream_end (req);
}

void
rt_http_defer (rt_http_request_t *req)
{
    rt_http_worker_t *w = req->worker;
    s_assert_on_worker (req);
    if (req->deferred || req->answered)
        return;
    req->deferred = true;
    req->prev = NULL;
    req->next = w->deferred;
    if (w->deferred)
        w->deferred->prev = req;
    w->deferred = req;
    w->ndeferred++;
}

bool
rt_http_request_gone (const rt_http_request_t *req)
{
    return req->gone;
}

void
rt_http_on_gone (rt_http_request_t *req, rt_http_request_fn fn, void *arg)
{
    s_assert_on_worker (req);
    req->on_gone = fn;
    req->on_gone_arg = arg;
    if (req->gone && fn) {
        req->on_gone = NULL;
        fn (req, arg);
    }
}
