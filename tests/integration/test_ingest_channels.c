/*
 * Every channel end to end: a request signed the way each provider signs,
 * taken from the fixtures in the providers' documented shapes, POSTed to
 * retain-ingestd's route for it, lands on the bus as that channel's
 * InboundMessage (or receipt). The handlers' details are unit-tested; this
 * proves the routes, the inbox lookup and the writer carry every channel.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_crypto.h"
#include "rt_form.h"
#include "rt_test.h"

static int s_http_port;
static PGconn *s_conn;

static char *
s_read (const char *name, size_t *len)
{
    char rel[256];
    snprintf (rel, sizeof rel, "ingest/%s", name);
    return rt_test_fixture (rel, len);
}

static size_t
s_discard (char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static long
s_request (const char *method, const char *path, const char *body, size_t len,
           const char *const headers[])
{
    char url[512];
    long status = 0;
    CURL *curl = curl_easy_init ();
    struct curl_slist *list = NULL;
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", s_http_port, path);
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append (list, headers[i]);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_discard);
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all (list);
    curl_easy_cleanup (curl);
    return status;
}

static void
s_hex_hmac (const char *key, const char *data, size_t len, char out[65])
{
    uint8_t mac[RT_SHA256_LEN];
    rt_hmac_sha256 (key, strlen (key), data, len, mac);
    rt_hex_encode (mac, sizeof mac, out);
}

/* Waits until the log holds `want` events whose key starts with prefix. */
static long long
s_wait (const char *prefix, const char *type, long long want)
{
    char sql[256];
    int64_t deadline = rt_test_now_ms () + 10000;
    long long n;
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM bus.events WHERE key LIKE '%s:%%' AND type = '%s'", prefix,
              type);
    n = rt_test_pg_long (s_conn, sql);
    while (n < want && rt_test_now_ms () < deadline) {
        usleep (50000);
        n = rt_test_pg_long (s_conn, sql);
    }
    return n;
}

static void
test_every_channel_reaches_the_bus (void **state)
{
    (void)state;
    char dsn[1024], a_dsn[1100], a_http[64], a_admin[64], a_public[96];
    char sig[65], header[160], header2[160];
    rt_test_busd_t busd;
    int admin_port = rt_test_free_port ();
    pid_t ingestd;
    char *body;
    size_t len;
    int status;

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("ingest_channels", dsn, sizeof dsn);
    rt_test_busd_start (&busd, dsn, "channels-busd.log", NULL, true);
    s_http_port = rt_test_free_port ();
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (a_http, sizeof a_http, "--http=127.0.0.1:%d", s_http_port);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", admin_port);
    snprintf (a_public, sizeof a_public, "--public-url=https://hooks.shop.example");
    char *argv[] = {"retain-ingestd", a_dsn, a_http, a_admin, a_public, NULL};
    ingestd = rt_test_spawn ("retain-ingestd", argv, NULL, "channels-ingestd.log");
    assert_true (rt_test_wait_ready (admin_port, 30000));
    s_conn = rt_test_pg (dsn);
    rt_test_pg_exec (s_conn, "INSERT INTO ingest.inboxes (id, channel, secret, config) VALUES "
                             "('vb', 'viber', 'viber-token', '{}'),"
                             "('fb', 'messenger', 'app-secret', '{\"verify_token\": \"vt-1\"}'),"
                             "('ig', 'instagram', 'app-secret', '{}'),"
                             "('wa', 'whatsapp', 'app-secret', '{}'),"
                             "('sms', 'sms', 'twilio-token', '{}'),"
                             "('mail', 'email', 'mailgun-key', '{}'),"
                             "('pbx', 'phone', 'pbx-secret', '{}'),"
                             "('site', 'webchat', 'wc-test-secret-7d2e', "
                             "'{\"allowed_origins\": [\"https://shop.example\"]}')");
    usleep (1500000);

    /* Viber: hex HMAC-SHA256 of the body with the bot token. */
    body = s_read ("viber/message_text.json", &len);
    s_hex_hmac ("viber-token", body, len, sig);
    snprintf (header, sizeof header, "X-Viber-Content-Signature: %s", sig);
    {
        const char *h[] = {"Content-Type: application/json", header, NULL};
        assert_int_equal (s_request ("POST", "/hooks/viber/vb", body, len, h), 200);
    }
    free (body);
    assert_int_equal (s_wait ("viber", "InboundMessage", 1), 1);

    /* Meta: the verification handshake, then signed POSTs of each product. */
    assert_int_equal (s_request ("GET",
                                 "/hooks/messenger/fb?hub.mode=subscribe&hub.verify_token=vt-1"
                                 "&hub.challenge=4242",
                                 NULL, 0, NULL),
                      200);
    assert_int_equal (s_request ("GET",
                                 "/hooks/messenger/fb?hub.mode=subscribe&hub.verify_token=nope"
                                 "&hub.challenge=4242",
                                 NULL, 0, NULL),
                      403);
    {
        const char *files[][2] = {{"meta/messenger_text.json", "/hooks/messenger/fb"},
                                  {"meta/instagram_batch.json", "/hooks/instagram/ig"},
                                  {"meta/whatsapp_batch.json", "/hooks/whatsapp/wa"}};
        for (size_t i = 0; i < 3; i++) {
            body = s_read (files[i][0], &len);
            s_hex_hmac ("app-secret", body, len, sig);
            snprintf (header, sizeof header, "X-Hub-Signature-256: sha256=%s", sig);
            const char *h[] = {"Content-Type: application/json", header, NULL};
            assert_int_equal (s_request ("POST", files[i][1], body, len, h), 200);
            free (body);
        }
    }
    assert_int_equal (s_wait ("messenger", "InboundMessage", 1), 1);
    assert_true (s_wait ("instagram", "InboundMessage", 1) >= 1);
    assert_true (s_wait ("whatsapp", "InboundMessage", 2) >= 2); /* a batch */

    /* Twilio: Base64 HMAC-SHA1 over the public URL and the sorted params. */
    body = s_read ("twilio/sms.form", &len);
    {
        char err[128], b64[64];
        rt_form_t *form = rt_form_parse (body, len, err, sizeof err);
        const rt_form_pair_t *const *sorted;
        char *signed_data = NULL;
        size_t n = 0, cap = 0;
        uint8_t mac[RT_SHA1_LEN];
        const char *url = "https://hooks.shop.example/hooks/twilio/sms";
        assert_non_null (form);
        sorted = rt_form_sorted (form);
        cap = strlen (url) + len * 3 + 1;
        signed_data = malloc (cap);
        n = (size_t)snprintf (signed_data, cap, "%s", url);
        for (size_t i = 0; i < rt_form_count (form); i++)
            n += (size_t)snprintf (signed_data + n, cap - n, "%s%s", sorted[i]->name,
                                   sorted[i]->value);
        rt_hmac_sha1 ("twilio-token", 12, signed_data, n, mac);
        rt_base64_encode (mac, sizeof mac, b64);
        snprintf (header, sizeof header, "X-Twilio-Signature: %s", b64);
        free (signed_data);
        rt_form_destroy (&form);
        const char *h[] = {"Content-Type: application/x-www-form-urlencoded", header, NULL};
        assert_int_equal (s_request ("POST", "/hooks/twilio/sms", body, len, h), 200);
    }
    free (body);
    assert_int_equal (s_wait ("sms", "InboundMessage", 1), 1);

    /* Mailgun: HMAC-SHA256 of timestamp + token, fresh. */
    {
        char form[1024], ts[24], token[40], signed_data[80];
        snprintf (ts, sizeof ts, "%lld", (long long)time (NULL));
        snprintf (token, sizeof token, "tok%lld%d", (long long)time (NULL), (int)getpid ());
        snprintf (signed_data, sizeof signed_data, "%s%s", ts, token);
        s_hex_hmac ("mailgun-key", signed_data, strlen (signed_data), sig);
        snprintf (form, sizeof form,
                  "timestamp=%s&token=%s&signature=%s&sender=anna%%40example.com&from=Anna+%%3C"
                  "anna%%40example.com%%3E&subject=%%D0%%97%%D0%%B0%%D0%%BC%%D0%%BE%%D0%%B2%%D0%%BB"
                  "%%D0%%B5%%D0%%BD%%D0%%BD%%D1%%8F&body-plain=Where+is+my+parcel%%3F&"
                  "Message-Id=%%3Cm1%%40example.com%%3E",
                  ts, token, sig);
        const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
        assert_int_equal (s_request ("POST", "/hooks/mailgun/mail", form, strlen (form), h), 200);
        /* The same signature again is a replay. */
        assert_int_equal (s_request ("POST", "/hooks/mailgun/mail", form, strlen (form), h), 403);
    }
    assert_int_equal (s_wait ("email", "InboundMessage", 1), 1);

    /* PBX: a missed call, HMAC-SHA256 of the body. */
    body = s_read ("phone/missed.json", &len);
    s_hex_hmac ("pbx-secret", body, len, sig);
    snprintf (header, sizeof header, "X-Retain-Signature: sha256=%s", sig);
    {
        const char *h[] = {"Content-Type: application/json", header, NULL};
        assert_int_equal (s_request ("POST", "/hooks/phone/pbx", body, len, h), 200);
    }
    free (body);
    assert_int_equal (s_wait ("phone", "InboundMessage", 1), 1);

    /* Web chat: the shop-signed visitor, from an allowed origin. */
    body = s_read ("webchat/text.json", &len);
    snprintf (header2, sizeof header2, "Origin: https://shop.example");
    {
        const char *h[] = {"Content-Type: application/json", header2, NULL};
        assert_int_equal (s_request ("POST", "/chat/site/messages", body, len, h), 200);
    }
    free (body);
    assert_int_equal (s_wait ("webchat", "InboundMessage", 1), 1);

    /* Receipts travel too: a Viber "seen". */
    body = s_read ("viber/seen.json", &len);
    s_hex_hmac ("viber-token", body, len, sig);
    snprintf (header, sizeof header, "X-Viber-Content-Signature: %s", sig);
    {
        const char *h[] = {"Content-Type: application/json", header, NULL};
        assert_int_equal (s_request ("POST", "/hooks/viber/vb", body, len, h), 200);
    }
    free (body);
    assert_int_equal (s_wait ("viber", "MessageDelivered", 1), 1);

    PQfinish (s_conn);
    status = rt_test_kill (ingestd, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    status = rt_test_kill (busd.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_channel_reaches_the_bus),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, NULL, NULL);
}
