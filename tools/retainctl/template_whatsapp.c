/*
 * retainctl template whatsapp: which of Meta's approved WhatsApp templates
 * a notification goes as outside WhatsApp's 24-hour window
 * (notify.whatsapp_templates, notify 009).
 *
 *   template whatsapp set --name T --locale L --wa-name N --wa-language C
 *                         [--params '["{{name}}", "{{order_id}}"]']
 *   template whatsapp list [--json]
 *   template whatsapp remove --name T --locale L
 *
 * A shop has each template approved by Meta (name, language, a body with
 * {{1}}, {{2}}, ...) and maps retain's template (name and locale) to it;
 * --params fills the body's parameters in order, each written in retain's
 * template language and rendered with the notification's variables. set
 * refuses what notifyd could not send: a name or language Meta would not
 * take, a parameter that does not parse, a retain template that has no
 * variant in that locale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_buf.h"
#include "rt_config.h"
#include "rt_db.h"
#include "template.h"

#define S_PARAMS_MAX 32 /* body parameters at most, as notifyd's sender reads them */

static const rt_config_setting_t s_set_settings[] = {
    RETAINCTL_PG_DSN,
    {"name", NULL, "", "retain's template (required)"},
    {"locale", NULL, "", "its locale, as stored (required)"},
    {"wa-name", NULL, "", "the approved template's name at Meta (required)"},
    {"wa-language", NULL, "", "its language code at Meta, e.g. uk, en_US (required)"},
    {"params", NULL, "[]",
     "the body's parameters {{1}}, {{2}}, ... in order: a JSON array of strings in retain's "
     "template language"},
    RETAINCTL_END};
static const rt_config_setting_t s_list_settings[] = {RETAINCTL_PG_DSN, RETAINCTL_JSON,
                                                      RETAINCTL_END};
static const rt_config_setting_t s_remove_settings[] = {
    RETAINCTL_PG_DSN,
    {"name", NULL, "", "retain's template (required)"},
    {"locale", NULL, "", "its locale (required)"},
    RETAINCTL_END};

static const char *s_sql_variant =
    "SELECT 1 FROM notify.templates WHERE name = $1 AND locale = $2 LIMIT 1";

static const char *s_sql_set =
    "INSERT INTO notify.whatsapp_templates (template, locale, wa_name, wa_language, params)"
    " VALUES ($1, $2, $3, $4, $5::text[]) ON CONFLICT (template, locale) DO UPDATE"
    " SET wa_name = EXCLUDED.wa_name, wa_language = EXCLUDED.wa_language,"
    " params = EXCLUDED.params RETURNING (xmax = 0)";

static const char *s_sql_list =
    "SELECT template, locale, wa_name, wa_language, array_to_json(params)::text"
    " FROM notify.whatsapp_templates ORDER BY template, locale";

static const char *s_sql_remove =
    "DELETE FROM notify.whatsapp_templates WHERE template = $1 AND locale = $2 RETURNING 1";

/* Whether s is made of the characters in set, 1 to max bytes. */
static bool
s_made_of (const char *s, const char *set, size_t max)
{
    size_t n = strlen (s);
    return n > 0 && n <= max && strspn (s, set) == n;
}

/* --params as a PostgreSQL text[] literal into out, each parsed as a
 * template; false with the reason on stderr. */
static bool
s_params (const retainctl_cmd_t *cmd, rt_buf_t *out)
{
    const char *text = rt_config_get (cmd->config, "params");
    json_error_t jerr;
    json_t *doc = json_loads (text, 0, &jerr), *v;
    size_t i;
    bool ok = false;
    if (!json_is_array (doc)) {
        fprintf (stderr, "%s: --params must be a JSON array of strings (%s)\n", cmd->program,
                 doc ? "not an array" : jerr.text);
        goto cleanup;
    }
    if (json_array_size (doc) > S_PARAMS_MAX) {
        fprintf (stderr, "%s: --params has %zu parameters; at most %d\n", cmd->program,
                 json_array_size (doc), S_PARAMS_MAX);
        goto cleanup;
    }
    rt_buf_array_begin (out);
    json_array_foreach (doc, i, v)
    {
        template_error_t perr;
        template_t *t;
        char why[256];
        if (!json_is_string (v)) {
            fprintf (stderr, "%s: --params: parameter %zu is not a string\n", cmd->program, i + 1);
            goto cleanup;
        }
        t = template_parse (json_string_value (v), json_string_length (v), &perr);
        if (!t) {
            template_error_format (&perr, why, sizeof why);
            fprintf (stderr, "%s: --params: parameter %zu does not parse: %s\n", cmd->program,
                     i + 1, why);
            goto cleanup;
        }
        template_destroy (&t);
        rt_buf_array_text (out, json_string_value (v));
    }
    rt_buf_array_end (out);
    ok = !out->failed;
cleanup:
    json_decref (doc);
    return ok;
}

static int
s_set (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *name, *locale, *wa_name, *wa_language;
    rt_buf_t params = {0};
    int rc;
    if (!retainctl_cmd_begin (&cmd, "template whatsapp",
                              "Map a template to the WhatsApp template Meta approved for it.",
                              s_set_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "name", &name) ||
        !retainctl_cmd_required (&cmd, "locale", &locale) ||
        !retainctl_cmd_required (&cmd, "wa-name", &wa_name) ||
        !retainctl_cmd_required (&cmd, "wa-language", &wa_language))
        goto cleanup;
    /* As notify 009's checks, and Meta's own rules for the two. */
    if (!s_made_of (wa_name, "abcdefghijklmnopqrstuvwxyz0123456789_", 512)) {
        fprintf (stderr,
                 "%s: --wa-name \"%s\" is no WhatsApp template name (lower-case letters, digits "
                 "and _)\n",
                 cmd.program, wa_name);
        goto cleanup;
    }
    if (!((strlen (wa_language) == 2 || strlen (wa_language) == 3 || strlen (wa_language) == 5 ||
           strlen (wa_language) == 6) &&
          s_made_of (wa_language, "abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ", 6))) {
        fprintf (stderr,
                 "%s: --wa-language \"%s\" is no WhatsApp language code (uk, en_US, pt_BR)\n",
                 cmd.program, wa_language);
        goto cleanup;
    }
    if (!s_params (&cmd, &params))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_variant, 2, (const char *[]){name, locale}))
        goto cleanup;
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr,
                 "%s: no template %s has a variant in locale %s (retainctl template list)\n",
                 cmd.program, name, locale);
        rc = 2;
        goto cleanup;
    }
    if (!retainctl_cmd_exec (&cmd, s_sql_set, 5,
                             (const char *[]){name, locale, wa_name, wa_language, params.data})) {
        /* A code the table's check refuses (uk_ua, e.g.) is the user's. */
        rc = 2;
        goto cleanup;
    }
    printf ("template %s (%s) %s as WhatsApp's %s (%s) outside the 24-hour window\n", name, locale,
            strcmp (PQgetvalue (cmd.res, 0, 0), "t") == 0 ? "goes" : "now goes", wa_name,
            wa_language);
    rc = 0;
cleanup:
    rt_buf_free (&params);
    retainctl_cmd_end (&cmd);
    return rc;
}

static json_t *
s_row_json (const PGresult *r, int i)
{
    json_t *params = json_loads (PQgetvalue (r, i, 4), 0, NULL);
    return json_pack ("{s:s, s:s, s:s, s:s, s:o}", "template", PQgetvalue (r, i, 0), "locale",
                      PQgetvalue (r, i, 1), "wa_name", PQgetvalue (r, i, 2), "wa_language",
                      PQgetvalue (r, i, 3), "params", params ? params : json_array ());
}

static int
s_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    bool json;
    int rc;
    if (!retainctl_cmd_begin_list (&cmd, "template whatsapp",
                                   "List the templates mapped to WhatsApp's approved ones.",
                                   s_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_list, 0, NULL))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_row_json, JSON_COMPACT) != 0)
            goto cleanup;
    } else {
        printf ("%-32s %-8s %-32s %-8s %s\n", "NAME", "LOCALE", "WHATSAPP", "LANGUAGE", "PARAMS");
        for (int i = 0; i < PQntuples (cmd.res); i++)
            printf ("%-32s %-8s %-32s %-8s %s\n", PQgetvalue (cmd.res, i, 0),
                    PQgetvalue (cmd.res, i, 1), PQgetvalue (cmd.res, i, 2),
                    PQgetvalue (cmd.res, i, 3), PQgetvalue (cmd.res, i, 4));
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_remove (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *name, *locale;
    int rc;
    if (!retainctl_cmd_begin (&cmd, "template whatsapp",
                              "Remove a template's WhatsApp mapping: outside the window WhatsApp "
                              "is passed over for it again.",
                              s_remove_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_required (&cmd, "name", &name) ||
        !retainctl_cmd_required (&cmd, "locale", &locale))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_MIGRATE_HINT) ||
        !retainctl_cmd_exec (&cmd, s_sql_remove, 2, (const char *[]){name, locale}))
        goto cleanup;
    if (PQntuples (cmd.res) == 0) {
        fprintf (stderr, "%s: template %s (%s) has no WhatsApp mapping\n", cmd.program, name,
                 locale);
        goto cleanup;
    }
    printf ("template %s (%s) no longer goes as a WhatsApp template\n", name, locale);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_template_whatsapp_commands[] = {
    {.name = "set",
     .summary = "map a template to WhatsApp's approved one: --name --locale --wa-name "
                "--wa-language [--params]",
     .run = s_set},
    {.name = "list", .summary = "list the mappings", .run = s_list},
    {.name = "remove", .summary = "remove a mapping: --name --locale", .run = s_remove},
    {.name = NULL}};
