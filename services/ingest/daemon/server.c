/*
 * server: webhooks in, answered only once durable (see server.h).
 *
 * Routes: one per distinct webhook route of common/channel's kinds table,
 * all to s_on_hook with the route's pattern. An inbox answers only at its
 * own kind's route (a Twilio WhatsApp inbox at /hooks/twilio/{inbox}; at
 * /hooks/whatsapp/{inbox}, Meta's, it is an unknown inbox), and the
 * handler is its provider's (channel.h's ingest_provider), so a request
 * never reaches a handler that cannot read it.
 *
 * A request's life: rt_http_server reads and checks it on a worker and
 * hands it to s_on_hook with the route and the {inbox}; the inbox is found
 * in the current snapshot, its provider's handler runs, and the request is
 * either answered at once (an error, or a valid request with nothing to
 * keep) or deferred as a pending whose items go to the writer. The
 * writer's callback (on the writer thread) posts the pending back to its
 * worker (rt_http_worker_post), where it is answered.
 *
 * One more route is not a provider's: /u/{token}, the one-click
 * unsubscribe link (unsubscribe.h), verified with the link keys
 * (--link-keys) and kept by the same writer under a pseudo-inbox, so its
 * answer too waits for the commit. It answers HTML pages, for people,
 * with headers that keep the token to the page (no-store, no-referrer).
 *
 * A pending can outlive its request: when the request timeout answered
 * 503 first, or the client left, the pending is still freed only once the
 * writer has settled it, because the writer reads its items and its body
 * until then. That is why the pending keeps its own copy of the body, and
 * why the writer's callback posts to the worker rather than to the
 * request, which may be answered already.
 */
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "rt_channel.h"
#include "rt_http_server.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_signed.h"
#include "unsubscribe.h"

#define REPLAY_SLOTS 65536
#define MAX_HEADERS  128
/* How long a stop waits for the writer beyond the request timeout. */
#define STOP_GRACE_MS 30000

/* A registered webhook route: what its handler is called with. */
typedef struct {
    server_t *server;    /* the server */
    const char *pattern; /* the route as in common/channel's table, "/hooks/twilio/{inbox}" */
} s_route_t;

/* Per channel series, made once: the hot path takes no registry lock. */
typedef struct {
    rt_counter_t *requests;    /* requests for an inbox of the channel */
    rt_counter_t *items;       /* items taken in (new) */
    rt_counter_t *duplicates;  /* items already taken in */
    rt_counter_t *unavailable; /* answered 503 */
    rt_histogram_t *latency;   /* request to answer, seconds */
} s_channel_metrics_t;

typedef struct {
    server_t *server;            /* the server */
    s_channel_metrics_t *m;      /* the series it counts in: its channel's, or the links' */
    bool link;                   /* a link's request (unsubscribe.h): answered as HTML pages */
    ingest_inbox_t link_inbox;   /* a link's pseudo-inbox, which inbox then points to */
    rt_http_request_t *req;      /* NULL once answered */
    rt_http_worker_t *worker;    /* whose loop answers it and frees it */
    inboxes_snapshot_t *snap;    /* keeps the inbox alive */
    const ingest_inbox_t *inbox; /* the inbox */
    const char *channel;         /* its channel's name */
    ingest_result_t result;      /* the items */
    uint8_t *body;               /* the raw body, kept for the writer */
    size_t body_len;             /* its length */
    char *content_type;          /* its content type */
    struct event *timer;         /* request timeout, on the worker's loop */
    int status;                  /* the writer's outcome (writer.h), -1 until then */
    size_t fresh, duplicates;    /* its counts */
    int64_t t0_us;               /* arrival, CLOCK_MONOTONIC */
    char nonce[72];              /* a replay nonce this request recorded, "" none */
} s_pending_t;

/* Mailgun-style nonces seen recently (see channel.h replay_check). */
typedef struct {
    pthread_mutex_t lock; /* guards the table */
    char (*nonce)[72];    /* open addressing, "" empty */
    int64_t *expires;     /* per slot */
} s_replay_t;

struct server_t {
    server_config_t config;      /* settings (strings lent from main) */
    rt_http_server_t *http;      /* the HTTP server */
    s_replay_t replay;           /* nonce memory */
    atomic_bool stopping;        /* new webhooks are answered 503 */
    atomic_int inflight;         /* pendings not yet freed */
    s_channel_metrics_t *m;      /* by rt_channel_index, rt_channel_count () of them */
    rt_counter_t *m_no_route;    /* requests for no route or inbox */
    s_route_t *routes;           /* the webhook routes registered */
    size_t nroutes;              /* their number */
    rt_signed_keys_t *link_keys; /* verify the links' tokens; NULL: none configured */
    s_channel_metrics_t link_m;  /* the unsubscribe link's series */
};

static int
s_replay_check (void *arg, const char *nonce, int64_t expires_ms)
{
    s_replay_t *r = arg;
    uint32_t h = 2166136261u;
    const char *p;
    int64_t now = rt_clock_now_ms ();
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

/* An error answer: problem details typed after the metric label
 * ("bad_signature" is https://retain.dev/problems/bad-signature). */
static void
s_problem (rt_http_request_t *req, int status, const char *label, const char *detail)
{
    char type[64];
    size_t i;
    snprintf (type, sizeof type, "%s", label && *label ? label : "invalid");
    for (i = 0; type[i]; i++) {
        if (type[i] == '_')
            type[i] = '-';
    }
    rt_http_problem (req, status, type, detail);
}

static void
s_count_rejected (server_t *server, const char *channel, const char *label)
{
    char labels[128];
    snprintf (labels, sizeof labels, "channel=\"%s\",reason=\"%s\"", channel, label);
    rt_counter_inc (rt_metrics_counter (server->config.metrics, "retain_ingest_rejected_total",
                                        labels, "Requests refused, by channel and reason."));
}

static void
s_count_link_refused (server_t *server, const char *label)
{
    char labels[128];
    snprintf (labels, sizeof labels, "link=\"unsubscribe\",reason=\"%s\"", label);
    rt_counter_inc (rt_metrics_counter (server->config.metrics, "retain_ingest_link_refused_total",
                                        labels,
                                        "Link requests refused (a token that does not verify, a "
                                        "POST that is not One-Click), by reason."));
}

/* A link's answers are pages for people, behind a token that is as good
 * as a password for what it does: kept out of caches, referrers and
 * search engines. */
static void
s_link_headers (rt_http_request_t *req)
{
    rt_http_header_add (req, "Cache-Control", "no-store");
    rt_http_header_add (req, "Referrer-Policy", "no-referrer");
    rt_http_header_add (req, "X-Robots-Tag", "noindex, nofollow");
    rt_http_header_add (req, "X-Content-Type-Options", "nosniff");
    rt_http_header_add (req, "Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                        "frame-ancestors 'none'");
}

/* A link's refusal or failure: its page with the status. */
static void
s_link_reply (rt_http_request_t *req, ingest_result_t *result, int status)
{
    s_link_headers (req);
    if (status == 405)
        rt_http_header_add (req, "Allow", "GET, HEAD, POST");
    if (result->response)
        rt_http_reply (req, status, result->response_type, result->response,
                       strlen (result->response));
    else
        rt_http_reply (req, status, "text/plain; charset=utf-8", "try again later\n", 16);
}

/* Every inbox has a channel of the table: inboxes.c loads no other. */
static s_channel_metrics_t *
s_metrics (server_t *server, const ingest_inbox_t *inbox)
{
    return &server->m[rt_channel_index (inbox->channel)];
}

static void
s_pending_free (s_pending_t *p)
{
    /* Not stored (refused, or the writer failed): the nonce is free again. */
    if (p->nonce[0] && p->status != 0)
        s_replay_forget (&p->server->replay, p->nonce);
    if (p->timer)
        event_free (p->timer);
    ingest_result_reset (&p->result);
    inboxes_release (p->snap);
    free (p->body);
    free (p->content_type);
    atomic_fetch_sub (&p->server->inflight, 1);
    free (p);
}

/* Answers the pending's request with the writer's outcome: 200 stored,
 * the result's status when refused (never to be retried), else 503. */
static void
s_answer (s_pending_t *p, int writer_status)
{
    s_channel_metrics_t *m = p->m;
    rt_http_request_t *req = p->req;
    if (!req)
        return;
    p->req = NULL;
    if (p->timer)
        evtimer_del (p->timer);
    rt_histogram_observe (m->latency, (double)(rt_clock_elapsed_us () - p->t0_us) / 1e6);
    if (p->link && writer_status == 0) {
        s_link_reply (req, &p->result, 200);
        return;
    }
    if (p->link) {
        /* Its own result for the page: at a timeout the writer still reads
         * (and may write) the pending's. */
        ingest_result_t page;
        int status = writer_status == 1 ? 422 : 503;
        memset (&page, 0, sizeof page);
        if (writer_status != 1)
            rt_counter_inc (m->unavailable);
        unsubscribe_refusal (&page, status, status == 422 ? WRITER_REFUSED_LABEL : "not_stored",
                             "not stored");
        s_link_reply (req, &page, status);
        ingest_result_reset (&page);
        return;
    }
    if (writer_status == 0) {
        if (p->result.response) {
            const char *type = p->result.response_type ? p->result.response_type : "text/plain";
            rt_http_reply (req, 200, type, p->result.response, strlen (p->result.response));
        } else
            rt_http_reply (req, 200, "application/json", "{\"ok\":true}", 11);
    } else if (writer_status == 1) {
        int status = p->result.status ? p->result.status : 422;
        const char *label = p->result.label ? p->result.label : WRITER_REFUSED_LABEL;
        s_problem (req, status, label, p->result.reason[0] ? p->result.reason : label);
    } else {
        rt_counter_inc (m->unavailable);
        s_problem (req, 503, "not_stored", "not stored yet; retry");
    }
}

static void
s_timeout (evutil_socket_t fd, short what, void *arg)
{
    s_pending_t *p = arg;
    (void)fd;
    (void)what;
    rt_log (RT_LOG_WARN, "webhook not committed in time; answered 503",
            rt_log_str ("inbox", p->inbox->id));
    s_answer (p, -1);
}

/* On the worker: the writer settled the pending. */
static void
s_settled (void *arg)
{
    s_pending_t *p = arg;
    s_channel_metrics_t *m = p->m;
    if (p->status == 0) {
        rt_counter_add (m->items, p->fresh);
        rt_counter_add (m->duplicates, p->duplicates);
    } else if (p->status == 1) {
        const char *label = p->result.label ? p->result.label : WRITER_REFUSED_LABEL;
        if (p->link)
            s_count_link_refused (p->server, label);
        else
            s_count_rejected (p->server, p->channel, label);
        rt_log (RT_LOG_WARN, "webhook refused by the writer", rt_log_str ("inbox", p->inbox->id),
                rt_log_str ("channel", p->channel), rt_log_str ("reason", p->result.reason));
    }
    s_answer (p, p->status);
    s_pending_free (p);
}

/* Writer thread: hand the settled pending back to its worker. */
static void
s_writer_done (void *arg, int status, size_t fresh, size_t duplicates)
{
    s_pending_t *p = arg;
    p->status = status;
    p->fresh = fresh;
    p->duplicates = duplicates;
    if (rt_http_worker_post (p->worker, s_settled, p) != 0)
        rt_log (RT_LOG_ERROR, "cannot hand a settled webhook back to its worker",
                rt_log_str ("inbox", p->inbox->id));
}

/* CORS for the web chat: only the inbox's configured origins. Returns false
 * (and answers) when the request must not go on. */
static bool
s_cors (rt_http_request_t *req, const ingest_inbox_t *inbox, bool preflight)
{
    const char *origin = rt_http_header (req, "Origin");
    const json_t *allowed = json_object_get (inbox->config, "allowed_origins");
    bool ok = false;
    size_t i;
    json_t *v;
    if (!origin) {
        if (!preflight)
            return true;
        s_problem (req, 403, "origin_not_allowed", "preflight without Origin");
        return false;
    }
    json_array_foreach (allowed, i, v)
    {
        if (json_is_string (v) && strcmp (json_string_value (v), origin) == 0)
            ok = true;
    }
    if (!ok) {
        s_problem (req, 403, "origin_not_allowed", "origin not allowed for this inbox");
        return false;
    }
    rt_http_header_add (req, "Access-Control-Allow-Origin", origin);
    rt_http_header_add (req, "Vary", "Origin");
    if (preflight) {
        rt_http_header_add (req, "Access-Control-Allow-Methods", "POST, OPTIONS");
        rt_http_header_add (req, "Access-Control-Allow-Headers", "Content-Type");
        rt_http_header_add (req, "Access-Control-Max-Age", "600");
        rt_http_reply (req, 204, NULL, NULL, 0);
        return false;
    }
    return true;
}

/* The replay guard as a request sees it: remembers which nonce it used. */
static int
s_request_replay_check (void *arg, const char *nonce, int64_t expires_ms)
{
    s_pending_t *p = arg;
    int seen = s_replay_check (&p->server->replay, nonce, expires_ms);
    if (!seen)
        snprintf (p->nonce, sizeof p->nonce, "%s", nonce);
    return seen;
}

/* The inbox a request at route (a pattern of the table) is for, when it
 * answers there: its kind's route is that one. NULL otherwise. */
static const ingest_inbox_t *
s_inbox_at (const inboxes_snapshot_t *snap, const char *route, const char *inbox_id)
{
    const ingest_inbox_t *inbox = inbox_id ? inboxes_find (snap, inbox_id) : NULL;
    const rt_channel_kind_t *kind = inbox ? inboxes_kind (inbox) : NULL;
    if (!kind || !kind->route || !route || strcmp (kind->route, route) != 0)
        return NULL;
    return inbox;
}

/* A pending for req, counted in flight, with its own copy of the body;
 * NULL when out of memory (then nothing is held). */
static s_pending_t *
s_pending_new (server_t *server, rt_http_request_t *req, s_channel_metrics_t *m)
{
    const char *body;
    size_t body_len;
    s_pending_t *p = calloc (1, sizeof *p);
    if (!p)
        return NULL;
    body = rt_http_body (req, &body_len);
    p->body = malloc (body_len + 1);
    if (!p->body) {
        free (p);
        return NULL;
    }
    memcpy (p->body, body, body_len + 1);
    p->body_len = body_len;
    atomic_fetch_add (&server->inflight, 1);
    p->server = server;
    p->m = m;
    p->req = req;
    p->worker = rt_http_request_worker (req);
    p->t0_us = rt_http_arrival_us (req);
    /* Until the writer says otherwise, the request counts as not stored. */
    p->status = -1;
    return p;
}

/* The request as a handler reads it (channel.h), its headers in headers
 * (MAX_HEADERS of them at most), the body the pending's copy. */
static void
s_request (s_pending_t *p, rt_http_request_t *req, ingest_header_t *headers, const char *public_url,
           ingest_request_t *r)
{
    const char *name, *value;
    size_t nheaders = 0, i;
    for (i = 0; nheaders < MAX_HEADERS && rt_http_header_at (req, i, &name, &value); i++) {
        headers[nheaders].name = name;
        headers[nheaders].value = value;
        nheaders++;
    }
    memset (r, 0, sizeof *r);
    r->method = rt_http_method (req);
    r->path = rt_http_path (req);
    r->query = rt_http_query (req);
    r->headers = headers;
    r->nheaders = nheaders;
    r->body = p->body;
    r->body_len = p->body_len;
    r->peer = rt_http_peer (req);
    r->public_url = public_url;
    r->now_ms = rt_clock_now_ms ();
    r->replay_check = s_request_replay_check;
    r->replay_arg = p;
}

/* A request its handler read (the items in p->result): answered at once
 * when it carries nothing to keep, else handed to the writer and answered
 * once that has settled it (s_settled) or the timeout came. */
static void
s_keep (server_t *server, rt_http_request_t *req, s_pending_t *p)
{
    const char *value;
    writer_job_t job;
    if (p->result.count == 0) {
        p->status = 0;
        s_answer (p, 0);
        s_pending_free (p);
        return;
    }
    value = rt_http_header (req, "Content-Type");
    p->content_type = strdup (value ? value : "");
    p->timer = evtimer_new (rt_http_base (req), s_timeout, p);
    if (!p->content_type || !p->timer) {
        s_answer (p, -1);
        s_pending_free (p);
        return;
    }
    memset (&job, 0, sizeof job);
    job.inbox = p->inbox;
    job.result = &p->result;
    job.raw = p->body;
    job.raw_len = p->body_len;
    job.raw_type = p->content_type;
    job.done = s_writer_done;
    job.done_arg = p;
    if (writer_submit (server->config.writer, &job) != 0) {
        s_answer (p, -1);
        s_pending_free (p);
        return;
    }
    /* The answer waits for the writer (s_settled) or the timeout. */
    rt_http_defer (req);
    struct timeval tv = {server->config.request_timeout_ms / 1000,
                         (server->config.request_timeout_ms % 1000) * 1000};
    evtimer_add (p->timer, &tv);
}

/* The request for an inbox at route: verify, parse, keep. */
static void
s_webhook (server_t *server, rt_http_request_t *req, const char *route, const char *inbox_id)
{
    char public_url[2048];
    inboxes_snapshot_t *snap;
    const ingest_inbox_t *inbox;
    ingest_header_t headers[MAX_HEADERS];
    ingest_request_t r;
    s_pending_t *p;
    const char *channel, *query = rt_http_query (req);
    const json_t *override;
    const ingest_provider_t *provider;

    if (!route) {
        rt_counter_inc (server->m_no_route);
        s_problem (req, 404, "not_found", "no such endpoint");
        return;
    }
    snap = inboxes_acquire (server->config.inboxes);
    inbox = s_inbox_at (snap, route, inbox_id);
    /* server_start checked that every routed provider has a handler. */
    provider = inbox ? ingest_provider (inboxes_kind (inbox)->provider) : NULL;
    if (!inbox || !provider) {
        rt_counter_inc (server->m_no_route);
        inboxes_release (snap);
        s_problem (req, 404, "not_found", "unknown inbox");
        return;
    }
    channel = ingest_channel_name (inbox->channel);
    rt_counter_inc (s_metrics (server, inbox)->requests);
    if (atomic_load (&server->stopping)) {
        rt_counter_inc (s_metrics (server, inbox)->unavailable);
        inboxes_release (snap);
        s_problem (req, 503, "stopping", "the server is stopping; retry");
        return;
    }
    if (provider->cors && !s_cors (req, inbox, strcmp (rt_http_method (req), "OPTIONS") == 0)) {
        inboxes_release (snap);
        return;
    }

    p = s_pending_new (server, req, s_metrics (server, inbox));
    if (!p) {
        inboxes_release (snap);
        s_problem (req, 503, "no_memory", "out of memory");
        return;
    }
    p->snap = snap;
    p->inbox = inbox;
    p->channel = channel;
    /* The URL the provider signed is the public one, not ours behind the
     * proxy: from the inbox's "public_url", else the server's base URL. */
    override = json_object_get (inbox->config, "public_url");
    if (json_is_string (override))
        snprintf (public_url, sizeof public_url, "%s%s%s", json_string_value (override),
                  *query ? "?" : "", query);
    else
        snprintf (public_url, sizeof public_url, "%s%s", server->config.public_url,
                  rt_http_target (req));
    s_request (p, req, headers, public_url, &r);

    if (provider->handler (inbox, &r, &p->result) != 0) {
        int status = p->result.status ? p->result.status : 400;
        const char *label = p->result.label ? p->result.label : "invalid";
        s_count_rejected (server, channel, label);
        rt_log (status >= 500 ? RT_LOG_ERROR : RT_LOG_INFO, "webhook refused",
                rt_log_str ("inbox", inbox->id), rt_log_str ("channel", channel),
                rt_log_int ("status", status), rt_log_str ("reason", p->result.reason));
        s_problem (req, status, label, p->result.reason[0] ? p->result.reason : label);
        p->req = NULL;
        s_pending_free (p);
        return;
    }
    s_keep (server, req, p);
}

/* The one-click unsubscribe link (unsubscribe.h): a page, or a
 * ConsentChanged kept like a webhook's items before the answer. */
static void
s_on_unsubscribe (rt_http_request_t *req, void *arg)
{
    server_t *server = arg;
    ingest_header_t headers[MAX_HEADERS];
    ingest_request_t r;
    s_pending_t *p;
    ingest_result_t stopping;

    rt_counter_inc (server->link_m.requests);
    if (atomic_load (&server->stopping)) {
        rt_counter_inc (server->link_m.unavailable);
        memset (&stopping, 0, sizeof stopping);
        unsubscribe_refusal (&stopping, 503, "stopping", "the server is stopping");
        s_link_reply (req, &stopping, 503);
        ingest_result_reset (&stopping);
        return;
    }
    p = s_pending_new (server, req, &server->link_m);
    if (!p) {
        s_link_reply (req, &(ingest_result_t){0}, 503);
        return;
    }
    p->link = true;
    p->link_inbox.id = UNSUBSCRIBE_INBOX;
    p->link_inbox.secret = "";
    p->link_inbox.previous_secret = "";
    p->link_inbox.config = NULL;
    p->inbox = &p->link_inbox;
    p->channel = "link";
    s_request (p, req, headers, server->config.public_url, &r);
    if (unsubscribe_handle (server->link_keys, rt_http_param (req, "token"), &r, &p->link_inbox,
                            &p->result) != 0) {
        const char *label = p->result.label ? p->result.label : "invalid";
        s_count_link_refused (server, label);
        rt_log (p->result.status >= 500 ? RT_LOG_ERROR : RT_LOG_INFO, "unsubscribe link refused",
                rt_log_int ("status", p->result.status), rt_log_str ("reason", label));
        s_link_reply (req, &p->result, p->result.status);
        p->req = NULL;
        s_pending_free (p);
        return;
    }
    s_keep (server, req, p);
}

/* A webhook route of the table, e.g. /hooks/twilio/{inbox}. */
static void
s_on_hook (rt_http_request_t *req, void *arg)
{
    s_route_t *route = arg;
    s_webhook (route->server, req, route->pattern, rt_http_param (req, "inbox"));
}

/* Every other path. */
static void
s_on_other (rt_http_request_t *req, void *arg)
{
    s_webhook (arg, req, NULL, NULL);
}

/* The HTTP server refused a request itself: a body over the limit counts
 * against the inbox's channel, like any webhook ingestd refuses. */
static void
s_on_refused (void *arg, const rt_http_request_t *req, int status, const char *reason)
{
    server_t *server = arg;
    const char *inbox_id = req ? rt_http_param (req, "inbox") : NULL;
    inboxes_snapshot_t *snap;
    const ingest_inbox_t *inbox;
    (void)status;
    if (!inbox_id || strcmp (reason, "too_large") != 0)
        return;
    snap = inboxes_acquire (server->config.inboxes);
    inbox = s_inbox_at (snap, rt_http_route_pattern (req), inbox_id);
    if (inbox)
        s_count_rejected (server, ingest_channel_name (inbox->channel), "too_large");
    inboxes_release (snap);
}

server_t *
server_start (const server_config_t *config, char *err, size_t errlen)
{
    server_t *self;
    rt_http_server_config_t hc;
    size_t i, k;
    if (ingest_providers_check (err, errlen) != 0)
        return NULL;
    self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->config = *config;
    atomic_init (&self->stopping, false);
    atomic_init (&self->inflight, 0);
    pthread_mutex_init (&self->replay.lock, NULL);
    self->replay.nonce = calloc (REPLAY_SLOTS, sizeof *self->replay.nonce);
    self->replay.expires = calloc (REPLAY_SLOTS, sizeof *self->replay.expires);
    self->m = calloc (rt_channel_count (), sizeof *self->m);
    self->routes = calloc (rt_channel_kind_count (), sizeof *self->routes);
    if (!self->replay.nonce || !self->replay.expires || !self->m || !self->routes) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < rt_channel_count (); i++) {
        char labels[64];
        snprintf (labels, sizeof labels, "channel=\"%s\"", rt_channel_at (i)->name);
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
    {
        const char *labels = "link=\"unsubscribe\"";
        s_channel_metrics_t *m = &self->link_m;
        m->requests = rt_metrics_counter (config->metrics, "retain_ingest_link_requests_total",
                                          labels, "Requests for a customer's link.");
        m->items = rt_metrics_counter (config->metrics, "retain_ingest_link_received_total", labels,
                                       "Link requests that changed something (an unsubscribe), "
                                       "put on the bus.");
        m->duplicates =
            rt_metrics_counter (config->metrics, "retain_ingest_link_duplicates_total", labels,
                                "Link requests repeating one already taken in; nothing changed.");
        m->unavailable =
            rt_metrics_counter (config->metrics, "retain_ingest_link_unavailable_total", labels,
                                "Link requests answered 503: not durable in time.");
        m->latency = rt_metrics_histogram (config->metrics, "retain_ingest_link_latency_seconds",
                                           labels, "Link request arrival to answer.", NULL, 0);
    }
    if (config->link_keys && *config->link_keys) {
        char why[160];
        self->link_keys = rt_signed_keys_parse (config->link_keys, why, sizeof why);
        if (!self->link_keys) {
            snprintf (err, errlen, "link-keys: %s", why);
            goto fail;
        }
    } else
        rt_log (RT_LOG_WARN, "no link keys (--link-keys): every unsubscribe link is answered 404");

    memset (&hc, 0, sizeof hc);
    hc.address = config->address;
    hc.name = "ingest";
    hc.threads = config->threads;
    hc.max_body = config->max_body;
    hc.header_timeout_ms = config->header_timeout_ms;
    hc.max_connections_per_address = config->per_address;
    hc.metrics = config->metrics;
    hc.refused = s_on_refused;
    hc.refused_arg = self;
    self->http = rt_http_server_new (&hc, err, errlen);
    if (!self->http)
        goto fail;
    /* One route per distinct route of the kinds (Twilio's serves two
     * channels), any method: the handlers answer 405 themselves. */
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        bool seen = false;
        for (k = 0; kind->route && k < self->nroutes && !seen; k++)
            seen = strcmp (self->routes[k].pattern, kind->route) == 0;
        if (!kind->route || seen)
            continue;
        self->routes[self->nroutes].server = self;
        self->routes[self->nroutes].pattern = kind->route;
        if (!rt_http_route (self->http, NULL, kind->route, s_on_hook,
                            &self->routes[self->nroutes])) {
            snprintf (err, errlen, "cannot route %s", kind->route);
            goto fail;
        }
        self->nroutes++;
    }
    if (!rt_http_route (self->http, NULL, UNSUBSCRIBE_ROUTE, s_on_unsubscribe, self) ||
        !rt_http_route (self->http, NULL, NULL, s_on_other, self)) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    if (rt_http_server_start (self->http, err, errlen) != 0)
        goto fail;
    return self;
fail:
    server_stop (&self);
    return NULL;
}

int
server_port (const server_t *self)
{
    return rt_http_server_port (self->http);
}

void
server_stop (server_t **self_p)
{
    server_t *self;
    int waited_ms = 0;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    /* New webhooks get 503 from here on; what is in flight is settled by
     * the writer, which still runs, and answered by the workers. */
    atomic_store (&self->stopping, true);
    while (atomic_load (&self->inflight) > 0 &&
           waited_ms < self->config.request_timeout_ms + STOP_GRACE_MS) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep (&ts, NULL);
        waited_ms += 10;
    }
    if (atomic_load (&self->inflight) > 0) {
        /* The writer still holds pendings that would be answered on the
         * workers: leaving them (and the server) is safer than freeing
         * what a late callback would touch. */
        rt_log (RT_LOG_ERROR, "webhooks still unsettled at stop; left in memory",
                rt_log_int ("count", atomic_load (&self->inflight)));
        *self_p = NULL;
        return;
    }
    rt_http_server_destroy (&self->http);
    rt_signed_keys_destroy (&self->link_keys);
    free (self->replay.nonce);
    free (self->replay.expires);
    pthread_mutex_destroy (&self->replay.lock);
    free (self->m);
    free (self->routes);
    free (self);
    *self_p = NULL;
}
