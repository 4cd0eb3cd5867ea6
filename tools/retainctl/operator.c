/*
 * retainctl team and operator: who answers routerd's conversations
 * (routing.teams, routing.operators) and the API keys they sign in with.
 *
 *   team add --id T --name N [--policy balanced|round_robin] [--manager-wait 5m]
 *            [--time-zone Europe/Kyiv]
 *   team list [--json]
 *   operator add [--id ID] --name N --team T [--role operator|supervisor|admin]
 *                [--languages uk,ru] [--skills a,b] [--capacity 8]
 *   operator list [--team T] [--json]
 *   operator disable --id ID
 *   operator rotate-key --id ID
 *
 * An operator's key is common/http's (rt_apikey, service "router",
 * principal the operator's id, role theirs): add makes it in the same
 * transaction as the operator, so there is never an operator whose key was
 * lost nor a key without its operator, and prints the token once; the
 * database keeps only its hash, and routing.operators.key_id names it.
 * rotate-key gives that key a new secret (the old token stops working
 * within the API's cache time); disable stamps disabled_at, marks them
 * offline (so their conversations are rebalanced after the grace period,
 * routing.h) and revokes every key of theirs. There is no enable: a
 * disabled operator's keys stay revoked, and they come back as a new
 * operator id.
 *
 * routing.h has no operator or team functions (routerd only reads these
 * rows), so the statements on these two tables live here, and only here.
 * Times come from rt_clock, as everywhere in schema routing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_apikey.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_tz.h"

/* The API keys' service for routerd's operator API. */
#define S_SERVICE "router"

/* The most languages or skills one operator has, and the most operators
 * one capacity allows: bounds a typo cannot pass. */
#define S_LIST_MAX     32
#define S_CAPACITY_MAX 1000

static const rt_config_setting_t s_team_add_settings[] = {
    RETAINCTL_PG_DSN,
    {"id", NULL, "", "team id: lower-case letters, digits, '.', '_', '-' (required)"},
    {"name", NULL, "", "the team's name as operators see it (required)"},
    {"policy", NULL, "balanced",
     "who gets a conversation its manager cannot take: balanced (fewest open) or round_robin "
     "(least recently assigned)"},
    {"manager-wait", NULL, "5m",
     "how long a conversation waits for the customer's own manager before the policy decides"},
    {"time-zone", NULL, "UTC", "IANA zone of the team's business hours (Europe/Kyiv)"},
    RETAINCTL_END};
static const rt_config_setting_t s_team_list_settings[] = {RETAINCTL_PG_DSN, RETAINCTL_JSON,
                                                           RETAINCTL_END};
static const rt_config_setting_t s_op_add_settings[] = {
    RETAINCTL_PG_DSN,
    {"id", NULL, "",
     "operator id: lower-case letters, digits, '.', '_', '-'; default: generated (op-...)"},
    {"name", NULL, "", "the operator's name (required)"},
    {"team", NULL, "", "the id of their team, made with `retainctl team add` (required)"},
    {"role", NULL, "operator",
     "operator (their team's conversations), supervisor (their team's, and escalations) or "
     "admin (everything)"},
    {"languages", NULL, "", "languages they answer in, comma-separated primary tags (uk,ru,en)"},
    {"skills", NULL, "", "skills conversations may ask for, comma-separated (returns,wholesale)"},
    {"capacity", NULL, "8", "conversations they hold at most at once (0-1000)"},
    RETAINCTL_END};
static const rt_config_setting_t s_op_list_settings[] = {
    RETAINCTL_PG_DSN,
    {"team", NULL, "", "only this team's operators"},
    RETAINCTL_JSON,
    RETAINCTL_END};
static const rt_config_setting_t s_op_id_settings[] = {
    RETAINCTL_PG_DSN, {"id", NULL, "", "operator id (required)"}, RETAINCTL_END};

static const char *s_sql_team_add =
    "INSERT INTO routing.teams (id, name, policy, manager_wait_ms, time_zone, created_at)"
    " VALUES ($1, $2, $3, $4::bigint, $5, to_timestamp($6::bigint / 1000.0))";

static const char *s_sql_team_list =
    "SELECT t.id, t.name, t.policy, t.manager_wait_ms, t.time_zone,"
    " (SELECT count(*) FROM routing.operators o WHERE o.team_id = t.id AND o.disabled_at IS NULL)"
    " FROM routing.teams t ORDER BY t.id";

/* An empty list is the column's '{}'; items were checked to need no
 * quoting. */
static const char *s_sql_op_add =
    "INSERT INTO routing.operators (id, name, team_id, role, languages, skills, capacity,"
    " created_at) VALUES ($1, $2, $3, $4, coalesce(string_to_array(nullif($5, ''), ','), '{}'),"
    " coalesce(string_to_array(nullif($6, ''), ','), '{}'), $7::integer,"
    " to_timestamp($8::bigint / 1000.0))";

static const char *s_sql_op_key = "UPDATE routing.operators SET key_id = $2 WHERE id = $1";

static const char *s_sql_op_list =
    "SELECT id, name, team_id, role, array_to_string(languages, ','),"
    " array_to_string(skills, ','), capacity, open_count, presence, coalesce(key_id, ''),"
    " coalesce((extract(epoch FROM disabled_at) * 1000)::bigint, 0)"
    " FROM routing.operators WHERE ($1 = '' OR team_id = $1) ORDER BY id";

/* The old disabled_at tells whether this run disabled them. */
static const char *s_sql_op_disable =
    "WITH old AS (SELECT id, disabled_at FROM routing.operators WHERE id = $1 FOR UPDATE)"
    " UPDATE routing.operators o SET disabled_at = coalesce(o.disabled_at, to_timestamp($2::bigint "
    "/ 1000.0)), presence = 'offline', presence_at = CASE WHEN o.presence = 'offline' THEN "
    "o.presence_at ELSE to_timestamp($2::bigint / 1000.0) END FROM old WHERE o.id = old.id"
    " RETURNING old.disabled_at IS NULL";

static const char *s_sql_op_get =
    "SELECT coalesce(key_id, ''), disabled_at IS NOT NULL FROM routing.operators WHERE id = $1";

/* --- checks --- */

/* A comma-separated list: every item matches (languages: 2-3 lower-case
 * letters, ISO 639's primary tags; skills: an id's letters), none twice,
 * at most S_LIST_MAX. The empty string is the empty list. */
static bool
s_valid_list (const char *program, const char *flag, const char *list, bool languages)
{
    char copy[4096], *item, *cursor = NULL;
    const char *seen[S_LIST_MAX];
    size_t n = 0, i, k;
    if (!*list)
        return true;
    if (strlen (list) >= sizeof copy)
        goto bad;
    if (list[0] == ',' || list[strlen (list) - 1] == ',' || strstr (list, ",,"))
        goto bad;
    snprintf (copy, sizeof copy, "%s", list);
    for (item = strtok_r (copy, ",", &cursor); item; item = strtok_r (NULL, ",", &cursor)) {
        size_t len = strlen (item);
        if (languages) {
            if (len < 2 || len > 3)
                goto bad;
            for (i = 0; i < len; i++)
                if (item[i] < 'a' || item[i] > 'z')
                    goto bad;
        } else if (!retainctl_id_ok (item))
            goto bad;
        for (k = 0; k < n; k++)
            if (strcmp (seen[k], item) == 0) {
                fprintf (stderr, "%s: --%s names \"%s\" twice\n", program, flag, item);
                return false;
            }
        if (n == S_LIST_MAX) {
            fprintf (stderr, "%s: --%s has more than %d items\n", program, flag, S_LIST_MAX);
            return false;
        }
        seen[n++] = item;
    }
    return true;
bad:
    if (languages)
        fprintf (stderr,
                 "%s: --languages \"%s\" must be comma-separated primary language tags, 2-3 "
                 "lower-case letters each (uk,ru,en)\n",
                 program, list);
    else
        fprintf (stderr,
                 "%s: --skills \"%s\" must be comma-separated words of lower-case letters, "
                 "digits, '.', '_', '-'\n",
                 program, list);
    return false;
}

/* A duration as --manager-wait takes it: "10m", "90s", "250ms". */
static void
s_format_ms (long long ms, char *out, size_t outlen)
{
    if (ms > 0 && ms % 3600000 == 0)
        snprintf (out, outlen, "%lldh", ms / 3600000);
    else if (ms > 0 && ms % 60000 == 0)
        snprintf (out, outlen, "%lldm", ms / 60000);
    else if (ms > 0 && ms % 1000 == 0)
        snprintf (out, outlen, "%llds", ms / 1000);
    else
        snprintf (out, outlen, "%lldms", ms);
}

/* --- team --- */

static int
s_team_add (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[256], wait[24], now[24];
    const char *params[6];
    rt_tz_t *tz = NULL;
    int64_t wait_ms = 0;
    int rc;

    if (!retainctl_cmd_begin (&cmd, "team", "Add a team of operators.", s_team_add_settings, argc,
                              argv, &rc))
        goto cleanup;
    rc = 2;
    params[0] = rt_config_get (cmd.config, "id");
    params[2] = rt_config_get (cmd.config, "policy");
    params[4] = rt_config_get (cmd.config, "time-zone");
    if (!retainctl_cmd_id (&cmd, "id", params[0]) ||
        !retainctl_cmd_required (&cmd, "name", &params[1]))
        goto cleanup;
    if (strcmp (params[2], "balanced") != 0 && strcmp (params[2], "round_robin") != 0) {
        fprintf (stderr, "%s: --policy \"%s\" must be balanced or round_robin\n", cmd.program,
                 params[2]);
        goto cleanup;
    }
    if (rt_config_get_ms (cmd.config, "manager-wait", &wait_ms, err, sizeof err) != 0 ||
        wait_ms < 0) {
        fprintf (stderr, "%s: %s\n", cmd.program,
                 wait_ms < 0 ? "--manager-wait must not be negative" : err);
        goto cleanup;
    }
    tz = rt_tz_new (params[4], err, sizeof err);
    if (!tz) {
        fprintf (stderr, "%s: --time-zone: %s\n", cmd.program, err);
        goto cleanup;
    }
    rc = 1;
    snprintf (wait, sizeof wait, "%lld", (long long)wait_ms);
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    params[3] = wait;
    params[5] = now;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    cmd.res = rt_db_exec_params (cmd.db, s_sql_team_add, 6, params);
    if (!cmd.res) {
        if (strcmp (rt_db_sqlstate (cmd.db), "23505") == 0)
            fprintf (stderr, "%s: team \"%s\" already exists\n", cmd.program, params[0]);
        else
            retainctl_cmd_db_error (&cmd);
        goto cleanup;
    }
    s_format_ms (wait_ms, wait, sizeof wait);
    printf ("team %s (%s) added: policy %s, manager wait %s, time zone %s\n", params[0], params[1],
            params[2], wait, params[4]);
    rc = 0;
cleanup:
    rt_tz_destroy (&tz);
    retainctl_cmd_end (&cmd);
    return rc;
}

/* One row of s_sql_team_list as list --json shows it. */
static json_t *
s_team_json (const PGresult *res, int r)
{
    return json_pack ("{s:s, s:s, s:s, s:I, s:s, s:I}", "id", PQgetvalue (res, r, 0), "name",
                      PQgetvalue (res, r, 1), "policy", PQgetvalue (res, r, 2), "manager_wait_ms",
                      (json_int_t)strtoll (PQgetvalue (res, r, 3), NULL, 10), "time_zone",
                      PQgetvalue (res, r, 4), "operators",
                      (json_int_t)strtoll (PQgetvalue (res, r, 5), NULL, 10));
}

static int
s_team_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char wait[24];
    bool json;
    int rc, r;

    if (!retainctl_cmd_begin_list (&cmd, "team", "List the teams.", s_team_list_settings, argc,
                                   argv, &json, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_team_list, 0, NULL))
        goto cleanup;
    if (json) {
        if (retainctl_print_rows (cmd.res, PQntuples (cmd.res), s_team_json, JSON_COMPACT) == 0)
            rc = 0;
        goto cleanup;
    }
    printf ("%-24s %-24s %-12s %-12s %-24s %s\n", "ID", "NAME", "POLICY", "MANAGER_WAIT",
            "TIME_ZONE", "OPERATORS");
    for (r = 0; r < PQntuples (cmd.res); r++) {
        s_format_ms (strtoll (PQgetvalue (cmd.res, r, 3), NULL, 10), wait, sizeof wait);
        printf ("%-24s %-24s %-12s %-12s %-24s %s\n", PQgetvalue (cmd.res, r, 0),
                PQgetvalue (cmd.res, r, 1), PQgetvalue (cmd.res, r, 2), wait,
                PQgetvalue (cmd.res, r, 4), PQgetvalue (cmd.res, r, 5));
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- operator --- */

/* "op-" and 10 random hex digits, for an operator added without --id. */
static int
s_generate_id (char out[16])
{
    memcpy (out, "op-", 3);
    return retainctl_random_hex (5, out + 3);
}

/* Reads and checks add's flags into params[0..6) (id, name, team, role,
 * languages, skills; the id "" when none was given) and *cap; false, with
 * the reason on stderr, on bad input. */
static bool
s_op_check (const retainctl_cmd_t *cmd, const char **params, int64_t *cap)
{
    params[0] = rt_config_get (cmd->config, "id");
    params[2] = rt_config_get (cmd->config, "team");
    params[3] = rt_config_get (cmd->config, "role");
    params[4] = rt_config_get (cmd->config, "languages");
    params[5] = rt_config_get (cmd->config, "skills");
    if ((*params[0] && !retainctl_cmd_id (cmd, "id", params[0])) ||
        !retainctl_cmd_required (cmd, "name", &params[1]) ||
        !retainctl_cmd_id (cmd, "team", params[2]))
        return false;
    if (strcmp (params[3], "operator") != 0 && strcmp (params[3], "supervisor") != 0 &&
        strcmp (params[3], "admin") != 0) {
        fprintf (stderr, "%s: --role \"%s\" must be operator, supervisor or admin\n", cmd->program,
                 params[3]);
        return false;
    }
    return s_valid_list (cmd->program, "languages", params[4], true) &&
           s_valid_list (cmd->program, "skills", params[5], false) &&
           retainctl_cmd_int (cmd, "capacity", 0, S_CAPACITY_MAX, cap);
}

static int
s_op_add (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512], id[16], capacity[24], now[24];
    char token[RT_APIKEY_TOKEN_SIZE] = "", key[RT_APIKEY_ID_SIZE] = "";
    const char *params[8];
    int64_t cap;
    int rc;

    if (!retainctl_cmd_begin (
            &cmd, "operator",
            "Add an operator and their API key for routerd; prints the key's token once.",
            s_op_add_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!s_op_check (&cmd, params, &cap))
        goto cleanup;
    rc = 1;
    if (!*params[0]) {
        if (s_generate_id (id) != 0) {
            fprintf (stderr, "%s: getrandom failed\n", cmd.program);
            goto cleanup;
        }
        params[0] = id;
    }
    snprintf (capacity, sizeof capacity, "%lld", (long long)cap);
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    params[6] = capacity;
    params[7] = now;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    if (!retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    cmd.res = rt_db_exec_params (cmd.db, s_sql_op_add, 8, params);
    if (!cmd.res) {
        const char *state = rt_db_sqlstate (cmd.db);
        if (strcmp (state, "23503") == 0) {
            fprintf (stderr, "%s: no team \"%s\" (add it first: retainctl team add --id %s ...)\n",
                     cmd.program, params[2], params[2]);
            rc = 2;
        } else if (strcmp (state, "23505") == 0)
            fprintf (stderr, "%s: operator \"%s\" already exists\n", cmd.program, params[0]);
        else
            retainctl_cmd_db_error (&cmd);
        goto cleanup;
    }
    if (rt_apikey_create (cmd.db, S_SERVICE, params[0], params[3], 0, token, key, err,
                          sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    if (!retainctl_cmd_exec (&cmd, s_sql_op_key, 2, (const char *[]){params[0], key}) ||
        !retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
    printf ("operator %s (%s) added to team %s as %s, capacity %s\n", params[0], params[1],
            params[2], params[3], capacity);
    printf ("id: %s\nkey: %s\n", params[0], key);
    printf ("token: %s   (shown once: the operator sends it as \"Authorization: Bearer "
            "<token>\")\n",
            token);
    rc = 0;
cleanup:
    memset (token, 0, sizeof token);
    retainctl_cmd_end (&cmd);
    return rc;
}

/* Whether key is one of keys[0..n) and not revoked. */
static bool
s_key_live (const rt_apikey_info_t *keys, size_t n, const char *key)
{
    size_t i;
    for (i = 0; *key && i < n; i++)
        if (strcmp (keys[i].id, key) == 0)
            return keys[i].revoked_ms == 0;
    return false;
}

/* A comma-separated list as a JSON array of strings. */
static json_t *
s_json_list (const char *list)
{
    json_t *array = json_array ();
    const char *p = list, *comma;
    while (array && *p) {
        comma = strchr (p, ',');
        json_array_append_new (array, json_stringn (p, comma ? (size_t)(comma - p) : strlen (p)));
        p = comma ? comma + 1 : p + strlen (p);
    }
    return array;
}

/* The rows of s_sql_op_list as a JSON array (owned; NULL when out of
 * memory), each key marked live or not from keys[0..nkeys). */
static json_t *
s_op_json (PGresult *res, const rt_apikey_info_t *keys, size_t nkeys)
{
    json_t *all = json_array ();
    int r;
    for (r = 0; all && r < PQntuples (res); r++) {
        const char *key = PQgetvalue (res, r, 9);
        long long disabled = strtoll (PQgetvalue (res, r, 10), NULL, 10);
        json_t *op = json_pack (
            "{s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:s, s:o, s:b, s:b}", "id",
            PQgetvalue (res, r, 0), "name", PQgetvalue (res, r, 1), "team", PQgetvalue (res, r, 2),
            "role", PQgetvalue (res, r, 3), "languages", s_json_list (PQgetvalue (res, r, 4)),
            "skills", s_json_list (PQgetvalue (res, r, 5)), "capacity",
            (json_int_t)strtoll (PQgetvalue (res, r, 6), NULL, 10), "open",
            (json_int_t)strtoll (PQgetvalue (res, r, 7), NULL, 10), "presence",
            PQgetvalue (res, r, 8), "key_id", *key ? json_string (key) : json_null (), "key_live",
            s_key_live (keys, nkeys, key), "disabled", disabled != 0);
        if (op && disabled)
            json_object_set_new (op, "disabled_ms", json_integer ((json_int_t)disabled));
        if (json_array_append_new (all, op) != 0) {
            json_decref (all);
            return NULL;
        }
    }
    return all;
}

/* The same rows as a table. */
static void
s_op_table (PGresult *res, const rt_apikey_info_t *keys, size_t nkeys)
{
    int r;
    printf ("%-20s %-20s %-16s %-10s %-8s %-8s %-8s %-26s %-8s %s\n", "ID", "NAME", "TEAM", "ROLE",
            "CAPACITY", "OPEN", "PRESENCE", "KEY", "DISABLED", "LANGUAGES/SKILLS");
    for (r = 0; r < PQntuples (res); r++) {
        const char *key = PQgetvalue (res, r, 9);
        char keycol[40];
        snprintf (keycol, sizeof keycol, "%s%s", *key ? key : "-",
                  *key && !s_key_live (keys, nkeys, key) ? " (revoked)" : "");
        printf ("%-20s %-20s %-16s %-10s %-8s %-8s %-8s %-26s %-8s %s/%s\n", PQgetvalue (res, r, 0),
                PQgetvalue (res, r, 1), PQgetvalue (res, r, 2), PQgetvalue (res, r, 3),
                PQgetvalue (res, r, 6), PQgetvalue (res, r, 7), PQgetvalue (res, r, 8), keycol,
                strcmp (PQgetvalue (res, r, 10), "0") != 0 ? "yes" : "no", PQgetvalue (res, r, 4),
                PQgetvalue (res, r, 5));
    }
}

static int
s_op_list (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512];
    const char *params[1];
    rt_apikey_info_t *keys = NULL;
    size_t nkeys = 0;
    bool json;
    int rc;

    if (!retainctl_cmd_begin_list (
            &cmd, "operator", "List the operators with their key ids (never a token or its hash).",
            s_op_list_settings, argc, argv, &json, &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    params[0] = rt_config_get (cmd.config, "team");
    if (!retainctl_cmd_exec (&cmd, s_sql_op_list, 1, params))
        goto cleanup;
    if (rt_apikey_list (cmd.db, S_SERVICE, NULL, &keys, &nkeys, err, sizeof err) != 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    if (!json)
        s_op_table (cmd.res, keys, nkeys);
    else if (retainctl_print_json (s_op_json (cmd.res, keys, nkeys), JSON_COMPACT) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    free (keys);
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_op_disable (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512], now[24];
    const char *params[2];
    bool fresh;
    int rc, revoked;

    if (!retainctl_cmd_begin_id (
            &cmd, "operator",
            "Disable an operator: nothing more is assigned to them, their conversations are "
            "rebalanced and every key of theirs is revoked.",
            s_op_id_settings, argc, argv, &params[0], &rc))
        goto cleanup;
    snprintf (now, sizeof now, "%lld", (long long)rt_clock_now_ms ());
    params[1] = now;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    if (!retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_op_disable, 2, params))
        goto cleanup;
    if (PQntuples (cmd.res) != 1) {
        fprintf (stderr, "%s: no operator \"%s\"\n", cmd.program, params[0]);
        goto cleanup;
    }
    fresh = strcmp (PQgetvalue (cmd.res, 0, 0), "t") == 0;
    revoked = rt_apikey_revoke_principal (cmd.db, S_SERVICE, params[0], err, sizeof err);
    if (revoked < 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    if (!retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
    printf ("operator %s %s; %d key%s revoked\n", params[0],
            fresh ? "disabled" : "was already disabled", revoked, revoked == 1 ? "" : "s");
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

static int
s_op_rotate_key (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char err[512], key[RT_APIKEY_ID_SIZE], token[RT_APIKEY_TOKEN_SIZE] = "";
    const char *params[1];
    bool disabled;
    int rc, rotated;

    if (!retainctl_cmd_begin_id (
            &cmd, "operator",
            "Give an operator's key a new secret; prints the new token once, and the old "
            "one stops working.",
            s_op_id_settings, argc, argv, &params[0], &rc))
        goto cleanup;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    if (!retainctl_cmd_exec (&cmd, s_sql_op_get, 1, params))
        goto cleanup;
    if (PQntuples (cmd.res) != 1) {
        fprintf (stderr, "%s: no operator \"%s\"\n", cmd.program, params[0]);
        goto cleanup;
    }
    snprintf (key, sizeof key, "%s", PQgetvalue (cmd.res, 0, 0));
    disabled = strcmp (PQgetvalue (cmd.res, 0, 1), "t") == 0;
    rotated = *key ? rt_apikey_rotate (cmd.db, key, token, err, sizeof err) : 1;
    if (rotated < 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, err);
        goto cleanup;
    }
    if (rotated == 1) {
        fprintf (stderr, "%s: operator \"%s\" has no live key%s\n", cmd.program, params[0],
                 disabled ? " (disabled: their keys were revoked)" : "");
        goto cleanup;
    }
    printf ("operator %s: key %s has a new secret; the old token no longer works\n", params[0],
            key);
    printf ("token: %s   (shown once)\n", token);
    rc = 0;
cleanup:
    memset (token, 0, sizeof token);
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_team_commands[] = {
    {.name = "add",
     .summary = "add a team: --id T --name N [--policy P] [--manager-wait 5m] [--time-zone Z]",
     .run = s_team_add},
    {.name = "list", .summary = "list the teams", .run = s_team_list},
    {.name = "hours",
     .summary = "a team's business hours for its SLA: --id T --file F|- or --clear",
     .run = retainctl_team_hours},
    {.name = NULL}};

const retainctl_command_t retainctl_operator_commands[] = {
    {.name = "add",
     .summary = "add an operator and their API key: --name N --team T [--role R] ...",
     .run = s_op_add},
    {.name = "list", .summary = "list the operators and their key ids", .run = s_op_list},
    {.name = "disable",
     .summary = "disable an operator (--id) and revoke their keys",
     .run = s_op_disable},
    {.name = "rotate-key",
     .summary = "a new token for an operator's key (--id); the old stops working",
     .run = s_op_rotate_key},
    {.name = NULL}};
