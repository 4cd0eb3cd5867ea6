/*
 * traffic: what bench_bus sends and what receives it. The events (an
 * OrderPlaced per slot, its order id naming the slot, padded to the
 * payload size with characters that do not compress); the producer
 * threads, closed or open loop, which record each ack in the slot; and
 * the consumer replicas, one child process per group, whose handler only
 * records where and when it saw each event, in memory shared with the
 * bench.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_bus.h"
#include "rt_bus.h"
#include "rt_consumer.h"
#include "rt_metrics.h"
#include "rt_producer.h"
#include "rt_signal.h"
#include "retain/v1/order.pb-c.h"
#include "schedule.h"

/* What a consumer child's handler needs. */
typedef struct {
    bench_shared_t *sh; /* the shared record */
    bench_seen_t *seen; /* its group's records */
    int g;              /* its group's index */
    rt_counter_t *gaps; /* the replica's gap counter */
} s_child_t;

/* ---- the events ---------------------------------------------------------- */

/* n characters that do not compress (6 random bits each, from a generator
 * seeded with `seed`), so that neither TOAST nor wal_compression finds more
 * to squeeze in the bench's payloads than in real ones, then a NUL. */
void
traffic_fill_random (char *out, size_t n, uint64_t seed)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    size_t i;
    for (i = 0; i < n; i++) {
        if (i % 10 == 0) {
            x ^= x << 13; /* xorshift64: 10 characters a draw */
            x ^= x >> 7;
            x ^= x << 17;
        }
        out[i] = alphabet[(x >> (6 * (i % 10))) & 63];
    }
    out[n] = '\0';
}

/* The envelope of slot i: an OrderPlaced whose serialized payload is
 * `payload` bytes long, its order id naming the slot. NULL when it cannot
 * be made that long. */
Retain__V1__Envelope *
traffic_event (long i, int payload)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    char key[48], order_id[48], pad[MAX_PAYLOAD];
    struct timespec now;
    size_t size, n;
    clock_gettime (CLOCK_REALTIME, &now);
    snprintf (key, sizeof key, "customer-%ld", (i * 7919) % 5000);
    snprintf (order_id, sizeof order_id, "bench-%ld", i);
    order.order_id = order_id;
    order.customer_id = key;
    order.placed_at = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    order.coupon_code = "";
    size = protobuf_c_message_get_packed_size (&order.base);
    /* coupon_code (field 6) takes the rest: a byte of tag, and one or two
     * of length (a varint: two from 128 to 16383). */
    if ((size_t)payload < size + 3)
        return NULL;
    n = (size_t)payload - size - 2;
    if (n >= 128)
        n--;
    traffic_fill_random (pad, n, (uint64_t)i);
    order.coupon_code = pad;
    if (protobuf_c_message_get_packed_size (&order.base) != (size_t)payload)
        return NULL;
    return rt_envelope_new ("OrderPlaced", key, &order.base, "bench");
}

/* The slot of p whose id is `id`, by bisection (a producer's ids increase,
 * s_post checks it); NULL when none. */
static bench_slot_t *
s_find_slot (bench_producer_t *p, const rt_uuid_t *id)
{
    long lo = p->first, hi = p->first + p->sent;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        int c = memcmp (p->sh->slot[mid].id.b, id->b, sizeof id->b);
        if (c == 0)
            return &p->sh->slot[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void
s_on_ack (const Retain__V1__Ack *ack, void *arg)
{
    bench_producer_t *p = arg;
    rt_uuid_t id;
    bench_slot_t *slot = NULL;
    if (rt_uuid_parse (ack->id, &id) == 0)
        slot = s_find_slot (p, &id);
    if (!slot) {
        snprintf (p->why, sizeof p->why, "an ack for an id never sent: %s", ack->id);
        return;
    }
    if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED) {
        snprintf (p->why, sizeof p->why, "busd rejected %s: %s", ack->id,
                  ack->error ? ack->error : "");
        return;
    }
    if (slot->ack != 0) {
        snprintf (p->why, sizeof p->why, "two final acks for %s", ack->id);
        return;
    }
    slot->ack = ack->status;
    slot->ack_partition = ack->partition;
    slot->ack_pseq = ack->pseq;
    slot->acked_ns = loadgen_mono_ns ();
    p->acked++;
    p->last_ack_ns = slot->acked_ns;
}

/* Posts the producer's next event, due at due_ns. 0, or -1 with p->why. */
static int
s_post (bench_producer_t *p, rt_producer_t *producer, int64_t due_ns)
{
    long i = p->first + p->sent;
    bench_slot_t *slot = &p->sh->slot[i];
    Retain__V1__Envelope *env = traffic_event (i, p->payload);
    if (!env || rt_uuid_parse (env->id, &slot->id) != 0) {
        snprintf (p->why, sizeof p->why, "cannot make event %ld", i);
        rt_envelope_free (env);
        return -1;
    }
    if (p->sent > 0 && memcmp (slot[-1].id.b, slot->id.b, sizeof slot->id.b) >= 0) {
        snprintf (p->why, sizeof p->why, "ids do not increase at event %ld", i);
        rt_envelope_free (env);
        return -1;
    }
    slot->due_ns = due_ns;
    if (rt_producer_post (producer, env) != 0) {
        snprintf (p->why, sizeof p->why, "cannot post event %ld", i);
        rt_envelope_free (env);
        return -1;
    }
    rt_envelope_free (env);
    p->sent++;
    p->last_send_ns = loadgen_mono_ns ();
    return 0;
}

/* When the producer's event j is due (open loop). */
static int64_t
s_due (const bench_producer_t *p, long j)
{
    return loadgen_due_ns (p->t0_ns, p->rate / p->burst, j / p->burst);
}

static void *
s_produce (void *arg)
{
    bench_producer_t *p = arg;
    char err[200];
    rt_producer_t *producer = rt_producer_new (p->endpoint, NULL, err, sizeof err);
    if (!producer) {
        snprintf (p->why, sizeof p->why, "producer: %s", err);
        return NULL;
    }
    /* Longer than any ack should take: a resend here would be a DUPLICATE. */
    rt_producer_set_resend_ms (producer, 5000);
    while (p->acked < p->count && !p->why[0]) {
        int64_t now = loadgen_mono_ns ();
        int timeout = 5;
        if (now > p->deadline_ns) {
            snprintf (p->why, sizeof p->why, "%ld of %ld events acknowledged by the deadline",
                      p->acked, p->count);
            break;
        }
        while (p->sent < p->count && rt_producer_pending (producer) < WINDOW) {
            int64_t due = p->rate > 0 ? s_due (p, p->sent) : now;
            if (due > now)
                break;
            if (s_post (p, producer, p->rate > 0 ? due : loadgen_mono_ns ()) != 0)
                goto done;
        }
        if (p->rate > 0 && p->sent < p->count && rt_producer_pending (producer) < WINDOW) {
            /* Open loop: take the acks that are in, then wait for the next
             * due time exactly (a millisecond poll would send late). */
            int64_t wait = s_due (p, p->sent) - loadgen_mono_ns ();
            timeout = wait > 2 * MS ? (int)((wait - MS) / MS) : 0;
        } else if (p->rate > 0 && p->sent < p->count)
            timeout = 1; /* the window is full: the next events are late */
        if (rt_producer_poll (producer, timeout, s_on_ack, p) < 0) {
            snprintf (p->why, sizeof p->why, "producer socket failed");
            break;
        }
        if (p->rate > 0 && p->sent < p->count && rt_producer_pending (producer) < WINDOW) {
            int64_t due = s_due (p, p->sent);
            if (due - loadgen_mono_ns () <= 2 * MS)
                bench_sleep_until (due);
        }
    }
done:
    rt_producer_destroy (&producer);
    return NULL;
}

/* Runs n producers over slots [first, first + n * per); fails the bench
 * with the first one's reason. */
void
traffic_run_producers (const bench_t *b, int n, long first, long per, double rate, int burst,
                       int64_t t0_ns, int64_t deadline_ns, bench_producer_t *p)
{
    pthread_t t[PRODUCERS];
    int i;
    for (i = 0; i < n; i++) {
        p[i] = (bench_producer_t){.endpoint = b->ingress,
                                  .sh = b->sh,
                                  .payload = b->payload,
                                  .first = first + i * per,
                                  .count = per,
                                  .rate = rate,
                                  .burst = burst,
                                  .t0_ns = t0_ns,
                                  .deadline_ns = deadline_ns};
        if (pthread_create (&t[i], NULL, s_produce, &p[i]) != 0)
            bench_fail ("cannot start a producer thread");
    }
    for (i = 0; i < n; i++)
        pthread_join (t[i], NULL);
    for (i = 0; i < n; i++)
        if (p[i].why[0])
            bench_fail ("producer %d: %s", i, p[i].why);
}

/* ---- the consumer child -------------------------------------------------- */

static int
s_handler (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    s_child_t *child = arg;
    bench_shared_t *sh = child->sh;
    int64_t now = loadgen_mono_ns ();
    Retain__V1__OrderPlaced *order;
    rt_uuid_t id;
    long i = -1;
    (void)db;
    atomic_store (&sh->gaps[child->g], (long)rt_counter_value (child->gaps));
    order = retain__v1__order_placed__unpack (NULL, event->payload.len, event->payload.data);
    if (order && strncmp (order->order_id, "bench-", 6) == 0 &&
        isdigit ((unsigned char)order->order_id[6]))
        i = strtol (order->order_id + 6, NULL, 10);
    if (order)
        retain__v1__order_placed__free_unpacked (order, NULL);
    if (i < 0 || i >= sh->nslots || rt_uuid_parse (event->id, &id) != 0 ||
        memcmp (id.b, sh->slot[i].id.b, sizeof id.b) != 0) {
        atomic_fetch_add (&sh->foreign, 1);
        return 0;
    }
    if (atomic_fetch_add (&child->seen[i].handled, 1) == 0) {
        child->seen[i].handled_ns = now;
        child->seen[i].partition = event->partition;
        child->seen[i].pseq = event->pseq;
        atomic_fetch_add (&sh->handled[child->g], 1);
    }
    return 0;
}

/* The name of group g. */
void
traffic_group_name (int g, char *out, size_t len)
{
    if (g == 0)
        snprintf (out, len, "%s", GROUP);
    else
        snprintf (out, len, "%s-%d", GROUP, g + 1);
}

/* Group g's replica, until SIGTERM. */
int
traffic_consumer_main (const char *dsn, const char *pub, int g, const char *member, int rcvhwm,
                       bench_shared_t *sh)
{
    const char *streams[] = {STREAM};
    rt_consumer_config_t config = {0};
    rt_consumer_t *consumer;
    rt_metrics_t *metrics = rt_metrics_new ();
    s_child_t child = {sh, sh->seen + (size_t)g * (size_t)sh->nslots, g, NULL};
    char err[256], group[32], labels[48];
    int rc;
    rt_signal_install ();
    traffic_group_name (g, group, sizeof group);
    snprintf (labels, sizeof labels, "group=\"%s\"", group);
    config.dsn = dsn;
    config.group = group;
    config.member = member;
    config.pub_endpoints = pub;
    config.streams = streams;
    config.nstreams = 1;
    config.batch_max = 4000;
    config.rcvhwm = rcvhwm;
    config.metrics = metrics;
    config.handler = s_handler;
    config.handler_arg = &child;
    consumer = rt_consumer_new (&config, err, sizeof err);
    if (!consumer) {
        fprintf (stderr, "consumer: %s\n", err);
        rt_metrics_destroy (&metrics);
        return 1;
    }
    child.gaps = rt_metrics_counter (metrics, "retain_consumer_gaps_total", labels,
                                     "Gaps in live events recovered from the log.");
    rc = rt_consumer_run (consumer);
    rt_consumer_destroy (&consumer);
    rt_metrics_destroy (&metrics);
    return rc;
}
