/*
 * rt_utf8: what PostgreSQL's text (and proto3's string) accept.
 *
 * PostgreSQL refuses a text value that is not UTF-8 or holds a NUL byte,
 * and it refuses it for the whole statement: one such value in a batch
 * fails everyone's rows. So every string from outside is checked here
 * before it joins a batch, and what must be kept anyway (a header, for
 * audit) is stored escaped rather than refused.
 *
 * Valid means RFC 3629: shortest form, no surrogates, at most U+10FFFF.
 */
#ifndef RT_UTF8_H
#define RT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Offset of the first byte that breaks UTF-8 (or is NUL when `nul_ok` is
 * false) in s[0..len); len when there is none. */
size_t rt_utf8_bad_at (const char *s, size_t len, bool nul_ok);

/* True when s[0..len) is UTF-8 with no NUL: storable as PostgreSQL text. */
bool rt_utf8_text_ok (const char *s, size_t len);

/* Length (1 to 4) of the valid UTF-8 sequence at s, of at most `avail`
 * bytes, or 0 when the bytes there are not one. A NUL is a sequence of 1. */
size_t rt_utf8_seq_len (const char *s, size_t avail);

/* A copy of s[0..len) with each byte that breaks UTF-8, and each NUL,
 * replaced by U+FFFD (what a reader shows, e.g. in JSON). Owned,
 * NUL-terminated, *out_len (may be NULL) its length; NULL only when out of
 * memory. */
char *rt_utf8_repair (const char *s, size_t len, size_t *out_len);

/* A copy of s[0..len) storable as text: each byte that breaks UTF-8, and
 * each NUL, becomes the four characters \xNN. Owned by the caller; NULL
 * only when out of memory. */
char *rt_utf8_escape (const char *s, size_t len);

/* The code points of s[0..len): the bytes that do not continue a
 * sequence (for valid UTF-8, its characters as Unicode counts them). */
size_t rt_utf8_count (const char *s, size_t len);

/* Where to cut valid UTF-8 s[0..len) into pieces of at most max_chars
 * code points each, for a channel that takes a long text as several
 * messages: each piece ends at the last paragraph break (a blank line)
 * within its room, else the last line break, else the last sentence end
 * (". ", "! ", "? "), else the last space, else at max_chars exactly,
 * never inside a character. The breaks a cut falls on end the piece
 * before it, and the next piece starts past the spaces and line breaks
 * after it. The pieces' offsets and lengths into off[] and n[] (room for
 * max_pieces); how many, or 0 when s needs more than max_pieces (or
 * max_chars is 0). An empty s is one empty piece. */
size_t rt_utf8_split (const char *s, size_t len, size_t max_chars, size_t *off, size_t *n,
                      size_t max_pieces);

#endif
