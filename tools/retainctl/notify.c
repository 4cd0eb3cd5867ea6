/*
 * retainctl notify: notifyd's sending accounts (notify.accounts); its dead
 * letters are notify_failed.c's.
 *
 *   notify account set --inbox I [--id A] [--provider P] [--channel C]
 *                      [--token-file F|-] [--account-id X] [--sender S]
 *                      [--status-url U] [--base-url U] [--priority N]
 *                      [--rate R] [--burst B] [--recipient-rate R]
 *                      [--recipient-burst B]
 *   notify account list [--inbox I] [--json]
 *   notify account disable|enable|resume --id A
 *
 * An account is how replies to the customers who wrote to an inbox go out:
 * it sits beside the inbox's receiving secret (ingest.inboxes, which must
 * hold the inbox) and is checked before it is stored by the adapter that
 * will send with it (services/notify/provider.h): a provider that cannot
 * send on the channel, or an account its adapter would refuse (a Viber
 * bot without a sender name, a Twilio account without its AccountSid),
 * exits 2 and stores nothing. E-mail goes out over SMTP (provider smtp,
 * notifyd's daemon/smtp.c, no adapter): its account is checked by building
 * a message From its --sender ("Shop <shop@example.com>"), its login whole
 * (--account-id and a password, or neither) and its server smtp:// or
 * smtps://. set adds the account or changes the flags given on an
 * existing one (the others keep their values).
 *
 * The token is a secret: it is read from a file or from stdin (not echoed
 * on a terminal), never taken on the command line, where `ps` and shell
 * histories show it, and never printed, logged or put in an error message;
 * list says only whether one is set. PostgreSQL's error details repeat the
 * failing row, so they are never shown either.
 *
 * disable and enable stamp and clear disabled_at (an operator's switch);
 * resume clears the stop notifyd put on an account its provider refused
 * (a revoked token), once the operator fixed it: its waiting sends go out.
 * Times come from rt_clock, as notifyd's.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "provider.h"
#include "retainctl.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_log.h"
#include "rt_uuid.h"

#define S_TOKEN_MAX    4096 /* a token's bytes at most */
#define S_FIELD_MAX    512  /* --account-id, --sender, the URLs */
#define S_PRIORITY_MAX 1000
#define S_RATE_MAX     100000.0 /* requests a second, a bound a typo cannot pass */

/* PostgreSQL's DETAIL repeats the failing row, token included: never
 * shown. A missing schema gets the hint to migrate. */
#define S_DB_ERRORS (RETAINCTL_DB_NO_DETAIL | RETAINCTL_DB_MIGRATE_HINT)

static const rt_config_setting_t s_set_settings[] = {
    RETAINCTL_PG_DSN,
    {"inbox", NULL, "", "the inbox (ingest.inboxes) whose customers it answers (required)"},
    {"id", NULL, "",
     "the account's id; default: the inbox's, with .<channel> when it sends on another channel "
     "and .<priority> when --priority is not 0"},
    {"provider", NULL, "",
     "who sends: telegram, viber, meta (Messenger, Instagram, WhatsApp Cloud), twilio (SMS, "
     "WhatsApp) or smtp (e-mail); default: the inbox's provider"},
    {"channel", NULL, "", "the channel it sends on; default: the inbox's"},
    {"token-file", NULL, "",
     "a file holding the token (bot token, page access token, auth token, SMTP password), or - "
     "for stdin; required for a new account (SMTP: with a login), never taken on the command "
     "line"},
    {"account-id", NULL, "",
     "Meta's page id, WhatsApp's phone-number id, Twilio's AccountSid, the SMTP login"},
    {"sender", NULL, "",
     "Twilio's From number or MessagingServiceSid, Viber's sender name, e-mail's From "
     "(\"Shop <shop@example.com>\")"},
    {"status-url", NULL, "", "Twilio's StatusCallback: the inbox's webhook URL"},
    {"base-url", NULL, "",
     "the provider's API base, or the SMTP server (smtp://host:587, smtps://host:465); default: "
     "notifyd's RETAIN_NOTIFY_*_API, RETAIN_NOTIFY_SMTP_URL"},
    {"priority", NULL, "", "the lowest usable one of an inbox's accounts sends (0-1000; new: 0)"},
    {"rate", NULL, "", "requests a second through the account (new: 25; Telegram allows ~30)"},
    {"burst", NULL, "", "requests at once beyond the rate (new: 5)"},
    {"recipient-rate", NULL, "", "requests a second to one recipient (new: 1)"},
    {"recipient-burst", NULL, "", "requests at once to one recipient (new: 1)"},
    {"daily-quota", NULL, "",
     "requests a day through the account at most, where its provider caps them; none removes "
     "it (new: none)"},
    {"quota-zone", NULL, "", "the time zone whose day the quota counts (new: UTC)"},
    RETAINCTL_END};
static const rt_config_setting_t s_list_settings[] = {
    RETAINCTL_PG_DSN,
    {"inbox", NULL, "", "only this inbox's accounts"},
    RETAINCTL_JSON,
    RETAINCTL_END};
static const rt_config_setting_t s_id_settings[] = {
    RETAINCTL_PG_DSN, {"id", NULL, "", "the account's id (required)"}, RETAINCTL_END};

/* A new account: the table's defaults for everything not named here; $5
 * the priority ('' for 0). Nothing when the id is taken. */
static const char *s_sql_insert =
    "INSERT INTO notify.accounts (id, inbox_id, channel, provider, priority)"
    " VALUES ($1, $2, $3, $4, COALESCE(NULLIF($5, '')::integer, 0))"
    " ON CONFLICT (id) DO NOTHING RETURNING id";

static const char *s_sql_owner = "SELECT inbox_id FROM notify.accounts WHERE id = $1 FOR UPDATE";

/* The flags given ('' keeps the stored value); returns what the adapter
 * checks and what set prints. */
static const char *s_sql_update =
    "UPDATE notify.accounts SET channel = $2, provider = $3,"
    " token = COALESCE(NULLIF($4, ''), token), base_url = COALESCE(NULLIF($5, ''), base_url),"
    " account_id = COALESCE(NULLIF($6, ''), account_id), sender = COALESCE(NULLIF($7, ''), sender),"
    " status_url = COALESCE(NULLIF($8, ''), status_url),"
    " priority = COALESCE(NULLIF($9, '')::integer, priority),"
    " rate_per_s = COALESCE(NULLIF($10, '')::float8, rate_per_s),"
    " burst = COALESCE(NULLIF($11, '')::float8, burst),"
    " recipient_per_s = COALESCE(NULLIF($12, '')::float8, recipient_per_s),"
    " recipient_burst = COALESCE(NULLIF($13, '')::float8, recipient_burst),"
    " daily_quota = CASE $15 WHEN '' THEN daily_quota WHEN 'none' THEN NULL"
    "               ELSE $15::integer END,"
    " quota_zone = COALESCE(NULLIF($16, ''), quota_zone),"
    " updated_at = to_timestamp($14::bigint / 1000.0)"
    " WHERE id = $1 RETURNING base_url, token, account_id, sender, status_url, priority,"
    " rate_per_s, burst, recipient_per_s, recipient_burst, COALESCE(stopped_reason, ''),"
    " disabled_at IS NOT NULL, COALESCE(daily_quota::text, ''), quota_zone";

/* After a change of the quota: the rest until the next day holds when the
 * day's count already reaches the quota, and is lifted otherwise (as the
 * claim would set it: notify 006). $2 now (ms). */
static const char *s_sql_quota_rest =
    "UPDATE notify.accounts a SET quota_until ="
    " CASE WHEN a.daily_quota IS NOT NULL AND COALESCE((SELECT d.sent FROM notify.account_days d"
    "   WHERE d.account = a.id AND d.day = (to_timestamp($2::bigint / 1000.0)"
    "   AT TIME ZONE a.quota_zone)::date), 0) >= a.daily_quota"
    " THEN (date_trunc('day', to_timestamp($2::bigint / 1000.0) AT TIME ZONE a.quota_zone)"
    "   + interval '1 day') AT TIME ZONE a.quota_zone END"
    " WHERE a.id = $1";

static const char *s_sql_zone_known = "SELECT 1 FROM pg_timezone_names WHERE name = $1";

static const char *s_sql_inbox = "SELECT channel, provider FROM ingest.inboxes WHERE id = $1";

static const char *s_sql_list =
    "SELECT id, inbox_id, channel, provider, priority, token <> '', account_id, sender,"
    " base_url, status_url, rate_per_s, burst, recipient_per_s, recipient_burst,"
    " disabled_at IS NOT NULL, COALESCE(stopped_reason, ''),"
    " COALESCE(to_char(stopped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
    " CASE WHEN paused_until > to_timestamp($2::bigint / 1000.0)"
    "      THEN to_char(paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    "      ELSE '' END,"
    " COALESCE(daily_quota::text, ''), quota_zone,"
    " COALESCE((SELECT d.sent FROM notify.account_days d WHERE d.account = a.id"
    "   AND d.day = (to_timestamp($2::bigint / 1000.0) AT TIME ZONE a.quota_zone)::date), 0),"
    " CASE WHEN quota_until > to_timestamp($2::bigint / 1000.0)"
    "      THEN to_char(quota_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    "      ELSE '' END"
    " FROM notify.accounts a WHERE ($1 = '' OR inbox_id = $1)"
    " ORDER BY inbox_id, channel, priority, id";

/* --- checks --- */

/* What a flag's value may be. */
typedef enum {
    S_WORD, /* printable, no spaces */
    S_TEXT, /* printable, spaces inside (an e-mail sender's display name) */
    S_HTTP, /* an http:// or https:// URL */
    S_SMTP  /* an smtp:// or smtps:// URL */
} s_field_t;

/* A value of at most S_FIELD_MAX bytes, as kind says. */
static bool
s_valid_field (const char *program, const char *flag, const char *value, s_field_t kind)
{
    size_t n = strlen (value);
    if (!n)
        return true;
    if (n > S_FIELD_MAX) {
        fprintf (stderr, "%s: --%s is longer than %d bytes\n", program, flag, S_FIELD_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < ' ' || c == 0x7f || (c == ' ' && kind != S_TEXT)) {
            fprintf (stderr, "%s: --%s holds a %s\n", program, flag,
                     kind == S_TEXT ? "control character" : "space or a control character");
            return false;
        }
    }
    if (kind == S_HTTP && strncmp (value, "http://", 7) != 0 &&
        strncmp (value, "https://", 8) != 0) {
        fprintf (stderr, "%s: --%s \"%s\" must be an http:// or https:// URL\n", program, flag,
                 value);
        return false;
    }
    if (kind == S_SMTP && strncmp (value, "smtp://", 7) != 0 &&
        strncmp (value, "smtps://", 8) != 0) {
        fprintf (stderr,
                 "%s: --%s \"%s\" must be an SMTP server: smtp://host:587 (STARTTLS) or "
                 "smtps://host:465\n",
                 program, flag, value);
        return false;
    }
    return true;
}

/* A rate or burst flag, when given: a number in (0, S_RATE_MAX], and at
 * least 1 for a burst. Its canonical text into out ("" when not given). */
static bool
s_valid_rate (const retainctl_cmd_t *cmd, const char *flag, bool burst, char *out, size_t outlen)
{
    const char *v = rt_config_get (cmd->config, flag);
    char *end = NULL;
    double d;
    out[0] = '\0';
    if (!*v)
        return true;
    errno = 0;
    d = strtod (v, &end);
    if (errno || end == v || *end || !isfinite (d) || d <= 0 || d > S_RATE_MAX ||
        (burst && d < 1)) {
        fprintf (stderr, "%s: --%s \"%s\" must be a number %s %g\n", cmd->program, flag, v,
                 burst ? "from 1 to" : "above 0, at most", S_RATE_MAX);
        return false;
    }
    snprintf (out, outlen, "%.17g", d);
    return true;
}

/* The adapter that would send on channel for provider, NULL when none:
 * the provider must deliver the channel as an inbox kind (the name
 * notify.accounts stores) and have a sending adapter for it. */
static const provider_t *
s_adapter (const char *provider, const rt_channel_t *channel)
{
    if (!rt_channel_kind_find (channel->value, provider))
        return NULL;
    return provider_find_for (provider, channel->value);
}

/* The providers that can send on channel, as "a or b" ("" for none). */
static void
s_senders (const rt_channel_t *channel, char *out, size_t outlen)
{
    const char *names[16];
    size_t n = 0, used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < rt_channel_kind_count () && n < 16; i++) {
        const rt_channel_kind_t *k = rt_channel_kind_at (i);
        bool seen = false;
        if (k->channel != channel->value || !s_adapter (k->provider, channel))
            continue;
        for (size_t j = 0; j < n; j++)
            seen = seen || strcmp (names[j], k->provider) == 0;
        if (!seen)
            names[n++] = k->provider;
    }
    if (channel->value == RETAIN__V1__CHANNEL__EMAIL && n < 16)
        names[n++] = PROVIDER_SMTP;
    if (n == 0)
        return;
    for (size_t j = 0; j < n && used < outlen; j++) {
        int w = snprintf (out + used, outlen - used, "%s%s",
                          j == 0 ? "" : (j + 1 == n ? " or " : ", "), names[j]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* --- the token --- */

/* Reads the token from path ("-": stdin; not echoed when it is a
 * terminal) into out, without the whitespace around it; spaces inside it
 * only when spaces (an SMTP password may hold them, a provider's token
 * never). false with the reason on stderr; no message ever holds a byte
 * of it. */
static bool
s_read_token (const retainctl_cmd_t *cmd, const char *path, bool spaces, char *out, size_t outlen)
{
    bool is_stdin = strcmp (path, "-") == 0;
    bool tty = is_stdin && isatty (STDIN_FILENO);
    struct termios saved, quiet;
    bool restore = false, ok = false;
    size_t n, start = 0, end;
    FILE *f;

    out[0] = '\0';
    f = is_stdin ? stdin : fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "%s: --token-file %s: %s\n", cmd->program, path, strerror (errno));
        return false;
    }
    if (tty && tcgetattr (STDIN_FILENO, &saved) == 0) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr (STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        fprintf (stderr, "token (not shown): ");
    }
    if (tty) {
        /* A terminal ends the token with its line. */
        n = fgets (out, (int)outlen, f) ? strlen (out) : 0;
    } else {
        n = fread (out, 1, outlen - 1, f);
        if (n == outlen - 1 && fgetc (f) != EOF) {
            fprintf (stderr, "%s: --token-file %s: longer than %zu bytes\n", cmd->program, path,
                     outlen - 2);
            goto cleanup;
        }
    }
    if (ferror (f)) {
        fprintf (stderr, "%s: --token-file %s: read error\n", cmd->program, path);
        goto cleanup;
    }
    out[n] = '\0';
    end = n;
    while (end > 0 && (out[end - 1] == '\n' || out[end - 1] == '\r' || out[end - 1] == ' ' ||
                       out[end - 1] == '\t'))
        end--;
    while (start < end && (out[start] == ' ' || out[start] == '\t'))
        start++;
    if (start == end) {
        fprintf (stderr, "%s: --token-file %s holds no token\n", cmd->program, path);
        goto cleanup;
    }
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < ' ' || c >= 0x7f || (c == ' ' && !spaces)) {
            fprintf (stderr,
                     "%s: --token-file %s: the token holds a %scontrol character or a "
                     "byte outside ASCII (at byte %zu); a provider's token has none\n",
                     cmd->program, path, spaces ? "" : "space, a ", i - start + 1);
            goto cleanup;
        }
    }
    memmove (out, out + start, end - start);
    out[end - start] = '\0';
    ok = true;
cleanup:
    if (restore) {
        tcsetattr (STDIN_FILENO, TCSAFLUSH, &saved);
        fprintf (stderr, "\n");
    }
    if (!ok)
        explicit_bzero (out, outlen);
    if (!is_stdin)
        fclose (f);
    return ok;
}

/* A token on the command line is refused before anything else reads the
 * arguments: ps shows it to every user of the host. */
static bool
s_token_on_command_line (const char *program, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--token") == 0 || strncmp (argv[i], "--token=", 8) == 0 ||
            strcmp (argv[i], "--secret") == 0 || strncmp (argv[i], "--secret=", 9) == 0) {
            fprintf (stderr,
                     "%s: a token is never taken on the command line (ps shows it to every "
                     "user): give --token-file F, or --token-file - and the token on stdin\n",
                     program);
            return true;
        }
    }
    return false;
}

/* --- account set --- */

/* set's flags, checked. */
typedef struct {
    const char *inbox;          /* --inbox */
    const char *id;             /* --id, "" when not given */
    const char *provider;       /* --provider, "" when not given */
    const char *channel;        /* --channel, "" when not given */
    const char *account_id;     /* --account-id */
    const char *sender;         /* --sender */
    const char *status_url;     /* --status-url */
    const char *base_url;       /* --base-url */
    char priority[16];          /* --priority as text, "" when not given */
    int64_t priority_n;         /* its value, 0 when not given */
    char rate[32], burst[32];   /* --rate, --burst, "" when not given */
    char rrate[32], rburst[32]; /* --recipient-rate, --recipient-burst */
    char quota[16];             /* --daily-quota: a count, "none", or "" when not given */
    const char *quota_zone;     /* --quota-zone, "" when not given */
} s_set_flags_t;

static bool
s_set_check (const retainctl_cmd_t *cmd, s_set_flags_t *f)
{
    bool smtp;
    memset (f, 0, sizeof *f);
    f->inbox = rt_config_get (cmd->config, "inbox");
    f->id = rt_config_get (cmd->config, "id");
    f->provider = rt_config_get (cmd->config, "provider");
    f->channel = rt_config_get (cmd->config, "channel");
    f->account_id = rt_config_get (cmd->config, "account-id");
    f->sender = rt_config_get (cmd->config, "sender");
    f->status_url = rt_config_get (cmd->config, "status-url");
    f->base_url = rt_config_get (cmd->config, "base-url");
    if (!retainctl_cmd_id (cmd, "inbox", f->inbox))
        return false;
    if (*f->id && !retainctl_cmd_id (cmd, "id", f->id))
        return false;
    if (*f->channel && !rt_channel_by_name (f->channel)) {
        char list[256];
        rt_channel_list (list, sizeof list);
        fprintf (stderr, "%s: --channel \"%s\" must be one of %s\n", cmd->program, f->channel,
                 list);
        return false;
    }
    smtp = strcmp (f->provider, PROVIDER_SMTP) == 0;
    if (*f->provider && !smtp && !rt_channel_provider_known (f->provider)) {
        char list[256];
        rt_channel_providers (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, list, sizeof list);
        fprintf (stderr, "%s: --provider \"%s\" must be one of %s or %s\n", cmd->program,
                 f->provider, list, PROVIDER_SMTP);
        return false;
    }
    if (!s_valid_field (cmd->program, "account-id", f->account_id, S_WORD) ||
        /* A Viber sender's name and an e-mail's display name hold spaces. */
        !s_valid_field (cmd->program, "sender", f->sender, S_TEXT) ||
        !s_valid_field (cmd->program, "status-url", f->status_url, S_HTTP) ||
        !s_valid_field (cmd->program, "base-url", f->base_url, smtp ? S_SMTP : S_HTTP))
        return false;
    if (rt_config_get (cmd->config, "priority")[0]) {
        if (!retainctl_cmd_int (cmd, "priority", 0, S_PRIORITY_MAX, &f->priority_n))
            return false;
        snprintf (f->priority, sizeof f->priority, "%lld", (long long)f->priority_n);
    }
    f->quota_zone = rt_config_get (cmd->config, "quota-zone");
    if (!s_valid_field (cmd->program, "quota-zone", f->quota_zone, S_WORD))
        return false;
    {
        const char *q = rt_config_get (cmd->config, "daily-quota");
        int64_t n;
        if (strcmp (q, "none") == 0) {
            snprintf (f->quota, sizeof f->quota, "none");
        } else if (*q) {
            if (!retainctl_cmd_int (cmd, "daily-quota", 1, 100000000, &n))
                return false;
            snprintf (f->quota, sizeof f->quota, "%lld", (long long)n);
        }
    }
    return s_valid_rate (cmd, "rate", false, f->rate, sizeof f->rate) &&
           s_valid_rate (cmd, "burst", true, f->burst, sizeof f->burst) &&
           s_valid_rate (cmd, "recipient-rate", false, f->rrate, sizeof f->rrate) &&
           s_valid_rate (cmd, "recipient-burst", true, f->rburst, sizeof f->rburst);
}

/* The id an account gets without --id, into out; false (reported) when it
 * would be too long. */
static bool
s_default_id (const retainctl_cmd_t *cmd, const s_set_flags_t *f, const char *inbox_channel,
              const char *channel, char *out, size_t outlen)
{
    int w = snprintf (out, outlen, "%s%s%s", f->inbox, strcmp (channel, inbox_channel) ? "." : "",
                      strcmp (channel, inbox_channel) ? channel : "");
    if (w >= 0 && (size_t)w < outlen && f->priority_n != 0)
        w += snprintf (out + w, outlen - (size_t)w, ".%lld", (long long)f->priority_n);
    if (w < 0 || (size_t)w >= outlen || !retainctl_id_ok (out)) {
        fprintf (stderr, "%s: the account's id would be longer than %d characters: give --id\n",
                 cmd->program, RETAINCTL_ID_MAX);
        return false;
    }
    return true;
}

/* Builds a request through the stored account as notifyd would, to a
 * stand-in recipient: the adapter's refusal (a missing page id, sender,
 * token) is the account's. 0, or -1 with the reason in err. */
static int
s_try_build (const provider_t *adapter, const rt_channel_t *channel, const PGresult *r, char *err,
             size_t errlen)
{
    const char *base = PQgetvalue (r, 0, 0);
    bool phone = channel->value == RETAIN__V1__CHANNEL__SMS ||
                 channel->value == RETAIN__V1__CHANNEL__WHATSAPP;
    provider_account_t acc = {.provider = adapter->name,
                              .base_url = *base ? base : "https://provider.invalid",
                              .token = PQgetvalue (r, 0, 1),
                              .account_id = *PQgetvalue (r, 0, 2) ? PQgetvalue (r, 0, 2) : NULL,
                              .sender = *PQgetvalue (r, 0, 3) ? PQgetvalue (r, 0, 3) : NULL,
                              .status_url = *PQgetvalue (r, 0, 4) ? PQgetvalue (r, 0, 4) : NULL};
    provider_send_t send = {.message_id = "00000000-0000-7000-8000-000000000000",
                            .channel = channel->value,
                            .to = phone ? "+15550100000" : "1000000",
                            .text = "check",
                            .human_agent = true};
    provider_request_t req;
    int rc = adapter->build (&acc, &send, &req, err, errlen);
    if (rc == 0)
        rt_http_outreq_free (&req);
    return rc;
}

/* Checks an SMTP account as notifyd will use it: its server, its login
 * whole (a user and a password, or neither), and a message built From its
 * sender. 0, or -1 with the reason in err. */
static int
s_try_smtp (const PGresult *r, char *err, size_t errlen)
{
    const char *token = PQgetvalue (r, 0, 1), *login = PQgetvalue (r, 0, 2);
    const char *sender = PQgetvalue (r, 0, 3);
    provider_mail_msg_t msg;
    provider_mail_t mail = {.from = sender,
                            .to = "check@example.com",
                            .subject = "check",
                            .text = "check",
                            .message_id = "00000000-0000-7000-8000-000000000000"};
    if (*login && !*token) {
        rt_errf (err, errlen, "it logs in as %s with no password: --token-file", login);
        return -1;
    }
    if (!*login && *token) {
        rt_errf (err, errlen, "it has a password but no login: --account-id USER");
        return -1;
    }
    if (!*sender) {
        rt_errf (err, errlen, "it has no From: --sender \"Shop <shop@example.com>\"");
        return -1;
    }
    if (provider_smtp_build (&mail, &msg, err, errlen) != 0)
        return -1;
    provider_mail_msg_free (&msg);
    return 0;
}

static int
s_account_set (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    s_set_flags_t f;
    char token[S_TOKEN_MAX + 2], id[RETAINCTL_ID_MAX + 2], now[24], list[256], err[512];
    char inbox_channel[32], inbox_provider[32];
    const rt_channel_t *channel = NULL;
    const char *provider, *token_file;
    const provider_t *adapter;
    bool added, smtp, has_token;
    int rc, built;

    token[0] = '\0';
    if (s_token_on_command_line ("retainctl notify account set", argc, argv))
        return 2;
    if (!retainctl_cmd_begin (
            &cmd, "notify account",
            "Add or change an inbox's sending account (the token from a file or stdin).",
            s_set_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_set_check (&cmd, &f))
        goto cleanup;
    token_file = rt_config_get (cmd.config, "token-file");
    if (*token_file && !s_read_token (&cmd, token_file, strcmp (f.provider, PROVIDER_SMTP) == 0,
                                      token, sizeof token))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    if (!retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_inbox, 1, (const char *[]){f.inbox}))
        goto cleanup;
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr, "%s: no inbox \"%s\" (add it first: retainctl inbox add --id %s ...)\n",
                 cmd.program, f.inbox, f.inbox);
        rc = 2;
        goto cleanup;
    }
    snprintf (inbox_channel, sizeof inbox_channel, "%s", PQgetvalue (cmd.res, 0, 0));
    snprintf (inbox_provider, sizeof inbox_provider, "%s", PQgetvalue (cmd.res, 0, 1));
    PQclear (cmd.res);
    cmd.res = NULL;

    rc = 2;
    channel = rt_channel_by_name (*f.channel ? f.channel : inbox_channel);
    if (!channel) {
        fprintf (stderr, "%s: inbox %s has a channel this retainctl does not know (%s)\n",
                 cmd.program, f.inbox, inbox_channel);
        goto cleanup;
    }
    provider = *f.provider ? f.provider : inbox_provider;
    smtp = strcmp (provider, PROVIDER_SMTP) == 0;
    adapter = smtp ? NULL : s_adapter (provider, channel);
    if (smtp ? channel->value != RETAIN__V1__CHANNEL__EMAIL : !adapter) {
        s_senders (channel, list, sizeof list);
        fprintf (stderr, "%s: %s%s cannot send on %s; %s%s\n", cmd.program,
                 *f.provider ? "--provider " : "the inbox's provider ", provider, channel->name,
                 list[0] ? "it goes out through " : "notifyd sends nothing on it yet", list);
        goto cleanup;
    }
    if (*f.id)
        snprintf (id, sizeof id, "%s", f.id);
    else if (!s_default_id (&cmd, &f, inbox_channel, channel->name, id, sizeof id))
        goto cleanup;

    rc = 1;
    /* A failed statement here is reported at db_failed: a taken priority
     * is the user's to change, not PostgreSQL's words. */
    cmd.res =
        rt_db_exec_params (cmd.db, s_sql_insert, 5,
                           (const char *[]){id, f.inbox, channel->name, provider, f.priority});
    if (!cmd.res)
        goto db_failed;
    added = PQntuples (cmd.res) == 1;
    PQclear (cmd.res);
    cmd.res = NULL;
    /* An SMTP server may take mail without a login. */
    if (added && !token[0] && !(smtp && !f.account_id[0])) {
        fprintf (stderr,
                 "%s: a new account needs its token: --token-file F, or --token-file - with the "
                 "token on stdin\n",
                 cmd.program);
        rc = 2;
        goto cleanup;
    }
    if (!added) {
        cmd.res = rt_db_exec_params (cmd.db, s_sql_owner, 1, (const char *[]){id});
        if (!cmd.res)
            goto db_failed;
        if (strcmp (PQgetvalue (cmd.res, 0, 0), f.inbox) != 0) {
            fprintf (stderr, "%s: account %s sends for inbox %s, not %s: give another --id\n",
                     cmd.program, id, PQgetvalue (cmd.res, 0, 0), f.inbox);
            goto cleanup;
        }
        PQclear (cmd.res);
        cmd.res = NULL;
    }
    if (*f.quota_zone) {
        cmd.res = rt_db_exec_params (cmd.db, s_sql_zone_known, 1, (const char *[]){f.quota_zone});
        if (!cmd.res)
            goto db_failed;
        if (PQntuples (cmd.res) == 0) {
            fprintf (stderr,
                     "%s: --quota-zone \"%s\" is no time zone PostgreSQL knows (e.g. "
                     "Europe/Kyiv, UTC)\n",
                     cmd.program, f.quota_zone);
            rc = 2;
            goto cleanup;
        }
        PQclear (cmd.res);
        cmd.res = NULL;
    }
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    cmd.res = rt_db_exec_params (cmd.db, s_sql_update, 16,
                                 (const char *[]){id, channel->name, provider, token, f.base_url,
                                                  f.account_id, f.sender, f.status_url, f.priority,
                                                  f.rate, f.burst, f.rrate, f.rburst, now, f.quota,
                                                  f.quota_zone});
    if (!cmd.res)
        goto db_failed;
    if (*f.quota || *f.quota_zone) {
        PGresult *rest = rt_db_exec_params (cmd.db, s_sql_quota_rest, 2, (const char *[]){id, now});
        if (!rest)
            goto db_failed;
        PQclear (rest);
    }
    built = smtp ? s_try_smtp (cmd.res, err, sizeof err)
                 : s_try_build (adapter, channel, cmd.res, err, sizeof err);
    has_token = *PQgetvalue (cmd.res, 0, 1) != '\0';
    /* The stored token, back from the update for the check: gone now. */
    explicit_bzero (PQgetvalue (cmd.res, 0, 1), strlen (PQgetvalue (cmd.res, 0, 1)));
    if (built != 0) {
        fprintf (stderr, "%s: %s cannot send on %s with this account: %s\n", cmd.program, provider,
                 channel->name, err);
        rc = 2;
        goto cleanup;
    }
    if (rt_db_commit (cmd.db) != 0)
        goto db_failed;
    printf ("account %s %s: inbox %s, %s through %s, priority %s, %s, %s/s (burst %s), "
            "%s/s to one recipient (burst %s)\n",
            id, added ? "added" : "updated", f.inbox, channel->name, provider,
            PQgetvalue (cmd.res, 0, 5), has_token ? "token set" : "no login",
            PQgetvalue (cmd.res, 0, 6), PQgetvalue (cmd.res, 0, 7), PQgetvalue (cmd.res, 0, 8),
            PQgetvalue (cmd.res, 0, 9));
    if (*PQgetvalue (cmd.res, 0, 12))
        printf ("at most %s requests a day (the day in %s)\n", PQgetvalue (cmd.res, 0, 12),
                PQgetvalue (cmd.res, 0, 13));
    if (*PQgetvalue (cmd.res, 0, 10))
        printf ("it is stopped (%s): once that is fixed, `retainctl notify account resume --id "
                "%s` lets it send again\n",
                PQgetvalue (cmd.res, 0, 10), id);
    if (strcmp (PQgetvalue (cmd.res, 0, 11), "t") == 0)
        printf ("it is disabled: `retainctl notify account enable --id %s` lets it send\n", id);
    rc = 0;
    goto cleanup;
db_failed:
    if (strcmp (rt_db_sqlstate (cmd.db), "23505") == 0)
        fprintf (stderr,
                 "%s: inbox %s already has an account on %s at priority %s: give its --id "
                 "to change it, or another --priority\n",
                 cmd.program, f.inbox, channel ? channel->name : "?",
                 f.priority[0] ? f.priority : "0");
    else
        retainctl_cmd_db_error (&cmd);
    rc = 1;
cleanup:
    explicit_bzero (token, sizeof token);
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- account list --- */

static const char *
s_state (const PGresult *r, int row, char *out, size_t outlen)
{
    if (strcmp (PQgetvalue (r, row, 14), "t") == 0)
        snprintf (out, outlen, "disabled");
    else if (*PQgetvalue (r, row, 15))
        snprintf (out, outlen, "stopped %s: %s", PQgetvalue (r, row, 16), PQgetvalue (r, row, 15));
    else if (*PQgetvalue (r, row, 17))
        snprintf (out, outlen, "paused until %s", PQgetvalue (r, row, 17));
    else if (*PQgetvalue (r, row, 21))
        snprintf (out, outlen, "quota used (%s of %s today) until %s", PQgetvalue (r, row, 20),
                  PQgetvalue (r, row, 18), PQgetvalue (r, row, 21));
    else
        snprintf (out, outlen, "active");
    return out;
}

static json_t *
s_account_json (const PGresult *r, int row)
{
    char state[640];
    const char *kind;
    json_t *o;
    s_state (r, row, state, sizeof state);
    kind = strcmp (PQgetvalue (r, row, 14), "t") == 0 ? "disabled"
           : *PQgetvalue (r, row, 15)                 ? "stopped"
           : *PQgetvalue (r, row, 17)                 ? "paused"
           : *PQgetvalue (r, row, 21)                 ? "quota_used"
                                                      : "active";
    o = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:b, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f,"
                   " s:s, s:s?, s:s?, s:s?}",
                   "id", PQgetvalue (r, row, 0), "inbox", PQgetvalue (r, row, 1), "channel",
                   PQgetvalue (r, row, 2), "provider", PQgetvalue (r, row, 3), "priority",
                   (json_int_t)strtoll (PQgetvalue (r, row, 4), NULL, 10), "token_set",
                   strcmp (PQgetvalue (r, row, 5), "t") == 0, "account_id", PQgetvalue (r, row, 6),
                   "sender", PQgetvalue (r, row, 7), "base_url", PQgetvalue (r, row, 8),
                   "status_url", PQgetvalue (r, row, 9), "rate_per_s",
                   atof (PQgetvalue (r, row, 10)), "burst", atof (PQgetvalue (r, row, 11)),
                   "recipient_per_s", atof (PQgetvalue (r, row, 12)), "recipient_burst",
                   atof (PQgetvalue (r, row, 13)), "state", kind, "stopped_reason",
                   *PQgetvalue (r, row, 15) ? PQgetvalue (r, row, 15) : NULL, "stopped_at",
                   *PQgetvalue (r, row, 16) ? PQgetvalue (r, row, 16) : NULL, "paused_until",
                   *PQgetvalue (r, row, 17) ? PQgetvalue (r, row, 17) : NULL);
    if (o && *PQgetvalue (r, row, 18)) {
        json_object_set_new (o, "daily_quota", json_integer (atoll (PQgetvalue (r, row, 18))));
        json_object_set_new (o, "quota_zone", json_string (PQgetvalue (r, row, 19)));
        json_object_set_new (o, "sent_today", json_integer (atoll (PQgetvalue (r, row, 20))));
        json_object_set_new (o, "quota_until",
                             *PQgetvalue (r, row, 21) ? json_string (PQgetvalue (r, row, 21))
                                                      : json_null ());
    }
    return o;
}

static int
s_account_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char now[24], state[640], rate[64], rrate[64], quota[48];
    const char *inbox;
    bool json;
    int rc;

    if (!retainctl_cmd_begin_list (&cmd, "notify account",
                                   "List the sending accounts (whether a token is set, never it).",
                                   s_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    inbox = rt_config_get (cmd.config, "inbox");
    if (*inbox && !retainctl_cmd_id (&cmd, "inbox", inbox)) {
        rc = 2;
        goto cleanup;
    }
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (!retainctl_cmd_exec (&cmd, s_sql_list, 2, (const char *[]){inbox, now}))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_account_json, JSON_COMPACT) == 0)
            rc = 0;
        goto cleanup;
    }
    printf ("%-24s %-24s %-10s %-9s %-4s %-5s %-12s %-12s %-13s %s\n", "ID", "INBOX", "CHANNEL",
            "PROVIDER", "PRIO", "TOKEN", "RATE", "RECIPIENT", "TODAY/QUOTA", "STATE");
    for (int r = 0; r < PQntuples (cmd.res); r++) {
        if (*PQgetvalue (cmd.res, r, 18))
            snprintf (quota, sizeof quota, "%s/%s", PQgetvalue (cmd.res, r, 20),
                      PQgetvalue (cmd.res, r, 18));
        else
            snprintf (quota, sizeof quota, "-");
        snprintf (rate, sizeof rate, "%g/s+%g", atof (PQgetvalue (cmd.res, r, 10)),
                  atof (PQgetvalue (cmd.res, r, 11)));
        snprintf (rrate, sizeof rrate, "%g/s+%g", atof (PQgetvalue (cmd.res, r, 12)),
                  atof (PQgetvalue (cmd.res, r, 13)));
        printf ("%-24s %-24s %-10s %-9s %-4s %-5s %-12s %-12s %-13s %s\n",
                PQgetvalue (cmd.res, r, 0), PQgetvalue (cmd.res, r, 1), PQgetvalue (cmd.res, r, 2),
                PQgetvalue (cmd.res, r, 3), PQgetvalue (cmd.res, r, 4),
                strcmp (PQgetvalue (cmd.res, r, 5), "t") == 0 ? "set" : "none", rate, rrate, quota,
                s_state (cmd.res, r, state, sizeof state));
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- account disable, enable, resume --- */

/* The old stop, so resume says what it cleared. */
static const char *s_sql_resume =
    "WITH old AS (SELECT id, stopped_reason FROM notify.accounts WHERE id = $1 FOR UPDATE)"
    " UPDATE notify.accounts a SET stopped_at = NULL, stopped_reason = NULL,"
    " updated_at = CASE WHEN old.stopped_reason IS NULL THEN a.updated_at"
    "                   ELSE to_timestamp($2::bigint / 1000.0) END"
    " FROM old WHERE a.id = old.id"
    " RETURNING COALESCE(old.stopped_reason, ''), a.disabled_at IS NOT NULL";
static const char *s_sql_disable =
    "UPDATE notify.accounts SET disabled_at = COALESCE(disabled_at,"
    " to_timestamp($2::bigint / 1000.0)), updated_at = to_timestamp($2::bigint / 1000.0)"
    " WHERE id = $1 RETURNING id";
static const char *s_sql_enable =
    "UPDATE notify.accounts SET disabled_at = NULL,"
    " updated_at = to_timestamp($2::bigint / 1000.0) WHERE id = $1 RETURNING id";

/* disable, enable and resume: one statement on one account, by argv[0]. */
static int
s_account_switch (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *verb = argv[0];
    bool resume = strcmp (verb, "resume") == 0;
    const char *sql, *summary, *id;
    char now[24];
    int rc;

    if (strcmp (verb, "disable") == 0) {
        sql = s_sql_disable;
        summary = "Disable a sending account: nothing goes out through it until it is enabled.";
    } else if (!resume) {
        sql = s_sql_enable;
        summary = "Enable a disabled sending account.";
    } else {
        sql = s_sql_resume;
        summary = "Let an account its provider refused send again, once its token is fixed.";
    }
    if (!retainctl_cmd_begin_id (&cmd, "notify account", summary, s_id_settings, argc, argv, &id,
                                 &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    if (!retainctl_cmd_exec (&cmd, sql, 2, (const char *[]){id, now}))
        goto cleanup;
    if (PQntuples (cmd.res) != 1) {
        fprintf (stderr, "%s: no account \"%s\"\n", cmd.program, id);
        goto cleanup;
    }
    rc = 0;
    if (!resume) {
        printf ("account %s: %sd\n", id, verb);
        goto cleanup;
    }
    if (*PQgetvalue (cmd.res, 0, 0))
        printf ("account %s: resumed (it was stopped: %s); its waiting sends go out\n", id,
                PQgetvalue (cmd.res, 0, 0));
    else
        printf ("account %s: was not stopped; nothing to resume\n", id);
    if (strcmp (PQgetvalue (cmd.res, 0, 1), "t") == 0)
        printf ("it is disabled: `retainctl notify account enable --id %s` lets it send\n", id);
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static const retainctl_command_t s_account_commands[] = {
    {.name = "set",
     .summary = "add or change an inbox's sending account: --inbox I --provider P --token-file F|-",
     .run = s_account_set},
    {.name = "list",
     .summary = "list the sending accounts and their state (never a token)",
     .run = s_account_list},
    {.name = "disable",
     .summary = "send nothing through an account (--id)",
     .run = s_account_switch},
    {.name = "enable",
     .summary = "send through a disabled account again (--id)",
     .run = s_account_switch},
    {.name = "resume",
     .summary = "clear the stop its provider's refusal put on an account (--id)",
     .run = s_account_switch},
    {.name = NULL}};

const retainctl_command_t retainctl_notify_commands[] = {
    {.name = "account",
     .summary = "the inboxes' sending accounts: set, list, disable, enable, resume",
     .subs = s_account_commands},
    {.name = "failed",
     .summary = "the dead letters, newest first; failed retry queues them again",
     .run = retainctl_notify_failed,
     .subs = retainctl_notify_failed_commands},
    {.name = NULL}};
