-- The stream's helpers without re-planning. routing.stream_ts was declared
-- IMMUTABLE around to_char, which is only STABLE, so PostgreSQL would not
-- inline it and planned it at every call (three times per stream row);
-- declared STABLE it is inlined into its callers. The payload of a
-- conversation reads the customer's name with a subquery, which no SQL
-- function can have inlined: in PL/pgSQL its plan is kept for the session.
ALTER FUNCTION routing.stream_ts(timestamptz) STABLE;

CREATE OR REPLACE FUNCTION routing.stream_conversation_json(c routing.conversations) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    who text;
BEGIN
    SELECT cu.name INTO who FROM crm.customers cu WHERE cu.id = c.customer_id;
    RETURN jsonb_build_object(
        'conversation_id', c.id,
        'customer', jsonb_build_object('id', c.customer_id, 'name', who),
        'channel', c.channel,
        'assignee', c.assignee,
        'team', c.team_id,
        'status', c.status,
        'unanswered', c.unanswered,
        'waiting_since', routing.stream_ts(c.waiting_since));
END
$$;
