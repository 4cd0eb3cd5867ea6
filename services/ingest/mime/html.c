/*
 * mime HTML: a text/html body turned to the plain text a reader sees (see
 * mime_int.h).
 *
 * Not an HTML parser: one linear pass that drops tags, skips what is never
 * shown (script, style, title, a closed head), turns block elements and
 * <br> into line breaks, decodes entities and collapses whitespace outside
 * <pre>. Blockquotes become "> " lines so that the reply stripper
 * (reply.c) sees them as quotes. Bounded: a tag's quoted attributes are
 * read for at most MIME_MAX_TAG bytes, and a <head> without </head> is
 * searched for once only, so neither can make the pass quadratic.
 */
#include <stdio.h>
#include <string.h>

#include "mime_int.h"
#include "rt_codec.h"

typedef struct {
    rt_buf_t *out;    /* the text */
    bool line_start;  /* nothing written on the current line yet */
    bool space;       /* whitespace seen since the last character */
    int newlines;     /* newlines just written, to keep at most one blank line */
    int quote;        /* blockquote depth: lines are prefixed "> " per level */
    int pre;          /* inside <pre>: whitespace is kept */
    bool no_head_end; /* a <head> had no </head>: later ones are not searched */
} s_html_t;

static void
s_html_nl (s_html_t *h)
{
    if (h->newlines >= 2)
        return;
    mime_buf_addc (h->out, '\n');
    h->newlines++;
    h->line_start = true;
    h->space = false;
}

static void
s_html_block (s_html_t *h)
{
    if (!h->line_start)
        s_html_nl (h);
}

static void
s_html_text (s_html_t *h, const char *p, size_t n)
{
    if (h->line_start) {
        int i;
        for (i = 0; i < h->quote && i < 8; i++)
            rt_buf_puts (h->out, "> ");
    } else if (h->space) {
        mime_buf_addc (h->out, ' ');
    }
    rt_buf_put (h->out, p, n);
    h->line_start = false;
    h->space = false;
    h->newlines = 0;
}

/* Appends code point cp as UTF-8; U+FFFD for NUL, surrogates and what is
 * beyond Unicode. */
static void
s_utf8_put (rt_buf_t *out, unsigned long cp)
{
    char u[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        rt_buf_put (out, MIME_REPLACEMENT, 3);
    } else if (cp < 0x80) {
        mime_buf_addc (out, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        rt_buf_put (out, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        rt_buf_put (out, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        rt_buf_put (out, u, 4);
    }
}

static const struct {
    const char *name; /* the entity's name, without '&' and ';' */
    unsigned long cp; /* the code point it stands for */
} s_entities[] = {
    {"amp", '&'},       {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", ' '},      {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"euro", 0x20AC},
    {"pound", 0xA3},    {"yen", 0xA5},     {"cent", 0xA2},    {"sect", 0xA7},    {"deg", 0xB0},
    {"plusmn", 0xB1},   {"times", 0xD7},   {"divide", 0xF7},  {"middot", 0xB7},  {"bull", 0x2022},
    {"hellip", 0x2026}, {"ndash", 0x2013}, {"mdash", 0x2014}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"sbquo", 0x201A},  {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"laquo", 0xAB},
    {"raquo", 0xBB},    {"shy", 0xAD},     {"zwnj", 0x200C},  {"zwj", 0x200D},   {"ensp", ' '},
    {"emsp", ' '},      {"thinsp", ' '},   {"iexcl", 0xA1},   {"iquest", 0xBF},  {"para", 0xB6},
    {"numero", 0x2116}, {"larr", 0x2190},  {"rarr", 0x2192},  {"uarr", 0x2191},  {"darr", 0x2193},
};

/* A numeric reference "&#..." or "&#x..." at h[i] into tmp; returns the
 * bytes consumed, 0 when it is not one. */
static size_t
s_html_numeric (const char *h, size_t n, size_t i, rt_buf_t *tmp)
{
    size_t j = i + 2, digits = 0;
    unsigned long cp = 0;
    bool hex = j < n && (h[j] == 'x' || h[j] == 'X');
    if (hex)
        j++;
    while (j < n && digits < 8 && (hex ? rt_hex_value (h[j]) >= 0 : mime_is_digit (h[j]))) {
        cp = cp * (hex ? 16 : 10) + (unsigned long)(hex ? rt_hex_value (h[j]) : h[j] - '0');
        j++;
        digits++;
    }
    if (digits == 0)
        return 0;
    if (j < n && h[j] == ';')
        j++;
    /* Windows-1252 numbers in place of Unicode ones are a classic of mail
     * HTML; map the common ones. */
    if (cp >= 0x80 && cp <= 0x9F) {
        static const unsigned short w1252[32] = {
            0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
            0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
            0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
        cp = w1252[cp - 0x80];
    }
    if (cp == 0xA0)
        cp = ' ';
    s_utf8_put (tmp, cp);
    return j - i;
}

/* A named entity "&name;" at h[i] into tmp; returns the bytes consumed, 0
 * when it is not one we know. */
static size_t
s_html_named (const char *h, size_t n, size_t i, rt_buf_t *tmp)
{
    size_t j = i + 1, k;
    char name[12];
    for (k = 0; j < n && k + 1 < sizeof name && (mime_is_alpha (h[j]) || mime_is_digit (h[j])); j++)
        name[k++] = h[j];
    name[k] = '\0';
    if (k == 0 || j >= n || h[j] != ';')
        return 0;
    j++;
    for (k = 0; k < sizeof s_entities / sizeof s_entities[0]; k++) {
        if (strcmp (name, s_entities[k].name) == 0) {
            s_utf8_put (tmp, s_entities[k].cp);
            return j - i;
        }
    }
    return 0;
}

/* Decodes the entity at h[i] ('&'); returns the bytes consumed, 0 when it
 * is not one (the '&' is then literal). */
static size_t
s_html_entity (s_html_t *ht, const char *h, size_t n, size_t i)
{
    rt_buf_t tmp = {0};
    size_t used;
    if (i + 1 < n && h[i + 1] == '#')
        used = s_html_numeric (h, n, i, &tmp);
    else
        used = s_html_named (h, n, i, &tmp);
    if (used == 0) {
        rt_buf_free (&tmp);
        return 0;
    }
    if (tmp.failed) {
        ht->out->failed = true;
    } else if (tmp.len == 1 && tmp.data[0] == ' ' && !ht->pre) {
        /* A non-breaking space still separates words but should not keep
         * a line from counting as blank. */
        if (!ht->line_start)
            s_html_text (ht, " ", 1);
    } else if (tmp.len > 0) {
        s_html_text (ht, tmp.data, tmp.len);
    }
    rt_buf_free (&tmp);
    return used;
}

/* Skips past the closing tag </name> (case-insensitive) from i; returns n
 * when there is none. */
static size_t
s_html_skip_to_close (const char *h, size_t n, size_t i, const char *name)
{
    /* Tag names are at most 15 characters (the parser's limit). */
    char close[18];
    const char *f;
    snprintf (close, sizeof close, "</%s", name);
    f = mime_find_ci (h + i, n - i, close);
    if (!f)
        return n;
    f = memchr (f, '>', (size_t)(h + n - f));
    return f ? (size_t)(f - h) + 1 : n;
}

static bool
s_tag_is (const char *tag, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp (tag, *list) == 0)
            return true;
    }
    return false;
}

/* The offset of the '>' ending the tag whose attributes start at j (n when
 * there is none), honouring quoted attribute values; a quote left open
 * falls back to the first '>'. */
static size_t
s_tag_end (const char *h, size_t n, size_t j)
{
    char q = 0;
    size_t limit = n - j > MIME_MAX_TAG ? j + MIME_MAX_TAG : n, end;
    const char *gt;
    for (end = j; end < limit; end++) {
        if (q) {
            if (h[end] == q)
                q = 0;
        } else if (h[end] == '"' || h[end] == '\'') {
            q = h[end];
        } else if (h[end] == '>') {
            return end;
        }
    }
    gt = memchr (h + j, '>', n - j);
    return gt ? (size_t)(gt - h) : n;
}

/* What tag (lower-cased; closing: "</tag>") does to the text, the tag
 * read up to i. Returns where the text goes on. */
static size_t
s_tag_apply (s_html_t *ht, const char *h, size_t n, size_t i, const char *tag, bool closing)
{
    static const char *const blocks[] = {
        "p",       "div",    "tr",      "table",   "ul",         "ol",     "h1",    "h2",    "h3",
        "h4",      "h5",     "h6",      "hr",      "blockquote", "pre",    "dl",    "dt",    "dd",
        "address", "center", "section", "article", "header",     "footer", "tbody", "thead", NULL};
    if (!closing &&
        (strcmp (tag, "script") == 0 || strcmp (tag, "style") == 0 || strcmp (tag, "title") == 0)) {
        i = s_html_skip_to_close (h, n, i, tag);
    } else if (!closing && strcmp (tag, "head") == 0 && !ht->no_head_end) {
        /* Without </head> the head is not skipped (the body would go with
         * it); remembered, so many <head>s stay linear. */
        size_t e = s_html_skip_to_close (h, n, i, tag);
        if (e == n)
            ht->no_head_end = true;
        else
            i = e;
    } else if (strcmp (tag, "br") == 0) {
        s_html_nl (ht);
        ht->newlines = 0; /* consecutive <br>s are intended blank lines */
    } else if (strcmp (tag, "li") == 0) {
        s_html_block (ht);
        if (!closing)
            s_html_text (ht, "- ", 2);
        ht->space = false;
    } else if (strcmp (tag, "td") == 0 || strcmp (tag, "th") == 0) {
        ht->space = true;
    } else if (s_tag_is (tag, blocks)) {
        s_html_block (ht);
        if (strcmp (tag, "blockquote") == 0)
            ht->quote += closing ? (ht->quote > 0 ? -1 : 0) : 1;
        if (strcmp (tag, "pre") == 0)
            ht->pre += closing ? (ht->pre > 0 ? -1 : 0) : 1;
    }
    return i;
}

/* The markup at h[i] ('<'): a comment, a tag, or a literal '<'. Returns
 * where the text goes on. */
static size_t
s_html_markup (s_html_t *ht, const char *h, size_t n, size_t i)
{
    size_t j = i + 1, k = 0, end;
    bool closing = false;
    char tag[16];
    if (mime_prefix (h + i, n - i, "<!--")) {
        const char *e = mime_find_ci (h + i + 4, n - i - 4, "-->");
        return e ? (size_t)(e - h) + 3 : n;
    }
    if (j < n && h[j] == '/') {
        closing = true;
        j++;
    }
    if (j >= n || !(mime_is_alpha (h[j]) || (!closing && (h[j] == '!' || h[j] == '?')))) {
        s_html_text (ht, "<", 1); /* "a < b" in text */
        return i + 1;
    }
    while (j < n && (mime_is_alpha (h[j]) || mime_is_digit (h[j]) || h[j] == ':')) {
        if (k + 1 < sizeof tag)
            tag[k++] = mime_lower (h[j]);
        j++;
    }
    tag[k] = '\0';
    end = s_tag_end (h, n, j);
    return s_tag_apply (ht, h, n, end < n ? end + 1 : n, tag, closing);
}

void
mime_html_to_text (rt_buf_t *out, const char *h, size_t n)
{
    s_html_t ht = {out, true, false, 2, 0, 0, false};
    size_t i = 0;
    while (i < n) {
        char c = h[i];
        if (c == '<') {
            i = s_html_markup (&ht, h, n, i);
        } else if (c == '&') {
            size_t used = s_html_entity (&ht, h, n, i);
            if (used == 0) {
                s_html_text (&ht, "&", 1);
                used = 1;
            }
            i += used;
        } else if (mime_is_space (c)) {
            if (ht.pre && c == '\n')
                s_html_nl (&ht);
            else if (ht.pre && c != '\r')
                s_html_text (&ht, &c, 1);
            else if (!ht.line_start)
                ht.space = true;
            i++;
        } else {
            size_t j = i + 1;
            while (j < n && h[j] != '<' && h[j] != '&' && !mime_is_space (h[j]))
                j++;
            s_html_text (&ht, h + i, j - i);
            i = j;
        }
    }
}
