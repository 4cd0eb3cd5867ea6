/*
 * retain-ingestd's /readyz tells the truth about PostgreSQL: 200 while
 * ingestd can reach it, 503 with the reason within seconds of losing it,
 * 200 again once it is back, while /healthz stays 200 throughout (the
 * process is alive; restarting it would not help).
 *
 * PostgreSQL goes away in the two ways a deployment meets: it refuses
 * connections (a restart, a failover: the database closed to connections
 * and its sessions ended), and it stops answering (a network partition: a
 * relay between ingestd and PostgreSQL, run by this test, stops passing
 * bytes, so ingestd's statements wait with no error to see).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

#define S_MAX_PAIRS 64

/* A TCP relay to PostgreSQL that the test can pause. */
typedef struct {
    int listen_fd;             /* loopback, where ingestd connects */
    int port;                  /* its port */
    char upstream_host[80];    /* PostgreSQL: a socket folder or a host */
    char upstream_port[8];     /* its port */
    int pairs[S_MAX_PAIRS][2]; /* client and upstream fds of each relayed session */
    int npairs;                /* sessions in pairs */
    atomic_bool paused;        /* passes nothing while set */
    atomic_bool stop;          /* ends the thread */
    pthread_t thread;          /* runs s_relay_run */
} s_relay_t;

typedef struct {
    s_relay_t relay;           /* between ingestd and PostgreSQL */
    rt_test_ingestd_t ingestd; /* the daemon under test */
    char dsn[1024];            /* the test database, directly */
    char via_relay[512];       /* the same database through the relay */
} s_fixture_t;

static s_fixture_t s_f;

static int
s_upstream_connect (const s_relay_t *r)
{
    int fd;
    if (r->upstream_host[0] == '/') {
        struct sockaddr_un addr;
        memset (&addr, 0, sizeof addr);
        addr.sun_family = AF_UNIX;
        snprintf (addr.sun_path, sizeof addr.sun_path, "%s/.s.PGSQL.%s", r->upstream_host,
                  r->upstream_port);
        fd = socket (AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 && connect (fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            return fd;
    } else {
        struct sockaddr_in addr;
        memset (&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_port = htons ((uint16_t)atoi (r->upstream_port));
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        fd = socket (AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect (fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            return fd;
    }
    if (fd >= 0)
        close (fd);
    return -1;
}

static void
s_pair_close (s_relay_t *r, int k)
{
    close (r->pairs[k][0]);
    close (r->pairs[k][1]);
    r->pairs[k][0] = r->pairs[r->npairs - 1][0];
    r->pairs[k][1] = r->pairs[r->npairs - 1][1];
    r->npairs--;
}

/* Copies what one side sent to the other; -1 when the session is over. */
static int
s_pass (int from, int to)
{
    char buf[65536];
    ssize_t n = read (from, buf, sizeof buf), off = 0;
    if (n <= 0)
        return -1;
    while (off < n) {
        ssize_t w = write (to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return -1;
        off += w;
    }
    return 0;
}

static void *
s_relay_run (void *arg)
{
    s_relay_t *r = arg;
    while (!atomic_load (&r->stop)) {
        struct pollfd fds[1 + 2 * S_MAX_PAIRS];
        int n = 0, k;
        if (atomic_load (&r->paused)) {
            /* Nothing read, nothing accepted: the kernel's buffers and the
             * listen backlog hold it all, as a silent network would. */
            usleep (10000);
            continue;
        }
        fds[n++] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        for (k = 0; k < r->npairs; k++) {
            fds[n++] = (struct pollfd){.fd = r->pairs[k][0], .events = POLLIN};
            fds[n++] = (struct pollfd){.fd = r->pairs[k][1], .events = POLLIN};
        }
        if (poll (fds, (nfds_t)n, 20) <= 0)
            continue;
        for (k = r->npairs - 1; k >= 0; k--) {
            short in = fds[1 + 2 * k].revents, out = fds[2 + 2 * k].revents;
            if (((in & (POLLIN | POLLHUP | POLLERR)) &&
                 s_pass (r->pairs[k][0], r->pairs[k][1]) != 0) ||
                ((out & (POLLIN | POLLHUP | POLLERR)) &&
                 s_pass (r->pairs[k][1], r->pairs[k][0]) != 0))
                s_pair_close (r, k);
        }
        if (fds[0].revents & POLLIN) {
            int client = accept (r->listen_fd, NULL, NULL);
            int upstream = client >= 0 ? s_upstream_connect (r) : -1;
            if (client >= 0 && (upstream < 0 || r->npairs == S_MAX_PAIRS)) {
                close (client);
                if (upstream >= 0)
                    close (upstream);
            } else if (client >= 0) {
                r->pairs[r->npairs][0] = client;
                r->pairs[r->npairs][1] = upstream;
                r->npairs++;
            }
        }
    }
    while (r->npairs > 0)
        s_pair_close (r, 0);
    return NULL;
}

/* Starts a relay to the PostgreSQL that RETAIN_TEST_PG names. */
static void
s_relay_start (s_relay_t *r)
{
    const char *server = getenv ("RETAIN_TEST_PG");
    char *error = NULL;
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    memset (r, 0, sizeof *r);
    if (!server || !server[0])
        fail_msg ("RETAIN_TEST_PG is not set: run the tests through ./tests/run");
    PQconninfoOption *opts = PQconninfoParse (server, &error);
    if (!opts)
        fail_msg ("RETAIN_TEST_PG does not parse: %s", error ? error : "");
    snprintf (r->upstream_host, sizeof r->upstream_host, "/var/run/postgresql");
    snprintf (r->upstream_port, sizeof r->upstream_port, "5432");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp (o->keyword, "host") == 0 && o->val && o->val[0])
            snprintf (r->upstream_host, sizeof r->upstream_host, "%s", o->val);
        if (strcmp (o->keyword, "port") == 0 && o->val && o->val[0])
            snprintf (r->upstream_port, sizeof r->upstream_port, "%s", o->val);
    }
    PQconninfoFree (opts);
    r->listen_fd = socket (AF_INET, SOCK_STREAM, 0);
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (r->listen_fd < 0 || bind (r->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen (r->listen_fd, 64) != 0 ||
        getsockname (r->listen_fd, (struct sockaddr *)&addr, &len) != 0)
        fail_msg ("relay: %s", strerror (errno));
    r->port = ntohs (addr.sin_port);
    atomic_init (&r->paused, false);
    atomic_init (&r->stop, false);
    assert_int_equal (pthread_create (&r->thread, NULL, s_relay_run, r), 0);
}

static void
s_relay_stop (s_relay_t *r)
{
    atomic_store (&r->stop, true);
    pthread_join (r->thread, NULL);
    close (r->listen_fd);
}

static int
s_setup (void **state)
{
    char dbname[128];
    memset (&s_f, 0, sizeof s_f);
    rt_test_db_create ("ingest_ready", s_f.dsn, sizeof s_f.dsn);
    rt_test_db_name (s_f.dsn, dbname, sizeof dbname);
    s_relay_start (&s_f.relay);
    snprintf (s_f.via_relay, sizeof s_f.via_relay, "host=127.0.0.1 port=%d user=retain dbname=%s",
              s_f.relay.port, dbname);
    rt_test_ingestd_start (&s_f.ingestd, s_f.via_relay, "ingest-ready.log", NULL, NULL);
    *state = &s_f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    if (!f)
        return 0; /* the setup failed: cmocka runs the teardown anyway */
    /* Whatever a failed test left behind: PostgreSQL back, relay passing. */
    atomic_store (&f->relay.paused, false);
    rt_test_db_allow (f->dsn);
    rt_test_stop (f->ingestd.pid, "retain-ingestd");
    s_relay_stop (&f->relay);
    return 0;
}

/* Polls /readyz until its status is `want` or timeout; returns the last
 * status, its body in body. */
static long
s_readyz_until (long want, int timeout_ms, char *body, size_t bodylen)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    long status = rt_test_http_get (s_f.ingestd.admin_port, "/readyz", body, bodylen);
    while (status != want && rt_test_now_ms () < deadline) {
        usleep (100000);
        status = rt_test_http_get (s_f.ingestd.admin_port, "/readyz", body, bodylen);
    }
    return status;
}

static void
s_assert_ready (const char *when)
{
    char body[512];
    long status = s_readyz_until (200, 15000, body, sizeof body);
    if (status != 200)
        fail_msg ("%s: /readyz %ld \"%s\", wanted 200; see %s/ingest-ready.log", when, status, body,
                  rt_test_dir ());
    assert_string_equal (body, "ready\n");
}

/* /readyz turns 503 within a few seconds, naming PostgreSQL as the reason;
 * the process stays alive. */
static void
s_assert_unreachable (const char *when)
{
    char body[512];
    int64_t t0 = rt_test_now_ms ();
    long status = s_readyz_until (503, 10000, body, sizeof body);
    if (status != 503)
        fail_msg ("%s: /readyz still %ld \"%s\" after 10s", when, status, body);
    if (!strstr (body, "PostgreSQL unreachable"))
        fail_msg ("%s: /readyz 503 without the reason: \"%s\"", when, body);
    print_message ("%s: /readyz 503 after %lld ms: %s", when, (long long)(rt_test_now_ms () - t0),
                   body);
    assert_int_equal (rt_test_http_get (s_f.ingestd.admin_port, "/healthz", NULL, 0), 200);
}

static void
test_refused_then_back (void **state)
{
    (void)state;
    s_assert_ready ("at start");
    rt_test_db_refuse (s_f.dsn);
    s_assert_unreachable ("connections refused");
    /* It stays so while PostgreSQL does: not one lucky answer. */
    usleep (2500000);
    s_assert_unreachable ("still refused");
    rt_test_db_allow (s_f.dsn);
    s_assert_ready ("connections allowed again");
}

static void
test_silent_then_back (void **state)
{
    (void)state;
    s_assert_ready ("at start");
    atomic_store (&s_f.relay.paused, true);
    s_assert_unreachable ("no answer");
    atomic_store (&s_f.relay.paused, false);
    s_assert_ready ("answers again");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_refused_then_back),
        cmocka_unit_test (test_silent_then_back),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
