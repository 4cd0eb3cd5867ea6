/*
 * rt_test_fake_provider: the messaging providers, faked on loopback, for
 * the tests of what notifyd sends and of what it makes of the answers.
 *
 * One HTTP server (rt_http_server on 127.0.0.1, a free port, two worker
 * threads) serves the five providers' send routes at their real paths, so
 * an account whose base_url is rt_fake_provider_base () works for every
 * adapter:
 *   telegram  POST /bot<token>/sendMessage, sendPhoto, sendDocument (one
 *             script for the three: the record's target tells them apart)
 *   viber     POST /pa/send_message
 *   meta      POST /<version>/<page id>/messages              (Messenger, Instagram;
 *             a private reply's recipient is {comment_id})
 *             POST /<version>/<comment id>/comments, /replies (a public reply
 *             under a Facebook, an Instagram comment)
 *   whatsapp  POST /<version>/<phone-number id>/messages      (a body whose
 *             messaging_product is "whatsapp": the same path as meta's)
 *   twilio    POST /2010-04-01/Accounts/<sid>/Messages.json
 * Anything else is answered 404 and not recorded.
 *
 * Every request to those routes is recorded (method, path with its query,
 * headers, body, when it came, and what it was answered) before it is
 * answered, so a
 * test that waits for a count (rt_fake_provider_wait) then reads what came.
 * Records are never changed or freed before rt_fake_provider_stop, so the
 * pointers rt_fake_provider_request returns stay valid while the server's
 * threads add more.
 *
 * Each provider answers from its own script: a queue of canned answers the
 * test pushes, taken one per request in order; once it is empty, the
 * documented success with a fresh id. The canned answers are the shapes
 * of ../shared/reference/providers.md section 2, written here
 * independently of the adapters (so an adapter that misreads its provider
 * cannot agree with itself):
 *   SUCCESS       Telegram 200 {"ok": true, "result": Message: its text, or
 *                 for sendPhoto its photo (PhotoSize array) and for
 *                 sendDocument its document (Document), with the caption
 *                 sent}, Viber 200
 *                 {"status": 0, "message_token"}, Meta 200 {"recipient_id",
 *                 "message_id"} (a public reply {"id"}: the new comment's), WhatsApp 200
 * {"contacts", "messages":
 *                 [{"id": "wamid..."}]}, Twilio 201 {"sid": "SM...",
 *                 "status": "queued"}; the id is fresh on every answer and
 *                 kept in the record.
 *   RATE_LIMIT    Telegram 429 with parameters.retry_after; Viber 200 status
 *                 12; Meta 400 code 613; WhatsApp 429 code 130429; Twilio
 *                 429 code 20429. retry_after_s > 0 goes into Telegram's
 *                 body, and into a Retry-After header for the others (whose
 *                 bodies carry no figure).
 *   SERVER_ERROR  `status` (503 when 0), text/plain "Service Unavailable".
 *   HTML          `status` (502 when 0), an HTML error page as a proxy
 *                 answers.
 *   ERROR         a documented permanent (or window) error, named by
 *                 `error`: Telegram "blocked", "cant_initiate",
 *                 "deactivated", "chat_not_found", "too_long", "cant_parse",
 *                 "migrated", "unauthorized", and for a medium's URL
 *                 "wrong_url" (wrong file identifier/HTTP URL specified),
 *                 "url_content" (failed to get HTTP URL content),
 *                 "web_page_content" (wrong type of the web page content),
 *                 "caption_too_long"; Viber a status ("2" to "24");
 *                 Meta "10/2018278", "551/1545041", "100/2018001", "190",
 *                 "10/1893063", and for a reply to a comment "10900" (already
 *                 replied), "100/33" (the comment gone), "200" (permission);
 *                 WhatsApp "131026", "131047", "131049",
 *                 "131050", "131056", "131000", "131008", "100", "132001",
 *                 "190", "2"; Twilio "21610", "21211", "21612", "21614",
 *                 "21635", "21408", "21606", "20003". An unknown name fails
 *                 the test at push.
 *   RAW           `status`, `content_type` and `body` as given.
 * Any answer may come after `delay_ms` (the request deferred on the
 * server's loop, its worker free meanwhile): longer than the client's
 * timeout, it is a timeout. Answers still delayed at stop are sent at
 * once.
 *
 * Thread-safe: scripts, records and counts are under one mutex; the test's
 * thread pushes and reads while the server's threads answer. Setup errors
 * fail the test (cmocka), as in rt_test.
 */
#ifndef RT_TEST_FAKE_PROVIDER_H
#define RT_TEST_FAKE_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_fake_provider_t rt_fake_provider_t;

/* The providers the fake speaks for. */
typedef enum {
    RT_FAKE_TELEGRAM = 0,
    RT_FAKE_VIBER,
    RT_FAKE_META,     /* Messenger and Instagram */
    RT_FAKE_WHATSAPP, /* the Cloud API */
    RT_FAKE_TWILIO,
    RT_FAKE_PROVIDERS /* how many; to rt_fake_provider_count: all of them */
} rt_fake_kind_t;

/* What kind of answer. */
typedef enum {
    RT_FAKE_SUCCESS = 0,  /* the documented success, a fresh id */
    RT_FAKE_RATE_LIMIT,   /* the provider's rate limit, retry_after_s */
    RT_FAKE_SERVER_ERROR, /* a 5xx with a plain-text body */
    RT_FAKE_HTML,         /* an HTML error page */
    RT_FAKE_ERROR,        /* a documented error, named by `error` */
    RT_FAKE_RAW,          /* status, content_type and body as given */
} rt_fake_answer_kind_t;

/* One canned answer; its strings are copied at push. */
typedef struct {
    rt_fake_answer_kind_t kind; /* which */
    int status;                 /* SERVER_ERROR, HTML, RAW: the HTTP status (0: the kind's) */
    int retry_after_s;          /* RATE_LIMIT: seconds to wait; 0: none given */
    int delay_ms;               /* answer this much later (any kind); 0: at once */
    const char *error;          /* ERROR: which documented error (see the head) */
    const char *content_type;   /* RAW: its Content-Type; NULL: none */
    const char *body;           /* RAW: its body; NULL: empty */
} rt_fake_answer_t;

/* One request header, as received. */
typedef struct {
    char *name;  /* as sent (case kept) */
    char *value; /* as sent */
} rt_fake_header_t;

/* One request the fake received; everything owned by the fake. */
typedef struct {
    rt_fake_kind_t provider;      /* whose route it came to */
    char method[16];              /* "POST" */
    char *target;                 /* the path with its query, as sent */
    rt_fake_header_t *headers;    /* in arrival order */
    size_t nheaders;              /* entries in headers */
    char *body;                   /* NUL-terminated */
    size_t body_len;              /* its length */
    rt_fake_answer_kind_t answer; /* what it was answered with */
    int status;                   /* the answer's HTTP status */
    char id[64];                  /* SUCCESS: the id the answer carried ("" otherwise),
                                     as the adapter should read it back */
    int64_t at_ms;                /* when it came, on rt_test_now_ms's clock (monotonic) */
} rt_fake_request_t;

/* Starts the fake on a free loopback port; fails the test on error. */
rt_fake_provider_t *rt_fake_provider_start (void);

/* Answers what is still delayed, stops the server and frees everything
 * (the records too). Safe on NULL; sets *self_p NULL. */
void rt_fake_provider_stop (rt_fake_provider_t **self_p);

/* "http://127.0.0.1:<port>", the base_url of every provider (lent). */
const char *rt_fake_provider_base (const rt_fake_provider_t *self);

/* Queues an answer on provider's script; fails the test on an ERROR
 * name the fake does not know for that provider. */
void rt_fake_provider_push (rt_fake_provider_t *self, rt_fake_kind_t provider,
                            const rt_fake_answer_t *answer);

/* Requests recorded for provider (RT_FAKE_PROVIDERS: all). */
size_t rt_fake_provider_count (rt_fake_provider_t *self, rt_fake_kind_t provider);

/* The i-th request recorded, of any provider, in arrival order; NULL past
 * the last. Valid until stop. */
const rt_fake_request_t *rt_fake_provider_request (rt_fake_provider_t *self, size_t i);

/* Waits until at least count requests (of any provider) are recorded;
 * false after timeout_ms. */
bool rt_fake_provider_wait (rt_fake_provider_t *self, size_t count, int timeout_ms);

/* The recipient r names, as its provider spells it (Telegram's chat_id,
 * Viber's receiver, Meta's recipient.id or .comment_id, WhatsApp's to, Twilio's To),
 * into to; "" when it names none. */
void rt_fake_request_recipient (const rt_fake_request_t *r, char *to, size_t len);

/* How many requests of provider (RT_FAKE_PROVIDERS: any) to recipient
 * were recorded; the first max of them, oldest first, into out (may be
 * NULL when max is 0). */
size_t rt_fake_provider_sent (rt_fake_provider_t *self, rt_fake_kind_t provider,
                              const char *recipient, const rt_fake_request_t **out, size_t max);

/* rt_fake_provider_sent until it counts at least want, timeout_ms at
 * most; the count then. */
size_t rt_fake_provider_sent_wait (rt_fake_provider_t *self, rt_fake_kind_t provider,
                                   const char *recipient, size_t want, int timeout_ms,
                                   const rt_fake_request_t **out, size_t max);

/* The first value of a request's header, case-insensitively; NULL when
 * absent. */
const char *rt_fake_request_header (const rt_fake_request_t *r, const char *name);

/* The provider of a provider_account_t.provider name ("telegram", ...),
 * RT_FAKE_PROVIDERS when none. */
rt_fake_kind_t rt_fake_provider_kind (const char *name);

#endif
