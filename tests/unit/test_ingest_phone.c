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

#include "channel.h"
#include "rt_test.h"
#include "rt_crypto.h"

#define SECRET   "pbx-test-secret-91ab"
#define PREVIOUS "pbx-old-secret-4411"
#define NOW_MS   1718009999000LL

static json_t *s_config;

static char *
s_fixture (const char *name, size_t *len)
{
    char rel[256];
    snprintf (rel, sizeof rel, "ingest/phone/%s", name);
    return rt_test_fixture (rel, len);
}

static ingest_inbox_t
s_inbox (const char *secret, const char *previous)
{
    ingest_inbox_t inbox = {"office-pbx", RETAIN__V1__CHANNEL__PHONE, secret, previous, s_config};
    return inbox;
}

/* "sha256=<hex HMAC>" of body under key into out (72 bytes). */
static void
s_sign (const char *key, const char *body, size_t len, char *out)
{
    uint8_t mac[RT_SHA256_LEN];
    rt_hmac_sha256 (key, strlen (key), body, len, mac);
    memcpy (out, "sha256=", 7);
    rt_hex_encode (mac, sizeof mac, out + 7);
}

/* Calls the handler; sig and shared NULL leave their headers out. */
static int
s_call (const ingest_inbox_t *inbox, const char *method, const char *ctype, const char *sig,
        const char *shared, const char *body, size_t len, ingest_result_t *result)
{
    ingest_header_t headers[4];
    size_t n = 0;
    ingest_request_t req;
    if (ctype)
        headers[n++] = (ingest_header_t){"Content-Type", ctype};
    if (sig)
        headers[n++] = (ingest_header_t){"X-Retain-Signature", sig};
    if (shared)
        headers[n++] = (ingest_header_t){"X-Retain-Secret", shared};
    memset (&req, 0, sizeof req);
    req.method = method;
    req.path = "/hooks/phone/office-pbx";
    req.query = "";
    req.headers = headers;
    req.nheaders = n;
    req.body = (const uint8_t *)body;
    req.body_len = len;
    req.public_url = "https://hooks.example.com/hooks/phone/office-pbx";
    req.now_ms = NOW_MS;
    memset (result, 0, sizeof *result);
    return phone_handle (inbox, &req, result);
}

static int
s_signed (const char *key, const char *body, size_t len, ingest_result_t *result)
{
    ingest_inbox_t inbox = s_inbox (SECRET, "");
    char sig[80];
    s_sign (key, body, len, sig);
    return s_call (&inbox, "POST", "application/json", sig, NULL, body, len, result);
}

static int
s_run (const char *name, ingest_result_t *result)
{
    size_t len;
    char *body = s_fixture (name, &len);
    int rc = s_signed (SECRET, body, len, result);
    free (body);
    return rc;
}

static Retain__V1__InboundMessage *
s_one (int rc, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg;
    uint8_t *buf;
    size_t len;
    assert_int_equal (rc, 0);
    assert_int_equal (result->status, 0);
    assert_int_equal (result->count, 1);
    assert_string_equal (result->items[0].type, "InboundMessage");
    msg = (Retain__V1__InboundMessage *)result->items[0].msg;
    assert_string_equal (result->items[0].external_id, msg->external_id);
    assert_non_null (msg->call);
    len = protobuf_c_message_get_packed_size (&msg->base);
    buf = malloc (len + 1);
    assert_int_equal (protobuf_c_message_pack (&msg->base, buf), len);
    free (buf);
    return msg;
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
    ingest_inbox_t inbox = s_inbox (SECRET, "");
    ingest_result_t r;
    size_t len, siglen;
    char *body = s_fixture ("missed.json", &len);
    char *sig = s_fixture ("missed.json.sig", &siglen);
    (void)state;
    while (siglen > 0 && (sig[siglen - 1] == '\n' || sig[siglen - 1] == '\r'))
        sig[--siglen] = '\0';
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
    ingest_inbox_t inbox = s_inbox (SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = s_fixture ("missed.json", &len);
    (void)state;
    s_one (s_call (&inbox, "POST", "application/json", NULL, SECRET, body, len, &r), &r);
    ingest_result_reset (&r);
    s_assert_fails (s_call (&inbox, "POST", "application/json", NULL, SECRET "!", body, len, &r),
                    &r, 403, "bad_signature", "X-Retain-Secret does not match");
    s_assert_fails (s_call (&inbox, "POST", "application/json", NULL, "pbx", body, len, &r), &r,
                    403, "bad_signature", "X-Retain-Secret does not match");
    free (body);
}

static void
test_signature_decides (void **state)
{
    ingest_inbox_t inbox = s_inbox (SECRET, "");
    ingest_result_t r;
    char sig[80];
    size_t len;
    char *body = s_fixture ("missed.json", &len);
    (void)state;
    /* A wrong signature is not rescued by a right shared secret. */
    s_sign ("not-the-secret", body, len, sig);
    s_assert_fails (s_call (&inbox, "POST", "application/json", sig, SECRET, body, len, &r), &r,
                    403, "bad_signature", "X-Retain-Signature does not match");
    free (body);
}

static void
test_unsigned_tampered_wrong_key (void **state)
{
    ingest_inbox_t inbox = s_inbox (SECRET, "");
    ingest_result_t r;
    char sig[80];
    size_t len;
    char *body = s_fixture ("missed.json", &len);
    (void)state;
    s_assert_fails (s_call (&inbox, "POST", "application/json", NULL, NULL, body, len, &r), &r, 401,
                    "missing_signature", "neither");
    s_assert_fails (s_call (&inbox, "POST", "application/json", "", "", body, len, &r), &r, 401,
                    "missing_signature", "neither");

    /* Signed, then the caller's number changed. */
    s_sign (SECRET, body, len, sig);
    *strstr (body, "+380501234567") = '-';
    s_assert_fails (s_call (&inbox, "POST", "application/json", sig, NULL, body, len, &r), &r, 403,
                    "bad_signature", "does not match the body");
    *strstr (body, "-380501234567") = '+';

    s_assert_fails (s_signed ("another-pbx", body, len, &r), &r, 403, "bad_signature",
                    "does not match the body");
    /* Malformed headers. */
    s_assert_fails (s_call (&inbox, "POST", "application/json", sig + 7, NULL, body, len, &r), &r,
                    403, "bad_signature", "sha256=");
    s_assert_fails (s_call (&inbox, "POST", "application/json", "sha1=abcdef", NULL, body, len, &r),
                    &r, 403, "bad_signature", "sha256=");
    s_assert_fails (s_call (&inbox, "POST", "application/json", "sha256=", NULL, body, len, &r), &r,
                    403, "bad_signature", "sha256=");
    sig[7 + 63] = 'g';
    s_assert_fails (s_call (&inbox, "POST", "application/json", sig, NULL, body, len, &r), &r, 403,
                    "bad_signature", "sha256=");
    free (body);
}

static void
test_rotation (void **state)
{
    ingest_inbox_t rotating = s_inbox (SECRET, PREVIOUS);
    ingest_inbox_t rotated = s_inbox (SECRET, "");
    ingest_inbox_t none = s_inbox ("", "");
    ingest_result_t r;
    char sig[80];
    size_t len;
    char *body = s_fixture ("missed.json", &len);
    (void)state;
    s_sign (PREVIOUS, body, len, sig);
    s_one (s_call (&rotating, "POST", "application/json", sig, NULL, body, len, &r), &r);
    ingest_result_reset (&r);
    s_one (s_call (&rotating, "POST", "application/json", NULL, PREVIOUS, body, len, &r), &r);
    ingest_result_reset (&r);
    s_assert_fails (s_call (&rotated, "POST", "application/json", sig, NULL, body, len, &r), &r,
                    403, "bad_signature", "does not match");
    s_assert_fails (s_call (&rotated, "POST", "application/json", NULL, PREVIOUS, body, len, &r),
                    &r, 403, "bad_signature", "does not match");
    /* No secret configured: an HMAC under "" proves nothing. */
    s_sign ("", body, len, sig);
    s_assert_fails (s_call (&none, "POST", "application/json", sig, NULL, body, len, &r), &r, 403,
                    "bad_signature", "does not match");
    free (body);
}

/* --- the request's shape --- */

static void
test_method_and_content_type (void **state)
{
    ingest_inbox_t inbox = s_inbox (SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = s_fixture ("missed.json", &len);
    (void)state;
    s_assert_fails (s_call (&inbox, "GET", "application/json", NULL, SECRET, body, len, &r), &r,
                    405, "method_not_allowed", "GET");
    s_assert_fails (s_call (&inbox, "POST", "text/xml", NULL, SECRET, body, len, &r), &r, 415,
                    "unsupported_media_type", "application/json");
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
    s_assert_fails (s_run ("unknown_event.json", &r), &r, 400, "malformed",
                    "unknown event \"transferred\"");
    s_assert_fails (s_run ("recording_without_url.json", &r), &r, 400, "malformed",
                    "recording_url missing");
    s_assert_fails (s_run ("wrong_types.json", &r), &r, 400, "malformed",
                    "duration_s is not a number");
    s_assert_fails (s_run ("missing_from.json", &r), &r, 400, "malformed", "from missing");
    s_assert_fails (s_run ("malformed.json", &r), &r, 400, "malformed", "not JSON");
    s_assert_fails (s_signed (SECRET, "", 0, &r), &r, 400, "malformed", "not JSON");
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        s_assert_fails (s_signed (SECRET, bodies[i][0], strlen (bodies[i][0]), &r), &r, 400,
                        "malformed", bodies[i][1]);
}

static void
test_truncations_and_flips (void **state)
{
    static const char *names[] = {"missed.json", "recording.json", "outbound_missed.json"};
    size_t k;
    (void)state;
    for (k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t len, i;
        char *body = s_fixture (names[k], &len);
        for (i = 0; i < len; i++) {
            ingest_result_t r;
            int rc = s_signed (SECRET, body, i, &r);
            assert_true (rc == 0 || (rc == -1 && r.status == 400 && r.count == 0));
            ingest_result_reset (&r);
        }
        for (i = 0; i < len; i++) {
            static const char flips[] = {'"', '{', '}', '[', ']', ':', ',', '0', '-', 'x', '\\'};
            ingest_result_t r;
            char saved = body[i];
            int rc;
            body[i] = flips[i % sizeof flips];
            rc = s_signed (SECRET, body, len, &r);
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
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
