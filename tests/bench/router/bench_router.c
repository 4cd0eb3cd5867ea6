/*
 * bench_router: the two programs tests/bench/router/run needs beside the
 * daemons (the script says what is measured and how it is checked).
 *
 *   bench_router preload --ingress EP --events N --customers C --run R
 *   bench_router null --pg-dsn DSN --pub EP --group G [--batch-max B]
 *
 * preload sends N InboundMessage envelopes to busd's ingress as fast as
 * busd acknowledges them (bench_events_preload), the way ingestd's would
 * look once in the log: message i comes from customer
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
 * handler only unpacks each InboundMessage (bench_events_null): what a
 * consumer group costs on this machine with nothing to do, the baseline
 * of messages_per_s. It runs until SIGTERM and prints
 * {"handled":n,"other":m}.
 *
 * Exit status: 0, 1 on a failure (the reason on stderr), 2 on bad usage.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_events.h"
#include "rt_bus.h"
#include "rt_log.h"
#include "retain/v1/message.pb-c.h"

#define NCHANNELS 4

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
    msg.sent_at = bench_events_wall_us () / 1000;
    msg.thread_id = user;
    msg.event = "message";
    if (s_channels[ch].channel == RETAIN__V1__CHANNEL__WHATSAPP) {
        snprintf (phone, sizeof phone, "+%s", user);
        msg.phone = phone;
    }
    return rt_envelope_new ("InboundMessage", key, &msg.base, "retain-ingestd");
}

/* The preload's customers and run. */
typedef struct {
    long customers; /* message i comes from customer i % customers */
    long run;       /* the run, in the external ids */
} s_preload_t;

static Retain__V1__Envelope *
s_make (long i, void *arg)
{
    const s_preload_t *p = arg;
    return s_message (i, p->customers, p->run);
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
    static const struct option opts[] = {
        BENCH_EVENTS_OPTIONS, {"customers", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    bench_events_args_t a = BENCH_EVENTS_ARGS_INIT;
    const char *cmd;
    long customers = 0;
    int o;
    if (argc < 2)
        return s_usage ();
    cmd = argv[1];
    optind = 2;
    while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        if (o == 'c')
            customers = atol (optarg);
        else if (!bench_events_option (o, optarg, &a))
            return s_usage ();
    }
    rt_log_init ("bench_router", RT_LOG_WARN);
    if (strcmp (cmd, "preload") == 0 && a.ingress && a.events > 0 && customers > 0) {
        s_preload_t p = {.customers = customers, .run = a.run};
        return bench_events_preload ("bench_router", a.ingress, a.events, s_make, &p);
    }
    if (strcmp (cmd, "null") == 0 && a.dsn && a.pub && a.group && a.batch_max > 0)
        return bench_events_null ("bench_router", a.dsn, a.pub, a.group, a.batch_max,
                                  "InboundMessage", &retain__v1__inbound_message__descriptor);
    return s_usage ();
}
