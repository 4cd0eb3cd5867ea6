-- notify, who can be reached where: the route and the recipient in one
-- place each, e-mail from crm's contact points, hard bounces on the
-- suppression list, STOP keywords kept by the sender's channel identity,
-- and a cancelled campaign's queued sends cancelled with it.
-- retain-notifyd calls these (services/notify/daemon/).

-- The route of a notification: p_first (the request's channel; '' for
-- none), else the customer's preferred channel, else the one they wrote on
-- last, then the fallback chain, each channel once. The consumer makes a
-- NotificationRequested's route with it and the campaign runner a
-- target's (004's two-argument form names no channel). PL/pgSQL, as
-- crm.root (crm 003): an SQL function's body that cannot be inlined is
-- planned again at every call, PL/pgSQL's plans last the session.
CREATE FUNCTION notify.route(p_customer uuid, p_chain text, p_first text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    who   uuid := crm.root(p_customer);
    first text := NULLIF(p_first, '');
    route text[] := '{}';
    ch    text;
BEGIN
    IF first IS NULL THEN
        SELECT NULLIF(c.preferred_channel, '') INTO first FROM crm.customers c WHERE c.id = who;
    END IF;
    IF first IS NULL THEN
        SELECT i.channel INTO first FROM crm.identities i
         WHERE i.customer_id = who ORDER BY i.last_seen DESC, i.inbox LIMIT 1;
    END IF;
    FOREACH ch IN ARRAY ARRAY[first] || regexp_split_to_array(COALESCE(p_chain, ''), '[, ]+') LOOP
        IF ch IS NOT NULL AND ch <> '' AND NOT ch = ANY (route) THEN
            route := route || ch;
        END IF;
    END LOOP;
    RETURN route;
END
$$;

CREATE OR REPLACE FUNCTION notify.route(p_customer uuid, p_chain text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT notify.route(p_customer, p_chain, '')
$$;

-- Where a message to a customer on a channel goes ('' for any channel:
-- the identity they wrote from last): a channel identity of theirs in
-- crm, or, for e-mail, an address among their contact points
-- (crm.contact_points kind email: proven first, then the shop's or a
-- form's, then one typed in a message), sent through the e-mail account
-- with the lowest priority. On a named channel an address that can be
-- sent to (its inbox has an account, it is not suppressed) comes first,
-- then identities before contact points, the newest first. sendable says
-- whether the inbox has an account (a stopped or paused one counts: its
-- sends wait for it), suppressed_by the suppression's source (NULL: none),
-- seen when the customer last wrote from it (an identity's last_seen: on
-- WhatsApp, the start of the 24-hour window).
-- The consumer (an operator's reply) and the notifications' chooser both
-- ask here.
CREATE FUNCTION notify.recipient(p_customer uuid, p_channel text)
RETURNS TABLE (channel text, inbox text, recipient text, sendable boolean, suppressed_by text,
               seen timestamptz)
LANGUAGE sql STABLE AS $$
    WITH r AS (SELECT crm.root(p_customer) AS id),
    c AS (
        SELECT i.channel AS ch, i.inbox AS box, i.external_user_id AS addr, 0 AS rank,
               i.last_seen AS seen
          FROM crm.identities i, r
         WHERE i.customer_id = r.id AND (p_channel = '' OR i.channel = p_channel)
        UNION ALL
        SELECT 'email', a.inbox_id, lower(p.value),
               CASE WHEN p.proven THEN 1 WHEN p.proven_by = 'text' THEN 3 ELSE 2 END,
               p.created_at
          FROM crm.contact_points p
          JOIN r ON p.customer_id = r.id
          CROSS JOIN LATERAL (
              SELECT x.inbox_id FROM notify.accounts x
               WHERE x.channel = 'email' AND x.disabled_at IS NULL
               ORDER BY x.priority, x.id LIMIT 1) a
         WHERE p.kind = 'email' AND p_channel = 'email'),
    d AS (
        SELECT c.*,
               EXISTS (SELECT 1 FROM notify.accounts a WHERE a.inbox_id = c.box
                        AND a.channel = c.ch AND a.disabled_at IS NULL) AS ok,
               (SELECT s.source FROM notify.suppressions s
                 WHERE s.suppressed AND s.address = notify.address_of(c.ch, c.addr)) AS sup
          FROM c)
    SELECT d.ch, d.box, d.addr, d.ok, d.sup, d.seen FROM d
     ORDER BY (p_channel <> '' AND d.ok AND d.sup IS NULL) DESC, d.rank, d.seen DESC, d.box
     LIMIT 1
$$;

-- Hard bounces. An e-mail send that fails because the address cannot take
-- mail puts the address on the suppression list, with where that was said
-- and the words: the SMTP server refusing the recipient for good (a 5yz
-- the adapter calls stop_recipient: 5.1.x, 5.2.x, a refused RCPT; source
-- bounce:smtp), or a permanent MessageFailed receipt for the send (the
-- consumer marks its verdict receipt_permanent; source bounce:receipt).
-- A trigger, so that whichever transaction records the failure records
-- the suppression with it; a later send to the address fails `suppressed`
-- before any attempt.
CREATE FUNCTION notify.sends_bounced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify.suppression_set(
        lower(NEW.recipient), true,
        CASE WHEN NEW.last_verdict = 'stop_recipient' THEN 'bounce:smtp' ELSE 'bounce:receipt' END,
        concat_ws(' ', NEW.last_code, NEW.last_reason) || ' (message ' || NEW.id || ')',
        NEW.updated_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER sends_bounced AFTER UPDATE OF status ON notify.sends FOR EACH ROW
    WHEN (NEW.channel = 'email' AND NEW.status = 'failed' AND OLD.status <> 'failed'
          AND NEW.recipient IS NOT NULL AND NEW.recipient <> ''
          AND ((NEW.last_verdict = 'stop_recipient' AND NEW.last_code LIKE '5%')
               OR NEW.last_verdict = 'receipt_permanent'))
    EXECUTE FUNCTION notify.sends_bounced();

-- Consent by channel identity: what a STOP or START keyword said, keyed by
-- the sender's address on the channel (the phone, the chat id) rather
-- than by a customer. A keyword comes on the stream `message`, which
-- routerd and notifyd read in groups of their own, and routerd says
-- nothing on the bus when it makes the sender's identity: notifyd may read
-- the STOP before crm knows who sent it, and would hear of no moment to
-- apply it later. Kept by the address, it holds from the moment it is
-- read: the chooser honours the newest word of this table and of
-- notify.consent for the address it is about to send to. Changed through
-- notify.address_consent_set; every change goes into consent_history too.
CREATE TABLE notify.address_consent (
    channel  text        NOT NULL CHECK (channel IN ('telegram', 'viber', 'messenger',
                             'instagram', 'whatsapp', 'sms', 'email', 'webchat', 'phone')),
    address  text        NOT NULL CHECK (address <> ''),  -- as the send's recipient spells it
    category text        NOT NULL CHECK (category IN ('transactional', 'marketing')),
    granted  boolean     NOT NULL,
    source   text        NOT NULL CHECK (source <> ''),
    at       timestamptz NOT NULL,
    PRIMARY KEY (channel, address, category)
);

ALTER TABLE notify.consent_history
    ALTER COLUMN customer_id DROP NOT NULL,
    ADD COLUMN address text,
    ADD CONSTRAINT consent_history_whose CHECK ((customer_id IS NULL) <> (address IS NULL));

CREATE FUNCTION notify.address_consent_set(p_channel text, p_address text, p_category text,
                                           p_granted boolean, p_source text, p_at timestamptz)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notify.consent_history (address, channel, category, granted, source, at)
    VALUES (p_address, p_channel, p_category, p_granted, p_source, p_at);
    INSERT INTO notify.address_consent AS c (channel, address, category, granted, source, at)
    VALUES (p_channel, p_address, p_category, p_granted, p_source, p_at)
    ON CONFLICT (channel, address, category) DO UPDATE
       SET granted = EXCLUDED.granted, source = EXCLUDED.source, at = EXCLUDED.at
     WHERE c.at <= EXCLUDED.at;
$$;

-- A STOP (p_out) or START keyword from p_sender on a channel, at p_at: a
-- STOP withdraws both categories, a START grants transactional, and
-- marketing only when a STOP keyword withdrew it (the newest word on the
-- sender's marketing, by address or by customer, says so). Recorded for
-- the address always, and for the sender's customer too when crm knows
-- them. Returns that customer (NULL: unknown yet) and whether marketing
-- changed.
CREATE FUNCTION notify.opt_keyword(p_channel text, p_inbox text, p_sender text, p_out boolean,
                                   p_at timestamptz)
RETURNS TABLE (customer_id uuid, marketing boolean) LANGUAGE plpgsql AS $$
DECLARE
    who     uuid;
    restore boolean;
BEGIN
    SELECT crm.root(i.customer_id) INTO who FROM crm.identities i
     WHERE i.channel = p_channel AND i.inbox = p_inbox AND i.external_user_id = p_sender;
    SELECT NOT m.granted AND m.source = 'stop_keyword' INTO restore
      FROM (SELECT c.granted, c.source, c.at FROM notify.consent c
             WHERE c.customer_id = who AND c.channel = p_channel AND c.category = 'marketing'
            UNION ALL
            SELECT a.granted, a.source, a.at FROM notify.address_consent a
             WHERE a.channel = p_channel AND a.address = p_sender AND a.category = 'marketing') m
     ORDER BY m.at DESC LIMIT 1;
    restore := p_out OR COALESCE(restore, false);
    PERFORM notify.address_consent_set(p_channel, p_sender, 'transactional', NOT p_out,
                                       'stop_keyword', p_at);
    IF restore THEN
        PERFORM notify.address_consent_set(p_channel, p_sender, 'marketing', NOT p_out,
                                           'stop_keyword', p_at);
    END IF;
    IF who IS NOT NULL THEN
        PERFORM notify.consent_set(who, p_channel, 'transactional', NOT p_out, 'stop_keyword',
                                   p_at);
        IF restore THEN
            PERFORM notify.consent_set(who, p_channel, 'marketing', NOT p_out, 'stop_keyword',
                                       p_at);
        END IF;
    END IF;
    RETURN QUERY SELECT who, restore;
END
$$;

-- Campaigns cancelled with their queued sends. A send is `cancelled` when
-- its campaign was cancelled while it was queued (waiting for the
-- customer's morning, for the account's tokens); one already `sending` is
-- the provider's and goes on as it goes. notify.campaigns.cancelled counts
-- the targets whose sends all ended so (the runner's recount).
ALTER TABLE notify.sends DROP CONSTRAINT sends_status_check;
ALTER TABLE notify.sends ADD CONSTRAINT sends_status_check CHECK (status IN ('queued', 'sending',
    'sent', 'delivered', 'read', 'failed', 'dropped', 'cancelled'));
ALTER TABLE notify.campaigns ADD COLUMN cancelled bigint NOT NULL DEFAULT 0;

-- Cancels campaign p_campaign's queued sends at p_at; returns how many.
-- A claim marking one `sending` meanwhile holds its row: the update waits
-- for the claim's commit and then passes over what it took.
CREATE FUNCTION notify.campaign_cancel_sends(p_campaign uuid, p_at timestamptz) RETURNS bigint
LANGUAGE sql AS $$
    WITH u AS (
        UPDATE notify.sends s SET status = 'cancelled', last_verdict = 'cancelled',
               last_code = 'cancelled', last_reason = 'the campaign was cancelled',
               updated_at = p_at
          FROM notify.campaign_targets t
         WHERE t.campaign_id = p_campaign AND t.state = 'queued'
           AND s.notification_id = t.notification_id AND s.status = 'queued'
        RETURNING 1)
    SELECT count(*) FROM u
$$;

-- In the transaction of the cancel itself (retainctl campaign cancel), so
-- that no claim takes a send of the campaign after it; the runner's step
-- that was making sends meanwhile cancels its own when it sees the status
-- (daemon/campaign.c).
CREATE FUNCTION notify.campaigns_cancelled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify.campaign_cancel_sends(NEW.id, NEW.updated_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER campaigns_cancelled AFTER UPDATE OF status ON notify.campaigns FOR EACH ROW
    WHEN (NEW.status = 'cancelled' AND OLD.status <> 'cancelled')
    EXECUTE FUNCTION notify.campaigns_cancelled();
