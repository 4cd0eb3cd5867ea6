-- tracking: every parcel retain follows, from its registration to its last
-- word from the carrier. retain-trackerd writes it (services/tracker/); it
-- reads crm for nothing and writes nothing else but the outbox.
--
-- The poll contract (DESIGN, "Effects outside PostgreSQL"):
--   * A shipment is a row made in the consumer's transaction of the
--     OrderShipped that announced it (or by `retainctl shipment add`),
--     unique on (carrier, tracking number, service): a repeated
--     OrderShipped finds its row and makes nothing new.
--   * A worker claims a batch of due shipments of one carrier account
--     (tracking.claim) in a committed transaction that takes the
--     account's next call slot and quota, stamps the batch with a fresh
--     poll token and a lease (lease_until), before the request leaves; a
--     parcel under a live lease is claimed by nobody else. The outcome is recorded in a transaction of its own, with
--     its events in the outbox, and only for the rows whose token still
--     matches: a worker that lost its lease (it stalled, another replica
--     polled the parcel again) records nothing. A crash mid-cycle leaves
--     the lease to expire; the parcel is polled again and, as the status
--     is compared with the stored one, no change is lost or emitted twice.
--
-- Carrier limits hold across replicas because the slots live here: a
-- claim takes the account's row lock, moves next_call_at by the account's
-- spacing and counts the day's quota in the same statement, so two
-- replicas together never call closer than the spacing nor past the quota.
-- All times are the daemon's clock, passed in as unix ms ($now): a test
-- sets that clock for every daemon at once.

-- What retain knows of each carrier beyond its adapter: when a parcel with
-- no news counts as stuck, and when it expires.
CREATE TABLE tracking.carriers (
    name         text     PRIMARY KEY,  -- carrier.h's carrier_t.name
    stuck_after  interval NOT NULL,     -- no event for this long: ShipmentDelayed "stalled"
    expire_after interval NOT NULL DEFAULT '30 days'  -- no news for this long: Expired
);
INSERT INTO tracking.carriers (name, stuck_after) VALUES
    ('nova_poshta', '3 days'), ('ukrposhta', '7 days'), ('meest', '5 days'),
    ('dhl', '5 days'), ('ups', '4 days');

-- A carrier account: credentials and the budget that goes with them.
CREATE TABLE tracking.accounts (
    id              text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    carrier         text        NOT NULL REFERENCES tracking.carriers (name),
    is_default      boolean     NOT NULL DEFAULT false,  -- the carrier's account when none is named
    base_url        text        NOT NULL DEFAULT '',     -- '': the daemon's RETAIN_TRACKER_*_API
    api_key         text        NOT NULL DEFAULT '',     -- a secret: never logged
    client_id       text        NOT NULL DEFAULT '',     -- UPS OAuth
    client_secret   text        NOT NULL DEFAULT '',     -- UPS OAuth: a secret
    language        text        NOT NULL DEFAULT '',     -- asked for in answers, '': default
    -- The budget: calls at least this far apart (DHL's 1 call/s), at most
    -- this many a day (DHL's tier: 250), counted per UTC day (DHL resets at
    -- 24:00 GMT), and polls of one parcel a day (DHL: 10).
    min_interval_ms integer     NOT NULL DEFAULT 0 CHECK (min_interval_ms >= 0),
    daily_quota     integer     CHECK (daily_quota > 0),  -- NULL: none
    per_parcel_day  integer     CHECK (per_parcel_day > 0),  -- NULL: none
    quota_day       date,
    quota_used      integer     NOT NULL DEFAULT 0,
    next_call_at    bigint      NOT NULL DEFAULT 0,  -- unix ms: the next slot (spacing, backoff)
    failures        integer     NOT NULL DEFAULT 0,  -- transient failures in a row
    paused_at       bigint,                          -- the carrier refused the credentials ...
    paused_reason   text,                            -- ... saying this; cleared by an operator
    access_token    text,                            -- UPS: the cached bearer token
    token_expires   bigint,                          -- its end, unix ms
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((paused_at IS NULL) = (paused_reason IS NULL))
);
CREATE UNIQUE INDEX accounts_default ON tracking.accounts (carrier) WHERE is_default;

CREATE TABLE tracking.shipments (
    id               text        PRIMARY KEY,  -- OrderShipped.shipment_id, or retain's own
    order_id         text        NOT NULL DEFAULT '',
    customer_id      text        NOT NULL DEFAULT '',
    carrier          text        NOT NULL REFERENCES tracking.carriers (name),
    account          text        REFERENCES tracking.accounts (id),  -- NULL: the default's
    tracking_number  text        NOT NULL,
    service          text        NOT NULL DEFAULT '',  -- DHL's service
    phone            text        NOT NULL DEFAULT '',  -- Nova Poshta's full record: digits
    shipped_at       bigint      NOT NULL,             -- unix ms
    promised_by      bigint,                           -- unix ms, NULL: no promise
    origin_city      text        NOT NULL DEFAULT '',
    destination_city text        NOT NULL DEFAULT '',
    -- The status: the carrier's raw one, and what it means.
    tag              text        NOT NULL DEFAULT 'Pending',
    sub_status       text        NOT NULL DEFAULT 'Pending_001',
    to_sender        boolean     NOT NULL DEFAULT false,  -- the parcel goes back
    raw_code         text        NOT NULL DEFAULT '',
    raw_text         text        NOT NULL DEFAULT '',
    location         text        NOT NULL DEFAULT '',
    status_at        bigint,     -- when the carrier stamped the current status
    carrier_eta      bigint,     -- the carrier's expected delivery
    delivered_at     bigint,
    storage_until    bigint,     -- free storage at the pickup point ends
    cod_state        text        NOT NULL DEFAULT '',
    news_at          bigint      NOT NULL,  -- the last change the carrier reported (or registration)
    not_found        integer     NOT NULL DEFAULT 0,  -- "not found" answers in a row
    final            boolean     NOT NULL DEFAULT false,  -- polling stopped
    last_error       text        NOT NULL DEFAULT '',     -- the carrier refused this parcel's request so
    -- Polling.
    next_poll_at     bigint      NOT NULL,  -- unix ms
    poll_token       uuid,                  -- the claim in flight, NULL: none ...
    lease_until      bigint,                -- ... until then (unix ms): then it is claimed again
    polls            integer     NOT NULL DEFAULT 0,
    poll_day         date,                  -- per_parcel_day's count ...
    polls_day        integer     NOT NULL DEFAULT 0,  -- ... that day
    -- What was said already, each once: ShipmentDelayed reasons, milestone
    -- templates.
    delays           text[]      NOT NULL DEFAULT '{}',
    milestones       text[]      NOT NULL DEFAULT '{}',
    -- retain's own estimate (estimate.h), refreshed at each poll.
    est_at           bigint,     -- expected delivery, NULL: no data
    est_low          bigint,     -- the spread: p10 ...
    est_high         bigint,     -- ... p90
    risk             double precision,  -- the chance of missing promised_by
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (carrier, tracking_number, service)
) WITH (fillfactor = 70);
-- Room on each page (fillfactor) lets a claim, which changes no indexed
-- column (the lease is not next_poll_at), update its rows in place (HOT):
-- a poll then costs the indexes one new entry, the outcome's, not two.
CREATE INDEX shipments_due ON tracking.shipments (next_poll_at) WHERE NOT final;
CREATE INDEX shipments_order ON tracking.shipments (order_id) WHERE order_id <> '';
CREATE INDEX shipments_customer ON tracking.shipments (customer_id) WHERE customer_id <> '';

-- Every status the carrier reported, in the carrier's words and in retain's:
-- the history the tracking page shows. Carriers that give a whole history
-- per answer give the same events again: (shipment, at, code) keeps each once.
CREATE TABLE tracking.events (
    shipment_id text      NOT NULL REFERENCES tracking.shipments (id) ON DELETE CASCADE,
    at          bigint    NOT NULL,  -- unix ms, as the carrier stamped it (or when seen)
    code        text      NOT NULL,
    text        text      NOT NULL DEFAULT '',
    location    text      NOT NULL DEFAULT '',
    tag         text,                -- mapped, NULL: a code not in the table
    sub_status  text,
    -- The one index: what keeps each event once is also how a parcel's
    -- history is read, in order.
    PRIMARY KEY (shipment_id, at, code)
);

-- The shop's milestone settings: which moments speak to the customer, in
-- which template (notifyd's, DESIGN's shipment_<tag>). A moment is a tag
-- the parcel reaches, or 'Shipped' (registered: the tracking link goes
-- out) or 'StorageReminder' (the storage deadline is near). Each speaks
-- once per parcel. InTransit is there for shops that want it, off by
-- default: "shipped" has said it already.
CREATE TABLE tracking.milestones (
    tag      text    PRIMARY KEY,
    template text    NOT NULL CHECK (template ~ '^[a-z0-9_]{1,63}$'),
    enabled  boolean NOT NULL DEFAULT true
);
INSERT INTO tracking.milestones (tag, template, enabled) VALUES
    ('Shipped', 'shipment_shipped', true),
    ('InTransit', 'shipment_in_transit', false),
    ('OutForDelivery', 'shipment_out_for_delivery', true),
    ('AvailableForPickup', 'shipment_available_for_pickup', true),
    ('Delivered', 'shipment_delivered', true),
    ('StorageReminder', 'shipment_storage_reminder', true);

-- Claims the next batch: the most overdue account with a free slot, its
-- due parcels up to $batch, the slot (the spacing and a margin for the
-- way from here to the carrier, which varies) and quota taken, the parcels stamped
-- with $token and leased until $now + $lease_ms (next_poll_at stays: a
-- parcel whose lease ends unrecorded is due at once). Accounts are tried most
-- overdue first; SKIP LOCKED keeps two replicas from waiting on each
-- other. Returns nothing when no account may call now.
CREATE FUNCTION tracking.claim(p_now bigint, p_token uuid, p_lease_ms bigint,
                               p_carrier text, p_batch integer, p_margin_ms bigint)
RETURNS TABLE (shipment_id text, account text, tracking_number text, service text,
               phone text, tag text, sub_status text, raw_code text, status_at bigint,
               not_found integer, shipped_at bigint, promised_by bigint, news_at bigint,
               carrier_eta bigint, storage_until bigint, delays text[], milestones text[],
               customer_id text, order_id text, origin_city text, destination_city text,
               to_sender boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    a tracking.accounts%ROWTYPE;
    today date := (to_timestamp(p_now / 1000.0) AT TIME ZONE 'UTC')::date;
BEGIN
    FOR a IN
        SELECT * FROM tracking.accounts ac
         WHERE ac.carrier = p_carrier AND ac.paused_at IS NULL AND ac.next_call_at <= p_now
           AND (ac.daily_quota IS NULL OR ac.quota_day IS DISTINCT FROM today
                OR ac.quota_used < ac.daily_quota)
           AND EXISTS (SELECT 1 FROM tracking.shipments s
                        WHERE NOT s.final AND s.next_poll_at <= p_now
                          AND (s.poll_token IS NULL OR s.lease_until <= p_now)
                          AND (s.account = ac.id OR (s.account IS NULL AND ac.is_default)))
         ORDER BY ac.next_call_at
         FOR UPDATE SKIP LOCKED
    LOOP
        RETURN QUERY
        WITH due AS (
            SELECT s.id FROM tracking.shipments s
             WHERE NOT s.final AND s.next_poll_at <= p_now
               AND (s.poll_token IS NULL OR s.lease_until <= p_now)
               AND s.carrier = p_carrier
               AND (s.account = a.id OR (s.account IS NULL AND a.is_default))
               AND (a.per_parcel_day IS NULL OR s.poll_day IS DISTINCT FROM today
                    OR s.polls_day < a.per_parcel_day)
             ORDER BY s.next_poll_at
             LIMIT p_batch
             FOR UPDATE SKIP LOCKED)
        UPDATE tracking.shipments s
           SET poll_token = p_token, lease_until = p_now + p_lease_ms, polls = s.polls + 1,
               polls_day = CASE WHEN s.poll_day IS DISTINCT FROM today THEN 1
                                ELSE s.polls_day + 1 END,
               poll_day = today
          FROM due
         WHERE s.id = due.id
        RETURNING s.id, a.id, s.tracking_number, s.service, s.phone, s.tag, s.sub_status,
                  s.raw_code, s.status_at, s.not_found, s.shipped_at, s.promised_by,
                  s.news_at, s.carrier_eta, s.storage_until, s.delays, s.milestones,
                  s.customer_id, s.order_id, s.origin_city, s.destination_city, s.to_sender;
        IF FOUND THEN
            UPDATE tracking.accounts
               SET next_call_at = p_now + min_interval_ms
                                  + CASE WHEN min_interval_ms > 0 THEN p_margin_ms ELSE 0 END,
                   quota_used = CASE WHEN quota_day IS DISTINCT FROM today THEN 1
                                     ELSE quota_used + 1 END,
                   quota_day = today
             WHERE id = a.id;
            RETURN;
        END IF;
    END LOOP;
END $$;

-- Times as the API and the tracking page show them: ISO 8601 in UTC, or
-- in a zone with a format; '' for none.
CREATE FUNCTION tracking.iso(ms bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
    SELECT COALESCE(to_char(to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '')
$$;
CREATE FUNCTION tracking.local(ms bigint, zone text, fmt text) RETURNS text STABLE
LANGUAGE sql AS $$
    SELECT COALESCE(to_char(to_timestamp(ms / 1000.0) AT TIME ZONE zone, fmt), '')
$$;

-- retain's own estimate (estimate.h): what delivered parcels taught of
-- each lane, as the sufficient statistics of log(transit hours) — count,
-- mean and Welford's sum of squared deviations — so one row per lane
-- holds it and a delivery updates it in the transaction that records it.
-- A lane is (carrier, origin, destination); '*' stands for any city, so
-- each delivery teaches its exact lane, its destination from anywhere and
-- the carrier as a whole, the fallbacks of a lane with few samples.
CREATE TABLE tracking.lanes (
    carrier     text             NOT NULL REFERENCES tracking.carriers (name),
    origin      text             NOT NULL,
    destination text             NOT NULL,
    n           bigint           NOT NULL CHECK (n > 0),
    mean        double precision NOT NULL,
    m2          double precision NOT NULL CHECK (m2 >= 0),
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (carrier, origin, destination)
);

-- Teaches the three lanes of one delivered parcel x = ln(transit hours),
-- as estimate_sample (estimate.h) took it from the transit time (the rule
-- of what a lesson is stays there): Welford's update, n' = n + 1,
-- mean' = mean + (x - mean) / n', m2' = m2 + (x - mean) (x - mean').
-- Every SET expression reads the old row, so this is the C's arithmetic.
CREATE FUNCTION tracking.lane_learn(p_carrier text, p_origin text, p_destination text,
                                    p_x double precision) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO tracking.lanes AS l (carrier, origin, destination, n, mean, m2)
    SELECT p_carrier, o, d, 1, p_x, 0
      FROM (VALUES (COALESCE(NULLIF(p_origin, ''), '*'), COALESCE(NULLIF(p_destination, ''), '*')),
                   ('*', COALESCE(NULLIF(p_destination, ''), '*')),
                   ('*', '*')) AS v (o, d)
     GROUP BY o, d
    ON CONFLICT (carrier, origin, destination) DO UPDATE
       SET n = l.n + 1,
           mean = l.mean + (p_x - l.mean) / (l.n + 1),
           m2 = l.m2 + (p_x - l.mean) * (p_x - (l.mean + (p_x - l.mean) / (l.n + 1))),
           updated_at = now()
$$;
