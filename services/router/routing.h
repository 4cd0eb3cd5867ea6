/*
 * routing: conversations, their timeline, and who answers them (schema
 * routing).
 *
 * One conversation per customer that is not resolved, across every
 * channel; every inbound and outbound message, note, receipt and change in
 * its timeline; an unanswered counter (messages since the last operator
 * reply) with the time the oldest of them waits; and assignment to
 * operators. routerd's consumer handler calls routing_inbound for each
 * InboundMessage once identity has named its customer; the operator API
 * calls the rest; the daemon calls routing_tick on a timer.
 *
 * Every function runs on the caller's connection inside the caller's open
 * transaction, so what it writes and the events it puts in the outbox
 * (ConversationAssigned, OutboundMessageRequested) commit together or not
 * at all. routing_prepare once per handle, after rt_outbox_prepare and
 * identity_prepare. Times are unix milliseconds read from rt_clock (or the
 * `now` a caller passes), never PostgreSQL's now(), so a test moves them.
 *
 * Assignment, in plain words: a conversation goes to the customer's
 * responsible manager (crm.customers.manager) when they are online with
 * room. Otherwise it waits for them up to the team's manager_wait_ms, and
 * then the team's policy picks among its online operators with room:
 * balanced (fewest open), round_robin (least recently assigned), preferring
 * those who speak the conversation's language and have its skills. The
 * first operator a customer gets becomes their manager when they had none.
 * When nobody is free the conversation waits in the queue, oldest first,
 * handed out as operators log in (routing_presence) or free capacity
 * (resolving). An operator offline past the grace period has their
 * conversations rebalanced to others (routing_tick); the customers stay
 * theirs, so the next conversation comes back to them. Every change is a
 * timeline entry and a ConversationAssigned with its reason.
 *
 * Concurrency: the partial unique index on the customer's open
 * conversation makes two replicas share one conversation; the assigning
 * statement is `UPDATE operators SET open_count = open_count + 1 WHERE ...
 * open_count < capacity AND presence = 'online'` under a CHECK, with
 * candidates taken FOR UPDATE SKIP LOCKED, so no operator goes over
 * capacity and replicas do not queue on the same candidate; a
 * conversation's version makes the second of two concurrent transfers a
 * conflict.
 *
 * Errors: ROUTING_OK (0) or a negative routing_status_t with the reason in
 * err. A refusal (any status but ROUTING_ERR_DB) is decided before
 * anything is written, so the caller's transaction is as it was; after
 * ROUTING_ERR_DB the caller rolls back.
 */
#ifndef ROUTER_ROUTING_H
#define ROUTER_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "rt_db.h"
#include "rt_migrate.h"
#include "rt_uuid.h"
#include "retain/v1/common.pb-c.h"
#include "retain/v1/message.pb-c.h"

#define ROUTING_ID_LEN RT_UUID_STR_LEN /* a conversation's id */
#define ROUTING_OP_MAX 64              /* an operator's or team's id, bytes */

/* What a call came to; the API maps each to its HTTP status. */
typedef enum {
    ROUTING_OK = 0,
    ROUTING_ERR_DB = -1,        /* PostgreSQL failed: roll back (500/503) */
    ROUTING_ERR_INVALID = -2,   /* input refused: a bad id, empty text, bad presence (422) */
    ROUTING_ERR_NOT_FOUND = -3, /* no such conversation, operator or team (404) */
    ROUTING_ERR_CONFLICT = -4,  /* the conversation changed since the version named (409) */
    ROUTING_ERR_CAPACITY = -5,  /* the operator has no room (409) */
    ROUTING_ERR_CHANNEL = -6,   /* a reply on a channel the customer never used (422) */
    ROUTING_ERR_STATE = -7,     /* not possible in its status: a resolved conversation
                                   transferred, a reopen while another is open (409) */
} routing_status_t;

/* Why an assignment changed: ConversationAssigned.reason and the
 * timeline's. */
typedef enum {
    ROUTING_REASON_NONE = 0,  /* nothing changed */
    ROUTING_REASON_MANAGER,   /* the customer's manager took it */
    ROUTING_REASON_POLICY,    /* the team's policy picked the operator */
    ROUTING_REASON_TRANSFER,  /* an operator moved it */
    ROUTING_REASON_REBALANCE, /* its operator stayed offline past the grace */
    ROUTING_REASON_QUEUE,     /* handed out from the queue (a login, freed capacity) */
    ROUTING_REASON_SLA,       /* an SLA breach's escalation took it ("sla_escalation") */
} routing_reason_t;

/* Settings the daemon reads from its configuration. */
typedef struct {
    int64_t offline_grace_ms;     /* offline this long: their conversations are rebalanced */
    int64_t heartbeat_timeout_ms; /* no heartbeat this long: the operator counts as offline;
                                     0: presence changes only when told */
    int64_t auto_resolve_ms;      /* answered and quiet this long: resolved; 0: never */
    size_t batch;                 /* conversations or operators one tick handles at most */
} routing_config_t;

/* An inbound event, as the consumer handler hands it over. Strings lent;
 * NULL or "" for absent. */
typedef struct {
    const char *customer_id;          /* identity's survivor (required) */
    const char *event_id;             /* the envelope id (required: replays are found by it) */
    Retain__V1__Channel channel;      /* where it came (required) */
    const char *inbox;                /* the inbox it arrived at */
    const char *event;                /* InboundMessage.event: "", "message", "call_missed",
                                         "deleted", ... */
    const char *text;                 /* the text or a summary of the attachments */
    const char *external_id;          /* the provider's message id, for the timeline */
    bool edited;                      /* an edit of an earlier message: not counted again */
    int64_t occurred_at;              /* unix ms; 0: now */
    const char *team_id;              /* the team the inbox routes to (an existing team); NULL:
                                         the manager's team, else none (every operator is a
                                         candidate, balanced) */
    const char *language;             /* wanted of the operator (the customer's locale); NULL any */
    const char *call_direction;       /* a call event's CallInfo.direction: "inbound", "outbound";
                                         NULL or "" for none (read as inbound) */
    const char *call_number;          /* the customer's end of a call (CallInfo.from of an inbound
                                         call, .to of an outbound one), E.164 when known */
    const Retain__V1__Origin *origin; /* where it was written (a comment, a story reply); NULL
                                         for a direct message: kept on its entry (reply.h) */
} routing_inbound_t;

/* What routing_inbound came to. */
typedef struct {
    char conversation_id[ROUTING_ID_LEN + 1]; /* "" when the event had nowhere to go */
    bool is_new;                              /* the conversation was opened by this event */
    bool replay;                              /* the event was seen before: nothing changed */
    bool counted;                             /* it added to the unanswered counter */
    char assignee[ROUTING_OP_MAX + 1];        /* the operator now, "" for none */
    routing_reason_t reason;                  /* why it was assigned now; NONE when it was
                                                 already (or stays queued) */
    bool waiting_for_manager;                 /* queued for the customer's manager */
    int unanswered;                           /* the counter after it */
} routing_inbound_result_t;

/* A photo or document an operator's reply carries (rt_attachment.h says
 * what may be one; the API checked it). Strings lent. */
typedef struct {
    const char *kind;      /* "image" or "document" */
    const char *url;       /* https:// */
    const char *name;      /* NULL: none */
    const char *mime_type; /* NULL: none */
} routing_attachment_t;

/* An operator's reply. Strings lent. */
typedef struct {
    const char *conversation_id;             /* required */
    const char *operator_id;                 /* who writes (required) */
    const char *message_id;                  /* a UUIDv7 the API derived from the request's
                                                Idempotency-Key: the send's id and its envelope's */
    const char *text;                        /* not empty, unless there are attachments */
    Retain__V1__Channel channel;             /* CHANNEL_UNSPECIFIED: the last inbound message's */
    const routing_attachment_t *attachments; /* n_attachments of them, NULL: none */
    size_t n_attachments;                    /* at most RT_ATTACHMENTS_MAX */
    const char *reply_to;                    /* the inbound entry it answers (reply.h), NULL:
                                                none */
    const Retain__V1__Origin *reply_origin;  /* the comment it answers, NULL: a plain reply */
    bool public_reply;                       /* with reply_origin: under the comment; false:
                                                Meta's private reply */
} routing_outbound_t;

/* What routing_outbound came to. */
typedef struct {
    bool replay;                          /* that message id was recorded before */
    char customer_id[ROUTING_ID_LEN + 1]; /* the conversation's customer */
    Retain__V1__Channel channel;          /* the channel it goes on */
} routing_outbound_result_t;

/* Who an assignment change went to. */
typedef struct {
    char conversation_id[ROUTING_ID_LEN + 1]; /* the conversation */
    char assignee[ROUTING_OP_MAX + 1];        /* now, "" for the queue */
    char previous[ROUTING_OP_MAX + 1];        /* before, "" for none */
    int64_t version;                          /* the conversation's version after it */
} routing_assignment_t;

/* What one routing_tick did. */
typedef struct {
    size_t assigned;     /* queued conversations given an operator */
    size_t rebalanced;   /* conversations taken from operators offline past the grace */
    size_t timed_out;    /* operators marked offline for a missing heartbeat */
    size_t woken;        /* snoozed conversations reopened */
    size_t resolved;     /* conversations resolved after the quiet period */
    size_t sla_warned;   /* SLA clocks past their warning, marked (routing_sla_warnings) */
    size_t sla_breached; /* SLA clocks past their due time: SlaBreached emitted */
} routing_tick_result_t;

/* Counters of an operator's or a team's conversations that are not
 * resolved. */
typedef struct {
    long long open;            /* not resolved */
    long long unanswered;      /* of those, waiting for a reply */
    long long messages;        /* unanswered messages in them */
    int64_t oldest_waiting_ms; /* unix ms the oldest unanswered one waits since, 0 for none */
    long long queued;          /* open with nobody assigned (teams only) */
    long long callbacks;       /* open call-backs in them */
} routing_counts_t;

/* routing's migrations (generated from services/router/sql/routing);
 * routerd applies them after the outbox's and crm's. */
extern const rt_migration_set_t rt_migrations_routing;

/* Registers routing's statements with db. Once per handle. 0, or -1 with
 * the reason in err. */
int routing_prepare (rt_db_t *db, char *err, size_t errlen);

/* Takes an inbound event into its customer's conversation: the open one,
 * else a new one (a resolved conversation is never reopened; pending and
 * snoozed ones are). Appends it to the timeline once by event id (a replay
 * changes nothing and says so). A message or a missed call (a call-back
 * entry) counts: unanswered + 1, waiting_since set when it was 0; the
 * channel becomes the reply channel. Other events (a deleted comment,
 * subscriptions, call progress) and edits are recorded without counting,
 * and neither open nor reopen a conversation: with none open they go
 * nowhere (conversation_id ""). Then assigns an open unassigned
 * conversation (the rules above). */
routing_status_t routing_inbound (rt_db_t *db, const routing_inbound_t *in,
                                  routing_inbound_result_t *out, char *err, size_t errlen);

/* Whether routing_inbound_many takes the event: a counted message (not an
 * edit, a call or a missed call) of a resolved customer, with no team or
 * language asked. */
bool routing_inbound_batchable (const routing_inbound_t *in);

/* routing_inbound for n batchable events at once, in their order, with
 * the same outcome as n calls one after another: a statement for each
 * step over every event (replays, the conversations found or opened, the
 * timeline, the counters, the managers' claims, the SLA clocks) instead
 * of one per event; what a set cannot decide (a manager short of room, a
 * team's policy) goes to routing_assign one conversation at a time.
 * out[i] is event i's result. ROUTING_OK, or ROUTING_ERR_DB (roll back). */
routing_status_t routing_inbound_many (rt_db_t *db, const routing_inbound_t *in, size_t n,
                                       routing_inbound_result_t *out, char *err, size_t errlen);

/* Records an operator's reply: a timeline entry (idempotent by message
 * id; its body the text, the message id and the attachments, when there
 * are any), unanswered 0 and waiting_since cleared. Refuses a channel the
 * customer has no identity on (ROUTING_ERR_CHANNEL), a resolved
 * conversation (ROUTING_ERR_STATE). The send itself is
 * routing_outbound_emit's. */
routing_status_t routing_outbound (rt_db_t *db, const routing_outbound_t *in,
                                   routing_outbound_result_t *out, char *err, size_t errlen);

/* Puts OutboundMessageRequested for a reply routing_outbound recorded
 * into the outbox, with the message id as its envelope id, so a retried
 * request makes no second send. Nothing when res->replay. */
routing_status_t routing_outbound_emit (rt_db_t *db, const routing_outbound_t *in,
                                        const routing_outbound_result_t *res, char *err,
                                        size_t errlen);

/* An internal note (never sent, never counted). event_id: the API's id of
 * it (idempotent), NULL for a fresh one. */
routing_status_t routing_note (rt_db_t *db, const char *conversation_id, const char *operator_id,
                               const char *event_id, const char *text, char *err, size_t errlen);

/* A delivery or read receipt, or a failure, of an outbound message:
 * appended (kind receipt, idempotent by event_id) to the conversation the
 * message was sent in; never counted. status: "delivered", "read",
 * "failed". A message retain did not record is skipped (*found false). */
routing_status_t routing_receipt (rt_db_t *db, const char *event_id, const char *message_id,
                                  const char *status, int64_t occurred_at, bool *found, char *err,
                                  size_t errlen);

/* Resolves (by: the operator, NULL for retain): releases the operator's
 * capacity, which hands them the oldest queued conversation they can take.
 * Resolving a resolved conversation changes nothing. */
routing_status_t routing_resolve (rt_db_t *db, const char *conversation_id, const char *by,
                                  char *err, size_t errlen);

/* Snoozes until a time (unix ms, in the future); the operator keeps it. */
routing_status_t routing_snooze (rt_db_t *db, const char *conversation_id, int64_t until,
                                 const char *by, char *err, size_t errlen);

/* Marks it pending (waiting for the customer); the operator keeps it. */
routing_status_t routing_pending (rt_db_t *db, const char *conversation_id, const char *by,
                                  char *err, size_t errlen);

/* Reopens a pending, snoozed or resolved conversation. A resolved one
 * reopens only when the customer has no other open (ROUTING_ERR_STATE),
 * and is assigned afresh. */
routing_status_t routing_reopen (rt_db_t *db, const char *conversation_id, const char *by,
                                 char *err, size_t errlen);

/* Moves a conversation to an operator (to_operator) or to a team's policy
 * (to_team; exactly one of the two), by an operator, if its version is
 * still expected_version (ROUTING_ERR_CONFLICT otherwise). An operator
 * without room is refused (ROUTING_ERR_CAPACITY); presence is theirs to
 * keep (a transfer to an away colleague is allowed). out may be NULL. */
routing_status_t routing_transfer (rt_db_t *db, const char *conversation_id,
                                   const char *to_operator, const char *to_team, const char *by,
                                   int64_t expected_version, routing_assignment_t *out, char *err,
                                   size_t errlen);

/* An operator's presence ("online", "away", "offline") or heartbeat (the
 * same presence again) at now (unix ms). Going online hands them queued
 * conversations while they have room: their own customers' first, then
 * the oldest. handed (may be NULL) gets how many. */
routing_status_t routing_presence (rt_db_t *db, const char *operator_id, const char *presence,
                                   int64_t now, size_t *handed, char *err, size_t errlen);

/* The timer's work at now: operators without a heartbeat marked offline,
 * conversations of operators offline past the grace rebalanced (their
 * customers keep them as manager), snoozed conversations due reopened,
 * queued conversations whose manager wait is over handed to the policy,
 * quiet answered conversations resolved, SLA clocks warned and breached
 * (the SLA section below). Each step at most cfg->batch rows; out may be
 * NULL. */
routing_status_t routing_tick (rt_db_t *db, const routing_config_t *cfg, int64_t now,
                               routing_tick_result_t *out, char *err, size_t errlen);

/* Counters of one operator's (operator_id) or one team's (team_id)
 * conversations; exactly one of the two. An unknown id counts zeros. */
routing_status_t routing_counts (rt_db_t *db, const char *operator_id, const char *team_id,
                                 routing_counts_t *out, char *err, size_t errlen);

/* The name of a reason as ConversationAssigned carries it ("manager",
 * "policy", "transfer", "rebalance", "queue", "sla_escalation"; "" for
 * NONE). */
const char *routing_reason_name (routing_reason_t reason);

/* --- merges, call-backs, orders (merge.c, conversation.c) ---
 *
 * A merge of two customers (identity_merge) moves the absorbed one's
 * conversations to the survivor: the resolved ones as they are; an open one
 * as it is when the survivor has none open; and when both have one open,
 * the absorbed conversation's waiting messages and open call-backs are
 * linked into the survivor's (copies after its last reply, so they wait
 * there as they waited before), the survivor's counters recounted (the
 * oldest wait kept), a pending or snoozed survivor's conversation reopened,
 * and the absorbed conversation resolved with merged_into naming the
 * survivor's, its operator's capacity released. What moved is recorded
 * under "routing" in the merge's record; the undo moves those
 * conversations back, deletes the copies, reopens the absorbed
 * conversation as it was (its operator again when they have room, else the
 * queue) and recounts the survivor's. An open conversation that moved whole
 * goes back whole, with what was added to it after the merge.
 *
 * A missed inbound call is a call-back item (timeline kind call_back,
 * counted as a message): open until the operator marks it done or an
 * outbound call to that number is seen (any call event with direction
 * "outbound" naming the number; a call-back without a number is closed by
 * any outbound call to the customer). A missed outbound call asks nothing
 * of anyone: recorded, not counted. */

/* Fills hooks with the merge's conversation side for identity_merge and
 * identity_unmerge on db, and registers its statements with db: once per
 * handle, after routing_prepare. 0, or -1 with the reason in err. */
int routing_merge_hooks (rt_db_t *db, identity_hooks_t *hooks, char *err, size_t errlen);

/* Marks call-back `item` (its timeline seq) of a conversation done by an
 * operator (by, required). Marking one done again changes nothing
 * (ROUTING_OK); an item that is not a call-back of that conversation is
 * ROUTING_ERR_NOT_FOUND. */
routing_status_t routing_callback_done (rt_db_t *db, const char *conversation_id, int64_t item,
                                        const char *by, char *err, size_t errlen);

/* Open call-backs in one operator's (operator_id) or one team's (team_id)
 * conversations that are not resolved; exactly one of the two. */
routing_status_t routing_callbacks_open (rt_db_t *db, const char *operator_id, const char *team_id,
                                         long long *out, char *err, size_t errlen);

/* An order or shipment event of a customer (kind "order" or "shipment";
 * summary a JSON object's text, stored as it is) appended to their open
 * conversation, else their latest one, once by event_id; never counted and
 * never reopening anything. conversation_id (ROUTING_ID_LEN + 1, may be
 * NULL) gets where it went, "" when the customer has no conversation (then
 * it is recorded nowhere); added (may be NULL) whether it is new. */
routing_status_t routing_order_event (rt_db_t *db, const char *customer_id, const char *event_id,
                                      const char *kind, const char *summary, int64_t occurred_at,
                                      char *conversation_id, bool *added, char *err, size_t errlen);

/* --- SLA clocks (sla_store.c) ---
 *
 * sla.h has the rules in plain words and computes; this keeps its
 * policies (routing.sla_policies), the teams' business hours and each
 * conversation's clocks (routing.sla_timers), and runs them with the
 * conversation's life: the first response clock starts at the first
 * inbound message nobody answered, the next response clock at the first
 * inbound message after an operator's reply, and a reply stops both; the
 * resolution clock starts when the conversation opens or a resolved one
 * reopens, and the resolution stops every clock. Snoozed or pending, the
 * clocks are paused; a message that reopens it, a reopen or the snooze's
 * end resumes them. A clock takes the policy sla_select picks for the
 * conversation's inbox, channel and team when it starts, and keeps it
 * until it stops. A configuration that cannot count (a business policy
 * and a team without hours) starts no clock and is logged: a message is
 * never refused for it.
 *
 * routing_tick marks clocks past their warning (routing_sla_warnings
 * lists them) and, once per clock, a clock past its due time breached:
 * SlaBreached in the outbox, the conversation flagged "supervisor" (unless
 * the policy says not) and, when the policy reassigns and the clock still
 * runs, transferred to its team (or reassign_team) with the reason
 * sla_escalation: another of that team's operators, else its queue. A
 * reply after the due time that came before the tick still breaches. */

/* One clock past its warning and not yet breached nor stopped. */
typedef struct {
    char conversation_id[ROUTING_ID_LEN + 1]; /* the conversation */
    char kind[16];                            /* first_response, next_response, resolution */
    char policy[ROUTING_OP_MAX + 1];          /* the policy's name */
    char assignee[ROUTING_OP_MAX + 1];        /* the operator now, "" for none */
    char team_id[ROUTING_OP_MAX + 1];         /* the conversation's team, "" for none */
    int64_t due_ms;                           /* unix ms: the answer is due before it */
    int64_t warned_ms;                        /* unix ms: when the tick marked the warning */
} routing_sla_warning_t;

/* Stores a policy from its JSON text (sla.h's form), parsed first with
 * sla_policy_parse: a bad one is ROUTING_ERR_INVALID with the parser's
 * reason in err, as is one without a name (policies are kept by name). A
 * policy of the same name is replaced (keeping its place in the order);
 * clocks it started keep their due times. */
routing_status_t routing_sla_policy_set (rt_db_t *db, const char *json, char *err, size_t errlen);

/* Deletes the policy `name` (ROUTING_ERR_NOT_FOUND when there is none);
 * its running clocks stop at now (one already past due still breaches). */
routing_status_t routing_sla_policy_delete (rt_db_t *db, const char *name, char *err,
                                            size_t errlen);

/* Sets a team's business hours from JSON text in sla.h's calendar form
 * ({"zone": "Europe/Kyiv", "weekly": "mon-fri 09:00-18:00", "holidays":
 * [...]}; NULL: none), parsed first (ROUTING_ERR_INVALID with the reason);
 * the team's time_zone becomes the calendar's zone. ROUTING_ERR_NOT_FOUND
 * for an unknown team. Running clocks keep their due times. */
routing_status_t routing_team_hours_set (rt_db_t *db, const char *team_id, const char *json,
                                         char *err, size_t errlen);

/* The warnings marked at or after since_ms (unix ms; 0: all) of one
 * operator's conversations (operator_id), one team's (team_id), or all
 * (both NULL), oldest warning first: at most max into out, *n how many. */
routing_status_t routing_sla_warnings (rt_db_t *db, const char *operator_id, const char *team_id,
                                       int64_t since_ms, routing_sla_warning_t *out, size_t max,
                                       size_t *n, char *err, size_t errlen);

#endif
