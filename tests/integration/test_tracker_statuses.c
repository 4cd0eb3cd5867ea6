/*
 * test_tracker_statuses: every status Nova Poshta documents (the
 * StatusCode table of ../shared/reference/providers.md 1.1, legacy codes
 * included) and the Ukrposhta events it lists, each answered by the fake
 * carrier for a parcel of its own, land in trackerd as the tag the
 * documentation's normalisation names (providers.md 1.6's mapping for
 * Nova Poshta), written here from the documentation and not read from the
 * adapters' tables; a final one stops polling, and a return goes back to
 * the sender.
 *
 * One trackerd, one call per batch: 24 Nova Poshta parcels in one call,
 * the Ukrposhta ones in another. Also DHL's per-parcel day: a parcel
 * fetched no more than the account allows a day, however often it is
 * made due.
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

#include "rt_test_tracker.h"

/* A documented status and the tag it means. */
typedef struct {
    const char *code;
    const char *tag;
    bool final;
    bool to_sender;
} s_doc_t;

/* providers.md 1.1's table, normalised as 1.6 suggests: 1/12 InfoReceived,
 * 4/41/5/6/104/112 InTransit, 101 OutForDelivery, 7/8/14 and the legacy
 * 107 AvailableForPickup, 9/10/11 Delivered, 111 AttemptFail, 102/103/108
 * refused, 105 going back, 106 Delivered, 2 cancelled. Code 3, "not
 * found", is no status: the parcel stays Pending. */
static const s_doc_t s_np[] = {
    {"1", "InfoReceived", false, false},
    {"2", "Exception", false, false},
    {"3", "Pending", false, false},
    {"4", "InTransit", false, false},
    {"41", "InTransit", false, false},
    {"5", "InTransit", false, false},
    {"6", "InTransit", false, false},
    {"7", "AvailableForPickup", false, false},
    {"8", "AvailableForPickup", false, false},
    {"9", "Delivered", true, false},
    {"10", "Delivered", true, false},
    {"11", "Delivered", true, false},
    {"12", "InfoReceived", false, false},
    {"14", "AvailableForPickup", false, false},
    {"101", "OutForDelivery", false, false},
    {"102", "Exception", false, true},
    {"103", "Exception", false, true},
    {"104", "InTransit", false, false},
    {"105", "Exception", false, true},
    {"106", "Delivered", true, false},
    {"107", "AvailableForPickup", false, false},
    {"108", "Exception", false, true},
    {"111", "AttemptFail", false, false},
    {"112", "InTransit", false, false},
};

/* providers.md 1.2's events (accepted at the post office: the carrier has
 * it, AfterShip's acceptance scan is in transit; sorting, at the office,
 * delivered; 41000 with eventReason_id 10 is returned to the sender). */
static const struct {
    int event;
    int reason_id;
    const char *tag;
    bool final;
} s_up[] = {
    {10100, 0, "InTransit", false},          {20800, 0, "InTransit", false},
    {21700, 0, "AvailableForPickup", false}, {41000, 0, "Delivered", true},
    {41000, 10, "Exception", false},
};

static void
test_every_documented_status (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    const size_t n_np = sizeof s_np / sizeof s_np[0], n_up = sizeof s_up / sizeof s_up[0];
    rt_fc_stats_t st;

    rt_test_tracker_open (&t, "tracker_statuses", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    rt_fake_carrier_account (t.fake, RT_FC_UKRPOSHTA, "up-bearer", NULL);
    rt_test_tracker_account (&t, "np-main", "nova_poshta", "np-key", NULL, 0, 0);
    rt_test_tracker_account (&t, "up-main", "ukrposhta", "up-bearer", NULL, 0, 0);
    /* Held while the parcels are registered, so each carrier is asked once. */
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET paused_at = 0,"
                               " paused_reason = 'held by the test'");
    for (size_t i = 0; i < n_np; i++) {
        char number[16], id[16];
        snprintf (number, sizeof number, "204500000001%02zu", i);
        snprintf (id, sizeof id, "NP-%s", s_np[i].code);
        if (strcmp (s_np[i].code, "3") != 0)
            rt_fake_carrier_np_set (
                t.fake, number,
                &(rt_fc_np_state_t){.status_code = s_np[i].code, .status = "documented status"});
        rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = id,
                                                       .order_id = id,
                                                       .carrier = "nova_poshta",
                                                       .tracking_number = number});
    }
    for (size_t i = 0; i < n_up; i++) {
        /* Domestic 13-digit barcodes. */
        char number[16], id[24];
        snprintf (number, sizeof number, "05035123456%02zu", i);
        snprintf (id, sizeof id, "UP-%d-%d", s_up[i].event, s_up[i].reason_id);
        rt_fake_carrier_ukrposhta_set (
            t.fake, number,
            &(rt_fc_ukrposhta_state_t){.event = s_up[i].event,
                                       .event_name = "documented",
                                       .event_reason_id = s_up[i].reason_id});
        rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = id,
                                                       .order_id = id,
                                                       .carrier = "ukrposhta",
                                                       .tracking_number = number});
    }
    assert_int_equal (rt_test_pg_wait_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments",
                                            (long long)(n_np + n_up), 20000),
                      (long long)(n_np + n_up));
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET paused_at = NULL,"
                               " paused_reason = NULL");
    assert_true (rt_test_tracker_settled (&t, 1000));
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_NOVA_POSHTA, 1, 15000));
    assert_true (rt_fake_carrier_wait (t.fake, RT_FC_UKRPOSHTA, 1, 15000));
    assert_true (rt_test_tracker_settled (&t, 10000));
    for (size_t i = 0; i < n_np; i++) {
        char id[16], got[64];
        snprintf (id, sizeof id, "NP-%s", s_np[i].code);
        rt_test_tracker_col (&t, id, "tag", got, sizeof got);
        if (strcmp (got, s_np[i].tag) != 0)
            fail_msg ("Nova Poshta %s: tag %s, documented %s", s_np[i].code, got, s_np[i].tag);
        rt_test_tracker_col (&t, id, "final", got, sizeof got);
        assert_string_equal (got, s_np[i].final ? "true" : "false");
        rt_test_tracker_col (&t, id, "to_sender", got, sizeof got);
        if (strcmp (got, s_np[i].to_sender ? "true" : "false") != 0)
            fail_msg ("Nova Poshta %s: to_sender %s", s_np[i].code, got);
        /* "Not found" is no status: nothing is kept of it but the count. */
        rt_test_tracker_col (&t, id, strcmp (s_np[i].code, "3") == 0 ? "not_found" : "raw_code",
                             got, sizeof got);
        assert_string_equal (got, strcmp (s_np[i].code, "3") == 0 ? "1" : s_np[i].code);
    }
    for (size_t i = 0; i < n_up; i++) {
        char id[24], got[64];
        snprintf (id, sizeof id, "UP-%d-%d", s_up[i].event, s_up[i].reason_id);
        rt_test_tracker_col (&t, id, "tag", got, sizeof got);
        if (strcmp (got, s_up[i].tag) != 0)
            fail_msg ("Ukrposhta %d/%d: tag %s, documented %s", s_up[i].event, s_up[i].reason_id,
                      got, s_up[i].tag);
        rt_test_tracker_col (&t, id, "final", got, sizeof got);
        assert_string_equal (got, s_up[i].final ? "true" : "false");
    }
    {
        char got[8];
        rt_test_tracker_col (&t, "UP-41000-10", "to_sender", got, sizeof got);
        assert_string_equal (got, "true");
    }
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, 1);
    assert_int_equal (st.documents, n_np);
    rt_fake_carrier_stats (t.fake, RT_FC_UKRPOSHTA, &st);
    assert_int_equal (st.calls, 1);
    rt_test_tracker_close (&t);
}

static void
test_dhl_fetches_of_a_parcel_a_day (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_fc_dhl_state_t st = {.service = "express", .status_code = "transit", .status = "In transit"};

    rt_test_tracker_open (&t, "tracker_per_parcel", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_DHL, "dhl-key", NULL);
    rt_fake_carrier_limits (t.fake, RT_FC_DHL, &(rt_fc_limits_t){.parcel_daily_max = 3});
    rt_test_tracker_account (&t, "dhl-main", "dhl", "dhl-key", NULL, 0, 0);
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET per_parcel_day = 3");
    rt_fake_carrier_dhl_set (t.fake, "1234567890", &st);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "dhl",
                                                   .service = "express",
                                                   .tracking_number = "1234567890"});
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 15000));
    /* Made due again and again: three fetches that day, no more. */
    for (int i = 0; i < 6; i++) {
        rt_test_tracker_due (&t);
        rt_fake_carrier_wait (t.fake, RT_FC_DHL, (size_t)i + 2, 1000);
    }
    assert_int_equal (rt_fake_carrier_fetches (t.fake, RT_FC_DHL, "1234567890"), 3);
    {
        rt_fc_stats_t s;
        rt_fake_carrier_stats (t.fake, RT_FC_DHL, &s);
        assert_int_equal (s.over_fetches, 0);
    }
    rt_test_tracker_close (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_documented_status),
        cmocka_unit_test (test_dhl_fetches_of_a_parcel_a_day),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
