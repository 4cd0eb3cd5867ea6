-- notify: every message retain sends, from the request to the provider's
-- last word about it. retain-notifyd writes it (services/notify/daemon/);
-- it reads crm for the recipient and writes nothing else but the outbox.
--
-- The send contract (DESIGN, "Effects outside PostgreSQL"):
--   * A send is a row made in the consumer's transaction of the event that
--     asked for it, keyed by the message id: a replayed request finds its
--     row and makes nothing new.
--   * A worker claims due sends (notify.claim) in a committed transaction
--     that marks them `sending`, names the claimer and counts the attempt,
--     before any request leaves; each outcome is recorded in a transaction
--     of its own, with its events in the outbox, and only by the claim that
--     sent it (claimed_by and attempts must still match).
--   * A send left `sending` past a lease by a member that is gone is
--     uncertain: the provider may have it. Transactional sends go out again,
--     marketing ones are dropped; both are counted (README, "Messages out").
--
-- Rate limits hold across replicas because the tokens live here: a claim
-- takes them in the same transaction that marks the sends `sending`, under
-- the bucket's row lock, so two replicas together never send more than one
-- bucket allows. Buckets are taken in a fixed order (account by account,
-- each account's recipients after it), so two claims never wait on each
-- other in a cycle. A token bucket of rate r and burst b lets through at
-- most r * t + b requests in any t seconds.

-- The sending credentials of an inbox: how replies to the customers who
-- wrote to it go out. Several accounts may serve one inbox on one channel
-- (two SMS providers): the usable one with the lowest priority sends, so a
-- stopped, paused or disabled account fails over to the next.
CREATE TABLE notify.accounts (
    id              text             PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    inbox_id        text             NOT NULL,  -- ingest.inboxes.id (crm.identities.inbox)
    channel         text             NOT NULL CHECK (channel IN ('telegram', 'viber',
                                         'messenger', 'instagram', 'whatsapp', 'sms', 'email',
                                         'webchat', 'phone')),
    -- The inbox kind's provider, as rt_channel names it; the adapter is
    -- provider_find_for (provider, channel).
    provider        text             NOT NULL CHECK (provider IN ('telegram', 'viber', 'meta',
                                         'twilio')),
    base_url        text             NOT NULL DEFAULT '',  -- '': the daemon's RETAIN_NOTIFY_*_API
    token           text             NOT NULL DEFAULT '',  -- a secret: never logged
    account_id      text             NOT NULL DEFAULT '',  -- page, phone-number id, AccountSid
    sender          text             NOT NULL DEFAULT '',  -- Twilio From, Viber sender name
    status_url      text             NOT NULL DEFAULT '',  -- Twilio StatusCallback, '' none
    priority        integer          NOT NULL DEFAULT 0,
    -- The budgets: requests per second through the account (Telegram:
    -- about 30 per bot) and to one recipient (Telegram: 1 per chat), with
    -- their bursts.
    rate_per_s      double precision NOT NULL DEFAULT 25 CHECK (rate_per_s > 0),
    burst           double precision NOT NULL DEFAULT 5 CHECK (burst >= 1),
    recipient_per_s double precision NOT NULL DEFAULT 1 CHECK (recipient_per_s > 0),
    recipient_burst double precision NOT NULL DEFAULT 1 CHECK (recipient_burst >= 1),
    disabled_at     timestamptz,     -- an operator turned it off
    stopped_at      timestamptz,     -- the provider refused it (STOP_ACCOUNT) ...
    stopped_reason  text,            -- ... saying this; cleared by an operator
    paused_until    timestamptz,     -- the provider asked the whole account to wait
    created_at      timestamptz      NOT NULL DEFAULT now(),
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (inbox_id, channel, priority),
    CHECK ((stopped_at IS NULL) = (stopped_reason IS NULL))
);

-- One message to one customer on one channel.
CREATE TABLE notify.sends (
    id              uuid        PRIMARY KEY,  -- the message id: the send's idempotency key
    event_id        uuid        NOT NULL,     -- the envelope that asked for it
    customer_id     uuid,
    conversation_id text        NOT NULL DEFAULT '',
    channel         text        NOT NULL,     -- rt_channel's name
    inbox           text,                     -- the inbox it goes out through, NULL: none found
    account         text,                     -- notify.accounts.id of the last attempt
    recipient       text,                     -- the customer on that channel (chat id, phone)
    text            text        NOT NULL DEFAULT '',
    category        text        NOT NULL DEFAULT 'transactional'
                                CHECK (category IN ('transactional', 'marketing')),
    status          text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending',
                                    'sent', 'delivered', 'read', 'failed', 'dropped')),
    attempts        integer     NOT NULL DEFAULT 0,  -- requests made (claims)
    failures        integer     NOT NULL DEFAULT 0,  -- transient failures, against the cap
    resent          integer     NOT NULL DEFAULT 0,  -- times sent again as uncertain
    next_at         timestamptz NOT NULL,            -- due from then
    not_before      timestamptz,
    expires_at      timestamptz,                     -- never sent after: dropped
    claimed_by      text,                            -- the member that marked it sending
    claimed_at      timestamptz,
    external_id     text,                            -- the provider's message id
    last_verdict    text,                            -- provider_verdict_name, or notifyd's own
    last_code       text,                            -- the provider's code, or notifyd's
    last_reason     text,                            -- why, in words (the dead letter's reason)
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'sending' OR (claimed_by IS NOT NULL AND claimed_at IS NOT NULL))
);
-- The claim: due queued sends, oldest first.
CREATE INDEX sends_due ON notify.sends (next_at) WHERE status = 'queued';
-- The lease: sends in flight, by when they were claimed.
CREATE INDEX sends_sending ON notify.sends (claimed_at) WHERE status = 'sending';
-- Receipts: ingest names the provider's id, on a channel.
CREATE INDEX sends_external ON notify.sends (channel, external_id) WHERE external_id IS NOT NULL;
-- The dead letters, newest first.
CREATE INDEX sends_failed ON notify.sends (updated_at) WHERE status = 'failed';

-- Token buckets, by key: 'a:<account>' for an account, 'r:<account>:<recipient>'
-- for one recipient through it. tokens as of stamp_ms (rt_clock's unix ms);
-- a bucket refills at its rate up to its burst. A recipient's bucket is
-- full again after burst / rate seconds, so older rows are deleted.
CREATE TABLE notify.limits (
    key      text             PRIMARY KEY,
    tokens   double precision NOT NULL,
    stamp_ms bigint           NOT NULL
);
CREATE INDEX limits_stamp ON notify.limits (stamp_ms);

-- Takes up to want tokens from a bucket (made full when new) at now_ms and
-- returns how many it got (0 to want). A clock moved back refills nothing.
CREATE FUNCTION notify.take(p_key text, p_rate double precision, p_burst double precision,
                            p_want integer, p_now bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t   double precision;
    got integer;
BEGIN
    INSERT INTO notify.limits AS l (key, tokens, stamp_ms) VALUES (p_key, p_burst, p_now)
    ON CONFLICT (key) DO UPDATE
       SET tokens = LEAST(p_burst, l.tokens + GREATEST(0, p_now - l.stamp_ms) * p_rate / 1000.0),
           stamp_ms = GREATEST(l.stamp_ms, p_now)
    RETURNING l.tokens INTO t;
    got := LEAST(p_want, floor(t)::integer);
    IF got <= 0 THEN
        RETURN 0;
    END IF;
    UPDATE notify.limits SET tokens = tokens - got WHERE key = p_key;
    RETURN got;
END
$$;

-- Claims up to p_limit due sends for p_member at p_now (unix ms) within
-- the budgets, marks them sending and returns each with its account's
-- credentials. A send whose recipient has no token is moved to when it
-- will have one; sends beyond their account's tokens stay where they are
-- (the next claim takes them, oldest first). Sends whose inbox has no
-- usable account are not taken: they wait for one.
CREATE FUNCTION notify.claim(p_member text, p_now bigint, p_limit integer)
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
