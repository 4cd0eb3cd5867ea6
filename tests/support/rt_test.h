/*
 * rt_test: what the integration tests share.
 *
 * A fresh database per test on the throw-away cluster ./tests/run starts
 * (RETAIN_TEST_PG), real daemons started as child processes with their
 * output in a log file, free ports, readiness waits over the admin HTTP
 * port, HTTP requests with their answers, retainctl runs, a database taken
 * away from its daemons and given back, and small query helpers. Tests
 * that need PostgreSQL and find no RETAIN_TEST_PG fail loudly instead of
 * skipping.
 */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <stdarg.h>
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

/* Stops a child with SIGTERM (SIGKILL after 30 s, as rt_test_kill) and
 * fails the test unless it exited by itself with status 0; `name` names it
 * in the message. */
void rt_test_stop (pid_t pid, const char *name);

/* Waits for a child to exit on its own within timeout_ms; returns its wait
 * status, or -1 on timeout. */
int rt_test_wait (pid_t pid, int timeout_ms);

/* GETs http://127.0.0.1:<port><path>; returns the HTTP status (0 when the
 * connection failed) and the body into body (may be NULL). */
long rt_test_http_get (int port, const char *path, char *body, size_t bodylen);

/* What an HTTP exchange got back. */
typedef struct {
    long status;     /* the answer's HTTP status, 0 when none came */
    int result;      /* libcurl's CURLcode for the exchange, 0 when it completed */
    char body[4096]; /* the answer's body, cut to fit, NUL-terminated */
    size_t len;      /* bytes in body */
    char type[128];  /* its Content-Type, "" when it had none */
} rt_test_reply_t;

/* Sends `method` to http://127.0.0.1:<port><path> with len bytes of body
 * (NULL for none) and headers ("Name: value", NULL-terminated, may be
 * NULL), 20 s at most. Returns the HTTP status when the exchange completed,
 * 0 when it did not (refused, timed out, cut short). reply (may be NULL) is
 * reset and gets the answer, even one that came before the exchange was cut
 * short (a server refusing a body it has not read), with libcurl's result. */
long rt_test_http_request (int port, const char *method, const char *path, const char *body,
                           size_t len, const char *const headers[], rt_test_reply_t *reply);

/* libcurl write callbacks (CURLOPT_WRITEFUNCTION) for a test's own handles:
 * rt_test_reply_write appends to the rt_test_reply_t given as
 * CURLOPT_WRITEDATA (cut to fit its body; set it, libcurl's default is
 * stdout), rt_test_reply_drop drops the bytes. */
size_t rt_test_reply_write (char *data, size_t size, size_t n, void *reply);
size_t rt_test_reply_drop (char *data, size_t size, size_t n, void *unused);

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

/* Runs rt_test_pg_long's query every 20 ms until it counts want or more, or
 * timeout_ms pass; returns the last count (aborts on error). */
long long rt_test_pg_wait_long (PGconn *conn, const char *sql, long long want, int timeout_ms);

/* Runs a statement (printf-style) in the cluster's postgres database, for
 * what a test does to a database from outside (ALTER DATABASE, ending
 * sessions); aborts on error. */
void rt_test_pg_admin (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* The database name of a DSN rt_test_db_create made, into name. Aborts when
 * the DSN names none. */
void rt_test_db_name (const char *dsn, char *name, size_t namelen);

/* PostgreSQL away, as a restart or a failover looks from a daemon: the
 * database of dsn refuses new connections and its sessions (the test's own
 * too) are ended. rt_test_db_allow lets connections in again. Abort on
 * error. */
void rt_test_db_refuse (const char *dsn);
void rt_test_db_allow (const char *dsn);

/* Runs retainctl with args (NULL-terminated, the subcommand first, without
 * argv[0]) and --pg-dsn=<dsn> last, and waits for it (60 s). Returns its
 * exit status; *out (when out is not NULL) gets what it printed, stdout and
 * stderr (owned; free()). Fails the test when it does not exit in time or
 * dies of a signal. */
int rt_test_retainctl (const char *dsn, const char *const args[], char **out);

/* Publishes one event as a producer does: `retainctl publish` into busd's
 * ingress (a ROUTER endpoint; publish takes no --pg-dsn, so not through
 * rt_test_retainctl), of type, keyed key, its payload json, from producer
 * (NULL: retainctl's default), output in <rt_test_dir>/<log>. Fails the
 * test unless it exits 0 within 30 s. */
void rt_test_retainctl_publish (const char *ingress, const char *log, const char *type,
                                const char *key, const char *json, const char *producer);

/* What one retainctl run did. */
typedef struct {
    int status; /* its exit status */
    char *out;  /* what it printed, stdout and stderr (owned; free()) */
} rt_test_ctl_t;

/* rt_test_retainctl of prefix (when not NULL) and then first and the
 * arguments after it in ap, up to a NULL; its output kept. */
rt_test_ctl_t rt_test_retainctl_v (const char *dsn, const char *prefix, const char *first,
                                   va_list ap);

/* rt_test_retainctl_v of first and the arguments after it, up to a NULL. */
rt_test_ctl_t rt_test_retainctl_run (const char *dsn, const char *first, ...);

/* Fails the test, naming `what`, unless the run r exited with want and
 * printed every one of the strings after keep (NULL-ended); then its
 * output goes into *keep (owned) when keep is not NULL, and is freed
 * otherwise. rt_test_retainctl_expectv takes the strings as a va_list. */
void rt_test_retainctl_expect (rt_test_ctl_t r, int want, const char *what, char **keep, ...);
void rt_test_retainctl_expectv (rt_test_ctl_t r, int want, const char *what, char **keep,
                                va_list says);

/* Writes text into the file at path (created or emptied); fails the test
 * when it cannot. */
void rt_test_file_write (const char *path, const char *text);

/* The first of paths (NULL-terminated) that is an executable: a server a
 * test starts (Exim, Dovecot). Fails the test, naming `what` and the
 * Debian package that brings it, when there is none. */
const char *rt_test_program (const char *const paths[], const char *what, const char *package);

/* A child gone at once, as a crashed server is: it is stopped (so it
 * starts nothing new), every process it started is sent SIGKILL, then it
 * is, and it is reaped. */
void rt_test_kill_tree (pid_t pid);

/* The bytes of the file at path, NUL-terminated (owned; free()), or NULL
 * when it cannot be read. *len, when not NULL, gets their count. */
char *rt_test_file_read (const char *path, size_t *len);

/* The bytes of tests/fixtures/<relpath>, NUL-terminated (owned; free()).
 * *len, when not NULL, gets their count. Fails the test when unreadable. */
char *rt_test_fixture (const char *relpath, size_t *len);

/* The same for <source tree>/<relpath> (a migration, a config example). */
char *rt_test_source (const char *relpath, size_t *len);

/* The text of the log `name` under rt_test_dir so far (owned; free()); ""
 * when there is none yet. */
char *rt_test_log (const char *name);

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

/* A daemon that is a bus client (notifyd, trackerd) started for a test,
 * and what it takes to start it again: --pg-dsn, --pub, --admin on a free
 * port, --member, --clock-file, and its own arguments. */
typedef struct {
    char bin[32];        /* the program, "retain-notifyd" */
    pid_t pid;           /* the process, 0 when not running */
    int admin_port;      /* its admin port, chosen free at the first start */
    char member[32];     /* its --member */
    char log[128];       /* its log under rt_test_dir (appended across restarts) */
    char dsn[1024];      /* the database it was started on */
    char pub[64];        /* the busd PUB endpoint it subscribes to */
    char clock[1024];    /* the clock file it follows, "" for none */
    char extra[24][128]; /* further arguments it was started with */
    size_t nextra;       /* how many of extra */
} rt_test_clientd_t;

/* Starts bin as member on dsn, subscribed to pub, following clock (NULL or
 * "" for the real time), output appended to <rt_test_dir>/<log>, and waits
 * for its /readyz (60 s; fails the test otherwise, naming the log). extra
 * are further arguments (NULL-terminated, may be NULL; at most 24, each
 * under 128 bytes). Everything is copied into *n. */
void rt_test_clientd_start (rt_test_clientd_t *n, const char *bin, const char *dsn, const char *pub,
                            const char *clock, const char *member, const char *log,
                            const char *const extra[]);

/* Starts it again as rt_test_clientd_start last did (same admin port,
 * member, log and arguments), after the test killed it. */
void rt_test_clientd_restart (rt_test_clientd_t *n);

/* Stops it with SIGTERM (rt_test_stop: a clean exit is asserted); nothing
 * when it is not running. */
void rt_test_clientd_stop (rt_test_clientd_t *n);

/* Fails the test with a formatted message (via cmocka's fail_msg). */
#define RT_TEST_FAIL(...) fail_msg (__VA_ARGS__)

#endif
