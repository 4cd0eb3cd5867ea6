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

#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "rt_test_fake_provider.h"
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

static rt_test_router_t s_t;
static rt_test_busd_t s_busd;
static rt_db_t *s_db; /* publishes through the outbox */
static rt_fake_provider_t *s_fake;
static pid_t s_notifyd;
static int s_admin;

/* --- the clock --- */

/* Sets the wall clock every process on the clock file reads to at_ms. */
static void
s_clock_set (int64_t at_ms)
{
    int64_t wall = 0, mono = 0;
    rt_clock_offsets (&wall, &mono);
    assert_int_equal (rt_clock_file_set (s_t.clock, at_ms - (rt_clock_now_ms () - wall), mono), 0);
}

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

/* --- the bus --- */

/* What notifyd said on the bus about one message id. */
typedef struct {
    int delivered;   /* MessageDelivered events */
    int failed;      /* MessageFailed events */
    bool permanent;  /* the last MessageFailed's */
    char code[64];   /* its error_code */
    char error[512]; /* its error */
} s_said_t;

static void
s_said (const char *message_id, s_said_t *out)
{
    PGresult *r = PQexecParams (s_t.pg,
                                "SELECT type, payload FROM bus.events WHERE producer = "
                                "'retain-notifyd' AND type IN ('MessageDelivered', "
                                "'MessageFailed') ORDER BY seq",
                                0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    memset (out, 0, sizeof *out);
    for (int i = 0; i < PQntuples (r); i++) {
        const uint8_t *data = (const uint8_t *)PQgetvalue (r, i, 1);
        size_t len = (size_t)PQgetlength (r, i, 1);
        if (strcmp (PQgetvalue (r, i, 0), "MessageDelivered") == 0) {
            Retain__V1__MessageDelivered *d =
                retain__v1__message_delivered__unpack (NULL, len, data);
            assert_non_null (d);
            out->delivered += strcmp (d->message_id, message_id) == 0;
            retain__v1__message_delivered__free_unpacked (d, NULL);
        } else {
            Retain__V1__MessageFailed *f = retain__v1__message_failed__unpack (NULL, len, data);
            assert_non_null (f);
            if (strcmp (f->message_id, message_id) == 0) {
                out->failed++;
                out->permanent = f->permanent;
                snprintf (out->code, sizeof out->code, "%s", f->error_code);
                snprintf (out->error, sizeof out->error, "%s", f->error);
            }
            retain__v1__message_failed__free_unpacked (f, NULL);
        }
    }
    PQclear (r);
}

static void
s_said_wait (const char *message_id, s_said_t *out)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    do {
        s_said (message_id, out);
        if (out->delivered || out->failed)
            return;
        usleep (50 * 1000);
    } while (rt_test_now_ms () < until);
}

static void
s_publish (const char *type, const char *key, const ProtobufCMessage *payload, const char *id)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, "retain-loyaltyd");
    ProtobufCBinaryData packed;
    assert_non_null (env);
    if (id) {
        free (env->id);
        env->id = strdup (id);
    }
    packed.data = rt_envelope_pack (env, &packed.len);
    assert_non_null (packed.data);
    rt_envelope_free (env);
    if (rt_db_begin (s_db) != 0 || rt_outbox_append_batch (s_db, &packed, 1) != 0 ||
        rt_db_commit (s_db) != 0) {
        char why[512];
        snprintf (why, sizeof why, "%s", rt_db_error (s_db));
        rt_db_rollback (s_db);
        fail_msg ("publishing: %s", why);
    }
    free (packed.data);
}

/* A request's fields; vars are name=value pairs, NULL-terminated. */
typedef struct {
    const char *customer;
    const char *template_name;
    const char *const *vars;
    Retain__V1__Channel channel;
    const char *category;
    int64_t not_before;
    int64_t expires_at;
    const char *envelope_id; /* NULL: a fresh one */
} s_req_t;

/* Publishes a NotificationRequested; its id into id (kept when given). */
static void
s_notify (const s_req_t *q, char id[RT_UUID_STR_LEN + 1])
{
    Retain__V1__NotificationRequested m = RETAIN__V1__NOTIFICATION_REQUESTED__INIT;
    Retain__V1__NotificationRequested__VariablesEntry entries[8], *ptrs[8];
    size_t n = 0;
    if (!id[0])
        rt_test_router_uuid (id);
    for (const char *const *v = q->vars; v && *v && n < 8; v += 2, n++) {
        Retain__V1__NotificationRequested__VariablesEntry e =
            RETAIN__V1__NOTIFICATION_REQUESTED__VARIABLES_ENTRY__INIT;
        e.key = (char *)v[0];
        e.value = (char *)v[1];
        entries[n] = e;
        ptrs[n] = &entries[n];
    }
    m.notification_id = id;
    m.customer_id = (char *)q->customer;
    m.template_ = (char *)q->template_name;
    m.n_variables = n;
    m.variables = ptrs;
    m.preferred_channel = q->channel;
    m.category = (char *)(q->category ? q->category : "transactional");
    m.not_before = q->not_before;
    m.expires_at = q->expires_at;
    m.correlation = "";
    s_publish ("NotificationRequested", q->customer, &m.base, q->envelope_id);
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
    rt_test_router_sql (s_t.pg,
                        "INSERT INTO crm.customers (id, name, locale, time_zone, preferred_channel)"
                        " VALUES ('%s', '%s', '%s', '%s', '%s')",
                        id, name, locale, zone, preferred);
    snprintf (buf, sizeof buf, "%s", identities);
    for (char *p = strtok_r (buf, ",", &save); p; p = strtok_r (NULL, ",", &save), k++) {
        char *eq = strchr (p, '=');
        assert_non_null (eq);
        *eq = '\0';
        rt_test_router_sql (s_t.pg,
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
    return rt_test_router_long (
        s_t.pg, "SELECT count(*) FROM notify.sends WHERE notification_id = '%s'", notification_id);
}

static long long
s_status_wait (const char *send_id, const char *status)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status = '%s'", send_id,
              status);
    return rt_test_pg_wait_long (s_t.pg, sql, 1, S_WAIT_MS);
}

static void
s_template (const char *name, const char *locale, const char *variant, const char *text,
            bool quiet_hours)
{
    char *esc = PQescapeLiteral (s_t.pg, text, strlen (text));
    assert_non_null (esc);
    rt_test_router_sql (s_t.pg,
                        "INSERT INTO notify.templates (name, locale, variant, text, quiet_hours)"
                        " VALUES ('%s', '%s', '%s', %s, %s)",
                        name, locale, variant, esc, quiet_hours ? "true" : "false");
    PQfreemem (esc);
}

static void
s_notifyd_start (void)
{
    char a_dsn[1100], a_pub[96], a_admin[64], a_clock[1100];
    char *argv[] = {"retain-notifyd",
                    a_dsn,
                    a_pub,
                    a_admin,
                    a_clock,
                    "--member=n1",
                    "--request-timeout=2s",
                    "--backoff=100ms",
                    "--backoff-max=300ms",
                    "--retry-max=3",
                    "--poll=20ms",
                    "--sweep=200ms",
                    "--receipt-wait=10m",
                    NULL};
    s_admin = rt_test_free_port ();
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s_t.dsn);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", s_busd.pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", s_admin);
    snprintf (a_clock, sizeof a_clock, "--clock-file=%s", s_t.clock);
    s_notifyd = rt_test_spawn ("retain-notifyd", argv, NULL, "notifyd.log");
    if (!rt_test_wait_ready (s_admin, 60000))
        fail_msg ("retain-notifyd did not become ready; see %s/notifyd.log", rt_test_dir ());
}

static int
s_setup (void **state)
{
    rt_test_router_opts_t opts = {.routing = false, .clock = true};
    static char clock_arg[1100];
    const char *const busd_extra[] = {clock_arg, NULL};
    const char *base;
    (void)state;
    s_fake = rt_fake_provider_start ();
    base = rt_fake_provider_base (s_fake);
    rt_test_router_open (&s_t, "notify_request", &opts);
    s_clock_set (S_T0);
    /* busd on the same clock: the ids made at the set time are inside its
     * log's window. */
    snprintf (clock_arg, sizeof clock_arg, "--clock-file=%s", s_t.clock);
    rt_test_busd_start (&s_busd, s_t.dsn, "busd.log", busd_extra, true);
    s_db = rt_test_router_connect (&s_t, "test-publisher");
    s_notifyd_start ();
    rt_test_router_sql (
        s_t.pg,
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
    if (s_notifyd > 0)
        rt_test_stop (s_notifyd, "retain-notifyd");
    rt_test_stop (s_busd.pid, "retain-busd");
    rt_db_destroy (&s_db);
    rt_test_router_close (&s_t);
    rt_fake_provider_stop (&s_fake);
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
        s_notify (&(s_req_t){.customer = customer, .template_name = "points", .vars = vars}, id);
        if (s_sent_wait (RT_FAKE_TELEGRAM, cases[i].chat, text, sizeof text) != 1)
            fail_msg ("%s: nothing reached chat %s", cases[i].locale, cases[i].chat);
        assert_string_equal (text, cases[i].want);
        /* Telegram has no receipts: delivered at once, said with the
         * notification's id. */
        assert_int_equal (s_status_wait (id, "delivered"), 1);
        {
            s_said_t said;
            s_said_wait (id, &said);
            assert_int_equal (said.delivered, 1);
        }
    }
}

static void
test_unknown_template_and_locale (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], a[RT_UUID_STR_LEN + 1] = "", b[RT_UUID_STR_LEN + 1] = "";
    s_said_t said;
    (void)state;
    s_customer (customer, "Ivan", "uk", "", "", "telegram=1201");
    s_notify (&(s_req_t){.customer = customer, .template_name = "no_such_template"}, a);
    s_said_wait (a, &said);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "unknown_template");
    assert_non_null (strstr (said.error, "no_such_template"));

    /* Stored in German only, and the chain is uk, ru, en. */
    s_notify (&(s_req_t){.customer = customer, .template_name = "only_de"}, b);
    s_said_wait (b, &said);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "unknown_template");
    assert_non_null (strstr (said.error, "uk,ru,en"));
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1201", NULL, 0), 0);
    assert_int_equal (s_send_count (a) + s_send_count (b), 0);
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT count(*) FROM notify.notifications WHERE id IN"
                                           " ('%s', '%s') AND status = 'failed'",
                                           a, b),
                      2);
}

static void
test_missing_variable_named (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1] = "";
    s_said_t said;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "", "telegram=1301");
    s_notify (&(s_req_t){.customer = customer, .template_name = "points"}, id);
    s_said_wait (id, &said);
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
    s_notify (&(s_req_t){.customer = c1,
                         .template_name = "points",
                         .vars = vars,
                         .channel = RETAIN__V1__CHANNEL__TELEGRAM},
              a);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1401", NULL, 0), 1);
    /* Else the profile's. */
    s_notify (&(s_req_t){.customer = c1, .template_name = "points", .vars = vars}, b);
    assert_int_equal (s_sent_wait (RT_FAKE_VIBER, "vb-1401", NULL, 0), 1);
    /* Else the one written on last. */
    s_notify (&(s_req_t){.customer = c2, .template_name = "points", .vars = vars}, c);
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
    s_said_t said;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "viber", "viber=vb-1501,sms=+380501115501");
    rt_fake_provider_push (s_fake, RT_FAKE_VIBER, &unsubscribed);
    s_notify (&(s_req_t){.customer = customer, .template_name = "promo", .vars = vars}, id);

    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, "+380501115501", text, sizeof text), 1);
    /* The SMS variant, on the channel that took over. */
    assert_string_equal (text, "SMS: Ivan, -20% today only");
    assert_int_equal (s_sent (RT_FAKE_VIBER, "vb-1501", NULL, 0), 1);
    /* The first send says why and who took over. */
    assert_int_equal (s_status_wait (id, "failed"), 1);
    rt_test_router_text (s_t.pg, next, sizeof next,
                         "SELECT fallback_to FROM notify.sends WHERE id = '%s' AND last_code = '6'"
                         " AND fallback_reason LIKE 'stop_recipient 6:%%'",
                         id);
    assert_true (next[0] != '\0');
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND channel = 'sms' AND notification_id = '%s'",
                                           next, id),
                      1);
    /* Viber's unsubscribe withdrew consent there, both categories. */
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT count(*) FROM notify.consent WHERE"
                                           " customer_id = '%s' AND channel = 'viber' AND NOT"
                                           " granted AND source = 'provider:6'",
                                           customer),
                      2);
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT count(*) FROM notify.consent_history WHERE"
                                           " customer_id = '%s' AND source = 'provider:6'",
                                           customer),
                      2);
    /* The notification has not failed: nothing said but the SMS's fate. */
    s_said (id, &said);
    assert_int_equal (said.failed, 0);

    /* The next notification skips Viber (consent withdrawn) and goes
     * straight to SMS. */
    {
        char again[RT_UUID_STR_LEN + 1] = "";
        s_notify (&(s_req_t){.customer = customer, .template_name = "promo", .vars = vars}, again);
        assert_int_equal (rt_test_pg_wait_long (s_t.pg,
                                                "SELECT count(*) FROM notify.sends WHERE"
                                                " recipient = '+380501115501'",
                                                2, S_WAIT_MS),
                          2);
        assert_int_equal (rt_test_router_long (s_t.pg,
                                               "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                               " AND channel = 'sms'",
                                               again),
                          1);
        assert_int_equal (rt_test_router_long (s_t.pg,
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
    s_said_t said;
    Retain__V1__ConsentChanged cc = RETAIN__V1__CONSENT_CHANGED__INIT;
    (void)state;
    s_customer (customer, "Ivan", "en", "", "", "telegram=1601");
    s_notify (
        &(s_req_t){
            .customer = customer, .template_name = "promo", .vars = vars, .category = "marketing"},
        a);
    s_said_wait (a, &said);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "no_consent");
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1601", NULL, 0), 0);

    /* Granted on the bus (as an import or the shop's checkbox says). */
    cc.customer_id = customer;
    cc.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    cc.category = "marketing";
    cc.granted = true;
    cc.source = "import";
    s_publish ("ConsentChanged", customer, &cc.base, NULL);
    assert_int_equal (rt_test_pg_wait_long (s_t.pg,
                                            "SELECT count(*) FROM notify.consent WHERE granted"
                                            " AND source = 'import'",
                                            1, S_WAIT_MS),
                      1);
    s_notify (
        &(s_req_t){
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
    s_publish ("InboundMessage", "sms:main:+380501230001", &m.base, NULL);
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent WHERE customer_id = '%s' AND channel = 'sms'"
              " AND NOT granted AND source = 'stop_keyword'",
              customer);
    assert_int_equal (rt_test_pg_wait_long (s_t.pg, q, 2, S_WAIT_MS), 2);
    m.text = "СТАРТ";
    m.opt = "in";
    s_publish ("InboundMessage", "sms:main:+380501230001", &m.base, NULL);
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent WHERE customer_id = '%s' AND channel = 'sms'"
              " AND granted AND source = 'stop_keyword'",
              customer);
    assert_int_equal (rt_test_pg_wait_long (s_t.pg, q, 2, S_WAIT_MS), 2);
    /* Every change kept. */
    snprintf (q, sizeof q, "SELECT count(*) FROM notify.consent_history WHERE customer_id = '%s'",
              customer);
    assert_int_equal (rt_test_router_long (s_t.pg, "%s", q), 4);
    /* Nobody crm knows: counted, nothing recorded. */
    m.external_user_id = "+380509999999";
    m.opt = "out";
    s_publish ("InboundMessage", "sms:main:+380509999999", &m.base, NULL);
    for (int i = 0; i < 100; i++) {
        if (rt_test_metric (s_admin,
                            "retain_notify_opt_unresolved_total{type=\"InboundMessage\"}") == 1)
            break;
        usleep (50000);
    }
    assert_true (rt_test_metric (
                     s_admin, "retain_notify_opt_unresolved_total{type=\"InboundMessage\"}") == 1);
}

/* Marketing consent on Telegram, granted in the table. */
static void
s_consent (const char *customer)
{
    rt_test_router_sql (
        s_t.pg,
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
    s_said_t said;
    (void)state;
    s_customer (kyiv, "Olena", "en", "Europe/Kyiv", "", "telegram=1701");
    /* No zone in the profile: the phone's country tells (+1: New York). */
    s_customer (ny, "John", "en", "", "", "telegram=1702");
    rt_test_router_sql (s_t.pg,
                        "INSERT INTO crm.contact_points (kind, value, customer_id, proven,"
                        " proven_by) VALUES ('phone', '+12125550100', '%s', false, 'shop')",
                        ny);
    s_consent (kyiv);
    s_consent (ny);

    s_clock_set (at22);
    s_notify (
        &(s_req_t){
            .customer = kyiv, .template_name = "promo", .vars = vars, .category = "marketing"},
        k);
    s_notify (
        &(s_req_t){.customer = ny, .template_name = "promo", .vars = vars, .category = "marketing"},
        n);
    /* Expires at 23:00 UTC, long before Kyiv's morning. */
    s_notify (&(s_req_t){.customer = kyiv,
                         .template_name = "promo",
                         .vars = vars,
                         .category = "marketing",
                         .expires_at = at22 + S_HOUR},
              e);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1702", NULL, 0), 1);
    assert_int_equal (rt_test_pg_wait_long (s_t.pg,
                                            "SELECT count(*) FROM notify.sends WHERE"
                                            " recipient = '1701' AND status = 'queued'",
                                            2, S_WAIT_MS),
                      2);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1701", NULL, 0), 0);
    /* Due at 09:00 in Kyiv: 07:00 UTC (EET, UTC+2, in January). */
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT (extract(epoch FROM next_at) * 1000)::bigint"
                                           " FROM notify.sends WHERE id = '%s'",
                                           k),
                      at22 + 9 * S_HOUR);

    /* 23:00:01 UTC: the one with an expiry is dropped, counted, said. */
    s_clock_set (at22 + S_HOUR + 1000);
    assert_int_equal (s_status_wait (e, "dropped"), 1);
    s_said_wait (e, &said);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "expired");
    expired = rt_test_metric (s_admin, "retain_notify_expired_total");
    assert_true (expired >= 1);

    /* 07:00:01 UTC, 09:00:01 in Kyiv: the window opens. */
    s_clock_set (at22 + 9 * S_HOUR + 1000);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1701", NULL, 0), 1);
    assert_int_equal (s_status_wait (k, "delivered"), 1);
    usleep (S_QUIET_MS * 1000);
    /* The expired one never went, late or otherwise. */
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "1701", NULL, 0), 1);
    assert_int_equal (rt_test_router_long (s_t.pg,
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
    s_notify (&(s_req_t){.customer = customer, .template_name = "points", .vars = vars}, id);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "1801", NULL, 0), 1);
    assert_int_equal (s_status_wait (id, "delivered"), 1);
    before =
        rt_test_metric (s_admin, "retain_notify_replayed_total{type=\"NotificationRequested\"}");
    /* The producer's retry: the same notification in a new envelope. */
    rt_test_router_uuid (env);
    s_notify (
        &(s_req_t){
            .customer = customer, .template_name = "points", .vars = vars, .envelope_id = env},
        id);
    {
        int64_t until = rt_test_now_ms () + S_WAIT_MS;
        while (rt_test_metric (s_admin,
                               "retain_notify_replayed_total{type=\"NotificationRequested\"}") <=
                   (before < 0 ? 0 : before) &&
               rt_test_now_ms () < until)
            usleep (50 * 1000);
    }
    assert_true (
        rt_test_metric (s_admin, "retain_notify_replayed_total{type=\"NotificationRequested\"}") >
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
    s_notify (&(s_req_t){.customer = customer, .template_name = "points", .vars = vars}, id);
    assert_int_equal (s_sent_wait (RT_FAKE_VIBER, "vb-1901", NULL, 0), 1);
    assert_int_equal (s_status_wait (id, "sent"), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TWILIO, "+380501119901", NULL, 0), 0);
    /* Ten minutes without Viber's receipt: SMS as well. */
    s_clock_set (rt_clock_now_ms () + 10 * 60000 + 1000);
    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, "+380501119901", NULL, 0), 1);
    rt_test_router_text (s_t.pg, next, sizeof next,
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
