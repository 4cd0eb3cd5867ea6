/*
 * rt_test_later: late answers of the fake servers (rt_test_later.h).
 */
#include "rt_test_later.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

typedef struct s_reply_t {
    rt_test_later_t *owner;   /* the set it is in */
    rt_http_request_t *req;   /* the deferred request */
    rt_http_worker_t *worker; /* its worker */
    struct event *timer;      /* fires at the delay; freed once fired or flushed */
    int status;               /* the answer */
    char content_type[96];    /* "" for none */
    char *body;               /* owned */
    size_t len;               /* its length */
    char retry_after[16];     /* "" for none */
    bool done;                /* answered (set on the worker, under the lock) */
    struct s_reply_t *next;   /* the set's list */
} s_reply_t;

struct rt_test_later_t {
    const char *name;     /* the fake's, for failures */
    pthread_mutex_t lock; /* guards the list and every reply's done */
    s_reply_t *replies;   /* sent or not, freed at destroy */
};

static void
s_die (const rt_test_later_t *self, const char *what)
{
    fprintf (stderr, "%s: %s\n", self->name, what);
    abort ();
}

rt_test_later_t *
rt_test_later_new (const char *name)
{
    rt_test_later_t *self = calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "%s: out of memory\n", name);
        abort ();
    }
    self->name = name;
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void
rt_test_later_send (rt_http_request_t *req, int status, const char *content_type, const char *body,
                    size_t len, const char *retry_after)
{
    if (retry_after && retry_after[0])
        rt_http_header_add (req, "Retry-After", retry_after);
    rt_http_reply (req, status, content_type && content_type[0] ? content_type : NULL,
                   body ? body : "", body ? len : 0);
}

/* Sends a late reply, on its worker's thread, once. */
static void
s_reply_now (s_reply_t *r)
{
    bool done;
    pthread_mutex_lock (&r->owner->lock);
    done = r->done;
    r->done = true;
    pthread_mutex_unlock (&r->owner->lock);
    if (done)
        return;
    event_free (r->timer);
    r->timer = NULL;
    rt_test_later_send (r->req, r->status, r->content_type, r->body, r->len, r->retry_after);
}

static void
s_on_delay (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_reply_now (arg);
}

static void
s_on_flush (void *arg)
{
    s_reply_now (arg);
}

void
rt_test_later_reply (rt_test_later_t *self, rt_http_request_t *req, int delay_ms, int status,
                     const char *content_type, const char *body, size_t len,
                     const char *retry_after)
{
    s_reply_t *r = calloc (1, sizeof *r);
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    if (!r)
        s_die (self, "out of memory");
    r->owner = self;
    r->req = req;
    r->worker = rt_http_request_worker (req);
    r->status = status;
    snprintf (r->content_type, sizeof r->content_type, "%s", content_type ? content_type : "");
    snprintf (r->retry_after, sizeof r->retry_after, "%s", retry_after ? retry_after : "");
    r->body = malloc (len + 1);
    if (!r->body)
        s_die (self, "out of memory");
    if (len)
        memcpy (r->body, body, len);
    r->body[len] = '\0';
    r->len = len;
    r->timer = evtimer_new (rt_http_base (req), s_on_delay, r);
    if (!r->timer)
        s_die (self, "no timer");
    rt_http_defer (req);
    pthread_mutex_lock (&self->lock);
    r->next = self->replies;
    self->replies = r;
    pthread_mutex_unlock (&self->lock);
    evtimer_add (r->timer, &tv);
}

void
rt_test_later_flush (rt_test_later_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    for (s_reply_t *r = self->replies; r; r = r->next)
        if (!r->done)
            rt_http_worker_post (r->worker, s_on_flush, r);
    pthread_mutex_unlock (&self->lock);
}

void
rt_test_later_destroy (rt_test_later_t **self_p)
{
    rt_test_later_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->replies) {
        s_reply_t *next = self->replies->next;
        free (self->replies->body);
        free (self->replies);
        self->replies = next;
    }
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}
