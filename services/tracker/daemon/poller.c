/*
 * poller: the workers that ask the carriers about due parcels.
 *
 * Each worker is a thread with its own libevent loop, HTTP client
 * (rt_http_client: libcurl multi, many calls in flight, none blocking the
 * loop) and PostgreSQL connection, used blocking from the loop's thread
 * between events. A timer drives it:
 *
 *   1. For each carrier in turn, while the worker has room under its share
 *      of the in-flight cap, a claim (tracking.claim, one statement, its
 *      own committed transaction) takes one account's due parcels, up to
 *      the carrier's batch, with the account's next call slot and a day's
 *      quota unit, and leases them under a fresh poll token. Spacing and
 *      quotas live in the account's row, so they hold across replicas.
 *   2. The account's credentials are read (one statement); UPS first needs
 *      an OAuth token: a cached one is used until a minute before it
 *      expires, else a token call goes first and its answer is stored in
 *      the account for every replica.
 *   3. The call is built by the carrier's adapter (carrier.h) and
 *      submitted. Its answer is read by the adapter and recorded by
 *      outcome.c in one transaction; a batch the carrier refuses as a bad
 *      request is asked again parcel by parcel (Ukrposhta answers 404 for a
 *      whole batch when one barcode is unknown), so one bad number does
 *      not blind the other ninety-nine. Only batching carriers split, and
 *      they have no spacing to break.
 *
 * A crash at any point leaves parcels leased; the lease expires and they
 * are claimed again. Reading a status twice is harmless: outcome.c
 * compares it with the stored one, so nothing is emitted twice.
 *
 * On stop the workers claim nothing more, wait for their calls in flight
 * up to the request timeout and record them, then close.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "rt_clock.h"
#include "rt_http_client.h"
#include "rt_http_loop.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "rt_uuid.h"
#include "trackerd.h"

#define S_CLAIM "tracker_claim"
static const char *s_claim_sql =
    "SELECT shipment_id, account, tracking_number, service, phone, tag, sub_status, raw_code,"
    " COALESCE(status_at, 0), not_found, shipped_at, COALESCE(promised_by, 0), news_at,"
    " COALESCE(carrier_eta, 0), COALESCE(storage_until, 0), delays, milestones, customer_id,"
    " order_id, origin_city, destination_city, to_sender"
    " FROM tracking.claim($1::bigint, $2::uuid, $3::bigint, $4, $5::integer, $6::bigint)";

#define S_ACCOUNT "tracker_account"
static const char *s_account_sql =
    "SELECT base_url, api_key, client_id, client_secret, language, COALESCE(access_token, ''),"
    " COALESCE(token_expires, 0), failures FROM tracking.accounts WHERE id = $1";

#define S_TOKEN "tracker_token"
static const char *s_token_sql =
    "UPDATE tracking.accounts SET access_token = $2, token_expires = $3::bigint,"
    " updated_at = now() WHERE id = $1";

/* A cached token is renewed this long before it expires. */
#define S_TOKEN_MARGIN_MS 60000

typedef struct worker_t worker_t;

struct poller_t {
    poller_config_t cfg;         /* the settings (strings lent by the daemon) */
    worker_t *workers;           /* cfg.workers of them */
    atomic_bool stop;            /* stop claiming, drain, end */
    atomic_int ready;            /* workers connected to PostgreSQL and looping */
    rt_gauge_t *in_flight_gauge; /* calls in flight, all workers */
};

struct worker_t {
    poller_t *owner;     /* the poller */
    int index;           /* its number, for its connection's name */
    pthread_t thread;    /* its thread */
    bool started;        /* the thread was created */
    rt_http_loop_t loop; /* its loop, client and timer (the tick: claims) */
    rt_db_t *db;         /* its connection */
    int cap;             /* its share of the in-flight cap */
    int in_flight;       /* its calls in flight */
    int next_carrier;    /* where the next round of claims starts: fairness */
    bool counted_ready;  /* it counts itself in owner->ready (connected) */
};

/* One call in flight (or a token call before it). */
typedef struct s_call_t s_call_t;
struct s_call_t {
    worker_t *w;              /* its worker */
    call_t call;              /* the batch; parcels owned unless parent is set */
    s_call_t *parent;         /* a split's whole batch, which owns the parcels */
    int children;             /* a split: parts still in flight */
    char *base_url;           /* the account's, owned */
    char *api_key;            /* owned */
    char *client_id;          /* owned */
    char *client_secret;      /* owned */
    char *language;           /* owned */
    char *access_token;       /* owned, NULL: none */
    carrier_query_t *queries; /* one per parcel */
    carrier_request_t req;    /* the built request */
    bool token_call;          /* the answer awaited is the OAuth token's */
    int64_t started_us;       /* rt_clock_elapsed_us at submit */
};

static void s_submit (s_call_t *c);

static void
s_parcel_free (parcel_t *p)
{
    free (p->id);
    free (p->tracking_number);
    free (p->service);
    free (p->phone);
    free (p->tag);
    free (p->sub_status);
    free (p->raw_code);
    free (p->customer_id);
    free (p->order_id);
    free (p->origin_city);
    free (p->destination_city);
    free (p->delays);
    free (p->milestones);
}

static void
s_call_free (s_call_t *c)
{
    if (!c)
        return;
    if (!c->parent) {
        for (size_t i = 0; i < c->call.n; i++)
            s_parcel_free (&c->call.parcels[i]);
        free (c->call.parcels);
        free (c->base_url);
        free (c->api_key);
        free (c->client_id);
        free (c->client_secret);
        free (c->language);
        free (c->access_token);
    }
    free (c->queries);
    rt_http_outreq_free (&c->req);
    free (c);
}

/* A call is done with: a split's part releases its whole when it is the
 * last. */
static void
s_call_done (s_call_t *c)
{
    s_call_t *parent = c->parent;
    s_call_free (c);
    if (parent && --parent->children == 0)
        s_call_free (parent);
}

static void
s_in_flight (worker_t *w, int delta)
{
    w->in_flight += delta;
    rt_gauge_add (w->owner->in_flight_gauge, delta);
}

static int
s_carrier_index (const carrier_t *carrier)
{
    for (int i = 0; carrier_all[i]; i++) {
        if (carrier_all[i] == carrier)
            return i;
    }
    return -1;
}

static void
s_count_call (worker_t *w, const carrier_t *carrier, const char *verdict, int64_t started_us)
{
    char labels[96];
    snprintf (labels, sizeof labels, "carrier=\"%s\",verdict=\"%s\"", carrier->name, verdict);
    rt_counter_inc (rt_metrics_counter (w->owner->cfg.outcome.metrics, "retain_tracker_calls_total",
                                        labels, "calls to the carriers, by verdict"));
    snprintf (labels, sizeof labels, "carrier=\"%s\"", carrier->name);
    rt_histogram_observe (rt_metrics_histogram (w->owner->cfg.outcome.metrics,
                                                "retain_tracker_call_seconds", labels,
                                                "one call to a carrier, submit to answer", NULL, 0),
                          (double)(rt_clock_elapsed_us () - started_us) / 1e6);
}

static char *
s_dup (const char *s)
{
    return strdup (s ? s : "");
}

static void
s_account_view (const s_call_t *c, carrier_account_t *a)
{
    const s_call_t *owner = c->parent ? c->parent : c;
    *a = (carrier_account_t){.base_url = owner->base_url,
                             .api_key = owner->api_key,
                             .client_id = owner->client_id,
                             .client_secret = owner->client_secret,
                             .access_token = owner->access_token,
                             .language = owner->language[0] ? owner->language : NULL};
}

/* Records an answer; PostgreSQL failing leaves the lease to bring the
 * parcels back. */
static void
s_record (s_call_t *c, const carrier_answer_t *answer)
{
    worker_t *w = c->w;
    int rc;
    if (c->token_call)
        rc =
            outcome_fail_call (w->db, &w->owner->cfg.outcome, &c->call, answer, rt_clock_now_ms ());
    else
        rc = outcome_record (w->db, &w->owner->cfg.outcome, &c->call, answer, rt_clock_now_ms ());
    if (rc != 0)
        rt_log (RT_LOG_WARN, "a call's outcome was not recorded: its parcels are polled again",
                rt_log_str ("carrier", c->call.carrier->name),
                rt_log_str ("account", c->call.account), rt_log_str ("error", rt_db_error (w->db)));
}

/* A batch refused as a bad request: each parcel asked alone. */
static void
s_split (s_call_t *c)
{
    size_t n = c->call.n;
    /* One reference more than the parts, held through the loop: a part
     * that fails at once must not free the whole under it. */
    c->children = (int)n + 1;
    for (size_t i = 0; i < n; i++) {
        s_call_t *part = calloc (1, sizeof *part);
        if (!part) {
            /* Out of memory: the rest stay leased and come back. */
            c->children -= (int)(n - i);
            break;
        }
        part->w = c->w;
        part->parent = c;
        part->call = c->call;
        part->call.parcels = &c->call.parcels[i];
        part->call.n = 1;
        s_submit (part);
    }
    if (--c->children == 0)
        s_call_free (c);
}

static void
s_done (void *arg, const rt_http_response_t *resp)
{
    s_call_t *c = arg;
    worker_t *w = c->w;
    const carrier_t *carrier = c->call.carrier;
    carrier_answer_t answer = {0};
    s_in_flight (w, -1);
    if (resp->outcome != RT_HTTP_OUTCOME_OK)
        rt_log (RT_LOG_INFO, "a carrier call failed in transport",
                rt_log_str ("carrier", carrier->name), rt_log_str ("url", c->req.log_url),
                rt_log_str ("outcome", rt_http_outcome_name (resp->outcome)),
                rt_log_str ("error", resp->error));
    if (c->token_call) {
        char *token = NULL;
        int64_t expires_ms = 0;
        int st = resp->outcome == RT_HTTP_OUTCOME_OK ? resp->status : 0;
        if (carrier->parse_token (st, resp->retry_after_ms, resp->body, resp->body_len, &token,
                                  &expires_ms, &answer) == 0 &&
            token) {
            char exp[24];
            const char *v[3] = {c->call.account, token, exp};
            PGresult *r;
            int64_t at = rt_clock_now_ms () + expires_ms;
            snprintf (exp, sizeof exp, "%lld", (long long)at);
            r = rt_db_exec_prepared (w->db, S_TOKEN, 3, v, NULL, NULL, 0);
            if (r)
                PQclear (r);
            s_count_call (w, carrier, "token", c->started_us);
            free (c->access_token);
            c->access_token = token;
            c->token_call = false;
            rt_http_outreq_free (&c->req);
            carrier_answer_free (&answer);
            s_submit (c);
            return;
        }
        free (token);
        s_count_call (w, carrier, carrier_verdict_name (answer.verdict), c->started_us);
        rt_log (RT_LOG_WARN, "a carrier's token call failed", rt_log_str ("carrier", carrier->name),
                rt_log_str ("account", c->call.account),
                rt_log_str ("verdict", carrier_verdict_name (answer.verdict)),
                rt_log_str ("reason", answer.reason));
        s_record (c, &answer);
        carrier_answer_free (&answer);
        s_call_done (c);
        return;
    }
    carrier->parse (c->queries, c->call.n, resp->outcome == RT_HTTP_OUTCOME_OK ? resp->status : 0,
                    resp->retry_after_ms, resp->body, resp->body_len, &answer);
    s_count_call (w, carrier, carrier_verdict_name (answer.verdict), c->started_us);
    if (answer.verdict == CARRIER_BAD_REQUEST && c->call.n > 1 && !c->parent) {
        rt_log (RT_LOG_INFO, "a batch refused as a bad request: asked parcel by parcel",
                rt_log_str ("carrier", carrier->name), rt_log_str ("reason", answer.reason),
                rt_log_int ("parcels", (long long)c->call.n));
        carrier_answer_free (&answer);
        s_split (c);
        return;
    }
    s_record (c, &answer);
    carrier_answer_free (&answer);
    s_call_done (c);
}

/* Builds and submits c: its token call first when it needs one. A call
 * that cannot be built is recorded as refused at once. */
static void
s_submit (s_call_t *c)
{
    worker_t *w = c->w;
    const carrier_t *carrier = c->call.carrier;
    carrier_account_t account;
    rt_http_client_request_t hr = {0};
    char err[256] = "";
    int rc;

    s_account_view (c, &account);
    if (carrier->needs_token && !account.access_token) {
        c->token_call = true;
        rc = carrier->build_token (&account, &c->req, err, sizeof err);
    } else {
        c->queries = calloc (c->call.n, sizeof *c->queries);
        if (!c->queries) {
            s_call_done (c);
            return;
        }
        for (size_t i = 0; i < c->call.n; i++) {
            const parcel_t *p = &c->call.parcels[i];
            c->queries[i] = (carrier_query_t){.tracking_number = p->tracking_number,
                                              .phone = p->phone[0] ? p->phone : NULL,
                                              .service = p->service[0] ? p->service : NULL,
                                              .trans_id = c->call.token};
        }
        rc = carrier->build (&account, c->queries, c->call.n, &c->req, err, sizeof err);
    }
    if (rc != 0) {
        carrier_answer_t answer = {.verdict = CARRIER_STOP_ACCOUNT};
        snprintf (answer.reason, sizeof answer.reason, "the request could not be built: %.200s",
                  err);
        rt_log (RT_LOG_WARN, "a carrier call could not be built",
                rt_log_str ("carrier", carrier->name), rt_log_str ("account", c->call.account),
                rt_log_str ("reason", err));
        c->token_call = true; /* recorded as a refused call: the account waits for an operator */
        s_record (c, &answer);
        s_call_done (c);
        return;
    }
    hr.method = c->req.method;
    hr.url = c->req.url;
    hr.headers = (const char *const *)c->req.headers;
    hr.body = c->req.body;
    hr.body_len = c->req.body_len;
    hr.timeout_ms = (int)w->owner->cfg.request_timeout_ms;
    hr.done = s_done;
    hr.arg = c;
    c->started_us = rt_clock_elapsed_us ();
    if (rt_http_client_submit (w->loop.http, &hr, err, sizeof err) != 0) {
        rt_log (RT_LOG_WARN, "a carrier call was not submitted: its parcels come back",
                rt_log_str ("carrier", carrier->name), rt_log_str ("error", err));
        s_call_done (c);
        return;
    }
    s_in_flight (w, 1);
}

static int64_t
s_int (const PGresult *r, int row, int col)
{
    return strtoll (PQgetvalue (r, row, col), NULL, 10);
}

/* The account's credentials into c; -1 when it is gone. */
static int
s_account (worker_t *w, s_call_t *c)
{
    const poller_config_t *cfg = &w->owner->cfg;
    const char *v[1] = {c->call.account};
    PGresult *r = rt_db_exec_prepared (w->db, S_ACCOUNT, 1, v, NULL, NULL, 0);
    int ci = s_carrier_index (c->call.carrier);
    if (!r)
        return -1;
    if (PQntuples (r) != 1) {
        PQclear (r);
        return -1;
    }
    c->base_url = s_dup (PQgetvalue (r, 0, 0)[0] ? PQgetvalue (r, 0, 0)
                                                 : (ci >= 0 ? cfg->base_urls[ci] : ""));
    c->api_key = s_dup (PQgetvalue (r, 0, 1));
    c->client_id = s_dup (PQgetvalue (r, 0, 2));
    c->client_secret = s_dup (PQgetvalue (r, 0, 3));
    c->language = s_dup (PQgetvalue (r, 0, 4));
    if (PQgetvalue (r, 0, 5)[0] && s_int (r, 0, 6) > rt_clock_now_ms () + S_TOKEN_MARGIN_MS)
        c->access_token = s_dup (PQgetvalue (r, 0, 5));
    c->call.account_failures = (int)s_int (r, 0, 7);
    PQclear (r);
    return c->base_url && c->api_key && c->client_id && c->client_secret && c->language ? 0 : -1;
}

static int
s_parcel_from_row (const PGresult *r, int i, parcel_t *p)
{
    p->id = s_dup (PQgetvalue (r, i, 0));
    p->tracking_number = s_dup (PQgetvalue (r, i, 2));
    p->service = s_dup (PQgetvalue (r, i, 3));
    p->phone = s_dup (PQgetvalue (r, i, 4));
    p->tag = s_dup (PQgetvalue (r, i, 5));
    p->sub_status = s_dup (PQgetvalue (r, i, 6));
    p->raw_code = s_dup (PQgetvalue (r, i, 7));
    p->status_at = s_int (r, i, 8);
    p->not_found = (int)s_int (r, i, 9);
    p->shipped_at = s_int (r, i, 10);
    p->promised_by = s_int (r, i, 11);
    p->news_at = s_int (r, i, 12);
    p->carrier_eta = s_int (r, i, 13);
    p->storage_until = s_int (r, i, 14);
    p->delays = s_dup (PQgetvalue (r, i, 15));
    p->milestones = s_dup (PQgetvalue (r, i, 16));
    p->customer_id = s_dup (PQgetvalue (r, i, 17));
    p->order_id = s_dup (PQgetvalue (r, i, 18));
    p->origin_city = s_dup (PQgetvalue (r, i, 19));
    p->destination_city = s_dup (PQgetvalue (r, i, 20));
    p->returning = PQgetvalue (r, i, 21)[0] == 't';
    return p->id && p->tracking_number && p->service && p->phone && p->tag && p->sub_status &&
                   p->raw_code && p->delays && p->milestones && p->customer_id && p->order_id &&
                   p->origin_city && p->destination_city
               ? 0
               : -1;
}

/* Claims one batch of `carrier` and submits it: 1 when a call left, 0
 * when nothing was due, -1 when PostgreSQL failed. */
static int
s_claim (worker_t *w, const carrier_t *carrier)
{
    const poller_config_t *cfg = &w->owner->cfg;
    char now[24], lease[24], batch[16], margin[24], token[RT_UUID_STR_LEN + 1];
    const char *v[6] = {now, token, lease, carrier->name, batch, margin};
    rt_uuid_t u = rt_uuid_v7 ();
    size_t limit =
        carrier->batch_max < (size_t)cfg->batch ? carrier->batch_max : (size_t)cfg->batch;
    s_call_t *c;
    PGresult *r;
    int n;

    rt_uuid_format (&u, token);
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (lease, sizeof lease, "%lld", (long long)cfg->lease_ms);
    snprintf (batch, sizeof batch, "%zu", limit);
    snprintf (margin, sizeof margin, "%lld", (long long)cfg->spacing_margin_ms);
    r = rt_db_exec_prepared (w->db, S_CLAIM, 6, v, NULL, NULL, 0);
    if (!r) {
        rt_log (RT_LOG_WARN, "claim failed", rt_log_str ("carrier", carrier->name),
                rt_log_str ("error", rt_db_error (w->db)));
        return -1;
    }
    n = PQntuples (r);
    if (n == 0) {
        PQclear (r);
        return 0;
    }
    c = calloc (1, sizeof *c);
    if (c)
        c->call.parcels = calloc ((size_t)n, sizeof *c->call.parcels);
    if (!c || !c->call.parcels) {
        free (c);
        PQclear (r);
        return -1; /* the lease brings them back */
    }
    c->w = w;
    c->call.carrier = carrier;
    snprintf (c->call.account, sizeof c->call.account, "%s", PQgetvalue (r, 0, 1));
    snprintf (c->call.token, sizeof c->call.token, "%s", token);
    for (int i = 0; i < n; i++) {
        if (s_parcel_from_row (r, i, &c->call.parcels[c->call.n]) != 0) {
            s_parcel_free (&c->call.parcels[c->call.n]);
            continue;
        }
        c->call.n++;
    }
    PQclear (r);
    if (c->call.n == 0 || s_account (w, c) != 0) {
        s_call_free (c);
        return -1;
    }
    s_submit (c);
    return 1;
}

/* Stopping: the calls in flight come back and are recorded, until the
 * request timeout. The delay to the next tick, -1 when the loop ends. */
static int64_t
s_drain_step (worker_t *w, int64_t mono)
{
    return rt_http_loop_drain (&w->loop, mono, w->owner->cfg.request_timeout_ms, w->in_flight == 0)
               ? -1
               : 10;
}

/* Counts the worker in or out of the poller's ready workers. */
static void
s_ready_set (worker_t *w, bool ready)
{
    if (w->counted_ready == ready)
        return;
    w->counted_ready = ready;
    atomic_fetch_add (&w->owner->ready, ready ? 1 : -1);
}

static int64_t
s_step (worker_t *w)
{
    poller_t *s = w->owner;
    const poller_config_t *cfg = &s->cfg;
    int64_t mono = rt_clock_mono_ms ();
    bool any = false;

    if (atomic_load (&s->stop))
        return s_drain_step (w, mono);
    /* Ready is connected: a worker without PostgreSQL can claim nothing,
     * and /readyz says so until it is back. */
    if (!rt_db_is_ok (w->db)) {
        s_ready_set (w, false);
        if (rt_db_ensure_for (w->db, 1000) != 0)
            return cfg->poll_ms;
    }
    s_ready_set (w, true);
    /* Carriers in turn, one batch each per pass, so a carrier with a big
     * backlog does not starve the others. */
    for (int i = 0; i < TRACKERD_CARRIERS && w->in_flight < w->cap; i++) {
        int ci = (w->next_carrier + i) % TRACKERD_CARRIERS;
        int rc = s_claim (w, carrier_all[ci]);
        if (rc < 0)
            return cfg->poll_ms;
        any = any || rc > 0;
    }
    w->next_carrier = (w->next_carrier + 1) % TRACKERD_CARRIERS;
    if (w->in_flight >= w->cap)
        return cfg->poll_ms; /* an answer's s_done frees room; the tick comes back soon */
    return any ? 0 : cfg->poll_ms;
}

static void
s_tick (evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    int64_t next;
    (void)fd;
    (void)what;
    next = s_step (w);
    if (next >= 0)
        rt_http_loop_arm (w->loop.tick, next);
}

static int
s_worker_prepare (worker_t *w)
{
    if (rt_outbox_prepare (w->db) != 0 || outcome_prepare (w->db) != 0 ||
        rt_db_prepare (w->db, S_CLAIM, s_claim_sql) != 0 ||
        rt_db_prepare (w->db, S_ACCOUNT, s_account_sql) != 0 ||
        rt_db_prepare (w->db, S_TOKEN, s_token_sql) != 0)
        return -1;
    return 0;
}

static void *
s_worker_main (void *arg)
{
    worker_t *w = arg;
    const poller_config_t *cfg = &w->owner->cfg;
    rt_http_client_config_t hc = {.max_host_connections = cfg->host_connections,
                                  .max_total_connections = cfg->host_connections * 8,
                                  .timeout_ms = (int)cfg->request_timeout_ms,
                                  .user_agent = "retain-trackerd"};
    char err[256] = "";

    if (s_worker_prepare (w) != 0) {
        rt_log (RT_LOG_ERROR, "the poller's statements were not registered",
                rt_log_str ("error", rt_db_error (w->db)));
        return NULL;
    }
    while (!atomic_load (&w->owner->stop) && rt_db_ensure_for (w->db, 1000) != 0)
        rt_signal_sleep_ms (100);
    if (atomic_load (&w->owner->stop))
        return NULL;
    if (rt_http_loop_open (&w->loop, &hc, s_tick, w, &w->owner->stop, err, sizeof err) == 0)
        rt_http_loop_run (&w->loop);
    else
        rt_log (RT_LOG_ERROR, "the poller's loop could not start", rt_log_str ("error", err));
    /* Cancels what is still in flight: its parcels stay leased and come
     * back when the lease ends. */
    rt_http_loop_close (&w->loop);
    return NULL;
}

poller_t *
poller_start (const poller_config_t *config, char *err, size_t errlen)
{
    poller_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *config;
    self->in_flight_gauge = rt_metrics_gauge (config->outcome.metrics, "retain_tracker_in_flight",
                                              "", "calls to carriers in flight");
    self->workers = calloc ((size_t)config->workers, sizeof *self->workers);
    if (!self->workers) {
        rt_errf (err, errlen, "out of memory");
        goto failed;
    }
    for (int i = 0; i < config->workers; i++) {
        worker_t *w = &self->workers[i];
        char app[64];
        w->owner = self;
        w->index = i;
        w->next_carrier = i % TRACKERD_CARRIERS;
        w->cap = rt_http_loop_share (config->in_flight, config->workers, i);
        snprintf (app, sizeof app, "retain-trackerd-poller-%d", i);
        w->db = rt_db_new (config->dsn, app);
        if (!w->db) {
            rt_errf (err, errlen, "out of memory");
            goto failed;
        }
    }
    for (int i = 0; i < config->workers; i++) {
        worker_t *w = &self->workers[i];
        if (pthread_create (&w->thread, NULL, s_worker_main, w) != 0) {
            rt_errf (err, errlen, "the poller's thread %d did not start", i);
            goto failed;
        }
        w->started = true;
    }
    return self;
failed:
    poller_stop (&self);
    return NULL;
}

bool
poller_ready (const poller_t *self)
{
    return self && atomic_load (&((poller_t *)self)->ready) == self->cfg.workers;
}

void
poller_stop (poller_t **self_p)
{
    poller_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    for (int i = 0; self->workers && i < self->cfg.workers; i++) {
        if (self->workers[i].started)
            pthread_join (self->workers[i].thread, NULL);
    }
    for (int i = 0; self->workers && i < self->cfg.workers; i++)
        rt_db_destroy (&self->workers[i].db);
    free (self->workers);
    free (self);
    *self_p = NULL;
}
