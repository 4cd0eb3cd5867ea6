/*
 * rt_attachment: the attachments retain sends (see rt_attachment.h).
 *
 * The URL is checked, not parsed: the provider fetches it, so what
 * matters here is that it is https (a customer's photo of a parcel never
 * travels in the clear, and Telegram fetches nothing else from a bot's
 * URL reliably), names a host, and can go into a JSON body and a text line
 * as it is.
 */
#include "rt_attachment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_utf8.h"

bool
rt_attachment_kind_ok (const char *kind)
{
    return kind && (strcmp (kind, "image") == 0 || strcmp (kind, "document") == 0);
}

/* Whether s[0..len) holds a byte below 0x20 or DEL. */
static bool
s_has_control (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return true;
    }
    return false;
}

/* A name or a media type: absent, or short UTF-8 text on one line. */
static int
s_check_text (const char *what, const char *s, size_t max, char *err, size_t errlen)
{
    size_t len = s ? strlen (s) : 0;
    if (len == 0)
        return 0;
    if (len > max) {
        snprintf (err, errlen, "%s: at most %zu bytes (it has %zu)", what, max, len);
        return -1;
    }
    if (!rt_utf8_text_ok (s, len) || s_has_control (s, len)) {
        snprintf (err, errlen, "%s: must be UTF-8 text on one line", what);
        return -1;
    }
    return 0;
}

int
rt_attachment_check (const char *kind, const char *url, const char *name, const char *mime_type,
                     char *err, size_t errlen)
{
    static const char scheme[] = "https://";
    size_t len = url ? strlen (url) : 0;
    if (!rt_attachment_kind_ok (kind)) {
        snprintf (err, errlen, "kind: must be image or document, not \"%.32s\"", kind ? kind : "");
        return -1;
    }
    if (len == 0) {
        snprintf (err, errlen, "url: required");
        return -1;
    }
    if (len > RT_ATTACHMENT_URL_MAX) {
        snprintf (err, errlen, "url: at most %d bytes (it has %zu)", RT_ATTACHMENT_URL_MAX, len);
        return -1;
    }
    if (strncasecmp (url, scheme, sizeof scheme - 1) != 0 || len == sizeof scheme - 1 ||
        url[sizeof scheme - 1] == '/') {
        snprintf (err, errlen, "url: must be an https:// URL with a host");
        return -1;
    }
    if (!rt_utf8_text_ok (url, len) || s_has_control (url, len) || strchr (url, ' ')) {
        snprintf (err, errlen, "url: no spaces or control characters");
        return -1;
    }
    if (s_check_text ("name", name, RT_ATTACHMENT_NAME_MAX, err, errlen) != 0 ||
        s_check_text ("mime_type", mime_type, RT_ATTACHMENT_MIME_MAX, err, errlen) != 0)
        return -1;
    return 0;
}

json_t *
rt_attachment_json (const char *kind, const char *url, const char *name, const char *mime_type)
{
    json_t *o = json_pack ("{s:s, s:s}", "kind", kind ? kind : "", "url", url ? url : "");
    if (o && name && name[0] && json_object_set_new (o, "name", json_string (name)) != 0) {
        json_decref (o);
        return NULL;
    }
    if (o && mime_type && mime_type[0] &&
        json_object_set_new (o, "mime_type", json_string (mime_type)) != 0) {
        json_decref (o);
        return NULL;
    }
    return o;
}

char *
rt_attachment_text (const char *text, const char *const *urls, size_t n)
{
    size_t len = text ? strlen (text) : 0, total = len + 1, used = 0;
    char *out;
    for (size_t i = 0; i < n; i++)
        total += strlen (urls[i]) + 1;
    out = malloc (total);
    if (!out)
        return NULL;
    if (len) {
        memcpy (out, text, len);
        used = len;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen (urls[i]);
        if (used)
            out[used++] = '\n';
        memcpy (out + used, urls[i], k);
        used += k;
    }
    out[used] = '\0';
    return out;
}
