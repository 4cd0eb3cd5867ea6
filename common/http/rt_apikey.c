/*
 * rt_apikey: API keys in PostgreSQL and the auth hook that checks them
 * (see rt_apikey.h for the contract and the choices).
 *
 * The hook's path for a request: take the token apart (a strict parse, no
 * database), find the key's row in the cache, or else read it on this
 * worker's own connection and cache it, then decide from the row: the
 * secret's hash (constant time), the service, revocation, expiry. The
 * cache holds rows, not verdicts, so a wrong secret for a cached key is
 * refused without a query, and a row is used for cache_ms of rt_clock's
 * monotonic time after it was read, never longer: a test moves that clock
 * to see a revocation arrive.
 *
 * The cache is S_SETS sets of S_WAYS entries, a key's set chosen by a hash
 * of its id; a new row replaces the oldest entry of its set. One mutex
 * guards it (and the log's budget); it is never held across a query. The
 * workers' connections are rt_db_local's.
 */
#include "rt_apikey.h"

#include "rt_clock.h"
#include "rt_crypto.h"
#include "rt_db_local.h"
#include "rt_log.h"
#include "rt_migrate.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Letters of a key id after "rk_", and of the secret (32 bytes in base32). */
#define S_ID_LETTERS     12
#define S_SECRET_BYTES   32
#define S_SECRET_LETTERS 52
/* "rk_" + id letters. */
#define S_ID_LEN (3 + S_ID_LETTERS)
/* id + "_" + secret. */
#define S_TOKEN_LEN (S_ID_LEN + 1 + S_SECRET_LETTERS)

/* The hook's cache. */
#define S_SETS 128
#define S_WAYS 4
/* Default trust in a cached row. */
#define S_DEFAULT_CACHE_MS 5000
/* last_used_at is written at most this often per key and process. */
#define S_USED_EVERY_MS 60000
/* A cached row that a secret does not match is read again after this. */
#define S_REREAD_MS 1000
/* A thread whose connect failed waits this long before the next. */
#define S_RECONNECT_MS 1000
/* Refusal log lines per second before they are only counted. */
#define S_LOG_PER_SECOND 20

_Static_assert(S_TOKEN_LEN < RT_APIKEY_TOKEN_SIZE, "a token fits its buffer");
_Static_assert(S_ID_LEN < RT_APIKEY_ID_SIZE, "an id fits its buffer");
_Static_assert(RT_APIKEY_PRINCIPAL_MAX + 1 + RT_APIKEY_ROLE_MAX < RT_HTTP_PRINCIPAL_MAX,
               "<principal>:<role> fits rt_http's principal");

extern const rt_migration_set_t rt_migrations_apikey;

static const char s_base32[] = "abcdefghijklmnopqrstuvwxyz234567";

static const char *s_sql_insert =
    "INSERT INTO apikey.keys (id, service, principal, role, hash, created_at, expires_at)"
    " VALUES ($1, $2, $3, $4, decode($5, 'hex'), to_timestamp($6::bigint / 1000.0),"
    " CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::bigint / 1000.0) END)"
    " ON CONFLICT (id) DO NOTHING RETURNING 1";

static const char *s_sql_rotate = "UPDATE apikey.keys SET hash = decode($2, 'hex')"
                                  " WHERE id = $1 AND revoked_at IS NULL RETURNING 1";

static const char *s_sql_revoke = "UPDATE apikey.keys SET revoked_at = to_timestamp($2::bigint / "
                                  "1000.0) WHERE id = $1 AND revoked_at IS NULL RETURNING 1";

static const char *s_sql_revoke_principal =
    "UPDATE apikey.keys SET revoked_at = to_timestamp($3::bigint / 1000.0)"
    " WHERE service = $1 AND principal = $2 AND revoked_at IS NULL";

static const char *s_sql_list =
    "SELECT id, service, principal, role, (extract(epoch FROM created_at) * 1000)::bigint,"
    " coalesce((extract(epoch FROM last_used_at) * 1000)::bigint, 0),"
    " coalesce((extract(epoch FROM revoked_at) * 1000)::bigint, 0),"
    " coalesce((extract(epoch FROM expires_at) * 1000)::bigint, 0)"
    " FROM apikey.keys WHERE ($1::text IS NULL OR service = $1)"
    " AND ($2::text IS NULL OR principal = $2) ORDER BY created_at, id";

/* The hook's two statements, prepared on each of its connections. */
static const char *s_sql_get =
    "SELECT service, principal, role, encode(hash, 'hex'), revoked_at IS NOT NULL,"
    " coalesce((extract(epoch FROM expires_at) * 1000)::bigint, 0),"
    " coalesce((extract(epoch FROM last_used_at) * 1000)::bigint, 0)"
    " FROM apikey.keys WHERE id = $1";

static const char *s_sql_used =
    "UPDATE apikey.keys SET last_used_at = to_timestamp($2::bigint / 1000.0) WHERE id = $1";

/* --- tokens --- */

/* Lower-case base32 of len bytes into out (ceil(8*len/5) letters and a
 * NUL), no padding. */
static void
s_base32_encode (const uint8_t *bin, size_t len, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | bin[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = s_base32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = s_base32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

static bool
s_is_base32 (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7')))
            return false;
    }
    return true;
}

/* A new id and token sharing it (id given: a new secret for it). The hex
 * of the secret's hash into hash_hex (65 bytes). 0 or -1. */
static int
s_make_token (char id[RT_APIKEY_ID_SIZE], bool new_id, char token[RT_APIKEY_TOKEN_SIZE],
              char hash_hex[2 * RT_SHA256_LEN + 1])
{
    uint8_t raw[S_SECRET_BYTES];
    uint8_t hash[RT_SHA256_LEN];
    char secret[S_SECRET_LETTERS + 1];
    if (new_id) {
        uint8_t idraw[8];
        char letters[14];
        if (rt_random (idraw, sizeof idraw) != 0)
            return -1;
        s_base32_encode (idraw, sizeof idraw, letters); /* 13 letters; 12 kept */
        memcpy (id, "rk_", 3);
        memcpy (id + 3, letters, S_ID_LETTERS);
        id[S_ID_LEN] = '\0';
    }
    if (rt_random (raw, sizeof raw) != 0)
        return -1;
    s_base32_encode (raw, sizeof raw, secret);
    rt_sha256 (secret, S_SECRET_LETTERS, hash);
    rt_hex_encode (hash, sizeof hash, hash_hex);
    memcpy (token, id, S_ID_LEN);
    token[S_ID_LEN] = '_';
    memcpy (token + S_ID_LEN + 1, secret, S_SECRET_LETTERS + 1);
    memset (raw, 0, sizeof raw);
    memset (secret, 0, sizeof secret);
    return 0;
}

/* Takes a token apart: its id into id and the SHA-256 of its secret part
 * into hash. 0, or -1 when it is not a token's shape. */
static int
s_parse_token (const char *token, char id[RT_APIKEY_ID_SIZE], uint8_t hash[RT_SHA256_LEN])
{
    if (strlen (token) != S_TOKEN_LEN || strncmp (token, "rk_", 3) != 0 ||
        !s_is_base32 (token + 3, S_ID_LETTERS) || token[S_ID_LEN] != '_' ||
        !s_is_base32 (token + S_ID_LEN + 1, S_SECRET_LETTERS))
        return -1;
    memcpy (id, token, S_ID_LEN);
    id[S_ID_LEN] = '\0';
    rt_sha256 (token + S_ID_LEN + 1, S_SECRET_LETTERS, hash);
    return 0;
}

static bool
s_is_id (const char *id)
{
    return id && strlen (id) == S_ID_LEN && strncmp (id, "rk_", 3) == 0 &&
           s_is_base32 (id + 3, S_ID_LETTERS);
}

/* 0 when s is 1 to max visible ASCII bytes (without ':' unless colon). */
static int
s_check_text (const char *s, size_t max, bool colon, const char *what, char *err, size_t errlen)
{
    size_t n = s ? strlen (s) : 0;
    if (n == 0 || n > max) {
        rt_errf (err, errlen, "%s must be 1 to %zu bytes", what, max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || (c == ':' && !colon)) {
            rt_errf (err, errlen, "%s must be visible ASCII%s", what, colon ? "" : " without ':'");
            return -1;
        }
    }
    return 0;
}

/* A service is a metric label and a word: lower-case letters, digits, '-', '_'. */
static int
s_check_service (const char *s, char *err, size_t errlen)
{
    size_t n = s ? strlen (s) : 0;
    bool ok = n > 0 && n <= RT_APIKEY_SERVICE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
             s[i] == '_';
    if (!ok)
        rt_errf (err, errlen, "service must be 1 to %d of a-z, 0-9, '-', '_'",
                 RT_APIKEY_SERVICE_MAX);
    return ok ? 0 : -1;
}

/* --- administration --- */

int
rt_apikey_migrate (rt_db_t *db, char *err, size_t errlen)
{
    return rt_migrate_apply (db, &rt_migrations_apikey, err, errlen);
}

int
rt_apikey_create (rt_db_t *db, const char *service, const char *principal, const char *role,
                  int64_t expires_ms, char token[RT_APIKEY_TOKEN_SIZE], char id[RT_APIKEY_ID_SIZE],
                  char *err, size_t errlen)
{
    char hash_hex[2 * RT_SHA256_LEN + 1], now[24], expires[24];
    if (s_check_service (service, err, errlen) != 0 ||
        s_check_text (principal, RT_APIKEY_PRINCIPAL_MAX, true, "principal", err, errlen) != 0 ||
        s_check_text (role, RT_APIKEY_ROLE_MAX, false, "role", err, errlen) != 0)
        return -1;
    if (expires_ms < 0) {
        rt_errf (err, errlen, "expiry must be 0 (never) or a unix time in ms");
        return -1;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    snprintf (expires, sizeof expires, "%lld", (long long)expires_ms);
    bool failed = false;
    /* 60 bits of id: a collision is a curiosity, but answered by a new id. */
    for (int round = 0; round < 3; round++) {
        if (s_make_token (id, true, token, hash_hex) != 0) {
            rt_errf (err, errlen, "getrandom: %s", strerror (errno));
            return -1;
        }
        const char *values[7] = {id, service, principal, role, hash_hex, now, expires};
        PGresult *res = rt_db_exec_params (db, s_sql_insert, 7, values);
        if (!res) {
            rt_errf (err, errlen, "api key insert: %s", rt_db_error (db));
            failed = true;
            break;
        }
        int made = PQntuples (res);
        PQclear (res);
        if (made == 1)
            return 0;
    }
    memset (token, 0, RT_APIKEY_TOKEN_SIZE);
    if (!failed)
        rt_errf (err, errlen, "no free key id");
    return -1;
}

/* Runs an UPDATE ... RETURNING 1 of the administration; the rows it
 * returned, or -1 with err filled. */
static int
s_update (rt_db_t *db, const char *what, const char *sql, int n, const char *const *values,
          char *err, size_t errlen)
{
    PGresult *res = rt_db_exec_params (db, sql, n, values);
    int rows;
    if (!res) {
        rt_errf (err, errlen, "api key %s: %s", what, rt_db_error (db));
        return -1;
    }
    rows = PQresultStatus (res) == PGRES_TUPLES_OK ? PQntuples (res) : atoi (PQcmdTuples (res));
    PQclear (res);
    return rows;
}

int
rt_apikey_rotate (rt_db_t *db, const char *id, char token[RT_APIKEY_TOKEN_SIZE], char *err,
                  size_t errlen)
{
    char key[RT_APIKEY_ID_SIZE], fresh[RT_APIKEY_TOKEN_SIZE], hash_hex[2 * RT_SHA256_LEN + 1];
    int rows;
    if (!s_is_id (id))
        return 1;
    snprintf (key, sizeof key, "%s", id);
    if (s_make_token (key, false, fresh, hash_hex) != 0) {
        rt_errf (err, errlen, "getrandom: %s", strerror (errno));
        return -1;
    }
    const char *values[2] = {key, hash_hex};
    rows = s_update (db, "rotate", s_sql_rotate, 2, values, err, errlen);
    if (rows == 1)
        memcpy (token, fresh, sizeof fresh);
    memset (fresh, 0, sizeof fresh);
    return rows < 0 ? -1 : rows == 1 ? 0 : 1;
}

int
rt_apikey_revoke (rt_db_t *db, const char *id, char *err, size_t errlen)
{
    char now[24];
    int rows;
    if (!s_is_id (id))
        return 1;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    const char *values[2] = {id, now};
    rows = s_update (db, "revoke", s_sql_revoke, 2, values, err, errlen);
    return rows < 0 ? -1 : rows == 1 ? 0 : 1;
}

int
rt_apikey_revoke_principal (rt_db_t *db, const char *service, const char *principal, char *err,
                            size_t errlen)
{
    char now[24];
    if (!service || !principal) {
        rt_errf (err, errlen, "service and principal are required");
        return -1;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    const char *values[3] = {service, principal, now};
    return s_update (db, "revoke", s_sql_revoke_principal, 3, values, err, errlen);
}

/* Copies a text field into a buffer of size bytes, cut to fit. */
static void
s_copy (char *dst, size_t size, PGresult *res, int row, int col)
{
    snprintf (dst, size, "%s", PQgetvalue (res, row, col));
}

int
rt_apikey_list (rt_db_t *db, const char *service, const char *principal, rt_apikey_info_t **keys,
                size_t *count, char *err, size_t errlen)
{
    const char *values[2] = {service, principal};
    PGresult *res;
    int n;
    *keys = NULL;
    *count = 0;
    res = rt_db_exec_params (db, s_sql_list, 2, values);
    if (!res) {
        rt_errf (err, errlen, "api key list: %s", rt_db_error (db));
        return -1;
    }
    n = PQntuples (res);
    if (n > 0) {
        *keys = calloc ((size_t)n, sizeof **keys);
        if (!*keys) {
            PQclear (res);
            rt_errf (err, errlen, "out of memory");
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        rt_apikey_info_t *k = &(*keys)[i];
        s_copy (k->id, sizeof k->id, res, i, 0);
        s_copy (k->service, sizeof k->service, res, i, 1);
        s_copy (k->principal, sizeof k->principal, res, i, 2);
        s_copy (k->role, sizeof k->role, res, i, 3);
        k->created_ms = strtoll (PQgetvalue (res, i, 4), NULL, 10);
        k->last_used_ms = strtoll (PQgetvalue (res, i, 5), NULL, 10);
        k->revoked_ms = strtoll (PQgetvalue (res, i, 6), NULL, 10);
        k->expires_ms = strtoll (PQgetvalue (res, i, 7), NULL, 10);
    }
    *count = (size_t)n;
    PQclear (res);
    return 0;
}

int
rt_apikey_principal_split (const char *principal, char *who, size_t whosize, char *role,
                           size_t rolesize)
{
    const char *colon = principal ? strrchr (principal, ':') : NULL;
    size_t n;
    if (!colon)
        return -1;
    n = (size_t)(colon - principal);
    if (n >= whosize || strlen (colon + 1) >= rolesize)
        return -1;
    memcpy (who, principal, n);
    who[n] = '\0';
    memcpy (role, colon + 1, strlen (colon + 1) + 1);
    return 0;
}

/* --- the hook --- */

/* Why a request was refused: the metric's label, in this order. */
typedef enum {
    S_MISSING = 0,
    S_MALFORMED,
    S_UNKNOWN,
    S_WRONG_SECRET,
    S_REVOKED,
    S_EXPIRED,
    S_OTHER_SERVICE,
    S_UNREACHABLE,
    S_REASONS
} s_reason_t;

static const char *const s_reason_names[S_REASONS] = {"missing",       "malformed",  "unknown",
                                                      "wrong_secret",  "revoked",    "expired",
                                                      "other_service", "unreachable"};

/* What the database said about one key id. */
typedef struct {
    char id[RT_APIKEY_ID_SIZE];                  /* the key; "" for a free slot */
    bool known;                                  /* a row exists */
    bool revoked;                                /* revoked_at is set */
    uint8_t hash[RT_SHA256_LEN];                 /* its secret's hash */
    char service[RT_APIKEY_SERVICE_MAX + 1];     /* the API it opens */
    char principal[RT_APIKEY_PRINCIPAL_MAX + 1]; /* whom it authenticates */
    char role[RT_APIKEY_ROLE_MAX + 1];           /* its role */
    int64_t expires_ms;                          /* wall ms; 0: never */
    int64_t last_used_ms;                        /* wall ms written last (or read); 0: never */
    int64_t read_ms;                             /* monotonic ms when read */
} s_entry_t;

struct rt_apikey_auth_t {
    rt_db_local_t *dbs;                /* owned: a connection per thread that missed the cache */
    char *service;                     /* owned: the keys it accepts */
    int cache_ms;                      /* how long a read row is trusted */
    pthread_mutex_t lock;              /* guards cache and the log budget */
    s_entry_t cache[S_SETS][S_WAYS];   /* rows by a hash of their id */
    rt_counter_t *refused[S_REASONS];  /* by reason; NULL without metrics */
    int64_t log_second;                /* the second log_lines counts (monotonic) */
    int log_lines;                     /* lines written in it */
    unsigned long long log_suppressed; /* lines left out since the last written */
};

/* The hook's statements, on each worker's connection. */
static int
s_setup (rt_db_t *db, void *arg)
{
    (void)arg;
    if (rt_db_prepare (db, "apikey_get", s_sql_get) != 0 ||
        rt_db_prepare (db, "apikey_used", s_sql_used) != 0)
        return -1;
    return 0;
}

rt_apikey_auth_t *
rt_apikey_auth_new (const char *dsn, const char *service, int cache_ms, rt_metrics_t *metrics,
                    char *err, size_t errlen)
{
    rt_apikey_auth_t *self;
    if (s_check_service (service, err, errlen) != 0)
        return NULL;
    if (cache_ms < 0) {
        rt_errf (err, errlen, "cache_ms must be >= 0");
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    self->dbs = rt_db_local_new (dsn, "retain-apikey", s_setup, NULL, S_RECONNECT_MS, err, errlen);
    self->service = strdup (service);
    if (!self->dbs || !self->service)
        goto oom;
    self->cache_ms = cache_ms > 0 ? cache_ms : S_DEFAULT_CACHE_MS;
    for (int r = 0; metrics && r < S_REASONS; r++) {
        char labels[128];
        snprintf (labels, sizeof labels, "service=\"%s\",reason=\"%s\"", service,
                  s_reason_names[r]);
        self->refused[r] = rt_metrics_counter (
            metrics, "retain_apikey_refused_total", labels,
            "Requests refused 401 by the API key check, by service and reason.");
        if (!self->refused[r])
            goto oom;
    }
    pthread_mutex_init (&self->lock, NULL);
    return self;
oom:
    if (self) {
        rt_db_local_destroy (&self->dbs);
        free (self->service);
        free (self);
    }
    rt_errf (err, errlen, "out of memory");
    return NULL;
}

void
rt_apikey_auth_destroy (rt_apikey_auth_t **self_p)
{
    rt_apikey_auth_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    rt_db_local_destroy (&self->dbs);
    pthread_mutex_destroy (&self->lock);
    /* The rows held hashes of live secrets: not left in freed memory. */
    memset (self->cache, 0, sizeof self->cache);
    free (self->service);
    free (self);
    *self_p = NULL;
}

/* The cache set of an id (FNV-1a). */
static s_entry_t *
s_set_of (rt_apikey_auth_t *self, const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return self->cache[h % S_SETS];
}

/* Copies id's row into *out when one was read within cache_ms; true then. */
static bool
s_cache_get (rt_apikey_auth_t *self, const char *id, int64_t now_mono, s_entry_t *out)
{
    bool hit = false;
    pthread_mutex_lock (&self->lock);
    s_entry_t *set = s_set_of (self, id);
    for (int w = 0; w < S_WAYS; w++) {
        const s_entry_t *e = &set[w];
        /* A clock moved back makes a row stale too: "never longer". */
        if (strcmp (e->id, id) == 0 && now_mono >= e->read_ms &&
            now_mono - e->read_ms < self->cache_ms) {
            *out = *e;
            hit = true;
            break;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return hit;
}

/* Keeps a row just read, in place of id's older one or of its set's oldest. */
static void
s_cache_put (rt_apikey_auth_t *self, const s_entry_t *row)
{
    pthread_mutex_lock (&self->lock);
    s_entry_t *set = s_set_of (self, row->id);
    s_entry_t *slot = &set[0];
    for (int w = 0; w < S_WAYS; w++) {
        if (strcmp (set[w].id, row->id) == 0) {
            slot = &set[w];
            break;
        }
        if (set[w].read_ms < slot->read_ms || !set[w].id[0])
            slot = &set[w];
    }
    *slot = *row;
    pthread_mutex_unlock (&self->lock);
}

/* True when this call is the one to write id's last use now (a minute
 * since the last write): the cached row then says now, so the other
 * workers do not write it too. */
static bool
s_cache_claim_use (rt_apikey_auth_t *self, const char *id, int64_t now_wall)
{
    bool claim = false;
    pthread_mutex_lock (&self->lock);
    s_entry_t *set = s_set_of (self, id);
    for (int w = 0; w < S_WAYS; w++) {
        if (strcmp (set[w].id, id) == 0) {
            if (now_wall - set[w].last_used_ms >= S_USED_EVERY_MS) {
                set[w].last_used_ms = now_wall;
                claim = true;
            }
            break;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return claim;
}

/* Runs a prepared statement on this thread's connection, once more after a
 * reconnect when the connection was found lost. The result, or NULL. */
static PGresult *
s_exec (rt_apikey_auth_t *self, const char *name, int n, const char *const *values,
        const char **why)
{
    rt_db_t *db = rt_db_local_get (self->dbs, NULL);
    PGresult *res;
    if (!db) {
        *why = rt_db_local_error (self->dbs);
        return NULL;
    }
    res = rt_db_exec_prepared (db, name, n, values, NULL, NULL, 0);
    if (!res && !rt_db_is_ok (db) && rt_db_local_get (self->dbs, NULL))
        res = rt_db_exec_prepared (db, name, n, values, NULL, NULL, 0);
    if (!res)
        *why = rt_db_error (db);
    return res;
}

/* Reads id's row into *row (known false when there is none). 0, or -1
 * when the database could not say; *why then tells why (lent). */
static int
s_read (rt_apikey_auth_t *self, const char *id, s_entry_t *row, const char **why)
{
    const char *values[1] = {id};
    PGresult *res = s_exec (self, "apikey_get", 1, values, why);
    int rc = 0;
    if (!res)
        return -1;
    memset (row, 0, sizeof *row);
    snprintf (row->id, sizeof row->id, "%s", id);
    row->read_ms = rt_clock_mono_ms ();
    if (PQntuples (res) == 1) {
        const char *hex = PQgetvalue (res, 0, 3);
        if (rt_hex_decode (hex, strlen (hex), row->hash, sizeof row->hash) != RT_SHA256_LEN) {
            *why = "a stored hash is not 32 bytes";
            rc = -1;
        }
        row->known = true;
        s_copy (row->service, sizeof row->service, res, 0, 0);
        s_copy (row->principal, sizeof row->principal, res, 0, 1);
        s_copy (row->role, sizeof row->role, res, 0, 2);
        row->revoked = PQgetvalue (res, 0, 4)[0] == 't';
        row->expires_ms = strtoll (PQgetvalue (res, 0, 5), NULL, 10);
        row->last_used_ms = strtoll (PQgetvalue (res, 0, 6), NULL, 10);
    }
    PQclear (res);
    return rc;
}

/* Counts and (within the log's budget) logs a refusal. */
static rt_http_auth_t
s_refuse (rt_apikey_auth_t *self, const rt_http_request_t *req, s_reason_t reason, const char *id,
          const char *why)
{
    int64_t second = rt_clock_elapsed_us () / 1000000;
    bool write_line = false;
    unsigned long long suppressed = 0;
    if (self->refused[reason])
        rt_counter_inc (self->refused[reason]);
    if (reason == S_MISSING)
        return RT_HTTP_AUTH_UNAUTHORIZED; /* the server logs those itself */
    pthread_mutex_lock (&self->lock);
    if (second != self->log_second) {
        self->log_second = second;
        self->log_lines = 0;
    }
    if (self->log_lines < S_LOG_PER_SECOND) {
        self->log_lines++;
        write_line = true;
        suppressed = self->log_suppressed;
        self->log_suppressed = 0;
    } else
        self->log_suppressed++;
    pthread_mutex_unlock (&self->lock);
    if (!write_line)
        return RT_HTTP_AUTH_UNAUTHORIZED;
    if (reason == S_UNREACHABLE)
        rt_log (RT_LOG_WARN, "api key refused: key store unreachable",
                rt_log_str ("api", self->service), rt_log_str ("key", id),
                rt_log_str ("error", why), rt_log_str ("peer", rt_http_peer (req)),
                rt_log_uint ("suppressed", suppressed));
    else
        rt_log (RT_LOG_INFO, "api key refused", rt_log_str ("api", self->service),
                rt_log_str ("reason", s_reason_names[reason]), rt_log_str ("key", id),
                rt_log_str ("peer", rt_http_peer (req)), rt_log_str ("path", rt_http_path (req)),
                rt_log_uint ("suppressed", suppressed));
    return RT_HTTP_AUTH_UNAUTHORIZED;
}

/* Writes the key's last use when a minute has passed since the last write. */
static void
s_note_use (rt_apikey_auth_t *self, const s_entry_t *row)
{
    int64_t now = rt_clock_now_ms ();
    char at[24];
    const char *why;
    if (now - row->last_used_ms < S_USED_EVERY_MS || !s_cache_claim_use (self, row->id, now))
        return;
    snprintf (at, sizeof at, "%lld", (long long)now);
    const char *values[2] = {row->id, at};
    PGresult *res = s_exec (self, "apikey_used", 2, values, &why);
    if (!res)
        rt_log (RT_LOG_WARN, "api key: last use not written", rt_log_str ("key", row->id),
                rt_log_str ("error", why));
    PQclear (res);
}

rt_http_auth_t
rt_apikey_auth_fn (const rt_http_request_t *req, void *arg, char *principal, size_t size)
{
    rt_apikey_auth_t *self = arg;
    const char *token = rt_http_bearer (req);
    char id[RT_APIKEY_ID_SIZE];
    uint8_t hash[RT_SHA256_LEN];
    s_entry_t row;
    const char *why = NULL;
    int64_t now_mono;

    if (!token)
        return s_refuse (self, req, rt_http_header (req, "Authorization") ? S_MALFORMED : S_MISSING,
                         NULL, NULL);
    if (s_parse_token (token, id, hash) != 0)
        return s_refuse (self, req, S_MALFORMED, NULL, NULL);
    now_mono = rt_clock_mono_ms ();
    bool cached = s_cache_get (self, id, now_mono, &row);
    /* A secret that does not match may be a rotation's new one: the row is
     * read again, at most once a second per key, so a flood of guesses at
     * one id costs the database no more. */
    if (cached && row.known && !rt_ct_equal (hash, sizeof hash, row.hash, sizeof row.hash) &&
        now_mono - row.read_ms >= S_REREAD_MS)
        cached = false;
    if (!cached) {
        if (s_read (self, id, &row, &why) != 0)
            return s_refuse (self, req, S_UNREACHABLE, id, why);
        s_cache_put (self, &row);
    }
    /* Only the holder of the secret learns, in the log, more than "unknown". */
    if (!row.known)
        return s_refuse (self, req, S_UNKNOWN, id, NULL);
    if (!rt_ct_equal (hash, sizeof hash, row.hash, sizeof row.hash))
        return s_refuse (self, req, S_WRONG_SECRET, id, NULL);
    if (strcmp (row.service, self->service) != 0)
        return s_refuse (self, req, S_OTHER_SERVICE, id, NULL);
    if (row.revoked)
        return s_refuse (self, req, S_REVOKED, id, NULL);
    if (row.expires_ms != 0 && rt_clock_now_ms () >= row.expires_ms)
        return s_refuse (self, req, S_EXPIRED, id, NULL);
    if ((size_t)snprintf (principal, size, "%s:%s", row.principal, row.role) >= size) {
        rt_log (RT_LOG_ERROR, "api key: principal does not fit the server's buffer",
                rt_log_str ("key", id));
        return RT_HTTP_AUTH_UNAUTHORIZED;
    }
    s_note_use (self, &row);
    return RT_HTTP_AUTH_ALLOW;
}
