/*
 * twilio: Programmable Messaging's Messages resource (providers.md 2.5),
 * for SMS and for WhatsApp through Twilio.
 *
 * Reads account->base_url ("https://api.twilio.com"), account_id (the
 * AccountSid), token (its auth token: Basic auth AccountSid:token),
 * sender (a From number, or a Messaging Service's sid, "MG..." and 34
 * characters, sent as MessagingServiceSid instead) and status_url (the
 * StatusCallback ingest's Twilio webhook receives receipts on). Sends POST
 * {base}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded: To, From or
 * MessagingServiceSid, Body, StatusCallback. On the WhatsApp channel To
 * and a From number carry Twilio's "whatsapp:" prefix.
 *
 * Success is 201 with the Message resource ({"sid": "SM...", "status":
 * "queued", ...}): external_id is the sid, which the status callbacks
 * name. Errors are {"code", "message", "more_info", "status"} with a
 * Twilio error code (twilio.com/docs/api/errors), read by code. Delivery
 * failures (30003-30008) come later, on the callback, and are ingest's.
 */
#include "provider.h"

#include "rt_log.h"

#include <stdio.h>
#include <string.h>

/* One Twilio error code and what it comes to. */
typedef struct {
    json_int_t code;            /* the code field */
    provider_verdict_t verdict; /* the class */
    bool opt_out;               /* the recipient replied STOP */
} s_code_t;

static const s_code_t s_codes[] = {
    /* the recipient unsubscribed from this sender (replied STOP) */
    {21610, PROVIDER_STOP_RECIPIENT, true},
    /* To is not a valid phone number */
    {21211, PROVIDER_STOP_RECIPIENT, false},
    /* To is unroutable */
    {21612, PROVIDER_STOP_RECIPIENT, false},
    /* To is not a mobile number */
    {21614, PROVIDER_STOP_RECIPIENT, false},
    /* To is a landline (twilio.com/docs/api/errors/21635) */
    {21635, PROVIDER_STOP_RECIPIENT, false},
    /* The account may not send to To's region: a setting of this account
     * for this send, not of the recipient nor of every send. */
    {21408, PROVIDER_BAD_REQUEST, false},
    /* From is not an SMS-capable number of this account */
    {21606, PROVIDER_STOP_ACCOUNT, false},
    /* authentication failed */
    {20003, PROVIDER_STOP_ACCOUNT, false},
    /* too many requests: retry after Retry-After */
    {20429, PROVIDER_WAIT, false},
};

/* Whether sender is a Messaging Service sid rather than a number. */
static bool
s_service_sid (const char *sender)
{
    return strncmp (sender, "MG", 2) == 0 && strlen (sender) == 34;
}

/* Adds name=value, with Twilio's "whatsapp:" prefix when asked for and
 * not already there. */
static void
s_address (rt_buf_t *form, const char *name, const char *value, bool whatsapp)
{
    char prefixed[256];
    if (whatsapp && strncmp (value, "whatsapp:", 9) != 0) {
        snprintf (prefixed, sizeof prefixed, "whatsapp:%s", value);
        value = prefixed;
    }
    rt_http_form_add (form, name, value);
}

static int
s_build (const provider_account_t *account, const provider_send_t *send, provider_request_t *out,
         char *err, size_t errlen)
{
    int base_len = 0;
    bool whatsapp = send->channel == RETAIN__V1__CHANNEL__WHATSAPP;
    memset (out, 0, sizeof *out);
    if (provider_check_send (send, true, err, errlen) != 0 ||
        provider_check_base (account, &base_len, err, errlen) != 0 ||
        provider_check_part ("AccountSid", account->account_id, err, errlen) != 0)
        return -1;
    if (strchr (account->account_id, ':')) {
        rt_errf (err, errlen, "AccountSid holds a ':'");
        return -1;
    }
    if (!account->token || !account->token[0]) {
        rt_errf (err, errlen, "no auth token");
        return -1;
    }
    if (!account->sender || !account->sender[0]) {
        rt_errf (err, errlen, "no From number or MessagingServiceSid");
        return -1;
    }
    if (strlen (send->to) > 200 || strlen (account->sender) > 200) {
        rt_errf (err, errlen, "To or From is too long for a phone number");
        return -1;
    }
    rt_buf_t form = {0};
    s_address (&form, "To", send->to, whatsapp);
    if (s_service_sid (account->sender))
        rt_http_form_add (&form, "MessagingServiceSid", account->sender);
    else
        s_address (&form, "From", account->sender, whatsapp);
    rt_http_form_add (&form, "Body", send->text);
    if (account->status_url && account->status_url[0])
        rt_http_form_add (&form, "StatusCallback", account->status_url);
    out->method = "POST";
    if (form.failed ||
        rt_http_outreq_url (out, NULL, "%.*s/2010-04-01/Accounts/%s/Messages.json", base_len,
                            account->base_url, account->account_id) != 0 ||
        rt_http_outreq_basic_auth (out, account->account_id, account->token) != 0 ||
        rt_http_outreq_header (out, "Content-Type: application/x-www-form-urlencoded") != 0) {
        rt_buf_free (&form);
        rt_http_outreq_free (out);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    out->body = form.data;
    out->body_len = form.len;
    return 0;
}

static void
s_error (const rt_http_response_t *resp, json_t *doc, provider_outcome_t *out)
{
    json_t *code = json_object_get (doc, "code");
    json_t *message = json_object_get (doc, "message");
    const char *text = json_is_string (message) ? json_string_value (message) : "";
    char code_text[PROVIDER_CODE_MAX];
    if (json_is_integer (code))
        snprintf (code_text, sizeof code_text, "%" JSON_INTEGER_FORMAT, json_integer_value (code));
    else
        snprintf (code_text, sizeof code_text, "%d", resp->status);
    provider_verdict_t verdict = provider_unknown_verdict (resp->status);
    bool opt_out = false;
    for (size_t i = 0; json_is_integer (code) && i < sizeof s_codes / sizeof *s_codes; i++) {
        if (s_codes[i].code == json_integer_value (code)) {
            verdict = s_codes[i].verdict;
            opt_out = s_codes[i].opt_out;
            break;
        }
    }
    provider_set (out, verdict, code_text, "%s", text[0] ? text : "Twilio error");
    out->opt_out = opt_out;
    if (verdict == PROVIDER_WAIT)
        out->wait_ms = provider_wait_ms (resp, -1, 0);
}

static void
s_classify (const provider_send_t *send, const rt_http_response_t *resp, provider_outcome_t *out)
{
    (void)send;
    memset (out, 0, sizeof *out);
    if (provider_transport_failed (resp, out))
        return;
    json_t *doc = provider_json_body (resp);
    json_t *sid = json_object_get (doc, "sid");
    if (resp->status >= 200 && resp->status < 300 && json_is_string (sid) &&
        json_string_length (sid) > 0) {
        provider_set (out, PROVIDER_SENT, NULL, "sent");
        snprintf (out->external_id, sizeof out->external_id, "%s", json_string_value (sid));
    } else if (resp->status >= 400 && doc &&
               (json_is_integer (json_object_get (doc, "code")) ||
                json_is_string (json_object_get (doc, "message")))) {
        s_error (resp, doc, out);
    } else {
        provider_unreadable (resp, out);
    }
    json_decref (doc);
    provider_settle (resp, out);
}

const provider_t provider_twilio = {"twilio", s_build, s_classify};
