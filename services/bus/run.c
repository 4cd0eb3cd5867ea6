/*
 * run: busd's main loop, from standby to writer and back, and the
 * readiness it reports.
 *
 * Standby until the writer lock is ours (a session advisory lock, so it
 * goes with our connection); then bind the sockets and loop: read what
 * producers sent and what the outbox holds, commit it as one batch,
 * acknowledge and publish, until SIGTERM; then finish the batch in hand
 * and return. Losing PostgreSQL stops acknowledgements (producers time out
 * and retry; nothing is acknowledged that is not committed) until it is
 * back, and gives the port back if another busd took the lock meanwhile.
 *
 * /readyz (run_ready, on the admin thread) says ready only while this busd
 * is the writer and its commits go through: a commit that failed, or has
 * not returned, for NOT_COMMITTING_MS makes it 503 with the reason, so a
 * commit that hangs shows as well as one that fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "busd.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"

#define WRITER_LOCK     "retain.busd.writer"
#define STANDBY_POLL_MS 500

/* A writer that has not committed for this long is not ready: its
 * producers are waiting for acks that do not come. */
#define NOT_COMMITTING_MS 3000

bool
run_ready (void *arg, char *why, size_t whylen)
{
    busd_t *self = arg;
    int64_t since = atomic_load (&self->failing_since_ms);
    int role = atomic_load (&self->role);
    if (role == BUSD_PRIMARY && (since == 0 || rt_clock_mono_ms () - since < NOT_COMMITTING_MS))
        return true;
    if (role == BUSD_PRIMARY || since != 0) {
        pthread_mutex_lock (&self->why_lock);
        snprintf (why, whylen, "cannot commit to the log for %.1f s: %s",
                  (double)(rt_clock_mono_ms () - since) / 1000.0,
                  self->why_failing[0] ? self->why_failing : "the commit has not returned");
        pthread_mutex_unlock (&self->why_lock);
    } else
        snprintf (why, whylen, "standby: another busd holds the writer lock");
    return false;
}

/* Remembers that a commit failed, and why, for /readyz. */
static void
s_note_failure (busd_t *self)
{
    int64_t zero = 0;
    atomic_compare_exchange_strong (&self->failing_since_ms, &zero, rt_clock_mono_ms ());
    pthread_mutex_lock (&self->why_lock);
    snprintf (self->why_failing, sizeof self->why_failing, "%s",
              rt_db_is_ok (self->db) ? rt_db_error (self->db) : "PostgreSQL unreachable");
    pthread_mutex_unlock (&self->why_lock);
}

void
run_sockets_close (busd_t *self)
{
    int linger = 1000;
    if (self->router) {
        /* Let the last acks reach their producers. */
        zmq_setsockopt (self->router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (self->router);
        self->router = NULL;
    }
    if (self->pub) {
        zmq_setsockopt (self->pub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (self->pub);
        self->pub = NULL;
    }
}

/* Binds both sockets; a standby that just took over may find the old
 * writer's port still held for a moment, so binding is retried. */
static int
s_sockets_open (busd_t *self)
{
    int one = 1;
    int hwm = 0;
    int64_t maxsize = self->max_message * 2 + 4096;
    char err[256];
    int tries;

    if (self->router)
        return 0;
    self->router = zmq_socket (self->zmq_ctx, ZMQ_ROUTER);
    self->pub = zmq_socket (self->zmq_ctx, ZMQ_PUB);
    if (!self->router || !self->pub)
        goto fail;
    zmq_setsockopt (self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* A hard cap well above the configured limit: messages between the two
     * are answered REJECTED; beyond it ZeroMQ drops the connection. */
    zmq_setsockopt (self->router, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    zmq_setsockopt (self->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    /* PUB silently drops what exceeds a subscriber's high-water mark, and
     * a committed batch is published at once: ZeroMQ's default (1,000)
     * lost the tail of most bursts, which a consumer finds only at its
     * next heads check (seconds). The default holds several batches. */
    zmq_setsockopt (self->pub, ZMQ_SNDHWM, &self->pub_hwm, sizeof self->pub_hwm);
    if (zap_apply_server (self, self->router, err, sizeof err) != 0 ||
        zap_apply_server (self, self->pub, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "CURVE setup failed", rt_log_str ("error", err));
        goto fail;
    }
    for (tries = 0;; tries++) {
        if (zmq_bind (self->router, self->ingress_endpoint) == 0 &&
            zmq_bind (self->pub, self->pub_endpoint) == 0)
            break;
        if (errno != EADDRINUSE || tries >= 50 || rt_signal_stopping ()) {
            rt_log (RT_LOG_ERROR, "cannot bind", rt_log_str ("ingress", self->ingress_endpoint),
                    rt_log_str ("pub", self->pub_endpoint),
                    rt_log_str ("error", zmq_strerror (errno)));
            goto fail;
        }
        zmq_unbind (self->router, self->ingress_endpoint);
        rt_signal_sleep_ms (100);
    }
    rt_log (RT_LOG_INFO, "listening", rt_log_str ("ingress", self->ingress_endpoint),
            rt_log_str ("pub", self->pub_endpoint));
    return 0;
fail:
    run_sockets_close (self);
    return -1;
}

static int
s_try_lock (busd_t *self, bool *got)
{
    const char *params[1] = {WRITER_LOCK};
    PGresult *res =
        rt_db_exec_params (self->db, "SELECT pg_try_advisory_lock(hashtext($1))", 1, params);
    if (!res)
        return -1;
    *got = PQgetvalue (res, 0, 0)[0] == 't';
    PQclear (res);
    return 0;
}

/* Drains NOTIFY messages; true when the outbox was signalled. */
static bool
s_notified (busd_t *self)
{
    PGconn *conn = rt_db_conn (self->db);
    PGnotify *n;
    bool any = false;
    if (!conn)
        return false;
    if (!PQconsumeInput (conn)) {
        rt_db_invalidate (self->db);
        return false;
    }
    while ((n = PQnotifies (conn)) != NULL) {
        any = true;
        PQfreemem (n);
    }
    return any;
}

static void
s_finish_batch (busd_t *self)
{
    writer_settle (self, 0, self->nitems);
    items_clear (self);
}

/* Runs as the writer until the connection is lost (returns 0) or a stop is
 * requested and the batch in hand is committed (returns 1). */
static int
s_primary_loop (busd_t *self)
{
    int failures = 0;
    for (;;) {
        zmq_pollitem_t items[4];
        int nitems = 0;
        int timeout;
        int64_t now = rt_clock_mono_ms ();
        PGconn *conn = rt_db_conn (self->db);
        bool stopping = rt_signal_stopping ();

        if (!conn)
            return 0;
        if (stopping && self->nitems == 0)
            return 1;

        if (now - self->last_outbox_ms >= self->outbox_poll_ms)
            self->outbox_due = true;
        /* libpq reads a NOTIFY that arrives while a batch's statements run
         * into its own queue, where no poll of the socket sees it: without
         * this, the last rows of a burst waited for the interval poll. */
        if (s_notified (self))
            self->outbox_due = true;

        if (self->nitems > 0 || self->outbox_due)
            timeout = 0;
        else {
            int64_t left = self->outbox_poll_ms - (now - self->last_outbox_ms);
            timeout = left < 0 ? 0 : (int)(left > 1000 ? 1000 : left);
        }
        items[nitems++] = (zmq_pollitem_t){self->router, 0, ZMQ_POLLIN, 0};
        items[nitems++] = (zmq_pollitem_t){NULL, PQsocket (conn), ZMQ_POLLIN, 0};
        items[nitems++] = (zmq_pollitem_t){NULL, rt_signal_fd (), ZMQ_POLLIN, 0};
        if (self->zap)
            items[nitems++] = (zmq_pollitem_t){self->zap, 0, ZMQ_POLLIN, 0};
        if (!stopping && zmq_poll (items, nitems, timeout) < 0 && errno != EINTR) {
            rt_log (RT_LOG_ERROR, "poll failed", rt_log_str ("error", zmq_strerror (errno)));
            return 1;
        }
        /* Housekeeping at takeover, when busd's UTC day changes and on the
         * interval: never dependent on where the monotonic clock started.
         * Checked after the wait, so what arrived meanwhile is judged
         * against the partitions of the day it arrived on. */
        if (self->housekeeping_due ||
            rt_clock_mono_ms () - self->last_housekeeping_ms >= self->housekeeping_ms ||
            rt_clock_now_ms () / 86400000 != self->housekeeping_day) {
            retention_run (self);
            self->housekeeping_due = false;
            self->last_housekeeping_ms = rt_clock_mono_ms ();
            self->housekeeping_day = rt_clock_now_ms () / 86400000;
            if (!rt_db_is_ok (self->db))
                return 0;
        }
        if (self->zap)
            zap_handle (self);
        if (s_notified (self))
            self->outbox_due = true;
        if (!stopping)
            ingress_read (self);
        if (self->nitems == 0 && !self->outbox_due)
            continue;

        /* From here until a commit succeeds, this batch's producers wait:
         * /readyz counts from the first attempt, so a commit that hangs
         * (a lock, a stalled server) shows as well as one that fails. */
        {
            int64_t zero = 0;
            atomic_compare_exchange_strong (&self->failing_since_ms, &zero, rt_clock_mono_ms ());
        }
        if (writer_commit (self) == 0) {
            failures = 0;
            atomic_store (&self->failing_since_ms, 0);
            pthread_mutex_lock (&self->why_lock);
            self->why_failing[0] = '\0';
            pthread_mutex_unlock (&self->why_lock);
            s_finish_batch (self);
            continue;
        }
        s_note_failure (self);
        if (!rt_db_is_ok (self->db))
            return 0;
        /* A statement failed on a live connection: back off and retry the
         * same envelopes; producers keep waiting for their acks. */
        failures++;
        if (rt_signal_sleep_ms (failures < 10 ? 100 * failures : 1000) && failures > 3) {
            rt_log (RT_LOG_ERROR, "stopping with an uncommitted batch; producers will retry",
                    rt_log_uint ("items", self->nitems));
            items_clear (self);
            return 1;
        }
    }
}

int
run_loop (busd_t *self)
{
    bool announced_standby = false;

    while (!rt_signal_stopping ()) {
        bool got = false;

        atomic_store (&self->role, BUSD_STANDBY);
        rt_gauge_set (self->m.primary, 0);
        if (rt_db_ensure (self->db) != 0)
            break;
        if (s_try_lock (self, &got) != 0)
            continue;
        if (!got) {
            /* Someone else writes. If we were the writer before losing
             * PostgreSQL, give the port back to the new one. */
            run_sockets_close (self);
            atomic_store (&self->failing_since_ms, 0);
            if (!announced_standby) {
                rt_log (RT_LOG_INFO, "standby: waiting for the writer lock");
                announced_standby = true;
            }
            rt_signal_sleep_ms (STANDBY_POLL_MS);
            continue;
        }
        announced_standby = false;
        if (rt_db_exec (self->db, "LISTEN " RT_OUTBOX_CHANNEL) != 0 || writer_load (self) != 0)
            continue;
        if (s_sockets_open (self) != 0) {
            /* Release the lock so a busd that can bind takes over. */
            rt_db_exec (self->db, "SELECT pg_advisory_unlock_all()");
            rt_signal_sleep_ms (1000);
            continue;
        }
        atomic_store (&self->role, BUSD_PRIMARY);
        rt_gauge_set (self->m.primary, 1);
        rt_log (RT_LOG_INFO, "writer: holding the lock",
                rt_log_uint ("seq", (unsigned long long)self->seq));
        self->outbox_due = true;
        self->housekeeping_due = true;
        if (s_primary_loop (self) == 1)
            break;
        rt_log (RT_LOG_WARN, "lost PostgreSQL: acknowledgements stop until it is back",
                rt_log_str ("error", rt_db_error (self->db)));
        s_note_failure (self);
    }
    rt_log (RT_LOG_INFO, "stopping", rt_log_uint ("seq", (unsigned long long)self->seq));
    return 0;
}
