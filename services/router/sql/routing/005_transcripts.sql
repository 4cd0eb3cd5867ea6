-- routing 005: links that open a conversation's transcript without an API
-- key (services/router/api/api_transcript.c has the rules). The token is
-- never stored, only its SHA-256: a copy of this table opens nothing. No
-- foreign key to routing.conversations, for the reason 003 gives for
-- routing.sla_timers.
CREATE TABLE routing.transcript_links (
    token_hash      bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    conversation_id uuid        NOT NULL,
    created_by      text        NOT NULL,  -- the operator who made it
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL CHECK (expires_at > created_at)
);
-- Expired links are deleted a day after they expire (when a link is made).
CREATE INDEX transcript_links_expiry ON routing.transcript_links (expires_at);
