/*
 * test_fake_provider: the fake providers (tests/support/
 * rt_test_fake_provider.h) with the real adapters and the real client,
 * end to end on loopback: build (services/notify/provider.h), send
 * (rt_http_client), answer (the fake's script), classify.
 *
 * What notifyd's integration tests rely on, so what is checked here: an
 * account whose base_url is the fake's reaches every provider's send route
 * with the request the provider expects (path, credentials, body), the
 * fake's success comes back as SENT with the id the fake handed out, and
 * each scripted answer (429 with retry_after, 5xx, an HTML page, a delay
 * past the client's timeout, the documented permanent errors) comes back
 * as the verdict providers.md gives it; Telegram's sendPhoto and
 * sendDocument are answered with a Message carrying the photo or the
 * document and its caption, and their refusals of a URL are bad
 * requests; many sends at once are all
 * recorded and all answered; a fake stopped with answers still delayed
 * stops at once and leaks nothing (LSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "provider.h"
#include "rt_codec.h"
#include "rt_form.h"
#include "rt_test.h"
#include "rt_test_fake_provider.h"

typedef struct {
    rt_fake_provider_t *fake;                       /* the providers */
    struct event_base *base;                        /* the client's loop, on the test's thread */
    struct event *tick;                             /* wakes the loop so waits see their deadline */
    rt_http_client_t *client;                       /* the client under the adapters */
    provider_account_t accounts[RT_FAKE_PROVIDERS]; /* each provider's, at the fake */
} s_fixture_t;

/* One send in flight and what it came to. */
typedef struct {
    const provider_t *provider; /* whose classify reads the answer */
    provider_send_t send;       /* the send (its strings static) */
    provider_request_t req;     /* built */
    provider_outcome_t out;     /* classified */
    int calls;                  /* done callbacks */
} s_flight_t;

static void
s_on_tick (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int
s_setup (void **state)
{
    char err[256] = "";
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->fake = rt_fake_provider_start ();
    f->base = event_base_new ();
    assert_non_null (f->base);
    f->tick = event_new (f->base, -1, EV_PERSIST, s_on_tick, NULL);
    struct timeval tv = {0, 50 * 1000};
    event_add (f->tick, &tv);
    rt_http_client_config_t config = {.timeout_ms = 5000};
    f->client = rt_http_client_new (f->base, &config, err, sizeof err);
    if (!f->client)
        fail_msg ("client: %s", err);
    const char *base = rt_fake_provider_base (f->fake);
    f->accounts[RT_FAKE_TELEGRAM] = (provider_account_t){
        .provider = "telegram", .base_url = base, .token = "123456:ABC-DEF1234ghIkl"};
    f->accounts[RT_FAKE_VIBER] = (provider_account_t){
        .provider = "viber", .base_url = base, .token = "445da6az1s345z78", .sender = "Крамниця"};
    f->accounts[RT_FAKE_META] = (provider_account_t){
        .provider = "meta", .base_url = base, .token = "EAAPageToken", .account_id = "1048576"};
    f->accounts[RT_FAKE_WHATSAPP] = (provider_account_t){.provider = "meta",
                                                         .base_url = base,
                                                         .token = "EAAWhatsAppToken",
                                                         .account_id = "106540352242922"};
    f->accounts[RT_FAKE_TWILIO] =
        (provider_account_t){.provider = "twilio",
                             .base_url = base,
                             .token = "authtoken",
                             .account_id = "AC00000000000000000000000000000001",
                             .sender = "+15005550006",
                             .status_url = "http://127.0.0.1:9/hooks/twilio/shop-sms"};
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    rt_http_client_destroy (&f->client);
    event_free (f->tick);
    event_base_free (f->base);
    rt_fake_provider_stop (&f->fake);
    assert_null (f->fake);
    free (f);
    return 0;
}

static void
s_on_done (void *arg, const rt_http_response_t *resp)
{
    s_flight_t *fl = arg;
    fl->provider->classify (&fl->send, resp, &fl->out);
    fl->calls++;
}

/* Builds and submits fl's send through `account`. */
static void
s_submit (s_fixture_t *f, const provider_account_t *account, s_flight_t *fl, int timeout_ms)
{
    char err[256] = "";
    if (fl->provider->build (account, &fl->send, &fl->req, err, sizeof err) != 0)
        fail_msg ("%s build: %s", fl->provider->name, err);
    rt_http_client_request_t req = {
        .method = fl->req.method,
        .url = fl->req.url,
        .headers = (const char *const *)fl->req.headers,
        .body = fl->req.body,
        .body_len = fl->req.body_len,
        .timeout_ms = timeout_ms,
        .done = s_on_done,
        .arg = fl,
    };
    if (rt_http_client_submit (f->client, &req, err, sizeof err) != 0)
        fail_msg ("submit %s: %s", fl->req.log_url, err);
}

/* Runs the loop until *done reaches want, 20 s at most. */
static void
s_run (s_fixture_t *f, const int *done, int want)
{
    int64_t deadline = rt_test_now_ms () + 20000;
    while (*done < want) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("waited 20 s for %d answers, got %d", want, *done);
        event_base_loop (f->base, EVLOOP_ONCE);
    }
}

/* One send through provider p, waited for; the request is freed. */
static provider_outcome_t
s_send (s_fixture_t *f, rt_fake_kind_t kind, const provider_t *p, const provider_send_t *send,
        int timeout_ms)
{
    s_flight_t fl = {.provider = p, .send = *send};
    s_submit (f, &f->accounts[kind], &fl, timeout_ms);
    s_run (f, &fl.calls, 1);
    assert_int_equal (fl.calls, 1);
    rt_http_outreq_free (&fl.req);
    return fl.out;
}

/* The last request the fake recorded. */
static const rt_fake_request_t *
s_last (s_fixture_t *f)
{
    size_t n = rt_fake_provider_count (f->fake, RT_FAKE_PROVIDERS);
    assert_true (n > 0);
    return rt_fake_provider_request (f->fake, n - 1);
}

static json_t *
s_json (const rt_fake_request_t *r)
{
    json_error_t error;
    json_t *doc = json_loadb (r->body, r->body_len, 0, &error);
    if (!doc)
        fail_msg ("the fake got no JSON (%s): %s", error.text, r->body);
    assert_string_equal (rt_fake_request_header (r, "Content-Type"), "application/json");
    return doc;
}

static const char *
s_str (json_t *doc, const char *path0, const char *path1)
{
    json_t *v = json_object_get (doc, path0);
    if (path1)
        v = json_object_get (v, path1);
    return json_string_value (v);
}

/* --- every provider, the default answer --- */

static void
test_every_provider_sends (void **state)
{
    s_fixture_t *f = *state;
    const char *text = "Ваша посилка прибула у відділення №5";

    provider_send_t tg = {.channel = RETAIN__V1__CHANNEL__TELEGRAM, .to = "12345", .text = text};
    provider_outcome_t out = s_send (f, RT_FAKE_TELEGRAM, &provider_telegram, &tg, 0);
    const rt_fake_request_t *r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_int_equal (r->provider, RT_FAKE_TELEGRAM);
    assert_string_equal (r->method, "POST");
    assert_string_equal (r->target, "/bot123456:ABC-DEF1234ghIkl/sendMessage");
    assert_string_equal (out.external_id, r->id);
    assert_true (strncmp (out.external_id, "12345:", 6) == 0);
    json_t *doc = s_json (r);
    assert_int_equal (json_integer_value (json_object_get (doc, "chat_id")), 12345);
    assert_string_equal (s_str (doc, "text", NULL), text);
    json_decref (doc);

    provider_send_t vb = {
        .channel = RETAIN__V1__CHANNEL__VIBER, .to = "01234567890A=", .text = text};
    out = s_send (f, RT_FAKE_VIBER, &provider_viber, &vb, 0);
    r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_int_equal (r->provider, RT_FAKE_VIBER);
    assert_string_equal (r->target, "/pa/send_message");
    assert_string_equal (rt_fake_request_header (r, "X-Viber-Auth-Token"), "445da6az1s345z78");
    assert_string_equal (out.external_id, r->id);
    doc = s_json (r);
    assert_string_equal (s_str (doc, "receiver", NULL), "01234567890A=");
    assert_string_equal (s_str (doc, "sender", "name"), "Крамниця");
    assert_string_equal (s_str (doc, "text", NULL), text);
    json_decref (doc);

    provider_send_t ms = {.channel = RETAIN__V1__CHANNEL__INSTAGRAM,
                          .to = "6543210987654321",
                          .text = text,
                          .human_agent = true};
    out = s_send (f, RT_FAKE_META, &provider_meta, &ms, 0);
    r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_int_equal (r->provider, RT_FAKE_META);
    assert_string_equal (r->target, "/v21.0/1048576/messages?access_token=EAAPageToken");
    assert_string_equal (out.external_id, r->id);
    doc = s_json (r);
    assert_string_equal (s_str (doc, "recipient", "id"), "6543210987654321");
    assert_string_equal (s_str (doc, "messaging_type", NULL), "MESSAGE_TAG");
    assert_string_equal (s_str (doc, "tag", NULL), "HUMAN_AGENT");
    assert_string_equal (s_str (doc, "message", "text"), text);
    json_decref (doc);

    const char *params[] = {"Олена", NULL};
    provider_send_t wa = {.channel = RETAIN__V1__CHANNEL__WHATSAPP,
                          .to = "+380501234567",
                          .template_name = "parcel_arrived",
                          .template_lang = "uk",
                          .template_params = params};
    const provider_t *wa_adapter = provider_find_for ("meta", RETAIN__V1__CHANNEL__WHATSAPP);
    out = s_send (f, RT_FAKE_WHATSAPP, wa_adapter, &wa, 0);
    r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_int_equal (r->provider, RT_FAKE_WHATSAPP);
    assert_string_equal (r->target, "/v21.0/106540352242922/messages");
    assert_string_equal (rt_fake_request_header (r, "Authorization"), "Bearer EAAWhatsAppToken");
    assert_string_equal (out.external_id, r->id);
    doc = s_json (r);
    assert_string_equal (s_str (doc, "messaging_product", NULL), "whatsapp");
    assert_string_equal (s_str (doc, "template", "name"), "parcel_arrived");
    json_t *param0 = json_array_get (
        json_object_get (
            json_array_get (json_object_get (json_object_get (doc, "template"), "components"), 0),
            "parameters"),
        0);
    assert_string_equal (json_string_value (json_object_get (param0, "text")), "Олена");
    json_decref (doc);

    provider_send_t sms = {
        .channel = RETAIN__V1__CHANNEL__SMS, .to = "+380501234567", .text = text};
    out = s_send (f, RT_FAKE_TWILIO, &provider_twilio, &sms, 0);
    r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_int_equal (r->provider, RT_FAKE_TWILIO);
    assert_int_equal (r->status, 201);
    assert_string_equal (r->target,
                         "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages.json");
    assert_string_equal (out.external_id, r->id);
    const char *auth = rt_fake_request_header (r, "Authorization");
    assert_non_null (auth);
    uint8_t plain[128];
    long n = rt_base64_decode (auth + 6, strlen (auth + 6), plain, sizeof plain - 1);
    assert_true (n > 0);
    plain[n] = '\0';
    assert_string_equal ((char *)plain, "AC00000000000000000000000000000001:authtoken");
    char err[256] = "";
    rt_form_t *form = rt_form_parse (r->body, r->body_len, err, sizeof err);
    assert_non_null (form);
    assert_string_equal (rt_form_get (form, "To"), "+380501234567");
    assert_string_equal (rt_form_get (form, "From"), "+15005550006");
    assert_string_equal (rt_form_get (form, "Body"), text);
    assert_string_equal (rt_form_get (form, "StatusCallback"),
                         "http://127.0.0.1:9/hooks/twilio/shop-sms");
    rt_form_destroy (&form);

    assert_int_equal (rt_fake_provider_count (f->fake, RT_FAKE_PROVIDERS), 5);
    for (int k = 0; k < RT_FAKE_PROVIDERS; k++)
        assert_int_equal (rt_fake_provider_count (f->fake, (rt_fake_kind_t)k), 1);
    /* Fresh ids: no two answers named the same message. */
    for (size_t i = 0; i < 5; i++)
        for (size_t j = i + 1; j < 5; j++)
            assert_string_not_equal (rt_fake_provider_request (f->fake, i)->id,
                                     rt_fake_provider_request (f->fake, j)->id);
    assert_null (rt_fake_provider_request (f->fake, 5));

    /* Each request's recipient read back as its provider spells it, and
     * found by it. */
    static const char *const to[RT_FAKE_PROVIDERS] = {"12345", "01234567890A=", "6543210987654321",
                                                      "+380501234567", "+380501234567"};
    for (size_t i = 0; i < 5; i++) {
        char got[64];
        r = rt_fake_provider_request (f->fake, i);
        rt_fake_request_recipient (r, got, sizeof got);
        assert_string_equal (got, to[r->provider]);
    }
    const rt_fake_request_t *found[4];
    assert_int_equal (rt_fake_provider_sent (f->fake, RT_FAKE_PROVIDERS, "+380501234567", found, 4),
                      2);
    assert_int_equal (found[0]->provider, RT_FAKE_WHATSAPP);
    assert_int_equal (found[1]->provider, RT_FAKE_TWILIO);
    assert_int_equal (rt_fake_provider_sent (f->fake, RT_FAKE_TWILIO, "+380501234567", found, 4),
                      1);
    assert_int_equal (rt_fake_provider_sent (f->fake, RT_FAKE_TELEGRAM, "54321", NULL, 0), 0);
    /* Waiting for what never comes ends at the timeout. */
    int64_t t0 = rt_test_now_ms ();
    assert_int_equal (
        rt_fake_provider_sent_wait (f->fake, RT_FAKE_VIBER, "01234567890A=", 2, 200, found, 4), 1);
    assert_true (rt_test_now_ms () - t0 >= 190);
}

/* --- scripts --- */

/* One scripted answer and the verdict it must come to. */
typedef struct {
    rt_fake_kind_t provider;    /* whose script */
    rt_fake_answer_t answer;    /* pushed */
    provider_verdict_t verdict; /* expected */
    const char *code;           /* expected code */
    int64_t wait_ms;            /* expected wait */
    bool opt_out;               /* expected opt_out */
} s_scripted_t;

#define ERR(name)                                                                                  \
    {                                                                                              \
        .kind = RT_FAKE_ERROR, .error = name                                                       \
    }

static const s_scripted_t s_scripted[] = {
    {RT_FAKE_TELEGRAM,
     {.kind = RT_FAKE_RATE_LIMIT, .retry_after_s = 3},
     PROVIDER_WAIT,
     "429",
     3000,
     false},
    {RT_FAKE_TELEGRAM, {.kind = RT_FAKE_SERVER_ERROR}, PROVIDER_RETRY, "503", 0, false},
    {RT_FAKE_TELEGRAM, {.kind = RT_FAKE_HTML}, PROVIDER_RETRY, "502", 0, false},
    {RT_FAKE_TELEGRAM, ERR ("blocked"), PROVIDER_STOP_RECIPIENT, "403", 0, true},
    {RT_FAKE_TELEGRAM, ERR ("cant_initiate"), PROVIDER_STOP_RECIPIENT, "403", 0, false},
    {RT_FAKE_TELEGRAM, ERR ("chat_not_found"), PROVIDER_STOP_RECIPIENT, "400", 0, false},
    {RT_FAKE_TELEGRAM, ERR ("too_long"), PROVIDER_BAD_REQUEST, "400", 0, false},
    {RT_FAKE_TELEGRAM, ERR ("cant_parse"), PROVIDER_BAD_REQUEST, "400", 0, false},
    {RT_FAKE_TELEGRAM, ERR ("migrated"), PROVIDER_MIGRATED, "400", 0, false},
    {RT_FAKE_TELEGRAM, ERR ("unauthorized"), PROVIDER_STOP_ACCOUNT, "401", 0, false},
    {RT_FAKE_VIBER,
     {.kind = RT_FAKE_RATE_LIMIT, .retry_after_s = 2},
     PROVIDER_WAIT,
     "12",
     2000,
     false},
    {RT_FAKE_VIBER, ERR ("6"), PROVIDER_STOP_RECIPIENT, "6", 0, true},
    {RT_FAKE_VIBER, ERR ("5"), PROVIDER_STOP_RECIPIENT, "5", 0, false},
    {RT_FAKE_VIBER, ERR ("2"), PROVIDER_STOP_ACCOUNT, "2", 0, false},
    {RT_FAKE_VIBER, ERR ("24"), PROVIDER_STOP_ACCOUNT, "24", 0, false},
    {RT_FAKE_VIBER, ERR ("3"), PROVIDER_BAD_REQUEST, "3", 0, false},
    {RT_FAKE_VIBER, {.kind = RT_FAKE_HTML, .status = 200}, PROVIDER_RETRY, "200", 0, false},
    {RT_FAKE_META,
     {.kind = RT_FAKE_RATE_LIMIT, .retry_after_s = 5},
     PROVIDER_WAIT,
     "613",
     5000,
     false},
    {RT_FAKE_META, ERR ("10/2018278"), PROVIDER_WINDOW, "10/2018278", 0, false},
    {RT_FAKE_META, ERR ("551/1545041"), PROVIDER_STOP_RECIPIENT, "551/1545041", 0, false},
    {RT_FAKE_META, ERR ("100/2018001"), PROVIDER_STOP_RECIPIENT, "100/2018001", 0, false},
    {RT_FAKE_META, ERR ("190"), PROVIDER_STOP_ACCOUNT, "190/463", 0, false},
    {RT_FAKE_META, ERR ("10/1893063"), PROVIDER_STOP_ACCOUNT, "10/1893063", 0, false},
    {RT_FAKE_META, {.kind = RT_FAKE_SERVER_ERROR, .status = 500}, PROVIDER_RETRY, "500", 0, false},
    {RT_FAKE_WHATSAPP, {.kind = RT_FAKE_RATE_LIMIT}, PROVIDER_WAIT, "130429", 0, false},
    {RT_FAKE_WHATSAPP, ERR ("131047"), PROVIDER_WINDOW, "131047", 0, false},
    {RT_FAKE_WHATSAPP, ERR ("131026"), PROVIDER_STOP_RECIPIENT, "131026", 0, false},
    {RT_FAKE_WHATSAPP, ERR ("131050"), PROVIDER_STOP_RECIPIENT, "131050", 0, true},
    {RT_FAKE_WHATSAPP, ERR ("131056"), PROVIDER_WAIT, "131056", 6000, false},
    {RT_FAKE_WHATSAPP, ERR ("131000"), PROVIDER_RETRY, "131000", 0, false},
    {RT_FAKE_WHATSAPP, ERR ("2"), PROVIDER_RETRY, "2", 0, false},
    {RT_FAKE_WHATSAPP, ERR ("132001"), PROVIDER_BAD_REQUEST, "132001", 0, false},
    {RT_FAKE_WHATSAPP, ERR ("190"), PROVIDER_STOP_ACCOUNT, "190", 0, false},
    {RT_FAKE_TWILIO,
     {.kind = RT_FAKE_RATE_LIMIT, .retry_after_s = 4},
     PROVIDER_WAIT,
     "20429",
     4000,
     false},
    {RT_FAKE_TWILIO, ERR ("21610"), PROVIDER_STOP_RECIPIENT, "21610", 0, true},
    {RT_FAKE_TWILIO, ERR ("21211"), PROVIDER_STOP_RECIPIENT, "21211", 0, false},
    {RT_FAKE_TWILIO, ERR ("21614"), PROVIDER_STOP_RECIPIENT, "21614", 0, false},
    {RT_FAKE_TWILIO, ERR ("21408"), PROVIDER_BAD_REQUEST, "21408", 0, false},
    {RT_FAKE_TWILIO, ERR ("20003"), PROVIDER_STOP_ACCOUNT, "20003", 0, false},
    {RT_FAKE_TWILIO,
     {.kind = RT_FAKE_RAW, .status = 200, .content_type = "application/json", .body = "{\"sid\":"},
     PROVIDER_RETRY,
     "200",
     0,
     false},
};

#undef ERR

static const provider_t *
s_adapter (rt_fake_kind_t kind)
{
    switch (kind) {
    case RT_FAKE_TELEGRAM:
        return &provider_telegram;
    case RT_FAKE_VIBER:
        return &provider_viber;
    case RT_FAKE_META:
        return &provider_meta;
    case RT_FAKE_WHATSAPP:
        return &provider_whatsapp;
    default:
        return &provider_twilio;
    }
}

static provider_send_t
s_plain (rt_fake_kind_t kind)
{
    static const Retain__V1__Channel channels[RT_FAKE_PROVIDERS] = {
        RETAIN__V1__CHANNEL__TELEGRAM, RETAIN__V1__CHANNEL__VIBER, RETAIN__V1__CHANNEL__MESSENGER,
        RETAIN__V1__CHANNEL__WHATSAPP, RETAIN__V1__CHANNEL__SMS};
    provider_send_t send = {.channel = channels[kind], .to = "12345", .text = "Привіт"};
    return send;
}

static void
test_scripted_answers (void **state)
{
    s_fixture_t *f = *state;
    size_t n = sizeof s_scripted / sizeof *s_scripted;
    /* The whole script first: each provider takes its own in order. */
    for (size_t i = 0; i < n; i++)
        rt_fake_provider_push (f->fake, s_scripted[i].provider, &s_scripted[i].answer);
    for (size_t i = 0; i < n; i++) {
        const s_scripted_t *c = &s_scripted[i];
        provider_send_t send = s_plain (c->provider);
        provider_outcome_t out = s_send (f, c->provider, s_adapter (c->provider), &send, 0);
        if (out.verdict != c->verdict || strcmp (out.code, c->code) != 0 ||
            out.wait_ms != c->wait_ms || out.opt_out != c->opt_out || out.uncertain)
            fail_msg ("script %zu (%s): got %s code=%s wait=%lld opt_out=%d (%s), want %s "
                      "code=%s wait=%lld opt_out=%d",
                      i, s_adapter (c->provider)->name, provider_verdict_name (out.verdict),
                      out.code, (long long)out.wait_ms, out.opt_out, out.reason,
                      provider_verdict_name (c->verdict), c->code, (long long)c->wait_ms,
                      c->opt_out);
        const rt_fake_request_t *r = s_last (f);
        assert_int_equal (r->provider, c->provider);
        assert_int_equal (r->answer, c->answer.kind);
        if (c->answer.kind == RT_FAKE_HTML || c->answer.kind == RT_FAKE_RAW)
            assert_non_null (strstr (out.reason, "unreadable answer"));
        if (c->answer.kind == RT_FAKE_ERROR && strcmp (c->answer.error, "migrated") == 0)
            assert_string_equal (out.migrate_to, "-1001234567890");
    }
    /* Every script spent: each provider is back to success. */
    for (int k = 0; k < RT_FAKE_PROVIDERS; k++) {
        provider_send_t send = s_plain ((rt_fake_kind_t)k);
        provider_outcome_t out =
            s_send (f, (rt_fake_kind_t)k, s_adapter ((rt_fake_kind_t)k), &send, 0);
        assert_int_equal (out.verdict, PROVIDER_SENT);
        assert_string_equal (out.external_id, s_last (f)->id);
    }
}

/* --- Telegram's media --- */

/* The fake's answer to a Bot API call made by hand: the Message a
 * client's library reads back. */
static json_t *
s_bot_call (s_fixture_t *f, const char *method, const char *body)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *base = rt_fake_provider_base (f->fake);
    char path[128];
    rt_test_reply_t reply;
    json_t *doc;
    snprintf (path, sizeof path, "/bot%s/%s", f->accounts[RT_FAKE_TELEGRAM].token, method);
    if (rt_test_http_request (atoi (strrchr (base, ':') + 1), "POST", path, body, strlen (body), h,
                              &reply) != 200)
        fail_msg ("%s: %ld %s", method, reply.status, reply.body);
    doc = json_loads (reply.body, 0, NULL);
    if (!doc)
        fail_msg ("%s answered no JSON: %s", method, reply.body);
    assert_true (json_is_true (json_object_get (doc, "ok")));
    return doc;
}

static void
test_telegram_media (void **state)
{
    s_fixture_t *f = *state;
    const char *caption = "Ось фото вашої посилки";
    const char *pdf = "https://shop.example/invoices/INV-2041.pdf";
    provider_attachment_t photo = {.kind = "image", .url = "https://shop.example/p/7.jpg"};
    provider_attachment_t invoice = {.kind = "document", .url = pdf, .name = "INV-2041.pdf"};
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__TELEGRAM,
                            .to = "12345",
                            .text = caption,
                            .attachments = &photo,
                            .n_attachments = 1};

    /* The adapter's sendPhoto, and what the fake answered it. */
    provider_outcome_t out = s_send (f, RT_FAKE_TELEGRAM, &provider_telegram, &send, 0);
    const rt_fake_request_t *r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_true (out.delivered);
    assert_string_equal (r->target, "/bot123456:ABC-DEF1234ghIkl/sendPhoto");
    assert_string_equal (out.external_id, r->id);
    json_t *doc = s_json (r);
    assert_string_equal (s_str (doc, "photo", NULL), photo.url);
    assert_string_equal (s_str (doc, "caption", NULL), caption);
    assert_null (json_object_get (doc, "text"));
    json_decref (doc);

    /* A document without a caption: sendDocument, nothing else. */
    send = (provider_send_t){.channel = RETAIN__V1__CHANNEL__TELEGRAM,
                             .to = "12345",
                             .text = "",
                             .attachments = &invoice,
                             .n_attachments = 1};
    out = s_send (f, RT_FAKE_TELEGRAM, &provider_telegram, &send, 0);
    r = s_last (f);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_string_equal (r->target, "/bot123456:ABC-DEF1234ghIkl/sendDocument");
    doc = s_json (r);
    assert_string_equal (s_str (doc, "document", NULL), pdf);
    assert_null (json_object_get (doc, "caption"));
    json_decref (doc);

    /* The documented shapes of the answers: a Message with photo (its
     * sizes) and the caption, with document (named from the URL). */
    doc = s_bot_call (f, "sendPhoto",
                      "{\"chat_id\": 12345, \"photo\": \"https://shop.example/p/7.jpg\","
                      " \"caption\": \"Ось\"}");
    json_t *result = json_object_get (doc, "result");
    assert_true (json_is_integer (json_object_get (result, "message_id")));
    assert_true (json_array_size (json_object_get (result, "photo")) >= 1);
    assert_non_null (json_string_value (
        json_object_get (json_array_get (json_object_get (result, "photo"), 0), "file_id")));
    assert_string_equal (s_str (result, "caption", NULL), "Ось");
    assert_null (json_object_get (result, "text"));
    json_decref (doc);
    doc = s_bot_call (f, "sendDocument",
                      "{\"chat_id\": 12345, \"document\": "
                      "\"https://shop.example/invoices/INV-2041.pdf\"}");
    result = json_object_get (doc, "result");
    assert_string_equal (s_str (result, "document", "file_name"), "INV-2041.pdf");
    assert_non_null (s_str (result, "document", "file_id"));
    assert_null (json_object_get (result, "caption"));
    json_decref (doc);

    /* Telegram's refusals of a medium: a bad request, the provider's
     * words kept, never a retry. */
    static const char *const errors[] = {"wrong_url", "url_content", "web_page_content",
                                         "caption_too_long"};
    static const char *const words[] = {"Bad Request: wrong file identifier/HTTP URL specified",
                                        "Bad Request: failed to get HTTP URL content",
                                        "Bad Request: wrong type of the web page content",
                                        "Bad Request: message caption is too long"};
    send = (provider_send_t){.channel = RETAIN__V1__CHANNEL__TELEGRAM,
                             .to = "12345",
                             .text = caption,
                             .attachments = &photo,
                             .n_attachments = 1};
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
        rt_fake_provider_push (f->fake, RT_FAKE_TELEGRAM,
                               &(rt_fake_answer_t){.kind = RT_FAKE_ERROR, .error = errors[i]});
        out = s_send (f, RT_FAKE_TELEGRAM, &provider_telegram, &send, 0);
        assert_int_equal (s_last (f)->status, 400);
        assert_int_equal (out.verdict, PROVIDER_BAD_REQUEST);
        assert_string_equal (out.code, "400");
        assert_string_equal (out.reason, words[i]);
    }
}

/* --- time --- */

static void
test_timeout_is_uncertain (void **state)
{
    s_fixture_t *f = *state;
    provider_send_t send = s_plain (RT_FAKE_TELEGRAM);
    rt_fake_answer_t slow = {.kind = RT_FAKE_SUCCESS, .delay_ms = 3000};
    rt_fake_provider_push (f->fake, RT_FAKE_TELEGRAM, &slow);

    int64_t t0 = rt_test_now_ms ();
    provider_outcome_t out = s_send (f, RT_FAKE_TELEGRAM, &provider_telegram, &send, 300);
    int64_t took = rt_test_now_ms () - t0;
    /* Recorded when it came, not when its answer was due. */
    assert_true (s_last (f)->at_ms >= t0 && s_last (f)->at_ms < t0 + 300);
    /* The provider saw it (recorded) but its answer came too late: a
     * retry might deliver twice, and the outcome says so. */
    assert_int_equal (out.verdict, PROVIDER_RETRY);
    assert_true (out.uncertain);
    assert_non_null (strstr (out.reason, "timeout"));
    assert_int_equal (rt_fake_provider_count (f->fake, RT_FAKE_TELEGRAM), 1);
    assert_true (took < 2500);

    /* A delay within the timeout is just slow. */
    rt_fake_answer_t late = {.kind = RT_FAKE_SUCCESS, .delay_ms = 300};
    rt_fake_provider_push (f->fake, RT_FAKE_TELEGRAM, &late);
    t0 = rt_test_now_ms ();
    out = s_send (f, RT_FAKE_TELEGRAM, &provider_telegram, &send, 5000);
    assert_int_equal (out.verdict, PROVIDER_SENT);
    assert_true (rt_test_now_ms () - t0 >= 290);
    assert_string_equal (out.external_id, s_last (f)->id);
}

static void
test_stop_with_answers_delayed (void **state)
{
    s_fixture_t *f = *state;
    provider_send_t send = s_plain (RT_FAKE_VIBER);
    rt_fake_answer_t stuck = {.kind = RT_FAKE_SUCCESS, .delay_ms = 60000};
    rt_fake_provider_push (f->fake, RT_FAKE_VIBER, &stuck);
    rt_fake_provider_push (f->fake, RT_FAKE_VIBER, &stuck);
    provider_outcome_t out = s_send (f, RT_FAKE_VIBER, &provider_viber, &send, 200);
    assert_int_equal (out.verdict, PROVIDER_RETRY);
    assert_true (out.uncertain);

    /* The second is still waiting on the fake when it stops. */
    s_flight_t fl = {.provider = &provider_viber, .send = send};
    s_submit (f, &f->accounts[RT_FAKE_VIBER], &fl, 10000);
    int64_t deadline = rt_test_now_ms () + 10000;
    while (rt_fake_provider_count (f->fake, RT_FAKE_VIBER) < 2) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("the second request never reached the fake");
        event_base_loop (f->base, EVLOOP_ONCE);
    }
    int64_t t0 = rt_test_now_ms ();
    rt_fake_provider_stop (&f->fake);
    assert_true (rt_test_now_ms () - t0 < 3000);
    /* The client gets the answer that was flushed at the stop. */
    s_run (f, &fl.calls, 1);
    assert_int_equal (fl.out.verdict, PROVIDER_SENT);
    rt_http_outreq_free (&fl.req);
    f->fake = rt_fake_provider_start ();
}

static void
test_connection_refused (void **state)
{
    s_fixture_t *f = *state;
    char base[64];
    snprintf (base, sizeof base, "http://127.0.0.1:%d", rt_test_free_port ());
    provider_account_t account = f->accounts[RT_FAKE_TWILIO];
    account.base_url = base;
    s_flight_t fl = {.provider = &provider_twilio, .send = s_plain (RT_FAKE_TWILIO)};
    s_submit (f, &account, &fl, 2000);
    s_run (f, &fl.calls, 1);
    /* Nothing reached a provider: a retry cannot deliver twice. */
    assert_int_equal (fl.out.verdict, PROVIDER_RETRY);
    assert_false (fl.out.uncertain);
    assert_non_null (strstr (fl.out.reason, "connect_failed"));
    rt_http_outreq_free (&fl.req);
}

/* --- many at once --- */

#define S_MANY 250

static void
test_many_at_once (void **state)
{
    s_fixture_t *f = *state;
    s_flight_t *fl = calloc (S_MANY, sizeof *fl);
    assert_non_null (fl);
    int done = 0;
    /* Every fifth to Twilio fails for good; the rest succeed. */
    for (int i = 0; i < S_MANY; i++) {
        if (i % 5 == 4) {
            rt_fake_answer_t stop = {.kind = RT_FAKE_ERROR, .error = "21610"};
            rt_fake_provider_push (f->fake, RT_FAKE_TWILIO, &stop);
        }
    }
    for (int i = 0; i < S_MANY; i++) {
        rt_fake_kind_t kind = (i % 5 == 4) ? RT_FAKE_TWILIO : (rt_fake_kind_t)(i % 4);
        fl[i].provider = s_adapter (kind);
        fl[i].send = s_plain (kind);
        s_submit (f, &f->accounts[kind], &fl[i], 10000);
    }
    for (;;) {
        done = 0;
        for (int i = 0; i < S_MANY; i++)
            done += fl[i].calls;
        if (done == S_MANY)
            break;
        event_base_loop (f->base, EVLOOP_ONCE);
    }
    assert_true (rt_fake_provider_wait (f->fake, S_MANY, 1000));
    assert_int_equal (rt_fake_provider_count (f->fake, RT_FAKE_PROVIDERS), S_MANY);
    assert_int_equal (rt_fake_provider_count (f->fake, RT_FAKE_TWILIO), S_MANY / 5);
    int sent = 0, stopped = 0;
    for (int i = 0; i < S_MANY; i++) {
        assert_int_equal (fl[i].calls, 1);
        if (fl[i].out.verdict == PROVIDER_SENT) {
            sent++;
            /* Its id is one the fake handed out, to this provider. */
            bool found = false;
            for (size_t j = 0; j < S_MANY && !found; j++) {
                const rt_fake_request_t *r = rt_fake_provider_request (f->fake, j);
                found = strcmp (r->id, fl[i].out.external_id) == 0 &&
                        strcmp (fl[i].provider->name, s_adapter (r->provider)->name) == 0;
            }
            assert_true (found);
        } else {
            assert_int_equal (fl[i].out.verdict, PROVIDER_STOP_RECIPIENT);
            assert_true (fl[i].out.opt_out);
            stopped++;
        }
        rt_http_outreq_free (&fl[i].req);
    }
    assert_int_equal (sent, S_MANY - S_MANY / 5);
    assert_int_equal (stopped, S_MANY / 5);
    free (fl);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_every_provider_sends, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scripted_answers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_telegram_media, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout_is_uncertain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_with_answers_delayed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_connection_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_many_at_once, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
