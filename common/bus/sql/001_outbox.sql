-- The outbox: the transactional door onto the bus. Any service inserts
-- serialized envelopes into outbox.pending in the transaction that changes
-- its own state; busd moves them into the log and deletes them. Owned by
-- common/bus (rt_outbox.h), applied by every daemon that produces through
-- it and by busd, which drains it.

CREATE TABLE outbox.pending (
    id         bigserial   PRIMARY KEY,
    envelope   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A queue table: every row is deleted soon after it is inserted. Vacuum it
-- by row count rather than by table fraction, without the cost delay, so
-- the drain does not wade through dead rows.
ALTER TABLE outbox.pending SET (autovacuum_vacuum_scale_factor = 0,
                                autovacuum_vacuum_threshold = 5000,
                                autovacuum_vacuum_cost_delay = 0,
                                autovacuum_analyze_scale_factor = 0,
                                autovacuum_analyze_threshold = 5000);

-- Once per inserting statement, not per row: a round of a thousand
-- envelopes wakes busd once. The channel is RT_OUTBOX_CHANNEL.
CREATE FUNCTION outbox.notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER pending_notify AFTER INSERT ON outbox.pending
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.notify();

-- Rows busd could not accept (they would never parse), kept for a human
-- instead of blocking the outbox or vanishing. id is the row's id in
-- outbox.pending.
CREATE TABLE outbox.rejected (
    id          bigint      NOT NULL,
    envelope    bytea       NOT NULL,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
