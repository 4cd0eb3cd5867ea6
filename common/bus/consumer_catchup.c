/*
 * consumer_catchup: a partition's events read from the log (bus.events).
 *
 * A partition reads its log when it was just taken, after a gap in live
 * events, and after a failed round (once its backoff, if any, is over).
 * Each batch is batch_max events after the committed offset, handled as a
 * round of one partition (consumer_offsets.c), so a failure rolls back one
 * batch and the next attempt reads the same events again. A partition
 * reads at most S_CATCHUP_BATCHES batches per turn of the run loop, so a
 * long log does not starve rebalancing, live events or the other
 * partitions; a batch shorter than batch_max means the head is reached
 * and live events count again (those that came meanwhile were dropped,
 * and their pseq is above the offset, so the next live one either follows
 * or shows a gap).
 *
 * Results come in binary: the envelopes borrow the result's bytes for the
 * length of the round, with nothing copied.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "consumer_int.h"
#include "rt_log.h"

/* Batches per partition per turn of the run loop. */
#define S_CATCHUP_BATCHES 8

static const char *s_sql_read =
    "SELECT seq, partition, pseq, id::text, type, key, occurred_at, producer, "
    "correlation_id, payload, stream FROM bus.events WHERE stream = $1 AND "
    "partition = $2::int AND pseq > $3::bigint ORDER BY pseq LIMIT $4::int";

int
consumer_catchup_prepare (rt_consumer_t *self)
{
    return rt_db_prepare (self->db, "rt_consumer_read", s_sql_read);
}

static uint64_t
s_be64 (const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

static uint32_t
s_be32 (const char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

/* Reads up to batch_max events after the partition's offset. NULL when the
 * statement failed. */
static PGresult *
s_read (rt_consumer_t *self, const consumer_part_t *part)
{
    char partition[16], offset[24], limit[16];
    const char *params[4] = {part->stream, partition, offset, limit};
    snprintf (partition, sizeof partition, "%u", part->partition);
    snprintf (offset, sizeof offset, "%" PRIu64, part->offset);
    snprintf (limit, sizeof limit, "%d", self->batch_max);
    return rt_db_exec_prepared (self->db, "rt_consumer_read", 4, params, NULL, NULL, 1);
}

/* Fills envelope r from row r; the envelope borrows the row's bytes. */
static void
s_envelope (const PGresult *res, int r, Retain__V1__Envelope *e)
{
    retain__v1__envelope__init (e);
    /* Binary results: text columns are their bytes, NUL-terminated by
     * libpq. */
    e->seq = s_be64 (PQgetvalue (res, r, 0));
    e->partition = s_be32 (PQgetvalue (res, r, 1));
    e->pseq = s_be64 (PQgetvalue (res, r, 2));
    e->id = PQgetvalue (res, r, 3);
    e->type = PQgetvalue (res, r, 4);
    e->key = PQgetvalue (res, r, 5);
    e->occurred_at = (int64_t)s_be64 (PQgetvalue (res, r, 6));
    e->producer = PQgetvalue (res, r, 7);
    e->correlation_id = PQgetvalue (res, r, 8);
    e->payload.data = (uint8_t *)PQgetvalue (res, r, 9);
    e->payload.len = (size_t)PQgetlength (res, r, 9);
    e->stream = PQgetvalue (res, r, 10);
}

int
consumer_catch_up (rt_consumer_t *self, consumer_part_t *part)
{
    int batches;
    consumer_drop_pending (part);
    for (batches = 0; batches < S_CATCHUP_BATCHES; batches++) {
        Retain__V1__Envelope *envs = NULL;
        const Retain__V1__Envelope **ptrs = NULL;
        consumer_slice_t slice;
        consumer_outcome_t outcome;
        PGresult *res;
        int r, n;

        res = s_read (self, part);
        if (!res)
            return -1;
        n = PQntuples (res);
        if (n == 0) {
            PQclear (res);
            part->catchup = false;
            return 0;
        }
        envs = calloc ((size_t)n, sizeof *envs);
        ptrs = calloc ((size_t)n, sizeof *ptrs);
        if (!envs || !ptrs) {
            free (envs);
            free (ptrs);
            PQclear (res);
            return -1;
        }
        for (r = 0; r < n; r++) {
            s_envelope (res, r, &envs[r]);
            ptrs[r] = &envs[r];
        }
        if (envs[0].pseq != part->offset + 1 && part->offset > 0)
            rt_log (RT_LOG_WARN, "log starts after the group's offset (retention?)",
                    rt_log_str ("group", self->group), rt_log_str ("stream", part->stream),
                    rt_log_uint ("partition", part->partition),
                    rt_log_uint ("offset", part->offset), rt_log_uint ("first", envs[0].pseq));
        slice = (consumer_slice_t){part, ptrs, (size_t)n, false};
        outcome = consumer_round (self, &slice, 1);
        free (ptrs);
        free (envs);
        PQclear (res);
        if (outcome == CONSUMER_LOST)
            return -1;
        if (outcome != CONSUMER_COMMITTED)
            return 0; /* backing off, or no longer ours */
        if (n < self->batch_max) {
            part->catchup = false;
            return 0;
        }
    }
    return 0;
}
