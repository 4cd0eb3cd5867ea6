/*
 * rt_pbjson: what its two directions share (rt_pbjson_internal.h): the
 * names fields have in JSON and what protobuf-c's descriptors say of a
 * field's layout. Parsing is in rt_pbjson_parse.c, dumping in
 * rt_pbjson_dump.c.
 *
 * protobuf-c keeps no trace of the map_entry option, so a map is recognised
 * by its shape: a repeated message field whose type is the nested
 * "<FieldName>Entry" with exactly key = 1 and value = 2, which is what protoc
 * generates for map<K, V> (and, on the wire, what a map is).
 *
 * protobuf-c 1.4 carries no json_name either, so the lowerCamelCase name is
 * derived from the field name the way protoc derives json_name.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_pbjson_internal.h"

/* ------------------------------------------------------------------ */
/* Names                                                              */

/* Steps through `name` camel-cased as protoc does it: underscores dropped,
 * the letter after each one upper-cased, and the first one too when the
 * caller starts with *upper_next set (how map entry type names are made).
 * Returns the next character of the result, or '\0' at its end; *pos walks
 * the input. */
static char
s_camel_next (const char *name, size_t *pos, bool *upper_next)
{
    char c;
    while (name[*pos] == '_') {
        *upper_next = true;
        (*pos)++;
    }
    c = name[*pos];
    if (c == '\0')
        return '\0';
    (*pos)++;
    if (*upper_next && c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    *upper_next = false;
    return c;
}

bool
rt_pbjson_camel_equals (const char *name, bool upper_first, const char *suffix, const char *text)
{
    size_t pos = 0;
    bool upper_next = upper_first;
    char c = s_camel_next (name, &pos, &upper_next);
    while (c != '\0') {
        if (*text != c)
            return false;
        text++;
        c = s_camel_next (name, &pos, &upper_next);
    }
    return strcmp (text, suffix) == 0;
}

char *
rt_pbjson_json_name (const char *name)
{
    size_t pos = 0;
    size_t len = 0;
    bool upper_next = false;
    char c;
    char *out = malloc (strlen (name) + 1);
    if (!out)
        return NULL;
    c = s_camel_next (name, &pos, &upper_next);
    while (c != '\0') {
        out[len++] = c;
        c = s_camel_next (name, &pos, &upper_next);
    }
    out[len] = '\0';
    return out;
}

/* ------------------------------------------------------------------ */
/* Descriptors                                                        */

size_t
rt_pbjson_value_size (ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof (uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof (uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof (float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof (double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof (protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        /* Generated enums are forced to the size of an int. */
        return sizeof (int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof (char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof (ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof (ProtobufCMessage *);
    }
    return 0;
}

static bool
s_is_map_key_type (ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return false;
    default:
        return true;
    }
}

bool
rt_pbjson_is_map (const ProtobufCFieldDescriptor *field)
{
    const ProtobufCMessageDescriptor *entry;
    if (field->label != PROTOBUF_C_LABEL_REPEATED || field->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    entry = field->descriptor;
    if (entry->n_fields != 2 || entry->fields[0].id != 1 || entry->fields[1].id != 2)
        return false;
    if (strcmp (entry->fields[0].name, "key") != 0 || strcmp (entry->fields[1].name, "value") != 0)
        return false;
    if (entry->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
        entry->fields[1].label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    if (!s_is_map_key_type (entry->fields[0].type))
        return false;
    return rt_pbjson_camel_equals (field->name, true, "Entry", entry->short_name);
}

bool
rt_pbjson_has_flag (const ProtobufCFieldDescriptor *field)
{
    return field->label == PROTOBUF_C_LABEL_OPTIONAL &&
           !(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && field->type != PROTOBUF_C_TYPE_STRING &&
           field->type != PROTOBUF_C_TYPE_MESSAGE;
}
