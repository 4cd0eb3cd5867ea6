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

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_bus.h"
#include "rt_db.h"
#include "rt_log.h"
#include "rt_uuid.h"

#define WRITER_QUEUE_MAX 50000
#define WRITER_ROUND_MAX 2000
/* Rounds in flight at once, each on its own connection. One: on the
 * 2-core reference machine two concurrent rounds were slower (7,300 against
 * 9,100 webhooks/s, tests/bench/ingest), their backends contending for the
 * same index pages and cores; a larger machine may want more. */
#define WRITER_THREADS 1

typedef struct writer_t writer_t;

/* A writer thread and its connection. */
typedef struct {
    writer_t *writer; /* the writer */
    rt_db_t *db;      /* this thread's connection */
    pthread_t thread; /* the thread */
    bool started;     /* thread running */
} s_conn_t;

typedef struct s_job_t {
    writer_job_t job;     /* the caller's job */
    size_t fresh;         /* items that were new */
    size_t duplicates;    /* items already taken in */
    struct s_job_t *next; /* queue order */
} s_job_t;

struct writer_t {
    char *dsn;                      /* PostgreSQL */
    s_conn_t conns[WRITER_THREADS]; /* one connection and thread per concurrent round */
    pthread_mutex_t lock;           /* guards the queue and stopping */
    pthread_cond_t wake;            /* a job arrived, or stop */
    s_job_t *head, *tail;           /* queued jobs */
    size_t queued;                  /* their number */
    bool stopping;                  /* no new jobs; finish and exit */
    rt_histogram_t *m_round;        /* jobs per round */
    rt_histogram_t *m_commit;       /* seconds per round */
    rt_counter_t *m_failed;         /* rounds that did not commit */
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

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* The whole round is one statement, so one round trip and, run on its
 * own, its own transaction: the raw payloads, the de-duplication rows, the
 * outbox envelopes of the rows that were new (in arrival order, so one
 * customer's messages keep their order), and the pollers' cursors. It
 * returns the event ids that were new. */
static const char *s_sql_round =
    "WITH raw AS ("
    " INSERT INTO ingest.raw (id, channel, inbox, content_type, body)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[])),"
    " ins AS ("
    " INSERT INTO ingest.messages (channel, inbox, external_id, event_id, type, raw_id)"
    " SELECT * FROM unnest($6::text[], $7::text[], $8::text[], $9::uuid[], $10::text[],"
    " $11::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id),"
    " ob AS ("
    " INSERT INTO bus.outbox (envelope)"
    " SELECT e.envelope FROM unnest($9::uuid[], $12::bytea[]) WITH ORDINALITY"
    " AS e(id, envelope, ord) JOIN ins ON ins.event_id = e.id ORDER BY e.ord),"
    " cur AS ("
    " INSERT INTO ingest.cursors (name, value)"
    " SELECT * FROM unnest($13::text[], $14::text[])"
    " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now())"
    " SELECT event_id::text FROM ins";

/* Appends bytes to an array literal as a bytea element ("\\x<hex>"). */
static void
s_array_add_bytea (s_buf_t *b, const uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    if (b->len > 1)
        s_put (b, ",", 1);
    s_puts (b, "\"\\\\x");
    for (i = 0; i < len && !b->failed; i++) {
        char pair[2] = {hex[data[i] >> 4], hex[data[i] & 15]};
        s_put (b, pair, 2);
    }
    s_put (b, "\"", 1);
}

enum {
    A_RAW_ID,
    A_RAW_CHANNEL,
    A_RAW_INBOX,
    A_RAW_TYPE,
    A_RAW_BODY,
    A_CHANNEL,
    A_INBOX,
    A_EXTID,
    A_EVID,
    A_TYPE,
    A_RAWREF,
    A_ENVELOPE,
    A_CUR_NAME,
    A_CUR_VALUE,
    A_COUNT
};

static int
s_round (s_conn_t *self, s_job_t *jobs, size_t njobs)
{
    s_buf_t a[A_COUNT];
    const char *params[A_COUNT];
    const char **returned = NULL;
    size_t nreturned = 0, k;
    PGresult *res = NULL;
    s_job_t *job;
    int rc = -1, r, i;

    (void)njobs;
    memset (a, 0, sizeof a);
    for (i = 0; i < A_COUNT; i++)
        s_puts (&a[i], "{");
    for (job = jobs; job; job = job->next) {
        ingest_result_t *result = job->job.result;
        const char *channel = ingest_channel_name (job->job.inbox->channel);
        rt_uuid_t rid = rt_uuid_v7 ();
        char raw_id[RT_UUID_STR_LEN + 1];
        rt_uuid_format (&rid, raw_id);
        s_array_add (&a[A_RAW_ID], raw_id);
        s_array_add (&a[A_RAW_CHANNEL], channel);
        s_array_add (&a[A_RAW_INBOX], job->job.inbox->id);
        s_array_add (&a[A_RAW_TYPE], job->job.raw_type ? job->job.raw_type : "");
        s_array_add_bytea (&a[A_RAW_BODY], job->job.raw, job->job.raw ? job->job.raw_len : 0);
        if (job->job.cursor_name) {
            s_array_add (&a[A_CUR_NAME], job->job.cursor_name);
            s_array_add (&a[A_CUR_VALUE], job->job.cursor_value);
        }
        job->fresh = 0;
        job->duplicates = 0;
        for (k = 0; result && k < result->count; k++) {
            ingest_item_t *item = &result->items[k];
            Retain__V1__Envelope *env =
                rt_envelope_new (item->type, item->key, item->msg, "retain-ingestd");
            uint8_t *packed;
            size_t len;
            if (!env)
                goto cleanup;
            packed = rt_envelope_pack (env, &len);
            if (!packed) {
                rt_envelope_free (env);
                goto cleanup;
            }
            s_array_add (&a[A_CHANNEL], channel);
            s_array_add (&a[A_INBOX], job->job.inbox->id);
            s_array_add (&a[A_EXTID], item->external_id);
            s_array_add (&a[A_EVID], env->id);
            s_array_add (&a[A_TYPE], item->type);
            s_array_add (&a[A_RAWREF], raw_id);
            s_array_add_bytea (&a[A_ENVELOPE], packed, len);
            /* Remember the id to tell new from duplicate afterwards. */
            free (item->event_id);
            item->event_id = strdup (env->id);
            free (packed);
            rt_envelope_free (env);
            if (!item->event_id)
                goto cleanup;
        }
    }
    for (i = 0; i < A_COUNT; i++) {
        s_puts (&a[i], "}");
        if (a[i].failed)
            goto cleanup;
        params[i] = a[i].data;
    }
    res = rt_db_exec_prepared (self->db, "ingest_round", A_COUNT, params, NULL, NULL, 0);
    if (!res) {
        rt_log (RT_LOG_ERROR, "ingest round not committed", "error", "%s", rt_db_error (self->db),
                NULL);
        goto cleanup;
    }
    nreturned = (size_t)PQntuples (res);
    returned = malloc ((nreturned ? nreturned : 1) * sizeof *returned);
    if (!returned)
        goto cleanup;
    for (r = 0; r < PQntuples (res); r++)
        returned[r] = PQgetvalue (res, r, 0);
    qsort (returned, nreturned, sizeof *returned, s_cmp_str);
    for (job = jobs; job; job = job->next) {
        ingest_result_t *result = job->job.result;
        for (k = 0; result && k < result->count; k++) {
            const char *id = result->items[k].event_id;
            if (bsearch (&id, returned, nreturned, sizeof *returned, s_cmp_str))
                job->fresh++;
            else
                job->duplicates++;
        }
    }
    rc = 0;
cleanup:
    free (returned);
    PQclear (res);
    for (i = 0; i < A_COUNT; i++)
        free (a[i].data);
    return rc;
}

static void *
s_thread (void *arg)
{
    s_conn_t *conn = arg;
    writer_t *self = conn->writer;
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
        if (rt_db_ensure_for (conn->db, 2000) == 0) {
            status = s_round (conn, jobs, n);
            /* A connection that died idle fails the first statement: one
             * more try on a fresh one. */
            if (status != 0 && !rt_db_is_ok (conn->db) && rt_db_ensure_for (conn->db, 2000) == 0)
                status = s_round (conn, jobs, n);
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
    int i;
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->dsn = strdup (dsn);
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
    for (i = 0; i < WRITER_THREADS; i++) {
        s_conn_t *conn = &self->conns[i];
        conn->writer = self;
        conn->db = rt_db_new (dsn, "retain-ingestd-writer");
        if (!self->dsn || !conn->db) {
            snprintf (err, errlen, "out of memory");
            goto fail;
        }
        /* Prepared on every connection: planning the round costs as much as
         * running a small one. */
        rt_db_prepare (conn->db, "ingest_round", s_sql_round);
        if (pthread_create (&conn->thread, NULL, s_thread, conn) != 0) {
            snprintf (err, errlen, "cannot start a writer thread");
            goto fail;
        }
        conn->started = true;
    }
    return self;
fail:
    writer_stop (&self);
    return NULL;
}

void
writer_stop (writer_t **self_p)
{
    writer_t *self;
    int i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
    for (i = 0; i < WRITER_THREADS; i++) {
        if (self->conns[i].started)
            pthread_join (self->conns[i].thread, NULL);
        rt_db_destroy (&self->conns[i].db);
    }
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
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
