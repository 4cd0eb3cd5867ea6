/*
 * CURVE on the bus: with its secret key (--curve-server-secret,
 * RETAIN_BUSD_CURVE_SECRET) and a list of admitted client keys, busd
 * accepts producers and subscribers holding a listed key and refuses every
 * other one (ZAP), both on ingress and on PUB; it logs the public key its
 * clients verify. A client's keys are its own settings
 * (RETAIN_BUS_CURVE_SERVER_KEY, _CLIENT_PUBLIC, _CLIENT_SECRET), as
 * retainctl publish shows with a pair from retainctl keygen. The old
 * ambiguous variables are refused, naming the new ones, by busd and by a
 * client: an operator upgrading never runs without CURVE unawares.
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

static rt_bus_curve_t
s_keys (const char *server_pub, const char *pub, const char *sec)
{
    rt_bus_curve_t keys;
    memset (&keys, 0, sizeof keys);
    snprintf (keys.server_key, sizeof keys.server_key, "%s", server_pub);
    snprintf (keys.client_public, sizeof keys.client_public, "%s", pub);
    snprintf (keys.client_secret, sizeof keys.client_secret, "%s", sec);
    return keys;
}

/* The value of `name`=... in text (KEY=VALUE lines) into out. */
static void
s_assignment (const char *text, const char *name, char *out, size_t outlen)
{
    char prefix[96];
    const char *at;
    snprintf (prefix, sizeof prefix, "%s=", name);
    at = strstr (text, prefix);
    if (!at)
        fail_msg ("no %s in:\n%s", prefix, text);
    at += strlen (prefix);
    /* Quoted, so that a shell or an env file takes the key literally. */
    if (*at != '\'' || at[41] != '\'' || (at[42] != '\n' && at[42] != '\0'))
        fail_msg ("%s is not a single-quoted 40-character key:\n%s", prefix, text);
    snprintf (out, outlen, "%.40s", at + 1);
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
    snprintf (arg_secret, sizeof arg_secret, "--curve-server-secret=%s", server_sec);
    snprintf (arg_clients, sizeof arg_clients, "--curve-clients=%s", clients);
    extra[0] = arg_secret;
    extra[1] = arg_clients;
    extra[2] = NULL;
    rt_test_busd_start (&busd, dsn, "curve-busd.log", extra, true);
    /* busd names the public key its clients must verify. */
    {
        char *log = rt_test_log ("curve-busd.log");
        char want[96];
        snprintf (want, sizeof want, "\"server_key\":\"%s\"", server_pub);
        if (!strstr (log, "CURVE enabled") || !strstr (log, want))
            fail_msg ("busd did not log its public key %s:\n%s", server_pub, log);
        free (log);
    }

    /* A listed key: published and acknowledged. */
    rt_bus_curve_t good = s_keys (server_pub, good_pub, good_sec);
    rt_bus_curve_t bad = s_keys (server_pub, bad_pub, bad_sec);
    producer = rt_producer_new (busd.ingress, &good, err, sizeof err);
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
    assert_int_equal (rt_bus_curve_apply (sub, &good, err, sizeof err), 0);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "order.", 6);
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal (zmq_connect (sub, busd.pub), 0);
    usleep (500000);
    producer = rt_producer_new (busd.ingress, &good, err, sizeof err);
    env = s_order ("seen-by-subscriber");
    assert_int_equal (rt_producer_send (producer, env, 10000, NULL, err, sizeof err), 0);
    rt_envelope_free (env);
    rt_producer_destroy (&producer);
    assert_true (zmq_recv (sub, topic, sizeof topic, 0) > 0);

    /* An unlisted key: no connection, so no ack, and busd says why. */
    producer = rt_producer_new (busd.ingress, &bad, err, sizeof err);
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
    producer = rt_producer_new (busd.ingress, NULL, err, sizeof err);
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
    snprintf (arg_secret, sizeof arg_secret, "--curve-server-secret=%s", server_sec);
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
/* Runs retainctl with argv (argv[0] included, NULL-terminated) and the
 * extra environment env (may be NULL); returns its exit code, its output
 * in *out (owned). */
static int
s_retainctl (char *const argv[], char *const env[], const char *log, char **out)
{
    char path[1024];
    int status;
    pid_t pid;
    snprintf (path, sizeof path, "%s/%s", rt_test_dir (), log);
    unlink (path);
    pid = rt_test_spawn ("retainctl", argv, env, log);
    status = rt_test_wait (pid, 60000);
    if (status == -1) {
        rt_test_kill (pid, SIGKILL);
        fail_msg ("retainctl %s did not finish; see %s", argv[1], path);
    }
    assert_true (WIFEXITED (status));
    *out = rt_test_log (log);
    return WEXITSTATUS (status);
}

/* busd started with `var`=value in its environment: exits 2 naming `names`. */
static void
s_busd_refuses (const char *var, const char *value, const char *names, const char *log)
{
    char dsn[1024], path[600], *out;
    rt_test_busd_t busd;
    int status;
    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_curve_old", dsn, sizeof dsn);
    snprintf (path, sizeof path, "%s/%s", rt_test_dir (), log);
    unlink (path);
    setenv (var, value, 1);
    rt_test_busd_start (&busd, dsn, log, NULL, false);
    unsetenv (var);
    status = rt_test_wait (busd.pid, 10000);
    if (status == -1) {
        rt_test_kill (busd.pid, SIGKILL);
        fail_msg ("busd ran with %s set; see %s", var, path);
    }
    out = rt_test_log (log);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 2 || !strstr (out, var) ||
        !strstr (out, names))
        fail_msg ("busd with %s: wait status %#x, wanted exit 2 naming %s:\n%s", var,
                  (unsigned)status, names, out);
    free (out);
}

static void
test_old_variables_are_refused (void **state)
{
    (void)state;
    char pub[41], sec[41], env_old[96], *out;
    char *publish[] = {
        "retainctl",    "publish", "--type=OrderPlaced", "--key=k", "--json={\"order_id\":\"o\"}",
        "--timeout=1s", NULL};
    char *const env[] = {env_old, NULL};
    assert_int_equal (zmq_curve_keypair (pub, sec), 0);
    /* busd: its secret and its list have names of their own now. */
    s_busd_refuses ("RETAIN_BUS_CURVE_SECRET_KEY", sec, "RETAIN_BUSD_CURVE_SECRET",
                    "curve-old-secret.log");
    s_busd_refuses ("RETAIN_BUS_CURVE_CLIENTS", "/etc/retain/curve-clients",
                    "RETAIN_BUSD_CURVE_CLIENTS", "curve-old-clients.log");
    /* A client: its own pair has names of its own too. */
    snprintf (env_old, sizeof env_old, "RETAIN_BUS_CURVE_SECRET_KEY=%s", sec);
    assert_int_equal (s_retainctl (publish, env, "curve-old-publish.log", &out), 2);
    if (!strstr (out, "RETAIN_BUS_CURVE_CLIENT_SECRET"))
        fail_msg ("retainctl publish does not name the new variable:\n%s", out);
    free (out);
    snprintf (env_old, sizeof env_old, "RETAIN_BUS_CURVE_PUBLIC_KEY=%s", pub);
    assert_int_equal (s_retainctl (publish, env, "curve-old-publish.log", &out), 2);
    if (!strstr (out, "RETAIN_BUS_CURVE_CLIENT_PUBLIC"))
        fail_msg ("retainctl publish does not name the new variable:\n%s", out);
    free (out);
}

/* The operator's way: pairs from retainctl keygen, busd configured through
 * its variables, a client through its own. */
static void
test_retainctl_publishes_with_keygen_pairs (void **state)
{
    (void)state;
    char dsn[1024], clients[512], *out;
    char busd_secret[64], server_key[64], client_public[64], client_secret[64];
    char a_bus[96], e_server[128], e_public[128], e_secret[128];
    char *keygen_busd[] = {"retainctl", "keygen", "--for=busd", NULL};
    char *keygen_client[] = {"retainctl", "keygen", NULL};
    char *publish[] = {"retainctl",
                       "publish",
                       "--type=OrderPlaced",
                       "--key=keygen-key",
                       "--json={\"order_id\":\"o-k\"}",
                       a_bus,
                       "--timeout=3s",
                       NULL};
    char *const with_keys[] = {e_server, e_public, e_secret, NULL};
    rt_test_busd_t busd;
    FILE *f;

    assert_int_equal (s_retainctl (keygen_busd, NULL, "curve-keygen-busd.log", &out), 0);
    s_assignment (out, "RETAIN_BUSD_CURVE_SECRET", busd_secret, sizeof busd_secret);
    s_assignment (out, "RETAIN_BUS_CURVE_SERVER_KEY", server_key, sizeof server_key);
    free (out);
    /* A client's pair is the default. */
    assert_int_equal (s_retainctl (keygen_client, NULL, "curve-keygen-client.log", &out), 0);
    s_assignment (out, "RETAIN_BUS_CURVE_CLIENT_PUBLIC", client_public, sizeof client_public);
    s_assignment (out, "RETAIN_BUS_CURVE_CLIENT_SECRET", client_secret, sizeof client_secret);
    free (out);
    assert_int_equal (strlen (server_key), 40);
    assert_int_equal (strlen (client_public), 40);

    snprintf (clients, sizeof clients, "%s/curve-keygen-clients.txt", rt_test_dir ());
    f = fopen (clients, "w");
    assert_non_null (f);
    fprintf (f, "%s\n", client_public);
    fclose (f);
    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("bus_curve_keygen", dsn, sizeof dsn);
    setenv ("RETAIN_BUSD_CURVE_SECRET", busd_secret, 1);
    setenv ("RETAIN_BUSD_CURVE_CLIENTS", clients, 1);
    rt_test_busd_start (&busd, dsn, "curve-keygen-busd.log", NULL, true);
    unsetenv ("RETAIN_BUSD_CURVE_SECRET");
    unsetenv ("RETAIN_BUSD_CURVE_CLIENTS");

    snprintf (a_bus, sizeof a_bus, "--bus=%s", busd.ingress);
    snprintf (e_server, sizeof e_server, "RETAIN_BUS_CURVE_SERVER_KEY=%s", server_key);
    snprintf (e_public, sizeof e_public, "RETAIN_BUS_CURVE_CLIENT_PUBLIC=%s", client_public);
    snprintf (e_secret, sizeof e_secret, "RETAIN_BUS_CURVE_CLIENT_SECRET=%s", client_secret);
    if (s_retainctl (publish, with_keys, "curve-keygen-publish.log", &out) != 0 ||
        !strstr (out, "\"status\":\"ok\""))
        fail_msg ("retainctl publish with its pair:\n%s", out);
    free (out);
    /* Without them: no connection, so no ack. */
    assert_int_equal (s_retainctl (publish, NULL, "curve-keygen-plain.log", &out), 1);
    free (out);
    {
        PGconn *conn = rt_test_pg (dsn);
        assert_int_equal (rt_test_pg_long (conn, "SELECT count(*) FROM bus.events"), 1);
        PQfinish (conn);
    }
    rt_test_stop (busd.pid, "retain-busd");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_only_listed_keys_get_in),
        cmocka_unit_test (test_bad_client_list_is_refused_at_start),
        cmocka_unit_test (test_old_variables_are_refused),
        cmocka_unit_test (test_retainctl_publishes_with_keygen_pairs),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
