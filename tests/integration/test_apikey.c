/*
 * API keys (common/http/rt_apikey): made, listed, rotated and revoked in
 * PostgreSQL, and checked by the auth hook of a real rt_http server over
 * real sockets (libcurl). Every refusal is a 401 with WWW-Authenticate
 * that says nothing of why (no header, another scheme, a malformed token,
 * an unknown id, a wrong secret, another service's key, a revoked or
 * expired key) while the metric and the log say it; a good key reaches
 * the handler with "<principal>:<role>". A revocation takes effect within
 * the cache time, never later, and the time moves through
 * RETAIN_CLOCK_FILE, not by sleeping; the database away keeps fresh
 * cached keys working and refuses the rest. Tokens are found neither in
 * the table nor in the log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_apikey.h"
#include "rt_clock.h"
#include "rt_codec.h"
#include "rt_db.h"
#include "rt_http_server.h"
#include "rt_metrics.h"
#include "rt_test.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MS 5000

static char s_dsn[1024];
static char s_clock_file[512];
static char s_log_path[512];
static int s_saved_stderr = -1;
static int64_t s_wall_off, s_mono_off; /* the clock file's offsets */
static rt_db_t *s_db;                  /* the administration's connection */
static PGconn *s_pg;                   /* the test's own look at the table */
static rt_metrics_t *s_metrics;
static rt_apikey_auth_t *s_auth;
static rt_http_server_t *s_srv;
static int s_port;

/* Every token made, to look for afterwards where none may be. */
static char s_tokens[64][RT_APIKEY_TOKEN_SIZE];
static int s_ntokens;

/* An answer. */
typedef struct {
    long status;     /* HTTP status, 0 when none */
    char head[4096]; /* the header lines */
    size_t head_len; /* bytes in head */
    char body[4096]; /* the body, cut to fit */
    size_t body_len; /* bytes in body */
} s_resp_t;

static void
h_whoami (rt_http_request_t *req, void *arg)
{
    const char *principal = rt_http_principal (req);
    char who[256], role[128], text[1024];
    (void)arg;
    if (!principal || rt_apikey_principal_split (principal, who, sizeof who, role, sizeof role)) {
        rt_http_problem (req, 500, "no-principal", NULL);
        return;
    }
    int n = snprintf (text, sizeof text, "{\"principal\":\"%s\",\"who\":\"%s\",\"role\":\"%s\"}",
                      principal, who, role);
    rt_http_reply (req, 200, "application/json", text, (size_t)n);
}

static void
s_clock (int64_t wall_ms, int64_t mono_ms)
{
    s_wall_off += wall_ms;
    s_mono_off += mono_ms;
    assert_int_equal (rt_clock_file_set (s_clock_file, s_wall_off, s_mono_off), 0);
}

static size_t
s_on_head (char *data, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    if (r->head_len + len < sizeof r->head) {
        memcpy (r->head + r->head_len, data, len);
        r->head_len += len;
        r->head[r->head_len] = '\0';
    }
    return len;
}

static size_t
s_on_body (char *data, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    if (r->body_len + len < sizeof r->body) {
        memcpy (r->body + r->body_len, data, len);
        r->body_len += len;
        r->body[r->body_len] = '\0';
    }
    return len;
}

/* GET /v1/whoami with the header line `auth` (NULL: none). */
static long
s_get (const char *auth, s_resp_t *r)
{
    char url[128];
    struct curl_slist *list = NULL;
    CURL *curl = curl_easy_init ();
    memset (r, 0, sizeof *r);
    assert_non_null (curl);
    snprintf (url, sizeof url, "http://127.0.0.1:%d/v1/whoami", s_port);
    if (auth)
        list = curl_slist_append (list, auth);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_head);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, r);
    curl_easy_perform (curl);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all (list);
    curl_easy_cleanup (curl);
    return r->status;
}

/* GET /v1/whoami as `Authorization: Bearer <token>`. */
static long
s_get_as (const char *token, s_resp_t *r)
{
    char auth[256];
    snprintf (auth, sizeof auth, "Authorization: Bearer %s", token);
    return s_get (auth, r);
}

/* Refused as a client sees it: 401, a Bearer challenge, problem details
 * that do not say why. */
static void
s_assert_refused (const s_resp_t *r)
{
    assert_int_equal (r->status, 401);
    assert_non_null (strstr (r->head, "WWW-Authenticate: Bearer realm=\"router\""));
    assert_non_null (strstr (r->head, "application/problem+json"));
    assert_null (strstr (r->body, "revoked"));
    assert_null (strstr (r->body, "expired"));
    assert_null (strstr (r->body, "secret"));
}

static uint64_t
s_refused (const char *reason)
{
    char labels[128];
    snprintf (labels, sizeof labels, "service=\"router\",reason=\"%s\"", reason);
    return rt_counter_value (rt_metrics_counter (s_metrics, "retain_apikey_refused_total", labels,
                                                 "Requests refused 401 by the API key check, by "
                                                 "service and reason."));
}

static void
s_create (const char *service, const char *principal, const char *role, int64_t expires_ms,
          char token[RT_APIKEY_TOKEN_SIZE], char id[RT_APIKEY_ID_SIZE])
{
    char err[256];
    if (rt_apikey_create (s_db, service, principal, role, expires_ms, token, id, err, sizeof err))
        fail_msg ("create: %s", err);
    assert_true (s_ntokens < 64);
    memcpy (s_tokens[s_ntokens++], token, RT_APIKEY_TOKEN_SIZE);
}

static int
s_setup (void **state)
{
    char err[512];
    rt_http_server_config_t cfg = {.address = "127.0.0.1:0", .name = "router", .threads = 2};
    (void)state;
    /* The log of everything below goes to a file the last test reads. */
    snprintf (s_log_path, sizeof s_log_path, "%s/test-apikey-%d.log", rt_test_dir (),
              (int)getpid ());
    int fd = open (s_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true (fd >= 0);
    s_saved_stderr = dup (STDERR_FILENO);
    assert_true (dup2 (fd, STDERR_FILENO) >= 0);
    close (fd);

    rt_test_db_create ("apikey", s_dsn, sizeof s_dsn);
    s_db = rt_db_new (s_dsn, "test-apikey");
    assert_int_equal (rt_db_connect (s_db), 0);
    /* Its own migration set: applied once, then nothing to do. */
    if (rt_apikey_migrate (s_db, err, sizeof err) != 1)
        fail_msg ("migrate: %s", err);
    assert_int_equal (rt_apikey_migrate (s_db, err, sizeof err), 0);
    s_pg = rt_test_pg (s_dsn);

    s_metrics = rt_metrics_new ();
    s_auth = rt_apikey_auth_new (s_dsn, "router", CACHE_MS, s_metrics, err, sizeof err);
    if (!s_auth)
        fail_msg ("auth: %s", err);
    assert_null (rt_apikey_auth_new (s_dsn, "Router!", 0, NULL, err, sizeof err));
    s_srv = rt_http_server_new (&cfg, err, sizeof err);
    if (!s_srv)
        fail_msg ("server: %s", err);
    rt_http_route_t *route = rt_http_route (s_srv, "GET", "/v1/whoami", h_whoami, NULL);
    assert_non_null (route);
    rt_http_route_auth (route, rt_apikey_auth_fn, s_auth);
    if (rt_http_server_start (s_srv, err, sizeof err) != 0)
        fail_msg ("start: %s", err);
    s_port = rt_http_server_port (s_srv);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_http_server_destroy (&s_srv);
    rt_apikey_auth_destroy (&s_auth);
    rt_metrics_destroy (&s_metrics);
    rt_db_destroy (&s_db);
    PQfinish (s_pg);
    /* The captured log goes where a reader of the test's output looks. */
    dup2 (s_saved_stderr, STDERR_FILENO);
    close (s_saved_stderr);
    char *log = rt_test_file_read (s_log_path, NULL);
    if (log)
        fputs (log, stderr);
    free (log);
    return 0;
}

static const rt_apikey_info_t *
s_find (const rt_apikey_info_t *keys, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp (keys[i].id, id) == 0)
            return &keys[i];
    }
    return NULL;
}

static void
test_create_list_rotate_revoke (void **state)
{
    char t1[RT_APIKEY_TOKEN_SIZE], id1[RT_APIKEY_ID_SIZE];
    char t2[RT_APIKEY_TOKEN_SIZE], id2[RT_APIKEY_ID_SIZE];
    char t3[RT_APIKEY_TOKEN_SIZE], rotated[RT_APIKEY_TOKEN_SIZE];
    char id3[RT_APIKEY_ID_SIZE], err[256];
    rt_apikey_info_t *keys;
    size_t n;
    (void)state;
    int64_t before = rt_clock_now_ms ();
    s_create ("router", "op-1", "operator", 0, t1, id1);
    s_create ("router", "op-2", "supervisor", 0, t2, id2);
    s_create ("loyalty", "shop-1", "shop", 0, t3, id3);

    /* rk_<12>_<52>: the id is the token's start, and every key its own. */
    assert_int_equal (strlen (id1), 15);
    assert_int_equal (strncmp (id1, "rk_", 3), 0);
    assert_int_equal (strlen (t1), 68);
    assert_int_equal (strncmp (t1, id1, 15), 0);
    assert_int_equal (t1[15], '_');
    assert_string_not_equal (id1, id2);
    assert_string_not_equal (t1 + 16, t2 + 16);

    assert_int_equal (rt_apikey_list (s_db, "router", NULL, &keys, &n, err, sizeof err), 0);
    assert_int_equal (n, 2);
    const rt_apikey_info_t *k = s_find (keys, n, id2);
    assert_non_null (k);
    assert_string_equal (k->service, "router");
    assert_string_equal (k->principal, "op-2");
    assert_string_equal (k->role, "supervisor");
    assert_true (k->created_ms >= before - 1000 && k->created_ms <= rt_clock_now_ms () + 1000);
    assert_int_equal (k->revoked_ms, 0);
    assert_int_equal (k->last_used_ms, 0);
    free (keys);
    assert_int_equal (rt_apikey_list (s_db, NULL, "shop-1", &keys, &n, err, sizeof err), 0);
    assert_int_equal (n, 1);
    assert_string_equal (keys[0].id, id3);
    free (keys);

    /* Rotation: the same id, another secret. */
    assert_int_equal (rt_apikey_rotate (s_db, id1, rotated, err, sizeof err), 0);
    memcpy (s_tokens[s_ntokens++], rotated, sizeof rotated);
    assert_int_equal (strncmp (rotated, id1, 15), 0);
    assert_string_not_equal (rotated, t1);

    /* Revocation: once; a revoked key is not rotated back to life. */
    assert_int_equal (rt_apikey_revoke (s_db, id1, err, sizeof err), 0);
    assert_int_equal (rt_apikey_revoke (s_db, id1, err, sizeof err), 1);
    assert_int_equal (rt_apikey_rotate (s_db, id1, rotated, err, sizeof err), 1);
    assert_int_equal (rt_apikey_revoke (s_db, "rk_aaaaaaaaaaaa", err, sizeof err), 1);
    assert_int_equal (rt_apikey_revoke (s_db, "not-an-id", err, sizeof err), 1);
    assert_int_equal (rt_apikey_list (s_db, "router", "op-1", &keys, &n, err, sizeof err), 0);
    assert_int_equal (n, 1);
    assert_true (keys[0].revoked_ms > 0);
    free (keys);

    /* An operator disabled: every live key of theirs, and nobody else's. */
    char t4[RT_APIKEY_TOKEN_SIZE], id4[RT_APIKEY_ID_SIZE];
    s_create ("router", "op-2", "supervisor", 0, t4, id4);
    assert_int_equal (rt_apikey_revoke_principal (s_db, "router", "op-2", err, sizeof err), 2);
    assert_int_equal (rt_apikey_revoke_principal (s_db, "router", "op-2", err, sizeof err), 0);
    assert_int_equal (rt_apikey_list (s_db, "loyalty", NULL, &keys, &n, err, sizeof err), 0);
    assert_int_equal (n, 1);
    assert_int_equal (keys[0].revoked_ms, 0);
    free (keys);

    /* What cannot be a key's. */
    char tx[RT_APIKEY_TOKEN_SIZE], idx[RT_APIKEY_ID_SIZE];
    assert_int_equal (rt_apikey_create (s_db, "router", "op-3", "a:b", 0, tx, idx, err, sizeof err),
                      -1);
    assert_int_equal (rt_apikey_create (s_db, "Router", "op-3", "x", 0, tx, idx, err, sizeof err),
                      -1);
    assert_int_equal (rt_apikey_create (s_db, "router", "", "x", 0, tx, idx, err, sizeof err), -1);
    assert_int_equal (rt_apikey_create (s_db, "router", "op 3", "x", 0, tx, idx, err, sizeof err),
                      -1);
    assert_int_equal (rt_test_pg_long (s_pg, "SELECT count(*) FROM apikey.keys"), 4);
}

static void
test_refusals_and_principal (void **state)
{
    char good[RT_APIKEY_TOKEN_SIZE], gid[RT_APIKEY_ID_SIZE];
    char other[RT_APIKEY_TOKEN_SIZE], oid[RT_APIKEY_ID_SIZE];
    char soon[RT_APIKEY_TOKEN_SIZE], sid[RT_APIKEY_ID_SIZE];
    char bad[RT_APIKEY_TOKEN_SIZE];
    s_resp_t r;
    (void)state;
    s_create ("router", "op-17", "supervisor", 0, good, gid);
    s_create ("loyalty", "shop-9", "shop", 0, other, oid);
    s_create ("router", "op-18", "operator", rt_clock_now_ms () + 60000, soon, sid);

    /* A good key: the handler sees whom and as what. */
    assert_int_equal (s_get_as (good, &r), 200);
    assert_string_equal (r.body, "{\"principal\":\"op-17:supervisor\",\"who\":\"op-17\",\"role\":"
                                 "\"supervisor\"}");

    uint64_t missing = s_refused ("missing");
    assert_int_equal (s_get (NULL, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_refused ("missing"), missing + 1);

    uint64_t malformed = s_refused ("malformed");
    assert_int_equal (s_get ("Authorization: Basic b3A6cHc=", &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_get_as ("rk_short_secret", &r), 401);
    s_assert_refused (&r);
    memcpy (bad, good, sizeof bad);
    bad[20] = 'A'; /* upper case is not the alphabet */
    assert_int_equal (s_get_as (bad, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_refused ("malformed"), malformed + 3);

    /* The right id with another secret. */
    memcpy (bad, good, sizeof bad);
    bad[40] = bad[40] == 'a' ? 'b' : 'a';
    uint64_t wrong = s_refused ("wrong_secret");
    assert_int_equal (s_get_as (bad, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_refused ("wrong_secret"), wrong + 1);

    /* A well-formed id nobody made. */
    memcpy (bad, good, sizeof bad);
    memcpy (bad + 3, "zzzzzzzzzzzz", 12);
    uint64_t unknown = s_refused ("unknown");
    assert_int_equal (s_get_as (bad, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_refused ("unknown"), unknown + 1);

    /* loyalty's key does not open router. */
    uint64_t elsewhere = s_refused ("other_service");
    assert_int_equal (s_get_as (other, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_refused ("other_service"), elsewhere + 1);

    /* Expiry reads the wall clock at every request. */
    assert_int_equal (s_get_as (soon, &r), 200);
    assert_non_null (strstr (r.body, "op-18:operator"));
    uint64_t expired = s_refused ("expired");
    s_clock (61000, 0);
    assert_int_equal (s_get_as (soon, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_refused ("expired"), expired + 1);
    assert_int_equal (s_get_as (good, &r), 200);
}

static void
test_revocation_and_rotation_reach_the_hook (void **state)
{
    char token[RT_APIKEY_TOKEN_SIZE], id[RT_APIKEY_ID_SIZE];
    char fresh[RT_APIKEY_TOKEN_SIZE], err[256];
    s_resp_t r;
    (void)state;
    s_create ("router", "op-20", "operator", 0, token, id);
    assert_int_equal (s_get_as (token, &r), 200);

    /* Rotated: the new token within a second, the old one refused then. */
    assert_int_equal (rt_apikey_rotate (s_db, id, fresh, err, sizeof err), 0);
    memcpy (s_tokens[s_ntokens++], fresh, sizeof fresh);
    s_clock (0, 1000);
    assert_int_equal (s_get_as (fresh, &r), 200);
    assert_non_null (strstr (r.body, "op-20:operator"));
    assert_int_equal (s_get_as (token, &r), 401);
    s_assert_refused (&r);

    /* Revoked: the cached row may let it in for the cache time, never
     * after. */
    uint64_t revoked = s_refused ("revoked");
    assert_int_equal (rt_apikey_revoke (s_db, id, err, sizeof err), 0);
    s_clock (0, CACHE_MS);
    assert_int_equal (s_get_as (fresh, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_get_as (fresh, &r), 401);
    assert_int_equal (s_refused ("revoked"), revoked + 2);
}

static long long
s_last_used_ms (const char *id)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT coalesce((extract(epoch FROM last_used_at) * 1000)::bigint, 0)"
              " FROM apikey.keys WHERE id = '%s'",
              id);
    return rt_test_pg_long (s_pg, sql);
}

static void
test_last_use_kept_to_the_minute (void **state)
{
    char token[RT_APIKEY_TOKEN_SIZE], id[RT_APIKEY_ID_SIZE];
    s_resp_t r;
    (void)state;
    s_create ("router", "op-21", "operator", 0, token, id);
    assert_int_equal (s_last_used_ms (id), 0);
    int64_t t0 = rt_clock_now_ms ();
    assert_int_equal (s_get_as (token, &r), 200);
    long long first = s_last_used_ms (id);
    assert_true (first >= t0 - 1000 && first <= rt_clock_now_ms () + 1000);

    /* Within the minute: not written again, even past the cache time. */
    s_clock (30000, CACHE_MS);
    assert_int_equal (s_get_as (token, &r), 200);
    assert_int_equal (s_get_as (token, &r), 200);
    assert_int_equal (s_last_used_ms (id), first);

    /* A minute on: written. */
    s_clock (31000, 0);
    assert_int_equal (s_get_as (token, &r), 200);
    assert_true (s_last_used_ms (id) >= first + 60000);
}

static void
test_key_store_unreachable (void **state)
{
    char token[RT_APIKEY_TOKEN_SIZE], id[RT_APIKEY_ID_SIZE];
    char later[RT_APIKEY_TOKEN_SIZE], lid[RT_APIKEY_ID_SIZE];
    s_resp_t r;
    (void)state;
    s_create ("router", "op-30", "operator", 0, token, id);
    s_create ("router", "op-31", "operator", 0, later, lid);
    s_clock (0, CACHE_MS); /* no row of earlier tests is fresh */
    assert_int_equal (s_get_as (token, &r), 200);

    uint64_t unreachable = s_refused ("unreachable");
    rt_test_db_refuse (s_dsn);
    int64_t t0 = rt_test_now_ms ();
    /* The fresh row still serves; a key not seen is refused, at once. */
    assert_int_equal (s_get_as (token, &r), 200);
    assert_int_equal (s_get_as (later, &r), 401);
    s_assert_refused (&r);
    assert_int_equal (s_get_as (later, &r), 401);
    assert_true (rt_test_now_ms () - t0 < 3000);
    /* Past the cache time no row is trusted, the database being away. */
    s_clock (0, CACHE_MS);
    assert_int_equal (s_get_as (token, &r), 401);
    s_assert_refused (&r);
    assert_true (s_refused ("unreachable") >= unreachable + 3);

    /* Back: a worker tries again a second after its last failed connect. */
    rt_test_db_allow (s_dsn);
    s_clock (0, 1000);
    assert_int_equal (s_get_as (later, &r), 200);
    assert_int_equal (s_get_as (token, &r), 200);
    assert_non_null (strstr (r.body, "op-30:operator"));
    PQfinish (s_pg);
    s_pg = rt_test_pg (s_dsn);
    rt_db_invalidate (s_db);
    assert_int_equal (rt_db_ensure_for (s_db, 10000), 0);
}

/* The token, or its secret part, anywhere in text. */
static bool
s_holds_secret (const char *text, const char *token)
{
    return strstr (text, token) || strstr (text, token + 16);
}

static void
test_tokens_neither_stored_nor_logged (void **state)
{
    (void)state;
    assert_true (s_ntokens >= 10);
    /* Every column of every row, as text (bytea as hex). */
    PGresult *res = PQexec (s_pg, "SELECT string_agg(k::text, E'\\n') FROM apikey.keys k");
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    const char *rows = PQgetvalue (res, 0, 0);
    assert_true (strlen (rows) > 0);
    for (int i = 0; i < s_ntokens; i++) {
        char hex[2 * RT_APIKEY_TOKEN_SIZE + 1];
        rt_hex_encode ((const uint8_t *)s_tokens[i] + 16, strlen (s_tokens[i] + 16), hex);
        assert_false (s_holds_secret (rows, s_tokens[i]));
        assert_null (strstr (rows, hex)); /* nor the secret's bytes as bytea */
    }
    PQclear (res);

    /* The log names keys by id, and never holds a token. */
    char *log = rt_test_file_read (s_log_path, NULL);
    assert_non_null (log);
    assert_non_null (strstr (log, "\"msg\":\"api key refused\""));
    assert_non_null (strstr (log, "\"reason\":\"revoked\""));
    assert_non_null (strstr (log, "key store unreachable"));
    assert_non_null (strstr (log, "\"key\":\"rk_"));
    for (int i = 0; i < s_ntokens; i++)
        assert_false (s_holds_secret (log, s_tokens[i]));
    free (log);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_create_list_rotate_revoke),
        cmocka_unit_test (test_refusals_and_principal),
        cmocka_unit_test (test_revocation_and_rotation_reach_the_hook),
        cmocka_unit_test (test_last_use_kept_to_the_minute),
        cmocka_unit_test (test_key_store_unreachable),
        cmocka_unit_test (test_tokens_neither_stored_nor_logged),
    };
    snprintf (s_clock_file, sizeof s_clock_file, "%s/test-apikey-clock.%d", rt_test_dir (),
              (int)getpid ());
    /* Before the first reading: the clock maps the file it names then. */
    if (rt_clock_file_set (s_clock_file, 0, 0) != 0 ||
        setenv ("RETAIN_CLOCK_FILE", s_clock_file, 1) != 0)
        return 1;
    curl_global_init (CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests (tests, s_setup, s_teardown);
    curl_global_cleanup ();
    unlink (s_clock_file);
    return rc;
}
