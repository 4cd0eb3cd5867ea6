/*
 * provider: how notifyd speaks to each messaging provider, as pure
 * functions over requests and answers (provider.c, and one file per
 * provider in providers/).
 *
 * A provider adapter does two things and nothing else: it builds the HTTP
 * request of one send (URL, headers, body) from the send and the sending
 * account's credentials, and it classifies the provider's answer into one
 * verdict. It does no I/O, keeps no state and reads no clock, so every
 * documented answer (../shared/reference/providers.md, section 2) is a
 * unit test, and the sender (the daemon's worker) owns the network, the
 * retries, the rate limits and PostgreSQL.
 *
 * The verdicts are DESIGN's classes ("Effects outside PostgreSQL"):
 *   SENT            accepted: the provider's message id in external_id.
 *   RETRY           transient (5xx, a timeout, a reset, HTML or garbage
 *                   where JSON was due, Telegram 5xx, Meta 1/2, WhatsApp
 *                   131000/2): backoff with jitter, the same request
 *                   again.
 *   MIGRATED        the chat moved (Telegram 400 with parameters.
 *                   migrate_to_chat_id: a group became a supergroup, whose
 *                   id is new): the same send again at once, to the chat
 *                   in migrate_to (never the chat it was sent to).
 *   WAIT            rate limited (HTTP 429, Telegram's parameters.
 *                   retry_after, Viber status 12, Meta 4/17/32/341/613,
 *                   WhatsApp 130429/131056/131049, Twilio 20429): again
 *                   after wait_ms (the provider's figure, else its
 *                   Retry-After header, else the adapter's default, else
 *                   0: the sender's default).
 *   STOP_RECIPIENT  this recipient cannot be reached on this channel
 *                   (Telegram 403 blocked / can't initiate / deactivated,
 *                   400 chat not found; Viber 5, 6, 11, 21; Meta 551, 100/
 *                   2018001; WhatsApp 131026, 131050; Twilio 21610
 *                   (opt_out set: an unsubscribe), 21211, 21612, 21614,
 *                   21635): consent or reachability updated, the fallback
 *                   channel tried.
 *   WINDOW          outside the channel's messaging window (Meta code 10,
 *                   WhatsApp 131047): a template or another channel.
 *   BAD_REQUEST     the request itself is wrong (Telegram 400 message too
 *                   long or can't parse entities, a medium's URL it cannot
 *                   fetch or use, a caption too long, Viber 3/4/13/14, Meta
 *                   100, WhatsApp 131008/131009/132000/132001/100, Twilio
 *                   21408): never retried, the reason kept.
 *   STOP_ACCOUNT    the sending account cannot send now (an invalid token:
 *                   any HTTP 401, Telegram 404, Viber 2, Meta and WhatsApp
 *                   190/0/102; Viber 7-10, 15, 23, 24; Meta 3, 200-299,
 *                   368, 10/1893063; WhatsApp 131031/131042; Twilio 20003,
 *                   21606): nothing more through it until an operator
 *                   acts; its sends fail over or wait.
 * Unknown codes are RETRY when the HTTP status is 5xx or absent, and
 * BAD_REQUEST otherwise, with the code and the provider's text kept. A
 * transport failure is RETRY; when the request may have reached the
 * provider (a timeout, a connection cut mid-answer, an answer too large)
 * the outcome says `uncertain`, as a retry may then deliver twice.
 *
 * Strings in the structs are lent by the caller unless said otherwise;
 * what an adapter builds is owned by the request (rt_http_outreq_free).
 * A built URL may carry a credential (Telegram's token is in its path,
 * Meta's page token in its query): log log_url, never url.
 */
#ifndef NOTIFY_PROVIDER_H
#define NOTIFY_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_buf.h"
#include "rt_http_client.h"
#include "rt_http_outreq.h"
#include "retain/v1/common.pb-c.h"

#define PROVIDER_CODE_MAX   32  /* the provider's error code, as text */
#define PROVIDER_REASON_MAX 256 /* the provider's own words, or the adapter's */
#define PROVIDER_EXT_MAX    128 /* the provider's message id */

/* The Graph API version notifyd speaks to Meta (Messenger, Instagram and
 * WhatsApp Cloud share it): one place to move it forward. */
#define PROVIDER_META_VERSION "v21.0"

/* A sending account: one inbox's credentials for sending, as retainctl
 * stored them beside its receiving secret. Which fields a provider reads
 * is in its adapter's comment; the rest are NULL. */
typedef struct {
    const char *provider;   /* "telegram", "viber", "meta", "whatsapp", "twilio", "smtp" */
    const char *base_url;   /* the API's base, e.g. "https://api.telegram.org"
                               (RETAIN_NOTIFY_*_API): tests point it at a fake */
    const char *token;      /* bot token, page access token, auth token */
    const char *account_id; /* Meta page id, WhatsApp phone-number id, Twilio AccountSid */
    const char *sender;     /* Twilio From number or MessagingServiceSid (MG...),
                               Viber sender.name */
    const char *status_url; /* Twilio StatusCallback (ingest's receipt webhook); NULL: none */
} provider_account_t;

/* A medium a send carries (rt_attachment.h says what may be one): the
 * provider fetches it from url. */
typedef struct {
    const char *kind;      /* "image" or "document" */
    const char *url;       /* https:// */
    const char *name;      /* its file name, NULL: none */
    const char *mime_type; /* its media type, NULL: none */
} provider_attachment_t;

/* One send, as the worker hands it to an adapter. */
typedef struct {
    const char *message_id;      /* retain's id of the message (the send's idempotency key) */
    Retain__V1__Channel channel; /* where it goes */
    const char *to;              /* the recipient on that channel: Telegram chat id, Viber
                                    user id, Messenger/Instagram scoped id, E.164 phone */
    const char *text;            /* the text, within the channel's limit (UTF-8) */
    const char *template_name;   /* WhatsApp: an approved template instead of text; NULL: none */
    const char *template_lang;   /* its language code ("uk") */
    const char *const *template_params; /* its body parameters, NULL-terminated; may be NULL */
    bool human_agent;                   /* Messenger/Instagram: an operator's reply (HUMAN_AGENT
                                           tag outside the 24 h window) */
    const char *reply_to;               /* a comment id to answer (Meta's private reply, or
                                           with reply_public under it); NULL: a message */
    bool reply_public;                  /* with reply_to: a public reply under the comment
                                           (Facebook /{id}/comments, Instagram /{id}/replies),
                                           whose answer is {"id"} */
    const provider_attachment_t *attachments; /* the media it carries, text their caption:
                                                 only on a channel whose caption_max > 0
                                                 (elsewhere the links are in text); NULL */
    size_t n_attachments;                     /* how many (Telegram: at most one a request) */
} provider_send_t;

/* A built request: what rt_http_client_submit takes, owned
 * (rt_http_outreq.h: rt_http_outreq_url, _header, _json, _basic_auth,
 * _free build and free it). */
typedef rt_http_outreq_t provider_request_t;

typedef enum {
    PROVIDER_SENT = 0,
    PROVIDER_RETRY,
    PROVIDER_WAIT,
    PROVIDER_STOP_RECIPIENT,
    PROVIDER_WINDOW,
    PROVIDER_BAD_REQUEST,
    PROVIDER_STOP_ACCOUNT,
    PROVIDER_MIGRATED,
} provider_verdict_t;

/* What an answer came to. */
typedef struct {
    provider_verdict_t verdict;         /* the class */
    char external_id[PROVIDER_EXT_MAX]; /* SENT: the provider's message id */
    char code[PROVIDER_CODE_MAX];       /* the provider's code ("403", "6", "131026",
                                           "21610", Meta's "100/2018001"), "" when none */
    char reason[PROVIDER_REASON_MAX];   /* why, for people and MessageFailed.error */
    int64_t wait_ms;                    /* WAIT: how long; 0: the sender's default */
    bool opt_out;                       /* STOP_RECIPIENT because the recipient said
                                           stop (Twilio 21610, Viber unsubscribed): consent
                                           is withdrawn, not just unreachable */
    bool uncertain;                     /* RETRY after the request may have reached the
                                           provider (timeout, cut answer): it may have
                                           been delivered already */
    bool delivered;                     /* SENT and delivered as well: a provider without
                                           delivery receipts (Telegram's Bot API) */
    bool per_recipient;                 /* WAIT for this recipient only (WhatsApp's pair
                                           and marketing limits): the account goes on */
    char migrate_to[PROVIDER_EXT_MAX];  /* MIGRATED: the chat's new id, to send to instead */
} provider_outcome_t;

/* One adapter. */
typedef struct {
    const char *name; /* as provider_account_t.provider */
    /* Builds send's request through account into *out (zeroed first).
     * 0, or -1 with err filled and nothing left to free (a send the
     * provider cannot take: no recipient, no text and no template, text
     * over the channel's limit, a field it lacks, media it cannot send
     * in one request). */
    int (*build) (const provider_account_t *account, const provider_send_t *send,
                  provider_request_t *out, char *err, size_t errlen);
    /* Classifies the answer (or the transport's failure) into *out
     * (zeroed first). Never fails: what it cannot read is RETRY or
     * BAD_REQUEST as the head comment says. */
    void (*classify) (const provider_send_t *send, const rt_http_response_t *resp,
                      provider_outcome_t *out);
} provider_t;

/* The adapter of a provider name, NULL when none. */
const provider_t *provider_find (const char *name);

/* The adapter that sends on `channel` for an inbox of `provider` as
 * ingest.inboxes names it (rt_channel's kinds): "meta" sends WhatsApp
 * through the whatsapp adapter (the Cloud API) and Messenger and
 * Instagram through meta; NULL when none. */
const provider_t *provider_find_for (const char *provider, Retain__V1__Channel channel);

/* The verdict's name ("sent", "retry", "wait", "stop_recipient",
 * "window", "bad_request", "stop_account", "migrated"), for logs and
 * metrics. */
const char *provider_verdict_name (provider_verdict_t verdict);

/* --- for the adapters (the files of providers/); pure, as they are --- */

/* Refuses, into err, a send with no recipient, or with text longer than
 * its channel's limit (rt_channel's text_max, in code points) or not
 * UTF-8; text_required: the send must carry text. 0 or -1. */
int provider_check_send (const provider_send_t *send, bool text_required, char *err, size_t errlen);

/* Refuses, into err, an account whose base_url is missing or not
 * http(s)://; *len gets its length without a trailing '/', for "%.*s". 0
 * or -1. */
int provider_check_base (const provider_account_t *account, int *len, char *err, size_t errlen);

/* Refuses, into err, a missing or empty value (named `what` in the
 * message) or one holding other than [A-Za-z0-9._:-]: ids and tokens go
 * into URL paths unescaped. 0 or -1. */
int provider_check_part (const char *what, const char *value, char *err, size_t errlen);

/* Fills out for a request that got no HTTP answer (RETRY, uncertain when
 * it may have reached the provider) and returns true; false when resp is
 * an answer, for the adapter to read. */
bool provider_transport_failed (const rt_http_response_t *resp, provider_outcome_t *out);

/* The answer's body as a JSON object (owned), NULL when it is empty, not
 * JSON (an HTML error page, a proxy's text) or not an object. */
json_t *provider_json_body (const rt_http_response_t *resp);

/* Sets out to an answer the adapter could not read: RETRY "unreadable
 * answer" with the status, the content type and the body's first printable
 * bytes; a 401 stays STOP_ACCOUNT and a 429 WAIT. */
void provider_unreadable (const rt_http_response_t *resp, provider_outcome_t *out);

/* Sets out's verdict, code (may be NULL) and printf-style reason. */
void provider_set (provider_outcome_t *out, provider_verdict_t verdict, const char *code,
                   const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

/* The verdict of a code the adapter does not know: RETRY when status is
 * 5xx or absent (0), STOP_ACCOUNT for 401, WAIT for 429, BAD_REQUEST
 * otherwise. */
provider_verdict_t provider_unknown_verdict (int status);

/* The last word on a classified answer: a 5xx is RETRY whatever its body
 * said (a WAIT stays), and a WAIT without a figure takes the response's
 * Retry-After. */
void provider_settle (const rt_http_response_t *resp, provider_outcome_t *out);

/* Meta's Graph API error ({"error": {"code", "error_subcode", "message",
 * "error_data": {"details"}}}), which Messenger, Instagram and WhatsApp
 * answer alike; strings lent by doc. */
typedef struct {
    json_int_t code;     /* error.code */
    json_int_t subcode;  /* error.error_subcode, -1 when none */
    const char *message; /* error.message, "" when none */
    const char *details; /* error.error_data.details, "" when none */
} provider_graph_error_t;

/* Reads doc's Graph error into *e; false when doc has none with a code. */
bool provider_graph_error (const json_t *doc, provider_graph_error_t *e);

/* How long to wait: the provider's figure in seconds when given (>= 0),
 * else the response's Retry-After, else fallback_ms. */
int64_t provider_wait_ms (const rt_http_response_t *resp, json_int_t seconds, int64_t fallback_ms);

/* --- e-mail (providers/smtp.c) ---
 *
 * SMTP is not HTTP, so e-mail has no provider_t: the same two pure halves,
 * shaped for libcurl's smtp://. provider_smtp_build makes the RFC 5322
 * message (multipart/alternative text + HTML, RFC 2047 subject and names,
 * List-Unsubscribe one-click); provider_smtp_classify reads how the
 * session ended (libcurl's code, the server's last reply and the command
 * it answered) into the verdicts above. The sending is daemon/smtp.c's. */

#define PROVIDER_ADDR_MAX 256 /* an e-mail address, bytes with the NUL */

/* The provider name (notify.accounts.provider) of an account that sends
 * e-mail over SMTP: its base_url smtp:// or smtps:// (empty: notifyd's
 * --smtp-url), account_id and token the login (both empty: none), sender
 * the From ("Shop <shop@example.com>"). */
#define PROVIDER_SMTP "smtp"

/* One e-mail; strings lent. */
typedef struct {
    const char *from;             /* the account's sender: "addr" or "Name <addr>" */
    const char *to;               /* the recipient's address */
    const char *subject;          /* UTF-8, one line */
    const char *text;             /* the text/plain part, UTF-8 */
    const char *html;             /* the text/html part; NULL or "": the text alone */
    const char *message_id;       /* retain's id: the Message-ID's left part, the boundary */
    int64_t date_s;               /* Date, unix seconds */
    const char *unsubscribe_url;  /* List-Unsubscribe's https link (one-click); NULL: none */
    const char *unsubscribe_mail; /* its mailto address; NULL: none */
} provider_mail_t;

/* A built e-mail: the bytes to upload (owned) and its envelope. */
typedef struct {
    char *data;                            /* CRLF lines, each under 998 bytes */
    size_t len;                            /* its length */
    char envelope_from[PROVIDER_ADDR_MAX]; /* MAIL FROM: the sender's address */
    char envelope_to[PROVIDER_ADDR_MAX];   /* RCPT TO: the recipient's address */
    char message_id[PROVIDER_EXT_MAX];     /* the Message-ID without <>: the external id */
} provider_mail_msg_t;

/* Whether addr is one e-mail address this adapter sends to: an
 * addr-spec (dot-atoms either side of one '@', ASCII, no empty label, at
 * most 254 bytes), no display name, no list. What retainctl checks an
 * address to suppress with, so that one it takes is one notifyd could
 * have sent to. */
bool provider_smtp_address_ok (const char *addr);

/* Builds mail into *out (zeroed first). 0, or -1 with err filled and
 * nothing to free: an address that is not one (or not ASCII), a control
 * character in the subject or a name (no header is ever injected), text
 * or HTML that is not UTF-8, no text, no subject. */
int provider_smtp_build (const provider_mail_t *mail, provider_mail_msg_t *out, char *err,
                         size_t errlen);

/* Frees what a build made and zeroes it; safe on a zeroed message. */
void provider_mail_msg_free (provider_mail_msg_t *msg);

/* The command an SMTP session's last reply answered. */
typedef enum {
    PROVIDER_SMTP_SESSION = 0, /* greeting, EHLO, STARTTLS, AUTH */
    PROVIDER_SMTP_MAIL,        /* MAIL FROM */
    PROVIDER_SMTP_RCPT,        /* RCPT TO */
    PROVIDER_SMTP_DATA,        /* DATA, before its 354 */
    PROVIDER_SMTP_BODY,        /* the message sent, its final reply awaited */
} provider_smtp_stage_t;

/* How a session ended; strings lent. */
typedef struct {
    int curl_code;               /* CURLcode, 0: sent */
    const char *curl_error;      /* libcurl's words, NULL or "": none */
    int reply;                   /* the server's last reply code, 0: none */
    const char *reply_text;      /* its text after the code ("5.1.1 ..."), NULL: none */
    provider_smtp_stage_t stage; /* what that reply answered */
} provider_smtp_answer_t;

/* Classifies a session into *out (zeroed first); message_id is the
 * external id of a sent one. 4yz transient (RETRY; WAIT for throttling:
 * 432, 4.7.28, "too many"); 5.1.x and any 5yz to RCPT unreachable
 * (STOP_RECIPIENT, 5.1.7/5.1.8 and a 5yz to MAIL the account's sender:
 * STOP_ACCOUNT); authentication (530, 534, 535, 538, 5.7.0/8/9/11/14,
 * 5.7.1 relaying, libcurl's login denied, no STARTTLS where it is
 * required, a certificate that does not verify) STOP_ACCOUNT; other 5yz
 * BAD_REQUEST. No reply: RETRY, uncertain once the message was sent. The
 * code is the reply and its enhanced code ("550 5.1.1"). A sent e-mail is
 * delivered as well: SMTP has no delivery receipts, and the receipt watch
 * must not send it again on the next channel. */
void provider_smtp_classify (const provider_smtp_answer_t *a, const char *message_id,
                             provider_outcome_t *out);

/* The one-click unsubscribe link: base (https://..., a '/' added when it
 * lacks one) and rt_signed's unsubscribe token of customer_id, channel
 * and category, expiring at expires_s, into out. Its length, or -1 (no
 * customer, a base not https://, a token rt_signed refuses, out too
 * small). keys is an rt_signed_keys_t. */
struct rt_signed_keys_t;
long provider_unsubscribe_link (const struct rt_signed_keys_t *keys, const char *base,
                                const char *customer_id, Retain__V1__Channel channel,
                                const char *category, int64_t expires_s, char *out, size_t outlen);

/* The adapters, for provider_find and the tests. */
extern const provider_t provider_telegram;
extern const provider_t provider_viber;
extern const provider_t provider_meta;
extern const provider_t provider_whatsapp;
extern const provider_t provider_twilio;

#endif
