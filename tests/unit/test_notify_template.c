/*
 * test_notify_template: notifyd's templates (services/notify/template),
 * without a database.
 *
 * What a customer and a template's author notice: the right plural form
 * of "бал" in Ukrainian, "балл" in Russian and "point" in English, for 1,
 * 2, 5, 11, 21, 22, 25 and 1.5 (CLDR's rules as ICU carries them); money
 * and dates as each locale writes them, a date in the customer's own time
 * zone; conditional parts; a missing variable named, never left blank;
 * HTML escaped in the HTML part of an e-mail and nowhere else; a malformed
 * template refused with the line and column of the mistake; output that
 * cannot grow past its bound; and the locale fallback that decides which
 * stored variant a customer gets.
 *
 * ICU's spaces: money is written with U+00A0 (no-break space) between the
 * amount and the symbol, and between thousands in uk; the expected texts
 * below spell it NBSP; dates in uk and ru have U+202F (narrow no-break
 * space) before "р." and "г.", spelt NNBSP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

#define NBSP  "\xc2\xa0"
#define NNBSP "\xe2\x80\xaf"

/* Friday 9 January 2026, 17:00 in Kyiv (UTC+2): 15:00 UTC. */
#define FRI_1700_KYIV "1767970800000"
/* Friday 9 January 2026, 22:30 UTC: already Saturday in Kyiv. */
#define FRI_2230_UTC "1767997800000"

static template_t *
s_parse (const char *src)
{
    template_error_t err;
    template_t *t = template_parse (src, strlen (src), &err);
    if (!t)
        fail_msg ("\"%s\" did not parse: line %d, column %d: %s", src, err.line, err.column,
                  err.message);
    return t;
}

/* Renders src with the variables (name, value, ..., NULL); the output, or
 * NULL with the reason in err. Owned. */
static char *
s_render_ctx (const char *src, const char *locale, const char *zone, bool html, size_t max_out,
              char *err, size_t errlen, const char *first, va_list ap)
{
    template_var_t vars[16];
    size_t n = 0;
    template_t *t = s_parse (src);
    template_ctx_t ctx = {.locale = locale, .zone = zone, .html = html, .max_out = max_out};
    rt_buf_t out = {0};
    char *text = NULL;
    for (const char *name = first; name && n < 16; name = va_arg (ap, const char *)) {
        vars[n].name = name;
        vars[n].value = va_arg (ap, const char *);
        n++;
    }
    ctx.vars = vars;
    ctx.nvars = n;
    err[0] = '\0';
    if (template_render (t, &ctx, &out, err, errlen) == 0)
        text = strdup (out.data ? out.data : "");
    rt_buf_free (&out);
    template_destroy (&t);
    return text;
}

/* Renders as plain text in Europe/Kyiv; fails the test on an error. */
static char *
s_render (const char *src, const char *locale, const char *first, ...)
{
    char err[256];
    char *text;
    va_list ap;
    va_start (ap, first);
    text = s_render_ctx (src, locale, "Europe/Kyiv", false, 0, err, sizeof err, first, ap);
    va_end (ap);
    if (!text)
        fail_msg ("\"%s\" in %s: %s", src, locale, err);
    return text;
}

/* Renders expecting a failure; its reason into err. */
static void
s_render_fails (const char *src, const char *locale, const char *zone, char *err, size_t errlen,
                const char *first, ...)
{
    char *text;
    va_list ap;
    va_start (ap, first);
    text = s_render_ctx (src, locale, zone, false, 0, err, errlen, first, ap);
    va_end (ap);
    if (text)
        fail_msg ("\"%s\" rendered \"%s\"; wanted a failure", src, text);
}

static void
s_expect (const char *src, const char *locale, const char *var, const char *value, const char *want)
{
    char *got = s_render (src, locale, var, value, NULL);
    if (strcmp (got, want) != 0)
        fail_msg ("%s with %s=%s in %s: got \"%s\", wanted \"%s\"", src, var, value, locale, got,
                  want);
    free (got);
}

/* --- plurals --- */

#define UK_POINTS "{{plural n one=\"# бал\" few=\"# бали\" many=\"# балів\" other=\"# бала\"}}"
#define RU_POINTS "{{plural n one=\"# балл\" few=\"# балла\" many=\"# баллов\" other=\"# балла\"}}"
#define EN_POINTS "{{plural n one=\"# point\" other=\"# points\"}}"

static void
test_plural_uk (void **state)
{
    (void)state;
    s_expect (UK_POINTS, "uk", "n", "1", "1 бал");
    s_expect (UK_POINTS, "uk", "n", "2", "2 бали");
    s_expect (UK_POINTS, "uk", "n", "5", "5 балів");
    s_expect (UK_POINTS, "uk", "n", "11", "11 балів");
    s_expect (UK_POINTS, "uk", "n", "21", "21 бал");
    s_expect (UK_POINTS, "uk", "n", "22", "22 бали");
    s_expect (UK_POINTS, "uk", "n", "25", "25 балів");
    s_expect (UK_POINTS, "uk", "n", "0", "0 балів");
    /* A fraction is "other" in Ukrainian, and written with a comma. */
    s_expect (UK_POINTS, "uk", "n", "1.5", "1,5 бала");
    s_expect (UK_POINTS, "uk-UA", "n", "21", "21 бал");
}

static void
test_plural_ru (void **state)
{
    (void)state;
    s_expect (RU_POINTS, "ru", "n", "1", "1 балл");
    s_expect (RU_POINTS, "ru", "n", "2", "2 балла");
    s_expect (RU_POINTS, "ru", "n", "5", "5 баллов");
    s_expect (RU_POINTS, "ru", "n", "11", "11 баллов");
    s_expect (RU_POINTS, "ru", "n", "21", "21 балл");
    s_expect (RU_POINTS, "ru", "n", "22", "22 балла");
    s_expect (RU_POINTS, "ru", "n", "25", "25 баллов");
    s_expect (RU_POINTS, "ru", "n", "1.5", "1,5 балла");
}

static void
test_plural_en (void **state)
{
    (void)state;
    s_expect (EN_POINTS, "en", "n", "1", "1 point");
    s_expect (EN_POINTS, "en", "n", "2", "2 points");
    s_expect (EN_POINTS, "en", "n", "5", "5 points");
    s_expect (EN_POINTS, "en", "n", "11", "11 points");
    s_expect (EN_POINTS, "en", "n", "21", "21 points");
    s_expect (EN_POINTS, "en", "n", "22", "22 points");
    s_expect (EN_POINTS, "en", "n", "25", "25 points");
    s_expect (EN_POINTS, "en", "n", "1.5", "1.5 points");
    /* Big numbers as the locale groups them. */
    s_expect (EN_POINTS, "en", "n", "12500", "12,500 points");
    s_expect (UK_POINTS, "uk", "n", "12500", "12" NBSP "500 балів");
}

static void
test_plural_forms (void **state)
{
    (void)state;
    /* A category the template lacks takes other=; \# is a literal #. */
    s_expect ("{{plural n one=\"# бал\" other=\"# (\\#балів)\"}}", "uk", "n", "5", "5 (#балів)");
    s_expect ("{{plural n one=\"\\\"#\\\" бал\" other=\"x\"}}", "uk", "n", "1", "\"1\" бал");
    /* Around text and other tags. */
    s_expect ("Маєте " UK_POINTS "!", "uk", "n", "22", "Маєте 22 бали!");
}

/* --- money --- */

static void
test_money (void **state)
{
    char *got;
    (void)state;
    got = s_render ("{{money total_minor currency}}", "uk", "total_minor", "12345", "currency",
                    "UAH", NULL);
    assert_string_equal (got, "123,45" NBSP "₴");
    free (got);
    got = s_render ("{{money total_minor currency}}", "en", "total_minor", "12345", "currency",
                    "UAH", NULL);
    assert_string_equal (got, "UAH" NBSP "123.45");
    free (got);
    got = s_render ("{{money total_minor currency}}", "ru", "total_minor", "12345", "currency",
                    "RUB", NULL);
    assert_string_equal (got, "123,45" NBSP "₽");
    free (got);
    got = s_render ("{{money t \"USD\"}}", "en", "t", "123456750", NULL);
    assert_string_equal (got, "$1,234,567.50");
    free (got);
    /* Cents below one unit, and a currency without minor units. */
    got = s_render ("{{money t \"USD\"}}", "en", "t", "5", NULL);
    assert_string_equal (got, "$0.05");
    free (got);
    got = s_render ("{{money t \"JPY\"}}", "en", "t", "1234", NULL);
    assert_string_equal (got, "¥1,234");
    free (got);
    got = s_render ("{{money t \"UAH\"}}", "uk", "t", "-250", NULL);
    assert_non_null (strstr (got, "2,50" NBSP "₴"));
    assert_true (strcmp (got, "2,50" NBSP "₴") != 0); /* the sign is shown */
    free (got);
}

static void
test_money_bad (void **state)
{
    char err[256];
    (void)state;
    s_render_fails ("{{money t \"UAH\"}}", "uk", NULL, err, sizeof err, "t", "123.45", NULL);
    assert_non_null (strstr (err, "minor units"));
    s_render_fails ("{{money t c}}", "uk", NULL, err, sizeof err, "t", "100", "c", "uah", NULL);
    assert_non_null (strstr (err, "ISO 4217"));
    s_render_fails ("{{money t c}}", "uk", NULL, err, sizeof err, "t", "100", "c", "QQQ", NULL);
    assert_non_null (strstr (err, "QQQ"));
    s_render_fails ("{{money t c}}", "uk", NULL, err, sizeof err, "t", "100", NULL);
    assert_string_equal (err, "missing variable \"c\"");
}

/* --- dates --- */

static void
test_dates (void **state)
{
    char err[256];
    char *got;
    (void)state;
    s_expect ("{{date at}}", "uk", "at", FRI_1700_KYIV, "9 січ. 2026" NNBSP "р.");
    s_expect ("{{date at style=medium}}", "ru", "at", FRI_1700_KYIV, "9 янв. 2026" NNBSP "г.");
    s_expect ("{{date at style=medium}}", "en", "at", FRI_1700_KYIV, "Jan 9, 2026");
    s_expect ("{{date at style=long time=short}}", "uk", "at", FRI_1700_KYIV,
              "9 січня 2026" NNBSP "р. о 17:00");
    s_expect ("{{date at style=none time=short}}", "ru", "at", FRI_1700_KYIV, "17:00");
    /* The customer's zone decides the day: Saturday in Kyiv, still
     * Friday in New York. */
    s_expect ("{{date at style=short}}", "uk", "at", FRI_2230_UTC, "10.01.26");
    {
        template_t *t = s_parse ("{{date at style=long}}");
        template_var_t v = {"at", FRI_2230_UTC};
        template_ctx_t ctx = {.locale = "en", .zone = "America/New_York", .vars = &v, .nvars = 1};
        rt_buf_t out = {0};
        assert_int_equal (template_render (t, &ctx, &out, err, sizeof err), 0);
        got = strdup (out.data);
        rt_buf_free (&out);
        template_destroy (&t);
    }
    assert_string_equal (got, "January 9, 2026");
    free (got);

    /* An unknown zone is refused, not taken for GMT; no zone at all too. */
    s_render_fails ("{{date at}}", "uk", "Europe/Kiyv", err, sizeof err, "at", FRI_1700_KYIV, NULL);
    assert_non_null (strstr (err, "Europe/Kiyv"));
    s_render_fails ("{{date at}}", "uk", NULL, err, sizeof err, "at", FRI_1700_KYIV, NULL);
    assert_non_null (strstr (err, "time zone"));
    s_render_fails ("{{date at}}", "uk", "Europe/Kyiv", err, sizeof err, "at", "2026-01-09", NULL);
    assert_non_null (strstr (err, "unix milliseconds"));
}

/* --- conditionals and variables --- */

#define VIP "{{#if vip}}VIP {{name}}{{else}}{{name}}{{/if}}"

static void
test_conditionals (void **state)
{
    char *got;
    (void)state;
    got = s_render (VIP, "uk", "vip", "1", "name", "Олена", NULL);
    assert_string_equal (got, "VIP Олена");
    free (got);
    got = s_render (VIP, "uk", "vip", "0", "name", "Олена", NULL);
    assert_string_equal (got, "Олена");
    free (got);
    got = s_render (VIP, "uk", "vip", "", "name", "Олена", NULL);
    assert_string_equal (got, "Олена");
    free (got);
    /* Missing is false, not an error. */
    got = s_render (VIP, "uk", "name", "Олена", NULL);
    assert_string_equal (got, "Олена");
    free (got);
    /* No else; nested; the untaken part's variables are not needed. */
    got = s_render ("a{{#if x}}b{{#if y}}c{{missing}}{{/if}}d{{/if}}e", "uk", "x", "yes", NULL);
    assert_string_equal (got, "abde");
    free (got);
    got = s_render ("a{{#if x}}b{{#if y}}c{{else}}C{{/if}}d{{else}}D{{/if}}e", "uk", "x", "1", "y",
                    "1", NULL);
    assert_string_equal (got, "abcde");
    free (got);
    got =
        s_render ("a{{#if x}}b{{#if y}}c{{else}}C{{/if}}d{{else}}D{{/if}}e", "uk", "y", "1", NULL);
    assert_string_equal (got, "aDe");
    free (got);
    /* Spaces inside tags, and a literal {{. */
    got = s_render ("{{ #if  x }}{{ name }}{{ /if }} {{\"{{\"}}", "uk", "x", "true", "name", "N",
                    NULL);
    assert_string_equal (got, "N {{");
    free (got);
}

static void
test_missing_variable (void **state)
{
    char err[256];
    (void)state;
    s_render_fails ("Вітаємо, {{first_name}}! У вас " UK_POINTS ".", "uk", "Europe/Kyiv", err,
                    sizeof err, "n", "5", NULL);
    assert_string_equal (err, "missing variable \"first_name\"");
    s_render_fails (UK_POINTS, "uk", "Europe/Kyiv", err, sizeof err, "first_name", "x", NULL);
    assert_string_equal (err, "missing variable \"n\"");
    s_render_fails (UK_POINTS, "uk", "Europe/Kyiv", err, sizeof err, "n", "five", NULL);
    assert_non_null (strstr (err, "not a number"));
    /* An empty value is given, so it renders empty: only absence fails. */
    {
        char *got = s_render ("[{{x}}]", "uk", "x", "", NULL);
        assert_string_equal (got, "[]");
        free (got);
    }
}

static void
test_html_escaping (void **state)
{
    const char *src = "<p>Hi {{name}}, {{plural n one=\"<b>#</b> point\" other=\"<b>#</b> "
                      "points\"}}</p>";
    const char *name = "<script>alert(\"x\")</script> & 'Co'";
    char err[256];
    char *got;
    (void)state;
    {
        template_t *t = s_parse (src);
        template_var_t v[2] = {{"name", name}, {"n", "2"}};
        template_ctx_t ctx = {.locale = "en", .vars = v, .nvars = 2, .html = true};
        rt_buf_t out = {0};
        assert_int_equal (template_render (t, &ctx, &out, err, sizeof err), 0);
        /* The variable escaped; the template's own markup kept. */
        assert_string_equal (out.data,
                             "<p>Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; "
                             "&#39;Co&#39;, <b>2</b> points</p>");
        rt_buf_reset (&out);
        /* The text part of the same e-mail is never escaped. */
        ctx.html = false;
        assert_int_equal (template_render (t, &ctx, &out, err, sizeof err), 0);
        assert_string_equal (out.data,
                             "<p>Hi <script>alert(\"x\")</script> & 'Co', <b>2</b> points</p>");
        rt_buf_free (&out);
        template_destroy (&t);
    }
    got = s_render ("Tom & Jerry: {{x}}", "en", "x", "a < b & c", NULL);
    assert_string_equal (got, "Tom & Jerry: a < b & c");
    free (got);
}

/* --- malformed templates --- */

typedef struct {
    const char *src;  /* the template */
    int line, column; /* where the mistake is reported */
    const char *says; /* a part of the message */
} s_bad_t;

static void
test_malformed (void **state)
{
    static const s_bad_t cases[] = {
        {"Hello {{name", 1, 7, "never closed"},
        {"Hello {{name}", 1, 7, "never closed"},
        {"a\n{{#if x}}b", 2, 1, "never closed by {{/if}}"},
        {"a {{/if}}", 1, 5, "without an {{#if}}"},
        {"{{else}}", 1, 3, "without an {{#if}}"},
        {"{{#if a}}{{else}}{{else}}{{/if}}", 1, 20, "second {{else}}"},
        {"line one\nx {{plural n one=\"#\"}}", 2, 5, "other="},
        {"{{plural n one=# other=\"#\"}}", 1, 12, "quoted"},
        {"{{plural n one=\"a\" one=\"b\" other=\"c\"}}", 1, 20, "twice"},
        {"{{plural}}", 1, 3, "needs a variable"},
        {"{{money total}}", 1, 3, "currency"},
        {"{{money t \"UA\"}}", 1, 11, "ISO 4217"},
        {"\n\n  {{date at style=huge}}", 3, 13, "huge"},
        {"{{date at style=none}}", 1, 3, "shows nothing"},
        {"{{bad-name}}", 1, 3, "not a variable's name"},
        {"{{#each items}}{{/each}}", 1, 3, "unknown block"},
        {"{{}}", 1, 1, "empty tag"},
        {"ok\n  {{ \"unterminated }}", 2, 6, "never ends"},
        {"{{name extra}}", 1, 8, "takes nothing more"},
        /* Columns count characters, not bytes. */
        {"Привіт, {{ім'я}}", 1, 11, "not a variable's name"},
        {"Привіт {{name", 1, 8, "never closed"},
        {"{{#if a}}{{#if b}}{{#if c}}{{#if d}}{{#if e}}{{#if f}}{{#if g}}{{#if h}}{{#if i}}", 1, 75,
         "deeper than 8"},
    };
    template_error_t err;
    char text[400];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        template_t *t = template_parse (cases[i].src, strlen (cases[i].src), &err);
        if (t)
            fail_msg ("\"%s\" parsed; wanted an error", cases[i].src);
        if (err.line != cases[i].line || err.column != cases[i].column ||
            !strstr (err.message, cases[i].says))
            fail_msg ("\"%s\": line %d, column %d: \"%s\"; wanted line %d, column %d saying "
                      "\"%s\"",
                      cases[i].src, err.line, err.column, err.message, cases[i].line,
                      cases[i].column, cases[i].says);
    }
    /* The form retainctl prints. */
    assert_null (template_parse ("a\n {{x", 6, &err));
    template_error_format (&err, text, sizeof text);
    assert_string_equal (text, "line 2, column 2: {{ is never closed by }}");
    /* Not UTF-8, and too long a source. */
    assert_null (template_parse ("ab\xff", 3, &err));
    assert_int_equal (err.offset, 2);
    {
        size_t n = TEMPLATE_SOURCE_MAX + 1;
        char *big = malloc (n);
        assert_non_null (big);
        memset (big, 'a', n);
        assert_null (template_parse (big, n, &err));
        assert_non_null (strstr (err.message, "longer than"));
        /* At the bound it parses. */
        {
            template_t *t = template_parse (big, n - 1, &err);
            assert_non_null (t);
            template_destroy (&t);
        }
        free (big);
    }
    /* Eight deep is allowed. */
    {
        template_t *t = s_parse ("{{#if a}}{{#if b}}{{#if c}}{{#if d}}{{#if e}}{{#if f}}{{#if "
                                 "g}}{{#if h}}x{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/"
                                 "if}}{{/if}}");
        template_destroy (&t);
    }
}

/* --- bounds --- */

static void
test_output_bound (void **state)
{
    char err[256];
    char *big, *got;
    (void)state;
    big = malloc (TEMPLATE_OUT_MAX + 2);
    assert_non_null (big);
    memset (big, 'x', TEMPLATE_OUT_MAX + 1);
    big[TEMPLATE_OUT_MAX + 1] = '\0';
    s_render_fails ("{{v}}", "en", NULL, err, sizeof err, "v", big, NULL);
    assert_non_null (strstr (err, "longer than 65536 bytes"));
    /* Exactly at the bound is fine. */
    big[TEMPLATE_OUT_MAX] = '\0';
    got = s_render ("{{v}}", "en", "v", big, NULL);
    assert_int_equal (strlen (got), TEMPLATE_OUT_MAX);
    free (got);
    free (big);
    /* A caller's own bound, passed by escaping in the HTML part. */
    {
        template_t *t = s_parse ("<b>{{v}}</b>");
        template_var_t v = {"v", "&&&&"};
        template_ctx_t ctx = {.locale = "en", .vars = &v, .nvars = 1, .max_out = 27};
        rt_buf_t out = {0};
        assert_int_equal (template_render (t, &ctx, &out, err, sizeof err), 0);
        rt_buf_reset (&out);
        ctx.html = true; /* 3 + 4 * 5 + 4 = 27: fits */
        assert_int_equal (template_render (t, &ctx, &out, err, sizeof err), 0);
        rt_buf_reset (&out);
        ctx.max_out = 26;
        assert_int_equal (template_render (t, &ctx, &out, err, sizeof err), -1);
        assert_non_null (strstr (err, "longer than 26 bytes"));
        rt_buf_free (&out);
        template_destroy (&t);
    }
}

/* --- locale fallback --- */

static void
test_pick (void **state)
{
    static const template_variant_t v[] = {
        {"uk", "default"}, {"uk", "sms"}, {"ru", "sms"}, {"en", "default"}, {"en-GB", "email"},
    };
    static const template_variant_t ru_only[] = {{"ru", "sms"}};
    char loc[32];
    (void)state;
    /* The customer's language, the channel's variant first. */
    assert_int_equal (template_pick (v, 5, "sms", "uk", NULL), 1);
    assert_int_equal (template_pick (v, 5, "telegram", "uk", NULL), 0);
    assert_int_equal (template_pick (v, 5, "sms", "uk-UA", NULL), 1);
    assert_int_equal (template_pick (v, 5, "sms", "UK_ua", NULL), 1);
    /* Russian has only an SMS variant: an e-mail falls back along the
     * chain, to Ukrainian's default. */
    assert_int_equal (template_pick (v, 5, "sms", "ru", NULL), 2);
    assert_int_equal (template_pick (v, 5, "email", "ru", NULL), 0);
    /* A region's own variant, else its language's. */
    assert_int_equal (template_pick (v, 5, "email", "en-GB", NULL), 4);
    assert_int_equal (template_pick (v, 5, "telegram", "en-GB", NULL), 3);
    /* Unknown and unmatched locales go down the chain, in its order. */
    assert_int_equal (template_pick (v, 5, "telegram", "de", NULL), 0);
    assert_int_equal (template_pick (v, 5, "telegram", "de", "en, uk"), 3);
    assert_int_equal (template_pick (v, 5, "telegram", "", "pl,en"), 3);
    assert_int_equal (template_pick (v, 5, NULL, NULL, NULL), 0);
    /* Nothing: -1. */
    assert_int_equal (template_pick (ru_only, 1, "email", "ru", "ru"), -1);
    assert_int_equal (template_pick (ru_only, 1, "sms", "uk", "uk,en"), -1);
    assert_int_equal (template_pick (ru_only, 1, "sms", "uk", NULL), 0);
    assert_int_equal (template_pick (v, 0, "sms", "uk", NULL), -1);

    template_render_locale ("uk", "uk-UA", loc, sizeof loc);
    assert_string_equal (loc, "uk-UA");
    template_render_locale ("en", "uk-UA", loc, sizeof loc);
    assert_string_equal (loc, "en");
    template_render_locale ("uk", "ukr", loc, sizeof loc);
    assert_string_equal (loc, "uk");
    template_render_locale ("uk", "", loc, sizeof loc);
    assert_string_equal (loc, "uk");

    assert_int_equal (template_locale_check ("uk"), 0);
    assert_int_equal (template_locale_check ("en-US"), 0);
    assert_int_equal (template_locale_check ("sr-Latn-RS"), 0);
    assert_int_equal (template_locale_check ("u"), -1);
    assert_int_equal (template_locale_check ("english"), -1);
    assert_int_equal (template_locale_check ("uk-"), -1);
    assert_int_equal (template_locale_check ("uk UA"), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_plural_uk),
        cmocka_unit_test (test_plural_ru),
        cmocka_unit_test (test_plural_en),
        cmocka_unit_test (test_plural_forms),
        cmocka_unit_test (test_money),
        cmocka_unit_test (test_money_bad),
        cmocka_unit_test (test_dates),
        cmocka_unit_test (test_conditionals),
        cmocka_unit_test (test_missing_variable),
        cmocka_unit_test (test_html_escaping),
        cmocka_unit_test (test_malformed),
        cmocka_unit_test (test_output_bound),
        cmocka_unit_test (test_pick),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
