-- notify, attachments out: an operator's reply with photos and documents
-- (OutboundMessageRequested.attachments), and a message that takes several
-- requests to send (services/notify/daemon/handler.c makes its parts).
--
-- The send contract stays one request per send: marked `sending`, one
-- provider answer, one outcome. A message Telegram cannot take in one
-- request (a text over the 1024 characters of a caption with a document,
-- two photos) becomes one send per request, its parts, all made in the
-- consumer's transaction of the request: part 1 keeps the message id (a
-- replayed request finds it and makes nothing), part k > 1 has the id
-- notify.part_id(message, k), the same at every replay. So each part is
-- sent exactly once as any send is (only a part in flight at a crash may
-- go twice, as the crash policy says), and nothing of a message is lost
-- while its parts are rows.
--
-- Order: a part waits (next_at infinity) until the part before it is
-- sent, and is due from that moment (the triggers below, on every path
-- that moves a part: an outcome, the crash policy, a retry an operator
-- asks for). A part that fails fails the parts after it, which never go.
-- What is said on the bus is said once per message, under its id: its
-- MessageDelivered when its last part is delivered, its MessageFailed
-- when a part fails (daemon/outcome.c).

-- The media a send carries, as the request attached them: a JSON array of
-- {"kind", "url", "name"?, "mime_type"?}; NULL when none. On a channel
-- that sends no media the links are in the text as well, and this is the
-- record of what was attached.
ALTER TABLE notify.sends
    ADD COLUMN attachments jsonb CHECK (jsonb_typeof(attachments) = 'array'),
    -- A part: the message it is part of (its id), its place and how many
    -- there are; NULL for a message sent in one request.
    ADD COLUMN part_of uuid,
    ADD COLUMN part    smallint,
    ADD COLUMN parts   smallint,
    ADD CONSTRAINT sends_part CHECK ((part_of IS NULL AND part IS NULL AND parts IS NULL)
                                     OR (part BETWEEN 1 AND parts AND parts BETWEEN 2 AND 11));
CREATE UNIQUE INDEX sends_parts ON notify.sends (part_of, part) WHERE part_of IS NOT NULL;

-- The id of part p_part (2 and on) of message p_message: a UUID (version
-- 8, RFC 9562) of the MD5 of the pair, as 004's campaign ids.
CREATE FUNCTION notify.part_id(p_message uuid, p_part integer) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT (substr(h, 1, 12) || '8' || substr(h, 14, 3)
            || substr('89ab', (('x' || substr(h, 17, 1))::bit(4)::integer % 4) + 1, 1)
            || substr(h, 18))::uuid
      FROM md5(p_message::text || ':part:' || p_part::text) AS h
$$;

-- A part queued while the part before it is not sent yet waits for it.
CREATE FUNCTION notify.part_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM notify.sends p
                    WHERE p.part_of = NEW.part_of AND p.part = NEW.part - 1
                      AND p.status IN ('sent', 'delivered', 'read')) THEN
        NEW.next_at := 'infinity';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER sends_part_hold BEFORE INSERT OR UPDATE OF status ON notify.sends
    FOR EACH ROW WHEN (NEW.part > 1 AND NEW.status = 'queued')
    EXECUTE FUNCTION notify.part_hold();

-- A part sent makes the next one due (and wakes the senders); a part that
-- failed or was dropped fails the queued ones after it, naming it; a
-- failed part queued again (retainctl notify failed retry) queues again
-- the ones its failure failed, each waiting for the one before it.
CREATE FUNCTION notify.part_next() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('sent', 'delivered', 'read') THEN
        UPDATE notify.sends SET next_at = NEW.updated_at, updated_at = NEW.updated_at
         WHERE part_of = NEW.part_of AND part = NEW.part + 1 AND status = 'queued'
           AND next_at = 'infinity';
        IF FOUND THEN
            PERFORM pg_notify('notify_sends', '');
        END IF;
    ELSIF NEW.status = 'queued' THEN
        UPDATE notify.sends SET status = 'queued', attempts = 0, failures = 0,
               claimed_by = NULL, claimed_at = NULL, last_verdict = 'retried',
               updated_at = NEW.updated_at
         WHERE part_of = NEW.part_of AND part > NEW.part AND status = 'failed'
           AND last_code = 'part_failed';
    ELSE
        UPDATE notify.sends SET status = 'failed', last_verdict = 'refused',
               last_code = 'part_failed',
               last_reason = format('part %s of %s failed: %s', NEW.part, NEW.parts,
                                    COALESCE(NEW.last_reason, NEW.status)),
               updated_at = NEW.updated_at
         WHERE part_of = NEW.part_of AND part > NEW.part AND status = 'queued';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER sends_part_next AFTER UPDATE OF status ON notify.sends
    FOR EACH ROW WHEN (NEW.part < NEW.parts AND OLD.status IS DISTINCT FROM NEW.status
                       AND (NEW.status IN ('sent', 'delivered', 'read', 'failed', 'dropped')
                            OR (OLD.status = 'failed' AND NEW.status = 'queued')))
    EXECUTE FUNCTION notify.part_next();
