/*
 * merge: the conversation side of a customer merge and of its undo
 * (routing.h has the rules; identity_merge.c calls these hooks inside the
 * merge's transaction, after it moved identities and points).
 *
 * Why waiting messages are linked rather than moved: the unanswered counter
 * is the number of counted entries after the conversation's last reply, by
 * seq. Moving the absorbed conversation's entries into the survivor's would
 * put them, by their old seqs, before the survivor's last reply, and the
 * recount would call them answered when nobody answered them. Their copies
 * (linked_from naming the original) get new seqs, so they wait in the
 * survivor's conversation exactly as they waited before; the originals stay
 * in the absorbed conversation, which an undo reopens untouched. An undo
 * then deletes the copies (a call-back marked done on its copy is marked
 * done on its original first) and recounts.
 *
 * The merge's steps, with both customers' rows locked by identity:
 *   1. lock both customers' open conversations (in id order);
 *   2. move every conversation of the absorbed customer but the one to be
 *      joined to the survivor (resolved ones, and the open one when the
 *      survivor has none), recording their ids;
 *   3. when both have one open: link the waiting entries, resolve the
 *      absorbed conversation with merged_into (recording its state), recount
 *      the survivor's, reopen it when it was pending or snoozed, release the
 *      absorbed conversation's operator, assign the survivor's when nobody
 *      has it, and hand the freed room out.
 * The undo runs the same steps backwards from the record, and recounts
 * instead of restoring numbers, so messages that arrived since count where
 * they are.
 *
 * SLA clocks follow the statuses as sla_store.h's hooks have them: the
 * absorbed conversation's stop when the merge closes it, the survivor's
 * paused clocks resume when the merge wakes it; the undo pauses them again
 * when it puts the survivor back to sleep, and restarts the reopened
 * conversation's resolution clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "identity.h"
#include "routing.h"
#include "routing_int.h"
#include "sla_store.h"
#include "rt_clock.h"
#include "rt_log.h"

#define S_LOCK      "routing_merge_lock"
#define S_MOVE      "routing_merge_move"
#define S_LINK      "routing_merge_link"
#define S_CLOSE     "routing_merge_close"
#define S_RECOUNT   "routing_merge_recount"
#define S_JOIN      "routing_merge_join"
#define S_BACK      "routing_unmerge_back"
#define S_DONE_BACK "routing_unmerge_done_back"
#define S_UNLINK    "routing_unmerge_unlink"
#define S_CLAIM     "routing_unmerge_claim"
#define S_REOPEN    "routing_unmerge_reopen"
#define S_CHANNEL   "routing_unmerge_channel"
#define S_RESTORE   "routing_unmerge_restore"

/* The last reply of conversation $1, by seq (0 for none). */
#define S_LAST_REPLY                                                                               \
    "COALESCE((SELECT max(o.seq) FROM routing.timeline o WHERE o.conversation_id = $1::uuid"       \
    " AND o.kind = 'outbound'), 0)"

static const routing_stmt_t s_stmts[] = {
    {S_LOCK, "SELECT id, customer_id FROM routing.conversations"
             " WHERE customer_id IN ($1::uuid, $2::uuid) AND status <> 'resolved'"
             " ORDER BY id FOR UPDATE"},
    /* $1 survivor, $2 absorbed, $3 the conversation joined instead (NULL). */
    {S_MOVE, "UPDATE routing.conversations SET customer_id = $1::uuid WHERE customer_id = $2::uuid"
             " AND id IS DISTINCT FROM $3::uuid RETURNING id"},
    /* $1 the absorbed conversation, $2 the survivor's: copies of what waits
     * (counted after the last reply) and of open call-backs (uncounted when
     * answered), in their order. */
    {S_LINK, "INSERT INTO routing.timeline (conversation_id, kind, channel, counted, operator_id,"
             " body, occurred_at, linked_from, origin)"
             " SELECT $2::uuid, t.kind, t.channel, t.counted AND t.seq > " S_LAST_REPLY ","
             " t.operator_id, t.body, t.occurred_at, t.seq, t.origin FROM routing.timeline t"
             " WHERE t.conversation_id = $1::uuid AND ((t.counted AND t.seq > " S_LAST_REPLY ")"
             " OR (t.kind = 'call_back' AND t.done_at IS NULL)) ORDER BY t.seq RETURNING seq"},
    /* $1 absorbed conversation, $2 survivor's, $3 survivor, $4 now. The
     * counters stay as they were: a resolved conversation counts nowhere,
     * and the undo reopens it with them. */
    {S_CLOSE,
     "UPDATE routing.conversations c SET status = 'resolved', resolved_at = " ROUTING_TS (
         4) ","
            " snoozed_until = NULL, queued_since = NULL, manager_until = NULL,"
            " merged_into = $2::uuid, customer_id = $3::uuid, version = c.version + 1"
            " FROM (SELECT id, status, snoozed_until, queued_since, manager_until, assignee"
            " FROM routing.conversations WHERE id = $1::uuid) o WHERE c.id = o.id"
            " RETURNING o.status, " ROUTING_MS ("o.snoozed_until") ", " ROUTING_MS (
                "o.queued_since") ", " ROUTING_MS ("o.manager_until") ", o.assignee"},
    /* The counter and the wait from the timeline itself. */
    {S_RECOUNT, "UPDATE routing.conversations c SET unanswered = r.n, waiting_since = r.since"
                " FROM (SELECT count(*)::int AS n, min(t.occurred_at) AS since"
                " FROM routing.timeline t WHERE t.conversation_id = $1::uuid AND t.counted"
                " AND t.seq > " S_LAST_REPLY ") r WHERE c.id = $1::uuid"},
    /* $1 survivor's conversation (recounted), $2 the absorbed one, $3 now:
     * the reply channel of the later inbound message of the two; pending or
     * snoozed with something waiting: open again. */
    {S_JOIN,
     "UPDATE routing.conversations s SET"
     " channel = CASE WHEN a.last_inbound_at > s.last_inbound_at OR s.last_inbound_at IS NULL"
     " THEN a.channel ELSE s.channel END,"
     " inbox = CASE WHEN a.last_inbound_at > s.last_inbound_at OR s.last_inbound_at IS NULL"
     " THEN a.inbox ELSE s.inbox END,"
     " last_inbound_at = GREATEST(s.last_inbound_at, a.last_inbound_at),"
     " status = CASE WHEN o.reopen THEN 'open' ELSE s.status END,"
     " snoozed_until = CASE WHEN o.reopen THEN NULL ELSE s.snoozed_until END,"
     " queued_since = CASE WHEN o.reopen AND s.assignee IS NULL"
     " THEN COALESCE(s.waiting_since, " ROUTING_TS (
         3) ") ELSE s.queued_since END"
            " FROM routing.conversations a, (SELECT status, snoozed_until,"
            " unanswered > 0 AND status IN ('pending', 'snoozed') AS reopen"
            " FROM routing.conversations WHERE id = $1::uuid) o"
            " WHERE s.id = $1::uuid AND a.id = $2::uuid"
            " RETURNING o.status, " ROUTING_MS ("o.snoozed_until") ", o.reopen,"
                                                                   " COALESCE(s.assignee, ''), "
                                                                   "s.status"},
    /* $1 survivor, $2 absorbed, $3 the ids moved (a JSON array). */
    {S_BACK, "UPDATE routing.conversations SET customer_id = $2::uuid WHERE customer_id = $1::uuid"
             " AND id IN (SELECT (jsonb_array_elements_text($3::jsonb))::uuid)"},
    /* $1 survivor's conversation, $2 the copies' seqs (a JSON array). */
    {S_DONE_BACK,
     "UPDATE routing.timeline o SET done_at = l.done_at, done_by = l.done_by,"
     " done_event = l.done_event FROM routing.timeline l WHERE l.conversation_id = $1::uuid"
     " AND l.seq IN (SELECT (jsonb_array_elements_text($2::jsonb))::bigint)"
     " AND o.seq = l.linked_from AND l.done_at IS NOT NULL AND o.done_at IS NULL"},
    {S_UNLINK, "DELETE FROM routing.timeline WHERE conversation_id = $1::uuid"
               " AND linked_from IS NOT NULL"
               " AND seq IN (SELECT (jsonb_array_elements_text($2::jsonb))::bigint)"},
    /* Room again on the absorbed conversation's operator; presence is
     * theirs to keep (it was theirs before). */
    {S_CLAIM, "UPDATE routing.operators SET open_count = open_count + 1 WHERE id = $1"
              " AND open_count < capacity AND disabled_at IS NULL RETURNING id"},
    /* $1 the conversation, $2 absorbed, $3 status, $4 snoozed_until,
     * $5 queued_since, $6 manager_until, $7 assignee (NULL: the queue),
     * $8 now. */
    {S_REOPEN, "UPDATE routing.conversations SET customer_id = $2::uuid, status = $3,"
               " snoozed_until = " ROUTING_TS (
                   4) ", resolved_at = NULL, merged_into = NULL, assignee = $7,"
                      " queued_since = CASE WHEN $7::text IS NULL AND $3 = 'open'"
                      " THEN COALESCE(" ROUTING_TS (5) ", " ROUTING_TS (
                          8) ") END,"
                             " manager_until = " ROUTING_TS (
                                 6) ", version = version + 1 WHERE id = $1::uuid"},
    /* The reply channel and the last inbound time from the timeline. */
    {S_CHANNEL,
     "UPDATE routing.conversations c SET channel = x.channel,"
     " inbox = COALESCE(x.body->>'inbox', c.inbox), last_inbound_at = x.at"
     " FROM (SELECT t.channel, t.body, (SELECT max(m.occurred_at) FROM routing.timeline m"
     " WHERE m.conversation_id = $1::uuid AND m.counted) AS at FROM routing.timeline t"
     " WHERE t.conversation_id = $1::uuid AND t.counted AND t.channel IS NOT NULL"
     " ORDER BY t.seq DESC LIMIT 1) x WHERE c.id = $1::uuid"},
    /* Pending or snoozed again, as the merge found it, if still open. */
    {S_RESTORE, "UPDATE routing.conversations SET status = $2, snoozed_until = " ROUTING_TS (
                    3) ","
                       " queued_since = NULL WHERE id = $1::uuid AND status = 'open'"},
};
#define S_NSTMTS (sizeof s_stmts / sizeof s_stmts[0])

/* The text of a column, NULL for SQL NULL. */
static const char *
s_col (PGresult *res, int row, int col)
{
    return PQgetisnull (res, row, col) ? NULL : PQgetvalue (res, row, col);
}

/* A JSON string, or null for NULL. */
static json_t *
s_str (const char *s)
{
    return s ? json_string (s) : json_null ();
}

/* A status entry of the merge or its undo in the timeline. */
static int
s_entry (rt_db_t *db, const char *conv, const char *status, const char *from, const char *why,
         const char *other_key, const char *other, int64_t now, char *err, size_t errlen)
{
    json_t *j = json_pack ("{s:s, s:s, s:s, s:s}", "status", status, "from", from, "why", why,
                           other_key, other);
    char *body = j ? json_dumps (j, JSON_COMPACT) : NULL;
    int rc;
    json_decref (j);
    if (!body) {
        rt_errf (err, errlen, "merge entry: out of memory");
        return -1;
    }
    rc = routing_timeline_add (db, conv, "status", NULL, NULL, false, NULL, body, now, NULL, err,
                               errlen);
    free (body);
    return rc;
}

/* A JSON array of a result's first column (ids or seqs; seqs as
 * numbers). */
static json_t *
s_column_array (PGresult *res, bool numbers)
{
    json_t *a = json_array ();
    int i;
    for (i = 0; a && i < PQntuples (res); i++)
        json_array_append_new (a, numbers ? json_integer (atoll (PQgetvalue (res, i, 0)))
                                          : json_string (PQgetvalue (res, i, 0)));
    return a;
}

/* Step 3 of the merge: joins conversation ca (the absorbed customer's)
 * into cs (the survivor's); *joined gets its record (owned). */
static int
s_join (rt_db_t *db, const char *survivor, const char *ca, const char *cs, int64_t now,
        json_t **joined, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    char from_status[16], into_status[16], was[16], assignee[ROUTING_OP_MAX + 1] = "";
    json_t *j = json_object ();
    PGresult *res;
    bool reopen;

    *joined = j;
    if (!j)
        goto oom;
    json_object_set_new (j, "from", json_string (ca));
    json_object_set_new (j, "into", json_string (cs));
    {
        const char *v[2] = {ca, cs};
        res = routing_exec (db, S_LINK, 2, v, err, errlen);
    }
    if (!res)
        return -1;
    json_object_set_new (j, "linked", s_column_array (res, true));
    PQclear (res);
    {
        const char *v[4] = {ca, cs, survivor, ts.s};
        res = routing_exec (db, S_CLOSE, 4, v, err, errlen);
    }
    if (!res)
        return -1;
    snprintf (from_status, sizeof from_status, "%s", PQgetvalue (res, 0, 0));
    json_object_set_new (j, "from_status", json_string (from_status));
    json_object_set_new (j, "from_snoozed_until", s_str (s_col (res, 0, 1)));
    json_object_set_new (j, "from_queued_since", s_str (s_col (res, 0, 2)));
    json_object_set_new (j, "from_manager_until", s_str (s_col (res, 0, 3)));
    json_object_set_new (j, "from_assignee", s_str (s_col (res, 0, 4)));
    snprintf (assignee, sizeof assignee, "%s", s_col (res, 0, 4) ? PQgetvalue (res, 0, 4) : "");
    PQclear (res);
    /* Closed by the merge: its clocks stop, as a resolution's do. */
    if (routing_sla_resolved (db, ca, now, err, errlen) != 0)
        return -1;
    {
        const char *v[1] = {cs};
        if (routing_run (db, S_RECOUNT, 1, v, err, errlen) != 0)
            return -1;
    }
    {
        const char *v[3] = {cs, ca, ts.s};
        res = routing_exec (db, S_JOIN, 3, v, err, errlen);
    }
    if (!res)
        return -1;
    json_object_set_new (j, "into_status", json_string (PQgetvalue (res, 0, 0)));
    json_object_set_new (j, "into_snoozed_until", s_str (s_col (res, 0, 1)));
    reopen = strcmp (PQgetvalue (res, 0, 2), "t") == 0;
    json_object_set_new (j, "into_reopened", json_boolean (reopen));
    snprintf (into_status, sizeof into_status, "%s", PQgetvalue (res, 0, 4));
    snprintf (was, sizeof was, "%s", PQgetvalue (res, 0, 0));
    {
        bool unassigned = PQgetvalue (res, 0, 3)[0] == '\0';
        PQclear (res);
        if (s_entry (db, ca, "resolved", from_status, "merged", "into", cs, now, err, errlen) !=
                0 ||
            s_entry (db, cs, into_status, was, "merged", "joined", ca, now, err, errlen) != 0)
            return -1;
        /* Woken by the absorbed customer's waiting messages: its paused
         * clocks run again. */
        if (reopen && routing_sla_reopened (db, cs, false, now, err, errlen) != 0)
            return -1;
        if (*assignee && routing_release (db, assignee, err, errlen) != 0)
            return -1;
        if (unassigned && strcmp (into_status, "open") == 0) {
            routing_assign_result_t a;
            if (routing_assign (db, cs, NULL, false, ROUTING_REASON_NONE, now, &a, err, errlen) !=
                0)
                return -1;
        }
        if (*assignee && routing_hand_out (db, assignee, now, NULL, err, errlen) != 0)
            return -1;
    }
    return 0;
oom:
    rt_errf (err, errlen, "merge: out of memory");
    return -1;
}

/* identity_hooks_t.on_merge: the steps in the file's head. */
static int
s_on_merge (rt_db_t *db, const char *survivor, const char *absorbed, json_t *moved, void *arg,
            char *err, size_t errlen)
{
    char ca[ROUTING_ID_LEN + 1] = "", cs[ROUTING_ID_LEN + 1] = "";
    json_t *mine = json_object (), *joined = NULL;
    PGresult *res;
    int i;

    (void)arg;
    if (!mine) {
        rt_errf (err, errlen, "merge: out of memory");
        return -1;
    }
    json_object_set_new (moved, "routing", mine);
    {
        const char *v[2] = {survivor, absorbed};
        res = routing_exec (db, S_LOCK, 2, v, err, errlen);
    }
    if (!res)
        return -1;
    for (i = 0; i < PQntuples (res); i++)
        snprintf (strcmp (PQgetvalue (res, i, 1), survivor) == 0 ? cs : ca, ROUTING_ID_LEN + 1,
                  "%s", PQgetvalue (res, i, 0));
    PQclear (res);
    {
        const char *v[3] = {survivor, absorbed, *ca && *cs ? ca : NULL};
        res = routing_exec (db, S_MOVE, 3, v, err, errlen);
    }
    if (!res)
        return -1;
    json_object_set_new (mine, "conversations", s_column_array (res, false));
    PQclear (res);
    if (!*ca || !*cs) {
        json_object_set_new (mine, "joined", json_null ());
        return 0;
    }
    if (s_join (db, survivor, ca, cs, rt_clock_now_ms (), &joined, err, errlen) != 0) {
        json_decref (joined);
        return -1;
    }
    json_object_set_new (mine, "joined", joined);
    rt_log (RT_LOG_INFO, "conversations joined by a merge", rt_log_str ("from", ca),
            rt_log_str ("into", cs));
    return 0;
}

/* A string member of a record, NULL when absent or null. */
static const char *
s_get (const json_t *j, const char *key)
{
    return json_string_value (json_object_get (j, key));
}

/* The undo of s_join, from its record. */
static int
s_unjoin (rt_db_t *db, const char *absorbed, const json_t *j, int64_t now, char *err, size_t errlen)
{
    routing_ms_t ts = routing_ms (now);
    const char *ca = s_get (j, "from"), *cs = s_get (j, "into");
    const char *status = s_get (j, "from_status"), *assignee = s_get (j, "from_assignee");
    char *linked = json_dumps (json_object_get (j, "linked"), JSON_COMPACT | JSON_ENCODE_ANY);
    bool claimed = false;
    int rc = -1;

    if (!ca || !cs || !status || !linked) {
        rt_errf (err, errlen, "unmerge: the conversations' record is incomplete");
        goto cleanup;
    }
    {
        const char *v[2] = {cs, linked};
        if (routing_run (db, S_DONE_BACK, 2, v, err, errlen) != 0 ||
            routing_run (db, S_UNLINK, 2, v, err, errlen) != 0)
            goto cleanup;
    }
    if (assignee) {
        const char *v[1] = {assignee};
        PGresult *res = routing_exec (db, S_CLAIM, 1, v, err, errlen);
        if (!res)
            goto cleanup;
        claimed = PQntuples (res) > 0;
        PQclear (res);
    }
    {
        const char *v[8] = {ca,
                            absorbed,
                            status,
                            s_get (j, "from_snoozed_until"),
                            s_get (j, "from_queued_since"),
                            s_get (j, "from_manager_until"),
                            claimed ? assignee : NULL,
                            ts.s};
        const char *r1[1] = {ca}, *r2[1] = {cs};
        if (routing_run (db, S_REOPEN, 8, v, err, errlen) != 0 ||
            routing_run (db, S_RECOUNT, 1, r1, err, errlen) != 0 ||
            routing_run (db, S_RECOUNT, 1, r2, err, errlen) != 0 ||
            routing_run (db, S_CHANNEL, 1, r2, err, errlen) != 0)
            goto cleanup;
    }
    if (json_is_true (json_object_get (j, "into_reopened"))) {
        const char *v[3] = {cs, s_get (j, "into_status"), s_get (j, "into_snoozed_until")};
        if (!v[1]) {
            rt_errf (err, errlen, "unmerge: the conversations' record is incomplete");
            goto cleanup;
        }
        if (routing_run (db, S_RESTORE, 3, v, err, errlen) != 0 ||
            routing_sla_pause (db, cs, now, err, errlen) != 0)
            goto cleanup;
    }
    /* Open again: its resolution clock starts afresh, as a reopen's does
     * (the response clock starts with its next message). */
    if (strcmp (status, "open") == 0 && routing_sla_reopened (db, ca, true, now, err, errlen) != 0)
        goto cleanup;
    if (s_entry (db, ca, status, "resolved", "unmerged", "from", cs, now, err, errlen) != 0 ||
        s_entry (db, cs, "open", "open", "unmerged", "parted", ca, now, err, errlen) != 0)
        goto cleanup;
    /* Their operator had no room left: the queue, as any other. */
    if (assignee && !claimed && strcmp (status, "open") == 0) {
        routing_assign_result_t a;
        if (routing_assign (db, ca, NULL, false, ROUTING_REASON_NONE, now, &a, err, errlen) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    free (linked);
    return rc;
}

/* identity_hooks_t.on_unmerge. */
static int
s_on_unmerge (rt_db_t *db, const char *survivor, const char *absorbed, const json_t *moved,
              void *arg, char *err, size_t errlen)
{
    const json_t *mine = json_object_get (moved, "routing");
    const json_t *joined = json_object_get (mine, "joined");
    char *ids;
    int rc;

    (void)arg;
    /* A merge recorded before routing took part moved no conversation. */
    if (!json_is_object (mine))
        return 0;
    ids = json_dumps (json_object_get (mine, "conversations"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!ids) {
        rt_errf (err, errlen, "unmerge: out of memory");
        return -1;
    }
    {
        const char *v[3] = {survivor, absorbed, ids};
        rc = routing_run (db, S_BACK, 3, v, err, errlen);
    }
    free (ids);
    if (rc != 0)
        return -1;
    if (json_is_object (joined) &&
        s_unjoin (db, absorbed, joined, rt_clock_now_ms (), err, errlen) != 0)
        return -1;
    return 0;
}

int
routing_merge_hooks (rt_db_t *db, identity_hooks_t *hooks, char *err, size_t errlen)
{
    size_t i;
    for (i = 0; i < S_NSTMTS; i++) {
        if (rt_db_prepare (db, s_stmts[i].name, s_stmts[i].sql) != 0) {
            rt_errf (err, errlen, "preparing %s: %s", s_stmts[i].name, rt_db_error (db));
            return -1;
        }
    }
    memset (hooks, 0, sizeof *hooks);
    hooks->on_merge = s_on_merge;
    hooks->on_unmerge = s_on_unmerge;
    return 0;
}
