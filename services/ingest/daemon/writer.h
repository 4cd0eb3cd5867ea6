/*
 * writer: makes what ingestd accepted durable, and only then says so.
 *
 * A thread of its own with its own PostgreSQL connection. Jobs (a request's
 * items, or a poller's batch) queue up; the thread takes everything queued
 * and writes it in one transaction (group commit): the raw payload for
 * audit, the (channel, inbox, external id) rows that de-duplicate, the
 * envelopes of the new items (into those rows on the direct path, whence
 * they go straight to busd's ingress; otherwise into the outbox,
 * outbox.pending, which busd moves into the log), and the cursor a poller
 * asked to store with them.
 * After COMMIT each job's callback says how many of its items were new and
 * how many were duplicates.
 *
 * No job can fail another's. Every value a round binds as PostgreSQL text
 * is checked when the job is submitted, before it can join a round: what
 * came from outside and is kept only as it came (a content type, an
 * external id, an envelope key) is stored escaped (rt_utf8_escape) when it
 * is not UTF-8 text; what cannot be stored at all refuses the job alone.
 * When a round still fails for a reason that belongs to an item (a data
 * exception, a constraint), it is split in halves, each committed as its
 * own round, until every good job is committed and the job that fails
 * alone is refused. Only a failure that belongs to no item (PostgreSQL
 * away) fails every job of the round, which is then answered 503 and
 * retried by its provider.
 */
#ifndef INGEST_WRITER_H
#define INGEST_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "rt_bus.h"
#include "rt_metrics.h"

/* The longest external id stored, in bytes after escaping: the
 * de-duplication key must fit a btree index row (2704 bytes with the
 * channel and inbox). No provider's id comes close. */
#define WRITER_EXTERNAL_ID_MAX 2000

/* The label a refused job's result carries (result->label). */
#define WRITER_REFUSED_LABEL "unstorable"

typedef struct writer_t writer_t;

/* Called on the writer's thread once the job is settled, with one of:
 *    0  committed: fresh + duplicates = the job's items.
 *   -1  not stored, for a reason that is not the job's (PostgreSQL away, out
 *       of memory, stopping): answer 503 so the provider retries.
 *    1  refused: the job can never be stored (a value PostgreSQL refuses, an
 *       over-long external id, a round that fails with this job alone). The
 *       job's result, when it has one, says why: result->status 422,
 *       result->label WRITER_REFUSED_LABEL, result->reason a sentence.
 *       Nothing of it was kept. Answer that status and reason (a provider
 *       stops retrying on a 4xx) and count it as rejected, never 503: a
 *       retry would be refused the same way, forever.
 * fresh and duplicates are 0 unless status is 0. */
typedef void (*writer_done_fn) (void *arg, int status, size_t fresh, size_t duplicates);

typedef struct {
    const ingest_inbox_t *inbox; /* lent until done */
    ingest_result_t *result;     /* the items; lent until done (the writer sets each item's
                                    event_id, and status/label/reason when it refuses) */
    const uint8_t *raw;          /* the raw payload kept for audit; lent until done */
    size_t raw_len;
    const char *raw_type;     /* its content type, any bytes (stored escaped when not text) */
    const char *cursor_name;  /* a poller's cursor to store in the same transaction, or NULL */
    const char *cursor_value; /* its new value */
    writer_done_fn done;      /* required */
    void *done_arg;
} writer_job_t;

/* The direct path to busd (writer.c's head, publisher.h). */
typedef struct {
    const char *endpoints;       /* busd's ingress endpoints, comma-separated; NULL or "":
                                    none, every envelope through the outbox */
    const rt_bus_curve_t *curve; /* CURVE keys for busd (lent; NULL: plain TCP) */
    int ack_timeout_ms;          /* longest wait for busd's ack before the outbox; <= 0:
                                    2000 */
    const char *member;          /* this process's name (ingest.publishers.member) */
} writer_bus_t;

/* Starts the thread, envelopes through the outbox. NULL on failure (err
 * filled). */
writer_t *writer_start (const char *dsn, rt_metrics_t *metrics, char *err, size_t errlen);

/* The same with the direct path when bus names endpoints (bus may be
 * NULL). NULL on failure (err filled: also a bad endpoint or key). */
writer_t *writer_start_bus (const char *dsn, rt_metrics_t *metrics, const writer_bus_t *bus,
                            char *err, size_t errlen);
/* Finishes what is queued (or fails it when PostgreSQL is gone) and stops. */
void writer_stop (writer_t **self_p);

/* Checks the job (on the caller's thread) and queues it; the job struct is
 * copied, what it points to must live until done is called (the writer
 * keeps its own escaped copies of what it escapes). Its strings are C
 * strings: the writer sees a value from outside only up to its first NUL,
 * so a caller refuses (or escapes) a value holding one before it submits. A job that fails the
 * check is queued all the same and settled with status 1 without joining
 * a round. Returns -1 (done not called) when out of memory, the queue is
 * full or the writer is stopping: answer 503. */
int writer_submit (writer_t *self, const writer_job_t *job);

/* False after a round failed for want of PostgreSQL, with the reason in
 * why (may be NULL); true before any round and once a round (or the
 * writer's own check, once a second while idle) reaches it again.
 * Thread-safe: for /readyz. */
bool writer_db_ok (writer_t *self, char *why, size_t whylen);

/* Submits and waits for the outcome (for pollers, which run on their own
 * threads). Returns the status done would have had: 0 committed, 1
 * refused (never retry it; the result says why), -1 not stored (retry
 * later); fresh/duplicates may be NULL. */
int writer_submit_wait (writer_t *self, const writer_job_t *job, size_t *fresh, size_t *duplicates);

#endif
