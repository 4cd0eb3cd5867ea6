/*
 * rt_jsonw: what a client parses from the text it writes. Every answer is
 * read back with jansson (not compared as text), so the test says what a
 * client sees: the members, their values, strings with quotes, control
 * characters and Cyrillic intact, bytes that are not UTF-8 as U+FFFD; and
 * a misuse (a value with no key, a container closed as the other kind,
 * nesting past the bound) marks the writer failed instead of writing
 * something that is not JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "rt_jsonw.h"

/* The buffer parsed as JSON; fails the test when it is not. */
static json_t *
s_parse (const rt_buf_t *b)
{
    json_error_t e;
    json_t *j = json_loadb (b->data, b->len, 0, &e);
    if (!j)
        fail_msg ("not JSON (%s): %.*s", e.text, (int)b->len, b->data);
    return j;
}

static void
test_rows (void **state)
{
    rt_buf_t b = {0};
    rt_jsonw_t w;
    json_t *j, *items, *first;
    (void)state;
    rt_jsonw_init (&w, &b);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "items");
    rt_jsonw_array (&w);
    for (int i = 0; i < 3; i++) {
        rt_jsonw_object (&w);
        rt_jsonw_kstring (&w, "id", i == 0 ? "0190-a" : "0190-b");
        rt_jsonw_kint (&w, "unanswered", i == 2 ? INT64_MIN : i * 7);
        rt_jsonw_kbool (&w, "sla_breached", i == 1);
        rt_jsonw_kstring (&w, "assignee", NULL);
        rt_jsonw_key (&w, "flags");
        rt_jsonw_raw (&w, "[\"vip\",\"demanding\"]");
        rt_jsonw_key (&w, "last_message");
        rt_jsonw_object (&w);
        rt_jsonw_kstring (&w, "text", "Де моя посилка?");
        rt_jsonw_object_end (&w);
        rt_jsonw_object_end (&w);
    }
    rt_jsonw_array_end (&w);
    rt_jsonw_key (&w, "next_cursor");
    rt_jsonw_null (&w);
    rt_jsonw_object_end (&w);
    assert_true (rt_jsonw_ok (&w));
    j = s_parse (&b);
    items = json_object_get (j, "items");
    assert_int_equal (json_array_size (items), 3);
    first = json_array_get (items, 0);
    assert_string_equal (json_string_value (json_object_get (first, "id")), "0190-a");
    assert_int_equal (
        json_integer_value (json_object_get (json_array_get (items, 1), "unanswered")), 7);
    assert_true (json_integer_value (json_object_get (json_array_get (items, 2), "unanswered")) ==
                 INT64_MIN);
    assert_true (json_is_false (json_object_get (first, "sla_breached")));
    assert_true (json_is_true (json_object_get (json_array_get (items, 1), "sla_breached")));
    assert_true (json_is_null (json_object_get (first, "assignee")));
    assert_string_equal (json_string_value (json_array_get (json_object_get (first, "flags"), 1)),
                         "demanding");
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (first, "last_message"), "text")),
        "Де моя посилка?");
    assert_true (json_is_null (json_object_get (j, "next_cursor")));
    assert_int_equal (json_object_size (j), 2);
    json_decref (j);
    rt_buf_free (&b);
}

static void
test_strings_escaped (void **state)
{
    static const char odd[] = "a\"b\\c\n\r\t\x01\x1f</script>\x7f";
    static const char broken[] = "ok \xff\xfe then \xc3 end \xe2\x82";
    rt_buf_t b = {0};
    rt_jsonw_t w;
    json_t *j;
    (void)state;
    rt_jsonw_init (&w, &b);
    rt_jsonw_array (&w);
    rt_jsonw_string (&w, odd);
    rt_jsonw_string (&w, broken);
    rt_jsonw_stringn (&w, "nul\0inside", 10);
    rt_jsonw_string (&w, "");
    rt_jsonw_array_end (&w);
    assert_true (rt_jsonw_ok (&w));
    j = json_loadb (b.data, b.len, JSON_ALLOW_NUL, NULL);
    assert_non_null (j);
    assert_string_equal (json_string_value (json_array_get (j, 0)), odd);
    assert_string_equal (json_string_value (json_array_get (j, 1)),
                         "ok \xef\xbf\xbd\xef\xbf\xbd then \xef\xbf\xbd end "
                         "\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal (json_string_length (json_array_get (j, 2)), 10);
    assert_memory_equal (json_string_value (json_array_get (j, 2)), "nul\0inside", 10);
    assert_string_equal (json_string_value (json_array_get (j, 3)), "");
    json_decref (j);
    rt_buf_free (&b);
}

static void
test_misuse_fails (void **state)
{
    rt_buf_t b = {0};
    rt_jsonw_t w;
    (void)state;
    /* A value where a key is due. */
    rt_jsonw_init (&w, &b);
    rt_jsonw_object (&w);
    rt_jsonw_string (&w, "no key");
    assert_false (rt_jsonw_ok (&w));
    /* A key in an array. */
    rt_buf_reset (&b);
    rt_jsonw_init (&w, &b);
    rt_jsonw_array (&w);
    rt_jsonw_key (&w, "k");
    assert_false (rt_jsonw_ok (&w));
    /* An object closed as an array, and one closed after a bare key. */
    rt_buf_reset (&b);
    rt_jsonw_init (&w, &b);
    rt_jsonw_object (&w);
    rt_jsonw_array_end (&w);
    assert_false (rt_jsonw_ok (&w));
    rt_buf_reset (&b);
    rt_jsonw_init (&w, &b);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "k");
    rt_jsonw_object_end (&w);
    assert_false (rt_jsonw_ok (&w));
    /* Nesting past the bound; just at it is fine. */
    rt_buf_reset (&b);
    rt_jsonw_init (&w, &b);
    for (int i = 0; i < RT_JSONW_DEPTH; i++)
        rt_jsonw_array (&w);
    assert_true (rt_jsonw_ok (&w));
    rt_jsonw_array (&w);
    assert_false (rt_jsonw_ok (&w));
    rt_buf_free (&b);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_rows),
        cmocka_unit_test (test_strings_escaped),
        cmocka_unit_test (test_misuse_fails),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
