-- routing 010: the stream's rows of a round's messages, written in sets.
--
-- routerd's consumer takes a round's messages together (inbound_many.c).
-- The stream's row triggers (004) would run a PL/pgSQL function for every
-- message and every change of a conversation at the commit: a quarter of
-- PostgreSQL's time in such a round. So, while routing_inbound_many runs,
-- the triggers stand aside (the transaction's setting routing.stream_sets
-- is 'on', which their WHEN reads, so no event is even queued), and at its
-- end it writes the same rows in two statements (inbound_many.c): an
-- event per timeline entry the batch added, and an event per conversation
-- the batch changed, against what it was before the batch (a change of
-- several messages is one event, with the conversation as they left it).
-- Their kinds, payloads and who sees them come from the functions below,
-- which the triggers call as well. The functions are SQL and STABLE, so
-- PostgreSQL inlines them into the statements (an IMMUTABLE one around
-- jsonb_build_object, which is only STABLE, would be called row by row). The batch's end stands for the commit:
-- whatever the transaction changes after it makes rows of its own through
-- the triggers.

-- What every event says of its conversation, given its customer's name.
CREATE FUNCTION routing.stream_json(c routing.conversations, name text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'conversation_id', c.id,
        'customer', jsonb_build_object('id', c.customer_id, 'name', name),
        'channel', c.channel,
        'assignee', c.assignee,
        'team', c.team_id,
        'status', c.status,
        'unanswered', c.unanswered,
        'waiting_since', routing.stream_ts(c.waiting_since))
$$;

CREATE OR REPLACE FUNCTION routing.stream_conversation_json(c routing.conversations) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    who text;
BEGIN
    SELECT cu.name INTO who FROM crm.customers cu WHERE cu.id = c.customer_id;
    RETURN routing.stream_json(c, who);
END
$$;

-- A message event's own part.
CREATE FUNCTION routing.stream_message_json(t routing.timeline) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('message',
        jsonb_build_object('seq', t.seq, 'kind', t.kind, 'id', t.event_id,
                           'channel', t.channel, 'operator_id', t.operator_id,
                           'text', left(t.body->>'text', 280),
                           'at', routing.stream_ts(t.occurred_at)))
$$;

-- A change's kind: an assignment (assignee or team changed), else a
-- status change, else the counters.
CREATE FUNCTION routing.stream_change_kind(assignee text, team text, status text,
                                           old_assignee text, old_team text, old_status text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN assignee IS DISTINCT FROM old_assignee OR team IS DISTINCT FROM old_team
                THEN 'assignment'
                WHEN status IS DISTINCT FROM old_status THEN 'conversation'
                ELSE 'counters' END
$$;

-- A change's own part: what it changed from.
CREATE FUNCTION routing.stream_previous_json(assignee text, team text, status text,
                                             unanswered integer)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('previous',
        jsonb_build_object('assignee', assignee, 'team', team, 'status', status,
                           'unanswered', unanswered))
$$;

CREATE OR REPLACE FUNCTION routing.stream_on_timeline() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c routing.conversations;
BEGIN
    SELECT * INTO c FROM routing.conversations WHERE id = NEW.conversation_id;
    INSERT INTO routing.stream (kind, conversation_id, team_id, assignee, payload)
    VALUES ('message', NEW.conversation_id, c.team_id, c.assignee,
            routing.stream_conversation_json(c) || routing.stream_message_json(NEW));
    PERFORM pg_notify('routing_stream', '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION routing.stream_on_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c routing.conversations;
BEGIN
    SELECT * INTO c FROM routing.conversations WHERE id = NEW.id;
    INSERT INTO routing.stream (kind, conversation_id, team_id, assignee, prev_team_id,
                                prev_assignee, payload)
    VALUES (routing.stream_change_kind(NEW.assignee, NEW.team_id, NEW.status,
                                       OLD.assignee, OLD.team_id, OLD.status),
            c.id, c.team_id, c.assignee, OLD.team_id, OLD.assignee,
            routing.stream_conversation_json(c)
            || routing.stream_previous_json(OLD.assignee, OLD.team_id, OLD.status,
                                            OLD.unanswered));
    PERFORM pg_notify('routing_stream', '');
    RETURN NULL;
END
$$;

-- The triggers of 004, standing aside while routing.stream_sets is on.
DROP TRIGGER stream_timeline ON routing.timeline;
CREATE CONSTRAINT TRIGGER stream_timeline AFTER INSERT ON routing.timeline
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.kind IN ('inbound', 'outbound', 'note', 'call_back') AND NEW.linked_from IS NULL
          AND current_setting('routing.stream_sets', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION routing.stream_on_timeline();
DROP TRIGGER stream_conversation ON routing.conversations;
CREATE CONSTRAINT TRIGGER stream_conversation
    AFTER UPDATE OF assignee, team_id, status, unanswered ON routing.conversations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((NEW.assignee IS DISTINCT FROM OLD.assignee OR NEW.team_id IS DISTINCT FROM OLD.team_id
           OR NEW.status IS DISTINCT FROM OLD.status OR NEW.unanswered <> OLD.unanswered)
          AND current_setting('routing.stream_sets', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION routing.stream_on_conversation();
