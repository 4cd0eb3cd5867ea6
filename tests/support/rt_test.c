/*
 * rt_test: shared helpers of the integration tests (see rt_test.h).
 */
#include "rt_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

int64_t
rt_test_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
rt_test_dir (void)
{
    static char dir[PATH_MAX];
    if (!dir[0]) {
        const char *base = getenv ("RETAIN_TEST_TMP");
        snprintf (dir, sizeof dir, "%s/logs", base && base[0] ? base : "/tmp/retain-tests");
        mkdir (base && base[0] ? base : "/tmp/retain-tests", 0755);
        mkdir (dir, 0755);
    }
    return dir;
}

void
rt_test_db_create (const char *name, char *dsn, size_t dsnlen)
{
    const char *server = getenv ("RETAIN_TEST_PG");
    char admin[1024], sql[256], dbname[128];
    PGconn *conn;
    PGresult *res;
    if (!server || !server[0])
        fail_msg ("RETAIN_TEST_PG is not set: run the tests through ./tests/run");
    snprintf (dbname, sizeof dbname, "%s_%d", name, (int)getpid ());
    snprintf (admin, sizeof admin, "%s dbname=postgres", server);
    conn = rt_test_pg (admin);
    snprintf (sql, sizeof sql, "DROP DATABASE IF EXISTS %s", dbname);
    res = PQexec (conn, sql);
    PQclear (res);
    snprintf (sql, sizeof sql, "CREATE DATABASE %s", dbname);
    res = PQexec (conn, sql);
    if (PQresultStatus (res) != PGRES_COMMAND_OK)
        fail_msg ("create database: %s", PQresultErrorMessage (res));
    PQclear (res);
    PQfinish (conn);
    snprintf (dsn, dsnlen, "%s dbname=%s", server, dbname);
}

int
rt_test_free_port (void)
{
    /* The kernel may hand the same ephemeral port to two binds in a row
     * once the first socket is closed: a test that asked twice got one
     * port for busd's PUB and admin. The ports given out are remembered,
     * and one given before is asked again. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int given[512];
    static size_t ngiven;
    int port = 0;

    pthread_mutex_lock (&lock);
    for (int attempt = 0; attempt < 100; attempt++) {
        struct sockaddr_in addr;
        socklen_t len = sizeof addr;
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        bool seen = false;
        memset (&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        if (fd < 0 || bind (fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
            getsockname (fd, (struct sockaddr *)&addr, &len) != 0) {
            pthread_mutex_unlock (&lock);
            fail_msg ("free port: %s", strerror (errno));
        }
        port = ntohs (addr.sin_port);
        close (fd);
        for (size_t i = 0; i < ngiven && i < sizeof given / sizeof given[0] && !seen; i++)
            seen = given[i] == port;
        if (!seen)
            break;
    }
    given[ngiven++ % (sizeof given / sizeof given[0])] = port;
    pthread_mutex_unlock (&lock);
    return port;
}

pid_t
rt_test_spawn (const char *bin, char *const argv[], char *const env[], const char *log)
{
    char path[PATH_MAX], logpath[PATH_MAX];
    pid_t pid;
    if (strchr (bin, '/'))
        snprintf (path, sizeof path, "%s", bin);
    else
        snprintf (path, sizeof path, "%s/%s", RT_TEST_BIN_DIR, bin);
    snprintf (logpath, sizeof logpath, "%s/%s", rt_test_dir (), log);
    fflush (NULL);
    pid = fork ();
    if (pid < 0)
        fail_msg ("fork: %s", strerror (errno));
    if (pid == 0) {
        int fd = open (logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
            close (fd);
        }
        for (size_t i = 0; env && env[i]; i++)
            putenv (env[i]);
        execv (path, argv);
        fprintf (stderr, "exec %s: %s\n", path, strerror (errno));
        _exit (127);
    }
    return pid;
}

int
rt_test_kill (pid_t pid, int sig)
{
    int status = 0;
    kill (pid, sig);
    if (sig == SIGTERM || sig == SIGINT) {
        status = rt_test_wait (pid, 30000);
        if (status != -1)
            return status;
        kill (pid, SIGKILL);
    }
    waitpid (pid, &status, 0);
    return status;
}

void
rt_test_stop (pid_t pid, const char *name)
{
    int status = rt_test_kill (pid, SIGTERM);
    if (!WIFEXITED (status))
        fail_msg ("%s (pid %d) did not exit on SIGTERM (wait status %#x)", name, (int)pid,
                  (unsigned)status);
    if (WEXITSTATUS (status) != 0)
        fail_msg ("%s (pid %d) exited with status %d on SIGTERM", name, (int)pid,
                  WEXITSTATUS (status));
}

int
rt_test_wait (pid_t pid, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    int status;
    while (rt_test_now_ms () < deadline) {
        pid_t r = waitpid (pid, &status, WNOHANG);
        if (r == pid)
            return status;
        usleep (20000);
    }
    return -1;
}

typedef struct {
    char *buf;  /* caller's buffer */
    size_t cap; /* its size */
    size_t len; /* bytes written */
} s_body_t;

static size_t
s_write (char *data, size_t size, size_t n, void *arg)
{
    s_body_t *b = arg;
    size_t len = size * n;
    if (b->buf && b->cap > 0) {
        size_t room = b->cap - 1 - b->len;
        size_t copy = len < room ? len : room;
        memcpy (b->buf + b->len, data, copy);
        b->len += copy;
        b->buf[b->len] = '\0';
    }
    return len;
}

long
rt_test_http_get (int port, const char *path, char *body, size_t bodylen)
{
    char url[512];
    long status = 0;
    s_body_t b = {body, bodylen, 0};
    CURL *curl = curl_easy_init ();
    if (!curl)
        return 0;
    if (body && bodylen)
        body[0] = '\0';
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (curl);
    return status;
}

size_t
rt_test_reply_write (char *data, size_t size, size_t n, void *reply)
{
    rt_test_reply_t *r = reply;
    size_t len = size * n, room, copy;
    if (!r)
        return len;
    room = sizeof r->body - 1 - r->len;
    copy = len < room ? len : room;
    memcpy (r->body + r->len, data, copy);
    r->len += copy;
    r->body[r->len] = '\0';
    return len;
}

size_t
rt_test_reply_drop (char *data, size_t size, size_t n, void *unused)
{
    (void)data;
    (void)unused;
    return size * n;
}

long
rt_test_http_request (int port, const char *method, const char *path, const char *body, size_t len,
                      const char *const headers[], rt_test_reply_t *reply)
{
    char url[512];
    long status = 0;
    char *type = NULL;
    rt_test_reply_t sink;
    struct curl_slist *list = NULL;
    CURLcode rc;
    CURL *curl = curl_easy_init ();
    if (!reply)
        reply = &sink;
    memset (reply, 0, sizeof *reply);
    if (!curl) {
        reply->result = CURLE_FAILED_INIT;
        return 0;
    }
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append (list, headers[i]);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, rt_test_reply_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, reply);
    rc = curl_easy_perform (curl);
    reply->result = (int)rc;
    /* Read whatever came, complete or not: the caller asked for the reply
     * to see an answer sent before the exchange broke off. */
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &reply->status);
    if (curl_easy_getinfo (curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type)
        snprintf (reply->type, sizeof reply->type, "%s", type);
    if (rc == CURLE_OK)
        status = reply->status;
    curl_slist_free_all (list);
    curl_easy_cleanup (curl);
    return status;
}

bool
rt_test_wait_ready (int admin_port, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    while (rt_test_now_ms () < deadline) {
        if (rt_test_http_get (admin_port, "/readyz", NULL, 0) == 200)
            return true;
        usleep (50000);
    }
    return false;
}

double
rt_test_metric (int admin_port, const char *series)
{
    size_t cap = 1 << 20;
    char *body = malloc (cap);
    char *line;
    double value = -1;
    size_t n = strlen (series);
    if (!body)
        return -1;
    if (rt_test_http_get (admin_port, "/metrics", body, cap) != 200) {
        free (body);
        return -1;
    }
    for (line = body; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL) {
        if (strncmp (line, series, n) == 0 && line[n] == ' ') {
            value = strtod (line + n + 1, NULL);
            break;
        }
    }
    free (body);
    return value;
}

static void
s_quiet (void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *
rt_test_pg (const char *dsn)
{
    PGconn *conn = PQconnectdb (dsn);
    if (PQstatus (conn) != CONNECTION_OK)
        fail_msg ("connect %s: %s", dsn, PQerrorMessage (conn));
    PQsetNoticeProcessor (conn, s_quiet, NULL);
    return conn;
}

long long
rt_test_pg_long (PGconn *conn, const char *sql)
{
    PGresult *res = PQexec (conn, sql);
    long long v;
    if (PQresultStatus (res) != PGRES_TUPLES_OK || PQntuples (res) < 1)
        fail_msg ("%s: %s", sql, PQresultErrorMessage (res));
    v = PQgetisnull (res, 0, 0) ? 0 : strtoll (PQgetvalue (res, 0, 0), NULL, 10);
    PQclear (res);
    return v;
}

void
rt_test_pg_exec (PGconn *conn, const char *sql)
{
    PGresult *res = PQexec (conn, sql);
    if (PQresultStatus (res) != PGRES_COMMAND_OK && PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQresultErrorMessage (res));
    PQclear (res);
}

long long
rt_test_pg_wait_long (PGconn *conn, const char *sql, long long want, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    long long n = rt_test_pg_long (conn, sql);
    while (n < want && rt_test_now_ms () < deadline) {
        usleep (20000);
        n = rt_test_pg_long (conn, sql);
    }
    return n;
}

void
rt_test_pg_admin (const char *fmt, ...)
{
    const char *server = getenv ("RETAIN_TEST_PG");
    char admin[1024], sql[1024];
    PGconn *conn;
    va_list ap;
    if (!server || !server[0])
        fail_msg ("RETAIN_TEST_PG is not set: run the tests through ./tests/run");
    va_start (ap, fmt);
    vsnprintf (sql, sizeof sql, fmt, ap);
    va_end (ap);
    snprintf (admin, sizeof admin, "%s dbname=postgres", server);
    conn = rt_test_pg (admin);
    rt_test_pg_exec (conn, sql);
    PQfinish (conn);
}

void
rt_test_db_name (const char *dsn, char *name, size_t namelen)
{
    char *error = NULL;
    PQconninfoOption *opts = PQconninfoParse (dsn, &error);
    name[0] = '\0';
    if (!opts)
        fail_msg ("DSN does not parse (%s): %s", error ? error : "", dsn);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp (o->keyword, "dbname") == 0 && o->val)
            snprintf (name, namelen, "%s", o->val);
    }
    PQconninfoFree (opts);
    if (!name[0])
        fail_msg ("DSN names no database: %s", dsn);
}

void
rt_test_db_refuse (const char *dsn)
{
    char name[128];
    rt_test_db_name (dsn, name, sizeof name);
    rt_test_pg_admin ("ALTER DATABASE %s ALLOW_CONNECTIONS false", name);
    rt_test_pg_admin ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
                      name);
}

void
rt_test_db_allow (const char *dsn)
{
    char name[128];
    rt_test_db_name (dsn, name, sizeof name);
    rt_test_pg_admin ("ALTER DATABASE %s ALLOW_CONNECTIONS true", name);
}

void
rt_test_retainctl_publish (const char *ingress, const char *log, const char *type, const char *key,
                           const char *json, const char *producer)
{
    char bus[96];
    /* Without a producer, argv ends where --producer would stand. */
    char *argv[] = {
        "retainctl",      "publish",   bus,      "--type",     (char *)type,
        "--key",          (char *)key, "--json", (char *)json, producer ? "--producer" : NULL,
        (char *)producer, NULL};
    pid_t pid;
    int status;
    snprintf (bus, sizeof bus, "--bus=%s", ingress);
    pid = rt_test_spawn ("retainctl", argv, NULL, log);
    status = rt_test_wait (pid, 30000);
    if (status == -1) {
        rt_test_kill (pid, SIGKILL);
        fail_msg ("retainctl publish %s did not finish", type);
    }
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        fail_msg ("retainctl publish %s failed; see %s/%s", type, rt_test_dir (), log);
}

int
rt_test_retainctl (const char *dsn, const char *const args[], char **out)
{
    static int runs; /* numbers the runs' logs apart */
    char a_dsn[1100], log[64];
    char *argv[32];
    size_t n = 0;
    pid_t pid;
    int status;
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (log, sizeof log, "retainctl-%d-%d.log", (int)getpid (), runs++);
    argv[n++] = "retainctl";
    for (size_t i = 0; args[i]; i++) {
        if (n >= sizeof argv / sizeof *argv - 2)
            fail_msg ("rt_test_retainctl: too many arguments");
        argv[n++] = (char *)args[i];
    }
    argv[n++] = a_dsn;
    argv[n] = NULL;
    pid = rt_test_spawn ("retainctl", argv, NULL, log);
    status = rt_test_wait (pid, 60000);
    if (status == -1) {
        rt_test_kill (pid, SIGKILL);
        fail_msg ("retainctl %s did not finish in 60 s; see %s/%s", args[0], rt_test_dir (), log);
    }
    if (!WIFEXITED (status))
        fail_msg ("retainctl %s died (wait status %#x); see %s/%s", args[0], (unsigned)status,
                  rt_test_dir (), log);
    if (out)
        *out = rt_test_log (log);
    return WEXITSTATUS (status);
}

rt_test_ctl_t
rt_test_retainctl_v (const char *dsn, const char *prefix, const char *first, va_list ap)
{
    const char *args[32];
    size_t n = 0;
    rt_test_ctl_t r;
    if (prefix)
        args[n++] = prefix;
    for (const char *a = first; a; a = va_arg (ap, const char *)) {
        if (n >= sizeof args / sizeof args[0] - 1)
            fail_msg ("rt_test_retainctl_v: too many arguments");
        args[n++] = a;
    }
    args[n] = NULL;
    r.status = rt_test_retainctl (dsn, args, &r.out);
    return r;
}

rt_test_ctl_t
rt_test_retainctl_run (const char *dsn, const char *first, ...)
{
    rt_test_ctl_t r;
    va_list ap;
    va_start (ap, first);
    r = rt_test_retainctl_v (dsn, NULL, first, ap);
    va_end (ap);
    return r;
}

void
rt_test_retainctl_expectv (rt_test_ctl_t r, int want, const char *what, char **keep, va_list says)
{
    if (r.status != want)
        fail_msg ("%s: exit %d, wanted %d:\n%s", what, r.status, want, r.out);
    for (const char *say = va_arg (says, const char *); say; say = va_arg (says, const char *))
        if (!strstr (r.out, say))
            fail_msg ("%s: no \"%s\" in:\n%s", what, say, r.out);
    if (keep)
        *keep = r.out;
    else
        free (r.out);
}

void
rt_test_retainctl_expect (rt_test_ctl_t r, int want, const char *what, char **keep, ...)
{
    va_list ap;
    va_start (ap, keep);
    rt_test_retainctl_expectv (r, want, what, keep, ap);
    va_end (ap);
}

void
rt_test_file_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    if (!f)
        fail_msg ("cannot write %s: %s", path, strerror (errno));
    fputs (text, f);
    if (fclose (f) != 0)
        fail_msg ("cannot write %s: %s", path, strerror (errno));
}

const char *
rt_test_program (const char *const paths[], const char *what, const char *package)
{
    for (size_t i = 0; paths[i]; i++) {
        if (access (paths[i], X_OK) == 0)
            return paths[i];
    }
    fail_msg ("%s is not installed: run deploy/deps --test (%s)", what, package);
    return NULL;
}

void
rt_test_kill_tree (pid_t pid)
{
    DIR *proc;
    struct dirent *d;
    kill (pid, SIGSTOP); /* no new children while we look */
    proc = opendir ("/proc");
    while (proc && (d = readdir (proc)) != NULL) {
        char path[300], stat[512];
        FILE *f;
        int child = atoi (d->d_name), ppid = 0;
        const char *close;
        if (child <= 0)
            continue;
        snprintf (path, sizeof path, "/proc/%d/stat", child);
        f = fopen (path, "r");
        if (!f)
            continue;
        if (fgets (stat, sizeof stat, f)) {
            /* "pid (comm) state ppid ...": comm may hold spaces */
            close = strrchr (stat, ')');
            if (close)
                sscanf (close + 1, " %*c %d", &ppid);
        }
        fclose (f);
        if (ppid == pid)
            kill (child, SIGKILL);
    }
    if (proc)
        closedir (proc);
    rt_test_kill (pid, SIGKILL);
}

void
rt_test_busd_start (rt_test_busd_t *b, const char *dsn, const char *log, const char *const extra[],
                    bool wait_ready)
{
    char a_dsn[1100], a_ingress[96], a_pub[96], a_admin[64];
    char *argv[32];
    int n = 0;
    if (!b->ingress[0])
        snprintf (b->ingress, sizeof b->ingress, "tcp://127.0.0.1:%d", rt_test_free_port ());
    if (!b->pub[0])
        snprintf (b->pub, sizeof b->pub, "tcp://127.0.0.1:%d", rt_test_free_port ());
    if (!b->admin_port)
        b->admin_port = rt_test_free_port ();
    snprintf (b->dsn, sizeof b->dsn, "%s", dsn);
    snprintf (b->log, sizeof b->log, "%s", log);
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (a_ingress, sizeof a_ingress, "--ingress=%s", b->ingress);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", b->pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", b->admin_port);
    argv[n++] = "retain-busd";
    argv[n++] = a_dsn;
    argv[n++] = a_ingress;
    argv[n++] = a_pub;
    argv[n++] = a_admin;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    b->pid = rt_test_spawn ("retain-busd", argv, NULL, log);
    if (wait_ready && !rt_test_wait_ready (b->admin_port, 30000))
        fail_msg ("retain-busd did not become ready; see %s/%s", rt_test_dir (), log);
}

char *
rt_test_file_read (const char *path, size_t *len)
{
    FILE *f = fopen (path, "rb");
    char *data = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek (f, 0, SEEK_END) != 0)
        goto cleanup;
    n = ftell (f);
    if (n < 0 || fseek (f, 0, SEEK_SET) != 0)
        goto cleanup;
    data = malloc ((size_t)n + 1);
    if (!data)
        goto cleanup;
    if (fread (data, 1, (size_t)n, f) != (size_t)n) {
        free (data);
        data = NULL;
        goto cleanup;
    }
    data[n] = '\0';
    if (len)
        *len = (size_t)n;
cleanup:
    fclose (f);
    return data;
}

char *
rt_test_source (const char *relpath, size_t *len)
{
    char path[1024];
    char *data;
    snprintf (path, sizeof path, "%s/%s", RT_TEST_SOURCE_DIR, relpath);
    data = rt_test_file_read (path, len);
    if (!data)
        fail_msg ("cannot read %s", path);
    return data;
}

char *
rt_test_fixture (const char *relpath, size_t *len)
{
    char rel[1024];
    snprintf (rel, sizeof rel, "tests/fixtures/%s", relpath);
    return rt_test_source (rel, len);
}

char *
rt_test_log (const char *name)
{
    char path[1024];
    char *text;
    snprintf (path, sizeof path, "%s/%s", rt_test_dir (), name);
    text = rt_test_file_read (path, NULL);
    if (!text)
        text = strdup ("");
    assert_non_null (text);
    return text;
}

/* --- a bus client daemon --- */

void
rt_test_clientd_restart (rt_test_clientd_t *n)
{
    char a_dsn[1100], a_pub[96], a_admin[64], a_member[64], a_clock[1100];
    char *argv[32];
    size_t k = 0;
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", n->dsn);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", n->pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", n->admin_port);
    snprintf (a_member, sizeof a_member, "--member=%s", n->member);
    argv[k++] = n->bin;
    argv[k++] = a_dsn;
    argv[k++] = a_pub;
    argv[k++] = a_admin;
    argv[k++] = a_member;
    if (n->clock[0]) {
        snprintf (a_clock, sizeof a_clock, "--clock-file=%s", n->clock);
        argv[k++] = a_clock;
    }
    for (size_t i = 0; i < n->nextra; i++)
        argv[k++] = n->extra[i];
    argv[k] = NULL;
    n->pid = rt_test_spawn (n->bin, argv, NULL, n->log);
    if (!rt_test_wait_ready (n->admin_port, 60000))
        fail_msg ("%s %s did not become ready; see %s/%s", n->bin, n->member, rt_test_dir (),
                  n->log);
}

void
rt_test_clientd_start (rt_test_clientd_t *n, const char *bin, const char *dsn, const char *pub,
                       const char *clock, const char *member, const char *log,
                       const char *const extra[])
{
    if (!n->admin_port)
        n->admin_port = rt_test_free_port ();
    snprintf (n->bin, sizeof n->bin, "%s", bin);
    snprintf (n->dsn, sizeof n->dsn, "%s", dsn);
    snprintf (n->pub, sizeof n->pub, "%s", pub);
    snprintf (n->clock, sizeof n->clock, "%s", clock ? clock : "");
    snprintf (n->member, sizeof n->member, "%s", member);
    snprintf (n->log, sizeof n->log, "%s", log);
    n->nextra = 0;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (i >= sizeof n->extra / sizeof n->extra[0] || strlen (extra[i]) >= sizeof n->extra[0])
            fail_msg ("rt_test_clientd_start: too many or too long arguments");
        snprintf (n->extra[i], sizeof n->extra[i], "%s", extra[i]);
        n->nextra++;
    }
    rt_test_clientd_restart (n);
}

void
rt_test_clientd_stop (rt_test_clientd_t *n)
{
    char name[64];
    if (n->pid <= 0)
        return;
    snprintf (name, sizeof name, "%s %s", n->bin, n->member);
    rt_test_stop (n->pid, name);
    n->pid = 0;
}
