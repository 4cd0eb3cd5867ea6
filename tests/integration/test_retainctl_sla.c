/*
 * retainctl sla and team hours against a real PostgreSQL and a running
 * retain-routerd, as an administrator uses them: a policy stored from a
 * file and from stdin, kept verbatim, listed (table and JSON) in the order
 * routerd applies them, replaced by name in its place, deleted; a team's
 * business hours set (its time zone following) and cleared; every bad
 * input (malformed JSON, an unknown field, a bad zone, overlapping hours,
 * an hour past 24:00, a policy without a name, an unknown team, a missing
 * file) refused with exit 2 and the parser's reason on stderr, nothing
 * written. And what was set is what routerd's clocks count with: with the
 * daemon's clock on a Friday at 17:00 in Kyiv, a message under the team's
 * "2 business hours" set through retainctl is due on Monday at 10:00, the
 * marketplace's 24 wall-clock hours on Saturday at 17:00, the same policy
 * replaced with 60 minutes at Friday 18:00; with the hours cleared, or
 * the policy deleted, no clock starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "rt_clock.h"
#include "rt_test.h"

#define HOUR_MS (60 * 60000LL)

/* Instants in Kyiv (UTC+2 in January 2026), unix ms. */
#define FRI_1700 1767970800000LL /* Friday 9 January, 17:00 */
#define FRI_1800 1767974400000LL /* Friday, 18:00: closing time */
#define MON_1000 1768204800000LL /* Monday 12 January, 10:00 */

#define HOURS                                                                                      \
    "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\", \"holidays\": "              \
    "[\"2026-12-25\"]}"
#define SUPPORT_2H                                                                                 \
    "{\"name\": \"support 2h\", \"team\": \"support\", \"clock\": \"business\",\n"                 \
    " \"first_response_minutes\": 120, \"next_response_minutes\": 120,\n"                          \
    " \"warning\": {\"percent\": 80}, \"escalation\": {\"reassign\": true}}\n"
#define SUPPORT_1H                                                                                 \
    "{\"name\": \"support 2h\", \"team\": \"support\", \"clock\": \"business\","                   \
    " \"first_response_minutes\": 60}"
#define MARKETPLACE_24H                                                                            \
    "{\"name\": \"marketplace 24h\", \"channel\": \"email\", \"clock\": \"wall\","                 \
    " \"first_response_minutes\": 1440, \"warning\": {\"minutes_before\": 60}}"

static struct {
    char dsn[1024];     /* the test's database, migrated */
    char clock[1024];   /* routerd's clock file */
    PGconn *pg;         /* the test's own look at it */
    rt_test_busd_t bus; /* the bus routerd consumes */
    pid_t routerd;      /* retain-routerd under test, 0 when stopped */
    int runs;           /* numbers retainctl's runs apart */
} s;

/* What one retainctl run did. */
typedef struct {
    int status; /* its exit status */
    char *out;  /* its stdout (owned) */
    char *err;  /* its stderr (owned) */
} s_run_t;

static void
s_run_free (s_run_t *r)
{
    free (r->out);
    free (r->err);
    memset (r, 0, sizeof *r);
}

/* Runs retainctl with args (NULL-terminated) and --pg-dsn (but for
 * help), its stdin the text `input` (NULL: empty), stdout and stderr
 * apart. */
static s_run_t
s_ctl (const char *input, const char *first, ...)
{
    char in[1024], errp[1024], out[64], a_dsn[1100], bin[1024];
    char *argv[40];
    size_t n = 0;
    s_run_t r;
    va_list ap;
    pid_t pid;
    int status;
    FILE *f;

    /* Named by pid too: a log is appended to, and a second run of the
     * test would read the first's. */
    snprintf (in, sizeof in, "%s/sla-%d-%d.in", rt_test_dir (), (int)getpid (), s.runs);
    snprintf (errp, sizeof errp, "%s/sla-%d-%d.err", rt_test_dir (), (int)getpid (), s.runs);
    snprintf (out, sizeof out, "retainctl-sla-%d-%d.out", (int)getpid (), s.runs);
    s.runs++;
    f = fopen (in, "w");
    assert_non_null (f);
    if (input)
        fputs (input, f);
    fclose (f);
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s.dsn);
    snprintf (bin, sizeof bin, "%s/retainctl", RT_TEST_BIN_DIR);
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = "i=$1; e=$2; shift 2; exec \"$@\" <\"$i\" 2>\"$e\"";
    argv[n++] = "sh";
    argv[n++] = in;
    argv[n++] = errp;
    argv[n++] = bin;
    va_start (ap, first);
    for (const char *a = first; a && n < 37; a = va_arg (ap, const char *))
        argv[n++] = (char *)a;
    va_end (ap);
    if (strcmp (first, "help") != 0)
        argv[n++] = a_dsn;
    argv[n] = NULL;
    pid = rt_test_spawn ("/bin/sh", argv, NULL, out);
    status = rt_test_wait (pid, 60000);
    if (status == -1) {
        rt_test_kill (pid, SIGKILL);
        fail_msg ("retainctl %s did not finish in 60 s", first);
    }
    assert_true (WIFEXITED (status));
    r.status = WEXITSTATUS (status);
    r.out = rt_test_log (out);
    r.err = rt_test_file_read (errp, NULL);
    assert_non_null (r.err);
    return r;
}

/* A file under the test's folder holding text; its path into path. */
static void
s_file (char *path, size_t pathlen, const char *name, const char *text)
{
    FILE *f;
    snprintf (path, pathlen, "%s/%s", rt_test_dir (), name);
    f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

/* The run succeeded (0) and printed `says`. */
static void
s_ok (s_run_t *r, const char *what, const char *says)
{
    if (r->status != 0 || (says && !strstr (r->out, says)))
        fail_msg ("%s: status %d, wanted 0 saying \"%s\":\n%s%s", what, r->status, says ? says : "",
                  r->out, r->err);
    s_run_free (r);
}

static long long s_long (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static long long
s_long (const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    return rt_test_pg_long (s.pg, sql);
}

/* One text value of a query, "" for NULL or no row; owned. */
static char *s_text (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *
s_text (const char *fmt, ...)
{
    char sql[4096];
    PGresult *res;
    char *v;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    res = PQexec (s.pg, sql);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQerrorMessage (s.pg));
    v = strdup (PQntuples (res) > 0 ? PQgetvalue (res, 0, 0) : "");
    PQclear (res);
    assert_non_null (v);
    return v;
}

/* Everything the commands write, as one text, to compare before and
 * after a refusal. */
static char *
s_written (void)
{
    return s_text ("SELECT coalesce((SELECT string_agg(name || '=' || policy || '@' || updated_at,"
                   " '|' ORDER BY name) FROM routing.sla_policies), '') || '#' ||"
                   " (SELECT string_agg(id || '=' || coalesce(business_hours, '-') || '@' ||"
                   " time_zone, '|' ORDER BY id) FROM routing.teams)");
}

static void
s_routerd_start (void)
{
    char dsn[1100], pub[96], admin[48], http[48], clock[1100];
    int admin_port = rt_test_free_port ();
    snprintf (dsn, sizeof dsn, "--pg-dsn=%s", s.dsn);
    snprintf (pub, sizeof pub, "--pub=%s", s.bus.pub);
    snprintf (admin, sizeof admin, "--admin=127.0.0.1:%d", admin_port);
    snprintf (http, sizeof http, "--http=127.0.0.1:%d", rt_test_free_port ());
    snprintf (clock, sizeof clock, "--clock-file=%s", s.clock);
    char *argv[] = {"retain-routerd", dsn, pub, admin, http, clock, NULL};
    s.routerd = rt_test_spawn ("retain-routerd", argv, NULL, "retainctl_sla-routerd.log");
    if (!rt_test_wait_ready (admin_port, 30000))
        fail_msg ("retain-routerd not ready; see %s/retainctl_sla-routerd.log", rt_test_dir ());
}

static int
s_setup (void **state)
{
    s_run_t r;
    (void)state;
    memset (&s, 0, sizeof s);
    rt_test_db_create ("retainctl_sla", s.dsn, sizeof s.dsn);
    s.pg = rt_test_pg (s.dsn);
    r = s_ctl (NULL, "migrate", NULL);
    s_ok (&r, "retainctl migrate", NULL);
    r = s_ctl (NULL, "team", "add", "--id", "support", "--name", "Support", NULL);
    s_ok (&r, "team add", NULL);
    /* routerd counts on Friday 9 January 2026 at 17:00 in Kyiv. */
    snprintf (s.clock, sizeof s.clock, "%s/retainctl_sla.clock", rt_test_dir ());
    assert_int_equal (rt_clock_file_set (s.clock, FRI_1700 - rt_clock_now_ms (), 0), 0);
    rt_test_busd_start (&s.bus, s.dsn, "retainctl_sla-busd.log", NULL, true);
    s_routerd_start ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s.routerd > 0)
        rt_test_stop (s.routerd, "retain-routerd");
    if (s.bus.pid > 0)
        rt_test_stop (s.bus.pid, "retain-busd");
    PQfinish (s.pg);
    return 0;
}

/* No policies, no hours: each test starts from the team alone. */
static int
s_clean (void **state)
{
    (void)state;
    rt_test_pg_exec (s.pg, "TRUNCATE routing.sla_policies");
    rt_test_pg_exec (s.pg, "UPDATE routing.teams SET business_hours = NULL, time_zone = 'UTC'");
    return 0;
}

/* --- the commands --- */

static void
test_policies (void **state)
{
    char path[1024], *v;
    json_error_t jerr;
    json_t *all, *p;
    s_run_t r;
    (void)state;

    s_file (path, sizeof path, "support.json", SUPPORT_2H);
    r = s_ctl (NULL, "sla", "set", "--file", path, NULL);
    s_ok (&r, "sla set --file", "\"support 2h\" stored");
    /* Kept as typed, newlines and all. */
    v = s_text ("SELECT policy FROM routing.sla_policies WHERE name = 'support 2h'");
    assert_string_equal (v, SUPPORT_2H);
    free (v);
    r = s_ctl (MARKETPLACE_24H, "sla", "set", "--file", "-", NULL);
    s_ok (&r, "sla set --file -", "\"marketplace 24h\" stored");
    assert_int_equal (s_long ("SELECT count(*) FROM routing.sla_policies"), 2);

    /* The table: the order is the one routerd decides ties by. */
    r = s_ctl (NULL, "sla", "list", NULL);
    assert_int_equal (r.status, 0);
    {
        const char *support = strstr (r.out, "support 2h");
        const char *market = strstr (r.out, "marketplace 24h");
        if (!support || !market || support > market)
            fail_msg ("sla list, support then marketplace:\n%s", r.out);
        if (!strstr (support, "business (team's hours)") || !strstr (support, "team support") ||
            !strstr (support, "2h") || !strstr (support, "80%") ||
            !strstr (support, "flag, reassign"))
            fail_msg ("sla list, the support policy:\n%s", r.out);
        if (!strstr (market, "wall") || !strstr (market, "channel email") ||
            !strstr (market, "24h") || !strstr (market, "1h before"))
            fail_msg ("sla list, the marketplace policy:\n%s", r.out);
    }
    s_run_free (&r);

    /* JSON: what each means, and the policy as stored. */
    r = s_ctl (NULL, "sla", "list", "--json", NULL);
    assert_int_equal (r.status, 0);
    all = json_loads (r.out, 0, &jerr);
    if (!json_is_array (all) || json_array_size (all) != 2)
        fail_msg ("sla list --json: %s\n%s", jerr.text, r.out);
    p = json_array_get (all, 0);
    assert_string_equal (json_string_value (json_object_get (p, "name")), "support 2h");
    assert_string_equal (json_string_value (json_object_get (p, "clock")), "business");
    assert_string_equal (json_string_value (json_object_get (p, "scope")), "team support");
    assert_int_equal (json_integer_value (json_object_get (p, "first_response_minutes")), 120);
    assert_int_equal (json_integer_value (json_object_get (p, "resolution_minutes")), 0);
    {
        json_t *stored = json_loads (SUPPORT_2H, 0, NULL);
        assert_true (json_equal (json_object_get (p, "policy"), stored));
        json_decref (stored);
    }
    p = json_array_get (all, 1);
    assert_string_equal (json_string_value (json_object_get (p, "clock")), "wall");
    assert_string_equal (json_string_value (json_object_get (p, "scope")), "channel email");
    assert_int_equal (json_integer_value (json_object_get (p, "first_response_minutes")), 1440);
    json_decref (all);
    s_run_free (&r);

    /* Replaced by name, keeping its place ahead of the marketplace's. */
    r = s_ctl (SUPPORT_1H, "sla", "set", "--file", "-", NULL);
    s_ok (&r, "sla set (replace)", "first response 1h");
    assert_int_equal (s_long ("SELECT count(*) FROM routing.sla_policies"), 2);
    r = s_ctl (NULL, "sla", "list", "--json", NULL);
    assert_int_equal (r.status, 0);
    all = json_loads (r.out, 0, &jerr);
    assert_true (json_is_array (all));
    p = json_array_get (all, 0);
    assert_string_equal (json_string_value (json_object_get (p, "name")), "support 2h");
    assert_int_equal (json_integer_value (json_object_get (p, "first_response_minutes")), 60);
    assert_int_equal (json_integer_value (json_object_get (p, "next_response_minutes")), 0);
    json_decref (all);
    s_run_free (&r);

    r = s_ctl (NULL, "sla", "delete", "--name", "marketplace 24h", NULL);
    s_ok (&r, "sla delete", "deleted");
    assert_int_equal (s_long ("SELECT count(*) FROM routing.sla_policies WHERE name ="
                              " 'marketplace 24h'"),
                      0);
    /* A second delete finds nothing: a failure, not a usage error. */
    r = s_ctl (NULL, "sla", "delete", "--name", "marketplace 24h", NULL);
    assert_int_equal (r.status, 1);
    assert_non_null (strstr (r.err, "no SLA policy \"marketplace 24h\""));
    s_run_free (&r);
    r = s_ctl (NULL, "sla", "delete", NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "--name"));
    s_run_free (&r);
    assert_int_equal (s_long ("SELECT count(*) FROM routing.sla_policies"), 1);

    /* The commands are listed with the rest. */
    r = s_ctl (NULL, "help", "--commands", NULL);
    assert_int_equal (r.status, 0);
    assert_non_null (strstr (r.out, "\nsla set\n"));
    assert_non_null (strstr (r.out, "\nsla list\n"));
    assert_non_null (strstr (r.out, "\nsla delete\n"));
    assert_non_null (strstr (r.out, "\nteam add\n"));
    assert_non_null (strstr (r.out, "\nteam hours\n"));
    s_run_free (&r);
}

static void
test_hours (void **state)
{
    char path[1024], *v;
    s_run_t r;
    (void)state;

    s_file (path, sizeof path, "hours.json", HOURS);
    r = s_ctl (NULL, "team", "hours", "--id", "support", "--file", path, NULL);
    s_ok (&r, "team hours --file", "mon-fri 09:00-18:00 in Europe/Kyiv");
    v = s_text (
        "SELECT business_hours || '|' || time_zone FROM routing.teams WHERE id = 'support'");
    assert_string_equal (v, HOURS "|Europe/Kyiv");
    free (v);
    /* From stdin, a new week replaces the old. */
    r = s_ctl ("{\"zone\": \"Europe/Warsaw\", \"weekly\": \"mon-sat 10:00-20:00\"}", "team",
               "hours", "--id", "support", "--file", "-", NULL);
    s_ok (&r, "team hours --file -", "Europe/Warsaw");
    v = s_text ("SELECT time_zone FROM routing.teams WHERE id = 'support'");
    assert_string_equal (v, "Europe/Warsaw");
    free (v);

    r = s_ctl (NULL, "team", "hours", "--id", "support", "--clear", NULL);
    s_ok (&r, "team hours --clear", "cleared");
    assert_int_equal (
        s_long (
            "SELECT count(*) FROM routing.teams WHERE id = 'support' AND business_hours IS NULL"),
        1);
}

/* Each refusal: exit 2, its reason on stderr, nothing written. */
static void
test_bad_input (void **state)
{
    static const struct {
        const char *what;  /* the case */
        const char *input; /* the file's text */
        const char *says;  /* in the reason */
    } policies[] = {
        {"malformed JSON", "{\"name\": \"x\", \"clock\": \"wall\",", "not JSON"},
        {"an unknown field",
         "{\"name\": \"x\", \"clock\": \"wall\", \"first_response_minutes\": 5, \"colour\": 1}",
         "unknown field \"colour\""},
        {"a bad zone",
         "{\"name\": \"x\", \"clock\": \"business\", \"first_response_minutes\": 5,"
         " \"business_hours\": {\"zone\": \"Mars/Olympus\", \"weekly\": \"mon 09:00-18:00\"}}",
         "zone"},
        {"overlapping hours",
         "{\"name\": \"x\", \"clock\": \"business\", \"first_response_minutes\": 5,"
         " \"business_hours\": {\"zone\": \"Europe/Kyiv\","
         " \"weekly\": \"mon 09:00-13:00, 12:00-18:00\"}}",
         "overlaps"},
        {"no name", "{\"clock\": \"wall\", \"first_response_minutes\": 5}", "name missing"},
        {"a negative target",
         "{\"name\": \"x\", \"clock\": \"wall\", \"first_response_minutes\": -5}",
         "first_response_minutes"},
        {"no target", "{\"name\": \"x\", \"clock\": \"wall\"}", ""},
        {"an empty file", "", "not JSON"},
    };
    static const struct {
        const char *what;  /* the case */
        const char *team;  /* --id */
        const char *input; /* the file's text */
        const char *says;  /* in the reason */
    } hours[] = {
        {"malformed JSON", "support", "{\"zone\": ", "not JSON"},
        {"an unknown field", "support",
         "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon 09:00-18:00\", \"days\": 5}",
         "unknown field \"days\""},
        {"a bad zone", "support",
         "{\"zone\": \"Europe/Atlantis\", \"weekly\": \"mon 09:00-18:00\"}", "Europe/Atlantis"},
        /* An end before its start is a night into the next day (rt_tz):
         * mistyped, it runs into the next morning's hours. */
        {"an inverted interval overlapping", "support",
         "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon 18:00-09:30; tue 09:00-18:00\"}",
         "overlaps"},
        {"an hour past 24:00", "support",
         "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-25:00\"}", "weekly"},
        {"a bad holiday", "support",
         "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\","
         " \"holidays\": [\"2026-02-30\"]}",
         "holidays[0]"},
        {"an unknown team", "nobody", HOURS, "no team \"nobody\""},
    };
    char path[1024], *before, *after;
    s_run_t r;
    size_t i;
    (void)state;

    /* Something to keep: a policy and hours that must survive it all. */
    r = s_ctl (SUPPORT_2H, "sla", "set", "--file", "-", NULL);
    s_ok (&r, "sla set", NULL);
    r = s_ctl (HOURS, "team", "hours", "--id", "support", "--file", "-", NULL);
    s_ok (&r, "team hours", NULL);
    before = s_written ();

    for (i = 0; i < sizeof policies / sizeof *policies; i++) {
        r = s_ctl (policies[i].input, "sla", "set", "--file", "-", NULL);
        if (r.status != 2 || !strstr (r.err, policies[i].says) || !*r.err)
            fail_msg ("sla set, %s: status %d, wanted 2 and \"%s\" on stderr:\n%s%s",
                      policies[i].what, r.status, policies[i].says, r.out, r.err);
        s_run_free (&r);
    }
    for (i = 0; i < sizeof hours / sizeof *hours; i++) {
        r = s_ctl (hours[i].input, "team", "hours", "--id", hours[i].team, "--file", "-", NULL);
        if (r.status != 2 || !strstr (r.err, hours[i].says))
            fail_msg ("team hours, %s: status %d, wanted 2 and \"%s\" on stderr:\n%s%s",
                      hours[i].what, r.status, hours[i].says, r.out, r.err);
        s_run_free (&r);
    }

    /* Usage: the file missing or not given, both --file and --clear. */
    r = s_ctl (NULL, "sla", "set", "--file", "/nonexistent/policy.json", NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "/nonexistent/policy.json"));
    s_run_free (&r);
    r = s_ctl (NULL, "sla", "set", NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "--file is required"));
    s_run_free (&r);
    s_file (path, sizeof path, "hours-bad.json", HOURS);
    r = s_ctl (NULL, "team", "hours", "--id", "support", "--file", path, "--clear", NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "exactly one of --file and --clear"));
    s_run_free (&r);
    r = s_ctl (NULL, "team", "hours", "--id", "support", NULL);
    assert_int_equal (r.status, 2);
    s_run_free (&r);
    r = s_ctl (NULL, "team", "hours", "--file", path, NULL);
    assert_int_equal (r.status, 2);
    assert_non_null (strstr (r.err, "--id is required"));
    s_run_free (&r);

    after = s_written ();
    assert_string_equal (after, before);
    free (before);
    free (after);
}

/* --- what routerd does with them --- */

/* A customer whose manager is in team support, so their conversations
 * are the team's; their id into id. */
static void
s_customer (char *id, size_t idlen, int n)
{
    char sql[256];
    snprintf (id, idlen, "0190f0e0-0000-7000-8000-%012d", n);
    snprintf (sql, sizeof sql, "INSERT INTO crm.customers (id, manager) VALUES ('%s', 'olena')",
              id);
    rt_test_pg_exec (s.pg, sql);
}

/* A message from customer on channel (TELEGRAM, EMAIL) sent at `at`,
 * published as ingest does, and waited for in a conversation. */
static void
s_message (const char *customer, const char *channel, int n, long long at)
{
    char json[1024], log[64], sql[512];
    snprintf (json, sizeof json,
              "{\"channel\": \"%s\", \"inbox\": \"shop\", \"external_id\": \"m-%d\","
              " \"external_user_id\": \"u-%d\", \"text\": \"Де моя посилка?\","
              " \"sent_at\": \"%lld\", \"customer_id\": \"%s\"}",
              channel, n, n, at, customer);
    snprintf (log, sizeof log, "retainctl_sla-publish-%d-%d.log", (int)getpid (), n);
    rt_test_retainctl_publish (s.bus.ingress, log, "InboundMessage", customer, json, "ingest");
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM routing.conversations WHERE customer_id = '%s'", customer);
    if (rt_test_pg_wait_long (s.pg, sql, 1, 30000) != 1)
        fail_msg ("no conversation for %s; see %s/retainctl_sla-routerd.log", customer,
                  rt_test_dir ());
}

/* The first-response clock of customer's conversation: its due time (unix
 * ms, -1 for no clock) and the policy it took into policy. */
static long long
s_due (const char *customer, char *policy, size_t policylen)
{
    char *v = s_text ("SELECT t.policy FROM routing.sla_timers t JOIN routing.conversations c"
                      " ON c.id = t.conversation_id WHERE c.customer_id = '%s'"
                      " AND t.kind = 'first_response'",
                      customer);
    snprintf (policy, policylen, "%s", v);
    free (v);
    return s_long ("SELECT coalesce((SELECT (extract(epoch FROM t.due_at) * 1000)::bigint"
                   " FROM routing.sla_timers t JOIN routing.conversations c"
                   " ON c.id = t.conversation_id WHERE c.customer_id = '%s'"
                   " AND t.kind = 'first_response'), -1)",
                   customer);
}

static void
test_routerd_counts_with_them (void **state)
{
    char cust[5][64], policy[80];
    s_run_t r;
    (void)state;

    rt_test_pg_exec (s.pg, "INSERT INTO routing.operators (id, name, team_id) VALUES"
                           " ('olena', 'Olena', 'support') ON CONFLICT DO NOTHING");
    for (int i = 0; i < 5; i++)
        s_customer (cust[i], sizeof cust[i], i + 1);
    r = s_ctl (HOURS, "team", "hours", "--id", "support", "--file", "-", NULL);
    s_ok (&r, "team hours", NULL);
    r = s_ctl (SUPPORT_2H, "sla", "set", "--file", "-", NULL);
    s_ok (&r, "sla set support", NULL);
    r = s_ctl (MARKETPLACE_24H, "sla", "set", "--file", "-", NULL);
    s_ok (&r, "sla set marketplace", NULL);

    /* Two business hours from Friday 17:00: one on Friday, one on
     * Monday, in the team's hours set above. */
    s_message (cust[0], "TELEGRAM", 1, FRI_1700);
    assert_int_equal (s_due (cust[0], policy, sizeof policy), MON_1000);
    assert_string_equal (policy, "support 2h");
    /* The marketplace's e-mail: 24 real hours, Saturday included. */
    s_message (cust[1], "EMAIL", 2, FRI_1700);
    assert_int_equal (s_due (cust[1], policy, sizeof policy), FRI_1700 + 24 * HOUR_MS);
    assert_string_equal (policy, "marketplace 24h");

    /* Replaced with one hour: the next wait is due at closing time, and
     * the clock already running keeps its due time. */
    r = s_ctl (SUPPORT_1H, "sla", "set", "--file", "-", NULL);
    s_ok (&r, "sla set (replace)", NULL);
    s_message (cust[2], "TELEGRAM", 3, FRI_1700);
    assert_int_equal (s_due (cust[2], policy, sizeof policy), FRI_1800);
    assert_int_equal (s_due (cust[0], policy, sizeof policy), MON_1000);

    /* Without the team's hours a business policy cannot count: no clock
     * (the message is taken all the same). */
    r = s_ctl (NULL, "team", "hours", "--id", "support", "--clear", NULL);
    s_ok (&r, "team hours --clear", NULL);
    s_message (cust[3], "TELEGRAM", 4, FRI_1700);
    assert_int_equal (s_due (cust[3], policy, sizeof policy), -1);

    /* Deleted: the hours are back, but no policy applies. */
    r = s_ctl (HOURS, "team", "hours", "--id", "support", "--file", "-", NULL);
    s_ok (&r, "team hours", NULL);
    r = s_ctl (NULL, "sla", "delete", "--name", "support 2h", NULL);
    s_ok (&r, "sla delete", NULL);
    s_message (cust[4], "TELEGRAM", 5, FRI_1700);
    assert_int_equal (s_due (cust[4], policy, sizeof policy), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_policies, s_clean),
        cmocka_unit_test_setup (test_hours, s_clean),
        cmocka_unit_test_setup (test_bad_input, s_clean),
        cmocka_unit_test_setup (test_routerd_counts_with_them, s_clean),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
