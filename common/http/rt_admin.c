/*
 * rt_admin: the admin HTTP server, on rt_http_server with one worker
 * thread of its own.
 *
 * Three GET routes; the HTTP server holds the door as on any other port
 * (header and body deadlines, connection caps) and answers 404, 405 (with
 * Allow) and every malformed request itself, as problem details. The
 * limits are small: a scrape or a probe is a request line and a few
 * headers, so a misbehaving client cannot make the admin thread hold much
 * memory. The server's own access metrics are not kept: /metrics shows the
 * daemon's registry as the daemon made it.
 *
 * The worker blocks every signal, so SIGTERM and SIGINT reach a thread of
 * the daemon (whose blocking calls they are meant to interrupt), and its
 * loop never waits on the daemon's: a daemon's main loop may block (on
 * ZeroMQ, on PostgreSQL) without making the admin port unresponsive.
 */
#include "rt_admin.h"

#include "rt_http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS      10000
#define S_MAX_HEADER      8192
#define S_MAX_BODY        4096
#define S_MAX_CONNECTIONS 256

struct rt_admin_t {
    rt_http_server_t *http;  /* the server; owned */
    rt_metrics_t *metrics;   /* rendered on /metrics; lent, may be NULL */
    rt_admin_ready_fn ready; /* decides /readyz; NULL means always ready */
    void *ready_arg;         /* passed to ready */
};

static void
s_reply_text (rt_http_request_t *req, int status, const char *content_type, const char *body)
{
    rt_http_header_add (req, "Cache-Control", "no-store");
    rt_http_reply (req, status, content_type, body, strlen (body));
}

static void
s_healthz (rt_http_request_t *req, void *arg)
{
    (void)arg;
    s_reply_text (req, 200, "text/plain; charset=utf-8", "ok\n");
}

static void
s_readyz (rt_http_request_t *req, void *arg)
{
    rt_admin_t *self = arg;
    char why[256] = "";
    bool ready = self->ready ? self->ready (self->ready_arg, why, sizeof why) : true;
    if (ready) {
        s_reply_text (req, 200, "text/plain; charset=utf-8", "ready\n");
        return;
    }
    char body[sizeof why + 2];
    why[sizeof why - 1] = '\0';
    snprintf (body, sizeof body, "%s\n", why[0] ? why : "not ready");
    s_reply_text (req, 503, "text/plain; charset=utf-8", body);
}

static void
s_metrics (rt_http_request_t *req, void *arg)
{
    rt_admin_t *self = arg;
    char *text = self->metrics ? rt_metrics_render (self->metrics) : strdup ("");
    if (!text) {
        rt_http_problem (req, 500, "no-memory", "out of memory");
        return;
    }
    s_reply_text (req, 200, "text/plain; version=0.0.4; charset=utf-8", text);
    free (text);
}

rt_admin_t *
rt_admin_start (const char *address, rt_metrics_t *metrics, rt_admin_ready_fn ready,
                void *ready_arg, char *err, size_t errlen)
{
    char inner[512] = "";
    rt_http_server_config_t cfg;
    rt_admin_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "admin: out of memory");
        return NULL;
    }
    self->metrics = metrics;
    self->ready = ready;
    self->ready_arg = ready_arg;
    if (!address) {
        snprintf (err, errlen, "admin address \"(null)\": expected host:port, :port or [v6]:port");
        goto error;
    }
    memset (&cfg, 0, sizeof cfg);
    cfg.address = address;
    cfg.name = "admin";
    cfg.threads = 1;
    cfg.max_body = S_MAX_BODY;
    cfg.max_header_bytes = S_MAX_HEADER;
    cfg.header_timeout_ms = S_TIMEOUT_MS;
    cfg.body_timeout_ms = S_TIMEOUT_MS;
    cfg.idle_timeout_ms = S_TIMEOUT_MS;
    cfg.max_connections = S_MAX_CONNECTIONS;
    cfg.max_connections_per_address = S_MAX_CONNECTIONS;
    self->http = rt_http_server_new (&cfg, inner, sizeof inner);
    if (!self->http || !rt_http_route (self->http, "GET", "/healthz", s_healthz, self) ||
        !rt_http_route (self->http, "GET", "/readyz", s_readyz, self) ||
        !rt_http_route (self->http, "GET", "/metrics", s_metrics, self) ||
        rt_http_server_start (self->http, inner, sizeof inner) != 0) {
        snprintf (err, errlen, "admin: %s", inner[0] ? inner : "out of memory");
        goto error;
    }
    return self;
error:
    rt_admin_stop (&self);
    return NULL;
}

int
rt_admin_port (const rt_admin_t *self)
{
    return self ? rt_http_server_port (self->http) : -1;
}

void
rt_admin_stop (rt_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_http_server_destroy (&(*self_p)->http);
    free (*self_p);
    *self_p = NULL;
}
