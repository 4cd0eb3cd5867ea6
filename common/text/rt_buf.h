/*
 * rt_buf: a growable byte buffer, and PostgreSQL array literals built in it.
 *
 * Batches are built in memory before they go to PostgreSQL (COPY data,
 * the arrays of an unnest()), so every writer needs the same two things:
 * a buffer that grows without checking every append, and array elements
 * quoted so any text survives. An allocation failure marks the buffer
 * failed and later appends do nothing: check `failed` once, at the end.
 *
 * Storage is always NUL-terminated after `len`, so a finished array
 * literal is a C string to pass as a query parameter.
 */
#ifndef RT_BUF_H
#define RT_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;  /* the bytes (owned), NUL after len; NULL until the first append */
    size_t len;  /* bytes used */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed: the content is incomplete */
} rt_buf_t;

/* Empties the buffer, keeping its memory (and clearing `failed`). */
void rt_buf_reset (rt_buf_t *b);
/* Frees the memory; the buffer is empty and usable again. Safe on zero. */
void rt_buf_free (rt_buf_t *b);

/* Makes room for n more bytes (false, and `failed`, when out of memory). */
bool rt_buf_reserve (rt_buf_t *b, size_t n);
/* The same for a buffer that never holds more than `limit` bytes (a body
 * of known length, a capped response): the allocation still doubles, but
 * stops at limit + 1 bytes, so a cap of N costs N, not up to 2N. len + n
 * beyond limit grows as rt_buf_reserve does. */
bool rt_buf_reserve_within (rt_buf_t *b, size_t n, size_t limit);
/* Appends n bytes (n may be 0, p then may be NULL). */
void rt_buf_put (rt_buf_t *b, const void *p, size_t n);
/* Appends a C string. */
void rt_buf_puts (rt_buf_t *b, const char *s);
/* Appends a C string escaped for HTML text and quoted attribute values
 * (& < > " ' as character references), so what a carrier or a customer
 * wrote cannot become markup. */
void rt_buf_put_html (rt_buf_t *b, const char *s);
/* Appends printf-style text. */
void rt_buf_printf (rt_buf_t *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* Appends big-endian integers (binary COPY, wire formats). */
void rt_buf_put_be16 (rt_buf_t *b, uint16_t v);
void rt_buf_put_be32 (rt_buf_t *b, uint32_t v);
void rt_buf_put_be64 (rt_buf_t *b, uint64_t v);

/* PostgreSQL array literals ("{a,b}"): start one, add elements, end it.
 * Elements are double-quoted and escaped, so a value may hold any
 * character (commas, quotes, braces, backslashes, "NULL"). */
void rt_buf_array_begin (rt_buf_t *b);
void rt_buf_array_text (rt_buf_t *b, const char *value);
/* An element already known to need no quoting (numbers, UUIDs). */
void rt_buf_array_raw (rt_buf_t *b, const char *value);
/* A bytea element, as \x hex. */
void rt_buf_array_bytea (rt_buf_t *b, const uint8_t *data, size_t len);
void rt_buf_array_end (rt_buf_t *b);
/* A whole array of n texts (begin, each, end); false when out of memory. */
bool rt_buf_array_of (rt_buf_t *b, const char *const *values, size_t n);

#endif
