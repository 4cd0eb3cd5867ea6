/*
 * rt_test_channel: what the unit tests of ingest's channel handlers share.
 *
 * Each handler (services/ingest/channel.h) is driven with plain data: a
 * request built here from a method, a path, headers and a body; a fixture
 * of tests/fixtures/ingest/<channel>; an answer checked the way a
 * provider would see it: one item that packs, or a refusal with its
 * status, its label, a reason that names the fault, and nothing else (no
 * items, no answer body). A sweep posts every prefix and many one-byte
 * corruptions of real bodies, each of which must be taken or refused 4xx,
 * never crash or leak (AddressSanitizer watches). Handlers whose tests
 * keep a request under construction (Meta, Twilio, Mailgun) share
 * rt_test_channel_call_t. Assertions fail the test (cmocka).
 *
 * The tests including this header ask for services/ingest by name
 * (tests/CMakeLists.txt), as channel.h stays ingest's own.
 */
#ifndef RT_TEST_CHANNEL_H
#define RT_TEST_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"

/* Room for a signature header's value: "sha256=" and hex HMAC-SHA256 (71),
 * or Twilio's Base64 HMAC-SHA1 (28), and the NUL. */
#define RT_TEST_CHANNEL_SIG_LEN 80

/* The bytes of tests/fixtures/ingest/<channel>/<name>, NUL-terminated
 * (owned; free()); *len, when not NULL, gets their count. Fails the test
 * when unreadable. */
char *rt_test_channel_fixture (const char *channel, const char *name, size_t *len);

/* The same with its trailing line ends cut: a signature a third party's
 * code wrote beside a fixture (<name>.sig). */
char *rt_test_channel_fixture_line (const char *channel, const char *name, size_t *len);

/* The settings of the inboxes a test makes (ingest_inbox_t.config, lent):
 * rt_test_channel_setup, a cmocka group setup, makes them an empty
 * object, rt_test_channel_config_set (owned) others; the group teardown
 * rt_test_channel_teardown frees them. Both return 0 (the setup -1 when
 * out of memory). */
int rt_test_channel_setup (void **state);
int rt_test_channel_config_set (json_t *config);
int rt_test_channel_teardown (void **state);
const json_t *rt_test_channel_config (void);

/* "sha256=<hex HMAC-SHA256 of len bytes of body under key>" into out, as
 * Meta and a PBX sign. */
void rt_test_channel_sha256_sig (const char *key, const void *body, size_t len,
                                 char out[RT_TEST_CHANNEL_SIG_LEN]);

/* The channel handler a test program is about, and where its requests
 * come from. */
typedef struct {
    const char *fixtures;        /* its folder under tests/fixtures/ingest */
    ingest_handler_fn handler;   /* the handler under test */
    const char *inbox;           /* the inbox id requests are for */
    Retain__V1__Channel channel; /* that inbox's channel */
    const char *path;            /* the route they come to */
    const char *public_url;      /* the URL the provider called */
    int64_t now_ms;              /* when they arrive */
} rt_test_channel_t;

/* ch's inbox with these secrets and rt_test_channel_config's settings. */
ingest_inbox_t rt_test_channel_inbox (const rt_test_channel_t *ch, const char *secret,
                                      const char *previous);

/* Calls ch's handler for inbox with method at ch's path, len bytes of body
 * (NULL for none) and headers[0..n), those whose value is NULL left out;
 * result is zeroed first. Returns the handler's answer. */
int rt_test_channel_call (const rt_test_channel_t *ch, const ingest_inbox_t *inbox,
                          const char *method, const ingest_header_t headers[], size_t n,
                          const void *body, size_t len, ingest_result_t *result);

/* Asserts rc 0 and a result of exactly one item of type with no status,
 * whose message packs; returns the message (the result's). */
ProtobufCMessage *rt_test_channel_one (int rc, const ingest_result_t *result, const char *type);

/* rt_test_channel_one of an InboundMessage, also asserting the message is
 * one and carries the item's external id. */
Retain__V1__InboundMessage *rt_test_channel_inbound (int rc, const ingest_result_t *result);

/* Item i of the result, asserting there is one and that it is of type. */
ProtobufCMessage *rt_test_channel_item (const ingest_result_t *result, size_t i, const char *type);

/* Asserts rc -1, the status and label, a reason containing `reason`
 * (NULL: any, but not empty), and no items nor answer body. The result
 * is kept for the caller to read further. */
void rt_test_channel_refused (int rc, const ingest_result_t *result, int status, const char *label,
                              const char *reason);

/* rt_test_channel_refused, then the result reset for the next call. */
void rt_test_channel_fails (int rc, ingest_result_t *result, int status, const char *label,
                            const char *reason);

/* Posts len bytes of body (signed as its handler expects) into *result
 * (zeroed or reset before); returns the handler's answer. */
typedef int (*rt_test_channel_post_fn) (void *arg, const char *body, size_t len,
                                        ingest_result_t *result);

/* For each fixture of names[0..n) under tests/fixtures/ingest/<channel>:
 * posts every prefix of it, then the whole body with each byte in turn
 * replaced by one of JSON's structural characters; each must be taken, or
 * refused with no items and no answer body: with 400, or, when
 * signed_inside (the signature travels in the body, so a cut or a flip
 * may break it), with any status from 400. */
void rt_test_channel_sweep (const char *channel, const char *const names[], size_t n,
                            rt_test_channel_post_fn post, void *arg, bool signed_inside);

/* A replay guard (ingest_request_t.replay_check) that remembers up to 8
 * nonces: answers 1 for one it has seen, and counts its calls. */
typedef struct {
    char seen[8][64];     /* the nonces so far */
    int n;                /* how many of seen */
    int calls;            /* every call */
    int64_t last_expires; /* the expiry the last call asked for */
} rt_test_channel_guard_t;

/* The guard's ingest_request_t.replay_check; arg is its
 * rt_test_channel_guard_t. */
int rt_test_channel_replay_check (void *arg, const char *nonce, int64_t expires_ms);

/* A request under construction, for a handler's tests that change one
 * part at a time: headers[0] is Content-Type, headers[1] the signature
 * when there is one. */
typedef struct {
    ingest_header_t headers[4];        /* the request's */
    char sig[RT_TEST_CHANNEL_SIG_LEN]; /* the signature header's value */
    char *body;                        /* the body it owns, NULL before the first post */
    size_t len;                        /* bytes in body */
    ingest_request_t req;              /* points at headers and body */
    ingest_inbox_t inbox;              /* the inbox, its config below */
    json_t *config;                    /* the inbox's settings, an object */
    ingest_result_t result;            /* the last answer */
    rt_test_channel_guard_t guard;     /* a replay guard, installed by the test when wanted */
    ingest_handler_fn handler;         /* the handler under test */
} rt_test_channel_call_t;

/* Zeroes *c: ch's inbox with secret (no previous one) and an empty
 * config of its own, a POST to ch's path with no headers yet, answered by
 * ch's handler. */
void rt_test_channel_call_init (rt_test_channel_call_t *c, const rt_test_channel_t *ch,
                                const char *secret);

/* Takes a copy of len bytes of body, sets Content-Type ctype and, when
 * sig_header is not NULL, that header with sig (copied into c->sig unless
 * it is c->sig), then runs the handler on a reset result. */
int rt_test_channel_call_post (rt_test_channel_call_t *c, const char *body, size_t len,
                               const char *ctype, const char *sig_header, const char *sig);

/* Runs the handler again on the request as it is now, on a reset result. */
int rt_test_channel_call_run (rt_test_channel_call_t *c);

/* rt_test_channel_refused of rc and c's result, with any reason. */
void rt_test_channel_call_refused (const rt_test_channel_call_t *c, int rc, int status,
                                   const char *label);

/* The one item of c's result, asserted to be an InboundMessage. */
Retain__V1__InboundMessage *rt_test_channel_call_inbound (const rt_test_channel_call_t *c);

/* Frees what c holds. */
void rt_test_channel_call_done (rt_test_channel_call_t *c);

#endif
