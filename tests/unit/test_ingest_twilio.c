/*
 * test_ingest_twilio: twilio_handle (services/ingest/channels/twilio.c) on
 * the fixtures of tests/fixtures/ingest/twilio, form bodies in the shapes
 * of Twilio's Messaging webhook documentation. Signatures are computed
 * here from the fixture's bytes with a known auth token (the tests' own
 * plain implementation of Twilio's rule, rt_test_ingest_twilio_sign),
 * plus the example from Twilio's own documentation; the official npm
 * package checks the finer points in test_ingest_twilio_npm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_test_channel.h"
#include "rt_test_ingest.h"

#define TOKEN  "test-auth-token"
#define URL    "https://hooks.example.com/hooks/twilio/shop-sms"
#define NOW_MS 1750000000000LL

/* The handler under test, and where its requests come from. */
static const rt_test_channel_t s_ch = {.fixtures = "twilio",
                                       .handler = twilio_handle,
                                       .inbox = "shop-sms",
                                       .channel = RETAIN__V1__CHANNEL__SMS,
                                       .path = "/hooks/twilio/shop-sms",
                                       .public_url = URL,
                                       .now_ms = NOW_MS};

static char *
s_fixture (const char *name)
{
    return rt_test_channel_fixture (s_ch.fixtures, name, NULL);
}

/* A request to the inbox "shop-sms" of channel. */
static void
s_init (rt_test_channel_call_t *c, Retain__V1__Channel channel)
{
    rt_test_channel_call_init (c, &s_ch, TOKEN);
    c->inbox.channel = channel;
}

/* Sends `body` with a signature over `signed_body` (NULL: unsigned) made
 * with `token` for URL, by Twilio's rule (rt_test_ingest_twilio_sign). */
static int
s_send (rt_test_channel_call_t *c, const char *body, const char *signed_body, const char *token)
{
    if (signed_body)
        assert_int_equal (
            rt_test_ingest_twilio_sign (token, URL, signed_body, strlen (signed_body), c->sig), 0);
    return rt_test_channel_call_post (c, body, strlen (body), "application/x-www-form-urlencoded",
                                      signed_body ? "X-Twilio-Signature" : NULL, c->sig);
}

static int
s_post (rt_test_channel_call_t *c, const char *fixture, const char *token)
{
    char *body = s_fixture (fixture);
    int rc = s_send (c, body, token ? body : NULL, token);
    free (body);
    return rc;
}

/* Twilio's documentation example: token 12345, its URL and parameters. */
static void
test_documented_example (void **state)
{
    rt_test_channel_call_t c;
    const char *body = "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&"
                       "From=%2B12349013030&To=%2B18005551212";
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    c.inbox.secret = "12345";
    c.req.public_url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    c.headers[0].name = "Content-Type";
    c.headers[0].value = "application/x-www-form-urlencoded";
    c.headers[1].name = "X-Twilio-Signature";
    c.headers[1].value = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    c.req.nheaders = 2;
    c.req.body = (const uint8_t *)body;
    c.req.body_len = strlen (body);
    /* The signature passes; a voice call is no message: 400, not 403. */
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "MessageSid"));
    /* Twilio may have signed the URL with the default port, or without. */
    c.req.public_url = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 400, "malformed");
    c.req.public_url = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 400, "malformed");
    c.req.public_url = "https://mycompany.com/myapp.php?foo=1&bar=3";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 403, "bad_signature");
    rt_test_channel_call_done (&c);
}

static void
test_sms (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    assert_int_equal (s_post (&c, "sms.form", TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__SMS);
    assert_string_equal (m->inbox, "shop-sms");
    assert_string_equal (m->external_id, "SM00000000000000000000000000000001");
    assert_string_equal (c.result.items[0].external_id, "SM00000000000000000000000000000001");
    assert_string_equal (m->external_user_id, "+14155551234");
    assert_string_equal (m->phone, "+14155551234");
    assert_string_equal (m->text,
                         "Where is my order #1042? 50% off + free shipping, please & thanks");
    assert_int_equal (m->sent_at, NOW_MS);
    assert_int_equal (m->n_attachments, 0);
    assert_string_equal (c.result.items[0].key, "sms:shop-sms:+14155551234");
    rt_test_channel_call_done (&c);
}

static void
test_mms (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    assert_int_equal (s_post (&c, "mms.form", TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_string_equal (m->text, "Photos of the damage");
    assert_int_equal (m->n_attachments, 2);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[0]->mime_type, "image/jpeg");
    assert_non_null (strstr (m->attachments[0]->url, "/Media/ME00000000000000000000000000000001"));
    assert_string_equal (m->attachments[1]->kind, "document");
    assert_string_equal (m->attachments[1]->mime_type, "application/pdf");
    assert_non_null (strstr (m->attachments[1]->url, "/Media/ME00000000000000000000000000000002"));
    rt_test_channel_call_done (&c);
}

static void
test_whatsapp (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    /* An SMS inbox: the "whatsapp:" prefix of From decides the channel. */
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    assert_int_equal (s_post (&c, "whatsapp.form", TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_string_equal (m->external_user_id, "+79161234567");
    assert_string_equal (m->phone, "+79161234567");
    assert_string_equal (m->display_name, "Зоя Ёлкина 🌲");
    assert_string_equal (m->text, "Здравствуйте! Price is 1+1=2, 100% sure; a=b&c=d ✓");
    assert_string_equal (c.result.items[0].key, "whatsapp:shop-sms:+79161234567");

    assert_int_equal (s_post (&c, "whatsapp_media.form", TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_string_equal (m->text, "");
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "audio");
    assert_string_equal (m->attachments[0]->mime_type, "audio/ogg");

    assert_int_equal (s_post (&c, "whatsapp_location.form", TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "location");
    assert_true (m->attachments[0]->latitude > 55.75 && m->attachments[0]->latitude < 55.76);
    assert_true (m->attachments[0]->longitude > 37.61 && m->attachments[0]->longitude < 37.62);
    assert_string_equal (m->attachments[0]->name, "Pickup point");

    assert_int_equal (s_post (&c, "whatsapp_button.form", TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_string_equal (m->text, "Track my order");
    assert_string_equal (m->reply_to, "SM00000000000000000000000000000384");
    assert_string_equal (m->display_name, "Sheena Nelson");
    rt_test_channel_call_done (&c);
}

static void
test_status_callbacks (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__MessageDelivered *d;
    Retain__V1__MessageFailed *f;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    assert_int_equal (s_post (&c, "status_sent.form", TOKEN), 0);
    assert_int_equal (c.result.count, 0);

    assert_int_equal (s_post (&c, "status_delivered.form", TOKEN), 0);
    assert_int_equal (c.result.count, 1);
    assert_string_equal (c.result.items[0].type, "MessageDelivered");
    assert_string_equal (c.result.items[0].external_id,
                         "delivered:SM0000000000000000000000000000000a");
    assert_string_equal (c.result.items[0].key, "sms:shop-sms:+14155551234");
    d = (Retain__V1__MessageDelivered *)c.result.items[0].msg;
    assert_string_equal (d->external_id, "SM0000000000000000000000000000000a");
    assert_false (d->read);
    assert_int_equal (d->delivered_at, NOW_MS);
    assert_int_equal (d->channel, RETAIN__V1__CHANNEL__SMS);

    assert_int_equal (s_post (&c, "status_read_whatsapp.form", TOKEN), 0);
    assert_int_equal (c.result.count, 1);
    assert_string_equal (c.result.items[0].external_id, "read:SM0000000000000000000000000000000d");
    assert_string_equal (c.result.items[0].key, "whatsapp:shop-sms:+79161234567");
    d = (Retain__V1__MessageDelivered *)c.result.items[0].msg;
    assert_true (d->read);
    assert_int_equal (d->channel, RETAIN__V1__CHANNEL__WHATSAPP);

    assert_int_equal (s_post (&c, "status_undelivered.form", TOKEN), 0);
    assert_int_equal (c.result.count, 1);
    assert_string_equal (c.result.items[0].type, "MessageFailed");
    assert_string_equal (c.result.items[0].external_id,
                         "undelivered:SM0000000000000000000000000000000b");
    f = (Retain__V1__MessageFailed *)c.result.items[0].msg;
    assert_string_equal (f->error_code, "30003");
    assert_string_equal (f->error, "Twilio error 30003 (undelivered)");
    assert_false (f->permanent); /* the handset was off: later may work */

    assert_int_equal (s_post (&c, "status_failed.form", TOKEN), 0);
    assert_int_equal (c.result.count, 1);
    f = (Retain__V1__MessageFailed *)c.result.items[0].msg;
    assert_string_equal (c.result.items[0].external_id,
                         "failed:SM0000000000000000000000000000000c");
    assert_string_equal (f->error_code, "30006");
    assert_string_equal (f->error, "Landline or unreachable carrier");
    assert_true (f->permanent);
    rt_test_channel_call_done (&c);
}

static void
test_refusals (void **state)
{
    rt_test_channel_call_t c;
    char *body, *tampered;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    rt_test_channel_call_refused (&c, s_post (&c, "whatsapp.form", NULL), 401, "missing_signature");
    rt_test_channel_call_refused (&c, s_post (&c, "whatsapp.form", "another-token"), 403,
                                  "bad_signature");

    body = s_fixture ("whatsapp.form");
    tampered = s_fixture ("whatsapp_tampered.form");
    rt_test_channel_call_refused (&c, s_send (&c, tampered, body, TOKEN), 403, "bad_signature");
    /* A parameter added after signing. */
    {
        char *more = malloc (strlen (body) + 32);
        sprintf (more, "%s&Extra=1", body);
        rt_test_channel_call_refused (&c, s_send (&c, more, body, TOKEN), 403, "bad_signature");
        free (more);
    }
    /* The URL Twilio called is another than the one configured. */
    c.req.public_url = "https://hooks.example.com/hooks/twilio/other";
    rt_test_channel_call_refused (&c, s_send (&c, body, body, TOKEN), 403, "bad_signature");
    c.req.public_url = "";
    rt_test_channel_call_refused (&c, s_send (&c, body, body, TOKEN), 403, "bad_signature");
    c.req.public_url = URL;

    c.req.method = "GET";
    rt_test_channel_call_refused (&c, s_send (&c, body, body, TOKEN), 405, "method_not_allowed");
    c.req.method = "POST";
    s_send (&c, body, body, TOKEN);
    c.headers[0].value = "application/json";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 415, "unsupported_media_type");
    c.headers[0].value = "application/x-www-form-urlencoded; charset=UTF-8";
    assert_int_equal (rt_test_channel_call_run (&c), 0);

    /* An inbox without a token accepts nothing. */
    c.inbox.secret = "";
    rt_test_channel_call_refused (&c, s_send (&c, body, body, ""), 403, "bad_signature");
    c.inbox.secret = TOKEN;
    free (body);
    free (tampered);

    {
        /* A malformed escape: the form cannot be read, so neither can its
         * signature (any signature header will do). */
        char *bad = s_fixture ("malformed.form");
        rt_test_channel_call_refused (&c, s_send (&c, bad, "a=b", TOKEN), 400, "malformed");
        assert_non_null (strstr (c.result.reason, "percent"));
        free (bad);
    }
    rt_test_channel_call_refused (&c, s_post (&c, "bad_num_media.form", TOKEN), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "NumMedia"));
    rt_test_channel_call_refused (&c, s_post (&c, "no_message_sid.form", TOKEN), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "MessageSid"));
    rt_test_channel_call_refused (
        &c, s_send (&c, "MessageSid=SM1&From=", "MessageSid=SM1&From=", TOKEN), 400, "malformed");
    rt_test_channel_call_refused (
        &c,
        s_send (&c, "MessageSid=SM1&From=whatsapp%3A", "MessageSid=SM1&From=whatsapp%3A", TOKEN),
        400, "malformed");
    rt_test_channel_call_done (&c);
}

static void
test_rotation (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    c.inbox.secret = "new-auth-token";
    c.inbox.previous_secret = TOKEN;
    assert_int_equal (s_post (&c, "sms.form", TOKEN), 0);
    assert_int_equal (c.result.count, 1);
    assert_int_equal (s_post (&c, "sms.form", "new-auth-token"), 0);
    assert_int_equal (c.result.count, 1);
    c.inbox.previous_secret = "";
    rt_test_channel_call_refused (&c, s_post (&c, "sms.form", TOKEN), 403, "bad_signature");
    rt_test_channel_call_done (&c);
}

/* Values that are not UTF-8 are kept, repaired, never passed on raw. */
static void
test_invalid_utf8 (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    const char *body = "MessageSid=SM%FF1&From=%2B14155551234&Body=caf%E9+ok&ProfileName=%C3";
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__SMS);
    assert_int_equal (s_send (&c, body, body, TOKEN), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_string_equal (m->external_id, "SM\xEF\xBF\xBD"
                                         "1");
    assert_string_equal (c.result.items[0].external_id, "SM\xEF\xBF\xBD"
                                                        "1");
    assert_string_equal (m->text, "caf\xEF\xBF\xBD ok");
    assert_string_equal (m->display_name, "\xEF\xBF\xBD");
    rt_test_channel_call_done (&c);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_documented_example),
        cmocka_unit_test (test_sms),
        cmocka_unit_test (test_mms),
        cmocka_unit_test (test_whatsapp),
        cmocka_unit_test (test_status_callbacks),
        cmocka_unit_test (test_refusals),
        cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_invalid_utf8),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
