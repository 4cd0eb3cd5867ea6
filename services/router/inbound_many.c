/*
 * inbound_many: routing_inbound for a round's messages at once.
 *
 * The same steps as routing_inbound (conversation.c), each one statement
 * over every event instead of one per event:
 *   1. the event ids already in the timeline: replays, nothing changes;
 *   2. each customer's conversation found or opened (INSERT ... ON
 *      CONFLICT, in customer order, so two replicas lock rows in one
 *      order), a new one born counting all its messages here, with its
 *      customer's earlier orders, and given at once to the customer's
 *      manager when they have room (claimed before the insert: one write
 *      of the row and its eight indexes, not two);
 *   3. the timeline entries, claimed by their event ids, in the events'
 *      order;
 *   4. the counters of the conversations that existed, one update each
 *      for all their messages (the reply channel the newest message's);
 *   5. assignment: the customers' managers claimed together
 *      (routing_assign_managers), the rest one conversation at a time
 *      (routing_assign);
 *   6. the SLA clocks, after the assignment (the team picks the policy);
 *   7. the stream's events, in sets: the triggers that would write them a
 *      row at a time stand aside meanwhile (routing 010).
 * Each conversation's row is locked from step 2 on, as in routing_inbound.
 */
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "routing.h"
#include "routing_int.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_uuid.h"
#include "sla_store.h"

#define S_EVENTS_FIND    "routing_events_find"
#define S_OPEN_MANY      "routing_conv_open_many"
#define S_CUST_STATE     "routing_customers_state"
#define S_COUNT_MANY     "routing_conv_inbound_many"
#define S_STREAM_SETS    "routing_stream_sets"
#define S_STREAM_MSGS    "routing_stream_messages"
#define S_STREAM_CHANGES "routing_stream_changes"

/* Unix ms as an array element (float8: to_timestamp takes seconds). */
#define S_TS(col) "to_timestamp(" col " / 1000)"

const routing_stmt_t routing_inbound_many_stmts[] = {
    {S_EVENTS_FIND, "SELECT t.event_id::text, t.conversation_id::text, COALESCE(c.assignee, ''),"
                    " c.unanswered FROM routing.timeline t"
                    " JOIN routing.conversations c ON c.id = t.conversation_id"
                    " WHERE t.event_id = ANY ($1::uuid[])"},
    /* S_CONV_OPEN for many customers ($1 fresh ids, $2 customers, $3
     * channels, $4 inboxes, $5 messages, $6 the first's instant, $7 the
     * last's, $8 now). */
    {S_OPEN_MANY,
     "INSERT INTO routing.conversations AS c (id, customer_id, channel, inbox, team_id, assignee,"
     " created_at, queued_since, unanswered, waiting_since, last_inbound_at, version)"
     " SELECT u.id, u.cu, u.ch, u.ib, (SELECT o.team_id FROM crm.customers cu"
     " JOIN routing.operators o ON o.id = cu.manager WHERE cu.id = u.cu), u.a,"
     " " ROUTING_TS (8) ", CASE WHEN u.a IS NULL THEN " ROUTING_TS (8) " END, u.n, " S_TS (
         "u.f") ", " S_TS ("u.l") ", CASE WHEN u.a IS NULL THEN 1 ELSE 2 END"
                                  " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[],"
                                  " $5::int[], $6::float8[], $7::float8[], $9::text[])"
                                  " AS u(id, cu, ch, ib, n, f, l, a) ORDER BY u.cu"
                                  " ON CONFLICT (customer_id) WHERE status <> 'resolved'"
                                  " DO UPDATE SET version = c.version"
                                  " RETURNING c.id::text, c.customer_id::text, c.assignee,"
                                  " c.team_id, c.status, c.unanswered, c.channel, c.version"},
    /* Of customers ($1, in their order, which is the order their rows are
     * locked in), their manager and their open conversation, locked, as
     * it is before the batch; one is opened for those who have none
     * (S_OPEN_MANY), given to the manager when they have room
     * (routing_claim_managers). LATERAL with a LIMIT: one probe of the
     * open conversations' index a customer (an EXISTS was planned as a
     * hashed scan of them all: 7 ms a round). */
    {S_CUST_STATE,
     "SELECT u.cu::text, cu.manager, o.id::text, o.assignee, o.team_id, o.status, o.unanswered,"
     " o.channel, o.version FROM unnest($1::uuid[]) WITH ORDINALITY AS u(cu, ord)"
     " JOIN crm.customers cu ON cu.id = u.cu"
     " LEFT JOIN LATERAL (SELECT c.id, c.assignee, c.team_id, c.status, c.unanswered, c.channel,"
     " c.version FROM routing.conversations c WHERE c.customer_id = u.cu"
     " AND c.status <> 'resolved' LIMIT 1 FOR UPDATE) o ON true ORDER BY u.ord"},
    /* S_CONV_INBOUND for many conversations ($1), each with its messages'
     * newest channel and inbox ($2, $3), count ($4), first and last
     * instants ($5, $6); $7 now. */
    {S_COUNT_MANY,
     "UPDATE routing.conversations c SET status = 'open', snoozed_until = NULL,"
     " channel = CASE WHEN c.last_inbound_at > " S_TS (
         "u.l") " THEN c.channel ELSE u.ch END,"
                " inbox = CASE WHEN c.last_inbound_at > " S_TS (
                    "u.l") " THEN c.inbox ELSE u.ib END,"
                           " unanswered = c.unanswered + u.n, waiting_since = "
                           "LEAST(c.waiting_since, " S_TS (
                               "u.f") "),"
                                      " last_inbound_at = GREATEST(c.last_inbound_at, " S_TS (
                                          "u.l") "),"
                                                 " queued_since = CASE WHEN c.assignee IS NULL"
                                                 " THEN COALESCE(c.queued_since, " ROUTING_TS (
                                                     7) ") END"
                                                        " FROM unnest($1::uuid[], $2::text[], "
                                                        "$3::text[], $4::int[],"
                                                        " $5::float8[], $6::float8[]) AS u(id, ch, "
                                                        "ib, n, f, l)"
                                                        " WHERE c.id = u.id"
                                                        " RETURNING c.customer_id::text,"
                                                        " COALESCE(c.assignee, ''), c.unanswered"},
    /* The stream's triggers stand aside until S_STREAM_MSGS and
     * S_STREAM_CHANGES write the batch's events in sets (routing 010). */
    {S_STREAM_SETS, "SELECT set_config('routing.stream_sets', 'on', true)"},
    /* The events of the timeline entries $1, in their order. */
    {S_STREAM_MSGS,
     "INSERT INTO routing.stream (kind, conversation_id, team_id, assignee, payload)"
     " SELECT 'message', t.conversation_id, c.team_id, c.assignee,"
     " routing.stream_json(c, cu.name) || routing.stream_message_json(t)"
     " FROM routing.timeline t JOIN routing.conversations c ON c.id = t.conversation_id"
     " JOIN crm.customers cu ON cu.id = c.customer_id WHERE t.event_id = ANY ($1::uuid[])"
     " AND t.kind IN ('inbound', 'outbound', 'note', 'call_back') AND t.linked_from IS NULL"
     " ORDER BY t.seq"},
    /* The changes of conversations $1 against what each was ($2 assignee,
     * $3 team, $4 status, $5 unanswered), in the arrays' order; then the
     * triggers back at work, and the readers woken. */
    {S_STREAM_CHANGES,
     "WITH w AS (INSERT INTO routing.stream (kind, conversation_id, team_id, assignee,"
     " prev_team_id, prev_assignee, payload)"
     " SELECT routing.stream_change_kind(c.assignee, c.team_id, c.status, o.a, o.t, o.s),"
     " c.id, c.team_id, c.assignee, o.t, o.a,"
     " routing.stream_json(c, cu.name) || routing.stream_previous_json(o.a, o.t, o.s, o.u)"
     " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[])"
     " WITH ORDINALITY AS o(id, a, t, s, u, ord)"
     " JOIN routing.conversations c ON c.id = o.id JOIN crm.customers cu ON cu.id = c.customer_id"
     " WHERE c.assignee IS DISTINCT FROM o.a OR c.team_id IS DISTINCT FROM o.t"
     " OR c.status IS DISTINCT FROM o.s OR c.unanswered <> o.u ORDER BY o.ord RETURNING 1)"
     " SELECT set_config('routing.stream_sets', 'off', true), pg_notify('routing_stream', '')"},
};
const size_t routing_inbound_many_nstmts =
    sizeof routing_inbound_many_stmts / sizeof routing_inbound_many_stmts[0];

/* One customer's share of the events. */
typedef struct {
    const char *customer;              /* lent from the events */
    char fresh[ROUTING_ID_LEN + 1];    /* the id a new conversation gets */
    char conv[ROUTING_ID_LEN + 1];     /* their conversation */
    bool is_new;                       /* opened here */
    size_t first, newest;              /* events: the first, the newest */
    int n;                             /* events counted */
    int64_t first_at, last_at;         /* their instants */
    int unanswered;                    /* after the counters */
    char assignee[ROUTING_OP_MAX + 1]; /* after the assignment */
    routing_reason_t reason;           /* of an assignment here */
    bool waiting_for_manager;          /* queued for the manager */
    char born_to[ROUTING_OP_MAX + 1];  /* a new conversation's manager, claimed */
    bool born;                         /* opened with born_to as its operator */
    bool found;                        /* had a conversation open */
    bool counted;                      /* an event of theirs counted here */
    int64_t counted_at;                /* the first such event's instant */
    char channel[32];                  /* the reply channel, once found or opened */
    int64_t version;                   /* a new conversation's */
    /* The conversation before the batch (as opened, when new), for the
     * stream's events of what the batch changed; "" for NULL. */
    char old_assignee[ROUTING_OP_MAX + 1], old_team[ROUTING_OP_MAX + 1], old_status[16];
    bool old_assignee_null, old_team_null;
    int old_unanswered;
} s_cust_t;

/* One run: the events, their results, the customers. */
typedef struct {
    rt_db_t *db;
    const routing_inbound_t *in;
    routing_inbound_result_t *out;
    size_t n;
    int64_t now;
    int64_t *at;     /* each event's instant */
    size_t *cust;    /* each event's customer (index into custs) */
    bool *live;      /* not a replay */
    s_cust_t *custs; /* sorted by customer id */
    size_t ncusts;
    char *err;
    size_t errlen;
} s_run_t;

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

static int
s_cust_cmp (const void *a, const void *b)
{
    return strcmp (((const s_cust_t *)a)->customer, ((const s_cust_t *)b)->customer);
}

static s_cust_t *
s_cust_find (s_run_t *r, const char *customer)
{
    s_cust_t key = {.customer = customer};
    return bsearch (&key, r->custs, r->ncusts, sizeof *r->custs, s_cust_cmp);
}

static int
s_oom (s_run_t *r)
{
    rt_errf (r->err, r->errlen, "inbound messages: out of memory");
    return -1;
}

/* Event indices by event id, ties in the events' order (qsort_r's). */
static int
s_by_event (const void *a, const void *b, void *arg)
{
    const routing_inbound_t *in = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp (in[x].event_id, in[y].event_id);
    return c ? c : (x > y) - (x < y);
}

/* The first of the events (sorted by id in `by`) with that id, or -1. */
static long
s_event_find (const s_run_t *r, const size_t *by, const char *id)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp (r->in[by[mid]].event_id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n && strcmp (r->in[by[lo]].event_id, id) == 0 ? (long)lo : -1;
}

/* Step 1: replays (the timeline has the event, or an earlier event of
 * these has the same id). */
static int
s_replays (s_run_t *r)
{
    rt_buf_t ids = {0};
    PGresult *res = NULL;
    size_t i, *by = malloc (r->n * sizeof *by);
    int rc = -1;

    if (!by)
        return s_oom (r);
    for (i = 0; i < r->n; i++) {
        by[i] = i;
        r->live[i] = true;
    }
    qsort_r (by, r->n, sizeof *by, s_by_event, (void *)r->in);
    for (i = 1; i < r->n; i++) {
        if (strcmp (r->in[by[i]].event_id, r->in[by[i - 1]].event_id) == 0) {
            r->live[by[i]] = false;
            r->out[by[i]].replay = true; /* the same event twice here */
        }
    }
    rt_buf_array_begin (&ids);
    for (i = 0; i < r->n; i++)
        rt_buf_array_raw (&ids, r->in[i].event_id);
    rt_buf_array_end (&ids);
    if (ids.failed) {
        s_oom (r);
        goto cleanup;
    }
    {
        const char *v[1] = {ids.data};
        res = routing_exec (r->db, S_EVENTS_FIND, 1, v, r->err, r->errlen);
    }
    if (!res)
        goto cleanup;
    for (int row = 0; row < PQntuples (res); row++) {
        long k = s_event_find (r, by, PQgetvalue (res, row, 0));
        for (; k >= 0 && (size_t)k < r->n &&
               strcmp (r->in[by[k]].event_id, PQgetvalue (res, row, 0)) == 0;
             k++) {
            routing_inbound_result_t *o = &r->out[by[k]];
            r->live[by[k]] = false;
            o->replay = true;
            s_copy (o->conversation_id, sizeof o->conversation_id, PQgetvalue (res, row, 1));
            s_copy (o->assignee, sizeof o->assignee, PQgetvalue (res, row, 2));
            o->unanswered = atoi (PQgetvalue (res, row, 3));
        }
    }
    rc = 0;
cleanup:
    PQclear (res);
    rt_buf_free (&ids);
    free (by);
    return rc;
}

/* The customers of the live events, sorted, with their shares. */
static int
s_customers (s_run_t *r)
{
    size_t i, w;
    for (i = 0; i < r->n; i++) {
        if (!r->live[i])
            continue;
        r->custs[r->ncusts++] = (s_cust_t){.customer = r->in[i].customer_id};
    }
    qsort (r->custs, r->ncusts, sizeof *r->custs, s_cust_cmp);
    for (i = 0, w = 0; i < r->ncusts; i++) {
        if (w == 0 || strcmp (r->custs[w - 1].customer, r->custs[i].customer) != 0)
            r->custs[w++] = r->custs[i];
    }
    r->ncusts = w;
    for (i = 0; i < r->n; i++) {
        s_cust_t *c;
        if (!r->live[i])
            continue;
        c = s_cust_find (r, r->in[i].customer_id);
        r->cust[i] = (size_t)(c - r->custs);
        if (c->n == 0) {
            rt_uuid_t uuid = rt_uuid_v7 ();
            rt_uuid_format (&uuid, c->fresh);
            c->first = c->newest = i;
            c->first_at = c->last_at = r->at[i];
        }
        c->n++;
        if (r->at[i] < c->first_at)
            c->first_at = r->at[i];
        /* The newest, later events winning ties: the one the reply goes to. */
        if (r->at[i] >= c->last_at) {
            c->last_at = r->at[i];
            c->newest = i;
        }
    }
    return 0;
}

/* The per-customer arrays of S_OPEN_MANY and S_COUNT_MANY: which = true
 * for the new conversations' (with fresh ids and customers), false for the
 * existing ones'. n: each customer's count. */
static int
s_shares (s_run_t *r, rt_buf_t *a, bool open, const int *n)
{
    size_t i;
    int k, cols = open ? 8 : 6;
    for (k = 0; k < cols; k++)
        rt_buf_array_begin (&a[k]);
    for (i = 0; i < r->ncusts; i++) {
        const s_cust_t *c = &r->custs[i];
        const routing_inbound_t *in = &r->in[c->newest];
        routing_ms_t f = routing_ms (c->first_at), l = routing_ms (c->last_at);
        char count[16];
        k = 0;
        if (open) {
            if (c->found)
                continue;
            rt_buf_array_raw (&a[k++], c->fresh);
            rt_buf_array_raw (&a[k++], c->customer);
        } else {
            if (c->is_new || n[i] == 0)
                continue;
            rt_buf_array_raw (&a[k++], c->conv);
        }
        snprintf (count, sizeof count, "%d", n[i]);
        rt_buf_array_text (&a[k++], rt_channel_by_value (in->channel)->name);
        rt_buf_array_text (&a[k++], in->inbox ? in->inbox : "");
        rt_buf_array_raw (&a[k++], count);
        rt_buf_array_raw (&a[k++], f.s);
        rt_buf_array_raw (&a[k++], l.s);
        if (open) {
            if (*c->born_to)
                rt_buf_array_text (&a[k++], c->born_to);
            else
                rt_buf_array_raw (&a[k++], "NULL");
        }
    }
    for (k = 0; k < cols; k++) {
        rt_buf_array_end (&a[k]);
        if (a[k].failed)
            return s_oom (r);
    }
    return 0;
}

/* A conversation as found or opened (its id in c->conv already): from
 * column sc on, its assignee, team, status, unanswered, channel and
 * version, as it was before the batch (as opened, when new). */
static void
s_take_state (s_cust_t *c, PGresult *res, int row, int sc)
{
    c->is_new = strcmp (c->conv, c->fresh) == 0;
    /* A new conversation was nobody's before the batch, whoever it was
     * opened for: the stream tells its assignment. */
    c->old_assignee_null = c->is_new || PQgetisnull (res, row, sc);
    s_copy (c->old_assignee, sizeof c->old_assignee,
            c->old_assignee_null ? "" : PQgetvalue (res, row, sc));
    c->old_team_null = PQgetisnull (res, row, sc + 1);
    s_copy (c->old_team, sizeof c->old_team, PQgetvalue (res, row, sc + 1));
    s_copy (c->old_status, sizeof c->old_status, PQgetvalue (res, row, sc + 2));
    c->old_unanswered = atoi (PQgetvalue (res, row, sc + 3));
    s_copy (c->channel, sizeof c->channel, PQgetvalue (res, row, sc + 4));
    c->version = atoll (PQgetvalue (res, row, sc + 5));
}

/* Step 2's first half: the customers' open conversations, locked; the
 * managers of those who have none claimed for the conversations about to
 * be opened (born_to). */
static int
s_managers (s_run_t *r)
{
    const char **ids = calloc (r->ncusts + 1, sizeof *ids), **managers = NULL;
    s_cust_t **of = NULL;
    bool *claimed = NULL;
    rt_buf_t a = {0};
    PGresult *res = NULL;
    size_t i, k = 0;
    int rc = -1;

    if (!ids)
        return s_oom (r);
    for (i = 0; i < r->ncusts; i++)
        ids[i] = r->custs[i].customer;
    if (!rt_buf_array_of (&a, ids, r->ncusts)) {
        s_oom (r);
        goto cleanup;
    }
    {
        const char *v[1] = {a.data};
        res = routing_exec (r->db, S_CUST_STATE, 1, v, r->err, r->errlen);
    }
    if (!res)
        goto cleanup;
    managers = calloc ((size_t)PQntuples (res) + 1, sizeof *managers);
    of = calloc ((size_t)PQntuples (res) + 1, sizeof *of);
    claimed = calloc ((size_t)PQntuples (res) + 1, sizeof *claimed);
    if (!managers || !of || !claimed) {
        s_oom (r);
        goto cleanup;
    }
    for (int row = 0; row < PQntuples (res); row++) {
        s_cust_t *c = s_cust_find (r, PQgetvalue (res, row, 0));
        if (!c)
            continue;
        if (!PQgetisnull (res, row, 2)) {
            s_copy (c->conv, sizeof c->conv, PQgetvalue (res, row, 2));
            s_take_state (c, res, row, 3);
            c->found = true;
        } else if (!PQgetisnull (res, row, 1)) {
            managers[k] = PQgetvalue (res, row, 1);
            of[k++] = c;
        }
    }
    if (routing_claim_managers (r->db, managers, k, r->now, claimed, r->err, r->errlen) != 0)
        goto cleanup;
    for (i = 0; i < k; i++) {
        if (claimed[i])
            s_copy (of[i]->born_to, sizeof of[i]->born_to, managers[i]);
    }
    rc = 0;
cleanup:
    PQclear (res);
    rt_buf_free (&a);
    free (ids);
    free (managers);
    free (of);
    free (claimed);
    return rc;
}

/* Step 2: each customer's open conversation, found or opened (given to
 * the manager claimed for it). A claim whose customer had one opened
 * meanwhile by another replica goes back. */
static int
s_open (s_run_t *r)
{
    rt_buf_t a[8] = {{0}};
    routing_ms_t now = routing_ms (r->now);
    int *n = malloc ((r->ncusts + 1) * sizeof *n);
    PGresult *res = NULL;
    int rc = -1;
    size_t i, opened;

    if (!n)
        return s_oom (r);
    if (s_managers (r) != 0)
        goto cleanup;
    for (i = 0, opened = 0; i < r->ncusts; i++) {
        n[i] = r->custs[i].n;
        opened += !r->custs[i].found;
    }
    if (s_shares (r, a, true, n) != 0)
        goto cleanup;
    if (opened > 0) {
        const char *v[9] = {a[0].data, a[1].data, a[2].data, a[3].data, a[4].data,
                            a[5].data, a[6].data, now.s,     a[7].data};
        res = routing_exec (r->db, S_OPEN_MANY, 9, v, r->err, r->errlen);
        if (!res)
            goto cleanup;
    }
    for (int row = 0; res && row < PQntuples (res); row++) {
        s_cust_t *c = s_cust_find (r, PQgetvalue (res, row, 1));
        if (!c)
            continue;
        s_copy (c->conv, sizeof c->conv, PQgetvalue (res, row, 0));
        s_take_state (c, res, row, 2);
        if (c->is_new) {
            c->unanswered = c->n;
            c->born = *c->born_to != '\0';
            if (c->born) {
                s_copy (c->assignee, sizeof c->assignee, c->born_to);
                c->reason = ROUTING_REASON_MANAGER;
            }
        }
    }
    for (i = 0; i < r->ncusts; i++) {
        s_cust_t *c = &r->custs[i];
        if (!*c->conv) {
            rt_errf (r->err, r->errlen, "customer %s: no conversation found or opened",
                     c->customer);
            goto cleanup;
        }
        if (*c->born_to && !c->born && routing_release (r->db, c->born_to, r->err, r->errlen) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    PQclear (res);
    for (int k = 0; k < 8; k++)
        rt_buf_free (&a[k]);
    free (n);
    return rc;
}

/* The new conversations' earlier orders (before their first entry). */
static int
s_orders (s_run_t *r)
{
    const char **conv = malloc ((r->ncusts + 1) * sizeof *conv);
    const char **customer = malloc ((r->ncusts + 1) * sizeof *customer);
    size_t i, k = 0;
    int rc = -1;
    if (!conv || !customer) {
        s_oom (r);
        goto cleanup;
    }
    for (i = 0; i < r->ncusts; i++) {
        if (!r->custs[i].is_new)
            continue;
        conv[k] = r->custs[i].conv;
        customer[k++] = r->custs[i].customer;
    }
    rc = k ? routing_orders_earlier (r->db, conv, customer, k, r->now, r->err, r->errlen) : 0;
cleanup:
    free (conv);
    free (customer);
    return rc;
}

/* Step 3: the entries; an event another transaction recorded meanwhile
 * becomes a replay. */
static int
s_entries (s_run_t *r)
{
    routing_entry_t *e = calloc (r->n + 1, sizeof *e);
    char **bodies = calloc (r->n + 1, sizeof *bodies),
         **origins = calloc (r->n + 1, sizeof *origins);
    bool *added = calloc (r->n + 1, sizeof *added);
    size_t *of = calloc (r->n + 1, sizeof *of);
    size_t i, k = 0;
    int rc = -1;

    if (!e || !bodies || !origins || !added || !of) {
        s_oom (r);
        goto cleanup;
    }
    for (i = 0; i < r->n; i++) {
        bool oom = false;
        if (!r->live[i])
            continue;
        bodies[k] = routing_inbound_body (&r->in[i]);
        origins[k] = reply_origin_json (r->in[i].origin, &oom);
        if (!bodies[k] || oom) {
            k++;
            s_oom (r);
            goto cleanup;
        }
        e[k] = (routing_entry_t){.conversation_id = r->custs[r->cust[i]].conv,
                                 .kind = "inbound",
                                 .event_id = r->in[i].event_id,
                                 .channel = rt_channel_by_value (r->in[i].channel)->name,
                                 .counted = true,
                                 .body = bodies[k],
                                 .origin = origins[k],
                                 .at = r->at[i]};
        of[k++] = i;
    }
    if (routing_timeline_add_many (r->db, e, k, added, r->err, r->errlen) != 0)
        goto cleanup;
    for (size_t j = 0; j < k; j++) {
        if (added[j])
            continue;
        i = of[j];
        r->live[i] = false;
        r->out[i].replay = true;
        s_copy (r->out[i].conversation_id, sizeof r->out[i].conversation_id, e[j].conversation_id);
    }
    rc = 0;
cleanup:
    for (size_t j = 0; j < k; j++) {
        free (bodies[j]);
        free (origins[j]);
    }
    free (e);
    free (bodies);
    free (origins);
    free (added);
    free (of);
    return rc;
}

/* Step 4: the counters of the conversations that existed. */
static int
s_counters (s_run_t *r)
{
    rt_buf_t a[6] = {{0}};
    routing_ms_t now = routing_ms (r->now);
    int *n = calloc (r->ncusts + 1, sizeof *n);
    PGresult *res = NULL;
    size_t i, asked = 0;
    int rc = -1;

    if (!n)
        return s_oom (r);
    for (i = 0; i < r->n; i++) {
        if (r->live[i] && !r->custs[r->cust[i]].is_new)
            n[r->cust[i]]++;
    }
    for (i = 0; i < r->ncusts; i++)
        asked += (!r->custs[i].is_new && n[i] > 0);
    if (asked == 0) {
        rc = 0;
        goto cleanup;
    }
    if (s_shares (r, a, false, n) != 0)
        goto cleanup;
    {
        const char *v[7] = {a[0].data, a[1].data, a[2].data, a[3].data,
                            a[4].data, a[5].data, now.s};
        res = routing_exec (r->db, S_COUNT_MANY, 7, v, r->err, r->errlen);
    }
    if (!res)
        goto cleanup;
    for (int row = 0; row < PQntuples (res); row++) {
        s_cust_t *c = s_cust_find (r, PQgetvalue (res, row, 0));
        if (!c || c->is_new)
            continue;
        s_copy (c->assignee, sizeof c->assignee, PQgetvalue (res, row, 1));
        c->unanswered = atoi (PQgetvalue (res, row, 2));
        c->n = n[c - r->custs];
    }
    rc = 0;
cleanup:
    PQclear (res);
    for (int k = 0; k < 6; k++)
        rt_buf_free (&a[k]);
    free (n);
    return rc;
}

/* Whether customer i has an event counted here (s_tally). */
static bool
s_counted (const s_run_t *r, size_t i)
{
    return r->custs[i].counted;
}

/* After the entries: which customers have an event counted, the first
 * one's instant. */
static void
s_tally (s_run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        s_cust_t *c;
        if (!r->live[i])
            continue;
        c = &r->custs[r->cust[i]];
        if (!c->counted || r->at[i] < c->counted_at)
            c->counted_at = r->at[i];
        c->counted = true;
    }
}

/* The conversations opened with their manager, announced. */
static int
s_announce_born (s_run_t *r)
{
    routing_assigned_t *a = calloc (r->ncusts + 1, sizeof *a);
    size_t i, k = 0;
    int rc;
    if (!a)
        return s_oom (r);
    for (i = 0; i < r->ncusts; i++) {
        const s_cust_t *c = &r->custs[i];
        if (!c->born)
            continue;
        a[k++] = (routing_assigned_t){.conv = c->conv,
                                      .customer = c->customer,
                                      .channel = c->channel,
                                      .team = c->old_team,
                                      .to = c->born_to,
                                      .version = c->version};
    }
    rc = k ? routing_announce_many (r->db, a, k, ROUTING_REASON_MANAGER, r->now, r->err, r->errlen)
           : 0;
    free (a);
    return rc;
}

/* Step 5: whoever has nobody gets someone: the managers together, then
 * one at a time. */
static int
s_assign (s_run_t *r)
{
    const char **conv = calloc (r->ncusts + 1, sizeof *conv);
    size_t *of = calloc (r->ncusts + 1, sizeof *of);
    routing_assign_result_t *res = calloc (r->ncusts + 1, sizeof *res);
    bool *done = calloc (r->ncusts + 1, sizeof *done);
    size_t i, k = 0;
    int rc = -1;

    if (!conv || !of || !res || !done) {
        s_oom (r);
        goto cleanup;
    }
    if (s_announce_born (r) != 0)
        goto cleanup;
    for (i = 0; i < r->ncusts; i++) {
        if (*r->custs[i].assignee || !s_counted (r, i))
            continue;
        conv[k] = r->custs[i].conv;
        of[k++] = i;
    }
    if (routing_assign_managers (r->db, conv, k, r->now, res, done, r->err, r->errlen) != 0)
        goto cleanup;
    for (size_t j = 0; j < k; j++) {
        s_cust_t *c = &r->custs[of[j]];
        if (!done[j] && routing_assign (r->db, c->conv, NULL, false, ROUTING_REASON_NONE, r->now,
                                        &res[j], r->err, r->errlen) != 0)
            goto cleanup;
        s_copy (c->assignee, sizeof c->assignee, res[j].assignee);
        c->reason = res[j].reason;
        c->waiting_for_manager = res[j].waiting_for_manager;
    }
    rc = 0;
cleanup:
    free (conv);
    free (of);
    free (res);
    free (done);
    return rc;
}

/* Step 6: the clocks, each conversation once, as its first message here
 * would have left them. */
static int
s_clocks (s_run_t *r)
{
    const char **conv = calloc (r->ncusts + 1, sizeof *conv);
    bool *is_new = calloc (r->ncusts + 1, sizeof *is_new);
    int *unanswered = calloc (r->ncusts + 1, sizeof *unanswered);
    int64_t *at = calloc (r->ncusts + 1, sizeof *at);
    size_t i, k = 0;
    int rc = -1;

    if (!conv || !is_new || !unanswered || !at) {
        s_oom (r);
        goto cleanup;
    }
    for (i = 0; i < r->ncusts; i++) {
        const s_cust_t *c = &r->custs[i];
        int64_t first = c->counted_at;
        if (!s_counted (r, i))
            continue;
        conv[k] = c->conv;
        is_new[k] = c->is_new;
        /* The count the first message left: 1 when it began the wait. */
        unanswered[k] = c->is_new ? 1 : c->unanswered - c->n + 1;
        at[k++] = first;
    }
    rc = routing_sla_inbound_many (r->db, conv, is_new, unanswered, at, k, r->now, r->err,
                                   r->errlen);
cleanup:
    free (conv);
    free (is_new);
    free (unanswered);
    free (at);
    return rc;
}

/* The end: the stream's events of the entries added and of the
 * conversations changed, in sets, the triggers back. */
static int
s_stream (s_run_t *r)
{
    rt_buf_t a[6] = {{0}};
    size_t i;
    int k, rc = -1;

    for (k = 0; k < 6; k++)
        rt_buf_array_begin (&a[k]);
    for (i = 0; i < r->n; i++) {
        if (r->live[i])
            rt_buf_array_raw (&a[0], r->in[i].event_id);
    }
    for (i = 0; i < r->ncusts; i++) {
        const s_cust_t *c = &r->custs[i];
        char count[16];
        snprintf (count, sizeof count, "%d", c->old_unanswered);
        rt_buf_array_raw (&a[1], c->conv);
        if (c->old_assignee_null)
            rt_buf_array_raw (&a[2], "NULL");
        else
            rt_buf_array_text (&a[2], c->old_assignee);
        if (c->old_team_null)
            rt_buf_array_raw (&a[3], "NULL");
        else
            rt_buf_array_text (&a[3], c->old_team);
        rt_buf_array_text (&a[4], c->old_status);
        rt_buf_array_raw (&a[5], count);
    }
    for (k = 0; k < 6; k++) {
        rt_buf_array_end (&a[k]);
        if (a[k].failed) {
            s_oom (r);
            goto cleanup;
        }
    }
    {
        const char *v[5] = {a[1].data, a[2].data, a[3].data, a[4].data, a[5].data};
        rc = routing_run (r->db, S_STREAM_MSGS, 1, (const char *const *)&a[0].data, r->err,
                          r->errlen);
        if (rc == 0)
            rc = routing_run (r->db, S_STREAM_CHANGES, 5, v, r->err, r->errlen);
    }
cleanup:
    for (k = 0; k < 6; k++)
        rt_buf_free (&a[k]);
    return rc;
}

/* Each event's result, as routing_inbound would give it. */
static void
s_results (s_run_t *r)
{
    int *seen = calloc (r->ncusts + 1, sizeof *seen);
    for (size_t i = 0; i < r->n; i++) {
        const s_cust_t *c;
        routing_inbound_result_t *o = &r->out[i];
        if (!r->live[i])
            continue;
        c = &r->custs[r->cust[i]];
        s_copy (o->conversation_id, sizeof o->conversation_id, c->conv);
        s_copy (o->assignee, sizeof o->assignee, c->assignee);
        o->counted = true;
        if (seen) {
            int k = ++seen[r->cust[i]];
            o->is_new = c->is_new && k == 1;
            o->unanswered = c->unanswered - c->n + k;
            if (k == 1) {
                o->reason = c->reason;
                o->waiting_for_manager = c->waiting_for_manager;
            }
        } else {
            o->unanswered = c->unanswered;
        }
    }
    free (seen);
}

routing_status_t
routing_inbound_many (rt_db_t *db, const routing_inbound_t *in, size_t n,
                      routing_inbound_result_t *out, char *err, size_t errlen)
{
    s_run_t r = {.db = db, .in = in, .out = out, .n = n, .err = err, .errlen = errlen};
    routing_status_t st = ROUTING_ERR_DB;
    size_t i;

    if (n == 0)
        return ROUTING_OK;
    memset (out, 0, n * sizeof *out);
    for (i = 0; i < n; i++) {
        if (!routing_inbound_batchable (&in[i])) {
            rt_errf (err, errlen, "event %s cannot be taken with others",
                     in[i].event_id ? in[i].event_id : "");
            return ROUTING_ERR_INVALID;
        }
    }
    r.now = rt_clock_now_ms ();
    r.at = calloc (n, sizeof *r.at);
    r.cust = calloc (n, sizeof *r.cust);
    r.live = calloc (n, sizeof *r.live);
    r.custs = calloc (n, sizeof *r.custs);
    if (!r.at || !r.cust || !r.live || !r.custs) {
        s_oom (&r);
        goto cleanup;
    }
    for (i = 0; i < n; i++)
        r.at[i] = in[i].occurred_at > 0 ? in[i].occurred_at : r.now;
    if (routing_run (db, S_STREAM_SETS, 0, NULL, err, errlen) != 0 || s_replays (&r) != 0 ||
        s_customers (&r) != 0)
        goto cleanup;
    if (r.ncusts > 0 && (s_open (&r) != 0 || s_orders (&r) != 0 || s_entries (&r) != 0))
        goto cleanup;
    s_tally (&r);
    if (r.ncusts > 0 && (s_counters (&r) != 0 || s_assign (&r) != 0 || s_clocks (&r) != 0))
        goto cleanup;
    if (s_stream (&r) != 0)
        goto cleanup;
    s_results (&r);
    st = ROUTING_OK;
cleanup:
    free (r.at);
    free (r.cust);
    free (r.live);
    free (r.custs);
    return st;
}
