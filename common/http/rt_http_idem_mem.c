/*
 * rt_http_idem_mem: the idempotency store in memory (see rt_http_idem.h),
 * and what every store shares (its head, the answer's copies).
 *
 * One mutex over a hash table of records and a list of the same records
 * in the order they were last written. Records are written with an expiry
 * of now plus a constant (lock_ms for a reservation, ttl_ms for an
 * answer), so the list is close to expiry order: each call purges from
 * its front while the front has expired, at most S_PURGE_PER_CALL
 * records, and at max_entries the front goes whatever its age (a
 * reservation so dropped only loses its 409: its answer is not stored).
 * The table doubles when it holds twice as many records as buckets.
 */
#include "rt_http_idem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_LOCK_MS     60000LL
#define S_DEFAULT_TTL_MS      (24LL * 3600 * 1000)
#define S_DEFAULT_MAX_ENTRIES 100000
#define S_PURGE_PER_CALL      16
#define S_INITIAL_BUCKETS     64

typedef struct s_record_t s_record_t;

/* One (scope, key). */
struct s_record_t {
    char *id;                                          /* scope, NUL, key; owned */
    size_t id_len;                                     /* bytes of id, both NULs included */
    uint64_t hash;                                     /* of id */
    uint8_t fingerprint[RT_HTTP_IDEM_FINGERPRINT_LEN]; /* its request's */
    bool done;                                         /* answered: response is set */
    char token[RT_HTTP_IDEM_TOKEN_LEN];                /* the reservation's id */
    int64_t expires_ms;                                /* wall clock; then it is as if absent */
    rt_http_idem_response_t response;                  /* owned; when done */
    s_record_t *chain;                                 /* the bucket's next */
    s_record_t *older, *newer;                         /* the write-order list */
};

typedef struct {
    rt_http_idem_store_t head; /* ops and times */
    pthread_mutex_t lock;      /* guards everything below */
    s_record_t **buckets;      /* the table */
    size_t nbuckets;           /* a power of two */
    size_t count;              /* records held */
    size_t max_entries;        /* the cap */
    s_record_t *oldest;        /* front of the write-order list */
    s_record_t *newest;        /* its back */
    uint64_t next_token;       /* tokens are a counter */
} s_store_t;

void
rt_http_idem_store_init (rt_http_idem_store_t *store, const rt_http_idem_ops_t *ops,
                         const rt_http_idem_config_t *config)
{
    store->ops = ops;
    store->lock_ms = config && config->lock_ms > 0 ? config->lock_ms : S_DEFAULT_LOCK_MS;
    store->ttl_ms = config && config->ttl_ms > 0 ? config->ttl_ms : S_DEFAULT_TTL_MS;
}

void
rt_http_idem_store_destroy (rt_http_idem_store_t **store_p)
{
    if (!store_p || !*store_p)
        return;
    (*store_p)->ops->destroy (*store_p);
    *store_p = NULL;
}

void
rt_http_idem_response_free (rt_http_idem_response_t *r)
{
    if (!r)
        return;
    free (r->content_type);
    free (r->headers);
    free (r->body);
    memset (r, 0, sizeof *r);
}

/* A copy of n bytes and a NUL; never NULL for n 0 unless out of memory. */
static char *
s_dup (const char *p, size_t n)
{
    char *copy = malloc (n + 1);
    if (!copy)
        return NULL;
    if (n)
        memcpy (copy, p, n);
    copy[n] = '\0';
    return copy;
}

int
rt_http_idem_response_copy (rt_http_idem_response_t *dst, const rt_http_idem_response_t *src)
{
    memset (dst, 0, sizeof *dst);
    dst->status = src->status;
    dst->headers_len = src->headers_len;
    dst->body_len = src->body_len;
    dst->content_type = src->content_type ? strdup (src->content_type) : NULL;
    dst->headers = s_dup (src->headers, src->headers_len);
    dst->body = s_dup (src->body, src->body_len);
    if ((src->content_type && !dst->content_type) || !dst->headers || !dst->body) {
        rt_http_idem_response_free (dst);
        return -1;
    }
    return 0;
}

/* --- the table --- */

static uint64_t
s_hash (const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

static s_record_t **
s_slot (s_store_t *self, const char *id, size_t id_len, uint64_t hash)
{
    s_record_t **slot = &self->buckets[hash & (self->nbuckets - 1)];
    while (*slot && !((*slot)->hash == hash && (*slot)->id_len == id_len &&
                      memcmp ((*slot)->id, id, id_len) == 0))
        slot = &(*slot)->chain;
    return slot;
}

static void
s_list_unlink (s_store_t *self, s_record_t *r)
{
    if (r->older)
        r->older->newer = r->newer;
    else
        self->oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        self->newest = r->older;
    r->older = r->newer = NULL;
}

static void
s_list_append (s_store_t *self, s_record_t *r)
{
    r->older = self->newest;
    r->newer = NULL;
    if (self->newest)
        self->newest->newer = r;
    else
        self->oldest = r;
    self->newest = r;
}

static void
s_record_free (s_record_t *r)
{
    rt_http_idem_response_free (&r->response);
    free (r->id);
    free (r);
}

/* Takes r out of the table and the list and frees it. */
static void
s_remove (s_store_t *self, s_record_t *r)
{
    s_record_t **slot = s_slot (self, r->id, r->id_len, r->hash);
    *slot = r->chain;
    s_list_unlink (self, r);
    self->count--;
    s_record_free (r);
}

static void
s_purge (s_store_t *self, int64_t now_ms)
{
    for (int i = 0; i < S_PURGE_PER_CALL && self->oldest; i++) {
        if (self->oldest->expires_ms > now_ms && self->count < self->max_entries)
            break;
        s_remove (self, self->oldest);
    }
}

/* Doubles the table; on failure it stays as it is (only slower). */
static void
s_grow (s_store_t *self)
{
    size_t n = self->nbuckets * 2;
    s_record_t **buckets = calloc (n, sizeof *buckets);
    if (!buckets)
        return;
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_record_t *r = self->buckets[i];
        while (r) {
            s_record_t *next = r->chain;
            r->chain = buckets[r->hash & (n - 1)];
            buckets[r->hash & (n - 1)] = r;
            r = next;
        }
    }
    free (self->buckets);
    self->buckets = buckets;
    self->nbuckets = n;
}

/* "scope\0key\0" into a new buffer. */
static char *
s_id (const rt_http_idem_key_t *key, size_t *id_len)
{
    size_t s = strlen (key->scope), k = strlen (key->key);
    char *id = malloc (s + k + 2);
    if (!id)
        return NULL;
    memcpy (id, key->scope, s + 1);
    memcpy (id + s + 1, key->key, k + 1);
    *id_len = s + k + 2;
    return id;
}

/* The live record of key, or NULL (an expired one is dropped). */
static s_record_t *
s_find (s_store_t *self, const rt_http_idem_key_t *key, char *id, size_t id_len, uint64_t hash)
{
    s_record_t *r = *s_slot (self, id, id_len, hash);
    if (r && r->expires_ms <= key->now_ms) {
        s_remove (self, r);
        r = NULL;
    }
    return r;
}

/* --- the operations --- */

static rt_http_idem_state_t
s_begin (rt_http_idem_store_t *store, rt_http_idem_key_t *key, rt_http_idem_response_t *stored)
{
    s_store_t *self = (s_store_t *)store;
    rt_http_idem_state_t state = RT_HTTP_IDEM_ERROR;
    size_t id_len;
    char *id = s_id (key, &id_len);
    uint64_t hash;
    s_record_t *r;
    if (!id)
        return RT_HTTP_IDEM_ERROR;
    hash = s_hash (id, id_len);
    pthread_mutex_lock (&self->lock);
    s_purge (self, key->now_ms);
    r = s_find (self, key, id, id_len, hash);
    if (r) {
        if (memcmp (r->fingerprint, key->fingerprint, sizeof r->fingerprint) != 0)
            state = RT_HTTP_IDEM_MISMATCH;
        else if (!r->done)
            state = RT_HTTP_IDEM_IN_PROGRESS;
        else if (rt_http_idem_response_copy (stored, &r->response) == 0)
            state = RT_HTTP_IDEM_REPLAY;
        goto done;
    }
    r = calloc (1, sizeof *r);
    if (!r)
        goto done;
    r->id = id;
    id = NULL;
    r->id_len = id_len;
    r->hash = hash;
    memcpy (r->fingerprint, key->fingerprint, sizeof r->fingerprint);
    r->expires_ms = key->now_ms + store->lock_ms;
    snprintf (r->token, sizeof r->token, "%llu", (unsigned long long)++self->next_token);
    snprintf (key->token, sizeof key->token, "%s", r->token);
    *s_slot (self, r->id, r->id_len, hash) = r;
    s_list_append (self, r);
    self->count++;
    if (self->count > 2 * self->nbuckets)
        s_grow (self);
    state = RT_HTTP_IDEM_NEW;
done:
    pthread_mutex_unlock (&self->lock);
    free (id);
    return state;
}

/* The reservation key->token still holds, or NULL. */
static s_record_t *
s_reservation (s_store_t *self, const rt_http_idem_key_t *key, char *id, size_t id_len)
{
    s_record_t *r = s_find (self, key, id, id_len, s_hash (id, id_len));
    return r && !r->done && strcmp (r->token, key->token) == 0 ? r : NULL;
}

static int
s_complete (rt_http_idem_store_t *store, const rt_http_idem_key_t *key,
            const rt_http_idem_response_t *response)
{
    s_store_t *self = (s_store_t *)store;
    rt_http_idem_response_t copy;
    size_t id_len;
    char *id = s_id (key, &id_len);
    s_record_t *r;
    if (!id)
        return -1;
    /* Copied outside the lock: a body may be large. */
    if (rt_http_idem_response_copy (&copy, response) != 0) {
        free (id);
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    r = s_reservation (self, key, id, id_len);
    if (r) {
        r->done = true;
        r->response = copy;
        memset (&copy, 0, sizeof copy);
        r->expires_ms = key->now_ms + store->ttl_ms;
        s_list_unlink (self, r);
        s_list_append (self, r);
    }
    pthread_mutex_unlock (&self->lock);
    rt_http_idem_response_free (&copy);
    free (id);
    return 0;
}

static int
s_release (rt_http_idem_store_t *store, const rt_http_idem_key_t *key)
{
    s_store_t *self = (s_store_t *)store;
    size_t id_len;
    char *id = s_id (key, &id_len);
    s_record_t *r;
    if (!id)
        return -1;
    pthread_mutex_lock (&self->lock);
    r = s_reservation (self, key, id, id_len);
    if (r)
        s_remove (self, r);
    pthread_mutex_unlock (&self->lock);
    free (id);
    return 0;
}

static void
s_destroy (rt_http_idem_store_t *store)
{
    s_store_t *self = (s_store_t *)store;
    while (self->oldest)
        s_remove (self, self->oldest);
    free (self->buckets);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

static const rt_http_idem_ops_t s_ops = {s_begin, s_complete, s_release, s_destroy};

rt_http_idem_store_t *
rt_http_idem_memory_new (const rt_http_idem_config_t *config)
{
    s_store_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    rt_http_idem_store_init (&self->head, &s_ops, config);
    self->max_entries = config && config->max_entries ? config->max_entries : S_DEFAULT_MAX_ENTRIES;
    self->nbuckets = S_INITIAL_BUCKETS;
    self->buckets = calloc (self->nbuckets, sizeof *self->buckets);
    if (!self->buckets) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    return &self->head;
}
