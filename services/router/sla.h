/*
 * sla: routerd's service-level clock. Policies, the business hours they
 * count in, due times, warnings, pauses and the state of one clock.
 *
 * Pure computation: no PostgreSQL, no bus, no clock reading. The daemon
 * stores a policy's JSON text and a conversation's sla_timer_t fields in
 * schema routing, passes the instants it reads from rt_clock, and acts on
 * what sla_state answers (SlaBreached, the flag, the escalation). Every
 * instant is unix milliseconds; zones and opening hours are rt_tz's.
 *
 * The rules in plain words
 * ------------------------
 * - A policy sets up to three targets: first response (the first reply an
 *   operator sends to a customer who is waiting), next response (every
 *   later reply the customer waits for) and resolution (the conversation
 *   resolved). A target it does not set is not measured.
 * - The clock of first response starts at the conversation's first inbound
 *   message that nobody has answered; the clock of next response at the
 *   first inbound message after the last operator reply (later messages of
 *   the same wait do not restart it); the clock of resolution when the
 *   conversation opens (or reopens). A reply stops the response clock, the
 *   resolution stops the resolution clock.
 * - Business time counts only the team's opening hours, in the team's time
 *   zone, on days that are not its holidays: "2 business hours" asked on
 *   Friday at 17:00 of a shop open Monday to Friday 09:00-18:00 are one
 *   hour on Friday and one on Monday, due Monday at 10:00. A message that
 *   arrives while the shop is closed starts counting when it opens: asked
 *   on Friday at 19:00, due Monday at 11:00. Hours follow the wall clock
 *   of the zone, so a shop opening at 09:00 opens at 09:00 local time on
 *   either side of a DST change, and a night shift the clocks shorten
 *   counts one hour less.
 * - Wall-clock time counts every hour of every day, nights, weekends, DST
 *   changes and holidays included: the marketplace rule "answer within 24
 *   hours" is due 24 real hours after the message, whatever the shop's
 *   hours are.
 * - Due means "answer before this instant": a reply at an instant before
 *   the due time is on time; at the due time the clock is breached.
 * - The warning comes when a given share of the target is used ("80%":
 *   after 6 h 24 min of an 8-hour target) or a given time before the due
 *   time ("15 minutes before"), counted on the same clock as the target.
 *   A warning lead as long as the target warns from the start.
 * - While a conversation is snoozed or pending (waiting for the customer)
 *   its clocks are paused: what was left when it paused is left when it
 *   resumes, so the due time moves later by the time the pause covered, in
 *   the policy's own time (business time for a business-hours policy: a
 *   pause over a night moves nothing). A pause does not take back a warning
 *   or a breach that came before it.
 * - Which policy applies: the one for the conversation's inbox, else the
 *   one for its channel, else the one for its team, else a policy that
 *   names none of them (the shop's default), else none. The most specific
 *   wins; between two of the same kind, the first listed.
 * - On a breach: SlaBreached on the bus, the conversation flagged for a
 *   supervisor (unless the policy turns the flag off) and, when the policy
 *   says so, taken from its operator and put back in its team's queue (or
 *   another team's the policy names).
 *
 * The stored form (JSON, as the API takes it and retainctl stores it)
 * -----------------------------------------------------------------
 *   {
 *     "name": "marketplace 24h",       label for logs and the API; optional,
 *                                      at most 64 bytes, default ""
 *     "inbox": "rozetka-main",         what it applies to: at most one of
 *     "channel": "instagram",            inbox (an ingest inbox id), channel
 *     "team": "support",                 (a name rt_channel knows) or team
 *                                        (a team id, 1 to 64 bytes); none:
 *                                        every conversation (the default)
 *     "clock": "business" | "wall",    required: how time is counted
 *     "business_hours": {              only with "business"; optional: the
 *       "zone": "Europe/Kyiv",           team's calendar (sla_calendar_t,
 *       "weekly": "mon-fri 09:00-18:00", same object) is used without it.
 *       "holidays": ["2026-12-25"]       zone an IANA name, weekly as
 *     },                                 rt_tz_hours_new takes it, holidays
 *                                        YYYY-MM-DD (optional)
 *     "first_response_minutes": 120,   the targets, whole minutes, 1 to
 *     "next_response_minutes": 60,       527040 (366 days); at least one
 *     "resolution_minutes": 2880,
 *     "warning": {"percent": 80}       optional, one of percent (1 to 99 of
 *              | {"minutes_before": 15}  the target) or minutes_before (1 to
 *                                        527040); absent: no warning
 *     "escalation": {                  optional; what a breach does
 *       "flag_supervisor": true,         default true
 *       "reassign": false,               default false; true: taken from
 *                                          its operator, back to a queue
 *       "reassign_team": "senior"        only with reassign: that team's
 *     }                                  queue; default the conversation's
 *   }
 * Unknown fields, duplicate keys, values of the wrong type, negative or
 * zero durations, unknown zones and malformed hours are refused with a
 * reason that names the field.
 *
 * Threads: a parsed policy or calendar is read-only, so any number of
 * threads use one at once; the functions keep no state.
 */
#ifndef ROUTER_SLA_H
#define ROUTER_SLA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_tz.h"
#include "retain/v1/common.pb-c.h"

#define SLA_NAME_MAX       64     /* bytes of a name, team or inbox id */
#define SLA_TARGET_MAX_MIN 527040 /* 366 days: the longest target, in minutes */

/* The three clocks a conversation runs. */
typedef enum {
    SLA_FIRST_RESPONSE = 0, /* from the first unanswered inbound message */
    SLA_NEXT_RESPONSE,      /* from the first inbound message after the last operator reply */
    SLA_RESOLUTION,         /* from the conversation's opening */
    SLA_KINDS               /* how many there are */
} sla_kind_t;

/* How a policy counts time. */
typedef enum {
    SLA_CLOCK_BUSINESS = 0, /* the team's opening hours in its zone, without holidays */
    SLA_CLOCK_WALL,         /* every millisecond */
} sla_clock_kind_t;

/* What a policy applies to; the order is the precedence, most specific
 * last. */
typedef enum {
    SLA_SCOPE_DEFAULT = 0, /* every conversation */
    SLA_SCOPE_TEAM,        /* the conversations of one team */
    SLA_SCOPE_CHANNEL,     /* the conversations whose last inbound came on one channel */
    SLA_SCOPE_INBOX,       /* the conversations whose last inbound came through one inbox */
} sla_scope_t;

/* Where a clock stands. */
typedef enum {
    SLA_OK = 0,   /* before the warning */
    SLA_WARNING,  /* the warning is due, the target not yet */
    SLA_BREACHED, /* the due time has come */
} sla_status_t;

/* A team's business hours: its zone and its week with holidays. */
typedef struct {
    rt_tz_t *tz;          /* owned */
    rt_tz_hours_t *hours; /* owned */
} sla_calendar_t;

/* What a breach does besides SlaBreached. */
typedef struct {
    bool flag_supervisor; /* flag the conversation for a supervisor */
    bool reassign;        /* take it from its operator, back to a team's queue */
    char *reassign_team;  /* that team; NULL: the conversation's own (owned) */
} sla_escalation_t;

/* A parsed policy (sla_policy_parse); read-only once made. */
typedef struct {
    char *name;                   /* "" when unnamed (owned) */
    sla_scope_t scope;            /* what it applies to */
    char *scope_id;               /* the team or inbox id; NULL for default and channel */
    Retain__V1__Channel channel;  /* the channel of SLA_SCOPE_CHANNEL, else UNSPECIFIED */
    sla_clock_kind_t clock;       /* business or wall-clock time */
    sla_calendar_t *calendar;     /* its own business hours; NULL: the team's (owned) */
    int64_t target_ms[SLA_KINDS]; /* by sla_kind_t; 0: not measured */
    int warn_percent;             /* 1 to 99; 0: the lead is warn_before_ms */
    int64_t warn_before_ms;       /* the lead in time when warn_percent is 0; 0: no warning */
    sla_escalation_t escalation;  /* what a breach does */
} sla_policy_t;

/* One running clock of one conversation; the daemon stores its fields. */
typedef struct {
    int64_t start_ms;     /* when it started */
    int64_t due_ms;       /* the first breached instant, pauses included */
    int64_t warn_ms;      /* the first instant of the warning; due_ms when none */
    bool paused;          /* snoozed or pending since paused_at_ms */
    int64_t paused_at_ms; /* meaningful while paused */
} sla_timer_t;

/* What sla_state answers. */
typedef struct {
    sla_status_t status; /* ok, warning or breached */
    int64_t left_ms;     /* wall ms from now (the pause's start while paused) to the due
                            time; zero or negative once breached: how late */
    bool paused;         /* the clock is paused; status and left_ms are as at the pause */
} sla_state_t;

/* "first_response", "next_response", "resolution" (as on the bus and in
 * the API); "unknown" out of range. */
const char *sla_kind_name (sla_kind_t kind);

/* "ok", "warning", "breached"; "unknown" out of range. */
const char *sla_status_name (sla_status_t status);

/* --- calendars --- */

/* A calendar from its JSON object ({"zone", "weekly", "holidays"}, as in a
 * policy's business_hours). NULL with the reason in err. */
sla_calendar_t *sla_calendar_from_json (const json_t *obj, char *err, size_t errlen);

/* Frees the calendar; safe on NULL, sets *self_p to NULL. */
void sla_calendar_destroy (sla_calendar_t **self_p);

/* --- policies --- */

/* A policy from its stored text (len bytes of JSON, the form above). NULL
 * with the reason in err. */
sla_policy_t *sla_policy_parse (const char *text, size_t len, char *err, size_t errlen);

/* The same from a parsed JSON value (the API's request body). */
sla_policy_t *sla_policy_from_json (const json_t *obj, char *err, size_t errlen);

/* Frees the policy; safe on NULL, sets *self_p to NULL. */
void sla_policy_destroy (sla_policy_t **self_p);

/* The policy that applies to a conversation of team (NULL or "": none),
 * last inbound through inbox (NULL or "": none) on channel, among n: the
 * most specific, the first listed between equals. NULL when none applies.
 * Lent: one of policies. */
const sla_policy_t *sla_select (const sla_policy_t *const *policies, size_t n, const char *team,
                                const char *inbox, Retain__V1__Channel channel);

/* --- clocks --- */

/* The due and warning instants of a clock of this kind started at
 * start_ms. A business policy counts in its own calendar, else in team
 * (NULL: none); a wall-clock policy ignores both. 1 with *due_ms and
 * *warn_ms set (*warn_ms == *due_ms without a warning), 0 when the policy
 * sets no target of this kind (nothing set), -1 with the reason in err: a
 * business policy without a calendar, a calendar with no opening ahead,
 * an instant out of range. */
int sla_due (const sla_policy_t *policy, const sla_calendar_t *team, sla_kind_t kind,
             int64_t start_ms, int64_t *due_ms, int64_t *warn_ms, char *err, size_t errlen);

/* sla_due into a running (not paused) timer: 1, 0 or -1 as sla_due. */
int sla_timer_start (const sla_policy_t *policy, const sla_calendar_t *team, sla_kind_t kind,
                     int64_t start_ms, sla_timer_t *timer, char *err, size_t errlen);

/* Pauses the timer at now_ms (snoozed, pending). Nothing when it is
 * paused already: the first pause counts. */
void sla_pause (sla_timer_t *timer, int64_t now_ms);

/* Resumes a paused timer at now_ms: the due time, and a warning still to
 * come at the pause, move later by the time the pause covered on the
 * policy's clock (business time in the calendar sla_due used; pass the
 * same). One already come at the pause stays. Nothing when it is not
 * paused. 0, or -1 with the reason in err (the timer is then unchanged). */
int sla_resume (const sla_policy_t *policy, const sla_calendar_t *team, sla_timer_t *timer,
                int64_t now_ms, char *err, size_t errlen);

/* Where the timer stands at now_ms (at the pause's start while paused). */
void sla_state (const sla_timer_t *timer, int64_t now_ms, sla_state_t *out);

#endif
