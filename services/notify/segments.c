/*
 * segments: the GSM 7-bit alphabet as a table, and the packing of a text
 * into parts (segments.h has the rules).
 *
 * Two passes: the first decides the encoding (one character outside the
 * alphabet makes it all UCS-2) and totals the units; when the total fits
 * a single message that is the answer, otherwise the second packs the
 * characters into parts one by one, a character that does not fit in
 * what is left of a part starting the next, as phones and SMS centres do.
 */
#include "segments.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rt_utf8.h"

/* The default alphabet's characters outside ASCII (TS 23.038, 6.2.1). */
static const uint32_t s_basic_extra[] = {
    0x00A3, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7, 0x00D8, 0x00F8,
    0x00C5, 0x00E5, 0x0394, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, 0x03A3,
    0x0398, 0x039E, 0x00C6, 0x00E6, 0x00DF, 0x00C9, 0x00A4, 0x00A1, 0x00C4, 0x00D6,
    0x00D1, 0x00DC, 0x00A7, 0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0};

/* The extension table's (6.2.1.1): two septets each. */
static const uint32_t s_extension[] = {0x000C, '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC};

/* Septets of one code point in GSM-7: 1, 2, or 0 when it has none. */
static int
s_septets (uint32_t cp)
{
    size_t i;
    for (i = 0; i < sizeof s_extension / sizeof s_extension[0]; i++)
        if (cp == s_extension[i])
            return 2;
    /* In ASCII, every printable character but ` is in the alphabet (those
     * of the extension are found above), and of the controls LF and CR. */
    if (cp == '\n' || cp == '\r' || (cp >= 0x20 && cp < 0x7F && cp != '`'))
        return 1;
    for (i = 0; i < sizeof s_basic_extra / sizeof s_basic_extra[0]; i++)
        if (cp == s_basic_extra[i])
            return 1;
    return 0;
}

/* The code point of the valid sequence s[0..n). */
static uint32_t
s_decode (const unsigned char *s, size_t n)
{
    switch (n) {
    case 1:
        return s[0];
    case 2:
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3:
        return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

/* The units of the character at text[*i] in `encoding`, *i moved past it. */
static size_t
s_units (const char *text, size_t len, size_t *i, segments_encoding_t encoding)
{
    size_t n = rt_utf8_seq_len (text + *i, len - *i);
    uint32_t cp = s_decode ((const unsigned char *)text + *i, n);
    *i += n;
    if (encoding == SEGMENTS_GSM7)
        return (size_t)s_septets (cp);
    return cp > 0xFFFF ? 2 : 1;
}

int
segments_count (const char *text, size_t len, segments_t *out)
{
    bool gsm = true;
    size_t i, used, total = 0, parts;

    memset (out, 0, sizeof *out);
    if (rt_utf8_bad_at (text, len, false) != len)
        return -1;
    for (i = 0; i < len;) {
        size_t n = rt_utf8_seq_len (text + i, len - i);
        if (s_septets (s_decode ((const unsigned char *)text + i, n)) == 0) {
            gsm = false;
            break;
        }
        i += n;
    }
    out->encoding = gsm ? SEGMENTS_GSM7 : SEGMENTS_UCS2;
    for (i = 0; i < len;)
        total += s_units (text, len, &i, out->encoding);
    out->units = total;
    out->per_segment = gsm ? SEGMENTS_GSM7_SINGLE : SEGMENTS_UCS2_SINGLE;
    if (total <= out->per_segment) {
        out->segments = total > 0 ? 1 : 0;
        return 0;
    }
    out->per_segment = gsm ? SEGMENTS_GSM7_PART : SEGMENTS_UCS2_PART;
    parts = 1;
    used = 0;
    for (i = 0; i < len;) {
        size_t u = s_units (text, len, &i, out->encoding);
        if (used + u > out->per_segment) {
            parts++;
            used = 0;
        }
        used += u;
    }
    out->segments = parts;
    return 0;
}

const char *
segments_encoding_name (segments_encoding_t encoding)
{
    return encoding == SEGMENTS_GSM7 ? "GSM-7" : "UCS-2";
}
