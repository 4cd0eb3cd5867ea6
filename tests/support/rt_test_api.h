/*
 * rt_test_api: calling retain's JSON APIs from a test as a client would,
 * with every answer kept for the OpenAPI check.
 *
 * A call goes over a real socket (libcurl) to 127.0.0.1:<port>, with the
 * operator's key as `Authorization: Bearer`, an optional Idempotency-Key
 * and a JSON body; its answer comes back whole (status, Content-Type,
 * body, the body parsed when it is JSON, whether it was a replay) and is
 * appended to a JSON-lines file under rt_test_dir: method, the route's
 * path template as the document names it, status, Content-Type, body.
 * rt_test_api_check then hands the document and that file to
 * tests/integration/openapi/check.mjs, which validates the document with
 * @seriousme/openapi-schema-validator and every answer against its
 * response schema with ajv (JSON Schema 2020-12): the test fails when the
 * document is invalid or an answer does not match.
 *
 * Needs node on PATH (deploy/deps --test) and installs the npm packages
 * with `npm ci` when they are missing: rt_test_api_open fails the test
 * without them, never skips. Setup errors fail the test (cmocka).
 */
#ifndef RT_TEST_API_H
#define RT_TEST_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* An API under test. */
typedef struct {
    int port;       /* where it listens on 127.0.0.1 */
    char seen[512]; /* the JSON-lines file of every answer */
} rt_test_api_t;

/* An answer, whole. */
typedef struct {
    long status;    /* HTTP status */
    char *body;     /* owned, NUL-terminated ("" when none) */
    size_t len;     /* bytes in body */
    char type[128]; /* Content-Type */
    bool replayed;  /* Idempotent-Replayed: true */
    json_t *json;   /* body parsed, NULL when not JSON */
} rt_test_api_reply_t;

/* A request; every field but method and route optional (NULL). */
typedef struct {
    const char *method;       /* "GET", "POST", "PATCH", ... */
    const char *route;        /* the document's path template, "/v1/customers/{id}": its one
                                 {...} parameter is filled with id */
    const char *id;           /* the path parameter */
    const char *query;        /* the query string, without "?" */
    const char *key;          /* the API key; NULL: none */
    const char *body;         /* the body */
    const char *content_type; /* the body's; NULL: application/json */
    const char *idempotency;  /* Idempotency-Key */
} rt_test_api_request_t;

/* Makes sure node and the check's npm packages are there (npm ci when
 * not) and starts a fresh answers file <rt_test_dir>/<name>-answers.jsonl
 * for the API on port. */
void rt_test_api_open (rt_test_api_t *api, const char *name, int port);

/* Sends req, records the answer, returns it (rt_test_api_reply_free). */
rt_test_api_reply_t rt_test_api_send (const rt_test_api_t *api, const rt_test_api_request_t *req);

/* rt_test_api_send of the usual shape. */
rt_test_api_reply_t rt_test_api_call (const rt_test_api_t *api, const char *method,
                                      const char *route, const char *id, const char *query,
                                      const char *key, const char *body, const char *idempotency);

void rt_test_api_reply_free (rt_test_api_reply_t *r);

/* The problem type's suffix of a problem answer ("not-found"); fails the
 * test unless r is application/problem+json with a type. */
const char *rt_test_api_problem_type (const rt_test_api_reply_t *r);

/* Asserts r is problem details of that status and type suffix, and frees it. */
void rt_test_api_expect_problem (rt_test_api_reply_t r, long status, const char *type);

/* Appends an answer the test got by other means (an event stream its own
 * client read) to the answers file, as rt_test_api_send records one:
 * method, the route's path template, the URL asked, status, Content-Type
 * and body. */
void rt_test_api_record (const rt_test_api_t *api, const char *method, const char *route,
                         const char *url, long status, const char *type, const char *body);

/* The member of j at a dotted path of names and array indexes
 * ("items.0.id"), NULL when absent (lent from j). */
json_t *rt_test_api_at (json_t *j, const char *path);

/* The string at that path, NULL when absent or not a string. */
const char *rt_test_api_str (json_t *j, const char *path);

/* routerd's OpenAPI document, for rt_test_api_check. */
#define RT_TEST_API_ROUTER_DOC RT_TEST_SOURCE_DIR "/services/router/api/openapi.json"

/* Checks doc (an OpenAPI 3.1 file) and every answer recorded so far;
 * fails the test naming the answers file when anything does not match. */
void rt_test_api_check (const rt_test_api_t *api, const char *doc);

/* A cmocka test of its own: rt_test_api_check of routerd's document and
 * the answers of the rt_test_api_t given as its initial state
 * (cmocka_unit_test_prestate). */
void rt_test_api_check_router (void **state);

#endif
