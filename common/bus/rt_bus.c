/*
 * rt_bus: the event type registry, streams, partition hash and envelopes.
 *
 * Adding an event type: define the message in proto/retain/v1/, then add a
 * line to s_types with the stream it belongs to. busd rejects types that are
 * not here, so a typo in a producer is an error, not a silent new stream.
 */
#include "rt_bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "rt_clock.h"
#include "rt_log.h"
#include "rt_utf8.h"
#include "rt_uuid.h"
#include "retain/v1/conversation.pb-c.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/loyalty.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "retain/v1/notification.pb-c.h"
#include "retain/v1/order.pb-c.h"
#include "retain/v1/shipment.pb-c.h"

static const char *const s_streams[] = {"message",      "conversation", "order",   "shipment",
                                        "notification", "loyalty",      "customer"};

static const rt_bus_type_t s_types[] = {
    {"InboundMessage", "message", &retain__v1__inbound_message__descriptor},
    {"OutboundMessageRequested", "message", &retain__v1__outbound_message_requested__descriptor},
    {"MessageDelivered", "message", &retain__v1__message_delivered__descriptor},
    {"MessageFailed", "message", &retain__v1__message_failed__descriptor},
    {"ConversationAssigned", "conversation", &retain__v1__conversation_assigned__descriptor},
    {"SlaBreached", "conversation", &retain__v1__sla_breached__descriptor},
    {"OrderPlaced", "order", &retain__v1__order_placed__descriptor},
    {"OrderPaid", "order", &retain__v1__order_paid__descriptor},
    {"OrderShipped", "order", &retain__v1__order_shipped__descriptor},
    {"OrderCancelled", "order", &retain__v1__order_cancelled__descriptor},
    {"OrderRefunded", "order", &retain__v1__order_refunded__descriptor},
    {"ShipmentStatusChanged", "shipment", &retain__v1__shipment_status_changed__descriptor},
    {"ShipmentDelayed", "shipment", &retain__v1__shipment_delayed__descriptor},
    {"NotificationRequested", "notification", &retain__v1__notification_requested__descriptor},
    {"PointsEarned", "loyalty", &retain__v1__points_earned__descriptor},
    {"CouponIssued", "loyalty", &retain__v1__coupon_issued__descriptor},
    {"TierChanged", "loyalty", &retain__v1__tier_changed__descriptor},
    {"ChurnRiskChanged", "loyalty", &retain__v1__churn_risk_changed__descriptor},
    {"FeedbackReceived", "customer", &retain__v1__feedback_received__descriptor},
    {"CustomerUpserted", "customer", &retain__v1__customer_upserted__descriptor},
    {"CustomerMerged", "customer", &retain__v1__customer_merged__descriptor},
    {"CustomerUnmerged", "customer", &retain__v1__customer_unmerged__descriptor},
    {"ConsentChanged", "customer", &retain__v1__consent_changed__descriptor},
};

#define S_NTYPES   (sizeof s_types / sizeof s_types[0])
#define S_NSTREAMS (sizeof s_streams / sizeof s_streams[0])

const rt_bus_type_t *
rt_bus_type_find (const char *type)
{
    size_t i;
    if (!type)
        return NULL;
    if (strncmp (type, "retain.v1.", 10) == 0)
        type += 10;
    for (i = 0; i < S_NTYPES; i++) {
        if (strcmp (s_types[i].type, type) == 0)
            return &s_types[i];
    }
    return NULL;
}

const rt_bus_type_t *
rt_bus_types (size_t *count)
{
    *count = S_NTYPES;
    return s_types;
}

const char *const *
rt_bus_streams (size_t *count)
{
    *count = S_NSTREAMS;
    return s_streams;
}

int
rt_bus_stream_index (const char *stream)
{
    size_t i;
    if (!stream)
        return -1;
    for (i = 0; i < S_NSTREAMS; i++) {
        if (strcmp (s_streams[i], stream) == 0)
            return (int)i;
    }
    return -1;
}

uint32_t
rt_bus_partition (const char *key, size_t len, uint32_t partitions)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    return partitions ? h % partitions : 0;
}

size_t
rt_bus_topic (char *out, size_t outlen, const char *stream, uint32_t partition)
{
    int n = snprintf (out, outlen, "%s.%04u", stream, partition);
    if (n < 0)
        return 0;
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

static char *
s_dup (const char *s)
{
    return strdup (s ? s : "");
}

/* Envelopes we build own every string; empty strings are real allocations
 * too, so rt_envelope_free can free every field without special cases. */
static Retain__V1__Envelope *
s_envelope_alloc (void)
{
    Retain__V1__Envelope *env = calloc (1, sizeof *env);
    if (!env)
        return NULL;
    retain__v1__envelope__init (env);
    env->id = NULL;
    env->type = NULL;
    env->stream = NULL;
    env->key = NULL;
    env->producer = NULL;
    env->correlation_id = NULL;
    return env;
}

void
rt_envelope_free (Retain__V1__Envelope *env)
{
    if (!env)
        return;
    free (env->id);
    free (env->type);
    free (env->stream);
    free (env->key);
    free (env->producer);
    free (env->correlation_id);
    free (env->payload.data);
    free (env);
}

Retain__V1__Envelope *
rt_envelope_copy (const Retain__V1__Envelope *src)
{
    Retain__V1__Envelope *env = s_envelope_alloc ();
    if (!env)
        return NULL;
    env->id = s_dup (src->id);
    env->type = s_dup (src->type);
    env->stream = s_dup (src->stream);
    env->key = s_dup (src->key);
    env->producer = s_dup (src->producer);
    env->correlation_id = s_dup (src->correlation_id);
    env->seq = src->seq;
    env->partition = src->partition;
    env->pseq = src->pseq;
    env->occurred_at = src->occurred_at;
    if (src->payload.len) {
        env->payload.data = malloc (src->payload.len);
        if (env->payload.data) {
            memcpy (env->payload.data, src->payload.data, src->payload.len);
            env->payload.len = src->payload.len;
        }
    }
    if (!env->id || !env->type || !env->stream || !env->key || !env->producer ||
        !env->correlation_id || (src->payload.len && !env->payload.data)) {
        rt_envelope_free (env);
        return NULL;
    }
    return env;
}

Retain__V1__Envelope *
rt_envelope_new (const char *type, const char *key, const ProtobufCMessage *payload,
                 const char *producer)
{
    const rt_bus_type_t *t = rt_bus_type_find (type);
    Retain__V1__Envelope *env;
    rt_uuid_t id;
    char idtext[RT_UUID_STR_LEN + 1];

    if (!t)
        return NULL;
    env = s_envelope_alloc ();
    if (!env)
        return NULL;
    id = rt_uuid_v7 ();
    rt_uuid_format (&id, idtext);
    env->id = s_dup (idtext);
    env->type = s_dup (t->type);
    env->stream = s_dup (t->stream);
    env->key = s_dup (key);
    env->producer = s_dup (producer);
    env->correlation_id = s_dup ("");
    env->occurred_at = rt_clock_now_ms ();
    if (payload) {
        size_t len = protobuf_c_message_get_packed_size (payload);
        env->payload.data = malloc (len ? len : 1);
        if (env->payload.data)
            env->payload.len = protobuf_c_message_pack (payload, env->payload.data);
    }
    if (!env->id || !env->type || !env->stream || !env->key || !env->producer ||
        !env->correlation_id || (payload && !env->payload.data)) {
        rt_envelope_free (env);
        return NULL;
    }
    return env;
}

uint8_t *
rt_envelope_pack (const Retain__V1__Envelope *env, size_t *len)
{
    size_t n = retain__v1__envelope__get_packed_size (env);
    uint8_t *buf = malloc (n ? n : 1);
    if (!buf)
        return NULL;
    *len = retain__v1__envelope__pack (env, buf);
    return buf;
}

int
rt_envelope_new_packed (const char *type, const char *key, const ProtobufCMessage *payload,
                        const char *producer, ProtobufCBinaryData *out, char *err, size_t errlen)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, producer);
    out->len = 0;
    out->data = NULL;
    if (!env) {
        rt_errf (err, errlen, "%s: no envelope (an unknown type, or out of memory)", type);
        return -1;
    }
    out->data = rt_envelope_pack (env, &out->len);
    rt_envelope_free (env);
    if (!out->data) {
        rt_errf (err, errlen, "%s: out of memory", type);
        return -1;
    }
    return 0;
}

ProtobufCMessage *
rt_envelope_payload (const Retain__V1__Envelope *env)
{
    const rt_bus_type_t *t = rt_bus_type_find (env->type);
    if (!t)
        return NULL;
    return protobuf_c_message_unpack (t->desc, NULL, env->payload.len, env->payload.data);
}

const rt_config_setting_t rt_bus_client_settings[] = {
    {"curve-server-key", "RETAIN_BUS_CURVE_SERVER_KEY", "",
     "busd's CURVE public key (Z85), verified when connecting; empty: plain TCP"},
    {"curve-client-public", "RETAIN_BUS_CURVE_CLIENT_PUBLIC", "",
     "this client's CURVE public key (Z85), the one busd's --curve-clients list admits"},
    {"curve-client-secret", "RETAIN_BUS_CURVE_CLIENT_SECRET", "",
     "this client's CURVE secret key (Z85)"},
    {NULL, NULL, NULL, NULL}};

const rt_config_retired_t rt_bus_client_retired[] = {
    {"RETAIN_BUS_CURVE_PUBLIC_KEY", "RETAIN_BUS_CURVE_CLIENT_PUBLIC (this client's public key)"},
    {"RETAIN_BUS_CURVE_SECRET_KEY",
     "RETAIN_BUS_CURVE_CLIENT_SECRET (this client's secret key; busd's own is "
     "RETAIN_BUSD_CURVE_SECRET)"},
    {NULL, NULL}};

int
rt_bus_client_declare (rt_config_t *config)
{
    if (rt_config_add (config, "Bus client (ZeroMQ CURVE: all three, or none for plain TCP)",
                       rt_bus_client_settings) != 0)
        return -1;
    return rt_config_retire (config, rt_bus_client_retired);
}

/* Copies one key after checking it is a Z85 CURVE key. */
static int
s_curve_key (const rt_config_t *config, const char *name, char out[41], char *err, size_t errlen)
{
    const char *value = rt_config_get (config, name);
    uint8_t raw[32];
    if (strlen (value) != 40 || !zmq_z85_decode (raw, value)) {
        rt_errf (err, errlen, "--%s must be a CURVE key: 40 Z85 characters (retainctl keygen)",
                 name);
        return -1;
    }
    memcpy (out, value, 41);
    return 0;
}

int
rt_bus_curve_read (const rt_config_t *config, rt_bus_curve_t *keys, char *err, size_t errlen)
{
    memset (keys, 0, sizeof *keys);
    int set = 0;
    for (const rt_config_setting_t *s = rt_bus_client_settings; s->name; s++)
        set += rt_config_get (config, s->name)[0] != '\0';
    if (set == 0)
        return 0;
    if (set < 3) {
        rt_errf (err, errlen,
                 "CURVE needs all three of --curve-server-key, --curve-client-public and "
                 "--curve-client-secret (RETAIN_BUS_CURVE_SERVER_KEY, "
                 "RETAIN_BUS_CURVE_CLIENT_PUBLIC, RETAIN_BUS_CURVE_CLIENT_SECRET), or none");
        return -1;
    }
    if (s_curve_key (config, "curve-server-key", keys->server_key, err, errlen) != 0 ||
        s_curve_key (config, "curve-client-public", keys->client_public, err, errlen) != 0 ||
        s_curve_key (config, "curve-client-secret", keys->client_secret, err, errlen) != 0) {
        memset (keys, 0, sizeof *keys);
        return -1;
    }
    return 0;
}

int
rt_bus_curve_apply (void *socket, const rt_bus_curve_t *keys, char *err, size_t errlen)
{
    if (!keys || !keys->server_key[0])
        return 0;
    if (zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, keys->server_key, 40) != 0 ||
        zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, keys->client_public, 40) != 0 ||
        zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, keys->client_secret, 40) != 0) {
        rt_errf (err, errlen, "CURVE client setup: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

int
rt_bus_type_stream_check (const rt_bus_type_t *type, const char *stream, char *why, size_t whylen)
{
    if (!stream || !*stream || strcmp (stream, type->stream) == 0)
        return 0;
    snprintf (why, whylen, "type %s belongs to stream \"%s\", not \"%.64s\"", type->type,
              type->stream, stream);
    return -1;
}

#define TEXT_CHECK_DEPTH 32

/* Reads a base-128 varint at *p; false when it runs past end or is longer
 * than ten bytes. */
static bool
s_varint (const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    int shift;
    for (shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static int
s_text_check (const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end,
              int depth, const char *path, char *why, size_t whylen)
{
    const uint8_t *start = p;
    if (depth > TEXT_CHECK_DEPTH) {
        snprintf (why, whylen, "%s: messages nested deeper than %d", path, TEXT_CHECK_DEPTH);
        return -1;
    }
    while (p < end) {
        uint64_t tag, n;
        const ProtobufCFieldDescriptor *field;
        if (!s_varint (&p, end, &tag))
            goto malformed;
        field = protobuf_c_message_descriptor_get_field (desc, (unsigned)(tag >> 3));
        switch (tag & 7) {
        case 0:
            if (!s_varint (&p, end, &n))
                goto malformed;
            break;
        case 1:
            if (end - p < 8)
                goto malformed;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                goto malformed;
            p += 4;
            break;
        case 2:
            if (!s_varint (&p, end, &n) || n > (uint64_t)(end - p))
                goto malformed;
            if (field && field->type == PROTOBUF_C_TYPE_STRING) {
                size_t bad = rt_utf8_bad_at ((const char *)p, (size_t)n, false);
                if (bad < n) {
                    snprintf (why, whylen, "%s%s%s: byte 0x%02x at %zu is not %s", path,
                              *path ? "." : "", field->name, p[bad], bad,
                              p[bad] ? "valid UTF-8" : "allowed (NUL)");
                    return -1;
                }
            } else if (field && field->type == PROTOBUF_C_TYPE_MESSAGE) {
                char sub[256];
                snprintf (sub, sizeof sub, "%s%s%s", path, *path ? "." : "", field->name);
                if (s_text_check (field->descriptor, p, p + n, depth + 1, sub, why, whylen) != 0)
                    return -1;
            }
            p += n;
            break;
        default:
            goto malformed;
        }
    }
    return 0;
malformed:
    snprintf (why, whylen, "%s: malformed protobuf at byte %zu", *path ? path : desc->short_name,
              (size_t)(p - start));
    return -1;
}

int
rt_bus_text_check (const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   char *why, size_t whylen)
{
    static const uint8_t empty[1] = {0};
    if (!data)
        data = empty;
    return s_text_check (desc, data, data + len, 0, "", why, whylen);
}

int
rt_envelope_check (const Retain__V1__Envelope *env, char *why, size_t whylen)
{
    const char *fields[] = {env->id,  env->type,     env->stream,
                            env->key, env->producer, env->correlation_id};
    const rt_bus_type_t *type;
    ProtobufCMessage *payload;
    size_t i;
    char sub[200];

    for (i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (fields[i] && !rt_utf8_text_ok (fields[i], strlen (fields[i]))) {
            snprintf (why, whylen, "a text field of the envelope is not valid UTF-8");
            return -1;
        }
    }
    type = rt_bus_type_find (env->type);
    if (!type) {
        snprintf (why, whylen, "unknown type \"%.64s\"", env->type ? env->type : "");
        return -1;
    }
    if (!env->key || !env->key[0]) {
        snprintf (why, whylen, "no key");
        return -1;
    }
    if (rt_bus_type_stream_check (type, env->stream, why, whylen) != 0)
        return -1;
    payload = protobuf_c_message_unpack (type->desc, NULL, env->payload.len, env->payload.data);
    if (!payload) {
        snprintf (why, whylen, "payload does not parse as retain.v1.%s", type->type);
        return -1;
    }
    protobuf_c_message_free_unpacked (payload, NULL);
    if (rt_bus_text_check (type->desc, env->payload.data, env->payload.len, sub, sizeof sub) != 0) {
        snprintf (why, whylen, "payload %s", sub);
        return -1;
    }
    return 0;
}

/* Repairs one string in place; 1 when it was replaced, 0 when it was
 * text, -1 when out of memory. */
static int
s_repair_string (char **slot)
{
    char *fixed;
    size_t len;
    if (!*slot)
        return 0;
    len = strlen (*slot);
    if (rt_utf8_text_ok (*slot, len))
        return 0;
    fixed = rt_utf8_escape (*slot, len);
    if (!fixed)
        return -1;
    free (*slot);
    *slot = fixed;
    return 1;
}

int
rt_pb_text_repair (ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc;
    unsigned f;
    int fixed = 0;
    if (!msg)
        return 0;
    desc = msg->descriptor;
    for (f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[f];
        char *member = (char *)msg + field->offset;
        size_t n = 1, i;
        if (field->type != PROTOBUF_C_TYPE_STRING && field->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        /* A oneof's members share their storage: only the one set is real. */
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)((const char *)msg + field->quantifier_offset) != field->id)
                continue;
        }
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)msg + field->quantifier_offset);
            member = *(char **)member;
            if (!member)
                continue;
        }
        for (i = 0; i < n; i++) {
            int r;
            if (field->type == PROTOBUF_C_TYPE_STRING) {
                char **slot = field->label == PROTOBUF_C_LABEL_REPEATED ? &((char **)member)[i]
                                                                        : (char **)member;
                r = s_repair_string (slot);
            } else {
                ProtobufCMessage *sub = field->label == PROTOBUF_C_LABEL_REPEATED
                                            ? ((ProtobufCMessage **)member)[i]
                                            : *(ProtobufCMessage **)member;
                r = rt_pb_text_repair (sub);
            }
            if (r < 0)
                return -1;
            fixed += r;
        }
    }
    return fixed;
}
