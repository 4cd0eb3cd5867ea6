/*
 * rt_log: JSON-lines logging to stderr.
 *
 * A line is assembled in memory (on the stack when it fits) and handed to
 * the kernel with one write(2): a pipe or a file keeps writes of one call
 * together, so lines of concurrent threads never interleave. Strings go
 * through jansson so that every key and value is escaped the same way a JSON
 * reader expects; invalid UTF-8 is replaced by U+FFFD first, since a log line
 * must survive whatever bytes a peer sent us.
 *
 * Logging never fails from the caller's point of view and preserves errno,
 * so `rt_log_errorf ("...: %s", strerror (errno)); return -1;` keeps the
 * caller's errno intact.
 */
#include "rt_log.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "rt_utf8.h"

#define S_SERVICE_MAX 64
#define S_STACK_LINE  2048
#define S_STACK_VALUE 256

/* The module's process-wide state, set once by rt_log_init before threads
 * start. The name is reduced to [A-Za-z0-9._-] at init, so it can be written
 * into a line without escaping, even on the out-of-memory path. */
static char s_service[S_SERVICE_MAX];
static rt_log_level_t s_level = RT_LOG_INFO;

/* A line under construction. */
typedef struct {
    char *data;               /* the bytes; `stack` or a heap block */
    size_t len;               /* bytes used */
    size_t cap;               /* bytes available in data */
    bool failed;              /* an allocation failed: the line is lost */
    char ts[32];              /* the line's timestamp, kept for the fallback */
    char stack[S_STACK_LINE]; /* the storage used until a line outgrows it */
} s_line_t;

static const char *
s_level_name (rt_log_level_t level)
{
    switch (level) {
    case RT_LOG_DEBUG:
        return "debug";
    case RT_LOG_INFO:
        return "info";
    case RT_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void
rt_log_init (const char *service, rt_log_level_t level)
{
    size_t i = 0;
    if (service) {
        for (; service[i] && i < S_SERVICE_MAX - 1; i++) {
            unsigned char c = (unsigned char)service[i];
            s_service[i] = (isalnum (c) || c == '-' || c == '_' || c == '.') ? (char)c : '_';
        }
    }
    s_service[i] = '\0';
    s_level = level;
}

int
rt_log_level_parse (const char *name, rt_log_level_t *level)
{
    static const rt_log_level_t levels[] = {RT_LOG_DEBUG, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR};
    if (!name || !level)
        return -1;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (strcmp (name, s_level_name (levels[i])) == 0) {
            *level = levels[i];
            return 0;
        }
    }
    return -1;
}

static bool
s_enabled (rt_log_level_t level)
{
    return level >= s_level;
}

static const char *
s_service_name (void)
{
    /* Before rt_log_init (or in a test) the program's own name is the most
     * useful stand-in; it is only ever read here. */
    return s_service[0] ? s_service : program_invocation_short_name;
}

static void
s_line_init (s_line_t *line)
{
    line->data = line->stack;
    line->len = 0;
    line->cap = sizeof line->stack;
    line->failed = false;
}

static bool
s_line_reserve (s_line_t *line, size_t more)
{
    if (line->failed)
        return false;
    if (line->len + more <= line->cap)
        return true;
    size_t cap = line->cap * 2;
    while (cap < line->len + more)
        cap *= 2;
    char *data;
    if (line->data == line->stack) {
        data = malloc (cap);
        if (data)
            memcpy (data, line->data, line->len);
    } else
        data = realloc (line->data, cap);
    if (!data) {
        line->failed = true;
        return false;
    }
    line->data = data;
    line->cap = cap;
    return true;
}

static void
s_line_append (s_line_t *line, const char *bytes, size_t len)
{
    if (!s_line_reserve (line, len))
        return;
    memcpy (line->data + line->len, bytes, len);
    line->len += len;
}

static void
s_line_puts (s_line_t *line, const char *text)
{
    s_line_append (line, text, strlen (text));
}

static void
s_line_free (s_line_t *line)
{
    if (line->data != line->stack)
        free (line->data);
    line->data = line->stack;
    line->len = 0;
}

/* Appends text as a quoted, escaped JSON string. */
static void
s_line_string (s_line_t *line, const char *text, size_t len)
{
    char *repaired = NULL;
    json_t *json = json_stringn (text, len);
    if (!json) {
        /* jansson refuses invalid UTF-8 (or ran out of memory). */
        size_t fixed_len = 0;
        repaired = rt_utf8_repair (text, len, &fixed_len);
        if (repaired)
            json = json_stringn (repaired, fixed_len);
    }
    if (!json) {
        line->failed = true;
        goto cleanup;
    }
    size_t size = json_dumpb (json, NULL, 0, JSON_ENCODE_ANY);
    if (size == 0 || !s_line_reserve (line, size)) {
        line->failed = true;
        goto cleanup;
    }
    line->len += json_dumpb (json, line->data + line->len, size, JSON_ENCODE_ANY);
cleanup:
    json_decref (json);
    free (repaired);
}

static void
s_line_begin (s_line_t *line, rt_log_level_t level, const char *msg)
{
    struct timespec now;
    struct tm tm;
    clock_gettime (CLOCK_REALTIME, &now);
    gmtime_r (&now.tv_sec, &tm);

    s_line_init (line);
    size_t n = strftime (line->ts, sizeof line->ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (line->ts + n, sizeof line->ts - n, ".%03dZ", (int)(now.tv_nsec / 1000000));
    s_line_puts (line, "{\"ts\":\"");
    s_line_puts (line, line->ts);
    s_line_puts (line, "\",\"level\":\"");
    s_line_puts (line, s_level_name (level));
    s_line_puts (line, "\",\"service\":\"");
    s_line_puts (line, s_service_name ());
    s_line_puts (line, "\",\"msg\":");
    if (!msg)
        msg = "";
    s_line_string (line, msg, strlen (msg));
}

static bool
s_reserved_key (const char *key)
{
    return strcmp (key, "ts") == 0 || strcmp (key, "level") == 0 || strcmp (key, "service") == 0 ||
           strcmp (key, "msg") == 0;
}

static void
s_line_field (s_line_t *line, const char *key, const char *value, size_t len, bool numeric)
{
    s_line_puts (line, ",");
    if (s_reserved_key (key)) {
        /* A field must not shadow the line's own keys: readers keep only one
         * of two equal keys, and which one is up to them. */
        s_line_puts (line, "\"_");
        s_line_puts (line, key);
        s_line_puts (line, "\"");
    } else
        s_line_string (line, key, strlen (key));
    s_line_puts (line, ":");
    if (numeric)
        s_line_append (line, value, len);
    else
        s_line_string (line, value, len);
}

static void
s_write_all (const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write (STDERR_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* stderr is gone; there is nowhere left to complain */
        }
        data += n;
        len -= (size_t)n;
    }
}

static void
s_line_finish (s_line_t *line, rt_log_level_t level)
{
    s_line_puts (line, "}\n");
    if (line->failed) {
        /* Whatever was built is incomplete JSON; say that a line was lost
         * rather than write half of it. Uses no heap. */
        char fallback[256];
        int n = snprintf (fallback, sizeof fallback,
                          "{\"ts\":\"%s\",\"level\":\"%s\",\"service\":\"%s\","
                          "\"msg\":\"log line lost: out of memory\"}\n",
                          line->ts, s_level_name (level), s_service_name ());
        if (n > 0 && (size_t)n < sizeof fallback)
            s_write_all (fallback, (size_t)n);
    } else
        s_write_all (line->data, line->len);
    s_line_free (line);
}

bool
rt_log_enabled (rt_log_level_t level)
{
    return s_enabled (level);
}

static void
s_line_typed_field (s_line_t *line, const rt_log_field_t *field)
{
    char number[32];
    int n = -1;
    const char *key = field->key ? field->key : "";
    switch (field->kind) {
    case RT_LOG_FIELD_STR:
        if (!field->value.str) {
            s_line_field (line, key, "null", 4, true);
            return;
        }
        s_line_field (line, key, field->value.str, strlen (field->value.str), false);
        return;
    case RT_LOG_FIELD_INT:
        n = snprintf (number, sizeof number, "%lld", field->value.i);
        break;
    case RT_LOG_FIELD_UINT:
        n = snprintf (number, sizeof number, "%llu", field->value.u);
        if (field->value.u > (unsigned long long)INT64_MAX) {
            /* Beyond int64 a reader rounds (JavaScript) or refuses the line
             * (jansson): a string keeps every digit. */
            s_line_field (line, key, number, (size_t)n, false);
            return;
        }
        break;
    case RT_LOG_FIELD_REAL:
        n = snprintf (number, sizeof number, "%.15g", field->value.real);
        if (!isfinite (field->value.real)) {
            s_line_field (line, key, number, (size_t)n, false);
            return;
        }
        break;
    default:
        s_line_field (line, key, "?", 1, false);
        return;
    }
    s_line_field (line, key, number, (size_t)n, true);
}

void
rt_log_fields (rt_log_level_t level, const char *msg, const rt_log_field_t *fields, size_t n)
{
    if (!s_enabled (level))
        return;
    int saved_errno = errno;
    s_line_t line;
    s_line_begin (&line, level, msg);
    for (size_t i = 0; fields && i < n; i++)
        s_line_typed_field (&line, &fields[i]);
    s_line_finish (&line, level);
    errno = saved_errno;
}

void
rt_log_strings (rt_log_level_t level, const char *msg, const char *const *keys,
                const char *const *values, size_t n)
{
    if (!s_enabled (level))
        return;
    int saved_errno = errno;
    s_line_t line;
    s_line_begin (&line, level, msg);
    for (size_t i = 0; i < n; i++) {
        const char *key = keys[i] ? keys[i] : "";
        const char *value = values[i] ? values[i] : "";
        s_line_field (&line, key, value, strlen (value), false);
    }
    s_line_finish (&line, level);
    errno = saved_errno;
}

static void
s_logf (rt_log_level_t level, const char *fmt, va_list args)
{
    if (!s_enabled (level))
        return;
    int saved_errno = errno;
    char small[S_STACK_VALUE];
    char *msg = small;
    va_list copy;

    va_copy (copy, args);
    int n = vsnprintf (small, sizeof small, fmt, copy);
    va_end (copy);
    if (n < 0)
        small[0] = '\0';
    else if ((size_t)n >= sizeof small) {
        msg = malloc ((size_t)n + 1);
        if (msg)
            vsnprintf (msg, (size_t)n + 1, fmt, args);
        else {
            /* Keep the start of the message rather than lose it all. */
            msg = small;
        }
    }
    s_line_t line;
    s_line_begin (&line, level, msg);
    s_line_finish (&line, level);
    if (msg != small)
        free (msg);
    errno = saved_errno;
}

void
rt_log_debugf (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    s_logf (RT_LOG_DEBUG, fmt, args);
    va_end (args);
}

void
rt_log_infof (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    s_logf (RT_LOG_INFO, fmt, args);
    va_end (args);
}

void
rt_log_warnf (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    s_logf (RT_LOG_WARN, fmt, args);
    va_end (args);
}

void
rt_log_errorf (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    s_logf (RT_LOG_ERROR, fmt, args);
    va_end (args);
}

void
rt_errf (char *err, size_t errlen, const char *fmt, ...)
{
    va_list args;
    if (!err || errlen == 0)
        return;
    va_start (args, fmt);
    vsnprintf (err, errlen, fmt, args);
    va_end (args);
}
