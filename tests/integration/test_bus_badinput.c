/*
 * One bad input never stalls busd or fails anyone else's envelope.
 *
 * Through both of busd's batching paths, the ingress and the outbox drain:
 * ids of every age from 0 to 8 days (the old stall: ids a few days old had
 * no partition and failed every batch they joined), a clock that looks
 * freshly booted, a day change on busd's clock, types sent on another
 * stream, NUL and broken UTF-8 in every kind of string, a row the log's
 * table refuses, and random mixes of all of them sent concurrently. Each
 * bad item is answered REJECTED (or set aside) with its reason; every good
 * one is committed once; an envelope sent after is acknowledged within a
 * second. busd's notion of time is moved through RETAIN_CLOCK_FILE, which
 * this process shares, so the ids it makes follow the same clock.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "rt_uuid.h"
#include "retain/v1/order.pb-c.h"

#define HOUR_MS      3600000LL
#define DAY_MS       (24 * HOUR_MS)
#define RETENTION_MS (7 * DAY_MS) /* busd's default */
#define MAX_MESSAGE  65536

static char s_clock_file[512];

typedef struct {
    rt_test_busd_t busd; /* the daemon under test */
    char dsn[1024];      /* its database */
    void *ctx;           /* ZeroMQ context */
    void *dealer;        /* a raw producer socket */
    PGconn *conn;        /* the test database */
} s_fixture_t;

static void
s_start (s_fixture_t *f, const char *name)
{
    const char *extra[] = {"--max-message=65536", NULL};
    char log[64];
    memset (f, 0, sizeof *f);
    rt_test_db_create (name, f->dsn, sizeof f->dsn);
    snprintf (log, sizeof log, "%s-busd.log", name);
    rt_test_busd_start (&f->busd, f->dsn, log, extra, true);
    f->ctx = zmq_ctx_new ();
    f->dealer = zmq_socket (f->ctx, ZMQ_DEALER);
    assert_int_equal (zmq_connect (f->dealer, f->busd.ingress), 0);
    f->conn = rt_test_pg (f->dsn);
}

static void
s_stop (s_fixture_t *f)
{
    int linger = 0, status;
    zmq_setsockopt (f->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (f->dealer);
    zmq_ctx_term (f->ctx);
    PQfinish (f->conn);
    status = rt_test_kill (f->busd.pid, SIGTERM);
    /* A clean stop: exit 0, which under ASan also means no leak. */
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    assert_int_equal (rt_clock_file_set (s_clock_file, 0, 0), 0);
}

/* A UUIDv7 made at unix ms `ms`, as a producer whose clock said so. */
static void
s_id_at (int64_t ms, char out[RT_UUID_STR_LEN + 1])
{
    rt_uuid_t id = rt_uuid_v7 ();
    int i;
    for (i = 0; i < 6; i++)
        id.b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    rt_uuid_format (&id, out);
}

/* An OrderPlaced envelope for `key` (owned; rt_envelope_free). */
static Retain__V1__Envelope *
s_order (const char *key)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    order.order_id = "o-1";
    return rt_envelope_new ("OrderPlaced", key, &order.base, "badinput-test");
}

static Retain__V1__Envelope *
s_order_at (const char *key, int64_t ms)
{
    Retain__V1__Envelope *env = s_order (key);
    char id[RT_UUID_STR_LEN + 1];
    s_id_at (ms, id);
    free (env->id);
    env->id = strdup (id);
    return env;
}

/* A growable byte string for hand-made wire data. */
typedef struct {
    uint8_t *data;
    size_t len;
} s_bytes_t;

static void
s_bytes_put (s_bytes_t *b, const void *p, size_t n)
{
    b->data = realloc (b->data, b->len + n + 1);
    assert_non_null (b->data);
    memcpy (b->data + b->len, p, n);
    b->len += n;
}

/* Appends a length-delimited field (number `field`) holding n bytes. On the
 * wire a later occurrence of a string field replaces an earlier one, so
 * this is how bytes protobuf-c cannot pack (a NUL) reach busd. */
static void
s_bytes_field (s_bytes_t *b, int field, const void *p, size_t n)
{
    uint8_t hdr[12];
    size_t h = 0, v = n;
    hdr[h++] = (uint8_t)((field << 3) | 2);
    do {
        hdr[h++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    s_bytes_put (b, hdr, h);
    s_bytes_put (b, p, n);
}

static s_bytes_t
s_pack (const Retain__V1__Envelope *env)
{
    s_bytes_t b = {NULL, 0};
    size_t len;
    uint8_t *data = rt_envelope_pack (env, &len);
    assert_non_null (data);
    s_bytes_put (&b, data, len);
    free (data);
    return b;
}

static void
s_send (void *dealer, const s_bytes_t *b)
{
    assert_int_equal (zmq_send (dealer, b->data, b->len, 0), (int)b->len);
}

/* One answer within timeout_ms (owned), or NULL. */
static Retain__V1__Ack *
s_ack (void *dealer, int timeout_ms)
{
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    zmq_msg_t msg;
    Retain__V1__Ack *ack;
    if (zmq_poll (&item, 1, timeout_ms) != 1)
        return NULL;
    zmq_msg_init (&msg);
    assert_true (zmq_msg_recv (&msg, dealer, 0) >= 0);
    ack = retain__v1__ack__unpack (NULL, zmq_msg_size (&msg), zmq_msg_data (&msg));
    zmq_msg_close (&msg);
    assert_non_null (ack);
    return ack;
}

/* Sends b and expects `status`, with `text` in the error when REJECTED. */
static void
s_expect (void *dealer, const s_bytes_t *b, int status, const char *text)
{
    Retain__V1__Ack *ack;
    s_send (dealer, b);
    ack = s_ack (dealer, 5000);
    if (!ack)
        fail_msg ("no answer within 5 s (expected status %d)", status);
    if ((int)ack->status != status)
        fail_msg ("status %d, expected %d (error \"%s\")", ack->status, status, ack->error);
    if (text && !strstr (ack->error, text))
        fail_msg ("error \"%s\" does not mention \"%s\"", ack->error, text);
    retain__v1__ack__free_unpacked (ack, NULL);
}

/* A fresh envelope is acknowledged within a second: nothing is stuck. */
static void
s_expect_flowing (s_fixture_t *f)
{
    Retain__V1__Envelope *env = s_order ("after");
    s_bytes_t b = s_pack (env);
    int64_t t0 = rt_test_now_ms ();
    Retain__V1__Ack *ack;
    s_send (f->dealer, &b);
    ack = s_ack (f->dealer, 1000);
    if (!ack)
        fail_msg ("an envelope sent after the bad one was not acknowledged within 1 s");
    assert_int_equal (ack->status, RETAIN__V1__ACK__STATUS__OK);
    assert_true (rt_test_now_ms () - t0 <= 1000);
    retain__v1__ack__free_unpacked (ack, NULL);
    free (b.data);
    rt_envelope_free (env);
}

static void
s_outbox_insert (PGconn *conn, const s_bytes_t *b, long long *outbox_id)
{
    const char *values[1] = {(const char *)b->data};
    int lengths[1] = {(int)b->len};
    int formats[1] = {1};
    PGresult *res =
        PQexecParams (conn, "INSERT INTO outbox.pending (envelope) VALUES ($1) RETURNING id", 1,
                      NULL, values, lengths, formats, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("outbox insert: %s", PQerrorMessage (conn));
    if (outbox_id)
        *outbox_id = atoll (PQgetvalue (res, 0, 0));
    PQclear (res);
}

/* Waits until busd has emptied the outbox. */
static void
s_outbox_drained (PGconn *conn)
{
    int64_t t0 = rt_test_now_ms ();
    while (rt_test_pg_long (conn, "SELECT count(*) FROM outbox.pending") > 0) {
        if (rt_test_now_ms () - t0 > 5000)
            fail_msg ("outbox.pending not drained within 5 s");
        usleep (20000);
    }
}

static long long
s_count (PGconn *conn, const char *fmt, const char *arg)
{
    char sql[512];
    snprintf (sql, sizeof sql, fmt, arg);
    return rt_test_pg_long (conn, sql);
}

/* Accepted exactly when made within the retention, less the hour of
 * margin for the drop of the oldest day (README, "Retention"). */
static bool
s_age_accepted (int64_t age_ms)
{
    return age_ms <= RETENTION_MS - HOUR_MS;
}

static const int s_ages_h[] = {0,   12,  24,  36,  48,  60,  72,  96,
                               120, 144, 160, 166, 168, 170, 180, 192};
#define NAGES (sizeof s_ages_h / sizeof *s_ages_h)

static void
test_every_age_through_the_ingress (void **state)
{
    s_fixture_t f;
    size_t i;
    (void)state;
    s_start (&f, "bus_ages_ingress");
    for (i = 0; i < NAGES; i++) {
        int64_t age = s_ages_h[i] * HOUR_MS + 60000;
        char key[32];
        Retain__V1__Envelope *env;
        s_bytes_t b;
        snprintf (key, sizeof key, "age-%d", s_ages_h[i]);
        env = s_order_at (key, rt_clock_now_ms () - age);
        b = s_pack (env);
        s_expect (f.dealer, &b,
                  s_age_accepted (age) ? RETAIN__V1__ACK__STATUS__OK
                                       : RETAIN__V1__ACK__STATUS__REJECTED,
                  s_age_accepted (age) ? NULL : "outside the log's window");
        if (s_age_accepted (age))
            assert_int_equal (
                s_count (f.conn, "SELECT count(*) FROM bus.events WHERE id = '%s'", env->id), 1);
        s_expect_flowing (&f);
        free (b.data);
        rt_envelope_free (env);
    }
    /* A day ahead is accepted, two days are not. */
    {
        Retain__V1__Envelope *ahead = s_order_at ("ahead", rt_clock_now_ms () + 23 * HOUR_MS);
        Retain__V1__Envelope *far = s_order_at ("far", rt_clock_now_ms () + 48 * HOUR_MS);
        s_bytes_t a = s_pack (ahead), b = s_pack (far);
        s_expect (f.dealer, &a, RETAIN__V1__ACK__STATUS__OK, NULL);
        s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__REJECTED, "24 h ahead");
        s_expect_flowing (&f);
        free (a.data);
        free (b.data);
        rt_envelope_free (ahead);
        rt_envelope_free (far);
    }
    s_stop (&f);
}

static void
test_every_age_through_the_outbox (void **state)
{
    s_fixture_t f;
    char ids[NAGES][RT_UUID_STR_LEN + 1];
    long long outbox_ids[NAGES];
    size_t i;
    (void)state;
    s_start (&f, "bus_ages_outbox");
    /* One producing transaction holding every age, as a service's outbox
     * would: the old ones must not hold the young ones back. */
    rt_test_pg_exec (f.conn, "BEGIN");
    for (i = 0; i < NAGES; i++) {
        int64_t age = s_ages_h[i] * HOUR_MS + 60000;
        Retain__V1__Envelope *env = s_order_at ("outbox-age", rt_clock_now_ms () - age);
        s_bytes_t b = s_pack (env);
        snprintf (ids[i], sizeof ids[i], "%s", env->id);
        s_outbox_insert (f.conn, &b, &outbox_ids[i]);
        free (b.data);
        rt_envelope_free (env);
    }
    rt_test_pg_exec (f.conn, "COMMIT");
    s_outbox_drained (f.conn);
    s_expect_flowing (&f);
    for (i = 0; i < NAGES; i++) {
        int64_t age = s_ages_h[i] * HOUR_MS + 60000;
        char oid[24];
        snprintf (oid, sizeof oid, "%lld", outbox_ids[i]);
        assert_int_equal (
            s_count (f.conn, "SELECT count(*) FROM bus.events WHERE id = '%s'", ids[i]),
            s_age_accepted (age) ? 1 : 0);
        assert_int_equal (s_count (f.conn,
                                   "SELECT count(*) FROM outbox.rejected WHERE id = %s AND "
                                   "reason LIKE '%%outside the log''s window%%'",
                                   oid),
                          s_age_accepted (age) ? 0 : 1);
    }
    /* It survives a restart: nothing left behind to stall the next busd. */
    s_stop (&f);
}

/* The host looks freshly booted (busd's monotonic clock reads seconds) on
 * a database whose partitions are the migration's few days: housekeeping
 * must still run at takeover, so a three-day-old id has its partition. */
static void
test_freshly_booted_host (void **state)
{
    s_fixture_t f;
    Retain__V1__Envelope *env;
    s_bytes_t b;
    (void)state;
    assert_int_equal (rt_clock_file_set (s_clock_file, 0, 2000 - rt_clock_mono_ms ()), 0);
    assert_true (rt_clock_mono_ms () < 10000);
    s_start (&f, "bus_fresh_boot");
    env = s_order_at ("three-days", rt_clock_now_ms () - 3 * DAY_MS);
    b = s_pack (env);
    s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__OK, NULL);
    s_expect_flowing (&f);
    /* Every day of the window has its partition. */
    assert_true (rt_test_pg_long (f.conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                          "'bus.events'::regclass") >= 8);
    free (b.data);
    rt_envelope_free (env);
    s_stop (&f);
}

/* busd's clock runs to just before midnight UTC, then jumps three days:
 * ids of the new days, up to a day ahead, are accepted at once. */
static void
test_across_midnight (void **state)
{
    s_fixture_t f;
    int64_t now = rt_clock_now_ms ();
    int64_t to_midnight = DAY_MS - now % DAY_MS - 3000;
    int64_t t0;
    int k;
    (void)state;
    assert_int_equal (rt_clock_file_set (s_clock_file, to_midnight, 0), 0);
    s_start (&f, "bus_midnight");
    s_expect_flowing (&f);
    assert_int_equal (rt_clock_file_set (s_clock_file, to_midnight + 3 * DAY_MS + 6000, 0), 0);
    t0 = rt_test_now_ms ();
    for (k = 0; k < 3; k++) {
        int64_t offsets[3] = {0, 12 * HOUR_MS, 23 * HOUR_MS};
        Retain__V1__Envelope *env = s_order_at ("new-day", rt_clock_now_ms () + offsets[k]);
        s_bytes_t b = s_pack (env);
        s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__OK, NULL);
        free (b.data);
        rt_envelope_free (env);
    }
    assert_true (rt_test_now_ms () - t0 < 3000);
    s_expect_flowing (&f);
    s_stop (&f);
}

static void
test_type_belongs_to_its_stream (void **state)
{
    s_fixture_t f;
    const char *wrong[] = {"message", "loyalty", "customer"};
    size_t i;
    long long oid;
    (void)state;
    s_start (&f, "bus_streams");
    for (i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        Retain__V1__Envelope *env = s_order ("c-1");
        s_bytes_t b;
        free (env->stream);
        env->stream = strdup (wrong[i]);
        b = s_pack (env);
        s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__REJECTED, "belongs to stream \"order\"");
        /* The same envelope through the outbox is set aside, not stored. */
        s_outbox_insert (f.conn, &b, &oid);
        s_outbox_drained (f.conn);
        assert_int_equal (
            s_count (f.conn, "SELECT count(*) FROM bus.events WHERE id = '%s'", env->id), 0);
        assert_int_equal (
            s_count (f.conn, "SELECT count(*) FROM outbox.rejected WHERE reason LIKE '%%%s%%'",
                     wrong[i]),
            1);
        free (b.data);
        rt_envelope_free (env);
    }
    {
        Retain__V1__Envelope *env = s_order ("c-1");
        s_bytes_t b;
        free (env->stream);
        env->stream = strdup ("order");
        b = s_pack (env);
        s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__OK, NULL);
        free (b.data);
        rt_envelope_free (env);
    }
    assert_true (rt_test_metric (f.busd.admin_port,
                                 "retain_bus_envelopes_rejected_total{reason=\"wrong_stream\"}") >=
                 3);
    /* A service's own outbox door refuses it in the producing transaction,
     * where someone is waiting for the answer. */
    {
        rt_db_t *db = rt_db_new (f.dsn, "badinput-test");
        Retain__V1__Envelope *env = s_order ("c-2");
        assert_non_null (db);
        assert_int_equal (rt_db_ensure (db), 0);
        free (env->stream);
        env->stream = strdup ("loyalty");
        assert_int_equal (rt_outbox_append (db, env), -1);
        free (env->stream);
        env->stream = strdup ("order");
        assert_int_equal (rt_outbox_append (db, env), 0);
        s_outbox_drained (f.conn);
        assert_int_equal (
            s_count (f.conn, "SELECT count(*) FROM bus.events WHERE key = '%s'", "c-2"), 1);
        rt_envelope_free (env);
        rt_db_destroy (&db);
    }
    s_expect_flowing (&f);
    s_stop (&f);
}

/* Bad bytes in each string: field number of the Envelope, or -1 for the
 * payload's order_id. */
typedef struct {
    int field;         /* Envelope field, or -1: OrderPlaced.order_id in the payload */
    const char *bytes; /* what to put there */
    size_t len;
    const char *named; /* what the error must name */
} s_bad_text_t;

static const s_bad_text_t s_bad_texts[] = {
    {4, "abc\0def", 7, "key"},
    {9, "shop\0erp", 8, "producer"},
    {10, "corr\xff", 5, "correlation_id"},
    {4, "\xc0\xaf", 2, "key"},            /* an overlong '/' */
    {4, "\xed\xa0\x80", 3, "key"},        /* a surrogate */
    {-1, "order\0-1", 8, "order_id"},     /* inside the payload */
    {-1, "order\xe2\x82", 7, "order_id"}, /* a cut sequence */
};
#define NBAD_TEXTS (sizeof s_bad_texts / sizeof *s_bad_texts)

/* The envelope bytes of an order with bad text t. */
static s_bytes_t
s_with_bad_text (const s_bad_text_t *t, char id_out[RT_UUID_STR_LEN + 1])
{
    Retain__V1__Envelope *env = s_order ("text-key");
    s_bytes_t b;
    if (t->field < 0) {
        s_bytes_t payload = {NULL, 0};
        s_bytes_put (&payload, env->payload.data, env->payload.len);
        s_bytes_field (&payload, 1, t->bytes, t->len);
        free (env->payload.data);
        env->payload.data = payload.data;
        env->payload.len = payload.len;
        b = s_pack (env);
    } else {
        b = s_pack (env);
        s_bytes_field (&b, t->field, t->bytes, t->len);
    }
    if (id_out)
        snprintf (id_out, RT_UUID_STR_LEN + 1, "%s", env->id);
    rt_envelope_free (env);
    return b;
}

static void
test_nul_and_broken_text (void **state)
{
    s_fixture_t f;
    size_t i;
    (void)state;
    s_start (&f, "bus_text");
    for (i = 0; i < NBAD_TEXTS; i++) {
        char id[RT_UUID_STR_LEN + 1];
        s_bytes_t b = s_with_bad_text (&s_bad_texts[i], id);
        s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__REJECTED, s_bad_texts[i].named);
        s_outbox_insert (f.conn, &b, NULL);
        s_outbox_drained (f.conn);
        assert_int_equal (s_count (f.conn, "SELECT count(*) FROM bus.events WHERE id = '%s'", id),
                          0);
        free (b.data);
    }
    assert_int_equal (rt_test_pg_long (f.conn, "SELECT count(*) FROM outbox.rejected"),
                      (long long)NBAD_TEXTS);
    /* A key that is merely unusual is kept exactly as sent. */
    {
        Retain__V1__Envelope *env = s_order ("ключ клієнта \xf0\x9f\x99\x82");
        s_bytes_t b = s_pack (env);
        s_expect (f.dealer, &b, RETAIN__V1__ACK__STATUS__OK, NULL);
        assert_int_equal (s_count (f.conn,
                                   "SELECT count(*) FROM bus.events WHERE key = 'ключ клієнта "
                                   "\xf0\x9f\x99\x82' AND id = '%s'",
                                   env->id),
                          1);
        free (b.data);
        rt_envelope_free (env);
    }
    s_expect_flowing (&f);
    s_stop (&f);
}

/* A row the log's own table refuses (a CHECK the test adds, standing for
 * any refusal validation cannot foresee) fails alone: the batch around it
 * commits. */
static void
test_log_refuses_one_row (void **state)
{
    s_fixture_t f;
    char poison_id[RT_UUID_STR_LEN + 1];
    int i, ok = 0, rejected = 0;
    long long oid;
    (void)state;
    s_start (&f, "bus_refused_row");
    rt_test_pg_exec (f.conn, "ALTER TABLE bus.events ADD CONSTRAINT test_poison "
                             "CHECK (key <> 'poison')");
    /* Sent back to back, so they share batches. */
    for (i = 0; i < 200; i++) {
        Retain__V1__Envelope *env = s_order (i == 100 ? "poison" : "good");
        s_bytes_t b = s_pack (env);
        if (i == 100)
            snprintf (poison_id, sizeof poison_id, "%s", env->id);
        s_send (f.dealer, &b);
        free (b.data);
        rt_envelope_free (env);
    }
    for (i = 0; i < 200; i++) {
        Retain__V1__Ack *ack = s_ack (f.dealer, 10000);
        if (!ack)
            fail_msg ("only %d of 200 answers", i);
        if (ack->status == RETAIN__V1__ACK__STATUS__OK)
            ok++;
        else if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED) {
            rejected++;
            assert_string_equal (ack->id, poison_id);
            assert_non_null (strstr (ack->error, "the log refused it"));
        }
        retain__v1__ack__free_unpacked (ack, NULL);
    }
    assert_int_equal (ok, 199);
    assert_int_equal (rejected, 1);
    assert_int_equal (
        rt_test_pg_long (f.conn, "SELECT count(*) FROM bus.events WHERE key = 'good'"), 199);
    /* The same through the outbox, in one producing transaction. */
    rt_test_pg_exec (f.conn, "BEGIN");
    for (i = 0; i < 50; i++) {
        Retain__V1__Envelope *env = s_order (i == 25 ? "poison" : "good-outbox");
        s_bytes_t b = s_pack (env);
        s_outbox_insert (f.conn, &b, i == 25 ? &oid : NULL);
        free (b.data);
        rt_envelope_free (env);
    }
    rt_test_pg_exec (f.conn, "COMMIT");
    s_outbox_drained (f.conn);
    assert_int_equal (
        rt_test_pg_long (f.conn, "SELECT count(*) FROM bus.events WHERE key = 'good-outbox'"), 49);
    {
        char q[256];
        snprintf (q, sizeof q,
                  "SELECT count(*) FROM outbox.rejected WHERE id = %lld AND reason LIKE "
                  "'%%the log refused it%%'",
                  oid);
        assert_int_equal (rt_test_pg_long (f.conn, q), 1);
    }
    /* Positions stayed gapless around the refused rows. */
    assert_int_equal (rt_test_pg_long (f.conn, "SELECT count(*) FROM (SELECT partition, "
                                               "max(pseq) - count(*) AS gap FROM bus.events "
                                               "GROUP BY stream, partition) g WHERE gap <> 0"),
                      0);
    assert_true (
        rt_test_metric (f.busd.admin_port,
                        "retain_bus_envelopes_rejected_total{reason=\"refused_by_log\"}") >= 1);
    rt_test_pg_exec (f.conn, "ALTER TABLE bus.events DROP CONSTRAINT test_poison");
    s_expect_flowing (&f);
    s_stop (&f);
}

/* While the writer cannot commit, /readyz says so, with the reason. */
static void
test_readyz_while_commits_fail (void **state)
{
    s_fixture_t f;
    Retain__V1__Envelope *env;
    s_bytes_t b;
    char body[1024];
    int64_t t0;
    Retain__V1__Ack *ack;
    (void)state;
    s_start (&f, "bus_not_committing");
    rt_test_pg_exec (f.conn,
                     "CREATE FUNCTION bus.test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$BEGIN RAISE EXCEPTION 'test: the log is read-only'; END$$");
    rt_test_pg_exec (f.conn, "CREATE TRIGGER test_refuse BEFORE UPDATE ON bus.state "
                             "FOR EACH ROW EXECUTE FUNCTION bus.test_refuse()");
    env = s_order ("waiting");
    b = s_pack (env);
    s_send (f.dealer, &b);
    t0 = rt_test_now_ms ();
    while (rt_test_http_get (f.busd.admin_port, "/readyz", body, sizeof body) != 503) {
        if (rt_test_now_ms () - t0 > 8000)
            fail_msg ("/readyz still ready 8 s after commits began to fail");
        usleep (100000);
    }
    assert_non_null (strstr (body, "cannot commit"));
    assert_non_null (strstr (body, "read-only"));
    /* No false acknowledgement meanwhile. */
    assert_null (s_ack (f.dealer, 200));
    rt_test_pg_exec (f.conn, "DROP TRIGGER test_refuse ON bus.state");
    ack = s_ack (f.dealer, 5000);
    assert_non_null (ack);
    assert_int_equal (ack->status, RETAIN__V1__ACK__STATUS__OK);
    retain__v1__ack__free_unpacked (ack, NULL);
    assert_true (rt_test_wait_ready (f.busd.admin_port, 3000));
    free (b.data);
    rt_envelope_free (env);
    s_stop (&f);
}

/* The classes of a property run. */
enum {
    C_GOOD,
    C_DUPLICATE, /* a good one sent again */
    C_TEXT,      /* a bad string (any of s_bad_texts) */
    C_WRONG_STREAM,
    C_UNKNOWN_TYPE,
    C_OLD_ID,
    C_FUTURE_ID,
    C_V4_ID,
    C_GARBAGE,
    C_BAD_PAYLOAD,
    C_NO_KEY,
    C_TOO_LARGE,
    C_POISON, /* refused by the table's CHECK */
    C_COUNT
};

/* The bytes of one item of class c (and its id, "" when it has none). */
static s_bytes_t
s_item (int c, unsigned *seed, char id[RT_UUID_STR_LEN + 1], const char *good_key)
{
    Retain__V1__Envelope *env = NULL;
    s_bytes_t b = {NULL, 0};
    id[0] = '\0';
    switch (c) {
    case C_GOOD:
    case C_DUPLICATE:
        env = s_order (good_key);
        break;
    case C_TEXT:
        return s_with_bad_text (&s_bad_texts[(unsigned)rand_r (seed) % NBAD_TEXTS], id);
    case C_WRONG_STREAM:
        env = s_order ("k");
        free (env->stream);
        env->stream = strdup ("message");
        break;
    case C_UNKNOWN_TYPE:
        env = s_order ("k");
        free (env->type);
        env->type = strdup ("OrderPlacd");
        break;
    case C_OLD_ID:
        env = s_order_at ("k", rt_clock_now_ms () - 8 * DAY_MS);
        break;
    case C_FUTURE_ID:
        env = s_order_at ("k", rt_clock_now_ms () + 2 * DAY_MS);
        break;
    case C_V4_ID:
        env = s_order ("k");
        env->id[14] = '4';
        break;
    case C_GARBAGE: {
        uint8_t junk[64];
        size_t i, n = 1 + (unsigned)rand_r (seed) % sizeof junk;
        for (i = 0; i < n; i++)
            junk[i] = (uint8_t)rand_r (seed);
        junk[0] = 0xff; /* field 31, wire type 7: never an Envelope */
        s_bytes_put (&b, junk, n);
        return b;
    }
    case C_BAD_PAYLOAD:
        env = s_order ("k");
        free (env->payload.data);
        env->payload.data = malloc (3);
        memcpy (env->payload.data, "\x0a\x7f\x01", 3); /* a string running past the end */
        env->payload.len = 3;
        break;
    case C_NO_KEY:
        env = s_order ("k");
        free (env->key);
        env->key = strdup ("");
        break;
    case C_TOO_LARGE: {
        Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
        char *big = malloc (MAX_MESSAGE + 100);
        memset (big, 'x', MAX_MESSAGE + 99);
        big[MAX_MESSAGE + 99] = '\0';
        order.order_id = big;
        env = rt_envelope_new ("OrderPlaced", "k", &order.base, "badinput-test");
        free (big);
        break;
    }
    case C_POISON:
        env = s_order ("poison");
        break;
    }
    snprintf (id, RT_UUID_STR_LEN + 1, "%s", env->id);
    b = s_pack (env);
    rt_envelope_free (env);
    return b;
}

/* Random mixes on four producer sockets at once, then through the outbox
 * from four transactions at once: every good item committed and answered
 * once, every bad one rejected, nothing stuck after. */
static void
test_random_mixes (void **state)
{
    enum { NSOCK = 4, PER_SOCK = 400 };
    s_fixture_t f;
    void *socks[NSOCK];
    unsigned seed = (unsigned)time (NULL);
    int expected_ok[NSOCK] = {0}, expected_rejected[NSOCK] = {0}, expected_dup[NSOCK] = {0};
    int got_ok[NSOCK] = {0}, got_rejected[NSOCK] = {0}, got_dup[NSOCK] = {0};
    int s, i, good_total = 0, outbox_good = 0, outbox_bad = 0;
    char (*last_good)[RT_UUID_STR_LEN + 1] = calloc (NSOCK, sizeof *last_good);
    s_bytes_t last_good_bytes[NSOCK];
    PGconn *producers[NSOCK];
    (void)state;
    printf ("seed %u\n", seed);
    s_start (&f, "bus_random_mix");
    rt_test_pg_exec (f.conn, "ALTER TABLE bus.events ADD CONSTRAINT test_poison "
                             "CHECK (key <> 'poison')");
    memset (last_good_bytes, 0, sizeof last_good_bytes);
    for (s = 0; s < NSOCK; s++) {
        socks[s] = zmq_socket (f.ctx, ZMQ_DEALER);
        assert_int_equal (zmq_connect (socks[s], f.busd.ingress), 0);
    }
    /* Interleaved sends on every socket before any answer is read. */
    for (i = 0; i < PER_SOCK; i++) {
        for (s = 0; s < NSOCK; s++) {
            char id[RT_UUID_STR_LEN + 1];
            int c = (unsigned)rand_r (&seed) % 3 == 0 ? (int)((unsigned)rand_r (&seed) % C_COUNT)
                                                      : C_GOOD;
            s_bytes_t b;
            if (c == C_DUPLICATE && !last_good_bytes[s].data)
                c = C_GOOD;
            if (c == C_DUPLICATE) {
                s_send (socks[s], &last_good_bytes[s]);
                expected_dup[s]++;
                continue;
            }
            b = s_item (c, &seed, id, "mix-good");
            s_send (socks[s], &b);
            if (c == C_GOOD) {
                expected_ok[s]++;
                free (last_good_bytes[s].data);
                last_good_bytes[s] = b;
                snprintf (last_good[s], sizeof last_good[s], "%s", id);
            } else {
                expected_rejected[s]++;
                free (b.data);
            }
        }
    }
    for (s = 0; s < NSOCK; s++) {
        int n = expected_ok[s] + expected_rejected[s] + expected_dup[s];
        for (i = 0; i < n; i++) {
            Retain__V1__Ack *ack = s_ack (socks[s], 10000);
            if (!ack)
                fail_msg ("socket %d: %d of %d answers (seed %u)", s, i, n, seed);
            if (ack->status == RETAIN__V1__ACK__STATUS__OK)
                got_ok[s]++;
            else if (ack->status == RETAIN__V1__ACK__STATUS__DUPLICATE)
                got_dup[s]++;
            else if (ack->status == RETAIN__V1__ACK__STATUS__REJECTED) {
                got_rejected[s]++;
                assert_true (ack->error[0] != '\0');
            }
            retain__v1__ack__free_unpacked (ack, NULL);
        }
        assert_null (s_ack (socks[s], 50)); /* and not one more */
        if (got_ok[s] != expected_ok[s] || got_dup[s] != expected_dup[s] ||
            got_rejected[s] != expected_rejected[s])
            fail_msg ("socket %d: ok %d/%d duplicate %d/%d rejected %d/%d (seed %u)", s, got_ok[s],
                      expected_ok[s], got_dup[s], expected_dup[s], got_rejected[s],
                      expected_rejected[s], seed);
        good_total += expected_ok[s];
    }
    assert_int_equal (
        rt_test_pg_long (f.conn, "SELECT count(*) FROM bus.events WHERE key = 'mix-good'"),
        good_total);
    assert_int_equal (
        rt_test_pg_long (f.conn, "SELECT count(*) - count(DISTINCT id) FROM bus.events"), 0);

    /* The outbox: four producing connections, transactions of 1 to 40 rows. */
    for (s = 0; s < NSOCK; s++) {
        producers[s] = rt_test_pg (f.dsn);
        rt_test_pg_exec (producers[s], "BEGIN");
    }
    for (i = 0; i < PER_SOCK; i++) {
        for (s = 0; s < NSOCK; s++) {
            char id[RT_UUID_STR_LEN + 1];
            int c = (unsigned)rand_r (&seed) % 3 == 0 ? (int)((unsigned)rand_r (&seed) % C_COUNT)
                                                      : C_GOOD;
            s_bytes_t b;
            if (c == C_DUPLICATE)
                c = C_GOOD;
            b = s_item (c, &seed, id, "outbox-good");
            s_outbox_insert (producers[s], &b, NULL);
            free (b.data);
            if (c == C_GOOD)
                outbox_good++;
            else
                outbox_bad++;
            if ((unsigned)rand_r (&seed) % 40 == 0) {
                rt_test_pg_exec (producers[s], "COMMIT");
                rt_test_pg_exec (producers[s], "BEGIN");
            }
        }
    }
    for (s = 0; s < NSOCK; s++) {
        rt_test_pg_exec (producers[s], "COMMIT");
        PQfinish (producers[s]);
    }
    s_outbox_drained (f.conn);
    assert_int_equal (
        rt_test_pg_long (f.conn, "SELECT count(*) FROM bus.events WHERE key = 'outbox-good'"),
        outbox_good);
    assert_int_equal (rt_test_pg_long (f.conn, "SELECT count(*) FROM outbox.rejected"), outbox_bad);
    assert_int_equal (rt_test_pg_long (f.conn, "SELECT count(*) FROM outbox.rejected WHERE "
                                               "reason = ''"),
                      0);
    rt_test_pg_exec (f.conn, "ALTER TABLE bus.events DROP CONSTRAINT test_poison");
    s_expect_flowing (&f);
    for (s = 0; s < NSOCK; s++) {
        int linger = 0;
        zmq_setsockopt (socks[s], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (socks[s]);
        free (last_good_bytes[s].data);
    }
    free (last_good);
    s_stop (&f);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_age_through_the_ingress),
        cmocka_unit_test (test_every_age_through_the_outbox),
        cmocka_unit_test (test_freshly_booted_host),
        cmocka_unit_test (test_type_belongs_to_its_stream),
        cmocka_unit_test (test_nul_and_broken_text),
        cmocka_unit_test (test_log_refuses_one_row),
        cmocka_unit_test (test_readyz_while_commits_fail),
        cmocka_unit_test (test_random_mixes),
        /* Last: it leaves this process's id generator days ahead (UUIDv7
         * ids never go back in time within a process). */
        cmocka_unit_test (test_across_midnight),
    };
    /* Shared by this process and every busd it starts: one clock. */
    snprintf (s_clock_file, sizeof s_clock_file, "%s/bus-badinput.clock", rt_test_dir ());
    if (rt_clock_file_set (s_clock_file, 0, 0) != 0 ||
        setenv ("RETAIN_CLOCK_FILE", s_clock_file, 1))
        return 1;
    return cmocka_run_group_tests (tests, NULL, NULL);
}
