/*
 * rt_jsonw: JSON appended to an rt_buf (rt_jsonw.h says why).
 */
#include "rt_jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rt_utf8.h"

void
rt_jsonw_init (rt_jsonw_t *w, rt_buf_t *buf)
{
    memset (w, 0, sizeof *w);
    w->buf = buf;
}

bool
rt_jsonw_ok (const rt_jsonw_t *w)
{
    return !w->failed && !w->buf->failed;
}

/* Before a value: the comma after the previous one, and whether a value
 * may come here at all (an object takes one only after its key). */
static bool
s_value (rt_jsonw_t *w)
{
    int d = w->depth - 1;
    if (w->failed)
        return false;
    if (d < 0)
        return true;
    if (w->object[d]) {
        if (w->key_due[d]) {
            w->failed = true;
            return false;
        }
        w->key_due[d] = true;
        return true;
    }
    if (!w->first[d])
        rt_buf_put (w->buf, ",", 1);
    w->first[d] = false;
    return true;
}

static void
s_open (rt_jsonw_t *w, bool object)
{
    if (!s_value (w))
        return;
    if (w->depth == RT_JSONW_DEPTH) {
        w->failed = true;
        return;
    }
    w->object[w->depth] = object;
    w->first[w->depth] = true;
    w->key_due[w->depth] = true;
    w->depth++;
    rt_buf_put (w->buf, object ? "{" : "[", 1);
}

static void
s_close (rt_jsonw_t *w, bool object)
{
    int d = w->depth - 1;
    if (w->failed)
        return;
    /* An object closed between a key and its value is no object. */
    if (d < 0 || w->object[d] != object || (object && !w->key_due[d])) {
        w->failed = true;
        return;
    }
    w->depth--;
    rt_buf_put (w->buf, object ? "}" : "]", 1);
}

void
rt_jsonw_object (rt_jsonw_t *w)
{
    s_open (w, true);
}

void
rt_jsonw_object_end (rt_jsonw_t *w)
{
    s_close (w, true);
}

void
rt_jsonw_array (rt_jsonw_t *w)
{
    s_open (w, false);
}

void
rt_jsonw_array_end (rt_jsonw_t *w)
{
    s_close (w, false);
}

/* s[0..len) as a JSON string's content: runs that need nothing copied as
 * they are, the rest escaped, broken UTF-8 as U+FFFD. */
static void
s_escaped (rt_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            n = rt_utf8_seq_len (s + i, len - i);
            if (n > 1) {
                i += n;
                continue;
            }
        }
        rt_buf_put (b, s + run, i - run);
        if (c >= 0x80) {
            rt_buf_put (b, "\xef\xbf\xbd", 3);
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rt_buf_put (b, e, 2);
        } else if (c == '\n') {
            rt_buf_put (b, "\\n", 2);
        } else if (c == '\r') {
            rt_buf_put (b, "\\r", 2);
        } else if (c == '\t') {
            rt_buf_put (b, "\\t", 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rt_buf_put (b, e, 6);
        }
        i++;
        run = i;
    }
    rt_buf_put (b, s + run, len - run);
}

void
rt_jsonw_key (rt_jsonw_t *w, const char *key)
{
    int d = w->depth - 1;
    if (w->failed)
        return;
    if (d < 0 || !w->object[d] || !w->key_due[d]) {
        w->failed = true;
        return;
    }
    if (!w->first[d])
        rt_buf_put (w->buf, ",", 1);
    w->first[d] = false;
    w->key_due[d] = false;
    rt_buf_put (w->buf, "\"", 1);
    s_escaped (w->buf, key, strlen (key));
    rt_buf_put (w->buf, "\":", 2);
}

void
rt_jsonw_stringn (rt_jsonw_t *w, const char *s, size_t len)
{
    if (!s_value (w))
        return;
    rt_buf_put (w->buf, "\"", 1);
    s_escaped (w->buf, s, len);
    rt_buf_put (w->buf, "\"", 1);
}

void
rt_jsonw_string (rt_jsonw_t *w, const char *s)
{
    if (!s)
        rt_jsonw_null (w);
    else
        rt_jsonw_stringn (w, s, strlen (s));
}

void
rt_jsonw_int (rt_jsonw_t *w, int64_t v)
{
    char text[24];
    int n;
    if (!s_value (w))
        return;
    n = snprintf (text, sizeof text, "%" PRId64, v);
    rt_buf_put (w->buf, text, (size_t)n);
}

void
rt_jsonw_bool (rt_jsonw_t *w, bool v)
{
    if (s_value (w))
        rt_buf_puts (w->buf, v ? "true" : "false");
}

void
rt_jsonw_null (rt_jsonw_t *w)
{
    if (s_value (w))
        rt_buf_put (w->buf, "null", 4);
}

void
rt_jsonw_raw (rt_jsonw_t *w, const char *json)
{
    if (s_value (w))
        rt_buf_puts (w->buf, json);
}

void
rt_jsonw_kstring (rt_jsonw_t *w, const char *key, const char *s)
{
    rt_jsonw_key (w, key);
    rt_jsonw_string (w, s);
}

void
rt_jsonw_kint (rt_jsonw_t *w, const char *key, int64_t v)
{
    rt_jsonw_key (w, key);
    rt_jsonw_int (w, v);
}

void
rt_jsonw_kbool (rt_jsonw_t *w, const char *key, bool v)
{
    rt_jsonw_key (w, key);
    rt_jsonw_bool (w, v);
}
