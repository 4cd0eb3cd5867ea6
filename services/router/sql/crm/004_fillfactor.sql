-- crm 004: room on each page of identities for last_seen, which every
-- inbound message moves: with room the new row version stays on its page
-- and the indexes are not touched (a HOT update). Pages written from now
-- on keep a tenth free.
ALTER TABLE crm.identities SET (fillfactor = 90);
