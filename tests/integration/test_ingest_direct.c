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
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

#define MESSAGES  6000
#define IN_FLIGHT 32
#define RETRY_MS  50
#define SECRET    "direct-test-secret"
#define ACK_MS    "500ms"

static const rt_test_inbox_t s_inboxes[] = {{"direct-bot", "telegram", SECRET, NULL}};

/* The burst: MESSAGES updates, each retried until answered 2xx. */
typedef struct {
    const char *base; /* ingestd's address, read at each (re)send */
    int total;        /* messages to send */
    atomic_int ok;    /* answered 2xx so far */
    int *answered;    /* per message id: 2xx answers it got */
    int failed;       /* a libcurl call failed */
    pthread_t thread; /* the sender */
} s_burst_t;

typedef struct {
    CURL *curl;         /* its handle */
    int id;             /* the message it carries; 0 when none */
    bool running;       /* added to the multi handle */
    int64_t not_before; /* earliest retry after a failure */
    char body[512];     /* the update */
} s_slot_t;

static void
s_request (s_burst_t *b, CURLM *multi, s_slot_t *slot)
{
    snprintf (slot->body, sizeof slot->body,
              "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":77,"
              "\"is_bot\":false,\"first_name\":\"D\"},\"chat\":{\"id\":77,\"type\":"
              "\"private\"},\"date\":1795500000,\"text\":\"where is my parcel %d\"}}",
              slot->id, slot->id, slot->id);
    curl_easy_setopt (slot->curl, CURLOPT_POSTFIELDS, slot->body);
    if (curl_multi_add_handle (multi, slot->curl) != CURLM_OK)
        b->failed = 1;
    slot->running = true;
}

static void *
s_send (void *arg)
{
    s_burst_t *b = arg;
    CURLM *multi = curl_multi_init ();
    struct curl_slist *headers = NULL;
    s_slot_t slots[IN_FLIGHT];
    char url[128];
    int next = 0, i;
    headers = curl_slist_append (headers, "Content-Type: application/json");
    headers = curl_slist_append (headers, "X-Telegram-Bot-Api-Secret-Token: " SECRET);
    snprintf (url, sizeof url, "%s/hooks/telegram/direct-bot", b->base);
    memset (slots, 0, sizeof slots);
    for (i = 0; i < IN_FLIGHT; i++) {
        slots[i].curl = curl_easy_init ();
        curl_easy_setopt (slots[i].curl, CURLOPT_URL, url);
        curl_easy_setopt (slots[i].curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt (slots[i].curl, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt (slots[i].curl, CURLOPT_WRITEFUNCTION, rt_test_reply_drop);
        curl_easy_setopt (slots[i].curl, CURLOPT_PRIVATE, &slots[i]);
    }
    while (atomic_load (&b->ok) < b->total && !b->failed) {
        int64_t now = rt_test_now_ms ();
        int running = 0, queued;
        CURLMsg *msg;
        for (i = 0; i < IN_FLIGHT; i++) {
            if (slots[i].running)
                continue;
            if (!slots[i].id && next < b->total)
                slots[i].id = ++next;
            if (slots[i].id && now >= slots[i].not_before)
                s_request (b, multi, &slots[i]);
        }
        if (curl_multi_perform (multi, &running) != CURLM_OK ||
            curl_multi_poll (multi, NULL, 0, 10, NULL) != CURLM_OK)
            b->failed = 1;
        msg = curl_multi_info_read (multi, &queued);
        while (msg) {
            if (msg->msg == CURLMSG_DONE) {
                s_slot_t *slot = NULL;
                long status = 0;
                curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
                if (msg->data.result == CURLE_OK)
                    curl_easy_getinfo (slot->curl, CURLINFO_RESPONSE_CODE, &status);
                curl_multi_remove_handle (multi, slot->curl);
                slot->running = false;
                if (status >= 200 && status < 300) {
                    b->answered[slot->id]++;
                    slot->id = 0;
                    atomic_fetch_add (&b->ok, 1);
                } else
                    slot->not_before = rt_test_now_ms () + RETRY_MS;
            }
            msg = curl_multi_info_read (multi, &queued);
        }
    }
    for (i = 0; i < IN_FLIGHT; i++) {
        if (slots[i].running)
            curl_multi_remove_handle (multi, slots[i].curl);
        curl_easy_cleanup (slots[i].curl);
    }
    curl_multi_cleanup (multi);
    curl_slist_free_all (headers);
    return NULL;
}

static void
s_burst_start (s_burst_t *b, const char *base, int total)
{
    memset (b, 0, sizeof *b);
    b->base = base;
    b->total = total;
    b->answered = calloc ((size_t)total + 1, sizeof (int));
    assert_non_null (b->answered);
    assert_int_equal (pthread_create (&b->thread, NULL, s_send, b), 0);
}

/* Waits until the burst has ok answers (or ended). */
static void
s_burst_wait (s_burst_t *b, int ok)
{
    while (atomic_load (&b->ok) < ok && !b->failed)
        usleep (2000);
}

static void
s_burst_join (s_burst_t *b)
{
    pthread_join (b->thread, NULL);
    assert_int_equal (b->failed, 0);
    assert_int_equal (atomic_load (&b->ok), b->total);
}

/* The log holds every message of the burst exactly once and nothing else;
 * each was answered 2xx once (the sender stops at the first). */
static void
s_check_log (rt_test_ingest_t *t, s_burst_t *b)
{
    Retain__V1__InboundMessage **msgs;
    size_t n;
    int *seen = calloc ((size_t)b->total + 1, sizeof (int));
    assert_non_null (seen);
    rt_test_ingest_wait_events (t->conn, NULL, "InboundMessage", b->total, 60000);
    assert_int_equal (rt_test_ingest_wait_drained (t->conn), 0);
    msgs = rt_test_ingest_messages (t->conn, &n);
    for (size_t m = 0; m < n; m++) {
        const char *colon = strchr (msgs[m]->external_id, ':');
        int id;
        assert_non_null (colon);
        id = atoi (colon + 1);
        if (id < 1 || id > b->total)
            fail_msg ("the log holds message %s, never sent", msgs[m]->external_id);
        seen[id]++;
    }
    rt_test_ingest_messages_free (msgs, n);
    for (int id = 1; id <= b->total; id++) {
        if (b->answered[id] != 1)
            fail_msg ("message %d was answered 2xx %d times", id, b->answered[id]);
        if (seen[id] != 1)
            fail_msg ("message %d answered 2xx is in the log %d times", id, seen[id]);
    }
    assert_int_equal (n, (size_t)b->total);
    free (seen);
    free (b->answered);
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
    s_burst_t b;
    double published, acked, timeouts;
    s_start (t, "ingest_direct_busd", true);
    s_burst_start (&b, t->ingestd.base, MESSAGES);
    s_burst_wait (&b, MESSAGES / 3);
    rt_test_kill (t->busd.pid, SIGKILL);
    t->busd.pid = 0;
    /* Webhooks are answered while busd is away... */
    s_burst_wait (&b, 2 * MESSAGES / 3);
    s_busd_again (t);
    s_burst_join (&b);
    s_check_log (t, &b);
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
    s_burst_t b;
    char *log;
    s_start (t, "ingest_direct_kill", true);
    s_burst_start (&b, t->ingestd.base, MESSAGES);
    for (int k = 1; k <= 2; k++) {
        s_burst_wait (&b, k * MESSAGES / 3);
        rt_test_kill (t->ingestd.pid, SIGKILL);
        rt_test_ingestd_restart (&t->ingestd);
    }
    s_burst_join (&b);
    assert_true (s_metric (t, "retain_ingest_direct_acknowledged_total") > 0);
    s_check_log (t, &b);
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
    s_burst_t b;
    s_start (t, "ingest_direct_nobusd", false);
    s_burst_start (&b, t->ingestd.base, 300);
    s_burst_join (&b);
    /* Every one in the outbox within the ack timeout, with the reason. */
    assert_int_equal (
        rt_test_pg_wait_long (t->conn, "SELECT count(*) FROM outbox.pending", 300, 10000), 300);
    assert_int_equal (s_metric (t, "retain_ingest_direct_fallback_total{reason=\"timeout\"}"), 300);
    assert_int_equal (s_metric (t, "retain_ingest_direct_acknowledged_total"), 0);
    s_busd_again (t);
    s_check_log (t, &b);
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
