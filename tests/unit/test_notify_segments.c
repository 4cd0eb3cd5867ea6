/*
 * test_notify_segments: how many SMS a text goes as, and in which
 * encoding (services/notify/segments), against the counts the networks
 * and the SMS providers' calculators give: 160 GSM-7 characters are one
 * message and 161 two; a euro sign or a bracket takes two septets; one
 * Cyrillic letter, an emoji or a backquote makes the whole text UCS-2, 70
 * characters single and 67 a part, an emoji outside the BMP counting two;
 * and a character that does not fit what is left of a part starts the
 * next, which can cost a third message where plain division says two.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "segments.h"

/* n copies of s, concatenated; owned. */
static char *
s_repeat (const char *s, size_t n)
{
    size_t len = strlen (s), i;
    char *out = malloc (len * n + 1);
    assert_non_null (out);
    for (i = 0; i < n; i++)
        memcpy (out + i * len, s, len);
    out[len * n] = '\0';
    return out;
}

static void
s_expect (const char *text, segments_encoding_t enc, size_t units, size_t segments)
{
    segments_t s;
    assert_int_equal (segments_count (text, strlen (text), &s), 0);
    if (s.encoding != enc || s.units != units || s.segments != segments)
        fail_msg ("\"%.40s...\" (%zu bytes): %s, %zu units, %zu segments; wanted %s, %zu, %zu",
                  text, strlen (text), segments_encoding_name (s.encoding), s.units, s.segments,
                  segments_encoding_name (enc), units, segments);
}

/* Concatenates a, b and c; owned. */
static char *
s_cat3 (const char *a, const char *b, const char *c)
{
    size_t la = strlen (a), lb = strlen (b), lc = strlen (c);
    char *out = malloc (la + lb + lc + 1);
    assert_non_null (out);
    memcpy (out, a, la);
    memcpy (out + la, b, lb);
    memcpy (out + la + lb, c, lc + 1);
    return out;
}

static void
test_gsm7 (void **state)
{
    char *t;
    segments_t s;
    (void)state;
    s_expect ("", SEGMENTS_GSM7, 0, 0);
    s_expect ("Your parcel is on its way!", SEGMENTS_GSM7, 26, 1);
    t = s_repeat ("a", 160);
    s_expect (t, SEGMENTS_GSM7, 160, 1);
    free (t);
    t = s_repeat ("a", 161);
    s_expect (t, SEGMENTS_GSM7, 161, 2);
    assert_int_equal (segments_count (t, strlen (t), &s), 0);
    assert_int_equal (s.per_segment, 153);
    free (t);
    t = s_repeat ("a", 306);
    s_expect (t, SEGMENTS_GSM7, 306, 2);
    free (t);
    t = s_repeat ("a", 307);
    s_expect (t, SEGMENTS_GSM7, 307, 3);
    free (t);
    /* The whole default alphabet outside ASCII: one septet each. */
    s_expect ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", SEGMENTS_GSM7, 42, 1);
    s_expect ("line\r\nline", SEGMENTS_GSM7, 10, 1);
}

static void
test_extension (void **state)
{
    char *t, *a, *b;
    (void)state;
    s_expect ("€", SEGMENTS_GSM7, 2, 1);
    s_expect ("^{}\\[~]|€", SEGMENTS_GSM7, 18, 1);
    t = s_repeat ("€", 80);
    s_expect (t, SEGMENTS_GSM7, 160, 1);
    free (t);
    t = s_repeat ("€", 81);
    s_expect (t, SEGMENTS_GSM7, 162, 2);
    free (t);
    /* 306 septets, but the euro sign does not fit the first part's last
     * septet: 152 + (2 + 151) + 1, three messages. */
    a = s_repeat ("a", 152);
    b = s_cat3 (a, "€", a);
    s_expect (b, SEGMENTS_GSM7, 306, 3);
    free (b);
    free (a);
}

static void
test_ucs2 (void **state)
{
    char *t, *b;
    segments_t s;
    (void)state;
    s_expect ("Привіт", SEGMENTS_UCS2, 6, 1);
    /* One Cyrillic letter turns a GSM text UCS-2. */
    t = s_repeat ("a", 100);
    b = s_cat3 (t, "ї", "");
    s_expect (b, SEGMENTS_UCS2, 101, 2);
    free (b);
    free (t);
    t = s_repeat ("ж", 70);
    s_expect (t, SEGMENTS_UCS2, 70, 1);
    free (t);
    t = s_repeat ("ж", 71);
    s_expect (t, SEGMENTS_UCS2, 71, 2);
    assert_int_equal (segments_count (t, strlen (t), &s), 0);
    assert_int_equal (s.per_segment, 67);
    free (t);
    t = s_repeat ("ж", 134);
    s_expect (t, SEGMENTS_UCS2, 134, 2);
    free (t);
    t = s_repeat ("ж", 135);
    s_expect (t, SEGMENTS_UCS2, 135, 3);
    free (t);
    /* In UCS-2 the euro sign is one unit. */
    s_expect ("ж€", SEGMENTS_UCS2, 2, 1);
    /* A backquote and a Greek small letter are not in the alphabet. */
    s_expect ("`", SEGMENTS_UCS2, 1, 1);
    s_expect ("α", SEGMENTS_UCS2, 1, 1);
}

static void
test_emoji (void **state)
{
    char *t, *a, *b;
    (void)state;
    s_expect ("😀", SEGMENTS_UCS2, 2, 1);
    s_expect ("ok 👍", SEGMENTS_UCS2, 5, 1);
    t = s_repeat ("😀", 35);
    s_expect (t, SEGMENTS_UCS2, 70, 1);
    free (t);
    t = s_repeat ("😀", 36);
    s_expect (t, SEGMENTS_UCS2, 72, 2);
    free (t);
    /* A surrogate pair is never split: 66 + (2 + 65) + 1. */
    a = s_repeat ("a", 66);
    b = s_cat3 (a, "😀", a);
    s_expect (b, SEGMENTS_UCS2, 134, 3);
    free (b);
    free (a);
}

static void
test_bad_input (void **state)
{
    segments_t s;
    (void)state;
    assert_int_equal (segments_count ("ab\xff", 3, &s), -1);
    assert_int_equal (segments_count ("a\0b", 3, &s), -1);
    assert_int_equal (s.segments, 0);
    assert_string_equal (segments_encoding_name (SEGMENTS_GSM7), "GSM-7");
    assert_string_equal (segments_encoding_name (SEGMENTS_UCS2), "UCS-2");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_gsm7),      cmocka_unit_test (test_extension),
        cmocka_unit_test (test_ucs2),      cmocka_unit_test (test_emoji),
        cmocka_unit_test (test_bad_input),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
