/*
 * rt_test_fake_provider: the fake providers (see rt_test_fake_provider.h).
 *
 * A handler takes its provider's next scripted answer (or success), makes
 * the answer's status, type and body, records the request with it, and
 * answers at once or, for a delayed answer, later (rt_test_later: the
 * request deferred, a timer on its worker's loop, every answer still
 * waiting sent at stop).
 */
#include "rt_test_fake_provider.h"
#include "rt_test_later.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "rt_form.h"
#include "rt_http_server.h"
#include "rt_test.h"

/* A scripted answer, copied. */
typedef struct s_script_t {
    rt_fake_answer_t answer; /* as pushed, its strings below */
    char *error;             /* owned copy */
    char *content_type;      /* owned copy */
    char *body;              /* owned copy */
    struct s_script_t *next; /* the queue */
} s_script_t;

struct rt_fake_provider_t {
    rt_http_server_t *server;               /* the fake's server */
    char base[64];                          /* "http://127.0.0.1:<port>" */
    pthread_mutex_t lock;                   /* guards everything below */
    pthread_cond_t recorded;                /* signalled at each record */
    s_script_t *scripts[RT_FAKE_PROVIDERS]; /* each provider's queue */
    s_script_t **tails[RT_FAKE_PROVIDERS];  /* where its next push goes */
    rt_fake_request_t **records;            /* in arrival order, each owned */
    size_t nrecords;                        /* how many */
    size_t cap;                             /* room in records */
    size_t counts[RT_FAKE_PROVIDERS];       /* records per provider */
    long long next_id;                      /* the last id handed out */
    rt_test_later_t *later;                 /* the answers given late */
};

static const char *const s_names[RT_FAKE_PROVIDERS] = {"telegram", "viber", "meta", "whatsapp",
                                                       "twilio"};

/* --- the documented errors, per provider --- */

/* One documented error: the name a test gives, the HTTP status, the body. */
typedef struct {
    const char *name; /* as rt_fake_answer_t.error */
    int status;       /* HTTP status */
    const char *body; /* JSON */
} s_error_t;

#define TG(code, text) "{\"ok\":false,\"error_code\":" #code ",\"description\":\"" text "\"}"
static const s_error_t s_telegram_errors[] = {
    {"blocked", 403, TG (403, "Forbidden: bot was blocked by the user")},
    {"cant_initiate", 403, TG (403, "Forbidden: bot can't initiate conversation with a user")},
    {"deactivated", 403, TG (403, "Forbidden: user is deactivated")},
    {"chat_not_found", 400, TG (400, "Bad Request: chat not found")},
    {"too_long", 400, TG (400, "Bad Request: message is too long")},
    {"cant_parse", 400,
     TG (400, "Bad Request: can't parse entities: Can't find end of the entity starting at byte "
              "offset 3")},
    {"migrated", 400,
     "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was upgraded to "
     "a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}"},
    {"unauthorized", 401, TG (401, "Unauthorized")},
    /* sendPhoto and sendDocument with a URL Telegram cannot fetch or use,
     * and a caption over 1024 characters. */
    {"wrong_url", 400, TG (400, "Bad Request: wrong file identifier/HTTP URL specified")},
    {"url_content", 400, TG (400, "Bad Request: failed to get HTTP URL content")},
    {"web_page_content", 400, TG (400, "Bad Request: wrong type of the web page content")},
    {"caption_too_long", 400, TG (400, "Bad Request: message caption is too long")},
};
#undef TG

#define VB(status, name)                                                                           \
    {                                                                                              \
#status, 200, "{\"status\":" #status ",\"status_message\":\"" name "\"}"                   \
    }
static const s_error_t s_viber_errors[] = {
    VB (2, "invalidAuthToken"),
    VB (3, "badData"),
    VB (4, "missingData"),
    VB (5, "receiverNotRegistered"),
    VB (6, "receiverNotSubscribed"),
    VB (7, "publicAccountBlocked"),
    VB (8, "publicAccountNotFound"),
    VB (9, "publicAccountSuspended"),
    VB (10, "webhookNotSet"),
    VB (11, "receiverNoSuitableDevice"),
    VB (12, "tooManyRequests"),
    VB (13, "apiVersionNotSupported"),
    VB (14, "incompatibleWithVersion"),
    VB (15, "publicAccountNotAuthorized"),
    VB (16, "inchatReplyMessageNotAllowed"),
    VB (17, "publicAccountIsNotInline"),
    VB (18, "noPublicChat"),
    VB (19, "cannotSendBroadcast"),
    VB (20, "broadcastNotAllowed"),
    VB (21, "unsupportedCountry"),
    VB (22, "paymentUnsupported"),
    VB (23, "freeMessagesExceeded"),
    VB (24, "noBalance"),
};
#undef VB

#define GR(code, sub, msg)                                                                         \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"error_subcode\":" #sub ",\"fbtrace_id\":\"FakeTrace\"}}"
#define GR0(code, msg)                                                                             \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"fbtrace_id\":\"FakeTrace\"}}"
static const s_error_t s_meta_errors[] = {
    {"10/2018278", 400, GR (10, 2018278, "(#10) This message is sent outside of allowed window.")},
    {"551/1545041", 400, GR (551, 1545041, "(#551) This person isn't available right now.")},
    {"100/2018001", 400, GR (100, 2018001, "(#100) No matching user found")},
    {"190", 400, GR (190, 463, "Error validating access token: Session has expired")},
    {"10/1893063", 400, GR (10, 1893063, "(#10) This Page is temporarily restricted")},
    /* Replies to comments: the private reply given already, the comment
     * gone, a permission the token lacks. */
    {"10900", 400, GR0 (10900, "(#10900) Activity already replied to")},
    {"100/33", 400,
     GR (100, 33,
         "Unsupported post request. Object with ID '17858893269000001' does not exist, cannot be "
         "loaded due to missing permissions, or does not support this operation. Please read the "
         "Graph API documentation at https://developers.facebook.com/docs/graph-api")},
    {"200", 403, GR0 (200, "(#200) Permissions error")},
};
#undef GR
#undef GR0

#define WA(code, msg)                                                                              \
    "{\"error\":{\"message\":\"(#" #code ") " msg "\",\"type\":\"OAuthException\",\"code\":" #code \
    ",\"error_data\":{\"messaging_product\":\"whatsapp\",\"details\":\"" msg "\"},"                \
    "\"fbtrace_id\":\"FakeTrace\"}}"
static const s_error_t s_whatsapp_errors[] = {
    {"131026", 400, WA (131026, "Message Undeliverable")},
    {"131047", 400, WA (131047, "Re-engagement message")},
    {"131049", 400,
     WA (131049, "This message was not delivered to maintain healthy ecosystem "
                 "engagement.")},
    {"131050", 400, WA (131050, "User has stopped receipt of marketing messages")},
    {"131056", 400, WA (131056, "(Business Account, Consumer Account) pair rate limit hit")},
    {"131000", 500, WA (131000, "Something went wrong")},
    {"131008", 400, WA (131008, "Required parameter is missing")},
    {"100", 400, WA (100, "Invalid parameter")},
    {"132001", 404, WA (132001, "Template name does not exist in the translation")},
    {"190", 401, WA (190, "Error validating access token")},
    {"2", 503, WA (2, "Service temporarily unavailable")},
};
#undef WA

#define TW(status, code, msg)                                                                      \
    {                                                                                              \
#code, status,                                                                             \
            "{\"code\":" #code ",\"message\":\"" msg                                               \
            "\",\"more_info\":\"https://www.twilio.com/docs/"                                      \
            "errors/" #code "\",\"status\":" #status "}"                                           \
    }
static const s_error_t s_twilio_errors[] = {
    TW (400, 21610, "Attempt to send to unsubscribed recipient"),
    TW (400, 21211, "The 'To' number is not a valid phone number."),
    TW (400, 21612, "The 'To' phone number is not currently reachable via SMS."),
    TW (400, 21614, "'To' number is not a valid mobile number"),
    TW (400, 21635, "'To' number cannot be a landline"),
    TW (400, 21408,
        "Permission to send an SMS has not been enabled for the region indicated by "
        "the 'To' number."),
    TW (400, 21606,
        "The From phone number provided is not a valid, SMS-capable inbound phone "
        "number for your account."),
    TW (401, 20003, "Authenticate"),
};
#undef TW

static const struct {
    const s_error_t *errors; /* the table */
    size_t n;                /* its entries */
} s_errors[RT_FAKE_PROVIDERS] = {
    {s_telegram_errors, sizeof s_telegram_errors / sizeof *s_telegram_errors},
    {s_viber_errors, sizeof s_viber_errors / sizeof *s_viber_errors},
    {s_meta_errors, sizeof s_meta_errors / sizeof *s_meta_errors},
    {s_whatsapp_errors, sizeof s_whatsapp_errors / sizeof *s_whatsapp_errors},
    {s_twilio_errors, sizeof s_twilio_errors / sizeof *s_twilio_errors},
};

static const s_error_t *
s_error_find (rt_fake_kind_t provider, const char *name)
{
    for (size_t i = 0; name && i < s_errors[provider].n; i++)
        if (strcmp (s_errors[provider].errors[i].name, name) == 0)
            return &s_errors[provider].errors[i];
    return NULL;
}

/* --- making answers --- */

/* An answer being made: status, type, body (owned), Retry-After. */
typedef struct {
    int status;            /* HTTP status */
    char content_type[96]; /* "" for none */
    char *body;            /* owned */
    char retry_after[16];  /* "" for none */
    char id[64];           /* SUCCESS: the id */
} s_made_t;

/* A failure on a server thread: cmocka's failures jump on the test's
 * thread only, so the process stops here, saying why. */
static void
s_die (const char *what)
{
    fprintf (stderr, "fake provider: %s\n", what);
    abort ();
}

static char *s_printf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static char *
s_printf (const char *fmt, ...)
{
    char *out = NULL;
    va_list args;
    va_start (args, fmt);
    int n = vasprintf (&out, fmt, args);
    va_end (args);
    if (n < 0)
        s_die ("out of memory");
    return out;
}

/* The request body's JSON value at key (in obj at key2 when key2), to echo. */
static json_t *
s_field (json_t *doc, const char *key, const char *key2)
{
    json_t *v = json_object_get (doc, key);
    return key2 ? json_object_get (v, key2) : v;
}

/* The medium of a sendPhoto or sendDocument body, as its Message shows
 * it: photo an array of PhotoSize (Telegram's sizes of the one image),
 * document a Document named from its URL; NULL for a sendMessage. */
static json_t *
s_telegram_medium (json_t *doc, long long id, const char **key)
{
    json_t *photo = s_field (doc, "photo", NULL), *document = s_field (doc, "document", NULL);
    char file_id[64], unique[32];
    snprintf (file_id, sizeof file_id, "AgACAgIAAxkBAAIFake%lld", id);
    snprintf (unique, sizeof unique, "AQADFake%lld", id);
    if (json_is_string (photo)) {
        *key = "photo";
        return json_pack ("[{s:s, s:s, s:i, s:i, s:i}, {s:s, s:s, s:i, s:i, s:i}]", "file_id",
                          file_id, "file_unique_id", unique, "file_size", 1391, "width", 90,
                          "height", 67, "file_id", file_id, "file_unique_id", unique, "file_size",
                          58242, "width", 800, "height", 600);
    }
    if (json_is_string (document)) {
        const char *url = json_string_value (document), *slash = strrchr (url, '/');
        *key = "document";
        return json_pack ("{s:s, s:s, s:s, s:s, s:i}", "file_name",
                          slash && slash[1] ? slash + 1 : "file", "mime_type", "application/pdf",
                          "file_id", file_id, "file_unique_id", unique, "file_size", 48213);
    }
    *key = NULL;
    return NULL;
}

static void
s_success (rt_fake_kind_t provider, long long id, const char *body, size_t len, s_made_t *m)
{
    json_t *doc = json_loadb (body, len, 0, NULL);
    json_t *out = NULL;
    m->status = 200;
    switch (provider) {
    case RT_FAKE_TELEGRAM: {
        json_t *chat = s_field (doc, "chat_id", NULL);
        json_t *text = s_field (doc, "text", NULL);
        json_t *caption = s_field (doc, "caption", NULL);
        const char *key = NULL;
        json_t *medium = s_telegram_medium (doc, id, &key);
        out = json_pack ("{s:b, s:{s:I, s:{s:I, s:b, s:s}, s:{s:I, s:s}, s:I}}", "ok", 1, "result",
                         "message_id", (json_int_t)id, "from", "id", (json_int_t)1, "is_bot", 1,
                         "first_name", "Fake shop", "chat", "id",
                         json_is_integer (chat) ? json_integer_value (chat) : (json_int_t)-100777,
                         "type", json_is_integer (chat) ? "private" : "channel", "date",
                         (json_int_t)time (NULL));
        if (out) {
            /* A Message has text, or a medium with its caption. */
            json_t *result = json_object_get (out, "result");
            if (medium) {
                json_object_set_new (result, key, medium);
                if (json_is_string (caption))
                    json_object_set (result, "caption", caption);
            } else {
                json_object_set_new (
                    result, "text",
                    json_string (json_is_string (text) ? json_string_value (text) : ""));
            }
        } else {
            json_decref (medium);
        }
        /* The adapter names a message "<chat>:<id>". */
        snprintf (m->id, sizeof m->id, "%" JSON_INTEGER_FORMAT ":%lld",
                  json_is_integer (chat) ? json_integer_value (chat) : (json_int_t)-100777, id);
        break;
    }
    case RT_FAKE_VIBER:
        snprintf (m->id, sizeof m->id, "%lld", 5741311803571700000LL + id);
        out = json_pack ("{s:i, s:s, s:I, s:s, s:i}", "status", 0, "status_message", "ok",
                         "message_token", (json_int_t)(5741311803571700000LL + id), "chat_hostname",
                         "SN-CHAT-05_", "billing_status", 1);
        break;
    case RT_FAKE_META: {
        json_t *rid = s_field (doc, "recipient", "id");
        if (!json_object_get (doc, "recipient")) {
            /* A public reply (/{comment-id}/comments or /replies): the
             * Graph API answers the new comment's id. */
            snprintf (m->id, sizeof m->id, "17890000000%06lld", id);
            out = json_pack ("{s:s}", "id", m->id);
            break;
        }
        snprintf (m->id, sizeof m->id, "m_fake%lld", id);
        out = json_pack ("{s:s, s:s}", "recipient_id",
                         json_is_string (rid) ? json_string_value (rid) : "0", "message_id", m->id);
        break;
    }
    case RT_FAKE_WHATSAPP: {
        json_t *to = s_field (doc, "to", NULL);
        const char *input = json_is_string (to) ? json_string_value (to) : "";
        snprintf (m->id, sizeof m->id, "wamid.FAKE%020lld", id);
        out = json_pack ("{s:s, s:[{s:s, s:s}], s:[{s:s}]}", "messaging_product", "whatsapp",
                         "contacts", "input", input, "wa_id", input[0] == '+' ? input + 1 : input,
                         "messages", "id", m->id);
        break;
    }
    case RT_FAKE_TWILIO:
        m->status = 201;
        snprintf (m->id, sizeof m->id, "SM%032llx", id);
        out = json_pack ("{s:s, s:s, s:s, s:n, s:s}", "sid", m->id, "status", "queued", "direction",
                         "outbound-api", "error_code", "num_segments", "1");
        break;
    case RT_FAKE_PROVIDERS:
        break;
    }
    json_decref (doc);
    if (!out)
        s_die ("cannot make a success");
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    m->body = json_dumps (out, JSON_COMPACT);
    json_decref (out);
}

static void
s_rate_limit (rt_fake_kind_t provider, int seconds, s_made_t *m)
{
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    if (provider != RT_FAKE_TELEGRAM && seconds > 0)
        snprintf (m->retry_after, sizeof m->retry_after, "%d", seconds);
    switch (provider) {
    case RT_FAKE_TELEGRAM:
        m->status = 429;
        if (seconds > 0)
            m->body = s_printf ("{\"ok\":false,\"error_code\":429,\"description\":\"Too Many "
                                "Requests: retry after %d\",\"parameters\":{\"retry_after\":%d}}",
                                seconds, seconds);
        else
            m->body = s_printf ("{\"ok\":false,\"error_code\":429,\"description\":\"Too Many "
                                "Requests\"}");
        break;
    case RT_FAKE_VIBER:
        m->status = 200;
        m->body = s_printf ("{\"status\":12,\"status_message\":\"tooManyRequests\"}");
        break;
    case RT_FAKE_META:
        m->status = 400;
        m->body = s_printf ("{\"error\":{\"message\":\"(#613) Calls to this api have exceeded "
                            "the rate limit.\",\"type\":\"OAuthException\",\"code\":613,"
                            "\"fbtrace_id\":\"FakeTrace\"}}");
        break;
    case RT_FAKE_WHATSAPP:
        m->status = 429;
        m->body = s_printf ("{\"error\":{\"message\":\"(#130429) Rate limit hit\",\"type\":"
                            "\"OAuthException\",\"code\":130429,\"error_data\":{"
                            "\"messaging_product\":\"whatsapp\",\"details\":\"Cloud API message "
                            "throughput has been reached.\"},\"fbtrace_id\":\"FakeTrace\"}}");
        break;
    case RT_FAKE_TWILIO:
        m->status = 429;
        m->body = s_printf ("{\"code\":20429,\"message\":\"Too many requests. Please retry "
                            "according to the Retry-After response header.\",\"more_info\":"
                            "\"https://www.twilio.com/docs/errors/20429\",\"status\":429}");
        break;
    case RT_FAKE_PROVIDERS:
        break;
    }
}

/* Makes the answer of `s` (NULL: success) to a request of provider. */
static void
s_make (rt_fake_kind_t provider, const s_script_t *s, long long id, const char *body, size_t len,
        s_made_t *m)
{
    memset (m, 0, sizeof *m);
    rt_fake_answer_kind_t kind = s ? s->answer.kind : RT_FAKE_SUCCESS;
    switch (kind) {
    case RT_FAKE_SUCCESS:
        s_success (provider, id, body, len, m);
        break;
    case RT_FAKE_RATE_LIMIT:
        s_rate_limit (provider, s->answer.retry_after_s, m);
        break;
    case RT_FAKE_SERVER_ERROR:
        m->status = s->answer.status ? s->answer.status : 503;
        snprintf (m->content_type, sizeof m->content_type, "%s", "text/plain");
        m->body = s_printf ("Service Unavailable");
        break;
    case RT_FAKE_HTML:
        m->status = s->answer.status ? s->answer.status : 502;
        snprintf (m->content_type, sizeof m->content_type, "%s", "text/html");
        m->body = s_printf ("<html>\r\n<head><title>%d Bad Gateway</title></head>\r\n<body>\r\n"
                            "<center><h1>%d Bad Gateway</h1></center>\r\n<hr><center>nginx"
                            "</center>\r\n</body>\r\n</html>\r\n",
                            m->status, m->status);
        break;
    case RT_FAKE_ERROR: {
        const s_error_t *e = s_error_find (provider, s->error);
        m->status = e->status;
        snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
        m->body = s_printf ("%s", e->body);
        break;
    }
    case RT_FAKE_RAW:
        m->status = s->answer.status ? s->answer.status : 200;
        snprintf (m->content_type, sizeof m->content_type, "%s",
                  s->content_type ? s->content_type : "");
        m->body = s_printf ("%s", s->body ? s->body : "");
        break;
    }
}

/* --- the server side --- */

static void
s_record (rt_fake_provider_t *fp, rt_fake_kind_t provider, rt_http_request_t *req, int64_t at_ms,
          rt_fake_answer_kind_t kind, const s_made_t *m)
{
    rt_fake_request_t *r = calloc (1, sizeof *r);
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    if (!r)
        s_die ("out of memory");
    r->provider = provider;
    snprintf (r->method, sizeof r->method, "%s", rt_http_method (req));
    r->target = strdup (rt_http_target (req));
    r->body = malloc (len + 1);
    r->nheaders = rt_http_header_count (req);
    r->headers = calloc (r->nheaders ? r->nheaders : 1, sizeof *r->headers);
    if (!r->target || !r->body || !r->headers)
        s_die ("out of memory");
    memcpy (r->body, body, len);
    r->body[len] = '\0';
    r->body_len = len;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *name = NULL, *value = NULL;
        rt_http_header_at (req, i, &name, &value);
        r->headers[i].name = strdup (name);
        r->headers[i].value = strdup (value);
    }
    r->answer = kind;
    r->status = m->status;
    r->at_ms = at_ms;
    snprintf (r->id, sizeof r->id, "%s", m->id);

    pthread_mutex_lock (&fp->lock);
    if (fp->nrecords == fp->cap) {
        size_t cap = fp->cap ? 2 * fp->cap : 64;
        rt_fake_request_t **grown = realloc (fp->records, cap * sizeof *grown);
        if (!grown)
            s_die ("out of memory");
        fp->records = grown;
        fp->cap = cap;
    }
    fp->records[fp->nrecords++] = r;
    fp->counts[provider]++;
    pthread_cond_broadcast (&fp->recorded);
    pthread_mutex_unlock (&fp->lock);
}

static void
s_script_free (s_script_t *s)
{
    if (!s)
        return;
    free (s->error);
    free (s->content_type);
    free (s->body);
    free (s);
}

static void
s_handle (rt_http_request_t *req, rt_fake_provider_t *fp, rt_fake_kind_t provider)
{
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    int64_t at_ms = rt_test_now_ms ();

    pthread_mutex_lock (&fp->lock);
    s_script_t *s = fp->scripts[provider];
    if (s) {
        fp->scripts[provider] = s->next;
        if (!s->next)
            fp->tails[provider] = &fp->scripts[provider];
    }
    long long id = ++fp->next_id;
    pthread_mutex_unlock (&fp->lock);

    s_made_t m;
    s_make (provider, s, id, body, len, &m);
    rt_fake_answer_kind_t kind = s ? s->answer.kind : RT_FAKE_SUCCESS;
    int delay_ms = s ? s->answer.delay_ms : 0;
    s_record (fp, provider, req, at_ms, kind, &m);
    s_script_free (s);

    if (delay_ms <= 0)
        rt_test_later_send (req, m.status, m.content_type, m.body, strlen (m.body), m.retry_after);
    else
        rt_test_later_reply (fp->later, req, delay_ms, m.status, m.content_type, m.body,
                             strlen (m.body), m.retry_after);
    free (m.body);
}

static void
s_on_telegram (rt_http_request_t *req, void *arg)
{
    const char *bot = rt_http_param (req, "bot");
    if (!bot || strncmp (bot, "bot", 3) != 0 || !bot[3]) {
        static const char body[] =
            "{\"ok\":false,\"error_code\":404,\"description\":\"Not Found\"}";
        rt_http_reply (req, 404, "application/json", body, strlen (body));
        return;
    }
    s_handle (req, arg, RT_FAKE_TELEGRAM);
}

static void
s_on_viber (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FAKE_VIBER);
}

/* Messenger, Instagram and WhatsApp share a path; WhatsApp's body names
 * its product. */
static void
s_on_graph (rt_http_request_t *req, void *arg)
{
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    json_t *doc = json_loadb (body, len, 0, NULL);
    const char *product = json_string_value (json_object_get (doc, "messaging_product"));
    rt_fake_kind_t provider =
        product && strcmp (product, "whatsapp") == 0 ? RT_FAKE_WHATSAPP : RT_FAKE_META;
    json_decref (doc);
    s_handle (req, arg, provider);
}

/* A public reply under a comment: Facebook's comments, Instagram's
 * replies. */
static void
s_on_comment (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FAKE_META);
}

static void
s_on_twilio (rt_http_request_t *req, void *arg)
{
    s_handle (req, arg, RT_FAKE_TWILIO);
}

/* --- the test's side --- */

rt_fake_provider_t *
rt_fake_provider_start (void)
{
    char err[256] = "";
    rt_fake_provider_t *fp = calloc (1, sizeof *fp);
    if (!fp)
        fail_msg ("fake provider: out of memory");
    pthread_mutex_init (&fp->lock, NULL);
    pthread_cond_init (&fp->recorded, NULL);
    for (int i = 0; i < RT_FAKE_PROVIDERS; i++)
        fp->tails[i] = &fp->scripts[i];
    fp->later = rt_test_later_new ("fake provider");
    rt_http_server_config_t config = {
        .address = "127.0.0.1:0",
        .name = "fake-provider",
        .threads = 2,
        .stop_timeout_ms = 5000,
    };
    fp->server = rt_http_server_new (&config, err, sizeof err);
    if (!fp->server)
        fail_msg ("fake provider: %s", err);
    if (!rt_http_route (fp->server, "POST", "/{bot}/sendMessage", s_on_telegram, fp) ||
        !rt_http_route (fp->server, "POST", "/{bot}/sendPhoto", s_on_telegram, fp) ||
        !rt_http_route (fp->server, "POST", "/{bot}/sendDocument", s_on_telegram, fp) ||
        !rt_http_route (fp->server, "POST", "/pa/send_message", s_on_viber, fp) ||
        !rt_http_route (fp->server, "POST", "/{version}/{id}/messages", s_on_graph, fp) ||
        !rt_http_route (fp->server, "POST", "/{version}/{id}/comments", s_on_comment, fp) ||
        !rt_http_route (fp->server, "POST", "/{version}/{id}/replies", s_on_comment, fp) ||
        !rt_http_route (fp->server, "POST", "/2010-04-01/Accounts/{sid}/Messages.json", s_on_twilio,
                        fp))
        fail_msg ("fake provider: routes refused");
    if (rt_http_server_start (fp->server, err, sizeof err) != 0)
        fail_msg ("fake provider: %s", err);
    snprintf (fp->base, sizeof fp->base, "http://127.0.0.1:%d", rt_http_server_port (fp->server));
    return fp;
}

void
rt_fake_provider_stop (rt_fake_provider_t **self_p)
{
    rt_fake_provider_t *fp = self_p ? *self_p : NULL;
    if (!fp)
        return;
    /* Each answer still delayed is sent now, on its worker. */
    rt_test_later_flush (fp->later);
    rt_http_server_destroy (&fp->server);
    rt_test_later_destroy (&fp->later);
    for (int i = 0; i < RT_FAKE_PROVIDERS; i++) {
        while (fp->scripts[i]) {
            s_script_t *next = fp->scripts[i]->next;
            s_script_free (fp->scripts[i]);
            fp->scripts[i] = next;
        }
    }
    for (size_t i = 0; i < fp->nrecords; i++) {
        rt_fake_request_t *r = fp->records[i];
        for (size_t h = 0; h < r->nheaders; h++) {
            free (r->headers[h].name);
            free (r->headers[h].value);
        }
        free (r->headers);
        free (r->target);
        free (r->body);
        free (r);
    }
    free (fp->records);
    pthread_cond_destroy (&fp->recorded);
    pthread_mutex_destroy (&fp->lock);
    free (fp);
    *self_p = NULL;
}

const char *
rt_fake_provider_base (const rt_fake_provider_t *self)
{
    return self->base;
}

static char *
s_dup (const char *s)
{
    char *copy = s ? strdup (s) : NULL;
    if (s && !copy)
        fail_msg ("fake provider: out of memory");
    return copy;
}

void
rt_fake_provider_push (rt_fake_provider_t *self, rt_fake_kind_t provider,
                       const rt_fake_answer_t *answer)
{
    if ((int)provider < 0 || (int)provider >= RT_FAKE_PROVIDERS)
        fail_msg ("fake provider: no provider %d", (int)provider);
    if (answer->kind == RT_FAKE_ERROR && !s_error_find (provider, answer->error))
        fail_msg ("fake provider: %s has no documented error \"%s\"", s_names[provider],
                  answer->error ? answer->error : "(null)");
    s_script_t *s = calloc (1, sizeof *s);
    if (!s)
        fail_msg ("fake provider: out of memory");
    s->answer = *answer;
    s->error = s_dup (answer->error);
    s->content_type = s_dup (answer->content_type);
    s->body = s_dup (answer->body);
    pthread_mutex_lock (&self->lock);
    *self->tails[provider] = s;
    self->tails[provider] = &s->next;
    pthread_mutex_unlock (&self->lock);
}

size_t
rt_fake_provider_count (rt_fake_provider_t *self, rt_fake_kind_t provider)
{
    pthread_mutex_lock (&self->lock);
    size_t n = (int)provider >= 0 && (int)provider < RT_FAKE_PROVIDERS ? self->counts[provider]
                                                                       : self->nrecords;
    pthread_mutex_unlock (&self->lock);
    return n;
}

const rt_fake_request_t *
rt_fake_provider_request (rt_fake_provider_t *self, size_t i)
{
    pthread_mutex_lock (&self->lock);
    const rt_fake_request_t *r = i < self->nrecords ? self->records[i] : NULL;
    pthread_mutex_unlock (&self->lock);
    return r;
}

bool
rt_fake_provider_wait (rt_fake_provider_t *self, size_t count, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&self->lock);
    int rc = 0;
    while (self->nrecords < count && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait (&self->recorded, &self->lock, &deadline);
    bool reached = self->nrecords >= count;
    pthread_mutex_unlock (&self->lock);
    return reached;
}

const char *
rt_fake_request_header (const rt_fake_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp (r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

void
rt_fake_request_recipient (const rt_fake_request_t *r, char *to, size_t len)
{
    static const char *const keys[RT_FAKE_PROVIDERS] = {"chat_id", "receiver", "recipient", "to",
                                                        NULL};
    json_t *doc, *v;
    to[0] = '\0';
    if (r->provider == RT_FAKE_TWILIO) {
        char err[128];
        rt_form_t *form = rt_form_parse (r->body, r->body_len, err, sizeof err);
        const char *value = form ? rt_form_get (form, "To") : NULL;
        snprintf (to, len, "%s", value ? value : "");
        rt_form_destroy (&form);
        return;
    }
    doc = json_loadb (r->body, r->body_len, 0, NULL);
    v = json_object_get (doc, keys[r->provider]);
    if (r->provider == RT_FAKE_META)
        v = json_object_get (v, "id") ? json_object_get (v, "id")
                                      : json_object_get (v, "comment_id");
    if (json_is_integer (v))
        snprintf (to, len, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
    else if (json_is_string (v))
        snprintf (to, len, "%s", json_string_value (v));
    json_decref (doc);
}

size_t
rt_fake_provider_sent (rt_fake_provider_t *self, rt_fake_kind_t provider, const char *recipient,
                       const rt_fake_request_t **out, size_t max)
{
    size_t n = 0;
    char to[128];
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (self, i);
        if (!r)
            break;
        if (provider != RT_FAKE_PROVIDERS && r->provider != provider)
            continue;
        rt_fake_request_recipient (r, to, sizeof to);
        if (strcmp (to, recipient) != 0)
            continue;
        if (n < max)
            out[n] = r;
        n++;
    }
    return n;
}

size_t
rt_fake_provider_sent_wait (rt_fake_provider_t *self, rt_fake_kind_t provider,
                            const char *recipient, size_t want, int timeout_ms,
                            const rt_fake_request_t **out, size_t max)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    size_t n;
    for (;;) {
        n = rt_fake_provider_sent (self, provider, recipient, out, max);
        if (n >= want || rt_test_now_ms () >= until)
            return n;
        usleep (20 * 1000);
    }
}

rt_fake_kind_t
rt_fake_provider_kind (const char *name)
{
    for (int i = 0; name && i < RT_FAKE_PROVIDERS; i++)
        if (strcmp (s_names[i], name) == 0)
            return (rt_fake_kind_t)i;
    return RT_FAKE_PROVIDERS;
}
