/*
 * test_config: what an operator sees when configuring a daemon. --help lists
 * every setting with its variable and default and hides secrets; a flag
 * beats the environment; a typo or a bad value is refused with a message
 * that names the setting; a switch works alone ("--follow"), as
 * "--follow=false" and as "--follow false". Settings declared in several
 * tables (a daemon's own, the shared ones) behave as one, and --help
 * shows each under its heading; a retired variable still set is refused
 * with the name of what replaces it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const rt_config_setting_t s_settings[] = {
    {"pg-dsn", "RT_TEST_PG_DSN", "postgresql:///retain", "PostgreSQL connection string"},
    {"admin", "RT_TEST_ADMIN", "127.0.0.1:9100", "admin HTTP address"},
    {"batch-wait", "RT_TEST_BATCH_WAIT", "5ms", "longest wait before a batch is written"},
    {"max-size", "RT_TEST_MAX_SIZE", "1M", "largest envelope accepted"},
    {"workers", "RT_TEST_WORKERS", "4", "handler threads"},
    {"curve-server-secret", "RT_TEST_CURVE_SECRET", NULL, "CURVE server secret key"},
    {"verbose", "RT_TEST_VERBOSE", "false", "log debug lines"},
    {"compress", "RT_TEST_COMPRESS", "true", "compress what is sent"},
    {NULL, NULL, NULL, NULL},
};

static int
s_setup (void **state)
{
    (void)state;
    for (const rt_config_setting_t *s = s_settings; s->name; s++)
        unsetenv (s->env);
    return 0;
}

/* Parses argv (NULL-terminated) into a new config; *rc gets parse's result. */
static rt_config_t *
s_parse (int *rc, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list args;
    argv[argc++] = "retain-test";
    va_start (args, errlen);
    for (char *arg = va_arg (args, char *); arg; arg = va_arg (args, char *))
        argv[argc++] = arg;
    va_end (args);
    argv[argc] = NULL;
    rt_config_t *config = rt_config_new ("retain-test", "a daemon under test", s_settings);
    assert_non_null (config);
    *rc = rt_config_parse (config, argc, argv, err, errlen);
    return config;
}

/* Runs parse with stdout captured; returns what it printed (owned). */
static char *
s_capture_stdout (rt_config_t *config, int argc, char **argv, int *rc)
{
    char err[256] = "";
    FILE *file = tmpfile ();
    assert_non_null (file);
    fflush (stdout);
    int saved = dup (STDOUT_FILENO);
    assert_true (saved >= 0);
    assert_true (dup2 (fileno (file), STDOUT_FILENO) >= 0);
    *rc = rt_config_parse (config, argc, argv, err, sizeof err);
    fflush (stdout);
    assert_true (dup2 (saved, STDOUT_FILENO) >= 0);
    close (saved);
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    assert_true (size >= 0);
    rewind (file);
    char *text = calloc (1, (size_t)size + 1);
    assert_non_null (text);
    assert_int_equal (fread (text, 1, (size_t)size, file), (size_t)size);
    fclose (file);
    return text;
}

static void
test_defaults (void **state)
{
    (void)state;
    char err[256];
    int rc;
    rt_config_t *config = s_parse (&rc, err, sizeof err, NULL);
    assert_int_equal (rc, 0);
    assert_string_equal (rt_config_get (config, "pg-dsn"), "postgresql:///retain");
    assert_string_equal (rt_config_get (config, "curve-server-secret"), "");
    assert_int_equal (rt_config_argc (config), 0);
    int64_t ms;
    assert_int_equal (rt_config_get_ms (config, "batch-wait", &ms, err, sizeof err), 0);
    assert_int_equal (ms, 5);
    rt_config_destroy (&config);
    assert_null (config);
    rt_config_destroy (&config);
    rt_config_destroy (NULL);
}

static void
test_flags_override_env (void **state)
{
    (void)state;
    char err[256];
    int rc;
    setenv ("RT_TEST_ADMIN", "0.0.0.0:9200", 1);
    setenv ("RT_TEST_WORKERS", "8", 1);
    setenv ("RT_TEST_BATCH_WAIT", "2s", 1);
    rt_config_t *config =
        s_parse (&rc, err, sizeof err, "--workers", "16", "--batch-wait=250ms", NULL);
    assert_int_equal (rc, 0);
    /* From the environment where no flag says otherwise. */
    assert_string_equal (rt_config_get (config, "admin"), "0.0.0.0:9200");
    /* Both flag spellings beat the environment. */
    assert_string_equal (rt_config_get (config, "workers"), "16");
    int64_t ms;
    assert_int_equal (rt_config_get_ms (config, "batch-wait", &ms, err, sizeof err), 0);
    assert_int_equal (ms, 250);
    rt_config_destroy (&config);
}

static void
test_positional_arguments (void **state)
{
    (void)state;
    char err[256];
    int rc;
    rt_config_t *config = s_parse (&rc, err, sizeof err, "migrate", "--workers", "2", "bus", "--",
                                   "--not-a-flag", "-x", NULL);
    assert_int_equal (rc, 0);
    assert_string_equal (rt_config_get (config, "workers"), "2");
    assert_int_equal (rt_config_argc (config), 4);
    assert_string_equal (rt_config_argv (config, 0), "migrate");
    assert_string_equal (rt_config_argv (config, 1), "bus");
    assert_string_equal (rt_config_argv (config, 2), "--not-a-flag");
    assert_string_equal (rt_config_argv (config, 3), "-x");
    assert_null (rt_config_argv (config, 4));
    rt_config_destroy (&config);
}

static void
test_bad_arguments (void **state)
{
    (void)state;
    char err[256] = "";
    int rc;
    rt_config_t *config = s_parse (&rc, err, sizeof err, "--wokers", "2", NULL);
    assert_int_equal (rc, -1);
    assert_non_null (strstr (err, "--wokers"));
    rt_config_destroy (&config);

    err[0] = '\0';
    config = s_parse (&rc, err, sizeof err, "--workers", NULL);
    assert_int_equal (rc, -1);
    assert_non_null (strstr (err, "--workers"));
    assert_non_null (strstr (err, "value"));
    rt_config_destroy (&config);

    err[0] = '\0';
    config = s_parse (&rc, err, sizeof err, "--workers", "--admin", ":0", NULL);
    assert_int_equal (rc, -1);
    assert_non_null (strstr (err, "--workers"));
    rt_config_destroy (&config);

    /* An empty value is a value, given with '='. */
    config = s_parse (&rc, err, sizeof err, "--admin=", NULL);
    assert_int_equal (rc, 0);
    assert_string_equal (rt_config_get (config, "admin"), "");
    rt_config_destroy (&config);
}

static void
test_help_lists_everything_and_masks_secrets (void **state)
{
    (void)state;
    setenv ("RT_TEST_PG_DSN", "host=db user=retain password=hunter2", 1);
    char *argv[] = {"retain-test", "--curve-server-secret", "s3cr3t-curve-key", "--help", NULL};
    rt_config_t *config = rt_config_new ("retain-test", "a daemon under test", s_settings);
    assert_non_null (config);
    int rc;
    char *help = s_capture_stdout (config, 4, argv, &rc);
    assert_int_equal (rc, 1);

    assert_non_null (strstr (help, "retain-test"));
    assert_non_null (strstr (help, "a daemon under test"));
    for (const rt_config_setting_t *s = s_settings; s->name; s++) {
        char flag[64];
        snprintf (flag, sizeof flag, "--%s", s->name);
        if (!strstr (help, flag))
            fail_msg ("--help does not list %s:\n%s", flag, help);
        assert_non_null (strstr (help, s->env));
        assert_non_null (strstr (help, s->help));
    }
    /* Defaults of plain settings are shown as they are. */
    assert_non_null (strstr (help, "127.0.0.1:9100"));
    assert_non_null (strstr (help, "5ms"));
    assert_non_null (strstr (help, "1M"));
    /* Secrets never appear, wherever they came from. */
    assert_null (strstr (help, "hunter2"));
    assert_null (strstr (help, "s3cr3t-curve-key"));
    assert_non_null (strstr (help, "********"));
    free (help);
    rt_config_destroy (&config);
    unsetenv ("RT_TEST_PG_DSN");
}

static void
test_durations (void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"250ms", 250},    {"5s", 5000}, {"2m", 120000}, {"1h", 3600000},
        {"7d", 604800000}, {"100", 100}, {"0", 0},       {"0s", 0},
    };
    static const char *const bad[] = {
        "",
        "5x",
        "-1s",
        "s",
        "1.5s",
        "5 s",
        " 5s",
        "5S",
        "10ms5",
        "99999999999999999999",
        "9999999999999999d",
    };
    char err[256];
    int rc;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv ("RT_TEST_BATCH_WAIT", good[i].text, 1);
        rt_config_t *config = s_parse (&rc, err, sizeof err, NULL);
        int64_t ms = -1;
        assert_int_equal (rt_config_get_ms (config, "batch-wait", &ms, err, sizeof err), 0);
        assert_int_equal (ms, good[i].ms);
        rt_config_destroy (&config);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv ("RT_TEST_BATCH_WAIT", bad[i], 1);
        rt_config_t *config = s_parse (&rc, err, sizeof err, NULL);
        int64_t ms = 42;
        err[0] = '\0';
        if (rt_config_get_ms (config, "batch-wait", &ms, err, sizeof err) != -1)
            fail_msg ("duration \"%s\" was accepted as %lld", bad[i], (long long)ms);
        assert_int_equal (ms, 42);
        /* The message names the setting, its variable and what it got. */
        assert_non_null (strstr (err, "--batch-wait"));
        assert_non_null (strstr (err, "RT_TEST_BATCH_WAIT"));
        assert_non_null (strstr (err, bad[i]));
        rt_config_destroy (&config);
    }
    unsetenv ("RT_TEST_BATCH_WAIT");
}

static void
test_sizes (void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t bytes;
    } good[] = {
        {"512", 512}, {"64k", 65536}, {"64K", 65536}, {"1M", 1048576}, {"1G", 1073741824}, {"0", 0},
    };
    static const char *const bad[] = {"", "1T", "1MB", "-1", "k", "1.5M", "1 M", "abc"};
    char err[256];
    int rc;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        rt_config_t *config = s_parse (&rc, err, sizeof err, "--max-size", good[i].text, NULL);
        int64_t bytes = -1;
        assert_int_equal (rt_config_get_size (config, "max-size", &bytes, err, sizeof err), 0);
        assert_int_equal (bytes, good[i].bytes);
        rt_config_destroy (&config);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char arg[64];
        snprintf (arg, sizeof arg, "--max-size=%s", bad[i]);
        rt_config_t *config = s_parse (&rc, err, sizeof err, arg, NULL);
        int64_t bytes = 42;
        err[0] = '\0';
        if (rt_config_get_size (config, "max-size", &bytes, err, sizeof err) != -1)
            fail_msg ("size \"%s\" was accepted as %lld", bad[i], (long long)bytes);
        assert_int_equal (bytes, 42);
        assert_non_null (strstr (err, "--max-size"));
        rt_config_destroy (&config);
    }
}

static void
test_integers_and_bools (void **state)
{
    (void)state;
    char err[256];
    int rc;
    int64_t n;
    bool flag;
    rt_config_t *config =
        s_parse (&rc, err, sizeof err, "--workers", "-3", "--verbose", "Yes", NULL);
    assert_int_equal (rt_config_get_int (config, "workers", -10, 10, &n, err, sizeof err), 0);
    assert_int_equal (n, -3);
    err[0] = '\0';
    assert_int_equal (rt_config_get_int (config, "workers", 1, 64, &n, err, sizeof err), -1);
    assert_non_null (strstr (err, "--workers"));
    assert_non_null (strstr (err, "[1, 64]"));
    assert_int_equal (rt_config_get_bool (config, "verbose", &flag, err, sizeof err), 0);
    assert_true (flag);
    rt_config_destroy (&config);

    config = s_parse (&rc, err, sizeof err, "--workers", "12abc", "--verbose", "off", NULL);
    assert_int_equal (rt_config_get_int (config, "workers", 1, 64, &n, err, sizeof err), -1);
    assert_non_null (strstr (err, "12abc"));
    assert_int_equal (rt_config_get_bool (config, "verbose", &flag, err, sizeof err), 0);
    assert_false (flag);
    rt_config_destroy (&config);

    config = s_parse (&rc, err, sizeof err, "--verbose=maybe", NULL);
    err[0] = '\0';
    assert_int_equal (rt_config_get_bool (config, "verbose", &flag, err, sizeof err), -1);
    assert_non_null (strstr (err, "--verbose"));
    assert_non_null (strstr (err, "maybe"));
    rt_config_destroy (&config);
}

/* What a switch is after parsing argv; fails the test when parse fails. */
static bool
s_switch (const char *name, int *nargs, ...)
{
    char *argv[32], err[256] = "";
    int argc = 0;
    bool value = false;
    va_list args;
    argv[argc++] = "retain-test";
    va_start (args, nargs);
    for (char *arg = va_arg (args, char *); arg; arg = va_arg (args, char *))
        argv[argc++] = arg;
    va_end (args);
    argv[argc] = NULL;
    rt_config_t *config = rt_config_new ("retain-test", "", s_settings);
    assert_non_null (config);
    if (rt_config_parse (config, argc, argv, err, sizeof err) != 0)
        fail_msg ("parse failed: %s", err);
    if (rt_config_get_bool (config, name, &value, err, sizeof err) != 0)
        fail_msg ("--%s: %s", name, err);
    *nargs = rt_config_argc (config);
    rt_config_destroy (&config);
    return value;
}

static void
test_switches (void **state)
{
    (void)state;
    int nargs;
    /* Alone, at the end or before another flag: on. */
    assert_true (s_switch ("verbose", &nargs, "--verbose", NULL));
    assert_int_equal (nargs, 0);
    assert_true (s_switch ("verbose", &nargs, "--verbose", "--workers", "3", NULL));
    assert_false (s_switch ("verbose", &nargs, "--workers", "3", NULL));
    /* With "=": as written. */
    assert_true (s_switch ("verbose", &nargs, "--verbose=true", NULL));
    assert_false (s_switch ("verbose", &nargs, "--verbose=false", NULL));
    assert_false (s_switch ("compress", &nargs, "--compress=off", NULL));
    assert_true (s_switch ("compress", &nargs, NULL));
    /* A boolean word after it is its value, not an argument. */
    assert_false (s_switch ("verbose", &nargs, "--verbose", "false", NULL));
    assert_int_equal (nargs, 0);
    assert_false (s_switch ("compress", &nargs, "--compress", "NO", NULL));
    assert_true (s_switch ("verbose", &nargs, "--verbose", "1", NULL));
    /* Anything else after it stays an argument. */
    assert_true (s_switch ("verbose", &nargs, "--verbose", "events.log", NULL));
    assert_int_equal (nargs, 1);
    /* The flag beats the environment, in both directions. */
    setenv ("RT_TEST_VERBOSE", "true", 1);
    assert_false (s_switch ("verbose", &nargs, "--verbose=false", NULL));
    assert_true (s_switch ("verbose", &nargs, NULL));
    unsetenv ("RT_TEST_VERBOSE");
    setenv ("RT_TEST_COMPRESS", "false", 1);
    assert_true (s_switch ("compress", &nargs, "--compress", NULL));
    unsetenv ("RT_TEST_COMPRESS");

    /* A setting that is not a switch still needs its value. */
    char err[256] = "";
    int rc;
    rt_config_t *config = s_parse (&rc, err, sizeof err, "--workers", "--verbose", NULL);
    assert_int_equal (rc, -1);
    assert_non_null (strstr (err, "--workers"));
    rt_config_destroy (&config);

    /* --help shows how a switch is written. */
    char *argv[] = {"retain-test", "--help", NULL};
    config = rt_config_new ("retain-test", "", s_settings);
    assert_non_null (config);
    char *help = s_capture_stdout (config, 2, argv, &rc);
    assert_int_equal (rc, 1);
    if (!strstr (help, "--verbose[=true|false]") || !strstr (help, "--workers <value>"))
        fail_msg ("--help does not show switches as switches:\n%s", help);
    free (help);
    rt_config_destroy (&config);
}

static void
test_log_masks_secrets (void **state)
{
    (void)state;
    char err[256];
    int rc;
    rt_config_t *config =
        s_parse (&rc, err, sizeof err, "--pg-dsn", "password=hunter2", "--workers", "3", NULL);
    assert_int_equal (rc, 0);
    FILE *file = tmpfile ();
    assert_non_null (file);
    int saved = dup (STDERR_FILENO);
    assert_true (dup2 (fileno (file), STDERR_FILENO) >= 0);
    rt_config_log (config);
    assert_true (dup2 (saved, STDERR_FILENO) >= 0);
    close (saved);
    rewind (file);
    json_error_t error;
    json_t *line = json_loadf (file, 0, &error);
    fclose (file);
    if (!line)
        fail_msg ("config line is not JSON: %s", error.text);
    assert_string_equal (json_string_value (json_object_get (line, "msg")), "config");
    assert_string_equal (json_string_value (json_object_get (line, "level")), "info");
    assert_string_equal (json_string_value (json_object_get (line, "pg-dsn")), "********");
    assert_string_equal (json_string_value (json_object_get (line, "workers")), "3");
    assert_string_equal (json_string_value (json_object_get (line, "admin")), "127.0.0.1:9100");
    assert_non_null (json_object_get (line, "curve-server-secret"));
    json_decref (line);
    rt_config_destroy (&config);
}

static void
test_parse_twice_starts_over (void **state)
{
    (void)state;
    char err[256];
    char *first[] = {"retain-test", "--workers", "9", "extra", NULL};
    char *second[] = {"retain-test", NULL};
    rt_config_t *config = rt_config_new ("retain-test", "", s_settings);
    assert_int_equal (rt_config_parse (config, 4, first, err, sizeof err), 0);
    assert_string_equal (rt_config_get (config, "workers"), "9");
    assert_int_equal (rt_config_argc (config), 1);
    assert_int_equal (rt_config_parse (config, 1, second, err, sizeof err), 0);
    assert_string_equal (rt_config_get (config, "workers"), "4");
    assert_int_equal (rt_config_argc (config), 0);
    rt_config_destroy (&config);
}

/* A second table, as common/daemon adds to a daemon's own. */
static const rt_config_setting_t s_shared[] = {
    {"log-level", "RT_TEST_LOG_LEVEL", "info", "debug, info, warn or error"},
    {"clock-file", "RT_TEST_CLOCK_FILE", "", "a test clock"},
    {NULL, NULL, NULL, NULL},
};

static const rt_config_retired_t s_retired[] = {
    {"RT_TEST_OLD_SECRET", "RT_TEST_NEW_SECRET (the new name)"},
    {NULL, NULL},
};

static void
test_tables_read_as_one (void **state)
{
    (void)state;
    char err[256];
    char *argv[] = {"retain-test", "--log-level=debug", "--workers", "7", NULL};
    setenv ("RT_TEST_CLOCK_FILE", "/tmp/clock", 1);
    rt_config_t *config = rt_config_new ("retain-test", "a daemon under test", s_settings);
    assert_non_null (config);
    assert_int_equal (rt_config_add (config, "Shared by every test daemon", s_shared), 0);
    assert_int_equal (rt_config_parse (config, 4, argv, err, sizeof err), 0);
    /* Flags, environment and defaults reach both tables. */
    assert_string_equal (rt_config_get (config, "log-level"), "debug");
    assert_string_equal (rt_config_get (config, "clock-file"), "/tmp/clock");
    assert_string_equal (rt_config_get (config, "workers"), "7");
    assert_string_equal (rt_config_get (config, "admin"), "127.0.0.1:9100");

    /* --help: the first table, then the second under its heading. */
    char *help_argv[] = {"retain-test", "--help", NULL};
    int rc;
    char *help = s_capture_stdout (config, 2, help_argv, &rc);
    assert_int_equal (rc, 1);
    const char *heading = strstr (help, "Shared by every test daemon:");
    assert_non_null (heading);
    assert_true (strstr (help, "--workers") < heading);
    assert_true (heading < strstr (help, "--clock-file"));
    assert_non_null (strstr (help, "RT_TEST_CLOCK_FILE"));
    free (help);
    rt_config_destroy (&config);
    unsetenv ("RT_TEST_CLOCK_FILE");
}

static void
test_retired_variable_is_refused (void **state)
{
    (void)state;
    char err[256];
    char *argv[] = {"retain-test", NULL};
    rt_config_t *config = rt_config_new ("retain-test", "", s_settings);
    assert_non_null (config);
    assert_int_equal (rt_config_retire (config, s_retired), 0);
    unsetenv ("RT_TEST_OLD_SECRET");
    assert_int_equal (rt_config_parse (config, 1, argv, err, sizeof err), 0);
    /* Empty carries no value that could be lost. */
    setenv ("RT_TEST_OLD_SECRET", "", 1);
    assert_int_equal (rt_config_parse (config, 1, argv, err, sizeof err), 0);

    setenv ("RT_TEST_OLD_SECRET", "an old key", 1);
    assert_int_equal (rt_config_parse (config, 1, argv, err, sizeof err), -1);
    assert_non_null (strstr (err, "RT_TEST_OLD_SECRET"));
    assert_non_null (strstr (err, "RT_TEST_NEW_SECRET"));
    /* The value itself is never repeated: it may be a secret. */
    assert_null (strstr (err, "an old key"));

    /* --help still answers, and lists what is retired. */
    char *help_argv[] = {"retain-test", "--help", NULL};
    int rc;
    char *help = s_capture_stdout (config, 2, help_argv, &rc);
    assert_int_equal (rc, 1);
    assert_non_null (strstr (help, "RT_TEST_OLD_SECRET"));
    assert_non_null (strstr (help, "RT_TEST_NEW_SECRET"));
    free (help);
    rt_config_destroy (&config);
    unsetenv ("RT_TEST_OLD_SECRET");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_defaults, s_setup),
        cmocka_unit_test_setup (test_flags_override_env, s_setup),
        cmocka_unit_test_setup (test_positional_arguments, s_setup),
        cmocka_unit_test_setup (test_bad_arguments, s_setup),
        cmocka_unit_test_setup (test_help_lists_everything_and_masks_secrets, s_setup),
        cmocka_unit_test_setup (test_durations, s_setup),
        cmocka_unit_test_setup (test_sizes, s_setup),
        cmocka_unit_test_setup (test_integers_and_bools, s_setup),
        cmocka_unit_test_setup (test_switches, s_setup),
        cmocka_unit_test_setup (test_log_masks_secrets, s_setup),
        cmocka_unit_test_setup (test_parse_twice_starts_over, s_setup),
        cmocka_unit_test_setup (test_tables_read_as_one, s_setup),
        cmocka_unit_test_setup (test_retired_variable_is_refused, s_setup),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
