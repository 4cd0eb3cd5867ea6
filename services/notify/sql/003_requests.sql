-- notify, the notifications: what another daemon asked to tell a customer
-- (NotificationRequested), the sends it became channel after channel,
-- consent and the addresses never to be messaged, and the time zones of
-- phone numbers for quiet hours. retain-notifyd writes it
-- (services/notify/daemon/notification.c).
--
-- A notification is one row keyed by its notification_id, made in the
-- consumer's transaction of its request: a replay finds it and adds
-- nothing. Its first send (keyed by the notification_id too) goes on the
-- first channel of its route; a send that cannot reach the customer
-- (no identity, no consent, the provider's STOP_RECIPIENT or WINDOW, or no
-- delivery receipt in time for an important category) hands over to a
-- send on the next channel of the route, and records which one and why.
-- So one notification has at most one send in progress at a time.

-- The notifications.
CREATE TABLE notify.notifications (
    id          uuid        PRIMARY KEY,  -- notification_id: the request's idempotency key
    event_id    uuid        NOT NULL,     -- the envelope that asked for it
    customer_id uuid,
    template    text        NOT NULL,
    variables   jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variables) = 'object'),
    category    text        NOT NULL CHECK (category IN ('transactional', 'marketing')),
    correlation text        NOT NULL DEFAULT '',
    -- The channels in the order they are tried: the request's (or the
    -- customer's preferred, or the one they wrote on last), then the
    -- fallback chain.
    route       text[]      NOT NULL DEFAULT '{}',
    not_before  timestamptz,
    expires_at  timestamptz,
    -- routed: a send carries it (the send's status says the rest);
    -- failed: no channel of the route could take it, or it could not be
    -- rendered (code and reason say which).
    status      text        NOT NULL CHECK (status IN ('routed', 'failed')),
    code        text,
    reason      text,
    -- Channels of the route passed over before any send, and why
    -- ("viber: no identity; sms: no consent").
    skipped     text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- A send of a notification names it; a send the next channel took over
-- from names its successor and why it was handed over.
ALTER TABLE notify.sends
    ADD COLUMN notification_id uuid REFERENCES notify.notifications,
    ADD COLUMN subject         text,  -- e-mail: the rendered subject
    ADD COLUMN html            text,  -- e-mail: the rendered HTML part
    ADD COLUMN fallback_to     uuid,  -- the send on the next channel
    ADD COLUMN fallback_reason text;  -- why it was made
CREATE INDEX sends_notification ON notify.sends (notification_id) WHERE notification_id IS NOT NULL;
-- The receipt watch: sent notification sends not yet handed over.
CREATE INDEX sends_unreceipted ON notify.sends (sent_at)
    WHERE status = 'sent' AND notification_id IS NOT NULL AND fallback_reason IS NULL;

-- A template that waits out the customer's quiet hours even when
-- transactional (marketing always does).
ALTER TABLE notify.templates ADD COLUMN quiet_hours boolean NOT NULL DEFAULT false;

-- Consent, now: one row per customer, channel ('any': every channel) and
-- category; the newest change wins. Changed only through
-- notify.consent_set, which keeps every change in consent_history.
CREATE TABLE notify.consent (
    customer_id uuid        NOT NULL,
    channel     text        NOT NULL CHECK (channel IN ('any', 'telegram', 'viber', 'messenger',
                                'instagram', 'whatsapp', 'sms', 'email', 'webchat', 'phone')),
    category    text        NOT NULL CHECK (category IN ('transactional', 'marketing')),
    granted     boolean     NOT NULL,
    -- Who changed it: 'provider:<code>' (an opt-out the provider answered),
    -- 'stop_keyword', 'unsubscribe_link', 'operator:<id>', 'import', or
    -- what a ConsentChanged names.
    source      text        NOT NULL CHECK (source <> ''),
    at          timestamptz NOT NULL,
    PRIMARY KEY (customer_id, channel, category)
);

-- Every change of consent, never updated or deleted.
CREATE TABLE notify.consent_history (
    seq         bigserial   PRIMARY KEY,
    customer_id uuid        NOT NULL,
    channel     text        NOT NULL,
    category    text        NOT NULL,
    granted     boolean     NOT NULL,
    source      text        NOT NULL,
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_history_customer ON notify.consent_history (customer_id, seq);

-- Records a change of consent: always in the history; in notify.consent
-- when it is not older than what is there (events may come late).
CREATE FUNCTION notify.consent_set(p_customer uuid, p_channel text, p_category text,
                                   p_granted boolean, p_source text, p_at timestamptz)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notify.consent_history (customer_id, channel, category, granted, source, at)
    VALUES (p_customer, p_channel, p_category, p_granted, p_source, p_at);
    INSERT INTO notify.consent AS c (customer_id, channel, category, granted, source, at)
    VALUES (p_customer, p_channel, p_category, p_granted, p_source, p_at)
    ON CONFLICT (customer_id, channel, category) DO UPDATE
       SET granted = EXCLUDED.granted, source = EXCLUDED.source, at = EXCLUDED.at
     WHERE c.at <= EXCLUDED.at;
$$;

-- Addresses never to be messaged, whoever they belong to: a phone (E.164)
-- or an e-mail (lower-cased), as a send's recipient spells it. A lifted
-- suppression stays as a row with suppressed false; changes go through
-- notify.suppression_set, which keeps them all in suppression_history.
CREATE TABLE notify.suppressions (
    address    text        PRIMARY KEY CHECK (address <> ''),
    suppressed boolean     NOT NULL,
    source     text        NOT NULL CHECK (source <> ''),
    reason     text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL
);

CREATE TABLE notify.suppression_history (
    seq         bigserial   PRIMARY KEY,
    address     text        NOT NULL,
    suppressed  boolean     NOT NULL,
    source      text        NOT NULL,
    reason      text        NOT NULL,
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify.suppression_set(p_address text, p_suppressed boolean, p_source text,
                                       p_reason text, p_at timestamptz)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notify.suppression_history (address, suppressed, source, reason, at)
    VALUES (p_address, p_suppressed, p_source, COALESCE(p_reason, ''), p_at);
    INSERT INTO notify.suppressions AS s (address, suppressed, source, reason, at)
    VALUES (p_address, p_suppressed, p_source, COALESCE(p_reason, ''), p_at)
    ON CONFLICT (address) DO UPDATE
       SET suppressed = EXCLUDED.suppressed, source = EXCLUDED.source,
           reason = EXCLUDED.reason, at = EXCLUDED.at
     WHERE s.at <= EXCLUDED.at;
$$;

-- The main time zone of a phone's country, for quiet hours when the
-- customer's profile names none: the longest matching E.164 prefix wins
-- (+1 is the United States and Canada: New York's zone, the most people;
-- +7 Russia and Kazakhstan: Moscow's). A country with several zones gets
-- the one most of its people live in; the profile's zone, once known,
-- always beats it.
CREATE TABLE notify.phone_zones (
    prefix text PRIMARY KEY CHECK (prefix ~ '^\+[0-9]{1,6}$'),
    zone   text NOT NULL
);
INSERT INTO notify.phone_zones (prefix, zone) VALUES
    ('+380', 'Europe/Kyiv'), ('+373', 'Europe/Chisinau'), ('+48', 'Europe/Warsaw'),
    ('+7', 'Europe/Moscow'), ('+77', 'Asia/Almaty'), ('+375', 'Europe/Minsk'),
    ('+995', 'Asia/Tbilisi'), ('+370', 'Europe/Vilnius'), ('+371', 'Europe/Riga'),
    ('+372', 'Europe/Tallinn'), ('+420', 'Europe/Prague'), ('+49', 'Europe/Berlin'),
    ('+44', 'Europe/London'), ('+33', 'Europe/Paris'), ('+34', 'Europe/Madrid'),
    ('+39', 'Europe/Rome'), ('+90', 'Europe/Istanbul'), ('+972', 'Asia/Jerusalem'),
    ('+1', 'America/New_York'), ('+40', 'Europe/Bucharest'), ('+36', 'Europe/Budapest'),
    ('+421', 'Europe/Bratislava'), ('+43', 'Europe/Vienna'), ('+31', 'Europe/Amsterdam'),
    ('+32', 'Europe/Brussels'), ('+41', 'Europe/Zurich'), ('+45', 'Europe/Copenhagen'),
    ('+46', 'Europe/Stockholm'), ('+47', 'Europe/Oslo'), ('+358', 'Europe/Helsinki'),
    ('+351', 'Europe/Lisbon'), ('+30', 'Europe/Athens'), ('+359', 'Europe/Sofia'),
    ('+994', 'Asia/Baku'), ('+374', 'Asia/Yerevan'), ('+998', 'Asia/Tashkent');

-- The claim, as 001 made it, and one more condition: a send whose
-- expires_at has passed is never claimed, even between two sweeps (the
-- sweep drops it with its MessageFailed).
CREATE OR REPLACE FUNCTION notify.claim(p_member text, p_now bigint, p_limit integer)
RETURNS TABLE (id uuid, channel text, recipient text, text text, attempts integer,
               failures integer, customer_id uuid, category text, account text,
               provider text, base_url text, token text, account_id text, sender text,
               status_url text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c        record;
    now_ts   timestamptz := to_timestamp(p_now / 1000.0);
    cur      text := NULL;
    granted  integer := 0;
    ids      uuid[] := '{}';
    accs     text[] := '{}';
BEGIN
    FOR c IN
        WITH cand AS (
            SELECT s.id AS sid, s.recipient AS rcpt, s.next_at AS due, a.id AS acc,
                   a.rate_per_s, a.burst, a.recipient_per_s, a.recipient_burst
              FROM notify.sends s
              CROSS JOIN LATERAL (
                  SELECT a.* FROM notify.accounts a
                   WHERE a.inbox_id = s.inbox AND a.channel = s.channel
                     AND a.disabled_at IS NULL AND a.stopped_at IS NULL
                     AND (a.paused_until IS NULL OR a.paused_until <= now_ts)
                   ORDER BY a.priority, a.id LIMIT 1) a
             WHERE s.status = 'queued' AND s.next_at <= now_ts
               AND (s.expires_at IS NULL OR s.expires_at > now_ts)
             ORDER BY s.next_at
             LIMIT p_limit
             FOR UPDATE OF s SKIP LOCKED)
        SELECT cand.*, count(*) OVER (PARTITION BY acc) AS n FROM cand ORDER BY acc, due
    LOOP
        IF cur IS DISTINCT FROM c.acc THEN
            IF granted > 0 THEN
                UPDATE notify.limits SET tokens = tokens + granted WHERE key = 'a:' || cur;
            END IF;
            cur := c.acc;
            granted := notify.take('a:' || c.acc, c.rate_per_s, c.burst, c.n::integer, p_now);
        END IF;
        CONTINUE WHEN granted = 0;
        IF notify.take('r:' || c.acc || ':' || c.rcpt, c.recipient_per_s, c.recipient_burst, 1,
                       p_now) = 1 THEN
            ids := ids || c.sid;
            accs := accs || c.acc;
            granted := granted - 1;
        ELSE
            UPDATE notify.sends SET next_at = now_ts + make_interval(secs => 1.0 / c.recipient_per_s)
             WHERE notify.sends.id = c.sid;
        END IF;
    END LOOP;
    IF granted > 0 THEN
        UPDATE notify.limits SET tokens = tokens + granted WHERE key = 'a:' || cur;
    END IF;
    RETURN QUERY
        WITH u AS (
            UPDATE notify.sends s
               SET status = 'sending', attempts = s.attempts + 1, account = x.acc,
                   claimed_by = p_member, claimed_at = now_ts, updated_at = now_ts
              FROM unnest(ids, accs) AS x(sid, acc)
             WHERE s.id = x.sid
            RETURNING s.id, s.channel, s.recipient, s.text, s.attempts, s.failures,
                      s.customer_id, s.category, s.account)
        SELECT u.id, u.channel, u.recipient, u.text, u.attempts, u.failures, u.customer_id,
               u.category,
               a.id, a.provider, a.base_url, a.token, a.account_id, a.sender, a.status_url
          FROM u JOIN notify.accounts a ON a.id = u.account;
END
$$;
