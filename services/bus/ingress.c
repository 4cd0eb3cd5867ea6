/*
 * ingress: the ZeroMQ door of the log.
 *
 * A producer's DEALER sends one frame, a serialized Envelope; a REQ socket
 * sends an empty delimiter first, which is echoed in the answer. Every bad
 * message is answered REJECTED with the reason at once (it will never be
 * accepted, so the producer must not retry it), counted by reason, and
 * logged; good ones join the batch and are answered only after COMMIT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "busd.h"
#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_log.h"

#define INGRESS_KEY_MAX 512

static void
s_count_rejected (busd_t *self, const char *reason)
{
    char labels[64];
    snprintf (labels, sizeof labels, "reason=\"%s\"", reason);
    rt_counter_inc (rt_metrics_counter (self->metrics, "retain_bus_envelopes_rejected_total",
                                        labels, "Envelopes refused, by reason."));
}

static void
s_send_ack (busd_t *self, const uint8_t *identity, size_t identity_len, bool delimiter,
            const Retain__V1__Ack *ack)
{
    uint8_t buf[1024];
    size_t len = retain__v1__ack__get_packed_size (ack);
    uint8_t *data = len <= sizeof buf ? buf : malloc (len);
    if (!data)
        return;
    retain__v1__ack__pack (ack, data);
    /* ROUTER_MANDATORY makes a vanished producer an error we can count
     * instead of a silent drop; DONTWAIT keeps a stuck producer from
     * stalling the writer (it will retry and be told DUPLICATE). */
    if (zmq_send (self->router, identity, identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        (delimiter && zmq_send (self->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) ||
        zmq_send (self->router, data, len, ZMQ_DONTWAIT) < 0)
        rt_counter_inc (self->m.acks_undelivered);
    if (data != buf)
        free (data);
}

void
ingress_ack (busd_t *self, const busd_item_t *item)
{
    Retain__V1__Ack ack = RETAIN__V1__ACK__INIT;
    ack.id = item->env->id;
    ack.status = item->status;
    ack.seq = item->seq;
    ack.partition = item->partition;
    ack.pseq = item->pseq;
    if (item->error)
        ack.error = item->error;
    s_send_ack (self, item->identity, item->identity_len, item->delimiter, &ack);
}

static void
s_reject (busd_t *self, const uint8_t *identity, size_t identity_len, bool delimiter,
          const char *id, const char *why, const char *reason)
{
    Retain__V1__Ack ack = RETAIN__V1__ACK__INIT;
    ack.id = (char *)(id ? id : "");
    ack.status = RETAIN__V1__ACK__STATUS__REJECTED;
    ack.error = (char *)why;
    s_count_rejected (self, reason);
    rt_log (RT_LOG_WARN, "envelope rejected", rt_log_str ("reason", reason),
            rt_log_str ("error", why), rt_log_str ("id", id ? id : ""));
    if (identity)
        s_send_ack (self, identity, identity_len, delimiter, &ack);
}

Retain__V1__Envelope *
ingress_parse (busd_t *self, const uint8_t *data, size_t len, rt_uuid_t *uuid, int *stream_index,
               char *why, size_t whylen, const char **reason)
{
    Retain__V1__Envelope *env;
    const rt_bus_type_t *type;
    ProtobufCMessage *payload;
    int64_t id_ms, now_ms;

    if ((int64_t)len > self->max_message) {
        snprintf (why, whylen, "message of %zu bytes is over the limit of %lld bytes", len,
                  (long long)self->max_message);
        *reason = "too_large";
        return NULL;
    }
    env = retain__v1__envelope__unpack (NULL, len, data);
    if (!env) {
        snprintf (why, whylen, "frame is not a retain.v1.Envelope");
        *reason = "unparsable";
        return NULL;
    }
    /* Every string, the envelope's and the payload's, must be storable as
     * text: checked on the wire, where a NUL is still visible (protobuf-c
     * cuts strings at the first one). */
    if (rt_bus_text_check (&retain__v1__envelope__descriptor, data, len, why, whylen) != 0) {
        *reason = "bad_utf8";
        goto fail;
    }
    if (rt_uuid_parse (env->id, uuid) != 0) {
        snprintf (why, whylen, "id \"%.64s\" is not a UUID", env->id);
        *reason = "bad_id";
        goto fail;
    }
    /* The log is partitioned by the time in the id and keeps ids as long as
     * it keeps their events: an id must be a UUIDv7 made within the
     * retention window (with an hour's margin for the drop of the oldest
     * day), not more than a day ahead of this clock, and of a day whose
     * partition exists (retention.c keeps the two in step). */
    id_ms = rt_uuid_v7_time_ms (uuid);
    now_ms = rt_clock_now_ms ();
    if (id_ms == 0) {
        snprintf (why, whylen, "id \"%.64s\" is not a UUIDv7", env->id);
        *reason = "bad_id";
        goto fail;
    }
    if (id_ms < now_ms - self->retention_ms + 3600000 || id_ms > now_ms + 86400000) {
        snprintf (why, whylen,
                  "id \"%.64s\" was made %+.1f h from now, outside the log's window "
                  "(retention %.0f h back, 24 h ahead)",
                  env->id, (double)(id_ms - now_ms) / 3600000.0,
                  (double)self->retention_ms / 3600000.0);
        *reason = "bad_id";
        goto fail;
    }
    if (self->covered_to_ms > 0 &&
        (id_ms < self->covered_from_ms || id_ms >= self->covered_to_ms)) {
        snprintf (why, whylen,
                  "id \"%.64s\" was made %+.1f h from now, on a day the log has no partition "
                  "for",
                  env->id, (double)(id_ms - now_ms) / 3600000.0);
        *reason = "no_partition";
        goto fail;
    }
    type = rt_bus_type_find (env->type);
    if (!type) {
        snprintf (why, whylen, "unknown type \"%.64s\"", env->type);
        *reason = "unknown_type";
        goto fail;
    }
    if (!env->key[0]) {
        snprintf (why, whylen, "no key");
        *reason = "no_key";
        goto fail;
    }
    if (strlen (env->key) > INGRESS_KEY_MAX) {
        snprintf (why, whylen, "key longer than %d bytes", INGRESS_KEY_MAX);
        *reason = "bad_key";
        goto fail;
    }
    if (env->stream[0] && rt_bus_stream_index (env->stream) < 0) {
        snprintf (why, whylen, "unknown stream \"%.64s\"", env->stream);
        *reason = "unknown_stream";
        goto fail;
    }
    if (rt_bus_type_stream_check (type, env->stream, why, whylen) != 0) {
        *reason = "wrong_stream";
        goto fail;
    }
    *stream_index = rt_bus_stream_index (type->stream);
    if (*stream_index < 0 || (size_t)*stream_index >= self->nstreams) {
        snprintf (why, whylen, "unknown stream \"%.64s\"", type->stream);
        *reason = "unknown_stream";
        goto fail;
    }
    payload = protobuf_c_message_unpack (type->desc, NULL, env->payload.len, env->payload.data);
    if (!payload) {
        snprintf (why, whylen, "payload does not parse as retain.v1.%s", type->type);
        *reason = "bad_payload";
        goto fail;
    }
    protobuf_c_message_free_unpacked (payload, NULL);
    {
        char sub[200];
        if (rt_bus_text_check (type->desc, env->payload.data, env->payload.len, sub, sizeof sub) !=
            0) {
            snprintf (why, whylen, "payload %s", sub);
            *reason = "bad_utf8";
            goto fail;
        }
    }
    /* Normalise the type to its short name, so the log holds one spelling. */
    if (strcmp (env->type, type->type) != 0) {
        char *t = strdup (type->type);
        if (!t) {
            snprintf (why, whylen, "out of memory");
            *reason = "internal";
            goto fail;
        }
        /* protobuf-c frees unpacked strings with the allocator (free). */
        free (env->type);
        env->type = t;
    }
    if (!env->stream[0]) {
        /* An empty string points at protobuf-c's shared default: replace,
         * never free. */
        char *name = strdup (type->stream);
        if (!name) {
            snprintf (why, whylen, "out of memory");
            *reason = "internal";
            goto fail;
        }
        env->stream = name;
    }
    return env;
fail:
    retain__v1__envelope__free_unpacked (env, NULL);
    return NULL;
}

static int
s_grow (busd_t *self)
{
    if (self->nitems < self->items_cap)
        return 0;
    size_t cap = self->items_cap ? self->items_cap * 2 : 256;
    busd_item_t *items = realloc (self->items, cap * sizeof *items);
    if (!items)
        return -1;
    self->items = items;
    self->items_cap = cap;
    return 0;
}

void
items_clear (busd_t *self)
{
    size_t i;
    for (i = 0; i < self->nitems; i++) {
        retain__v1__envelope__free_unpacked (self->items[i].env, NULL);
        free (self->items[i].error);
    }
    self->nitems = 0;
}

int
ingress_read (busd_t *self)
{
    int added = 0;
    while (self->nitems < (size_t)self->batch_max) {
        zmq_msg_t frames[3];
        int nframes = 0;
        int more = 1;
        bool overflow = false;
        const uint8_t *body;
        size_t body_len;
        bool delimiter = false;
        int i;

        while (more) {
            zmq_msg_t frame;
            zmq_msg_init (&frame);
            if (zmq_msg_recv (&frame, self->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close (&frame);
                if (nframes == 0)
                    return added; /* EAGAIN: nothing more now */
                /* Parts of a message arrive atomically; this cannot happen
                 * short of a bug in ZeroMQ. */
                break;
            }
            more = zmq_msg_more (&frame);
            if (nframes < 3)
                frames[nframes++] = frame;
            else {
                overflow = true;
                zmq_msg_close (&frame);
            }
        }

        /* frames[0] is the identity ROUTER prepends. */
        if (nframes == 3 && !overflow && zmq_msg_size (&frames[1]) == 0) {
            delimiter = true;
            body = zmq_msg_data (&frames[2]);
            body_len = zmq_msg_size (&frames[2]);
        } else if (nframes == 2 && !overflow) {
            body = zmq_msg_data (&frames[1]);
            body_len = zmq_msg_size (&frames[1]);
        } else {
            if (nframes >= 1 && zmq_msg_size (&frames[0]) <= BUSD_IDENTITY_MAX)
                s_reject (self, zmq_msg_data (&frames[0]), zmq_msg_size (&frames[0]),
                          nframes >= 2 && zmq_msg_size (&frames[1]) == 0, NULL,
                          "expected one frame holding an Envelope (after an optional empty "
                          "delimiter)",
                          "bad_frames");
            for (i = 0; i < nframes; i++)
                zmq_msg_close (&frames[i]);
            continue;
        }

        if (zmq_msg_size (&frames[0]) > BUSD_IDENTITY_MAX || s_grow (self) != 0) {
            s_count_rejected (self, "internal");
            for (i = 0; i < nframes; i++)
                zmq_msg_close (&frames[i]);
            continue;
        }

        {
            busd_item_t *item = &self->items[self->nitems];
            char why[256];
            const char *reason = "";
            memset (item, 0, sizeof *item);
            item->env = ingress_parse (self, body, body_len, &item->uuid, &item->stream_index, why,
                                       sizeof why, &reason);
            if (!item->env) {
                /* Try to name the id in the answer so the producer can match it. */
                Retain__V1__Envelope *partial = NULL;
                if (strcmp (reason, "unparsable") != 0 && strcmp (reason, "too_large") != 0)
                    partial = retain__v1__envelope__unpack (NULL, body_len, body);
                s_reject (self, zmq_msg_data (&frames[0]), zmq_msg_size (&frames[0]), delimiter,
                          partial ? partial->id : NULL, why, reason);
                if (partial)
                    retain__v1__envelope__free_unpacked (partial, NULL);
            } else {
                item->origin = ITEM_INGRESS;
                item->identity_len = zmq_msg_size (&frames[0]);
                memcpy (item->identity, zmq_msg_data (&frames[0]), item->identity_len);
                item->delimiter = delimiter;
                self->nitems++;
                added++;
            }
        }
        for (i = 0; i < nframes; i++)
            zmq_msg_close (&frames[i]);
    }
    return added;
}
