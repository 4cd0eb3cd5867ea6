/*
 * rt_buf: growable buffers and array literals (see rt_buf.h).
 *
 * An array literal tracks whether an element was added since its "{" by
 * looking at the byte before: '{' means none yet. That keeps the buffer a
 * plain struct with no state beyond what it holds.
 */
#include "rt_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_codec.h"

void
rt_buf_reset (rt_buf_t *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data)
        b->data[0] = '\0';
}

void
rt_buf_free (rt_buf_t *b)
{
    free (b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

/* Grows the allocation to hold n more bytes and the NUL, doubling, but
 * to no more than max_cap bytes when that is enough. */
static bool
s_grow (rt_buf_t *b, size_t n, size_t max_cap)
{
    size_t cap, want = b->len + n + 1;
    char *data;
    if (b->failed)
        return false;
    if (want <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    if (cap > max_cap && want <= max_cap)
        cap = max_cap;
    data = realloc (b->data, cap);
    if (!data) {
        b->failed = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

bool
rt_buf_reserve (rt_buf_t *b, size_t n)
{
    return s_grow (b, n, SIZE_MAX);
}

bool
rt_buf_reserve_within (rt_buf_t *b, size_t n, size_t limit)
{
    return s_grow (b, n, limit < SIZE_MAX ? limit + 1 : SIZE_MAX);
}

void
rt_buf_put (rt_buf_t *b, const void *p, size_t n)
{
    if (!rt_buf_reserve (b, n))
        return;
    /* An empty protobuf bytes field is (NULL, 0): nothing to copy. */
    if (n)
        memcpy (b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
rt_buf_puts (rt_buf_t *b, const char *s)
{
    rt_buf_put (b, s, strlen (s));
}

void
rt_buf_put_html (rt_buf_t *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *ref;
        switch (*s) {
        case '&':
            ref = "&amp;";
            break;
        case '<':
            ref = "&lt;";
            break;
        case '>':
            ref = "&gt;";
            break;
        case '"':
            ref = "&quot;";
            break;
        case '\'':
            ref = "&#39;";
            break;
        default:
            continue;
        }
        rt_buf_put (b, run, (size_t)(s - run));
        rt_buf_puts (b, ref);
        run = s + 1;
    }
    rt_buf_put (b, run, (size_t)(s - run));
}

void
rt_buf_printf (rt_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start (ap, fmt);
    n = vsnprintf (NULL, 0, fmt, ap);
    va_end (ap);
    if (n < 0 || !rt_buf_reserve (b, (size_t)n))
        return;
    va_start (ap, fmt);
    vsnprintf (b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end (ap);
    b->len += (size_t)n;
}

void
rt_buf_put_be16 (rt_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    rt_buf_put (b, x, 2);
}

void
rt_buf_put_be32 (rt_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    rt_buf_put (b, x, 4);
}

void
rt_buf_put_be64 (rt_buf_t *b, uint64_t v)
{
    rt_buf_put_be32 (b, (uint32_t)(v >> 32));
    rt_buf_put_be32 (b, (uint32_t)v);
}

void
rt_buf_array_begin (rt_buf_t *b)
{
    rt_buf_put (b, "{", 1);
}

static void
s_separator (rt_buf_t *b)
{
    if (b->len > 0 && b->data[b->len - 1] != '{')
        rt_buf_put (b, ",", 1);
}

void
rt_buf_array_text (rt_buf_t *b, const char *value)
{
    const char *p, *run;
    s_separator (b);
    rt_buf_put (b, "\"", 1);
    /* Copy runs between the characters that need a backslash. */
    for (p = run = value; *p; p++) {
        if (*p == '"' || *p == '\\') {
            rt_buf_put (b, run, (size_t)(p - run));
            rt_buf_put (b, "\\", 1);
            run = p;
        }
    }
    rt_buf_put (b, run, (size_t)(p - run));
    rt_buf_put (b, "\"", 1);
}

void
rt_buf_array_raw (rt_buf_t *b, const char *value)
{
    s_separator (b);
    rt_buf_puts (b, value);
}

void
rt_buf_array_bytea (rt_buf_t *b, const uint8_t *data, size_t len)
{
    s_separator (b);
    /* "\\x..." inside the quotes: the array parser takes one backslash. */
    rt_buf_puts (b, "\"\\\\x");
    if (!rt_buf_reserve (b, 2 * len + 1))
        return;
    rt_hex_encode (data, len, b->data + b->len);
    b->len += 2 * len;
    rt_buf_put (b, "\"", 1);
}

void
rt_buf_array_end (rt_buf_t *b)
{
    rt_buf_put (b, "}", 1);
}

bool
rt_buf_array_of (rt_buf_t *b, const char *const *values, size_t n)
{
    rt_buf_array_begin (b);
    for (size_t i = 0; i < n; i++)
        rt_buf_array_text (b, values[i]);
    rt_buf_array_end (b);
    return !b->failed;
}
