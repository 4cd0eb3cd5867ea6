/*
 * rt_consumer: a replica of a consumer group.
 *
 * The replicas of a group share the partitions of the streams it reads. A
 * replica owns a (stream, partition) while it holds a session advisory lock
 * on (group, stream, partition) on its PostgreSQL connection; when it dies
 * the lock goes with the connection and another replica takes over within
 * one rebalance interval. Replicas count each other through member-slot
 * advisory locks visible in pg_locks, and each keeps about its fair share
 * (partitions / replicas), releasing surplus and taking free ones.
 *
 * For each owned partition the group's offset (last handled pseq) and an
 * epoch live in bus.offsets. Taking a partition bumps its epoch; committing
 * names the epoch, so a replica that lost ownership fails the commit, rolls
 * back the handler's effects and drops the partition (fencing).
 *
 * Events come live over SUB; a pseq beyond the next expected one is a gap
 * (the subscriber dropped messages, or busd restarted), and the missing
 * events are read from bus.events; at start and on takeover the replica
 * catches up from the log the same way.
 *
 * The handler runs inside a transaction on the replica's connection that
 * also moves the offset; what the handler writes (its state, outbox events
 * through rt_outbox_append) commits with it or not at all. Live events are
 * handled in rounds: one transaction for every owned partition's events
 * received since the last round, moving all their offsets (one WAL flush per
 * round, however many partitions). Catching up from the log reads batch_max
 * events of a partition per transaction. A handler returning -1 rolls the
 * round back; the partitions go back to the log, each committing alone, and
 * only the failing one is retried after a backoff.
 */
#ifndef RT_CONSUMER_H
#define RT_CONSUMER_H

#include <stddef.h>

#include "rt_bus.h"
#include "rt_db.h"
#include "rt_metrics.h"
#include "retain/v1/envelope.pb-c.h"

typedef struct rt_consumer_t rt_consumer_t;

/* Handles one event inside the open transaction on db. 0 to go on, -1 to
 * roll the batch back and retry later. */
typedef int (*rt_consumer_handler_fn) (rt_db_t *db, const Retain__V1__Envelope *event, void *arg);

/* Handles a round's events at once inside its open transaction: every
 * owned partition's, each partition's in pseq order (partitions one after
 * another), for a handler that does set-based work (one statement over
 * many events instead of one per event). 0 to go on, -1 to roll the round
 * back: each of its partitions is then read again from the log alone, and
 * one that fails alone backs off, as with the handler. */
typedef int (*rt_consumer_batch_fn) (rt_db_t *db, const Retain__V1__Envelope *const *events,
                                     size_t nevents, void *arg);

typedef struct {
    const char *dsn;             /* PostgreSQL */
    const char *group;           /* consumer group name */
    const char *member;          /* this replica's name for logs; NULL: host:pid */
    const char *pub_endpoints;   /* busd PUB endpoints, comma-separated */
    const rt_bus_curve_t *curve; /* CURVE keys (copied); NULL: plain TCP */
    const char *const *streams;  /* streams the group reads */
    size_t nstreams;
    int batch_max;         /* events per transaction; 0: 500 */
    int rcvhwm;            /* SUB receive high-water mark; 0: ZeroMQ default */
    int rebalance_ms;      /* 0: 1000 */
    rt_metrics_t *metrics; /* lent; may be NULL */
    rt_consumer_handler_fn handler;
    void *handler_arg;
} rt_consumer_config_t;

/* Validates the configuration and creates the replica (nothing connects
 * yet). The config's strings are copied. NULL with err filled on error. */
rt_consumer_t *rt_consumer_new (const rt_consumer_config_t *config, char *err, size_t errlen);
void rt_consumer_destroy (rt_consumer_t **self_p);

/* Hands each round's events to `batch` at once, instead of to the
 * handler one by one (the handler stays the fallback of a
 * NULL batch). Call before rt_consumer_run; it takes the handler's
 * argument. */
void rt_consumer_set_batch (rt_consumer_t *self, rt_consumer_batch_fn batch);

/* Runs until a stop is requested (rt_signal). Reconnects on its own when
 * PostgreSQL goes away. Returns 0 on a clean stop, -1 on a fatal error. */
int rt_consumer_run (rt_consumer_t *self);

/* Number of partitions this replica owns now (safe from other threads). */
int rt_consumer_owned (const rt_consumer_t *self);

#endif
