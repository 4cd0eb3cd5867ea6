/*
 * webchat: the chat widget on the shop's own site.
 *
 *   POST /chat/{inbox}/messages
 *   {"visitor_id": "...", "visitor_signature": "<hex HMAC-SHA256(secret, visitor_id)>",
 *    "message_id": "...", "text": "...", "name": "...", "email": "...", "phone": "...",
 *    "attachments": [{"url": "...", "mime_type": "...", "name": "...", "size": 123}]}
 *
 * The browser is not trusted: anyone can post anything. What makes a
 * message someone's is visitor_signature, which the shop's backend computes
 * over the visitor id with the inbox secret and hands to its own page, so a
 * visitor cannot write as another. It is checked in constant time against
 * the secret and, during a rotation, the previous one. The signature sits
 * in the body, so this channel parses JSON before it authenticates; that
 * is why the HTTP layer's body limit (413) matters most here.
 *
 * External id "<visitor_id>:<message_id>". The widget generates message_id
 * once per message and resends it on retry, so a retry is a duplicate.
 * message_id may not contain ':' (nor anything outside [A-Za-z0-9._-]):
 * with the visitor id free-form, that keeps the last ':' the separator, so
 * one visitor cannot choose a message_id that collides with another
 * visitor's id and gets their message dropped as a duplicate.
 *
 * CORS is the HTTP layer's, not this handler's. For an /chat/ route it must:
 * answer the preflight (OPTIONS with Origin and Access-Control-Request-Method)
 * itself, without calling this handler, with 204 when the Origin is one of the
 * inbox config's "allowed_origins" (exact match of scheme, host and port)
 * and 403 otherwise; on the 204 send Access-Control-Allow-Origin (that
 * origin, never "*"), Access-Control-Allow-Methods: POST,
 * Access-Control-Allow-Headers: Content-Type, Access-Control-Max-Age and
 * Vary: Origin; on the POST itself echo Access-Control-Allow-Origin and
 * Vary: Origin when the Origin is allowed, and refuse (403) a POST whose
 * Origin is present and not allowed. No credentials (cookies) are involved:
 * the visitor's signature is the credential.
 */
#include "channel.h"
#include "formdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_crypto.h"

/* More than a widget sends; a bound on what one request can make us keep. */
#define WEBCHAT_MAX_ATTACHMENTS 20
#define WEBCHAT_MAX_ID          128
#define WEBCHAT_MAX_VISITOR     512

/* True when sig (hex) is the HMAC of visitor_id under the inbox's secret or
 * its previous one. An empty secret is no secret and never verifies. */
static bool
s_visitor_ok (const ingest_inbox_t *inbox, const char *visitor_id, const char *sig)
{
    const char *secrets[2] = {inbox->secret, inbox->previous_secret};
    uint8_t want[RT_SHA256_LEN], mac[RT_SHA256_LEN];
    bool ok = false;
    int i;
    if (rt_hex_decode (sig, strlen (sig), want, sizeof want) != RT_SHA256_LEN)
        return false;
    for (i = 0; i < 2; i++) {
        if (!secrets[i] || !secrets[i][0])
            continue;
        rt_hmac_sha256 (secrets[i], strlen (secrets[i]), visitor_id, strlen (visitor_id), mac);
        if (rt_ct_equal (mac, sizeof mac, want, sizeof want))
            ok = true;
    }
    return ok;
}

/* An optional string member: "" when absent or null, -1 (failed) when of
 * another type. */
static int
s_string (const json_t *obj, const char *where, const char *key, const char **out,
          ingest_result_t *result)
{
    json_t *v = json_object_get (obj, key);
    *out = "";
    if (!v || json_is_null (v))
        return 0;
    if (!json_is_string (v))
        return ingest_fail (result, 400, "malformed", "%s%s is not a string", where, key);
    *out = json_string_value (v);
    return 1;
}

static bool
s_id_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* What kind of attachment a MIME type is. */
static const char *
s_kind (const char *mime)
{
    if (strncasecmp (mime, "image/", 6) == 0)
        return "image";
    if (strncasecmp (mime, "video/", 6) == 0)
        return "video";
    if (strncasecmp (mime, "audio/", 6) == 0)
        return "audio";
    return "document";
}

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* The attachments: files the widget uploaded to the shop's storage. Only
 * http(s) URLs: the operator's screen turns them into links, and a
 * "javascript:" one would run in the operator's session. */
static int
s_attachments (Retain__V1__InboundMessage *msg, const json_t *list, ingest_result_t *result)
{
    size_t i;
    if (!json_is_array (list))
        return ingest_fail (result, 400, "malformed", "attachments is not an array");
    if (json_array_size (list) > WEBCHAT_MAX_ATTACHMENTS)
        return ingest_fail (result, 400, "malformed", "more than %d attachments",
                            WEBCHAT_MAX_ATTACHMENTS);
    for (i = 0; i < json_array_size (list); i++) {
        json_t *item = json_array_get (list, i), *size;
        const char *url, *mime, *name;
        char where[48];
        Retain__V1__Attachment *a;
        snprintf (where, sizeof where, "attachments[%zu].", i);
        if (!json_is_object (item))
            return ingest_fail (result, 400, "malformed", "attachments[%zu] is not an object", i);
        if (s_string (item, where, "url", &url, result) < 0 ||
            s_string (item, where, "mime_type", &mime, result) < 0 ||
            s_string (item, where, "name", &name, result) < 0)
            return -1;
        if (strncasecmp (url, "https://", 8) != 0 && strncasecmp (url, "http://", 7) != 0)
            return ingest_fail (result, 400, "malformed", "%surl is not an http(s) URL", where);
        size = json_object_get (item, "size");
        if (size && !json_is_null (size) &&
            (!json_is_integer (size) || json_integer_value (size) < 0))
            return ingest_fail (result, 400, "malformed", "%ssize is not a non-negative integer",
                                where);
        a = ingest_attachment_add (msg, s_kind (mime));
        if (!a || ingest_set (&a->url, url) != 0 || ingest_set (&a->mime_type, mime) != 0 ||
            ingest_set (&a->name, name) != 0)
            return s_oom (result);
        a->size = json_is_integer (size) ? (uint64_t)json_integer_value (size) : 0;
    }
    return 0;
}

int
webchat_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = NULL;
    json_t *root = NULL, *v, *attachments;
    json_error_t jerr;
    const char *visitor_id, *message_id, *text, *name, *email, *phone;
    char phone_norm[RT_PHONE_E164_MAX + 1], *ext = NULL, *response = NULL;
    size_t i;
    int rc = -1;

    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed",
                            "%s not allowed: messages are POSTed", req->method);
    if (!formdata_is_type (ingest_header (req, "Content-Type"), "application/json"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type must be application/json");
    root = json_loadb ((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ingest_fail (result, 400, "malformed", "body is not JSON: %s (line %d, column %d)",
                            jerr.text, jerr.line, jerr.column);
    if (!json_is_object (root)) {
        ingest_fail (result, 400, "malformed", "body is not a JSON object");
        goto cleanup;
    }

    /* Who it is first: nothing else is looked at for a stranger. */
    v = json_object_get (root, "visitor_id");
    if (!json_is_string (v) || json_string_length (v) == 0) {
        ingest_fail (result, 400, "malformed",
                     v ? "visitor_id is not a non-empty string" : "visitor_id missing");
        goto cleanup;
    }
    if (json_string_length (v) > WEBCHAT_MAX_VISITOR) {
        ingest_fail (result, 400, "malformed", "visitor_id is longer than %d bytes",
                     WEBCHAT_MAX_VISITOR);
        goto cleanup;
    }
    visitor_id = json_string_value (v);
    v = json_object_get (root, "visitor_signature");
    if (!v || json_is_null (v) || (json_is_string (v) && json_string_length (v) == 0)) {
        ingest_fail (result, 401, "missing_signature", "visitor_signature missing");
        goto cleanup;
    }
    if (!json_is_string (v) || !s_visitor_ok (inbox, visitor_id, json_string_value (v))) {
        ingest_fail (result, 403, "bad_signature", "visitor_signature does not match visitor_id");
        goto cleanup;
    }

    v = json_object_get (root, "message_id");
    if (!json_is_string (v) || json_string_length (v) == 0 ||
        json_string_length (v) > WEBCHAT_MAX_ID) {
        ingest_fail (result, 400, "malformed",
                     v ? "message_id is not a string of 1 to %d characters" : "message_id missing",
                     WEBCHAT_MAX_ID);
        goto cleanup;
    }
    message_id = json_string_value (v);
    for (i = 0; message_id[i]; i++) {
        if (!s_id_char (message_id[i])) {
            ingest_fail (result, 400, "malformed",
                         "message_id may hold only letters, digits, '-', '_' and '.'");
            goto cleanup;
        }
    }
    if (s_string (root, "", "text", &text, result) < 0 ||
        s_string (root, "", "name", &name, result) < 0 ||
        s_string (root, "", "email", &email, result) < 0 ||
        s_string (root, "", "phone", &phone, result) < 0)
        goto cleanup;

    msg = ingest_inbound_new (inbox);
    if (!msg || asprintf (&ext, "%s:%s", visitor_id, message_id) < 0) {
        ext = NULL;
        s_oom (result);
        goto cleanup;
    }
    if (ingest_set (&msg->external_id, ext) != 0 ||
        ingest_set (&msg->external_user_id, visitor_id) != 0 ||
        ingest_set (&msg->thread_id, visitor_id) != 0 ||
        ingest_set (&msg->display_name, name) != 0 || ingest_set (&msg->email, email) != 0 ||
        /* What the visitor typed, as E.164 in the inbox's country, or
         * nothing: the field holds numbers, never a guess. */
        ingest_set (&msg->phone, ingest_phone (inbox, phone, NULL, phone_norm)) != 0 ||
        ingest_set (&msg->text, text) != 0 || ingest_set (&msg->event, "message") != 0) {
        s_oom (result);
        goto cleanup;
    }
    /* The visitor's clock says nothing reliable; arrival is the time. */
    msg->sent_at = req->now_ms;

    attachments = json_object_get (root, "attachments");
    if (attachments && !json_is_null (attachments) && s_attachments (msg, attachments, result) < 0)
        goto cleanup;
    if (!text[0] && msg->n_attachments == 0) {
        ingest_fail (result, 400, "malformed", "the message has neither text nor attachments");
        goto cleanup;
    }

    response = strdup ("{\"ok\":true}");
    if (!response) {
        s_oom (result);
        goto cleanup;
    }
    rc = ingest_item_add (result, "InboundMessage", ext, &msg->base,
                          ingest_channel_name (inbox->channel), inbox->id, visitor_id);
    msg = NULL; /* the result's now, or freed */
    if (rc != 0) {
        s_oom (result);
        goto cleanup;
    }
    result->response = response;
    result->response_type = "application/json";
    response = NULL;
cleanup:
    free (response);
    free (ext);
    if (msg)
        protobuf_c_message_free_unpacked (&msg->base, NULL);
    json_decref (root);
    return rc;
}
