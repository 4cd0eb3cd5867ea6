/*
 * inboxes: the configured inboxes, as an immutable snapshot that request
 * threads share.
 *
 * Each inbox has a kind from common/channel's table, read from its channel
 * and provider columns; a row whose pair the table lacks is skipped (and
 * logged), so a request never meets an inbox ingestd cannot read.
 *
 * The control thread reloads ingest.inboxes when it changed and swaps the
 * snapshot in; a request takes a reference to the current snapshot, looks
 * its inbox up and lets go when it is answered, so a reload never frees an
 * inbox a request is still using.
 *
 * The reload runs every second, so it is also ingestd's view of whether
 * PostgreSQL can be reached: inboxes_db_ok tells the readiness check.
 */
#ifndef INGEST_INBOXES_H
#define INGEST_INBOXES_H

#include <stdbool.h>
#include <stddef.h>

#include "channel.h"
#include "rt_channel.h"

typedef struct inboxes_t inboxes_t;
typedef struct inboxes_snapshot_t inboxes_snapshot_t;

inboxes_t *inboxes_new (const char *dsn);
void inboxes_destroy (inboxes_t **self_p);

/* Reloads when ingest.inboxes changed. 1 reloaded, 0 unchanged, -1 when
 * PostgreSQL could not be read (the previous snapshot stays). */
int inboxes_refresh (inboxes_t *self);

/* How long a refresh (or anything else on ingestd's loop) may wait for
 * PostgreSQL before readiness says it is unreachable: a healthy round
 * trip takes milliseconds. */
#define INBOXES_STALL_MS 5000

/* Whether PostgreSQL answered the last refresh: true before the first one
 * and after one that read ingest.inboxes; false after one that failed, or
 * while one has waited for an answer for more than a few seconds, with the
 * reason in why ("PostgreSQL unreachable: ..."). Thread-safe: the admin
 * thread asks while the control thread refreshes. */
bool inboxes_db_ok (inboxes_t *self, char *why, size_t whylen);

/* True once a snapshot was loaded. */
int inboxes_loaded (inboxes_t *self);

/* The current snapshot with a reference taken (never NULL after the first
 * load; an empty snapshot before). Release it when done. Thread-safe. */
inboxes_snapshot_t *inboxes_acquire (inboxes_t *self);
void inboxes_release (inboxes_snapshot_t *snapshot);

/* An enabled inbox by id, NULL when unknown or disabled (lent with the
 * snapshot). */
const ingest_inbox_t *inboxes_find (const inboxes_snapshot_t *snapshot, const char *id);

/* All enabled inboxes (lent with the snapshot). */
size_t inboxes_count (const inboxes_snapshot_t *snapshot);
const ingest_inbox_t *inboxes_at (const inboxes_snapshot_t *snapshot, size_t i);

/* The kind (channel and provider) of an inbox this module lent (from
 * inboxes_find or inboxes_at; never NULL for those): which route its
 * webhooks arrive at, or none for a polled mailbox. */
const rt_channel_kind_t *inboxes_kind (const ingest_inbox_t *inbox);

#endif
