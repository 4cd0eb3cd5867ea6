/*
 * meta_whatsapp: Meta's webhooks for WHATSAPP inboxes (Cloud API). Apart
 * from meta.c because WhatsApp shares only the envelope with Messenger and
 * Instagram: its entries carry changes[] of their own shape, phone
 * numbers, media ids and failure codes; meta.c hands it every entry
 * (meta_wa_entry).
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
 */
#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"

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
    if (meta_empty (&m->message_id) || meta_empty (&m->customer_id) ||
        ingest_set (&m->external_id, external_id) != 0 || ingest_set (&m->error_code, code) != 0 ||
        ingest_set (&m->error, error) != 0) {
        protobuf_c_message_free_unpacked (&m->base, NULL);
        return NULL;
    }
    m->channel = channel;
    m->permanent = permanent;
    return m;
}

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
        const char *wa_id = meta_str (c, "wa_id");
        if (wa_id && strcmp (wa_id, from) == 0)
            return meta_str (json_object_get (c, "profile"), "name");
    }
    if (json_array_size (contacts) == 1)
        return meta_str (json_object_get (json_array_get (contacts, 0), "profile"), "name");
    return NULL;
}

static int
s_wa_media (Retain__V1__InboundMessage *msg, const char *type, const json_t *media)
{
    const char *kind = type;
    const char *caption = meta_str (media, "caption");
    Retain__V1__Attachment *a;
    if (strcmp (type, "audio") == 0 && json_is_true (json_object_get (media, "voice")))
        kind = "voice";
    a = ingest_attachment_add (msg, kind);
    if (!a || ingest_set (&a->file_id, meta_str (media, "id")) != 0 ||
        ingest_set (&a->mime_type, meta_str (media, "mime_type")) != 0 ||
        ingest_set (&a->name, meta_str (media, "filename")) != 0 ||
        ingest_set (&a->url, meta_str (media, "url")) != 0)
        return -1;
    if (caption &&
        (ingest_set (&msg->caption, caption) != 0 || ingest_set (&msg->text, caption) != 0))
        return -1;
    return 0;
}

static int
s_wa_location (Retain__V1__InboundMessage *msg, const json_t *loc)
{
    const char *name = meta_str (loc, "name");
    Retain__V1__Attachment *a = ingest_attachment_add (msg, "location");
    if (!a)
        return -1;
    a->latitude = json_number_value (json_object_get (loc, "latitude"));
    a->longitude = json_number_value (json_object_get (loc, "longitude"));
    return ingest_set (&a->name, name && *name ? name : meta_str (loc, "address"));
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
            ingest_set (&a->name, meta_str (json_object_get (c, "name"), "formatted_name")) != 0 ||
            ingest_set (&a->phone, meta_str (json_array_get (phones, 0), "phone")) != 0)
            return -1;
    }
    return 0;
}

/* The text of an interactive reply: the tapped button's or row's title,
 * or a flow's body. */
static const char *
s_wa_interactive_text (const json_t *interactive)
{
    const char *title = meta_str (json_object_get (interactive, "button_reply"), "title");
    if (!title)
        title = meta_str (json_object_get (interactive, "list_reply"), "title");
    if (!title)
        title = meta_str (json_object_get (interactive, "nfm_reply"), "body");
    return title;
}

/* Fills msg from a message of the given type; -1 out of memory. */
static int
s_wa_content (Retain__V1__InboundMessage *msg, const char *type, const json_t *m)
{
    const json_t *body = json_object_get (m, type);
    if (strcmp (type, "text") == 0)
        return ingest_set (&msg->text, meta_str (body, "body"));
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
        return ingest_set (&msg->text, meta_str (body, "text"));
    if (strcmp (type, "reaction") == 0) {
        if (ingest_set (&msg->text, meta_str (body, "emoji")) != 0)
            return -1;
        return ingest_set (&msg->reply_to, meta_str (body, "message_id"));
    }
    if (strcmp (type, "order") == 0)
        return ingest_set (&msg->text, meta_str (body, "text"));
    return 0;
}

static int
s_wa_message (meta_ctx_t *ctx, const json_t *m, const json_t *contacts, const char *path)
{
    const char *id = meta_str (m, "id"), *from = meta_str (m, "from"), *type = meta_str (m, "type");
    const char *reply_to = meta_str (json_object_get (m, "context"), "id");
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
        const char *emoji = meta_str (json_object_get (m, "reaction"), "emoji");
        if (!emoji || !*emoji)
            return 0; /* a reaction taken back */
    }
    msg = ingest_inbound_new (ctx->inbox);
    if (!msg)
        return meta_oom (ctx->result);
    msg->sent_at = meta_seconds_ms (meta_int64 (json_object_get (m, "timestamp")));
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
    return meta_add (ctx, "InboundMessage", id, &msg->base, from);
oom:
    protobuf_c_message_free_unpacked (&msg->base, NULL);
    return meta_oom (ctx->result);
}

static int
s_wa_failed (meta_ctx_t *ctx, const json_t *st, const char *id, const char *user)
{
    const json_t *error = json_array_get (json_object_get (st, "errors"), 0);
    const json_t *code_v = json_object_get (error, "code");
    const char *title = meta_str (error, "title");
    const char *details = meta_str (json_object_get (error, "error_data"), "details");
    long code = (long)meta_int64 (code_v);
    char code_s[32] = "", *text = NULL, *ext = NULL;
    Retain__V1__MessageFailed *m;
    int rc;
    if (code_v)
        snprintf (code_s, sizeof code_s, "%ld", code);
    if (!title || !*title)
        title = meta_str (error, "message");
    if (!title || !*title)
        title = "failed";
    if (details && *details && strcmp (details, title) != 0)
        rc = asprintf (&text, "%s: %s", title, details);
    else
        rc = asprintf (&text, "%s", title);
    if (rc < 0)
        return meta_oom (ctx->result);
    m = s_failed_new (ctx->channel, id, code_s, text, code_v && s_wa_permanent (code));
    free (text);
    if (!m || asprintf (&ext, "failed:%s", id) < 0) {
        if (m)
            protobuf_c_message_free_unpacked (&m->base, NULL);
        return meta_oom (ctx->result);
    }
    rc = meta_add (ctx, "MessageFailed", ext, &m->base, user);
    free (ext);
    return rc;
}

static int
s_wa_status (meta_ctx_t *ctx, const json_t *st, const char *path)
{
    const char *id = meta_str (st, "id"), *status = meta_str (st, "status");
    const char *user = meta_str (st, "recipient_id");
    int64_t at = meta_seconds_ms (meta_int64 (json_object_get (st, "timestamp")));
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
        return meta_add_delivered (ctx, "delivered", id, id, user, at, false);
    if (strcmp (status, "read") == 0 || strcmp (status, "played") == 0)
        return meta_add_delivered (ctx, status, id, id, user, at, true);
    if (strcmp (status, "failed") == 0)
        return s_wa_failed (ctx, st, id, user);
    return 0; /* sent, deleted, warning, ... */
}

int
meta_wa_entry (meta_ctx_t *ctx, const json_t *entry, size_t e)
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
        const char *field = meta_str (change, "field");
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
