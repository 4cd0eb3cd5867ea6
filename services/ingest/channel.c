/*
 * channel: helpers shared by the channel handlers (see channel.h).
 *
 * Messages handlers build are freed with protobuf_c_message_free_unpacked,
 * which frees every string field that is not the descriptor's default and
 * every repeated array. So every string we set is our own malloc'd copy,
 * and arrays are malloc'd: one ownership rule for all of them.
 *
 * InboundMessages get their opt keyword (keywords.h) as they are added,
 * whichever channel made them.
 *
 * Also the table of which handler reads each provider's requests, keyed by
 * the provider names of common/channel's table (which says which provider
 * an inbox has and where its webhooks arrive).
 */
#include "channel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keywords.h"
#include "rt_channel.h"

const char *
ingest_header (const ingest_request_t *req, const char *name)
{
    size_t i;
    for (i = 0; i < req->nheaders; i++) {
        if (strcasecmp (req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

int
ingest_fail (ingest_result_t *result, int status, const char *label, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (result->reason, sizeof result->reason, fmt, ap);
    va_end (ap);
    result->status = status;
    result->label = label;
    return -1;
}

int
ingest_set (char **field, const char *value)
{
    char *copy = strdup (value ? value : "");
    if (!copy)
        return -1;
    /* Fields of messages built here are never the shared default. */
    free (*field);
    *field = copy;
    return 0;
}

const char *
ingest_phone (const ingest_inbox_t *inbox, const char *number, const char *country,
              char out[RT_PHONE_E164_MAX + 1])
{
    const json_t *configured = inbox ? json_object_get (inbox->config, "default_country") : NULL;
    if (!country)
        country = json_is_string (configured) ? json_string_value (configured) : "UA";
    if (!number || rt_phone_normalize (number, country, out, NULL, 0) != 0)
        return NULL;
    return out;
}

static int
s_empty (char **field)
{
    *field = strdup ("");
    return *field ? 0 : -1;
}

Retain__V1__InboundMessage *
ingest_inbound_new (const ingest_inbox_t *inbox)
{
    Retain__V1__InboundMessage *msg = malloc (sizeof *msg);
    if (!msg)
        return NULL;
    retain__v1__inbound_message__init (msg);
    /* Every string starts as our own "", so free_unpacked frees them all. */
    msg->inbox = NULL;
    msg->external_id = NULL;
    msg->external_user_id = NULL;
    msg->display_name = NULL;
    msg->phone = NULL;
    msg->email = NULL;
    msg->text = NULL;
    msg->reply_to = NULL;
    msg->thread_id = NULL;
    msg->subject = NULL;
    msg->customer_id = NULL;
    msg->event = NULL;
    msg->caption = NULL;
    msg->opt = NULL;
    if (s_empty (&msg->inbox) || s_empty (&msg->external_id) || s_empty (&msg->external_user_id) ||
        s_empty (&msg->display_name) || s_empty (&msg->phone) || s_empty (&msg->email) ||
        s_empty (&msg->text) || s_empty (&msg->reply_to) || s_empty (&msg->thread_id) ||
        s_empty (&msg->subject) || s_empty (&msg->customer_id) || s_empty (&msg->event) ||
        s_empty (&msg->caption) || s_empty (&msg->opt) ||
        ingest_set (&msg->inbox, inbox->id) != 0) {
        protobuf_c_message_free_unpacked (&msg->base, NULL);
        return NULL;
    }
    msg->channel = inbox->channel;
    return msg;
}

Retain__V1__Attachment *
ingest_attachment_add (Retain__V1__InboundMessage *msg, const char *kind)
{
    Retain__V1__Attachment *a = malloc (sizeof *a);
    Retain__V1__Attachment **list;
    if (!a)
        return NULL;
    retain__v1__attachment__init (a);
    a->kind = NULL;
    a->url = NULL;
    a->file_id = NULL;
    a->mime_type = NULL;
    a->name = NULL;
    a->phone = NULL;
    if (s_empty (&a->url) || s_empty (&a->file_id) || s_empty (&a->mime_type) ||
        s_empty (&a->name) || s_empty (&a->phone) || ingest_set (&a->kind, kind) != 0)
        goto fail;
    list = realloc (msg->attachments, (msg->n_attachments + 1) * sizeof *list);
    if (!list)
        goto fail;
    msg->attachments = list;
    msg->attachments[msg->n_attachments++] = a;
    return a;
fail:
    protobuf_c_message_free_unpacked (&a->base, NULL);
    return NULL;
}

int
ingest_item_add (ingest_result_t *result, const char *type, const char *external_id,
                 ProtobufCMessage *msg, const char *channel_name, const char *inbox,
                 const char *external_user_id)
{
    ingest_item_t *item;
    size_t keylen;
    /* Every channel's messages pass here: the one place that reads the
     * opt keywords. */
    if (msg->descriptor == &retain__v1__inbound_message__descriptor &&
        ingest_opt_apply ((Retain__V1__InboundMessage *)msg) != 0)
        goto fail;
    if (result->count == result->cap) {
        size_t cap = result->cap ? result->cap * 2 : 4;
        ingest_item_t *items = realloc (result->items, cap * sizeof *items);
        if (!items)
            goto fail;
        result->items = items;
        result->cap = cap;
    }
    item = &result->items[result->count];
    memset (item, 0, sizeof *item);
    keylen = strlen (channel_name) + strlen (inbox) + strlen (external_user_id) + 3;
    item->key = malloc (keylen);
    item->external_id = strdup (external_id);
    if (!item->key || !item->external_id) {
        free (item->key);
        free (item->external_id);
        goto fail;
    }
    snprintf (item->key, keylen, "%s:%s:%s", channel_name, inbox, external_user_id);
    item->type = type;
    item->msg = msg;
    result->count++;
    return 0;
fail:
    protobuf_c_message_free_unpacked (msg, NULL);
    return -1;
}

void
ingest_result_reset (ingest_result_t *result)
{
    size_t i;
    for (i = 0; i < result->count; i++) {
        free (result->items[i].external_id);
        free (result->items[i].key);
        free (result->items[i].event_id);
        if (result->items[i].msg)
            protobuf_c_message_free_unpacked (result->items[i].msg, NULL);
    }
    free (result->items);
    free (result->response);
    memset (result, 0, sizeof *result);
}

const char *
ingest_channel_name (Retain__V1__Channel channel)
{
    return rt_channel_name (channel);
}

/* Keyed by common/channel's provider names: one row per provider, however
 * many channels and routes it serves (Meta's three, Twilio's two). */
static const ingest_provider_t s_providers[] = {
    {"telegram", telegram_handle, false, NULL},
    {"viber", viber_handle, false, NULL},
    {"meta", meta_handle, false, NULL},
    {"twilio", twilio_handle, false, NULL},
    {"mailgun", mailgun_handle, false, NULL},
    {"webchat", webchat_handle, true, NULL},
    {"pbx", phone_handle, false, NULL},
    {"binotel", binotel_handle, false, binotel_config_check},
};

const ingest_provider_t *
ingest_provider (const char *provider)
{
    size_t i;
    for (i = 0; provider && i < sizeof s_providers / sizeof *s_providers; i++) {
        if (strcmp (s_providers[i].provider, provider) == 0)
            return &s_providers[i];
    }
    return NULL;
}

int
ingest_providers_check (char *err, size_t errlen)
{
    size_t i;
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        if (kind->route && !ingest_provider (kind->provider)) {
            snprintf (err, errlen, "provider %s (route %s) has no handler in ingest",
                      kind->provider, kind->route);
            return -1;
        }
    }
    return 0;
}
