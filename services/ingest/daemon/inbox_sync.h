/*
 * inbox_sync: ingestd kept in step with its inboxes.
 *
 * After each inbox load that changed something, ingestd says where every
 * inbox is reached (one "inbox webhook" line with the address its
 * provider must call, or "inbox polled") and makes its IMAP pollers match
 * the e-mail inboxes that are polled rather than called: a poller starts
 * for a new one, restarts for one whose configuration or secret changed,
 * and stops for one removed or disabled.
 *
 * Runs on ingestd's main thread only; the pollers run on threads of their
 * own (imap.h).
 */
#ifndef INGEST_INBOX_SYNC_H
#define INGEST_INBOX_SYNC_H

#include "inboxes.h"
#include "rt_metrics.h"
#include "writer.h"

typedef struct inbox_sync_t inbox_sync_t;

/* Follows `inboxes`, handing polled messages to `writer`; `dsn` is the
 * pollers' for their cursors, `public_url` the base of the addresses
 * announced. Everything is lent and must outlive the object. NULL when out
 * of memory. */
inbox_sync_t *inbox_sync_new (inboxes_t *inboxes, writer_t *writer, const char *dsn,
                              rt_metrics_t *metrics, const char *public_url);

/* Announces every inbox of the current snapshot and starts, restarts and
 * stops pollers to match it. */
void inbox_sync_apply (inbox_sync_t *self);

/* Stops every poller and frees the object; safe on NULL. */
void inbox_sync_destroy (inbox_sync_t **self_p);

#endif
