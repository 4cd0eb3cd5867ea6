/*
 * rt_pbjson_internal: what the two directions of rt_pbjson share (private
 * to common/json; callers use rt_pbjson.h).
 *
 *   rt_pbjson.c        names and descriptors: how a field is named in
 *                      JSON, how it is laid out, which fields are maps
 *   rt_pbjson_parse.c  JSON to protobuf (rt_pbjson_parse)
 *   rt_pbjson_dump.c   protobuf to JSON (rt_pbjson_dump)
 *
 * Both directions read the same facts from protobuf-c's descriptors, so
 * that what one writes the other reads back: a field's JSON name, the size
 * of a repeated field's elements, whether a field is a map, and where an
 * optional field keeps its presence. Pure functions of the descriptors.
 */
#ifndef RT_PBJSON_INTERNAL_H
#define RT_PBJSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

/* Whether `text` is `name` camel-cased as protoc does it (underscores
 * dropped, the letter after each upper-cased, the first one too when
 * upper_first) and followed by `suffix`. */
bool rt_pbjson_camel_equals (const char *name, bool upper_first, const char *suffix,
                             const char *text);

/* The JSON (lowerCamelCase) name of a field; owned by the caller, NULL
 * when out of memory. */
char *rt_pbjson_json_name (const char *name);

/* The size of one element of a repeated field of this type. */
size_t rt_pbjson_value_size (ProtobufCType type);

/* Whether a repeated message field is a map<K, V> (rt_pbjson.c says how
 * one is recognised). */
bool rt_pbjson_is_map (const ProtobufCFieldDescriptor *field);

/* Whether an optional field keeps its presence in a has_<field> flag (at
 * its quantifier_offset): protobuf-c gives one to every optional type but
 * strings and messages, whose NULL pointer says "absent". */
bool rt_pbjson_has_flag (const ProtobufCFieldDescriptor *field);

#endif
