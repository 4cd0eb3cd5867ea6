/*
 * consumer_live: events as busd publishes them, and the gaps between them.
 *
 * The SUB socket subscribes to the topic of each owned partition
 * (rt_bus_topic). Draining it appends each event that is the next one a
 * partition expects (offset + npending + 1) to its pending list; an older
 * one is a repeat and is dropped; a newer one means something between was
 * lost (the subscriber's high-water mark, a busd restart), so the pending
 * list is dropped and the partition switches to catch-up, which reads the
 * log and comes back to live events when it reaches the head. A gap with
 * nothing after it shows no jump: at each rebalance the log heads are read
 * (consumer_heads_check) and a partition whose log grew before the previous
 * rebalance while nothing came live since is sent to catch-up too.
 *
 * A live round holds every owned partition with pending events; a failed
 * or fenced partition leaves the round (consumer_offsets.c) and the rest
 * go again at once, so one bad partition never holds back the others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "consumer_int.h"
#include "rt_bus.h"

/* Messages taken off the socket per drain, so a flood cannot keep the
 * replica from committing and rebalancing. */
#define S_DRAIN_MAX 20000

static const char *s_sql_heads = "SELECT stream, partition, pseq FROM bus.counters "
                                 "WHERE stream = ANY($1::text[])";

int
consumer_live_prepare (rt_consumer_t *self)
{
    return rt_db_prepare (self->db, "rt_consumer_heads", s_sql_heads);
}

void
consumer_drop_pending (consumer_part_t *part)
{
    size_t i;
    for (i = 0; i < part->npending; i++)
        retain__v1__envelope__free_unpacked (part->pending[i], NULL);
    part->npending = 0;
}

int
consumer_subscribe (rt_consumer_t *self, char *err, size_t errlen)
{
    char *list, *save = NULL, *ep;
    self->ctx = zmq_ctx_new ();
    if (!self->ctx)
        return -1;
    self->sub = zmq_socket (self->ctx, ZMQ_SUB);
    if (!self->sub)
        return -1;
    if (self->rcvhwm > 0)
        zmq_setsockopt (self->sub, ZMQ_RCVHWM, &self->rcvhwm, sizeof self->rcvhwm);
    if (rt_bus_curve_apply (self->sub, &self->curve, err, errlen) != 0)
        return -1;
    list = strdup (self->pub_endpoints);
    if (!list)
        return -1;
    for (ep = strtok_r (list, ",", &save); ep; ep = strtok_r (NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (zmq_connect (self->sub, ep) != 0) {
            snprintf (err, errlen, "cannot connect to \"%s\": %s", ep, zmq_strerror (errno));
            free (list);
            return -1;
        }
    }
    free (list);
    return 0;
}

void
consumer_follow (rt_consumer_t *self, const consumer_part_t *part)
{
    char topic[RT_BUS_TOPIC_MAX];
    rt_bus_topic (topic, sizeof topic, part->stream, part->partition);
    zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
}

void
consumer_unfollow (rt_consumer_t *self, const consumer_part_t *part)
{
    char topic[RT_BUS_TOPIC_MAX];
    rt_bus_topic (topic, sizeof topic, part->stream, part->partition);
    zmq_setsockopt (self->sub, ZMQ_UNSUBSCRIBE, topic, strlen (topic));
}

/* The partition a topic ("stream.partition") names, or NULL. */
static consumer_part_t *
s_find_part (rt_consumer_t *self, const char *topic, size_t len)
{
    const char *dot = memchr (topic, '.', len);
    size_t i, slen;
    uint32_t p = 0;
    if (!dot)
        return NULL;
    slen = (size_t)(dot - topic);
    for (const char *c = dot + 1; c < topic + len; c++) {
        if (*c < '0' || *c > '9')
            return NULL;
        p = p * 10 + (uint32_t)(*c - '0');
    }
    for (i = 0; i < self->nparts; i++) {
        consumer_part_t *part = &self->parts[i];
        if (part->partition == p && strlen (part->stream) == slen &&
            memcmp (part->stream, topic, slen) == 0)
            return part;
    }
    return NULL;
}

/* Live events stop counting for this partition until the log is read. */
static void
s_to_log (consumer_part_t *part)
{
    consumer_drop_pending (part);
    part->catchup = true;
}

void
consumer_drain (rt_consumer_t *self)
{
    int count;
    for (count = 0; count < S_DRAIN_MAX; count++) {
        zmq_msg_t topic, body;
        consumer_part_t *part;
        Retain__V1__Envelope *env;
        zmq_msg_init (&topic);
        if (zmq_msg_recv (&topic, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            return;
        }
        zmq_msg_init (&body);
        if (!zmq_msg_more (&topic) || zmq_msg_recv (&body, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            continue;
        }
        part = s_find_part (self, zmq_msg_data (&topic), zmq_msg_size (&topic));
        env = part && part->owned && !part->catchup
                  ? retain__v1__envelope__unpack (NULL, zmq_msg_size (&body), zmq_msg_data (&body))
                  : NULL;
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
        if (!env)
            continue;
        part->live = true;
        if (env->pseq <= part->offset + part->npending) {
            retain__v1__envelope__free_unpacked (env, NULL); /* already have it */
            continue;
        }
        if (env->pseq > part->offset + part->npending + 1) {
            /* Something between was dropped: the log has it. */
            if (part->head < env->pseq)
                part->head = env->pseq;
            retain__v1__envelope__free_unpacked (env, NULL);
            s_to_log (part);
            if (self->m_gaps)
                rt_counter_inc (self->m_gaps);
            continue;
        }
        if (part->npending == part->cap) {
            size_t cap = part->cap ? part->cap * 2 : 64;
            Retain__V1__Envelope **p = realloc (part->pending, cap * sizeof *p);
            if (!p) {
                retain__v1__envelope__free_unpacked (env, NULL);
                s_to_log (part);
                continue;
            }
            part->pending = p;
            part->cap = cap;
        }
        part->pending[part->npending++] = env;
        if (part->head < env->pseq)
            part->head = env->pseq;
    }
}

int
consumer_heads_check (rt_consumer_t *self)
{
    const char *params[1] = {self->streams_array.data};
    PGresult *res;
    size_t i;
    int r;

    res = rt_db_exec_prepared (self->db, "rt_consumer_heads", 1, params, NULL, NULL, 0);
    if (!res)
        return -1;
    for (r = 0; r < PQntuples (res); r++) {
        const char *stream = PQgetvalue (res, r, 0);
        uint32_t p = (uint32_t)atoi (PQgetvalue (res, r, 1));
        for (i = 0; i < self->nparts; i++) {
            consumer_part_t *part = &self->parts[i];
            if (part->partition == p && strcmp (part->stream, stream) == 0) {
                /* Live delivery missed the tail (a publish lost at a busd
                 * restart, a subscription not yet in effect, a drop with
                 * nothing after it to show the jump): events already in
                 * the log at the previous rebalance have not come, and
                 * nothing came live since. Events merely in flight, or
                 * queued behind a slow handler, are not missing: treating
                 * them so would drop the live stream of every busy
                 * partition each interval and hide real gaps. */
                if (part->owned && !part->catchup && !part->live &&
                    part->head_before > part->offset + part->npending) {
                    part->catchup = true;
                    if (self->m_gaps)
                        rt_counter_inc (self->m_gaps);
                }
                part->head = strtoull (PQgetvalue (res, r, 2), NULL, 10);
                part->head_before = part->head;
                part->live = false;
            }
        }
    }
    PQclear (res);
    return 0;
}

int
consumer_live_round (rt_consumer_t *self)
{
    for (;;) {
        size_t i, n = 0;
        for (i = 0; i < self->nparts; i++) {
            consumer_part_t *part = &self->parts[i];
            if (!part->owned || part->npending == 0)
                continue;
            self->slices[n].part = part;
            /* The handler only reads the events. */
            self->slices[n].events = (const Retain__V1__Envelope *const *)part->pending;
            self->slices[n].nevents = part->npending;
            n++;
        }
        if (n == 0)
            return 0;
        switch (consumer_round (self, self->slices, n)) {
        case CONSUMER_COMMITTED:
            return 0;
        case CONSUMER_LOST:
            return -1;
        case CONSUMER_RETRY:
        case CONSUMER_FENCED:
            /* The partitions at fault have no pending events now. */
            break;
        }
    }
}
