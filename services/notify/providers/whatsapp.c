/*
 * whatsapp: WhatsApp's Cloud API (providers.md 2.4), for inboxes of
 * provider "meta" on the WhatsApp channel (provider_find_for).
 *
 * Reads account->base_url ("https://graph.facebook.com"), token (the
 * system user's access token, sent as Authorization: Bearer, as the Cloud
 * API documents) and account_id (the phone-number id). Sends POST
 * {base}/v21.0/{phone-number id}/messages with
 *   {"messaging_product": "whatsapp", "recipient_type": "individual",
 *    "to", "type": "text", "text": {"preview_url": false, "body"}}
 * inside the 24-hour customer-service window, or, when the send names a
 * template (the only thing WhatsApp takes outside it),
 *   {..., "type": "template", "template": {"name", "language": {"code"},
 *    "components": [{"type": "body", "parameters": [{"type": "text",
 *    "text"}, ...]}]}}.
 *
 * Success is {"messaging_product", "contacts": [{"input", "wa_id"}],
 * "messages": [{"id": "wamid..."}]}: external_id is the wamid, which the
 * status webhooks name. Errors are Graph errors; Meta asks that they be
 * read by code (and error_data.details), not by title
 * (developers.facebook.com/documentation/business-messaging/whatsapp/
 * support/error-codes), so the table below is by code and the details go
 * into the reason. Errors may also come later, on the status webhook:
 * those are ingest's to read.
 */
#include "provider.h"

#include "rt_log.h"

#include <stdio.h>
#include <string.h>

/* A pair rate limit (131056) clears after about 6 s to one user. */
#define S_PAIR_WAIT_MS 6000
/* The marketing per-user limit (131049) is counted over 24 hours. */
#define S_MARKETING_WAIT_MS (24LL * 3600 * 1000)

/* One Cloud API error code and what it comes to. */
typedef struct {
    json_int_t code;            /* error.code */
    provider_verdict_t verdict; /* the class */
    bool opt_out;               /* the user stopped these messages */
    int64_t wait_ms;            /* WAIT without a figure from the provider */
    bool per_recipient;         /* the WAIT holds this recipient, not the number */
} s_code_t;

static const s_code_t s_codes[] = {
    /* throughput per number (about 80/s): dev.to WAPGROWAI, ycloud */
    {130429, PROVIDER_WAIT, false, 0, false},
    /* (business, consumer) pair rate limit: about 1 message / 6 s */
    {131056, PROVIDER_WAIT, false, S_PAIR_WAIT_MS, true},
    /* marketing per-user limit: Meta chose not to deliver, not soon again */
    {131049, PROVIDER_WAIT, false, S_MARKETING_WAIT_MS, true},
    {4, PROVIDER_WAIT, false, 0, false},
    /* more than 24 h since the user's last message: a template is due */
    {131047, PROVIDER_WINDOW, false, 0, false},
    /* not a WhatsApp number, terms not accepted, old client: ycloud,
     * chatwoot#9542 */
    {131026, PROVIDER_STOP_RECIPIENT, false, 0, false},
    /* the user stopped marketing messages from the business */
    {131050, PROVIDER_STOP_RECIPIENT, true, 0, false},
    {131000, PROVIDER_RETRY, false, 0, false},
    {1, PROVIDER_RETRY, false, 0, false},
    {2, PROVIDER_RETRY, false, 0, false},
    {131008, PROVIDER_BAD_REQUEST, false, 0, false},
    {131009, PROVIDER_BAD_REQUEST, false, 0, false},
    {132000, PROVIDER_BAD_REQUEST, false, 0, false},
    {132001, PROVIDER_BAD_REQUEST, false, 0, false},
    {100, PROVIDER_BAD_REQUEST, false, 0, false},
    {190, PROVIDER_STOP_ACCOUNT, false, 0, false},
    {0, PROVIDER_STOP_ACCOUNT, false, 0, false},
    {3, PROVIDER_STOP_ACCOUNT, false, 0, false},
    {10, PROVIDER_STOP_ACCOUNT, false, 0, false},
    {368, PROVIDER_STOP_ACCOUNT, false, 0, false},
    {131031, PROVIDER_STOP_ACCOUNT, false, 0, false},
    {131042, PROVIDER_STOP_ACCOUNT, false, 0, false},
};

static json_t *
s_template (const provider_send_t *send)
{
    json_t *tmpl = json_pack ("{s:s, s:{s:s}}", "name", send->template_name, "language", "code",
                              send->template_lang);
    if (send->template_params && send->template_params[0]) {
        json_t *params = json_array ();
        for (size_t i = 0; send->template_params[i]; i++)
            json_array_append_new (
                params, json_pack ("{s:s, s:s}", "type", "text", "text", send->template_params[i]));
        json_object_set_new (tmpl, "components",
                             json_pack ("[{s:s, s:o}]", "type", "body", "parameters", params));
    }
    return tmpl;
}

static int
s_build (const provider_account_t *account, const provider_send_t *send, provider_request_t *out,
         char *err, size_t errlen)
{
    int base_len = 0;
    bool is_template = send->template_name && send->template_name[0];
    memset (out, 0, sizeof *out);
    if (provider_check_send (send, !is_template, err, errlen) != 0 ||
        provider_check_base (account, &base_len, err, errlen) != 0 ||
        provider_check_part ("phone-number id", account->account_id, err, errlen) != 0 ||
        provider_check_part ("access token", account->token, err, errlen) != 0)
        return -1;
    if (is_template && !(send->template_lang && send->template_lang[0])) {
        rt_errf (err, errlen, "template %s has no language", send->template_name);
        return -1;
    }
    json_t *body = json_pack ("{s:s, s:s, s:s}", "messaging_product", "whatsapp", "recipient_type",
                              "individual", "to", send->to);
    if (is_template) {
        json_object_set_new (body, "type", json_string ("template"));
        json_object_set_new (body, "template", s_template (send));
    } else {
        json_object_set_new (body, "type", json_string ("text"));
        json_object_set_new (body, "text",
                             json_pack ("{s:b, s:s}", "preview_url", 0, "body", send->text));
    }
    out->method = "POST";
    if (rt_http_outreq_url (out, NULL, "%.*s/" PROVIDER_META_VERSION "/%s/messages", base_len,
                            account->base_url, account->account_id) != 0 ||
        rt_http_outreq_header (out, "Authorization: Bearer %s", account->token) != 0 ||
        rt_http_outreq_json (out, body) != 0) {
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
    snprintf (code, sizeof code, "%" JSON_INTEGER_FORMAT, e->code);
    const s_code_t *known = NULL;
    for (size_t i = 0; i < sizeof s_codes / sizeof *s_codes; i++)
        if (s_codes[i].code == e->code) {
            known = &s_codes[i];
            break;
        }
    provider_verdict_t verdict = known ? known->verdict : provider_unknown_verdict (resp->status);
    if (!known && e->code >= 200 && e->code <= 299)
        verdict = PROVIDER_STOP_ACCOUNT;
    provider_set (out, verdict, code, "%s%s%s", e->message[0] ? e->message : "Graph API error",
                  e->details[0] ? ": " : "", e->details);
    out->opt_out = known && known->opt_out;
    out->per_recipient = known && known->per_recipient;
    if (verdict == PROVIDER_WAIT)
        out->wait_ms = provider_wait_ms (resp, -1, known ? known->wait_ms : 0);
}

static void
s_classify (const provider_send_t *send, const rt_http_response_t *resp, provider_outcome_t *out)
{
    (void)send;
    memset (out, 0, sizeof *out);
    if (provider_transport_failed (resp, out))
        return;
    json_t *doc = provider_json_body (resp);
    json_t *id = json_object_get (json_array_get (json_object_get (doc, "messages"), 0), "id");
    provider_graph_error_t e;
    if (resp->status >= 200 && resp->status < 300 && json_is_string (id) &&
        json_string_length (id) > 0) {
        provider_set (out, PROVIDER_SENT, NULL, "sent");
        snprintf (out->external_id, sizeof out->external_id, "%s", json_string_value (id));
    } else if (provider_graph_error (doc, &e)) {
        s_error (resp, &e, out);
    } else {
        provider_unreadable (resp, out);
    }
    json_decref (doc);
    provider_settle (resp, out);
}

const provider_t provider_whatsapp = {"whatsapp", s_build, s_classify};
