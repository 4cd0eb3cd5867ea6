-- The outbox moves to a schema of its own, owned by common/bus
-- (common/bus/sql/001_outbox.sql): producers apply it without applying the
-- bus's schema. Every daemon applies the outbox's migrations before this
-- one; the rows still waiting here go there, ahead of any a producer has
-- already written there, so one key's events keep their order.

DO $$
BEGIN
    IF to_regclass('outbox.pending') IS NULL OR to_regclass('outbox.rejected') IS NULL THEN
        RAISE EXCEPTION 'the outbox schema is missing: apply the outbox migrations before bus 003';
    END IF;
END
$$;

-- No producer appends while the rows are renumbered; busd, the only
-- reader, is not draining (it migrates before it takes the writer lock).
LOCK TABLE bus.outbox, outbox.pending IN EXCLUSIVE MODE;

-- The old rows first, then those already in outbox.pending, each in id
-- order: busd drains by id, so this is the order the log will take them in.
WITH later AS (DELETE FROM outbox.pending RETURNING id, envelope, created_at)
INSERT INTO outbox.pending (envelope, created_at)
SELECT envelope, created_at
  FROM (SELECT 0 AS part, id, envelope, created_at FROM bus.outbox
        UNION ALL
        SELECT 1, id, envelope, created_at FROM later) r
 ORDER BY part, id;

INSERT INTO outbox.rejected (id, envelope, reason, rejected_at)
SELECT id, envelope, reason, rejected_at FROM bus.outbox_rejected ORDER BY rejected_at, id;

DROP TABLE bus.outbox_rejected;
DROP TABLE bus.outbox; -- and its trigger outbox_notify
DROP FUNCTION bus.outbox_notify();
