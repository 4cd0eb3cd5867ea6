/*
 * test_tracker_kill: trackerd killed with SIGKILL mid-cycle, while its
 * calls to the carrier are in flight, and started again: every status
 * change recorded and published exactly once, nothing lost, nothing twice.
 *
 * 300 Nova Poshta parcels in transit; the carrier then says "delivered"
 * for all of them, and its answers are slow (1.5 s), so the kill lands
 * while batches are asked about and before their outcomes are recorded.
 * The restarted replica waits out the dead one's leases (twice the 1 s
 * request timeout) and asks again. In the end every parcel is Delivered
 * with one InTransit>Delivered ShipmentStatusChanged and one "delivered"
 * message each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "rt_test_router.h"
#include "rt_test_tracker.h"

enum { N = 300 };

static void
test_sigkill_mid_cycle_loses_and_repeats_nothing (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char *numbers[N], customer[RT_UUID_STR_LEN + 1];
    rt_fc_np_state_t moving = {.status_code = "5", .status = "Прямує до міста Львів."};
    rt_fc_np_state_t done = {.status_code = "9", .status = "Відправлення отримано"};
    const char *const extra[] = {"--request-timeout=1s", "--workers=2", NULL};
    rt_fc_stats_t st;

    rt_test_tracker_open (&t, "tracker_kill", 0);
    rt_test_trackerd_start (&t, 0, extra);
    rt_fake_carrier_account (t.fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    rt_test_tracker_account (&t, "np-main", "nova_poshta", "np-key", NULL, 0, 0);
    rt_test_router_uuid (customer);
    for (int i = 0; i < N; i++) {
        numbers[i] = malloc (16);
        snprintf (numbers[i], 16, "204500%08d", i);
    }
    /* The carrier knows them before the shop ships them: no first "not
     * found" pushes a parcel an hour away. */
    rt_fake_carrier_np_set_many (t.fake, (const char *const *)numbers, N, &moving);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf (id, sizeof id, "S-%d", i);
        rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = id,
                                                       .order_id = id,
                                                       .customer_id = customer,
                                                       .carrier = "nova_poshta",
                                                       .tracking_number = numbers[i]});
    }
    assert_int_equal (rt_test_pg_wait_long (t.w.t.pg,
                                            "SELECT count(*) FROM tracking.shipments"
                                            " WHERE tag = 'InTransit'",
                                            N, 30000),
                      N);

    /* Delivered, said slowly; every parcel due. */
    rt_fake_carrier_np_set_many (t.fake, (const char *const *)numbers, N, &done);
    for (int i = 0; i < 8; i++)
        rt_fake_carrier_push (t.fake, RT_FC_NOVA_POSHTA,
                              &(rt_fc_answer_t){.kind = RT_FC_STATE, .delay_ms = 1500});
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    size_t before = st.calls;
    rt_test_tracker_due (&t);
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_NOVA_POSHTA, before + 2, 10000));
    rt_test_trackerd_kill (&t, 0);
    /* Nothing of the calls in flight was recorded. */
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments"
                                                 " WHERE tag = 'Delivered'"),
                      rt_test_pg_long (t.w.t.pg,
                                       "SELECT count(*) FROM tracking.shipments"
                                       " WHERE tag = 'Delivered' AND poll_token IS NULL"));
    assert_true (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments"
                                            " WHERE poll_token IS NOT NULL") > 0);

    rt_test_clientd_restart (&t.d[0]);
    assert_int_equal (rt_test_pg_wait_long (t.w.t.pg,
                                            "SELECT count(*) FROM tracking.shipments"
                                            " WHERE tag = 'Delivered' AND final",
                                            N, 60000),
                      N);
    /* Each change once, published once. */
    assert_int_equal (
        rt_test_tracker_wait_published (&t, "ShipmentStatusChanged", NULL, 2 * N, 20000), 2 * N);
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM (SELECT key FROM bus.events"
                                                 " WHERE type = 'ShipmentStatusChanged'"
                                                 " GROUP BY key HAVING count(*) <> 2) x"),
                      0);
    /* shipped + delivered per parcel, named after the parcel: once each. */
    assert_int_equal (
        rt_test_tracker_wait_published (&t, "NotificationRequested", customer, 2 * N, 20000),
        2 * N);
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM tracking.events"),
                      rt_test_pg_long (t.w.t.pg, "SELECT count(DISTINCT (shipment_id, code))"
                                                 " FROM tracking.events"));
    for (int i = 0; i < N; i++)
        free (numbers[i]);
    rt_test_tracker_close (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_sigkill_mid_cycle_loses_and_repeats_nothing),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
