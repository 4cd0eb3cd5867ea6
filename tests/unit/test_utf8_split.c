/*
 * rt_utf8_split: a long text cut for a channel that takes it as several
 * messages. What a reader of the messages notices: every piece within the
 * limit in characters (Cyrillic counted as characters, not bytes), the
 * pieces together the whole text save the breaks they were cut at, cuts
 * at a paragraph before a line, a line before a sentence, a sentence
 * before a word, and a word never split unless it is longer than a piece;
 * and a text too long for the pieces allowed refused (0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_utf8.h"

#define S_MAX 16

/* The pieces of text at max chars, joined by "|" into out. */
static size_t
s_split (const char *text, size_t max, char *out, size_t outlen)
{
    size_t off[S_MAX], n[S_MAX], pieces = rt_utf8_split (text, strlen (text), max, off, n, S_MAX);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < pieces; i++) {
        assert_true (rt_utf8_count (text + off[i], n[i]) <= max);
        assert_true (rt_utf8_text_ok (text + off[i], n[i]));
        used += (size_t)snprintf (out + used, outlen - used, "%s%.*s", i ? "|" : "", (int)n[i],
                                  text + off[i]);
    }
    return pieces;
}

static void
test_breaks_in_order (void **state)
{
    char out[512];
    (void)state;
    /* A paragraph break within reach wins over a later line or sentence. */
    assert_int_equal (s_split ("First part.\n\nSecond. Third\nfourth", 26, out, sizeof out), 2);
    assert_string_equal (out, "First part.|Second. Third\nfourth");
    /* No paragraph: the last line break. */
    assert_int_equal (s_split ("one two\nthree four five", 16, out, sizeof out), 2);
    assert_string_equal (out, "one two|three four five");
    /* No line: the last sentence end, then the last space. */
    assert_int_equal (s_split ("Da. Net da net da", 14, out, sizeof out), 2);
    assert_string_equal (out, "Da.|Net da net da");
    assert_int_equal (s_split ("aa bb cc dd ee", 8, out, sizeof out), 2);
    assert_string_equal (out, "aa bb cc|dd ee");
    /* A word longer than a piece is cut where the room ends. */
    assert_int_equal (s_split ("abcdefghij", 4, out, sizeof out), 3);
    assert_string_equal (out, "abcd|efgh|ij");
    /* Fits: one piece, untouched. */
    assert_int_equal (s_split ("short", 10, out, sizeof out), 1);
    assert_string_equal (out, "short");
    assert_int_equal (s_split ("", 10, out, sizeof out), 1);
    assert_string_equal (out, "");
}

static void
test_characters_not_bytes (void **state)
{
    char out[512];
    (void)state;
    /* 6 Cyrillic letters a word (12 bytes): 13 characters fit two. */
    assert_int_equal (s_split ("привіт привіт привіт", 13, out, sizeof out), 2);
    assert_string_equal (out, "привіт привіт|привіт");
    /* A hard cut never lands inside a character. */
    assert_int_equal (s_split ("ґґґґґ", 2, out, sizeof out), 3);
    assert_string_equal (out, "ґґ|ґґ|ґ");
}

static void
test_whole_text_kept (void **state)
{
    /* 4096-character pieces of a 10,000-character text of words: the
     * pieces and the spaces cut at make the text again. */
    size_t len = 10000, off[S_MAX], n[S_MAX], pieces, at = 0;
    char *text = malloc (len + 1);
    (void)state;
    for (size_t i = 0; i < len; i++)
        text[i] = i % 7 == 6 ? ' ' : (char)('a' + (char)(i % 26));
    text[len] = '\0';
    pieces = rt_utf8_split (text, len, 4096, off, n, S_MAX);
    assert_int_equal (pieces, 3);
    for (size_t i = 0; i < pieces; i++) {
        assert_true (n[i] <= 4096);
        assert_int_equal (off[i], at);
        at = off[i] + n[i];
        while (at < len && text[at] == ' ')
            at++;
    }
    assert_int_equal (at, len);
    /* Too long for the pieces allowed: refused. */
    assert_int_equal (rt_utf8_split (text, len, 4096, off, n, 2), 0);
    assert_int_equal (rt_utf8_split (text, len, 0, off, n, S_MAX), 0);
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_breaks_in_order),
        cmocka_unit_test (test_characters_not_bytes),
        cmocka_unit_test (test_whole_text_kept),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
