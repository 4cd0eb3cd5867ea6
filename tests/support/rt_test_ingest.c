/*
 * rt_test_ingest: the ingest tests' daemons, inboxes, signers and bus
 * readers (see rt_test_ingest.h).
 */
#include "rt_test_ingest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_crypto.h"
#include "rt_form.h"

/* ingestd reads ingest.inboxes every second: after 1.5 s a whole reload
 * has begun after the insert. */
#define S_INBOX_RELOAD_US 1500000

void
rt_test_ingestd_restart (rt_test_ingestd_t *d)
{
    char a_dsn[1100], a_http[64], a_admin[64], a_public[300];
    char *argv[16];
    size_t n = 0;
    argv[n++] = "retain-ingestd";
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", d->dsn);
    snprintf (a_http, sizeof a_http, "--http=127.0.0.1:%d", d->http_port);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", d->admin_port);
    argv[n++] = a_dsn;
    argv[n++] = a_http;
    argv[n++] = a_admin;
    if (d->public_url[0]) {
        snprintf (a_public, sizeof a_public, "--public-url=%s", d->public_url);
        argv[n++] = a_public;
    }
    for (size_t i = 0; i < d->nextra; i++)
        argv[n++] = d->extra[i];
    argv[n] = NULL;
    d->pid = rt_test_spawn ("retain-ingestd", argv, NULL, d->log);
    if (!rt_test_wait_ready (d->admin_port, 30000))
        fail_msg ("retain-ingestd did not become ready; see %s/%s", rt_test_dir (), d->log);
}

void
rt_test_ingestd_start (rt_test_ingestd_t *d, const char *dsn, const char *log,
                       const char *public_url, const char *const extra[])
{
    if (!d->http_port)
        d->http_port = rt_test_free_port ();
    if (!d->admin_port)
        d->admin_port = rt_test_free_port ();
    snprintf (d->base, sizeof d->base, "http://127.0.0.1:%d", d->http_port);
    snprintf (d->log, sizeof d->log, "%s", log);
    snprintf (d->dsn, sizeof d->dsn, "%s", dsn);
    snprintf (d->public_url, sizeof d->public_url, "%s",
              !public_url     ? ""
              : public_url[0] ? public_url
                              : d->base);
    d->nextra = 0;
    for (size_t i = 0; extra && extra[i]; i++) {
        size_t cap = sizeof d->extra / sizeof *d->extra;
        if (i >= cap || strlen (extra[i]) >= sizeof d->extra[i])
            fail_msg ("rt_test_ingestd_start: at most %zu arguments of %zu bytes", cap,
                      sizeof d->extra[i] - 1);
        snprintf (d->extra[i], sizeof d->extra[i], "%s", extra[i]);
        d->nextra++;
    }
    rt_test_ingestd_restart (d);
}

void
rt_test_ingest_start (rt_test_ingest_t *t, const char *name, const char *public_url,
                      const char *const extra[])
{
    char log[64];
    memset (t, 0, sizeof *t);
    rt_test_db_create (name, t->dsn, sizeof t->dsn);
    snprintf (log, sizeof log, "%s-busd.log", name);
    rt_test_busd_start (&t->busd, t->dsn, log, NULL, true);
    snprintf (log, sizeof log, "%s-ingestd.log", name);
    rt_test_ingestd_start (&t->ingestd, t->dsn, log, public_url, extra);
    t->conn = rt_test_pg (t->dsn);
}

void
rt_test_ingest_stop (rt_test_ingest_t *t)
{
    pid_t pid;
    if (t->conn) {
        PQfinish (t->conn);
        t->conn = NULL;
    }
    /* Marked stopped before the check, which may end the test. */
    pid = t->ingestd.pid;
    t->ingestd.pid = 0;
    if (pid > 0)
        rt_test_stop (pid, "retain-ingestd");
    pid = t->busd.pid;
    t->busd.pid = 0;
    if (pid > 0)
        rt_test_stop (pid, "retain-busd");
}

int
rt_test_ingest_teardown (void **state)
{
    /* cmocka runs the teardown after a setup that failed, too. */
    if (*state)
        rt_test_ingest_stop (*state);
    return 0;
}

void
rt_test_ingest_inboxes (rt_test_ingest_t *t, const rt_test_inbox_t inboxes[], size_t n)
{
    static const char *const with_config =
        "INSERT INTO ingest.inboxes (id, channel, secret, config) VALUES ($1, $2, $3, $4)";
    static const char *const without =
        "INSERT INTO ingest.inboxes (id, channel, secret) VALUES ($1, $2, $3)";
    for (size_t i = 0; i < n; i++) {
        const char *params[4] = {inboxes[i].id, inboxes[i].channel, inboxes[i].secret,
                                 inboxes[i].config};
        PGresult *res = PQexecParams (t->conn, inboxes[i].config ? with_config : without,
                                      inboxes[i].config ? 4 : 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus (res) != PGRES_COMMAND_OK)
            fail_msg ("inbox %s: %s", inboxes[i].id, PQresultErrorMessage (res));
        PQclear (res);
    }
    usleep (S_INBOX_RELOAD_US);
}

void
rt_test_ingest_hmac_hex (const char *key, const void *data, size_t len,
                         char out[RT_TEST_INGEST_SIG_LEN])
{
    uint8_t mac[RT_SHA256_LEN];
    rt_hmac_sha256 (key, strlen (key), data, len, mac);
    rt_hex_encode (mac, sizeof mac, out);
}

int
rt_test_ingest_twilio_sign (const char *token, const char *url, const char *form, size_t len,
                            char out[RT_TEST_INGEST_SIG_LEN])
{
    char err[128];
    rt_form_t *parsed = rt_form_parse (form, len, err, sizeof err);
    const rt_form_pair_t *const *sorted;
    uint8_t mac[RT_SHA1_LEN];
    char *data;
    size_t cap, n;
    if (!parsed)
        return -1;
    sorted = rt_form_sorted (parsed);
    /* Decoding never lengthens: the pairs fit in the form's own length. */
    cap = strlen (url) + len + 1;
    data = malloc (cap);
    assert_non_null (data);
    n = (size_t)snprintf (data, cap, "%s", url);
    for (size_t i = 0; i < rt_form_count (parsed); i++)
        n += (size_t)snprintf (data + n, cap - n, "%s%s", sorted[i]->name, sorted[i]->value);
    assert_true (n < cap);
    rt_hmac_sha1 (token, strlen (token), data, n, mac);
    rt_base64_encode (mac, sizeof mac, out);
    free (data);
    rt_form_destroy (&parsed);
    return 0;
}

long
rt_test_ingest_twilio_post (int port, const char *public_url, const char *token, const char *path,
                            const char *form, size_t len, rt_test_reply_t *reply)
{
    char url[512], sig[RT_TEST_INGEST_SIG_LEN], header[128];
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", header, NULL};
    snprintf (url, sizeof url, "%s%s", public_url, path);
    if (rt_test_ingest_twilio_sign (token, url, form, len, sig) != 0)
        fail_msg ("the form to sign for %s does not parse", url);
    snprintf (header, sizeof header, "X-Twilio-Signature: %s", sig);
    return rt_test_http_request (port, "POST", path, form, len, headers, reply);
}

long
rt_test_ingest_meta_post (int port, const char *secret, const char *path, const char *body,
                          rt_test_reply_t *reply)
{
    char sig[RT_TEST_INGEST_SIG_LEN], header[160];
    const char *headers[] = {"Content-Type: application/json", header, NULL};
    rt_test_ingest_hmac_hex (secret, body, strlen (body), sig);
    snprintf (header, sizeof header, "X-Hub-Signature-256: sha256=%s", sig);
    return rt_test_http_request (port, "POST", path, body, strlen (body), headers, reply);
}

long long
rt_test_ingest_wait_events (PGconn *conn, const char *key_prefix, const char *type, long long want,
                            int timeout_ms)
{
    char sql[512], *lit_type, *lit_key = NULL;
    long long n;
    lit_type = PQescapeLiteral (conn, type, strlen (type));
    assert_non_null (lit_type);
    if (key_prefix) {
        char pattern[256];
        snprintf (pattern, sizeof pattern, "%s%%", key_prefix);
        lit_key = PQescapeLiteral (conn, pattern, strlen (pattern));
        assert_non_null (lit_key);
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM bus.events WHERE key LIKE %s AND type = %s", lit_key,
                  lit_type);
    } else
        snprintf (sql, sizeof sql, "SELECT count(*) FROM bus.events WHERE type = %s", lit_type);
    PQfreemem (lit_type);
    PQfreemem (lit_key);
    n = rt_test_pg_wait_long (conn, sql, want, timeout_ms);
    return n;
}

long long
rt_test_ingest_wait_drained (PGconn *conn)
{
    static const char *const sql = "SELECT count(*) FROM outbox.pending";
    int64_t deadline = rt_test_now_ms () + 30000;
    long long left = rt_test_pg_long (conn, sql);
    while (left > 0 && rt_test_now_ms () < deadline) {
        usleep (50000);
        left = rt_test_pg_long (conn, sql);
    }
    return left;
}

Retain__V1__InboundMessage **
rt_test_ingest_messages (PGconn *conn, size_t *n)
{
    PGresult *res =
        PQexec (conn, "SELECT payload FROM bus.events WHERE type = 'InboundMessage' ORDER BY seq");
    Retain__V1__InboundMessage **msgs;
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("reading InboundMessages: %s", PQresultErrorMessage (res));
    *n = (size_t)PQntuples (res);
    msgs = calloc (*n + 1, sizeof *msgs);
    assert_non_null (msgs);
    for (size_t i = 0; i < *n; i++) {
        size_t len;
        unsigned char *payload =
            PQunescapeBytea ((const unsigned char *)PQgetvalue (res, (int)i, 0), &len);
        assert_non_null (payload);
        msgs[i] = retain__v1__inbound_message__unpack (NULL, len, payload);
        PQfreemem (payload);
        if (!msgs[i])
            fail_msg ("InboundMessage %zu on the bus does not unpack", i);
    }
    PQclear (res);
    return msgs;
}

void
rt_test_ingest_messages_free (Retain__V1__InboundMessage **msgs, size_t n)
{
    if (!msgs)
        return;
    for (size_t i = 0; i < n; i++)
        retain__v1__inbound_message__free_unpacked (msgs[i], NULL);
    free (msgs);
}
