/*
 * test_http_outreq: a request to an outside API as an adapter builds it.
 * A credential in the URL never shows in the URL that is logged; headers
 * stop at their cap without losing those made; a JSON body brings its
 * Content-Type; Basic auth is RFC 7617's base64 of user:password; values
 * escape as RFC 3986 (paths, queries) and HTML forms (bodies) want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "rt_http_outreq.h"

static void
test_url_masks_the_secret (void **state)
{
    (void)state;
    rt_http_outreq_t r = {0};
    assert_int_equal (rt_http_outreq_url (&r, "123:abc", "https://api.telegram.org/bot%s/send?x=%s",
                                          "123:abc", "123:abc"),
                      0);
    assert_string_equal (r.url, "https://api.telegram.org/bot123:abc/send?x=123:abc");
    assert_string_equal (r.log_url, "https://api.telegram.org/bot***/send?x=***");
    assert_int_equal (rt_http_outreq_url (&r, NULL, "http://h/%d", 7), 0);
    assert_string_equal (r.log_url, "http://h/7");
    rt_http_outreq_free (&r);
    assert_null (r.url);
    rt_http_outreq_free (&r);
}

static void
test_headers_json_and_basic_auth (void **state)
{
    (void)state;
    rt_http_outreq_t r = {0};
    /* RFC 7617's example: Aladdin / open sesame. */
    assert_int_equal (rt_http_outreq_basic_auth (&r, "Aladdin", "open sesame"), 0);
    assert_string_equal (r.headers[0], "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    assert_int_equal (rt_http_outreq_json (&r, json_pack ("{si ss}", "b", 1, "a", "x")), 0);
    assert_string_equal (r.body, "{\"b\":1,\"a\":\"x\"}");
    assert_int_equal (r.body_len, strlen (r.body));
    assert_string_equal (r.headers[1], "Content-Type: application/json");
    assert_int_equal (rt_http_outreq_json (&r, NULL), -1);
    for (int i = 2; i < RT_HTTP_OUTREQ_HEADERS; i++)
        assert_int_equal (rt_http_outreq_header (&r, "X-%d: v", i), 0);
    assert_int_equal (rt_http_outreq_header (&r, "X-full: v"), -1);
    assert_string_equal (r.headers[RT_HTTP_OUTREQ_HEADERS - 1], "X-7: v");
    assert_null (r.headers[RT_HTTP_OUTREQ_HEADERS]);
    rt_http_outreq_free (&r);
}

static void
test_escapes (void **state)
{
    (void)state;
    rt_buf_t b = {0};
    rt_http_url_escape (&b, "a b/ц~-._");
    assert_string_equal (b.data, "a%20b%2F%D1%86~-._");
    rt_buf_reset (&b);
    rt_http_form_add (&b, "grant type", "a&b c");
    rt_http_form_add (&b, "x", NULL);
    assert_string_equal (b.data, "grant+type=a%26b+c&x=");
    rt_buf_free (&b);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_url_masks_the_secret),
        cmocka_unit_test (test_headers_json_and_basic_auth),
        cmocka_unit_test (test_escapes),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
