/*
 * rt_bus: what every part of retain agrees on about the bus.
 *
 * The registry of event types (each names its protobuf descriptor and the
 * stream it belongs to), the streams, the stable partition hash, the topic
 * format of the PUB socket, envelope helpers, and a client's CURVE keys
 * (the settings every client declares, and the sockets they go on).
 *
 * Partition: FNV-1a 32-bit hash of the key's bytes modulo the stream's
 * partition count. Topic: "<stream>.<partition as 4 digits>", e.g.
 * "order.0003", so subscribing to "order." takes the whole stream and to
 * "order.0003" exactly one partition.
 */
#ifndef RT_BUS_H
#define RT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "retain/v1/envelope.pb-c.h"
#include "rt_config.h"

#define RT_BUS_TOPIC_MAX          48
#define RT_BUS_DEFAULT_PARTITIONS 16

/* The registry is the one place that says which stream a type belongs to:
 * an envelope naming another stream is refused (busd's ingress and outbox,
 * rt_outbox_append, retainctl publish), so a type's consumers always find it. */
typedef struct {
    const char *type;   /* short name carried in Envelope.type, e.g. "OrderPlaced" */
    const char *stream; /* the one stream it belongs to */
    const ProtobufCMessageDescriptor *desc;
} rt_bus_type_t;

/* Looks a type up by short name ("OrderPlaced") or full name
 * ("retain.v1.OrderPlaced"); NULL when unknown. */
const rt_bus_type_t *rt_bus_type_find (const char *type);

/* All registered types (lent, static). */
const rt_bus_type_t *rt_bus_types (size_t *count);

/* The streams, in a fixed order (lent, static). */
const char *const *rt_bus_streams (size_t *count);

/* Index of a stream in rt_bus_streams, -1 when unknown. */
int rt_bus_stream_index (const char *stream);

/* FNV-1a 32 of the key modulo partitions (partitions >= 1). */
uint32_t rt_bus_partition (const char *key, size_t len, uint32_t partitions);

/* Writes "<stream>.<NNNN>" into out; returns its length. */
size_t rt_bus_topic (char *out, size_t outlen, const char *stream, uint32_t partition);

/* Fills a new envelope for `payload` of registered `type` and `key`: a fresh
 * UUIDv7 id, stream from the registry, occurred_at now, the producer name.
 * The strings and the packed payload are owned by the envelope: free with
 * rt_envelope_free. Returns NULL when the type is unknown. */
Retain__V1__Envelope *rt_envelope_new (const char *type, const char *key,
                                       const ProtobufCMessage *payload, const char *producer);

/* Frees an envelope made by rt_envelope_new or rt_envelope_copy; safe on NULL. */
void rt_envelope_free (Retain__V1__Envelope *env);

/* Deep copy of any envelope (owned; free with rt_envelope_free). */
Retain__V1__Envelope *rt_envelope_copy (const Retain__V1__Envelope *env);

/* Serializes into a malloc'd buffer; NULL when out of memory. */
uint8_t *rt_envelope_pack (const Retain__V1__Envelope *env, size_t *len);

/* Makes an envelope for payload (rt_envelope_new) and packs it into *out
 * for rt_outbox_append_batch (out->data owned by the caller: free). 0, or
 * -1 with the reason in err (an unknown type, out of memory). */
int rt_envelope_new_packed (const char *type, const char *key, const ProtobufCMessage *payload,
                            const char *producer, ProtobufCBinaryData *out, char *err,
                            size_t errlen);

/* Unpacks the payload with the type's descriptor. Owned result
 * (protobuf_c_message_free_unpacked), NULL when the type is unknown or the
 * payload does not parse. */
ProtobufCMessage *rt_envelope_payload (const Retain__V1__Envelope *env);

/* Checks a type's stream: 0 when `stream` is empty (the type's own is
 * meant) or names the type's stream, else -1 with the reason in why. */
int rt_bus_type_stream_check (const rt_bus_type_t *type, const char *stream, char *why,
                              size_t whylen);

/* Walks the serialized message `data` of type `desc` and checks every
 * string field, in nested messages too, is UTF-8 with no NUL byte: what
 * proto3 promises and PostgreSQL's text can hold. protobuf-c checks
 * neither, and cuts a string at its first NUL when it unpacks it. 0 when
 * all are, else -1 with the field's path and the byte's offset in why. */
int rt_bus_text_check (const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                       char *why, size_t whylen);

/* Makes every string of an unpacked message, nested messages and
 * repeated fields included, storable as text: a string that is not UTF-8
 * is replaced by its escaped copy (rt_utf8_escape: each bad byte becomes
 * \xNN), and the original freed with free(), as
 * protobuf_c_message_free_unpacked would. For messages whose strings came
 * from outside (a webhook's fields) and must be kept rather than refused.
 * Returns how many strings were replaced, or -1 when out of memory (the
 * message stays valid to free). */
int rt_pb_text_repair (ProtobufCMessage *msg);

/* What a producer can check before it sends or writes to the outbox, as
 * busd checks it: a registered type, the type's own stream (or none), a
 * key, every string UTF-8 (NUL cannot occur in an unpacked string), a
 * payload that parses as the type with valid strings. The id's window is
 * busd's to judge. 0, or -1 with the reason in why. */
int rt_envelope_check (const Retain__V1__Envelope *env, char *why, size_t whylen);

/* ZeroMQ CURVE as a client of busd (producers, consumers, tools): busd's
 * public key, which the client verifies, and the client's own pair, whose
 * public half busd admits (its --curve-clients list). busd's own secret is
 * a setting of busd alone (--curve-server-secret, RETAIN_BUSD_CURVE_SECRET):
 * one name, one meaning. */
typedef struct {
    char server_key[41];    /* busd's public key, Z85; "" for plain TCP */
    char client_public[41]; /* this client's public key, Z85 */
    char client_secret[41]; /* this client's secret key, Z85 */
} rt_bus_curve_t;

/* A bus client's settings, for rt_config_add: --curve-server-key
 * (RETAIN_BUS_CURVE_SERVER_KEY), --curve-client-public
 * (RETAIN_BUS_CURVE_CLIENT_PUBLIC), --curve-client-secret
 * (RETAIN_BUS_CURVE_CLIENT_SECRET). Every program that connects to busd
 * declares this one table (common/daemon for a daemon), so every --help
 * lists the same three. */
extern const rt_config_setting_t rt_bus_client_settings[];

/* The variables those replace (RETAIN_BUS_CURVE_PUBLIC_KEY,
 * RETAIN_BUS_CURVE_SECRET_KEY: the second meant busd's secret in busd and a
 * client's in a client), for rt_config_retire: a client refuses to start
 * while one is set, rather than run without CURVE. */
extern const rt_config_retired_t rt_bus_client_retired[];

/* Declares both tables on a configuration, before it is parsed, under one
 * heading in --help. 0, or -1 when out of memory. */
int rt_bus_client_declare (rt_config_t *config);

/* Reads rt_bus_client_settings from a parsed configuration into *keys: 0
 * when none is set (plain TCP) or all three are, each 40 Z85 characters;
 * otherwise -1 with the reason, naming the settings, in err. */
int rt_bus_curve_read (const rt_config_t *config, rt_bus_curve_t *keys, char *err, size_t errlen);

/* Applies client keys to a socket, before it connects; nothing when keys is
 * NULL or has no server key. rt_producer_new and rt_consumer_new call it
 * with the keys they are given. 0, or -1 with err filled. */
int rt_bus_curve_apply (void *socket, const rt_bus_curve_t *keys, char *err, size_t errlen);

#endif
