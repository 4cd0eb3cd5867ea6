/*
 * rt_test_channel: requests, answers and sweeps for the channel handlers'
 * unit tests (see rt_test_channel.h).
 */
#include "rt_test_channel.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

/* The inboxes' settings: one test program's, between its group setup and
 * teardown. */
static json_t *s_config;

int
rt_test_channel_setup (void **state)
{
    (void)state;
    return rt_test_channel_config_set (json_object ());
}

int
rt_test_channel_config_set (json_t *config)
{
    json_decref (s_config);
    s_config = config;
    return config ? 0 : -1;
}

int
rt_test_channel_teardown (void **state)
{
    (void)state;
    json_decref (s_config);
    s_config = NULL;
    return 0;
}

const json_t *
rt_test_channel_config (void)
{
    assert_non_null (s_config);
    return s_config;
}

char *
rt_test_channel_fixture (const char *channel, const char *name, size_t *len)
{
    char rel[256];
    snprintf (rel, sizeof rel, "ingest/%s/%s", channel, name);
    return rt_test_fixture (rel, len);
}

char *
rt_test_channel_fixture_line (const char *channel, const char *name, size_t *len)
{
    size_t n;
    char *line = rt_test_channel_fixture (channel, name, &n);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (len)
        *len = n;
    return line;
}

void
rt_test_channel_sha256_sig (const char *key, const void *body, size_t len,
                            char out[RT_TEST_CHANNEL_SIG_LEN])
{
    char hex[RT_TEST_INGEST_SIG_LEN];
    rt_test_ingest_hmac_hex (key, body, len, hex);
    snprintf (out, RT_TEST_CHANNEL_SIG_LEN, "sha256=%s", hex);
}

/* A request of method for ch with nheaders headers (lent) and len bytes
 * of body (lent, may be NULL); no peer, no replay guard. */
static void
s_request (ingest_request_t *req, const rt_test_channel_t *ch, const char *method,
           const ingest_header_t *headers, size_t nheaders, const void *body, size_t len)
{
    memset (req, 0, sizeof *req);
    req->method = method;
    req->path = ch->path;
    req->query = "";
    req->headers = headers;
    req->nheaders = nheaders;
    req->body = (const uint8_t *)body;
    req->body_len = len;
    req->public_url = ch->public_url;
    req->now_ms = ch->now_ms;
}

ingest_inbox_t
rt_test_channel_inbox (const rt_test_channel_t *ch, const char *secret, const char *previous)
{
    ingest_inbox_t inbox = {ch->inbox, ch->channel, secret, previous, rt_test_channel_config ()};
    return inbox;
}

int
rt_test_channel_call (const rt_test_channel_t *ch, const ingest_inbox_t *inbox, const char *method,
                      const ingest_header_t headers[], size_t n, const void *body, size_t len,
                      ingest_result_t *result)
{
    ingest_header_t present[8];
    size_t k = 0;
    ingest_request_t req;
    assert_true (n <= sizeof present / sizeof present[0]);
    for (size_t i = 0; i < n; i++) {
        if (headers[i].value)
            present[k++] = headers[i];
    }
    s_request (&req, ch, method, present, k, body, len);
    memset (result, 0, sizeof *result);
    return ch->handler (inbox, &req, result);
}

ProtobufCMessage *
rt_test_channel_one (int rc, const ingest_result_t *result, const char *type)
{
    ProtobufCMessage *msg;
    uint8_t *buf;
    size_t len;
    assert_int_equal (rc, 0);
    assert_int_equal (result->status, 0);
    assert_int_equal (result->count, 1);
    assert_string_equal (result->items[0].type, type);
    msg = result->items[0].msg;
    /* What the writer will put on the bus must serialize. */
    len = protobuf_c_message_get_packed_size (msg);
    buf = malloc (len + 1);
    assert_non_null (buf);
    assert_int_equal (protobuf_c_message_pack (msg, buf), len);
    free (buf);
    return msg;
}

Retain__V1__InboundMessage *
rt_test_channel_inbound (int rc, const ingest_result_t *result)
{
    ProtobufCMessage *msg = rt_test_channel_one (rc, result, "InboundMessage");
    Retain__V1__InboundMessage *m = (Retain__V1__InboundMessage *)msg;
    assert_ptr_equal (msg->descriptor, &retain__v1__inbound_message__descriptor);
    assert_string_equal (result->items[0].external_id, m->external_id);
    return m;
}

ProtobufCMessage *
rt_test_channel_item (const ingest_result_t *result, size_t i, const char *type)
{
    assert_true (i < result->count);
    assert_string_equal (result->items[i].type, type);
    return result->items[i].msg;
}

void
rt_test_channel_refused (int rc, const ingest_result_t *result, int status, const char *label,
                         const char *reason)
{
    assert_int_equal (rc, -1);
    assert_int_equal (result->status, status);
    assert_string_equal (result->label, label);
    if (reason && !strstr (result->reason, reason))
        fail_msg ("reason \"%s\" does not mention \"%s\"", result->reason, reason);
    if (!reason)
        assert_true (strlen (result->reason) > 0);
    assert_int_equal (result->count, 0);
    assert_null (result->items);
    assert_null (result->response);
}

void
rt_test_channel_fails (int rc, ingest_result_t *result, int status, const char *label,
                       const char *reason)
{
    rt_test_channel_refused (rc, result, status, label, reason);
    ingest_result_reset (result);
}

/* A body the sweep posted was taken, or refused as the sweep allows. */
static void
s_sweep_check (int rc, const ingest_result_t *r, bool signed_inside)
{
    bool status_ok = signed_inside ? r->status >= 400 : r->status == 400;
    assert_true (rc == 0 || (rc == -1 && status_ok && r->count == 0 && !r->response));
}

void
rt_test_channel_sweep (const char *channel, const char *const names[], size_t n,
                       rt_test_channel_post_fn post, void *arg, bool signed_inside)
{
    static const char flips[] = {'"', '{', '}', '[', ']', ':', ',', '0', '-', 'x', '\\'};
    for (size_t k = 0; k < n; k++) {
        size_t len;
        char *body = rt_test_channel_fixture (channel, names[k], &len);
        for (size_t i = 0; i < len; i++) {
            ingest_result_t r;
            int rc;
            memset (&r, 0, sizeof r);
            rc = post (arg, body, i, &r);
            s_sweep_check (rc, &r, signed_inside);
            ingest_result_reset (&r);
        }
        for (size_t i = 0; i < len; i++) {
            ingest_result_t r;
            char saved = body[i];
            int rc;
            memset (&r, 0, sizeof r);
            body[i] = flips[i % sizeof flips];
            rc = post (arg, body, len, &r);
            s_sweep_check (rc, &r, signed_inside);
            ingest_result_reset (&r);
            body[i] = saved;
        }
        free (body);
    }
}

int
rt_test_channel_replay_check (void *arg, const char *nonce, int64_t expires_ms)
{
    rt_test_channel_guard_t *g = arg;
    g->calls++;
    g->last_expires = expires_ms;
    for (int i = 0; i < g->n; i++) {
        if (strcmp (g->seen[i], nonce) == 0)
            return 1;
    }
    assert_true (g->n < 8);
    snprintf (g->seen[g->n++], sizeof g->seen[0], "%s", nonce);
    return 0;
}

void
rt_test_channel_call_init (rt_test_channel_call_t *c, const rt_test_channel_t *ch,
                           const char *secret)
{
    memset (c, 0, sizeof *c);
    c->handler = ch->handler;
    c->config = json_object ();
    assert_non_null (c->config);
    c->inbox.id = ch->inbox;
    c->inbox.channel = ch->channel;
    c->inbox.secret = secret;
    c->inbox.previous_secret = "";
    c->inbox.config = c->config;
    s_request (&c->req, ch, "POST", c->headers, 0, NULL, 0);
}

int
rt_test_channel_call_post (rt_test_channel_call_t *c, const char *body, size_t len,
                           const char *ctype, const char *sig_header, const char *sig)
{
    size_t n = 0;
    free (c->body);
    c->body = malloc (len + 1);
    assert_non_null (c->body);
    memcpy (c->body, body, len);
    c->body[len] = '\0';
    c->len = len;
    c->headers[n].name = "Content-Type";
    c->headers[n++].value = ctype;
    if (sig_header) {
        if (sig != c->sig)
            snprintf (c->sig, sizeof c->sig, "%s", sig);
        c->headers[n].name = sig_header;
        c->headers[n++].value = c->sig;
    }
    c->req.nheaders = n;
    c->req.body = (const uint8_t *)c->body;
    c->req.body_len = c->len;
    return rt_test_channel_call_run (c);
}

int
rt_test_channel_call_run (rt_test_channel_call_t *c)
{
    ingest_result_reset (&c->result);
    return c->handler (&c->inbox, &c->req, &c->result);
}

void
rt_test_channel_call_refused (const rt_test_channel_call_t *c, int rc, int status,
                              const char *label)
{
    rt_test_channel_refused (rc, &c->result, status, label, NULL);
}

Retain__V1__InboundMessage *
rt_test_channel_call_inbound (const rt_test_channel_call_t *c)
{
    assert_int_equal (c->result.count, 1);
    return (Retain__V1__InboundMessage *)rt_test_channel_item (&c->result, 0, "InboundMessage");
}

void
rt_test_channel_call_done (rt_test_channel_call_t *c)
{
    ingest_result_reset (&c->result);
    free (c->body);
    c->body = NULL;
    json_decref (c->config);
    c->config = NULL;
}
