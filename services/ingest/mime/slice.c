/*
 * mime slices: how every piece of mime reads its input (see mime_int.h).
 *
 * The input is (pointer, length), never a C string: each helper here
 * stays within its n bytes, whatever they hold (NULs included), and takes
 * time linear in them.
 */
#include <string.h>
#include <strings.h>

#include "mime_int.h"

bool
mime_prefix (const char *p, size_t n, const char *prefix)
{
    size_t k = strlen (prefix);
    return n >= k && strncasecmp (p, prefix, k) == 0;
}

bool
mime_suffix (const char *p, size_t n, const char *suffix)
{
    size_t k = strlen (suffix);
    return n >= k && strncasecmp (p + n - k, suffix, k) == 0;
}

const char *
mime_find_ci (const char *p, size_t n, const char *needle)
{
    size_t k = strlen (needle), i;
    if (k == 0 || n < k)
        return NULL;
    for (i = 0; i + k <= n; i++) {
        if (strncasecmp (p + i, needle, k) == 0)
            return p + i;
    }
    return NULL;
}

size_t
mime_line (const char *p, size_t n, size_t pos, size_t *eol)
{
    const char *nl = pos < n ? memchr (p + pos, '\n', n - pos) : NULL;
    size_t end = nl ? (size_t)(nl - p) : n;
    size_t next = nl ? end + 1 : n;
    if (end > pos && p[end - 1] == '\r')
        end--;
    *eol = end;
    return next;
}

void
mime_trim (const char **p, size_t *n)
{
    while (*n > 0 && mime_is_space (**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && mime_is_space ((*p)[*n - 1]))
        (*n)--;
}

size_t
mime_skip_cfws (const char *s, size_t n, size_t i)
{
    while (i < n) {
        if (mime_is_space (s[i])) {
            i++;
        } else if (s[i] == '(') {
            int depth = 0;
            for (; i < n; i++) {
                if (s[i] == '\\' && i + 1 < n) {
                    i++;
                } else if (s[i] == '(') {
                    depth++;
                } else if (s[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
            }
        } else {
            break;
        }
    }
    return i;
}
