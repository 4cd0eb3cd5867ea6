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
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_channel.h"
#include "rt_db.h"
#include "rt_migrate.h"
#include "rt_test.h"
#include "rt_test_ingest.h"

#define TWILIO_TOKEN "twilio-token-kinds"

/* The database from the start, the daemons from the second test on. */
static rt_test_ingest_t s_t;

/* Applies ingest's first migration only: a database as retain left it
 * before inboxes had providers. */
static void
s_migrate_first_only (void)
{
    char err[512];
    char *sql = rt_test_source ("services/ingest/sql/001_ingest.sql", NULL);
    rt_migration_t first = {1, "001_ingest.sql", sql};
    rt_migration_set_t set = {"ingest", &first, 1};
    rt_db_t *db = rt_db_new (s_t.dsn, "test-inbox-kinds");
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
    memset (&s_t, 0, sizeof s_t);
    *state = &s_t;
    rt_test_db_create ("ingest_kinds", s_t.dsn, sizeof s_t.dsn);
    s_t.conn = rt_test_pg (s_t.dsn);
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
        rt_test_pg_exec (s_t.conn, sql);
    }
    rt_test_pg_exec (s_t.conn, "INSERT INTO ingest.inboxes (id, channel, secret, config) VALUES "
                               "('old-mailbox', 'email', 's', "
                               "'{\"imap_url\": \"imaps://mail.example.com/INBOX\"}')");

    if (rt_test_retainctl (s_t.dsn, migrate, &out) != 0)
        fail_msg ("retainctl migrate failed:\n%s", out);
    free (out);

    for (i = 0; i < rt_channel_count (); i++) {
        const rt_channel_t *channel = rt_channel_at (i);
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM ingest.inboxes WHERE id = 'old-%s' AND "
                  "provider = '%s'",
                  channel->name, rt_channel_kind_default (channel->value)->provider);
        if (rt_test_pg_long (s_t.conn, sql) != 1)
            fail_msg ("inbox old-%s did not get provider %s", channel->name,
                      rt_channel_kind_default (channel->value)->provider);
    }
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.inboxes WHERE "
                                                 "id = 'old-mailbox' AND provider = 'imap'"),
                      1);
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.inboxes WHERE "
                                                 "provider IS NULL"),
                      0);

    /* After the migration, an INSERT that names no provider. */
    rt_test_pg_exec (s_t.conn, "INSERT INTO ingest.inboxes (id, channel, secret) VALUES "
                               "('new-wa', 'whatsapp', 's')");
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.inboxes WHERE "
                                                 "id = 'new-wa' AND provider = 'meta'"),
                      1);
    /* Telegram does not come through Twilio, and fax is no channel. */
    res = PQexec (s_t.conn, "INSERT INTO ingest.inboxes (id, channel, provider, secret) VALUES "
                            "('bad-tg', 'telegram', 'twilio', 's')");
    assert_int_equal (PQresultStatus (res), PGRES_FATAL_ERROR);
    assert_non_null (strstr (PQresultErrorMessage (res), "inboxes_kind_check"));
    PQclear (res);
    res = PQexec (s_t.conn, "INSERT INTO ingest.inboxes (id, channel, secret) VALUES "
                            "('bad-fax', 'fax', 's')");
    assert_int_equal (PQresultStatus (res), PGRES_FATAL_ERROR);
    PQclear (res);
    rt_test_pg_exec (s_t.conn, "DELETE FROM ingest.inboxes");
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
    char log[1024];
    /* Logs are appended to: this run's lines only. */
    snprintf (log, sizeof log, "%s/kinds-ingestd.log", rt_test_dir ());
    unlink (log);
    rt_test_busd_start (&s_t.busd, s_t.dsn, "kinds-busd.log", NULL, true);
    rt_test_ingestd_start (&s_t.ingestd, s_t.dsn, "kinds-ingestd.log", "", NULL);
}

/* POSTs a form signed as Twilio signs it for ingestd's public URL to path;
 * returns the status and the answer in out. */
static long
s_post_twilio (const char *path, const char *form, size_t len, rt_test_reply_t *out)
{
    return rt_test_ingest_twilio_post (s_t.ingestd.http_port, s_t.ingestd.base, TWILIO_TOKEN, path,
                                       form, len, out);
}

static void
test_twilio_whatsapp_answers_at_twilio_address (void **state)
{
    (void)state;
    char expect[256], *out, *form, *log;
    rt_test_reply_t reply;
    size_t len;
    int64_t deadline;
    bool logged = false;

    s_start_daemons ();
    {
        const char *args[] = {"inbox",     "add",        "--id",         "wa-twilio",
                              "--channel", "whatsapp",   "--provider",   "twilio",
                              "--secret",  TWILIO_TOKEN, "--public-url", s_t.ingestd.base,
                              NULL};
        if (rt_test_retainctl (s_t.dsn, args, &out) != 0)
            fail_msg ("retainctl inbox add failed:\n%s", out);
        snprintf (expect, sizeof expect, "webhook: %s/hooks/twilio/wa-twilio\n", s_t.ingestd.base);
        if (!strstr (out, expect) || strstr (out, "/hooks/whatsapp/"))
            fail_msg ("inbox add printed no Twilio address:\n%s", out);
        free (out);
    }
    {
        /* No --provider: WhatsApp's default, Meta, at Meta's address. */
        const char *args[] = {"inbox",    "add",          "--id",           "wa-meta", "--channel",
                              "whatsapp", "--public-url", s_t.ingestd.base, NULL};
        if (rt_test_retainctl (s_t.dsn, args, &out) != 0)
            fail_msg ("retainctl inbox add failed:\n%s", out);
        snprintf (expect, sizeof expect, "webhook: %s/hooks/whatsapp/wa-meta\n", s_t.ingestd.base);
        if (!strstr (out, expect))
            fail_msg ("inbox add printed no Meta address:\n%s", out);
        free (out);
    }
    {
        /* A provider that does not deliver the channel: a usage error. */
        const char *args[] = {"inbox",    "add",        "--id",   "tg", "--channel",
                              "telegram", "--provider", "twilio", NULL};
        assert_int_equal (rt_test_retainctl (s_t.dsn, args, &out), 2);
        assert_non_null (strstr (out, "twilio does not deliver telegram"));
        free (out);
    }
    {
        const char *args[] = {
            "inbox",     "add",   "--id",     "mailbox",
            "--channel", "email", "--config", "{\"imap_url\": \"imaps://127.0.0.1:1/INBOX\"}",
            NULL};
        if (rt_test_retainctl (s_t.dsn, args, &out) != 0)
            fail_msg ("retainctl inbox add failed:\n%s", out);
        assert_non_null (strstr (out, "through imap"));
        assert_non_null (strstr (out, "webhook: polled"));
        free (out);
    }
    {
        const char *args[] = {"inbox", "list", "--public-url", s_t.ingestd.base, NULL};
        assert_int_equal (rt_test_retainctl (s_t.dsn, args, &out), 0);
        snprintf (expect, sizeof expect, "%s/hooks/twilio/wa-twilio", s_t.ingestd.base);
        if (!s_line_with (out, "wa-twilio", expect) || !s_line_with (out, "wa-twilio", " twilio "))
            fail_msg ("inbox list does not show wa-twilio at Twilio's address:\n%s", out);
        snprintf (expect, sizeof expect, "%s/hooks/whatsapp/wa-meta", s_t.ingestd.base);
        if (!s_line_with (out, "wa-meta", expect) || !s_line_with (out, "wa-meta", " meta "))
            fail_msg ("inbox list does not show wa-meta at Meta's address:\n%s", out);
        if (!s_line_with (out, "mailbox", "polled"))
            fail_msg ("inbox list does not show the mailbox as polled:\n%s", out);
        free (out);
    }

    /* ingestd picks the inboxes up within a second and says where. */
    snprintf (expect, sizeof expect, "%s/hooks/twilio/wa-twilio", s_t.ingestd.base);
    deadline = rt_test_now_ms () + 10000;
    while (!logged && rt_test_now_ms () < deadline) {
        usleep (100000);
        log = rt_test_log ("kinds-ingestd.log");
        logged = s_line_with (log, "inbox webhook", expect);
        free (log);
    }
    if (!logged)
        fail_msg ("no \"inbox webhook\" line with %s in %s/kinds-ingestd.log", expect,
                  rt_test_dir ());
    log = rt_test_log ("kinds-ingestd.log");
    snprintf (expect, sizeof expect, "%s/hooks/whatsapp/wa-twilio", s_t.ingestd.base);
    assert_false (s_line_with (log, "inbox webhook", expect));
    snprintf (expect, sizeof expect, "%s/hooks/whatsapp/wa-meta", s_t.ingestd.base);
    assert_true (s_line_with (log, "inbox webhook", expect));
    assert_true (s_line_with (log, "inbox polled", "mailbox"));
    free (log);

    /* Twilio's signed WhatsApp message at the printed address: on the bus. */
    form = rt_test_fixture ("ingest/twilio/whatsapp.form", &len);
    assert_int_equal (s_post_twilio ("/hooks/twilio/wa-twilio", form, len, &reply), 200);
    assert_int_equal (
        rt_test_ingest_wait_events (s_t.conn, "whatsapp:wa-twilio:", "InboundMessage", 1, 10000),
        1);

    /* The same post at Meta's address is no inbox's: 404, nothing stored. */
    assert_int_equal (s_post_twilio ("/hooks/whatsapp/wa-twilio", form, len, &reply), 404);
    assert_non_null (strstr (reply.body, "unknown inbox"));
    /* Nor is a Meta inbox at Twilio's. */
    assert_int_equal (s_post_twilio ("/hooks/twilio/wa-meta", form, len, &reply), 404);
    assert_non_null (strstr (reply.body, "unknown inbox"));
    free (form);
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM ingest.messages"), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_migration_gives_every_inbox_its_provider),
        cmocka_unit_test (test_twilio_whatsapp_answers_at_twilio_address),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, rt_test_ingest_teardown);
}
