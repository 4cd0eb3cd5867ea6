/*
 * Every channel end to end: a request signed the way each provider signs,
 * taken from the fixtures in the providers' documented shapes, POSTed to
 * retain-ingestd's route for it, lands on the bus as that channel's
 * InboundMessage (or receipt). The handlers' details are unit-tested; this
 * proves the routes, the inbox lookup and the writer carry every channel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

static rt_test_ingest_t s_t;

static long
s_request (const char *method, const char *path, const char *body, size_t len,
           const char *const headers[])
{
    return rt_test_http_request (s_t.ingestd.http_port, method, path, body, len, headers, NULL);
}

/* Waits until the log holds `want` events whose key starts with prefix. */
static long long
s_wait (const char *prefix, const char *type, long long want)
{
    char key[64];
    snprintf (key, sizeof key, "%s:", prefix);
    return rt_test_ingest_wait_events (s_t.conn, key, type, want, 10000);
}

/* POSTs a fixture as JSON, its hex HMAC-SHA256 under key in the header
 * `name` after `prefix`; returns the status. */
static long
s_post_signed (const char *fixture, const char *path, const char *key, const char *name,
               const char *prefix)
{
    char sig[RT_TEST_INGEST_SIG_LEN], header[160];
    const char *h[] = {"Content-Type: application/json", header, NULL};
    size_t len;
    char *body = rt_test_fixture (fixture, &len);
    long status;
    rt_test_ingest_hmac_hex (key, body, len, sig);
    snprintf (header, sizeof header, "%s: %s%s", name, prefix, sig);
    status = s_request ("POST", path, body, len, h);
    free (body);
    return status;
}

static void
test_every_channel_reaches_the_bus (void **state)
{
    (void)state;
    static const rt_test_inbox_t inboxes[] = {
        {"vb", "viber", "viber-token", "{}"},
        {"fb", "messenger", "app-secret", "{\"verify_token\": \"vt-1\"}"},
        {"ig", "instagram", "app-secret", "{}"},
        {"wa", "whatsapp", "app-secret", "{}"},
        {"sms", "sms", "twilio-token", "{}"},
        {"mail", "email", "mailgun-key", "{}"},
        {"pbx", "phone", "pbx-secret", "{}"},
        {"site", "webchat", "wc-test-secret-7d2e",
         "{\"allowed_origins\": [\"https://shop.example\"]}"},
    };
    char sig[RT_TEST_INGEST_SIG_LEN];
    char *body;
    size_t len;

    rt_test_ingest_start (&s_t, "ingest_channels", "https://hooks.shop.example", NULL);
    rt_test_ingest_inboxes (&s_t, inboxes, sizeof inboxes / sizeof *inboxes);

    /* Viber: hex HMAC-SHA256 of the body with the bot token. */
    assert_int_equal (s_post_signed ("ingest/viber/message_text.json", "/hooks/viber/vb",
                                     "viber-token", "X-Viber-Content-Signature", ""),
                      200);
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
        const char *files[][2] = {{"ingest/meta/messenger_text.json", "/hooks/messenger/fb"},
                                  {"ingest/meta/instagram_batch.json", "/hooks/instagram/ig"},
                                  {"ingest/meta/whatsapp_batch.json", "/hooks/whatsapp/wa"}};
        for (size_t i = 0; i < 3; i++)
            assert_int_equal (s_post_signed (files[i][0], files[i][1], "app-secret",
                                             "X-Hub-Signature-256", "sha256="),
                              200);
    }
    assert_int_equal (s_wait ("messenger", "InboundMessage", 1), 1);
    assert_true (s_wait ("instagram", "InboundMessage", 1) >= 1);
    assert_true (s_wait ("whatsapp", "InboundMessage", 2) >= 2); /* a batch */

    /* Comments under a Page's post and an Instagram media, beside the DMs:
     * 5 of the feed's changes and 3 of Instagram's are kept, each with the
     * origin a public or private reply needs. */
    assert_int_equal (s_post_signed ("ingest/meta/messenger_feed_comments.json",
                                     "/hooks/messenger/fb", "app-secret", "X-Hub-Signature-256",
                                     "sha256="),
                      200);
    assert_int_equal (s_post_signed ("ingest/meta/instagram_comments.json", "/hooks/instagram/ig",
                                     "app-secret", "X-Hub-Signature-256", "sha256="),
                      200);
    assert_int_equal (s_wait ("messenger", "InboundMessage", 6), 6);
    assert_int_equal (s_wait ("instagram", "InboundMessage", 5), 5);
    {
        size_t n, i, found = 0;
        Retain__V1__InboundMessage **msgs = rt_test_ingest_messages (s_t.conn, &n);
        for (i = 0; i < n; i++) {
            const Retain__V1__Origin *o = msgs[i]->origin;
            if (!o || strcmp (o->comment_id, "17865799348089039") != 0)
                continue;
            assert_string_equal (o->kind, "comment");
            assert_string_equal (o->post_id, "17887498072083520");
            assert_string_equal (msgs[i]->external_user_id, "1254459154682919");
            found++;
        }
        assert_int_equal (found, 1);
        rt_test_ingest_messages_free (msgs, n);
    }

    /* Twilio: Base64 HMAC-SHA1 over the public URL and the sorted params. */
    body = rt_test_fixture ("ingest/twilio/sms.form", &len);
    assert_int_equal (rt_test_ingest_twilio_post (s_t.ingestd.http_port,
                                                  "https://hooks.shop.example", "twilio-token",
                                                  "/hooks/twilio/sms", body, len, NULL),
                      200);
    free (body);
    assert_int_equal (s_wait ("sms", "InboundMessage", 1), 1);

    /* Mailgun: HMAC-SHA256 of timestamp + token, fresh. */
    {
        char form[1024], ts[24], token[40], signed_data[80];
        snprintf (ts, sizeof ts, "%lld", (long long)time (NULL));
        snprintf (token, sizeof token, "tok%lld%d", (long long)time (NULL), (int)getpid ());
        snprintf (signed_data, sizeof signed_data, "%s%s", ts, token);
        rt_test_ingest_hmac_hex ("mailgun-key", signed_data, strlen (signed_data), sig);
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
    assert_int_equal (s_post_signed ("ingest/phone/missed.json", "/hooks/phone/pbx", "pbx-secret",
                                     "X-Retain-Signature", "sha256="),
                      200);
    assert_int_equal (s_wait ("phone", "InboundMessage", 1), 1);

    /* Web chat: the shop-signed visitor, from an allowed origin. */
    body = rt_test_fixture ("ingest/webchat/text.json", &len);
    {
        const char *h[] = {"Content-Type: application/json", "Origin: https://shop.example", NULL};
        assert_int_equal (s_request ("POST", "/chat/site/messages", body, len, h), 200);
    }
    free (body);
    assert_int_equal (s_wait ("webchat", "InboundMessage", 1), 1);

    /* Receipts travel too: a Viber "seen". */
    assert_int_equal (s_post_signed ("ingest/viber/seen.json", "/hooks/viber/vb", "viber-token",
                                     "X-Viber-Content-Signature", ""),
                      200);
    assert_int_equal (s_wait ("viber", "MessageDelivered", 1), 1);

    rt_test_ingest_stop (&s_t);
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
