/*
 * test_tracker_poll: a parcel followed with its carrier as the shop and the
 * customer see it, against a real trackerd, busd and PostgreSQL and the
 * fake carrier.
 *
 *   - a Nova Poshta parcel shipped, in transit, out for delivery and
 *     delivered: one ShipmentStatusChanged per change of tag and none for
 *     an answer that changed nothing; the shipped, out-for-delivery and
 *     delivered messages asked of notifyd once each, the first with the
 *     tracking link; every status kept as an event; no poll after the
 *     final tag;
 *   - an OrderShipped repeated (another envelope, the same parcel) makes
 *     one shipment and one "shipped" message;
 *   - an unknown carrier and a tracking number of the wrong format are
 *     refused with their reason in the log and a metric, and nothing is
 *     registered;
 *   - a status code not in the carrier's table is kept raw, counted and
 *     logged, the tag left as it was.
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

#include "rt_clock.h"
#include "rt_test_router.h"
#include "rt_test_tracker.h"
#include "retain/v1/notification.pb-c.h"
#include "retain/v1/shipment.pb-c.h"

#define S_NUMBER "20450059800767"
#define S_PHONE  "380958860454"

static int64_t
s_now (void)
{
    return rt_clock_now_ms ();
}

/* The templates of the NotificationRequested trackerd published for the
 * customer, in order, joined by ','; and the tracking_url of the first. */
static void
s_templates (rt_test_tracker_t *t, const char *customer, char *out, size_t outlen, char *url,
             size_t urllen)
{
    const char *v[1] = {customer};
    PGresult *r = PQexecParams (t->w.t.pg,
                                "SELECT payload FROM bus.events WHERE producer = 'retain-trackerd'"
                                " AND type = 'NotificationRequested' AND key = $1 ORDER BY seq",
                                1, NULL, v, NULL, NULL, 1);
    size_t n = 0;
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    out[0] = '\0';
    if (url)
        url[0] = '\0';
    for (int i = 0; i < PQntuples (r); i++) {
        Retain__V1__NotificationRequested *m = retain__v1__notification_requested__unpack (
            NULL, (size_t)PQgetlength (r, i, 0), (const uint8_t *)PQgetvalue (r, i, 0));
        assert_non_null (m);
        n += (size_t)snprintf (out + n, outlen - n, "%s%s", i ? "," : "", m->template_);
        assert_string_equal (m->category, "transactional");
        for (size_t k = 0; url && i == 0 && k < m->n_variables; k++) {
            if (strcmp (m->variables[k]->key, "tracking_url") == 0)
                snprintf (url, urllen, "%s", m->variables[k]->value);
        }
        retain__v1__notification_requested__free_unpacked (m, NULL);
    }
    PQclear (r);
}

/* The tags of the ShipmentStatusChanged published for a shipment, in
 * order: "Pending>InTransit,InTransit>OutForDelivery". */
static void
s_changes (rt_test_tracker_t *t, const char *shipment, char *out, size_t outlen)
{
    const char *v[1] = {shipment};
    PGresult *r = PQexecParams (t->w.t.pg,
                                "SELECT payload FROM bus.events WHERE producer = 'retain-trackerd'"
                                " AND type = 'ShipmentStatusChanged' AND key = $1 ORDER BY seq",
                                1, NULL, v, NULL, NULL, 1);
    size_t n = 0;
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    out[0] = '\0';
    for (int i = 0; i < PQntuples (r); i++) {
        Retain__V1__ShipmentStatusChanged *m = retain__v1__shipment_status_changed__unpack (
            NULL, (size_t)PQgetlength (r, i, 0), (const uint8_t *)PQgetvalue (r, i, 0));
        assert_non_null (m);
        n += (size_t)snprintf (out + n, outlen - n, "%s%s>%s", i ? "," : "", m->previous_tag,
                               m->tag);
        retain__v1__shipment_status_changed__free_unpacked (m, NULL);
    }
    PQclear (r);
}

static void
s_np (rt_test_tracker_t *t, const char *number, const char *code, const char *words)
{
    rt_fc_np_state_t st = {.status_code = code,
                           .status = words,
                           .city_sender = "Київ",
                           .city_recipient = "Львів",
                           .warehouse_recipient = "Відділення №1",
                           .phone_recipient = S_PHONE};
    rt_fake_carrier_np_set (t->fake, number, &st);
}

/* Makes the parcels due and waits for the fake to be asked once more. */
static void
s_poll_again (rt_test_tracker_t *t)
{
    rt_fc_stats_t st;
    rt_fake_carrier_stats (t->fake, RT_FC_NOVA_POSHTA, &st);
    rt_test_tracker_due (t);
    assert_true (rt_fake_carrier_wait (t->fake, RT_FC_NOVA_POSHTA, st.calls + 1, 10000));
}

static void
s_world (rt_test_tracker_t *t, const char *name)
{
    rt_test_tracker_open (t, name, 0);
    rt_test_trackerd_start (t, 0, NULL);
    rt_fake_carrier_account (t->fake, RT_FC_NOVA_POSHTA, "np-key-1", NULL);
    rt_test_tracker_account (t, "np-main", "nova_poshta", "np-key-1", NULL, 0, 0);
}

static void
test_journey_speaks_at_each_milestone_once (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char customer[RT_UUID_STR_LEN + 1], got[512], url[512];
    long long calls_at_end;
    rt_fc_stats_t st;

    s_world (&t, "tracker_journey");
    rt_test_router_uuid (customer);
    s_np (&t, S_NUMBER, "5", "Відправлення прямує до міста Львів.");
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .customer_id = customer,
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER,
                                                   .phone = "+380 95 886 04 54",
                                                   .shipped_at = s_now ()});
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 15000));
    assert_int_equal (rt_test_tracker_wait_published (&t, "ShipmentStatusChanged", "S-1", 1, 5000),
                      1);
    rt_test_tracker_col (&t, "S-1", "raw_text", got, sizeof got);
    assert_string_equal (got, "Відправлення прямує до міста Львів.");
    /* The phone went to Nova Poshta as its digits: the full record. */
    rt_test_tracker_col (&t, "S-1", "phone", got, sizeof got);
    assert_string_equal (got, S_PHONE);

    /* An answer that changes nothing says nothing. */
    s_poll_again (&t);
    s_poll_again (&t);
    assert_int_equal (rt_test_tracker_published (&t, "ShipmentStatusChanged", "S-1"), 1);

    s_np (&t, S_NUMBER, "101", "На шляху до одержувача");
    s_poll_again (&t);
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "OutForDelivery", 10000));
    s_np (&t, S_NUMBER, "9", "Відправлення отримано");
    s_poll_again (&t);
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "Delivered", 10000));
    rt_test_tracker_col (&t, "S-1", "final", got, sizeof got);
    assert_string_equal (got, "true");

    assert_int_equal (rt_test_tracker_wait_published (&t, "ShipmentStatusChanged", "S-1", 3, 5000),
                      3);
    s_changes (&t, "S-1", got, sizeof got);
    assert_string_equal (got,
                         "Pending>InTransit,InTransit>OutForDelivery,OutForDelivery>Delivered");
    assert_int_equal (
        rt_test_tracker_wait_published (&t, "NotificationRequested", customer, 3, 5000), 3);
    s_templates (&t, customer, got, sizeof got, url, sizeof url);
    assert_string_equal (got, "shipment_shipped,shipment_out_for_delivery,shipment_delivered");
    assert_true (strncmp (url, "https://shop.example/t/", 23) == 0 && strlen (url) > 40);
    /* Every status the carrier gave is in the history. */
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(DISTINCT code) FROM tracking.events"
                                                 " WHERE shipment_id = 'S-1'"),
                      3);

    /* A delivered parcel is asked about no more. */
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    calls_at_end = (long long)st.calls;
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.shipments SET next_poll_at = 0");
    struct timespec ts = {1, 0};
    nanosleep (&ts, NULL);
    rt_fake_carrier_stats (t.fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal ((long long)st.calls, calls_at_end);
    rt_test_tracker_close (&t);
}

static void
test_repeated_order_shipped_is_one_parcel (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char customer[RT_UUID_STR_LEN + 1], got[256];
    rt_test_shipped_t s;

    s_world (&t, "tracker_repeat");
    rt_test_router_uuid (customer);
    s_np (&t, S_NUMBER, "4", "Відправлення у місті Київ.");
    s = (rt_test_shipped_t){.shipment_id = "S-2",
                            .order_id = "O-2",
                            .customer_id = customer,
                            .carrier = "nova_poshta",
                            .tracking_number = S_NUMBER,
                            .shipped_at = s_now ()};
    rt_test_tracker_ship (&t, &s);
    rt_test_tracker_ship (&t, &s);
    /* The same parcel under another shipment id is the same parcel. */
    s.shipment_id = "S-2-again";
    rt_test_tracker_ship (&t, &s);
    assert_true (rt_test_tracker_wait_tag (&t, "S-2", "InTransit", 15000));
    assert_true (rt_test_metric (t.d[0].admin_port, "retain_tracker_known_total") >= 2);
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments"), 1);
    assert_int_equal (rt_test_tracker_published (&t, "NotificationRequested", customer), 1);
    s_templates (&t, customer, got, sizeof got, NULL, 0);
    assert_string_equal (got, "shipment_shipped");
    rt_test_tracker_close (&t);
}

static void
test_bad_registrations_are_refused_with_reason (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char *log;
    s_world (&t, "tracker_refused");
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.order_id = "O-3",
                                                   .carrier = "pigeon_post",
                                                   .tracking_number = S_NUMBER});
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.order_id = "O-4",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = "12345"});
    {
        /* A customer id no index could hold (the envelope's key, the
         * order id, busd bounds itself). */
        static char huge[4000];
        memset (huge, 'x', sizeof huge - 1);
        rt_test_tracker_ship (&t, &(rt_test_shipped_t){.order_id = "O-huge",
                                                       .customer_id = huge,
                                                       .carrier = "nova_poshta",
                                                       .tracking_number = "20450000000077"});
    }
    /* A good one after them proves the stream went on. */
    s_np (&t, S_NUMBER, "1", "Відправник самостійно створив цю накладну");
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-5",
                                                   .order_id = "O-5",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER});
    assert_true (rt_test_tracker_wait_tag (&t, "S-5", "InfoReceived", 15000));
    assert_int_equal (rt_test_pg_long (t.w.t.pg, "SELECT count(*) FROM tracking.shipments"), 1);
    assert_int_equal (rt_test_metric (t.d[0].admin_port,
                                      "retain_tracker_refused_total{reason=\"unknown_carrier\"}"),
                      1);
    assert_int_equal (
        rt_test_metric (t.d[0].admin_port, "retain_tracker_refused_total{reason=\"invalid\"}"), 2);
    log = rt_test_log (t.d[0].log);
    assert_non_null (strstr (log, "pigeon_post"));
    assert_non_null (strstr (log, "12345"));
    assert_non_null (strstr (log, "the customer id is longer than 256 bytes"));
    free (log);
    rt_test_tracker_close (&t);
}

static void
test_unknown_code_is_kept_raw_and_counted (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char got[128];
    s_world (&t, "tracker_unknown_code");
    s_np (&t, S_NUMBER, "5", "Відправлення прямує до міста Львів.");
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-6",
                                                   .order_id = "O-6",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER});
    assert_true (rt_test_tracker_wait_tag (&t, "S-6", "InTransit", 15000));
    s_np (&t, S_NUMBER, "977", "Новий статус, якого немає в таблиці");
    s_poll_again (&t);
    for (int i = 0; i < 200; i++) {
        rt_test_tracker_col (&t, "S-6", "raw_code", got, sizeof got);
        if (strcmp (got, "977") == 0)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep (&ts, NULL);
    }
    assert_string_equal (got, "977");
    rt_test_tracker_col (&t, "S-6", "tag", got, sizeof got);
    assert_string_equal (got, "InTransit");
    assert_int_equal (
        rt_test_metric (t.d[0].admin_port,
                        "retain_tracker_unknown_codes_total{carrier=\"nova_poshta\"}"),
        1);
    assert_int_equal (rt_test_tracker_published (&t, "ShipmentStatusChanged", "S-6"), 1);
    rt_test_tracker_close (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_journey_speaks_at_each_milestone_once),
        cmocka_unit_test (test_repeated_order_shipped_is_one_parcel),
        cmocka_unit_test (test_bad_registrations_are_refused_with_reason),
        cmocka_unit_test (test_unknown_code_is_kept_raw_and_counted),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
