/*
 * cmd: the run of one retainctl command (cmd.h): its name, flags,
 * connection and result, and the checks and messages every command
 * words alike.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_codec.h"
#include "rt_utf8.h"
#include "rt_uuid.h"

bool
retainctl_cmd_begin (retainctl_cmd_t *cmd, const char *group, const char *summary,
                     const rt_config_setting_t *settings, int argc, char **argv, int *rc)
{
    memset (cmd, 0, sizeof *cmd);
    snprintf (cmd->program, sizeof cmd->program, "retainctl %s%s%s", group ? group : "",
              group ? " " : "", argv[0]);
    *rc = 1;
    cmd->config = rt_config_new (cmd->program, summary, settings);
    if (!cmd->config)
        return false;
    return retainctl_parse (cmd->config, cmd->program, argc, argv, rc);
}

bool
retainctl_cmd_begin_id (retainctl_cmd_t *cmd, const char *group, const char *summary,
                        const rt_config_setting_t *settings, int argc, char **argv, const char **id,
                        int *rc)
{
    *id = NULL;
    if (!retainctl_cmd_begin (cmd, group, summary, settings, argc, argv, rc))
        return false;
    *id = rt_config_get (cmd->config, "id");
    *rc = retainctl_cmd_id (cmd, "id", *id) ? 1 : 2;
    return *rc == 1;
}

bool
retainctl_cmd_begin_list (retainctl_cmd_t *cmd, const char *group, const char *summary,
                          const rt_config_setting_t *settings, int argc, char **argv, bool *json,
                          int *rc)
{
    *json = false;
    if (!retainctl_cmd_begin (cmd, group, summary, settings, argc, argv, rc))
        return false;
    *rc = retainctl_cmd_bool (cmd, "json", json) ? 1 : 2;
    return *rc == 1;
}

bool
retainctl_cmd_connect (retainctl_cmd_t *cmd, unsigned db_errors)
{
    cmd->db_errors = db_errors;
    cmd->db = rt_db_new (rt_config_get (cmd->config, "pg-dsn"), "retainctl");
    if (!cmd->db || rt_db_connect (cmd->db) != 0) {
        fprintf (stderr, "%s: cannot connect: %s\n", cmd->program,
                 cmd->db ? rt_db_error (cmd->db) : "");
        return false;
    }
    return true;
}

void
retainctl_cmd_end (retainctl_cmd_t *cmd)
{
    PQclear (cmd->res);
    cmd->res = NULL;
    rt_db_destroy (&cmd->db);
    rt_config_destroy (&cmd->config);
}

void
retainctl_cmd_db_error (const retainctl_cmd_t *cmd)
{
    const char *msg = rt_db_error (cmd->db);
    const char *detail =
        (cmd->db_errors & RETAINCTL_DB_NO_DETAIL) ? strstr (msg, "\nDETAIL") : NULL;
    bool hint = (cmd->db_errors & RETAINCTL_DB_MIGRATE_HINT) &&
                strcmp (rt_db_sqlstate (cmd->db), "42P01") == 0;
    fprintf (stderr, "%s: %.*s%s\n", cmd->program,
             (int)(detail ? (size_t)(detail - msg) : strlen (msg)), msg,
             hint ? " (has `retainctl migrate` run?)" : "");
}

bool
retainctl_cmd_exec (retainctl_cmd_t *cmd, const char *sql, int nparams, const char *const *params)
{
    PQclear (cmd->res);
    cmd->res = retainctl_cmd_query (cmd, sql, nparams, params);
    return cmd->res != NULL;
}

PGresult *
retainctl_cmd_query (const retainctl_cmd_t *cmd, const char *sql, int nparams,
                     const char *const *params)
{
    PGresult *res = rt_db_exec_params (cmd->db, sql, nparams, params);
    if (!res)
        retainctl_cmd_db_error (cmd);
    return res;
}

/* An rt_db call's status (0 or -1) as true or false, its error printed. */
static bool
s_db_ok (const retainctl_cmd_t *cmd, int status)
{
    if (status != 0)
        retainctl_cmd_db_error (cmd);
    return status == 0;
}

bool
retainctl_cmd_tx_begin (const retainctl_cmd_t *cmd)
{
    return s_db_ok (cmd, rt_db_begin (cmd->db));
}

bool
retainctl_cmd_tx_commit (const retainctl_cmd_t *cmd)
{
    return s_db_ok (cmd, rt_db_commit (cmd->db));
}

/* An rt_config getter's status (0 or -1) as true or false, its err
 * printed. */
static bool
s_flag_ok (const retainctl_cmd_t *cmd, int status, const char *err)
{
    if (status != 0)
        fprintf (stderr, "%s: %s\n", cmd->program, err);
    return status == 0;
}

bool
retainctl_cmd_bool (const retainctl_cmd_t *cmd, const char *flag, bool *out)
{
    char err[256] = "";
    return s_flag_ok (cmd, rt_config_get_bool (cmd->config, flag, out, err, sizeof err), err);
}

bool
retainctl_cmd_int (const retainctl_cmd_t *cmd, const char *flag, int64_t min, int64_t max,
                   int64_t *out)
{
    char err[256] = "";
    return s_flag_ok (cmd, rt_config_get_int (cmd->config, flag, min, max, out, err, sizeof err),
                      err);
}

bool
retainctl_cmd_required (const retainctl_cmd_t *cmd, const char *flag, const char **value)
{
    *value = rt_config_get (cmd->config, flag);
    if (**value)
        return true;
    fprintf (stderr, "%s: --%s is required\n", cmd->program, flag);
    return false;
}

bool
retainctl_id_ok (const char *id)
{
    size_t i, n = strlen (id);
    if (n == 0 || n > RETAINCTL_ID_MAX ||
        !((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9')))
        return false;
    for (i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool
retainctl_cmd_id (const retainctl_cmd_t *cmd, const char *flag, const char *id)
{
    if (retainctl_id_ok (id))
        return true;
    if (!*id)
        fprintf (stderr, "%s: --%s is required\n", cmd->program, flag);
    else
        fprintf (stderr,
                 "%s: --%s \"%s\" must be 1-%d lower-case letters, digits, '.', '_' or '-', "
                 "starting with a letter or digit\n",
                 cmd->program, flag, id, RETAINCTL_ID_MAX);
    return false;
}

bool
retainctl_cmd_uuid (const retainctl_cmd_t *cmd, const char *flag, const char *what,
                    const char **value)
{
    rt_uuid_t u;
    if (!retainctl_cmd_required (cmd, flag, value))
        return false;
    if (rt_uuid_parse (*value, &u) == 0)
        return true;
    fprintf (stderr, "%s: --%s \"%s\" is not %s (a UUID)\n", cmd->program, flag, *value, what);
    return false;
}

bool
retainctl_cmd_line (const retainctl_cmd_t *cmd, const char *flag, size_t max)
{
    const char *v = rt_config_get (cmd->config, flag);
    size_t n = strlen (v);
    if (n > max) {
        fprintf (stderr, "%s: --%s is longer than %zu bytes\n", cmd->program, flag, max);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < ' ' || c == 0x7f) {
            fprintf (stderr, "%s: --%s holds a control character (byte %zu)\n", cmd->program, flag,
                     i);
            return false;
        }
    }
    if (!rt_utf8_text_ok (v, n)) {
        fprintf (stderr, "%s: --%s is not UTF-8 text (byte %zu)\n", cmd->program, flag,
                 rt_utf8_bad_at (v, n, false));
        return false;
    }
    return true;
}

/* Whether $USER can name someone: a login is printable ASCII. */
static bool
s_login_ok (const char *user)
{
    size_t n = user ? strlen (user) : 0;
    if (n == 0 || n > RETAINCTL_BY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (user[i] <= ' ' || user[i] >= 0x7f)
            return false;
    }
    return true;
}

bool
retainctl_cmd_by (const retainctl_cmd_t *cmd, char out[RETAINCTL_BY_MAX + 1])
{
    const char *by = rt_config_get (cmd->config, "by");
    const char *user = getenv ("USER");
    if (!retainctl_cmd_line (cmd, "by", RETAINCTL_BY_MAX))
        return false;
    snprintf (out, RETAINCTL_BY_MAX + 1, "%s", *by ? by : s_login_ok (user) ? user : "retainctl");
    return true;
}

bool
retainctl_cmd_read_file (const retainctl_cmd_t *cmd, const char *flag, const char *path, size_t max,
                         char **text, size_t *len)
{
    bool is_stdin = strcmp (path, "-") == 0;
    FILE *f;
    char *buf;
    size_t n;
    bool ok = false;

    *text = NULL;
    *len = 0;
    f = is_stdin ? stdin : fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "%s: --%s %s: %s\n", cmd->program, flag, path, strerror (errno));
        return false;
    }
    /* One byte past the bound tells a file that is too long. */
    buf = malloc (max + 1);
    if (!buf) {
        fprintf (stderr, "%s: out of memory\n", cmd->program);
        goto cleanup;
    }
    n = fread (buf, 1, max + 1, f);
    if (ferror (f)) {
        fprintf (stderr, "%s: --%s %s: read error\n", cmd->program, flag, path);
        goto cleanup;
    }
    if (n > max) {
        fprintf (stderr, "%s: --%s %s: longer than %zu bytes\n", cmd->program, flag, path, max);
        goto cleanup;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    ok = true;
cleanup:
    free (buf);
    if (!is_stdin)
        fclose (f);
    return ok;
}

int
retainctl_print_json (json_t *value, size_t flags)
{
    char *text = value ? json_dumps (value, flags) : NULL;
    json_decref (value);
    if (!text)
        return -1;
    printf ("%s\n", text);
    free (text);
    return 0;
}

int
retainctl_print_rows (const PGresult *res, int n, retainctl_row_json_fn row, size_t flags)
{
    json_t *all = json_array ();
    for (int r = 0; all && r < n; r++)
        json_array_append_new (all, row (res, r));
    return retainctl_print_json (all, flags);
}

int
retainctl_random_hex (size_t n, char *out)
{
    uint8_t raw[64];
    if (n > sizeof raw || getrandom (raw, n, 0) != (ssize_t)n)
        return -1;
    rt_hex_encode (raw, n, out);
    explicit_bzero (raw, sizeof raw);
    return 0;
}
