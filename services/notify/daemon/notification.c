/*
 * notification: a NotificationRequested made into a send, on the first
 * channel of its route that can take it, at the first instant it may go.
 *
 * The route is fixed when the request is taken (handler.c, or campaign.c
 * for a campaign's target), by notify.route (007): the request's channel,
 * else the customer's preferred one (crm.customers), else the one they
 * wrote on last (crm.identities.last_seen); then the fallback chain
 * (--fallback-chain), each channel once. notification_route walks it:
 *
 *   1. A channel is passed over, with the reason kept in the
 *      notification's `skipped`, when the customer has no address on it
 *      (notify.recipient: an identity in crm, or for e-mail a contact
 *      point), its inbox has no sending account, the address is
 *      suppressed (notify.suppressions: hard bounces among them), or
 *      consent says no: marketing needs consent granted for that channel
 *      (or for 'any') unless --marketing-consent is opt-out; transactional
 *      goes unless withdrawn. The newest word counts, the customer's or
 *      the address's (a STOP keyword from a sender crm did not know yet).
 *      Nothing left: no_consent when consent passed a channel over, else
 *      suppressed when a suppression did, else no_channel.
 *   2. On the first channel left, the template is picked for the
 *      customer's locale through the chain (--locale-chain) and the
 *      channel's variant (template_pick), and rendered with the request's
 *      variables, then the customer's (customer.name, and name unless the
 *      request gave one). An unknown template, no locale of the chain, a
 *      missing variable or a text over the channel's limit fail the
 *      notification at once: the same request would fail on every replay.
 *      Over the limit: Telegram's 4096 characters and the like are refused,
 *      the limit named (a notification is one message: several would be
 *      several receipts, consents and quiet-hour waits for one fact); an
 *      SMS may run to --sms-segments-max segments (segments.h) and is
 *      refused past them.
 *   3. The send is due at not_before or now, and, for marketing (and a
 *      transactional template with quiet_hours set), outside the quiet
 *      hours of the customer's zone: the profile's, else the main zone of
 *      their phone's country (notify.phone_zones), else --default-zone.
 *      Waiting for the window's start does not outlive expires_at: the
 *      claim never takes an expired send and the sweep drops it, counted
 *      (recover.c).
 *
 * The first send is keyed by the notification id, so a replayed request
 * meets its row; a send on a later channel (a hand-over: outcome.c on a
 * provider's STOP_RECIPIENT or WINDOW, recover.c when no receipt came in
 * time for an important category, handler.c on a failure receipt for
 * one) gets a fresh id, and the send that handed over names it in
 * fallback_to with the reason. A cancelled campaign's notification is
 * handed over to nothing. Every event about a notification's sends
 * carries the notification id as its message_id.
 *
 * Everything here runs inside the caller's transaction: the consumer's
 * round for a request, an outcome's for a hand-over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "notifyd.h"
#include "rt_buf.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_tz.h"
#include "rt_utf8.h"
#include "rt_uuid.h"
#include "segments.h"
#include "template.h"

#define S_REASON_MAX  512 /* a refusal's or a hand-over's words */
#define S_SKIPPED_MAX 512 /* the channels passed over, in words */
#define S_VARS_MAX    256 /* variables of one request at most */

/* The notification, its customer and the customer's zone (notify 006's
 * notify.customer_zone, as the claim reads it), else ''. */
#define S_LOAD "notify_notification_load"
static const char *s_load_sql =
    "SELECT n.template, n.category, array_to_string(n.route, ','),"
    "  COALESCE((extract(epoch FROM n.not_before) * 1000)::bigint, 0),"
    "  COALESCE((extract(epoch FROM n.expires_at) * 1000)::bigint, 0),"
    "  COALESCE(n.customer_id::text, ''), COALESCE(c.locale, ''), COALESCE(c.name, ''),"
    "  COALESCE(notify.customer_zone(n.customer_id), ''), n.variables::text, n.status,"
    "  COALESCE(to_char(c.birthday, 'YYYY-MM-DD'), ''), COALESCE(c.id::text, '')"
    " FROM notify.notifications n LEFT JOIN crm.customers c ON c.id = crm.root(n.customer_id)"
    " WHERE n.id = $1::uuid";

/* Whether notification $1 is a campaign's that was cancelled, with the
 * campaign's row locked (FOR SHARE) to the end of the transaction: a
 * hand-over and the cancel that takes the campaign's queued sends (notify
 * 007's trigger) come one after the other, so the send a hand-over makes
 * is either cancelled with the others or never made. */
#define S_CANCELLED "notify_notification_cancelled"
static const char *s_cancelled_sql =
    "SELECT k.status = 'cancelled' FROM notify.notifications n"
    " JOIN notify.campaigns k ON k.id = n.event_id AND n.correlation = 'campaign:' || k.id"
    " WHERE n.id = $1::uuid FOR SHARE OF k";

#define S_TEMPLATES "notify_notification_templates"
static const char *s_templates_sql =
    "SELECT locale, variant, subject, text, html, quiet_hours FROM notify.templates"
    " WHERE name = $1 ORDER BY locale, variant";

/* The customer's address on a channel (notify.recipient, 007: an
 * identity in crm or an e-mail contact point; one that can be sent to
 * first). */
#define S_RECIPIENT "notify_notification_recipient"
static const char *s_recipient_sql = "SELECT inbox, recipient, sendable, suppressed_by,"
                                     " COALESCE((extract(epoch FROM seen) * 1000)::bigint, 0)"
                                     " FROM notify.recipient($1::uuid, $2)";

/* WhatsApp's approved template for retain's template $1 in locale $2
 * (notify 009): a row per parameter, in order (one with a NULL parameter
 * when it has none). */
#define S_WA_TEMPLATE "notify_notification_wa_template"
static const char *s_wa_template_sql =
    "SELECT t.wa_name, t.wa_language, p.param FROM notify.whatsapp_templates t"
    " LEFT JOIN LATERAL unnest(t.params) WITH ORDINALITY AS p(param, n) ON true"
    " WHERE t.template = $1 AND t.locale = $2 ORDER BY p.n";

/* WhatsApp's customer-service window: free text only this long after
 * the customer last wrote. */
#define S_WA_WINDOW_MS (24LL * 3600 * 1000)

/* The newest word on consent for the channel (or every channel), the
 * customer's or the address's ($4: what a STOP keyword said by it). */
#define S_CONSENT "notify_notification_consent"
static const char *s_consent_sql =
    "SELECT granted, source FROM ("
    "  SELECT granted, source, at, channel = 'any' AS wide FROM notify.consent"
    "   WHERE customer_id = COALESCE(crm.root($1::uuid), $1::uuid) AND channel IN ($2, 'any')"
    "     AND category = $3"
    "  UNION ALL SELECT granted, source, at, false FROM notify.address_consent"
    "   WHERE channel = $2 AND address = $4 AND category = $3) w"
    " ORDER BY at DESC, wide LIMIT 1";

/* The send: $1 id, $2 channel, $3 inbox, $4 recipient, $5 text, $6
 * subject, $7 html (NULL: none), $8 next_at (ms), $9 now (ms), $10 the
 * notification; $11-$13 WhatsApp's template, language and parameters
 * (NULL: free text); $14 whether it waits out quiet hours; $15 its part
 * of $16 (0: the text whole), whose id is notify.part_id past the first
 * (notify 008: a part waits for the one before it). */
#define S_SEND "notify_notification_send"
static const char *s_send_sql =
    "INSERT INTO notify.sends (id, event_id, customer_id, notification_id, channel, inbox,"
    "  recipient, text, subject, html, category, status, next_at, not_before, expires_at,"
    "  created_at, updated_at, wa_template, wa_language, wa_params, quiet_hours, part_of, part,"
    "  parts)"
    " SELECT CASE WHEN $15::integer > 1 THEN notify.part_id($1::uuid, $15::integer)"
    "        ELSE $1::uuid END, n.event_id, n.customer_id, n.id, $2, $3, $4, $5, $6, $7,"
    "  n.category,"
    "  'queued', to_timestamp($8::bigint / 1000.0), n.not_before, n.expires_at,"
    "  to_timestamp($9::bigint / 1000.0), to_timestamp($9::bigint / 1000.0), $11, $12,"
    "  $13::text[], $14::boolean, CASE WHEN $15::integer > 0 THEN $1::uuid END,"
    "  NULLIF($15::integer, 0), NULLIF($16::integer, 0)"
    " FROM notify.notifications n WHERE n.id = $10::uuid"
    " ON CONFLICT (id) DO NOTHING";

#define S_HANDOVER "notify_notification_handover"
static const char *s_handover_sql =
    "UPDATE notify.sends SET fallback_to = NULLIF($2, '')::uuid, fallback_reason = $3,"
    "  updated_at = to_timestamp($4::bigint / 1000.0) WHERE id = $1::uuid";

/* The notification's state; $5 is appended to what was passed over. */
#define S_DONE "notify_notification_done"
static const char *s_done_sql =
    "UPDATE notify.notifications SET status = $2, code = NULLIF($3, ''),"
    "  reason = NULLIF($4, ''),"
    "  skipped = CASE WHEN $5 = '' THEN skipped WHEN skipped = '' THEN $5"
    "                 ELSE skipped || '; ' || $5 END,"
    "  updated_at = to_timestamp($6::bigint / 1000.0) WHERE id = $1::uuid";

#define S_CONSENT_SET "notify_notification_consent_set"
static const char *s_consent_set_sql =
    "SELECT notify.consent_set(COALESCE(crm.root($1::uuid), $1::uuid), $2, $3, $4::boolean, $5,"
    "  to_timestamp($6::bigint / 1000.0), $7)";

int
notification_prepare (rt_db_t *db)
{
    if (rt_db_prepare (db, S_LOAD, s_load_sql) != 0 ||
        rt_db_prepare (db, S_CANCELLED, s_cancelled_sql) != 0 ||
        rt_db_prepare (db, S_TEMPLATES, s_templates_sql) != 0 ||
        rt_db_prepare (db, S_WA_TEMPLATE, s_wa_template_sql) != 0 ||
        rt_db_prepare (db, S_RECIPIENT, s_recipient_sql) != 0 ||
        rt_db_prepare (db, S_CONSENT, s_consent_sql) != 0 ||
        rt_db_prepare (db, S_SEND, s_send_sql) != 0 ||
        rt_db_prepare (db, S_HANDOVER, s_handover_sql) != 0 ||
        rt_db_prepare (db, S_DONE, s_done_sql) != 0 ||
        rt_db_prepare (db, S_CONSENT_SET, s_consent_set_sql) != 0)
        return -1;
    return 0;
}

/* What one routing works with. */
typedef struct {
    const notification_config_t *cfg;     /* the settings */
    rt_db_t *db;                          /* the caller's connection, in its transaction */
    const char *id;                       /* the notification */
    PGresult *n;                          /* its row (S_LOAD) */
    PGresult *templates;                  /* its template's variants (S_TEMPLATES) */
    template_var_t vars[S_VARS_MAX];      /* the request's variables, then the customer's */
    char birthday[TEMPLATE_CUSTOMER_BUF]; /* the customer's birthday variable's digits */
    size_t nvars;                         /* how many */
    json_t *doc;                          /* owns the request's variables' strings */
    char zone[64];                        /* the customer's zone, or the default */
    int64_t now;                          /* rt_clock's, once for the whole routing */
    char skipped[S_SKIPPED_MAX];          /* channels passed over, in words */
    bool consent_refused;                 /* a channel was passed over for consent */
    bool suppressed;                      /* one was passed over for a suppressed address */
    char *err;                            /* the caller's error buffer */
    size_t errlen;                        /* its size */
} s_route_t;

/* A rendered send. */
typedef struct {
    rt_buf_t text;                       /* the text (the e-mail's plain part) */
    rt_buf_t subject;                    /* e-mail: its subject */
    rt_buf_t html;                       /* e-mail: its HTML part */
    bool has_subject;                    /* the template had one */
    bool has_html;                       /* the template had one */
    bool quiet_hours;                    /* the template waits out quiet hours */
    char reason[S_REASON_MAX];           /* why it was not rendered */
    const char *code;                    /* NULL, or the refusal's code */
    size_t pieces;                       /* > 1: the text goes in that many messages */
    size_t off[NOTIFICATION_PIECES_MAX]; /* each piece's offset in text */
    size_t len[NOTIFICATION_PIECES_MAX]; /* and its length */
    char tlocale[64];                    /* the picked template's locale, as stored */
    char locale[64];                     /* the locale it was rendered in */
    rt_buf_t wa_params;                  /* WhatsApp's template parameters, a text[] literal */
    const char *wa_name;                 /* WhatsApp's approved template (lent), NULL: free text */
    const char *wa_language;             /* its language (lent) */
} s_rendered_t;

static const char *
s_col (const PGresult *r, int col)
{
    return PQgetisnull (r, 0, col) ? "" : PQgetvalue (r, 0, col);
}

static int
s_db_failed (s_route_t *rt, const char *what)
{
    rt_errf (rt->err, rt->errlen, "%s: %s", what, rt_db_error (rt->db));
    return -1;
}

/* S_CANCELLED for the notification: 1 a cancelled campaign's, 0 not, -1
 * when PostgreSQL failed. */
static int
s_campaign_cancelled (s_route_t *rt)
{
    const char *v[1] = {rt->id};
    PGresult *r = rt_db_exec_prepared (rt->db, S_CANCELLED, 1, v, NULL, NULL, 0);
    int yes;
    if (!r)
        return s_db_failed (rt, "campaign");
    yes = PQntuples (r) == 1 && strcmp (PQgetvalue (r, 0, 0), "t") == 0;
    PQclear (r);
    return yes;
}

static void
s_skip (s_route_t *rt, const char *channel, const char *why)
{
    size_t n = strlen (rt->skipped);
    snprintf (rt->skipped + n, sizeof rt->skipped - n, "%s%s: %s", n ? "; " : "", channel, why);
}

static void
s_count (const notification_config_t *cfg, const char *name, const char *label, const char *value,
         const char *help)
{
    char labels[128] = "";
    if (label)
        snprintf (labels, sizeof labels, "%s=\"%s\"", label, value);
    rt_counter_inc (rt_metrics_counter (cfg->metrics, name, labels, help));
}

/* The request's variables (a JSON object of strings), then the
 * customer's (template_customer_vars): the first of a name counts in a
 * rendering. */
static void
s_vars (s_route_t *rt)
{
    const char *key;
    json_t *value;
    template_customer_t c = {.id = s_col (rt->n, 12),
                             .name = s_col (rt->n, 7),
                             .birthday = s_col (rt->n, 11),
                             .zone = rt->zone};
    rt->doc = json_loads (s_col (rt->n, 9), 0, NULL);
    json_object_foreach (rt->doc, key, value)
    {
        if (rt->nvars + TEMPLATE_CUSTOMER_VARS >= S_VARS_MAX)
            break;
        if (!json_is_string (value))
            continue;
        rt->vars[rt->nvars++] = (template_var_t){key, json_string_value (value)};
    }
    template_customer_vars (&c, rt->vars, &rt->nvars, rt->birthday);
}

/* Renders one part (source text) of the picked variant into out. */
static int
s_render_part (s_route_t *rt, const char *src, const char *locale, bool html, rt_buf_t *out,
               s_rendered_t *rd)
{
    template_error_t perr;
    template_t *t = template_parse (src, strlen (src), &perr);
    template_ctx_t ctx = {
        .locale = locale, .zone = rt->zone, .vars = rt->vars, .nvars = rt->nvars, .html = html};
    char why[256];
    int rc;
    if (!t) {
        template_error_format (&perr, why, sizeof why);
        rd->code = "bad_template";
        snprintf (rd->reason, sizeof rd->reason, "the template %s does not parse: %s",
                  s_col (rt->n, 0), why);
        return -1;
    }
    rc = template_render (t, &ctx, out, why, sizeof why);
    template_destroy (&t);
    if (rc != 0) {
        rd->code =
            strncmp (why, "missing variable", 16) == 0 ? "missing_variable" : "render_failed";
        snprintf (rd->reason, sizeof rd->reason, "the template %s: %s", s_col (rt->n, 0), why);
        return -1;
    }
    return 0;
}

/* Picks and renders the template for a channel; -1 with rd's code and
 * reason when it cannot be. */
static int
s_render (s_route_t *rt, const rt_channel_t *ch, s_rendered_t *rd)
{
    PGresult *t = rt->templates;
    int n = PQntuples (t), pick;
    template_variant_t variants[64];
    char locale[64];
    if (n == 0) {
        rd->code = "unknown_template";
        snprintf (rd->reason, sizeof rd->reason, "no template is named %s", s_col (rt->n, 0));
        return -1;
    }
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++)
        variants[i] = (template_variant_t){PQgetvalue (t, i, 0), PQgetvalue (t, i, 1)};
    pick = template_pick (variants, (size_t)n, ch->name, s_col (rt->n, 6), rt->cfg->locale_chain);
    if (pick < 0) {
        rd->code = "unknown_template";
        snprintf (rd->reason, sizeof rd->reason,
                  "the template %s has no locale of the customer's (%s) or of the chain %s",
                  s_col (rt->n, 0), *s_col (rt->n, 6) ? s_col (rt->n, 6) : "unknown",
                  rt->cfg->locale_chain);
        return -1;
    }
    template_render_locale (PQgetvalue (t, pick, 0), s_col (rt->n, 6), locale, sizeof locale);
    snprintf (rd->tlocale, sizeof rd->tlocale, "%s", PQgetvalue (t, pick, 0));
    snprintf (rd->locale, sizeof rd->locale, "%s", locale);
    rd->quiet_hours = strcmp (PQgetvalue (t, pick, 5), "t") == 0;
    if (s_render_part (rt, PQgetvalue (t, pick, 3), locale, false, &rd->text, rd) != 0)
        return -1;
    if (ch->value == RETAIN__V1__CHANNEL__EMAIL && !PQgetisnull (t, pick, 2)) {
        rd->has_subject = true;
        if (s_render_part (rt, PQgetvalue (t, pick, 2), locale, false, &rd->subject, rd) != 0)
            return -1;
    }
    if (ch->value == RETAIN__V1__CHANNEL__EMAIL && !PQgetisnull (t, pick, 4)) {
        rd->has_html = true;
        if (s_render_part (rt, PQgetvalue (t, pick, 4), locale, true, &rd->html, rd) != 0)
            return -1;
    }
    return 0;
}

/* Refuses a text over the channel's limit: SMS by its segments, e-mail
 * and the others with no limit never; on a messenger (a limit in
 * characters, rt_channel's text_max), a longer text goes as up to
 * NOTIFICATION_PIECES_MAX messages cut at paragraphs, lines, sentences or
 * words (rt_utf8_split), each a part of one message (notify 008), and
 * only a longer one is refused. WhatsApp's approved template is one
 * message: its text is not cut. */
static int
s_check_length (const notification_config_t *cfg, const rt_channel_t *ch, s_rendered_t *rd)
{
    const char *text = rd->text.data ? rd->text.data : "";
    size_t len = rd->text.len;
    if (ch->value == RETAIN__V1__CHANNEL__SMS) {
        segments_t sg;
        if (segments_count (text, len, &sg) == 0 && (int)sg.segments <= cfg->sms_segments_max)
            return 0;
        rd->code = "text_too_long";
        snprintf (rd->reason, sizeof rd->reason,
                  "the text is %zu SMS segments (%s); at most %d are sent", sg.segments,
                  segments_encoding_name (sg.encoding), cfg->sms_segments_max);
        return -1;
    }
    if (ch->text_max > 0) {
        size_t chars = rt_utf8_count (text, len);
        if ((long)chars > ch->text_max && !rd->wa_name) {
            rd->pieces = rt_utf8_split (text, len, (size_t)ch->text_max, rd->off, rd->len,
                                        NOTIFICATION_PIECES_MAX);
            if (rd->pieces > 1)
                return 0;
        }
        if ((long)chars > ch->text_max) {
            rd->code = "text_too_long";
            snprintf (rd->reason, sizeof rd->reason,
                      "the text is %zu characters; %s takes at most %ld in a message, and %d "
                      "messages",
                      chars, ch->title, ch->text_max, NOTIFICATION_PIECES_MAX);
            return -1;
        }
    }
    return 0;
}

/* The first instant at or after t outside the quiet hours in zone. */
static int64_t
s_quiet_next (const notification_config_t *cfg, const char *zone, int64_t t)
{
    char err[128];
    rt_tz_t *tz = rt_tz_new (zone, err, sizeof err);
    rt_tz_local_t l;
    int start = cfg->quiet_start_min, end = cfg->quiet_end_min, m;
    bool quiet;
    int64_t at = t;
    if (!tz)
        tz = rt_tz_new (cfg->default_zone, err, sizeof err);
    if (!tz || start == end || rt_tz_local (tz, t, &l) != 0)
        goto cleanup;
    m = l.hour * 60 + l.minute;
    quiet = start < end ? (m >= start && m < end) : (m >= start || m < end);
    if (!quiet)
        goto cleanup;
    if (start > end && m >= start) {
        /* Before midnight: the window opens tomorrow. */
        int64_t tomorrow;
        if (rt_tz_next_day_start (tz, t, &tomorrow) != 0 || rt_tz_local (tz, tomorrow, &l) != 0)
            goto cleanup;
    }
    if (rt_tz_to_unix (tz, l.year, l.month, l.day, end / 60, end % 60, 0, &at) != 0 || at < t)
        at = t;
cleanup:
    rt_tz_destroy (&tz);
    return at;
}

/* Whether consent lets the notification go on a channel to recipient;
 * the reason into why when it does not. -1 when PostgreSQL failed. */
static int
s_consent_ok (s_route_t *rt, const char *channel, const char *recipient, char *why, size_t len)
{
    const char *category = s_col (rt->n, 1);
    bool marketing = strcmp (category, "marketing") == 0;
    PGresult *r;
    int ok;
    {
        const char *v[4] = {s_col (rt->n, 5), channel, category, recipient};
        r = rt_db_exec_prepared (rt->db, S_CONSENT, 4, v, NULL, NULL, 0);
        if (!r)
            return s_db_failed (rt, "consent");
    }
    if (PQntuples (r) > 0) {
        ok = strcmp (PQgetvalue (r, 0, 0), "t") == 0;
        if (!ok)
            snprintf (why, len, "%s consent withdrawn (%s)", category, PQgetvalue (r, 0, 1));
    } else {
        ok = !marketing || rt->cfg->marketing_opt_out;
        if (!ok)
            snprintf (why, len, "no marketing consent");
    }
    PQclear (r);
    return ok;
}

/* The notification failed before any send: its row, its MessageFailed. */
static int
s_fail (s_route_t *rt, const char *channel, const char *code, const char *reason)
{
    char nows[24], err[256];
    notify_event_t ev = {rt->id, s_col (rt->n, 5), channel, NULL};
    PGresult *r;
    snprintf (nows, sizeof nows, "%lld", (long long)rt->now);
    {
        const char *v[6] = {rt->id, "failed", code, reason, rt->skipped, nows};
        r = rt_db_exec_prepared (rt->db, S_DONE, 6, v, NULL, NULL, 0);
        if (!r)
            return s_db_failed (rt, "failed");
        PQclear (r);
    }
    if (notify_emit_failed (rt->db, &ev, code, reason, true, 0, err, sizeof err) != 0) {
        rt_errf (rt->err, rt->errlen, "%s", err);
        return -1;
    }
    rt_log (RT_LOG_INFO, "notification refused", rt_log_str ("notification_id", rt->id),
            rt_log_str ("code", code), rt_log_str ("reason", reason),
            rt_log_str ("skipped", rt->skipped));
    s_count (rt->cfg, "retain_notify_refused_total", "code", code,
             "requested messages failed before any attempt, by code");
    if (strcmp (code, "expired") == 0)
        s_count (rt->cfg, "retain_notify_expired_total", NULL, NULL,
                 "sends dropped because they expired unsent");
    return 0;
}

/* Queues the send on ch to recipient through inbox; hands over from
 * from_send. */
static int
s_queue (s_route_t *rt, const rt_channel_t *ch, const char *inbox, const char *recipient,
         const s_rendered_t *rd, const char *from_send, const char *why)
{
    char id[RT_UUID_STR_LEN + 1], next[24], nows[24];
    int64_t not_before = atoll (s_col (rt->n, 3)), at = rt->now;
    bool marketing = strcmp (s_col (rt->n, 1), "marketing") == 0;
    PGresult *r;
    if (from_send) {
        rt_uuid_t u = rt_uuid_v7 ();
        rt_uuid_format (&u, id);
    } else {
        snprintf (id, sizeof id, "%s", rt->id);
    }
    if (not_before > at)
        at = not_before;
    if (marketing || rd->quiet_hours)
        at = s_quiet_next (rt->cfg, rt->zone, at);
    snprintf (next, sizeof next, "%lld", (long long)at);
    snprintf (nows, sizeof nows, "%lld", (long long)rt->now);
    for (size_t k = 0; k < (rd->pieces > 1 ? rd->pieces : 1); k++) {
        char part[8], parts[8], *piece = NULL;
        const char *text = rd->text.data ? rd->text.data : "";
        if (rd->pieces > 1) {
            piece = strndup (text + rd->off[k], rd->len[k]);
            if (!piece) {
                rt_errf (rt->err, rt->errlen, "out of memory");
                return -1;
            }
            text = piece;
        }
        snprintf (part, sizeof part, "%zu", rd->pieces > 1 ? k + 1 : 0);
        snprintf (parts, sizeof parts, "%zu", rd->pieces > 1 ? rd->pieces : 0);
        const char *v[16] = {id,
                             ch->name,
                             inbox,
                             recipient,
                             text,
                             rd->has_subject ? (rd->subject.data ? rd->subject.data : "") : NULL,
                             rd->has_html ? (rd->html.data ? rd->html.data : "") : NULL,
                             next,
                             nows,
                             rt->id,
                             rd->wa_name,
                             rd->wa_name ? rd->wa_language : NULL,
                             rd->wa_name ? rd->wa_params.data : NULL,
                             marketing || rd->quiet_hours ? "true" : "false",
                             part,
                             parts};
        r = rt_db_exec_prepared (rt->db, S_SEND, 16, v, NULL, NULL, 0);
        free (piece);
        if (!r)
            return s_db_failed (rt, "send");
        PQclear (r);
    }
    if (from_send) {
        const char *v[4] = {from_send, id, why ? why : "", nows};
        r = rt_db_exec_prepared (rt->db, S_HANDOVER, 4, v, NULL, NULL, 0);
        if (!r)
            return s_db_failed (rt, "handover");
        PQclear (r);
        s_count (rt->cfg, "retain_notify_fallbacks_total", "channel", ch->name,
                 "notifications handed over to a further channel, by the channel taking over");
    }
    {
        const char *v[6] = {rt->id, "routed", "", "", rt->skipped, nows};
        r = rt_db_exec_prepared (rt->db, S_DONE, 6, v, NULL, NULL, 0);
        if (!r)
            return s_db_failed (rt, "routed");
        PQclear (r);
    }
    rt_log (RT_LOG_INFO, "notification queued", rt_log_str ("notification_id", rt->id),
            rt_log_str ("send", id), rt_log_str ("channel", ch->name),
            rt_log_int ("wait_ms", at - rt->now), rt_log_str ("skipped", rt->skipped));
    return 1;
}

static void
s_rendered_reset (s_rendered_t *rd)
{
    rt_buf_free (&rd->text);
    rt_buf_free (&rd->subject);
    rt_buf_free (&rd->html);
    rt_buf_free (&rd->wa_params);
    memset (rd, 0, sizeof *rd);
}

/* Outside WhatsApp's window: the approved template mapped to the picked
 * template's locale, its parameters rendered into rd (rd->wa_* set, the
 * strings lent from *wa, which the caller clears). 1 found, 0 none, -1
 * with rd's code and reason when a parameter does not render, or with no
 * code when PostgreSQL failed. */
static int
s_wa_template (s_route_t *rt, s_rendered_t *rd, PGresult **wa)
{
    const char *v[2] = {s_col (rt->n, 0), rd->tlocale};
    *wa = rt_db_exec_prepared (rt->db, S_WA_TEMPLATE, 2, v, NULL, NULL, 0);
    if (!*wa)
        return s_db_failed (rt, "whatsapp template");
    if (PQntuples (*wa) == 0)
        return 0;
    rt_buf_array_begin (&rd->wa_params);
    for (int i = 0; i < PQntuples (*wa) && !PQgetisnull (*wa, i, 2); i++) {
        rt_buf_t one = {0};
        int rc = s_render_part (rt, PQgetvalue (*wa, i, 2), rd->locale, false, &one, rd);
        rt_buf_array_text (&rd->wa_params, one.data ? one.data : "");
        rt_buf_free (&one);
        if (rc != 0)
            return -1;
    }
    rt_buf_array_end (&rd->wa_params);
    if (rd->wa_params.failed) {
        rt_errf (rt->err, rt->errlen, "whatsapp template parameters: out of memory");
        return -1;
    }
    rd->wa_name = PQgetvalue (*wa, 0, 0);
    rd->wa_language = PQgetvalue (*wa, 0, 1);
    return 1;
}

/* Tries one channel: 1 queued, 0 passed over (or, with fatal set, the
 * notification failed), -1 PostgreSQL. */
static int
s_try (s_route_t *rt, const rt_channel_t *ch, const char *from_send, const char *why, bool *fatal)
{
    s_rendered_t rd;
    char reason[S_REASON_MAX];
    PGresult *r = NULL, *wa = NULL;
    int rc = -1, ok;
    const char *inbox, *recipient;
    memset (&rd, 0, sizeof rd);
    {
        const char *v[2] = {s_col (rt->n, 5), ch->name};
        r = rt_db_exec_prepared (rt->db, S_RECIPIENT, 2, v, NULL, NULL, 0);
        if (!r)
            return s_db_failed (rt, "recipient");
    }
    if (PQntuples (r) == 0) {
        s_skip (rt, ch->name, "no identity");
        rc = 0;
        goto cleanup;
    }
    inbox = PQgetvalue (r, 0, 0);
    recipient = PQgetvalue (r, 0, 1);
    if (strcmp (PQgetvalue (r, 0, 2), "t") != 0) {
        s_skip (rt, ch->name, "no sending account");
        rc = 0;
        goto cleanup;
    }
    if (!PQgetisnull (r, 0, 3)) {
        snprintf (reason, sizeof reason, "the address is suppressed (%s)", PQgetvalue (r, 0, 3));
        s_skip (rt, ch->name, reason);
        rt->suppressed = true;
        rc = 0;
        goto cleanup;
    }
    ok = s_consent_ok (rt, ch->name, recipient, reason, sizeof reason);
    if (ok < 0)
        goto cleanup;
    if (ok == 0) {
        s_skip (rt, ch->name, reason);
        rt->consent_refused = true;
        rc = 0;
        goto cleanup;
    }
    if (s_render (rt, ch, &rd) != 0)
        goto refused;
    if (ch->value == RETAIN__V1__CHANNEL__WHATSAPP &&
        rt->now - atoll (PQgetvalue (r, 0, 4)) >= S_WA_WINDOW_MS) {
        int w = s_wa_template (rt, &rd, &wa);
        /* A parameter that does not render is the template's fault, as
         * any rendering; no code: PostgreSQL failed. */
        if (w < 0 && !rd.code)
            goto cleanup;
        if (w < 0)
            goto refused;
        if (w == 0) {
            s_skip (rt, ch->name,
                    "outside WhatsApp's 24-hour window, and the template has no approved "
                    "WhatsApp template");
            rc = 0;
            goto cleanup;
        }
    }
    if (s_check_length (rt->cfg, ch, &rd) != 0)
        goto refused;
    rc = s_queue (rt, ch, inbox, recipient, &rd, from_send, why);
    goto cleanup;
refused:
    if (from_send) {
        /* A further channel's variant failing leaves the rest of the
         * route to try. */
        s_skip (rt, ch->name, rd.reason);
        rc = 0;
        goto cleanup;
    }
    *fatal = true;
    rc = s_fail (rt, ch->name, rd.code, rd.reason);
cleanup:
    PQclear (r);
    PQclear (wa);
    s_rendered_reset (&rd);
    return rc;
}

int
notification_route (rt_db_t *db, const notification_config_t *cfg, const char *id,
                    const char *after, const char *from_send, const char *why, char *err,
                    size_t errlen)
{
    s_route_t *rt = calloc (1, sizeof *rt);
    char route[NOTIFICATION_CHANNELS_MAX * 16], *save = NULL, *name, cancelled[S_REASON_MAX];
    const char *first = "";
    bool started = after == NULL, fatal = false;
    int rc = -1, campaign_cancelled = 0;
    if (!rt) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    rt->cfg = cfg;
    rt->db = db;
    rt->id = id;
    rt->err = err;
    rt->errlen = errlen;
    rt->now = rt_clock_now_ms ();
    {
        const char *v[1] = {id};
        rt->n = rt_db_exec_prepared (db, S_LOAD, 1, v, NULL, NULL, 0);
        if (!rt->n) {
            s_db_failed (rt, "load");
            goto cleanup;
        }
    }
    if (PQntuples (rt->n) == 0) {
        rt_errf (err, errlen, "no notification %s", id);
        goto cleanup;
    }
    if (from_send && (campaign_cancelled = s_campaign_cancelled (rt)) < 0)
        goto cleanup;
    {
        const char *v[1] = {s_col (rt->n, 0)};
        rt->templates = rt_db_exec_prepared (db, S_TEMPLATES, 1, v, NULL, NULL, 0);
        if (!rt->templates) {
            s_db_failed (rt, "templates");
            goto cleanup;
        }
    }
    snprintf (rt->zone, sizeof rt->zone, "%s",
              *s_col (rt->n, 8) ? s_col (rt->n, 8) : cfg->default_zone);
    s_vars (rt);
    snprintf (route, sizeof route, "%s", s_col (rt->n, 2));
    {
        int64_t expires = atoll (s_col (rt->n, 4));
        if (!from_send && expires > 0 && expires <= rt->now) {
            rc = s_fail (rt, "", "expired", "expired before it could be sent");
            goto cleanup;
        }
    }
    /* A cancelled campaign's notification takes no further channel. */
    if (campaign_cancelled) {
        snprintf (cancelled, sizeof cancelled, "%s; the campaign was cancelled", why ? why : "");
        why = cancelled;
        *route = '\0';
    }
    for (name = strtok_r (route, ",", &save); name; name = strtok_r (NULL, ",", &save)) {
        const rt_channel_t *ch = rt_channel_by_name (name);
        if (!*first)
            first = name;
        if (!started) {
            started = strcmp (name, after) == 0;
            continue;
        }
        if (!ch)
            continue;
        rc = s_try (rt, ch, from_send, why, &fatal);
        if (rc != 0 || fatal)
            goto cleanup;
    }
    /* No channel left. */
    if (from_send) {
        char nows[24], words[S_REASON_MAX + 32];
        PGresult *r;
        snprintf (nows, sizeof nows, "%lld", (long long)rt->now);
        snprintf (words, sizeof words, "%s; no further channel", why ? why : "");
        {
            const char *v[4] = {from_send, "", words, nows};
            r = rt_db_exec_prepared (db, S_HANDOVER, 4, v, NULL, NULL, 0);
            if (!r) {
                s_db_failed (rt, "handover");
                goto cleanup;
            }
            PQclear (r);
        }
        {
            const char *v[6] = {id, "routed", "", "", rt->skipped, nows};
            r = rt_db_exec_prepared (db, S_DONE, 6, v, NULL, NULL, 0);
            if (!r) {
                s_db_failed (rt, "skipped");
                goto cleanup;
            }
            PQclear (r);
        }
        rc = 0;
        goto cleanup;
    }
    {
        char reason[S_SKIPPED_MAX + 64];
        snprintf (reason, sizeof reason, "no channel can take it (%s)",
                  *rt->skipped ? rt->skipped : "no channel known");
        rc = s_fail (rt, first,
                     rt->consent_refused ? "no_consent"
                     : rt->suppressed    ? "suppressed"
                                         : "no_channel",
                     reason);
    }
cleanup:
    PQclear (rt->n);
    PQclear (rt->templates);
    json_decref (rt->doc);
    free (rt);
    return rc;
}

int
notification_consent (rt_db_t *db, const char *customer_id, const char *channel,
                      const char *category, bool granted, const char *source, const char *reason,
                      int64_t at_ms)
{
    static const char *const both[] = {"transactional", "marketing"};
    char at[24];
    snprintf (at, sizeof at, "%lld", (long long)at_ms);
    for (int i = 0; i < 2; i++) {
        const char *cat = category ? category : both[i];
        const char *v[7] = {customer_id,
                            channel && *channel ? channel : "any",
                            cat,
                            granted ? "true" : "false",
                            source,
                            at,
                            reason ? reason : ""};
        PGresult *r = rt_db_exec_prepared (db, S_CONSENT_SET, 7, v, NULL, NULL, 0);
        if (!r)
            return -1;
        PQclear (r);
        if (category)
            break;
    }
    return 0;
}
