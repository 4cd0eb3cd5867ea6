/*
 * test_tracker_meest: Meest's adapter (services/tracker/carriers/meest.c)
 * against providers.md 1.3.
 *
 * What a shop notices: a number refused at registration only when it
 * cannot be one; the tracking call with the token as Meest wants it and
 * never logged; the history read oldest first whatever order it came in,
 * its latest event the parcel's status, times in Kyiv; nothing known yet
 * as "not found"; a token refused stopping the account. Fixtures:
 * tests/fixtures/tracker/meest/.
 */
#include "tracker_test.h"

static const carrier_t *
s_meest (void)
{
    const carrier_t *c = carrier_find ("meest");
    assert_non_null (c);
    return c;
}

static const carrier_account_t s_account = {
    .base_url = "http://meest.test/v3.0/openAPI",
    .api_key = "a1b2c3d4-meest-token",
};

static const carrier_query_t s_one = {.tracking_number = "722-12345678"};

static void
test_number_check (void **state)
{
    (void)state;
    char why[256];
    static const char *const good[] = {"722-12345678", "72212345678", "MEEST0001234567", "AB-12345",
                                       "12345678901234567890"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (s_meest ()->number_check (good[i], why, sizeof why) != 0)
            fail_msg ("%s refused: %s", good[i], why);
    static const char *const bad[] = {
        "",
        "1234567",
        "123456789012345678901",
        "-72212345678",
        "722 12345678",
        "722_12345678",
        "722/12345678",
        "<script>",
        "722-1234567\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (s_meest ()->number_check (bad[i], why, sizeof why) == 0)
            fail_msg ("\"%s\" accepted", bad[i]);
        assert_non_null (strstr (why, "8 to 20"));
    }
    assert_int_equal (s_meest ()->number_check (NULL, why, sizeof why), -1);
}

static void
test_request (void **state)
{
    (void)state;
    char err[256] = "";
    carrier_request_t req;
    memset (&req, 0x5a, sizeof req);
    if (s_meest ()->build (&s_account, &s_one, 1, &req, err, sizeof err) != 0)
        fail_msg ("refused: %s", err);
    assert_string_equal (req.method, "GET");
    assert_string_equal (req.url, "http://meest.test/v3.0/openAPI/tracking/722-12345678");
    assert_string_equal (req.log_url, req.url);
    tt_no_secret_logged (&req, s_account.api_key);
    assert_string_equal (tt_header (&req, "token"), "a1b2c3d4-meest-token");
    assert_null (req.body);
    assert_int_equal (req.body_len, 0);
    rt_http_outreq_free (&req);

    /* The number is a path segment: escaped, never a path of its own. */
    carrier_query_t odd = {.tracking_number = "72/2?x=1"};
    assert_int_equal (s_meest ()->build (&s_account, &odd, 1, &req, err, sizeof err), 0);
    assert_string_equal (req.url, "http://meest.test/v3.0/openAPI/tracking/72%2F2%3Fx%3D1");
    rt_http_outreq_free (&req);

    carrier_query_t two[] = {s_one, s_one};
    assert_int_equal (s_meest ()->build (&s_account, two, 2, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "one parcel"));
    carrier_account_t no_token = {.base_url = s_account.base_url};
    assert_int_equal (s_meest ()->build (&no_token, &s_one, 1, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "token"));
    assert_null (req.url);
}

static void
test_history (void **state)
{
    (void)state;
    carrier_answer_t a =
        tt_parse_fixture (s_meest (), &s_one, 1, 200, -1, "tracking_delivered.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "tracking_delivered.json");
    const carrier_result_t *r = &a.results[0];
    /* The latest event (listed second) is the status: delivered at 16:20
     * Kyiv in July, 13:20 UTC. */
    tt_expect_status (r, "1622", TAG_DELIVERED, "Delivered_001", false);
    assert_string_equal (r->raw_text, "Відправлення вручено");
    assert_string_equal (r->location, "Львів");
    tt_expect_ms (r->status_at_ms, tt_utc (2026, 7, 3, 13, 20, 0), "1622: eventDateTime");
    tt_expect_ms (r->delivered_ms, tt_utc (2026, 7, 3, 13, 20, 0), "1622: delivered");
    /* Oldest first, whatever the answer's order. */
    assert_int_equal (r->n_events, 3);
    assert_string_equal (r->events[0].code, "2");
    assert_string_equal (r->events[0].text, "Створено накладну");
    assert_string_equal (r->events[0].location, "Київ");
    tt_expect_ms (r->events[0].at_ms, tt_utc (2026, 7, 1, 6, 0, 0), "event 0");
    assert_string_equal (r->events[1].code, "1400");
    assert_string_equal (r->events[1].location, "Житомир");
    tt_expect_ms (r->events[1].at_ms, tt_utc (2026, 7, 2, 5, 30, 0), "event 1");
    assert_string_equal (r->events[2].code, "1622");
    tt_expect_ms (r->events[2].at_ms, tt_utc (2026, 7, 3, 13, 20, 0), "event 2");
    carrier_answer_free (&a);

    /* The waybill alone, in winter (UTC+2). */
    a = tt_parse_fixture (s_meest (), &s_one, 1, 200, -1, "tracking_created.json");
    tt_expect_status (&a.results[0], "2", TAG_INFO_RECEIVED, "InfoReceived_001", false);
    tt_expect_ms (a.results[0].status_at_ms, tt_utc (2026, 1, 10, 9, 0, 0), "2: eventDateTime");
    tt_expect_ms (a.results[0].delivered_ms, 0, "2: not delivered");
    assert_int_equal (a.results[0].n_events, 1);
    carrier_answer_free (&a);

    /* Nothing known yet: an empty result, or 404. */
    a = tt_parse_fixture (s_meest (), &s_one, 1, 200, -1, "tracking_empty.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "empty result");
    assert_false (a.results[0].found);
    assert_int_equal (a.results[0].n_events, 0);
    carrier_answer_free (&a);
    a = tt_parse_fixture (s_meest (), &s_one, 1, 404, -1, "not_found_404.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "404");
    assert_false (a.results[0].found);
    carrier_answer_free (&a);
}

static void
test_errors (void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *fixture;
        carrier_verdict_t verdict;
        const char *code, *reason;
    } cases[] = {
        {401, "token_invalid.json", CARRIER_STOP_ACCOUNT, "401", "Token is not valid"},
        {403, "bad_gateway_502.html", CARRIER_STOP_ACCOUNT, "403", "refused"},
        /* An "Error" on 200 naming the token: the account stops. */
        {200, "token_invalid.json", CARRIER_STOP_ACCOUNT, "token", "Token is not valid"},
        {400, "bad_request_400.json", CARRIER_BAD_REQUEST, "400", "Invalid value"},
        {200, "bad_request_400.json", CARRIER_BAD_REQUEST, "trackNumber", "Invalid value"},
        {502, "bad_gateway_502.html", CARRIER_RETRY, "502", NULL},
        {200, "bad_gateway_502.html", CARRIER_RETRY, "", "not JSON"},
        {200, "truncated.json", CARRIER_RETRY, "", "not JSON"},
        {200, "wrong_types.json", CARRIER_RETRY, "", "unexpected JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        carrier_answer_t a =
            tt_parse_fixture (s_meest (), &s_one, 1, cases[i].status, -1, cases[i].fixture);
        tt_expect (&a, cases[i].verdict, cases[i].code, cases[i].reason, cases[i].fixture);
        carrier_answer_free (&a);
    }
    carrier_answer_t a =
        tt_parse_fixture (s_meest (), &s_one, 1, 429, 2000, "too_many_requests_429.html");
    tt_expect (&a, CARRIER_WAIT, "429", NULL, "429");
    assert_int_equal (a.wait_ms, 2000);
    carrier_answer_free (&a);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_number_check),
        cmocka_unit_test (test_request),
        cmocka_unit_test (test_history),
        cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
