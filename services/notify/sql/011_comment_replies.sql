-- notify 011: an operator's reply to a comment (OutboundMessageRequested.
-- reply_to and public_reply, from routerd). The send keeps the comment it
-- answers, so that the sender builds Meta's request for it rather than a
-- direct message (services/notify/providers/meta.c): in public a reply
-- under the comment (Facebook /{comment-id}/comments, Instagram
-- /{comment-id}/replies), in private the Send API with recipient
-- {comment_id}. NULL reply_comment: a message like any other.
ALTER TABLE notify.sends
    ADD COLUMN reply_comment text CHECK (reply_comment <> ''),
    -- the Origin's kind: comment, live_comment
    ADD COLUMN reply_kind    text,
    ADD COLUMN reply_public  boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT sends_reply CHECK (reply_comment IS NOT NULL OR NOT reply_public);
