/*
 * Bad input on busd's ingress door: each gets a REJECTED answer naming the
 * reason and a metric by reason; busd keeps running and keeps accepting
 * good envelopes; a producer that vanishes mid-batch loses nothing that
 * busd committed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "rt_bus.h"
#include "rt_test.h"
#include "retain/v1/order.pb-c.h"

typedef struct {
    rt_test_busd_t busd; /* the daemon under test */
    void *ctx;           /* ZeroMQ context */
    void *dealer;        /* a raw producer socket */
    PGconn *conn;        /* the test database */
} s_fixture_t;

static int
s_setup (void **state)
{
    static s_fixture_t f;
    char dsn[1024];
    const char *extra[] = {"--max-message=65536", NULL};
    memset (&f, 0, sizeof f);
    rt_test_db_create ("bus_ingress", dsn, sizeof dsn);
    rt_test_busd_start (&f.busd, dsn, "ingress-busd.log", extra, true);
    f.ctx = zmq_ctx_new ();
    f.dealer = zmq_socket (f.ctx, ZMQ_DEALER);
    assert_int_equal (zmq_connect (f.dealer, f.busd.ingress), 0);
    f.conn = rt_test_pg (dsn);
    *state = &f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    int linger = 0, status;
    zmq_setsockopt (f->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (f->dealer);
    zmq_ctx_term (f->ctx);
    PQfinish (f->conn);
    status = rt_test_kill (f->busd.pid, SIGTERM);
    /* A clean stop: exit 0, which under ASan also means no leak. */
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    return 0;
}

/* Waits for one answer on the dealer; returns the unpacked ack (owned). */
static Retain__V1__Ack *
s_answer (void *dealer)
{
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    zmq_msg_t msg;
    Retain__V1__Ack *ack;
    if (zmq_poll (&item, 1, 10000) != 1)
        fail_msg ("no answer from busd within 10 s");
    zmq_msg_init (&msg);
    assert_true (zmq_msg_recv (&msg, dealer, 0) >= 0);
    ack = retain__v1__ack__unpack (NULL, zmq_msg_size (&msg), zmq_msg_data (&msg));
    zmq_msg_close (&msg);
    assert_non_null (ack);
    return ack;
}

static void
s_send_env (void *dealer, const Retain__V1__Envelope *env)
{
    size_t len;
    uint8_t *data = rt_envelope_pack (env, &len);
    assert_non_null (data);
    assert_int_equal (zmq_send (dealer, data, len, 0), (int)len);
    free (data);
}

static Retain__V1__Envelope *
s_order (const char *key)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    order.order_id = "o-1";
    return rt_envelope_new ("OrderPlaced", key, &order.base, "ingress-test");
}

static void
s_expect_rejected (s_fixture_t *f, const char *reason, const char *text_in_error)
{
    char series[128];
    Retain__V1__Ack *ack = s_answer (f->dealer);
    assert_int_equal (ack->status, RETAIN__V1__ACK__STATUS__REJECTED);
    if (!strstr (ack->error, text_in_error))
        fail_msg ("error \"%s\" does not mention \"%s\"", ack->error, text_in_error);
    retain__v1__ack__free_unpacked (ack, NULL);
    snprintf (series, sizeof series, "retain_bus_envelopes_rejected_total{reason=\"%s\"}", reason);
    assert_true (rt_test_metric (f->busd.admin_port, series) >= 1);
}

static void
s_expect_still_accepting (s_fixture_t *f)
{
    Retain__V1__Envelope *env = s_order ("still-alive");
    Retain__V1__Ack *ack;
    s_send_env (f->dealer, env);
    ack = s_answer (f->dealer);
    assert_int_equal (ack->status, RETAIN__V1__ACK__STATUS__OK);
    assert_string_equal (ack->id, env->id);
    retain__v1__ack__free_unpacked (ack, NULL);
    rt_envelope_free (env);
}

static void
test_garbage_frame (void **state)
{
    s_fixture_t *f = *state;
    const char junk[] = "\xff\xff\xff\xff this is not protobuf";
    zmq_send (f->dealer, junk, sizeof junk, 0);
    s_expect_rejected (f, "unparsable", "not a retain.v1.Envelope");
    s_expect_still_accepting (f);
}

static void
test_malformed_frames (void **state)
{
    s_fixture_t *f = *state;
    zmq_send (f->dealer, "one", 3, ZMQ_SNDMORE);
    zmq_send (f->dealer, "two", 3, ZMQ_SNDMORE);
    zmq_send (f->dealer, "three", 5, 0);
    s_expect_rejected (f, "bad_frames", "expected one frame");
    s_expect_still_accepting (f);
}

static void
test_unknown_type (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("k");
    free (env->type);
    env->type = strdup ("OrderTeleported");
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "unknown_type", "OrderTeleported");
    rt_envelope_free (env);
}

static void
test_no_key (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("");
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "no_key", "no key");
    rt_envelope_free (env);
}

static void
test_bad_id (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("k");
    free (env->id);
    env->id = strdup ("order-42");
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "bad_id", "not a UUID");
    rt_envelope_free (env);
}

/* Ids are UUIDv7 made about now: the log is partitioned by their time. */
static void
test_id_not_v7_or_out_of_window (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("k");
    free (env->id);
    env->id = strdup ("3f1c2b4a-9d8e-4c7b-a6f5-0e1d2c3b4a59"); /* version 4 */
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "bad_id", "not a UUIDv7");
    free (env->id);
    env->id = strdup ("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"); /* March 2022 */
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "bad_id", "outside the log's window");
    rt_envelope_free (env);
}

static void
test_unknown_stream (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("k");
    free (env->stream);
    env->stream = strdup ("gossip");
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "unknown_stream", "gossip");
    rt_envelope_free (env);
}

static void
test_payload_not_the_type (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("k");
    free (env->payload.data);
    env->payload.data = (uint8_t *)strdup ("\x0a\xff\xff\xff\xff\x0f");
    env->payload.len = 6;
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "bad_payload", "OrderPlaced");
    rt_envelope_free (env);
}

static void
test_invalid_utf8_key (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("caf\xe9");
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "bad_utf8", "UTF-8");
    rt_envelope_free (env);
    s_expect_still_accepting (f);
}

static void
test_over_size_limit (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("big");
    size_t n = 100000;
    free (env->payload.data);
    /* A valid OrderPlaced whose coupon_code (field 6) is 100 kB long. */
    env->payload.data = malloc (n + 4);
    env->payload.data[0] = 0x32;
    env->payload.data[1] = (uint8_t)(0x80 | (n & 0x7f));
    env->payload.data[2] = (uint8_t)(0x80 | ((n >> 7) & 0x7f));
    env->payload.data[3] = (uint8_t)(n >> 14);
    memset (env->payload.data + 4, 'x', n);
    env->payload.len = n + 4;
    s_send_env (f->dealer, env);
    s_expect_rejected (f, "too_large", "over the limit");
    rt_envelope_free (env);
    s_expect_still_accepting (f);
    assert_int_equal (
        rt_test_pg_long (f->conn, "SELECT count(*) FROM bus.events WHERE key = 'big'"), 0);
}

/* A producer sends a burst and disconnects before the acks come back: busd
 * commits what it took, answers into the void (counted), and goes on. */
static void
test_producer_vanishes_mid_batch (void **state)
{
    s_fixture_t *f = *state;
    void *gone = zmq_socket (f->ctx, ZMQ_DEALER);
    int linger = 15000, i;
    int64_t deadline;
    assert_int_equal (zmq_connect (gone, f->busd.ingress), 0);
    for (i = 0; i < 2000; i++) {
        Retain__V1__Envelope *env = s_order ("vanishing");
        s_send_env (gone, env);
        rt_envelope_free (env);
    }
    /* Linger lets the burst leave (a loaded machine may take seconds to
     * drain it); closing drops the connection. */
    zmq_setsockopt (gone, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (gone);
    deadline = rt_test_now_ms () + 20000;
    while (rt_test_now_ms () < deadline &&
           rt_test_pg_long (f->conn, "SELECT count(*) FROM bus.events WHERE key = 'vanishing'") <
               2000)
        usleep (50000);
    assert_int_equal (
        rt_test_pg_long (f->conn, "SELECT count(*) FROM bus.events WHERE key = 'vanishing'"), 2000);
    assert_int_equal (
        rt_test_pg_long (f->conn,
                         "SELECT count(DISTINCT pseq) FROM bus.events WHERE key = 'vanishing'"),
        2000);
    s_expect_still_accepting (f);
    assert_int_equal (rt_test_http_get (f->busd.admin_port, "/healthz", NULL, 0), 200);
}

/* A REQ client (send, then wait) works too: the delimiter is echoed. */
static void
test_req_client (void **state)
{
    s_fixture_t *f = *state;
    void *req = zmq_socket (f->ctx, ZMQ_REQ);
    Retain__V1__Envelope *env = s_order ("req-client");
    Retain__V1__Ack *ack;
    int linger = 0;
    assert_int_equal (zmq_connect (req, f->busd.ingress), 0);
    s_send_env (req, env);
    ack = s_answer (req);
    assert_int_equal (ack->status, RETAIN__V1__ACK__STATUS__OK);
    assert_string_equal (ack->id, env->id);
    retain__v1__ack__free_unpacked (ack, NULL);
    rt_envelope_free (env);
    zmq_setsockopt (req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (req);
}

/* An event whose payload is all defaults serializes to nothing: still an
 * event. */
static void
test_empty_payload (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    Retain__V1__Envelope *env = rt_envelope_new ("OrderPlaced", "empty", &order.base, "t");
    Retain__V1__Ack *ack;
    assert_int_equal (env->payload.len, 0);
    s_send_env (f->dealer, env);
    ack = s_answer (f->dealer);
    assert_int_equal (ack->status, RETAIN__V1__ACK__STATUS__OK);
    retain__v1__ack__free_unpacked (ack, NULL);
    rt_envelope_free (env);
    assert_int_equal (rt_test_pg_long (f->conn, "SELECT count(*) FROM bus.events WHERE key = "
                                                "'empty' AND payload = ''"),
                      1);
    s_expect_still_accepting (f);
}

/* The same id twice is one event; the second answer names the first's place. */
static void
test_duplicate_id (void **state)
{
    s_fixture_t *f = *state;
    Retain__V1__Envelope *env = s_order ("dup");
    Retain__V1__Ack *first, *second;
    s_send_env (f->dealer, env);
    first = s_answer (f->dealer);
    s_send_env (f->dealer, env);
    second = s_answer (f->dealer);
    assert_int_equal (first->status, RETAIN__V1__ACK__STATUS__OK);
    assert_int_equal (second->status, RETAIN__V1__ACK__STATUS__DUPLICATE);
    assert_true (first->seq > 0);
    assert_int_equal (second->seq, first->seq);
    assert_int_equal (second->pseq, first->pseq);
    assert_int_equal (
        rt_test_pg_long (f->conn, "SELECT count(*) FROM bus.events WHERE key = 'dup'"), 1);
    retain__v1__ack__free_unpacked (first, NULL);
    retain__v1__ack__free_unpacked (second, NULL);
    rt_envelope_free (env);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_garbage_frame),
        cmocka_unit_test (test_malformed_frames),
        cmocka_unit_test (test_unknown_type),
        cmocka_unit_test (test_no_key),
        cmocka_unit_test (test_bad_id),
        cmocka_unit_test (test_id_not_v7_or_out_of_window),
        cmocka_unit_test (test_unknown_stream),
        cmocka_unit_test (test_payload_not_the_type),
        cmocka_unit_test (test_invalid_utf8_key),
        cmocka_unit_test (test_over_size_limit),
        cmocka_unit_test (test_producer_vanishes_mid_batch),
        cmocka_unit_test (test_req_client),
        cmocka_unit_test (test_empty_payload),
        cmocka_unit_test (test_duplicate_id),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
