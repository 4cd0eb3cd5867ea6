/*
 * mime reply: the quoted reply cut off below the new text, so that an
 * agent reads what the customer wrote this time (see mime_int.h).
 *
 * A cut is made at the first of: an attribution ("On ... wrote:" and its
 * translations, over up to three wrapped lines), an "-----Original
 * Message-----" line, an Outlook reply header ("From:" then "Sent:"), or a
 * trailing block of "> " lines with the attribution above it. Only a cut
 * with something of the sender's own above it counts: a message that
 * starts with a quote (bottom posting, a bare forward) is kept whole.
 * Markers are matched in the languages customers write in (English,
 * Ukrainian, Russian, and the main Western European ones).
 */
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"

typedef struct {
    const char *p; /* the line, without its "\n" */
    size_t n;      /* its length */
} s_tline_t;

static bool
s_blank (const s_tline_t *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        if (!mime_is_space (l->p[i]))
            return false;
    }
    return true;
}

static bool
s_quoted (const s_tline_t *l)
{
    const char *p = l->p;
    size_t n = l->n;
    mime_trim (&p, &n);
    return n > 0 && p[0] == '>';
}

static bool
s_has_char (const char *p, size_t n, char c)
{
    return memchr (p, c, n) != NULL;
}

static bool
s_has_digit (const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (mime_is_digit (p[i]))
            return true;
    }
    return false;
}

/* The next non-blank line after i is quoted. */
static bool
s_quote_follows (const s_tline_t *l, size_t nl, size_t i)
{
    for (i++; i < nl; i++) {
        if (!s_blank (&l[i]))
            return s_quoted (&l[i]);
    }
    return false;
}

/* Ends of attribution lines: "On <date>, <name> wrote:" and its
 * translations, Gmail's Ukrainian "... пише:" and Russian
 * "... написал(а):", Thunderbird's Russian "... пишет:". */
static bool
s_attribution_end (const char *p, size_t n)
{
    static const char *const ends[] = {
        "wrote:",    "writes:",  "пише:",       "пишет:",   "написал(а):", "написал:",
        "написала:", "schrieb:", "a écrit :",   "a écrit:", "escribió:",   "scrisse:",
        "schreef:",  "napisał:", "napisał(a):", NULL};
    const char *const *e;
    for (e = ends; *e; e++) {
        if (mime_suffix (p, n, *e))
            return true;
    }
    return false;
}

/* Beginnings that mark a line as the start of an attribution even when
 * it wraps ("On Mon, 15 Jan 2024 at 10:00, John Smith <\njohn@x> wrote:"). */
static bool
s_attribution_start (const char *p, size_t n)
{
    static const char *const starts[] = {"On ", "Am ", "Le ", "El ", "Il ", "Op ", "W dniu ", NULL};
    const char *const *s;
    if (n > 0 && mime_is_digit (p[0]))
        return true;
    for (s = starts; *s; s++) {
        if (mime_prefix (p, n, *s))
            return true;
    }
    /* Cyrillic week-day abbreviations Gmail starts with: "пн, " ... "нд, " */
    if (n >= 5 && (unsigned char)p[0] >= 0xD0 && (unsigned char)p[0] <= 0xD1 &&
        (unsigned char)p[2] >= 0xD0 && (unsigned char)p[2] <= 0xD1 && p[4] == ',')
        return true;
    return false;
}

/* How many lines (1-3) starting at i form an attribution, 0 when none. */
static size_t
s_attribution (const s_tline_t *l, size_t nl, size_t i)
{
    const char *p = l[i].p;
    size_t n = l[i].n, k;
    mime_trim (&p, &n);
    if (n == 0 || p[0] == '>')
        return 0;
    if (s_attribution_end (p, n)) {
        if (s_attribution_start (p, n) || s_quote_follows (l, nl, i) || s_has_char (p, n, '@'))
            return 1;
        return 0;
    }
    /* Gmail in Russian ends the attribution with the address alone:
     * "пн, 15 янв. 2024 г. в 10:00, Иван <ivan@example.com>:". */
    if (mime_suffix (p, n, ">:") && s_has_char (p, n, '@') && s_has_digit (p, n) &&
        s_quote_follows (l, nl, i))
        return 1;
    if (!s_attribution_start (p, n))
        return 0;
    for (k = 1; k <= 2 && i + k < nl; k++) {
        const char *q = l[i + k].p;
        size_t m = l[i + k].n;
        mime_trim (&q, &m);
        if (m == 0 || q[0] == '>')
            return 0;
        if (s_attribution_end (q, m) ||
            (mime_suffix (q, m, ">:") && s_has_char (q, m, '@') && s_quote_follows (l, nl, i + k)))
            return k + 1;
    }
    return 0;
}

/* "-----Original Message-----" and its translations. */
static bool
s_original_message (const s_tline_t *l)
{
    static const char *const marks[] = {"Original Message",     "Ursprüngliche Nachricht",
                                        "Исходное сообщение",   "Оригинальное сообщение",
                                        "Вихідне повідомлення", "Message d'origine",
                                        "Mensaje original",     NULL};
    const char *p = l->p;
    size_t n = l->n;
    const char *const *m;
    mime_trim (&p, &n);
    if (n < 3 || p[0] != '-' || p[1] != '-' || p[2] != '-')
        return false;
    for (m = marks; *m; m++) {
        if (mime_find_ci (p, n, *m))
            return true;
    }
    return false;
}

static bool
s_field_line (const s_tline_t *l, const char *const *names)
{
    const char *p = l->p;
    size_t n = l->n;
    mime_trim (&p, &n);
    /* Outlook's HTML renders the names bold; after tag stripping some
     * senders leave "*From:*". */
    while (n > 0 && p[0] == '*') {
        p++;
        n--;
    }
    for (; *names; names++) {
        if (mime_prefix (p, n, *names))
            return true;
    }
    return false;
}

/* Outlook's reply header: "From: ..." then, within a few lines,
 * "Sent: ..." (or "Date:") — in the languages customers write in. */
static bool
s_outlook_header (const s_tline_t *l, size_t nl, size_t i)
{
    static const char *const from[] = {"From:", "От:", "Від:", "Von:", "De:", NULL};
    static const char *const sent[] = {"Sent:",     "Date:",   "Отправлено:", "Дата:", "Надіслано:",
                                       "Gesendet:", "Envoyé:", "Enviado:",    NULL};
    size_t k;
    if (!s_field_line (&l[i], from))
        return false;
    if (mime_find_ci (l[i].p, l[i].n, " Sent:"))
        return true; /* the whole header flattened onto one line */
    for (k = 1; k <= 4 && i + k < nl; k++) {
        if (s_field_line (&l[i + k], sent))
            return true;
    }
    return false;
}

static bool
s_rule_line (const s_tline_t *l)
{
    const char *p = l->p;
    size_t n = l->n, i;
    mime_trim (&p, &n);
    if (n < 5)
        return false;
    for (i = 0; i < n; i++) {
        if (p[i] != '_' && p[i] != '-')
            return false;
    }
    return true;
}

/* Where a trailing block of ">" lines starts (blank lines allowed within),
 * with the attribution line above it when there is one; nl when the text
 * does not end in a quote. */
static size_t
s_trailing_quote (const s_tline_t *l, size_t nl)
{
    size_t j = nl, start = nl, a, back;
    while (j > 0 && (s_quoted (&l[j - 1]) || s_blank (&l[j - 1]))) {
        j--;
        if (s_quoted (&l[j]))
            start = j;
    }
    if (start == nl)
        return nl;
    a = start;
    while (a > 0 && s_blank (&l[a - 1]))
        a--;
    for (back = 1; back <= 3 && back <= a; back++) {
        size_t span = s_attribution (l, nl, a - back);
        if (span > 0 && a - back + span == a)
            return a - back;
    }
    if (a > 0) {
        /* "John Smith <john@example.com>:" and other attributions we have
         * no words for: an address and a colon just above the quote. */
        const char *p = l[a - 1].p;
        size_t n = l[a - 1].n;
        mime_trim (&p, &n);
        if (n > 0 && p[n - 1] == ':' && s_has_char (p, n, '@'))
            return a - 1;
    }
    return start;
}

/* Something of the sender's own stands above line cut: markers alone
 * ("-----Original Message-----" over an Outlook header) do not count. */
static bool
s_own_text_above (const s_tline_t *l, size_t nl, size_t cut)
{
    size_t i;
    for (i = 0; i < cut; i++) {
        if (!s_blank (&l[i]) && !s_quoted (&l[i]) && !s_rule_line (&l[i]) &&
            !s_original_message (&l[i]) && !s_attribution (l, nl, i) &&
            !s_outlook_header (l, nl, i))
            return true;
    }
    return false;
}

/* Where the quoted part of a reply starts (a line index; nl when none). */
static size_t
s_quote_cut (const s_tline_t *l, size_t nl)
{
    size_t i, cut = nl, content = 0, start;
    while (content < nl && (s_blank (&l[content]) || s_quoted (&l[content])))
        content++;
    if (content == nl)
        return nl;
    for (i = content + 1; i < nl; i++) {
        if (s_attribution (l, nl, i) || s_original_message (&l[i]) || s_outlook_header (l, nl, i)) {
            cut = i;
            break;
        }
    }
    start = s_trailing_quote (l, nl);
    if (start < cut && content < start)
        cut = start;
    /* Outlook draws a rule above its header; take it along. */
    if (cut < nl) {
        size_t a = cut;
        while (a > 0 && s_blank (&l[a - 1]))
            a--;
        if (a > 0 && s_rule_line (&l[a - 1]) && a - 1 > content)
            cut = a - 1;
    }
    return s_own_text_above (l, nl, cut) ? cut : nl;
}

char *
mime_reply_strip (const char *full)
{
    size_t n = strlen (full), nl = 0, pos = 0, cut, end;
    s_tline_t *l;
    for (pos = 0; pos < n; pos++) {
        if (full[pos] == '\n')
            nl++;
    }
    nl++;
    l = calloc (nl, sizeof *l);
    if (!l)
        return NULL;
    nl = 0;
    pos = 0;
    while (pos <= n) {
        const char *e = memchr (full + pos, '\n', n - pos);
        size_t end_pos = e ? (size_t)(e - full) : n;
        l[nl].p = full + pos;
        l[nl].n = end_pos - pos;
        nl++;
        pos = end_pos + 1;
    }
    cut = s_quote_cut (l, nl);
    end = cut < nl ? (size_t)(l[cut].p - full) : n;
    free (l);
    while (end > 0 && mime_is_space (full[end - 1]))
        end--;
    if (end == 0)
        end = n;
    return strndup (full, end);
}
