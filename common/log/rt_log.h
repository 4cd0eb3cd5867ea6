/*
 * rt_log: JSON-lines logging to stderr.
 *
 * Every line is one JSON object: {"ts":"2026-11-24T10:00:00.123Z",
 * "level":"info","service":"retain-busd","msg":"...", ...fields}. Lines are
 * written with a single write(2) so lines from threads never interleave.
 * The service name and the level are set once at start (rt_log_init) and are
 * the only process-wide state of this module.
 */
#ifndef RT_LOG_H
#define RT_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR } rt_log_level_t;

/* Sets the service name written in every line and the lowest level written.
 * Call once, before threads start. The name is copied. */
void rt_log_init (const char *service, rt_log_level_t level);

/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int rt_log_level_parse (const char *name, rt_log_level_t *level);

/* One extra field of a line: a key and a typed value. Made with the
 * constructors below, so the compiler checks every value against its type:
 *   rt_log (RT_LOG_WARN, "envelope rejected", rt_log_str ("reason", why),
 *           rt_log_uint ("size", len));
 * Keys and string values are lent for the call. */
typedef enum {
    RT_LOG_FIELD_STR = 1, /* a string; NULL is written as null */
    RT_LOG_FIELD_INT,     /* a signed integer, written as a JSON number */
    RT_LOG_FIELD_UINT,    /* an unsigned integer: a number up to INT64_MAX, a string beyond
                             (readers would round it) */
    RT_LOG_FIELD_REAL     /* a double, 15 significant digits; NaN and infinities as strings */
} rt_log_kind_t;

typedef struct {
    const char *key;    /* the field's name */
    rt_log_kind_t kind; /* which member of value holds it */
    union {
        const char *str;      /* RT_LOG_FIELD_STR */
        long long i;          /* RT_LOG_FIELD_INT */
        unsigned long long u; /* RT_LOG_FIELD_UINT */
        double real;          /* RT_LOG_FIELD_REAL */
    } value;                  /* the value, by kind */
} rt_log_field_t;

static inline rt_log_field_t
rt_log_str (const char *key, const char *value)
{
    return (rt_log_field_t){.key = key, .kind = RT_LOG_FIELD_STR, .value.str = value};
}

static inline rt_log_field_t
rt_log_int (const char *key, long long value)
{
    return (rt_log_field_t){.key = key, .kind = RT_LOG_FIELD_INT, .value.i = value};
}

static inline rt_log_field_t
rt_log_uint (const char *key, unsigned long long value)
{
    return (rt_log_field_t){.key = key, .kind = RT_LOG_FIELD_UINT, .value.u = value};
}

static inline rt_log_field_t
rt_log_real (const char *key, double value)
{
    return (rt_log_field_t){.key = key, .kind = RT_LOG_FIELD_REAL, .value.real = value};
}

/* True when a line of this level is written. */
bool rt_log_enabled (rt_log_level_t level);

/* Writes a line with the message `msg` (taken literally, not a format) and
 * the n fields, in order. Keys and values are escaped; a field named ts,
 * level, service or msg is written as _ts, _level, ... Never fails and
 * keeps errno. */
void rt_log_fields (rt_log_level_t level, const char *msg, const rt_log_field_t *fields, size_t n);

/* rt_log (level, msg, field...): rt_log_fields with the fields listed in
 * place (none is fine). The fields are not evaluated when the level is not
 * written. */
#define rt_log(level, msg, ...)                                                                    \
    do {                                                                                           \
        if (rt_log_enabled (level)) {                                                              \
            const rt_log_field_t rt_log_fields_[] = {{0}, ##__VA_ARGS__};                          \
            rt_log_fields ((level), (msg), rt_log_fields_ + 1,                                     \
                           sizeof rt_log_fields_ / sizeof rt_log_fields_[0] - 1);                  \
        }                                                                                          \
    } while (0)

/* Writes a line whose extra fields are the `n` strings values[i] under
 * keys[i], for callers that know their fields only at run time (rt_config_log).
 * NULL values are written as "". Never fails. */
void rt_log_strings (rt_log_level_t level, const char *msg, const char *const *keys,
                     const char *const *values, size_t n);

/* Convenience: a printf-formatted message with no extra fields. */
void rt_log_debugf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void rt_log_infof (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void rt_log_warnf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void rt_log_errorf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Writes a printf-style message into a caller's error buffer (STYLE.md:
 * errors come back as a status with the text in the caller's buffer);
 * nothing when err is NULL or errlen 0. */
void rt_errf (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#endif
