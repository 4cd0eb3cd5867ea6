/*
 * viber: Viber REST bot API callbacks.
 *
 * Viber POSTs one JSON callback per request, signed: the header
 * X-Viber-Content-Signature is the hex HMAC-SHA256 of the raw body keyed
 * with the bot's auth token (the inbox secret; the previous one is accepted
 * during a rotation). The signature is checked before the body is parsed,
 * so nothing unauthenticated reaches the JSON parser.
 *
 * Callbacks and what they become:
 *   message                                  InboundMessage, external id = message_token
 *   subscribed, unsubscribed,
 *   conversation_started                     InboundMessage with event set, external id
 *                                            "<event>:<message_token or user id>:<timestamp>"
 *   delivered, seen                          MessageDelivered (read for seen), external id
 *                                            "<event>:<message_token>:<user_id>"
 *   failed                                   MessageFailed, "failed:<message_token>:<user_id>"
 *   webhook (the set_webhook check), and any event Viber adds later: 200, nothing kept.
 * The ids are those of the callback, so Viber's retry of one is a
 * duplicate; the receipt's ids name the event too, so "delivered" and
 * "seen" of one message are two facts.
 *
 * message_token is a 64-bit integer. jansson reads integers as long long;
 * Viber's tokens fit (they are Java longs), and one that did not would be
 * answered 400 rather than silently rounded.
 */
#include "channel.h"
#include "formdata.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_crypto.h"

/* --- request checks --- */

/* True when sig is the HMAC of the body under the inbox's secret or its
 * previous one. An empty secret is no secret and never verifies. */
static bool
s_signature_ok (const ingest_inbox_t *inbox, const ingest_request_t *req,
                const uint8_t sig[RT_SHA256_LEN])
{
    const char *secrets[2] = {inbox->secret, inbox->previous_secret};
    uint8_t mac[RT_SHA256_LEN];
    bool ok = false;
    int i;
    for (i = 0; i < 2; i++) {
        if (!secrets[i] || !secrets[i][0])
            continue;
        rt_hmac_sha256 (secrets[i], strlen (secrets[i]), req->body, req->body_len, mac);
        if (rt_ct_equal (mac, sizeof mac, sig, RT_SHA256_LEN))
            ok = true;
    }
    return ok;
}

/* --- typed access to the callback, failing with the path of what is wrong --- */

/* Reads member key of obj (at path where). Returns 1 when present with the
 * right type, 0 when absent and optional, -1 (result failed) otherwise. */
static int
s_member (const json_t *obj, const char *where, const char *key, json_type type, bool required,
          json_t **out, ingest_result_t *result)
{
    static const char *names[] = {"an object", "an array",  "a string",  "an integer",
                                  "a number",  "a boolean", "a boolean", "null"};
    json_t *v = json_object_get (obj, key);
    *out = NULL;
    if (!v || json_is_null (v)) {
        if (required)
            return ingest_fail (result, 400, "malformed", "%s.%s missing", where, key);
        return 0;
    }
    if (json_typeof (v) != type && !(type == JSON_REAL && json_is_integer (v)))
        return ingest_fail (result, 400, "malformed", "%s.%s is not %s", where, key, names[type]);
    *out = v;
    return 1;
}

static int
s_string (const json_t *obj, const char *where, const char *key, bool required, const char **out,
          ingest_result_t *result)
{
    json_t *v;
    int rc = s_member (obj, where, key, JSON_STRING, required, &v, result);
    *out = rc == 1 ? json_string_value (v) : "";
    if (rc == 1 && required && !**out)
        return ingest_fail (result, 400, "malformed", "%s.%s is empty", where, key);
    return rc;
}

/* A size in bytes: a non-negative integer, 0 when absent. */
static int
s_size (const json_t *obj, const char *where, const char *key, uint64_t *out,
        ingest_result_t *result)
{
    json_t *v;
    int rc = s_member (obj, where, key, JSON_INTEGER, false, &v, result);
    *out = 0;
    if (rc == 1 && json_integer_value (v) < 0)
        return ingest_fail (result, 400, "malformed", "%s.%s is negative", where, key);
    if (rc == 1)
        *out = (uint64_t)json_integer_value (v);
    return rc;
}

/* message_token (an integer; a string is taken as it is) into out. */
static int
s_token (const json_t *root, bool required, char *out, size_t outlen, ingest_result_t *result)
{
    json_t *v = json_object_get (root, "message_token");
    out[0] = '\0';
    if (json_is_integer (v))
        snprintf (out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
    else if (json_is_string (v) && json_string_length (v) > 0 && json_string_length (v) < outlen)
        snprintf (out, outlen, "%s", json_string_value (v));
    else if (v && !json_is_null (v))
        return ingest_fail (result, 400, "malformed", "callback.message_token is not an integer");
    else if (required)
        return ingest_fail (result, 400, "malformed", "callback.message_token missing");
    return out[0] ? 1 : 0;
}

/* --- building items --- */

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* Hands msg to the result; -1 (out of memory) when it cannot. */
static int
s_add (ingest_result_t *result, const ingest_inbox_t *inbox, const char *type,
       const char *external_id, ProtobufCMessage *msg, const char *user_id)
{
    if (ingest_item_add (result, type, external_id, msg, ingest_channel_name (inbox->channel),
                         inbox->id, user_id) != 0)
        return s_oom (result);
    return 0;
}

/* A MessageDelivered with every string our own, for free_unpacked. */
static Retain__V1__MessageDelivered *
s_delivered_new (const char *token, int64_t at, bool read)
{
    Retain__V1__MessageDelivered *d = malloc (sizeof *d);
    if (!d)
        return NULL;
    retain__v1__message_delivered__init (d);
    d->message_id = strdup ("");
    d->external_id = strdup (token);
    d->customer_id = strdup ("");
    if (!d->message_id || !d->external_id || !d->customer_id) {
        protobuf_c_message_free_unpacked (&d->base, NULL);
        return NULL;
    }
    d->channel = RETAIN__V1__CHANNEL__VIBER;
    d->delivered_at = at;
    d->read = read;
    return d;
}

/* A MessageFailed with every string our own, for free_unpacked. */
static Retain__V1__MessageFailed *
s_failed_new (const char *token, const char *error)
{
    Retain__V1__MessageFailed *f = malloc (sizeof *f);
    if (!f)
        return NULL;
    retain__v1__message_failed__init (f);
    f->message_id = strdup ("");
    f->external_id = strdup (token);
    f->error_code = strdup ("");
    f->error = strdup (error);
    f->customer_id = strdup ("");
    if (!f->message_id || !f->external_id || !f->error_code || !f->error || !f->customer_id) {
        protobuf_c_message_free_unpacked (&f->base, NULL);
        return NULL;
    }
    f->channel = RETAIN__V1__CHANNEL__VIBER;
    return f;
}

/* --- the callbacks --- */

/* A user's message: text, or a medium with an optional caption. */
static int
s_message (const ingest_inbox_t *inbox, const json_t *root, int64_t ts, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = NULL;
    Retain__V1__Attachment *a = NULL;
    json_t *sender, *m, *loc, *contact;
    const char *user_id, *name, *type, *text, *media, *file_name;
    char token[32];
    uint64_t size;
    int rc = -1;

    if (s_token (root, true, token, sizeof token, result) < 0 ||
        s_member (root, "callback", "sender", JSON_OBJECT, true, &sender, result) < 0 ||
        s_string (sender, "callback.sender", "id", true, &user_id, result) < 0 ||
        s_string (sender, "callback.sender", "name", false, &name, result) < 0 ||
        s_member (root, "callback", "message", JSON_OBJECT, true, &m, result) < 0 ||
        s_string (m, "callback.message", "type", true, &type, result) < 0 ||
        s_string (m, "callback.message", "text", false, &text, result) < 0 ||
        s_string (m, "callback.message", "media", false, &media, result) < 0 ||
        s_string (m, "callback.message", "file_name", false, &file_name, result) < 0 ||
        s_size (m, "callback.message", "size", &size, result) < 0)
        return -1;

    msg = ingest_inbound_new (inbox);
    if (!msg)
        return s_oom (result);
    if (ingest_set (&msg->external_id, token) != 0 ||
        ingest_set (&msg->external_user_id, user_id) != 0 ||
        ingest_set (&msg->display_name, name) != 0 || ingest_set (&msg->thread_id, user_id) != 0 ||
        ingest_set (&msg->event, "message") != 0)
        goto oom;
    msg->sent_at = ts;

    if (strcmp (type, "text") == 0) {
        if (ingest_set (&msg->text, text) != 0)
            goto oom;
    } else if (strcmp (type, "picture") == 0 || strcmp (type, "video") == 0 ||
               strcmp (type, "file") == 0) {
        const char *kind = type[0] == 'p' ? "image" : type[0] == 'v' ? "video" : "document";
        if (!media[0]) {
            ingest_fail (result, 400, "malformed", "callback.message.media missing");
            goto cleanup;
        }
        a = ingest_attachment_add (msg, kind);
        if (!a || ingest_set (&a->url, media) != 0 || ingest_set (&a->name, file_name) != 0)
            goto oom;
        a->size = size;
        /* The text of a picture or video is its caption. */
        if (ingest_set (&msg->text, text) != 0 || ingest_set (&msg->caption, text) != 0)
            goto oom;
    } else if (strcmp (type, "location") == 0) {
        json_t *lat, *lon;
        if (s_member (m, "callback.message", "location", JSON_OBJECT, true, &loc, result) < 0 ||
            s_member (loc, "callback.message.location", "lat", JSON_REAL, true, &lat, result) < 0 ||
            s_member (loc, "callback.message.location", "lon", JSON_REAL, true, &lon, result) < 0)
            goto cleanup;
        if (json_number_value (lat) < -90 || json_number_value (lat) > 90 ||
            json_number_value (lon) < -180 || json_number_value (lon) > 180) {
            ingest_fail (result, 400, "malformed", "callback.message.location is not on Earth");
            goto cleanup;
        }
        a = ingest_attachment_add (msg, "location");
        if (!a)
            goto oom;
        a->latitude = json_number_value (lat);
        a->longitude = json_number_value (lon);
    } else if (strcmp (type, "contact") == 0) {
        const char *cname, *phone;
        if (s_member (m, "callback.message", "contact", JSON_OBJECT, true, &contact, result) < 0 ||
            s_string (contact, "callback.message.contact", "name", false, &cname, result) < 0 ||
            s_string (contact, "callback.message.contact", "phone_number", true, &phone, result) <
                0)
            goto cleanup;
        /* Viber does not say whose contact it is, so it is not taken as
         * the sender's own phone. */
        a = ingest_attachment_add (msg, "contact");
        if (!a || ingest_set (&a->name, cname) != 0 || ingest_set (&a->phone, phone) != 0)
            goto oom;
    } else if (strcmp (type, "sticker") == 0) {
        json_t *sticker;
        char sid[32];
        if (s_member (m, "callback.message", "sticker_id", JSON_INTEGER, true, &sticker, result) <
            0)
            goto cleanup;
        snprintf (sid, sizeof sid, "%" JSON_INTEGER_FORMAT, json_integer_value (sticker));
        a = ingest_attachment_add (msg, "sticker");
        if (!a || ingest_set (&a->file_id, sid) != 0 || ingest_set (&a->url, media) != 0)
            goto oom;
    } else if (strcmp (type, "url") == 0) {
        /* A shared link: the operator reads it as the message. */
        if (!media[0]) {
            ingest_fail (result, 400, "malformed", "callback.message.media missing");
            goto cleanup;
        }
        if (ingest_set (&msg->text, media) != 0)
            goto oom;
    } else {
        /* A type Viber added later (rich_media, ...): kept when it has
         * text, so the customer is not ignored. */
        if (ingest_set (&msg->text, text) != 0)
            goto oom;
    }

    if (!msg->text[0] && msg->n_attachments == 0) {
        rc = 0;
        goto cleanup;
    }
    rc = s_add (result, inbox, "InboundMessage", msg->external_id, &msg->base, user_id);
    msg = NULL;
    goto cleanup;
oom:
    s_oom (result);
cleanup:
    if (msg)
        protobuf_c_message_free_unpacked (&msg->base, NULL);
    return rc;
}

/* subscribed, unsubscribed, conversation_started: the customer did
 * something without writing. */
static int
s_user_event (const ingest_inbox_t *inbox, const json_t *root, const char *event, int64_t ts,
              ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg;
    json_t *user;
    const char *user_id, *name = "";
    char token[32], *ext = NULL;
    int rc;

    if (s_token (root, false, token, sizeof token, result) < 0)
        return -1;
    if (strcmp (event, "unsubscribed") == 0) {
        if (s_string (root, "callback", "user_id", true, &user_id, result) < 0)
            return -1;
    } else if (s_member (root, "callback", "user", JSON_OBJECT, true, &user, result) < 0 ||
               s_string (user, "callback.user", "id", true, &user_id, result) < 0 ||
               s_string (user, "callback.user", "name", false, &name, result) < 0)
        return -1;

    if (asprintf (&ext, "%s:%s:%" PRId64, event, token[0] ? token : user_id, ts) < 0)
        return s_oom (result);
    msg = ingest_inbound_new (inbox);
    if (!msg || ingest_set (&msg->external_id, ext) != 0 ||
        ingest_set (&msg->external_user_id, user_id) != 0 ||
        ingest_set (&msg->display_name, name) != 0 || ingest_set (&msg->thread_id, user_id) != 0 ||
        ingest_set (&msg->event, event) != 0) {
        if (msg)
            protobuf_c_message_free_unpacked (&msg->base, NULL);
        free (ext);
        return s_oom (result);
    }
    msg->sent_at = ts;
    rc = s_add (result, inbox, "InboundMessage", ext, &msg->base, user_id);
    free (ext);
    return rc;
}

/* delivered, seen, failed: what became of a message the shop sent. */
static int
s_receipt (const ingest_inbox_t *inbox, const json_t *root, const char *event, int64_t ts,
           ingest_result_t *result)
{
    ProtobufCMessage *msg;
    const char *user_id, *desc = "";
    char token[32], *ext = NULL;
    int rc;

    if (s_token (root, true, token, sizeof token, result) < 0 ||
        s_string (root, "callback", "user_id", true, &user_id, result) < 0)
        return -1;
    if (strcmp (event, "failed") == 0) {
        Retain__V1__MessageFailed *f;
        if (s_string (root, "callback", "desc", false, &desc, result) < 0)
            return -1;
        f = s_failed_new (token, desc);
        msg = f ? &f->base : NULL;
    } else {
        Retain__V1__MessageDelivered *d = s_delivered_new (token, ts, strcmp (event, "seen") == 0);
        msg = d ? &d->base : NULL;
    }
    if (!msg)
        return s_oom (result);
    if (asprintf (&ext, "%s:%s:%s", event, token, user_id) < 0) {
        protobuf_c_message_free_unpacked (msg, NULL);
        return s_oom (result);
    }
    rc = s_add (result, inbox, strcmp (event, "failed") == 0 ? "MessageFailed" : "MessageDelivered",
                ext, msg, user_id);
    free (ext);
    return rc;
}

int
viber_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    json_t *root = NULL, *tsv;
    json_error_t jerr;
    const char *sig, *event;
    uint8_t sigbin[RT_SHA256_LEN];
    int64_t ts;
    int rc = -1;

    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed",
                            "%s not allowed: callbacks are POSTed", req->method);
    if (!formdata_is_type (ingest_header (req, "Content-Type"), "application/json"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type must be application/json");
    sig = ingest_header (req, "X-Viber-Content-Signature");
    if (!sig || !sig[0])
        return ingest_fail (result, 401, "missing_signature", "X-Viber-Content-Signature missing");
    if (rt_hex_decode (sig, strlen (sig), sigbin, sizeof sigbin) != RT_SHA256_LEN ||
        !s_signature_ok (inbox, req, sigbin))
        return ingest_fail (result, 403, "bad_signature",
                            "X-Viber-Content-Signature does not match the body");

    root = json_loadb ((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ingest_fail (result, 400, "malformed", "body is not JSON: %s (line %d, column %d)",
                            jerr.text, jerr.line, jerr.column);
    if (!json_is_object (root)) {
        ingest_fail (result, 400, "malformed", "body is not a JSON object");
        goto cleanup;
    }
    if (s_string (root, "callback", "event", true, &event, result) < 0 ||
        s_member (root, "callback", "timestamp", JSON_INTEGER, true, &tsv, result) < 0)
        goto cleanup;
    ts = json_integer_value (tsv);
    if (ts < 0) {
        ingest_fail (result, 400, "malformed", "callback.timestamp is negative");
        goto cleanup;
    }

    if (strcmp (event, "message") == 0)
        rc = s_message (inbox, root, ts, result);
    else if (strcmp (event, "subscribed") == 0 || strcmp (event, "unsubscribed") == 0 ||
             strcmp (event, "conversation_started") == 0)
        rc = s_user_event (inbox, root, event, ts, result);
    else if (strcmp (event, "delivered") == 0 || strcmp (event, "seen") == 0 ||
             strcmp (event, "failed") == 0)
        rc = s_receipt (inbox, root, event, ts, result);
    else
        rc = 0; /* "webhook" (set_webhook's check), or an event we do not keep */
cleanup:
    json_decref (root);
    return rc;
}
