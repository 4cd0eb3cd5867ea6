/*
 * retainctl inbox: the inboxes ingestd listens on (ingest.inboxes).
 *
 *   inbox add --id ID --channel CH [--provider P] [--secret S] [--config JSON]
 *   inbox list
 *   inbox rotate-secret --id ID [--secret S]
 *   inbox disable|enable|remove --id ID
 *
 * A secret not given is generated (32 random bytes, hex) and printed once;
 * list never shows secrets. A rotation keeps the old secret as
 * previous_secret, still accepted, until the next rotation, so the provider
 * can be switched over without a lost webhook. ingestd notices changes
 * within a second.
 *
 * The channels, their providers and each (channel, provider)'s webhook
 * address come from common/channel's table, so what add and list print is
 * where ingestd listens for that inbox: a Twilio WhatsApp number's address
 * is Twilio's route, not Meta's.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_channel.h"
#include "rt_config.h"
#include "rt_db.h"

/* Each flag once; each subcommand's table lists those it takes, so its
 * --help shows exactly them. The help of --channel and --provider is
 * written from the table when add runs (s_kind_help). */
#define S_ID                                                                                       \
    {                                                                                              \
        "id", NULL, "", "inbox id: lower-case letters, digits, '.', '_', '-' (required)"           \
    }
#define S_CHANNEL                                                                                  \
    {                                                                                              \
        "channel", NULL, "", ""                                                                    \
    }
#define S_PROVIDER                                                                                 \
    {                                                                                              \
        "provider", NULL, "", ""                                                                   \
    }
#define S_SECRET                                                                                   \
    {                                                                                              \
        "secret", NULL, "",                                                                        \
            "the provider's secret (bot token, app secret, signing key, ...); default: generated"  \
    }
#define S_CONFIG                                                                                   \
    {                                                                                              \
        "config", NULL, "{}", "channel settings as a JSON object (see README)"                     \
    }
#define S_PUBLIC_URL                                                                               \
    {                                                                                              \
        "public-url", "RETAIN_INGEST_PUBLIC_URL", "http://127.0.0.1:8780",                         \
            "base URL shown for webhook addresses"                                                 \
    }

static const rt_config_setting_t s_add_settings[] = {
    RETAINCTL_PG_DSN, S_ID, S_CHANNEL, S_PROVIDER, S_SECRET, S_CONFIG, S_PUBLIC_URL, RETAINCTL_END};
static const rt_config_setting_t s_list_settings[] = {RETAINCTL_PG_DSN, S_PUBLIC_URL,
                                                      RETAINCTL_END};
static const rt_config_setting_t s_rotate_settings[] = {RETAINCTL_PG_DSN, S_ID, S_SECRET,
                                                        RETAINCTL_END};
static const rt_config_setting_t s_id_settings[] = {RETAINCTL_PG_DSN, S_ID, RETAINCTL_END};

static const char *s_sql_add = "INSERT INTO ingest.inboxes (id, channel, provider, secret, config)"
                               " VALUES ($1, $2, $3, $4, $5::jsonb)";
static const char *s_sql_list =
    "SELECT id, channel, provider, enabled::text, config::text, (previous_secret <> '')::text"
    " FROM ingest.inboxes ORDER BY id";
static const char *s_sql_rotate =
    "UPDATE ingest.inboxes SET previous_secret = secret, secret = $2 WHERE id = $1 RETURNING id";

/* PostgreSQL's DETAIL repeats the failing row, secret included: never
 * shown. */
#define S_DB_ERRORS RETAINCTL_DB_NO_DETAIL

/* A secret not given: 32 random bytes, 64 hex digits. */
#define S_SECRET_BYTES 32

/* The help lines of --channel and --provider, from the table. */
typedef struct {
    char channel[256];  /* --channel's */
    char provider[512]; /* --provider's */
} s_kind_help_t;

/* Appends to out[*used..]; stops quietly once out is full. */
static void __attribute__ ((format (printf, 4, 5)))
s_append (char *out, size_t outlen, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int w;
    if (*used >= outlen)
        return;
    va_start (ap, fmt);
    w = vsnprintf (out + *used, outlen - *used, fmt, ap);
    va_end (ap);
    *used = w < 0 || (size_t)w >= outlen - *used ? outlen : *used + (size_t)w;
}

/* Whether kind i is a default other than its channel's name, and the first
 * such of its provider. */
static bool
s_first_named_default (size_t i)
{
    const rt_channel_kind_t *kind = rt_channel_kind_at (i);
    size_t k;
    if (!kind->is_default || strcmp (kind->provider, rt_channel_name (kind->channel)) == 0)
        return false;
    for (k = 0; k < i; k++) {
        const rt_channel_kind_t *prior = rt_channel_kind_at (k);
        if (prior->is_default && strcmp (prior->provider, kind->provider) == 0)
            return false;
    }
    return true;
}

/* Writes the help lines and a copy of settings (ended by a NULL name, at
 * most max entries with the end) that points to them. */
static void
s_kind_help (s_kind_help_t *help, const rt_config_setting_t *settings, rt_config_setting_t *out,
             size_t max)
{
    char list[256];
    size_t i, k, used = 0;
    rt_channel_list (list, sizeof list);
    s_append (help->channel, sizeof help->channel, &used, "%s (required)", list);
    used = 0;
    rt_channel_providers (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, list, sizeof list);
    s_append (help->provider, sizeof help->provider, &used,
              "who delivers the channel: %s. Default:", list);
    /* The defaults that are not the channel's own name, grouped by
     * provider ("meta for messenger, instagram, whatsapp"), then the kinds
     * a config key selects. */
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const char *sep = " for ";
        if (!s_first_named_default (i))
            continue;
        s_append (help->provider, sizeof help->provider, &used, " %s",
                  rt_channel_kind_at (i)->provider);
        for (k = i; k < rt_channel_kind_count (); k++) {
            const rt_channel_kind_t *kind = rt_channel_kind_at (k);
            if (kind->is_default &&
                strcmp (kind->provider, rt_channel_kind_at (i)->provider) == 0) {
                s_append (help->provider, sizeof help->provider, &used, "%s%s", sep,
                          rt_channel_name (kind->channel));
                sep = ", ";
            }
        }
        s_append (help->provider, sizeof help->provider, &used, ";");
    }
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        if (kind->config_key)
            s_append (help->provider, sizeof help->provider, &used,
                      " %s for %s when --config has \"%s\";", kind->provider,
                      rt_channel_name (kind->channel), kind->config_key);
    }
    s_append (help->provider, sizeof help->provider, &used, " else the channel's name");
    for (i = 0; i + 1 < max && settings[i].name; i++) {
        out[i] = settings[i];
        if (strcmp (out[i].name, "channel") == 0)
            out[i].help = help->channel;
        else if (strcmp (out[i].name, "provider") == 0)
            out[i].help = help->provider;
    }
    out[i] = (rt_config_setting_t)RETAINCTL_END;
}

/* The kind an inbox is added as: --provider's for the channel, else the
 * kind the config selects (an "imap_url" means a polled mailbox), else the
 * channel's default. NULL, with the reason on stderr, when there is none. */
static const rt_channel_kind_t *
s_kind (const char *program, const rt_channel_t *channel, const char *provider, const json_t *cfg)
{
    const rt_channel_kind_t *kind;
    char list[256];
    size_t i;
    if (!*provider) {
        for (i = 0; i < rt_channel_kind_count (); i++) {
            kind = rt_channel_kind_at (i);
            if (kind->channel == channel->value && kind->config_key &&
                json_object_get (cfg, kind->config_key))
                return kind;
        }
        return rt_channel_kind_default (channel->value);
    }
    kind = rt_channel_kind_find (channel->value, provider);
    if (kind)
        return kind;
    if (!rt_channel_provider_known (provider)) {
        rt_channel_providers (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, list, sizeof list);
        fprintf (stderr, "%s: --provider \"%s\" must be one of %s\n", program, provider, list);
    } else {
        rt_channel_providers (channel->value, list, sizeof list);
        fprintf (stderr, "%s: --provider %s does not deliver %s; %s comes through %s\n", program,
                 provider, channel->name, channel->name, list);
    }
    return NULL;
}

/* Providers that sign nothing and so are given the inbox secret in the
 * webhook URL's query, as "?token=<secret>" (ingest's channels/binotel.c). */
static const char *const s_token_providers[] = {"binotel"};

/* The inbox's webhook URL, or "polled" for a mailbox ingestd polls. For a
 * provider that takes the secret in its URL, token is the secret (printed
 * percent-encoded), or NULL to print a "<secret>" placeholder (list never
 * shows secrets). */
static void
s_print_url (const char *base, const char *id, const rt_channel_kind_t *kind, const char *token)
{
    char url[2048];
    size_t i;
    const char *p;
    if (!kind)
        printf ("? (a channel and provider this retainctl does not know)");
    else if (!kind->route)
        printf ("polled (no webhook)");
    else {
        rt_channel_kind_url (kind, base, id, url, sizeof url);
        printf ("%s", url);
        for (i = 0; i < sizeof s_token_providers / sizeof *s_token_providers; i++) {
            if (strcmp (kind->provider, s_token_providers[i]) != 0)
                continue;
            printf ("?token=");
            if (!token)
                printf ("<secret>");
            for (p = token; p && *p; p++) {
                unsigned char c = (unsigned char)*p;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~')
                    putchar (c);
                else
                    printf ("%%%02X", c);
            }
        }
    }
}

/* Parses the flags of `inbox <argv[0]>`, a required --id (into *id)
 * given when id is not NULL. Returns true to go on; otherwise *rc is the
 * exit status. */
static bool
s_begin (retainctl_cmd_t *cmd, const char *summary, const rt_config_setting_t *settings,
         const char **id, int argc, char **argv, int *rc)
{
    if (!retainctl_cmd_begin (cmd, "inbox", summary, settings, argc, argv, rc))
        return false;
    if (id && !retainctl_cmd_required (cmd, "id", id)) {
        *rc = 2;
        return false;
    }
    return true;
}

static int
s_add (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    s_kind_help_t help;
    rt_config_setting_t settings[sizeof s_add_settings / sizeof *s_add_settings];
    char secret[2 * S_SECRET_BYTES + 1], list[256];
    const char *params[5];
    const rt_channel_t *channel;
    const rt_channel_kind_t *kind;
    json_error_t jerr;
    json_t *cfg = NULL;
    bool generated;
    int rc;

    s_kind_help (&help, s_add_settings, settings, sizeof settings / sizeof *settings);
    if (!s_begin (&cmd, "Add an inbox; prints its webhook URL (and its secret when generated).",
                  settings, &params[0], argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_id (&cmd, "id", params[0]))
        goto cleanup;
    channel = rt_channel_by_name (rt_config_get (cmd.config, "channel"));
    if (!channel) {
        rt_channel_list (list, sizeof list);
        fprintf (stderr, "%s: --channel must be one of %s\n", cmd.program, list);
        goto cleanup;
    }
    cfg = json_loads (rt_config_get (cmd.config, "config"), 0, &jerr);
    if (!cfg || !json_is_object (cfg)) {
        fprintf (stderr, "%s: --config is not a JSON object: %s\n", cmd.program,
                 cfg ? "not an object" : jerr.text);
        goto cleanup;
    }
    kind = s_kind (cmd.program, channel, rt_config_get (cmd.config, "provider"), cfg);
    if (!kind)
        goto cleanup;
    rc = 1;
    generated = !rt_config_get (cmd.config, "secret")[0];
    if (generated && retainctl_random_hex (S_SECRET_BYTES, secret) != 0)
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    params[1] = channel->name;
    params[2] = kind->provider;
    params[3] = generated ? secret : rt_config_get (cmd.config, "secret");
    params[4] = rt_config_get (cmd.config, "config");
    if (!retainctl_cmd_exec (&cmd, s_sql_add, 5, params))
        goto cleanup;
    printf ("inbox %s (%s through %s) added\nwebhook: ", params[0], params[1], params[2]);
    s_print_url (rt_config_get (cmd.config, "public-url"), params[0], kind, params[3]);
    printf ("\n");
    if (generated)
        printf ("secret: %s   (shown once; configure it at the provider)\n", secret);
    rc = 0;
cleanup:
    json_decref (cfg);
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    int rc, r;

    if (!s_begin (&cmd, "List the inboxes with their webhook URLs (never their secrets).",
                  s_list_settings, NULL, argc, argv, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS) ||
        !retainctl_cmd_exec (&cmd, s_sql_list, 0, NULL))
        goto cleanup;
    printf ("%-24s %-10s %-9s %-8s %-9s %-60s %s\n", "ID", "CHANNEL", "PROVIDER", "ENABLED",
            "ROTATING", "WEBHOOK", "CONFIG");
    for (r = 0; r < PQntuples (cmd.res); r++) {
        const rt_channel_t *channel = rt_channel_by_name (PQgetvalue (cmd.res, r, 1));
        const rt_channel_kind_t *kind =
            channel ? rt_channel_kind_find (channel->value, PQgetvalue (cmd.res, r, 2)) : NULL;
        printf ("%-24s %-10s %-9s %-8s %-9s ", PQgetvalue (cmd.res, r, 0),
                PQgetvalue (cmd.res, r, 1), PQgetvalue (cmd.res, r, 2), PQgetvalue (cmd.res, r, 3),
                PQgetvalue (cmd.res, r, 5));
        s_print_url (rt_config_get (cmd.config, "public-url"), PQgetvalue (cmd.res, r, 0), kind,
                     NULL);
        printf ("  %s\n", PQgetvalue (cmd.res, r, 4));
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_rotate_secret (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char secret[2 * S_SECRET_BYTES + 1];
    const char *params[2];
    bool generated;
    int rc;

    if (!s_begin (&cmd,
                  "Give an inbox a new secret; the previous one stays accepted until the next "
                  "rotation.",
                  s_rotate_settings, &params[0], argc, argv, &rc))
        goto cleanup;
    generated = !rt_config_get (cmd.config, "secret")[0];
    if (generated && retainctl_random_hex (S_SECRET_BYTES, secret) != 0)
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS))
        goto cleanup;
    params[1] = generated ? secret : rt_config_get (cmd.config, "secret");
    if (!retainctl_cmd_exec (&cmd, s_sql_rotate, 2, params))
        goto cleanup;
    if (PQntuples (cmd.res) != 1) {
        fprintf (stderr, "%s: no such inbox\n", cmd.program);
        goto cleanup;
    }
    printf ("inbox %s: new secret in force; the previous one is still accepted until the next "
            "rotation\n",
            params[0]);
    if (generated)
        printf ("secret: %s   (shown once)\n", secret);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* disable, enable and remove: one statement on one inbox, by argv[0]. */
static int
s_toggle (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *verb = argv[0];
    const char *sql, *summary, *id;
    int rc;

    if (strcmp (verb, "remove") == 0) {
        sql = "DELETE FROM ingest.inboxes WHERE id = $1 RETURNING id";
        summary = "Remove an inbox; its webhooks are answered 404 from then on.";
    } else if (strcmp (verb, "disable") == 0) {
        sql = "UPDATE ingest.inboxes SET enabled = false WHERE id = $1 RETURNING id";
        summary = "Disable an inbox (kept, answered 404) until it is enabled again.";
    } else {
        sql = "UPDATE ingest.inboxes SET enabled = true WHERE id = $1 RETURNING id";
        summary = "Enable a disabled inbox.";
    }
    if (!s_begin (&cmd, summary, s_id_settings, &id, argc, argv, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, S_DB_ERRORS) || !retainctl_cmd_exec (&cmd, sql, 1, &id))
        goto cleanup;
    if (PQntuples (cmd.res) != 1) {
        fprintf (stderr, "%s: no such inbox\n", cmd.program);
        goto cleanup;
    }
    printf ("inbox %s: %sd\n", id, verb);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_inbox_commands[] = {
    {.name = "add",
     .summary = "add an inbox: --id ID --channel CH [--provider P] [--secret S]",
     .run = s_add},
    {.name = "list", .summary = "list the inboxes and their webhook URLs", .run = s_list},
    {.name = "rotate-secret",
     .summary = "a new secret for --id; the previous stays valid until the next",
     .run = s_rotate_secret},
    {.name = "disable", .summary = "stop accepting an inbox's webhooks (--id)", .run = s_toggle},
    {.name = "enable",
     .summary = "accept a disabled inbox's webhooks again (--id)",
     .run = s_toggle},
    {.name = "remove", .summary = "delete an inbox (--id)", .run = s_toggle},
    {.name = NULL}};
