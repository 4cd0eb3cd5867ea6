/*
 * retain-notifyd's sender as a customer and an operator see it: a real
 * busd and notifyd on a moved clock, Telegram faked on loopback
 * (rt_fake_provider), customers in crm, one sending account.
 *
 * What a user would notice: a request goes out at once even though the
 * sender's poll is an hour, because queued sends wake it; a marketing
 * message, and a transactional one whose template waits out the quiet
 * hours, queued in the evening but claimed only once the customer's quiet
 * hours began, waits for their morning, while a plain transactional one
 * goes at once; and when PostgreSQL refuses the outcomes' writes for a
 * while, or drops the sender's connection in the middle of recording
 * them, every message still reaches its chat exactly once, is delivered,
 * is said once on the bus, and nothing is sent again as uncertain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"

/* 2026-01-15 18:30 UTC: 20:30 in Kyiv (UTC+2 in January), before the
 * quiet hours (21:00-09:00). */
#define S_T0       1768501800000LL
#define S_HOUR     3600000LL
#define S_TOKEN    "123456:TESTTOKEN"
#define S_WAIT_MS  30000
#define S_QUIET_MS 1500 /* long enough for a send that was due to have gone */
#define S_BATCH    20   /* messages of each flush test */

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* --- what the fake received --- */

/* Telegram requests to chat with text (NULL: any text). */
static int
s_seen (long long chat, const char *text)
{
    int n = 0;
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
        json_t *doc;
        if (!r)
            break;
        if (r->provider != RT_FAKE_TELEGRAM)
            continue;
        doc = json_loads (r->body, 0, NULL);
        if (json_integer_value (json_object_get (doc, "chat_id")) == chat &&
            (!text || strcmp (json_string_value (json_object_get (doc, "text")), text) == 0))
            n++;
        json_decref (doc);
    }
    return n;
}

/* Waits until chat got a request; how many it got. */
static int
s_seen_wait (long long chat, int timeout_ms)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    int n;
    do {
        n = s_seen (chat, NULL);
        if (n > 0)
            return n;
        usleep (10 * 1000);
    } while (rt_test_now_ms () < until);
    return 0;
}

/* --- the world --- */

/* A customer in Kyiv's zone with a Telegram identity (inbox "main") and
 * marketing consent there. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], long long chat)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, locale, time_zone)"
                        " VALUES ('%s', 'Olena', 'en', 'Europe/Kyiv')",
                        id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " VALUES ('telegram', 'main', '%lld', '%s')",
                        chat, id);
    rt_test_router_sql (s_w.t.pg,
                        "SELECT notify.consent_set('%s', 'telegram', 'marketing', true,"
                        " 'operator:t', now())",
                        id);
}

/* An operator's reply to customer, as routerd asks for it. */
static void
s_reply (const char *message_id, const char *customer, const char *text)
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    m.message_id = (char *)message_id;
    m.customer_id = (char *)customer;
    m.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    m.conversation_id = "";
    m.text = (char *)text;
    m.operator_id = "op1";
    rt_test_notify_publish_one (s_w.db, "OutboundMessageRequested", customer, &m.base,
                                "retain-routerd", message_id);
}

/* Starts the replica with the test's arguments after the common ones. */
static void
s_start (const char *const more[])
{
    char api[96];
    const char *extra[16] = {api, "--request-timeout=10s"};
    size_t k = 2;
    rt_test_notifyd_stop (&s_n); /* one a test failed left running */
    snprintf (api, sizeof api, "--telegram-api=%s", rt_fake_provider_base (s_fake));
    for (size_t i = 0; more && more[i] && k < 15; i++)
        extra[k++] = more[i];
    extra[k] = NULL;
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, s_w.t.clock, "n1", "notifyd-sender.log",
                           extra);
}

static int
s_setup (void **state)
{
    (void)state;
    s_fake = rt_fake_provider_start ();
    rt_test_notify_open (&s_w, "notify_sender", S_T0);
    /* notifyd migrates notify at its start; the account comes after. */
    s_start (NULL);
    rt_test_notifyd_stop (&s_n);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, token,"
                        " rate_per_s, burst) VALUES ('tg-main', 'main', 'telegram', 'telegram',"
                        " '%s', 1000, 1000)",
                        S_TOKEN);
    rt_test_router_sql (s_w.t.pg, "INSERT INTO notify.templates (name, locale, text, quiet_hours)"
                                  " VALUES ('promo', 'en', 'Promo {{n}}', false),"
                                  " ('notice', 'en', 'Notice {{n}}', true)");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notify_teardown (&s_n, &s_w, &s_fake);
    return 0;
}

/* --- the tests --- */

static void
test_queued_sends_wake_the_sender (void **state)
{
    const char *const slow[] = {"--poll=1h", "--sweep=1h", NULL};
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    (void)state;
    s_start (slow);
    for (int i = 0; i < 3; i++) {
        char text[32];
        int64_t t0;
        /* A customer each: one chat's budget is a message a second. */
        s_customer (customer, 1001 + i);
        snprintf (text, sizeof text, "right away %d", i);
        rt_test_router_uuid (msg);
        t0 = rt_test_now_ms ();
        s_reply (msg, customer, text);
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "delivered", S_WAIT_MS), 1);
        printf ("poll 1h: message %d delivered %lld ms after its request\n", i,
                (long long)(rt_test_now_ms () - t0));
        assert_true (rt_test_now_ms () - t0 < 5000);
        assert_int_equal (s_seen (1001 + i, text), 1);
    }
    rt_test_notifyd_stop (&s_n);
}

static void
test_quiet_hours_rechecked_at_claim (void **state)
{
    const char *const args[] = {"--poll=20ms", "--sweep=300ms", NULL};
    const char *vars[] = {"n", "1", NULL};
    const int64_t at2130 = S_T0 + S_HOUR;                /* 21:30 in Kyiv */
    const int64_t at0900 = S_T0 + 12 * S_HOUR + 1800000; /* 09:00 in Kyiv the next day */
    char promo_c[RT_UUID_STR_LEN + 1], notice_c[RT_UUID_STR_LEN + 1], reply_c[RT_UUID_STR_LEN + 1];
    char promo[RT_UUID_STR_LEN + 1] = "", notice[RT_UUID_STR_LEN + 1] = "";
    char reply[RT_UUID_STR_LEN + 1];
    (void)state;
    rt_test_notify_clock_set (&s_w, S_T0);
    s_customer (promo_c, 2001);
    s_customer (notice_c, 2002);
    s_customer (reply_c, 2003);
    /* The account waits (a provider's pause): the sends are queued at
     * 20:30, outside the quiet hours, and not claimed. */
    rt_test_pg_exec (s_w.t.pg, "UPDATE notify.accounts SET paused_until = '2100-01-01'"
                               " WHERE id = 'tg-main'");
    s_start (args);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = promo_c, .template_name = "promo", .vars = vars, .category = "marketing"},
        promo);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = notice_c, .template_name = "notice", .vars = vars},
        notice);
    rt_test_router_uuid (reply);
    s_reply (reply, reply_c, "a plain reply");
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                            "SELECT count(*) FROM notify.sends WHERE status ="
                                            " 'queued' AND recipient IN ('2001', '2002', '2003')"
                                            " AND next_at <= to_timestamp(1768501860)",
                                            3, S_WAIT_MS),
                      3);

    /* 21:30: the quiet hours began before anything was claimed. */
    rt_test_notify_clock_set (&s_w, at2130);
    rt_test_pg_exec (s_w.t.pg, "UPDATE notify.accounts SET paused_until = NULL"
                               " WHERE id = 'tg-main'");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, reply, "delivered", S_WAIT_MS), 1);
    assert_int_equal (s_seen (2003, "a plain reply"), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_seen (2001, NULL), 0);
    assert_int_equal (s_seen (2002, NULL), 0);
    /* Both wait for 09:00 in Kyiv. */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id IN ('%s',"
                                           " '%s') AND status = 'queued' AND next_at ="
                                           " to_timestamp(%lld / 1000.0)",
                                           promo, notice, (long long)at0900),
                      2);

    /* 09:00:01 in Kyiv: both go, once each. */
    rt_test_notify_clock_set (&s_w, at0900 + 1000);
    assert_int_equal (s_seen_wait (2001, S_WAIT_MS), 1);
    assert_int_equal (s_seen_wait (2002, S_WAIT_MS), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, promo, "delivered", S_WAIT_MS), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, notice, "delivered", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_seen (2001, "Promo 1"), 1);
    assert_int_equal (s_seen (2002, "Notice 1"), 1);
    rt_test_notifyd_stop (&s_n);
}

/* A trigger on the outcomes of the sends to chats [lo, hi): PostgreSQL
 * refuses them while public.refuse has a row, or (stall) holds the first
 * one for 3 s, once (a sequence: its count survives the rollback). */
static void
s_refuse_outcomes (long long lo, long long hi, bool stall)
{
    rt_test_pg_exec (s_w.t.pg, "CREATE TABLE IF NOT EXISTS public.refuse (at timestamptz)");
    rt_test_pg_exec (s_w.t.pg, "CREATE SEQUENCE IF NOT EXISTS public.stalls");
    rt_test_pg_exec (s_w.t.pg, "DROP TRIGGER IF EXISTS refuse ON notify.sends");
    rt_test_router_sql (s_w.t.pg,
                        "CREATE OR REPLACE FUNCTION public.refuse_outcome() RETURNS trigger"
                        " LANGUAGE plpgsql AS $$ BEGIN"
                        "   %s"
                        "   RETURN NEW;"
                        " END $$",
                        stall ? "IF nextval('public.stalls') = 1 THEN PERFORM pg_sleep(3); END IF;"
                              : "IF EXISTS (SELECT 1 FROM public.refuse) THEN"
                                "   RAISE EXCEPTION 'the test refuses this outcome';"
                                " END IF;");
    rt_test_router_sql (s_w.t.pg,
                        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON notify.sends"
                        " FOR EACH ROW WHEN (OLD.status = 'sending'"
                        "   AND OLD.recipient::bigint BETWEEN %lld AND %lld)"
                        " EXECUTE FUNCTION public.refuse_outcome()",
                        lo, hi - 1);
    if (!stall)
        rt_test_pg_exec (s_w.t.pg, "INSERT INTO public.refuse VALUES (now())");
}

/* S_BATCH replies to chats from first, published together; their ids
 * into ids. */
static void
s_batch (long long first, char ids[][RT_UUID_STR_LEN + 1])
{
    for (int i = 0; i < S_BATCH; i++) {
        char customer[RT_UUID_STR_LEN + 1], text[32];
        s_customer (customer, first + i);
        rt_test_router_uuid (ids[i]);
        snprintf (text, sizeof text, "batch %lld", first + i);
        s_reply (ids[i], customer, text);
    }
}

/* Every message of the batch delivered, once in its chat and once on the
 * bus, and nothing sent again as uncertain. */
static void
s_batch_delivered_once (long long first, char ids[][RT_UUID_STR_LEN + 1])
{
    double resent;
    for (int i = 0; i < S_BATCH; i++) {
        char text[32];
        rt_test_notify_said_t said;
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, ids[i], "delivered", S_WAIT_MS), 1);
        rt_test_notify_said_wait (s_w.t.pg, ids[i], &said, S_WAIT_MS);
        assert_int_equal (said.delivered, 1);
        assert_int_equal (said.failed, 0);
        snprintf (text, sizeof text, "batch %lld", first + i);
        if (s_seen (first + i, NULL) != 1 || s_seen (first + i, text) != 1)
            fail_msg ("chat %lld got %d requests", first + i, s_seen (first + i, NULL));
    }
    resent = rt_test_metric (s_n.admin_port, "retain_notify_uncertain_resent_total");
    assert_true (resent <= 0);
    assert_int_equal (
        rt_test_router_long (s_w.t.pg,
                             "SELECT count(*) FROM notify.sends WHERE recipient::bigint"
                             " BETWEEN %lld AND %lld AND (attempts <> 1 OR resent <> 0)",
                             first, first + S_BATCH - 1),
        0);
}

static void
test_flush_refused_then_recorded (void **state)
{
    const char *const args[] = {"--poll=20ms", "--sweep=300ms", NULL};
    char ids[S_BATCH][RT_UUID_STR_LEN + 1];
    (void)state;
    s_start (args);
    s_refuse_outcomes (3000, 3000 + S_BATCH, false);
    s_batch (3000, ids);
    /* The messages go out; their outcomes cannot be written. */
    for (int i = 0; i < S_BATCH; i++)
        assert_int_equal (s_seen_wait (3000 + i, S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE status ="
                                           " 'sending' AND recipient::bigint BETWEEN 3000 AND %d",
                                           3000 + S_BATCH - 1),
                      S_BATCH);
    /* PostgreSQL takes them again: recorded, nothing sent twice. */
    rt_test_pg_exec (s_w.t.pg, "DELETE FROM public.refuse");
    s_batch_delivered_once (3000, ids);
    rt_test_notifyd_stop (&s_n);
}

static void
test_connection_lost_mid_flush (void **state)
{
    const char *const args[] = {"--poll=20ms", "--sweep=300ms", NULL};
    char ids[S_BATCH][RT_UUID_STR_LEN + 1];
    long long killed = 0;
    (void)state;
    s_start (args);
    s_refuse_outcomes (4000, 4000 + S_BATCH, true);
    s_batch (4000, ids);
    /* A flush holds its transaction open in the trigger: its connection
     * goes, in the middle of recording the outcomes. */
    for (int i = 0; i < 500 && killed == 0; i++) {
        killed = rt_test_pg_long (s_w.t.pg,
                                  "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE application_name LIKE 'retain-notifyd-sender-%'"
                                  " AND query LIKE '%record_outcomes%' AND state = 'active'");
        if (killed == 0)
            usleep (10 * 1000);
    }
    assert_true (killed >= 1);
    s_batch_delivered_once (4000, ids);
    rt_test_notifyd_stop (&s_n);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_queued_sends_wake_the_sender),
        cmocka_unit_test (test_quiet_hours_rechecked_at_claim),
        cmocka_unit_test (test_flush_refused_then_recorded),
        cmocka_unit_test (test_connection_lost_mid_flush),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
