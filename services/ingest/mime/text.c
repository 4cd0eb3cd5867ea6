/*
 * mime text: the body text's clean-up once it is UTF-8 (see mime_int.h):
 * RFC 3676 format=flowed lines joined back into paragraphs, and the whole
 * text tidied (line breaks, trailing whitespace, blank lines at the ends)
 * so that every channel's messages read alike.
 *
 * Both are one pass over their input, appending to a buffer.
 */
#include <string.h>

#include "mime_int.h"

void
mime_text_unflow (rt_buf_t *out, const char *p, size_t n, bool delsp)
{
    size_t pos = 0;
    int prev_depth = -1;
    bool joining = false;
    while (pos < n) {
        size_t eol, next = mime_line (p, n, pos, &eol), i = pos;
        int depth = 0;
        bool flowed;
        while (i < eol && p[i] == '>') {
            depth++;
            i++;
        }
        if (joining && depth != prev_depth)
            mime_buf_addc (out, '\n'); /* a flowed line may not continue into another depth */
        if (!joining || depth != prev_depth) {
            int d;
            for (d = 0; d < depth; d++)
                mime_buf_addc (out, '>');
            if (depth > 0)
                mime_buf_addc (out, ' ');
        }
        if (i < eol && p[i] == ' ') /* space-stuffing */
            i++;
        /* A line ending in a space continues on the next line of the same
         * quote depth, a signature separator "-- " excepted. */
        flowed = eol > i && p[eol - 1] == ' ' && !(eol - i == 3 && memcmp (p + i, "-- ", 3) == 0);
        rt_buf_put (out, p + i, (eol - i) - (flowed && delsp ? 1 : 0));
        if (!flowed)
            mime_buf_addc (out, '\n');
        joining = flowed;
        prev_depth = depth;
        pos = next;
    }
}

void
mime_text_tidy (rt_buf_t *out, const char *p, size_t n)
{
    size_t pos = 0, blank = 0;
    bool started = false;
    while (pos < n) {
        size_t end = pos, next, e;
        while (end < n && p[end] != '\n' && p[end] != '\r')
            end++;
        if (end + 1 < n && p[end] == '\r' && p[end + 1] == '\n')
            next = end + 2;
        else
            next = end < n ? end + 1 : n;
        e = end;
        while (e > pos && mime_is_space (p[e - 1]))
            e--;
        if (e == pos) {
            if (started)
                blank++;
        } else {
            if (started) {
                mime_buf_addc (out, '\n');
                for (; blank > 0; blank--)
                    mime_buf_addc (out, '\n');
            }
            blank = 0;
            rt_buf_put (out, p + pos, e - pos);
            started = true;
        }
        pos = next;
    }
}
