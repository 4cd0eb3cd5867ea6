/*
 * rt_test_sse: an event stream client on a thread (see rt_test_sse.h).
 */
#include "rt_test_sse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static size_t
s_body (char *data, size_t size, size_t n, void *arg)
{
    rt_test_sse_t *c = arg;
    size_t len = size * n;
    char *grown;
    pthread_mutex_lock (&c->lock);
    grown = realloc (c->buf, c->len + len + 1);
    if (grown) {
        c->buf = grown;
        memcpy (c->buf + c->len, data, len);
        c->len += len;
        c->buf[c->len] = '\0';
    }
    pthread_mutex_unlock (&c->lock);
    return grown ? len : 0;
}

/* libcurl asks every so often: a non-zero answer ends the exchange. */
static int
s_progress (void *arg, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    rt_test_sse_t *c = arg;
    (void)a;
    (void)b;
    (void)c2;
    (void)d;
    return atomic_load (&c->stop) ? 1 : 0;
}

static void *
s_run (void *arg)
{
    rt_test_sse_t *c = arg;
    char *ct = NULL;
    c->result = curl_easy_perform (c->curl);
    curl_easy_getinfo (c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    curl_easy_getinfo (c->curl, CURLINFO_CONTENT_TYPE, &ct);
    snprintf (c->type, sizeof c->type, "%s", ct ? ct : "");
    atomic_store (&c->done, true);
    return NULL;
}

rt_test_sse_t *
rt_test_sse_open (int port, const char *key, const char *last, const char *query)
{
    rt_test_sse_t *c = calloc (1, sizeof *c);
    char h[256];
    assert_non_null (c);
    pthread_mutex_init (&c->lock, NULL);
    snprintf (c->url, sizeof c->url, "http://127.0.0.1:%d/v1/stream%s%s", port, query ? "?" : "",
              query ? query : "");
    c->curl = curl_easy_init ();
    assert_non_null (c->curl);
    snprintf (h, sizeof h, "Authorization: Bearer %s", key);
    c->hdrs = curl_slist_append (c->hdrs, h);
    c->hdrs = curl_slist_append (c->hdrs, "Accept: text/event-stream");
    if (last) {
        snprintf (h, sizeof h, "Last-Event-ID: %s", last);
        c->hdrs = curl_slist_append (c->hdrs, h);
    }
    curl_easy_setopt (c->curl, CURLOPT_URL, c->url);
    curl_easy_setopt (c->curl, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt (c->curl, CURLOPT_WRITEFUNCTION, s_body);
    curl_easy_setopt (c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt (c->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (c->curl, CURLOPT_XFERINFOFUNCTION, s_progress);
    curl_easy_setopt (c->curl, CURLOPT_XFERINFODATA, c);
    assert_int_equal (pthread_create (&c->thread, NULL, s_run, c), 0);
    return c;
}

void
rt_test_sse_end (rt_test_sse_t *c)
{
    if (c->joined)
        return;
    atomic_store (&c->stop, true);
    pthread_join (c->thread, NULL);
    c->joined = true;
}

void
rt_test_sse_close (rt_test_sse_t *c)
{
    rt_test_sse_end (c);
    curl_easy_cleanup (c->curl);
    curl_slist_free_all (c->hdrs);
    pthread_mutex_destroy (&c->lock);
    free (c->buf);
    free (c);
}

char *
rt_test_sse_body (rt_test_sse_t *c)
{
    char *copy;
    pthread_mutex_lock (&c->lock);
    copy = strdup (c->buf ? c->buf : "");
    pthread_mutex_unlock (&c->lock);
    assert_non_null (copy);
    return copy;
}

void
rt_test_sse_events_free (rt_test_sse_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref (evs[i].data);
    free (evs);
}

rt_test_sse_event_t *
rt_test_sse_events (rt_test_sse_t *c, size_t *n)
{
    rt_test_sse_event_t *evs = NULL;
    char *copy = rt_test_sse_body (c), *p, *end;
    *n = 0;
    for (p = copy; (end = strstr (p, "\n\n")) != NULL; p = end + 2) {
        rt_test_sse_event_t ev = {0};
        bool any = false;
        char *save = NULL;
        *end = '\0';
        for (char *line = strtok_r (p, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
            if (strncmp (line, "id: ", 4) == 0)
                snprintf (ev.id, sizeof ev.id, "%s", line + 4);
            else if (strncmp (line, "event: ", 7) == 0) {
                snprintf (ev.kind, sizeof ev.kind, "%s", line + 7);
                any = true;
            } else if (strncmp (line, "data: ", 6) == 0)
                ev.data = json_loads (line + 6, 0, NULL);
        }
        if (!any) {
            json_decref (ev.data);
            continue;
        }
        evs = realloc (evs, (*n + 1) * sizeof *evs);
        assert_non_null (evs);
        evs[(*n)++] = ev;
    }
    free (copy);
    return evs;
}
