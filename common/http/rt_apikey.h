/*
 * rt_apikey: the API keys of every authenticated API of retain (routerd's
 * operator API, loyaltyd's shop API): made and shown once, stored hashed,
 * checked by rt_http_server's auth hook.
 *
 * A token is `rk_<12 base32>_<52 base32>` (lower case, RFC 4648's
 * alphabet): the first part, "rk_" and 12 letters, is the key's id, public
 * (in listings, logs, the table's primary key); the rest encodes 32 bytes
 * from getrandom(2), the secret. The table (apikey.keys, a migration set of
 * its own under common/http/sql/apikey/) keeps the id, the service the key
 * opens ("router", "loyalty"), the principal it authenticates (an operator
 * id, a shop), its role, and the SHA-256 of the secret part, never the
 * token. SHA-256 and not a slow KDF (bcrypt, argon2): a slow hash makes
 * guessing a *low-entropy* password expensive; a 256-bit random secret
 * cannot be guessed whatever the hash costs, and a fast hash keeps the
 * check a microsecond on the request path. A check looks the id up (an
 * index hit) and compares the hashes in constant time.
 *
 * Rotation keeps the id and replaces the secret: the old token stops
 * working (within the hook's cache time), the new one works within a
 * second (a hook holding the old row reads it again when a secret does
 * not match it, at most once a second per key), and listings and logs
 * keep naming the same key. A revoked key stays revoked
 * (rotation refuses it); making a new one is rt_apikey_create.
 *
 * Administration (create, rotate, revoke, list) runs on the caller's
 * connection, one statement each (retainctl's one-shot commands), with
 * times from rt_clock.
 *
 * The hook (rt_apikey_auth_*): on ALLOW the principal it writes is
 * "<principal>:<role>" ("op-17:supervisor"), which rt_apikey_principal_split
 * takes apart; a handler needs no other lookup, and the Idempotency-Key
 * scope follows the key's holder. Every refusal is 401, to the client
 * alike (no word on why): a missing, malformed or unknown token, a wrong
 * secret, a revoked or expired key, a key of another service, or a key
 * store that cannot be reached. Each is counted in
 * retain_apikey_refused_total{service,reason} (reason: missing, malformed,
 * unknown, wrong_secret, revoked, expired, other_service, unreachable) and
 * but for "missing" logged (with the key id when the token had a
 * well-formed one, never the token), at most 20 lines a second per hook.
 *
 * The hook keeps what the database said about a key (the row, not the
 * verdict on a secret) for cache_ms, in a bounded table shared by the
 * workers under a mutex: a revocation or rotation takes effect within
 * cache_ms, never later, and a busy key costs one indexed query per
 * cache_ms per process. Unknown ids are kept too (as unknown), so a flood
 * of made-up ids costs the database nothing more. last_used_at is written
 * at most once a minute per key and process.
 *
 * Database down: the hook can only answer 401 or 403 (rt_http_auth_t), so
 * a key whose cached row is fresh keeps working through an outage shorter
 * than cache_ms, and every other request gets 401 with the log line "key
 * store unreachable" (reason "unreachable"): a stale row is never used,
 * since that would let a revoked key in for as long as the outage lasts.
 * Through rt_db_local, each worker thread has a connection of its own,
 * made at its first miss, reconnected at most once a second, its
 * statements prepared once per connection, so an outage costs a worker one
 * failed connect a second, never a wait per request.
 */
#ifndef RT_APIKEY_H
#define RT_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_db.h"
#include "rt_http_server.h"
#include "rt_metrics.h"

/* Bytes of a key id ("rk_" and 12 letters) and of a token, the NUL
 * included. */
#define RT_APIKEY_ID_SIZE    16
#define RT_APIKEY_TOKEN_SIZE 72

/* Longest service, principal and role, in bytes without the NUL. A
 * service is lower-case letters, digits, '-' and '_' (a metric label);
 * a principal and a role are visible ASCII (0x21-0x7E), a role without
 * ':'. */
#define RT_APIKEY_SERVICE_MAX   32
#define RT_APIKEY_PRINCIPAL_MAX 160
#define RT_APIKEY_ROLE_MAX      64

/* Applies what is missing of the apikey schema's migrations on db (see
 * rt_migrate.h). The number applied (>= 0), or -1 with err filled. */
int rt_apikey_migrate (rt_db_t *db, char *err, size_t errlen);

/* Makes a key of `service` for `principal` with `role`, expiring at
 * expires_ms (unix ms; 0: never). Writes the token (shown once: it is
 * stored nowhere) into token and its id into id. 0, or -1 with err filled
 * (an invalid argument, the database). */
int rt_apikey_create (rt_db_t *db, const char *service, const char *principal, const char *role,
                      int64_t expires_ms, char token[RT_APIKEY_TOKEN_SIZE],
                      char id[RT_APIKEY_ID_SIZE], char *err, size_t errlen);

/* Gives the live key `id` a new secret, writing its new token into token;
 * the old token stops working. 0; 1 when there is no live key `id`
 * (unknown or revoked; token untouched); -1 with err filled. */
int rt_apikey_rotate (rt_db_t *db, const char *id, char token[RT_APIKEY_TOKEN_SIZE], char *err,
                      size_t errlen);

/* Revokes the live key `id`. 0; 1 when there is no live key `id`; -1 with
 * err filled. */
int rt_apikey_revoke (rt_db_t *db, const char *id, char *err, size_t errlen);

/* Revokes every live key of `service` for `principal` (an operator
 * disabled). The number revoked (>= 0), or -1 with err filled. */
int rt_apikey_revoke_principal (rt_db_t *db, const char *service, const char *principal, char *err,
                                size_t errlen);

/* A key as listed: everything but its secret. Times in unix ms, 0 for
 * none. */
typedef struct {
    char id[RT_APIKEY_ID_SIZE];                  /* the public id */
    char service[RT_APIKEY_SERVICE_MAX + 1];     /* the API it opens */
    char principal[RT_APIKEY_PRINCIPAL_MAX + 1]; /* whom it authenticates */
    char role[RT_APIKEY_ROLE_MAX + 1];           /* its role */
    int64_t created_ms;                          /* when made */
    int64_t last_used_ms;                        /* last use, to the minute; 0: never */
    int64_t revoked_ms;                          /* when revoked; 0: live */
    int64_t expires_ms;                          /* when it expires; 0: never */
} rt_apikey_info_t;

/* The keys of `service` (NULL: every service) for `principal` (NULL:
 * everyone), oldest first, revoked ones included, into *keys (an owned
 * array, free(); NULL when there are none) and *count. 0, or -1 with err
 * filled (*keys NULL, *count 0). */
int rt_apikey_list (rt_db_t *db, const char *service, const char *principal,
                    rt_apikey_info_t **keys, size_t *count, char *err, size_t errlen);

/* Splits a principal the hook wrote ("op-17:supervisor", at its last ':')
 * into who and role. 0, or -1 when it has no ':' or a part does not fit. */
int rt_apikey_principal_split (const char *principal, char *who, size_t whosize, char *role,
                               size_t rolesize);

/* --- the auth hook --- */

typedef struct rt_apikey_auth_t rt_apikey_auth_t;

/* A hook accepting the keys of `service` on the database at `dsn` (both
 * copied; connections are made when first needed, so a database that is
 * down does not stop this). cache_ms: how long a key's row is trusted
 * (0: 5000). metrics (lent, outlives the hook; NULL: none) gets
 * retain_apikey_refused_total. NULL with err filled on a bad argument or
 * out of memory. */
rt_apikey_auth_t *rt_apikey_auth_new (const char *dsn, const char *service, int cache_ms,
                                      rt_metrics_t *metrics, char *err, size_t errlen);

/* Frees the hook and its connections; after the server using it is
 * destroyed. Safe on NULL; sets *self_p NULL. */
void rt_apikey_auth_destroy (rt_apikey_auth_t **self_p);

/* The rt_http_auth_fn: pass it with the hook as arg to
 * rt_http_server_auth or rt_http_route_auth. */
rt_http_auth_t rt_apikey_auth_fn (const rt_http_request_t *req, void *arg, char *principal,
                                  size_t size);

#endif
