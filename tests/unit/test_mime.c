/*
 * test_mime: e-mails as a support agent should see them. Real shapes of
 * mail from Gmail, Outlook, Thunderbird and old Cyrillic clients (fixtures
 * in tests/fixtures/ingest/email) come out with the right text, subject,
 * sender, date, threading ids and attachments; replies lose their quoted
 * part; broken mail keeps whatever could be decoded and says it was
 * damaged; nothing, however malformed, crashes the parser or yields
 * invalid UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mime.h"
#include "rt_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
s_read (const char *name, size_t *len)
{
    char rel[256];
    snprintf (rel, sizeof rel, "ingest/email/%s", name);
    return rt_test_fixture (rel, len);
}

/* Strict UTF-8: no overlongs, surrogates or code points past U+10FFFF. */
static bool
s_valid_utf8 (const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t k, i;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c < 0xE0)
            k = 2;
        else if (c >= 0xE0 && c < 0xF0)
            k = 3;
        else if (c >= 0xF0 && c < 0xF5)
            k = 4;
        else
            return false;
        for (i = 1; i < k; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
        }
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ||
            (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return false;
        p += k;
    }
    return true;
}

/* Every field present and valid UTF-8. */
static void
s_check_strings (const mime_message_t *m)
{
    size_t i;
    const char *fields[] = {m->message_id, m->in_reply_to, m->references,
                            m->thread_id,  m->from_name,   m->from_email,
                            m->subject,    m->text,        m->full_text};
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        assert_non_null (fields[i]);
        assert_true (s_valid_utf8 (fields[i]));
    }
    for (i = 0; i < m->nattachments; i++) {
        assert_true (s_valid_utf8 (m->attachments[i].name));
        assert_true (s_valid_utf8 (m->attachments[i].mime_type));
    }
}

static mime_message_t *
s_parse_file (const char *name)
{
    size_t len;
    char *data = s_read (name, &len);
    mime_message_t *m = mime_parse (data, len);
    free (data);
    assert_non_null (m);
    s_check_strings (m);
    return m;
}

static mime_message_t *
s_parse_str (const char *text)
{
    mime_message_t *m = mime_parse (text, strlen (text));
    assert_non_null (m);
    s_check_strings (m);
    return m;
}

/* --- fixtures --------------------------------------------------------- */

static void
test_plain (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("plain.eml");
    assert_string_equal (m->subject, "Where is my order #1042?");
    assert_string_equal (m->from_name, "Anna Kowalska");
    assert_string_equal (m->from_email, "anna@example.com");
    assert_string_equal (m->message_id, "plain-1@example.com");
    assert_string_equal (m->thread_id, "plain-1@example.com");
    assert_string_equal (m->in_reply_to, "");
    assert_string_equal (m->references, "");
    assert_int_equal (m->date_ms, 1705309200000LL);
    assert_string_equal (m->text, "Hello,\n\nI ordered a lamp last week and the tracking page says "
                                  "nothing.\nCould you check, please? Thanks — Anna");
    assert_string_equal (m->full_text, m->text);
    assert_int_equal (m->nattachments, 0);
    assert_false (m->damaged);
    mime_free (&m);
    assert_null (m);
}

static void
test_alternative_prefers_plain (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("alternative.eml");
    assert_string_equal (m->from_name, "Smith, John");
    assert_string_equal (m->from_email, "john.smith@example.org");
    assert_int_equal (m->date_ms, 1705411800000LL);
    /* the quoted-printable soft break joins "broken" and "." */
    assert_string_equal (m->text,
                         "I would like a refund for order #2001. The café table arrived broken.\n"
                         "\nJohn");
    /* the HTML alternative is not an attachment */
    assert_int_equal (m->nattachments, 0);
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_mixed_with_pdf (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("mixed_pdf.eml");
    assert_string_equal (m->text, "Please find the invoice attached.");
    assert_int_equal (m->nattachments, 1);
    assert_string_equal (m->attachments[0].name, "invoice-2001.pdf");
    assert_string_equal (m->attachments[0].mime_type, "application/pdf");
    assert_int_equal (m->attachments[0].size, 1540);
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_nested (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("nested.eml");
    assert_string_equal (m->from_name, "Олег Петренко");
    assert_string_equal (m->subject, "Фото пошкодження");
    assert_string_equal (m->text, "Пакунок прийшов пошкодженим, фото додаю.");
    assert_int_equal (m->nattachments, 3);
    /* the inline image of the HTML alternative */
    assert_string_equal (m->attachments[0].name, "photo.png");
    assert_string_equal (m->attachments[0].mime_type, "image/png");
    assert_int_equal (m->attachments[0].size, 768);
    /* RFC 2231: a UTF-8 file name in two continuations */
    assert_string_equal (m->attachments[1].name, "акт № 7.pdf");
    assert_string_equal (m->attachments[1].mime_type, "application/pdf");
    assert_int_equal (m->attachments[1].size, 100);
    /* a forwarded message is named after its subject */
    assert_string_equal (m->attachments[2].name, "Ваше замовлення.eml");
    assert_string_equal (m->attachments[2].mime_type, "message/rfc822");
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_subject_utf8_base64_split_character (void **state)
{
    (void)state;
    /* The two encoded words split "№" between them: joined before decoding. */
    mime_message_t *m = s_parse_file ("subject_utf8_b.eml");
    assert_string_equal (m->subject, "Заказ №1042 не пришёл");
    assert_string_equal (m->from_name, "Иван Петров");
    assert_string_equal (m->text, "Здравствуйте! Заказ так и не пришёл.");
    assert_int_equal (m->date_ms, 1705668310000LL);
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_koi8r (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("subject_koi8r_q.eml");
    assert_string_equal (m->subject, "Возврат товара");
    assert_string_equal (m->from_name, "Петр Сидоров");
    assert_string_equal (m->text, "Добрый день! Верните деньги за возврат.");
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_windows1251_body_and_raw_subject (void **state)
{
    (void)state;
    /* The subject is raw CP1251 bytes (no RFC 2047): read in the body's charset. */
    mime_message_t *m = s_parse_file ("cp1251_body.eml");
    assert_string_equal (m->subject, "Отмена заказа");
    assert_string_equal (
        m->text, "Здравствуйте.\nПрошу отменить заказ 3003, передумал.\nС уважением, Сергей");
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_quoted_printable (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("quoted_printable.eml");
    /* lower-case hex in a Q-encoded ISO-8859-1 subject */
    assert_string_equal (m->subject, "Problème de livraison");
    assert_string_equal (m->text, "Bonjour, le colis est arrivé abîmé. C'est une très longue ligne "
                                  "coupée par un saut doux.\nTotal = 42 €");
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_quoted_printable_bad_escape (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("quoted_printable_bad.eml");
    assert_string_equal (m->text, "Price =ZZ 10 and 50% off");
    assert_true (m->damaged);
    assert_non_null (strstr (m->note, "quoted-printable"));
    mime_free (&m);
}

static void
test_gmail_reply (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("gmail_reply.eml");
    assert_string_equal (m->text, "Thanks, it arrived today!");
    assert_non_null (strstr (m->full_text, "> your parcel is on its way."));
    assert_non_null (strstr (m->full_text, "On Mon, 15 Jan 2024 at 18:00"));
    assert_string_equal (m->message_id, "CAGmail-reply-2@mail.gmail.com");
    assert_string_equal (m->in_reply_to, "support-answer-1@shop.example");
    assert_string_equal (m->references, "plain-1@example.com support-answer-1@shop.example");
    assert_string_equal (m->thread_id, "plain-1@example.com");
    assert_false (m->damaged);
    mime_free (&m);
}

static void
test_gmail_reply_ukrainian (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("gmail_reply_uk.eml");
    assert_string_equal (m->subject, "Re: Фото пошкодження");
    assert_string_equal (m->text, "Дякую, чекаю на заміну.");
    assert_non_null (strstr (m->full_text, "пише:"));
    /* References folded over two lines */
    assert_string_equal (m->references, "nested-1@example.ua support-uk-2@shop.example");
    assert_string_equal (m->thread_id, "nested-1@example.ua");
    mime_free (&m);
}

static void
test_gmail_reply_russian_two_lines (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("gmail_reply_ru.eml");
    assert_string_equal (m->subject, "Re: Заказ №1042");
    assert_string_equal (m->text, "Спасибо, получил.");
    assert_non_null (strstr (m->full_text, "написал(а):"));
    assert_string_equal (m->thread_id, "utf8b-1@example.ru");
    mime_free (&m);
}

static void
test_outlook_reply (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("outlook_reply.eml");
    assert_string_equal (m->from_name, "Brown, Emma");
    /* domain lower-cased, local part kept */
    assert_string_equal (m->from_email, "Emma.Brown@contoso.com");
    assert_string_equal (m->text, "Friday works for us.\n\nBest regards,\nEmma");
    assert_non_null (strstr (m->full_text, "Sent: Wednesday, January 17, 2024 1:00 PM"));
    assert_string_equal (m->message_id,
                         "DB9PR01MB1234ABCD@DB9PR01MB1234.eurprd01.prod.exchangelabs.com");
    assert_string_equal (m->thread_id, "support-outlook-1@shop.example");
    mime_free (&m);
}

static void
test_outlook_original_message (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("outlook_original.eml");
    /* windows-1252 0x96 is an en dash */
    assert_string_equal (m->text, "Yes, the serial is 12345 – thanks.");
    assert_non_null (strstr (m->full_text, "-----Original Message-----"));
    /* no References: the thread is the message it answers */
    assert_string_equal (m->thread_id, "support-warranty-1@shop.example");
    mime_free (&m);
}

static void
test_thunderbird_flowed_reply (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("thunderbird_reply.eml");
    assert_string_equal (m->text, "Yes please, send size M instead. This line is long enough that "
                                  "Thunderbird wraps it with a trailing space.");
    assert_non_null (
        strstr (m->full_text, "> Do you want size M or L? Please answer so we can ship it today."));
    assert_string_equal (m->thread_id, "tb-orig-0@example.de");
    assert_int_equal (m->date_ms, 1705604462000LL);
    mime_free (&m);
}

static void
test_html_only (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("html_only.eml");
    assert_string_equal (m->text, "Café & bar <tag> \"quoted\" text—dash ☺\nLine one\nLine two\n"
                                  "- first\n- second");
    assert_int_equal (m->date_ms, 1705996800000LL);
    assert_false (m->damaged);
    mime_free (&m);
}

/* --- damaged mail: kept, flagged ---------------------------------------- */

static void
test_missing_closing_boundary (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("broken_boundary.eml");
    assert_string_equal (m->text, "The text is still here.");
    assert_int_equal (m->nattachments, 1);
    assert_string_equal (m->attachments[0].name, "scan.jpg");
    assert_int_equal (m->attachments[0].size, 204);
    assert_true (m->damaged);
    assert_non_null (strstr (m->note, "missing closing boundary"));
    mime_free (&m);
}

static void
test_bad_base64 (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("bad_base64.eml");
    assert_string_equal (m->text, "Order 5005 is missing one item.");
    assert_true (m->damaged);
    assert_non_null (strstr (m->note, "base64"));
    mime_free (&m);
}

static void
test_truncated (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("truncated.eml");
    assert_string_equal (m->text, "Photo of the damage attached.");
    assert_int_equal (m->nattachments, 1);
    assert_string_equal (m->attachments[0].name, "damage.jpg");
    assert_true (m->attachments[0].size > 0 && m->attachments[0].size < 256);
    assert_true (m->damaged);
    mime_free (&m);
}

static void
test_unknown_charset (void **state)
{
    (void)state;
    mime_message_t *m = s_parse_file ("unknown_charset.eml");
    /* read as UTF-8: the valid sequence survives, the stray byte is U+FFFD */
    assert_string_equal (m->text, "Qapla’! Order \xEF\xBF\xBD arrived.");
    assert_string_equal (m->subject, "nuqneH");
    assert_true (m->damaged);
    assert_non_null (strstr (m->note, "unknown charset x-klingon"));
    mime_free (&m);
}

/* --- headers ---------------------------------------------------------- */

static void
test_decode_header (void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        /* adjacent words: the whitespace between them goes */
        {"=?utf-8?q?Hello?= =?utf-8?q?_World?=", "Hello World"},
        {"=?UTF-8?B?0J/RgNC40LLQtdGC?=\t =?UTF-8?B?LCDQvNC40YA=?=", "Привет, мир"},
        /* a word next to plain text keeps the space */
        {"Re: =?ISO-8859-1?Q?Caf=E9?= menu", "Re: Café menu"},
        /* any charset iconv knows */
        {"=?windows-1251?B?z/Do4uXy?=", "Привет"},
        {"=?koi8-u?q?=F0=D2=C9=D7=A6=D4?=", "Привіт"},
        {"=?iso-8859-2?Q?Gda=F1sk?=", "Gdańsk"},
        /* RFC 2231 language in an encoded word */
        {"=?utf-8*en?q?hi?=", "hi"},
        /* not encoded words: left alone */
        {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
        {"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"},
        {"plain text", "plain text"},
        {"", ""},
        /* unknown charset: read as UTF-8 */
        {"=?x-nonesuch?q?ok?=", "ok"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = mime_decode_header (cases[i][0]);
        assert_non_null (d);
        if (strcmp (d, cases[i][1]) != 0)
            fail_msg ("decoding [%s]: got [%s], want [%s]", cases[i][0], d, cases[i][1]);
        free (d);
    }
    {
        /* invalid bytes never come out raw */
        char *d = mime_decode_header ("a \xff\xfe =?utf-8?b?/w==?=");
        assert_true (s_valid_utf8 (d));
        free (d);
        d = mime_decode_header (NULL);
        assert_string_equal (d, "");
        free (d);
    }
}

static void
test_dates (void **state)
{
    (void)state;
    static const struct {
        const char *date;
        int64_t ms;
    } cases[] = {
        {"Mon, 15 Jan 2024 10:00:00 +0100", 1705309200000LL},
        {"15 Jan 2024 09:00:00 GMT", 1705309200000LL},
        {"Mon, 15 Jan 2024 04:00:00 EST", 1705309200000LL},
        {"Mon, 15 Jan 24 09:00:00 +0000 (UTC)", 1705309200000LL},
        {"Mon, 15 Jan 2024 09:00 +0000", 1705309200000LL},
        {"Mon Jan 15 09:00:00 2024", 1705309200000LL},
        {"2024-01-15T12:00:00+03:00", 1705309200000LL},
        {"Thu, 29 Feb 2024 00:00:00 +0000", 1709164800000LL},
        {"Thu, 30 Feb 2024 00:00:00 +0000", 0},
        {"yesterday", 0},
        {"Mon, 15 Jan 2024 25:00:00 +0000", 0},
        /* found by fuzzing: a long ISO month must not overflow */
        {"2024-737095516155-15T10:00:00Z", 0},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256];
        mime_message_t *m;
        snprintf (msg, sizeof msg, "Date: %s\r\n\r\nx", cases[i].date);
        m = s_parse_str (msg);
        if (m->date_ms != cases[i].ms)
            fail_msg ("date [%s]: got %lld, want %lld", cases[i].date, (long long)m->date_ms,
                      (long long)cases[i].ms);
        mime_free (&m);
    }
}

static void
test_from_forms (void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"\"Doe, Jane\" <Jane.Doe@Mail.Example.COM>", "Doe, Jane", "Jane.Doe@mail.example.com"},
        {"jane@example.com (Jane Doe)", "Jane Doe", "jane@example.com"},
        {"<jane@example.com>", "", "jane@example.com"},
        {"jane@example.com", "", "jane@example.com"},
        {"First <a@x.org>, Second <b@y.org>", "First", "a@x.org"},
        {"\"=?utf-8?b?0K/QvdCw?=\" <yana@example.ua>", "Яна", "yana@example.ua"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256];
        mime_message_t *m;
        snprintf (msg, sizeof msg, "From: %s\r\n\r\nx", cases[i][0]);
        m = s_parse_str (msg);
        assert_string_equal (m->from_name, cases[i][1]);
        assert_string_equal (m->from_email, cases[i][2]);
        mime_free (&m);
    }
}

static void
test_threading (void **state)
{
    (void)state;
    mime_message_t *m;
    m = s_parse_str ("Message-ID: <c@x>\r\nIn-Reply-To: <b@x> (John's message)\r\n"
                     "References: <a@x>\r\n <b@x>\r\n\r\nbody");
    assert_string_equal (m->message_id, "c@x");
    assert_string_equal (m->in_reply_to, "b@x");
    assert_string_equal (m->references, "a@x b@x");
    assert_string_equal (m->thread_id, "a@x");
    mime_free (&m);
    m = s_parse_str ("Message-ID: <c@x>\r\nIn-Reply-To: <b@x>\r\n\r\nbody");
    assert_string_equal (m->thread_id, "b@x");
    mime_free (&m);
    m = s_parse_str ("Message-Id: <c@x>\r\n\r\nbody");
    assert_string_equal (m->thread_id, "c@x");
    mime_free (&m);
    m = s_parse_str ("Subject: no ids\r\n\r\nbody");
    assert_string_equal (m->message_id, "");
    assert_string_equal (m->thread_id, "");
    mime_free (&m);
}

/* --- reply stripping --------------------------------------------------- */

static void
test_reply_stripping_forms (void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"Yes.\n\nOn Tue, Jan 16, 2024 at 9:00 AM Shop <s@shop.example> wrote:\n> Are you "
         "home?\n",
         "Yes."},
        {"Ok\n\nOn 16/01/2024 09:00, Shop wrote:\n\n> q\n", "Ok"},
        /* an attribution-like line in the middle of the text with no quote after it stays */
        {"My friend wrote:\nit is broken\n", "My friend wrote:\nit is broken"},
        /* interleaved answers are not a trailing quote */
        {"> question one\nanswer one\n> question two\nanswer two\n",
         "> question one\nanswer one\n> question two\nanswer two"},
        /* a trailing quote with an address-and-colon line above it */
        {"Fine by me.\n\nShop Support <s@shop.example>:\n> shall we?\n", "Fine by me."},
        /* Thunderbird in Russian */
        {"Да.\n\n16.01.2024 9:00, Shop пишет:\n> Подтверждаете?\n", "Да."},
        /* Outlook flattened onto one line */
        {"Thanks\nFrom: Shop Sent: Monday To: me Subject: x\nold text\n", "Thanks"},
        /* Outlook in Russian */
        {"Спасибо\n\nОт: Shop <s@shop.example>\nОтправлено: 16 января 2024 г. 9:00\nКому: "
         "me\n\nold\n",
         "Спасибо"},
        /* a message that is only a forward or a quote is kept whole */
        {"-----Original Message-----\nFrom: a\nSent: b\n\ntext\n",
         "-----Original Message-----\nFrom: a\nSent: b\n\ntext"},
        {"On Mon, 1 Jan 2024, A wrote:\n> hi\n\nmy answer below the quote\n",
         "On Mon, 1 Jan 2024, A wrote:\n> hi\n\nmy answer below the quote"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[1024];
        mime_message_t *m;
        snprintf (msg, sizeof msg, "Content-Type: text/plain; charset=utf-8\r\n\r\n%s",
                  cases[i][0]);
        m = s_parse_str (msg);
        if (strcmp (m->text, cases[i][1]) != 0)
            fail_msg ("case %zu: got [%s], want [%s]", i, m->text, cases[i][1]);
        mime_free (&m);
    }
}

static void
test_html_blockquote_is_stripped (void **state)
{
    (void)state;
    /* Gmail's HTML-only reply: the blockquote becomes a ">" quote and goes. */
    mime_message_t *m = s_parse_str (
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<div dir=\"ltr\">New answer<div>second line</div></div><br>"
        "<div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, 15 Jan 2024 at 10:00, "
        "Shop &lt;s@shop.example&gt; wrote:<br></div><blockquote>old <b>text</b><br>more"
        "</blockquote></div>");
    assert_string_equal (m->text, "New answer\nsecond line");
    assert_non_null (strstr (m->full_text, "> old text\n> more"));
    mime_free (&m);
}

/* --- hostile input ----------------------------------------------------- */

static void
test_deep_nesting_is_bounded (void **state)
{
    (void)state;
    char *msg = malloc (1 << 16);
    size_t len = 0;
    int i;
    assert_non_null (msg);
    for (i = 0; i < 40; i++)
        len += (size_t)sprintf (
            msg + len, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
    len += (size_t)sprintf (msg + len, "Content-Type: text/plain\r\n\r\ndeep text\r\n");
    {
        mime_message_t *m = mime_parse (msg, len);
        assert_non_null (m);
        s_check_strings (m);
        assert_true (m->damaged);
        assert_non_null (strstr (m->note, "nested too deep"));
        mime_free (&m);
    }
    free (msg);
}

static void
test_many_parts_are_bounded (void **state)
{
    (void)state;
    size_t cap = 1 << 20, len = 0;
    char *msg = malloc (cap);
    int i;
    assert_non_null (msg);
    len += (size_t)sprintf (msg, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
    for (i = 0; i < 5000; i++)
        len += (size_t)sprintf (msg + len, "--x\r\nContent-Type: image/gif\r\n\r\nGIF\r\n");
    len += (size_t)sprintf (msg + len, "--x--\r\n");
    {
        mime_message_t *m = mime_parse (msg, len);
        assert_non_null (m);
        assert_true (m->nattachments < 1001);
        assert_true (m->damaged);
        assert_non_null (strstr (m->note, "too many parts"));
        mime_free (&m);
    }
    free (msg);
}

static void
test_arbitrary_bytes (void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "",
        "\r\n",
        "no headers at all, just words",
        "Subject: =?",
        "Subject: =?utf-8?",
        "Subject: =?utf-8?b?",
        "Content-Type: multipart/mixed\r\n\r\n--\r\n",
        "Content-Type: multipart/mixed; boundary=\r\n\r\nbody",
        "Content-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q",
        "Content-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q--",
        "Content-Type: text/plain; charset=\"utf-16\"\r\n\r\n\xff",
        "Content-Type: text/plain; charset=\"iso-2022-jp\"\r\n\r\n\x1b$B",
        "Content-Type: text/plain; charset=\"../../etc/passwd\"\r\n\r\nx",
        "Content-Type: text/plain; charset=\"utf-8//TRANSLIT\"\r\n\r\nx",
        "Content-Type: text/html\r\n\r\n<",
        "Content-Type: text/html\r\n\r\n<a href=\"x",
        "Content-Type: text/html\r\n\r\n&#x110000;&#0;&#xD800;&",
        "Content-Type: text/html\r\n\r\n<!--",
        "Content-Type: text/html\r\n\r\n<script>",
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n=",
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n=4",
        "Content-Transfer-Encoding: base64\r\n\r\nQ",
        "Content-Transfer-Encoding: base64\r\n\r\n====",
        "Content-Disposition: attachment; filename*0*=x'';\r\n\r\n",
        "Content-Disposition: attachment; filename*=''%\r\n\r\n",
        "Content-Type: image/png; name=\"\r\n\r\n",
        "From: \"unterminated <a@b\r\n\r\n",
        "From: (((\r\n\r\n",
        "Date: Mon, 99999999999 Jan 99999999999 99:99:99 +9999\r\n\r\n",
        " leading continuation\r\n\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        mime_message_t *m = mime_parse (inputs[i], strlen (inputs[i]));
        assert_non_null (m);
        s_check_strings (m);
        mime_free (&m);
    }
    {
        /* NUL bytes inside and no terminator at the end */
        static const char nul[] = {'S', 'u', 'b', 'j',  'e',  'c', 't', ':', ' ',
                                   'a', 0,   'b', '\n', '\n', 'x', 0,   'y'};
        mime_message_t *m = mime_parse (nul, sizeof nul);
        assert_non_null (m);
        s_check_strings (m);
        assert_string_equal (m->subject, "ab");
        assert_string_equal (m->text, "xy");
        mime_free (&m);
    }
    {
        mime_message_t *m = mime_parse (NULL, 0);
        assert_non_null (m);
        s_check_strings (m);
        mime_free (&m);
    }
    mime_free (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_plain),
        cmocka_unit_test (test_alternative_prefers_plain),
        cmocka_unit_test (test_mixed_with_pdf),
        cmocka_unit_test (test_nested),
        cmocka_unit_test (test_subject_utf8_base64_split_character),
        cmocka_unit_test (test_koi8r),
        cmocka_unit_test (test_windows1251_body_and_raw_subject),
        cmocka_unit_test (test_quoted_printable),
        cmocka_unit_test (test_quoted_printable_bad_escape),
        cmocka_unit_test (test_gmail_reply),
        cmocka_unit_test (test_gmail_reply_ukrainian),
        cmocka_unit_test (test_gmail_reply_russian_two_lines),
        cmocka_unit_test (test_outlook_reply),
        cmocka_unit_test (test_outlook_original_message),
        cmocka_unit_test (test_thunderbird_flowed_reply),
        cmocka_unit_test (test_html_only),
        cmocka_unit_test (test_missing_closing_boundary),
        cmocka_unit_test (test_bad_base64),
        cmocka_unit_test (test_truncated),
        cmocka_unit_test (test_unknown_charset),
        cmocka_unit_test (test_decode_header),
        cmocka_unit_test (test_dates),
        cmocka_unit_test (test_from_forms),
        cmocka_unit_test (test_threading),
        cmocka_unit_test (test_reply_stripping_forms),
        cmocka_unit_test (test_html_blockquote_is_stripped),
        cmocka_unit_test (test_deep_nesting_is_bounded),
        cmocka_unit_test (test_many_parts_are_bounded),
        cmocka_unit_test (test_arbitrary_bytes),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
