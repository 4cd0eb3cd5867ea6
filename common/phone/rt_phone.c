/*
 * rt_phone: the E.164 normaliser (see rt_phone.h for what is read and
 * refused, and where the tables come from).
 *
 * Two passes. The scan walks the input once: it drops the prefixes and
 * separators, keeps the digits and the leading '+', and stops at the first
 * thing that is not part of a number, naming it. The reading then decides
 * what the digits are (international, national of the default country)
 * from the tables below; every path that accepts checks the country code
 * and the length, so nothing is written that a table did not confirm.
 */
#include "rt_phone.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* More digits than this are too long whatever prefix they carry ("00"
 * and 15 digits is 17). */
#define S_DIGITS_MAX 17

/* Country calling codes assigned by the ITU (Complement to ITU-T E.164),
 * geographic and global services alike; spare and reserved codes are
 * absent. The codes are prefix-free: at most one of a number's first one,
 * two or three digits is here. Sorted, for bsearch. */
static const uint16_t s_codes[] = {
    1,   7,   20,  27,  30,  31,  32,  33,  34,  36,  39,  40,  41,  43,  44,  45,  46,  47,
    48,  49,  51,  52,  53,  54,  55,  56,  57,  58,  60,  61,  62,  63,  64,  65,  66,  81,
    82,  84,  86,  90,  91,  92,  93,  94,  95,  98,  211, 212, 213, 216, 218, 220, 221, 222,
    223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240,
    241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258,
    260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298, 299, 350, 351, 352,
    353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377, 378, 380, 381,
    382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505, 506, 507, 508,
    509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675, 676, 677,
    678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850, 852,
    853, 855, 856, 870, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965, 966, 967,
    968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995, 996, 998,
};

/* The countries whose national numbers retain reads, from their plans as
 * notified to the ITU. A calling code shared by several countries (+1,
 * +7) has one length rule, so their rows agree. */
typedef struct {
    const char *iso;      /* ISO 3166 alpha-2, upper case */
    const char *cc;       /* country calling code, digits */
    int min;              /* fewest digits of a national significant number */
    int max;              /* most digits of a national significant number */
    const char *trunk[2]; /* trunk (national) prefixes, NULL when none */
    bool trunk_optional;  /* the national number is also written without it */
    const char *idd;      /* the international prefix dialled from there */
} s_country_t;

static const s_country_t s_countries[] = {
    {"UA", "380", 9, 9, {"0", "80"}, false, "00"},
    {"PL", "48", 9, 9, {NULL, NULL}, false, "00"},
    {"MD", "373", 8, 8, {"0", NULL}, false, "00"},
    {"RO", "40", 9, 9, {"0", NULL}, false, "00"},
    {"SK", "421", 9, 9, {"0", NULL}, false, "00"},
    {"HU", "36", 8, 9, {"06", NULL}, false, "00"},
    {"DE", "49", 5, 13, {"0", NULL}, false, "00"},
    {"GB", "44", 9, 10, {"0", NULL}, false, "00"},
    {"US", "1", 10, 10, {"1", NULL}, true, "011"},
    {"CA", "1", 10, 10, {"1", NULL}, true, "011"},
    {"KZ", "7", 10, 10, {"8", NULL}, false, "00"},
    {"RU", "7", 10, 10, {"8", NULL}, false, "00"},
    {"GE", "995", 9, 9, {"0", NULL}, false, "00"},
    /* Lithuania's trunk prefix is moving from 8 to 0; both are read. */
    {"LT", "370", 8, 8, {"8", "0"}, false, "00"},
    {"LV", "371", 8, 8, {NULL, NULL}, false, "00"},
    {"EE", "372", 7, 8, {NULL, NULL}, false, "00"},
    {"CZ", "420", 9, 9, {NULL, NULL}, false, "00"},
    /* Italy's leading 0 belongs to the number ("+39 06 ..."): no trunk. */
    {"IT", "39", 6, 11, {NULL, NULL}, false, "00"},
    {"FR", "33", 9, 9, {"0", NULL}, false, "00"},
    {"ES", "34", 9, 9, {NULL, NULL}, false, "00"},
    {"TR", "90", 10, 10, {"0", NULL}, false, "00"},
    {"IL", "972", 8, 9, {"0", NULL}, false, "00"},
};

#define S_NCOUNTRIES (sizeof s_countries / sizeof s_countries[0])

static int s_fail (char *why, size_t whylen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    if (why && whylen > 0) {
        va_start (ap, fmt);
        vsnprintf (why, whylen, fmt, ap);
        va_end (ap);
    }
    return -1;
}

static int
s_code_cmp (const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Length (1 to 3) of the assigned country code that digits start with,
 * or 0. */
static size_t
s_code_len (const char *digits, size_t n)
{
    size_t len;
    uint16_t code = 0;
    for (len = 1; len <= 3 && len <= n; len++) {
        code = (uint16_t)(code * 10 + (digits[len - 1] - '0'));
        if (bsearch (&code, s_codes, sizeof s_codes / sizeof s_codes[0], sizeof s_codes[0],
                     s_code_cmp))
            return len;
    }
    return 0;
}

static const s_country_t *
s_by_iso (const char *iso)
{
    size_t i;
    for (i = 0; i < S_NCOUNTRIES; i++) {
        if (strcasecmp (s_countries[i].iso, iso) == 0)
            return &s_countries[i];
    }
    return NULL;
}

static const s_country_t *
s_by_code (const char *cc, size_t len)
{
    size_t i;
    for (i = 0; i < S_NCOUNTRIES; i++) {
        if (strlen (s_countries[i].cc) == len && memcmp (s_countries[i].cc, cc, len) == 0)
            return &s_countries[i];
    }
    return NULL;
}

static bool
s_trunk_zero (const s_country_t *c)
{
    return (c->trunk[0] && strcmp (c->trunk[0], "0") == 0) ||
           (c->trunk[1] && strcmp (c->trunk[1], "0") == 0);
}

/* NANP: area code and exchange both start with 2 to 9. */
static bool
s_nanp_ok (const char *nsn)
{
    return nsn[0] >= '2' && nsn[3] >= '2';
}

/* True when nsn[0..n) is a national significant number of c. */
static bool
s_fits (const s_country_t *c, const char *nsn, size_t n)
{
    if ((int)n < c->min || (int)n > c->max)
        return false;
    return strcmp (c->cc, "1") != 0 || s_nanp_ok (nsn);
}

static void
s_write (char *out, const char *cc, size_t cclen, const char *nsn, size_t n)
{
    out[0] = '+';
    memcpy (out + 1, cc, cclen);
    memcpy (out + 1 + cclen, nsn, n);
    out[1 + cclen + n] = '\0';
}

/* What the length of a number is against its country's rule. */
static const char *
s_length_word (const s_country_t *c, size_t n)
{
    return (int)n < c->min ? "too short" : "too long";
}

static void
s_lengths (const s_country_t *c, char *buf, size_t len)
{
    if (c->min == c->max)
        snprintf (buf, len, "%d", c->min);
    else
        snprintf (buf, len, "%d to %d", c->min, c->max);
}

/* Reads digits[0..n) as international (country code first). With strict,
 * only a country of the table is accepted: the reading of digits that came
 * without '+' must be confirmed by a length. */
static int
s_international (const char *digits, size_t n, bool strict, char *out, char *why, size_t whylen)
{
    const s_country_t *c;
    const char *nsn;
    size_t cclen, nsnlen;
    char lengths[16];
    if (n == 0)
        return s_fail (why, whylen, "no digits after the international prefix");
    if (digits[0] == '0')
        return s_fail (why, whylen, "no country calling code starts with 0");
    cclen = s_code_len (digits, n);
    if (cclen == 0) {
        return s_fail (why, whylen, "unknown country calling code: no country has +%.*s",
                       (int)(n < 3 ? n : 3), digits);
    }
    nsn = digits + cclen;
    nsnlen = n - cclen;
    c = s_by_code (digits, cclen);
    if (!c) {
        if (strict)
            return s_fail (why, whylen,
                           "no '+': digits read as +%.*s would be a guess; write it with '+'",
                           (int)cclen, digits);
        if (n < 7)
            return s_fail (why, whylen, "too short: %zu digits, at least 7 with the country code",
                           n);
        if (n > 15)
            return s_fail (why, whylen, "too long: %zu digits, E.164 allows 15", n);
        s_write (out, digits, cclen, nsn, nsnlen);
        return 0;
    }
    /* "+44 (0)20 ...": the trunk prefix written after the country code. */
    if (nsnlen > 0 && nsn[0] == '0' && s_trunk_zero (c)) {
        nsn++;
        nsnlen--;
    }
    if (!s_fits (c, nsn, nsnlen)) {
        s_lengths (c, lengths, sizeof lengths);
        if ((int)nsnlen >= c->min && (int)nsnlen <= c->max)
            return s_fail (why, whylen,
                           "not a +1 number: its area code and exchange start with 2 to 9");
        return s_fail (why, whylen, "%s for +%s: %s digits follow the country code, not %zu",
                       s_length_word (c, nsnlen), c->cc, lengths, nsnlen);
    }
    s_write (out, c->cc, cclen, nsn, nsnlen);
    return 0;
}

/* Reads digits written without '+' by someone in country c (NULL when
 * the default country is not in the table, or is "ZZ"). */
static int
s_dialled (const s_country_t *c, bool zz, const char *iso, const char *digits, size_t n, char *out,
           char *why, size_t whylen)
{
    size_t i, len;
    char lengths[16];
    if (!c) {
        if (zz)
            return s_international (digits, n, false, out, why, whylen);
        if (n > 2 && digits[0] == '0' && digits[1] == '0')
            return s_international (digits + 2, n - 2, false, out, why, whylen);
        return s_fail (why, whylen,
                       "national numbers of %s are not known here: write it with '+' and the "
                       "country code",
                       iso);
    }
    len = strlen (c->idd);
    if (n > len && memcmp (digits, c->idd, len) == 0)
        return s_international (digits + len, n - len, false, out, why, whylen);
    for (i = 0; i < 2 && c->trunk[i]; i++) {
        len = strlen (c->trunk[i]);
        if (n > len && memcmp (digits, c->trunk[i], len) == 0 &&
            s_fits (c, digits + len, n - len)) {
            s_write (out, c->cc, strlen (c->cc), digits + len, n - len);
            return 0;
        }
    }
    if ((!c->trunk[0] || c->trunk_optional) && s_fits (c, digits, n)) {
        s_write (out, c->cc, strlen (c->cc), digits, n);
        return 0;
    }
    if (s_international (digits, n, true, out, why, whylen) == 0)
        return 0;
    s_lengths (c, lengths, sizeof lengths);
    /* The most likely intent, for the reason: a national number with the
     * wrong number of digits. */
    for (i = 0; i < 2 && c->trunk[i]; i++) {
        len = strlen (c->trunk[i]);
        if (n > len && memcmp (digits, c->trunk[i], len) == 0 && !c->trunk_optional)
            return s_fail (why, whylen, "%s for %s: %s digits follow the trunk prefix %s, not %zu",
                           s_length_word (c, n - len), c->iso, lengths, c->trunk[i], n - len);
    }
    if (c->trunk[0] && !c->trunk_optional)
        return s_fail (why, whylen,
                       "not a %s number (%s and %s digits) nor international ('+' or %s and the "
                       "country code)",
                       c->iso, c->trunk[0], lengths, c->idd);
    return s_fail (why, whylen,
                   "not a %s number (%s digits) nor international ('+' or %s and the country "
                   "code)",
                   c->iso, lengths, c->idd);
}

/* --- the scan --------------------------------------------------------- */

/* Length of the separator at p (a space, a dash, a bracket, an invisible
 * mark), or 0. */
static size_t
s_separator (const unsigned char *p)
{
    if (*p == ' ' || *p == '\t' || *p == '-' || *p == '.' || *p == '/' || *p == '(' || *p == ')')
        return 1;
    if (p[0] == 0xC2 && p[1] == 0xA0) /* U+00A0 no-break space */
        return 2;
    if (p[0] == 0xE2 && p[1] == 0x80) {
        /* U+2000-U+200F spaces and marks, U+2010-U+2015 dashes, U+2028-U+202F
         * separators, embeddings and the narrow no-break space. */
        if ((p[2] >= 0x80 && p[2] <= 0x95) || (p[2] >= 0xA8 && p[2] <= 0xAF))
            return 3;
    }
    if (p[0] == 0xE2 && p[1] == 0x81 && p[2] >= 0xA0 && p[2] <= 0xA4) /* U+2060 word joiner.. */
        return 3;
    if (p[0] == 0xE2 && p[1] == 0x88 && p[2] == 0x92) /* U+2212 minus */
        return 3;
    if (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) /* U+3000 ideographic space */
        return 3;
    if (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) /* U+FEFF byte order mark */
        return 3;
    return 0;
}

static const unsigned char *
s_skip_separators (const unsigned char *p)
{
    size_t len = s_separator (p);
    while (len > 0) {
        p += len;
        len = s_separator (p);
    }
    return p;
}

/* True when p starts an extension marker: "ext", "x", "extension", "доб". */
static bool
s_extension_word (const unsigned char *p)
{
    static const char *const words[] = {"extension", "extn", "ext", "x"};
    static const char dob[] = "\xD0\xB4\xD0\xBE\xD0\xB1"; /* "доб" (добавочный) */
    size_t i, len;
    if (strncmp ((const char *)p, dob, sizeof dob - 1) == 0)
        return true;
    for (i = 0; i < sizeof words / sizeof words[0]; i++) {
        len = strlen (words[i]);
        if (strncasecmp ((const char *)p, words[i], len) == 0 &&
            !((p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z')))
            return true;
    }
    return false;
}

/* Length of the run of ASCII letters at p, at most 20. */
static int
s_word_len (const unsigned char *p)
{
    int len = 0;
    while (len < 20 && ((p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z')))
        len++;
    return len;
}

/* The scan: digits into digits[] (n of them counted, at most S_DIGITS_MAX
 * kept), *plus when the number starts with '+'. */
static int
s_scan (const char *input, char digits[S_DIGITS_MAX], size_t *n, bool *plus, char *why,
        size_t whylen)
{
    const unsigned char *p = s_skip_separators ((const unsigned char *)input);
    size_t count = 0;
    *plus = false;
    if (strncasecmp ((const char *)p, "tel:", 4) == 0)
        p = s_skip_separators (p + 4);
    else if (strncasecmp ((const char *)p, "whatsapp:", 9) == 0)
        p = s_skip_separators (p + 9);
    if (!*p)
        return s_fail (why, whylen, "empty: no phone number");
    while (*p) {
        size_t sep = s_separator (p);
        if (sep > 0) {
            p += sep;
        } else if (*p >= '0' && *p <= '9') {
            if (count < S_DIGITS_MAX)
                digits[count] = (char)*p;
            count++;
            p++;
        } else if (*p == '+') {
            if (count > 0 || *plus)
                return s_fail (why, whylen, "'+' in the middle: only the first character may be");
            *plus = true;
            p++;
        } else if (*p == '#' || *p == ',' || s_extension_word (p) ||
                   strncasecmp ((const char *)p, ";ext=", 5) == 0) {
            return s_fail (why, whylen,
                           "an extension: a number with one is an office line many share; give "
                           "the number alone");
        } else if (*p == ';') {
            return s_fail (why, whylen, "tel: parameters (after ';') are not read");
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
            return s_fail (why, whylen, "letters in a phone number (\"%.*s\")", s_word_len (p),
                           (const char *)p);
        } else if (*p >= 0x80) {
            /* Not quoted: the reason stays ASCII whatever the input was. */
            return s_fail (why, whylen, "letters or symbols in a phone number");
        } else if (*p > ' ' && *p < 0x7F) {
            return s_fail (why, whylen, "'%c' is not part of a phone number", *p);
        } else {
            return s_fail (why, whylen, "control character 0x%02X in a phone number", *p);
        }
    }
    if (count == 0)
        return s_fail (why, whylen, "no digits");
    if (count > S_DIGITS_MAX)
        return s_fail (why, whylen, "too long: %zu digits, E.164 allows 15", count);
    *n = count;
    return 0;
}

int
rt_phone_normalize (const char *input, const char *default_country, char out[RT_PHONE_E164_MAX + 1],
                    char *why, size_t whylen)
{
    const char *iso = default_country ? default_country : "UA";
    char digits[S_DIGITS_MAX];
    size_t n = 0;
    bool plus, zz;
    int rc;
    out[0] = '\0';
    if (strlen (iso) != 2 || !((iso[0] | 0x20) >= 'a' && (iso[0] | 0x20) <= 'z') ||
        !((iso[1] | 0x20) >= 'a' && (iso[1] | 0x20) <= 'z'))
        return s_fail (why, whylen, "default country \"%.8s\" is not ISO 3166 alpha-2", iso);
    if (!input)
        return s_fail (why, whylen, "empty: no phone number");
    if (s_scan (input, digits, &n, &plus, why, whylen) != 0)
        return -1;
    zz = strcasecmp (iso, "ZZ") == 0;
    if (plus)
        rc = s_international (digits, n, false, out, why, whylen);
    else
        rc = s_dialled (s_by_iso (iso), zz, iso, digits, n, out, why, whylen);
    if (rc != 0)
        out[0] = '\0';
    return rc;
}
