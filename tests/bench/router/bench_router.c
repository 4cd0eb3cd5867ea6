/*
 * bench_router: the two programs tests/bench/router/run needs beside the
 * daemons (the script says what is measured and how it is checked).
 *
 *   bench_router preload --ingress EP --events N --customers C --run R
 *   bench_router null --pg-dsn DSN --pub EP --group G [--batch-max B]
 *
 * preload sends N InboundMessage envelopes to busd's ingress as fast as
 * busd acknowledges them (after its commit; WINDOW unacknowledged), the
 * way ingestd's would look once in the log: message i comes from customer
 * i % C, on channel (i / C + i % C) % 4 of telegram, whatsapp, viber,
 * instagram, so each customer's messages go round the channels; the
 * sender's ids are the ones the script gives those customers' identities
 * (S_TG_ID ... below, and the same formats in run's SQL), a WhatsApp
 * message carries the sender's number as ingest sets it, and the text
 * holds no digit run long enough to read as a typed phone number. Every
 * envelope must be acknowledged OK (not DUPLICATE, not REJECTED). Prints
 * one JSON line: {"events":N,"acked":N,"seconds":s,"events_per_s":x}.
 *
 * null is one replica of consumer group G over the stream "message" whose
 * handler only unpacks each InboundMessage: what a consumer group costs
 * on this machine with nothing to do, the baseline of messages_per_s. It
 * runs until SIGTERM and prints {"handled":n,"not_inbound":m}.
 *
 * Exit status: 0, 1 on a failure (the reason on stderr), 2 on bad usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_bus.h"
#include "rt_consumer.h"
#include "rt_log.h"
#include "rt_metrics.h"
#include "rt_producer.h"
#include "rt_signal.h"
#include "retain/v1/message.pb-c.h"

#define WINDOW     8000 /* envelopes posted and not yet acknowledged, at most */
#define DEADLINE_S 600  /* the preload gives up after this */
#define NCHANNELS  4

/* The identity formats, shared with run's SQL (its customers' identities). */
#define S_TG_ID "%ld"         /* Telegram: from.id, the customer's number */
#define S_WA_ID "38067%07ld"  /* WhatsApp: the wa_id, a Ukrainian mobile number */
#define S_VB_ID "viber%07ld"  /* Viber: the sender's id */
#define S_IG_ID "17841%010ld" /* Instagram: the IGSID */

/* One channel of the preload: the protobuf value, its name and inbox as
 * ingest spells them, and the sender's id format. */
static const struct {
    Retain__V1__Channel channel; /* InboundMessage.channel */
    const char *name;            /* rt_channel's name, the envelope key's first part */
    const char *inbox;           /* the inbox run's SQL gives the identities */
    const char *id_format;       /* the sender's id of customer c */
} s_channels[NCHANNELS] = {
    {RETAIN__V1__CHANNEL__TELEGRAM, "telegram", "bench-tg", S_TG_ID},
    {RETAIN__V1__CHANNEL__WHATSAPP, "whatsapp", "bench-wa", S_WA_ID},
    {RETAIN__V1__CHANNEL__VIBER, "viber", "bench-viber", S_VB_ID},
    {RETAIN__V1__CHANNEL__INSTAGRAM, "instagram", "bench-ig", S_IG_ID},
};

/* What the preload's acks came to. */
typedef struct {
    long ok;        /* acknowledged OK */
    long duplicate; /* acknowledged DUPLICATE: an id sent twice, a failure here */
    long rejected;  /* refused by busd */
    char why[256];  /* the first refusal's reason */
} s_acks_t;

static int64_t
s_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Message i of run `run` as ingest would publish it (owned), or NULL. */
static Retain__V1__Envelope *
s_message (long i, long customers, long run)
{
    Retain__V1__InboundMessage msg = RETAIN__V1__INBOUND_MESSAGE__INIT;
    long c = i % customers;
    int ch = (int)((i / customers + c) % NCHANNELS);
    char user[32], ext[64], name[48], phone[40], text[96], key[128];
    snprintf (user, sizeof user, s_channels[ch].id_format, c);
    snprintf (ext, sizeof ext, "pre-%ld-%ld", run, i);
    snprintf (name, sizeof name, "Customer %ld", c);
    /* Order numbers of six digits at most: never read as a typed phone. */
    snprintf (text, sizeof text, "Hello, where is my order %ld? It was due yesterday.",
              i % 1000000);
    snprintf (key, sizeof key, "%s:%s:%s", s_channels[ch].name, s_channels[ch].inbox, user);
    msg.channel = s_channels[ch].channel;
    msg.inbox = (char *)s_channels[ch].inbox;
    msg.external_id = ext;
    msg.external_user_id = user;
    msg.display_name = name;
    msg.text = text;
    msg.sent_at = s_wall_ms ();
    msg.thread_id = user;
    msg.event = "message";
    if (s_channels[ch].channel == RETAIN__V1__CHANNEL__WHATSAPP) {
        snprintf (phone, sizeof phone, "+%s", user);
        msg.phone = phone;
    }
    return rt_envelope_new ("InboundMessage", key, &msg.base, "retain-ingestd");
}

static int
s_preload (const char *ingress, long events, long customers, long run)
{
    char err[256];
    s_acks_t acks = {0};
    rt_producer_t *producer = rt_producer_new (ingress, NULL, err, sizeof err);
    int64_t t0, deadline;
    long sent = 0;
    double s;
    if (!producer) {
        fprintf (stderr, "bench_router preload: %s\n", err);
        return 1;
    }
    /* Longer than any ack should take: a resend would be a DUPLICATE. */
    rt_producer_set_resend_ms (producer, 10000);
    t0 = s_mono_ns ();
    deadline = t0 + (int64_t)DEADLINE_S * 1000000000;
    while (acks.ok + acks.duplicate + acks.rejected < events && !acks.why[0]) {
        if (s_mono_ns () > deadline) {
            snprintf (acks.why, sizeof acks.why, "%ld of %ld acknowledged by the deadline", acks.ok,
                      events);
            break;
        }
        while (sent < events && rt_producer_pending (producer) < WINDOW) {
            Retain__V1__Envelope *env = s_message (sent, customers, run);
            int rc = env ? rt_producer_post (producer, env) : -1;
            rt_envelope_free (env);
            if (rc != 0) {
                snprintf (acks.why, sizeof acks.why, "cannot post message %ld", sent);
                break;
            }
            sent++;
        }
        if (rt_producer_poll (producer, 5, s_on_ack, &acks) < 0) {
            snprintf (acks.why, sizeof acks.why, "the producer's socket failed");
            break;
        }
    }
    s = (double)(s_mono_ns () - t0) / 1e9;
    rt_producer_destroy (&producer);
    if (acks.why[0] || acks.ok != events) {
        fprintf (stderr, "bench_router preload: %ld OK, %ld duplicate, %ld rejected of %ld: %s\n",
                 acks.ok, acks.duplicate, acks.rejected, events, acks.why);
        return 1;
    }
    printf ("{\"events\":%ld,\"acked\":%ld,\"seconds\":%.3f,\"events_per_s\":%.0f}\n", events,
            acks.ok, s, (double)events / s);
    return 0;
}

/* What the null consumer saw. */
typedef struct {
    atomic_long handled;     /* InboundMessage events unpacked */
    atomic_long not_inbound; /* anything else (or a payload that is none) */
} s_null_t;

static int
s_null_handler (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    s_null_t *n = arg;
    Retain__V1__InboundMessage *msg;
    (void)db;
    msg = strcmp (event->type, "InboundMessage") == 0
              ? retain__v1__inbound_message__unpack (NULL, event->payload.len, event->payload.data)
              : NULL;
    if (msg) {
        atomic_fetch_add (&n->handled, 1);
        retain__v1__inbound_message__free_unpacked (msg, NULL);
    } else
        atomic_fetch_add (&n->not_inbound, 1);
    return 0;
}

static int
s_null (const char *dsn, const char *pub, const char *group, int batch_max)
{
    const char *streams[] = {"message"};
    rt_consumer_config_t config = {0};
    rt_metrics_t *metrics = rt_metrics_new ();
    s_null_t seen = {0};
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
        fprintf (stderr, "bench_router null: %s\n", err);
        rt_metrics_destroy (&metrics);
        return 1;
    }
    rc = rt_consumer_run (consumer);
    rt_consumer_destroy (&consumer);
    rt_metrics_destroy (&metrics);
    printf ("{\"handled\":%ld,\"not_inbound\":%ld}\n", atomic_load (&seen.handled),
            atomic_load (&seen.not_inbound));
    return rc == 0 ? 0 : 1;
}

static int
s_usage (void)
{
    fprintf (stderr, "usage: bench_router preload --ingress EP --events N --customers C --run R\n"
                     "       bench_router null --pg-dsn DSN --pub EP --group G [--batch-max B]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    static const struct option opts[] = {{"ingress", required_argument, NULL, 'i'},
                                         {"events", required_argument, NULL, 'n'},
                                         {"customers", required_argument, NULL, 'c'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"pg-dsn", required_argument, NULL, 'd'},
                                         {"pub", required_argument, NULL, 'p'},
                                         {"group", required_argument, NULL, 'g'},
                                         {"batch-max", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *ingress = NULL, *dsn = NULL, *pub = NULL, *group = NULL, *cmd;
    long events = 0, customers = 0, run = 0;
    int batch_max = 500, o;
    if (argc < 2)
        return s_usage ();
    cmd = argv[1];
    optind = 2;
    while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'i':
            ingress = optarg;
            break;
        case 'n':
            events = atol (optarg);
            break;
        case 'c':
            customers = atol (optarg);
            break;
        case 'r':
            run = atol (optarg);
            break;
        case 'd':
            dsn = optarg;
            break;
        case 'p':
            pub = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'b':
            batch_max = atoi (optarg);
            break;
        default:
            return s_usage ();
        }
    }
    rt_log_init ("bench_router", RT_LOG_WARN);
    if (strcmp (cmd, "preload") == 0 && ingress && events > 0 && customers > 0)
        return s_preload (ingress, events, customers, run);
    if (strcmp (cmd, "null") == 0 && dsn && pub && group && batch_max > 0)
        return s_null (dsn, pub, group, batch_max);
    return s_usage ();
}
