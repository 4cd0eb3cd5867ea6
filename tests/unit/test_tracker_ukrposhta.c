/*
 * test_tracker_ukrposhta: Ukrposhta's adapter (services/tracker/carriers/
 * ukrposhta.c) against providers.md 1.2.
 *
 * What a shop notices: a barcode refused at registration unless it is a
 * UPU S10 number with its check digit right, or a domestic 13-digit one;
 * the batch call of the Status Tracking API with its bearer; each
 * barcode's last event matched to it, mapped (the delivered event with the
 * return reason as "returned to the sender"), its Kyiv time and its post
 * office; a 404 of a batch asked again barcode by barcode; a bearer the
 * gateway refuses stopping the account. Fixtures: tests/fixtures/tracker/
 * ukrposhta/.
 */
#include "tracker_test.h"

static const carrier_t *
s_up (void)
{
    const carrier_t *c = carrier_find ("ukrposhta");
    assert_non_null (c);
    return c;
}

static const carrier_account_t s_account = {
    .base_url = "http://up.test/status-tracking/0.0.1/",
    .api_key = "3b1d-bearer-386e-b676",
};

static void
test_number_check (void **state)
{
    (void)state;
    char why[256];
    /* S10 check digits worked out by hand: RB 12345678 -> 1*8 + 2*6 + 3*4
     * + 4*2 + 5*3 + 6*5 + 7*9 + 8*7 = 204, 204 mod 11 = 6, 11 - 6 = 5. */
    static const char *const good[] = {"RB123456785UA", "CP000000005UA", "EE987654326UA",
                                       "LV202607010UA", "rb123456785ua", "0500123456789"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (s_up ()->number_check (good[i], why, sizeof why) != 0)
            fail_msg ("%s refused: %s", good[i], why);
    why[0] = '\0';
    assert_int_equal (s_up ()->number_check ("RB123456784UA", why, sizeof why), -1);
    assert_non_null (strstr (why, "check digit"));
    assert_non_null (strstr (why, "5"));
    static const char *const bad[] = {
        "",
        "RB12345678UA",   /* 8 digits */
        "RB1234567855UA", /* 10 */
        "R1123456785UA",  /* a digit for a letter */
        "RB123456785U1",
        "05001234567890", /* 14 digits */
        "050012345678",   /* 12 */
        "20450059800767",
        "RB 123456785UA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (s_up ()->number_check (bad[i], why, sizeof why) == 0)
            fail_msg ("\"%s\" accepted", bad[i]);
        if (!strstr (why, "S10") || !strstr (why, "13-digit"))
            fail_msg ("\"%s\": \"%s\" names no form", bad[i], why);
    }
    assert_int_equal (s_up ()->number_check (NULL, why, sizeof why), -1);
}

static void
test_request (void **state)
{
    (void)state;
    char err[256] = "";
    carrier_request_t req;
    carrier_query_t q[] = {{.tracking_number = "rb123456785ua"},
                           {.tracking_number = "0500123456789"}};
    memset (&req, 0x5a, sizeof req);
    if (s_up ()->build (&s_account, q, 2, &req, err, sizeof err) != 0)
        fail_msg ("refused: %s", err);
    assert_string_equal (req.method, "POST");
    assert_string_equal (req.url, "http://up.test/status-tracking/0.0.1/statuses/last");
    assert_string_equal (req.log_url, req.url);
    tt_no_secret_logged (&req, s_account.api_key);
    assert_string_equal (tt_header (&req, "Authorization"), "Bearer 3b1d-bearer-386e-b676");
    assert_string_equal (tt_header (&req, "Content-Type"), "application/json");
    json_t *body = tt_body_json (&req);
    assert_true (json_is_array (body));
    assert_int_equal (json_array_size (body), 2);
    /* In capitals, as Ukrposhta prints them. */
    assert_string_equal (json_string_value (json_array_get (body, 0)), "RB123456785UA");
    assert_string_equal (json_string_value (json_array_get (body, 1)), "0500123456789");
    json_decref (body);
    rt_http_outreq_free (&req);

    carrier_query_t many[101];
    for (int i = 0; i < 101; i++)
        many[i] = (carrier_query_t){.tracking_number = "0500123456789"};
    assert_int_equal (s_up ()->build (&s_account, many, 100, &req, err, sizeof err), 0);
    rt_http_outreq_free (&req);
    assert_int_equal (s_up ()->build (&s_account, many, 101, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "1 to 100"));
    carrier_query_t bad = {.tracking_number = "RB\xff"};
    assert_int_equal (s_up ()->build (&s_account, &bad, 1, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "not UTF-8"));
    carrier_account_t no_key = {.base_url = s_account.base_url};
    assert_int_equal (s_up ()->build (&no_key, q, 1, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "bearer"));
    assert_null (req.url);
}

/* The queries of statuses_last.json; the third in small letters, the last
 * not in the answer. */
static const carrier_query_t s_batch[] = {
    {.tracking_number = "RB123456785UA"}, {.tracking_number = "0500123456789"},
    {.tracking_number = "cp000000005ua"}, {.tracking_number = "EE987654326UA"},
    {.tracking_number = "0500000000017"}, {.tracking_number = "0500000000025"},
};

static void
test_batch_answer (void **state)
{
    (void)state;
    carrier_answer_t a = tt_parse_fixture (s_up (), s_batch, 6, 200, -1, "statuses_last.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "statuses_last.json");
    const carrier_result_t *r = a.results;

    /* Delivered (41000) in winter: 16:01:44 Kyiv is 14:01:44 UTC. */
    tt_expect_status (&r[0], "41000", TAG_DELIVERED, "Delivered_001", false);
    assert_string_equal (r[0].raw_text, "Вручено");
    assert_string_equal (r[0].location, "Одеса 65000");
    tt_expect_ms (r[0].status_at_ms, tt_utc (2026, 1, 20, 14, 1, 44), "41000: date");
    tt_expect_ms (r[0].delivered_ms, tt_utc (2026, 1, 20, 14, 1, 44), "41000: delivered");
    assert_int_equal (r[0].n_events, 0);

    /* At the delivery office (21700), summer: UTC+3. */
    tt_expect_status (&r[1], "21700", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false);
    assert_string_equal (r[1].location, "Львів 79000");
    tt_expect_ms (r[1].status_at_ms, tt_utc (2026, 7, 2, 7, 5, 0), "21700: date");
    tt_expect_ms (r[1].delivered_ms, 0, "21700: not delivered");

    /* Delivered back to the sender: 41000 with eventReason_id 10. */
    tt_expect_status (&r[2], "41000/10", TAG_EXCEPTION, "Exception_011", true);
    tt_expect_ms (r[2].status_at_ms, tt_utc (2026, 2, 3, 9, 0, 0), "41000/10: date");
    tt_expect_ms (r[2].delivered_ms, 0, "a return is no delivery");

    /* Returning (31200, the event as a string), another reason. */
    tt_expect_status (&r[3], "31200", TAG_EXCEPTION, "Exception_010", true);
    assert_string_equal (r[3].location, "");

    /* An event no list has: kept raw. */
    assert_true (r[4].found);
    assert_false (r[4].mapped);
    assert_string_equal (r[4].raw_code, "99999");
    assert_string_equal (r[4].raw_text, "Подія, якої немає в довіднику");

    assert_false (r[5].found);
    carrier_answer_free (&a);

    a = tt_parse_fixture (s_up (), s_batch, 6, 200, -1, "empty.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "[]");
    for (size_t i = 0; i < 6; i++)
        assert_false (a.results[i].found);
    carrier_answer_free (&a);
}

static void
test_errors (void **state)
{
    (void)state;
    /* A 404 says a barcode is not registered without saying which: alone,
     * it is not found; in a batch, the poller asks each alone. */
    carrier_answer_t a =
        tt_parse_fixture (s_up (), s_batch, 1, 404, -1, "barcode_not_found_404.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "404 of one");
    assert_false (a.results[0].found);
    carrier_answer_free (&a);
    a = tt_parse_fixture (s_up (), s_batch, 3, 404, -1, "barcode_not_found_404.json");
    tt_expect (&a, CARRIER_BAD_REQUEST, "404", "not registered", "404 of three");
    carrier_answer_free (&a);

    static const struct {
        int status;
        const char *fixture;
        carrier_verdict_t verdict;
        const char *code, *reason;
    } cases[] = {
        /* A key without access to Status Tracking (providers.md 1.2). */
        {403, "bearer_refused_900908_403.json", CARRIER_STOP_ACCOUNT, "900908", "forbidden"},
        {401, "bearer_invalid_401.json", CARRIER_STOP_ACCOUNT, "900901", "Invalid Credentials"},
        {401, "bad_gateway_502.html", CARRIER_STOP_ACCOUNT, "401", "refused"},
        {400, "bad_gateway_502.html", CARRIER_BAD_REQUEST, "400", NULL},
        {502, "bad_gateway_502.html", CARRIER_RETRY, "502", NULL},
        {200, "bad_gateway_502.html", CARRIER_RETRY, "", "not JSON"},
        {200, "truncated.json", CARRIER_RETRY, "", "not JSON"},
        {200, "wrong_types.json", CARRIER_RETRY, "", "unexpected JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        a = tt_parse_fixture (s_up (), s_batch, 2, cases[i].status, -1, cases[i].fixture);
        tt_expect (&a, cases[i].verdict, cases[i].code, cases[i].reason, cases[i].fixture);
        carrier_answer_free (&a);
    }
    a = tt_parse_fixture (s_up (), s_batch, 2, 429, 5000, "throttled_429.json");
    tt_expect (&a, CARRIER_WAIT, "429", NULL, "throttled");
    assert_int_equal (a.wait_ms, 5000);
    carrier_answer_free (&a);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_number_check),
        cmocka_unit_test (test_request),
        cmocka_unit_test (test_batch_answer),
        cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
