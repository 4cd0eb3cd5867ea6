/*
 * rt_db: one PostgreSQL connection that survives the server going away.
 *
 * Wraps a libpq connection with: connection with backoff (100 ms doubling
 * to 5 s, interrupted by a stop signal), a registry of named statements that
 * are prepared on every (re)connection, a hook run after each connection
 * (LISTEN, advisory locks, session settings), and transaction helpers.
 * A caller notices a lost connection by a failed call and rt_db_is_ok()
 * turning false; it then calls rt_db_ensure() to reconnect. The generation
 * number tells callers that hold session state (advisory locks, LISTEN)
 * that the session is new.
 *
 * Not thread-safe: one rt_db_t per thread.
 */
#ifndef RT_DB_H
#define RT_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct rt_db_t rt_db_t;

/* Runs after each successful connection, after the statements are prepared;
 * returning -1 makes the connection count as failed (it is closed and tried
 * again). */
typedef int (*rt_db_on_connect_fn) (rt_db_t *db, void *arg);

/* A new, unconnected handle. `dsn` is a libpq connection string or URI,
 * `application_name` shows in pg_stat_activity. Both copied. */
rt_db_t *rt_db_new (const char *dsn, const char *application_name);
void rt_db_destroy (rt_db_t **self_p);

void rt_db_set_on_connect (rt_db_t *self, rt_db_on_connect_fn fn, void *arg);

/* Registers a statement prepared as `name` on this and every later
 * connection. Returns -1 when preparing on the live connection fails (the
 * statement stays registered). */
int rt_db_prepare (rt_db_t *self, const char *name, const char *sql);

/* One connection attempt. 0 on success, -1 (reason in rt_db_error). */
int rt_db_connect (rt_db_t *self);

/* Makes sure the connection is up: returns 0 at once when it is, otherwise
 * reconnects with backoff until it succeeds (0) or a stop is requested (-1).
 * Logs each failure once per attempt with the reason. */
int rt_db_ensure (rt_db_t *self);

/* Like rt_db_ensure but gives up after `timeout_ms` (-1). */
int rt_db_ensure_for (rt_db_t *self, int timeout_ms);

/* True while the connection is believed healthy. */
bool rt_db_is_ok (const rt_db_t *self);

/* Increments at every successful connection (first is 1). */
uint64_t rt_db_generation (const rt_db_t *self);

/* The live libpq connection (lent; may be NULL when disconnected). */
PGconn *rt_db_conn (rt_db_t *self);

/* The last error message (lent; "" when none). */
const char *rt_db_error (const rt_db_t *self);
/* SQLSTATE of the last failed statement ("" when none or not a server error). */
const char *rt_db_sqlstate (const rt_db_t *self);

/* Runs a prepared statement. Text parameters unless `formats` says
 * otherwise; `lengths`/`formats` may be NULL for all-text. Returns an owned
 * PGresult (PQclear) whose status is COMMAND_OK or TUPLES_OK, else NULL with
 * the error recorded (and the connection marked bad when it is gone). */
PGresult *rt_db_exec_prepared (rt_db_t *self, const char *name, int nparams,
                               const char *const *values, const int *lengths, const int *formats,
                               int result_format);

/* Runs SQL text with optional parameters (not prepared). Same result rules. */
PGresult *rt_db_exec_params (rt_db_t *self, const char *sql, int nparams,
                             const char *const *values);

/* Same with lengths/formats for binary parameters and a result format. */
PGresult *rt_db_exec_paramsv (rt_db_t *self, const char *sql, int nparams,
                              const char *const *values, const int *lengths, const int *formats,
                              int result_format);

/* Runs SQL text (may hold several statements) and discards the result.
 * 0 or -1. */
int rt_db_exec (rt_db_t *self, const char *sql);

int rt_db_begin (rt_db_t *self);
int rt_db_commit (rt_db_t *self);
/* Rolls back; harmless when no transaction is open or the connection is gone. */
void rt_db_rollback (rt_db_t *self);

/* COPY FROM STDIN of a ready buffer (binary or text, as `copy_sql` says).
 * 0 or -1. */
int rt_db_copy_in (rt_db_t *self, const char *copy_sql, const char *data, size_t len);

/* Marks the connection bad so the next rt_db_ensure reconnects (used when a
 * caller detects its session state is no longer trustworthy). */
void rt_db_invalidate (rt_db_t *self);

#endif
