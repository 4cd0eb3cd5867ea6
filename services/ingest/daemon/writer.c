/*
 * writer: group commit of what ingestd accepted (see writer.h).
 *
 * One transaction per round holds every job queued meanwhile: under load a
 * round takes hundreds of webhooks and costs one WAL flush; at rest it is
 * one request, answered within a commit. The de-duplication row, the raw
 * payload, the outbox envelope and a poller's cursor of one item all move
 * together, so "answered 2xx" always means "on its way to the log, once".
 */
#include "writer.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_bus.h"
#include "rt_db.h"
#include "rt_log.h"

#define WRITER_QUEUE_MAX 50000
#define WRITER_ROUND_MAX 2000

typedef struct s_job_t {
    writer_job_t job;     /* the caller's job */
    size_t fresh;         /* items that were new */
    size_t duplicates;    /* items already taken in */
    struct s_job_t *next; /* queue order */
} s_job_t;

struct writer_t {
    char *dsn;                /* PostgreSQL */
    rt_db_t *db;              /* the writer's connection, used on its thread only */
    pthread_t thread;         /* the writer thread */
    pthread_mutex_t lock;     /* guards the queue and stopping */
    pthread_cond_t wake;      /* a job arrived, or stop */
    s_job_t *head, *tail;     /* queued jobs */
    size_t queued;            /* their number */
    bool stopping;            /* no new jobs; finish and exit */
    rt_histogram_t *m_round;  /* jobs per round */
    rt_histogram_t *m_commit; /* seconds per round */
    rt_counter_t *m_failed;   /* rounds that did not commit */
};

/* A growable buffer for COPY data and array literals. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} s_buf_t;

static void
s_put (s_buf_t *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *d;
        while (cap < b->len + n + 1)
            cap *= 2;
        d = realloc (b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy (b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void
s_puts (s_buf_t *b, const char *s)
{
    s_put (b, s, strlen (s));
}

/* Appends an element to a PostgreSQL array literal, quoted, so external ids
 * may hold any character. */
static void
s_array_add (s_buf_t *b, const char *value)
{
    const char *p;
    if (b->len > 1)
        s_put (b, ",", 1);
    s_put (b, "\"", 1);
    for (p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            s_put (b, "\\", 1);
        s_put (b, p, 1);
    }
    s_put (b, "\"", 1);
}

static void
s_be32 (s_buf_t *b, int32_t v)
{
    uint32_t n = htonl ((uint32_t)v);
    s_put (b, &n, 4);
}

static void
s_be16 (s_buf_t *b, int16_t v)
{
    uint16_t n = htons ((uint16_t)v);
    s_put (b, &n, 2);
}

static void
s_be64 (s_buf_t *b, int64_t v)
{
    s_be32 (b, (int32_t)((uint64_t)v >> 32));
    s_be32 (b, (int32_t)(uint32_t)v);
}

static void
s_copy_header (s_buf_t *b)
{
    static const char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
    b->len = 0;
    s_put (b, sig, sizeof sig);
    s_be32 (b, 0);
    s_be32 (b, 0);
}

static void
s_field (s_buf_t *b, const void *p, size_t n)
{
    s_be32 (b, (int32_t)n);
    s_put (b, p, n);
}

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* One round: everything in `jobs` in one transaction. 0 committed, -1 not. */
static int
s_round (writer_t *self, s_job_t *jobs, size_t njobs)
{
    s_buf_t channels = {0}, inboxes = {0}, extids = {0}, evids = {0}, types = {0}, raws = {0};
    s_buf_t copy = {0};
    Retain__V1__Envelope **envs = NULL;
    int64_t *raw_ids = NULL;
    size_t nitems = 0, i, k, e;
    PGresult *res = NULL;
    char count[24];
    const char *params[6];
    int rc = -1, r;
    s_job_t *job;
    const char **returned = NULL;
    size_t nreturned = 0;

    for (job = jobs; job; job = job->next)
        nitems += job->job.result ? job->job.result->count : 0;
    envs = calloc (nitems ? nitems : 1, sizeof *envs);
    raw_ids = calloc (njobs ? njobs : 1, sizeof *raw_ids);
    if (!envs || !raw_ids)
        goto cleanup;

    if (rt_db_begin (self->db) != 0)
        goto cleanup;

    /* Raw payloads get their ids first, so the de-dup rows can name them. */
    snprintf (count, sizeof count, "%zu", njobs);
    params[0] = count;
    res = rt_db_exec_params (self->db,
                             "SELECT nextval('ingest.raw_id_seq') FROM generate_series(1, $1::int)",
                             1, params);
    if (!res || (size_t)PQntuples (res) != njobs)
        goto rollback;
    for (r = 0; r < PQntuples (res); r++)
        raw_ids[r] = strtoll (PQgetvalue (res, r, 0), NULL, 10);
    PQclear (res);
    res = NULL;
    s_copy_header (&copy);
    for (job = jobs, i = 0; job; job = job->next, i++) {
        const char *type = job->job.raw_type ? job->job.raw_type : "";
        const char *channel = ingest_channel_name (job->job.inbox->channel);
        s_be16 (&copy, 5);
        s_be32 (&copy, 8);
        s_be64 (&copy, raw_ids[i]);
        s_field (&copy, channel, strlen (channel));
        s_field (&copy, job->job.inbox->id, strlen (job->job.inbox->id));
        s_field (&copy, type, strlen (type));
        s_field (&copy, job->job.raw ? (const char *)job->job.raw : "",
                 job->job.raw ? job->job.raw_len : 0);
    }
    s_be16 (&copy, -1);
    if (copy.failed ||
        rt_db_copy_in (self->db,
                       "COPY ingest.raw (id, channel, inbox, content_type, body) FROM STDIN "
                       "(FORMAT binary)",
                       copy.data, copy.len) != 0)
        goto rollback;

    /* De-duplicate every item against what was taken in before. */
    s_puts (&channels, "{");
    s_puts (&inboxes, "{");
    s_puts (&extids, "{");
    s_puts (&evids, "{");
    s_puts (&types, "{");
    s_puts (&raws, "{");
    e = 0;
    for (job = jobs, i = 0; job; job = job->next, i++) {
        ingest_result_t *result = job->job.result;
        for (k = 0; result && k < result->count; k++) {
            ingest_item_t *item = &result->items[k];
            char rawid[24];
            envs[e] = rt_envelope_new (item->type, item->key, item->msg, "retain-ingestd");
            if (!envs[e])
                goto rollback;
            snprintf (rawid, sizeof rawid, "%lld", (long long)raw_ids[i]);
            s_array_add (&channels, ingest_channel_name (job->job.inbox->channel));
            s_array_add (&inboxes, job->job.inbox->id);
            s_array_add (&extids, item->external_id);
            s_array_add (&evids, envs[e]->id);
            s_array_add (&types, item->type);
            s_array_add (&raws, rawid);
            e++;
        }
    }
    s_puts (&channels, "}");
    s_puts (&inboxes, "}");
    s_puts (&extids, "}");
    s_puts (&evids, "}");
    s_puts (&types, "}");
    s_puts (&raws, "}");
    if (channels.failed || inboxes.failed || extids.failed || evids.failed || types.failed ||
        raws.failed)
        goto rollback;

    if (nitems > 0) {
        params[0] = channels.data;
        params[1] = inboxes.data;
        params[2] = extids.data;
        params[3] = evids.data;
        params[4] = types.data;
        params[5] = raws.data;
        res = rt_db_exec_params (
            self->db,
            "INSERT INTO ingest.messages (channel, inbox, external_id, event_id, type, raw_id) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], "
            "$6::bigint[]) ON CONFLICT DO NOTHING RETURNING event_id::text",
            6, params);
        if (!res)
            goto rollback;
        /* Mark which envelopes are new: their ids came back. */
        nreturned = (size_t)PQntuples (res);
        returned = malloc ((nreturned ? nreturned : 1) * sizeof *returned);
        if (!returned)
            goto rollback;
        for (r = 0; r < PQntuples (res); r++)
            returned[r] = PQgetvalue (res, r, 0);
        qsort (returned, nreturned, sizeof *returned, s_cmp_str);
        s_copy_header (&copy);
        e = 0;
        for (job = jobs; job; job = job->next) {
            ingest_result_t *result = job->job.result;
            job->fresh = 0;
            job->duplicates = 0;
            for (k = 0; result && k < result->count; k++, e++) {
                const char *id = envs[e]->id;
                bool fresh =
                    bsearch (&id, returned, nreturned, sizeof *returned, s_cmp_str) != NULL;
                if (!fresh) {
                    job->duplicates++;
                    continue;
                }
                job->fresh++;
                {
                    size_t len;
                    uint8_t *data = rt_envelope_pack (envs[e], &len);
                    if (!data)
                        goto rollback;
                    s_be16 (&copy, 1);
                    s_field (&copy, data, len);
                    free (data);
                }
            }
        }
        s_be16 (&copy, -1);
        free (returned);
        returned = NULL;
        PQclear (res);
        res = NULL;
        if (copy.failed ||
            rt_db_copy_in (self->db, "COPY bus.outbox (envelope) FROM STDIN (FORMAT binary)",
                           copy.data, copy.len) != 0)
            goto rollback;
    }

    for (job = jobs; job; job = job->next) {
        if (!job->job.cursor_name)
            continue;
        params[0] = job->job.cursor_name;
        params[1] = job->job.cursor_value;
        res = rt_db_exec_params (self->db,
                                 "INSERT INTO ingest.cursors (name, value) VALUES ($1, $2) "
                                 "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, "
                                 "updated_at = now()",
                                 2, params);
        if (!res)
            goto rollback;
        PQclear (res);
        res = NULL;
    }
    if (rt_db_commit (self->db) != 0)
        goto rollback;
    rc = 0;
    goto cleanup;
rollback:
    rt_log (RT_LOG_ERROR, "ingest round not committed", "error", "%s", rt_db_error (self->db),
            "jobs", "%zu", njobs, NULL);
    rt_db_rollback (self->db);
cleanup:
    free (returned);
    PQclear (res);
    for (i = 0; envs && i < nitems; i++)
        rt_envelope_free (envs[i]);
    free (envs);
    free (raw_ids);
    free (channels.data);
    free (inboxes.data);
    free (extids.data);
    free (evids.data);
    free (types.data);
    free (raws.data);
    free (copy.data);
    return rc;
}

static void *
s_thread (void *arg)
{
    writer_t *self = arg;
    for (;;) {
        s_job_t *jobs, *job, *last;
        size_t n = 0;
        struct timespec t0, t1;
        int status;

        pthread_mutex_lock (&self->lock);
        while (!self->head && !self->stopping)
            pthread_cond_wait (&self->wake, &self->lock);
        if (!self->head && self->stopping) {
            pthread_mutex_unlock (&self->lock);
            break;
        }
        /* Take up to a round's worth, in order. */
        jobs = self->head;
        last = jobs;
        n = 1;
        while (last->next && n < WRITER_ROUND_MAX) {
            last = last->next;
            n++;
        }
        self->head = last->next;
        if (!self->head)
            self->tail = NULL;
        last->next = NULL;
        self->queued -= n;
        pthread_mutex_unlock (&self->lock);

        clock_gettime (CLOCK_MONOTONIC, &t0);
        status = -1;
        if (rt_db_ensure_for (self->db, 2000) == 0) {
            status = s_round (self, jobs, n);
            /* A connection that died idle fails the first statement: one
             * more try on a fresh one. */
            if (status != 0 && !rt_db_is_ok (self->db) && rt_db_ensure_for (self->db, 2000) == 0)
                status = s_round (self, jobs, n);
        }
        clock_gettime (CLOCK_MONOTONIC, &t1);
        if (self->m_round)
            rt_histogram_observe (self->m_round, (double)n);
        if (self->m_commit)
            rt_histogram_observe (self->m_commit, (double)(t1.tv_sec - t0.tv_sec) +
                                                      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (status != 0 && self->m_failed)
            rt_counter_inc (self->m_failed);
        job = jobs;
        while (job) {
            s_job_t *next = job->next;
            job->job.done (job->job.done_arg, status, status == 0 ? job->fresh : 0,
                           status == 0 ? job->duplicates : 0);
            free (job);
            job = next;
        }
    }
    return NULL;
}

writer_t *
writer_start (const char *dsn, rt_metrics_t *metrics, char *err, size_t errlen)
{
    static const double round_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};
    writer_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->dsn = strdup (dsn);
    self->db = rt_db_new (dsn, "retain-ingestd-writer");
    if (!self->dsn || !self->db) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    if (metrics) {
        self->m_round =
            rt_metrics_histogram (metrics, "retain_ingest_writer_round_jobs", "",
                                  "Requests committed together in one transaction.", round_bounds,
                                  sizeof round_bounds / sizeof *round_bounds);
        self->m_commit = rt_metrics_histogram (metrics, "retain_ingest_writer_round_seconds", "",
                                               "Time to write and commit a round.", NULL, 0);
        self->m_failed = rt_metrics_counter (metrics, "retain_ingest_writer_failures_total", "",
                                             "Rounds that could not be committed (answered 503).");
    }
    if (pthread_create (&self->thread, NULL, s_thread, self) != 0) {
        snprintf (err, errlen, "cannot start the writer thread");
        goto fail;
    }
    return self;
fail:
    rt_db_destroy (&self->db);
    free (self->dsn);
    free (self);
    return NULL;
}

void
writer_stop (writer_t **self_p)
{
    writer_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    rt_db_destroy (&self->db);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}

int
writer_submit (writer_t *self, const writer_job_t *job)
{
    s_job_t *j = calloc (1, sizeof *j);
    if (!j)
        return -1;
    j->job = *job;
    pthread_mutex_lock (&self->lock);
    if (self->stopping || self->queued >= WRITER_QUEUE_MAX) {
        pthread_mutex_unlock (&self->lock);
        free (j);
        return -1;
    }
    if (self->tail)
        self->tail->next = j;
    else
        self->head = j;
    self->tail = j;
    self->queued++;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    return 0;
}

typedef struct {
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* signalled when settled */
    bool settled;         /* done was called */
    int status;           /* its status */
    size_t fresh, duplicates;
} s_wait_t;

static void
s_wait_done (void *arg, int status, size_t fresh, size_t duplicates)
{
    s_wait_t *w = arg;
    pthread_mutex_lock (&w->lock);
    w->settled = true;
    w->status = status;
    w->fresh = fresh;
    w->duplicates = duplicates;
    pthread_cond_signal (&w->cond);
    pthread_mutex_unlock (&w->lock);
}

int
writer_submit_wait (writer_t *self, const writer_job_t *job, size_t *fresh, size_t *duplicates)
{
    s_wait_t w;
    writer_job_t j = *job;
    memset (&w, 0, sizeof w);
    pthread_mutex_init (&w.lock, NULL);
    pthread_cond_init (&w.cond, NULL);
    j.done = s_wait_done;
    j.done_arg = &w;
    if (writer_submit (self, &j) != 0) {
        pthread_mutex_destroy (&w.lock);
        pthread_cond_destroy (&w.cond);
        return -1;
    }
    pthread_mutex_lock (&w.lock);
    while (!w.settled)
        pthread_cond_wait (&w.cond, &w.lock);
    pthread_mutex_unlock (&w.lock);
    pthread_mutex_destroy (&w.lock);
    pthread_cond_destroy (&w.cond);
    if (fresh)
        *fresh = w.fresh;
    if (duplicates)
        *duplicates = w.duplicates;
    return w.status;
}
