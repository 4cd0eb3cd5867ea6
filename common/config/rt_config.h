/*
 * rt_config: settings from environment variables, overridden by --flags.
 *
 * A daemon declares its settings in a table (name, environment variable,
 * default, help). rt_config_parse reads the environment, then argv: both
 * "--name value" and "--name=value" are accepted; "--help" prints every
 * setting with its variable, default and current value, and makes parse
 * return 1 so main exits 0. Unknown flags and a flag without its value are
 * errors. Values whose name contains "dsn", "secret", "password" or "key" are
 * shown masked by --help and rt_config_log.
 *
 * A program may declare its settings in several tables (rt_config_add): a
 * daemon's own, the ones every daemon shares, the bus client's keys; --help
 * lists each table under its heading. A variable that is no longer read
 * can be retired (rt_config_retire): parse refuses to go on while it is
 * set, naming what replaces it, so a renamed setting is never silently
 * ignored by an operator's old environment.
 *
 * A setting whose default is "true" or "false" is a switch: "--name" alone
 * sets it to true, "--name=false" (any spelling rt_config_get_bool reads)
 * sets it as written, and so does "--name false" when the next argument is
 * such a word; any other next argument is left alone (a positional
 * argument or the next flag). Every daemon and command reads its switches
 * this way, so "--follow" means the same everywhere.
 */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;  /* flag name without dashes, e.g. "pg-dsn" */
    const char *env;   /* environment variable, e.g. "RETAIN_PG_DSN" */
    const char *deflt; /* default value; NULL means "no default" (empty);
                          "true" or "false" makes the setting a switch */
    const char *help;  /* one line */
} rt_config_setting_t;

/* A variable no longer read. */
typedef struct {
    const char *env;     /* its name, e.g. "RETAIN_BUS_CURVE_SECRET_KEY" */
    const char *instead; /* what replaces it, named in the refusal and in --help */
} rt_config_retired_t;

typedef struct rt_config_t rt_config_t;

/* Makes a configuration for `settings` (an array ended by an entry whose name
 * is NULL; the array must outlive the object). `program` and `summary` head
 * the --help text. */
rt_config_t *rt_config_new (const char *program, const char *summary,
                            const rt_config_setting_t *settings);
void rt_config_destroy (rt_config_t **self_p);

/* Declares a further table of settings (ended like the first; lent, it must
 * outlive the object), listed by --help under `heading` (NULL: no heading
 * of its own). A name declared twice is a programmer's mistake (asserted).
 * 0, or -1 when out of memory. */
int rt_config_add (rt_config_t *self, const char *heading, const rt_config_setting_t *settings);

/* Declares retired variables (an array ended by an entry whose env is NULL;
 * lent, it must outlive the object): rt_config_parse returns -1 while one
 * of them is set to a non-empty value, naming it and its `instead`.
 * --help lists them. 0, or -1 when out of memory. */
int rt_config_retire (rt_config_t *self, const rt_config_retired_t *retired);

/* Reads environment and argv. Returns 0 on success, 1 when --help was printed
 * (to stdout), -1 on a bad argument or a retired variable set (the reason is
 * written to err). */
int rt_config_parse (rt_config_t *self, int argc, char **argv, char *err, size_t errlen);

/* Positional arguments left after the flags (argv entries not starting with
 * "--", and everything after a bare "--"), in order. Lent. */
int rt_config_argc (const rt_config_t *self);
const char *rt_config_argv (const rt_config_t *self, int i);

/* The value of a setting; asserts the name was declared. Never NULL ("" when
 * unset and without default). Lent. */
const char *rt_config_get (const rt_config_t *self, const char *name);

/* Typed getters: return -1 and fill err when the value does not parse or is
 * out of [min, max]; durations accept "250ms", "5s", "2m", "1h", "7d" (a
 * bare number is milliseconds), sizes accept "512", "64k", "1M", "1G",
 * booleans "true"/"false", "yes"/"no", "on"/"off", "1"/"0" in any case. */
int rt_config_get_int (const rt_config_t *self, const char *name, int64_t min, int64_t max,
                       int64_t *out, char *err, size_t errlen);
int rt_config_get_ms (const rt_config_t *self, const char *name, int64_t *out, char *err,
                      size_t errlen);
int rt_config_get_size (const rt_config_t *self, const char *name, int64_t *out, char *err,
                        size_t errlen);
int rt_config_get_bool (const rt_config_t *self, const char *name, bool *out, char *err,
                        size_t errlen);

/* Logs every setting at info level (secrets masked), one line "config". */
void rt_config_log (const rt_config_t *self);

#endif
