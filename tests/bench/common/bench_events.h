/*
 * bench_events: what the benchmarks of the bus's consumers share to fill
 * the log and to measure it without a consumer's work.
 *
 * A preload puts events in the log as a producer would (busd's ingress,
 * as fast as busd acknowledges after its commit, BENCH_EVENTS_WINDOW
 * unacknowledged at most), and fails unless every one is acknowledged OK:
 * a DUPLICATE means an id made twice, a REJECTED a malformed event. The
 * null consumer is one replica of a consumer group over the stream
 * "message" whose handler only unpacks each event: what delivery from the
 * log and the offset commits cost with no work, the baseline beside a
 * daemon's figure.
 *
 * Both print their one JSON line on stdout and say why they failed on
 * stderr, prefixed with the caller's name.
 */
#ifndef BENCH_EVENTS_H
#define BENCH_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "retain/v1/envelope.pb-c.h"

/* The options both programs take: --ingress EP, --events N, --run R,
 * --pg-dsn DSN, --pub EP, --group G, --batch-max B. */
typedef struct {
    const char *ingress; /* busd's ingress, for the preload */
    long events;         /* events the preload puts in the log */
    long run;            /* the run, in the events' ids */
    const char *dsn;     /* PostgreSQL, for the null consumer */
    const char *pub;     /* busd's PUB endpoint */
    const char *group;   /* the null consumer's group */
    int batch_max;       /* its rounds' events at most */
} bench_events_args_t;

#define BENCH_EVENTS_ARGS_INIT                                                                     \
    {                                                                                              \
        .batch_max = 500                                                                           \
    }

/* Their getopt_long entries, for a program's table ('i', 'n', 'r', 'd',
 * 'p', 'g', 'b'; its own options use other letters). */
/* clang-format off */
#define BENCH_EVENTS_OPTIONS                                                                       \
    {"ingress", required_argument, NULL, 'i'},                                                     \
    {"events", required_argument, NULL, 'n'},                                                      \
    {"run", required_argument, NULL, 'r'},                                                         \
    {"pg-dsn", required_argument, NULL, 'd'},                                                      \
    {"pub", required_argument, NULL, 'p'},                                                         \
    {"group", required_argument, NULL, 'g'},                                                       \
    {"batch-max", required_argument, NULL, 'b'}
/* clang-format on */

/* Takes getopt_long's option o with its value into a when it is one of
 * those; false when it is not. */
bool bench_events_option (int o, const char *value, bench_events_args_t *a);

#define BENCH_EVENTS_WINDOW     8000 /* envelopes posted and not yet acknowledged, at most */
#define BENCH_EVENTS_DEADLINE_S 600  /* a preload gives up after this */

/* CLOCK_REALTIME in microseconds (loadgen_mono_ns is the monotonic
 * clock). */
int64_t bench_events_wall_us (void);

/* Event i of a preload, owned by the caller (rt_envelope_free); NULL when
 * out of memory. */
typedef Retain__V1__Envelope *(*bench_events_make_fn) (long i, void *arg);

/* Posts events 0 .. n-1, made by make (with arg), to busd's ingress and
 * waits for their acknowledgements. Prints {"events":n,"acked":n,
 * "seconds":s,"events_per_s":x}. 0, or 1 when one was not acknowledged OK
 * by the deadline (the reason on stderr, after who). */
int bench_events_preload (const char *who, const char *ingress, long n, bench_events_make_fn make,
                          void *arg);

/* Runs one replica of group over the stream "message" on dsn, live events
 * from pub, rounds of batch_max events at most, until SIGTERM, unpacking
 * the payload of each event of type as the message descriptor describes:
 * those it unpacked are handled, anything else is other. Prints
 * {"handled":n,"other":m}. 0, or 1 when the consumer could not start or
 * failed. */
int bench_events_null (const char *who, const char *dsn, const char *pub, const char *group,
                       int batch_max, const char *type,
                       const ProtobufCMessageDescriptor *descriptor);

#endif
