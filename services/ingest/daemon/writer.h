/*
 * writer: makes what ingestd accepted durable, and only then says so.
 *
 * A thread of its own with its own PostgreSQL connection. Jobs (a request's
 * items, or a poller's batch) queue up; the thread takes everything queued
 * and writes it in one transaction (group commit): the raw payload for
 * audit, the (channel, inbox, external id) rows that de-duplicate, the
 * envelopes of the new items into bus.outbox (busd moves them into the
 * log), and the cursor a poller asked to store with them. After COMMIT
 * each job's callback says how many of its items were new and how many
 * were duplicates; if the transaction fails, every job in it is told so
 * (the webhook answers 503 and the provider retries; nothing was kept).
 */
#ifndef INGEST_WRITER_H
#define INGEST_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "rt_metrics.h"

typedef struct writer_t writer_t;

/* Called on the writer's thread once the job is settled: status 0 when
 * committed (fresh + duplicates = the job's items), -1 when not. */
typedef void (*writer_done_fn) (void *arg, int status, size_t fresh, size_t duplicates);

typedef struct {
    const ingest_inbox_t *inbox; /* lent until done */
    ingest_result_t *result;     /* the items; lent until done */
    const uint8_t *raw;          /* the raw payload kept for audit; lent until done */
    size_t raw_len;
    const char *raw_type;     /* its content type */
    const char *cursor_name;  /* a poller's cursor to store in the same transaction, or NULL */
    const char *cursor_value; /* its new value */
    writer_done_fn done;      /* required */
    void *done_arg;
} writer_job_t;

/* Starts the thread. NULL on failure (err filled). */
writer_t *writer_start (const char *dsn, rt_metrics_t *metrics, char *err, size_t errlen);
/* Finishes what is queued (or fails it when PostgreSQL is gone) and stops. */
void writer_stop (writer_t **self_p);

/* Queues a job; the job struct is copied, what it points to must live until
 * done is called. Returns -1 (done not called) when the queue is full or the
 * writer is stopping: answer 503. */
int writer_submit (writer_t *self, const writer_job_t *job);

/* Submits and waits for the outcome (for pollers, which run on their own
 * threads). Returns 0 when committed, -1 otherwise; fresh/duplicates may be
 * NULL. */
int writer_submit_wait (writer_t *self, const writer_job_t *job, size_t *fresh, size_t *duplicates);

#endif
