/*
 * retain-ingestd end to end: a webhook answered 2xx is on the bus once; a
 * provider's retry changes nothing; every bad request gets its status; when
 * PostgreSQL cannot commit, the answer is 503 (never a 2xx for something
 * that could be lost), and the provider's retry then goes through. A text
 * that is a STOP keyword reaches the bus marked as one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "rt_bus.h"
#include "rt_test.h"
#include "rt_test_ingest.h"
#include "retain/v1/message.pb-c.h"

#define SECRET "tg-secret-123"

static rt_test_ingest_t s_t;

static int
s_setup (void **state)
{
    static const rt_test_inbox_t inboxes[] = {
        {"shop-bot", "telegram", SECRET, "{}"},
        {"site", "webchat", "chat-secret", "{\"allowed_origins\": [\"https://shop.example\"]}"},
        {"shop-sms", "sms", "twilio-token", "{}"},
    };
    const char *extra[] = {"--request-timeout=3s", "--max-body=64k", NULL};
    *state = &s_t;
    rt_test_ingest_start (&s_t, "ingest_hooks", "", extra);
    rt_test_ingest_inboxes (&s_t, inboxes, sizeof inboxes / sizeof *inboxes);
    return 0;
}

/* Sends body to path with the given extra headers (NULL-terminated);
 * returns the status and the answer in out (may be NULL). */
static long
s_post (const char *method, const char *path, const char *body, size_t len,
        const char *const headers[], rt_test_reply_t *out)
{
    return rt_test_http_request (s_t.ingestd.http_port, method, path, body, len, headers, out);
}

/* Asserts that body is RFC 9457 problem details for status, with a reason. */
static void
s_assert_problem (const char *body, int status)
{
    json_t *json = json_loads (body, 0, NULL);
    const char *type, *detail;
    if (!json)
        fail_msg ("not problem details: %s", body);
    assert_int_equal (json_integer_value (json_object_get (json, "status")), status);
    type = json_string_value (json_object_get (json, "type"));
    detail = json_string_value (json_object_get (json, "detail"));
    assert_non_null (type);
    assert_int_equal (strncmp (type, "https://retain.dev/problems/", 28), 0);
    assert_non_null (detail);
    assert_true (detail[0] != '\0');
    json_decref (json);
}

static long
s_telegram (const char *update, const char *secret)
{
    char header[128];
    const char *headers[] = {"Content-Type: application/json", header, NULL};
    snprintf (header, sizeof header, "X-Telegram-Bot-Api-Secret-Token: %s", secret);
    return s_post ("POST", "/hooks/telegram/shop-bot", update, strlen (update), headers, NULL);
}

static char *
s_update (long update_id, long message_id, const char *text)
{
    char *json = NULL;
    if (asprintf (&json,
                  "{\"update_id\":%ld,\"message\":{\"message_id\":%ld,\"from\":{\"id\":42,"
                  "\"is_bot\":false,\"first_name\":\"Олена\",\"last_name\":\"Коваль\"},"
                  "\"chat\":{\"id\":42,\"type\":\"private\",\"first_name\":\"Олена\"},"
                  "\"date\":1795500000,\"text\":\"%s\"}}",
                  update_id, message_id, text) < 0)
        return NULL;
    return json;
}

static long long
s_wait_events (long long want, int timeout_ms)
{
    return rt_test_ingest_wait_events (s_t.conn, NULL, "InboundMessage", want, timeout_ms);
}

static void
test_message_lands_once (void **state)
{
    (void)state;
    char *update = s_update (1001, 7, "Де моє замовлення?");
    /* What was answered 2xx so far: ingest's rows are written before the
     * answer; the log may still be draining the outbox. */
    long long before = rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.messages");
    PGresult *res;
    Retain__V1__InboundMessage *msg;
    size_t len;
    unsigned char *payload;

    assert_int_equal (s_telegram (update, SECRET), 200);
    /* 2xx means durable: the outbox or the log already has it. */
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.messages WHERE "
                                                 "external_id = '42:7'"),
                      1);
    assert_int_equal (s_wait_events (before + 1, 5000), before + 1);
    /* The provider retries: 200, nothing new. */
    assert_int_equal (s_telegram (update, SECRET), 200);
    usleep (300000);
    assert_int_equal (s_wait_events (before + 1, 0), before + 1);

    res = PQexec (s_t.conn, "SELECT payload, key FROM bus.events WHERE type = 'InboundMessage' "
                            "ORDER BY seq DESC LIMIT 1");
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    payload = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, 0, 0), &len);
    msg = retain__v1__inbound_message__unpack (NULL, len, payload);
    assert_non_null (msg);
    assert_string_equal (msg->text, "Де моє замовлення?");
    assert_string_equal (msg->inbox, "shop-bot");
    assert_string_equal (msg->external_user_id, "42");
    assert_int_equal (msg->channel, RETAIN__V1__CHANNEL__TELEGRAM);
    assert_string_equal (PQgetvalue (res, 0, 1), "telegram:shop-bot:42");
    retain__v1__inbound_message__free_unpacked (msg, NULL);
    PQfreemem (payload);
    PQclear (res);
    /* The raw payload is kept for audit. */
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.raw r JOIN "
                                                 "ingest.messages m ON m.raw_id = r.id WHERE "
                                                 "m.external_id = '42:7'"),
                      1);
    free (update);
}

static void
test_bad_requests (void **state)
{
    (void)state;
    char *update = s_update (1002, 8, "hello");
    const char *json[] = {"Content-Type: application/json",
                          "X-Telegram-Bot-Api-Secret-Token: " SECRET, NULL};
    const char *text[] = {"Content-Type: text/plain", "X-Telegram-Bot-Api-Secret-Token: " SECRET,
                          NULL};
    const char *unsigned_[] = {"Content-Type: application/json", NULL};
    char *big;
    rt_test_reply_t out;
    /* What was answered 2xx so far: ingest's rows are written before the
     * answer; the log may still be draining the outbox. */
    long long before = rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.messages");

    assert_int_equal (
        s_post ("POST", "/hooks/telegram/shop-bot", update, strlen (update), unsigned_, &out), 401);
    s_assert_problem (out.body, 401);
    assert_int_equal (s_telegram (update, "wrong-secret"), 403);
    assert_int_equal (
        s_post ("POST", "/hooks/telegram/nobody", update, strlen (update), json, NULL), 404);
    assert_int_equal (s_post ("POST", "/hooks/viber/shop-bot", update, strlen (update), json, NULL),
                      404); /* a telegram inbox is not a viber inbox */
    assert_int_equal (s_post ("POST", "/no/such/path", "x", 1, json, NULL), 404);
    assert_int_equal (
        s_post ("POST", "/hooks/telegram/shop-bot", "{\"update_id\":", 13, json, NULL), 400);
    assert_int_equal (
        s_post ("POST", "/hooks/telegram/shop-bot", update, strlen (update), text, NULL), 415);
    big = malloc (100 * 1024);
    memset (big, 'x', 100 * 1024);
    assert_int_equal (s_post ("POST", "/hooks/telegram/shop-bot", big, 100 * 1024, json, NULL),
                      413);
    free (big);
    usleep (300000);
    assert_int_equal (s_wait_events (before, 3000), before);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_ingest_rejected_total{channel=\"telegram\",reason="
                                 "\"bad_signature\"}") >= 1);
    /* Still serving. */
    assert_int_equal (s_telegram (update, SECRET), 200);
    free (update);
}

static void
test_webchat_cors (void **state)
{
    (void)state;
    const char *preflight_ok[] = {"Origin: https://shop.example",
                                  "Access-Control-Request-Method: POST", NULL};
    const char *preflight_bad[] = {"Origin: https://evil.example",
                                   "Access-Control-Request-Method: POST", NULL};
    assert_int_equal (s_post ("OPTIONS", "/chat/site/messages", NULL, 0, preflight_ok, NULL), 204);
    assert_int_equal (s_post ("OPTIONS", "/chat/site/messages", NULL, 0, preflight_bad, NULL), 403);
}

/* The InboundMessage on the bus with external id sid; fails the test when
 * none is there. Owned: retain__v1__inbound_message__free_unpacked. */
static Retain__V1__InboundMessage *
s_message_by_id (const char *sid)
{
    Retain__V1__InboundMessage **msgs, *found = NULL;
    size_t n, i;
    msgs = rt_test_ingest_messages (s_t.conn, &n);
    for (i = 0; i < n; i++) {
        if (!found && strcmp (msgs[i]->external_id, sid) == 0) {
            found = msgs[i];
            msgs[i] = NULL;
        }
    }
    rt_test_ingest_messages_free (msgs, n);
    if (!found)
        fail_msg ("no InboundMessage %s on the bus", sid);
    return found;
}

static void
test_sms_stop_keyword (void **state)
{
    (void)state;
    static const char stop[] = "MessageSid=SMstop0001&AccountSid=ACtest&From=%2B380501112233&"
                               "To=%2B380441234567&Body=STOP&NumMedia=0&SmsStatus=received";
    static const char plain[] = "MessageSid=SMstop0002&AccountSid=ACtest&From=%2B380501112233&"
                                "To=%2B380441234567&Body=stop+it&NumMedia=0&SmsStatus=received";
    static const char start[] = "MessageSid=SMstop0003&AccountSid=ACtest&From=%2B380501112233&"
                                "To=%2B380441234567&Body=%D0%A1%D1%82%D0%B0%D1%80%D1%82+"
                                "&NumMedia=0&SmsStatus=received";
    Retain__V1__InboundMessage *msg;
    long long before;

    /* The earlier tests' events in the log first, so that they are not
     * counted as these. */
    assert_int_equal (rt_test_ingest_wait_drained (s_t.conn), 0);
    before = rt_test_ingest_wait_events (s_t.conn, NULL, "InboundMessage", 0, 0);
    assert_int_equal (rt_test_ingest_twilio_post (s_t.ingestd.http_port, s_t.ingestd.base,
                                                  "twilio-token", "/hooks/twilio/shop-sms", stop,
                                                  strlen (stop), NULL),
                      200);
    assert_int_equal (rt_test_ingest_twilio_post (s_t.ingestd.http_port, s_t.ingestd.base,
                                                  "twilio-token", "/hooks/twilio/shop-sms", plain,
                                                  strlen (plain), NULL),
                      200);
    assert_int_equal (rt_test_ingest_twilio_post (s_t.ingestd.http_port, s_t.ingestd.base,
                                                  "twilio-token", "/hooks/twilio/shop-sms", start,
                                                  strlen (start), NULL),
                      200);
    assert_int_equal (s_wait_events (before + 3, 5000), before + 3);

    /* "STOP": the message, as the customer wrote it, marked opt "out". */
    msg = s_message_by_id ("SMstop0001");
    assert_int_equal (msg->channel, RETAIN__V1__CHANNEL__SMS);
    assert_string_equal (msg->text, "STOP");
    assert_string_equal (msg->phone, "+380501112233");
    assert_string_equal (msg->opt, "out");
    retain__v1__inbound_message__free_unpacked (msg, NULL);
    /* "stop it" is a message, not a keyword. */
    msg = s_message_by_id ("SMstop0002");
    assert_string_equal (msg->text, "stop it");
    assert_string_equal (msg->opt, "");
    retain__v1__inbound_message__free_unpacked (msg, NULL);
    /* "Старт " gives consent back. */
    msg = s_message_by_id ("SMstop0003");
    assert_string_equal (msg->opt, "in");
    retain__v1__inbound_message__free_unpacked (msg, NULL);
}

static void
test_postgres_away_means_503 (void **state)
{
    (void)state;
    char *update = s_update (1003, 9, "anyone there?");
    /* What was answered 2xx so far: ingest's rows are written before the
     * answer; the log may still be draining the outbox. */
    long long before = rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.messages");
    int64_t deadline;
    long status = 0;

    PQfinish (s_t.conn);
    s_t.conn = NULL;
    rt_test_db_refuse (s_t.dsn);
    assert_int_equal (s_telegram (update, SECRET), 503);
    rt_test_db_allow (s_t.dsn);
    s_t.conn = rt_test_pg (s_t.dsn);
    /* The provider retries until it gets its 2xx. */
    deadline = rt_test_now_ms () + 20000;
    while (rt_test_now_ms () < deadline && (status = s_telegram (update, SECRET)) != 200)
        usleep (200000);
    assert_int_equal (status, 200);
    assert_int_equal (s_wait_events (before + 1, 10000), before + 1);
    free (update);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_message_lands_once),
        cmocka_unit_test (test_bad_requests),
        cmocka_unit_test (test_webchat_cors),
        cmocka_unit_test (test_sms_stop_keyword),
        cmocka_unit_test (test_postgres_away_means_503),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, rt_test_ingest_teardown);
}
