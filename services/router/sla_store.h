/*
 * sla_store: the hooks by which a conversation's life runs its SLA clocks
 * (sla_store.c), and the transfer an escalation goes through (assign.c).
 * What routing.c, conversation.c and assign.c call; not part of the
 * contract (routing.h has the rules).
 *
 * Every hook runs in the caller's transaction on a conversation the caller
 * has locked, at the caller's now (rt_clock's), and returns 0 or -1 with
 * the reason in err (a PostgreSQL failure: roll back). A policy that
 * cannot count is logged and starts nothing: never -1.
 */
#ifndef ROUTER_SLA_STORE_H
#define ROUTER_SLA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routing.h"

/* Registers the SLA statements with db; routing_prepare calls it. */
int routing_sla_prepare (rt_db_t *db, char *err, size_t errlen);

/* A counted inbound message taken at `at` into conversation `conv` (now
 * with `unanswered` waiting; is_new: it opened the conversation): paused
 * clocks resume at now, a new conversation starts its resolution clock,
 * the first message of a wait (unanswered 1) its first or next response
 * clock. */
int routing_sla_inbound (rt_db_t *db, const char *conv, bool is_new, int unanswered, int64_t at,
                         int64_t now, char *err, size_t errlen);

/* routing_sla_inbound for n conversations at once (each once, with its
 * first message's instant and its unanswered count as that message left
 * it: 1 when it began the wait). 0, or -1 with err filled. */
int routing_sla_inbound_many (rt_db_t *db, const char *const *conv, const bool *is_new,
                              const int *unanswered, const int64_t *at, size_t n, int64_t now,
                              char *err, size_t errlen);

/* An operator's reply: the response clocks stop. */
int routing_sla_answered (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen);

/* Resolved: every clock stops. */
int routing_sla_resolved (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen);

/* Snoozed or pending: the running clocks pause (the first pause counts). */
int routing_sla_pause (rt_db_t *db, const char *conv, int64_t now, char *err, size_t errlen);

/* Open again (a reopen, the snooze's end): paused clocks resume; a
 * conversation reopened from resolved (was_resolved) starts its
 * resolution clock afresh. */
int routing_sla_reopened (rt_db_t *db, const char *conv, bool was_resolved, int64_t now, char *err,
                          size_t errlen);

/* The tick's SLA step at now, at most batch clocks each: warnings marked
 * (*warned), breaches emitted and escalated (*breached). */
int routing_sla_tick (rt_db_t *db, size_t batch, int64_t now, size_t *warned, size_t *breached,
                      char *err, size_t errlen);

/* routing_transfer with the reason and the time given: the escalation's
 * transfer is retain's (by NULL), at the tick's now (assign.c). */
routing_status_t routing_transfer_at (rt_db_t *db, const char *conversation_id,
                                      const char *to_operator, const char *to_team, const char *by,
                                      int64_t expected_version, routing_reason_t reason,
                                      int64_t now, routing_assignment_t *out, char *err,
                                      size_t errlen);

#endif
