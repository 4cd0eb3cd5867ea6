/*
 * routerd: the parts of retain-routerd main.c puts together.
 *
 * The consumer handler (handler.c) takes every event of the group
 * "router" (streams message, order, shipment, loyalty, customer) to
 * identity, routing and the customer card (card.h)
 * inside the consumer's round, so a round that rolls back, or a replica
 * killed half-way, leaves nothing half-done and a replay changes nothing
 * (routing's timeline is idempotent by envelope id). The timer (timer.c)
 * runs routing_tick every tick on a connection of its own and refreshes
 * the conversation gauges every few seconds, so a scrape of /metrics
 * costs PostgreSQL nothing.
 */
#ifndef ROUTERD_H
#define ROUTERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routing.h"
#include "rt_consumer.h"
#include "rt_db.h"
#include "rt_metrics.h"
#include "retain/v1/envelope.pb-c.h"

/* The producer name retain-routerd's own events carry (identity and
 * routing write it): a CustomerUpserted with it is an echo of an operator's
 * edit, not news from the shop. */
#define ROUTERD_PRODUCER "retain-routerd"

#define HANDLER_SUSPECTS 16

/* The consumer handler's state. */
typedef struct {
    rt_metrics_t *metrics;       /* lent: the daemon's registry */
    const char *default_country; /* ISO 3166 code national numbers are read in (lent) */
    rt_db_t *prepared;           /* the handle the statements were registered with */
    bool fatal;                  /* they could not be: the daemon stops, exit 1 */
    /* Events PostgreSQL refused as data (SQLSTATE class 22 or 23) when
     * taken alone: one refused so a second time, in another transaction,
     * is passed over (handler.c, s_inbound_run). */
    char suspects[HANDLER_SUSPECTS][40];
    size_t nsuspects;
} handler_t;

/* Readies the handler (nothing connects). */
void handler_init (handler_t *self, rt_metrics_t *metrics, const char *default_country);

/* The rt_consumer_handler_fn: one event inside the round's transaction.
 * An event that cannot be taken (unreadable, refused by identity or
 * routing) is logged, counted and passed over (0): retrying it would fail
 * the same way. -1 only for PostgreSQL failing, which rolls the round
 * back. */
int handler_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg);

/* The rt_consumer_batch_fn: a partition's events of a round, in order;
 * runs of InboundMessages are taken together (routing_inbound_many), the
 * rest one by one as handler_handle takes them. */
int handler_batch (rt_db_t *db, const Retain__V1__Envelope *const *events, size_t n, void *arg);

typedef struct routerd_timer_t routerd_timer_t;

/* What the timer does, and how often. */
typedef struct {
    const char *dsn;       /* PostgreSQL (copied) */
    routing_config_t cfg;  /* handed to routing_tick */
    int64_t tick_ms;       /* between two routing_tick */
    int64_t gauges_ms;     /* between two gauge refreshes */
    rt_metrics_t *metrics; /* lent: the daemon's registry */
} routerd_timer_config_t;

/* Starts the timer's thread. NULL with the reason in err. */
routerd_timer_t *routerd_timer_start (const routerd_timer_config_t *config, char *err,
                                      size_t errlen);

/* Stops the thread (after the tick in hand) and frees it; NULL is fine. */
void routerd_timer_stop (routerd_timer_t **self_p);

#endif
