/*
 * consumer_offsets: the one commit path. Every event a replica handles is
 * handled in a round, and a round is one transaction on the replica's
 * connection:
 *
 *   BEGIN; the handler over each slice's events, slice after slice;
 *   one UPDATE moving every slice's offset under its epoch; COMMIT.
 *
 * A live round holds every owned partition with live events waiting, so a
 * round costs one WAL flush however many partitions a replica owns; a
 * catch-up batch is a round of one partition. The offsets move names each
 * partition's epoch: a partition whose epoch moved has been claimed since
 * by another replica, so the UPDATE leaves its row alone and does not
 * return it, and nothing of the round commits. What the handler wrote
 * commits with the offsets or not at all.
 *
 * How a round ends (consumer_outcome_t), and what is done about it here:
 * - a handler fails: roll back; that partition backs off and reads its log
 *   when the delay is over; the others keep their events for a new round;
 * - some partitions fenced: roll back, release them, the others likewise
 *   keep their events;
 * - the offsets move or the COMMIT fails on a live connection (a deferred
 *   constraint of the handlers' writes): roll back; a round of one backs
 *   off like a handler failure; a round of many cannot tell which
 *   partition's effects were refused, so each goes to its log, where it
 *   commits alone and the one at fault backs off alone. Retrying the same
 *   round would repeat the failure at every poll and hold back every
 *   partition in it;
 * - the connection is gone: nothing to do, the new session starts over.
 *
 * Backoff is 200 ms doubling per consecutive failure of the partition, up
 * to 6.4 s, then 10 s; a committed round resets it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_int.h"
#include "rt_clock.h"
#include "rt_log.h"

/* The group's rows exist from its first start, so retention keeps what it
 * has not consumed even before a replica owns the partition. */
static const char *s_sql_create = "INSERT INTO bus.offsets (grp, stream, partition) "
                                  "SELECT $1, s.stream, p FROM bus.streams s, "
                                  "generate_series(0, s.partitions - 1) p "
                                  "WHERE s.stream = ANY($2::text[]) ON CONFLICT DO NOTHING";
static const char *s_sql_move =
    "UPDATE bus.offsets o SET pseq = v.pseq, updated_at = now() "
    "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) "
    "AS v(stream, partition, epoch, pseq) WHERE o.grp = $1 AND o.stream = v.stream "
    "AND o.partition = v.partition AND o.epoch = v.epoch "
    "RETURNING o.stream, o.partition";

int
consumer_offsets_prepare (rt_consumer_t *self)
{
    if (rt_db_prepare (self->db, "rt_consumer_offsets_create", s_sql_create) != 0 ||
        rt_db_prepare (self->db, "rt_consumer_offsets_move", s_sql_move) != 0)
        return -1;
    return 0;
}

int
consumer_offsets_create (rt_consumer_t *self)
{
    const char *params[2] = {self->group, self->streams_array.data};
    PGresult *res =
        rt_db_exec_prepared (self->db, "rt_consumer_offsets_create", 2, params, NULL, NULL, 0);
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}

/* Moves each slice's offset to its last event under its epoch, in the open
 * transaction, and marks the slices whose epoch moved. Returns how many
 * were fenced, or -1 when the statement could not run. */
static int
s_move (rt_consumer_t *self, consumer_slice_t *slices, size_t n)
{
    const char *params[5];
    PGresult *res;
    size_t i, k;
    int r, fenced = 0;

    for (k = 0; k < 4; k++) {
        rt_buf_reset (&self->move[k]);
        rt_buf_array_begin (&self->move[k]);
    }
    for (i = 0; i < n; i++) {
        char num[3][24];
        snprintf (num[0], sizeof num[0], "%u", slices[i].part->partition);
        snprintf (num[1], sizeof num[1], "%" PRId64, slices[i].part->epoch);
        snprintf (num[2], sizeof num[2], "%" PRIu64, slices[i].events[slices[i].nevents - 1]->pseq);
        rt_buf_array_text (&self->move[0], slices[i].part->stream);
        rt_buf_array_raw (&self->move[1], num[0]);
        rt_buf_array_raw (&self->move[2], num[1]);
        rt_buf_array_raw (&self->move[3], num[2]);
        slices[i].fenced = false;
    }
    for (k = 0; k < 4; k++) {
        rt_buf_array_end (&self->move[k]);
        if (self->move[k].failed) {
            rt_log (RT_LOG_ERROR, "out of memory moving offsets",
                    rt_log_str ("group", self->group));
            return -1;
        }
    }
    params[0] = self->group;
    for (k = 0; k < 4; k++)
        params[k + 1] = self->move[k].data;
    res = rt_db_exec_prepared (self->db, "rt_consumer_offsets_move", 5, params, NULL, NULL, 0);
    if (!res)
        return -1;
    if ((size_t)PQntuples (res) != n) {
        /* The rows returned are the partitions still ours. */
        for (i = 0; i < n; i++) {
            bool kept = false;
            for (r = 0; r < PQntuples (res) && !kept; r++)
                kept = (uint32_t)atoi (PQgetvalue (res, r, 1)) == slices[i].part->partition &&
                       strcmp (PQgetvalue (res, r, 0), slices[i].part->stream) == 0;
            slices[i].fenced = !kept;
            fenced += !kept;
        }
    }
    PQclear (res);
    return fenced;
}

void
consumer_backoff (rt_consumer_t *self, consumer_part_t *part, const Retain__V1__Envelope *event,
                  const char *why)
{
    part->failures++;
    part->retry_at_ms =
        rt_clock_mono_ms () + (part->failures < 7 ? (int64_t)100 << part->failures : 10000);
    part->catchup = true;
    if (self->m_failures)
        rt_counter_inc (self->m_failures);
    rt_log (RT_LOG_WARN, why, rt_log_str ("group", self->group),
            rt_log_str ("stream", part->stream), rt_log_uint ("partition", part->partition),
            rt_log_uint ("pseq", event->pseq), rt_log_str ("id", event->id),
            rt_log_str ("error", rt_db_error (self->db)));
    /* Last: `event` may be one of the pending events this frees. */
    consumer_drop_pending (part);
}

/* The offsets move or the COMMIT failed with no handler to blame (see the
 * head of the file). */
static consumer_outcome_t
s_failed (rt_consumer_t *self, consumer_slice_t *slices, size_t n, bool at_commit)
{
    size_t i;
    rt_db_rollback (self->db);
    if (!rt_db_is_ok (self->db))
        return CONSUMER_LOST;
    if (n == 1) {
        consumer_backoff (self, slices[0].part, slices[0].events[slices[0].nevents - 1],
                          at_commit ? "commit failed; batch rolled back, will retry"
                                    : "offset not moved; batch rolled back, will retry");
        return CONSUMER_RETRY;
    }
    rt_log (RT_LOG_WARN,
            at_commit ? "commit failed; round rolled back, partitions retried from the log"
                      : "offsets not moved; round rolled back, partitions retried from the log",
            rt_log_str ("group", self->group), rt_log_str ("error", rt_db_error (self->db)));
    for (i = 0; i < n; i++) {
        consumer_drop_pending (slices[i].part);
        slices[i].part->catchup = true;
    }
    return CONSUMER_RETRY;
}

/* Some partitions' epochs moved: undo everything and let them go. */
static consumer_outcome_t
s_fenced (rt_consumer_t *self, consumer_slice_t *slices, size_t n)
{
    size_t i;
    rt_db_rollback (self->db);
    for (i = 0; i < n; i++) {
        if (!slices[i].fenced)
            continue;
        if (self->m_fenced)
            rt_counter_inc (self->m_fenced);
        rt_log (RT_LOG_WARN, "fenced: partition taken by another replica; effects rolled back",
                rt_log_str ("group", self->group), rt_log_str ("stream", slices[i].part->stream),
                rt_log_uint ("partition", slices[i].part->partition));
        consumer_release (self, slices[i].part);
    }
    return rt_db_is_ok (self->db) ? CONSUMER_FENCED : CONSUMER_LOST;
}

/* The batch handler over every slice's events at once (each partition's
 * in pseq order, one partition after another): 0, or -1 failed. */
static int
s_batch (rt_consumer_t *self, const consumer_slice_t *slices, size_t n, size_t nevents)
{
    size_t i, k, used = 0;
    if (nevents > self->batch_cap) {
        const Retain__V1__Envelope **grown =
            realloc (self->batch_events, nevents * sizeof *self->batch_events);
        if (!grown) {
            rt_log (RT_LOG_WARN, "round: out of memory", rt_log_str ("group", self->group));
            return -1;
        }
        self->batch_events = grown;
        self->batch_cap = nevents;
    }
    for (i = 0; i < n; i++) {
        for (k = 0; k < slices[i].nevents; k++)
            self->batch_events[used++] = slices[i].events[k];
    }
    return self->batch (self->db, self->batch_events, used, self->handler_arg);
}

consumer_outcome_t
consumer_round (rt_consumer_t *self, consumer_slice_t *slices, size_t n)
{
    size_t i, k, nevents = 0;
    int fenced;

    if (rt_db_begin (self->db) != 0)
        return CONSUMER_LOST;
    for (i = 0; i < n; i++) {
        const consumer_slice_t *slice = &slices[i];
        for (k = 0; k < slice->nevents && !self->batch; k++) {
            if (self->handler (self->db, slice->events[k], self->handler_arg) != 0) {
                rt_db_rollback (self->db);
                if (!rt_db_is_ok (self->db))
                    return CONSUMER_LOST;
                consumer_backoff (self, slice->part, slice->events[k],
                                  "handler failed; batch rolled back, will retry");
                return CONSUMER_RETRY;
            }
        }
        nevents += slice->nevents;
    }
    if (self->batch && s_batch (self, slices, n, nevents) != 0) {
        rt_db_rollback (self->db);
        if (!rt_db_is_ok (self->db))
            return CONSUMER_LOST;
        if (n == 1) {
            consumer_backoff (self, slices[0].part, slices[0].events[0],
                              "handler failed; batch rolled back, will retry");
            return CONSUMER_RETRY;
        }
        /* The handler names no partition: each goes to the log alone,
         * where a failure again is that partition's. */
        if (self->m_failures)
            rt_counter_inc (self->m_failures);
        rt_log (RT_LOG_WARN, "handler failed; round rolled back, partitions retried from the log",
                rt_log_str ("group", self->group), rt_log_str ("error", rt_db_error (self->db)));
        for (i = 0; i < n; i++) {
            consumer_drop_pending (slices[i].part);
            slices[i].part->catchup = true;
        }
        return CONSUMER_RETRY;
    }
    fenced = s_move (self, slices, n);
    if (fenced < 0)
        return s_failed (self, slices, n, false);
    if (fenced > 0)
        return s_fenced (self, slices, n);
    if (rt_db_commit (self->db) != 0)
        return s_failed (self, slices, n, true);
    for (i = 0; i < n; i++) {
        consumer_part_t *part = slices[i].part;
        part->offset = slices[i].events[slices[i].nevents - 1]->pseq;
        if (part->head < part->offset)
            part->head = part->offset;
        part->failures = 0;
        /* Live slices are the pending events; catch-up ones have none. */
        consumer_drop_pending (part);
    }
    if (self->m_events)
        rt_counter_add (self->m_events, nevents);
    return CONSUMER_COMMITTED;
}
