/*
 * telegram: Telegram Bot API webhook updates.
 *
 * Telegram POSTs one JSON Update per request. When the webhook was set with
 * a secret_token, every request carries it back in the header
 * X-Telegram-Bot-Api-Secret-Token. It is a shared secret, not a signature
 * over the body: it is compared in constant time against the inbox's secret
 * (and the previous one during a rotation) and never logged.
 *
 * An Update carries at most one of message, edited_message, channel_post,
 * edited_channel_post, business_message, edited_business_message; each
 * becomes one InboundMessage. Every other kind (callback_query,
 * my_chat_member, poll, ...) is valid and carries nothing to keep.
 *
 * External ids: message ids are unique only within a chat, so a message is
 * "<chat.id>:<message_id>". An edit is a fact of its own, kept once per
 * edit: "<chat.id>:<message_id>:edit:<edit_date>". A retried update gives
 * the same id both times, so the writer's de-duplication absorbs it.
 * reply_to uses the same form, so it names the external id of the message
 * answered, as InboundMessage.reply_to promises.
 */
#include "channel.h"
#include "formdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_crypto.h"

/* The update kinds that carry a Message, and whether they are edits. */
static const struct {
    const char *key;
    bool edited;
} s_kinds[] = {
    {"message", false},          {"edited_message", true},
    {"channel_post", false},     {"edited_channel_post", true},
    {"business_message", false}, {"edited_business_message", true},
};

/* --- request checks --- */

/* True when token equals the inbox's secret or its previous one. An empty
 * secret never matches: previous_secret is "" when there is none, and an
 * empty header must not pass for it. */
static bool
s_secret_ok (const ingest_inbox_t *inbox, const char *token)
{
    const char *secrets[2] = {inbox->secret, inbox->previous_secret};
    size_t len = strlen (token);
    bool ok = false;
    int i;
    for (i = 0; i < 2; i++) {
        /* No early exit: the time taken does not tell which one matched. */
        if (secrets[i] && secrets[i][0] &&
            rt_ct_equal (token, len, secrets[i], strlen (secrets[i])))
            ok = true;
    }
    return ok;
}

/* --- typed access to the Update, failing with the path of what is wrong --- */

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
    /* Telegram sends whole numbers where a Float is documented (a latitude
     * of 50), so an integer is a number too. */
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
    return rc;
}

static int
s_integer (const json_t *obj, const char *where, const char *key, bool required, json_int_t *out,
           ingest_result_t *result)
{
    json_t *v;
    int rc = s_member (obj, where, key, JSON_INTEGER, required, &v, result);
    *out = rc == 1 ? json_integer_value (v) : 0;
    return rc;
}

/* A size in bytes: a non-negative integer, 0 when absent. */
static int
s_size (const json_t *obj, const char *where, const char *key, uint64_t *out,
        ingest_result_t *result)
{
    json_int_t v;
    int rc = s_integer (obj, where, key, false, &v, result);
    if (rc == 1 && v < 0)
        return ingest_fail (result, 400, "malformed", "%s.%s is negative", where, key);
    *out = rc == 1 ? (uint64_t)v : 0;
    return rc;
}

static int
s_object (const json_t *obj, const char *where, const char *key, bool required, json_t **out,
          ingest_result_t *result)
{
    return s_member (obj, where, key, JSON_OBJECT, required, out, result);
}

/* A unix time in seconds (date, edit_date): a non-negative integer small
 * enough that its milliseconds fit, so a hostile value cannot overflow. */
static int
s_seconds (const json_t *obj, const char *where, const char *key, json_int_t *out,
           ingest_result_t *result)
{
    if (s_integer (obj, where, key, true, out, result) < 0)
        return -1;
    if (*out < 0 || *out > 100000000000LL)
        return ingest_fail (result, 400, "malformed", "%s.%s is not a unix time", where, key);
    return 1;
}

/* --- building the message --- */

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* "first last", or whichever is not empty; a new string or NULL. */
static char *
s_full_name (const char *first, const char *last)
{
    char *name = NULL;
    if (!first[0] || !last[0])
        return strdup (first[0] ? first : last);
    if (asprintf (&name, "%s %s", first, last) < 0)
        return NULL;
    return name;
}

/* A file the message carries (document, voice, audio, ...). */
static int
s_file (Retain__V1__InboundMessage *msg, const json_t *m, const char *where, const char *key,
        const char *kind, ingest_result_t *result)
{
    char path[64];
    json_t *file;
    const char *file_id, *mime = "", *name = "";
    uint64_t size;
    Retain__V1__Attachment *a;
    int rc = s_object (m, where, key, false, &file, result);
    if (rc <= 0)
        return rc;
    snprintf (path, sizeof path, "%s.%s", where, key);
    if (s_string (file, path, "file_id", true, &file_id, result) < 0 ||
        s_string (file, path, "mime_type", false, &mime, result) < 0 ||
        s_string (file, path, "file_name", false, &name, result) < 0 ||
        s_size (file, path, "file_size", &size, result) < 0)
        return -1;
    if (strcmp (key, "sticker") == 0) {
        /* Stickers come in three documented formats and no mime_type. */
        json_t *animated = json_object_get (file, "is_animated");
        json_t *video = json_object_get (file, "is_video");
        mime = json_is_true (animated) ? "application/x-tgsticker"
               : json_is_true (video)  ? "video/webm"
                                       : "image/webp";
    }
    a = ingest_attachment_add (msg, kind);
    if (!a || ingest_set (&a->file_id, file_id) != 0 || ingest_set (&a->mime_type, mime) != 0 ||
        ingest_set (&a->name, name) != 0)
        return s_oom (result);
    a->size = size;
    return 1;
}

/* The photo: Telegram sends several sizes of it; the largest is kept. */
static int
s_photo (Retain__V1__InboundMessage *msg, const json_t *m, const char *where,
         ingest_result_t *result)
{
    char path[64];
    json_t *sizes, *best = NULL;
    double best_area = -1;
    const char *file_id;
    uint64_t size;
    size_t i;
    Retain__V1__Attachment *a;
    int rc = s_member (m, where, "photo", JSON_ARRAY, false, &sizes, result);
    if (rc <= 0)
        return rc;
    for (i = 0; i < json_array_size (sizes); i++) {
        json_t *p = json_array_get (sizes, i);
        json_int_t w, h;
        snprintf (path, sizeof path, "%s.photo[%zu]", where, i);
        if (!json_is_object (p))
            return ingest_fail (result, 400, "malformed", "%s is not an object", path);
        if (s_integer (p, path, "width", false, &w, result) < 0 ||
            s_integer (p, path, "height", false, &h, result) < 0)
            return -1;
        /* In double: hostile widths must not overflow the product. */
        if ((double)w * (double)h >= best_area) {
            best_area = (double)w * (double)h;
            best = p;
        }
    }
    if (!best)
        return ingest_fail (result, 400, "malformed", "%s.photo is empty", where);
    snprintf (path, sizeof path, "%s.photo[]", where);
    if (s_string (best, path, "file_id", true, &file_id, result) < 0 ||
        s_size (best, path, "file_size", &size, result) < 0)
        return -1;
    a = ingest_attachment_add (msg, "image");
    if (!a || ingest_set (&a->file_id, file_id) != 0)
        return s_oom (result);
    a->size = size;
    return 1;
}

/* A Location object into a "location" attachment named name. */
static int
s_place (Retain__V1__InboundMessage *msg, const json_t *loc, const char *path, const char *name,
         ingest_result_t *result)
{
    json_t *lat, *lon;
    Retain__V1__Attachment *a;
    if (s_member (loc, path, "latitude", JSON_REAL, true, &lat, result) < 0 ||
        s_member (loc, path, "longitude", JSON_REAL, true, &lon, result) < 0)
        return -1;
    if (json_number_value (lat) < -90 || json_number_value (lat) > 90 ||
        json_number_value (lon) < -180 || json_number_value (lon) > 180)
        return ingest_fail (result, 400, "malformed", "%s is not on Earth", path);
    a = ingest_attachment_add (msg, "location");
    if (!a || ingest_set (&a->name, name) != 0)
        return s_oom (result);
    a->latitude = json_number_value (lat);
    a->longitude = json_number_value (lon);
    return 1;
}

/* A venue, or else a bare location. Telegram also sets location on a venue
 * message, for older clients: one attachment, not two. */
static int
s_location (Retain__V1__InboundMessage *msg, const json_t *m, const char *where,
            ingest_result_t *result)
{
    char path[64], *name;
    json_t *venue, *loc;
    const char *title, *address;
    int rc = s_object (m, where, "venue", false, &venue, result);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        snprintf (path, sizeof path, "%s.venue", where);
        if (s_object (venue, path, "location", true, &loc, result) < 0 ||
            s_string (venue, path, "title", false, &title, result) < 0 ||
            s_string (venue, path, "address", false, &address, result) < 0)
            return -1;
        name = !title[0] || !address[0] ? strdup (title[0] ? title : address) : NULL;
        if (title[0] && address[0] && asprintf (&name, "%s, %s", title, address) < 0)
            name = NULL;
        if (!name)
            return s_oom (result);
        snprintf (path, sizeof path, "%s.venue.location", where);
        rc = s_place (msg, loc, path, name, result);
        free (name);
        return rc;
    }
    rc = s_object (m, where, "location", false, &loc, result);
    if (rc <= 0)
        return rc;
    snprintf (path, sizeof path, "%s.location", where);
    return s_place (msg, loc, path, "", result);
}

/* A shared contact. When it is the sender's own (the "share my phone
 * number" button), its number is the customer's phone. */
static int
s_contact (Retain__V1__InboundMessage *msg, const json_t *m, const char *where, const json_t *from,
           ingest_result_t *result)
{
    char path[64], e164[RT_PHONE_E164_MAX + 1], *name;
    json_t *c;
    const char *phone, *first, *last;
    json_int_t user_id, from_id;
    Retain__V1__Attachment *a;
    int has_user, rc = s_object (m, where, "contact", false, &c, result);
    if (rc <= 0)
        return rc;
    snprintf (path, sizeof path, "%s.contact", where);
    if (s_string (c, path, "phone_number", true, &phone, result) < 0 ||
        s_string (c, path, "first_name", false, &first, result) < 0 ||
        s_string (c, path, "last_name", false, &last, result) < 0)
        return -1;
    has_user = s_integer (c, path, "user_id", false, &user_id, result);
    if (has_user < 0)
        return -1;
    name = s_full_name (first, last);
    a = name ? ingest_attachment_add (msg, "contact") : NULL;
    if (!a || ingest_set (&a->phone, phone) != 0 || ingest_set (&a->name, name) != 0) {
        free (name);
        return s_oom (result);
    }
    free (name);
    from_id = from ? json_integer_value (json_object_get (from, "id")) : 0;
    if (has_user == 1 && from && user_id == from_id) {
        /* Telegram shares a contact's number in international form, often
         * without the '+': read as international only ("ZZ"). */
        if (ingest_set (&msg->phone, ingest_phone (NULL, phone, "ZZ", e164)) != 0)
            return s_oom (result);
    }
    return 1;
}

/* --- one Message --- */

static int
s_message (const ingest_inbox_t *inbox, const char *kind, bool edited, const json_t *m,
           ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = NULL;
    json_t *chat, *from, *sender_chat, *reply;
    json_int_t message_id, chat_id, date, edit_date = 0, user_id;
    const char *text, *caption, *first = "", *last = "", *username = "", *title = "";
    char ext[96], id[32], *name = NULL;
    int rc = -1;

    if (s_integer (m, kind, "message_id", true, &message_id, result) < 0 ||
        s_seconds (m, kind, "date", &date, result) < 0 ||
        s_object (m, kind, "chat", true, &chat, result) < 0 ||
        s_object (m, kind, "from", false, &from, result) < 0 ||
        s_object (m, kind, "sender_chat", false, &sender_chat, result) < 0 ||
        s_object (m, kind, "reply_to_message", false, &reply, result) < 0 ||
        s_string (m, kind, "text", false, &text, result) < 0 ||
        s_string (m, kind, "caption", false, &caption, result) < 0)
        return -1;
    {
        char path[64];
        snprintf (path, sizeof path, "%s.chat", kind);
        if (s_integer (chat, path, "id", true, &chat_id, result) < 0 ||
            s_string (chat, path, "title", false, &title, result) < 0)
            return -1;
    }
    /* Without edit_date an edit would share the original's id and be
     * dropped as its duplicate. */
    if (edited && s_seconds (m, kind, "edit_date", &edit_date, result) < 0)
        return -1;

    msg = ingest_inbound_new (inbox);
    if (!msg)
        return s_oom (result);

    /* The sender: a user; or, for a channel post or an anonymous group
     * admin, the chat it was posted on behalf of. */
    if (from) {
        char path[64];
        snprintf (path, sizeof path, "%s.from", kind);
        if (s_integer (from, path, "id", true, &user_id, result) < 0 ||
            s_string (from, path, "first_name", false, &first, result) < 0 ||
            s_string (from, path, "last_name", false, &last, result) < 0 ||
            s_string (from, path, "username", false, &username, result) < 0)
            goto cleanup;
    } else if (sender_chat) {
        char path[64];
        snprintf (path, sizeof path, "%s.sender_chat", kind);
        if (s_integer (sender_chat, path, "id", true, &user_id, result) < 0 ||
            s_string (sender_chat, path, "title", false, &title, result) < 0)
            goto cleanup;
    } else
        user_id = chat_id;
    name = from ? s_full_name (first, last) : strdup (title);
    if (!name)
        goto oom;
    snprintf (id, sizeof id, "%" JSON_INTEGER_FORMAT, user_id);
    if (ingest_set (&msg->external_user_id, id) != 0 ||
        ingest_set (&msg->display_name, name[0] ? name : username) != 0)
        goto oom;

    snprintf (id, sizeof id, "%" JSON_INTEGER_FORMAT, chat_id);
    if (edited)
        snprintf (ext, sizeof ext, "%s:%" JSON_INTEGER_FORMAT ":edit:%" JSON_INTEGER_FORMAT, id,
                  message_id, edit_date);
    else
        snprintf (ext, sizeof ext, "%s:%" JSON_INTEGER_FORMAT, id, message_id);
    if (ingest_set (&msg->external_id, ext) != 0 || ingest_set (&msg->thread_id, id) != 0 ||
        ingest_set (&msg->event, "message") != 0)
        goto oom;
    msg->edited = edited;
    msg->sent_at = (edited ? edit_date : date) * 1000;

    /* A caption is the text of a media message: kept as both, so whoever
     * reads only text still sees it. */
    if (ingest_set (&msg->text, text[0] ? text : caption) != 0 ||
        ingest_set (&msg->caption, caption) != 0)
        goto oom;

    if (reply) {
        char path[64];
        json_int_t reply_id, reply_chat = chat_id;
        json_t *rchat;
        snprintf (path, sizeof path, "%s.reply_to_message", kind);
        if (s_integer (reply, path, "message_id", true, &reply_id, result) < 0 ||
            s_object (reply, path, "chat", false, &rchat, result) < 0)
            goto cleanup;
        if (rchat) {
            snprintf (path, sizeof path, "%s.reply_to_message.chat", kind);
            if (s_integer (rchat, path, "id", true, &reply_chat, result) < 0)
                goto cleanup;
        }
        snprintf (ext, sizeof ext, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT, reply_chat,
                  reply_id);
        if (ingest_set (&msg->reply_to, ext) != 0)
            goto oom;
    }

    /* Telegram also sets document on an animation, for older clients. */
    if (s_photo (msg, m, kind, result) < 0 ||
        s_file (msg, m, kind, "animation", "video", result) < 0 ||
        (!json_is_object (json_object_get (m, "animation")) &&
         s_file (msg, m, kind, "document", "document", result) < 0) ||
        s_file (msg, m, kind, "voice", "voice", result) < 0 ||
        s_file (msg, m, kind, "audio", "audio", result) < 0 ||
        s_file (msg, m, kind, "video", "video", result) < 0 ||
        s_file (msg, m, kind, "video_note", "video", result) < 0 ||
        s_file (msg, m, kind, "sticker", "sticker", result) < 0 ||
        s_contact (msg, m, kind, from, result) < 0 || s_location (msg, m, kind, result) < 0)
        goto cleanup;

    /* A service message (someone joined, a title changed, a pin) or a kind
     * not kept (poll, dice, game) has nothing for an operator to read. */
    if (!msg->text[0] && msg->n_attachments == 0) {
        rc = 0;
        goto cleanup;
    }
    rc = ingest_item_add (result, "InboundMessage", msg->external_id, &msg->base,
                          ingest_channel_name (inbox->channel), inbox->id, msg->external_user_id);
    msg = NULL; /* owned by the result now, or freed by ingest_item_add */
    if (rc != 0)
        s_oom (result);
    goto cleanup;
oom:
    s_oom (result);
cleanup:
    free (name);
    if (msg)
        protobuf_c_message_free_unpacked (&msg->base, NULL);
    return rc;
}

int
telegram_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    json_t *root = NULL, *m = NULL;
    json_error_t jerr;
    json_int_t update_id;
    const char *token;
    size_t i;
    int rc = -1;

    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed", "%s not allowed: updates are POSTed",
                            req->method);
    if (!formdata_is_type (ingest_header (req, "Content-Type"), "application/json"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type must be application/json");
    token = ingest_header (req, "X-Telegram-Bot-Api-Secret-Token");
    if (!token || !token[0])
        return ingest_fail (result, 401, "missing_signature",
                            "X-Telegram-Bot-Api-Secret-Token missing");
    if (!s_secret_ok (inbox, token))
        return ingest_fail (result, 403, "bad_signature",
                            "X-Telegram-Bot-Api-Secret-Token does not match");

    /* jansson caps nesting depth, and rejects invalid UTF-8 and \u0000, so
     * every string taken from here is safe to put in a protobuf string. */
    root = json_loadb ((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ingest_fail (result, 400, "malformed", "body is not JSON: %s (line %d, column %d)",
                            jerr.text, jerr.line, jerr.column);
    if (!json_is_object (root)) {
        ingest_fail (result, 400, "malformed", "body is not a JSON object");
        goto cleanup;
    }
    if (s_integer (root, "update", "update_id", true, &update_id, result) < 0)
        goto cleanup;
    for (i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++) {
        int found = s_object (root, "update", s_kinds[i].key, false, &m, result);
        if (found < 0)
            goto cleanup;
        if (found == 1) {
            rc = s_message (inbox, s_kinds[i].key, s_kinds[i].edited, m, result);
            goto cleanup;
        }
    }
    rc = 0; /* callback_query, my_chat_member, ...: nothing to keep */
cleanup:
    json_decref (root);
    return rc;
}
