/*
 * rt_pbjson: protobuf messages to and from JSON through protobuf-c's
 * descriptors, so every retain message type converts with no code per type.
 *
 * The mapping follows protobuf's canonical JSON mapping (proto3 JSON):
 * field names as lowerCamelCase on output, either the original snake_case or
 * lowerCamelCase accepted on input; int64/uint64 written as JSON strings and
 * accepted as strings or numbers; bytes as standard base64 (URL-safe
 * accepted on input); enums by value name (numbers accepted on input);
 * repeated fields as arrays; maps as objects; nested messages as objects;
 * proto3 fields equal to their default are omitted on output.
 * Unknown fields on input are an error naming the field (a typo must not be
 * silently dropped).
 */
#ifndef RT_PBJSON_H
#define RT_PBJSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* Builds a message of type `desc` from a JSON object. Returns an owned
 * message (free with protobuf_c_message_free_unpacked (msg, NULL)), or NULL
 * with the reason in err, naming the field path, e.g.
 * "lines[2].quantity: expected an integer". */
ProtobufCMessage *rt_pbjson_parse (const ProtobufCMessageDescriptor *desc, const json_t *json,
                                   char *err, size_t errlen);

/* The JSON object of a message; owned reference (json_decref). NULL only
 * when out of memory. */
json_t *rt_pbjson_dump (const ProtobufCMessage *msg);

#endif
