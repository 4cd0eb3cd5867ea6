/*
 * retain-notifyd sending an operator's photos and documents: a real busd
 * and notifyd on a clock file, the shared fake of the providers (Telegram
 * accounts of the inboxes "main" and "slow", whose budget lets one
 * message through to a chat per 100 seconds, and a Twilio SMS account of
 * "main"), customers in crm, and OutboundMessageRequested as routerd
 * publishes an operator's reply.
 *
 * What a user would notice: a reply with a photo reaches the customer's
 * Telegram once, as the photo with the text under it; a text too long for
 * a caption with a PDF arrives as the text and then the document, each
 * once and in that order, even when notifyd is SIGKILLed between the two,
 * and the bus hears once that the message was delivered; a URL Telegram
 * cannot fetch fails the message with Telegram's words and is never
 * retried, the media after it never going; an attachment notifyd cannot
 * send (a video, a URL in the clear, eleven of them) fails the message at
 * once with bad_attachment, naming it, nothing sent; and on SMS, which
 * sends no media, the customer gets the text with the link on a line of
 * its own, or the message fails text_too_long when the link does not fit.
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
#include <signal.h>
#include <unistd.h>

#include "rt_clock.h"
#include "rt_form.h"
#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"

/* 2026-01-15 15:00 UTC. */
#define S_T0       1768489200000LL
#define S_WAIT_MS  30000
#define S_QUIET_MS 1500 /* long enough for a request that was due to have gone */
#define S_TOKEN    "123456:TESTTOKEN"

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* --- the world --- */

/* A customer with one identity, on channel in inbox; its id into id. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *channel, const char *inbox,
            const char *address)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (
        s_w.t.pg, "INSERT INTO crm.customers (id, name, locale) VALUES ('%s', 'Iryna', 'uk')", id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " VALUES ('%s', '%s', '%s', '%s')",
                        channel, inbox, address, id);
}

/* One attachment of a reply. */
typedef struct {
    const char *kind, *url, *name;
} s_att_t;

/* An operator's reply to customer, as routerd publishes it, with
 * attachments (n of them); its message id into id. */
static void
s_reply (const char *customer, const char *text, const s_att_t *atts, size_t n,
         char id[RT_UUID_STR_LEN + 1])
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    Retain__V1__Attachment a[12], *ap[12];
    assert_true (n <= 12);
    rt_test_router_uuid (id);
    for (size_t i = 0; i < n; i++) {
        retain__v1__attachment__init (&a[i]);
        a[i].kind = (char *)atts[i].kind;
        a[i].url = (char *)atts[i].url;
        if (atts[i].name)
            a[i].name = (char *)atts[i].name;
        ap[i] = &a[i];
    }
    m.message_id = id;
    m.customer_id = (char *)customer;
    m.conversation_id = "conv-attach";
    m.text = (char *)text;
    m.operator_id = "op-olha";
    m.attachments = ap;
    m.n_attachments = n;
    rt_test_notify_publish_one (s_w.db, "OutboundMessageRequested", customer, &m.base,
                                "retain-routerd", NULL);
}

static int
s_setup (void **state)
{
    const char *const extra[] = {"--request-timeout=10s", "--backoff=100ms", "--backoff-max=300ms",
                                 "--poll=20ms",           "--sweep=200ms",   NULL};
    const char *base;
    (void)state;
    s_fake = rt_fake_provider_start ();
    base = rt_fake_provider_base (s_fake);
    rt_test_notify_open (&s_w, "notify_attachments", S_T0);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, s_w.t.clock, "n1",
                           "notifyd-attachments.log", extra);
    rt_test_router_sql (
        s_w.t.pg,
        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url, token,"
        " account_id, sender, rate_per_s, burst, recipient_per_s, recipient_burst) VALUES"
        " ('tg-main', 'main', 'telegram', 'telegram', '%s', '" S_TOKEN "', '', '', 50, 10, 50, 10),"
        " ('tg-slow', 'slow', 'telegram', 'telegram', '%s', '" S_TOKEN "', '', '', 50, 10, 0.01,"
        "  1),"
        " ('sms-main', 'main', 'sms', 'twilio', '%s', 'authtoken', 'AC0123', '+15550000000',"
        "  50, 10, 50, 10)",
        base, base, base);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notify_teardown (&s_n, &s_w, &s_fake);
    return 0;
}

/* --- what the fake received --- */

/* The i-th request the fake recorded for Telegram chat `chat`, any
 * method; NULL past the last. */
static const rt_fake_request_t *
s_to_chat (const char *chat, size_t i, json_t **body)
{
    size_t seen = 0;
    *body = NULL;
    for (size_t k = 0;; k++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, k);
        json_t *doc, *v;
        char to[64] = "";
        if (!r)
            return NULL;
        if (r->provider != RT_FAKE_TELEGRAM)
            continue;
        doc = json_loads (r->body, 0, NULL);
        v = json_object_get (doc, "chat_id");
        if (json_is_integer (v))
            snprintf (to, sizeof to, "%lld", (long long)json_integer_value (v));
        if (strcmp (to, chat) == 0 && seen++ == i) {
            *body = doc;
            return r;
        }
        json_decref (doc);
    }
}

/* How many requests chat got. */
static size_t
s_count (const char *chat)
{
    size_t n = 0;
    json_t *body;
    while (s_to_chat (chat, n, &body)) {
        json_decref (body);
        n++;
    }
    return n;
}

/* Waits until chat got at least want requests; how many it got. */
static size_t
s_count_wait (const char *chat, size_t want)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    size_t n;
    do {
        n = s_count (chat);
        if (n >= want)
            return n;
        usleep (20 * 1000);
    } while (rt_test_now_ms () < until);
    return n;
}

/* Asserts request i to chat was Bot API method `method` with field (text,
 * photo, document) `value` and caption (NULL: none). */
static void
s_expect (const char *chat, size_t i, const char *method, const char *field, const char *value,
          const char *caption)
{
    json_t *body;
    const rt_fake_request_t *r = s_to_chat (chat, i, &body);
    char target[128];
    if (!r)
        fail_msg ("chat %s got no request %zu", chat, i);
    snprintf (target, sizeof target, "/bot" S_TOKEN "/%s", method);
    assert_string_equal (r->target, target);
    assert_string_equal (json_string_value (json_object_get (body, field)), value);
    if (caption)
        assert_string_equal (json_string_value (json_object_get (body, "caption")), caption);
    else
        assert_null (json_object_get (body, "caption"));
    json_decref (body);
}

/* The Twilio Body sent to number, "" when none was. */
static void
s_sms_body (const char *number, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t k = 0;; k++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, k);
        char err[128];
        rt_form_t *form;
        if (!r)
            return;
        if (r->provider != RT_FAKE_TWILIO)
            continue;
        form = rt_form_parse (r->body, r->body_len, err, sizeof err);
        if (form && rt_form_get (form, "To") && strcmp (rt_form_get (form, "To"), number) == 0)
            snprintf (out, len, "%s", rt_form_get (form, "Body"));
        rt_form_destroy (&form);
    }
}

/* --- Telegram --- */

static void
test_photo_with_caption (void **state)
{
    const char *text = "Ось фото вашої посилки перед відправкою";
    const s_att_t photo[] = {{"image", "https://shop.example/parcels/2041.jpg", "2041.jpg"}};
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "telegram", "main", "3101");
    s_reply (customer, text, photo, 1, id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    s_expect ("3101", 0, "sendPhoto", "photo", photo[0].url, text);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    /* The send keeps what it carried; one request, so no parts. */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND attachments->0->>'url' = '%s'"
                                           " AND part_of IS NULL",
                                           id, photo[0].url),
                      1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_count ("3101"), 1);
}

/* A text over a caption's 1024 characters, then a document: two requests,
 * in order, each once, across a SIGKILL between them. */
static void
test_long_text_then_document_across_kill (void **state)
{
    const s_att_t invoice[] = {{"document", "https://shop.example/invoices/INV-2041.pdf", NULL}};
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], text[4096];
    rt_test_notify_said_t said;
    size_t used = 0;
    (void)state;
    /* About 1,600 characters (3,000 bytes of Cyrillic): over a caption,
     * within a message. */
    while (used < 3000) {
        const char *line = "Ваше замовлення 2041 зібране і чекає кур'єра. ";
        used += (size_t)snprintf (text + used, sizeof text - used, "%s", line);
    }
    s_customer (customer, "telegram", "slow", "3102");
    s_reply (customer, text, invoice, 1, id);

    /* The text first, alone: the document waits for the chat's budget. */
    assert_int_equal (s_count_wait ("3102", 1), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    s_expect ("3102", 0, "sendMessage", "text", text, NULL);
    assert_int_equal (
        rt_test_router_long (s_w.t.pg,
                             "SELECT count(*) FROM notify.sends WHERE part_of = '%s' AND part = 2"
                             " AND parts = 2 AND status = 'queued'"
                             " AND next_at > to_timestamp(%lld / 1000.0)",
                             id, (long long)rt_clock_now_ms ()),
        1);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.delivered, 0);

    /* notifyd dies between the two; the next one sends the rest. */
    assert_true (rt_test_kill (s_n.pid, SIGKILL) != 0);
    s_n.pid = 0;
    rt_test_notifyd_restart (&s_n);
    rt_test_notify_clock_set (&s_w, rt_clock_now_ms () + 200000);
    assert_int_equal (s_count_wait ("3102", 2), 2);
    s_expect ("3102", 1, "sendDocument", "document", invoice[0].url, NULL);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);

    /* The same request again (a replay) makes nothing new. */
    {
        Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
        Retain__V1__Attachment a = RETAIN__V1__ATTACHMENT__INIT, *ap = &a;
        a.kind = (char *)invoice[0].kind;
        a.url = (char *)invoice[0].url;
        m.message_id = id;
        m.customer_id = customer;
        m.text = text;
        m.operator_id = "op-olha";
        m.attachments = &ap;
        m.n_attachments = 1;
        rt_test_notify_publish_one (s_w.db, "OutboundMessageRequested", customer, &m.base,
                                    "retain-routerd", NULL);
    }
    rt_test_notify_clock_set (&s_w, rt_clock_now_ms () + 200000);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_count ("3102"), 2);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE part_of = '%s'"
                                           " AND status = 'delivered'",
                                           id),
                      2);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.delivered, 1);
}

/* A URL Telegram cannot fetch: the message fails with Telegram's words,
 * once, and nothing after it goes. */
static void
test_refused_url_fails_the_message (void **state)
{
    const s_att_t one[] = {{"image", "https://shop.example/missing.jpg", NULL}};
    const s_att_t three[] = {{"image", "https://shop.example/a.jpg", NULL},
                             {"image", "https://shop.example/gone.jpg", NULL},
                             {"document", "https://shop.example/c.pdf", NULL}};
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], part3[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "telegram", "main", "3103");
    rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM,
                           &(rt_fake_answer_t){.kind = RT_FAKE_ERROR, .error = "url_content"});
    s_reply (customer, "Фото посилки", one, 1, id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "400");
    assert_string_equal (said.error, "Bad Request: failed to get HTTP URL content");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "failed", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_count ("3103"), 1);

    /* Three media, the second refused: the first went, the third never
     * does, and the message failed once. */
    s_customer (customer, "telegram", "main", "3104");
    rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM, &(rt_fake_answer_t){.kind = RT_FAKE_SUCCESS});
    rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM,
                           &(rt_fake_answer_t){.kind = RT_FAKE_ERROR, .error = "wrong_url"});
    s_reply (customer, "Три файли", three, 3, id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_int_equal (said.delivered, 0);
    assert_string_equal (said.error, "Bad Request: wrong file identifier/HTTP URL specified");
    s_expect ("3104", 0, "sendPhoto", "photo", three[0].url, "Три файли");
    s_expect ("3104", 1, "sendPhoto", "photo", three[1].url, NULL);
    rt_test_router_text (s_w.t.pg, part3, sizeof part3,
                         "SELECT id FROM notify.sends WHERE part_of = '%s' AND part = 3"
                         " AND status = 'failed' AND last_code = 'part_failed'"
                         " AND last_reason LIKE 'part 2 of 3 failed: %%'",
                         id);
    if (!part3[0])
        fail_msg ("the third part did not fail with the second");
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_count ("3104"), 2);
}

/* What notifyd cannot send from the bus fails at once, naming it. */
static void
test_bad_attachment_from_the_bus (void **state)
{
    static const struct {
        s_att_t att;
        size_t n;         /* how many of it */
        const char *says; /* in the reason */
    } cases[] = {
        {{"video", "https://shop.example/v.mp4", NULL}, 1, "attachment 1: kind"},
        {{"image", "http://shop.example/p.jpg", NULL}, 1, "attachment 1: url: must be an https://"},
        {{"image", "https://shop.example/p.jpg", NULL}, 11, "11 attachments"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], chat[16];
        s_att_t atts[11];
        rt_test_notify_said_t said;
        snprintf (chat, sizeof chat, "%zu", 3110 + i);
        for (size_t k = 0; k < cases[i].n; k++)
            atts[k] = cases[i].att;
        s_customer (customer, "telegram", "main", chat);
        s_reply (customer, "Дивіться вкладення", atts, cases[i].n, id);
        rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
        assert_int_equal (said.failed, 1);
        assert_true (said.permanent);
        assert_string_equal (said.code, "bad_attachment");
        if (!strstr (said.error, cases[i].says))
            fail_msg ("case %zu: \"%s\" does not say \"%s\"", i, said.error, cases[i].says);
        assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "failed", S_WAIT_MS), 1);
        assert_int_equal (s_count (chat), 0);
    }
}

/* --- a channel without media --- */

static void
test_sms_gets_the_link (void **state)
{
    const s_att_t invoice[] = {{"document", "https://shop.example/invoices/INV-2042.pdf", NULL}};
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], body[2048], text[1700];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, "sms", "main", "+380502230001");
    s_reply (customer, "Рахунок за замовлення 2042:", invoice, 1, id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS), 1);
    s_sms_body ("+380502230001", body, sizeof body);
    assert_string_equal (body,
                         "Рахунок за замовлення 2042:\nhttps://shop.example/invoices/INV-2042.pdf");

    /* 1590 characters and the link are over SMS's 1600: refused, nothing
     * sent. */
    memset (text, 'a', 1590);
    text[1590] = '\0';
    s_customer (customer, "sms", "main", "+380502230002");
    s_reply (customer, text, invoice, 1, id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, "text_too_long");
    if (!strstr (said.error, "with the attachments' links") || !strstr (said.error, "1600"))
        fail_msg ("the refusal does not name the links and the limit: %s", said.error);
    usleep (S_QUIET_MS * 1000);
    s_sms_body ("+380502230002", body, sizeof body);
    assert_string_equal (body, "");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_photo_with_caption),
        cmocka_unit_test (test_long_text_then_document_across_kill),
        cmocka_unit_test (test_refused_url_fails_the_message),
        cmocka_unit_test (test_bad_attachment_from_the_bus),
        cmocka_unit_test (test_sms_gets_the_link),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
