/*
 * events: what else goes into a conversation's timeline besides its
 * messages: a missed call's call-back item, marked done and counted, and
 * the customer's order and shipment events (routing.h has the rules;
 * conversation.c opens the call-backs as routing_inbound takes a missed
 * call, and closes them when the shop calls the number back).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "routing.h"
#include "routing_int.h"
#include "rt_clock.h"
#include "rt_log.h"

#define S_CB_DONE     "routing_callback_done"
#define S_CB_GET      "routing_callback_get"
#define S_CB_COUNT_OP "routing_callback_count_operator"
#define S_CB_COUNT_TM "routing_callback_count_team"
#define S_ORDER_CONV  "routing_order_conv"

/* Open call-backs in conversations that are not resolved. */
#define S_CB_COUNT                                                                                 \
    "SELECT count(*) FROM routing.timeline t JOIN routing.conversations c"                         \
    " ON c.id = t.conversation_id WHERE t.kind = 'call_back' AND t.done_at IS NULL"                \
    " AND c.status <> 'resolved'"

const routing_stmt_t routing_event_stmts[] = {
    /* $1 the conversation, $2 the item's seq, $3 now, $4 the operator. */
    {S_CB_DONE, "UPDATE routing.timeline SET done_at = to_timestamp($3::float8 / 1000),"
                " done_by = $4 WHERE seq = $2::bigint AND conversation_id = $1::uuid"
                " AND kind = 'call_back' AND done_at IS NULL RETURNING seq"},
    {S_CB_GET, "SELECT done_at IS NOT NULL FROM routing.timeline WHERE seq = $2::bigint"
               " AND conversation_id = $1::uuid AND kind = 'call_back'"},
    {S_CB_COUNT_OP, S_CB_COUNT " AND c.assignee = $1"},
    {S_CB_COUNT_TM, S_CB_COUNT " AND c.team_id = $1"},
    {S_ORDER_CONV, "SELECT id FROM routing.conversations WHERE customer_id = $1::uuid"
                   " ORDER BY status <> 'resolved' DESC, created_at DESC, id DESC LIMIT 1"},
};
const size_t routing_event_nstmts = sizeof routing_event_stmts / sizeof routing_event_stmts[0];

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

routing_status_t
routing_callback_done (rt_db_t *db, const char *conv, int64_t item, const char *by, char *err,
                       size_t errlen)
{
    routing_ms_t seq = routing_ms (item), ts = routing_ms (rt_clock_now_ms ());
    const char *v[4] = {conv, seq.s, ts.s, by};
    PGresult *res;
    bool done;

    if (!routing_id_ok (conv) || item <= 0 || !routing_set (by)) {
        rt_errf (err, errlen, "a call-back done names a conversation, the item and the operator");
        return ROUTING_ERR_INVALID;
    }
    res = routing_exec (db, S_CB_DONE, 4, v, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    done = PQntuples (res) > 0;
    PQclear (res);
    if (done)
        return ROUTING_OK;
    res = routing_exec (db, S_CB_GET, 2, v, err, errlen);
    if (!res)
        return ROUTING_ERR_DB;
    done = PQntuples (res) > 0;
    PQclear (res);
    if (!done) {
        rt_errf (err, errlen, "no call-back %lld in conversation %s", (long long)item, conv);
        return ROUTING_ERR_NOT_FOUND;
    }
    return ROUTING_OK;
}

routing_status_t
routing_callbacks_open (rt_db_t *db, const char *operator_id, const char *team_id, long long *out,
                        char *err, size_t errlen)
{
    const char *v[1];
    PGresult *res;

    *out = 0;
    if (routing_set (operator_id) == routing_set (team_id)) {
        rt_errf (err, errlen, "call-backs of an operator or of a team: name exactly one");
        return ROUTING_ERR_INVALID;
    }
    v[0] = routing_set (operator_id) ? operator_id : team_id;
    res = routing_exec (db, routing_set (operator_id) ? S_CB_COUNT_OP : S_CB_COUNT_TM, 1, v, err,
                        errlen);
    if (!res)
        return ROUTING_ERR_DB;
    *out = atoll (PQgetvalue (res, 0, 0));
    PQclear (res);
    return ROUTING_OK;
}

routing_status_t
routing_order_event (rt_db_t *db, const char *customer_id, const char *event_id, const char *kind,
                     const char *summary, int64_t occurred_at, char *conversation_id, bool *added,
                     char *err, size_t errlen)
{
    char conv[ROUTING_ID_LEN + 1] = "";
    json_t *j = NULL;
    PGresult *res;
    bool is_new = false;

    if (conversation_id)
        conversation_id[0] = '\0';
    if (added)
        *added = false;
    if (!routing_id_ok (customer_id) || !routing_id_ok (event_id) || !kind ||
        (strcmp (kind, "order") != 0 && strcmp (kind, "shipment") != 0)) {
        rt_errf (err, errlen, "an order event names a customer, an event id and order or shipment");
        return ROUTING_ERR_INVALID;
    }
    j = summary ? json_loads (summary, 0, NULL) : NULL;
    if (!json_is_object (j)) {
        json_decref (j);
        rt_errf (err, errlen, "an order event's summary is a JSON object");
        return ROUTING_ERR_INVALID;
    }
    json_decref (j);
    {
        const char *v[1] = {event_id};
        res = routing_exec (db, ROUTING_EVENT_FIND, 1, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    if (PQntuples (res) > 0) {
        s_copy (conv, sizeof conv, PQgetvalue (res, 0, 0));
        PQclear (res);
        goto done;
    }
    PQclear (res);
    {
        const char *v[1] = {customer_id};
        res = routing_exec (db, S_ORDER_CONV, 1, v, err, errlen);
    }
    if (!res)
        return ROUTING_ERR_DB;
    if (PQntuples (res) > 0)
        s_copy (conv, sizeof conv, PQgetvalue (res, 0, 0));
    PQclear (res);
    if (!*conv)
        return ROUTING_OK;
    if (routing_timeline_add (db, conv, kind, event_id, NULL, false, NULL, summary,
                              occurred_at > 0 ? occurred_at : rt_clock_now_ms (), &is_new, err,
                              errlen) != 0)
        return ROUTING_ERR_DB;
done:
    if (conversation_id)
        s_copy (conversation_id, ROUTING_ID_LEN + 1, conv);
    if (added)
        *added = is_new;
    return ROUTING_OK;
}
