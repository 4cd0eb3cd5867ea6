/*
 * retain-routerd end to end: real webhooks through ingestd and busd reach
 * routerd's consumer, which names the customer and puts every message in
 * their one conversation, assigned to an online operator. A customer who
 * writes on Telegram, shares their number there and then sends an SMS
 * from it is one customer with one conversation. routerd SIGKILLed while
 * 500 messages from 50 customers flow, then started again: every message
 * is in exactly one conversation's timeline, each customer has one open
 * conversation, and its unanswered counter equals a recount. A message
 * PostgreSQL refuses for its data is passed over without holding up the
 * others.
 *
 * Operators and their team are written into routing's tables directly:
 * this test is about the daemon, not about how operators are made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_test.h"
#include "rt_test_ingest.h"
#include "rt_test_router.h"

#define TG_SECRET    "tg-secret-router"
#define TWILIO_TOKEN "twilio-token"
#define CUSTOMERS    50
#define PER_CUSTOMER 10

static rt_test_ingest_t s_t;
static rt_test_routerd_t s_r; /* routerd under test */

static int
s_setup (void **state)
{
    static const rt_test_inbox_t inboxes[] = {
        {"shop-bot", "telegram", TG_SECRET, "{}"},
        {"sms", "sms", TWILIO_TOKEN, "{}"},
    };
    static const char *const gauges[] = {"--gauges=200ms", NULL};
    *state = &s_t;
    rt_test_ingest_start (&s_t, "router_daemon", "", NULL);
    rt_test_ingest_inboxes (&s_t, inboxes, sizeof inboxes / sizeof *inboxes);
    rt_test_routerd_start (&s_r, s_t.dsn, s_t.busd.pub, "router_daemon",
                           "router_daemon-routerd.log", gauges);
    /* routerd's migrations made routing's tables: one team, two operators
     * online with room for everybody. */
    rt_test_pg_exec (s_t.conn, "INSERT INTO routing.teams (id, name) VALUES ('care', 'Care')");
    rt_test_pg_exec (s_t.conn,
                     "INSERT INTO routing.operators (id, name, team_id, capacity, presence,"
                     " presence_at, heartbeat_at) VALUES"
                     " ('op-anna', 'Anna', 'care', 100, 'online', now(), now()),"
                     " ('op-taras', 'Taras', 'care', 100, 'online', now(), now())");
    return 0;
}

static int
s_teardown (void **state)
{
    rt_test_routerd_stop (&s_r);
    return rt_test_ingest_teardown (state);
}

/* A Telegram text message (or, with phone, a share of the sender's own
 * contact) from user `from`. */
static long
s_telegram (long update_id, long from, long message_id, const char *text, const char *phone)
{
    char body[1024], content[256];
    const char *headers[] = {"Content-Type: application/json",
                             "X-Telegram-Bot-Api-Secret-Token: " TG_SECRET, NULL};
    if (phone)
        snprintf (content, sizeof content,
                  "\"contact\":{\"phone_number\":\"%s\",\"first_name\":\"Olena\",\"user_id\":%ld}",
                  phone, from);
    else
        snprintf (content, sizeof content, "\"text\":\"%s\"", text);
    snprintf (body, sizeof body,
              "{\"update_id\":%ld,\"message\":{\"message_id\":%ld,\"from\":{\"id\":%ld,"
              "\"is_bot\":false,\"first_name\":\"Olena\"},\"chat\":{\"id\":%ld,\"type\":"
              "\"private\",\"first_name\":\"Olena\"},\"date\":1795500000,%s}}",
              update_id, message_id, from, from, content);
    return rt_test_http_request (s_t.ingestd.http_port, "POST", "/hooks/telegram/shop-bot", body,
                                 strlen (body), headers, NULL);
}

/* Inbound timeline entries, once routerd has taken what the bus holds. */
static long long
s_wait_timeline (long long want)
{
    return rt_test_pg_wait_long (
        s_t.conn, "SELECT count(*) FROM routing.timeline WHERE kind = 'inbound'", want, 60000);
}

static long long s_q (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static long long
s_q (const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    return rt_test_pg_long (s_t.conn, sql);
}

/* The open conversation of Telegram user `from`, as one row's count of
 * what matches `cond`. */
#define S_CONV_OF(from)                                                                            \
    "FROM routing.conversations c JOIN crm.identities i ON i.customer_id = c.customer_id"          \
    " WHERE i.channel = 'telegram' AND i.external_user_id = '" from "' AND c.status <> 'resolved'"

static void
test_one_customer_one_conversation (void **state)
{
    char *sms;
    size_t len;
    double open;
    (void)state;

    assert_int_equal (s_telegram (1, 42, 1, "Hello, where is my parcel?", NULL), 200);
    assert_int_equal (s_telegram (2, 42, 2, "It was due yesterday", NULL), 200);
    assert_int_equal (s_wait_timeline (2), 2);
    /* One customer, one conversation, with an operator online, 2 waiting. */
    assert_int_equal (s_q ("SELECT count(*) FROM crm.customers"), 1);
    assert_int_equal (s_q ("SELECT count(*) " S_CONV_OF ("42")), 1);
    assert_int_equal (
        s_q ("SELECT count(*) " S_CONV_OF (
            "42") " AND c.assignee IN ('op-anna',"
                  " 'op-taras') AND c.unanswered = 2 AND c.waiting_since IS NOT NULL"),
        1);
    assert_int_equal (s_q ("SELECT sum(open_count) FROM routing.operators"), 1);

    /* They share their own number on Telegram (which proves it), then send
     * an SMS from it: the SMS finds the same customer and conversation. */
    assert_int_equal (s_telegram (3, 42, 3, NULL, "14155551234"), 200);
    /* Taken before the SMS: the two are keyed apart (two partitions), and
     * an SMS handled first would make a customer of its own. */
    assert_int_equal (s_wait_timeline (3), 3);
    sms = rt_test_fixture ("ingest/twilio/sms.form", &len);
    assert_int_equal (rt_test_ingest_twilio_post (s_t.ingestd.http_port, s_t.ingestd.base,
                                                  TWILIO_TOKEN, "/hooks/twilio/sms", sms, len,
                                                  NULL),
                      200);
    free (sms);
    assert_int_equal (s_wait_timeline (4), 4);
    assert_int_equal (s_q ("SELECT count(*) FROM crm.customers"), 1);
    assert_int_equal (s_q ("SELECT count(*) FROM crm.contact_points WHERE kind = 'phone' AND"
                           " value = '+14155551234' AND proven"),
                      1);
    assert_int_equal (s_q ("SELECT count(*) FROM routing.conversations"), 1);
    assert_int_equal (s_q ("SELECT count(DISTINCT channel) FROM routing.timeline t WHERE"
                           " kind = 'inbound'"),
                      2);
    /* The SMS is now the reply channel; every message counts as unanswered. */
    assert_int_equal (
        s_q ("SELECT count(*) " S_CONV_OF ("42") " AND c.channel = 'sms' AND c.unanswered = 4"), 1);

    /* The gauges follow (refreshed every 200 ms here, not per scrape). */
    for (int i = 0; i < 50; i++) {
        open = rt_test_metric (s_r.admin_port, "retain_router_conversations_open");
        if (open == 1 && rt_test_metric (s_r.admin_port, "retain_router_unanswered_messages") == 4)
            break;
        usleep (100000);
    }
    assert_true (rt_test_metric (s_r.admin_port, "retain_router_conversations_open") == 1);
    assert_true (rt_test_metric (s_r.admin_port, "retain_router_unanswered_messages") == 4);
    assert_true (rt_test_metric (s_r.admin_port, "retain_router_team_open{team=\"care\"}") >= 0);
}

/* Sends message k of the stream: customer k % CUSTOMERS, Telegram users
 * 1000 on. */
static void
s_stream (int from, int to)
{
    for (int k = from; k < to; k++) {
        long user = 1000 + k % CUSTOMERS;
        char text[64];
        snprintf (text, sizeof text, "message %d of the stream", k);
        if (s_telegram (10000 + k, user, 100 + k, text, NULL) != 200)
            fail_msg ("message %d was not taken", k);
    }
}

static void
test_sigkill_mid_stream (void **state)
{
    long long before, events, total = CUSTOMERS * PER_CUSTOMER;
    (void)state;
    before = s_q ("SELECT count(*) FROM routing.timeline WHERE kind = 'inbound'");

    s_stream (0, 150);
    /* Killed while it is busy with the stream, never at a quiet moment. */
    if (s_wait_timeline (before + 40) < before + 40)
        fail_msg ("routerd took nothing of the stream");
    rt_test_routerd_kill (&s_r); /* fails unless it died of the signal */
    s_stream (150, 400);         /* while it is down: the bus keeps them */
    rt_test_routerd_restart (&s_r);
    s_stream (400, (int)total);
    assert_int_equal (rt_test_ingest_wait_drained (s_t.conn), 0);

    events = s_q ("SELECT count(*) FROM bus.events WHERE type = 'InboundMessage'");
    assert_int_equal (events, before + total);
    assert_int_equal (s_wait_timeline (events), events);
    /* Every message in exactly one conversation's timeline. */
    assert_int_equal (rt_test_router_misplaced (s_t.conn), 0);
    /* One open conversation per customer, none for anybody twice. */
    assert_int_equal (s_q ("SELECT count(*) FROM crm.identities WHERE channel = 'telegram' AND"
                           " external_user_id::bigint >= 1000"),
                      CUSTOMERS);
    assert_int_equal (rt_test_router_doubly_open (s_t.conn), 0);
    assert_int_equal (s_q ("SELECT count(*) FROM routing.conversations c JOIN crm.identities i"
                           " ON i.customer_id = c.customer_id WHERE i.channel = 'telegram' AND"
                           " i.external_user_id::bigint >= 1000 AND c.status <> 'resolved'"
                           " AND c.unanswered = %d",
                           PER_CUSTOMER),
                      CUSTOMERS);
    /* Unanswered equals a recount of the counted inbound entries. */
    assert_int_equal (s_q ("SELECT count(*) FROM routing.conversations c WHERE unanswered <>"
                           " (SELECT count(*) FROM routing.timeline t WHERE t.conversation_id"
                           " = c.id AND t.kind = 'inbound' AND t.counted)"),
                      0);
    /* Every conversation assigned, no operator over capacity or miscounted. */
    assert_int_equal (s_q ("SELECT count(*) FROM routing.conversations WHERE assignee IS NULL"), 0);
    assert_int_equal (rt_test_router_over_capacity (s_t.conn), 0);
}

/* Publishes one event through busd's ingress, as the shop's ERP. */
static void
s_publish (const char *type, const char *key, const char *json)
{
    rt_test_retainctl_publish (s_t.busd.ingress, "router_daemon-publish.log", type, key, json,
                               "shop-erp");
}

/* An order for a customer never seen makes that customer, holding the
 * shop's id and the shop's claim of the phone; a type routerd does not
 * take (a CouponIssued on the loyalty stream) is passed over and counted. */
static void
test_order_and_unknown_type (void **state)
{
    (void)state;
    s_publish ("CouponIssued", "shop-77",
               "{\"coupon_id\":\"c-1\",\"customer_id\":\"shop-77\",\"code\":\"SORRY10\"}");
    s_publish ("OrderPlaced", "shop-77",
               "{\"order_id\":\"o-1\",\"customer_id\":\"shop-77\",\"customer_phone\":"
               "\"067 111 22 33\",\"customer_name\":\"Ірина\"}");
    assert_int_equal (rt_test_pg_wait_long (s_t.conn,
                                            "SELECT count(*) FROM crm.customers WHERE"
                                            " shop_customer_id = 'shop-77'",
                                            1, 30000),
                      1);
    assert_int_equal (s_q ("SELECT count(*) FROM crm.customers c JOIN crm.contact_points p ON"
                           " p.customer_id = c.id WHERE c.shop_customer_id = 'shop-77' AND"
                           " p.value = '+380671112233' AND NOT p.proven AND c.name = 'Ірина'"),
                      1);
    /* An order opens no conversation. */
    assert_int_equal (s_q ("SELECT count(*) FROM routing.conversations c JOIN crm.customers cu"
                           " ON cu.id = c.customer_id WHERE cu.shop_customer_id = 'shop-77'"),
                      0);
    for (int i = 0; i < 100; i++) {
        if (rt_test_metric (s_r.admin_port, "retain_router_skipped_total{type=\"CouponIssued\"}") ==
            1)
            break;
        usleep (100000);
    }
    assert_true (
        rt_test_metric (s_r.admin_port, "retain_router_skipped_total{type=\"CouponIssued\"}") == 1);
}

/* A message PostgreSQL refuses for its data (here a trigger standing for
 * any constraint a row can break) holds up neither the messages that
 * came with it nor those after it: it is passed over and counted, the
 * others land, and the same customer's next message too. */
static void
test_refused_row_does_not_stall (void **state)
{
    long long before;
    (void)state;
    rt_test_pg_exec (s_t.conn,
                     "CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$"
                     " BEGIN IF NEW.body->>'text' = 'poison' THEN RAISE EXCEPTION 'poisoned row'"
                     " USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$;"
                     " CREATE TRIGGER poison BEFORE INSERT ON routing.timeline FOR EACH ROW"
                     " EXECUTE FUNCTION public.poison()");
    before = s_q ("SELECT count(*) FROM routing.timeline WHERE kind = 'inbound'");
    for (int k = 0; k < 10; k++) {
        char text[32];
        snprintf (text, sizeof text, k == 4 ? "poison" : "hello %d", k);
        assert_int_equal (s_telegram (910000 + k, 5000 + k, 77000 + k, text, NULL), 200);
    }
    assert_int_equal (s_wait_timeline (before + 9), before + 9);
    assert_int_equal (s_q ("SELECT count(*) FROM routing.timeline WHERE body->>'text' = 'poison'"),
                      0);
    for (int i = 0; i < 150; i++) {
        if (rt_test_metric (s_r.admin_port,
                            "retain_router_refused_total{type=\"InboundMessage\"}") >= 1)
            break;
        usleep (100000);
    }
    assert_true (rt_test_metric (s_r.admin_port,
                                 "retain_router_refused_total{type=\"InboundMessage\"}") == 1);
    /* The poisoned customer writes again: it lands. */
    assert_int_equal (s_telegram (910010, 5004, 77010, "hello again", NULL), 200);
    assert_int_equal (s_wait_timeline (before + 10), before + 10);
    assert_int_equal (s_q ("SELECT count(*) " S_CONV_OF ("5004") " AND c.unanswered = 1"), 1);
    rt_test_pg_exec (s_t.conn, "DROP TRIGGER poison ON routing.timeline;"
                               " DROP FUNCTION public.poison()");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_one_customer_one_conversation),
        cmocka_unit_test (test_sigkill_mid_stream),
        cmocka_unit_test (test_order_and_unknown_type),
        cmocka_unit_test (test_refused_row_does_not_stall),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
