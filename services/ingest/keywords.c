/*
 * keywords: the opt keyword table and how a text is matched against it
 * (see keywords.h).
 *
 * Matching folds both sides the same way and compares bytes. The fold is a
 * careful table rather than ICU's (ingest's parsers link no ICU, and the
 * keywords need little of it): ASCII and Cyrillic capitals to small
 * letters, then й, ї, ё and ў decomposed (и + U+0306, і + U+0308, ...), so
 * a phone's keyboard that sends NFD and one that sends NFC both match.
 * The Latin i is taken for the Ukrainian і, as people without a Ukrainian
 * keyboard type it. Anything else is compared as it is, which is right for
 * what the table holds: Latin and Cyrillic letters only. (No keyword holds
 * й, ї, ё or ў today; the decomposition is there so that one added to the
 * table matches in both forms.)
 *
 * A keyword is the whole message: white space around it (Unicode's, and
 * the zero-width marks a copy and paste brings along) and trailing '.' or
 * '!' do not count; anything else does. "Стоп!" is the customer shouting
 * STOP, "STOP?" is a question ("stop what?") and stays a message.
 */
#include "keywords.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "channel.h"
#include "rt_utf8.h"

/* Longer texts are no keyword: the longest is ВІДПИСАТИСЯ, 22 bytes, and
 * the fold at most doubles a letter's bytes. */
#define S_TEXT_MAX 96
#define S_FOLD_MAX (2 * S_TEXT_MAX)

/* The one table. Written in capitals as carriers print them; matched
 * folded. "out" withdraws consent, "in" gives it back. */
static const struct {
    const char *word; /* the keyword */
    const char *opt;  /* what it says */
} s_keywords[] = {
    /* Twilio's default opt-out and opt-in keywords (providers.md 2.5). */
    {"STOP", "out"},
    {"STOPALL", "out"},
    {"UNSUBSCRIBE", "out"},
    {"CANCEL", "out"},
    {"END", "out"},
    {"QUIT", "out"},
    {"REVOKE", "out"},
    {"OPTOUT", "out"},
    {"START", "in"},
    {"YES", "in"},
    {"UNSTOP", "in"},
    /* Ukrainian and Russian alike. */
    {"СТОП", "out"},
    {"СТАРТ", "in"},
    /* Ukrainian: "unsubscribe" in both spellings of the reflexive, the
     * noun; "subscribe". */
    {"ВІДПИСАТИСЯ", "out"},
    {"ВІДПИСАТИСЬ", "out"},
    {"ВІДПИСКА", "out"},
    {"ПІДПИСАТИСЯ", "in"},
    {"ПІДПИСАТИСЬ", "in"},
    /* Russian: the same. */
    {"ОТПИСАТЬСЯ", "out"},
    {"ОТПИСКА", "out"},
    {"ПОДПИСАТЬСЯ", "in"},
};

/* The code point of the valid sequence at s (of len bytes). */
static uint32_t
s_decode (const unsigned char *s, size_t len)
{
    switch (len) {
    case 1:
        return s[0];
    case 2:
        return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    case 3:
        return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
               (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
    }
}

static size_t
s_encode (uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | c >> 12);
        out[1] = (char)(0x80 | (c >> 6 & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | c >> 18);
    out[1] = (char)(0x80 | (c >> 12 & 0x3f));
    out[2] = (char)(0x80 | (c >> 6 & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* White space (Unicode's White_Space) and the invisible marks around a
 * pasted word: zero-width space, joiners, word joiner, BOM. */
static int
s_blank (uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200d) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x2060 || c == 0x3000 || c == 0xfeff;
}

/* The small letter of c, for Latin and Cyrillic; c otherwise. */
static uint32_t
s_lower (uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 0x20;
    if (c >= 0x0410 && c <= 0x042f) /* А-Я */
        return c + 0x20;
    if (c >= 0x0400 && c <= 0x040f) /* Ѐ-Џ: Є, І, Ї, Ў, ... */
        return c + 0x50;
    /* Pairs capital (even) then small (odd): Ѡ-ҁ, Ҋ-ҿ (Ґ among them),
     * Ӑ-ӿ. */
    if (((c >= 0x0460 && c <= 0x0481) || (c >= 0x048a && c <= 0x04bf) ||
         (c >= 0x04d0 && c <= 0x04ff)) &&
        c % 2 == 0)
        return c + 1;
    /* Ӂ-ӎ: capital odd, small even. */
    if (c >= 0x04c1 && c <= 0x04ce && c % 2 == 1)
        return c + 1;
    if (c == 0x04c0) /* Ӏ */
        return 0x04cf;
    return c;
}

/* Folds s[0..len) (valid UTF-8) into out: small letters, the composed
 * Cyrillic letters decomposed. Returns the bytes written, or -1 when
 * they would not fit in outlen. */
static long
s_fold (const char *s, size_t len, char *out, size_t outlen)
{
    size_t i = 0, n = 0;
    while (i < len) {
        size_t k = rt_utf8_seq_len (s + i, len - i);
        uint32_t c = s_lower (s_decode ((const unsigned char *)s + i, k)), mark = 0;
        switch (c) {
        case 0x0439: /* й */
            c = 0x0438;
            mark = 0x0306;
            break;
        case 0x045e: /* ў */
            c = 0x0443;
            mark = 0x0306;
            break;
        case 0x0457: /* ї */
            c = 0x0456;
            mark = 0x0308;
            break;
        case 0x0451: /* ё */
            c = 0x0435;
            mark = 0x0308;
            break;
        case 'i':
            /* Ukrainian typed on a Russian layout takes the Latin i for
             * і: "вiдписатися" is the word. Both sides fold alike, so the
             * Latin keywords are none the worse. */
            c = 0x0456;
            break;
        default:
            break;
        }
        if (n + 8 > outlen)
            return -1;
        n += s_encode (c, out + n);
        if (mark)
            n += s_encode (mark, out + n);
        i += k;
    }
    return (long)n;
}

/* The sequence length at s[i..len), 0 at the end or on a bad byte. */
static size_t
s_seq (const char *s, size_t i, size_t len)
{
    return i < len ? rt_utf8_seq_len (s + i, len - i) : 0;
}

/* The start of the last code point of s[0..end) (valid UTF-8). */
static size_t
s_last (const char *s, size_t end)
{
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

const char *
ingest_opt_keyword (const char *text)
{
    char folded[S_FOLD_MAX], word[S_FOLD_MAX];
    size_t len, start = 0, end, i, k;
    long n, w;
    if (!text)
        return "";
    len = strnlen (text, S_TEXT_MAX + 1);
    /* Past the longest keyword with room for the blanks around it, or not
     * text at all: no keyword. */
    if (len > S_TEXT_MAX || rt_utf8_bad_at (text, len, false) != len)
        return "";
    for (;;) {
        k = s_seq (text, start, len);
        if (k == 0 || !s_blank (s_decode ((const unsigned char *)text + start, k)))
            break;
        start += k;
    }
    end = len;
    while (end > start) {
        uint32_t c;
        i = s_last (text, end);
        c = s_decode ((const unsigned char *)text + i, end - i);
        if (!s_blank (c) && c != '.' && c != '!')
            break;
        end = i;
    }
    if (end == start)
        return "";
    n = s_fold (text + start, end - start, folded, sizeof folded);
    if (n < 0)
        return "";
    for (i = 0; i < sizeof s_keywords / sizeof *s_keywords; i++) {
        w = s_fold (s_keywords[i].word, strlen (s_keywords[i].word), word, sizeof word);
        if (w == n && memcmp (word, folded, (size_t)n) == 0)
            return s_keywords[i].opt;
    }
    return "";
}

bool
ingest_opt_channel (Retain__V1__Channel channel)
{
    switch (channel) {
    case RETAIN__V1__CHANNEL__SMS:
    case RETAIN__V1__CHANNEL__WHATSAPP:
    case RETAIN__V1__CHANNEL__VIBER:
    case RETAIN__V1__CHANNEL__TELEGRAM:
    case RETAIN__V1__CHANNEL__MESSENGER:
    case RETAIN__V1__CHANNEL__INSTAGRAM:
        return true;
    default:
        return false;
    }
}

int
ingest_opt_apply (Retain__V1__InboundMessage *msg)
{
    const char *opt;
    if (!ingest_opt_channel (msg->channel) || msg->n_attachments > 0 || msg->origin ||
        (msg->event && msg->event[0] && strcmp (msg->event, "message") != 0))
        return 0;
    opt = ingest_opt_keyword (msg->text);
    return *opt ? ingest_set (&msg->opt, opt) : 0;
}
