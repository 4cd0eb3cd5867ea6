/*
 * rt_channel: the channel and inbox-kind tables (see rt_channel.h).
 *
 * Tables of a dozen rows, searched linearly: a lookup costs less than the
 * strcmp of a longer key would, and the order of the rows is the order
 * people read them in (--help, errors, README).
 */
#include "rt_channel.h"

#include <stdio.h>
#include <string.h>

/* Text limits: Telegram's sendMessage text is 1-4096 characters and
 * Viber's 7000 (../shared/reference/providers.md); WhatsApp Cloud API's
 * text body 4096, Messenger's Send API 2000, Instagram's messaging 1000,
 * Twilio's SMS Body 1600 (its concatenation limit), all as their
 * providers document them. E-mail and web chat are retain's own or have
 * no limit that matters; a phone call carries no text. Captions: Telegram's
 * sendPhoto and sendDocument take 0-1024 characters (core.telegram.org/
 * bots/api, as the Bot API's clients quote it); the other adapters send no
 * media yet. */
static const rt_channel_t s_channels[] = {
    {RETAIN__V1__CHANNEL__TELEGRAM, "telegram", "Telegram", 4096, 1024},
    {RETAIN__V1__CHANNEL__VIBER, "viber", "Viber", 7000, 0},
    {RETAIN__V1__CHANNEL__MESSENGER, "messenger", "Messenger", 2000, 0},
    {RETAIN__V1__CHANNEL__INSTAGRAM, "instagram", "Instagram", 1000, 0},
    {RETAIN__V1__CHANNEL__WHATSAPP, "whatsapp", "WhatsApp", 4096, 0},
    {RETAIN__V1__CHANNEL__SMS, "sms", "SMS", 1600, 0},
    {RETAIN__V1__CHANNEL__EMAIL, "email", "E-mail", 0, 0},
    {RETAIN__V1__CHANNEL__WEBCHAT, "webchat", "Web chat", 0, 0},
    {RETAIN__V1__CHANNEL__PHONE, "phone", "Phone", 0, 0},
};

#define S_NCHANNELS (sizeof s_channels / sizeof *s_channels)

/* Grouped by channel, in the order of s_channels. Meta's three products
 * keep a route each (Meta's app settings name one callback URL per
 * product); Twilio posts SMS and WhatsApp to one. */
static const rt_channel_kind_t s_kinds[] = {
    {RETAIN__V1__CHANNEL__TELEGRAM, "telegram", "/hooks/telegram/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__VIBER, "viber", "/hooks/viber/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__MESSENGER, "meta", "/hooks/messenger/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__INSTAGRAM, "meta", "/hooks/instagram/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__WHATSAPP, "meta", "/hooks/whatsapp/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__WHATSAPP, "twilio", "/hooks/twilio/{inbox}", false, NULL},
    {RETAIN__V1__CHANNEL__SMS, "twilio", "/hooks/twilio/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__EMAIL, "mailgun", "/hooks/mailgun/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__EMAIL, "imap", NULL, false, "imap_url"},
    {RETAIN__V1__CHANNEL__WEBCHAT, "webchat", "/chat/{inbox}/messages", true, NULL},
    {RETAIN__V1__CHANNEL__PHONE, "pbx", "/hooks/phone/{inbox}", true, NULL},
    {RETAIN__V1__CHANNEL__PHONE, "binotel", "/hooks/binotel/{inbox}", false, NULL},
};

#define S_NKINDS (sizeof s_kinds / sizeof *s_kinds)

size_t
rt_channel_count (void)
{
    return S_NCHANNELS;
}

const rt_channel_t *
rt_channel_at (size_t i)
{
    return i < S_NCHANNELS ? &s_channels[i] : NULL;
}

const rt_channel_t *
rt_channel_by_name (const char *name)
{
    size_t i;
    for (i = 0; name && i < S_NCHANNELS; i++) {
        if (strcmp (s_channels[i].name, name) == 0)
            return &s_channels[i];
    }
    return NULL;
}

int
rt_channel_index (Retain__V1__Channel value)
{
    size_t i;
    for (i = 0; i < S_NCHANNELS; i++) {
        if (s_channels[i].value == value)
            return (int)i;
    }
    return -1;
}

const rt_channel_t *
rt_channel_by_value (Retain__V1__Channel value)
{
    int i = rt_channel_index (value);
    return i < 0 ? NULL : &s_channels[i];
}

const char *
rt_channel_name (Retain__V1__Channel value)
{
    const rt_channel_t *channel = rt_channel_by_value (value);
    return channel ? channel->name : "unknown";
}

/* Appends word to out[*used..] as the i-th of n ("a, b or c"). Returns -1
 * once out is full. */
static int
s_join (char *out, size_t outlen, size_t *used, const char *word, size_t i, size_t n)
{
    const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
    int w;
    if (*used >= outlen)
        return -1;
    w = snprintf (out + *used, outlen - *used, "%s%s", sep, word);
    if (w < 0 || (size_t)w >= outlen - *used) {
        *used = outlen;
        return -1;
    }
    *used += (size_t)w;
    return 0;
}

int
rt_channel_list (char *out, size_t outlen)
{
    size_t i, used = 0;
    if (outlen == 0)
        return -1;
    out[0] = '\0';
    for (i = 0; i < S_NCHANNELS; i++) {
        if (s_join (out, outlen, &used, s_channels[i].name, i, S_NCHANNELS) != 0)
            return -1;
    }
    return 0;
}

size_t
rt_channel_kind_count (void)
{
    return S_NKINDS;
}

const rt_channel_kind_t *
rt_channel_kind_at (size_t i)
{
    return i < S_NKINDS ? &s_kinds[i] : NULL;
}

const rt_channel_kind_t *
rt_channel_kind_find (Retain__V1__Channel channel, const char *provider)
{
    size_t i;
    for (i = 0; provider && i < S_NKINDS; i++) {
        if (s_kinds[i].channel == channel && strcmp (s_kinds[i].provider, provider) == 0)
            return &s_kinds[i];
    }
    return NULL;
}

const rt_channel_kind_t *
rt_channel_kind_default (Retain__V1__Channel channel)
{
    size_t i;
    for (i = 0; i < S_NKINDS; i++) {
        if (s_kinds[i].channel == channel && s_kinds[i].is_default)
            return &s_kinds[i];
    }
    return NULL;
}

const rt_channel_kind_t *
rt_channel_kind_by_route (const char *route, Retain__V1__Channel channel)
{
    size_t i;
    for (i = 0; route && i < S_NKINDS; i++) {
        if (s_kinds[i].channel == channel && s_kinds[i].route &&
            strcmp (s_kinds[i].route, route) == 0)
            return &s_kinds[i];
    }
    return NULL;
}

bool
rt_channel_provider_known (const char *provider)
{
    size_t i;
    for (i = 0; provider && i < S_NKINDS; i++) {
        if (strcmp (s_kinds[i].provider, provider) == 0)
            return true;
    }
    return false;
}

/* Whether kind i is the first of its provider among those listed (all, or
 * the channel's). */
static bool
s_first_of_provider (size_t i, Retain__V1__Channel channel)
{
    size_t k;
    for (k = 0; k < i; k++) {
        if ((channel == RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED ||
             s_kinds[k].channel == channel) &&
            strcmp (s_kinds[k].provider, s_kinds[i].provider) == 0)
            return false;
    }
    return true;
}

int
rt_channel_providers (Retain__V1__Channel channel, char *out, size_t outlen)
{
    const char *names[S_NKINDS];
    size_t i, n = 0, used = 0;
    if (outlen == 0)
        return -1;
    out[0] = '\0';
    for (i = 0; i < S_NKINDS; i++) {
        bool listed =
            channel == RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED || s_kinds[i].channel == channel;
        if (listed && s_first_of_provider (i, channel))
            names[n++] = s_kinds[i].provider;
    }
    for (i = 0; i < n; i++) {
        if (s_join (out, outlen, &used, names[i], i, n) != 0)
            return -1;
    }
    return 0;
}

int
rt_channel_kind_url (const rt_channel_kind_t *kind, const char *base, const char *inbox, char *out,
                     size_t outlen)
{
    const char *at;
    int w;
    if (outlen == 0)
        return -1;
    out[0] = '\0';
    if (!kind || !kind->route)
        return -1;
    at = strstr (kind->route, "{inbox}");
    if (!at)
        return -1;
    w = snprintf (out, outlen, "%s%.*s%s%s", base, (int)(at - kind->route), kind->route, inbox,
                  at + strlen ("{inbox}"));
    if (w < 0 || (size_t)w >= outlen)
        return -1;
    return 0;
}
