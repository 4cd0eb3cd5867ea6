/*
 * Inbox kinds end to end: an inbox's provider, not only its channel,
 * decides where its webhooks arrive.
 *
 * A shop whose WhatsApp number is at Twilio adds it with `retainctl inbox
 * add --channel whatsapp --provider twilio`, pastes the address it prints
 * into Twilio's console, and every message lands on the bus; the Meta
 * address is not that inbox's (404), so a wrong paste fails loudly at the
 * first test message instead of losing them all. `inbox list` and
 * ingestd's log print the same address. A database migrated from before
 * providers existed keeps its inboxes, each with its channel's default
 * provider (an IMAP mailbox: imap), and the database refuses a provider
 * that does not deliver the inbox's channel.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_channel.h"
#include "rt_crypto.h"
#include "rt_db.h"
#include "rt_form.h"
#include "rt_migrate.h"
#include "rt_test.h"

#define TWILIO_TOKEN "twilio-token-kinds"

typedef struct {
    char dsn[1024];      /* the test database */
    PGconn *conn;        /* for assertions */
    rt_test_busd_t busd; /* the log */
    pid_t ingestd;       /* the daemon under test */
    int http_port;       /* its webhook port */
    int admin_port;      /* its admin port */
    char base[64];       /* its public URL, "http://127.0.0.1:<port>" */
} s_fixture_t;

static s_fixture_t s_f;

/* The text of a file of the source tree (owned). */
static char *
s_source (const char *relpath)
{
    char path[1024];
    FILE *f;
    char *text;
    long n;
    snprintf (path, sizeof path, "%s/%s", RT_TEST_SOURCE_DIR, relpath);
    f = fopen (path, "rb");
    if (!f)
        fail_msg ("cannot read %s", path);
    fseek (f, 0, SEEK_END);
    n = ftell (f);
    fseek (f, 0, SEEK_SET);
    text = calloc ((size_t)n + 1, 1);
    assert_non_null (text);
    assert_int_equal (fread (text, 1, (size_t)n, f), (size_t)n);
    fclose (f);
    return text;
}

/* The text of a log under rt_test_dir (owned; "" when absent). */
static char *
s_log (const char *name)
{
    char path[1024];
    FILE *f;
    char *text;
    long n;
    snprintf (path, sizeof path, "%s/%s", rt_test_dir (), name);
    f = fopen (path, "rb");
    if (!f)
        return strdup ("");
    fseek (f, 0, SEEK_END);
    n = ftell (f);
    fseek (f, 0, SEEK_SET);
    text = calloc ((size_t)n + 1, 1);
    assert_non_null (text);
    assert_int_equal (fread (text, 1, (size_t)n, f), (size_t)n);
    fclose (f);
    return text;
}

/* Runs retainctl with argv (NULL-terminated, without "retainctl") and
 * --pg-dsn; returns its exit status, its output (stdout and stderr) in
 * *out (owned). */
static int
s_retainctl (char **out, const char *const args[])
{
    char a_dsn[1100], log[64];
    char *argv[24];
    size_t n = 0;
    pid_t pid;
    int status;
    static int runs;
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s_f.dsn);
    snprintf (log, sizeof log, "kinds-retainctl-%d-%d.log", (int)getpid (), runs++);
    argv[n++] = "retainctl";
    for (size_t i = 0; args[i] && n < 22; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = a_dsn;
    argv[n] = NULL;
    pid = rt_test_spawn ("retainctl", argv, NULL, log);
    status = rt_test_wait (pid, 30000);
    if (status == -1 || !WIFEXITED (status))
        fail_msg ("retainctl did not finish; see %s/%s", rt_test_dir (), log);
    *out = s_log (log);
    return WEXITSTATUS (status);
}

/* Applies ingest's first migration only: a database as retain left it
 * before inboxes had providers. */
static void
s_migrate_first_only (void)
{
    char err[512];
    char *sql = s_source ("services/ingest/sql/001_ingest.sql");
    rt_migration_t first = {1, "001_ingest.sql", sql};
    rt_migration_set_t set = {"ingest", &first, 1};
    rt_db_t *db = rt_db_new (s_f.dsn, "test-inbox-kinds");
    assert_non_null (db);
    assert_int_equal (rt_db_connect (db), 0);
    if (rt_migrate_apply (db, &set, err, sizeof err) != 1)
        fail_msg ("migration 001: %s", err);
    rt_db_destroy (&db);
    free (sql);
}

static int
s_setup (void **state)
{
    memset (&s_f, 0, sizeof s_f);
    rt_test_db_create ("ingest_kinds", s_f.dsn, sizeof s_f.dsn);
    s_f.conn = rt_test_pg (s_f.dsn);
    *state = &s_f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    int status;
    PQfinish (f->conn);
    if (f->ingestd > 0) {
        status = rt_test_kill (f->ingestd, SIGTERM);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
    }
    if (f->busd.pid > 0) {
        status = rt_test_kill (f->busd.pid, SIGTERM);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
    }
    return 0;
}

/* Inboxes of every channel written before providers existed get, from the
 * migration, their channel's default provider (imap for a mailbox with an
 * imap_url); afterwards an INSERT naming none gets the same, and a pair
 * the table lacks is refused. */
static void
test_migration_gives_every_inbox_its_provider (void **state)
{
    (void)state;
    char sql[512], *out;
    size_t i;
    PGresult *res;
    const char *migrate[] = {"migrate", NULL};

    s_migrate_first_only ();
    for (i = 0; i < rt_channel_count (); i++) {
        snprintf (sql, sizeof sql,
                  "INSERT INTO ingest.inboxes (id, channel, secret) VALUES ('old-%s', '%s', 's')",
                  rt_channel_at (i)->name, rt_channel_at (i)->name);
        rt_test_pg_exec (s_f.conn, sql);
    }
    rt_test_pg_exec (s_f.conn, "INSERT INTO ingest.inboxes (id, channel, secret, config) VALUES "
                               "('old-mailbox', 'email', 's', "
                               "'{\"imap_url\": \"imaps://mail.example.com/INBOX\"}')");

    if (s_retainctl (&out, migrate) != 0)
        fail_msg ("retainctl migrate failed:\n%s", out);
    free (out);

    for (i = 0; i < rt_channel_count (); i++) {
        const rt_channel_t *channel = rt_channel_at (i);
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM ingest.inboxes WHERE id = 'old-%s' AND "
                  "provider = '%s'",
                  channel->name, rt_channel_kind_default (channel->value)->provider);
        if (rt_test_pg_long (s_f.conn, sql) != 1)
            fail_msg ("inbox old-%s did not get provider %s", channel->name,
                      rt_channel_kind_default (channel->value)->provider);
    }
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.inboxes WHERE "
                                                 "id = 'old-mailbox' AND provider = 'imap'"),
                      1);
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.inboxes WHERE "
                                                 "provider IS NULL"),
                      0);

    /* After the migration, an INSERT that names no provider. */
    rt_test_pg_exec (s_f.conn, "INSERT INTO ingest.inboxes (id, channel, secret) VALUES "
                               "('new-wa', 'whatsapp', 's')");
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.inboxes WHERE "
                                                 "id = 'new-wa' AND provider = 'meta'"),
                      1);
    /* Telegram does not come through Twilio, and fax is no channel. */
    res = PQexec (s_f.conn, "INSERT INTO ingest.inboxes (id, channel, provider, secret) VALUES "
                            "('bad-tg', 'telegram', 'twilio', 's')");
    assert_int_equal (PQresultStatus (res), PGRES_FATAL_ERROR);
    assert_non_null (strstr (PQresultErrorMessage (res), "inboxes_kind_check"));
    PQclear (res);
    res = PQexec (s_f.conn, "INSERT INTO ingest.inboxes (id, channel, secret) VALUES "
                            "('bad-fax', 'fax', 's')");
    assert_int_equal (PQresultStatus (res), PGRES_FATAL_ERROR);
    PQclear (res);
    rt_test_pg_exec (s_f.conn, "DELETE FROM ingest.inboxes");
}

static size_t
s_discard (char *data, size_t size, size_t n, void *arg)
{
    char *sink = arg;
    size_t len = size * n, have = strlen (sink);
    if (have + len < 1024) {
        memcpy (sink + have, data, len);
        sink[have + len] = '\0';
    }
    return len;
}

/* POSTs a form signed as Twilio signs it (Base64 HMAC-SHA1 of the public
 * URL and the sorted parameters) to path; returns the status and the body
 * in out (1024 bytes). */
static long
s_post_twilio (const char *path, const char *form, size_t len, char *out)
{
    char err[128], b64[64], url[256], header[128];
    rt_form_t *parsed = rt_form_parse (form, len, err, sizeof err);
    const rt_form_pair_t *const *sorted;
    uint8_t mac[RT_SHA1_LEN];
    size_t cap, n;
    char *signed_data;
    long status = 0;
    CURL *curl;
    struct curl_slist *list = NULL;

    assert_non_null (parsed);
    snprintf (url, sizeof url, "%s%s", s_f.base, path);
    sorted = rt_form_sorted (parsed);
    cap = strlen (url) + len * 3 + 1;
    signed_data = malloc (cap);
    assert_non_null (signed_data);
    n = (size_t)snprintf (signed_data, cap, "%s", url);
    for (size_t i = 0; i < rt_form_count (parsed); i++)
        n += (size_t)snprintf (signed_data + n, cap - n, "%s%s", sorted[i]->name, sorted[i]->value);
    rt_hmac_sha1 (TWILIO_TOKEN, strlen (TWILIO_TOKEN), signed_data, n, mac);
    rt_base64_encode (mac, sizeof mac, b64);
    free (signed_data);
    rt_form_destroy (&parsed);

    out[0] = '\0';
    snprintf (header, sizeof header, "X-Twilio-Signature: %s", b64);
    list = curl_slist_append (list, "Content-Type: application/x-www-form-urlencoded");
    list = curl_slist_append (list, header);
    curl = curl_easy_init ();
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all (list);
    curl_easy_cleanup (curl);
    return status;
}

static long long
s_wait_events (const char *key_prefix, long long want)
{
    char sql[256];
    int64_t deadline = rt_test_now_ms () + 10000;
    long long n;
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM bus.events WHERE key LIKE '%s%%' AND type = 'InboundMessage'",
              key_prefix);
    n = rt_test_pg_long (s_f.conn, sql);
    while (n < want && rt_test_now_ms () < deadline) {
        usleep (50000);
        n = rt_test_pg_long (s_f.conn, sql);
    }
    return n;
}

/* Whether one line of text holds both a and b. */
static bool
s_line_with (const char *text, const char *a, const char *b)
{
    const char *line = text;
    while (line && *line) {
        const char *end = strchr (line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen (line);
        char *copy = strndup (line, len);
        bool both = copy && strstr (copy, a) && strstr (copy, b);
        free (copy);
        if (both)
            return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void
s_start_daemons (void)
{
    char a_dsn[1100], a_http[64], a_admin[64], a_public[96], log[1024];
    /* Logs are appended to: this run's lines only. */
    snprintf (log, sizeof log, "%s/kinds-ingestd.log", rt_test_dir ());
    unlink (log);
    s_f.http_port = rt_test_free_port ();
    s_f.admin_port = rt_test_free_port ();
    snprintf (s_f.base, sizeof s_f.base, "http://127.0.0.1:%d", s_f.http_port);
    rt_test_busd_start (&s_f.busd, s_f.dsn, "kinds-busd.log", NULL, true);
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s_f.dsn);
    snprintf (a_http, sizeof a_http, "--http=127.0.0.1:%d", s_f.http_port);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", s_f.admin_port);
    snprintf (a_public, sizeof a_public, "--public-url=%s", s_f.base);
    char *argv[] = {"retain-ingestd", a_dsn, a_http, a_admin, a_public, NULL};
    s_f.ingestd = rt_test_spawn ("retain-ingestd", argv, NULL, "kinds-ingestd.log");
    if (!rt_test_wait_ready (s_f.admin_port, 30000))
        fail_msg ("retain-ingestd did not become ready; see %s/kinds-ingestd.log", rt_test_dir ());
}

static void
test_twilio_whatsapp_answers_at_twilio_address (void **state)
{
    (void)state;
    char expect[256], body[1024], *out, *form, *log;
    size_t len;
    int64_t deadline;
    bool logged = false;

    s_start_daemons ();
    {
        const char *args[] = {"inbox",        "add",        "--id",   "wa-twilio", "--channel",
                              "whatsapp",     "--provider", "twilio", "--secret",  TWILIO_TOKEN,
                              "--public-url", s_f.base,     NULL};
        if (s_retainctl (&out, args) != 0)
            fail_msg ("retainctl inbox add failed:\n%s", out);
        snprintf (expect, sizeof expect, "webhook: %s/hooks/twilio/wa-twilio\n", s_f.base);
        if (!strstr (out, expect) || strstr (out, "/hooks/whatsapp/"))
            fail_msg ("inbox add printed no Twilio address:\n%s", out);
        free (out);
    }
    {
        /* No --provider: WhatsApp's default, Meta, at Meta's address. */
        const char *args[] = {"inbox",    "add",          "--id",   "wa-meta", "--channel",
                              "whatsapp", "--public-url", s_f.base, NULL};
        if (s_retainctl (&out, args) != 0)
            fail_msg ("retainctl inbox add failed:\n%s", out);
        snprintf (expect, sizeof expect, "webhook: %s/hooks/whatsapp/wa-meta\n", s_f.base);
        if (!strstr (out, expect))
            fail_msg ("inbox add printed no Meta address:\n%s", out);
        free (out);
    }
    {
        /* A provider that does not deliver the channel: a usage error. */
        const char *args[] = {"inbox",    "add",        "--id",   "tg", "--channel",
                              "telegram", "--provider", "twilio", NULL};
        assert_int_equal (s_retainctl (&out, args), 2);
        assert_non_null (strstr (out, "twilio does not deliver telegram"));
        free (out);
    }
    {
        const char *args[] = {
            "inbox",     "add",   "--id",     "mailbox",
            "--channel", "email", "--config", "{\"imap_url\": \"imaps://127.0.0.1:1/INBOX\"}",
            NULL};
        if (s_retainctl (&out, args) != 0)
            fail_msg ("retainctl inbox add failed:\n%s", out);
        assert_non_null (strstr (out, "through imap"));
        assert_non_null (strstr (out, "webhook: polled"));
        free (out);
    }
    {
        const char *args[] = {"inbox", "list", "--public-url", s_f.base, NULL};
        assert_int_equal (s_retainctl (&out, args), 0);
        snprintf (expect, sizeof expect, "%s/hooks/twilio/wa-twilio", s_f.base);
        if (!s_line_with (out, "wa-twilio", expect) || !s_line_with (out, "wa-twilio", " twilio "))
            fail_msg ("inbox list does not show wa-twilio at Twilio's address:\n%s", out);
        snprintf (expect, sizeof expect, "%s/hooks/whatsapp/wa-meta", s_f.base);
        if (!s_line_with (out, "wa-meta", expect) || !s_line_with (out, "wa-meta", " meta "))
            fail_msg ("inbox list does not show wa-meta at Meta's address:\n%s", out);
        if (!s_line_with (out, "mailbox", "polled"))
            fail_msg ("inbox list does not show the mailbox as polled:\n%s", out);
        free (out);
    }

    /* ingestd picks the inboxes up within a second and says where. */
    snprintf (expect, sizeof expect, "%s/hooks/twilio/wa-twilio", s_f.base);
    deadline = rt_test_now_ms () + 10000;
    while (!logged && rt_test_now_ms () < deadline) {
        usleep (100000);
        log = s_log ("kinds-ingestd.log");
        logged = s_line_with (log, "inbox webhook", expect);
        free (log);
    }
    if (!logged)
        fail_msg ("no \"inbox webhook\" line with %s in %s/kinds-ingestd.log", expect,
                  rt_test_dir ());
    log = s_log ("kinds-ingestd.log");
    snprintf (expect, sizeof expect, "%s/hooks/whatsapp/wa-twilio", s_f.base);
    assert_false (s_line_with (log, "inbox webhook", expect));
    snprintf (expect, sizeof expect, "%s/hooks/whatsapp/wa-meta", s_f.base);
    assert_true (s_line_with (log, "inbox webhook", expect));
    assert_true (s_line_with (log, "inbox polled", "mailbox"));
    free (log);

    /* Twilio's signed WhatsApp message at the printed address: on the bus. */
    form = rt_test_fixture ("ingest/twilio/whatsapp.form", &len);
    assert_int_equal (s_post_twilio ("/hooks/twilio/wa-twilio", form, len, body), 200);
    assert_int_equal (s_wait_events ("whatsapp:wa-twilio:", 1), 1);

    /* The same post at Meta's address is no inbox's: 404, nothing stored. */
    assert_int_equal (s_post_twilio ("/hooks/whatsapp/wa-twilio", form, len, body), 404);
    assert_non_null (strstr (body, "unknown inbox"));
    /* Nor is a Meta inbox at Twilio's. */
    assert_int_equal (s_post_twilio ("/hooks/twilio/wa-meta", form, len, body), 404);
    assert_non_null (strstr (body, "unknown inbox"));
    free (form);
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.messages"), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_migration_gives_every_inbox_its_provider),
        cmocka_unit_test (test_twilio_whatsapp_answers_at_twilio_address),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
