-- routing 011: room on each page of conversations for their updates.
--
-- A conversation's row changes with every message (its counters, its
-- last inbound instant, the reply channel) while none of the columns its
-- eight indexes read do. PostgreSQL then writes the new row version on
-- the same page without touching the indexes (a HOT update) if the page
-- has room, and a table filled to 100% has none: every counter's update
-- wrote eight index entries. Pages written from now on keep a fifth free.
ALTER TABLE routing.conversations SET (fillfactor = 80);
