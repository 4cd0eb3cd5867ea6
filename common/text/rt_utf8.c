/*
 * rt_utf8: the checks that keep one bad string out of a batch (see
 * rt_utf8.h).
 */
#include "rt_utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid sequence starting at p (1..4), or 0 when it is not
 * valid UTF-8. */
static size_t
s_seq_len (const unsigned char *p, size_t left)
{
    unsigned int cp;
    size_t n, i;
    /* The lead byte's range settles the length and rules out most bad
     * forms at once (0x80-0xc1 and 0xf5-0xff never lead). */
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07;
    } else
        return 0;
    if (left < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* Overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF. */
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

size_t
rt_utf8_seq_len (const char *s, size_t avail)
{
    return avail ? s_seq_len ((const unsigned char *)s, avail) : 0;
}

char *
rt_utf8_repair (const char *s, size_t len, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    char *out;
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    out = malloc (len * 3 + 1);
    if (!out)
        return NULL;
    while (i < len) {
        size_t n = p[i] ? s_seq_len (p + i, len - i) : 0;
        if (n == 0) {
            memcpy (out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy (out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

size_t
rt_utf8_bad_at (const char *s, size_t len, bool nul_ok)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n;
        /* ASCII runs are the common case: take them a byte at a time
         * without the decoder. */
        if (p[i] != 0 && p[i] < 0x80) {
            i++;
            continue;
        }
        if (p[i] == 0) {
            if (!nul_ok)
                return i;
            i++;
            continue;
        }
        n = s_seq_len (p + i, len - i);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}

bool
rt_utf8_text_ok (const char *s, size_t len)
{
    return rt_utf8_bad_at (s, len, false) == len;
}

char *
rt_utf8_escape (const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, j = 0;
    /* At worst every byte becomes four. */
    char *out = malloc (len * 4 + 1);
    if (!out)
        return NULL;
    while (i < len) {
        size_t n = p[i] == 0 ? 0 : s_seq_len (p + i, len - i);
        if (n == 0) {
            snprintf (out + j, 5, "\\x%02x", p[i]);
            j += 4;
            i++;
            continue;
        }
        while (n--)
            out[j++] = (char)p[i++];
    }
    out[j] = '\0';
    return out;
}

size_t
rt_utf8_count (const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    }
    return n;
}

/* The byte length of s[0..len)'s first max_chars code points. */
static size_t
s_prefix (const char *s, size_t len, size_t max_chars)
{
    size_t i = 0, chars = 0;
    while (i < len) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (chars == max_chars)
                break;
            chars++;
        }
        i++;
    }
    return i;
}

/* Where to end a piece of s[0..room) (avail bytes follow s, room <=
 * avail): the last blank line, else line break, else sentence end, else
 * space at which s[0..room) can be cut (a cut before the break, the break
 * itself going with neither piece); room when there is none. */
static size_t
s_cut (const char *s, size_t room, size_t avail)
{
    size_t best[4] = {0, 0, 0, 0};
    for (size_t i = 1; i <= room && i < avail; i++) {
        char c = s[i], p = s[i - 1];
        if (c == '\n' && i + 1 < avail && s[i + 1] == '\n')
            best[3] = i;
        else if (c == '\n' || c == '\r')
            best[2] = i;
        else if (c == ' ' && (p == '.' || p == '!' || p == '?'))
            best[1] = i;
        else if (c == ' ')
            best[0] = i;
    }
    for (int k = 3; k >= 0; k--) {
        if (best[k] > 0)
            return best[k];
    }
    return room;
}

size_t
rt_utf8_split (const char *s, size_t len, size_t max_chars, size_t *off, size_t *n,
               size_t max_pieces)
{
    size_t at = 0, pieces = 0;
    if (max_chars == 0 || max_pieces == 0)
        return 0;
    do {
        size_t room = s_prefix (s + at, len - at, max_chars), end;
        if (pieces == max_pieces)
            return 0;
        end = at + room == len ? room : s_cut (s + at, room, len - at);
        off[pieces] = at;
        n[pieces] = end;
        pieces++;
        at += end;
        while (at < len && (s[at] == ' ' || s[at] == '\n' || s[at] == '\r'))
            at++;
    } while (at < len);
    return pieces;
}
