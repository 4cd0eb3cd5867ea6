/*
 * retain-notifyd's e-mail where the customer's address is not a channel
 * identity, or is no longer any good: Debian's Exim (rt_test_mail) on
 * loopback with STARTTLS, refusing one address at RCPT with "550 5.1.1".
 *
 * What a user would notice: a customer who never wrote by e-mail but whose
 * card has an address (a contact point the shop gave) gets the
 * notification and an operator's e-mail reply there. An address the server
 * refuses for good goes on the suppression list with where that was said
 * and the server's words, and the next notification and reply to it fail
 * `suppressed` without the server hearing of them again; a permanent
 * failure receipt for a delivered e-mail (a bounce that came later) does
 * the same, a transient one does not.
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

#include "rt_test.h"
#include "rt_test_mail.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"

#define S_SENDER   "Shop <shop@shop.example>"
#define S_REJECTED "nobody-here@example.com"
#define S_WAIT_MS  30000
#define S_QUIET_MS 1500

static rt_test_notify_t s_w;
static rt_test_notifyd_t s_n;
static rt_test_mail_server_t s_exim;

/* The e-mail whose Message-ID names id (owned), once it arrived. */
static char *
s_mail_wait (const char *id)
{
    char message_id[128];
    snprintf (message_id, sizeof message_id, "%s@shop.example", id);
    return rt_test_mail_wait (&s_exim, message_id, S_WAIT_MS);
}

static int
s_mail_count (const char *id)
{
    char message_id[128];
    int n;
    snprintf (message_id, sizeof message_id, "%s@shop.example", id);
    free (rt_test_mail_find (&s_exim, message_id, &n));
    return n;
}

/* RCPT commands Exim refused for address, as its main log says. */
static int
s_refused_at_rcpt (const char *address)
{
    char path[700], needle[160];
    char *log, *p;
    int n = 0;
    snprintf (path, sizeof path, "%s/log/mainlog", s_exim.dir);
    snprintf (needle, sizeof needle, "rejected RCPT <%s>", address);
    log = rt_test_file_read (path, NULL);
    for (p = log ? strstr (log, needle) : NULL; p; p = strstr (p + 1, needle))
        n++;
    free (log);
    return n;
}

/* A customer named Olena (en), with an e-mail identity at address in the
 * inbox "mail" when identity, else with address as a contact point the
 * shop gave. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *address, bool identity)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (
        s_w.t.pg, "INSERT INTO crm.customers (id, name, locale) VALUES ('%s', 'Olena', 'en')", id);
    if (identity)
        rt_test_router_sql (s_w.t.pg,
                            "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                            " customer_id) VALUES ('email', 'mail', '%s', '%s')",
                            address, id);
    else
        rt_test_router_sql (s_w.t.pg,
                            "INSERT INTO crm.contact_points (kind, value, customer_id, proven,"
                            " proven_by) VALUES ('email', '%s', '%s', false, 'shop')",
                            address, id);
}

/* Asks for the "shipped" e-mail (channel: EMAIL, or notifyd's choice). */
static void
s_notify (const char *customer, Retain__V1__Channel channel, char id[RT_UUID_STR_LEN + 1])
{
    const char *vars[] = {"order", "1042", NULL};
    id[0] = '\0';
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = customer, .template_name = "shipped", .vars = vars, .channel = channel},
        id);
}

/* An operator's e-mail reply to customer (routerd's request); its id into
 * id. */
static void
s_reply (const char *customer, const char *text, char id[RT_UUID_STR_LEN + 1])
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    rt_test_router_uuid (id);
    m.message_id = id;
    m.customer_id = (char *)customer;
    m.channel = RETAIN__V1__CHANNEL__EMAIL;
    m.conversation_id = "";
    m.text = (char *)text;
    m.operator_id = "op1";
    rt_test_notify_publish_one (s_w.db, "OutboundMessageRequested", customer, &m.base,
                                "retain-routerd", id);
}

/* A failure receipt for the e-mail whose Message-ID names id. */
static void
s_failure_receipt (const char *id, bool permanent)
{
    Retain__V1__MessageFailed f = RETAIN__V1__MESSAGE_FAILED__INIT;
    char external[128];
    snprintf (external, sizeof external, "%s@shop.example", id);
    f.channel = RETAIN__V1__CHANNEL__EMAIL;
    f.external_id = external;
    f.error_code = permanent ? "5.1.1" : "4.2.2";
    f.error = permanent ? "mailbox unavailable" : "mailbox full";
    f.permanent = permanent;
    rt_test_notify_publish_one (s_w.db, "MessageFailed", id, &f.base, "retain-ingestd", NULL);
}

static int
s_setup (void **state)
{
    char smtp_url[64];
    const char *const extra[] = {smtp_url,
                                 "--smtp-tls=required",
                                 "--smtp-tls-no-verify-tests-only",
                                 "--fallback-chain=email",
                                 "--request-timeout=3s",
                                 "--backoff=100ms",
                                 "--backoff-max=300ms",
                                 "--poll=20ms",
                                 "--sweep=200ms",
                                 NULL};
    (void)state;
    rt_test_mail_server_configure (&s_exim, S_REJECTED);
    rt_test_mail_server_start (&s_exim, "exim-gaps.log");
    rt_test_notify_open (&s_w, "notify_gaps_email", 0);
    snprintf (smtp_url, sizeof smtp_url, "--smtp-url=smtp://127.0.0.1:%d", s_exim.port);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, NULL, "n1", "notifyd-gaps-email.log",
                           extra);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, sender)"
                        " VALUES ('mail-main', 'mail', 'email', 'smtp', '" S_SENDER "')");
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.templates (name, locale, variant, subject, text, html)"
                        " VALUES ('shipped', 'en', 'email', 'Order {{order}} is on its way',"
                        " '{{name}}, order {{order}} is with the carrier.',"
                        " '<p>{{name}}, order {{order}} is with the carrier.</p>')");
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
test_contact_point_address (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1];
    char reply[RT_UUID_STR_LEN + 1], v[512];
    char *msg;
    (void)state;
    s_customer (customer, "olena.card@example.com", false);
    /* On e-mail by name, and by notifyd's choice (the chain: e-mail). */
    s_notify (customer, RETAIN__V1__CHANNEL__EMAIL, a);
    s_notify (customer, RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, b);
    msg = s_mail_wait (a);
    assert_true (rt_test_mail_header (msg, "To", v, sizeof v));
    assert_string_equal (v, "olena.card@example.com");
    free (msg);
    msg = s_mail_wait (b);
    assert_true (rt_test_mail_header (msg, "To", v, sizeof v));
    assert_string_equal (v, "olena.card@example.com");
    free (msg);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, a, "delivered", S_WAIT_MS), 1);

    /* An operator's reply on e-mail goes there too. */
    s_reply (customer, "Good afternoon!\nYour order is ready.", reply);
    msg = s_mail_wait (reply);
    assert_true (rt_test_mail_header (msg, "To", v, sizeof v));
    assert_string_equal (v, "olena.card@example.com");
    assert_true (rt_test_mail_header (msg, "Subject", v, sizeof v));
    assert_string_equal (v, "Good afternoon!");
    free (msg);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, reply, "delivered", S_WAIT_MS), 1);
}

static void
test_refused_at_rcpt_is_suppressed (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1];
    char reply[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, S_REJECTED, true);
    s_notify (customer, RETAIN__V1__CHANNEL__EMAIL, a);
    rt_test_notify_said_wait (s_w.t.pg, a, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "550 5.1.1");
    assert_int_equal (s_refused_at_rcpt (S_REJECTED), 1);
    /* On the list, with the source and the server's words. */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.suppressions WHERE"
                                           " address = '" S_REJECTED "' AND suppressed AND source ="
                                           " 'bounce:smtp' AND reason LIKE '550 5.1.1 %%no such"
                                           " user here%%(message %s)'",
                                           a),
                      1);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.suppression_history WHERE"
                                           " address = '" S_REJECTED "' AND suppressed"),
                      1);

    /* The next notification and an operator's reply: suppressed, before
     * any attempt. */
    s_notify (customer, RETAIN__V1__CHANNEL__EMAIL, b);
    rt_test_notify_said_wait (s_w.t.pg, b, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "suppressed");
    if (!strstr (said.error, "bounce:smtp"))
        fail_msg ("MessageFailed's error: %s", said.error);
    s_reply (customer, "Are you there?", reply);
    rt_test_notify_said_wait (s_w.t.pg, reply, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "suppressed");
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND status = 'failed' AND attempts = 0",
                                           reply),
                      1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_refused_at_rcpt (S_REJECTED), 1);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE"
                                           " notification_id = '%s'",
                                           b),
                      0);
}

static void
test_permanent_receipt_is_suppressed (void **state)
{
    char gone[RT_UUID_STR_LEN + 1], full[RT_UUID_STR_LEN + 1];
    char a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1], c[RT_UUID_STR_LEN + 1],
        d[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (gone, "gone-later@example.com", true);
    s_customer (full, "full-box@example.com", true);
    s_notify (gone, RETAIN__V1__CHANNEL__EMAIL, a);
    s_notify (full, RETAIN__V1__CHANNEL__EMAIL, c);
    free (s_mail_wait (a));
    free (s_mail_wait (c));
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, a, "delivered", S_WAIT_MS), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, c, "delivered", S_WAIT_MS), 1);

    /* The bounces come later: one for good, one for now. */
    s_failure_receipt (a, true);
    s_failure_receipt (c, false);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                            "SELECT count(*) FROM notify.suppressions WHERE"
                                            " address = 'gone-later@example.com' AND suppressed"
                                            " AND source = 'bounce:receipt' AND reason LIKE"
                                            " '5.1.1 mailbox unavailable%'",
                                            1, S_WAIT_MS),
                      1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, c, "failed", S_WAIT_MS), 1);

    s_notify (gone, RETAIN__V1__CHANNEL__EMAIL, b);
    rt_test_notify_said_wait (s_w.t.pg, b, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "suppressed");
    /* A full mailbox is no reason to stop writing. */
    s_notify (full, RETAIN__V1__CHANNEL__EMAIL, d);
    free (s_mail_wait (d));
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_mail_count (b), 0);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.suppressions WHERE"
                                           " address = 'full-box@example.com'"),
                      0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_contact_point_address),
        cmocka_unit_test (test_refused_at_rcpt_is_suppressed),
        cmocka_unit_test (test_permanent_receipt_is_suppressed),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
