/*
 * rt_pbjson: protobuf-c messages to and from JSON, driven by the descriptors
 * protoc-c generates, so no message type needs code of its own.
 *
 * Invariants of a message under construction (rt_pbjson_parse):
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
 * protobuf-c keeps no trace of the map_entry option, so a map is recognised
 * by its shape: a repeated message field whose type is the nested
 * "<FieldName>Entry" with exactly key = 1 and value = 2, which is what protoc
 * generates for map<K, V> (and, on the wire, what a map is).
 *
 * protobuf-c 1.4 carries no json_name either, so the lowerCamelCase name is
 * derived from the field name the way protoc derives json_name.
 */
#include "rt_pbjson.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_codec.h"
#include "rt_utf8.h"

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

/* Whether `text` is `name` camel-cased and followed by `suffix`. */
static bool
s_camel_equals (const char *name, bool upper_first, const char *suffix, const char *text)
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

/* The JSON (lowerCamelCase) name of a field; owned by the caller. */
static char *
s_json_name (const char *name)
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

/* ------------------------------------------------------------------ */
/* Descriptors                                                        */

/* The size of one element of a repeated field of this type. */
static size_t
s_value_size (ProtobufCType type)
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

/* Whether a repeated message field is a map<K, V> (see the file comment). */
static bool
s_is_map (const ProtobufCFieldDescriptor *field)
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
    return s_camel_equals (field->name, true, "Entry", entry->short_name);
}

/* Whether an optional field keeps its presence in a has_<field> flag:
 * protobuf-c gives one to every optional type but strings and messages,
 * whose NULL pointer says "absent". */
static bool
s_has_flag (const ProtobufCFieldDescriptor *field)
{
    return field->label == PROTOBUF_C_LABEL_OPTIONAL &&
           !(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && field->type != PROTOBUF_C_TYPE_STRING &&
           field->type != PROTOBUF_C_TYPE_MESSAGE;
}

static void
s_mark_present (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    if (s_has_flag (field))
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
        if (s_camel_equals (desc->fields[i].name, false, "", key))
            return &desc->fields[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Base64 and UTF-8                                                   */

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
    size_t size = s_value_size (field->type);
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
        if (s_is_map (field))
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

static ProtobufCMessage *
s_parse_message (s_parser_t *self, const ProtobufCMessageDescriptor *desc, const json_t *json)
{
    ProtobufCMessage *msg = NULL;
    const char **given = NULL; /* per field, the key that set it */
    void *iter;
    unsigned i;

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
        if (!field) {
            s_fail (self, "unknown field of %s", desc->name);
            goto error;
        }
        index = (size_t)(field - desc->fields);
        /* "orderId" and "order_id" in one object name one field. */
        if (given[index]) {
            s_fail (self, "field given twice (also as \"%s\")", given[index]);
            goto error;
        }
        /* Null means "the default", which the field already holds. */
        if (!json_is_null (value)) {
            if (s_parse_field (self, msg, field, value) != 0)
                goto error;
            given[index] = key;
        }
        s_path_pop (self, saved);
        iter = json_object_iter_next ((json_t *)json, iter);
    }
    self->depth--;

    /* Only proto2 has these; a message without one would not pack. */
    for (i = 0; i < desc->n_fields; i++) {
        if (desc->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !given[i]) {
            char *name = s_json_name (desc->fields[i].name);
            size_t saved = s_path_push_key (self, name ? name : desc->fields[i].name);
            free (name);
            s_fail (self, "required field missing");
            s_path_pop (self, saved);
            goto error;
        }
    }
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

/* ------------------------------------------------------------------ */
/* Dumping                                                            */

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
        /* A JSON number is a double to most readers: strings keep all 64 bits. */
        snprintf (buf, sizeof buf, "%" PRId64, *(const int64_t *)member);
        return json_string (buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf (buf, sizeof buf, "%" PRIu64, *(const uint64_t *)member);
        return json_string (buf);
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
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf (buf, sizeof buf, "%" PRId32, *(const int32_t *)member);
        return strdup (buf);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf (buf, sizeof buf, "%" PRIu32, *(const uint32_t *)member);
        return strdup (buf);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf (buf, sizeof buf, "%" PRId64, *(const int64_t *)member);
        return strdup (buf);
    default:
        snprintf (buf, sizeof buf, "%" PRIu64, *(const uint64_t *)member);
        return strdup (buf);
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
        json_t *value;
        int rc;
        if (!entry)
            continue;
        key = s_map_key_text (key_field, entry + key_field->offset);
        if (!key)
            goto error;
        value = s_dump_value (value_field, entry + value_field->offset);
        /* A repeated key on the wire means the last one wins: so does set. */
        rc = json_object_set_new (object, key, value);
        free (key);
        if (rc != 0)
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
    size_t size = s_value_size (field->type);
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
        if (s_has_flag (field))
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
        char *name;
        int rc;

        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + field->quantifier_offset);
            const void *array = *(void *const *)member;
            if (n == 0 || !array)
                continue;
            if (s_is_map (field))
                value = s_dump_map (field, array, n);
            else
                value = s_dump_repeated (field, array, n);
        } else {
            if (!s_is_present (msg, field))
                continue;
            value = s_dump_value (field, member);
        }
        if (!value)
            goto error;
        name = s_json_name (field->name);
        if (!name) {
            json_decref (value);
            goto error;
        }
        rc = json_object_set_new (object, name, value);
        free (name);
        if (rc != 0)
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
