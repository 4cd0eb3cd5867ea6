/*
 * routing_int: what routing.c (statements, helpers, counters),
 * conversation.c (the timeline, messages, statuses), events.c (call-backs,
 * orders) and assign.c (assignment, presence, transfers, the timer)
 * share. Not part of the contract.
 */
#ifndef ROUTER_ROUTING_INT_H
#define ROUTER_ROUTING_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>

#include "routing.h"

/* A timestamp parameter: unix ms as text, read as timestamptz. */
#define ROUTING_TS(n) "to_timestamp($" #n "::float8 / 1000)"
/* A timestamptz column read back as unix ms. */
#define ROUTING_MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"

/* A routing statement: its name and text, registered by routing_prepare. */
typedef struct {
    const char *name; /* "routing_..." */
    const char *sql;  /* with $n parameters */
} routing_stmt_t;

/* Each file's statements, registered together. */
extern const routing_stmt_t routing_conversation_stmts[];
extern const size_t routing_conversation_nstmts;
extern const routing_stmt_t routing_assign_stmts[];
extern const size_t routing_assign_nstmts;
extern const routing_stmt_t routing_event_stmts[];
extern const size_t routing_event_nstmts;
extern const routing_stmt_t routing_inbound_many_stmts[];
extern const size_t routing_inbound_many_nstmts;
extern const routing_stmt_t routing_assign_many_stmts[];
extern const size_t routing_assign_many_nstmts;

/* conversation.c's statement that finds a timeline entry by its event id
 * (a replay), which events.c runs too. */
#define ROUTING_EVENT_FIND "routing_event_find"

/* Unix ms as decimal text. */
typedef struct {
    char s[24]; /* the digits */
} routing_ms_t;
routing_ms_t routing_ms (int64_t ms);

/* Runs a prepared statement with text parameters (NULL for SQL NULL).
 * Owned result, or NULL with err filled from rt_db_error. */
PGresult *routing_exec (rt_db_t *db, const char *name, int nparams, const char *const *values,
                        char *err, size_t errlen);

/* routing_exec for a statement whose rows are not wanted. 0 or -1. */
int routing_run (rt_db_t *db, const char *name, int nparams, const char *const *values, char *err,
                 size_t errlen);

/* The envelope routing_emit appends, packed into *packed (owned: free
 * packed->data), without appending it. id as routing_emit's. 0 or -1. */
int routing_envelope (const char *type, const char *key, const ProtobufCMessage *payload, char *id,
                      ProtobufCBinaryData *packed, char *err, size_t errlen);

/* Puts one event into the outbox (the outbox's prepared statement). id,
 * when not NULL, is the envelope's id (ROUTING_ID_LEN + 1); when it is ""
 * it gets the fresh id made. 0, or -1 with err filled. */
int routing_emit (rt_db_t *db, const char *type, const char *key, const ProtobufCMessage *payload,
                  char *id, char *err, size_t errlen);

/* One timeline entry of routing_timeline_add_many (strings lent; NULL
 * for SQL NULL; body NULL for {}). */
typedef struct {
    const char *conversation_id;
    const char *kind;
    const char *event_id;
    const char *channel;
    bool counted;
    const char *operator_id;
    const char *body;
    const char *origin;
    int64_t at;
} routing_entry_t;

/* routing_timeline_add for n entries in one statement, in their order:
 * added[i] says whether entry i was appended (false: its event id was
 * there already). 0, or -1 with err filled. */
int routing_timeline_add_many (rt_db_t *db, const routing_entry_t *e, size_t n, bool *added,
                               char *err, size_t errlen);

/* Appends a timeline entry (event_id NULL: none; body a JSON object's
 * text). *added says whether it is new (false: that event id is there
 * already). 0 or -1. */
int routing_timeline_add (rt_db_t *db, const char *conversation_id, const char *kind,
                          const char *event_id, const char *channel, bool counted,
                          const char *operator_id, const char *body, int64_t at, bool *added,
                          char *err, size_t errlen);

/* routing_timeline_add with the entry's origin (routing 009: JSON text,
 * reply_origin_json's; NULL none). 0 or -1. */
int routing_timeline_add_origin (rt_db_t *db, const char *conversation_id, const char *kind,
                                 const char *event_id, const char *channel, bool counted,
                                 const char *operator_id, const char *body, const char *origin,
                                 int64_t at, bool *added, char *err, size_t errlen);

/* Whether text is a canonical UUID. */
bool routing_id_ok (const char *text);

/* Whether s is set (not NULL, not ""). */
bool routing_set (const char *s);

/* What routing_assign came to. */
typedef struct {
    char assignee[ROUTING_OP_MAX + 1]; /* "" for none */
    routing_reason_t reason;           /* NONE when it stays queued */
    bool waiting_for_manager;          /* queued for the customer's manager */
} routing_assign_result_t;

/* Assigns an open, unassigned conversation (locked by the caller): the
 * customer's manager, the wait for them (unless no_wait), or the policy,
 * never to `exclude` (NULL: anyone). reason is what the change is called
 * (NONE: manager or policy, as it came). 0 or -1. */
int routing_assign (rt_db_t *db, const char *conversation_id, const char *exclude, bool no_wait,
                    routing_reason_t reason, int64_t now, routing_assign_result_t *out, char *err,
                    size_t errlen);

/* What an assignment change tells: ConversationAssigned, packed into
 * *packed (owned) with its envelope id in envelope_id, and the body of its
 * timeline entry (owned). 0 or -1. */
int routing_announce (const char *conv, const char *customer, const char *channel, const char *team,
                      const char *to, const char *previous, routing_reason_t reason, const char *by,
                      int64_t version, char envelope_id[ROUTING_ID_LEN + 1],
                      ProtobufCBinaryData *packed, char **body, char *err, size_t errlen);

/* Claims room on each conversation's manager (manager[i], a conversation
 * each) at once, their rows locked in id order: a manager with room for
 * all of theirs takes them all, claimed[i] true; one short of room takes
 * none here. 0, or -1 with err filled. */
int routing_claim_managers (rt_db_t *db, const char *const *manager, size_t n, int64_t now,
                            bool *claimed, char *err, size_t errlen);

/* A conversation just assigned, as routing_announce_many tells it. */
typedef struct {
    const char *conv, *customer, *channel, *team, *to;
    int64_t version;
} routing_assigned_t;

/* ConversationAssigned and the timeline's entry for each of a[0..n),
 * from nobody, for `reason`: one append to the outbox, one insert. */
int routing_announce_many (rt_db_t *db, const routing_assigned_t *a, size_t n,
                           routing_reason_t reason, int64_t now, char *err, size_t errlen);

/* routing_assign's first step for many conversations (locked by the
 * caller) at once: each open one nobody has goes to its customer's
 * manager when the manager is online with room for all of theirs here.
 * done[i] says conversation i was assigned so (out[i] filled); the rest
 * go to routing_assign, which claims one at a time, waits for the manager
 * or follows the team's policy. 0, or -1 with err filled. */
int routing_assign_managers (rt_db_t *db, const char *const *conversation_id, size_t n, int64_t now,
                             routing_assign_result_t *out, bool *done, char *err, size_t errlen);

/* An inbound entry's body: {"text", "event"?, "external_id"?, "inbox",
 * "edited"?, "number"?}. Owned, NULL when out of memory. */
char *routing_inbound_body (const routing_inbound_t *in);

/* The context of new conversations: each customer's orders of the last
 * 30 days (at most 5) as timeline entries of conversation conv[i]. */
int routing_orders_earlier (rt_db_t *db, const char *const *conv, const char *const *customer,
                            size_t n, int64_t now, char *err, size_t errlen);

/* Gives operator `op` queued conversations while they have room and are
 * online: their own customers' first, then the oldest. *n (may be NULL)
 * gets how many. 0 or -1. */
int routing_hand_out (rt_db_t *db, const char *op, int64_t now, size_t *n, char *err,
                      size_t errlen);

/* Takes one conversation from operator `op` (open_count - 1). 0 or -1. */
int routing_release (rt_db_t *db, const char *op, char *err, size_t errlen);

/* Resolves a conversation (locked or not) at now by `by` (NULL: retain,
 * why: "auto" or NULL); releases and hands out. 0 or -1. */
int routing_resolve_at (rt_db_t *db, const char *conversation_id, const char *by, const char *why,
                        int64_t now, char *err, size_t errlen);

#endif
