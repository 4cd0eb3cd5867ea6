-- routing 002: what a customer merge does to conversations, and call-backs
-- as items an operator closes (services/router/merge.c, conversation.c;
-- routing.h has the rules).

-- A conversation closed by a merge: both customers had one open, the
-- absorbed one's waiting messages were linked into the survivor's, and it
-- was resolved with this naming where they went. Resolved rather than a
-- status of its own, so that every reading of "not resolved" (the one open
-- conversation per customer, the counters, the queue, rebalancing) leaves
-- it out without a change; merged_into tells it from one an operator
-- resolved, and an undo of the merge reopens it.
ALTER TABLE routing.conversations
    ADD COLUMN merged_into uuid REFERENCES routing.conversations,
    ADD CONSTRAINT conversations_merged_resolved
        CHECK (merged_into IS NULL OR status = 'resolved');

-- linked_from: an entry a merge copied into the survivor's conversation
-- names the absorbed conversation's entry it stands for (an undo deletes
-- the copies and finds the originals by it).
--
-- done_at, done_by, done_event: a call-back (kind call_back, put there by
-- a missed call) is open until an operator marks it done (done_by) or an
-- outbound call to that number is seen (done_event, the call's envelope
-- id). Only call-backs carry them.
ALTER TABLE routing.timeline
    ADD COLUMN linked_from bigint REFERENCES routing.timeline ON DELETE CASCADE,
    ADD COLUMN done_at timestamptz,
    ADD COLUMN done_by text,
    ADD COLUMN done_event uuid,
    ADD CONSTRAINT timeline_done_call_back CHECK (done_at IS NULL OR kind = 'call_back'),
    ADD CONSTRAINT timeline_done_when
        CHECK (done_at IS NOT NULL OR (done_by IS NULL AND done_event IS NULL));
-- The open call-backs the counters read, a handful of rows.
CREATE INDEX timeline_call_backs_open ON routing.timeline (conversation_id)
    WHERE kind = 'call_back' AND done_at IS NULL;
CREATE INDEX timeline_linked_from ON routing.timeline (linked_from) WHERE linked_from IS NOT NULL;
