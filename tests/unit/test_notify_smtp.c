/*
 * test_notify_smtp: notifyd's e-mail, the pure half (services/notify/
 * providers/smtp.c, provider.h "e-mail"), without a network.
 *
 * What a customer's mail program sees, read back as one would read it:
 * the headers unfolded, the Cyrillic subject and sender's name decoded
 * from their encoded words to exactly what was sent, every line CRLF and
 * short, both parts of the multipart/alternative decoded to the text and
 * the HTML (line ends made CRLF), List-Unsubscribe with the one-click
 * https link (its token verifying as the customer's, channel's and
 * category's) and the mailto, and List-Unsubscribe-Post only beside an
 * https link. No field adds a header: line breaks in a subject, a name or
 * an address are refused. Then what each SMTP end comes to (RFC 5321's
 * classes, RFC 3463's enhanced codes, the replies of
 * ../shared/reference/providers.md 2.6, and libcurl's failures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider.h"
#include "rt_codec.h"
#include "rt_signed.h"
#include "rt_test_mail.h"

#define S_ID      "0b7c4f2e-5a1d-4c3e-9f00-1234567890ab"
#define S_SUBJECT "Ваше замовлення №1042 вже в дорозі — трек-номер усередині"
#define S_KEYS    "k1:0123456789abcdef0123456789abcdef"

/* --- reading a message back --- */

typedef struct {
    char *head; /* the header block, unfolded (owned) */
    char *body; /* after the blank line (lent from the message) */
} s_msg_t;

static void
s_msg_read (const provider_mail_msg_t *m, s_msg_t *out)
{
    const char *sep = strstr (m->data, "\r\n\r\n");
    size_t hl, o = 0;
    assert_non_null (sep);
    assert_int_equal (strlen (m->data), m->len);
    /* Every line ends in CRLF and is short. */
    for (const char *p = m->data, *nl; *p; p = nl + 1) {
        nl = strchr (p, '\n');
        assert_non_null (nl);
        assert_true (nl > p ? nl[-1] == '\r' : false);
        /* List-Unsubscribe is never folded (DKIM): under 998 as RFC 5322's
         * every line; the rest under 78. */
        if (nl - p - 1 > (strncmp (p, "List-Unsubscribe:", 17) == 0 ? 998 : 78))
            fail_msg ("a line of %d bytes: %.*s", (int)(nl - p - 1), (int)(nl - p - 1), p);
        assert_null (memchr (p, '\r', (size_t)(nl - p - 1)));
    }
    hl = (size_t)(sep - m->data) + 2;
    out->head = malloc (hl + 1);
    assert_non_null (out->head);
    for (size_t i = 0; i < hl; i++) {
        /* CRLF then white space is a fold: the line goes on. */
        if (m->data[i] == '\r' && m->data[i + 1] == '\n' &&
            (m->data[i + 2] == ' ' || m->data[i + 2] == '\t') && i + 2 < hl) {
            i += 1;
            continue;
        }
        out->head[o++] = m->data[i];
    }
    out->head[o] = '\0';
    out->body = (char *)sep + 4;
}

/* The value of header name (unfolded), into out; false when absent. */
static bool
s_header (const s_msg_t *m, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen (name);
    for (const char *p = m->head; *p;) {
        const char *end = strstr (p, "\r\n");
        assert_non_null (end);
        if (strncasecmp (p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf (out, outlen, "%.*s", (int)(end - v), v);
            return true;
        }
        p = end + 2;
    }
    return false;
}

static int
s_header_count (const s_msg_t *m, const char *name)
{
    int n = 0;
    size_t nl = strlen (name);
    for (const char *p = m->head; *p; p = strstr (p, "\r\n") + 2)
        n += strncasecmp (p, name, nl) == 0 && p[nl] == ':';
    return n;
}

/* The base64 body after a part's headers, decoded, into out. */
static void
s_decode_part (const char *part, char *out, size_t outlen)
{
    const char *p = strstr (part, "\r\n\r\n");
    size_t o = 0;
    assert_non_null (p);
    for (p += 4; *p && *p != '-' && !(p[0] == '\r' && p[1] == '\n');) {
        const char *nl = strstr (p, "\r\n");
        long n;
        assert_non_null (nl);
        n = rt_base64_decode (p, (size_t)(nl - p), (uint8_t *)out + o, outlen - o - 1);
        assert_true (n > 0);
        o += (size_t)n;
        p = nl + 2;
    }
    out[o] = '\0';
}

static void
s_msg_free (s_msg_t *m)
{
    free (m->head);
    m->head = NULL;
}

/* --- building --- */

static provider_mail_t
s_mail (void)
{
    return (provider_mail_t){.from = "Крамниця «Ромашка» <shop@shop.example>",
                             .to = "olena@example.com",
                             .subject = S_SUBJECT,
                             .text = "Олено, замовлення №1042 передано перевізнику.\n",
                             .html = "<p>Олено, замовлення №1042 &amp; ще.</p>\n",
                             .message_id = S_ID,
                             .date_s = 1768489200, /* Thu, 15 Jan 2026 15:00:00 UTC */
                             .unsubscribe_url = "https://shop.example/u/TOKEN",
                             .unsubscribe_mail = "unsubscribe@shop.example"};
}

static void
test_multipart (void **state)
{
    provider_mail_t mail = s_mail ();
    provider_mail_msg_t m;
    s_msg_t r;
    char v[1024], decoded[1024], boundary[128], part[1024];
    const char *p;
    char err[256];
    (void)state;
    assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
    s_msg_read (&m, &r);
    assert_string_equal (m.envelope_from, "shop@shop.example");
    assert_string_equal (m.envelope_to, "olena@example.com");
    assert_string_equal (m.message_id, S_ID "@shop.example");

    assert_true (s_header (&r, "From", v, sizeof v));
    rt_test_mail_decode_words (v, decoded, sizeof decoded);
    assert_string_equal (decoded, "Крамниця «Ромашка» <shop@shop.example>");
    assert_true (s_header (&r, "To", v, sizeof v));
    assert_string_equal (v, "olena@example.com");
    assert_true (s_header (&r, "Subject", v, sizeof v));
    assert_non_null (strstr (v, "=?UTF-8?B?"));
    rt_test_mail_decode_words (v, decoded, sizeof decoded);
    assert_string_equal (decoded, S_SUBJECT);
    assert_true (s_header (&r, "Date", v, sizeof v));
    assert_string_equal (v, "Thu, 15 Jan 2026 15:00:00 +0000");
    assert_true (s_header (&r, "Message-ID", v, sizeof v));
    assert_string_equal (v, "<" S_ID "@shop.example>");
    assert_true (s_header (&r, "MIME-Version", v, sizeof v));
    assert_string_equal (v, "1.0");
    assert_true (s_header (&r, "List-Unsubscribe", v, sizeof v));
    assert_string_equal (
        v, "<https://shop.example/u/TOKEN>, <mailto:unsubscribe@shop.example?subject=unsubscribe>");
    /* Not folded: a re-folded List-Unsubscribe breaks DKIM. */
    assert_non_null (strstr (m.data, "\r\nList-Unsubscribe: <https://shop.example/u/TOKEN>, "));
    assert_true (s_header (&r, "List-Unsubscribe-Post", v, sizeof v));
    assert_string_equal (v, "List-Unsubscribe=One-Click");
    for (const char *const *h = (const char *const[]){"From", "To", "Subject", "Date", "Message-ID",
                                                      "List-Unsubscribe", NULL};
         *h; h++)
        assert_int_equal (s_header_count (&r, *h), 1);

    assert_true (s_header (&r, "Content-Type", v, sizeof v));
    assert_int_equal (sscanf (v, "multipart/alternative; boundary=\"%127[^\"]\"", boundary), 1);
    snprintf (part, sizeof part, "--%s\r\n", boundary);
    p = strstr (r.body, part);
    assert_non_null (p);
    assert_non_null (strstr (p, "Content-Type: text/plain; charset=UTF-8\r\n"));
    s_decode_part (p, decoded, sizeof decoded);
    /* The text's LF made CRLF, as MIME's canonical text is. */
    assert_string_equal (decoded, "Олено, замовлення №1042 передано перевізнику.\r\n");
    p = strstr (p + 1, part);
    assert_non_null (p);
    assert_non_null (strstr (p, "Content-Type: text/html; charset=UTF-8\r\n"));
    s_decode_part (p, decoded, sizeof decoded);
    assert_string_equal (decoded, "<p>Олено, замовлення №1042 &amp; ще.</p>\r\n");
    snprintf (part, sizeof part, "\r\n--%s--\r\n", boundary);
    assert_non_null (strstr (r.body, part));
    s_msg_free (&r);
    provider_mail_msg_free (&m);
    assert_null (m.data);
}

static void
test_text_alone_and_plain_subject (void **state)
{
    provider_mail_t mail = s_mail ();
    provider_mail_msg_t m;
    s_msg_t r;
    char v[512], decoded[512], err[256];
    (void)state;
    mail.from = "shop@shop.example";
    mail.subject = "Your order 1042 is on its way";
    mail.html = NULL;
    mail.unsubscribe_url = NULL;
    mail.unsubscribe_mail = NULL;
    assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
    s_msg_read (&m, &r);
    assert_true (s_header (&r, "From", v, sizeof v));
    assert_string_equal (v, "shop@shop.example");
    assert_true (s_header (&r, "Subject", v, sizeof v));
    assert_string_equal (v, "Your order 1042 is on its way");
    assert_true (s_header (&r, "Content-Type", v, sizeof v));
    assert_string_equal (v, "text/plain; charset=UTF-8");
    assert_false (s_header (&r, "List-Unsubscribe", v, sizeof v));
    assert_false (s_header (&r, "List-Unsubscribe-Post", v, sizeof v));
    assert_null (strstr (m.data, "multipart"));
    s_decode_part (m.data, decoded, sizeof decoded);
    assert_string_equal (decoded, "Олено, замовлення №1042 передано перевізнику.\r\n");
    s_msg_free (&r);
    provider_mail_msg_free (&m);

    /* The mailto alone: no Post header, one-click needs https. */
    mail.unsubscribe_mail = "unsubscribe@shop.example";
    /* "=?" in a plain subject would read as an encoded word: encoded. */
    mail.subject = "50% off =?today?=";
    assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
    s_msg_read (&m, &r);
    assert_true (s_header (&r, "List-Unsubscribe", v, sizeof v));
    assert_string_equal (v, "<mailto:unsubscribe@shop.example?subject=unsubscribe>");
    assert_false (s_header (&r, "List-Unsubscribe-Post", v, sizeof v));
    assert_true (s_header (&r, "Subject", v, sizeof v));
    assert_int_equal (strncmp (v, "=?UTF-8?B?", 10), 0);
    rt_test_mail_decode_words (v, decoded, sizeof decoded);
    assert_string_equal (decoded, "50% off =?today?=");
    s_msg_free (&r);
    provider_mail_msg_free (&m);
}

static void
test_long_subject_folded (void **state)
{
    provider_mail_t mail = s_mail ();
    provider_mail_msg_t m;
    s_msg_t r;
    char subject[2048] = "", v[4096], decoded[2048], err[256];
    (void)state;
    /* 3-byte and 4-byte characters among 2-byte ones: no word may cut one. */
    for (int i = 0; i < 12; i++)
        strcat (subject, "Знижка € на 🎁 подарунки ");
    mail.subject = subject;
    assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
    s_msg_read (&m, &r);
    assert_true (s_header (&r, "Subject", v, sizeof v));
    rt_test_mail_decode_words (v, decoded, sizeof decoded);
    assert_string_equal (decoded, subject);
    s_msg_free (&r);
    provider_mail_msg_free (&m);

    /* A long ASCII subject is folded through encoded words too. */
    memset (subject, 'a', 300);
    subject[300] = '\0';
    assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
    s_msg_read (&m, &r);
    assert_true (s_header (&r, "Subject", v, sizeof v));
    rt_test_mail_decode_words (v, decoded, sizeof decoded);
    assert_string_equal (decoded, subject);
    s_msg_free (&r);
    provider_mail_msg_free (&m);
}

static void
test_no_header_injection (void **state)
{
    static const struct {
        const char *field, *value;
    } bad[] = {
        {"subject", "Hello\r\nBcc: everyone@example.com"},
        {"subject", "Hello\nBcc: everyone@example.com"},
        {"subject", "Hello\rthere"},
        {"subject", "tab\tinside"},
        {"subject", ""},
        {"from", "Shop\r\nBcc: x@example.com <shop@shop.example>"},
        {"from", "Shop <shop@shop.example>\r\nBcc: x@example.com"},
        {"from", "not an address"},
        {"from", "Shop <shop@shop.example"},
        {"to", "olena@example.com\r\nBcc: everyone@example.com"},
        {"to", "olena@example.com, everyone@example.com"},
        {"to", "olena@@example.com"},
        {"to", "olena@example..com"},
        {"to", ".olena@example.com"},
        {"to", "олена@example.com"},
        {"to", "olena"},
        {"to", ""},
        {"text", ""},
        {"text", "\xff\xfe not UTF-8"},
        {"html", "<p>\xc3</p>"},
        {"url", "http://shop.example/u/TOKEN"},
        {"url", "https://shop.example/u/A>, <https://evil.example/"},
        {"url", "https://shop.example/u/A\r\nBcc: x@example.com"},
        {"mailto", "unsubscribe@shop.example>\r\nBcc: x@example.com"},
        {"id", "../../etc"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        provider_mail_t mail = s_mail ();
        provider_mail_msg_t m;
        char err[256] = "";
        if (strcmp (bad[i].field, "subject") == 0)
            mail.subject = bad[i].value;
        else if (strcmp (bad[i].field, "from") == 0)
            mail.from = bad[i].value;
        else if (strcmp (bad[i].field, "to") == 0)
            mail.to = bad[i].value;
        else if (strcmp (bad[i].field, "text") == 0)
            mail.text = bad[i].value;
        else if (strcmp (bad[i].field, "html") == 0)
            mail.html = bad[i].value;
        else if (strcmp (bad[i].field, "url") == 0)
            mail.unsubscribe_url = bad[i].value;
        else if (strcmp (bad[i].field, "mailto") == 0)
            mail.unsubscribe_mail = bad[i].value;
        else
            mail.message_id = bad[i].value;
        if (provider_smtp_build (&mail, &m, err, sizeof err) != -1)
            fail_msg ("%s %s was taken", bad[i].field, bad[i].value);
        assert_true (err[0] != '\0');
        assert_null (m.data);
    }
    /* A name with specials but no control character is encoded, not refused. */
    {
        provider_mail_t mail = s_mail ();
        provider_mail_msg_t m;
        s_msg_t r;
        char err[256], v[512], decoded[512];
        mail.from = "\"Shop, Inc. <Sales>\" <shop@shop.example>";
        assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
        s_msg_read (&m, &r);
        assert_true (s_header (&r, "From", v, sizeof v));
        rt_test_mail_decode_words (v, decoded, sizeof decoded);
        assert_string_equal (decoded, "Shop, Inc. <Sales> <shop@shop.example>");
        assert_string_equal (m.envelope_from, "shop@shop.example");
        s_msg_free (&r);
        provider_mail_msg_free (&m);
    }
}

static void
test_unsubscribe_link (void **state)
{
    char err[256], link[1024];
    rt_signed_keys_t *keys = rt_signed_keys_parse (S_KEYS, err, sizeof err);
    rt_signed_unsubscribe_t u;
    const char *token;
    long n;
    (void)state;
    assert_non_null (keys);
    n = provider_unsubscribe_link (keys, "https://shop.example/u", "c-42",
                                   RETAIN__V1__CHANNEL__EMAIL, "marketing", 2000000000, link,
                                   sizeof link);
    assert_true (n > 0);
    assert_int_equal (strncmp (link, "https://shop.example/u/", 23), 0);
    token = link + 23;
    assert_int_equal (rt_signed_unsubscribe_read (keys, token, 1768489200, &u), RT_SIGNED_OK);
    assert_string_equal (u.customer_id, "c-42");
    assert_int_equal (u.channel, RETAIN__V1__CHANNEL__EMAIL);
    assert_string_equal (u.category, "marketing");
    /* The link fits List-Unsubscribe as it is. */
    {
        provider_mail_t mail = s_mail ();
        provider_mail_msg_t m;
        mail.unsubscribe_url = link;
        assert_int_equal (provider_smtp_build (&mail, &m, err, sizeof err), 0);
        provider_mail_msg_free (&m);
    }
    assert_int_equal (provider_unsubscribe_link (keys, "https://shop.example/u/", "",
                                                 RETAIN__V1__CHANNEL__EMAIL, "marketing",
                                                 2000000000, link, sizeof link),
                      -1);
    assert_int_equal (provider_unsubscribe_link (keys, "http://shop.example/u/", "c-42",
                                                 RETAIN__V1__CHANNEL__EMAIL, "marketing",
                                                 2000000000, link, sizeof link),
                      -1);
    assert_int_equal (provider_unsubscribe_link (keys, "https://shop.example/u/", "c-42",
                                                 RETAIN__V1__CHANNEL__EMAIL, "marketing",
                                                 2000000000, link, 40),
                      -1);
    rt_signed_keys_destroy (&keys);
}

/* --- classifying --- */

typedef struct {
    int curl;                    /* CURLcode */
    int reply;                   /* last reply, 0 none */
    const char *text;            /* its words */
    provider_smtp_stage_t stage; /* what it answered */
    provider_verdict_t want;     /* the verdict */
    const char *code;            /* the code kept */
    bool uncertain;              /* maybe delivered */
} s_case_t;

static void
test_answers (void **state)
{
    static const s_case_t cases[] = {
        /* Sent: the Message-ID is the external id, delivered at once. */
        {CURLE_OK, 250, "OK id=1xYaYQ-0005Nf-0m", PROVIDER_SMTP_BODY, PROVIDER_SENT, "", false},
        /* The message's 250 came and the QUIT did not: sent all the same. */
        {CURLE_RECV_ERROR, 250, "OK id=1x", PROVIDER_SMTP_BODY, PROVIDER_SENT, "", false},
        /* RFC 5321 4yz: transient. */
        {CURLE_WEIRD_SERVER_REPLY, 421, "4.3.2 Service not available", PROVIDER_SMTP_SESSION,
         PROVIDER_RETRY, "421 4.3.2", false},
        {CURLE_SEND_ERROR, 450, "4.2.1 Mailbox busy", PROVIDER_SMTP_RCPT, PROVIDER_RETRY,
         "450 4.2.1", false},
        {CURLE_SEND_ERROR, 451, "4.7.1 Greylisted, try again", PROVIDER_SMTP_RCPT, PROVIDER_RETRY,
         "451 4.7.1", false},
        {CURLE_SEND_ERROR, 452, "4.2.2 Mailbox full", PROVIDER_SMTP_RCPT, PROVIDER_RETRY,
         "452 4.2.2", false},
        {CURLE_WEIRD_SERVER_REPLY, 451, "4.3.0 Temporary failure", PROVIDER_SMTP_BODY,
         PROVIDER_RETRY, "451 4.3.0", false},
        /* Throttling: slow down (listmonk#1300, #746; Gmail's 4.7.28). */
        {CURLE_SEND_ERROR, 450, "Too many recipient attempts", PROVIDER_SMTP_RCPT, PROVIDER_WAIT,
         "450", false},
        {CURLE_WEIRD_SERVER_REPLY, 432, "4.3.21 Mailbox server busy", PROVIDER_SMTP_SESSION,
         PROVIDER_WAIT, "432 4.3.21", false},
        {CURLE_WEIRD_SERVER_REPLY, 421, "4.7.28 Our system has detected an unusual rate",
         PROVIDER_SMTP_SESSION, PROVIDER_WAIT, "421 4.7.28", false},
        /* 5.1.x: the address. */
        {CURLE_SEND_ERROR, 550, "5.1.1 <nobody@example.com>: user unknown", PROVIDER_SMTP_RCPT,
         PROVIDER_STOP_RECIPIENT, "550 5.1.1", false},
        {CURLE_SEND_ERROR, 550, "5.1.2 Host unknown", PROVIDER_SMTP_RCPT, PROVIDER_STOP_RECIPIENT,
         "550 5.1.2", false},
        {CURLE_SEND_ERROR, 550, "Unrouteable address", PROVIDER_SMTP_RCPT, PROVIDER_STOP_RECIPIENT,
         "550", false},
        {CURLE_SEND_ERROR, 552, "5.2.2 Mailbox full", PROVIDER_SMTP_RCPT, PROVIDER_STOP_RECIPIENT,
         "552 5.2.2", false},
        {CURLE_SEND_ERROR, 550, "5.4.1 Recipient address rejected: Access denied",
         PROVIDER_SMTP_RCPT, PROVIDER_STOP_RECIPIENT, "550 5.4.1", false},
        /* The sender's address or the account. */
        {CURLE_SEND_ERROR, 553, "5.1.8 Sender address rejected: Domain not found",
         PROVIDER_SMTP_MAIL, PROVIDER_STOP_ACCOUNT, "553 5.1.8", false},
        {CURLE_SEND_ERROR, 550, "Sender refused", PROVIDER_SMTP_MAIL, PROVIDER_STOP_ACCOUNT, "550",
         false},
        {CURLE_LOGIN_DENIED, 535, "5.7.8 Authentication credentials invalid", PROVIDER_SMTP_SESSION,
         PROVIDER_STOP_ACCOUNT, "535 5.7.8", false},
        {CURLE_SEND_ERROR, 530, "5.7.0 Authentication required", PROVIDER_SMTP_MAIL,
         PROVIDER_STOP_ACCOUNT, "530 5.7.0", false},
        {CURLE_SEND_ERROR, 550, "5.7.1 Relaying denied", PROVIDER_SMTP_RCPT, PROVIDER_STOP_ACCOUNT,
         "550 5.7.1", false},
        /* Policy and content: the message itself. */
        {CURLE_WEIRD_SERVER_REPLY, 550, "5.7.1 Message rejected as spam", PROVIDER_SMTP_BODY,
         PROVIDER_BAD_REQUEST, "550 5.7.1", false},
        {CURLE_WEIRD_SERVER_REPLY, 550, "5.7.26 Unauthenticated email is not accepted",
         PROVIDER_SMTP_BODY, PROVIDER_BAD_REQUEST, "550 5.7.26", false},
        {CURLE_WEIRD_SERVER_REPLY, 552, "5.3.4 Message size exceeds fixed limit",
         PROVIDER_SMTP_BODY, PROVIDER_BAD_REQUEST, "552 5.3.4", false},
        {CURLE_WEIRD_SERVER_REPLY, 554, "Transaction failed", PROVIDER_SMTP_BODY,
         PROVIDER_BAD_REQUEST, "554", false},
        /* An enhanced code of another class is not taken for one. */
        {CURLE_SEND_ERROR, 550, "4.1.1 odd", PROVIDER_SMTP_RCPT, PROVIDER_STOP_RECIPIENT, "550",
         false},
        /* libcurl alone. */
        {CURLE_COULDNT_CONNECT, 0, NULL, PROVIDER_SMTP_SESSION, PROVIDER_RETRY, "curl 7", false},
        {CURLE_COULDNT_RESOLVE_HOST, 0, NULL, PROVIDER_SMTP_SESSION, PROVIDER_RETRY, "curl 6",
         false},
        {CURLE_OPERATION_TIMEDOUT, 250, "OK", PROVIDER_SMTP_RCPT, PROVIDER_RETRY, "curl 28", false},
        {CURLE_OPERATION_TIMEDOUT, 354, "Enter message", PROVIDER_SMTP_BODY, PROVIDER_RETRY,
         "curl 28", true},
        {CURLE_RECV_ERROR, 354, "Enter message", PROVIDER_SMTP_BODY, PROVIDER_RETRY, "curl 56",
         true},
        {CURLE_USE_SSL_FAILED, 250, "HELP", PROVIDER_SMTP_SESSION, PROVIDER_STOP_ACCOUNT, "curl 64",
         false},
        {CURLE_PEER_FAILED_VERIFICATION, 220, "ready", PROVIDER_SMTP_SESSION, PROVIDER_STOP_ACCOUNT,
         "curl 60", false},
        {CURLE_LOGIN_DENIED, 0, NULL, PROVIDER_SMTP_SESSION, PROVIDER_STOP_ACCOUNT, "curl 67",
         false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const s_case_t *c = &cases[i];
        provider_smtp_answer_t a = {.curl_code = c->curl,
                                    .curl_error = "",
                                    .reply = c->reply,
                                    .reply_text = c->text,
                                    .stage = c->stage};
        provider_outcome_t o;
        provider_smtp_classify (&a, S_ID "@shop.example", &o);
        if (o.verdict != c->want || strcmp (o.code, c->code) != 0 || o.uncertain != c->uncertain)
            fail_msg ("case %zu (%d %s): %s %s%s, want %s %s%s", i, c->reply,
                      c->text ? c->text : "", provider_verdict_name (o.verdict), o.code,
                      o.uncertain ? " uncertain" : "", provider_verdict_name (c->want), c->code,
                      c->uncertain ? " uncertain" : "");
        assert_true (o.reason[0] != '\0');
        if (c->want == PROVIDER_SENT) {
            assert_string_equal (o.external_id, S_ID "@shop.example");
            assert_true (o.delivered);
        } else {
            assert_false (o.delivered);
            assert_false (o.opt_out);
        }
    }
    /* The server's words are kept for a person, without the codes. */
    {
        provider_smtp_answer_t a = {.curl_code = CURLE_SEND_ERROR,
                                    .reply = 550,
                                    .reply_text = "5.1.1 <nobody@example.com>: user unknown",
                                    .stage = PROVIDER_SMTP_RCPT};
        provider_outcome_t o;
        provider_smtp_classify (&a, "x", &o);
        assert_string_equal (o.reason, "<nobody@example.com>: user unknown");
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_multipart),
        cmocka_unit_test (test_text_alone_and_plain_subject),
        cmocka_unit_test (test_long_subject_folded),
        cmocka_unit_test (test_no_header_injection),
        cmocka_unit_test (test_unsubscribe_link),
        cmocka_unit_test (test_answers),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
