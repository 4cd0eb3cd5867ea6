/*
 * test_notify_meta_comments: the Meta adapter's replies to comments
 * (services/notify/providers/meta.c), without a network.
 *
 * What the shop notices when an operator answers a comment: the four
 * requests Meta documents, each built exactly (a public reply under a
 * Facebook comment, POST /{comment-id}/comments; under an Instagram one,
 * POST /{ig-comment-id}/replies, each {"message"}; a private reply on
 * either, the Send API with recipient {comment_id}), and what each answer
 * comes to: the new comment's id or the message's, and Meta's refusals of
 * a reply (already replied, the comment gone, a permission missing, the
 * window passed) as the one error table of the adapter says. HTML and
 * garbage where JSON was due are never a success.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

static const provider_account_t s_meta = {
    .provider = "meta",
    .base_url = "http://graph.test",
    .token = "EAAGm0PX4ZCpsBA+page/token=",
    .account_id = "104857600000001",
};

#define S_TOKEN "?access_token=EAAGm0PX4ZCpsBA%2Bpage%2Ftoken%3D"

/* Builds send into req, failing the test when refused. */
static void
s_build (const provider_send_t *send, provider_request_t *req)
{
    char err[256] = "";
    if (provider_meta.build (&s_meta, send, req, err, sizeof err) != 0)
        fail_msg ("meta refused: %s", err);
    assert_string_equal (req->method, "POST");
}

/* req's body parsed; fails unless it is a JSON object. Owned. */
static json_t *
s_body (const provider_request_t *req)
{
    json_t *doc = json_loadb (req->body, req->body_len, 0, NULL);
    if (!json_is_object (doc))
        fail_msg ("the body is no JSON object: %s", req->body);
    return doc;
}

static void
test_public_reply_facebook (void **state)
{
    provider_request_t req;
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__MESSENGER,
                            .to = "5566778899",
                            .text = "Дякуємо! Відповіли вам у коментарі",
                            .human_agent = true,
                            .reply_to = "1048576000000_2233445566",
                            .reply_public = true};
    json_t *doc;
    (void)state;
    s_build (&send, &req);
    assert_string_equal (req.url,
                         "http://graph.test/v21.0/1048576000000_2233445566/comments" S_TOKEN);
    assert_string_equal (req.log_url, "http://graph.test/v21.0/1048576000000_2233445566/comments"
                                      "?access_token=***");
    doc = s_body (&req);
    assert_int_equal (json_object_size (doc), 1);
    assert_string_equal (json_string_value (json_object_get (doc, "message")), send.text);
    json_decref (doc);
    rt_http_outreq_free (&req);
}

static void
test_public_reply_instagram (void **state)
{
    provider_request_t req;
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__INSTAGRAM,
                            .to = "17841400000000",
                            .text = "Так, є в наявності 🙂",
                            .human_agent = true,
                            .reply_to = "17858893269000001",
                            .reply_public = true};
    json_t *doc;
    (void)state;
    s_build (&send, &req);
    assert_string_equal (req.url, "http://graph.test/v21.0/17858893269000001/replies" S_TOKEN);
    doc = s_body (&req);
    assert_int_equal (json_object_size (doc), 1);
    assert_string_equal (json_string_value (json_object_get (doc, "message")), send.text);
    json_decref (doc);
    rt_http_outreq_free (&req);
}

/* A private reply on either: the Send API, the comment as recipient, a
 * RESPONSE (never the HUMAN_AGENT tag, which is for a person's thread). */
static void
test_private_reply (void **state)
{
    static const Retain__V1__Channel channels[] = {RETAIN__V1__CHANNEL__MESSENGER,
                                                   RETAIN__V1__CHANNEL__INSTAGRAM};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        provider_request_t req;
        provider_send_t send = {.channel = channels[i],
                                .to = "5566778899",
                                .text = "Напишемо вам у приват",
                                .human_agent = true,
                                .reply_to = "17858893269000002"};
        json_t *doc;
        s_build (&send, &req);
        assert_string_equal (req.url, "http://graph.test/v21.0/104857600000001/messages" S_TOKEN);
        doc = s_body (&req);
        assert_string_equal (
            json_string_value (json_object_get (json_object_get (doc, "recipient"), "comment_id")),
            "17858893269000002");
        assert_null (json_object_get (json_object_get (doc, "recipient"), "id"));
        assert_string_equal (json_string_value (json_object_get (doc, "messaging_type")),
                             "RESPONSE");
        assert_null (json_object_get (doc, "tag"));
        assert_string_equal (
            json_string_value (json_object_get (json_object_get (doc, "message"), "text")),
            send.text);
        json_decref (doc);
        rt_http_outreq_free (&req);
    }
}

/* A comment id that would change the URL's path, or a public reply where
 * no comments are, is refused before anything is sent. */
static void
test_refused (void **state)
{
    provider_request_t req;
    char err[256];
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__INSTAGRAM,
                            .to = "5566778899",
                            .text = "x",
                            .reply_to = "178/../../me",
                            .reply_public = true};
    (void)state;
    assert_int_equal (provider_meta.build (&s_meta, &send, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "comment id"));
    send.reply_public = false;
    assert_int_equal (provider_meta.build (&s_meta, &send, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "comment id"));
    send.reply_to = "17858893269000001";
    send.reply_public = true;
    send.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    assert_int_equal (provider_meta.build (&s_meta, &send, &req, err, sizeof err), -1);
}

/* --- answers --- */

static provider_outcome_t
s_classify (bool public_reply, int status, const char *type, const char *body)
{
    rt_http_client_header_t h[1] = {{"Content-Type", type}};
    rt_http_response_t resp = {.outcome = RT_HTTP_OUTCOME_OK,
                               .error = "",
                               .status = status,
                               .headers = type ? h : NULL,
                               .nheaders = type ? 1 : 0,
                               .body = body,
                               .body_len = strlen (body),
                               .retry_after_ms = -1};
    provider_send_t send = {
        .channel = RETAIN__V1__CHANNEL__INSTAGRAM, .text = "x", .reply_public = public_reply};
    provider_outcome_t out;
    memset (&out, 0x5a, sizeof out);
    provider_meta.classify (&send, &resp, &out);
    return out;
}

#define GRAPH(code, sub, msg)                                                                      \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"error_subcode\":" #sub ",\"fbtrace_id\":\"AbCdEf\"}}"
#define GRAPH0(code, msg)                                                                          \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"fbtrace_id\":\"AbCdEf\"}}"

static void
test_answers (void **state)
{
    static const struct {
        const char *source;
        bool public_reply;
        int status;
        const char *body;
        provider_verdict_t verdict;
        const char *code;
        const char *external_id;
    } cases[] = {
        {"IG Comment Replies: sample response", true, 200, "{\"id\":\"17873440459141021\"}",
         PROVIDER_SENT, "", "17873440459141021"},
        {"Graph API /{comment-id}/comments: the new comment's id", true, 200,
         "{\"id\":\"1048576000000_99887766\"}", PROVIDER_SENT, "", "1048576000000_99887766"},
        {"a public reply is answered with id, not message_id", true, 200,
         "{\"message_id\":\"m_1\"}", PROVIDER_RETRY, "200", ""},
        {"Private Replies: the Send API's answer", false, 200,
         "{\"recipient_id\":\"5566778899\",\"message_id\":\"m_private_1\"}", PROVIDER_SENT, "",
         "m_private_1"},
        {"a private reply is answered with message_id, not id", false, 200, "{\"id\":\"1\"}",
         PROVIDER_RETRY, "200", ""},
        {"one private reply per comment", false, 400,
         GRAPH0 (10900, "(#10900) Activity already replied to"), PROVIDER_BAD_REQUEST, "10900", ""},
        {"the comment deleted", true, 400,
         GRAPH (100, 33,
                "Unsupported post request. Object with ID '17858893269000001' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this "
                "operation"),
         PROVIDER_BAD_REQUEST, "100/33", ""},
        {"a permission missing", true, 403, GRAPH0 (200, "(#200) Permissions error"),
         PROVIDER_STOP_ACCOUNT, "200", ""},
        {"the 7 days passed", false, 400,
         GRAPH (10, 2018278, "(#10) This message is sent outside of allowed window."),
         PROVIDER_WINDOW, "10/2018278", ""},
        {"rate limited", true, 400, GRAPH0 (613, "Calls to this api have exceeded the rate limit."),
         PROVIDER_WAIT, "613", ""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        provider_outcome_t out =
            s_classify (cases[i].public_reply, cases[i].status, "application/json", cases[i].body);
        if (out.verdict != cases[i].verdict || strcmp (out.code, cases[i].code) != 0 ||
            strcmp (out.external_id, cases[i].external_id) != 0 || !out.reason[0])
            fail_msg ("case %zu (%s): got %s code=%s ext=%s reason=%s", i, cases[i].source,
                      provider_verdict_name (out.verdict), out.code, out.external_id, out.reason);
    }
}

/* An HTML error page or garbage, where JSON was due, is no reply sent. */
static void
test_unreadable (void **state)
{
    provider_outcome_t out;
    (void)state;
    out = s_classify (true, 502, "text/html", "<html><body>502 Bad Gateway</body></html>");
    assert_int_equal (out.verdict, PROVIDER_RETRY);
    out = s_classify (true, 200, "text/html", "<html>ok</html>");
    assert_int_not_equal (out.verdict, PROVIDER_SENT);
    out = s_classify (false, 200, "application/json", "{\"message_id\":");
    assert_int_not_equal (out.verdict, PROVIDER_SENT);
    out = s_classify (true, 200, "application/json", "[\"id\"]");
    assert_int_not_equal (out.verdict, PROVIDER_SENT);
    out = s_classify (true, 200, "application/json", "{\"id\":17873440459141021}");
    assert_int_not_equal (out.verdict, PROVIDER_SENT);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_public_reply_facebook),
        cmocka_unit_test (test_public_reply_instagram),
        cmocka_unit_test (test_private_reply),
        cmocka_unit_test (test_refused),
        cmocka_unit_test (test_answers),
        cmocka_unit_test (test_unreadable),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
