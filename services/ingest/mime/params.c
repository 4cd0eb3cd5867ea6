/*
 * mime parameters: Content-Type and Content-Disposition values and their
 * parameters (RFC 2045, RFC 2183), with RFC 2231's continuations and
 * charsets and the RFC 2047 words mailers put in file names (see
 * mime_int.h).
 *
 * At most MIME_MAX_PARAMS parameters are kept per field, and at most as
 * many RFC 2231 sections per parameter. Values are kept raw (bytes as
 * sent, quotes and escapes undone); only mime_param_text turns one into
 * UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"

void
mime_ctype_free (mime_ctype_t *ct)
{
    size_t i;
    for (i = 0; i < ct->nparams; i++) {
        free (ct->params[i].name);
        free (ct->params[i].value);
    }
    ct->nparams = 0;
}

/* Reads a parameter's value at s[i..n) into v: a quoted string, or the
 * bytes up to the next ';' (trailing whitespace off). Returns where
 * reading stopped. */
static size_t
s_value (const char *s, size_t n, size_t i, rt_buf_t *v)
{
    size_t vs, ve;
    if (i < n && s[i] == '"') {
        for (i++; i < n && s[i] != '"'; i++) {
            if (s[i] == '\\' && i + 1 < n)
                i++;
            mime_buf_addc (v, s[i]);
        }
        return i < n ? i + 1 : i;
    }
    /* Unquoted values with spaces ("name=My File.pdf") are common enough
     * to keep whole, up to the next ';'. */
    vs = i;
    while (i < n && s[i] != ';')
        i++;
    ve = i;
    while (ve > vs && mime_is_space (s[ve - 1]))
        ve--;
    rt_buf_put (v, s + vs, ve - vs);
    return i;
}

/* Adds the parameter s[ns..ne) = v to ct, lower-casing its name; v is
 * taken (left empty). False when out of memory. */
static bool
s_param_add (mime_ctype_t *ct, const char *s, size_t ns, size_t ne, rt_buf_t *v)
{
    mime_param_t *p = &ct->params[ct->nparams];
    size_t j;
    p->name = strndup (s + ns, ne - ns);
    p->value = mime_buf_take (v);
    if (!p->name || !p->value) {
        free (p->name);
        free (p->value);
        return false;
    }
    for (j = 0; p->name[j]; j++)
        p->name[j] = mime_lower (p->name[j]);
    ct->nparams++;
    return true;
}

void
mime_ctype_parse (mime_ctx_t *ctx, const char *s, mime_ctype_t *ct)
{
    size_t n = strlen (s), i = mime_skip_cfws (s, n, 0), k = 0;
    memset (ct, 0, sizeof *ct);
    while (i < n && s[i] != ';' && !mime_is_space (s[i]) && s[i] != '(') {
        if (k + 1 < sizeof ct->value)
            ct->value[k++] = mime_lower (s[i]);
        i++;
    }
    ct->value[k] = '\0';
    while (i < n) {
        size_t ns, ne;
        rt_buf_t v = {0};
        while (i < n && s[i] != ';') /* tolerate junk before the next ';' */
            i++;
        if (i >= n)
            break;
        i = mime_skip_cfws (s, n, i + 1);
        ns = i;
        while (i < n && s[i] != '=' && s[i] != ';' && !mime_is_space (s[i]))
            i++;
        ne = i;
        i = mime_skip_cfws (s, n, i);
        if (i >= n || s[i] != '=' || ne == ns)
            continue;
        i = s_value (s, n, mime_skip_cfws (s, n, i + 1), &v);
        if (ct->nparams < MIME_MAX_PARAMS && !s_param_add (ct, s, ns, ne, &v)) {
            ctx->oom = true;
            return;
        }
        rt_buf_free (&v);
    }
}

const char *
mime_param (const mime_ctype_t *ct, const char *name)
{
    size_t i;
    for (i = 0; i < ct->nparams; i++) {
        if (strcmp (ct->params[i].name, name) == 0)
            return ct->params[i].value;
    }
    return NULL;
}

/* An RFC 2231 extended value ("charset'language'%xx..."): its charset
 * copied into cs (left as it was when too long for it, or when the value
 * has no such prefix), its percent-decoded bytes appended to raw. */
static void
s_extended (const char *v, char *cs, size_t cslen, rt_buf_t *raw)
{
    const char *q1 = strchr (v, '\'');
    const char *q2 = q1 ? strchr (q1 + 1, '\'') : NULL;
    if (q2) {
        size_t cl = (size_t)(q1 - v);
        if (cl < cslen) {
            memcpy (cs, v, cl);
            cs[cl] = '\0';
        }
        v = q2 + 1;
    }
    mime_hex_unescape (raw, v, strlen (v), '%', false);
}

/* The sections "base*0", "base*1*"... of a continued parameter appended
 * to raw in order, up to the first missing one; the charset of section 0,
 * when it is extended, into cs. Returns how many there were; *ext is set
 * when any was extended (percent-encoded). */
static int
s_sections (const mime_ctype_t *ct, const char *base, char *cs, size_t cslen, rt_buf_t *raw,
            bool *ext)
{
    char key[80];
    int sec;
    for (sec = 0; sec < MIME_MAX_PARAMS; sec++) {
        const char *v;
        snprintf (key, sizeof key, "%s*%d", base, sec);
        v = mime_param (ct, key);
        if (v) {
            rt_buf_puts (raw, v);
            continue;
        }
        snprintf (key, sizeof key, "%s*%d*", base, sec);
        v = mime_param (ct, key);
        if (!v)
            break;
        *ext = true;
        if (sec == 0)
            s_extended (v, cs, cslen, raw);
        else
            mime_hex_unescape (raw, v, strlen (v), '%', false);
    }
    return sec;
}

char *
mime_param_text (mime_ctx_t *ctx, const mime_ctype_t *ct, const char *base)
{
    char key[80], cs[MIME_MAX_CHARSET] = "";
    rt_buf_t raw = {0}, out = {0};
    bool ext = false;
    char *res;

    /* RFC 2231 continuations first, then "base*" (one extended value),
     * then the plain parameter, which may hold RFC 2047 words (Outlook and
     * Gmail put them in quoted file names). */
    if (s_sections (ct, base, cs, sizeof cs, &raw, &ext) == 0) {
        const char *v;
        snprintf (key, sizeof key, "%s*", base);
        v = mime_param (ct, key);
        if (v) {
            ext = true;
            s_extended (v, cs, sizeof cs, &raw);
        } else {
            v = mime_param (ct, base);
            if (!v)
                return NULL;
            rt_buf_puts (&raw, v);
        }
    }
    if (raw.failed) {
        ctx->oom = true;
        rt_buf_free (&raw);
        return NULL;
    }
    if (ext)
        mime_charset_convert (ctx, &out, raw.data ? raw.data : "", raw.len, cs, strlen (cs));
    else
        mime_words_decode (ctx, &out, raw.data ? raw.data : "", raw.len, ctx->charset);
    rt_buf_free (&raw);
    res = mime_buf_take (&out);
    if (!res)
        ctx->oom = true;
    return res;
}
