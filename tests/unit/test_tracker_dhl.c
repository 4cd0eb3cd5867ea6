/*
 * test_tracker_dhl: DHL's adapter (services/tracker/carriers/dhl.c)
 * against providers.md 1.4.
 *
 * What a shop notices: the Shipment Tracking - Unified call with its key
 * as a header and every query value escaped; the shipment of the parcel's
 * own service picked out of the answer (never another service's shipment
 * of the same number); its status, its lane, DHL's estimate and its
 * history oldest first, times with their offsets read right; no shipment
 * as "not found", a refused key stopping the account, a quota waiting
 * for Retry-After. Fixtures: tests/fixtures/tracker/dhl/.
 */
#include "tracker_test.h"

static const carrier_t *
s_dhl (void)
{
    const carrier_t *c = carrier_find ("dhl");
    assert_non_null (c);
    return c;
}

static const carrier_account_t s_account = {
    .base_url = "http://dhl.test/",
    .api_key = "demo-key-Qw3rTy",
    .language = "en",
};

static void
test_number_check (void **state)
{
    (void)state;
    char why[256];
    static const char *const good[] = {"1234567890", "JJD000390007882799", "00340434292135100186",
                                       "GM2951173225174494",
                                       "123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (s_dhl ()->number_check (good[i], why, sizeof why) != 0)
            fail_msg ("%s refused: %s", good[i], why);
    static const char *const bad[] = {"",
                                      "123456789",
                                      "1234567890123456789012345678901234567890",
                                      "12345-67890",
                                      "1234567890 ",
                                      "JJD00039000788279\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (s_dhl ()->number_check (bad[i], why, sizeof why) == 0)
            fail_msg ("\"%s\" accepted", bad[i]);
        assert_non_null (strstr (why, "10 to 39"));
    }
    assert_int_equal (s_dhl ()->number_check (NULL, why, sizeof why), -1);
}

static void
test_request (void **state)
{
    (void)state;
    char err[256] = "";
    carrier_request_t req;
    carrier_query_t q = {.tracking_number = "00340434292135100186", .service = "parcel-de"};
    memset (&req, 0x5a, sizeof req);
    if (s_dhl ()->build (&s_account, &q, 1, &req, err, sizeof err) != 0)
        fail_msg ("refused: %s", err);
    assert_string_equal (req.method, "GET");
    assert_string_equal (req.url, "http://dhl.test/track/shipments?trackingNumber="
                                  "00340434292135100186&service=parcel-de&language=en");
    assert_string_equal (req.log_url, req.url);
    tt_no_secret_logged (&req, s_account.api_key);
    assert_string_equal (tt_header (&req, "DHL-API-Key"), "demo-key-Qw3rTy");
    assert_null (req.body);
    rt_http_outreq_free (&req);

    /* Without a service or a language, only the number. */
    carrier_account_t plain = s_account;
    plain.language = NULL;
    q.service = NULL;
    assert_int_equal (s_dhl ()->build (&plain, &q, 1, &req, err, sizeof err), 0);
    assert_string_equal (req.url,
                         "http://dhl.test/track/shipments?trackingNumber=00340434292135100186");
    rt_http_outreq_free (&req);

    /* Every value escaped: a query cannot be bent into another. */
    q = (carrier_query_t){.tracking_number = "AB CD/12?x", .service = "a&b=c"};
    assert_int_equal (s_dhl ()->build (&plain, &q, 1, &req, err, sizeof err), 0);
    assert_string_equal (req.url, "http://dhl.test/track/shipments?trackingNumber=AB%20CD%2F12%3Fx"
                                  "&service=a%26b%3Dc");
    rt_http_outreq_free (&req);

    carrier_query_t two[] = {q, q};
    assert_int_equal (s_dhl ()->build (&s_account, two, 2, &req, err, sizeof err), -1);
    carrier_account_t no_key = {.base_url = s_account.base_url};
    assert_int_equal (s_dhl ()->build (&no_key, &q, 1, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "API key"));
    assert_null (req.url);
}

static void
test_service_picked (void **state)
{
    (void)state;
    /* The number on two services: the parcel's own is parcel-de. */
    carrier_query_t q = {.tracking_number = "00340434292135100186", .service = "parcel-de"};
    carrier_answer_t a = tt_parse_fixture (s_dhl (), &q, 1, 200, -1, "shipments_two_services.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "parcel-de");
    const carrier_result_t *r = &a.results[0];
    tt_expect_status (r, "transit", TAG_IN_TRANSIT, "InTransit_001", false);
    assert_string_equal (r->raw_text, "The shipment has been processed in the parcel center");
    assert_string_equal (r->location, "Leipzig, Germany");
    assert_string_equal (r->origin_city, "Bonn, Germany");
    assert_string_equal (r->destination_city, "Lviv, Ukraine");
    tt_expect_ms (r->status_at_ms, tt_utc (2026, 7, 2, 12, 35, 0), "14:35+02:00");
    tt_expect_ms (r->estimated_ms, tt_utc (2026, 7, 6, 15, 0, 0), "estimate 18:00+03:00");
    tt_expect_ms (r->delivered_ms, 0, "not delivered");
    /* DHL lists newest first; retain keeps oldest first. */
    assert_int_equal (r->n_events, 3);
    assert_string_equal (r->events[0].code, "pre-transit");
    assert_string_equal (r->events[0].location, "");
    tt_expect_ms (r->events[0].at_ms, tt_utc (2026, 7, 1, 10, 0, 0), "event 0, Z");
    assert_string_equal (r->events[1].code, "transit");
    assert_string_equal (r->events[1].text, "The shipment has been picked up");
    assert_string_equal (r->events[1].location, "Bonn, Germany");
    tt_expect_ms (r->events[1].at_ms, tt_utc (2026, 7, 1, 17, 10, 0), "event 1");
    assert_string_equal (r->events[2].location, "Leipzig, Germany");
    tt_expect_ms (r->events[2].at_ms, tt_utc (2026, 7, 2, 12, 35, 0), "event 2");
    carrier_answer_free (&a);

    /* Asked as express, the express shipment; without a service, the
     * first; on a service the answer lacks, not this parcel. */
    q.service = "express";
    a = tt_parse_fixture (s_dhl (), &q, 1, 200, -1, "shipments_two_services.json");
    tt_expect_status (&a.results[0], "delivered", TAG_DELIVERED, "Delivered_001", false);
    assert_string_equal (a.results[0].destination_city, "Berlin");
    tt_expect_ms (a.results[0].delivered_ms, tt_utc (2026, 6, 20, 6, 0, 0), "no POD: the status");
    carrier_answer_free (&a);
    q.service = NULL;
    a = tt_parse_fixture (s_dhl (), &q, 1, 200, -1, "shipments_two_services.json");
    assert_string_equal (a.results[0].raw_code, "delivered");
    carrier_answer_free (&a);
    q.service = "ecommerce";
    a = tt_parse_fixture (s_dhl (), &q, 1, 200, -1, "shipments_two_services.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "ecommerce");
    assert_false (a.results[0].found);
    carrier_answer_free (&a);
}

static void
test_delivered_and_failure (void **state)
{
    (void)state;
    carrier_query_t q = {.tracking_number = "1234567890", .service = "express"};
    carrier_answer_t a = tt_parse_fixture (s_dhl (), &q, 1, 200, -1, "shipment_delivered.json");
    const carrier_result_t *r = &a.results[0];
    tt_expect_status (r, "delivered", TAG_DELIVERED, "Delivered_001", false);
    /* An Express checkpoint without an offset is read as UTC. */
    tt_expect_ms (r->status_at_ms, tt_utc (2026, 7, 3, 11, 45, 0), "no offset");
    /* The proof of delivery's time, with its offset and milliseconds. */
    tt_expect_ms (r->delivered_ms, tt_utc (2026, 7, 3, 8, 45, 10) + 500, "proofOfDelivery");
    assert_string_equal (r->origin_city, "SHANGHAI - CHINA MAINLAND");
    assert_string_equal (r->destination_city, "KYIV - UKRAINE");
    assert_int_equal (r->n_events, 2);
    assert_string_equal (r->events[0].text, "With delivery courier");
    assert_string_equal (r->events[1].code, "delivered");
    tt_expect_ms (r->estimated_ms, 0, "no estimate");
    carrier_answer_free (&a);

    /* failure, with events not an array: the status still stands. */
    q.service = "parcel-de";
    a = tt_parse_fixture (s_dhl (), &q, 1, 200, -1, "shipment_failure.json");
    tt_expect_status (&a.results[0], "failure", TAG_EXCEPTION, "Exception_001", false);
    assert_int_equal (a.results[0].n_events, 0);
    carrier_answer_free (&a);
}

static void
test_errors (void **state)
{
    (void)state;
    carrier_query_t q = {.tracking_number = "1234567890"};
    carrier_answer_t a = tt_parse_fixture (s_dhl (), &q, 1, 404, -1, "no_shipment_404.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "404");
    assert_false (a.results[0].found);
    carrier_answer_free (&a);
    static const struct {
        int status;
        const char *fixture;
        carrier_verdict_t verdict;
        const char *code, *reason;
    } cases[] = {
        {401, "unauthorized_401.json", CARRIER_STOP_ACCOUNT, "401", "Invalid API key"},
        {403, "bad_gateway_502.html", CARRIER_STOP_ACCOUNT, "403", NULL},
        {400, "no_shipment_404.json", CARRIER_BAD_REQUEST, "400", NULL},
        {502, "bad_gateway_502.html", CARRIER_RETRY, "502", NULL},
        {200, "bad_gateway_502.html", CARRIER_RETRY, "", "not JSON"},
        {200, "truncated.json", CARRIER_RETRY, "", "not JSON"},
        {200, "wrong_types.json", CARRIER_RETRY, "", "unexpected JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        a = tt_parse_fixture (s_dhl (), &q, 1, cases[i].status, -1, cases[i].fixture);
        tt_expect (&a, cases[i].verdict, cases[i].code, cases[i].reason, cases[i].fixture);
        carrier_answer_free (&a);
    }
    /* The quota: "too many requests within defined time period". */
    a = tt_parse_fixture (s_dhl (), &q, 1, 429, 60000, "too_many_requests_429.json");
    tt_expect (&a, CARRIER_WAIT, "429", NULL, "429");
    assert_int_equal (a.wait_ms, 60000);
    carrier_answer_free (&a);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_number_check),   cmocka_unit_test (test_request),
        cmocka_unit_test (test_service_picked), cmocka_unit_test (test_delivered_and_failure),
        cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
