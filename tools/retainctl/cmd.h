/*
 * cmd: what every retainctl command does around its own work, once.
 *
 * A command's run is a retainctl_cmd_t. retainctl_cmd_begin names it
 * ("retainctl operator add": the head of every line it prints on stderr)
 * and parses its flags; retainctl_cmd_connect opens its PostgreSQL
 * connection; retainctl_cmd_exec runs a statement into cmd->res;
 * retainctl_cmd_end frees it all. A transaction begun and not committed
 * ends with the connection, rolled back, so a command that stops half-way
 * leaves nothing written.
 *
 * Every helper that can fail prints the reason, headed by the program,
 * and returns false: the command chooses the exit status (retainctl.h: a
 * refused flag is bad usage, 2; anything once connected is a failure, 1).
 * A database error reads as the command said at connect
 * (RETAINCTL_DB_*): PostgreSQL's message as it is, or without its DETAIL
 * where that would repeat a row holding a secret, and with the hint to
 * migrate when a table is missing.
 */
#ifndef RETAINCTL_CMD_H
#define RETAINCTL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_config.h"
#include "rt_db.h"

/* Longest id of an operator, a team, an inbox or an account, as their
 * tables check. */
#define RETAINCTL_ID_MAX 63

/* Longest --by: who did it, kept with what they did. */
#define RETAINCTL_BY_MAX 64

/* The settings most commands share, for their tables. */
#define RETAINCTL_PG_DSN                                                                           \
    {                                                                                              \
        "pg-dsn", "RETAIN_PG_DSN", "", "PostgreSQL connection string or URI (libpq)"               \
    }
#define RETAINCTL_JSON                                                                             \
    {                                                                                              \
        "json", NULL, "false", "print a JSON array instead of a table"                             \
    }
#define RETAINCTL_END                                                                              \
    {                                                                                              \
        NULL, NULL, NULL, NULL                                                                     \
    }

/* How a command's database errors read (retainctl_cmd_connect). */
enum {
    RETAINCTL_DB_AS_IS = 0,        /* PostgreSQL's message whole */
    RETAINCTL_DB_NO_DETAIL = 1,    /* without its DETAIL, which repeats the failing row */
    RETAINCTL_DB_MIGRATE_HINT = 2, /* a missing table adds "(has `retainctl migrate` run?)" */
};

typedef struct {
    char program[64];    /* "retainctl operator add": heads every message */
    rt_config_t *config; /* its flags */
    rt_db_t *db;         /* its connection, once retainctl_cmd_connect made it */
    PGresult *res;       /* the last retainctl_cmd_exec's result; owned */
    unsigned db_errors;  /* RETAINCTL_DB_*: how its database errors read */
} retainctl_cmd_t;

/* Starts the run of `retainctl <group> <argv[0]>` (group NULL: a command
 * of its own, `retainctl <argv[0]>`) and parses its flags. true to go on;
 * false when the run is over, *rc its exit status: 0 after --help, 2
 * after a usage error, 1 when out of memory. cmd is ready for
 * retainctl_cmd_end either way. */
bool retainctl_cmd_begin (retainctl_cmd_t *cmd, const char *group, const char *summary,
                          const rt_config_setting_t *settings, int argc, char **argv, int *rc);

/* retainctl_cmd_begin for a command on the one thing --id names: the id
 * into *id, checked as retainctl_cmd_id does. true to go on, *rc 1;
 * false when the run is over, *rc its exit status (2: the id refused). */
bool retainctl_cmd_begin_id (retainctl_cmd_t *cmd, const char *group, const char *summary,
                             const rt_config_setting_t *settings, int argc, char **argv,
                             const char **id, int *rc);

/* retainctl_cmd_begin for a listing: --json, a switch, into *json. true
 * to go on, *rc 1; false when the run is over, *rc its exit status (2:
 * --json is no switch). */
bool retainctl_cmd_begin_list (retainctl_cmd_t *cmd, const char *group, const char *summary,
                               const rt_config_setting_t *settings, int argc, char **argv,
                               bool *json, int *rc);

/* Connects to --pg-dsn; db_errors (RETAINCTL_DB_*) says how its errors
 * will read. false, "cannot connect" and why printed, when it fails. */
bool retainctl_cmd_connect (retainctl_cmd_t *cmd, unsigned db_errors);

/* Frees the result, closes the connection (rolling back a transaction not
 * committed) and frees the flags. */
void retainctl_cmd_end (retainctl_cmd_t *cmd);

/* Prints the last database error as the command's errors read. */
void retainctl_cmd_db_error (const retainctl_cmd_t *cmd);

/* Runs sql with params into cmd->res (the previous result freed). false
 * with the error printed. */
bool retainctl_cmd_exec (retainctl_cmd_t *cmd, const char *sql, int nparams,
                         const char *const *params);

/* The same, the result the caller's (PQclear); NULL with the error
 * printed. For a command that holds several results at once. */
PGresult *retainctl_cmd_query (const retainctl_cmd_t *cmd, const char *sql, int nparams,
                               const char *const *params);

/* Begins and commits a transaction; false with the error printed. */
bool retainctl_cmd_tx_begin (const retainctl_cmd_t *cmd);
bool retainctl_cmd_tx_commit (const retainctl_cmd_t *cmd);

/* A switch, or a whole number in [min, max]; false with rt_config's
 * reason printed. */
bool retainctl_cmd_bool (const retainctl_cmd_t *cmd, const char *flag, bool *out);
bool retainctl_cmd_int (const retainctl_cmd_t *cmd, const char *flag, int64_t min, int64_t max,
                        int64_t *out);

/* --flag's value into *value (lent); false with "--flag is required"
 * printed when it is empty. */
bool retainctl_cmd_required (const retainctl_cmd_t *cmd, const char *flag, const char **value);

/* Whether id is 1 to RETAINCTL_ID_MAX lower-case letters, digits, '.',
 * '_' or '-', starting with a letter or digit. */
bool retainctl_id_ok (const char *id);

/* The same for --flag's id, given as id; false with the reason printed:
 * required when empty, else what an id is. */
bool retainctl_cmd_id (const retainctl_cmd_t *cmd, const char *flag, const char *id);

/* --flag's value as a UUID into *value (lent); false with the reason
 * printed: required when empty, else not `what` ("a customer id"). */
bool retainctl_cmd_uuid (const retainctl_cmd_t *cmd, const char *flag, const char *what,
                         const char **value);

/* Whether --flag's value is one line of UTF-8 text, no control
 * character, at most max bytes; false with the reason printed. */
bool retainctl_cmd_line (const retainctl_cmd_t *cmd, const char *flag, size_t max);

/* Who runs the command, for what it records: --by, else $USER, else
 * "retainctl", into out (RETAINCTL_BY_MAX + 1 bytes). false with the
 * reason printed when --by is no line of text up to RETAINCTL_BY_MAX
 * bytes. */
bool retainctl_cmd_by (const retainctl_cmd_t *cmd, char out[RETAINCTL_BY_MAX + 1]);

/* The whole file at path ("-": stdin), for --flag: *text (owned, NUL
 * added) and *len its bytes. false with the reason printed: unreadable,
 * or longer than max bytes. */
bool retainctl_cmd_read_file (const retainctl_cmd_t *cmd, const char *flag, const char *path,
                              size_t max, char **text, size_t *len);

/* One row of a result as a JSON value (owned; NULL when out of memory). */
typedef json_t *(*retainctl_row_json_fn) (const PGresult *res, int row);

/* Prints rows [0, n) of res as one JSON array on one line, each made by
 * row (one that fails is left out); 0, or -1 when out of memory. */
int retainctl_print_rows (const PGresult *res, int n, retainctl_row_json_fn row, size_t flags);

/* Prints value (its reference taken) as JSON on one line, in json_dumps's
 * flags; 0, or -1 when out of memory. */
int retainctl_print_json (json_t *value, size_t flags);

/* 2 * n lower-case hex digits of n random bytes into out (2 * n + 1
 * bytes). 0, or -1 when the kernel gives no random bytes. */
int retainctl_random_hex (size_t n, char *out);

#endif
