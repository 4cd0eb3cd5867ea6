-- Retention judged by busd's clock. busd decides which ids it accepts by
-- its own clock (rt_clock, which tests move), so the partitions it keeps
-- and drops are judged by the same clock, passed in, not the server's
-- now(): one clock, so "accepted" and "kept" can never disagree.
DROP FUNCTION bus.drop_expired(interval);

-- Drops the daily partitions that ended more than `keep` before `at`
-- (by the ids' time, which is when producers made the events), unless some
-- consumer group has not yet consumed an event in them. Returns the names
-- dropped.
CREATE FUNCTION bus.drop_expired(keep interval, at timestamptz) RETURNS SETOF text
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
        IF day_end > at - keep THEN
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
