/*
 * The story of a parcel: the shop ships an order by Nova Poshta, and the
 * customer hears of it on Viber at each moment the shop chose, once.
 *
 * Real processes on a database of the story's own: retain-busd,
 * retain-trackerd and retain-notifyd. Nova Poshta is the fake carrier
 * (rt_test_fake_carrier), Viber the shared fake of the providers
 * (rt_test_fake_provider), where trackerd's and notifyd's API settings
 * point. The customer is in crm with a Viber identity and prefers Viber;
 * the shop's templates for the moments are in notify.templates. The shop
 * publishes OrderShipped; at the fake Nova Poshta the parcel goes in
 * transit, out for delivery, delivered. The fake Viber gets exactly three
 * messages for the customer, in order: shipped with the tracking link,
 * out for delivery, delivered. trackerd killed with SIGKILL and started
 * again after that sends nothing more, and neither does a replayed
 * OrderShipped.
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

#include <jansson.h>
#include <libpq-fe.h>

#include "rt_clock.h"
#include "rt_test_fake_provider.h"
#include "rt_test_router.h"
#include "rt_test_tracker.h"
#include "rt_uuid.h"

#define S_NUMBER "20450059800767"
#define S_VIBER  "vb-parcel-1"

static void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep (&ts, NULL);
}

/* The texts Viber got for the receiver, in order, joined by " | ". */
static size_t
s_viber_texts (rt_fake_provider_t *fake, char *out, size_t outlen)
{
    const rt_fake_request_t *got[16];
    size_t n = rt_fake_provider_sent (fake, RT_FAKE_VIBER, S_VIBER, got, 16), used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 16; i++) {
        json_error_t je;
        json_t *j = json_loads (got[i]->body, 0, &je);
        const char *text = json_string_value (json_object_get (j, "text"));
        used +=
            (size_t)snprintf (out + used, outlen - used, "%s%s", i ? " | " : "", text ? text : "?");
        json_decref (j);
    }
    return n;
}

static void
s_template (PGconn *pg, const char *name, const char *text)
{
    char *esc = PQescapeLiteral (pg, text, strlen (text));
    assert_non_null (esc);
    rt_test_router_sql (pg,
                        "INSERT INTO notify.templates (name, locale, variant, text, quiet_hours)"
                        " VALUES ('%s', 'uk', 'default', %s, false)",
                        name, esc);
    PQfreemem (esc);
}

static void
test_parcel_story (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_test_clientd_t notifyd = {0};
    rt_fake_provider_t *viber = rt_fake_provider_start ();
    char customer[RT_UUID_STR_LEN + 1], texts[2048], vb_api[256];
    const char *const nextra[] = {"--poll=20ms", "--sweep=200ms", vb_api, NULL};
    rt_fc_np_state_t st = {.status_code = "5",
                           .status = "Відправлення прямує до міста Львів.",
                           .city_sender = "Київ",
                           .city_recipient = "Львів"};
    rt_test_shipped_t shipped;
    size_t n;
    rt_uuid_t eid = rt_uuid_v7 ();
    char envelope[RT_UUID_STR_LEN + 1];

    /* The shop's event id, kept for its replay. */
    rt_uuid_format (&eid, envelope);
    snprintf (vb_api, sizeof vb_api, "--viber-api=%s", rt_fake_provider_base (viber));
    rt_test_tracker_open (&t, "story_parcel", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_test_clientd_start (&notifyd, "retain-notifyd", t.w.t.dsn, t.w.busd.pub, "", "n1",
                           "story_parcel-notifyd.log", nextra);
    /* The shop: its Viber account, its templates, its carrier account. */
    rt_test_router_sql (t.w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url,"
                        " token, account_id, sender, rate_per_s, burst) VALUES"
                        " ('vb-main', 'main', 'viber', 'viber', '%s', 'vbtoken', '', 'Shop', 50,"
                        " 10)",
                        rt_fake_provider_base (viber));
    s_template (t.w.t.pg, "shipment_shipped",
                "Замовлення {{order_id}} відправлено ({{carrier}}, {{tracking_number}}): "
                "{{tracking_url}}");
    s_template (t.w.t.pg, "shipment_out_for_delivery", "Кур'єр везе замовлення {{order_id}}");
    s_template (t.w.t.pg, "shipment_delivered", "Замовлення {{order_id}} отримано. Дякуємо!");
    rt_fake_carrier_account (t.fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    rt_test_tracker_account (&t, "np-main", "nova_poshta", "np-key", NULL, 0, 0);
    /* The customer, on Viber. */
    rt_test_router_uuid (customer);
    rt_test_router_sql (t.w.t.pg,
                        "INSERT INTO crm.customers (id, name, locale, preferred_channel)"
                        " VALUES ('%s', 'Олена', 'uk', 'viber')",
                        customer);
    rt_test_router_sql (t.w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " VALUES ('viber', 'main', '%s', '%s')",
                        S_VIBER, customer);

    rt_fake_carrier_np_set (t.fake, S_NUMBER, &st);
    shipped = (rt_test_shipped_t){.shipment_id = "SH-77",
                                  .order_id = "77",
                                  .customer_id = customer,
                                  .carrier = "nova_poshta",
                                  .tracking_number = S_NUMBER,
                                  .phone = "0958860454",
                                  .shipped_at = rt_clock_now_ms (),
                                  .envelope_id = envelope};
    rt_test_tracker_ship (&t, &shipped);
    assert_int_equal (rt_fake_provider_sent_wait (viber, RT_FAKE_VIBER, S_VIBER, 1, 20000, NULL, 0),
                      1);
    assert_true (rt_test_tracker_wait_tag (&t, "SH-77", "InTransit", 10000));

    st = (rt_fc_np_state_t){.status_code = "101", .status = "На шляху до одержувача"};
    rt_fake_carrier_np_set (t.fake, S_NUMBER, &st);
    rt_test_tracker_due (&t);
    assert_int_equal (rt_fake_provider_sent_wait (viber, RT_FAKE_VIBER, S_VIBER, 2, 20000, NULL, 0),
                      2);
    st = (rt_fc_np_state_t){.status_code = "9", .status = "Відправлення отримано"};
    rt_fake_carrier_np_set (t.fake, S_NUMBER, &st);
    rt_test_tracker_due (&t);
    assert_int_equal (rt_fake_provider_sent_wait (viber, RT_FAKE_VIBER, S_VIBER, 3, 20000, NULL, 0),
                      3);

    /* A crash and a replay say nothing more. */
    rt_test_trackerd_kill (&t, 0);
    rt_test_clientd_restart (&t.d[0]);
    rt_test_tracker_ship (&t, &shipped);
    shipped.envelope_id = NULL;
    rt_test_tracker_ship (&t, &shipped);
    s_sleep_ms (2000);
    n = s_viber_texts (viber, texts, sizeof texts);
    assert_int_equal (n, 3);
    assert_non_null (strstr (texts, "Замовлення 77 відправлено (Nova Poshta, " S_NUMBER
                                    "): https://shop.example/t/"));
    assert_non_null (strstr (texts, " | Кур'єр везе замовлення 77 | "));
    assert_non_null (strstr (texts, " | Замовлення 77 отримано. Дякуємо!"));

    rt_test_clientd_stop (&notifyd);
    rt_test_tracker_close (&t);
    rt_fake_provider_stop (&viber);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_parcel_story),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
