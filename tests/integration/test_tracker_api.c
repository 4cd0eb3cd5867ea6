/*
 * test_tracker_api: trackerd's API as the shop's site and the customer use
 * it, every answer checked against services/tracker/api/openapi.json by
 * third-party validators (rt_test_api).
 *
 *   - GET /v1/shipments?order_id= with a key made by `retainctl shipment
 *     key`: the order's parcel, its tag, the carrier's words, the history
 *     oldest first and a tracking link; ?customer_id= lists the
 *     customer's; an order with none is an empty list;
 *   - without a key, with a key of another service, 401; without exactly
 *     one of order_id and customer_id, 400;
 *   - the tracking page behind the link of the shipped message: the
 *     status in Ukrainian by default, in English by ?lang=en or
 *     Accept-Language, what the carrier wrote escaped, `no-store`; a
 *     forged, truncated or expired link is the same 404 page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "rt_clock.h"
#include "rt_test_api.h"
#include "rt_test_router.h"
#include "rt_test_tracker.h"

#define S_DOC RT_TEST_SOURCE_DIR "/services/tracker/api/openapi.json"

static rt_test_tracker_t s_t;
static rt_test_api_t s_api;
static char s_token[128];
static char s_customer[RT_UUID_STR_LEN + 1];

/* A page fetched as a browser does. */
typedef struct {
    long status;
    char body[65536];
    size_t len;
    char cache[128];
} s_page_t;

static size_t
s_write (char *data, size_t size, size_t n, void *arg)
{
    s_page_t *p = arg;
    size_t len = size * n;
    if (p->len + len >= sizeof p->body)
        len = sizeof p->body - 1 - p->len;
    memcpy (p->body + p->len, data, len);
    p->len += len;
    p->body[p->len] = '\0';
    return size * n;
}

static size_t
s_header (char *data, size_t size, size_t n, void *arg)
{
    s_page_t *p = arg;
    if (strncasecmp (data, "Cache-Control:", 14) == 0)
        snprintf (p->cache, sizeof p->cache, "%.*s", (int)(size * n - 14), data + 14);
    return size * n;
}

static void
s_get_page (const char *path, const char *lang_header, s_page_t *p)
{
    CURL *c = curl_easy_init ();
    struct curl_slist *h = NULL;
    char url[1024], hdr[128];
    memset (p, 0, sizeof *p);
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", s_t.http_port[0], path);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, p);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, p);
    if (lang_header) {
        snprintf (hdr, sizeof hdr, "Accept-Language: %s", lang_header);
        h = curl_slist_append (h, hdr);
        curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    }
    assert_int_equal (curl_easy_perform (c), CURLE_OK);
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &p->status);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    rt_test_api_record (&s_api, "GET", "/t/{token}", path, p->status, "text/html; charset=utf-8",
                        p->body);
}

static int
s_setup (void **state)
{
    (void)state;
    rt_fc_np_state_t a = {.status_code = "5",
                          .status = "Прямує до міста <Львів>",
                          .city_sender = "Київ",
                          .city_recipient = "Львів"};
    rt_fc_np_state_t b = {.status_code = "7",
                          .status = "Прибув на відділення",
                          .city_sender = "Київ",
                          .city_recipient = "Львів",
                          .payed_keeping_ms = rt_clock_now_ms () + 5 * 86400000LL};
    char *out = NULL, *tok;
    rt_test_tracker_open (&s_t, "tracker_api", 0);
    rt_test_trackerd_start (&s_t, 0, NULL);
    rt_fake_carrier_account (s_t.fake, RT_FC_NOVA_POSHTA, "np-key", NULL);
    rt_test_tracker_account (&s_t, "np-main", "nova_poshta", "np-key", NULL, 0, 0);
    rt_test_router_uuid (s_customer);
    rt_fake_carrier_np_set (s_t.fake, "20450000000001", &a);
    rt_test_tracker_ship (&s_t,
                          &(rt_test_shipped_t){.shipment_id = "S-1",
                                               .order_id = "O-1",
                                               .customer_id = s_customer,
                                               .carrier = "nova_poshta",
                                               .tracking_number = "20450000000001",
                                               .shipped_at = rt_clock_now_ms (),
                                               .promised_by = rt_clock_now_ms () + 3 * 86400000LL});
    assert_true (rt_test_tracker_wait_tag (&s_t, "S-1", "InTransit", 15000));
    rt_fake_carrier_np_set (s_t.fake, "20450000000001", &b);
    rt_test_tracker_due (&s_t);
    assert_true (rt_test_tracker_wait_tag (&s_t, "S-1", "AvailableForPickup", 15000));
    rt_test_retainctl_expect (
        rt_test_retainctl_run (s_t.w.t.dsn, "shipment", "key", "--name=shop-site", NULL), 0,
        "shipment key", &out, "token: ", NULL);
    tok = strstr (out, "token: ");
    assert_non_null (tok);
    sscanf (tok + 7, "%127s", s_token);
    free (out);
    rt_test_api_open (&s_api, "tracker_api", s_t.http_port[0]);
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
test_shipments_of_an_order (void **state)
{
    (void)state;
    rt_test_api_reply_t r = rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "order_id=O-1",
                                              s_token, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "shipments")), 1);
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.id"), "S-1");
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.tag"), "AvailableForPickup");
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.carrier_name"), "Nova Poshta");
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.carrier_status"),
                         "Прибув на відділення");
    assert_non_null (rt_test_api_str (r.json, "shipments.0.storage_until"));
    assert_non_null (rt_test_api_str (r.json, "shipments.0.promised_by"));
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.events.0.code"), "5");
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.events.1.code"), "7");
    assert_string_equal (rt_test_api_str (r.json, "shipments.0.events.1.tag"),
                         "AvailableForPickup");
    assert_true (strncmp (rt_test_api_str (r.json, "shipments.0.tracking_url"),
                          "https://shop.example/t/", 23) == 0);
    rt_test_api_reply_free (&r);

    r = rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "customer_id=", s_token, NULL,
                          NULL);
    rt_test_api_expect_problem (r, 400, "bad-query");
    {
        char q[80];
        snprintf (q, sizeof q, "customer_id=%s", s_customer);
        r = rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, q, s_token, NULL, NULL);
        assert_int_equal (r.status, 200);
        assert_int_equal (json_array_size (rt_test_api_at (r.json, "shipments")), 1);
        rt_test_api_reply_free (&r);
    }
    r = rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "order_id=O-none", s_token, NULL,
                          NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "shipments")), 0);
    rt_test_api_reply_free (&r);
}

static void
test_refusals (void **state)
{
    (void)state;
    rt_test_api_expect_problem (
        rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "order_id=O-1", NULL, NULL, NULL),
        401, "unauthorized");
    rt_test_api_expect_problem (
        rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "order_id=O-1",
                          "rk_aaaaaaaaaaaa_"
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                          NULL, NULL),
        401, "unauthorized");
    rt_test_api_expect_problem (
        rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "", s_token, NULL, NULL), 400,
        "bad-query");
    rt_test_api_expect_problem (rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL,
                                                  "order_id=O-1&customer_id=x", s_token, NULL,
                                                  NULL),
                                400, "bad-query");
}

static void
test_tracking_page (void **state)
{
    (void)state;
    rt_test_api_reply_t r = rt_test_api_call (&s_api, "GET", "/v1/shipments", NULL, "order_id=O-1",
                                              s_token, NULL, NULL);
    const char *url = rt_test_api_str (r.json, "shipments.0.tracking_url");
    char path[512], bad[600];
    s_page_t p;
    assert_non_null (url);
    snprintf (path, sizeof path, "/t/%s", url + strlen ("https://shop.example/t/"));
    rt_test_api_reply_free (&r);

    s_get_page (path, NULL, &p);
    assert_int_equal (p.status, 200);
    assert_non_null (strstr (p.body, "lang=\"uk\""));
    assert_non_null (strstr (p.body, "Чекає у відділенні або поштоматі"));
    assert_non_null (strstr (p.body, "20450000000001"));
    assert_non_null (strstr (p.body, "Nova Poshta"));
    /* The carrier's words are text, never markup. */
    assert_non_null (strstr (p.body, "Прямує до міста &lt;Львів&gt;"));
    assert_null (strstr (p.body, "<Львів>"));
    assert_non_null (strstr (p.cache, "no-store"));

    snprintf (bad, sizeof bad, "%s?lang=en", path);
    s_get_page (bad, NULL, &p);
    assert_int_equal (p.status, 200);
    assert_non_null (strstr (p.body, "Waiting at the pickup point"));
    s_get_page (path, "en-GB,en;q=0.8", &p);
    assert_non_null (strstr (p.body, "Waiting at the pickup point"));
    s_get_page (path, "de-DE,de;q=0.9", &p);
    assert_non_null (strstr (p.body, "lang=\"uk\""));

    /* Forged (one letter changed), truncated, made up: one 404 page. */
    snprintf (bad, sizeof bad, "%s", path);
    bad[strlen (bad) - 3] = bad[strlen (bad) - 3] == 'A' ? 'B' : 'A';
    s_get_page (bad, NULL, &p);
    assert_int_equal (p.status, 404);
    assert_non_null (strstr (p.body, "Посилання недійсне або застаріле."));
    snprintf (bad, sizeof bad, "%.*s", (int)(strlen (path) - 10), path);
    s_get_page (bad, NULL, &p);
    assert_int_equal (p.status, 404);
    s_get_page ("/t/nothing", "en", &p);
    assert_int_equal (p.status, 404);
    assert_non_null (strstr (p.body, "This link is invalid or has expired."));
}

static void
test_openapi_document_and_answers (void **state)
{
    (void)state;
    rt_test_api_reply_t r =
        rt_test_api_call (&s_api, "GET", "/openapi.json", NULL, NULL, NULL, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (rt_test_api_str (r.json, "openapi"), "3.1.0");
    rt_test_api_reply_free (&r);
    rt_test_api_check (&s_api, S_DOC);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_shipments_of_an_order),
        cmocka_unit_test (test_refusals),
        cmocka_unit_test (test_tracking_page),
        cmocka_unit_test (test_openapi_document_and_answers),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
