/*
 * routing: what conversation.c and assign.c share (statements, the
 * outbox, the timeline's append) and the counters the API and the gauges
 * read. routing.h has the rules.
 *
 * Counters are read from the conversations themselves (the partial indexes
 * on assignee and team keep only those not resolved), not kept in rows of
 * their own: a second copy of the numbers is one more thing two replicas
 * would update at once, and one more thing that could disagree.
 */
#include "routing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "routing_int.h"
#include "rt_buf.h"
#include "rt_bus.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_uuid.h"
#include "sla_store.h"

#define S_TIMELINE_ADD  "routing_timeline_add"
#define S_TIMELINE_MANY "routing_timeline_add_many"
#define S_COUNT_OP      "routing_count_operator"
#define S_COUNT_TEAM    "routing_count_team"

/* The counters' columns, shared by both statements. */
#define S_COUNT_COLS                                                                               \
    "SELECT count(*), count(*) FILTER (WHERE unanswered > 0), COALESCE(sum(unanswered), 0),"       \
    " COALESCE(" ROUTING_MS (                                                                      \
        "min(waiting_since)") ", 0),"                                                              \
                              " count(*) FILTER (WHERE assignee IS NULL AND status = 'open')"      \
                              " FROM routing.conversations WHERE status <> 'resolved'"

static const routing_stmt_t s_stmts[] = {
    {S_TIMELINE_ADD,
     "INSERT INTO routing.timeline (conversation_id, kind, event_id, channel, counted, operator_id,"
     " body, occurred_at, origin) VALUES ($1::uuid, $2, $3::uuid, $4, $5::boolean, $6, "
     "$7::jsonb, " ROUTING_TS (8) ", $9::jsonb) ON CONFLICT (event_id) DO NOTHING RETURNING seq"},
    /* S_TIMELINE_ADD for many entries, appended in the arrays' order. */
    {S_TIMELINE_MANY,
     "INSERT INTO routing.timeline (conversation_id, kind, event_id, channel, counted, operator_id,"
     " body, occurred_at, origin) SELECT u.c, u.k, u.e, u.ch, u.n, u.o, u.b::jsonb,"
     " to_timestamp(u.a / 1000), u.g::jsonb FROM unnest($1::uuid[], $2::text[], $3::uuid[],"
     " $4::text[], $5::boolean[], $6::text[], $7::text[], $8::float8[], $9::text[])"
     " WITH ORDINALITY AS u(c, k, e, ch, n, o, b, a, g, ord) ORDER BY u.ord"
     " ON CONFLICT (event_id) DO NOTHING RETURNING event_id::text"},
    {S_COUNT_OP, S_COUNT_COLS " AND assignee = $1"},
    {S_COUNT_TEAM, S_COUNT_COLS " AND team_id = $1"},
};
#define S_NSTMTS (sizeof s_stmts / sizeof s_stmts[0])

static const char *const s_reasons[] = {"",          "manager", "policy",        "transfer",
                                        "rebalance", "queue",   "sla_escalation"};

routing_ms_t
routing_ms (int64_t ms)
{
    routing_ms_t out;
    snprintf (out.s, sizeof out.s, "%lld", (long long)ms);
    return out;
}

bool
routing_set (const char *s)
{
    return s && *s;
}

bool
routing_id_ok (const char *text)
{
    rt_uuid_t id;
    return text && strlen (text) == RT_UUID_STR_LEN && rt_uuid_parse (text, &id) == 0;
}

PGresult *
routing_exec (rt_db_t *db, const char *name, int nparams, const char *const *values, char *err,
              size_t errlen)
{
    PGresult *res = rt_db_exec_prepared (db, name, nparams, values, NULL, NULL, 0);
    if (!res)
        rt_errf (err, errlen, "%s: %s", name, rt_db_error (db));
    return res;
}

int
routing_run (rt_db_t *db, const char *name, int nparams, const char *const *values, char *err,
             size_t errlen)
{
    PGresult *res = routing_exec (db, name, nparams, values, err, errlen);
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}

int
routing_envelope (const char *type, const char *key, const ProtobufCMessage *payload, char *id,
                  ProtobufCBinaryData *packed, char *err, size_t errlen)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, "retain-routerd");
    int rc = -1;

    packed->data = NULL;
    packed->len = 0;
    if (!env) {
        rt_errf (err, errlen, "%s: no envelope (out of memory)", type);
        return -1;
    }
    if (id && *id) {
        /* The caller's id: a retried request is the same event to busd. */
        char *mine = strdup (id);
        if (!mine) {
            rt_errf (err, errlen, "%s: out of memory", type);
            goto cleanup;
        }
        free (env->id);
        env->id = mine;
    } else if (id) {
        snprintf (id, ROUTING_ID_LEN + 1, "%s", env->id);
    }
    packed->data = rt_envelope_pack (env, &packed->len);
    if (!packed->data) {
        rt_errf (err, errlen, "%s: out of memory", type);
        goto cleanup;
    }
    rc = 0;
cleanup:
    rt_envelope_free (env);
    return rc;
}

int
routing_emit (rt_db_t *db, const char *type, const char *key, const ProtobufCMessage *payload,
              char *id, char *err, size_t errlen)
{
    ProtobufCBinaryData packed;
    int rc = -1;

    if (routing_envelope (type, key, payload, id, &packed, err, errlen) != 0)
        return -1;
    if (rt_outbox_append_batch (db, &packed, 1) != 0)
        rt_errf (err, errlen, "%s to the outbox: %s", type, rt_db_error (db));
    else
        rc = 0;
    free (packed.data);
    return rc;
}

int
routing_timeline_add (rt_db_t *db, const char *conversation_id, const char *kind,
                      const char *event_id, const char *channel, bool counted,
                      const char *operator_id, const char *body, int64_t at, bool *added, char *err,
                      size_t errlen)
{
    return routing_timeline_add_origin (db, conversation_id, kind, event_id, channel, counted,
                                        operator_id, body, NULL, at, added, err, errlen);
}

int
routing_timeline_add_origin (rt_db_t *db, const char *conversation_id, const char *kind,
                             const char *event_id, const char *channel, bool counted,
                             const char *operator_id, const char *body, const char *origin,
                             int64_t at, bool *added, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (at);
    const char *v[9] = {
        conversation_id,    kind, event_id, channel, counted ? "true" : "false", operator_id,
        body ? body : "{}", ts.s, origin};
    PGresult *res = routing_exec (db, S_TIMELINE_ADD, 9, v, err, errlen);
    if (!res)
        return -1;
    if (added)
        *added = PQntuples (res) > 0;
    PQclear (res);
    return 0;
}

/* An array element: the text, or NULL. */
static void
s_elem (rt_buf_t *b, const char *value)
{
    if (value)
        rt_buf_array_text (b, value);
    else
        rt_buf_array_raw (b, "NULL");
}

int
routing_timeline_add_many (rt_db_t *db, const routing_entry_t *e, size_t n, bool *added, char *err,
                           size_t errlen)
{
    rt_buf_t col[9] = {{0}};
    const char *v[9];
    PGresult *res = NULL;
    size_t i, k;
    int rc = -1;

    for (i = 0; i < n; i++)
        added[i] = false;
    if (n == 0)
        return 0;
    for (k = 0; k < 9; k++)
        rt_buf_array_begin (&col[k]);
    for (i = 0; i < n; i++) {
        routing_ms_t at = routing_ms (e[i].at);
        rt_buf_array_raw (&col[0], e[i].conversation_id);
        rt_buf_array_text (&col[1], e[i].kind);
        s_elem (&col[2], e[i].event_id);
        s_elem (&col[3], e[i].channel);
        rt_buf_array_raw (&col[4], e[i].counted ? "true" : "false");
        s_elem (&col[5], e[i].operator_id);
        rt_buf_array_text (&col[6], e[i].body ? e[i].body : "{}");
        rt_buf_array_raw (&col[7], at.s);
        s_elem (&col[8], e[i].origin);
    }
    for (k = 0; k < 9; k++) {
        rt_buf_array_end (&col[k]);
        if (col[k].failed) {
            rt_errf (err, errlen, "timeline entries: out of memory");
            goto cleanup;
        }
        v[k] = col[k].data;
    }
    res = routing_exec (db, S_TIMELINE_MANY, 9, v, err, errlen);
    if (!res)
        goto cleanup;
    /* Entries without an event id cannot conflict: always added. */
    for (i = 0; i < n; i++)
        added[i] = !e[i].event_id;
    for (int row = 0; row < PQntuples (res); row++) {
        const char *id = PQgetvalue (res, row, 0);
        for (i = 0; i < n; i++) {
            if (!added[i] && e[i].event_id && strcmp (e[i].event_id, id) == 0) {
                added[i] = true;
                break;
            }
        }
    }
    rc = 0;
cleanup:
    PQclear (res);
    for (k = 0; k < 9; k++)
        rt_buf_free (&col[k]);
    return rc;
}

int
routing_prepare (rt_db_t *db, char *err, size_t errlen)
{
    const struct {
        const routing_stmt_t *stmts;
        size_t n;
    } sets[] = {{s_stmts, S_NSTMTS},
                {routing_conversation_stmts, routing_conversation_nstmts},
                {routing_assign_stmts, routing_assign_nstmts},
                {routing_event_stmts, routing_event_nstmts},
                {routing_inbound_many_stmts, routing_inbound_many_nstmts},
                {routing_assign_many_stmts, routing_assign_many_nstmts}};
    size_t i, j;

    for (i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        for (j = 0; j < sets[i].n; j++) {
            if (rt_db_prepare (db, sets[i].stmts[j].name, sets[i].stmts[j].sql) != 0) {
                rt_errf (err, errlen, "preparing %s: %s", sets[i].stmts[j].name, rt_db_error (db));
                return -1;
            }
        }
    }
    if (reply_prepare (db) != 0) {
        rt_errf (err, errlen, "preparing reply's statements: %s", rt_db_error (db));
        return -1;
    }
    return routing_sla_prepare (db, err, errlen);
}

routing_status_t
routing_counts (rt_db_t *db, const char *operator_id, const char *team_id, routing_counts_t *out,
                char *err, size_t errlen)
{
    const char *v[1];
    PGresult *res;

    memset (out, 0, sizeof *out);
    if (routing_set (operator_id) == routing_set (team_id)) {
        rt_errf (err, errlen, "counts of an operator or of a team: name exactly one");
        return ROUTING_ERR_INVALID;
    }
    v[0] = routing_set (operator_id) ? operator_id : team_id;
    res =
        routing_exec (db, routing_set (operator_id) ? S_COUNT_OP : S_COUNT_TEAM, 1, v, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    out->open = atoll (PQgetvalue (res, 0, 0));
    out->unanswered = atoll (PQgetvalue (res, 0, 1));
    out->messages = atoll (PQgetvalue (res, 0, 2));
    out->oldest_waiting_ms = atoll (PQgetvalue (res, 0, 3));
    out->queued = atoll (PQgetvalue (res, 0, 4));
    PQclear (res);
    if (routing_callbacks_open (db, operator_id, team_id, &out->callbacks, err, errlen) !=
        ROUTING_OK)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}

const char *
routing_reason_name (routing_reason_t reason)
{
    if ((size_t)reason >= sizeof s_reasons / sizeof s_reasons[0])
        return "";
    return s_reasons[reason];
}
