-- routing: conversations, their timeline, the operators who answer them
-- and how conversations reach operators. routerd writes it
-- (services/router/conversation.c, assign.c; routing.h has the rules).
--
-- What PostgreSQL keeps here, so that any number of routerd replicas can
-- work at once: one open conversation per customer (a partial unique
-- index), an operator never over capacity (a CHECK the assigning UPDATE
-- cannot get past), one timeline entry per event (a unique index on the
-- envelope id, so a replayed event adds nothing). Every time is written
-- from routerd's clock (rt_clock), never now(), so tests can move it.

-- A team of operators and how it hands out conversations.
CREATE TABLE routing.teams (
    id              text        PRIMARY KEY CHECK (id <> ''),
    name            text        NOT NULL DEFAULT '',
    -- balanced: the fewest open conversations; round_robin: the least
    -- recently assigned.
    policy          text        NOT NULL DEFAULT 'balanced'
                                CHECK (policy IN ('balanced', 'round_robin')),
    -- How long a conversation waits for the customer's own manager (busy
    -- or away) before the policy hands it to someone else.
    manager_wait_ms bigint      NOT NULL DEFAULT 300000 CHECK (manager_wait_ms >= 0),
    time_zone       text        NOT NULL DEFAULT 'UTC',  -- IANA, for business hours (SLA)
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- An operator. The API key is common/http's (hashed there); key_id only
-- names it, NULL for an operator without one yet.
CREATE TABLE routing.operators (
    id               text        PRIMARY KEY CHECK (id <> ''),
    name             text        NOT NULL DEFAULT '',
    team_id          text        NOT NULL REFERENCES routing.teams,
    role             text        NOT NULL DEFAULT 'operator'
                                 CHECK (role IN ('operator', 'supervisor', 'admin')),
    languages        text[]      NOT NULL DEFAULT '{}',  -- BCP 47 primary tags: uk, ru, en
    skills           text[]      NOT NULL DEFAULT '{}',
    capacity         integer     NOT NULL DEFAULT 8 CHECK (capacity >= 0),
    -- Conversations assigned to them and not resolved. The CHECK is the
    -- capacity itself: two replicas assigning at once cannot both pass it,
    -- whatever the code above it does. Lowering capacity below what an
    -- operator holds is refused for the same reason (let them resolve
    -- first).
    open_count       integer     NOT NULL DEFAULT 0
                                 CHECK (open_count >= 0 AND open_count <= capacity),
    presence         text        NOT NULL DEFAULT 'offline'
                                 CHECK (presence IN ('online', 'away', 'offline')),
    presence_at      timestamptz,  -- when presence last changed (the offline grace counts from it)
    heartbeat_at     timestamptz,  -- the last sign of life from their console
    last_assigned_at timestamptz,  -- round robin's order
    disabled_at      timestamptz,  -- a disabled operator gets nothing
    key_id           text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- Candidates of a team's policy.
CREATE INDEX operators_team ON routing.operators (team_id) WHERE disabled_at IS NULL;

-- A customer's conversation with the shop, across every channel.
CREATE TABLE routing.conversations (
    id               uuid        PRIMARY KEY,
    customer_id      uuid        NOT NULL REFERENCES crm.customers,
    status           text        NOT NULL DEFAULT 'open'
                                 CHECK (status IN ('open', 'pending', 'snoozed', 'resolved')),
    snoozed_until    timestamptz CHECK ((status = 'snoozed') = (snoozed_until IS NOT NULL)),
    team_id          text        REFERENCES routing.teams,  -- NULL: any team's operator
    -- Who handles it. Kept on a resolved conversation (who handled it);
    -- counted in their open_count while it is not resolved.
    assignee         text        REFERENCES routing.operators,
    -- The channel and inbox of the customer's last message: where a reply
    -- goes unless the operator picks another the customer used.
    channel          text        NOT NULL,
    inbox            text        NOT NULL DEFAULT '',
    language         text,                        -- wanted of its operator, NULL: any
    skills           text[]      NOT NULL DEFAULT '{}',  -- wanted of its operator
    -- Messages since the last operator reply, and since when the oldest of
    -- them waits. Both move together.
    unanswered       integer     NOT NULL DEFAULT 0 CHECK (unanswered >= 0),
    waiting_since    timestamptz CHECK ((unanswered = 0) = (waiting_since IS NULL)),
    last_inbound_at  timestamptz,
    last_outbound_at timestamptz,
    -- Since when it waits for an operator (the queue's order), NULL when
    -- it has one or is not open.
    queued_since     timestamptz,
    -- Waiting for the customer's manager until then; the policy takes over
    -- after it (routing_tick).
    manager_until    timestamptz,
    flags            text[]      NOT NULL DEFAULT '{}',  -- supervisor, ...
    -- Grows at every assignment change: a transfer names the version it
    -- saw, so of two concurrent transfers the second finds it moved.
    version          bigint      NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL,
    resolved_at      timestamptz CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- One conversation per customer that is not resolved: two replicas
-- handling the same customer's Telegram and Instagram messages at once
-- meet here (INSERT ... ON CONFLICT) and share one conversation.
CREATE UNIQUE INDEX conversations_one_open ON routing.conversations (customer_id)
    WHERE status <> 'resolved';
-- The queue is the conversations themselves (open, nobody assigned): no
-- second table that could disagree with them. This index keeps only those
-- rows, oldest first, so handing out the queue reads a handful of entries.
CREATE INDEX conversations_queue ON routing.conversations (queued_since)
    WHERE assignee IS NULL AND status = 'open';
-- An operator's conversations (rebalancing, their inbox, counters).
CREATE INDEX conversations_assignee ON routing.conversations (assignee)
    WHERE status <> 'resolved';
CREATE INDEX conversations_team ON routing.conversations (team_id) WHERE status <> 'resolved';
CREATE INDEX conversations_customer ON routing.conversations (customer_id);

-- Everything that happened in a conversation, in order: messages both
-- ways, receipts, notes, assignment and status changes, call-backs, the
-- customer's orders and shipments. seq is global (a bigserial: no counter
-- row for concurrent writers to queue on), and orders one conversation's
-- entries as well as any.
CREATE TABLE routing.timeline (
    seq             bigserial   PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES routing.conversations,
    kind            text        NOT NULL CHECK (kind IN ('inbound', 'outbound', 'note', 'assignment',
                                    'status', 'call_back', 'order', 'shipment', 'receipt')),
    -- The event's envelope id (an outbound message's id). Unique: a
    -- replayed event finds its entry and changes nothing.
    event_id        uuid        UNIQUE,
    channel         text,
    -- Whether it counted as unanswered (an inbound message, a missed
    -- call): the recount of the counter reads it.
    counted         boolean     NOT NULL DEFAULT false,
    operator_id     text,       -- who wrote it or made the change
    body            jsonb       NOT NULL DEFAULT '{}',
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX timeline_conversation ON routing.timeline (conversation_id, seq);
