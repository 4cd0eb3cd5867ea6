-- ingest: Binotel delivers the phone channel too.
--
-- Binotel, the cloud PBX, posts its own call webhooks to
-- /hooks/binotel/{inbox} beside the generic PBX format of (phone, pbx). The
-- list is that of common/channel/rt_channel.c (tests/unit/test_channel.c
-- fails while they disagree). The default provider of a phone inbox stays
-- pbx: a Binotel inbox names its provider.
ALTER TABLE ingest.inboxes DROP CONSTRAINT inboxes_kind_check;
ALTER TABLE ingest.inboxes ADD CONSTRAINT inboxes_kind_check
    CHECK ((channel, provider) IN (('telegram', 'telegram'), ('viber', 'viber'),
                                   ('messenger', 'meta'), ('instagram', 'meta'),
                                   ('whatsapp', 'meta'), ('whatsapp', 'twilio'),
                                   ('sms', 'twilio'), ('email', 'mailgun'), ('email', 'imap'),
                                   ('webchat', 'webchat'), ('phone', 'pbx'),
                                   ('phone', 'binotel')));
