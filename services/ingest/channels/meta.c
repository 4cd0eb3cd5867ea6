/*
 * meta: Meta's webhooks, for inboxes of channel MESSENGER (Facebook Page),
 * INSTAGRAM (Instagram professional account) and WHATSAPP (Cloud API).
 *
 * GET is the subscription handshake: hub.mode=subscribe and a
 * hub.verify_token equal to the inbox config's "verify_token" are
 * answered 200 with hub.challenge as text/plain; anything else 403.
 *
 * POST carries a JSON notification signed with X-Hub-Signature-256:
 * "sha256=" and the hex HMAC-SHA256 of the raw body under the app secret
 * (the inbox secret, or the previous one during a rotation). Its "object"
 * must be the inbox's ("page", "instagram", "whatsapp_business_account").
 * One POST batches many entries, each with many events: all are read.
 *
 * Messenger and Instagram: entry[].messaging[] (and standby[], the events
 * of threads another app owns, and changes[].value when it is a messaging
 * event, the shape of the dashboard's test notifications):
 *   message        InboundMessage (mid; text; attachments image, video,
 *                  audio, file -> document, location, reel/ig_reel ->
 *                  video, an image with a sticker_id -> sticker, other
 *                  types with a URL (fallback, share, story_mention) ->
 *                  "link"; reply_to.mid). Echoes of what the page sent
 *                  and deleted (unsent) messages are skipped.
 *   postback       InboundMessage with the button's title as text.
 *   delivery       MessageDelivered per delivered mid.
 *   read           MessageDelivered, read = true, for read.mid (Instagram).
 *   A delivery without mids or a Messenger read (only a watermark: "all
 *   messages up to then") becomes one receipt with an empty external_id,
 *   delivered_at = the watermark and the user in the envelope key.
 *   Anything else (reactions, referrals, opt-ins, handovers) is skipped.
 *   Instagram story replies (message.reply_to.story {id, url}) and story
 *   mentions (an attachment of type story_mention with payload.url) are
 *   messages with an origin of kind story_reply / story_mention naming the
 *   story (Instagram messaging webhooks and "Story Mention",
 *   developers.facebook.com/docs/messenger-platform/instagram/features/
 *   story-mention).
 *
 * Comments, mentions and the origins of comments and story replies are
 * meta_comments.c's; WhatsApp's messages and statuses are meta_whatsapp.c's.
 * This file holds what every notification goes through (the handshake,
 * the signature, the envelope) and the helpers all three share
 * (meta_int.h).
 *
 * Receipts are de-duplicated on "<status>:<message id>", so a message's
 * delivered and read receipts are two items.
 *
 * A notification whose identifiers are missing (an event without a sender,
 * a message or comment without an id, a comment without from.id, a
 * mention without comment_id and media_id) is refused whole with 400
 * naming the element:
 * an item without an id cannot be de-duplicated. Optional parts that are
 * malformed are treated as absent.
 */
#include "channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formdata.h"
#include "meta_int.h"
#include "rt_crypto.h"
#include "rt_form.h"

/* Meta batches at most 1000 events per POST; a body with more items than
 * this is not Meta's. */
#define S_MAX_ITEMS 5000
/* Meta's challenge is a short number. */
#define S_MAX_CHALLENGE 512

/* --- small helpers ------------------------------------------------- */

int
meta_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* A string member of obj, NULL when obj is not an object or the member is
 * not a string. */
const char *
meta_str (const json_t *obj, const char *key)
{
    return json_string_value (json_object_get (obj, key));
}

/* A number that may come as a JSON integer, real or string of digits; 0
 * when it is none of them or out of range. */
int64_t
meta_int64 (const json_t *v)
{
    if (json_is_integer (v))
        return (int64_t)json_integer_value (v);
    if (json_is_real (v)) {
        double d = json_real_value (v);
        return d > -9.0e18 && d < 9.0e18 ? (int64_t)d : 0;
    }
    if (json_is_string (v)) {
        const char *s = json_string_value (v);
        char *end;
        long long x;
        errno = 0;
        x = strtoll (s, &end, 10);
        if (end == s || *end || errno)
            return 0;
        return x;
    }
    return 0;
}

/* Unix seconds to ms; 0 (unknown) when negative or too large to scale. */
int64_t
meta_seconds_ms (int64_t s)
{
    return s > 0 && s < INT64_MAX / 1000 ? s * 1000 : 0;
}

int
meta_empty (char **field)
{
    *field = strdup ("");
    return *field ? 0 : -1;
}

/* A MessageDelivered with every string malloc'd (see channel.h). */
static Retain__V1__MessageDelivered *
s_delivered_new (Retain__V1__Channel channel, const char *external_id, int64_t at_ms, bool read)
{
    Retain__V1__MessageDelivered *m = malloc (sizeof *m);
    if (!m)
        return NULL;
    retain__v1__message_delivered__init (m);
    m->message_id = NULL;
    m->external_id = NULL;
    m->customer_id = NULL;
    if (meta_empty (&m->message_id) || meta_empty (&m->customer_id) ||
        ingest_set (&m->external_id, external_id) != 0) {
        protobuf_c_message_free_unpacked (&m->base, NULL);
        return NULL;
    }
    m->channel = channel;
    m->delivered_at = at_ms;
    m->read = read;
    return m;
}

/* Adds an item unless the request already holds too many (413). msg is
 * taken in both cases. */
int
meta_add (meta_ctx_t *ctx, const char *type, const char *external_id, ProtobufCMessage *msg,
          const char *user)
{
    if (ctx->result->count >= S_MAX_ITEMS) {
        protobuf_c_message_free_unpacked (msg, NULL);
        return ingest_fail (ctx->result, 413, "too_many_items",
                            "more than %d items in one notification", S_MAX_ITEMS);
    }
    if (ingest_item_add (ctx->result, type, external_id, msg, ctx->channel_name, ctx->inbox->id,
                         user) != 0)
        return meta_oom (ctx->result);
    return 0;
}

/* A receipt: de-duplicated on "<status>:<dedup>", about external_id. */
int
meta_add_delivered (meta_ctx_t *ctx, const char *status, const char *dedup, const char *external_id,
                    const char *user, int64_t at_ms, bool read)
{
    Retain__V1__MessageDelivered *m = s_delivered_new (ctx->channel, external_id, at_ms, read);
    char *ext = NULL;
    int rc;
    if (!m || asprintf (&ext, "%s:%s", status, dedup) < 0) {
        if (m)
            protobuf_c_message_free_unpacked (&m->base, NULL);
        return meta_oom (ctx->result);
    }
    rc = meta_add (ctx, "MessageDelivered", ext, &m->base, user);
    free (ext);
    return rc;
}

/* --- the handshake ------------------------------------------------- */

static int
s_handshake (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    const char *query = req->query ? req->query : "";
    const char *mode, *token, *challenge, *want;
    char err[128];
    size_t i;
    int rc = -1;
    rt_form_t *form = rt_form_parse (query, strlen (query), err, sizeof err);
    if (!form)
        return ingest_fail (result, 400, "malformed", "query string: %s", err);
    mode = rt_form_get (form, "hub.mode");
    token = rt_form_get (form, "hub.verify_token");
    challenge = rt_form_get (form, "hub.challenge");
    want = json_string_value (json_object_get (inbox->config, "verify_token"));
    if (!mode || strcmp (mode, "subscribe") != 0) {
        ingest_fail (result, 403, "verify_failed", "hub.mode is not \"subscribe\"");
        goto cleanup;
    }
    /* Without a configured token nothing can prove the caller is Meta. */
    if (!want || !*want) {
        ingest_fail (result, 403, "verify_failed", "the inbox has no verify_token configured");
        goto cleanup;
    }
    if (!token || !rt_ct_equal (token, strlen (token), want, strlen (want))) {
        ingest_fail (result, 403, "verify_failed", "hub.verify_token does not match");
        goto cleanup;
    }
    if (!challenge || !*challenge) {
        ingest_fail (result, 400, "malformed", "hub.challenge missing");
        goto cleanup;
    }
    /* It is echoed back: keep it to what Meta sends (a short token). */
    for (i = 0; challenge[i]; i++) {
        if (i >= S_MAX_CHALLENGE || challenge[i] <= ' ' || challenge[i] > '~') {
            ingest_fail (result, 400, "malformed", "hub.challenge is not a short printable token");
            goto cleanup;
        }
    }
    result->response = strdup (challenge);
    if (!result->response) {
        meta_oom (result);
        goto cleanup;
    }
    result->response_type = "text/plain";
    rc = 0;
cleanup:
    rt_form_destroy (&form);
    return rc;
}

/* --- the signature ------------------------------------------------- */

static bool
s_signed_with (const char *secret, const ingest_request_t *req, const uint8_t sig[RT_SHA256_LEN])
{
    uint8_t mac[RT_SHA256_LEN];
    /* An empty key is one anybody can sign with. */
    if (!secret || !*secret)
        return false;
    rt_hmac_sha256 (secret, strlen (secret), req->body, req->body_len, mac);
    return rt_ct_equal (mac, sizeof mac, sig, RT_SHA256_LEN);
}

static int
s_verify (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    const char *header = ingest_header (req, "X-Hub-Signature-256");
    uint8_t sig[RT_SHA256_LEN];
    if (!header || !*header)
        return ingest_fail (result, 401, "missing_signature", "X-Hub-Signature-256 missing");
    if (strncasecmp (header, "sha256=", 7) != 0 ||
        rt_hex_decode (header + 7, strlen (header + 7), sig, sizeof sig) != RT_SHA256_LEN)
        return ingest_fail (result, 403, "bad_signature",
                            "X-Hub-Signature-256 is not sha256=<64 hex digits>");
    if (s_signed_with (inbox->secret, req, sig) || s_signed_with (inbox->previous_secret, req, sig))
        return 0;
    return ingest_fail (result, 403, "bad_signature",
                        "X-Hub-Signature-256 does not match the body");
}

/* --- Messenger and Instagram ---------------------------------------- */

/* The attachment kind of a Messenger/Instagram attachment type; NULL for
 * a type we keep only when it carries a URL ("link"). */
static const char *
s_messaging_kind (const char *type, const json_t *payload)
{
    if (!type)
        return NULL;
    if (strcmp (type, "image") == 0)
        return json_object_get (payload, "sticker_id") ? "sticker" : "image";
    if (strcmp (type, "video") == 0 || strcmp (type, "reel") == 0 || strcmp (type, "ig_reel") == 0)
        return "video";
    if (strcmp (type, "audio") == 0)
        return "audio";
    if (strcmp (type, "file") == 0)
        return "document";
    if (strcmp (type, "location") == 0)
        return "location";
    return NULL;
}

static int
s_messaging_attachments (meta_ctx_t *ctx, Retain__V1__InboundMessage *msg, const json_t *list)
{
    size_t i;
    json_t *att;
    json_array_foreach (list, i, att)
    {
        const json_t *payload = json_object_get (att, "payload");
        const char *type = meta_str (att, "type");
        const char *kind = s_messaging_kind (type, payload);
        const char *url = meta_str (payload, "url");
        const char *title = meta_str (att, "title");
        Retain__V1__Attachment *a;
        /* Older payloads put a fallback's url and title beside the payload. */
        if (!url)
            url = meta_str (att, "url");
        if (!title)
            title = meta_str (payload, "title");
        if (!kind) {
            if (!url || !*url)
                continue; /* e.g. a fallback with no payload: nothing to show */
            kind = "link";
        }
        a = ingest_attachment_add (msg, kind);
        if (!a || ingest_set (&a->url, url) != 0 || ingest_set (&a->name, title) != 0)
            return meta_oom (ctx->result);
        if (strcmp (kind, "location") == 0) {
            const json_t *coords = json_object_get (payload, "coordinates");
            a->latitude = json_number_value (json_object_get (coords, "lat"));
            a->longitude = json_number_value (json_object_get (coords, "long"));
        }
    }
    return 0;
}

static int
s_messaging_message (meta_ctx_t *ctx, const json_t *message, const char *sender, int64_t ts,
                     const char *account, const char *path)
{
    const char *mid = meta_str (message, "mid");
    const json_t *atts = json_object_get (message, "attachments");
    Retain__V1__InboundMessage *msg;
    if (json_is_true (json_object_get (message, "is_echo")))
        return 0; /* our own page's message coming back */
    if (json_is_true (json_object_get (message, "is_deleted")))
        return 0; /* the customer unsent it */
    if (!mid || !*mid)
        return ingest_fail (ctx->result, 400, "malformed", "%s.message has no mid", path);
    msg = ingest_inbound_new (ctx->inbox);
    if (!msg)
        return meta_oom (ctx->result);
    msg->sent_at = ts;
    if (ingest_set (&msg->external_id, mid) != 0 ||
        ingest_set (&msg->external_user_id, sender) != 0 ||
        ingest_set (&msg->text, meta_str (message, "text")) != 0 ||
        ingest_set (&msg->reply_to, meta_str (json_object_get (message, "reply_to"), "mid")) != 0 ||
        (json_is_array (atts) && s_messaging_attachments (ctx, msg, atts) != 0) ||
        meta_story_origin (msg, message, account) != 0) {
        protobuf_c_message_free_unpacked (&msg->base, NULL);
        return ctx->result->status ? -1 : meta_oom (ctx->result);
    }
    return meta_add (ctx, "InboundMessage", mid, &msg->base, sender);
}

static int
s_messaging_postback (meta_ctx_t *ctx, const json_t *postback, const char *sender, int64_t ts)
{
    const char *mid = meta_str (postback, "mid");
    char *ext = NULL;
    Retain__V1__InboundMessage *msg;
    int rc;
    /* Older postbacks carry no mid: the tap is identified by who and when. */
    if (mid && *mid)
        ext = strdup (mid);
    else if (asprintf (&ext, "postback:%s:%lld", sender, (long long)ts) < 0)
        ext = NULL;
    msg = ingest_inbound_new (ctx->inbox);
    if (!ext || !msg || ingest_set (&msg->external_id, ext) != 0 ||
        ingest_set (&msg->external_user_id, sender) != 0 ||
        ingest_set (&msg->text, meta_str (postback, "title")) != 0) {
        if (msg)
            protobuf_c_message_free_unpacked (&msg->base, NULL);
        free (ext);
        return meta_oom (ctx->result);
    }
    msg->sent_at = ts;
    rc = meta_add (ctx, "InboundMessage", ext, &msg->base, sender);
    free (ext);
    return rc;
}

/* A receipt that names no message: everything sent to the user up to
 * watermark. */
static int
s_watermark_receipt (meta_ctx_t *ctx, const char *status, const char *sender, int64_t watermark,
                     bool read)
{
    char dedup[512];
    snprintf (dedup, sizeof dedup, "%s:%lld", sender, (long long)watermark);
    return meta_add_delivered (ctx, status, dedup, "", sender, watermark, read);
}

int
meta_messaging_event (meta_ctx_t *ctx, const json_t *ev, const char *account, const char *path)
{
    const json_t *sender_obj = json_object_get (ev, "sender");
    const char *sender = meta_str (sender_obj, "id");
    const json_t *message = json_object_get (ev, "message");
    const json_t *delivery = json_object_get (ev, "delivery");
    const json_t *read = json_object_get (ev, "read");
    const json_t *postback = json_object_get (ev, "postback");
    int64_t ts = meta_int64 (json_object_get (ev, "timestamp"));
    if (!json_is_object (ev))
        return ingest_fail (ctx->result, 400, "malformed", "%s is not an object", path);
    if (!json_is_object (message) && !json_is_object (delivery) && !json_is_object (read) &&
        !json_is_object (postback))
        return 0; /* reactions, referrals, opt-ins, handovers: nothing to keep */
    /* The chat plugin names guests by user_ref instead of a PSID. */
    if (!sender)
        sender = meta_str (sender_obj, "user_ref");
    if (!sender || !*sender)
        return ingest_fail (ctx->result, 400, "malformed", "%s has no sender.id", path);
    if (json_is_object (message))
        return s_messaging_message (ctx, message, sender, ts, account, path);
    if (json_is_object (postback))
        return s_messaging_postback (ctx, postback, sender, ts);
    if (json_is_object (delivery)) {
        const json_t *mids = json_object_get (delivery, "mids");
        int64_t watermark = meta_int64 (json_object_get (delivery, "watermark"));
        int64_t at = watermark ? watermark : ts ? ts : ctx->req->now_ms;
        size_t i;
        json_t *mid;
        if (json_is_array (mids) && json_array_size (mids) > 0) {
            json_array_foreach (mids, i, mid)
            {
                const char *id = json_string_value (mid);
                if (!id || !*id)
                    return ingest_fail (ctx->result, 400, "malformed",
                                        "%s.delivery.mids[%zu] is not an id", path, i);
                if (meta_add_delivered (ctx, "delivered", id, id, sender, at, false) != 0)
                    return -1;
            }
            return 0;
        }
        return s_watermark_receipt (ctx, "delivered", sender, at, false);
    }
    {
        const char *mid = meta_str (read, "mid");
        int64_t watermark = meta_int64 (json_object_get (read, "watermark"));
        int64_t at = watermark ? watermark : ts ? ts : ctx->req->now_ms;
        if (mid && *mid)
            return meta_add_delivered (ctx, "read", mid, mid, sender, at, true);
        return s_watermark_receipt (ctx, "read", sender, at, true);
    }
}

static int
s_messaging_entry (meta_ctx_t *ctx, const json_t *entry, size_t e)
{
    static const char *const lists[] = {"messaging", "standby"};
    const json_t *changes = json_object_get (entry, "changes");
    const char *account = meta_str (entry, "id");
    char path[96];
    size_t l, i;
    json_t *ev;
    for (l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        const json_t *list = json_object_get (entry, lists[l]);
        if (!list)
            continue;
        if (!json_is_array (list))
            return ingest_fail (ctx->result, 400, "malformed", "entry[%zu].%s is not an array", e,
                                lists[l]);
        json_array_foreach (list, i, ev)
        {
            snprintf (path, sizeof path, "entry[%zu].%s[%zu]", e, lists[l], i);
            if (meta_messaging_event (ctx, ev, account, path) != 0)
                return -1;
        }
    }
    /* changes[] holds feed and comment updates, and messaging events in
     * the dashboard's test shape. */
    if (json_is_array (changes)) {
        json_array_foreach (changes, i, ev)
        {
            snprintf (path, sizeof path, "entry[%zu].changes[%zu]", e, i);
            if (meta_change (ctx, entry, ev, path) != 0)
                return -1;
        }
    }
    return 0;
}

/* --- the handler ---------------------------------------------------- */

static const char *
s_object_of (Retain__V1__Channel channel)
{
    switch (channel) {
    case RETAIN__V1__CHANNEL__MESSENGER:
        return "page";
    case RETAIN__V1__CHANNEL__INSTAGRAM:
        return "instagram";
    case RETAIN__V1__CHANNEL__WHATSAPP:
        return "whatsapp_business_account";
    default:
        return NULL;
    }
}

/* Keeps the failure, drops any items found before it: a refused request
 * puts nothing on the bus. */
static int
s_abandon (ingest_result_t *result)
{
    char reason[sizeof result->reason];
    int status = result->status;
    const char *label = result->label;
    memcpy (reason, result->reason, sizeof reason);
    ingest_result_reset (result);
    result->status = status;
    result->label = label;
    memcpy (result->reason, reason, sizeof reason);
    return -1;
}

static int
s_notification (meta_ctx_t *ctx)
{
    const ingest_request_t *req = ctx->req;
    json_error_t jerr;
    json_t *root, *entries, *entry;
    const char *object, *want = s_object_of (ctx->channel);
    size_t e;
    int rc = -1;
    if (!want)
        return ingest_fail (ctx->result, 400, "wrong_object",
                            "inbox channel %s is not a Meta channel", ctx->channel_name);
    root = json_loadb ((const char *)req->body, req->body_len, 0, &jerr);
    if (!root)
        return ingest_fail (ctx->result, 400, "malformed",
                            "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                            jerr.text);
    object = meta_str (root, "object");
    entries = json_object_get (root, "entry");
    if (!json_is_object (root)) {
        ingest_fail (ctx->result, 400, "malformed", "the body is not a JSON object");
        goto cleanup;
    }
    if (!object) {
        ingest_fail (ctx->result, 400, "malformed", "\"object\" missing");
        goto cleanup;
    }
    if (strcmp (object, want) != 0) {
        ingest_fail (ctx->result, 400, "wrong_object",
                     "object \"%.40s\" does not match inbox channel %s", object, ctx->channel_name);
        goto cleanup;
    }
    if (!json_is_array (entries)) {
        ingest_fail (ctx->result, 400, "malformed", "\"entry\" is not an array");
        goto cleanup;
    }
    json_array_foreach (entries, e, entry)
    {
        if (!json_is_object (entry)) {
            ingest_fail (ctx->result, 400, "malformed", "entry[%zu] is not an object", e);
            goto cleanup;
        }
        if (ctx->channel == RETAIN__V1__CHANNEL__WHATSAPP ? meta_wa_entry (ctx, entry, e)
                                                          : s_messaging_entry (ctx, entry, e))
            goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref (root);
    return rc;
}

int
meta_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    meta_ctx_t ctx = {inbox, req, result, ingest_channel_name (inbox->channel), inbox->channel};
    const char *ctype;
    if (strcmp (req->method, "GET") == 0)
        return s_handshake (inbox, req, result);
    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed",
                            "method %.16s not allowed: GET or POST", req->method);
    ctype = ingest_header (req, "Content-Type");
    if (!ctype || !formdata_is_type (ctype, "application/json"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type %.60s is not application/json", ctype ? ctype : "(none)");
    if (s_verify (inbox, req, result) != 0)
        return -1;
    if (s_notification (&ctx) != 0)
        return s_abandon (result);
    return 0;
}
