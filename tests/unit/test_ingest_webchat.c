/*
 * test_ingest_webchat: webchat_handle against widget posts
 * (tests/fixtures/ingest/webchat).
 *
 * The visitor signatures inside the fixtures were made outside retain, by
 * tests/fixtures/ingest/webchat/sign.js with Node's crypto, over the
 * visitor id with the test secret, the way a shop's backend would;
 * attachments.json carries its signature in upper-case hex, and
 * previous_key.json and empty_key.json are signed with the key before a
 * rotation and with an empty key. So every check of a signature here is
 * against a third party's HMAC; only the bodies made up in
 * test_bad_content, which test what follows the signature, are signed with
 * rt_crypto. What a user would notice: the message and who wrote it, the
 * {"ok":true} answer, a visitor unable to write as another, and a clear
 * status for every bad post with no items and no answer body. Leaks are
 * caught under AddressSanitizer (RETAIN_SANITIZE=ON).
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

#define SECRET   "wc-test-secret-7d2e"
#define PREVIOUS "wc-old-secret-0000"
#define NOW_MS   1718005555123LL

/* The handler under test, and where its requests come from. */
static const rt_test_channel_t s_ch = {.fixtures = "webchat",
                                       .handler = webchat_handle,
                                       .inbox = "shop-site",
                                       .channel = RETAIN__V1__CHANNEL__WEBCHAT,
                                       .path = "/chat/shop-site/messages",
                                       .public_url =
                                           "https://hooks.example.com/chat/shop-site/messages",
                                       .now_ms = NOW_MS};

static int
s_call (const ingest_inbox_t *inbox, const char *method, const char *ctype, const char *body,
        size_t len, ingest_result_t *result)
{
    const ingest_header_t headers[] = {{"Content-Type", ctype},
                                       {"Origin", "https://shop.example.com"}};
    return rt_test_channel_call (&s_ch, inbox, method, headers, 2, body, len, result);
}

static int
s_run_with (const ingest_inbox_t *inbox, const char *name, ingest_result_t *result)
{
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, name, &len);
    int rc = s_call (inbox, "POST", "application/json", body, len, result);
    free (body);
    return rc;
}

static int
s_run (const char *name, ingest_result_t *result)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    return s_run_with (&inbox, name, result);
}

/* A body for visitor signed with key by rt_crypto (rt_test_ingest_hmac_hex):
 * only for bodies whose test is about what follows the signature. */
static char *
s_body (const char *key, const char *visitor, const char *rest)
{
    char sig[RT_TEST_INGEST_SIG_LEN], *body;
    rt_test_ingest_hmac_hex (key, visitor, strlen (visitor), sig);
    assert_true (asprintf (&body, "{\"visitor_id\":\"%s\",\"visitor_signature\":\"%s\"%s}", visitor,
                           sig, rest) > 0);
    return body;
}

/* The one InboundMessage of a successful post, answered {"ok":true}. */
static Retain__V1__InboundMessage *
s_one (int rc, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = rt_test_channel_inbound (rc, result);
    assert_string_equal (result->response, "{\"ok\":true}");
    assert_string_equal (result->response_type, "application/json");
    return msg;
}

static void
test_text (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("text.json", &r), &r);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__WEBCHAT);
    assert_string_equal (m->inbox, "shop-site");
    assert_string_equal (m->external_id, "v-8c1f2a:m-01J0ABCDEF");
    assert_string_equal (m->external_user_id, "v-8c1f2a");
    assert_string_equal (m->thread_id, "v-8c1f2a");
    assert_string_equal (m->display_name, "Олена Коваленко");
    assert_string_equal (m->email, "olena@example.com");
    assert_string_equal (m->phone, "+380501234567");
    assert_string_equal (m->text, "Hi! Do you ship to Lviv?");
    assert_string_equal (m->event, "message");
    /* The visitor's clock is not trusted: the time is arrival. */
    assert_int_equal (m->sent_at, NOW_MS);
    assert_string_equal (r.items[0].key, "webchat:shop-site:v-8c1f2a");
    ingest_result_reset (&r);
}

static void
test_retry_same_id (void **state)
{
    ingest_result_t a, b;
    (void)state;
    s_one (s_run ("text.json", &a), &a);
    s_one (s_run ("text.json", &b), &b);
    assert_string_equal (a.items[0].external_id, b.items[0].external_id);
    ingest_result_reset (&a);
    ingest_result_reset (&b);
}

static void
test_attachments (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    /* Signed in upper-case hex; no text, two files. */
    m = s_one (s_run ("attachments.json", &r), &r);
    assert_string_equal (m->text, "");
    assert_int_equal (m->n_attachments, 2);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[0]->url,
                         "https://shop.example.com/uploads/v-8c1f2a/parcel.jpg");
    assert_string_equal (m->attachments[0]->mime_type, "image/jpeg");
    assert_string_equal (m->attachments[0]->name, "parcel.jpg");
    assert_int_equal (m->attachments[0]->size, 204800);
    assert_string_equal (m->attachments[1]->kind, "document");
    assert_string_equal (m->attachments[1]->mime_type, "application/pdf");
    /* A national number, read in the inbox's country (UA by default). */
    assert_string_equal (m->phone, "+380501234567");
    ingest_result_reset (&r);
}

static void
test_visitor_id_with_colons (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("visitor_with_colon.json", &r), &r);
    assert_string_equal (m->external_id, "shop:customer:42:m-01J0ABCDEP");
    assert_string_equal (m->external_user_id, "shop:customer:42");
    ingest_result_reset (&r);
}

static void
test_visitor_cannot_pose_as_another (void **state)
{
    ingest_inbox_t other = rt_test_channel_inbox (&s_ch, "another-shops-secret", "");
    ingest_result_t r;
    (void)state;
    /* v-8c1f2a's signature with someone else's id. */
    rt_test_channel_fails (s_run ("tampered.json", &r), &r, 403, "bad_signature",
                           "visitor_signature does not match");
    rt_test_channel_fails (s_run ("unsigned.json", &r), &r, 401, "missing_signature",
                           "visitor_signature missing");
    /* A valid signature for another inbox's secret. */
    rt_test_channel_fails (s_run_with (&other, "text.json", &r), &r, 403, "bad_signature",
                           "does not match");
}

static void
test_signature_shapes (void **state)
{
    static const char *bodies[][4] = {
        {"{\"visitor_id\":\"v\",\"visitor_signature\":\"\",\"message_id\":\"m\",\"text\":\"x\"}",
         "401", "missing_signature", "visitor_signature missing"},
        {"{\"visitor_id\":\"v\",\"visitor_signature\":null,\"message_id\":\"m\",\"text\":\"x\"}",
         "401", "missing_signature", "visitor_signature missing"},
        {"{\"visitor_id\":\"v\",\"visitor_signature\":7,\"message_id\":\"m\",\"text\":\"x\"}",
         "403", "bad_signature", "does not match"},
        {"{\"visitor_id\":\"v\",\"visitor_signature\":\"not-hex\",\"message_id\":\"m\"}", "403",
         "bad_signature", "does not match"},
        {"{\"visitor_id\":\"v\",\"visitor_signature\":\"abcd\",\"message_id\":\"m\"}", "403",
         "bad_signature", "does not match"},
        {"{\"visitor_signature\":\"abcd\",\"message_id\":\"m\"}", "400", "malformed",
         "visitor_id missing"},
        {"{\"visitor_id\":\"\",\"visitor_signature\":\"abcd\"}", "400", "malformed",
         "visitor_id is not a non-empty string"},
        {"{\"visitor_id\":12,\"visitor_signature\":\"abcd\"}", "400", "malformed",
         "visitor_id is not a non-empty string"},
    };
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        rt_test_channel_fails (
            s_call (&inbox, "POST", "application/json", bodies[i][0], strlen (bodies[i][0]), &r),
            &r, atoi (bodies[i][1]), bodies[i][2], bodies[i][3]);
}

static void
test_rotation (void **state)
{
    ingest_inbox_t rotating = rt_test_channel_inbox (&s_ch, SECRET, PREVIOUS);
    ingest_inbox_t rotated = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_inbox_t none = rt_test_channel_inbox (&s_ch, "", "");
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    /* During the rotation both keys sign. */
    m = s_one (s_run_with (&rotating, "previous_key.json", &r), &r);
    assert_string_equal (m->external_id, "v-8c1f2a:m-01J0ABCDEK");
    ingest_result_reset (&r);
    s_one (s_run_with (&rotating, "text.json", &r), &r);
    ingest_result_reset (&r);
    rt_test_channel_fails (s_run_with (&rotated, "previous_key.json", &r), &r, 403, "bad_signature",
                           "does not match");
    /* Anyone can compute an HMAC under an empty key. */
    rt_test_channel_fails (s_run_with (&none, "empty_key.json", &r), &r, 403, "bad_signature",
                           "does not match");
    rt_test_channel_fails (s_run_with (&none, "text.json", &r), &r, 403, "bad_signature",
                           "does not match");
}

static void
test_bad_content (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    char *body;
    (void)state;
    rt_test_channel_fails (s_run ("javascript_url.json", &r), &r, 400, "malformed",
                           "attachments[0].url is not an http(s) URL");
    rt_test_channel_fails (s_run ("empty_message.json", &r), &r, 400, "malformed",
                           "neither text nor attachments");
    /* "b:c" would let visitor "v" write "v:b:c", the id of visitor "v:b"'s
     * message "c". */
    rt_test_channel_fails (s_run ("colon_message_id.json", &r), &r, 400, "malformed", "message_id");
    rt_test_channel_fails (s_run ("wrong_types.json", &r), &r, 400, "malformed",
                           "text is not a string");
    rt_test_channel_fails (s_run ("malformed.json", &r), &r, 400, "malformed", "not JSON");

    body = s_body (SECRET, "v", ",\"text\":\"x\"");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r), &r,
                           400, "malformed", "message_id missing");
    free (body);
    body = s_body (SECRET, "v", ",\"message_id\":\"m\",\"attachments\":{}");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r), &r,
                           400, "malformed", "attachments is not an array");
    free (body);
    body = s_body (SECRET, "v", ",\"message_id\":\"m\",\"attachments\":[\"https://x\"]");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r), &r,
                           400, "malformed", "attachments[0] is not an object");
    free (body);
    body = s_body (SECRET, "v",
                   ",\"message_id\":\"m\",\"attachments\":[{\"url\":\"https://x\",\"size\":-1}]");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r), &r,
                           400, "malformed", "attachments[0].size");
    free (body);
    body = s_body (SECRET, "v", ",\"message_id\":\"m\",\"text\":\"x\",\"email\":[]");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r), &r,
                           400, "malformed", "email is not a string");
    free (body);
    {
        char rest[4096];
        size_t o = (size_t)snprintf (rest, sizeof rest, ",\"message_id\":\"m\",\"attachments\":[");
        int i;
        for (i = 0; i < 21; i++)
            o += (size_t)snprintf (rest + o, sizeof rest - o, "%s{\"url\":\"https://x/%d\"}",
                                   i ? "," : "", i);
        snprintf (rest + o, sizeof rest - o, "]");
        body = s_body (SECRET, "v", rest);
        rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r),
                               &r, 400, "malformed", "more than 20 attachments");
        free (body);
    }
    {
        char rest[256];
        snprintf (rest, sizeof rest, ",\"message_id\":\"%0129d\",\"text\":\"x\"", 7);
        body = s_body (SECRET, "v", rest);
        rt_test_channel_fails (s_call (&inbox, "POST", "application/json", body, strlen (body), &r),
                               &r, 400, "malformed", "message_id is not a string of 1 to 128");
        free (body);
    }
}

static void
test_method_and_content_type (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "text.json", &len);
    (void)state;
    /* The preflight is the HTTP layer's; reaching here it is refused. */
    rt_test_channel_fails (s_call (&inbox, "OPTIONS", "application/json", body, len, &r), &r, 405,
                           "method_not_allowed", "OPTIONS");
    rt_test_channel_fails (s_call (&inbox, "GET", NULL, "", 0, &r), &r, 405, "method_not_allowed",
                           "GET");
    rt_test_channel_fails (s_call (&inbox, "POST", "text/plain;charset=UTF-8", body, len, &r), &r,
                           415, "unsupported_media_type", "application/json");
    rt_test_channel_fails (s_call (&inbox, "POST", NULL, body, len, &r), &r, 415,
                           "unsupported_media_type", "application/json");
    s_one (s_call (&inbox, "POST", "application/json;charset=UTF-8", body, len, &r), &r);
    ingest_result_reset (&r);
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", "[]", 2, &r), &r, 400,
                           "malformed", "not a JSON object");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", NULL, 0, &r), &r, 400,
                           "malformed", "not JSON");
    free (body);
}

/* Posts a cut or flipped widget post: its visitor signature travels
 * inside, so a cut may also be refused as unsigned or mis-signed. */
static int
s_post (void *arg, const char *body, size_t len, ingest_result_t *result)
{
    return s_call (arg, "POST", "application/json", body, len, result);
}

static void
test_truncations_and_flips (void **state)
{
    static const char *const names[] = {"text.json", "attachments.json"};
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    (void)state;
    rt_test_channel_sweep (s_ch.fixtures, names, sizeof names / sizeof names[0], s_post, &inbox,
                           true);
}

static int
s_setup (void **state)
{
    (void)state;
    return rt_test_channel_config_set (
        json_pack ("{s:[s]}", "allowed_origins", "https://shop.example.com"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_text),
        cmocka_unit_test (test_retry_same_id),
        cmocka_unit_test (test_attachments),
        cmocka_unit_test (test_visitor_id_with_colons),
        cmocka_unit_test (test_visitor_cannot_pose_as_another),
        cmocka_unit_test (test_signature_shapes),
        cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_bad_content),
        cmocka_unit_test (test_method_and_content_type),
        cmocka_unit_test (test_truncations_and_flips),
    };
    return cmocka_run_group_tests (tests, s_setup, rt_test_channel_teardown);
}
