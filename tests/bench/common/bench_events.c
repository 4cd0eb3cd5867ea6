/*
 * bench_events: the preload and the null consumer the benchmarks share
 * (see bench_events.h).
 */
#include "bench_events.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_bus.h"
#include "rt_consumer.h"
#include "rt_metrics.h"
#include "rt_producer.h"
#include "rt_signal.h"
#include "schedule.h"

bool
bench_events_option (int o, const char *value, bench_events_args_t *a)
{
    switch (o) {
    case 'i':
        a->ingress = value;
        return true;
    case 'n':
        a->events = atol (value);
        return true;
    case 'r':
        a->run = atol (value);
        return true;
    case 'd':
        a->dsn = value;
        return true;
    case 'p':
        a->pub = value;
        return true;
    case 'g':
        a->group = value;
        return true;
    case 'b':
        a->batch_max = atoi (value);
        return true;
    default:
        return false;
    }
}

int64_t
bench_events_wall_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What the preload's acks came to. */
typedef struct {
    long ok;        /* acknowledged OK */
    long duplicate; /* acknowledged DUPLICATE: an id sent twice, a failure here */
    long rejected;  /* refused by busd */
    char why[256];  /* the first refusal's reason */
} s_acks_t;

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    s_acks_t *a = arg;
    if (ack->status == RETAIN__V1__ACK__STATUS__OK) {
        a->ok++;
        return;
    }
    if (ack->status == RETAIN__V1__ACK__STATUS__DUPLICATE)
        a->duplicate++;
    else
        a->rejected++;
    if (!a->why[0])
        snprintf (a->why, sizeof a->why, "%s: %s", ack->id, ack->error ? ack->error : "duplicate");
}

int
bench_events_preload (const char *who, const char *ingress, long n, bench_events_make_fn make,
                      void *arg)
{
    char err[256];
    s_acks_t acks = {0};
    rt_producer_t *producer = rt_producer_new (ingress, NULL, err, sizeof err);
    int64_t t0, deadline;
    long sent = 0;
    double s;
    if (!producer) {
        fprintf (stderr, "%s preload: %s\n", who, err);
        return 1;
    }
    /* Longer than any ack should take: a resend would be a DUPLICATE. */
    rt_producer_set_resend_ms (producer, 10000);
    t0 = loadgen_mono_ns ();
    deadline = t0 + (int64_t)BENCH_EVENTS_DEADLINE_S * 1000000000;
    while (acks.ok + acks.duplicate + acks.rejected < n && !acks.why[0]) {
        if (loadgen_mono_ns () > deadline) {
            snprintf (acks.why, sizeof acks.why, "%ld of %ld acknowledged by the deadline", acks.ok,
                      n);
            break;
        }
        while (sent < n && rt_producer_pending (producer) < BENCH_EVENTS_WINDOW) {
            Retain__V1__Envelope *env = make (sent, arg);
            int rc = env ? rt_producer_post (producer, env) : -1;
            rt_envelope_free (env);
            if (rc != 0) {
                snprintf (acks.why, sizeof acks.why, "cannot post event %ld", sent);
                break;
            }
            sent++;
        }
        if (rt_producer_poll (producer, 5, s_on_ack, &acks) < 0) {
            snprintf (acks.why, sizeof acks.why, "the producer's socket failed");
            break;
        }
    }
    s = (double)(loadgen_mono_ns () - t0) / 1e9;
    rt_producer_destroy (&producer);
    if (acks.why[0] || acks.ok != n) {
        fprintf (stderr, "%s preload: %ld OK, %ld duplicate, %ld rejected of %ld: %s\n", who,
                 acks.ok, acks.duplicate, acks.rejected, n, acks.why);
        return 1;
    }
    printf ("{\"events\":%ld,\"acked\":%ld,\"seconds\":%.3f,\"events_per_s\":%.0f}\n", n, acks.ok,
            s, (double)n / s);
    return 0;
}

/* What the null consumer saw. */
typedef struct {
    const char *type;                             /* the events it expects */
    const ProtobufCMessageDescriptor *descriptor; /* their payload */
    atomic_long handled;                          /* events of type unpacked */
    atomic_long other;                            /* anything else */
} s_null_t;

static int
s_null_handler (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    s_null_t *n = arg;
    ProtobufCMessage *m = NULL;
    (void)db;
    if (strcmp (event->type, n->type) == 0)
        m = protobuf_c_message_unpack (n->descriptor, NULL, event->payload.len,
                                       event->payload.data);
    if (m) {
        atomic_fetch_add (&n->handled, 1);
        protobuf_c_message_free_unpacked (m, NULL);
    } else {
        atomic_fetch_add (&n->other, 1);
    }
    return 0;
}

int
bench_events_null (const char *who, const char *dsn, const char *pub, const char *group,
                   int batch_max, const char *type, const ProtobufCMessageDescriptor *descriptor)
{
    const char *streams[] = {"message"};
    rt_consumer_config_t config = {0};
    rt_metrics_t *metrics = rt_metrics_new ();
    s_null_t seen = {.type = type, .descriptor = descriptor};
    rt_consumer_t *consumer;
    char err[256];
    int rc;
    rt_signal_install ();
    config.dsn = dsn;
    config.group = group;
    config.pub_endpoints = pub;
    config.streams = streams;
    config.nstreams = 1;
    config.batch_max = batch_max;
    config.metrics = metrics;
    config.handler = s_null_handler;
    config.handler_arg = &seen;
    consumer = rt_consumer_new (&config, err, sizeof err);
    if (!consumer) {
        fprintf (stderr, "%s null: %s\n", who, err);
        rt_metrics_destroy (&metrics);
        return 1;
    }
    rc = rt_consumer_run (consumer);
    rt_consumer_destroy (&consumer);
    rt_metrics_destroy (&metrics);
    printf ("{\"handled\":%ld,\"other\":%ld}\n", atomic_load (&seen.handled),
            atomic_load (&seen.other));
    return rc == 0 ? 0 : 1;
}
