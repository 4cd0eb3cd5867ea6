/*
 * CURVE on the bus: with a server key and a list of admitted client keys,
 * busd accepts producers and subscribers holding a listed key and refuses
 * every other one (ZAP), both on ingress and on PUB.
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
#include "rt_producer.h"
#include "rt_test.h"
#include "retain/v1/order.pb-c.h"

static Retain__V1__Envelope *
s_order (const char *key)
{
    Retain__V1__OrderPlaced order = RETAIN__V1__ORDER_PLACED__INIT;
    order.order_id = "o-1";
    return rt_envelope_new ("OrderPlaced", key, &order.base, "curve-test");
}

static void
s_use_keys (const char *server_pub, const char *pub, const char *sec)
{
    setenv ("RETAIN_BUS_CURVE_SERVER_KEY", server_pub, 1);
    setenv ("RETAIN_BUS_CURVE_PUBLIC_KEY", pub, 1);
    setenv ("RETAIN_BUS_CURVE_SECRET_KEY", sec, 1);
}

static void
test_only_listed_keys_get_in (void **state)
{
    (void)state;
    char dsn[1024], err[256], clients[512], arg_secret[80], arg_clients[600];
    char server_pub[41], server_sec[41], good_pub[41], good_sec[41], bad_pub[41], bad_sec[41];
    const char *extra[3];
    rt_test_busd_t busd;
    rt_producer_t *producer;
    Retain__V1__Envelope *env;
    Retain__V1__Ack ack = RETAIN__V1__ACK__INIT;
    void *ctx, *sub;
    FILE *f;
    int status, timeout = 3000;
    char topic[64];

    assert_int_equal (zmq_curve_keypair (server_pub, server_sec), 0);
    assert_int_equal (zmq_curve_keypair (good_pub, good_sec), 0);
    assert_int_equal (zmq_curve_keypair (bad_pub, bad_sec), 0);
    snprintf (clients, sizeof clients, "%s/curve-clients.txt", rt_test_dir ());
    f = fopen (clients, "w");
    assert_non_null (f);
    fprintf (f, "# admitted producers and consumers\n%s\n", good_pub);
    fclose (f);

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_curve", dsn, sizeof dsn);
    snprintf (arg_secret, sizeof arg_secret, "--curve-secret-key=%s", server_sec);
    snprintf (arg_clients, sizeof arg_clients, "--curve-clients=%s", clients);
    extra[0] = arg_secret;
    extra[1] = arg_clients;
    extra[2] = NULL;
    rt_test_busd_start (&busd, dsn, "curve-busd.log", extra, true);

    /* A listed key: published and acknowledged. */
    s_use_keys (server_pub, good_pub, good_sec);
    producer = rt_producer_new (busd.ingress, err, sizeof err);
    assert_non_null (producer);
    env = s_order ("listed");
    if (rt_producer_send (producer, env, 10000, &ack, err, sizeof err) != 0)
        fail_msg ("listed key refused: %s", err);
    assert_int_equal (ack.status, RETAIN__V1__ACK__STATUS__OK);
    rt_envelope_free (env);
    rt_producer_destroy (&producer);

    /* A subscriber with the listed key receives what is published. */
    ctx = zmq_ctx_new ();
    sub = zmq_socket (ctx, ZMQ_SUB);
    assert_int_equal (rt_bus_curve_client (sub, err, sizeof err), 0);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "order.", 6);
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal (zmq_connect (sub, busd.pub), 0);
    usleep (500000);
    producer = rt_producer_new (busd.ingress, err, sizeof err);
    env = s_order ("seen-by-subscriber");
    assert_int_equal (rt_producer_send (producer, env, 10000, NULL, err, sizeof err), 0);
    rt_envelope_free (env);
    rt_producer_destroy (&producer);
    assert_true (zmq_recv (sub, topic, sizeof topic, 0) > 0);

    /* An unlisted key: no connection, so no ack, and busd says why. */
    s_use_keys (server_pub, bad_pub, bad_sec);
    producer = rt_producer_new (busd.ingress, err, sizeof err);
    assert_non_null (producer);
    env = s_order ("unlisted");
    assert_int_equal (rt_producer_send (producer, env, 2000, NULL, err, sizeof err), -1);
    assert_non_null (strstr (err, "timeout"));
    rt_envelope_free (env);
    rt_producer_destroy (&producer);
    {
        char path[600], line[2048];
        int refused = 0;
        snprintf (path, sizeof path, "%s/curve-busd.log", rt_test_dir ());
        f = fopen (path, "r");
        assert_non_null (f);
        while (fgets (line, sizeof line, f))
            refused += strstr (line, "key not admitted") != NULL;
        fclose (f);
        assert_true (refused >= 1);
    }
    /* Plain TCP without keys does not get in either. */
    unsetenv ("RETAIN_BUS_CURVE_SERVER_KEY");
    producer = rt_producer_new (busd.ingress, err, sizeof err);
    env = s_order ("plaintext");
    assert_int_equal (rt_producer_send (producer, env, 1500, NULL, err, sizeof err), -1);
    rt_envelope_free (env);
    rt_producer_destroy (&producer);
    {
        PGconn *conn = rt_test_pg (dsn);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"), 2);
        PQfinish (conn);
    }
    {
        int linger = 0;
        zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    }
    zmq_close (sub);
    zmq_ctx_term (ctx);
    status = rt_test_kill (busd.pid, SIGTERM);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_bad_client_list_is_refused_at_start (void **state)
{
    (void)state;
    char dsn[1024], clients[512], arg_secret[80], arg_clients[600];
    char server_pub[41], server_sec[41];
    const char *extra[3];
    rt_test_busd_t busd;
    FILE *f;
    int status;

    assert_int_equal (zmq_curve_keypair (server_pub, server_sec), 0);
    snprintf (clients, sizeof clients, "%s/curve-bad-clients.txt", rt_test_dir ());
    f = fopen (clients, "w");
    fprintf (f, "not-a-key\n");
    fclose (f);
    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_curve_bad", dsn, sizeof dsn);
    snprintf (arg_secret, sizeof arg_secret, "--curve-secret-key=%s", server_sec);
    snprintf (arg_clients, sizeof arg_clients, "--curve-clients=%s", clients);
    extra[0] = arg_secret;
    extra[1] = arg_clients;
    extra[2] = NULL;
    rt_test_busd_start (&busd, dsn, "curve-bad-busd.log", extra, false);
    status = rt_test_wait (busd.pid, 10000);
    assert_int_not_equal (status, -1);
    assert_true (WIFEXITED (status));
    assert_int_not_equal (WEXITSTATUS (status), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_only_listed_keys_get_in),
        cmocka_unit_test (test_bad_client_list_is_refused_at_start),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
