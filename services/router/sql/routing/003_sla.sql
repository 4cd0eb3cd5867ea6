-- routing 003: SLA policies, teams' business hours and the clocks of each
-- conversation (services/router/sla_store.c keeps them; sla.h has the
-- rules in plain words, routing.h the functions).

-- A policy as it was accepted (routing_sla_policy_set parsed it with
-- sla_policy_parse first), kept as its text so that what an operator typed
-- is what retainctl and the API show back. Between two policies of the
-- same kind the first listed wins: listed by created_at, which a
-- replacement keeps.
CREATE TABLE routing.sla_policies (
    name       text        PRIMARY KEY CHECK (name <> ''),
    policy     text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- A team's business hours in sla.h's calendar form ({"zone", "weekly",
-- "holidays"}), NULL for none: a business-hours policy without hours of
-- its own counts in these. time_zone (001) follows the calendar's zone.
ALTER TABLE routing.teams ADD COLUMN business_hours text;

-- The running clocks: one row per conversation and kind. A table of their
-- own rather than columns on routing.conversations: three kinds of seven
-- fields each would widen the row every inbound message rewrites, most
-- conversations run one or two clocks, and the timer's scan wants indexes
-- holding only the clocks still to warn or breach, which a table of
-- clocks keeps small. A clock restarts in place (the next wait of next
-- response, a reopened conversation's resolution), so a conversation has
-- at most three rows.
--
-- No foreign key to routing.conversations: a clock is written only in the
-- transaction that holds its conversation's row (locked), nothing deletes
-- conversations, and a key would make every TRUNCATE of the conversations
-- (a test's, an operator's clean-up) name this table too.
CREATE TABLE routing.sla_timers (
    conversation_id uuid        NOT NULL,
    kind            text        NOT NULL
                                CHECK (kind IN ('first_response', 'next_response', 'resolution')),
    policy          text        NOT NULL,  -- the policy's name when it started
    team_id         text,                  -- whose calendar it counts in (NULL: none)
    start_at        timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,  -- the first breached instant, pauses included
    warn_at         timestamptz NOT NULL,  -- due_at when the policy warns not
    paused_at       timestamptz,           -- snoozed or pending since; NULL: running
    warned_at       timestamptz,           -- the tick that marked the warning
    breached_at     timestamptz,           -- the tick that emitted SlaBreached (once)
    stopped_at      timestamptz,           -- the reply or the resolution that stopped it
    PRIMARY KEY (conversation_id, kind),
    CHECK (warn_at <= due_at)
);
-- The tick's two scans. A clock stopped in time is in neither: it can no
-- longer warn or breach. One stopped late (a reply after the due time the
-- tick had not reached yet) still breaches, once.
CREATE INDEX sla_timers_to_warn ON routing.sla_timers (warn_at)
    WHERE warned_at IS NULL AND breached_at IS NULL AND stopped_at IS NULL;
CREATE INDEX sla_timers_to_breach ON routing.sla_timers (due_at)
    WHERE breached_at IS NULL AND (stopped_at IS NULL OR stopped_at >= due_at);
