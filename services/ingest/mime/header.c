/*
 * mime headers: an entity's header fields, unfolded, and RFC 2047 encoded
 * words decoded (see mime_int.h).
 *
 * Fields are lent from the input ((pointer, length) into it), so parsing a
 * header allocates only the array of fields, of at most MIME_MAX_HEADERS;
 * a value is unfolded only when asked for. A line that is no field ends the
 * header where it stands, as mail readers do, and the rest is body.
 *
 * Encoded words ("=?charset?B|Q?text?=") are found by a search for "?="
 * capped at MIME_MAX_WORD bytes, so a header full of "=?" stays linear.
 * Adjacent words in one charset are converted together: encoders split
 * multi-byte characters across words.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_int.h"
#include "rt_utf8.h"

/* ------------------------------------------------------------------ */
/* Fields                                                              */

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

/* Stores a field (name p[0..name_len), value from colon + 1 to eol);
 * false when out of memory. */
static bool
s_hdrs_add (mime_hdrs_t *h, const char *p, size_t name_len, const char *colon, const char *eol)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        mime_hdr_t *v = realloc (h->v, cap * sizeof *v);
        if (!v)
            return false;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n].name = p;
    h->v[h->n].name_len = name_len;
    h->v[h->n].raw = colon + 1;
    h->v[h->n].raw_len = (size_t)(eol - (colon + 1));
    h->n++;
    return true;
}

void
mime_hdrs_parse (mime_ctx_t *ctx, const char *p, size_t n, mime_hdrs_t *h, size_t *body)
{
    size_t pos = 0;
    bool kept = false; /* the last field was stored, so continuations extend it */
    while (pos < n) {
        size_t eol, next = mime_line (p, n, pos, &eol), len = eol - pos;
        const char *colon;
        size_t name_len;
        if (len == 0) {
            *body = next;
            return;
        }
        if (mime_is_wsp (p[pos]) && (kept || h->n > 0)) {
            if (kept) {
                mime_hdr_t *last = &h->v[h->n - 1];
                last->raw_len = (size_t)(p + eol - last->raw);
            }
            pos = next;
            continue;
        }
        colon = memchr (p + pos, ':', len);
        name_len = colon ? (size_t)(colon - (p + pos)) : 0;
        while (name_len > 0 && mime_is_wsp (p[pos + name_len - 1]))
            name_len--;
        if (!colon || !s_is_field_name (p + pos, name_len)) {
            if (h->n == 0 && pos == 0 && mime_prefix (p, len, "From ")) {
                pos = next;
                continue;
            }
            mime_note (ctx, "malformed header line");
            *body = pos;
            return;
        }
        kept = h->n < MIME_MAX_HEADERS;
        if (kept && !s_hdrs_add (h, p + pos, name_len, colon, p + eol)) {
            ctx->oom = true;
            *body = n;
            return;
        }
        pos = next;
    }
    *body = n;
}

void
mime_hdrs_free (mime_hdrs_t *h)
{
    free (h->v);
    memset (h, 0, sizeof *h);
}

static const mime_hdr_t *
s_hdr_find (const mime_hdrs_t *h, const char *name)
{
    size_t i, k = strlen (name);
    for (i = 0; i < h->n; i++) {
        if (h->v[i].name_len == k && strncasecmp (h->v[i].name, name, k) == 0)
            return &h->v[i];
    }
    return NULL;
}

char *
mime_hdr_value (const mime_hdrs_t *h, const char *name)
{
    const mime_hdr_t *f = s_hdr_find (h, name);
    rt_buf_t b = {0};
    size_t i = 0, n;
    const char *p;
    if (!f)
        return strdup ("");
    p = f->raw;
    n = f->raw_len;
    while (i < n && mime_is_space (p[i]))
        i++;
    while (n > i && mime_is_space (p[n - 1]))
        n--;
    while (i < n) {
        char c = p[i];
        /* A fold and the whitespace around it become one space. */
        if (c == '\r' || c == '\n') {
            while (b.len > 0 && mime_is_wsp (b.data[b.len - 1]))
                b.len--;
            while (i < n && mime_is_space (p[i]))
                i++;
            mime_buf_addc (&b, ' ');
            continue;
        }
        if (c != '\0')
            mime_buf_addc (&b, c);
        i++;
    }
    return mime_buf_take (&b);
}

/* ------------------------------------------------------------------ */
/* RFC 2047 encoded words                                              */

typedef struct {
    const char *cs;   /* charset label */
    size_t cs_len;    /* its length */
    char enc;         /* 'b' or 'q' */
    const char *text; /* encoded text */
    size_t text_len;  /* its length */
    size_t end;       /* offset just past "?=" */
} s_word_t;

/* Parses "=?charset?B|Q?text?=" at s[pos..n). */
static bool
s_word_parse (const char *s, size_t n, size_t pos, s_word_t *w)
{
    size_t i = pos + 2, limit;
    if (pos + 2 > n || s[pos] != '=' || s[pos + 1] != '?')
        return false;
    w->cs = s + i;
    while (i < n && s[i] != '?' && !mime_is_space (s[i]) && i - pos < MIME_MAX_CHARSET + 2)
        i++;
    if (i >= n || s[i] != '?' || s + i == w->cs)
        return false;
    w->cs_len = (size_t)(s + i - w->cs);
    if (i + 2 >= n || s[i + 2] != '?')
        return false;
    w->enc = mime_lower (s[i + 1]);
    if (w->enc != 'b' && w->enc != 'q')
        return false;
    i += 3;
    w->text = s + i;
    /* RFC 2047 caps a word at 75 characters; a generous cap keeps a header
     * full of "=?" from making the search for "?=" quadratic. */
    limit = n - i < MIME_MAX_WORD ? n : i + MIME_MAX_WORD;
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
s_word_decode (rt_buf_t *out, const s_word_t *w)
{
    if (w->enc == 'b')
        mime_base64_decode (out, w->text, w->text_len);
    else
        mime_hex_unescape (out, w->text, w->text_len, '=', true);
}

/* Raw text between encoded words: UTF-8 when it is, else the fallback
 * charset (the body's) when there is one. */
static void
s_header_raw (mime_ctx_t *ctx, rt_buf_t *out, const char *p, size_t n, const char *fallback)
{
    if (n == 0)
        return;
    if (rt_utf8_text_ok (p, n) || !fallback || !*fallback) {
        if (mime_utf8_append (out, p, n) && ctx)
            mime_note (ctx, "invalid bytes in header");
        return;
    }
    mime_charset_convert (ctx, out, p, n, fallback, strlen (fallback));
}

void
mime_words_decode (mime_ctx_t *ctx, rt_buf_t *out, const char *s, size_t n, const char *fallback)
{
    rt_buf_t pending = {0}; /* decoded bytes of adjacent words in charset pcs */
    const char *pcs = NULL;
    size_t pcs_len = 0, pos = 0, lit = 0;
    bool after_word = false;
    while (pos < n) {
        s_word_t w;
        if (s[pos] == '=' && pos + 1 < n && s[pos + 1] == '?' && s_word_parse (s, n, pos, &w)) {
            if (!after_word)
                s_header_raw (ctx, out, s + lit, pos - lit, fallback);
            if (pending.len > 0 && (w.cs_len != pcs_len || strncasecmp (w.cs, pcs, pcs_len) != 0)) {
                mime_charset_convert (ctx, out, pending.data, pending.len, pcs, pcs_len);
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
        /* Only whitespace between two words joins them. */
        if (after_word && !mime_is_space (s[pos])) {
            if (pending.len > 0)
                mime_charset_convert (ctx, out, pending.data, pending.len, pcs, pcs_len);
            pending.len = 0;
            after_word = false;
        }
        pos++;
    }
    if (pending.len > 0)
        mime_charset_convert (ctx, out, pending.data, pending.len, pcs, pcs_len);
    s_header_raw (ctx, out, s + lit, n - lit, fallback);
    if (pending.failed)
        out->failed = true;
    rt_buf_free (&pending);
}

char *
mime_header_decode (mime_ctx_t *ctx, const char *value, const char *fallback)
{
    rt_buf_t b = {0};
    size_t start = 0, end;
    char *res;
    mime_words_decode (ctx, &b, value, strlen (value), fallback);
    if (b.failed) {
        rt_buf_free (&b);
        return NULL;
    }
    if (!b.data)
        return strdup ("");
    end = b.len;
    while (start < end && mime_is_space (b.data[start]))
        start++;
    while (end > start && mime_is_space (b.data[end - 1]))
        end--;
    res = strndup (b.data + start, end - start);
    rt_buf_free (&b);
    return res;
}

char *
mime_decode_header (const char *value)
{
    return mime_header_decode (NULL, value ? value : "", NULL);
}
