/*
 * retainctl campaign against a real PostgreSQL, as an operator uses it
 * for a crisis update: customers with parcels of two carriers in several
 * statuses, customers who wrote on Telegram lately and on Viber long ago,
 * a merged duplicate, shop customer ids.
 *
 * What a user would notice: each segment reaches exactly its customers
 * (a carrier's parcels in transit, in the status named; who wrote on a
 * channel within the period; the ids and shop ids of a CSV, its header,
 * comments and blank lines passed over and the ids matching nobody
 * counted in a warning; everybody), a customer once however often they
 * match, a merged duplicate as its survivor; a draft unless --start; a
 * segment matching nobody makes a campaign done with 0 targets, exit 0
 * and a warning saying so; bad input (an unknown template, a malformed
 * segment, a rate out of range, an unknown category, an unreadable file)
 * exits 2 with nothing written; start, pause, resume and cancel move the
 * status and refuse what it does not allow (exit 1, naming the status);
 * list and status show the counts, as JSON too, and status --follow
 * prints plain lines as the counts change (not a terminal) until the
 * campaign is over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "rt_test.h"

/* Customers in crm: their ids end in their number. */
#define CUST(n) "01900000-0000-7000-8000-0000000000" n
#define A       CUST ("a1") /* Nova Poshta in transit; wrote on Telegram 1 day ago */
#define B       CUST ("a2") /* Nova Poshta in transit twice; shop id "shop-b" */
#define C       CUST ("a3") /* Nova Poshta delivered; wrote on Telegram 20 days ago */
#define D       CUST ("a4") /* Ukrposhta in transit; wrote on Viber 2 days ago */
#define E       CUST ("a5") /* nothing; shop id "shop-e" */
#define M       CUST ("a6") /* merged into A; Nova Poshta at the pickup point */
#define NOBODY  CUST ("ff")

static struct {
    char dsn[1024]; /* the test's database, migrated */
    PGconn *pg;     /* the test's own look at it */
    int files;      /* numbers the files apart */
} s;

/* Runs retainctl campaign <args> (NULL-ended); first "migrate" runs
 * retainctl migrate instead. */
static rt_test_ctl_t
s_ctl (const char *first, ...)
{
    rt_test_ctl_t r;
    va_list ap;
    va_start (ap, first);
    r = rt_test_retainctl_v (s.dsn, strcmp (first, "migrate") != 0 ? "campaign" : NULL, first, ap);
    va_end (ap);
    return r;
}

/* The campaign id create printed, from the line starting with one. */
static void
s_id (const char *out, char id[37])
{
    for (const char *p = out; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL) {
        if (strlen (p) > 36 && p[8] == '-' && p[13] == '-' && p[36] == ' ') {
            memcpy (id, p, 36);
            id[36] = '\0';
            return;
        }
    }
    fail_msg ("no campaign id in:\n%s", out);
}

/* Creates a campaign of `segment` (further flags NULL-ended) and returns
 * its id in id, checking it was made with `targeted` targets. */
static void
s_create (char id[37], const char *segment, long long targeted, const char *flag)
{
    char seg[512], *out = NULL, want[32];
    snprintf (seg, sizeof seg, "--segment=%s", segment);
    snprintf (want, sizeof want, "targeted=%lld", targeted);
    rt_test_retainctl_expect (s_ctl ("create", "--template=crisis", seg, flag, NULL), 0, segment,
                              &out, want, NULL);
    s_id (out, id);
    free (out);
}

/* The campaign's targets, in customer order, as "a1,a2" (the ids' ends). */
static void
s_targets (const char *id, char *out, size_t len)
{
    char sql[512];
    PGresult *r;
    snprintf (sql, sizeof sql,
              "SELECT string_agg(right(customer_id::text, 2), ',' ORDER BY customer_id)"
              " FROM notify.campaign_targets WHERE campaign_id = '%s'",
              id);
    r = PQexec (s.pg, sql);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    snprintf (out, len, "%s", PQgetvalue (r, 0, 0));
    PQclear (r);
}

static void
s_text (char *out, size_t len, const char *sql)
{
    PGresult *r = PQexec (s.pg, sql);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    snprintf (out, len, "%s", PQntuples (r) ? PQgetvalue (r, 0, 0) : "");
    PQclear (r);
}

/* A file under the test's folder holding text; its path (static). */
static const char *
s_file (const char *text)
{
    static char path[1024];
    snprintf (path, sizeof path, "%s/campaign-%d-%d.csv", rt_test_dir (), (int)getpid (),
              s.files++);
    rt_test_file_write (path, text);
    return path;
}

static long long
s_campaigns (void)
{
    return rt_test_pg_long (s.pg, "SELECT count(*) FROM notify.campaigns");
}

static int
s_setup (void **state)
{
    (void)state;
    rt_test_db_create ("retainctl_campaign", s.dsn, sizeof s.dsn);
    s.pg = rt_test_pg (s.dsn);
    rt_test_retainctl_expect (s_ctl ("migrate", NULL), 0, "migrate", NULL, "notify: ", NULL);
    rt_test_pg_exec (s.pg, "INSERT INTO crm.customers (id, shop_customer_id, name) VALUES"
                           " ('" A "', NULL, 'A'), ('" B "', 'shop-b', 'B'), ('" C "', NULL, 'C'),"
                           " ('" D "', NULL, 'D'), ('" E "', 'shop-e', 'E'), ('" M "', NULL, 'M')");
    rt_test_pg_exec (s.pg, "UPDATE crm.customers SET merged_into = '" A "' WHERE id = '" M "'");
    rt_test_pg_exec (s.pg,
                     "INSERT INTO crm.card_shipments (shipment_id, customer_id, carrier, status)"
                     " VALUES ('s1', '" A "', 'nova_poshta', 'in_transit'),"
                     " ('s2', '" B "', 'nova_poshta', 'in_transit'),"
                     " ('s3', '" B "', 'nova_poshta', 'in_transit'),"
                     " ('s4', '" C "', 'nova_poshta', 'delivered'),"
                     " ('s5', '" D "', 'ukrposhta', 'in_transit'),"
                     " ('s6', '" M "', 'nova_poshta', 'at_pickup_point')");
    rt_test_pg_exec (
        s.pg, "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id,"
              " last_seen) VALUES ('telegram', 'main', '1', '" A "', now() - interval '1 day'),"
              " ('telegram', 'main', '3', '" C "', now() - interval '20 days'),"
              " ('viber', 'main', 'v4', '" D "', now() - interval '2 days')");
    rt_test_pg_exec (s.pg, "INSERT INTO notify.templates (name, locale, text)"
                           " VALUES ('crisis', 'en', '{{name}}: the depot is closed')");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    PQfinish (s.pg);
    return 0;
}

static void
test_segments (void **state)
{
    char id[37], got[128], seg[256];
    (void)state;
    /* A carrier's parcels in transit: B once for two parcels. */
    s_create (id, "carrier=nova_poshta,status=in_transit", 2, NULL);
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a1,a2");
    s_text (got, sizeof got,
            "SELECT status FROM notify.campaigns ORDER BY created_at DESC LIMIT 1");
    assert_string_equal (got, "draft");
    /* in_transit when no status is named; another carrier. */
    s_create (id, "carrier=ukrposhta", 1, "--start");
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a4");
    s_text (got, sizeof got,
            "SELECT status FROM notify.campaigns ORDER BY created_at DESC LIMIT 1");
    assert_string_equal (got, "running");
    /* The merged duplicate's parcel reaches its survivor. */
    s_create (id, "carrier=nova_poshta,status=at_pickup_point", 1, NULL);
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a1");
    /* Who wrote on a channel within the period. */
    s_create (id, "wrote=telegram,since=7d", 1, NULL);
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a1");
    s_create (id, "wrote=telegram,since=30d", 2, NULL);
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a1,a3");
    /* Everybody, a merged duplicate as its survivor. */
    s_create (id, "all", 5, NULL);
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a1,a2,a3,a4,a5");
    /* The segment is kept as given. */
    snprintf (seg, sizeof seg,
              "SELECT segment->>'kind' || ' ' || (segment->>'since_ms') FROM notify.campaigns"
              " WHERE template = 'crisis' AND segment->>'kind' = 'wrote' ORDER BY created_at"
              " LIMIT 1");
    s_text (got, sizeof got, seg);
    assert_string_equal (got, "wrote 604800000");
}

static void
test_csv (void **state)
{
    char id[37], got[128], *out = NULL, seg[1100];
    const char *path = s_file ("customer_id\n"
                               "# the customers of the closed depot\n" D ",late\n"
                               "\"shop-b\";x\n"
                               "\n"
                               "shop-b\n" M "\n"
                               "shop-nobody\n" NOBODY "\n");
    (void)state;
    snprintf (seg, sizeof seg, "--segment=csv=%s", path);
    rt_test_retainctl_expect (s_ctl ("create", "--template=crisis", seg, NULL), 0, "csv", &out,
                              "targeted=3", "warning: 2 of 6 ids", NULL);
    s_id (out, id);
    free (out);
    s_targets (id, got, sizeof got);
    assert_string_equal (got, "a1,a2,a4");
    snprintf (seg, sizeof seg,
              "SELECT (segment->>'rows') || ' ' || (segment->>'unmatched') FROM"
              " notify.campaigns WHERE id = '%s'",
              id);
    s_text (got, sizeof got, seg);
    assert_string_equal (got, "6 2");
}

static void
test_segment_matches_nobody (void **state)
{
    char id[37], *out = NULL, sql[256];
    (void)state;
    rt_test_retainctl_expect (
        s_ctl ("create", "--template=crisis", "--segment=carrier=dhl", "--start", NULL), 0,
        "nobody", &out, "warning: the segment matches nobody", "done with 0 targets", NULL);
    s_id (out, id);
    free (out);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.campaigns WHERE id = '%s' AND status = 'done'"
              " AND settled AND targeted = 0 AND finished_at IS NOT NULL",
              id);
    assert_int_equal (rt_test_pg_long (s.pg, sql), 1);
}

static void
test_bad_input (void **state)
{
    static const struct {
        const char *segment, *flag, *says;
    } cases[] = {
        {"carrier=nova_poshta", "--template=nope", "no template is named \"nope\""},
        {"wrote=telegram", NULL, "wrote= needs since="},
        {"wrote=pigeon,since=7d", NULL, "wrote= names a channel"},
        {"wrote=telegram,since=7 days", NULL, "since= is a period"},
        {"tier=gold", NULL, "the segments are"},
        {"carrier", NULL, "each part is name=value"},
        {"all", "--rate=0", "--rate \"0\" must be"},
        {"all", "--rate=many", "--rate \"many\" must be"},
        {"all", "--category=urgent", "--category is marketing or transactional"},
        {"csv=/nonexistent/ids.csv", NULL, "cannot read /nonexistent/ids.csv"},
    };
    long long before = s_campaigns ();
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char seg[256];
        snprintf (seg, sizeof seg, "--segment=%s", cases[i].segment);
        if (cases[i].flag && strncmp (cases[i].flag, "--template", 10) == 0)
            rt_test_retainctl_expect (s_ctl ("create", cases[i].flag, seg, NULL), 2,
                                      cases[i].segment, NULL, cases[i].says, NULL);
        else
            rt_test_retainctl_expect (
                s_ctl ("create", "--template=crisis", seg, cases[i].flag, NULL), 2,
                cases[i].segment, NULL, cases[i].says, NULL);
    }
    rt_test_retainctl_expect (s_ctl ("create", "--segment=all", NULL), 2, "no template", NULL,
                              "--template is required", NULL);
    rt_test_retainctl_expect (s_ctl ("create", "--template=crisis", NULL), 2, "no segment", NULL,
                              "--segment is required", NULL);
    assert_int_equal (s_campaigns (), before);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM notify.campaign_targets t"
                                             " WHERE NOT EXISTS (SELECT 1 FROM notify.campaigns"
                                             " k WHERE k.id = t.campaign_id)"),
                      0);
}

static void
test_moves (void **state)
{
    char id[37];
    (void)state;
    s_create (id, "all", 5, NULL);
    rt_test_retainctl_expect (s_ctl ("pause", "--id", id, NULL), 1, "pause a draft", NULL,
                              "is draft: it cannot be made paused", NULL);
    rt_test_retainctl_expect (s_ctl ("start", "--id", id, NULL), 0, "start", NULL,
                              "running (was draft)", NULL);
    rt_test_retainctl_expect (s_ctl ("start", "--id", id, NULL), 1, "start again", NULL,
                              "is running", NULL);
    rt_test_retainctl_expect (s_ctl ("pause", "--id", id, NULL), 0, "pause", NULL,
                              "paused (was running)", NULL);
    rt_test_retainctl_expect (s_ctl ("resume", "--id", id, NULL), 0, "resume", NULL,
                              "running (was paused)", NULL);
    rt_test_retainctl_expect (s_ctl ("cancel", "--id", id, NULL), 0, "cancel", NULL,
                              "cancelled (was running)", NULL);
    rt_test_retainctl_expect (s_ctl ("resume", "--id", id, NULL), 1, "resume a cancelled one", NULL,
                              "is cancelled", NULL);
    rt_test_retainctl_expect (s_ctl ("cancel", "--id", NOBODY, NULL), 1, "unknown", NULL,
                              "no campaign " NOBODY, NULL);
    rt_test_retainctl_expect (s_ctl ("cancel", "--id", "42", NULL), 2, "not an id", NULL,
                              "is not a campaign id", NULL);
    rt_test_retainctl_expect (s_ctl ("cancel", NULL), 2, "no id", NULL, "--id is required", NULL);
}

/* Moves the campaign's counts after a while, then ends it, as notifyd
 * would, while status --follow watches. */
static void *
s_runner (void *arg)
{
    const char *id = arg;
    char sql[512];
    PGconn *pg = rt_test_pg (s.dsn);
    usleep (700 * 1000);
    snprintf (sql, sizeof sql, "UPDATE notify.campaigns SET queued = 2, sent = 1 WHERE id = '%s'",
              id);
    PQclear (PQexec (pg, sql));
    usleep (700 * 1000);
    snprintf (sql, sizeof sql,
              "UPDATE notify.campaign_targets SET state = 'queued',"
              " notification_id = gen_random_uuid() WHERE campaign_id = '%s';"
              " UPDATE notify.campaigns SET queued = 2, sent = 2, status = 'done', settled = true"
              " WHERE id = '%s'",
              id, id);
    {
        PGresult *r = PQexec (pg, sql);
        if (PQresultStatus (r) != PGRES_COMMAND_OK)
            fprintf (stderr, "the runner's update failed: %s\n", PQerrorMessage (pg));
        PQclear (r);
    }
    PQfinish (pg);
    return NULL;
}

static void
test_list_and_status (void **state)
{
    char id[37], *out = NULL;
    pthread_t runner;
    json_t *doc;
    (void)state;
    s_create (id, "carrier=nova_poshta,status=in_transit", 2, "--start");
    rt_test_retainctl_expect (s_ctl ("list", NULL), 0, "list", NULL, id, "running", "crisis", NULL);
    rt_test_retainctl_expect (s_ctl ("list", "--json", NULL), 0, "list --json", &out, NULL);
    doc = json_loads (out, 0, NULL);
    assert_true (json_is_array (doc));
    assert_string_equal (json_string_value (json_object_get (json_array_get (doc, 0), "id")), id);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (doc, 0), "pending")), 2);
    json_decref (doc);
    free (out);
    rt_test_retainctl_expect (
        s_ctl ("status", "--id", id, NULL), 0, "status", NULL,
        "targeted 2  queued 0  sent 0  skipped 0  failed 0  cancelled 0  pending 2  (running)",
        NULL);

    /* --follow, not on a terminal: a line per change, until it is over. */
    assert_int_equal (pthread_create (&runner, NULL, s_runner, id), 0);
    rt_test_retainctl_expect (s_ctl ("status", "--id", id, "--follow", "--interval=100ms", NULL), 0,
                              "follow", &out, "queued 0  sent 0", "queued 2  sent 1",
                              "queued 2  sent 2", "(done)", NULL);
    pthread_join (runner, NULL);
    assert_null (strchr (out, '\r'));
    {
        int lines = 0;
        for (const char *p = out; *p; p++)
            lines += *p == '\n';
        assert_int_equal (lines, 3);
    }
    free (out);
    rt_test_retainctl_expect (s_ctl ("status", "--id", id, "--json", NULL), 0, "status --json",
                              &out, NULL);
    doc = json_loads (out, 0, NULL);
    assert_string_equal (json_string_value (json_object_get (doc, "status")), "done");
    assert_int_equal (json_integer_value (json_object_get (doc, "sent")), 2);
    json_decref (doc);
    free (out);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_segments),
        cmocka_unit_test (test_csv),
        cmocka_unit_test (test_segment_matches_nobody),
        cmocka_unit_test (test_bad_input),
        cmocka_unit_test (test_moves),
        cmocka_unit_test (test_list_and_status),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
