/*
 * rt_db: one PostgreSQL connection that survives the server going away.
 *
 * The connection is either up (ok) or down. Any call that finds the
 * connection broken (PQstatus CONNECTION_BAD after a failure) marks it down;
 * nothing reconnects behind the caller's back, because a caller holding
 * session state (advisory locks, LISTEN, an open transaction) must learn
 * that the session changed. rt_db_ensure reconnects, prepares every
 * registered statement again, runs the on-connect hook, and bumps the
 * generation.
 */
#include "rt_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_log.h"
#include "rt_signal.h"

typedef struct s_stmt_t {
    char *name;            /* prepared statement name */
    char *sql;             /* its text */
    struct s_stmt_t *next; /* registration order */
} s_stmt_t;

struct rt_db_t {
    char *dsn;                      /* libpq connection string or URI */
    char *app_name;                 /* application_name for pg_stat_activity */
    PGconn *conn;                   /* live connection or NULL */
    bool ok;                        /* connection believed healthy */
    uint64_t generation;            /* successful connections so far */
    s_stmt_t *stmts;                /* statements to prepare on each connection */
    s_stmt_t *stmts_tail;           /* for appending in order */
    rt_db_on_connect_fn on_connect; /* hook after each connection */
    void *on_connect_arg;           /* its argument */
    char error[512];                /* last error message */
    char sqlstate[6];               /* SQLSTATE of the last failure */
};

static void
s_set_error (rt_db_t *self, const char *msg, const char *sqlstate)
{
    size_t n;
    snprintf (self->error, sizeof self->error, "%s", msg ? msg : "");
    /* libpq messages end with a newline; a log line should not. */
    n = strlen (self->error);
    while (n > 0 && (self->error[n - 1] == '\n' || self->error[n - 1] == ' '))
        self->error[--n] = '\0';
    snprintf (self->sqlstate, sizeof self->sqlstate, "%s", sqlstate ? sqlstate : "");
}

static void
s_check_conn (rt_db_t *self)
{
    if (!self->conn || PQstatus (self->conn) == CONNECTION_BAD)
        self->ok = false;
}

static void
s_notice (void *arg, const char *message)
{
    (void)arg;
    (void)message;
    /* NOTICEs (CREATE ... IF NOT EXISTS skipping) are noise in our logs. */
}

rt_db_t *
rt_db_new (const char *dsn, const char *application_name)
{
    rt_db_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup (dsn ? dsn : "");
    self->app_name = strdup (application_name ? application_name : "retain");
    if (!self->dsn || !self->app_name) {
        rt_db_destroy (&self);
        return NULL;
    }
    return self;
}

void
rt_db_destroy (rt_db_t **self_p)
{
    rt_db_t *self;
    s_stmt_t *stmt;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    if (self->conn)
        PQfinish (self->conn);
    stmt = self->stmts;
    while (stmt) {
        s_stmt_t *next = stmt->next;
        free (stmt->name);
        free (stmt->sql);
        free (stmt);
        stmt = next;
    }
    free (self->dsn);
    free (self->app_name);
    free (self);
    *self_p = NULL;
}

void
rt_db_set_on_connect (rt_db_t *self, rt_db_on_connect_fn fn, void *arg)
{
    self->on_connect = fn;
    self->on_connect_arg = arg;
}

static int
s_prepare_one (rt_db_t *self, const s_stmt_t *stmt)
{
    PGresult *res = PQprepare (self->conn, stmt->name, stmt->sql, 0, NULL);
    int rc = 0;
    if (PQresultStatus (res) != PGRES_COMMAND_OK) {
        s_set_error (self, PQresultErrorMessage (res), PQresultErrorField (res, PG_DIAG_SQLSTATE));
        rt_log (RT_LOG_ERROR, "prepare failed", rt_log_str ("statement", stmt->name),
                rt_log_str ("error", self->error));
        s_check_conn (self);
        rc = -1;
    }
    PQclear (res);
    return rc;
}

int
rt_db_prepare (rt_db_t *self, const char *name, const char *sql)
{
    s_stmt_t *stmt = calloc (1, sizeof *stmt);
    if (!stmt)
        return -1;
    stmt->name = strdup (name);
    stmt->sql = strdup (sql);
    if (!stmt->name || !stmt->sql) {
        free (stmt->name);
        free (stmt->sql);
        free (stmt);
        return -1;
    }
    if (self->stmts_tail)
        self->stmts_tail->next = stmt;
    else
        self->stmts = stmt;
    self->stmts_tail = stmt;
    if (self->ok)
        return s_prepare_one (self, stmt);
    return 0;
}

int
rt_db_connect (rt_db_t *self)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *values[] = {self->dsn, self->app_name, "5", NULL};
    s_stmt_t *stmt;

    if (self->conn) {
        PQfinish (self->conn);
        self->conn = NULL;
    }
    self->ok = false;
    /* expand_dbname lets dsn be a full connection string or URI while
     * application_name still applies. */
    self->conn = PQconnectdbParams (keys, values, 1);
    if (!self->conn || PQstatus (self->conn) != CONNECTION_OK) {
        s_set_error (self, self->conn ? PQerrorMessage (self->conn) : "out of memory", NULL);
        if (self->conn) {
            PQfinish (self->conn);
            self->conn = NULL;
        }
        return -1;
    }
    PQsetNoticeProcessor (self->conn, s_notice, NULL);
    self->ok = true;
    for (stmt = self->stmts; stmt; stmt = stmt->next) {
        if (s_prepare_one (self, stmt) != 0)
            goto fail;
    }
    self->generation++;
    if (self->on_connect && self->on_connect (self, self->on_connect_arg) != 0) {
        if (!self->error[0])
            s_set_error (self, "on-connect hook failed", NULL);
        goto fail;
    }
    return 0;
fail:
    PQfinish (self->conn);
    self->conn = NULL;
    self->ok = false;
    return -1;
}

int
rt_db_ensure_for (rt_db_t *self, int timeout_ms)
{
    int delay = 100;
    int waited = 0;
    int attempt = 0;
    if (self->ok && self->conn && PQstatus (self->conn) == CONNECTION_OK)
        return 0;
    for (;;) {
        if (rt_signal_stopping ())
            return -1;
        if (rt_db_connect (self) == 0) {
            if (attempt > 0)
                rt_log (RT_LOG_INFO, "database reconnected", rt_log_int ("attempts", attempt + 1));
            return 0;
        }
        attempt++;
        rt_log (RT_LOG_WARN, "database unavailable", rt_log_str ("error", self->error),
                rt_log_int ("retry_ms", delay));
        if (timeout_ms >= 0 && waited >= timeout_ms)
            return -1;
        if (rt_signal_sleep_ms (delay))
            return -1;
        waited += delay;
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
}

int
rt_db_ensure (rt_db_t *self)
{
    return rt_db_ensure_for (self, -1);
}

bool
rt_db_is_ok (const rt_db_t *self)
{
    return self->ok;
}

uint64_t
rt_db_generation (const rt_db_t *self)
{
    return self->generation;
}

PGconn *
rt_db_conn (rt_db_t *self)
{
    return self->ok ? self->conn : NULL;
}

const char *
rt_db_error (const rt_db_t *self)
{
    return self->error;
}

const char *
rt_db_sqlstate (const rt_db_t *self)
{
    return self->sqlstate;
}

void
rt_db_invalidate (rt_db_t *self)
{
    self->ok = false;
}

static PGresult *
s_checked (rt_db_t *self, PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus (res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        self->error[0] = '\0';
        self->sqlstate[0] = '\0';
        return res;
    }
    if (res)
        s_set_error (self, PQresultErrorMessage (res), PQresultErrorField (res, PG_DIAG_SQLSTATE));
    else
        s_set_error (self, self->conn ? PQerrorMessage (self->conn) : "not connected", NULL);
    PQclear (res);
    s_check_conn (self);
    return NULL;
}

PGresult *
rt_db_exec_prepared (rt_db_t *self, const char *name, int nparams, const char *const *values,
                     const int *lengths, const int *formats, int result_format)
{
    if (!self->ok) {
        s_set_error (self, "not connected", NULL);
        return NULL;
    }
    return s_checked (
        self, PQexecPrepared (self->conn, name, nparams, values, lengths, formats, result_format));
}

PGresult *
rt_db_exec_params (rt_db_t *self, const char *sql, int nparams, const char *const *values)
{
    if (!self->ok) {
        s_set_error (self, "not connected", NULL);
        return NULL;
    }
    return s_checked (self, PQexecParams (self->conn, sql, nparams, NULL, values, NULL, NULL, 0));
}

PGresult *
rt_db_exec_paramsv (rt_db_t *self, const char *sql, int nparams, const char *const *values,
                    const int *lengths, const int *formats, int result_format)
{
    if (!self->ok) {
        s_set_error (self, "not connected", NULL);
        return NULL;
    }
    return s_checked (self, PQexecParams (self->conn, sql, nparams, NULL, values, lengths, formats,
                                          result_format));
}

int
rt_db_exec (rt_db_t *self, const char *sql)
{
    PGresult *res;
    if (!self->ok) {
        s_set_error (self, "not connected", NULL);
        return -1;
    }
    res = s_checked (self, PQexec (self->conn, sql));
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}

int
rt_db_begin (rt_db_t *self)
{
    return rt_db_exec (self, "BEGIN");
}

int
rt_db_commit (rt_db_t *self)
{
    return rt_db_exec (self, "COMMIT");
}

void
rt_db_rollback (rt_db_t *self)
{
    PGresult *res;
    if (!self->ok || !self->conn)
        return;
    if (PQtransactionStatus (self->conn) == PQTRANS_IDLE)
        return;
    res = PQexec (self->conn, "ROLLBACK");
    PQclear (res);
    s_check_conn (self);
}

int
rt_db_copy_in (rt_db_t *self, const char *copy_sql, const char *data, size_t len)
{
    PGresult *res;
    size_t off = 0;
    if (!self->ok) {
        s_set_error (self, "not connected", NULL);
        return -1;
    }
    res = PQexec (self->conn, copy_sql);
    if (PQresultStatus (res) != PGRES_COPY_IN) {
        s_checked (self, res);
        return -1;
    }
    PQclear (res);
    while (off < len) {
        /* PQputCopyData takes an int length. */
        size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
        if (PQputCopyData (self->conn, data + off, (int)chunk) != 1) {
            s_set_error (self, PQerrorMessage (self->conn), NULL);
            s_check_conn (self);
            return -1;
        }
        off += chunk;
    }
    if (PQputCopyEnd (self->conn, NULL) != 1) {
        s_set_error (self, PQerrorMessage (self->conn), NULL);
        s_check_conn (self);
        return -1;
    }
    res = s_checked (self, PQgetResult (self->conn));
    /* Drain: after COPY the connection hands back one more NULL result. */
    for (;;) {
        PGresult *extra = PQgetResult (self->conn);
        if (!extra)
            break;
        PQclear (extra);
    }
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}
