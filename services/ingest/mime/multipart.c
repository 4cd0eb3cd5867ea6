/*
 * mime tree: entities, multiparts and leaves (see mime_int.h).
 *
 * A multipart's body is cut at its "--boundary" lines into parts, each an
 * entity of its own (header and body), walked depth first. The walk is
 * bounded: nesting stops at MIME_MAX_DEPTH and the entity count at
 * MIME_MAX_PARTS, each noted. A leaf is either a body text or an
 * attachment: the first text/plain that is not an attachment is the text;
 * the first text/html is kept as its fallback; any further text part (an
 * alternative, a list footer) is neither; everything else, and anything
 * with a file name, is an attachment (name, type, decoded size).
 *
 * A multipart whose structure is broken loses nothing: no boundary, or
 * none found, makes the body text; a missing closing boundary keeps the
 * last part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_int.h"

static void s_entity (mime_ctx_t *ctx, const char *p, size_t n, int depth, const char *dflt);

static void
s_attachment_add (mime_ctx_t *ctx, const char *name, const char *type, size_t size)
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
s_rfc822_name (mime_ctx_t *ctx, const char *p, size_t n)
{
    mime_hdrs_t h = {0};
    size_t body;
    rt_buf_t b = {0};
    char *raw, *subject = NULL;
    /* Its damage is not ours: its headers are only looked at for a name. */
    char saved[sizeof ctx->msg->note];
    bool damaged = ctx->msg->damaged;
    memcpy (saved, ctx->msg->note, sizeof saved);
    mime_hdrs_parse (ctx, p, n, &h, &body);
    raw = mime_hdr_value (&h, "subject");
    if (raw)
        subject = mime_header_decode (ctx, raw, NULL);
    ctx->msg->damaged = damaged;
    memcpy (ctx->msg->note, saved, sizeof saved);
    free (raw);
    mime_hdrs_free (&h);
    if (!subject) {
        ctx->oom = true;
        return NULL;
    }
    rt_buf_puts (&b, *subject ? subject : "message");
    rt_buf_puts (&b, ".eml");
    free (subject);
    return mime_buf_take (&b);
}

/* The decoded body `raw` of a text leaf, in charset cs (NULL: none given),
 * as the message's text: text/plain (format=flowed undone) into
 * ctx->plain, or text/html turned to text into ctx->html. The charset is
 * kept as the hint for raw 8-bit headers. */
static void
s_body_text (mime_ctx_t *ctx, const mime_ctype_t *ct, bool html, const rt_buf_t *raw,
             const char *cs)
{
    rt_buf_t text = {0};
    rt_buf_t *dst = html ? &ctx->html : &ctx->plain;
    char *hint = html ? ctx->html_charset : ctx->charset;
    mime_charset_convert (ctx, &text, raw->data ? raw->data : "", raw->len, cs ? cs : "",
                          cs ? strlen (cs) : 0);
    if (html) {
        mime_html_to_text (dst, text.data ? text.data : "", text.len);
    } else {
        const char *fmt = mime_param (ct, "format");
        const char *delsp = mime_param (ct, "delsp");
        if (fmt && strcasecmp (fmt, "flowed") == 0)
            mime_text_unflow (dst, text.data ? text.data : "", text.len,
                              delsp && strcasecmp (delsp, "yes") == 0);
        else
            rt_buf_put (dst, text.data ? text.data : "", text.len);
    }
    mime_check (ctx, &text);
    mime_check (ctx, dst);
    rt_buf_free (&text);
    if (html)
        ctx->have_html = true;
    else
        ctx->have_plain = true;
    if (cs)
        mime_charset_clean (cs, strlen (cs), hint, MIME_MAX_CHARSET);
}

/* A leaf entity: the body text, or an attachment. */
static void
s_leaf (mime_ctx_t *ctx, const mime_hdrs_t *h, const mime_ctype_t *ct, const char *p, size_t n)
{
    mime_ctype_t disp;
    char *dv = mime_hdr_value (h, "content-disposition");
    char *name = NULL;
    const char *type = ct->value;
    const char *cs = mime_param (ct, "charset");
    mime_cte_t cte = mime_cte (ctx, h);
    rt_buf_t raw = {0};
    bool attachment, is_plain, is_html;

    memset (&disp, 0, sizeof disp);
    if (!dv) {
        ctx->oom = true;
        return;
    }
    mime_ctype_parse (ctx, dv, &disp);
    free (dv);
    name = mime_param_text (ctx, &disp, "filename");
    if (!name || !*name) {
        free (name);
        name = mime_param_text (ctx, ct, "name");
    }
    is_plain = strcmp (type, "text/plain") == 0;
    is_html = strcmp (type, "text/html") == 0;
    attachment = strcmp (disp.value, "attachment") == 0 || (name && *name);

    mime_body_decode (ctx, &raw, cte, p, n);
    if (!attachment && is_plain) {
        if (!ctx->have_plain)
            s_body_text (ctx, ct, false, &raw, cs);
    } else if (!attachment && is_html) {
        if (!ctx->have_html)
            s_body_text (ctx, ct, true, &raw, cs);
    } else if (!attachment && (is_plain || is_html)) {
        /* a further body (another alternative, a list footer): not an attachment */
    } else {
        char *shown = name;
        if ((!name || !*name) && strcmp (type, "message/rfc822") == 0)
            shown = s_rfc822_name (ctx, raw.data ? raw.data : "", raw.len);
        s_attachment_add (ctx, shown ? shown : "", type, raw.len);
        if (shown != name)
            free (shown);
    }
    free (name);
    rt_buf_free (&raw);
    mime_ctype_free (&disp);
}

/* A body kept as text/plain, for a multipart whose parts cannot be found. */
static void
s_leaf_as_text (mime_ctx_t *ctx, const mime_hdrs_t *h, const char *p, size_t n)
{
    mime_ctype_t text;
    memset (&text, 0, sizeof text);
    strcpy (text.value, "text/plain");
    s_leaf (ctx, h, &text, p, n);
}

/* Whether the line p[pos..eol) is "--boundary" (close: "--boundary--"),
 * trailing whitespace allowed. */
static bool
s_boundary_line (const char *p, size_t pos, size_t eol, const char *boundary, size_t blen,
                 bool *close)
{
    size_t rest = pos + 2 + blen;
    *close = false;
    if (eol - pos < 2 + blen || p[pos] != '-' || p[pos + 1] != '-' ||
        memcmp (p + pos + 2, boundary, blen) != 0)
        return false;
    if (rest + 2 <= eol && p[rest] == '-' && p[rest + 1] == '-') {
        *close = true;
        rest += 2;
    }
    while (rest < eol && mime_is_space (p[rest]))
        rest++;
    return rest == eol;
}

/* The parts of a multipart body between "--boundary" lines. */
static void
s_multipart (mime_ctx_t *ctx, const char *p, size_t n, const char *boundary, int depth,
             const char *dflt, const mime_hdrs_t *h)
{
    size_t blen = strlen (boundary), pos = 0, start = n;
    bool seen = false, closed = false;
    while (pos < n && !ctx->oom) {
        size_t eol, next = mime_line (p, n, pos, &eol);
        bool close;
        if (s_boundary_line (p, pos, eol, boundary, blen, &close)) {
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
        pos = next;
    }
    if (!seen) {
        /* No part at all: keep the body as text so nothing is lost. */
        mime_note (ctx, "multipart boundary not found");
        s_leaf_as_text (ctx, h, p, n);
        return;
    }
    if (!closed) {
        mime_note (ctx, "missing closing boundary");
        if (start < n)
            s_entity (ctx, p + start, n - start, depth, dflt);
    }
}

void
mime_entity_body (mime_ctx_t *ctx, const mime_hdrs_t *h, const char *p, size_t n, int depth,
                  const char *dflt)
{
    char *v = mime_hdr_value (h, "content-type");
    mime_ctype_t ct;
    if (!v) {
        ctx->oom = true;
        return;
    }
    mime_ctype_parse (ctx, v, &ct);
    free (v);
    if (!ct.value[0] || !strchr (ct.value, '/')) {
        /* Absent or malformed: RFC 2045 says text/plain (or the multipart's
         * default), and "text" alone is read the same way. */
        snprintf (ct.value, sizeof ct.value, "%s", dflt);
    }
    if (strncmp (ct.value, "multipart/", 10) == 0) {
        const char *boundary = mime_param (&ct, "boundary");
        if (depth >= MIME_MAX_DEPTH) {
            mime_note (ctx, "multipart nested too deep");
        } else if (!boundary || !*boundary) {
            mime_note (ctx, "multipart without boundary");
            s_leaf_as_text (ctx, h, p, n);
        } else {
            s_multipart (
                ctx, p, n, boundary, depth + 1,
                strcmp (ct.value, "multipart/digest") == 0 ? "message/rfc822" : "text/plain", h);
        }
    } else {
        s_leaf (ctx, h, &ct, p, n);
    }
    mime_ctype_free (&ct);
}

static void
s_entity (mime_ctx_t *ctx, const char *p, size_t n, int depth, const char *dflt)
{
    mime_hdrs_t h = {0};
    size_t body = n;
    if (ctx->oom)
        return;
    if (++ctx->nentities > MIME_MAX_PARTS) {
        mime_note (ctx, "too many parts");
        return;
    }
    mime_hdrs_parse (ctx, p, n, &h, &body);
    mime_entity_body (ctx, &h, p + body, n - body, depth, dflt);
    mime_hdrs_free (&h);
}
