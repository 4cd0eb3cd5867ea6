/*
 * Tests `retainctl churn` as a user runs it: a child process, its exit
 * status, its stdout and its stderr.
 *
 * Expected values: the CDNOW fit of Fader, Hardie & Lee (2005), r = 0.243,
 * alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4; bad data must give
 * status 1, an error naming file and line, and nothing on stdout; bad usage
 * status 2. The binary is RT_TEST_BIN_DIR/retainctl, or $RT_RETAINCTL when
 * set (to test another build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CDNOW_DIR RT_TEST_SOURCE_DIR "/tests/data/cdnow/"

typedef struct {
    int status;
    char *out;
    char *err;
} s_run_t;

static char *
s_slurp (const char *path)
{
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    fseek (f, 0, SEEK_END);
    long n = ftell (f);
    fseek (f, 0, SEEK_SET);
    char *buf = malloc ((size_t)n + 1);
    assert_int_equal (fread (buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose (f);
    return buf;
}

/* Runs retainctl churn with the NULL-terminated arguments. */
static s_run_t
s_run (const char *first, ...)
{
    const char *bin = getenv ("RT_RETAINCTL");
    if (!bin)
        bin = RT_TEST_BIN_DIR "/retainctl";
    const char *argv[32] = {bin, "churn"};
    int argc = 2;
    va_list ap;
    va_start (ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg (ap, const char *))
        argv[argc++] = a;
    va_end (ap);
    argv[argc] = NULL;
    char out_path[] = "/tmp/test_churn_cli_out_XXXXXX",
         err_path[] = "/tmp/test_churn_cli_err_XXXXXX";
    int out_fd = mkstemp (out_path), err_fd = mkstemp (err_path);
    assert_true (out_fd >= 0 && err_fd >= 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        dup2 (out_fd, 1);
        dup2 (err_fd, 2);
        execv (bin, (char *const *)argv);
        _exit (127);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    close (out_fd);
    close (err_fd);
    s_run_t r = {WIFEXITED (status) ? WEXITSTATUS (status) : -1, s_slurp (out_path),
                 s_slurp (err_path)};
    unlink (out_path);
    unlink (err_path);
    return r;
}

static void
s_free (s_run_t *r)
{
    free (r->out);
    free (r->err);
}

static const char *
s_file (const char *text)
{
    static char path[64];
    strcpy (path, "/tmp/test_churn_cli_in_XXXXXX");
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t)strlen (text));
    close (fd);
    return path;
}

static void
s_check_fit (const char *json)
{
    json_error_t jerr;
    json_t *o = json_loads (json, 0, &jerr);
    if (!o)
        fail_msg ("not one JSON object: %s", json);
    const char *keys[] = {"r", "alpha", "a", "b"};
    const double want[] = {0.243, 4.414, 0.793, 2.426};
    for (int i = 0; i < 4; i++) {
        double v = json_real_value (json_object_get (o, keys[i]));
        if (fabs (round (v * 1000) / 1000 - want[i]) > 1e-9)
            fail_msg ("%s = %g, paper %g", keys[i], v, want[i]);
    }
    double ll = json_real_value (json_object_get (o, "log_likelihood"));
    assert_true (fabs (ll - -9582.4) < 0.05);
    assert_true (json_is_true (json_object_get (o, "converged")));
    assert_true (json_integer_value (json_object_get (o, "iterations")) > 0);
    json_decref (o);
}

static void
test_fit_cdnow (void **state)
{
    (void)state;
    s_run_t r = s_run ("fit", "--summary", CDNOW_DIR "cdnow_customers_summary.csv", NULL);
    if (r.status != 0)
        fail_msg ("status %d: %s", r.status, r.err);
    s_check_fit (r.out);
    s_free (&r);
    r = s_run ("fit", "--transactions", CDNOW_DIR "CDNOW_sample.txt", "--format", "cdnow",
               "--calibration-end", "1997-09-30", NULL);
    if (r.status != 0)
        fail_msg ("status %d: %s", r.status, r.err);
    s_check_fit (r.out);
    assert_non_null (strstr (r.out, "\"gamma_gamma\""));
    s_free (&r);
}

static void
test_score_and_report (void **state)
{
    (void)state;
    s_run_t r = s_run ("score", "--transactions", CDNOW_DIR "CDNOW_sample.txt", "--format", "cdnow",
                       "--calibration-end", "1997-09-30", NULL);
    assert_int_equal (r.status, 0);
    size_t lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    assert_int_equal (lines, 2358);
    assert_true (strncmp (r.out,
                          "id,frequency,recency,T,p_alive,expected_purchases,r,f,m,segment,"
                          "expected_spend,clv\n0001,2,",
                          78) == 0);
    s_free (&r);
    r = s_run ("score", "--summary", CDNOW_DIR "cdnow_customers_summary.csv", "--output", "jsonl",
               NULL);
    assert_int_equal (r.status, 0);
    json_error_t jerr;
    char *nl = strchr (r.out, '\n');
    *nl = '\0';
    json_t *o = json_loads (r.out, 0, &jerr);
    assert_non_null (o);
    assert_true (json_is_string (json_object_get (o, "segment")));
    assert_true (json_is_null (json_object_get (o, "clv"))); /* no spend in that file */
    json_decref (o);
    s_free (&r);

    r = s_run ("report", "--transactions", CDNOW_DIR "CDNOW_sample.txt", "--format", "cdnow",
               "--from", "1998-05-31", "--to", "1998-06-30", "--lost", "inactive:90", NULL);
    assert_int_equal (r.status, 0);
    o = json_loads (r.out, 0, &jerr);
    assert_non_null (o);
    assert_string_equal (json_string_value (json_object_get (o, "definition")),
                         "lost = no purchase in the last 90 days");
    double rate = json_real_value (json_object_get (o, "churn_rate"));
    json_int_t lost = json_integer_value (json_object_get (o, "lost"));
    json_int_t start = json_integer_value (json_object_get (o, "customers_at_start"));
    assert_true (start > 0 && fabs (rate - (double)lost / (double)start) < 1e-9);
    json_t *p = json_object_get (o, "pareto");
    double share = json_real_value (json_object_get (p, "top_revenue_share"));
    assert_true (share > 0.2 && share < 1);
    json_decref (o);
    s_free (&r);
}

/* Bad data: status 1, stderr names the file and line, stdout stays empty. */
static void
s_bad (const char *text, const char *line_tag, const char *what)
{
    const char *path = s_file (text);
    char want[128];
    snprintf (want, sizeof want, "%s%s", path, line_tag);
    s_run_t r = s_run ("fit", "--summary", path, NULL);
    unlink (path);
    if (r.status != 1 || r.out[0] != '\0' || !strstr (r.err, want) || !strstr (r.err, what))
        fail_msg ("status %d, stdout \"%s\", stderr \"%s\"; wanted \"%s\" ... \"%s\"", r.status,
                  r.out, r.err, want, what);
    s_free (&r);
}

static void
test_bad_input (void **state)
{
    (void)state;
    s_bad ("frequency,recency\n1,2\n", ":1:", "missing column T");
    s_bad ("frequency,recency,T\n1,2,3\n2,1\n", ":3:", "expected 3 fields");
    s_bad ("frequency,recency,T\n1,2,3\n-1,0,3\n", ":3:", "negative");
    s_bad ("frequency,recency,T\n1,2,3\n1,two,3\n", ":3:", "not a number");
    s_bad ("frequency,recency,T\n1,2,3\n1,5,3\n", ":3:", "greater than T");
    s_bad ("", ":1:", "empty file");
    s_bad ("frequency,recency,T\n0,0,3\n0,0,5\n", "", "repeat purchase");

    const char *path = s_file ("customer,date,amount\nann,2024-01-01,5\nann,2024-01-05,x\n");
    s_run_t r = s_run ("score", "--transactions", path, NULL);
    char want[128];
    snprintf (want, sizeof want, "%s:3:", path);
    unlink (path);
    assert_int_equal (r.status, 1);
    assert_string_equal (r.out, "");
    assert_non_null (strstr (r.err, want));
    s_free (&r);
}

static void
test_bad_usage (void **state)
{
    (void)state;
    const char *cases[][4] = {
        {"fit", NULL},
        {"fit", "--bogus", "1", NULL},
        {"fit", "--summary", CDNOW_DIR "cdnow_customers_summary.csv", "--unit"},
        {"nonsense", NULL},
        {"report", "--summary", CDNOW_DIR "cdnow_customers_summary.csv", NULL},
        {"score", "--summary", CDNOW_DIR "cdnow_customers_summary.csv", "--horizon-days"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_run_t r = s_run (cases[i][0], cases[i][1], cases[i][2], cases[i][3], NULL);
        if (r.status != 2 || r.out[0] != '\0')
            fail_msg ("case %zu: status %d, stdout \"%s\"", i, r.status, r.out);
        s_free (&r);
    }
    s_run_t r = s_run ("fit", "--summary", CDNOW_DIR "cdnow_customers_summary.csv", "--unit",
                       "hours", NULL);
    assert_int_equal (r.status, 2);
    s_free (&r);
    r = s_run ("--help", NULL);
    assert_int_equal (r.status, 0);
    assert_non_null (strstr (r.out, "retainctl churn"));
    s_free (&r);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_fit_cdnow),
        cmocka_unit_test (test_score_and_report),
        cmocka_unit_test (test_bad_input),
        cmocka_unit_test (test_bad_usage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
