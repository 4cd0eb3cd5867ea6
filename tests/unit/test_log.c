/*
 * test_log: what a reader of retain's stderr sees. Every line must parse as
 * one JSON object with ts, level, service and msg; fields keep their type;
 * hostile content is escaped; threads never interleave lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Where stderr goes while a test captures it. */
typedef struct {
    FILE *file;       /* the temporary file standing in for stderr */
    int saved_stderr; /* the real stderr, restored by s_capture_end */
} s_capture_t;

static void
s_capture_begin (s_capture_t *capture)
{
    capture->file = tmpfile ();
    assert_non_null (capture->file);
    capture->saved_stderr = dup (STDERR_FILENO);
    assert_true (capture->saved_stderr >= 0);
    assert_true (dup2 (fileno (capture->file), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns everything written meanwhile (owned). */
static char *
s_capture_end (s_capture_t *capture)
{
    assert_true (dup2 (capture->saved_stderr, STDERR_FILENO) >= 0);
    close (capture->saved_stderr);
    fseek (capture->file, 0, SEEK_END);
    long size = ftell (capture->file);
    assert_true (size >= 0);
    rewind (capture->file);
    char *text = malloc ((size_t)size + 1);
    assert_non_null (text);
    size_t got = fread (text, 1, (size_t)size, capture->file);
    assert_int_equal (got, (size_t)size);
    text[size] = '\0';
    fclose (capture->file);
    return text;
}

/* Parses text, which must be exactly one line holding one JSON object. */
static json_t *
s_parse_line (const char *text)
{
    size_t len = strlen (text);
    assert_true (len > 0);
    assert_int_equal (text[len - 1], '\n');
    assert_null (memchr (text, '\n', len - 1));
    json_error_t error;
    json_t *json = json_loadb (text, len, 0, &error);
    if (!json)
        fail_msg ("not JSON (%s): %s", error.text, text);
    assert_true (json_is_object (json));
    return json;
}

static const char *
s_string (json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    if (!json_is_string (value))
        fail_msg ("field %s is not a string", key);
    return json_string_value (value);
}

static void
test_line_has_the_standard_fields (void **state)
{
    (void)state;
    s_capture_t capture;
    rt_log_init ("retain-test", RT_LOG_DEBUG);
    time_t before = time (NULL);
    s_capture_begin (&capture);
    rt_log (RT_LOG_WARN, "envelope rejected", NULL);
    char *text = s_capture_end (&capture);
    time_t after = time (NULL);

    json_t *line = s_parse_line (text);
    assert_string_equal (s_string (line, "level"), "warn");
    assert_string_equal (s_string (line, "service"), "retain-test");
    assert_string_equal (s_string (line, "msg"), "envelope rejected");
    assert_int_equal (json_object_size (line), 4);

    /* UTC ISO-8601 with milliseconds, within the time of the call. */
    const char *ts = s_string (line, "ts");
    assert_int_equal (strlen (ts), 24);
    assert_int_equal (ts[10], 'T');
    assert_int_equal (ts[19], '.');
    assert_int_equal (ts[23], 'Z');
    struct tm tm = {0};
    const char *rest = strptime (ts, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null (rest);
    assert_int_equal (rest[0], '.');
    assert_true (rest[1] >= '0' && rest[1] <= '9' && rest[3] >= '0' && rest[3] <= '9');
    assert_string_equal (rest + 4, "Z");
    time_t logged = timegm (&tm);
    assert_true (logged >= before && logged <= after);

    json_decref (line);
    free (text);
}

static void
test_fields_keep_their_type (void **state)
{
    (void)state;
    s_capture_t capture;
    rt_log_init ("retain-test", RT_LOG_DEBUG);
    s_capture_begin (&capture);
    rt_log (RT_LOG_INFO, "batch committed", "events", "%d", -42, "bytes", "%zu", (size_t)65536,
            "seq", "%llu", 18446744073709551615ULL, "max", "%lld", 9223372036854775807LL, "ratio",
            "%g", 0.25, "ms", "%.3f", 1.5, "stream", "%s", "order", "hex", "%x", 255, "id", "%05d",
            7, "suffix", "%dms", 250, "inf", "%f", INFINITY, "long", "%ld", 1234567890123L, "char",
            "%c", 'z', NULL);
    char *text = s_capture_end (&capture);
    json_t *line = s_parse_line (text);

    assert_true (json_is_integer (json_object_get (line, "events")));
    assert_int_equal (json_integer_value (json_object_get (line, "events")), -42);
    assert_int_equal (json_integer_value (json_object_get (line, "bytes")), 65536);
    assert_int_equal (json_integer_value (json_object_get (line, "long")), 1234567890123L);
    /* A uint64 beyond int64 would be rounded or refused by JSON readers
     * (jansson among them): it is kept exact as a string. */
    assert_string_equal (s_string (line, "seq"), "18446744073709551615");
    assert_int_equal (json_integer_value (json_object_get (line, "max")), INT64_MAX);
    assert_true (json_is_real (json_object_get (line, "ratio")));
    assert_true (json_real_value (json_object_get (line, "ratio")) == 0.25);
    assert_true (json_real_value (json_object_get (line, "ms")) == 1.5);
    assert_string_equal (s_string (line, "stream"), "order");
    /* Formats whose output is not a JSON number stay strings. */
    assert_string_equal (s_string (line, "hex"), "ff");
    assert_string_equal (s_string (line, "id"), "00007");
    assert_string_equal (s_string (line, "suffix"), "250ms");
    assert_string_equal (s_string (line, "inf"), "inf");
    assert_string_equal (s_string (line, "char"), "z");

    json_decref (line);
    free (text);
}

static void
test_content_is_escaped (void **state)
{
    (void)state;
    s_capture_t capture;
    const char *hostile = "quote \" backslash \\ newline \n tab \t bell \x07 \xc3\xa9t\xc3\xa9";
    rt_log_init ("retain-test", RT_LOG_DEBUG);
    s_capture_begin (&capture);
    rt_log (RT_LOG_ERROR, hostile, "ke\"y\n", "%s", hostile, "bad utf8", "%s",
            "a\xff\xfe"
            "b",
            NULL);
    char *text = s_capture_end (&capture);
    json_t *line = s_parse_line (text);

    assert_string_equal (s_string (line, "msg"), hostile);
    assert_string_equal (s_string (line, "ke\"y\n"), hostile);
    /* Invalid UTF-8 is replaced, and the rest of the value survives. */
    assert_string_equal (s_string (line, "bad utf8"), "a\xef\xbf\xbd\xef\xbf\xbd"
                                                      "b");

    json_decref (line);
    free (text);
}

static void
test_fields_cannot_shadow_standard_keys (void **state)
{
    (void)state;
    s_capture_t capture;
    rt_log_init ("retain-test", RT_LOG_DEBUG);
    s_capture_begin (&capture);
    rt_log (RT_LOG_INFO, "real message", "msg", "%s", "forged", "level", "%s", "error", NULL);
    char *text = s_capture_end (&capture);
    json_t *line = s_parse_line (text);

    assert_string_equal (s_string (line, "msg"), "real message");
    assert_string_equal (s_string (line, "level"), "info");
    assert_string_equal (s_string (line, "_msg"), "forged");
    assert_string_equal (s_string (line, "_level"), "error");

    json_decref (line);
    free (text);
}

static void
test_level_filters_lines (void **state)
{
    (void)state;
    s_capture_t capture;
    rt_log_init ("retain-test", RT_LOG_WARN);
    s_capture_begin (&capture);
    rt_log_debugf ("debug %d", 1);
    rt_log_infof ("info %d", 2);
    rt_log (RT_LOG_INFO, "info fields", "n", "%d", 3, NULL);
    rt_log_warnf ("warn %d", 4);
    rt_log_errorf ("error %s", "five");
    char *text = s_capture_end (&capture);

    char *second = strchr (text, '\n');
    assert_non_null (second);
    second++;
    char saved = *second;
    *second = '\0';
    json_t *line = s_parse_line (text);
    assert_string_equal (s_string (line, "level"), "warn");
    assert_string_equal (s_string (line, "msg"), "warn 4");
    json_decref (line);
    *second = saved;

    line = s_parse_line (second);
    assert_string_equal (s_string (line, "level"), "error");
    assert_string_equal (s_string (line, "msg"), "error five");
    json_decref (line);
    free (text);
}

static void
test_long_lines_and_errno (void **state)
{
    (void)state;
    s_capture_t capture;
    size_t big = 100000;
    char *value = malloc (big + 1);
    assert_non_null (value);
    for (size_t i = 0; i < big; i++)
        value[i] = (char)('a' + i % 26);
    value[big] = '\0';

    rt_log_init ("retain-test", RT_LOG_DEBUG);
    s_capture_begin (&capture);
    errno = ECONNREFUSED;
    rt_log (RT_LOG_INFO, "big", "payload", "%s", value, "why", "%m", NULL);
    int after_field_log = errno;
    rt_log_infof ("%s", value);
    int after_printf_log = errno;
    char *text = s_capture_end (&capture);

    assert_int_equal (after_field_log, ECONNREFUSED);
    assert_int_equal (after_printf_log, ECONNREFUSED);
    char *second = strchr (text, '\n') + 1;
    char saved = *second;
    *second = '\0';
    json_t *line = s_parse_line (text);
    assert_string_equal (s_string (line, "payload"), value);
    assert_string_equal (s_string (line, "why"), strerror (ECONNREFUSED));
    json_decref (line);
    *second = saved;
    line = s_parse_line (second);
    assert_string_equal (s_string (line, "msg"), value);
    json_decref (line);
    free (text);
    free (value);
}

static void
test_strings_variant (void **state)
{
    (void)state;
    s_capture_t capture;
    const char *keys[] = {"pg-dsn", "admin", "empty"};
    const char *values[] = {"********", "127.0.0.1:9100", NULL};
    rt_log_init ("retain-test", RT_LOG_DEBUG);
    s_capture_begin (&capture);
    rt_log_strings (RT_LOG_INFO, "config", keys, values, 3);
    char *text = s_capture_end (&capture);
    json_t *line = s_parse_line (text);
    assert_string_equal (s_string (line, "msg"), "config");
    assert_string_equal (s_string (line, "pg-dsn"), "********");
    assert_string_equal (s_string (line, "admin"), "127.0.0.1:9100");
    assert_string_equal (s_string (line, "empty"), "");
    json_decref (line);
    free (text);
}

#define S_THREADS 4
#define S_LINES   300

static void *
s_writer (void *arg)
{
    int id = (int)(intptr_t)arg;
    char filler[3000];
    memset (filler, 'a' + id, sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    for (int i = 0; i < S_LINES; i++)
        rt_log (RT_LOG_INFO, "from a thread", "thread", "%d", id, "i", "%d", i, "filler", "%s",
                filler, NULL);
    return NULL;
}

static void
test_threads_never_interleave (void **state)
{
    (void)state;
    s_capture_t capture;
    pthread_t threads[S_THREADS];
    rt_log_init ("retain-test", RT_LOG_DEBUG);
    s_capture_begin (&capture);
    for (int t = 0; t < S_THREADS; t++)
        assert_int_equal (pthread_create (&threads[t], NULL, s_writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < S_THREADS; t++)
        pthread_join (threads[t], NULL);
    char *text = s_capture_end (&capture);

    int seen[S_THREADS] = {0};
    int lines = 0;
    char *p = text;
    while (*p) {
        char *end = strchr (p, '\n');
        assert_non_null (end);
        char saved = end[1];
        end[1] = '\0';
        json_t *line = s_parse_line (p);
        end[1] = saved;
        int id = (int)json_integer_value (json_object_get (line, "thread"));
        assert_true (id >= 0 && id < S_THREADS);
        /* Each thread's lines arrive in its own order. */
        assert_int_equal (json_integer_value (json_object_get (line, "i")), seen[id]);
        seen[id]++;
        assert_int_equal (strlen (s_string (line, "filler")), 2999);
        json_decref (line);
        lines++;
        p = end + 1;
    }
    assert_int_equal (lines, S_THREADS * S_LINES);
    free (text);
}

static void
test_level_parse (void **state)
{
    (void)state;
    rt_log_level_t level = RT_LOG_ERROR;
    assert_int_equal (rt_log_level_parse ("debug", &level), 0);
    assert_int_equal (level, RT_LOG_DEBUG);
    assert_int_equal (rt_log_level_parse ("info", &level), 0);
    assert_int_equal (level, RT_LOG_INFO);
    assert_int_equal (rt_log_level_parse ("warn", &level), 0);
    assert_int_equal (level, RT_LOG_WARN);
    assert_int_equal (rt_log_level_parse ("error", &level), 0);
    assert_int_equal (level, RT_LOG_ERROR);
    assert_int_equal (rt_log_level_parse ("verbose", &level), -1);
    assert_int_equal (rt_log_level_parse ("", &level), -1);
    assert_int_equal (rt_log_level_parse ("info ", &level), -1);
    assert_int_equal (rt_log_level_parse (NULL, &level), -1);
    assert_int_equal (level, RT_LOG_ERROR);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_line_has_the_standard_fields),
        cmocka_unit_test (test_fields_keep_their_type),
        cmocka_unit_test (test_content_is_escaped),
        cmocka_unit_test (test_fields_cannot_shadow_standard_keys),
        cmocka_unit_test (test_level_filters_lines),
        cmocka_unit_test (test_long_lines_and_errno),
        cmocka_unit_test (test_strings_variant),
        cmocka_unit_test (test_threads_never_interleave),
        cmocka_unit_test (test_level_parse),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
