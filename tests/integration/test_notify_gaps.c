/*
 * retain-notifyd after the provider took a message, before crm knows a
 * sender, and when an operator cancels a campaign: a real busd and
 * notifyd on a clock file (15:00 UTC: the afternoon in Kyiv, midnight in
 * Tokyo), the shared fake of the providers (Telegram, Twilio SMS and
 * WhatsApp Cloud accounts of the inbox "main"), customers in crm.
 *
 * What a user would notice: an SMS that Twilio's status callback calls
 * undelivered, and a WhatsApp message whose status comes back failed,
 * reach the customer on the next channel of the route (the first send
 * names its successor and why; nothing failed is said of the
 * notification); a marketing message's failure receipt stays a failure,
 * said on the bus, with no second channel; a STOP from a number crm does
 * not know yet still stops the messages to it once crm knows whose it is,
 * and a START from it gives them back; a cancelled campaign's sends
 * waiting for the customers' morning are cancelled, counted, and never
 * sent, while the ones already in flight reach their customers; and an
 * address suppressed while its send waited is never messaged, the
 * notification going on to the next channel; and only an operator's
 * reply carries Meta's HUMAN_AGENT tag, never a notification; outside
 * WhatsApp's 24-hour window a notification goes as its approved template,
 * or on the next channel when it has none; an
 * account's daily quota hands the rest of the day to the inbox's next
 * account, or holds the sends until the next day.
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

/* 2026-01-15 15:00 UTC: 17:00 in Kyiv, midnight in Tokyo. */
#define S_T0       1768489200000LL
#define S_HOUR     3600000LL
#define S_WAIT_MS  30000
#define S_QUIET_MS 1500 /* long enough for a send that was due to have gone */

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* --- what the fake received --- */

#define S_SEEN_MAX 8 /* requests to one recipient a test looks at */

/* The provider's id the last of got[0..n) was answered with into id
 * (when not NULL); n. */
static int
s_last_id (const rt_fake_request_t *const *got, size_t n, char *id, size_t idlen)
{
    if (id && n)
        snprintf (id, idlen, "%s", got[(n < S_SEEN_MAX ? n : S_SEEN_MAX) - 1]->id);
    return (int)n;
}

/* Requests of provider to recipient; the provider's id the last one was
 * answered with into id (when not NULL). */
static int
s_sent (rt_fake_kind_t provider, const char *recipient, char *id, size_t idlen)
{
    const rt_fake_request_t *got[S_SEEN_MAX];
    size_t n = rt_fake_provider_sent (s_fake, provider, recipient, got, S_SEEN_MAX);
    return s_last_id (got, n, id, idlen);
}

/* s_sent until it counts at least one, S_WAIT_MS at most. */
static int
s_sent_wait (rt_fake_kind_t provider, const char *recipient, char *id, size_t idlen)
{
    const rt_fake_request_t *got[S_SEEN_MAX];
    size_t n =
        rt_fake_provider_sent_wait (s_fake, provider, recipient, 1, S_WAIT_MS, got, S_SEEN_MAX);
    return s_last_id (got, n, id, idlen);
}

/* --- the world --- */

/* A customer (zone and preferred channel "" for none) with identities in
 * inbox, "sms=+380...,telegram=2201" (later ones written on more
 * recently); its id into id. */
static void
s_customer_in (char id[RT_UUID_STR_LEN + 1], const char *inbox, const char *zone,
               const char *preferred, const char *identities)
{
    rt_test_notify_customer (s_w.t.pg, inbox, zone, preferred, identities, id);
}

/* s_customer_in the inbox "main". */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *zone, const char *preferred,
            const char *identities)
{
    s_customer_in (id, "main", zone, preferred, identities);
}

/* Asks for the "parcel" notification (category NULL: transactional). */
static void
s_notify (const char *customer, const char *category, char id[RT_UUID_STR_LEN + 1])
{
    id[0] = '\0';
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){.customer = customer,
                                                        .template_name = "parcel",
                                                        .category = category},
                            id);
}

/* The receipt ingest makes of a provider's failure callback. */
static void
s_failure_receipt (Retain__V1__Channel channel, const char *external_id, const char *code,
                   const char *words)
{
    Retain__V1__MessageFailed f = RETAIN__V1__MESSAGE_FAILED__INIT;
    f.channel = channel;
    f.external_id = (char *)external_id;
    f.error_code = (char *)code;
    f.error = (char *)words;
    f.permanent = true;
    rt_test_notify_publish_one (s_w.db, "MessageFailed", external_id, &f.base, "retain-ingestd",
                                NULL);
}

/* A STOP ("out") or START ("in") keyword from number to the inbox "main". */
static void
s_keyword (const char *number, const char *text, const char *opt)
{
    Retain__V1__InboundMessage m = RETAIN__V1__INBOUND_MESSAGE__INIT;
    char key[64];
    m.channel = RETAIN__V1__CHANNEL__SMS;
    m.inbox = "main";
    m.external_user_id = (char *)number;
    m.text = (char *)text;
    m.opt = (char *)opt;
    snprintf (key, sizeof key, "sms:main:%s", number);
    rt_test_notify_publish_one (s_w.db, "InboundMessage", key, &m.base, "retain-ingestd", NULL);
}

static int
s_setup (void **state)
{
    const char *const extra[] = {"--request-timeout=10s",
                                 "--backoff=100ms",
                                 "--backoff-max=300ms",
                                 "--poll=20ms",
                                 "--sweep=200ms",
                                 "--fallback-chain=sms,telegram",
                                 "--marketing-consent=opt-out",
                                 "--receipt-wait=0",
                                 "--campaign-poll=20ms",
                                 "--campaign-refresh=200ms",
                                 NULL};
    const char *base;
    (void)state;
    s_fake = rt_fake_provider_start ();
    base = rt_fake_provider_base (s_fake);
    rt_test_notify_open (&s_w, "notify_gaps", S_T0);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, s_w.t.clock, "n1", "notifyd-gaps.log",
                           extra);
    rt_test_router_sql (
        s_w.t.pg,
        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url,"
        " token, account_id, sender, rate_per_s, burst) VALUES"
        " ('tg-main', 'main', 'telegram', 'telegram', '%s', '123456:TESTTOKEN', '', '', 50, 10),"
        " ('sms-main', 'main', 'sms', 'twilio', '%s', 'authtoken', 'AC0123', '+15550000000',"
        "  50, 10),"
        " ('wa-main', 'main', 'whatsapp', 'meta', '%s', 'watoken', '1099', '', 50, 10),"
        " ('fb-main', 'main', 'messenger', 'meta', '%s', 'fbtoken', '1088', '', 50, 10)",
        base, base, base, base);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.templates (name, locale, variant, text) VALUES"
                        " ('parcel', 'en', 'default', '{{name}}, your parcel is at the pickup"
                        " point'),"
                        " ('promo', 'en', 'default', '{{name}}, -20%% today only'),"
                        " ('digest', 'en', 'default', '{{body}}'),"
                        " ('birthday', 'en', 'default', '{{name}} ({{customer.id}}), born"
                        " {{date birthday style=medium}}')");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notify_teardown (&s_n, &s_w, &s_fake);
    return 0;
}

/* --- failure receipts --- */

/* A transactional notification whose first send's failure receipt comes
 * after the provider took it, and where it goes then. */
typedef struct {
    const char *preferred, *identities; /* the customer */
    rt_fake_kind_t first;               /* who takes the first send ... */
    const char *first_to;               /* ... for whom */
    Retain__V1__Channel channel;        /* the receipt's channel */
    const char *code, *words;           /* what the receipt says */
    rt_fake_kind_t next;                /* who takes the next send ... */
    const char *next_to, *next_channel; /* ... for whom, on which channel */
    const char *next_status;            /* where that one ends */
} s_receipt_case_t;

static void
test_failure_receipt_goes_on (void **state)
{
    static const s_receipt_case_t cases[] = {
        /* Twilio's status callback: undelivered, 30003. */
        {"sms", "sms=+380502220001,telegram=2201", RT_FAKE_TWILIO, "+380502220001",
         RETAIN__V1__CHANNEL__SMS, "30003", "Unreachable destination handset", RT_FAKE_TELEGRAM,
         "2201", "telegram", "delivered"},
        /* WhatsApp's status webhook: failed, 131026 (not a WhatsApp user). */
        {"whatsapp", "sms=+380502220002,whatsapp=380502220002", RT_FAKE_WHATSAPP, "380502220002",
         RETAIN__V1__CHANNEL__WHATSAPP, "131026", "Message undeliverable", RT_FAKE_TWILIO,
         "+380502220002", "sms", "sent"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const s_receipt_case_t *k = &cases[i];
        char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], ext[64], next[64], why[256];
        rt_test_notify_said_t said;
        s_customer (customer, "", k->preferred, k->identities);
        s_notify (customer, NULL, id);
        assert_int_equal (s_sent_wait (k->first, k->first_to, ext, sizeof ext), 1);
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS), 1);
        usleep (S_QUIET_MS * 1000);
        assert_int_equal (s_sent (k->next, k->next_to, NULL, 0), 0);

        s_failure_receipt (k->channel, ext, k->code, k->words);
        assert_int_equal (s_sent_wait (k->next, k->next_to, NULL, 0), 1);
        /* The first send names its successor and why. */
        snprintf (why, sizeof why, "failure receipt %s: %s", k->code, k->words);
        rt_test_router_text (s_w.t.pg, next, sizeof next,
                             "SELECT n.id FROM notify.sends f JOIN notify.sends n ON"
                             " n.id = f.fallback_to WHERE f.id = '%s' AND f.status = 'failed'"
                             " AND f.fallback_reason = '%s' AND n.channel = '%s'"
                             " AND n.notification_id = '%s'",
                             id, why, k->next_channel, id);
        if (!next[0])
            fail_msg ("%s: the first send names no %s send", k->code, k->next_channel);
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, next, k->next_status, S_WAIT_MS),
                          1);
        /* The notification has not failed: the bus heard no failure. */
        rt_test_notify_said (s_w.t.pg, id, &said);
        assert_int_equal (said.failed, 0);
        assert_int_equal (s_sent (k->first, k->first_to, NULL, 0), 1);
    }
}

/* Marketing is no important category: its failure receipt ends it. */
static void
test_marketing_failure_stays (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], sid[64];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "Europe/Kyiv", "sms", "sms=+380502220003,telegram=2203");
    s_notify (customer, "marketing", id);
    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, "+380502220003", sid, sizeof sid), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS), 1);
    s_failure_receipt (RETAIN__V1__CHANNEL__SMS, sid, "30003", "Unreachable destination handset");
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "30003");
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "2203", NULL, 0), 0);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE"
                                           " notification_id = '%s'",
                                           id),
                      1);
}

/* --- keywords --- */

/* A STOP read before routerd made the sender's identity still holds once
 * crm knows whose number it is; a START from it lifts it. */
static void
test_stop_before_the_sender_is_known (void **state)
{
    const char *number = "+380502220004";
    const char *series = "retain_notify_opt_unresolved_total{type=\"InboundMessage\"}";
    char customer[RT_UUID_STR_LEN + 1], a[RT_UUID_STR_LEN + 1], b[RT_UUID_STR_LEN + 1], q[512];
    rt_test_notify_said_t said;
    double before = rt_test_metric (s_n.admin_port, series);
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    (void)state;
    if (before < 0)
        before = 0;
    s_keyword (number, "СТОП", "out");
    while (rt_test_metric (s_n.admin_port, series) <= before && rt_test_now_ms () < until)
        usleep (20 * 1000);
    assert_true (rt_test_metric (s_n.admin_port, series) > before);

    /* routerd resolves the sender afterwards. */
    s_customer (customer, "", "", "sms=+380502220004");
    s_notify (customer, NULL, a);
    rt_test_notify_said_wait (s_w.t.pg, a, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "no_consent");
    if (!strstr (said.error, "stop_keyword"))
        fail_msg ("MessageFailed's error: %s", said.error);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TWILIO, number, NULL, 0), 0);

    /* START from the same number, now known: transactional again. */
    s_keyword (number, "СТАРТ", "in");
    /* Both categories back (a STOP keyword took marketing too), by the
     * address and by the customer. */
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent_history WHERE source = 'stop_keyword' AND"
              " granted AND channel = 'sms' AND (address = '%s' OR customer_id = '%s')",
              number, customer);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, q, 4, S_WAIT_MS), 4);
    s_notify (customer, NULL, b);
    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, number, NULL, 0), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, b, "sent", S_WAIT_MS), 1);
}

/* --- campaigns --- */

/* Runs retainctl campaign <args>; its output into out (owned) when not
 * NULL. Returns the exit status. */
static int
s_ctl (char **out, const char *first, ...)
{
    const char *args[16];
    size_t n = 0;
    va_list ap;
    char *text = NULL;
    int rc;
    args[n++] = "campaign";
    va_start (ap, first);
    for (const char *a = first; a && n < 15; a = va_arg (ap, const char *))
        args[n++] = a;
    va_end (ap);
    args[n] = NULL;
    rc = rt_test_retainctl (s_w.t.dsn, args, &text);
    if (out)
        *out = text;
    else
        free (text);
    return rc;
}

#define S_TOKYO 6 /* the campaign's customers in their night */

/* A campaign at 2 targets a second, cancelled while it runs: Kyiv's two
 * customers (targets first, by id) in flight, some of Tokyo's queued for
 * their morning, the rest still pending. */
static void
test_cancel_takes_the_queued_sends (void **state)
{
    char kyiv[2][RT_UUID_STR_LEN + 1], tokyo[S_TOKYO][RT_UUID_STR_LEN + 1];
    char csv[512], segment[600], campaign[RT_UUID_STR_LEN + 1] = "", ident[64], chat[16];
    char text[2048] = "", q[512], *out = NULL;
    const char *in_tokyo = "recipient IN ('2311', '2312', '2313', '2314', '2315', '2316')";
    const rt_fake_answer_t slow = {.kind = RT_FAKE_SUCCESS, .delay_ms = 4000};
    long long queued, pending;
    size_t n;
    (void)state;
    for (int i = 0; i < 2; i++) {
        snprintf (ident, sizeof ident, "telegram=%d", 2301 + i);
        s_customer (kyiv[i], "Europe/Kyiv", "", ident);
        rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM, &slow);
    }
    n = (size_t)snprintf (text, sizeof text, "customer_id\n%s\n%s\n", kyiv[0], kyiv[1]);
    for (int i = 0; i < S_TOKYO; i++) {
        snprintf (ident, sizeof ident, "telegram=%d", 2311 + i);
        s_customer (tokyo[i], "Asia/Tokyo", "", ident);
        n += (size_t)snprintf (text + n, sizeof text - n, "%s\n", tokyo[i]);
    }
    snprintf (csv, sizeof csv, "%s/cancel.csv", rt_test_dir ());
    rt_test_file_write (csv, text);
    snprintf (segment, sizeof segment, "--segment=csv=%s", csv);
    assert_int_equal (
        s_ctl (&out, "create", "--template=promo", segment, "--rate=2", "--start", NULL), 0);
    for (char *p = out; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL) {
        rt_uuid_t u;
        snprintf (campaign, sizeof campaign, "%s", p);
        if (rt_uuid_parse (campaign, &u) == 0)
            break;
        campaign[0] = '\0';
    }
    free (out);
    assert_true (campaign[0] != '\0');

    /* Kyiv's two in flight (the fake answers in 4 s), two of Tokyo's
     * queued for the morning there. */
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "2301", NULL, 0), 1);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "2302", NULL, 0), 1);
    snprintf (q, sizeof q,
              "SELECT (count(*) >= 2)::int FROM notify.sends WHERE status = 'queued' AND %s",
              in_tokyo);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, q, 1, S_WAIT_MS), 1);
    if (s_ctl (&out, "cancel", "--id", campaign, NULL) != 0)
        fail_msg ("retainctl campaign cancel: %s", out);
    free (out);

    /* At once: the queued ones cancelled, the ones in flight left alone. */
    queued = rt_test_router_long (s_w.t.pg, "SELECT count(*) FROM notify.sends WHERE %s", in_tokyo);
    assert_true (queued >= 2 && queued < S_TOKYO);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE status ="
                                           " 'cancelled' AND %s",
                                           in_tokyo),
                      queued);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE status ="
                                           " 'sending' AND recipient IN ('2301', '2302')"),
                      2);
    /* The in-flight ones reach their customers; the counts settle, and
     * no pending target is claimed any more. */
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                            "SELECT count(*) FROM notify.sends WHERE status ="
                                            " 'delivered' AND recipient IN ('2301', '2302')",
                                            2, S_WAIT_MS),
                      2);
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.campaigns WHERE id = '%s' AND status = 'cancelled'"
              " AND settled AND sent = 2 AND cancelled = %lld AND failed = 0",
              campaign, queued);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, q, 1, S_WAIT_MS), 1);
    pending = rt_test_router_long (s_w.t.pg,
                                   "SELECT count(*) FROM notify.campaign_targets WHERE"
                                   " campaign_id = '%s' AND state = 'pending'",
                                   campaign);
    assert_int_equal (pending, S_TOKYO - queued);

    /* 09:00:01 in Tokyo: nothing goes. */
    rt_test_notify_clock_set (&s_w, S_T0 + 9 * S_HOUR + 1000);
    usleep (S_QUIET_MS * 1000);
    for (int i = 0; i < S_TOKYO; i++) {
        snprintf (chat, sizeof chat, "%d", 2311 + i);
        assert_int_equal (s_sent (RT_FAKE_TELEGRAM, chat, NULL, 0), 0);
    }
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE status ="
                                           " 'cancelled' AND %s",
                                           in_tokyo),
                      queued);
}

/* --- suppressions --- */

/* An address suppressed while its send waits (for not_before here, the
 * morning or a retry alike) is never messaged: the send fails
 * `suppressed` when it comes due and the notification goes on to the
 * next channel of its route. */
static void
test_suppressed_while_queued (void **state)
{
    const char *number = "+380502220009";
    const int64_t due = S_T0 + 10 * S_HOUR;
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], next[64];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "Europe/Kyiv", "sms", "sms=+380502220009,telegram=2209");
    id[0] = '\0';
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){
                                .customer = customer, .template_name = "parcel", .not_before = due},
                            id);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg,
                                            "SELECT count(*) FROM notify.sends WHERE"
                                            " recipient = '+380502220009' AND status = 'queued'",
                                            1, S_WAIT_MS),
                      1);
    rt_test_router_sql (s_w.t.pg,
                        "SELECT notify.suppression_set('%s', true, 'operator', 'asked by phone',"
                        " now())",
                        number);
    rt_test_notify_clock_set (&s_w, due + 1000);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "2209", NULL, 0), 1);
    assert_int_equal (s_sent (RT_FAKE_TWILIO, number, NULL, 0), 0);
    rt_test_router_text (s_w.t.pg, next, sizeof next,
                         "SELECT fallback_to FROM notify.sends WHERE notification_id = '%s'"
                         " AND channel = 'sms' AND status = 'failed' AND last_code = 'suppressed'"
                         " AND last_reason = 'the address is suppressed (operator)'",
                         id);
    if (!next[0])
        fail_msg ("the SMS send did not fail as suppressed, handing over");
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.failed, 0);

    /* WhatsApp names a number by its digits; the list holds it in E.164,
     * and it holds on WhatsApp too. */
    s_customer (customer, "Europe/Kyiv", "whatsapp", "whatsapp=380502220015,telegram=2215");
    rt_test_router_sql (s_w.t.pg,
                        "SELECT notify.suppression_set('+380502220015', true, 'operator', '',"
                        " now())");
    s_notify (customer, NULL, id);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "2215", NULL, 0), 1);
    assert_int_equal (s_sent (RT_FAKE_WHATSAPP, "380502220015", NULL, 0), 0);
}

/* --- Meta's HUMAN_AGENT tag --- */

/* The body of the one Meta request to recipient (owned), NULL when there
 * is not exactly one. */
static json_t *
s_meta_to (const char *recipient)
{
    json_t *found = NULL;
    int n = 0;
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
        json_t *doc;
        const char *id;
        if (!r)
            break;
        if (r->provider != RT_FAKE_META)
            continue;
        doc = json_loads (r->body, 0, NULL);
        id = json_string_value (json_object_get (json_object_get (doc, "recipient"), "id"));
        if (id && strcmp (id, recipient) == 0) {
            n++;
            json_decref (found);
            found = doc;
            continue;
        }
        json_decref (doc);
    }
    if (n != 1) {
        json_decref (found);
        return NULL;
    }
    return found;
}

/* s_meta_to until there is one, S_WAIT_MS at most. */
static json_t *
s_meta_wait (const char *recipient)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    json_t *doc;
    do {
        if ((doc = s_meta_to (recipient)) != NULL)
            return doc;
        usleep (20 * 1000);
    } while (rt_test_now_ms () < until);
    return NULL;
}

/* Meta lets a person's reply go out with the HUMAN_AGENT tag (up to 7
 * days after the customer wrote); an automated notification never
 * carries it, transactional or not. */
static void
test_human_agent_only_for_operators (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], reply[RT_UUID_STR_LEN + 1];
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    json_t *doc;
    (void)state;
    s_customer (customer, "Europe/Kyiv", "messenger", "messenger=psid-2401");
    rt_test_router_uuid (reply);
    m.message_id = reply;
    m.customer_id = customer;
    m.channel = RETAIN__V1__CHANNEL__MESSENGER;
    m.text = "Your order is packed, I will send the tracking number tonight";
    m.operator_id = "op-olha";
    rt_test_notify_publish_one (s_w.db, "OutboundMessageRequested", customer, &m.base,
                                "retain-routerd", NULL);
    doc = s_meta_wait ("psid-2401");
    if (!doc)
        fail_msg ("the operator's reply did not reach Messenger once");
    assert_string_equal (json_string_value (json_object_get (doc, "messaging_type")),
                         "MESSAGE_TAG");
    assert_string_equal (json_string_value (json_object_get (doc, "tag")), "HUMAN_AGENT");
    json_decref (doc);

    s_customer (customer, "Europe/Kyiv", "messenger", "messenger=psid-2402");
    s_notify (customer, NULL, id);
    doc = s_meta_wait ("psid-2402");
    if (!doc)
        fail_msg ("the notification did not reach Messenger once");
    assert_string_equal (json_string_value (json_object_get (doc, "messaging_type")), "RESPONSE");
    assert_null (json_object_get (doc, "tag"));
    json_decref (doc);
}

/* --- daily quotas --- */

/* An account with a daily quota sends that many a day: the inbox's next
 * account by priority takes the rest, and with none left the sends wait
 * for the next day, when the first account sends again. */
static void
test_daily_quota_fails_over (void **state)
{
    /* The clock is at 01:00:01 UTC on 2026-01-16 (the tests before moved
     * it); the next UTC day begins 23 hours later. */
    const int64_t next_day = S_T0 + 33 * S_HOUR;
    char customer[5][RT_UUID_STR_LEN + 1], id[5][RT_UUID_STR_LEN + 1], ident[32], q[512];
    char *out = NULL;
    const char *list[] = {"notify", "account", "list", "--inbox", "shop-q", NULL};
    int rc;
    (void)state;
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url,"
                        " token, rate_per_s, burst, daily_quota, priority) VALUES"
                        " ('tg-q0', 'shop-q', 'telegram', 'telegram', '%s', '111:QUOTAZERO', 50,"
                        "  10, 2, 0),"
                        " ('tg-q1', 'shop-q', 'telegram', 'telegram', '%s', '222:QUOTAONE', 50,"
                        "  10, NULL, 1)",
                        rt_fake_provider_base (s_fake), rt_fake_provider_base (s_fake));
    for (int i = 0; i < 4; i++) {
        snprintf (ident, sizeof ident, "telegram=%d", 2501 + i);
        s_customer_in (customer[i], "shop-q", "Europe/Kyiv", "telegram", ident);
        s_notify (customer[i], NULL, id[i]);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id[i], "delivered", S_WAIT_MS), 1);
    /* Two through the first, two through the second, each chat once. */
    assert_int_equal (rt_test_router_long (s_w.t.pg, "SELECT count(*) FROM notify.sends WHERE"
                                                     " account = 'tg-q0' AND status = 'delivered'"),
                      2);
    assert_int_equal (rt_test_router_long (s_w.t.pg, "SELECT count(*) FROM notify.sends WHERE"
                                                     " account = 'tg-q1' AND status = 'delivered'"),
                      2);
    for (int i = 0; i < 4; i++) {
        snprintf (ident, sizeof ident, "%d", 2501 + i);
        assert_int_equal (s_sent (RT_FAKE_TELEGRAM, ident, NULL, 0), 1);
    }
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.accounts WHERE id = 'tg-q0'"
                                           " AND quota_until = '2026-01-17 00:00:00+00'"),
                      1);
    /* retainctl reads the day on the test's clock too. */
    setenv ("RETAIN_CLOCK_FILE", s_w.t.clock, 1);
    rc = rt_test_retainctl (s_w.t.dsn, list, &out);
    unsetenv ("RETAIN_CLOCK_FILE");
    if (rc != 0 || !strstr (out, "quota used (2 of 2 today) until 2026-01-17T00:00:00Z") ||
        !strstr (out, "2/2"))
        fail_msg ("notify account list does not show the quota used: %s", out);
    free (out);

    /* The second switched off: a fifth waits for the next day. */
    rt_test_router_sql (s_w.t.pg, "UPDATE notify.accounts SET disabled_at = now()"
                                  " WHERE id = 'tg-q1'");
    s_customer_in (customer[4], "shop-q", "Europe/Kyiv", "telegram", "telegram=2505");
    s_notify (customer[4], NULL, id[4]);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "2505", NULL, 0), 0);
    rt_test_notify_clock_set (&s_w, next_day + 1000);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id[4], "delivered", S_WAIT_MS), 1);
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.sends WHERE notification_id = '%s' AND"
              " account = 'tg-q0'",
              id[4]);
    assert_int_equal (rt_test_router_long (s_w.t.pg, "%s", q), 1);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "2505", NULL, 0), 1);
}

/* --- WhatsApp's 24-hour window --- */

/* The one WhatsApp request to number (owned body), NULL unless exactly
 * one came, S_WAIT_MS at most. */
static json_t *
s_whatsapp_wait (const char *number)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    do {
        if (s_sent (RT_FAKE_WHATSAPP, number, NULL, 0) == 1) {
            for (size_t i = 0;; i++) {
                const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
                char to[64];
                if (!r)
                    break;
                if (r->provider != RT_FAKE_WHATSAPP)
                    continue;
                rt_fake_request_recipient (r, to, sizeof to);
                if (strcmp (to, number) == 0)
                    return json_loads (r->body, 0, NULL);
            }
        }
        usleep (20 * 1000);
    } while (rt_test_now_ms () < until);
    return NULL;
}

/* A customer on WhatsApp (and SMS) who last wrote hours_ago hours before
 * the clock; its id into id. */
static void
s_whatsapp_customer (char id[RT_UUID_STR_LEN + 1], const char *number, int hours_ago)
{
    char idents[96];
    snprintf (idents, sizeof idents, "sms=+%s,whatsapp=%s", number, number);
    s_customer (id, "Europe/Kyiv", "whatsapp", idents);
    rt_test_router_sql (s_w.t.pg,
                        "UPDATE crm.identities SET last_seen = to_timestamp(%lld / 1000.0) - %d *"
                        " interval '1 hour' WHERE channel = 'whatsapp' AND external_user_id = '%s'",
                        (long long)S_T0, hours_ago, number);
}

/* Outside the 24 hours after the customer last wrote, WhatsApp takes only
 * an approved template: a notification whose template has one goes as it,
 * its parameters rendered; inside them it goes as text; one with none
 * passes WhatsApp over for the next channel. */
static void
test_whatsapp_window (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], skipped[512];
    json_t *doc, *tmpl;
    (void)state;
    {
        const char *set[] = {"template",
                             "whatsapp",
                             "set",
                             "--name",
                             "parcel",
                             "--locale",
                             "en",
                             "--wa-name",
                             "parcel_ready",
                             "--wa-language",
                             "en",
                             "--params",
                             "[\"{{name}}\"]",
                             NULL};
        char *out = NULL;
        if (rt_test_retainctl (s_w.t.dsn, set, &out) != 0)
            fail_msg ("retainctl template whatsapp set: %s", out);
        free (out);
    }
    /* Three days since the customer wrote: the approved template. */
    s_whatsapp_customer (customer, "380502220011", 72);
    s_notify (customer, NULL, id);
    doc = s_whatsapp_wait ("380502220011");
    if (!doc)
        fail_msg ("no single WhatsApp message outside the window");
    assert_string_equal (json_string_value (json_object_get (doc, "type")), "template");
    tmpl = json_object_get (doc, "template");
    assert_string_equal (json_string_value (json_object_get (tmpl, "name")), "parcel_ready");
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (tmpl, "language"), "code")), "en");
    assert_string_equal (
        json_string_value (json_object_get (
            json_array_get (
                json_object_get (json_array_get (json_object_get (tmpl, "components"), 0),
                                 "parameters"),
                0),
            "text")),
        "Olena");
    json_decref (doc);

    /* An hour since: free text. */
    s_whatsapp_customer (customer, "380502220012", 1);
    s_notify (customer, NULL, id);
    doc = s_whatsapp_wait ("380502220012");
    if (!doc)
        fail_msg ("no single WhatsApp message inside the window");
    assert_string_equal (json_string_value (json_object_get (doc, "type")), "text");
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (doc, "text"), "body")),
        "Olena, your parcel is at the pickup point");
    json_decref (doc);

    /* Outside, and "promo" has no approved template: the SMS instead. */
    s_whatsapp_customer (customer, "380502220013", 30);
    id[0] = '\0';
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){.customer = customer,
                                                        .template_name = "promo",
                                                        .category = "marketing"},
                            id);
    assert_int_equal (s_sent_wait (RT_FAKE_TWILIO, "+380502220013", NULL, 0), 1);
    assert_int_equal (s_sent (RT_FAKE_WHATSAPP, "380502220013", NULL, 0), 0);
    rt_test_router_text (s_w.t.pg, skipped, sizeof skipped,
                         "SELECT skipped FROM notify.notifications WHERE id = '%s'", id);
    if (!strstr (skipped, "whatsapp: outside WhatsApp's 24-hour window"))
        fail_msg ("the notification does not say why WhatsApp was passed over: %s", skipped);
}

/* --- a long text --- */

/* The texts of the Telegram messages to chat, in order, into texts
 * (owned); how many. */
static size_t
s_telegram_texts (const char *chat, char **texts, size_t max)
{
    size_t n = 0;
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
        char to[64];
        json_t *doc;
        if (!r)
            break;
        if (r->provider != RT_FAKE_TELEGRAM)
            continue;
        rt_fake_request_recipient (r, to, sizeof to);
        if (strcmp (to, chat) != 0 || n == max)
            continue;
        doc = json_loads (r->body, 0, NULL);
        texts[n++] = strdup (json_string_value (json_object_get (doc, "text")));
        json_decref (doc);
    }
    return n;
}

/* A notification longer than Telegram's 4,096 characters arrives as
 * several messages, cut at the paragraph, each once and in order, and is
 * said delivered once; one longer than ten messages fails text_too_long. */
static void
test_long_text_in_parts (void **state)
{
    const size_t words = 500; /* "слово " is 6 characters: 3,000 a paragraph */
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], *texts[4];
    char *a = malloc (words * 12 + 1), *b = malloc (words * 12 + 1), *body, *huge;
    size_t n, alen = 0, blen = 0, hlen;
    rt_test_notify_said_t said;
    (void)state;
    for (size_t i = 0; i < words; i++) {
        alen += (size_t)sprintf (a + alen, "%s", i + 1 < words ? "слово " : "кінець");
        blen += (size_t)sprintf (b + blen, "%s", i + 1 < words ? "друге " : "друге");
    }
    body = malloc (alen + blen + 3);
    sprintf (body, "%s\n\n%s", a, b);
    s_customer (customer, "Europe/Kyiv", "telegram", "telegram=2601");
    id[0] = '\0';
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer,
                                    .template_name = "digest",
                                    .vars = (const char *const[]){"body", body, NULL}},
        id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    n = s_telegram_texts ("2601", texts, 4);
    assert_int_equal (n, 2);
    assert_string_equal (texts[0], a);
    assert_string_equal (texts[1], b);
    for (size_t i = 0; i < n; i++)
        free (texts[i]);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "2601", NULL, 0), 2);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.delivered, 1);

    /* Eleven messages' worth: refused whole. */
    hlen = 11 * 4096 + 10;
    huge = malloc (hlen + 1);
    memset (huge, 'x', hlen);
    huge[hlen] = '\0';
    s_customer (customer, "Europe/Kyiv", "telegram", "telegram=2602");
    id[0] = '\0';
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer,
                                    .template_name = "digest",
                                    .vars = (const char *const[]){"body", huge, NULL}},
        id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "text_too_long");
    assert_int_equal (s_sent (RT_FAKE_TELEGRAM, "2602", NULL, 0), 0);
    free (huge);
    free (body);
    free (a);
    free (b);
}

/* --- the customer's variables --- */

/* A template reads the customer's id and birthday as retainctl's preview
 * shows them: the same variables (template_customer_vars). */
static void
test_customer_variables (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], want[160], *texts[2];
    (void)state;
    s_customer (customer, "Europe/Kyiv", "telegram", "telegram=2701");
    rt_test_router_sql (
        s_w.t.pg, "UPDATE crm.customers SET birthday = '1990-05-17' WHERE id = '%s'", customer);
    id[0] = '\0';
    rt_test_notify_request (
        s_w.db, &(rt_test_notify_request_t){.customer = customer, .template_name = "birthday"}, id);
    assert_int_equal (s_sent_wait (RT_FAKE_TELEGRAM, "2701", NULL, 0), 1);
    assert_int_equal (s_telegram_texts ("2701", texts, 2), 1);
    snprintf (want, sizeof want, "Olena (%s), born May 17, 1990", customer);
    assert_string_equal (texts[0], want);
    free (texts[0]);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_failure_receipt_goes_on),
        cmocka_unit_test (test_marketing_failure_stays),
        cmocka_unit_test (test_stop_before_the_sender_is_known),
        cmocka_unit_test (test_human_agent_only_for_operators),
        cmocka_unit_test (test_whatsapp_window),
        cmocka_unit_test (test_long_text_in_parts),
        cmocka_unit_test (test_customer_variables),
        /* These move the clock nine hours on, then ten, then to the next
         * day. */
        cmocka_unit_test (test_cancel_takes_the_queued_sends),
        cmocka_unit_test (test_suppressed_while_queued),
        cmocka_unit_test (test_daily_quota_fails_over),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
