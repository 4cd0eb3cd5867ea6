/*
 * tracker_test: what the tests of trackerd's carrier adapters share
 * (test_tracker_carriers.c and test_tracker_<carrier>.c).
 *
 * Fixtures under tests/fixtures/tracker/<carrier>/, an adapter's answer to
 * a fixture read with every string checked (never NULL, one result per
 * query on OK, none otherwise), instants written by hand in UTC, and a
 * request's headers and JSON body read back. The helpers are static
 * inline so that each test program takes only what it uses.
 */
#ifndef TRACKER_TEST_H
#define TRACKER_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "carrier.h"
#include "rt_civil.h"
#include "rt_test.h"

/* The unix ms of a UTC date and time, for expected values the test works
 * out by hand from a carrier's local time and that place's offset. */
static inline int64_t
tt_utc (int y, int mo, int d, int h, int mi, int s)
{
    return (rt_civil_days (y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000;
}

/* tests/fixtures/tracker/<carrier>/<name> (owned; free()), its length in
 * *len. */
static inline char *
tt_fixture (const char *carrier, const char *name, size_t *len)
{
    char rel[256];
    snprintf (rel, sizeof rel, "tracker/%s/%s", carrier, name);
    return rt_test_fixture (rel, len);
}

/* Fails unless every string of answer is there, OK has one result per
 * query (n) and any other verdict none, with a reason. */
static inline void
tt_check_shape (const carrier_answer_t *a, size_t n)
{
    if (a->verdict == CARRIER_OK) {
        assert_int_equal (a->n_results, n);
        assert_true (n == 0 || a->results != NULL);
    } else {
        assert_int_equal (a->n_results, 0);
        if (!a->reason[0])
            fail_msg ("verdict %s without a reason", carrier_verdict_name (a->verdict));
    }
    for (size_t i = 0; i < a->n_results; i++) {
        const carrier_result_t *r = &a->results[i];
        assert_non_null (r->raw_code);
        assert_non_null (r->raw_text);
        assert_non_null (r->location);
        assert_non_null (r->origin_city);
        assert_non_null (r->destination_city);
        assert_non_null (r->cod_state);
        assert_true (r->n_events == 0 || r->events != NULL);
        for (size_t k = 0; k < r->n_events; k++) {
            assert_non_null (r->events[k].code);
            assert_non_null (r->events[k].text);
            assert_non_null (r->events[k].location);
        }
        assert_true (memchr (r->sub_status, '\0', sizeof r->sub_status) != NULL);
        if (!r->found && (r->mapped || r->n_events > 0))
            fail_msg ("result %zu is not found yet mapped or with events", i);
    }
}

/* c's answer to body[0..len) at status, checked for shape. The answer is
 * filled with garbage first: parse must not read what was there. */
static inline carrier_answer_t
tt_parse (const carrier_t *c, const carrier_query_t *q, size_t n, int status,
          int64_t retry_after_ms, const char *body, size_t len)
{
    carrier_answer_t a;
    memset (&a, 0x5a, sizeof a);
    c->parse (q, n, status, retry_after_ms, body, len, &a);
    tt_check_shape (&a, n);
    return a;
}

/* The same for fixture `name` of carrier c. */
static inline carrier_answer_t
tt_parse_fixture (const carrier_t *c, const carrier_query_t *q, size_t n, int status,
                  int64_t retry_after_ms, const char *name)
{
    size_t len = 0;
    char *body = tt_fixture (c->name, name, &len);
    carrier_answer_t a = tt_parse (c, q, n, status, retry_after_ms, body, len);
    free (body);
    return a;
}

/* Fails unless a's verdict, code and reason are these (reason_has: a part
 * of the reason, case ignored; NULL: any). */
static inline void
tt_expect (const carrier_answer_t *a, carrier_verdict_t verdict, const char *code,
           const char *reason_has, const char *what)
{
    if (a->verdict != verdict || strcmp (a->code, code) != 0 ||
        (reason_has && !strcasestr (a->reason, reason_has)))
        fail_msg ("%s: got %s code \"%s\" reason \"%s\"; want %s code \"%s\" reason with \"%s\"",
                  what, carrier_verdict_name (a->verdict), a->code, a->reason,
                  carrier_verdict_name (verdict), code, reason_has ? reason_has : "");
}

/* Fails unless result r is found with raw code `raw`, mapped to tag and
 * sub, and returning as said. */
static inline void
tt_expect_status (const carrier_result_t *r, const char *raw, tracking_tag_t tag, const char *sub,
                  bool returning)
{
    if (!r->found || strcmp (r->raw_code, raw) != 0 || !r->mapped || r->tag != tag ||
        strcmp (r->sub_status, sub) != 0 || r->returning != returning)
        fail_msg ("got found=%d raw \"%s\" mapped=%d %s/%s returning=%d; want raw \"%s\" %s/%s "
                  "returning=%d",
                  r->found, r->raw_code, r->mapped, status_tag_name (r->tag), r->sub_status,
                  r->returning, raw, status_tag_name (tag), sub, returning);
}

/* Fails unless two instants are equal, naming what they are. */
static inline void
tt_expect_ms (int64_t got, int64_t want, const char *what)
{
    if (got != want)
        fail_msg ("%s: got %lld, want %lld (%+lld s)", what, (long long)got, (long long)want,
                  (long long)(got - want) / 1000);
}

/* The value of header `name` among req's lines, NULL when absent. */
static inline const char *
tt_header (const carrier_request_t *req, const char *name)
{
    size_t n = strlen (name);
    for (size_t i = 0; i < RT_HTTP_OUTREQ_HEADERS && req->headers[i]; i++)
        if (strncasecmp (req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
            return req->headers[i] + n + 2;
    return NULL;
}

/* req's body as JSON (owned), failing when it is not. */
static inline json_t *
tt_body_json (const carrier_request_t *req)
{
    json_error_t error;
    assert_non_null (req->body);
    assert_int_equal (req->body_len, strlen (req->body));
    json_t *doc = json_loadb (req->body, req->body_len, 0, &error);
    if (!doc)
        fail_msg ("body is not JSON (%s): %s", error.text, req->body);
    return doc;
}

/* Fails unless the secret appears nowhere in what is logged. */
static inline void
tt_no_secret_logged (const carrier_request_t *req, const char *secret)
{
    assert_non_null (req->log_url);
    if (strstr (req->log_url, secret))
        fail_msg ("the credential is in log_url: %s", req->log_url);
}

/* Every prefix of body (a truncated answer) gives OK or RETRY, with its
 * shape whole: the adapter never crashes on a cut. */
static inline void
tt_every_prefix (const carrier_t *c, const carrier_query_t *q, size_t n, const char *body,
                 size_t len)
{
    for (size_t cut = 0; cut < len; cut++) {
        char *part = malloc (cut ? cut : 1);
        assert_non_null (part);
        memcpy (part, body, cut);
        carrier_answer_t a = tt_parse (c, q, n, 200, -1, part, cut);
        if (a.verdict != CARRIER_OK && a.verdict != CARRIER_RETRY)
            fail_msg ("%s: the first %zu bytes gave %s (%s)", c->name, cut,
                      carrier_verdict_name (a.verdict), a.reason);
        carrier_answer_free (&a);
        free (part);
    }
}

#endif
