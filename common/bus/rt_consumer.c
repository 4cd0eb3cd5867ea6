/*
 * rt_consumer: one replica of a consumer group (see rt_consumer.h).
 *
 * Per (stream, partition) of the group's streams the replica keeps whether
 * it owns it, the epoch it was granted, the offset it committed, and the
 * live events waiting to be handled. Invariant: for an owned partition not
 * in catch-up, `pending` holds exactly the events offset+1 .. offset+n in
 * order; anything else that arrives live (an old event, a jump) either is
 * dropped or switches the partition to catch-up, which reads the log.
 *
 * All PostgreSQL work happens on one connection: the advisory locks that
 * grant ownership are session locks on it, and the handler's transactions
 * run on it, so losing the connection loses ownership and any open
 * transaction together.
 */
#include "rt_clock.h"
#include "rt_consumer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "rt_bus.h"
#include "rt_log.h"
#include "rt_signal.h"

#define S_MAX_SLOTS        1024
#define S_PARTITION_STRIDE 4096
#define S_DRAIN_MAX        20000
#define S_CATCHUP_BATCHES  8

typedef struct {
    const char *stream;             /* stream name (the consumer's copy) */
    uint32_t partition;             /* partition number */
    int32_t key2;                   /* second advisory lock key */
    bool owned;                     /* we hold its lock */
    int64_t epoch;                  /* epoch granted at takeover */
    uint64_t offset;                /* last committed pseq */
    uint64_t head;                  /* last pseq in the log, as last seen */
    uint64_t head_before;           /* log head at the previous rebalance */
    bool live;                      /* a live event came since the previous rebalance */
    bool catchup;                   /* read from the log before live events */
    int failures;                   /* consecutive handler failures */
    int64_t retry_at_ms;            /* no attempt before this (backoff) */
    Retain__V1__Envelope **pending; /* live events offset+1 .. offset+npending */
    size_t npending;                /* their count */
    size_t cap;                     /* allocated */
} s_part_t;

struct rt_consumer_t {
    char *dsn;                      /* PostgreSQL */
    char *group;                    /* group name */
    char *member;                   /* replica name */
    char *pub_endpoints;            /* busd PUB endpoints */
    char **streams;                 /* streams read */
    size_t nstreams;                /* their count */
    char *streams_array;            /* the streams as a PostgreSQL array literal */
    int batch_max;                  /* events per transaction */
    int rcvhwm;                     /* SUB high-water mark */
    int rebalance_ms;               /* rebalance interval */
    rt_consumer_handler_fn handler; /* the group's handler */
    void *handler_arg;              /* its argument */
    rt_db_t *db;                    /* the replica's one connection */
    uint64_t db_generation;         /* session the state below belongs to */
    void *ctx;                      /* ZeroMQ context */
    void *sub;                      /* SUB socket */
    s_part_t *parts;                /* every partition of the streams */
    size_t nparts;                  /* their count */
    int32_t key_parts;              /* first lock key of partition locks */
    int32_t key_members;            /* first lock key of member slots */
    int member_slot;                /* our member slot, -1 none */
    atomic_int owned;               /* partitions owned now */
    int64_t next_rebalance_ms;      /* when to rebalance next */
    rt_counter_t *m_events;         /* events handled */
    rt_counter_t *m_gaps;           /* gaps recovered from the log */
    rt_counter_t *m_failures;       /* handler batches rolled back */
    rt_counter_t *m_fenced;         /* commits refused by fencing */
    rt_gauge_t *m_owned;            /* partitions owned */
    rt_gauge_t *m_lag;              /* events behind the log, owned partitions */
};

static int32_t
s_key (const char *prefix, const char *group)
{
    uint32_t h = 2166136261u;
    const char *p;
    for (p = prefix; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (p = group; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    /* Non-negative, so pg_locks' oid columns compare without casts. */
    return (int32_t)(h & 0x7fffffff);
}

rt_consumer_t *
rt_consumer_new (const rt_consumer_config_t *config, char *err, size_t errlen)
{
    rt_consumer_t *self;
    size_t i, len = 3;
    char host[64] = "host";

    if (!config->group || !config->group[0] || !config->handler || config->nstreams == 0 ||
        !config->pub_endpoints) {
        snprintf (err, errlen, "a consumer needs a group, streams, PUB endpoints and a handler");
        return NULL;
    }
    for (i = 0; i < config->nstreams; i++) {
        if (rt_bus_stream_index (config->streams[i]) < 0) {
            snprintf (err, errlen, "unknown stream \"%s\"", config->streams[i]);
            return NULL;
        }
    }
    self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    self->dsn = strdup (config->dsn ? config->dsn : "");
    self->group = strdup (config->group);
    self->pub_endpoints = strdup (config->pub_endpoints);
    if (config->member && config->member[0])
        self->member = strdup (config->member);
    else {
        char buf[128];
        gethostname (host, sizeof host - 1);
        snprintf (buf, sizeof buf, "%s:%d", host, (int)getpid ());
        self->member = strdup (buf);
    }
    self->streams = calloc (config->nstreams, sizeof *self->streams);
    if (!self->dsn || !self->group || !self->pub_endpoints || !self->member || !self->streams)
        goto oom;
    self->nstreams = config->nstreams;
    for (i = 0; i < config->nstreams; i++) {
        self->streams[i] = strdup (config->streams[i]);
        if (!self->streams[i])
            goto oom;
        len += strlen (config->streams[i]) + 1;
    }
    self->streams_array = calloc (1, len);
    if (!self->streams_array)
        goto oom;
    strcat (self->streams_array, "{");
    for (i = 0; i < self->nstreams; i++) {
        if (i)
            strcat (self->streams_array, ",");
        strcat (self->streams_array, self->streams[i]);
    }
    strcat (self->streams_array, "}");
    self->batch_max = config->batch_max > 0 ? config->batch_max : 500;
    self->rcvhwm = config->rcvhwm;
    self->rebalance_ms = config->rebalance_ms > 0 ? config->rebalance_ms : 1000;
    self->handler = config->handler;
    self->handler_arg = config->handler_arg;
    self->key_parts = s_key ("retain.consumer.parts:", self->group);
    self->key_members = s_key ("retain.consumer.members:", self->group);
    self->member_slot = -1;
    atomic_init (&self->owned, 0);
    if (config->metrics) {
        char labels[200];
        snprintf (labels, sizeof labels, "group=\"%s\"", self->group);
        self->m_events = rt_metrics_counter (config->metrics, "retain_consumer_events_total",
                                             labels, "Events handled and committed.");
        self->m_gaps = rt_metrics_counter (config->metrics, "retain_consumer_gaps_total", labels,
                                           "Gaps in live events recovered from the log.");
        self->m_failures =
            rt_metrics_counter (config->metrics, "retain_consumer_handler_failures_total", labels,
                                "Handler batches rolled back.");
        self->m_fenced = rt_metrics_counter (config->metrics, "retain_consumer_fenced_total",
                                             labels, "Commits refused: ownership was lost.");
        self->m_owned = rt_metrics_gauge (config->metrics, "retain_consumer_partitions_owned",
                                          labels, "Partitions this replica owns.");
        self->m_lag = rt_metrics_gauge (config->metrics, "retain_consumer_lag_events", labels,
                                        "Events in the log not yet handled, owned partitions.");
    }
    self->db = rt_db_new (self->dsn, "retain-consumer");
    if (!self->db)
        goto oom;
    return self;
oom:
    snprintf (err, errlen, "out of memory");
    rt_consumer_destroy (&self);
    return NULL;
}

static void
s_drop_pending (s_part_t *part)
{
    size_t i;
    for (i = 0; i < part->npending; i++)
        retain__v1__envelope__free_unpacked (part->pending[i], NULL);
    part->npending = 0;
}

void
rt_consumer_destroy (rt_consumer_t **self_p)
{
    rt_consumer_t *self;
    size_t i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; i < self->nparts; i++) {
        s_drop_pending (&self->parts[i]);
        free (self->parts[i].pending);
    }
    free (self->parts);
    for (i = 0; self->streams && i < self->nstreams; i++)
        free (self->streams[i]);
    free (self->streams);
    free (self->streams_array);
    if (self->sub)
        zmq_close (self->sub);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    rt_db_destroy (&self->db);
    free (self->dsn);
    free (self->group);
    free (self->member);
    free (self->pub_endpoints);
    free (self);
    *self_p = NULL;
}

int
rt_consumer_owned (const rt_consumer_t *self)
{
    return atomic_load (&self->owned);
}

static void
s_topic (const s_part_t *part, char *topic, size_t len)
{
    rt_bus_topic (topic, len, part->stream, part->partition);
}

static void
s_set_owned_gauge (rt_consumer_t *self)
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

/* Forgets ownership without telling PostgreSQL (the session is gone). */
static void
s_forget (rt_consumer_t *self, s_part_t *part)
{
    char topic[RT_BUS_TOPIC_MAX];
    if (!part->owned)
        return;
    part->owned = false;
    s_drop_pending (part);
    s_topic (part, topic, sizeof topic);
    zmq_setsockopt (self->sub, ZMQ_UNSUBSCRIBE, topic, strlen (topic));
}

static void
s_release (rt_consumer_t *self, s_part_t *part)
{
    char k1[16], k2[16];
    const char *params[2] = {k1, k2};
    PGresult *res;
    snprintf (k1, sizeof k1, "%d", self->key_parts);
    snprintf (k2, sizeof k2, "%d", part->key2);
    res = rt_db_exec_params (self->db, "SELECT pg_advisory_unlock($1::int, $2::int)", 2, params);
    PQclear (res);
    s_forget (self, part);
    rt_log (RT_LOG_INFO, "partition released", "group", "%s", self->group, "stream", "%s",
            part->stream, "partition", "%u", part->partition, NULL);
}

/* Loads the partitions of the group's streams (first session only). */
static int
s_load_parts (rt_consumer_t *self)
{
    const char *params[1] = {self->streams_array};
    PGresult *res;
    int r;
    size_t total = 0, k = 0;
    if (self->parts)
        return 0;
    res = rt_db_exec_params (self->db,
                             "SELECT stream, partitions FROM bus.streams "
                             "WHERE stream = ANY($1::text[]) ORDER BY stream",
                             1, params);
    if (!res)
        return -1;
    for (r = 0; r < PQntuples (res); r++)
        total += (size_t)atoi (PQgetvalue (res, r, 1));
    self->parts = calloc (total ? total : 1, sizeof *self->parts);
    if (!self->parts) {
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
            s_part_t *part = &self->parts[k++];
            part->stream = stream;
            part->partition = p;
            part->key2 = rt_bus_stream_index (stream) * S_PARTITION_STRIDE + (int32_t)p;
        }
    }
    self->nparts = k;
    PQclear (res);
    return 0;
}

/* A new PostgreSQL session: nothing is owned; take a member slot. */
static int
s_new_session (rt_consumer_t *self)
{
    const char *params[3];
    char k1[16], slot[16];
    PGresult *res;
    size_t i;
    int s;

    for (i = 0; i < self->nparts; i++)
        s_forget (self, &self->parts[i]);
    self->member_slot = -1;
    if (s_load_parts (self) != 0)
        return -1;
    /* The group's rows exist from its first start, so retention keeps what
     * it has not consumed even before a replica owns the partition. */
    params[0] = self->group;
    params[1] = self->streams_array;
    res = rt_db_exec_params (self->db,
                             "INSERT INTO bus.offsets (grp, stream, partition) "
                             "SELECT $1, s.stream, p FROM bus.streams s, "
                             "generate_series(0, s.partitions - 1) p "
                             "WHERE s.stream = ANY($2::text[]) ON CONFLICT DO NOTHING",
                             2, params);
    if (!res)
        return -1;
    PQclear (res);
    snprintf (k1, sizeof k1, "%d", self->key_members);
    for (s = 0; s < S_MAX_SLOTS; s++) {
        params[0] = k1;
        snprintf (slot, sizeof slot, "%d", s);
        params[1] = slot;
        res = rt_db_exec_params (self->db, "SELECT pg_try_advisory_lock($1::int, $2::int)", 2,
                                 params);
        if (!res)
            return -1;
        if (PQgetvalue (res, 0, 0)[0] == 't') {
            PQclear (res);
            self->member_slot = s;
            break;
        }
        PQclear (res);
    }
    if (self->member_slot < 0) {
        rt_log (RT_LOG_ERROR, "no free member slot", "group", "%s", self->group, NULL);
        return -1;
    }
    self->db_generation = rt_db_generation (self->db);
    self->next_rebalance_ms = 0;
    rt_log (RT_LOG_INFO, "consumer joined", "group", "%s", self->group, "member", "%s",
            self->member, "slot", "%d", self->member_slot, NULL);
    return 0;
}

static int
s_claim (rt_consumer_t *self, s_part_t *part)
{
    char k1[16], k2[16], partition[16];
    const char *params[4];
    char topic[RT_BUS_TOPIC_MAX];
    PGresult *res;

    snprintf (k1, sizeof k1, "%d", self->key_parts);
    snprintf (k2, sizeof k2, "%d", part->key2);
    params[0] = k1;
    params[1] = k2;
    res = rt_db_exec_params (self->db, "SELECT pg_try_advisory_lock($1::int, $2::int)", 2, params);
    if (!res)
        return -1;
    if (PQgetvalue (res, 0, 0)[0] != 't') {
        PQclear (res);
        return 0;
    }
    PQclear (res);
    snprintf (partition, sizeof partition, "%u", part->partition);
    params[0] = self->group;
    params[1] = part->stream;
    params[2] = partition;
    params[3] = self->member;
    res = rt_db_exec_params (self->db,
                             "UPDATE bus.offsets SET epoch = epoch + 1, owner = $4, "
                             "updated_at = now() WHERE grp = $1 AND stream = $2 AND "
                             "partition = $3::int RETURNING pseq, epoch",
                             4, params);
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
    s_topic (part, topic, sizeof topic);
    zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
    rt_log (RT_LOG_INFO, "partition taken", "group", "%s", self->group, "stream", "%s",
            part->stream, "partition", "%u", part->partition, "offset", "%" PRIu64, part->offset,
            "epoch", "%" PRId64, part->epoch, NULL);
    return 1;
}

/* Keeps this replica at its fair share of the partitions, and notices
 * events in the log that live delivery did not bring. */
static int
s_rebalance (rt_consumer_t *self)
{
    char k1[16];
    const char *params[2] = {k1, NULL};
    PGresult *res;
    int n, rank = -1, r;
    size_t i, owned = 0, share, start;

    snprintf (k1, sizeof k1, "%d", self->key_members);
    res = rt_db_exec_params (self->db,
                             "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                             "AND objsubid = 2 AND classid = $1::int::oid AND database = "
                             "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                             "ORDER BY objid",
                             1, params);
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
            s_release (self, &self->parts[i]);
            owned--;
        }
    }
    /* Start looking where this replica's share would be, so replicas that
     * start together do not all contend for the same partitions. */
    start = self->nparts ? (self->nparts * (size_t)rank / (size_t)n) : 0;
    for (i = 0; i < self->nparts && owned < share; i++) {
        s_part_t *part = &self->parts[(start + i) % self->nparts];
        int got;
        if (part->owned)
            continue;
        got = s_claim (self, part);
        if (got < 0)
            return -1;
        owned += (size_t)got;
    }

    params[0] = self->streams_array;
    res = rt_db_exec_params (self->db,
                             "SELECT stream, partition, pseq FROM bus.counters "
                             "WHERE stream = ANY($1::text[])",
                             1, params);
    if (!res)
        return -1;
    for (r = 0; r < PQntuples (res); r++) {
        const char *stream = PQgetvalue (res, r, 0);
        uint32_t p = (uint32_t)atoi (PQgetvalue (res, r, 1));
        for (i = 0; i < self->nparts; i++) {
            s_part_t *part = &self->parts[i];
            if (part->partition == p && strcmp (part->stream, stream) == 0) {
                /* Live delivery missed the tail (a publish lost at a busd
                 * restart, a subscription not yet in effect, a drop with
                 * nothing after it to show the jump): events already in
                 * the log at the previous rebalance have not come, and
                 * nothing came live since. Events merely in flight, or
                 * queued behind a slow handler, are not missing: treating
                 * them so would drop the live stream of every busy
                 * partition each interval and hide real gaps. */
                if (part->owned && !part->catchup && !part->live &&
                    part->head_before > part->offset + part->npending) {
                    part->catchup = true;
                    if (self->m_gaps)
                        rt_counter_inc (self->m_gaps);
                }
                part->head = strtoull (PQgetvalue (res, r, 2), NULL, 10);
                part->head_before = part->head;
                part->live = false;
            }
        }
    }
    PQclear (res);
    s_set_owned_gauge (self);
    return 0;
}

/* The batch in hand did not commit: roll it back and, unless the
 * connection is gone (-2: the new session starts over), retry the
 * partition from the log after a backoff (-1). `event` is the one that
 * failed, or the batch's last when the commit itself failed. */
static int
s_batch_failed (rt_consumer_t *self, s_part_t *part, const Retain__V1__Envelope *event,
                const char *why)
{
    rt_db_rollback (self->db);
    if (!rt_db_is_ok (self->db))
        return -2;
    part->failures++;
    part->retry_at_ms = rt_clock_mono_ms () + (part->failures < 7 ? 100 << part->failures : 10000);
    part->catchup = true;
    if (self->m_failures)
        rt_counter_inc (self->m_failures);
    rt_log (RT_LOG_WARN, why, "group", "%s", self->group, "stream", "%s", part->stream, "partition",
            "%u", part->partition, "pseq", "%" PRIu64, event->pseq, "id", "%s", event->id, "error",
            "%s", rt_db_error (self->db), NULL);
    /* Last: `event` may be one of the pending events this frees. */
    s_drop_pending (part);
    return -1;
}

/* Runs the handler over events in one transaction with the offset move.
 * 0 committed, -1 failed on a live connection (rolled back, retried from
 * the log after a backoff), -2 database connection lost, -3 fenced
 * (ownership lost; the partition is dropped). */
static int
s_handle_batch (rt_consumer_t *self, s_part_t *part, const Retain__V1__Envelope *const *events,
                size_t n)
{
    char partition[16], epoch[24], pseq[24];
    const char *params[5];
    PGresult *res;
    size_t i;
    bool updated;

    if (n == 0)
        return 0;
    if (rt_db_begin (self->db) != 0)
        return -2;
    for (i = 0; i < n; i++) {
        if (self->handler (self->db, events[i], self->handler_arg) != 0)
            return s_batch_failed (self, part, events[i],
                                   "handler failed; batch rolled back, will retry");
    }
    snprintf (partition, sizeof partition, "%u", part->partition);
    snprintf (epoch, sizeof epoch, "%" PRId64, part->epoch);
    snprintf (pseq, sizeof pseq, "%" PRIu64, events[n - 1]->pseq);
    params[0] = self->group;
    params[1] = part->stream;
    params[2] = partition;
    params[3] = epoch;
    params[4] = pseq;
    res = rt_db_exec_params (self->db,
                             "UPDATE bus.offsets SET pseq = $5::bigint, updated_at = now() "
                             "WHERE grp = $1 AND stream = $2 AND partition = $3::int "
                             "AND epoch = $4::bigint",
                             5, params);
    if (!res)
        return s_batch_failed (self, part, events[n - 1],
                               "offset not moved; batch rolled back, will retry");
    updated = strcmp (PQcmdTuples (res), "1") == 0;
    PQclear (res);
    if (!updated) {
        rt_db_rollback (self->db);
        if (self->m_fenced)
            rt_counter_inc (self->m_fenced);
        rt_log (RT_LOG_WARN, "fenced: partition taken by another replica; effects rolled back",
                "group", "%s", self->group, "stream", "%s", part->stream, "partition", "%u",
                part->partition, NULL);
        s_release (self, part);
        return -3;
    }
    /* A COMMIT refused on a live connection (a deferred constraint of the
     * handler's writes) is final for this attempt: back off like a handler
     * failure instead of retrying the same batch at once, unlogged. */
    if (rt_db_commit (self->db) != 0)
        return s_batch_failed (self, part, events[n - 1],
                               "commit failed; batch rolled back, will retry");
    part->offset = events[n - 1]->pseq;
    if (part->head < part->offset)
        part->head = part->offset;
    part->failures = 0;
    if (self->m_events)
        rt_counter_add (self->m_events, n);
    return 0;
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

/* Reads and handles events of a partition from the log. Returns 0 when the
 * partition is caught up or the budget is spent, <0 as s_handle_batch. */
static int
s_catch_up (rt_consumer_t *self, s_part_t *part)
{
    int batches;
    s_drop_pending (part);
    for (batches = 0; batches < S_CATCHUP_BATCHES; batches++) {
        char partition[16], offset[24], limit[16];
        const char *params[4] = {part->stream, partition, offset, limit};
        Retain__V1__Envelope *envs;
        const Retain__V1__Envelope **ptrs;
        PGresult *res;
        int r, n, rc;

        snprintf (partition, sizeof partition, "%u", part->partition);
        snprintf (offset, sizeof offset, "%" PRIu64, part->offset);
        snprintf (limit, sizeof limit, "%d", self->batch_max);
        res = rt_db_exec_paramsv (
            self->db,
            "SELECT seq, partition, pseq, id::text, type, key, occurred_at, producer, "
            "correlation_id, payload, stream FROM bus.events WHERE stream = $1 AND "
            "partition = $2::int AND pseq > $3::bigint ORDER BY pseq LIMIT $4::int",
            4, params, NULL, NULL, 1);
        if (!res)
            return -2;
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
            return -2;
        }
        for (r = 0; r < n; r++) {
            Retain__V1__Envelope *e = &envs[r];
            retain__v1__envelope__init (e);
            /* Binary results: text columns are their bytes, NUL-terminated
             * by libpq; the envelope borrows them until PQclear. */
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
            ptrs[r] = e;
        }
        if (envs[0].pseq != part->offset + 1 && part->offset > 0)
            rt_log (RT_LOG_WARN, "log starts after the group's offset (retention?)", "group", "%s",
                    self->group, "stream", "%s", part->stream, "partition", "%u", part->partition,
                    "offset", "%" PRIu64, part->offset, "first", "%" PRIu64, envs[0].pseq, NULL);
        rc = s_handle_batch (self, part, ptrs, (size_t)n);
        free (ptrs);
        free (envs);
        PQclear (res);
        if (rc != 0)
            return rc;
        if (n < self->batch_max) {
            part->catchup = false;
            return 0;
        }
    }
    return 0;
}

static int
s_connect_sub (rt_consumer_t *self, char *err, size_t errlen)
{
    char *list, *save = NULL, *ep;
    self->ctx = zmq_ctx_new ();
    if (!self->ctx)
        return -1;
    self->sub = zmq_socket (self->ctx, ZMQ_SUB);
    if (!self->sub)
        return -1;
    if (self->rcvhwm > 0)
        zmq_setsockopt (self->sub, ZMQ_RCVHWM, &self->rcvhwm, sizeof self->rcvhwm);
    if (rt_bus_curve_client (self->sub, err, errlen) != 0)
        return -1;
    list = strdup (self->pub_endpoints);
    if (!list)
        return -1;
    for (ep = strtok_r (list, ",", &save); ep; ep = strtok_r (NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (zmq_connect (self->sub, ep) != 0) {
            snprintf (err, errlen, "cannot connect to \"%s\": %s", ep, zmq_strerror (errno));
            free (list);
            return -1;
        }
    }
    free (list);
    return 0;
}

static s_part_t *
s_find_part (rt_consumer_t *self, const char *topic, size_t len)
{
    const char *dot = memchr (topic, '.', len);
    size_t i, slen;
    uint32_t p = 0;
    if (!dot)
        return NULL;
    slen = (size_t)(dot - topic);
    for (const char *c = dot + 1; c < topic + len; c++) {
        if (*c < '0' || *c > '9')
            return NULL;
        p = p * 10 + (uint32_t)(*c - '0');
    }
    for (i = 0; i < self->nparts; i++) {
        s_part_t *part = &self->parts[i];
        if (part->partition == p && strlen (part->stream) == slen &&
            memcmp (part->stream, topic, slen) == 0)
            return part;
    }
    return NULL;
}

/* Takes live events off the SUB socket into their partitions' pending
 * lists, switching a partition to catch-up when one is missing. */
static void
s_drain_sub (rt_consumer_t *self)
{
    int count;
    for (count = 0; count < S_DRAIN_MAX; count++) {
        zmq_msg_t topic, body;
        s_part_t *part;
        Retain__V1__Envelope *env;
        zmq_msg_init (&topic);
        if (zmq_msg_recv (&topic, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            return;
        }
        zmq_msg_init (&body);
        if (!zmq_msg_more (&topic) || zmq_msg_recv (&body, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            continue;
        }
        part = s_find_part (self, zmq_msg_data (&topic), zmq_msg_size (&topic));
        env = part && part->owned && !part->catchup
                  ? retain__v1__envelope__unpack (NULL, zmq_msg_size (&body), zmq_msg_data (&body))
                  : NULL;
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
        if (!env)
            continue;
        part->live = true;
        if (env->pseq <= part->offset + part->npending) {
            retain__v1__envelope__free_unpacked (env, NULL); /* already have it */
            continue;
        }
        if (env->pseq > part->offset + part->npending + 1) {
            /* Something between was dropped: the log has it. */
            if (part->head < env->pseq)
                part->head = env->pseq;
            retain__v1__envelope__free_unpacked (env, NULL);
            s_drop_pending (part);
            part->catchup = true;
            if (self->m_gaps)
                rt_counter_inc (self->m_gaps);
            continue;
        }
        if (part->npending == part->cap) {
            size_t cap = part->cap ? part->cap * 2 : 64;
            Retain__V1__Envelope **p = realloc (part->pending, cap * sizeof *p);
            if (!p) {
                retain__v1__envelope__free_unpacked (env, NULL);
                s_drop_pending (part);
                part->catchup = true;
                continue;
            }
            part->pending = p;
            part->cap = cap;
        }
        part->pending[part->npending++] = env;
        if (part->head < env->pseq)
            part->head = env->pseq;
    }
}

/* Appends "x" to a PostgreSQL array literal being built ("{" first). */
static int
s_array_add (char **arr, size_t *len, size_t *cap, const char *x)
{
    size_t n = strlen (x);
    if (*len + n + 3 > *cap) {
        size_t c = (*cap ? *cap * 2 : 256) + n;
        char *p = realloc (*arr, c);
        if (!p)
            return -1;
        *arr = p;
        *cap = c;
    }
    if (*len > 1)
        (*arr)[(*len)++] = ',';
    memcpy (*arr + *len, x, n);
    *len += n;
    (*arr)[*len] = '\0';
    return 0;
}

/* The round did not commit on a live connection, and no handler said why
 * (a COMMIT refused by a deferred constraint of the handlers' writes, the
 * offsets statement failing): every partition of the round goes back to
 * the log, where each commits on its own, so the one at fault is logged
 * and backs off alone. Retrying the round as it was would repeat the same
 * failure at every poll, unlogged, and hold back every partition in it.
 * Returns 0, or -2 when the connection is gone. */
static int
s_round_failed (rt_consumer_t *self, const char *why)
{
    size_t i;
    rt_db_rollback (self->db);
    if (!rt_db_is_ok (self->db))
        return -2;
    rt_log (RT_LOG_WARN, why, "group", "%s", self->group, "error", "%s", rt_db_error (self->db),
            NULL);
    for (i = 0; i < self->nparts; i++) {
        s_part_t *part = &self->parts[i];
        if (part->owned && part->npending > 0) {
            s_drop_pending (part);
            part->catchup = true;
        }
    }
    return 0;
}

/* Handles the live events of every owned partition in one transaction that
 * moves all their offsets: one COMMIT (one WAL flush) per round rather than
 * one per partition, which keeps latency flat however many partitions a
 * replica owns. A handler failure rolls the round back, puts that partition
 * into backoff and retries the others; a partition whose epoch moved
 * (fenced) is dropped and the others retried; any other failure sends the
 * round's partitions to the log (s_round_failed). Returns 0, or -2 when
 * the connection failed. */
static int
s_flush (rt_consumer_t *self)
{
    for (;;) {
        char *arrs[4] = {NULL, NULL, NULL, NULL};
        size_t lens[4] = {0, 0, 0, 0}, caps[4] = {0, 0, 0, 0};
        const char *params[5];
        PGresult *res = NULL;
        s_part_t *failed = NULL;
        const Retain__V1__Envelope *failed_event = NULL;
        size_t i, k, nparts = 0, nevents = 0;
        int rc = -2, r;

        for (i = 0; i < self->nparts; i++)
            nparts += self->parts[i].owned && self->parts[i].npending > 0;
        if (nparts == 0)
            return 0;
        if (rt_db_begin (self->db) != 0)
            return -2;
        for (i = 0; i < self->nparts && !failed; i++) {
            s_part_t *part = &self->parts[i];
            if (!part->owned || part->npending == 0)
                continue;
            for (k = 0; k < part->npending; k++) {
                if (self->handler (self->db, part->pending[k], self->handler_arg) != 0) {
                    failed = part;
                    failed_event = part->pending[k];
                    break;
                }
            }
            nevents += part->npending;
        }
        if (failed) {
            rt_db_rollback (self->db);
            if (!rt_db_is_ok (self->db))
                return -2;
            failed->failures++;
            failed->retry_at_ms =
                rt_clock_mono_ms () + (failed->failures < 7 ? 100 << failed->failures : 10000);
            failed->catchup = true;
            if (self->m_failures)
                rt_counter_inc (self->m_failures);
            rt_log (RT_LOG_WARN, "handler failed; batch rolled back, will retry", "group", "%s",
                    self->group, "stream", "%s", failed->stream, "partition", "%u",
                    failed->partition, "pseq", "%" PRIu64, failed_event->pseq, "id", "%s",
                    failed_event->id, NULL);
            s_drop_pending (failed);
            continue;
        }

        for (k = 0; k < 4; k++) {
            caps[k] = 256;
            arrs[k] = malloc (caps[k]);
            if (!arrs[k])
                goto cleanup;
            arrs[k][0] = '{';
            arrs[k][1] = '\0';
            lens[k] = 1;
        }
        for (i = 0; i < self->nparts; i++) {
            s_part_t *part = &self->parts[i];
            char num[3][24];
            if (!part->owned || part->npending == 0)
                continue;
            snprintf (num[0], sizeof num[0], "%u", part->partition);
            snprintf (num[1], sizeof num[1], "%" PRId64, part->epoch);
            snprintf (num[2], sizeof num[2], "%" PRIu64, part->pending[part->npending - 1]->pseq);
            if (s_array_add (&arrs[0], &lens[0], &caps[0], part->stream) != 0 ||
                s_array_add (&arrs[1], &lens[1], &caps[1], num[0]) != 0 ||
                s_array_add (&arrs[2], &lens[2], &caps[2], num[1]) != 0 ||
                s_array_add (&arrs[3], &lens[3], &caps[3], num[2]) != 0)
                goto cleanup;
        }
        for (k = 0; k < 4; k++) {
            arrs[k][lens[k]++] = '}';
            arrs[k][lens[k]] = '\0';
        }
        params[0] = self->group;
        params[1] = arrs[0];
        params[2] = arrs[1];
        params[3] = arrs[2];
        params[4] = arrs[3];
        res = rt_db_exec_params (
            self->db,
            "UPDATE bus.offsets o SET pseq = v.pseq, updated_at = now() "
            "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) "
            "AS v(stream, partition, epoch, pseq) WHERE o.grp = $1 AND o.stream = v.stream "
            "AND o.partition = v.partition AND o.epoch = v.epoch "
            "RETURNING o.stream, o.partition",
            5, params);
        if (!res) {
            rc = s_round_failed (self, "offsets not moved; round rolled back, partitions retried "
                                       "from the log");
            goto cleanup;
        }
        if ((size_t)PQntuples (res) != nparts) {
            /* Some partition's epoch moved: another replica owns it now.
             * Undo everything, drop the fenced ones, retry the rest. */
            rt_db_rollback (self->db);
            for (i = 0; i < self->nparts; i++) {
                s_part_t *part = &self->parts[i];
                bool kept = false;
                if (!part->owned || part->npending == 0)
                    continue;
                for (r = 0; r < PQntuples (res) && !kept; r++)
                    kept = (uint32_t)atoi (PQgetvalue (res, r, 1)) == part->partition &&
                           strcmp (PQgetvalue (res, r, 0), part->stream) == 0;
                if (!kept) {
                    if (self->m_fenced)
                        rt_counter_inc (self->m_fenced);
                    rt_log (RT_LOG_WARN,
                            "fenced: partition taken by another replica; effects rolled back",
                            "group", "%s", self->group, "stream", "%s", part->stream, "partition",
                            "%u", part->partition, NULL);
                    s_release (self, part);
                }
            }
            rc = rt_db_is_ok (self->db) ? 1 : -2;
            goto cleanup;
        }
        if (rt_db_commit (self->db) != 0) {
            rc = s_round_failed (self, "commit failed; round rolled back, partitions retried "
                                       "from the log");
            goto cleanup;
        }
        for (i = 0; i < self->nparts; i++) {
            s_part_t *part = &self->parts[i];
            if (!part->owned || part->npending == 0)
                continue;
            part->offset = part->pending[part->npending - 1]->pseq;
            if (part->head < part->offset)
                part->head = part->offset;
            part->failures = 0;
            s_drop_pending (part);
        }
        if (self->m_events)
            rt_counter_add (self->m_events, nevents);
        rc = 0;
    cleanup:
        /* Out of memory mid-round leaves the transaction open: never let a
         * later COMMIT carry these effects without their offsets. */
        if (rc == -2)
            rt_db_rollback (self->db);
        PQclear (res);
        for (k = 0; k < 4; k++)
            free (arrs[k]);
        if (rc != 1)
            return rc;
    }
}

int
rt_consumer_run (rt_consumer_t *self)
{
    char err[256];
    if (s_connect_sub (self, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "consumer cannot subscribe", "error", "%s", err, NULL);
        return -1;
    }
    while (!rt_signal_stopping ()) {
        zmq_pollitem_t items[2];
        int64_t now;
        int timeout = 100;
        bool busy = false;
        size_t i;

        if (!rt_db_is_ok (self->db) || rt_db_generation (self->db) != self->db_generation) {
            if (rt_db_ensure (self->db) != 0)
                break;
            if (s_new_session (self) != 0) {
                rt_db_invalidate (self->db);
                rt_signal_sleep_ms (500);
                continue;
            }
        }
        now = rt_clock_mono_ms ();
        if (now >= self->next_rebalance_ms) {
            if (s_rebalance (self) != 0) {
                rt_log (RT_LOG_WARN, "rebalance failed", "error", "%s", rt_db_error (self->db),
                        NULL);
                rt_db_invalidate (self->db);
                continue;
            }
            self->next_rebalance_ms = now + self->rebalance_ms;
        }
        for (i = 0; i < self->nparts; i++) {
            s_part_t *part = &self->parts[i];
            if (!part->owned || !part->catchup || part->retry_at_ms > now)
                continue;
            if (s_catch_up (self, part) == -2)
                break;
            busy = busy || part->catchup;
        }
        if (!rt_db_is_ok (self->db))
            continue;
        items[0] = (zmq_pollitem_t){self->sub, 0, ZMQ_POLLIN, 0};
        items[1] = (zmq_pollitem_t){NULL, rt_signal_fd (), ZMQ_POLLIN, 0};
        if (busy)
            timeout = 0;
        if (zmq_poll (items, 2, timeout) < 0 && errno != EINTR) {
            rt_log (RT_LOG_ERROR, "poll failed", "error", "%s", zmq_strerror (errno), NULL);
            return -1;
        }
        s_drain_sub (self);
        if (s_flush (self) == -2)
            continue;
        s_set_owned_gauge (self);
    }
    rt_log (RT_LOG_INFO, "consumer stopped", "group", "%s", self->group, NULL);
    return 0;
}
