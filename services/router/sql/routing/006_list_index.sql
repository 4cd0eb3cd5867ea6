-- The operator API's conversation list (services/router/api/api.c,
-- the s_sql_list statements) in the order of the wait, read from an index instead of
-- sorted. The list's key is the oldest unanswered message's time in unix
-- milliseconds, answered conversations last:
--
--   coalesce((extract(epoch FROM waiting_since AT TIME ZONE 'UTC') * 1000)::bigint,
--            9223372036854775807)
--
-- written AT TIME ZONE 'UTC' (the same value as the epoch of the
-- timestamptz) because that form is immutable and can be indexed. With
-- 100,000 open conversations a team's first page read 5,000 rows, joined
-- each to its customer and last message, then sorted them (about 140 ms,
-- and 600 ms more of JIT compiling the plan its cost estimate called
-- for); from these indexes it reads the page's 50 rows (under 1 ms).
-- Every index keeps only conversations that are not resolved, as the list
-- does unless asked for resolved ones.

-- An admin's list: every conversation.
CREATE INDEX conversations_list ON routing.conversations
    ((coalesce((extract(epoch FROM waiting_since AT TIME ZONE 'UTC') * 1000)::bigint,
               9223372036854775807)), id)
    WHERE status <> 'resolved';

-- A team's list: routed to it, or to no team (team_id IS NULL). Also what
-- conversations_team (team_id) was for: it is its prefix.
CREATE INDEX conversations_list_team ON routing.conversations
    (team_id, (coalesce((extract(epoch FROM waiting_since AT TIME ZONE 'UTC') * 1000)::bigint,
                        9223372036854775807)), id)
    WHERE status <> 'resolved';
DROP INDEX routing.conversations_team;

-- One operator's list, and a team's operators' conversations routed to
-- another team (found by team_id ranges without reading the operator's
-- others). Also what conversations_assignee (assignee) was for: rebalancing,
-- counters; it is its prefix.
CREATE INDEX conversations_list_assignee ON routing.conversations
    (assignee, team_id,
     (coalesce((extract(epoch FROM waiting_since AT TIME ZONE 'UTC') * 1000)::bigint,
               9223372036854775807)), id)
    WHERE status <> 'resolved';
DROP INDEX routing.conversations_assignee;

-- A team's operators, disabled ones included (they may still hold
-- conversations the team sees): the list's second branch starts from them.
CREATE INDEX operators_team_all ON routing.operators (team_id);

-- The timer's snoozes coming due (routing_tick wakes them every --tick):
-- without it, a scan of every conversation each second.
CREATE INDEX conversations_snoozed ON routing.conversations (snoozed_until)
    WHERE status = 'snoozed';
