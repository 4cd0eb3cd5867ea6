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

#define SENDERS    4
#define IN_FLIGHT  16
#define PER_SENDER 3000
#define KILLS      3
#define RETRY_MS   50
#define SECRET     "kill-test-secret"

static rt_test_ingest_t s_t;
static atomic_int s_accepted;
/* Kills so far: bumped just before each SIGKILL, so a request started
 * while it read k was on its way before kill k + 1. */
static atomic_int s_generation;
/* Per kill: requests sent before it that got no answer or a 503. */
static atomic_int s_cut[KILLS];
/* 2xx answers received before the first kill, between kills, after the
 * last. */
static atomic_int s_ok[KILLS + 1];

/* One request a sender keeps going until it is answered 2xx. */
typedef struct {
    CURL *curl;         /* its handle */
    int id;             /* the message it carries; 0 when none */
    bool running;       /* added to the multi handle */
    int generation;     /* s_generation when it was sent */
    int64_t not_before; /* earliest retry after a failure */
    char body[512];     /* the update */
} s_slot_t;

typedef struct {
    int index;  /* sender number */
    int *acked; /* message ids answered 2xx */
    int nacked; /* their count */
    int next;   /* messages handed to slots so far */
    int failed; /* a libcurl call failed */
} s_sender_t;

/* Starts (or restarts) the slot's request. */
static void
s_start_request (s_sender_t *s, CURLM *multi, s_slot_t *slot)
{
    snprintf (slot->body, sizeof slot->body,
              "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":%d,"
              "\"is_bot\":false,\"first_name\":\"C\"},\"chat\":{\"id\":%d,\"type\":"
              "\"private\"},\"date\":1795500000,\"text\":\"order question %d\"}}",
              slot->id, slot->id, 1000 + s->index, 1000 + s->index, slot->id);
    curl_easy_setopt (slot->curl, CURLOPT_POSTFIELDS, slot->body);
    slot->generation = atomic_load (&s_generation);
    if (curl_multi_add_handle (multi, slot->curl) != CURLM_OK)
        s->failed = 1;
    slot->running = true;
}

/* A request ended: a 2xx is kept, anything else retried after RETRY_MS
 * and, when it was on the wire before a kill that came since, counted
 * against that kill. */
static void
s_finished (s_sender_t *s, CURLM *multi, s_slot_t *slot, CURLcode rc)
{
    long status = 0, sent = 0;
    int generation = atomic_load (&s_generation);
    if (rc == CURLE_OK)
        curl_easy_getinfo (slot->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo (slot->curl, CURLINFO_REQUEST_SIZE, &sent);
    curl_multi_remove_handle (multi, slot->curl);
    slot->running = false;
    if (status >= 200 && status < 300) {
        s->acked[s->nacked++] = slot->id;
        slot->id = 0;
        atomic_fetch_add (&s_ok[generation < KILLS ? generation : KILLS], 1);
        atomic_fetch_add (&s_accepted, 1);
        return;
    }
    if (generation > slot->generation && slot->generation < KILLS &&
        ((status == 0 && sent > 0) || status == 503))
        atomic_fetch_add (&s_cut[slot->generation], 1);
    slot->not_before = rt_test_now_ms () + RETRY_MS;
}

static void *
s_send (void *arg)
{
    s_sender_t *s = arg;
    CURLM *multi = curl_multi_init ();
    struct curl_slist *headers = NULL;
    s_slot_t slots[IN_FLIGHT];
    char url[128];
    int i;
    headers = curl_slist_append (headers, "Content-Type: application/json");
    headers = curl_slist_append (headers, "X-Telegram-Bot-Api-Secret-Token: " SECRET);
    snprintf (url, sizeof url, "%s/hooks/telegram/kill-bot", s_t.ingestd.base);
    memset (slots, 0, sizeof slots);
    for (i = 0; i < IN_FLIGHT; i++) {
        slots[i].curl = curl_easy_init ();
        if (!slots[i].curl) {
            s->failed = 1;
            goto cleanup;
        }
        curl_easy_setopt (slots[i].curl, CURLOPT_URL, url);
        curl_easy_setopt (slots[i].curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt (slots[i].curl, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt (slots[i].curl, CURLOPT_WRITEFUNCTION, rt_test_reply_drop);
        curl_easy_setopt (slots[i].curl, CURLOPT_PRIVATE, &slots[i]);
    }
    while (s->nacked < PER_SENDER && !s->failed) {
        int64_t now = rt_test_now_ms ();
        int running = 0, queued;
        CURLMsg *msg;
        for (i = 0; i < IN_FLIGHT; i++) {
            if (slots[i].running)
                continue;
            if (!slots[i].id && s->next < PER_SENDER)
                slots[i].id = s->index * PER_SENDER + ++s->next;
            if (slots[i].id && now >= slots[i].not_before)
                s_start_request (s, multi, &slots[i]);
        }
        if (curl_multi_perform (multi, &running) != CURLM_OK ||
            curl_multi_poll (multi, NULL, 0, 10, NULL) != CURLM_OK)
            s->failed = 1;
        msg = curl_multi_info_read (multi, &queued);
        while (msg) {
            if (msg->msg == CURLMSG_DONE) {
                s_slot_t *slot = NULL;
                curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
                s_finished (s, multi, slot, msg->data.result);
            }
            msg = curl_multi_info_read (multi, &queued);
        }
    }
cleanup:
    for (i = 0; i < IN_FLIGHT; i++) {
        if (slots[i].running)
            curl_multi_remove_handle (multi, slots[i].curl);
        curl_easy_cleanup (slots[i].curl);
    }
    curl_multi_cleanup (multi);
    curl_slist_free_all (headers);
    return NULL;
}

static int
s_cmp_int (const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static void
test_kill_during_burst (void **state)
{
    (void)state;
    static const rt_test_inbox_t inboxes[] = {{"kill-bot", "telegram", SECRET, NULL}};
    s_sender_t senders[SENDERS];
    pthread_t threads[SENDERS];
    int kills = 0, i, total = 0, *seen;
    Retain__V1__InboundMessage **msgs;
    size_t n;

    rt_test_ingest_start (&s_t, "ingest_kill", NULL, NULL);
    rt_test_ingest_inboxes (&s_t, inboxes, 1);

    memset (senders, 0, sizeof senders);
    for (i = 0; i < SENDERS; i++) {
        senders[i].index = i;
        senders[i].acked = calloc (PER_SENDER, sizeof (int));
        assert_non_null (senders[i].acked);
        assert_int_equal (pthread_create (&threads[i], NULL, s_send, &senders[i]), 0);
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
    for (i = 0; i < SENDERS; i++) {
        pthread_join (threads[i], NULL);
        assert_int_equal (senders[i].failed, 0);
    }

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
        qsort (senders[i].acked, (size_t)senders[i].nacked, sizeof (int), s_cmp_int);
        for (int k = 0; k < senders[i].nacked; k++) {
            if (seen[senders[i].acked[k]] != 1)
                fail_msg ("message %d answered 2xx is on the bus %d times", senders[i].acked[k],
                          seen[senders[i].acked[k]]);
            total++;
        }
        free (senders[i].acked);
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
