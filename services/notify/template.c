/*
 * template: the parser (template.h has the language and the contract;
 * template_render.c renders and picks the locale; template_int.h is the
 * compiled form they share).
 *
 * Plural forms keep their text raw (escapes and # in place) and are read
 * at render time, where # becomes the number: unescaping at parse time
 * would make "\#" and "#" the same character.
 */
#include "template.h"
#include "template_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unicode/ucurr.h>
#include <unicode/udat.h>
#include <unicode/unumberformatter.h>
#include <unicode/upluralrules.h>
#include <unicode/ustring.h>

#include "rt_tz.h"
#include "rt_utf8.h"

#define S_TAG_WORDS_MAX 12 /* words in one tag: plural's six forms and a few spare */

/* The styles of {{date}}'s style= and time=, with ICU's values. */
static const struct {
    const char *name;       /* as written */
    UDateFormatStyle style; /* ICU's */
} s_styles[] = {{"none", UDAT_NONE},
                {"short", UDAT_SHORT},
                {"medium", UDAT_MEDIUM},
                {"long", UDAT_LONG},
                {"full", UDAT_FULL}};

const char *const template_form_names[TEMPLATE_NFORMS] = {"zero", "one",  "two",
                                                          "few",  "many", "other"};

/* One word of a tag: `word`, `key=word`, `key="text"` or `"text"`. */
typedef struct {
    size_t at;       /* its offset in the source */
    const char *key; /* the word, or the part before '='; NULL for a bare "text" */
    size_t keylen;   /* bytes of key */
    const char *val; /* after '=' (inside the quotes when quoted); NULL for none */
    size_t vallen;   /* bytes of val */
    bool quoted;     /* val was "..." (escapes still in it) */
} s_word_t;

typedef struct {
    const char *src;                    /* the source */
    size_t len;                         /* its bytes */
    template_t *t;                      /* what is being built */
    template_error_t *err;              /* the caller's, may be NULL */
    size_t open[TEMPLATE_DEPTH_MAX];    /* the #if nodes not yet closed, innermost last */
    size_t open_at[TEMPLATE_DEPTH_MAX]; /* where each was written */
    bool has_else[TEMPLATE_DEPTH_MAX];  /* each has had its {{else}} */
    int depth;                          /* how many are open */
    size_t tag_at;                      /* where the tag being read starts ("{{") */
} s_parser_t;

/* --- parsing --- */

static int s_fail (s_parser_t *p, size_t at, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Fills the caller's error with the position of `at` and the message. */
static int
s_fail (s_parser_t *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    size_t i;
    if (!p->err)
        return -1;
    p->err->offset = at;
    p->err->line = 1;
    p->err->column = 1;
    for (i = 0; i < at && i < p->len; i++) {
        unsigned char c = (unsigned char)p->src[i];
        if (c == '\n') {
            p->err->line++;
            p->err->column = 1;
        } else if ((c & 0xC0) != 0x80)
            p->err->column++;
    }
    va_start (ap, fmt);
    vsnprintf (p->err->message, sizeof p->err->message, fmt, ap);
    va_end (ap);
    return -1;
}

static template_node_t *
s_add (s_parser_t *p, template_kind_t kind)
{
    template_node_t *n;
    if (p->t->count == p->t->cap) {
        size_t cap = p->t->cap ? p->t->cap * 2 : 16;
        template_node_t *grown = realloc (p->t->nodes, cap * sizeof *grown);
        if (!grown)
            return NULL;
        p->t->nodes = grown;
        p->t->cap = cap;
    }
    n = &p->t->nodes[p->t->count++];
    memset (n, 0, sizeof *n);
    n->kind = kind;
    return n;
}

static char *
s_dup (const char *s, size_t n)
{
    char *d = malloc (n + 1);
    if (!d)
        return NULL;
    memcpy (d, s, n);
    d[n] = '\0';
    return d;
}

/* A copy of a quoted text's inside with \x read as x. */
static char *
s_unescape (const char *s, size_t n, size_t *outlen)
{
    char *d = malloc (n + 1);
    size_t i, o = 0;
    if (!d)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        d[o++] = s[i];
    }
    d[o] = '\0';
    *outlen = o;
    return d;
}

static bool
s_is_name (const char *s, size_t n)
{
    size_t i;
    if (n == 0 || n > TEMPLATE_NAME_MAX || !(isalpha ((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (i = 1; i < n; i++)
        if (!(isalnum ((unsigned char)s[i]) || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static bool
s_word_is (const s_word_t *w, const char *word)
{
    return w->key && !w->val && w->keylen == strlen (word) && memcmp (w->key, word, w->keylen) == 0;
}

/* The end of the quoted text starting at src[at] (the offset of its
 * closing quote), or len when it is never closed. */
static size_t
s_quote_end (const char *src, size_t len, size_t at)
{
    size_t i;
    for (i = at + 1; i < len; i++) {
        if (src[i] == '\\')
            i++;
        else if (src[i] == '"')
            return i;
    }
    return len;
}

/* Splits the tag body src[b, e) into words. */
static int
s_words (s_parser_t *p, size_t b, size_t e, s_word_t *w, int *nw)
{
    size_t i = b;
    *nw = 0;
    while (i < e) {
        s_word_t *cur;
        if (isspace ((unsigned char)p->src[i])) {
            i++;
            continue;
        }
        if (*nw == S_TAG_WORDS_MAX)
            return s_fail (p, i, "more than %d words in one tag", S_TAG_WORDS_MAX);
        cur = &w[(*nw)++];
        memset (cur, 0, sizeof *cur);
        cur->at = i;
        if (p->src[i] != '"') {
            cur->key = p->src + i;
            while (i < e && !isspace ((unsigned char)p->src[i]) && p->src[i] != '=' &&
                   p->src[i] != '"')
                i++;
            cur->keylen = (size_t)(p->src + i - cur->key);
            if (i < e && p->src[i] == '"')
                return s_fail (p, i, "a quote inside a word (a form is written key=\"text\")");
            if (i == e || p->src[i] != '=')
                continue;
            if (cur->keylen == 0)
                return s_fail (p, i, "'=' with no name before it");
            i++;
            if (i == e || isspace ((unsigned char)p->src[i]))
                return s_fail (p, i, "nothing after '='");
        }
        if (p->src[i] == '"') {
            size_t q = s_quote_end (p->src, e, i);
            cur->val = p->src + i + 1;
            cur->vallen = q - i - 1;
            cur->quoted = true;
            i = q + 1;
            if (i < e && !isspace ((unsigned char)p->src[i]))
                return s_fail (p, i, "no space after a quoted text");
            continue;
        }
        cur->val = p->src + i;
        while (i < e && !isspace ((unsigned char)p->src[i]) && p->src[i] != '"')
            i++;
        cur->vallen = (size_t)(p->src + i - cur->val);
        if (i < e && p->src[i] == '"')
            return s_fail (p, i, "a quote inside a value");
    }
    return 0;
}

/* The variable a tag's word names (the word after the keyword). */
static int
s_name_word (s_parser_t *p, const s_word_t *w, int nw, int i, const char *tag, char **out)
{
    if (i >= nw)
        return s_fail (p, w[0].at, "{{%s}} needs a variable's name", tag);
    if (!w[i].key || w[i].val || !s_is_name (w[i].key, w[i].keylen))
        return s_fail (p, w[i].at, "{{%s}}: \"%.*s\" is not a variable's name", tag,
                       (int)(w[i].key ? w[i].keylen : w[i].vallen), w[i].key ? w[i].key : w[i].val);
    *out = s_dup (w[i].key, w[i].keylen);
    if (!*out)
        return s_fail (p, 0, "out of memory");
    return 0;
}

static int
s_tag_plural (s_parser_t *p, const s_word_t *w, int nw)
{
    template_node_t *n = s_add (p, TEMPLATE_N_PLURAL);
    int i, f;
    if (!n)
        return s_fail (p, 0, "out of memory");
    if (s_name_word (p, w, nw, 1, "plural", &n->text) != 0)
        return -1;
    for (i = 2; i < nw; i++) {
        for (f = 0; f < TEMPLATE_NFORMS; f++)
            if (w[i].key && w[i].keylen == strlen (template_form_names[f]) &&
                memcmp (w[i].key, template_form_names[f], w[i].keylen) == 0)
                break;
        if (f == TEMPLATE_NFORMS || !w[i].val || !w[i].quoted)
            return s_fail (p, w[i].at,
                           "{{plural}} takes forms as zero=, one=, two=, few=, many=, other= "
                           "with quoted texts");
        if (n->forms[f])
            return s_fail (p, w[i].at, "{{plural}}: %s= given twice", template_form_names[f]);
        n->forms[f] = s_dup (w[i].val, w[i].vallen);
        if (!n->forms[f])
            return s_fail (p, 0, "out of memory");
    }
    if (!n->forms[TEMPLATE_FORM_OTHER])
        return s_fail (p, w[0].at,
                       "{{plural %s}} has no other= form (every locale may need it: 1.5)", n->text);
    return 0;
}

static int
s_tag_money (s_parser_t *p, const s_word_t *w, int nw)
{
    template_node_t *n = s_add (p, TEMPLATE_N_MONEY);
    if (!n)
        return s_fail (p, 0, "out of memory");
    if (s_name_word (p, w, nw, 1, "money", &n->text) != 0)
        return -1;
    if (nw != 3)
        return s_fail (p, w[0].at,
                       "{{money}} takes an amount in minor units and a currency: "
                       "{{money total_minor currency}}");
    if (!w[2].key && w[2].quoted) {
        if (w[2].vallen != 3 || !isupper ((unsigned char)w[2].val[0]) ||
            !isupper ((unsigned char)w[2].val[1]) || !isupper ((unsigned char)w[2].val[2]))
            return s_fail (p, w[2].at, "{{money}}: \"%.*s\" is not an ISO 4217 code (\"UAH\")",
                           (int)w[2].vallen, w[2].val);
        n->arg_literal = true;
        n->arg = s_dup (w[2].val, 3);
    } else {
        if (!w[2].key || w[2].val || !s_is_name (w[2].key, w[2].keylen))
            return s_fail (p, w[2].at,
                           "{{money}}: the currency is a variable's name or a quoted code");
        n->arg = s_dup (w[2].key, w[2].keylen);
    }
    if (!n->arg)
        return s_fail (p, 0, "out of memory");
    return 0;
}

static int
s_style (s_parser_t *p, const s_word_t *w, UDateFormatStyle *out)
{
    size_t i;
    for (i = 0; i < sizeof s_styles / sizeof s_styles[0]; i++)
        if (w->vallen == strlen (s_styles[i].name) &&
            memcmp (w->val, s_styles[i].name, w->vallen) == 0) {
            *out = s_styles[i].style;
            return 0;
        }
    return s_fail (p, w->at, "{{date}}: %.*s=%.*s is none of none, short, medium, long, full",
                   (int)w->keylen, w->key, (int)w->vallen, w->val);
}

static int
s_tag_date (s_parser_t *p, const s_word_t *w, int nw)
{
    template_node_t *n = s_add (p, TEMPLATE_N_DATE);
    int i;
    if (!n)
        return s_fail (p, 0, "out of memory");
    n->date = UDAT_MEDIUM;
    n->time = UDAT_NONE;
    if (s_name_word (p, w, nw, 1, "date", &n->text) != 0)
        return -1;
    for (i = 2; i < nw; i++) {
        bool is_style = w[i].key && w[i].keylen == 5 && memcmp (w[i].key, "style", 5) == 0;
        bool is_time = w[i].key && w[i].keylen == 4 && memcmp (w[i].key, "time", 4) == 0;
        if ((!is_style && !is_time) || !w[i].val)
            return s_fail (p, w[i].at, "{{date}} takes style= and time=");
        if (s_style (p, &w[i], is_style ? &n->date : &n->time) != 0)
            return -1;
    }
    if (n->date == UDAT_NONE && n->time == UDAT_NONE)
        return s_fail (p, w[0].at, "{{date}} with style=none and time=none shows nothing");
    return 0;
}

static int
s_tag_if (s_parser_t *p, const s_word_t *w, int nw)
{
    template_node_t *n;
    if (p->depth == TEMPLATE_DEPTH_MAX)
        return s_fail (p, w[0].at, "{{#if}} nested deeper than %d", TEMPLATE_DEPTH_MAX);
    n = s_add (p, TEMPLATE_N_IF);
    if (!n)
        return s_fail (p, 0, "out of memory");
    if (s_name_word (p, w, nw, 1, "#if", &n->text) != 0)
        return -1;
    if (nw > 2)
        return s_fail (p, w[2].at, "{{#if}} tests one variable");
    p->open[p->depth] = p->t->count - 1;
    p->open_at[p->depth] = p->tag_at;
    p->has_else[p->depth] = false;
    p->depth++;
    return 0;
}

static int
s_tag_else_end (s_parser_t *p, const s_word_t *w, int nw, bool is_else)
{
    template_node_t *n;
    size_t self;
    if (nw > 1)
        return s_fail (p, w[1].at, "{{%s}} takes nothing more", is_else ? "else" : "/if");
    if (p->depth == 0)
        return s_fail (p, w[0].at, "{{%s}} without an {{#if}}", is_else ? "else" : "/if");
    if (is_else && p->has_else[p->depth - 1])
        return s_fail (p, w[0].at, "a second {{else}} in one {{#if}}");
    n = s_add (p, is_else ? TEMPLATE_N_ELSE : TEMPLATE_N_END);
    if (!n)
        return s_fail (p, 0, "out of memory");
    self = p->t->count - 1;
    /* The #if jumps to its else, or to its end when it has none; the else
     * jumps to the end. */
    if (!p->has_else[p->depth - 1])
        p->t->nodes[p->open[p->depth - 1]].jump = self;
    else {
        size_t i = p->t->nodes[p->open[p->depth - 1]].jump;
        p->t->nodes[i].jump = self;
    }
    if (is_else)
        p->has_else[p->depth - 1] = true;
    else
        p->depth--;
    return 0;
}

/* One tag, its body src[b, e). */
static int
s_tag (s_parser_t *p, size_t b, size_t e)
{
    s_word_t w[S_TAG_WORDS_MAX];
    int nw;
    template_node_t *n;
    p->tag_at = b - 2;
    if (s_words (p, b, e, w, &nw) != 0)
        return -1;
    if (nw == 0)
        return s_fail (p, p->tag_at, "an empty tag {{}}");
    if (!w[0].key) {
        if (nw > 1)
            return s_fail (p, w[1].at, "a quoted text is a tag of its own");
        n = s_add (p, TEMPLATE_N_TEXT);
        if (!n)
            return s_fail (p, 0, "out of memory");
        n->text = s_unescape (w[0].val, w[0].vallen, &n->len);
        return n->text ? 0 : s_fail (p, 0, "out of memory");
    }
    if (w[0].val)
        return s_fail (p, w[0].at,
                       "a tag starts with a variable or a word, not %.*s=", (int)w[0].keylen,
                       w[0].key);
    if (s_word_is (&w[0], "#if"))
        return s_tag_if (p, w, nw);
    if (s_word_is (&w[0], "else") || s_word_is (&w[0], "/if"))
        return s_tag_else_end (p, w, nw, s_word_is (&w[0], "else"));
    if (s_word_is (&w[0], "plural"))
        return s_tag_plural (p, w, nw);
    if (s_word_is (&w[0], "money"))
        return s_tag_money (p, w, nw);
    if (s_word_is (&w[0], "date"))
        return s_tag_date (p, w, nw);
    if (w[0].key[0] == '#' || w[0].key[0] == '/')
        return s_fail (p, w[0].at, "unknown block {{%.*s}} (there is {{#if}} ... {{/if}})",
                       (int)w[0].keylen, w[0].key);
    if (!s_is_name (w[0].key, w[0].keylen))
        return s_fail (p, w[0].at, "\"%.*s\" is not a variable's name", (int)w[0].keylen, w[0].key);
    if (nw > 1)
        return s_fail (p, w[1].at, "{{%.*s}} is a variable and takes nothing more",
                       (int)w[0].keylen, w[0].key);
    n = s_add (p, TEMPLATE_N_VAR);
    if (!n)
        return s_fail (p, 0, "out of memory");
    n->text = s_dup (w[0].key, w[0].keylen);
    return n->text ? 0 : s_fail (p, 0, "out of memory");
}

template_t *
template_parse (const char *src, size_t len, template_error_t *err)
{
    s_parser_t p;
    size_t i = 0;

    memset (&p, 0, sizeof p);
    p.src = src;
    p.len = len;
    p.err = err;
    if (err)
        memset (err, 0, sizeof *err);
    if (len > TEMPLATE_SOURCE_MAX) {
        s_fail (&p, 0, "longer than %d bytes", TEMPLATE_SOURCE_MAX);
        return NULL;
    }
    if (rt_utf8_bad_at (src, len, false) != len) {
        s_fail (&p, rt_utf8_bad_at (src, len, false), "not UTF-8 text (or a NUL byte)");
        return NULL;
    }
    p.t = calloc (1, sizeof *p.t);
    if (!p.t) {
        s_fail (&p, 0, "out of memory");
        return NULL;
    }
    while (i < len) {
        const char *open = len - i >= 2 ? memmem (src + i, len - i, "{{", 2) : NULL;
        size_t at = open ? (size_t)(open - src) : len, b, e;
        if (at > i) {
            template_node_t *n = s_add (&p, TEMPLATE_N_TEXT);
            if (!n) {
                s_fail (&p, 0, "out of memory");
                goto fail;
            }
            n->text = s_dup (src + i, at - i);
            n->len = at - i;
            if (!n->text) {
                s_fail (&p, 0, "out of memory");
                goto fail;
            }
        }
        if (at == len)
            break;
        /* The tag's end: the first }} outside a quoted text. */
        b = at + 2;
        for (e = b; e < len; e++) {
            if (src[e] == '"') {
                size_t q = s_quote_end (src, len, e);
                if (q == len) {
                    s_fail (&p, e, "a quoted text that never ends");
                    goto fail;
                }
                e = q;
            } else if (src[e] == '}' && e + 1 < len && src[e + 1] == '}')
                break;
        }
        if (e >= len) {
            s_fail (&p, at, "{{ is never closed by }}");
            goto fail;
        }
        if (s_tag (&p, b, e) != 0)
            goto fail;
        i = e + 2;
    }
    if (p.depth > 0) {
        s_fail (&p, p.open_at[p.depth - 1], "{{#if}} opened here is never closed by {{/if}}");
        goto fail;
    }
    return p.t;
fail:
    template_destroy (&p.t);
    return NULL;
}

void
template_destroy (template_t **self_p)
{
    template_t *t;
    size_t i;
    int f;
    if (!self_p || !*self_p)
        return;
    t = *self_p;
    for (i = 0; i < t->count; i++) {
        free (t->nodes[i].text);
        free (t->nodes[i].arg);
        for (f = 0; f < TEMPLATE_NFORMS; f++)
            free (t->nodes[i].forms[f]);
    }
    free (t->nodes);
    free (t);
    *self_p = NULL;
}

void
template_error_format (const template_error_t *err, char *out, size_t outlen)
{
    snprintf (out, outlen, "line %d, column %d: %s", err->line, err->column, err->message);
}
