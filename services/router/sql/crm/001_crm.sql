-- crm: who the customers are, across every channel. routerd writes it
-- (services/router/identity.c); every other daemon may read it.
--
-- The rules it keeps (identity.h says them in full): a channel identity
-- and a proven phone or e-mail each belong to one customer at most, so two
-- replicas resolving the same person at once meet on a unique index and
-- end with one customer; a merge is a row that says exactly what it moved,
-- so it can be undone.

-- One person the shop talks to. id is a UUIDv7 made by routerd.
CREATE TABLE crm.customers (
    id                uuid        PRIMARY KEY,
    -- The shop system's own customer id. UNIQUE: one shop account is one
    -- customer, which is how an OrderPlaced finds its buyer; NULL for people
    -- who only ever wrote (UNIQUE lets any number of NULLs through).
    shop_customer_id  text        UNIQUE CHECK (shop_customer_id <> ''),
    name              text        NOT NULL DEFAULT '',
    birthday          date,
    locale            text        NOT NULL DEFAULT '',  -- BCP 47
    time_zone         text        NOT NULL DEFAULT '',  -- IANA name, '' when unknown
    -- A channel name as rt_channel spells it, '' for none.
    preferred_channel text        NOT NULL DEFAULT '' CHECK (preferred_channel IN ('',
                          'telegram', 'viber', 'messenger', 'instagram', 'whatsapp', 'sms',
                          'email', 'webchat', 'phone')),
    notes             text        NOT NULL DEFAULT '',
    manager           text,       -- the responsible operator's id, NULL for none
    -- Set when this customer was merged into another: everything that
    -- named them resolves to the survivor. A customer is never its own
    -- survivor (a loop would make resolution spin).
    merged_into       uuid        REFERENCES crm.customers CHECK (merged_into <> id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Who was merged into a customer (the card lists them; an undo checks them).
CREATE INDEX customers_merged_into ON crm.customers (merged_into) WHERE merged_into IS NOT NULL;

-- The survivor a customer resolves to: itself unless merged, else the end
-- of its merged_into chain (merges of merges make chains; 64 steps is far
-- past any real one and stops a corrupted loop).
CREATE FUNCTION crm.root(customer uuid) RETURNS uuid LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain(id, merged_into, depth) AS (
        SELECT id, merged_into, 0 FROM crm.customers WHERE id = customer
        UNION ALL
        SELECT c.id, c.merged_into, chain.depth + 1
          FROM chain JOIN crm.customers c ON c.id = chain.merged_into
         WHERE chain.depth < 64
    )
    SELECT id FROM chain WHERE merged_into IS NULL LIMIT 1
$$;

-- A channel identity: who wrote, as the channel names them. The primary key
-- is what makes one identity one customer: two replicas that meet a new
-- identity at once both INSERT ... ON CONFLICT and the second gets the
-- first's customer. The foreign key is checked at commit, so a new
-- customer's identity can be claimed before its customer row is written
-- (identity.c claims in the order of the resolution rules).
CREATE TABLE crm.identities (
    channel          text        NOT NULL,
    inbox            text        NOT NULL,
    external_user_id text        NOT NULL CHECK (external_user_id <> ''),
    customer_id      uuid        NOT NULL REFERENCES crm.customers DEFERRABLE INITIALLY DEFERRED,
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, inbox, external_user_id)
);
-- A customer's identities (the card, a merge moving them).
CREATE INDEX identities_customer ON crm.identities (customer_id);

-- A phone (E.164, rt_phone) or an e-mail (lower-cased) of a customer.
-- proven_by says where it came from: for a proven point what proved it (a
-- message or call from that number, a Telegram contact share, a mail from
-- that address); for an unproven one who gave it ('shop': the shop's
-- record of its buyer; 'text': typed in a message; 'form': a web form).
CREATE TABLE crm.contact_points (
    kind        text        NOT NULL CHECK (kind IN ('phone', 'email')),
    value       text        NOT NULL CHECK (value <> ''),
    customer_id uuid        NOT NULL REFERENCES crm.customers DEFERRABLE INITIALLY DEFERRED,
    proven      boolean     NOT NULL,
    proven_by   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- What can prove what: only a channel that speaks from a number proves
    -- it, only a mail from an address proves that address. Everything else
    -- is a claim.
    CHECK ((proven AND kind = 'phone' AND proven_by IN ('sms', 'whatsapp', 'call',
                                                        'telegram_contact'))
           OR (proven AND kind = 'email' AND proven_by = 'email_inbound')
           OR (NOT proven AND proven_by IN ('shop', 'text', 'form')))
);
-- A proven point belongs to one customer: the second replica to prove the
-- same number meets the first's row here and takes its customer. Also the
-- lookup of resolution's third rule.
CREATE UNIQUE INDEX contact_points_proven ON crm.contact_points (kind, value) WHERE proven;
-- Unproven points are kept per customer (anyone may type anyone's number),
-- once each, so a repeated claim adds no row.
CREATE UNIQUE INDEX contact_points_claimed ON crm.contact_points (customer_id, kind, value)
    WHERE NOT proven;
-- Who else holds a value, whatever its state (suggestions, the shop's
-- points a proof attaches to, GET /v1/customers?phone=).
CREATE INDEX contact_points_value ON crm.contact_points (kind, value);
-- A customer's points (the card, a merge moving them).
CREATE INDEX contact_points_customer ON crm.contact_points (customer_id);

-- Every merge, and its undo. moved is exactly what the merge moved, so
-- the undo puts back that and nothing else: {"identities": [{channel,
-- inbox, external_user_id}], "points": [{kind, value, proven, proven_by,
-- created_at, dropped}], "shop_customer_id": text or null}, plus what the
-- conversation side of routerd records under keys of its own.
CREATE TABLE crm.merges (
    id          uuid        PRIMARY KEY,
    survivor    uuid        NOT NULL REFERENCES crm.customers,
    absorbed    uuid        NOT NULL REFERENCES crm.customers,
    by_operator text,       -- NULL when retain merged on its own
    reason      text        NOT NULL DEFAULT '',
    evidence    jsonb       NOT NULL DEFAULT '{}',
    moved       jsonb       NOT NULL CHECK (jsonb_typeof(moved) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    undone_at   timestamptz,  -- NULL while the merge stands
    undone_by   text,         -- the operator who undid it, NULL when retain did
    CHECK (survivor <> absorbed),
    CHECK (undone_at IS NOT NULL OR undone_by IS NULL)
);
-- A customer's merges, either side (the card's history; an undo looking for
-- a later merge that depends on this one).
CREATE INDEX merges_survivor ON crm.merges (survivor);
CREATE INDEX merges_absorbed ON crm.merges (absorbed);

-- Two customers that may be one person, for an operator to decide: a phone
-- or e-mail one of them typed (or the shop gave) that the other holds.
-- Never a merge by itself.
CREATE TABLE crm.merge_suggestions (
    id           uuid        PRIMARY KEY,
    customer_id  uuid        NOT NULL REFERENCES crm.customers DEFERRABLE INITIALLY DEFERRED,
    candidate_id uuid        NOT NULL REFERENCES crm.customers,
    evidence     jsonb       NOT NULL DEFAULT '{}',  -- {"phone": "+380...", "seen_in": "..."}
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolution   text        CHECK (resolution IN ('merged', 'rejected')),
    CHECK (customer_id <> candidate_id),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
-- One open suggestion per pair, whichever way round it was found: the next
-- message with the same typed number finds it there instead of adding
-- another for the operator to dismiss.
CREATE UNIQUE INDEX merge_suggestions_open
    ON crm.merge_suggestions (LEAST(customer_id, candidate_id), GREATEST(customer_id, candidate_id))
    WHERE resolved_at IS NULL;
CREATE INDEX merge_suggestions_customer ON crm.merge_suggestions (customer_id);
CREATE INDEX merge_suggestions_candidate ON crm.merge_suggestions (candidate_id);
