/*
 * test_tracker_faults: what a carrier's bad day does to trackerd, against
 * the fake carrier.
 *
 *   - garbage, an HTML error page, truncated JSON, a 503 and a timeout:
 *     each a transient failure of the account (counted, backed off, no
 *     status lost), and the parcel's status arrives once the carrier
 *     answers again, exactly once;
 *   - a 429 with Retry-After: no call before the carrier's delay;
 *   - Nova Poshta refusing the key (success:false, 20000200068) and DHL
 *     answering 401: the account paused with the carrier's words in the
 *     log (an error) and the metrics, no call in a storm while paused, and
 *     polling again at once after `retainctl carrier resume`;
 *   - a UPS token revoked: dropped, a new one asked for, the parcel
 *     polled.
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

#define S_NUMBER "20450059800767"

static void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep (&ts, NULL);
}

static size_t
s_calls (rt_test_tracker_t *t, rt_fc_carrier_t c)
{
    rt_fc_stats_t st;
    rt_fake_carrier_stats (t->fake, c, &st);
    return st.calls;
}

static void
s_np_world (rt_test_tracker_t *t, const char *name)
{
    rt_fc_np_state_t st = {.status_code = "5", .status = "Відправлення прямує до міста Львів."};
    rt_test_tracker_open (t, name, 0);
    rt_test_trackerd_start (t, 0, NULL);
    rt_fake_carrier_account (t->fake, RT_FC_NOVA_POSHTA, "np-key-1", NULL);
    rt_test_tracker_account (t, "np-main", "nova_poshta", "np-key-1", NULL, 0, 0);
    rt_fake_carrier_np_set (t->fake, S_NUMBER, &st);
}

static void
test_transient_failures_back_off_and_lose_nothing (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    static const rt_fc_answer_t bad[] = {
        {.kind = RT_FC_GARBAGE},
        {.kind = RT_FC_HTML},
        {.kind = RT_FC_TRUNCATED},
        {.kind = RT_FC_SERVER_ERROR, .status = 503},
        {.kind = RT_FC_ERROR, .error = "20000100016"},
        /* Longer than the 2 s request timeout. */
        {.kind = RT_FC_STATE, .delay_ms = 3500},
    };
    const size_t n_bad = sizeof bad / sizeof bad[0];
    char got[64];

    s_np_world (&t, "tracker_transient");
    for (size_t i = 0; i < n_bad; i++)
        rt_fake_carrier_push (t.fake, RT_FC_NOVA_POSHTA, &bad[i]);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER});
    /* Six failures, each backed off (200 ms doubled, jittered, capped at
     * 2 s), then the answer. */
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 40000));
    assert_true (s_calls (&t, RT_FC_NOVA_POSHTA) >= n_bad + 1);
    assert_int_equal (rt_test_tracker_wait_published (&t, "ShipmentStatusChanged", "S-1", 1, 5000),
                      1);
    s_sleep_ms (300);
    assert_int_equal (rt_test_tracker_published (&t, "ShipmentStatusChanged", "S-1"), 1);
    assert_true (rt_test_metric (t.d[0].admin_port,
                                 "retain_tracker_calls_total{carrier=\"nova_poshta\","
                                 "verdict=\"retry\"}") >= (double)n_bad);
    /* Back to health: the failures in a row are forgotten. */
    rt_test_tracker_col (&t, "S-1", "(SELECT failures FROM tracking.accounts WHERE id = 'np-main')",
                         got, sizeof got);
    assert_string_equal (got, "0");
    rt_test_tracker_close (&t);
}

static void
test_rate_limit_waits_for_retry_after (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_fc_call_t first, second;

    s_np_world (&t, "tracker_retry_after");
    rt_fake_carrier_push (t.fake, RT_FC_NOVA_POSHTA,
                          &(rt_fc_answer_t){.kind = RT_FC_RATE_LIMIT, .retry_after_s = 2});
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER});
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 20000));
    assert_true (rt_fake_carrier_call (t.fake, RT_FC_NOVA_POSHTA, 0, &first));
    assert_true (rt_fake_carrier_call (t.fake, RT_FC_NOVA_POSHTA, 1, &second));
    assert_int_equal (first.status, 429);
    assert_true (second.arrival_us - first.arrival_us >= 1900000);
    rt_test_tracker_close (&t);
}

/* The account's paused_reason ("" when it is not paused). */
static void
s_paused (rt_test_tracker_t *t, const char *account, char *out, size_t outlen)
{
    char sql[160];
    snprintf (sql, sizeof sql,
              "SELECT COALESCE(paused_reason, '') FROM tracking.accounts WHERE id = '%s'", account);
    PGresult *r = PQexec (t->w.t.pg, sql);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    snprintf (out, outlen, "%s", PQntuples (r) ? PQgetvalue (r, 0, 0) : "");
    PQclear (r);
}

static void
s_wait_paused (rt_test_tracker_t *t, const char *account, char *out, size_t outlen)
{
    for (int i = 0; i < 500; i++) {
        s_paused (t, account, out, outlen);
        if (out[0])
            return;
        s_sleep_ms (20);
    }
}

static void
test_refused_key_pauses_without_a_storm (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char reason[512];
    size_t calls;
    char *log;
    rt_test_ctl_t ctl;

    s_np_world (&t, "tracker_pause");
    /* The account holds a key Nova Poshta does not know (revoked there). */
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET api_key = 'np-key-revoked'");
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER});
    s_wait_paused (&t, "np-main", reason, sizeof reason);
    assert_non_null (strstr (reason, "20000200068"));
    calls = s_calls (&t, RT_FC_NOVA_POSHTA);
    assert_int_equal (calls, 1);
    /* Paused is paused: parcels due, time passing, no call. */
    rt_test_tracker_due (&t);
    s_sleep_ms (1500);
    assert_int_equal (s_calls (&t, RT_FC_NOVA_POSHTA), calls);
    assert_int_equal (
        rt_test_metric (
            t.d[0].admin_port,
            "retain_tracker_accounts_paused_total{carrier=\"nova_poshta\",account=\"np-main\"}"),
        1);
    log = rt_test_log (t.d[0].log);
    assert_non_null (strstr (log, "\"level\":\"error\""));
    assert_non_null (strstr (log, "20000200068"));
    free (log);

    /* The operator mends the key and resumes: polled at once. */
    rt_test_pg_exec (t.w.t.pg, "UPDATE tracking.accounts SET api_key = 'np-key-1'");
    ctl = rt_test_retainctl_run (t.w.t.dsn, "carrier", "resume", "--id=np-main", NULL);
    rt_test_retainctl_expect (ctl, 0, "carrier resume", NULL, "resumed", NULL);
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 10000));
    s_paused (&t, "np-main", reason, sizeof reason);
    assert_string_equal (reason, "");
    rt_test_tracker_close (&t);
}

static void
test_dhl_401_pauses_the_account (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char reason[512];
    rt_fc_dhl_state_t st = {.service = "express", .status_code = "transit", .status = "In transit"};

    rt_test_tracker_open (&t, "tracker_dhl_401", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_DHL, "dhl-good", NULL);
    rt_test_tracker_account (&t, "dhl-main", "dhl", "dhl-bad", NULL, 0, 0);
    rt_fake_carrier_dhl_set (t.fake, "1234567890", &st);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "dhl",
                                                   .service = "express",
                                                   .tracking_number = "1234567890"});
    s_wait_paused (&t, "dhl-main", reason, sizeof reason);
    assert_true (reason[0] != '\0');
    rt_test_tracker_due (&t);
    s_sleep_ms (1000);
    assert_int_equal (s_calls (&t, RT_FC_DHL), 1);
    rt_test_tracker_close (&t);
}

static void
test_revoked_ups_token_is_renewed (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    rt_fc_ups_state_t st = {.type = "I", .code = "DP", .description = "Departed from Facility"};
    rt_fc_stats_t s;

    rt_test_tracker_open (&t, "tracker_ups_token", 0);
    rt_test_trackerd_start (&t, 0, NULL);
    rt_fake_carrier_account (t.fake, RT_FC_UPS, "ups-client", "ups-secret");
    rt_test_tracker_account (&t, "ups-main", "ups", "ups-client", "ups-secret", 0, 0);
    rt_fake_carrier_ups_set (t.fake, "1Z999AA10123456784", &st);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "ups",
                                                   .tracking_number = "1Z999AA10123456784"});
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 15000));
    rt_fake_carrier_stats (t.fake, RT_FC_UPS, &s);
    assert_int_equal (s.tokens_issued, 1);
    /* The cached token is used for the next poll, then revoked. */
    rt_fake_carrier_ups_revoke (t.fake, NULL);
    st = (rt_fc_ups_state_t){.type = "O", .code = "OT", .description = "Out For Delivery Today"};
    rt_fake_carrier_ups_set (t.fake, "1Z999AA10123456784", &st);
    rt_test_tracker_due (&t);
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "OutForDelivery", 15000));
    rt_fake_carrier_stats (t.fake, RT_FC_UPS, &s);
    assert_int_equal (s.tokens_issued, 2);
    rt_test_tracker_close (&t);
}

/* PostgreSQL away: /readyz is 503 and says why, nothing is lost; back,
 * ready again and the parcel's status arrives. */
static void
test_postgres_away_is_not_ready (void **state)
{
    (void)state;
    rt_test_tracker_t t;
    char body[512];
    long status = 0;

    s_np_world (&t, "tracker_pg_away");
    rt_test_db_refuse (t.w.t.dsn);
    for (int i = 0; i < 300; i++) {
        status = rt_test_http_get (t.d[0].admin_port, "/readyz", body, sizeof body);
        if (status == 503)
            break;
        s_sleep_ms (50);
    }
    assert_int_equal (status, 503);
    assert_non_null (strstr (body, "PostgreSQL"));
    rt_test_db_allow (t.w.t.dsn);
    assert_true (rt_test_wait_ready (t.d[0].admin_port, 30000));
    rt_test_tracker_reconnect (&t);
    rt_test_tracker_ship (&t, &(rt_test_shipped_t){.shipment_id = "S-1",
                                                   .order_id = "O-1",
                                                   .carrier = "nova_poshta",
                                                   .tracking_number = S_NUMBER});
    assert_true (rt_test_tracker_wait_tag (&t, "S-1", "InTransit", 30000));
    rt_test_tracker_close (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_transient_failures_back_off_and_lose_nothing),
        cmocka_unit_test (test_rate_limit_waits_for_retry_after),
        cmocka_unit_test (test_refused_key_pauses_without_a_storm),
        cmocka_unit_test (test_dhl_401_pauses_the_account),
        cmocka_unit_test (test_revoked_ups_token_is_renewed),
        cmocka_unit_test (test_postgres_away_is_not_ready),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
