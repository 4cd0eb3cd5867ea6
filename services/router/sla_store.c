/*
 * sla_store: SLA policies, teams' business hours and conversations' clocks
 * in schema routing, run by the conversation's life and by the tick
 * (routing.h has the rules, sla.h the arithmetic).
 *
 * A clock is a row of routing.sla_timers holding sla_timer_t's fields; sla.c
 * computes, this file stores. Starting, stopping and pausing are single
 * statements on the conversation's rows; starting and resuming need the
 * policy (its clock, its calendar) and so read the policies, which are few
 * and parsed per call: a policy changed by one replica is the policy every
 * replica uses at its next message, with no cache to tell. Only the first
 * message of a wait starts a clock, so the parse is once per wait, not per
 * message.
 *
 * The tick's breach is once per clock: the scan locks the clock's row and
 * its conversation (SKIP LOCKED: a conversation another transaction holds
 * waits for the next tick, never for this one), and `breached_at IS NULL`
 * in the marking statement is what a replayed or concurrent tick meets.
 * SlaBreached, the flag and the escalation's transfer commit with the
 * mark or not at all. The conversation is locked with the clock, before
 * any operator, in the order assign.c keeps everywhere.
 *
 * A policy that cannot count (a business policy whose team has no hours,
 * a calendar with no opening ahead) starts no clock and is logged: the
 * message it came with is taken all the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "retain/v1/conversation.pb-c.h"
#include "routing.h"
#include "routing_int.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "sla.h"
#include "sla_store.h"

#define S_POL_SET   "routing_sla_policy_set"
#define S_POL_DEL   "routing_sla_policy_delete"
#define S_POL_STOP  "routing_sla_policy_stop"
#define S_POL_ALL   "routing_sla_policy_all"
#define S_HOURS_SET "routing_sla_hours_set"
#define S_HOURS_GET "routing_sla_hours_get"
#define S_CONV      "routing_sla_conv"
#define S_START     "routing_sla_start"
#define S_STOP_RESP "routing_sla_stop_responses"
#define S_STOP_ALL  "routing_sla_stop_all"
#define S_PAUSE     "routing_sla_pause"
#define S_PAUSED    "routing_sla_paused"
#define S_RESUME    "routing_sla_resume"
#define S_PAUSED_OF "routing_sla_paused_of"
#define S_WARN      "routing_sla_warn"
#define S_DUE       "routing_sla_due"
#define S_BREACH    "routing_sla_breach"
#define S_FLAG      "routing_sla_flag"
#define S_WARNINGS  "routing_sla_warnings"

/* The flag a breach puts on its conversation for a supervisor. */
#define S_FLAG_NAME "supervisor"

/* The instant a clock stands at: now, or its pause's start, or its stop. */
#define S_AT(n) "LEAST(" ROUTING_TS (n) ", t.paused_at, t.stopped_at)"

static const routing_stmt_t s_stmts[] = {
    /* A replacement keeps created_at: its place among equals. */
    {S_POL_SET, "INSERT INTO routing.sla_policies (name, policy, created_at, updated_at)"
                " VALUES ($1, $2, " ROUTING_TS (3) ", " ROUTING_TS (
                    3) ") ON CONFLICT (name) DO UPDATE"
                       " SET policy = EXCLUDED.policy, updated_at = EXCLUDED.updated_at"},
    {S_POL_DEL, "DELETE FROM routing.sla_policies WHERE name = $1 RETURNING name"},
    {S_POL_STOP, "UPDATE routing.sla_timers SET stopped_at = " ROUTING_TS (
                     2) " WHERE policy = $1 AND stopped_at IS NULL"},
    {S_POL_ALL, "SELECT name, policy FROM routing.sla_policies ORDER BY created_at, name"},
    {S_HOURS_SET, "UPDATE routing.teams SET business_hours = $2,"
                  " time_zone = COALESCE($3, time_zone) WHERE id = $1 RETURNING id"},
    {S_HOURS_GET, "SELECT business_hours FROM routing.teams WHERE id = $1"
                  " AND business_hours IS NOT NULL"},
    {S_CONV, "SELECT COALESCE(team_id, ''), inbox, channel, last_outbound_at IS NOT NULL"
             " FROM routing.conversations WHERE id = $1::uuid"},
    /* A clock runs until it stops: only a stopped one starts again. */
    {S_START,
     "INSERT INTO routing.sla_timers (conversation_id, kind, policy, team_id, start_at, due_at,"
     " warn_at) VALUES ($1::uuid, $2, $3, $4, " ROUTING_TS (5) ", " ROUTING_TS (6) ", " ROUTING_TS (
         7) ")"
            " ON CONFLICT (conversation_id, kind) DO UPDATE SET policy = "
            "EXCLUDED.policy,"
            " team_id = EXCLUDED.team_id, start_at = EXCLUDED.start_at,"
            " due_at = EXCLUDED.due_at, warn_at = EXCLUDED.warn_at, paused_at "
            "= NULL,"
            " warned_at = NULL, breached_at = NULL, stopped_at = NULL"
            " WHERE routing.sla_timers.stopped_at IS NOT NULL"},
    {S_STOP_RESP, "UPDATE routing.sla_timers SET stopped_at = " ROUTING_TS (
                      2) " WHERE conversation_id = $1::uuid AND kind <> 'resolution'"
                         " AND stopped_at IS NULL"},
    {S_STOP_ALL, "UPDATE routing.sla_timers SET stopped_at = " ROUTING_TS (
                     2) " WHERE conversation_id = $1::uuid AND stopped_at IS NULL"},
    {S_PAUSE, "UPDATE routing.sla_timers SET paused_at = " ROUTING_TS (
                  2) " WHERE conversation_id = $1::uuid AND stopped_at IS NULL"
                     " AND paused_at IS NULL"},
    {S_PAUSED,
     "SELECT kind, policy, COALESCE(team_id, ''), " ROUTING_MS ("start_at") ", " ROUTING_MS (
         "due_at") ", " ROUTING_MS ("warn_at") ", " ROUTING_MS ("paused_at") " FROM "
                                                                             "routing.sla_timers "
                                                                             "WHERE "
                                                                             "conversation_id = "
                                                                             "$1::uuid"
                                                                             " AND paused_at IS "
                                                                             "NOT NULL AND "
                                                                             "stopped_at IS NULL"},
    /* Of many conversations, those with a clock paused. */
    {S_PAUSED_OF, "SELECT DISTINCT conversation_id::text FROM routing.sla_timers"
                  " WHERE conversation_id = ANY ($1::uuid[]) AND paused_at IS NOT NULL"
                  " AND stopped_at IS NULL"},
    {S_RESUME, "UPDATE routing.sla_timers SET due_at = " ROUTING_TS (3) ", warn_at = " ROUTING_TS (
                   4) ", paused_at = NULL WHERE conversation_id = $1::uuid AND kind = $2"},
    /* Past the warning and not yet due (a tick that finds both marks only
     * the breach). */
    {S_WARN, "UPDATE routing.sla_timers u SET warned_at = " ROUTING_TS (
                 1) " FROM (SELECT t.conversation_id, t.kind FROM routing.sla_timers t"
                    " WHERE t.warned_at IS NULL AND t.breached_at IS NULL AND t.stopped_at IS NULL"
                    " AND t.warn_at < t.due_at AND t.warn_at <= " S_AT (1) " AND t.due_at > " S_AT (
                        1) " ORDER BY t.warn_at LIMIT $2 FOR UPDATE SKIP LOCKED) d"
                           " WHERE u.conversation_id = d.conversation_id AND u.kind = d.kind"
                           " RETURNING u.conversation_id"},
    /* Due at the instant the clock stands at; the predicate is the
     * index's (sla_timers_to_breach). */
    {S_DUE, "SELECT t.conversation_id, t.kind, t.policy, " ROUTING_MS (
                "t.due_at") ", t.stopped_at IS NULL,"
                            " c.customer_id, COALESCE(c.assignee, ''), COALESCE(c.team_id, ''), "
                            "c.status, c.version"
                            " FROM routing.sla_timers t JOIN routing.conversations c ON c.id = "
                            "t.conversation_id"
                            " WHERE t.breached_at IS NULL AND (t.stopped_at IS NULL OR "
                            "t.stopped_at >= t.due_at)"
                            " AND t.due_at <= " S_AT (
                                1) " ORDER BY t.due_at LIMIT $2 FOR UPDATE OF t, c SKIP LOCKED"},
    {S_BREACH, "UPDATE routing.sla_timers SET breached_at = " ROUTING_TS (
                   3) " WHERE conversation_id = $1::uuid AND kind = $2 AND breached_at IS NULL"
                      " RETURNING kind"},
    {S_FLAG, "UPDATE routing.conversations SET flags = array_append(flags, '" S_FLAG_NAME "')"
             " WHERE id = $1::uuid AND NOT ('" S_FLAG_NAME "' = ANY (flags))"},
    {S_WARNINGS,
     "SELECT t.conversation_id, t.kind, t.policy, COALESCE(c.assignee, ''),"
     " COALESCE(c.team_id, ''), " ROUTING_MS ("t.due_at") ", " ROUTING_MS (
         "t.warned_at") " FROM routing.sla_timers t JOIN routing.conversations c"
                        " ON c.id = t.conversation_id WHERE t.warned_at >= " ROUTING_TS (
                            3) " AND t.breached_at IS NULL AND t.stopped_at IS NULL"
                               " AND ($1::text IS NULL OR c.assignee = $1)"
                               " AND ($2::text IS NULL OR c.team_id = $2)"
                               " ORDER BY t.warned_at, t.conversation_id, t.kind LIMIT $4"},
};
#define S_NSTMTS (sizeof s_stmts / sizeof s_stmts[0])

/* The stored policies, parsed, in their order. */
typedef struct {
    sla_policy_t **p; /* owned, n of them */
    size_t n;         /* how many parsed */
} s_set_t;

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

static void
s_set_free (s_set_t *set)
{
    size_t i;
    for (i = 0; i < set->n; i++)
        sla_policy_destroy (&set->p[i]);
    free (set->p);
    set->p = NULL;
    set->n = 0;
}

/* Reads and parses every stored policy into set (empty at first). A
 * stored one the parser now refuses is logged and left out. 0 or -1. */
static int
s_set_load (rt_db_t *db, s_set_t *set, char *err, size_t errlen)
{
    PGresult *res = routing_exec (db, S_POL_ALL, 0, NULL, err, errlen);
    int i, rows;

    memset (set, 0, sizeof *set);
    if (!res)
        return -1;
    rows = PQntuples (res);
    if (rows > 0) {
        set->p = calloc ((size_t)rows, sizeof *set->p);
        if (!set->p) {
            PQclear (res);
            rt_errf (err, errlen, "SLA policies: out of memory");
            return -1;
        }
    }
    for (i = 0; i < rows; i++) {
        char why[256] = "";
        const char *text = PQgetvalue (res, i, 1);
        sla_policy_t *p = sla_policy_parse (text, strlen (text), why, sizeof why);
        if (!p) {
            rt_log (RT_LOG_WARN, "stored SLA policy refused: left out",
                    rt_log_str ("policy", PQgetvalue (res, i, 0)), rt_log_str ("reason", why));
            continue;
        }
        set->p[set->n++] = p;
    }
    PQclear (res);
    return 0;
}

static const sla_policy_t *
s_set_find (const s_set_t *set, const char *name)
{
    size_t i;
    for (i = 0; i < set->n; i++) {
        if (strcmp (set->p[i]->name, name) == 0)
            return set->p[i];
    }
    return NULL;
}

/* The business hours of team (may be "") into *out, NULL for none (a
 * stored calendar now refused is logged and counts as none). 0 or -1. */
static int
s_calendar_load (rt_db_t *db, const char *team, sla_calendar_t **out, char *err, size_t errlen)
{
    const char *v[1] = {team};
    char why[256] = "";
    json_t *obj;
    PGresult *res;

    *out = NULL;
    if (!routing_set (team))
        return 0;
    res = routing_exec (db, S_HOURS_GET, 1, v, err, errlen);
    if (!res)
        return -1;
    if (PQntuples (res) == 0) {
        PQclear (res);
        return 0;
    }
    obj = json_loads (PQgetvalue (res, 0, 0), 0, NULL);
    *out = obj ? sla_calendar_from_json (obj, why, sizeof why) : NULL;
    json_decref (obj);
    if (!*out)
        rt_log (RT_LOG_WARN, "stored business hours refused: none used", rt_log_str ("team", team),
                rt_log_str ("reason", why));
    PQclear (res);
    return 0;
}

/* The calendar a policy needs from the team: NULL when it counts wall
 * time or has hours of its own. */
static bool
s_needs_team (const sla_policy_t *p)
{
    return p->clock == SLA_CLOCK_BUSINESS && !p->calendar;
}

/* --- starting, stopping, pausing -------------------------------------- */

/* Starts the clocks of conversation conv at `at`: its resolution clock
 * (resolution) and its first or next response clock (response), under the
 * policy sla_select picks. 0 or -1. */
static int
s_start (rt_db_t *db, const char *conv, bool resolution, bool response, int64_t at, char *err,
         size_t errlen)
{
    char team[ROUTING_OP_MAX + 1], inbox[ROUTING_OP_MAX + 1];
    const rt_channel_t *ch;
    const sla_policy_t *p;
    sla_calendar_t *cal = NULL;
    sla_kind_t kinds[2];
    size_t nk = 0, i;
    s_set_t set = {0};
    bool answered;
    int rc = -1;

    /* A shop without policies measures nothing: one read and done. */
    if (s_set_load (db, &set, err, errlen) != 0)
        return -1;
    if (set.n == 0)
        return 0;
    {
        const char *v[1] = {conv};
        PGresult *res = routing_exec (db, S_CONV, 1, v, err, errlen);
        if (!res)
            goto cleanup;
        if (PQntuples (res) == 0) {
            PQclear (res);
            rc = 0;
            goto cleanup;
        }
        s_copy (team, sizeof team, PQgetvalue (res, 0, 0));
        s_copy (inbox, sizeof inbox, PQgetvalue (res, 0, 1));
        ch = rt_channel_by_name (PQgetvalue (res, 0, 2));
        answered = strcmp (PQgetvalue (res, 0, 3), "t") == 0;
        PQclear (res);
    }
    if (resolution)
        kinds[nk++] = SLA_RESOLUTION;
    if (response)
        kinds[nk++] = answered ? SLA_NEXT_RESPONSE : SLA_FIRST_RESPONSE;
    p = sla_select ((const sla_policy_t *const *)set.p, set.n, team, inbox,
                    ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED);
    if (!p) {
        rc = 0;
        goto cleanup;
    }
    if (s_needs_team (p) && s_calendar_load (db, team, &cal, err, errlen) != 0)
        goto cleanup;
    for (i = 0; i < nk; i++) {
        char why[256] = "";
        sla_timer_t t;
        int got = sla_timer_start (p, cal, kinds[i], at, &t, why, sizeof why);
        if (got < 0) {
            rt_log (RT_LOG_WARN, "SLA clock not started", rt_log_str ("conversation", conv),
                    rt_log_str ("policy", p->name), rt_log_str ("kind", sla_kind_name (kinds[i])),
                    rt_log_str ("reason", why));
            continue;
        }
        if (got == 0)
            continue;
        {
            routing_ms_t start = routing_ms (t.start_ms), due = routing_ms (t.due_ms),
                         warn = routing_ms (t.warn_ms);
            const char *v[7] = {
                conv,  sla_kind_name (kinds[i]), p->name, *team ? team : NULL, start.s, due.s,
                warn.s};
            if (routing_run (db, S_START, 7, v, err, errlen) != 0)
                goto cleanup;
        }
    }
    rc = 0;
cleanup:
    sla_calendar_destroy (&cal);
    s_set_free (&set);
    return rc;
}

/* Resumes conv's paused clocks at now: each due time (and a warning still
 * to come) moves later by what the pause covered on its policy's clock. A
 * clock whose policy is gone, or cannot count, resumes as it stood. */
static int
s_resume (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen)
{
    const char *v[1] = {conv};
    PGresult *res = routing_exec (db, S_PAUSED, 1, v, err, errlen);
    s_set_t set = {0};
    sla_calendar_t *cal = NULL;
    char cal_team[ROUTING_OP_MAX + 1] = "";
    bool cal_loaded = false;
    int i, rc = -1;

    if (!res)
        return -1;
    if (PQntuples (res) == 0) {
        PQclear (res);
        return 0;
    }
    if (s_set_load (db, &set, err, errlen) != 0)
        goto cleanup;
    for (i = 0; i < PQntuples (res); i++) {
        const char *kind = PQgetvalue (res, i, 0), *team = PQgetvalue (res, i, 2);
        const sla_policy_t *p = s_set_find (&set, PQgetvalue (res, i, 1));
        sla_timer_t t = {.start_ms = atoll (PQgetvalue (res, i, 3)),
                         .due_ms = atoll (PQgetvalue (res, i, 4)),
                         .warn_ms = atoll (PQgetvalue (res, i, 5)),
                         .paused = true,
                         .paused_at_ms = atoll (PQgetvalue (res, i, 6))};
        if (p && s_needs_team (p) && (!cal_loaded || strcmp (cal_team, team) != 0)) {
            sla_calendar_destroy (&cal);
            if (s_calendar_load (db, team, &cal, err, errlen) != 0)
                goto cleanup;
            s_copy (cal_team, sizeof cal_team, team);
            cal_loaded = true;
        }
        if (p) {
            char why[256] = "";
            if (sla_resume (p, cal, &t, now, why, sizeof why) != 0)
                rt_log (RT_LOG_WARN, "SLA clock resumed unmoved", rt_log_str ("conversation", conv),
                        rt_log_str ("kind", kind), rt_log_str ("reason", why));
        }
        {
            routing_ms_t due = routing_ms (t.due_ms), warn = routing_ms (t.warn_ms);
            const char *w[4] = {conv, kind, due.s, warn.s};
            if (routing_run (db, S_RESUME, 4, w, err, errlen) != 0)
                goto cleanup;
        }
    }
    rc = 0;
cleanup:
    sla_calendar_destroy (&cal);
    s_set_free (&set);
    PQclear (res);
    return rc;
}

/* A statement of (conv, now). */
static int
s_run_at (rt_db_t *db, const char *stmt, const char *conv, int64_t now, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    const char *v[2] = {conv, ts.s};
    return routing_run (db, stmt, 2, v, err, errlen);
}

int
routing_sla_inbound (rt_db_t *db, const char *conv, bool is_new, int unanswered, int64_t at,
                     int64_t now, char *err, size_t errlen)
{
    if (s_resume (db, conv, now, err, errlen) != 0)
        return -1;
    if (!is_new && unanswered != 1)
        return 0;
    return s_start (db, conv, is_new, unanswered == 1, at, err, errlen);
}

int
routing_sla_inbound_many (rt_db_t *db, const char *const *conv, const bool *is_new,
                          const int *unanswered, const int64_t *at, size_t n, int64_t now,
                          char *err, size_t errlen)
{
    rt_buf_t ids = {0};
    PGresult *res = NULL;
    s_set_t set = {0};
    size_t i;
    int rc = -1;

    if (n == 0)
        return 0;
    if (!rt_buf_array_of (&ids, conv, n)) {
        rt_errf (err, errlen, "SLA clocks: out of memory");
        goto cleanup;
    }
    {
        const char *v[1] = {ids.data};
        res = routing_exec (db, S_PAUSED_OF, 1, v, err, errlen);
    }
    if (!res)
        goto cleanup;
    for (int row = 0; row < PQntuples (res); row++) {
        if (s_resume (db, PQgetvalue (res, row, 0), now, err, errlen) != 0)
            goto cleanup;
    }
    /* A shop without policies starts no clock: one read for them all. */
    if (s_set_load (db, &set, err, errlen) != 0)
        goto cleanup;
    for (i = 0; set.n > 0 && i < n; i++) {
        if ((is_new[i] || unanswered[i] == 1) &&
            s_start (db, conv[i], is_new[i], unanswered[i] == 1, at[i], err, errlen) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    s_set_free (&set);
    PQclear (res);
    rt_buf_free (&ids);
    return rc;
}

int
routing_sla_answered (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen)
{
    return s_run_at (db, S_STOP_RESP, conv, now, err, errlen);
}

int
routing_sla_resolved (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen)
{
    return s_run_at (db, S_STOP_ALL, conv, now, err, errlen);
}

int
routing_sla_pause (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen)
{
    return s_run_at (db, S_PAUSE, conv, now, err, errlen);
}

int
routing_sla_reopened (rt_db_t *db, const char *conv, bool was_resolved, int64_t now, char *err,
                      size_t errlen)
{
    if (s_resume (db, conv, now, err, errlen) != 0)
        return -1;
    return was_resolved ? s_start (db, conv, true, false, now, err, errlen) : 0;
}

/* --- the tick --------------------------------------------------------- */

/* One clock of S_DUE's row `i` breached at now: marked, flagged, maybe
 * reassigned, SlaBreached emitted. *done says whether it was this
 * transaction's to breach. 0 or -1. */
static int
s_breach (rt_db_t *db, const s_set_t *set, PGresult *due, int i, int64_t now, bool *done, char *err,
          size_t errlen)
{
    Retain__V1__SlaBreached msg = RETAIN__V1__SLA_BREACHED__INIT;
    const char *conv = PQgetvalue (due, i, 0), *kind = PQgetvalue (due, i, 1);
    const char *name = PQgetvalue (due, i, 2), *team = PQgetvalue (due, i, 7);
    bool running = strcmp (PQgetvalue (due, i, 4), "t") == 0;
    bool resolved = strcmp (PQgetvalue (due, i, 8), "resolved") == 0;
    const sla_policy_t *p = s_set_find (set, name);
    bool flag = p ? p->escalation.flag_supervisor : true, reassigned = false;
    routing_ms_t ts = routing_ms (now);

    *done = false;
    {
        const char *v[3] = {conv, kind, ts.s};
        PGresult *res = routing_exec (db, S_BREACH, 3, v, err, errlen);
        if (!res)
            return -1;
        *done = PQntuples (res) > 0;
        PQclear (res);
    }
    if (!*done)
        return 0;
    if (flag) {
        const char *v[1] = {conv};
        if (routing_run (db, S_FLAG, 1, v, err, errlen) != 0)
            return -1;
    }
    /* Reassigned only while the clock runs: a late reply or a resolution
     * already ended what a new operator would be for. */
    if (p && p->escalation.reassign && running && !resolved) {
        const char *to = p->escalation.reassign_team ? p->escalation.reassign_team : team;
        char why[256] = "";
        routing_status_t st = ROUTING_ERR_NOT_FOUND;
        if (routing_set (to))
            st = routing_transfer_at (db, conv, NULL, to, NULL, atoll (PQgetvalue (due, i, 9)),
                                      ROUTING_REASON_SLA, now, NULL, why, sizeof why);
        if (st == ROUTING_ERR_DB) {
            rt_errf (err, errlen, "SLA escalation of %s: %s", conv, why);
            return -1;
        }
        reassigned = st == ROUTING_OK;
        /* A conflict is this tick's own earlier escalation of the same
         * conversation (another of its clocks): nothing to say. */
        if (st != ROUTING_OK && st != ROUTING_ERR_CONFLICT)
            rt_log (RT_LOG_WARN, "SLA escalation not reassigned", rt_log_str ("conversation", conv),
                    rt_log_str ("policy", name), rt_log_str ("team", to ? to : ""),
                    rt_log_str ("reason", *why ? why : "no team to reassign to"));
    }
    msg.conversation_id = (char *)conv;
    msg.customer_id = PQgetvalue (due, i, 5);
    msg.operator_id = PQgetvalue (due, i, 6);
    msg.team_id = (char *)team;
    msg.kind = (char *)kind;
    msg.policy = (char *)name;
    msg.due_at = atoll (PQgetvalue (due, i, 3));
    msg.breached_at = now;
    msg.escalation = (char *)(reassigned ? "reassign" : flag ? "flag_supervisor" : "");
    /* Keyed by customer, as the conversation's other events are. */
    return routing_emit (db, "SlaBreached", msg.customer_id, &msg.base, NULL, err, errlen);
}

int
routing_sla_tick (rt_db_t *db, size_t batch, int64_t now, size_t *warned, size_t *breached,
                  char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    char lim[24];
    const char *v[2] = {ts.s, lim};
    s_set_t set = {0};
    PGresult *res;
    int i, rc = -1;

    *warned = 0;
    *breached = 0;
    snprintf (lim, sizeof lim, "%zu", batch);
    res = routing_exec (db, S_WARN, 2, v, err, errlen);
    if (!res)
        return -1;
    *warned = (size_t)PQntuples (res);
    PQclear (res);

    res = routing_exec (db, S_DUE, 2, v, err, errlen);
    if (!res)
        return -1;
    if (PQntuples (res) > 0 && s_set_load (db, &set, err, errlen) != 0)
        goto cleanup;
    for (i = 0; i < PQntuples (res); i++) {
        bool done;
        if (s_breach (db, &set, res, i, now, &done, err, errlen) != 0)
            goto cleanup;
        if (done)
            (*breached)++;
    }
    rc = 0;
cleanup:
    s_set_free (&set);
    PQclear (res);
    return rc;
}

/* --- policies, hours, warnings ---------------------------------------- */

int
routing_sla_prepare (rt_db_t *db, char *err, size_t errlen)
{
    size_t i;
    for (i = 0; i < S_NSTMTS; i++) {
        if (rt_db_prepare (db, s_stmts[i].name, s_stmts[i].sql) != 0) {
            rt_errf (err, errlen, "preparing %s: %s", s_stmts[i].name, rt_db_error (db));
            return -1;
        }
    }
    return 0;
}

routing_status_t
routing_sla_policy_set (rt_db_t *db, const char *json, char *err, size_t errlen)
{
    sla_policy_t *p;
    routing_ms_t ts;
    routing_status_t st = ROUTING_OK;

    if (!json) {
        rt_errf (err, errlen, "policy missing");
        return ROUTING_ERR_INVALID;
    }
    p = sla_policy_parse (json, strlen (json), err, errlen);
    if (!p)
        return ROUTING_ERR_INVALID;
    if (!*p->name) {
        rt_errf (err, errlen, "name missing: a stored policy is kept by its name");
        sla_policy_destroy (&p);
        return ROUTING_ERR_INVALID;
    }
    ts = routing_ms (rt_clock_now_ms ());
    {
        const char *v[3] = {p->name, json, ts.s};
        if (routing_run (db, S_POL_SET, 3, v, err, errlen) != 0)
            st = ROUTING_ERR_DB;
    }
    sla_policy_destroy (&p);
    return st;
}

routing_status_t
routing_sla_policy_delete (rt_db_t *db, const char *name, char *err, size_t errlen)
{
    const char *v[1] = {name};
    PGresult *res;
    bool found;

    if (!routing_set (name)) {
        rt_errf (err, errlen, "no policy named");
        return ROUTING_ERR_INVALID;
    }
    res = routing_exec (db, S_POL_DEL, 1, v, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    found = PQntuples (res) > 0;
    PQclear (res);
    if (!found) {
        rt_errf (err, errlen, "no SLA policy \"%s\"", name);
        return ROUTING_ERR_NOT_FOUND;
    }
    {
        routing_ms_t ts = routing_ms (rt_clock_now_ms ());
        const char *w[2] = {name, ts.s};
        if (routing_run (db, S_POL_STOP, 2, w, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    return ROUTING_OK;
}

routing_status_t
routing_team_hours_set (rt_db_t *db, const char *team_id, const char *json, char *err,
                        size_t errlen)
{
    char zone[128] = "";
    PGresult *res;
    bool found;

    if (!routing_set (team_id)) {
        rt_errf (err, errlen, "no team named");
        return ROUTING_ERR_INVALID;
    }
    if (json) {
        json_error_t jerr;
        json_t *obj = json_loads (json, JSON_REJECT_DUPLICATES, &jerr);
        sla_calendar_t *cal;
        if (!obj) {
            rt_errf (err, errlen, "business hours: not JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
            return ROUTING_ERR_INVALID;
        }
        cal = sla_calendar_from_json (obj, err, errlen);
        if (cal)
            s_copy (zone, sizeof zone, json_string_value (json_object_get (obj, "zone")));
        json_decref (obj);
        if (!cal)
            return ROUTING_ERR_INVALID;
        sla_calendar_destroy (&cal);
    }
    {
        const char *v[3] = {team_id, json, *zone ? zone : NULL};
        res = routing_exec (db, S_HOURS_SET, 3, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    found = PQntuples (res) > 0;
    PQclear (res);
    if (!found) {
        rt_errf (err, errlen, "no team %s", team_id);
        return ROUTING_ERR_NOT_FOUND;
    }
    return ROUTING_OK;
}

routing_status_t
routing_sla_warnings (rt_db_t *db, const char *operator_id, const char *team_id, int64_t since_ms,
                      routing_sla_warning_t *out, size_t max, size_t *n, char *err, size_t errlen)
{
    routing_ms_t since = routing_ms (since_ms);
    char lim[24];
    const char *v[4] = {routing_set (operator_id) ? operator_id : NULL,
                        routing_set (team_id) ? team_id : NULL, since.s, lim};
    PGresult *res;
    int i;

    *n = 0;
    if (max == 0)
        return ROUTING_OK;
    snprintf (lim, sizeof lim, "%zu", max);
    res = routing_exec (db, S_WARNINGS, 4, v, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    for (i = 0; i < PQntuples (res); i++) {
        routing_sla_warning_t *w = &out[i];
        s_copy (w->conversation_id, sizeof w->conversation_id, PQgetvalue (res, i, 0));
        s_copy (w->kind, sizeof w->kind, PQgetvalue (res, i, 1));
        s_copy (w->policy, sizeof w->policy, PQgetvalue (res, i, 2));
        s_copy (w->assignee, sizeof w->assignee, PQgetvalue (res, i, 3));
        s_copy (w->team_id, sizeof w->team_id, PQgetvalue (res, i, 4));
        w->due_ms = atoll (PQgetvalue (res, i, 5));
        w->warned_ms = atoll (PQgetvalue (res, i, 6));
    }
    *n = (size_t)PQntuples (res);
    PQclear (res);
    return ROUTING_OK;
}
