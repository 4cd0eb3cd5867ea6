/*
 * retain-busd: the single writer of the event log.
 *
 * One thread runs the loop: read what producers sent (ROUTER) and what
 * services left in the outbox, write it as one transaction, and only after
 * COMMIT acknowledge the producers and publish (PUB). While a batch
 * commits, new envelopes wait in ZeroMQ's queues, so batches grow with the
 * load and latency stays at one commit when the load is light.
 *
 * Only the holder of the writer advisory lock binds the sockets; a second
 * busd waits as a standby and takes over when the lock is free.
 */
#ifndef BUSD_H
#define BUSD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_db.h"
#include "rt_metrics.h"
#include "rt_uuid.h"
#include "retain/v1/envelope.pb-c.h"

#define BUSD_IDENTITY_MAX 256

/* Where an item came from decides how it is answered. */
typedef enum { ITEM_INGRESS = 0, ITEM_OUTBOX } item_origin_t;

/* One envelope on its way into the log. */
typedef struct {
    Retain__V1__Envelope *env;           /* unpacked, owned (protobuf_c free_unpacked) */
    rt_uuid_t uuid;                      /* env->id parsed */
    item_origin_t origin;                /* ingress or outbox */
    uint8_t identity[BUSD_IDENTITY_MAX]; /* ROUTER identity of the producer */
    size_t identity_len;                 /* its length */
    bool delimiter;                      /* the producer is a REQ socket: echo the empty frame */
    int64_t outbox_id;                   /* outbox.pending id, for ITEM_OUTBOX */
    int stream_index;                    /* index into the stream table */
    long dup_of;                         /* earlier item of the same batch with this id, or -1 */
    /* Filled by the writer: */
    int status;         /* RETAIN__V1__ACK__STATUS__OK, __DUPLICATE or __REJECTED */
    char *error;        /* why it was REJECTED (owned), or NULL */
    bool settled;       /* acked and published already (during an isolation) */
    uint64_t seq;       /* global position */
    uint32_t partition; /* partition of the key */
    uint64_t pseq;      /* position within the partition */
} busd_item_t;

/* A stream's partitions and their last pseq, mirrored from bus.counters. */
typedef struct {
    char name[32];       /* stream name */
    uint32_t partitions; /* partition count from bus.streams */
    uint64_t *pseq;      /* last pseq per partition */
    uint64_t *pseq_next; /* tentative values while a batch is written */
    bool *touched;       /* partitions the batch in hand appends to */
} busd_stream_t;

/* The metrics busd exposes. */
typedef struct {
    rt_counter_t *appended;         /* events appended */
    rt_counter_t *duplicates;       /* envelopes answered DUPLICATE */
    rt_counter_t *outbox_drained;   /* events moved from the outbox */
    rt_counter_t *outbox_rejected;  /* outbox rows set aside */
    rt_counter_t *acks_undelivered; /* acks the producer was gone for */
    rt_counter_t *db_errors;        /* failed batch transactions */
    rt_counter_t *batches;          /* committed batches */
    rt_histogram_t *batch_size;     /* events per batch */
    rt_histogram_t *commit_seconds; /* time to write and commit a batch */
    rt_gauge_t *primary;            /* 1 while this busd is the writer */
    rt_gauge_t *seq;                /* last global seq */
} busd_metrics_t;

/* The daemon's one context, owned by main (services/bus/busd.c makes and
 * releases it). */
typedef struct {
    /* settings */
    const char *ingress_endpoint; /* ROUTER bind */
    const char *pub_endpoint;     /* PUB bind */
    int64_t max_message;          /* bytes */
    int batch_max;                /* envelopes per transaction */
    int pub_hwm;                  /* PUB's high-water mark per subscriber */
    int64_t retention_ms;         /* how long events are kept */
    int64_t outbox_poll_ms;       /* outbox polling fallback */
    int64_t housekeeping_ms;      /* interval of partition creation, retention, id pruning */
    const char *curve_secret;     /* busd's z85 CURVE secret key, "" for plain TCP */
    const char *curve_clients;    /* file of admitted client public keys */
    /* state */
    rt_db_t *db;                      /* the writer connection (holds the lock) */
    void *zmq_ctx;                    /* ZeroMQ context */
    void *router;                     /* ingress socket, NULL while standby */
    void *pub;                        /* fan-out socket, NULL while standby */
    void *zap;                        /* ZAP handler socket, NULL without CURVE */
    uint8_t (*curve_keys)[32];        /* admitted client public keys */
    size_t ncurve_keys;               /* their count */
    busd_stream_t *streams;           /* indexed like rt_bus_streams */
    size_t nstreams;                  /* their count */
    uint64_t seq;                     /* last committed global seq */
    busd_item_t *items;               /* the batch in hand */
    size_t nitems;                    /* items in the batch */
    size_t items_cap;                 /* allocated */
    bool outbox_due;                  /* drain the outbox with the next batch */
    int64_t last_outbox_ms;           /* when it was last drained */
    bool housekeeping_due;            /* run it before the next batch (set at takeover) */
    int64_t last_housekeeping_ms;     /* monotonic time of the last run */
    int64_t housekeeping_day;         /* UTC day (busd's clock) of the last run */
    int64_t covered_from_ms;          /* ids from here ... */
    int64_t covered_to_ms;            /* ... to here have a partition; both 0: not known */
    _Atomic int64_t failing_since_ms; /* monotonic ms since a batch waits for its commit, 0 none */
    pthread_mutex_t why_lock;         /* guards why_failing */
    char why_failing[256];            /* the last commit error, for /readyz */
    atomic_int role;                  /* BUSD_STANDBY or BUSD_PRIMARY, read by /readyz */
    busd_metrics_t m;                 /* metrics */
    rt_metrics_t *metrics;            /* the registry */
} busd_t;

enum { BUSD_STANDBY = 0, BUSD_PRIMARY = 1 };

/* busd.c: registers the metrics (in `metrics`, lent) and makes the stream
 * table; -1 when out of memory. */
int busd_init (busd_t *self, rt_metrics_t *metrics);
/* Releases everything the context holds; safe on what was never made. */
void busd_release (busd_t *self);

/* run.c: standby until the writer lock is ours, then the writer's loop,
 * and again after losing PostgreSQL, until a stop; returns once the batch
 * in hand is committed (0). self->db must carry the writer's statements. */
int run_loop (busd_t *self);
/* /readyz: ready while this busd is the writer and commits go through
 * (rt_admin_ready_fn; arg is the busd_t). */
bool run_ready (void *arg, char *why, size_t whylen);
/* Closes the ingress and PUB sockets, letting the last acks out. */
void run_sockets_close (busd_t *self);

/* ingress.c: reads envelopes from the ROUTER socket into self->items,
 * answering REJECTED at once for bad ones. Returns how many were added. */
int ingress_read (busd_t *self);
/* Sends the ack of a committed (or duplicate) ingress item. */
void ingress_ack (busd_t *self, const busd_item_t *item);
/* Validates a serialized envelope; on success returns the unpacked
 * envelope (owned) and its stream index, else NULL with the reason and the
 * metric label of the reason. */
Retain__V1__Envelope *ingress_parse (busd_t *self, const uint8_t *data, size_t len, rt_uuid_t *uuid,
                                     int *stream_index, char *why, size_t whylen,
                                     const char **reason);
/* Frees the items' envelopes and empties the batch. */
void items_clear (busd_t *self);

/* writer.c: loads counters and seq from bus.counters and bus.state. */
int writer_load (busd_t *self);
/* Writes the batch in hand (draining the outbox into it when due) as one
 * transaction. When the log refuses the batch for something in its data
 * (not the database being away), the batch is split until every item that
 * can be is committed and each item that fails alone is answered REJECTED
 * (an outbox row set aside in outbox.rejected); items settled that way
 * leave the batch. 0 when everything in hand is settled or committed (items
 * carry their positions), -1 when it failed for a reason of no item's
 * (what is left is uncommitted; counters unchanged). */
int writer_commit (busd_t *self);
/* Settles items [lo, hi): acknowledges ingress producers and publishes the
 * committed events on PUB; each item once. */
void writer_settle (busd_t *self, size_t lo, size_t hi);
/* Prepares the writer's statements on self->db. */
int writer_prepare (busd_t *self);

/* retention.c: creates the partitions every accepted id needs, drops
 * expired ones, and reads which days are covered (covered_from/to_ms). */
void retention_run (busd_t *self);

/* zap.c: CURVE and the ZAP handler admitting listed client keys. */
int zap_start (busd_t *self, char *err, size_t errlen);
void zap_handle (busd_t *self);
int zap_apply_server (busd_t *self, void *socket, char *err, size_t errlen);
void zap_stop (busd_t *self);

#endif
