/*
 * twilio: Twilio Programmable Messaging webhooks, SMS and WhatsApp, for
 * inboxes of channel SMS or WHATSAPP.
 *
 * A POST of application/x-www-form-urlencoded parameters (415 otherwise),
 * signed with X-Twilio-Signature: Base64 of HMAC-SHA1, keyed with the auth
 * token (the inbox secret, or the previous one during a rotation), over
 * the full URL Twilio called followed by every POST parameter, sorted by
 * name, as name + value. The URL is req->public_url (ingestd sits behind
 * a proxy: the URL it sees is not the one Twilio signed).
 *
 * We follow the official SDKs' validateRequest (the tests sign with the
 * twilio npm package): the URL is tried without its port and with the
 * scheme's default port (Twilio may sign either form), names sort in
 * UTF-16 code unit order (JavaScript's and Java's string order; it differs
 * from byte order only past U+FFFF), and a name sent several times
 * contributes its distinct values, sorted the same way. The SDK's further
 * fallbacks re-encode the URL the web framework saw; ours comes from our
 * configuration, so they are not tried.
 *
 * Incoming messages -> InboundMessage: MessageSid; From (a "whatsapp:"
 * prefix means channel WHATSAPP, "messenger:" MESSENGER, "rcs:" or none
 * SMS, whatever the inbox's channel: one Twilio number can serve several
 * channels, and the prefix is what Twilio saw) without its prefix as the
 * external user and, when E.164, the phone; ProfileName; Body (or a quick
 * reply's ButtonText); OriginalRepliedMessageSid -> reply_to; NumMedia
 * MediaUrlN / MediaContentTypeN -> attachments; a shared location
 * (Latitude, Longitude, Address, Label). Twilio stamps no send time: the
 * arrival time stands in for it.
 *
 * Status callbacks (MessageStatus other than received): delivered ->
 * MessageDelivered; read -> MessageDelivered read = true; failed and
 * undelivered -> MessageFailed with ErrorCode and ErrorMessage, permanent
 * per s_permanent; queued, sending, sent and the rest: 200, nothing kept.
 * Receipts are de-duplicated on "<status>:<MessageSid>", the user being
 * the To address.
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

/* Twilio sends at most 10 media with a message. */
#define S_MAX_MEDIA 10

/* --- helpers -------------------------------------------------------- */

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* ingest_set with the value made valid UTF-8 (a form value is any bytes). */
static int
s_set (char **field, const char *value)
{
    char *clean;
    if (!value)
        value = "";
    clean = formdata_utf8_dup (value, strlen (value));
    if (!clean)
        return -1;
    free (*field);
    *field = clean;
    return 0;
}

static int
s_empty (char **field)
{
    *field = strdup ("");
    return *field ? 0 : -1;
}

/* The channel an address names by its prefix, and the address without it. */
static Retain__V1__Channel
s_address_channel (const char *address, const char **bare)
{
    if (strncmp (address, "whatsapp:", 9) == 0) {
        *bare = address + 9;
        return RETAIN__V1__CHANNEL__WHATSAPP;
    }
    if (strncmp (address, "messenger:", 10) == 0) {
        *bare = address + 10;
        return RETAIN__V1__CHANNEL__MESSENGER;
    }
    if (strncmp (address, "rcs:", 4) == 0) {
        *bare = address + 4;
        return RETAIN__V1__CHANNEL__SMS;
    }
    *bare = address;
    return RETAIN__V1__CHANNEL__SMS;
}

/* --- the signature -------------------------------------------------- */

/* The next code point of a UTF-8 string as a key that orders like UTF-16
 * code units: below U+D800 as is, U+10000 and up (surrogate pairs,
 * 0xD800-0xDBFF first) next, U+E000-U+FFFF last. A byte that starts no
 * valid sequence sorts after everything, by its value. */
static uint32_t
s_utf16_key (const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t cp;
    size_t len, i;
    if (s[0] < 0x80) {
        *p = s + 1;
        return s[0];
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else
        goto invalid;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto invalid;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *p = s + len;
    if (cp < 0xD800)
        return cp;
    if (cp >= 0x10000)
        return 0xD800 + (cp - 0x10000);
    return cp + 0x200000;
invalid:
    *p = s + 1;
    return 0x80000000u | s[0];
}

static int
s_utf16_cmp (const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *y) {
        uint32_t kx = s_utf16_key (&x), ky = s_utf16_key (&y);
        if (kx != ky)
            return kx < ky ? -1 : 1;
    }
    return *x ? 1 : *y ? -1 : 0;
}

static int
s_pair_cmp (const void *pa, const void *pb)
{
    const rt_form_pair_t *a = *(const rt_form_pair_t *const *)pa;
    const rt_form_pair_t *b = *(const rt_form_pair_t *const *)pb;
    int c = s_utf16_cmp (a->name, b->name);
    return c ? c : s_utf16_cmp (a->value, b->value);
}

/* The sorted name + value string the signature covers after the URL.
 * Owned by the caller; NULL when out of memory. */
static char *
s_signed_params (const rt_form_t *form)
{
    size_t n = rt_form_count (form), i, len = 0, o = 0;
    const rt_form_pair_t **pairs = malloc ((n ? n : 1) * sizeof *pairs);
    char *out = NULL;
    if (!pairs)
        return NULL;
    for (i = 0; i < n; i++) {
        pairs[i] = rt_form_pair (form, i);
        len += strlen (pairs[i]->name) + strlen (pairs[i]->value);
    }
    qsort (pairs, n, sizeof *pairs, s_pair_cmp);
    out = malloc (len + 1);
    if (!out)
        goto cleanup;
    for (i = 0; i < n; i++) {
        size_t nl, vl;
        /* A name sent twice with the same value counts once. */
        if (i > 0 && s_pair_cmp (&pairs[i - 1], &pairs[i]) == 0)
            continue;
        nl = strlen (pairs[i]->name);
        vl = strlen (pairs[i]->value);
        memcpy (out + o, pairs[i]->name, nl);
        memcpy (out + o + nl, pairs[i]->value, vl);
        o += nl + vl;
    }
    out[o] = '\0';
cleanup:
    free (pairs);
    return out;
}

/* The URL without its port and with the scheme's default port added when
 * it has none (the SDKs' removePort and addPort). Both owned; NULL when out
 * of memory. A URL without "scheme://" is returned as is in both. */
static int
s_url_forms (const char *url, char **without, char **with)
{
    size_t scheme = 0, auth_end, at, host_end, port_start;
    const char *colon;
    *without = *with = NULL;
    while (url[scheme] && (url[scheme] == '+' || url[scheme] == '.' || url[scheme] == '-' ||
                           (url[scheme] >= 'a' && url[scheme] <= 'z') ||
                           (url[scheme] >= 'A' && url[scheme] <= 'Z') ||
                           (scheme > 0 && url[scheme] >= '0' && url[scheme] <= '9')))
        scheme++;
    if (scheme == 0 || strncmp (url + scheme, "://", 3) != 0) {
        *without = strdup (url);
        *with = strdup (url);
        goto done;
    }
    scheme += 3;
    auth_end = scheme + strcspn (url + scheme, "/?#");
    /* user info ends at the last '@' of the authority */
    at = scheme;
    for (host_end = scheme; host_end < auth_end; host_end++) {
        if (url[host_end] == '@')
            at = host_end + 1;
    }
    /* a port's colon comes after an IPv6 literal's closing bracket */
    port_start = at;
    for (host_end = at; host_end < auth_end; host_end++) {
        if (url[host_end] == ']')
            port_start = host_end + 1;
    }
    colon = memchr (url + port_start, ':', auth_end - port_start);
    host_end = colon ? (size_t)(colon - url) : auth_end;
    if (asprintf (without, "%.*s%s", (int)host_end, url, url + auth_end) < 0)
        *without = NULL;
    if (colon)
        *with = strdup (url);
    else if (asprintf (with, "%.*s%s%s", (int)host_end, url,
                       strncasecmp (url, "https://", 8) == 0 ? ":443" : ":80", url + auth_end) < 0)
        *with = NULL;
done:
    if (!*without || !*with) {
        free (*without);
        free (*with);
        return -1;
    }
    return 0;
}

static bool
s_signed_with (const char *secret, const char *url, const char *params, const char *header)
{
    size_t ul = strlen (url), pl = strlen (params);
    uint8_t mac[RT_SHA1_LEN];
    char b64[((RT_SHA1_LEN + 2) / 3) * 4 + 1];
    char *data;
    /* An empty key is one anybody can sign with. */
    if (!secret || !*secret)
        return false;
    data = malloc (ul + pl + 1);
    if (!data)
        return false;
    memcpy (data, url, ul);
    memcpy (data + ul, params, pl + 1);
    rt_hmac_sha1 (secret, strlen (secret), data, ul + pl, mac);
    free (data);
    rt_base64_encode (mac, sizeof mac, b64);
    return rt_ct_equal (b64, strlen (b64), header, strlen (header));
}

static int
s_verify (const ingest_inbox_t *inbox, const ingest_request_t *req, const rt_form_t *form,
          const char *header, ingest_result_t *result)
{
    char *params = NULL, *without = NULL, *with = NULL;
    const char *urls[2];
    size_t u;
    int rc = -1;
    if (!req->public_url || !*req->public_url)
        return ingest_fail (result, 403, "bad_signature",
                            "no public URL configured to check X-Twilio-Signature against");
    params = s_signed_params (form);
    if (!params || s_url_forms (req->public_url, &without, &with) != 0) {
        s_oom (result);
        goto cleanup;
    }
    urls[0] = without;
    urls[1] = with;
    for (u = 0; u < 2; u++) {
        if (u == 1 && strcmp (with, without) == 0)
            break;
        if (s_signed_with (inbox->secret, urls[u], params, header) ||
            s_signed_with (inbox->previous_secret, urls[u], params, header)) {
            rc = 0;
            goto cleanup;
        }
    }
    ingest_fail (result, 403, "bad_signature",
                 "X-Twilio-Signature does not match the URL and parameters");
cleanup:
    free (params);
    free (without);
    free (with);
    return rc;
}

/* --- receipts ------------------------------------------------------- */

/* Whether a failed or undelivered message with this Twilio error code
 * will fail again if sent as is. Permanent: the address is wrong or
 * cannot receive (21211 invalid To, 21612 cannot route, 21614 not a
 * mobile number, 30005 unknown handset, 30006 landline or unreachable
 * carrier, 63003 and 63024 invalid WhatsApp recipient), the recipient
 * opted out (21610) or is excluded (63032), the content or sender is
 * refused (30004 blocked, 30007 filtered, 30032/30034 unverified or
 * unregistered sender, 21408 region not enabled, 30010 price over
 * maximum), the account is suspended (30002), or the WhatsApp session
 * window closed (63016: only a template may go now). Everything else
 * (30001 queue overflow, 30003 handset unreachable, 30008 unknown,
 * 63018 rate limit, unknown codes) may pass later. */
static bool
s_permanent (long code)
{
    static const long permanent[] = {21211, 21408, 21610, 21612, 21614, 30002, 30004, 30005, 30006,
                                     30007, 30010, 30032, 30034, 63003, 63016, 63024, 63032};
    size_t i;
    for (i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
        if (permanent[i] == code)
            return true;
    }
    return false;
}

static int
s_add (const ingest_inbox_t *inbox, ingest_result_t *result, const char *type, const char *ext,
       ProtobufCMessage *msg, Retain__V1__Channel channel, const char *user)
{
    if (ingest_item_add (result, type, ext, msg, ingest_channel_name (channel), inbox->id, user) !=
        0)
        return s_oom (result);
    return 0;
}

static int
s_status_callback (const ingest_inbox_t *inbox, const ingest_request_t *req, rt_form_t *form,
                   const char *status, const char *sid, ingest_result_t *result)
{
    const char *to = rt_form_get (form, "To"), *user = "";
    Retain__V1__Channel channel = inbox->channel;
    ProtobufCMessage *msg = NULL;
    const char *type;
    char *ext = NULL, *clean_user = NULL;
    int rc;
    if (to && *to)
        channel = s_address_channel (to, &user);
    if (strcmp (status, "delivered") == 0 || strcmp (status, "read") == 0) {
        Retain__V1__MessageDelivered *m = malloc (sizeof *m);
        if (!m)
            return s_oom (result);
        retain__v1__message_delivered__init (m);
        m->message_id = m->external_id = m->customer_id = NULL;
        msg = &m->base;
        if (s_empty (&m->message_id) || s_empty (&m->customer_id) || s_set (&m->external_id, sid))
            goto oom;
        m->channel = channel;
        /* Twilio's callback carries no event time; it is sent as it happens. */
        m->delivered_at = req->now_ms;
        m->read = status[0] == 'r';
        type = "MessageDelivered";
    } else if (strcmp (status, "failed") == 0 || strcmp (status, "undelivered") == 0) {
        const char *code = rt_form_get (form, "ErrorCode");
        const char *error = rt_form_get (form, "ErrorMessage");
        char fallback[64];
        long code_n = 0;
        Retain__V1__MessageFailed *m = malloc (sizeof *m);
        if (!m)
            return s_oom (result);
        retain__v1__message_failed__init (m);
        m->message_id = m->external_id = m->error_code = m->error = m->customer_id = NULL;
        msg = &m->base;
        if (code && *code) {
            char *end;
            errno = 0;
            code_n = strtol (code, &end, 10);
            if (*end || errno)
                code_n = 0;
        }
        if (!error || !*error) {
            if (code && *code)
                snprintf (fallback, sizeof fallback, "Twilio error %.20s (%s)", code, status);
            else
                snprintf (fallback, sizeof fallback, "%s", status);
            error = fallback;
        }
        if (s_empty (&m->message_id) || s_empty (&m->customer_id) || s_set (&m->external_id, sid) ||
            s_set (&m->error_code, code) || s_set (&m->error, error))
            goto oom;
        m->channel = channel;
        m->permanent = s_permanent (code_n);
        type = "MessageFailed";
    } else
        return 0; /* queued, sending, sent, accepted, scheduled, canceled, ... */
    clean_user = formdata_utf8_dup (user, strlen (user));
    if (!clean_user || asprintf (&ext, "%s:%s", status, sid) < 0)
        goto oom;
    rc = s_add (inbox, result, type, ext, msg, channel, clean_user);
    free (ext);
    free (clean_user);
    return rc;
oom:
    free (clean_user);
    protobuf_c_message_free_unpacked (msg, NULL);
    return s_oom (result);
}

/* --- incoming messages ---------------------------------------------- */

static const char *
s_media_kind (const char *type)
{
    if (!type)
        return "document";
    if (strncasecmp (type, "image/", 6) == 0)
        return "image";
    if (strncasecmp (type, "video/", 6) == 0)
        return "video";
    if (strncasecmp (type, "audio/", 6) == 0)
        return "audio";
    if (formdata_is_type (type, "text/vcard") || formdata_is_type (type, "text/x-vcard"))
        return "contact";
    return "document";
}

/* A coordinate in range, or false. */
static bool
s_coordinate (const char *s, double limit, double *out)
{
    char *end;
    if (!s || !*s)
        return false;
    errno = 0;
    *out = strtod (s, &end);
    return !*end && !errno && *out >= -limit && *out <= limit;
}

static int
s_inbound (const ingest_inbox_t *inbox, const ingest_request_t *req, rt_form_t *form,
           const char *sid, ingest_result_t *result)
{
    const char *from = rt_form_get (form, "From"), *user, *body, *num;
    const char *lat_s = rt_form_get (form, "Latitude"), *lon_s = rt_form_get (form, "Longitude");
    Retain__V1__InboundMessage *msg = NULL;
    Retain__V1__Channel channel;
    char e164[RT_PHONE_E164_MAX + 1];
    double lat, lon;
    long nmedia = 0, i;
    if (!from || !*from)
        return ingest_fail (result, 400, "malformed", "From missing");
    channel = s_address_channel (from, &user);
    if (!*user)
        return ingest_fail (result, 400, "malformed", "From \"%.40s\" names no sender", from);
    num = rt_form_get (form, "NumMedia");
    if (num && *num) {
        char *end;
        errno = 0;
        nmedia = strtol (num, &end, 10);
        if (*end || errno || nmedia < 0 || nmedia > S_MAX_MEDIA)
            return ingest_fail (result, 400, "malformed", "NumMedia \"%.20s\" is not 0 to %d", num,
                                S_MAX_MEDIA);
    }
    body = rt_form_get (form, "Body");
    if (!body || !*body)
        body = rt_form_get (form, "ButtonText");
    msg = ingest_inbound_new (inbox);
    if (!msg)
        return s_oom (result);
    msg->channel = channel;
    msg->sent_at = req->now_ms;
    if (s_set (&msg->external_id, sid) || s_set (&msg->external_user_id, user) ||
        s_set (&msg->display_name, rt_form_get (form, "ProfileName")) || s_set (&msg->text, body) ||
        s_set (&msg->reply_to, rt_form_get (form, "OriginalRepliedMessageSid")) ||
        (channel != RETAIN__V1__CHANNEL__MESSENGER && ingest_phone (inbox, user, "ZZ", e164) &&
         s_set (&msg->phone, e164)))
        goto oom;
    for (i = 0; i < nmedia; i++) {
        char name[48];
        const char *url, *type;
        Retain__V1__Attachment *a;
        snprintf (name, sizeof name, "MediaUrl%ld", i);
        url = rt_form_get (form, name);
        snprintf (name, sizeof name, "MediaContentType%ld", i);
        type = rt_form_get (form, name);
        if (!url || !*url)
            continue; /* counted but not sent: nothing to fetch */
        a = ingest_attachment_add (msg, s_media_kind (type));
        if (!a || s_set (&a->url, url) || s_set (&a->mime_type, type))
            goto oom;
    }
    if (s_coordinate (lat_s, 90, &lat) && s_coordinate (lon_s, 180, &lon)) {
        const char *label = rt_form_get (form, "Label");
        Retain__V1__Attachment *a = ingest_attachment_add (msg, "location");
        if (!label || !*label)
            label = rt_form_get (form, "Address");
        if (!a || s_set (&a->name, label))
            goto oom;
        a->latitude = lat;
        a->longitude = lon;
    }
    return s_add (inbox, result, "InboundMessage", msg->external_id, &msg->base, channel,
                  msg->external_user_id);
oom:
    protobuf_c_message_free_unpacked (&msg->base, NULL);
    return s_oom (result);
}

/* --- the handler ---------------------------------------------------- */

int
twilio_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    const char *ctype, *header, *status, *raw_sid;
    rt_form_t *form = NULL;
    char err[160], *sid = NULL;
    int rc = -1;
    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed", "method %.16s not allowed: POST",
                            req->method);
    ctype = ingest_header (req, "Content-Type");
    if (!formdata_is_type (ctype, "application/x-www-form-urlencoded"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type %.60s is not application/x-www-form-urlencoded",
                            ctype ? ctype : "(none)");
    header = ingest_header (req, "X-Twilio-Signature");
    if (!header || !*header)
        return ingest_fail (result, 401, "missing_signature", "X-Twilio-Signature missing");
    form = rt_form_parse ((const char *)req->body, req->body_len, err, sizeof err);
    if (!form)
        return ingest_fail (result, 400, "malformed", "form: %s", err);
    if (s_verify (inbox, req, form, header, result) != 0)
        goto cleanup;
    raw_sid = rt_form_get (form, "MessageSid");
    if (!raw_sid || !*raw_sid)
        raw_sid = rt_form_get (form, "SmsMessageSid");
    if (!raw_sid || !*raw_sid) {
        ingest_fail (result, 400, "malformed", "MessageSid missing");
        goto cleanup;
    }
    /* It becomes a de-duplication key in PostgreSQL text: valid UTF-8. */
    sid = formdata_utf8_dup (raw_sid, strlen (raw_sid));
    if (!sid) {
        s_oom (result);
        goto cleanup;
    }
    status = rt_form_get (form, "MessageStatus");
    if (!status || !*status)
        status = rt_form_get (form, "SmsStatus");
    if (status && *status && strcmp (status, "received") != 0 && strcmp (status, "receiving") != 0)
        rc = s_status_callback (inbox, req, form, status, sid, result);
    else
        rc = s_inbound (inbox, req, form, sid, result);
cleanup:
    free (sid);
    rt_form_destroy (&form);
    return rc;
}
