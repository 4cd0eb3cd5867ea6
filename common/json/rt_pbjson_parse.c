/*
 * rt_pbjson parsing: JSON to a protobuf-c message (rt_pbjson_parse),
 * driven by the descriptors protoc-c generates, so no message type needs
 * code of its own.
 *
 * Invariants of a message under construction:
 * - It is allocated and laid out the way protobuf_c_message_unpack would lay
 *   it out (system malloc, protobuf_c_message_init), so that at every moment
 *   protobuf_c_message_free_unpacked (msg, NULL) frees exactly what was built.
 *   That is the only cleanup path: on an error midway the whole tree goes.
 * - Every pointer member is either the descriptor's default (left by init)
 *   or memory we malloc'd; a repeated field's count only counts elements
 *   that are completely built, and its array is zeroed beyond them.
 * - Each value is built atomically: a helper that fails leaves its slot as
 *   it found it.
 *
 * Errors name the field path ("lines[2].quantity: ..."), built as the
 * parser descends and cut to its end when it grows long.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_codec.h"
#include "rt_pbjson.h"
#include "rt_pbjson_internal.h"

/* Message nesting accepted on input; protobuf's own parsers stop at 100. */
#define S_MAX_DEPTH 100

/* Room for the path of the field being parsed; only absurd documents (keys
 * kilobytes long) reach it, and their path is cut there. */
#define S_PATH_MAX 4096

/* The most of a path an error message shows: its end, which names the field
 * at fault, so that the reason still fits a caller's modest buffer. */
#define S_PATH_SHOWN 160

typedef struct {
    char *err;             /* caller's buffer for the reason of a failure */
    size_t errlen;         /* its size */
    char path[S_PATH_MAX]; /* where the parser is, e.g. "lines[2].quantity" */
    size_t path_len;       /* bytes of path in use */
    int depth;             /* messages entered, bounded against hostile input */
} s_parser_t;

/* An integer read from JSON before it is checked against its field's type. */
typedef struct {
    bool negative;      /* below zero ("-0" is not) */
    bool overflow;      /* magnitude does not fit 64 bits */
    uint64_t magnitude; /* absolute value */
} s_wide_t;

/* ------------------------------------------------------------------ */
/* Names, fields and base64                                           */

static const char *
s_type_name (ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
        return "int32";
    case PROTOBUF_C_TYPE_SINT32:
        return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32:
        return "sfixed32";
    case PROTOBUF_C_TYPE_INT64:
        return "int64";
    case PROTOBUF_C_TYPE_SINT64:
        return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64:
        return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32:
        return "uint32";
    case PROTOBUF_C_TYPE_FIXED32:
        return "fixed32";
    case PROTOBUF_C_TYPE_UINT64:
        return "uint64";
    case PROTOBUF_C_TYPE_FIXED64:
        return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT:
        return "float";
    case PROTOBUF_C_TYPE_DOUBLE:
        return "double";
    case PROTOBUF_C_TYPE_BOOL:
        return "bool";
    case PROTOBUF_C_TYPE_ENUM:
        return "enum";
    case PROTOBUF_C_TYPE_STRING:
        return "string";
    case PROTOBUF_C_TYPE_BYTES:
        return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE:
        return "message";
    }
    return "unknown";
}

static void
s_mark_present (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    if (rt_pbjson_has_flag (field))
        *(protobuf_c_boolean *)((char *)msg + field->quantifier_offset) = 1;
}

/* The field a JSON key names: its proto name or its lowerCamelCase name. */
static const ProtobufCFieldDescriptor *
s_field_by_key (const ProtobufCMessageDescriptor *desc, const char *key)
{
    const ProtobufCFieldDescriptor *field;
    unsigned i;
    field = protobuf_c_message_descriptor_get_field_by_name (desc, key);
    if (field)
        return field;
    for (i = 0; i < desc->n_fields; i++) {
        if (rt_pbjson_camel_equals (desc->fields[i].name, false, "", key))
            return &desc->fields[i];
    }
    return NULL;
}

/* Decodes standard or URL-safe base64, padded or not. Returns 0 and the
 * bytes in *out (malloc'd; NULL when empty), -1 when the text is not base64,
 * -2 when out of memory. */
static int
s_base64_decode (const char *text, size_t len, ProtobufCBinaryData *out)
{
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf;
    long n;
    out->len = 0;
    out->data = NULL;
    if (len == 0)
        return 0;
    buf = malloc (cap);
    if (!buf)
        return -2;
    n = rt_base64_decode (text, len, buf, cap);
    if (n < 0) {
        free (buf);
        return -1;
    }
    if (n == 0) {
        free (buf);
        return 0;
    }
    out->data = buf;
    out->len = (size_t)n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing: errors and paths                                          */

static int s_fail (s_parser_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Records "path: reason" in the caller's buffer; returns -1. */
static int
s_fail (s_parser_t *self, const char *fmt, ...)
{
    char reason[256];
    const char *path = self->path;
    const char *cut = "";
    va_list ap;
    if (!self->err || self->errlen == 0)
        return -1;
    va_start (ap, fmt);
    vsnprintf (reason, sizeof reason, fmt, ap);
    va_end (ap);
    if (self->path_len > S_PATH_SHOWN) {
        path += self->path_len - S_PATH_SHOWN;
        cut = "...";
    }
    if (self->path_len > 0)
        snprintf (self->err, self->errlen, "%s%s: %s", cut, path, reason);
    else
        snprintf (self->err, self->errlen, "%s", reason);
    return -1;
}

static size_t s_path_push (s_parser_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Appends to the path; returns the length to restore with s_path_pop. */
static size_t
s_path_push (s_parser_t *self, const char *fmt, ...)
{
    size_t saved = self->path_len;
    size_t room = sizeof self->path - self->path_len;
    va_list ap;
    int n;
    if (room <= 1)
        return saved;
    va_start (ap, fmt);
    n = vsnprintf (self->path + self->path_len, room, fmt, ap);
    va_end (ap);
    if (n > 0)
        self->path_len += (size_t)n < room ? (size_t)n : room - 1;
    return saved;
}

static size_t
s_path_push_key (s_parser_t *self, const char *key)
{
    return s_path_push (self, self->path_len > 0 ? ".%s" : "%s", key);
}

static void
s_path_pop (s_parser_t *self, size_t saved)
{
    self->path_len = saved;
    self->path[saved] = '\0';
}

/* The text of a JSON string, or NULL when it is not one a C string can hold
 * (an embedded NUL would silently cut it short). */
static const char *
s_json_text (const json_t *json)
{
    const char *text = json_string_value (json);
    if (!text || strlen (text) != json_string_length (json))
        return NULL;
    return text;
}

/* ------------------------------------------------------------------ */
/* Parsing: scalars                                                   */

/* Reads a decimal integer ("-12", "340"); false when it is not one. */
static bool
s_wide_from_text (const char *text, s_wide_t *out)
{
    const char *p = text;
    char *end = NULL;
    unsigned long long v;
    bool negative = false;
    if (*p == '-') {
        negative = true;
        p++;
    }
    /* strtoull would also take spaces, a '+' and a '-' of its own. */
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    v = strtoull (p, &end, 10);
    if (*end != '\0')
        return false;
    out->overflow = errno == ERANGE;
    out->magnitude = v;
    out->negative = negative && v != 0;
    return true;
}

/* Reads an integral JSON real (1e3, 5.0); false when it has a fraction. */
static bool
s_wide_from_real (double d, s_wide_t *out)
{
    double a = d < 0 ? -d : d;
    uint64_t m;
    out->negative = false;
    out->overflow = false;
    out->magnitude = 0;
    if (a >= 18446744073709551616.0) {
        /* Doubles this large are whole numbers; too large for any field. */
        out->overflow = true;
        return true;
    }
    m = (uint64_t)a;
    if ((double)m != a)
        return false;
    out->magnitude = m;
    out->negative = d < 0 && m != 0;
    return true;
}

/* Checks an integer against its field's type and stores it. */
static int
s_store_int (s_parser_t *self, ProtobufCType type, const s_wide_t *v, void *out)
{
    uint64_t max_positive;
    uint64_t max_negative;
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        max_positive = INT32_MAX;
        max_negative = (uint64_t)INT32_MAX + 1;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        max_positive = INT64_MAX;
        max_negative = (uint64_t)INT64_MAX + 1;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        max_positive = UINT32_MAX;
        max_negative = 0;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        max_positive = UINT64_MAX;
        max_negative = 0;
        break;
    default:
        assert (!"not an integer type");
        return s_fail (self, "internal error: %s is not an integer type", s_type_name (type));
    }
    if (v->overflow || v->magnitude > (v->negative ? max_negative : max_positive)) {
        if (type == PROTOBUF_C_TYPE_ENUM)
            return s_fail (self, "enum number out of range");
        return s_fail (self, "value out of range for %s", s_type_name (type));
    }

    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)out = v->negative ? (int32_t)(-(int64_t)v->magnitude) : (int32_t)v->magnitude;
        break;
    case PROTOBUF_C_TYPE_ENUM:
        *(int *)out = v->negative ? (int)(-(int64_t)v->magnitude) : (int)v->magnitude;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        /* -(m - 1) - 1 reaches INT64_MIN without overflowing. */
        *(int64_t *)out = v->negative ? -(int64_t)(v->magnitude - 1) - 1 : (int64_t)v->magnitude;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)out = (uint32_t)v->magnitude;
        break;
    default:
        *(uint64_t *)out = v->magnitude;
        break;
    }
    return 0;
}

/* An integer field from a JSON integer, an integral real, or a decimal
 * string (the only exact form for 64-bit values beyond 2^53). */
static int
s_parse_int (s_parser_t *self, ProtobufCType type, const json_t *json, void *out)
{
    s_wide_t v = {false, false, 0};
    if (json_is_integer (json)) {
        json_int_t i = json_integer_value (json);
        v.negative = i < 0;
        v.magnitude = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
    } else if (json_is_real (json)) {
        if (!s_wide_from_real (json_real_value (json), &v))
            return s_fail (self, "expected an integer");
    } else if (json_is_string (json)) {
        const char *text = s_json_text (json);
        if (!text || !s_wide_from_text (text, &v))
            return s_fail (self, "expected an integer");
    } else {
        return s_fail (self, "expected an integer");
    }
    return s_store_int (self, type, &v, out);
}

/* A float or double from a JSON number, a numeric string, or one of the
 * strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers). */
static int
s_parse_real (s_parser_t *self, ProtobufCType type, const json_t *json, void *out)
{
    double d;
    if (json_is_number (json)) {
        d = json_number_value (json);
    } else if (json_is_string (json)) {
        const char *text = s_json_text (json);
        char *end = NULL;
        if (!text)
            return s_fail (self, "expected a number");
        if (strcmp (text, "NaN") == 0) {
            d = NAN;
        } else if (strcmp (text, "Infinity") == 0) {
            d = INFINITY;
        } else if (strcmp (text, "-Infinity") == 0) {
            d = -INFINITY;
        } else {
            /* strtod also reads "inf", "nan", hex and leading spaces;
             * a JSON number starts with a digit, '-' or (leniently) '.'. */
            if (!((text[0] >= '0' && text[0] <= '9') || text[0] == '-' || text[0] == '.') ||
                strpbrk (text, "xXnNiI") != NULL)
                return s_fail (self, "expected a number");
            errno = 0;
            d = strtod (text, &end);
            if (end == text || *end != '\0')
                return s_fail (self, "expected a number");
            if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
                return s_fail (self, "value out of range for %s", s_type_name (type));
        }
    } else {
        return s_fail (self, "expected a number");
    }

    if (type == PROTOBUF_C_TYPE_FLOAT) {
        /* Not FLT_MAX: "3.4028235e38", FLT_MAX written shortest, is a bit
         * above it, and rounds to it. From halfway to the next power of two
         * up, a float rounds to infinity. */
        if (isfinite (d) && (d >= 0x1.ffffffp127 || d <= -0x1.ffffffp127))
            return s_fail (self, "value out of range for float");
        *(float *)out = (float)d;
    } else {
        *(double *)out = d;
    }
    return 0;
}

static int
s_parse_enum (s_parser_t *self, const ProtobufCFieldDescriptor *field, const json_t *json,
              void *out)
{
    const ProtobufCEnumDescriptor *desc = field->descriptor;
    if (json_is_string (json)) {
        const char *text = s_json_text (json);
        const ProtobufCEnumValue *value = NULL;
        if (text)
            value = protobuf_c_enum_descriptor_get_value_by_name (desc, text);
        if (!value)
            return s_fail (self, "unknown value \"%s\" of enum %s", json_string_value (json),
                           desc->name);
        *(int *)out = value->value;
        return 0;
    }
    /* proto3 enums are open: a number the descriptor does not know is kept,
     * as the binary parser keeps it, so a dump of it parses back. */
    if (json_is_number (json))
        return s_parse_int (self, PROTOBUF_C_TYPE_ENUM, json, out);
    return s_fail (self, "expected an enum name or number of %s", desc->name);
}

static int
s_parse_string (s_parser_t *self, const json_t *json, char **out)
{
    const char *text;
    char *copy;
    if (!json_is_string (json))
        return s_fail (self, "expected a string");
    text = s_json_text (json);
    if (!text)
        return s_fail (self, "string contains a NUL character");
    copy = strdup (text);
    if (!copy)
        return s_fail (self, "out of memory");
    *out = copy;
    return 0;
}

static int
s_parse_bytes (s_parser_t *self, const json_t *json, ProtobufCBinaryData *out)
{
    ProtobufCBinaryData data;
    int rc;
    if (!json_is_string (json))
        return s_fail (self, "expected a base64 string");
    rc = s_base64_decode (json_string_value (json), json_string_length (json), &data);
    if (rc == -1)
        return s_fail (self, "invalid base64");
    if (rc != 0)
        return s_fail (self, "out of memory");
    *out = data;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing: messages                                                  */

static ProtobufCMessage *s_parse_message (s_parser_t *self, const ProtobufCMessageDescriptor *desc,
                                          const json_t *json);

/* One value of a field (a singular field, or one element of a repeated one)
 * into the slot at `out`. Builds nothing on failure. */
static int
s_parse_value (s_parser_t *self, const ProtobufCFieldDescriptor *field, const json_t *json,
               void *out)
{
    ProtobufCMessage *sub;
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return s_parse_int (self, field->type, json, out);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_parse_real (self, field->type, json, out);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean (json))
            return s_fail (self, "expected true or false");
        *(protobuf_c_boolean *)out = json_is_true (json);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return s_parse_enum (self, field, json, out);
    case PROTOBUF_C_TYPE_STRING:
        return s_parse_string (self, json, out);
    case PROTOBUF_C_TYPE_BYTES:
        return s_parse_bytes (self, json, out);
    case PROTOBUF_C_TYPE_MESSAGE:
        sub = s_parse_message (self, field->descriptor, json);
        if (!sub)
            return -1;
        *(ProtobufCMessage **)out = sub;
        return 0;
    }
    return s_fail (self, "unsupported field type %d", (int)field->type);
}

/* A map key, which JSON always writes as a string, into the entry's key. */
static int
s_parse_map_key (s_parser_t *self, const ProtobufCFieldDescriptor *field, const char *key,
                 void *out)
{
    s_wide_t v;
    char *copy;
    switch (field->type) {
    case PROTOBUF_C_TYPE_STRING:
        copy = strdup (key);
        if (!copy)
            return s_fail (self, "out of memory");
        *(char **)out = copy;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp (key, "true") == 0)
            *(protobuf_c_boolean *)out = 1;
        else if (strcmp (key, "false") == 0)
            *(protobuf_c_boolean *)out = 0;
        else
            return s_fail (self, "expected \"true\" or \"false\" as the key");
        return 0;
    default:
        if (!s_wide_from_text (key, &v))
            return s_fail (self, "expected an integer as the key");
        return s_store_int (self, field->type, &v, out);
    }
}

static int
s_parse_repeated (s_parser_t *self, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
                  const json_t *json)
{
    size_t *count = (size_t *)((char *)msg + field->quantifier_offset);
    void **array = (void **)((char *)msg + field->offset);
    size_t size = rt_pbjson_value_size (field->type);
    size_t n;
    size_t i;

    if (!json_is_array (json))
        return s_fail (self, "expected an array");
    n = json_array_size (json);
    if (n == 0)
        return 0;
    /* Zeroed, so that free_unpacked finds NULL beyond the elements built. */
    *array = calloc (n, size);
    if (!*array)
        return s_fail (self, "out of memory");
    for (i = 0; i < n; i++) {
        const json_t *item = json_array_get (json, i);
        size_t saved = s_path_push (self, "[%zu]", i);
        if (json_is_null (item))
            return s_fail (self, "null is not allowed in an array");
        if (s_parse_value (self, field, item, (char *)*array + i * size) != 0)
            return -1;
        (*count)++;
        s_path_pop (self, saved);
    }
    return 0;
}

static int
s_parse_map (s_parser_t *self, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
             const json_t *json)
{
    const ProtobufCMessageDescriptor *entry_desc = field->descriptor;
    const ProtobufCFieldDescriptor *key_field = &entry_desc->fields[0];
    const ProtobufCFieldDescriptor *value_field = &entry_desc->fields[1];
    size_t *count = (size_t *)((char *)msg + field->quantifier_offset);
    ProtobufCMessage ***entries = (ProtobufCMessage ***)((char *)msg + field->offset);
    void *iter;
    size_t n;

    if (!json_is_object (json))
        return s_fail (self, "expected an object");
    n = json_object_size (json);
    if (n == 0)
        return 0;
    *entries = calloc (n, sizeof **entries);
    if (!*entries)
        return s_fail (self, "out of memory");
    /* jansson's iteration API takes a non-const object but does not change it. */
    iter = json_object_iter ((json_t *)json);
    while (iter && *count < n) {
        const char *key = json_object_iter_key (iter);
        const json_t *value = json_object_iter_value (iter);
        size_t saved = s_path_push (self, "[\"%s\"]", key);
        ProtobufCMessage *entry;

        if (strlen (key) != json_object_iter_key_len (iter))
            return s_fail (self, "map key contains a NUL character");
        if (json_is_null (value))
            return s_fail (self, "null is not allowed as a map value");
        entry = malloc (entry_desc->sizeof_message);
        if (!entry)
            return s_fail (self, "out of memory");
        protobuf_c_message_init (entry_desc, entry);
        /* Counted at once: from here the entry is freed with the message. */
        (*entries)[(*count)++] = entry;
        if (s_parse_map_key (self, key_field, key, (char *)entry + key_field->offset) != 0)
            return -1;
        s_mark_present (entry, key_field);
        if (s_parse_value (self, value_field, value, (char *)entry + value_field->offset) != 0)
            return -1;
        s_mark_present (entry, value_field);
        s_path_pop (self, saved);
        iter = json_object_iter_next ((json_t *)json, iter);
    }
    return 0;
}

/* One member of a message from its JSON value. */
static int
s_parse_field (s_parser_t *self, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
               const json_t *json)
{
    void *member = (char *)msg + field->offset;

    if (field->label == PROTOBUF_C_LABEL_REPEATED) {
        if (rt_pbjson_is_map (field))
            return s_parse_map (self, msg, field, json);
        return s_parse_repeated (self, msg, field, json);
    }
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *oneof_case = (uint32_t *)((char *)msg + field->quantifier_offset);
        /* The members share their storage: a second one would overwrite
         * (and leak) the first. */
        if (*oneof_case != 0) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field (msg->descriptor, *oneof_case);
            return s_fail (self, "only one field of a oneof may be set, \"%s\" already is",
                           other ? other->name : "another");
        }
        if (s_parse_value (self, field, json, member) != 0)
            return -1;
        *oneof_case = field->id;
        return 0;
    }
    if (s_parse_value (self, field, json, member) != 0)
        return -1;
    s_mark_present (msg, field);
    return 0;
}

/* The members of a message from the keys of its JSON object; given[i]
 * records the key that set field i. */
static int
s_parse_members (s_parser_t *self, ProtobufCMessage *msg, const json_t *json, const char **given)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    void *iter;

    self->depth++;
    iter = json_object_iter ((json_t *)json);
    while (iter) {
        const char *key = json_object_iter_key (iter);
        const json_t *value = json_object_iter_value (iter);
        const ProtobufCFieldDescriptor *field = NULL;
        size_t saved = s_path_push_key (self, key);
        size_t index;

        /* A key with a NUL in it would otherwise match the name before it. */
        if (strlen (key) == json_object_iter_key_len (iter))
            field = s_field_by_key (desc, key);
        if (!field)
            return s_fail (self, "unknown field of %s", desc->name);
        index = (size_t)(field - desc->fields);
        /* "orderId" and "order_id" in one object name one field. */
        if (given[index])
            return s_fail (self, "field given twice (also as \"%s\")", given[index]);
        /* Null means "the default", which the field already holds. */
        if (!json_is_null (value)) {
            if (s_parse_field (self, msg, field, value) != 0)
                return -1;
            given[index] = key;
        }
        s_path_pop (self, saved);
        iter = json_object_iter_next ((json_t *)json, iter);
    }
    self->depth--;
    return 0;
}

/* Fails naming the first required field no key set. Only proto2 has
 * these; a message without one would not pack. */
static int
s_check_required (s_parser_t *self, const ProtobufCMessageDescriptor *desc, const char **given)
{
    unsigned i;
    for (i = 0; i < desc->n_fields; i++) {
        if (desc->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !given[i]) {
            char *name = rt_pbjson_json_name (desc->fields[i].name);
            size_t saved = s_path_push_key (self, name ? name : desc->fields[i].name);
            free (name);
            s_fail (self, "required field missing");
            s_path_pop (self, saved);
            return -1;
        }
    }
    return 0;
}

static ProtobufCMessage *
s_parse_message (s_parser_t *self, const ProtobufCMessageDescriptor *desc, const json_t *json)
{
    ProtobufCMessage *msg = NULL;
    const char **given = NULL; /* per field, the key that set it */

    if (!json_is_object (json)) {
        s_fail (self, "expected an object (%s)", desc->name);
        return NULL;
    }
    if (self->depth >= S_MAX_DEPTH) {
        s_fail (self, "messages nested more than %d deep", S_MAX_DEPTH);
        return NULL;
    }
    msg = malloc (desc->sizeof_message);
    if (!msg) {
        s_fail (self, "out of memory");
        return NULL;
    }
    protobuf_c_message_init (desc, msg);
    given = calloc (desc->n_fields > 0 ? desc->n_fields : 1, sizeof *given);
    if (!given) {
        s_fail (self, "out of memory");
        goto error;
    }
    if (s_parse_members (self, msg, json, given) != 0 || s_check_required (self, desc, given) != 0)
        goto error;
    free (given);
    return msg;

error:
    free (given);
    protobuf_c_message_free_unpacked (msg, NULL);
    return NULL;
}

ProtobufCMessage *
rt_pbjson_parse (const ProtobufCMessageDescriptor *desc, const json_t *json, char *err,
                 size_t errlen)
{
    s_parser_t parser;
    assert (desc && desc->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    parser.err = err;
    parser.errlen = errlen;
    parser.path[0] = '\0';
    parser.path_len = 0;
    parser.depth = 0;
    if (err && errlen > 0)
        err[0] = '\0';
    return s_parse_message (&parser, desc, json);
}
