/*
 * rt_db_local: per-thread connections (see rt_db_local.h for the contract).
 *
 * A thread finds its slot through a pthread key, without a lock; the list
 * of every slot (for destroy) is the only shared state besides the two
 * counters health reads, and the mutex guards the list alone. A slot's
 * fields are written by its own thread only, so a request takes no lock
 * once its thread has a connection. The key has no destructor: a thread
 * that ends leaves its slot in the list, closed at destroy, as an HTTP
 * server's workers end only when the server stops.
 *
 * The counters move when a slot changes state (up, down), not at every
 * call; the log follows the count of threads down: a warning when it
 * leaves 0 (the first failure of a streak, with its reason), one line
 * when it is back at 0. A request never logs otherwise, so a database
 * away under load costs the log two lines, not one per request.
 */
#include "rt_db_local.h"

#include "rt_clock.h"
#include "rt_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Where a thread's connection stands, as of that thread's last call. */
typedef enum {
    S_NEW = 0, /* never tried */
    S_UP,      /* the last call had it up */
    S_DOWN     /* the last attempt failed */
} s_state_t;

/* One thread's connection. */
typedef struct s_slot_t {
    rt_db_t *db;           /* owned; set up */
    int64_t user;          /* the caller's own value (rt_db_local_get) */
    int64_t retry_ms;      /* while S_DOWN: no attempt before this (the set's clock) */
    s_state_t state;       /* written by its thread only */
    struct s_slot_t *next; /* the set's list, for destroy */
} s_slot_t;

struct rt_db_local_t {
    char *dsn;                  /* owned */
    char *app;                  /* owned: application_name, and the log's "connection" */
    rt_db_local_setup_fn setup; /* run on each new handle; may be NULL */
    void *arg;                  /* setup's */
    int reconnect_ms;           /* between one thread's attempts */
    pthread_key_t key;          /* each thread's s_slot_t */
    pthread_mutex_t lock;       /* guards slots */
    s_slot_t *slots;            /* every thread's */
    atomic_int up;              /* slots S_UP */
    atomic_int down;            /* slots S_DOWN: healthy while 0 */
};

rt_db_local_t *
rt_db_local_new (const char *dsn, const char *application_name, rt_db_local_setup_fn setup,
                 void *arg, int reconnect_ms, char *err, size_t errlen)
{
    rt_db_local_t *self;
    if (reconnect_ms <= 0) {
        rt_errf (err, errlen, "reconnect_ms must be > 0");
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    if (pthread_key_create (&self->key, NULL) != 0) {
        free (self);
        self = NULL;
        goto oom;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->dsn = strdup (dsn ? dsn : "");
    self->app = strdup (application_name ? application_name : "retain");
    if (!self->dsn || !self->app)
        goto oom;
    self->setup = setup;
    self->arg = arg;
    self->reconnect_ms = reconnect_ms;
    atomic_init (&self->up, 0);
    atomic_init (&self->down, 0);
    return self;
oom:
    rt_db_local_destroy (&self);
    rt_errf (err, errlen, "out of memory");
    return NULL;
}

void
rt_db_local_destroy (rt_db_local_t **self_p)
{
    rt_db_local_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->slots) {
        s_slot_t *s = self->slots;
        self->slots = s->next;
        rt_db_destroy (&s->db);
        free (s);
    }
    pthread_key_delete (self->key);
    pthread_mutex_destroy (&self->lock);
    free (self->dsn);
    free (self->app);
    free (self);
    *self_p = NULL;
}

/* This thread's new slot, set up and listed; NULL when out of memory or
 * setup failed (nothing kept: the next call tries again). */
static s_slot_t *
s_slot_new (rt_db_local_t *self)
{
    s_slot_t *s = calloc (1, sizeof *s);
    if (!s)
        return NULL;
    s->db = rt_db_new (self->dsn, self->app);
    /* Before the first connect: rt_db prepares what setup registers on
     * that connection and on every later one. */
    if (!s->db || (self->setup && self->setup (s->db, self->arg) != 0) ||
        pthread_setspecific (self->key, s) != 0) {
        rt_db_destroy (&s->db);
        free (s);
        return NULL;
    }
    pthread_mutex_lock (&self->lock);
    s->next = self->slots;
    self->slots = s;
    pthread_mutex_unlock (&self->lock);
    return s;
}

/* Moves s to state, keeping the counts and logging a streak's ends. */
static void
s_set_state (rt_db_local_t *self, s_slot_t *s, s_state_t state)
{
    s_state_t was = s->state;
    if (was == state)
        return;
    s->state = state;
    if (was == S_UP)
        atomic_fetch_sub (&self->up, 1);
    if (was == S_DOWN && atomic_fetch_sub (&self->down, 1) == 1)
        rt_log (RT_LOG_INFO, "database reachable again", rt_log_str ("connection", self->app));
    if (state == S_UP)
        atomic_fetch_add (&self->up, 1);
    if (state == S_DOWN && atomic_fetch_add (&self->down, 1) == 0)
        rt_log (RT_LOG_WARN, "database unavailable", rt_log_str ("connection", self->app),
                rt_log_str ("error", rt_db_error (s->db)));
}

rt_db_t *
rt_db_local_get_at (rt_db_local_t *self, int64_t now_ms, int64_t **user)
{
    s_slot_t *s = pthread_getspecific (self->key);
    if (user)
        *user = NULL;
    if (!s) {
        s = s_slot_new (self);
        if (!s)
            return NULL;
    }
    if (!rt_db_is_ok (s->db)) {
        /* A clock moved back by more than reconnect_ms since the failure
         * leaves retry_ms far ahead: that does not count as a wait. */
        if (s->state == S_DOWN && now_ms < s->retry_ms &&
            s->retry_ms - now_ms <= self->reconnect_ms)
            return NULL;
        if (rt_db_connect (s->db) != 0) {
            s->retry_ms = now_ms + self->reconnect_ms;
            s_set_state (self, s, S_DOWN);
            return NULL;
        }
    }
    s_set_state (self, s, S_UP);
    if (user)
        *user = &s->user;
    return s->db;
}

rt_db_t *
rt_db_local_get (rt_db_local_t *self, int64_t **user)
{
    return rt_db_local_get_at (self, rt_clock_mono_ms (), user);
}

bool
rt_db_local_healthy (const rt_db_local_t *self)
{
    return atomic_load (&self->down) == 0;
}

void
rt_db_local_stats (const rt_db_local_t *self, int *up, int *down)
{
    if (up)
        *up = atomic_load (&self->up);
    if (down)
        *down = atomic_load (&self->down);
}

const char *
rt_db_local_error (rt_db_local_t *self)
{
    const s_slot_t *s = pthread_getspecific (self->key);
    return s ? rt_db_error (s->db) : "no connection: its setup failed or memory ran out";
}
