/*
 * assign: who answers a conversation (routing.h has the rules).
 *
 * Every assignment goes through one statement on the operator's row,
 * `open_count = open_count + 1 ... WHERE open_count < capacity AND presence
 * = 'online'`, under the table's CHECK (open_count <= capacity): a replica
 * that loses a race gets no row back and tries the next candidate, so
 * capacity holds however many replicas assign at once. Candidates are
 * chosen FOR NO KEY UPDATE SKIP LOCKED: a replica never waits on an
 * operator another is assigning to, it takes the next one. Operators' rows
 * are never locked FOR UPDATE: that lock also holds off the foreign-key
 * check (FOR KEY SHARE) of every write to a conversation the operator is
 * assigned, so two replicas' rounds, each holding an operator and writing
 * a conversation of the other's, would deadlock. The conversation's row
 * is locked first (by the caller, or here FOR UPDATE SKIP LOCKED for the
 * queue), then operators': one order everywhere, so no two transactions
 * wait on each other in a circle, except a transfer, which locks two
 * operators and takes them in id order.
 *
 * Every change (s_change) writes the conversation, makes the first
 * operator a customer gets their manager, puts ConversationAssigned in the
 * outbox and appends a timeline entry whose event id is that envelope's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "retain/v1/conversation.pb-c.h"
#include "routing.h"
#include "routing_int.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "sla_store.h"

/* A claim that loses to another replica moves to the next candidate; a
 * few rounds are plenty, since losing means that operator was taken. */
#define S_PICK_TRIES 4
/* At most this many conversations handed out by one call. */
#define S_HAND_MAX 1000

#define S_CONV_READ "routing_assign_conv_read"
#define S_OP_CLAIM  "routing_op_claim"
#define S_OP_TAKE   "routing_op_take"
#define S_OP_GET    "routing_op_get"
#define S_WAIT_SET  "routing_wait_set"
#define S_PICK      "routing_pick"
#define S_SET       "routing_assignee_set"
#define S_STICKY    "routing_manager_sticky"
#define S_RELEASE   "routing_op_release"
#define S_LOCK_TWO  "routing_ops_lock"
#define S_HAND_PICK "routing_hand_pick"
#define S_PRESENCE  "routing_presence"
#define S_STALE     "routing_tick_stale"
#define S_GONE      "routing_tick_gone"
#define S_HELD      "routing_tick_held"
#define S_WAKE_DUE  "routing_tick_wake_due"
#define S_WAKE      "routing_tick_wake"
#define S_QUEUE_DUE "routing_tick_queue"
#define S_ROOM      "routing_tick_room"
#define S_QUIET     "routing_tick_quiet"
#define S_CONV_LOCK "routing_transfer_lock"
#define S_TEAM_GET  "routing_team_get"
#define S_CONV_TEAM "routing_conv_team"

const routing_stmt_t routing_assign_stmts[] = {
    {S_CONV_READ,
     "SELECT c.status, COALESCE(c.assignee, ''), c.team_id, c.language, c.skills::text,"
     " COALESCE(cu.manager, ''), COALESCE(" ROUTING_MS (
         "c.manager_until") ", 0)"
                            " FROM routing.conversations c JOIN crm.customers cu ON cu.id = "
                            "c.customer_id"
                            " WHERE c.id = $1::uuid FOR UPDATE OF c"},
    {S_OP_CLAIM, "UPDATE routing.operators SET open_count = open_count + 1,"
                 " last_assigned_at = " ROUTING_TS (
                     2) " WHERE id = $1 AND open_count < capacity"
                        " AND presence = 'online' AND disabled_at IS NULL RETURNING team_id"},
    /* A transfer: presence is the operator's business, room is not. */
    {S_OP_TAKE, "UPDATE routing.operators SET open_count = open_count + 1,"
                " last_assigned_at = " ROUTING_TS (2) " WHERE id = $1 AND open_count < capacity"
                                                      " AND disabled_at IS NULL RETURNING team_id"},
    /* An operator, and how long to wait for them: the conversation's
     * team's wait ($2), else their own team's. */
    {S_OP_GET,
     "SELECT o.team_id, o.disabled_at IS NOT NULL,"
     " COALESCE((SELECT manager_wait_ms FROM routing.teams WHERE id = $2), t.manager_wait_ms)"
     " FROM routing.operators o JOIN routing.teams t ON t.id = o.team_id WHERE o.id = $1"},
    {S_WAIT_SET, "UPDATE routing.conversations SET manager_until = " ROUTING_TS (
                     2) ","
                        " team_id = COALESCE(team_id, $3) WHERE id = $1::uuid"},
    /* The policy's candidate: those who speak the language and have the
     * skills first (anyone rather than nobody), then balanced's fewest
     * open or round robin's least recently assigned. */
    {S_PICK, "SELECT o.id FROM routing.operators o"
             " WHERE ($1::text IS NULL OR o.team_id = $1) AND o.presence = 'online'"
             " AND o.disabled_at IS NULL AND o.open_count < o.capacity"
             " AND ($4::text IS NULL OR o.id <> $4)"
             " ORDER BY ($2::text IS NULL OR $2 = ANY (o.languages)) DESC,"
             " (o.skills @> $3::text[]) DESC,"
             " CASE WHEN COALESCE((SELECT policy FROM routing.teams WHERE id = $1), 'balanced')"
             " = 'balanced' THEN o.open_count ELSE 0 END,"
             " o.last_assigned_at NULLS FIRST, o.id LIMIT 1 FOR NO KEY UPDATE OF o SKIP LOCKED"},
    /* To an operator: their team's. To the queue: in line from when it
     * began to wait. */
    {S_SET,
     "UPDATE routing.conversations SET assignee = $2,"
     " team_id = COALESCE((SELECT team_id FROM routing.operators WHERE id = $2), team_id),"
     " queued_since = CASE WHEN $2::text IS NULL AND status = 'open'"
     " THEN COALESCE(queued_since, waiting_since, " ROUTING_TS (
         3) ") END,"
            " manager_until = CASE WHEN $2::text IS NULL THEN manager_until END, version = version "
            "+ 1"
            " WHERE id = $1::uuid RETURNING version, customer_id, channel, COALESCE(team_id, '')"},
    {S_STICKY, "UPDATE crm.customers SET manager = $2, updated_at = " ROUTING_TS (
                   3) " WHERE id = $1::uuid AND manager IS NULL"},
    {S_RELEASE,
     "UPDATE routing.operators SET open_count = open_count - 1 WHERE id = $1 AND open_count > 0"},
    {S_LOCK_TWO, "SELECT id FROM routing.operators WHERE id IN ($1, $2) ORDER BY id"
                 " FOR NO KEY UPDATE"},
    /* The next queued conversation $1 may take: their own customers'
     * (waiting for them or not), else one in their team (or in none) not
     * waiting for another manager. */
    {S_HAND_PICK,
     "SELECT c.id, cu.manager IS NOT DISTINCT FROM o.id"
     " FROM routing.conversations c JOIN crm.customers cu ON cu.id = c.customer_id,"
     " routing.operators o WHERE o.id = $1 AND c.assignee IS NULL AND c.status = 'open'"
     " AND (cu.manager = o.id OR ((c.team_id IS NULL OR c.team_id = o.team_id)"
     " AND (cu.manager IS NULL OR c.manager_until IS NULL OR c.manager_until <= " ROUTING_TS (
         2) ")))"
            " ORDER BY cu.manager IS NOT DISTINCT FROM o.id DESC, c.queued_since, c.id"
            " LIMIT 1 FOR UPDATE OF c SKIP LOCKED"},
    {S_PRESENCE, "UPDATE routing.operators SET presence = $2, heartbeat_at = " ROUTING_TS (
                     3) ","
                        " presence_at = CASE WHEN presence = $2 AND presence_at IS NOT NULL"
                        " THEN presence_at ELSE " ROUTING_TS (
                            3) " END"
                               " WHERE id = $1 AND disabled_at IS NULL RETURNING id"},
    /* Gone since their last heartbeat, not since the tick noticed. */
    {S_STALE,
     "UPDATE routing.operators SET presence = 'offline', presence_at = heartbeat_at"
     " WHERE id IN (SELECT id FROM routing.operators WHERE presence <> 'offline'"
     " AND heartbeat_at < " ROUTING_TS (1) " LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED) RETURNING id"},
    {S_GONE, "SELECT id FROM routing.operators WHERE presence = 'offline' AND open_count > 0"
             " AND presence_at <= " ROUTING_TS (1) " ORDER BY presence_at LIMIT $2"
                                                   " FOR NO KEY UPDATE SKIP LOCKED"},
    {S_HELD, "SELECT id, status, team_id, language, skills::text FROM routing.conversations"
             " WHERE assignee = $1 AND status <> 'resolved'"
             " ORDER BY waiting_since NULLS LAST, created_at LIMIT $2 FOR UPDATE SKIP LOCKED"},
    {S_WAKE_DUE, "SELECT id FROM routing.conversations WHERE status = 'snoozed'"
                 " AND snoozed_until <= " ROUTING_TS (1) " ORDER BY snoozed_until LIMIT $2"
                                                         " FOR UPDATE SKIP LOCKED"},
    {S_WAKE, "UPDATE routing.conversations SET status = 'open', snoozed_until = NULL,"
             " queued_since = CASE WHEN assignee IS NULL THEN " ROUTING_TS (
                 2) " END"
                    " WHERE id = $1::uuid RETURNING assignee IS NULL"},
    {S_QUEUE_DUE, "SELECT id FROM routing.conversations WHERE assignee IS NULL AND status = 'open'"
                  " AND (manager_until IS NULL OR manager_until <= " ROUTING_TS (
                      1) ")"
                         " ORDER BY queued_since LIMIT $2 FOR UPDATE SKIP LOCKED"},
    /* Someone online with room: without, no queued conversation can move. */
    {S_ROOM, "SELECT 1 FROM routing.operators WHERE presence = 'online' AND disabled_at IS NULL"
             " AND open_count < capacity LIMIT 1"},
    {S_QUIET, "SELECT id FROM routing.conversations WHERE status IN ('open', 'pending')"
              " AND unanswered = 0 AND GREATEST(created_at, last_inbound_at, last_outbound_at)"
              " <= " ROUTING_TS (1) " LIMIT $2 FOR UPDATE SKIP LOCKED"},
    {S_CONV_LOCK, "SELECT status, COALESCE(assignee, ''), version, team_id, language, skills::text"
                  " FROM routing.conversations WHERE id = $1::uuid FOR UPDATE"},
    {S_TEAM_GET, "SELECT 1 FROM routing.teams WHERE id = $1"},
    {S_CONV_TEAM, "UPDATE routing.conversations SET team_id = $2 WHERE id = $1::uuid"},
};
const size_t routing_assign_nstmts = sizeof routing_assign_stmts / sizeof routing_assign_stmts[0];

/* The text of a column, NULL for SQL NULL (for passing it on). */
static const char *
s_col (PGresult *res, int row, int col)
{
    return PQgetisnull (res, row, col) ? NULL : PQgetvalue (res, row, col);
}

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

/* Claims room on `op` (S_OP_CLAIM or S_OP_TAKE): 1 claimed, 0 no room (or
 * no such operator), -1 error. */
static int
s_claim (rt_db_t *db, const char *stmt, const char *op, int64_t now, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    const char *v[2] = {op, ts.s};
    PGresult *res = routing_exec (db, stmt, 2, v, err, errlen);
    int got;
    if (!res)
        return -1;
    got = PQntuples (res) > 0;
    PQclear (res);
    return got;
}

/* The policy's pick, claimed into cand: 1, 0 for nobody free, -1. */
static int
s_policy_claim (rt_db_t *db, const char *team, const char *language, const char *skills,
                const char *exclude, int64_t now, char cand[ROUTING_OP_MAX + 1], char *err,
                size_t errlen)
{
    int i;
    for (i = 0; i < S_PICK_TRIES; i++) {
        const char *v[4] = {team, language, skills ? skills : "{}", exclude};
        PGresult *res = routing_exec (db, S_PICK, 4, v, err, errlen);
        int got;
        if (!res)
            return -1;
        if (PQntuples (res) == 0) {
            PQclear (res);
            return 0;
        }
        s_copy (cand, ROUTING_OP_MAX + 1, PQgetvalue (res, 0, 0));
        PQclear (res);
        got = s_claim (db, S_OP_CLAIM, cand, now, err, errlen);
        if (got != 0)
            return got;
    }
    return 0;
}

int
routing_announce (const char *conv, const char *customer, const char *channel, const char *team,
                  const char *to, const char *previous, routing_reason_t reason, const char *by,
                  int64_t version, char envelope_id[ROUTING_ID_LEN + 1],
                  ProtobufCBinaryData *packed, char **body, char *err, size_t errlen)
{
    Retain__V1__ConversationAssigned msg = RETAIN__V1__CONVERSATION_ASSIGNED__INIT;
    const rt_channel_t *ch = rt_channel_by_name (channel);
    json_t *j;

    *body = NULL;
    envelope_id[0] = '\0';
    msg.conversation_id = (char *)conv;
    msg.customer_id = (char *)customer;
    msg.operator_id = (char *)(to ? to : "");
    msg.previous_operator_id = (char *)(previous ? previous : "");
    msg.reason = (char *)routing_reason_name (reason);
    msg.channel = ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
    msg.team_id = (char *)team;
    msg.version = version;
    msg.by_operator_id = (char *)(by ? by : "");
    if (routing_envelope ("ConversationAssigned", conv, &msg.base, envelope_id, packed, err,
                          errlen) != 0)
        return -1;
    j = json_pack ("{s:s, s:s, s:s, s:s, s:I}", "assignee", msg.operator_id, "previous",
                   msg.previous_operator_id, "reason", msg.reason, "by", msg.by_operator_id,
                   "version", (json_int_t)version);
    *body = j ? json_dumps (j, JSON_COMPACT) : NULL;
    json_decref (j);
    if (!*body) {
        free (packed->data);
        packed->data = NULL;
        rt_errf (err, errlen, "assignment entry: out of memory");
        return -1;
    }
    return 0;
}

/* One assignment change of a locked conversation: to `to` (NULL: the
 * queue) from `previous` ("" or NULL: nobody). The capacity is the
 * caller's business (claimed before, released after). */
static int
s_change (rt_db_t *db, const char *conv, const char *to, const char *previous,
          routing_reason_t reason, const char *by, int64_t now, routing_assignment_t *out,
          char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    char customer[ROUTING_ID_LEN + 1], channel[32], team[ROUTING_OP_MAX + 1];
    char envelope_id[ROUTING_ID_LEN + 1];
    ProtobufCBinaryData packed = {0};
    char *body = NULL;
    int64_t version;
    int rc = -1;

    {
        const char *v[3] = {conv, routing_set (to) ? to : NULL, ts.s};
        PGresult *res = routing_exec (db, S_SET, 3, v, err, errlen);
        if (!res)
            return -1;
        if (PQntuples (res) == 0) {
            PQclear (res);
            rt_errf (err, errlen, "conversation %s vanished", conv);
            return -1;
        }
        version = atoll (PQgetvalue (res, 0, 0));
        s_copy (customer, sizeof customer, PQgetvalue (res, 0, 1));
        s_copy (channel, sizeof channel, PQgetvalue (res, 0, 2));
        s_copy (team, sizeof team, PQgetvalue (res, 0, 3));
        PQclear (res);
    }
    if (routing_set (to)) {
        const char *v[3] = {customer, to, ts.s};
        if (routing_run (db, S_STICKY, 3, v, err, errlen) != 0)
            return -1;
    }
    if (routing_announce (conv, customer, channel, team, to, previous, reason, by, version,
                          envelope_id, &packed, &body, err, errlen) != 0)
        return -1;
    if (rt_outbox_append_batch (db, &packed, 1) != 0) {
        rt_errf (err, errlen, "ConversationAssigned to the outbox: %s", rt_db_error (db));
        goto cleanup;
    }
    if (routing_timeline_add (db, conv, "assignment", envelope_id, NULL, false, by, body, now, NULL,
                              err, errlen) != 0)
        goto cleanup;
    if (out) {
        s_copy (out->conversation_id, sizeof out->conversation_id, conv);
        s_copy (out->assignee, sizeof out->assignee, to);
        s_copy (out->previous, sizeof out->previous, previous);
        out->version = version;
    }
    rc = 0;
cleanup:
    free (packed.data);
    free (body);
    return rc;
}

int
routing_release (rt_db_t *db, const char *op, char *err, size_t errlen)
{
    const char *v[1] = {op};
    return routing_run (db, S_RELEASE, 1, v, err, errlen);
}

/* The manager's step of routing_assign: 1 assigned or waiting (out says
 * which), 0 on to the policy, -1. */
static int
s_try_manager (rt_db_t *db, const char *conv, const char *manager, const char *team,
               int64_t manager_until, bool no_wait, routing_reason_t reason, int64_t now,
               routing_assign_result_t *out, char *err, size_t errlen)
{
    int got = s_claim (db, S_OP_CLAIM, manager, now, err, errlen);
    if (got < 0)
        return -1;
    if (got) {
        if (s_change (db, conv, manager, "", reason ? reason : ROUTING_REASON_MANAGER, NULL, now,
                      NULL, err, errlen) != 0)
            return -1;
        s_copy (out->assignee, sizeof out->assignee, manager);
        out->reason = reason ? reason : ROUTING_REASON_MANAGER;
        return 1;
    }
    if (no_wait)
        return 0;
    if (manager_until > 0) {
        out->waiting_for_manager = manager_until > now;
        return out->waiting_for_manager ? 1 : 0;
    }
    {
        const char *v[2] = {manager, team};
        PGresult *res = routing_exec (db, S_OP_GET, 2, v, err, errlen);
        char mteam[ROUTING_OP_MAX + 1];
        int64_t wait;
        if (!res)
            return -1;
        /* A manager who left (or never was) is nobody to wait for. */
        if (PQntuples (res) == 0 || strcmp (PQgetvalue (res, 0, 1), "t") == 0) {
            PQclear (res);
            return 0;
        }
        s_copy (mteam, sizeof mteam, PQgetvalue (res, 0, 0));
        wait = atoll (PQgetvalue (res, 0, 2));
        PQclear (res);
        if (wait <= 0)
            return 0;
        {
            routing_ms_t until = routing_ms (now + wait);
            const char *w[3] = {conv, until.s, mteam};
            if (routing_run (db, S_WAIT_SET, 3, w, err, errlen) != 0)
                return -1;
        }
        out->waiting_for_manager = true;
        return 1;
    }
}

int
routing_assign (rt_db_t *db, const char *conv, const char *exclude, bool no_wait,
                routing_reason_t reason, int64_t now, routing_assign_result_t *out, char *err,
                size_t errlen)
{
    char team[ROUTING_OP_MAX + 1], language[64], skills[512], manager[ROUTING_OP_MAX + 1];
    char cand[ROUTING_OP_MAX + 1];
    bool has_team, has_language;
    int64_t manager_until;
    int got;

    memset (out, 0, sizeof *out);
    {
        const char *v[1] = {conv};
        PGresult *res = routing_exec (db, S_CONV_READ, 1, v, err, errlen);
        if (!res)
            return -1;
        if (PQntuples (res) == 0) {
            PQclear (res);
            rt_errf (err, errlen, "conversation %s vanished", conv);
            return -1;
        }
        if (strcmp (PQgetvalue (res, 0, 0), "open") != 0 || *PQgetvalue (res, 0, 1)) {
            s_copy (out->assignee, sizeof out->assignee, PQgetvalue (res, 0, 1));
            PQclear (res);
            return 0;
        }
        has_team = !PQgetisnull (res, 0, 2);
        s_copy (team, sizeof team, s_col (res, 0, 2));
        has_language = !PQgetisnull (res, 0, 3);
        s_copy (language, sizeof language, s_col (res, 0, 3));
        s_copy (skills, sizeof skills, PQgetvalue (res, 0, 4));
        s_copy (manager, sizeof manager, PQgetvalue (res, 0, 5));
        manager_until = atoll (PQgetvalue (res, 0, 6));
        PQclear (res);
    }
    if (*manager && !(exclude && strcmp (manager, exclude) == 0)) {
        got = s_try_manager (db, conv, manager, has_team ? team : NULL, manager_until, no_wait,
                             reason, now, out, err, errlen);
        if (got != 0)
            return got < 0 ? -1 : 0;
    }
    got = s_policy_claim (db, has_team ? team : NULL, has_language ? language : NULL, skills,
                          exclude, now, cand, err, errlen);
    if (got <= 0)
        return got;
    if (s_change (db, conv, cand, "", reason ? reason : ROUTING_REASON_POLICY, NULL, now, NULL, err,
                  errlen) != 0)
        return -1;
    s_copy (out->assignee, sizeof out->assignee, cand);
    out->reason = reason ? reason : ROUTING_REASON_POLICY;
    return 0;
}

int
routing_hand_out (rt_db_t *db, const char *op, int64_t now, size_t *n, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    size_t handed = 0;

    while (handed < S_HAND_MAX) {
        const char *v[2] = {op, ts.s};
        char conv[ROUTING_ID_LEN + 1];
        bool mine;
        int got;
        PGresult *res = routing_exec (db, S_HAND_PICK, 2, v, err, errlen);
        if (!res)
            return -1;
        if (PQntuples (res) == 0) {
            PQclear (res);
            break;
        }
        s_copy (conv, sizeof conv, PQgetvalue (res, 0, 0));
        mine = strcmp (PQgetvalue (res, 0, 1), "t") == 0;
        PQclear (res);
        got = s_claim (db, S_OP_CLAIM, op, now, err, errlen);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        if (s_change (db, conv, op, "", mine ? ROUTING_REASON_MANAGER : ROUTING_REASON_QUEUE, NULL,
                      now, NULL, err, errlen) != 0)
            return -1;
        handed++;
    }
    if (n)
        *n = handed;
    return 0;
}

routing_status_t
routing_presence (rt_db_t *db, const char *operator_id, const char *presence, int64_t now,
                  size_t *handed, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    PGresult *res;
    bool found;

    if (handed)
        *handed = 0;
    if (!presence || (strcmp (presence, "online") != 0 && strcmp (presence, "away") != 0 &&
                      strcmp (presence, "offline") != 0)) {
        rt_errf (err, errlen, "presence is online, away or offline");
        return ROUTING_ERR_INVALID;
    }
    if (!routing_set (operator_id)) {
        rt_errf (err, errlen, "no operator named");
        return ROUTING_ERR_INVALID;
    }
    {
        const char *v[3] = {operator_id, presence, ts.s};
        res = routing_exec (db, S_PRESENCE, 3, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    found = PQntuples (res) > 0;
    PQclear (res);
    if (!found) {
        rt_errf (err, errlen, "no operator %s (or disabled)", operator_id);
        return ROUTING_ERR_NOT_FOUND;
    }
    if (strcmp (presence, "online") == 0 &&
        routing_hand_out (db, operator_id, now, handed, err, errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}

routing_status_t
routing_transfer (rt_db_t *db, const char *conv, const char *to_operator, const char *to_team,
                  const char *by, int64_t expected_version, routing_assignment_t *out, char *err,
                  size_t errlen)
{
    return routing_transfer_at (db, conv, to_operator, to_team, by, expected_version,
                                ROUTING_REASON_TRANSFER, rt_clock_now_ms (), out, err, errlen);
}

routing_status_t
routing_transfer_at (rt_db_t *db, const char *conv, const char *to_operator, const char *to_team,
                     const char *by, int64_t expected_version, routing_reason_t reason, int64_t now,
                     routing_assignment_t *out, char *err, size_t errlen)
{
    char status[16], previous[ROUTING_OP_MAX + 1], language[64], skills[512],
        cand[ROUTING_OP_MAX + 1];
    bool has_language;
    int64_t version;
    int got;

    if (out)
        memset (out, 0, sizeof *out);
    if (!routing_id_ok (conv) || routing_set (to_operator) == routing_set (to_team)) {
        rt_errf (err, errlen, "a transfer names a conversation and one operator or team");
        return ROUTING_ERR_INVALID;
    }
    {
        const char *v[1] = {conv};
        PGresult *res = routing_exec (db, S_CONV_LOCK, 1, v, err, errlen);
        if (!res)
            return ROUTING_ERR_DB;
        if (PQntuples (res) == 0) {
            PQclear (res);
            rt_errf (err, errlen, "no conversation %s", conv);
            return ROUTING_ERR_NOT_FOUND;
        }
        s_copy (status, sizeof status, PQgetvalue (res, 0, 0));
        s_copy (previous, sizeof previous, PQgetvalue (res, 0, 1));
        version = atoll (PQgetvalue (res, 0, 2));
        has_language = !PQgetisnull (res, 0, 4);
        s_copy (language, sizeof language, s_col (res, 0, 4));
        s_copy (skills, sizeof skills, PQgetvalue (res, 0, 5));
        PQclear (res);
    }
    if (version != expected_version) {
        rt_errf (err, errlen, "conversation %s is at version %lld, not %lld", conv,
                 (long long)version, (long long)expected_version);
        return ROUTING_ERR_CONFLICT;
    }
    if (strcmp (status, "resolved") == 0) {
        rt_errf (err, errlen, "conversation %s is resolved", conv);
        return ROUTING_ERR_STATE;
    }
    if (routing_set (to_operator)) {
        if (strcmp (to_operator, previous) == 0) {
            if (out) {
                s_copy (out->conversation_id, sizeof out->conversation_id, conv);
                s_copy (out->assignee, sizeof out->assignee, previous);
                s_copy (out->previous, sizeof out->previous, previous);
                out->version = version;
            }
            return ROUTING_OK;
        }
        {
            const char *v[2] = {to_operator, *previous ? previous : to_operator};
            PGresult *res = routing_exec (db, S_LOCK_TWO, 2, v, err, errlen);
            bool known;
            if (!res)
                return ROUTING_ERR_DB;
            known = PQntuples (res) > 0 &&
                    (strcmp (PQgetvalue (res, 0, 0), to_operator) == 0 ||
                     (PQntuples (res) > 1 && strcmp (PQgetvalue (res, 1, 0), to_operator) == 0));
            PQclear (res);
            if (!known) {
                rt_errf (err, errlen, "no operator %s", to_operator);
                return ROUTING_ERR_NOT_FOUND;
            }
        }
        got = s_claim (db, S_OP_TAKE, to_operator, now, err, errlen);
        if (got < 0)
            return ROUTING_ERR_DB;
        if (got == 0) {
            rt_errf (err, errlen, "operator %s has no room (or is disabled)", to_operator);
            return ROUTING_ERR_CAPACITY;
        }
        if (*previous && routing_release (db, previous, err, errlen) != 0)
            return ROUTING_ERR_DB;
        if (s_change (db, conv, to_operator, previous, reason, by, now, out, err, errlen) != 0)
            return ROUTING_ERR_DB;
        return ROUTING_OK;
    }
    {
        const char *v[1] = {to_team};
        PGresult *res = routing_exec (db, S_TEAM_GET, 1, v, err, errlen);
        bool known;
        if (!res)
            return ROUTING_ERR_DB;
        known = PQntuples (res) > 0;
        PQclear (res);
        if (!known) {
            rt_errf (err, errlen, "no team %s", to_team);
            return ROUTING_ERR_NOT_FOUND;
        }
    }
    {
        const char *v[2] = {conv, to_team};
        if (routing_run (db, S_CONV_TEAM, 2, v, err, errlen) != 0)
            return ROUTING_ERR_DB;
    }
    if (*previous && routing_release (db, previous, err, errlen) != 0)
        return ROUTING_ERR_DB;
    got = 0;
    if (strcmp (status, "open") == 0) {
        got = s_policy_claim (db, to_team, has_language ? language : NULL, skills,
                              *previous ? previous : NULL, now, cand, err, errlen);
        if (got < 0)
            return ROUTING_ERR_DB;
    }
    if (s_change (db, conv, got ? cand : NULL, previous, reason, by, now, out, err, errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
}

/* The tick's rebalancing of one operator offline past the grace: each
 * conversation to the policy (never back to them), else the queue. */
static int
s_rebalance (rt_db_t *db, const char *op, size_t batch, int64_t now, size_t *moved, char *err,
             size_t errlen)
{
    char lim[24];
    PGresult *held;
    int i;

    snprintf (lim, sizeof lim, "%zu", batch);
    {
        const char *v[2] = {op, lim};
        held = routing_exec (db, S_HELD, 2, v, err, errlen);
    }
    if (!held)
        return -1;
    for (i = 0; i < PQntuples (held); i++) {
        const char *conv = PQgetvalue (held, i, 0);
        char cand[ROUTING_OP_MAX + 1];
        int got = 0;
        if (routing_release (db, op, err, errlen) != 0)
            goto fail;
        if (strcmp (PQgetvalue (held, i, 1), "open") == 0) {
            got = s_policy_claim (db, s_col (held, i, 2), s_col (held, i, 3),
                                  PQgetvalue (held, i, 4), op, now, cand, err, errlen);
            if (got < 0)
                goto fail;
        }
        if (s_change (db, conv, got ? cand : NULL, op, ROUTING_REASON_REBALANCE, NULL, now, NULL,
                      err, errlen) != 0)
            goto fail;
        (*moved)++;
    }
    PQclear (held);
    return 0;
fail:
    PQclear (held);
    return -1;
}

/* Runs a tick's selecting statement (threshold, limit): owned rows or NULL. */
static PGresult *
s_due (rt_db_t *db, const char *stmt, int64_t threshold, size_t batch, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (threshold);
    char lim[24];
    const char *v[2] = {ts.s, lim};
    snprintf (lim, sizeof lim, "%zu", batch);
    return routing_exec (db, stmt, 2, v, err, errlen);
}

routing_status_t
routing_tick (rt_db_t *db, const routing_config_t *cfg, int64_t now, routing_tick_result_t *out,
              char *err, size_t errlen)
{
    routing_tick_result_t mine;
    routing_tick_result_t *r = out ? out : &mine;
    size_t batch = cfg->batch ? cfg->batch : 500;
    routing_ms_t ts = routing_ms (now);
    PGresult *res;
    bool room;
    int i;

    memset (r, 0, sizeof *r);
    if (cfg->heartbeat_timeout_ms > 0) {
        res = s_due (db, S_STALE, now - cfg->heartbeat_timeout_ms, batch, err, errlen);
        if (!res)
            return ROUTING_ERR_DB;
        r->timed_out = (size_t)PQntuples (res);
        PQclear (res);
    }
    res = s_due (db, S_GONE, now - cfg->offline_grace_ms, batch, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    for (i = 0; i < PQntuples (res); i++) {
        if (s_rebalance (db, PQgetvalue (res, i, 0), batch, now, &r->rebalanced, err, errlen) !=
            0) {
            PQclear (res);
            return ROUTING_ERR_DB;
        }
    }
    PQclear (res);

    res = s_due (db, S_WAKE_DUE, now, batch, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    for (i = 0; i < PQntuples (res); i++) {
        const char *conv = PQgetvalue (res, i, 0);
        const char *v[2] = {conv, ts.s};
        PGresult *w = routing_exec (db, S_WAKE, 2, v, err, errlen);
        bool queued;
        routing_assign_result_t a;
        if (!w)
            goto fail;
        queued = PQntuples (w) > 0 && strcmp (PQgetvalue (w, 0, 0), "t") == 0;
        PQclear (w);
        if (routing_timeline_add (db, conv, "status", NULL, NULL, false, NULL,
                                  "{\"status\":\"open\",\"from\":\"snoozed\",\"why\":\"due\"}", now,
                                  NULL, err, errlen) != 0 ||
            routing_sla_reopened (db, conv, false, now, err, errlen) != 0)
            goto fail;
        if (queued &&
            routing_assign (db, conv, NULL, false, ROUTING_REASON_NONE, now, &a, err, errlen) != 0)
            goto fail;
        r->woken++;
    }
    PQclear (res);

    /* With every seat taken the queue stays as it is: walking it would only
     * lock each queued conversation (against the consumer taking its
     * customer's next message) and try every operator for each. */
    res = routing_exec (db, S_ROOM, 0, NULL, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    room = PQntuples (res) > 0;
    PQclear (res);
    res = room ? s_due (db, S_QUEUE_DUE, now, batch, err, errlen) : NULL;
    if (room && !res)
        return ROUTING_ERR_DB;
    for (i = 0; room && i < PQntuples (res); i++) {
        routing_assign_result_t a;
        if (routing_assign (db, PQgetvalue (res, i, 0), NULL, false, ROUTING_REASON_NONE, now, &a,
                            err, errlen) != 0)
            goto fail;
        if (a.reason != ROUTING_REASON_NONE)
            r->assigned++;
    }
    PQclear (res);

    if (cfg->auto_resolve_ms > 0) {
        res = s_due (db, S_QUIET, now - cfg->auto_resolve_ms, batch, err, errlen);
        if (!res)
            return ROUTING_ERR_DB;
        for (i = 0; i < PQntuples (res); i++) {
            if (routing_resolve_at (db, PQgetvalue (res, i, 0), NULL, "auto", now, err, errlen) !=
                0)
                goto fail;
            r->resolved++;
        }
        PQclear (res);
    }
    if (routing_sla_tick (db, batch, now, &r->sla_warned, &r->sla_breached, err, errlen) != 0)
        return ROUTING_ERR_DB;
    return ROUTING_OK;
fail:
    PQclear (res);
    return ROUTING_ERR_DB;
}
