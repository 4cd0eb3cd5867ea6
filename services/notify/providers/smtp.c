/*
 * smtp: e-mail's pure half (provider.h, "e-mail"): the RFC 5322 message
 * of one send, and what an SMTP session's end means.
 *
 * The message. Headers are From (the account's sender), To, Subject,
 * Date, Message-ID (retain's id at the sender's domain, so a bounce or a
 * reply names the send), MIME-Version, List-Unsubscribe and
 * List-Unsubscribe-Post, then the body: multipart/alternative with a
 * text/plain and a text/html part, or text/plain alone, each UTF-8 in
 * base64 (Cyrillic is two bytes a letter: quoted-printable would triple
 * it). Every line ends in CRLF and stays under 78 bytes, far under RFC
 * 5322's 998; a text's bare LFs become CRLF before encoding (RFC 2045's
 * canonical form). The boundary starts "=_", which base64 never holds.
 * List-Unsubscribe alone may pass 78 (below), never 998.
 *
 * No field can add a header: a subject or a display name holding any
 * control character (CR, LF among them) is refused, addresses are plain
 * ASCII addr-specs checked character by character, and whatever is not
 * printable ASCII goes out as RFC 2047 encoded words (B, UTF-8), each
 * under 76 characters and never cutting a character in two, folded one
 * per line. A short ASCII subject goes as it is.
 *
 * List-Unsubscribe stays on one line: re-folding it is what broke DKIM
 * signatures in nodemailer#1654. The Post header (RFC 8058 one-click)
 * goes only with an https link: without one a receiver ignores it.
 *
 * The answer. libcurl ends a session with a CURLcode and the daemon keeps
 * the server's last reply and the command it answered; the reply decides
 * when there is one (RFC 5321: 4yz transient, 5yz permanent; RFC 3463's
 * enhanced code refines 5yz), libcurl's code when there is none.
 */
#include "provider.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "rt_codec.h"
#include "rt_log.h"
#include "rt_signed.h"
#include "rt_utf8.h"

/* Bytes of text one encoded word carries: 42 make 56 base64 characters,
 * a word of 68 ("=?UTF-8?B?" and "?="), so "Subject: " and one word stay
 * within 78. */
#define S_WORD_BYTES 42
/* An ASCII subject longer than this is encoded (and so folded). */
#define S_PLAIN_SUBJECT_MAX 66
/* Base64 characters per body line (RFC 2045's most). */
#define S_B64_LINE 76

/* --- addresses --- */

static bool
s_atext (unsigned char c)
{
    return isalnum (c) || strchr ("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* An addr-spec: dot-atoms on both sides of one '@', ASCII, no empty
 * label, at most 254 bytes. */
static bool
s_address_ok (const char *a, size_t len)
{
    const char *at = memchr (a, '@', len);
    if (!at || at == a || len > 254 || at - a > 64 || (size_t)(at - a) + 1 >= len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)a[i];
        bool dot = c == '.';
        if (a + i == at)
            continue;
        if (dot &&
            (i == 0 || a[i - 1] == '.' || a[i - 1] == '@' || i + 1 == len || a[i + 1] == '@'))
            return false;
        if (a + i > at && !dot && !isalnum (c) && c != '-')
            return false;
        if (a + i < at && !dot && !s_atext (c))
            return false;
    }
    return true;
}

bool
provider_smtp_address_ok (const char *addr)
{
    return addr && s_address_ok (addr, strlen (addr));
}

/* Splits "Name <addr>" or "addr" into name (may be empty, quotes taken
 * off) and addr. 0 or -1. */
static int
s_parse_mailbox (const char *what, const char *s, char *name, size_t namelen, char *addr,
                 size_t addrlen, char *err, size_t errlen)
{
    const char *lt = s ? strrchr (s, '<') : NULL;
    const char *a = s, *end;
    name[0] = '\0';
    if (!s || !s[0]) {
        rt_errf (err, errlen, "no %s", what);
        return -1;
    }
    if (lt) {
        const char *n = s, *ne = lt;
        end = strchr (lt, '>');
        if (!end || end[1] != '\0') {
            rt_errf (err, errlen, "%s is not \"Name <address>\"", what);
            return -1;
        }
        while (n < ne && *n == ' ')
            n++;
        while (ne > n && ne[-1] == ' ')
            ne--;
        if (ne - n >= 2 && *n == '"' && ne[-1] == '"') {
            n++;
            ne--;
        }
        if ((size_t)(ne - n) >= namelen) {
            rt_errf (err, errlen, "%s's name is too long", what);
            return -1;
        }
        memcpy (name, n, (size_t)(ne - n));
        name[ne - n] = '\0';
        a = lt + 1;
    } else {
        end = s + strlen (s);
    }
    if ((size_t)(end - a) >= addrlen || !s_address_ok (a, (size_t)(end - a))) {
        rt_errf (err, errlen, "%s is not an e-mail address retain can send to", what);
        return -1;
    }
    memcpy (addr, a, (size_t)(end - a));
    addr[end - a] = '\0';
    return 0;
}

static bool
s_has_control (const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* --- headers --- */

/* Appends s as encoded words, one per folded line. */
static void
s_encoded_words (rt_buf_t *b, const char *s)
{
    size_t len = strlen (s), at = 0;
    char b64[4 * ((S_WORD_BYTES + 2) / 3) + 1];
    bool first = true;
    while (at < len) {
        size_t n = 0;
        /* Whole characters only: a decoder reads each word alone. */
        while (at + n < len) {
            size_t k = rt_utf8_seq_len (s + at + n, len - at - n);
            if (k == 0)
                k = 1;
            if (n + k > S_WORD_BYTES)
                break;
            n += k;
        }
        rt_base64_encode ((const uint8_t *)s + at, n, b64);
        rt_buf_printf (b, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", b64);
        first = false;
        at += n;
    }
}

static bool
s_plain_ascii (const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return n <= max && !strstr (s, "=?");
}

/* A display name as it may stand in a header: atoms and spaces as they
 * are, anything else encoded. */
static void
s_phrase (rt_buf_t *b, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (!s_atext (*p) && *p != ' ') {
            s_encoded_words (b, name);
            return;
        }
    }
    rt_buf_puts (b, name);
}

static void
s_mailbox_header (rt_buf_t *b, const char *field, const char *name, const char *addr)
{
    rt_buf_printf (b, "%s: ", field);
    if (name[0]) {
        size_t col = b->len;
        s_phrase (b, name);
        /* The column the address would start at: folded before it when the
         * line would pass 78. */
        while (col > 0 && !(col < b->len && b->data[col - 1] == '\n'))
            col--;
        rt_buf_printf (b, "%s<%s>\r\n", b->len - col + strlen (addr) + 3 > 78 ? "\r\n " : " ",
                       addr);
    } else {
        rt_buf_printf (b, "%s\r\n", addr);
    }
}

static void
s_date (rt_buf_t *b, int64_t at_s)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)at_s;
    struct tm tm;
    gmtime_r (&t, &tm);
    /* Names spelled here: strftime's follow the locale. */
    rt_buf_printf (b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                   tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                   tm.tm_sec);
}

/* --- the body --- */

/* Appends text in base64 lines, after making its line ends CRLF. */
static void
s_base64_part (rt_buf_t *b, const char *text)
{
    rt_buf_t canon = {0};
    char line[S_B64_LINE + 1];
    for (const char *p = text; *p; p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r'))
            rt_buf_put (&canon, "\r", 1);
        rt_buf_put (&canon, p, 1);
    }
    for (size_t at = 0; at < canon.len; at += S_B64_LINE / 4 * 3) {
        size_t n = canon.len - at < S_B64_LINE / 4 * 3 ? canon.len - at : S_B64_LINE / 4 * 3;
        rt_base64_encode ((const uint8_t *)canon.data + at, n, line);
        rt_buf_printf (b, "%s\r\n", line);
    }
    if (canon.failed)
        b->failed = true;
    rt_buf_free (&canon);
}

static void
s_part (rt_buf_t *b, const char *boundary, const char *type, const char *text)
{
    if (boundary)
        rt_buf_printf (b, "--%s\r\n", boundary);
    rt_buf_printf (b,
                   "Content-Type: %s; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: base64\r\n\r\n",
                   type);
    s_base64_part (b, text);
}

int
provider_smtp_build (const provider_mail_t *mail, provider_mail_msg_t *out, char *err,
                     size_t errlen)
{
    char from_name[PROVIDER_ADDR_MAX], to_name[PROVIDER_ADDR_MAX];
    char boundary[PROVIDER_EXT_MAX + 16];
    const char *domain;
    bool html = mail->html && mail->html[0];
    rt_buf_t b = {0};

    memset (out, 0, sizeof *out);
    if (s_parse_mailbox ("the sender", mail->from, from_name, sizeof from_name, out->envelope_from,
                         sizeof out->envelope_from, err, errlen) != 0 ||
        s_parse_mailbox ("the recipient", mail->to, to_name, sizeof to_name, out->envelope_to,
                         sizeof out->envelope_to, err, errlen) != 0 ||
        provider_check_part ("message id", mail->message_id, err, errlen) != 0)
        return -1;
    if (!mail->subject || !mail->subject[0]) {
        rt_errf (err, errlen, "no subject");
        return -1;
    }
    if (!mail->text || !mail->text[0]) {
        rt_errf (err, errlen, "no text");
        return -1;
    }
    if (s_has_control (mail->subject) || s_has_control (from_name) || s_has_control (to_name)) {
        rt_errf (err, errlen, "a control character (a line break?) in the subject or a name");
        return -1;
    }
    if (!rt_utf8_text_ok (mail->subject, strlen (mail->subject)) ||
        !rt_utf8_text_ok (from_name, strlen (from_name)) ||
        !rt_utf8_text_ok (mail->text, strlen (mail->text)) ||
        (html && !rt_utf8_text_ok (mail->html, strlen (mail->html)))) {
        rt_errf (err, errlen, "the subject, a name, the text or the HTML is not UTF-8");
        return -1;
    }
    if (mail->unsubscribe_url &&
        (strncmp (mail->unsubscribe_url, "https://", 8) != 0 ||
         strpbrk (mail->unsubscribe_url, "<>, \r\n\t") || s_has_control (mail->unsubscribe_url))) {
        rt_errf (err, errlen, "the unsubscribe link is not one https URL");
        return -1;
    }
    if (mail->unsubscribe_mail &&
        !s_address_ok (mail->unsubscribe_mail, strlen (mail->unsubscribe_mail))) {
        rt_errf (err, errlen, "the unsubscribe address is not an e-mail address");
        return -1;
    }
    domain = strchr (out->envelope_from, '@') + 1;
    snprintf (out->message_id, sizeof out->message_id, "%s@%s", mail->message_id, domain);
    if (strlen (mail->message_id) + strlen (domain) + 1 >= sizeof out->message_id) {
        rt_errf (err, errlen, "the message id and the sender's domain are too long");
        return -1;
    }
    snprintf (boundary, sizeof boundary, "=_retain_%s", mail->message_id);

    s_mailbox_header (&b, "From", from_name, out->envelope_from);
    s_mailbox_header (&b, "To", to_name, out->envelope_to);
    rt_buf_puts (&b, "Subject: ");
    if (s_plain_ascii (mail->subject, S_PLAIN_SUBJECT_MAX))
        rt_buf_puts (&b, mail->subject);
    else
        s_encoded_words (&b, mail->subject);
    rt_buf_puts (&b, "\r\n");
    s_date (&b, mail->date_s);
    rt_buf_printf (&b, "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n", out->message_id);
    if (mail->unsubscribe_url || mail->unsubscribe_mail) {
        rt_buf_puts (&b, "List-Unsubscribe: ");
        if (mail->unsubscribe_url)
            rt_buf_printf (&b, "<%s>%s", mail->unsubscribe_url, mail->unsubscribe_mail ? ", " : "");
        if (mail->unsubscribe_mail)
            rt_buf_printf (&b, "<mailto:%s?subject=unsubscribe>", mail->unsubscribe_mail);
        rt_buf_puts (&b, "\r\n");
        if (mail->unsubscribe_url)
            rt_buf_puts (&b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    if (html) {
        rt_buf_printf (&b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n",
                       boundary);
        s_part (&b, boundary, "text/plain", mail->text);
        s_part (&b, boundary, "text/html", mail->html);
        rt_buf_printf (&b, "--%s--\r\n", boundary);
    } else {
        s_part (&b, NULL, "text/plain", mail->text);
    }
    if (b.failed || !b.data) {
        rt_buf_free (&b);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    out->data = b.data;
    out->len = b.len;
    return 0;
}

void
provider_mail_msg_free (provider_mail_msg_t *msg)
{
    if (!msg)
        return;
    free (msg->data);
    memset (msg, 0, sizeof *msg);
}

/* --- the link --- */

long
provider_unsubscribe_link (const struct rt_signed_keys_t *keys, const char *base,
                           const char *customer_id, Retain__V1__Channel channel,
                           const char *category, int64_t expires_s, char *out, size_t outlen)
{
    rt_signed_unsubscribe_t u;
    char token[RT_SIGNED_TOKEN_MAX];
    size_t blen = base ? strlen (base) : 0;
    int n;
    if (!keys || !customer_id || !customer_id[0] || !category || blen == 0 ||
        strncmp (base, "https://", 8) != 0 || strlen (customer_id) > RT_SIGNED_CUSTOMER_ID_MAX ||
        strlen (category) > RT_SIGNED_CATEGORY_MAX)
        return -1;
    memset (&u, 0, sizeof u);
    snprintf (u.customer_id, sizeof u.customer_id, "%s", customer_id);
    snprintf (u.category, sizeof u.category, "%s", category);
    u.channel = (int)channel;
    if (rt_signed_unsubscribe_make (keys, &u, expires_s, token, sizeof token) < 0)
        return -1;
    n = snprintf (out, outlen, "%s%s%s", base, base[blen - 1] == '/' ? "" : "/", token);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

/* --- the answer --- */

/* The enhanced code at the start of text ("5.1.1"), into code; its class
 * digit, or 0 when there is none. */
static int
s_enhanced (const char *text, char *code, size_t codelen)
{
    const char *p = text;
    int parts = 0;
    code[0] = '\0';
    if (!p || (*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
        return 0;
    p += 2;
    for (parts = 1; parts < 3; parts++) {
        int digits = 0;
        while (isdigit ((unsigned char)*p) && digits < 3) {
            p++;
            digits++;
        }
        if (digits == 0)
            return 0;
        if (parts == 2)
            break;
        if (*p != '.')
            return 0;
        p++;
    }
    if (*p && *p != ' ')
        return 0;
    snprintf (code, codelen, "%.*s", (int)(p - text), text);
    return text[0] - '0';
}

/* Does the enhanced code's subject.detail match "x.<sd>"? */
static bool
s_detail (const char *enhanced, const char *sd)
{
    return enhanced[0] && strcmp (enhanced + 2, sd) == 0;
}

static bool
s_subject (const char *enhanced, char subject)
{
    return enhanced[0] && enhanced[2] == subject && enhanced[3] == '.';
}

static provider_verdict_t
s_reply_verdict (const provider_smtp_answer_t *a, const char *enhanced, const char *text)
{
    int r = a->reply;
    if (r >= 400 && r < 500) {
        /* Throttling: Outlook's 432 4.3.21, Gmail's 421 4.7.28, listmonk's
         * "450 Too many recipient attempts": slow the account down. */
        if (r == 432 || s_detail (enhanced, "7.28") || strcasestr (text, "too many") ||
            strcasestr (text, "rate limit") || strcasestr (text, "throttl"))
            return PROVIDER_WAIT;
        return PROVIDER_RETRY;
    }
    if (r == 530 || r == 534 || r == 535 || r == 538 || s_detail (enhanced, "7.0") ||
        s_detail (enhanced, "7.8") || s_detail (enhanced, "7.9") || s_detail (enhanced, "7.11") ||
        s_detail (enhanced, "7.14") || (s_detail (enhanced, "7.1") && strcasestr (text, "relay")))
        return PROVIDER_STOP_ACCOUNT;
    if (s_detail (enhanced, "1.7") || s_detail (enhanced, "1.8"))
        return PROVIDER_STOP_ACCOUNT;
    if (s_subject (enhanced, '1') || s_subject (enhanced, '2'))
        return PROVIDER_STOP_RECIPIENT;
    if (a->stage == PROVIDER_SMTP_MAIL && !enhanced[0])
        return PROVIDER_STOP_ACCOUNT;
    if (a->stage == PROVIDER_SMTP_RCPT && (!enhanced[0] || s_subject (enhanced, '4')))
        return PROVIDER_STOP_RECIPIENT;
    if (r == 521 || r == 556)
        return PROVIDER_STOP_RECIPIENT;
    return PROVIDER_BAD_REQUEST;
}

/* The reply's words, printable, without its enhanced code. */
static void
s_reply_words (const char *text, const char *enhanced, char *out, size_t outlen)
{
    size_t n = 0;
    const char *p = text ? text + strlen (enhanced) : "";
    while (*p == ' ')
        p++;
    for (; *p && n + 1 < outlen; p++)
        out[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
    out[n] = '\0';
}

static void
s_curl_verdict (const provider_smtp_answer_t *a, provider_outcome_t *out)
{
    const char *words = a->curl_error && a->curl_error[0]
                            ? a->curl_error
                            : curl_easy_strerror ((CURLcode)a->curl_code);
    char code[16];
    snprintf (code, sizeof code, "curl %d", a->curl_code);
    switch ((CURLcode)a->curl_code) {
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
        provider_set (out, PROVIDER_STOP_ACCOUNT, code, "the server refused the login: %s", words);
        return;
    case CURLE_USE_SSL_FAILED:
        provider_set (out, PROVIDER_STOP_ACCOUNT, code, "no STARTTLS where it is required: %s",
                      words);
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        provider_set (out, PROVIDER_STOP_ACCOUNT, code, "the server's certificate: %s", words);
        return;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        provider_set (out, PROVIDER_STOP_ACCOUNT, code, "the account's SMTP URL: %s", words);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        /* Nothing was handed over: a retry is safe. */
        provider_set (out, PROVIDER_RETRY, code, "%s", words);
        return;
    default:
        break;
    }
    if (a->stage == PROVIDER_SMTP_BODY) {
        /* The message went and its reply did not come: the server may
         * have queued it. */
        provider_set (out, PROVIDER_RETRY, code, "uncertain, no reply to the message: %s", words);
        out->uncertain = true;
        return;
    }
    provider_set (out, PROVIDER_RETRY, code, "%s", words);
}

void
provider_smtp_classify (const provider_smtp_answer_t *a, const char *message_id,
                        provider_outcome_t *out)
{
    char enhanced[16], words[PROVIDER_REASON_MAX], code[PROVIDER_CODE_MAX];
    provider_verdict_t v;
    memset (out, 0, sizeof *out);
    /* The message's own 2yz: sent, whatever became of the QUIT after it. */
    if (a->curl_code == CURLE_OK ||
        (a->stage == PROVIDER_SMTP_BODY && a->reply >= 200 && a->reply < 300)) {
        provider_set (out, PROVIDER_SENT, NULL, "accepted");
        out->delivered = true;
        snprintf (out->external_id, sizeof out->external_id, "%s", message_id ? message_id : "");
        return;
    }
    if (a->reply < 400 || a->reply > 599) {
        s_curl_verdict (a, out);
        return;
    }
    /* An enhanced code of another class than the reply's is not one. */
    if (s_enhanced (a->reply_text, enhanced, sizeof enhanced) != a->reply / 100)
        enhanced[0] = '\0';
    s_reply_words (a->reply_text, enhanced, words, sizeof words);
    v = s_reply_verdict (a, enhanced, words);
    snprintf (code, sizeof code, "%d%s%s", a->reply, enhanced[0] ? " " : "", enhanced);
    provider_set (out, v, code, "%s", words[0] ? words : "no words");
}
