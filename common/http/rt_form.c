/*
 * rt_form: urlencoded forms and query strings (see rt_form.h).
 */
#include "rt_form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_codec.h"

struct rt_form_t {
    rt_form_pair_t *pairs;         /* in arrival order */
    size_t count;                  /* number of pairs */
    const rt_form_pair_t **sorted; /* by name, made on demand */
};

char *
rt_url_decode (const char *text, size_t len, int plus_is_space)
{
    char *out = malloc (len + 1);
    size_t i, o = 0;
    if (!out)
        return NULL;
    for (i = 0; i < len; i++) {
        if (text[i] == '%') {
            int hi, lo;
            hi = i + 1 < len ? rt_hex_value (text[i + 1]) : -1;
            lo = i + 2 < len ? rt_hex_value (text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free (out);
                return NULL;
            }
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (text[i] == '+' && plus_is_space)
            out[o++] = ' ';
        else
            out[o++] = text[i];
    }
    out[o] = '\0';
    /* An encoded NUL would silently cut the value short. */
    if (strlen (out) != o) {
        free (out);
        return NULL;
    }
    return out;
}

rt_form_t *
rt_form_parse (const char *data, size_t len, char *err, size_t errlen)
{
    rt_form_t *self = calloc (1, sizeof *self);
    size_t start = 0, cap = 0;
    if (!self)
        goto oom;
    while (start < len) {
        size_t end = start, eq;
        char *name, *value;
        while (end < len && data[end] != '&')
            end++;
        if (end == start) {
            start = end + 1; /* "a=1&&b=2": empty part, skipped */
            continue;
        }
        eq = start;
        while (eq < end && data[eq] != '=')
            eq++;
        name = rt_url_decode (data + start, eq - start, 1);
        value = eq < end ? rt_url_decode (data + eq + 1, end - eq - 1, 1) : strdup ("");
        if (!name || !value) {
            free (name);
            free (value);
            snprintf (err, errlen, "malformed percent-encoding in \"%.*s\"",
                      (int)(end - start > 60 ? 60 : end - start), data + start);
            rt_form_destroy (&self);
            return NULL;
        }
        if (self->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            rt_form_pair_t *pairs = realloc (self->pairs, ncap * sizeof *pairs);
            if (!pairs) {
                free (name);
                free (value);
                goto oom;
            }
            self->pairs = pairs;
            cap = ncap;
        }
        self->pairs[self->count].name = name;
        self->pairs[self->count].value = value;
        self->count++;
        start = end + 1;
    }
    return self;
oom:
    snprintf (err, errlen, "out of memory");
    rt_form_destroy (&self);
    return NULL;
}

void
rt_form_destroy (rt_form_t **self_p)
{
    rt_form_t *self;
    size_t i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; i < self->count; i++) {
        free (self->pairs[i].name);
        free (self->pairs[i].value);
    }
    free (self->pairs);
    free (self->sorted);
    free (self);
    *self_p = NULL;
}

size_t
rt_form_count (const rt_form_t *self)
{
    return self->count;
}

const rt_form_pair_t *
rt_form_pair (const rt_form_t *self, size_t i)
{
    return i < self->count ? &self->pairs[i] : NULL;
}

const char *
rt_form_get (const rt_form_t *self, const char *name)
{
    size_t i;
    for (i = 0; i < self->count; i++) {
        if (strcmp (self->pairs[i].name, name) == 0)
            return self->pairs[i].value;
    }
    return NULL;
}

/* By name, bytewise; equal names keep their arrival order, which is their
 * order in the pairs array, so comparing the addresses makes qsort stable. */
static int
s_pair_cmp (const void *a, const void *b)
{
    const rt_form_pair_t *x = *(const rt_form_pair_t *const *)a;
    const rt_form_pair_t *y = *(const rt_form_pair_t *const *)b;
    int c = strcmp (x->name, y->name);
    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

const rt_form_pair_t *const *
rt_form_sorted (rt_form_t *self)
{
    size_t i;
    if (self->sorted)
        return self->sorted;
    self->sorted = malloc ((self->count ? self->count : 1) * sizeof *self->sorted);
    if (!self->sorted)
        return NULL;
    /* Twilio's signature is checked over the sorted pairs, so this runs on
     * bodies nobody has authenticated yet: it must stay O(n log n) however
     * the pairs are ordered (an insertion sort took seconds on a reversed
     * 40,000-pair form). */
    for (i = 0; i < self->count; i++)
        self->sorted[i] = &self->pairs[i];
    if (self->count > 1)
        qsort (self->sorted, self->count, sizeof *self->sorted, s_pair_cmp);
    return self->sorted;
}
