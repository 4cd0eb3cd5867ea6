/*
 * mime_int: what the files of mime share, and nothing else includes
 * (callers see mime.h only).
 *
 * The parser is split by concern, each file with its own statics:
 *   message.c    mime_parse and mime_free, the parse context, its notes
 *   slice.c      reading the input: prefixes, searches, lines, comments
 *   header.c     header fields, unfolding, RFC 2047 encoded words
 *   params.c     Content-Type / Content-Disposition parameters (RFC 2231)
 *   charset.c    charset labels, iconv, the UTF-8 every string ends in
 *   encoding.c   transfer encodings: quoted-printable, base64, hex escapes
 *   multipart.c  the MIME tree: entities, multiparts, leaves, attachments
 *   html.c       text/html turned to text
 *   text.c       the text's clean-up: format=flowed, line tidying
 *   reply.c      the quoted reply cut off below the new text
 *   address.c    the sender's mailbox and message ids
 *   date.c       the Date header
 *
 * Invariants every file keeps, so that mime.h's contract holds:
 * - The input is untrusted bytes of any length, not NUL-terminated,
 *   possibly with NULs inside: functions take (pointer, length) slices of
 *   it and never assume a terminator. Strings the pieces make from it (a
 *   header value, a parameter) are C strings, NULs dropped.
 * - Work is bounded by the MIME_MAX_* limits below, and every scan is
 *   linear in its slice.
 * - Damage never stops the parse: it is noted (mime_note) and decoding
 *   goes on with what can be kept.
 * - Out of memory is recorded, not checked at every step: an rt_buf_t
 *   marks itself failed and ignores further appends, mime_check carries
 *   that to the context, and mime_parse frees everything and returns NULL
 *   when ctx->oom is set at the end.
 */
#ifndef MIME_INT_H
#define MIME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"
#include "rt_buf.h"

enum {
    MIME_MAX_DEPTH = 16,     /* nested multiparts */
    MIME_MAX_PARTS = 1000,   /* entities in one message */
    MIME_MAX_HEADERS = 1000, /* header fields per entity */
    MIME_MAX_PARAMS = 64,    /* parameters per Content-Type / Content-Disposition */
    MIME_MAX_WORD = 1024,    /* bytes searched for the end of an RFC 2047 word */
    MIME_MAX_TAG = 4096,     /* bytes of one HTML tag read for quoted attributes */
    MIME_MAX_CHARSET = 64,   /* longest charset label taken seriously */
};

/* U+FFFD, what an undecodable byte becomes. */
#define MIME_REPLACEMENT "\xEF\xBF\xBD"

/* ------------------------------------------------------------------ */
/* The parse context (message.c)                                       */

typedef struct {
    mime_message_t *msg;                 /* what we fill */
    size_t nentities;                    /* entities seen, against MIME_MAX_PARTS */
    size_t attcap;                       /* allocated attachment slots */
    bool oom;                            /* an allocation failed somewhere */
    bool have_plain;                     /* the text/plain body was chosen */
    bool have_html;                      /* a text/html body was kept as fallback */
    rt_buf_t plain;                      /* the chosen text/plain, UTF-8 */
    rt_buf_t html;                       /* the first text/html turned to text, UTF-8 */
    char charset[MIME_MAX_CHARSET];      /* the body's charset: a hint for raw 8-bit headers */
    char html_charset[MIME_MAX_CHARSET]; /* the same for the HTML fallback */
} mime_ctx_t;

/* Records damage in the message's note; the first notes are kept, later
 * ones once each while they fit. */
void mime_note (mime_ctx_t *ctx, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Sets ctx->oom when b failed. */
void mime_check (mime_ctx_t *ctx, const rt_buf_t *b);

/* Appends one byte to b: rt_buf_put without a call while there is room,
 * since the decoders here append a byte at a time. */
static inline void
mime_buf_addc (rt_buf_t *b, char c)
{
    if (!b->failed && b->len + 1 < b->cap) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    rt_buf_put (b, &c, 1);
}

/* Hands out b's contents as an owned string ("" when empty) and leaves b
 * empty; NULL when b failed. */
char *mime_buf_take (rt_buf_t *b);

/* ------------------------------------------------------------------ */
/* Characters and slices (slice.c)                                     */

static inline char
mime_lower (char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static inline bool
mime_is_wsp (char c)
{
    return c == ' ' || c == '\t';
}

static inline bool
mime_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static inline bool
mime_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

static inline bool
mime_is_alpha (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* True when the n bytes at p start (end) with prefix (suffix), ignoring
 * ASCII case. */
bool mime_prefix (const char *p, size_t n, const char *prefix);
bool mime_suffix (const char *p, size_t n, const char *suffix);

/* Finds needle in the n bytes at p, ignoring ASCII case; NULL when absent. */
const char *mime_find_ci (const char *p, size_t n, const char *needle);

/* The line starting at pos in p[0..n): *eol is where its content ends
 * (before CR LF or LF), the return value where the next line starts. */
size_t mime_line (const char *p, size_t n, size_t pos, size_t *eol);

/* Narrows (*p, *n) to leave out leading and trailing whitespace. */
void mime_trim (const char **p, size_t *n);

/* The first offset from i in s[0..n) past whitespace and (nested) RFC 5322
 * comments. */
size_t mime_skip_cfws (const char *s, size_t n, size_t i);

/* ------------------------------------------------------------------ */
/* Charsets (charset.c)                                                */

/* Copies a charset label of n bytes into out (outlen bytes), lower-cased,
 * without quotes, spaces or an RFC 2231 language suffix. False when it is
 * not a plausible charset name (out is then unusable). */
bool mime_charset_clean (const char *label, size_t n, char *out, size_t outlen);

/* Converts n bytes in the charset `label` (llen bytes, not NUL-terminated;
 * empty means US-ASCII, unknown is read as UTF-8) to UTF-8 appended to out.
 * Notes damage when ctx is not NULL. */
void mime_charset_convert (mime_ctx_t *ctx, rt_buf_t *out, const char *data, size_t n,
                           const char *label, size_t llen);

/* Appends n bytes as valid UTF-8: each invalid byte becomes U+FFFD, NULs
 * are dropped (they would cut C strings short). Returns the number of
 * invalid bytes. */
size_t mime_utf8_append (rt_buf_t *out, const char *data, size_t n);

/* ------------------------------------------------------------------ */
/* Headers (header.c)                                                  */

typedef struct {
    const char *name; /* field name, lent from the input */
    size_t name_len;  /* its length */
    const char *raw;  /* the value as it stands, folds included, lent */
    size_t raw_len;   /* its length */
} mime_hdr_t;

typedef struct {
    mime_hdr_t *v; /* the fields, in order (owned array) */
    size_t n;      /* fields stored, at most MIME_MAX_HEADERS */
    size_t cap;    /* slots allocated */
} mime_hdrs_t;

/* Splits the entity in p[0..n) into header fields (lent from p) and a body,
 * which starts at *body. A line that is neither a field nor a continuation
 * ends the header (the rest is body) and is noted; an mbox "From " line
 * first is skipped. */
void mime_hdrs_parse (mime_ctx_t *ctx, const char *p, size_t n, mime_hdrs_t *h, size_t *body);
void mime_hdrs_free (mime_hdrs_t *h);

/* The value of the first field called name (ASCII case ignored), folds
 * undone, NULs dropped, trimmed. Owned; "" when the field is absent; NULL
 * when out of memory. */
char *mime_hdr_value (const mime_hdrs_t *h, const char *name);

/* Appends s[0..n) with its RFC 2047 encoded words decoded to UTF-8; raw
 * text between them is UTF-8 when it is, else in the fallback charset
 * (NULL or "" for none). */
void mime_words_decode (mime_ctx_t *ctx, rt_buf_t *out, const char *s, size_t n,
                        const char *fallback);

/* A header value (C string) decoded as mime_words_decode does and trimmed;
 * owned, NULL when out of memory. ctx may be NULL (no notes). */
char *mime_header_decode (mime_ctx_t *ctx, const char *value, const char *fallback);

/* ------------------------------------------------------------------ */
/* Content-Type / Content-Disposition parameters (params.c)            */

typedef struct {
    char *name;  /* lower-cased, with any RFC 2231 "*n*" suffix (owned) */
    char *value; /* unquoted, raw bytes (owned) */
} mime_param_t;

typedef struct {
    char value[128]; /* "text/plain", "attachment": lower-cased, "" when absent */
    mime_param_t params[MIME_MAX_PARAMS]; /* the parameters, in order */
    size_t nparams;                       /* how many are set */
} mime_ctype_t;

/* Parses "value; name=value; name="quoted"" (an unfolded header value)
 * into ct, which needs mime_ctype_free afterwards. */
void mime_ctype_parse (mime_ctx_t *ctx, const char *s, mime_ctype_t *ct);
void mime_ctype_free (mime_ctype_t *ct);

/* The raw value of parameter name (lower-case), lent; NULL when absent. */
const char *mime_param (const mime_ctype_t *ct, const char *name);

/* A parameter's value in UTF-8, RFC 2231 continuations and charsets and
 * RFC 2047 words decoded. Owned; NULL when absent or out of memory (then
 * ctx->oom is set). */
char *mime_param_text (mime_ctx_t *ctx, const mime_ctype_t *ct, const char *base);

/* ------------------------------------------------------------------ */
/* Transfer encodings (encoding.c)                                     */

typedef enum {
    MIME_CTE_IDENTITY, /* 7bit, 8bit, binary, or none given */
    MIME_CTE_QP,       /* quoted-printable */
    MIME_CTE_BASE64,   /* base64 */
    MIME_CTE_UNKNOWN,  /* something else: the body is kept as it is */
} mime_cte_t;

/* The entity's Content-Transfer-Encoding; an unknown one is noted. */
mime_cte_t mime_cte (mime_ctx_t *ctx, const mime_hdrs_t *h);

/* Decodes a body in its transfer encoding into out, noting damage. */
void mime_body_decode (mime_ctx_t *ctx, rt_buf_t *out, mime_cte_t cte, const char *p, size_t n);

enum {
    MIME_B64_BADCHAR = 1,   /* a character outside the alphabet was skipped */
    MIME_B64_TRUNCATED = 2, /* a group ended one character into a quantum */
};

/* Lenient base64 (RFC 2045 6.8) appended to out; returns MIME_B64_* flags. */
int mime_base64_decode (rt_buf_t *out, const char *p, size_t n);

/* Appends s[0..n) with each esc followed by two hex digits decoded to its
 * byte; an escape that is not one stays as it is. With underscore_space
 * set, '_' is a space (RFC 2047's Q encoding). */
void mime_hex_unescape (rt_buf_t *out, const char *s, size_t n, char esc, bool underscore_space);

/* ------------------------------------------------------------------ */
/* The MIME tree (multipart.c)                                         */

/* The body p[0..n) of an entity whose header h is parsed: a multipart's
 * parts, or a leaf (a body text or an attachment). dflt is the type when
 * the header names none. */
void mime_entity_body (mime_ctx_t *ctx, const mime_hdrs_t *h, const char *p, size_t n, int depth,
                       const char *dflt);

/* ------------------------------------------------------------------ */
/* Text (html.c, text.c, reply.c)                                      */

/* HTML of n bytes (UTF-8) to plain text appended to out. */
void mime_html_to_text (rt_buf_t *out, const char *h, size_t n);

/* RFC 3676 format=flowed undone, appended to out. */
void mime_text_unflow (rt_buf_t *out, const char *p, size_t n, bool delsp);

/* Line breaks to "\n", trailing whitespace off each line, leading and
 * trailing blank lines off the whole, appended to out. */
void mime_text_tidy (rt_buf_t *out, const char *p, size_t n);

/* The text above the quoted reply; the whole text when there is no quote
 * or nothing above it. Owned; NULL when out of memory. */
char *mime_reply_strip (const char *full);

/* ------------------------------------------------------------------ */
/* Structured fields (address.c, date.c)                               */

/* Message ids in a header value, without angle brackets, space-separated;
 * at most max of them (0: all). Owned; NULL when out of memory. */
char *mime_ids_parse (const char *v, size_t max);

/* The first mailbox of an address header: its display name (decoded in
 * ctx->charset when raw) and its address, each owned; ctx->oom set when
 * either could not be made. */
void mime_from_parse (mime_ctx_t *ctx, const char *v, char **name, char **email);

/* An RFC 5322 date-time, read leniently, as unix ms; 0 when it is not a
 * date. */
int64_t mime_date_parse (const char *s);

#endif
