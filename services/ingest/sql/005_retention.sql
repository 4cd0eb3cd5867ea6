-- ingest 005: what retention (services/ingest/daemon/retention.c) finds
-- old by. received_at grows with the order rows are appended in, so a
-- block-range index gives the ranges received before a cutoff for almost
-- no cost per insert.
CREATE INDEX messages_received_brin ON ingest.messages USING brin (received_at)
    WITH (autosummarize = on);
CREATE INDEX raw_received_brin ON ingest.raw USING brin (received_at)
    WITH (autosummarize = on);
