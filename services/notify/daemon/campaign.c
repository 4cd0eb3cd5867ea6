/*
 * campaign: the runner that turns a running campaign's targets into
 * notifications, at the campaign's rate, each customer once.
 *
 * One thread per replica with a PostgreSQL connection of its own (blocking
 * libpq, as the consumer's). A round lists the running campaigns and, for
 * each, takes a step:
 *
 *   1. Tokens from the campaign's bucket (notify.take on 'c:<campaign>',
 *      its own statement, so the bucket's row is never held while
 *      notifications are routed): up to --campaign-batch, within
 *      rate_per_s and a burst of a fifth of a second's worth (at least 1).
 *      Every replica takes from the same bucket, so together they hold the
 *      rate; the same mechanism as the accounts' budgets (001).
 *   2. In one transaction: as many pending targets as tokens were got,
 *      claimed FOR UPDATE SKIP LOCKED (two replicas never take the same
 *      one, nor wait on each other) while the campaign is running, so a
 *      pause or a cancel stops the claims at the next step; their
 *      notifications made as a NotificationRequested naming no channel
 *      would make them (the route notify.route gives, the campaign's
 *      template, category and variables), keyed by
 *      notify.campaign_notification_id (campaign, customer); each new one
 *      routed by notification_route (notification.c: channel and fallback,
 *      consent, quiet hours, the send queued or the notification failed,
 *      with its MessageFailed); the targets marked queued, skipped or
 *      failed from what their notification became, and the campaign's
 *      counts moved by as many. Commit. A crash anywhere before the commit
 *      leaves the targets pending with nothing made; after it, each has
 *      its one notification and send. A notification that is there already
 *      (the id is the pair's) is not routed again.
 *   3. Tokens got and not used go back to the bucket. A step that finds no
 *      pending target ends the campaign (done) unless another replica
 *      holds some.
 * A cancel (retainctl) cancels the campaign's queued sends in its own
 * transaction (007's trigger): none of them is claimed after it, and those
 * already `sending` go on. The marking of step 2 locks the campaign's row,
 * so a step and a cancel are ordered: a step before it has its sends
 * committed for the cancel to find; a step after it finds the campaign
 * cancelled there and cancels the sends it made, before its commit.
 * A round that claimed nothing waits --campaign-poll before the next.
 * Every --campaign-refresh the campaigns whose sends may still move
 * (running, paused, or finished and not settled) get sent, failed and
 * cancelled recounted from notify.sends: settled once none is queued or
 * sending.
 *
 * Memory is bounded by a step: at most --campaign-batch targets are read
 * at once, whatever the segment's size.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifyd.h"
#include "rt_buf.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "rt_uuid.h"

#define S_CAMPAIGNS_MAX 32 /* running campaigns one round steps through at most */

#define S_RUNNING "notify_campaign_running"
static const char *s_running_sql = "SELECT id::text, rate_per_s FROM notify.campaigns"
                                   " WHERE status = 'running' ORDER BY created_at, id LIMIT 32";

/* $1 the key, $2 rate, $3 burst, $4 wanted, $5 now (ms). */
#define S_TAKE "notify_campaign_take"
static const char *s_take_sql =
    "SELECT notify.take($1, $2::float8, $3::float8, $4::integer, $5::bigint)";

#define S_GIVE_BACK "notify_campaign_give_back"
static const char *s_give_back_sql =
    "UPDATE notify.limits SET tokens = tokens + $2::integer WHERE key = $1";

/* Claims up to $2 pending targets of campaign $1 after customer $5 while
 * it runs and makes their notifications ($3 the fallback chain, $4 now in
 * ms); returns each target's customer, its notification and whether it
 * was made now. */
#define S_CLAIM "notify_campaign_claim"
static const char *s_claim_sql =
    "WITH k AS (SELECT id, template, category, variables FROM notify.campaigns"
    "           WHERE id = $1::uuid AND status = 'running'),"
    " c AS (SELECT t.customer_id FROM notify.campaign_targets t"
    "        WHERE t.campaign_id = $1::uuid AND t.state = 'pending' AND t.customer_id > $5::uuid"
    "          AND EXISTS (SELECT 1 FROM k)"
    "        ORDER BY t.customer_id LIMIT $2::integer FOR UPDATE OF t SKIP LOCKED),"
    " n AS (INSERT INTO notify.notifications (id, event_id, customer_id, template, variables,"
    "         category, correlation, route, status, created_at, updated_at)"
    "       SELECT notify.campaign_notification_id(k.id, c.customer_id), k.id, c.customer_id,"
    "         k.template, k.variables, k.category, 'campaign:' || k.id,"
    "         notify.route(c.customer_id, $3, ''), 'routed', to_timestamp($4::bigint / 1000.0),"
    "         to_timestamp($4::bigint / 1000.0)"
    "         FROM c CROSS JOIN k"
    "       ON CONFLICT (id) DO NOTHING RETURNING id)"
    " SELECT c.customer_id::text, notify.campaign_notification_id($1::uuid, c.customer_id)::text,"
    "        n.id IS NOT NULL"
    "   FROM c LEFT JOIN n ON n.id = notify.campaign_notification_id($1::uuid, c.customer_id)";

/* Marks the claimed targets ($2, a uuid[] literal) from their
 * notifications and moves the campaign's counts; returns what it added
 * and the campaign's status, as of its row's lock. */
#define S_MARK "notify_campaign_mark"
static const char *s_mark_sql =
    "WITH u AS ("
    "  UPDATE notify.campaign_targets t SET notification_id = n.id,"
    "    state = CASE WHEN n.status = 'routed' THEN 'queued'"
    "                 WHEN n.code IN ('no_consent', 'no_channel', 'suppressed') THEN 'skipped'"
    "                 ELSE 'failed' END,"
    "    reason = CASE WHEN n.status = 'routed' THEN NULL ELSE n.code END,"
    "    updated_at = to_timestamp($3::bigint / 1000.0)"
    "   FROM notify.notifications n"
    "  WHERE t.campaign_id = $1::uuid AND t.customer_id = ANY ($2::uuid[])"
    "    AND t.state = 'pending' AND n.id = notify.campaign_notification_id($1::uuid, "
    "t.customer_id)"
    "  RETURNING t.state),"
    " x AS (SELECT count(*) FILTER (WHERE state = 'queued') AS q,"
    "              count(*) FILTER (WHERE state = 'skipped') AS s,"
    "              count(*) FILTER (WHERE state = 'failed') AS f FROM u)"
    " UPDATE notify.campaigns k SET queued = k.queued + x.q, skipped = k.skipped + x.s,"
    "   failed = k.failed + x.f, updated_at = to_timestamp($3::bigint / 1000.0)"
    "  FROM x WHERE k.id = $1::uuid RETURNING x.q, x.s, x.f, k.status";

/* The queued sends of campaign $1, cancelled at $2 (ms). */
#define S_CANCEL "notify_campaign_cancel"
static const char *s_cancel_sql =
    "SELECT notify.campaign_cancel_sends($1::uuid, to_timestamp($2::bigint / 1000.0))";

/* Ends campaign $1 when it runs and no target is pending ($2 now, ms). */
#define S_FINISH "notify_campaign_finish"
static const char *s_finish_sql =
    "UPDATE notify.campaigns SET status = 'done', finished_at = to_timestamp($2::bigint / 1000.0),"
    "  updated_at = to_timestamp($2::bigint / 1000.0)"
    " WHERE id = $1::uuid AND status = 'running' AND NOT EXISTS (SELECT 1 FROM"
    "   notify.campaign_targets WHERE campaign_id = $1::uuid AND state = 'pending')"
    " RETURNING targeted, queued, skipped, failed";

/* The campaigns whose sends may still move. */
#define S_OPEN "notify_campaign_open"
static const char *s_open_sql = "SELECT id::text FROM notify.campaigns"
                                " WHERE (status IN ('running', 'paused') OR NOT settled)"
                                "   AND status <> 'draft' ORDER BY created_at LIMIT 256";

/* Recounts campaign $1's sent, failed and cancelled from its sends: a
 * target is sent when one of its sends reached the provider, cancelled
 * when none did and the cancel took its last one, failed when it was
 * failed at routing or its sends all ended otherwise; settled when the
 * campaign is over and none of its sends is queued or sending. */
#define S_RECOUNT "notify_campaign_recount"
static const char *s_recount_sql =
    "WITH y AS ("
    "  SELECT bool_or(s.status IN ('sent', 'delivered', 'read')) AS ok,"
    "         bool_or(s.status IN ('queued', 'sending')) AS open,"
    "         bool_or(s.status = 'cancelled') AS cancelled"
    "    FROM notify.campaign_targets t JOIN notify.sends s ON s.notification_id = "
    "t.notification_id"
    "   WHERE t.campaign_id = $1::uuid AND t.state = 'queued' GROUP BY t.customer_id),"
    " x AS (SELECT count(*) FILTER (WHERE ok) AS sent,"
    "              count(*) FILTER (WHERE NOT ok AND NOT open AND NOT cancelled) AS lost,"
    "              count(*) FILTER (WHERE NOT ok AND NOT open AND cancelled) AS cancelled,"
    "              count(*) FILTER (WHERE open) AS open FROM y),"
    " f AS (SELECT count(*) AS n FROM notify.campaign_targets"
    "        WHERE campaign_id = $1::uuid AND state = 'failed')"
    " UPDATE notify.campaigns k SET sent = x.sent, failed = x.lost + f.n, cancelled = x.cancelled,"
    "   settled = k.status IN ('done', 'cancelled') AND x.open = 0"
    "  FROM x, f WHERE k.id = $1::uuid"
    "   AND (k.sent, k.failed, k.cancelled, k.settled) IS DISTINCT FROM"
    "       (x.sent, x.lost + f.n, x.cancelled, k.status IN ('done', 'cancelled') AND x.open = 0)";

#define S_ZERO_ID "00000000-0000-0000-0000-000000000000"

/* Where a campaign's claims go on from: the last customer this runner
 * claimed. The targets behind it were claimed (by this runner or, locked
 * meanwhile, by another replica's), so a claim need not walk again over
 * the index entries of the targets already done; a claim that finds
 * nothing past it looks once more from the start (another replica's step
 * may have rolled back) before the campaign is done. */
typedef struct {
    char id[RT_UUID_STR_LEN + 1];    /* the campaign */
    char after[RT_UUID_STR_LEN + 1]; /* its last customer claimed here */
} s_cursor_t;

struct campaign_runner_t {
    campaign_config_t cfg;               /* the settings (strings lent by the daemon) */
    pthread_t thread;                    /* the runner */
    bool started;                        /* the thread was created */
    atomic_bool stop;                    /* end after the step in progress */
    rt_db_t *db;                         /* its connection */
    rt_gauge_t *running;                 /* campaigns running, as of the last round */
    rt_counter_t *queued;                /* targets queued */
    rt_counter_t *skipped;               /* targets no channel could take */
    rt_counter_t *failed;                /* targets whose notification failed */
    rt_counter_t *finished;              /* campaigns the runner ended */
    int64_t next_refresh;                /* mono ms of the next recount */
    s_cursor_t cursors[S_CAMPAIGNS_MAX]; /* the running campaigns' */
    int ncursors;                        /* how many are in use */
};

/* One claimed target. */
typedef struct {
    char customer[RT_UUID_STR_LEN + 1];     /* the customer */
    char notification[RT_UUID_STR_LEN + 1]; /* its notification, (campaign, customer)'s */
    bool fresh;                             /* made by this claim: route it */
} s_target_t;

static void
s_db_warn (campaign_runner_t *self, const char *step, const char *campaign)
{
    rt_log (RT_LOG_WARN, "campaign step failed", rt_log_str ("step", step),
            rt_log_str ("campaign", campaign ? campaign : ""),
            rt_log_str ("error", rt_db_error (self->db)));
}

/* Hands back n tokens of key (autocommit; a failure only slows the
 * campaign down). */
static void
s_give_back (campaign_runner_t *self, const char *key, int n)
{
    char ns[16];
    PGresult *r;
    if (n <= 0)
        return;
    snprintf (ns, sizeof ns, "%d", n);
    {
        const char *v[2] = {key, ns};
        r = rt_db_exec_prepared (self->db, S_GIVE_BACK, 2, v, NULL, NULL, 0);
    }
    PQclear (r);
}

/* Tokens of campaign id's bucket, up to the batch: 0 none, -1 PostgreSQL. */
static int
s_take (campaign_runner_t *self, const char *key, double rate)
{
    char rs[32], bs[32], want[16], now[24];
    double burst = rate / 5.0 < 1.0 ? 1.0 : rate / 5.0;
    PGresult *r;
    int got;
    snprintf (rs, sizeof rs, "%.17g", rate);
    snprintf (bs, sizeof bs, "%.17g", burst);
    snprintf (want, sizeof want, "%d", self->cfg.batch);
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[5] = {key, rs, bs, want, now};
        r = rt_db_exec_prepared (self->db, S_TAKE, 5, v, NULL, NULL, 0);
    }
    if (!r)
        return -1;
    got = atoi (PQgetvalue (r, 0, 0));
    PQclear (r);
    return got;
}

/* Ends campaign id when nothing is pending, inside the open transaction. */
static int
s_finish (campaign_runner_t *self, const char *id, const char *now)
{
    const char *v[2] = {id, now};
    PGresult *r = rt_db_exec_prepared (self->db, S_FINISH, 2, v, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples (r) == 1) {
        rt_log (RT_LOG_INFO, "campaign done", rt_log_str ("campaign", id),
                rt_log_int ("targeted", atoll (PQgetvalue (r, 0, 0))),
                rt_log_int ("queued", atoll (PQgetvalue (r, 0, 1))),
                rt_log_int ("skipped", atoll (PQgetvalue (r, 0, 2))),
                rt_log_int ("failed", atoll (PQgetvalue (r, 0, 3))));
        rt_counter_inc (self->finished);
    }
    PQclear (r);
    return 0;
}

/* Routes the fresh ones of n claimed targets, then marks them all. */
static int
s_route_and_mark (campaign_runner_t *self, const char *id, const s_target_t *t, int n,
                  const char *now)
{
    rt_buf_t list = {0};
    char err[512];
    PGresult *r;
    bool cancelled = false;
    int rc = -1;
    rt_buf_array_begin (&list);
    for (int i = 0; i < n; i++) {
        if (t[i].fresh && notification_route (self->db, self->cfg.notification, t[i].notification,
                                              NULL, NULL, NULL, err, sizeof err) < 0) {
            rt_log (RT_LOG_WARN, "campaign notification not routed", rt_log_str ("campaign", id),
                    rt_log_str ("notification_id", t[i].notification), rt_log_str ("error", err));
            goto cleanup;
        }
        rt_buf_array_raw (&list, t[i].customer);
    }
    rt_buf_array_end (&list);
    if (list.failed)
        goto cleanup;
    {
        const char *v[3] = {id, list.data, now};
        r = rt_db_exec_prepared (self->db, S_MARK, 3, v, NULL, NULL, 0);
    }
    if (!r) {
        s_db_warn (self, "mark", id);
        goto cleanup;
    }
    if (PQntuples (r) == 1) {
        rt_counter_add (self->queued, (uint64_t)atoll (PQgetvalue (r, 0, 0)));
        rt_counter_add (self->skipped, (uint64_t)atoll (PQgetvalue (r, 0, 1)));
        rt_counter_add (self->failed, (uint64_t)atoll (PQgetvalue (r, 0, 2)));
        cancelled = strcmp (PQgetvalue (r, 0, 3), "cancelled") == 0;
    }
    PQclear (r);
    /* Cancelled while this step made its sends: the cancel's own
     * transaction could not see them, so they go with this one. */
    if (cancelled) {
        const char *v[2] = {id, now};
        r = rt_db_exec_prepared (self->db, S_CANCEL, 2, v, NULL, NULL, 0);
        if (!r) {
            s_db_warn (self, "cancel", id);
            goto cleanup;
        }
        PQclear (r);
    }
    rc = 0;
cleanup:
    rt_buf_free (&list);
    return rc;
}

/* The cursor of campaign id, made at the start when new (the oldest is
 * reused when every slot is taken). */
static s_cursor_t *
s_cursor (campaign_runner_t *self, const char *id)
{
    s_cursor_t *c;
    for (int i = 0; i < self->ncursors; i++)
        if (strcmp (self->cursors[i].id, id) == 0)
            return &self->cursors[i];
    if (self->ncursors < S_CAMPAIGNS_MAX) {
        c = &self->cursors[self->ncursors++];
    } else {
        memmove (self->cursors, self->cursors + 1, (S_CAMPAIGNS_MAX - 1) * sizeof *c);
        c = &self->cursors[S_CAMPAIGNS_MAX - 1];
    }
    snprintf (c->id, sizeof c->id, "%.*s", RT_UUID_STR_LEN, id);
    snprintf (c->after, sizeof c->after, "%s", S_ZERO_ID);
    return c;
}

/* One step of campaign id: targets claimed (>0), none (0), or -1 when
 * PostgreSQL failed (rolled back). */
static int
s_step (campaign_runner_t *self, const char *id, double rate)
{
    char key[RT_UUID_STR_LEN + 8], now[24], last[RT_UUID_STR_LEN + 1] = S_ZERO_ID;
    s_cursor_t *cur = s_cursor (self, id);
    s_target_t *t = NULL;
    PGresult *r = NULL;
    int got, n = 0, rc = -1;
    snprintf (key, sizeof key, "c:%.*s", RT_UUID_STR_LEN, id);
    got = s_take (self, key, rate);
    if (got <= 0) {
        if (got < 0)
            s_db_warn (self, "take", id);
        return got;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (rt_db_begin (self->db) != 0) {
        s_db_warn (self, "begin", id);
        goto cleanup;
    }
    for (;;) {
        char gots[16];
        const char *v[5] = {id, gots, self->cfg.notification->fallback_chain, now, cur->after};
        snprintf (gots, sizeof gots, "%d", got);
        r = rt_db_exec_prepared (self->db, S_CLAIM, 5, v, NULL, NULL, 0);
        if (!r) {
            s_db_warn (self, "claim", id);
            goto rollback;
        }
        n = PQntuples (r);
        if (n > 0 || strcmp (cur->after, S_ZERO_ID) == 0)
            break;
        PQclear (r);
        r = NULL;
        snprintf (cur->after, sizeof cur->after, "%s", S_ZERO_ID);
    }
    if (n == 0) {
        if (s_finish (self, id, now) != 0) {
            s_db_warn (self, "finish", id);
            goto rollback;
        }
    } else if (n > 0) {
        t = calloc ((size_t)n, sizeof *t);
        if (!t)
            goto rollback;
        for (int i = 0; i < n; i++) {
            snprintf (t[i].customer, sizeof t[i].customer, "%.*s", RT_UUID_STR_LEN,
                      PQgetvalue (r, i, 0));
            snprintf (t[i].notification, sizeof t[i].notification, "%.*s", RT_UUID_STR_LEN,
                      PQgetvalue (r, i, 1));
            t[i].fresh = strcmp (PQgetvalue (r, i, 2), "t") == 0;
            if (strcmp (t[i].customer, last) > 0)
                snprintf (last, sizeof last, "%.*s", RT_UUID_STR_LEN, t[i].customer);
        }
        if (s_route_and_mark (self, id, t, n, now) != 0)
            goto rollback;
    }
    if (rt_db_commit (self->db) != 0) {
        s_db_warn (self, "commit", id);
        n = 0;
        goto cleanup;
    }
    /* Canonical UUID text sorts as PostgreSQL sorts the UUIDs. */
    if (n > 0)
        snprintf (cur->after, sizeof cur->after, "%.*s", RT_UUID_STR_LEN, last);
    rc = n;
    goto cleanup;
rollback:
    rt_db_rollback (self->db);
    n = 0;
cleanup:
    PQclear (r);
    free (t);
    if (rt_db_is_ok (self->db))
        s_give_back (self, key, got - n);
    return rc;
}

/* One round over the running campaigns: targets claimed in all, or -1. */
static int
s_round (campaign_runner_t *self)
{
    PGresult *r = rt_db_exec_prepared (self->db, S_RUNNING, 0, NULL, NULL, NULL, 0);
    int total = 0, n;
    char ids[S_CAMPAIGNS_MAX][RT_UUID_STR_LEN + 1];
    double rates[S_CAMPAIGNS_MAX];
    if (!r) {
        s_db_warn (self, "running", NULL);
        return -1;
    }
    n = PQntuples (r);
    if (n > S_CAMPAIGNS_MAX)
        n = S_CAMPAIGNS_MAX;
    for (int i = 0; i < n; i++) {
        snprintf (ids[i], sizeof ids[i], "%.*s", RT_UUID_STR_LEN, PQgetvalue (r, i, 0));
        rates[i] = atof (PQgetvalue (r, i, 1));
    }
    PQclear (r);
    rt_gauge_set (self->running, n);
    for (int i = 0; i < n && !atomic_load (&self->stop); i++) {
        int got = s_step (self, ids[i], rates[i]);
        if (got < 0)
            return -1;
        total += got;
    }
    return total;
}

/* Recounts sent and failed of the campaigns whose sends may still move. */
static void
s_refresh (campaign_runner_t *self)
{
    PGresult *r = rt_db_exec_prepared (self->db, S_OPEN, 0, NULL, NULL, NULL, 0);
    if (!r) {
        s_db_warn (self, "open", NULL);
        return;
    }
    for (int i = 0; i < PQntuples (r) && !atomic_load (&self->stop); i++) {
        const char *v[1] = {PQgetvalue (r, i, 0)};
        PGresult *u = rt_db_exec_prepared (self->db, S_RECOUNT, 1, v, NULL, NULL, 0);
        if (!u) {
            s_db_warn (self, "recount", v[0]);
            break;
        }
        PQclear (u);
    }
    PQclear (r);
}

static int
s_prepare (rt_db_t *db)
{
    if (rt_outbox_prepare (db) != 0 || notification_prepare (db) != 0 ||
        rt_db_prepare (db, S_RUNNING, s_running_sql) != 0 ||
        rt_db_prepare (db, S_TAKE, s_take_sql) != 0 ||
        rt_db_prepare (db, S_GIVE_BACK, s_give_back_sql) != 0 ||
        rt_db_prepare (db, S_CLAIM, s_claim_sql) != 0 ||
        rt_db_prepare (db, S_MARK, s_mark_sql) != 0 ||
        rt_db_prepare (db, S_CANCEL, s_cancel_sql) != 0 ||
        rt_db_prepare (db, S_FINISH, s_finish_sql) != 0 ||
        rt_db_prepare (db, S_OPEN, s_open_sql) != 0 ||
        rt_db_prepare (db, S_RECOUNT, s_recount_sql) != 0)
        return -1;
    return 0;
}

/* Waits ms, in slices, unless the runner is stopped meanwhile. */
static void
s_wait (campaign_runner_t *self, int64_t ms)
{
    while (ms > 0 && !atomic_load (&self->stop)) {
        int slice = ms > 50 ? 50 : (int)ms;
        rt_signal_sleep_ms (slice);
        ms -= slice;
    }
}

static void *
s_main (void *arg)
{
    campaign_runner_t *self = arg;
    /* Registered before the first connection, so rt_db prepares them on
     * it and on every later one. */
    if (s_prepare (self->db) != 0) {
        rt_log (RT_LOG_ERROR, "the campaign runner's statements were not registered",
                rt_log_str ("error", rt_db_error (self->db)));
        return NULL;
    }
    while (!atomic_load (&self->stop)) {
        int claimed;
        if (rt_db_ensure_for (self->db, 1000) != 0) {
            s_wait (self, 100);
            continue;
        }
        claimed = s_round (self);
        if (rt_clock_mono_ms () >= self->next_refresh) {
            s_refresh (self);
            self->next_refresh = rt_clock_mono_ms () + self->cfg.refresh_ms;
        }
        if (claimed <= 0)
            s_wait (self, self->cfg.poll_ms);
    }
    return NULL;
}

campaign_runner_t *
campaign_start (const campaign_config_t *config, char *err, size_t errlen)
{
    campaign_runner_t *self = calloc (1, sizeof *self);
    rt_metrics_t *m = config->metrics;
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *config;
    self->running = rt_metrics_gauge (m, "retain_notify_campaigns_running", "",
                                      "campaigns running, as of the runner's last round");
    self->queued =
        rt_metrics_counter (m, "retain_notify_campaign_targets_total", "outcome=\"queued\"",
                            "campaign targets claimed, by outcome");
    self->skipped =
        rt_metrics_counter (m, "retain_notify_campaign_targets_total", "outcome=\"skipped\"",
                            "campaign targets claimed, by outcome");
    self->failed =
        rt_metrics_counter (m, "retain_notify_campaign_targets_total", "outcome=\"failed\"",
                            "campaign targets claimed, by outcome");
    self->finished = rt_metrics_counter (m, "retain_notify_campaigns_done_total", "",
                                         "campaigns the runner found with no target left");
    self->db = rt_db_new (config->dsn, "retain-notifyd-campaigns");
    if (!self->db) {
        rt_errf (err, errlen, "out of memory");
        goto failed;
    }
    if (pthread_create (&self->thread, NULL, s_main, self) != 0) {
        rt_errf (err, errlen, "the campaign runner's thread did not start");
        goto failed;
    }
    self->started = true;
    return self;
failed:
    campaign_stop (&self);
    return NULL;
}

void
campaign_stop (campaign_runner_t **self_p)
{
    campaign_runner_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    if (self->started)
        pthread_join (self->thread, NULL);
    rt_db_destroy (&self->db);
    free (self);
    *self_p = NULL;
}
