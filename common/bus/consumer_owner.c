/*
 * consumer_owner: which partitions this replica owns, and under which
 * epoch.
 *
 * Ownership is a session advisory lock on (key_parts, key2) on the
 * replica's connection; replicas count each other through member-slot
 * locks on (key_members, slot), visible to all in pg_locks. At each
 * rebalance a replica ranks itself among the slots held, computes its fair
 * share (partitions / replicas, the first `partitions % replicas` ranks
 * taking one more), releases its surplus from the end and claims free
 * partitions starting where its share would lie, so replicas that start
 * together do not contend for the same ones.
 *
 * Invariants: `owned` is true exactly while this session holds the lock;
 * claiming bumps the partition's epoch in bus.offsets under the lock and
 * reads its offset, so any commit by the previous owner after that is
 * fenced (consumer_offsets.c); an owned partition starts in catch-up,
 * since live events before the subscription took effect were not seen.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_int.h"
#include "rt_bus.h"
#include "rt_log.h"

/* Member slots a group may hold: at most this many replicas. */
#define S_MAX_SLOTS 1024
/* Partitions of one stream fit below this, so (stream, partition) makes one
 * second lock key. */
#define S_PARTITION_STRIDE 4096

static const char *s_sql_streams = "SELECT stream, partitions FROM bus.streams "
                                   "WHERE stream = ANY($1::text[]) ORDER BY stream";
static const char *s_sql_try_lock = "SELECT pg_try_advisory_lock($1::int, $2::int)";
static const char *s_sql_unlock = "SELECT pg_advisory_unlock($1::int, $2::int)";
static const char *s_sql_claim = "UPDATE bus.offsets SET epoch = epoch + 1, owner = $4, "
                                 "updated_at = now() WHERE grp = $1 AND stream = $2 AND "
                                 "partition = $3::int RETURNING pseq, epoch";
/* The member slots held in this database, in slot order. */
static const char *s_sql_members =
    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND objsubid = 2 AND classid = $1::int::oid AND database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY objid";

int
consumer_owner_prepare (rt_consumer_t *self)
{
    if (rt_db_prepare (self->db, "rt_consumer_streams", s_sql_streams) != 0 ||
        rt_db_prepare (self->db, "rt_consumer_try_lock", s_sql_try_lock) != 0 ||
        rt_db_prepare (self->db, "rt_consumer_unlock", s_sql_unlock) != 0 ||
        rt_db_prepare (self->db, "rt_consumer_claim", s_sql_claim) != 0 ||
        rt_db_prepare (self->db, "rt_consumer_members", s_sql_members) != 0)
        return -1;
    return 0;
}

int32_t
consumer_lock_key (const char *family, const char *group)
{
    uint32_t h = 2166136261u;
    const char *p;
    for (p = family; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (p = group; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    /* Non-negative, so pg_locks' oid columns compare without casts. */
    return (int32_t)(h & 0x7fffffff);
}

/* pg_try_advisory_lock(k1, k2): 1 taken, 0 held by another, -1 failed. */
static int
s_try_lock (rt_consumer_t *self, int32_t k1, int32_t k2)
{
    char a[16], b[16];
    const char *params[2] = {a, b};
    PGresult *res;
    int got;
    snprintf (a, sizeof a, "%d", k1);
    snprintf (b, sizeof b, "%d", k2);
    res = rt_db_exec_prepared (self->db, "rt_consumer_try_lock", 2, params, NULL, NULL, 0);
    if (!res)
        return -1;
    got = PQgetvalue (res, 0, 0)[0] == 't';
    PQclear (res);
    return got;
}

/* Forgets ownership without telling PostgreSQL (the session is gone, or
 * the lock was just released). */
static void
s_forget (rt_consumer_t *self, consumer_part_t *part)
{
    if (!part->owned)
        return;
    part->owned = false;
    consumer_drop_pending (part);
    consumer_unfollow (self, part);
}

void
consumer_release (rt_consumer_t *self, consumer_part_t *part)
{
    char k1[16], k2[16];
    const char *params[2] = {k1, k2};
    snprintf (k1, sizeof k1, "%d", self->key_parts);
    snprintf (k2, sizeof k2, "%d", part->key2);
    /* A failure here means the session is going: its locks go with it. */
    PQclear (rt_db_exec_prepared (self->db, "rt_consumer_unlock", 2, params, NULL, NULL, 0));
    s_forget (self, part);
    rt_log (RT_LOG_DEBUG, "partition released", rt_log_str ("group", self->group),
            rt_log_str ("stream", part->stream), rt_log_uint ("partition", part->partition));
}

/* Loads the partitions of the group's streams (first session only: the
 * partition count of a stream does not change while a replica runs). */
static int
s_load_parts (rt_consumer_t *self)
{
    const char *params[1] = {self->streams_array.data};
    PGresult *res;
    int r;
    size_t total = 0, k = 0;
    if (self->parts)
        return 0;
    res = rt_db_exec_prepared (self->db, "rt_consumer_streams", 1, params, NULL, NULL, 0);
    if (!res)
        return -1;
    for (r = 0; r < PQntuples (res); r++)
        total += (size_t)atoi (PQgetvalue (res, r, 1));
    self->parts = calloc (total ? total : 1, sizeof *self->parts);
    self->slices = calloc (total ? total : 1, sizeof *self->slices);
    if (!self->parts || !self->slices) {
        free (self->parts);
        free (self->slices);
        self->parts = NULL;
        self->slices = NULL;
        PQclear (res);
        return -1;
    }
    for (r = 0; r < PQntuples (res); r++) {
        const char *name = PQgetvalue (res, r, 0);
        const char *stream = NULL;
        uint32_t p, n = (uint32_t)atoi (PQgetvalue (res, r, 1));
        size_t i;
        for (i = 0; i < self->nstreams; i++) {
            if (strcmp (self->streams[i], name) == 0)
                stream = self->streams[i];
        }
        for (p = 0; p < n && stream; p++) {
            consumer_part_t *part = &self->parts[k++];
            part->stream = stream;
            part->partition = p;
            part->key2 = rt_bus_stream_index (stream) * S_PARTITION_STRIDE + (int32_t)p;
        }
    }
    self->nparts = k;
    PQclear (res);
    return 0;
}

int
consumer_join (rt_consumer_t *self)
{
    size_t i;
    int s;

    for (i = 0; i < self->nparts; i++)
        s_forget (self, &self->parts[i]);
    self->member_slot = -1;
    if (s_load_parts (self) != 0 || consumer_offsets_create (self) != 0)
        return -1;
    for (s = 0; s < S_MAX_SLOTS; s++) {
        int got = s_try_lock (self, self->key_members, s);
        if (got < 0)
            return -1;
        if (got) {
            self->member_slot = s;
            break;
        }
    }
    if (self->member_slot < 0) {
        rt_log (RT_LOG_ERROR, "no free member slot", rt_log_str ("group", self->group));
        return -1;
    }
    self->db_generation = rt_db_generation (self->db);
    self->next_rebalance_ms = 0;
    rt_log (RT_LOG_INFO, "consumer joined", rt_log_str ("group", self->group),
            rt_log_str ("member", self->member), rt_log_int ("slot", self->member_slot));
    return 0;
}

/* Takes a free partition: its lock, then a new epoch and its offset.
 * 1 taken, 0 held by another replica, -1 failed. */
static int
s_claim (rt_consumer_t *self, consumer_part_t *part)
{
    char partition[16];
    const char *params[4];
    PGresult *res;
    int got = s_try_lock (self, self->key_parts, part->key2);

    if (got <= 0)
        return got;
    snprintf (partition, sizeof partition, "%u", part->partition);
    params[0] = self->group;
    params[1] = part->stream;
    params[2] = partition;
    params[3] = self->member;
    res = rt_db_exec_prepared (self->db, "rt_consumer_claim", 4, params, NULL, NULL, 0);
    if (!res || PQntuples (res) != 1) {
        PQclear (res);
        return -1;
    }
    part->offset = strtoull (PQgetvalue (res, 0, 0), NULL, 10);
    part->epoch = strtoll (PQgetvalue (res, 0, 1), NULL, 10);
    PQclear (res);
    part->owned = true;
    part->catchup = true;
    part->failures = 0;
    part->retry_at_ms = 0;
    consumer_follow (self, part);
    rt_log (RT_LOG_DEBUG, "partition taken", rt_log_str ("group", self->group),
            rt_log_str ("stream", part->stream), rt_log_uint ("partition", part->partition),
            rt_log_uint ("offset", part->offset), rt_log_int ("epoch", part->epoch));
    return 1;
}

int
consumer_rebalance (rt_consumer_t *self)
{
    char k1[16];
    const char *params[1] = {k1};
    PGresult *res;
    int n, rank = -1, r;
    size_t i, owned = 0, share, start, taken = 0, released = 0;

    snprintf (k1, sizeof k1, "%d", self->key_members);
    res = rt_db_exec_prepared (self->db, "rt_consumer_members", 1, params, NULL, NULL, 0);
    if (!res)
        return -1;
    n = PQntuples (res);
    for (r = 0; r < n; r++) {
        if (atoi (PQgetvalue (res, r, 0)) == self->member_slot)
            rank = r;
    }
    PQclear (res);
    if (rank < 0 || n == 0)
        return -1; /* our own slot vanished: the session is not what we think */

    share = self->nparts / (size_t)n + ((size_t)rank < self->nparts % (size_t)n ? 1 : 0);
    for (i = 0; i < self->nparts; i++)
        owned += self->parts[i].owned;
    for (i = self->nparts; i-- > 0 && owned > share;) {
        if (self->parts[i].owned) {
            consumer_release (self, &self->parts[i]);
            owned--;
            released++;
        }
    }
    start = self->nparts ? (self->nparts * (size_t)rank / (size_t)n) : 0;
    for (i = 0; i < self->nparts && owned < share; i++) {
        consumer_part_t *part = &self->parts[(start + i) % self->nparts];
        int got;
        if (part->owned)
            continue;
        got = s_claim (self, part);
        if (got < 0)
            return -1;
        owned += (size_t)got;
        taken += (size_t)got;
    }
    /* One line per change of ownership; each partition's is at debug (a
     * replica of three streams holds 48 of them). */
    if (taken || released)
        rt_log (RT_LOG_INFO, "partitions rebalanced", rt_log_str ("group", self->group),
                rt_log_uint ("taken", taken), rt_log_uint ("released", released),
                rt_log_uint ("owned", owned), rt_log_uint ("of", self->nparts),
                rt_log_int ("members", n));
    if (consumer_heads_check (self) != 0)
        return -1;
    consumer_gauges_update (self);
    return 0;
}

void
consumer_gauges_update (rt_consumer_t *self)
{
    size_t i;
    int n = 0;
    double lag = 0;
    for (i = 0; i < self->nparts; i++) {
        if (self->parts[i].owned) {
            n++;
            if (self->parts[i].head > self->parts[i].offset)
                lag += (double)(self->parts[i].head - self->parts[i].offset);
        }
    }
    atomic_store (&self->owned, n);
    if (self->m_owned)
        rt_gauge_set (self->m_owned, n);
    if (self->m_lag)
        rt_gauge_set (self->m_lag, lag);
}
