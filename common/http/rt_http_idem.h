/*
 * rt_http_idem: where rt_http_server keeps what Idempotency-Key replay
 * needs (see rt_http_route_idempotent in rt_http_server.h), behind one
 * table of functions, so a single process keeps its keys in memory and
 * replicas share theirs in PostgreSQL (rt_http_idem_pg.h).
 *
 * A store holds one record per (scope, key): the request's fingerprint,
 * and either a reservation (its first request is running) or the
 * response that request got. Every time comes from the caller (the key's
 * now_ms, rt_clock's wall clock), never from the store's own clock, so a
 * test moves the time of every replica at once. The rules every store
 * follows, in begin:
 *
 *   - no record, or one past its expiry: the key is reserved for this
 *     request (NEW, with a token of its own), to expire lock_ms later,
 *     which is how a reservation left by a crashed process ends;
 *   - a record of another fingerprint: MISMATCH;
 *   - a reservation of this fingerprint: IN_PROGRESS;
 *   - a response of this fingerprint: REPLAY, with the response copied.
 *
 * complete stores the response of a reservation (to expire ttl_ms later)
 * and release drops a reservation; both act only while the reservation
 * is still the token's: one taken over after lock_ms is no longer the
 * first request's to complete. A store purges expired records itself,
 * a bounded number per call.
 *
 * Threads: the server calls a store from every worker thread at once; a
 * store is thread-safe, and blocks no longer than one short exchange with
 * where it keeps its records.
 */
#ifndef RT_HTTP_IDEM_H
#define RT_HTTP_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_HTTP_IDEM_FINGERPRINT_LEN 32 /* SHA-256 */
#define RT_HTTP_IDEM_TOKEN_LEN       40 /* room for a token and its NUL */

typedef struct rt_http_idem_store_t rt_http_idem_store_t;

/* What begin found. */
typedef enum {
    RT_HTTP_IDEM_NEW = 0,     /* reserved for this request: run it */
    RT_HTTP_IDEM_REPLAY,      /* answered before: *stored holds the answer */
    RT_HTTP_IDEM_IN_PROGRESS, /* reserved by a request still running */
    RT_HTTP_IDEM_MISMATCH,    /* the key came with another request */
    RT_HTTP_IDEM_ERROR        /* the store failed (logged) */
} rt_http_idem_state_t;

/* One client's key, as the server asks about it. */
typedef struct {
    const char *scope; /* "<server>:<principal>": keys of different clients never meet */
    const char *key;   /* the Idempotency-Key, 1 to 255 visible ASCII bytes */
    uint8_t fingerprint[RT_HTTP_IDEM_FINGERPRINT_LEN]; /* SHA-256 of method, target, body */
    int64_t now_ms;                                    /* rt_clock_now_ms at the question */
    char token[RT_HTTP_IDEM_TOKEN_LEN]; /* set by a NEW begin: the reservation's id, which
                                           complete and release name */
} rt_http_idem_key_t;

/* A stored answer; the strings are owned by whoever holds the struct. */
typedef struct {
    int status;         /* the HTTP status (under 500: 5xx answers are not stored) */
    char *content_type; /* its Content-Type; NULL when none */
    char *headers;      /* the header lines the handler added, "Name: value\r\n" each */
    size_t headers_len; /* their bytes */
    char *body;         /* the body */
    size_t body_len;    /* its bytes */
} rt_http_idem_response_t;

/* What a store does; see the file head for the rules. */
typedef struct {
    /* Reserves key->key for key->fingerprint, or says what holds it. On
     * REPLAY fills *stored (free it with rt_http_idem_response_free). */
    rt_http_idem_state_t (*begin) (rt_http_idem_store_t *store, rt_http_idem_key_t *key,
                                   rt_http_idem_response_t *stored);
    /* Stores the answer of the reservation key->token, to be replayed
     * until key->now_ms + ttl_ms. 0, or -1 when the store failed. */
    int (*complete) (rt_http_idem_store_t *store, const rt_http_idem_key_t *key,
                     const rt_http_idem_response_t *response);
    /* Drops the reservation key->token, so a retry runs again. 0 or -1. */
    int (*release) (rt_http_idem_store_t *store, const rt_http_idem_key_t *key);
    /* Frees the store (rt_http_idem_store_destroy). */
    void (*destroy) (rt_http_idem_store_t *store);
} rt_http_idem_ops_t;

/* The head of every store; an implementation's own struct starts with it. */
struct rt_http_idem_store_t {
    const rt_http_idem_ops_t *ops; /* the implementation */
    int64_t lock_ms;               /* a reservation older than this is taken over */
    int64_t ttl_ms;                /* an answer is replayed this long */
};

/* Settings; a field left 0 takes the default in brackets. */
typedef struct {
    int64_t lock_ms;    /* how long a reservation holds its key [60 s] */
    int64_t ttl_ms;     /* how long an answer is replayed [24 h] */
    size_t max_entries; /* memory store: records kept; more: the oldest go [100000] */
} rt_http_idem_config_t;

/* Fills store's head with ops and config's times, defaults applied. */
void rt_http_idem_store_init (rt_http_idem_store_t *store, const rt_http_idem_ops_t *ops,
                              const rt_http_idem_config_t *config);

/* A store in this process's memory, thread-safe: for tests and a daemon
 * that runs one replica. `config` may be NULL. NULL when out of memory. */
rt_http_idem_store_t *rt_http_idem_memory_new (const rt_http_idem_config_t *config);

/* Frees a store; it must outlive the servers that use it. Safe on NULL;
 * sets *store_p NULL. */
void rt_http_idem_store_destroy (rt_http_idem_store_t **store_p);

/* Frees the strings of r and zeroes it. Safe on a zeroed struct. */
void rt_http_idem_response_free (rt_http_idem_response_t *r);

/* Copies src into dst (owned strings); -1 when out of memory (dst zeroed). */
int rt_http_idem_response_copy (rt_http_idem_response_t *dst, const rt_http_idem_response_t *src);

#endif
