/*
 * provider: the table of adapters and what they share (provider.h).
 *
 * Every adapter builds a URL, a few headers and a body, and reads an
 * answer that may not be what its provider documents: a proxy's HTML page
 * in front of a 502, an empty body after a reset, a JSON document of some
 * other shape. The helpers here do those parts once: a body is JSON only
 * when it parses to an object, and everything else is "unreadable" with
 * the status, the content type and a printable prefix of the body, so the
 * reason a person reads says what came back.
 *
 * Ids and tokens go into URL paths as they are, after a check that they
 * hold only characters a path takes unescaped ([A-Za-z0-9._:-]): a value
 * with a '/' or a '?' is refused at build rather than sent somewhere else.
 * Query values (Meta's access token) and form fields (Twilio's) are
 * percent-encoded.
 */
#include "provider.h"

#include "rt_channel.h"
#include "rt_log.h"
#include "rt_utf8.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Printable bytes of an unreadable body kept in the reason. */
#define S_SNIPPET 48

static const provider_t *const s_adapters[] = {
    &provider_telegram, &provider_viber, &provider_meta, &provider_whatsapp, &provider_twilio,
};

#define S_NADAPTERS (sizeof s_adapters / sizeof *s_adapters)

const provider_t *
provider_find (const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < S_NADAPTERS; i++)
        if (strcmp (s_adapters[i]->name, name) == 0)
            return s_adapters[i];
    return NULL;
}

const provider_t *
provider_find_for (const char *provider, Retain__V1__Channel channel)
{
    if (!provider)
        return NULL;
    /* Meta's inboxes deliver three channels; WhatsApp's Cloud API is a
     * different endpoint, body and error set. */
    if (strcmp (provider, "meta") == 0) {
        if (channel == RETAIN__V1__CHANNEL__WHATSAPP)
            return &provider_whatsapp;
        if (channel == RETAIN__V1__CHANNEL__MESSENGER || channel == RETAIN__V1__CHANNEL__INSTAGRAM)
            return &provider_meta;
        return NULL;
    }
    if (strcmp (provider, "whatsapp") == 0)
        return channel == RETAIN__V1__CHANNEL__WHATSAPP ? &provider_whatsapp : NULL;
    if (!rt_channel_kind_find (channel, provider))
        return NULL;
    return provider_find (provider);
}

const char *
provider_verdict_name (provider_verdict_t verdict)
{
    switch (verdict) {
    case PROVIDER_SENT:
        return "sent";
    case PROVIDER_RETRY:
        return "retry";
    case PROVIDER_WAIT:
        return "wait";
    case PROVIDER_STOP_RECIPIENT:
        return "stop_recipient";
    case PROVIDER_WINDOW:
        return "window";
    case PROVIDER_BAD_REQUEST:
        return "bad_request";
    case PROVIDER_STOP_ACCOUNT:
        return "stop_account";
    case PROVIDER_MIGRATED:
        return "migrated";
    }
    return "unknown";
}

/* --- checks --- */

int
provider_check_send (const provider_send_t *send, bool text_required, char *err, size_t errlen)
{
    if (!send->to || !send->to[0]) {
        rt_errf (err, errlen, "no recipient");
        return -1;
    }
    if (!send->text || !send->text[0]) {
        if (text_required) {
            rt_errf (err, errlen, "no text");
            return -1;
        }
        return 0;
    }
    size_t len = strlen (send->text);
    if (!rt_utf8_text_ok (send->text, len)) {
        rt_errf (err, errlen, "text is not UTF-8");
        return -1;
    }
    const rt_channel_t *channel = rt_channel_by_value (send->channel);
    size_t chars = rt_utf8_count (send->text, len);
    if (channel && channel->text_max > 0 && chars > (size_t)channel->text_max) {
        rt_errf (err, errlen, "text of %zu characters is over %s's limit of %ld", chars,
                 channel->title, channel->text_max);
        return -1;
    }
    return 0;
}

int
provider_check_base (const provider_account_t *account, int *len, char *err, size_t errlen)
{
    const char *base = account->base_url;
    if (!base || (strncmp (base, "http://", 7) != 0 && strncmp (base, "https://", 8) != 0)) {
        rt_errf (err, errlen, "%s account has no http(s) base URL",
                 account->provider ? account->provider : "the");
        return -1;
    }
    size_t n = strlen (base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    *len = (int)n;
    return 0;
}

int
provider_check_part (const char *what, const char *value, char *err, size_t errlen)
{
    if (!value || !value[0]) {
        rt_errf (err, errlen, "no %s", what);
        return -1;
    }
    for (const char *p = value; *p; p++) {
        if (!isalnum ((unsigned char)*p) && !strchr ("._:-", *p)) {
            rt_errf (err, errlen, "%s holds a character a URL path cannot take", what);
            return -1;
        }
    }
    return 0;
}

/* --- building --- */

/* --- classifying --- */

void
provider_set (provider_outcome_t *out, provider_verdict_t verdict, const char *code,
              const char *fmt, ...)
{
    out->verdict = verdict;
    snprintf (out->code, sizeof out->code, "%s", code ? code : "");
    va_list args;
    va_start (args, fmt);
    vsnprintf (out->reason, sizeof out->reason, fmt, args);
    va_end (args);
}

provider_verdict_t
provider_unknown_verdict (int status)
{
    if (status == 0 || status >= 500)
        return PROVIDER_RETRY;
    if (status == 401)
        return PROVIDER_STOP_ACCOUNT;
    if (status == 429)
        return PROVIDER_WAIT;
    return PROVIDER_BAD_REQUEST;
}

void
provider_settle (const rt_http_response_t *resp, provider_outcome_t *out)
{
    if (resp->status >= 500 && out->verdict != PROVIDER_WAIT && out->verdict != PROVIDER_RETRY) {
        out->verdict = PROVIDER_RETRY;
        out->opt_out = false;
    }
    if (out->verdict == PROVIDER_WAIT && out->wait_ms == 0 && resp->retry_after_ms > 0)
        out->wait_ms = resp->retry_after_ms;
}

bool
provider_graph_error (const json_t *doc, provider_graph_error_t *e)
{
    const json_t *error = doc ? json_object_get (doc, "error") : NULL;
    const json_t *code = json_object_get (error, "code");
    if (!json_is_object (error) || !json_is_integer (code))
        return false;
    const json_t *subcode = json_object_get (error, "error_subcode");
    const json_t *message = json_object_get (error, "message");
    const json_t *details = json_object_get (json_object_get (error, "error_data"), "details");
    e->code = json_integer_value (code);
    e->subcode = json_is_integer (subcode) ? json_integer_value (subcode) : -1;
    e->message = json_is_string (message) ? json_string_value (message) : "";
    e->details = json_is_string (details) ? json_string_value (details) : "";
    return true;
}

int64_t
provider_wait_ms (const rt_http_response_t *resp, json_int_t seconds, int64_t fallback_ms)
{
    if (seconds >= 0)
        return (int64_t)seconds * 1000;
    if (resp->retry_after_ms >= 0)
        return resp->retry_after_ms;
    return fallback_ms;
}

bool
provider_transport_failed (const rt_http_response_t *resp, provider_outcome_t *out)
{
    const char *error = resp->error && resp->error[0] ? resp->error : "no detail";
    switch (resp->outcome) {
    case RT_HTTP_OUTCOME_OK:
        return false;
    case RT_HTTP_OUTCOME_CONNECT_FAILED:
    case RT_HTTP_OUTCOME_DNS_FAILED:
    case RT_HTTP_OUTCOME_TLS_FAILED:
        /* Nothing reached the provider's HTTP layer: a retry is safe. */
        provider_set (out, PROVIDER_RETRY, NULL, "%s: %s", rt_http_outcome_name (resp->outcome),
                      error);
        return true;
    case RT_HTTP_OUTCOME_TIMEOUT:
    case RT_HTTP_OUTCOME_TOO_LARGE:
    case RT_HTTP_OUTCOME_CANCELLED:
    case RT_HTTP_OUTCOME_OTHER:
        break;
    }
    provider_set (out, PROVIDER_RETRY, NULL, "uncertain, %s: %s",
                  rt_http_outcome_name (resp->outcome), error);
    out->uncertain = true;
    return true;
}

json_t *
provider_json_body (const rt_http_response_t *resp)
{
    if (!resp->body || resp->body_len == 0)
        return NULL;
    json_t *doc = json_loadb (resp->body, resp->body_len, 0, NULL);
    if (doc && !json_is_object (doc)) {
        json_decref (doc);
        return NULL;
    }
    return doc;
}

void
provider_unreadable (const rt_http_response_t *resp, provider_outcome_t *out)
{
    char snippet[S_SNIPPET + 1];
    size_t n = 0;
    for (size_t i = 0; resp->body && i < resp->body_len && n < S_SNIPPET; i++) {
        unsigned char c = (unsigned char)resp->body[i];
        if (c >= 0x20 && c < 0x7f)
            snippet[n++] = (char)c;
        else if (n > 0 && snippet[n - 1] != ' ')
            snippet[n++] = ' ';
    }
    snippet[n] = '\0';
    const char *type = rt_http_response_header (resp, "Content-Type");
    char status[16];
    snprintf (status, sizeof status, "%d", resp->status);
    provider_verdict_t verdict = PROVIDER_RETRY;
    if (resp->status == 401)
        verdict = PROVIDER_STOP_ACCOUNT;
    else if (resp->status == 429)
        verdict = PROVIDER_WAIT;
    provider_set (out, verdict, status, "unreadable answer: HTTP %d, %s, %s%s", resp->status,
                  type ? type : "no content type", resp->body_len ? "body " : "empty body",
                  snippet);
    if (verdict == PROVIDER_WAIT)
        out->wait_ms = provider_wait_ms (resp, -1, 0);
}
