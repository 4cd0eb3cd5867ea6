/*
 * test_ingest_binotel: binotel_handle against Binotel's call webhooks
 * (tests/fixtures/ingest/binotel).
 *
 * What a user would notice: each call step as an InboundMessage with its
 * call, a missed incoming call asking for a call-back, numbers in E.164,
 * one external id per request type of a call, requests from outside
 * Binotel's servers or without the URL's token refused 403, requests that
 * keep nothing answered 200 with no items, and a clear 400 for each bad
 * field. Leaks are caught under AddressSanitizer (RETAIN_SANITIZE=ON).
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

#define SECRET   "binotel-test-token-5c1f"
#define PREVIOUS "binotel-old-token-77aa"
#define NOW_MS   1718009999000LL
#define FORM     "application/x-www-form-urlencoded"
#define BINOTEL  "194.88.219.81" /* sip11.binotel.com */

static json_t *s_default; /* no allow_from: Binotel's servers */

/* Calls the handler with the given config, peer, query and extra header. */
static int
s_call_full (const json_t *config, const char *previous, const char *peer, const char *query,
             const char *ctype, const char *xff, const char *body, size_t len,
             ingest_result_t *result)
{
    ingest_inbox_t inbox = {"shop-binotel", RETAIN__V1__CHANNEL__PHONE, SECRET, previous, config};
    ingest_header_t headers[3];
    ingest_request_t req;
    size_t n = 0;
    if (ctype)
        headers[n++] = (ingest_header_t){"Content-Type", ctype};
    if (xff)
        headers[n++] = (ingest_header_t){"X-Forwarded-For", xff};
    memset (&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/hooks/binotel/shop-binotel";
    req.query = query;
    req.headers = headers;
    req.nheaders = n;
    req.body = (const uint8_t *)body;
    req.body_len = len;
    req.peer = peer;
    req.public_url = "https://hooks.example.com/hooks/binotel/shop-binotel";
    req.now_ms = NOW_MS;
    memset (result, 0, sizeof *result);
    return binotel_handle (&inbox, &req, result);
}

static int
s_post (const char *body, ingest_result_t *result)
{
    return s_call_full (s_default, "", BINOTEL, "token=" SECRET, FORM, NULL, body, strlen (body),
                        result);
}

static int
s_run (const char *name, ingest_result_t *result)
{
    char rel[256];
    size_t len;
    char *body;
    int rc;
    snprintf (rel, sizeof rel, "ingest/binotel/%s", name);
    body = rt_test_fixture (rel, &len);
    rc = s_call_full (s_default, "", BINOTEL, "token=" SECRET, FORM, NULL, body, len, result);
    free (body);
    return rc;
}

static Retain__V1__InboundMessage *
s_one (int rc, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg;
    assert_int_equal (rc, 0);
    assert_int_equal (result->status, 0);
    assert_int_equal (result->count, 1);
    assert_string_equal (result->items[0].type, "InboundMessage");
    msg = (Retain__V1__InboundMessage *)result->items[0].msg;
    assert_string_equal (result->items[0].external_id, msg->external_id);
    assert_non_null (msg->call);
    assert_int_equal (msg->channel, RETAIN__V1__CHANNEL__PHONE);
    return msg;
}

static void
s_none (int rc, ingest_result_t *result)
{
    assert_int_equal (rc, 0);
    assert_int_equal (result->status, 0);
    assert_int_equal (result->count, 0);
}

static void
s_assert_fails (int rc, ingest_result_t *result, int status, const char *label, const char *reason)
{
    assert_int_equal (rc, -1);
    assert_int_equal (result->status, status);
    assert_string_equal (result->label, label);
    if (!strstr (result->reason, reason))
        fail_msg ("reason \"%s\" does not mention \"%s\"", result->reason, reason);
    if (strstr (result->reason, SECRET))
        fail_msg ("reason \"%s\" shows the token", result->reason);
    assert_int_equal (result->count, 0);
    ingest_result_reset (result);
}

/* --- call steps --- */

static void
test_received_and_answered (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *msg;
    (void)state;
    msg = s_one (s_run ("received.form", &r), &r);
    assert_string_equal (msg->event, "call_started");
    assert_string_equal (msg->external_id, "2876543210:receivedTheCall");
    assert_string_equal (msg->phone, "+380671234567");
    assert_string_equal (msg->external_user_id, "+380671234567");
    assert_string_equal (r.items[0].key, "phone:shop-binotel:+380671234567");
    assert_string_equal (msg->thread_id, "2876543210");
    assert_string_equal (msg->call->call_id, "2876543210");
    assert_string_equal (msg->call->direction, "inbound");
    assert_string_equal (msg->call->from, "+380671234567");
    assert_string_equal (msg->call->to, "0443334455");
    assert_string_equal (msg->text, "");
    assert_int_equal (msg->sent_at, NOW_MS);
    ingest_result_reset (&r);

    msg = s_one (s_run ("answered.form", &r), &r);
    assert_string_equal (msg->event, "call_answered");
    assert_string_equal (msg->external_id, "2876543210:answeredTheCall");
    assert_string_equal (msg->call->operator_id, "902");
    ingest_result_reset (&r);
}

static void
test_hangup (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *msg;
    (void)state;
    msg = s_one (s_run ("hangup_missed.form", &r), &r);
    assert_string_equal (msg->event, "call_missed");
    assert_string_equal (msg->external_id, "2876543210:hangupTheCall");
    assert_string_equal (msg->text, "Missed call from +380671234567: please call back");
    assert_int_equal (msg->call->duration_ms, 0);
    ingest_result_reset (&r);

    /* The SDK's shape names no number: nothing about a customer to keep. */
    s_none (s_run ("hangup_bare.form", &r), &r);
    ingest_result_reset (&r);

    /* Answered and talked: ended, no call-back. */
    msg = s_one (s_post ("requestType=hangupTheCall&generalCallID=9&billsec=12&disposition=ANSWER"
                         "&externalNumber=0671234567",
                         &r),
                 &r);
    assert_string_equal (msg->event, "call_ended");
    assert_string_equal (msg->text, "");
    assert_int_equal (msg->call->duration_ms, 12000);
    ingest_result_reset (&r);

    /* Every missed disposition, VM* by prefix; an unknown one ended. */
    {
        static const char *const missed[] = {"NOANSWER",   "BUSY", "CANCEL",    "CHANUNAVAIL",
                                             "CONGESTION", "VM",   "VM-SUCCESS"};
        char body[256];
        size_t i;
        for (i = 0; i < sizeof missed / sizeof *missed; i++) {
            snprintf (body, sizeof body,
                      "requestType=hangupTheCall&generalCallID=9&billsec=0&disposition=%s"
                      "&externalNumber=0671234567&callType=0",
                      missed[i]);
            msg = s_one (s_post (body, &r), &r);
            if (strcmp (msg->event, "call_missed") != 0)
                fail_msg ("%s: %s", missed[i], msg->event);
            ingest_result_reset (&r);
        }
        msg = s_one (s_post ("requestType=hangupTheCall&generalCallID=9&billsec=0"
                             "&disposition=WHATEVER&externalNumber=0671234567",
                             &r),
                     &r);
        assert_string_equal (msg->event, "call_ended");
        ingest_result_reset (&r);
    }
}

static void
test_completed (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *msg;
    (void)state;
    msg = s_one (s_run ("completed.form", &r), &r);
    assert_string_equal (msg->event, "call_ended");
    assert_string_equal (msg->external_id, "2876543211:apiCallCompleted");
    assert_string_equal (msg->phone, "+380671234567");
    assert_int_equal (msg->call->duration_ms, 65000);
    assert_string_equal (msg->call->operator_id, "902");
    assert_string_equal (msg->call->to, "0443334455");
    assert_string_equal (msg->display_name, "\xd0\x86\xd0\xb2\xd0\xb0\xd0\xbd");
    assert_int_equal (msg->sent_at, 1718000000000LL);
    ingest_result_reset (&r);

    msg = s_one (s_run ("completed_missed.form", &r), &r);
    assert_string_equal (msg->event, "call_missed");
    assert_string_equal (msg->phone, "+380501112233");
    assert_string_equal (msg->text, "Missed call from +380501112233: please call back");
    ingest_result_reset (&r);

    /* An outgoing call nobody picked up asks nothing of the customer. */
    msg = s_one (s_run ("completed_outgoing_noanswer.form", &r), &r);
    assert_string_equal (msg->event, "call_ended");
    assert_string_equal (msg->call->direction, "outbound");
    assert_string_equal (msg->call->to, "+380671234567");
    assert_string_equal (msg->call->from, "902");
    assert_string_equal (msg->text, "");
    ingest_result_reset (&r);
}

static void
test_nothing_kept (void **state)
{
    ingest_result_t r;
    (void)state;
    s_none (s_run ("settings.form", &r), &r);
    assert_non_null (r.response);
    assert_string_equal (r.response, "{}");
    assert_string_equal (r.response_type, "application/json");
    ingest_result_reset (&r);
    s_none (s_run ("transferred.form", &r), &r);
    ingest_result_reset (&r);
    s_none (s_run ("unknown_type.form", &r), &r);
    ingest_result_reset (&r);
    /* An internal call: no externalNumber. */
    s_none (
        s_post ("requestType=receivedTheCall&generalCallID=5&callType=0&internalNumber=901", &r),
        &r);
    ingest_result_reset (&r);
}

static void
test_not_a_phone (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *msg;
    (void)state;
    /* Kept as Binotel sent it, like the generic PBX format does. */
    msg = s_one (s_post ("requestType=receivedTheCall&generalCallID=5&callType=0"
                         "&externalNumber=anonymous",
                         &r),
                 &r);
    assert_string_equal (msg->phone, "anonymous");
    ingest_result_reset (&r);
}

/* --- refusals --- */

static void
test_source_and_token (void **state)
{
    const char *body = "requestType=receivedTheCall&generalCallID=5&externalNumber=0671234567";
    size_t len = strlen (body);
    ingest_result_t r;
    json_t *open = json_pack ("{s:[]}", "allow_from");
    json_t *lan = json_pack ("{s:[s,s]}", "allow_from", "10.1.0.0/16", "2001:db8::/32");
    json_t *proxied =
        json_pack ("{s:[s], s:[s]}", "allow_from", BINOTEL, "trusted_proxies", "127.0.0.1");
    (void)state;

    s_assert_fails (
        s_call_full (s_default, "", "203.0.113.9", "token=" SECRET, FORM, NULL, body, len, &r), &r,
        403, "source_not_allowed", "203.0.113.9");
    s_assert_fails (s_call_full (s_default, "", NULL, "token=" SECRET, FORM, NULL, body, len, &r),
                    &r, 403, "source_not_allowed", "unknown");
    s_assert_fails (s_call_full (s_default, "", BINOTEL, "token=wrong", FORM, NULL, body, len, &r),
                    &r, 403, "bad_token", "does not match");
    s_assert_fails (s_call_full (s_default, "", BINOTEL, "", FORM, NULL, body, len, &r), &r, 403,
                    "bad_token", "no token");
    /* A prefix of the secret is not the secret. */
    s_assert_fails (
        s_call_full (s_default, "", BINOTEL, "token=binotel-test", FORM, NULL, body, len, &r), &r,
        403, "bad_token", "does not match");
    /* The previous secret during a rotation; IPv4-mapped IPv6 peers. */
    s_one (s_call_full (s_default, PREVIOUS, "::ffff:" BINOTEL, "token=" PREVIOUS, FORM, NULL, body,
                        len, &r),
           &r);
    ingest_result_reset (&r);
    /* allow_from: [] is any address; ranges of either family. */
    s_one (s_call_full (open, "", "203.0.113.9", "token=" SECRET, FORM, NULL, body, len, &r), &r);
    ingest_result_reset (&r);
    s_one (s_call_full (lan, "", "10.1.200.3", "token=" SECRET, FORM, NULL, body, len, &r), &r);
    ingest_result_reset (&r);
    s_one (s_call_full (lan, "", "2001:db8::7", "token=" SECRET, FORM, NULL, body, len, &r), &r);
    ingest_result_reset (&r);
    s_assert_fails (s_call_full (lan, "", "10.2.0.1", "token=" SECRET, FORM, NULL, body, len, &r),
                    &r, 403, "source_not_allowed", "allow_from");
    s_assert_fails (s_call_full (lan, "", BINOTEL, "token=" SECRET, FORM, NULL, body, len, &r), &r,
                    403, "source_not_allowed", "allow_from");
    /* Behind a trusted proxy: the rightmost untrusted hop decides; one the
     * client wrote itself further left does not. */
    s_one (s_call_full (proxied, "", "127.0.0.1", "token=" SECRET, FORM, "1.2.3.4, " BINOTEL, body,
                        len, &r),
           &r);
    ingest_result_reset (&r);
    s_assert_fails (s_call_full (proxied, "", "127.0.0.1", "token=" SECRET, FORM,
                                 BINOTEL ", 1.2.3.4", body, len, &r),
                    &r, 403, "source_not_allowed", "allow_from");
    /* X-Forwarded-For from a peer that is no trusted proxy is ignored. */
    s_assert_fails (
        s_call_full (proxied, "", "198.51.100.1", "token=" SECRET, FORM, BINOTEL, body, len, &r),
        &r, 403, "source_not_allowed", "allow_from");
    json_decref (open);
    json_decref (lan);
    json_decref (proxied);
}

static void
test_bad_input (void **state)
{
    ingest_result_t r;
    (void)state;
    s_assert_fails (s_post ("generalCallID=5&externalNumber=0671234567", &r), &r, 400, "malformed",
                    "requestType missing");
    s_assert_fails (s_post ("requestType=receivedTheCall&externalNumber=0671234567", &r), &r, 400,
                    "malformed", "generalCallID missing");
    s_assert_fails (s_post ("requestType=apiCallCompleted&generalCallID=5", &r), &r, 400,
                    "malformed", "callDetails[generalCallID missing");
    s_assert_fails (s_post ("requestType=hangupTheCall&generalCallID=5&billsec=1.5"
                            "&disposition=ANSWER&externalNumber=0671234567",
                            &r),
                    &r, 400, "malformed", "billsec");
    s_assert_fails (s_post ("requestType=hangupTheCall&generalCallID=5&billsec=-3"
                            "&disposition=ANSWER&externalNumber=0671234567",
                            &r),
                    &r, 400, "malformed", "billsec");
    s_assert_fails (s_post ("requestType=receivedTheCall&generalCallID=5&callType=2"
                            "&externalNumber=0671234567",
                            &r),
                    &r, 400, "malformed", "callType");
    s_assert_fails (s_post ("requestType=receivedTheCall&generalCallID=5%3Adrop"
                            "&externalNumber=0671234567",
                            &r),
                    &r, 400, "malformed", "generalCallID");
    s_assert_fails (s_post ("requestType=receivedTheCall&generalCallID=5&externalNumber=%zz", &r),
                    &r, 400, "malformed", "not a form");
    s_assert_fails (s_call_full (s_default, "", BINOTEL, "token=" SECRET, "application/json", NULL,
                                 "{}", 2, &r),
                    &r, 415, "unsupported_media_type", "x-www-form-urlencoded");
}

static void
test_config_check (void **state)
{
    char note[256];
    json_t *c;
    (void)state;
    c = json_pack ("{}");
    assert_int_equal (binotel_config_check (c, note, sizeof note), 0);
    json_decref (c);
    c = json_pack ("{s:[]}", "allow_from");
    assert_int_equal (binotel_config_check (c, note, sizeof note), 1);
    assert_non_null (strstr (note, "any address"));
    json_decref (c);
    c = json_pack ("{s:[s,s]}", "allow_from", "10.0.0.0/8", "::1");
    assert_int_equal (binotel_config_check (c, note, sizeof note), 0);
    json_decref (c);
    c = json_pack ("{s:[s]}", "allow_from", "10.0.0.0/33");
    assert_int_equal (binotel_config_check (c, note, sizeof note), -1);
    assert_non_null (strstr (note, "allow_from[0]"));
    json_decref (c);
    c = json_pack ("{s:s}", "trusted_proxies", "127.0.0.1");
    assert_int_equal (binotel_config_check (c, note, sizeof note), -1);
    json_decref (c);
}

static int
s_setup (void **state)
{
    (void)state;
    s_default = json_object ();
    return s_default ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void)state;
    json_decref (s_default);
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_received_and_answered),
        cmocka_unit_test (test_hangup),
        cmocka_unit_test (test_completed),
        cmocka_unit_test (test_nothing_kept),
        cmocka_unit_test (test_not_a_phone),
        cmocka_unit_test (test_source_and_token),
        cmocka_unit_test (test_bad_input),
        cmocka_unit_test (test_config_check),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
