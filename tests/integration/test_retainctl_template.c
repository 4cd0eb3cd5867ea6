/*
 * retainctl template against a real PostgreSQL, as a template's author
 * uses it: templates added from files in Ukrainian, Russian and English,
 * an SMS variant and an e-mail with a subject and an HTML part; listed;
 * shown as stored; replaced by name, locale and variant; and previewed
 * for customers in crm: the customer's name and locale (the plural of
 * "бал" right for 22, the fallback chain for a German speaker, a regional
 * locale narrowing to its language), dates in the customer's own zone,
 * HTML escaped in the HTML part only, the SMS segment count and encoding,
 * a merged customer followed to the survivor, a shop's customer id. A
 * variant's quiet hours (whether a transactional notification waits them
 * out) set with --quiet-hours, shown by list and show, kept when the
 * variant is replaced without it.
 * Bad input is refused with nothing written: a malformed template exits 2
 * naming the file, line and column; so do a bad locale, an unknown
 * channel, a subject on an SMS, a --quiet-hours other than yes or no. A
 * preview missing a variable, for an
 * unknown customer or template, or with no locale in the chain, exits 1
 * saying which.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "rt_test.h"

#define NNBSP "\xe2\x80\xaf"

/* Customers in crm. */
#define OLENA  "01900000-0000-7000-8000-0000000000a1" /* uk-UA, Kyiv */
#define HANS   "01900000-0000-7000-8000-0000000000a2" /* de, New York, shop id "shop-42" */
#define MERGED "01900000-0000-7000-8000-0000000000a3" /* merged into OLENA */
#define NOBODY "01900000-0000-7000-8000-0000000000ff"
#define TOM    "01900000-0000-7000-8000-0000000000a4" /* en, no zone, a name to escape */

/* Friday 9 January 2026, 22:30 UTC: Saturday 00:30 in Kyiv, Friday 17:30
 * in New York. */
#define FRI_2230_UTC "1767997800000"

#define UK_TEXT                                                                                    \
    "Вітаємо, {{name}}! У вас "                                                         \
    "{{plural points one=\"# бал\" few=\"# бали\" many=\"# балів\" other=\"# бала\"}}.\n"
#define RU_TEXT                                                                                    \
    "Здравствуйте, {{name}}! У вас "                                               \
    "{{plural points one=\"# балл\" few=\"# балла\" many=\"# баллов\" other=\"# балла\"}}.\n"
#define EN_TEXT   "Hi {{name}}, you have {{plural points one=\"# point\" other=\"# points\"}}.\n"
#define SMS_TEXT  "{{name}}: +{{points}} балів"
#define DELIVERED "Delivered {{date at style=long time=short}}."

static struct {
    char dsn[1024]; /* the test's database, migrated */
    PGconn *pg;     /* the test's own look at it */
    int files;      /* numbers the files apart */
} s;

/* A file under the test's folder holding text; its path (static, one of
 * eight in turn). */
static const char *
s_file (const char *text)
{
    static char paths[8][1024];
    char *path = paths[s.files % 8];
    snprintf (path, sizeof paths[0], "%s/template-%d-%d.txt", rt_test_dir (), (int)getpid (),
              s.files++);
    rt_test_file_write (path, text);
    return path;
}

/* Runs retainctl with args (NULL-terminated). */
static rt_test_ctl_t
s_ctl (const char *first, ...)
{
    rt_test_ctl_t r;
    va_list ap;
    va_start (ap, first);
    r = rt_test_retainctl_v (s.dsn, NULL, first, ap);
    va_end (ap);
    return r;
}

/* The run exited with `want` and printed every one of says (NULL-ended). */
static void
s_expect (rt_test_ctl_t r, int want, const char *what, ...)
{
    va_list ap;
    va_start (ap, what);
    rt_test_retainctl_expectv (r, want, what, NULL, ap);
    va_end (ap);
}

static long long
s_count (void)
{
    return rt_test_pg_long (s.pg, "SELECT count(*) FROM notify.templates");
}

static char *
s_written (void)
{
    PGresult *res =
        PQexec (s.pg, "SELECT coalesce(string_agg(name || locale || variant || text"
                      " || coalesce(html, '') || quiet_hours || updated_at, '|'"
                      " ORDER BY name, locale, variant), '') FROM notify.templates"
                      " UNION ALL SELECT coalesce(string_agg(template || locale ||"
                      " wa_name || wa_language || params::text, '|'"
                      " ORDER BY template, locale), '') FROM notify.whatsapp_templates");
    char *v;
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    v = malloc (strlen (PQgetvalue (res, 0, 0)) + strlen (PQgetvalue (res, 1, 0)) + 2);
    sprintf (v, "%s#%s", PQgetvalue (res, 0, 0), PQgetvalue (res, 1, 0));
    PQclear (res);
    return v;
}

static int
s_setup (void **state)
{
    (void)state;
    rt_test_db_create ("retainctl_template", s.dsn, sizeof s.dsn);
    s.pg = rt_test_pg (s.dsn);
    s_expect (s_ctl ("migrate", NULL), 0, "migrate", "notify: ", NULL);
    rt_test_pg_exec (s.pg,
                     "INSERT INTO crm.customers (id, shop_customer_id, name, locale, time_zone,"
                     " birthday, preferred_channel) VALUES"
                     " ('" OLENA "', NULL, 'Олена', 'uk-UA', 'Europe/Kyiv', '1990-05-17', 'sms'),"
                     " ('" HANS "', 'shop-42', 'Hans', 'de', 'America/New_York', NULL, ''),"
                     " ('" MERGED "', NULL, 'Олена (old)', 'ru', 'Europe/Kyiv', NULL, ''),"
                     " ('" TOM "', NULL, 'Tom <b>&</b>', 'en', '', NULL, 'email')");
    rt_test_pg_exec (s.pg,
                     "UPDATE crm.customers SET merged_into = '" OLENA "' WHERE id = '" MERGED "'");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    PQfinish (s.pg);
    return 0;
}

static int
s_clean (void **state)
{
    (void)state;
    rt_test_pg_exec (s.pg, "DELETE FROM notify.templates");
    rt_test_pg_exec (s.pg, "DELETE FROM notify.whatsapp_templates");
    return 0;
}

/* The templates most tests preview. */
static void
s_add_points (void)
{
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "uk", "--text-file",
                     s_file (UK_TEXT), NULL),
              0, "add uk", "template points.earned (uk, default) stored", NULL);
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "ru", "--text-file",
                     s_file (RU_TEXT), NULL),
              0, "add ru", NULL);
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "en", "--text-file",
                     s_file (EN_TEXT), NULL),
              0, "add en", NULL);
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "uk", "--channel",
                     "sms", "--text-file", s_file (SMS_TEXT), NULL),
              0, "add uk sms", "(uk, sms) stored", NULL);
}

static void
test_add_list_show (void **state)
{
    char *out;
    (void)state;
    s_add_points ();
    assert_int_equal (s_count (), 4);
    /* Stored verbatim. */
    {
        PGresult *res = PQexec (s.pg, "SELECT text, subject IS NULL, html IS NULL FROM"
                                      " notify.templates WHERE locale = 'uk' AND variant = "
                                      "'default'");
        assert_int_equal (PQntuples (res), 1);
        assert_string_equal (PQgetvalue (res, 0, 0), UK_TEXT);
        assert_string_equal (PQgetvalue (res, 0, 1), "t");
        assert_string_equal (PQgetvalue (res, 0, 2), "t");
        PQclear (res);
    }

    s_expect (s_ctl ("template", "list", NULL), 0, "list", "points.earned", " en ", " ru ", " uk ",
              " sms ", " default ", NULL);
    s_expect (s_ctl ("template", "show", "--name", "points.earned", NULL), 0, "show",
              "== points.earned (uk, sms)", SMS_TEXT, UK_TEXT, RU_TEXT, EN_TEXT, NULL);
    out = s_ctl ("template", "show", "--name", "points.earned", "--locale", "ru", NULL).out;
    if (strstr (out, "Вітаємо") || !strstr (out, RU_TEXT))
        fail_msg ("show --locale ru:\n%s", out);
    free (out);
    s_expect (s_ctl ("template", "show", "--name", "nothing", NULL), 1, "show unknown",
              "no template \"nothing\"", NULL);

    /* Replaced by name, locale and variant: one row, the new text. An
     * "uk_UA" locale is stored as "uk-UA". */
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "uk", "--text-file",
                     s_file ("Нове: {{points}}"), NULL),
              0, "replace", "(uk, default) replaced", NULL);
    assert_int_equal (s_count (), 4);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM notify.templates WHERE text ="
                                             " 'Нове: {{points}}' AND updated_at > created_at"),
                      1);
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "UK_ua",
                     "--text-file", s_file ("{{points}}"), NULL),
              0, "uk_UA", "(uk-UA, default) stored", NULL);
}

/* The quiet_hours of a variant, "t" or "f" ("" when there is none). */
static char *
s_quiet (const char *locale, const char *variant)
{
    char sql[256];
    PGresult *res;
    char *v;
    snprintf (sql, sizeof sql,
              "SELECT quiet_hours FROM notify.templates WHERE name = 'parcel' AND locale = '%s'"
              " AND variant = '%s'",
              locale, variant);
    res = PQexec (s.pg, sql);
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    v = strdup (PQntuples (res) ? PQgetvalue (res, 0, 0) : "");
    PQclear (res);
    return v;
}

static void
s_assert_quiet (const char *locale, const char *variant, const char *want)
{
    char *v = s_quiet (locale, variant);
    if (strcmp (v, want) != 0)
        fail_msg ("parcel (%s, %s): quiet_hours \"%s\", wanted \"%s\"", locale, variant, v, want);
    free (v);
}

static void
test_quiet_hours (void **state)
{
    char *out;
    (void)state;
    s_expect (s_ctl ("template", "add", "--name", "parcel", "--locale", "uk", "--text-file",
                     s_file ("Посилка вже чекає, {{name}}"), "--quiet-hours", "yes", NULL),
              0, "add quiet", "(uk, default) stored, quiet hours: yes", NULL);
    s_assert_quiet ("uk", "default", "t");
    /* Without the flag: a new variant takes the column's default (no). */
    s_expect (s_ctl ("template", "add", "--name", "parcel", "--locale", "uk", "--channel", "sms",
                     "--text-file", s_file ("Посилка чекає"), NULL),
              0, "add sms", "(uk, sms) stored, quiet hours: no", NULL);
    s_assert_quiet ("uk", "sms", "f");
    /* list and show say which. */
    out = s_ctl ("template", "list", NULL).out;
    if (!strstr (out, "QUIET") || !strstr (out, "uk       default    no    yes ") ||
        !strstr (out, "uk       sms        no    no  "))
        fail_msg ("template list:\n%s", out);
    free (out);
    s_expect (s_ctl ("template", "show", "--name", "parcel", NULL), 0, "show",
              "== parcel (uk, default)", "quiet hours: yes (waits them out)", "== parcel (uk, sms)",
              "quiet hours: no", NULL);
    /* Replaced without the flag: it keeps its own. */
    s_expect (s_ctl ("template", "add", "--name", "parcel", "--locale", "uk", "--text-file",
                     s_file ("Посилка у відділенні, {{name}}"), NULL),
              0, "replace", "(uk, default) replaced, quiet hours: yes", NULL);
    s_assert_quiet ("uk", "default", "t");
    /* And changed with it. */
    s_expect (s_ctl ("template", "add", "--name", "parcel", "--locale", "uk", "--text-file",
                     s_file ("Посилка у відділенні, {{name}}"), "--quiet-hours=no", NULL),
              0, "replace, no", "(uk, default) replaced, quiet hours: no", NULL);
    s_assert_quiet ("uk", "default", "f");
}

static void
test_preview (void **state)
{
    (void)state;
    s_add_points ();
    /* Olena prefers SMS: the SMS variant, and what it costs. */
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", OLENA, "--var",
                     "points=22", NULL),
              0, "preview sms", "(uk, sms)", "Олена: +22 балів",
              "sms: 1 segment, UCS-2, 16 UTF-16 units", NULL);
    /* On Telegram, the default Ukrainian text, with uk's plural of 22
     * (her uk-UA narrowed to uk). */
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", OLENA,
                     "--channel", "telegram", "--var", "points=22", NULL),
              0, "preview telegram", "(uk, default)", "Вітаємо, Олена! У вас 22 бали.", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", OLENA,
                     "--channel", "telegram", "--var=points=21", NULL),
              0, "preview 21", "У вас 21 бал.", NULL);
    /* --var wins over the customer's own name. */
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", OLENA,
                     "--channel", "viber", "--var", "points=5", "--var", "name=пані Олено", NULL),
              0, "preview var name", "Вітаємо, пані Олено! У вас 5 балів.", NULL);
    /* A merged customer previews as the survivor. */
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", MERGED,
                     "--channel", "telegram", "--var", "points=2", NULL),
              0, "preview merged", "Вітаємо, Олена! У вас 2 бали.", NULL);
    /* German is not there: the default chain starts with uk; a chain of
     * the shop's own says English; found by the shop's id. */
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", HANS, "--var",
                     "points=1.5", NULL),
              0, "preview de", "(uk, default)", "У вас 1,5 бала.", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", "shop-42",
                     "--locale-chain", "en,uk", "--var", "points=1", NULL),
              0, "preview de chain en", "(en, default)", "Hi Hans, you have 1 point.", NULL);
}

static void
test_preview_dates_email (void **state)
{
    (void)state;
    s_expect (s_ctl ("template", "add", "--name", "delivered", "--locale", "en", "--text-file",
                     s_file (DELIVERED), NULL),
              0, "add delivered", NULL);
    /* Hans's New York: still Friday. */
    s_expect (s_ctl ("template", "preview", "--name", "delivered", "--customer", HANS, "--var",
                     "at=" FRI_2230_UTC, NULL),
              0, "date New York", "Delivered January 9, 2026 at 5:30" NNBSP "PM.", NULL);
    /* Olena's Kyiv: Saturday, in English (the only locale there is). */
    s_expect (s_ctl ("template", "preview", "--name", "delivered", "--customer", OLENA, "--var",
                     "at=" FRI_2230_UTC, NULL),
              0, "date Kyiv", "Delivered January 10, 2026 at 12:30" NNBSP "AM.", NULL);
    /* Tom has no zone: the default one (--zone) is used. */
    s_expect (s_ctl ("template", "preview", "--name", "delivered", "--customer", TOM, "--zone",
                     "Asia/Tokyo", "--var", "at=" FRI_2230_UTC, NULL),
              0, "date default zone", "zone Asia/Tokyo", "January 10, 2026 at 7:30", NULL);
    /* A birthday from crm, in the customer's zone. */
    s_expect (s_ctl ("template", "add", "--name", "birthday", "--locale", "uk", "--text-file",
                     s_file ("З днем народження, {{date birthday style=long}}!"), NULL),
              0, "add birthday", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "birthday", "--customer", OLENA, NULL), 0,
              "birthday", "З днем народження, 17 травня 1990" NNBSP "р.!", NULL);

    /* An e-mail: subject, text and HTML, escaped in the HTML only. */
    s_expect (s_ctl ("template", "add", "--name", "receipt", "--locale", "en", "--channel", "email",
                     "--subject", "Your receipt, {{name}}", "--text-file",
                     s_file ("Total: {{money total_minor currency}}, {{name}}"), "--html-file",
                     s_file ("<p>Total: <b>{{money total_minor currency}}</b>, {{name}}</p>"),
                     NULL),
              0, "add email", "(en, email) stored", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "receipt", "--customer", TOM, "--var",
                     "total_minor=123456", "--var", "currency=USD", NULL),
              0, "preview email", "subject: Your receipt, Tom <b>&</b>",
              "-- text\nTotal: $1,234.56, Tom <b>&</b>",
              "-- html\n<p>Total: <b>$1,234.56</b>, Tom &lt;b&gt;&amp;&lt;/b&gt;</p>", NULL);
}

static void
test_preview_limits (void **state)
{
    char text[400];
    (void)state;
    /* 161 GSM characters: two segments of 153. */
    memset (text, 'a', 161);
    text[161] = '\0';
    s_expect (s_ctl ("template", "add", "--name", "long", "--locale", "en", "--channel", "sms",
                     "--text-file", s_file (text), NULL),
              0, "add long sms", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "long", "--customer", TOM, "--channel", "sms",
                     NULL),
              0, "preview long sms", "sms: 2 segments, GSM-7, 161 septets (153 per segment)", NULL);
}

static void
test_bad_input (void **state)
{
    char *before, *after;
    (void)state;
    s_add_points ();
    before = s_written ();

    /* Malformed: exit 2 naming the file, the line and the column. */
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "uk", "--text-file",
                     s_file ("Вітаємо!\nУ вас {{plural points one=\"# бал\"}}"), NULL),
              2, "no other=", "--text-file ", "line 2, column 9", "other=", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "uk", "--text-file",
                     s_file ("Hi {{name}, bye"), NULL),
              2, "unclosed", "line 1, column 4", "never closed", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "en", "--channel", "email",
                     "--text-file", s_file ("ok"), "--html-file",
                     s_file ("<p>\n{{#if vip}}VIP</p>"), NULL),
              2, "html unclosed if", "--html-file ", "line 2, column 1", "{{/if}}", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "en", "--channel", "email",
                     "--subject", "Hi {{name", "--text-file", s_file ("ok"), NULL),
              2, "subject", "--subject: line 1, column 4", NULL);
    /* The other refusals. */
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "ukrainian", "--text-file",
                     s_file ("ok"), NULL),
              2, "bad locale", "BCP 47", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "uk", "--channel", "pigeon",
                     "--text-file", s_file ("ok"), NULL),
              2, "bad channel", "--channel \"pigeon\"", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "uk", "--channel", "sms",
                     "--subject", "Hi", "--text-file", s_file ("ok"), NULL),
              2, "subject on sms", "only an e-mail", NULL);
    s_expect (s_ctl ("template", "add", "--name", "Bad Name", "--locale", "uk", "--text-file",
                     s_file ("ok"), NULL),
              2, "bad name", "--name", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "uk", NULL), 2, "no text",
              "--text-file is required", NULL);
    s_expect (s_ctl ("template", "add", "--name", "x", "--locale", "uk", "--text-file",
                     "/nonexistent/t.txt", NULL),
              2, "missing file", "/nonexistent/t.txt", NULL);
    s_expect (s_ctl ("template", "add", "--name", "points.earned", "--locale", "uk", "--text-file",
                     s_file ("Нове: {{points}}"), "--quiet-hours", "sometimes", NULL),
              2, "bad quiet hours", "--quiet-hours", "got \"sometimes\"", NULL);
    after = s_written ();
    assert_string_equal (before, after);
    free (after);

    /* Previews that cannot render: exit 1, saying why. */
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", OLENA,
                     "--channel", "telegram", NULL),
              1, "missing variable", "missing variable \"points\"", "--var", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", NOBODY,
                     "--var", "points=1", NULL),
              1, "unknown customer", "no customer", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "nothing", "--customer", OLENA, NULL), 1,
              "unknown template", "no template \"nothing\"", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", HANS,
                     "--locale-chain", "pl,fr", "--var", "points=1", NULL),
              1, "no locale", "no variant for locale \"de\"", NULL);
    s_expect (s_ctl ("template", "preview", "--name", "points.earned", "--customer", OLENA, "--var",
                     "points", NULL),
              2, "bad --var", "not k=v", NULL);
    after = s_written ();
    assert_string_equal (before, after);
    free (after);
    free (before);
}

/* WhatsApp's approved templates: mapped, listed, changed, removed; what
 * notifyd could not send refused with nothing written. */
static void
test_whatsapp_mapping (void **state)
{
    (void)state;
    s_add_points ();
    s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                     "--wa-name", "points_earned", "--wa-language", "uk", "--params",
                     "[\"{{name}}\", \"{{plural points one=\\\"# бал\\\" few=\\\"# бали\\\" "
                     "other=\\\"# балів\\\"}}\"]",
                     NULL),
              0, "set", "template points.earned (uk) goes as WhatsApp's points_earned (uk)", NULL);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM notify.whatsapp_templates"
                                             " WHERE template = 'points.earned' AND locale = 'uk'"
                                             " AND wa_name = 'points_earned'"
                                             " AND cardinality(params) = 2"
                                             " AND params[1] = '{{name}}'"),
                      1);
    s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                     "--wa-name", "points_earned_v2", "--wa-language", "uk", NULL),
              0, "change", "now goes as WhatsApp's points_earned_v2", NULL);
    s_expect (s_ctl ("template", "whatsapp", "list", NULL), 0, "list", "points_earned_v2", NULL);
    {
        char *before = s_written (), *after;
        s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "de",
                         "--wa-name", "x", "--wa-language", "de", NULL),
                  2, "no such locale", "no template points.earned has a variant in locale de",
                  NULL);
        s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                         "--wa-name", "Points Earned", "--wa-language", "uk", NULL),
                  2, "bad name", "--wa-name \"Points Earned\" is no WhatsApp template name", NULL);
        s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                         "--wa-name", "x", "--wa-language", "ukrainian", NULL),
                  2, "bad language", "--wa-language \"ukrainian\"", NULL);
        s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                         "--wa-name", "x", "--wa-language", "uk", "--params", "{{name}}", NULL),
                  2, "params not JSON", "--params must be a JSON array", NULL);
        s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                         "--wa-name", "x", "--wa-language", "uk", "--params", "[\"{{name\"]", NULL),
                  2, "param does not parse", "parameter 1 does not parse", NULL);
        s_expect (s_ctl ("template", "whatsapp", "set", "--name", "points.earned", "--locale", "uk",
                         NULL),
                  2, "no wa-name", "--wa-name is required", NULL);
        after = s_written ();
        assert_string_equal (after, before);
        free (after);
        free (before);
    }
    s_expect (
        s_ctl ("template", "whatsapp", "remove", "--name", "points.earned", "--locale", "uk", NULL),
        0, "remove", "no longer goes as a WhatsApp template", NULL);
    s_expect (
        s_ctl ("template", "whatsapp", "remove", "--name", "points.earned", "--locale", "uk", NULL),
        1, "remove again", "has no WhatsApp mapping", NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_add_list_show, s_clean),
        cmocka_unit_test_setup (test_quiet_hours, s_clean),
        cmocka_unit_test_setup (test_preview, s_clean),
        cmocka_unit_test_setup (test_preview_dates_email, s_clean),
        cmocka_unit_test_setup (test_preview_limits, s_clean),
        cmocka_unit_test_setup (test_bad_input, s_clean),
        cmocka_unit_test_setup (test_whatsapp_mapping, s_clean),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
