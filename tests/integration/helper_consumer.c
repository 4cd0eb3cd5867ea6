/*
 * helper_consumer: one replica of a consumer group, for the integration
 * tests of rt_consumer (test_bus_consumer, test_bus_gaps).
 *
 * Its handler records every event it handles as a row of the table
 * `effects` (id, stream, partition, pseq, replica), which the test creates
 * without a unique constraint: an event handled twice shows as two rows,
 * so the test observes duplicates instead of having them prevented. With
 * --outbox-every N it also appends, for each event whose pseq is a
 * multiple of N, a NotificationRequested to outbox.pending carrying the
 * event's id as its correlation id, in the same transaction, so the test
 * can see outbox rows commit with the offset or not at all. --sleep-us
 * makes the handler slow, so live messages overflow a small --rcvhwm.
 * --batch 1 hands the consumer the set-based form of the same handler
 * (rt_consumer_set_batch: a round's events at once), and --fail-key K
 * makes the handler fail every event of key K, so a test can watch one
 * bad event stay in its partition.
 *
 * Serves /readyz (ready once it owns a partition) and /metrics (the
 * consumer's retain_consumer_* series) on --admin, and stops cleanly on
 * SIGTERM, exiting 0.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_admin.h"
#include "rt_bus.h"
#include "rt_config.h"
#include "rt_consumer.h"
#include "rt_log.h"
#include "rt_metrics.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "retain/v1/notification.pb-c.h"

#define S_STREAMS_MAX 16

static const rt_config_setting_t s_settings[] = {
    {"pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string (libpq)"},
    {"group", "RETAIN_HELPER_GROUP", "helper", "consumer group name"},
    {"name", "RETAIN_HELPER_NAME", "", "this replica's name (effects.replica); empty: host:pid"},
    {"pub", "RETAIN_BUS_PUB", "tcp://127.0.0.1:7702", "busd PUB endpoints, comma-separated"},
    {"streams", "RETAIN_HELPER_STREAMS", "order", "streams the group reads, comma-separated"},
    {"batch-max", "RETAIN_HELPER_BATCH_MAX", "0", "events per transaction; 0: the default"},
    {"rcvhwm", "RETAIN_HELPER_RCVHWM", "0", "SUB receive high-water mark; 0: ZeroMQ's default"},
    {"rebalance", "RETAIN_HELPER_REBALANCE", "0", "rebalance interval; 0: the default"},
    {"sleep-us", "RETAIN_HELPER_SLEEP_US", "0", "microseconds the handler sleeps per event"},
    {"outbox-every", "RETAIN_HELPER_OUTBOX_EVERY", "0",
     "append an outbox event for each event whose pseq is a multiple of this; 0: none"},
    {"batch", "RETAIN_HELPER_BATCH", "0", "1: the handler takes a round's events at once"},
    {"fail-key", "RETAIN_HELPER_FAIL_KEY", "", "fail every event of this key; empty: none"},
    {"admin", "RETAIN_HELPER_ADMIN", "127.0.0.1:0", "admin HTTP address (/readyz /metrics)"},
    {"log-level", "RETAIN_LOG_LEVEL", "info", "debug, info, warn or error"},
    {NULL, NULL, NULL, NULL}};

static const char *s_sql_effect = "INSERT INTO effects (id, stream, partition, pseq, replica) "
                                  "VALUES ($1::uuid, $2, $3::int, $4::bigint, $5)";

/* The handler's context, owned by main. */
typedef struct {
    const char *name;     /* replica name written into effects */
    int64_t sleep_us;     /* per-event delay */
    int64_t outbox_every; /* outbox event for pseq % this == 0; 0: none */
    const char *fail_key; /* events of this key fail; "" for none */
    bool registered;      /* the effect statement is registered with the db */
} s_helper_t;

/* Appends the outbox event that answers `event`, in the open transaction. */
static int
s_emit (s_helper_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__NotificationRequested n = RETAIN__V1__NOTIFICATION_REQUESTED__INIT;
    Retain__V1__Envelope *env;
    char *correlation;
    int rc;

    n.notification_id = event->id;
    n.customer_id = event->key;
    n.template_ = "helper_consumer";
    /* A fresh id on every attempt, so busd's de-duplication cannot hide an
     * event handled twice: the test would count two outbox events with one
     * correlation id. */
    env = rt_envelope_new ("NotificationRequested", event->key, &n.base, self->name);
    if (!env)
        return -1;
    correlation = strdup (event->id);
    if (!correlation) {
        rt_envelope_free (env);
        return -1;
    }
    free (env->correlation_id);
    env->correlation_id = correlation;
    rc = rt_outbox_append (db, env);
    rt_envelope_free (env);
    return rc;
}

static int
s_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    s_helper_t *self = arg;
    char partition[16], pseq[24];
    const char *params[5];
    PGresult *res;

    if (*self->fail_key && event->key && strcmp (event->key, self->fail_key) == 0) {
        rt_log (RT_LOG_WARN, "failing as told", rt_log_str ("key", event->key));
        return -1;
    }
    if (!self->registered) {
        /* Registered once: rt_db prepares it again after every reconnect. */
        self->registered = true;
        if (rt_db_prepare (db, "helper_effect", s_sql_effect) != 0)
            return -1;
    }
    snprintf (partition, sizeof partition, "%u", event->partition);
    snprintf (pseq, sizeof pseq, "%llu", (unsigned long long)event->pseq);
    params[0] = event->id;
    params[1] = event->stream;
    params[2] = partition;
    params[3] = pseq;
    params[4] = self->name;
    res = rt_db_exec_prepared (db, "helper_effect", 5, params, NULL, NULL, 0);
    if (!res) {
        rt_log (RT_LOG_WARN, "effect not written", rt_log_str ("error", rt_db_error (db)));
        return -1;
    }
    PQclear (res);
    if (self->outbox_every > 0 && event->pseq % (uint64_t)self->outbox_every == 0 &&
        s_emit (self, db, event) != 0) {
        rt_log (RT_LOG_WARN, "outbox event not written", rt_log_str ("error", rt_db_error (db)));
        return -1;
    }
    if (self->sleep_us > 0)
        usleep ((useconds_t)self->sleep_us);
    return 0;
}

/* The set-based form: the same effects, a round's events at once. */
static int
s_handle_batch (rt_db_t *db, const Retain__V1__Envelope *const *events, size_t n, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        if (s_handle (db, events[i], arg) != 0)
            return -1;
    }
    return 0;
}

static bool
s_ready (void *arg, char *why, size_t whylen)
{
    if (rt_consumer_owned (arg) > 0)
        return true;
    snprintf (why, whylen, "owns no partition yet");
    return false;
}

int
main (int argc, char **argv)
{
    rt_config_t *config = NULL;
    rt_metrics_t *metrics = NULL;
    rt_consumer_t *consumer = NULL;
    rt_admin_t *admin = NULL;
    rt_consumer_config_t cc;
    s_helper_t helper;
    rt_log_level_t level = RT_LOG_INFO;
    const char *streams[S_STREAMS_MAX];
    char *list = NULL, *save = NULL, *s;
    int64_t batch_max, rcvhwm, rebalance_ms, batch;
    char err[512];
    int rc = 1;

    memset (&cc, 0, sizeof cc);
    memset (&helper, 0, sizeof helper);
    if (rt_signal_install () != 0)
        return 1;
    config = rt_config_new ("helper_consumer",
                            "A consumer group replica recording what it handles, for tests.",
                            s_settings);
    if (!config)
        return 1;
    switch (rt_config_parse (config, argc, argv, err, sizeof err)) {
    case 1:
        rt_config_destroy (&config);
        return 0;
    case -1:
        fprintf (stderr, "helper_consumer: %s (see --help)\n", err);
        rt_config_destroy (&config);
        return 2;
    }
    if (rt_log_level_parse (rt_config_get (config, "log-level"), &level) != 0) {
        fprintf (stderr, "helper_consumer: bad --log-level\n");
        goto cleanup;
    }
    rt_log_init ("helper_consumer", level);
    if (rt_config_get_int (config, "batch-max", 0, 100000, &batch_max, err, sizeof err) != 0 ||
        rt_config_get_int (config, "rcvhwm", 0, 1000000, &rcvhwm, err, sizeof err) != 0 ||
        rt_config_get_ms (config, "rebalance", &rebalance_ms, err, sizeof err) != 0 ||
        rt_config_get_int (config, "sleep-us", 0, 10000000, &helper.sleep_us, err, sizeof err) !=
            0 ||
        rt_config_get_int (config, "outbox-every", 0, 1000000000, &helper.outbox_every, err,
                           sizeof err) != 0 ||
        rt_config_get_int (config, "batch", 0, 1, &batch, err, sizeof err) != 0) {
        rt_log (RT_LOG_ERROR, "bad configuration", rt_log_str ("error", err));
        goto cleanup;
    }
    rt_config_log (config);

    list = strdup (rt_config_get (config, "streams"));
    if (!list)
        goto cleanup;
    for (s = strtok_r (list, ",", &save); s && cc.nstreams < S_STREAMS_MAX;
         s = strtok_r (NULL, ",", &save))
        streams[cc.nstreams++] = s;

    helper.name = rt_config_get (config, "name");
    helper.fail_key = rt_config_get (config, "fail-key");
    metrics = rt_metrics_new ();
    if (!metrics)
        goto cleanup;
    cc.dsn = rt_config_get (config, "pg-dsn");
    cc.group = rt_config_get (config, "group");
    cc.member = helper.name;
    cc.pub_endpoints = rt_config_get (config, "pub");
    cc.streams = streams;
    cc.batch_max = (int)batch_max;
    cc.rcvhwm = (int)rcvhwm;
    cc.rebalance_ms = (int)rebalance_ms;
    cc.metrics = metrics;
    cc.handler = s_handle;
    cc.handler_arg = &helper;
    consumer = rt_consumer_new (&cc, err, sizeof err);
    if (!consumer) {
        rt_log (RT_LOG_ERROR, "consumer not created", rt_log_str ("error", err));
        goto cleanup;
    }
    if (batch)
        rt_consumer_set_batch (consumer, s_handle_batch);
    admin = rt_admin_start (rt_config_get (config, "admin"), metrics, s_ready, consumer, err,
                            sizeof err);
    if (!admin) {
        rt_log (RT_LOG_ERROR, "admin server failed", rt_log_str ("error", err));
        goto cleanup;
    }
    if (rt_consumer_run (consumer) == 0)
        rc = 0;

cleanup:
    /* The admin thread reads the consumer: stop it first. */
    rt_admin_stop (&admin);
    rt_consumer_destroy (&consumer);
    rt_metrics_destroy (&metrics);
    free (list);
    rt_config_destroy (&config);
    return rc;
}
