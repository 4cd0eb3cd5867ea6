/*
 * publisher: envelopes from the writer's rows to busd, or to the outbox
 * (see publisher.h; writer.c's head says why a watermark).
 *
 * The thread's queue holds every envelope handed over and not yet settled,
 * in the order of its event ids (UUIDv7, made in order on the writer's one
 * thread), so an ack finds its entry by binary search and the watermark is
 * the id of the first unsettled entry. An entry is WAITING (handed, not
 * posted: the window is full), POSTED, or DONE (acknowledged, or moved to
 * the outbox); done entries leave from the head.
 *
 * The watermark must never pass an envelope that may be in a committed row
 * and is not settled. Three places hold such envelopes: the thread's
 * queue, the hand-over queue, and a round being written (its ids are made
 * after publisher_round_begin made the round's floor, an id of its own,
 * under the lock). With none of them the watermark is a new id made under
 * the lock: every later round's floor comes after it. A round whose COMMIT
 * went unanswered, or whose envelopes could not be kept, pins the
 * watermark at its floor until every envelope from there on is moved to
 * the outbox (s_move_since), which busd de-duplicates.
 *
 * Crash invariants: the persisted watermark only ever names a point before
 * which everything is acknowledged (busd's commit) or in outbox.pending
 * (our commit). An ingestd killed anywhere leaves at most the envelopes
 * after its last persisted watermark unsettled, and the next writer to
 * look (at start, then every RECOVER_MS) moves them.
 */
#include "publisher.h"

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "publisher_queue.h"
#include "rt_buf.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_producer.h"
#include "rt_uuid.h"

/* Envelopes posted and not yet acknowledged at once: far above what busd
 * takes in one batch, far below what a resend scan makes slow. */
#define WINDOW 16384
/* The producer resends what busd has not acknowledged after this; a
 * fraction of the ack timeout, so a busd restarted in time still gets it. */
#define RESEND_MS 500
/* How often the watermark is persisted while it moves. */
#define PERSIST_MS 250
/* How often dead writers' rows are looked for. */
#define RECOVER_MS 5000
/* Envelopes moved to the outbox in one statement at most. */
#define MOVE_MAX 10000

/* Why an envelope went to the outbox: the reason label of
 * retain_ingest_direct_fallback_total. */
typedef enum {
    S_WHY_TIMEOUT,  /* busd did not acknowledge within the ack timeout */
    S_WHY_REJECTED, /* busd refused it (the outbox sets it aside for a human) */
    S_WHY_STOPPING, /* ingestd stopped with it unacknowledged */
    S_WHY_RECOVERY, /* a writer died with it unsettled, or a round's fate was unknown */
    S_WHY_COUNT
} s_why_t;

static const char *const s_why_label[S_WHY_COUNT] = {"timeout", "rejected", "stopping", "recovery"};

struct publisher_t {
    rt_db_t *db;                           /* the publisher's own connection */
    rt_producer_t *producer;               /* to busd's ingress; NULL: outbox only */
    char *member;                          /* this process's name in ingest.publishers */
    int ack_timeout_ms;                    /* the bound on waiting for busd */
    int wake_fd;                           /* eventfd: something was handed, or stop */
    pthread_t thread;                      /* the thread */
    bool started;                          /* it runs */
    pub_queue_t queue;                     /* the thread's: handed, not settled */
    size_t next_post;                      /* index in queue.v of the first WAITING entry */
    size_t unsettled;                      /* entries of queue not DONE */
    size_t nrejected;                      /* entries of queue refused by busd, not moved */
    pthread_mutex_t lock;                  /* guards the fields below */
    pub_queue_t handed;                    /* committed by the writer, not yet taken */
    bool floor_set;                        /* a round is being written */
    rt_uuid_t floor;                       /* an id before all of that round's */
    bool pinned;                           /* rows from pin on must go to the outbox */
    rt_uuid_t pin;                         /* from where */
    int id;                                /* this writer's row, 0 until made */
    rt_uuid_t persisted;                   /* the last watermark persisted */
    uint64_t hands;                        /* rounds handed over so far */
    uint64_t hands_persisted;              /* hands when the watermark was last persisted */
    bool stopping;                         /* publisher_stop was called */
    rt_counter_t *m_published;             /* envelopes posted to busd (first post) */
    rt_counter_t *m_acked;                 /* envelopes acknowledged by busd */
    rt_counter_t *m_fallback[S_WHY_COUNT]; /* envelopes moved to the outbox, by why */
    rt_gauge_t *m_in_flight;               /* committed, neither acknowledged nor moved */
};

/* The advisory lock of a writer's row: (hashtext('ingest.publishers'), id). */
static const char *s_sql_create =
    "WITH r AS (INSERT INTO ingest.publishers (upto, member) VALUES ($1::uuid, $2) RETURNING id)"
    " SELECT id, pg_advisory_lock(hashtext('ingest.publishers'), id) FROM r";
static const char *s_sql_lock = "SELECT pg_advisory_lock(hashtext('ingest.publishers'), $1::int)";
/* Also after another writer took this row for dead (a connection lost for
 * long) and deleted it: the row comes back with the last watermark. */
static const char *s_sql_persist =
    "INSERT INTO ingest.publishers (id, upto, member) OVERRIDING SYSTEM VALUE"
    " VALUES ($1::int, $2::uuid, $3) ON CONFLICT (id) DO UPDATE"
    " SET upto = EXCLUDED.upto, seen_at = now()";
static const char *s_sql_forget = "DELETE FROM ingest.publishers WHERE id = $1::int";
/* The range lets the block-range index on event_id find the rows. */
static const char *s_sql_move =
    "INSERT INTO " RT_OUTBOX_PENDING " (envelope)"
    " SELECT envelope FROM ingest.messages"
    " WHERE event_id BETWEEN $2::uuid AND $3::uuid AND event_id = ANY($1::uuid[])"
    " AND envelope IS NOT NULL ORDER BY event_id";
static const char *s_sql_move_since =
    "INSERT INTO " RT_OUTBOX_PENDING " (envelope)"
    " SELECT envelope FROM ingest.messages"
    " WHERE event_id >= $1::uuid AND envelope IS NOT NULL ORDER BY event_id";
/* A row whose lock this session can take belongs to a writer that is gone:
 * its backend, which committed its rounds, has ended. (uuid has no min()
 * before PostgreSQL 16.) */
static const char *s_sql_dead =
    "SELECT ((array_agg(upto ORDER BY upto))[1])::text, array_agg(id)::text, count(*)"
    " FROM ingest.publishers"
    " WHERE id <> $1::int AND pg_try_advisory_xact_lock(hashtext('ingest.publishers'), id)";
static const char *s_sql_bury = "DELETE FROM ingest.publishers WHERE id = ANY($1::int[])";

static void
s_wake (publisher_t *self)
{
    uint64_t one = 1;
    if (write (self->wake_fd, &one, sizeof one) < 0) {
        /* The counter is full only when the thread is long gone: nothing
         * to wake. */
    }
}

/* --- the writer's side --------------------------------------------------- */

bool
publisher_direct (const publisher_t *self)
{
    return self->producer != NULL;
}

int
publisher_claim (rt_db_t *db, void *arg)
{
    publisher_t *self = arg;
    char idtext[16], upto[RT_UUID_STR_LEN + 1];
    const char *params[2];
    PGresult *res;
    rt_uuid_t now;
    int id;

    if (!publisher_direct (self))
        return 0;
    pthread_mutex_lock (&self->lock);
    id = self->id;
    /* Before any round of this writer: every id it makes comes after. */
    now = rt_uuid_v7 ();
    pthread_mutex_unlock (&self->lock);
    if (id == 0) {
        rt_uuid_format (&now, upto);
        params[0] = upto;
        params[1] = self->member;
        res = rt_db_exec_params (db, s_sql_create, 2, params);
        if (!res || PQntuples (res) != 1) {
            PQclear (res);
            return -1;
        }
        id = atoi (PQgetvalue (res, 0, 0));
        PQclear (res);
        pthread_mutex_lock (&self->lock);
        self->id = id;
        self->persisted = now;
        pthread_mutex_unlock (&self->lock);
        rt_log (RT_LOG_INFO, "direct path to busd: writer registered", rt_log_int ("writer", id));
        s_wake (self);
        return 0;
    }
    /* A new session: the lock went with the old one. The row itself is
     * the publisher thread's to keep (s_persist). */
    snprintf (idtext, sizeof idtext, "%d", id);
    params[0] = idtext;
    res = rt_db_exec_params (db, s_sql_lock, 1, params);
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}

void
publisher_round_begin (publisher_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->floor = rt_uuid_v7 ();
    self->floor_set = true;
    pthread_mutex_unlock (&self->lock);
}

/* Pins the watermark at the round's floor (the lock held). */
static void
s_pin_floor (publisher_t *self)
{
    if (!self->pinned || pub_id_cmp (&self->floor, &self->pin) < 0)
        self->pin = self->floor;
    self->pinned = true;
}

void
publisher_hand (publisher_t *self, const char *const *ids, const ProtobufCBinaryData *packed,
                size_t n)
{
    int64_t due = rt_clock_mono_ms () + self->ack_timeout_ms;
    size_t i, made = 0;
    pthread_mutex_lock (&self->lock);
    if (!pub_queue_reserve (&self->handed, n, NULL))
        goto lost;
    for (i = 0; i < n; i++) {
        pub_entry_t *e = &self->handed.v[self->handed.len + made];
        memset (e, 0, sizeof *e);
        if (rt_uuid_parse (ids[i], &e->id) != 0)
            continue; /* made by rt_envelope_new: cannot happen */
        snprintf (e->text, sizeof e->text, "%s", ids[i]);
        e->data = malloc (packed[i].len ? packed[i].len : 1);
        if (!e->data)
            goto lost;
        memcpy (e->data, packed[i].data, packed[i].len);
        e->len = packed[i].len;
        e->due_ms = due;
        e->state = PUB_WAITING;
        made++;
    }
    self->handed.len += made;
    self->hands++;
    pthread_mutex_unlock (&self->lock);
    s_wake (self);
    return;
lost:
    /* Kept apart from what was handed: the whole round goes through the
     * outbox instead. */
    for (i = 0; i < made; i++)
        free (self->handed.v[self->handed.len + i].data);
    s_pin_floor (self);
    pthread_mutex_unlock (&self->lock);
    rt_log (RT_LOG_ERROR, "direct path: out of memory; the round goes through the outbox",
            rt_log_uint ("envelopes", n));
    s_wake (self);
}

void
publisher_round_end (publisher_t *self, bool uncertain)
{
    pthread_mutex_lock (&self->lock);
    if (uncertain && self->floor_set)
        s_pin_floor (self);
    self->floor_set = false;
    pthread_mutex_unlock (&self->lock);
    if (uncertain)
        s_wake (self);
}

/* --- the thread's side --------------------------------------------------- */

/* The watermark now: everything before it is settled. */
static rt_uuid_t
s_watermark (publisher_t *self)
{
    rt_uuid_t w;
    bool have = false;
    pthread_mutex_lock (&self->lock);
    if (self->queue.head < self->queue.len) {
        w = self->queue.v[self->queue.head].id;
        have = true;
    }
    if (self->handed.head < self->handed.len &&
        (!have || pub_id_cmp (&self->handed.v[self->handed.head].id, &w) < 0)) {
        w = self->handed.v[self->handed.head].id;
        have = true;
    }
    if (self->floor_set && (!have || pub_id_cmp (&self->floor, &w) < 0)) {
        w = self->floor;
        have = true;
    }
    if (self->pinned && (!have || pub_id_cmp (&self->pin, &w) < 0)) {
        w = self->pin;
        have = true;
    }
    if (!have)
        w = rt_uuid_v7 ();
    pthread_mutex_unlock (&self->lock);
    return w;
}

/* Writes the watermark when it moved (and always when force). */
static void
s_persist (publisher_t *self, bool force)
{
    char idtext[16], upto[RT_UUID_STR_LEN + 1];
    const char *params[3] = {idtext, upto, self->member};
    rt_uuid_t w = s_watermark (self);
    PGresult *res;
    uint64_t hands;
    bool idle;
    int id;
    pthread_mutex_lock (&self->lock);
    id = self->id;
    hands = self->hands;
    /* Nothing handed since, nothing unsettled: the row is still true, and
     * an idle writer writes nothing. */
    idle = (hands == self->hands_persisted && self->unsettled == 0 && !self->pinned) ||
           pub_id_cmp (&w, &self->persisted) == 0;
    pthread_mutex_unlock (&self->lock);
    if (id == 0 || (!force && idle))
        return;
    if (rt_db_ensure_for (self->db, 0) != 0)
        return;
    snprintf (idtext, sizeof idtext, "%d", id);
    rt_uuid_format (&w, upto);
    res = rt_db_exec_prepared (self->db, "ingest_publisher_persist", 3, params, NULL, NULL, 0);
    if (!res)
        return; /* the next one will do: the old watermark is still true */
    PQclear (res);
    pthread_mutex_lock (&self->lock);
    self->persisted = w;
    self->hands_persisted = hands;
    pthread_mutex_unlock (&self->lock);
}

/* Moves every envelope with an event id from `from` on to the outbox, in
 * one statement. 0, or -1 (logged). */
static int
s_move_since (publisher_t *self, const char *from, long long *moved)
{
    const char *params[1] = {from};
    PGresult *res =
        rt_db_exec_prepared (self->db, "ingest_publisher_move_since", 1, params, NULL, NULL, 0);
    if (!res)
        return -1;
    *moved = atoll (PQcmdTuples (res));
    PQclear (res);
    return 0;
}

/* A round's fate was unknown, or its envelopes could not be kept: every
 * envelope from its floor on goes to the outbox, then the pin comes off. */
static void
s_unpin (publisher_t *self)
{
    char from[RT_UUID_STR_LEN + 1];
    rt_uuid_t pin;
    long long moved = 0;
    pthread_mutex_lock (&self->lock);
    if (!self->pinned) {
        pthread_mutex_unlock (&self->lock);
        return;
    }
    pin = self->pin;
    pthread_mutex_unlock (&self->lock);
    if (rt_db_ensure_for (self->db, 0) != 0)
        return;
    rt_uuid_format (&pin, from);
    if (s_move_since (self, from, &moved) != 0) {
        rt_log (RT_LOG_WARN, "direct path: cannot move an uncertain round to the outbox yet",
                rt_log_str ("error", rt_db_error (self->db)));
        return;
    }
    if (self->m_fallback[S_WHY_RECOVERY])
        rt_counter_add (self->m_fallback[S_WHY_RECOVERY], (uint64_t)moved);
    rt_log (RT_LOG_WARN,
            "direct path: envelopes of a round whose commit went unanswered moved to "
            "the outbox",
            rt_log_str ("reason", s_why_label[S_WHY_RECOVERY]), rt_log_int ("envelopes", moved));
    pthread_mutex_lock (&self->lock);
    /* A later pin, made while this one was moved, stays. */
    if (self->pinned && pub_id_cmp (&self->pin, &pin) == 0)
        self->pinned = false;
    pthread_mutex_unlock (&self->lock);
}

/* Finds the rows of writers that died (their advisory lock is free) and
 * moves every envelope from the oldest of their watermarks on to the
 * outbox, deleting the rows, in one transaction. */
static void
s_recover (publisher_t *self)
{
    char idtext[16];
    const char *params[1] = {idtext};
    PGresult *res = NULL;
    long long moved = 0;
    char *ids = NULL;
    int id;

    if (rt_db_ensure_for (self->db, 0) != 0)
        return;
    pthread_mutex_lock (&self->lock);
    id = self->id;
    pthread_mutex_unlock (&self->lock);
    snprintf (idtext, sizeof idtext, "%d", id);
    if (rt_db_begin (self->db) != 0)
        goto failed;
    res = rt_db_exec_prepared (self->db, "ingest_publisher_dead", 1, params, NULL, NULL, 0);
    if (!res)
        goto failed;
    if (atoll (PQgetvalue (res, 0, 2)) == 0) {
        PQclear (res);
        rt_db_rollback (self->db);
        return;
    }
    ids = strdup (PQgetvalue (res, 0, 1));
    /* A later statement: its snapshot sees every round the dead writers'
     * backends committed before they ended and let go of their locks. */
    if (!ids || s_move_since (self, PQgetvalue (res, 0, 0), &moved) != 0)
        goto failed;
    PQclear (res);
    params[0] = ids;
    res = rt_db_exec_prepared (self->db, "ingest_publisher_bury", 1, params, NULL, NULL, 0);
    if (!res || rt_db_commit (self->db) != 0)
        goto failed;
    if (self->m_fallback[S_WHY_RECOVERY])
        rt_counter_add (self->m_fallback[S_WHY_RECOVERY], (uint64_t)moved);
    rt_log (RT_LOG_WARN,
            "direct path: envelopes of writers that stopped unsettled moved to the "
            "outbox",
            rt_log_str ("writers", ids), rt_log_str ("reason", s_why_label[S_WHY_RECOVERY]),
            rt_log_int ("envelopes", moved));
    PQclear (res);
    free (ids);
    return;
failed:
    rt_log (RT_LOG_WARN, "direct path: cannot recover dead writers' envelopes yet",
            rt_log_str ("error", rt_db_error (self->db)));
    rt_db_rollback (self->db);
    PQclear (res);
    free (ids);
}

/* Settles an entry. */
static void
s_done (publisher_t *self, pub_entry_t *e)
{
    if (e->state == PUB_DONE)
        return;
    if (e->rejected)
        self->nrejected--;
    e->state = PUB_DONE;
    free (e->data);
    e->data = NULL;
    self->unsettled--;
}

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    publisher_t *self = arg;
    rt_uuid_t id;
    pub_entry_t *e;
    if (rt_uuid_parse (ack->id, &id) != 0)
        return;
    e = pub_queue_find (&self->queue, &id);
    if (!e || e->state != PUB_POSTED)
        return;
    if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED) {
        /* Through the outbox busd sets it aside for a human. */
        rt_log (RT_LOG_ERROR, "direct path: busd refused an envelope; it goes to the outbox",
                rt_log_str ("id", ack->id), rt_log_str ("error", ack->error ? ack->error : ""));
        if (!e->rejected)
            self->nrejected++;
        e->rejected = true;
        return;
    }
    s_done (self, e);
    if (self->m_acked)
        rt_counter_inc (self->m_acked);
}

/* Moves the unsettled entries among v[0..n) (those due, refused, or all
 * when `all`) to the outbox in statements of up to MOVE_MAX; the reason
 * they are counted under is `why` (refused ones: S_WHY_REJECTED). */
static void
s_fallback (publisher_t *self, bool all, s_why_t why)
{
    int64_t now = rt_clock_mono_ms ();
    size_t i = self->queue.head;
    while (i < self->queue.len) {
        rt_buf_t ids = {0};
        const char *params[3];
        char lo[RT_UUID_STR_LEN + 1] = "", hi[RT_UUID_STR_LEN + 1] = "";
        size_t picked[MOVE_MAX], n = 0, nrejected = 0, k;
        PGresult *res;
        bool due_only_passed = false;

        rt_buf_array_begin (&ids);
        for (; i < self->queue.len && n < MOVE_MAX; i++) {
            pub_entry_t *e = &self->queue.v[i];
            bool due = all || e->due_ms <= now;
            if (e->state == PUB_DONE)
                continue;
            if (!due && !e->rejected) {
                /* The entries after are due later; only refused ones can
                 * still be among them. */
                due_only_passed = true;
                if (self->nrejected == 0)
                    break;
                continue;
            }
            picked[n++] = i;
            nrejected += e->rejected;
            rt_buf_array_text (&ids, e->text);
            if (!lo[0])
                snprintf (lo, sizeof lo, "%s", e->text);
            snprintf (hi, sizeof hi, "%s", e->text);
        }
        rt_buf_array_end (&ids);
        if (n == 0 || ids.failed || rt_db_ensure_for (self->db, 0) != 0) {
            rt_buf_free (&ids);
            return;
        }
        params[0] = ids.data;
        params[1] = lo;
        params[2] = hi;
        res = rt_db_exec_prepared (self->db, "ingest_publisher_move", 3, params, NULL, NULL, 0);
        rt_buf_free (&ids);
        if (!res) {
            /* Still unsettled, still resent to busd: tried again soon. */
            rt_log (RT_LOG_WARN, "direct path: cannot move envelopes to the outbox yet",
                    rt_log_uint ("envelopes", n), rt_log_str ("error", rt_db_error (self->db)));
            return;
        }
        if ((size_t)atoll (PQcmdTuples (res)) != n)
            rt_log (RT_LOG_ERROR, "direct path: envelopes to move not found in ingest.messages",
                    rt_log_uint ("envelopes", n), rt_log_str ("moved", PQcmdTuples (res)));
        PQclear (res);
        for (k = 0; k < n; k++) {
            pub_entry_t *e = &self->queue.v[picked[k]];
            if (e->state == PUB_POSTED && self->producer)
                rt_producer_forget (self->producer, e->text);
            s_done (self, e);
        }
        if (n > nrejected && self->m_fallback[why])
            rt_counter_add (self->m_fallback[why], n - nrejected);
        if (nrejected && self->m_fallback[S_WHY_REJECTED])
            rt_counter_add (self->m_fallback[S_WHY_REJECTED], nrejected);
        rt_log (
            RT_LOG_WARN, "direct path: envelopes busd has not acknowledged moved to the outbox",
            rt_log_str ("reason", nrejected == n ? s_why_label[S_WHY_REJECTED] : s_why_label[why]),
            rt_log_uint ("envelopes", n), rt_log_uint ("refused", nrejected),
            rt_log_int ("ack_timeout_ms", self->ack_timeout_ms));
        if (due_only_passed && self->nrejected == 0)
            return;
    }
}

/* Takes what the writer handed over into the thread's queue. */
static void
s_take (publisher_t *self)
{
    size_t n, shifted;
    pthread_mutex_lock (&self->lock);
    n = self->handed.len - self->handed.head;
    if (n > 0 && pub_queue_reserve (&self->queue, n, &shifted)) {
        memcpy (self->queue.v + self->queue.len, self->handed.v + self->handed.head,
                n * sizeof *self->queue.v);
        self->queue.len += n;
        self->next_post -= shifted < self->next_post ? shifted : self->next_post;
        self->unsettled += n;
        self->handed.head = self->handed.len = 0;
    }
    /* Out of memory: left in the hand-over queue, which the watermark
     * still counts, and taken later. */
    pthread_mutex_unlock (&self->lock);
}

/* Posts waiting entries while the window has room. */
static void
s_post (publisher_t *self)
{
    while (self->next_post < self->queue.len && rt_producer_pending (self->producer) < WINDOW) {
        pub_entry_t *e = &self->queue.v[self->next_post];
        if (e->state == PUB_WAITING) {
            /* -1: out of memory or no busd connected yet; the entry stays
             * pending in the producer or goes to the outbox when due. */
            rt_producer_post_packed (self->producer, e->text, e->data, e->len);
            free (e->data);
            e->data = NULL;
            e->state = PUB_POSTED;
            if (self->m_published)
                rt_counter_inc (self->m_published);
        }
        self->next_post++;
    }
}

/* Drops settled entries from the head. */
static void
s_pop (publisher_t *self)
{
    pub_queue_t *q = &self->queue;
    while (q->head < q->len && q->v[q->head].state == PUB_DONE)
        q->head++;
    if (self->next_post < q->head)
        self->next_post = q->head;
    if (q->head == q->len) {
        q->head = q->len = 0;
        self->next_post = 0;
    }
}

static bool
s_handed_empty (publisher_t *self)
{
    bool empty;
    pthread_mutex_lock (&self->lock);
    empty = self->handed.head == self->handed.len;
    pthread_mutex_unlock (&self->lock);
    return empty;
}

static void *
s_thread (void *arg)
{
    publisher_t *self = arg;
    int64_t last_persist = 0, last_recover = -RECOVER_MS, stop_deadline = 0;
    for (;;) {
        int64_t now = rt_clock_mono_ms ();
        bool stopping, pinned;
        uint64_t drained;

        pthread_mutex_lock (&self->lock);
        stopping = self->stopping;
        pinned = self->pinned;
        pthread_mutex_unlock (&self->lock);
        if (stopping && stop_deadline == 0)
            stop_deadline = now + self->ack_timeout_ms;
        s_take (self);
        if (self->producer) {
            int timeout = self->unsettled > 0 ? 20 : 100;
            s_post (self);
            rt_producer_poll_fd (self->producer, s_handed_empty (self) ? timeout : 0, self->wake_fd,
                                 s_on_ack, self);
        } else {
            struct pollfd p = {self->wake_fd, POLLIN, 0};
            poll (&p, 1, 200);
        }
        if (read (self->wake_fd, &drained, sizeof drained) < 0) {
            /* EAGAIN: nothing was signalled. */
        }
        now = rt_clock_mono_ms ();
        if (self->unsettled > 0) {
            bool all = stopping && now >= stop_deadline;
            s_fallback (self, all, all ? S_WHY_STOPPING : S_WHY_TIMEOUT);
        }
        s_pop (self);
        if (pinned)
            s_unpin (self);
        if (self->m_in_flight)
            rt_gauge_set (self->m_in_flight, (double)self->unsettled);
        if (now - last_recover >= RECOVER_MS) {
            last_recover = now;
            s_recover (self);
        }
        if (now - last_persist >= PERSIST_MS) {
            last_persist = now;
            s_persist (self, false);
        }
        if (stopping && s_handed_empty (self) &&
            (self->unsettled == 0 || now >= stop_deadline + 1000))
            break;
    }
    /* Everything settled: this writer's row says nothing any more. */
    if (self->unsettled == 0 && !self->pinned && self->id != 0 &&
        rt_db_ensure_for (self->db, 0) == 0) {
        char idtext[16];
        const char *params[1] = {idtext};
        PGresult *res;
        snprintf (idtext, sizeof idtext, "%d", self->id);
        res = rt_db_exec_prepared (self->db, "ingest_publisher_forget", 1, params, NULL, NULL, 0);
        PQclear (res);
    } else {
        s_persist (self, true);
        if (self->unsettled > 0)
            rt_log (RT_LOG_ERROR,
                    "direct path: stopping with envelopes unsettled; the next start "
                    "moves them to the outbox",
                    rt_log_uint ("envelopes", self->unsettled));
    }
    return NULL;
}

publisher_t *
publisher_start (const publisher_config_t *config, char *err, size_t errlen)
{
    publisher_t *self = calloc (1, sizeof *self);
    int i;
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->ack_timeout_ms = config->ack_timeout_ms > 0 ? config->ack_timeout_ms : 2000;
    self->member = strdup (config->member ? config->member : "");
    self->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->db = rt_db_new (config->dsn, "retain-ingestd-publisher");
    if (!self->member || !self->db || self->wake_fd < 0) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    if (config->endpoints && config->endpoints[0]) {
        self->producer = rt_producer_new (config->endpoints, config->curve, err, errlen);
        if (!self->producer)
            goto fail;
        rt_producer_set_resend_ms (self->producer, RESEND_MS);
    }
    rt_db_prepare (self->db, "ingest_publisher_persist", s_sql_persist);
    rt_db_prepare (self->db, "ingest_publisher_forget", s_sql_forget);
    rt_db_prepare (self->db, "ingest_publisher_move", s_sql_move);
    rt_db_prepare (self->db, "ingest_publisher_move_since", s_sql_move_since);
    rt_db_prepare (self->db, "ingest_publisher_dead", s_sql_dead);
    rt_db_prepare (self->db, "ingest_publisher_bury", s_sql_bury);
    if (config->metrics) {
        rt_metrics_t *m = config->metrics;
        self->m_published = rt_metrics_counter (m, "retain_ingest_direct_published_total", "",
                                                "Envelopes posted straight to busd's ingress.");
        self->m_acked = rt_metrics_counter (m, "retain_ingest_direct_acknowledged_total", "",
                                            "Envelopes busd acknowledged after its commit.");
        self->m_in_flight =
            rt_metrics_gauge (m, "retain_ingest_direct_in_flight", "",
                              "Envelopes committed and neither acknowledged nor in the outbox.");
        for (i = 0; i < S_WHY_COUNT; i++) {
            char labels[64];
            snprintf (labels, sizeof labels, "reason=\"%s\"", s_why_label[i]);
            self->m_fallback[i] =
                rt_metrics_counter (m, "retain_ingest_direct_fallback_total", labels,
                                    "Envelopes moved to the outbox instead, by reason.");
        }
    }
    if (pthread_create (&self->thread, NULL, s_thread, self) != 0) {
        snprintf (err, errlen, "cannot start the publisher thread");
        goto fail;
    }
    self->started = true;
    return self;
fail:
    publisher_stop (&self);
    return NULL;
}

void
publisher_stop (publisher_t **self_p)
{
    publisher_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    if (self->started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        pthread_mutex_unlock (&self->lock);
        s_wake (self);
        pthread_join (self->thread, NULL);
    }
    rt_producer_destroy (&self->producer);
    rt_db_destroy (&self->db);
    pub_queue_free (&self->queue);
    pub_queue_free (&self->handed);
    if (self->wake_fd >= 0)
        close (self->wake_fd);
    pthread_mutex_destroy (&self->lock);
    free (self->member);
    free (self);
    *self_p = NULL;
}
