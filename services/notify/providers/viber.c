/*
 * viber: the REST bot API's send_message (providers.md 2.2).
 *
 * Reads account->base_url ("https://chatapi.viber.com"), token (the bot's
 * authentication token, sent as X-Viber-Auth-Token) and sender (the
 * sender.name Viber requires on every message). Sends POST
 * {base}/pa/send_message with {"receiver", "sender": {"name"}, "type":
 * "text", "text"}.
 *
 * Viber answers HTTP 200 whether it sent or not: {"status": 0,
 * "status_message": "ok", "message_token": <64-bit number>, ...} when it
 * took the message, else a non-zero status (its table below, the codes of
 * developers.viber.com/docs/api/rest-bot-api/#errorCodes and
 * creators.viber.com/docs/bots-api/errors). A bot may write only to
 * subscribed users, so 6 (receiverNotSubscribed) is the user's unsubscribe
 * as far as consent goes. Viber gives no figure with 12 (tooManyRequests):
 * the wait is the sender's default. A status Viber does not list comes
 * with HTTP 200 and is BAD_REQUEST, as provider.h says of unknown codes.
 */
#include "provider.h"

#include "rt_log.h"

#include <stdio.h>
#include <string.h>

/* One status of send_message's answer. */
typedef struct {
    json_int_t status;          /* the status field */
    const char *name;           /* Viber's name for it */
    provider_verdict_t verdict; /* the class */
    bool opt_out;               /* the user unsubscribed */
} s_status_t;

static const s_status_t s_statuses[] = {
    {1, "invalidUrl", PROVIDER_BAD_REQUEST, false},
    {2, "invalidAuthToken", PROVIDER_STOP_ACCOUNT, false},
    {3, "badData", PROVIDER_BAD_REQUEST, false},
    {4, "missingData", PROVIDER_BAD_REQUEST, false},
    {5, "receiverNotRegistered", PROVIDER_STOP_RECIPIENT, false},
    {6, "receiverNotSubscribed", PROVIDER_STOP_RECIPIENT, true},
    {7, "publicAccountBlocked", PROVIDER_STOP_ACCOUNT, false},
    {8, "publicAccountNotFound", PROVIDER_STOP_ACCOUNT, false},
    {9, "publicAccountSuspended", PROVIDER_STOP_ACCOUNT, false},
    /* A bot without a webhook cannot send until one is set. */
    {10, "webhookNotSet", PROVIDER_STOP_ACCOUNT, false},
    {11, "receiverNoSuitableDevice", PROVIDER_STOP_RECIPIENT, false},
    {12, "tooManyRequests", PROVIDER_WAIT, false},
    {13, "apiVersionNotSupported", PROVIDER_BAD_REQUEST, false},
    {14, "incompatibleWithVersion", PROVIDER_BAD_REQUEST, false},
    {15, "publicAccountNotAuthorized", PROVIDER_STOP_ACCOUNT, false},
    {16, "inchatReplyMessageNotAllowed", PROVIDER_BAD_REQUEST, false},
    {17, "publicAccountIsNotInline", PROVIDER_BAD_REQUEST, false},
    {18, "noPublicChat", PROVIDER_BAD_REQUEST, false},
    {19, "cannotSendBroadcast", PROVIDER_BAD_REQUEST, false},
    {20, "broadcastNotAllowed", PROVIDER_BAD_REQUEST, false},
    {21, "unsupportedCountry", PROVIDER_STOP_RECIPIENT, false},
    {22, "paymentUnsupported", PROVIDER_BAD_REQUEST, false},
    /* Billing: the bot's free messages are spent, or its balance. */
    {23, "freeMessagesExceeded", PROVIDER_STOP_ACCOUNT, false},
    {24, "noBalance", PROVIDER_STOP_ACCOUNT, false},
};

static int
s_build (const provider_account_t *account, const provider_send_t *send, provider_request_t *out,
         char *err, size_t errlen)
{
    int base_len = 0;
    memset (out, 0, sizeof *out);
    if (provider_check_send (send, true, err, errlen) != 0 ||
        provider_check_base (account, &base_len, err, errlen) != 0 ||
        provider_check_part ("auth token", account->token, err, errlen) != 0)
        return -1;
    if (!account->sender || !account->sender[0]) {
        rt_errf (err, errlen, "no sender name (Viber requires sender.name)");
        return -1;
    }
    json_t *body = json_object ();
    json_object_set_new (body, "receiver", json_string (send->to));
    json_object_set_new (body, "sender", json_pack ("{s:s}", "name", account->sender));
    json_object_set_new (body, "type", json_string ("text"));
    json_object_set_new (body, "text", json_string (send->text));
    out->method = "POST";
    if (rt_http_outreq_url (out, NULL, "%.*s/pa/send_message", base_len, account->base_url) != 0 ||
        rt_http_outreq_header (out, "X-Viber-Auth-Token: %s", account->token) != 0 ||
        rt_http_outreq_json (out, body) != 0) {
        rt_http_outreq_free (out);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void
s_answer (const rt_http_response_t *resp, json_t *doc, provider_outcome_t *out)
{
    json_t *status = json_object_get (doc, "status");
    json_t *message = json_object_get (doc, "status_message");
    json_t *token = json_object_get (doc, "message_token");
    const char *text = json_is_string (message) ? json_string_value (message) : "";
    if (!json_is_integer (status)) {
        provider_unreadable (resp, out);
        return;
    }
    json_int_t value = json_integer_value (status);
    char code[PROVIDER_CODE_MAX];
    snprintf (code, sizeof code, "%" JSON_INTEGER_FORMAT, value);
    if (value == 0) {
        if (json_is_integer (token)) {
            provider_set (out, PROVIDER_SENT, NULL, "sent");
            snprintf (out->external_id, sizeof out->external_id, "%" JSON_INTEGER_FORMAT,
                      json_integer_value (token));
        } else if (json_is_string (token) && json_string_length (token) > 0) {
            provider_set (out, PROVIDER_SENT, NULL, "sent");
            snprintf (out->external_id, sizeof out->external_id, "%s", json_string_value (token));
        } else {
            provider_unreadable (resp, out);
        }
        return;
    }
    for (size_t i = 0; i < sizeof s_statuses / sizeof *s_statuses; i++) {
        const s_status_t *s = &s_statuses[i];
        if (s->status == value) {
            provider_set (out, s->verdict, code, "%s%s%s", s->name, text[0] ? ": " : "", text);
            out->opt_out = s->opt_out;
            if (s->verdict == PROVIDER_WAIT)
                out->wait_ms = provider_wait_ms (resp, -1, 0);
            return;
        }
    }
    provider_set (out, provider_unknown_verdict (resp->status), code, "status %s%s%s", code,
                  text[0] ? ": " : "", text);
}

static void
s_classify (const provider_send_t *send, const rt_http_response_t *resp, provider_outcome_t *out)
{
    (void)send;
    memset (out, 0, sizeof *out);
    if (provider_transport_failed (resp, out))
        return;
    json_t *doc = provider_json_body (resp);
    if (resp->status >= 200 && resp->status < 300 && doc)
        s_answer (resp, doc, out);
    else
        provider_unreadable (resp, out);
    json_decref (doc);
    provider_settle (resp, out);
}

const provider_t provider_viber = {"viber", s_build, s_classify};
