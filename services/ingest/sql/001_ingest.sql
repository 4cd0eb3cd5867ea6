-- ingest: the inboxes retain listens on, and what it has taken in.

-- One row per configured inbox: a channel account (a Telegram bot, a
-- WhatsApp number, a support mailbox, ...) with the secret its provider
-- signs with. previous_secret is still accepted after a rotation, so the
-- provider can be switched over without losing a message.
CREATE TABLE ingest.inboxes (
    id              text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    channel         text        NOT NULL CHECK (channel IN ('telegram', 'viber', 'messenger',
                                    'instagram', 'whatsapp', 'sms', 'email', 'webchat', 'phone')),
    secret          text        NOT NULL CHECK (secret <> ''),
    previous_secret text        NOT NULL DEFAULT '',
    config          jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    enabled         boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION ingest.inboxes_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER inboxes_touch BEFORE UPDATE ON ingest.inboxes
    FOR EACH ROW EXECUTE FUNCTION ingest.inboxes_touch();

-- Every request that carried something, as the provider sent it, for audit.
-- The id is a UUIDv7 made by ingestd, so one statement can write a request's
-- payload and the rows that name it.
CREATE TABLE ingest.raw (
    id           uuid        PRIMARY KEY,
    channel      text        NOT NULL,
    inbox        text        NOT NULL,
    content_type text        NOT NULL,
    body         bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Every item taken in, by the provider's id: a provider's retry finds its
-- row and changes nothing. event_id is the envelope id it went to the bus
-- with.
CREATE TABLE ingest.messages (
    channel     text        NOT NULL,
    inbox       text        NOT NULL,
    external_id text        NOT NULL,
    event_id    uuid        NOT NULL,
    type        text        NOT NULL,
    raw_id      uuid,       -- ingest.raw (kept shorter than this table, so no foreign key)
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, inbox, external_id)
);
CREATE INDEX messages_raw ON ingest.messages (raw_id);

-- Where each poller is (an IMAP mailbox: "<uidvalidity>:<last uid>"),
-- moved in the same transaction as what it read.
CREATE TABLE ingest.cursors (
    name       text        PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
