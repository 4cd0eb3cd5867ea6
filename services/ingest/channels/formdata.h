/*
 * formdata: multipart/form-data bodies (RFC 7578), for the channels that
 * post forms with files (Mailgun sends one when a mail has attachments),
 * plus the small checks every form-posting channel needs: a Content-Type's
 * media type, and values made valid UTF-8 before they go into protobuf
 * strings (proto3 strings must be UTF-8; a form value is whatever bytes
 * the percent-escapes said).
 *
 * The parser is a flat loop over the body: no recursion (a nested
 * multipart part is kept as one opaque part), CRLF or bare LF line ends,
 * bounded part count and header size. A body that breaks off (no closing
 * delimiter, a part's headers too long or unterminated) keeps the parts
 * read so far and says it is damaged: a caller that must never drop what
 * it was sent (an e-mail) takes what could be decoded.
 */
#ifndef INGEST_FORMDATA_H
#define INGEST_FORMDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parts past this many are not read (the body is marked damaged). */
#define FORMDATA_MAX_PARTS 1024
/* A part's header block longer than this ends the parse (damaged). */
#define FORMDATA_MAX_HEADER 16384

typedef struct {
    char *name;          /* the field name from Content-Disposition, owned */
    char *filename;      /* the file name (UTF-8), owned; NULL for a plain field */
    char *content_type;  /* the part's media type, lower case, owned; "" when none */
    const uint8_t *data; /* the part's bytes, lent from the parsed body */
    size_t len;          /* their number */
} formdata_part_t;

typedef struct formdata_t formdata_t;

/* Parses len bytes of body sent with content_type (which carries the
 * boundary). NULL with the reason in err when there is no usable boundary
 * parameter, no delimiter at all in the body, or out of memory. The parts
 * point into body, which must outlive the result. */
formdata_t *formdata_parse (const char *content_type, const uint8_t *body, size_t len, char *err,
                            size_t errlen);
void formdata_destroy (formdata_t **self_p);

/* Number of parts, and the i-th in body order (lent). */
size_t formdata_count (const formdata_t *self);
const formdata_part_t *formdata_part (const formdata_t *self, size_t i);

/* True when the body was cut short or broken; note says where (lent). */
bool formdata_damaged (const formdata_t *self);
const char *formdata_note (const formdata_t *self);

/* True when content_type (may be NULL) has the media type media_type,
 * case-insensitively, whatever its parameters. */
bool formdata_is_type (const char *content_type, const char *media_type);

/* A NUL-terminated copy of len bytes that is valid UTF-8: bytes that are
 * not (and NUL) become U+FFFD. Owned by the caller; NULL when out of
 * memory. */
char *formdata_utf8_dup (const void *data, size_t len);

#endif
