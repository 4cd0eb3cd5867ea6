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

#include <stdarg.h>
#include <stddef.h>

typedef enum { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR } rt_log_level_t;

/* Sets the service name written in every line and the lowest level written.
 * Call once, before threads start. The name is copied. */
void rt_log_init (const char *service, rt_log_level_t level);

/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int rt_log_level_parse (const char *name, rt_log_level_t *level);

/* Writes a line with the message `msg` (taken literally, not a format) and
 * extra fields given as pairs of a key and a printf format with one argument
 * each, ended by NULL:
 *   rt_log (RT_LOG_WARN, "envelope rejected", "reason", "%s", why,
 *           "size", "%zu", len, NULL);
 * A field whose format yields a number (%d, %u, %zu, %ld, %lld, %llu, %f,
 * %g and their length modifiers) is written as a JSON number, any other as
 * a JSON string (so is an integer beyond int64, which readers would round).
 * Keys and values are escaped; a field named ts, level, service or msg is
 * written as _ts, _level, ... Never fails. */
void rt_log (rt_log_level_t level, const char *msg, ...);
void rt_log_v (rt_log_level_t level, const char *msg, va_list fields);

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
