/*
 * test_ingest_phone: phone_handle against PBX call events
 * (tests/fixtures/ingest/phone).
 *
 * Requests are signed here from the fixture's bytes with the test secret
 * (X-Retain-Signature), or carry the secret itself (X-Retain-Secret);
 * missed.json.sig was made with Python's hmac module, a second
 * implementation ours must agree with. What a user would notice: each call
 * step as an InboundMessage with its call, a missed call asking for a
 * call-back, the customer being the far end, and a clear status for every
 * bad request with no items. Leaks are caught under AddressSanitizer
 * (RETAIN_SANITIZE=ON).
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

#define SECRET   "pbx-test-secret-91ab"
#define PREVIOUS "pbx-old-secret-4411"
#define NOW_MS   1718009999000LL

/* The handler under test, and where its requests come from. */
static const rt_test_channel_t s_ch = {.fixtures = "phone",
                                       .handler = phone_handle,
                                       .inbox = "office-pbx",
                                       .channel = RETAIN__V1__CHANNEL__PHONE,
                                       .path = "/hooks/phone/office-pbx",
                                       .public_url =
                                           "https://hooks.example.com/hooks/phone/office-pbx",
                                       .now_ms = NOW_MS};

/* Calls the handler; sig and shared NULL leave their headers out. */
static int
s_call (const ingest_inbox_t *inbox, const char *method, const char *ctype, const char *sig,
        const char *shared, const char *body, size_t len, ingest_result_t *result)
{
    const ingest_header_t headers[] = {
        {"Content-Type", ctype}, {"X-Retain-Signature", sig}, {"X-Retain-Secret", shared}};
    return rt_test_channel_call (&s_ch, inbox, method, headers, 3, body, len, result);
}

static int
s_signed (const char *key, const char *body, size_t len, ingest_result_t *result)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    char sig[RT_TEST_CHANNEL_SIG_LEN];
    rt_test_channel_sha256_sig (key, body, len, sig);
    return s_call (&inbox, "POST", "application/json", sig, NULL, body, len, result);
}

static int
s_run (const char *name, ingest_result_t *result)
{
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, name, &len);
    int rc = s_signed (SECRET, body, len, result);
    free (body);
    return rc;
}

/* The one InboundMessage of a successful result: a call's. */
static Retain__V1__InboundMessage *
s_one (int rc, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = rt_test_channel_inbound (rc, result);
    assert_non_null (msg->call);
    return msg;
}

/* --- call events --- */

static void
test_missed_asks_for_call_back (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("missed.json", &r), &r);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__PHONE);
    assert_string_equal (m->inbox, "office-pbx");
    assert_string_equal (m->event, "call_missed");
    assert_string_equal (m->text, "Missed call from +380501234567: please call back");
    assert_string_equal (m->external_id, "1718000000.42:missed");
    assert_string_equal (m->external_user_id, "+380501234567");
    assert_string_equal (m->phone, "+380501234567");
    assert_string_equal (m->thread_id, "1718000000.42");
    assert_int_equal (m->sent_at, 1718000000000LL);
    assert_string_equal (m->call->call_id, "1718000000.42");
    assert_string_equal (m->call->direction, "inbound");
    assert_string_equal (m->call->from, "+380501234567");
    assert_string_equal (m->call->to, "+380443334455");
    assert_string_equal (r.items[0].key, "phone:office-pbx:+380501234567");
    ingest_result_reset (&r);
}

static void
test_signature_from_python (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "missed.json", &len);
    char *sig = rt_test_channel_fixture_line (s_ch.fixtures, "missed.json.sig", NULL);
    (void)state;
    s_one (s_call (&inbox, "POST", "application/json", sig, NULL, body, len, &r), &r);
    ingest_result_reset (&r);
    free (sig);
    free (body);
}

static void
test_each_step_is_its_own_item (void **state)
{
    ingest_result_t started, missed, again;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("started.json", &started), &started);
    assert_string_equal (m->event, "call_started");
    assert_string_equal (m->external_id, "1718000000.42:started");
    assert_string_equal (m->text, "");
    s_one (s_run ("missed.json", &missed), &missed);
    s_one (s_run ("missed.json", &again), &again);
    assert_string_not_equal (started.items[0].external_id, missed.items[0].external_id);
    /* The PBX's retry is a duplicate. */
    assert_string_equal (missed.items[0].external_id, again.items[0].external_id);
    ingest_result_reset (&started);
    ingest_result_reset (&missed);
    ingest_result_reset (&again);
}

static void
test_answered_ended_recording (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("answered.json", &r), &r);
    assert_string_equal (m->event, "call_answered");
    /* Separators dropped: one customer, however the PBX spaced it. */
    assert_string_equal (m->phone, "+380501234567");
    assert_string_equal (m->external_user_id, "+380501234567");
    assert_string_equal (m->call->from, "+380 50 123 45 67");
    assert_string_equal (m->call->operator_id, "ext 101");
    /* A timestamp in milliseconds stays milliseconds. */
    assert_int_equal (m->sent_at, 1718000105000LL);
    ingest_result_reset (&r);

    m = s_one (s_run ("ended.json", &r), &r);
    assert_string_equal (m->event, "call_ended");
    assert_int_equal (m->call->duration_ms, 65000);
    assert_int_equal (m->sent_at, 1718000170000LL);
    ingest_result_reset (&r);

    m = s_one (s_run ("recording.json", &r), &r);
    assert_string_equal (m->event, "call_recording");
    assert_string_equal (m->external_id, "1718000100.43:recording");
    assert_string_equal (m->call->recording_url,
                         "https://pbx.example.com/recordings/1718000100.43.mp3");
    ingest_result_reset (&r);
}

static void
test_outbound_customer_is_the_called (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("outbound_missed.json", &r), &r);
    assert_string_equal (m->event, "call_missed");
    assert_string_equal (m->external_id, "99017:missed");
    assert_string_equal (m->external_user_id, "+48600100200");
    assert_string_equal (m->phone, "+48600100200");
    assert_string_equal (m->call->direction, "outbound");
    assert_string_equal (m->call->from, "ext 102");
    /* The customer did not pick up: nothing for them to be called back on. */
    assert_string_equal (m->text, "");
    ingest_result_reset (&r);
}

static void
test_national_number_and_no_timestamp (void **state)
{
    static const char body[] =
        "{\"call_id\":\"c-1\",\"event\":\"started\",\"from\":\"+380501234567\"}";
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = s_one (s_run ("national_number.json", &r), &r);
    /* A national number is read in the inbox's country (UA by default):
     * the customer is the same one whichever way the PBX wrote them. */
    assert_string_equal (m->phone, "+380501234567");
    assert_string_equal (m->external_user_id, "+380501234567");
    assert_string_equal (m->text, "Missed call from +380501234567: please call back");
    assert_string_equal (m->call->direction, "");
    ingest_result_reset (&r);
    m = s_one (s_signed (SECRET, body, sizeof body - 1, &r), &r);
    assert_int_equal (m->sent_at, NOW_MS);
    ingest_result_reset (&r);
}

/* --- authentication --- */

static void
test_shared_secret (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "missed.json", &len);
    (void)state;
    s_one (s_call (&inbox, "POST", "application/json", NULL, SECRET, body, len, &r), &r);
    ingest_result_reset (&r);
    rt_test_channel_fails (
        s_call (&inbox, "POST", "application/json", NULL, SECRET "!", body, len, &r), &r, 403,
        "bad_signature", "X-Retain-Secret does not match");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", NULL, "pbx", body, len, &r),
                           &r, 403, "bad_signature", "X-Retain-Secret does not match");
    free (body);
}

static void
test_signature_decides (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    char sig[RT_TEST_CHANNEL_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "missed.json", &len);
    (void)state;
    /* A wrong signature is not rescued by a right shared secret. */
    rt_test_channel_sha256_sig ("not-the-secret", body, len, sig);
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", sig, SECRET, body, len, &r),
                           &r, 403, "bad_signature", "X-Retain-Signature does not match");
    free (body);
}

static void
test_unsigned_tampered_wrong_key (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    char sig[RT_TEST_CHANNEL_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "missed.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", NULL, NULL, body, len, &r),
                           &r, 401, "missing_signature", "neither");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", "", "", body, len, &r), &r,
                           401, "missing_signature", "neither");

    /* Signed, then the caller's number changed. */
    rt_test_channel_sha256_sig (SECRET, body, len, sig);
    *strstr (body, "+380501234567") = '-';
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", sig, NULL, body, len, &r),
                           &r, 403, "bad_signature", "does not match the body");
    *strstr (body, "-380501234567") = '+';

    rt_test_channel_fails (s_signed ("another-pbx", body, len, &r), &r, 403, "bad_signature",
                           "does not match the body");
    /* Malformed headers. */
    rt_test_channel_fails (
        s_call (&inbox, "POST", "application/json", sig + 7, NULL, body, len, &r), &r, 403,
        "bad_signature", "sha256=");
    rt_test_channel_fails (
        s_call (&inbox, "POST", "application/json", "sha1=abcdef", NULL, body, len, &r), &r, 403,
        "bad_signature", "sha256=");
    rt_test_channel_fails (
        s_call (&inbox, "POST", "application/json", "sha256=", NULL, body, len, &r), &r, 403,
        "bad_signature", "sha256=");
    sig[7 + 63] = 'g';
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", sig, NULL, body, len, &r),
                           &r, 403, "bad_signature", "sha256=");
    free (body);
}

static void
test_rotation (void **state)
{
    ingest_inbox_t rotating = rt_test_channel_inbox (&s_ch, SECRET, PREVIOUS);
    ingest_inbox_t rotated = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_inbox_t none = rt_test_channel_inbox (&s_ch, "", "");
    ingest_result_t r;
    char sig[RT_TEST_CHANNEL_SIG_LEN];
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "missed.json", &len);
    (void)state;
    rt_test_channel_sha256_sig (PREVIOUS, body, len, sig);
    s_one (s_call (&rotating, "POST", "application/json", sig, NULL, body, len, &r), &r);
    ingest_result_reset (&r);
    s_one (s_call (&rotating, "POST", "application/json", NULL, PREVIOUS, body, len, &r), &r);
    ingest_result_reset (&r);
    rt_test_channel_fails (s_call (&rotated, "POST", "application/json", sig, NULL, body, len, &r),
                           &r, 403, "bad_signature", "does not match");
    rt_test_channel_fails (
        s_call (&rotated, "POST", "application/json", NULL, PREVIOUS, body, len, &r), &r, 403,
        "bad_signature", "does not match");
    /* No secret configured: an HMAC under "" proves nothing. */
    rt_test_channel_sha256_sig ("", body, len, sig);
    rt_test_channel_fails (s_call (&none, "POST", "application/json", sig, NULL, body, len, &r), &r,
                           403, "bad_signature", "does not match");
    free (body);
}

/* --- the request's shape --- */

static void
test_method_and_content_type (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "missed.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&inbox, "GET", "application/json", NULL, SECRET, body, len, &r),
                           &r, 405, "method_not_allowed", "GET");
    rt_test_channel_fails (s_call (&inbox, "POST", "text/xml", NULL, SECRET, body, len, &r), &r,
                           415, "unsupported_media_type", "application/json");
    s_one (s_call (&inbox, "POST", "application/json; charset=utf-8", NULL, SECRET, body, len, &r),
           &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_bad_events (void **state)
{
    static const char *bodies[][2] = {
        {"[]", "not a JSON object"},
        {"{\"event\":\"missed\",\"from\":\"+380501234567\"}", "call_id missing"},
        {"{\"call_id\":\"\",\"event\":\"missed\",\"from\":\"+380501234567\"}", "call_id is not"},
        {"{\"call_id\":[1],\"event\":\"missed\",\"from\":\"+380501234567\"}", "call_id is not"},
        {"{\"call_id\":\"c\",\"from\":\"+380501234567\"}", "event missing"},
        {"{\"call_id\":\"c\",\"event\":3,\"from\":\"+380501234567\"}", "event is not a string"},
        {"{\"call_id\":\"c\",\"event\":\"Missed\",\"from\":\"+380501234567\"}",
         "unknown event \"Missed\""},
        {"{\"call_id\":\"c\",\"event\":\"missed\",\"direction\":\"sideways\",\"from\":\"+1\"}",
         "direction is neither inbound nor outbound"},
        {"{\"call_id\":\"c\",\"event\":\"missed\",\"direction\":\"outbound\",\"from\":\"ext 1\"}",
         "to missing"},
        {"{\"call_id\":\"c\",\"event\":\"ended\",\"from\":\"+380501234567\",\"duration_s\":-1}",
         "duration_s is out of range"},
        {"{\"call_id\":\"c\",\"event\":\"ended\",\"from\":\"+380501234567\",\"duration_s\":1e300}",
         "duration_s is out of range"},
        {"{\"call_id\":\"c\",\"event\":\"ended\",\"from\":\"+380501234567\",\"timestamp\":1e20}",
         "timestamp is out of range"},
        {"{\"call_id\":\"c\",\"event\":\"ended\",\"from\":\"+380501234567\",\"timestamp\":\"now\"}",
         "timestamp is not a number"},
        {"{\"call_id\":\"c\",\"event\":\"ended\",\"from\":{\"n\":1}}", "from is not a string"},
    };
    ingest_result_t r;
    size_t i;
    (void)state;
    rt_test_channel_fails (s_run ("unknown_event.json", &r), &r, 400, "malformed",
                           "unknown event \"transferred\"");
    rt_test_channel_fails (s_run ("recording_without_url.json", &r), &r, 400, "malformed",
                           "recording_url missing");
    rt_test_channel_fails (s_run ("wrong_types.json", &r), &r, 400, "malformed",
                           "duration_s is not a number");
    rt_test_channel_fails (s_run ("missing_from.json", &r), &r, 400, "malformed", "from missing");
    rt_test_channel_fails (s_run ("malformed.json", &r), &r, 400, "malformed", "not JSON");
    rt_test_channel_fails (s_signed (SECRET, "", 0, &r), &r, 400, "malformed", "not JSON");
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        rt_test_channel_fails (s_signed (SECRET, bodies[i][0], strlen (bodies[i][0]), &r), &r, 400,
                               "malformed", bodies[i][1]);
}

/* Posts a cut or flipped event, signed so that the parser sees it. */
static int
s_post (void *arg, const char *body, size_t len, ingest_result_t *result)
{
    (void)arg;
    return s_signed (SECRET, body, len, result);
}

static void
test_truncations_and_flips (void **state)
{
    static const char *const names[] = {"missed.json", "recording.json", "outbound_missed.json"};
    (void)state;
    rt_test_channel_sweep (s_ch.fixtures, names, sizeof names / sizeof names[0], s_post, NULL,
                           false);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_missed_asks_for_call_back),
        cmocka_unit_test (test_signature_from_python),
        cmocka_unit_test (test_each_step_is_its_own_item),
        cmocka_unit_test (test_answered_ended_recording),
        cmocka_unit_test (test_outbound_customer_is_the_called),
        cmocka_unit_test (test_national_number_and_no_timestamp),
        cmocka_unit_test (test_shared_secret),
        cmocka_unit_test (test_signature_decides),
        cmocka_unit_test (test_unsigned_tampered_wrong_key),
        cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_method_and_content_type),
        cmocka_unit_test (test_bad_events),
        cmocka_unit_test (test_truncations_and_flips),
    };
    return cmocka_run_group_tests (tests, rt_test_channel_setup, rt_test_channel_teardown);
}
