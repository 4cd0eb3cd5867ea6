-- crm's customer card: what routerd learns of each customer from the
-- bus (services/router/card.c writes it, in the consumer's round), beside
-- who they are (001): their orders, parcels, loyalty and feedback, as the
-- operator's card shows them (GET /v1/customers/{id}).
--
-- Every row names the customer its event resolved to when it was written,
-- in the same transaction; customers are never deleted (a merge keeps the
-- absorbed row), so the rows carry no foreign key to crm.customers.
-- The card of a customer reads its own rows and those of every customer
-- merged into it (crm.family), so a merge shows the absorbed customer's
-- history on the survivor's card and an undo takes it back, with nothing
-- moved either way. Replays change nothing: an event is taken once by its
-- envelope id (crm.card_events), and each row keeps the time of what it
-- says, so an older event arriving late never overwrites a newer fact.

-- Name and notes searched by substring in any script
-- (GET /v1/customers?q=): trigram indexes serve ILIKE '%...%'. pg_trgm is
-- in PostgreSQL's contrib, which Debian's postgresql package carries, and
-- a trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_name_trgm ON crm.customers USING gin (name gin_trgm_ops);
CREATE INDEX customers_notes_trgm ON crm.customers USING gin (notes gin_trgm_ops);

-- Who turned a suggestion down or accepted it (an operator id; NULL when
-- retain resolved it).
ALTER TABLE crm.merge_suggestions ADD COLUMN resolved_by text;

-- Times as the operator API writes them (RFC 3339 in UTC, milliseconds),
-- and unix milliseconds as the bus carries them, exactly (to_timestamp
-- goes through a double).
CREATE FUNCTION crm.iso(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
CREATE FUNCTION crm.from_ms(ms bigint) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT timestamptz 'epoch' + ms * interval '1 millisecond'
$$;

-- A customer and everyone merged into them, however deep the chain (the
-- rows the card reads). The reverse of crm.root, over the merged_into index.
CREATE FUNCTION crm.family(customer uuid) RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    WITH RECURSIVE fam(id, depth) AS (
        SELECT id, 0 FROM crm.customers WHERE id = customer
        UNION ALL
        SELECT c.id, fam.depth + 1
          FROM fam JOIN crm.customers c ON c.merged_into = fam.id
         WHERE fam.depth < 64
    )
    SELECT id FROM fam
$$;

-- The events the card took, by envelope id: the first statement of every
-- apply claims its event here, and a replay finds it taken and stops
-- before it resolves anyone. text, not uuid: an id that is no UUID is
-- still an id, and a refusal of the row would stop the consumer.
CREATE TABLE crm.card_events (
    event_id text        PRIMARY KEY,
    type     text        NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);

-- One order, from OrderPlaced, OrderPaid, OrderShipped, OrderCancelled and
-- OrderRefunded in whatever order they come: each sets its own columns,
-- and only when its time is not older than what is there. The status is
-- derived from which of those happened, so it does not depend on the order
-- the events arrived in.
CREATE TABLE crm.card_orders (
    order_id       text        PRIMARY KEY CHECK (order_id <> ''),
    customer_id    uuid        NOT NULL,
    total_minor    bigint,                 -- NULL until OrderPlaced says it
    currency       text        NOT NULL DEFAULT '',
    channel        text        NOT NULL DEFAULT '',  -- where it was placed, '' unknown
    placed_at      timestamptz,
    paid_at        timestamptz,
    paid_minor     bigint,
    payment_method text        NOT NULL DEFAULT '',
    shipped_at     timestamptz,
    promised_by    timestamptz,
    cancelled_at   timestamptz,
    cancel_reason  text        NOT NULL DEFAULT '',
    refunded_at    timestamptz,
    refunded_minor bigint,
    refund_reason  text        NOT NULL DEFAULT '',
    status         text        GENERATED ALWAYS AS (CASE
                       WHEN refunded_at IS NOT NULL THEN 'refunded'
                       WHEN cancelled_at IS NOT NULL THEN 'cancelled'
                       WHEN shipped_at IS NOT NULL THEN 'shipped'
                       WHEN paid_at IS NOT NULL THEN 'paid'
                       ELSE 'placed' END) STORED,
    -- The newest of the times above: the card lists the latest first.
    at             timestamptz GENERATED ALWAYS AS (GREATEST(placed_at, paid_at, shipped_at,
                       cancelled_at, refunded_at)) STORED,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_orders_customer ON crm.card_orders (customer_id, at DESC);

-- One parcel, from ShipmentStatusChanged, ShipmentDelayed and
-- OrderShipped. The status moves only forward in the carrier's time
-- (status_at); a delay is kept with its own time (delayed_at).
CREATE TABLE crm.card_shipments (
    shipment_id        text        PRIMARY KEY CHECK (shipment_id <> ''),
    customer_id        uuid        NOT NULL,
    order_id           text        NOT NULL DEFAULT '',
    carrier            text        NOT NULL DEFAULT '',
    tracking_number    text        NOT NULL DEFAULT '',
    -- ShipmentStatus in lower case (in_transit, delivered, ...); NULL
    -- until the carrier reports one.
    status             text,
    carrier_status     text        NOT NULL DEFAULT '',
    location           text        NOT NULL DEFAULT '',
    status_at          timestamptz,
    estimated_delivery timestamptz,
    promised_by        timestamptz,
    delayed            boolean     NOT NULL DEFAULT false,
    delay_ms           bigint,
    delay_reason       text        NOT NULL DEFAULT '',
    delayed_at         timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_shipments_customer ON crm.card_shipments (customer_id, updated_at DESC);

-- Points, tier and churn risk, from PointsEarned, TierChanged and
-- ChurnRiskChanged; each part with the time of its event (the envelope's
-- occurred_at), so an older one changes nothing.
CREATE TABLE crm.card_loyalty (
    customer_id      uuid        PRIMARY KEY,
    points           bigint,
    points_at        timestamptz,
    tier             text,
    discount_percent integer,
    tier_at          timestamptz,
    risk             text,
    p_alive          double precision,
    segment          text,
    risk_at          timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Each FeedbackReceived, by its envelope id.
CREATE TABLE crm.card_feedback (
    event_id        text        PRIMARY KEY,
    customer_id     uuid        NOT NULL,
    kind            text        NOT NULL DEFAULT '',  -- csat, nps, review
    score           integer     NOT NULL,
    comment         text        NOT NULL DEFAULT '',
    conversation_id text        NOT NULL DEFAULT '',
    order_id        text        NOT NULL DEFAULT '',
    channel         text        NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL
);
CREATE INDEX card_feedback_customer ON crm.card_feedback (customer_id, received_at DESC);
