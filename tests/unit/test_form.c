/*
 * test_form: common/http/rt_form, the urlencoded forms Twilio and Mailgun
 * post and the query strings of every webhook.
 *
 * What a caller relies on: values decoded exactly ('+' as a space in
 * forms, "%2B" as a plus), malformed escapes and encoded NULs refused
 * rather than kept, arrival order kept, and a sorted view that is stable
 * and fast on any input (Twilio's signature is computed over it before the
 * request is authenticated).
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

#include "rt_form.h"

static rt_form_t *
s_parse (const char *text)
{
    char err[128] = "";
    rt_form_t *form = rt_form_parse (text, strlen (text), err, sizeof err);
    if (!form)
        fail_msg ("\"%s\" refused: %s", text, err);
    return form;
}

static void
test_decoding (void **state)
{
    rt_form_t *form = s_parse ("a=1&b=x+y%21&c=%2B%2b&d=caf%C3%A9&e=%D0%9E%D0%BB%D0%B5%D0%BD%D0%B0"
                               "&f=a%3Db%26c&g%20h=%7e");
    (void)state;
    assert_int_equal (rt_form_count (form), 7);
    assert_string_equal (rt_form_get (form, "a"), "1");
    assert_string_equal (rt_form_get (form, "b"), "x y!");
    assert_string_equal (rt_form_get (form, "c"), "++");
    assert_string_equal (rt_form_get (form, "d"), "café");
    assert_string_equal (rt_form_get (form, "e"), "Олена");
    /* Encoded separators are data, not structure. */
    assert_string_equal (rt_form_get (form, "f"), "a=b&c");
    assert_string_equal (rt_form_get (form, "g h"), "~");
    assert_null (rt_form_get (form, "missing"));
    assert_null (rt_form_get (form, "A"));
    rt_form_destroy (&form);
    assert_null (form);
    rt_form_destroy (&form);
    rt_form_destroy (NULL);
}

static void
test_a_twilio_body (void **state)
{
    static const char body[] =
        "ToCountry=US&ToState=CA&SmsMessageSid=SM1234567890abcdef1234567890abcdef&NumMedia=1"
        "&Body=Where+is+my+parcel%3F+%F0%9F%93%A6&From=%2B380501234567&To=%2B14155551234"
        "&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FAC1%2FMessages%2FMM1"
        "%2FMedia%2FME1&MediaContentType0=image%2Fjpeg";
    rt_form_t *form = s_parse (body);
    (void)state;
    assert_string_equal (rt_form_get (form, "Body"), "Where is my parcel? 📦");
    assert_string_equal (rt_form_get (form, "From"), "+380501234567");
    assert_string_equal (rt_form_get (form, "MediaUrl0"),
                         "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1");
    assert_string_equal (rt_form_get (form, "MediaContentType0"), "image/jpeg");
    rt_form_destroy (&form);
}

static void
test_order_and_repeats (void **state)
{
    rt_form_t *form = s_parse ("z=1&a=2&z=3&m=4");
    const rt_form_pair_t *p;
    (void)state;
    assert_int_equal (rt_form_count (form), 4);
    p = rt_form_pair (form, 0);
    assert_string_equal (p->name, "z");
    assert_string_equal (p->value, "1");
    p = rt_form_pair (form, 2);
    assert_string_equal (p->name, "z");
    assert_string_equal (p->value, "3");
    assert_null (rt_form_pair (form, 4));
    /* The first of repeated names. */
    assert_string_equal (rt_form_get (form, "z"), "1");
    rt_form_destroy (&form);
}

static void
test_empty_parts (void **state)
{
    rt_form_t *form;
    (void)state;
    form = s_parse ("");
    assert_int_equal (rt_form_count (form), 0);
    assert_non_null (rt_form_sorted (form));
    rt_form_destroy (&form);

    form = s_parse ("&&a=1&&b=2&");
    assert_int_equal (rt_form_count (form), 2);
    assert_string_equal (rt_form_pair (form, 0)->name, "a");
    assert_string_equal (rt_form_pair (form, 1)->name, "b");
    rt_form_destroy (&form);

    /* A name without '=' has the empty value; "=v" has the empty name. */
    form = s_parse ("flag&=v&e=&x==y");
    assert_int_equal (rt_form_count (form), 4);
    assert_string_equal (rt_form_get (form, "flag"), "");
    assert_string_equal (rt_form_get (form, ""), "v");
    assert_string_equal (rt_form_get (form, "e"), "");
    /* Only the first '=' separates. */
    assert_string_equal (rt_form_get (form, "x"), "=y");
    rt_form_destroy (&form);
}

static void
test_malformed_escapes_rejected (void **state)
{
    static const char *bad[] = {
        "a=%",   "a=%4",    "a=%G1",  "a=%1G", "a=%%41", "a=100%", "%=1",
        "%zz=1", "a=1&b=%", "a=% 41", "a=%-1", "a=%+1",  "a=%4%",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        rt_form_t *form = rt_form_parse (bad[i], strlen (bad[i]), err, sizeof err);
        if (form) {
            rt_form_destroy (&form);
            fail_msg ("\"%s\" was accepted", bad[i]);
        }
        if (!strstr (err, "percent-encoding"))
            fail_msg ("\"%s\": reason \"%s\"", bad[i], err);
    }
    /* Without an error buffer it still fails cleanly. */
    assert_null (rt_form_parse ("a=%", 3, NULL, 0));
}

static void
test_nul_rejected (void **state)
{
    char err[128];
    rt_form_t *form;
    char *s;
    (void)state;
    /* An encoded NUL would cut "admin%00.evil" to "admin" further on. */
    assert_null (rt_form_parse ("name=admin%00.evil", 18, err, sizeof err));
    assert_null (rt_form_parse ("na%00me=x", 9, err, sizeof err));
    /* So would a raw one inside the given length. */
    assert_null (rt_form_parse ("a=b\0c", 5, err, sizeof err));
    /* The length is the bound, not a terminator. */
    form = rt_form_parse ("a=1&b=2", 3, err, sizeof err);
    assert_non_null (form);
    assert_int_equal (rt_form_count (form), 1);
    assert_string_equal (rt_form_get (form, "a"), "1");
    rt_form_destroy (&form);

    assert_null (rt_url_decode ("%00", 3, 1));
    s = rt_url_decode ("%01", 3, 1);
    assert_non_null (s);
    assert_string_equal (s, "\x01");
    free (s);
}

static void
test_url_decode (void **state)
{
    char *s;
    (void)state;
    /* In a path '+' is a plus; in a form it is a space. */
    s = rt_url_decode ("a+b%20c", 7, 0);
    assert_string_equal (s, "a+b c");
    free (s);
    s = rt_url_decode ("a+b%20c", 7, 1);
    assert_string_equal (s, "a b c");
    free (s);
    s = rt_url_decode ("", 0, 1);
    assert_string_equal (s, "");
    free (s);
    /* Only len bytes are read: the escape is cut, so it is malformed. */
    assert_null (rt_url_decode ("%41", 2, 1));
    assert_null (rt_url_decode ("%", 1, 0));
}

static void
test_sorted_is_stable (void **state)
{
    rt_form_t *form = s_parse ("b=1&a=2&B=x&b=0&a=1&ab=3&=e&a=0");
    const rt_form_pair_t *const *sorted;
    static const char *want[][2] = {{"", "e"},  {"B", "x"},  {"a", "2"}, {"a", "1"},
                                    {"a", "0"}, {"ab", "3"}, {"b", "1"}, {"b", "0"}};
    size_t i;
    (void)state;
    sorted = rt_form_sorted (form);
    assert_non_null (sorted);
    for (i = 0; i < 8; i++) {
        assert_string_equal (sorted[i]->name, want[i][0]);
        assert_string_equal (sorted[i]->value, want[i][1]);
    }
    /* Asked again: the same view, and arrival order untouched. */
    assert_ptr_equal (rt_form_sorted (form), sorted);
    assert_string_equal (rt_form_pair (form, 0)->name, "b");
    assert_string_equal (rt_form_pair (form, 0)->value, "1");
    rt_form_destroy (&form);
}

static void
test_sorted_bytewise (void **state)
{
    /* Bytewise, not by locale: upper case before lower, UTF-8 last. */
    rt_form_t *form = s_parse ("%C3%A9=1&z=2&Z=3&0=4");
    const rt_form_pair_t *const *sorted = rt_form_sorted (form);
    (void)state;
    assert_string_equal (sorted[0]->name, "0");
    assert_string_equal (sorted[1]->name, "Z");
    assert_string_equal (sorted[2]->name, "z");
    assert_string_equal (sorted[3]->name, "é");
    rt_form_destroy (&form);
}

/* A hostile, unauthenticated form: 100,000 pairs in reverse order, and as
 * many with one name. Sorting must not take quadratic time. */
static void
test_sorted_large_hostile (void **state)
{
    size_t n = 100000, o = 0, i, cap = n * 16;
    char *body = malloc (cap), err[128];
    rt_form_t *form;
    const rt_form_pair_t *const *sorted;
    clock_t start;
    double secs;
    (void)state;
    for (i = 0; i < n; i++)
        o += (size_t)snprintf (body + o, cap - o, "%sk%06zu=%zu", i ? "&" : "", n - i, i);
    form = rt_form_parse (body, o, err, sizeof err);
    assert_non_null (form);
    start = clock ();
    sorted = rt_form_sorted (form);
    secs = (double)(clock () - start) / CLOCKS_PER_SEC;
    assert_non_null (sorted);
    for (i = 1; i < n; i++)
        assert_true (strcmp (sorted[i - 1]->name, sorted[i]->name) < 0);
    assert_string_equal (sorted[0]->name, "k000001");
    /* An insertion sort needs 5e9 comparisons here (tens of seconds); an
     * O(n log n) sort well under one, even under AddressSanitizer. */
    if (secs > 5.0)
        fail_msg ("sorting %zu pairs took %.1f s", n, secs);
    rt_form_destroy (&form);

    o = 0;
    for (i = 0; i < n; i++)
        o += (size_t)snprintf (body + o, cap - o, "%sk=%zu", i ? "&" : "", i);
    form = rt_form_parse (body, o, err, sizeof err);
    assert_non_null (form);
    sorted = rt_form_sorted (form);
    assert_non_null (sorted);
    /* All one name: arrival order is kept. */
    for (i = 0; i < n; i++)
        assert_int_equal (atol (sorted[i]->value), (long)i);
    rt_form_destroy (&form);
    free (body);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_decoding),
        cmocka_unit_test (test_a_twilio_body),
        cmocka_unit_test (test_order_and_repeats),
        cmocka_unit_test (test_empty_parts),
        cmocka_unit_test (test_malformed_escapes_rejected),
        cmocka_unit_test (test_nul_rejected),
        cmocka_unit_test (test_url_decode),
        cmocka_unit_test (test_sorted_is_stable),
        cmocka_unit_test (test_sorted_bytewise),
        cmocka_unit_test (test_sorted_large_hostile),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
