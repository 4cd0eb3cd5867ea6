/*
 * timer: routing's clock work and the conversation gauges, on a thread and
 * a connection of their own.
 *
 * Every tick, one transaction runs routing_tick at rt_clock's time (so a
 * test that sets the clock moves presence timeouts, rebalancing, snoozes
 * and auto-resolve with it). Every few seconds the gauges are read from
 * the conversations (routing_counts per team, and the totals, which also
 * count conversations no team routes), so that /metrics serves numbers
 * already in hand and a scraper cannot load PostgreSQL. Several replicas
 * ticking at once is harmless: routing's tick takes its rows FOR UPDATE
 * SKIP LOCKED.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "routerd.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"

#define S_TEAMS_MAX 256 /* teams given gauges of their own */
#define S_NAP_MS    200 /* how soon the thread notices a stop */

/* The totals, over every conversation that is not resolved. */
static const char *s_sql_totals = "SELECT count(*), COALESCE(sum(unanswered), 0),"
                                  " count(*) FILTER (WHERE assignee IS NULL AND status = 'open')"
                                  " FROM routing.conversations WHERE status <> 'resolved'";
static const char *s_sql_teams = "SELECT id FROM routing.teams ORDER BY id LIMIT 256";

struct routerd_timer_t {
    routerd_timer_config_t config; /* dsn copied into dsn */
    char *dsn;                     /* owned copy of config.dsn */
    rt_db_t *db;                   /* the timer's own connection */
    pthread_t thread;              /* runs s_main */
    bool started;                  /* thread was created */
    atomic_bool stop;              /* routerd_timer_stop asks the thread to end */
    rt_gauge_t *open;              /* conversations not resolved */
    rt_gauge_t *messages;          /* unanswered messages in them */
    rt_gauge_t *queued;            /* open with nobody assigned */
    rt_counter_t *ticks_failed;    /* ticks rolled back */
    rt_counter_t *sla_warned;      /* SLA clocks marked past their warning */
    rt_counter_t *sla_breached;    /* SLA clocks breached: SlaBreached emitted */
};

static void
s_tick (routerd_timer_t *self)
{
    char err[256];
    routing_tick_result_t out;
    routing_status_t st;
    if (rt_db_begin (self->db) != 0)
        return;
    st = routing_tick (self->db, &self->config.cfg, rt_clock_now_ms (), &out, err, sizeof err);
    if (st != ROUTING_OK || rt_db_commit (self->db) != 0) {
        if (st == ROUTING_OK)
            rt_errf (err, sizeof err, "%s", rt_db_error (self->db));
        rt_db_rollback (self->db);
        rt_counter_inc (self->ticks_failed);
        rt_log (RT_LOG_WARN, "tick failed", rt_log_str ("error", err));
        return;
    }
    /* Counted only once committed: a rolled-back tick warned nobody. */
    rt_counter_add (self->sla_warned, out.sla_warned);
    rt_counter_add (self->sla_breached, out.sla_breached);
    if (out.assigned + out.rebalanced + out.timed_out + out.woken + out.resolved + out.sla_warned +
            out.sla_breached >
        0)
        rt_log (RT_LOG_INFO, "tick", rt_log_uint ("assigned", out.assigned),
                rt_log_uint ("rebalanced", out.rebalanced),
                rt_log_uint ("timed_out", out.timed_out), rt_log_uint ("woken", out.woken),
                rt_log_uint ("resolved", out.resolved), rt_log_uint ("sla_warned", out.sla_warned),
                rt_log_uint ("sla_breached", out.sla_breached));
}

static void
s_team_gauge (routerd_timer_t *self, const char *name, const char *team, const char *help,
              double value)
{
    char labels[ROUTING_OP_MAX * 2 + 16];
    size_t n;
    /* A team id is an operator's text: quotes and backslashes escaped. */
    n = (size_t)snprintf (labels, sizeof labels, "team=\"");
    for (const char *p = team; *p && n + 4 < sizeof labels; p++) {
        if (*p == '"' || *p == '\\')
            labels[n++] = '\\';
        if (*p == '\n')
            continue;
        labels[n++] = *p;
    }
    labels[n++] = '"';
    labels[n] = '\0';
    rt_gauge_set (rt_metrics_gauge (self->config.metrics, name, labels, help), value);
}

static void
s_gauges (routerd_timer_t *self)
{
    char err[256];
    PGresult *res = rt_db_exec_params (self->db, s_sql_totals, 0, NULL);
    if (!res) {
        rt_log (RT_LOG_WARN, "gauges", rt_log_str ("error", rt_db_error (self->db)));
        return;
    }
    rt_gauge_set (self->open, atof (PQgetvalue (res, 0, 0)));
    rt_gauge_set (self->messages, atof (PQgetvalue (res, 0, 1)));
    rt_gauge_set (self->queued, atof (PQgetvalue (res, 0, 2)));
    PQclear (res);
    res = rt_db_exec_params (self->db, s_sql_teams, 0, NULL);
    if (!res)
        return;
    for (int i = 0; i < PQntuples (res) && i < S_TEAMS_MAX; i++) {
        const char *team = PQgetvalue (res, i, 0);
        routing_counts_t c;
        if (routing_counts (self->db, NULL, team, &c, err, sizeof err) != ROUTING_OK) {
            rt_log (RT_LOG_WARN, "gauges", rt_log_str ("team", team), rt_log_str ("error", err));
            break;
        }
        s_team_gauge (self, "retain_router_team_open", team,
                      "conversations of the team that are not resolved", (double)c.open);
        s_team_gauge (self, "retain_router_team_unanswered", team,
                      "conversations of the team waiting for a reply", (double)c.unanswered);
        s_team_gauge (self, "retain_router_team_unanswered_messages", team,
                      "unanswered messages in the team's conversations", (double)c.messages);
        s_team_gauge (self, "retain_router_team_queued", team,
                      "open conversations of the team with nobody assigned", (double)c.queued);
    }
    PQclear (res);
}

static void *
s_main (void *arg)
{
    routerd_timer_t *self = arg;
    int64_t next_tick = 0, next_gauges = 0;
    while (!atomic_load (&self->stop)) {
        int64_t now = rt_clock_mono_ms ();
        if (now >= next_tick || now >= next_gauges) {
            /* A lost connection is waited out a nap at a time, so a stop
             * is still noticed. */
            if (rt_db_ensure_for (self->db, S_NAP_MS) != 0) {
                rt_signal_sleep_ms (S_NAP_MS);
                continue;
            }
            if (now >= next_tick) {
                s_tick (self);
                next_tick = now + self->config.tick_ms;
            }
            if (now >= next_gauges) {
                s_gauges (self);
                next_gauges = now + self->config.gauges_ms;
            }
        }
        rt_signal_sleep_ms (S_NAP_MS);
    }
    return NULL;
}

routerd_timer_t *
routerd_timer_start (const routerd_timer_config_t *config, char *err, size_t errlen)
{
    routerd_timer_t *self = calloc (1, sizeof *self);
    rt_metrics_t *m = config->metrics;
    if (errlen > 0)
        err[0] = '\0';
    if (!self)
        goto oom;
    self->config = *config;
    self->dsn = strdup (config->dsn);
    if (!self->dsn)
        goto oom;
    self->config.dsn = self->dsn;
    atomic_init (&self->stop, false);
    self->db = rt_db_new (self->dsn, "retain-routerd-timer");
    if (!self->db)
        goto oom;
    /* Registered on an unconnected handle: the first rt_db_ensure
     * connects and prepares them all, and so does every reconnection. */
    if (rt_outbox_prepare (self->db) != 0 || identity_prepare (self->db, err, errlen) != 0 ||
        routing_prepare (self->db, err, errlen) != 0) {
        if (!err[0])
            rt_errf (err, errlen, "the timer's statements: %s", rt_db_error (self->db));
        goto fail;
    }
    self->open = rt_metrics_gauge (m, "retain_router_conversations_open", NULL,
                                   "conversations that are not resolved");
    self->messages = rt_metrics_gauge (m, "retain_router_unanswered_messages", NULL,
                                       "unanswered messages in conversations not resolved");
    self->queued = rt_metrics_gauge (m, "retain_router_conversations_queued", NULL,
                                     "open conversations with nobody assigned");
    self->ticks_failed = rt_metrics_counter (m, "retain_router_ticks_failed_total", NULL,
                                             "routing ticks rolled back");
    self->sla_warned = rt_metrics_counter (m, "retain_router_sla_warnings_total", NULL,
                                           "SLA clocks past their warning time");
    self->sla_breached = rt_metrics_counter (m, "retain_router_sla_breaches_total", NULL,
                                             "SLA clocks past their due time (SlaBreached sent)");
    if (!self->open || !self->messages || !self->queued || !self->ticks_failed ||
        !self->sla_warned || !self->sla_breached)
        goto oom;
    if (pthread_create (&self->thread, NULL, s_main, self) != 0) {
        rt_errf (err, errlen, "the timer's thread could not start");
        goto fail;
    }
    self->started = true;
    return self;
oom:
    rt_errf (err, errlen, "out of memory");
fail:
    routerd_timer_stop (&self);
    return NULL;
}

void
routerd_timer_stop (routerd_timer_t **self_p)
{
    routerd_timer_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    if (self->started)
        pthread_join (self->thread, NULL);
    rt_db_destroy (&self->db);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}
