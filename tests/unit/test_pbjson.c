/*
 * test_pbjson: rt_pbjson against retain's own messages, plus two fixture
 * types written out below the way protoc-c would generate them, for the
 * shapes retain's .proto files do not use yet (oneof, float, sint32,
 * fixed64, sfixed32, repeated scalars, maps with integer and bool keys,
 * proto2 presence and defaults). Leaks, including on every error path, are
 * caught by running this under AddressSanitizer (RETAIN_SANITIZE=ON).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retain/v1/customer.pb-c.h"
#include "retain/v1/envelope.pb-c.h"
#include "retain/v1/loyalty.pb-c.h"
#include "retain/v1/message.pb-c.h"
#include "retain/v1/order.pb-c.h"
#include "rt_pbjson.h"

/* ------------------------------------------------------------------ */
/* Fixture types                                                      */

/* proto3: message Kitchen { float ratio = 1; repeated int32 counts = 2;
 * repeated string tags = 3; repeated bytes blobs = 4;
 * oneof choice { string label = 5; int64 number = 6; Money money = 7; }
 * uint32 limit = 8; map<int32, string> by_id = 9;
 * map<bool, Channel> flags = 10; sint32 delta = 11; fixed64 big = 12;
 * repeated Channel colours = 13; repeated double weights = 14;
 * sfixed32 tiny = 15; } */
typedef struct {
    ProtobufCMessage base;
    int32_t key;
    char *value;
} s_by_id_entry_t;

typedef struct {
    ProtobufCMessage base;
    protobuf_c_boolean key;
    int value;
} s_flags_entry_t;

typedef struct {
    ProtobufCMessage base;
    float ratio;
    size_t n_counts;
    int32_t *counts;
    size_t n_tags;
    char **tags;
    size_t n_blobs;
    ProtobufCBinaryData *blobs;
    uint32_t limit;
    size_t n_by_id;
    s_by_id_entry_t **by_id;
    size_t n_flags;
    s_flags_entry_t **flags;
    int32_t delta;
    uint64_t big;
    size_t n_colours;
    int *colours;
    size_t n_weights;
    double *weights;
    int32_t tiny;
    uint32_t choice_case;
    union {
        char *label;
        int64_t number;
        Retain__V1__Money *money;
    };
} s_kitchen_t;

/* proto2: message Legacy { required int32 id = 1; optional uint32 limit = 2;
 * optional string name = 3 [default = "anon"]; optional bytes blob = 4; } */
typedef struct {
    ProtobufCMessage base;
    int32_t id;
    protobuf_c_boolean has_limit;
    uint32_t limit;
    char *name;
    protobuf_c_boolean has_blob;
    ProtobufCBinaryData blob;
} s_legacy_t;

/* proto3: message Node { Node child = 1; string name = 2; } */
typedef struct s_node_t {
    ProtobufCMessage base;
    struct s_node_t *child;
    char *name;
} s_node_t;

#define S_FIELD(name, id, label, type, qoff, off, desc, def, flags)                                \
    {                                                                                              \
        name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type, qoff, off, desc, def, flags,   \
            0, NULL, NULL                                                                          \
    }

static const ProtobufCMessageDescriptor s_by_id_entry_descriptor;
static const ProtobufCMessageDescriptor s_flags_entry_descriptor;
static const ProtobufCMessageDescriptor s_kitchen_descriptor;
static const ProtobufCMessageDescriptor s_legacy_descriptor;
static const ProtobufCMessageDescriptor s_node_descriptor;
static char s_legacy_name_default[] = "anon";

static void
s_by_id_entry_init (ProtobufCMessage *msg)
{
    static const s_by_id_entry_t init = {PROTOBUF_C_MESSAGE_INIT (&s_by_id_entry_descriptor), 0,
                                         (char *)protobuf_c_empty_string};
    *(s_by_id_entry_t *)msg = init;
}

static void
s_flags_entry_init (ProtobufCMessage *msg)
{
    static const s_flags_entry_t init = {PROTOBUF_C_MESSAGE_INIT (&s_flags_entry_descriptor), 0, 0};
    *(s_flags_entry_t *)msg = init;
}

static void
s_kitchen_init (ProtobufCMessage *msg)
{
    static const s_kitchen_t init = {.base = PROTOBUF_C_MESSAGE_INIT (&s_kitchen_descriptor)};
    *(s_kitchen_t *)msg = init;
}

static void
s_legacy_init (ProtobufCMessage *msg)
{
    static const s_legacy_t init = {.base = PROTOBUF_C_MESSAGE_INIT (&s_legacy_descriptor),
                                    .name = s_legacy_name_default};
    *(s_legacy_t *)msg = init;
}

static void
s_node_init (ProtobufCMessage *msg)
{
    static const s_node_t init = {PROTOBUF_C_MESSAGE_INIT (&s_node_descriptor), NULL,
                                  (char *)protobuf_c_empty_string};
    *(s_node_t *)msg = init;
}

static const ProtobufCFieldDescriptor s_by_id_entry_fields[] = {
    S_FIELD ("key", 1, NONE, INT32, 0, offsetof (s_by_id_entry_t, key), NULL, NULL, 0),
    S_FIELD ("value", 2, NONE, STRING, 0, offsetof (s_by_id_entry_t, value), NULL,
             &protobuf_c_empty_string, 0),
};
static const ProtobufCFieldDescriptor s_flags_entry_fields[] = {
    S_FIELD ("key", 1, NONE, BOOL, 0, offsetof (s_flags_entry_t, key), NULL, NULL, 0),
    S_FIELD ("value", 2, NONE, ENUM, 0, offsetof (s_flags_entry_t, value),
             &retain__v1__channel__descriptor, NULL, 0),
};
static const unsigned s_entry_fields_by_name[] = {0, 1};
static const ProtobufCIntRange s_entry_ranges[] = {{1, 0}, {0, 2}};

static const ProtobufCFieldDescriptor s_kitchen_fields[] = {
    S_FIELD ("ratio", 1, NONE, FLOAT, 0, offsetof (s_kitchen_t, ratio), NULL, NULL, 0),
    S_FIELD ("counts", 2, REPEATED, INT32, offsetof (s_kitchen_t, n_counts),
             offsetof (s_kitchen_t, counts), NULL, NULL, PROTOBUF_C_FIELD_FLAG_PACKED),
    S_FIELD ("tags", 3, REPEATED, STRING, offsetof (s_kitchen_t, n_tags),
             offsetof (s_kitchen_t, tags), NULL, &protobuf_c_empty_string, 0),
    S_FIELD ("blobs", 4, REPEATED, BYTES, offsetof (s_kitchen_t, n_blobs),
             offsetof (s_kitchen_t, blobs), NULL, NULL, 0),
    S_FIELD ("label", 5, NONE, STRING, offsetof (s_kitchen_t, choice_case),
             offsetof (s_kitchen_t, label), NULL, &protobuf_c_empty_string,
             PROTOBUF_C_FIELD_FLAG_ONEOF),
    S_FIELD ("number", 6, NONE, INT64, offsetof (s_kitchen_t, choice_case),
             offsetof (s_kitchen_t, number), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF),
    S_FIELD ("money", 7, NONE, MESSAGE, offsetof (s_kitchen_t, choice_case),
             offsetof (s_kitchen_t, money), &retain__v1__money__descriptor, NULL,
             PROTOBUF_C_FIELD_FLAG_ONEOF),
    S_FIELD ("limit", 8, NONE, UINT32, 0, offsetof (s_kitchen_t, limit), NULL, NULL, 0),
    S_FIELD ("by_id", 9, REPEATED, MESSAGE, offsetof (s_kitchen_t, n_by_id),
             offsetof (s_kitchen_t, by_id), &s_by_id_entry_descriptor, NULL, 0),
    S_FIELD ("flags", 10, REPEATED, MESSAGE, offsetof (s_kitchen_t, n_flags),
             offsetof (s_kitchen_t, flags), &s_flags_entry_descriptor, NULL, 0),
    S_FIELD ("delta", 11, NONE, SINT32, 0, offsetof (s_kitchen_t, delta), NULL, NULL, 0),
    S_FIELD ("big", 12, NONE, FIXED64, 0, offsetof (s_kitchen_t, big), NULL, NULL, 0),
    S_FIELD ("colours", 13, REPEATED, ENUM, offsetof (s_kitchen_t, n_colours),
             offsetof (s_kitchen_t, colours), &retain__v1__channel__descriptor, NULL,
             PROTOBUF_C_FIELD_FLAG_PACKED),
    S_FIELD ("weights", 14, REPEATED, DOUBLE, offsetof (s_kitchen_t, n_weights),
             offsetof (s_kitchen_t, weights), NULL, NULL, PROTOBUF_C_FIELD_FLAG_PACKED),
    S_FIELD ("tiny", 15, NONE, SFIXED32, 0, offsetof (s_kitchen_t, tiny), NULL, NULL, 0),
};
/* big blobs by_id colours counts delta flags label limit money number ratio
 * tags tiny weights */
static const unsigned s_kitchen_fields_by_name[] = {11, 3, 8, 12, 1, 10, 9, 4,
                                                    7,  6, 5, 0,  2, 14, 13};
static const ProtobufCIntRange s_kitchen_ranges[] = {{1, 0}, {0, 15}};

static const ProtobufCFieldDescriptor s_legacy_fields[] = {
    S_FIELD ("id", 1, REQUIRED, INT32, 0, offsetof (s_legacy_t, id), NULL, NULL, 0),
    S_FIELD ("limit", 2, OPTIONAL, UINT32, offsetof (s_legacy_t, has_limit),
             offsetof (s_legacy_t, limit), NULL, NULL, 0),
    S_FIELD ("name", 3, OPTIONAL, STRING, 0, offsetof (s_legacy_t, name), NULL,
             &s_legacy_name_default, 0),
    S_FIELD ("blob", 4, OPTIONAL, BYTES, offsetof (s_legacy_t, has_blob),
             offsetof (s_legacy_t, blob), NULL, NULL, 0),
};
static const unsigned s_legacy_fields_by_name[] = {3, 0, 1, 2};
static const ProtobufCIntRange s_legacy_ranges[] = {{1, 0}, {0, 4}};

static const ProtobufCFieldDescriptor s_node_fields[] = {
    S_FIELD ("child", 1, NONE, MESSAGE, 0, offsetof (s_node_t, child), &s_node_descriptor, NULL, 0),
    S_FIELD ("name", 2, NONE, STRING, 0, offsetof (s_node_t, name), NULL, &protobuf_c_empty_string,
             0),
};
static const ProtobufCIntRange s_node_ranges[] = {{1, 0}, {0, 2}};

static const ProtobufCMessageDescriptor s_by_id_entry_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "pbjson.test.Kitchen.ByIdEntry",
    "ByIdEntry",
    "S_ById_Entry",
    "pbjson.test",
    sizeof (s_by_id_entry_t),
    2,
    s_by_id_entry_fields,
    s_entry_fields_by_name,
    1,
    s_entry_ranges,
    s_by_id_entry_init,
    NULL,
    NULL,
    NULL};
static const ProtobufCMessageDescriptor s_flags_entry_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "pbjson.test.Kitchen.FlagsEntry",
    "FlagsEntry",
    "S_Flags_Entry",
    "pbjson.test",
    sizeof (s_flags_entry_t),
    2,
    s_flags_entry_fields,
    s_entry_fields_by_name,
    1,
    s_entry_ranges,
    s_flags_entry_init,
    NULL,
    NULL,
    NULL};
static const ProtobufCMessageDescriptor s_kitchen_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "pbjson.test.Kitchen",
    "Kitchen",
    "S_Kitchen",
    "pbjson.test",
    sizeof (s_kitchen_t),
    15,
    s_kitchen_fields,
    s_kitchen_fields_by_name,
    1,
    s_kitchen_ranges,
    s_kitchen_init,
    NULL,
    NULL,
    NULL};
static const ProtobufCMessageDescriptor s_legacy_descriptor = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                               "pbjson.test.Legacy",
                                                               "Legacy",
                                                               "S_Legacy",
                                                               "pbjson.test",
                                                               sizeof (s_legacy_t),
                                                               4,
                                                               s_legacy_fields,
                                                               s_legacy_fields_by_name,
                                                               1,
                                                               s_legacy_ranges,
                                                               s_legacy_init,
                                                               NULL,
                                                               NULL,
                                                               NULL};

static const ProtobufCMessageDescriptor s_node_descriptor = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                             "pbjson.test.Node",
                                                             "Node",
                                                             "S_Node",
                                                             "pbjson.test",
                                                             sizeof (s_node_t),
                                                             2,
                                                             s_node_fields,
                                                             s_entry_fields_by_name,
                                                             1,
                                                             s_node_ranges,
                                                             s_node_init,
                                                             NULL,
                                                             NULL,
                                                             NULL};

/* ------------------------------------------------------------------ */
/* Helpers                                                            */

static json_t *
s_load (const char *text)
{
    json_error_t error;
    json_t *json = json_loads (text, JSON_ALLOW_NUL, &error);
    if (!json)
        fail_msg ("bad test JSON: %s: %s", error.text, text);
    return json;
}

/* Parses text that must convert; fails the test with the reason if not. */
static ProtobufCMessage *
s_parse (const ProtobufCMessageDescriptor *desc, const char *text)
{
    char err[256];
    json_t *json = s_load (text);
    ProtobufCMessage *msg = rt_pbjson_parse (desc, json, err, sizeof err);
    json_decref (json);
    if (!msg)
        fail_msg ("parse failed: %s\n  input: %s", err, text);
    return msg;
}

/* Parses text that must not convert, and checks the reason given. */
static void
s_expect_error (const ProtobufCMessageDescriptor *desc, const char *text, const char *expected)
{
    char err[256];
    json_t *json = s_load (text);
    ProtobufCMessage *msg = rt_pbjson_parse (desc, json, err, sizeof err);
    json_decref (json);
    if (msg) {
        protobuf_c_message_free_unpacked (msg, NULL);
        fail_msg ("parse succeeded, expected \"%s\"\n  input: %s", expected, text);
    }
    if (strcmp (err, expected) != 0)
        fail_msg ("error \"%s\", expected \"%s\"\n  input: %s", err, expected, text);
}

static uint8_t *
s_pack (const ProtobufCMessage *msg, size_t *len)
{
    uint8_t *buf;
    *len = protobuf_c_message_get_packed_size (msg);
    buf = malloc (*len ? *len : 1);
    assert_non_null (buf);
    assert_int_equal (protobuf_c_message_pack (msg, buf), *len);
    return buf;
}

/* The message after a trip through the wire format. */
static ProtobufCMessage *
s_wire_trip (const ProtobufCMessage *msg)
{
    size_t len;
    uint8_t *buf = s_pack (msg, &len);
    ProtobufCMessage *copy = protobuf_c_message_unpack (msg->descriptor, NULL, len, buf);
    free (buf);
    assert_non_null (copy);
    return copy;
}

static void
s_assert_json_equal (json_t *actual, const char *expected_text)
{
    json_t *expected = s_load (expected_text);
    assert_non_null (actual);
    if (!json_equal (actual, expected)) {
        char *a = json_dumps (actual, JSON_SORT_KEYS);
        char *e = json_dumps (expected, JSON_SORT_KEYS);
        fprintf (stderr, "actual:   %s\nexpected: %s\n", a, e);
        free (a);
        free (e);
        json_decref (expected);
        fail ();
    }
    json_decref (expected);
}

/* Dumps a message and checks the JSON. */
static void
s_assert_dump (const ProtobufCMessage *msg, const char *expected_text)
{
    json_t *json = rt_pbjson_dump (msg);
    s_assert_json_equal (json, expected_text);
    json_decref (json);
}

/* ------------------------------------------------------------------ */
/* retain's messages                                                  */

static const char *s_order_json =
    "{\"orderId\": \"ord-1001\", \"customerId\": \"cus-7\","
    " \"total\": {\"amountMinor\": \"123456\", \"currency\": \"UAH\"},"
    " \"lines\": ["
    "   {\"sku\": \"TEA-1\", \"name\": \"Green tea\", \"quantity\": 2,"
    "    \"unitPrice\": {\"amountMinor\": \"45000\", \"currency\": \"UAH\"}},"
    "   {\"sku\": \"CUP-9\", \"name\": \"Чашка\", \"quantity\": 1,"
    "    \"unitPrice\": {\"amountMinor\": \"33456\", \"currency\": \"UAH\"}}],"
    " \"placedAt\": \"1717171717171\", \"couponCode\": \"SPRING\","
    " \"referralCode\": \"REF-42\", \"channel\": \"TELEGRAM\","
    " \"shippingAddress\": {\"country\": \"UA\", \"city\": \"Kyiv\","
    "   \"postalCode\": \"01001\", \"line1\": \"Khreshchatyk 1\", \"line2\": \"apt 5\"}}";

static void
test_order_placed_round_trip (void **state)
{
    (void)state;
    ProtobufCMessage *msg = s_parse (&retain__v1__order_placed__descriptor, s_order_json);
    Retain__V1__OrderPlaced *order = (Retain__V1__OrderPlaced *)msg;
    ProtobufCMessage *copy;

    assert_string_equal (order->order_id, "ord-1001");
    assert_int_equal (order->total->amount_minor, 123456);
    assert_int_equal (order->n_lines, 2);
    assert_int_equal (order->lines[0]->quantity, 2);
    assert_string_equal (order->lines[1]->name, "Чашка");
    assert_int_equal (order->lines[1]->unit_price->amount_minor, 33456);
    assert_int_equal (order->placed_at, 1717171717171LL);
    assert_int_equal (order->channel, RETAIN__V1__CHANNEL__TELEGRAM);
    assert_string_equal (order->shipping_address->postal_code, "01001");

    copy = s_wire_trip (msg);
    s_assert_dump (copy, s_order_json);
    protobuf_c_message_free_unpacked (copy, NULL);
    protobuf_c_message_free_unpacked (msg, NULL);
}

static void
test_order_placed_packs_like_hand_built (void **state)
{
    (void)state;
    Retain__V1__Money total = RETAIN__V1__MONEY__INIT;
    Retain__V1__Money price0 = RETAIN__V1__MONEY__INIT;
    Retain__V1__Money price1 = RETAIN__V1__MONEY__INIT;
    Retain__V1__OrderLine line0 = RETAIN__V1__ORDER_LINE__INIT;
    Retain__V1__OrderLine line1 = RETAIN__V1__ORDER_LINE__INIT;
    Retain__V1__OrderLine *lines[] = {&line0, &line1};
    Retain__V1__Address address = RETAIN__V1__ADDRESS__INIT;
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    ProtobufCMessage *parsed;
    uint8_t *by_hand;
    uint8_t *from_json;
    size_t by_hand_len;
    size_t from_json_len;

    total.amount_minor = 123456;
    total.currency = "UAH";
    price0.amount_minor = 45000;
    price0.currency = "UAH";
    price1.amount_minor = 33456;
    price1.currency = "UAH";
    line0.sku = "TEA-1";
    line0.name = "Green tea";
    line0.quantity = 2;
    line0.unit_price = &price0;
    line1.sku = "CUP-9";
    line1.name = "Чашка";
    line1.quantity = 1;
    line1.unit_price = &price1;
    address.country = "UA";
    address.city = "Kyiv";
    address.postal_code = "01001";
    address.line1 = "Khreshchatyk 1";
    address.line2 = "apt 5";
    order.order_id = "ord-1001";
    order.customer_id = "cus-7";
    order.total = &total;
    order.n_lines = 2;
    order.lines = lines;
    order.placed_at = 1717171717171LL;
    order.coupon_code = "SPRING";
    order.referral_code = "REF-42";
    order.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    order.shipping_address = &address;

    parsed = s_parse (&retain__v1__order_placed__descriptor, s_order_json);
    by_hand = s_pack (&order.base, &by_hand_len);
    from_json = s_pack (parsed, &from_json_len);
    assert_int_equal (from_json_len, by_hand_len);
    assert_memory_equal (from_json, by_hand, by_hand_len);
    free (by_hand);
    free (from_json);
    protobuf_c_message_free_unpacked (parsed, NULL);
}

static void
test_snake_and_camel_names_both_accepted (void **state)
{
    (void)state;
    const char *snake = "{\"order_id\": \"o\", \"placed_at\": 5, \"lines\": [{\"sku\": \"s\","
                        " \"unit_price\": {\"amount_minor\": 7}}],"
                        " \"shipping_address\": {\"postal_code\": \"123\"}}";
    const char *camel = "{\"orderId\": \"o\", \"placedAt\": 5, \"lines\": [{\"sku\": \"s\","
                        " \"unitPrice\": {\"amountMinor\": 7}}],"
                        " \"shippingAddress\": {\"postalCode\": \"123\"}}";
    ProtobufCMessage *a = s_parse (&retain__v1__order_placed__descriptor, snake);
    ProtobufCMessage *b = s_parse (&retain__v1__order_placed__descriptor, camel);
    size_t a_len;
    size_t b_len;
    uint8_t *a_buf = s_pack (a, &a_len);
    uint8_t *b_buf = s_pack (b, &b_len);

    assert_int_equal (a_len, b_len);
    assert_memory_equal (a_buf, b_buf, a_len);
    /* Output is always lowerCamelCase. */
    s_assert_dump (a, "{\"orderId\": \"o\", \"placedAt\": \"5\", \"lines\": [{\"sku\": \"s\","
                      " \"unitPrice\": {\"amountMinor\": \"7\"}}],"
                      " \"shippingAddress\": {\"postalCode\": \"123\"}}");
    free (a_buf);
    free (b_buf);
    protobuf_c_message_free_unpacked (a, NULL);
    protobuf_c_message_free_unpacked (b, NULL);

    s_expect_error (&retain__v1__order_placed__descriptor,
                    "{\"orderId\": \"a\", \"order_id\": \"b\"}",
                    "order_id: field given twice (also as \"orderId\")");
}

static void
test_int64_as_strings (void **state)
{
    (void)state;
    ProtobufCMessage *msg;
    Retain__V1__Envelope *env;
    Retain__V1__PointsEarned *points;

    /* Beyond 2^53 a double cannot hold these; strings and integers can. */
    msg = s_parse (&retain__v1__envelope__descriptor,
                   "{\"seq\": \"18446744073709551615\", \"pseq\": 9007199254740993,"
                   " \"occurredAt\": \"9007199254740993\", \"partition\": 4294967295}");
    env = (Retain__V1__Envelope *)msg;
    assert_true (env->seq == UINT64_MAX);
    assert_true (env->pseq == 9007199254740993ULL);
    assert_true (env->occurred_at == 9007199254740993LL);
    assert_true (env->partition == UINT32_MAX);
    s_assert_dump (msg, "{\"seq\": \"18446744073709551615\", \"pseq\": \"9007199254740993\","
                        " \"occurredAt\": \"9007199254740993\", \"partition\": 4294967295}");
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&retain__v1__points_earned__descriptor,
                   "{\"points\": \"-9223372036854775808\", \"balance\": 9223372036854775807,"
                   " \"expiresAt\": 1e3}");
    points = (Retain__V1__PointsEarned *)msg;
    assert_true (points->points == INT64_MIN);
    assert_true (points->balance == INT64_MAX);
    assert_true (points->expires_at == 1000);
    s_assert_dump (msg, "{\"points\": \"-9223372036854775808\","
                        " \"balance\": \"9223372036854775807\", \"expiresAt\": \"1000\"}");
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&retain__v1__envelope__descriptor, "{\"seq\": \"18446744073709551616\"}",
                    "seq: value out of range for uint64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"seq\": -1}",
                    "seq: value out of range for uint64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"seq\": \"-1\"}",
                    "seq: value out of range for uint64");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": \"9223372036854775808\"}",
                    "points: value out of range for int64");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": \"12abc\"}",
                    "points: expected an integer");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": \" 12\"}",
                    "points: expected an integer");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": \"+12\"}",
                    "points: expected an integer");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": 1.5}",
                    "points: expected an integer");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": 1e30}",
                    "points: value out of range for int64");
    s_expect_error (&retain__v1__points_earned__descriptor, "{\"points\": [1]}",
                    "points: expected an integer");
}

static void
test_int32_range_and_type (void **state)
{
    (void)state;
    ProtobufCMessage *msg;

    msg = s_parse (&retain__v1__feedback_received__descriptor, "{\"score\": -2147483648}");
    assert_int_equal (((Retain__V1__FeedbackReceived *)msg)->score, INT32_MIN);
    s_assert_dump (msg, "{\"score\": -2147483648}");
    protobuf_c_message_free_unpacked (msg, NULL);

    /* The canonical mapping also takes decimal strings and integral reals. */
    msg = s_parse (&retain__v1__feedback_received__descriptor, "{\"score\": \"2147483647\"}");
    assert_int_equal (((Retain__V1__FeedbackReceived *)msg)->score, INT32_MAX);
    protobuf_c_message_free_unpacked (msg, NULL);
    msg = s_parse (&retain__v1__feedback_received__descriptor, "{\"score\": 5.0}");
    assert_int_equal (((Retain__V1__FeedbackReceived *)msg)->score, 5);
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&retain__v1__feedback_received__descriptor, "{\"score\": 2147483648}",
                    "score: value out of range for int32");
    s_expect_error (&retain__v1__feedback_received__descriptor, "{\"score\": -2147483649}",
                    "score: value out of range for int32");
    s_expect_error (&retain__v1__feedback_received__descriptor, "{\"score\": 4.5}",
                    "score: expected an integer");
    s_expect_error (&retain__v1__feedback_received__descriptor, "{\"score\": true}",
                    "score: expected an integer");
    s_expect_error (&retain__v1__order_placed__descriptor,
                    "{\"lines\": [{\"quantity\": 4294967296}]}",
                    "lines[0].quantity: value out of range for uint32");
    s_expect_error (&retain__v1__order_placed__descriptor, "{\"lines\": [{\"quantity\": -1}]}",
                    "lines[0].quantity: value out of range for uint32");
}

static void
test_bytes_as_base64 (void **state)
{
    (void)state;
    static const uint8_t payload[] = {0x00, 0xfb, 0xff, 0xfe, 0x10};
    ProtobufCMessage *msg;
    Retain__V1__Envelope *env;
    Retain__V1__Envelope by_hand = RETAIN__V1__ENVELOPE__INIT;
    uint8_t data[8];
    size_t len;

    /* Standard alphabet with padding out; URL-safe, unpadded in. */
    msg = s_parse (&retain__v1__envelope__descriptor, "{\"payload\": \"APv__hA\"}");
    env = (Retain__V1__Envelope *)msg;
    assert_int_equal (env->payload.len, sizeof payload);
    assert_memory_equal (env->payload.data, payload, sizeof payload);
    s_assert_dump (msg, "{\"payload\": \"APv//hA=\"}");
    protobuf_c_message_free_unpacked (msg, NULL);

    /* Every tail length, each way. */
    for (len = 0; len <= sizeof data; len++) {
        json_t *json;
        ProtobufCMessage *back;
        char err[256];
        size_t i;
        for (i = 0; i < len; i++)
            data[i] = (uint8_t)(0xf0 + i * 37);
        by_hand.payload.len = len;
        by_hand.payload.data = len ? data : NULL;
        json = rt_pbjson_dump (&by_hand.base);
        assert_non_null (json);
        back = rt_pbjson_parse (&retain__v1__envelope__descriptor, json, err, sizeof err);
        json_decref (json);
        assert_non_null (back);
        env = (Retain__V1__Envelope *)back;
        assert_int_equal (env->payload.len, len);
        if (len)
            assert_memory_equal (env->payload.data, data, len);
        protobuf_c_message_free_unpacked (back, NULL);
    }

    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": \"A\"}",
                    "payload: invalid base64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": \"AP*v\"}",
                    "payload: invalid base64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": \"APv//hA==\"}",
                    "payload: invalid base64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": \"QQ=\"}",
                    "payload: invalid base64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": \"QQ==QQ==\"}",
                    "payload: invalid base64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": \"QU JD\"}",
                    "payload: invalid base64");
    s_expect_error (&retain__v1__envelope__descriptor, "{\"payload\": 12}",
                    "payload: expected a base64 string");
}

static void
test_enum_by_name_and_number (void **state)
{
    (void)state;
    ProtobufCMessage *msg;

    msg = s_parse (&retain__v1__order_placed__descriptor, "{\"channel\": \"VIBER\"}");
    assert_int_equal (((Retain__V1__OrderPlaced *)msg)->channel, RETAIN__V1__CHANNEL__VIBER);
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&retain__v1__order_placed__descriptor, "{\"channel\": 5}");
    assert_int_equal (((Retain__V1__OrderPlaced *)msg)->channel, RETAIN__V1__CHANNEL__WHATSAPP);
    s_assert_dump (msg, "{\"channel\": \"WHATSAPP\"}");
    protobuf_c_message_free_unpacked (msg, NULL);

    /* proto3 enums are open: an unknown number survives, as a number. */
    msg = s_parse (&retain__v1__order_placed__descriptor, "{\"channel\": 42}");
    assert_int_equal (((Retain__V1__OrderPlaced *)msg)->channel, 42);
    s_assert_dump (msg, "{\"channel\": 42}");
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&retain__v1__order_placed__descriptor, "{\"channel\": \"CHANNEL_UNSPECIFIED\"}");
    s_assert_dump (msg, "{}");
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&retain__v1__order_placed__descriptor, "{\"channel\": \"telegram\"}",
                    "channel: unknown value \"telegram\" of enum retain.v1.Channel");
    s_expect_error (&retain__v1__order_placed__descriptor, "{\"channel\": true}",
                    "channel: expected an enum name or number of retain.v1.Channel");
    s_expect_error (&retain__v1__order_placed__descriptor, "{\"channel\": 2147483648}",
                    "channel: enum number out of range");
}

static void
test_map_as_object (void **state)
{
    (void)state;
    const char *text = "{\"messageId\": \"m-1\", \"template\": \"shipment_delayed\","
                       " \"variables\": {\"name\": \"Ann\", \"order\": \"A-17\", \"empty\": \"\"}}";
    ProtobufCMessage *msg = s_parse (&retain__v1__outbound_message_requested__descriptor, text);
    Retain__V1__OutboundMessageRequested *out = (Retain__V1__OutboundMessageRequested *)msg;
    ProtobufCMessage *copy;
    int found = 0;
    size_t i;

    assert_int_equal (out->n_variables, 3);
    for (i = 0; i < out->n_variables; i++) {
        if (strcmp (out->variables[i]->key, "order") == 0) {
            assert_string_equal (out->variables[i]->value, "A-17");
            found++;
        }
    }
    assert_int_equal (found, 1);
    copy = s_wire_trip (msg);
    s_assert_dump (copy, text);
    protobuf_c_message_free_unpacked (copy, NULL);
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&retain__v1__outbound_message_requested__descriptor,
                    "{\"variables\": {\"name\": \"Ann\", \"count\": 5}}",
                    "variables[\"count\"]: expected a string");
    s_expect_error (&retain__v1__outbound_message_requested__descriptor,
                    "{\"variables\": {\"name\": null}}",
                    "variables[\"name\"]: null is not allowed as a map value");
    s_expect_error (&retain__v1__outbound_message_requested__descriptor,
                    "{\"variables\": [\"name\"]}", "variables: expected an object");
}

static void
test_defaults_omitted_and_null_means_default (void **state)
{
    (void)state;
    ProtobufCMessage *msg;
    Retain__V1__OrderPlaced *order;

    msg = s_parse (&retain__v1__order_placed__descriptor,
                   "{\"orderId\": null, \"total\": null, \"lines\": null, \"channel\": null,"
                   " \"placedAt\": null, \"shippingAddress\": null}");
    order = (Retain__V1__OrderPlaced *)msg;
    /* Unset strings keep the shared default, which free_unpacked skips. */
    assert_ptr_equal (order->order_id, protobuf_c_empty_string);
    assert_ptr_equal (order->coupon_code, protobuf_c_empty_string);
    assert_null (order->total);
    assert_int_equal (order->n_lines, 0);
    s_assert_dump (msg, "{}");
    protobuf_c_message_free_unpacked (msg, NULL);

    /* Explicit defaults are not written back, as on the wire. */
    msg = s_parse (&retain__v1__inbound_message__descriptor,
                   "{\"text\": \"\", \"sentAt\": \"0\", \"edited\": false, \"channel\": 0,"
                   " \"attachments\": [], \"inbox\": \"shop\"}");
    s_assert_dump (msg, "{\"inbox\": \"shop\"}");
    protobuf_c_message_free_unpacked (msg, NULL);

    /* An empty nested message is present, and written as {}. */
    msg = s_parse (&retain__v1__order_placed__descriptor, "{\"total\": {}}");
    s_assert_dump (msg, "{\"total\": {}}");
    protobuf_c_message_free_unpacked (msg, NULL);
}

static void
test_doubles_and_special_values (void **state)
{
    (void)state;
    ProtobufCMessage *msg;
    Retain__V1__ChurnRiskChanged *risk;
    const char *text = "{\"pAlive\": 0.25, \"previousPAlive\": \"NaN\","
                       " \"expectedPurchases\": \"Infinity\", \"clv\": \"-Infinity\"}";

    msg = s_parse (&retain__v1__churn_risk_changed__descriptor, text);
    risk = (Retain__V1__ChurnRiskChanged *)msg;
    assert_true (risk->p_alive == 0.25);
    assert_true (isnan (risk->previous_p_alive));
    assert_true (isinf (risk->expected_purchases) && risk->expected_purchases > 0);
    assert_true (isinf (risk->clv) && risk->clv < 0);
    s_assert_dump (msg, text);
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&retain__v1__churn_risk_changed__descriptor,
                   "{\"pAlive\": \"0.5\", \"clv\": 12, \"segment\": \"champions\"}");
    risk = (Retain__V1__ChurnRiskChanged *)msg;
    assert_true (risk->p_alive == 0.5);
    assert_true (risk->clv == 12.0);
    s_assert_dump (msg, "{\"pAlive\": 0.5, \"clv\": 12.0, \"segment\": \"champions\"}");
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&retain__v1__churn_risk_changed__descriptor, "{\"pAlive\": \"abc\"}",
                    "pAlive: expected a number");
    s_expect_error (&retain__v1__churn_risk_changed__descriptor, "{\"pAlive\": \"inf\"}",
                    "pAlive: expected a number");
    s_expect_error (&retain__v1__churn_risk_changed__descriptor, "{\"pAlive\": \"1e999\"}",
                    "pAlive: value out of range for double");
    s_expect_error (&retain__v1__churn_risk_changed__descriptor, "{\"pAlive\": false}",
                    "pAlive: expected a number");
}

static void
test_errors_name_the_path (void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *order = &retain__v1__order_placed__descriptor;
    char err[256];
    char small[12];
    json_t *json;

    s_expect_error (order, "{\"orderId\": \"o\", \"colour\": \"red\"}",
                    "colour: unknown field of retain.v1.OrderPlaced");
    s_expect_error (order, "{\"lines\": [{\"sku\": \"a\"}, {\"colour\": \"red\"}]}",
                    "lines[1].colour: unknown field of retain.v1.OrderLine");
    s_expect_error (order, "{\"total\": {\"amountMinor\": true}}",
                    "total.amountMinor: expected an integer");
    s_expect_error (order, "{\"lines\": [{}, {}, {\"unitPrice\": {\"amount_minor\": \"x\"}}]}",
                    "lines[2].unitPrice.amount_minor: expected an integer");
    s_expect_error (order, "{\"orderId\": 5}", "orderId: expected a string");
    s_expect_error (order, "{\"orderId\": \"a\\u0000b\"}",
                    "orderId: string contains a NUL character");
    s_expect_error (order, "{\"lines\": {\"sku\": \"a\"}}", "lines: expected an array");
    s_expect_error (order, "{\"lines\": [null]}", "lines[0]: null is not allowed in an array");
    s_expect_error (order, "{\"lines\": [5]}",
                    "lines[0]: expected an object (retain.v1.OrderLine)");
    s_expect_error (order, "{\"total\": \"12.50\"}", "total: expected an object (retain.v1.Money)");
    s_expect_error (&retain__v1__inbound_message__descriptor, "{\"edited\": \"yes\"}",
                    "edited: expected true or false");
    s_expect_error (order, "[]", "expected an object (retain.v1.OrderPlaced)");

    /* An error late in a message that already holds strings, messages and
     * array elements: everything built so far is freed (ASan checks). */
    s_expect_error (
        order,
        "{\"orderId\": \"o\", \"customerId\": \"c\", \"total\": {\"amountMinor\": 1,"
        " \"currency\": \"EUR\"}, \"shippingAddress\": {\"city\": \"Lviv\"},"
        " \"lines\": [{\"sku\": \"a\", \"unitPrice\": {\"currency\": \"EUR\"}},"
        " {\"sku\": \"b\", \"name\": \"B\"}, {\"sku\": \"c\", \"quantity\": \"three\"}]}",
        "lines[2].quantity: expected an integer");
    s_expect_error (&retain__v1__outbound_message_requested__descriptor,
                    "{\"text\": \"hi\", \"variables\": {\"a\": \"1\", \"b\": \"2\", \"c\": [3]}}",
                    "variables[\"c\"]: expected a string");

    /* A NULL document, a short buffer and no buffer at all are all safe. */
    assert_null (rt_pbjson_parse (order, NULL, err, sizeof err));
    assert_string_equal (err, "expected an object (retain.v1.OrderPlaced)");
    json = s_load ("{\"lines\": [{\"quantity\": \"x\"}]}");
    assert_null (rt_pbjson_parse (order, json, small, sizeof small));
    assert_string_equal (small, "lines[0].qu");
    assert_null (rt_pbjson_parse (order, json, NULL, 0));
    json_decref (json);
}

static void
test_invalid_utf8_is_repaired_on_output (void **state)
{
    (void)state;
    Retain__V1__Envelope env = RETAIN__V1__ENVELOPE__INIT;
    json_t *json;

    /* protobuf-c does not check UTF-8 when it unpacks; jansson would refuse it. */
    env.id = "ab\xff"
             "c\xc0\xaf";
    json = rt_pbjson_dump (&env.base);
    assert_non_null (json);
    assert_string_equal (json_string_value (json_object_get (json, "id")),
                         "ab\xef\xbf\xbd"
                         "c\xef\xbf\xbd\xef\xbf\xbd");
    json_decref (json);
}

/* ------------------------------------------------------------------ */
/* Shapes retain's messages do not use yet                            */

static const char *s_kitchen_json =
    "{\"ratio\": 0.1, \"counts\": [1, -2, 2147483647], \"tags\": [\"a\", \"b c\", \"\"],"
    " \"blobs\": [\"AA==\", \"\", \"/+8=\"],"
    " \"money\": {\"amountMinor\": \"-5\", \"currency\": \"EUR\"}, \"limit\": 7,"
    " \"byId\": {\"1\": \"one\", \"-2\": \"minus two\", \"0\": \"zero\"},"
    " \"flags\": {\"true\": \"TELEGRAM\", \"false\": \"SMS\"}, \"delta\": -5,"
    " \"big\": \"18446744073709551615\", \"colours\": [\"VIBER\", \"EMAIL\", 77],"
    " \"weights\": [0.5, -2.25, \"NaN\"], \"tiny\": -1}";

static void
test_generic_shapes_round_trip (void **state)
{
    (void)state;
    ProtobufCMessage *msg = s_parse (&s_kitchen_descriptor, s_kitchen_json);
    s_kitchen_t *k = (s_kitchen_t *)msg;
    ProtobufCMessage *copy;

    assert_true (k->ratio == 0.1f);
    assert_int_equal (k->n_counts, 3);
    assert_int_equal (k->counts[1], -2);
    assert_int_equal (k->n_tags, 3);
    assert_string_equal (k->tags[1], "b c");
    assert_int_equal (k->n_blobs, 3);
    assert_int_equal (k->blobs[2].len, 2);
    assert_int_equal (k->blobs[2].data[0], 0xff);
    assert_int_equal (k->choice_case, 7);
    assert_int_equal (k->money->amount_minor, -5);
    assert_int_equal (k->n_by_id, 3);
    assert_int_equal (k->by_id[1]->key, -2);
    assert_string_equal (k->by_id[1]->value, "minus two");
    assert_int_equal (k->n_flags, 2);
    assert_true (k->flags[0]->key);
    assert_int_equal (k->flags[1]->value, RETAIN__V1__CHANNEL__SMS);
    assert_int_equal (k->delta, -5);
    assert_true (k->big == UINT64_MAX);
    assert_int_equal (k->colours[2], 77);
    assert_true (isnan (k->weights[2]));
    assert_int_equal (k->tiny, -1);

    copy = s_wire_trip (msg);
    s_assert_dump (copy, s_kitchen_json);
    protobuf_c_message_free_unpacked (copy, NULL);
    protobuf_c_message_free_unpacked (msg, NULL);
}

static void
test_oneof (void **state)
{
    (void)state;
    ProtobufCMessage *msg;
    ProtobufCMessage *copy;

    /* A oneof member is written even at its default: its presence is the data. */
    msg = s_parse (&s_kitchen_descriptor, "{\"number\": \"0\"}");
    assert_int_equal (((s_kitchen_t *)msg)->choice_case, 6);
    copy = s_wire_trip (msg);
    s_assert_dump (copy, "{\"number\": \"0\"}");
    protobuf_c_message_free_unpacked (copy, NULL);
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&s_kitchen_descriptor, "{\"label\": null, \"number\": \"12\"}");
    assert_int_equal (((s_kitchen_t *)msg)->choice_case, 6);
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&s_kitchen_descriptor, "{\"label\": \"first\"}");
    assert_string_equal (((s_kitchen_t *)msg)->label, "first");
    s_assert_dump (msg, "{\"label\": \"first\"}");
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&s_kitchen_descriptor, "{\"label\": \"a\", \"money\": {}}",
                    "money: only one field of a oneof may be set, \"label\" already is");
    s_expect_error (&s_kitchen_descriptor, "{\"money\": {\"currency\": \"EUR\"}, \"number\": 1}",
                    "number: only one field of a oneof may be set, \"money\" already is");
}

static void
test_generic_shapes_errors (void **state)
{
    (void)state;
    ProtobufCMessage *msg;

    s_expect_error (&s_kitchen_descriptor, "{\"byId\": {\"1\": \"a\", \"x\": \"b\"}}",
                    "byId[\"x\"]: expected an integer as the key");
    s_expect_error (&s_kitchen_descriptor, "{\"byId\": {\"2147483648\": \"a\"}}",
                    "byId[\"2147483648\"]: value out of range for int32");
    s_expect_error (&s_kitchen_descriptor, "{\"flags\": {\"maybe\": \"SMS\"}}",
                    "flags[\"maybe\"]: expected \"true\" or \"false\" as the key");
    s_expect_error (&s_kitchen_descriptor, "{\"flags\": {\"true\": \"FAX\"}}",
                    "flags[\"true\"]: unknown value \"FAX\" of enum retain.v1.Channel");
    s_expect_error (&s_kitchen_descriptor, "{\"ratio\": 1e39}",
                    "ratio: value out of range for float");
    s_expect_error (&s_kitchen_descriptor, "{\"tags\": [\"a\", 1]}", "tags[1]: expected a string");
    s_expect_error (&s_kitchen_descriptor, "{\"blobs\": [\"AA==\", \"A\"]}",
                    "blobs[1]: invalid base64");
    s_expect_error (&s_kitchen_descriptor, "{\"counts\": [1, 2147483648]}",
                    "counts[1]: value out of range for int32");
    s_expect_error (&s_kitchen_descriptor, "{\"colours\": [\"SMS\", \"FAX\"]}",
                    "colours[1]: unknown value \"FAX\" of enum retain.v1.Channel");
    s_expect_error (&s_kitchen_descriptor, "{\"label\": \"a\", \"tiny\": 2147483648}",
                    "tiny: value out of range for sfixed32");

    s_expect_error (&s_kitchen_descriptor, "{\"ratio\": -3.4028236e38}",
                    "ratio: value out of range for float");

    /* FLT_MAX's shortest decimal form lies a little above it; it still
     * goes both ways. */
    msg = s_parse (&s_kitchen_descriptor, "{\"ratio\": 3.4028235e38}");
    assert_true (((s_kitchen_t *)msg)->ratio == FLT_MAX);
    s_assert_dump (msg, "{\"ratio\": 3.4028235e38}");
    protobuf_c_message_free_unpacked (msg, NULL);

    /* Infinity fits a float; only finite values beyond its range do not. */
    msg = s_parse (&s_kitchen_descriptor, "{\"ratio\": \"-Infinity\", \"delta\": \"-7\"}");
    assert_true (isinf (((s_kitchen_t *)msg)->ratio));
    s_assert_dump (msg, "{\"ratio\": \"-Infinity\", \"delta\": -7}");
    protobuf_c_message_free_unpacked (msg, NULL);
}

static void
test_proto2_presence (void **state)
{
    (void)state;
    ProtobufCMessage *msg;
    ProtobufCMessage *copy;
    s_legacy_t *legacy;

    msg = s_parse (&s_legacy_descriptor, "{\"id\": 0}");
    legacy = (s_legacy_t *)msg;
    assert_false (legacy->has_limit);
    assert_ptr_equal (legacy->name, s_legacy_name_default);
    /* Required fields are always written; unset optional ones never. */
    s_assert_dump (msg, "{\"id\": 0}");
    protobuf_c_message_free_unpacked (msg, NULL);

    msg = s_parse (&s_legacy_descriptor,
                   "{\"id\": 3, \"limit\": 0, \"name\": \"anon\", \"blob\": \"\"}");
    legacy = (s_legacy_t *)msg;
    assert_true (legacy->has_limit);
    assert_true (legacy->has_blob);
    copy = s_wire_trip (msg);
    s_assert_dump (copy, "{\"id\": 3, \"limit\": 0, \"name\": \"anon\", \"blob\": \"\"}");
    protobuf_c_message_free_unpacked (copy, NULL);
    protobuf_c_message_free_unpacked (msg, NULL);

    s_expect_error (&s_legacy_descriptor, "{\"limit\": 1}", "id: required field missing");
    s_expect_error (&s_legacy_descriptor, "{\"id\": null, \"name\": \"x\"}",
                    "id: required field missing");
}

/* {"child": {"child": ... {"name": "leaf"} ... }} with `depth` objects. */
static char *
s_nested_nodes (int depth)
{
    size_t size = (size_t)depth * 12 + 32;
    char *text = malloc (size);
    size_t len = 0;
    int i;
    assert_non_null (text);
    for (i = 1; i < depth; i++)
        len += (size_t)snprintf (text + len, size - len, "{\"child\": ");
    len += (size_t)snprintf (text + len, size - len, "{\"name\": 5}");
    for (i = 1; i < depth; i++)
        len += (size_t)snprintf (text + len, size - len, "}");
    return text;
}

static void
test_nesting_is_bounded (void **state)
{
    (void)state;
    char err[256];
    char *text;
    json_t *json;
    ProtobufCMessage *msg;

    /* 100 levels are read (the leaf's error proves the parser got there). */
    text = s_nested_nodes (100);
    json = s_load (text);
    msg = rt_pbjson_parse (&s_node_descriptor, json, err, sizeof err);
    assert_null (msg);
    /* The path shows its end, so the reason still fits the buffer. */
    assert_string_equal (err + strlen (err) - strlen ("child.child.name: expected a string"),
                         "child.child.name: expected a string");
    assert_memory_equal (err, "...", 3);
    json_decref (json);
    free (text);

    /* One more is refused, before the leaf is read. */
    text = s_nested_nodes (101);
    json = s_load (text);
    msg = rt_pbjson_parse (&s_node_descriptor, json, err, sizeof err);
    assert_null (msg);
    assert_non_null (strstr (err, ".child: messages nested more than 100 deep"));
    json_decref (json);
    free (text);

    msg = s_parse (&s_node_descriptor, "{\"child\": {\"child\": {\"name\": \"leaf\"}}}");
    assert_string_equal (((s_node_t *)msg)->child->child->name, "leaf");
    s_assert_dump (msg, "{\"child\": {\"child\": {\"name\": \"leaf\"}}}");
    protobuf_c_message_free_unpacked (msg, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_order_placed_round_trip),
        cmocka_unit_test (test_order_placed_packs_like_hand_built),
        cmocka_unit_test (test_snake_and_camel_names_both_accepted),
        cmocka_unit_test (test_int64_as_strings),
        cmocka_unit_test (test_int32_range_and_type),
        cmocka_unit_test (test_bytes_as_base64),
        cmocka_unit_test (test_enum_by_name_and_number),
        cmocka_unit_test (test_map_as_object),
        cmocka_unit_test (test_defaults_omitted_and_null_means_default),
        cmocka_unit_test (test_doubles_and_special_values),
        cmocka_unit_test (test_errors_name_the_path),
        cmocka_unit_test (test_invalid_utf8_is_repaired_on_output),
        cmocka_unit_test (test_generic_shapes_round_trip),
        cmocka_unit_test (test_oneof),
        cmocka_unit_test (test_generic_shapes_errors),
        cmocka_unit_test (test_proto2_presence),
        cmocka_unit_test (test_nesting_is_bounded),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
