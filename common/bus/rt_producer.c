/*
 * rt_producer: envelopes kept until busd says they are durable.
 *
 * Pending envelopes live in a hash table keyed by id, each with the time it
 * was last sent. An ack removes its entry; a poll resends entries older than
 * the resend interval. Resending after a busd restart or a failover is what
 * makes a producer's "sent" mean "in the log": busd answers DUPLICATE for
 * the ones that had made it.
 */
#include "rt_clock.h"
#include "rt_producer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "rt_bus.h"

typedef struct s_entry_t {
    char id[64];            /* envelope id */
    uint8_t *data;          /* the serialized envelope */
    size_t len;             /* its length */
    int64_t sent_ms;        /* monotonic time of the last send */
    struct s_entry_t *next; /* bucket chain */
} s_entry_t;

struct rt_producer_t {
    void *ctx;            /* ZeroMQ context */
    void *socket;         /* DEALER connected to every endpoint */
    s_entry_t **buckets;  /* pending envelopes by id */
    size_t nbuckets;      /* power of two */
    size_t pending;       /* entries */
    int resend_ms;        /* resend interval */
    int64_t last_scan_ms; /* last resend scan */
};

static uint64_t
s_hash (const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) {
        h ^= (uint8_t)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

rt_producer_t *
rt_producer_new (const char *endpoints, const rt_bus_curve_t *curve, char *err, size_t errlen)
{
    rt_producer_t *self = calloc (1, sizeof *self);
    char *list = NULL, *save = NULL, *ep;
    int zero = 0;
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->resend_ms = 1000;
    self->nbuckets = 1024;
    self->buckets = calloc (self->nbuckets, sizeof *self->buckets);
    self->ctx = zmq_ctx_new ();
    if (!self->buckets || !self->ctx) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    self->socket = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->socket) {
        snprintf (err, errlen, "socket: %s", zmq_strerror (errno));
        goto fail;
    }
    /* Pending envelopes are our own buffer; ZeroMQ should never drop or
     * block on them. Linger 0: what was not acknowledged is resent by
     * whoever owns it next. */
    zmq_setsockopt (self->socket, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_LINGER, &zero, sizeof zero);
    if (rt_bus_curve_apply (self->socket, curve, err, errlen) != 0)
        goto fail;
    list = strdup (endpoints ? endpoints : "");
    if (!list)
        goto fail;
    for (ep = strtok_r (list, ",", &save); ep; ep = strtok_r (NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (zmq_connect (self->socket, ep) != 0) {
            snprintf (err, errlen, "cannot connect to \"%s\": %s", ep, zmq_strerror (errno));
            goto fail;
        }
    }
    free (list);
    return self;
fail:
    free (list);
    rt_producer_destroy (&self);
    return NULL;
}

void
rt_producer_destroy (rt_producer_t **self_p)
{
    rt_producer_t *self;
    size_t i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; self->buckets && i < self->nbuckets; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            free (e->data);
            free (e);
            e = next;
        }
    }
    free (self->buckets);
    if (self->socket)
        zmq_close (self->socket);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    free (self);
    *self_p = NULL;
}

void
rt_producer_set_resend_ms (rt_producer_t *self, int ms)
{
    self->resend_ms = ms > 0 ? ms : 1000;
}

size_t
rt_producer_pending (const rt_producer_t *self)
{
    return self->pending;
}

static s_entry_t **
s_find (rt_producer_t *self, const char *id)
{
    s_entry_t **p = &self->buckets[s_hash (id) & (self->nbuckets - 1)];
    while (*p && strcmp ((*p)->id, id) != 0)
        p = &(*p)->next;
    return p;
}

/* Unlinks and frees the entry at slot. */
static void
s_remove (rt_producer_t *self, s_entry_t **slot)
{
    s_entry_t *e = *slot;
    *slot = e->next;
    free (e->data);
    free (e);
    self->pending--;
}

static void
s_grow (rt_producer_t *self)
{
    size_t n = self->nbuckets * 2, i;
    s_entry_t **buckets = calloc (n, sizeof *buckets);
    if (!buckets)
        return; /* longer chains, still correct */
    for (i = 0; i < self->nbuckets; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            size_t b = s_hash (e->id) & (n - 1);
            e->next = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free (self->buckets);
    self->buckets = buckets;
    self->nbuckets = n;
}

static int
s_send (rt_producer_t *self, s_entry_t *e)
{
    e->sent_ms = rt_clock_mono_ms ();
    /* With an unlimited HWM DONTWAIT fails only when no busd is connected
     * yet; the entry stays pending and is resent. */
    if (zmq_send (self->socket, e->data, e->len, ZMQ_DONTWAIT) < 0 && errno != EAGAIN)
        return -1;
    return 0;
}

int
rt_producer_post_packed (rt_producer_t *self, const char *id, const uint8_t *data, size_t len)
{
    s_entry_t **slot;
    s_entry_t *e;
    if (!id || !id[0] || strlen (id) >= sizeof e->id)
        return -1;
    slot = s_find (self, id);
    if (*slot)
        return -1;
    e = calloc (1, sizeof *e);
    if (!e)
        return -1;
    e->data = malloc (len ? len : 1);
    if (!e->data) {
        free (e);
        return -1;
    }
    memcpy (e->data, data, len);
    e->len = len;
    snprintf (e->id, sizeof e->id, "%s", id);
    *slot = e;
    self->pending++;
    if (self->pending > self->nbuckets)
        s_grow (self);
    return s_send (self, e);
}

int
rt_producer_post (rt_producer_t *self, const Retain__V1__Envelope *env)
{
    size_t len;
    uint8_t *data = rt_envelope_pack (env, &len);
    int rc;
    if (!data)
        return -1;
    rc = rt_producer_post_packed (self, env->id, data, len);
    free (data);
    return rc;
}

static void
s_resend_overdue (rt_producer_t *self)
{
    int64_t now = rt_clock_mono_ms ();
    size_t i;
    /* A scan costs O(pending); a few per resend interval are plenty. */
    if (now - self->last_scan_ms < self->resend_ms / 4)
        return;
    self->last_scan_ms = now;
    for (i = 0; i < self->nbuckets; i++) {
        s_entry_t *e;
        for (e = self->buckets[i]; e; e = e->next) {
            if (now - e->sent_ms >= self->resend_ms)
                s_send (self, e);
        }
    }
}

/* Handles one received message; returns 1 when it was the final ack of a
 * pending envelope. */
static int
s_handle (rt_producer_t *self, zmq_msg_t *msg, rt_producer_ack_fn cb, void *arg)
{
    Retain__V1__Ack *ack =
        retain__v1__ack__unpack (NULL, zmq_msg_size (msg), (const uint8_t *)zmq_msg_data (msg));
    s_entry_t **slot;
    int rc = 0;
    if (!ack)
        return 0;
    slot = s_find (self, ack->id);
    if (*slot) {
        s_remove (self, slot);
        if (cb)
            cb (ack, arg);
        rc = 1;
    }
    /* An ack for nothing pending is the answer to a resend already
     * answered: ignore it. */
    retain__v1__ack__free_unpacked (ack, NULL);
    return rc;
}

int
rt_producer_poll (rt_producer_t *self, int timeout_ms, rt_producer_ack_fn cb, void *arg)
{
    return rt_producer_poll_fd (self, timeout_ms, -1, cb, arg);
}

int
rt_producer_poll_fd (rt_producer_t *self, int timeout_ms, int fd, rt_producer_ack_fn cb, void *arg)
{
    zmq_pollitem_t items[2] = {{self->socket, 0, ZMQ_POLLIN, 0}, {NULL, fd, ZMQ_POLLIN, 0}};
    int handled = 0;
    s_resend_overdue (self);
    if (zmq_poll (items, fd >= 0 ? 2 : 1, timeout_ms) < 0)
        return errno == EINTR ? 0 : -1;
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, self->socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            break;
        }
        handled += s_handle (self, &msg, cb, arg);
        zmq_msg_close (&msg);
    }
    s_resend_overdue (self);
    return handled;
}

int
rt_producer_forget (rt_producer_t *self, const char *id)
{
    s_entry_t **slot = s_find (self, id);
    if (!*slot)
        return -1;
    s_remove (self, slot);
    return 0;
}

typedef struct {
    const char *id;       /* the envelope waited for */
    bool done;            /* its ack arrived */
    Retain__V1__Ack copy; /* scalar fields of the ack */
    char error[256];      /* reason, when rejected */
} s_wait_t;

static void
s_wait_cb (const Retain__V1__Ack *ack, void *arg)
{
    s_wait_t *w = arg;
    if (strcmp (ack->id, w->id) != 0)
        return;
    w->done = true;
    w->copy.status = ack->status;
    w->copy.seq = ack->seq;
    w->copy.partition = ack->partition;
    w->copy.pseq = ack->pseq;
    snprintf (w->error, sizeof w->error, "%s", ack->error ? ack->error : "");
}

int
rt_producer_send (rt_producer_t *self, const Retain__V1__Envelope *env, int timeout_ms,
                  Retain__V1__Ack *ack_out, char *err, size_t errlen)
{
    s_wait_t w;
    int64_t deadline = rt_clock_mono_ms () + timeout_ms;
    memset (&w, 0, sizeof w);
    retain__v1__ack__init (&w.copy);
    w.id = env->id;
    if (rt_producer_post (self, env) != 0) {
        snprintf (err, errlen, "cannot send envelope %s (no id, or already pending)", env->id);
        return -1;
    }
    while (!w.done) {
        int64_t left = deadline - rt_clock_mono_ms ();
        if (left <= 0) {
            /* Give up on it: a late ack must not be reported later. */
            rt_producer_forget (self, env->id);
            snprintf (err, errlen, "timeout: no acknowledgement from busd within %d ms",
                      timeout_ms);
            return -1;
        }
        if (rt_producer_poll (self, (int)(left < 100 ? left : 100), s_wait_cb, &w) < 0) {
            snprintf (err, errlen, "socket error: %s", zmq_strerror (errno));
            return -1;
        }
    }
    if (w.copy.status == RETAIN__V1__ACK__STATUS__REJECTED) {
        snprintf (err, errlen, "rejected: %s", w.error);
        return -1;
    }
    if (ack_out) {
        ack_out->status = w.copy.status;
        ack_out->seq = w.copy.seq;
        ack_out->partition = w.copy.partition;
        ack_out->pseq = w.copy.pseq;
    }
    return 0;
}
