/*
 * rt_test_api: JSON API calls from tests, recorded for the OpenAPI check
 * (rt_test_api.h).
 */
#include "rt_test_api.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"

#define S_NPM_DIR RT_TEST_SOURCE_DIR "/tests/integration/openapi"

static size_t
s_body (char *data, size_t size, size_t n, void *arg)
{
    rt_test_api_reply_t *r = arg;
    char *grown = realloc (r->body, r->len + size * n + 1);
    if (!grown)
        return 0;
    r->body = grown;
    memcpy (r->body + r->len, data, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t
s_head (char *data, size_t size, size_t n, void *arg)
{
    rt_test_api_reply_t *r = arg;
    if (size * n >= 21 && strncasecmp (data, "Idempotent-Replayed:", 20) == 0 &&
        strstr (data, "true"))
        r->replayed = true;
    return size * n;
}

void
rt_test_api_open (rt_test_api_t *api, const char *name, int port)
{
    memset (api, 0, sizeof *api);
    if (system ("command -v node >/dev/null 2>&1") != 0)
        fail_msg ("%s: node is not on PATH (deploy/deps --test installs nodejs and npm)", name);
    if (access (S_NPM_DIR "/node_modules/ajv/package.json", R_OK) != 0 &&
        system ("cd '" S_NPM_DIR "' && npm ci --no-audit --no-fund >&2") != 0)
        fail_msg ("%s: npm ci failed in %s", name, S_NPM_DIR);
    api->port = port;
    snprintf (api->seen, sizeof api->seen, "%s/%s-answers.jsonl", rt_test_dir (), name);
    unlink (api->seen);
}

/* The route with its one {...} parameter filled with id. */
static void
s_path (const char *route, const char *id, char *out, size_t outlen)
{
    const char *open = strchr (route, '{'), *close = open ? strchr (open, '}') : NULL;
    if (open && close && id)
        snprintf (out, outlen, "%.*s%s%s", (int)(open - route), route, id, close + 1);
    else
        snprintf (out, outlen, "%s", route);
}

void
rt_test_api_record (const rt_test_api_t *api, const char *method, const char *route,
                    const char *url, long status, const char *type, const char *body)
{
    json_t *rec = json_pack ("{s:s, s:s, s:s, s:i, s:s, s:s}", "method", method, "path", route,
                             "url", url, "status", (int)status, "type", type, "body", body);
    FILE *f;
    assert_non_null (rec);
    f = fopen (api->seen, "a");
    assert_non_null (f);
    json_dumpf (rec, f, JSON_COMPACT);
    fputc ('\n', f);
    fclose (f);
    json_decref (rec);
}

/* Appends the answer to the answers file. */
static void
s_record (const rt_test_api_t *api, const rt_test_api_request_t *req, const char *url,
          const rt_test_api_reply_t *r)
{
    rt_test_api_record (api, req->method, req->route, url, r->status, r->type, r->body);
}

json_t *
rt_test_api_at (json_t *j, const char *path)
{
    char buf[256], *tok, *save = NULL;
    snprintf (buf, sizeof buf, "%s", path);
    for (tok = strtok_r (buf, ".", &save); tok && j; tok = strtok_r (NULL, ".", &save)) {
        if (json_is_array (j))
            j = json_array_get (j, (size_t)atoi (tok));
        else
            j = json_object_get (j, tok);
    }
    return j;
}

const char *
rt_test_api_str (json_t *j, const char *path)
{
    return json_string_value (rt_test_api_at (j, path));
}

rt_test_api_reply_t
rt_test_api_send (const rt_test_api_t *api, const rt_test_api_request_t *req)
{
    rt_test_api_reply_t r = {0};
    char url[4096], path[2048], auth[320], idem[320], ctype[160];
    struct curl_slist *h = NULL;
    char *ct = NULL;
    CURL *c = curl_easy_init ();
    assert_non_null (c);
    s_path (req->route, req->id, path, sizeof path);
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s%s%s", api->port, path, req->query ? "?" : "",
              req->query ? req->query : "");
    if (req->key) {
        snprintf (auth, sizeof auth, "Authorization: Bearer %s", req->key);
        h = curl_slist_append (h, auth);
    }
    if (req->idempotency) {
        snprintf (idem, sizeof idem, "Idempotency-Key: %s", req->idempotency);
        h = curl_slist_append (h, idem);
    }
    if (req->body) {
        snprintf (ctype, sizeof ctype, "Content-Type: %s",
                  req->content_type ? req->content_type : "application/json");
        h = curl_slist_append (h, ctype);
    }
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body || strcmp (req->method, "GET") != 0) {
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, (long)(req->body ? strlen (req->body) : 0));
    }
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_head);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt (c, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform (c) != CURLE_OK)
        fail_msg ("%s %s: no answer", req->method, url);
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo (c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf (r.type, sizeof r.type, "%s", ct ? ct : "");
    curl_easy_cleanup (c);
    curl_slist_free_all (h);
    if (!r.body) {
        r.body = strdup ("");
        assert_non_null (r.body);
    }
    r.json = json_loads (r.body, JSON_DECODE_ANY, NULL);
    s_record (api, req, url, &r);
    return r;
}

rt_test_api_reply_t
rt_test_api_call (const rt_test_api_t *api, const char *method, const char *route, const char *id,
                  const char *query, const char *key, const char *body, const char *idempotency)
{
    rt_test_api_request_t req = {.method = method,
                                 .route = route,
                                 .id = id,
                                 .query = query,
                                 .key = key,
                                 .body = body,
                                 .idempotency = idempotency};
    return rt_test_api_send (api, &req);
}

void
rt_test_api_reply_free (rt_test_api_reply_t *r)
{
    free (r->body);
    json_decref (r->json);
    memset (r, 0, sizeof *r);
}

const char *
rt_test_api_problem_type (const rt_test_api_reply_t *r)
{
    const char *t = json_string_value (json_object_get (r->json, "type"));
    if (!t || !strrchr (t, '/'))
        fail_msg ("not problem details (%ld %s): %s", r->status, r->type, r->body);
    assert_string_equal (r->type, "application/problem+json");
    return strrchr (t, '/') + 1;
}

void
rt_test_api_expect_problem (rt_test_api_reply_t r, long status, const char *type)
{
    if (r.status != status)
        fail_msg ("expected %ld %s, got %ld: %s", status, type, r.status, r.body);
    if (strcmp (rt_test_api_problem_type (&r), type) != 0)
        fail_msg ("expected %ld %s, got %ld: %s", status, type, r.status, r.body);
    rt_test_api_reply_free (&r);
}

void
rt_test_api_check (const rt_test_api_t *api, const char *doc)
{
    char cmd[2048];
    int status;
    snprintf (cmd, sizeof cmd, "node '%s/check.mjs' '%s' '%s' >&2", S_NPM_DIR, doc, api->seen);
    status = system (cmd);
    if (status != 0)
        fail_msg ("the OpenAPI check failed (status %d); the answers are in %s", status, api->seen);
}

void
rt_test_api_check_router (void **state)
{
    rt_test_api_check (*state, RT_TEST_API_ROUTER_DOC);
}
