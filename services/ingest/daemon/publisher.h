/*
 * publisher: the writer's direct path to busd's ingress, with the outbox
 * behind it.
 *
 * The writer commits a round (the de-duplication rows now hold the new
 * items' envelopes), answers its webhooks, and hands the round's new
 * envelopes here. A thread of its own posts them to busd with rt_producer
 * (a window of them unacknowledged at once) and counts busd's acks, which
 * busd sends after its own commit. What busd has not acknowledged within
 * the ack timeout (busd away, killed, slow), or refused, is moved from the
 * rows to outbox.pending in one statement, where busd's drain takes it:
 * nothing waits on busd for longer than that bound.
 *
 * What is acknowledged is remembered as a watermark, persisted in
 * ingest.publishers every few hundred milliseconds: every envelope with an
 * event id before it is in the log or in the outbox. A writer that dies is
 * found by the next one to look (its row's advisory lock is free) and
 * every envelope from its watermark on is moved to the outbox; busd
 * de-duplicates by envelope id, so those that had made it are no second
 * event. writer.c's head says why this costs least.
 *
 * Without busd endpoints the publisher only does the last part (recovery
 * of dead writers' rows, at start and every few seconds) and the writer
 * appends to the outbox in its round as before.
 */
#ifndef INGEST_PUBLISHER_H
#define INGEST_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "rt_bus.h"
#include "rt_db.h"
#include "rt_metrics.h"

typedef struct publisher_t publisher_t;

typedef struct {
    const char *dsn;             /* PostgreSQL, for the publisher's own connection */
    const char *endpoints;       /* busd's ingress endpoints, comma-separated; NULL or "":
                                    none, the outbox alone */
    const rt_bus_curve_t *curve; /* CURVE keys for busd (lent; NULL: plain TCP) */
    int ack_timeout_ms;          /* longest wait for busd's ack before the outbox; <= 0: 2000 */
    const char *member;          /* this process, as ingest.publishers names it */
    rt_metrics_t *metrics;       /* lent; may be NULL */
} publisher_config_t;

/* Starts the thread (and connects the producer when endpoints are given).
 * NULL with err filled on a bad endpoint or key, or out of memory. */
publisher_t *publisher_start (const publisher_config_t *config, char *err, size_t errlen);

/* Waits up to the ack timeout for what is in flight, moves the rest to
 * the outbox, persists the watermark and stops. Call after the writer's
 * rounds have ended. */
void publisher_stop (publisher_t **self_p);

/* True when envelopes go to busd directly (endpoints were given). */
bool publisher_direct (const publisher_t *self);

/* The writer's side, on the writer's thread. */

/* The writer connection's rt_db_on_connect hook (arg: the publisher): in
 * direct mode, makes this writer's row in ingest.publishers on the first
 * connection and holds its advisory lock on every one. 0, or -1. */
int publisher_claim (rt_db_t *db, void *arg);

/* A round is about to make event ids: until publisher_round_end, the
 * watermark stays before every id it makes. */
void publisher_round_begin (publisher_t *self);

/* After COMMIT: the round's new envelopes, ids[i] (text UUIDs) and
 * packed[i], in the order of their ids; both copied. When memory runs
 * out they are not lost: the publisher moves every envelope from the
 * round's start on to the outbox instead. */
void publisher_hand (publisher_t *self, const char *const *ids, const ProtobufCBinaryData *packed,
                     size_t n);

/* The round is over. uncertain: a COMMIT failed without saying whether it
 * took effect, so rows of the round may exist that were never handed;
 * every envelope from the round's start on is moved to the outbox. */
void publisher_round_end (publisher_t *self, bool uncertain);

#endif
