/*
 * template_render: rendering a compiled template and picking the locale's
 * variant (template.h has the contract, template_int.h the compiled form).
 *
 * Rendering is one loop with no recursion, and its cost is bounded by the
 * number of nodes, which the source's size bounds.
 *
 * ICU: numbers go through the number formatter (unumf) as decimal strings,
 * so "1.5" and an amount of 12345 minor units are formatted exactly, and
 * the plural category is chosen from the formatted number
 * (uplrules_selectFormatted), so the form always agrees with the digits
 * shown. ICU answers warnings (U_USING_DEFAULT_WARNING for a locale it
 * carries only through its parent) that are not failures; only
 * U_FAILURE counts. Formatters are opened per rendering, which costs,
 * measured on this machine in an optimised build: a plural 12 us, an
 * amount 12 us, a date 36 us (udat_open), a plain variable nothing to
 * speak of. A cache of formatters per locale and zone is the next step
 * should a campaign's sends per second need it.
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

#define S_UCHARS_MAX 256 /* one formatted number, amount or date */
/* The instants rt_tz handles: years 1 to 9999. */
#define S_MIN_MS (-62135596800000LL)
#define S_MAX_MS 253402300799999LL

/* --- rendering --- */

typedef struct {
    const template_ctx_t *ctx; /* the caller's */
    rt_buf_t *out;             /* where the output goes */
    size_t start;              /* out->len when the rendering began */
    size_t max;                /* the most bytes it may add */
    char *err;                 /* the caller's reason */
    size_t errlen;             /* its size */
} s_render_t;

static int s_rfail (s_render_t *r, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_rfail (s_render_t *r, const char *fmt, ...)
{
    va_list ap;
    if (r->err && r->errlen > 0) {
        va_start (ap, fmt);
        vsnprintf (r->err, r->errlen, fmt, ap);
        va_end (ap);
    }
    return -1;
}

static const char *
s_lookup (const template_ctx_t *ctx, const char *name)
{
    size_t i;
    for (i = 0; i < ctx->nvars; i++)
        if (ctx->vars[i].name && strcmp (ctx->vars[i].name, name) == 0)
            return ctx->vars[i].value ? ctx->vars[i].value : "";
    return NULL;
}

static int
s_need (s_render_t *r, const char *name, const char **value)
{
    *value = s_lookup (r->ctx, name);
    if (!*value)
        return s_rfail (r, "missing variable \"%s\"", name);
    return 0;
}

/* Appends n bytes, escaped for HTML when `escape` and the rendering is
 * the HTML part; fails past the output limit. */
static int
s_emit (s_render_t *r, const char *s, size_t n, bool escape)
{
    size_t i, from = 0;
    if (!escape || !r->ctx->html) {
        if (r->out->len - r->start + n > r->max)
            return s_rfail (r, "the output is longer than %zu bytes", r->max);
        rt_buf_put (r->out, s, n);
        return r->out->failed ? s_rfail (r, "out of memory") : 0;
    }
    for (i = 0; i <= n; i++) {
        const char *rep = NULL;
        if (i < n) {
            switch (s[i]) {
            case '&':
                rep = "&amp;";
                break;
            case '<':
                rep = "&lt;";
                break;
            case '>':
                rep = "&gt;";
                break;
            case '"':
                rep = "&quot;";
                break;
            case '\'':
                rep = "&#39;";
                break;
            default:
                continue;
            }
        }
        if (s_emit (r, s + from, i - from, false) != 0)
            return -1;
        if (rep && s_emit (r, rep, strlen (rep), false) != 0)
            return -1;
        from = i + 1;
    }
    return 0;
}

/* A decimal number: an optional '-', digits, optionally '.' and digits. */
static bool
s_is_decimal (const char *s, bool integer)
{
    size_t i = 0, digits = 0;
    if (s[i] == '-')
        i++;
    for (; isdigit ((unsigned char)s[i]); i++)
        digits++;
    if (digits == 0 || digits > 18)
        return false;
    if (s[i] == '.' && !integer) {
        size_t frac = 0;
        for (i++; isdigit ((unsigned char)s[i]); i++)
            frac++;
        if (frac == 0 || frac > 12)
            return false;
    }
    return s[i] == '\0';
}

/* UTF-16 from ICU into UTF-8, emitted (escaped in HTML). */
static int
s_emit_uchars (s_render_t *r, const UChar *u, int32_t n)
{
    char utf8[S_UCHARS_MAX * 3 + 1];
    int32_t len = 0;
    UErrorCode st = U_ZERO_ERROR;
    u_strToUTF8 (utf8, (int32_t)sizeof utf8, &len, u, n, &st);
    if (U_FAILURE (st))
        return s_rfail (r, "ICU: %s", u_errorName (st));
    return s_emit (r, utf8, (size_t)len, true);
}

/* The number formatted per locale (skeleton "" or "currency/XXX") into
 * u, and, when pr is not NULL, its plural category into *form. */
static int
s_format_number (s_render_t *r, const char *skeleton, const char *decimal, UChar *u, int32_t *un,
                 int *form)
{
    UErrorCode st = U_ZERO_ERROR;
    UChar usk[32];
    UNumberFormatter *f = NULL;
    UFormattedNumber *res = NULL;
    UPluralRules *pr = NULL;
    int rc = -1;

    u_uastrncpy (usk, skeleton, (int32_t)(sizeof usk / sizeof usk[0]));
    f = unumf_openForSkeletonAndLocale (usk, -1, r->ctx->locale, &st);
    res = unumf_openResult (&st);
    unumf_formatDecimal (f, decimal, -1, res, &st);
    *un = unumf_resultToString (res, u, S_UCHARS_MAX, &st);
    if (U_FAILURE (st) || st == U_STRING_NOT_TERMINATED_WARNING) {
        s_rfail (r, "ICU cannot format %s: %s", decimal, u_errorName (st));
        goto cleanup;
    }
    if (form) {
        UChar kw[16];
        char keyword[16];
        int i;
        pr = uplrules_open (r->ctx->locale, &st);
        uplrules_selectFormatted (pr, res, kw, 16, &st);
        if (U_FAILURE (st)) {
            s_rfail (r, "ICU's plural rules for %s: %s", r->ctx->locale, u_errorName (st));
            goto cleanup;
        }
        u_austrncpy (keyword, kw, (int32_t)sizeof keyword);
        keyword[sizeof keyword - 1] = '\0';
        *form = TEMPLATE_FORM_OTHER;
        for (i = 0; i < TEMPLATE_NFORMS; i++)
            if (strcmp (keyword, template_form_names[i]) == 0)
                *form = i;
    }
    rc = 0;
cleanup:
    uplrules_close (pr);
    unumf_closeResult (res);
    unumf_close (f);
    return rc;
}

static int
s_render_plural (s_render_t *r, const template_node_t *n)
{
    const char *v, *text;
    UChar u[S_UCHARS_MAX];
    int32_t un;
    int form;
    size_t i, from = 0, len;

    if (s_need (r, n->text, &v) != 0)
        return -1;
    if (!s_is_decimal (v, false))
        return s_rfail (r, "variable \"%s\" is \"%s\", not a number ({{plural}})", n->text, v);
    if (s_format_number (r, "", v, u, &un, &form) != 0)
        return -1;
    text = n->forms[form] ? n->forms[form] : n->forms[TEMPLATE_FORM_OTHER];
    len = strlen (text);
    for (i = 0; i < len; i++) {
        if (text[i] != '\\' && text[i] != '#')
            continue;
        if (s_emit (r, text + from, i - from, false) != 0)
            return -1;
        if (text[i] == '#') {
            if (s_emit_uchars (r, u, un) != 0)
                return -1;
            from = i + 1;
        } else {
            from = i + 1; /* the escaped character is copied with what follows */
            i++;
        }
    }
    return s_emit (r, text + from, len - from, false);
}

static int
s_render_money (s_render_t *r, const template_node_t *n)
{
    const char *v, *code;
    char decimal[48], skeleton[32];
    UChar ucode[4], u[S_UCHARS_MAX];
    UErrorCode st = U_ZERO_ERROR;
    int32_t un, digits;
    bool negative;
    const char *d;
    size_t nd;

    if (s_need (r, n->text, &v) != 0)
        return -1;
    if (!s_is_decimal (v, true))
        return s_rfail (r, "variable \"%s\" is \"%s\", not an amount in minor units (an integer)",
                        n->text, v);
    if (n->arg_literal)
        code = n->arg;
    else if (s_need (r, n->arg, &code) != 0)
        return -1;
    if (strlen (code) != 3 || !isupper ((unsigned char)code[0]) ||
        !isupper ((unsigned char)code[1]) || !isupper ((unsigned char)code[2]))
        return s_rfail (r, "currency \"%s\" is not an ISO 4217 code (\"UAH\")", code);
    u_uastrncpy (ucode, code, 4);
    if (!ucurr_isAvailable (ucode, U_DATE_MIN, U_DATE_MAX, &st) || U_FAILURE (st))
        return s_rfail (r, "currency \"%s\" is not one ICU knows", code);
    digits = ucurr_getDefaultFractionDigits (ucode, &st);
    if (U_FAILURE (st) || digits < 0 || digits > 4)
        return s_rfail (r, "currency \"%s\": no minor digits known", code);
    /* The minor units as an exact decimal: 12345 with 2 digits is
     * 123.45, 5 is 0.05. */
    negative = v[0] == '-';
    d = v + (negative ? 1 : 0);
    nd = strlen (d);
    if (digits == 0)
        snprintf (decimal, sizeof decimal, "%s", v);
    else if ((int32_t)nd > digits)
        snprintf (decimal, sizeof decimal, "%s%.*s.%s", negative ? "-" : "", (int)(nd - digits), d,
                  d + nd - digits);
    else
        snprintf (decimal, sizeof decimal, "%s0.%.*s%s", negative ? "-" : "",
                  (int)(digits - (int32_t)nd), "0000", d);
    snprintf (skeleton, sizeof skeleton, "currency/%s", code);
    if (s_format_number (r, skeleton, decimal, u, &un, NULL) != 0)
        return -1;
    return s_emit_uchars (r, u, un);
}

static int
s_render_date (s_render_t *r, const template_node_t *n)
{
    const char *v;
    char why[256];
    UChar zone[128], u[S_UCHARS_MAX];
    UErrorCode st = U_ZERO_ERROR;
    UDateFormat *f;
    rt_tz_t *tz;
    long long ms;
    int32_t un;

    if (s_need (r, n->text, &v) != 0)
        return -1;
    if (!s_is_decimal (v, true))
        return s_rfail (r, "variable \"%s\" is \"%s\", not an instant (unix milliseconds)", n->text,
                        v);
    ms = strtoll (v, NULL, 10);
    if (ms < S_MIN_MS || ms > S_MAX_MS)
        return s_rfail (r, "variable \"%s\": %s is outside the years 1 to 9999", n->text, v);
    if (!r->ctx->zone || !*r->ctx->zone)
        return s_rfail (r, "{{date %s}} needs a time zone, and none was given", n->text);
    /* ICU would take an unknown zone for GMT without a word; rt_tz
     * refuses it. */
    tz = rt_tz_new (r->ctx->zone, why, sizeof why);
    if (!tz)
        return s_rfail (r, "{{date %s}}: %s", n->text, why);
    rt_tz_destroy (&tz);
    u_uastrncpy (zone, r->ctx->zone, (int32_t)(sizeof zone / sizeof zone[0]));
    f = udat_open (n->time, n->date, r->ctx->locale, zone, -1, NULL, 0, &st);
    un = udat_format (f, (UDate)ms, u, S_UCHARS_MAX, NULL, &st);
    udat_close (f);
    if (U_FAILURE (st) || st == U_STRING_NOT_TERMINATED_WARNING)
        return s_rfail (r, "ICU cannot format the date %s: %s", v, u_errorName (st));
    return s_emit_uchars (r, u, un);
}

static bool
s_truthy (const char *v)
{
    return v && *v && strcmp (v, "0") != 0 && strcmp (v, "false") != 0;
}

int
template_render (const template_t *t, const template_ctx_t *ctx, rt_buf_t *out, char *err,
                 size_t errlen)
{
    s_render_t r = {.ctx = ctx,
                    .out = out,
                    .start = out->len,
                    .max = ctx->max_out ? ctx->max_out : TEMPLATE_OUT_MAX,
                    .err = err,
                    .errlen = errlen};
    size_t i = 0;
    const char *v;

    if (!ctx->locale || !*ctx->locale)
        return s_rfail (&r, "no locale to render with");
    while (i < t->count) {
        const template_node_t *n = &t->nodes[i];
        switch (n->kind) {
        case TEMPLATE_N_TEXT:
            if (s_emit (&r, n->text, n->len, false) != 0)
                return -1;
            break;
        case TEMPLATE_N_VAR:
            if (s_need (&r, n->text, &v) != 0 || s_emit (&r, v, strlen (v), true) != 0)
                return -1;
            break;
        case TEMPLATE_N_IF:
            if (!s_truthy (s_lookup (ctx, n->text))) {
                /* Past the else, or past the end (which does nothing). */
                i = n->jump + 1;
                continue;
            }
            break;
        case TEMPLATE_N_ELSE:
            i = n->jump + 1;
            continue;
        case TEMPLATE_N_END:
            break;
        case TEMPLATE_N_PLURAL:
            if (s_render_plural (&r, n) != 0)
                return -1;
            break;
        case TEMPLATE_N_MONEY:
            if (s_render_money (&r, n) != 0)
                return -1;
            break;
        case TEMPLATE_N_DATE:
            if (s_render_date (&r, n) != 0)
                return -1;
            break;
        }
        i++;
    }
    return 0;
}

/* --- locales --- */

/* Whether a[0..alen) and b[0..blen) are one locale: no case, '_' as '-'. */
static bool
s_locale_eq (const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i;
    if (alen != blen)
        return false;
    for (i = 0; i < alen; i++) {
        char x = a[i] == '_' ? '-' : (char)tolower ((unsigned char)a[i]);
        char y = b[i] == '_' ? '-' : (char)tolower ((unsigned char)b[i]);
        if (x != y)
            return false;
    }
    return true;
}

/* The variant of locale[0..len): the channel's, else the default; -1. */
static int
s_pick_in (const template_variant_t *v, size_t n, const char *channel, const char *locale,
           size_t len)
{
    int fallback = -1;
    size_t i;
    for (i = 0; i < n; i++) {
        if (!v[i].locale || !s_locale_eq (v[i].locale, strlen (v[i].locale), locale, len))
            continue;
        if (channel && *channel && v[i].variant && strcmp (v[i].variant, channel) == 0)
            return (int)i;
        if (fallback < 0 && v[i].variant && strcmp (v[i].variant, "default") == 0)
            fallback = (int)i;
    }
    return fallback;
}

/* The locale s[0..len) and each shorter form of it ("uk-UA", "uk"). */
static int
s_pick_narrowing (const template_variant_t *v, size_t n, const char *channel, const char *s,
                  size_t len)
{
    while (len > 0) {
        int i = s_pick_in (v, n, channel, s, len);
        if (i >= 0)
            return i;
        while (len > 0 && s[len - 1] != '-' && s[len - 1] != '_')
            len--;
        if (len > 0)
            len--; /* the separator */
    }
    return -1;
}

int
template_pick (const template_variant_t *variants, size_t n, const char *channel,
               const char *locale, const char *chain)
{
    const char *p;
    int i;
    if (locale && *locale) {
        i = s_pick_narrowing (variants, n, channel, locale, strlen (locale));
        if (i >= 0)
            return i;
    }
    for (p = chain ? chain : TEMPLATE_CHAIN_DEFAULT; *p;) {
        const char *end = strchr (p, ',');
        size_t len = end ? (size_t)(end - p) : strlen (p);
        const char *b = p;
        size_t blen = len;
        while (blen > 0 && isspace ((unsigned char)*b)) {
            b++;
            blen--;
        }
        while (blen > 0 && isspace ((unsigned char)b[blen - 1]))
            blen--;
        i = s_pick_narrowing (variants, n, channel, b, blen);
        if (i >= 0)
            return i;
        p += len;
        if (*p == ',')
            p++;
    }
    return -1;
}

void
template_render_locale (const char *picked, const char *customer, char *out, size_t outlen)
{
    size_t pl = strlen (picked);
    if (customer && strlen (customer) >= pl && s_locale_eq (customer, pl, picked, pl) &&
        (customer[pl] == '\0' || customer[pl] == '-' || customer[pl] == '_')) {
        snprintf (out, outlen, "%s", customer);
        return;
    }
    snprintf (out, outlen, "%s", picked);
}

int
template_locale_check (const char *locale)
{
    size_t i = 0, n;
    if (!locale)
        return -1;
    for (n = 0; isalpha ((unsigned char)locale[i]); i++)
        n++;
    if (n < 2 || n > 3)
        return -1;
    while (locale[i]) {
        if (locale[i] != '-' && locale[i] != '_')
            return -1;
        for (i++, n = 0; isalnum ((unsigned char)locale[i]); i++)
            n++;
        if (n < 1 || n > 8)
            return -1;
    }
    return i <= 35 ? 0 : -1;
}

void
template_customer_vars (const template_customer_t *c, template_var_t *vars, size_t *n,
                        char buf[TEMPLATE_CUSTOMER_BUF])
{
    int y, m, d;
    int64_t ms;
    char why[128];
    rt_tz_t *tz;
    if (c->id && *c->id)
        vars[(*n)++] = (template_var_t){"customer.id", c->id};
    if (c->name && *c->name) {
        vars[(*n)++] = (template_var_t){"customer.name", c->name};
        vars[(*n)++] = (template_var_t){"name", c->name};
    }
    buf[0] = '\0';
    if (!c->birthday || sscanf (c->birthday, "%d-%d-%d", &y, &m, &d) != 3 || !c->zone || !*c->zone)
        return;
    tz = rt_tz_new (c->zone, why, sizeof why);
    if (tz && rt_tz_to_unix (tz, y, m, d, 0, 0, 0, &ms) == 0) {
        snprintf (buf, TEMPLATE_CUSTOMER_BUF, "%lld", (long long)ms);
        vars[(*n)++] = (template_var_t){"customer.birthday", buf};
        vars[(*n)++] = (template_var_t){"birthday", buf};
    }
    rt_tz_destroy (&tz);
}
