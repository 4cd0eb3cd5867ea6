/*
 * rt_config: settings from environment variables, overridden by --flags.
 *
 * Every value is held as an owned string: the default, replaced by the
 * environment, replaced by the command line, in that order, on every parse.
 * Types are applied only when a caller asks (rt_config_get_ms, ...), so a
 * daemon reports a bad value with the setting's name and the text it got.
 *
 * Secrets (a name containing "dsn", "secret", "password" or "key") never
 * leave this module in clear: --help and rt_config_log show a mask.
 *
 * Switches are told apart by their default ("true" or "false") rather than
 * by a field of their own, so every table already written declares its
 * booleans without a change, and a boolean cannot be declared without the
 * default its getter needs.
 *
 * The tables a program declares are kept as one list of pointers into
 * them (rt_config_add), so every lookup, getter and log line treats a
 * daemon's own settings and the shared ones alike; only --help tells the
 * tables apart, by their headings.
 */
#include "rt_config.h"

#include "rt_log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_MASK "********"

/* A table of settings as --help shows it. */
typedef struct {
    const char *heading; /* the line above it; NULL: none */
    size_t first;        /* index of its first setting in settings */
} s_section_t;

struct rt_config_t {
    char *program;                        /* heads --help; owned */
    char *summary;                        /* one line under the usage; owned */
    const rt_config_setting_t **settings; /* every declared setting, in order; the array is
                                             owned, the entries lent by the callers' tables */
    size_t nsettings;                     /* entries in settings */
    char **values;                        /* the current value of each setting; owned */
    s_section_t *sections;                /* the tables, in order; owned */
    size_t nsections;                     /* entries in sections */
    const rt_config_retired_t **retired;  /* retired variables; the array is owned */
    size_t nretired;                      /* entries in retired */
    char **args;                          /* positional arguments; owned */
    int nargs;                            /* entries in args */
};

static int s_find (const rt_config_t *self, const char *name, size_t namelen);

rt_config_t *
rt_config_new (const char *program, const char *summary, const rt_config_setting_t *settings)
{
    assert (settings);
    rt_config_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->program = strdup (program ? program : "");
    self->summary = strdup (summary ? summary : "");
    if (!self->program || !self->summary || rt_config_add (self, NULL, settings) != 0)
        goto error;
    return self;
error:
    rt_config_destroy (&self);
    return NULL;
}

int
rt_config_add (rt_config_t *self, const char *heading, const rt_config_setting_t *settings)
{
    assert (self && settings);
    size_t n = 0;
    while (settings[n].name)
        n++;
    /* Grown one array at a time: a failure leaves every array consistent
     * with nsettings, so destroy frees what was made. */
    const rt_config_setting_t **all =
        realloc (self->settings, (self->nsettings + n + 1) * sizeof *all);
    if (!all)
        return -1;
    self->settings = all;
    char **values = realloc (self->values, (self->nsettings + n + 1) * sizeof *values);
    if (!values)
        return -1;
    self->values = values;
    s_section_t *sections = realloc (self->sections, (self->nsections + 1) * sizeof *sections);
    if (!sections)
        return -1;
    self->sections = sections;
    size_t first = self->nsettings;
    for (size_t i = 0; i < n; i++) {
        const char *deflt = settings[i].deflt;
        assert (s_find (self, settings[i].name, strlen (settings[i].name)) < 0 &&
                "setting declared twice");
        self->values[self->nsettings] = strdup (deflt ? deflt : "");
        if (!self->values[self->nsettings])
            return -1;
        self->settings[self->nsettings++] = &settings[i];
    }
    self->sections[self->nsections++] = (s_section_t){heading, first};
    return 0;
}

int
rt_config_retire (rt_config_t *self, const rt_config_retired_t *retired)
{
    assert (self && retired);
    size_t n = 0;
    while (retired[n].env)
        n++;
    const rt_config_retired_t **all =
        realloc (self->retired, (self->nretired + n + 1) * sizeof *all);
    if (!all)
        return -1;
    self->retired = all;
    for (size_t i = 0; i < n; i++)
        self->retired[self->nretired++] = &retired[i];
    return 0;
}

static void
s_args_clear (rt_config_t *self)
{
    for (int i = 0; i < self->nargs; i++)
        free (self->args[i]);
    free (self->args);
    self->args = NULL;
    self->nargs = 0;
}

void
rt_config_destroy (rt_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_config_t *self = *self_p;
    if (self->values) {
        for (size_t i = 0; i < self->nsettings; i++)
            free (self->values[i]);
        free (self->values);
    }
    s_args_clear (self);
    free (self->settings);
    free (self->sections);
    free (self->retired);
    free (self->program);
    free (self->summary);
    free (self);
    *self_p = NULL;
}

static int
s_find (const rt_config_t *self, const char *name, size_t namelen)
{
    for (size_t i = 0; i < self->nsettings; i++) {
        const char *candidate = self->settings[i]->name;
        if (strlen (candidate) == namelen && strncmp (candidate, name, namelen) == 0)
            return (int)i;
    }
    return -1;
}

/* The words a boolean may be written as, and what each means. */
static int
s_bool_word (const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    for (size_t k = 0; yes[k]; k++) {
        if (strcasecmp (text, yes[k]) == 0) {
            *out = true;
            return 0;
        }
    }
    for (size_t k = 0; no[k]; k++) {
        if (strcasecmp (text, no[k]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static bool
s_is_switch (const rt_config_setting_t *s)
{
    return s->deflt && (strcmp (s->deflt, "true") == 0 || strcmp (s->deflt, "false") == 0);
}

static bool
s_is_secret (const char *name)
{
    return strcasestr (name, "dsn") || strcasestr (name, "secret") ||
           strcasestr (name, "password") || strcasestr (name, "key");
}

/* What --help and the log show for a value. */
static const char *
s_shown (const char *name, const char *value)
{
    if (!value || !*value)
        return "";
    return s_is_secret (name) ? S_MASK : value;
}

static int
s_set (rt_config_t *self, size_t i, const char *value, char *err, size_t errlen)
{
    char *copy = strdup (value);
    if (!copy) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    free (self->values[i]);
    self->values[i] = copy;
    return 0;
}

static int
s_add_arg (rt_config_t *self, const char *arg, char *err, size_t errlen)
{
    char **args = realloc (self->args, ((size_t)self->nargs + 1) * sizeof *args);
    if (!args)
        goto oom;
    self->args = args;
    self->args[self->nargs] = strdup (arg);
    if (!self->args[self->nargs])
        goto oom;
    self->nargs++;
    return 0;
oom:
    rt_errf (err, errlen, "out of memory");
    return -1;
}

static void
s_print_setting (FILE *out, const rt_config_setting_t *s, const char *value)
{
    const char *deflt = s->deflt ? s->deflt : "";
    fprintf (out, "  --%s%s  (env %s)\n", s->name, s_is_switch (s) ? "[=true|false]" : " <value>",
             s->env ? s->env : "-");
    if (s->help && *s->help)
        fprintf (out, "      %s\n", s->help);
    fprintf (out, "      default: %s\n", *deflt ? s_shown (s->name, deflt) : "(none)");
    fprintf (out, "      current: %s\n", *value ? s_shown (s->name, value) : "(empty)");
}

static void
s_print_help (const rt_config_t *self)
{
    FILE *out = stdout;
    bool switches = false;
    for (size_t i = 0; i < self->nsettings; i++)
        switches = switches || s_is_switch (self->settings[i]);
    fprintf (out, "Usage: %s [--setting value | --setting=value%s]... [--] [argument]...\n",
             self->program, switches ? " | --switch" : "");
    if (*self->summary)
        fprintf (out, "%s\n", self->summary);
    fprintf (out, "\nSettings (a --flag overrides its environment variable):\n");
    for (size_t k = 0; k < self->nsections; k++) {
        const s_section_t *section = &self->sections[k];
        size_t end = k + 1 < self->nsections ? self->sections[k + 1].first : self->nsettings;
        if (section->heading && section->first < end)
            fprintf (out, "\n%s:\n", section->heading);
        for (size_t i = section->first; i < end; i++)
            s_print_setting (out, self->settings[i], self->values[i]);
    }
    fprintf (out, "%s  --help\n      print this text and exit\n", self->nsections > 1 ? "\n" : "");
    if (self->nretired > 0)
        fprintf (out, "\nNo longer read (refused while set):\n");
    for (size_t i = 0; i < self->nretired; i++)
        fprintf (out, "  %s\n      set %s instead\n", self->retired[i]->env,
                 self->retired[i]->instead);
    fflush (out);
}

int
rt_config_parse (rt_config_t *self, int argc, char **argv, char *err, size_t errlen)
{
    assert (self);
    bool help = false;
    if (err && errlen > 0)
        err[0] = '\0';

    /* Parse is repeatable: start over from the defaults every time. */
    s_args_clear (self);
    for (size_t i = 0; i < self->nsettings; i++) {
        const rt_config_setting_t *s = self->settings[i];
        const char *value = s->deflt ? s->deflt : "";
        const char *env = s->env ? getenv (s->env) : NULL;
        if (env)
            value = env;
        if (s_set (self, i, value, err, errlen) != 0)
            return -1;
    }

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp (arg, "--") == 0) {
            for (a++; a < argc; a++) {
                if (s_add_arg (self, argv[a], err, errlen) != 0)
                    return -1;
            }
            break;
        }
        if (strncmp (arg, "--", 2) != 0) {
            if (s_add_arg (self, arg, err, errlen) != 0)
                return -1;
            continue;
        }
        if (strcmp (arg, "--help") == 0) {
            help = true;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr (name, '=');
        size_t namelen = eq ? (size_t)(eq - name) : strlen (name);
        int i = s_find (self, name, namelen);
        if (i < 0) {
            rt_errf (err, errlen, "unknown flag --%.*s (see --help)", (int)namelen, name);
            return -1;
        }
        const char *value;
        bool word;
        if (eq)
            value = eq + 1;
        else if (s_is_switch (self->settings[i])) {
            /* "--follow" alone is true; "--follow false" takes the word. */
            value = "true";
            if (a + 1 < argc && s_bool_word (argv[a + 1], &word) == 0)
                value = argv[++a];
        } else if (a + 1 < argc && strncmp (argv[a + 1], "--", 2) != 0)
            value = argv[++a];
        else {
            /* A value that starts with "--" is far more often a forgotten
             * value than a real one; --name=--value still works. */
            rt_errf (err, errlen, "flag --%s needs a value (--%s VALUE or --%s=VALUE)", name, name,
                     name);
            return -1;
        }
        if (s_set (self, (size_t)i, value, err, errlen) != 0)
            return -1;
    }

    if (help) {
        s_print_help (self);
        return 1;
    }
    /* After --help, so that an operator can still read what to set. */
    for (size_t i = 0; i < self->nretired; i++) {
        const char *set = getenv (self->retired[i]->env);
        if (set && *set) {
            rt_errf (err, errlen, "%s is no longer read: set %s instead", self->retired[i]->env,
                     self->retired[i]->instead);
            return -1;
        }
    }
    return 0;
}

int
rt_config_argc (const rt_config_t *self)
{
    assert (self);
    return self->nargs;
}

const char *
rt_config_argv (const rt_config_t *self, int i)
{
    assert (self);
    if (i < 0 || i >= self->nargs)
        return NULL;
    return self->args[i];
}

static int
s_index (const rt_config_t *self, const char *name)
{
    int i = s_find (self, name, strlen (name));
    assert (i >= 0 && "setting not declared");
    return i;
}

const char *
rt_config_get (const rt_config_t *self, const char *name)
{
    assert (self && name);
    int i = s_index (self, name);
    if (i < 0)
        return "";
    return self->values[i];
}

/* The name and variable a message about setting i should name. */
static void
s_value_error (const rt_config_t *self, int i, const char *expected, char *err, size_t errlen)
{
    const rt_config_setting_t *s = self->settings[i];
    rt_errf (err, errlen, "--%s%s%s: expected %s, got \"%s\"", s->name, s->env ? " / " : "",
             s->env ? s->env : "", expected, s_shown (s->name, self->values[i]));
}

/* Parses a non-negative decimal at text into *number and points *end past
 * it; -1 when there is no digit or the number overflows. */
static int
s_parse_digits (const char *text, int64_t *number, const char **end)
{
    int64_t n = 0;
    const char *p = text;
    if (!isdigit ((unsigned char)*p))
        return -1;
    for (; isdigit ((unsigned char)*p); p++) {
        int digit = *p - '0';
        if (n > (INT64_MAX - digit) / 10)
            return -1;
        n = n * 10 + digit;
    }
    *number = n;
    *end = p;
    return 0;
}

int
rt_config_get_int (const rt_config_t *self, const char *name, int64_t min, int64_t max,
                   int64_t *out, char *err, size_t errlen)
{
    assert (self && name && out);
    int i = s_index (self, name);
    if (i < 0)
        return -1;
    const char *text = self->values[i];
    const char *p = text;
    bool negative = false;
    int64_t n;
    if (*p == '-' || *p == '+') {
        negative = *p == '-';
        p++;
    }
    const char *end;
    if (s_parse_digits (p, &n, &end) != 0 || *end != '\0') {
        s_value_error (self, i, "an integer", err, errlen);
        return -1;
    }
    if (negative)
        n = -n;
    if (n < min || n > max) {
        char expected[96];
        snprintf (expected, sizeof expected, "an integer in [%lld, %lld]", (long long)min,
                  (long long)max);
        s_value_error (self, i, expected, err, errlen);
        return -1;
    }
    *out = n;
    return 0;
}

/* Parses "<digits><unit>" where unit is looked up in units (suffix and
 * factor pairs, "" for a bare number). */
typedef struct {
    const char *suffix; /* as written after the digits */
    int64_t factor;     /* what one unit is worth */
} s_unit_t;

static int
s_parse_scaled (const char *text, const s_unit_t *units, bool ignore_case, int64_t *out)
{
    int64_t n;
    const char *end;
    if (s_parse_digits (text, &n, &end) != 0)
        return -1;
    for (const s_unit_t *u = units; u->suffix; u++) {
        bool same = ignore_case ? strcasecmp (end, u->suffix) == 0 : strcmp (end, u->suffix) == 0;
        if (!same)
            continue;
        if (n > INT64_MAX / u->factor)
            return -1;
        *out = n * u->factor;
        return 0;
    }
    return -1;
}

int
rt_config_get_ms (const rt_config_t *self, const char *name, int64_t *out, char *err, size_t errlen)
{
    static const s_unit_t units[] = {
        {"", 1},
        {"ms", 1},
        {"s", 1000},
        {"m", 60 * 1000},
        {"h", 60 * 60 * 1000},
        {"d", 24 * 60 * 60 * 1000},
        {NULL, 0},
    };
    assert (self && name && out);
    int i = s_index (self, name);
    if (i < 0)
        return -1;
    if (s_parse_scaled (self->values[i], units, false, out) != 0) {
        s_value_error (self, i, "a duration like 250ms, 5s, 2m, 1h, 7d (bare number: ms)", err,
                       errlen);
        return -1;
    }
    return 0;
}

int
rt_config_get_size (const rt_config_t *self, const char *name, int64_t *out, char *err,
                    size_t errlen)
{
    static const s_unit_t units[] = {
        {"", 1}, {"k", 1024}, {"m", 1024 * 1024}, {"g", 1024 * 1024 * 1024}, {NULL, 0},
    };
    assert (self && name && out);
    int i = s_index (self, name);
    if (i < 0)
        return -1;
    if (s_parse_scaled (self->values[i], units, true, out) != 0) {
        s_value_error (self, i, "a size like 512, 64k, 1M, 1G (bytes)", err, errlen);
        return -1;
    }
    return 0;
}

int
rt_config_get_bool (const rt_config_t *self, const char *name, bool *out, char *err, size_t errlen)
{
    assert (self && name && out);
    int i = s_index (self, name);
    if (i < 0)
        return -1;
    if (s_bool_word (self->values[i], out) == 0)
        return 0;
    s_value_error (self, i, "true or false (also yes/no, on/off, 1/0)", err, errlen);
    return -1;
}

void
rt_config_log (const rt_config_t *self)
{
    assert (self);
    const char **keys = calloc (self->nsettings + 1, sizeof *keys);
    const char **values = calloc (self->nsettings + 1, sizeof *values);
    if (!keys || !values) {
        rt_log_errorf ("config: out of memory while logging the settings");
        goto cleanup;
    }
    for (size_t i = 0; i < self->nsettings; i++) {
        keys[i] = self->settings[i]->name;
        values[i] = s_shown (self->settings[i]->name, self->values[i]);
    }
    rt_log_strings (RT_LOG_INFO, "config", keys, values, self->nsettings);
cleanup:
    free (keys);
    free (values);
}
