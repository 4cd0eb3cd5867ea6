/*
 * mime transfer encodings: quoted-printable, base64 and hex escapes back
 * to bytes (see mime_int.h).
 *
 * Mail is decoded leniently, as mail readers do: a bad escape or a stray
 * character is kept or skipped and reported, never a reason to drop the
 * rest. Base64 is the one strict decoder of retain (rt_base64_decode) fed
 * only what it accepts: the characters of the standard alphabet, run by
 * run between pads, with line breaks and stray characters taken out here.
 */
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"
#include "rt_codec.h"

/* Characters of base64 gathered before they go to rt_base64_decode: whole
 * quanta (a multiple of 4), so that a run continues across chunks. */
#define S_B64_CHUNK 1024

/* Quoted-printable (RFC 2045 6.7). Soft line breaks are removed, trailing
 * whitespace that transport may have added is dropped, lower-case hex is
 * accepted; a bad escape is kept as it was. Returns true when one was. */
static bool
s_decode_qp (rt_buf_t *out, const char *p, size_t n)
{
    size_t i = 0, trail = 0;
    bool bad = false;
    while (i < n) {
        char c = p[i];
        if (c == '=') {
            size_t j = i + 1;
            int hi = j < n ? rt_hex_value (p[j]) : -1;
            int lo = j + 1 < n ? rt_hex_value (p[j + 1]) : -1;
            if (hi >= 0 && lo >= 0) {
                mime_buf_addc (out, (char)(hi * 16 + lo));
                trail = 0;
                i += 3;
                continue;
            }
            while (j < n && mime_is_wsp (p[j]))
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
            mime_buf_addc (out, '=');
            trail = 0;
            i++;
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (!out->failed && trail <= out->len) {
                out->len -= trail;
                if (out->data)
                    out->data[out->len] = '\0';
            }
            trail = 0;
            mime_buf_addc (out, c);
            i++;
            continue;
        }
        mime_buf_addc (out, c);
        trail = mime_is_wsp (c) ? trail + 1 : 0;
        i++;
    }
    return bad;
}

static bool
s_b64_alphabet (char c)
{
    return mime_is_alpha (c) || mime_is_digit (c) || c == '+' || c == '/';
}

/* Appends the bytes of n characters of the alphabet read as one stream,
 * floor(6n/8) of them: whole quanta as they are, a last partial quantum
 * completed with 'A's (zero bits) whose bytes are not kept. Left-over bits
 * are dropped, where the strict decoder would refuse them. */
static void
s_b64_run (rt_buf_t *out, const char *chars, size_t n)
{
    size_t whole = n - n % 4, rest = n % 4;
    if (whole > 0 && rt_buf_reserve (out, whole / 4 * 3)) {
        long got = rt_base64_decode (chars, whole, (uint8_t *)out->data + out->len,
                                     out->cap - out->len - 1);
        if (got > 0)
            out->len += (size_t)got;
        out->data[out->len] = '\0';
    }
    if (rest >= 2) {
        char quantum[4] = {'A', 'A', 'A', 'A'};
        uint8_t bytes[3];
        memcpy (quantum, chars + whole, rest);
        if (rt_base64_decode (quantum, sizeof quantum, bytes, sizeof bytes) == 3)
            rt_buf_put (out, bytes, rest - 1);
    }
}

int
mime_base64_decode (rt_buf_t *out, const char *p, size_t n)
{
    /* A pad ends a run and decoding goes on after it, which reads the
     * concatenated blocks some mailers produce. Whitespace is ignored,
     * other characters outside the alphabet skipped and reported. */
    char run[S_B64_CHUNK];
    size_t k = 0, i;
    int flags = 0;
    for (i = 0; i <= n; i++) {
        if (i < n && s_b64_alphabet (p[i])) {
            run[k++] = p[i];
            if (k == sizeof run) {
                s_b64_run (out, run, k);
                k = 0;
            }
        } else if (i == n || p[i] == '=') {
            if (k % 4 == 1)
                flags |= MIME_B64_TRUNCATED;
            s_b64_run (out, run, k);
            k = 0;
        } else if (!mime_is_space (p[i])) {
            flags |= MIME_B64_BADCHAR;
        }
    }
    return flags;
}

void
mime_hex_unescape (rt_buf_t *out, const char *s, size_t n, char esc, bool underscore_space)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '_' && underscore_space) {
            mime_buf_addc (out, ' ');
        } else if (c == esc && i + 2 < n && rt_hex_value (s[i + 1]) >= 0 &&
                   rt_hex_value (s[i + 2]) >= 0) {
            mime_buf_addc (out, (char)(rt_hex_value (s[i + 1]) * 16 + rt_hex_value (s[i + 2])));
            i += 2;
        } else {
            mime_buf_addc (out, c);
        }
    }
}

mime_cte_t
mime_cte (mime_ctx_t *ctx, const mime_hdrs_t *h)
{
    char *v = mime_hdr_value (h, "content-transfer-encoding");
    char word[32];
    size_t i = 0, k = 0;
    mime_cte_t cte = MIME_CTE_IDENTITY;
    if (!v) {
        ctx->oom = true;
        return cte;
    }
    while (v[i] && mime_is_space (v[i]))
        i++;
    for (; v[i] && !mime_is_space (v[i]) && v[i] != ';' && v[i] != '(' && k + 1 < sizeof word; i++)
        word[k++] = mime_lower (v[i]);
    word[k] = '\0';
    if (strcmp (word, "quoted-printable") == 0)
        cte = MIME_CTE_QP;
    else if (strcmp (word, "base64") == 0)
        cte = MIME_CTE_BASE64;
    else if (k > 0 && strcmp (word, "7bit") != 0 && strcmp (word, "8bit") != 0 &&
             strcmp (word, "binary") != 0) {
        cte = MIME_CTE_UNKNOWN;
        mime_note (ctx, "unknown transfer encoding");
    }
    free (v);
    return cte;
}

void
mime_body_decode (mime_ctx_t *ctx, rt_buf_t *out, mime_cte_t cte, const char *p, size_t n)
{
    int flags;
    switch (cte) {
    case MIME_CTE_QP:
        if (s_decode_qp (out, p, n))
            mime_note (ctx, "bad quoted-printable escape");
        break;
    case MIME_CTE_BASE64:
        flags = mime_base64_decode (out, p, n);
        if (flags & MIME_B64_BADCHAR)
            mime_note (ctx, "bad base64 character");
        if (flags & MIME_B64_TRUNCATED)
            mime_note (ctx, "truncated base64");
        break;
    default:
        rt_buf_put (out, p, n);
        break;
    }
    mime_check (ctx, out);
}
