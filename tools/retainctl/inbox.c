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

static const rt_config_setting_t s_settings[] = {
    {"pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"},
    {"id", NULL, "", "inbox id: lower-case letters, digits, '.', '_', '-'"},
    {"channel", NULL, "",
     "telegram, viber, messenger, instagram, whatsapp, sms, email, webchat or phone"},
    {"secret", NULL, "",
     "the provider's secret (bot token, app secret, signing key, ...); "
     "default: generated"},
    {"config", NULL, "{}", "channel settings as a JSON object (see README)"},
    {"public-url", "RETAIN_INGEST_PUBLIC_URL", "http://127.0.0.1:8780",
     "base URL shown for webhook addresses"},
    {NULL, NULL, NULL, NULL}};

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

int
retainctl_inbox (int argc, char **argv)
{
    char err[512], secret[65];
    const char *verb = argc > 1 ? argv[1] : "";
    rt_config_t *config = rt_config_new ("retainctl inbox",
                                         "Manage inboxes: add, list, rotate-secret, disable, "
                                         "enable, remove.",
                                         s_settings);
    rt_db_t *db = NULL;
    PGresult *res = NULL;
    const char *params[4];
    int rc = 1, r;

    if (!config)
        return 1;
    switch (rt_config_parse (config, argc - 1, argv + 1, err, sizeof err)) {
    case 1:
        rc = 0;
        goto cleanup;
    case -1:
        fprintf (stderr, "retainctl inbox: %s\n", err);
        rc = 2;
        goto cleanup;
    }
    if (strcmp (verb, "add") && strcmp (verb, "list") && strcmp (verb, "rotate-secret") &&
        strcmp (verb, "disable") && strcmp (verb, "enable") && strcmp (verb, "remove")) {
        fprintf (stderr, "usage: retainctl inbox add|list|rotate-secret|disable|enable|remove "
                         "[--flags]   (retainctl inbox --help)\n");
        rc = 2;
        goto cleanup;
    }
    if (strcmp (verb, "list") != 0 && !rt_config_get (config, "id")[0]) {
        fprintf (stderr, "retainctl inbox %s: --id is required\n", verb);
        rc = 2;
        goto cleanup;
    }
    db = rt_db_new (rt_config_get (config, "pg-dsn"), "retainctl");
    if (!db || rt_db_connect (db) != 0) {
        fprintf (stderr, "retainctl inbox: cannot connect: %s\n", db ? rt_db_error (db) : "");
        goto cleanup;
    }
    params[0] = rt_config_get (config, "id");
    if (strcmp (verb, "add") == 0 && !s_valid_id (params[0])) {
        fprintf (stderr,
                 "retainctl inbox add: --id \"%s\" must be 1-63 lower-case letters, "
                 "digits, '.', '_' or '-', starting with a letter or digit\n",
                 params[0]);
        rc = 2;
        goto cleanup;
    }
    if (strcmp (verb, "add") == 0 && !s_valid_channel (rt_config_get (config, "channel"))) {
        fprintf (stderr, "retainctl inbox add: --channel must be one of telegram, viber, "
                         "messenger, instagram, whatsapp, sms, email, webchat, phone\n");
        rc = 2;
        goto cleanup;
    }

    if (strcmp (verb, "add") == 0) {
        json_error_t jerr;
        json_t *cfg = json_loads (rt_config_get (config, "config"), 0, &jerr);
        bool generated = !rt_config_get (config, "secret")[0];
        if (!cfg || !json_is_object (cfg)) {
            fprintf (stderr, "retainctl inbox add: --config is not a JSON object: %s\n",
                     cfg ? "not an object" : jerr.text);
            json_decref (cfg);
            rc = 2;
            goto cleanup;
        }
        json_decref (cfg);
        if (generated && s_generate (secret) != 0)
            goto cleanup;
        params[1] = rt_config_get (config, "channel");
        params[2] = generated ? secret : rt_config_get (config, "secret");
        params[3] = rt_config_get (config, "config");
        res = rt_db_exec_params (db,
                                 "INSERT INTO ingest.inboxes (id, channel, secret, config) "
                                 "VALUES ($1, $2, $3, $4::jsonb)",
                                 4, params);
        if (!res) {
            s_db_error ("add", db);
            goto cleanup;
        }
        printf ("inbox %s (%s) added\nwebhook: ", params[0], params[1]);
        s_print_url (rt_config_get (config, "public-url"), params[0], params[1]);
        printf ("\n");
        if (generated)
            printf ("secret: %s   (shown once; configure it at the provider)\n", secret);
    } else if (strcmp (verb, "list") == 0) {
        res = rt_db_exec_params (db,
                                 "SELECT id, channel, enabled::text, config::text, "
                                 "(previous_secret <> '')::text FROM ingest.inboxes ORDER BY id",
                                 0, NULL);
        if (!res) {
            s_db_error ("list", db);
            goto cleanup;
        }
        printf ("%-24s %-10s %-8s %-9s %-60s %s\n", "ID", "CHANNEL", "ENABLED", "ROTATING",
                "WEBHOOK", "CONFIG");
        for (r = 0; r < PQntuples (res); r++) {
            printf ("%-24s %-10s %-8s %-9s ", PQgetvalue (res, r, 0), PQgetvalue (res, r, 1),
                    PQgetvalue (res, r, 2), PQgetvalue (res, r, 4));
            s_print_url (rt_config_get (config, "public-url"), PQgetvalue (res, r, 0),
                         PQgetvalue (res, r, 1));
            printf ("  %s\n", PQgetvalue (res, r, 3));
        }
    } else if (strcmp (verb, "rotate-secret") == 0) {
        bool generated = !rt_config_get (config, "secret")[0];
        if (generated && s_generate (secret) != 0)
            goto cleanup;
        params[1] = generated ? secret : rt_config_get (config, "secret");
        res = rt_db_exec_params (db,
                                 "UPDATE ingest.inboxes SET previous_secret = secret, secret = $2 "
                                 "WHERE id = $1 RETURNING id",
                                 2, params);
        if (!res || PQntuples (res) != 1) {
            if (res)
                fprintf (stderr, "retainctl inbox rotate-secret: no such inbox\n");
            else
                s_db_error ("rotate-secret", db);
            goto cleanup;
        }
        printf ("inbox %s: new secret in force; the previous one is still accepted until the "
                "next rotation\n",
                params[0]);
        if (generated)
            printf ("secret: %s   (shown once)\n", secret);
    } else {
        const char *sql = strcmp (verb, "remove") == 0
                              ? "DELETE FROM ingest.inboxes WHERE id = $1 RETURNING id"
                          : strcmp (verb, "disable") == 0
                              ? "UPDATE ingest.inboxes SET enabled = false WHERE id = $1 "
                                "RETURNING id"
                              : "UPDATE ingest.inboxes SET enabled = true WHERE id = $1 "
                                "RETURNING id";
        res = rt_db_exec_params (db, sql, 1, params);
        if (!res || PQntuples (res) != 1) {
            if (res)
                fprintf (stderr, "retainctl inbox %s: no such inbox\n", verb);
            else
                s_db_error (verb, db);
            goto cleanup;
        }
        printf ("inbox %s: %sd\n", params[0], verb);
    }
    rc = 0;
cleanup:
    PQclear (res);
    rt_db_destroy (&db);
    rt_config_destroy (&config);
    return rc;
}
