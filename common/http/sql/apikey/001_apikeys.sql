-- API keys of retain's authenticated HTTP APIs (common/http/rt_apikey.c):
-- the operator API of routerd, the shop API of loyaltyd. A key is shown
-- once, when made; this table keeps only the SHA-256 of its secret part,
-- so reading it (a backup, a replica, a support session) gives no key.
-- Times come from retain's clock (rt_clock), never now(): the replicas'
-- clock is the one that tests move.

CREATE TABLE apikey.keys (
    id           text        PRIMARY KEY,    -- 'rk_' and 12 base32 letters: public, in the token
    service      text        NOT NULL,       -- the API it opens: 'router', 'loyalty'
    principal    text        NOT NULL,       -- whom it authenticates: an operator id, a shop
    role         text        NOT NULL,       -- what the service lets it do: 'supervisor', 'shop'
    hash         bytea       NOT NULL,       -- SHA-256 of the token's secret part
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,                -- NULL until first used; kept to the minute
    revoked_at   timestamptz,                -- NULL while the key is live
    expires_at   timestamptz,                -- NULL: never
    CHECK (id ~ '^rk_[a-z2-7]{12}$'),
    CHECK (octet_length(hash) = 32),
    CHECK (position(':' IN role) = 0)        -- "<principal>:<role>" splits at the last colon
);

-- Listing and disabling by whom a key authenticates (retainctl operator).
CREATE INDEX keys_principal ON apikey.keys (service, principal);
