/*
 * rt_pbjson dumping: a protobuf-c message to its JSON object
 * (rt_pbjson_dump), driven by the descriptors protoc-c generates.
 *
 * The output is proto3's canonical JSON: lowerCamelCase names, fields
 * without presence left out when they hold their default, 64-bit integers
 * as strings, bytes as padded base64, floats in their shortest decimal
 * form, enums by name (by number when the descriptor has no name for it).
 * A message from the wire is dumped whatever it holds: strings that are
 * not UTF-8 are repaired rather than refused, so only running out of
 * memory fails.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_codec.h"
#include "rt_pbjson.h"
#include "rt_pbjson_internal.h"
#include "rt_utf8.h"

/* ------------------------------------------------------------------ */
/* Strings and bytes                                                  */

/* Standard base64 with padding; owned by the caller, NUL-terminated. */
static char *
s_base64_encode (const uint8_t *data, size_t len, size_t *out_len)
{
    char *out;
    if (len > (SIZE_MAX - 1) / 4 * 3)
        return NULL;
    out = malloc ((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    rt_base64_encode (data, len, out);
    *out_len = strlen (out);
    return out;
}

/* A JSON string of a C string. protobuf-c does not check that strings it
 * unpacks are UTF-8, and jansson refuses those that are not, so invalid
 * bytes become U+FFFD rather than failing the whole dump. */
static json_t *
s_dump_string (const char *text)
{
    const char *s = text ? text : "";
    size_t len = strlen (s), n;
    char *clean;
    json_t *json;

    if (rt_utf8_bad_at (s, len, true) == len)
        return json_stringn_nocheck (s, len);
    clean = rt_utf8_repair (s, len, &n);
    if (!clean)
        return NULL;
    json = json_stringn_nocheck (clean, n);
    free (clean);
    return json;
}

/* ------------------------------------------------------------------ */
/* Values and messages                                                */

static json_t *s_dump_message (const ProtobufCMessage *msg);

/* A float as the double nearest its shortest decimal form, so that 0.1f
 * reads 0.1 in JSON rather than 0.10000000149011612. */
static json_t *
s_dump_float (float f)
{
    char buf[32];
    int precision;
    for (precision = 1; precision < 9; precision++) {
        snprintf (buf, sizeof buf, "%.*g", precision, (double)f);
        if ((float)strtod (buf, NULL) == f)
            break;
    }
    snprintf (buf, sizeof buf, "%.*g", precision, (double)f);
    return json_real (strtod (buf, NULL));
}

static json_t *
s_dump_real (double d, ProtobufCType type)
{
    if (isnan (d))
        return json_string ("NaN");
    if (isinf (d))
        return json_string (d > 0 ? "Infinity" : "-Infinity");
    if (type == PROTOBUF_C_TYPE_FLOAT)
        return s_dump_float ((float)d);
    return json_real (d);
}

static json_t *
s_dump_bytes (const ProtobufCBinaryData *data)
{
    size_t len = 0;
    char *text;
    json_t *json;
    if (data->len == 0)
        return json_string ("");
    text = s_base64_encode (data->data, data->len, &len);
    if (!text)
        return NULL;
    json = json_stringn_nocheck (text, len);
    free (text);
    return json;
}

/* The decimal text of the integer in the slot at `member`, a field of an
 * integer type, written into buf (32 bytes hold any). */
static const char *
s_int_text (ProtobufCType type, const void *member, char *buf, size_t len)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf (buf, len, "%" PRId32, *(const int32_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf (buf, len, "%" PRIu32, *(const uint32_t *)member);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf (buf, len, "%" PRId64, *(const int64_t *)member);
        break;
    default:
        snprintf (buf, len, "%" PRIu64, *(const uint64_t *)member);
        break;
    }
    return buf;
}

/* One value of a field, read from the slot at `member`. */
static json_t *
s_dump_value (const ProtobufCFieldDescriptor *field, const void *member)
{
    char buf[32];
    const ProtobufCEnumValue *value;
    const ProtobufCMessage *sub;
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer (*(const int32_t *)member);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer (*(const uint32_t *)member);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        /* A JSON number is a double to most readers: strings keep all 64 bits. */
        return json_string (s_int_text (field->type, member, buf, sizeof buf));
    case PROTOBUF_C_TYPE_FLOAT:
        return s_dump_real (*(const float *)member, PROTOBUF_C_TYPE_FLOAT);
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_dump_real (*(const double *)member, PROTOBUF_C_TYPE_DOUBLE);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean (*(const protobuf_c_boolean *)member);
    case PROTOBUF_C_TYPE_ENUM:
        value = protobuf_c_enum_descriptor_get_value (field->descriptor, *(const int *)member);
        /* A number from a newer sender has no name here; keep the number. */
        if (!value)
            return json_integer (*(const int *)member);
        return json_string (value->name);
    case PROTOBUF_C_TYPE_STRING:
        return s_dump_string (*(char *const *)member);
    case PROTOBUF_C_TYPE_BYTES:
        return s_dump_bytes (member);
    case PROTOBUF_C_TYPE_MESSAGE:
        sub = *(ProtobufCMessage *const *)member;
        if (!sub)
            return json_object ();
        return s_dump_message (sub);
    }
    return NULL;
}

/* Sets object[key] to value, taking both: key is freed, and value's
 * reference goes to object, or is dropped when that fails. -1 when key is
 * NULL (out of memory) or value cannot be set. */
static int
s_object_take (json_t *object, char *key, json_t *value)
{
    int rc;
    if (!key) {
        json_decref (value);
        return -1;
    }
    rc = json_object_set_new (object, key, value);
    free (key);
    return rc;
}

/* A map key as JSON writes it: always a string. Owned by the caller. */
static char *
s_map_key_text (const ProtobufCFieldDescriptor *field, const void *member)
{
    char buf[32];
    json_t *json;
    char *text;
    switch (field->type) {
    case PROTOBUF_C_TYPE_STRING:
        /* Through s_dump_string for its UTF-8 repair: keys must be valid too. */
        json = s_dump_string (*(char *const *)member);
        if (!json)
            return NULL;
        text = strdup (json_string_value (json));
        json_decref (json);
        return text;
    case PROTOBUF_C_TYPE_BOOL:
        return strdup (*(const protobuf_c_boolean *)member ? "true" : "false");
    default:
        return strdup (s_int_text (field->type, member, buf, sizeof buf));
    }
}

static json_t *
s_dump_map (const ProtobufCFieldDescriptor *field, ProtobufCMessage *const *entries, size_t n)
{
    const ProtobufCMessageDescriptor *entry_desc = field->descriptor;
    const ProtobufCFieldDescriptor *key_field = &entry_desc->fields[0];
    const ProtobufCFieldDescriptor *value_field = &entry_desc->fields[1];
    json_t *object = json_object ();
    size_t i;
    if (!object)
        return NULL;
    for (i = 0; i < n; i++) {
        const char *entry = (const char *)entries[i];
        char *key;
        if (!entry)
            continue;
        key = s_map_key_text (key_field, entry + key_field->offset);
        if (!key)
            goto error;
        /* A repeated key on the wire means the last one wins: so does set. */
        if (s_object_take (object, key, s_dump_value (value_field, entry + value_field->offset)) !=
            0)
            goto error;
    }
    return object;

error:
    json_decref (object);
    return NULL;
}

static json_t *
s_dump_repeated (const ProtobufCFieldDescriptor *field, const void *array, size_t n)
{
    size_t size = rt_pbjson_value_size (field->type);
    json_t *list = json_array ();
    size_t i;
    if (!list)
        return NULL;
    for (i = 0; i < n; i++) {
        if (json_array_append_new (list, s_dump_value (field, (const char *)array + i * size)) !=
            0) {
            json_decref (list);
            return NULL;
        }
    }
    return list;
}

/* Whether a field without presence holds its default, in which case
 * proto3 JSON leaves it out; the same test protobuf-c packs by. */
static bool
s_is_default (const ProtobufCFieldDescriptor *field, const void *member)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)member == 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *)member == 0;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *)member == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)member == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)member == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)member == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)member;
        return !s || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)member)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)member == NULL;
    }
    return true;
}

/* Whether a singular field is to be written. */
static bool
s_is_present (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    const char *base = (const char *)msg;
    const void *member = base + field->offset;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + field->quantifier_offset) != field->id)
            return false;
        /* protobuf-c packs no oneof string or message left at NULL. */
        if (field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE)
            return *(void *const *)member != NULL;
        return true;
    }
    switch (field->label) {
    case PROTOBUF_C_LABEL_NONE:
        return !s_is_default (field, member);
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (rt_pbjson_has_flag (field))
            return *(const protobuf_c_boolean *)(base + field->quantifier_offset) != 0;
        /* A string or message is absent when NULL or, as protobuf-c packs
         * it, when it still points at the descriptor's default. */
        return *(void *const *)member != NULL && *(void *const *)member != field->default_value;
    case PROTOBUF_C_LABEL_REQUIRED:
        return field->type != PROTOBUF_C_TYPE_MESSAGE || *(void *const *)member != NULL;
    default:
        return false;
    }
}

static json_t *
s_dump_message (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;
    json_t *object = json_object ();
    unsigned i;

    if (!object)
        return NULL;
    for (i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        const void *member = base + field->offset;
        json_t *value;

        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + field->quantifier_offset);
            const void *array = *(void *const *)member;
            if (n == 0 || !array)
                continue;
            if (rt_pbjson_is_map (field))
                value = s_dump_map (field, array, n);
            else
                value = s_dump_repeated (field, array, n);
        } else {
            if (!s_is_present (msg, field))
                continue;
            value = s_dump_value (field, member);
        }
        if (!value || s_object_take (object, rt_pbjson_json_name (field->name), value) != 0)
            goto error;
    }
    return object;

error:
    json_decref (object);
    return NULL;
}

json_t *
rt_pbjson_dump (const ProtobufCMessage *msg)
{
    assert (msg && msg->descriptor);
    return s_dump_message (msg);
}
