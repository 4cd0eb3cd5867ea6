/*
 * rt_test: what the integration tests share.
 *
 * A fresh database per test on the throw-away cluster ./tests/run starts
 * (RETAIN_TEST_PG), real daemons started as child processes with their
 * output in a log file, free ports, readiness waits over the admin HTTP
 * port, and small query helpers. Tests that need PostgreSQL and find no
 * RETAIN_TEST_PG fail loudly instead of skipping.
 */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

/* Creates database "<name>_<pid>" and writes its DSN into dsn. Aborts the
 * test on failure. */
void rt_test_db_create (const char *name, char *dsn, size_t dsnlen);

/* A free TCP port on loopback. */
int rt_test_free_port (void);

/* A folder for this test's files (logs), under RETAIN_TEST_TMP or /tmp. */
const char *rt_test_dir (void);

/* Starts `bin` (a path, or a name looked up in the build's bin dir) with
 * argv (NULL-terminated, argv[0] included) and extra environment entries
 * ("K=V", NULL-terminated, may be NULL). Output goes to <rt_test_dir>/<log>.
 * Returns the pid; aborts on failure. */
pid_t rt_test_spawn (const char *bin, char *const argv[], char *const env[], const char *log);

/* Sends sig and reaps the child; returns its wait status. */
int rt_test_kill (pid_t pid, int sig);

/* Waits for a child to exit on its own within timeout_ms; returns its wait
 * status, or -1 on timeout. */
int rt_test_wait (pid_t pid, int timeout_ms);

/* GETs http://127.0.0.1:<port><path>; returns the HTTP status (0 when the
 * connection failed) and the body into body (may be NULL). */
long rt_test_http_get (int port, const char *path, char *body, size_t bodylen);

/* Polls /readyz until 200 or timeout; true when ready. */
bool rt_test_wait_ready (int admin_port, int timeout_ms);

/* A value of a Prometheus series ("name" or "name{labels}") from /metrics,
 * -1 when absent. */
double rt_test_metric (int admin_port, const char *series);

/* Connects (aborts on failure). */
PGconn *rt_test_pg (const char *dsn);

/* Runs a query returning one number (first row, first column); aborts on
 * error. */
long long rt_test_pg_long (PGconn *conn, const char *sql);

/* Runs a statement; aborts on error. */
void rt_test_pg_exec (PGconn *conn, const char *sql);

/* The bytes of tests/fixtures/<relpath>, NUL-terminated (owned; free()).
 * *len, when not NULL, gets their count. Fails the test when unreadable. */
char *rt_test_fixture (const char *relpath, size_t *len);

/* Monotonic milliseconds. */
int64_t rt_test_now_ms (void);

/* A retain-busd started for a test. */
typedef struct {
    pid_t pid;        /* the process */
    int admin_port;   /* its admin HTTP port */
    char ingress[64]; /* ROUTER endpoint */
    char pub[64];     /* PUB endpoint */
    char dsn[1024];   /* its database */
    char log[64];     /* log file name under rt_test_dir */
} rt_test_busd_t;

/* Starts retain-busd on `dsn`. Endpoints and admin port left empty/0 in *b
 * are chosen free. `extra` are further arguments (NULL-terminated, may be
 * NULL). Waits for /readyz unless wait_ready is false. */
void rt_test_busd_start (rt_test_busd_t *b, const char *dsn, const char *log,
                         const char *const extra[], bool wait_ready);

/* Fails the test with a formatted message (via cmocka's fail_msg). */
#define RT_TEST_FAIL(...) fail_msg (__VA_ARGS__)

#endif
