/*
 * rt_jsonw: JSON written straight into an rt_buf, for answers built from
 * rows.
 *
 * An answer of a hundred rows made with jansson is a tree of a few
 * thousand nodes, each allocated, hashed into its object and freed again
 * once json_dumps has walked it: for routerd's inbox that was most of the
 * CPU an answer cost. The rows are already in the order the answer wants
 * and every value is a string, a number or a flag, so a writer that
 * appends text does the same work with no tree.
 *
 * The writer puts the commas and the colons; the caller says the shape:
 * open and close objects and arrays, a key before each member's value.
 * Strings are escaped as RFC 8259 asks (quote, backslash, the control
 * characters) and bytes that are not UTF-8 become U+FFFD, so the text is
 * always JSON a client can parse. Nesting is bounded (RT_JSONW_DEPTH);
 * deeper, or a value where a key is due, marks the writer failed, as an
 * allocation failure of the buffer does: check rt_jsonw_ok once, at the
 * end.
 */
#ifndef RT_JSONW_H
#define RT_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_buf.h"

#define RT_JSONW_DEPTH 16 /* objects and arrays open at once, at most */

typedef struct {
    rt_buf_t *buf;                /* where the text goes (lent) */
    int depth;                    /* containers open */
    bool object[RT_JSONW_DEPTH];  /* container i is an object (else an array) */
    bool first[RT_JSONW_DEPTH];   /* nothing written in container i yet */
    bool key_due[RT_JSONW_DEPTH]; /* object i waits for a key */
    bool failed;                  /* a misuse: the text is not JSON */
} rt_jsonw_t;

/* A writer appending to buf (which it does not reset). */
void rt_jsonw_init (rt_jsonw_t *w, rt_buf_t *buf);

/* True when everything written is well-formed so far and the buffer
 * never failed; the text is complete once every container is closed. */
bool rt_jsonw_ok (const rt_jsonw_t *w);

void rt_jsonw_object (rt_jsonw_t *w);
void rt_jsonw_object_end (rt_jsonw_t *w);
void rt_jsonw_array (rt_jsonw_t *w);
void rt_jsonw_array_end (rt_jsonw_t *w);

/* The key of the next member of the open object. */
void rt_jsonw_key (rt_jsonw_t *w, const char *key);

/* Values. rt_jsonw_string of NULL writes null. */
void rt_jsonw_string (rt_jsonw_t *w, const char *s);
void rt_jsonw_stringn (rt_jsonw_t *w, const char *s, size_t len);
void rt_jsonw_int (rt_jsonw_t *w, int64_t v);
void rt_jsonw_bool (rt_jsonw_t *w, bool v);
void rt_jsonw_null (rt_jsonw_t *w);

/* A value that is already JSON text (e.g. a json column PostgreSQL
 * made), written as it is: the caller vouches for it. */
void rt_jsonw_raw (rt_jsonw_t *w, const char *json);

/* Shorthands for a member: the key, then the value. */
void rt_jsonw_kstring (rt_jsonw_t *w, const char *key, const char *s);
void rt_jsonw_kint (rt_jsonw_t *w, const char *key, int64_t v);
void rt_jsonw_kbool (rt_jsonw_t *w, const char *key, bool v);

#endif
