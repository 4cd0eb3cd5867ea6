/*
 * The story of a reply going out: an operator's answer reaches the
 * customer's Telegram once, and its receipt shows in the timeline.
 *
 * Real processes on a database of the story's own: retain-busd,
 * retain-ingestd, retain-routerd and retain-notifyd, with the shop's bot
 * made by retainctl (the inbox and, beside its receiving secret, its
 * sending account, the token from a file) and an operator made by
 * retainctl and online through the operator API. The Bot API is the
 * shared fake of the providers (rt_test_fake_provider), where notifyd's
 * --telegram-api points. The customer writes to the bot through a real
 * webhook into ingestd; the operator answers through routerd's API with
 * an Idempotency-Key. The fake Telegram gets exactly one sendMessage, to
 * the customer's chat, with the operator's text; the same call again
 * (a client's retry, the same key) answers the same message id and sends
 * nothing more. Telegram's bots get no delivery receipts, so its success
 * is the delivery: notifyd's MessageDelivered reaches routerd and the
 * conversation's timeline shows a receipt linked to the reply's message
 * id. A reply with a photo reaches Telegram once as the photo with the
 * text under it, and its timeline entry shows the attachment; one whose
 * attachment cannot go is refused (422, naming the field).
 *
 * Every answer of the operator API is checked against the OpenAPI
 * document with tests/integration/openapi/check.mjs (node; without it the
 * story fails, never skips).
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
#include <jansson.h>

#include "rt_test_story.h"

#define TG_SECRET "tg-secret-reply-out"
#define TG_TOKEN  "7100001:AAReplyOutBotToken"
#define TG_USER   "518273645"
#define TEXT_IN   "Добрий вечір! Чи можна змінити адресу доставки?"
#define TEXT_REPLY                                                                                 \
    "Так, звісно: напишіть нову адресу, і ми її змінимо "   \
    "🙂"
#define IDEM "reply-out-1"

/* The story's world. */
static struct {
    rt_test_story_t w;   /* the daemons, the database, the fake: the Bot API */
    char key[80];        /* op-olha's API key */
    char conv[40];       /* the customer's conversation */
    char message_id[40]; /* the reply's id */
} s;

static rt_test_api_reply_t
s_api (const char *method, const char *tmpl, const char *id, const char *body, const char *idem)
{
    return rt_test_api_call (&s.w.api, method, tmpl, id, NULL, s.key, body, idem);
}

static int
s_setup (void **state)
{
    const char *migrate[] = {"migrate", NULL};
    const char *routerd_extra[] = {"--tick=200ms", NULL};
    const char *notifyd_extra[] = {"--poll=20ms", "--request-timeout=2s", NULL};
    const rt_test_story_operator_t operators[] = {{"op-olha", "operator", s.key},
                                                  {NULL, NULL, NULL}};
    const rt_test_story_opts_t opts = {.name = "story_reply_out",
                                       .fake = true,
                                       .routerd_member = "story-r1",
                                       .routerd_extra = routerd_extra,
                                       .notifyd_member = "story-n1",
                                       .notifyd_fake = "--telegram-api",
                                       .notifyd_extra = notifyd_extra,
                                       .team = "care",
                                       .team_name = "Customer care",
                                       .operators = operators,
                                       .secret = TG_TOKEN};
    char token_file[1024];
    (void)state;
    rt_test_story_open (&s.w, &opts);
    rt_test_story_ctl (&s.w, migrate, "migrate");

    /* The shop's bot: its receiving secret, and beside it the token that
     * sends, from a file the administrator wrote. */
    rt_test_story_inbox (&s.w, "shop-bot", "telegram", TG_SECRET);
    snprintf (token_file, sizeof token_file, "%s/story-reply-out-token", rt_test_dir ());
    rt_test_file_write (token_file, TG_TOKEN "\n");
    {
        const char *account[] = {"notify",     "account",  "set",          "--inbox",  "shop-bot",
                                 "--provider", "telegram", "--token-file", token_file, NULL};
        rt_test_story_ctl (&s.w, account, "notify account set");
    }
    unlink (token_file);
    rt_test_story_start (&s.w);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_story_stop (&s.w);
    return 0;
}

/* --- the story --- */

static void
test_customer_writes (void **state)
{
    char body[1024];
    rt_test_api_reply_t r;
    int64_t deadline;
    (void)state;
    r = s_api ("PUT", "/v1/operators/me/presence", NULL, "{\"presence\": \"online\"}", NULL);
    assert_int_equal (r.status, 200);
    rt_test_api_reply_free (&r);

    snprintf (body, sizeof body,
              "{\"update_id\": 815306401, \"message\": {\"message_id\": 77, \"from\": {\"id\": "
              "" TG_USER ", \"is_bot\": false, \"first_name\": \"Ірина\"}, \"chat\": {\"id\": "
              "" TG_USER ", \"first_name\": \"Ірина\", \"type\": \"private\"}, \"date\": %lld,"
              " \"text\": \"" TEXT_IN "\"}}",
              (long long)time (NULL));
    rt_test_story_telegram_post (&s.w, "shop-bot", TG_SECRET, body);

    deadline = rt_test_now_ms () + 30000;
    for (;;) {
        r = s_api ("GET", "/v1/conversations", NULL, NULL, NULL);
        assert_int_equal (r.status, 200);
        if (json_array_size (json_object_get (r.json, "items")) == 1 &&
            rt_test_api_str (r.json, "items.0.assignee"))
            break;
        if (rt_test_now_ms () > deadline)
            fail_msg ("no assigned conversation within 30 s: %s; see %s/%s", r.body, rt_test_dir (),
                      s.w.routerd.log);
        rt_test_api_reply_free (&r);
        usleep (100 * 1000);
    }
    snprintf (s.conv, sizeof s.conv, "%s", rt_test_api_str (r.json, "items.0.id"));
    assert_string_equal (rt_test_api_str (r.json, "items.0.assignee"), "op-olha");
    assert_string_equal (rt_test_api_str (r.json, "items.0.channel"), "telegram");
    assert_string_equal (rt_test_api_str (r.json, "items.0.last_message.text"), TEXT_IN);
    rt_test_api_reply_free (&r);
}

/* The one sendMessage the fake got for the story so far; fails unless
 * there is exactly one. */
static void
s_one_send_message (void)
{
    const rt_fake_request_t *req;
    json_t *body;
    assert_int_equal (rt_fake_provider_count (s.w.fake, RT_FAKE_PROVIDERS), 1);
    assert_int_equal (rt_fake_provider_count (s.w.fake, RT_FAKE_TELEGRAM), 1);
    req = rt_fake_provider_request (s.w.fake, 0);
    assert_non_null (req);
    assert_string_equal (req->method, "POST");
    assert_string_equal (req->target, "/bot" TG_TOKEN "/sendMessage");
    body = json_loads (req->body, 0, NULL);
    if (!body)
        fail_msg ("sendMessage's body is no JSON: %s", req->body);
    /* The chat the customer wrote from, as a number or as its text. */
    if (json_is_integer (json_object_get (body, "chat_id")))
        assert_int_equal (json_integer_value (json_object_get (body, "chat_id")),
                          strtoll (TG_USER, NULL, 10));
    else
        assert_string_equal (json_string_value (json_object_get (body, "chat_id")), TG_USER);
    assert_string_equal (json_string_value (json_object_get (body, "text")), TEXT_REPLY);
    json_decref (body);
}

static void
test_reply_reaches_telegram_once (void **state)
{
    rt_test_api_reply_t r;
    char sql[256];
    (void)state;
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv, "{\"text\": \"" TEXT_REPLY "\"}",
               IDEM);
    if (r.status != 202)
        fail_msg ("the reply: %ld %s", r.status, r.body);
    snprintf (s.message_id, sizeof s.message_id, "%s", rt_test_api_str (r.json, "message_id"));
    rt_test_api_reply_free (&r);

    if (!rt_fake_provider_wait (s.w.fake, 1, 30000))
        fail_msg ("the Bot API got no request within 30 s; see %s/%s", rt_test_dir (),
                  s.w.notifyd.log);
    s_one_send_message ();

    /* The client's retry with the same key: the same answer, nothing
     * sent again. */
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv, "{\"text\": \"" TEXT_REPLY "\"}",
               IDEM);
    assert_int_equal (r.status, 202);
    assert_string_equal (rt_test_api_str (r.json, "message_id"), s.message_id);
    rt_test_api_reply_free (&r);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status = 'delivered'",
              s.message_id);
    assert_int_equal (rt_test_pg_wait_long (s.w.pg, sql, 1, 30000), 1);
    /* Time for a second send to show, were there one. */
    usleep (1500 * 1000);
    s_one_send_message ();
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM bus.events WHERE type = 'OutboundMessageRequested'"
              " AND id = '%s'",
              s.message_id);
    assert_int_equal (rt_test_pg_long (s.w.pg, sql), 1);
    assert_int_equal (rt_test_pg_long (s.w.pg, "SELECT count(*) FROM bus.events WHERE type = "
                                               "'OutboundMessageRequested'"),
                      1);
}

/* Where a receipt that does not show got lost, for the failure message. */
static void
s_receipt_diagnosis (char *out, size_t outlen)
{
    char sql[512], status[64] = "", events[256] = "";
    PGresult *r;
    snprintf (sql, sizeof sql, "SELECT status FROM notify.sends WHERE id = '%s'", s.message_id);
    r = PQexec (s.w.pg, sql);
    if (PQresultStatus (r) == PGRES_TUPLES_OK && PQntuples (r) == 1)
        snprintf (status, sizeof status, "%s", PQgetvalue (r, 0, 0));
    PQclear (r);
    r = PQexec (s.w.pg, "SELECT string_agg(type || ' from ' || producer, ', ' ORDER BY seq)"
                        " FROM bus.events WHERE type IN ('MessageDelivered', 'MessageFailed')");
    if (PQresultStatus (r) == PGRES_TUPLES_OK && PQntuples (r) == 1)
        snprintf (events, sizeof events, "%s", PQgetvalue (r, 0, 0));
    PQclear (r);
    snprintf (out, outlen,
              "notify.sends says \"%s\"; receipts on the bus: [%s]; routerd's unknown receipts: "
              "%.0f",
              status, events,
              rt_test_metric (s.w.routerd.admin_port,
                              "retain_router_receipts_unknown_total{type=\"MessageDelivered\"}"));
}

static void
test_receipt_in_timeline (void **state)
{
    rt_test_api_reply_t r;
    int64_t deadline = rt_test_now_ms () + 30000;
    json_t *e, *receipt = NULL, *outbound = NULL;
    size_t i;
    (void)state;
    for (;;) {
        r = s_api ("GET", "/v1/conversations/{id}/messages", s.conv, NULL, NULL);
        assert_int_equal (r.status, 200);
        receipt = outbound = NULL;
        json_array_foreach (json_object_get (r.json, "items"), i, e)
        {
            const char *kind = json_string_value (json_object_get (e, "kind"));
            if (kind && strcmp (kind, "outbound") == 0)
                outbound = e;
            if (kind && strcmp (kind, "receipt") == 0)
                receipt = e;
        }
        if (receipt)
            break;
        if (rt_test_now_ms () > deadline) {
            static char why[1024], body[8192];
            s_receipt_diagnosis (why, sizeof why);
            snprintf (body, sizeof body, "%s", r.body);
            rt_test_api_reply_free (&r);
            fail_msg ("no receipt in the timeline within 30 s (%s): %s", why, body);
        }
        rt_test_api_reply_free (&r);
        usleep (100 * 1000);
    }
    /* The reply, under its message id, and its receipt linked to it. */
    assert_non_null (outbound);
    assert_string_equal (json_string_value (json_object_get (outbound, "id")), s.message_id);
    assert_string_equal (json_string_value (json_object_get (outbound, "text")), TEXT_REPLY);
    assert_string_equal (json_string_value (json_object_get (outbound, "operator_id")), "op-olha");
    assert_string_equal (rt_test_api_str (receipt, "body.message_id"), s.message_id);
    assert_string_equal (rt_test_api_str (receipt, "body.status"), "delivered");
    assert_true (json_integer_value (json_object_get (receipt, "seq")) >
                 json_integer_value (json_object_get (outbound, "seq")));
    rt_test_api_reply_free (&r);
}

/* The operator sends the customer a photo of the parcel: Telegram gets it
 * once as a photo with the text as its caption, and the timeline shows
 * the reply with its attachment. An attachment that cannot go (a URL in
 * the clear) is refused by the API, naming the field, and nothing is
 * sent. */
static void
test_reply_with_a_photo (void **state)
{
    const char *url = "https://shop.example/parcels/INV-2041.jpg";
    rt_test_api_reply_t r;
    const rt_fake_request_t *req;
    char body[512], photo_id[40], sql[256];
    json_t *sent, *e, *outbound = NULL;
    size_t i;
    (void)state;
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv,
               "{\"text\": \"Ось ваша посилка\", \"attachments\": [{\"kind\": \"image\","
               " \"url\": \"http://shop.example/p.jpg\"}]}",
               NULL);
    assert_int_equal (r.status, 422);
    assert_string_equal (rt_test_api_problem_type (&r), "invalid");
    if (!strstr (rt_test_api_str (r.json, "detail"), "attachments[0].url"))
        fail_msg ("the refusal does not name the field: %s", r.body);
    rt_test_api_reply_free (&r);
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv,
               "{\"text\": \"x\", \"attachments\": [{\"kind\": \"video\", \"url\":"
               " \"https://shop.example/v.mp4\"}]}",
               NULL);
    assert_int_equal (r.status, 422);
    if (!strstr (rt_test_api_str (r.json, "detail"), "attachments[0].kind"))
        fail_msg ("the refusal does not name the field: %s", r.body);
    rt_test_api_reply_free (&r);

    snprintf (body, sizeof body,
              "{\"text\": \"Ось ваша посилка\", \"attachments\": [{\"kind\": \"image\","
              " \"url\": \"%s\", \"name\": \"INV-2041.jpg\"}]}",
              url);
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv, body, "reply-out-photo");
    if (r.status != 202)
        fail_msg ("the reply with a photo: %ld %s", r.status, r.body);
    snprintf (photo_id, sizeof photo_id, "%s", rt_test_api_str (r.json, "message_id"));
    rt_test_api_reply_free (&r);
    if (!rt_fake_provider_wait (s.w.fake, 2, 30000))
        fail_msg ("the Bot API got no photo within 30 s; see %s/%s", rt_test_dir (),
                  s.w.notifyd.log);
    req = rt_fake_provider_request (s.w.fake, 1);
    assert_string_equal (req->target, "/bot" TG_TOKEN "/sendPhoto");
    sent = json_loads (req->body, 0, NULL);
    assert_non_null (sent);
    assert_string_equal (json_string_value (json_object_get (sent, "photo")), url);
    assert_string_equal (json_string_value (json_object_get (sent, "caption")), "Ось ваша посилка");
    json_decref (sent);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status = 'delivered'",
              photo_id);
    assert_int_equal (rt_test_pg_wait_long (s.w.pg, sql, 1, 30000), 1);
    usleep (1500 * 1000);
    assert_int_equal (rt_fake_provider_count (s.w.fake, RT_FAKE_PROVIDERS), 2);

    r = s_api ("GET", "/v1/conversations/{id}/messages", s.conv, NULL, NULL);
    assert_int_equal (r.status, 200);
    json_array_foreach (json_object_get (r.json, "items"), i, e)
    {
        const char *id = json_string_value (json_object_get (e, "id"));
        if (id && strcmp (id, photo_id) == 0)
            outbound = e;
    }
    assert_non_null (outbound);
    assert_string_equal (json_string_value (json_object_get (outbound, "text")),
                         "Ось ваша посилка");
    assert_string_equal (rt_test_api_str (outbound, "body.attachments.0.kind"), "image");
    assert_string_equal (rt_test_api_str (outbound, "body.attachments.0.url"), url);
    assert_string_equal (rt_test_api_str (outbound, "body.attachments.0.name"), "INV-2041.jpg");
    rt_test_api_reply_free (&r);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_customer_writes),
        cmocka_unit_test (test_reply_reaches_telegram_once),
        cmocka_unit_test (test_receipt_in_timeline),
        cmocka_unit_test (test_reply_with_a_photo),
        /* The answers recorded above, against the OpenAPI document. */
        cmocka_unit_test_prestate (rt_test_api_check_router, &s.w.api),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
