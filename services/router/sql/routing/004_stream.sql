-- routing 004: the operators' event feed, GET /v1/stream
-- (services/router/api/api_stream.c reads it).
--
-- Every change an operator's console shows live (a message, an
-- assignment, the counters, a status, an SLA warning or breach) becomes a
-- row of routing.stream, written by triggers in the transaction that made
-- the change. So whoever writes (routerd's consumer, its timer, the API, on
-- any replica, or an operator's SQL) feeds the stream without a line of C,
-- and every replica's API reads one feed, complete whichever replica
-- handled the event. Each trigger also sends NOTIFY routing_stream:
-- PostgreSQL folds identical notifications of one transaction into one,
-- delivered at commit, which wakes every replica's reader.
--
-- The reading order, safe under concurrent commits. seq is a bigserial,
-- taken when the row is written, not when its transaction commits: a
-- transaction can take seq 9, another seq 10 and commit first, and a
-- reader that gave out 10 and then resumed "after 10" would never give 9.
-- So each row also carries its transaction's id (xid, a 64-bit xid8 that
-- never wraps), and a reader takes only rows whose xid is below
-- pg_snapshot_xmin(pg_current_snapshot()), read in the same statement as
-- the rows (one snapshot): every transaction below that xmin has ended,
-- and a transaction still to write a row has, or will get, an xid at or
-- above it. The rows below the horizon are therefore final: none will be
-- added among them. Read in (xid, seq) order, the position "(xid, seq) of
-- the last row given" is a resumption point that skips nothing and repeats
-- nothing: the event id a client sees (SSE's id, sent back as
-- Last-Event-ID) is "<xid>-<seq>", and resuming reads (xid, seq) > it.
-- The price: an event waits for every transaction older than it to end,
-- so a long transaction anywhere on the cluster delays the feed (never
-- loses from it); routerd's transactions are short.
--
-- The triggers are deferred to the commit (in the order of the changes),
-- so the conversation an event describes and whose rule decides who sees
-- it (its assignee, team and counters) is as the transaction leaves it: a
-- message that opens a conversation and gets it assigned names its
-- operator, and is never shown, for an instant that nobody could observe,
-- as a conversation of no team to every operator. Entries a merge copies (linked_from) are not new
-- messages and make no event; the merge's counters do.
--
-- Retention: routing.stream_prune deletes the rows older than a given age
-- (routerd's reader calls it at most once a minute, keeping 24 hours) and
-- records in routing.stream_pruned the last position it deleted; a client
-- resuming from a position at or before it may have missed events and is
-- told to reload (an event "reset"). The age is the database's now(): it
-- is about storage, not about the business clocks rt_clock sets, which
-- the events carry in their payloads.

CREATE TABLE routing.stream (
    seq             bigserial   NOT NULL,
    xid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text        NOT NULL CHECK (kind IN ('message', 'assignment', 'counters',
                                    'sla_warning', 'sla_breached', 'conversation')),
    conversation_id uuid        NOT NULL,
    -- Who may see it (api.h's rule: the team, or the assignee's team, or
    -- anyone when it has neither), as the transaction left the
    -- conversation; for an assignment also who had it before.
    team_id         text,
    assignee        text,
    prev_team_id    text,
    prev_assignee   text,
    payload         jsonb       NOT NULL,  -- the event's data, as the API sends it
    PRIMARY KEY (xid, seq)
);
CREATE INDEX stream_at ON routing.stream (at);

-- The last position routing.stream_prune deleted (one row, once it ran).
CREATE TABLE routing.stream_pruned (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    xid xid8    NOT NULL,
    seq bigint  NOT NULL
);

-- A time as the API writes them.
CREATE FUNCTION routing.stream_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- What every event says of its conversation.
CREATE FUNCTION routing.stream_conversation_json(c routing.conversations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'conversation_id', c.id,
        'customer', jsonb_build_object('id', c.customer_id,
                                       'name', (SELECT cu.name FROM crm.customers cu
                                                WHERE cu.id = c.customer_id)),
        'channel', c.channel,
        'assignee', c.assignee,
        'team', c.team_id,
        'status', c.status,
        'unanswered', c.unanswered,
        'waiting_since', routing.stream_ts(c.waiting_since))
$$;

-- A message (inbound, outbound, a note, a missed call's call-back).
CREATE FUNCTION routing.stream_on_timeline() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c routing.conversations;
BEGIN
    SELECT * INTO c FROM routing.conversations WHERE id = NEW.conversation_id;
    INSERT INTO routing.stream (kind, conversation_id, team_id, assignee, payload)
    VALUES ('message', NEW.conversation_id, c.team_id, c.assignee,
            routing.stream_conversation_json(c) || jsonb_build_object('message',
                jsonb_build_object('seq', NEW.seq, 'kind', NEW.kind, 'id', NEW.event_id,
                                   'channel', NEW.channel, 'operator_id', NEW.operator_id,
                                   'text', left(NEW.body->>'text', 280),
                                   'at', routing.stream_ts(NEW.occurred_at))));
    PERFORM pg_notify('routing_stream', '');
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER stream_timeline AFTER INSERT ON routing.timeline
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.kind IN ('inbound', 'outbound', 'note', 'call_back') AND NEW.linked_from IS NULL)
    EXECUTE FUNCTION routing.stream_on_timeline();

-- An assignment (assignee or team changed), else a status change, else
-- the counters: one event per change, with what it changed from, and the
-- conversation as its transaction left it.
CREATE FUNCTION routing.stream_on_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c routing.conversations;
    k text := 'counters';
BEGIN
    IF NEW.assignee IS DISTINCT FROM OLD.assignee OR NEW.team_id IS DISTINCT FROM OLD.team_id THEN
        k := 'assignment';
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        k := 'conversation';
    END IF;
    SELECT * INTO c FROM routing.conversations WHERE id = NEW.id;
    INSERT INTO routing.stream (kind, conversation_id, team_id, assignee, prev_team_id,
                                prev_assignee, payload)
    VALUES (k, c.id, c.team_id, c.assignee, OLD.team_id, OLD.assignee,
            routing.stream_conversation_json(c) || jsonb_build_object('previous',
                jsonb_build_object('assignee', OLD.assignee, 'team', OLD.team_id,
                                   'status', OLD.status, 'unanswered', OLD.unanswered)));
    PERFORM pg_notify('routing_stream', '');
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER stream_conversation
    AFTER UPDATE OF assignee, team_id, status, unanswered ON routing.conversations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.assignee IS DISTINCT FROM OLD.assignee OR NEW.team_id IS DISTINCT FROM OLD.team_id
          OR NEW.status IS DISTINCT FROM OLD.status OR NEW.unanswered <> OLD.unanswered)
    EXECUTE FUNCTION routing.stream_on_conversation();

-- An SLA clock's warning or breach, marked by routerd's timer.
CREATE FUNCTION routing.stream_on_sla() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c routing.conversations;
    breached boolean := OLD.breached_at IS NULL AND NEW.breached_at IS NOT NULL;
BEGIN
    SELECT * INTO c FROM routing.conversations WHERE id = NEW.conversation_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO routing.stream (kind, conversation_id, team_id, assignee, payload)
    VALUES (CASE WHEN breached THEN 'sla_breached' ELSE 'sla_warning' END, c.id, c.team_id,
            c.assignee,
            routing.stream_conversation_json(c) || jsonb_build_object('sla',
                jsonb_build_object('kind', NEW.kind, 'policy', NEW.policy,
                                   'due_at', routing.stream_ts(NEW.due_at),
                                   'at', routing.stream_ts(CASE WHEN breached THEN NEW.breached_at
                                                                ELSE NEW.warned_at END))));
    PERFORM pg_notify('routing_stream', '');
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER stream_sla AFTER UPDATE OF warned_at, breached_at ON routing.sla_timers
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((OLD.warned_at IS NULL AND NEW.warned_at IS NOT NULL)
          OR (OLD.breached_at IS NULL AND NEW.breached_at IS NOT NULL))
    EXECUTE FUNCTION routing.stream_on_sla();

-- Deletes the rows older than `keep` (and any sorting before them), only
-- among the final ones (below the horizon), and records the last position
-- deleted. Returns how many rows went.
CREATE FUNCTION routing.stream_prune(keep interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    h record;
    n bigint;
BEGIN
    SELECT s.xid, s.seq INTO h FROM routing.stream s
     WHERE s.at < now() - keep AND s.xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY s.xid DESC, s.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    DELETE FROM routing.stream WHERE (xid, seq) <= (h.xid, h.seq);
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO routing.stream_pruned AS p (one, xid, seq) VALUES (true, h.xid, h.seq)
    ON CONFLICT (one) DO UPDATE SET xid = excluded.xid, seq = excluded.seq
     WHERE (p.xid, p.seq) < (excluded.xid, excluded.seq);
    RETURN n;
END
$$;
