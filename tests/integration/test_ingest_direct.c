/*
 * ingestd's direct path to busd (--bus-ingress): every webhook answered
 * 2xx reaches the log exactly once, whoever dies.
 *
 *   - busd killed with SIGKILL mid-burst and started again later: what
 *     was in flight, and everything committed while busd was away, goes
 *     through the outbox (the fallback counts it), and the log holds every
 *     2xx once and nothing else;
 *   - ingestd killed with SIGKILL mid-burst, twice: the restarted ingestd
 *     moves what its predecessor left unacknowledged to the outbox;
 *   - busd never started: webhooks are answered 2xx all the same, and all
 *     reach the log through the outbox once busd starts.
 *
 * A sender keeps IN_FLIGHT requests going with libcurl's multi interface
 * and, like a provider, retries each until it is answered 2xx.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_burst.h"
#include "rt_test_ingest.h"

#define MESSAGES  6000
#define IN_FLIGHT 32
#define RETRY_MS  50
#define SECRET    "direct-test-secret"
#define ACK_MS    "500ms"

static const rt_test_inbox_t s_inboxes[] = {{"direct-bot", "telegram", SECRET, NULL}};

/* Message id's update, from the one customer. */
static int
s_body (char *buf, size_t size, int id, void *arg)
{
    (void)arg;
    return snprintf (buf, size,
                     "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":77,"
                     "\"is_bot\":false,\"first_name\":\"D\"},\"chat\":{\"id\":77,\"type\":"
                     "\"private\"},\"date\":1795500000,\"text\":\"where is my parcel %d\"}}",
                     id, id, id);
}

/* The burst: total updates, each retried until answered 2xx. */
static rt_test_burst_t *
s_burst_start (const char *base, int total)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          "X-Telegram-Bot-Api-Secret-Token: " SECRET, NULL};
    char url[128];
    rt_test_burst_opts_t opts = {.url = url,
                                 .headers = headers,
                                 .first = 1,
                                 .total = total,
                                 .in_flight = IN_FLIGHT,
                                 .retry_ms = RETRY_MS,
                                 .timeout_s = 10,
                                 .body = s_body};
    snprintf (url, sizeof url, "%s/hooks/telegram/direct-bot", base);
    return rt_test_burst_start (&opts);
}

/* The log holds every message of the burst exactly once and nothing else;
 * each was answered 2xx once (the sender stops at the first). */
static void
s_check_log (rt_test_ingest_t *t, rt_test_burst_t **b_p, int total)
{
    rt_test_burst_t *b = *b_p;
    Retain__V1__InboundMessage **msgs;
    size_t n;
    int *seen = calloc ((size_t)total + 1, sizeof (int));
    assert_non_null (seen);
    rt_test_ingest_wait_events (t->conn, NULL, "InboundMessage", total, 60000);
    assert_int_equal (rt_test_ingest_wait_drained (t->conn), 0);
    msgs = rt_test_ingest_messages (t->conn, &n);
    for (size_t m = 0; m < n; m++) {
        const char *colon = strchr (msgs[m]->external_id, ':');
        int id;
        assert_non_null (colon);
        id = atoi (colon + 1);
        if (id < 1 || id > total)
            fail_msg ("the log holds message %s, never sent", msgs[m]->external_id);
        seen[id]++;
    }
    rt_test_ingest_messages_free (msgs, n);
    for (int id = 1; id <= total; id++) {
        if (rt_test_burst_answered (b, id) != 1)
            fail_msg ("message %d was answered 2xx %d times", id, rt_test_burst_answered (b, id));
        if (seen[id] != 1)
            fail_msg ("message %d answered 2xx is in the log %d times", id, seen[id]);
    }
    assert_int_equal (n, (size_t)total);
    free (seen);
    rt_test_burst_destroy (b_p);
}

/* busd (started when start_busd) and an ingestd publishing to its ingress. */
static void
s_start (rt_test_ingest_t *t, const char *name, bool start_busd)
{
    char log[64], ingress[160];
    const char *extra[] = {ingress, "--bus-ack-timeout=" ACK_MS, NULL};
    memset (t, 0, sizeof *t);
    rt_test_db_create (name, t->dsn, sizeof t->dsn);
    snprintf (log, sizeof log, "%s-busd.log", name);
    if (start_busd)
        rt_test_busd_start (&t->busd, t->dsn, log, NULL, true);
    else {
        /* Where busd will listen once it starts. */
        snprintf (t->busd.ingress, sizeof t->busd.ingress, "tcp://127.0.0.1:%d",
                  rt_test_free_port ());
        snprintf (t->busd.pub, sizeof t->busd.pub, "tcp://127.0.0.1:%d", rt_test_free_port ());
        t->busd.admin_port = rt_test_free_port ();
        snprintf (t->busd.log, sizeof t->busd.log, "%s", log);
    }
    snprintf (ingress, sizeof ingress, "--bus-ingress=%s", t->busd.ingress);
    snprintf (log, sizeof log, "%s-ingestd.log", name);
    rt_test_ingestd_start (&t->ingestd, t->dsn, log, NULL, extra);
    t->conn = rt_test_pg (t->dsn);
    rt_test_ingest_inboxes (t, s_inboxes, 1);
}

/* Starts busd again where it was, after a kill or for the first time. */
static void
s_busd_again (rt_test_ingest_t *t)
{
    char log[64];
    snprintf (log, sizeof log, "%s", t->busd.log);
    rt_test_busd_start (&t->busd, t->dsn, log, NULL, true);
}

static double
s_metric (rt_test_ingest_t *t, const char *series)
{
    double v = rt_test_metric (t->ingestd.admin_port, series);
    return v < 0 ? 0 : v;
}

static void
test_busd_killed_mid_burst (void **state)
{
    rt_test_ingest_t *t = *state;
    rt_test_burst_t *b;
    double published, acked, timeouts;
    s_start (t, "ingest_direct_busd", true);
    b = s_burst_start (t->ingestd.base, MESSAGES);
    rt_test_burst_wait (b, MESSAGES / 3);
    rt_test_kill (t->busd.pid, SIGKILL);
    t->busd.pid = 0;
    /* Webhooks are answered while busd is away... */
    rt_test_burst_wait (b, 2 * MESSAGES / 3);
    s_busd_again (t);
    rt_test_burst_join (b);
    s_check_log (t, &b, MESSAGES);
    published = s_metric (t, "retain_ingest_direct_published_total");
    acked = s_metric (t, "retain_ingest_direct_acknowledged_total");
    timeouts = s_metric (t, "retain_ingest_direct_fallback_total{reason=\"timeout\"}");
    print_message ("published %.0f, acknowledged %.0f, to the outbox on timeout %.0f\n", published,
                   acked, timeouts);
    /* ... both ways were taken: straight to busd, and the outbox while it
     * was away. */
    assert_true (acked > 0);
    assert_true (timeouts > 0);
    assert_true (published >= acked);
    assert_int_equal (s_metric (t, "retain_ingest_direct_in_flight"), 0);
    rt_test_ingest_stop (t);
}

static void
test_ingestd_killed_mid_burst (void **state)
{
    rt_test_ingest_t *t = *state;
    rt_test_burst_t *b;
    char *log;
    s_start (t, "ingest_direct_kill", true);
    b = s_burst_start (t->ingestd.base, MESSAGES);
    for (int k = 1; k <= 2; k++) {
        rt_test_burst_wait (b, k * MESSAGES / 3);
        rt_test_kill (t->ingestd.pid, SIGKILL);
        rt_test_ingestd_restart (&t->ingestd);
    }
    rt_test_burst_join (b);
    assert_true (s_metric (t, "retain_ingest_direct_acknowledged_total") > 0);
    s_check_log (t, &b, MESSAGES);
    log = rt_test_log (t->ingestd.log);
    print_message ("recoveries after a kill: %s\n",
                   strstr (log, "writers that stopped unsettled") ? "logged" : "none needed");
    free (log);
    rt_test_ingest_stop (t);
}

static void
test_busd_never_started (void **state)
{
    rt_test_ingest_t *t = *state;
    rt_test_burst_t *b;
    s_start (t, "ingest_direct_nobusd", false);
    b = s_burst_start (t->ingestd.base, 300);
    rt_test_burst_join (b);
    /* Every one in the outbox within the ack timeout, with the reason. */
    assert_int_equal (
        rt_test_pg_wait_long (t->conn, "SELECT count(*) FROM outbox.pending", 300, 10000), 300);
    assert_int_equal (s_metric (t, "retain_ingest_direct_fallback_total{reason=\"timeout\"}"), 300);
    assert_int_equal (s_metric (t, "retain_ingest_direct_acknowledged_total"), 0);
    s_busd_again (t);
    s_check_log (t, &b, 300);
    rt_test_ingest_stop (t);
}

static int
s_setup (void **state)
{
    static rt_test_ingest_t t;
    *state = &t;
    memset (&t, 0, sizeof t);
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_busd_killed_mid_burst, s_setup,
                                         rt_test_ingest_teardown),
        cmocka_unit_test_setup_teardown (test_ingestd_killed_mid_burst, s_setup,
                                         rt_test_ingest_teardown),
        cmocka_unit_test_setup_teardown (test_busd_never_started, s_setup, rt_test_ingest_teardown),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, NULL, NULL);
}
