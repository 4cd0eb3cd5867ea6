/*
 * common/bus: what producers and consumers agree on: the partition hash,
 * topics, the type registry and envelopes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_bus.h"
#include "rt_uuid.h"
#include "retain/v1/order.pb-c.h"

/* The partition function is part of the contract (an outside consumer may
 * compute it): FNV-1a 32-bit, whose published test vectors are
 * fnv1a32("") = 0x811c9dc5, fnv1a32("a") = 0xe40c292c,
 * fnv1a32("foobar") = 0xbf9cf968 (Fowler/Noll/Vo reference). */
static void
test_partition_is_fnv1a (void **state)
{
    (void)state;
    assert_int_equal (rt_bus_partition ("", 0, 0xffffffffu), 0x811c9dc5u % 0xffffffffu);
    assert_int_equal (rt_bus_partition ("a", 1, 0xffffffffu), 0xe40c292cu);
    assert_int_equal (rt_bus_partition ("foobar", 6, 0xffffffffu), 0xbf9cf968u);
    assert_int_equal (rt_bus_partition ("foobar", 6, 16), 0xbf9cf968u % 16);
    /* Keys spread over the partitions. */
    {
        int seen[16] = {0}, used = 0;
        char key[32];
        for (int i = 0; i < 1000; i++) {
            int n = snprintf (key, sizeof key, "customer-%d", i);
            seen[rt_bus_partition (key, (size_t)n, 16)]++;
        }
        for (int p = 0; p < 16; p++) {
            used += seen[p] > 0;
            assert_true (seen[p] < 120);
        }
        assert_int_equal (used, 16);
    }
}

static void
test_topics_do_not_prefix_each_other (void **state)
{
    (void)state;
    char a[RT_BUS_TOPIC_MAX], b[RT_BUS_TOPIC_MAX];
    rt_bus_topic (a, sizeof a, "order", 1);
    rt_bus_topic (b, sizeof b, "order", 12);
    assert_string_equal (a, "order.0001");
    assert_string_equal (b, "order.0012");
    assert_int_not_equal (strncmp (b, a, strlen (a)), 0);
}

static void
test_registry (void **state)
{
    (void)state;
    size_t n, i;
    const rt_bus_type_t *types = rt_bus_types (&n);
    const char *required[] = {"InboundMessage",       "OutboundMessageRequested",
                              "MessageDelivered",     "MessageFailed",
                              "ConversationAssigned", "SlaBreached",
                              "OrderPlaced",          "OrderPaid",
                              "OrderShipped",         "OrderCancelled",
                              "OrderRefunded",        "ShipmentStatusChanged",
                              "ShipmentDelayed",      "NotificationRequested",
                              "PointsEarned",         "CouponIssued",
                              "TierChanged",          "FeedbackReceived",
                              "ChurnRiskChanged",     "CustomerUpserted",
                              "CustomerMerged",       "CustomerUnmerged",
                              "ConsentChanged"};
    for (i = 0; i < sizeof required / sizeof *required; i++) {
        const rt_bus_type_t *t = rt_bus_type_find (required[i]);
        assert_non_null (t);
        assert_true (rt_bus_stream_index (t->stream) >= 0);
        /* The short name is the descriptor's short name. */
        assert_string_equal (t->desc->short_name, required[i]);
    }
    assert_int_equal (n, sizeof required / sizeof *required);
    assert_ptr_equal (rt_bus_type_find ("retain.v1.OrderPlaced"), rt_bus_type_find ("OrderPlaced"));
    assert_null (rt_bus_type_find ("OrderTeleported"));
    assert_null (rt_bus_type_find (NULL));
    assert_int_equal (rt_bus_stream_index ("gossip"), -1);
    (void)types;
}

static void
test_envelope_round_trip (void **state)
{
    (void)state;
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    Retain__V1__Envelope *env, *copy, *back;
    Retain__V1__OrderPlaced *payload;
    rt_uuid_t id;
    uint8_t *data;
    size_t len;

    order.order_id = "o-7";
    order.customer_id = "c-9";
    env = rt_envelope_new ("OrderPlaced", "c-9", &order.base, "unit");
    assert_non_null (env);
    assert_int_equal (rt_uuid_parse (env->id, &id), 0);
    assert_true (rt_uuid_v7_time_ms (&id) > 0);
    assert_string_equal (env->stream, "order");
    assert_string_equal (env->type, "OrderPlaced");
    assert_true (env->occurred_at > 1700000000000LL);

    copy = rt_envelope_copy (env);
    data = rt_envelope_pack (copy, &len);
    back = retain__v1__envelope__unpack (NULL, len, data);
    assert_non_null (back);
    assert_string_equal (back->id, env->id);
    assert_string_equal (back->key, "c-9");
    payload = (Retain__V1__OrderPlaced *)rt_envelope_payload (back);
    assert_non_null (payload);
    assert_string_equal (payload->order_id, "o-7");

    protobuf_c_message_free_unpacked (&payload->base, NULL);
    retain__v1__envelope__free_unpacked (back, NULL);
    free (data);
    rt_envelope_free (copy);
    rt_envelope_free (env);
    assert_null (rt_envelope_new ("NoSuchType", "k", NULL, "unit"));
    rt_envelope_free (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_partition_is_fnv1a),
        cmocka_unit_test (test_topics_do_not_prefix_each_other),
        cmocka_unit_test (test_registry),
        cmocka_unit_test (test_envelope_round_trip),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
