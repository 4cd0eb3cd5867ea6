/*
 * retention: the hourly deletion of what is older than --keep
 * (retention.h has the rules).
 *
 * Each statement takes at most RETENTION_BATCH rows by the BRIN index on
 * received_at (ingest 005: the column grows with the heap's order, so
 * the index finds the old ranges for almost nothing) and deletes them by
 * ctid: one short transaction per batch. A tick runs at most
 * RETENTION_BATCHES_PER_TICK of them; a table whose batch came back
 * short is done for this run.
 */
#include "retention.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_clock.h"
#include "rt_db.h"
#include "rt_log.h"

#define RETENTION_BATCH            10000
#define RETENTION_BATCHES_PER_TICK 10
#define RETENTION_EVERY_MS         3600000LL

/* The tables, in the order they are pruned. */
static const struct {
    const char *name; /* the metric's label */
    const char *stmt; /* the prepared statement's name */
    const char *sql;  /* $1: the cutoff, unix ms; $2: the batch */
} s_tables[] = {
    {"messages", "ingest_retention_messages",
     "DELETE FROM ingest.messages WHERE ctid = ANY (ARRAY (SELECT ctid FROM ingest.messages"
     " WHERE received_at < to_timestamp($1::float8 / 1000) LIMIT $2::int))"},
    {"raw", "ingest_retention_raw",
     "DELETE FROM ingest.raw WHERE ctid = ANY (ARRAY (SELECT ctid FROM ingest.raw"
     " WHERE received_at < to_timestamp($1::float8 / 1000) LIMIT $2::int))"},
};
#define S_NTABLES (sizeof s_tables / sizeof s_tables[0])

struct retention_t {
    rt_db_t *db;
    int64_t keep_ms;
    int64_t next_run_ms;  /* wall clock: when the next run starts */
    int64_t cutoff_ms;    /* the run under way: rows received before this go */
    bool running;         /* a run is under way */
    bool done[S_NTABLES]; /* tables this run has finished */
    bool prepared;        /* the statements are registered */
    rt_counter_t *deleted[S_NTABLES];
    rt_counter_t *failures;
    /* Mono ms a tick's work with PostgreSQL began, 0 when none: a tick
     * stuck on a silent server holds up ingestd's loop, so readiness
     * reads it (retention_db_ok) from the admin thread. */
    _Atomic int64_t busy_since_ms;
};

retention_t *
retention_new (const char *dsn, int64_t keep_ms, rt_metrics_t *metrics)
{
    retention_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->db = rt_db_new (dsn, "retain-ingestd retention");
    if (!self->db) {
        free (self);
        return NULL;
    }
    self->keep_ms = keep_ms;
    for (size_t i = 0; metrics && i < S_NTABLES; i++) {
        char labels[64];
        snprintf (labels, sizeof labels, "table=\"%s\"", s_tables[i].name);
        self->deleted[i] = rt_metrics_counter (metrics, "retain_ingest_retention_deleted_total",
                                               labels, "rows deleted as older than --keep");
    }
    if (metrics)
        self->failures = rt_metrics_counter (metrics, "retain_ingest_retention_failures_total", "",
                                             "retention batches PostgreSQL failed");
    return self;
}

void
retention_destroy (retention_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_db_destroy (&(*self_p)->db);
    free (*self_p);
    *self_p = NULL;
}

/* Registers the statements once (rt_db prepares them again on every
 * connection, including after a failure to prepare on this one). */
static int
s_prepare (retention_t *self)
{
    int rc = 0;
    if (self->prepared)
        return 0;
    for (size_t i = 0; i < S_NTABLES; i++) {
        if (rt_db_prepare (self->db, s_tables[i].stmt, s_tables[i].sql) != 0)
            rc = -1;
    }
    self->prepared = true;
    return rc;
}

long long
retention_tick (retention_t *self)
{
    int64_t now = rt_clock_now_ms ();
    long long total = 0;
    int batches = 0;
    char cutoff[24], limit[16];
    const char *params[2] = {cutoff, limit};

    if (!self->running) {
        if (now < self->next_run_ms)
            return 0;
        self->running = true;
        self->cutoff_ms = now - self->keep_ms;
        memset (self->done, 0, sizeof self->done);
    }
    atomic_store (&self->busy_since_ms, rt_clock_mono_ms ());
    if (rt_db_ensure_for (self->db, 0) != 0 || s_prepare (self) != 0)
        goto failed;
    snprintf (cutoff, sizeof cutoff, "%lld", (long long)self->cutoff_ms);
    snprintf (limit, sizeof limit, "%d", RETENTION_BATCH);
    for (size_t i = 0; i < S_NTABLES; i++) {
        while (!self->done[i] && batches < RETENTION_BATCHES_PER_TICK) {
            PGresult *res =
                rt_db_exec_prepared (self->db, s_tables[i].stmt, 2, params, NULL, NULL, 0);
            long long n;
            if (!res)
                goto failed;
            n = strtoll (PQcmdTuples (res), NULL, 10);
            PQclear (res);
            batches++;
            total += n;
            if (self->deleted[i])
                rt_counter_add (self->deleted[i], (uint64_t)n);
            if (n < RETENTION_BATCH)
                self->done[i] = true;
        }
    }
    if (batches < RETENTION_BATCHES_PER_TICK) {
        /* Every table came back short: this run is over. */
        self->running = false;
        self->next_run_ms = now + RETENTION_EVERY_MS;
    }
    atomic_store (&self->busy_since_ms, 0);
    if (total > 0)
        rt_log (RT_LOG_INFO, "retention: old rows deleted", rt_log_int ("rows", total),
                rt_log_int ("keep_days", (long long)(self->keep_ms / 86400000)));
    return total;
failed:
    atomic_store (&self->busy_since_ms, 0);
    if (self->failures)
        rt_counter_inc (self->failures);
    rt_log (RT_LOG_WARN, "retention: PostgreSQL failed; trying again at the next tick",
            rt_log_str ("error", rt_db_error (self->db)));
    return -1;
}

bool
retention_db_ok (retention_t *self, int64_t stall_ms, char *why, size_t whylen)
{
    int64_t since = atomic_load (&self->busy_since_ms);
    int64_t waited = since ? rt_clock_mono_ms () - since : 0;
    if (waited <= stall_ms)
        return true;
    snprintf (why, whylen, "PostgreSQL unreachable: no answer for %llds (retention)",
              (long long)(waited / 1000));
    return false;
}
