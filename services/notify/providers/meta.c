/*
 * meta: the Messenger Platform's Send API, for Messenger and Instagram
 * (providers.md 2.3).
 *
 * Reads account->base_url ("https://graph.facebook.com"), token (the Page
 * access token) and account_id (the Page id). Sends POST
 * {base}/v21.0/{page id}/messages?access_token=<token> with JSON
 * {"recipient": {"id"}, "messaging_type": "RESPONSE", "message": {"text"}}.
 * The token travels as the access_token query parameter because that is
 * how Meta's Send API reference passes it in every example (the Graph API
 * takes an Authorization: Bearer header too; WhatsApp's Cloud API
 * documents that one, and whatsapp.c uses it); log_url masks it.
 *
 * An operator's reply (send->human_agent) goes as "messaging_type":
 * "MESSAGE_TAG", "tag": "HUMAN_AGENT", which Meta allows up to 7 days
 * after the person's last message instead of 24 hours. A private reply to
 * a comment (send->reply_to) names the comment instead of the person:
 * "recipient": {"comment_id"} (Messenger Platform and Instagram
 * Messaging, "Private Replies": one reply per comment, within 7 days of
 * it; a live comment only during the broadcast), as a RESPONSE.
 *
 * A public reply (send->reply_public) is a comment under the comment,
 * through the Graph API rather than the Send API, with the same Page
 * token: Facebook POST {base}/v21.0/{comment id}/comments, Instagram POST
 * {base}/v21.0/{comment id}/replies (IG Comment Replies: top-level
 * comments only, a reply to a reply lands under its top-level comment;
 * none on a live video), each with {"message": text}. Its success is
 * {"id"} (the new comment's): external_id is that id.
 *
 * Success is {"recipient_id", "message_id"}: external_id is message_id.
 * Errors are Graph API errors ({"error": {"code", "error_subcode",
 * "message", ...}}), classified by code and subcode, never by the text:
 * the Send API's own (10 outside the window, 551 person unavailable,
 * 100/2018001 no such user, 613 rate limit, 10/1893063 page restricted)
 * and the Graph API's general ones (1/2 transient, 4/17/32/341 throttled,
 * 190/102 bad token, 3 and 200-299 missing permission, 368 blocked for a
 * policy violation; developers.facebook.com/docs/graph-api/guides/
 * error-handling), and those of a reply to a comment: 10900 the comment
 * has its private reply already, 100/33 the comment is gone (deleted or
 * hidden: "Object with ID ... does not exist"), both permanent for that
 * comment, a private reply past its 7 days the Send API's window (10),
 * a permission the token lacks (pages_manage_engagement,
 * instagram_manage_comments, pages_messaging) 200-299 as above.
 */
#include "provider.h"

#include "rt_log.h"

#include <stdio.h>
#include <string.h>

/* One Graph error code of the Send API, and what it comes to. */
typedef struct {
    json_int_t code;            /* error.code */
    json_int_t subcode;         /* error.error_subcode; -1: any */
    provider_verdict_t verdict; /* the class */
} s_code_t;

/* The first match wins: a code with a subcode before the same code with
 * any. */
static const s_code_t s_codes[] = {
    /* changelog 2026-06-25: the Page is temporarily restricted */
    {10, 1893063, PROVIDER_STOP_ACCOUNT},
    /* "(#10) This message is sent outside of allowed window" (subcodes
     * 2018278, 2018065): home-assistant/core#32507, botpress#4890 */
    {10, -1, PROVIDER_WINDOW},
    /* "(#551) This person isn't available right now": botframework-sdk#4556 */
    {551, -1, PROVIDER_STOP_RECIPIENT},
    /* "No matching user found": fbmessenger-node PR #24 */
    {100, 2018001, PROVIDER_STOP_RECIPIENT},
    /* "Unsupported post request. Object with ID ... does not exist": a
     * comment deleted or hidden since; no reply will ever reach it */
    {100, 33, PROVIDER_BAD_REQUEST},
    {100, -1, PROVIDER_BAD_REQUEST},
    /* "(#10900) Activity already replied to": one private reply per
     * comment, and it was given */
    {10900, -1, PROVIDER_BAD_REQUEST},
    {613, -1, PROVIDER_WAIT},
    {4, -1, PROVIDER_WAIT},
    {17, -1, PROVIDER_WAIT},
    {32, -1, PROVIDER_WAIT},
    {341, -1, PROVIDER_WAIT},
    {1, -1, PROVIDER_RETRY},
    {2, -1, PROVIDER_RETRY},
    {190, -1, PROVIDER_STOP_ACCOUNT},
    {102, -1, PROVIDER_STOP_ACCOUNT},
    {3, -1, PROVIDER_STOP_ACCOUNT},
    {368, -1, PROVIDER_STOP_ACCOUNT},
};

/* The URL of a request, the token escaped into its query: path is
 * "messages" under the Page, or the comment's edge. 0 or -1 (out of
 * memory). */
static int
s_url (provider_request_t *out, const provider_account_t *account, int base_len, const char *node,
       const char *edge)
{
    rt_buf_t token = {0};
    int rc;
    rt_http_url_escape (&token, account->token);
    rc = token.failed ? -1
                      : rt_http_outreq_url (out, token.data,
                                            "%.*s/" PROVIDER_META_VERSION "/%s/%s?access_token=%s",
                                            base_len, account->base_url, node, edge, token.data);
    rt_buf_free (&token);
    return rc;
}

/* A public reply under send->reply_to: a Facebook comment's comments, an
 * Instagram comment's replies. */
static int
s_build_public (const provider_account_t *account, const provider_send_t *send, int base_len,
                provider_request_t *out, char *err, size_t errlen)
{
    json_t *body;
    if (provider_check_part ("comment id", send->reply_to, err, errlen) != 0)
        return -1;
    if (send->channel != RETAIN__V1__CHANNEL__MESSENGER &&
        send->channel != RETAIN__V1__CHANNEL__INSTAGRAM) {
        rt_errf (err, errlen, "a public reply goes under a Facebook or Instagram comment");
        return -1;
    }
    out->method = "POST";
    body = json_pack ("{s:s}", "message", send->text);
    if (body &&
        s_url (out, account, base_len, send->reply_to,
               send->channel == RETAIN__V1__CHANNEL__INSTAGRAM ? "replies" : "comments") != 0) {
        json_decref (body);
        body = NULL;
    }
    /* rt_http_outreq_json takes body, and fails on NULL. */
    if (!body || rt_http_outreq_json (out, body) != 0) {
        rt_http_outreq_free (out);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int
s_build (const provider_account_t *account, const provider_send_t *send, provider_request_t *out,
         char *err, size_t errlen)
{
    int base_len = 0;
    memset (out, 0, sizeof *out);
    /* A private reply names the comment; the person need not be known. */
    provider_send_t check = *send;
    if (send->reply_to && send->reply_to[0])
        check.to = send->reply_to;
    if (provider_check_send (&check, true, err, errlen) != 0 ||
        provider_check_base (account, &base_len, err, errlen) != 0 ||
        provider_check_part ("page id", account->account_id, err, errlen) != 0)
        return -1;
    if (!account->token || !account->token[0]) {
        rt_errf (err, errlen, "no page access token");
        return -1;
    }
    if (send->reply_to && send->reply_to[0] && send->reply_public)
        return s_build_public (account, send, base_len, out, err, errlen);
    if (send->reply_to && send->reply_to[0] &&
        provider_check_part ("comment id", send->reply_to, err, errlen) != 0)
        return -1;
    json_t *body = json_object ();
    if (send->reply_to && send->reply_to[0])
        json_object_set_new (body, "recipient", json_pack ("{s:s}", "comment_id", send->reply_to));
    else
        json_object_set_new (body, "recipient", json_pack ("{s:s}", "id", send->to));
    if (send->human_agent && !(send->reply_to && send->reply_to[0])) {
        json_object_set_new (body, "messaging_type", json_string ("MESSAGE_TAG"));
        json_object_set_new (body, "tag", json_string ("HUMAN_AGENT"));
    } else {
        json_object_set_new (body, "messaging_type", json_string ("RESPONSE"));
    }
    json_object_set_new (body, "message", json_pack ("{s:s}", "text", send->text));

    out->method = "POST";
    int rc = s_url (out, account, base_len, account->account_id, "messages");
    if (rc != 0 || rt_http_outreq_json (out, body) != 0) {
        if (rc != 0)
            json_decref (body);
        rt_http_outreq_free (out);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void
s_error (const rt_http_response_t *resp, const provider_graph_error_t *e, provider_outcome_t *out)
{
    char code[PROVIDER_CODE_MAX];
    if (e->subcode >= 0)
        snprintf (code, sizeof code, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, e->code,
                  e->subcode);
    else
        snprintf (code, sizeof code, "%" JSON_INTEGER_FORMAT, e->code);
    provider_verdict_t verdict = provider_unknown_verdict (resp->status);
    if (e->code >= 200 && e->code <= 299)
        verdict = PROVIDER_STOP_ACCOUNT;
    for (size_t i = 0; i < sizeof s_codes / sizeof *s_codes; i++) {
        const s_code_t *c = &s_codes[i];
        if (c->code == e->code && (c->subcode < 0 || c->subcode == e->subcode)) {
            verdict = c->verdict;
            break;
        }
    }
    provider_set (out, verdict, code, "%s", e->message[0] ? e->message : "Graph API error");
    if (verdict == PROVIDER_WAIT)
        out->wait_ms = provider_wait_ms (resp, -1, 0);
}

static void
s_classify (const provider_send_t *send, const rt_http_response_t *resp, provider_outcome_t *out)
{
    memset (out, 0, sizeof *out);
    if (provider_transport_failed (resp, out))
        return;
    json_t *doc = provider_json_body (resp);
    /* A public reply is a comment: the Graph API answers its id. */
    json_t *message_id = json_object_get (doc, send->reply_public ? "id" : "message_id");
    provider_graph_error_t e;
    if (resp->status >= 200 && resp->status < 300 && json_is_string (message_id) &&
        json_string_length (message_id) > 0) {
        provider_set (out, PROVIDER_SENT, NULL, "sent");
        snprintf (out->external_id, sizeof out->external_id, "%s", json_string_value (message_id));
    } else if (provider_graph_error (doc, &e)) {
        s_error (resp, &e, out);
    } else {
        provider_unreadable (resp, out);
    }
    json_decref (doc);
    provider_settle (resp, out);
}

const provider_t provider_meta = {"meta", s_build, s_classify};
