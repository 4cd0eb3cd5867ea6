/*
 * mime: an e-mail into what a support agent reads (see mime.h); this file
 * is the message as a whole: mime_parse, mime_free, and the parse context
 * the other pieces write into (mime_int.h lists them).
 *
 * mime_parse reads the top-level header, walks the MIME tree
 * (multipart.c), then fills the message's fields from the header and the
 * chosen body text. The order matters: raw 8-bit header text is read in
 * the body's charset, which is only known once the tree is walked.
 *
 * Every string handed out goes through s_clean last, so it is set (never
 * NULL) and valid UTF-8 without NULs whatever the input was. Out of memory
 * anywhere leaves ctx->oom set; mime_parse then frees what was built and
 * returns NULL.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"
#include "rt_utf8.h"

void
mime_note (mime_ctx_t *ctx, const char *fmt, ...)
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

void
mime_check (mime_ctx_t *ctx, const rt_buf_t *b)
{
    if (b->failed)
        ctx->oom = true;
}

char *
mime_buf_take (rt_buf_t *b)
{
    char *p;
    if (b->failed) {
        rt_buf_free (b);
        return NULL;
    }
    p = b->data ? b->data : strdup ("");
    memset (b, 0, sizeof *b);
    return p;
}

/* s itself when it is valid UTF-8 without NULs, else a repaired copy (s is
 * freed). NULL, with ctx->oom set, when s is NULL or out of memory. */
static char *
s_clean (mime_ctx_t *ctx, char *s)
{
    rt_buf_t b = {0};
    char *res;
    if (!s) {
        ctx->oom = true;
        return NULL;
    }
    if (rt_utf8_text_ok (s, strlen (s)))
        return s;
    mime_utf8_append (&b, s, strlen (s));
    free (s);
    res = mime_buf_take (&b);
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

/* The ids of a header field (at most max, 0: all); NULL when out of
 * memory. */
static char *
s_header_ids (const mime_hdrs_t *h, const char *name, size_t max)
{
    char *v = mime_hdr_value (h, name);
    char *ids = v ? mime_ids_parse (v, max) : NULL;
    free (v);
    return ids;
}

/* Message-ID, In-Reply-To, References, and the thread they put the
 * message in. */
static void
s_threading (const mime_hdrs_t *h, mime_message_t *m)
{
    m->message_id = s_header_ids (h, "message-id", 1);
    m->in_reply_to = s_header_ids (h, "in-reply-to", 1);
    m->references = s_header_ids (h, "references", 0);
    if (m->references && *m->references)
        m->thread_id = s_first_id (m->references);
    else if (m->in_reply_to && *m->in_reply_to)
        m->thread_id = strdup (m->in_reply_to);
    else
        m->thread_id = strdup (m->message_id ? m->message_id : "");
}

/* Subject, From and Date; hint is the charset raw 8-bit text is read in. */
static void
s_envelope (mime_ctx_t *ctx, const mime_hdrs_t *h, const char *hint)
{
    mime_message_t *m = ctx->msg;
    char *v = mime_hdr_value (h, "subject");
    m->subject = v ? mime_header_decode (ctx, v, hint) : NULL;
    free (v);
    v = mime_hdr_value (h, "from");
    if (v) {
        char saved[MIME_MAX_CHARSET];
        memcpy (saved, ctx->charset, sizeof saved);
        snprintf (ctx->charset, sizeof ctx->charset, "%s", hint);
        mime_from_parse (ctx, v, &m->from_name, &m->from_email);
        memcpy (ctx->charset, saved, sizeof saved);
    }
    free (v);
    v = mime_hdr_value (h, "date");
    m->date_ms = v ? mime_date_parse (v) : 0;
    if (!v)
        ctx->oom = true;
    free (v);
}

/* The text: the text/plain body, or the HTML one turned to text when
 * there is no plain one or it is blank; tidied, then its quoted reply cut
 * off for `text`. */
static void
s_body_text (mime_ctx_t *ctx)
{
    mime_message_t *m = ctx->msg;
    rt_buf_t full = {0};
    const rt_buf_t *src = &ctx->plain;
    bool plain_blank = true;
    size_t i;
    for (i = 0; i < ctx->plain.len; i++) {
        if (!mime_is_space (ctx->plain.data[i])) {
            plain_blank = false;
            break;
        }
    }
    if ((!ctx->have_plain || plain_blank) && ctx->have_html)
        src = &ctx->html;
    mime_text_tidy (&full, src->data ? src->data : "", src->len);
    mime_check (ctx, &full);
    m->full_text = mime_buf_take (&full);
    m->text = m->full_text ? mime_reply_strip (m->full_text) : NULL;
}

/* Every string field set and valid UTF-8 (s_clean). */
static void
s_clean_all (mime_ctx_t *ctx)
{
    mime_message_t *m = ctx->msg;
    size_t i;
    m->message_id = s_clean (ctx, m->message_id);
    m->in_reply_to = s_clean (ctx, m->in_reply_to);
    m->references = s_clean (ctx, m->references);
    m->thread_id = s_clean (ctx, m->thread_id);
    m->from_name = s_clean (ctx, m->from_name ? m->from_name : strdup (""));
    m->from_email = s_clean (ctx, m->from_email ? m->from_email : strdup (""));
    m->subject = s_clean (ctx, m->subject);
    m->text = s_clean (ctx, m->text);
    m->full_text = s_clean (ctx, m->full_text);
    for (i = 0; i < m->nattachments; i++) {
        m->attachments[i].name = s_clean (ctx, m->attachments[i].name);
        m->attachments[i].mime_type = s_clean (ctx, m->attachments[i].mime_type);
    }
}

mime_message_t *
mime_parse (const char *data, size_t len)
{
    mime_ctx_t ctx;
    mime_hdrs_t h = {0};
    mime_message_t *m;
    size_t body = 0;

    m = calloc (1, sizeof *m);
    if (!m)
        return NULL;
    memset (&ctx, 0, sizeof ctx);
    ctx.msg = m;
    if (!data) {
        data = "";
        len = 0;
    }

    ctx.nentities = 1;
    mime_hdrs_parse (&ctx, data, len, &h, &body);
    if (!ctx.oom)
        mime_entity_body (&ctx, &h, data + body, len - body, 0, "text/plain");

    s_threading (&h, m);
    /* Raw 8-bit header text is most likely in the body's charset. */
    s_envelope (&ctx, &h, ctx.have_plain ? ctx.charset : ctx.html_charset);
    s_body_text (&ctx);
    s_clean_all (&ctx);

    mime_hdrs_free (&h);
    rt_buf_free (&ctx.plain);
    rt_buf_free (&ctx.html);
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
