/*
 * mime: an e-mail (RFC 5322 + MIME) into what a support agent reads.
 *
 * Parses headers (unfolding, RFC 2047 encoded words in any charset), the
 * MIME tree (any multipart, nested), transfer encodings (quoted-printable,
 * base64, 7bit/8bit), and converts every text to UTF-8 from its declared
 * charset (iconv). The text is the text/plain part, or text/html turned to
 * text when there is none; the quoted reply below it ("On ... wrote:",
 * lines starting with ">", Outlook's "-----Original Message-----") is cut
 * off. Other parts become attachments (name, MIME type, size). Threading
 * comes from Message-ID, In-Reply-To and References.
 *
 * Never fails on bad input: a broken structure, an unknown charset or bad
 * encodings keep what could be decoded (invalid bytes become U+FFFD) and
 * set `damaged` with a note; only running out of memory fails.
 */
#ifndef INGEST_MIME_H
#define INGEST_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;      /* file name, UTF-8 ("" when none) */
    char *mime_type; /* e.g. "application/pdf" */
    size_t size;     /* decoded size in bytes */
} mime_attachment_t;

typedef struct {
    char *message_id;  /* without angle brackets, "" when none */
    char *in_reply_to; /* first id, without brackets */
    char *references;  /* the ids, space-separated, without brackets */
    char *thread_id;   /* first of References, else In-Reply-To, else Message-ID */
    char *from_name;   /* display name, UTF-8 */
    char *from_email;  /* address, lower-cased domain */
    char *subject;     /* UTF-8 */
    int64_t date_ms;   /* Date header as unix ms, 0 when missing or unparsable */
    char *text;        /* the new text, quoted reply removed, UTF-8 */
    char *full_text;   /* the whole text part, UTF-8 */
    mime_attachment_t *attachments;
    size_t nattachments;
    bool damaged;   /* something could not be decoded as declared */
    char note[256]; /* what, when damaged */
} mime_message_t;

/* Parses len bytes of a message. Returns an owned message (mime_free), NULL
 * only when out of memory. */
mime_message_t *mime_parse (const char *data, size_t len);
void mime_free (mime_message_t **self_p);

/* Decodes a header value with RFC 2047 encoded words into UTF-8 (owned). */
char *mime_decode_header (const char *value);

#endif
