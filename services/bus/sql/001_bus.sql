-- The bus: the durable event log and what moves with it.
-- busd is the single writer of events, counters and state; consumers
-- write their own rows of offsets; any service appends to outbox.

-- Streams and their partition counts. The count is fixed once events exist:
-- changing it would move keys between partitions and break their order.
CREATE TABLE bus.streams (
    stream     text PRIMARY KEY,
    partitions int  NOT NULL CHECK (partitions BETWEEN 1 AND 4096)
);
INSERT INTO bus.streams (stream, partitions) VALUES
    ('message', 16), ('conversation', 16), ('order', 16), ('shipment', 16),
    ('notification', 16), ('loyalty', 16), ('customer', 16);

-- The global sequence: the seq of the last event appended.
CREATE TABLE bus.state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL DEFAULT 0
);
INSERT INTO bus.state DEFAULT VALUES;

-- The pseq of the last event appended to each (stream, partition). Moves in
-- the same transaction as the events, so a restarted busd goes on without
-- a gap.
CREATE TABLE bus.counters (
    stream    text   NOT NULL REFERENCES bus.streams,
    partition int    NOT NULL,
    pseq      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, partition)
);
INSERT INTO bus.counters (stream, partition)
    SELECT s.stream, p FROM bus.streams s, generate_series(0, s.partitions - 1) p;

-- The log. Partitioned by day, the day of the envelope id: ids are UUIDv7,
-- whose first 48 bits are the unix milliseconds of their making, so a
-- range of ids is a range of time. That lets the primary key be the id
-- itself (a partitioned table's unique keys must contain the partition
-- key): the log de-duplicates envelope ids on its own, globally, for as
-- long as it keeps the events, with no second table to write. Retention
-- drops whole days.
CREATE TABLE bus.events (
    seq            bigint      NOT NULL,
    stream         text        NOT NULL,
    partition      int         NOT NULL,
    pseq           bigint      NOT NULL,
    id             uuid        NOT NULL,
    type           text        NOT NULL,
    key            text        NOT NULL,
    occurred_at    bigint      NOT NULL,  -- unix ms, from the producer
    producer       text        NOT NULL,
    correlation_id text        NOT NULL,
    payload        bytea       NOT NULL,
    appended_at    timestamptz NOT NULL,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX events_stream_partition_pseq ON bus.events (stream, partition, pseq);
-- seq grows with the physical order of appends: a BRIN index finds a seq
-- range at a fraction of a btree's cost on every append.
CREATE INDEX events_seq ON bus.events USING brin (seq);

-- The smallest UUIDv7 of a moment: its unix milliseconds, then zeros.
CREATE FUNCTION bus.uuid_v7_floor(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-0000-0000-000000000000')::uuid
      FROM (SELECT lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') AS h) x
$$;

-- The transactional door: services insert serialized envelopes here in the
-- transaction that changes their state; busd moves them into the log.
CREATE TABLE bus.outbox (
    id         bigserial   PRIMARY KEY,
    envelope   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A queue table: every row is deleted soon after it is inserted. Vacuum it
-- by row count rather than by table fraction, without the cost delay, so
-- the drain does not wade through dead rows.
ALTER TABLE bus.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                            autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0,
                            autovacuum_analyze_threshold = 5000);

CREATE FUNCTION bus.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bus_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON bus.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION bus.outbox_notify();

-- Outbox rows busd could not accept (they would never parse), kept for a
-- human instead of blocking the outbox or vanishing.
CREATE TABLE bus.outbox_rejected (
    id          bigint      NOT NULL,
    envelope    bytea       NOT NULL,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

-- Each consumer group's position per (stream, partition), and the epoch of
-- the replica that owns it: a commit names its epoch, so a replica that
-- lost ownership cannot move the offset (fencing).
CREATE TABLE bus.offsets (
    grp        text        NOT NULL,
    stream     text        NOT NULL,
    partition  int         NOT NULL,
    pseq       bigint      NOT NULL DEFAULT 0,
    epoch      bigint      NOT NULL DEFAULT 0,
    owner      text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grp, stream, partition)
);

-- Creates the daily partitions of bus.events (ids made on that UTC day)
-- from `from_day` for `days` days; returns how many it created.
CREATE FUNCTION bus.ensure_partitions(from_day date, days int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    d       date;
    created int := 0;
    name    text;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        name := 'events_' || to_char(d, 'YYYYMMDD');
        IF to_regclass('bus.' || name) IS NULL THEN
            EXECUTE format('CREATE TABLE bus.%I PARTITION OF bus.events FOR VALUES FROM (%L) TO (%L)',
                           name, bus.uuid_v7_floor(d::timestamp AT TIME ZONE 'UTC'),
                           bus.uuid_v7_floor((d + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- Drops the daily partitions that ended more than `keep` ago (by the ids'
-- time, which is when producers made the events), unless some
-- consumer group has not yet consumed an event in them. Returns the names
-- dropped.
CREATE FUNCTION bus.drop_expired(keep interval) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    day_end timestamptz;
    pending boolean;
BEGIN
    FOR r IN
        SELECT c.relname
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'bus.events'::regclass AND c.relname ~ '^events_[0-9]{8}$'
         ORDER BY c.relname
    LOOP
        day_end := (to_date(substr(r.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
        IF day_end > now() - keep THEN
            CONTINUE;
        END IF;
        EXECUTE format(
            'SELECT EXISTS (SELECT 1 FROM bus.offsets o WHERE EXISTS ('
            ' SELECT 1 FROM bus.%I e WHERE e.stream = o.stream AND e.partition = o.partition'
            ' AND e.pseq > o.pseq))', r.relname) INTO pending;
        IF pending THEN
            RAISE NOTICE 'bus: keeping % past retention: a consumer group has not consumed it',
                r.relname;
            CONTINUE;
        END IF;
        EXECUTE format('DROP TABLE bus.%I', r.relname);
        RETURN NEXT r.relname;
    END LOOP;
END
$$;

SELECT bus.ensure_partitions(current_date - 1, 4);
