-- ingest: an inbox names its provider as well as its channel.
--
-- The channel is what the customer uses; the provider is who delivers it to
-- retain, and it decides the webhook address and how a request is read:
-- WhatsApp comes through Meta's Cloud API (/hooks/whatsapp/{inbox}) or
-- through Twilio (/hooks/twilio/{inbox}), e-mail through Mailgun's webhooks
-- or from a mailbox ingestd polls over IMAP. The lists below are those of
-- the one table in common/channel/rt_channel.c (tests/unit/test_channel.c
-- fails while they disagree): a new channel or provider is a new migration
-- that replaces both CHECKs.

-- The provider of an inbox that names none: its channel's default, and imap
-- for an e-mail inbox that names a mailbox to poll.
CREATE FUNCTION ingest.default_provider(channel text, config jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN channel = 'email' AND config ? 'imap_url' THEN 'imap'
        ELSE CASE channel
            WHEN 'telegram' THEN 'telegram'
            WHEN 'viber' THEN 'viber'
            WHEN 'messenger' THEN 'meta'
            WHEN 'instagram' THEN 'meta'
            WHEN 'whatsapp' THEN 'meta'
            WHEN 'sms' THEN 'twilio'
            WHEN 'email' THEN 'mailgun'
            WHEN 'webchat' THEN 'webchat'
            WHEN 'phone' THEN 'pbx'
        END
    END
$$;

ALTER TABLE ingest.inboxes ADD COLUMN provider text;
UPDATE ingest.inboxes SET provider = ingest.default_provider(channel, config);
ALTER TABLE ingest.inboxes ALTER COLUMN provider SET NOT NULL;

-- An INSERT that names no provider (written before there were providers)
-- gets the default rather than an error.
CREATE FUNCTION ingest.inboxes_provider() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.provider IS NULL THEN
        NEW.provider := ingest.default_provider(NEW.channel, NEW.config);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER inboxes_provider BEFORE INSERT ON ingest.inboxes
    FOR EACH ROW EXECUTE FUNCTION ingest.inboxes_provider();

ALTER TABLE ingest.inboxes DROP CONSTRAINT inboxes_channel_check;
ALTER TABLE ingest.inboxes ADD CONSTRAINT inboxes_channel_check
    CHECK (channel IN ('telegram', 'viber', 'messenger', 'instagram', 'whatsapp', 'sms', 'email',
                       'webchat', 'phone'));
ALTER TABLE ingest.inboxes ADD CONSTRAINT inboxes_kind_check
    CHECK ((channel, provider) IN (('telegram', 'telegram'), ('viber', 'viber'),
                                   ('messenger', 'meta'), ('instagram', 'meta'),
                                   ('whatsapp', 'meta'), ('whatsapp', 'twilio'),
                                   ('sms', 'twilio'), ('email', 'mailgun'), ('email', 'imap'),
                                   ('webchat', 'webchat'), ('phone', 'pbx')));
