/*
 * assign_many: the first step of routing_assign (the customer's manager)
 * for a round's conversations at once: one statement to read them, one to
 * lock their managers in id order, one to claim, one to assign, one for
 * the timeline and one for the outbox, instead of six per conversation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing.h"
#include "routing_int.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_outbox.h"

#define S_MGR_READ  "routing_managers_read"
#define S_MGR_LOCK  "routing_managers_lock"
#define S_MGR_CLAIM "routing_managers_claim"
#define S_MGR_SET   "routing_managers_set"

const routing_stmt_t routing_assign_many_stmts[] = {
    /* routing_assign_managers: of the (locked) conversations $1, the open
     * ones nobody has, with their customer's manager. */
    {S_MGR_READ, "SELECT c.id::text, cu.manager FROM routing.conversations c"
                 " JOIN crm.customers cu ON cu.id = c.customer_id WHERE c.id = ANY ($1::uuid[])"
                 " AND c.status = 'open' AND c.assignee IS NULL AND cu.manager IS NOT NULL"},
    /* Operators' rows in one order, so two replicas' rounds never wait on
     * each other in a circle. */
    {S_MGR_LOCK, "SELECT id FROM routing.operators WHERE id = ANY ($1::text[]) ORDER BY id"
                 " FOR NO KEY UPDATE"},
    /* S_OP_CLAIM for every conversation at once ($1 a manager a
     * conversation): a manager takes all of theirs or, short of room for
     * all, none here (routing_assign then claims one at a time). */
    {S_MGR_CLAIM,
     "UPDATE routing.operators o SET open_count = o.open_count + d.n,"
     " last_assigned_at = " ROUTING_TS (2) " FROM (SELECT m, count(*)::int AS n"
                                           " FROM unnest($1::text[]) AS m GROUP BY m) d"
                                           " WHERE o.id = d.m"
                                           " AND o.open_count + d.n <= o.capacity"
                                           " AND o.presence = 'online'"
                                           " AND o.disabled_at IS NULL RETURNING o.id"},
    /* S_SET for many: $1 conversations, $2 their operators. */
    {S_MGR_SET, "UPDATE routing.conversations c SET assignee = u.op,"
                " team_id = COALESCE(o.team_id, c.team_id), queued_since = NULL,"
                " manager_until = NULL, version = c.version + 1"
                " FROM unnest($1::uuid[], $2::text[]) AS u(conv, op)"
                " JOIN routing.operators o ON o.id = u.op WHERE c.id = u.conv"
                " RETURNING c.id::text, c.version, c.customer_id::text, c.channel,"
                " COALESCE(c.team_id, ''), c.assignee"},
};
const size_t routing_assign_many_nstmts =
    sizeof routing_assign_many_stmts / sizeof routing_assign_many_stmts[0];

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

int
routing_claim_managers (rt_db_t *db, const char *const *manager, size_t n, int64_t now,
                        bool *claimed, char *err, size_t errlen)
{
    rt_buf_t a = {0};
    routing_ms_t ts = routing_ms (now);
    PGresult *res = NULL;
    int rc = -1;

    for (size_t i = 0; i < n; i++)
        claimed[i] = false;
    if (n == 0)
        return 0;
    if (!rt_buf_array_of (&a, manager, n)) {
        rt_errf (err, errlen, "managers: out of memory");
        goto cleanup;
    }
    {
        const char *v[2] = {a.data, ts.s};
        res = routing_exec (db, S_MGR_LOCK, 1, v, err, errlen);
        if (!res)
            goto cleanup;
        PQclear (res);
        res = routing_exec (db, S_MGR_CLAIM, 2, v, err, errlen);
    }
    if (!res)
        goto cleanup;
    for (int k = 0; k < PQntuples (res); k++) {
        for (size_t i = 0; i < n; i++)
            claimed[i] = claimed[i] || strcmp (PQgetvalue (res, k, 0), manager[i]) == 0;
    }
    rc = 0;
cleanup:
    PQclear (res);
    rt_buf_free (&a);
    return rc;
}

int
routing_announce_many (rt_db_t *db, const routing_assigned_t *a, size_t n, routing_reason_t reason,
                       int64_t now, char *err, size_t errlen)
{
    ProtobufCBinaryData *packed = calloc (n + 1, sizeof *packed);
    routing_entry_t *entries = calloc (n + 1, sizeof *entries);
    char (*envelope)[ROUTING_ID_LEN + 1] = calloc (n + 1, sizeof *envelope);
    char **bodies = calloc (n + 1, sizeof *bodies);
    bool *added = calloc (n + 1, sizeof *added);
    size_t i, made = 0;
    int rc = -1;

    if (!packed || !entries || !envelope || !bodies || !added) {
        rt_errf (err, errlen, "assignments: out of memory");
        goto cleanup;
    }
    for (i = 0; i < n; i++, made++) {
        if (routing_announce (a[i].conv, a[i].customer, a[i].channel, a[i].team, a[i].to, "",
                              reason, NULL, a[i].version, envelope[i], &packed[i], &bodies[i], err,
                              errlen) != 0)
            goto cleanup;
        entries[i] = (routing_entry_t){.conversation_id = a[i].conv,
                                       .kind = "assignment",
                                       .event_id = envelope[i],
                                       .body = bodies[i],
                                       .at = now};
    }
    if (n > 0 && rt_outbox_append_batch (db, packed, n) != 0) {
        rt_errf (err, errlen, "ConversationAssigned to the outbox: %s", rt_db_error (db));
        goto cleanup;
    }
    if (routing_timeline_add_many (db, entries, n, added, err, errlen) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    for (i = 0; i < made && packed && bodies; i++) {
        free (packed[i].data);
        free (bodies[i]);
    }
    free (packed);
    free (entries);
    free (envelope);
    free (bodies);
    free (added);
    return rc;
}

/* The texts of rows `rows` of res's column col as an array literal into a. */
static void
s_array_of (rt_buf_t *a, PGresult *res, const int *rows, size_t n, int col)
{
    rt_buf_array_begin (a);
    for (size_t i = 0; i < n; i++)
        rt_buf_array_text (a, PQgetvalue (res, rows[i], col));
    rt_buf_array_end (a);
}

int
routing_assign_managers (rt_db_t *db, const char *const *conv, size_t n, int64_t now,
                         routing_assign_result_t *out, bool *done, char *err, size_t errlen)
{
    rt_buf_t ids = {0}, a[2] = {{0}};
    PGresult *cand = NULL, *set = NULL;
    routing_assigned_t *told = NULL;
    const char **managers = NULL;
    bool *claimed = NULL;
    int *rows = NULL, ncand, nset = 0;
    size_t i, ntake = 0;
    int rc = -1;

    for (i = 0; i < n; i++) {
        done[i] = false;
        memset (&out[i], 0, sizeof out[i]);
    }
    if (n == 0)
        return 0;
    if (!rt_buf_array_of (&ids, conv, n))
        goto oom;
    {
        const char *v[1] = {ids.data};
        cand = routing_exec (db, S_MGR_READ, 1, v, err, errlen);
    }
    if (!cand)
        goto cleanup;
    ncand = PQntuples (cand);
    if (ncand == 0) {
        rc = 0;
        goto cleanup;
    }
    rows = malloc ((size_t)ncand * sizeof *rows);
    managers = malloc ((size_t)ncand * sizeof *managers);
    claimed = malloc ((size_t)ncand * sizeof *claimed);
    if (!rows || !managers || !claimed)
        goto oom;
    for (int r = 0; r < ncand; r++)
        managers[r] = PQgetvalue (cand, r, 1);
    if (routing_claim_managers (db, managers, (size_t)ncand, now, claimed, err, errlen) != 0)
        goto cleanup;
    /* The candidates whose manager took them all. */
    for (int r = 0; r < ncand; r++) {
        if (claimed[r])
            rows[ntake++] = r;
    }
    if (ntake == 0) {
        rc = 0;
        goto cleanup;
    }
    s_array_of (&a[0], cand, rows, ntake, 0);
    s_array_of (&a[1], cand, rows, ntake, 1);
    if (a[0].failed || a[1].failed)
        goto oom;
    {
        const char *v[2] = {a[0].data, a[1].data};
        set = routing_exec (db, S_MGR_SET, 2, v, err, errlen);
    }
    if (!set)
        goto cleanup;
    nset = PQntuples (set);
    told = calloc ((size_t)nset + 1, sizeof *told);
    if (!told)
        goto oom;
    for (int r = 0; r < nset; r++) {
        const char *id = PQgetvalue (set, r, 0);
        const char *to = PQgetvalue (set, r, 5);
        told[r] = (routing_assigned_t){.conv = id,
                                       .customer = PQgetvalue (set, r, 2),
                                       .channel = PQgetvalue (set, r, 3),
                                       .team = PQgetvalue (set, r, 4),
                                       .to = to,
                                       .version = atoll (PQgetvalue (set, r, 1))};
        for (i = 0; i < n; i++) {
            if (strcmp (conv[i], id) == 0) {
                done[i] = true;
                s_copy (out[i].assignee, sizeof out[i].assignee, to);
                out[i].reason = ROUTING_REASON_MANAGER;
            }
        }
    }
    if (routing_announce_many (db, told, (size_t)nset, ROUTING_REASON_MANAGER, now, err, errlen) !=
        0)
        goto cleanup;
    rc = 0;
    goto cleanup;
oom:
    rt_errf (err, errlen, "assignments: out of memory");
cleanup:
    free (told);
    free (rows);
    free (managers);
    free (claimed);
    PQclear (cand);
    PQclear (set);
    rt_buf_free (&ids);
    rt_buf_free (&a[0]);
    rt_buf_free (&a[1]);
    if (rc != 0)
        for (i = 0; i < n; i++)
            done[i] = false;
    return rc;
}
