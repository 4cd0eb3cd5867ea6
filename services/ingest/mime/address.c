/*
 * mime addresses: the sender's mailbox (From) and the message ids that
 * thread a conversation (Message-ID, In-Reply-To, References); see
 * mime_int.h.
 *
 * Both are read as senders write them, not as RFC 5322 would have them:
 * a display name may be quoted, a comment, or raw 8-bit text; ids may come
 * without angle brackets. Only the first mailbox of a From counts. Domains
 * are lower-cased (they are case-insensitive); local parts are kept as
 * they are, since the RFC lets a server tell their cases apart.
 */
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"

/* Appends the id v[s..e) to b, space-separated from those before it
 * (count of them), whitespace and brackets dropped; returns whether it
 * held anything (otherwise nothing was appended). */
static bool
s_id_add (rt_buf_t *b, const char *v, size_t s, size_t e, size_t count)
{
    size_t start = b->len, k;
    if (count > 0 && e > s)
        mime_buf_addc (b, ' ');
    for (k = s; k < e; k++) {
        if (!mime_is_space (v[k]) && v[k] != '<' && v[k] != '>')
            mime_buf_addc (b, v[k]);
    }
    if (b->len > start + (count > 0 ? 1 : 0))
        return true;
    b->len = start;
    if (b->data)
        b->data[b->len] = '\0';
    return false;
}

char *
mime_ids_parse (const char *v, size_t max)
{
    rt_buf_t b = {0};
    size_t n = strlen (v), i = 0, count = 0;
    /* Ids outside brackets (a broken sender) are taken as words. */
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
            while (i < n && (mime_is_space (v[i]) || v[i] == ','))
                i++;
            s = i;
            while (i < n && !mime_is_space (v[i]) && v[i] != ',')
                i++;
            e = i;
        }
        if (s_id_add (&b, v, s, e, count))
            count++;
    }
    return mime_buf_take (&b);
}

/* Unquotes a display name: surrounding quotes go, backslash escapes are
 * undone. */
static void
s_unquote (rt_buf_t *out, const char *p, size_t n)
{
    size_t i;
    mime_trim (&p, &n);
    for (i = 0; i < n; i++) {
        if (p[i] == '"')
            continue;
        if (p[i] == '\\' && i + 1 < n)
            i++;
        mime_buf_addc (out, p[i]);
    }
}

/* The end of the first mailbox in v[0..n): a comma outside quotes,
 * comments and brackets (n when there is none). Its '<' and '>' go to *lt
 * and *gt (n when absent). */
static size_t
s_first_mailbox (const char *v, size_t n, size_t *lt, size_t *gt)
{
    size_t i;
    bool quote = false;
    int paren = 0;
    *lt = *gt = n;
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
        } else if (paren == 0 && c == '<' && *lt == n) {
            *lt = i;
        } else if (paren == 0 && c == '>' && *lt < n && *gt == n) {
            *gt = i;
        } else if (paren == 0 && c == ',' && (*lt == n || *gt < n)) {
            return i;
        }
    }
    return n;
}

/* The raw display name and address of the mailbox v[0..end) into nb and
 * eb: "Name <a@b>", or "a@b (Name)" where the comment is the name. */
static void
s_mailbox_split (const char *v, size_t end, size_t lt, size_t gt, rt_buf_t *nb, rt_buf_t *eb)
{
    size_t k;
    if (lt < end) {
        size_t ae = gt < end ? gt : end;
        for (k = lt + 1; k < ae; k++) {
            if (!mime_is_space (v[k]))
                mime_buf_addc (eb, v[k]);
        }
        s_unquote (nb, v, lt);
        return;
    }
    for (k = 0; k < end; k++) {
        if (v[k] == '(') {
            const char *close = memchr (v + k, ')', end - k);
            size_t ce = close ? (size_t)(close - v) : end;
            s_unquote (nb, v + k + 1, ce - k - 1);
            k = ce;
        } else if (!mime_is_space (v[k]) && v[k] != '"') {
            mime_buf_addc (eb, v[k]);
        }
    }
}

void
mime_from_parse (mime_ctx_t *ctx, const char *v, char **name, char **email)
{
    size_t n = strlen (v), lt, gt, end = s_first_mailbox (v, n, &lt, &gt);
    rt_buf_t nb = {0}, eb = {0}, clean = {0};
    char *raw_name;
    s_mailbox_split (v, end, lt, gt, &nb, &eb);
    mime_check (ctx, &nb);
    mime_check (ctx, &eb);
    raw_name = mime_buf_take (&nb);
    *name = raw_name ? mime_header_decode (ctx, raw_name, ctx->charset) : NULL;
    free (raw_name);
    if (eb.data) {
        char *at = strrchr (eb.data, '@');
        for (; at && *at; at++)
            *at = mime_lower (*at);
        mime_utf8_append (&clean, eb.data, eb.len);
    }
    *email = mime_buf_take (&clean);
    rt_buf_free (&eb);
    if (!*name || !*email)
        ctx->oom = true;
}
