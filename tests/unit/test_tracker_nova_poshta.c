/*
 * test_tracker_nova_poshta: Nova Poshta's adapter (services/tracker/
 * carriers/nova_poshta.c) against providers.md 1.1.
 *
 * What a shop notices: a waybill number refused at registration with the
 * form Nova Poshta's numbers have; the getStatusDocuments call as the API
 * documents it, the key in the body and never in what is logged; a batch's
 * answer matched to its waybills by number whatever the order, each
 * status mapped, its Kyiv times read right (summer UTC+3, winter UTC+2,
 * the days the clocks change), the branch and the storage deadline of a
 * parcel waiting there; and every documented error classified.
 * Fixtures: tests/fixtures/tracker/nova_poshta/.
 */
#include "tracker_test.h"

static const carrier_t *
s_np (void)
{
    const carrier_t *c = carrier_find ("nova_poshta");
    assert_non_null (c);
    return c;
}

static const carrier_account_t s_account = {
    .base_url = "http://np.test/v2.0/json/",
    .api_key = "0123456789abcdef0123456789abcdef",
    .language = "UA",
};

static void
test_number_check (void **state)
{
    (void)state;
    char why[256];
    static const char *const good[] = {"20450059800767", "59000123456789", "20400048799000",
                                       "10000000000001"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (s_np ()->number_check (good[i], why, sizeof why) != 0)
            fail_msg ("%s refused: %s", good[i], why);
    static const char *const bad[] = {
        "",
        "2045005980076",   /* 13 digits */
        "204500598007670", /* 15 */
        "30450059800767",  /* starts with 3 */
        "21450059800767",  /* 21... */
        "2045005980076a",
        "20450059800767 ",
        "RB123456785UA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (s_np ()->number_check (bad[i], why, sizeof why) == 0)
            fail_msg ("\"%s\" accepted", bad[i]);
        assert_non_null (strstr (why, "14 digits"));
    }
    assert_int_equal (s_np ()->number_check (NULL, why, sizeof why), -1);
}

static void
test_request (void **state)
{
    (void)state;
    char err[256] = "";
    carrier_request_t req;
    carrier_query_t q[] = {
        {.tracking_number = "20450059800767", .phone = "380958860454"},
        {.tracking_number = "59000123456789"},
    };
    memset (&req, 0x5a, sizeof req);
    if (s_np ()->build (&s_account, q, 2, &req, err, sizeof err) != 0)
        fail_msg ("refused: %s", err);
    assert_string_equal (req.method, "POST");
    assert_string_equal (req.url, "http://np.test/v2.0/json/");
    assert_string_equal (req.log_url, "http://np.test/v2.0/json/");
    tt_no_secret_logged (&req, s_account.api_key);
    assert_string_equal (tt_header (&req, "Content-Type"), "application/json");
    json_t *body = tt_body_json (&req);
    assert_string_equal (json_string_value (json_object_get (body, "apiKey")), s_account.api_key);
    assert_string_equal (json_string_value (json_object_get (body, "modelName")),
                         "TrackingDocument");
    assert_string_equal (json_string_value (json_object_get (body, "calledMethod")),
                         "getStatusDocuments");
    json_t *props = json_object_get (body, "methodProperties");
    assert_string_equal (json_string_value (json_object_get (props, "Language")), "UA");
    json_t *docs = json_object_get (props, "Documents");
    assert_int_equal (json_array_size (docs), 2);
    json_t *d0 = json_array_get (docs, 0), *d1 = json_array_get (docs, 1);
    assert_string_equal (json_string_value (json_object_get (d0, "DocumentNumber")),
                         "20450059800767");
    assert_string_equal (json_string_value (json_object_get (d0, "Phone")), "380958860454");
    assert_string_equal (json_string_value (json_object_get (d1, "DocumentNumber")),
                         "59000123456789");
    /* Without a phone, none is sent: the status comes all the same. */
    assert_null (json_object_get (d1, "Phone"));
    assert_int_equal (json_object_size (d1), 1);
    assert_int_equal (json_object_size (body), 4);
    json_decref (body);
    rt_http_outreq_free (&req);
    rt_http_outreq_free (&req);

    /* Without a language, Nova Poshta's default. */
    carrier_account_t account = s_account;
    account.language = NULL;
    assert_int_equal (s_np ()->build (&account, q, 1, &req, err, sizeof err), 0);
    body = tt_body_json (&req);
    assert_null (json_object_get (json_object_get (body, "methodProperties"), "Language"));
    json_decref (body);
    rt_http_outreq_free (&req);
}

static void
test_request_batch_and_refusals (void **state)
{
    (void)state;
    char err[256];
    carrier_request_t req;
    carrier_query_t q[101];
    char numbers[101][16];
    for (int i = 0; i < 101; i++) {
        snprintf (numbers[i], sizeof numbers[i], "5900000000%04d", i);
        q[i] = (carrier_query_t){.tracking_number = numbers[i]};
    }
    /* 100 waybills a call (providers.md 1.1), not 101. */
    assert_int_equal (s_np ()->build (&s_account, q, 100, &req, err, sizeof err), 0);
    json_t *body = tt_body_json (&req);
    assert_int_equal (
        json_array_size (json_object_get (json_object_get (body, "methodProperties"), "Documents")),
        100);
    json_decref (body);
    rt_http_outreq_free (&req);
    static const struct {
        carrier_account_t account;
        size_t n;
        const char *why;
    } cases[] = {
        {{.base_url = "http://np.test/v2.0/json/", .api_key = "k"}, 101, "1 to 100"},
        {{.base_url = "http://np.test/v2.0/json/", .api_key = "k"}, 0, "1 to 100"},
        {{.base_url = "http://np.test/v2.0/json/"}, 1, "API key"},
        {{.base_url = "http://np.test/v2.0/json/", .api_key = ""}, 1, "API key"},
        {{.base_url = "http://np.test/v2.0/json/", .api_key = "k\r\nX-Evil: 1"}, 1, "control"},
        {{.base_url = "http://np.test/v2.0/json/", .api_key = "\xff\xfe"}, 1, "not UTF-8"},
        {{.base_url = "ftp://np.test/", .api_key = "k"}, 1, "base URL"},
        {{.api_key = "k"}, 1, "base URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset (&req, 0x5a, sizeof req);
        err[0] = '\0';
        if (s_np ()->build (&cases[i].account, q, cases[i].n, &req, err, sizeof err) == 0)
            fail_msg ("case %zu built", i);
        if (!strstr (err, cases[i].why))
            fail_msg ("case %zu: \"%s\" does not name \"%s\"", i, err, cases[i].why);
        assert_null (req.url);
        assert_null (req.body);
        rt_http_outreq_free (&req);
    }
    /* A number that is not UTF-8 (registration would have refused it). */
    carrier_query_t bad = {.tracking_number = "\xc3\x28"};
    assert_int_equal (s_np ()->build (&s_account, &bad, 1, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "not UTF-8"));
}

/* The queries of statuses_batch.json, in an order its data[] does not
 * follow (q3 is not in it at all). */
static const carrier_query_t s_batch[] = {
    {.tracking_number = "20450059800767", .phone = "380958860454"},
    {.tracking_number = "59000123456789"},
    {.tracking_number = "20400048799000"},
    {.tracking_number = "59001111111111"},
    {.tracking_number = "20450000001234"},
    {.tracking_number = "59000222222222"},
    {.tracking_number = "59000333333333"},
    {.tracking_number = "59000444444444"},
};

static void
test_batch_answer (void **state)
{
    (void)state;
    carrier_answer_t a = tt_parse_fixture (s_np (), s_batch, 8, 200, -1, "statuses_batch.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "statuses_batch.json");
    const carrier_result_t *r = a.results;

    /* At the branch (7): where it waits and until when it is free. Summer:
     * Kyiv is UTC+3. */
    tt_expect_status (&r[0], "7", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false);
    assert_string_equal (r[0].raw_text, "Прибув у відділення");
    assert_string_equal (r[0].location, "Відділення №5 (до 30 кг): вул. Городоцька, 120");
    assert_string_equal (r[0].origin_city, "Київ");
    assert_string_equal (r[0].destination_city, "Львів");
    assert_string_equal (r[0].cod_state, "");
    tt_expect_ms (r[0].status_at_ms, tt_utc (2026, 7, 1, 11, 30, 0), "7: 2026-07-01 14:30 Kyiv");
    tt_expect_ms (r[0].estimated_ms, tt_utc (2026, 7, 1, 10, 0, 0), "7: 01-07-2026 13:00 Kyiv");
    tt_expect_ms (r[0].storage_until_ms, tt_utc (2026, 7, 7, 21, 0, 0),
                  "7: storage until 2026-07-08 00:00 Kyiv");
    /* ActualDeliveryDate is its arrival at the branch, not a delivery. */
    tt_expect_ms (r[0].delivered_ms, 0, "7: not delivered");
    assert_int_equal (r[0].n_events, 0);

    /* Received (9) in winter: Kyiv is UTC+2; the receipt is
     * RecipientDateTime ("15.01.2026 12:45:45"). */
    tt_expect_status (&r[1], "9", TAG_DELIVERED, "Delivered_001", false);
    tt_expect_ms (r[1].status_at_ms, tt_utc (2026, 1, 15, 10, 45, 47), "9: TrackingUpdateDate");
    tt_expect_ms (r[1].delivered_ms, tt_utc (2026, 1, 15, 10, 45, 45), "9: RecipientDateTime");
    tt_expect_ms (r[1].estimated_ms, tt_utc (2026, 1, 14, 7, 0, 0), "9: ScheduledDeliveryDate");
    assert_string_equal (r[1].origin_city, "Одеса");
    assert_string_equal (r[1].destination_city, "Харків");
    assert_string_equal (r[1].location, "");

    /* "Number not found" (3) and a waybill the answer left out: not found,
     * not an error. */
    assert_false (r[2].found);
    assert_string_equal (r[2].raw_code, "3");
    assert_false (r[3].found);
    assert_string_equal (r[3].raw_code, "");

    /* With the courier (101); no TrackingUpdateDate, so DateScan
     * "09:15 02.07.2026". */
    tt_expect_status (&r[4], "101", TAG_OUT_FOR_DELIVERY, "OutForDelivery_001", false);
    tt_expect_ms (r[4].status_at_ms, tt_utc (2026, 7, 2, 6, 15, 0), "101: DateScan");
    tt_expect_ms (r[4].estimated_ms, tt_utc (2026, 7, 2, 15, 0, 0), "101: 02-07-2026 18:00");
    assert_string_equal (r[4].location, "");

    /* A code no list documents (80): kept raw. */
    assert_true (r[5].found);
    assert_false (r[5].mapped);
    assert_string_equal (r[5].raw_code, "80");

    /* Storage stopped (105): going back to the sender. Stamped at 03:30
     * on 29 March 2026, a time the clocks skipped: 04:00 EEST, 01:00 UTC. */
    tt_expect_status (&r[6], "105", TAG_EXCEPTION, "Exception_010", true);
    tt_expect_ms (r[6].status_at_ms, tt_utc (2026, 3, 29, 1, 0, 0), "105: a skipped time");
    tt_expect_ms (r[6].storage_until_ms, tt_utc (2026, 3, 26, 22, 0, 0),
                  "105: 2026-03-27 00:00, still winter");
    tt_expect_ms (r[6].delivered_ms, 0, "105: not delivered");

    /* Received and the cash on delivery paid out (11). Its receipt at
     * 03:30 on 25 October 2026, an hour that happens twice: the first,
     * EEST, 00:30 UTC; storage until 31 October, winter again. */
    tt_expect_status (&r[7], "11", TAG_DELIVERED, "Delivered_004", false);
    assert_string_equal (r[7].cod_state, "Видано");
    tt_expect_ms (r[7].delivered_ms, tt_utc (2026, 10, 25, 0, 30, 0), "11: a repeated time");
    tt_expect_ms (r[7].status_at_ms, tt_utc (2026, 10, 25, 0, 31, 0), "11: TrackingUpdateDate");
    tt_expect_ms (r[7].estimated_ms, tt_utc (2026, 10, 24, 10, 0, 0), "11: 24-10 13:00, summer");
    tt_expect_ms (r[7].storage_until_ms, tt_utc (2026, 10, 30, 22, 0, 0),
                  "11: 2026-10-31 00:00, winter");
    carrier_answer_free (&a);
    carrier_answer_free (&a);

    /* The same waybill asked twice gets its record twice. */
    carrier_query_t twice[] = {{.tracking_number = "59000123456789"},
                               {.tracking_number = "59000123456789"}};
    a = tt_parse_fixture (s_np (), twice, 2, 200, -1, "statuses_batch.json");
    tt_expect_status (&a.results[0], "9", TAG_DELIVERED, "Delivered_001", false);
    tt_expect_status (&a.results[1], "9", TAG_DELIVERED, "Delivered_001", false);
    carrier_answer_free (&a);

    a = tt_parse_fixture (s_np (), s_batch, 8, 200, -1, "empty_data.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "empty data[]");
    for (size_t i = 0; i < 8; i++)
        assert_false (a.results[i].found);
    carrier_answer_free (&a);
}

static void
test_errors (void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        carrier_verdict_t verdict;
        const char *code, *reason;
    } cases[] = {
        {"key_invalid.json", CARRIER_STOP_ACCOUNT, "20000200068", "API auth fail"},
        {"key_empty.json", CARRIER_STOP_ACCOUNT, "20000200069", "not specified"},
        {"service_unavailable.json", CARRIER_RETRY, "20000100016", "unavailable"},
        {"document_number_empty.json", CARRIER_BAD_REQUEST, "20000200157", "empty"},
        {"document_number_incorrect.json", CARRIER_BAD_REQUEST, "20000200158", "not correct"},
        {"documents_not_array.json", CARRIER_BAD_REQUEST, "20000200159", "array"},
        {"document_not_found.json", CARRIER_BAD_REQUEST, "20000300415", "not found"},
        /* A code nobody documents: a bad request, its code kept. */
        {"unknown_error_code.json", CARRIER_BAD_REQUEST, "20000999999", "added later"},
        /* A refused key outweighs a bad number in the same answer. */
        {"two_errors.json", CARRIER_STOP_ACCOUNT, "20000200068", "API auth fail"},
        {"wrong_types.json", CARRIER_RETRY, "", "unexpected JSON"},
        {"truncated.json", CARRIER_RETRY, "", "not JSON"},
        {"bad_gateway_502.html", CARRIER_RETRY, "", "not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        carrier_answer_t a = tt_parse_fixture (s_np (), s_batch, 2, 200, -1, cases[i].fixture);
        tt_expect (&a, cases[i].verdict, cases[i].code, cases[i].reason, cases[i].fixture);
        carrier_answer_free (&a);
    }
    /* The gateway's own pages: 502, and 429 with and without Retry-After. */
    carrier_answer_t a = tt_parse_fixture (s_np (), s_batch, 2, 502, -1, "bad_gateway_502.html");
    tt_expect (&a, CARRIER_RETRY, "502", NULL, "502");
    carrier_answer_free (&a);
    a = tt_parse_fixture (s_np (), s_batch, 2, 429, 30000, "too_many_requests_429.html");
    tt_expect (&a, CARRIER_WAIT, "429", NULL, "429");
    assert_int_equal (a.wait_ms, 30000);
    carrier_answer_free (&a);
    a = tt_parse_fixture (s_np (), s_batch, 2, 429, -1, "too_many_requests_429.html");
    assert_int_equal (a.wait_ms, 0);
    carrier_answer_free (&a);
    /* No answer at all. */
    a = tt_parse (s_np (), s_batch, 2, 0, -1, NULL, 0);
    tt_expect (&a, CARRIER_RETRY, "", "transport", "no answer");
    carrier_answer_free (&a);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_number_check),
        cmocka_unit_test (test_request),
        cmocka_unit_test (test_request_batch_and_refusals),
        cmocka_unit_test (test_batch_answer),
        cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
