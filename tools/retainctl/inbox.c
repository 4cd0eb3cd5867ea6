/*
 * retainctl inbox: the inboxes ingestd listens on (ingest.inboxes).
 *
 *   inbox add --id ID --channel CH [--secret S] [--config JSON]
 *   inbox list
 *   inbox rotate-secret --id ID [--secret S]
 *   inbox disable|enable|remove --id ID
 *
 * A secret not given is generated (32 random bytes, hex) and printed once;
 * list never shows secrets. A rotation keeps the old secret as
 * previous_secret, still accepted, until the next rotation, so the provider
 * can be switched over without a lost webhook. ingestd notices changes
 * within a second.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "retainctl.h"
#include "rt_config.h"
#include "rt_db.h"

/* Each flag once; each subcommand's table lists those it takes, so its
 * --help shows exactly them. */
#define S_PG_DSN                                                                                   \
    {                                                                                              \
        "pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"               \
    }
#define S_ID                                                                                       \
    {                                                                                              \
        "id", NULL, "", "inbox id: lower-case letters, digits, '.', '_', '-' (required)"           \
    }
#define S_CHANNEL                                                                                  \
    {                                                                                              \
        "channel", NULL, "",                                                                       \
            "telegram, viber, messenger, instagram, whatsapp, sms, email, webchat or phone"        \
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
#define S_END                                                                                      \
    {                                                                                              \
        NULL, NULL, NULL, NULL                                                                     \
    }

static const rt_config_setting_t s_add_settings[] = {S_PG_DSN, S_ID,         S_CHANNEL, S_SECRET,
                                                     S_CONFIG, S_PUBLIC_URL, S_END};
static const rt_config_setting_t s_list_settings[] = {S_PG_DSN, S_PUBLIC_URL, S_END};
static const rt_config_setting_t s_rotate_settings[] = {S_PG_DSN, S_ID, S_SECRET, S_END};
static const rt_config_setting_t s_id_settings[] = {S_PG_DSN, S_ID, S_END};

/* One subcommand's run: its flags and its connection. */
typedef struct {
    char program[64];    /* "retainctl inbox add", heads messages */
    rt_config_t *config; /* its flags */
    rt_db_t *db;         /* reads and writes ingest.inboxes */
    PGresult *res;       /* the statement's result */
} s_cmd_t;

static int
s_generate (char out[65])
{
    unsigned char raw[32];
    static const char hex[] = "0123456789abcdef";
    size_t i;
    if (getrandom (raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return -1;
    for (i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* PostgreSQL's DETAIL repeats the failing row, secret included: never show
 * it. */
static void
s_db_error (const char *verb, rt_db_t *db)
{
    const char *msg = rt_db_error (db);
    const char *detail = strstr (msg, "\nDETAIL");
    fprintf (stderr, "retainctl inbox %s: %.*s\n", verb,
             (int)(detail ? (size_t)(detail - msg) : strlen (msg)), msg);
}

static bool
s_valid_id (const char *id)
{
    size_t i, n = strlen (id);
    if (n == 0 || n > 63 || !((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9')))
        return false;
    for (i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool
s_valid_channel (const char *channel)
{
    static const char *const channels[] = {"telegram",  "viber",    "messenger",
                                           "instagram", "whatsapp", "sms",
                                           "email",     "webchat",  "phone"};
    size_t i;
    for (i = 0; i < sizeof channels / sizeof *channels; i++) {
        if (strcmp (channels[i], channel) == 0)
            return true;
    }
    return false;
}

static const char *
s_route (const char *channel)
{
    if (strcmp (channel, "webchat") == 0)
        return "chat";
    if (strcmp (channel, "email") == 0)
        return "mailgun";
    if (strcmp (channel, "sms") == 0)
        return "twilio";
    return channel;
}

static void
s_print_url (const char *base, const char *id, const char *channel)
{
    if (strcmp (channel, "webchat") == 0)
        printf ("%s/chat/%s/messages", base, id);
    else
        printf ("%s/hooks/%s/%s", base, s_route (channel), id);
}

/* Parses the flags of `inbox <argv[0]>` (a required --id checked).
 * Returns true to go on; otherwise *rc is the exit status. */
static bool
s_begin (s_cmd_t *cmd, const char *summary, const rt_config_setting_t *settings, bool needs_id,
         int argc, char **argv, int *rc)
{
    memset (cmd, 0, sizeof *cmd);
    snprintf (cmd->program, sizeof cmd->program, "retainctl inbox %s", argv[0]);
    *rc = 1;
    cmd->config = rt_config_new (cmd->program, summary, settings);
    if (!cmd->config)
        return false;
    if (!retainctl_parse (cmd->config, cmd->program, argc, argv, rc))
        return false;
    if (needs_id && !rt_config_get (cmd->config, "id")[0]) {
        fprintf (stderr, "%s: --id is required\n", cmd->program);
        *rc = 2;
        return false;
    }
    return true;
}

static bool
s_connect (s_cmd_t *cmd)
{
    cmd->db = rt_db_new (rt_config_get (cmd->config, "pg-dsn"), "retainctl");
    if (!cmd->db || rt_db_connect (cmd->db) != 0) {
        fprintf (stderr, "%s: cannot connect: %s\n", cmd->program,
                 cmd->db ? rt_db_error (cmd->db) : "");
        return false;
    }
    return true;
}

static void
s_end (s_cmd_t *cmd)
{
    PQclear (cmd->res);
    rt_db_destroy (&cmd->db);
    rt_config_destroy (&cmd->config);
}

static int
s_add (int argc, char **argv)
{
    s_cmd_t cmd;
    char secret[65];
    const char *params[4];
    json_error_t jerr;
    json_t *cfg;
    bool generated;
    int rc;

    if (!s_begin (&cmd, "Add an inbox; prints its webhook URL (and its secret when generated).",
                  s_add_settings, true, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    params[0] = rt_config_get (cmd.config, "id");
    if (!s_valid_id (params[0])) {
        fprintf (stderr,
                 "%s: --id \"%s\" must be 1-63 lower-case letters, digits, '.', '_' or '-', "
                 "starting with a letter or digit\n",
                 cmd.program, params[0]);
        goto cleanup;
    }
    if (!s_valid_channel (rt_config_get (cmd.config, "channel"))) {
        fprintf (stderr,
                 "%s: --channel must be one of telegram, viber, messenger, instagram, "
                 "whatsapp, sms, email, webchat, phone\n",
                 cmd.program);
        goto cleanup;
    }
    cfg = json_loads (rt_config_get (cmd.config, "config"), 0, &jerr);
    if (!cfg || !json_is_object (cfg)) {
        fprintf (stderr, "%s: --config is not a JSON object: %s\n", cmd.program,
                 cfg ? "not an object" : jerr.text);
        json_decref (cfg);
        goto cleanup;
    }
    json_decref (cfg);
    rc = 1;
    generated = !rt_config_get (cmd.config, "secret")[0];
    if (generated && s_generate (secret) != 0)
        goto cleanup;
    if (!s_connect (&cmd))
        goto cleanup;
    params[1] = rt_config_get (cmd.config, "channel");
    params[2] = generated ? secret : rt_config_get (cmd.config, "secret");
    params[3] = rt_config_get (cmd.config, "config");
    cmd.res = rt_db_exec_params (cmd.db,
                                 "INSERT INTO ingest.inboxes (id, channel, secret, config) "
                                 "VALUES ($1, $2, $3, $4::jsonb)",
                                 4, params);
    if (!cmd.res) {
        s_db_error ("add", cmd.db);
        goto cleanup;
    }
    printf ("inbox %s (%s) added\nwebhook: ", params[0], params[1]);
    s_print_url (rt_config_get (cmd.config, "public-url"), params[0], params[1]);
    printf ("\n");
    if (generated)
        printf ("secret: %s   (shown once; configure it at the provider)\n", secret);
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

static int
s_list (int argc, char **argv)
{
    s_cmd_t cmd;
    int rc, r;

    if (!s_begin (&cmd, "List the inboxes with their webhook URLs (never their secrets).",
                  s_list_settings, false, argc, argv, &rc))
        goto cleanup;
    if (!s_connect (&cmd))
        goto cleanup;
    cmd.res = rt_db_exec_params (cmd.db,
                                 "SELECT id, channel, enabled::text, config::text, "
                                 "(previous_secret <> '')::text FROM ingest.inboxes ORDER BY id",
                                 0, NULL);
    if (!cmd.res) {
        s_db_error ("list", cmd.db);
        goto cleanup;
    }
    printf ("%-24s %-10s %-8s %-9s %-60s %s\n", "ID", "CHANNEL", "ENABLED", "ROTATING", "WEBHOOK",
            "CONFIG");
    for (r = 0; r < PQntuples (cmd.res); r++) {
        printf ("%-24s %-10s %-8s %-9s ", PQgetvalue (cmd.res, r, 0), PQgetvalue (cmd.res, r, 1),
                PQgetvalue (cmd.res, r, 2), PQgetvalue (cmd.res, r, 4));
        s_print_url (rt_config_get (cmd.config, "public-url"), PQgetvalue (cmd.res, r, 0),
                     PQgetvalue (cmd.res, r, 1));
        printf ("  %s\n", PQgetvalue (cmd.res, r, 3));
    }
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

static int
s_rotate_secret (int argc, char **argv)
{
    s_cmd_t cmd;
    char secret[65];
    const char *params[2];
    bool generated;
    int rc;

    if (!s_begin (&cmd,
                  "Give an inbox a new secret; the previous one stays accepted until the next "
                  "rotation.",
                  s_rotate_settings, true, argc, argv, &rc))
        goto cleanup;
    generated = !rt_config_get (cmd.config, "secret")[0];
    if (generated && s_generate (secret) != 0)
        goto cleanup;
    if (!s_connect (&cmd))
        goto cleanup;
    params[0] = rt_config_get (cmd.config, "id");
    params[1] = generated ? secret : rt_config_get (cmd.config, "secret");
    cmd.res = rt_db_exec_params (cmd.db,
                                 "UPDATE ingest.inboxes SET previous_secret = secret, secret = $2 "
                                 "WHERE id = $1 RETURNING id",
                                 2, params);
    if (!cmd.res || PQntuples (cmd.res) != 1) {
        if (cmd.res)
            fprintf (stderr, "%s: no such inbox\n", cmd.program);
        else
            s_db_error ("rotate-secret", cmd.db);
        goto cleanup;
    }
    printf ("inbox %s: new secret in force; the previous one is still accepted until the next "
            "rotation\n",
            params[0]);
    if (generated)
        printf ("secret: %s   (shown once)\n", secret);
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

/* disable, enable and remove: one statement on one inbox, by argv[0]. */
static int
s_toggle (int argc, char **argv)
{
    s_cmd_t cmd;
    const char *verb = argv[0];
    const char *params[1];
    const char *sql, *summary;
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
    if (!s_begin (&cmd, summary, s_id_settings, true, argc, argv, &rc))
        goto cleanup;
    if (!s_connect (&cmd))
        goto cleanup;
    params[0] = rt_config_get (cmd.config, "id");
    cmd.res = rt_db_exec_params (cmd.db, sql, 1, params);
    if (!cmd.res || PQntuples (cmd.res) != 1) {
        if (cmd.res)
            fprintf (stderr, "%s: no such inbox\n", cmd.program);
        else
            s_db_error (verb, cmd.db);
        goto cleanup;
    }
    printf ("inbox %s: %sd\n", params[0], verb);
    rc = 0;
cleanup:
    s_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_inbox_commands[] = {
    {.name = "add", .summary = "add an inbox: --id ID --channel CH [--secret S]", .run = s_add},
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
