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
 * Comments arrive as entry[].changes[] beside the messaging lists, each
 * with its "field" (developers.facebook.com/docs/graph-api/webhooks/
 * reference/page, .../reference/instagram, and
 * developers.facebook.com/docs/instagram-platform/webhooks/examples):
 *   feed (page)    value.item "comment": InboundMessage with an origin of
 *                  kind comment. comment_id -> external_id and
 *                  origin.comment_id; from {id, name} -> the user;
 *                  message -> text; photo / video (URLs) -> attachments;
 *                  created_time (s) -> sent_at; post_id -> thread_id and
 *                  origin.post_id; parent_id, when it is a comment rather
 *                  than the post -> reply_to and origin.parent_id;
 *                  post.permalink_url and post.status_type. verb add is a
 *                  new comment; edited the same comment again with
 *                  edited = true (item "edited:<id>:<hash of the text>", so
 *                  each distinct edit is kept once); remove an event
 *                  "deleted" (item "deleted:<id>"): the operator must not
 *                  answer in public under a comment that is gone. Other
 *                  items (posts, reactions, shares) and verbs (hide,
 *                  unhide, block) are skipped: not a customer's words.
 *   comments,      (instagram) value.id, text, from {id, username},
 *   live_comments  media {id, media_product_type}, parent_id: the same
 *                  shape of InboundMessage; the time is the entry's.
 *   mentions       (instagram) value {comment_id, media_id} only: an
 *                  @mention on someone else's media names neither its
 *                  author nor its text, which only the Graph API's
 *                  mentioned_comment / mentioned_media give, and ingest
 *                  calls no one; with no customer to attach it to it is
 *                  skipped once its ids are checked.
 *   Any other field (ratings, story_insights, ...) is skipped.
 * A comment whose from.id is the entry's id (the Page or the Instagram
 * account) is the shop's own reply coming back: skipped, as echoes are.
 * A private reply may be sent for 7 days after a comment (Messenger and
 * Instagram "Private Replies"), hence origin.private_reply_until; for a
 * live comment only during the broadcast, which the webhook does not say.
 *
 * Identity: an Instagram comment's from.id is documented as the
 * commenter's Instagram-scoped ID, the id their direct messages carry as
 * sender.id, so comments and DMs meet on one identity. On Facebook the
 * feed's from.id is a Page-scoped user id of the Pages API, which Meta does
 * not document as equal to the Messenger PSID (a private reply is
 * addressed by comment_id precisely because the PSID is not known): the
 * two may be two identities of one customer, joined by routerd's merge
 * suggestion, never guessed here.
 *
 * WhatsApp: entry[].changes[] of field "messages", value.messages[] and
 * value.statuses[]:
 *   messages       InboundMessage: id, from (external user, and phone
 *                  "+<from>"), contacts[].profile.name, timestamp (s),
 *                  context.id -> reply_to; text, media (image, video,
 *                  audio, voice, document, sticker: media id as file_id,
 *                  mime type, file name, caption), location, contacts,
 *                  interactive and button replies (their title as text),
 *                  reactions (the emoji as text, replying to the message
 *                  reacted to; a removed reaction is skipped), order text.
 *                  "system" and "request_welcome" notices are skipped;
 *                  other types are kept without text so nothing the
 *                  customer sent goes unseen.
 *   statuses       sent: skipped (the send API already returned the id;
 *                  delivery is what a retention flow acts on, and sent
 *                  receipts would double the volume). delivered ->
 *                  MessageDelivered; read and played (a voice message
 *                  listened to) -> MessageDelivered read = true; failed ->
 *                  MessageFailed with errors[0] (code, title: details),
 *                  permanent per s_wa_permanent; other statuses skipped.
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
#include "rt_crypto.h"
#include "rt_form.h"

/* Meta batches at most 1000 events per POST; a body with more items than
 * this is not Meta's. */
#define S_MAX_ITEMS 5000
/* Meta's challenge is a short number. */
#define S_MAX_CHALLENGE 512

typedef struct {
    const ingest_inbox_t *inbox; /* lent */
    const ingest_request_t *req; /* lent */
    ingest_result_t *result;     /* what we fill */
    const char *channel_name;    /* of the inbox */
    Retain__V1__Channel channel; /* the inbox's */
} s_ctx_t;

/* --- small helpers ------------------------------------------------- */

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* A string member of obj, NULL when obj is not an object or the member is
 * not a string. */
static const char *
s_str (const json_t *obj, const char *key)
{
    return json_string_value (json_object_get (obj, key));
}

/* A number that may come as a JSON integer, real or string of digits; 0
 * when it is none of them or out of range. */
static int64_t
s_int64 (const json_t *v)
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
static int64_t
s_seconds_ms (int64_t s)
{
    return s > 0 && s < INT64_MAX / 1000 ? s * 1000 : 0;
}

static bool
s_all_digits (const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return i > 0;
}

static int
s_empty (char **field)
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
    if (s_empty (&m->message_id) || s_empty (&m->customer_id) ||
        ingest_set (&m->external_id, external_id) != 0) {
        protobuf_c_message_free_unpacked (&m->base, NULL);
        return NULL;
    }
    m->channel = channel;
    m->delivered_at = at_ms;
    m->read = read;
    return m;
}

/* A MessageFailed with every string malloc'd. */
static Retain__V1__MessageFailed *
s_failed_new (Retain__V1__Channel channel, const char *external_id, const char *code,
              const char *error, bool permanent)
{
    Retain__V1__MessageFailed *m = malloc (sizeof *m);
    if (!m)
        return NULL;
    retain__v1__message_failed__init (m);
    m->message_id = NULL;
    m->external_id = NULL;
    m->error_code = NULL;
    m->error = NULL;
    m->customer_id = NULL;
    if (s_empty (&m->message_id) || s_empty (&m->customer_id) ||
        ingest_set (&m->external_id, external_id) != 0 || ingest_set (&m->error_code, code) != 0 ||
        ingest_set (&m->error, error) != 0) {
        protobuf_c_message_free_unpacked (&m->base, NULL);
        return NULL;
    }
    m->channel = channel;
    m->permanent = permanent;
    return m;
}

/* Adds an item unless the request already holds too many (413). msg is
 * taken in both cases. */
static int
s_add (s_ctx_t *ctx, const char *type, const char *external_id, ProtobufCMessage *msg,
       const char *user)
{
    if (ctx->result->count >= S_MAX_ITEMS) {
        protobuf_c_message_free_unpacked (msg, NULL);
        return ingest_fail (ctx->result, 413, "too_many_items",
                            "more than %d items in one notification", S_MAX_ITEMS);
    }
    if (ingest_item_add (ctx->result, type, external_id, msg, ctx->channel_name, ctx->inbox->id,
                         user) != 0)
        return s_oom (ctx->result);
    return 0;
}

/* A receipt: de-duplicated on "<status>:<dedup>", about external_id. */
static int
s_add_delivered (s_ctx_t *ctx, const char *status, const char *dedup, const char *external_id,
                 const char *user, int64_t at_ms, bool read)
{
    Retain__V1__MessageDelivered *m = s_delivered_new (ctx->channel, external_id, at_ms, read);
    char *ext = NULL;
    int rc;
    if (!m || asprintf (&ext, "%s:%s", status, dedup) < 0) {
        if (m)
            protobuf_c_message_free_unpacked (&m->base, NULL);
        return s_oom (ctx->result);
    }
    rc = s_add (ctx, "MessageDelivered", ext, &m->base, user);
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
        s_oom (result);
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
s_messaging_attachments (s_ctx_t *ctx, Retain__V1__InboundMessage *msg, const json_t *list)
{
    size_t i;
    json_t *att;
    json_array_foreach (list, i, att)
    {
        const json_t *payload = json_object_get (att, "payload");
        const char *type = s_str (att, "type");
        const char *kind = s_messaging_kind (type, payload);
        const char *url = s_str (payload, "url");
        const char *title = s_str (att, "title");
        Retain__V1__Attachment *a;
        /* Older payloads put a fallback's url and title beside the payload. */
        if (!url)
            url = s_str (att, "url");
        if (!title)
            title = s_str (payload, "title");
        if (!kind) {
            if (!url || !*url)
                continue; /* e.g. a fallback with no payload: nothing to show */
            kind = "link";
        }
        a = ingest_attachment_add (msg, kind);
        if (!a || ingest_set (&a->url, url) != 0 || ingest_set (&a->name, title) != 0)
            return s_oom (ctx->result);
        if (strcmp (kind, "location") == 0) {
            const json_t *coords = json_object_get (payload, "coordinates");
            a->latitude = json_number_value (json_object_get (coords, "lat"));
            a->longitude = json_number_value (json_object_get (coords, "long"));
        }
    }
    return 0;
}

/* --- origins ------------------------------------------------------- */

/* A 7-day private reply window (Messenger and Instagram Private Replies). */
#define S_PRIVATE_REPLY_MS (7LL * 24 * 3600 * 1000)

/* An Origin of the given kind with every string malloc'd. */
static Retain__V1__Origin *
s_origin_new (const char *kind, const char *account)
{
    Retain__V1__Origin *o = malloc (sizeof *o);
    if (!o)
        return NULL;
    retain__v1__origin__init (o);
    o->kind = o->post_id = o->comment_id = o->parent_id = o->permalink = o->media_type =
        o->account_id = NULL;
    if (ingest_set (&o->kind, kind) != 0 || s_empty (&o->post_id) || s_empty (&o->comment_id) ||
        s_empty (&o->parent_id) || s_empty (&o->permalink) || s_empty (&o->media_type) ||
        ingest_set (&o->account_id, account) != 0) {
        protobuf_c_message_free_unpacked (&o->base, NULL);
        return NULL;
    }
    return o;
}

/* The story a direct message answers or mentions, as its origin; 0 when
 * it is a plain message, -1 out of memory. */
static int
s_story_origin (Retain__V1__InboundMessage *msg, const json_t *message, const char *account)
{
    const json_t *story = json_object_get (json_object_get (message, "reply_to"), "story");
    const char *kind = NULL, *id = NULL, *url = NULL;
    size_t i;
    json_t *att;
    if (json_is_object (story)) {
        kind = "story_reply";
        id = s_str (story, "id");
        url = s_str (story, "url");
    } else {
        json_array_foreach (json_object_get (message, "attachments"), i, att)
        {
            const char *type = s_str (att, "type");
            if (type && strcmp (type, "story_mention") == 0) {
                kind = "story_mention";
                url = s_str (json_object_get (att, "payload"), "url");
                break;
            }
        }
    }
    if (!kind)
        return 0;
    msg->origin = s_origin_new (kind, account);
    if (!msg->origin || ingest_set (&msg->origin->post_id, id) != 0 ||
        ingest_set (&msg->origin->permalink, url) != 0)
        return -1;
    return 0;
}

static int
s_messaging_message (s_ctx_t *ctx, const json_t *message, const char *sender, int64_t ts,
                     const char *account, const char *path)
{
    const char *mid = s_str (message, "mid");
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
        return s_oom (ctx->result);
    msg->sent_at = ts;
    if (ingest_set (&msg->external_id, mid) != 0 ||
        ingest_set (&msg->external_user_id, sender) != 0 ||
        ingest_set (&msg->text, s_str (message, "text")) != 0 ||
        ingest_set (&msg->reply_to, s_str (json_object_get (message, "reply_to"), "mid")) != 0 ||
        (json_is_array (atts) && s_messaging_attachments (ctx, msg, atts) != 0) ||
        s_story_origin (msg, message, account) != 0) {
        protobuf_c_message_free_unpacked (&msg->base, NULL);
        return ctx->result->status ? -1 : s_oom (ctx->result);
    }
    return s_add (ctx, "InboundMessage", mid, &msg->base, sender);
}

static int
s_messaging_postback (s_ctx_t *ctx, const json_t *postback, const char *sender, int64_t ts)
{
    const char *mid = s_str (postback, "mid");
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
        ingest_set (&msg->text, s_str (postback, "title")) != 0) {
        if (msg)
            protobuf_c_message_free_unpacked (&msg->base, NULL);
        free (ext);
        return s_oom (ctx->result);
    }
    msg->sent_at = ts;
    rc = s_add (ctx, "InboundMessage", ext, &msg->base, sender);
    free (ext);
    return rc;
}

/* A receipt that names no message: everything sent to the user up to
 * watermark. */
static int
s_watermark_receipt (s_ctx_t *ctx, const char *status, const char *sender, int64_t watermark,
                     bool read)
{
    char dedup[512];
    snprintf (dedup, sizeof dedup, "%s:%lld", sender, (long long)watermark);
    return s_add_delivered (ctx, status, dedup, "", sender, watermark, read);
}

static int
s_messaging_event (s_ctx_t *ctx, const json_t *ev, const char *account, const char *path)
{
    const json_t *sender_obj = json_object_get (ev, "sender");
    const char *sender = s_str (sender_obj, "id");
    const json_t *message = json_object_get (ev, "message");
    const json_t *delivery = json_object_get (ev, "delivery");
    const json_t *read = json_object_get (ev, "read");
    const json_t *postback = json_object_get (ev, "postback");
    int64_t ts = s_int64 (json_object_get (ev, "timestamp"));
    if (!json_is_object (ev))
        return ingest_fail (ctx->result, 400, "malformed", "%s is not an object", path);
    if (!json_is_object (message) && !json_is_object (delivery) && !json_is_object (read) &&
        !json_is_object (postback))
        return 0; /* reactions, referrals, opt-ins, handovers: nothing to keep */
    /* The chat plugin names guests by user_ref instead of a PSID. */
    if (!sender)
        sender = s_str (sender_obj, "user_ref");
    if (!sender || !*sender)
        return ingest_fail (ctx->result, 400, "malformed", "%s has no sender.id", path);
    if (json_is_object (message))
        return s_messaging_message (ctx, message, sender, ts, account, path);
    if (json_is_object (postback))
        return s_messaging_postback (ctx, postback, sender, ts);
    if (json_is_object (delivery)) {
        const json_t *mids = json_object_get (delivery, "mids");
        int64_t watermark = s_int64 (json_object_get (delivery, "watermark"));
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
                if (s_add_delivered (ctx, "delivered", id, id, sender, at, false) != 0)
                    return -1;
            }
            return 0;
        }
        return s_watermark_receipt (ctx, "delivered", sender, at, false);
    }
    {
        const char *mid = s_str (read, "mid");
        int64_t watermark = s_int64 (json_object_get (read, "watermark"));
        int64_t at = watermark ? watermark : ts ? ts : ctx->req->now_ms;
        if (mid && *mid)
            return s_add_delivered (ctx, "read", mid, mid, sender, at, true);
        return s_watermark_receipt (ctx, "read", sender, at, true);
    }
}

/* --- comments -------------------------------------------------------- */

/* What a comment notification says, lent from its JSON. */
typedef struct {
    const char *kind;       /* origin kind: "comment", "live_comment" */
    const char *id;         /* the comment id */
    const char *user;       /* the commenter's id */
    const char *name;       /* their name or username */
    const char *text;       /* the comment's text; NULL when none */
    const char *post_id;    /* the post or media commented on; NULL when not given */
    const char *parent_id;  /* the comment answered; NULL for a top-level comment */
    const char *permalink;  /* the post's URL; NULL when not given */
    const char *media_type; /* media_product_type or status_type; NULL when not given */
    const char *photo;      /* URL of a photo in the comment; NULL when none */
    const char *video;      /* URL of a video in the comment; NULL when none */
    int64_t at_ms;          /* when it was written (or sent), unix ms; 0 unknown */
    bool edited;            /* an edit of an earlier notification's comment */
    bool deleted;           /* removed: an event "deleted" */
    bool private_reply;     /* a private reply is possible for 7 days */
} s_comment_t;

/* FNV-1a, 64 bits: tells one edit's text from another's in its item id. */
static uint64_t
s_fnv1a (const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int
s_comment_attachment (Retain__V1__InboundMessage *msg, const char *kind, const char *url)
{
    Retain__V1__Attachment *a;
    if (!url || !*url)
        return 0;
    a = ingest_attachment_add (msg, kind);
    return a ? ingest_set (&a->url, url) : -1;
}

/* One comment as an InboundMessage with its origin. */
static int
s_comment_add (s_ctx_t *ctx, const s_comment_t *c, const char *account)
{
    Retain__V1__InboundMessage *msg = ingest_inbound_new (ctx->inbox);
    Retain__V1__Origin *o;
    char *ext = NULL;
    int rc;
    if (!msg)
        return s_oom (ctx->result);
    if (c->deleted)
        rc = asprintf (&ext, "deleted:%s", c->id);
    else if (c->edited)
        rc = asprintf (&ext, "edited:%s:%016llx", c->id,
                       (unsigned long long)s_fnv1a (c->text ? c->text : ""));
    else
        rc = asprintf (&ext, "%s", c->id);
    if (rc < 0) {
        ext = NULL;
        goto oom;
    }
    msg->origin = s_origin_new (c->kind, account);
    o = msg->origin;
    if (!o || ingest_set (&msg->external_id, c->id) != 0 ||
        ingest_set (&msg->external_user_id, c->user) != 0 ||
        ingest_set (&msg->display_name, c->name) != 0 ||
        ingest_set (&msg->thread_id, c->post_id) != 0 ||
        ingest_set (&msg->reply_to, c->parent_id) != 0 ||
        ingest_set (&msg->event, c->deleted ? "deleted" : "message") != 0 ||
        ingest_set (&o->post_id, c->post_id) != 0 || ingest_set (&o->comment_id, c->id) != 0 ||
        ingest_set (&o->parent_id, c->parent_id) != 0 ||
        ingest_set (&o->permalink, c->permalink) != 0 ||
        ingest_set (&o->media_type, c->media_type) != 0)
        goto oom;
    /* A removed comment keeps its ids only: its words are gone. */
    if (!c->deleted && (ingest_set (&msg->text, c->text) != 0 ||
                        s_comment_attachment (msg, "image", c->photo) != 0 ||
                        s_comment_attachment (msg, "video", c->video) != 0))
        goto oom;
    msg->sent_at = c->at_ms;
    msg->edited = c->edited;
    o->public_ = true;
    if (c->private_reply && c->at_ms > 0 && !c->deleted)
        o->private_reply_until = c->at_ms + S_PRIVATE_REPLY_MS;
    rc = s_add (ctx, "InboundMessage", ext, &msg->base, c->user);
    free (ext);
    return rc;
oom:
    free (ext);
    protobuf_c_message_free_unpacked (&msg->base, NULL);
    return s_oom (ctx->result);
}

/* The commenter from value.from; refuses the notification when missing. */
static int
s_comment_from (s_ctx_t *ctx, const json_t *value, const char *name_key, s_comment_t *c,
                const char *path)
{
    const json_t *from = json_object_get (value, "from");
    c->user = s_str (from, "id");
    c->name = s_str (from, name_key);
    if (!c->user || !*c->user)
        return ingest_fail (ctx->result, 400, "malformed", "%s.value has no from.id", path);
    return 0;
}

/* A Page feed change (object "page", field "feed"). */
static int
s_feed_change (s_ctx_t *ctx, const json_t *value, const char *account, const char *path)
{
    const char *item = s_str (value, "item"), *verb = s_str (value, "verb");
    const json_t *post = json_object_get (value, "post");
    s_comment_t c = {0};
    if (!json_is_object (value))
        return ingest_fail (ctx->result, 400, "malformed", "%s.value is not an object", path);
    if (!item || strcmp (item, "comment") != 0)
        return 0; /* posts, reactions, shares, likes: not a customer's words to answer */
    if (!verb)
        verb = "add";
    if (strcmp (verb, "add") != 0 && strcmp (verb, "edited") != 0 && strcmp (verb, "remove") != 0)
        return 0; /* hide, unhide, block: the Page's moderation */
    c.kind = "comment";
    c.id = s_str (value, "comment_id");
    if (!c.id || !*c.id)
        return ingest_fail (ctx->result, 400, "malformed", "%s.value has no comment_id", path);
    if (s_comment_from (ctx, value, "name", &c, path) != 0)
        return -1;
    if (account && strcmp (c.user, account) == 0)
        return 0; /* the Page's own comment coming back */
    c.text = s_str (value, "message");
    c.post_id = s_str (value, "post_id");
    c.parent_id = s_str (value, "parent_id");
    /* A top-level comment's parent is the post itself. */
    if (c.parent_id && c.post_id && strcmp (c.parent_id, c.post_id) == 0)
        c.parent_id = NULL;
    c.permalink = s_str (post, "permalink_url");
    c.media_type = s_str (post, "status_type");
    c.photo = s_str (value, "photo");
    c.video = s_str (value, "video");
    c.at_ms = s_seconds_ms (s_int64 (json_object_get (value, "created_time")));
    c.edited = strcmp (verb, "edited") == 0;
    c.deleted = strcmp (verb, "remove") == 0;
    c.private_reply = true;
    return s_comment_add (ctx, &c, account);
}

/* An entry's time: Meta stamps Instagram entries in ms or s. */
static int64_t
s_entry_ms (const json_t *entry, int64_t now_ms)
{
    int64_t t = s_int64 (json_object_get (entry, "time"));
    if (t <= 0)
        return now_ms;
    return t >= 100000000000LL ? t : s_seconds_ms (t);
}

/* An Instagram comment (field "comments" or "live_comments"). */
static int
s_ig_comment (s_ctx_t *ctx, const json_t *value, bool live, const char *account, int64_t at_ms,
              const char *path)
{
    const json_t *media = json_object_get (value, "media");
    s_comment_t c = {0};
    if (!json_is_object (value))
        return ingest_fail (ctx->result, 400, "malformed", "%s.value is not an object", path);
    c.kind = live ? "live_comment" : "comment";
    c.id = s_str (value, "id");
    if (!c.id || !*c.id)
        return ingest_fail (ctx->result, 400, "malformed", "%s.value has no id", path);
    if (s_comment_from (ctx, value, "username", &c, path) != 0)
        return -1;
    if (account && strcmp (c.user, account) == 0)
        return 0; /* the account's own reply coming back */
    c.text = s_str (value, "text");
    c.post_id = s_str (media, "id");
    c.media_type = s_str (media, "media_product_type");
    c.parent_id = s_str (value, "parent_id");
    c.at_ms = at_ms;
    c.private_reply = !live;
    return s_comment_add (ctx, &c, account);
}

/* An Instagram @mention (field "mentions"): checked, then skipped (see the
 * head of the file). */
static int
s_ig_mention (s_ctx_t *ctx, const json_t *value, const char *path)
{
    const char *comment_id = s_str (value, "comment_id"), *media_id = s_str (value, "media_id");
    if (!json_is_object (value))
        return ingest_fail (ctx->result, 400, "malformed", "%s.value is not an object", path);
    if ((!comment_id || !*comment_id) && (!media_id || !*media_id))
        return ingest_fail (ctx->result, 400, "malformed",
                            "%s.value has neither comment_id nor media_id", path);
    return 0;
}

/* One of an entry's changes[]: a messaging event in the dashboard's test
 * shape, a comment, or something skipped. */
static int
s_change (s_ctx_t *ctx, const json_t *entry, const json_t *change, const char *path)
{
    const json_t *value = json_object_get (change, "value");
    const char *field = s_str (change, "field");
    const char *account = s_str (entry, "id");
    bool instagram = ctx->channel == RETAIN__V1__CHANNEL__INSTAGRAM;
    char vpath[112];
    if (json_is_object (json_object_get (value, "sender"))) {
        snprintf (vpath, sizeof vpath, "%s.value", path);
        return s_messaging_event (ctx, value, account, vpath);
    }
    if (!field)
        return 0;
    if (!instagram && strcmp (field, "feed") == 0)
        return s_feed_change (ctx, value, account, path);
    if (instagram && (strcmp (field, "comments") == 0 || strcmp (field, "live_comments") == 0))
        return s_ig_comment (ctx, value, strcmp (field, "live_comments") == 0, account,
                             s_entry_ms (entry, ctx->req->now_ms), path);
    if (instagram && strcmp (field, "mentions") == 0)
        return s_ig_mention (ctx, value, path);
    return 0; /* ratings, story_insights, page fields we do not read */
}

static int
s_messaging_entry (s_ctx_t *ctx, const json_t *entry, size_t e)
{
    static const char *const lists[] = {"messaging", "standby"};
    const json_t *changes = json_object_get (entry, "changes");
    const char *account = s_str (entry, "id");
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
            if (s_messaging_event (ctx, ev, account, path) != 0)
                return -1;
        }
    }
    /* changes[] holds feed and comment updates, and messaging events in
     * the dashboard's test shape. */
    if (json_is_array (changes)) {
        json_array_foreach (changes, i, ev)
        {
            snprintf (path, sizeof path, "entry[%zu].changes[%zu]", e, i);
            if (s_change (ctx, entry, ev, path) != 0)
                return -1;
        }
    }
    return 0;
}

/* --- WhatsApp ------------------------------------------------------- */

/* Whether a failure with this WhatsApp Cloud API error code will fail
 * again if retried as is. Permanent: the recipient cannot get it
 * (131026 undeliverable, 131021 recipient is the sender, 130472 number in
 * an experiment, 131050 user stopped marketing messages), it was refused
 * as built (100 and 131008/131009 bad parameters, 131051 unsupported
 * type, 131053 media upload error, 132000-132999 template errors), the
 * 24-hour window closed (131047, and 470 of the old API: only a template
 * may be sent now), or the account must act first (131037 display name,
 * 131042 payment, 131045 certificate). Everything else (rate limits
 * 130429/131048/131056, 131000/131016 service errors, 131049 ecosystem
 * limits, unknown codes) may pass later. */
static bool
s_wa_permanent (long code)
{
    static const long permanent[] = {100,    470,    130472, 131008, 131009, 131021, 131026,
                                     131037, 131042, 131045, 131047, 131050, 131051, 131053};
    size_t i;
    if (code >= 132000 && code <= 132999)
        return true;
    for (i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
        if (permanent[i] == code)
            return true;
    }
    return false;
}

/* The profile name of the contact with wa_id `from`; with a single
 * contact, that one's. */
static const char *
s_wa_name (const json_t *contacts, const char *from)
{
    size_t i;
    json_t *c;
    json_array_foreach (contacts, i, c)
    {
        const char *wa_id = s_str (c, "wa_id");
        if (wa_id && strcmp (wa_id, from) == 0)
            return s_str (json_object_get (c, "profile"), "name");
    }
    if (json_array_size (contacts) == 1)
        return s_str (json_object_get (json_array_get (contacts, 0), "profile"), "name");
    return NULL;
}

static int
s_wa_media (Retain__V1__InboundMessage *msg, const char *type, const json_t *media)
{
    const char *kind = type;
    const char *caption = s_str (media, "caption");
    Retain__V1__Attachment *a;
    if (strcmp (type, "audio") == 0 && json_is_true (json_object_get (media, "voice")))
        kind = "voice";
    a = ingest_attachment_add (msg, kind);
    if (!a || ingest_set (&a->file_id, s_str (media, "id")) != 0 ||
        ingest_set (&a->mime_type, s_str (media, "mime_type")) != 0 ||
        ingest_set (&a->name, s_str (media, "filename")) != 0 ||
        ingest_set (&a->url, s_str (media, "url")) != 0)
        return -1;
    if (caption &&
        (ingest_set (&msg->caption, caption) != 0 || ingest_set (&msg->text, caption) != 0))
        return -1;
    return 0;
}

static int
s_wa_location (Retain__V1__InboundMessage *msg, const json_t *loc)
{
    const char *name = s_str (loc, "name");
    Retain__V1__Attachment *a = ingest_attachment_add (msg, "location");
    if (!a)
        return -1;
    a->latitude = json_number_value (json_object_get (loc, "latitude"));
    a->longitude = json_number_value (json_object_get (loc, "longitude"));
    return ingest_set (&a->name, name && *name ? name : s_str (loc, "address"));
}

static int
s_wa_contacts (Retain__V1__InboundMessage *msg, const json_t *contacts)
{
    size_t i;
    json_t *c;
    json_array_foreach (contacts, i, c)
    {
        const json_t *phones = json_object_get (c, "phones");
        Retain__V1__Attachment *a = ingest_attachment_add (msg, "contact");
        if (!a ||
            ingest_set (&a->name, s_str (json_object_get (c, "name"), "formatted_name")) != 0 ||
            ingest_set (&a->phone, s_str (json_array_get (phones, 0), "phone")) != 0)
            return -1;
    }
    return 0;
}

/* The text of an interactive reply: the tapped button's or row's title,
 * or a flow's body. */
static const char *
s_wa_interactive_text (const json_t *interactive)
{
    const char *title = s_str (json_object_get (interactive, "button_reply"), "title");
    if (!title)
        title = s_str (json_object_get (interactive, "list_reply"), "title");
    if (!title)
        title = s_str (json_object_get (interactive, "nfm_reply"), "body");
    return title;
}

/* Fills msg from a message of the given type; -1 out of memory. */
static int
s_wa_content (Retain__V1__InboundMessage *msg, const char *type, const json_t *m)
{
    const json_t *body = json_object_get (m, type);
    if (strcmp (type, "text") == 0)
        return ingest_set (&msg->text, s_str (body, "body"));
    if (strcmp (type, "image") == 0 || strcmp (type, "video") == 0 || strcmp (type, "audio") == 0 ||
        strcmp (type, "document") == 0 || strcmp (type, "sticker") == 0)
        return s_wa_media (msg, type, body);
    if (strcmp (type, "location") == 0)
        return s_wa_location (msg, body);
    if (strcmp (type, "contacts") == 0)
        return s_wa_contacts (msg, body);
    if (strcmp (type, "interactive") == 0)
        return ingest_set (&msg->text, s_wa_interactive_text (body));
    if (strcmp (type, "button") == 0)
        return ingest_set (&msg->text, s_str (body, "text"));
    if (strcmp (type, "reaction") == 0) {
        if (ingest_set (&msg->text, s_str (body, "emoji")) != 0)
            return -1;
        return ingest_set (&msg->reply_to, s_str (body, "message_id"));
    }
    if (strcmp (type, "order") == 0)
        return ingest_set (&msg->text, s_str (body, "text"));
    return 0;
}

static int
s_wa_message (s_ctx_t *ctx, const json_t *m, const json_t *contacts, const char *path)
{
    const char *id = s_str (m, "id"), *from = s_str (m, "from"), *type = s_str (m, "type");
    const char *reply_to = s_str (json_object_get (m, "context"), "id");
    Retain__V1__InboundMessage *msg;
    if (!json_is_object (m))
        return ingest_fail (ctx->result, 400, "malformed", "%s is not an object", path);
    if (!id || !*id)
        return ingest_fail (ctx->result, 400, "malformed", "%s has no id", path);
    if (!from || !*from)
        return ingest_fail (ctx->result, 400, "malformed", "%s has no from", path);
    if (!type)
        type = "unknown";
    if (strcmp (type, "system") == 0 || strcmp (type, "request_welcome") == 0)
        return 0; /* number changes, chat opened: nothing the customer wrote */
    if (strcmp (type, "reaction") == 0) {
        const char *emoji = s_str (json_object_get (m, "reaction"), "emoji");
        if (!emoji || !*emoji)
            return 0; /* a reaction taken back */
    }
    msg = ingest_inbound_new (ctx->inbox);
    if (!msg)
        return s_oom (ctx->result);
    msg->sent_at = s_seconds_ms (s_int64 (json_object_get (m, "timestamp")));
    if (ingest_set (&msg->external_id, id) != 0 || ingest_set (&msg->external_user_id, from) != 0 ||
        ingest_set (&msg->display_name, s_wa_name (contacts, from)) != 0 ||
        ingest_set (&msg->reply_to, reply_to) != 0 || s_wa_content (msg, type, m) != 0)
        goto oom;
    /* A wa_id is the number without '+'; user names have no number. */
    if (s_all_digits (from)) {
        char phone[RT_PHONE_E164_MAX + 1];
        if (ingest_phone (ctx->inbox, from, "ZZ", phone) && ingest_set (&msg->phone, phone) != 0)
            goto oom;
    }
    return s_add (ctx, "InboundMessage", id, &msg->base, from);
oom:
    protobuf_c_message_free_unpacked (&msg->base, NULL);
    return s_oom (ctx->result);
}

static int
s_wa_failed (s_ctx_t *ctx, const json_t *st, const char *id, const char *user)
{
    const json_t *error = json_array_get (json_object_get (st, "errors"), 0);
    const json_t *code_v = json_object_get (error, "code");
    const char *title = s_str (error, "title");
    const char *details = s_str (json_object_get (error, "error_data"), "details");
    long code = (long)s_int64 (code_v);
    char code_s[32] = "", *text = NULL, *ext = NULL;
    Retain__V1__MessageFailed *m;
    int rc;
    if (code_v)
        snprintf (code_s, sizeof code_s, "%ld", code);
    if (!title || !*title)
        title = s_str (error, "message");
    if (!title || !*title)
        title = "failed";
    if (details && *details && strcmp (details, title) != 0)
        rc = asprintf (&text, "%s: %s", title, details);
    else
        rc = asprintf (&text, "%s", title);
    if (rc < 0)
        return s_oom (ctx->result);
    m = s_failed_new (ctx->channel, id, code_s, text, code_v && s_wa_permanent (code));
    free (text);
    if (!m || asprintf (&ext, "failed:%s", id) < 0) {
        if (m)
            protobuf_c_message_free_unpacked (&m->base, NULL);
        return s_oom (ctx->result);
    }
    rc = s_add (ctx, "MessageFailed", ext, &m->base, user);
    free (ext);
    return rc;
}

static int
s_wa_status (s_ctx_t *ctx, const json_t *st, const char *path)
{
    const char *id = s_str (st, "id"), *status = s_str (st, "status");
    const char *user = s_str (st, "recipient_id");
    int64_t at = s_seconds_ms (s_int64 (json_object_get (st, "timestamp")));
    if (!json_is_object (st))
        return ingest_fail (ctx->result, 400, "malformed", "%s is not an object", path);
    if (!id || !*id)
        return ingest_fail (ctx->result, 400, "malformed", "%s has no id", path);
    if (!status || !*status)
        return ingest_fail (ctx->result, 400, "malformed", "%s has no status", path);
    if (!user)
        user = "";
    if (!at)
        at = ctx->req->now_ms;
    if (strcmp (status, "delivered") == 0)
        return s_add_delivered (ctx, "delivered", id, id, user, at, false);
    if (strcmp (status, "read") == 0 || strcmp (status, "played") == 0)
        return s_add_delivered (ctx, status, id, id, user, at, true);
    if (strcmp (status, "failed") == 0)
        return s_wa_failed (ctx, st, id, user);
    return 0; /* sent, deleted, warning, ... */
}

static int
s_wa_entry (s_ctx_t *ctx, const json_t *entry, size_t e)
{
    const json_t *changes = json_object_get (entry, "changes");
    char path[96];
    size_t c, i;
    json_t *change, *item;
    if (!changes)
        return 0;
    if (!json_is_array (changes))
        return ingest_fail (ctx->result, 400, "malformed", "entry[%zu].changes is not an array", e);
    json_array_foreach (changes, c, change)
    {
        const json_t *value = json_object_get (change, "value");
        const char *field = s_str (change, "field");
        const json_t *messages, *statuses, *contacts;
        /* Template, quality and account updates come on other fields. */
        if (field && strcmp (field, "messages") != 0)
            continue;
        if (!json_is_object (value))
            return ingest_fail (ctx->result, 400, "malformed",
                                "entry[%zu].changes[%zu].value is not an object", e, c);
        messages = json_object_get (value, "messages");
        statuses = json_object_get (value, "statuses");
        contacts = json_object_get (value, "contacts");
        if ((messages && !json_is_array (messages)) || (statuses && !json_is_array (statuses)))
            return ingest_fail (ctx->result, 400, "malformed",
                                "entry[%zu].changes[%zu].value: messages or statuses is not an "
                                "array",
                                e, c);
        json_array_foreach (messages, i, item)
        {
            snprintf (path, sizeof path, "entry[%zu].changes[%zu].value.messages[%zu]", e, c, i);
            if (s_wa_message (ctx, item, contacts, path) != 0)
                return -1;
        }
        json_array_foreach (statuses, i, item)
        {
            snprintf (path, sizeof path, "entry[%zu].changes[%zu].value.statuses[%zu]", e, c, i);
            if (s_wa_status (ctx, item, path) != 0)
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
s_notification (s_ctx_t *ctx)
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
    object = s_str (root, "object");
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
        if (ctx->channel == RETAIN__V1__CHANNEL__WHATSAPP ? s_wa_entry (ctx, entry, e)
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
    s_ctx_t ctx = {inbox, req, result, ingest_channel_name (inbox->channel), inbox->channel};
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
