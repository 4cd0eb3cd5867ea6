-- notify, the campaigns: one template to a segment of customers, as an
-- operator's crisis update ("your parcel with Nova Poshta is late: the
-- depot is closed"), throttled, paused and resumed, each customer once.
-- retainctl campaign writes the campaign and evaluates its segment into
-- campaign_targets; retain-notifyd's runner (services/notify/daemon/
-- campaign.c) drives the targets.
--
-- Each customer at most once, even across a SIGKILL:
--   * A customer is a target of a campaign once: the primary key of
--     campaign_targets. A segment is evaluated with INSERT ... ON CONFLICT
--     DO NOTHING, so a customer matched twice (two parcels, a merged
--     duplicate) is one target.
--   * A target's notification id is a function of (campaign, customer)
--     (notify.campaign_notification_id), and the runner claims a target,
--     makes its notification and its send (notification.c) and marks the
--     target in one transaction: a crash before the commit leaves the
--     target pending with nothing made, after it the target done with its
--     send; a replay meets the notification's primary key.
--   * The send then follows the send contract (001): only a request in
--     flight at a crash can reach the customer twice, and for marketing
--     the crash policy drops it instead.
--
-- The rate is a token bucket in notify.limits keyed 'c:<campaign>', taken
-- by every replica's runner before it claims: replicas together queue at
-- most rate × seconds + burst targets (burst: a fifth of a second's worth,
-- at least 1).

CREATE TABLE notify.campaigns (
    id          uuid             PRIMARY KEY,
    template    text             NOT NULL,  -- notify.templates.name
    category    text             NOT NULL DEFAULT 'marketing'
                                 CHECK (category IN ('transactional', 'marketing')),
    -- The segment as given: {"kind": "carrier", "carrier": "nova_poshta",
    -- "status": "in_transit"}, {"kind": "wrote", "channel": "telegram",
    -- "since_ms": 604800000}, {"kind": "csv", "file": "...", "rows": n,
    -- "unmatched": n}, {"kind": "all"}. Evaluated once, at creation.
    segment     jsonb            NOT NULL CHECK (jsonb_typeof(segment) = 'object'),
    -- Variables every notification of the campaign is rendered with
    -- (besides the customer's own name).
    variables   jsonb            NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variables) = 'object'),
    rate_per_s  double precision NOT NULL DEFAULT 50 CHECK (rate_per_s > 0),
    -- draft: made, not started; running: the runner claims its targets;
    -- paused: it does not; done: no target left pending; cancelled: its
    -- pending targets are never claimed.
    status      text             NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running',
                                     'paused', 'done', 'cancelled')),
    -- The counts. targeted: customers in the segment; queued: targets that
    -- became a send (the route, consent and quiet hours are the
    -- notification's: a customer in their quiet hours is queued for the
    -- morning); skipped: targets no channel could take (no_consent,
    -- no_channel); failed: targets whose notification failed (a missing
    -- variable, a text too long) and queued ones whose sends all ended
    -- without reaching them; sent: queued targets a provider took.
    -- targeted is written at creation; queued, skipped and failed by the
    -- runner in the claim's transaction; sent and failed recounted by it
    -- while sends are open.
    targeted    bigint           NOT NULL DEFAULT 0,
    queued      bigint           NOT NULL DEFAULT 0,
    sent        bigint           NOT NULL DEFAULT 0,
    skipped     bigint           NOT NULL DEFAULT 0,
    failed      bigint           NOT NULL DEFAULT 0,
    -- No send of a finished campaign is queued or sending any more: the
    -- counts are final and the runner stops recounting.
    settled     boolean          NOT NULL DEFAULT false,
    created_by  text             NOT NULL CHECK (created_by <> ''),
    created_at  timestamptz      NOT NULL,
    started_at  timestamptz,     -- first set running
    finished_at timestamptz,     -- done or cancelled
    updated_at  timestamptz      NOT NULL
);
CREATE INDEX campaigns_active ON notify.campaigns (created_at)
    WHERE status IN ('running', 'paused') OR NOT settled;

-- One customer of a campaign's segment (a root customer: merges followed).
CREATE TABLE notify.campaign_targets (
    campaign_id     uuid        NOT NULL REFERENCES notify.campaigns ON DELETE CASCADE,
    customer_id     uuid        NOT NULL,
    -- pending: not claimed yet; queued: its notification has a send;
    -- skipped: no channel could take it; failed: its notification failed
    -- (reason: the notification's code; its row has the words).
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'queued',
                                    'skipped', 'failed')),
    reason          text,
    notification_id uuid,       -- notify.notifications.id, once claimed
    updated_at      timestamptz,
    PRIMARY KEY (campaign_id, customer_id),
    CHECK ((state = 'pending') = (notification_id IS NULL))
);
-- The claim: a campaign's pending targets in customer order.
CREATE INDEX campaign_targets_pending ON notify.campaign_targets (campaign_id, customer_id)
    WHERE state = 'pending';

-- The notification id of a customer in a campaign: a UUID (version 8,
-- RFC 9562) made of the MD5 of the pair, so the same target always names
-- the same notification.
CREATE FUNCTION notify.campaign_notification_id(p_campaign uuid, p_customer uuid) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT (substr(h, 1, 12) || '8' || substr(h, 14, 3)
            || substr('89ab', (('x' || substr(h, 17, 1))::bit(4)::integer % 4) + 1, 1)
            || substr(h, 18))::uuid
      FROM md5(p_campaign::text || ':' || p_customer::text) AS h
$$;

-- The route of a notification that names no channel, as the consumer
-- makes it for a NotificationRequested (daemon/handler.c): the customer's
-- preferred channel, else the one they wrote on last, then the fallback
-- chain, each channel once.
CREATE FUNCTION notify.route(p_customer uuid, p_chain text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    WITH r AS (SELECT crm.root(p_customer) AS id),
    first AS (
        SELECT COALESCE(NULLIF((SELECT preferred_channel FROM crm.customers c, r
                                 WHERE c.id = r.id), ''),
                        (SELECT channel FROM crm.identities i, r
                          WHERE i.customer_id = r.id
                          ORDER BY i.last_seen DESC, i.inbox LIMIT 1)) AS ch)
    SELECT COALESCE(array_agg(ch ORDER BY ord), '{}')
      FROM (SELECT ch, min(ord) AS ord
              FROM unnest(ARRAY[(SELECT ch FROM first)]
                          || regexp_split_to_array(p_chain, '[, ]+'))
                   WITH ORDINALITY AS x(ch, ord)
             WHERE ch IS NOT NULL AND ch <> ''
             GROUP BY ch) y
$$;
