/*
 * unsubscribe: the one-click unsubscribe link (see unsubscribe.h).
 *
 * The pages are small, self-contained HTML in Ukrainian with an English
 * line (retain's customers read Ukrainian first): no script, no external
 * resource, nothing of the customer's shown (a forwarded link must not
 * tell a stranger whose it is), only the channel and the kind of messages
 * the button stops. The server adds the headers that keep the token in
 * the URL to itself (no-store, no-referrer, noindex).
 *
 * The refusal page is one for every reason a token fails: a prober learns
 * nothing from it. The reason goes to the label, the log and the metric.
 */
#include "unsubscribe.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels/formdata.h"
#include "rt_channel.h"
#include "rt_crypto.h"
#include "rt_form.h"
#include "retain/v1/customer.pb-c.h"

#define S_HTML "text/html; charset=utf-8"

/* What a category is called on the page. */
static const struct {
    const char *category; /* as the token carries it */
    const char *uk;       /* "рекламні повідомлення" */
    const char *en;       /* "marketing messages" */
} s_categories[] = {
    {"marketing", "рекламні повідомлення", "marketing messages"},
    {"transactional", "службові повідомлення", "service messages"},
};

/* A page is S_HEAD_OPEN, its title, S_HEAD_CLOSE, its body, S_TAIL. */
#define S_HEAD_OPEN                                                                                \
    "<!doctype html>\n<html lang=\"uk\"><head><meta charset=\"utf-8\">"                            \
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"                     \
    "<meta name=\"robots\" content=\"noindex\"><title>"
#define S_HEAD_CLOSE                                                                               \
    "</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"       \
    "padding:0 1rem;line-height:1.5;color:#222}button{font-size:1rem;padding:.6rem 1.2rem;"        \
    "cursor:pointer}.en{color:#666;font-size:.9rem}</style></head><body><main>"
#define S_TAIL "</main></body></html>\n"

/* Sets the page (the title, then the body made from fmt) as the result's
 * response. 0, or -1 out of memory. */
__attribute__ ((format (printf, 3, 4))) static int
s_page (ingest_result_t *result, const char *title, const char *fmt, ...)
{
    char *body = NULL, *page = NULL;
    va_list ap;
    int rc;
    va_start (ap, fmt);
    rc = vasprintf (&body, fmt, ap);
    va_end (ap);
    if (rc < 0)
        return -1;
    rc = asprintf (&page, "%s%s%s%s%s", S_HEAD_OPEN, title, S_HEAD_CLOSE, body, S_TAIL);
    free (body);
    if (rc < 0)
        return -1;
    free (result->response);
    result->response = page;
    result->response_type = S_HTML;
    return 0;
}

int
unsubscribe_refusal (ingest_result_t *result, int status, const char *label, const char *reason)
{
    ingest_fail (result, status, label, "%s", reason);
    switch (status) {
    case 404:
        s_page (result, "Посилання недійсне",
                "<h1>Посилання недійсне</h1><p>Це посилання для відписки застаріло або "
                "пошкоджене. Відписатися можна за посиланням із новішого повідомлення.</p>"
                "<p class=\"en\" lang=\"en\">This unsubscribe link has expired or is damaged. "
                "Use the link in a more recent message.</p>");
        break;
    case 400:
        s_page (result, "Не вдалося",
                "<h1>Не вдалося відписатися</h1><p>Запит не містить підтвердження. Відкрийте "
                "посилання ще раз і натисніть кнопку.</p><p class=\"en\" lang=\"en\">The "
                "request did not confirm the unsubscribe. Open the link again and press the "
                "button.</p>");
        break;
    default:
        s_page (result, "Спробуйте пізніше",
                "<h1>Спробуйте пізніше</h1><p class=\"en\" lang=\"en\">Please try again "
                "later.</p>");
        break;
    }
    return -1;
}

/* What the link withdraws, in words, into uk and en. */
static void
s_describe (const rt_signed_unsubscribe_t *u, char *uk, size_t uklen, char *en, size_t enlen)
{
    const rt_channel_t *channel = rt_channel_by_value ((Retain__V1__Channel)u->channel);
    const char *cat_uk = NULL, *cat_en = NULL;
    size_t i;
    for (i = 0; i < sizeof s_categories / sizeof *s_categories; i++) {
        if (strcmp (s_categories[i].category, u->category) == 0) {
            cat_uk = s_categories[i].uk;
            cat_en = s_categories[i].en;
        }
    }
    /* The category and the title are ours ([a-z0-9_-], the channel
     * table): nothing to escape. */
    if (channel) {
        if (cat_uk) {
            snprintf (uk, uklen, "%s (%s)", cat_uk, channel->title);
            snprintf (en, enlen, "%s (%s)", cat_en, channel->title);
        } else {
            snprintf (uk, uklen, "повідомлення «%s» (%s)", u->category, channel->title);
            snprintf (en, enlen, "\"%s\" messages (%s)", u->category, channel->title);
        }
    } else {
        if (cat_uk) {
            snprintf (uk, uklen, "%s на всіх каналах", cat_uk);
            snprintf (en, enlen, "%s on every channel", cat_en);
        } else {
            snprintf (uk, uklen, "повідомлення «%s» на всіх каналах", u->category);
            snprintf (en, enlen, "\"%s\" messages on every channel", u->category);
        }
    }
}

/* Whether the POST's body says List-Unsubscribe=One-Click. */
static bool
s_one_click (const ingest_request_t *req)
{
    const char *ctype = ingest_header (req, "Content-Type");
    char err[128];
    bool yes = false;
    size_t i;
    if (formdata_is_type (ctype, "multipart/form-data")) {
        formdata_t *form = formdata_parse (ctype, req->body, req->body_len, err, sizeof err);
        for (i = 0; form && i < formdata_count (form); i++) {
            const formdata_part_t *part = formdata_part (form, i);
            if (strcmp (part->name, "List-Unsubscribe") == 0 && part->len == 9 &&
                memcmp (part->data, "One-Click", 9) == 0)
                yes = true;
        }
        formdata_destroy (&form);
        return yes;
    }
    /* RFC 8058 has the body form-urlencoded; a client that names no type
     * (or text/plain) sends the same bytes. */
    {
        rt_form_t *form = rt_form_parse ((const char *)req->body, req->body_len, err, sizeof err);
        const char *value = form ? rt_form_get (form, "List-Unsubscribe") : NULL;
        yes = value && strcmp (value, "One-Click") == 0;
        rt_form_destroy (&form);
    }
    return yes;
}

/* The ConsentChanged of u, owned (free_unpacked); NULL out of memory. */
static Retain__V1__ConsentChanged *
s_consent (const rt_signed_unsubscribe_t *u, int64_t now_ms)
{
    Retain__V1__ConsentChanged *msg = malloc (sizeof *msg);
    if (!msg)
        return NULL;
    retain__v1__consent_changed__init (msg);
    msg->customer_id = NULL;
    msg->category = NULL;
    msg->source = NULL;
    if (ingest_set (&msg->customer_id, u->customer_id) != 0 ||
        ingest_set (&msg->category, u->category) != 0 ||
        ingest_set (&msg->source, UNSUBSCRIBE_SOURCE) != 0) {
        protobuf_c_message_free_unpacked (&msg->base, NULL);
        return NULL;
    }
    msg->channel = (Retain__V1__Channel)u->channel;
    msg->granted = false;
    msg->at = now_ms;
    return msg;
}

/* The accepted POST: the item, keyed by the customer. */
static int
s_take (const rt_signed_unsubscribe_t *u, const char *token, const ingest_request_t *req,
        ingest_result_t *result)
{
    uint8_t hash[RT_SHA256_LEN];
    char hex[2 * RT_SHA256_LEN + 1], *key;
    ingest_item_t *item;
    Retain__V1__ConsentChanged *msg = s_consent (u, req->now_ms);
    if (!msg)
        return unsubscribe_refusal (result, 503, "no_memory", "out of memory");
    rt_sha256 (token, strlen (token), hash);
    rt_hex_encode (hash, sizeof hash, hex);
    if (ingest_item_add (result, "ConsentChanged", hex, &msg->base,
                         rt_channel_name ((Retain__V1__Channel)u->channel), UNSUBSCRIBE_INBOX,
                         u->customer_id) != 0)
        return unsubscribe_refusal (result, 503, "no_memory", "out of memory");
    /* The bus keys a customer's events by the customer id. */
    item = &result->items[result->count - 1];
    key = strdup (u->customer_id);
    if (!key)
        return unsubscribe_refusal (result, 503, "no_memory", "out of memory");
    free (item->key);
    item->key = key;
    return 0;
}

int
unsubscribe_handle (const rt_signed_keys_t *keys, const char *token, const ingest_request_t *req,
                    ingest_inbox_t *inbox, ingest_result_t *result)
{
    rt_signed_unsubscribe_t u;
    rt_signed_status_t status = RT_SIGNED_UNKNOWN_KEY;
    char uk[256], en[256];
    bool post = strcmp (req->method, "POST") == 0;
    if (!post && strcmp (req->method, "GET") != 0 && strcmp (req->method, "HEAD") != 0)
        return unsubscribe_refusal (result, 405, "method_not_allowed", "only GET and POST");
    if (keys && token)
        status = rt_signed_unsubscribe_read (keys, token, req->now_ms / 1000, &u);
    if (status == RT_SIGNED_OK && u.channel != 0 &&
        !rt_channel_by_value ((Retain__V1__Channel)u.channel))
        status = RT_SIGNED_MALFORMED;
    if (status != RT_SIGNED_OK)
        return unsubscribe_refusal (result, 404, rt_signed_reason (status),
                                    "the link does not verify");
    s_describe (&u, uk, sizeof uk, en, sizeof en);
    if (!post) {
        if (s_page (result, "Відписатися?",
                    "<h1>Відписатися?</h1><p>Натисніть кнопку, і ми більше не надсилатимемо "
                    "вам %s.</p><form method=\"post\"><input type=\"hidden\" "
                    "name=\"List-Unsubscribe\" value=\"One-Click\"><button "
                    "type=\"submit\">Відписатися</button></form><p class=\"en\" "
                    "lang=\"en\">Press the button to stop receiving %s.</p>",
                    uk, en) != 0)
            return unsubscribe_refusal (result, 503, "no_memory", "out of memory");
        return 0;
    }
    if (!s_one_click (req))
        return unsubscribe_refusal (result, 400, "not_one_click",
                                    "the body is not List-Unsubscribe=One-Click");
    if (s_take (&u, token, req, result) != 0)
        return -1;
    if (s_page (result, "Ви відписалися",
                "<h1>Ви відписалися</h1><p>Ми більше не надсилатимемо вам %s.</p>"
                "<p class=\"en\" lang=\"en\">You will no longer receive %s.</p>",
                uk, en) != 0)
        return unsubscribe_refusal (result, 503, "no_memory", "out of memory");
    inbox->id = UNSUBSCRIBE_INBOX;
    inbox->channel = (Retain__V1__Channel)u.channel;
    return 0;
}
