/*
 * recover: the crash policy, and the chores that keep notify's tables and
 * gauges right, run by one worker per replica at start and every sweep.
 *
 * A send is marked `sending` in a committed transaction before its request
 * leaves; its outcome is recorded after the answer. A send still `sending`
 * after the lease (twice the request timeout by default: no request of a
 * live member lasts so long) was claimed by a member that is gone, or that
 * lost PostgreSQL meanwhile: whether the provider has it is unknown.
 * None of the providers notifyd speaks to lets it ask by its own id, so
 * the policy decides per category (DESIGN, "Effects outside PostgreSQL"):
 *   transactional (an operator's reply): queued again and sent once more,
 *     counted in retain_notify_uncertain_resent_total: a customer may get
 *     it twice, never not at all;
 *   marketing: dropped, with MessageFailed (uncertain_dropped), counted in
 *     retain_notify_uncertain_dropped_total: never twice.
 * A replica that starts has nothing in flight, so at its first sweep the
 * sends its own member name left `sending` (a restart under a stable
 * --member) are uncertain at once, without waiting out the lease. Two
 * replicas must not share a member name.
 *
 * Duplicates come only from requests in flight at a crash: at most the
 * in-flight cap per replica. The outcome of a request whose send the
 * policy took back is not recorded (outcome.c fences on the claim).
 *
 * Also: queued sends past expires_at are dropped with MessageFailed
 * (expired), never sent late (the claim never takes them either); a
 * notification of an important category whose send got no delivery
 * receipt within --receipt-wait goes on the next channel of its route; recipients' buckets
 * untouched for an hour are deleted, and the daily quotas' counts of days gone (a bucket is full
 * again after burst / rate, and a new one starts full); the queue depth gauge is refreshed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifyd.h"
#include "rt_clock.h"
#include "rt_log.h"

/* Uncertain sends: $1 now (ms), $2 lease (ms), $3 whether this member's
 * own count at once, $4 the member. claimed_at IS NOT NULL (always true
 * of a send `sending`) is what lets it read notify 006's sends_sending. */
#define S_UNCERTAIN "notify_recover_uncertain"
static const char *s_uncertain_sql =
    "UPDATE notify.sends SET"
    "  status = CASE WHEN category = 'transactional' THEN 'queued' ELSE 'dropped' END,"
    "  resent = resent + CASE WHEN category = 'transactional' THEN 1 ELSE 0 END,"
    "  next_at = to_timestamp($1::bigint / 1000.0), last_verdict = 'uncertain',"
    "  last_code = 'uncertain', last_reason = 'left sending by ' || claimed_by,"
    "  updated_at = to_timestamp($1::bigint / 1000.0)"
    " WHERE status = 'sending' AND claimed_at IS NOT NULL"
    "   AND (claimed_at < to_timestamp(($1::bigint - $2::bigint) / 1000.0)"
    "        OR ($3::boolean AND claimed_by = $4))"
    " RETURNING COALESCE(notification_id, id), category, COALESCE(customer_id::text, ''),"
    "           channel, attempts, claimed_by, external_id";

/* Expired queued sends. */
#define S_EXPIRED "notify_recover_expired"
static const char *s_expired_sql =
    "UPDATE notify.sends SET status = 'dropped', last_verdict = 'expired', last_code = 'expired',"
    "  last_reason = 'expired before it could be sent',"
    "  updated_at = to_timestamp($1::bigint / 1000.0)"
    " WHERE status = 'queued' AND expires_at <= to_timestamp($1::bigint / 1000.0)"
    " RETURNING COALESCE(notification_id, id), COALESCE(customer_id::text, ''), channel, attempts";

/* Notification sends of an important category sent before $2 (ms) with
 * no receipt since and not handed over yet; $1 the categories. */
#define S_UNRECEIPTED "notify_recover_unreceipted"
static const char *s_unreceipted_sql =
    "SELECT id, channel, notification_id FROM notify.sends"
    " WHERE status = 'sent' AND notification_id IS NOT NULL AND fallback_reason IS NULL"
    "   AND category = ANY (string_to_array($1, ','))"
    "   AND sent_at <= to_timestamp($2::bigint / 1000.0)"
    " ORDER BY sent_at LIMIT 100 FOR UPDATE SKIP LOCKED";

#define S_BUCKETS "notify_recover_buckets"
static const char *s_buckets_sql =
    "DELETE FROM notify.limits WHERE key LIKE 'r:%' AND stamp_ms < $1::bigint - 3600000";

/* The daily quotas' counts of days gone (a zone's day lags UTC's by at
 * most 14 hours: two days back is past in every zone). */
#define S_DAYS "notify_recover_days"
static const char *s_days_sql =
    "DELETE FROM notify.account_days"
    " WHERE day < (to_timestamp($1::bigint / 1000.0) AT TIME ZONE 'UTC')::date - 2";

#define S_DEPTH "notify_recover_depth"
static const char *s_depth_sql = "SELECT count(*) FROM notify.sends WHERE status = 'queued'";

int
recover_prepare (rt_db_t *db)
{
    if (rt_db_prepare (db, S_UNCERTAIN, s_uncertain_sql) != 0 ||
        rt_db_prepare (db, S_EXPIRED, s_expired_sql) != 0 ||
        rt_db_prepare (db, S_UNRECEIPTED, s_unreceipted_sql) != 0 ||
        rt_db_prepare (db, S_BUCKETS, s_buckets_sql) != 0 ||
        rt_db_prepare (db, S_DAYS, s_days_sql) != 0 ||
        rt_db_prepare (db, S_DEPTH, s_depth_sql) != 0)
        return -1;
    return 0;
}

/* The uncertain sends, in one transaction with the MessageFailed of the
 * dropped ones. */
static int
s_uncertain (const outcome_ctx_t *ctx, bool mine, int64_t now)
{
    const sender_config_t *cfg = ctx->config;
    char nows[24], lease[24], err[256];
    long resent = 0, dropped = 0;
    PGresult *r = NULL;
    snprintf (nows, sizeof nows, "%lld", (long long)now);
    snprintf (lease, sizeof lease, "%lld", (long long)cfg->lease_ms);
    if (rt_db_begin (ctx->db) != 0)
        goto failed;
    {
        const char *v[4] = {nows, lease, mine ? "true" : "false", cfg->member};
        r = rt_db_exec_prepared (ctx->db, S_UNCERTAIN, 4, v, NULL, NULL, 0);
        if (!r)
            goto failed;
    }
    for (int i = 0; i < PQntuples (r); i++) {
        notify_event_t ev = {PQgetvalue (r, i, 0), PQgetvalue (r, i, 2), PQgetvalue (r, i, 3),
                             PQgetisnull (r, i, 6) ? NULL : PQgetvalue (r, i, 6)};
        rt_log (RT_LOG_WARN, "uncertain send", rt_log_str ("message_id", ev.message_id),
                rt_log_str ("category", PQgetvalue (r, i, 1)),
                rt_log_str ("claimed_by", PQgetvalue (r, i, 5)));
        if (strcmp (PQgetvalue (r, i, 1), "transactional") == 0) {
            resent++;
            continue;
        }
        dropped++;
        if (notify_emit_failed (ctx->db, &ev, "uncertain_dropped",
                                "the request may or may not have reached the provider: a "
                                "marketing message is not sent twice",
                                true, atoi (PQgetvalue (r, i, 4)), err, sizeof err) != 0)
            goto failed_err;
    }
    if (rt_db_commit (ctx->db) != 0)
        goto failed;
    PQclear (r);
    if (resent)
        rt_counter_add (rt_metrics_counter (cfg->metrics, "retain_notify_uncertain_resent_total",
                                            "",
                                            "transactional sends left sending by a member "
                                            "that was gone, sent again"),
                        (uint64_t)resent);
    if (dropped)
        rt_counter_add (rt_metrics_counter (cfg->metrics, "retain_notify_uncertain_dropped_total",
                                            "",
                                            "marketing sends left sending by a member that "
                                            "was gone, dropped"),
                        (uint64_t)dropped);
    return 0;
failed:
    rt_errf (err, sizeof err, "%s", rt_db_error (ctx->db));
failed_err:
    PQclear (r);
    rt_db_rollback (ctx->db);
    rt_log (RT_LOG_WARN, "crash policy not applied", rt_log_str ("error", err));
    return -1;
}

static int
s_expired (const outcome_ctx_t *ctx, int64_t now)
{
    char nows[24], err[256];
    PGresult *r = NULL;
    int n;
    snprintf (nows, sizeof nows, "%lld", (long long)now);
    if (rt_db_begin (ctx->db) != 0)
        goto failed;
    {
        const char *v[1] = {nows};
        r = rt_db_exec_prepared (ctx->db, S_EXPIRED, 1, v, NULL, NULL, 0);
        if (!r)
            goto failed;
    }
    n = PQntuples (r);
    for (int i = 0; i < n; i++) {
        notify_event_t ev = {PQgetvalue (r, i, 0), PQgetvalue (r, i, 1), PQgetvalue (r, i, 2),
                             NULL};
        if (notify_emit_failed (ctx->db, &ev, "expired", "expired before it could be sent", true,
                                atoi (PQgetvalue (r, i, 3)), err, sizeof err) != 0)
            goto failed_err;
    }
    if (rt_db_commit (ctx->db) != 0)
        goto failed;
    PQclear (r);
    if (n)
        rt_counter_add (rt_metrics_counter (ctx->config->metrics, "retain_notify_expired_total", "",
                                            "sends dropped because they expired unsent"),
                        (uint64_t)n);
    return 0;
failed:
    rt_errf (err, sizeof err, "%s", rt_db_error (ctx->db));
failed_err:
    PQclear (r);
    rt_db_rollback (ctx->db);
    rt_log (RT_LOG_WARN, "expired sends not dropped", rt_log_str ("error", err));
    return -1;
}

/* The receipt watch: an important notification whose send got no
 * delivery receipt within the wait goes on the next channel of its route
 * as well; the first send stays as it is (a late receipt still moves it),
 * and names the one that took over. */
static int
s_unreceipted (const outcome_ctx_t *ctx, int64_t now)
{
    const notification_config_t *ncfg = ctx->config->notification;
    char before[24], why[96], err[256];
    PGresult *r = NULL;
    int n, handed = 0;
    if (!ncfg || ncfg->receipt_wait_ms <= 0)
        return 0;
    snprintf (before, sizeof before, "%lld", (long long)(now - ncfg->receipt_wait_ms));
    snprintf (why, sizeof why, "no delivery receipt within %llds",
              (long long)(ncfg->receipt_wait_ms / 1000));
    if (rt_db_begin (ctx->db) != 0)
        goto failed;
    {
        const char *v[2] = {ncfg->important, before};
        r = rt_db_exec_prepared (ctx->db, S_UNRECEIPTED, 2, v, NULL, NULL, 0);
        if (!r)
            goto failed;
    }
    n = PQntuples (r);
    for (int i = 0; i < n; i++) {
        int h = notification_route (ctx->db, ncfg, PQgetvalue (r, i, 2), PQgetvalue (r, i, 1),
                                    PQgetvalue (r, i, 0), why, err, sizeof err);
        if (h < 0)
            goto failed_err;
        handed += h;
    }
    if (rt_db_commit (ctx->db) != 0)
        goto failed;
    PQclear (r);
    if (n)
        rt_log (RT_LOG_INFO, "sends without a receipt", rt_log_int ("sends", n),
                rt_log_int ("handed_over", handed));
    return 0;
failed:
    rt_errf (err, sizeof err, "%s", rt_db_error (ctx->db));
failed_err:
    PQclear (r);
    rt_db_rollback (ctx->db);
    rt_log (RT_LOG_WARN, "the receipt watch did not run", rt_log_str ("error", err));
    return -1;
}

int
recover_sweep (const outcome_ctx_t *ctx, bool mine)
{
    int64_t now = rt_clock_now_ms ();
    char nows[24];
    const char *v[1] = {nows};
    PGresult *r;
    if (s_uncertain (ctx, mine, now) != 0 || s_expired (ctx, now) != 0 ||
        s_unreceipted (ctx, now) != 0)
        return -1;
    snprintf (nows, sizeof nows, "%lld", (long long)now);
    r = rt_db_exec_prepared (ctx->db, S_BUCKETS, 1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear (r);
    r = rt_db_exec_prepared (ctx->db, S_DAYS, 1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear (r);
    r = rt_db_exec_prepared (ctx->db, S_DEPTH, 0, NULL, NULL, NULL, 0);
    if (!r)
        return -1;
    rt_gauge_set (rt_metrics_gauge (ctx->config->metrics, "retain_notify_queue_depth", "",
                                    "sends queued (due or waiting), as of the last sweep"),
                  atof (PQgetvalue (r, 0, 0)));
    PQclear (r);
    return 0;
}
