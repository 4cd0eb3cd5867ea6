/*
 * retainctl notify against a real PostgreSQL, as a shop's administrator
 * uses it: sending accounts set beside their inboxes with the token from a
 * file and from stdin (never on the command line: not in the arguments ps
 * shows while it runs, not in anything it prints), listed with whether a
 * token is set, changed, disabled and enabled, and resumed after notifyd
 * stopped one whose token its provider refused. Every bad input exits 2
 * with its reason and writes nothing. Then the dead letters: a running
 * retain-notifyd (with retain-busd) sends an operator's reply through the
 * shared fake providers, whose Telegram fails it past its retries;
 * `notify failed` shows it with the customer, the channel, the attempts,
 * the provider's code and reason; `notify failed retry` queues it again
 * and the same notifyd delivers it. A send that failed before any attempt
 * (no identity on the channel) is not retried, and says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "retain/v1/message.pb-c.h"
#include "rt_bus.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_uuid.h"

/* Tokens that must never show. */
#define TG_TOKEN    "7000001:AAFileTokenNeverShown"
#define VIBER_TOKEN "4f5b1e0c9d8a7b6c-StdinTokenNeverShown"
#define NEW_TOKEN   "7000001:AARotatedTokenNeverShown"

#define CUSTOMER "01900000-0000-7000-8000-00000000c001" /* on Telegram, chat 4242 */
#define LONELY   "01900000-0000-7000-8000-00000000c002" /* on Viber only */
#define CHAT     "4242"

static struct {
    char dsn[1024];           /* the test's database, migrated */
    PGconn *pg;               /* the test's own look at it */
    rt_fake_provider_t *fake; /* the providers */
    rt_test_busd_t busd;      /* the log notifyd consumes */
    pid_t notifyd;            /* retain-notifyd, 0 when not running */
    int notifyd_admin;        /* its admin port */
    rt_db_t *outbox;          /* publishes requests as routerd does */
    char token_file[1024];    /* holds TG_TOKEN */
} s;

/* What one retainctl run did. */
typedef struct {
    int status; /* its exit status */
    char *out;  /* stdout and stderr (owned) */
} s_run_t;

static s_run_t
s_ctl (const char *const args[])
{
    s_run_t r = {0};
    r.status = rt_test_retainctl (s.dsn, args, &r.out);
    return r;
}

/* Fails unless the run exited with status and printed want (when not
 * NULL); frees it. Nothing it printed may hold a token. */
static void
s_expect (s_run_t r, int status, const char *want, const char *what)
{
    const char *tokens[] = {TG_TOKEN, VIBER_TOKEN, NEW_TOKEN, "AAFileToken", "StdinToken"};
    if (r.status != status || (want && !strstr (r.out, want)))
        fail_msg ("%s: exit %d (want %d), printed: %s (want \"%s\")", what, r.status, status, r.out,
                  want ? want : "");
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++) {
        if (strstr (r.out, tokens[i]))
            fail_msg ("%s printed a token: %s", what, r.out);
    }
    free (r.out);
}

/* A file under the test's folder holding text; its path into out. */
static void
s_file (char *out, size_t outlen, const char *name, const char *text)
{
    FILE *f;
    snprintf (out, outlen, "%s/notify-%d-%s", rt_test_dir (), (int)getpid (), name);
    f = fopen (out, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

static long long s_long (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static long long
s_long (const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    return rt_test_pg_long (s.pg, sql);
}

static void s_exec (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
s_exec (const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    rt_test_pg_exec (s.pg, sql);
}

/* A text cell of one row (static, cut), "" for none. */
static const char *
s_text (const char *sql)
{
    static char out[1024];
    PGresult *r = PQexec (s.pg, sql);
    if (PQresultStatus (r) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQerrorMessage (s.pg));
    snprintf (out, sizeof out, "%s", PQntuples (r) ? PQgetvalue (r, 0, 0) : "");
    PQclear (r);
    return out;
}

/* --- setup --- */

static void
s_inbox (const char *id, const char *channel)
{
    const char *args[] = {
        "inbox", "add", "--id", id, "--channel", channel, "--secret", "receiving-secret", NULL};
    s_expect (s_ctl (args), 0, "added", "inbox add");
}

static void
s_notifyd_start (void)
{
    char a_dsn[1100], a_pub[96], a_admin[64];
    char *argv[] = {"retain-notifyd",
                    a_dsn,
                    a_pub,
                    a_admin,
                    "--member=n1",
                    "--retry-max=2",
                    "--backoff=100ms",
                    "--backoff-max=200ms",
                    "--poll=20ms",
                    "--sweep=300ms",
                    "--request-timeout=2s",
                    NULL};
    s.notifyd_admin = rt_test_free_port ();
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s.dsn);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", s.busd.pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", s.notifyd_admin);
    s.notifyd = rt_test_spawn ("retain-notifyd", argv, NULL, "retainctl-notify-notifyd.log");
    if (!rt_test_wait_ready (s.notifyd_admin, 60000))
        fail_msg ("retain-notifyd did not become ready; see %s/retainctl-notify-notifyd.log",
                  rt_test_dir ());
}

static int
s_setup (void **state)
{
    const char *migrate[] = {"migrate", NULL};
    (void)state;
    rt_test_db_create ("retainctl_notify", s.dsn, sizeof s.dsn);
    s_expect (s_ctl (migrate), 0, NULL, "migrate");
    s.pg = rt_test_pg (s.dsn);
    s_inbox ("shop-bot", "telegram");
    s_inbox ("shop-viber", "viber");
    s_inbox ("shop-sms", "sms");
    s_inbox ("shop-mail", "email");
    s_file (s.token_file, sizeof s.token_file, "tg-token", TG_TOKEN "\n");
    s.fake = rt_fake_provider_start ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s.notifyd > 0)
        rt_test_stop (s.notifyd, "retain-notifyd");
    if (s.busd.pid > 0)
        rt_test_stop (s.busd.pid, "retain-busd");
    rt_db_destroy (&s.outbox);
    rt_fake_provider_stop (&s.fake);
    if (s.pg)
        PQfinish (s.pg);
    return 0;
}

/* --- accounts --- */

static void
test_set_token_from_file (void **state)
{
    const char *set[] = {"notify",     "account",    "set",
                         "--inbox",    "shop-bot",   "--token-file",
                         s.token_file, "--base-url", rt_fake_provider_base (s.fake),
                         "--rate",     "30",         "--burst",
                         "3",          NULL};
    const char *list[] = {"notify", "account", "list", NULL};
    const char *json[] = {"notify", "account", "list", "--json", NULL};
    s_run_t r;
    json_t *doc;
    (void)state;
    s_expect (s_ctl (set), 0, "account shop-bot added: inbox shop-bot, telegram through telegram",
              "account set from a file");
    /* Stored as given, without the file's newline; the channel and the
     * provider are the inbox's. */
    assert_string_equal (s_text ("SELECT token FROM notify.accounts WHERE id = 'shop-bot'"),
                         TG_TOKEN);
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-bot' AND"
                              " inbox_id = 'shop-bot' AND channel = 'telegram' AND provider ="
                              " 'telegram' AND rate_per_s = 30 AND burst = 3 AND priority = 0"),
                      1);
    s_expect (s_ctl (list), 0, "shop-bot                 shop-bot                 telegram",
              "account list");
    r = s_ctl (json);
    assert_int_equal (r.status, 0);
    doc = json_loads (r.out, 0, NULL);
    assert_non_null (doc);
    assert_int_equal (json_array_size (doc), 1);
    assert_true (json_is_true (json_object_get (json_array_get (doc, 0), "token_set")));
    assert_null (json_object_get (json_array_get (doc, 0), "token"));
    assert_string_equal (json_string_value (json_object_get (json_array_get (doc, 0), "state")),
                         "active");
    json_decref (doc);
    s_expect (r, 0, NULL, "account list --json");

    /* A change names only what changes: the token stays. */
    {
        const char *rate[] = {"notify",   "account",          "set", "--inbox",
                              "shop-bot", "--recipient-rate", "0.5", NULL};
        s_expect (s_ctl (rate), 0, "account shop-bot updated", "account set, a rate only");
        assert_string_equal (s_text ("SELECT token FROM notify.accounts WHERE id = 'shop-bot'"),
                             TG_TOKEN);
        assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-bot'"
                                  " AND recipient_per_s = 0.5 AND rate_per_s = 30"),
                          1);
    }
}

/* The arguments of process pid as ps shows them (NULs between them),
 * into *out (owned); its length. /proc's files tell no size: read to the
 * end. */
static size_t
s_cmdline (pid_t pid, char **out)
{
    char proc[64];
    size_t len = 0, cap = 8192;
    ssize_t n;
    int fd;
    *out = calloc (1, cap + 1);
    assert_non_null (*out);
    snprintf (proc, sizeof proc, "/proc/%d/cmdline", (int)pid);
    fd = open (proc, O_RDONLY);
    if (fd < 0)
        return 0;
    while (len < cap) {
        n = read (fd, *out + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close (fd);
    return len;
}

/* retainctl with args and input on its stdin, written only after the
 * test read the arguments the running process shows (/proc/<pid>/cmdline,
 * what ps prints). Its output into *out (owned). */
static int
s_ctl_stdin (const char *const args[], const char *input, char **cmdline, char **out)
{
    char path[1024], log[1024], a_dsn[1100];
    char *argv[32];
    int fds[2], status, n = 0;
    size_t len = 0;
    pid_t pid;
    snprintf (path, sizeof path, "%s/retainctl", RT_TEST_BIN_DIR);
    snprintf (log, sizeof log, "%s/retainctl-notify-stdin-%d.log", rt_test_dir (), (int)getpid ());
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s.dsn);
    argv[n++] = "retainctl";
    for (size_t i = 0; args[i]; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = a_dsn;
    argv[n] = NULL;
    assert_int_equal (pipe (fds), 0);
    pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        FILE *f = fopen (log, "w");
        if (!f)
            _exit (127);
        dup2 (fds[0], 0);
        dup2 (fileno (f), 1);
        dup2 (fileno (f), 2);
        close (fds[0]);
        close (fds[1]);
        execv (path, argv);
        _exit (127);
    }
    close (fds[0]);
    /* Once it runs retainctl (not the fork's copy of this test), its
     * arguments are what ps shows; it then waits for stdin. */
    for (int i = 0; i < 500; i++) {
        free (*cmdline);
        len = s_cmdline (pid, cmdline);
        if (len > 0 && strcmp (*cmdline, "retainctl") == 0)
            break;
        usleep (20 * 1000);
    }
    assert_non_null (*cmdline);
    assert_string_equal (*cmdline, "retainctl");
    for (size_t i = 0; i + 1 < len; i++) {
        if ((*cmdline)[i] == '\0')
            (*cmdline)[i] = ' ';
    }
    assert_true (write (fds[1], input, strlen (input)) == (ssize_t)strlen (input));
    close (fds[1]);
    assert_int_equal (waitpid (pid, &status, 0), pid);
    *out = rt_test_file_read (log, NULL);
    assert_non_null (*out);
    assert_true (WIFEXITED (status));
    return WEXITSTATUS (status);
}

static void
test_set_token_from_stdin (void **state)
{
    const char *set[] = {"notify",   "account", "set",          "--inbox", "shop-viber",
                         "--sender", "Shop",    "--token-file", "-",       NULL};
    char *cmdline = NULL, *out = NULL;
    int status;
    (void)state;
    status = s_ctl_stdin (set, VIBER_TOKEN "\n", &cmdline, &out);
    /* The process that took it never showed it in its arguments. */
    assert_non_null (strstr (cmdline, "--token-file -"));
    assert_null (strstr (cmdline, "StdinToken"));
    free (cmdline);
    s_expect ((s_run_t){status, out}, 0, "account shop-viber added: inbox shop-viber, viber",
              "account set from stdin");
    assert_string_equal (s_text ("SELECT token FROM notify.accounts WHERE id = 'shop-viber'"),
                         VIBER_TOKEN);
    assert_string_equal (s_text ("SELECT sender FROM notify.accounts WHERE id = 'shop-viber'"),
                         "Shop");
}

/* Each bad input: exit 2, its reason, nothing written. */
static void
test_bad_input (void **state)
{
    char empty[1024], spaced[1024];
    const char *tf = s.token_file;
    (void)state;
    s_file (empty, sizeof empty, "empty", "\n\n");
    s_file (spaced, sizeof spaced, "spaced", "7000001:AAF ileTokenNeverShown\n");
    const struct {
        const char *args[20];
        const char *reason;
    } cases[] = {
        {{"notify", "account", "set", "--inbox", "shop-bot", "--token=" NEW_TOKEN},
         "never taken on the command line"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--token", NEW_TOKEN},
         "never taken on the command line"},
        {{"notify", "account", "set", "--token-file", tf}, "--inbox is required"},
        {{"notify", "account", "set", "--inbox", "Shop Bot", "--token-file", tf},
         "--inbox \"Shop Bot\" must be"},
        {{"notify", "account", "set", "--inbox", "nowhere", "--token-file", tf},
         "no inbox \"nowhere\""},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--provider", "pigeon", "--token-file",
          tf},
         "--provider \"pigeon\" must be one of"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--provider", "viber", "--id", "x",
          "--token-file", tf},
         "--provider viber cannot send on telegram; it goes out through telegram"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--channel", "fax", "--token-file",
          tf},
         "--channel \"fax\" must be one of"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--token-file", tf},
         "mailgun cannot send on email"},
        {{"notify", "account", "set", "--inbox", "shop-sms", "--token-file", tf},
         "twilio cannot send on sms with this account: no AccountSid"},
        {{"notify", "account", "set", "--inbox", "shop-sms", "--account-id", "AC1", "--token-file",
          tf},
         "no From number"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--priority", "4", NULL},
         "a new account needs its token"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--provider", "smtp", "--channel",
          "sms"},
         "--provider smtp cannot send on sms; it goes out through twilio"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--provider", "smtp", "--base-url",
          "https://mail.example.com"},
         "--base-url \"https://mail.example.com\" must be an SMTP server"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--provider", "smtp"},
         "smtp cannot send on email with this account: it has no From"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--provider", "smtp", "--sender",
          "Shop <shop at example.com>"},
         "smtp cannot send on email with this account"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--provider", "smtp", "--sender",
          "shop@example.com", "--account-id", "shop"},
         "a new account needs its token"},
        {{"notify", "account", "set", "--inbox", "shop-mail", "--provider", "smtp", "--sender",
          "shop@example.com", "--token-file", tf},
         "it has a password but no login"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--rate", "0"},
         "--rate \"0\" must be a number"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--burst", "0.5"},
         "--burst \"0.5\" must be a number from 1"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--recipient-rate", "fast"},
         "--recipient-rate \"fast\" must be"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--priority", "5000"}, "priority"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--daily-quota", "0"},
         "--daily-quota"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--daily-quota", "lots"},
         "--daily-quota"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--id", "shop-bot", "--quota-zone",
          "Mars/Olympus_Mons"},
         "--quota-zone \"Mars/Olympus_Mons\" is no time zone"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--base-url", "ftp://x"},
         "must be an http:// or https:// URL"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--token-file", empty},
         "holds no token"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--token-file", spaced},
         "the token holds a space"},
        {{"notify", "account", "set", "--inbox", "shop-bot", "--token-file", "/nonexistent/t"},
         "--token-file /nonexistent/t"},
        {{"notify", "account", "disable"}, "--id is required"},
        {{"notify", "failed", "--since", "soon"}, "--since \"soon\" must be a duration"},
        {{"notify", "failed", "retry"}, "give either --id M (one message) or --all"},
        {{"notify", "failed", "retry", "--all", "--id", CUSTOMER}, "give either --id M"},
        {{"notify", "failed", "retry", "--id", "42"}, "not a message id"},
        {{"notify", "failed", "retry", "--id", CUSTOMER, "--since", "1h"},
         "--since goes with --all"},
    };
    long long before = s_long ("SELECT count(*) FROM notify.accounts");
    char *fingerprint = strdup (s_text ("SELECT string_agg(id || token || rate_per_s || burst ||"
                                        " recipient_per_s || priority, ',' ORDER BY id)"
                                        " FROM notify.accounts"));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[256];
        snprintf (what, sizeof what, "bad input %zu (%s %s %s)", i, cases[i].args[1],
                  cases[i].args[2] ? cases[i].args[2] : "",
                  cases[i].args[3] ? cases[i].args[3] : "");
        s_expect (s_ctl (cases[i].args), 2, cases[i].reason, what);
    }
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts"), before);
    assert_string_equal (s_text ("SELECT string_agg(id || token || rate_per_s || burst ||"
                                 " recipient_per_s || priority, ',' ORDER BY id)"
                                 " FROM notify.accounts"),
                         fingerprint);
    free (fingerprint);
}

/* An e-mail inbox's account sends over SMTP: a login with a password
 * that may hold spaces, a From with a display name, the server's URL; and
 * a second one, with no login, for a relay that needs none. */
static void
test_smtp_account (void **state)
{
    char password[1024];
    (void)state;
    s_file (password, sizeof password, "smtp-password", "correct horse battery\n");
    {
        const char *set[] = {"notify",
                             "account",
                             "set",
                             "--inbox",
                             "shop-mail",
                             "--provider",
                             "smtp",
                             "--sender",
                             "Shop <shop@example.com>",
                             "--account-id",
                             "shop",
                             "--token-file",
                             password,
                             "--base-url",
                             "smtp://mail.example.com:587",
                             NULL};
        s_expect (s_ctl (set), 0,
                  "account shop-mail added: inbox shop-mail, email through smtp, priority 0, "
                  "token set",
                  "an SMTP account with a login");
    }
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-mail' AND"
                              " channel = 'email' AND provider = 'smtp' AND"
                              " sender = 'Shop <shop@example.com>' AND account_id = 'shop' AND"
                              " token = 'correct horse battery' AND"
                              " base_url = 'smtp://mail.example.com:587'"),
                      1);
    {
        const char *set[] = {
            "notify",           "account",    "set", "--inbox",    "shop-mail", "--id",
            "shop-relay",       "--priority", "1",   "--provider", "smtp",      "--sender",
            "shop@example.com", NULL};
        s_expect (s_ctl (set), 0,
                  "account shop-relay added: inbox shop-mail, email through smtp, priority 1, "
                  "no login",
                  "an SMTP account without a login");
    }
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-relay' AND"
                              " provider = 'smtp' AND token = '' AND account_id = '' AND"
                              " base_url = ''"),
                      1);
}

/* A revoked token: notifyd stopped the account; the operator sets the new
 * token and resumes it. Disable and enable are the operator's own switch. */
static void
test_stop_resume_disable_enable (void **state)
{
    const char *list[] = {"notify", "account", "list", NULL};
    const char *resume[] = {"notify", "account", "resume", "--id", "shop-viber", NULL};
    const char *disable[] = {"notify", "account", "disable", "--id", "shop-viber", NULL};
    const char *enable[] = {"notify", "account", "enable", "--id", "shop-viber", NULL};
    const char *unknown[] = {"notify", "account", "resume", "--id", "nobody", NULL};
    char new_file[1024];
    (void)state;
    /* As outcome.c stops an account its provider refused. */
    s_exec ("UPDATE notify.accounts SET stopped_at = now(), stopped_reason = '2: invalid auth"
            " token' WHERE id = 'shop-viber'");
    s_expect (s_ctl (list), 0, "stopped ", "account list, stopped");
    s_expect (s_ctl (list), 0, "2: invalid auth token", "account list, the stop's reason");
    s_file (new_file, sizeof new_file, "new-token", NEW_TOKEN);
    {
        const char *set[] = {"notify",     "account",      "set",    "--inbox",
                             "shop-viber", "--token-file", new_file, NULL};
        s_expect (s_ctl (set), 0, "notify account resume --id shop-viber",
                  "account set on a stopped account");
    }
    assert_string_equal (s_text ("SELECT token FROM notify.accounts WHERE id = 'shop-viber'"),
                         NEW_TOKEN);
    s_expect (s_ctl (resume), 0, "resumed (it was stopped: 2: invalid auth token)",
              "account resume");
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-viber' AND"
                              " stopped_at IS NULL AND stopped_reason IS NULL"),
                      1);
    s_expect (s_ctl (resume), 0, "was not stopped", "account resume, again");

    s_expect (s_ctl (disable), 0, "account shop-viber: disabled", "account disable");
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-viber'"
                              " AND disabled_at IS NOT NULL"),
                      1);
    s_expect (s_ctl (list), 0, "disabled", "account list, disabled");
    s_expect (s_ctl (enable), 0, "account shop-viber: enabled", "account enable");
    assert_int_equal (s_long ("SELECT count(*) FROM notify.accounts WHERE id = 'shop-viber'"
                              " AND disabled_at IS NULL"),
                      1);
    s_expect (s_ctl (unknown), 1, "no account \"nobody\"", "account resume, unknown");
}

/* --- dead letters --- */

/* An operator's reply to customer, published through the outbox as
 * routerd does. */
static void
s_request (const char *message_id, const char *customer, const char *text)
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    Retain__V1__Envelope *env;
    ProtobufCBinaryData packed = {0};
    m.message_id = (char *)message_id;
    m.customer_id = (char *)customer;
    m.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    m.conversation_id = "";
    m.text = (char *)text;
    m.operator_id = "op1";
    env = rt_envelope_new ("OutboundMessageRequested", customer, &m.base, "retain-routerd");
    assert_non_null (env);
    free (env->id);
    env->id = strdup (message_id);
    packed.data = rt_envelope_pack (env, &packed.len);
    assert_non_null (packed.data);
    rt_envelope_free (env);
    if (rt_db_begin (s.outbox) != 0 || rt_outbox_append_batch (s.outbox, &packed, 1) != 0 ||
        rt_db_commit (s.outbox) != 0)
        fail_msg ("publishing: %s", rt_db_error (s.outbox));
    free (packed.data);
}

static void
s_wait_status (const char *id, const char *status)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status = '%s'", id, status);
    if (rt_test_pg_wait_long (s.pg, sql, 1, 30000) != 1)
        fail_msg (
            "message %s is not %s within 30 s (it is %s); see %s/retainctl-notify-notifyd.log", id,
            status, s_text ("SELECT status FROM notify.sends ORDER BY created_at DESC LIMIT 1"),
            rt_test_dir ());
}

static void
test_dead_letter_retried_then_delivered (void **state)
{
    const char *failed[] = {"notify", "failed", NULL};
    const char *failed_json[] = {"notify", "failed", "--since", "1h", "--json", NULL};
    char msg[RT_UUID_STR_LEN + 1], lonely_msg[RT_UUID_STR_LEN + 1];
    const char *text = "Ваше замовлення вже в дорозі";
    rt_fake_answer_t down = {.kind = RT_FAKE_SERVER_ERROR, .status = 503};
    const rt_fake_request_t *last;
    char code[64], reason[512], want[800];
    s_run_t r;
    json_t *doc, *item = NULL, *it;
    size_t i, before;
    (void)state;
    /* Fresh ids: the log takes envelopes made around now only. */
    {
        rt_uuid_t a = rt_uuid_v7 (), b = rt_uuid_v7 ();
        rt_uuid_format (&a, msg);
        rt_uuid_format (&b, lonely_msg);
    }

    rt_test_busd_start (&s.busd, s.dsn, "retainctl-notify-busd.log", NULL, true);
    s.outbox = rt_db_new (s.dsn, "test-publisher");
    assert_non_null (s.outbox);
    assert_int_equal (rt_outbox_prepare (s.outbox), 0);
    assert_int_equal (rt_db_connect (s.outbox), 0);
    s_notifyd_start ();
    s_exec ("INSERT INTO crm.customers (id) VALUES ('%s'), ('%s')", CUSTOMER, LONELY);
    s_exec ("INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id) VALUES"
            " ('telegram', 'shop-bot', '" CHAT "', '%s'), ('viber', 'shop-viber', 'v-1', '%s')",
            CUSTOMER, LONELY);

    /* Telegram is down for the two attempts notifyd makes (--retry-max=2). */
    rt_fake_provider_push (s.fake, RT_FAKE_TELEGRAM, &down);
    rt_fake_provider_push (s.fake, RT_FAKE_TELEGRAM, &down);
    before = rt_fake_provider_count (s.fake, RT_FAKE_TELEGRAM);
    s_request (msg, CUSTOMER, text);
    s_wait_status (msg, "failed");
    assert_int_equal (rt_fake_provider_count (s.fake, RT_FAKE_TELEGRAM), before + 2);
    /* And one that fails before any attempt: no Telegram identity. */
    s_request (lonely_msg, LONELY, "nowhere to go");
    s_wait_status (lonely_msg, "failed");

    /* The list shows what notifyd kept: the customer, the channel, the
     * attempts, the provider's code and words. */
    {
        char sql[256];
        snprintf (sql, sizeof sql, "SELECT last_code FROM notify.sends WHERE id = '%s'", msg);
        snprintf (code, sizeof code, "%s", s_text (sql));
        snprintf (sql, sizeof sql, "SELECT last_reason FROM notify.sends WHERE id = '%s'", msg);
        snprintf (reason, sizeof reason, "%s", s_text (sql));
    }
    assert_true (code[0] && reason[0]);
    r = s_ctl (failed);
    snprintf (want, sizeof want, "%s %s telegram   2        %-14s %s", msg, CUSTOMER, code, reason);
    s_expect (r, 0, want, "notify failed");
    s_expect (s_ctl (failed), 0, "no_channel", "notify failed, the one never tried");

    r = s_ctl (failed_json);
    assert_int_equal (r.status, 0);
    doc = json_loads (r.out, 0, NULL);
    assert_non_null (doc);
    json_array_foreach (doc, i, it)
    {
        if (strcmp (json_string_value (json_object_get (it, "message_id")), msg) == 0)
            item = it;
    }
    assert_non_null (item);
    assert_string_equal (json_string_value (json_object_get (item, "customer_id")), CUSTOMER);
    assert_string_equal (json_string_value (json_object_get (item, "channel")), "telegram");
    assert_int_equal (json_integer_value (json_object_get (item, "attempts")), 2);
    assert_string_equal (json_string_value (json_object_get (item, "code")), code);
    assert_string_equal (json_string_value (json_object_get (item, "reason")), reason);
    assert_true (json_is_true (json_object_get (item, "retryable")));
    json_decref (doc);
    s_expect (r, 0, NULL, "notify failed --json");

    /* The one never tried cannot be retried, and says why. */
    {
        const char *retry[] = {"notify", "failed", "retry", "--id", lonely_msg, NULL};
        s_expect (s_ctl (retry), 1, "failed before any attempt (no_channel",
                  "failed retry of a send nothing can make");
    }

    /* Telegram is back: the retry delivers it, once more and no more. */
    {
        const char *retry[] = {"notify", "failed", "retry", "--id", msg, NULL};
        s_expect (s_ctl (retry), 0, "queued again", "failed retry --id");
    }
    s_wait_status (msg, "delivered");
    assert_int_equal (rt_fake_provider_count (s.fake, RT_FAKE_TELEGRAM), before + 3);
    last =
        rt_fake_provider_request (s.fake, rt_fake_provider_count (s.fake, RT_FAKE_PROVIDERS) - 1);
    assert_non_null (last);
    assert_non_null (strstr (last->target, "/bot" TG_TOKEN "/sendMessage"));
    assert_non_null (strstr (last->body, text));
    assert_non_null (strstr (last->body, CHAT));
    assert_int_equal (s_long ("SELECT count(*) FROM notify.sends WHERE id = '%s' AND attempts = 1"
                              " AND failures = 0 AND external_id <> ''",
                              msg),
                      1);
    {
        char *out = NULL;
        assert_int_equal (rt_test_retainctl (s.dsn, failed, &out), 0);
        assert_null (strstr (out, msg));
        assert_non_null (strstr (out, lonely_msg));
        free (out);
    }
    /* --all now: nothing it can send, the one never tried counted apart. */
    {
        const char *all[] = {"notify", "failed", "retry", "--all", "--since", "1h", NULL};
        s_expect (s_ctl (all), 0, "0 dead letters queued again; 1 left", "failed retry --all");
    }
    usleep (300 * 1000);
    assert_int_equal (rt_fake_provider_count (s.fake, RT_FAKE_TELEGRAM), before + 3);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_set_token_from_file),
        cmocka_unit_test (test_set_token_from_stdin),
        cmocka_unit_test (test_bad_input),
        cmocka_unit_test (test_smtp_account),
        cmocka_unit_test (test_stop_resume_disable_enable),
        cmocka_unit_test (test_dead_letter_retried_then_delivered),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
