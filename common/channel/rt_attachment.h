/*
 * rt_attachment: what an outbound attachment may be, in one place for the
 * operator API that takes it (routerd) and the consumer that sends it
 * (notifyd).
 *
 * An operator's reply may carry up to RT_ATTACHMENTS_MAX attachments, each
 * an image or a document the provider fetches from an https URL (retain
 * uploads nothing). A channel whose adapter sends media (rt_channel's
 * caption_max > 0: Telegram) sends each as its medium; elsewhere each
 * attachment's URL goes on a line of its own after the text
 * (rt_attachment_text), and the whole must fit the channel's text limit.
 *
 * Pure functions over strings: thread-safe, no state.
 */
#ifndef RT_ATTACHMENT_H
#define RT_ATTACHMENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define RT_ATTACHMENTS_MAX     10   /* attachments of one message at most */
#define RT_ATTACHMENT_URL_MAX  2048 /* bytes of an attachment's URL at most */
#define RT_ATTACHMENT_NAME_MAX 255  /* bytes of its file name at most */
#define RT_ATTACHMENT_MIME_MAX 127  /* bytes of its media type at most (RFC 6838) */

/* Whether kind is one retain sends: "image" or "document". */
bool rt_attachment_kind_ok (const char *kind);

/* Refuses, into err, an attachment that cannot go out: a kind other than
 * image or document, a URL that is not https:// with a host (at most
 * RT_ATTACHMENT_URL_MAX bytes, no space or control character), a name or
 * mime_type (NULL or "" for none) too long, not UTF-8 or holding a
 * control character. err begins with the field's name ("url: ..."), for
 * the caller to put its place before it. 0 or -1. */
int rt_attachment_check (const char *kind, const char *url, const char *name, const char *mime_type,
                         char *err, size_t errlen);

/* An attachment as retain records it, in a timeline entry and in
 * notify.sends: {"kind", "url", "name"?, "mime_type"?} (name and type
 * left out when NULL or ""). A new reference, NULL when out of memory or
 * a string is not UTF-8. */
json_t *rt_attachment_json (const char *kind, const char *url, const char *name,
                            const char *mime_type);

/* The text of a message whose attachments go as links: text (NULL or ""
 * for none), then each of urls[0..n) on a line of its own. Owned (free),
 * NULL when out of memory. */
char *rt_attachment_text (const char *text, const char *const *urls, size_t n);

#endif
