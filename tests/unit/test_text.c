/*
 * common/text: what PostgreSQL's text accepts (rt_utf8), the growable
 * buffer and its array literals (rt_buf). Array literals are checked by
 * what matters to a user: PostgreSQL's own parser gives back exactly the
 * values that went in, whatever they hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "rt_buf.h"
#include "rt_test.h"
#include "rt_utf8.h"

typedef struct {
    const char *bytes; /* the input */
    size_t len;        /* its length (NULs inside count) */
    size_t bad_at;     /* where rt_utf8_bad_at (nul_ok = false) stops; len when valid */
    const char *why;   /* what makes it bad, for the failure message */
} s_case_t;

#define S(lit) lit, sizeof lit - 1

static const s_case_t s_cases[] = {
    {S (""), 0, "empty"},
    {S ("plain ascii"), 11, "ascii"},
    {S ("Привіт, світе"), sizeof "Привіт, світе" - 1, "Cyrillic"},
    {S ("\xf0\x9f\x99\x82 emoji"), 10, "a 4-byte sequence"},
    {S ("\xef\xbf\xbd"), 3, "U+FFFD itself"},
    {S ("\xf4\x8f\xbf\xbf"), 4, "U+10FFFF, the last"},
    {S ("ab\0cd"), 2, "a NUL"},
    {S ("\xff"), 0, "0xff never starts a sequence"},
    {S ("ok\x80"), 2, "a lone continuation byte"},
    {S ("\xc0\xaf"), 0, "an overlong '/'"},
    {S ("\xe0\x80\xaf"), 0, "an overlong 3-byte form"},
    {S ("\xed\xa0\x80"), 0, "a surrogate"},
    {S ("\xf4\x90\x80\x80"), 0, "above U+10FFFF"},
    {S ("abc\xe2\x82"), 3, "a sequence cut at the end"},
    {S ("\xe2\x28\xa1"), 0, "a broken continuation"},
};

static void
test_utf8_validity (void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof s_cases / sizeof *s_cases; i++) {
        const s_case_t *c = &s_cases[i];
        size_t at = rt_utf8_bad_at (c->bytes, c->len, false);
        if (at != c->bad_at)
            fail_msg ("%s: bad at %zu, expected %zu", c->why, at, c->bad_at);
        assert_int_equal (rt_utf8_text_ok (c->bytes, c->len), c->bad_at == c->len);
    }
    /* A NUL is UTF-8, only not text. */
    assert_int_equal (rt_utf8_bad_at ("ab\0cd", 5, true), 5);
}

static void
test_utf8_escape_and_repair (void **state)
{
    size_t n;
    char *e, *r;
    (void)state;
    {
        static const char bad[] = "ok \xff\xc0\xaf and \0 too";
        e = rt_utf8_escape (bad, sizeof bad - 1);
    }
    assert_string_equal (e, "ok \\xff\\xc0\\xaf and \\x00 too");
    assert_true (rt_utf8_text_ok (e, strlen (e)));
    free (e);
    /* Valid text comes back as it was. */
    e = rt_utf8_escape ("ключ \xf0\x9f\x99\x82", strlen ("ключ \xf0\x9f\x99\x82"));
    assert_string_equal (e, "ключ \xf0\x9f\x99\x82");
    free (e);
    r = rt_utf8_repair ("a\xff"
                        "b\0c",
                        5, &n);
    assert_int_equal (n, 9);
    assert_memory_equal (r,
                         "a\xef\xbf\xbd"
                         "b\xef\xbf\xbd"
                         "c",
                         9);
    free (r);
    assert_int_equal (rt_utf8_seq_len ("\xe2\x82\xac", 3), 3);
    assert_int_equal (rt_utf8_seq_len ("\xe2\x82\xac", 2), 0);
    assert_int_equal (rt_utf8_seq_len ("", 0), 0);
}

static void
test_buffer_grows (void **state)
{
    rt_buf_t b = {0};
    int i;
    (void)state;
    for (i = 0; i < 10000; i++)
        rt_buf_printf (&b, "%d,", i);
    assert_false (b.failed);
    assert_int_equal (b.data[b.len], '\0');
    assert_true (strncmp (b.data, "0,1,2,", 6) == 0);
    assert_non_null (strstr (b.data, ",9999,"));
    rt_buf_reset (&b);
    assert_int_equal (b.len, 0);
    rt_buf_put_be32 (&b, 0x01020304);
    rt_buf_put_be16 (&b, 0xfffe);
    rt_buf_put_be64 (&b, 0x1122334455667788ull);
    assert_int_equal (b.len, 14);
    assert_memory_equal (b.data, "\x01\x02\x03\x04\xff\xfe\x11\x22\x33\x44\x55\x66\x77\x88", 14);
    rt_buf_put (&b, NULL, 0); /* an empty bytes field */
    assert_int_equal (b.len, 14);
    rt_buf_free (&b);
    rt_buf_free (&b); /* twice is fine */
}

/* Values that would break a careless array literal. */
static const char *const s_awkward[] = {
    "plain", "",         "with,comma", "with \"quotes\"", "back\\slash", "{braces}",
    "NULL",  " spaced ", "ключ",       "end\\",
};
#define NAWKWARD (sizeof s_awkward / sizeof *s_awkward)

/* A carrier's status text or a city name goes into the tracking page:
 * markup in it must show as text, whatever it is. */
static void
test_html_escape (void **state)
{
    (void)state;
    rt_buf_t b = {0};
    rt_buf_put_html (&b, "<script>alert('x')</script> & \"Київ\"");
    assert_string_equal (b.data,
                         "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Київ&quot;");
    rt_buf_reset (&b);
    rt_buf_put_html (&b, "");
    rt_buf_put_html (&b, "plain");
    assert_string_equal (b.data, "plain");
    rt_buf_free (&b);
}

static void
test_array_literals_round_trip (void **state)
{
    char dsn[1024];
    rt_buf_t text = {0}, bytes = {0}, raw = {0};
    const char *params[3];
    PGconn *conn;
    PGresult *res;
    size_t i;
    (void)state;
    rt_test_db_create ("text_arrays", dsn, sizeof dsn);
    conn = rt_test_pg (dsn);
    rt_buf_array_begin (&text);
    rt_buf_array_begin (&bytes);
    rt_buf_array_begin (&raw);
    for (i = 0; i < NAWKWARD; i++) {
        char num[16];
        rt_buf_array_text (&text, s_awkward[i]);
        rt_buf_array_bytea (&bytes, (const uint8_t *)s_awkward[i], strlen (s_awkward[i]));
        snprintf (num, sizeof num, "%zu", i);
        rt_buf_array_raw (&raw, num);
    }
    rt_buf_array_end (&text);
    rt_buf_array_end (&bytes);
    rt_buf_array_end (&raw);
    assert_false (text.failed || bytes.failed || raw.failed);
    params[0] = text.data;
    params[1] = bytes.data;
    params[2] = raw.data;
    res = PQexecParams (conn,
                        "SELECT t, convert_from(b, 'UTF8'), n FROM unnest($1::text[], $2::bytea[], "
                        "$3::int[]) AS u(t, b, n)",
                        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("PostgreSQL refused the literals: %s", PQerrorMessage (conn));
    assert_int_equal (PQntuples (res), NAWKWARD);
    for (i = 0; i < NAWKWARD; i++) {
        assert_false (PQgetisnull (res, (int)i, 0));
        assert_string_equal (PQgetvalue (res, (int)i, 0), s_awkward[i]);
        assert_string_equal (PQgetvalue (res, (int)i, 1), s_awkward[i]);
        assert_int_equal (atoi (PQgetvalue (res, (int)i, 2)), (int)i);
    }
    PQclear (res);
    /* An empty array is "{}". */
    rt_buf_reset (&raw);
    rt_buf_array_begin (&raw);
    rt_buf_array_end (&raw);
    assert_string_equal (raw.data, "{}");
    rt_buf_free (&text);
    rt_buf_free (&bytes);
    rt_buf_free (&raw);
    PQfinish (conn);
}

/* Code points, not bytes: Latin, Cyrillic, CJK, an emoji outside the
 * BMP (one code point in 4 bytes, two UTF-16 units), and a cut sequence. */
static void
test_utf8_count (void **state)
{
    (void)state;
    assert_int_equal (rt_utf8_count ("", 0), 0);
    assert_int_equal (rt_utf8_count ("abc", 3), 3);
    assert_int_equal (rt_utf8_count ("\xd0\x9f\xd1\x80\xd0\xb8", 6), 3); /* При */
    assert_int_equal (rt_utf8_count ("\xe4\xbd\xa0\xe5\xa5\xbd", 6), 2); /* 你好 */
    assert_int_equal (rt_utf8_count ("a\xf0\x9f\x98\x80"
                                     "b",
                                     6),
                      3);                                    /* a😀b */
    assert_int_equal (rt_utf8_count ("\xd0\x9f\xd1", 3), 2); /* cut */
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_utf8_validity), cmocka_unit_test (test_utf8_escape_and_repair),
        cmocka_unit_test (test_buffer_grows),  cmocka_unit_test (test_array_literals_round_trip),
        cmocka_unit_test (test_html_escape),   cmocka_unit_test (test_utf8_count),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
