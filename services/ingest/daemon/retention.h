/*
 * retention: how long ingestd keeps what it took in.
 *
 * ingest.messages (one de-duplication row per item, with its envelope
 * when it went by the direct path) and ingest.raw (every request as the
 * provider sent it, for audit and for the IMAP attachments it holds) grow
 * with every webhook. Rows received before now less --keep are deleted,
 * once an hour by ingestd's clock (rt_clock: a moved test clock moves
 * it), in short transactions of RETENTION_BATCH rows, so a large backlog
 * never holds locks or the main loop for long: a tick deletes a few
 * batches and the next tick goes on.
 *
 * Safe by construction: --keep is at least a week, far beyond any
 * provider's retries (Telegram retries a day, Meta up to 36 hours, Twilio
 * minutes), the direct path's acknowledgement timeout and a dead writer's
 * recovery (seconds); an envelope older than that is in the log or in
 * the outbox.
 */
#ifndef INGEST_RETENTION_H
#define INGEST_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_metrics.h"

typedef struct retention_t retention_t;

/* The shortest --keep accepted: a week. */
#define RETENTION_KEEP_MIN_MS (7LL * 86400000)

/* A retention for dsn keeping keep_ms (>= RETENTION_KEEP_MIN_MS); its
 * connection is made at the first tick. metrics lent, may be NULL. NULL
 * when out of memory. */
retention_t *retention_new (const char *dsn, int64_t keep_ms, rt_metrics_t *metrics);
void retention_destroy (retention_t **self_p);

/* Called from ingestd's main loop (every second): deletes a few batches
 * when a run is due or under way. Returns the rows deleted; -1 when
 * PostgreSQL failed (logged; tried again at the next tick). */
long long retention_tick (retention_t *self);

/* For readiness, from any thread: false with the reason in why when a
 * tick has waited on PostgreSQL for more than stall_ms (it holds up the
 * loop the inboxes' refresh runs on, so that refresh cannot say so). */
bool retention_db_ok (retention_t *self, int64_t stall_ms, char *why, size_t whylen);

#endif
