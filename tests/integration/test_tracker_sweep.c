/*
 * test_tracker_sweep: what time alone decides about a parcel, on a set
 * clock every process follows (trackerd, busd, the fake carrier's days),
 * so days pass in a second.
 *
 *   - the promised date passes undelivered: ShipmentDelayed past_promise,
 *     once, however many sweeps follow;
 *   - the carrier's estimate moves past the promise: ShipmentDelayed
 *     carrier_estimate_late, once;
 *   - no news for Nova Poshta's 3 days: ShipmentDelayed stalled, once; a
 *     parcel waiting at a branch is not stalled;
 *   - at the branch, free storage ending within a day: the storage
 *     reminder asked of notifyd once, with the deadline;
 *   - 30 days without news: Expired, final, ShipmentStatusChanged, and
 *     polling stops.
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

#include "rt_test_router.h"
#include "rt_test_tracker.h"
#include "retain/v1/shipment.pb-c.h"

#define S_DAY_MS (24LL * 3600 * 1000)
/* 2026-06-01 09:00 UTC: summer, Kyiv is UTC+3. */
#define S_T0 1780304400000LL

static int64_t s_clock; /* the world's clock (the fake, in this process, follows it too) */

static void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep (&ts, NULL);
}

static void
s_world (rt_test_tracker_t *t, const char *name)
{
    s_clock = S_T0;
    rt_test_tracker_open (t, name, S_T0);
    rt_test_trackerd_start (t, 0, NULL);
    rt_fake_carrier_account (t->fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    rt_test_tracker_account (t, "np-main", "nova_poshta", "np-key", NULL, 0, 0);
}

static void
s_advance (rt_test_tracker_t *t, int64_t ms)
{
    s_clock += ms;
    rt_test_tracker_clock_set (t, s_clock);
}

/* The reasons of the ShipmentDelayed published for a shipment, in order. */
static void
s_delays (rt_test_tracker_t *t, const char *shipment, char *out, size_t outlen)
{
    const char *v[1] = {shipment};
    PGresult *r = PQexecParams (t->w.t.pg,
                                "SELECT payload FROM bus.events WHERE producer = 'retain-trackerd'"
                                " AND type = 'ShipmentDelayed' AND key = $1 ORDER BY seq",
                                1, NULL, v, NULL, NULL, 1);
    size_t n = 0;
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    out[0] = '\0';
    for (int i = 0; i < PQntuples (r); i++) {
        Retain__V1__ShipmentDelayed *m = retain__v1__shipment_delayed__unpack (
            NULL, (size_t)PQgetlength (r, i, 0), (const uint8_t *)PQgetvalue (r, i, 0));
        assert_non_null (m);
        n += (size_t)snprintf (out + n, outlen - n, "%s%s", i ? "," : "", m->reason);
        retain__v1__shipment_delayed__free_unpacked (m, NULL);
    }
    PQclear (r);
}

static void
s_wait_delays (rt_test_tracker_t *t, const char *shipment, const char *want, char *got, size_t len)
{
    for (int i = 0; i < 400; i++) {
        s_delays (t, shipment, got, len);
        if (strcmp (got, want) == 0)
            return;
        s_sleep_ms (25);
    }
}

static void
test_promise_passed_is_said_once (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char got[256];
    rt_fc_np_state_t np = {.status_code = "5", .status = "Відправлення прямує до міста Львів."};

    s_world (&t, "tracker_promise");
    rt_fake_carrier_np_set (t.fake, "20450000000001", &np);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000001",
                                                   .shipped_at = S_T0,
                                                   .promised_by = S_T0 + 2 * S_DAY_MS});
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 15000));
    s_advance (&t, S_DAY_MS);
    s_sleep_ms (600);
    s_delays (&t, "S-1", got, sizeof got);
    assert_string_equal (got, "");
    s_advance (&t, S_DAY_MS + 3600 * 1000);
    s_wait_delays (&t, "S-1", "past_promise", got, sizeof got);
    assert_string_equal (got, "past_promise");
    /* More sweeps, a restart: nothing more. */
    s_sleep_ms (800);
    rt_test_clientd_stop (&t.d[0]);
    rt_test_clientd_restart (&t.d[0]);
    s_sleep_ms (800);
    s_delays (&t, "S-1", got, sizeof got);
    assert_string_equal (got, "past_promise");
    rt_test_tracker_close (&t);
}

static void
test_carrier_estimate_past_the_promise (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char got[256];
    rt_fc_np_state_t np = {.status_code = "6",
                           .status = "У місті Львів, орієнтовна доставка",
                           .scheduled_ms = S_T0 + 3 * S_DAY_MS};

    s_world (&t, "tracker_estimate_late");
    rt_fake_carrier_np_set (t.fake, "20450000000002", &np);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-2",
                                                   .order_id = "O-2",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000002",
                                                   .shipped_at = S_T0,
                                                   .promised_by = S_T0 + 2 * S_DAY_MS});
    s_wait_delays (&t, "S-2", "carrier_estimate_late", got, sizeof got);
    assert_string_equal (got, "carrier_estimate_late");
    /* Asked again, the same estimate: said once. */
    rt_test_tracker_due (&t);
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_NOVA_POSHTA, 2, 10000));
    s_sleep_ms (500);
    s_delays (&t, "S-2", got, sizeof got);
    assert_string_equal (got, "carrier_estimate_late");
    rt_test_tracker_close (&t);
}

static void
test_stalled_and_not_at_the_branch (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char got[256];
    rt_fc_np_state_t moving = {.status_code = "5", .status = "Прямує до міста Львів."};
    rt_fc_np_state_t branch = {.status_code = "7",
                               .status = "Прибув на відділення",
                               .payed_keeping_ms = S_T0 + 10 * S_DAY_MS};

    s_world (&t, "tracker_stalled");
    rt_fake_carrier_np_set (t.fake, "20450000000003", &moving);
    rt_fake_carrier_np_set (t.fake, "20450000000004", &branch);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-3",
                                                   .order_id = "O-3",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000003",
                                                   .shipped_at = S_T0});
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-4",
                                                   .order_id = "O-4",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000004",
                                                   .shipped_at = S_T0});
    assert_true (rt_test_tracker_wait_tag (&t, "S-3", "InTransit", 15000));
    assert_true (rt_test_tracker_wait_tag (&t, "S-4", "AvailableForPickup", 15000));
    /* The carrier says the same thing for three days and more. */
    s_advance (&t, 3 * S_DAY_MS + 3600 * 1000);
    s_wait_delays (&t, "S-3", "stalled", got, sizeof got);
    assert_string_equal (got, "stalled");
    s_delays (&t, "S-4", got, sizeof got);
    assert_string_equal (got, "");
    rt_test_tracker_close (&t);
}

static void
test_storage_reminder_once_before_the_deadline (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char customer[RT_UUID_STR_LEN + 1];
    rt_fc_np_state_t branch = {.status_code = "7",
                               .status = "Прибув на відділення",
                               .payed_keeping_ms = S_T0 + 5 * S_DAY_MS};

    s_world (&t, "tracker_storage");
    rt_test_router_uuid (customer);
    rt_fake_carrier_np_set (t.fake, "20450000000005", &branch);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-5",
                                                   .order_id = "O-5",
                                                   .customer_id = customer,
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000005",
                                                   .shipped_at = S_T0});
    assert_true (rt_test_tracker_wait_tag (&t, "S-5", "AvailableForPickup", 15000));
    /* Shipped and at the branch so far. */
    assert_int_equal (
        rt_test_tracker_wait_published (&t, "NotificationRequested", customer, 2, 5000), 2);
    s_advance (&t, 3 * S_DAY_MS);
    s_sleep_ms (600);
    assert_int_equal (rt_test_tracker_published (&t, "NotificationRequested", customer), 2);
    /* Within a day of the end: the reminder, once. */
    s_advance (&t, S_DAY_MS + 3600 * 1000);
    assert_int_equal (
        rt_test_tracker_wait_published (&t, "NotificationRequested", customer, 3, 10000), 3);
    s_sleep_ms (800);
    assert_int_equal (rt_test_tracker_published (&t, "NotificationRequested", customer), 3);
    assert_int_equal (rt_test_pg_long (t.w.t.pg,
                                       "SELECT count(*) FROM tracking.shipments WHERE id = 'S-5'"
                                       " AND 'shipment_storage_reminder' = ANY (milestones)"),
                      1);
    rt_test_tracker_close (&t);
}

static void
test_thirty_days_without_news_expire (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char got[64];
    rt_fc_stats_t st;
    size_t calls;

    s_world (&t, "tracker_expire");
    /* The carrier never heard of it. */
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-6",
                                                   .order_id = "O-6",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000006",
                                                   .shipped_at = S_T0});
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_NOVA_POSHTA, 1, 15000));
    rt_test_tracker_col (&t, "S-6", "tag", got, sizeof got);
    assert_string_equal (got, "Pending");
    s_advance (&t, 30 * S_DAY_MS + 3600 * 1000);
    assert_true (rt_test_tracker_wait_tag (&t, "S-6", "Expired", 10000));
    rt_test_tracker_col (&t, "S-6", "final", got, sizeof got);
    assert_string_equal (got, "true");
    assert_int_equal (rt_test_tracker_wait_published (&t, "ShipmentStatusChanged", "S-6", 1, 5000),
                      1);
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    calls = st.calls;
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.shipments SET next_poll_at = 0");
    s_sleep_ms (800);
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, calls);
    rt_test_tracker_close (&t);
}

/* retain's own estimate: a lane whose deliveries took about three days
 * (learned: 40 of them, ln-hours mean ln 72, spread 0.2) and a parcel
 * promised in two: at risk at its first answer, said once, before the
 * carrier's own date says anything; its estimate kept with the spread.
 * Another parcel delivered teaches the lane and its fallbacks. */
static void
test_at_risk_before_the_carrier_says_so (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char got[256];
    rt_fc_np_state_t moving = {.status_code = "5",
                               .status = "Прямує до міста Львів.",
                               .city_sender = "Київ",
                               .city_recipient = "Львів"};
    rt_fc_np_state_t done = {.status_code = "9",
                             .status = "Відправлення отримано",
                             .city_sender = "Київ",
                             .city_recipient = "Львів",
                             .received_ms = S_T0 + 30 * 3600 * 1000LL};

    s_world (&t, "tracker_at_risk");
    /* n 40, mean ln(72 h), m2 = 0.04 * 39 (sd 0.2). */
    rt_test_pg_exec (t.w.t.pg, "INSERT INTO tracking.lanes (carrier, origin, destination, n, mean,"
                               " m2) VALUES ('nova_poshta', 'Київ', 'Львів', 40, ln(72), 1.56)");
    rt_fake_carrier_np_set (t.fake, "20450000000011", &moving);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-11",
                                                   .order_id = "O-11",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000011",
                                                   .origin_city = "Київ",
                                                   .destination_city = "Львів",
                                                   .shipped_at = S_T0,
                                                   .promised_by = S_T0 + 2 * S_DAY_MS});
    s_wait_delays (&t, "S-11", "at_risk", got, sizeof got);
    assert_string_equal (got, "at_risk");
    /* The expected date is about three days after shipping, the spread
     * around it; the chance of missing the promise near certainty. */
    rt_test_tracker_col (&t, "S-11", "round((est_at - shipped_at) / 3600000.0)", got, sizeof got);
    assert_true (atoi (got) >= 70 && atoi (got) <= 74);
    rt_test_tracker_col (&t, "S-11", "est_low < est_at AND est_at < est_high", got, sizeof got);
    assert_string_equal (got, "true");
    rt_test_tracker_col (&t, "S-11", "risk > 0.9", got, sizeof got);
    assert_string_equal (got, "true");
    rt_test_tracker_due (&t);
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_NOVA_POSHTA, 2, 10000));
    assert_true (rt_test_tracker_settled (&t, 5000));
    s_delays (&t, "S-11", got, sizeof got);
    assert_string_equal (got, "at_risk");

    /* A delivery 30 hours after shipping teaches the lane and both
     * fallbacks. */
    rt_fake_carrier_np_set (t.fake, "20450000000012", &done);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-12",
                                                   .order_id = "O-12",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "20450000000012",
                                                   .shipped_at = S_T0});
    assert_true (rt_test_tracker_wait_tag (&t, "S-12", "Delivered", 10000));
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT n FROM tracking.lanes WHERE origin ="
                                                 " 'Київ' AND destination = 'Львів'"),
                      41);
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT n FROM tracking.lanes WHERE origin = '*'"
                                                 " AND destination = 'Львів'"),
                      1);
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT round(exp(mean)) FROM tracking.lanes"
                                                 " WHERE origin = '*' AND destination = '*'"),
                      30);
    rt_test_tracker_close (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_promise_passed_is_said_once),
        cmocka_unit_test (test_carrier_estimate_past_the_promise),
        cmocka_unit_test (test_stalled_and_not_at_the_branch),
        cmocka_unit_test (test_storage_reminder_once_before_the_deadline),
        cmocka_unit_test (test_thirty_days_without_news_expire),
        cmocka_unit_test (test_at_risk_before_the_carrier_says_so),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
