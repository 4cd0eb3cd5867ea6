/*
 * rt_test_burst: numbered webhooks, in_flight at once on one libcurl multi
 * handle, each retried until answered 2xx. See rt_test_burst.h.
 *
 * One loop on the burst's thread: hand a free slot the next message, (re)send
 * every slot whose retry time has come, let libcurl run for up to 10 ms, then
 * settle the transfers that ended. The loop ends when every message is done
 * or a libcurl call failed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_burst.h"

/* One request the burst keeps going until it is answered 2xx. */
typedef struct {
    CURL *curl;                        /* its handle */
    int id;                            /* the message it carries; 0 when none */
    bool running;                      /* added to the multi handle */
    int tag;                           /* what the sent hook returned for it */
    int64_t not_before;                /* earliest retry after a failure */
    char body[RT_TEST_BURST_BODY_MAX]; /* the message */
} s_slot_t;

struct rt_test_burst_t {
    rt_test_burst_opts_t opts;  /* as given, url and headers replaced by ours */
    char *url;                  /* owned copy of opts.url */
    struct curl_slist *headers; /* owned copy of opts.headers */
    int *answered;              /* per message (id - first): 2xx answers it got */
    atomic_int ok;              /* 2xx answers so far */
    atomic_int failed;          /* a libcurl call failed, or a body did not fit */
    pthread_t thread;           /* the sender */
};

/* (Re)sends the slot's message. */
static void
s_request (rt_test_burst_t *self, CURLM *multi, s_slot_t *slot)
{
    int len = self->opts.body (slot->body, sizeof slot->body, slot->id, self->opts.arg);
    if (len < 0 || (size_t)len >= sizeof slot->body) {
        atomic_store (&self->failed, 1);
        return;
    }
    curl_easy_setopt (slot->curl, CURLOPT_POSTFIELDS, slot->body);
    slot->tag = self->opts.sent ? self->opts.sent (slot->id, self->opts.arg) : 0;
    if (curl_multi_add_handle (multi, slot->curl) != CURLM_OK)
        atomic_store (&self->failed, 1);
    slot->running = true;
}

/* The slot's transfer ended with rc: a 2xx is counted and frees the slot,
 * anything else is sent again after retry_ms. */
static void
s_finished (rt_test_burst_t *self, CURLM *multi, s_slot_t *slot, CURLcode rc)
{
    long status = 0, sent = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo (slot->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo (slot->curl, CURLINFO_REQUEST_SIZE, &sent);
    if (self->opts.ended)
        self->opts.ended (slot->id, slot->tag, status, sent, self->opts.arg);
    curl_multi_remove_handle (multi, slot->curl);
    slot->running = false;
    if (status >= 200 && status < 300) {
        self->answered[slot->id - self->opts.first]++;
        slot->id = 0;
        atomic_fetch_add (&self->ok, 1);
    } else
        slot->not_before = rt_test_now_ms () + self->opts.retry_ms;
}

static void *
s_send (void *arg)
{
    rt_test_burst_t *self = arg;
    int n = self->opts.in_flight, next = 0, i;
    CURLM *multi = curl_multi_init ();
    s_slot_t *slots = calloc ((size_t)n, sizeof *slots);
    if (!multi || !slots) {
        atomic_store (&self->failed, 1);
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        slots[i].curl = curl_easy_init ();
        if (!slots[i].curl) {
            atomic_store (&self->failed, 1);
            goto cleanup;
        }
        curl_easy_setopt (slots[i].curl, CURLOPT_URL, self->url);
        curl_easy_setopt (slots[i].curl, CURLOPT_HTTPHEADER, self->headers);
        curl_easy_setopt (slots[i].curl, CURLOPT_TIMEOUT, self->opts.timeout_s);
        curl_easy_setopt (slots[i].curl, CURLOPT_WRITEFUNCTION, rt_test_reply_drop);
        curl_easy_setopt (slots[i].curl, CURLOPT_PRIVATE, &slots[i]);
    }
    while (atomic_load (&self->ok) < self->opts.total && !atomic_load (&self->failed)) {
        int64_t now = rt_test_now_ms ();
        int running = 0, queued;
        CURLMsg *msg;
        for (i = 0; i < n; i++) {
            if (slots[i].running)
                continue;
            if (!slots[i].id && next < self->opts.total)
                slots[i].id = self->opts.first + next++;
            if (slots[i].id && now >= slots[i].not_before)
                s_request (self, multi, &slots[i]);
        }
        if (curl_multi_perform (multi, &running) != CURLM_OK ||
            curl_multi_poll (multi, NULL, 0, 10, NULL) != CURLM_OK)
            atomic_store (&self->failed, 1);
        msg = curl_multi_info_read (multi, &queued);
        while (msg) {
            if (msg->msg == CURLMSG_DONE) {
                s_slot_t *slot = NULL;
                curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
                s_finished (self, multi, slot, msg->data.result);
            }
            msg = curl_multi_info_read (multi, &queued);
        }
    }
cleanup:
    for (i = 0; slots && i < n; i++) {
        if (slots[i].running)
            curl_multi_remove_handle (multi, slots[i].curl);
        curl_easy_cleanup (slots[i].curl);
    }
    free (slots);
    curl_multi_cleanup (multi);
    return NULL;
}

rt_test_burst_t *
rt_test_burst_start (const rt_test_burst_opts_t *opts)
{
    rt_test_burst_t *self = calloc (1, sizeof *self);
    assert_non_null (self);
    assert_non_null (opts->url);
    assert_non_null (opts->body);
    assert_true (opts->first > 0 && opts->total >= 0 && opts->in_flight > 0);
    self->opts = *opts;
    self->url = strdup (opts->url);
    assert_non_null (self->url);
    for (size_t h = 0; opts->headers && opts->headers[h]; h++) {
        struct curl_slist *more = curl_slist_append (self->headers, opts->headers[h]);
        assert_non_null (more);
        self->headers = more;
    }
    self->opts.url = self->url;
    self->opts.headers = NULL;
    self->answered = calloc ((size_t)opts->total + 1, sizeof (int));
    assert_non_null (self->answered);
    assert_int_equal (pthread_create (&self->thread, NULL, s_send, self), 0);
    return self;
}

int
rt_test_burst_ok (rt_test_burst_t *self)
{
    return atomic_load (&self->ok);
}

void
rt_test_burst_wait (rt_test_burst_t *self, int ok)
{
    while (atomic_load (&self->ok) < ok && !atomic_load (&self->failed))
        usleep (2000);
}

void
rt_test_burst_join (rt_test_burst_t *self)
{
    pthread_join (self->thread, NULL);
    assert_int_equal (atomic_load (&self->failed), 0);
    assert_int_equal (atomic_load (&self->ok), self->opts.total);
}

int
rt_test_burst_answered (const rt_test_burst_t *self, int id)
{
    if (id < self->opts.first || id - self->opts.first >= self->opts.total)
        return 0;
    return self->answered[id - self->opts.first];
}

void
rt_test_burst_destroy (rt_test_burst_t **self_p)
{
    rt_test_burst_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    curl_slist_free_all (self->headers);
    free (self->url);
    free (self->answered);
    free (self);
    *self_p = NULL;
}
