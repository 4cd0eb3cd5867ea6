/*
 * test_notify_provider: notifyd's provider adapters (services/notify/
 * provider.h), without a network.
 *
 * What a shop notices when a message goes out: the request each provider
 * gets (its URL, its credentials where the provider wants them, the body
 * parsed back as JSON or as a form and compared field by field), and what
 * retain makes of each answer the providers document
 * (../shared/reference/providers.md, section 2): sent with the provider's
 * message id, retried, waited for as long as the provider asked, the
 * recipient given up on (an unsubscribe withdrawing consent), a template
 * or another channel needed, the request refused for good, or the sending
 * account stopped. Every answer below is written inline with its source;
 * unknown codes, HTML, garbage and empty bodies, and every way the
 * transport can fail are classified too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "rt_codec.h"
#include "rt_form.h"

/* --- answers, as rt_http_client hands them over --- */

/* An answer of status with body (NULL: empty) and content type (NULL:
 * none); retry_after_ms as the client parsed Retry-After (-1: none). The
 * strings are lent and must outlive the response. */
typedef struct {
    rt_http_client_header_t headers[2]; /* Content-Type, when given */
    rt_http_response_t resp;            /* what an adapter reads */
} s_answer_t;

static void
s_answer (s_answer_t *a, int status, const char *type, const char *body, int64_t retry_after_ms)
{
    memset (a, 0, sizeof *a);
    a->resp.outcome = RT_HTTP_OUTCOME_OK;
    a->resp.error = "";
    a->resp.status = status;
    if (type) {
        a->headers[0].name = "Content-Type";
        a->headers[0].value = type;
        a->resp.headers = a->headers;
        a->resp.nheaders = 1;
    }
    a->resp.body = body ? body : "";
    a->resp.body_len = body ? strlen (body) : 0;
    a->resp.retry_after_ms = retry_after_ms;
}

/* What a JSON answer of status comes to through adapter p. */
static provider_outcome_t
s_classify (const provider_t *p, int status, const char *body, int64_t retry_after_ms)
{
    s_answer_t a;
    provider_outcome_t out;
    provider_send_t send = {.message_id = "m-1", .to = "12345", .text = "hi"};
    s_answer (&a, status, "application/json", body, retry_after_ms);
    /* A stale outcome must not leak through: classify zeroes it first. */
    memset (&out, 0x5a, sizeof out);
    p->classify (&send, &a.resp, &out);
    return out;
}

/* One documented answer and its expected outcome. */
typedef struct {
    const char *source;         /* where the answer's shape comes from */
    int status;                 /* HTTP status */
    const char *body;           /* the body, JSON */
    int64_t retry_after_ms;     /* Retry-After as parsed, -1: none */
    provider_verdict_t verdict; /* expected class */
    const char *code;           /* expected code */
    bool opt_out;               /* expected opt_out */
    int64_t wait_ms;            /* expected wait_ms */
    const char *external_id;    /* expected external_id ("" unless SENT) */
    const char *reason_has;     /* expected to appear in the reason; NULL: anything */
} s_case_t;

static void
s_check_cases (const provider_t *p, const s_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const s_case_t *c = &cases[i];
        provider_outcome_t out = s_classify (p, c->status, c->body, c->retry_after_ms);
        if (out.verdict != c->verdict || strcmp (out.code, c->code) != 0 ||
            out.opt_out != c->opt_out || out.wait_ms != c->wait_ms ||
            strcmp (out.external_id, c->external_id) != 0 ||
            (c->reason_has && !strstr (out.reason, c->reason_has)) || out.uncertain ||
            (c->verdict != PROVIDER_SENT && !out.reason[0]))
            fail_msg ("%s case %zu (%s): HTTP %d %s\n got %s code=%s opt_out=%d wait=%lld "
                      "ext=%s reason=%s\n want %s code=%s opt_out=%d wait=%lld ext=%s",
                      p->name, i, c->source, c->status, c->body,
                      provider_verdict_name (out.verdict), out.code, out.opt_out,
                      (long long)out.wait_ms, out.external_id, out.reason,
                      provider_verdict_name (c->verdict), c->code, c->opt_out,
                      (long long)c->wait_ms, c->external_id);
    }
}

/* --- requests --- */

static void
s_build (const provider_t *p, const provider_account_t *account, const provider_send_t *send,
         provider_request_t *req)
{
    char err[256] = "";
    if (p->build (account, send, req, err, sizeof err) != 0)
        fail_msg ("%s build refused: %s", p->name, err);
    assert_string_equal (req->method, "POST");
    assert_non_null (req->url);
    assert_non_null (req->log_url);
    assert_non_null (req->body);
    assert_int_equal (req->body_len, strlen (req->body));
}

/* Refused, with a reason that holds `reason_has`. */
static void
s_refused (const provider_t *p, const provider_account_t *account, const provider_send_t *send,
           const char *reason_has)
{
    char err[256] = "";
    provider_request_t req;
    memset (&req, 0x5a, sizeof req);
    if (p->build (account, send, &req, err, sizeof err) == 0)
        fail_msg ("%s built what it should refuse (%s): %s", p->name, reason_has, req.url);
    if (!strstr (err, reason_has))
        fail_msg ("%s refused with \"%s\", not naming \"%s\"", p->name, err, reason_has);
    assert_null (req.url);
    assert_null (req.body);
}

/* The value of header `name` among req's lines, NULL when absent. */
static const char *
s_header (const provider_request_t *req, const char *name)
{
    size_t n = strlen (name);
    for (size_t i = 0; req->headers[i]; i++)
        if (strncasecmp (req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
            return req->headers[i] + n + 2;
    return NULL;
}

/* req's body is the JSON `want` (json_pack format and values), exactly. */
static void
s_json_body (const provider_request_t *req, const char *fmt, ...)
{
    json_error_t error;
    json_t *got = json_loadb (req->body, req->body_len, 0, &error);
    if (!got)
        fail_msg ("body is not JSON (%s): %s", error.text, req->body);
    va_list args;
    va_start (args, fmt);
    json_t *want = json_vpack_ex (&error, 0, fmt, args);
    va_end (args);
    if (!want)
        fail_msg ("test's own JSON: %s", error.text);
    if (!json_equal (got, want)) {
        char *w = json_dumps (want, JSON_SORT_KEYS | JSON_COMPACT);
        char *g = json_dumps (got, JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg ("body\n got  %s\n want %s", g, w);
    }
    json_decref (got);
    json_decref (want);
    assert_string_equal (s_header (req, "Content-Type"), "application/json");
}

/* n Cyrillic letters (two bytes each), owned: a text at a limit counted
 * in characters, not bytes. */
static char *
s_letters (int n)
{
    char *text = malloc (2 * (size_t)n + 1);
    assert_non_null (text);
    for (int i = 0; i < n; i++)
        memcpy (text + 2 * i, "ї", 2);
    text[2 * n] = '\0';
    return text;
}

/* --- Telegram (providers.md 2.1) --- */

static const provider_account_t s_telegram = {
    .provider = "telegram",
    .base_url = "http://tg.test/",
    .token = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
};

static void
test_telegram_request (void **state)
{
    (void)state;
    provider_request_t req;
    provider_send_t send = {.message_id = "m-1",
                            .channel = RETAIN__V1__CHANNEL__TELEGRAM,
                            .to = "12345",
                            .text = "Ваша посилка прибула"};
    s_build (&provider_telegram, &s_telegram, &send, &req);
    assert_string_equal (req.url,
                         "http://tg.test/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendMessage");
    /* The token is the bot's credential: never in what is logged. */
    assert_string_equal (req.log_url, "http://tg.test/bot***/sendMessage");
    s_json_body (&req, "{s:I, s:s}", "chat_id", (json_int_t)12345, "text", "Ваша посилка прибула");
    rt_http_outreq_free (&req);
    rt_http_outreq_free (&req);

    /* A channel's @name goes as a string, a group's negative id as a number. */
    send.to = "@shop_news";
    s_build (&provider_telegram, &s_telegram, &send, &req);
    s_json_body (&req, "{s:s, s:s}", "chat_id", "@shop_news", "text", "Ваша посилка прибула");
    rt_http_outreq_free (&req);
    send.to = "-1001234567890";
    s_build (&provider_telegram, &s_telegram, &send, &req);
    s_json_body (&req, "{s:I, s:s}", "chat_id", (json_int_t)-1001234567890LL, "text",
                 "Ваша посилка прибула");
    rt_http_outreq_free (&req);
}

static void
test_telegram_refusals (void **state)
{
    (void)state;
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__TELEGRAM, .to = "1", .text = "x"};
    provider_account_t account = s_telegram;
    /* 4096 is Telegram's limit, in characters: 4096 Cyrillic letters
     * (8192 bytes) pass, 4097 do not. */
    char *text = s_letters (4097);
    send.text = text;
    s_refused (&provider_telegram, &account, &send, "limit of 4096");
    text[2 * 4096] = '\0';
    provider_request_t req;
    s_build (&provider_telegram, &account, &send, &req);
    rt_http_outreq_free (&req);
    free (text);

    send.text = "x";
    send.to = "";
    s_refused (&provider_telegram, &account, &send, "no recipient");
    send.to = "1";
    send.text = NULL;
    s_refused (&provider_telegram, &account, &send, "no text");
    send.text = "\xff\xfe";
    s_refused (&provider_telegram, &account, &send, "not UTF-8");
    send.text = "x";
    account.token = "123/../../other";
    s_refused (&provider_telegram, &account, &send, "bot token");
    account.token = NULL;
    s_refused (&provider_telegram, &account, &send, "no bot token");
    account = s_telegram;
    account.base_url = "ftp://tg.test";
    s_refused (&provider_telegram, &account, &send, "base URL");
}

static void
test_telegram_answers (void **state)
{
    (void)state;
    static const s_case_t cases[] = {
        {"providers.md 2.1: {ok:true, result: Message} (core.telegram.org/bots/api#message)", 200,
         "{\"ok\":true,\"result\":{\"message_id\":42,\"from\":{\"id\":123456,\"is_bot\":true,"
         "\"first_name\":\"Shop\"},\"chat\":{\"id\":12345,\"first_name\":\"Olena\",\"type\":"
         "\"private\"},\"date\":1760000000,\"text\":\"hi\"}}",
         -1, PROVIDER_SENT, "", false, 0, "12345:42", NULL},
        {"429 with parameters.retry_after (aiogram ResponseParameters)", 429,
         "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry after 35\","
         "\"parameters\":{\"retry_after\":35}}",
         -1, PROVIDER_WAIT, "429", false, 35000, "", "retry after 35"},
        {"429 during bulk, tdlib/telegram-bot-api#184: the body's figure wins", 429,
         "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry after "
         "2282\",\"parameters\":{\"retry_after\":2282}}",
         5000, PROVIDER_WAIT, "429", false, 2282000, "", NULL},
        {"429 without parameters: Retry-After", 429,
         "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests\"}", 7000,
         PROVIDER_WAIT, "429", false, 7000, "", NULL},
        {"botman/driver-telegram#89, irazasyed/telegram-bot-sdk#651", 403,
         "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was blocked by the "
         "user\"}",
         -1, PROVIDER_STOP_RECIPIENT, "403", true, 0, "", "blocked"},
        {"TelegramBotAPI/errors#2", 403,
         "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot can't initiate "
         "conversation with a user\"}",
         -1, PROVIDER_STOP_RECIPIENT, "403", false, 0, "", "initiate"},
        {"providers.md 2.1 [K]", 403,
         "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: user is deactivated\"}", -1,
         PROVIDER_STOP_RECIPIENT, "403", false, 0, "", "deactivated"},
        {"a bot removed from a group", 403,
         "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was kicked from the "
         "group chat\"}",
         -1, PROVIDER_STOP_RECIPIENT, "403", false, 0, "", "kicked"},
        {"botman/driver-telegram#89", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: chat not found\"}", -1,
         PROVIDER_STOP_RECIPIENT, "400", false, 0, "", "chat not found"},
        {"providers.md 2.1 [K]", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message is too long\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "", "too long"},
        {"providers.md 2.1 [K]", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: can't parse entities: "
         "Can't find end of the entity starting at byte offset 12\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "", "parse entities"},
        {"ResponseParameters.migrate_to_chat_id (aiogram)", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was upgraded "
         "to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}",
         -1, PROVIDER_MIGRATED, "400", false, 0, "", "supergroup"},
        {"a revoked token", 401,
         "{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}", -1,
         PROVIDER_STOP_ACCOUNT, "401", false, 0, "", "Unauthorized"},
        {"a token naming no bot", 404,
         "{\"ok\":false,\"error_code\":404,\"description\":\"Not "
         "Found\"}",
         -1, PROVIDER_STOP_ACCOUNT, "404", false, 0, "", NULL},
        {"Telegram 5xx", 502, "{\"ok\":false,\"error_code\":502,\"description\":\"Bad Gateway\"}",
         -1, PROVIDER_RETRY, "502", false, 0, "", "Bad Gateway"},
        {"an unknown 400", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: something new\"}", -1,
         PROVIDER_BAD_REQUEST, "400", false, 0, "", "something new"},
        {"ok without a message id", 200, "{\"ok\":true,\"result\":true}", -1, PROVIDER_RETRY, "200",
         false, 0, "", "unreadable answer"},
    };
    s_check_cases (&provider_telegram, cases, sizeof cases / sizeof *cases);
    provider_outcome_t out = s_classify (&provider_telegram, cases[11].status, cases[11].body, -1);
    assert_string_equal (out.migrate_to, "-1001234567890");
}

/* A photo or a document goes as sendPhoto or sendDocument, the URL for
 * Telegram to fetch and the text as its caption (core.telegram.org/bots/
 * api#sendphoto, #senddocument: caption 0-1024 characters). */
static void
test_telegram_media_request (void **state)
{
    (void)state;
    provider_request_t req;
    provider_attachment_t photo = {.kind = "image", .url = "https://shop.example/p/7.jpg"};
    provider_attachment_t pdf = {.kind = "document",
                                 .url = "https://shop.example/i/INV-2041.pdf",
                                 .name = "INV-2041.pdf",
                                 .mime_type = "application/pdf"};
    provider_send_t send = {.message_id = "m-1",
                            .channel = RETAIN__V1__CHANNEL__TELEGRAM,
                            .to = "12345",
                            .text = "Ось ваша посилка",
                            .attachments = &photo,
                            .n_attachments = 1};
    s_build (&provider_telegram, &s_telegram, &send, &req);
    assert_string_equal (req.url,
                         "http://tg.test/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendPhoto");
    assert_string_equal (req.log_url, "http://tg.test/bot***/sendPhoto");
    s_json_body (&req, "{s:I, s:s, s:s}", "chat_id", (json_int_t)12345, "photo",
                 "https://shop.example/p/7.jpg", "caption", "Ось ваша посилка");
    rt_http_outreq_free (&req);

    /* A document; no text is no caption (a name and a type cannot go with
     * a URL: Telegram names the file from it). */
    send.attachments = &pdf;
    send.text = "";
    s_build (&provider_telegram, &s_telegram, &send, &req);
    assert_string_equal (req.log_url, "http://tg.test/bot***/sendDocument");
    s_json_body (&req, "{s:I, s:s}", "chat_id", (json_int_t)12345, "document",
                 "https://shop.example/i/INV-2041.pdf");
    rt_http_outreq_free (&req);
    send.text = NULL;
    s_build (&provider_telegram, &s_telegram, &send, &req);
    rt_http_outreq_free (&req);

    /* The caption's limit, in characters: 1024 Cyrillic letters pass,
     * 1025 do not. */
    char *text = s_letters (1025);
    send.text = text;
    s_refused (&provider_telegram, &s_telegram, &send, "limit of 1024");
    text[2 * 1024] = '\0';
    s_build (&provider_telegram, &s_telegram, &send, &req);
    rt_http_outreq_free (&req);
    free (text);

    /* One medium a request; only images and documents, by https. */
    provider_attachment_t two[2] = {photo, pdf};
    send = (provider_send_t){.channel = RETAIN__V1__CHANNEL__TELEGRAM,
                             .to = "12345",
                             .text = "x",
                             .attachments = two,
                             .n_attachments = 2};
    s_refused (&provider_telegram, &s_telegram, &send, "one medium a request");
    provider_attachment_t odd = {.kind = "sticker", .url = "https://shop.example/s.webp"};
    send.attachments = &odd;
    send.n_attachments = 1;
    s_refused (&provider_telegram, &s_telegram, &send, "kind \"sticker\"");
    provider_attachment_t plain = {.kind = "image", .url = "http://shop.example/p.jpg"};
    send.attachments = &plain;
    s_refused (&provider_telegram, &s_telegram, &send, "https");
}

/* What Telegram answers a medium: a Message with photo (or document) and
 * its caption; a URL it cannot fetch or use, or a caption too long, is a
 * bad request for that message, never retried. */
static void
test_telegram_media_answers (void **state)
{
    (void)state;
    static const s_case_t cases[] = {
        {"core.telegram.org/bots/api#message: photo, an array of PhotoSize, and caption", 200,
         "{\"ok\":true,\"result\":{\"message_id\":43,\"chat\":{\"id\":12345,\"type\":"
         "\"private\"},\"date\":1760000000,\"photo\":[{\"file_id\":\"AgAC1\",\"file_unique_id\":"
         "\"AQAD1\",\"width\":90,\"height\":67}],\"caption\":\"Ось\"}}",
         -1, PROVIDER_SENT, "", false, 0, "12345:43", NULL},
        {"core.telegram.org/bots/api#document", 200,
         "{\"ok\":true,\"result\":{\"message_id\":44,\"chat\":{\"id\":12345,\"type\":"
         "\"private\"},\"date\":1760000000,\"document\":{\"file_name\":\"INV-2041.pdf\","
         "\"mime_type\":\"application/pdf\",\"file_id\":\"BQAC1\",\"file_unique_id\":"
         "\"AgAD1\"}}}",
         -1, PROVIDER_SENT, "", false, 0, "12345:44", NULL},
        {"yagop/node-telegram-bot-api#425, eternnoir/pyTelegramBotAPI#352", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: wrong file "
         "identifier/HTTP URL specified\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "",
         "Bad Request: wrong file identifier/HTTP URL specified"},
        {"telegraf/telegraf#1549", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: failed to get HTTP URL "
         "content\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "", "failed to get HTTP URL content"},
        {"telegraf/telegraf#1549", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: invalid file HTTP URL "
         "specified: Host is invalid\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "", "Host is invalid"},
        {"tdlib/telegram-bot-api#782 (WEBPAGE_MEDIA_EMPTY)", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: wrong type of the web "
         "page content\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "", "web page content"},
        {"telegraf/telegraf#329", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: wrong URL host\"}", -1,
         PROVIDER_BAD_REQUEST, "400", false, 0, "", "wrong URL host"},
        {"tactilenews/100eyes#1594", 400,
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message caption is "
         "too long\"}",
         -1, PROVIDER_BAD_REQUEST, "400", false, 0, "", "caption is too long"},
    };
    s_check_cases (&provider_telegram, cases, sizeof cases / sizeof *cases);
}

/* Telegram's group became a supergroup: the chat's new id, to send to. */
static void
test_telegram_migrated (void **state)
{
    /* ResponseParameters.migrate_to_chat_id: at most 52 bits. */
    static const struct {
        const char *source, *to, *body;
        provider_verdict_t verdict;
        const char *migrate_to;
    } cases[] = {
        {"ResponseParameters (aiogram)", "-4001234",
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was upgraded "
         "to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}",
         PROVIDER_MIGRATED, "-1001234567890"},
        {"atipugin/telegram-bot-ruby#40", "-4001234",
         "{\"ok\":false,\"error_code\":400,\"description\":\"[Error]: Bad Request: group chat "
         "is migrated to supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":"
         "-1004503599627370}}",
         PROVIDER_MIGRATED, "-1004503599627370"},
        /* Sent there already: sending again would go round for ever. */
        {"the same chat", "-1001234567890",
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was upgraded "
         "to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}",
         PROVIDER_BAD_REQUEST, ""},
        /* No number: nothing to send to. */
        {"a string id", "-4001234",
         "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was upgraded "
         "to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":\"-100123\"}}",
         PROVIDER_BAD_REQUEST, ""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_answer_t a;
        provider_outcome_t out;
        provider_send_t send = {.message_id = "m-1", .to = cases[i].to, .text = "hi"};
        s_answer (&a, 400, "application/json", cases[i].body, -1);
        provider_telegram.classify (&send, &a.resp, &out);
        if (out.verdict != cases[i].verdict || strcmp (out.migrate_to, cases[i].migrate_to) != 0 ||
            strcmp (out.code, "400") != 0 || !strstr (out.reason, "supergroup"))
            fail_msg ("%s: got %s migrate_to=%s code=%s (%s)", cases[i].source,
                      provider_verdict_name (out.verdict), out.migrate_to, out.code, out.reason);
    }
    assert_string_equal (provider_verdict_name (PROVIDER_MIGRATED), "migrated");
}

/* --- Viber (providers.md 2.2) --- */

static const provider_account_t s_viber = {
    .provider = "viber",
    .base_url = "http://viber.test",
    .token = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9",
    .sender = "Крамниця",
};

static void
test_viber_request (void **state)
{
    (void)state;
    provider_request_t req;
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__VIBER,
                            .to = "01234567890A=",
                            .text = "Ваше замовлення в дорозі"};
    s_build (&provider_viber, &s_viber, &send, &req);
    assert_string_equal (req.url, "http://viber.test/pa/send_message");
    assert_string_equal (req.log_url, req.url);
    assert_string_equal (s_header (&req, "X-Viber-Auth-Token"), s_viber.token);
    s_json_body (&req, "{s:s, s:{s:s}, s:s, s:s}", "receiver", "01234567890A=", "sender", "name",
                 "Крамниця", "type", "text", "text", "Ваше замовлення в дорозі");
    rt_http_outreq_free (&req);

    provider_account_t account = s_viber;
    account.sender = NULL;
    s_refused (&provider_viber, &account, &send, "sender");
    account = s_viber;
    account.token = "";
    s_refused (&provider_viber, &account, &send, "auth token");
}

static void
test_viber_answers (void **state)
{
    (void)state;
#define V(status, name, verdict, opt_out)                                                          \
    {                                                                                              \
        "developers.viber.com/docs/api/rest-bot-api/#errorCodes: " name, 200,                      \
            "{\"status\":" #status ",\"status_message\":\"" name                                   \
            "\",\"chat_hostname\":\"SN-CHAT-05_\"}",                                               \
            -1, verdict, #status, opt_out, 0, "", name                                             \
    }
    static const s_case_t cases[] = {
        {"providers.md 2.2 [K]: send_message's answer", 200,
         "{\"status\":0,\"status_message\":\"ok\",\"message_token\":5741311803571721087,"
         "\"chat_hostname\":\"SN-CHAT-05_\",\"billing_status\":1}",
         -1, PROVIDER_SENT, "", false, 0, "5741311803571721087", NULL},
        V (2, "invalidAuthToken", PROVIDER_STOP_ACCOUNT, false),
        V (3, "badData", PROVIDER_BAD_REQUEST, false),
        V (4, "missingData", PROVIDER_BAD_REQUEST, false),
        V (5, "receiverNotRegistered", PROVIDER_STOP_RECIPIENT, false),
        V (6, "receiverNotSubscribed", PROVIDER_STOP_RECIPIENT, true),
        V (7, "publicAccountBlocked", PROVIDER_STOP_ACCOUNT, false),
        V (8, "publicAccountNotFound", PROVIDER_STOP_ACCOUNT, false),
        V (9, "publicAccountSuspended", PROVIDER_STOP_ACCOUNT, false),
        V (10, "webhookNotSet", PROVIDER_STOP_ACCOUNT, false),
        V (11, "receiverNoSuitableDevice", PROVIDER_STOP_RECIPIENT, false),
        V (12, "tooManyRequests", PROVIDER_WAIT, false),
        V (13, "apiVersionNotSupported", PROVIDER_BAD_REQUEST, false),
        V (21, "unsupportedCountry", PROVIDER_STOP_RECIPIENT, false),
        V (23, "freeMessagesExceeded", PROVIDER_STOP_ACCOUNT, false),
        V (24, "noBalance", PROVIDER_STOP_ACCOUNT, false),
        {"tooManyRequests with a Retry-After header", 200,
         "{\"status\":12,\"status_message\":\"tooManyRequests\"}", 4000, PROVIDER_WAIT, "12", false,
         4000, "", NULL},
        {"a status Viber does not list, on HTTP 200", 200,
         "{\"status\":99,\"status_message\":\"general error\"}", -1, PROVIDER_BAD_REQUEST, "99",
         false, 0, "", "general error"},
        {"status 0 without a message token", 200, "{\"status\":0,\"status_message\":\"ok\"}", -1,
         PROVIDER_RETRY, "200", false, 0, "", "unreadable answer"},
        {"no status at all", 200, "{\"message_token\":1}", -1, PROVIDER_RETRY, "200", false, 0, "",
         "unreadable answer"},
        {"Viber's 5xx", 503, "{\"status\":1,\"status_message\":\"down\"}", -1, PROVIDER_RETRY,
         "503", false, 0, "", "unreadable answer"},
    };
#undef V
    s_check_cases (&provider_viber, cases, sizeof cases / sizeof *cases);
}

/* --- Messenger and Instagram (providers.md 2.3) --- */

static const provider_account_t s_meta = {
    .provider = "meta",
    .base_url = "http://graph.test",
    .token = "EAAGm0PX4ZCpsBA+page/token=",
    .account_id = "104857600000001",
};

static void
test_meta_request (void **state)
{
    (void)state;
    provider_request_t req;
    provider_send_t send = {
        .channel = RETAIN__V1__CHANNEL__MESSENGER, .to = "6543210987654321", .text = "Добрий день"};
    s_build (&provider_meta, &s_meta, &send, &req);
    /* The Send API reference passes the Page token as access_token;
     * escaped, and masked in what is logged. */
    assert_string_equal (req.url, "http://graph.test/v21.0/104857600000001/messages"
                                  "?access_token=EAAGm0PX4ZCpsBA%2Bpage%2Ftoken%3D");
    assert_string_equal (req.log_url, "http://graph.test/v21.0/104857600000001/messages"
                                      "?access_token=***");
    assert_null (s_header (&req, "Authorization"));
    s_json_body (&req, "{s:{s:s}, s:s, s:{s:s}}", "recipient", "id", "6543210987654321",
                 "messaging_type", "RESPONSE", "message", "text", "Добрий день");
    rt_http_outreq_free (&req);

    /* An operator's reply may go out up to 7 days later with HUMAN_AGENT. */
    send.channel = RETAIN__V1__CHANNEL__INSTAGRAM;
    send.human_agent = true;
    s_build (&provider_meta, &s_meta, &send, &req);
    s_json_body (&req, "{s:{s:s}, s:s, s:s, s:{s:s}}", "recipient", "id", "6543210987654321",
                 "messaging_type", "MESSAGE_TAG", "tag", "HUMAN_AGENT", "message", "text",
                 "Добрий день");
    rt_http_outreq_free (&req);

    /* A private reply names the comment, not the person. */
    send.human_agent = false;
    send.to = NULL;
    send.reply_to = "178414100000000_112233";
    s_build (&provider_meta, &s_meta, &send, &req);
    s_json_body (&req, "{s:{s:s}, s:s, s:{s:s}}", "recipient", "comment_id",
                 "178414100000000_112233", "messaging_type", "RESPONSE", "message", "text",
                 "Добрий день");
    rt_http_outreq_free (&req);

    provider_account_t account = s_meta;
    account.account_id = "1048576/../me";
    s_refused (&provider_meta, &account, &send, "page id");
    account = s_meta;
    account.token = NULL;
    s_refused (&provider_meta, &account, &send, "token");
    send.reply_to = NULL;
    s_refused (&provider_meta, &s_meta, &send, "no recipient");
}

#define GRAPH(code, sub, msg)                                                                      \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"error_subcode\":" #sub ",\"fbtrace_id\":\"AbCdEf\"}}"
#define GRAPH0(code, msg)                                                                          \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"fbtrace_id\":\"AbCdEf\"}}"

static void
test_meta_answers (void **state)
{
    (void)state;
    static const s_case_t cases[] = {
        {"developers.facebook.com/docs/messenger-platform/reference/send-api", 200,
         "{\"recipient_id\":\"6543210987654321\",\"message_id\":\"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM\"}",
         -1, PROVIDER_SENT, "", false, 0, "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM", NULL},
        {"a private reply's answer, without recipient_id", 200, "{\"message_id\":\"m_private\"}",
         -1, PROVIDER_SENT, "", false, 0, "m_private", NULL},
        {"home-assistant/core#32507, botpress#4890", 400,
         GRAPH (10, 2018278, "(#10) This message is sent outside of allowed window."), -1,
         PROVIDER_WINDOW, "10/2018278", false, 0, "", "outside of allowed window"},
        {"botframework#2050", 400,
         GRAPH (10, 2018065, "(#10) This message is sent outside of allowed window."), -1,
         PROVIDER_WINDOW, "10/2018065", false, 0, "", NULL},
        {"code 10 without a subcode", 400,
         GRAPH0 (10, "(#10) This message is sent outside of allowed window."), -1, PROVIDER_WINDOW,
         "10", false, 0, "", NULL},
        {"botframework-sdk#4556", 400,
         GRAPH (551, 1545041, "(#551) This person isn't available right now."), -1,
         PROVIDER_STOP_RECIPIENT, "551/1545041", false, 0, "", "isn't available"},
        {"fbmessenger-node PR #24", 400, GRAPH (100, 2018001, "(#100) No matching user found"), -1,
         PROVIDER_STOP_RECIPIENT, "100/2018001", false, 0, "", "No matching user"},
        {"an invalid parameter", 400, GRAPH (100, 2018022, "(#100) Invalid parameter"), -1,
         PROVIDER_BAD_REQUEST, "100/2018022", false, 0, "", NULL},
        {"providers.md 2.3: 613", 400,
         GRAPH0 (613, "Calls to this api have exceeded the rate limit."), -1, PROVIDER_WAIT, "613",
         false, 0, "", "rate limit"},
        {"Graph error handling: 4 throttled, with Retry-After", 400,
         GRAPH0 (4, "(#4) Application request limit reached"), 60000, PROVIDER_WAIT, "4", false,
         60000, "", NULL},
        {"changelog 2026-06-25: Page restricted", 400,
         GRAPH (10, 1893063, "(#10) This Page is temporarily restricted"), -1,
         PROVIDER_STOP_ACCOUNT, "10/1893063", false, 0, "", NULL},
        {"Graph error handling: 190 token expired", 400,
         GRAPH (190, 463, "Error validating access token: Session has expired"), -1,
         PROVIDER_STOP_ACCOUNT, "190/463", false, 0, "", "access token"},
        {"Graph error handling: 200-299 permission", 403,
         GRAPH0 (230, "(#230) Requires pages_messaging permission"), -1, PROVIDER_STOP_ACCOUNT,
         "230", false, 0, "", NULL},
        {"Graph error handling: 2 service", 503,
         GRAPH0 (2, "An unexpected error has occurred. Please retry your request later."), -1,
         PROVIDER_RETRY, "2", false, 0, "", "retry"},
        {"an unknown code on 400", 400, GRAPH0 (987654, "Something new"), -1, PROVIDER_BAD_REQUEST,
         "987654", false, 0, "", "Something new"},
        {"an unknown code on 500", 500, GRAPH0 (987654, "Something new"), -1, PROVIDER_RETRY,
         "987654", false, 0, "", NULL},
    };
    s_check_cases (&provider_meta, cases, sizeof cases / sizeof *cases);
}

/* --- WhatsApp Cloud API (providers.md 2.4) --- */

static const provider_account_t s_whatsapp = {
    .provider = "meta",
    .base_url = "http://graph.test",
    .token = "EAAJB3Zsystemusertoken",
    .account_id = "106540352242922",
};

static void
test_whatsapp_request (void **state)
{
    (void)state;
    provider_request_t req;
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__WHATSAPP,
                            .to = "+380501234567",
                            .text = "Ваша посилка у відділенні №5"};
    s_build (&provider_whatsapp, &s_whatsapp, &send, &req);
    assert_string_equal (req.url, "http://graph.test/v21.0/106540352242922/messages");
    assert_string_equal (req.log_url, req.url);
    assert_string_equal (s_header (&req, "Authorization"), "Bearer EAAJB3Zsystemusertoken");
    s_json_body (&req, "{s:s, s:s, s:s, s:s, s:{s:b, s:s}}", "messaging_product", "whatsapp",
                 "recipient_type", "individual", "to", "+380501234567", "type", "text", "text",
                 "preview_url", 0, "body", "Ваша посилка у відділенні №5");
    rt_http_outreq_free (&req);

    /* Outside the 24-hour window: an approved template with its values. */
    const char *params[] = {"Олена", "20450059800767", NULL};
    send.text = NULL;
    send.template_name = "parcel_arrived";
    send.template_lang = "uk";
    send.template_params = params;
    s_build (&provider_whatsapp, &s_whatsapp, &send, &req);
    s_json_body (&req,
                 "{s:s, s:s, s:s, s:s, s:{s:s, s:{s:s}, s:[{s:s, s:[{s:s, s:s}, {s:s, s:s}]}]}}",
                 "messaging_product", "whatsapp", "recipient_type", "individual", "to",
                 "+380501234567", "type", "template", "template", "name", "parcel_arrived",
                 "language", "code", "uk", "components", "type", "body", "parameters", "type",
                 "text", "text", "Олена", "type", "text", "text", "20450059800767");
    rt_http_outreq_free (&req);

    send.template_params = NULL;
    s_build (&provider_whatsapp, &s_whatsapp, &send, &req);
    s_json_body (&req, "{s:s, s:s, s:s, s:s, s:{s:s, s:{s:s}}}", "messaging_product", "whatsapp",
                 "recipient_type", "individual", "to", "+380501234567", "type", "template",
                 "template", "name", "parcel_arrived", "language", "code", "uk");
    rt_http_outreq_free (&req);

    send.template_lang = NULL;
    s_refused (&provider_whatsapp, &s_whatsapp, &send, "language");
    send.template_name = NULL;
    s_refused (&provider_whatsapp, &s_whatsapp, &send, "no text");
}

#define WA(code, msg, details)                                                                     \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"error_data\":{\"messaging_product\":\"whatsapp\",\"details\":\"" details "\"},"            \
    "\"fbtrace_id\":\"Az8or2yhqkZfEZ-_4Qn_Bam\"}}"

static void
test_whatsapp_answers (void **state)
{
    (void)state;
    static const s_case_t cases[] = {
        {"providers.md 2.4 [K]: the Cloud API's messages answer", 200,
         "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"+380501234567\","
         "\"wa_id\":\"380501234567\"}],\"messages\":[{\"id\":\"wamid.HBgLMzgwNTAxMjM0NTY3FQIAERg"
         "SQzVGMDlBN0Q5RTQ0NkY2RTJCAA==\"}]}",
         -1, PROVIDER_SENT, "", false, 0,
         "wamid.HBgLMzgwNTAxMjM0NTY3FQIAERgSQzVGMDlBN0Q5RTQ0NkY2RTJCAA==", NULL},
        {"ycloud: 130429 throughput", 429,
         WA (130429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
         -1, PROVIDER_WAIT, "130429", false, 0, "", "Rate limit hit"},
        {"ycloud: 131056 pair rate limit", 400,
         WA (131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this phone "
             "number to the same phone number in a short period of time."),
         -1, PROVIDER_WAIT, "131056", false, 6000, "", "pair rate limit"},
        {"131056 with Retry-After", 400, WA (131056, "(#131056) pair rate limit hit", ""), 2000,
         PROVIDER_WAIT, "131056", false, 2000, "", NULL},
        {"hello-charles: 131049 per-user marketing limit", 400,
         WA (131049,
             "(#131049) This message was not delivered to maintain healthy ecosystem "
             "engagement.",
             "In order to maintain a healthy ecosystem engagement, the message failed to be "
             "delivered."),
         -1, PROVIDER_WAIT, "131049", false, 86400000, "", NULL},
        {"unifydash, indigitall: 131047 re-engagement", 400,
         WA (131047, "(#131047) Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the customer "
             "last replied to this number."),
         -1, PROVIDER_WINDOW, "131047", false, 0, "", "24 hours"},
        {"ycloud, chatwoot#9542: 131026", 400,
         WA (131026, "(#131026) Message Undeliverable", "Message Undeliverable."), -1,
         PROVIDER_STOP_RECIPIENT, "131026", false, 0, "", "Undeliverable"},
        {"hello-charles: 131050 stopped marketing messages", 400,
         WA (131050, "(#131050) User has stopped receipt of marketing messages",
             "Unable to deliver the message. This recipient has chosen to stop receiving "
             "marketing messages on WhatsApp from your business."),
         -1, PROVIDER_STOP_RECIPIENT, "131050", true, 0, "", "stop receiving"},
        {"ycloud: 131000", 500,
         WA (131000, "(#131000) Something went wrong",
             "Message failed to send due to an unknown "
             "error."),
         -1, PROVIDER_RETRY, "131000", false, 0, "", "Something went wrong"},
        {"ycloud: 2 service unavailable", 503, WA (2, "(#2) Service temporarily unavailable", ""),
         -1, PROVIDER_RETRY, "2", false, 0, "", NULL},
        {"ycloud: 131008 missing parameter", 400,
         WA (131008, "(#131008) Required parameter is missing",
             "The parameter text['body'] is "
             "required."),
         -1, PROVIDER_BAD_REQUEST, "131008", false, 0, "", "text['body']"},
        {"ycloud: 100 invalid parameter", 400,
         WA (100, "(#100) Invalid parameter", "Unexpected key \\\"txt\\\" on param \\\"text\\\"."),
         -1, PROVIDER_BAD_REQUEST, "100", false, 0, "", "Invalid parameter"},
        {"help.sanoflow.io Meta error codes: 132001 template does not exist", 404,
         WA (132001, "(#132001) Template name does not exist in the translation",
             "template name (parcel_arrived) does not exist in uk"),
         -1, PROVIDER_BAD_REQUEST, "132001", false, 0, "", "parcel_arrived"},
        {"providers.md 2.4: 190 token expired", 401,
         WA (190, "Error validating access token: Session has expired", ""), -1,
         PROVIDER_STOP_ACCOUNT, "190", false, 0, "", NULL},
        {"an unknown code on 400", 400, WA (139999, "(#139999) Something new", "details"), -1,
         PROVIDER_BAD_REQUEST, "139999", false, 0, "", "Something new: details"},
        {"a 200 without messages", 200, "{\"messaging_product\":\"whatsapp\"}", -1, PROVIDER_RETRY,
         "200", false, 0, "", "unreadable answer"},
    };
    s_check_cases (&provider_whatsapp, cases, sizeof cases / sizeof *cases);
}

/* --- Twilio (providers.md 2.5) --- */

static const provider_account_t s_twilio = {
    .provider = "twilio",
    .base_url = "http://twilio.test",
    .token = "f0e1d2c3b4a5968778695a4b3c2d1e0f",
    .account_id = "AC00000000000000000000000000000001",
    .sender = "+15005550006",
    .status_url = "https://hooks.shop.example/hooks/twilio/shop-sms?a=1&b=2",
};

static rt_form_t *
s_form (const provider_request_t *req)
{
    char err[256] = "";
    assert_string_equal (s_header (req, "Content-Type"), "application/x-www-form-urlencoded");
    rt_form_t *form = rt_form_parse (req->body, req->body_len, err, sizeof err);
    if (!form)
        fail_msg ("body is not a form (%s): %s", err, req->body);
    return form;
}

static void
test_twilio_request (void **state)
{
    (void)state;
    provider_request_t req;
    provider_send_t send = {.channel = RETAIN__V1__CHANNEL__SMS,
                            .to = "+380501234567",
                            .text = "Код: 1234 & більше = 100%"};
    s_build (&provider_twilio, &s_twilio, &send, &req);
    assert_string_equal (
        req.url, "http://twilio.test/2010-04-01/Accounts/AC00000000000000000000000000000001/"
                 "Messages.json");
    assert_string_equal (req.log_url, req.url);

    /* Basic auth, decoded back: AccountSid and the auth token. */
    const char *auth = s_header (&req, "Authorization");
    assert_non_null (auth);
    assert_true (strncmp (auth, "Basic ", 6) == 0);
    uint8_t plain[128];
    long n = rt_base64_decode (auth + 6, strlen (auth + 6), plain, sizeof plain - 1);
    assert_true (n > 0);
    plain[n] = '\0';
    assert_string_equal ((char *)plain,
                         "AC00000000000000000000000000000001:f0e1d2c3b4a5968778695a4b3c2d1e0f");

    rt_form_t *form = s_form (&req);
    assert_int_equal (rt_form_count (form), 4);
    assert_string_equal (rt_form_get (form, "To"), "+380501234567");
    assert_string_equal (rt_form_get (form, "From"), "+15005550006");
    assert_string_equal (rt_form_get (form, "Body"), "Код: 1234 & більше = 100%");
    assert_string_equal (rt_form_get (form, "StatusCallback"),
                         "https://hooks.shop.example/hooks/twilio/shop-sms?a=1&b=2");
    rt_form_destroy (&form);
    rt_http_outreq_free (&req);

    /* A Messaging Service instead of a number; no callback. */
    provider_account_t account = s_twilio;
    account.sender = "MG00000000000000000000000000000002";
    account.status_url = NULL;
    s_build (&provider_twilio, &account, &send, &req);
    form = s_form (&req);
    assert_int_equal (rt_form_count (form), 3);
    assert_string_equal (rt_form_get (form, "MessagingServiceSid"),
                         "MG00000000000000000000000000000002");
    assert_null (rt_form_get (form, "From"));
    assert_null (rt_form_get (form, "StatusCallback"));
    rt_form_destroy (&form);
    rt_http_outreq_free (&req);

    /* WhatsApp through Twilio: both addresses prefixed. */
    send.channel = RETAIN__V1__CHANNEL__WHATSAPP;
    s_build (&provider_twilio, &s_twilio, &send, &req);
    form = s_form (&req);
    assert_string_equal (rt_form_get (form, "To"), "whatsapp:+380501234567");
    assert_string_equal (rt_form_get (form, "From"), "whatsapp:+15005550006");
    rt_form_destroy (&form);
    rt_http_outreq_free (&req);

    account = s_twilio;
    account.sender = NULL;
    s_refused (&provider_twilio, &account, &send, "From");
    account = s_twilio;
    account.account_id = "AC1?x=1";
    s_refused (&provider_twilio, &account, &send, "AccountSid");
    account = s_twilio;
    account.token = NULL;
    s_refused (&provider_twilio, &account, &send, "auth token");
}

#define TW(status, code, msg)                                                                      \
    "{\"code\":" #code ",\"message\":\"" msg "\",\"more_info\":"                                   \
    "\"https://www.twilio.com/docs/errors/" #code "\",\"status\":" #status "}"

static void
test_twilio_answers (void **state)
{
    (void)state;
    static const s_case_t cases[] = {
        {"providers.md 2.5 [K]: 201 with the Message resource", 201,
         "{\"account_sid\":\"AC00000000000000000000000000000001\",\"body\":\"hi\","
         "\"direction\":\"outbound-api\",\"error_code\":null,\"error_message\":null,"
         "\"from\":\"+15005550006\",\"num_segments\":\"1\",\"sid\":"
         "\"SM1234567890abcdef1234567890abcdef\",\"status\":\"queued\",\"to\":\"+380501234567\"}",
         -1, PROVIDER_SENT, "", false, 0, "SM1234567890abcdef1234567890abcdef", NULL},
        {"TundraSoft Twilio errors: 21610 unsubscribed (STOP)", 400,
         TW (400, 21610, "Attempt to send to unsubscribed recipient"), -1, PROVIDER_STOP_RECIPIENT,
         "21610", true, 0, "", "unsubscribed"},
        {"twilio/twilio-php#665: 21211", 400,
         TW (400, 21211, "The 'To' number +33600000000 is not a valid phone number."), -1,
         PROVIDER_STOP_RECIPIENT, "21211", false, 0, "", "not a valid phone number"},
        {"twilio/twilio-node#845: 21614", 400,
         TW (400, 21614, "'To' number is not a valid mobile number"), -1, PROVIDER_STOP_RECIPIENT,
         "21614", false, 0, "", NULL},
        {"twilio.com/docs/api/errors/21635", 400,
         TW (400, 21635, "'To' number cannot be a landline"), -1, PROVIDER_STOP_RECIPIENT, "21635",
         false, 0, "", NULL},
        {"twilio/twilio-java#611 (the code), Twilio's dictionary [K] (the text): 21408", 400,
         TW (400, 21408,
             "Permission to send an SMS has not been enabled for the region indicated "
             "by the 'To' number: +380501234567."),
         -1, PROVIDER_BAD_REQUEST, "21408", false, 0, "", "region"},
        {"twilio/twilio-python#42: 21606", 400,
         TW (400, 21606,
             "The From phone number provided is not a valid, SMS-capable inbound "
             "phone number for your account."),
         -1, PROVIDER_STOP_ACCOUNT, "21606", false, 0, "", NULL},
        {"TundraSoft Twilio errors: 20003 authentication", 401, TW (401, 20003, "Authenticate"), -1,
         PROVIDER_STOP_ACCOUNT, "20003", false, 0, "", NULL},
        {"twilio.com bulk-messaging: 20429 with Retry-After", 429,
         TW (429, 20429,
             "Too many requests. Please retry according to the Retry-After response "
             "header."),
         3000, PROVIDER_WAIT, "20429", false, 3000, "", "Too many requests"},
        {"a 500 from Twilio", 500, TW (500, 20500, "Internal Server Error"), -1, PROVIDER_RETRY,
         "20500", false, 0, "", NULL},
        {"an unknown code on 400", 400, TW (400, 21999, "Something new"), -1, PROVIDER_BAD_REQUEST,
         "21999", false, 0, "", "Something new"},
        {"201 without a sid", 201, "{\"status\":\"queued\"}", -1, PROVIDER_RETRY, "201", false, 0,
         "", "unreadable answer"},
    };
    s_check_cases (&provider_twilio, cases, sizeof cases / sizeof *cases);
}

/* --- what every adapter shares --- */

static const provider_t *const s_all[] = {
    &provider_telegram, &provider_viber, &provider_meta, &provider_whatsapp, &provider_twilio,
};

static void
test_unreadable_answers (void **state)
{
    (void)state;
    static const char html[] = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
                               "<body><center><h1>502 Bad Gateway</h1></center></body></html>";
    for (size_t i = 0; i < sizeof s_all / sizeof *s_all; i++) {
        const provider_t *p = s_all[i];
        provider_send_t send = {.to = "1", .text = "x"};
        provider_outcome_t out;
        s_answer_t a;

        /* A proxy's page in front of a 502, and one on a 200. */
        s_answer (&a, 502, "text/html", html, -1);
        p->classify (&send, &a.resp, &out);
        assert_int_equal (out.verdict, PROVIDER_RETRY);
        assert_false (out.uncertain);
        assert_non_null (strstr (out.reason, "unreadable answer: HTTP 502, text/html"));
        assert_non_null (strstr (out.reason, "502 Bad Gateway"));
        s_answer (&a, 200, "text/html; charset=utf-8", html, -1);
        p->classify (&send, &a.resp, &out);
        assert_int_equal (out.verdict, PROVIDER_RETRY);
        assert_non_null (strstr (out.reason, "unreadable answer: HTTP 200"));

        /* Empty, garbage, truncated, JSON of another shape. */
        static const char *const bodies[] = {
            NULL, "\x01\xff\xfe garbage", "{\"ok\":tr", "[1,2]", "\"ok\"", "{}"};
        for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
            s_answer (&a, 200, "application/json", bodies[b], -1);
            p->classify (&send, &a.resp, &out);
            if (out.verdict != PROVIDER_RETRY || !strstr (out.reason, "unreadable answer"))
                fail_msg ("%s on body %zu: %s %s", p->name, b, provider_verdict_name (out.verdict),
                          out.reason);
            assert_string_equal (out.external_id, "");
        }
        s_answer (&a, 200, NULL, NULL, -1);
        p->classify (&send, &a.resp, &out);
        assert_non_null (strstr (out.reason, "no content type, empty body"));

        /* Unreadable, yet the status says enough. */
        s_answer (&a, 401, "text/html", "<h1>Unauthorized</h1>", -1);
        p->classify (&send, &a.resp, &out);
        assert_int_equal (out.verdict, PROVIDER_STOP_ACCOUNT);
        s_answer (&a, 429, "text/plain", "slow down", 7000);
        p->classify (&send, &a.resp, &out);
        assert_int_equal (out.verdict, PROVIDER_WAIT);
        assert_int_equal (out.wait_ms, 7000);
        s_answer (&a, 503, NULL, NULL, 2000);
        p->classify (&send, &a.resp, &out);
        assert_int_equal (out.verdict, PROVIDER_RETRY);
    }
}

static void
test_transport_failures (void **state)
{
    (void)state;
    static const struct {
        rt_http_outcome_t outcome; /* how the request ended */
        bool uncertain;            /* whether the provider may have seen it */
    } failures[] = {
        {RT_HTTP_OUTCOME_CONNECT_FAILED, false}, {RT_HTTP_OUTCOME_DNS_FAILED, false},
        {RT_HTTP_OUTCOME_TLS_FAILED, false},     {RT_HTTP_OUTCOME_TIMEOUT, true},
        {RT_HTTP_OUTCOME_OTHER, true},           {RT_HTTP_OUTCOME_TOO_LARGE, true},
        {RT_HTTP_OUTCOME_CANCELLED, true},
    };
    for (size_t i = 0; i < sizeof s_all / sizeof *s_all; i++) {
        for (size_t f = 0; f < sizeof failures / sizeof *failures; f++) {
            provider_send_t send = {.to = "1", .text = "x"};
            provider_outcome_t out;
            s_answer_t a;
            /* Half an answer may have come: it must not be read as one. */
            s_answer (&a, 200, "application/json", "{\"ok\":true,\"result\":{\"message_id\":1", -1);
            a.resp.outcome = failures[f].outcome;
            a.resp.error = "Connection reset by peer";
            s_all[i]->classify (&send, &a.resp, &out);
            assert_int_equal (out.verdict, PROVIDER_RETRY);
            assert_int_equal (out.uncertain, failures[f].uncertain);
            assert_non_null (strstr (out.reason, rt_http_outcome_name (failures[f].outcome)));
            assert_non_null (strstr (out.reason, "Connection reset by peer"));
            assert_int_equal (strstr (out.reason, "uncertain") != NULL, failures[f].uncertain);
            assert_string_equal (out.external_id, "");
        }
    }
}

static void
test_find (void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_all / sizeof *s_all; i++)
        assert_ptr_equal (provider_find (s_all[i]->name), s_all[i]);
    assert_null (provider_find ("smtp"));
    assert_null (provider_find (NULL));

    /* As ingest.inboxes names providers (rt_channel's kinds). */
    assert_ptr_equal (provider_find_for ("telegram", RETAIN__V1__CHANNEL__TELEGRAM),
                      &provider_telegram);
    assert_ptr_equal (provider_find_for ("viber", RETAIN__V1__CHANNEL__VIBER), &provider_viber);
    assert_ptr_equal (provider_find_for ("meta", RETAIN__V1__CHANNEL__MESSENGER), &provider_meta);
    assert_ptr_equal (provider_find_for ("meta", RETAIN__V1__CHANNEL__INSTAGRAM), &provider_meta);
    assert_ptr_equal (provider_find_for ("meta", RETAIN__V1__CHANNEL__WHATSAPP),
                      &provider_whatsapp);
    assert_ptr_equal (provider_find_for ("whatsapp", RETAIN__V1__CHANNEL__WHATSAPP),
                      &provider_whatsapp);
    assert_ptr_equal (provider_find_for ("twilio", RETAIN__V1__CHANNEL__SMS), &provider_twilio);
    assert_ptr_equal (provider_find_for ("twilio", RETAIN__V1__CHANNEL__WHATSAPP),
                      &provider_twilio);
    assert_null (provider_find_for ("twilio", RETAIN__V1__CHANNEL__TELEGRAM));
    assert_null (provider_find_for ("telegram", RETAIN__V1__CHANNEL__SMS));
    assert_null (provider_find_for ("meta", RETAIN__V1__CHANNEL__SMS));
    assert_null (provider_find_for ("mailgun", RETAIN__V1__CHANNEL__EMAIL));
    assert_null (provider_find_for (NULL, RETAIN__V1__CHANNEL__SMS));

    assert_string_equal (provider_verdict_name (PROVIDER_SENT), "sent");
    assert_string_equal (provider_verdict_name (PROVIDER_RETRY), "retry");
    assert_string_equal (provider_verdict_name (PROVIDER_WAIT), "wait");
    assert_string_equal (provider_verdict_name (PROVIDER_STOP_RECIPIENT), "stop_recipient");
    assert_string_equal (provider_verdict_name (PROVIDER_WINDOW), "window");
    assert_string_equal (provider_verdict_name (PROVIDER_BAD_REQUEST), "bad_request");
    assert_string_equal (provider_verdict_name (PROVIDER_STOP_ACCOUNT), "stop_account");
}

static void
test_encoding (void **state)
{
    (void)state;
    rt_buf_t b = {0};
    rt_http_form_add (&b, "Body", "a b&c=d/é+%");
    rt_http_form_add (&b, "To", "+1");
    assert_string_equal (b.data, "Body=a+b%26c%3Dd%2F%C3%A9%2B%25&To=%2B1");
    rt_buf_reset (&b);
    rt_http_url_escape (&b, "a b~-._/");
    assert_string_equal (b.data, "a%20b~-._%2F");
    rt_buf_free (&b);

    provider_request_t req = {0};
    assert_int_equal (rt_http_outreq_url (&req, "s3cr3t", "http://x/s3cr3t/y?t=s3cr3t"), 0);
    assert_string_equal (req.log_url, "http://x/***/y?t=***");
    for (int i = 0; i < RT_HTTP_OUTREQ_HEADERS; i++)
        assert_int_equal (rt_http_outreq_header (&req, "X-N: %d", i), 0);
    /* The list stays NULL-terminated: one more is refused. */
    assert_int_equal (rt_http_outreq_header (&req, "X-Over: 1"), -1);
    assert_null (req.headers[RT_HTTP_OUTREQ_HEADERS]);
    rt_http_outreq_free (&req);
    assert_null (req.url);
}

/* What the sender does next, read from the outcome: Telegram's SENT is
 * the delivery (its Bot API sends no receipts), Viber's waits for one;
 * WhatsApp's pair and marketing limits hold one recipient, its
 * throughput limit the whole number. */
static void
test_outcome_effects (void **state)
{
    provider_outcome_t o;
    (void)state;
    o = s_classify (&provider_telegram, 200,
                    "{\"ok\":true,\"result\":{\"message_id\":42,\"chat\":{\"id\":12345}}}", -1);
    assert_int_equal (o.verdict, PROVIDER_SENT);
    assert_true (o.delivered);
    o = s_classify (&provider_viber, 200,
                    "{\"status\":0,\"status_message\":\"ok\",\"message_token\":57}", -1);
    assert_int_equal (o.verdict, PROVIDER_SENT);
    assert_false (o.delivered);
    o = s_classify (&provider_whatsapp, 400, WA (131056, "(#131056) pair rate limit hit", ""), -1);
    assert_int_equal (o.verdict, PROVIDER_WAIT);
    assert_true (o.per_recipient);
    o = s_classify (&provider_whatsapp, 400,
                    WA (131049, "(#131049) This message was not delivered", ""), -1);
    assert_true (o.per_recipient);
    o = s_classify (&provider_whatsapp, 429, WA (130429, "(#130429) Rate limit hit", ""), -1);
    assert_int_equal (o.verdict, PROVIDER_WAIT);
    assert_false (o.per_recipient);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_outcome_effects),
        cmocka_unit_test (test_telegram_request),
        cmocka_unit_test (test_telegram_refusals),
        cmocka_unit_test (test_telegram_answers),
        cmocka_unit_test (test_telegram_migrated),
        cmocka_unit_test (test_telegram_media_request),
        cmocka_unit_test (test_telegram_media_answers),
        cmocka_unit_test (test_viber_request),
        cmocka_unit_test (test_viber_answers),
        cmocka_unit_test (test_meta_request),
        cmocka_unit_test (test_meta_answers),
        cmocka_unit_test (test_whatsapp_request),
        cmocka_unit_test (test_whatsapp_answers),
        cmocka_unit_test (test_twilio_request),
        cmocka_unit_test (test_twilio_answers),
        cmocka_unit_test (test_unreadable_answers),
        cmocka_unit_test (test_transport_failures),
        cmocka_unit_test (test_find),
        cmocka_unit_test (test_encoding),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
