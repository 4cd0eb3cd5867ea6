-- routing 009: where an inbound message was written, when it is not a
-- plain direct message (InboundMessage.origin: a comment under a post, a
-- live comment, a story reply or mention), so that an operator's reply
-- can answer it where it was written (services/router/reply.c). NULL for
-- a direct message and for every entry that is not an inbound message.
-- The members are the Origin's as ingest made it (kind, post_id,
-- comment_id, parent_id, permalink, public, media_type, account_id,
-- private_reply_until in unix ms), empty ones left out.
ALTER TABLE routing.timeline
    ADD COLUMN origin jsonb CHECK (origin IS NULL OR jsonb_typeof(origin) = 'object');
