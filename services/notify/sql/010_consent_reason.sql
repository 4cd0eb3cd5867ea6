-- Why consent changed, in the words of whoever changed it: an operator's
-- --reason (retainctl consent set), ConsentChanged.reason; empty for the
-- sources that have no words of their own (a STOP keyword, the unsubscribe
-- link). Kept with the change in the history and with the newest word, so
-- `retainctl consent show` can say why a customer hears nothing.
ALTER TABLE notify.consent ADD COLUMN reason text NOT NULL DEFAULT '';
ALTER TABLE notify.consent_history ADD COLUMN reason text NOT NULL DEFAULT '';

-- notify.consent_set of 003 with the reason: a new word replaces the old
-- one's reason too (a STOP keyword after an operator's withdrawal leaves
-- no stale words). The callers of six arguments (007's opt_keyword) keep
-- working through the default.
DROP FUNCTION notify.consent_set(uuid, text, text, boolean, text, timestamptz);
CREATE FUNCTION notify.consent_set(p_customer uuid, p_channel text, p_category text,
                                   p_granted boolean, p_source text, p_at timestamptz,
                                   p_reason text DEFAULT '')
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notify.consent_history (customer_id, channel, category, granted, source, at,
                                        reason)
    VALUES (p_customer, p_channel, p_category, p_granted, p_source, p_at, COALESCE(p_reason, ''));
    INSERT INTO notify.consent AS c (customer_id, channel, category, granted, source, at, reason)
    VALUES (p_customer, p_channel, p_category, p_granted, p_source, p_at, COALESCE(p_reason, ''))
    ON CONFLICT (customer_id, channel, category) DO UPDATE
       SET granted = EXCLUDED.granted, source = EXCLUDED.source, at = EXCLUDED.at,
           reason = EXCLUDED.reason
     WHERE c.at <= EXCLUDED.at;
$$;
