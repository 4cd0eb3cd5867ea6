/*
 * rt_codec: hex and base64 (see rt_codec.h).
 */
#include "rt_codec.h"

int
rt_hex_value (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void
rt_hex_encode (const uint8_t *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 15];
    }
    out[2 * len] = '\0';
}

long
rt_hex_decode (const char *hex, size_t hexlen, uint8_t *out, size_t outlen)
{
    size_t i;
    if (hexlen % 2 != 0 || hexlen / 2 > outlen)
        return -1;
    for (i = 0; i < hexlen / 2; i++) {
        int hi = rt_hex_value (hex[2 * i]), lo = rt_hex_value (hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(hexlen / 2);
}

void
rt_base64_encode (const uint8_t *bin, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8 | bin[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)bin[i] << 16 | (i + 1 < len ? (uint32_t)bin[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

static int
s_b64val (char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

long
rt_base64_decode (const char *text, size_t len, uint8_t *out, size_t outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t i, o = 0, pad = 0;
    /* Padding only at the end, at most two, and only to complete the last
     * quantum: "QQ=" or "QUJD=" are not base64. Accepting them would let
     * several strings decode to one value. */
    while (len > 0 && text[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad > 2 || len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
        return -1;
    for (i = 0; i < len; i++) {
        int v = s_b64val (text[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outlen)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* The bits left over after the last byte must be zero (RFC 4648,
     * section 3.5), or "QR==" and "QQ==" would both be "A". */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}
