/*
 * test_ingest_viber: viber_handle against callbacks in the shapes of the
 * Viber REST bot API documentation (tests/fixtures/ingest/viber).
 *
 * Each request is signed here from the fixture's bytes with the test token
 * (HMAC-SHA256 via rt_crypto), except message_text.json.sig, made with
 * Python's hmac module: a second implementation that ours must agree with.
 * What a user would notice: messages and events as InboundMessage,
 * delivered/seen/failed as typed receipts, stable external ids, and a clear
 * status for every bad request, with no items. Leaks are caught under
 * AddressSanitizer (RETAIN_SANITIZE=ON).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "rt_test.h"
#include "rt_crypto.h"

/* The example token of Viber's documentation. */
#define TOKEN    "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
#define PREVIOUS "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"

static json_t *s_config;

static char *
s_fixture (const char *name, size_t *len)
{
    char rel[256];
    snprintf (rel, sizeof rel, "ingest/viber/%s", name);
    return rt_test_fixture (rel, len);
}

static ingest_inbox_t
s_inbox (const char *secret, const char *previous)
{
    ingest_inbox_t inbox = {"shop-viber", RETAIN__V1__CHANNEL__VIBER, secret, previous, s_config};
    return inbox;
}

/* Hex HMAC-SHA256 of body under key into out (65 bytes). */
static void
s_sign (const char *key, const char *body, size_t len, char *out)
{
    uint8_t mac[RT_SHA256_LEN];
    rt_hmac_sha256 (key, strlen (key), body, len, mac);
    rt_hex_encode (mac, sizeof mac, out);
}

/* Calls the handler; sig NULL leaves the signature header out. */
static int
s_call (const ingest_inbox_t *inbox, const char *method, const char *ctype, const char *sig,
        const char *body, size_t len, ingest_result_t *result)
{
    ingest_header_t headers[3];
    size_t n = 0;
    ingest_request_t req;
    if (ctype)
        headers[n++] = (ingest_header_t){"Content-Type", ctype};
    if (sig)
        headers[n++] = (ingest_header_t){"X-Viber-Content-Signature", sig};
    headers[n++] = (ingest_header_t){"Host", "hooks.example.com"};
    memset (&req, 0, sizeof req);
    req.method = method;
    req.path = "/hooks/viber/shop-viber";
    req.query = "";
    req.headers = headers;
    req.nheaders = n;
    req.body = (const uint8_t *)body;
    req.body_len = len;
    req.public_url = "https://hooks.example.com/hooks/viber/shop-viber";
    req.now_ms = 1457764299000;
    memset (result, 0, sizeof *result);
    return viber_handle (inbox, &req, result);
}

/* A body signed with key, through an inbox with the test token. */
static int
s_signed (const char *key, const char *body, size_t len, ingest_result_t *result)
{
    ingest_inbox_t inbox = s_inbox (TOKEN, "");
    char sig[2 * RT_SHA256_LEN + 1];
    s_sign (key, body, len, sig);
    return s_call (&inbox, "POST", "application/json", sig, body, len, result);
}

/* A fixture, correctly signed. */
static int
s_run (const char *name, ingest_result_t *result)
{
    size_t len;
    char *body = s_fixture (name, &len);
    int rc = s_signed (TOKEN, body, len, result);
    free (body);
    return rc;
}

/* The one item of a successful result, of the given type; it must pack. */
static ProtobufCMessage *
s_one (int rc, ingest_result_t *result, const char *type)
{
    ProtobufCMessage *msg;
    uint8_t *buf;
    size_t len;
    assert_int_equal (rc, 0);
    assert_int_equal (result->status, 0);
    assert_int_equal (result->count, 1);
    assert_string_equal (result->items[0].type, type);
    msg = result->items[0].msg;
    len = protobuf_c_message_get_packed_size (msg);
    buf = malloc (len + 1);
    assert_int_equal (protobuf_c_message_pack (msg, buf), len);
    free (buf);
    return msg;
}

static Retain__V1__InboundMessage *
s_inbound (int rc, ingest_result_t *result)
{
    ProtobufCMessage *msg = s_one (rc, result, "InboundMessage");
    assert_ptr_equal (msg->descriptor, &retain__v1__inbound_message__descriptor);
    return (Retain__V1__InboundMessage *)msg;
}

static void
s_assert_fails (int rc, ingest_result_t *result, int status, const char *label, const char *reason)
{
    assert_int_equal (rc, -1);
    assert_int_equal (result->status, status);
    assert_string_equal (result->label, label);
    if (!strstr (result->reason, reason))
        fail_msg ("reason \"%s\" does not mention \"%s\"", result->reason, reason);
    assert_int_equal (result->count, 0);
    assert_null (result->items);
    ingest_result_reset (result);
}

/* --- messages --- */

static void
test_text (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_run ("message_text.json", &r), &r);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__VIBER);
    assert_string_equal (m->inbox, "shop-viber");
    assert_string_equal (m->external_id, "4912661846655238145");
    assert_string_equal (r.items[0].external_id, "4912661846655238145");
    assert_string_equal (m->external_user_id, "01234567890A=");
    assert_string_equal (m->display_name, "John McClane");
    assert_string_equal (m->text, "a message to the service");
    assert_string_equal (m->event, "message");
    assert_string_equal (m->thread_id, "01234567890A=");
    assert_int_equal (m->sent_at, 1457764197627LL);
    assert_int_equal (m->n_attachments, 0);
    assert_string_equal (r.items[0].key, "viber:shop-viber:01234567890A=");
    ingest_result_reset (&r);
}

static void
test_signature_from_python (void **state)
{
    ingest_inbox_t inbox = s_inbox (TOKEN, "");
    ingest_result_t r;
    size_t len, siglen;
    char *body = s_fixture ("message_text.json", &len);
    char *sig = s_fixture ("message_text.json.sig", &siglen);
    (void)state;
    while (siglen > 0 && (sig[siglen - 1] == '\n' || sig[siglen - 1] == '\r'))
        sig[--siglen] = '\0';
    s_inbound (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    free (sig);
    free (body);
}

static void
test_retry_same_id (void **state)
{
    ingest_result_t a, b;
    (void)state;
    s_inbound (s_run ("message_text.json", &a), &a);
    s_inbound (s_run ("message_text.json", &b), &b);
    assert_string_equal (a.items[0].external_id, b.items[0].external_id);
    ingest_result_reset (&a);
    ingest_result_reset (&b);
}

static void
test_picture (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_run ("message_picture.json", &r), &r);
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (
        m->attachments[0]->url,
        "https://dl-media.viber.com/1/share/2/long/vibes/icon/image/0x0/95e0/5688fdffdf6d0aa6.jpg");
    assert_string_equal (m->attachments[0]->name, "parcel.jpg");
    assert_int_equal (m->attachments[0]->size, 104203);
    assert_string_equal (m->caption, "Photo description");
    assert_string_equal (m->text, "Photo description");
    ingest_result_reset (&r);
}

static void
test_video_and_file (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_run ("message_video.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "video");
    assert_string_equal (m->attachments[0]->url,
                         "https://dl-media.viber.com/1/share/2/long/video.mp4");
    assert_int_equal (m->attachments[0]->size, 10000);
    assert_string_equal (m->text, "");
    ingest_result_reset (&r);
    m = s_inbound (s_run ("message_file.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "document");
    assert_string_equal (m->attachments[0]->name, "name_of_file.doc");
    assert_int_equal (m->attachments[0]->size, 10000);
    ingest_result_reset (&r);
}

static void
test_location_contact_sticker_url (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_run ("message_location.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "location");
    assert_float_equal (m->attachments[0]->latitude, 37.7898, 1e-9);
    assert_float_equal (m->attachments[0]->longitude, -122.3942, 1e-9);
    ingest_result_reset (&r);

    m = s_inbound (s_run ("message_contact.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "contact");
    assert_string_equal (m->attachments[0]->name, "Itamar");
    assert_string_equal (m->attachments[0]->phone, "+972511123123");
    /* Not necessarily the sender's own number. */
    assert_string_equal (m->phone, "");
    ingest_result_reset (&r);

    m = s_inbound (s_run ("message_sticker.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "sticker");
    assert_string_equal (m->attachments[0]->file_id, "46105");
    ingest_result_reset (&r);

    m = s_inbound (s_run ("message_url.json", &r), &r);
    assert_string_equal (m->text, "http://www.website.com/go_here");
    assert_int_equal (m->n_attachments, 0);
    ingest_result_reset (&r);
}

/* --- events --- */

static void
test_subscribed (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_run ("subscribed.json", &r), &r);
    assert_string_equal (m->event, "subscribed");
    assert_string_equal (m->external_id, "subscribed:4912661846655238145:1457764197627");
    assert_string_equal (m->external_user_id, "01234567890A=");
    assert_string_equal (m->display_name, "John McClane");
    assert_string_equal (m->text, "");
    assert_int_equal (m->sent_at, 1457764197627LL);
    ingest_result_reset (&r);
}

static void
test_unsubscribed_and_conversation_started (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_run ("unsubscribed.json", &r), &r);
    assert_string_equal (m->event, "unsubscribed");
    assert_string_equal (m->external_id, "unsubscribed:4912661846655238145:1457764197627");
    assert_string_equal (m->external_user_id, "01234567890A=");
    ingest_result_reset (&r);

    m = s_inbound (s_run ("conversation_started.json", &r), &r);
    assert_string_equal (m->event, "conversation_started");
    assert_string_equal (m->external_id, "conversation_started:4912661846655238145:1457764197627");
    assert_string_equal (m->display_name, "John McClane");
    ingest_result_reset (&r);
}

static void
test_event_without_token_uses_user (void **state)
{
    static const char body[] = "{\"event\":\"unsubscribed\",\"timestamp\":1457764197627,"
                               "\"user_id\":\"01234567890A=\"}";
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_inbound (s_signed (TOKEN, body, sizeof body - 1, &r), &r);
    assert_string_equal (m->external_id, "unsubscribed:01234567890A=:1457764197627");
    ingest_result_reset (&r);
}

/* --- receipts --- */

static void
test_delivered_and_seen (void **state)
{
    ingest_result_t d, s;
    Retain__V1__MessageDelivered *dm, *sm;
    (void)state;
    dm = (Retain__V1__MessageDelivered *)s_one (s_run ("delivered.json", &d), &d,
                                                "MessageDelivered");
    assert_ptr_equal (dm->base.descriptor, &retain__v1__message_delivered__descriptor);
    assert_string_equal (d.items[0].external_id, "delivered:4912661846655238145:01234567890A=");
    assert_string_equal (dm->external_id, "4912661846655238145");
    assert_int_equal (dm->channel, RETAIN__V1__CHANNEL__VIBER);
    assert_int_equal (dm->delivered_at, 1457764197627LL);
    assert_false (dm->read);
    assert_string_equal (dm->message_id, "");
    assert_string_equal (d.items[0].key, "viber:shop-viber:01234567890A=");

    sm = (Retain__V1__MessageDelivered *)s_one (s_run ("seen.json", &s), &s, "MessageDelivered");
    assert_string_equal (s.items[0].external_id, "seen:4912661846655238145:01234567890A=");
    assert_string_equal (sm->external_id, "4912661846655238145");
    assert_true (sm->read);
    /* Two facts about one message: neither swallows the other. */
    assert_string_not_equal (d.items[0].external_id, s.items[0].external_id);
    ingest_result_reset (&d);
    ingest_result_reset (&s);
}

static void
test_failed (void **state)
{
    ingest_result_t r;
    Retain__V1__MessageFailed *f;
    (void)state;
    f = (Retain__V1__MessageFailed *)s_one (s_run ("failed.json", &r), &r, "MessageFailed");
    assert_ptr_equal (f->base.descriptor, &retain__v1__message_failed__descriptor);
    assert_string_equal (r.items[0].external_id, "failed:4912661846655238145:01234567890A=");
    assert_string_equal (f->external_id, "4912661846655238145");
    assert_string_equal (f->error, "failure description");
    assert_int_equal (f->channel, RETAIN__V1__CHANNEL__VIBER);
    ingest_result_reset (&r);
}

static void
test_nothing_to_keep (void **state)
{
    static const char later[] = "{\"event\":\"client_status\",\"timestamp\":1457764197627}";
    ingest_result_t r;
    (void)state;
    assert_int_equal (s_run ("webhook.json", &r), 0);
    assert_int_equal (r.count, 0);
    assert_int_equal (r.status, 0);
    ingest_result_reset (&r);
    assert_int_equal (s_signed (TOKEN, later, sizeof later - 1, &r), 0);
    assert_int_equal (r.count, 0);
    ingest_result_reset (&r);
}

/* --- authentication --- */

static void
test_unsigned_tampered_wrong_key (void **state)
{
    ingest_inbox_t inbox = s_inbox (TOKEN, "");
    ingest_result_t r;
    char sig[2 * RT_SHA256_LEN + 1];
    size_t len;
    char *body = s_fixture ("message_text.json", &len);
    (void)state;
    s_assert_fails (s_call (&inbox, "POST", "application/json", NULL, body, len, &r), &r, 401,
                    "missing_signature", "X-Viber-Content-Signature missing");
    s_assert_fails (s_call (&inbox, "POST", "application/json", "", body, len, &r), &r, 401,
                    "missing_signature", "missing");

    /* Signed, then changed: "a message" becomes "A message". */
    s_sign (TOKEN, body, len, sig);
    *strstr (body, "a message") = 'A';
    s_assert_fails (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r, 403,
                    "bad_signature", "does not match");
    *strstr (body, "A message") = 'a';

    s_assert_fails (s_signed ("another-bot-token", body, len, &r), &r, 403, "bad_signature",
                    "does not match");
    /* Not hex, too short, too long. */
    s_assert_fails (s_call (&inbox, "POST", "application/json", "zz", body, len, &r), &r, 403,
                    "bad_signature", "does not match");
    sig[10] = '\0';
    s_assert_fails (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r, 403,
                    "bad_signature", "does not match");
    {
        char longer[2 * RT_SHA256_LEN + 3];
        s_sign (TOKEN, body, len, longer);
        strcat (longer, "00");
        s_assert_fails (s_call (&inbox, "POST", "application/json", longer, body, len, &r), &r, 403,
                        "bad_signature", "does not match");
    }
    free (body);
}

static void
test_upper_case_hex (void **state)
{
    ingest_inbox_t inbox = s_inbox (TOKEN, "");
    ingest_result_t r;
    char sig[2 * RT_SHA256_LEN + 1];
    size_t len, i;
    char *body = s_fixture ("message_text.json", &len);
    (void)state;
    s_sign (TOKEN, body, len, sig);
    for (i = 0; sig[i]; i++)
        if (sig[i] >= 'a' && sig[i] <= 'f')
            sig[i] = (char)(sig[i] - 'a' + 'A');
    s_inbound (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_rotation (void **state)
{
    ingest_inbox_t rotating = s_inbox (TOKEN, PREVIOUS);
    ingest_inbox_t rotated = s_inbox (TOKEN, "");
    ingest_result_t r;
    char sig[2 * RT_SHA256_LEN + 1];
    size_t len;
    char *body = s_fixture ("message_text.json", &len);
    (void)state;
    s_sign (PREVIOUS, body, len, sig);
    s_inbound (s_call (&rotating, "POST", "application/json", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    s_assert_fails (s_call (&rotated, "POST", "application/json", sig, body, len, &r), &r, 403,
                    "bad_signature", "does not match");
    s_sign (TOKEN, body, len, sig);
    s_inbound (s_call (&rotating, "POST", "application/json", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_empty_secret_never_verifies (void **state)
{
    /* HMAC under an empty key is computable by anyone: an inbox without a
     * secret admits nothing. */
    ingest_inbox_t none = s_inbox ("", "");
    ingest_result_t r;
    char sig[2 * RT_SHA256_LEN + 1];
    size_t len;
    char *body = s_fixture ("message_text.json", &len);
    (void)state;
    s_sign ("", body, len, sig);
    s_assert_fails (s_call (&none, "POST", "application/json", sig, body, len, &r), &r, 403,
                    "bad_signature", "does not match");
    free (body);
}

/* --- the request's shape --- */

static void
test_method_and_content_type (void **state)
{
    ingest_inbox_t inbox = s_inbox (TOKEN, "");
    ingest_result_t r;
    char sig[2 * RT_SHA256_LEN + 1];
    size_t len;
    char *body = s_fixture ("message_text.json", &len);
    (void)state;
    s_sign (TOKEN, body, len, sig);
    s_assert_fails (s_call (&inbox, "GET", "application/json", sig, body, len, &r), &r, 405,
                    "method_not_allowed", "GET");
    s_assert_fails (
        s_call (&inbox, "POST", "application/x-www-form-urlencoded", sig, body, len, &r), &r, 415,
        "unsupported_media_type", "application/json");
    s_assert_fails (s_call (&inbox, "POST", NULL, sig, body, len, &r), &r, 415,
                    "unsupported_media_type", "application/json");
    s_inbound (s_call (&inbox, "POST", "application/json; charset=utf-8", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_malformed (void **state)
{
    static const char *bodies[][2] = {
        {"[]", "not a JSON object"},
        {"{\"timestamp\":1}", "callback.event missing"},
        {"{\"event\":\"message\"}", "callback.timestamp missing"},
        {"{\"event\":\"message\",\"timestamp\":-1}", "callback.timestamp is negative"},
        {"{\"event\":5,\"timestamp\":1}", "callback.event is not a string"},
        {"{\"event\":\"message\",\"timestamp\":1,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"type\":\"text\",\"text\":\"x\"}}",
         "callback.message_token missing"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1.5,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"type\":\"text\",\"text\":\"x\"}}",
         "callback.message_token is not an integer"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1,\"sender\":{\"id\":\"\"},"
         "\"message\":{\"type\":\"text\",\"text\":\"x\"}}",
         "callback.sender.id is empty"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"text\":\"x\"}}",
         "callback.message.type missing"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"type\":\"picture\"}}",
         "callback.message.media missing"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"type\":\"location\",\"location\":{\"lat\":\"1\",\"lon\":2}}}",
         "callback.message.location.lat is not a number"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"type\":\"file\",\"media\":\"https://x\",\"size\":-3}}",
         "callback.message.size is negative"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":1,\"sender\":{\"id\":\"u\"},"
         "\"message\":{\"type\":\"contact\",\"contact\":{\"name\":\"a\"}}}",
         "callback.message.contact.phone_number missing"},
        {"{\"event\":\"message\",\"timestamp\":1,\"message_token\":99999999999999999999,"
         "\"sender\":{\"id\":\"u\"},\"message\":{\"type\":\"text\",\"text\":\"x\"}}",
         "not JSON"},
        {"{\"event\":\"delivered\",\"timestamp\":1,\"message_token\":1}",
         "callback.user_id missing"},
        {"{\"event\":\"subscribed\",\"timestamp\":1,\"message_token\":1}", "callback.user missing"},
        {"{\"event\":\"failed\",\"timestamp\":1,\"message_token\":1,\"user_id\":\"u\","
         "\"desc\":7}",
         "callback.desc is not a string"},
    };
    ingest_result_t r;
    size_t i;
    (void)state;
    s_assert_fails (s_run ("malformed.json", &r), &r, 400, "malformed", "not JSON");
    s_assert_fails (s_run ("missing_sender.json", &r), &r, 400, "malformed",
                    "callback.sender missing");
    s_assert_fails (s_run ("wrong_types.json", &r), &r, 400, "malformed",
                    "callback.timestamp is not an integer");
    s_assert_fails (s_signed (TOKEN, "", 0, &r), &r, 400, "malformed", "not JSON");
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        s_assert_fails (s_signed (TOKEN, bodies[i][0], strlen (bodies[i][0]), &r), &r, 400,
                        "malformed", bodies[i][1]);
}

/* Every prefix and many corruptions of real callbacks, each signed so that
 * the parser sees them: 200 or 400, never a crash or a leak. */
static void
test_truncations_and_flips (void **state)
{
    static const char *names[] = {"message_text.json",     "message_picture.json",
                                  "message_location.json", "subscribed.json",
                                  "delivered.json",        "failed.json"};
    size_t k;
    (void)state;
    for (k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t len, i;
        char *body = s_fixture (names[k], &len);
        for (i = 0; i < len; i++) {
            ingest_result_t r;
            int rc = s_signed (TOKEN, body, i, &r);
            assert_true (rc == 0 || (rc == -1 && r.status == 400 && r.count == 0));
            ingest_result_reset (&r);
        }
        for (i = 0; i < len; i++) {
            static const char flips[] = {'"', '{', '}', '[', ']', ':', ',', '0', '-', 'x', '\\'};
            ingest_result_t r;
            char saved = body[i];
            int rc;
            body[i] = flips[i % sizeof flips];
            rc = s_signed (TOKEN, body, len, &r);
            assert_true (rc == 0 || (rc == -1 && r.status == 400 && r.count == 0));
            ingest_result_reset (&r);
            body[i] = saved;
        }
        free (body);
    }
}

static int
s_setup (void **state)
{
    (void)state;
    s_config = json_object ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    json_decref (s_config);
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_text),
        cmocka_unit_test (test_signature_from_python),
        cmocka_unit_test (test_retry_same_id),
        cmocka_unit_test (test_picture),
        cmocka_unit_test (test_video_and_file),
        cmocka_unit_test (test_location_contact_sticker_url),
        cmocka_unit_test (test_subscribed),
        cmocka_unit_test (test_unsubscribed_and_conversation_started),
        cmocka_unit_test (test_event_without_token_uses_user),
        cmocka_unit_test (test_delivered_and_seen),
        cmocka_unit_test (test_failed),
        cmocka_unit_test (test_nothing_to_keep),
        cmocka_unit_test (test_unsigned_tampered_wrong_key),
        cmocka_unit_test (test_upper_case_hex),
        cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_empty_secret_never_verifies),
        cmocka_unit_test (test_method_and_content_type),
        cmocka_unit_test (test_malformed),
        cmocka_unit_test (test_truncations_and_flips),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
