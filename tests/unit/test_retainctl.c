/*
 * Tests retainctl as a user runs it: a child process, its exit status, its
 * stdout and its stderr.
 *
 * Every command and subcommand answers --help with status 0 and its usage
 * on stdout. The commands are not listed here: retainctl prints its own
 * table (`retainctl help --commands`), so a command added there is covered
 * without touching this file; the test only insists that the commands the
 * README documents are among them. Switches work alone, as the README
 * writes them (`tail ... --follow`, `offsets --all`), against a real
 * database. The binary is RT_TEST_BIN_DIR/retainctl, or $RT_RETAINCTL.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_test.h"

#define S_MAX_WORDS 32

typedef struct {
    int status; /* exit status, -1 when it did not exit */
    char *out;  /* its stdout; owned */
    char *err;  /* its stderr; owned */
} s_run_t;

static const char *
s_bin (void)
{
    const char *bin = getenv ("RT_RETAINCTL");
    return bin ? bin : RT_TEST_BIN_DIR "/retainctl";
}

static char *
s_slurp (const char *path)
{
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    fseek (f, 0, SEEK_END);
    long n = ftell (f);
    fseek (f, 0, SEEK_SET);
    char *buf = malloc ((size_t)n + 1);
    assert_non_null (buf);
    assert_int_equal (fread (buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose (f);
    return buf;
}

/* Runs retainctl with words[0..n) as its arguments and waits for it. */
static s_run_t
s_runv (const char *const *words, int n)
{
    const char *argv[S_MAX_WORDS + 2];
    char out_path[] = "/tmp/test_retainctl_out_XXXXXX",
         err_path[] = "/tmp/test_retainctl_err_XXXXXX";
    int out_fd = mkstemp (out_path), err_fd = mkstemp (err_path), status;
    assert_true (n <= S_MAX_WORDS);
    assert_true (out_fd >= 0 && err_fd >= 0);
    argv[0] = s_bin ();
    for (int i = 0; i < n; i++)
        argv[i + 1] = words[i];
    argv[n + 1] = NULL;
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        dup2 (out_fd, 1);
        dup2 (err_fd, 2);
        execv (argv[0], (char *const *)argv);
        _exit (127);
    }
    assert_int_equal (waitpid (pid, &status, 0), pid);
    close (out_fd);
    close (err_fd);
    s_run_t r = {WIFEXITED (status) ? WEXITSTATUS (status) : -1, s_slurp (out_path),
                 s_slurp (err_path)};
    unlink (out_path);
    unlink (err_path);
    return r;
}

/* The same with a NULL-terminated list of arguments. */
static s_run_t
s_run (const char *first, ...)
{
    const char *words[S_MAX_WORDS];
    int n = 0;
    va_list ap;
    va_start (ap, first);
    for (const char *a = first; a && n < S_MAX_WORDS; a = va_arg (ap, const char *))
        words[n++] = a;
    va_end (ap);
    return s_runv (words, n);
}

static void
s_free (s_run_t *r)
{
    free (r->out);
    free (r->err);
}

/* Splits text into words at any of sep (in place); returns their count. */
static int
s_split (char *text, const char *sep, const char **words, int max)
{
    char *cursor = NULL;
    int n = 0;
    for (char *w = strtok_r (text, sep, &cursor); w && n < max; w = strtok_r (NULL, sep, &cursor))
        words[n++] = w;
    return n;
}

static void
test_every_command_answers_help (void **state)
{
    (void)state;
    /* What the README documents; the listing may hold more. */
    static const char *const documented[] = {
        "migrate",
        "publish",
        "tail",
        "offsets",
        "keygen",
        "inbox",
        "inbox add",
        "inbox list",
        "inbox rotate-secret",
        "inbox disable",
        "inbox enable",
        "inbox remove",
        "churn",
        "churn fit",
        "churn score",
        "churn report",
        "churn summary",
        "team",
        "team add",
        "team list",
        "operator",
        "operator add",
        "operator list",
        "operator disable",
        "operator rotate-key",
        "team hours",
        "sla",
        "sla set",
        "sla list",
        "sla delete",
        "template",
        "template add",
        "template list",
        "template show",
        "template preview",
        "template whatsapp set",
        "template whatsapp list",
        "template whatsapp remove",
        "notify",
        "notify account set",
        "notify account list",
        "notify account disable",
        "notify account enable",
        "notify account resume",
        "notify failed",
        "notify failed retry",
        "campaign",
        "campaign create",
        "campaign start",
        "campaign pause",
        "campaign resume",
        "campaign cancel",
        "campaign list",
        "campaign status",
    };
    s_run_t list = s_run ("help", "--commands", NULL);
    assert_int_equal (list.status, 0);
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) {
        char line[96];
        snprintf (line, sizeof line, "\n%s\n", documented[i]);
        /* The listing's first line has no newline before it. */
        if (!strstr (list.out, line) && strncmp (list.out, line + 1, strlen (line + 1)) != 0)
            fail_msg ("`retainctl help --commands` does not list \"%s\":\n%s", documented[i],
                      list.out);
    }

    const char *lines[128];
    int commands = s_split (list.out, "\n", lines, 128);
    for (int c = 0; c < commands; c++) {
        const char *words[S_MAX_WORDS], *help_words[S_MAX_WORDS];
        char copy[256], name[300];
        snprintf (copy, sizeof copy, "%s", lines[c]);
        snprintf (name, sizeof name, "retainctl %s", lines[c]);
        int n = s_split (copy, " ", words, S_MAX_WORDS - 1);
        words[n] = "--help";
        s_run_t r = s_runv (words, n + 1);
        if (r.status != 0 || r.out[0] == '\0' || !strstr (r.out, name))
            fail_msg ("`%s --help`: status %d, stdout \"%s\", stderr \"%s\"", name, r.status, r.out,
                      r.err);
        /* `retainctl help <command>` says the same. */
        help_words[0] = "help";
        for (int i = 0; i < n; i++)
            help_words[i + 1] = words[i];
        s_run_t h = s_runv (help_words, n + 1);
        if (h.status != 0 || strcmp (h.out, r.out) != 0)
            fail_msg ("`retainctl help %s`: status %d, stdout differs from --help:\n%s", lines[c],
                      h.status, h.out);
        s_free (&h);
        s_free (&r);
    }
    assert_true (commands >= (int)(sizeof documented / sizeof documented[0]));
    s_free (&list);
}

static void
test_usage_at_every_level (void **state)
{
    (void)state;
    static const char *const asked[][2] = {{"--help", NULL}, {"help", NULL}};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        s_run_t r = s_run (asked[i][0], asked[i][1], NULL);
        if (r.status != 0 || !strstr (r.out, "usage: retainctl") || !strstr (r.out, "tail"))
            fail_msg ("`retainctl %s`: status %d, stdout \"%s\"", asked[i][0], r.status, r.out);
        s_free (&r);
    }
    /* Asked for nothing, or for what does not exist: usage on stderr, 2. */
    static const char *const wrong[][3] = {
        {NULL, NULL, NULL},       {"nonsense", NULL, NULL}, {"inbox", NULL, NULL},
        {"inbox", "bogus", NULL}, {"churn", NULL, NULL},    {"tail", "stray", NULL},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        s_run_t r = s_run (wrong[i][0], wrong[i][1], wrong[i][2], NULL);
        if (r.status != 2 || r.out[0] != '\0' || r.err[0] == '\0')
            fail_msg ("case %zu: status %d, stdout \"%s\", stderr \"%s\"", i, r.status, r.out,
                      r.err);
        s_free (&r);
    }
}

/* Starts retainctl with the arguments (NULL-terminated), output to a log. */
static pid_t
s_spawn (const char *log, const char *first, ...)
{
    char *argv[S_MAX_WORDS + 2];
    int n = 0;
    va_list ap;
    argv[n++] = (char *)s_bin ();
    va_start (ap, first);
    for (const char *a = first; a && n <= S_MAX_WORDS; a = va_arg (ap, const char *))
        argv[n++] = (char *)a;
    va_end (ap);
    argv[n] = NULL;
    return rt_test_spawn (argv[0], argv, NULL, log);
}

static void
test_switches_alone (void **state)
{
    (void)state;
    char dsn[1024], flag[1100];
    rt_test_db_create ("retainctl_cli", dsn, sizeof dsn);
    snprintf (flag, sizeof flag, "--pg-dsn=%s", dsn);
    s_run_t r = s_run ("migrate", flag, NULL);
    if (r.status != 0)
        fail_msg ("migrate: status %d: %s", r.status, r.err);
    s_free (&r);

    /* The README's line: it follows the log instead of ending. */
    pid_t tail = s_spawn ("retainctl-tail.log", "tail", "--stream", "order", "--from", "1",
                          "--follow", flag, NULL);
    if (rt_test_wait (tail, 1500) != -1)
        fail_msg ("`retainctl tail --stream order --from 1 --follow` ended at once; see %s/"
                  "retainctl-tail.log",
                  rt_test_dir ());
    int status = rt_test_kill (tail, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    /* Without it, or with it off, the empty log is printed and it ends. */
    static const char *const ends[] = {"--stream=order", "--follow=false", "--follow=off"};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        r = s_run ("tail", ends[i], flag, NULL);
        if (r.status != 0 || r.out[0] != '\0')
            fail_msg ("`retainctl tail %s`: status %d, stdout \"%s\", stderr \"%s\"", ends[i],
                      r.status, r.out, r.err);
        s_free (&r);
    }

    /* `offsets --all`, alone and spelled out. */
    static const char *const all[] = {"--all", "--all=true", "--all=false"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        r = s_run ("offsets", all[i], flag, NULL);
        if (r.status != 0 || !strstr (r.out, "GROUP"))
            fail_msg ("`retainctl offsets %s`: status %d, stdout \"%s\", stderr \"%s\"", all[i],
                      r.status, r.out, r.err);
        s_free (&r);
    }
    /* A value that is no boolean is a usage error naming the flag. */
    r = s_run ("offsets", "--all=maybe", flag, NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "--all"));
    s_free (&r);
}

/* publish refuses what busd would, before it sends anything: no busd is
 * listening here, so an answer about the envelope can only be its own. */
static void
test_publish_checks_before_sending (void **state)
{
    (void)state;
    s_run_t r =
        s_run ("publish", "--bus=tcp://127.0.0.1:1", "--type=OrderPlaced", "--stream=message",
               "--key=customer-1", "--json={\"orderId\":\"o-1\"}", NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "belongs to stream \"order\""));
    s_free (&r);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_command_answers_help),
        cmocka_unit_test (test_usage_at_every_level),
        cmocka_unit_test (test_switches_alone),
        cmocka_unit_test (test_publish_checks_before_sending),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
