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
    rt_log (RT_LOG_WARN, "envelope rejected");
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
    rt_log (RT_LOG_INFO, "batch committed", rt_log_int ("events", -42),
            rt_log_uint ("bytes", (size_t)65536), rt_log_uint ("seq", 18446744073709551615ULL),
            rt_log_int ("max", 9223372036854775807LL), rt_log_int ("min", INT64_MIN),
            rt_log_real ("ratio", 0.25), rt_log_real ("ms", 1.5), rt_log_real ("third", 1.0 / 3),
            rt_log_str ("stream", "order"), rt_log_real ("inf", INFINITY), rt_log_real ("nan", NAN),
            rt_log_int ("long", 1234567890123L), rt_log_str ("absent", NULL));
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
    assert_int_equal (json_integer_value (json_object_get (line, "min")), INT64_MIN);
    assert_true (json_is_real (json_object_get (line, "ratio")));
    assert_true (json_real_value (json_object_get (line, "ratio")) == 0.25);
    assert_true (json_real_value (json_object_get (line, "ms")) == 1.5);
    /* Fifteen significant digits: close to the double, without its noise. */
    assert_true (fabs (json_real_value (json_object_get (line, "third")) - 1.0 / 3) < 1e-14);
    assert_string_equal (s_string (line, "stream"), "order");
    /* Values that are no JSON number stay strings; a NULL string is null. */
    assert_string_equal (s_string (line, "inf"), "inf");
    assert_string_equal (s_string (line, "nan"), "nan");
    assert_true (json_is_null (json_object_get (line, "absent")));

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
    rt_log (RT_LOG_ERROR, hostile, rt_log_str ("ke\"y\n", hostile),
            rt_log_str ("bad utf8", "a\xff\xfe"
                                    "b"));
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
    rt_log (RT_LOG_INFO, "real message", rt_log_str ("msg", "forged"),
            rt_log_str ("level", "error"));
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
    int evaluated = 0;
    rt_log (RT_LOG_INFO, "info fields", rt_log_int ("n", ++evaluated));
    /* A line below the level costs nothing: its fields are not even made. */
    assert_int_equal (evaluated, 0);
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
    rt_log (RT_LOG_INFO, "big", rt_log_str ("payload", value),
            rt_log_str ("why", strerror (errno)));
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
        rt_log (RT_LOG_INFO, "from a thread", rt_log_int ("thread", id), rt_log_int ("i", i),
                rt_log_str ("filler", filler));
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
