/*
 * test_tracker_ups: UPS's adapter (services/tracker/carriers/ups.c)
 * against providers.md 1.5.
 *
 * What a shop notices: a 1Z number refused at registration when its check
 * digit is wrong; the OAuth token asked for with the client's credentials
 * as Basic auth and never logged, its lifetime read even as a string and
 * held to sane bounds; the tracking call with the bearer, a transId UPS
 * takes (a UUID's 36 characters do not fit its 32) and the source; the
 * package's status by its type letter, UPS's delivery dates (a rescheduled
 * one over the first), the delivery's time of day, the activity oldest
 * first; unknown numbers as "not found", a refused bearer as the poller's
 * signal to drop its token. Fixtures: tests/fixtures/tracker/ups/.
 */
#include "tracker_test.h"

static const carrier_t *
s_ups (void)
{
    const carrier_t *c = carrier_find ("ups");
    assert_non_null (c);
    return c;
}

static const carrier_account_t s_account = {
    .base_url = "http://ups.test",
    .client_id = "retain-test-client",
    .client_secret = "s3cr3t-Value",
    .access_token = "tok-abc.def",
};

static const carrier_query_t s_one = {.tracking_number = "1Z999AA10123456784",
                                      .trans_id = "0190c1a2-7b3c-7def-8123-456789abcdef"};

static void
test_number_check (void **state)
{
    (void)state;
    char why[256];
    /* 1Z numbers from UPS's own examples and a parcel-tracking detector;
     * their check digits verified by hand (1Z999AA1012345678: 9 9 9 2 2 1
     * 0 1 2 3 4 5 6 7 8, odd places 40, even places 28 twice, 96: 4). */
    static const char *const good[] = {
        "1Z999AA10123456784", "1Z12345E6605272234", "1Z4861WWE194914215", "1ZWX0692YP40636269",
        "1z999aa10123456784", "T1234567890",        "123456789",          "1234567890123456789012",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (s_ups ()->number_check (good[i], why, sizeof why) != 0)
            fail_msg ("%s refused: %s", good[i], why);
    why[0] = '\0';
    assert_int_equal (s_ups ()->number_check ("1Z12345E0205271688", why, sizeof why), -1);
    assert_non_null (strstr (why, "check digit"));
    assert_int_equal (s_ups ()->number_check ("1Z999AA1012345678", why, sizeof why), -1);
    assert_non_null (strstr (why, "18 characters"));
    static const char *const bad[] = {"", "123456", "12345678901234567890123456789012345",
                                      "1Z999AA1-0123456784", "T123 4567890"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (s_ups ()->number_check (bad[i], why, sizeof why) == 0)
            fail_msg ("\"%s\" accepted", bad[i]);
        assert_non_null (strstr (why, "1Z"));
    }
    assert_int_equal (s_ups ()->number_check (NULL, why, sizeof why), -1);
}

static void
test_token_request (void **state)
{
    (void)state;
    char err[256] = "";
    carrier_request_t req;
    memset (&req, 0x5a, sizeof req);
    if (s_ups ()->build_token (&s_account, &req, err, sizeof err) != 0)
        fail_msg ("refused: %s", err);
    assert_string_equal (req.method, "POST");
    assert_string_equal (req.url, "http://ups.test/security/v1/oauth/token");
    tt_no_secret_logged (&req, s_account.client_secret);
    assert_string_equal (tt_header (&req, "Content-Type"), "application/x-www-form-urlencoded");
    /* base64 of "retain-test-client:s3cr3t-Value". */
    assert_string_equal (tt_header (&req, "Authorization"),
                         "Basic cmV0YWluLXRlc3QtY2xpZW50OnMzY3IzdC1WYWx1ZQ==");
    assert_string_equal (req.body, "grant_type=client_credentials");
    assert_int_equal (req.body_len, strlen ("grant_type=client_credentials"));
    rt_http_outreq_free (&req);

    carrier_account_t partial = s_account;
    partial.client_secret = NULL;
    assert_int_equal (s_ups ()->build_token (&partial, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "client secret"));
    partial = s_account;
    partial.client_id = "";
    assert_int_equal (s_ups ()->build_token (&partial, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "client id"));
    assert_null (req.url);
}

/* parse_token of fixture `name` at status. */
static int
s_token (int status, int64_t retry_after_ms, const char *name, char **token, int64_t *expires_ms,
         carrier_answer_t *a)
{
    size_t len = 0;
    char *body = tt_fixture ("ups", name, &len);
    memset (a, 0x5a, sizeof *a);
    int rc = s_ups ()->parse_token (status, retry_after_ms, body, len, token, expires_ms, a);
    free (body);
    assert_int_equal (a->n_results, 0);
    return rc;
}

static void
test_token_answers (void **state)
{
    (void)state;
    char *token = NULL;
    int64_t expires = 0;
    carrier_answer_t a;
    /* expires_in as UPS sends it, a string of seconds. */
    assert_int_equal (s_token (200, -1, "token.json", &token, &expires, &a), 0);
    tt_expect (&a, CARRIER_OK, "", NULL, "token.json");
    assert_string_equal (token, "eyJraWQiOiJ0ZXN0In0.eyJzdWIiOiJyZXRhaW4ifQ.c2lnbmF0dXJl");
    assert_int_equal (expires, 14399 * 1000LL);
    free (token);
    assert_int_equal (s_token (200, -1, "token_numeric_expiry.json", &token, &expires, &a), 0);
    assert_string_equal (token, "tok-2");
    assert_int_equal (expires, 14400 * 1000LL);
    free (token);
    /* 1e30 seconds: held to a day. */
    assert_int_equal (s_token (200, -1, "token_huge_expiry.json", &token, &expires, &a), 0);
    assert_int_equal (expires, 86400 * 1000LL);
    free (token);

    static const struct {
        int status;
        const char *fixture;
        carrier_verdict_t verdict;
        const char *code, *reason;
    } cases[] = {
        {401, "token_client_invalid_401.json", CARRIER_STOP_ACCOUNT, "10401",
         "ClientId is Invalid"},
        {403, "bad_gateway_502.html", CARRIER_STOP_ACCOUNT, "403", NULL},
        {400, "token_client_invalid_401.json", CARRIER_BAD_REQUEST, "10401", NULL},
        {502, "bad_gateway_502.html", CARRIER_RETRY, "502", NULL},
        {200, "bad_gateway_502.html", CARRIER_RETRY, "", "not JSON"},
        {200, "track_in_transit.json", CARRIER_RETRY, "", "access_token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        token = (char *)"stale";
        assert_int_equal (s_token (cases[i].status, -1, cases[i].fixture, &token, &expires, &a),
                          -1);
        assert_null (token);
        tt_expect (&a, cases[i].verdict, cases[i].code, cases[i].reason, cases[i].fixture);
    }
    assert_int_equal (s_token (429, 3000, "too_many_requests_429.json", &token, &expires, &a), -1);
    tt_expect (&a, CARRIER_WAIT, "429", NULL, "429");
    assert_int_equal (a.wait_ms, 3000);

    /* Lifetimes that cannot be read, or make no sense. */
    static const struct {
        const char *body;
        int64_t want_ms;
    } lifetimes[] = {
        {"{\"access_token\": \"t\", \"expires_in\": \"soon\"}", 3600 * 1000LL},
        {"{\"access_token\": \"t\", \"expires_in\": -5}", 3600 * 1000LL},
        {"{\"access_token\": \"t\"}", 3600 * 1000LL},
        {"{\"access_token\": \"t\", \"expires_in\": 0}", 60 * 1000LL},
        {"{\"access_token\": \"t\", \"token_type\": \"bearer\", \"expires_in\": \"7200\"}",
         7200 * 1000LL},
    };
    for (size_t i = 0; i < sizeof lifetimes / sizeof *lifetimes; i++) {
        assert_int_equal (s_ups ()->parse_token (200, -1, lifetimes[i].body,
                                                 strlen (lifetimes[i].body), &token, &expires, &a),
                          0);
        assert_int_equal (expires, lifetimes[i].want_ms);
        free (token);
    }
    const char *mac = "{\"access_token\": \"t\", \"token_type\": \"MAC\"}";
    assert_int_equal (s_ups ()->parse_token (200, -1, mac, strlen (mac), &token, &expires, &a), -1);
    assert_null (token);
    assert_int_equal (a.verdict, CARRIER_RETRY);
}

static void
test_request (void **state)
{
    (void)state;
    char err[256] = "";
    carrier_request_t req;
    memset (&req, 0x5a, sizeof req);
    if (s_ups ()->build (&s_account, &s_one, 1, &req, err, sizeof err) != 0)
        fail_msg ("refused: %s", err);
    assert_string_equal (req.method, "GET");
    assert_string_equal (req.url, "http://ups.test/api/track/v1/details/1Z999AA10123456784"
                                  "?locale=en_US&returnSignature=false&returnMilestones=false"
                                  "&returnPOD=false");
    tt_no_secret_logged (&req, s_account.access_token);
    assert_string_equal (tt_header (&req, "Authorization"), "Bearer tok-abc.def");
    /* The poll token is a UUID: its dashes dropped, 32 characters. */
    assert_string_equal (tt_header (&req, "transId"), "0190c1a27b3c7def8123456789abcdef");
    assert_string_equal (tt_header (&req, "transactionSrc"), "retain");
    assert_null (req.body);
    rt_http_outreq_free (&req);

    /* No trans_id: the number stands in for it. */
    carrier_query_t q = {.tracking_number = "1Z999AA10123456784"};
    assert_int_equal (s_ups ()->build (&s_account, &q, 1, &req, err, sizeof err), 0);
    assert_string_equal (tt_header (&req, "transId"), "1Z999AA10123456784");
    rt_http_outreq_free (&req);

    carrier_account_t no_token = s_account;
    no_token.access_token = NULL;
    assert_int_equal (s_ups ()->build (&no_token, &s_one, 1, &req, err, sizeof err), -1);
    assert_non_null (strstr (err, "access token"));
    assert_null (req.url);
}

static void
test_packages (void **state)
{
    (void)state;
    carrier_answer_t a = tt_parse_fixture (s_ups (), &s_one, 1, 200, -1, "track_in_transit.json");
    tt_expect (&a, CARRIER_OK, "", NULL, "in transit");
    const carrier_result_t *r = &a.results[0];
    tt_expect_status (r, "I", TAG_IN_TRANSIT, "InTransit_001", false);
    assert_string_equal (r->raw_text, "On the Way");
    /* UPS's dates carry no zone: read as UTC. SDD 20260706. */
    tt_expect_ms (r->estimated_ms, tt_utc (2026, 7, 6, 0, 0, 0), "SDD");
    tt_expect_ms (r->delivered_ms, 0, "not delivered");
    assert_int_equal (r->n_events, 3);
    assert_string_equal (r->events[0].code, "M");
    assert_string_equal (r->events[0].location, "");
    tt_expect_ms (r->events[0].at_ms, tt_utc (2026, 6, 30, 12, 5, 0), "label");
    assert_string_equal (r->events[1].code, "P");
    assert_string_equal (r->events[1].text, "Pickup Scan");
    assert_string_equal (r->events[1].location, "Atlanta");
    tt_expect_ms (r->events[1].at_ms, tt_utc (2026, 7, 1, 18, 30, 0), "pickup");
    assert_string_equal (r->events[2].location, "Louisville");
    tt_expect_ms (r->status_at_ms, tt_utc (2026, 7, 2, 4, 30, 0), "the latest activity");
    assert_string_equal (r->location, "Louisville");
    carrier_answer_free (&a);

    /* Delivered: the rescheduled date over the scheduled one. The scans
     * in Kyiv: the delivery's gmtDate and gmtTime (11:22 UTC, 14:22 local)
     * win over its local time; the one before has only gmtOffset (08:01
     * local, +03:00: 05:01 UTC). */
    a = tt_parse_fixture (s_ups (), &s_one, 1, 200, -1, "track_delivered.json");
    r = &a.results[0];
    tt_expect_status (r, "D", TAG_DELIVERED, "Delivered_001", false);
    tt_expect_ms (r->estimated_ms, tt_utc (2026, 7, 5, 0, 0, 0), "RDD over SDD");
    tt_expect_ms (r->delivered_ms, tt_utc (2026, 7, 5, 11, 22, 0), "the D scan, gmtDate/gmtTime");
    tt_expect_ms (r->status_at_ms, tt_utc (2026, 7, 5, 11, 22, 0), "the latest activity");
    assert_string_equal (r->events[0].code, "X");
    tt_expect_ms (r->events[0].at_ms, tt_utc (2026, 7, 4, 17, 0, 0), "no zone at all: as UTC");
    assert_string_equal (r->events[1].code, "O");
    tt_expect_ms (r->events[1].at_ms, tt_utc (2026, 7, 5, 5, 1, 0), "local less gmtOffset");
    assert_string_equal (r->location, "Kyiv");
    carrier_answer_free (&a);

    /* Without a delivery scan, the DEL date at deliveryTime's end. */
    const char *del = "{\"trackResponse\": {\"shipment\": [{\"package\": [{\"currentStatus\": "
                      "{\"type\": \"D\"}, \"deliveryDate\": [{\"type\": \"DEL\", \"date\": "
                      "\"20260705\"}], \"deliveryTime\": {\"type\": \"DEL\", \"endTime\": "
                      "\"163000\"}}]}]}}";
    a = tt_parse (s_ups (), &s_one, 1, 200, -1, del, strlen (del));
    tt_expect_ms (a.results[0].delivered_ms, tt_utc (2026, 7, 5, 16, 30, 0), "DEL at endTime");
    carrier_answer_free (&a);

    /* A shipment of two packages: the one asked about. */
    carrier_query_t returned = {.tracking_number = "1Z4861WWE194914215", .trans_id = "t"};
    a = tt_parse_fixture (s_ups (), &returned, 1, 200, -1, "track_returned.json");
    tt_expect_status (&a.results[0], "RS", TAG_EXCEPTION, "Exception_011", true);
    tt_expect_ms (a.results[0].status_at_ms, tt_utc (2026, 7, 10, 10, 15, 0), "RS");
    carrier_answer_free (&a);

    /* A type no list has: kept raw. */
    const char *odd = "{\"trackResponse\": {\"shipment\": [{\"package\": [{\"currentStatus\": "
                      "{\"type\": \"ZZ\", \"description\": \"Something new\"}}]}]}}";
    a = tt_parse (s_ups (), &s_one, 1, 200, -1, odd, strlen (odd));
    assert_true (a.results[0].found);
    assert_false (a.results[0].mapped);
    assert_string_equal (a.results[0].raw_code, "ZZ");
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
        bool found;
    } cases[] = {
        /* Unknown numbers: found = false, whichever way UPS says it. */
        {200, "track_not_found_warning.json", CARRIER_OK, "", NULL, false},
        {404, "track_not_found_404.json", CARRIER_OK, "", NULL, false},
        {400, "track_not_found_404.json", CARRIER_OK, "", NULL, false},
        {404, "bad_gateway_502.html", CARRIER_OK, "", NULL, false},
        {400, "track_invalid_number_400.json", CARRIER_BAD_REQUEST, "151018", "Invalid tracking",
         false},
        /* The bearer refused: code "401", the poller's cue to drop its
         * token and ask for a new one. */
        {401, "track_unauthorized_401.json", CARRIER_STOP_ACCOUNT, "401", "Invalid Authentication",
         false},
        {403, "track_unauthorized_401.json", CARRIER_STOP_ACCOUNT, "403", NULL, false},
        {502, "bad_gateway_502.html", CARRIER_RETRY, "502", NULL, false},
        {200, "bad_gateway_502.html", CARRIER_RETRY, "", "not JSON", false},
        {200, "truncated.json", CARRIER_RETRY, "", "not JSON", false},
        {200, "wrong_types.json", CARRIER_RETRY, "", "unexpected JSON", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        carrier_answer_t a =
            tt_parse_fixture (s_ups (), &s_one, 1, cases[i].status, -1, cases[i].fixture);
        tt_expect (&a, cases[i].verdict, cases[i].code, cases[i].reason, cases[i].fixture);
        if (a.verdict == CARRIER_OK)
            assert_int_equal (a.results[0].found, cases[i].found);
        carrier_answer_free (&a);
    }
    carrier_answer_t a =
        tt_parse_fixture (s_ups (), &s_one, 1, 429, -1, "too_many_requests_429.json");
    tt_expect (&a, CARRIER_WAIT, "429", NULL, "429 without Retry-After");
    assert_int_equal (a.wait_ms, 0);
    carrier_answer_free (&a);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_number_check),  cmocka_unit_test (test_token_request),
        cmocka_unit_test (test_token_answers), cmocka_unit_test (test_request),
        cmocka_unit_test (test_packages),      cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
