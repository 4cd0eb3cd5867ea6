/*
 * retain-ingestd's one-click unsubscribe link (RFC 8058) end to end: the
 * POST a mail client sends puts one ConsentChanged on the bus, durable
 * before the 200, however often it is repeated; a GET (a scanner, a
 * preview, the customer's click) shows a page and changes nothing; a link
 * that does not verify (changed, expired, made for another purpose, of a
 * key ingestd does not hold) is a 404 that changes nothing; a POST that
 * is not One-Click is a 400. Tokens are made here with common/crypto's
 * rt_signed, as notifyd makes them, under keys ingestd is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "retain/v1/customer.pb-c.h"
#include "rt_crypto.h"
#include "rt_signed.h"
#include "rt_test.h"
#include "rt_test_ingest.h"

/* ingestd holds the new key and the old one; links were signed with
 * either. */
#define KEY_NEW "k2:the-new-link-secret-0123456789"
#define KEY_OLD "k1:the-old-link-secret-0123456789"

static rt_test_ingest_t s_t;

static int
s_setup (void **state)
{
    const char *extra[] = {"--request-timeout=3s", "--link-keys=" KEY_NEW "," KEY_OLD, NULL};
    *state = &s_t;
    rt_test_ingest_start (&s_t, "ingest_unsub", "", extra);
    return 0;
}

/* A token as notifyd makes it, with keys (a key set's spec), for customer,
 * on channel, for category, expiring in ttl_s seconds (negative: already
 * expired). */
static void
s_token (const char *keys, const char *customer, int channel, const char *category, long ttl_s,
         char out[RT_SIGNED_TOKEN_MAX])
{
    char err[128];
    rt_signed_keys_t *set = rt_signed_keys_parse (keys, err, sizeof err);
    rt_signed_unsubscribe_t u;
    if (!set)
        fail_msg ("keys: %s", err);
    memset (&u, 0, sizeof u);
    snprintf (u.customer_id, sizeof u.customer_id, "%s", customer);
    snprintf (u.category, sizeof u.category, "%s", category);
    u.channel = channel;
    assert_true (rt_signed_unsubscribe_make (set, &u, (int64_t)time (NULL) + ttl_s, out,
                                             RT_SIGNED_TOKEN_MAX) > 0);
    rt_signed_keys_destroy (&set);
}

static long
s_request (const char *method, const char *token, const char *type, const char *body,
           rt_test_reply_t *reply)
{
    char path[RT_SIGNED_TOKEN_MAX + 8], header[160];
    const char *headers[] = {header, NULL};
    snprintf (path, sizeof path, "/u/%s", token);
    snprintf (header, sizeof header, "Content-Type: %s", type ? type : "");
    return rt_test_http_request (s_t.ingestd.http_port, method, path, body,
                                 body ? strlen (body) : 0, type ? headers : NULL, reply);
}

/* What a mail client sends (RFC 8058, section 3.2). */
static long
s_one_click (const char *token, rt_test_reply_t *reply)
{
    return s_request ("POST", token, "application/x-www-form-urlencoded",
                      "List-Unsubscribe=One-Click", reply);
}

/* ConsentChanged events on the bus for customer (the key), after waiting
 * up to timeout_ms for want of them. */
static long long
s_events (const char *customer, long long want, int timeout_ms)
{
    return rt_test_ingest_wait_events (s_t.conn, customer, "ConsentChanged", want, timeout_ms);
}

static long long
s_events_all (void)
{
    return rt_test_pg_long (s_t.conn, "SELECT count(*) FROM bus.events WHERE type = "
                                      "'ConsentChanged'");
}

/* The newest ConsentChanged for customer. Owned. */
static Retain__V1__ConsentChanged *
s_consent (const char *customer)
{
    const char *params[] = {customer};
    PGresult *res = PQexecParams (s_t.conn,
                                  "SELECT payload FROM bus.events WHERE type = 'ConsentChanged' "
                                  "AND key = $1 ORDER BY seq DESC LIMIT 1",
                                  1, NULL, params, NULL, NULL, 1);
    Retain__V1__ConsentChanged *msg;
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    assert_int_equal (PQntuples (res), 1);
    msg = retain__v1__consent_changed__unpack (NULL, (size_t)PQgetlength (res, 0, 0),
                                               (const uint8_t *)PQgetvalue (res, 0, 0));
    PQclear (res);
    assert_non_null (msg);
    return msg;
}

static void
test_one_click_unsubscribes_once (void **state)
{
    char token[RT_SIGNED_TOKEN_MAX], sql[256], hex[2 * RT_SHA256_LEN + 1];
    uint8_t hash[RT_SHA256_LEN];
    rt_test_reply_t reply;
    Retain__V1__ConsentChanged *msg;
    int64_t t0 = (int64_t)time (NULL) * 1000;
    (void)state;

    s_token (KEY_NEW, "cust-one-click", RETAIN__V1__CHANNEL__EMAIL, "marketing", 86400, token);
    assert_int_equal (s_one_click (token, &reply), 200);
    assert_non_null (strstr (reply.type, "text/html"));
    assert_non_null (strstr (reply.body, "Ви відписалися"));
    /* 200 means durable: the row that de-duplicates it is committed. */
    rt_sha256 (token, strlen (token), hash);
    rt_hex_encode (hash, sizeof hash, hex);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM ingest.messages WHERE inbox = ':unsubscribe' AND "
              "external_id = '%s' AND type = 'ConsentChanged'",
              hex);
    assert_int_equal (rt_test_pg_long (s_t.conn, sql), 1);
    assert_int_equal (s_events ("cust-one-click", 1, 5000), 1);

    msg = s_consent ("cust-one-click");
    assert_string_equal (msg->customer_id, "cust-one-click");
    assert_int_equal (msg->channel, RETAIN__V1__CHANNEL__EMAIL);
    assert_string_equal (msg->category, "marketing");
    assert_false (msg->granted);
    assert_string_equal (msg->source, "unsubscribe_link");
    assert_true (msg->at >= t0 - 1000 && msg->at <= t0 + 60000);
    retain__v1__consent_changed__free_unpacked (msg, NULL);

    /* The client retries, the customer clicks again: 200, nothing new. */
    assert_int_equal (s_one_click (token, &reply), 200);
    assert_int_equal (s_one_click (token, NULL), 200);
    usleep (500000);
    assert_int_equal (s_events ("cust-one-click", 2, 0), 1);
    assert_int_equal (rt_test_pg_long (s_t.conn, sql), 1);
}

static void
test_old_key_and_multipart (void **state)
{
    char token[RT_SIGNED_TOKEN_MAX];
    const char *body = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                       "One-Click\r\n--XyZ--\r\n";
    Retain__V1__ConsentChanged *msg;
    (void)state;
    /* Signed before the rotation, with the key ingestd still accepts;
     * posted as multipart/form-data, which RFC 8058 allows too; for every
     * channel. */
    s_token (KEY_OLD, "cust-old-key", 0, "transactional", 3600, token);
    assert_int_equal (s_request ("POST", token, "multipart/form-data; boundary=XyZ", body, NULL),
                      200);
    assert_int_equal (s_events ("cust-old-key", 1, 5000), 1);
    msg = s_consent ("cust-old-key");
    assert_int_equal (msg->channel, RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED);
    assert_string_equal (msg->category, "transactional");
    retain__v1__consent_changed__free_unpacked (msg, NULL);
}

static void
test_get_never_unsubscribes (void **state)
{
    char token[RT_SIGNED_TOKEN_MAX];
    rt_test_reply_t reply;
    long long before = s_events_all ();
    (void)state;
    s_token (KEY_NEW, "cust-get", RETAIN__V1__CHANNEL__SMS, "marketing", 3600, token);
    /* A scanner fetches the link, then the customer opens it. */
    assert_int_equal (s_request ("GET", token, NULL, NULL, &reply), 200);
    assert_non_null (strstr (reply.type, "text/html"));
    /* The page says what the button does, and the button POSTs the
     * one-click body back. */
    assert_non_null (strstr (reply.body, "<form method=\"post\">"));
    assert_non_null (strstr (reply.body, "name=\"List-Unsubscribe\" value=\"One-Click\""));
    assert_non_null (strstr (reply.body, "рекламні повідомлення (SMS)"));
    assert_null (strstr (reply.body, "cust-get"));
    assert_int_equal (s_request ("GET", token, NULL, NULL, NULL), 200);
    usleep (500000);
    assert_int_equal (s_events ("cust-get", 1, 0), 0);
    assert_int_equal (s_events_all (), before);
    /* The customer presses the button: now it is done. */
    assert_int_equal (s_one_click (token, NULL), 200);
    assert_int_equal (s_events ("cust-get", 1, 5000), 1);
}

static void
test_bad_links_are_404 (void **state)
{
    char good[RT_SIGNED_TOKEN_MAX], token[RT_SIGNED_TOKEN_MAX], other[RT_SIGNED_TOKEN_MAX + 8];
    rt_test_reply_t reply;
    long long before = s_events_all ();
    double bad_mac, expired;
    size_t mid;
    (void)state;

    /* Changed: one letter in the middle. */
    s_token (KEY_NEW, "cust-bad", RETAIN__V1__CHANNEL__EMAIL, "marketing", 3600, good);
    snprintf (token, sizeof token, "%s", good);
    mid = strlen (token) / 2;
    token[mid] = token[mid] == 'A' ? 'B' : 'A';
    assert_int_equal (s_one_click (token, &reply), 404);
    assert_non_null (strstr (reply.type, "text/html"));
    assert_non_null (strstr (reply.body, "Посилання недійсне"));
    assert_int_equal (s_request ("GET", token, NULL, NULL, NULL), 404);

    /* Expired. */
    s_token (KEY_NEW, "cust-bad", RETAIN__V1__CHANNEL__EMAIL, "marketing", -10, token);
    assert_int_equal (s_one_click (token, &reply), 404);
    /* The same page whatever the reason. */
    assert_non_null (strstr (reply.body, "Посилання недійсне"));

    /* Made for another purpose (a CSAT form's) under the same key. */
    {
        char err[128];
        rt_signed_keys_t *set = rt_signed_keys_parse (KEY_NEW, err, sizeof err);
        assert_non_null (set);
        assert_true (rt_signed_make (set, "csat", (int64_t)time (NULL) + 3600,
                                     (const uint8_t *)"\x07\x09marketingcust-bad", 19, token,
                                     sizeof token) > 0);
        rt_signed_keys_destroy (&set);
    }
    assert_int_equal (s_one_click (token, NULL), 404);

    /* Signed with a key ingestd does not hold, and no token at all. */
    s_token ("k9:a-key-nobody-gave-ingestd-0123", "cust-bad", RETAIN__V1__CHANNEL__EMAIL,
             "marketing", 3600, token);
    assert_int_equal (s_one_click (token, NULL), 404);
    assert_int_equal (s_one_click ("not-a-token", NULL), 404);
    snprintf (other, sizeof other, "%s=", good);
    assert_int_equal (s_one_click (other, NULL), 404);

    usleep (500000);
    assert_int_equal (s_events ("cust-bad", 1, 0), 0);
    assert_int_equal (s_events_all (), before);
    /* Counted by reason. */
    bad_mac = rt_test_metric (s_t.ingestd.admin_port,
                              "retain_ingest_link_refused_total{link=\"unsubscribe\",reason="
                              "\"bad_mac\"}");
    expired = rt_test_metric (s_t.ingestd.admin_port,
                              "retain_ingest_link_refused_total{link=\"unsubscribe\",reason="
                              "\"expired\"}");
    assert_true (bad_mac >= 3);
    assert_true (expired >= 1);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_ingest_link_refused_total{link=\"unsubscribe\",reason="
                                 "\"unknown_key\"}") >= 1);
    /* The good link still works. */
    assert_int_equal (s_one_click (good, NULL), 200);
    assert_int_equal (s_events ("cust-bad", 1, 5000), 1);
}

static void
test_not_one_click_is_400 (void **state)
{
    char token[RT_SIGNED_TOKEN_MAX];
    rt_test_reply_t reply;
    long long before = s_events_all ();
    (void)state;
    s_token (KEY_NEW, "cust-400", RETAIN__V1__CHANNEL__EMAIL, "marketing", 3600, token);
    assert_int_equal (s_request ("POST", token, "application/x-www-form-urlencoded", "", &reply),
                      400);
    assert_non_null (strstr (reply.type, "text/html"));
    assert_int_equal (s_request ("POST", token, "application/x-www-form-urlencoded",
                                 "List-Unsubscribe=Yes", NULL),
                      400);
    assert_int_equal (
        s_request ("POST", token, "application/json", "{\"List-Unsubscribe\":\"One-Click\"}", NULL),
        400);
    assert_int_equal (s_request ("PUT", token, "application/x-www-form-urlencoded",
                                 "List-Unsubscribe=One-Click", NULL),
                      405);
    usleep (500000);
    assert_int_equal (s_events ("cust-400", 1, 0), 0);
    assert_int_equal (s_events_all (), before);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_ingest_link_refused_total{link=\"unsubscribe\",reason="
                                 "\"not_one_click\"}") >= 3);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_one_click_unsubscribes_once),
        cmocka_unit_test (test_old_key_and_multipart),
        cmocka_unit_test (test_get_never_unsubscribes),
        cmocka_unit_test (test_bad_links_are_404),
        cmocka_unit_test (test_not_one_click_is_400),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, rt_test_ingest_teardown);
}
