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

#include "rt_test_channel.h"
#include "rt_test_ingest.h"

/* The example token of Viber's documentation. */
#define TOKEN    "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
#define PREVIOUS "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"

/* The handler under test, and where its requests come from. */
static const rt_test_channel_t s_ch = {.fixtures = "viber",
                                       .handler = viber_handle,
                                       .inbox = "shop-viber",
                                       .channel = RETAIN__V1__CHANNEL__VIBER,
                                       .path = "/hooks/viber/shop-viber",
                                       .public_url =
                                           "https://hooks.example.com/hooks/viber/shop-viber",
                                       .now_ms = 1457764299000};

/* Calls the handler; sig NULL leaves the signature header out. */
static int
s_call (const ingest_inbox_t *inbox, const char *method, const char *ctype, const char *sig,
        const char *body, size_t len, ingest_result_t *result)
{
    const ingest_header_t headers[] = {
        {"Content-Type", ctype}, {"X-Viber-Content-Signature", sig}, {"Host", "hooks.example.com"}};
    return rt_test_channel_call (&s_ch, inbox, method, headers, 3, body, len, result);
}

/* A body signed with key, through an inbox with the test token. */
static int
s_signed (const char *key, const char *body, size_t len, ingest_result_t *result)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, TOKEN, "");
    char sig[RT_TEST_INGEST_SIG_LEN];
    rt_test_ingest_hmac_hex (key, body, len, sig);
    return s_call (&inbox, "POST", "application/json", sig, body, len, result);
}

/* A fixture, correctly signed. */
static int
s_run (const char *name, ingest_result_t *result)
{
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, name, &len);
    int rc = s_signed (TOKEN, body, len, result);
    free (body);
    return rc;
}

/* --- messages --- */

static void
test_text (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("message_text.json", &r), &r);
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
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, TOKEN, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "message_text.json", &len);
    char *sig = rt_test_channel_fixture_line (s_ch.fixtures, "message_text.json.sig", NULL);
    (void)state;
    rt_test_channel_inbound (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    free (sig);
    free (body);
}

static void
test_retry_same_id (void **state)
{
    ingest_result_t a, b;
    (void)state;
    rt_test_channel_inbound (s_run ("message_text.json", &a), &a);
    rt_test_channel_inbound (s_run ("message_text.json", &b), &b);
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
    m = rt_test_channel_inbound (s_run ("message_picture.json", &r), &r);
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
    m = rt_test_channel_inbound (s_run ("message_video.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "video");
    assert_string_equal (m->attachments[0]->url,
                         "https://dl-media.viber.com/1/share/2/long/video.mp4");
    assert_int_equal (m->attachments[0]->size, 10000);
    assert_string_equal (m->text, "");
    ingest_result_reset (&r);
    m = rt_test_channel_inbound (s_run ("message_file.json", &r), &r);
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
    m = rt_test_channel_inbound (s_run ("message_location.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "location");
    assert_float_equal (m->attachments[0]->latitude, 37.7898, 1e-9);
    assert_float_equal (m->attachments[0]->longitude, -122.3942, 1e-9);
    ingest_result_reset (&r);

    m = rt_test_channel_inbound (s_run ("message_contact.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "contact");
    assert_string_equal (m->attachments[0]->name, "Itamar");
    assert_string_equal (m->attachments[0]->phone, "+972511123123");
    /* Not necessarily the sender's own number. */
    assert_string_equal (m->phone, "");
    ingest_result_reset (&r);

    m = rt_test_channel_inbound (s_run ("message_sticker.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "sticker");
    assert_string_equal (m->attachments[0]->file_id, "46105");
    ingest_result_reset (&r);

    m = rt_test_channel_inbound (s_run ("message_url.json", &r), &r);
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
    m = rt_test_channel_inbound (s_run ("subscribed.json", &r), &r);
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
    m = rt_test_channel_inbound (s_run ("unsubscribed.json", &r), &r);
    assert_string_equal (m->event, "unsubscribed");
    assert_string_equal (m->external_id, "unsubscribed:4912661846655238145:1457764197627");
    assert_string_equal (m->external_user_id, "01234567890A=");
    ingest_result_reset (&r);

    m = rt_test_channel_inbound (s_run ("conversation_started.json", &r), &r);
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
    m = rt_test_channel_inbound (s_signed (TOKEN, body, sizeof body - 1, &r), &r);
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
    dm = (Retain__V1__MessageDelivered *)rt_test_channel_one (s_run ("delivered.json", &d), &d,
                                                              "MessageDelivered");
    assert_ptr_equal (dm->base.descriptor, &retain__v1__message_delivered__descriptor);
    assert_string_equal (d.items[0].external_id, "delivered:4912661846655238145:01234567890A=");
    assert_string_equal (dm->external_id, "4912661846655238145");
    assert_int_equal (dm->channel, RETAIN__V1__CHANNEL__VIBER);
    assert_int_equal (dm->delivered_at, 1457764197627LL);
    assert_false (dm->read);
    assert_string_equal (dm->message_id, "");
    assert_string_equal (d.items[0].key, "viber:shop-viber:01234567890A=");

    sm = (Retain__V1__MessageDelivered *)rt_test_channel_one (s_run ("seen.json", &s), &s,
                                                              "MessageDelivered");
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
    f = (Retain__V1__MessageFailed *)rt_test_channel_one (s_run ("failed.json", &r), &r,
                                                          "MessageFailed");
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
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, TOKEN, "");
    ingest_result_t r;
    char sig[RT_TEST_INGEST_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "message_text.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", NULL, body, len, &r), &r,
                           401, "missing_signature", "X-Viber-Content-Signature missing");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", "", body, len, &r), &r, 401,
                           "missing_signature", "missing");

    /* Signed, then changed: "a message" becomes "A message". */
    rt_test_ingest_hmac_hex (TOKEN, body, len, sig);
    *strstr (body, "a message") = 'A';
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r, 403,
                           "bad_signature", "does not match");
    *strstr (body, "A message") = 'a';

    rt_test_channel_fails (s_signed ("another-bot-token", body, len, &r), &r, 403, "bad_signature",
                           "does not match");
    /* Not hex, too short, too long. */
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", "zz", body, len, &r), &r,
                           403, "bad_signature", "does not match");
    sig[10] = '\0';
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r, 403,
                           "bad_signature", "does not match");
    {
        char longer[RT_TEST_INGEST_SIG_LEN + 2];
        rt_test_ingest_hmac_hex (TOKEN, body, len, longer);
        strcat (longer, "00");
        rt_test_channel_fails (s_call (&inbox, "POST", "application/json", longer, body, len, &r),
                               &r, 403, "bad_signature", "does not match");
    }
    free (body);
}

static void
test_upper_case_hex (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, TOKEN, "");
    ingest_result_t r;
    char sig[RT_TEST_INGEST_SIG_LEN];
    size_t len, i;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "message_text.json", &len);
    (void)state;
    rt_test_ingest_hmac_hex (TOKEN, body, len, sig);
    for (i = 0; sig[i]; i++)
        if (sig[i] >= 'a' && sig[i] <= 'f')
            sig[i] = (char)(sig[i] - 'a' + 'A');
    rt_test_channel_inbound (s_call (&inbox, "POST", "application/json", sig, body, len, &r), &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_rotation (void **state)
{
    ingest_inbox_t rotating = rt_test_channel_inbox (&s_ch, TOKEN, PREVIOUS);
    ingest_inbox_t rotated = rt_test_channel_inbox (&s_ch, TOKEN, "");
    ingest_result_t r;
    char sig[RT_TEST_INGEST_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "message_text.json", &len);
    (void)state;
    rt_test_ingest_hmac_hex (PREVIOUS, body, len, sig);
    rt_test_channel_inbound (s_call (&rotating, "POST", "application/json", sig, body, len, &r),
                             &r);
    ingest_result_reset (&r);
    rt_test_channel_fails (s_call (&rotated, "POST", "application/json", sig, body, len, &r), &r,
                           403, "bad_signature", "does not match");
    rt_test_ingest_hmac_hex (TOKEN, body, len, sig);
    rt_test_channel_inbound (s_call (&rotating, "POST", "application/json", sig, body, len, &r),
                             &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_empty_secret_never_verifies (void **state)
{
    /* HMAC under an empty key is computable by anyone: an inbox without a
     * secret admits nothing. */
    ingest_inbox_t none = rt_test_channel_inbox (&s_ch, "", "");
    ingest_result_t r;
    char sig[RT_TEST_INGEST_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "message_text.json", &len);
    (void)state;
    rt_test_ingest_hmac_hex ("", body, len, sig);
    rt_test_channel_fails (s_call (&none, "POST", "application/json", sig, body, len, &r), &r, 403,
                           "bad_signature", "does not match");
    free (body);
}

/* --- the request's shape --- */

static void
test_method_and_content_type (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, TOKEN, "");
    ingest_result_t r;
    char sig[RT_TEST_INGEST_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "message_text.json", &len);
    (void)state;
    rt_test_ingest_hmac_hex (TOKEN, body, len, sig);
    rt_test_channel_fails (s_call (&inbox, "GET", "application/json", sig, body, len, &r), &r, 405,
                           "method_not_allowed", "GET");
    rt_test_channel_fails (
        s_call (&inbox, "POST", "application/x-www-form-urlencoded", sig, body, len, &r), &r, 415,
        "unsupported_media_type", "application/json");
    rt_test_channel_fails (s_call (&inbox, "POST", NULL, sig, body, len, &r), &r, 415,
                           "unsupported_media_type", "application/json");
    rt_test_channel_inbound (
        s_call (&inbox, "POST", "application/json; charset=utf-8", sig, body, len, &r), &r);
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
    rt_test_channel_fails (s_run ("malformed.json", &r), &r, 400, "malformed", "not JSON");
    rt_test_channel_fails (s_run ("missing_sender.json", &r), &r, 400, "malformed",
                           "callback.sender missing");
    rt_test_channel_fails (s_run ("wrong_types.json", &r), &r, 400, "malformed",
                           "callback.timestamp is not an integer");
    rt_test_channel_fails (s_signed (TOKEN, "", 0, &r), &r, 400, "malformed", "not JSON");
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        rt_test_channel_fails (s_signed (TOKEN, bodies[i][0], strlen (bodies[i][0]), &r), &r, 400,
                               "malformed", bodies[i][1]);
}

/* Posts a cut or flipped callback, signed so that the parser sees it. */
static int
s_post (void *arg, const char *body, size_t len, ingest_result_t *result)
{
    (void)arg;
    return s_signed (TOKEN, body, len, result);
}

/* Every prefix and many corruptions of real callbacks, each signed so that
 * the parser sees them: 200 or 400, never a crash or a leak. */
static void
test_truncations_and_flips (void **state)
{
    static const char *const names[] = {"message_text.json",     "message_picture.json",
                                        "message_location.json", "subscribed.json",
                                        "delivered.json",        "failed.json"};
    (void)state;
    rt_test_channel_sweep (s_ch.fixtures, names, sizeof names / sizeof names[0], s_post, NULL,
                           false);
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
    return cmocka_run_group_tests (tests, rt_test_channel_setup, rt_test_channel_teardown);
}
