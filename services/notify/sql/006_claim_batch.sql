-- notify, the claim as sets: one call takes a batch of due sends with a
-- fixed number of statements whatever its size, re-checks the quiet hours
-- of the sends that wait them out, and wakes the senders when sends are
-- queued (services/notify/daemon/sender.c).
--
-- 001's claim took each send's buckets one call at a time and marked the
-- batch `sending` through a join that PostgreSQL planned once, while
-- notify.sends was small, and kept: about 0.7 ms of server time a send
-- (pg_stat_statements). Here every step is one statement over the whole
-- batch, and the rows the claim has locked are found again by their ctid,
-- which no other transaction can move while the lock is held.
--
-- The contract is 001's: the sends are committed `sending` before any
-- request leaves; the budgets hold across replicas because the tokens are
-- taken under the buckets' row locks in the claim's transaction, and the
-- buckets are locked in one order (by key: every account's bucket before
-- any recipient's), so two claims never wait on each other in a cycle.

-- The operator who wrote a send (OutboundMessageRequested.operator_id),
-- NULL for everything else: Meta lets only a person's reply carry the
-- HUMAN_AGENT tag, so the claim says which sends are one.
ALTER TABLE notify.sends ADD COLUMN operator_id text;

-- Whether a send waits out the customer's quiet hours, as notifyd decided
-- it when it queued the send (marketing, or the variant of the template it
-- rendered has quiet_hours): the claim checks again with that decision,
-- not one of its own.
ALTER TABLE notify.sends ADD COLUMN quiet_hours boolean NOT NULL DEFAULT false;

-- A daily quota where the provider has one (a Viber bot's free
-- chatbot-initiated messages, a WhatsApp number's tier, a plan's cap):
-- daily_quota requests a day through the account (NULL: no quota), the
-- day as the provider counts it in quota_zone. The claim counts what it
-- takes in notify.account_days under the account's bucket lock (so
-- replicas share one count), and an account whose quota it used up rests
-- until its next day (quota_until): its inbox's next account by priority
-- takes the sends meanwhile, or, when it has none, they wait for that day.
ALTER TABLE notify.accounts ADD COLUMN daily_quota integer CHECK (daily_quota > 0),
                            ADD COLUMN quota_zone text NOT NULL DEFAULT 'UTC',
                            ADD COLUMN quota_until timestamptz;
CREATE TABLE notify.account_days (
    account text    NOT NULL REFERENCES notify.accounts (id) ON DELETE CASCADE,
    day     date    NOT NULL,
    sent    integer NOT NULL CHECK (sent >= 0),
    PRIMARY KEY (account, day)
);

-- An address as the suppression list spells it: a WhatsApp id (the
-- number's digits, as WhatsApp names the sender) in E.164 like an SMS
-- number, an e-mail lower-cased, anything else as it is.
CREATE FUNCTION notify.address_of(p_channel text, p_recipient text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_channel = 'whatsapp' THEN '+' || ltrim(p_recipient, '+')
                ELSE lower(p_recipient) END
$$;

-- The customer's time zone, as notifyd reads it for quiet hours: the
-- profile's, else the main zone of the country of a phone of theirs
-- (proven first, then their SMS and WhatsApp identities), else NULL.
-- Merges followed.
CREATE FUNCTION notify.customer_zone(p_customer uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(c.time_zone, ''),
                    (SELECT z.zone FROM notify.phone_zones z JOIN (
                         SELECT p.value AS phone, CASE WHEN p.proven THEN 0 ELSE 1 END AS rank
                           FROM crm.contact_points p
                          WHERE p.customer_id = c.id AND p.kind = 'phone'
                         UNION ALL
                         SELECT '+' || ltrim(i.external_user_id, '+'), 2 FROM crm.identities i
                          WHERE i.customer_id = c.id AND i.channel IN ('sms', 'whatsapp')) ph
                       ON ph.phone LIKE z.prefix || '%'
                      ORDER BY ph.rank, length(z.prefix) DESC LIMIT 1))
      FROM crm.customers c WHERE c.id = crm.root(p_customer)
$$;

-- The end of the quiet hours p_at falls in, in zone p_zone (NULL, or one
-- PostgreSQL does not know: p_default), or NULL when p_at is outside them.
-- p_start and p_end are minutes into the local day; p_end before p_start
-- spans midnight; equal, there are no quiet hours. The same rule as
-- notifyd's when it queues a send (daemon/notification.c).
CREATE FUNCTION notify.quiet_until(p_zone text, p_default text, p_start integer,
                                   p_end integer, p_at timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    z     text := COALESCE(NULLIF(p_zone, ''), p_default);
    local timestamp;
    m     integer;
    day   date;
    until timestamptz;
BEGIN
    IF p_start = p_end THEN
        RETURN NULL;
    END IF;
    BEGIN
        local := p_at AT TIME ZONE z;
    EXCEPTION WHEN invalid_parameter_value THEN
        z := p_default;
        local := p_at AT TIME ZONE z;
    END;
    m := extract(hour FROM local)::integer * 60 + extract(minute FROM local)::integer;
    IF (p_start < p_end AND (m < p_start OR m >= p_end))
       OR (p_start > p_end AND m < p_start AND m >= p_end) THEN
        RETURN NULL;
    END IF;
    day := local::date;
    IF p_start > p_end AND m >= p_start THEN
        -- before midnight: the window opens tomorrow
        day := day + 1;
    END IF;
    until := (day + make_interval(mins => p_end)) AT TIME ZONE z;
    RETURN GREATEST(until, p_at);
END
$$;

-- One send a claim considers: the row (locked by the claim), the account
-- that would send it, its recipient, when it was due, and the end of the
-- customer's quiet hours when they are on now (NULL: it may go).
CREATE TYPE notify.claim_candidate AS (row_id tid, sid uuid, acc text, rcpt text,
                                       due timestamptz, wait timestamptz, sup text);

-- Claims up to p_limit due sends for p_member at p_now (unix ms) and
-- returns them marked `sending`, each with its account's credentials.
--   1. The due sends, oldest first, locked (SKIP LOCKED: replicas never
--      take the same one), each with the usable account of lowest priority
--      of its inbox; a send whose inbox has none is not taken, and one
--      past expires_at never is (the sweep drops it).
--   2. Quiet hours, again: a marketing send, or one notifyd queued to wait
--      them out (sends.quiet_hours), is moved to the end of its customer's quiet hours
--      when they began after it was queued (p_quiet_start, p_quiet_end:
--      minutes into the local day; p_default_zone when the customer's is
--      unknown).
--   3. A send whose recipient was suppressed after it was queued (a hard
--      bounce of an earlier send, an operator) is taken without a token
--      and returned with the suppression's source in suppressed_by: the
--      sender sends nothing and records it unreachable (code
--      `suppressed`), so a notification goes on to its next channel and
--      anything else fails with MessageFailed. The buckets of the rest
--      are refilled, in key order.
--   4. A send whose recipient has no token left is moved to when it will
--      have one; of the others, as many as the account has tokens and
--      quota left today, oldest first, are taken; the rest stay queued for
--      the next claim.
--   5. Those tokens are taken and counted against the day's quota (an
--      account that used it up rests until its next day, above), and the
--      sends marked `sending`; attached says a send carries attachments or
--      is one part of a message (008's columns, which PL/pgSQL finds when
--      the claim first runs, after every migration): the sender reads them
--      then, by the send's id.
CREATE FUNCTION notify.claim(p_member text, p_now bigint, p_limit integer,
                             p_quiet_start integer, p_quiet_end integer, p_default_zone text)
RETURNS TABLE (id uuid, channel text, recipient text, text text, attempts integer,
               failures integer, customer_id uuid, category text, account text,
               provider text, base_url text, token text, account_id text, sender text,
               status_url text, suppressed_by text, human boolean, attached boolean)
-- Every row it reads it finds by key: the due sends by sends_due in
-- next_at order, the rest by primary key or by a list of ctids. With
-- sequential and bitmap scans off PostgreSQL plans it so whatever its
-- statistics say: a table new, truncated or grown since its last ANALYZE
-- otherwise gets a plan that reads all of notify.sends or notify.limits
-- (or every due send, to sort them) at every claim, tens of milliseconds
-- once they are large. The cost those settings add to a scan that has no
-- index (notify.phone_zones) would make PostgreSQL JIT-compile the
-- statement, hundreds of milliseconds: jit is off too.
LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
    now_ts   timestamptz := to_timestamp(p_now / 1000.0);
    cand     notify.claim_candidate[];
    taken    notify.claim_candidate[];
    held     notify.claim_candidate[];
    barred   notify.claim_candidate[];
    b_keys   text[];
    b_tokens double precision[];
    b_rows   tid[];
BEGIN
    WITH c AS MATERIALIZED (
        SELECT s.ctid AS row_id, s.id AS sid, a.id AS acc, s.recipient AS rcpt,
               s.next_at AS due, s.customer_id AS cust,
               (SELECT x.source FROM notify.suppressions x
                 WHERE x.suppressed AND x.address = notify.address_of(s.channel, s.recipient))
               AS sup,
               p_quiet_start <> p_quiet_end
               AND (s.category = 'marketing' OR s.quiet_hours) AS quiet
          FROM notify.sends s
          CROSS JOIN LATERAL (
              SELECT a.id FROM notify.accounts a
               WHERE a.inbox_id = s.inbox AND a.channel = s.channel
                 AND a.disabled_at IS NULL AND a.stopped_at IS NULL
                 AND (a.paused_until IS NULL OR a.paused_until <= now_ts)
                 AND (a.quota_until IS NULL OR a.quota_until <= now_ts)
               ORDER BY a.priority, a.id LIMIT 1) a
         WHERE s.status = 'queued' AND s.next_at <= now_ts
           AND (s.expires_at IS NULL OR s.expires_at > now_ts)
         ORDER BY s.next_at
         LIMIT p_limit
           FOR UPDATE OF s SKIP LOCKED),
    z AS (SELECT c.sid, COALESCE(notify.customer_zone(c.cust), p_default_zone) AS zone
            FROM c WHERE c.quiet AND c.sup IS NULL),
    w AS (SELECT d.zone,
                 notify.quiet_until(d.zone, p_default_zone, p_quiet_start, p_quiet_end,
                                    now_ts) AS until
            FROM (SELECT DISTINCT z.zone FROM z) d)
    SELECT array_agg(ROW(c.row_id, c.sid, c.acc, c.rcpt, c.due, w.until, NULL)::notify.claim_candidate
                     ORDER BY c.acc, c.due, c.sid) FILTER (WHERE c.sup IS NULL),
           array_agg(ROW(c.row_id, c.sid, c.acc, c.rcpt, c.due, NULL, c.sup)::notify.claim_candidate)
               FILTER (WHERE c.sup IS NOT NULL)
      INTO cand, barred
      FROM c LEFT JOIN z ON z.sid = c.sid LEFT JOIN w ON w.zone = z.zone;
    IF cand IS NULL AND barred IS NULL THEN
        RETURN;
    END IF;

    UPDATE notify.sends s SET next_at = c.wait, updated_at = now_ts
      FROM unnest(cand) c
     WHERE s.ctid = ANY (ARRAY(SELECT q.row_id FROM unnest(cand) q WHERE q.wait IS NOT NULL))
       AND s.ctid = c.row_id;

    WITH k AS (
        SELECT DISTINCT 'a:' || c.acc AS key, a.burst FROM unnest(cand) c
          JOIN notify.accounts a ON a.id = c.acc WHERE c.wait IS NULL
        UNION ALL
        SELECT DISTINCT 'r:' || c.acc || ':' || c.rcpt, a.recipient_burst FROM unnest(cand) c
          JOIN notify.accounts a ON a.id = c.acc WHERE c.wait IS NULL),
    b AS (
        INSERT INTO notify.limits AS l (key, tokens, stamp_ms)
        SELECT k.key, k.burst, p_now FROM k ORDER BY k.key
        ON CONFLICT (key) DO UPDATE
           SET tokens = LEAST(EXCLUDED.tokens,
                              l.tokens + GREATEST(0, p_now - l.stamp_ms)
                                  * (SELECT CASE WHEN EXCLUDED.key LIKE 'a:%' THEN a.rate_per_s
                                                 ELSE a.recipient_per_s END
                                       FROM notify.accounts a
                                      WHERE a.id = split_part(EXCLUDED.key, ':', 2)) / 1000.0),
               stamp_ms = GREATEST(l.stamp_ms, p_now)
        RETURNING l.ctid, l.key, l.tokens)
    SELECT array_agg(b.key), array_agg(b.tokens), array_agg(b.ctid)
      INTO b_keys, b_tokens, b_rows
      FROM b;

    WITH t AS (SELECT * FROM unnest(b_keys, b_tokens) AS t(key, tokens)),
    e AS (
        SELECT c.*, row_number() OVER (PARTITION BY c.acc, c.rcpt ORDER BY c.due, c.sid)
                        <= floor(rt.tokens) AS r_ok
          FROM unnest(cand) c JOIN t rt ON rt.key = 'r:' || c.acc || ':' || c.rcpt
         WHERE c.wait IS NULL),
    q AS (
        SELECT a.id, a.daily_quota - COALESCE(d.sent, 0) AS left_today
          FROM notify.accounts a
          LEFT JOIN notify.account_days d
                 ON d.account = a.id AND d.day = (now_ts AT TIME ZONE a.quota_zone)::date
         WHERE a.id = ANY (ARRAY(SELECT DISTINCT c.acc FROM unnest(cand) c))
           AND a.daily_quota IS NOT NULL),
    g AS (
        SELECT e.*, e.r_ok AND row_number() OVER (PARTITION BY e.acc, e.r_ok
                                                  ORDER BY e.due, e.sid)
                               <= LEAST(floor(at.tokens), COALESCE(q.left_today, 2147483647)) AS ok
          FROM e JOIN t at ON at.key = 'a:' || e.acc LEFT JOIN q ON q.id = e.acc)
    SELECT array_agg(ROW(g.row_id, g.sid, g.acc, g.rcpt, g.due, g.wait, NULL)::notify.claim_candidate)
               FILTER (WHERE g.ok),
           array_agg(ROW(g.row_id, g.sid, g.acc, g.rcpt, g.due, g.wait, NULL)::notify.claim_candidate)
               FILTER (WHERE NOT g.r_ok)
      INTO taken, held
      FROM g;

    UPDATE notify.sends s
       SET next_at = now_ts + make_interval(secs => 1.0 / a.recipient_per_s)
      FROM unnest(held) h JOIN notify.accounts a ON a.id = h.acc
     WHERE s.ctid = ANY (ARRAY(SELECT q.row_id FROM unnest(held) q)) AND s.ctid = h.row_id;
    IF taken IS NOT NULL THEN
        UPDATE notify.limits l SET tokens = l.tokens - x.n
          FROM (SELECT b.row_id, count(*) AS n
                  FROM (SELECT 'a:' || g.acc AS key FROM unnest(taken) g
                        UNION ALL
                        SELECT 'r:' || g.acc || ':' || g.rcpt FROM unnest(taken) g) y
                  JOIN unnest(b_keys, b_rows) AS b(key, row_id) ON b.key = y.key
                 GROUP BY b.row_id) x
         WHERE l.ctid = ANY (b_rows) AND l.ctid = x.row_id;

        WITH n AS (SELECT g.acc, count(*)::integer AS n FROM unnest(taken) g GROUP BY g.acc),
        d AS (
            INSERT INTO notify.account_days AS d (account, day, sent)
            SELECT n.acc, (now_ts AT TIME ZONE a.quota_zone)::date, n.n
              FROM n JOIN notify.accounts a ON a.id = n.acc
             WHERE a.daily_quota IS NOT NULL
            ON CONFLICT (account, day) DO UPDATE SET sent = d.sent + EXCLUDED.sent
            RETURNING d.account, d.sent),
        r AS (
            UPDATE notify.accounts a
               SET quota_until = (date_trunc('day', now_ts AT TIME ZONE a.quota_zone)
                                  + interval '1 day') AT TIME ZONE a.quota_zone,
                   updated_at = now_ts
              FROM d WHERE a.id = d.account AND d.sent >= a.daily_quota
            RETURNING a.id, a.inbox_id, a.channel, a.quota_until)
        -- With no other account to take them, the inbox's queued sends on
        -- that channel wait for the day (the claims would otherwise walk
        -- past every one of them, each time, until then).
        UPDATE notify.sends s SET next_at = r.quota_until, updated_at = now_ts
          FROM r
         WHERE s.status = 'queued' AND s.inbox = r.inbox_id AND s.channel = r.channel
           AND s.next_at < r.quota_until
           AND NOT EXISTS (SELECT 1 FROM notify.accounts o
                            WHERE o.inbox_id = r.inbox_id AND o.channel = r.channel
                              AND o.id <> r.id AND o.disabled_at IS NULL AND o.stopped_at IS NULL
                              AND (o.quota_until IS NULL OR o.quota_until <= now_ts));
    END IF;
    taken := COALESCE(taken, '{}') || COALESCE(barred, '{}');
    IF cardinality(taken) = 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
        WITH u AS (
            UPDATE notify.sends s
               SET status = 'sending', attempts = s.attempts + 1, account = g.acc,
                   claimed_by = p_member, claimed_at = now_ts, updated_at = now_ts
              FROM unnest(taken) g
             WHERE s.ctid = ANY (ARRAY(SELECT q.row_id FROM unnest(taken) q))
               AND s.ctid = g.row_id
            RETURNING s.id, s.channel, s.recipient, s.text, s.attempts, s.failures,
                      s.customer_id, s.category, s.account, g.sup,
                      s.operator_id IS NOT NULL AS human,
                      s.attachments IS NOT NULL OR s.part_of IS NOT NULL AS attached)
        SELECT u.id, u.channel, u.recipient, u.text, u.attempts, u.failures, u.customer_id,
               u.category,
               a.id, a.provider, a.base_url, a.token, a.account_id, a.sender, a.status_url,
               u.sup, u.human, u.attached
          FROM u JOIN notify.accounts a ON a.id = u.account;
END
$$;

-- The outcomes of a batch of answers (daemon/outcome.c), element i of each
-- array about one: the send p_ids[i] as claim p_attempts[i] of p_member
-- made it moves to status p_status[i], due again at p_next_ms[i] (unix ms;
-- 0: unchanged), p_add[i] more transient failures, the provider's id
-- p_ext[i] ('' none), the verdict, code and reason, at p_at[i] (unix ms).
-- Returns the sends it moved, each with the id its events name (its
-- notification's, else its own) and its notification ('' none). A send
-- that is no longer its claim's (the crash policy took it back: status,
-- claimer or attempt changed) is not moved, nor returned. It reads
-- exactly its sends, by primary key, as the claim does (the settings),
-- and joins them to the answers by hashing: a nested loop, which a
-- planner that expects one send in flight prefers, reads the answers
-- again for every send (5 ms for a batch of 100 instead of 1.5).
CREATE FUNCTION notify.record_outcomes(p_member text, p_ids uuid[], p_attempts integer[],
                                       p_status text[], p_next_ms bigint[], p_add integer[],
                                       p_ext text[], p_verdict text[], p_code text[],
                                       p_reason text[], p_at bigint[])
RETURNS TABLE (id text, attempts integer, event_id text, notification_id text)
LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off SET enable_nestloop = off
                 SET jit = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        UPDATE notify.sends s SET status = x.status,
               next_at = CASE WHEN x.next_ms > 0 THEN to_timestamp(x.next_ms / 1000.0)
                              ELSE s.next_at END,
               failures = s.failures + x.add,
               external_id = COALESCE(NULLIF(x.ext, ''), s.external_id),
               last_verdict = x.verdict, last_code = NULLIF(x.code, ''),
               last_reason = NULLIF(x.reason, ''),
               sent_at = CASE WHEN x.status IN ('sent', 'delivered')
                              THEN to_timestamp(x.at / 1000.0) ELSE s.sent_at END,
               delivered_at = CASE WHEN x.status = 'delivered'
                                   THEN to_timestamp(x.at / 1000.0) ELSE s.delivered_at END,
               updated_at = to_timestamp(x.at / 1000.0)
          FROM unnest(p_ids, p_attempts, p_status, p_next_ms, p_add, p_ext, p_verdict, p_code,
                      p_reason, p_at)
               AS x(id, attempts, status, next_ms, add, ext, verdict, code, reason, at)
         WHERE s.id = ANY (p_ids) AND s.id = x.id AND s.status = 'sending'
           AND s.claimed_by = p_member AND s.attempts = x.attempts
        RETURNING s.id::text, s.attempts, COALESCE(s.notification_id, s.id)::text,
                  COALESCE(s.notification_id::text, '');
END
$$;

-- 003's claim, which this one replaces.
DROP FUNCTION notify.claim(text, bigint, integer);

-- The sends in flight, for the lease (daemon/recover.c), and for nothing
-- else: its predicate names claimed_at, which only the lease's query
-- does, so PostgreSQL never reads every send in flight (and the versions
-- of those that were, until a vacuum) for notify.record_outcomes, which
-- names its sends by id and must read them by the primary key.
DROP INDEX notify.sends_sending;
CREATE INDEX sends_sending ON notify.sends (claimed_at)
    WHERE status = 'sending' AND claimed_at IS NOT NULL;

-- Wakes the senders (LISTEN notify_sends) when sends are queued: a
-- consumer's round that made sends, a notification handed over. A
-- statement's trigger, so a round of many sends says it once, and
-- PostgreSQL folds the same NOTIFY made twice in one transaction into one
-- delivered at its commit. Sends that become due later (a retry's backoff,
-- the morning) are found by the senders' poll.
CREATE FUNCTION notify.sends_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_sends', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER sends_queued AFTER INSERT ON notify.sends FOR EACH STATEMENT
    EXECUTE FUNCTION notify.sends_queued();
