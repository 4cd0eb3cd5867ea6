/*
 * writer: group commit of what ingestd accepted (see writer.h).
 *
 * One transaction per round holds every job queued meanwhile: under load a
 * round takes hundreds of webhooks and costs one WAL flush; at rest it is
 * one request, answered within a commit. The de-duplication row, the raw
 * payload, the outbox envelope and a poller's cursor of one item all move
 * together, so "answered 2xx" always means "on its way to the log, once".
 *
 * A round is one transaction, so one bad value in it fails everyone's rows.
 * Two defences, in order:
 *   1. Validate before batching (writer_submit, on the caller's thread).
 *      Every value bound as text must be UTF-8 without NUL. What came from
 *      outside and is kept as it came is escaped instead (rt_utf8_escape):
 *        - the raw content type is audit data: escaped, the webhook taken;
 *        - an external id de-duplicates, so changing it must map a
 *          provider's retry to the same row: escaping is deterministic, so
 *          it does. It is not injective (a literal "\xff" and the byte 0xff
 *          meet), but both come from the same (channel, inbox), and the
 *          worst a collision does to the id with bad bytes (taken for a
 *          duplicate) is what refusing it would do every time;
 *        - the envelope key goes to bus.events.key (text) through busd, and
 *          chooses the partition: escaped, deterministically too.
 *      What names things of ours (channel, inbox id, a poller's cursor,
 *      the item's type) is refused when it is not text, as is an external
 *      id too long for the de-duplication index: changed, it would name
 *      something else. A refused job never joins a round.
 *   2. Isolate what still fails. When PostgreSQL refuses a round with an
 *      error that belongs to an item (s_item_classes), the round is split in
 *      halves, each committed as its own round, recursively: every good job
 *      commits, in the round's order, and a job that fails alone is refused
 *      (status 1, logged once with its SQLSTATE, counted). k bad jobs in a
 *      round of n cost about 2k log2(n) more statements; validation keeps
 *      that rare. Any other failure (the connection lost, 57P01, 08xxx, a
 *      deadlock) belongs to no item: the round is failed whole, as 503.
 *
 * The way to the log. With busd's ingress endpoints configured (the direct
 * path), the round keeps each new item's envelope in its de-duplication
 * row (ingest.messages.envelope) instead of an outbox row, the webhooks are
 * answered after COMMIT as before, and the round's new envelopes are handed
 * to the publisher (publisher.h), which posts them to busd and moves what
 * busd does not acknowledge in time from the rows to outbox.pending. A
 * webhook then costs one row write instead of three (outbox insert, busd's
 * delete of it, and its dead tuple vacuumed).
 *
 * How ingest remembers what busd acknowledged, chosen for the least write
 * per webhook:
 *   - a flag per row (published = true, or envelope = NULL) would be an
 *     UPDATE of every row a few ms after its INSERT: a second heap tuple
 *     and WAL record per webhook, HOT or not, which is most of what the
 *     direct path saves;
 *   - instead one watermark per writer (ingest.publishers.upto, one row,
 *     updated in place a few times a second: HOT, no index touched): every
 *     envelope with an event id before it is acknowledged or in the outbox.
 *     Event ids are UUIDv7 made in order on this one thread, so "before"
 *     is an order on the rows, and a block-range index (ingest 004) finds
 *     the rows after a point for almost nothing per insert.
 * After a crash the rows after the dead writer's watermark are moved to
 * the outbox in one statement, found dead because its row's advisory lock,
 * held by this writer's connection, is free (which also means its last
 * round has committed or rolled back). Some of them had been acknowledged
 * (at most PERSIST_MS of them): busd de-duplicates by envelope id, so a
 * resend is never a second event. Without endpoints the round appends to
 * the outbox as it always did, and the envelope column stays NULL.
 */
#include "writer.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_buf.h"
#include "rt_clock.h"
#include "rt_bus.h"
#include "rt_db.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_utf8.h"
#include "rt_uuid.h"

#include "publisher.h"

#define WRITER_QUEUE_MAX 50000
#define WRITER_ROUND_MAX 2000
/* Rounds in flight at once, each on its own connection. One: on the
 * 2-core reference machine two concurrent rounds were slower (7,300 against
 * 9,100 webhooks/s, tests/bench/ingest), their backends contending for the
 * same index pages and cores; a larger machine may want more. The direct
 * path counts on one: its watermark takes the event ids in the order the
 * rounds commit (publisher.c). */
#define WRITER_THREADS 1
_Static_assert(WRITER_THREADS == 1, "the publisher's watermark needs rounds in id order");

/* A job's outcome, as writer_done_fn's status; and a round's. */
enum {
    S_STORED = 0,  /* committed */
    S_AWAY = -1,   /* not stored, for no fault of the job's: 503 */
    S_REFUSED = 1, /* never storable */
    S_ITEM = 2     /* a round only: PostgreSQL refused an item in it */
};

/* Why a job was refused: the reason label of
 * retain_ingest_writer_refused_total. */
typedef enum {
    S_WHY_TEXT,     /* a name of ours that is not text */
    S_WHY_TYPE,     /* an item whose type the bus does not know */
    S_WHY_LENGTH,   /* an external id over WRITER_EXTERNAL_ID_MAX */
    S_WHY_POSTGRES, /* PostgreSQL refused it alone */
    S_WHY_COUNT
} s_why_t;

static const char *const s_why_label[S_WHY_COUNT] = {"not_text", "unknown_type", "too_long",
                                                     "postgres"};

/* SQLSTATE classes that belong to an item and not to the database: a round
 * failing with one is split to find the item. */
static const struct {
    const char *class; /* first two characters of the SQLSTATE */
    const char *name;  /* for the refusal's reason */
} s_item_classes[] = {
    /* Two jobs' rows meeting in one statement (ON CONFLICT DO UPDATE of one
     * cursor twice): the halves part them. */
    {"21", "cardinality violation"},
    /* A value the column cannot take: encoding, range, format. */
    {"22", "data exception"},
    /* A CHECK, NOT NULL, unique or foreign key the row breaks. */
    {"23", "integrity constraint violation"},
    /* A value too large for an index row. */
    {"54", "program limit exceeded"},
};

typedef struct writer_t writer_t;
typedef struct s_job_t s_job_t;

/* A writer thread and its connection. */
typedef struct {
    writer_t *writer;                 /* the writer */
    rt_db_t *db;                      /* this thread's connection */
    pthread_t thread;                 /* the thread */
    bool started;                     /* thread running */
    s_job_t *round[WRITER_ROUND_MAX]; /* the jobs of the round in hand, in order */
    bool uncertain;                   /* a COMMIT of this round went unanswered */
} s_conn_t;

struct s_job_t {
    writer_job_t job;     /* the caller's job */
    char *raw_type;       /* job.raw_type escaped, owned; NULL when it was text */
    char **external_id;   /* per item: its external id escaped, owned, or NULL when it was
                             text; the array is NULL when no item needed it */
    char **key;           /* per item: its envelope key escaped, the same way */
    size_t nitems;        /* the items when checked: the length of those arrays */
    int status;           /* the outcome, a writer_done_fn status */
    int why;              /* when refused: an s_why_t; -1 otherwise */
    char *reason;         /* when refused: why, a sentence for the caller; owned */
    char *error;          /* when PostgreSQL refused it: its message, for the log; owned */
    char sqlstate[6];     /* and its SQLSTATE */
    size_t fresh;         /* items that were new */
    size_t duplicates;    /* items already taken in */
    struct s_job_t *next; /* queue order */
};

struct writer_t {
    char *dsn;                            /* PostgreSQL */
    s_conn_t conns[WRITER_THREADS];       /* one connection and thread per concurrent round */
    pthread_mutex_t lock;                 /* guards the queue and stopping */
    pthread_cond_t wake;                  /* a job arrived, or stop */
    s_job_t *head, *tail;                 /* queued jobs */
    size_t queued;                        /* their number */
    bool stopping;                        /* no new jobs; finish and exit */
    rt_histogram_t *m_round;              /* jobs per round */
    rt_histogram_t *m_commit;             /* seconds per round */
    rt_counter_t *m_failed;               /* rounds that did not commit */
    rt_counter_t *m_escaped;              /* values stored escaped */
    rt_counter_t *m_refused[S_WHY_COUNT]; /* jobs refused, by why */
    rt_counter_t *m_splits;               /* rounds split to isolate an item */
    pthread_mutex_t db_lock;              /* guards db_ok and db_error */
    bool db_ok;                           /* the last round reached PostgreSQL */
    char db_error[256];                   /* why not, for /readyz */
    publisher_t *pub;                     /* the way to busd, and the recovery of dead writers */
    bool direct;                          /* envelopes in the rows and to busd, not the outbox */
};

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* A round is one transaction of one or two statements. The first writes
 * the raw payloads, the de-duplication rows (on the direct path with their
 * envelopes, $14, a binary bytea[]; otherwise $14 is empty and unnest pads
 * the column with NULLs) and the pollers' cursors, and returns the event
 * ids that were new; without the direct path the second appends the
 * envelopes of those (rt_outbox_append_batch), in arrival order, so one
 * customer's messages keep their order. */
static const char *s_sql_round =
    "WITH raw AS ("
    " INSERT INTO ingest.raw (id, channel, inbox, content_type, body)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[])),"
    " ins AS ("
    " INSERT INTO ingest.messages (channel, inbox, external_id, event_id, type, raw_id,"
    " envelope)"
    " SELECT * FROM unnest($6::text[], $7::text[], $8::text[], $9::uuid[], $10::text[],"
    " $11::uuid[], $14::bytea[]) ON CONFLICT DO NOTHING RETURNING event_id),"
    " cur AS ("
    " INSERT INTO ingest.cursors (name, value)"
    " SELECT * FROM unnest($12::text[], $13::text[])"
    " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now())"
    " SELECT event_id::text FROM ins";

/* The round statement's parameters, in order. */
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
    A_CUR_NAME,
    A_CUR_VALUE,
    A_ENVELOPE,
    A_COUNT
};

/* What a round sends, made from its jobs. */
typedef struct {
    rt_buf_t a[A_COUNT];         /* the round statement's array literals, by A_ */
    ProtobufCBinaryData *packed; /* every item's envelope, packed, in arrival order; owned */
    size_t nitems;               /* items made so far: the length of packed */
} s_batch_t;

/* --- what the round stores of a job ----------------------------------- */

static const char *
s_raw_type (const s_job_t *j)
{
    if (j->raw_type)
        return j->raw_type;
    return j->job.raw_type ? j->job.raw_type : "";
}

static const char *
s_external_id (const s_job_t *j, size_t k)
{
    if (j->external_id && j->external_id[k])
        return j->external_id[k];
    return j->job.result->items[k].external_id;
}

static const char *
s_key (const s_job_t *j, size_t k)
{
    if (j->key && j->key[k])
        return j->key[k];
    return j->job.result->items[k].key ? j->job.result->items[k].key : "";
}

static void
s_job_free (s_job_t *j)
{
    size_t k;
    for (k = 0; k < j->nitems; k++) {
        if (j->external_id)
            free (j->external_id[k]);
        if (j->key)
            free (j->key[k]);
    }
    free (j->external_id);
    free (j->key);
    free (j->raw_type);
    free (j->reason);
    free (j->error);
    free (j);
}

/* --- validation, on the caller's thread -------------------------------- */

static bool
s_is_text (const char *s)
{
    return s && rt_utf8_text_ok (s, strlen (s));
}

/* Marks the job refused with a reason. Returns 1. */
__attribute__ ((format (printf, 3, 4))) static int
s_refuse (s_job_t *j, s_why_t why, const char *fmt, ...)
{
    va_list ap;
    j->status = S_REFUSED;
    j->why = (int)why;
    free (j->reason);
    va_start (ap, fmt);
    if (vasprintf (&j->reason, fmt, ap) < 0)
        j->reason = NULL;
    va_end (ap);
    return 1;
}

/* Leaves *copy NULL when value is text, else makes it the escaped value
 * (counted); copies, when not NULL, is an item's array of count copies,
 * made on first need, and copy is its k-th. 0, or -1 out of memory. */
static int
s_escape (writer_t *self, const char *value, char **copy, char ***copies, size_t count, size_t k)
{
    size_t len = strlen (value);
    if (rt_utf8_text_ok (value, len))
        return 0;
    if (copies) {
        if (!*copies)
            *copies = calloc (count, sizeof **copies);
        if (!*copies)
            return -1;
        copy = &(*copies)[k];
    }
    *copy = rt_utf8_escape (value, len);
    if (!*copy)
        return -1;
    if (self->m_escaped)
        rt_counter_inc (self->m_escaped);
    return 0;
}

/* Checks every value the round binds as text (see the head of this file
 * for what is escaped and what refused). 0 when the job may join a round,
 * 1 when it is refused (status, why and reason set), -1 out of memory. */
static int
s_check (writer_t *self, s_job_t *j)
{
    const writer_job_t *job = &j->job;
    const char *channel = ingest_channel_name (job->inbox->channel);
    size_t k, count = job->result ? job->result->count : 0;

    j->nitems = count;
    if (!s_is_text (channel))
        return s_refuse (j, S_WHY_TEXT, "the channel's name is not UTF-8 text");
    if (!s_is_text (job->inbox->id))
        return s_refuse (j, S_WHY_TEXT, "the inbox id is not UTF-8 text");
    if (job->cursor_name && (!s_is_text (job->cursor_name) || !s_is_text (job->cursor_value)))
        return s_refuse (j, S_WHY_TEXT, "the poller's cursor is not UTF-8 text");
    if (job->raw_type && s_escape (self, job->raw_type, &j->raw_type, NULL, 0, 0) != 0)
        return -1;
    for (k = 0; k < count; k++) {
        const ingest_item_t *item = &job->result->items[k];
        size_t len;
        if (!item->type || !rt_bus_type_find (item->type))
            return s_refuse (j, S_WHY_TYPE, "item %zu has no known event type", k + 1);
        if (!item->external_id)
            return s_refuse (j, S_WHY_TEXT, "item %zu has no external id", k + 1);
        if (s_escape (self, item->external_id, NULL, &j->external_id, count, k) != 0)
            return -1;
        if (item->key && s_escape (self, item->key, NULL, &j->key, count, k) != 0)
            return -1;
        /* The message's own strings (a text, a name, a file name) came from
         * outside as well, and busd refuses an envelope whose payload is not
         * text: kept escaped here, or a webhook answered 200 would end in
         * outbox.rejected. */
        {
            int fixed = rt_pb_text_repair (item->msg);
            if (fixed < 0)
                return -1;
            if (fixed > 0 && self->m_escaped)
                rt_counter_add (self->m_escaped, (uint64_t)fixed);
        }
        len = strlen (s_external_id (j, k));
        if (len > WRITER_EXTERNAL_ID_MAX)
            return s_refuse (j, S_WHY_LENGTH,
                             "item %zu's external id is %zu bytes; at most %d can be stored", k + 1,
                             len, WRITER_EXTERNAL_ID_MAX);
    }
    return 0;
}

/* --- a round ------------------------------------------------------------ */

/* The entry of s_item_classes the last error's SQLSTATE falls in, or NULL
 * when the failure belongs to no item (also when the connection is gone,
 * whatever the SQLSTATE: 57P01 and 08xxx come with a dead connection). */
static const char *
s_item_class (rt_db_t *db)
{
    const char *sqlstate = rt_db_sqlstate (db);
    size_t i;
    if (!rt_db_is_ok (db) || strlen (sqlstate) != 5)
        return NULL;
    for (i = 0; i < sizeof s_item_classes / sizeof *s_item_classes; i++)
        if (strncmp (sqlstate, s_item_classes[i].class, 2) == 0)
            return s_item_classes[i].name;
    return NULL;
}

static void
s_batch_free (s_batch_t *b)
{
    size_t i;
    for (i = 0; i < A_COUNT; i++)
        rt_buf_free (&b->a[i]);
    for (i = 0; i < b->nitems; i++)
        free (b->packed[i].data);
    free (b->packed);
}

/* Makes the round's parameters and envelopes from jobs[0..n): a fresh
 * event id for every item (kept in item->event_id, to tell new from
 * duplicate afterwards) and each job's counts reset. 0, or -1 out of
 * memory (b is then still to be freed). */
static int
s_batch_make (s_batch_t *b, s_job_t *const *jobs, size_t n)
{
    size_t total = 0, k, j;
    int i;

    memset (b, 0, sizeof *b);
    for (j = 0; j < n; j++)
        total += jobs[j]->job.result ? jobs[j]->job.result->count : 0;
    b->packed = calloc (total ? total : 1, sizeof *b->packed);
    if (!b->packed)
        return -1;
    for (i = 0; i < A_COUNT; i++)
        rt_buf_array_begin (&b->a[i]);
    for (j = 0; j < n; j++) {
        s_job_t *job = jobs[j];
        ingest_result_t *result = job->job.result;
        const char *channel = ingest_channel_name (job->job.inbox->channel);
        rt_uuid_t rid = rt_uuid_v7 ();
        char raw_id[RT_UUID_STR_LEN + 1];
        rt_uuid_format (&rid, raw_id);
        rt_buf_array_text (&b->a[A_RAW_ID], raw_id);
        rt_buf_array_text (&b->a[A_RAW_CHANNEL], channel);
        rt_buf_array_text (&b->a[A_RAW_INBOX], job->job.inbox->id);
        rt_buf_array_text (&b->a[A_RAW_TYPE], s_raw_type (job));
        rt_buf_array_bytea (&b->a[A_RAW_BODY], job->job.raw, job->job.raw ? job->job.raw_len : 0);
        if (job->job.cursor_name) {
            rt_buf_array_text (&b->a[A_CUR_NAME], job->job.cursor_name);
            rt_buf_array_text (&b->a[A_CUR_VALUE], job->job.cursor_value);
        }
        job->fresh = 0;
        job->duplicates = 0;
        for (k = 0; result && k < result->count; k++) {
            ingest_item_t *item = &result->items[k];
            ProtobufCBinaryData *packed = &b->packed[b->nitems];
            /* The type was checked at submit: NULL here is out of memory. */
            Retain__V1__Envelope *env =
                rt_envelope_new (item->type, s_key (job, k), item->msg, "retain-ingestd");
            if (!env)
                return -1;
            packed->data = rt_envelope_pack (env, &packed->len);
            free (item->event_id);
            item->event_id = strdup (env->id);
            if (packed->data)
                b->nitems++;
            if (!packed->data || !item->event_id) {
                rt_envelope_free (env);
                return -1;
            }
            rt_buf_array_text (&b->a[A_CHANNEL], channel);
            rt_buf_array_text (&b->a[A_INBOX], job->job.inbox->id);
            rt_buf_array_text (&b->a[A_EXTID], s_external_id (job, k));
            rt_buf_array_text (&b->a[A_EVID], env->id);
            rt_buf_array_text (&b->a[A_TYPE], item->type);
            rt_buf_array_text (&b->a[A_RAWREF], raw_id);
            rt_envelope_free (env);
        }
    }
    for (i = 0; i < A_COUNT; i++) {
        rt_buf_array_end (&b->a[i]);
        if (b->a[i].failed)
            return -1;
    }
    return 0;
}

/* Sets each job's counts from the round's result (the event ids that were
 * new) and gathers the envelopes of the new items into fresh, and their
 * ids into fresh_ids, in arrival order; returns how many, or -1 out of
 * memory. */
static long
s_batch_fresh (const s_batch_t *b, s_job_t *const *jobs, size_t n, PGresult *res,
               ProtobufCBinaryData *fresh, const char **fresh_ids)
{
    size_t nreturned = (size_t)PQntuples (res), nfresh = 0, at = 0, k, j;
    const char **returned = malloc ((nreturned ? nreturned : 1) * sizeof *returned);
    if (!returned)
        return -1;
    for (j = 0; j < nreturned; j++)
        returned[j] = PQgetvalue (res, (int)j, 0);
    qsort (returned, nreturned, sizeof *returned, s_cmp_str);
    for (j = 0; j < n; j++) {
        ingest_result_t *result = jobs[j]->job.result;
        for (k = 0; result && k < result->count; k++, at++) {
            const char *id = result->items[k].event_id;
            if (bsearch (&id, returned, nreturned, sizeof *returned, s_cmp_str)) {
                jobs[j]->fresh++;
                fresh_ids[nfresh] = id;
                fresh[nfresh++] = b->packed[at];
            } else
                jobs[j]->duplicates++;
        }
    }
    free (returned);
    return (long)nfresh;
}

/* Writes jobs[0..n) as one transaction: the round statement, then (off
 * the direct path) the outbox envelopes of the items that were new; on the
 * direct path hands those to the publisher after COMMIT. S_STORED (each
 * job's counts set), S_ITEM when PostgreSQL refused something that belongs
 * to an item, or S_AWAY. */
static int
s_round (s_conn_t *self, s_job_t *const *jobs, size_t n)
{
    writer_t *w = self->writer;
    s_batch_t b;
    rt_buf_t envelopes = {0};
    const char *params[A_COUNT];
    int lengths[A_COUNT] = {0};
    int formats[A_COUNT] = {0};
    ProtobufCBinaryData *fresh = NULL;
    const char **fresh_ids = NULL;
    PGresult *res = NULL;
    const char *class;
    long nfresh;
    int rc = S_AWAY, i;

    if (s_batch_make (&b, jobs, n) != 0)
        goto cleanup;
    for (i = 0; i < A_COUNT; i++)
        params[i] = b.a[i].data;
    /* Every item's envelope: a duplicate's is dropped with its row. */
    if (rt_outbox_bytea_array (&envelopes, b.packed, w->direct ? b.nitems : 0) != 0)
        goto cleanup;
    params[A_ENVELOPE] = envelopes.data;
    lengths[A_ENVELOPE] = (int)envelopes.len;
    formats[A_ENVELOPE] = 1;
    fresh = malloc ((b.nitems ? b.nitems : 1) * sizeof *fresh);
    fresh_ids = malloc ((b.nitems ? b.nitems : 1) * sizeof *fresh_ids);
    if (!fresh || !fresh_ids)
        goto cleanup;
    if (rt_db_begin (self->db) != 0)
        goto refused;
    res = rt_db_exec_prepared (self->db, "ingest_round", A_COUNT, params, lengths, formats, 0);
    if (!res)
        goto refused;
    nfresh = s_batch_fresh (&b, jobs, n, res, fresh, fresh_ids);
    if (nfresh < 0)
        goto cleanup;
    if (!w->direct && rt_outbox_append_batch (self->db, fresh, (size_t)nfresh) != 0)
        goto refused;
    if (rt_db_commit (self->db) != 0) {
        /* Lost with the connection, the COMMIT may have taken effect. */
        self->uncertain = self->uncertain || !rt_db_is_ok (self->db);
        goto refused;
    }
    if (w->direct)
        publisher_hand (w->pub, fresh_ids, fresh, (size_t)nfresh);
    rc = S_STORED;
    goto cleanup;
refused:
    class = s_item_class (self->db);
    /* An item's failure is logged once, with the job, when it is
     * isolated; the rounds tried on the way say little more. */
    rt_log (class ? RT_LOG_DEBUG : RT_LOG_ERROR, "ingest round not committed",
            rt_log_uint ("jobs", n), rt_log_str ("error", rt_db_error (self->db)),
            rt_log_str ("sqlstate", rt_db_sqlstate (self->db)));
    if (class)
        rc = S_ITEM;
cleanup:
    /* Keeps the error of the statement that failed (rt_db_rollback). */
    if (rc != S_STORED)
        rt_db_rollback (self->db);
    PQclear (res);
    free (fresh);
    free (fresh_ids);
    rt_buf_free (&envelopes);
    s_batch_free (&b);
    return rc;
}

/* One round on a live connection, as s_round answers. */
static int
s_attempt (s_conn_t *self, s_job_t *const *jobs, size_t n)
{
    int rc;
    if (rt_db_ensure_for (self->db, 2000) != 0)
        return S_AWAY;
    rc = s_round (self, jobs, n);
    /* A connection that died idle fails the first statement: one more try
     * on a fresh one. */
    if (rc == S_AWAY && !rt_db_is_ok (self->db) && rt_db_ensure_for (self->db, 2000) == 0)
        rc = s_round (self, jobs, n);
    return rc;
}

/* Commits jobs[0..n) as one round or, when PostgreSQL refuses an item in
 * it, as two halves, recursively, so that only a job failing alone is
 * refused and the others commit in their order. Sets every job's status.
 * Returns S_AWAY once PostgreSQL is away (the jobs not committed by then
 * are failed without another try), else S_STORED. */
static int
s_commit (s_conn_t *self, s_job_t *const *jobs, size_t n)
{
    writer_t *w = self->writer;
    size_t half = n / 2, i;
    const char *class;
    int rc = s_attempt (self, jobs, n);

    if (rc == S_STORED || rc == S_AWAY) {
        for (i = 0; i < n; i++)
            jobs[i]->status = rc;
        return rc;
    }
    if (n == 1) {
        s_job_t *j = jobs[0];
        class = s_item_class (self->db);
        snprintf (j->sqlstate, sizeof j->sqlstate, "%s", rt_db_sqlstate (self->db));
        /* The first line only: the DETAIL that follows holds the row,
         * which is a customer's message and has no place in a log. */
        j->error = strndup (rt_db_error (self->db), strcspn (rt_db_error (self->db), "\n"));
        s_refuse (j, S_WHY_POSTGRES, "PostgreSQL refuses to store it: SQLSTATE %s (%s)",
                  j->sqlstate, class ? class : "");
        return S_STORED;
    }
    if (w->m_splits)
        rt_counter_inc (w->m_splits);
    if (s_commit (self, jobs, half) == S_AWAY) {
        for (i = half; i < n; i++)
            jobs[i]->status = S_AWAY;
        return S_AWAY;
    }
    return s_commit (self, jobs + half, n - half);
}

/* Logs and counts a refusal, tells the result why, frees the job and
 * calls done. */
static void
s_settle (writer_t *self, s_job_t *j)
{
    ingest_result_t *result = j->job.result;
    const char *reason = j->reason ? j->reason : "it cannot be stored";
    writer_done_fn done;
    void *arg;
    size_t fresh, duplicates;
    int status;
    if (j->status == S_REFUSED) {
        if (self->m_refused[j->why])
            rt_counter_inc (self->m_refused[j->why]);
        rt_log (RT_LOG_WARN, "ingest job refused: it can never be stored",
                rt_log_str ("inbox", j->job.inbox->id),
                rt_log_str ("channel", ingest_channel_name (j->job.inbox->channel)),
                rt_log_str ("reason", reason), rt_log_str ("sqlstate", j->sqlstate),
                rt_log_str ("error", j->error ? j->error : ""));
        if (result) {
            result->status = 422;
            result->label = WRITER_REFUSED_LABEL;
            snprintf (result->reason, sizeof result->reason, "%s", reason);
        }
    }
    done = j->job.done;
    arg = j->job.done_arg;
    status = j->status;
    fresh = status == S_STORED ? j->fresh : 0;
    duplicates = status == S_STORED ? j->duplicates : 0;
    /* Freed first: the result, by which the job's copies are counted, is
     * the caller's again as soon as done is called. */
    s_job_free (j);
    done (arg, status, fresh, duplicates);
}

/* Records whether the writer reaches PostgreSQL, for writer_db_ok. */
static void
s_note_db (writer_t *self, bool ok, rt_db_t *db)
{
    pthread_mutex_lock (&self->db_lock);
    self->db_ok = ok;
    if (!ok) {
        const char *e = rt_db_error (db);
        size_t n = strcspn (e, "\n");
        snprintf (self->db_error, sizeof self->db_error, "PostgreSQL unreachable: %.*s", (int)n, e);
    }
    pthread_mutex_unlock (&self->db_lock);
}

bool
writer_db_ok (writer_t *self, char *why, size_t whylen)
{
    bool ok;
    pthread_mutex_lock (&self->db_lock);
    ok = self->db_ok;
    if (!ok && why)
        snprintf (why, whylen, "%s", self->db_error);
    pthread_mutex_unlock (&self->db_lock);
    return ok;
}

static void *
s_thread (void *arg)
{
    s_conn_t *conn = arg;
    writer_t *self = conn->writer;
    for (;;) {
        s_job_t *jobs, *job, *last;
        size_t n = 0, taken = 0, i;
        int64_t t0;
        bool failed = false;

        pthread_mutex_lock (&self->lock);
        while (!self->head && !self->stopping) {
            struct timespec until;
            if (writer_db_ok (self, NULL, 0)) {
                pthread_cond_wait (&self->wake, &self->lock);
                continue;
            }
            /* PostgreSQL was away at the last round: with nothing to write,
             * look once a second whether it is back, so readiness does not
             * wait for the next webhook to find out. */
            clock_gettime (CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait (&self->wake, &self->lock, &until);
            if (self->head || self->stopping)
                break;
            pthread_mutex_unlock (&self->lock);
            s_note_db (self, rt_db_ensure_for (conn->db, 0) == 0, conn->db);
            pthread_mutex_lock (&self->lock);
        }
        if (!self->head && self->stopping) {
            pthread_mutex_unlock (&self->lock);
            break;
        }
        /* Take up to a round's worth, in order. */
        jobs = self->head;
        last = jobs;
        taken = 1;
        while (last->next && taken < WRITER_ROUND_MAX) {
            last = last->next;
            taken++;
        }
        self->head = last->next;
        if (!self->head)
            self->tail = NULL;
        last->next = NULL;
        self->queued -= taken;
        pthread_mutex_unlock (&self->lock);

        /* Jobs refused at submit never join the round: answered first,
         * they need nothing from PostgreSQL. */
        job = jobs;
        while (job) {
            s_job_t *next = job->next;
            if (job->status == S_REFUSED)
                s_settle (self, job);
            else
                conn->round[n++] = job;
            job = next;
        }
        if (n == 0)
            continue;

        t0 = rt_clock_mono_us ();
        if (self->direct)
            publisher_round_begin (self->pub);
        conn->uncertain = false;
        s_commit (conn, conn->round, n);
        if (self->direct)
            publisher_round_end (self->pub, conn->uncertain);
        if (self->m_round)
            rt_histogram_observe (self->m_round, (double)n);
        if (self->m_commit)
            rt_histogram_observe (self->m_commit, (double)(rt_clock_mono_us () - t0) / 1e6);
        for (i = 0; i < n; i++)
            failed = failed || conn->round[i]->status == S_AWAY;
        s_note_db (self, !failed, conn->db);
        if (failed && self->m_failed)
            rt_counter_inc (self->m_failed);
        for (i = 0; i < n; i++)
            s_settle (self, conn->round[i]);
    }
    return NULL;
}

writer_t *
writer_start (const char *dsn, rt_metrics_t *metrics, char *err, size_t errlen)
{
    return writer_start_bus (dsn, metrics, NULL, err, errlen);
}

writer_t *
writer_start_bus (const char *dsn, rt_metrics_t *metrics, const writer_bus_t *bus, char *err,
                  size_t errlen)
{
    publisher_config_t pc = {0};
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
    pthread_mutex_init (&self->db_lock, NULL);
    self->db_ok = true;
    if (metrics) {
        self->m_round =
            rt_metrics_histogram (metrics, "retain_ingest_writer_round_jobs", "",
                                  "Requests committed together in one transaction.", round_bounds,
                                  sizeof round_bounds / sizeof *round_bounds);
        self->m_commit = rt_metrics_histogram (metrics, "retain_ingest_writer_round_seconds", "",
                                               "Time to write and commit a round.", NULL, 0);
        self->m_failed = rt_metrics_counter (metrics, "retain_ingest_writer_failures_total", "",
                                             "Rounds that could not be committed (answered 503).");
        self->m_escaped = rt_metrics_counter (
            metrics, "retain_ingest_writer_escaped_total", "",
            "Values stored escaped because they were not UTF-8 text (content types, external "
            "ids, keys).");
        self->m_splits = rt_metrics_counter (
            metrics, "retain_ingest_writer_splits_total", "",
            "Rounds split in halves because PostgreSQL refused an item in them.");
        for (i = 0; i < S_WHY_COUNT; i++) {
            char labels[64];
            snprintf (labels, sizeof labels, "reason=\"%s\"", s_why_label[i]);
            self->m_refused[i] = rt_metrics_counter (
                metrics, "retain_ingest_writer_refused_total", labels,
                "Jobs refused because they can never be stored (answered 422, not retried).");
        }
    }
    pc.dsn = dsn;
    pc.endpoints = bus ? bus->endpoints : NULL;
    pc.curve = bus ? bus->curve : NULL;
    pc.ack_timeout_ms = bus ? bus->ack_timeout_ms : 0;
    pc.member = bus && bus->member ? bus->member : "writer";
    pc.metrics = metrics;
    self->pub = publisher_start (&pc, err, errlen);
    if (!self->pub)
        goto fail;
    self->direct = publisher_direct (self->pub);
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
        rt_outbox_prepare (conn->db);
        rt_db_set_on_connect (conn->db, publisher_claim, self->pub);
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
    }
    /* After the rounds, before their connections close: while they are
     * open, their advisory locks say this writer lives. */
    publisher_stop (&self->pub);
    for (i = 0; i < WRITER_THREADS; i++)
        rt_db_destroy (&self->conns[i].db);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->db_lock);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}

int
writer_submit (writer_t *self, const writer_job_t *job)
{
    s_job_t *j;
    assert (job->inbox && job->done);
    j = calloc (1, sizeof *j);
    if (!j)
        return -1;
    j->job = *job;
    j->status = S_AWAY;
    j->why = -1;
    /* On the caller's thread, before the job can meet any other. */
    if (s_check (self, j) < 0) {
        s_job_free (j);
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    if (self->stopping || self->queued >= WRITER_QUEUE_MAX) {
        pthread_mutex_unlock (&self->lock);
        s_job_free (j);
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
