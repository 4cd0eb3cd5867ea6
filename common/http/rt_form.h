/*
 * rt_form: application/x-www-form-urlencoded bodies and URL query strings.
 *
 * Parses "a=1&b=x+y%21" into (name, value) pairs, percent-decoded ('+' is a
 * space), in the order they came; offers lookup by name and the pairs
 * sorted by name, which is what Twilio's request signature is computed
 * over. Malformed percent escapes are an error, not silently kept.
 */
#ifndef RT_FORM_H
#define RT_FORM_H

#include <stddef.h>

typedef struct {
    char *name;  /* decoded, owned by the form */
    char *value; /* decoded, owned by the form */
} rt_form_pair_t;

typedef struct rt_form_t rt_form_t;

/* Parses len bytes. NULL with the reason in err on a malformed escape, an
 * embedded NUL after decoding, or out of memory. */
rt_form_t *rt_form_parse (const char *data, size_t len, char *err, size_t errlen);
void rt_form_destroy (rt_form_t **self_p);

/* Number of pairs, and the i-th in arrival order (lent). */
size_t rt_form_count (const rt_form_t *self);
const rt_form_pair_t *rt_form_pair (const rt_form_t *self, size_t i);

/* The first value of name, or NULL (lent). */
const char *rt_form_get (const rt_form_t *self, const char *name);

/* The pairs sorted by name (bytewise; stable for equal names), as an array
 * of pointers owned by the form (valid until destroy). */
const rt_form_pair_t *const *rt_form_sorted (rt_form_t *self);

/* Percent-decodes text ('+' as space when plus_is_space) into a new string;
 * NULL on a malformed escape. Owned by the caller. */
char *rt_url_decode (const char *text, size_t len, int plus_is_space);

#endif
