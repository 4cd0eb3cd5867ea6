/*
 * test_ingest_binotel_hooks: Binotel's call webhooks through a real retain-ingestd
 * and retain-busd.
 *
 * Two inboxes of (phone, binotel): one open to any address (allow_from [],
 * as behind a proxy), one allowing only 10.0.0.0/8, which excludes the
 * test's 127.0.0.1. What a user would notice: an allowed request answered
 * 200 and its event on the bus, a wrong token and a stranger's address
 * refused 403 and counted, a retry stored once, a missed call on the bus as
 * call_missed with its call, and a body over the server's limit refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

#define TOKEN "binotel-int-token-3e9d"
#define FORM  "Content-Type: application/x-www-form-urlencoded"

static rt_test_ingest_t s_t;

static long
s_post (const char *path, const char *body, rt_test_reply_t *reply)
{
    const char *headers[] = {FORM, NULL};
    return rt_test_http_request (s_t.ingestd.http_port, "POST", path, body, strlen (body), headers,
                                 reply);
}

static int
s_setup (void **state)
{
    const char *const extra[] = {"--max-body", "64K", NULL};
    *state = &s_t;
    rt_test_ingest_start (&s_t, "ingest_binotel", NULL, extra);
    rt_test_pg_exec (s_t.conn, "INSERT INTO ingest.inboxes (id, channel, provider, secret, config) "
                               "VALUES ('bino-open', 'phone', 'binotel', '" TOKEN "', "
                               "'{\"allow_from\": []}'), "
                               "('bino-lan', 'phone', 'binotel', '" TOKEN "', "
                               "'{\"allow_from\": [\"10.0.0.0/8\"]}')");
    usleep (1500000); /* ingestd reloads its inboxes every second */
    return 0;
}

static void
test_allowed_and_refused (void **state)
{
    rt_test_reply_t reply;
    const char *body = "requestType=receivedTheCall&generalCallID=4400001&callType=0"
                       "&externalNumber=0671234567&didNumber=0443334455";
    (void)state;
    assert_int_equal (s_post ("/hooks/binotel/bino-open?token=" TOKEN, body, &reply), 200);
    assert_int_equal (rt_test_ingest_wait_events (s_t.conn, "phone:bino-open:+380671234567",
                                                  "InboundMessage", 1, 10000),
                      1);

    assert_int_equal (s_post ("/hooks/binotel/bino-open?token=nope", body, &reply), 403);
    assert_non_null (strstr (reply.body, "bad-token"));
    assert_null (strstr (reply.body, TOKEN));
    assert_int_equal (s_post ("/hooks/binotel/bino-open", body, &reply), 403);
    assert_non_null (strstr (reply.body, "bad-token"));
    assert_int_equal (s_post ("/hooks/binotel/bino-lan?token=" TOKEN, body, &reply), 403);
    assert_non_null (strstr (reply.body, "source-not-allowed"));
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_ingest_rejected_total{channel=\"phone\",reason="
                                 "\"bad_token\"}") >= 2);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_ingest_rejected_total{channel=\"phone\",reason="
                                 "\"source_not_allowed\"}") >= 1);
    /* The generic PBX route does not serve a Binotel inbox. */
    assert_int_equal (s_post ("/hooks/phone/bino-open?token=" TOKEN, body, &reply), 404);
}

static void
test_retry_stored_once (void **state)
{
    const char *body = "requestType=answeredTheCall&generalCallID=4400002&callType=0"
                       "&externalNumber=0671234568&internalNumber=902";
    (void)state;
    assert_int_equal (s_post ("/hooks/binotel/bino-open?token=" TOKEN, body, NULL), 200);
    assert_int_equal (s_post ("/hooks/binotel/bino-open?token=" TOKEN, body, NULL), 200);
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.messages WHERE "
                                                 "external_id = '4400002:answeredTheCall'"),
                      1);
    rt_test_ingest_wait_drained (s_t.conn);
    assert_int_equal (rt_test_ingest_wait_events (s_t.conn, "phone:bino-open:+380671234568",
                                                  "InboundMessage", 1, 10000),
                      1);
}

static void
test_missed_call (void **state)
{
    Retain__V1__InboundMessage **msgs;
    size_t n, i, found = 0;
    const char *body =
        "requestType=apiCallCompleted&callDetails%5BgeneralCallID%5D=4400003"
        "&callDetails%5BstartTime%5D=1718000300&callDetails%5BcallType%5D=0"
        "&callDetails%5Bbillsec%5D=0&callDetails%5Bdisposition%5D=BUSY"
        "&callDetails%5BexternalNumber%5D=0501112233&callDetails%5BpbxNumberData%5D%5Bnumber%5D="
        "0443334455";
    (void)state;
    assert_int_equal (s_post ("/hooks/binotel/bino-open?token=" TOKEN, body, NULL), 200);
    assert_int_equal (rt_test_ingest_wait_events (s_t.conn, "phone:bino-open:+380501112233",
                                                  "InboundMessage", 1, 10000),
                      1);
    msgs = rt_test_ingest_messages (s_t.conn, &n);
    for (i = 0; i < n; i++) {
        if (strcmp (msgs[i]->external_id, "4400003:apiCallCompleted") != 0)
            continue;
        found++;
        assert_string_equal (msgs[i]->event, "call_missed");
        assert_string_equal (msgs[i]->phone, "+380501112233");
        assert_non_null (msgs[i]->call);
        assert_string_equal (msgs[i]->call->call_id, "4400003");
        assert_string_equal (msgs[i]->call->direction, "inbound");
        assert_string_equal (msgs[i]->text, "Missed call from +380501112233: please call back");
    }
    rt_test_ingest_messages_free (msgs, n);
    assert_int_equal (found, 1);
}

static void
test_oversized_and_settings (void **state)
{
    rt_test_reply_t reply;
    size_t len = 70 * 1024;
    char *big = malloc (len + 1);
    const char *headers[] = {FORM, NULL};
    (void)state;
    assert_non_null (big);
    memset (big, 'a', len);
    memcpy (big, "requestType=receivedTheCall&x=", 30);
    big[len] = '\0';
    assert_int_equal (rt_test_http_request (s_t.ingestd.http_port, "POST",
                                            "/hooks/binotel/bino-open?token=" TOKEN, big, len,
                                            headers, &reply),
                      413);
    free (big);
    assert_int_equal (s_post ("/hooks/binotel/bino-open?token=" TOKEN,
                              "requestType=apiCallSettings&generalCallID=4400004&callType=0"
                              "&externalNumber=0671234567",
                              &reply),
                      200);
    assert_string_equal (reply.body, "{}");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_allowed_and_refused),
        cmocka_unit_test (test_retry_stored_once),
        cmocka_unit_test (test_missed_call),
        cmocka_unit_test (test_oversized_and_settings),
    };
    return cmocka_run_group_tests (tests, s_setup, rt_test_ingest_teardown);
}
