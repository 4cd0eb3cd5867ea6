/*
 * rt_channel: the channels retain speaks and the kinds of inbox each comes
 * through, in one table that ingestd, retainctl and the SQL follow.
 *
 * A channel is what the customer uses (Telegram, WhatsApp, e-mail). Its
 * name is what ingest.inboxes stores, what bus keys and metric labels say
 * and what retainctl takes; its value is the Channel of
 * proto/retain/v1/common.proto. An inbox kind is a channel as one provider
 * delivers it: WhatsApp through Meta's Cloud API or through Twilio, e-mail
 * through Mailgun's webhooks or from a mailbox ingestd polls over IMAP. The
 * kind, not the channel, decides the webhook address and the handler that
 * reads the request: a Twilio WhatsApp number posts Twilio's forms to
 * /hooks/twilio/{inbox}, which Meta's handler would refuse.
 *
 * Adding a channel is one row in s_channels (with its value in the .proto
 * and its name in a migration's CHECK on ingest.inboxes; test_channel.c
 * fails while they disagree); adding a provider is one row in s_kinds per
 * channel it serves (with its handler in ingest's table, which ingestd
 * checks at start). A route is served by one provider only, since the
 * route picks the handler.
 *
 * A channel's text limit is the tightest its providers document (sources in
 * rt_channel.c): a reply or a notification longer than it is refused
 * before it is sent, naming the limit, rather than failed by the provider.
 * Its caption limit says whether retain sends attachments there as media
 * (Telegram's photos and documents) or as links in the text.
 *
 * The tables are constant: every function is thread-safe, and what they
 * return lives as long as the process.
 */
#ifndef RT_CHANNEL_H
#define RT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#include "retain/v1/common.pb-c.h"

/* One channel. */
typedef struct {
    Retain__V1__Channel value; /* its value on the bus */
    const char *name;          /* lower-case, as stored in SQL and used as the metric label */
    const char *title;         /* for people: "WhatsApp", "Web chat" */
    long text_max;             /* the most characters (code points) of one text message the
                                  channel's providers take; 0: no limit retain knows of */
    long caption_max;          /* the most characters of a medium's caption, when retain sends
                                  images and documents there as media (rt_attachment.h); 0:
                                  it sends none, an attachment goes as its link in the text */
} rt_channel_t;

/* One inbox kind: a channel as one provider delivers it. */
typedef struct {
    Retain__V1__Channel channel; /* the channel delivered */
    const char *provider;        /* who delivers it, as stored in ingest.inboxes: "meta" */
    const char *route;           /* the webhook path with one "{inbox}" segment,
                                    e.g. "/hooks/twilio/{inbox}"; NULL for a poller */
    bool is_default;             /* the channel's kind when no provider is named */
    const char *config_key;      /* when no provider is named, an inbox whose config holds
                                    this key is of this kind ("imap_url"); NULL: none */
} rt_channel_kind_t;

/* --- channels --- */

/* How many channels there are; arrays kept per channel have this size and
 * are indexed with rt_channel_index. */
size_t rt_channel_count (void);

/* The i-th channel, NULL past the last. */
const rt_channel_t *rt_channel_at (size_t i);

/* The channel of a name as stored ("whatsapp"; exact case), NULL when none. */
const rt_channel_t *rt_channel_by_name (const char *name);

/* The channel of an enum value, NULL when none (CHANNEL_UNSPECIFIED). */
const rt_channel_t *rt_channel_by_value (Retain__V1__Channel value);

/* The name of an enum value; "unknown" when it has no row. */
const char *rt_channel_name (Retain__V1__Channel value);

/* The position of a value in the table (0 to rt_channel_count () - 1), -1
 * when it has no row. */
int rt_channel_index (Retain__V1__Channel value);

/* Writes every channel's name into out as "a, b or c". Returns 0, or -1
 * when out is too small (it then holds what fitted). */
int rt_channel_list (char *out, size_t outlen);

/* --- inbox kinds --- */

/* How many kinds there are, and the i-th (NULL past the last). */
size_t rt_channel_kind_count (void);
const rt_channel_kind_t *rt_channel_kind_at (size_t i);

/* The kind of (channel, provider), NULL when the provider does not deliver
 * that channel. */
const rt_channel_kind_t *rt_channel_kind_find (Retain__V1__Channel channel, const char *provider);

/* The channel's default kind, NULL for a value without a row. */
const rt_channel_kind_t *rt_channel_kind_default (Retain__V1__Channel channel);

/* The kind of the channel served at route (a template as in the table,
 * "/hooks/twilio/{inbox}"), NULL when that route does not serve it. */
const rt_channel_kind_t *rt_channel_kind_by_route (const char *route, Retain__V1__Channel channel);

/* Whether any kind has this provider. */
bool rt_channel_provider_known (const char *provider);

/* Writes into out, as "a, b or c", the providers of one channel, or every
 * provider (each once) when channel is CHANNEL_UNSPECIFIED. Returns 0, or
 * -1 when out is too small (it then holds what fitted). */
int rt_channel_providers (Retain__V1__Channel channel, char *out, size_t outlen);

/* The inbox's webhook URL: base (e.g. "https://hooks.example.com", used as
 * given) followed by the kind's route with {inbox} replaced by the inbox
 * id. Returns 0, or -1 when the kind has no route (a poller; out is then
 * "") or out is too small. */
int rt_channel_kind_url (const rt_channel_kind_t *kind, const char *base, const char *inbox,
                         char *out, size_t outlen);

#endif
