/*
 * rt_test_tracker: a world for trackerd's tests. A test database with the
 * outbox (rt_test_notify's world: busd writing the log, the test's
 * publishing connection, a clock file every process follows), the fake
 * carrier (rt_test_fake_carrier.h) and up to two trackerd replicas
 * pointed at it, with the helpers the tests share: carrier accounts,
 * OrderShipped, what trackerd published (bus.events) and the parcels' rows.
 * Setup errors fail the test (cmocka).
 */
#ifndef RT_TEST_TRACKER_H
#define RT_TEST_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_test.h"
#include "rt_test_fake_carrier.h"
#include "rt_test_notify.h"

/* Replicas a world runs at most. */
#define RT_TEST_TRACKERD_MAX 2

typedef struct {
    rt_test_notify_t w;                        /* database, busd, clock, publisher */
    rt_fake_carrier_t *fake;                   /* the carriers */
    rt_test_clientd_t d[RT_TEST_TRACKERD_MAX]; /* the replicas */
    int http_port[RT_TEST_TRACKERD_MAX];       /* each replica's API port */
    char link_keys[96];                        /* the tracking links' key set */
} rt_test_tracker_t;

/* Opens the world `name` (its database <name>_<pid>, logs <name>-*.log)
 * with the clock at clock_at (unix ms; 0: the real time, no clock file)
 * and starts the fake carrier. */
void rt_test_tracker_open (rt_test_tracker_t *t, const char *name, int64_t clock_at);

/* Starts replica i (0 or 1) pointed at the fake for every carrier, fast
 * polling and sweeping, a link base and keys, plus extra (NULL-ended, may
 * be NULL: further --flags), and waits for /readyz. */
void rt_test_trackerd_start (rt_test_tracker_t *t, int i, const char *const extra[]);

/* Kills replica i with SIGKILL and reaps it. */
void rt_test_trackerd_kill (rt_test_tracker_t *t, int i);

/* Stops what runs and frees the world; safe twice. */
void rt_test_tracker_close (rt_test_tracker_t *t);

/* Connects the test's own sessions again (its look at the database and
 * its publisher) after rt_test_db_refuse ended them. */
void rt_test_tracker_reconnect (rt_test_tracker_t *t);

/* Sets the world's clock to at_ms (every process follows it). */
void rt_test_tracker_clock_set (rt_test_tracker_t *t, int64_t at_ms);

/* Adds the carrier account `id` of carrier (trackerd's name) with key
 * (for UPS the client id, secret its secret), the carrier's default, and
 * the spacing and quota given (0: none), as `retainctl carrier add`
 * writes it; trackerd's migrations must have run (a replica started). */
void rt_test_tracker_account (rt_test_tracker_t *t, const char *id, const char *carrier,
                              const char *key, const char *secret, int min_interval_ms,
                              int daily_quota);

/* A parcel the shop ships, as its OrderShipped says. */
typedef struct {
    const char *shipment_id;      /* "" or NULL: trackerd makes one */
    const char *order_id;         /* */
    const char *customer_id;      /* a crm customer (a UUID) or "" */
    const char *carrier;          /* "nova_poshta" */
    const char *tracking_number;  /* */
    const char *phone;            /* the recipient's */
    const char *service;          /* DHL's */
    const char *origin_city;      /* */
    const char *destination_city; /* */
    int64_t shipped_at;           /* unix ms, 0: the envelope's time */
    int64_t promised_by;          /* unix ms, 0: none */
    const char *envelope_id;      /* NULL: a fresh one (the same id replays one event) */
} rt_test_shipped_t;

/* Publishes the OrderShipped s through the outbox. */
void rt_test_tracker_ship (rt_test_tracker_t *t, const rt_test_shipped_t *s);

/* How many events of `type` trackerd published (in bus.events) whose key
 * is `key` (NULL: any). */
long long rt_test_tracker_published (rt_test_tracker_t *t, const char *type, const char *key);

/* Waits up to timeout_ms for that count to reach want; the count. */
long long rt_test_tracker_wait_published (rt_test_tracker_t *t, const char *type, const char *key,
                                          long long want, int timeout_ms);

/* The shipment's column `col` (text) into out; "" when there is no row. */
void rt_test_tracker_col (rt_test_tracker_t *t, const char *shipment_id, const char *col, char *out,
                          size_t outlen);

/* Waits up to timeout_ms for the shipment's tag to be `tag`; true when it is. */
bool rt_test_tracker_wait_tag (rt_test_tracker_t *t, const char *shipment_id, const char *tag,
                               int timeout_ms);

/* Makes every parcel due now (next_poll_at in the past), as time would:
 * first waits (10 s at most) for the answers in flight to be recorded, so
 * a parcel claimed now is made due too. */
void rt_test_tracker_due (rt_test_tracker_t *t);

/* Waits up to timeout_ms until no parcel is under a claim (every answer
 * asked for is recorded); true when none is. */
bool rt_test_tracker_settled (rt_test_tracker_t *t, int timeout_ms);

#endif
