/*
 * rt_db_local: one PostgreSQL connection per thread, made at the thread's
 * first request for it, for code that many threads call at once (an HTTP
 * server's workers) and that must never wait for a database that is down.
 *
 * Each thread that calls rt_db_local_get gets an rt_db_t of its own,
 * created then with the owner's setup run on it (statement registrations,
 * an on-connect hook) before its first connect, so rt_db prepares them on
 * that and every later connection. A connection found down is tried once,
 * at once; after a failed attempt that thread makes none for reconnect_ms
 * and is answered NULL meanwhile, without a wait. The backoff reads one
 * clock, and a clock moved back by more than reconnect_ms does not hold
 * the next attempt off for longer. A warning is logged when the first
 * thread fails after all were well, one line when all are well again.
 *
 * Health (for /readyz and metrics) is as of each thread's last call: a
 * thread whose last attempt failed counts as down until a later call of
 * its own connects it. It moves only when threads call: a readiness fed by
 * it alone does not turn true by itself after the traffic that would try
 * again has been taken away.
 *
 * Threads: rt_db_local_get from any number of threads at once, each using
 * only the connection it got; healthy and stats from any thread; new and
 * destroy from the owner's thread, destroy once no thread uses it any
 * more (an HTTP server's workers stopped). Connections live until destroy:
 * a thread that ends leaves its connection to it.
 */
#ifndef RT_DB_LOCAL_H
#define RT_DB_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_db.h"

typedef struct rt_db_local_t rt_db_local_t;

/* Runs on each new, never connected rt_db_t, on the thread that will use
 * it: registers its statements (rt_db_prepare), sets its on-connect hook.
 * 0, or -1 (the handle is dropped and the next call makes a new one). */
typedef int (*rt_db_local_setup_fn) (rt_db_t *db, void *arg);

/* A new set of per-thread connections to `dsn` (copied), shown as
 * `application_name` (copied) in pg_stat_activity and in its log lines;
 * setup (may be NULL) with arg for every connection; reconnect_ms between
 * one thread's attempts (> 0). Nothing connects yet. NULL with err filled
 * (out of memory, a bad argument). */
rt_db_local_t *rt_db_local_new (const char *dsn, const char *application_name,
                                rt_db_local_setup_fn setup, void *arg, int reconnect_ms, char *err,
                                size_t errlen);

/* Closes every thread's connection and frees the set. No thread may use it
 * or a connection it gave any more. Safe on NULL; sets *self_p NULL. */
void rt_db_local_destroy (rt_db_local_t **self_p);

/* This thread's connection, up (lent: only this thread uses it, until
 * destroy), or NULL when it cannot be had now: the attempt just failed,
 * an attempt failed within reconnect_ms, setup failed or memory ran out
 * (rt_db_local_error says which). A caller that finds the connection lost
 * in a statement may call again at once for one reconnect. `user`, when
 * not NULL, gets this connection's own int64_t (NULL with no connection),
 * 0 at first, for the caller to keep what it likes in (when it last did a
 * periodic chore on it). The backoff reads rt_clock_mono_ms. */
rt_db_t *rt_db_local_get (rt_db_local_t *self, int64_t **user);

/* The same with the caller's reading of time, for code whose times all
 * come from its caller (rt_http_idem's now_ms): one set reads one clock,
 * so use either this one always or rt_db_local_get always. */
rt_db_t *rt_db_local_get_at (rt_db_local_t *self, int64_t now_ms, int64_t **user);

/* False while some thread's last attempt failed; true otherwise, also
 * before any thread called. */
bool rt_db_local_healthy (const rt_db_local_t *self);

/* Threads whose last call had their connection up, and whose last attempt
 * failed (either may be NULL). */
void rt_db_local_stats (const rt_db_local_t *self, int *up, int *down);

/* Why this thread's last rt_db_local_get answered NULL: its connection's
 * last error (lent, until this thread's next call), or a fixed text when
 * the connection could not be made at all. */
const char *rt_db_local_error (rt_db_local_t *self);

#endif
