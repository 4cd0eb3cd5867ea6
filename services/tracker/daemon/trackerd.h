/*
 * trackerd's own modules, as main.c wires them:
 *
 *   handler.c   the consumer group "tracker" over the stream "order":
 *               OrderShipped registers a parcel (shipment.h), in the
 *               round's transaction.
 *   poller.c    the workers: claim a batch of due parcels of one carrier
 *               account (tracking.claim: slot, quota, lease), ask the
 *               carrier (carrier.h over rt_http_client), hand the answer
 *               to outcome.c.
 *   outcome.c   what an answer changes: the parcel's status by the move
 *               rule, its events, its next poll, the account's backoff or
 *               pause, and the events it publishes (ShipmentStatusChanged,
 *               the milestone NotificationRequested, ShipmentDelayed), in
 *               one transaction fenced by the claim's token.
 *   sweep.c     what time alone decides: the promise passed, a parcel
 *               stuck, the storage deadline near, no news for 30 days.
 *   api.c       the shop's GET /v1/shipments and the customer's tracking
 *               page behind a signed link.
 *
 * Every time is the common clock's (rt_clock_now_ms), so a test that sets
 * it moves every deadline at once.
 */
#ifndef TRACKERD_H
#define TRACKERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "carrier.h"
#include "rt_db.h"
#include "rt_metrics.h"
#include "rt_signed.h"
#include "retain/v1/envelope.pb-c.h"

/* The producer name on trackerd's envelopes. */
#define TRACKERD_PRODUCER "retain-trackerd"

/* A replica's name, at most. */
#define TRACKERD_MEMBER_MAX 96

/* The carriers' count, for tables indexed like carrier_all. */
#define TRACKERD_CARRIERS 5

/* When a parcel is asked about again, by what it last said. */
typedef struct {
    int64_t fresh_ms;   /* Pending, InfoReceived: the carrier may not have it yet [1h] */
    int64_t transit_ms; /* InTransit, Exception [3h] */
    int64_t near_ms;    /* OutForDelivery, AttemptFail [20m] */
    int64_t pickup_ms;  /* AvailableForPickup: the storage deadline matters [6h] */
    int64_t bad_ms;     /* the carrier refused the parcel's request [6h] */
} poll_intervals_t;

/* A moment that speaks to the customer (tracking.milestones). */
typedef struct {
    char tag[24];      /* a tag's name, "Shipped" or "StorageReminder" */
    char template[64]; /* notifyd's template */
} milestone_t;

/* The most milestones the settings hold. */
#define TRACKERD_MILESTONES_MAX 16

/* What the outcome and the sweep need to decide and to speak. */
typedef struct {
    poll_intervals_t intervals; /* when to ask again */
    int64_t backoff_ms;         /* the first transient failure's delay, doubled */
    int64_t backoff_max_ms;     /* the longest */
    int64_t wait_default_ms;    /* a 429 without Retry-After waits this */
    int64_t storage_lead_ms;    /* the storage reminder goes this long before the end */
    double risk_threshold;      /* at_risk when the chance of missing the promise is above */
    const char *link_base;      /* the tracking page's base URL ("https://shop/t/"), "" none */
    const rt_signed_keys_t *link_keys;               /* signs the page's links; NULL: no links */
    int64_t link_ttl_ms;                             /* how long a link works */
    milestone_t milestones[TRACKERD_MILESTONES_MAX]; /* the enabled ones, read at start */
    int n_milestones;                                /* entries in milestones */
    rt_metrics_t *metrics;                           /* lent */
} outcome_config_t;

/* One parcel as the claim returned it: its state before the answer. */
typedef struct {
    char *id; /* owned strings, from the claim's row */
    char *tracking_number;
    char *service;
    char *phone;
    char *tag;
    char *sub_status;
    char *raw_code;
    char *customer_id;
    char *order_id;
    char *origin_city;
    char *destination_city;
    char *delays;      /* PostgreSQL array literal, as read */
    char *milestones;  /* PostgreSQL array literal, as read */
    int64_t status_at; /* 0: none */
    int64_t shipped_at;
    int64_t promised_by; /* 0: none */
    int64_t news_at;
    int64_t carrier_eta;   /* 0: none */
    int64_t storage_until; /* 0: none */
    int not_found;         /* "not found" answers in a row */
    bool returning;
} parcel_t;

/* One call: a claimed batch of one account. */
typedef struct {
    const carrier_t *carrier;
    char account[64];     /* tracking.accounts.id */
    char token[40];       /* the claim's poll token */
    parcel_t *parcels;    /* in query order, owned */
    size_t n;             /* entries in parcels */
    int account_failures; /* the account's transient failures in a row, before this */
} call_t;

/* --- handler.c --- */
typedef struct {
    const outcome_config_t *outcome; /* the "Shipped" milestone's settings, lent */
    rt_metrics_t *metrics;           /* lent */
    const rt_db_t *prepared;         /* the connection the outbox's statement is on */
} handler_t;

void handler_init (handler_t *self, const outcome_config_t *outcome, rt_metrics_t *metrics);
int handler_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg);

/* --- outcome.c --- */

/* Registers outcome.c's statements with db (again after a reconnect). */
int outcome_prepare (rt_db_t *db);

/* Records a call's answer on db in one transaction of its own at now_ms.
 * 0, or -1 when PostgreSQL failed (nothing recorded: the lease expires and
 * the parcels are polled again). */
int outcome_record (rt_db_t *db, const outcome_config_t *config, const call_t *call,
                    const carrier_answer_t *answer, int64_t now_ms);

/* Pauses the account for refused credentials, releases its parcels: used
 * when a token request is refused too. Same return. */
int outcome_fail_call (rt_db_t *db, const outcome_config_t *config, const call_t *call,
                       const carrier_answer_t *answer, int64_t now_ms);

/* The tracking page's signed link for a shipment into out, "" when no
 * link base or keys are set. */
void outcome_link (const outcome_config_t *config, const char *shipment_id, int64_t now_ms,
                   char *out, size_t outlen);

/* Reads the enabled milestones into config; their count or -1. */
int outcome_milestones (rt_db_t *db, outcome_config_t *config);

/* The enabled milestone for `tag` ("Delivered", "Shipped", ...), NULL
 * when that moment does not speak. */
const milestone_t *outcome_milestone_find (const outcome_config_t *config, const char *tag);

/* Whether a PostgreSQL text[] literal as read ("{a,b}") holds word. */
bool outcome_array_has (const char *literal, const char *word);

/* Packs the NotificationRequested of milestone m for parcel p of carrier
 * (its notification id named after the parcel and the template, so a
 * replay asks for the same message) into *out, data owned by the caller.
 * 1 packed, 0 when the parcel has no customer to tell (logged, counted),
 * -1 out of memory. */
int outcome_pack_milestone (const outcome_config_t *config, const milestone_t *m, const parcel_t *p,
                            const carrier_t *carrier, int64_t now_ms, ProtobufCBinaryData *out);

/* Packs a ShipmentDelayed for parcel p (reason: past_promise,
 * carrier_estimate_late, stalled, at_risk; tag the parcel's now) into *out,
 * data owned by the caller. 0, or -1 with err filled. */
int outcome_pack_delayed (const parcel_t *p, const carrier_t *carrier, const char *reason,
                          const char *tag, int64_t delay_ms, int64_t estimated_ms,
                          double probability, ProtobufCBinaryData *out, char *err, size_t errlen);

/* --- poller.c --- */
typedef struct poller_t poller_t;

typedef struct {
    const char *dsn;                          /* PostgreSQL */
    const char *member;                       /* this replica's name */
    int workers;                              /* threads */
    int in_flight;                            /* calls in flight at most, all workers */
    int batch;                                /* parcels per call at most (under the carrier's) */
    int64_t poll_ms;                          /* between claims when nothing was due */
    int64_t request_timeout_ms;               /* one call */
    int64_t lease_ms;                         /* a claimed parcel's lease */
    int64_t spacing_margin_ms;                /* added to an account's spacing: the time from
                                                 the claim to the carrier varies by this much */
    int host_connections;                     /* per carrier host, per worker */
    const char *base_urls[TRACKERD_CARRIERS]; /* per carrier_all index */
    outcome_config_t outcome;                 /* the outcome's settings */
} poller_config_t;

poller_t *poller_start (const poller_config_t *config, char *err, size_t errlen);
void poller_stop (poller_t **self_p);
bool poller_ready (const poller_t *self);

/* --- api.c --- */
typedef struct api_t api_t;

typedef struct {
    const char *dsn;                 /* PostgreSQL */
    const char *address;             /* "127.0.0.1:8782" */
    int threads;                     /* worker threads */
    const char *page_zone;           /* the IANA zone the tracking page shows times in */
    const outcome_config_t *outcome; /* the links' keys and base, lent */
    rt_metrics_t *metrics;           /* lent */
} api_config_t;

/* Starts the server; NULL with err filled. */
api_t *api_start (const api_config_t *config, char *err, size_t errlen);
/* The port it listens on (the address's, or the one chosen for port 0). */
int api_port (const api_t *self);
/* Stops it and frees it; safe on NULL. */
void api_stop (api_t **self_p);

/* The API's OpenAPI document (api/openapi.json, embedded by the build). */
extern const char tracker_openapi_json[];
extern const size_t tracker_openapi_json_len;

/* --- sweep.c --- */
typedef struct sweep_t sweep_t;

sweep_t *sweep_start (const char *dsn, const outcome_config_t *config, int64_t every_ms, char *err,
                      size_t errlen);
void sweep_stop (sweep_t **self_p);

#endif
