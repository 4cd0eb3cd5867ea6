/*
 * retain-busd: the durable event log.
 *
 * main owns the one context (busd_t) and runs the loop described in
 * busd.h: standby until the writer lock is ours, then read, write, commit,
 * acknowledge, publish, until SIGTERM; then finish the batch in hand and
 * stop. Losing PostgreSQL stops acknowledgements (producers time out and
 * retry; nothing is acknowledged that is not committed) until it is back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "busd.h"
#include "rt_clock.h"
#include "rt_admin.h"
#include "rt_bus.h"
#include "rt_config.h"
#include "rt_log.h"
#include "rt_migrate.h"
#include "rt_signal.h"

extern const rt_migration_set_t rt_migrations_bus;

#define WRITER_LOCK     "retain.busd.writer"
#define STANDBY_POLL_MS 500

static const rt_config_setting_t s_settings[] = {
    {"pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"},
    {"ingress", "RETAIN_BUS_INGRESS", "tcp://127.0.0.1:7701",
     "ZeroMQ ROUTER endpoint producers connect to"},
    {"pub", "RETAIN_BUS_PUB", "tcp://127.0.0.1:7702", "ZeroMQ PUB endpoint subscribers connect to"},
    {"admin", "RETAIN_BUS_ADMIN", "127.0.0.1:9701",
     "admin HTTP address (/healthz /readyz /metrics)"},
    {"max-message", "RETAIN_BUS_MAX_MESSAGE", "1M", "largest envelope accepted, bytes"},
    {"batch-max", "RETAIN_BUS_BATCH_MAX", "16384", "most envelopes written in one transaction"},
    {"retention", "RETAIN_BUS_RETENTION", "7d",
     "how long events (and their ids, for de-duplication) are kept once every group consumed "
     "them; at least 1d"},
    {"outbox-poll", "RETAIN_BUS_OUTBOX_POLL", "1s", "outbox polling interval besides NOTIFY"},
    {"housekeeping", "RETAIN_BUS_HOUSEKEEPING", "1h",
     "interval of partition creation, retention and id pruning"},
    {"curve-secret-key", "RETAIN_BUS_CURVE_SECRET_KEY", "",
     "Z85 CURVE server secret key; empty: plain TCP"},
    {"curve-clients", "RETAIN_BUS_CURVE_CLIENTS", "",
     "file of admitted client public keys (Z85, one per line)"},
    {"log-level", "RETAIN_LOG_LEVEL", "info", "debug, info, warn or error"},
    {NULL, NULL, NULL, NULL}};

/* A writer that has not committed for this long is not ready: its
 * producers are waiting for acks that do not come. */
#define NOT_COMMITTING_MS 3000

static bool
s_ready (void *arg, char *why, size_t whylen)
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

static void
s_metrics_init (busd_t *self)
{
    rt_metrics_t *m = self->metrics;
    static const double batch_bounds[] = {1, 4, 16, 64, 256, 1024, 4096, 16384};
    self->m.appended = rt_metrics_counter (m, "retain_bus_events_appended_total", "",
                                           "Events appended to the log.");
    self->m.duplicates = rt_metrics_counter (m, "retain_bus_duplicates_total", "",
                                             "Envelopes answered DUPLICATE (already in the log).");
    self->m.outbox_drained = rt_metrics_counter (m, "retain_bus_outbox_drained_total", "",
                                                 "Events moved from bus.outbox into the log.");
    self->m.outbox_rejected = rt_metrics_counter (m, "retain_bus_outbox_rejected_total", "",
                                                  "Outbox rows set aside as unacceptable.");
    self->m.acks_undelivered = rt_metrics_counter (m, "retain_bus_acks_undelivered_total", "",
                                                   "Acks whose producer was gone or stuck.");
    self->m.db_errors =
        rt_metrics_counter (m, "retain_bus_db_errors_total", "", "Batches that failed to commit.");
    self->m.batches = rt_metrics_counter (m, "retain_bus_batches_total", "", "Committed batches.");
    self->m.batch_size =
        rt_metrics_histogram (m, "retain_bus_batch_size", "", "Envelopes per batch.", batch_bounds,
                              sizeof batch_bounds / sizeof *batch_bounds);
    self->m.commit_seconds = rt_metrics_histogram (m, "retain_bus_commit_seconds", "",
                                                   "Time to write and commit a batch.", NULL, 0);
    self->m.primary = rt_metrics_gauge (m, "retain_bus_primary", "",
                                        "1 while this busd is the writer, 0 while standby.");
    self->m.seq = rt_metrics_gauge (m, "retain_bus_seq", "", "Global seq of the last event.");
    /* Series that exist from the start read 0 rather than missing. */
    static const char *reasons[] = {"too_large",     "unparsable",  "bad_id",   "no_partition",
                                    "unknown_type",  "no_key",      "bad_key",  "unknown_stream",
                                    "wrong_stream",  "bad_payload", "bad_utf8", "bad_frames",
                                    "refused_by_log"};
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
        char labels[64];
        snprintf (labels, sizeof labels, "reason=\"%s\"", reasons[i]);
        rt_metrics_counter (m, "retain_bus_envelopes_rejected_total", labels,
                            "Envelopes refused, by reason.");
    }
}

static int
s_streams_init (busd_t *self)
{
    size_t n, i;
    const char *const *names = rt_bus_streams (&n);
    self->streams = calloc (n, sizeof *self->streams);
    if (!self->streams)
        return -1;
    self->nstreams = n;
    for (i = 0; i < n; i++)
        snprintf (self->streams[i].name, sizeof self->streams[i].name, "%s", names[i]);
    return 0;
}

static void
s_streams_free (busd_t *self)
{
    size_t i;
    for (i = 0; i < self->nstreams; i++) {
        free (self->streams[i].pseq);
        free (self->streams[i].pseq_next);
        free (self->streams[i].touched);
    }
    free (self->streams);
}

static void
s_sockets_close (busd_t *self)
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
    s_sockets_close (self);
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
s_primary_loop (busd_t *self, int64_t outbox_poll_ms, int64_t housekeeping_ms)
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

        if (now - self->last_outbox_ms >= outbox_poll_ms)
            self->outbox_due = true;

        if (self->nitems > 0 || self->outbox_due)
            timeout = 0;
        else {
            int64_t left = outbox_poll_ms - (now - self->last_outbox_ms);
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
            rt_clock_mono_ms () - self->last_housekeeping_ms >= housekeeping_ms ||
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

static int
s_run (busd_t *self, int64_t outbox_poll_ms, int64_t housekeeping_ms)
{
    bool migrated = false;
    bool announced_standby = false;

    while (!rt_signal_stopping ()) {
        char err[512];
        bool got = false;

        atomic_store (&self->role, BUSD_STANDBY);
        rt_gauge_set (self->m.primary, 0);
        if (rt_db_ensure (self->db) != 0)
            break;
        if (!migrated) {
            if (rt_migrate_apply (self->db, &rt_migrations_bus, err, sizeof err) < 0) {
                rt_log (RT_LOG_ERROR, "migration failed", rt_log_str ("error", err));
                if (!rt_db_is_ok (self->db))
                    continue;
                return -1;
            }
            /* Statements refer to the schema: prepare them once it exists;
             * rt_db prepares them again on every reconnection. */
            if (writer_prepare (self) != 0) {
                if (!rt_db_is_ok (self->db))
                    continue;
                return -1;
            }
            migrated = true;
        }
        if (s_try_lock (self, &got) != 0)
            continue;
        if (!got) {
            /* Someone else writes. If we were the writer before losing
             * PostgreSQL, give the port back to the new one. */
            s_sockets_close (self);
            atomic_store (&self->failing_since_ms, 0);
            if (!announced_standby) {
                rt_log (RT_LOG_INFO, "standby: waiting for the writer lock");
                announced_standby = true;
            }
            rt_signal_sleep_ms (STANDBY_POLL_MS);
            continue;
        }
        announced_standby = false;
        if (rt_db_exec (self->db, "LISTEN bus_outbox") != 0 || writer_load (self) != 0)
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
        if (s_primary_loop (self, outbox_poll_ms, housekeeping_ms) == 1)
            break;
        rt_log (RT_LOG_WARN, "lost PostgreSQL: acknowledgements stop until it is back",
                rt_log_str ("error", rt_db_error (self->db)));
        s_note_failure (self);
    }
    return 0;
}

int
main (int argc, char **argv)
{
    busd_t self;
    rt_config_t *config = NULL;
    rt_admin_t *admin = NULL;
    rt_log_level_t level = RT_LOG_INFO;
    char err[512];
    int64_t v, outbox_poll_ms = 1000, housekeeping_ms = 3600000;
    int rc = 1;

    memset (&self, 0, sizeof self);
    pthread_mutex_init (&self.why_lock, NULL);
    if (rt_signal_install () != 0)
        return 1;
    config = rt_config_new ("retain-busd",
                            "The durable event log of retain: sequences, persists "
                            "and fans out every event.",
                            s_settings);
    if (!config)
        return 1;
    switch (rt_config_parse (config, argc, argv, err, sizeof err)) {
    case 1:
        rt_config_destroy (&config);
        return 0;
    case -1:
        fprintf (stderr, "retain-busd: %s (see --help)\n", err);
        rt_config_destroy (&config);
        return 2;
    }
    if (rt_log_level_parse (rt_config_get (config, "log-level"), &level) != 0) {
        fprintf (stderr, "retain-busd: bad --log-level\n");
        goto cleanup;
    }
    rt_log_init ("retain-busd", level);

    self.dsn = rt_config_get (config, "pg-dsn");
    self.ingress_endpoint = rt_config_get (config, "ingress");
    self.pub_endpoint = rt_config_get (config, "pub");
    self.curve_secret = rt_config_get (config, "curve-secret-key");
    self.curve_clients = rt_config_get (config, "curve-clients");
    if (rt_config_get_size (config, "max-message", &self.max_message, err, sizeof err) != 0 ||
        rt_config_get_int (config, "batch-max", 1, 1000000, &v, err, sizeof err) != 0 ||
        rt_config_get_ms (config, "retention", &self.retention_ms, err, sizeof err) != 0 ||
        rt_config_get_ms (config, "outbox-poll", &outbox_poll_ms, err, sizeof err) != 0 ||
        rt_config_get_ms (config, "housekeeping", &housekeeping_ms, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "bad configuration", rt_log_str ("error", err));
        goto cleanup;
    }
    self.batch_max = (int)v;
    if (self.retention_ms < 86400000) {
        rt_log (RT_LOG_ERROR, "bad configuration",
                rt_log_str ("error",
                            "--retention must be at least 1d (the log is partitioned by day)"));
        goto cleanup;
    }
    rt_config_log (config);

    self.metrics = rt_metrics_new ();
    if (!self.metrics || s_streams_init (&self) != 0)
        goto cleanup;
    s_metrics_init (&self);
    atomic_init (&self.role, BUSD_STANDBY);
    atomic_init (&self.failing_since_ms, 0);
    admin = rt_admin_start (rt_config_get (config, "admin"), self.metrics, s_ready, &self, err,
                            sizeof err);
    if (!admin) {
        rt_log (RT_LOG_ERROR, "admin server failed", rt_log_str ("error", err));
        goto cleanup;
    }

    self.zmq_ctx = zmq_ctx_new ();
    if (!self.zmq_ctx)
        goto cleanup;
    if (zap_start (&self, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "CURVE configuration", rt_log_str ("error", err));
        goto cleanup;
    }
    self.db = rt_db_new (self.dsn, "retain-busd");
    if (!self.db)
        goto cleanup;
    if (s_run (&self, outbox_poll_ms, housekeeping_ms) == 0)
        rc = 0;
    rt_log (RT_LOG_INFO, "stopped", rt_log_uint ("seq", (unsigned long long)self.seq));

cleanup:
    items_clear (&self);
    free (self.items);
    s_sockets_close (&self);
    zap_stop (&self);
    if (self.zmq_ctx)
        zmq_ctx_term (self.zmq_ctx);
    rt_db_destroy (&self.db);
    rt_admin_stop (&admin);
    s_streams_free (&self);
    rt_metrics_destroy (&self.metrics);
    rt_config_destroy (&config);
    pthread_mutex_destroy (&self.why_lock);
    return rc;
}
