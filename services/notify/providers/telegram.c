/*
 * telegram: the Bot API's sendMessage, sendPhoto and sendDocument
 * (providers.md 2.1).
 *
 * Reads account->base_url ("https://api.telegram.org") and token (the
 * bot's, which the Bot API puts in the path: log_url masks it). A send
 * without media is POST {base}/bot<token>/sendMessage with {"chat_id",
 * "text"}: no parse_mode, so a text is sent as it is and can never fail on
 * entities. A send with one medium is sendPhoto {"chat_id", "photo": its
 * URL, "caption"?} for an image, sendDocument {"chat_id", "document": its
 * URL, "caption"?} for a document: Telegram fetches the URL itself (5 MB
 * for a photo, 20 MB for a document, and by URL sendDocument takes only
 * PDF, ZIP and GIF files), and the caption (the send's text, when it has
 * one) is 0-1024 characters, again without parse_mode. A file name or a
 * media type cannot go with a URL (only with an upload): Telegram names
 * the file from the URL. One request carries one medium: the consumer
 * makes a message of several into parts (daemon/handler.c), rather than a
 * sendMediaGroup, which takes 2-10 media of which documents group only
 * with documents, and whose one refused item fails the whole album.
 * A chat id that is a number goes as a JSON number, an @channel name as a
 * string, as the Bot API takes either.
 *
 * Every answer is {"ok": bool, ...}: ok true with result, a Message (with
 * photo or document for media), whose message_id counts per chat, so
 * external_id is "<chat id>:<message id>";
 * ok false with error_code (the HTTP status), description and, sometimes,
 * parameters (ResponseParameters: retry_after in seconds, migrate_to_chat_id
 * when a group became a supergroup: the 400 "group chat was upgraded to a
 * supergroup chat", MIGRATED to that id, at most 52 bits). The Bot API has no error codes finer
 * than the status, so 400 and 403 are told apart by their descriptions,
 * matched without case: "chat not found", "bot was blocked by the user",
 * "bot can't initiate conversation with a user", "user is deactivated",
 * "message is too long", "can't parse entities", and for media the URLs
 * Telegram could not fetch or use ("wrong file identifier/HTTP URL
 * specified", "failed to get HTTP URL content", "wrong type of the web
 * page content", "invalid file HTTP URL specified", "wrong URL host") and
 * "message caption is too long": a bad request for that message, never
 * retried, since the same URL fails the same way.
 */
#include "provider.h"

#include "rt_log.h"
#include "rt_utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A 400 or 403 description and what it comes to. */
typedef struct {
    int status;                 /* the error_code it comes with */
    const char *words;          /* found in the description, case ignored */
    provider_verdict_t verdict; /* the class */
    bool opt_out;               /* the recipient chose to stop */
} s_described_t;

static const s_described_t s_described[] = {
    /* botman/driver-telegram#89, irazasyed/telegram-bot-sdk#651 */
    {403, "blocked by the user", PROVIDER_STOP_RECIPIENT, true},
    /* TelegramBotAPI/errors#2: the user never pressed Start */
    {403, "can't initiate conversation", PROVIDER_STOP_RECIPIENT, false},
    {403, "user is deactivated", PROVIDER_STOP_RECIPIENT, false},
    /* botman/driver-telegram#89 */
    {400, "chat not found", PROVIDER_STOP_RECIPIENT, false},
    {400, "message is too long", PROVIDER_BAD_REQUEST, false},
    {400, "can't parse entities", PROVIDER_BAD_REQUEST, false},
    {400, "message text is empty", PROVIDER_BAD_REQUEST, false},
    /* A medium's URL (yagop/node-telegram-bot-api#425, telegraf/telegraf
     * #1549 and #329, tdlib/telegram-bot-api#782) and its caption
     * (tactilenews/100eyes#1594). */
    {400, "wrong file identifier/http url specified", PROVIDER_BAD_REQUEST, false},
    {400, "failed to get http url content", PROVIDER_BAD_REQUEST, false},
    {400, "wrong type of the web page content", PROVIDER_BAD_REQUEST, false},
    {400, "invalid file http url specified", PROVIDER_BAD_REQUEST, false},
    {400, "wrong url host", PROVIDER_BAD_REQUEST, false},
    {400, "message caption is too long", PROVIDER_BAD_REQUEST, false},
};

/* The caption Telegram takes with a medium, in characters. */
#define S_CAPTION_MAX 1024

/* Whether s is a Bot API integer chat id ("12345", "-100123"). */
static bool
s_numeric (const char *s, json_int_t *value)
{
    char *end = NULL;
    if (!s[0] || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    long long v = strtoll (s, &end, 10);
    if (*end != '\0' || end == s || (s[0] == '-' && end == s + 1))
        return false;
    *value = (json_int_t)v;
    return true;
}

/* The method and the body's field of a send's medium; NULL method when it
 * has none. 0, or -1 (err) for media one request cannot carry. */
static int
s_media (const provider_send_t *send, const char **method, const char **field, char *err,
         size_t errlen)
{
    const provider_attachment_t *a = send->attachments;
    *method = "sendMessage";
    *field = NULL;
    if (send->n_attachments == 0)
        return 0;
    if (send->n_attachments > 1 || !a) {
        rt_errf (err, errlen, "Telegram takes one medium a request, not %zu", send->n_attachments);
        return -1;
    }
    if (!a->url || strncmp (a->url, "https://", 8) != 0) {
        rt_errf (err, errlen, "a medium needs an https URL");
        return -1;
    }
    if (a->kind && strcmp (a->kind, "image") == 0) {
        *method = "sendPhoto";
        *field = "photo";
    } else if (a->kind && strcmp (a->kind, "document") == 0) {
        *method = "sendDocument";
        *field = "document";
    } else {
        rt_errf (err, errlen, "Telegram sends no medium of kind \"%.32s\"", a->kind ? a->kind : "");
        return -1;
    }
    if (send->text && rt_utf8_count (send->text, strlen (send->text)) > S_CAPTION_MAX) {
        rt_errf (err, errlen, "a caption of %zu characters is over Telegram's limit of %d",
                 rt_utf8_count (send->text, strlen (send->text)), S_CAPTION_MAX);
        return -1;
    }
    return 0;
}

static int
s_build (const provider_account_t *account, const provider_send_t *send, provider_request_t *out,
         char *err, size_t errlen)
{
    int base_len = 0;
    json_int_t chat = 0;
    const char *method, *field;
    memset (out, 0, sizeof *out);
    if (s_media (send, &method, &field, err, errlen) != 0 ||
        provider_check_send (send, field == NULL, err, errlen) != 0 ||
        provider_check_base (account, &base_len, err, errlen) != 0 ||
        provider_check_part ("bot token", account->token, err, errlen) != 0)
        return -1;
    json_t *body = json_object ();
    json_object_set_new (body, "chat_id",
                         s_numeric (send->to, &chat) ? json_integer (chat)
                                                     : json_string (send->to));
    if (field) {
        json_object_set_new (body, field, json_string (send->attachments[0].url));
        if (send->text && send->text[0])
            json_object_set_new (body, "caption", json_string (send->text));
    } else {
        json_object_set_new (body, "text", json_string (send->text));
    }
    out->method = "POST";
    if (rt_http_outreq_url (out, account->token, "%.*s/bot%s/%s", base_len, account->base_url,
                            account->token, method) != 0 ||
        rt_http_outreq_json (out, body) != 0) {
        rt_http_outreq_free (out);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ok true: the Message's ids. */
static void
s_sent (const provider_send_t *send, const rt_http_response_t *resp, json_t *doc,
        provider_outcome_t *out)
{
    json_t *result = json_object_get (doc, "result");
    json_t *message_id = json_object_get (result, "message_id");
    json_t *chat_id = json_object_get (json_object_get (result, "chat"), "id");
    if (!json_is_integer (message_id)) {
        provider_unreadable (resp, out);
        return;
    }
    /* A chat id is at most 52 bits, an @username 32 characters. */
    char chat[64];
    if (json_is_integer (chat_id))
        snprintf (chat, sizeof chat, "%" JSON_INTEGER_FORMAT, json_integer_value (chat_id));
    else
        snprintf (chat, sizeof chat, "%s", send->to);
    provider_set (out, PROVIDER_SENT, NULL, "sent");
    /* The Bot API tells nothing after a message is accepted: its
     * acceptance is the delivery. */
    out->delivered = true;
    snprintf (out->external_id, sizeof out->external_id, "%s:%" JSON_INTEGER_FORMAT, chat,
              json_integer_value (message_id));
}

/* ok false: error_code, description, parameters. */
static void
s_failed (const provider_send_t *send, const rt_http_response_t *resp, json_t *doc,
          provider_outcome_t *out)
{
    json_t *error_code = json_object_get (doc, "error_code");
    json_t *description = json_object_get (doc, "description");
    json_t *parameters = json_object_get (doc, "parameters");
    json_t *retry_after = json_object_get (parameters, "retry_after");
    json_t *migrate = json_object_get (parameters, "migrate_to_chat_id");
    int status = json_is_integer (error_code) ? (int)json_integer_value (error_code) : resp->status;
    const char *text = json_is_string (description) ? json_string_value (description) : "";
    char code[PROVIDER_CODE_MAX];
    snprintf (code, sizeof code, "%d", status);

    if (json_is_integer (migrate)) {
        char to[PROVIDER_EXT_MAX];
        snprintf (to, sizeof to, "%" JSON_INTEGER_FORMAT, json_integer_value (migrate));
        /* Sending again to the chat that answered would go round for
         * ever: that one is an error like any other. */
        if (strcmp (to, send->to) == 0) {
            provider_set (out, provider_unknown_verdict (status), code,
                          "%s (migrate_to_chat_id names the same chat)",
                          text[0] ? text : "group migrated");
            return;
        }
        provider_set (out, PROVIDER_MIGRATED, code, "%s (now chat %s)",
                      text[0] ? text : "group migrated", to);
        snprintf (out->migrate_to, sizeof out->migrate_to, "%s", to);
        return;
    }
    if (status == 429 || json_is_integer (retry_after)) {
        provider_set (out, PROVIDER_WAIT, code, "%s", text[0] ? text : "too many requests");
        out->wait_ms = provider_wait_ms (
            resp, json_is_integer (retry_after) ? json_integer_value (retry_after) : -1, 0);
        return;
    }
    if (status == 401 || status == 404) {
        /* 401 Unauthorized: a revoked token; 404 Not Found: a token that
         * names no bot. */
        provider_set (out, PROVIDER_STOP_ACCOUNT, code, "%s", text[0] ? text : "unauthorized");
        return;
    }
    for (size_t i = 0; i < sizeof s_described / sizeof *s_described; i++) {
        const s_described_t *d = &s_described[i];
        if (d->status == status && strcasestr (text, d->words)) {
            provider_set (out, d->verdict, code, "%s", text);
            out->opt_out = d->opt_out;
            return;
        }
    }
    /* Any other 403 is a chat the bot may not write to (kicked from a
     * group, not a member of a channel). */
    provider_verdict_t verdict =
        status == 403 ? PROVIDER_STOP_RECIPIENT : provider_unknown_verdict (status);
    provider_set (out, verdict, code, "%s", text[0] ? text : "error without description");
}

static void
s_classify (const provider_send_t *send, const rt_http_response_t *resp, provider_outcome_t *out)
{
    memset (out, 0, sizeof *out);
    if (provider_transport_failed (resp, out))
        return;
    json_t *doc = provider_json_body (resp);
    json_t *ok = json_object_get (doc, "ok");
    if (!json_is_boolean (ok))
        provider_unreadable (resp, out);
    else if (json_is_true (ok))
        s_sent (send, resp, doc, out);
    else
        s_failed (send, resp, doc, out);
    json_decref (doc);
    provider_settle (resp, out);
}

const provider_t provider_telegram = {"telegram", s_build, s_classify};
