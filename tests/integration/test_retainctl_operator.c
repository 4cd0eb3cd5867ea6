/*
 * retainctl team and operator against a real PostgreSQL, as an
 * administrator runs them: teams added and listed; an operator added with
 * a key whose token is printed once and kept nowhere (only the SHA-256 of
 * its secret part matches the stored hash, and no row holds the token);
 * the listing showing key ids and never a secret; a rotation giving a new
 * token that matches while the old one stops matching; disabling revoking
 * every key; and each bad input refused with its reason and the exit
 * status the README gives, writing nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "rt_test.h"

static struct {
    char dsn[1024]; /* the test's database, migrated */
    PGconn *conn;   /* the test's own look at it */
} s;

/* Runs retainctl with args (NULL-terminated); its status, and its output
 * into *out (owned) when out is not NULL. */
static int
s_ctl (char **out, const char *first, ...)
{
    const char *args[32];
    size_t n = 0;
    va_list ap;
    va_start (ap, first);
    for (const char *a = first; a && n < 31; a = va_arg (ap, const char *))
        args[n++] = a;
    va_end (ap);
    args[n] = NULL;
    return rt_test_retainctl (s.dsn, args, out);
}

/* One value of a query with text parameters ("" for NULL); owned. */
static char *
s_value (const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams (s.conn, sql, n, NULL, params, NULL, NULL, 0);
    char *v;
    if (PQresultStatus (res) != PGRES_TUPLES_OK || PQntuples (res) != 1)
        fail_msg ("%s: %s (%d rows)", sql, PQresultErrorMessage (res), PQntuples (res));
    v = strdup (PQgetvalue (res, 0, 0));
    PQclear (res);
    assert_non_null (v);
    return v;
}

static long long
s_count (const char *sql, int n, const char *const *params)
{
    char *v = s_value (sql, n, params);
    long long c = strtoll (v, NULL, 10);
    free (v);
    return c;
}

/* The value after "<label>: " on a line of text, up to a space or the
 * line's end, into out. */
static void
s_field (const char *text, const char *label, char *out, size_t outlen)
{
    char head[64];
    const char *p;
    size_t len;
    snprintf (head, sizeof head, "\n%s: ", label);
    p = strstr (text, head);
    if (!p && strncmp (text, head + 1, strlen (head + 1)) == 0)
        p = text - 1;
    if (!p)
        fail_msg ("no \"%s:\" in:\n%s", label, text);
    p += strlen (head);
    len = strcspn (p, " \n");
    assert_true (len > 0 && len < outlen);
    memcpy (out, p, len);
    out[len] = '\0';
}

/* Whether token's secret part hashes to the stored hash of its live key,
 * as the API's check does (the key id is the token up to its second '_'). */
static bool
s_token_matches (const char *token)
{
    char id[32];
    const char *sep = strchr (token + 3, '_');
    assert_non_null (sep);
    assert_true ((size_t)(sep - token) < sizeof id);
    memcpy (id, token, (size_t)(sep - token));
    id[sep - token] = '\0';
    const char *params[2] = {id, sep + 1};
    return s_count ("SELECT count(*) FROM apikey.keys WHERE id = $1 AND revoked_at IS NULL"
                    " AND service = 'router' AND hash = sha256(convert_to($2, 'UTF8'))",
                    2, params) == 1;
}

/* Rows anywhere in the two tables whose text holds needle. */
static long long
s_rows_holding (const char *needle)
{
    const char *params[1] = {needle};
    return s_count ("SELECT (SELECT count(*) FROM apikey.keys k WHERE strpos(k::text, $1) > 0)"
                    " + (SELECT count(*) FROM routing.operators o WHERE strpos(o::text, $1) > 0)",
                    1, params);
}

static int
s_setup (void **state)
{
    char *out = NULL;
    (void)state;
    rt_test_db_create ("retainctl_operator", s.dsn, sizeof s.dsn);
    s.conn = PQconnectdb (s.dsn);
    assert_int_equal (PQstatus (s.conn), CONNECTION_OK);
    if (s_ctl (&out, "migrate", NULL) != 0)
        fail_msg ("retainctl migrate:\n%s", out);
    free (out);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    PQfinish (s.conn);
    return 0;
}

static void
test_teams (void **state)
{
    char *out = NULL;
    (void)state;
    assert_int_equal (s_ctl (&out, "team", "add", "--id", "kyiv", "--name", "Kyiv shop", "--policy",
                             "round_robin", "--manager-wait", "10m", "--time-zone", "Europe/Kyiv",
                             NULL),
                      0);
    assert_non_null (strstr (out, "team kyiv"));
    free (out);
    const char *id[1] = {"kyiv"};
    char *row =
        s_value ("SELECT name || '|' || policy || '|' || manager_wait_ms || '|' || time_zone"
                 " FROM routing.teams WHERE id = $1",
                 1, id);
    assert_string_equal (row, "Kyiv shop|round_robin|600000|Europe/Kyiv");
    free (row);

    /* The defaults: balanced, five minutes, UTC. */
    assert_int_equal (s_ctl (NULL, "team", "add", "--id", "web", "--name", "Web", NULL), 0);
    id[0] = "web";
    row = s_value ("SELECT policy || '|' || manager_wait_ms || '|' || time_zone"
                   " FROM routing.teams WHERE id = $1",
                   1, id);
    assert_string_equal (row, "balanced|300000|UTC");
    free (row);

    assert_int_equal (s_ctl (&out, "team", "list", NULL), 0);
    assert_non_null (strstr (out, "kyiv"));
    assert_non_null (strstr (out, "round_robin"));
    assert_non_null (strstr (out, "10m"));
    assert_non_null (strstr (out, "Europe/Kyiv"));
    assert_non_null (strstr (out, "web"));
    free (out);

    assert_int_equal (s_ctl (&out, "team", "list", "--json", NULL), 0);
    json_error_t jerr;
    json_t *all = json_loads (out, 0, &jerr);
    if (!json_is_array (all))
        fail_msg ("team list --json is no JSON array: %s\n%s", jerr.text, out);
    assert_int_equal (json_array_size (all), 2);
    json_t *kyiv = json_array_get (all, 0);
    assert_string_equal (json_string_value (json_object_get (kyiv, "id")), "kyiv");
    assert_int_equal (json_integer_value (json_object_get (kyiv, "manager_wait_ms")), 600000);
    assert_string_equal (json_string_value (json_object_get (kyiv, "time_zone")), "Europe/Kyiv");
    json_decref (all);
    free (out);

    /* A second team of the same id is a failure, not a usage error. */
    assert_int_equal (s_ctl (&out, "team", "add", "--id", "kyiv", "--name", "Again", NULL), 1);
    assert_non_null (strstr (out, "already exists"));
    free (out);

    static const struct {
        const char *flag, *value, *says;
    } bad[] = {
        {"--policy", "fifo", "--policy"},  {"--time-zone", "Mars/Olympus", "Mars/Olympus"},
        {"--time-zone", "GMT+2", "GMT+2"}, {"--manager-wait", "soon", "--manager-wait"},
        {"--id", "Kyiv Shop", "--id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *flag = strcmp (bad[i].flag, "--id") == 0 ? "--name" : bad[i].flag;
        const char *value = strcmp (bad[i].flag, "--id") == 0 ? "X" : bad[i].value;
        const char *idv = strcmp (bad[i].flag, "--id") == 0 ? bad[i].value : "bad";
        int rc = s_ctl (&out, "team", "add", "--id", idv, "--name", "X", flag, value, NULL);
        if (rc != 2 || !strstr (out, bad[i].says))
            fail_msg ("team add %s %s: status %d:\n%s", bad[i].flag, bad[i].value, rc, out);
        free (out);
    }
    assert_int_equal (s_ctl (&out, "team", "add", "--id", "noname", NULL), 2);
    assert_non_null (strstr (out, "--name"));
    free (out);
    assert_int_equal (s_count ("SELECT count(*) FROM routing.teams", 0, NULL), 2);
}

static void
test_operator_keys (void **state)
{
    char *out = NULL, token[128], key[32], fresh[128], opid[80];
    (void)state;
    assert_int_equal (s_ctl (NULL, "team", "add", "--id", "support", "--name", "Support", NULL), 0);
    assert_int_equal (s_ctl (&out, "operator", "add", "--id", "olena", "--name", "Олена Коваль",
                             "--team", "support", "--role", "supervisor", "--languages", "uk,ru",
                             "--skills", "returns,wholesale", "--capacity", "5", NULL),
                      0);
    s_field (out, "key", key, sizeof key);
    s_field (out, "token", token, sizeof token);
    s_field (out, "id", opid, sizeof opid);
    assert_string_equal (opid, "olena");
    free (out);
    /* The token is the key's id and a secret; only the secret's hash is
     * kept, and that hash is the one the token gives. */
    assert_int_equal (strncmp (token, key, strlen (key)), 0);
    assert_int_equal (token[strlen (key)], '_');
    assert_true (s_token_matches (token));
    assert_int_equal (s_rows_holding (token + strlen (key) + 1), 0);
    const char *params[2] = {"olena", key};
    char *row = s_value ("SELECT o.name || '|' || o.team_id || '|' || o.role || '|' ||"
                         " array_to_string(o.languages, ',') || '|' ||"
                         " array_to_string(o.skills, ',') || '|' || o.capacity || '|' ||"
                         " k.principal || '|' || k.role"
                         " FROM routing.operators o JOIN apikey.keys k ON k.id = o.key_id"
                         " WHERE o.id = $1 AND k.id = $2",
                         2, params);
    assert_string_equal (row, "Олена Коваль|support|supervisor|uk,ru|returns,wholesale|5|"
                              "olena|supervisor");
    free (row);

    /* Without --id, an id is made and printed; the defaults apply. */
    assert_int_equal (s_ctl (&out, "operator", "add", "--name", "Petro", "--team", "support", NULL),
                      0);
    s_field (out, "id", opid, sizeof opid);
    free (out);
    assert_int_equal (strncmp (opid, "op-", 3), 0);
    params[0] = opid;
    row = s_value ("SELECT role || '|' || capacity || '|' || (key_id IS NOT NULL)"
                   " FROM routing.operators WHERE id = $1",
                   1, params);
    assert_string_equal (row, "operator|8|true");
    free (row);

    /* The listing names the key, never its token. */
    assert_int_equal (s_ctl (&out, "operator", "list", NULL), 0);
    assert_non_null (strstr (out, "olena"));
    assert_non_null (strstr (out, "supervisor"));
    assert_non_null (strstr (out, key));
    assert_non_null (strstr (out, opid));
    assert_null (strstr (out, token));
    free (out);
    assert_int_equal (s_ctl (&out, "operator", "list", "--json", NULL), 0);
    assert_null (strstr (out, token + strlen (key) + 1));
    json_error_t jerr;
    json_t *all = json_loads (out, 0, &jerr), *olena = NULL;
    if (!json_is_array (all))
        fail_msg ("operator list --json is no JSON array: %s\n%s", jerr.text, out);
    for (size_t i = 0; i < json_array_size (all); i++)
        if (strcmp (json_string_value (json_object_get (json_array_get (all, i), "id")), "olena") ==
            0)
            olena = json_array_get (all, i);
    assert_non_null (olena);
    assert_string_equal (json_string_value (json_object_get (olena, "name")), "Олена Коваль");
    assert_string_equal (json_string_value (json_object_get (olena, "team")), "support");
    assert_string_equal (json_string_value (json_object_get (olena, "key_id")), key);
    assert_true (json_is_true (json_object_get (olena, "key_live")));
    assert_true (json_is_false (json_object_get (olena, "disabled")));
    assert_int_equal (json_integer_value (json_object_get (olena, "capacity")), 5);
    assert_string_equal (
        json_string_value (json_array_get (json_object_get (olena, "languages"), 1)), "ru");
    json_decref (all);
    free (out);

    /* A rotation: a new token for the same key; the old one stops
     * matching. */
    assert_int_equal (s_ctl (&out, "operator", "rotate-key", "--id", "olena", NULL), 0);
    s_field (out, "token", fresh, sizeof fresh);
    free (out);
    assert_string_not_equal (fresh, token);
    assert_int_equal (strncmp (fresh, key, strlen (key)), 0);
    assert_true (s_token_matches (fresh));
    assert_false (s_token_matches (token));
    assert_int_equal (s_rows_holding (fresh + strlen (key) + 1), 0);

    /* Disabling stamps the operator and revokes the key; the other
     * operator's key stays live. */
    assert_int_equal (s_ctl (&out, "operator", "disable", "--id", "olena", NULL), 0);
    assert_non_null (strstr (out, "1 key revoked"));
    free (out);
    assert_false (s_token_matches (fresh));
    params[0] = "olena";
    assert_int_equal (s_count ("SELECT count(*) FROM routing.operators WHERE id = $1"
                               " AND disabled_at IS NOT NULL AND presence = 'offline'",
                               1, params),
                      1);
    assert_int_equal (s_count ("SELECT count(*) FROM apikey.keys WHERE principal = $1"
                               " AND revoked_at IS NULL",
                               1, params),
                      0);
    params[0] = opid;
    assert_int_equal (s_count ("SELECT count(*) FROM apikey.keys WHERE principal = $1"
                               " AND revoked_at IS NULL",
                               1, params),
                      1);
    assert_int_equal (s_ctl (&out, "operator", "list", "--team", "support", NULL), 0);
    assert_non_null (strstr (out, "(revoked)"));
    free (out);
    /* Disabling again changes nothing and says so. */
    assert_int_equal (s_ctl (&out, "operator", "disable", "--id", "olena", NULL), 0);
    assert_non_null (strstr (out, "already disabled"));
    free (out);
    /* A disabled operator has no live key to rotate. */
    assert_int_equal (s_ctl (&out, "operator", "rotate-key", "--id", "olena", NULL), 1);
    assert_non_null (strstr (out, "no live key"));
    assert_null (strstr (out, "token:"));
    free (out);
    assert_false (s_token_matches (fresh));
}

static void
test_operator_bad_input (void **state)
{
    char *out = NULL;
    (void)state;
    assert_int_equal (s_ctl (NULL, "team", "add", "--id", "night", "--name", "Night", NULL), 0);
    assert_int_equal (
        s_ctl (NULL, "operator", "add", "--id", "ivan", "--name", "Ivan", "--team", "night", NULL),
        0);
    long long operators = s_count ("SELECT count(*) FROM routing.operators", 0, NULL);
    long long keys = s_count ("SELECT count(*) FROM apikey.keys", 0, NULL);

    /* An unknown team: a usage error naming it, and no key made. */
    int rc = s_ctl (&out, "operator", "add", "--id", "taras", "--name", "Taras", "--team",
                    "nowhere", NULL);
    if (rc != 2 || !strstr (out, "no team \"nowhere\"") || strstr (out, "token:"))
        fail_msg ("unknown team: status %d:\n%s", rc, out);
    free (out);
    /* A duplicate id: a failure, and the first operator's key untouched. */
    rc = s_ctl (&out, "operator", "add", "--id", "ivan", "--name", "Ivan 2", "--team", "night",
                NULL);
    if (rc != 1 || !strstr (out, "\"ivan\" already exists") || strstr (out, "token:"))
        fail_msg ("duplicate id: status %d:\n%s", rc, out);
    free (out);

    static const struct {
        const char *flag, *value, *says;
    } bad[] = {
        {"--role", "boss", "--role"},
        {"--role", "", "--role"},
        {"--capacity", "-1", "--capacity"},
        {"--capacity", "1001", "--capacity"},
        {"--capacity", "lots", "--capacity"},
        {"--languages", "ukrainian", "--languages"},
        {"--languages", "UK", "--languages"},
        {"--languages", "uk,,ru", "--languages"},
        {"--languages", "uk,", "--languages"},
        {"--languages", "uk,uk", "twice"},
        {"--skills", "Returns & refunds", "--skills"},
        {"--id", "Ivan Petrenko", "--id"},
        {"--id", "'; DROP TABLE routing.operators; --", "--id"},
        {"--team", "", "--team"},
        {"--name", "", "--name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* Every other flag valid; the one given last wins. */
        rc = s_ctl (&out, "operator", "add", "--id", "taras", "--name", "Taras", "--team", "night",
                    bad[i].flag, bad[i].value, NULL);
        if (rc != 2 || !strstr (out, bad[i].says) || strstr (out, "token:"))
            fail_msg ("operator add %s \"%s\": status %d:\n%s", bad[i].flag, bad[i].value, rc, out);
        free (out);
    }
    assert_int_equal (s_count ("SELECT count(*) FROM routing.operators", 0, NULL), operators);
    assert_int_equal (s_count ("SELECT count(*) FROM apikey.keys", 0, NULL), keys);

    /* Unknown operators. */
    static const char *const verbs[] = {"disable", "rotate-key"};
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++) {
        rc = s_ctl (&out, "operator", verbs[i], "--id", "ghost", NULL);
        if (rc != 1 || !strstr (out, "no operator \"ghost\""))
            fail_msg ("operator %s --id ghost: status %d:\n%s", verbs[i], rc, out);
        free (out);
        rc = s_ctl (&out, "operator", verbs[i], NULL);
        if (rc != 2 || !strstr (out, "--id is required"))
            fail_msg ("operator %s without --id: status %d:\n%s", verbs[i], rc, out);
        free (out);
    }
    assert_int_equal (s_count ("SELECT count(*) FROM apikey.keys WHERE revoked_at IS NOT NULL"
                               " AND principal = 'ivan'",
                               0, NULL),
                      0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_teams),
        cmocka_unit_test (test_operator_keys),
        cmocka_unit_test (test_operator_bad_input),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
