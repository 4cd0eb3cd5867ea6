/*
 * mime charsets: every text of an e-mail into UTF-8 (see mime_int.h).
 *
 * Labels come from senders and go to iconv_open, so they are cleaned
 * first: only the characters real charset names use get through. Mailers'
 * spellings glibc does not know are mapped, to supersets where senders
 * are known to mislabel. An unknown charset is read as UTF-8 and noted.
 *
 * Whatever comes out is valid UTF-8 without NULs: iconv's output and
 * everything read as UTF-8 alike go through mime_utf8_append, which
 * replaces each invalid byte with U+FFFD (rt_utf8 decides what is valid).
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "mime_int.h"
#include "rt_utf8.h"

bool
mime_charset_clean (const char *label, size_t n, char *out, size_t outlen)
{
    size_t i = 0, k = 0;
    while (i < n && (mime_is_space (label[i]) || label[i] == '"' || label[i] == '\''))
        i++;
    while (n > i && (mime_is_space (label[n - 1]) || label[n - 1] == '"' || label[n - 1] == '\''))
        n--;
    for (; i < n; i++) {
        char c = label[i];
        if (c == '*')
            break;
        /* No '/': it would let a sender pick iconv's //TRANSLIT or
         * //IGNORE behaviours. */
        if (!(mime_is_alpha (c) || mime_is_digit (c) || c == '-' || c == '_' || c == '.' ||
              c == ':'))
            return false;
        if (k + 1 >= outlen)
            return false;
        out[k++] = mime_lower (c);
    }
    out[k] = '\0';
    return k > 0;
}

/* Labels we read as UTF-8 without iconv. US-ASCII is among them: mail
 * labelled us-ascii (or nothing) often carries UTF-8, and reading it as
 * UTF-8 loses nothing that ASCII would have kept. */
static bool
s_is_utf8 (const char *cs)
{
    static const char *const names[] = {"utf-8",    "utf8",           "us-ascii",  "ascii",
                                        "us_ascii", "ansi_x3.4-1968", "iso646-us", "646",
                                        "us",       "cp367",          "ibm367",    "csascii"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp (cs, names[i]) == 0)
            return true;
    }
    return false;
}

/* Labels mailers use that glibc's iconv spells differently; supersets are
 * chosen where senders are known to mislabel (GBK for gb2312, CP949 for
 * ks_c_5601). */
static const char *
s_alias (const char *cs)
{
    static const char *const map[][2] = {
        {"ks_c_5601-1987", "CP949"},
        {"ks_c_5601", "CP949"},
        {"gb2312", "GBK"},
        {"x-gbk", "GBK"},
        {"iso-8859-8-i", "ISO-8859-8"},
        {"win-1251", "CP1251"},
        {"x-cp1251", "CP1251"},
        {"cp-1251", "CP1251"},
        {"x-mac-cyrillic", "MAC-CYRILLIC"},
        {"x-mac-ukrainian", "MAC-UK"},
        {"windows-874", "CP874"},
        {"x-sjis", "SHIFT_JIS"},
        {"x-euc-jp", "EUC-JP"},
        {"x-user-defined", "CP1252"},
    };
    size_t i;
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp (cs, map[i][0]) == 0)
            return map[i][1];
    }
    return cs;
}

/* The charset label made printable for a note. */
static void
s_shown (const char *label, size_t n, char *out, size_t outlen)
{
    size_t i, k = 0;
    for (i = 0; i < n && k + 1 < outlen && k < 40; i++) {
        unsigned char c = (unsigned char)label[i];
        out[k++] = (c >= 0x20 && c < 0x7F && c != '"') ? (char)c : '?';
    }
    out[k] = '\0';
}

/* Runs n bytes through cd into out; returns the number of bytes iconv
 * could not convert (each became U+FFFD). */
static size_t
s_iconv_append (iconv_t cd, rt_buf_t *out, const char *data, size_t n)
{
    char *in = (char *)data;
    size_t left = n, bad = 0;
    while (left > 0 && !out->failed) {
        char tmp[4096];
        char *op = tmp;
        size_t oleft = sizeof tmp;
        size_t before = left;
        size_t r = iconv (cd, &in, &left, &op, &oleft);
        int err = errno;
        /* iconv writes whole characters, so each chunk is complete UTF-8;
         * it still goes through the validator to drop NULs. */
        mime_utf8_append (out, tmp, (size_t)(op - tmp));
        if (r != (size_t)-1)
            break;
        if (err == E2BIG && (op != tmp || left != before))
            continue;
        /* EILSEQ, an unexpected error, or no progress: replace one byte
         * and go on. EINVAL (a truncated sequence at the end) ends here
         * too, as the remaining bytes are all of that sequence. */
        rt_buf_put (out, MIME_REPLACEMENT, 3);
        bad++;
        if (err == EINVAL)
            break;
        in++;
        left--;
    }
    return bad;
}

void
mime_charset_convert (mime_ctx_t *ctx, rt_buf_t *out, const char *data, size_t n, const char *label,
                      size_t llen)
{
    char cs[MIME_MAX_CHARSET], shown[48];
    iconv_t cd;
    size_t bad;
    bool known;

    if (llen == 0) {
        strcpy (cs, "us-ascii");
        known = true;
    } else {
        known = mime_charset_clean (label, llen, cs, sizeof cs);
    }
    if (known && s_is_utf8 (cs)) {
        bad = mime_utf8_append (out, data, n);
        if (bad && ctx)
            mime_note (ctx, "invalid bytes for charset %s", cs);
        return;
    }
    cd = known ? iconv_open ("UTF-8", s_alias (cs)) : (iconv_t)-1;
    if (cd == (iconv_t)-1) {
        mime_utf8_append (out, data, n);
        if (ctx) {
            s_shown (label, llen, shown, sizeof shown);
            mime_note (ctx, "unknown charset %s", shown);
        }
        return;
    }
    bad = s_iconv_append (cd, out, data, n);
    iconv_close (cd);
    if (bad && ctx)
        mime_note (ctx, "invalid bytes for charset %s", cs);
}

size_t
mime_utf8_append (rt_buf_t *out, const char *data, size_t n)
{
    size_t i = 0, bad = 0;
    while (i < n) {
        /* The valid run up to the next byte that breaks UTF-8 or is NUL. */
        size_t run = rt_utf8_bad_at (data + i, n - i, false);
        rt_buf_put (out, data + i, run);
        i += run;
        if (i == n)
            break;
        if (data[i]) {
            rt_buf_put (out, MIME_REPLACEMENT, 3);
            bad++;
        }
        i++;
    }
    return bad;
}
