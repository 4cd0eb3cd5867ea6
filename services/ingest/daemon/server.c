/*
 * server: webhooks in, answered only once durable (see server.h).
 *
 * A request's life: the worker thread routes it, finds its inbox in the
 * current snapshot, runs the channel handler, and either answers at once
 * (an error, or a valid request with nothing to keep) or parks it as a
 * pending request and gives its items to the writer. The writer's callback
 * (on the writer thread) queues the pending back to its worker and wakes
 * the worker's loop through a pipe; the worker answers. A pending is freed
 * only when the writer has settled it, even if the client left or the
 * timeout already answered 503, because the writer reads its items.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "rt_log.h"

#define REPLAY_SLOTS 65536
#define MAX_HEADERS  128
#define NCHANNELS    10

typedef struct s_worker_t s_worker_t;

/* A route: the first path segment after /hooks/ (or the chat route). */
typedef struct {
    const char *name;          /* "telegram", ..., "chat" */
    ingest_handler_fn handler; /* its handler */
    unsigned channels;         /* inbox channels it accepts (bit per Channel value) */
} s_route_t;

#define BIT(c) (1u << (c))
static const s_route_t s_routes[] = {
    {"telegram", telegram_handle, BIT (RETAIN__V1__CHANNEL__TELEGRAM)},
    {"viber", viber_handle, BIT (RETAIN__V1__CHANNEL__VIBER)},
    {"messenger", meta_handle, BIT (RETAIN__V1__CHANNEL__MESSENGER)},
    {"instagram", meta_handle, BIT (RETAIN__V1__CHANNEL__INSTAGRAM)},
    {"whatsapp", meta_handle, BIT (RETAIN__V1__CHANNEL__WHATSAPP)},
    {"twilio", twilio_handle, BIT (RETAIN__V1__CHANNEL__SMS) | BIT (RETAIN__V1__CHANNEL__WHATSAPP)},
    {"mailgun", mailgun_handle, BIT (RETAIN__V1__CHANNEL__EMAIL)},
    {"phone", phone_handle, BIT (RETAIN__V1__CHANNEL__PHONE)},
    {"chat", webchat_handle, BIT (RETAIN__V1__CHANNEL__WEBCHAT)},
};

/* Per channel series, made once: the hot path takes no registry lock. */
typedef struct {
    rt_counter_t *requests;    /* requests for an inbox of the channel */
    rt_counter_t *items;       /* items taken in (new) */
    rt_counter_t *duplicates;  /* items already taken in */
    rt_counter_t *unavailable; /* answered 503 */
    rt_histogram_t *latency;   /* request to answer, seconds */
} s_channel_metrics_t;

typedef struct s_pending_t {
    s_worker_t *worker;             /* whose loop answers it */
    struct evhttp_request *req;     /* NULL once the client is gone or answered */
    struct evhttp_connection *conn; /* its connection, for the close callback */
    inboxes_snapshot_t *snap;       /* keeps the inbox alive */
    const ingest_inbox_t *inbox;    /* the inbox */
    ingest_result_t result;         /* the items */
    uint8_t *body;                  /* the raw body, kept for the writer */
    size_t body_len;
    char *content_type;       /* its content type */
    struct event *timer;      /* request timeout */
    bool answered;            /* an answer went out (timeout) */
    int status;               /* the writer's outcome */
    size_t fresh, duplicates; /* its counts */
    struct timespec t0;       /* arrival */
    char nonce[72];           /* a replay nonce this request recorded, \"\" none */
    struct s_pending_t *next; /* the worker's settled list */
} s_pending_t;

struct s_worker_t {
    struct server_t *server; /* the server */
    struct event_base *base; /* this worker's loop */
    struct evhttp *http;     /* its HTTP server on the shared socket */
    int pipe[2];             /* settled pendings wake the loop */
    struct event *pipe_ev;   /* reads the pipe */
    pthread_mutex_t lock;    /* guards settled */
    s_pending_t *settled;    /* pendings the writer settled */
    atomic_int inflight;     /* pendings not yet freed */
    pthread_t thread;        /* runs base */
};

/* Mailgun-style nonces seen recently (see channel.h replay_check). */
typedef struct {
    pthread_mutex_t lock; /* guards the table */
    char (*nonce)[72];    /* open addressing, "" empty */
    int64_t *expires;     /* per slot */
} s_replay_t;

struct server_t {
    server_config_t config; /* settings (strings lent from main) */
    evutil_socket_t fd;     /* the listening socket */
    int port;               /* bound port */
    s_worker_t *workers;    /* the worker threads */
    int nworkers;
    s_replay_t replay;                /* nonce memory */
    atomic_bool stopping;             /* workers leave their loops when woken */
    s_channel_metrics_t m[NCHANNELS]; /* by Channel value */
    rt_counter_t *m_no_route;         /* requests for no route or inbox */
};

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_replay_check (void *arg, const char *nonce, int64_t expires_ms)
{
    s_replay_t *r = arg;
    uint32_t h = 2166136261u;
    const char *p;
    int64_t now = s_now_ms ();
    size_t i, slot, free_slot = REPLAY_SLOTS;
    int seen = 0;
    for (p = nonce; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    pthread_mutex_lock (&r->lock);
    /* Linear probe over a short window; expired slots are reusable. */
    for (i = 0; i < 64; i++) {
        slot = (h + i) % REPLAY_SLOTS;
        if (r->nonce[slot][0] && r->expires[slot] > now) {
            if (strncmp (r->nonce[slot], nonce, sizeof r->nonce[slot] - 1) == 0) {
                seen = 1;
                break;
            }
        } else if (free_slot == REPLAY_SLOTS)
            free_slot = slot;
    }
    if (!seen) {
        /* A full window evicts the first probe slot: memory is bounded,
         * and the timestamp check still bounds replays to max_age. */
        if (free_slot == REPLAY_SLOTS)
            free_slot = h % REPLAY_SLOTS;
        snprintf (r->nonce[free_slot], sizeof r->nonce[free_slot], "%s", nonce);
        r->expires[free_slot] = expires_ms;
    }
    pthread_mutex_unlock (&r->lock);
    return seen;
}

/* Forgets a nonce whose request was not stored: the provider's retry of
 * the same signed request must not be refused as a replay. */
static void
s_replay_forget (s_replay_t *r, const char *nonce)
{
    uint32_t h = 2166136261u;
    const char *p;
    size_t i;
    for (p = nonce; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    pthread_mutex_lock (&r->lock);
    for (i = 0; i < 64; i++) {
        size_t slot = (h + i) % REPLAY_SLOTS;
        if (strncmp (r->nonce[slot], nonce, sizeof r->nonce[slot] - 1) == 0) {
            r->nonce[slot][0] = '\0';
            break;
        }
    }
    pthread_mutex_unlock (&r->lock);
}

static void
s_reply (struct evhttp_request *req, int status, const char *type, const char *body)
{
    struct evbuffer *out = evbuffer_new ();
    if (out && body)
        evbuffer_add (out, body, strlen (body));
    if (type)
        evhttp_add_header (evhttp_request_get_output_headers (req), "Content-Type", type);
    evhttp_send_reply (req, status, NULL, out);
    if (out)
        evbuffer_free (out);
}

static void
s_reply_error (struct evhttp_request *req, int status, const char *reason)
{
    json_t *body = json_pack ("{s:s}", "error", reason);
    char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
    s_reply (req, status, "application/json", text ? text : "{\"error\":\"internal\"}");
    free (text);
    json_decref (body);
}

static void
s_count_rejected (server_t *server, const char *channel, const char *label)
{
    char labels[128];
    snprintf (labels, sizeof labels, "channel=\"%s\",reason=\"%s\"", channel, label);
    rt_counter_inc (rt_metrics_counter (server->config.metrics, "retain_ingest_rejected_total",
                                        labels, "Requests refused, by channel and reason."));
}

static double
s_elapsed (const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime (CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
s_pending_free (s_pending_t *p)
{
    /* Not stored (refused, or the writer failed): the nonce is free again. */
    if (p->nonce[0] && p->status != 0)
        s_replay_forget (&p->worker->server->replay, p->nonce);
    if (p->conn)
        evhttp_connection_set_closecb (p->conn, NULL, NULL);
    if (p->timer)
        event_free (p->timer);
    ingest_result_reset (&p->result);
    inboxes_release (p->snap);
    free (p->body);
    free (p->content_type);
    atomic_fetch_sub (&p->worker->inflight, 1);
    free (p);
}

/* The client went away: nothing to answer, but the writer still owns the
 * items until it settles. */
static void
s_conn_closed (struct evhttp_connection *conn, void *arg)
{
    s_pending_t *p = arg;
    (void)conn;
    p->req = NULL;
    p->conn = NULL;
}

static void
s_answer (s_pending_t *p, int status)
{
    s_channel_metrics_t *m = &p->worker->server->m[p->inbox->channel % NCHANNELS];
    if (p->answered)
        return;
    p->answered = true;
    if (p->conn) {
        evhttp_connection_set_closecb (p->conn, NULL, NULL);
        p->conn = NULL;
    }
    rt_histogram_observe (m->latency, s_elapsed (&p->t0));
    if (!p->req)
        return;
    if (status == 200) {
        if (p->result.response)
            s_reply (p->req, 200, p->result.response_type ? p->result.response_type : "text/plain",
                     p->result.response);
        else
            s_reply (p->req, 200, "application/json", "{\"ok\":true}");
    } else {
        rt_counter_inc (m->unavailable);
        s_reply_error (p->req, 503, "not stored yet; retry");
    }
    p->req = NULL;
}

static void
s_timeout (evutil_socket_t fd, short what, void *arg)
{
    s_pending_t *p = arg;
    (void)fd;
    (void)what;
    rt_log (RT_LOG_WARN, "webhook not committed in time; answered 503", "inbox", "%s", p->inbox->id,
            NULL);
    s_answer (p, 503);
}

/* Writer thread: hand the settled pending back to its worker. */
static void
s_writer_done (void *arg, int status, size_t fresh, size_t duplicates)
{
    s_pending_t *p = arg;
    s_worker_t *w = p->worker;
    char byte = 1;
    p->status = status;
    p->fresh = fresh;
    p->duplicates = duplicates;
    pthread_mutex_lock (&w->lock);
    p->next = w->settled;
    w->settled = p;
    pthread_mutex_unlock (&w->lock);
    if (write (w->pipe[1], &byte, 1) < 0 && errno != EAGAIN)
        rt_log (RT_LOG_ERROR, "cannot wake a worker", "error", "%s", strerror (errno), NULL);
}

static void
s_wake (evutil_socket_t fd, short what, void *arg)
{
    s_worker_t *w = arg;
    char buf[256];
    s_pending_t *list;
    (void)what;
    while (read (fd, buf, sizeof buf) > 0)
        ;
    if (atomic_load (&w->server->stopping) && atomic_load (&w->inflight) == 0)
        event_base_loopbreak (w->base);
    pthread_mutex_lock (&w->lock);
    list = w->settled;
    w->settled = NULL;
    pthread_mutex_unlock (&w->lock);
    while (list) {
        s_pending_t *next = list->next;
        s_channel_metrics_t *m = &w->server->m[list->inbox->channel % NCHANNELS];
        if (list->status == 0) {
            rt_counter_add (m->items, list->fresh);
            rt_counter_add (m->duplicates, list->duplicates);
        }
        s_answer (list, list->status == 0 ? 200 : 503);
        s_pending_free (list);
        list = next;
    }
}

static const s_route_t *
s_route (const char *path, char *inbox, size_t inboxlen)
{
    const char *rest, *slash;
    size_t i, n;
    char name[32];
    if (strncmp (path, "/hooks/", 7) == 0) {
        rest = path + 7;
        slash = strchr (rest, '/');
        if (!slash || (size_t)(slash - rest) >= sizeof name)
            return NULL;
        memcpy (name, rest, (size_t)(slash - rest));
        name[slash - rest] = '\0';
        rest = slash + 1;
        n = strcspn (rest, "/");
        if (n == 0 || n >= inboxlen || rest[n] != '\0')
            return NULL;
    } else if (strncmp (path, "/chat/", 6) == 0) {
        rest = path + 6;
        n = strcspn (rest, "/");
        if (n == 0 || n >= inboxlen || strcmp (rest + n, "/messages") != 0)
            return NULL;
        snprintf (name, sizeof name, "chat");
    } else
        return NULL;
    memcpy (inbox, rest, n);
    inbox[n] = '\0';
    for (i = 0; i < sizeof s_routes / sizeof *s_routes; i++) {
        if (strcmp (s_routes[i].name, name) == 0)
            return &s_routes[i];
    }
    return NULL;
}

/* CORS for the web chat: only the inbox's configured origins. Returns false
 * (and answers) when the request must not go on. */
static bool
s_cors (struct evhttp_request *req, const ingest_inbox_t *inbox, bool preflight)
{
    const char *origin = evhttp_find_header (evhttp_request_get_input_headers (req), "Origin");
    const json_t *allowed = json_object_get (inbox->config, "allowed_origins");
    struct evkeyvalq *out = evhttp_request_get_output_headers (req);
    bool ok = false;
    size_t i;
    json_t *v;
    if (!origin)
        return !preflight || (s_reply_error (req, 403, "preflight without Origin"), false);
    json_array_foreach (allowed, i, v)
    {
        if (json_is_string (v) && strcmp (json_string_value (v), origin) == 0)
            ok = true;
    }
    if (!ok) {
        s_reply_error (req, 403, "origin not allowed for this inbox");
        return false;
    }
    evhttp_add_header (out, "Access-Control-Allow-Origin", origin);
    evhttp_add_header (out, "Vary", "Origin");
    if (preflight) {
        evhttp_add_header (out, "Access-Control-Allow-Methods", "POST, OPTIONS");
        evhttp_add_header (out, "Access-Control-Allow-Headers", "Content-Type");
        evhttp_add_header (out, "Access-Control-Max-Age", "600");
        evhttp_send_reply (req, 204, "No Content", NULL);
        return false;
    }
    return true;
}

static const char *
s_method (struct evhttp_request *req)
{
    switch (evhttp_request_get_command (req)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

/* The replay guard as a request sees it: remembers which nonce it used. */
static int
s_request_replay_check (void *arg, const char *nonce, int64_t expires_ms)
{
    s_pending_t *p = arg;
    int seen = s_replay_check (&p->worker->server->replay, nonce, expires_ms);
    if (!seen)
        snprintf (p->nonce, sizeof p->nonce, "%s", nonce);
    return seen;
}

static void
s_request (struct evhttp_request *req, void *arg)
{
    s_worker_t *w = arg;
    server_t *server = w->server;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri (req);
    const char *path = uri ? evhttp_uri_get_path (uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query (uri) : NULL;
    char inbox_id[96], public_url[2048];
    const s_route_t *route;
    inboxes_snapshot_t *snap;
    const ingest_inbox_t *inbox;
    ingest_header_t headers[MAX_HEADERS];
    struct evkeyval *h;
    struct evbuffer *in = evhttp_request_get_input_buffer (req);
    ingest_request_t r;
    s_pending_t *p;
    const char *channel;
    size_t nheaders = 0;
    writer_job_t job;
    const json_t *override;

    route = path ? s_route (path, inbox_id, sizeof inbox_id) : NULL;
    if (!route) {
        rt_counter_inc (server->m_no_route);
        s_reply_error (req, 404, "no such endpoint");
        return;
    }
    snap = inboxes_acquire (server->config.inboxes);
    inbox = inboxes_find (snap, inbox_id);
    if (!inbox || !(route->channels & BIT (inbox->channel))) {
        rt_counter_inc (server->m_no_route);
        inboxes_release (snap);
        s_reply_error (req, 404, "unknown inbox");
        return;
    }
    channel = ingest_channel_name (inbox->channel);
    rt_counter_inc (server->m[inbox->channel % NCHANNELS].requests);
    if (route->handler == webchat_handle &&
        !s_cors (req, inbox, evhttp_request_get_command (req) == EVHTTP_REQ_OPTIONS)) {
        inboxes_release (snap);
        return;
    }
    if (evbuffer_get_length (in) > server->config.max_body) {
        s_count_rejected (server, channel, "too_large");
        inboxes_release (snap);
        s_reply_error (req, 413, "body over the size limit");
        return;
    }

    p = calloc (1, sizeof *p);
    if (!p) {
        inboxes_release (snap);
        s_reply_error (req, 503, "out of memory");
        return;
    }
    clock_gettime (CLOCK_MONOTONIC, &p->t0);
    atomic_fetch_add (&w->inflight, 1);
    p->worker = w;
    p->snap = snap;
    p->inbox = inbox;
    p->req = req;
    p->body_len = evbuffer_get_length (in);
    p->body = malloc (p->body_len + 1);
    if (!p->body) {
        s_reply_error (req, 503, "out of memory");
        s_pending_free (p);
        return;
    }
    evbuffer_copyout (in, p->body, p->body_len);
    p->body[p->body_len] = '\0';
    for (h = evhttp_request_get_input_headers (req)->tqh_first; h; h = h->next.tqe_next) {
        if (nheaders == MAX_HEADERS)
            break;
        headers[nheaders].name = h->key;
        headers[nheaders].value = h->value;
        nheaders++;
    }
    /* The URL the provider signed is the public one, not ours behind the
     * proxy: from the inbox's "public_url", else the server's base URL. */
    override = json_object_get (inbox->config, "public_url");
    if (json_is_string (override))
        snprintf (public_url, sizeof public_url, "%s%s%s", json_string_value (override),
                  query && *query ? "?" : "", query && *query ? query : "");
    else
        snprintf (public_url, sizeof public_url, "%s%s", server->config.public_url,
                  evhttp_request_get_uri (req));
    memset (&r, 0, sizeof r);
    r.method = s_method (req);
    r.path = path;
    r.query = query ? query : "";
    r.headers = headers;
    r.nheaders = nheaders;
    r.body = p->body;
    r.body_len = p->body_len;
    r.public_url = public_url;
    r.now_ms = s_now_ms ();
    r.replay_check = s_request_replay_check;
    r.replay_arg = p;
    /* Until the writer says otherwise, the request counts as not stored. */
    p->status = -1;

    if (route->handler (inbox, &r, &p->result) != 0) {
        int status = p->result.status ? p->result.status : 400;
        const char *label = p->result.label ? p->result.label : "invalid";
        s_count_rejected (server, channel, label);
        rt_log (status >= 500 ? RT_LOG_ERROR : RT_LOG_INFO, "webhook refused", "inbox", "%s",
                inbox->id, "channel", "%s", channel, "status", "%d", status, "reason", "%s",
                p->result.reason, NULL);
        s_reply_error (req, status, p->result.reason[0] ? p->result.reason : label);
        p->answered = true;
        s_pending_free (p);
        return;
    }
    if (p->result.count == 0) {
        p->answered = false;
        p->status = 0;
        s_answer (p, 200);
        s_pending_free (p);
        return;
    }
    {
        const char *ct =
            evhttp_find_header (evhttp_request_get_input_headers (req), "Content-Type");
        p->content_type = strdup (ct ? ct : "");
    }
    memset (&job, 0, sizeof job);
    job.inbox = inbox;
    job.result = &p->result;
    job.raw = p->body;
    job.raw_len = p->body_len;
    job.raw_type = p->content_type ? p->content_type : "";
    job.done = s_writer_done;
    job.done_arg = p;
    p->conn = evhttp_request_get_connection (req);
    if (p->conn)
        evhttp_connection_set_closecb (p->conn, s_conn_closed, p);
    if (writer_submit (server->config.writer, &job) != 0) {
        s_answer (p, 503);
        s_pending_free (p);
        return;
    }
    p->timer = evtimer_new (w->base, s_timeout, p);
    if (p->timer) {
        struct timeval tv = {server->config.request_timeout_ms / 1000,
                             (server->config.request_timeout_ms % 1000) * 1000};
        evtimer_add (p->timer, &tv);
    }
}

static void *
s_worker_run (void *arg)
{
    s_worker_t *w = arg;
    sigset_t all;
    /* Signals belong to the main thread. */
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, NULL);
    event_base_dispatch (w->base);
    return NULL;
}

static int
s_listen (server_t *self, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss, one = 1;
    socklen_t len = sizeof ss;
    if (evutil_parse_sockaddr_port (self->config.address, (struct sockaddr *)&ss, &sslen) != 0) {
        snprintf (err, errlen, "bad HTTP address \"%s\"", self->config.address);
        return -1;
    }
    self->fd = socket (ss.ss_family, SOCK_STREAM, 0);
    if (self->fd < 0)
        goto fail;
    setsockopt (self->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind (self->fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 ||
        listen (self->fd, 1024) != 0 || evutil_make_socket_nonblocking (self->fd) != 0)
        goto fail;
    if (getsockname (self->fd, (struct sockaddr *)&ss, &len) == 0)
        self->port = ntohs (ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
fail:
    snprintf (err, errlen, "cannot listen on %s: %s", self->config.address, strerror (errno));
    return -1;
}

server_t *
server_start (const server_config_t *config, char *err, size_t errlen)
{
    server_t *self = calloc (1, sizeof *self);
    int i;
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->config = *config;
    self->fd = -1;
    pthread_mutex_init (&self->replay.lock, NULL);
    self->replay.nonce = calloc (REPLAY_SLOTS, sizeof *self->replay.nonce);
    self->replay.expires = calloc (REPLAY_SLOTS, sizeof *self->replay.expires);
    if (!self->replay.nonce || !self->replay.expires) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    for (i = 1; i < NCHANNELS; i++) {
        char labels[64];
        const char *name = ingest_channel_name ((Retain__V1__Channel)i);
        snprintf (labels, sizeof labels, "channel=\"%s\"", name);
        self->m[i].requests = rt_metrics_counter (config->metrics, "retain_ingest_requests_total",
                                                  labels, "Webhook requests for a known inbox.");
        self->m[i].items = rt_metrics_counter (config->metrics, "retain_ingest_received_total",
                                               labels, "Items taken in and put on the bus.");
        self->m[i].duplicates =
            rt_metrics_counter (config->metrics, "retain_ingest_duplicates_total", labels,
                                "Items a provider sent again; answered 200, nothing changed.");
        self->m[i].unavailable =
            rt_metrics_counter (config->metrics, "retain_ingest_unavailable_total", labels,
                                "Requests answered 503: not durable in time, provider retries.");
        self->m[i].latency = rt_metrics_histogram (config->metrics, "retain_ingest_latency_seconds",
                                                   labels, "Webhook arrival to answer.", NULL, 0);
    }
    self->m_no_route = rt_metrics_counter (config->metrics, "retain_ingest_not_found_total", "",
                                           "Requests for no endpoint or an unknown inbox.");
    if (s_listen (self, err, errlen) != 0)
        goto fail;
    self->nworkers = config->threads > 0 ? config->threads : 1;
    self->workers = calloc ((size_t)self->nworkers, sizeof *self->workers);
    if (!self->workers)
        goto fail;
    for (i = 0; i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        w->server = self;
        w->pipe[0] = w->pipe[1] = -1;
        pthread_mutex_init (&w->lock, NULL);
        w->base = event_base_new ();
        w->http = w->base ? evhttp_new (w->base) : NULL;
        if (!w->http || pipe2 (w->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
            snprintf (err, errlen, "cannot set up worker %d", i);
            goto fail;
        }
        w->pipe_ev = event_new (w->base, w->pipe[0], EV_READ | EV_PERSIST, s_wake, w);
        if (!w->pipe_ev || event_add (w->pipe_ev, NULL) != 0)
            goto fail;
        evhttp_set_max_body_size (w->http, (ev_ssize_t)config->max_body);
        evhttp_set_max_headers_size (w->http, 64 * 1024);
        evhttp_set_timeout (w->http, 30);
        evhttp_set_allowed_methods (w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_OPTIONS |
                                                 EVHTTP_REQ_HEAD);
        evhttp_set_gencb (w->http, s_request, w);
        if (!evhttp_accept_socket_with_handle (w->http, self->fd)) {
            snprintf (err, errlen, "cannot accept on the HTTP socket");
            goto fail;
        }
        if (pthread_create (&w->thread, NULL, s_worker_run, w) != 0) {
            snprintf (err, errlen, "cannot start worker %d", i);
            goto fail;
        }
    }
    return self;
fail:
    server_stop (&self);
    return NULL;
}

int
server_port (const server_t *self)
{
    return self->port;
}

void
server_stop (server_t **self_p)
{
    server_t *self;
    int i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; self->workers && i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        if (!w->base)
            continue;
        if (w->thread) {
            /* Let the writer settle what is in flight; the worker leaves its
             * loop itself once woken with nothing in flight (a loop is only
             * ever touched from its own thread). */
            atomic_store (&self->stopping, true);
            while (atomic_load (&w->inflight) > 0)
                usleep (10000);
            for (;;) {
                char byte = 0;
                struct timespec ts = {0, 50000000};
                if (write (w->pipe[1], &byte, 1) < 0 && errno != EAGAIN)
                    break;
                if (pthread_tryjoin_np (w->thread, NULL) == 0)
                    break;
                nanosleep (&ts, NULL);
            }
        }
    }
    for (i = 0; self->workers && i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        if (w->pipe_ev)
            event_free (w->pipe_ev);
        if (w->http)
            evhttp_free (w->http);
        if (w->base)
            event_base_free (w->base);
        if (w->pipe[0] >= 0)
            close (w->pipe[0]);
        if (w->pipe[1] >= 0)
            close (w->pipe[1]);
        pthread_mutex_destroy (&w->lock);
    }
    free (self->workers);
    if (self->fd >= 0)
        evutil_closesocket (self->fd);
    free (self->replay.nonce);
    free (self->replay.expires);
    pthread_mutex_destroy (&self->replay.lock);
    free (self);
    *self_p = NULL;
}
