-- ingest: the direct path to busd's ingress.
--
-- The writer keeps each new item's envelope in its de-duplication row, in
-- the round's transaction, instead of appending it to outbox.pending, and
-- then publishes it straight to busd. What busd does not acknowledge in
-- time is moved from these rows to the outbox, where busd's drain takes
-- it. NULL for rows written before this migration and for rows written in
-- outbox-only mode (their envelope went to the outbox in the round).
ALTER TABLE ingest.messages ADD COLUMN envelope bytea;

-- Event ids are UUIDv7, made in time order just before their rows are
-- inserted, so they follow the heap's order: a block-range index finds
-- the rows after a point for almost no cost per insert (ranges not yet
-- summarised are always read, and those are the newest).
CREATE INDEX messages_event_brin ON ingest.messages USING brin (event_id)
    WITH (pages_per_range = 32, autosummarize = on);

-- One row per running writer (a session of ingestd's direct path): every
-- envelope it wrote with an event id before upto has been acknowledged by
-- busd or moved to the outbox. The writer holds a session advisory lock on
-- (hashtext('ingest.publishers'), id) while it lives; a row whose lock is
-- free belongs to a writer that died, and the next writer to look moves
-- every envelope from its upto on to the outbox (busd de-duplicates by
-- envelope id, so one that had made it is no second event) and deletes it.
-- Updated every few hundred milliseconds, never a key: HOT updates, hence
-- the room left in each page.
CREATE TABLE ingest.publishers (
    id         integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upto       uuid        NOT NULL,
    member     text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);
