/*
 * retain-ingestd killed with SIGKILL three times during a burst of
 * webhooks: every request that got a 2xx is on the bus exactly once.
 *
 * Four senders keep 16 requests each in flight (libcurl's multi
 * interface), so a kill lands on requests ingestd has read and not yet
 * answered. Like a provider, a sender retries a request until it gets a
 * 2xx. The test proves its kills hit load: for each kill, requests that
 * were on the wire before it (sent, in libcurl's count of request bytes)
 * ended without an answer or with a 503, and 2xx answers came between
 * every two kills and after the last.
 */
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
#include "rt_test_burst.h"
#include "rt_test_ingest.h"

#define SENDERS    4
#define IN_FLIGHT  16
#define PER_SENDER 3000
#define KILLS      3
#define RETRY_MS   50
#define SECRET     "kill-test-secret"

static rt_test_ingest_t s_t;
static atomic_int s_accepted;
/* Kills so far: bumped just before each SIGKILL, so a request sent while
 * it read k (its tag, s_sent) was on its way before kill k + 1. */
static atomic_int s_generation;
/* Per kill: requests sent before it that got no answer or a 503. */
static atomic_int s_cut[KILLS];
/* 2xx answers received before the first kill, between kills, after the
 * last. */
static atomic_int s_ok[KILLS + 1];

/* Message id's update, from sender (arg)'s own customer. */
static int
s_body (char *buf, size_t size, int id, void *arg)
{
    int customer = 1000 + *(const int *)arg;
    return snprintf (buf, size,
                     "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":%d,"
                     "\"is_bot\":false,\"first_name\":\"C\"},\"chat\":{\"id\":%d,\"type\":"
                     "\"private\"},\"date\":1795500000,\"text\":\"order question %d\"}}",
                     id, id, customer, customer, id);
}

/* A request goes out: tagged with the kills so far. */
static int
s_sent (int id, void *arg)
{
    (void)id;
    (void)arg;
    return atomic_load (&s_generation);
}

/* A request ended: a 2xx is counted for the stretch between kills it came
 * in; anything else (which the burst retries), when it was on the wire
 * before a kill that came since, against that kill. */
static void
s_ended (int id, int generation_sent, long status, long sent, void *arg)
{
    int generation = atomic_load (&s_generation);
    (void)id;
    (void)arg;
    if (status >= 200 && status < 300) {
        atomic_fetch_add (&s_ok[generation < KILLS ? generation : KILLS], 1);
        atomic_fetch_add (&s_accepted, 1);
        return;
    }
    if (generation > generation_sent && generation_sent < KILLS &&
        ((status == 0 && sent > 0) || status == 503))
        atomic_fetch_add (&s_cut[generation_sent], 1);
}

static void
test_kill_during_burst (void **state)
{
    (void)state;
    static const rt_test_inbox_t inboxes[] = {{"kill-bot", "telegram", SECRET, NULL}};
    static const char *const headers[] = {"Content-Type: application/json",
                                          "X-Telegram-Bot-Api-Secret-Token: " SECRET, NULL};
    static int number[SENDERS]; /* each sender's, for its body */
    rt_test_burst_t *senders[SENDERS];
    char url[128];
    int kills = 0, i, total = 0, *seen;
    Retain__V1__InboundMessage **msgs;
    size_t n;

    rt_test_ingest_start (&s_t, "ingest_kill", NULL, NULL);
    rt_test_ingest_inboxes (&s_t, inboxes, 1);

    snprintf (url, sizeof url, "%s/hooks/telegram/kill-bot", s_t.ingestd.base);
    for (i = 0; i < SENDERS; i++) {
        rt_test_burst_opts_t opts = {.url = url,
                                     .headers = headers,
                                     .first = i * PER_SENDER + 1,
                                     .total = PER_SENDER,
                                     .in_flight = IN_FLIGHT,
                                     .retry_ms = RETRY_MS,
                                     .timeout_s = 10,
                                     .body = s_body,
                                     .sent = s_sent,
                                     .ended = s_ended,
                                     .arg = &number[i]};
        number[i] = i;
        senders[i] = rt_test_burst_start (&opts);
    }
    while (kills < KILLS) {
        if (atomic_load (&s_accepted) >= SENDERS * PER_SENDER * (kills + 1) / (KILLS + 1)) {
            atomic_fetch_add (&s_generation, 1);
            rt_test_kill (s_t.ingestd.pid, SIGKILL);
            kills++;
            rt_test_ingestd_restart (&s_t.ingestd);
        } else
            usleep (2000);
    }
    for (i = 0; i < SENDERS; i++)
        rt_test_burst_join (senders[i]);

    /* Each kill cut requests off, and the load ran on across all of them. */
    for (i = 0; i < KILLS; i++) {
        print_message ("kill %d: %d requests in flight cut off\n", i + 1, atomic_load (&s_cut[i]));
        if (atomic_load (&s_cut[i]) == 0)
            fail_msg ("kill %d cut off no request: it did not land under load", i + 1);
    }
    if (atomic_load (&s_ok[0]) == 0)
        fail_msg ("no 2xx before the first kill");
    for (i = 1; i <= KILLS; i++) {
        if (atomic_load (&s_ok[i]) == 0)
            fail_msg ("no 2xx after kill %d%s", i, i < KILLS ? " and before the next" : "");
    }

    /* Everything answered 2xx reaches the log (busd drains the outbox). */
    rt_test_ingest_wait_drained (s_t.conn);
    msgs = rt_test_ingest_messages (s_t.conn, &n);
    seen = calloc (SENDERS * PER_SENDER + 1, sizeof (int));
    assert_non_null (seen);
    for (size_t m = 0; m < n; m++) {
        const char *colon = strchr (msgs[m]->external_id, ':');
        int id;
        assert_non_null (colon);
        id = atoi (colon + 1);
        assert_true (id >= 1 && id <= SENDERS * PER_SENDER);
        seen[id]++;
    }
    rt_test_ingest_messages_free (msgs, n);
    for (i = 0; i < SENDERS; i++) {
        for (int id = i * PER_SENDER + 1; id <= (i + 1) * PER_SENDER; id++) {
            for (int k = 0; k < rt_test_burst_answered (senders[i], id); k++) {
                if (seen[id] != 1)
                    fail_msg ("message %d answered 2xx is on the bus %d times", id, seen[id]);
                total++;
            }
        }
        rt_test_burst_destroy (&senders[i]);
    }
    assert_int_equal (total, SENDERS * PER_SENDER);
    for (i = 1; i <= SENDERS * PER_SENDER; i++)
        assert_true (seen[i] <= 1);
    print_message ("%d webhooks, %d kills: each on the bus once\n", total, kills);
    free (seen);
    rt_test_ingest_stop (&s_t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_kill_during_burst),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, NULL, NULL);
}
