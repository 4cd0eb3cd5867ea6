/*
 * test_tracker_limits: a carrier's limits held across replicas, against
 * the fake carrier, which refuses (and counts) every call that breaks
 * them.
 *
 *   - DHL's 1 call/s for one account, two trackerd replicas polling eight
 *     parcels together: every parcel polled, no two calls closer than the
 *     spacing (the fake's arrival times), none refused;
 *   - a daily quota of three calls: three calls that day, the other
 *     parcels waiting, none refused as over the quota;
 *   - Nova Poshta's batch: 250 parcels of one account asked about in
 *     three calls (100 + 100 + 50), not 250.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "rt_test_tracker.h"

static void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep (&ts, NULL);
}

static void
s_dhl_parcels (rt_test_tracker_t *t, int n)
{
    rt_fc_dhl_state_t st = {.service = "express", .status_code = "transit", .status = "In transit"};
    for (int i = 0; i < n; i++) {
        char number[32], id[16];
        snprintf (number, sizeof number, "10000000%02d", i);
        snprintf (id, sizeof id, "S-%d", i);
        rt_fake_carrier_dhl_set (t->fake, number, &st);
        rt_test_tracker_ship (t, &(rt_test_shipped_t){.shipment_id = id,
                                                      .order_id = id,
                                                      .carrier = "dhl",
                                                      .service = "express",
                                                      .tracking_number = number});
    }
}

static void
test_spacing_holds_across_two_replicas (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_fc_stats_t st;
    /* Enough parcels that both replicas win some of the slots: which one
     * claims a slot first is up to the scheduler, and with eight one
     * replica now and then took them all. */
    enum { N = 16 };

    rt_test_tracker_open (&t, "tracker_spacing", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_test_trackerd_start (&t, 1, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_DHL, "dhl-key", NULL);
    rt_fake_carrier_limits (t.fake, RT_FC_DHL, &(rt_fc_limits_t){.min_interval_ms = 1000});
    rt_test_tracker_account (&t, "dhl-main", "dhl", "dhl-key", NULL, 1000, 0);
    s_dhl_parcels (&t, N);
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_DHL, N, 60000));
    assert_int_equal (rt_test_pg_wait_long (t.w.t.pg,
                                            "SELECT count(*) FROM tracking.shipments"
                                            " WHERE tag = 'InTransit'",
                                            N, 10000),
                      N);
    rt_fake_carrier_stats (t.fake, RT_FC_DHL, &st);
    assert_int_equal (st.too_soon, 0);
    assert_int_equal (st.calls, N);
    for (size_t i = 1; i < st.calls; i++) {
        rt_fc_call_t a, b;
        assert_true (rt_fake_carrier_call (t.fake, RT_FC_DHL, i - 1, &a));
        assert_true (rt_fake_carrier_call (t.fake, RT_FC_DHL, i, &b));
        /* The slot is taken at the claim, with a margin (50 ms) for the
         * way to the carrier, so arrivals keep the full spacing. */
        assert_true (b.arrival_us - a.arrival_us >= 1000000);
    }
    /* Both replicas took a share. */
    assert_true (rt_test_metric (t.d[0].admin_port,
                                 "retain_tracker_calls_total{carrier=\"dhl\",verdict=\"ok\"}") >=
                 1);
    assert_true (rt_test_metric (t.d[1].admin_port,
                                 "retain_tracker_calls_total{carrier=\"dhl\",verdict=\"ok\"}") >=
                 1);
    rt_test_tracker_close (&t);
}

static void
test_daily_quota_is_not_passed (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_fc_stats_t st;

    rt_test_tracker_open (&t, "tracker_quota", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_test_trackerd_start (&t, 1, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_DHL, "dhl-key", NULL);
    rt_fake_carrier_limits (t.fake, RT_FC_DHL, &(rt_fc_limits_t){.daily_quota = 3});
    rt_test_tracker_account (&t, "dhl-main", "dhl", "dhl-key", NULL, 0, 3);
    s_dhl_parcels (&t, 6);
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_DHL, 3, 20000));
    s_sleep_ms (1500);
    rt_fake_carrier_stats (t.fake, RT_FC_DHL, &st);
    assert_int_equal (st.calls, 3);
    assert_int_equal (st.over_quota, 0);
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments"
                                                 " WHERE tag = 'Pending'"),
                      3);
    rt_test_tracker_close (&t);
}

static void
test_nova_poshta_batches_a_hundred (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_fc_stats_t st;
    enum { N = 250 };
    char *numbers[N];
    rt_fc_np_state_t np = {.status_code = "5", .status = "Відправлення прямує до міста Львів."};

    rt_test_tracker_open (&t, "tracker_batch", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    rt_test_tracker_account (&t, "np-main", "nova_poshta", "np-key", NULL, 0, 0);
    /* Registered before the first claim, so the batches fill. */
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET paused_at = 0,"
                               " paused_reason = 'held by the test'");
    for (int i = 0; i < N; i++) {
        numbers[i] = malloc (16);
        snprintf (numbers[i], 16, "204500%08d", i);
        char id[16];
        snprintf (id, sizeof id, "S-%d", i);
        rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = id,
                                                       .order_id = id,
                                                       .carrier = "nova_poshta",
                                                       .tracking_number = numbers[i]});
    }
    rt_fake_carrier_np_set_many (t.fake, (const char *const *)numbers, N, &np);
    assert_int_equal (
        rt_test_pg_wait_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments", N, 20000), N);
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET paused_at = NULL,"
                               " paused_reason = NULL");
    assert_int_equal (rt_test_pg_wait_long (t.w.t.pg,
                                            "SELECT count(*) FROM tracking.shipments"
                                            " WHERE tag = 'InTransit'",
                                            N, 20000),
                      N);
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, 3);
    assert_int_equal (st.documents, N);
    for (int i = 0; i < N; i++)
        free (numbers[i]);
    rt_test_tracker_close (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_spacing_holds_across_two_replicas),
        cmocka_unit_test (test_daily_quota_is_not_passed),
        cmocka_unit_test (test_nova_poshta_batches_a_hundred),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
