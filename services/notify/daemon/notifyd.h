/*
 * notifyd: the parts of retain-notifyd main.c puts together.
 *
 * The consumer handler (handler.c) turns what the group "notify" reads on
 * the stream "message" into rows of notify.sends inside the consumer's
 * round: an OutboundMessageRequested becomes a queued send to the
 * customer's identity on its channel (or a failed one, with its
 * MessageFailed, when it cannot be sent at all), a NotificationRequested
 * (stream "notification") a notification whose send notification.c
 * routes (template, channel and fallback, consent, quiet hours), a
 * ConsentChanged (stream "customer") a change of consent, and ingest's
 * receipts move the send they name to delivered or read. The sender
 * (sender.c) is a pool of worker threads, each with its own libevent loop,
 * HTTP client and PostgreSQL connection, that claims due sends in batches
 * within the rate limits (notify.claim), woken by the consumer's NOTIFY,
 * sends them through the provider adapters (provider.h) and records the
 * outcomes of the answers that came together (outcome.c) in one
 * transaction with their events in the outbox. Each worker also runs the crash policy
 * (recover.c) at start and every sweep interval: sends another member
 * left `sending` past the lease are uncertain. The campaign runner
 * (campaign.c), a thread of its own, makes a running campaign's targets
 * into notifications at the campaign's rate, each customer once.
 */
#ifndef NOTIFYD_H
#define NOTIFYD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "provider.h"
#include "rt_channel.h"
#include "rt_db.h"
#include "rt_metrics.h"
#include "smtp.h"
#include "retain/v1/envelope.pb-c.h"
#include "retain/v1/message.pb-c.h"

/* The producer name notifyd's own events carry: the handler passes over
 * its own MessageDelivered and MessageFailed. */
#define NOTIFYD_PRODUCER "retain-notifyd"

#define NOTIFYD_MEMBER_MAX 128 /* a member's name, bytes */

/* --- notifications (notification.c) --- */

#define NOTIFICATION_CHANNELS_MAX 12 /* channels of one route at most */
#define NOTIFICATION_PIECES_MAX   10 /* messages a long text is cut into at most */

/* How notifications are routed, timed and checked: the daemon's settings,
 * read-only once main.c filled them (shared by the consumer's thread and
 * the workers). */
typedef struct {
    const char *locale_chain;   /* template locales after the customer's (lent) */
    const char *fallback_chain; /* channels after the first choice, "viber,sms,email" (lent) */
    bool marketing_opt_out;     /* marketing goes unless withdrawn (an opt-out regime);
                                   false: it needs consent granted */
    int quiet_start_min;        /* quiet hours' start, minutes into the local day */
    int quiet_end_min;          /* their end (before the start: across midnight) */
    const char *default_zone;   /* IANA zone when the profile and the phone name none (lent) */
    int sms_segments_max;       /* an SMS text of more segments is refused */
    const char *important;      /* categories watched for a delivery receipt, comma-separated */
    int64_t receipt_wait_ms;    /* no receipt this long: the next channel (0: never) */
    rt_metrics_t *metrics;      /* lent: the daemon's registry */
} notification_config_t;

/* Registers notification.c's statements on db. 0 or -1. */
int notification_prepare (rt_db_t *db);

/* Routes notification id inside db's open transaction (rt_outbox_prepare
 * and notification_prepare done on db): the channels of its route after
 * `after` (NULL: from the first) are tried in order until one can take
 * it (an identity, a sending account, no suppression, consent), and there
 * its template is rendered and its send queued at the first allowed
 * instant (not_before, quiet hours). from_send, when not NULL, is the
 * send handing over (a provider's STOP_RECIPIENT or WINDOW, no receipt in
 * time): it gets fallback_to and fallback_reason (why) and nothing is
 * said on the bus when no channel is left (the caller says it). With
 * from_send NULL a notification nothing can take fails: its row and its
 * MessageFailed (unknown_template, missing_variable, text_too_long,
 * no_consent, no_channel, expired). 1 a send queued, 0 none, -1 when
 * PostgreSQL failed (reason in err: the transaction must roll back). */
int notification_route (rt_db_t *db, const notification_config_t *cfg, const char *id,
                        const char *after, const char *from_send, const char *why, char *err,
                        size_t errlen);

/* Records a change of consent (notify.consent_set) inside db's open
 * transaction: channel NULL or "" for every channel, category NULL for
 * both; reason the words kept with it (NULL: none). 0 or -1. */
int notification_consent (rt_db_t *db, const char *customer_id, const char *channel,
                          const char *category, bool granted, const char *source,
                          const char *reason, int64_t at_ms);

/* --- the consumer handler (handler.c) --- */

/* The consumer handler's state. */
typedef struct {
    rt_metrics_t *metrics;                     /* lent: the daemon's registry */
    const notification_config_t *notification; /* lent: the daemon's settings */
    rt_db_t *prepared;                         /* the handle the statements were registered with */
    bool fatal;                                /* they could not be: the daemon stops, exit 1 */
} handler_t;

/* Readies the handler (nothing connects). */
void handler_init (handler_t *self, rt_metrics_t *metrics,
                   const notification_config_t *notification);

/* The rt_consumer_handler_fn: one event inside the round's transaction.
 * An event that cannot be taken is logged, counted and passed over (0);
 * -1 only for PostgreSQL failing, which rolls the round back. */
int handler_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg);

/* --- events (outcome.c) --- */

/* What an event about one send names. */
typedef struct {
    const char *message_id;  /* the send's id */
    const char *customer_id; /* its customer ("" or NULL: none) */
    const char *channel;     /* rt_channel's name */
    const char *external_id; /* the provider's id, NULL: none */
} notify_event_t;

/* Writes a MessageFailed about ev into the outbox on db, inside its open
 * transaction (rt_outbox_prepare must have been called on db). 0 or -1
 * with the reason in err. */
int notify_emit_failed (rt_db_t *db, const notify_event_t *ev, const char *code, const char *reason,
                        bool permanent, int attempts, char *err, size_t errlen);

/* Writes a MessageDelivered about ev (read: a read receipt) at at_ms. 0 or
 * -1 with the reason in err. */
int notify_emit_delivered (rt_db_t *db, const notify_event_t *ev, bool read, int64_t at_ms,
                           char *err, size_t errlen);

/* --- the sender (sender.c, outcome.c, recover.c) --- */

/* The sender's settings. */
typedef struct {
    const char *dsn;            /* PostgreSQL (lent: the daemon's settings) */
    const char *member;         /* this replica's name in claimed_by (lent) */
    const char *base_urls[4];   /* RETAIN_NOTIFY_{TELEGRAM,VIBER,META,TWILIO}_API (lent) */
    int workers;                /* worker threads */
    int in_flight;              /* requests in flight at most, all workers together */
    int claim_batch;            /* sends one claim takes at most */
    int64_t poll_ms;            /* between two claims when nothing woke the worker */
    int64_t flush_ms;           /* an answer waits this long at most to be recorded */
    int flush_max;              /* answers recorded together at most */
    int64_t request_timeout_ms; /* one request to a provider, at most */
    int64_t lease_ms;           /* a send `sending` this long is uncertain */
    int retry_max;              /* transient failures before a send fails */
    int64_t backoff_ms;         /* the first retry's delay, doubled each failure */
    int64_t backoff_max_ms;     /* the longest retry delay */
    int64_t wait_default_ms;    /* a WAIT without the provider's figure */
    int64_t sweep_ms;           /* between two runs of the crash policy and the gauges */
    int host_connections;       /* connections to one provider host at most, per worker */
    rt_metrics_t *metrics;      /* lent: the daemon's registry */
    const notification_config_t *notification; /* lent: fallbacks and the receipt watch */
    smtp_config_t smtp;                        /* e-mail's settings (smtp.h) */
} sender_config_t;

typedef struct sender_t sender_t;

/* Starts the workers (each connects on its own thread). NULL with the
 * reason in err. */
sender_t *sender_start (const sender_config_t *config, char *err, size_t errlen);

/* True once every worker has connected and run the crash policy once. */
bool sender_ready (const sender_t *self);

/* Stops claiming, waits for the requests in flight (up to the request
 * timeout), stops the workers and frees it; NULL is fine. */
void sender_stop (sender_t **self_p);

/* One claimed send, as notify.claim returned it (strings owned). */
typedef struct {
    char *id;            /* the message id */
    char *channel;       /* rt_channel's name */
    char *recipient;     /* the chat id, user id or number */
    char *text;          /* the text */
    int attempts;        /* this attempt's number (1 for the first) */
    int failures;        /* transient failures before it */
    char *customer_id;   /* "" when none */
    char *category;      /* "transactional" or "marketing" */
    char *account;       /* notify.accounts.id */
    char *provider;      /* the account's provider */
    char *base_url;      /* its base_url, "" for the daemon's */
    char *token;         /* secrets, never logged */
    char *account_id;    /* Meta page id, Twilio AccountSid */
    char *sender;        /* Twilio From, Viber sender name */
    char *status_url;    /* Twilio StatusCallback */
    char *suppressed_by; /* the suppression's source when the address is suppressed, else "" */
    bool human;          /* an operator wrote it (Meta's HUMAN_AGENT tag) */
    bool attached;       /* it has attachments or is a part: the four below are read */
    char *attachments;   /* its media as notify.sends keeps them (JSON), "" when none */
    char *part_of;       /* the message it is a part of (its events' id), "" when none */
    int part;            /* its place among the parts, 0 when none */
    int parts;           /* how many parts the message has, 0 when none */
    int64_t claimed_ms;  /* rt_clock_mono_ms when it was claimed */
} notify_claim_t;

/* Frees c's strings and zeroes it; safe on a zeroed claim. */
void notify_claim_free (notify_claim_t *c);

/* Fills c (its strings owned) from row of notify.claim's result, in the
 * claim's column order, claimed at claimed_ms (rt_clock_mono_ms); its
 * attachments and part are "" and 0 until the sender reads them. 0, or
 * -1 when out of memory (c zeroed). */
int notify_claim_from_row (const PGresult *r, int row, int64_t claimed_ms, notify_claim_t *c);

/* --- an operator's reply as its sends (parts.c) --- */

/* Where a reply's sends go, and when they were made (strings lent). */
typedef struct {
    const char *channel;   /* rt_channel's name, "" when none */
    const char *inbox;     /* NULL when none was found */
    const char *recipient; /* NULL when none was found */
    const char *now;       /* unix ms, as text */
} parts_where_t;

/* Registers parts.c's statements on db (the consumer's and each
 * worker's). 0 or -1. */
int parts_prepare (rt_db_t *db);

/* Why m's attachments cannot go out (more than RT_ATTACHMENTS_MAX, a kind
 * other than image or document, a URL that is not https), into reason:
 * "bad_attachment", or NULL when they can (or there are none). */
const char *parts_refusal (const Retain__V1__OutboundMessageRequested *m, char *reason, size_t len);

/* The text m sends on ch: its own, or where ch sends no media (caption_max
 * 0), its text with each attachment's URL on a line of its own after it,
 * owned by *owned (the caller frees it; NULL when m's own). NULL when out
 * of memory. */
const char *parts_text (const Retain__V1__OutboundMessageRequested *m, const rt_channel_t *ch,
                        char **owned);

/* Inside the consumer's transaction: m (from event) as one failed send
 * with code and reason, nothing to go out. 0, or -1 when PostgreSQL
 * failed. */
int parts_refused (rt_db_t *db, const Retain__V1__Envelope *event,
                   const Retain__V1__OutboundMessageRequested *m, const parts_where_t *at,
                   const char *code, const char *reason);

/* Inside the consumer's transaction: m's sends on ch, queued, text (as
 * parts_text gave it) in one send or in parts (parts.c's head). 0, or -1
 * (PostgreSQL, or out of memory: the round rolls back). */
int parts_queue (rt_db_t *db, const Retain__V1__Envelope *event,
                 const Retain__V1__OutboundMessageRequested *m, const rt_channel_t *ch,
                 const parts_where_t *at, const char *text);

/* Reads claim c's media and part into it when the claim says it has them
 * (c->attached). 0, or -1 when PostgreSQL failed or out of memory. */
int parts_read (rt_db_t *db, notify_claim_t *c);

/* c's media (as parts_read read them) into out (room for
 * RT_ATTACHMENTS_MAX), their strings lent by *doc (owned: json_decref,
 * also after a failure). How many, or -1 when what notify.sends holds is
 * no array of media. */
int parts_media (const notify_claim_t *c, json_t **doc, provider_attachment_t *out);

/* What outcome.c needs to record outcomes on one connection. */
typedef struct {
    const sender_config_t *config; /* the sender's settings */
    rt_db_t *db;                   /* the worker's connection */
} outcome_ctx_t;

/* Register outcome.c's and recover.c's statements on db. 0 or -1. */
int outcome_prepare (rt_db_t *db);
int recover_prepare (rt_db_t *db);

/* The answers of one worker waiting to be recorded, oldest first; each
 * holds its claim's slot under the in-flight cap until it is recorded, so
 * a crash duplicates at most the cap's worth. */
typedef struct outcome_batch_t outcome_batch_t;

/* An empty batch, NULL when out of memory. */
outcome_batch_t *outcome_batch_new (void);

/* Frees it with what it still holds (not recorded: the lease brings those
 * sends back); NULL is fine. */
void outcome_batch_destroy (outcome_batch_t **self_p);

/* Answers waiting in it. */
size_t outcome_batch_size (const outcome_batch_t *self);

/* Adds what the provider answered to claim c, taking c's strings (c is
 * zeroed): the verdict's consequence as README says, decided now (the
 * backoff drawn, the instant kept). -1 when out of memory: the send stays
 * `sending` and the lease brings it back. */
int outcome_add (outcome_batch_t *self, const sender_config_t *config, notify_claim_t *c,
                 const provider_outcome_t *o);

/* Adds a permanent failure of claim c for a reason of notifyd's own (the
 * adapter refused to build it, code e.g. "bad_request"); as outcome_add. */
int outcome_add_refusal (outcome_batch_t *self, notify_claim_t *c, const char *code,
                         const char *reason);

/* Records every answer of the batch in one transaction on ctx's
 * connection, their events in the outbox. Only the claim that sent a send
 * may record it: one the crash policy took back meanwhile is left alone
 * (counted as fenced). When the transaction fails the answers stay in the
 * batch for the next flush (a statement refused while the connection
 * lives: each answer is tried alone, so one cannot hold back the others),
 * except those claimed longer than the lease ago, which the crash policy
 * settles. The number recorded (fenced included), or -1 when PostgreSQL
 * failed and answers are left. */
int outcome_flush (const outcome_ctx_t *ctx, outcome_batch_t *batch);

/* The crash policy and the periodic chores (recover.c), in transactions of
 * their own on ctx's connection: sends `sending` for longer than the lease
 * (and, when mine is true, every send claimed by this member: a replica
 * that starts has nothing in flight) are uncertain: transactional ones are
 * queued again, marketing ones dropped with their MessageFailed; expired
 * queued sends are dropped; full recipient buckets are deleted; the queue
 * gauge is refreshed. 0 or -1. */
int recover_sweep (const outcome_ctx_t *ctx, bool mine);

/* --- campaigns (campaign.c) --- */

/* The campaign runner's settings. */
typedef struct {
    const char *dsn;                           /* PostgreSQL (lent: the daemon's settings) */
    int batch;                                 /* targets one step claims at most */
    int64_t poll_ms;                           /* between two rounds that claimed nothing */
    int64_t refresh_ms;                        /* between two recounts of sent and failed */
    rt_metrics_t *metrics;                     /* lent: the daemon's registry */
    const notification_config_t *notification; /* lent: routing, consent, quiet hours */
} campaign_config_t;

typedef struct campaign_runner_t campaign_runner_t;

/* Starts the runner's thread (it connects on its own): running campaigns'
 * pending targets become notifications at each campaign's rate, each
 * customer once (campaign.c has the steps). NULL with the reason in err. */
campaign_runner_t *campaign_start (const campaign_config_t *config, char *err, size_t errlen);

/* Stops it after the step in progress (whose transaction commits or rolls
 * back whole) and frees it; NULL is fine. */
void campaign_stop (campaign_runner_t **self_p);

#endif
