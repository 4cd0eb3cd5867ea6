/*
 * retain-notifyd sending e-mail to a real SMTP server: Debian's Exim
 * (exim4-daemon-light), started by rt_test_mail on a free loopback port
 * with a throw-away configuration, STARTTLS with a certificate made for
 * the run by the openssl command (notifyd told not to verify it: tests
 * only), and every message delivered to an mbox the test reads as a mail
 * reader would.
 *
 * What a customer would notice: a NotificationRequested on the e-mail
 * channel arrives once, from the shop's name and address, to theirs, with
 * the Cyrillic subject decoded back exactly, a text part and an HTML part
 * (a variable holding "<b>" & co. escaped in the HTML and left as it is
 * in the text), a Message-ID naming the notification, List-Unsubscribe
 * with the https one-click link (its token verifying as this customer's
 * e-mail consent to that category) and the mailto, and
 * List-Unsubscribe-Post; it went over TLS (Exim's "esmtps"). The send is
 * delivered and MessageDelivered says so. An address the server rejects
 * (550 5.1.1 at RCPT) fails with MessageFailed, permanent, with the code;
 * nothing is delivered. With the server down, the message waits and is
 * retried (transient), and arrives once when the server is back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_signed.h"
#include "rt_test.h"
#include "rt_test_mail.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

#define S_KEYS     "k1:0123456789abcdef0123456789abcdef"
#define S_SENDER   "Крамниця «Ромашка» <shop@shop.example>"
#define S_SUBJECT  "Олена, ваше замовлення №1042 вже в дорозі"
#define S_REJECTED "nobody-here@example.com"
#define S_WAIT_MS  30000

static rt_test_notify_t s_w;
static rt_test_notifyd_t s_n;
static rt_test_mail_server_t s_exim;

/* --- the mail -------------------------------------------------------- */

/* The e-mail notifyd sent for notification id (owned), once it arrived. */
static char *
s_mail_wait (const char *id)
{
    char message_id[128];
    snprintf (message_id, sizeof message_id, "%s@shop.example", id);
    return rt_test_mail_wait (&s_exim, message_id, S_WAIT_MS);
}

/* How many e-mails for notification id arrived. */
static int
s_mail_count (const char *id)
{
    char message_id[128];
    int n;
    snprintf (message_id, sizeof message_id, "%s@shop.example", id);
    free (rt_test_mail_find (&s_exim, message_id, &n));
    return n;
}

/* --- the bus ----------------------------------------------------------- */

/* Asks for the "shipped" e-mail to customer about order; its id into id. */
static void
s_notify (const char *customer, const char *order, char id[RT_UUID_STR_LEN + 1])
{
    const char *vars[] = {"order", order, NULL};
    id[0] = '\0';
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){.customer = customer,
                                                        .template_name = "shipped",
                                                        .vars = vars,
                                                        .channel = RETAIN__V1__CHANNEL__EMAIL},
                            id);
}

/* A customer named Олена (uk) who wrote to the shop from address. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *address)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (
        s_w.t.pg, "INSERT INTO crm.customers (id, name, locale) VALUES ('%s', 'Олена', 'uk')", id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                        " customer_id, first_seen, last_seen) VALUES ('email', 'mail', '%s', '%s',"
                        " now() - interval '1 day', now() - interval '1 day')",
                        address, id);
}

/* --- the world --------------------------------------------------------- */

static void
s_template (void)
{
    rt_test_router_sql (
        s_w.t.pg, "INSERT INTO notify.templates (name, locale, variant, subject, text, html) VALUES"
                  " ('shipped', 'uk', 'email', '{{name}}, ваше замовлення №{{order}} вже в дорозі',"
                  "  E'{{name}}, замовлення №{{order}} передано перевізнику.\\nДякуємо!',"
                  "  '<p>{{name}}, замовлення <b>№{{order}}</b> передано перевізнику.</p>')");
}

static int
s_setup (void **state)
{
    char smtp_url[64];
    const char *const extra[] = {smtp_url,
                                 "--smtp-tls=required",
                                 "--smtp-tls-no-verify-tests-only",
                                 "--link-base=https://shop.example/u/",
                                 "--link-keys=" S_KEYS,
                                 "--unsubscribe-mail=unsubscribe@shop.example",
                                 "--fallback-chain=email",
                                 "--request-timeout=3s",
                                 "--backoff=100ms",
                                 "--backoff-max=300ms",
                                 "--retry-max=100",
                                 "--poll=20ms",
                                 "--sweep=200ms",
                                 NULL};
    (void)state;
    rt_test_mail_server_configure (&s_exim, S_REJECTED);
    rt_test_mail_server_start (&s_exim, "exim.log");
    rt_test_notify_open (&s_w, "notify_email", 0);
    snprintf (smtp_url, sizeof smtp_url, "--smtp-url=smtp://127.0.0.1:%d", s_exim.port);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, NULL, "n1", "notifyd-email.log", extra);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, sender)"
                        " VALUES ('mail-main', 'mail', 'email', 'smtp', '" S_SENDER "')");
    s_template ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notifyd_stop (&s_n);
    rt_test_notify_close (&s_w);
    rt_test_mail_server_stop (&s_exim);
    return 0;
}

/* --- the tests --------------------------------------------------------- */

static void
test_delivered (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], v[2048], text[2048];
    char err[256];
    char *msg;
    rt_test_notify_said_t said;
    rt_signed_keys_t *keys;
    rt_signed_unsubscribe_t u;
    (void)state;
    s_customer (customer, "olena@example.com");
    s_notify (customer, "1042", id);
    msg = s_mail_wait (id);

    assert_true (rt_test_mail_header (msg, "From", v, sizeof v));
    rt_test_mail_decode_words (v, text, sizeof text);
    assert_string_equal (text, S_SENDER);
    assert_true (rt_test_mail_header (msg, "To", v, sizeof v));
    assert_string_equal (v, "olena@example.com");
    assert_true (rt_test_mail_header (msg, "Subject", v, sizeof v));
    rt_test_mail_decode_words (v, text, sizeof text);
    assert_string_equal (text, S_SUBJECT);
    assert_true (rt_test_mail_header (msg, "Date", v, sizeof v));
    assert_true (rt_test_mail_header (msg, "MIME-Version", v, sizeof v));
    assert_string_equal (v, "1.0");
    /* Over TLS: Exim says "esmtps" for a session after STARTTLS. */
    assert_true (rt_test_mail_header (msg, "Received", v, sizeof v));
    if (!strstr (v, "esmtps"))
        fail_msg ("not received over TLS: %s", v);

    assert_true (rt_test_mail_header (msg, "List-Unsubscribe", v, sizeof v));
    if (strncmp (v, "<https://shop.example/u/", 24) != 0 ||
        !strstr (v, ">, <mailto:unsubscribe@shop.example?subject=unsubscribe>"))
        fail_msg ("List-Unsubscribe: %s", v);
    *strchr (v, '>') = '\0';
    keys = rt_signed_keys_parse (S_KEYS, err, sizeof err);
    assert_non_null (keys);
    assert_int_equal (rt_signed_unsubscribe_read (keys, v + 24, time (NULL), &u), RT_SIGNED_OK);
    assert_string_equal (u.customer_id, customer);
    assert_int_equal (u.channel, RETAIN__V1__CHANNEL__EMAIL);
    assert_string_equal (u.category, "transactional");
    rt_signed_keys_destroy (&keys);
    assert_true (rt_test_mail_header (msg, "List-Unsubscribe-Post", v, sizeof v));
    assert_string_equal (v, "List-Unsubscribe=One-Click");

    assert_true (rt_test_mail_header (msg, "Content-Type", v, sizeof v));
    assert_int_equal (strncmp (v, "multipart/alternative;", 22), 0);
    rt_test_mail_part (msg, "text/plain", text, sizeof text);
    assert_string_equal (text, "Олена, замовлення №1042 передано перевізнику.\r\nДякуємо!");
    rt_test_mail_part (msg, "text/html", text, sizeof text);
    assert_string_equal (text, "<p>Олена, замовлення <b>№1042</b> передано перевізнику.</p>");
    free (msg);

    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND external_id = '%s@shop.example'",
                                           id, id),
                      1);

    /* A variable holding markup: escaped in the HTML, as it is in the text
     * and the subject. */
    s_notify (customer, "7 <b>&</b>", id);
    msg = s_mail_wait (id);
    rt_test_mail_part (msg, "text/html", text, sizeof text);
    assert_string_equal (
        text, "<p>Олена, замовлення <b>№7 &lt;b&gt;&amp;&lt;/b&gt;</b> передано перевізнику.</p>");
    rt_test_mail_part (msg, "text/plain", text, sizeof text);
    assert_string_equal (text, "Олена, замовлення №7 <b>&</b> передано перевізнику.\r\nДякуємо!");
    assert_true (rt_test_mail_header (msg, "Subject", v, sizeof v));
    rt_test_mail_decode_words (v, text, sizeof text);
    assert_string_equal (text, "Олена, ваше замовлення №7 <b>&</b> вже в дорозі");
    free (msg);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    assert_int_equal (s_mail_count (id), 1);
}

static void
test_rejected_recipient (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, S_REJECTED);
    s_notify (customer, "1043", id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "550 5.1.1");
    if (!strstr (said.error, "no such user here"))
        fail_msg ("MessageFailed's error: %s", said.error);
    assert_int_equal (said.delivered, 0);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND status = 'failed' AND last_verdict ="
                                           " 'stop_recipient' AND attempts = 1",
                                           id),
                      1);
    assert_int_equal (s_mail_count (id), 0);
}

static void
test_server_down (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], sql[256];
    rt_test_notify_said_t said;
    char *msg;
    (void)state;
    rt_test_mail_server_stop (&s_exim);
    s_customer (customer, "taras@example.com");
    s_notify (customer, "1044", id);
    /* Refused connections: transient, retried with backoff. */
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND failures >= 2"
              " AND last_verdict = 'retry' AND last_code = 'curl 7'",
              id);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, sql, 1, S_WAIT_MS), 1);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.failed, 0);
    rt_test_mail_server_start (&s_exim, "exim-again.log");
    msg = s_mail_wait (id);
    free (msg);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    usleep (500 * 1000);
    assert_int_equal (s_mail_count (id), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_delivered),
        cmocka_unit_test (test_rejected_recipient),
        cmocka_unit_test (test_server_down),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
