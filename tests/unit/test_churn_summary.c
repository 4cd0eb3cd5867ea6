/*
 * Tests services/loyalty/churn/history, summary and files: building customer
 * summaries from raw transactions, and refusing bad files.
 *
 * Expected values: cdnow_customers_summary.csv (the paper's calibration
 * summary, shipped with the data) must be reproduced from CDNOW_sample.txt;
 * customer 1's and 6's mean repeat spend are computed by hand from their
 * lines in CDNOW_sample.txt (and agree with the zbar column of lifetimes'
 * cdnow_customers_summary_with_transactions.csv: 22.35 and 73.74).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "churn/files.h"
#include "churn/history.h"

#define CDNOW_DIR RT_TEST_SOURCE_DIR "/tests/data/cdnow/"

static int32_t
s_day (const char *text)
{
    int32_t d;
    assert_int_equal (churn_history_parse_date (text, strlen (text), &d), 0);
    return d;
}

static void
test_cdnow_summary_reproduced (void **state)
{
    (void)state;
    char err[512];
    churn_history_t *l = churn_files_read_transactions (CDNOW_DIR "CDNOW_sample.txt",
                                                        CHURN_FILES_CDNOW, err, sizeof err);
    if (!l)
        fail_msg ("%s", err);
    assert_int_equal (churn_history_purchases (l), 6919);
    assert_int_equal (churn_history_customers (l), 2357);
    churn_summary_t *s = churn_history_summarize (l, s_day ("1997-09-30"), s_day ("1998-06-30"), 7);
    churn_summary_t *ref =
        churn_files_read_summary (CDNOW_DIR "cdnow_customers_summary.csv", 7, err, sizeof err);
    if (!ref)
        fail_msg ("%s", err);
    assert_int_equal (s->n, ref->n);
    for (size_t i = 0; i < s->n; i++) {
        /* The reference rounds weeks to two decimals. */
        if (atoi (s->id[i]) != atoi (ref->id[i]) || s->frequency[i] != ref->frequency[i] ||
            fabs (s->recency[i] - ref->recency[i]) > 0.005 + 1e-9 ||
            fabs (s->T[i] - ref->T[i]) > 0.005 + 1e-9)
            fail_msg ("customer %s: (%g, %.4f, %.4f), reference %s: (%g, %.2f, %.2f)", s->id[i],
                      s->frequency[i], s->recency[i], s->T[i], ref->id[i], ref->frequency[i],
                      ref->recency[i], ref->T[i]);
    }
    /* Customer 1: 1997-01-01 29.33, 01-18 29.73, 08-02 14.96; holdout one. */
    assert_true (fabs (s->monetary[0] - (29.73 + 14.96) / 2) < 1e-9);
    assert_true (fabs (s->revenue[0] - (29.33 + 29.73 + 14.96)) < 1e-9);
    assert_true (fabs (s->monetary[5] - 73.74) < 0.005);
    assert_true (s->frequency_holdout[0] == 1);
    assert_true (fabs (s->duration_holdout - 39) < 1e-12); /* 273 days */
    churn_summary_destroy (&s);
    churn_summary_destroy (&ref);
    churn_history_destroy (&l);
}

static void
test_history_rules (void **state)
{
    (void)state;
    churn_history_t *l = churn_history_new ();
    /* Same-day purchases merge; order of arrival does not matter;
     * purchases after the calibration end go to the holdout. */
    churn_history_add (l, "ann", 3, s_day ("2024-01-10"), 5);
    churn_history_add (l, "ann", 3, s_day ("2024-01-01"), 10);
    churn_history_add (l, "ann", 3, s_day ("2024-01-10"), 15);
    churn_history_add (l, "ann", 3, s_day ("2024-02-15"), 7);
    churn_history_add (l, "bob", 3, s_day ("2024-01-20"), 3);
    churn_history_add (l, "cy", 2, s_day ("2024-02-10"), 3); /* after the end: left out */
    churn_summary_t *s = churn_history_summarize (l, s_day ("2024-01-31"), s_day ("2024-02-29"), 1);
    assert_int_equal (s->n, 2);
    assert_string_equal (s->id[0], "ann");
    assert_true (s->frequency[0] == 1 && s->recency[0] == 9 && s->T[0] == 30);
    assert_true (s->monetary[0] == 20 && s->revenue[0] == 30);
    assert_true (s->frequency_holdout[0] == 1 && s->monetary_holdout[0] == 7);
    assert_true (s->duration_holdout == 29);
    assert_true (s->frequency[1] == 0 && s->recency[1] == 0 && s->T[1] == 11);
    assert_true (s->monetary[1] == 0 && s->revenue[1] == 3);
    churn_summary_destroy (&s);
    churn_history_destroy (&l);
    assert_null (l);

    /* Dates: both layouts, a time suffix, leap years, nonsense. */
    assert_int_equal (s_day ("1970-01-01"), 0);
    assert_int_equal (s_day ("19970930") - s_day ("1997-01-01"), 272);
    assert_int_equal (s_day ("2024-02-29T10:00:00Z"), s_day ("2024-03-01") - 1);
    int32_t d;
    assert_int_equal (churn_history_parse_date ("2023-02-29", 10, &d), -1);
    assert_int_equal (churn_history_parse_date ("2023-13-01", 10, &d), -1);
    assert_int_equal (churn_history_parse_date ("yesterday", 9, &d), -1);
    char out[11];
    churn_history_format_date (s_day ("2000-02-29"), out);
    assert_string_equal (out, "2000-02-29");
}

/* Writes text to a temporary file and returns its path (static buffer). */
static const char *
s_file (const char *text)
{
    static char path[64];
    strcpy (path, "/tmp/test_churn_summary_XXXXXX");
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t)strlen (text));
    close (fd);
    return path;
}

static void
s_bad_summary (const char *text, const char *want)
{
    char err[512];
    const char *path = s_file (text);
    churn_summary_t *s = churn_files_read_summary (path, 7, err, sizeof err);
    unlink (path);
    assert_null (s);
    if (!strstr (err, want))
        fail_msg ("error \"%s\" does not contain \"%s\"", err, want);
}

static void
test_bad_files_refused (void **state)
{
    (void)state;
    s_bad_summary ("", ":1: empty file");
    s_bad_summary ("frequency,recency\n1,2\n", ":1: missing column T");
    s_bad_summary ("frequency,recency,T\n", ":1: no customers");
    s_bad_summary ("frequency,recency,T\n1,2,3\n1,2\n", ":3: expected 3 fields");
    s_bad_summary ("frequency,recency,T\n1,-2,3\n", ":2: recency is negative");
    s_bad_summary ("frequency,recency,T\n1,abc,3\n", ":2: recency is not a number");
    s_bad_summary ("frequency,recency,T\n1,nan,3\n", ":2: recency is not a number");
    s_bad_summary ("frequency,recency,T\n1,4,3\n", ":2: recency is greater than T");
    s_bad_summary ("frequency,recency,T\n1.5,2,3\n", ":2: frequency must be a whole number");
    s_bad_summary ("frequency,recency,T\n0,2,3\n", ":2: recency must be 0");

    char err[512];
    /* CRLF, quoted ids, other column orders and extra columns are fine. */
    const char *path = s_file ("T,\"customer\",x,t_x,note\r\n5,\"a,b\",1,2,hi\r\n\r\n6,c,0,0,\r\n");
    churn_summary_t *s = churn_files_read_summary (path, 1, err, sizeof err);
    unlink (path);
    if (!s)
        fail_msg ("%s", err);
    assert_int_equal (s->n, 2);
    assert_string_equal (s->id[0], "a,b");
    assert_true (s->frequency[0] == 1 && s->recency[0] == 2 && s->T[0] == 5);
    assert_null (s->monetary);
    churn_summary_destroy (&s);

    path = s_file ("customer,date,amount\nann,2024-01-01,5\nbob,2024-01-02,-1\n");
    assert_null (churn_files_read_transactions (path, CHURN_FILES_CSV, err, sizeof err));
    unlink (path);
    assert_non_null (strstr (err, ":3: amount is negative"));
    path = s_file ("customer,when,amount\n");
    assert_null (churn_files_read_transactions (path, CHURN_FILES_CSV, err, sizeof err));
    unlink (path);
    assert_non_null (strstr (err, ":1: missing column date"));
    path = s_file ("customer,date,amount\nann,2024-02-30,5\n");
    assert_null (churn_files_read_transactions (path, CHURN_FILES_CSV, err, sizeof err));
    unlink (path);
    assert_non_null (strstr (err, ":2: not a date"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_cdnow_summary_reproduced),
        cmocka_unit_test (test_history_rules),
        cmocka_unit_test (test_bad_files_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
