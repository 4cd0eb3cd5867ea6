/*
 * retain-notifyd turns NotificationRequested into one message on the
 * right channel, at the right time, with consent: a real busd and notifyd
 * on a clock file the test sets, the shared fake of the providers
 * (rt_test_fake_provider: Telegram, Viber and Twilio SMS accounts of the
 * inbox "main"), customers in crm and templates in notify.templates.
 *
 * What a user would notice: "1 бал / 2 бали / 5 балів" (and Russian and
 * English) as the fake receives them, the name filled from the profile, a
 * German customer getting the chain's Ukrainian; an unknown template, a
 * template in no locale of the chain and a missing variable each failing
 * with MessageFailed that says so and nothing sent; the request's
 * channel beating the profile's, the profile's beating the last one
 * written on; Viber answering receiverNotSubscribed handing over to SMS
 * with the consent withdrawn (source provider:6) and the first send
 * naming its successor; marketing without consent not sent, then sent
 * once a ConsentChanged grants it; the same marketing request at 22:00
 * UTC waiting for the morning in Kyiv and going at once in New York (a
 * zone from the phone's country), then leaving at 09:00 Kyiv time; one
 * that expires while it waits dropped, counted and never sent; a replayed
 * request sending nothing twice; an important notification without a
 * receipt going on the next channel as well.
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

#include "rt_clock.h"
#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "retain/v1/notification.pb-c.h"

/* 2026-01-15 15:00 UTC: 17:00 in Kyiv, 10:00 in New York, both awake. */
#define S_T0       1768489200000LL
#define S_HOUR     3600000LL
#define S_TG_TOKEN "123456:TESTTOKEN"
#define S_WAIT_MS  30000
#define S_QUIET_MS 1500 /* long enough for a send that was due to have gone */

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* --- what the fake received --- */

/* A form body's value of name, decoded, into out ("" when absent). */
static void
s_form_value (const char *body, const char *name, char *out, size_t len)
{
    size_t nl = strlen (name), o = 0;
    const char *p = body;
    out[0] = '\0';
    while (p && *p) {
        if (strncmp (p, name, nl) == 0 && p[nl] == '=') {
            for (p += nl + 1; *p && *p != '&' && o + 1 < len; p++) {
                if (*p == '%' && p[1] && p[2]) {
                    char hex[3] = {p[1], p[2], 0};
                    out[o++] = (char)strtol (hex, NULL, 16);
                    p += 2;
                } else {
                    out[o++] = *p == '+' ? ' ' : *p;
                }
            }
            out[o] = '\0';
            return;
        }
        p = strchr (p, '&');
        if (p)
            p++;
    }
}

/* The recipient and text of a recorded request, whichever provider. */
static void
s_request_parts (const rt_fake_request_t *r, char *to, size_t tolen, char *text, size_t textlen)
{
    to[0] = text[0] = '\0';
    if (r->provider == RT_FAKE_TWILIO) {
        s_form_value (r->body, "To", to, tolen);
        s_form_value (r->body, "Body", text, textlen);
        return;
    }
    {
        json_t *doc = json_loads (r->body, 0, NULL);
        json_t *rcpt = json_object_get (doc, r->provider == RT_FAKE_VIBER ? "receiver" : "chat_id");
        const char *t = json_string_value (json_object_get (doc, "text"));
        if (json_is_integer (rcpt))
            snprintf (to, tolen, "%lld", (long long)json_integer_value (rcpt));
        else if (json_is_string (rcpt))
            snprintf (to, tolen, "%s", json_string_value (rcpt));
        snprintf (text, textlen, "%s", t ? t : "");
        json_decref (doc);
    }
}

/* Requests of provider to recipient; the last one's text into text. */
static int
s_sent (rt_fake_kind_t provider, const char *recipient, char *text, size_t textlen)
{
    int n = 0;
    char to[128], body[1024];
    if (text)
        text[0] = '\0';
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
        if (!r)
            break;
        if (r->provider != provider)
            continue;
        s_request_parts (r, to, sizeof to, body, sizeof body);
        if (strcmp (to, recipient) == 0) {
            n++;
            if (text)
                snprintf (text, textlen, "%s", body);
        }
    }
    return n;
}

/* Waits until provider got a request for recipient; its text into text. */
static int
s_sent_wait (rt_fake_kind_t provider, const char *recipient, char *text, size_t textlen)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    int n;
    do {
        n = s_sent (provider, recipient, text, textlen);
        if (n > 0)
            return n;
        usleep (20 * 1000);
    } while (rt_test_now_ms () < until);
    return 0;
}

/* --- the world --- */

/* A customer (locale, zone, preferred channel; "" for none) with
 * identities in inbox "main": "telegram=1001,viber=vb-1" (later ones
 * written on more recently). */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *name, const char *locale, const char *zone,
            const char *preferred, const char *identities)
{
    char buf[256], *save = NULL;
    int k = 0;
    rt_test_router_uuid (id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, locale, time_zone, preferred_channel)"
                        " VALUES ('%s', '%s', '%s', '%s', '%s')",
                        id, name, locale, zone, preferred);
    snprintf (buf, sizeof buf, "%s", identities);
    for (char *p = strtok_r (buf, ",", &save); p; p = strtok_r (NULL, ",", &save), k++) {
        char *eq = strchr (p, '=');
        assert_non_null (eq);
        *eq = '\0';
        rt_test_router_sql (s_w.t.pg,
                            "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                            " customer_id, first_seen, last_seen) VALUES ('%s', 'main', '%s', '%s',"
                            " now() - interval '10 days', now() - interval '10 days' + %d *"
                            " interval '1 hour')",
                            p, eq + 1, id, k);
    }
}

static long long
s_send_count (const char *notification_id)
{
    return rt_test_router_long (s_w.t.pg,
                                "SELECT count(*) FROM notify.sends WHERE notification_id = '%s'",
                                notification_id);
}

static void
s_template (const char *name, const char *locale, const char *variant, const char *text,
            bool quiet_hours)
{
    char *esc = PQescapeLiteral (s_w.t.pg, text, strlen (text));
    assert_non_null (esc);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.templates (name, locale, variant, text, quiet_hours)"
                        " VALUES ('%s', '%s', '%s', %s, %s)",
                        name, locale, variant, esc, quiet_hours ? "true" : "false");
    PQfreemem (esc);
}

static int
s_setup (void **state)
{
    const char *const extra[] = {
        "--request-timeout=2s", "--backoff=100ms", "--backoff-max=300ms", "--retry-max=3",
        "--poll=20ms",          "--sweep=200ms",   "--receipt-wait=10m",  NULL};
    const char *base;
    (void)state;
    s_fake = rt_fake_provider_start ();
    base = rt_fake_provider_base (s_fake);
    rt_test_notify_open (&s_w, "notify_request", S_T0);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, s_w.t.clock, "n1", "notifyd.log", extra);
    rt_test_router_sql (
        s_w.t.pg,
        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url,"
        " token, account_id, sender, rate_per_s, burst) VALUES"
        " ('tg-main', 'main', 'telegram', 'telegram', '%s', '%s', '', '', 50, 10),"
        " ('vb-main', 'main', 'viber', 'viber', '%s', 'vbtoken', '', 'Shop', 50, 10),"
        " ('sms-main', 'main', 'sms', 'twilio', '%s', 'authtoken', 'AC0123',"
        "  '+15550000000', 50, 10)",
        base, S_TG_TOKEN, base, base);
    s_template ("points", "uk", "default",
                "{{name}}, у вас {{plural n one=\"# бал\" few=\"# бали\" many=\"# балів\""
                " other=\"# бала\"}}",
                false);
    s_template ("points", "ru", "default",
                "{{name}}, у вас {{plural n one=\"# балл\" few=\"# балла\" many=\"# баллов\""
                " other=\"# балла\"}}",
                false);
    s_template ("points", "en", "default",
                "{{name}}, you have {{plural n one=\"# point\" other=\"# points\"}}", false);
    s_template ("promo", "en", "default", "{{name}}, -20% today only", false);
    s_template ("promo", "en", "sms", "SMS: {{name}}, -20% today only", false);
    s_template ("only_de", "de", "default", "Hallo {{name}}", false);
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
test_plurals_rendered (void **state)
{
    static const struct {
        const char *locale, *chat, *n, *want;
    } cases[] = {
        {"uk", "1101", "1", "Олена, у вас 1 бал"},
        {"uk-UA", "1102", "2", "Олена, у вас 2 бали"},
        {"uk", "1103", "5", "Олена, у вас 5 балів"},
        {"ru", "1104", "2", "Олена, у вас 2 балла"},
        {"ru", "1105", "11", "Олена, у вас 11 баллов"},
        {"en", "1106", "1", "Олена, you have 1 point"},
        {"en", "1107", "7", "Олена, you have 7 points"},
        /* No German template: the chain's first, Ukrainian. */
        {"de", "1108", "21", "Олена, у вас 21 бал"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1] = "", ident[64], text[512];
        const char *vars[] = {"n", cases[i].n, NULL};
        snprintf (ident, sizeof ident, "telegram=%s", cases[i].chat);
        s_customer (customer, "Олена", cases[i].locale, "", "", ident);
        rt_test_notify_request (s_w.db,
                                &(rt_test_notify_request_t){
                                    .customer = customer, .template_name = "points", .vars = vars},
                                id);
        if (s_sent_wait (RT_FAKE_TELEGRAM, cases[i].chat, text, sizeof text) != 1)
            fail_msg ("%s: nothing reached chat %s", cases[i].locale, cases[i].chat);
        assert_string_equal (text, cases[i].want);
        /* Telegram has no receipts: delivered at once, said with the
         * notification's id. */
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
        {
            rt_test_notify_said_t said;
            rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
            assert_int_equal (said.delivered, 1);
        }
    }
}

static void
test_unknown_template_and_locale (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], a[RT_UUID_STR_LEN + 1] = "", b[RT_UUID_STR_LEN + 1] = "";
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "Ivan", "uk", "", "", "telegram=1201");
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer, .template_name = "no_such_template"}, a);
    rt_test_notify_said_wait (s_w.t.pg, a, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "unknown_template");
    assert_non_null (strstr (said.error, "no_such_template"));

    /* Stored in German only, and the chain is uk, ru, en. */
    rt_test_notify_request (
        s_w.db, &(rt_test_notify_request_t){.customer = customer, .template_name = "only_de"}, b);
    rt_test_notify_said_wait (s_w.t.pg, b, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "unknown_template");
    assert_non_null (strstr (said.error, "uk,ru,en"));
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1201", NULL, 0), 0);
    assert_int_equal (s_send_count (a) + s_send_count (b), 0);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.notifications WHERE id IN"
                                           " ('%s', '%s') AND status = 'failed'",
                                           a, b),
                      2);
}

static void
test_missing_variable_named (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1] = "";
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "", "telegram=1301");
    rt_test_notify_request (
        s_w.db, &(rt_test_notify_request_t){.customer = customer, .template_name = "points"}, id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "missing_variable");
    assert_non_null (strstr (said.error, "\"n\""));
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1301", NULL, 0), 0);
}

static void
test_channel_preference_order (void **state)
{
    char c1[RT_UUID_STR_LEN + 1], c2[RT_UUID_STR_LEN + 1];
    char a[RT_UUID_STR_LEN + 1] = "", b[RT_UUID_STR_LEN + 1] = "", c[RT_UUID_STR_LEN + 1] = "";
    const char *vars[] = {"n", "3", NULL};
    (void)state;
    /* Prefers Viber in the profile; wrote on Telegram last. */
    s_customer (c1, "Ivan", "en", "", "viber", "viber=vb-1401,telegram=1401");
    /* No preference; wrote on Viber last. */
    s_customer (c2, "Ivan", "en", "", "", "telegram=1402,viber=vb-1402");

    /* The request's channel first. */
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){.customer = c1,
                                                        .template_name = "points",
                                                        .vars = vars,
                                                        .channel = RETAIN__V1__CHANNEL__TELEGRAM},
                            a);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1401", NULL, 0), 1);
    /* Else the profile's. */
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = c1, .template_name = "points", .vars = vars}, b);
    assert_int_equal (s_sent_wait (RT_FAKE_VIBER, "vb-1401", NULL, 0), 1);
    /* Else the one written on last. */
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = c2, .template_name = "points", .vars = vars}, c);
    assert_int_equal (s_sent_wait (RT_FAKE_VIBER, "vb-1402", NULL, 0), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1401", NULL, 0), 1);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1402", NULL, 0), 0);
    assert_int_equal (s_sent (RT_FAKE_VIBER, "vb-1401", NULL, 0), 1);
}

static void
test_viber_unsubscribed_falls_back_to_sms (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1] = "", text[512], next[64];
    const char *vars[] = {"n", "1", NULL};
    rt_fake_answer_t unsubscribed = {.kind = RT_FAKE_ERROR, .error = "6"};
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "viber", "viber=vb-1501,sms=+380501115501");
    rt_fake_provider_push (s_fake, RT_FAKE_VIBER, &unsubscribed);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer, .template_name = "promo", .vars = vars},
        id);

    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, "+380501115501", text, sizeof text), 1);
    /* The SMS variant, on the channel that took over. */
    assert_string_equal (text, "SMS: Ivan, -20% today only");
    assert_int_equal (s_sent (RT_FAKE_VIBER, "vb-1501", NULL, 0), 1);
    /* The first send says why and who took over. */
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "failed", S_WAIT_MS), 1);
    rt_test_router_text (s_w.t.pg, next, sizeof next,
                         "SELECT fallback_to FROM notify.sends WHERE id = '%s' AND last_code = '6'"
                         " AND fallback_reason LIKE 'stop_recipient 6:%%'",
                         id);
    assert_true (next[0] != '\0');
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND channel = 'sms' AND notification_id = '%s'",
                                           next, id),
                      1);
    /* Viber's unsubscribe withdrew consent there, both categories. */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.consent WHERE"
                                           " customer_id = '%s' AND channel = 'viber' AND NOT"
                                           " granted AND source = 'provider:6'",
                                           customer),
                      2);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.consent_history WHERE"
                                           " customer_id = '%s' AND source = 'provider:6'",
                                           customer),
                      2);
    /* The notification has not failed: nothing said but the SMS's fate. */
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.failed, 0);

    /* The next notification skips Viber (consent withdrawn) and goes
     * straight to SMS. */
    {
        char again[RT_UUID_STR_LEN + 1] = "";
        rt_test_notify_request (s_w.db,
                                &(rt_test_notify_request_t){
                                    .customer = customer, .template_name = "promo", .vars = vars},
                                again);
        assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                                "SELECT count(*) FROM notify.sends WHERE"
                                                " recipient = '+380501115501'",
                                                2, S_WAIT_MS),
                          2);
        assert_int_equal (rt_test_router_long (s_w.t.pg,
                                               "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                               " AND channel = 'sms'",
                                               again),
                          1);
        assert_int_equal (rt_test_router_long (s_w.t.pg,
                                               "SELECT count(*) FROM notify.notifications WHERE"
                                               " id = '%s' AND skipped LIKE 'viber: transactional"
                                               " consent withdrawn (provider:6)%%'",
                                               again),
                          1);
        usleep (S_QUIET_MS * 1000);
        assert_int_equal (s_sent (RT_FAKE_VIBER, "vb-1501", NULL, 0), 1);
        assert_int_equal (s_sent (RT_FAKE_TWILIO, "+380501115501", NULL, 0), 2);
    }
}

static void
test_marketing_needs_consent (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], a[RT_UUID_STR_LEN + 1] = "", b[RT_UUID_STR_LEN + 1] = "";
    const char *vars[] = {"n", "1", NULL};
    rt_test_notify_said_t said;
    Retain__V1__ConsentChanged cc = RETAIN__V1__CONSENT_CHANGED__INIT;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "", "telegram=1601");
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = customer, .template_name = "promo", .vars = vars, .category = "marketing"},
        a);
    rt_test_notify_said_wait (s_w.t.pg, a, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "no_consent");
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1601", NULL, 0), 0);

    /* Granted on the bus (as an import or the shop's checkbox says). */
    cc.customer_id = customer;
    cc.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    cc.category = "marketing";
    cc.granted = true;
    cc.source = "import";
    rt_test_notify_publish_one (s_w.db, "ConsentChanged", customer, &cc.base, "retain-loyaltyd",
                                NULL);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                            "SELECT count(*) FROM notify.consent WHERE granted"
                                            " AND source = 'import'",
                                            1, S_WAIT_MS),
                      1);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = customer, .template_name = "promo", .vars = vars, .category = "marketing"},
        b);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1601", NULL, 0), 1);
}

/* A STOP keyword (ingest's opt "out") withdraws both categories on its
 * channel, a START gives transactional back and marketing too, since a
 * STOP took it; a STOP from a sender crm does not know is counted. */
static void
test_stop_and_start_keywords (void **state)
{
    char customer[RT_UUID_STR_LEN + 1];
    char q[256];
    Retain__V1__InboundMessage m = RETAIN__V1__INBOUND_MESSAGE__INIT;
    (void)state;
    s_customer (customer, "Petro", "uk", "", "", "sms=+380501230001");
    m.channel = RETAIN__V1__CHANNEL__SMS;
    m.inbox = "main";
    m.external_user_id = "+380501230001";
    m.text = "СТОП";
    m.opt = "out";
    rt_test_notify_publish_one (s_w.db, "InboundMessage", "sms:main:+380501230001", &m.base,
                                "retain-loyaltyd", NULL);
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent WHERE customer_id = '%s' AND channel = 'sms'"
              " AND NOT granted AND source = 'stop_keyword'",
              customer);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, q, 2, S_WAIT_MS), 2);
    m.text = "СТАРТ";
    m.opt = "in";
    rt_test_notify_publish_one (s_w.db, "InboundMessage", "sms:main:+380501230001", &m.base,
                                "retain-loyaltyd", NULL);
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent WHERE customer_id = '%s' AND channel = 'sms'"
              " AND granted AND source = 'stop_keyword'",
              customer);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, q, 2, S_WAIT_MS), 2);
    /* Every change kept. */
    snprintf (q, sizeof q, "SELECT count(*) FROM notify.consent_history WHERE customer_id = '%s'",
              customer);
    assert_int_equal (rt_test_router_long (s_w.t.pg, "%s", q), 4);
    /* Nobody crm knows: counted, nothing recorded. */
    m.external_user_id = "+380509999999";
    m.opt = "out";
    rt_test_notify_publish_one (s_w.db, "InboundMessage", "sms:main:+380509999999", &m.base,
                                "retain-loyaltyd", NULL);
    for (int i = 0; i < 100; i++) {
        if (rt_test_metric (s_n.admin_port,
                            "retain_notify_opt_unresolved_total{type=\"InboundMessage\"}") == 1)
            break;
        usleep (50000);
    }
    assert_true (rt_test_metric (s_n.admin_port,
                                 "retain_notify_opt_unresolved_total{type=\"InboundMessage\"}") ==
                 1);
}

/* Marketing consent on Telegram, granted in the table. */
static void
s_consent (const char *customer)
{
    rt_test_router_sql (
        s_w.t.pg,
        "SELECT notify.consent_set('%s', 'telegram', 'marketing', true, 'operator:t',"
        " now())",
        customer);
}

static void
test_quiet_hours_two_zones_and_expiry (void **state)
{
    char kyiv[RT_UUID_STR_LEN + 1], ny[RT_UUID_STR_LEN + 1];
    char k[RT_UUID_STR_LEN + 1] = "", n[RT_UUID_STR_LEN + 1] = "", e[RT_UUID_STR_LEN + 1] = "";
    const char *vars[] = {"n", "1", NULL};
    const int64_t at22 = S_T0 + 7 * S_HOUR; /* 22:00 UTC: midnight in Kyiv, 17:00 in New York */
    double expired;
    rt_test_notify_said_t said;
    (void)state;
    s_customer (kyiv, "Olena", "en", "Europe/Kyiv", "", "telegram=1701");
    /* No zone in the profile: the phone's country tells (+1: New York). */
    s_customer (ny, "John", "en", "", "", "telegram=1702");
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.contact_points (kind, value, customer_id, proven,"
                        " proven_by) VALUES ('phone', '+12125550100', '%s', false, 'shop')",
                        ny);
    s_consent (kyiv);
    s_consent (ny);

    rt_test_notify_clock_set (&s_w, at22);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = kyiv, .template_name = "promo", .vars = vars, .category = "marketing"},
        k);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = ny, .template_name = "promo", .vars = vars, .category = "marketing"},
        n);
    /* Expires at 23:00 UTC, long before Kyiv's morning. */
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){.customer = kyiv,
                                                        .template_name = "promo",
                                                        .vars = vars,
                                                        .category = "marketing",
                                                        .expires_at = at22 + S_HOUR},
                            e);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1702", NULL, 0), 1);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                            "SELECT count(*) FROM notify.sends WHERE"
                                            " recipient = '1701' AND status = 'queued'",
                                            2, S_WAIT_MS),
                      2);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1701", NULL, 0), 0);
    /* Due at 09:00 in Kyiv: 07:00 UTC (EET, UTC+2, in January). */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT (extract(epoch FROM next_at) * 1000)::bigint"
                                           " FROM notify.sends WHERE id = '%s'",
                                           k),
                      at22 + 9 * S_HOUR);

    /* 23:00:01 UTC: the one with an expiry is dropped, counted, said. */
    rt_test_notify_clock_set (&s_w, at22 + S_HOUR + 1000);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, e, "dropped", S_WAIT_MS), 1);
    rt_test_notify_said_wait (s_w.t.pg, e, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "expired");
    expired = rt_test_metric (s_n.admin_port, "retain_notify_expired_total");
    assert_true (expired >= 1);

    /* 07:00:01 UTC, 09:00:01 in Kyiv: the window opens. */
    rt_test_notify_clock_set (&s_w, at22 + 9 * S_HOUR + 1000);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1701", NULL, 0), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, k, "delivered", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    /* The expired one never went, late or otherwise. */
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1701", NULL, 0), 1);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND status = 'dropped' AND sent_at IS NULL",
                                           e),
                      1);
}

static void
test_replay_sends_nothing_twice (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1] = "", env[RT_UUID_STR_LEN + 1];
    const char *vars[] = {"n", "2", NULL};
    double before;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "", "telegram=1801");
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer, .template_name = "points", .vars = vars},
        id);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1801", NULL, 0), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    before = rt_test_metric (s_n.admin_port,
                             "retain_notify_replayed_total{type=\"NotificationRequested\"}");
    /* The producer's retry: the same notification in a new envelope. */
    rt_test_router_uuid (env);
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){
            .customer = customer, .template_name = "points", .vars = vars, .envelope_id = env},
        id);
    {
        int64_t until = rt_test_now_ms () + S_WAIT_MS;
        while (rt_test_metric (s_n.admin_port,
                               "retain_notify_replayed_total{type=\"NotificationRequested\"}") <=
                   (before < 0 ? 0 : before) &&
               rt_test_now_ms () < until)
            usleep (50 * 1000);
    }
    assert_true (rt_test_metric (s_n.admin_port,
                                 "retain_notify_replayed_total{type=\"NotificationRequested\"}") >
                 (before < 0 ? 0 : before));
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1801", NULL, 0), 1);
    assert_int_equal (s_send_count (id), 1);
}

static void
test_no_receipt_goes_on (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1] = "", next[64];
    const char *vars[] = {"n", "4", NULL};
    (void)state;
    s_customer (customer, "Ivan", "en", "", "viber", "viber=vb-1901,sms=+380501119901");
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer, .template_name = "points", .vars = vars},
        id);
    assert_int_equal (s_sent_wait (RT_FAKE_VIBER, "vb-1901", NULL, 0), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TWILIO, "+380501119901", NULL, 0), 0);
    /* Ten minutes without Viber's receipt: SMS as well. */
    rt_test_notify_clock_set (&s_w, rt_clock_now_ms () + 10 * 60000 + 1000);
    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, "+380501119901", NULL, 0), 1);
    rt_test_router_text (s_w.t.pg, next, sizeof next,
                         "SELECT fallback_to FROM notify.sends WHERE id = '%s' AND status = 'sent'"
                         " AND fallback_reason LIKE 'no delivery receipt%%'",
                         id);
    assert_true (next[0] != '\0');
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_plurals_rendered),
        cmocka_unit_test (test_unknown_template_and_locale),
        cmocka_unit_test (test_missing_variable_named),
        cmocka_unit_test (test_channel_preference_order),
        cmocka_unit_test (test_viber_unsubscribed_falls_back_to_sms),
        cmocka_unit_test (test_marketing_needs_consent),
        cmocka_unit_test (test_stop_and_start_keywords),
        cmocka_unit_test (test_replay_sends_nothing_twice),
        cmocka_unit_test (test_no_receipt_goes_on),
        cmocka_unit_test (test_quiet_hours_two_zones_and_expiry),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
