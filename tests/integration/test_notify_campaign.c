/*
 * retain-notifyd's campaigns, as an operator runs them with retainctl
 * campaign: a real busd and notifyd on a clock file (15:00 UTC, the
 * afternoon in Kyiv), the shared fake of the providers (a Telegram
 * account of the inbox "main"), customers and parcels in crm.
 *
 * What a user would notice: a campaign to the customers with a parcel in
 * transit with one carrier reaches exactly them, once each (a customer
 * with two such parcels once, a merged duplicate's parcel through the
 * survivor), and none of the others; a marketing campaign skips the
 * customers without marketing consent (counted, with the reason) and
 * keeps a customer in their night (Tokyo) for the morning; a paused
 * campaign sends nothing more until resumed, then finishes, each customer
 * once; the campaign's rate holds in the fake's requests per second; a
 * segment matching nobody is done at once and sends nothing; and notifyd
 * SIGKILLed during a campaign to 20,000 customers, then started again:
 * every customer reached, and twice only the ones whose send was in flight
 * at the kill (the test prints how many).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <unistd.h>

#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

/* 2026-01-15 15:00 UTC: 17:00 in Kyiv, midnight in Tokyo. */
#define S_T0       1768489200000LL
#define S_TG_TOKEN "123456:TESTTOKEN"
#define S_WAIT_MS  60000
#define S_KILL_N   20000   /* customers of the kill test */
#define S_KILL_TG  5000000 /* their chat ids start after this */

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* --- the world --- */

/* A customer (zone "" for none) with a Telegram identity (chat) in the
 * inbox "main"; its id into id. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *zone, long chat)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, locale, time_zone) VALUES"
                        " ('%s', 'C%ld', 'en', '%s')",
                        id, chat, zone);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " VALUES ('telegram', 'main', '%ld', '%s')",
                        chat, id);
}

/* A parcel of customer with carrier in status. */
static void
s_parcel (const char *customer, const char *carrier, const char *status)
{
    char sid[RT_UUID_STR_LEN + 1];
    rt_test_router_uuid (sid);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.card_shipments (shipment_id, customer_id, carrier, status)"
                        " VALUES ('%s', '%s', '%s', '%s')",
                        sid, customer, carrier, status);
}

/* Requests the fake's Telegram got for chat. */
static int
s_sent (long chat)
{
    int n = 0;
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
        json_t *doc;
        if (!r)
            break;
        if (r->provider != RT_FAKE_TELEGRAM)
            continue;
        doc = json_loads (r->body, 0, NULL);
        if (json_is_integer (json_object_get (doc, "chat_id")))
            n += json_integer_value (json_object_get (doc, "chat_id")) == chat;
        else if (json_is_string (json_object_get (doc, "chat_id")))
            n += atol (json_string_value (json_object_get (doc, "chat_id"))) == chat;
        json_decref (doc);
    }
    return n;
}

/* --- retainctl --- */

/* Runs retainctl campaign <args> on the test's database; its output into
 * out (owned) when not NULL. Returns the exit status. */
static int
s_ctl (char **out, const char *first, ...)
{
    const char *args[24];
    size_t n = 0;
    va_list ap;
    char *text = NULL;
    int rc;
    args[n++] = "campaign";
    va_start (ap, first);
    for (const char *a = first; a && n < 23; a = va_arg (ap, const char *))
        args[n++] = a;
    va_end (ap);
    args[n] = NULL;
    rc = rt_test_retainctl (s_w.t.dsn, args, &text);
    if (out)
        *out = text;
    else
        free (text);
    return rc;
}

/* The campaign id create printed: the line that starts with one (its
 * warnings and hints go to stderr, mixed in). */
static void
s_printed_id (const char *out, char id[RT_UUID_STR_LEN + 1])
{
    rt_uuid_t u;
    for (const char *p = out; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL) {
        snprintf (id, RT_UUID_STR_LEN + 1, "%s", p);
        if (rt_uuid_parse (id, &u) == 0)
            return;
    }
    fail_msg ("no campaign id in:\n%s", out);
}

/* Creates a campaign and puts its id into id. */
static void
s_create (char id[RT_UUID_STR_LEN + 1], const char *segment, const char *rate, const char *category,
          bool start)
{
    char *out = NULL, seg[256], r[64], cat[64];
    snprintf (seg, sizeof seg, "--segment=%s", segment);
    snprintf (r, sizeof r, "--rate=%s", rate);
    snprintf (cat, sizeof cat, "--category=%s", category);
    if (s_ctl (&out, "create", "--template=crisis", seg, r, cat, start ? "--start" : NULL, NULL) !=
        0)
        fail_msg ("campaign create %s:\n%s", segment, out);
    s_printed_id (out, id);
    free (out);
}

/* A count of the campaign (targeted, queued, sent, skipped, failed). */
static long long
s_count (const char *id, const char *column)
{
    return rt_test_router_long (s_w.t.pg, "SELECT %s FROM notify.campaigns WHERE id = '%s'", column,
                                id);
}

/* Waits until the campaign is done and its counts final. */
static void
s_wait_over (const char *id, int timeout_ms)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.campaigns WHERE id = '%s' AND status = 'done'"
              " AND settled",
              id);
    if (rt_test_pg_wait_long (s_w.t.pg, sql, 1, timeout_ms) != 1)
        fail_msg ("campaign %s is not over: %lld queued, %lld sent; see %s/notifyd.log", id,
                  s_count (id, "queued"), s_count (id, "sent"), rt_test_dir ());
}

static int
s_setup (void **state)
{
    const char *const extra[] = {"--request-timeout=2s",
                                 "--backoff=100ms",
                                 "--backoff-max=300ms",
                                 "--poll=20ms",
                                 "--sweep=200ms",
                                 "--claim-batch=200",
                                 "--campaign-batch=100",
                                 "--campaign-poll=20ms",
                                 "--campaign-refresh=500ms",
                                 NULL};
    (void)state;
    s_fake = rt_fake_provider_start ();
    rt_test_notify_open (&s_w, "notify_campaign", S_T0);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, s_w.t.clock, "n1", "notifyd.log", extra);
    /* The bot's own budget far above every campaign's rate: the
     * campaign's is the one measured. */
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url,"
                        " token, rate_per_s, burst, recipient_per_s, recipient_burst) VALUES"
                        " ('tg-main', 'main', 'telegram', 'telegram', '%s', '%s', 100000, 1000,"
                        " 10, 5)",
                        rt_fake_provider_base (s_fake), S_TG_TOKEN);
    rt_test_router_sql (s_w.t.pg, "INSERT INTO notify.templates (name, locale, variant, text)"
                                  " VALUES ('crisis', 'en', 'default',"
                                  " '{{name}}, the depot is closed: your parcel is one day late')");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notify_teardown (&s_n, &s_w, &s_fake);
    return 0;
}

/* --- the tests --- */

static void
test_carrier_segment_once (void **state)
{
    char in[10][RT_UUID_STR_LEN + 1], out[6][RT_UUID_STR_LEN + 1], twice[RT_UUID_STR_LEN + 1];
    char survivor[RT_UUID_STR_LEN + 1], absorbed[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    (void)state;
    for (int i = 0; i < 10; i++) {
        s_customer (in[i], "", 2000 + i);
        s_parcel (in[i], "np_once", "in_transit");
    }
    for (int i = 0; i < 6; i++)
        s_customer (out[i], "", 2100 + i);
    s_parcel (out[0], "np_once", "delivered");
    s_parcel (out[1], "ukrposhta_once", "in_transit");
    /* Two parcels in transit: one message. */
    s_customer (twice, "", 2200);
    s_parcel (twice, "np_once", "in_transit");
    s_parcel (twice, "np_once", "in_transit");
    /* A duplicate merged into its survivor, the parcel still the
     * duplicate's: the survivor hears it. */
    s_customer (survivor, "", 2300);
    rt_test_router_uuid (absorbed);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, merged_into) VALUES"
                        " ('%s', 'old', '%s')",
                        absorbed, survivor);
    s_parcel (absorbed, "np_once", "in_transit");

    s_create (id, "carrier=np_once,status=in_transit", "1000", "transactional", true);
    assert_int_equal (s_count (id, "targeted"), 12);
    s_wait_over (id, S_WAIT_MS);
    for (int i = 0; i < 10; i++)
        assert_int_equal (s_sent (2000 + i), 1);
    for (int i = 0; i < 6; i++)
        assert_int_equal (s_sent (2100 + i), 0);
    assert_int_equal (s_sent (2200), 1);
    assert_int_equal (s_sent (2300), 1);
    assert_int_equal (s_count (id, "queued"), 12);
    assert_int_equal (s_count (id, "sent"), 12);
    assert_int_equal (s_count (id, "skipped") + s_count (id, "failed"), 0);
    /* The text is the template's with each customer's name. */
    {
        char text[256];
        rt_test_router_text (s_w.t.pg, text, sizeof text,
                             "SELECT s.text FROM notify.sends s JOIN notify.campaign_targets t"
                             " ON t.notification_id = s.notification_id WHERE t.campaign_id = '%s'"
                             " AND t.customer_id = '%s'",
                             id, in[3]);
        assert_string_equal (text, "C2003, the depot is closed: your parcel is one day late");
    }
}

static void
test_marketing_consent_and_quiet_hours (void **state)
{
    char c[6][RT_UUID_STR_LEN + 1], tokyo[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    char reason[64];
    (void)state;
    for (int i = 0; i < 6; i++) {
        s_customer (c[i], "Europe/Kyiv", 3000 + i);
        s_parcel (c[i], "np_consent", "in_transit");
        if (i % 2 == 0)
            rt_test_router_sql (s_w.t.pg,
                                "SELECT notify.consent_set('%s', 'telegram', 'marketing', true,"
                                " 'import', now())",
                                c[i]);
    }
    /* Consented, but midnight in Tokyo: queued for the morning there. */
    s_customer (tokyo, "Asia/Tokyo", 3100);
    s_parcel (tokyo, "np_consent", "in_transit");
    rt_test_router_sql (s_w.t.pg,
                        "SELECT notify.consent_set('%s', 'telegram', 'marketing', true, 'import',"
                        " now())",
                        tokyo);

    s_create (id, "carrier=np_consent", "1000", "marketing", true);
    assert_int_equal (s_count (id, "targeted"), 7);
    {
        char sql[256];
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM notify.campaigns WHERE id = '%s' AND status = 'done'"
                  " AND sent = 3",
                  id);
        assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, sql, 1, S_WAIT_MS), 1);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal (s_sent (3000 + i), i % 2 == 0 ? 1 : 0);
    assert_int_equal (s_count (id, "skipped"), 3);
    assert_int_equal (s_count (id, "queued"), 4);
    rt_test_router_text (s_w.t.pg, reason, sizeof reason,
                         "SELECT reason FROM notify.campaign_targets WHERE campaign_id = '%s'"
                         " AND customer_id = '%s'",
                         id, c[1]);
    assert_string_equal (reason, "no_consent");
    /* 09:00 in Tokyo is 00:00 UTC: nine hours after the clock's 15:00. */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT (extract(epoch FROM s.next_at) * 1000)::bigint"
                                           " FROM notify.sends s JOIN notify.campaign_targets t ON"
                                           " t.notification_id = s.notification_id WHERE"
                                           " t.campaign_id = '%s' AND t.customer_id = '%s'"
                                           " AND s.status = 'queued'",
                                           id, tokyo),
                      S_T0 + 9 * 3600000LL);
    usleep (500 * 1000);
    assert_int_equal (s_sent (3100), 0);
    /* Not settled while a send waits for the morning. */
    assert_int_equal (s_count (id, "settled::int"), 0);
}

static void
test_pause_and_resume (void **state)
{
    char c[40][RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], *out = NULL;
    char sql[256];
    long long held, later;
    (void)state;
    for (int i = 0; i < 40; i++) {
        s_customer (c[i], "", 4000 + i);
        s_parcel (c[i], "np_pause", "in_transit");
    }
    s_create (id, "carrier=np_pause", "10", "transactional", false);
    /* A draft sends nothing. */
    usleep (300 * 1000);
    assert_int_equal (s_count (id, "queued"), 0);
    assert_int_equal (s_ctl (NULL, "start", "--id", id, NULL), 0);
    snprintf (sql, sizeof sql, "SELECT sent FROM notify.campaigns WHERE id = '%s'", id);
    assert_true (rt_test_pg_wait_long (s_w.t.pg, sql, 5, S_WAIT_MS) >= 5);
    assert_int_equal (s_ctl (&out, "pause", "--id", id, NULL), 0);
    assert_non_null (strstr (out, "paused (was running)"));
    free (out);
    /* A step under way when the pause came may still commit. */
    usleep (400 * 1000);
    held = s_count (id, "queued");
    usleep (1500 * 1000);
    later = s_count (id, "queued");
    assert_int_equal (later, held);
    assert_true (held < 40);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.campaign_targets WHERE"
                                           " campaign_id = '%s' AND state = 'pending'",
                                           id),
                      40 - held);
    /* Pausing twice is refused, naming the status. */
    assert_int_equal (s_ctl (&out, "pause", "--id", id, NULL), 1);
    assert_non_null (strstr (out, "is paused"));
    free (out);
    assert_int_equal (s_ctl (NULL, "resume", "--id", id, NULL), 0);
    s_wait_over (id, S_WAIT_MS);
    for (int i = 0; i < 40; i++)
        assert_int_equal (s_sent (4000 + i), 1);
    assert_int_equal (s_count (id, "sent"), 40);
}

static void
test_rate_held (void **state)
{
    enum { N = 60, RATE = 20, SAMPLES = 4000 };
    char c[N][RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    static int64_t at[SAMPLES];
    static size_t seen[SAMPLES];
    size_t base, n = 0, worst = 0;
    int64_t first = 0, last = 0;
    (void)state;
    for (int i = 0; i < N; i++) {
        s_customer (c[i], "", 4500 + i);
        s_parcel (c[i], "np_rate", "in_transit");
    }
    base = rt_fake_provider_count (s_fake, RT_FAKE_PROVIDERS);
    s_create (id, "carrier=np_rate", "20", "transactional", true);
    /* The fake's count, sampled every 10 ms until every one came. */
    while (n < SAMPLES) {
        at[n] = rt_test_now_ms ();
        seen[n] = rt_fake_provider_count (s_fake, RT_FAKE_PROVIDERS) - base;
        if (seen[n] > 0 && !first)
            first = at[n];
        if (seen[n] >= N) {
            last = at[n];
            n++;
            break;
        }
        n++;
        usleep (10 * 1000);
    }
    assert_true (last > 0);
    /* Requests in any second: at most the rate and the burst (a fifth of
     * a second's worth), and a sample's slack. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i; j < n && at[j] - at[i] <= 1000; j++) {
            size_t k = seen[j] - seen[i];
            if (k > worst)
                worst = k;
        }
    }
    printf ("campaign at %d/s: %d requests in %lld ms, at most %zu in one second\n", RATE, N,
            (long long)(last - first), worst);
    assert_true (worst <= RATE + RATE / 5 + 2);
    /* 60 at 20 a second, the burst first: close to 2.8 s, never much less. */
    assert_true (last - first >= 2300);
    s_wait_over (id, S_WAIT_MS);
    for (int i = 0; i < N; i++)
        assert_int_equal (s_sent (4500 + i), 1);
}

static void
test_segment_matches_nobody (void **state)
{
    char *out = NULL, id[RT_UUID_STR_LEN + 1];
    (void)state;
    assert_int_equal (s_ctl (&out, "create", "--template=crisis",
                             "--segment=carrier=nobody_carries", "--start", NULL),
                      0);
    assert_non_null (strstr (out, "matches nobody"));
    s_printed_id (out, id);
    free (out);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.campaigns WHERE id = '%s'"
                                           " AND status = 'done' AND settled AND targeted = 0",
                                           id),
                      1);
    usleep (300 * 1000);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.notifications WHERE"
                                           " event_id = '%s'",
                                           id),
                      0);
}

static void
test_sigkill_during_20000 (void **state)
{
    char id[RT_UUID_STR_LEN + 1];
    size_t base;
    int *got = calloc (S_KILL_N + 1, sizeof *got);
    long long in_flight, twice = 0, never = 0, killed_at;
    int64_t t0 = rt_test_now_ms ();
    (void)state;
    assert_non_null (got);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, locale)"
                        " SELECT ('01910000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,"
                        " 'K' || g, 'en' FROM generate_series(1, %d) g",
                        S_KILL_N);
    /* As after any bulk load: the planner learns the tables' sizes now
     * (the identities' foreign key checks look the customers up by their
     * index), not at autovacuum's next round. */
    rt_test_router_sql (s_w.t.pg, "ANALYZE crm.customers");
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " SELECT 'telegram', 'main', (%d + g)::text,"
                        " ('01910000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid"
                        " FROM generate_series(1, %d) g",
                        S_KILL_TG, S_KILL_N);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.card_shipments (shipment_id, customer_id, carrier, status)"
                        " SELECT 'kill-' || g,"
                        " ('01910000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid,"
                        " 'np_kill', 'in_transit' FROM generate_series(1, %d) g",
                        S_KILL_N);
    rt_test_router_sql (s_w.t.pg, "ANALYZE crm.identities, crm.card_shipments");
    base = rt_fake_provider_count (s_fake, RT_FAKE_TELEGRAM);
    s_create (id, "carrier=np_kill", "100000", "transactional", true);
    assert_int_equal (s_count (id, "targeted"), S_KILL_N);

    /* Mid-way: a third of the customers sent to (the fake's count: a
     * query joining the sends would load the database under test). */
    {
        int64_t until = rt_test_now_ms () + 300000;
        while (rt_fake_provider_count (s_fake, RT_FAKE_TELEGRAM) < base + S_KILL_N / 3 &&
               rt_test_now_ms () < until)
            usleep (20 * 1000);
        assert_true (rt_fake_provider_count (s_fake, RT_FAKE_TELEGRAM) >= base + S_KILL_N / 3);
    }
    assert_true (rt_test_kill (s_n.pid, SIGKILL) != 0);
    s_n.pid = 0;
    killed_at = s_count (id, "queued");
    assert_true (killed_at < S_KILL_N);
    rt_test_notifyd_restart (&s_n);
    s_wait_over (id, 600000);

    /* What the fake received, per customer. */
    for (size_t i = 0;; i++) {
        const rt_fake_request_t *r = rt_fake_provider_request (s_fake, i);
        json_t *doc;
        long chat;
        if (!r)
            break;
        doc = json_loads (r->body, 0, NULL);
        chat = json_is_integer (json_object_get (doc, "chat_id"))
                   ? (long)json_integer_value (json_object_get (doc, "chat_id"))
                   : atol (json_string_value (json_object_get (doc, "chat_id"))
                               ? json_string_value (json_object_get (doc, "chat_id"))
                               : "0");
        json_decref (doc);
        if (chat > S_KILL_TG && chat <= S_KILL_TG + S_KILL_N)
            got[chat - S_KILL_TG]++;
    }
    for (int i = 1; i <= S_KILL_N; i++) {
        twice += got[i] > 1;
        never += got[i] == 0;
        assert_true (got[i] <= 2);
    }
    /* In flight at the kill: the sends the crash policy found `sending`
     * and sent again. */
    in_flight = rt_test_router_long (s_w.t.pg,
                                     "SELECT count(*) FROM notify.sends s JOIN"
                                     " notify.campaign_targets t ON t.notification_id ="
                                     " s.notification_id WHERE t.campaign_id = '%s'"
                                     " AND s.resent > 0",
                                     id);
    printf ("SIGKILL after %lld of %d targets queued: %lld sends in flight, %lld customers reached "
            "twice, %lld never; %lld ms in all\n",
            killed_at, S_KILL_N, in_flight, twice, never, (long long)(rt_test_now_ms () - t0));
    assert_int_equal (never, 0);
    assert_true (twice <= in_flight);
    /* Every customer twice is one whose send was in flight. */
    for (int i = 1; i <= S_KILL_N; i++) {
        if (got[i] < 2)
            continue;
        assert_int_equal (rt_test_router_long (s_w.t.pg,
                                               "SELECT count(*) FROM notify.sends WHERE"
                                               " recipient = '%d' AND resent > 0",
                                               S_KILL_TG + i),
                          1);
    }
    /* One notification and one target per customer, every one queued. */
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(DISTINCT customer_id) FROM"
                                           " notify.notifications WHERE event_id = '%s'",
                                           id),
                      S_KILL_N);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.notifications WHERE"
                                           " event_id = '%s'",
                                           id),
                      S_KILL_N);
    assert_int_equal (s_count (id, "queued"), S_KILL_N);
    assert_int_equal (s_count (id, "sent"), S_KILL_N);
    free (got);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_carrier_segment_once),
        cmocka_unit_test (test_marketing_consent_and_quiet_hours),
        cmocka_unit_test (test_pause_and_resume),
        cmocka_unit_test (test_rate_held),
        cmocka_unit_test (test_segment_matches_nobody),
        cmocka_unit_test (test_sigkill_during_20000),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
