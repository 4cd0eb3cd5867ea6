/*
 * retainctl carrier and shipment against a real trackerd, as a shop sets
 * it up: an account added, a parcel registered by hand and followed, its
 * status shown, the table of codes printed, a paused account listed and
 * resumed.
 *
 * What a user would notice: `carrier add` takes the documented limits for
 * DHL and refuses an unknown carrier naming the known ones, a carrier
 * without its credential, a bad URL; the key is never printed back; the
 * first account of a carrier is its default; adding an id again updates
 * it. `shipment add` refuses a number of the wrong form with the form
 * expected and writes nothing; a parcel added twice is one; trackerd polls
 * a parcel added by hand; `shipment show` says its status in the carrier's
 * words; `carrier codes` prints every code of a table. Every bad input
 * exits 2 with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "rt_test_tracker.h"

#define S_CTL(...)                   rt_test_retainctl_run (s_t.w.t.dsn, __VA_ARGS__)
#define S_EXPECT(r, want, what, ...) rt_test_retainctl_expect (r, want, what, NULL, __VA_ARGS__)

static rt_test_tracker_t s_t;

static int
s_setup (void **state)
{
    (void)state;
    rt_test_tracker_open (&s_t, "retainctl_tracker", 0);
    rt_test_trackerd_start (&s_t, 0, NULL);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_tracker_close (&s_t);
    return 0;
}

static void
test_carrier_accounts (void **state)
{
    (void)state;
    rt_test_ctl_t r;
    char *out = NULL;

    S_EXPECT (S_CTL ("carrier", "add", "--id=pigeon-1", "--carrier=pigeon", "--api-key=k", NULL), 2,
              "an unknown carrier", "\"pigeon\" is not a carrier trackerd knows",
              "nova_poshta, ukrposhta, meest, dhl, ups", NULL);
    S_EXPECT (S_CTL ("carrier", "add", "--id=np-x", "--carrier=nova_poshta", NULL), 2, "no key",
              "Nova Poshta needs --api-key", NULL);
    S_EXPECT (S_CTL ("carrier", "add", "--id=ups-x", "--carrier=ups", "--client-id=a", NULL), 2,
              "UPS without its secret", "--client-id and --client-secret", NULL);
    S_EXPECT (S_CTL ("carrier", "add", "--id=np-x", "--carrier=nova_poshta", "--api-key=k",
                     "--base-url=ftp://x", NULL),
              2, "a bad URL", "--base-url must be an http:// or https:// URL", NULL);
    S_EXPECT (S_CTL ("carrier", "add", "--id=Bad Id", "--carrier=nova_poshta", "--api-key=k", NULL),
              2, "a bad id", "--id", NULL);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.accounts"), 0);

    r = S_CTL ("carrier", "add", "--id=dhl-main", "--carrier=dhl", "--api-key=dhl-secret-key",
               NULL);
    rt_test_retainctl_expect (r, 0, "carrier add dhl", &out, "carrier account dhl-main added",
                              "the default", "calls 1000 ms apart at least", "250 a day at most",
                              "10 fetches of a parcel a day", NULL);
    assert_null (strstr (out, "dhl-secret-key"));
    free (out);
    /* A second account is not the default; --default moves it. */
    S_EXPECT (S_CTL ("carrier", "add", "--id=dhl-big", "--carrier=dhl", "--api-key=k2",
                     "--daily-quota=1000", NULL),
              0, "a second account", "carrier account dhl-big added", NULL);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.accounts"
                                                   " WHERE is_default AND id = 'dhl-main'"),
                      1);
    S_EXPECT (S_CTL ("carrier", "add", "--id=dhl-big", "--carrier=dhl", "--api-key=k3",
                     "--daily-quota=1000", "--default", NULL),
              0, "the default moved", "carrier account dhl-big updated", "the default", NULL);
    assert_int_equal (
        rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.accounts WHERE is_default"), 1);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT daily_quota FROM tracking.accounts"
                                                   " WHERE id = 'dhl-big'"),
                      1000);
    /* The same id for another carrier is refused, the account unchanged. */
    S_EXPECT (S_CTL ("carrier", "add", "--id=dhl-big", "--carrier=meest", "--api-key=k4", NULL), 1,
              "another carrier's id", "belongs to another carrier", NULL);

    r = S_CTL ("carrier", "list", "--json", NULL);
    rt_test_retainctl_expect (r, 0, "carrier list", &out, "\"id\":\"dhl-big\"", NULL);
    assert_null (strstr (out, "dhl-secret-key"));
    assert_null (strstr (out, "k3"));
    free (out);
    S_EXPECT (S_CTL ("carrier", "resume", "--id=nobody", NULL), 1, "resume of nobody",
              "no carrier account nobody", NULL);
    rt_test_pg_exec (s_t.w.t.pg, "UPDATE tracking.accounts SET paused_at = 1,"
                                 " paused_reason = '401: Unauthorized' WHERE id = 'dhl-big'");
    S_EXPECT (S_CTL ("carrier", "list", NULL), 0, "a paused account listed", "401: Unauthorized",
              NULL);
    S_EXPECT (S_CTL ("carrier", "resume", "--id=dhl-big", NULL), 0, "resume",
              "carrier account dhl-big resumed", NULL);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.accounts"
                                                   " WHERE paused_at IS NOT NULL"),
                      0);
}

static void
test_codes_table (void **state)
{
    (void)state;
    rt_test_ctl_t r = S_CTL ("carrier", "codes", "--carrier=nova_poshta", "--json", NULL);
    json_t *doc, *row;
    size_t i;
    bool delivered = false, pickup = false;
    assert_int_equal (r.status, 0);
    doc = json_loads (r.out, 0, NULL);
    assert_non_null (doc);
    json_array_foreach (doc, i, row)
    {
        const char *code = json_string_value (json_object_get (row, "code"));
        const char *tag = json_string_value (json_object_get (row, "tag"));
        assert_string_equal (json_string_value (json_object_get (row, "carrier")), "nova_poshta");
        if (strcmp (code, "9") == 0)
            delivered = strcmp (tag, "Delivered") == 0;
        if (strcmp (code, "7") == 0)
            pickup = strcmp (tag, "AvailableForPickup") == 0;
    }
    assert_true (delivered && pickup);
    /* Nova Poshta documents 1-12, 41, 101-106, 111, 112 and the legacy 14, 107, 108. */
    assert_true (json_array_size (doc) >= 24);
    json_decref (doc);
    free (r.out);
    S_EXPECT (S_CTL ("carrier", "codes", "--carrier=pigeon", NULL), 2, "codes of no carrier",
              "not a carrier trackerd knows", NULL);
    S_EXPECT (S_CTL ("carrier", "codes", NULL), 0, "every table", "ukrposhta", "41000", "dhl",
              "delivered", "ups", NULL);
}

static void
test_shipment_by_hand (void **state)
{
    (void)state;
    rt_fc_np_state_t st = {.status_code = "7",
                           .status = "Прибув на відділення",
                           .warehouse_recipient = "Відділення №5"};
    char got[64];

    rt_fake_carrier_account (s_t.fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    S_EXPECT (
        S_CTL ("carrier", "add", "--id=np-main", "--carrier=nova_poshta", "--api-key=np-key", NULL),
        0, "carrier add nova_poshta", "carrier account np-main added", NULL);
    S_EXPECT (S_CTL ("shipment", "add", "--carrier=nova_poshta", "--tracking-number=12345",
                     "--order-id=O-9", NULL),
              2, "a number of the wrong form", "refused", "14 digits", NULL);
    S_EXPECT (S_CTL ("shipment", "add", "--carrier=pigeon", "--tracking-number=12345", NULL), 2,
              "a carrier nobody knows", "refused", "pigeon", NULL);
    S_EXPECT (S_CTL ("shipment", "add", "--carrier=nova_poshta", "--tracking-number=20450059800767",
                     "--customer-id=not-a-uuid", NULL),
              2, "a customer id that is none", "--customer-id", NULL);
    S_EXPECT (S_CTL ("shipment", "add", "--carrier=nova_poshta", "--tracking-number=20450059800767",
                     "--promised-by=2026-02-30", NULL),
              2, "a date that is none", "--promised-by", NULL);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.shipments"), 0);

    rt_fake_carrier_np_set (s_t.fake, "20450059800767", &st);
    S_EXPECT (S_CTL ("shipment", "add", "--id=SH-9", "--carrier=nova_poshta",
                     "--tracking-number=2045 0059 8007 67", "--order-id=O-9",
                     "--promised-by=2026-12-24", NULL),
              0, "shipment add", "shipment SH-9 registered", NULL);
    S_EXPECT (S_CTL ("shipment", "add", "--id=SH-9b", "--carrier=nova_poshta",
                     "--tracking-number=20450059800767", NULL),
              0, "the same parcel again", "shipment SH-9 was registered before", NULL);
    assert_true (rt_test_tracker_wait_tag (&s_t, "SH-9", "AvailableForPickup", 15000));
    rt_test_tracker_col (&s_t, "SH-9", "tracking_number", got, sizeof got);
    assert_string_equal (got, "20450059800767");
    S_EXPECT (S_CTL ("shipment", "show", "--order-id=O-9", NULL), 0, "shipment show", "SH-9",
              "AvailableForPickup", "Прибув на відділення", "promised 2026-12-24", NULL);
    S_EXPECT (S_CTL ("shipment", "show", "--id=SH-0", NULL), 1, "show of nothing",
              "no shipment SH-0", NULL);
    S_EXPECT (S_CTL ("shipment", "show", NULL), 2, "show of what?", "give --id or --order-id",
              NULL);
}

static void
test_milestones (void **state)
{
    (void)state;
    S_EXPECT (S_CTL ("shipment", "milestones", NULL), 0, "the defaults", "Shipped",
              "shipment_shipped", "OutForDelivery", "StorageReminder", NULL);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.milestones"
                                                   " WHERE tag = 'InTransit' AND NOT enabled"),
                      1);
    S_EXPECT (S_CTL ("shipment", "milestones", "--tag=InTransit", "--on", NULL), 0, "turned on",
              "InTransit: template shipment_in_transit, on", "when it starts", NULL);
    S_EXPECT (S_CTL ("shipment", "milestones", "--tag=AttemptFail", NULL), 0, "a new moment",
              "AttemptFail: template shipment_attempt_fail, on", NULL);
    S_EXPECT (
        S_CTL ("shipment", "milestones", "--tag=Delivered", "--template=thanks_delivered", NULL), 0,
        "another template", "Delivered: template thanks_delivered, on", NULL);
    S_EXPECT (S_CTL ("shipment", "milestones", "--tag=Delivered", "--off", NULL), 0, "off",
              "Delivered: template thanks_delivered, off", NULL);
    S_EXPECT (S_CTL ("shipment", "milestones", "--tag=Teleported", NULL), 2, "no such moment",
              "is no moment", NULL);
    S_EXPECT (S_CTL ("shipment", "milestones", "--tag=Delivered", "--on", "--off", NULL), 2, "both",
              "--on or --off, not both", NULL);
    S_EXPECT (S_CTL ("shipment", "milestones", "--tag=Delivered", "--template=Bad-Name", NULL), 2,
              "a bad template name", "is no template name", NULL);
    S_EXPECT (S_CTL ("shipment", "milestones", "--on", NULL), 2, "no tag", "need --tag", NULL);
    assert_int_equal (rt_test_pg_long (s_t.w.t.pg, "SELECT count(*) FROM tracking.milestones"
                                                   " WHERE tag = 'Delivered' AND NOT enabled"
                                                   " AND template = 'thanks_delivered'"),
                      1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_carrier_accounts),
        cmocka_unit_test (test_codes_table),
        cmocka_unit_test (test_shipment_by_hand),
        cmocka_unit_test (test_milestones),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
