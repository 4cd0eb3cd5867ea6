/*
 * consumer_int: what the files of rt_consumer share, and nothing else
 * includes (callers see rt_consumer.h only).
 *
 * The replica is split by concern, each file with its own statements:
 *   rt_consumer.c       new, destroy, the run loop
 *   consumer_owner.c    partitions, member slots, claim, release, rebalance
 *   consumer_offsets.c  the one commit path: a round, its offsets, backoff
 *   consumer_live.c     the SUB socket, pseq gaps, live rounds
 *   consumer_catchup.c  reading a partition's log
 *
 * Per (stream, partition) of the group's streams the replica keeps whether
 * it owns it, the epoch it was granted, the offset it committed, and the
 * live events waiting to be handled. Invariant: for an owned partition not
 * in catch-up, `pending` holds exactly the events offset+1 .. offset+n in
 * order; anything else that arrives live (an old event, a jump) either is
 * dropped or switches the partition to catch-up, which reads the log.
 *
 * All PostgreSQL work happens on one connection: the advisory locks that
 * grant ownership are session locks on it, and the handler's transactions
 * run on it, so losing the connection loses ownership and any open
 * transaction together. Every statement is prepared: registered with rt_db
 * once (rt_consumer.c says when), then prepared on each (re)connection.
 */
#ifndef CONSUMER_INT_H
#define CONSUMER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_consumer.h"
#include "rt_db.h"
#include "rt_buf.h"
#include "rt_metrics.h"
#include "retain/v1/envelope.pb-c.h"

/* One (stream, partition) of the group's streams. */
typedef struct {
    const char *stream;             /* stream name (the consumer's copy) */
    uint32_t partition;             /* partition number */
    int32_t key2;                   /* second advisory lock key */
    bool owned;                     /* we hold its lock */
    int64_t epoch;                  /* epoch granted at takeover */
    uint64_t offset;                /* last committed pseq */
    uint64_t head;                  /* last pseq in the log, as last seen */
    uint64_t head_before;           /* log head at the previous rebalance */
    bool live;                      /* a live event came since the previous rebalance */
    bool catchup;                   /* read from the log before live events */
    int failures;                   /* consecutive failed rounds */
    int64_t retry_at_ms;            /* no attempt before this (backoff) */
    Retain__V1__Envelope **pending; /* live events offset+1 .. offset+npending */
    size_t npending;                /* their count */
    size_t cap;                     /* allocated */
} consumer_part_t;

/* One partition's share of a round: the events the handler runs over, in
 * pseq order, and whether the offsets move found its epoch moved. */
typedef struct {
    consumer_part_t *part;                     /* the partition */
    const Retain__V1__Envelope *const *events; /* its events (lent) */
    size_t nevents;                            /* their count, at least 1 */
    bool fenced;                               /* another replica owns it now */
} consumer_slice_t;

/* How a round ended; what the replica did about it is already done. */
typedef enum {
    CONSUMER_COMMITTED, /* effects and every offset committed together */
    CONSUMER_RETRY,     /* rolled back; the failing partition backs off, or,
                           when the failure names none, every partition of
                           the round goes to the log to commit alone */
    CONSUMER_FENCED,    /* rolled back; the fenced partitions released, the
                           others keep their events for the next round */
    CONSUMER_LOST,      /* the connection is gone: a new session starts over */
} consumer_outcome_t;

struct rt_consumer_t {
    char *dsn;                                 /* PostgreSQL */
    char *group;                               /* group name */
    char *member;                              /* replica name */
    char *pub_endpoints;                       /* busd PUB endpoints */
    rt_bus_curve_t curve;                      /* CURVE keys; no server key: plain TCP */
    char **streams;                            /* streams read */
    size_t nstreams;                           /* their count */
    rt_buf_t streams_array;                    /* the streams as a PostgreSQL array literal */
    int batch_max;                             /* events per catch-up round */
    int rcvhwm;                                /* SUB high-water mark */
    int rebalance_ms;                          /* rebalance interval */
    rt_consumer_handler_fn handler;            /* the group's handler */
    rt_consumer_batch_fn batch;                /* its set-based form, NULL for none */
    const Retain__V1__Envelope **batch_events; /* a round's events for it */
    size_t batch_cap;                          /* allocated entries */
    void *handler_arg;                         /* its argument */
    rt_db_t *db;                               /* the replica's one connection */
    bool prepared;                             /* statements registered with db */
    uint64_t db_generation;                    /* session the state below belongs to */
    void *ctx;                                 /* ZeroMQ context */
    void *sub;                                 /* SUB socket */
    consumer_part_t *parts;                    /* every partition of the streams */
    size_t nparts;                             /* their count */
    consumer_slice_t *slices;                  /* a live round's slices, nparts of them */
    rt_buf_t move[4];                          /* the offsets move's arrays: streams,
                                                  partitions, epochs, pseqs (reused) */
    int32_t key_parts;                         /* first lock key of partition locks */
    int32_t key_members;                       /* first lock key of member slots */
    int member_slot;                           /* our member slot, -1 none */
    atomic_int owned;                          /* partitions owned now */
    int64_t next_rebalance_ms;                 /* when to rebalance next */
    rt_counter_t *m_events;                    /* events handled */
    rt_counter_t *m_gaps;                      /* gaps recovered from the log */
    rt_counter_t *m_failures;                  /* rounds rolled back by a failure */
    rt_counter_t *m_fenced;                    /* commits refused by fencing */
    rt_gauge_t *m_owned;                       /* partitions owned */
    rt_gauge_t *m_lag;                         /* events behind the log, owned partitions */
};

/* consumer_owner.c: ownership. */

/* Registers the ownership statements. 0, or -1 out of memory. */
int consumer_owner_prepare (rt_consumer_t *self);
/* The first advisory lock key of a family ("retain.consumer.parts:") for
 * a group: non-negative, stable across replicas. */
int32_t consumer_lock_key (const char *family, const char *group);
/* A new PostgreSQL session: forgets every partition, loads the partitions
 * (first session), makes the group's offset rows and takes a member slot.
 * 0, or -1 (the session cannot be used; the caller reconnects). */
int consumer_join (rt_consumer_t *self);
/* Keeps this replica at its fair share of partitions, then checks the log
 * heads (consumer_heads_check). 0, or -1 on a database failure. */
int consumer_rebalance (rt_consumer_t *self);
/* Gives a partition up: its lock, its pending events, its subscription. */
void consumer_release (rt_consumer_t *self, consumer_part_t *part);
/* Publishes the owned count (rt_consumer_owned, the gauge) and the lag. */
void consumer_gauges_update (rt_consumer_t *self);

/* consumer_offsets.c: the one commit path. */

/* Registers the offsets statements. 0, or -1 out of memory. */
int consumer_offsets_prepare (rt_consumer_t *self);
/* Makes the group's offset rows for every partition of its streams (kept
 * when they exist). 0, or -1. */
int consumer_offsets_create (rt_consumer_t *self);
/* Runs one round: begin, the handler over each slice's events in order,
 * every slice's offset moved under its epoch, commit; on failure does what
 * the outcome says. A catch-up batch is a round of one slice. */
consumer_outcome_t consumer_round (rt_consumer_t *self, consumer_slice_t *slices, size_t n);
/* A round failed for this partition: count it, log it with `event` (the
 * one that failed), send the partition to the log after a growing delay,
 * and drop its pending events (last: `event` may be one of them). */
void consumer_backoff (rt_consumer_t *self, consumer_part_t *part,
                       const Retain__V1__Envelope *event, const char *why);

/* consumer_live.c: live delivery. */

/* Registers the live statements. 0, or -1 out of memory. */
int consumer_live_prepare (rt_consumer_t *self);
/* Creates the SUB socket and connects it to every PUB endpoint (nothing is
 * subscribed until a partition is taken). 0, or -1 with err filled. */
int consumer_subscribe (rt_consumer_t *self, char *err, size_t errlen);
/* Starts and stops receiving a partition's live events. */
void consumer_follow (rt_consumer_t *self, const consumer_part_t *part);
void consumer_unfollow (rt_consumer_t *self, const consumer_part_t *part);
/* Moves live events off the SUB socket into their partitions' pending
 * lists, switching a partition to catch-up where one is missing. */
void consumer_drain (rt_consumer_t *self);
/* Reads the log heads and sends to catch-up an owned partition whose tail
 * live delivery missed. 0, or -1 on a database failure. */
int consumer_heads_check (rt_consumer_t *self);
/* Handles every owned partition's pending events in rounds until each has
 * committed, backed off or gone to the log. 0, or -1 connection lost. */
int consumer_live_round (rt_consumer_t *self);
/* Frees a partition's pending events. */
void consumer_drop_pending (consumer_part_t *part);

/* consumer_catchup.c: the log. */

/* Registers the log statement. 0, or -1 out of memory. */
int consumer_catchup_prepare (rt_consumer_t *self);
/* Handles a partition's events from the log, batch_max per round, for a
 * bounded number of rounds; clears `catchup` when it reaches the head.
 * 0, or -1 when the database failed (the caller checks the connection). */
int consumer_catch_up (rt_consumer_t *self, consumer_part_t *part);

#endif
