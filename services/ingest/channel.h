/*
 * channel: the contract between ingestd's HTTP layer and each channel.
 *
 * The HTTP layer finds the inbox a request is for and hands the channel's
 * handler the request as plain data (no libevent types, so handlers run
 * the same under a fuzzer). The handler verifies the provider's signature
 * with the inbox's secrets, parses the body, and fills the result with the
 * items it found (InboundMessage, MessageDelivered, MessageFailed), each
 * with the external id that de-duplicates it within (channel, inbox), or
 * with an HTTP status and a reason. It never writes anywhere: making the
 * items durable (and answering 2xx only after that) is the writer's job.
 *
 * Statuses a handler answers: 400 malformed body (reason names what),
 * 401 signature missing, 403 signature wrong or stale, 405 method, 415
 * content type, 200 with no items for a valid request that carries nothing
 * to keep (a Telegram update of an unhandled kind, a verification ping).
 */
#ifndef INGEST_CHANNEL_H
#define INGEST_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "retain/v1/common.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "rt_phone.h"

typedef struct {
    const char *name;  /* as received */
    const char *value; /* as received */
} ingest_header_t;

/* One HTTP request, as the handler sees it. Everything is lent. */
typedef struct {
    const char *method;             /* "GET", "POST", "OPTIONS" */
    const char *path;               /* e.g. "/hooks/telegram/shop-bot" */
    const char *query;              /* raw query string without '?', "" when none */
    const ingest_header_t *headers; /* all headers */
    size_t nheaders;
    const uint8_t *body; /* raw body, not NUL-terminated */
    size_t body_len;
    const char *peer;       /* the TCP peer's IP address as text ("127.0.0.1", "::1");
                               NULL when unknown */
    const char *public_url; /* the URL the provider called (scheme, host, path,
                               query), from the inbox's public base URL */
    int64_t now_ms;         /* unix ms when it arrived */
    /* Replay guard for signatures that do not cover the body (Mailgun's
     * timestamp + token): returns 1 when `nonce` was already used, else
     * records it until expires_ms and returns 0. NULL: no guard. */
    int (*replay_check) (void *arg, const char *nonce, int64_t expires_ms);
    void *replay_arg;
} ingest_request_t;

/* A configured inbox (ingest.inboxes), lent to the handler. */
typedef struct {
    const char *id;              /* inbox id, e.g. "shop-bot" */
    Retain__V1__Channel channel; /* its channel */
    const char *secret;          /* the current secret */
    const char *previous_secret; /* still accepted during a rotation; "" when none */
    const json_t *config;        /* channel settings (JSON object, never NULL) */
} ingest_inbox_t;

/* One thing to put on the bus. */
typedef struct {
    char *external_id;     /* unique within (channel, inbox); owned */
    const char *type;      /* "InboundMessage", "MessageDelivered" or "MessageFailed" */
    ProtobufCMessage *msg; /* owned; freed with protobuf_c_message_free_unpacked (msg, NULL),
                              so build it with malloc'd fields throughout (see
                              ingest_item_*) */
    char *key;             /* the envelope key; owned */
    char *event_id;        /* set by the writer: the envelope id it went out with; owned */
} ingest_item_t;

typedef struct {
    ingest_item_t *items;      /* found items; owned */
    size_t count;              /* their number */
    size_t cap;                /* allocated */
    int status;                /* HTTP status to answer when not 2xx (0: success) */
    char reason[256];          /* why, for 4xx: answered in the body and logged */
    const char *label;         /* metric label of the reason, e.g. "bad_signature" */
    char *response;            /* a body to answer on success instead of the default, owned
                                  (the Meta verification challenge, web chat's JSON) */
    const char *response_type; /* its content type */
} ingest_result_t;

/* A channel handler. Returns 0 when the request is valid (items may be
 * none), -1 when it is not (status, reason and label set). */
typedef int (*ingest_handler_fn) (const ingest_inbox_t *inbox, const ingest_request_t *req,
                                  ingest_result_t *result);

/* --- helpers every handler uses (channel.c) --- */

/* The value of a header, case-insensitively; NULL when absent. */
const char *ingest_header (const ingest_request_t *req, const char *name);

/* Sets a failure: status, label and a printf-formatted reason. Returns -1. */
int ingest_fail (ingest_result_t *result, int status, const char *label, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* A new InboundMessage with every string field a malloc'd "" so handlers
 * can replace fields with ingest_set (which frees the old value). NULL when
 * out of memory. */
Retain__V1__InboundMessage *ingest_inbound_new (const ingest_inbox_t *inbox);

/* Replaces *field (a string field of a message built by ingest_*_new) with a
 * copy of value (NULL is ""). Returns 0 or -1 (out of memory). */
int ingest_set (char **field, const char *value);

/* The customer's number as E.164 (common/phone, rt_phone_normalize) into
 * out, or NULL when it cannot be read as one (then the caller keeps what
 * the provider sent, or nothing). National numbers are read in the inbox's
 * country: its config's "default_country" (ISO 3166 alpha-2), UA when
 * unset; `country`, when not NULL, overrides it ("ZZ": the provider sends
 * international numbers only, with or without '+'; inbox may then be
 * NULL). */
const char *ingest_phone (const ingest_inbox_t *inbox, const char *number, const char *country,
                          char out[RT_PHONE_E164_MAX + 1]);

/* Appends an attachment with the given kind to an InboundMessage; its other
 * string fields are malloc'd "" to be set with ingest_set. NULL when out of
 * memory. */
Retain__V1__Attachment *ingest_attachment_add (Retain__V1__InboundMessage *msg, const char *kind);

/* Adds an item; takes ownership of msg (also on failure, when it is freed).
 * The key is "<channel>:<inbox>:<external_user_id>". An InboundMessage's
 * opt is set here from its text (keywords.h: ingest_opt_apply), so that
 * every channel reads the keywords the same way. Returns 0 or -1. */
int ingest_item_add (ingest_result_t *result, const char *type, const char *external_id,
                     ProtobufCMessage *msg, const char *channel_name, const char *inbox,
                     const char *external_user_id);

/* Frees everything the result holds and zeroes it. */
void ingest_result_reset (ingest_result_t *result);

/* Lower-case channel name of the enum ("telegram", "whatsapp", ...), as
 * common/channel's table has it; "unknown" for a value it lacks. */
const char *ingest_channel_name (Retain__V1__Channel channel);

/* --- the providers' handlers (channel.c) --- */

/* How ingestd reads one provider's requests. common/channel says which
 * provider an inbox has and at which route; this says which handler reads
 * what arrives there. */
typedef struct {
    const char *provider;      /* a provider of common/channel's table ("twilio") */
    ingest_handler_fn handler; /* reads its requests */
    bool cors;                 /* called from browsers: answered with CORS for the inbox's
                                  "allowed_origins" */
    /* Checks an inbox's config when ingestd loads it: 0 usable, 1 usable
     * with a warning in note, -1 unusable (the inbox is skipped) with the
     * reason in note. NULL: any config is usable. */
    int (*config_check) (const json_t *config, char *note, size_t notelen);
} ingest_provider_t;

/* The handler of a provider (rt_channel_kind_t.provider); NULL when none. */
const ingest_provider_t *ingest_provider (const char *provider);

/* Checks that every provider with a webhook route in common/channel's
 * table has a handler here, so that no route ingestd serves is dead.
 * Returns 0, or -1 with the first provider lacking one named in err. */
int ingest_providers_check (char *err, size_t errlen);

/* --- the channels (channels/<name>.c) --- */
int telegram_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int viber_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int meta_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int twilio_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int mailgun_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int webchat_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int phone_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int binotel_handle (const ingest_inbox_t *, const ingest_request_t *, ingest_result_t *);
int binotel_config_check (const json_t *config, char *note, size_t notelen);

#endif
