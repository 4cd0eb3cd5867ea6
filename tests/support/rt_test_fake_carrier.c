/*
 * rt_test_fake_carrier: the fake carriers' machinery (see
 * rt_test_fake_carrier.h; the carriers' own shapes are in
 * rt_test_fake_carrier_shapes.c).
 *
 * A request goes through one pipeline: it is read (its credential, its
 * parcels, its form) before the lock is taken, since parsing a body of a
 * hundred documents is the one costly step that needs no shared state;
 * then, under the lock, the carrier's next scripted answer is taken, and
 * without one (or with STATE or TRUNCATED) the credentials, the account's
 * limits, the request's form and finally the parcels' states decide the
 * answer; the call is recorded and counted in the same hold, so what a
 * test reads is always whole. The answer goes at once, or for a delayed
 * one later (rt_test_later, as the providers' fake does: every answer
 * still waiting is sent at stop).
 *
 * The parcels and their states are rt_test_fake_carrier_states.c's, what
 * a request asks is read by rt_test_fake_carrier_read.c, and the answers
 * are written by rt_test_fake_carrier_shapes.c.
 */
#include "rt_test_fake_carrier.h"
#include "rt_test_later.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_clock.h"
#include "rt_codec.h"
#include "rt_crypto.h"
#include "rt_http_server.h"
#include "rt_test_fake_carrier_int.h"

#define S_DAY_MS 86400000LL

static const char *const s_names[RT_FC_CARRIERS] = {"nova_poshta", "ukrposhta", "meest", "dhl",
                                                    "ups"};

void
fc_die (const char *what)
{
    fprintf (stderr, "fake carrier: %s\n", what);
    abort ();
}

void *
fc_alloc (size_t n)
{
    void *p = calloc (1, n ? n : 1);
    if (!p)
        fc_die ("out of memory");
    return p;
}

char *
fc_dup (const char *s)
{
    char *copy = strdup (s ? s : "");
    if (!copy)
        fc_die ("out of memory");
    return copy;
}

/* Grows *array (of *cap elements of size each) to hold one more than n. */
static void
s_grow (void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return;
    size_t want = *cap ? 2 * *cap : 16;
    void *grown = realloc (*array, want * size);
    if (!grown)
        fc_die ("out of memory");
    *array = grown;
    *cap = want;
}

/* --- the clock and the day --- */

int64_t
fc_now_ms (rt_fake_carrier_t *fc)
{
    return fc->clock ? fc->clock (fc->clock_arg) : rt_clock_now_ms ();
}

static int64_t
s_utc_day (int64_t ms)
{
    return ms >= 0 ? ms / S_DAY_MS : -((-ms + S_DAY_MS - 1) / S_DAY_MS);
}

/* A new UTC day on the fake's clock is a new day generation. */
static void
s_day_roll (rt_fake_carrier_t *fc)
{
    int64_t day = s_utc_day (fc_now_ms (fc));
    if (day != fc->utc_day) {
        fc->utc_day = day;
        fc->day++;
    }
}

/* --- accounts and UPS tokens --- */

/* The account of key (and secret, for UPS's token request), added when
 * the test configured none; NULL when the carrier refuses it. */
static fc_account_t *
s_account (fc_carrier_t *c, const char *key, const char *secret, bool check_secret)
{
    if (!key || !*key)
        return NULL;
    for (size_t i = 0; i < c->naccounts; i++) {
        fc_account_t *a = &c->accounts[i];
        if (strcmp (a->key, key) != 0)
            continue;
        if (check_secret && c->configured &&
            strcmp (a->secret ? a->secret : "", secret ? secret : "") != 0)
            return NULL;
        return a;
    }
    if (c->configured)
        return NULL;
    s_grow ((void **)&c->accounts, &c->cap_accounts, c->naccounts, sizeof *c->accounts);
    fc_account_t *a = &c->accounts[c->naccounts++];
    memset (a, 0, sizeof *a);
    a->key = fc_dup (key);
    a->secret = secret ? fc_dup (secret) : NULL;
    return a;
}

static fc_token_t *
s_token_find (rt_fake_carrier_t *fc, const char *token)
{
    for (size_t i = 0; token && i < fc->ntokens; i++)
        if (strcmp (fc->tokens[i].token, token) == 0)
            return &fc->tokens[i];
    return NULL;
}

/* A UPS token request that passed its credentials: a new token. */
static void
s_token_issue (rt_fake_carrier_t *fc, const fc_account_t *a, fc_made_t *m)
{
    uint8_t noise[12];
    char hex[2 * sizeof noise + 1];
    int64_t now = fc_now_ms (fc);
    if (rt_random (noise, sizeof noise) != 0)
        fc_die ("no randomness");
    rt_hex_encode (noise, sizeof noise, hex);
    s_grow ((void **)&fc->tokens, &fc->cap_tokens, fc->ntokens, sizeof *fc->tokens);
    fc_token_t *t = &fc->tokens[fc->ntokens++];
    memset (t, 0, sizeof *t);
    snprintf (t->token, sizeof t->token, "fkUPS%llu%s", (unsigned long long)++fc->token_seq, hex);
    t->client_id = fc_dup (a->key);
    t->expires_ms = now + fc->token_life_s * 1000;
    fc->carriers[RT_FC_UPS].stats.tokens_issued++;
    fc_answer_token (t, now, fc->token_life_s, m);
}

/* --- the pipeline --- */

/* The account's limits: true (and the 429 in m) when the call is refused. */
static bool
s_limited (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, fc_account_t *a, rt_fc_call_t *call,
           fc_made_t *m)
{
    fc_carrier_t *c = &fc->carriers[carrier];
    const rt_fc_limits_t *l = &c->limits;
    int64_t at = call->arrival_us;
    if (a->day != fc->day) {
        a->day = fc->day;
        a->day_calls = 0;
    }
    int64_t gap = a->last_us ? llabs (at - a->last_us) : INT64_MAX;
    if (l->min_interval_ms > 0 && gap < (int64_t)l->min_interval_ms * 1000) {
        int64_t wait_us = (int64_t)l->min_interval_ms * 1000 - gap;
        c->stats.too_soon++;
        call->outcome = RT_FC_TOO_SOON;
        fc_answer_rate_limit (carrier,
                              carrier == RT_FC_DHL ? (int)((wait_us + 999999) / 1000000) : 0, m);
        return true;
    }
    if (l->daily_quota > 0 && a->day_calls >= (size_t)l->daily_quota) {
        int64_t now = fc_now_ms (fc);
        int64_t left_ms = (s_utc_day (now) + 1) * S_DAY_MS - now;
        c->stats.over_quota++;
        call->outcome = RT_FC_OVER_QUOTA;
        fc_answer_rate_limit (carrier, carrier == RT_FC_DHL ? (int)((left_ms + 999) / 1000) : 0, m);
        return true;
    }
    a->last_us = at;
    a->day_calls++;
    return false;
}

/* Credentials, limits, form, state: the stateful answer to ask. */
static void
s_serve (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const fc_ask_t *ask, rt_fc_call_t *call,
         fc_made_t *m)
{
    fc_carrier_t *c = &fc->carriers[carrier];
    fc_account_t *a = NULL;
    bool missing = !ask->key || !*ask->key;
    if (ask->oauth) {
        a = s_account (c, ask->key, ask->secret, true);
    } else if (carrier == RT_FC_UPS) {
        /* A UPS tracking call's account is the client its token was issued to. */
        const fc_token_t *t = s_token_find (fc, ask->key);
        if (t && !t->revoked && fc_now_ms (fc) < t->expires_ms)
            a = s_account (c, t->client_id, NULL, false);
    } else {
        a = s_account (c, ask->key, NULL, false);
    }
    if (!a) {
        c->stats.bad_key++;
        call->outcome = RT_FC_BAD_KEY;
        fc_answer_bad_key (carrier, ask->oauth, missing, m);
        return;
    }
    if (!ask->oauth && s_limited (fc, carrier, a, call, m))
        return;
    if (ask->bad_status) {
        c->stats.bad_request++;
        call->outcome = RT_FC_BAD_REQUEST;
        fc_answer_bad_request (carrier, ask, m);
        return;
    }
    if (ask->oauth)
        s_token_issue (fc, a, m);
    else
        fc_answer_state (fc, carrier, ask, m);
}

static fc_script_t *
s_script_take (fc_carrier_t *c, bool oauth)
{
    fc_script_t **head = oauth ? &c->oauth_script : &c->script;
    fc_script_t *s = *head;
    if (s) {
        *head = s->next;
        if (!s->next) {
            if (oauth)
                c->oauth_tail = &c->oauth_script;
            else
                c->tail = &c->script;
        }
    }
    return s;
}

static void
s_script_free (fc_script_t *s)
{
    if (!s)
        return;
    free (s->error);
    free (s->content_type);
    free (s->body);
    free (s);
}

static void
s_record (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const rt_fc_call_t *call)
{
    fc_carrier_t *c = &fc->carriers[carrier];
    s_grow ((void **)&c->calls, &c->cap_calls, c->ncalls, sizeof *c->calls);
    c->calls[c->ncalls++] = *call;
    pthread_cond_broadcast (&fc->recorded);
}

/* --- answering, at once or later --- */

static void
s_handle (rt_http_request_t *req, rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, bool oauth)
{
    fc_ask_t ask;
    fc_made_t m;
    rt_fc_call_t call;
    int delay_ms = 0;
    memset (&m, 0, sizeof m);
    memset (&call, 0, sizeof call);

    fc_read (carrier, oauth, req, &ask);
    call.arrival_us = rt_http_arrival_us (req);
    call.documents = ask.n;
    call.oauth = oauth;
    if (ask.n > 0)
        snprintf (call.number, sizeof call.number, "%s", ask.numbers[0]);

    pthread_mutex_lock (&fc->lock);
    fc_carrier_t *c = &fc->carriers[carrier];
    s_day_roll (fc);
    fc_script_t *s = s_script_take (c, oauth);
    rt_fc_answer_kind_t kind = s ? s->answer.kind : RT_FC_STATE;
    if (s) {
        delay_ms = s->answer.delay_ms;
        c->stats.scripted++;
    }
    if (kind == RT_FC_STATE || kind == RT_FC_TRUNCATED) {
        s_serve (fc, carrier, &ask, &call, &m);
        if (kind == RT_FC_TRUNCATED && m.body.data) {
            m.body.len /= 2;
            m.body.data[m.body.len] = '\0';
        }
    } else if (kind == RT_FC_RATE_LIMIT) {
        fc_answer_rate_limit (carrier, s->answer.retry_after_s, &m);
    } else {
        fc_answer_canned (carrier, s, &m);
    }
    if (s && call.outcome == RT_FC_ANSWERED) {
        call.outcome = RT_FC_SCRIPTED;
        call.answer = kind;
    }
    call.status = m.status;
    if (oauth) {
        c->stats.token_calls++;
    } else {
        c->stats.calls++;
        c->stats.documents += ask.n;
    }
    s_record (fc, carrier, &call);
    pthread_mutex_unlock (&fc->lock);
    s_script_free (s);
    fc_ask_free (&ask);
    if (m.body.failed)
        fc_die ("out of memory");

    if (delay_ms > 0)
        rt_test_later_reply (fc->later, req, delay_ms, m.status, m.content_type, m.body.data,
                             m.body.len, m.retry_after);
    else
        rt_test_later_send (req, m.status, m.content_type, m.body.data, m.body.len, m.retry_after);
    rt_buf_free (&m.body);
}

static void
s_on_nova_poshta (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FC_NOVA_POSHTA, false);
}

static void
s_on_ukrposhta (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FC_UKRPOSHTA, false);
}

static void
s_on_meest (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FC_MEEST, false);
}

static void
s_on_dhl (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FC_DHL, false);
}

static void
s_on_ups_token (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FC_UPS, true);
}

static void
s_on_ups (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FC_UPS, false);
}

/* --- the test's side --- */

rt_fake_carrier_t *
rt_fake_carrier_start (void)
{
    char err[256] = "";
    rt_fake_carrier_t *fc = calloc (1, sizeof *fc);
    if (!fc)
        fail_msg ("fake carrier: out of memory");
    pthread_mutex_init (&fc->lock, NULL);
    pthread_cond_init (&fc->recorded, NULL);
    fc->later = rt_test_later_new ("fake carrier");
    for (int i = 0; i < RT_FC_CARRIERS; i++) {
        fc->carriers[i].tail = &fc->carriers[i].script;
        fc->carriers[i].oauth_tail = &fc->carriers[i].oauth_script;
    }
    fc->token_life_s = 14399;
    fc->utc_day = s_utc_day (rt_clock_now_ms ());
    fc->kyiv = rt_tz_new ("Europe/Kyiv", err, sizeof err);
    if (!fc->kyiv)
        fail_msg ("fake carrier: Europe/Kyiv: %s", err);
    rt_http_server_config_t config = {
        .address = "127.0.0.1:0",
        .name = "fake-carrier",
        .threads = 2,
        .stop_timeout_ms = 5000,
    };
    fc->server = rt_http_server_new (&config, err, sizeof err);
    if (!fc->server)
        fail_msg ("fake carrier: %s", err);
    static const struct {
        const char *method;         /* the route's */
        const char *pattern;        /* the carrier's real path */
        rt_http_handler_fn handler; /* whose */
    } routes[] = {
        {"POST", "/v2.0/json/", s_on_nova_poshta},
        {"POST", "/v2.0/json", s_on_nova_poshta},
        {"POST", "/status-tracking/0.0.1/statuses/last", s_on_ukrposhta},
        {"GET", "/status-tracking/0.0.1/statuses/last", s_on_ukrposhta},
        {"GET", "/status-tracking/0.0.1/statuses", s_on_ukrposhta},
        {"GET", "/v3.0/openAPI/tracking/{number}", s_on_meest},
        {"GET", "/track/shipments", s_on_dhl},
        {"POST", "/security/v1/oauth/token", s_on_ups_token},
        {"GET", "/api/track/v1/details/{number}", s_on_ups},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!rt_http_route (fc->server, routes[i].method, routes[i].pattern, routes[i].handler, fc))
            fail_msg ("fake carrier: route %s refused", routes[i].pattern);
    if (rt_http_server_start (fc->server, err, sizeof err) != 0)
        fail_msg ("fake carrier: %s", err);
    snprintf (fc->base, sizeof fc->base, "http://127.0.0.1:%d", rt_http_server_port (fc->server));
    snprintf (fc->api[RT_FC_NOVA_POSHTA], sizeof fc->api[0], "%s/v2.0/json/", fc->base);
    snprintf (fc->api[RT_FC_UKRPOSHTA], sizeof fc->api[0], "%s/status-tracking/0.0.1", fc->base);
    snprintf (fc->api[RT_FC_MEEST], sizeof fc->api[0], "%s/v3.0/openAPI", fc->base);
    snprintf (fc->api[RT_FC_DHL], sizeof fc->api[0], "%s", fc->base);
    snprintf (fc->api[RT_FC_UPS], sizeof fc->api[0], "%s", fc->base);
    return fc;
}

void
rt_fake_carrier_stop (rt_fake_carrier_t **self_p)
{
    rt_fake_carrier_t *fc = self_p ? *self_p : NULL;
    if (!fc)
        return;
    /* Each answer still delayed is sent now, on its worker. */
    rt_test_later_flush (fc->later);
    rt_http_server_destroy (&fc->server);
    rt_test_later_destroy (&fc->later);
    for (int i = 0; i < RT_FC_CARRIERS; i++) {
        fc_carrier_t *c = &fc->carriers[i];
        while (c->script)
            s_script_free (s_script_take (c, false));
        while (c->oauth_script)
            s_script_free (s_script_take (c, true));
        for (size_t k = 0; k < c->naccounts; k++) {
            free (c->accounts[k].key);
            free (c->accounts[k].secret);
        }
        free (c->accounts);
        free (c->calls);
    }
    for (size_t i = 0; i < fc->ntokens; i++)
        free (fc->tokens[i].client_id);
    free (fc->tokens);
    fc_parcels_free (fc);
    for (size_t i = 0; i < fc->nservices; i++)
        free (fc->services[i]);
    for (size_t i = 0; i < fc->nzones; i++) {
        free (fc->zone_names[i]);
        rt_tz_destroy (&fc->zones[i]);
    }
    rt_tz_destroy (&fc->kyiv);
    pthread_cond_destroy (&fc->recorded);
    pthread_mutex_destroy (&fc->lock);
    free (fc);
    *self_p = NULL;
}

const char *
rt_fake_carrier_base (const rt_fake_carrier_t *self)
{
    return self->base;
}

static void
s_check (rt_fc_carrier_t carrier)
{
    if ((int)carrier < 0 || (int)carrier >= RT_FC_CARRIERS)
        fail_msg ("fake carrier: no carrier %d", (int)carrier);
}

const char *
rt_fake_carrier_api (const rt_fake_carrier_t *self, rt_fc_carrier_t carrier)
{
    s_check (carrier);
    return self->api[carrier];
}

rt_fc_carrier_t
rt_fake_carrier_find (const char *name)
{
    for (int i = 0; name && i < RT_FC_CARRIERS; i++)
        if (strcmp (s_names[i], name) == 0)
            return (rt_fc_carrier_t)i;
    return RT_FC_CARRIERS;
}

const char *
rt_fake_carrier_name (rt_fc_carrier_t carrier)
{
    return (int)carrier >= 0 && (int)carrier < RT_FC_CARRIERS ? s_names[carrier] : "";
}

void
rt_fake_carrier_account (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, const char *key,
                         const char *secret)
{
    s_check (carrier);
    if (!key || !*key)
        fail_msg ("fake carrier: an account needs a key");
    if ((carrier == RT_FC_UPS) != (secret != NULL))
        fail_msg ("fake carrier: a secret is for UPS accounts, and UPS's need one");
    pthread_mutex_lock (&self->lock);
    fc_carrier_t *c = &self->carriers[carrier];
    /* The accounts the fake added for any key are dropped: from now on only
     * the test's are accepted. */
    if (!c->configured) {
        for (size_t k = 0; k < c->naccounts; k++) {
            free (c->accounts[k].key);
            free (c->accounts[k].secret);
        }
        c->naccounts = 0;
        c->configured = true;
    }
    s_grow ((void **)&c->accounts, &c->cap_accounts, c->naccounts, sizeof *c->accounts);
    fc_account_t *a = &c->accounts[c->naccounts++];
    memset (a, 0, sizeof *a);
    a->key = fc_dup (key);
    a->secret = secret ? fc_dup (secret) : NULL;
    pthread_mutex_unlock (&self->lock);
}

void
rt_fake_carrier_limits (rt_fake_carrier_t *self, rt_fc_carrier_t carrier,
                        const rt_fc_limits_t *limits)
{
    s_check (carrier);
    pthread_mutex_lock (&self->lock);
    memset (&self->carriers[carrier].limits, 0, sizeof self->carriers[carrier].limits);
    if (limits)
        self->carriers[carrier].limits = *limits;
    pthread_mutex_unlock (&self->lock);
}

void
rt_fake_carrier_clock (rt_fake_carrier_t *self, rt_fc_clock_fn fn, void *arg)
{
    pthread_mutex_lock (&self->lock);
    self->clock = fn;
    self->clock_arg = arg;
    self->utc_day = s_utc_day (fc_now_ms (self));
    self->day++;
    pthread_mutex_unlock (&self->lock);
}

void
rt_fake_carrier_day_reset (rt_fake_carrier_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->day++;
    pthread_mutex_unlock (&self->lock);
}

void
rt_fake_carrier_ups_token_life (rt_fake_carrier_t *self, int64_t seconds)
{
    if (seconds <= 0)
        fail_msg ("fake carrier: a token lives a second at least");
    pthread_mutex_lock (&self->lock);
    self->token_life_s = seconds;
    pthread_mutex_unlock (&self->lock);
}

void
rt_fake_carrier_ups_revoke (rt_fake_carrier_t *self, const char *token)
{
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < self->ntokens; i++)
        if (!token || strcmp (self->tokens[i].token, token) == 0)
            self->tokens[i].revoked = true;
    pthread_mutex_unlock (&self->lock);
}

bool
rt_fake_carrier_ups_token (rt_fake_carrier_t *self, char *out, size_t len)
{
    pthread_mutex_lock (&self->lock);
    bool any = self->ntokens > 0;
    if (any)
        snprintf (out, len, "%s", self->tokens[self->ntokens - 1].token);
    pthread_mutex_unlock (&self->lock);
    return any;
}

static char *
s_copy_or_null (const char *s)
{
    return s ? fc_dup (s) : NULL;
}

void
rt_fake_carrier_push (rt_fake_carrier_t *self, rt_fc_carrier_t carrier,
                      const rt_fc_answer_t *answer)
{
    s_check (carrier);
    if (answer->oauth && carrier != RT_FC_UPS)
        fail_msg ("fake carrier: only UPS has a token route");
    if (answer->kind == RT_FC_ERROR && !fc_error_known (carrier, answer->error))
        fail_msg ("fake carrier: %s has no documented error \"%s\"", s_names[carrier],
                  answer->error ? answer->error : "(null)");
    fc_script_t *s = fc_alloc (sizeof *s);
    s->answer = *answer;
    s->error = s_copy_or_null (answer->error);
    s->content_type = s_copy_or_null (answer->content_type);
    s->body = s_copy_or_null (answer->body);
    pthread_mutex_lock (&self->lock);
    fc_carrier_t *c = &self->carriers[carrier];
    if (answer->oauth) {
        *c->oauth_tail = s;
        c->oauth_tail = &s->next;
    } else {
        *c->tail = s;
        c->tail = &s->next;
    }
    pthread_mutex_unlock (&self->lock);
}

void
rt_fake_carrier_stats (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, rt_fc_stats_t *out)
{
    s_check (carrier);
    pthread_mutex_lock (&self->lock);
    *out = self->carriers[carrier].stats;
    pthread_mutex_unlock (&self->lock);
}

size_t
rt_fake_carrier_calls (rt_fake_carrier_t *self, rt_fc_carrier_t carrier)
{
    s_check (carrier);
    pthread_mutex_lock (&self->lock);
    size_t n = self->carriers[carrier].ncalls;
    pthread_mutex_unlock (&self->lock);
    return n;
}

bool
rt_fake_carrier_call (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, size_t i, rt_fc_call_t *out)
{
    s_check (carrier);
    pthread_mutex_lock (&self->lock);
    bool there = i < self->carriers[carrier].ncalls;
    if (there)
        *out = self->carriers[carrier].calls[i];
    pthread_mutex_unlock (&self->lock);
    return there;
}

static size_t
s_count (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier)
{
    size_t n = 0;
    for (int i = 0; i < RT_FC_CARRIERS; i++)
        if (carrier == RT_FC_CARRIERS || (int)carrier == i)
            n += fc->carriers[i].ncalls;
    return n;
}

bool
rt_fake_carrier_wait (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, size_t count,
                      int timeout_ms)
{
    struct timespec deadline;
    if (carrier != RT_FC_CARRIERS)
        s_check (carrier);
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&self->lock);
    int rc = 0;
    while (s_count (self, carrier) < count && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait (&self->recorded, &self->lock, &deadline);
    bool reached = s_count (self, carrier) >= count;
    pthread_mutex_unlock (&self->lock);
    return reached;
}

size_t
rt_fake_carrier_fetches (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, const char *number)
{
    size_t n = 0;
    s_check (carrier);
    pthread_mutex_lock (&self->lock);
    s_day_roll (self);
    for (size_t i = 0; i < (carrier == RT_FC_DHL ? self->nservices : 1); i++) {
        const fc_parcel_t *p =
            fc_parcel_find (self, carrier, number, carrier == RT_FC_DHL ? self->services[i] : "");
        if (p && p->day == self->day)
            n += p->fetches;
    }
    pthread_mutex_unlock (&self->lock);
    return n;
}
