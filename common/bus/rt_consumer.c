/*
 * rt_consumer: one replica of a consumer group (see rt_consumer.h); the
 * shape of the replica and its files are in consumer_int.h.
 *
 * This file makes and frees the replica and runs its loop. One turn of the
 * loop: make sure the session is up (a new one forgets every partition and
 * joins again), rebalance when due, let each owned partition in catch-up
 * read its log, wait for live events (not at all while some catch-up has
 * more to read), take them off the socket, and handle them in a live round.
 *
 * Every statement is prepared, and rt_db prepares them again on each
 * connection. Most name busd's schema, and preparing one before busd's
 * migrations have made it would fail every connection, so only the schema
 * probe is registered at first; the replica asks it every 500 ms (a
 * replica may start with busd) and once the schema is there registers the
 * others on a closed connection, where registering cannot half succeed,
 * and reconnects: from then on each connection has them all.
 */
#include "rt_consumer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "consumer_int.h"
#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_signal.h"

/* Whether busd's migrations have made the tables the statements name. */
static const char *s_sql_schema =
    "SELECT to_regclass('bus.streams') IS NOT NULL AND to_regclass('bus.offsets') IS NOT NULL "
    "AND to_regclass('bus.counters') IS NOT NULL AND to_regclass('bus.events') IS NOT NULL";

rt_consumer_t *
rt_consumer_new (const rt_consumer_config_t *config, char *err, size_t errlen)
{
    rt_consumer_t *self;
    size_t i;
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
    rt_buf_array_begin (&self->streams_array);
    for (i = 0; i < config->nstreams; i++) {
        self->streams[i] = strdup (config->streams[i]);
        if (!self->streams[i])
            goto oom;
        rt_buf_array_text (&self->streams_array, self->streams[i]);
    }
    rt_buf_array_end (&self->streams_array);
    if (self->streams_array.failed)
        goto oom;
    self->batch_max = config->batch_max > 0 ? config->batch_max : 500;
    self->rcvhwm = config->rcvhwm;
    if (config->curve)
        self->curve = *config->curve;
    self->rebalance_ms = config->rebalance_ms > 0 ? config->rebalance_ms : 1000;
    self->handler = config->handler;
    self->handler_arg = config->handler_arg;
    self->key_parts = consumer_lock_key ("retain.consumer.parts:", self->group);
    self->key_members = consumer_lock_key ("retain.consumer.members:", self->group);
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
    if (!self->db || rt_db_prepare (self->db, "rt_consumer_schema", s_sql_schema) != 0)
        goto oom;
    return self;
oom:
    snprintf (err, errlen, "out of memory");
    rt_consumer_destroy (&self);
    return NULL;
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
        consumer_drop_pending (&self->parts[i]);
        free (self->parts[i].pending);
    }
    free (self->parts);
    free (self->slices);
    free (self->batch_events);
    for (i = 0; i < sizeof self->move / sizeof self->move[0]; i++)
        rt_buf_free (&self->move[i]);
    for (i = 0; self->streams && i < self->nstreams; i++)
        free (self->streams[i]);
    free (self->streams);
    rt_buf_free (&self->streams_array);
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

void
rt_consumer_set_batch (rt_consumer_t *self, rt_consumer_batch_fn batch)
{
    self->batch = batch;
}

int
rt_consumer_owned (const rt_consumer_t *self)
{
    return atomic_load (&self->owned);
}

/* Registers every file's statements once the schema exists (see the head
 * of the file). 1 registered, 0 not yet (the caller waits and
 * reconnects), -1 out of memory. */
static int
s_prepare (rt_consumer_t *self, bool *waiting)
{
    PGresult *res;
    bool ready;
    if (self->prepared)
        return 1;
    res = rt_db_exec_prepared (self->db, "rt_consumer_schema", 0, NULL, NULL, NULL, 0);
    if (!res)
        return 0;
    ready = PQgetvalue (res, 0, 0)[0] == 't';
    PQclear (res);
    if (!ready) {
        if (!*waiting)
            rt_log (RT_LOG_INFO, "waiting for the bus schema (busd's migrations)",
                    rt_log_str ("group", self->group));
        *waiting = true;
        return 0;
    }
    rt_db_invalidate (self->db);
    if (consumer_owner_prepare (self) != 0 || consumer_offsets_prepare (self) != 0 ||
        consumer_live_prepare (self) != 0 || consumer_catchup_prepare (self) != 0)
        return -1;
    self->prepared = true;
    return 0;
}

int
rt_consumer_run (rt_consumer_t *self)
{
    char err[256];
    bool waiting = false;
    if (consumer_subscribe (self, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "consumer cannot subscribe", rt_log_str ("error", err));
        return -1;
    }
    while (!rt_signal_stopping ()) {
        zmq_pollitem_t items[2];
        int64_t now;
        int timeout = 100;
        bool busy = false;
        size_t i;

        if (!rt_db_is_ok (self->db) || rt_db_generation (self->db) != self->db_generation) {
            int prepared;
            if (rt_db_ensure (self->db) != 0)
                break;
            prepared = s_prepare (self, &waiting);
            if (prepared < 0)
                goto oom;
            if (prepared == 0) {
                if (rt_db_is_ok (self->db))
                    rt_signal_sleep_ms (500);
                continue;
            }
            if (consumer_join (self) != 0) {
                rt_db_invalidate (self->db);
                rt_signal_sleep_ms (500);
                continue;
            }
        }
        now = rt_clock_mono_ms ();
        if (now >= self->next_rebalance_ms) {
            if (consumer_rebalance (self) != 0) {
                rt_log (RT_LOG_WARN, "rebalance failed",
                        rt_log_str ("error", rt_db_error (self->db)));
                rt_db_invalidate (self->db);
                continue;
            }
            self->next_rebalance_ms = now + self->rebalance_ms;
        }
        for (i = 0; i < self->nparts; i++) {
            consumer_part_t *part = &self->parts[i];
            if (!part->owned || !part->catchup || part->retry_at_ms > now)
                continue;
            if (consumer_catch_up (self, part) != 0)
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
            rt_log (RT_LOG_ERROR, "poll failed", rt_log_str ("error", zmq_strerror (errno)));
            return -1;
        }
        consumer_drain (self);
        if (consumer_live_round (self) != 0)
            continue;
        consumer_gauges_update (self);
    }
    rt_log (RT_LOG_INFO, "consumer stopped", rt_log_str ("group", self->group));
    return 0;
oom:
    rt_log (RT_LOG_ERROR, "consumer statements not registered",
            rt_log_str ("error", "out of memory"));
    return -1;
}
