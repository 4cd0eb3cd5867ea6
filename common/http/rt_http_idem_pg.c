/*
 * rt_http_idem_pg: the idempotency store in PostgreSQL (see
 * rt_http_idem_pg.h; the rules every store follows are in rt_http_idem.h).
 *
 * begin is one upsert that takes the key when it has no row or only an
 * expired one (the row lock makes two replicas racing for a new key take
 * turns: the second finds the first's reservation), and when it took
 * nothing, one read of the row that holds the key. A row that vanished or
 * expired between the two (released, purged) sends begin round once
 * more; so does a connection found lost, after one reconnect. complete
 * and release name the reservation's token, so a reservation taken over
 * after its lock time is no longer the first request's to finish.
 *
 * Each statement runs alone (autocommit): a reservation must be visible
 * to the other replicas at once. Each worker has its own connection
 * (rt_db_local), whose backoff reads the key's now_ms like everything
 * else here.
 */
#include "rt_http_idem_pg.h"

#include "rt_db_local.h"
#include "rt_log.h"
#include "rt_migrate.h"
#include "rt_uuid.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often a connection purges expired rows (100 at most: s_sql_purge). */
#define S_PURGE_INTERVAL_MS 1000
/* A thread whose connect failed waits this long before the next. */
#define S_RECONNECT_MS 1000
/* Rounds of begin (a vanished row, a lost connection). */
#define S_BEGIN_ROUNDS 3

extern const rt_migration_set_t rt_migrations_http;

static const char *s_sql_reserve =
    "INSERT INTO http.idempotency AS i (scope, key, fingerprint, token, done, expires_ms)"
    " VALUES ($1, $2, $3, $4, false, $5::bigint + $6::bigint)"
    " ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
    " token = EXCLUDED.token, done = false, expires_ms = EXCLUDED.expires_ms, status = NULL,"
    " content_type = NULL, headers = NULL, body = NULL"
    " WHERE i.expires_ms <= $5::bigint"
    " RETURNING 1";

static const char *s_sql_get =
    "SELECT fingerprint, done, status, content_type, headers, body FROM http.idempotency"
    " WHERE scope = $1 AND key = $2 AND expires_ms > $3::bigint";

static const char *s_sql_complete =
    "UPDATE http.idempotency SET done = true, expires_ms = $4::bigint, status = $5::int,"
    " content_type = $6, headers = $7, body = $8"
    " WHERE scope = $1 AND key = $2 AND token = $3::uuid AND NOT done";

static const char *s_sql_release =
    "DELETE FROM http.idempotency WHERE scope = $1 AND key = $2 AND token = $3::uuid AND NOT done";

static const char *s_sql_purge =
    "DELETE FROM http.idempotency WHERE (scope, key) IN (SELECT scope, key FROM"
    " http.idempotency WHERE expires_ms <= $1::bigint ORDER BY expires_ms LIMIT 100"
    " FOR UPDATE SKIP LOCKED)";

typedef struct {
    rt_http_idem_store_t head; /* ops and times */
    rt_db_local_t *dbs;        /* owned: one connection per thread that called, whose
                                  own value is its last purge (wall ms) */
} s_store_t;

int
rt_http_idem_pg_migrate (rt_db_t *db, char *err, size_t errlen)
{
    return rt_migrate_apply (db, &rt_migrations_http, err, errlen);
}

/* The store's statements, on each worker's connection. */
static int
s_setup (rt_db_t *db, void *arg)
{
    (void)arg;
    if (rt_db_prepare (db, "idem_reserve", s_sql_reserve) != 0 ||
        rt_db_prepare (db, "idem_get", s_sql_get) != 0 ||
        rt_db_prepare (db, "idem_complete", s_sql_complete) != 0 ||
        rt_db_prepare (db, "idem_release", s_sql_release) != 0 ||
        rt_db_prepare (db, "idem_purge", s_sql_purge) != 0)
        return -1;
    return 0;
}

/* Purges on db when its last purge (*purged_ms) is a while ago. */
static void
s_purge (rt_db_t *db, int64_t *purged_ms, int64_t now_ms)
{
    char now[24];
    const char *values[1] = {now};
    PGresult *res;
    if (now_ms - *purged_ms < S_PURGE_INTERVAL_MS)
        return;
    *purged_ms = now_ms;
    snprintf (now, sizeof now, "%lld", (long long)now_ms);
    res = rt_db_exec_prepared (db, "idem_purge", 1, values, NULL, NULL, 0);
    if (!res)
        rt_log (RT_LOG_WARN, "idempotency store: purge failed",
                rt_log_str ("error", rt_db_error (db)));
    PQclear (res);
}

/* A copy of a binary result's field, NUL-terminated; NULL for SQL NULL
 * (and out of memory, *ok then false). */
static char *
s_field (PGresult *res, int col, size_t *len, bool *ok)
{
    char *copy;
    size_t n;
    *len = 0;
    if (PQgetisnull (res, 0, col))
        return NULL;
    n = (size_t)PQgetlength (res, 0, col);
    copy = malloc (n + 1);
    if (!copy) {
        *ok = false;
        return NULL;
    }
    memcpy (copy, PQgetvalue (res, 0, col), n);
    copy[n] = '\0';
    *len = n;
    return copy;
}

/* What the row of key read by idem_get says; -1 when it is gone. */
static int
s_read_row (PGresult *res, const rt_http_idem_key_t *key, rt_http_idem_response_t *stored,
            rt_http_idem_state_t *state)
{
    bool ok = true;
    size_t n;
    uint32_t status;
    if (PQntuples (res) != 1)
        return -1;
    if (PQgetlength (res, 0, 0) != RT_HTTP_IDEM_FINGERPRINT_LEN ||
        memcmp (PQgetvalue (res, 0, 0), key->fingerprint, RT_HTTP_IDEM_FINGERPRINT_LEN) != 0) {
        *state = RT_HTTP_IDEM_MISMATCH;
        return 0;
    }
    if (!PQgetvalue (res, 0, 1)[0] || PQgetisnull (res, 0, 2) || PQgetlength (res, 0, 2) != 4) {
        *state = RT_HTTP_IDEM_IN_PROGRESS;
        return 0;
    }
    memcpy (&status, PQgetvalue (res, 0, 2), 4);
    memset (stored, 0, sizeof *stored);
    stored->status = (int)ntohl (status);
    stored->content_type = s_field (res, 3, &n, &ok);
    stored->headers = s_field (res, 4, &stored->headers_len, &ok);
    stored->body = s_field (res, 5, &stored->body_len, &ok);
    if (ok && !stored->headers)
        stored->headers = strdup ("");
    if (ok && !stored->body)
        stored->body = strdup ("");
    if (!ok || !stored->headers || !stored->body) {
        rt_http_idem_response_free (stored);
        *state = RT_HTTP_IDEM_ERROR;
        return 0;
    }
    *state = RT_HTTP_IDEM_REPLAY;
    return 0;
}

static rt_http_idem_state_t
s_begin (rt_http_idem_store_t *store, rt_http_idem_key_t *key, rt_http_idem_response_t *stored)
{
    s_store_t *self = (s_store_t *)store;
    rt_db_t *db = NULL;
    int64_t *purged_ms;
    char now[24], lock[24];
    rt_uuid_t token = rt_uuid_v7 ();
    rt_http_idem_state_t state = RT_HTTP_IDEM_ERROR;
    rt_uuid_format (&token, key->token);
    snprintf (now, sizeof now, "%lld", (long long)key->now_ms);
    snprintf (lock, sizeof lock, "%lld", (long long)store->lock_ms);
    const char *values[6] = {key->scope, key->key, (const char *)key->fingerprint,
                             key->token, now,      lock};
    const int lengths[6] = {0, 0, RT_HTTP_IDEM_FINGERPRINT_LEN, 0, 0, 0};
    const int formats[6] = {0, 0, 1, 0, 0, 0};
    for (int round = 0; round < S_BEGIN_ROUNDS; round++) {
        PGresult *res;
        db = rt_db_local_get_at (self->dbs, key->now_ms, &purged_ms);
        if (!db)
            return RT_HTTP_IDEM_ERROR;
        s_purge (db, purged_ms, key->now_ms);
        res = rt_db_exec_prepared (db, "idem_reserve", 6, values, lengths, formats, 0);
        if (!res) {
            if (rt_db_is_ok (db))
                break; /* the statement failed, not the connection */
            continue;
        }
        if (PQntuples (res) == 1) {
            PQclear (res);
            return RT_HTTP_IDEM_NEW;
        }
        PQclear (res);
        const char *get[3] = {key->scope, key->key, now};
        res = rt_db_exec_prepared (db, "idem_get", 3, get, NULL, NULL, 1);
        if (!res) {
            if (rt_db_is_ok (db))
                break;
            continue;
        }
        int found = s_read_row (res, key, stored, &state);
        PQclear (res);
        if (found == 0)
            return state;
    }
    rt_log (RT_LOG_WARN, "idempotency store: begin failed", rt_log_str ("error", rt_db_error (db)));
    return RT_HTTP_IDEM_ERROR;
}

/* Runs complete or release; 0, or -1 when the statement failed. */
static int
s_finish (s_store_t *self, const char *name, int nparams, const char *const *values,
          const int *lengths, const int *formats, int64_t now_ms)
{
    rt_db_t *db = rt_db_local_get_at (self->dbs, now_ms, NULL);
    PGresult *res;
    if (!db)
        return -1;
    res = rt_db_exec_prepared (db, name, nparams, values, lengths, formats, 0);
    if (!res && !rt_db_is_ok (db) && rt_db_local_get_at (self->dbs, now_ms, NULL))
        res = rt_db_exec_prepared (db, name, nparams, values, lengths, formats, 0);
    if (!res) {
        rt_log (RT_LOG_WARN, "idempotency store: write failed", rt_log_str ("statement", name),
                rt_log_str ("error", rt_db_error (db)));
        return -1;
    }
    PQclear (res);
    return 0;
}

static int
s_complete (rt_http_idem_store_t *store, const rt_http_idem_key_t *key,
            const rt_http_idem_response_t *response)
{
    char expires[24], status[16];
    snprintf (expires, sizeof expires, "%lld", (long long)(key->now_ms + store->ttl_ms));
    snprintf (status, sizeof status, "%d", response->status);
    const char *values[8] = {key->scope,        key->key,      key->token,
                             expires,           status,        response->content_type,
                             response->headers, response->body};
    const int lengths[8] = {0, 0, 0, 0, 0, 0, (int)response->headers_len, (int)response->body_len};
    const int formats[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    return s_finish ((s_store_t *)store, "idem_complete", 8, values, lengths, formats, key->now_ms);
}

static int
s_release (rt_http_idem_store_t *store, const rt_http_idem_key_t *key)
{
    const char *values[3] = {key->scope, key->key, key->token};
    return s_finish ((s_store_t *)store, "idem_release", 3, values, NULL, NULL, key->now_ms);
}

static void
s_destroy (rt_http_idem_store_t *store)
{
    s_store_t *self = (s_store_t *)store;
    rt_db_local_destroy (&self->dbs);
    free (self);
}

static const rt_http_idem_ops_t s_ops = {s_begin, s_complete, s_release, s_destroy};

rt_http_idem_store_t *
rt_http_idem_pg_new (const char *dsn, const rt_http_idem_config_t *config, char *err, size_t errlen)
{
    s_store_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    rt_http_idem_store_init (&self->head, &s_ops, config);
    self->dbs = rt_db_local_new (dsn, "retain-http-idempotency", s_setup, NULL, S_RECONNECT_MS, err,
                                 errlen);
    if (!self->dbs) {
        free (self);
        return NULL;
    }
    return &self->head;
}
