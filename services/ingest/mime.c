/*
 * mime: an e-mail into what a support agent reads (see mime.h).
 *
 * The input is untrusted bytes of any length, not NUL-terminated, possibly
 * with NULs inside. Everything here works on (pointer, length) slices of it
 * and never assumes a terminator. Work is bounded: MIME nesting stops at
 * S_MAX_DEPTH, an entity count at S_MAX_PARTS, headers per entity at
 * S_MAX_HEADERS, and every scan is linear in its slice (the one place that
 * searches ahead, an RFC 2047 word's end, is capped at S_MAX_WORD).
 *
 * Damage never stops the parse: each decoder keeps what it can and records
 * a note; the message comes back with `damaged` set. Every string handed
 * out has gone through s_utf8_append, so it is valid UTF-8 without NULs
 * whatever the input was. Out of memory sets ctx->oom; buffers become
 * no-ops from then on and mime_parse frees everything and returns NULL, so
 * the code in between need not check each allocation.
 */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    S_MAX_DEPTH = 16,     /* nested multiparts */
    S_MAX_PARTS = 1000,   /* entities in one message */
    S_MAX_HEADERS = 1000, /* header fields per entity */
    S_MAX_PARAMS = 64,    /* parameters per Content-Type / Content-Disposition */
    S_MAX_WORD = 1024,    /* bytes searched for the end of an RFC 2047 word */
    S_MAX_TAG = 4096,     /* bytes of one HTML tag read for quoted attributes */
    S_MAX_CHARSET = 64,   /* longest charset label taken seriously */
};

/* ------------------------------------------------------------------ */
/* Growing buffers                                                     */

typedef struct {
    char *p;    /* the bytes, NUL-terminated when non-NULL */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an allocation failed: further appends are dropped */
} s_buf_t;

static void
s_buf_add (s_buf_t *b, const void *data, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc (b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy (b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
s_buf_addc (s_buf_t *b, char c)
{
    s_buf_add (b, &c, 1);
}

static void
s_buf_adds (s_buf_t *b, const char *s)
{
    s_buf_add (b, s, strlen (s));
}

static void
s_buf_free (s_buf_t *b)
{
    free (b->p);
    memset (b, 0, sizeof *b);
}

/* Hands out the contents as an owned string ("" when empty) and resets the
 * buffer; NULL when out of memory. */
static char *
s_buf_take (s_buf_t *b)
{
    char *p;
    if (b->oom) {
        s_buf_free (b);
        return NULL;
    }
    p = b->p ? b->p : strdup ("");
    memset (b, 0, sizeof *b);
    return p;
}

/* ------------------------------------------------------------------ */
/* Parse context                                                       */

typedef struct {
    mime_message_t *msg;              /* what we fill */
    size_t nentities;                 /* entities seen, against S_MAX_PARTS */
    size_t attcap;                    /* allocated attachment slots */
    bool oom;                         /* an allocation failed somewhere */
    bool have_plain;                  /* the text/plain body was chosen */
    bool have_html;                   /* a text/html body was kept as fallback */
    s_buf_t plain;                    /* the chosen text/plain, UTF-8 */
    s_buf_t html;                     /* the first text/html turned to text, UTF-8 */
    char charset[S_MAX_CHARSET];      /* the body's charset: a hint for raw 8-bit headers */
    char html_charset[S_MAX_CHARSET]; /* the same for the HTML fallback */
} s_ctx_t;

/* Records damage; the first notes are kept, later ones once each while
 * they fit. */
static void s_note (s_ctx_t *ctx, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_note (s_ctx_t *ctx, const char *fmt, ...)
{
    char line[128];
    char *note = ctx->msg->note;
    size_t used = strlen (note);
    va_list ap;
    ctx->msg->damaged = true;
    va_start (ap, fmt);
    vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    if (strstr (note, line))
        return;
    if (used + (used ? 2 : 0) + strlen (line) + 1 > sizeof ctx->msg->note)
        return;
    snprintf (note + used, sizeof ctx->msg->note - used, "%s%s", used ? "; " : "", line);
}

static void
s_check (s_ctx_t *ctx, const s_buf_t *b)
{
    if (b->oom)
        ctx->oom = true;
}

/* ------------------------------------------------------------------ */
/* Characters                                                          */

static char
s_lower (char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
s_is_wsp (char c)
{
    return c == ' ' || c == '\t';
}

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static bool
s_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

static bool
s_is_alpha (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* True when the n bytes at p start with prefix, ignoring ASCII case. */
static bool
s_prefix (const char *p, size_t n, const char *prefix)
{
    size_t k = strlen (prefix);
    return n >= k && strncasecmp (p, prefix, k) == 0;
}

/* True when the n bytes at p end with suffix, ignoring ASCII case. */
static bool
s_suffix (const char *p, size_t n, const char *suffix)
{
    size_t k = strlen (suffix);
    return n >= k && strncasecmp (p + n - k, suffix, k) == 0;
}

/* Finds needle in the n bytes at p, ignoring ASCII case; NULL when absent. */
static const char *
s_find_ci (const char *p, size_t n, const char *needle)
{
    size_t k = strlen (needle), i;
    if (k == 0 || n < k)
        return NULL;
    for (i = 0; i + k <= n; i++) {
        if (strncasecmp (p + i, needle, k) == 0)
            return p + i;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */

/* Length of the well-formed UTF-8 sequence at p (n > 0 bytes available),
 * 0 when it is not one (overlong forms, surrogates, beyond U+10FFFF). */
static size_t
s_utf8_seq (const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

static const char s_replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Appends n bytes as valid UTF-8: each invalid byte becomes U+FFFD, NULs
 * are dropped (they would cut C strings short). Returns the number of
 * invalid bytes. */
static size_t
s_utf8_append (s_buf_t *out, const char *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0, run = 0, bad = 0;
    while (i < n) {
        size_t k = p[i] ? s_utf8_seq (p + i, n - i) : 0;
        if (k > 0) {
            i += k;
            run += k;
            continue;
        }
        s_buf_add (out, data + i - run, run);
        run = 0;
        if (p[i]) {
            s_buf_add (out, s_replacement, 3);
            bad++;
        }
        i++;
    }
    s_buf_add (out, data + i - run, run);
    return bad;
}

static bool
s_utf8_valid (const char *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    while (i < n) {
        size_t k = p[i] ? s_utf8_seq (p + i, n - i) : 0;
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

static void
s_utf8_put (s_buf_t *out, unsigned long cp)
{
    char u[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        s_buf_add (out, s_replacement, 3);
    } else if (cp < 0x80) {
        s_buf_addc (out, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        s_buf_add (out, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        s_buf_add (out, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        s_buf_add (out, u, 4);
    }
}

/* ------------------------------------------------------------------ */
/* Charsets                                                            */

/* Copies a charset label into out, lower-cased, without quotes, spaces or
 * an RFC 2231 language suffix. Returns false when it is not a plausible
 * name: labels come from senders and go to iconv_open, so only the
 * characters real charset names use get through (no '/', which would let
 * a sender pick iconv's //TRANSLIT or //IGNORE behaviours). */
static bool
s_charset_clean (const char *label, size_t n, char *out, size_t outlen)
{
    size_t i = 0, k = 0;
    while (i < n && (s_is_space (label[i]) || label[i] == '"' || label[i] == '\''))
        i++;
    while (n > i && (s_is_space (label[n - 1]) || label[n - 1] == '"' || label[n - 1] == '\''))
        n--;
    for (; i < n; i++) {
        char c = label[i];
        if (c == '*')
            break;
        if (!(s_is_alpha (c) || s_is_digit (c) || c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
        if (k + 1 >= outlen)
            return false;
        out[k++] = s_lower (c);
    }
    out[k] = '\0';
    return k > 0;
}

/* Labels we read as UTF-8 without iconv. US-ASCII is among them: mail
 * labelled us-ascii (or nothing) often carries UTF-8, and reading it as
 * UTF-8 loses nothing that ASCII would have kept. */
static bool
s_charset_is_utf8 (const char *cs)
{
    static const char *const names[] = {"utf-8",    "utf8",           "us-ascii",  "ascii",
                                        "us_ascii", "ansi_x3.4-1968", "iso646-us", "646",
                                        "us",       "cp367",          "ibm367",    "csascii"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp (cs, names[i]) == 0)
            return true;
    }
    return false;
}

/* Labels mailers use that glibc's iconv spells differently; supersets are
 * chosen where senders are known to mislabel (GBK for gb2312, CP949 for
 * ks_c_5601). */
static const char *
s_charset_alias (const char *cs)
{
    static const char *const map[][2] = {
        {"ks_c_5601-1987", "CP949"},
        {"ks_c_5601", "CP949"},
        {"gb2312", "GBK"},
        {"x-gbk", "GBK"},
        {"iso-8859-8-i", "ISO-8859-8"},
        {"win-1251", "CP1251"},
        {"x-cp1251", "CP1251"},
        {"cp-1251", "CP1251"},
        {"x-mac-cyrillic", "MAC-CYRILLIC"},
        {"x-mac-ukrainian", "MAC-UK"},
        {"windows-874", "CP874"},
        {"x-sjis", "SHIFT_JIS"},
        {"x-euc-jp", "EUC-JP"},
        {"x-user-defined", "CP1252"},
    };
    size_t i;
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp (cs, map[i][0]) == 0)
            return map[i][1];
    }
    return cs;
}

/* The charset label made printable for a note. */
static void
s_charset_shown (const char *label, size_t n, char *out, size_t outlen)
{
    size_t i, k = 0;
    for (i = 0; i < n && k + 1 < outlen && k < 40; i++) {
        unsigned char c = (unsigned char)label[i];
        out[k++] = (c >= 0x20 && c < 0x7F && c != '"') ? (char)c : '?';
    }
    out[k] = '\0';
}

/* Converts n bytes in charset `label` (not NUL-terminated, llen bytes) to
 * UTF-8 appended to out. An empty label means US-ASCII. An unknown charset
 * is read as UTF-8. Notes damage when ctx is given. */
static void
s_convert (s_ctx_t *ctx, s_buf_t *out, const char *data, size_t n, const char *label, size_t llen)
{
    char cs[S_MAX_CHARSET], shown[48];
    iconv_t cd;
    char *in = (char *)data;
    size_t left = n, bad = 0;
    bool known;

    if (llen == 0) {
        strcpy (cs, "us-ascii");
        known = true;
    } else {
        known = s_charset_clean (label, llen, cs, sizeof cs);
    }
    if (known && s_charset_is_utf8 (cs)) {
        bad = s_utf8_append (out, data, n);
        if (bad && ctx)
            s_note (ctx, "invalid bytes for charset %s", cs);
        return;
    }
    cd = known ? iconv_open ("UTF-8", s_charset_alias (cs)) : (iconv_t)-1;
    if (cd == (iconv_t)-1) {
        s_utf8_append (out, data, n);
        if (ctx) {
            s_charset_shown (label, llen, shown, sizeof shown);
            s_note (ctx, "unknown charset %s", shown);
        }
        return;
    }
    while (left > 0 && !out->oom) {
        char tmp[4096];
        char *op = tmp;
        size_t oleft = sizeof tmp;
        size_t before = left;
        size_t r = iconv (cd, &in, &left, &op, &oleft);
        int err = errno;
        /* iconv writes whole characters, so each chunk is complete UTF-8;
         * it still goes through the validator to drop NULs. */
        s_utf8_append (out, tmp, (size_t)(op - tmp));
        if (r != (size_t)-1)
            break;
        if (err == E2BIG && (op != tmp || left != before))
            continue;
        /* EILSEQ, an unexpected error, or no progress: replace one byte
         * and go on. EINVAL (a truncated sequence at the end) ends here
         * too, as the remaining bytes are all of that sequence. */
        s_buf_add (out, s_replacement, 3);
        bad++;
        if (err == EINVAL)
            break;
        in++;
        left--;
    }
    iconv_close (cd);
    if (bad && ctx)
        s_note (ctx, "invalid bytes for charset %s", cs);
}

/* ------------------------------------------------------------------ */
/* Transfer encodings                                                  */

/* Quoted-printable (RFC 2045 6.7). Soft line breaks are removed, trailing
 * whitespace that transport may have added is dropped, lower-case hex is
 * accepted; a bad escape is kept as it was. Returns true when one was. */
static bool
s_decode_qp (s_buf_t *out, const char *p, size_t n)
{
    size_t i = 0, trail = 0;
    bool bad = false;
    while (i < n) {
        char c = p[i];
        if (c == '=') {
            size_t j = i + 1;
            int hi = j < n ? s_hex (p[j]) : -1;
            int lo = j + 1 < n ? s_hex (p[j + 1]) : -1;
            if (hi >= 0 && lo >= 0) {
                s_buf_addc (out, (char)(hi * 16 + lo));
                trail = 0;
                i += 3;
                continue;
            }
            while (j < n && s_is_wsp (p[j]))
                j++;
            if (j == n) { /* "=" at the very end: a soft break before nothing */
                i = n;
                continue;
            }
            if (p[j] == '\n' || (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')) {
                i = j + (p[j] == '\r' ? 2 : 1);
                trail = 0;
                continue;
            }
            bad = true;
            s_buf_addc (out, '=');
            trail = 0;
            i++;
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (!out->oom && trail <= out->len) {
                out->len -= trail;
                if (out->p)
                    out->p[out->len] = '\0';
            }
            trail = 0;
            s_buf_addc (out, c);
            i++;
            continue;
        }
        s_buf_addc (out, c);
        trail = s_is_wsp (c) ? trail + 1 : 0;
        i++;
    }
    return bad;
}

static int
s_b64_value (char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

enum { S_B64_BADCHAR = 1, S_B64_TRUNCATED = 2 };

/* Base64 (RFC 2045 6.8). Whitespace is ignored; other characters outside
 * the alphabet are skipped. Padding ends a group and decoding goes on
 * after it, which reads the concatenated blocks some mailers produce.
 * Returns S_B64_* flags. */
static int
s_decode_b64 (s_buf_t *out, const char *p, size_t n)
{
    unsigned long acc = 0;
    int bits = 0, nchars = 0, flags = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        char c = p[i];
        int v = s_b64_value (c);
        if (v < 0) {
            if (c == '=') {
                if (nchars == 1)
                    flags |= S_B64_TRUNCATED;
                acc = 0;
                bits = 0;
                nchars = 0;
            } else if (!s_is_space (c)) {
                flags |= S_B64_BADCHAR;
            }
            continue;
        }
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        nchars = (nchars + 1) % 4;
        if (bits >= 8) {
            bits -= 8;
            s_buf_addc (out, (char)((acc >> bits) & 0xFF));
            acc &= (1UL << bits) - 1;
        }
    }
    if (nchars == 1)
        flags |= S_B64_TRUNCATED;
    return flags;
}

typedef enum { S_CTE_IDENTITY, S_CTE_QP, S_CTE_BASE64, S_CTE_UNKNOWN } s_cte_t;

/* Decodes a body in its transfer encoding into out, noting damage. */
static void
s_decode_body (s_ctx_t *ctx, s_buf_t *out, s_cte_t cte, const char *p, size_t n)
{
    int flags;
    switch (cte) {
    case S_CTE_QP:
        if (s_decode_qp (out, p, n))
            s_note (ctx, "bad quoted-printable escape");
        break;
    case S_CTE_BASE64:
        flags = s_decode_b64 (out, p, n);
        if (flags & S_B64_BADCHAR)
            s_note (ctx, "bad base64 character");
        if (flags & S_B64_TRUNCATED)
            s_note (ctx, "truncated base64");
        break;
    default:
        s_buf_add (out, p, n);
        break;
    }
    s_check (ctx, out);
}

/* ------------------------------------------------------------------ */
/* Headers                                                             */

typedef struct {
    const char *name; /* field name, lent from the input */
    size_t name_len;
    const char *raw; /* the value as it stands, folds included, lent */
    size_t raw_len;
} s_hdr_t;

typedef struct {
    s_hdr_t *v; /* the fields, in order */
    size_t n;
    size_t cap;
} s_hdrs_t;

static void
s_hdrs_free (s_hdrs_t *h)
{
    free (h->v);
    memset (h, 0, sizeof *h);
}

/* The end of the line starting at pos: *eol is where its content ends
 * (before CR LF or LF), the return value where the next line starts. */
static size_t
s_line (const char *p, size_t n, size_t pos, size_t *eol)
{
    const char *nl = pos < n ? memchr (p + pos, '\n', n - pos) : NULL;
    size_t end = nl ? (size_t)(nl - p) : n;
    size_t next = nl ? end + 1 : n;
    if (end > pos && p[end - 1] == '\r')
        end--;
    *eol = end;
    return next;
}

static bool
s_is_field_name (const char *p, size_t n)
{
    size_t i;
    if (n == 0)
        return false;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 32 || c >= 127 || c == ':')
            return false;
    }
    return true;
}

/* Splits the entity in p[0..n) into header fields and a body, which starts
 * at *body. A line that is neither a field nor a continuation ends the
 * header (the rest is body) and is noted; an mbox "From " line first is
 * skipped. */
static void
s_hdrs_parse (s_ctx_t *ctx, const char *p, size_t n, s_hdrs_t *h, size_t *body)
{
    size_t pos = 0;
    bool kept = false; /* the last field was stored, so continuations extend it */
    while (pos < n) {
        size_t eol, next = s_line (p, n, pos, &eol), len = eol - pos;
        const char *colon;
        size_t name_len;
        if (len == 0) {
            *body = next;
            return;
        }
        if (s_is_wsp (p[pos]) && (kept || h->n > 0)) {
            if (kept) {
                s_hdr_t *last = &h->v[h->n - 1];
                last->raw_len = (size_t)(p + eol - last->raw);
            }
            pos = next;
            continue;
        }
        colon = memchr (p + pos, ':', len);
        name_len = colon ? (size_t)(colon - (p + pos)) : 0;
        while (name_len > 0 && s_is_wsp (p[pos + name_len - 1]))
            name_len--;
        if (!colon || !s_is_field_name (p + pos, name_len)) {
            if (h->n == 0 && pos == 0 && s_prefix (p, len, "From ")) {
                pos = next;
                continue;
            }
            s_note (ctx, "malformed header line");
            *body = pos;
            return;
        }
        if (h->n < S_MAX_HEADERS) {
            if (h->n == h->cap) {
                size_t cap = h->cap ? h->cap * 2 : 16;
                s_hdr_t *v = realloc (h->v, cap * sizeof *v);
                if (!v) {
                    ctx->oom = true;
                    *body = n;
                    return;
                }
                h->v = v;
                h->cap = cap;
            }
            h->v[h->n].name = p + pos;
            h->v[h->n].name_len = name_len;
            h->v[h->n].raw = colon + 1;
            h->v[h->n].raw_len = (size_t)(p + eol - (colon + 1));
            h->n++;
            kept = true;
        } else {
            kept = false;
        }
        pos = next;
    }
    *body = n;
}

static const s_hdr_t *
s_hdr_find (const s_hdrs_t *h, const char *name)
{
    size_t i, k = strlen (name);
    for (i = 0; i < h->n; i++) {
        if (h->v[i].name_len == k && strncasecmp (h->v[i].name, name, k) == 0)
            return &h->v[i];
    }
    return NULL;
}

/* The value of a field with folds undone (a fold and the whitespace
 * around it become one space), NULs dropped, trimmed. Owned; "" when the
 * field is absent; NULL when out of memory. */
static char *
s_hdr_value (const s_hdrs_t *h, const char *name)
{
    const s_hdr_t *f = s_hdr_find (h, name);
    s_buf_t b = {0};
    size_t i = 0, n;
    const char *p;
    if (!f)
        return strdup ("");
    p = f->raw;
    n = f->raw_len;
    while (i < n && s_is_space (p[i]))
        i++;
    while (n > i && s_is_space (p[n - 1]))
        n--;
    while (i < n) {
        char c = p[i];
        if (c == '\r' || c == '\n') {
            while (b.len > 0 && s_is_wsp (b.p[b.len - 1]))
                b.len--;
            while (i < n && s_is_space (p[i]))
                i++;
            s_buf_addc (&b, ' ');
            continue;
        }
        if (c != '\0')
            s_buf_addc (&b, c);
        i++;
    }
    return s_buf_take (&b);
}

/* ------------------------------------------------------------------ */
/* RFC 2047 encoded words                                              */

typedef struct {
    const char *cs; /* charset label */
    size_t cs_len;
    char enc;         /* 'b' or 'q' */
    const char *text; /* encoded text */
    size_t text_len;
    size_t end; /* offset just past "?=" */
} s_word_t;

/* Parses "=?charset?B|Q?text?=" at s[pos..n). */
static bool
s_word_parse (const char *s, size_t n, size_t pos, s_word_t *w)
{
    size_t i = pos + 2, limit;
    /* RFC 2047 caps a word at 75 characters; a generous cap keeps a header
     * full of "=?" from making the search for "?=" quadratic. */
    if (pos + 2 > n || s[pos] != '=' || s[pos + 1] != '?')
        return false;
    w->cs = s + i;
    while (i < n && s[i] != '?' && !s_is_space (s[i]) && i - pos < S_MAX_CHARSET + 2)
        i++;
    if (i >= n || s[i] != '?' || s + i == w->cs)
        return false;
    w->cs_len = (size_t)(s + i - w->cs);
    if (i + 2 >= n || s[i + 2] != '?')
        return false;
    w->enc = s_lower (s[i + 1]);
    if (w->enc != 'b' && w->enc != 'q')
        return false;
    i += 3;
    w->text = s + i;
    limit = n - i < S_MAX_WORD ? n : i + S_MAX_WORD;
    for (; i < limit && i + 1 < n; i++) {
        if (s[i] == '?' && s[i + 1] == '=') {
            w->text_len = (size_t)(s + i - w->text);
            w->end = i + 2;
            return true;
        }
    }
    return false;
}

static void
s_word_decode (s_buf_t *out, const s_word_t *w)
{
    size_t i;
    if (w->enc == 'b') {
        s_decode_b64 (out, w->text, w->text_len);
        return;
    }
    for (i = 0; i < w->text_len; i++) {
        char c = w->text[i];
        if (c == '_') {
            s_buf_addc (out, ' ');
        } else if (c == '=' && i + 2 < w->text_len && s_hex (w->text[i + 1]) >= 0 &&
                   s_hex (w->text[i + 2]) >= 0) {
            s_buf_addc (out, (char)(s_hex (w->text[i + 1]) * 16 + s_hex (w->text[i + 2])));
            i += 2;
        } else {
            s_buf_addc (out, c);
        }
    }
}

/* Raw text between encoded words: UTF-8 when it is, else the fallback
 * charset (the body's) when there is one. */
static void
s_header_raw (s_ctx_t *ctx, s_buf_t *out, const char *p, size_t n, const char *fallback)
{
    if (n == 0)
        return;
    if (s_utf8_valid (p, n) || !fallback || !*fallback) {
        if (s_utf8_append (out, p, n) && ctx)
            s_note (ctx, "invalid bytes in header");
        return;
    }
    s_convert (ctx, out, p, n, fallback, strlen (fallback));
}

/* Decodes encoded words in s[0..n). Adjacent words (only whitespace
 * between) are joined without it, and the bytes of adjacent words in one
 * charset are converted together, since encoders split multi-byte
 * characters across words. */
static void
s_decode_words (s_ctx_t *ctx, s_buf_t *out, const char *s, size_t n, const char *fallback)
{
    s_buf_t pending = {0};
    const char *pcs = NULL;
    size_t pcs_len = 0, pos = 0, lit = 0;
    bool after_word = false;
    while (pos < n) {
        s_word_t w;
        if (s[pos] == '=' && pos + 1 < n && s[pos + 1] == '?' && s_word_parse (s, n, pos, &w)) {
            if (!after_word)
                s_header_raw (ctx, out, s + lit, pos - lit, fallback);
            if (pending.len > 0 && (w.cs_len != pcs_len || strncasecmp (w.cs, pcs, pcs_len) != 0)) {
                s_convert (ctx, out, pending.p, pending.len, pcs, pcs_len);
                pending.len = 0;
            }
            pcs = w.cs;
            pcs_len = w.cs_len;
            s_word_decode (&pending, &w);
            pos = w.end;
            lit = pos;
            after_word = true;
            continue;
        }
        if (after_word && !s_is_space (s[pos])) {
            if (pending.len > 0)
                s_convert (ctx, out, pending.p, pending.len, pcs, pcs_len);
            pending.len = 0;
            after_word = false;
        }
        pos++;
    }
    if (pending.len > 0)
        s_convert (ctx, out, pending.p, pending.len, pcs, pcs_len);
    s_header_raw (ctx, out, s + lit, n - lit, fallback);
    if (pending.oom)
        out->oom = true;
    s_buf_free (&pending);
}

/* A header value decoded to UTF-8 and trimmed; owned, NULL when out of
 * memory. */
static char *
s_decode_header (s_ctx_t *ctx, const char *value, const char *fallback)
{
    s_buf_t b = {0};
    size_t start = 0, end;
    char *res;
    s_decode_words (ctx, &b, value, strlen (value), fallback);
    if (b.oom) {
        s_buf_free (&b);
        return NULL;
    }
    if (!b.p)
        return strdup ("");
    end = b.len;
    while (start < end && s_is_space (b.p[start]))
        start++;
    while (end > start && s_is_space (b.p[end - 1]))
        end--;
    res = strndup (b.p + start, end - start);
    s_buf_free (&b);
    return res;
}

char *
mime_decode_header (const char *value)
{
    return s_decode_header (NULL, value ? value : "", NULL);
}

/* ------------------------------------------------------------------ */
/* Content-Type / Content-Disposition parameters                       */

typedef struct {
    char *name;  /* lower-cased, with any RFC 2231 "*n*" suffix */
    char *value; /* unquoted, raw bytes */
} s_param_t;

typedef struct {
    char value[128]; /* "text/plain", "attachment": lower-cased, "" when absent */
    s_param_t params[S_MAX_PARAMS];
    size_t nparams;
} s_ctype_t;

static void
s_ctype_free (s_ctype_t *ct)
{
    size_t i;
    for (i = 0; i < ct->nparams; i++) {
        free (ct->params[i].name);
        free (ct->params[i].value);
    }
    ct->nparams = 0;
}

/* Skips whitespace and (nested) comments. */
static size_t
s_skip_cfws (const char *s, size_t n, size_t i)
{
    while (i < n) {
        if (s_is_space (s[i])) {
            i++;
        } else if (s[i] == '(') {
            int depth = 0;
            for (; i < n; i++) {
                if (s[i] == '\\' && i + 1 < n) {
                    i++;
                } else if (s[i] == '(') {
                    depth++;
                } else if (s[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
            }
        } else {
            break;
        }
    }
    return i;
}

/* Parses "value; name=value; name="quoted"" (an unfolded header value). */
static void
s_ctype_parse (s_ctx_t *ctx, const char *s, s_ctype_t *ct)
{
    size_t n = strlen (s), i = s_skip_cfws (s, n, 0), k = 0;
    memset (ct, 0, sizeof *ct);
    while (i < n && s[i] != ';' && !s_is_space (s[i]) && s[i] != '(') {
        if (k + 1 < sizeof ct->value)
            ct->value[k++] = s_lower (s[i]);
        i++;
    }
    ct->value[k] = '\0';
    while (i < n) {
        size_t ns, ne;
        s_buf_t v = {0};
        while (i < n && s[i] != ';') /* tolerate junk before the next ';' */
            i++;
        if (i >= n)
            break;
        i = s_skip_cfws (s, n, i + 1);
        ns = i;
        while (i < n && s[i] != '=' && s[i] != ';' && !s_is_space (s[i]))
            i++;
        ne = i;
        i = s_skip_cfws (s, n, i);
        if (i >= n || s[i] != '=' || ne == ns)
            continue;
        i = s_skip_cfws (s, n, i + 1);
        if (i < n && s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                s_buf_addc (&v, s[i]);
            }
            if (i < n)
                i++;
        } else {
            /* Unquoted values with spaces ("name=My File.pdf") are common
             * enough to keep whole, up to the next ';'. */
            size_t vs = i, ve;
            while (i < n && s[i] != ';')
                i++;
            ve = i;
            while (ve > vs && s_is_space (s[ve - 1]))
                ve--;
            s_buf_add (&v, s + vs, ve - vs);
        }
        if (ct->nparams < S_MAX_PARAMS) {
            s_param_t *p = &ct->params[ct->nparams];
            size_t j;
            p->name = strndup (s + ns, ne - ns);
            p->value = s_buf_take (&v);
            if (!p->name || !p->value) {
                free (p->name);
                free (p->value);
                ctx->oom = true;
                return;
            }
            for (j = 0; p->name[j]; j++)
                p->name[j] = s_lower (p->name[j]);
            ct->nparams++;
        }
        s_buf_free (&v);
    }
}

static const char *
s_param (const s_ctype_t *ct, const char *name)
{
    size_t i;
    for (i = 0; i < ct->nparams; i++) {
        if (strcmp (ct->params[i].name, name) == 0)
            return ct->params[i].value;
    }
    return NULL;
}

/* Appends an RFC 2231 extended value (percent-encoded). */
static void
s_pct_decode (s_buf_t *out, const char *s)
{
    size_t i, n = strlen (s);
    for (i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && s_hex (s[i + 1]) >= 0 && s_hex (s[i + 2]) >= 0) {
            s_buf_addc (out, (char)(s_hex (s[i + 1]) * 16 + s_hex (s[i + 2])));
            i += 2;
        } else {
            s_buf_addc (out, s[i]);
        }
    }
}

/* A parameter's value in UTF-8: RFC 2231 continuations ("name*0*",
 * "name*1"...) and charsets ("name*=utf-8''...") first, then the plain
 * parameter, which may hold RFC 2047 words (Outlook and Gmail put them in
 * quoted file names). Owned; NULL when absent or out of memory (oom set). */
static char *
s_param_text (s_ctx_t *ctx, const s_ctype_t *ct, const char *base)
{
    char key[80], cs[S_MAX_CHARSET] = "";
    s_buf_t raw = {0}, out = {0};
    const char *v;
    bool ext = false;
    int sec;
    char *res;

    for (sec = 0; sec < S_MAX_PARAMS; sec++) {
        bool this_ext = false;
        snprintf (key, sizeof key, "%s*%d", base, sec);
        v = s_param (ct, key);
        if (!v) {
            snprintf (key, sizeof key, "%s*%d*", base, sec);
            v = s_param (ct, key);
            this_ext = v != NULL;
        }
        if (!v)
            break;
        if (this_ext) {
            if (sec == 0) {
                const char *q1 = strchr (v, '\'');
                const char *q2 = q1 ? strchr (q1 + 1, '\'') : NULL;
                if (q2) {
                    size_t cl = (size_t)(q1 - v);
                    if (cl < sizeof cs) {
                        memcpy (cs, v, cl);
                        cs[cl] = '\0';
                    }
                    v = q2 + 1;
                }
            }
            ext = true;
            s_pct_decode (&raw, v);
        } else {
            s_buf_adds (&raw, v);
        }
    }
    if (sec == 0) {
        snprintf (key, sizeof key, "%s*", base);
        v = s_param (ct, key);
        if (v) {
            const char *q1 = strchr (v, '\'');
            const char *q2 = q1 ? strchr (q1 + 1, '\'') : NULL;
            if (q2) {
                size_t cl = (size_t)(q1 - v);
                if (cl < sizeof cs) {
                    memcpy (cs, v, cl);
                    cs[cl] = '\0';
                }
                v = q2 + 1;
            }
            ext = true;
            s_pct_decode (&raw, v);
        } else {
            v = s_param (ct, base);
            if (!v)
                return NULL;
            s_buf_adds (&raw, v);
        }
    }
    if (raw.oom) {
        ctx->oom = true;
        s_buf_free (&raw);
        return NULL;
    }
    if (ext)
        s_convert (ctx, &out, raw.p ? raw.p : "", raw.len, cs, strlen (cs));
    else
        s_decode_words (ctx, &out, raw.p ? raw.p : "", raw.len, ctx->charset);
    s_buf_free (&raw);
    res = s_buf_take (&out);
    if (!res)
        ctx->oom = true;
    return res;
}

/* ------------------------------------------------------------------ */
/* HTML to text                                                        */

typedef struct {
    s_buf_t *out;    /* the text */
    bool line_start; /* nothing written on the current line yet */
    bool space;      /* whitespace seen since the last character */
    int newlines;    /* newlines just written, to keep at most one blank line */
    int quote;       /* blockquote depth: lines are prefixed "> " per level */
    int pre;         /* inside <pre>: whitespace is kept */
} s_html_t;

static void
s_html_nl (s_html_t *h)
{
    if (h->newlines >= 2)
        return;
    s_buf_addc (h->out, '\n');
    h->newlines++;
    h->line_start = true;
    h->space = false;
}

static void
s_html_block (s_html_t *h)
{
    if (!h->line_start)
        s_html_nl (h);
}

static void
s_html_text (s_html_t *h, const char *p, size_t n)
{
    if (h->line_start) {
        int i;
        for (i = 0; i < h->quote && i < 8; i++)
            s_buf_adds (h->out, "> ");
    } else if (h->space) {
        s_buf_addc (h->out, ' ');
    }
    s_buf_add (h->out, p, n);
    h->line_start = false;
    h->space = false;
    h->newlines = 0;
}

static const struct {
    const char *name;
    unsigned long cp;
} s_entities[] = {
    {"amp", '&'},       {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", ' '},      {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"euro", 0x20AC},
    {"pound", 0xA3},    {"yen", 0xA5},     {"cent", 0xA2},    {"sect", 0xA7},    {"deg", 0xB0},
    {"plusmn", 0xB1},   {"times", 0xD7},   {"divide", 0xF7},  {"middot", 0xB7},  {"bull", 0x2022},
    {"hellip", 0x2026}, {"ndash", 0x2013}, {"mdash", 0x2014}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"sbquo", 0x201A},  {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"laquo", 0xAB},
    {"raquo", 0xBB},    {"shy", 0xAD},     {"zwnj", 0x200C},  {"zwj", 0x200D},   {"ensp", ' '},
    {"emsp", ' '},      {"thinsp", ' '},   {"iexcl", 0xA1},   {"iquest", 0xBF},  {"para", 0xB6},
    {"numero", 0x2116}, {"larr", 0x2190},  {"rarr", 0x2192},  {"uarr", 0x2191},  {"darr", 0x2193},
};

/* Decodes the entity at h[i] ('&'); returns the bytes consumed, 0 when it
 * is not one (the '&' is then literal). */
static size_t
s_html_entity (s_html_t *ht, const char *h, size_t n, size_t i)
{
    size_t j = i + 1, k;
    char name[12];
    s_buf_t tmp = {0};
    if (j < n && h[j] == '#') {
        unsigned long cp = 0;
        bool hex = j + 1 < n && (h[j + 1] == 'x' || h[j + 1] == 'X');
        size_t digits = 0;
        j += hex ? 2 : 1;
        while (j < n && digits < 8 && (hex ? s_hex (h[j]) >= 0 : s_is_digit (h[j]))) {
            cp = cp * (hex ? 16 : 10) + (unsigned long)(hex ? s_hex (h[j]) : h[j] - '0');
            j++;
            digits++;
        }
        if (digits == 0)
            return 0;
        if (j < n && h[j] == ';')
            j++;
        /* Windows-1252 numbers in place of Unicode ones are a classic of
         * mail HTML; map the common ones. */
        if (cp >= 0x80 && cp <= 0x9F) {
            static const unsigned short w1252[32] = {
                0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
                0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
            cp = w1252[cp - 0x80];
        }
        if (cp == 0xA0)
            cp = ' ';
        s_utf8_put (&tmp, cp);
    } else {
        for (k = 0; j < n && k + 1 < sizeof name && (s_is_alpha (h[j]) || s_is_digit (h[j])); j++)
            name[k++] = h[j];
        name[k] = '\0';
        if (k == 0 || j >= n || h[j] != ';')
            return 0;
        j++;
        for (k = 0; k < sizeof s_entities / sizeof s_entities[0]; k++) {
            if (strcmp (name, s_entities[k].name) == 0)
                break;
        }
        if (k == sizeof s_entities / sizeof s_entities[0])
            return 0;
        s_utf8_put (&tmp, s_entities[k].cp);
    }
    if (tmp.oom) {
        ht->out->oom = true;
    } else if (tmp.len == 1 && tmp.p[0] == ' ' && !ht->pre) {
        /* A non-breaking space still separates words but should not keep
         * a line from counting as blank. */
        if (!ht->line_start)
            s_html_text (ht, " ", 1);
    } else if (tmp.len > 0) {
        s_html_text (ht, tmp.p, tmp.len);
    }
    s_buf_free (&tmp);
    return j - i;
}

/* Skips past the closing tag </name> (case-insensitive) from i; returns n
 * when there is none. */
static size_t
s_html_skip_to_close (const char *h, size_t n, size_t i, const char *name)
{
    char close[16];
    const char *f;
    snprintf (close, sizeof close, "</%s", name);
    f = s_find_ci (h + i, n - i, close);
    if (!f)
        return n;
    f = memchr (f, '>', (size_t)(h + n - f));
    return f ? (size_t)(f - h) + 1 : n;
}

static bool
s_tag_is (const char *tag, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp (tag, *list) == 0)
            return true;
    }
    return false;
}

/* HTML (UTF-8) to plain text: tags dropped, script/style/head skipped,
 * block elements and <br> to line breaks, entities decoded, whitespace
 * collapsed outside <pre>, blockquotes turned into "> " lines so that the
 * reply stripper sees them as quotes. */
static void
s_html_to_text (s_buf_t *out, const char *h, size_t n)
{
    static const char *const blocks[] = {
        "p",       "div",    "tr",      "table",   "ul",         "ol",     "h1",    "h2",    "h3",
        "h4",      "h5",     "h6",      "hr",      "blockquote", "pre",    "dl",    "dt",    "dd",
        "address", "center", "section", "article", "header",     "footer", "tbody", "thead", NULL};
    s_html_t ht = {out, true, false, 2, 0, 0};
    size_t i = 0;
    bool no_head_end = false;
    while (i < n) {
        char c = h[i];
        if (c == '<') {
            size_t j = i + 1, k = 0, end;
            bool closing = false;
            char tag[16];
            const char *gt;
            if (s_prefix (h + i, n - i, "<!--")) {
                const char *e = s_find_ci (h + i + 4, n - i - 4, "-->");
                i = e ? (size_t)(e - h) + 3 : n;
                continue;
            }
            if (j < n && h[j] == '/') {
                closing = true;
                j++;
            }
            if (j >= n || !(s_is_alpha (h[j]) || (!closing && (h[j] == '!' || h[j] == '?')))) {
                s_html_text (&ht, "<", 1); /* "a < b" in text */
                i++;
                continue;
            }
            while (j < n && (s_is_alpha (h[j]) || s_is_digit (h[j]) || h[j] == ':')) {
                if (k + 1 < sizeof tag)
                    tag[k++] = s_lower (h[j]);
                j++;
            }
            tag[k] = '\0';
            /* The end of the tag, honouring quoted attribute values; a
             * quote left open falls back to the first '>'. */
            {
                char q = 0;
                size_t limit = n - j > S_MAX_TAG ? j + S_MAX_TAG : n;
                for (end = j; end < limit; end++) {
                    if (q) {
                        if (h[end] == q)
                            q = 0;
                    } else if (h[end] == '"' || h[end] == '\'') {
                        q = h[end];
                    } else if (h[end] == '>') {
                        break;
                    }
                }
                if (end >= limit) {
                    gt = memchr (h + j, '>', n - j);
                    end = gt ? (size_t)(gt - h) : n;
                }
            }
            i = end < n ? end + 1 : n;
            if (!closing && (strcmp (tag, "script") == 0 || strcmp (tag, "style") == 0 ||
                             strcmp (tag, "title") == 0)) {
                i = s_html_skip_to_close (h, n, i, tag);
            } else if (!closing && strcmp (tag, "head") == 0 && !no_head_end) {
                /* Without </head> the head is not skipped (the body would
                 * go with it); remembered, so many <head>s stay linear. */
                size_t e = s_html_skip_to_close (h, n, i, tag);
                if (e == n)
                    no_head_end = true;
                else
                    i = e;
            } else if (strcmp (tag, "br") == 0) {
                s_html_nl (&ht);
                ht.newlines = 0; /* consecutive <br>s are intended blank lines */
            } else if (strcmp (tag, "li") == 0) {
                s_html_block (&ht);
                if (!closing)
                    s_html_text (&ht, "- ", 2);
                ht.space = false;
            } else if (strcmp (tag, "td") == 0 || strcmp (tag, "th") == 0) {
                ht.space = true;
            } else if (s_tag_is (tag, blocks)) {
                s_html_block (&ht);
                if (strcmp (tag, "blockquote") == 0)
                    ht.quote += closing ? (ht.quote > 0 ? -1 : 0) : 1;
                if (strcmp (tag, "pre") == 0)
                    ht.pre += closing ? (ht.pre > 0 ? -1 : 0) : 1;
            }
            continue;
        }
        if (c == '&') {
            size_t used = s_html_entity (&ht, h, n, i);
            if (used > 0) {
                i += used;
                continue;
            }
            s_html_text (&ht, "&", 1);
            i++;
            continue;
        }
        if (s_is_space (c)) {
            if (ht.pre && c == '\n')
                s_html_nl (&ht);
            else if (ht.pre && c != '\r')
                s_html_text (&ht, &c, 1);
            else if (!ht.line_start)
                ht.space = true;
            i++;
            continue;
        }
        {
            size_t j = i + 1;
            while (j < n && h[j] != '<' && h[j] != '&' && !s_is_space (h[j]))
                j++;
            s_html_text (&ht, h + i, j - i);
            i = j;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Text clean-up                                                       */

/* RFC 3676 format=flowed: a line ending in a space continues on the next
 * line of the same quote depth (a signature separator "-- " excepted). */
static void
s_unflow (s_buf_t *out, const char *p, size_t n, bool delsp)
{
    size_t pos = 0;
    int prev_depth = -1;
    bool joining = false;
    while (pos < n) {
        size_t eol, next = s_line (p, n, pos, &eol), i = pos;
        int depth = 0;
        bool flowed;
        while (i < eol && p[i] == '>') {
            depth++;
            i++;
        }
        if (joining && depth != prev_depth)
            s_buf_addc (out, '\n'); /* a flowed line may not continue into another depth */
        if (!joining || depth != prev_depth) {
            int d;
            for (d = 0; d < depth; d++)
                s_buf_addc (out, '>');
            if (depth > 0)
                s_buf_addc (out, ' ');
        }
        if (i < eol && p[i] == ' ') /* space-stuffing */
            i++;
        flowed = eol > i && p[eol - 1] == ' ' && !(eol - i == 3 && memcmp (p + i, "-- ", 3) == 0);
        s_buf_add (out, p + i, (eol - i) - (flowed && delsp ? 1 : 0));
        if (!flowed)
            s_buf_addc (out, '\n');
        joining = flowed;
        prev_depth = depth;
        pos = next;
    }
}

/* Line breaks to "\n", trailing whitespace off each line, leading and
 * trailing blank lines off the whole. */
static void
s_tidy (s_buf_t *out, const char *p, size_t n)
{
    size_t pos = 0, blank = 0;
    bool started = false;
    while (pos < n) {
        size_t end = pos, next, e;
        while (end < n && p[end] != '\n' && p[end] != '\r')
            end++;
        if (end + 1 < n && p[end] == '\r' && p[end + 1] == '\n')
            next = end + 2;
        else
            next = end < n ? end + 1 : n;
        e = end;
        while (e > pos && s_is_space (p[e - 1]))
            e--;
        if (e == pos) {
            if (started)
                blank++;
        } else {
            if (started) {
                s_buf_addc (out, '\n');
                for (; blank > 0; blank--)
                    s_buf_addc (out, '\n');
            }
            blank = 0;
            s_buf_add (out, p + pos, e - pos);
            started = true;
        }
        pos = next;
    }
}

/* ------------------------------------------------------------------ */
/* Quoted reply stripping                                              */

typedef struct {
    const char *p; /* the line, without its "\n" */
    size_t n;
} s_tline_t;

static void
s_trim (const char **p, size_t *n)
{
    while (*n > 0 && s_is_space (**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && s_is_space ((*p)[*n - 1]))
        (*n)--;
}

static bool
s_blank (const s_tline_t *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        if (!s_is_space (l->p[i]))
            return false;
    }
    return true;
}

static bool
s_quoted (const s_tline_t *l)
{
    const char *p = l->p;
    size_t n = l->n;
    s_trim (&p, &n);
    return n > 0 && p[0] == '>';
}

static bool
s_has_char (const char *p, size_t n, char c)
{
    return memchr (p, c, n) != NULL;
}

static bool
s_has_digit (const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (s_is_digit (p[i]))
            return true;
    }
    return false;
}

/* The next non-blank line after i is quoted. */
static bool
s_quote_follows (const s_tline_t *l, size_t nl, size_t i)
{
    for (i++; i < nl; i++) {
        if (!s_blank (&l[i]))
            return s_quoted (&l[i]);
    }
    return false;
}

/* Ends of attribution lines: "On <date>, <name> wrote:" and its
 * translations, Gmail's Ukrainian "... пише:" and Russian
 * "... написал(а):", Thunderbird's Russian "... пишет:". */
static bool
s_attribution_end (const char *p, size_t n)
{
    static const char *const ends[] = {
        "wrote:",    "writes:",  "пише:",       "пишет:",   "написал(а):", "написал:",
        "написала:", "schrieb:", "a écrit :",   "a écrit:", "escribió:",   "scrisse:",
        "schreef:",  "napisał:", "napisał(a):", NULL};
    const char *const *e;
    for (e = ends; *e; e++) {
        if (s_suffix (p, n, *e))
            return true;
    }
    return false;
}

/* Beginnings that mark a line as the start of an attribution even when
 * it wraps ("On Mon, 15 Jan 2024 at 10:00, John Smith <\njohn@x> wrote:"). */
static bool
s_attribution_start (const char *p, size_t n)
{
    static const char *const starts[] = {"On ", "Am ", "Le ", "El ", "Il ", "Op ", "W dniu ", NULL};
    const char *const *s;
    if (n > 0 && s_is_digit (p[0]))
        return true;
    for (s = starts; *s; s++) {
        if (s_prefix (p, n, *s))
            return true;
    }
    /* Cyrillic week-day abbreviations Gmail starts with: "пн, " ... "нд, " */
    if (n >= 5 && (unsigned char)p[0] >= 0xD0 && (unsigned char)p[0] <= 0xD1 &&
        (unsigned char)p[2] >= 0xD0 && (unsigned char)p[2] <= 0xD1 && p[4] == ',')
        return true;
    return false;
}

/* How many lines (1-3) starting at i form an attribution, 0 when none. */
static size_t
s_attribution (const s_tline_t *l, size_t nl, size_t i)
{
    const char *p = l[i].p;
    size_t n = l[i].n, k;
    s_trim (&p, &n);
    if (n == 0 || p[0] == '>')
        return 0;
    if (s_attribution_end (p, n)) {
        if (s_attribution_start (p, n) || s_quote_follows (l, nl, i) || s_has_char (p, n, '@'))
            return 1;
        return 0;
    }
    /* Gmail in Russian ends the attribution with the address alone:
     * "пн, 15 янв. 2024 г. в 10:00, Иван <ivan@example.com>:". */
    if (s_suffix (p, n, ">:") && s_has_char (p, n, '@') && s_has_digit (p, n) &&
        s_quote_follows (l, nl, i))
        return 1;
    if (!s_attribution_start (p, n))
        return 0;
    for (k = 1; k <= 2 && i + k < nl; k++) {
        const char *q = l[i + k].p;
        size_t m = l[i + k].n;
        s_trim (&q, &m);
        if (m == 0 || q[0] == '>')
            return 0;
        if (s_attribution_end (q, m) ||
            (s_suffix (q, m, ">:") && s_has_char (q, m, '@') && s_quote_follows (l, nl, i + k)))
            return k + 1;
    }
    return 0;
}

/* "-----Original Message-----" and its translations. */
static bool
s_original_message (const s_tline_t *l)
{
    static const char *const marks[] = {"Original Message",     "Ursprüngliche Nachricht",
                                        "Исходное сообщение",   "Оригинальное сообщение",
                                        "Вихідне повідомлення", "Message d'origine",
                                        "Mensaje original",     NULL};
    const char *p = l->p;
    size_t n = l->n;
    const char *const *m;
    s_trim (&p, &n);
    if (n < 3 || p[0] != '-' || p[1] != '-' || p[2] != '-')
        return false;
    for (m = marks; *m; m++) {
        if (s_find_ci (p, n, *m))
            return true;
    }
    return false;
}

static bool
s_field_line (const s_tline_t *l, const char *const *names)
{
    const char *p = l->p;
    size_t n = l->n;
    s_trim (&p, &n);
    /* Outlook's HTML renders the names bold; after tag stripping some
     * senders leave "*From:*". */
    while (n > 0 && p[0] == '*') {
        p++;
        n--;
    }
    for (; *names; names++) {
        if (s_prefix (p, n, *names))
            return true;
    }
    return false;
}

/* Outlook's reply header: "From: ..." then, within a few lines,
 * "Sent: ..." (or "Date:") — in the languages customers write in. */
static bool
s_outlook_header (const s_tline_t *l, size_t nl, size_t i)
{
    static const char *const from[] = {"From:", "От:", "Від:", "Von:", "De:", NULL};
    static const char *const sent[] = {"Sent:",     "Date:",   "Отправлено:", "Дата:", "Надіслано:",
                                       "Gesendet:", "Envoyé:", "Enviado:",    NULL};
    size_t k;
    if (!s_field_line (&l[i], from))
        return false;
    if (s_find_ci (l[i].p, l[i].n, " Sent:"))
        return true; /* the whole header flattened onto one line */
    for (k = 1; k <= 4 && i + k < nl; k++) {
        if (s_field_line (&l[i + k], sent))
            return true;
    }
    return false;
}

static bool
s_rule_line (const s_tline_t *l)
{
    const char *p = l->p;
    size_t n = l->n, i;
    s_trim (&p, &n);
    if (n < 5)
        return false;
    for (i = 0; i < n; i++) {
        if (p[i] != '_' && p[i] != '-')
            return false;
    }
    return true;
}

/* Where the quoted part of a reply starts (a line index; nl when none).
 * Only a cut with something non-blank above it counts: a message that
 * starts with a quote (bottom posting, a bare forward) is kept whole. */
static size_t
s_quote_cut (const s_tline_t *l, size_t nl)
{
    size_t i, cut = nl, content = 0;
    while (content < nl && (s_blank (&l[content]) || s_quoted (&l[content])))
        content++;
    if (content == nl)
        return nl;
    for (i = content + 1; i < nl; i++) {
        if (s_attribution (l, nl, i) || s_original_message (&l[i]) || s_outlook_header (l, nl, i)) {
            cut = i;
            break;
        }
    }
    /* A trailing block of ">" lines (blank lines allowed within), with the
     * attribution line above it when there is one. */
    {
        size_t j = nl, start = nl;
        while (j > 0 && (s_quoted (&l[j - 1]) || s_blank (&l[j - 1]))) {
            j--;
            if (s_quoted (&l[j]))
                start = j;
        }
        if (start < nl) {
            size_t a = start, back;
            bool found = false;
            while (a > 0 && s_blank (&l[a - 1]))
                a--;
            for (back = 1; back <= 3 && back <= a && !found; back++) {
                size_t span = s_attribution (l, nl, a - back);
                if (span > 0 && a - back + span == a) {
                    start = a - back;
                    found = true;
                }
            }
            if (!found && a > 0) {
                /* "John Smith <john@example.com>:" and other attributions
                 * we have no words for: an address and a colon just above
                 * the quote. */
                const char *p = l[a - 1].p;
                size_t n = l[a - 1].n;
                s_trim (&p, &n);
                if (n > 0 && p[n - 1] == ':' && s_has_char (p, n, '@'))
                    start = a - 1;
            }
            if (start < cut && content < start)
                cut = start;
        }
    }
    /* Outlook draws a rule above its header; take it along. */
    if (cut < nl) {
        size_t a = cut;
        while (a > 0 && s_blank (&l[a - 1]))
            a--;
        if (a > 0 && s_rule_line (&l[a - 1]) && a - 1 > content)
            cut = a - 1;
    }
    /* Something of the sender's own must stay above the cut; markers
     * alone ("-----Original Message-----" over an Outlook header) do not
     * count. */
    for (i = 0; i < cut; i++) {
        if (!s_blank (&l[i]) && !s_quoted (&l[i]) && !s_rule_line (&l[i]) &&
            !s_original_message (&l[i]) && !s_attribution (l, nl, i) &&
            !s_outlook_header (l, nl, i))
            return cut;
    }
    return nl;
}

/* The text above the quoted reply; the whole text when there is no quote
 * or nothing above it. Owned; NULL when out of memory. */
static char *
s_strip_reply (const char *full)
{
    size_t n = strlen (full), nl = 0, pos = 0, cut, end;
    s_tline_t *l;
    char *res;
    for (pos = 0; pos < n; pos++) {
        if (full[pos] == '\n')
            nl++;
    }
    nl++;
    l = calloc (nl, sizeof *l);
    if (!l)
        return NULL;
    nl = 0;
    pos = 0;
    while (pos <= n) {
        const char *e = memchr (full + pos, '\n', n - pos);
        size_t end_pos = e ? (size_t)(e - full) : n;
        l[nl].p = full + pos;
        l[nl].n = end_pos - pos;
        nl++;
        pos = end_pos + 1;
    }
    cut = s_quote_cut (l, nl);
    end = cut < nl ? (size_t)(l[cut].p - full) : n;
    free (l);
    while (end > 0 && s_is_space (full[end - 1]))
        end--;
    if (end == 0)
        end = n;
    res = strndup (full, end);
    return res;
}

/* ------------------------------------------------------------------ */
/* Addresses, ids, dates                                               */

/* Message ids in a header value, without angle brackets, space-separated.
 * At most `max` ids (0: all). Ids outside brackets (a broken sender) are
 * taken as whitespace-separated words. */
static char *
s_ids (const char *v, size_t max)
{
    s_buf_t b = {0};
    size_t n = strlen (v), i = 0, count = 0;
    bool bracketed = memchr (v, '<', n) != NULL;
    while (i < n && (max == 0 || count < max)) {
        size_t s, e;
        if (bracketed) {
            const char *lt = memchr (v + i, '<', n - i);
            const char *gt;
            if (!lt)
                break;
            s = (size_t)(lt - v) + 1;
            gt = memchr (v + s, '>', n - s);
            e = gt ? (size_t)(gt - v) : n;
            i = gt ? e + 1 : n;
        } else {
            while (i < n && (s_is_space (v[i]) || v[i] == ','))
                i++;
            s = i;
            while (i < n && !s_is_space (v[i]) && v[i] != ',')
                i++;
            e = i;
        }
        {
            size_t start = b.len, k;
            if (count > 0 && e > s)
                s_buf_addc (&b, ' ');
            for (k = s; k < e; k++) {
                if (!s_is_space (v[k]) && v[k] != '<' && v[k] != '>')
                    s_buf_addc (&b, v[k]);
            }
            if (b.len > start + (count > 0 ? 1 : 0))
                count++;
            else
                b.len = start;
            if (b.p)
                b.p[b.len] = '\0';
        }
    }
    return s_buf_take (&b);
}

/* Unquotes a display name: surrounding quotes go, backslash escapes are
 * undone. */
static void
s_unquote (s_buf_t *out, const char *p, size_t n)
{
    size_t i;
    s_trim (&p, &n);
    for (i = 0; i < n; i++) {
        if (p[i] == '"')
            continue;
        if (p[i] == '\\' && i + 1 < n)
            i++;
        s_buf_addc (out, p[i]);
    }
}

/* The first mailbox of an address header: a display name and an address
 * ("Name <a@b>", "a@b (Name)", "a@b"). */
static void
s_from (s_ctx_t *ctx, const char *v, char **name, char **email)
{
    size_t n = strlen (v), i, lt = n, gt = n, end = n;
    bool quote = false;
    int paren = 0;
    s_buf_t nb = {0}, eb = {0};
    char *raw_name;
    /* The first mailbox ends at a comma outside quotes, comments and
     * brackets. */
    for (i = 0; i < n; i++) {
        char c = v[i];
        if (c == '\\' && i + 1 < n) {
            i++;
        } else if (quote) {
            quote = c != '"';
        } else if (c == '"') {
            quote = true;
        } else if (c == '(') {
            paren++;
        } else if (c == ')' && paren > 0) {
            paren--;
        } else if (paren == 0 && c == '<' && lt == n) {
            lt = i;
        } else if (paren == 0 && c == '>' && lt < n && gt == n) {
            gt = i;
        } else if (paren == 0 && c == ',' && (lt == n || gt < n)) {
            end = i;
            break;
        }
    }
    if (lt < end) {
        size_t ae = gt < end ? gt : end, k;
        for (k = lt + 1; k < ae; k++) {
            if (!s_is_space (v[k]))
                s_buf_addc (&eb, v[k]);
        }
        s_unquote (&nb, v, lt);
    } else {
        /* "a@b (Name)": the comment is the name. */
        size_t k;
        for (k = 0; k < end; k++) {
            if (v[k] == '(') {
                const char *close = memchr (v + k, ')', end - k);
                size_t ce = close ? (size_t)(close - v) : end;
                s_unquote (&nb, v + k + 1, ce - k - 1);
                k = ce;
            } else if (!s_is_space (v[k]) && v[k] != '"') {
                s_buf_addc (&eb, v[k]);
            }
        }
    }
    s_check (ctx, &nb);
    s_check (ctx, &eb);
    raw_name = s_buf_take (&nb);
    *name = raw_name ? s_decode_header (ctx, raw_name, ctx->charset) : NULL;
    free (raw_name);
    if (eb.p) {
        /* Domains are case-insensitive; local parts are not, by the RFC. */
        char *at = strrchr (eb.p, '@');
        for (; at && *at; at++)
            *at = s_lower (*at);
    }
    {
        s_buf_t clean = {0};
        if (eb.p)
            s_utf8_append (&clean, eb.p, eb.len);
        *email = s_buf_take (&clean);
    }
    s_buf_free (&eb);
    if (!*name || !*email)
        ctx->oom = true;
}

static int64_t
s_days_from_civil (int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
s_month (const char *p, size_t n)
{
    static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec"};
    int m;
    if (n < 3)
        return 0;
    for (m = 0; m < 12; m++) {
        if (strncasecmp (p, months[m], 3) == 0)
            return m + 1;
    }
    return 0;
}

/* Offset in minutes of a zone name (RFC 5322 obsolete zones). */
static bool
s_zone_name (const char *p, size_t n, int *minutes)
{
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {{"UT", 0},        {"UTC", 0},       {"GMT", 0},       {"Z", 0},
                 {"EST", -5 * 60}, {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60},
                 {"MST", -7 * 60}, {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60},
                 {"MSK", 3 * 60},  {"CET", 60},      {"CEST", 120},    {"EET", 120},
                 {"EEST", 180},    {"BST", 60}};
    size_t i;
    for (i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        if (strlen (zones[i].name) == n && strncasecmp (p, zones[i].name, n) == 0) {
            *minutes = zones[i].minutes;
            return true;
        }
    }
    return false;
}

/* RFC 5322 date-time ("Mon, 15 Jan 2024 10:00:00 +0300"), read leniently:
 * tokens in any order as mailers produce them (also asctime's "Mon Jan 15
 * 10:00:00 2024" and ISO 8601), obsolete zone names, two-digit years. Unix
 * ms, 0 when it is not a date. */
static int64_t
s_parse_date (const char *s)
{
    size_t n = strlen (s), i = 0;
    int day = -1, month = 0, hour = -1, min = 0, sec = 0, zone = 0;
    long year = -1;
    bool have_zone = false;
    while (i < n) {
        size_t j;
        i = s_skip_cfws (s, n, i);
        if (i >= n)
            break;
        if (s[i] == ',') {
            i++;
            continue;
        }
        j = i;
        if ((s[i] == '+' || s[i] == '-') && !have_zone && hour >= 0) {
            size_t d = i + 1;
            while (d < n && s_is_digit (s[d]))
                d++;
            if (d - i - 1 == 2 && d + 2 < n && s[d] == ':' && s_is_digit (s[d + 1]) &&
                s_is_digit (s[d + 2])) {
                /* ISO 8601's "+03:00" */
                int hh = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
                int mm = (s[d + 1] - '0') * 10 + (s[d + 2] - '0');
                if (mm >= 60)
                    return 0;
                zone = (hh * 60 + mm) * (s[i] == '-' ? -1 : 1);
                have_zone = true;
                d += 3;
            } else if (d - i - 1 == 4) {
                int hh = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
                int mm = (s[i + 3] - '0') * 10 + (s[i + 4] - '0');
                if (mm >= 60)
                    return 0;
                zone = (hh * 60 + mm) * (s[i] == '-' ? -1 : 1);
                have_zone = true;
            }
            i = d;
            continue;
        }
        if (s_is_digit (s[i])) {
            long v = 0;
            size_t digits = 0;
            while (j < n && s_is_digit (s[j]) && digits < 9) {
                v = v * 10 + (s[j] - '0');
                j++;
                digits++;
            }
            if (j < n && s[j] == ':') {
                /* HH:MM[:SS] */
                int parts[3] = {(int)v, 0, 0}, np = 1;
                while (j < n && s[j] == ':' && np < 3) {
                    int w = 0, wd = 0;
                    j++;
                    while (j < n && s_is_digit (s[j]) && wd < 2) {
                        w = w * 10 + (s[j] - '0');
                        j++;
                        wd++;
                    }
                    if (wd == 0)
                        return 0;
                    parts[np++] = w;
                }
                if (digits > 2)
                    return 0;
                hour = parts[0];
                min = parts[1];
                sec = parts[2];
                if (j < n && s[j] == '.') { /* fractions of a second */
                    j++;
                    while (j < n && s_is_digit (s[j]))
                        j++;
                }
            } else if (j < n && s[j] == '-' && digits == 4 && year < 0) {
                /* ISO 8601: YYYY-MM-DD[T]HH:MM:SS */
                int mo = 0, dd = 0;
                year = v;
                j++;
                /* Capped: more digits only need to stay invalid. */
                for (; j < n && s_is_digit (s[j]); j++)
                    mo = mo < 100 ? mo * 10 + (s[j] - '0') : mo;
                if (j < n && s[j] == '-')
                    j++;
                for (; j < n && s_is_digit (s[j]); j++)
                    dd = dd < 100 ? dd * 10 + (s[j] - '0') : dd;
                month = mo;
                day = dd;
                if (j < n && (s[j] == 'T' || s[j] == 't'))
                    j++;
            } else if (digits <= 2 && day < 0) {
                day = (int)v;
            } else if (year < 0) {
                year = v;
                if (digits == 2)
                    year += v < 50 ? 2000 : 1900;
                else if (digits == 3)
                    year += 1900;
            }
            i = j;
            continue;
        }
        if (s_is_alpha (s[i])) {
            int m, z;
            while (j < n && s_is_alpha (s[j]))
                j++;
            m = s_month (s + i, j - i);
            if (m > 0 && month == 0 && j - i <= 9)
                month = m;
            else if (!have_zone && hour >= 0 && s_zone_name (s + i, j - i, &z)) {
                zone = z;
                have_zone = true;
            }
            i = j;
            continue;
        }
        i++;
    }
    if (day < 1 || day > 31 || month < 1 || month > 12 || year < 1900 || year > 9999 || hour < 0 ||
        hour > 23 || min > 59 || sec > 60)
        return 0;
    {
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if (day > mdays[month - 1] || (month == 2 && day == 29 && !leap))
            return 0;
    }
    if (sec == 60)
        sec = 59;
    return ((s_days_from_civil (year, month, day) * 86400 + hour * 3600 + min * 60 + sec) -
            (int64_t)zone * 60) *
           1000;
}

/* ------------------------------------------------------------------ */
/* The MIME tree                                                       */

static void s_entity (s_ctx_t *ctx, const char *p, size_t n, int depth, const char *dflt);

static s_cte_t
s_cte (s_ctx_t *ctx, const s_hdrs_t *h)
{
    char *v = s_hdr_value (h, "content-transfer-encoding");
    char word[32];
    size_t i = 0, k = 0;
    s_cte_t cte = S_CTE_IDENTITY;
    if (!v) {
        ctx->oom = true;
        return cte;
    }
    while (v[i] && s_is_space (v[i]))
        i++;
    for (; v[i] && !s_is_space (v[i]) && v[i] != ';' && v[i] != '(' && k + 1 < sizeof word; i++)
        word[k++] = s_lower (v[i]);
    word[k] = '\0';
    if (strcmp (word, "quoted-printable") == 0)
        cte = S_CTE_QP;
    else if (strcmp (word, "base64") == 0)
        cte = S_CTE_BASE64;
    else if (k > 0 && strcmp (word, "7bit") != 0 && strcmp (word, "8bit") != 0 &&
             strcmp (word, "binary") != 0) {
        cte = S_CTE_UNKNOWN;
        s_note (ctx, "unknown transfer encoding");
    }
    free (v);
    return cte;
}

static void
s_attachment_add (s_ctx_t *ctx, const char *name, const char *type, size_t size)
{
    mime_message_t *m = ctx->msg;
    mime_attachment_t *a;
    if (m->nattachments == ctx->attcap) {
        size_t cap = ctx->attcap ? ctx->attcap * 2 : 4;
        mime_attachment_t *v = realloc (m->attachments, cap * sizeof *v);
        if (!v) {
            ctx->oom = true;
            return;
        }
        m->attachments = v;
        ctx->attcap = cap;
    }
    a = &m->attachments[m->nattachments];
    a->name = strdup (name ? name : "");
    a->mime_type = strdup (type);
    a->size = size;
    if (!a->name || !a->mime_type) {
        free (a->name);
        free (a->mime_type);
        ctx->oom = true;
        return;
    }
    m->nattachments++;
}

/* A forwarded message's name: its subject plus ".eml". */
static char *
s_rfc822_name (s_ctx_t *ctx, const char *p, size_t n)
{
    s_hdrs_t h = {0};
    size_t body;
    s_buf_t b = {0};
    char *raw, *subject = NULL;
    /* Its damage is not ours: its headers are only looked at for a name. */
    char saved[sizeof ctx->msg->note];
    bool damaged = ctx->msg->damaged;
    memcpy (saved, ctx->msg->note, sizeof saved);
    s_hdrs_parse (ctx, p, n, &h, &body);
    raw = s_hdr_value (&h, "subject");
    if (raw)
        subject = s_decode_header (ctx, raw, NULL);
    ctx->msg->damaged = damaged;
    memcpy (ctx->msg->note, saved, sizeof saved);
    free (raw);
    s_hdrs_free (&h);
    if (!subject) {
        ctx->oom = true;
        return NULL;
    }
    s_buf_adds (&b, *subject ? subject : "message");
    s_buf_adds (&b, ".eml");
    free (subject);
    return s_buf_take (&b);
}

/* A leaf entity: the body text, or an attachment. */
static void
s_leaf (s_ctx_t *ctx, const s_hdrs_t *h, const s_ctype_t *ct, const char *p, size_t n)
{
    s_ctype_t disp;
    char *dv = s_hdr_value (h, "content-disposition");
    char *name = NULL;
    const char *type = ct->value;
    const char *cs = s_param (ct, "charset");
    s_cte_t cte = s_cte (ctx, h);
    s_buf_t raw = {0};
    bool attachment, is_plain, is_html;

    memset (&disp, 0, sizeof disp);
    if (!dv) {
        ctx->oom = true;
        return;
    }
    s_ctype_parse (ctx, dv, &disp);
    free (dv);
    name = s_param_text (ctx, &disp, "filename");
    if (!name || !*name) {
        free (name);
        name = s_param_text (ctx, ct, "name");
    }
    is_plain = strcmp (type, "text/plain") == 0;
    is_html = strcmp (type, "text/html") == 0;
    attachment = strcmp (disp.value, "attachment") == 0 || (name && *name);

    s_decode_body (ctx, &raw, cte, p, n);
    if (!attachment && is_plain) {
        if (!ctx->have_plain) {
            s_buf_t text = {0};
            const char *fmt = s_param (ct, "format");
            const char *delsp = s_param (ct, "delsp");
            s_convert (ctx, &text, raw.p ? raw.p : "", raw.len, cs ? cs : "", cs ? strlen (cs) : 0);
            if (fmt && strcasecmp (fmt, "flowed") == 0) {
                s_unflow (&ctx->plain, text.p ? text.p : "", text.len,
                          delsp && strcasecmp (delsp, "yes") == 0);
            } else {
                s_buf_add (&ctx->plain, text.p ? text.p : "", text.len);
            }
            s_check (ctx, &text);
            s_check (ctx, &ctx->plain);
            s_buf_free (&text);
            ctx->have_plain = true;
            if (cs)
                s_charset_clean (cs, strlen (cs), ctx->charset, sizeof ctx->charset);
        }
    } else if (!attachment && is_html) {
        if (!ctx->have_html) {
            s_buf_t text = {0};
            s_convert (ctx, &text, raw.p ? raw.p : "", raw.len, cs ? cs : "", cs ? strlen (cs) : 0);
            s_html_to_text (&ctx->html, text.p ? text.p : "", text.len);
            s_check (ctx, &text);
            s_check (ctx, &ctx->html);
            s_buf_free (&text);
            ctx->have_html = true;
            if (cs)
                s_charset_clean (cs, strlen (cs), ctx->html_charset, sizeof ctx->html_charset);
        }
    } else if (!attachment && (is_plain || is_html)) {
        /* a further body (another alternative, a list footer): not an attachment */
    } else {
        char *shown = name;
        if ((!name || !*name) && strcmp (type, "message/rfc822") == 0)
            shown = s_rfc822_name (ctx, raw.p ? raw.p : "", raw.len);
        s_attachment_add (ctx, shown ? shown : "", type, raw.len);
        if (shown != name)
            free (shown);
    }
    free (name);
    s_buf_free (&raw);
    s_ctype_free (&disp);
}

/* The parts of a multipart body between "--boundary" lines. */
static void
s_multipart (s_ctx_t *ctx, const char *p, size_t n, const char *boundary, int depth,
             const char *dflt, const s_hdrs_t *h)
{
    size_t blen = strlen (boundary), pos = 0, start = n;
    bool seen = false, closed = false;
    while (pos < n && !ctx->oom) {
        size_t eol, next = s_line (p, n, pos, &eol), rest;
        bool close = false;
        if (eol - pos >= 2 + blen && p[pos] == '-' && p[pos + 1] == '-' &&
            memcmp (p + pos + 2, boundary, blen) == 0) {
            rest = pos + 2 + blen;
            if (rest + 2 <= eol && p[rest] == '-' && p[rest + 1] == '-') {
                close = true;
                rest += 2;
            }
            while (rest < eol && s_is_space (p[rest]))
                rest++;
            if (rest == eol) {
                if (seen) {
                    /* The line break before a boundary belongs to it. */
                    size_t end = pos;
                    if (end > start && p[end - 1] == '\n')
                        end--;
                    if (end > start && p[end - 1] == '\r')
                        end--;
                    s_entity (ctx, p + start, end - start, depth, dflt);
                }
                seen = true;
                if (close) {
                    closed = true;
                    break;
                }
                start = next;
            }
        }
        pos = next;
    }
    if (!seen) {
        /* No part at all: keep the body as text so nothing is lost. */
        s_ctype_t text;
        s_note (ctx, "multipart boundary not found");
        memset (&text, 0, sizeof text);
        strcpy (text.value, "text/plain");
        s_leaf (ctx, h, &text, p, n);
        return;
    }
    if (!closed) {
        s_note (ctx, "missing closing boundary");
        if (start < n)
            s_entity (ctx, p + start, n - start, depth, dflt);
    }
}

/* An entity whose header is parsed: a multipart, or a leaf. */
static void
s_entity_body (s_ctx_t *ctx, const s_hdrs_t *h, const char *p, size_t n, int depth,
               const char *dflt)
{
    char *v = s_hdr_value (h, "content-type");
    s_ctype_t ct;
    if (!v) {
        ctx->oom = true;
        return;
    }
    s_ctype_parse (ctx, v, &ct);
    free (v);
    if (!ct.value[0] || !strchr (ct.value, '/')) {
        /* Absent or malformed: RFC 2045 says text/plain (or the multipart's
         * default), and "text" alone is read the same way. */
        snprintf (ct.value, sizeof ct.value, "%s", dflt);
    }
    if (strncmp (ct.value, "multipart/", 10) == 0) {
        const char *boundary = s_param (&ct, "boundary");
        if (depth >= S_MAX_DEPTH) {
            s_note (ctx, "multipart nested too deep");
        } else if (!boundary || !*boundary) {
            s_ctype_t text;
            s_note (ctx, "multipart without boundary");
            memset (&text, 0, sizeof text);
            strcpy (text.value, "text/plain");
            s_leaf (ctx, h, &text, p, n);
        } else {
            s_multipart (
                ctx, p, n, boundary, depth + 1,
                strcmp (ct.value, "multipart/digest") == 0 ? "message/rfc822" : "text/plain", h);
        }
    } else {
        s_leaf (ctx, h, &ct, p, n);
    }
    s_ctype_free (&ct);
}

static void
s_entity (s_ctx_t *ctx, const char *p, size_t n, int depth, const char *dflt)
{
    s_hdrs_t h = {0};
    size_t body = n;
    if (ctx->oom)
        return;
    if (++ctx->nentities > S_MAX_PARTS) {
        s_note (ctx, "too many parts");
        return;
    }
    s_hdrs_parse (ctx, p, n, &h, &body);
    s_entity_body (ctx, &h, p + body, n - body, depth, dflt);
    s_hdrs_free (&h);
}

/* ------------------------------------------------------------------ */
/* The message                                                         */

/* Every string field set (never NULL) and valid UTF-8. */
static char *
s_clean (s_ctx_t *ctx, char *s)
{
    s_buf_t b = {0};
    char *res;
    if (!s) {
        ctx->oom = true;
        return NULL;
    }
    if (s_utf8_valid (s, strlen (s)))
        return s;
    s_utf8_append (&b, s, strlen (s));
    free (s);
    res = s_buf_take (&b);
    if (!res)
        ctx->oom = true;
    return res;
}

static char *
s_first_id (const char *ids)
{
    const char *sp = strchr (ids, ' ');
    return sp ? strndup (ids, (size_t)(sp - ids)) : strdup (ids);
}

mime_message_t *
mime_parse (const char *data, size_t len)
{
    s_ctx_t ctx;
    s_hdrs_t h = {0};
    mime_message_t *m;
    size_t body = 0;
    char *v;
    const char *hint;

    m = calloc (1, sizeof *m);
    if (!m)
        return NULL;
    memset (&ctx, 0, sizeof ctx);
    ctx.msg = m;
    if (!data)
        len = 0;

    ctx.nentities = 1;
    s_hdrs_parse (&ctx, data ? data : "", len, &h, &body);
    if (!ctx.oom)
        s_entity_body (&ctx, &h, (data ? data : "") + body, len - body, 0, "text/plain");

    /* Raw 8-bit header text is most likely in the body's charset. */
    hint = ctx.have_plain ? ctx.charset : ctx.html_charset;

    v = s_hdr_value (&h, "message-id");
    m->message_id = v ? s_ids (v, 1) : NULL;
    free (v);
    v = s_hdr_value (&h, "in-reply-to");
    m->in_reply_to = v ? s_ids (v, 1) : NULL;
    free (v);
    v = s_hdr_value (&h, "references");
    m->references = v ? s_ids (v, 0) : NULL;
    free (v);
    if (m->references && *m->references)
        m->thread_id = s_first_id (m->references);
    else if (m->in_reply_to && *m->in_reply_to)
        m->thread_id = strdup (m->in_reply_to);
    else
        m->thread_id = strdup (m->message_id ? m->message_id : "");

    v = s_hdr_value (&h, "subject");
    m->subject = v ? s_decode_header (&ctx, v, hint) : NULL;
    free (v);
    v = s_hdr_value (&h, "from");
    if (v) {
        char saved[S_MAX_CHARSET];
        memcpy (saved, ctx.charset, sizeof saved);
        snprintf (ctx.charset, sizeof ctx.charset, "%s", hint);
        s_from (&ctx, v, &m->from_name, &m->from_email);
        memcpy (ctx.charset, saved, sizeof saved);
    }
    free (v);
    v = s_hdr_value (&h, "date");
    m->date_ms = v ? s_parse_date (v) : 0;
    if (!v)
        ctx.oom = true;
    free (v);

    {
        s_buf_t full = {0};
        const s_buf_t *src = &ctx.plain;
        bool plain_blank = true;
        size_t i;
        for (i = 0; i < ctx.plain.len; i++) {
            if (!s_is_space (ctx.plain.p[i])) {
                plain_blank = false;
                break;
            }
        }
        if ((!ctx.have_plain || plain_blank) && ctx.have_html)
            src = &ctx.html;
        s_tidy (&full, src->p ? src->p : "", src->len);
        s_check (&ctx, &full);
        m->full_text = s_buf_take (&full);
        m->text = m->full_text ? s_strip_reply (m->full_text) : NULL;
    }

    m->message_id = s_clean (&ctx, m->message_id);
    m->in_reply_to = s_clean (&ctx, m->in_reply_to);
    m->references = s_clean (&ctx, m->references);
    m->thread_id = s_clean (&ctx, m->thread_id);
    m->from_name = s_clean (&ctx, m->from_name ? m->from_name : strdup (""));
    m->from_email = s_clean (&ctx, m->from_email ? m->from_email : strdup (""));
    m->subject = s_clean (&ctx, m->subject);
    m->text = s_clean (&ctx, m->text);
    m->full_text = s_clean (&ctx, m->full_text);
    {
        size_t i;
        for (i = 0; i < m->nattachments; i++) {
            m->attachments[i].name = s_clean (&ctx, m->attachments[i].name);
            m->attachments[i].mime_type = s_clean (&ctx, m->attachments[i].mime_type);
        }
    }

    s_hdrs_free (&h);
    s_buf_free (&ctx.plain);
    s_buf_free (&ctx.html);
    if (ctx.oom) {
        mime_free (&m);
        return NULL;
    }
    return m;
}

void
mime_free (mime_message_t **self_p)
{
    mime_message_t *m;
    size_t i;
    if (!self_p || !*self_p)
        return;
    m = *self_p;
    free (m->message_id);
    free (m->in_reply_to);
    free (m->references);
    free (m->thread_id);
    free (m->from_name);
    free (m->from_email);
    free (m->subject);
    free (m->text);
    free (m->full_text);
    for (i = 0; i < m->nattachments; i++) {
        free (m->attachments[i].name);
        free (m->attachments[i].mime_type);
    }
    free (m->attachments);
    free (m);
    *self_p = NULL;
}
