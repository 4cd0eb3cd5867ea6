/*
 * rt_test_ingest: what the ingest (channel) integration tests share.
 *
 * retain-ingestd started as a test's child next to a retain-busd on the
 * test's own database, inbox rows written and time given for ingestd's
 * once-a-second reload, webhooks signed the way each provider signs (the
 * test's own arithmetic, not ingestd's, so that a wrong check in ingestd
 * cannot agree with itself), and what reached the bus read back. Built on
 * rt_test. Setup errors fail the test (cmocka) rather than being returned:
 * a test that could not set up has nothing to assert.
 */
#ifndef RT_TEST_INGEST_H
#define RT_TEST_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "retain/v1/message.pb-c.h"
#include "rt_test.h"

/* Room for a signature as text: hex HMAC-SHA256 (64 digits) or Twilio's
 * Base64 HMAC-SHA1 (28), and the NUL. */
#define RT_TEST_INGEST_SIG_LEN 65

/* A retain-ingestd started for a test, and what it takes to start it again. */
typedef struct {
    pid_t pid;            /* the process, 0 when not running */
    int http_port;        /* its webhook port */
    int admin_port;       /* its admin port */
    char base[64];        /* its own address, "http://127.0.0.1:<http_port>" */
    char log[64];         /* its log file under rt_test_dir (appended across restarts) */
    char dsn[1024];       /* the database it was started on */
    char public_url[256]; /* its --public-url, "" for none */
    char extra[8][128];   /* further arguments it was started with */
    size_t nextra;        /* how many of extra */
} rt_test_ingestd_t;

/* Starts retain-ingestd on dsn, output appended to <rt_test_dir>/<log>, and
 * waits for its /readyz (30 s; fails the test otherwise, naming the log).
 * Ports left 0 in *d are chosen free. public_url is NULL for none, "" for
 * its own address (d->base), else the URL to pass. extra are further
 * arguments (NULL-terminated, may be NULL; at most 8, each under 128 bytes).
 * Everything is copied into *d. */
void rt_test_ingestd_start (rt_test_ingestd_t *d, const char *dsn, const char *log,
                            const char *public_url, const char *const extra[]);

/* Starts it again as rt_test_ingestd_start last did (same ports, same log,
 * same arguments), after the test killed it. */
void rt_test_ingestd_restart (rt_test_ingestd_t *d);

/* A test's ingest: its database, the log, the daemon under test, and the
 * test's own connection for setup and assertions. */
typedef struct {
    char dsn[1024];            /* the test database */
    PGconn *conn;              /* the test's connection, NULL when closed */
    rt_test_busd_t busd;       /* the log; pid 0 when not started */
    rt_test_ingestd_t ingestd; /* the daemon; pid 0 when not started */
} rt_test_ingest_t;

/* Zeroes *t, creates database <name>_<pid>, starts retain-busd
 * (<name>-busd.log) and retain-ingestd (<name>-ingestd.log; public_url and
 * extra as rt_test_ingestd_start) on it, and connects t->conn. */
void rt_test_ingest_start (rt_test_ingest_t *t, const char *name, const char *public_url,
                           const char *const extra[]);

/* Closes t->conn and stops ingestd, then busd, whichever runs (pid > 0),
 * with SIGTERM; fails the test unless each exits 0 (rt_test_stop). Each
 * part is marked stopped, so a second call does nothing. */
void rt_test_ingest_stop (rt_test_ingest_t *t);

/* rt_test_ingest_stop as a cmocka teardown, for a test whose setup puts its
 * rt_test_ingest_t in *state before starting it (so that what a failed
 * setup started is stopped too); nothing when *state is NULL. Returns 0. */
int rt_test_ingest_teardown (void **state);

/* An inbox row of ingest.inboxes: a channel account webhooks arrive for. */
typedef struct {
    const char *id;      /* the inbox id, the last part of its webhook path */
    const char *channel; /* its channel's name ("telegram", "sms", ...) */
    const char *secret;  /* its signing secret or token */
    const char *config;  /* its settings (a JSON object), NULL for the table's default */
} rt_test_inbox_t;

/* Inserts inboxes[0..n) through t->conn (the provider is the channel's
 * default), then waits 1.5 s: ingestd reloads its inboxes every second.
 * Aborts on a refused row. */
void rt_test_ingest_inboxes (rt_test_ingest_t *t, const rt_test_inbox_t inboxes[], size_t n);

/* Hex HMAC-SHA256 of len bytes of data under key into out: how Viber, Meta,
 * Mailgun, a PBX and a shop signing its web chat visitors sign. */
void rt_test_ingest_hmac_hex (const char *key, const void *data, size_t len,
                              char out[RT_TEST_INGEST_SIG_LEN]);

/* Twilio's X-Twilio-Signature for the form (len bytes) POSTed to url: Base64
 * HMAC-SHA1 under token of url followed by each decoded parameter, sorted
 * by name, as name then value. Returns 0, or -1 (out untouched) when the
 * form does not parse (a malformed escape, a %00). */
int rt_test_ingest_twilio_sign (const char *token, const char *url, const char *form, size_t len,
                                char out[RT_TEST_INGEST_SIG_LEN]);

/* POSTs the form (len bytes) to 127.0.0.1:<port><path> as Twilio would,
 * signed for <public_url><path>, the address Twilio was given. Returns and
 * fills reply (may be NULL) as rt_test_http_request; fails the test when
 * the form does not parse. */
long rt_test_ingest_twilio_post (int port, const char *public_url, const char *token,
                                 const char *path, const char *form, size_t len,
                                 rt_test_reply_t *reply);

/* POSTs the JSON body to 127.0.0.1:<port><path> signed as Meta signs
 * (X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body under the app
 * secret>). Returns and fills reply (may be NULL) as rt_test_http_request. */
long rt_test_ingest_meta_post (int port, const char *secret, const char *path, const char *body,
                               rt_test_reply_t *reply);

/* Waits up to timeout_ms until bus.events holds want events (or more) of
 * type whose key starts with key_prefix (NULL: any event of type); returns
 * the count then. */
long long rt_test_ingest_wait_events (PGconn *conn, const char *key_prefix, const char *type,
                                      long long want, int timeout_ms);

/* Waits up to 30 s for busd to drain outbox.pending into the log; returns the
 * rows still there (0: everything answered 2xx so far is in bus.events). */
long long rt_test_ingest_wait_drained (PGconn *conn);

/* The InboundMessages in bus.events, in log order; *n gets their count.
 * Owned: free with rt_test_ingest_messages_free. Fails the test when one
 * does not unpack. */
Retain__V1__InboundMessage **rt_test_ingest_messages (PGconn *conn, size_t *n);

/* Frees what rt_test_ingest_messages returned; NULL is fine. */
void rt_test_ingest_messages_free (Retain__V1__InboundMessage **msgs, size_t n);

#endif
