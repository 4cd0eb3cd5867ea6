/*
 * formdata: multipart/form-data bodies and form-value hygiene (see
 * formdata.h).
 *
 * A body is: an optional preamble, then parts each opened by a delimiter
 * line "--<boundary>", and a closing "--<boundary>--". A delimiter counts
 * only at the start of a line and only when what follows it on the line is
 * "--" or blanks: "--abc" inside a part whose boundary is "ab" is data.
 * The line break before a delimiter belongs to the delimiter, not to the
 * data. Everything is searched with memmem over the lent body, so a part's
 * bytes are never copied.
 */
#include "formdata.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_form.h"
#include "rt_utf8.h"

/* RFC 2046 allows 70; some clients send longer ones. */
#define S_MAX_BOUNDARY 200

struct formdata_t {
    formdata_part_t *parts; /* in body order */
    size_t count;           /* their number */
    size_t cap;             /* allocated */
    bool damaged;           /* the body broke off or was malformed */
    char note[160];         /* what, when damaged */
};

bool
formdata_is_type (const char *content_type, const char *media_type)
{
    size_t n = strlen (media_type), i = 0;
    if (!content_type)
        return false;
    while (content_type[i] == ' ' || content_type[i] == '\t')
        i++;
    if (strncasecmp (content_type + i, media_type, n) != 0)
        return false;
    i += n;
    while (content_type[i] == ' ' || content_type[i] == '\t')
        i++;
    return content_type[i] == '\0' || content_type[i] == ';';
}

/* --- UTF-8 ---------------------------------------------------------- */

char *
formdata_utf8_dup (const void *data, size_t len)
{
    return rt_utf8_repair (data, len, NULL);
}

/* --- header parameters ---------------------------------------------- */

/* Finds parameter `param` in a header value like `form-data; name="a"`
 * (or a Content-Type's parameters) and returns its value, unquoted, as a
 * new string; NULL when absent (or out of memory). */
static char *
s_param (const char *value, size_t vlen, const char *param)
{
    size_t plen = strlen (param), i = 0;
    bool quoted = false;
    /* Skip the first token (the disposition or media type). */
    while (i < vlen && (value[i] != ';' || quoted)) {
        if (value[i] == '"')
            quoted = !quoted;
        i++;
    }
    while (i < vlen) {
        size_t start, end;
        i++; /* the ';' */
        while (i < vlen && (value[i] == ' ' || value[i] == '\t'))
            i++;
        start = i;
        while (i < vlen && value[i] != '=' && value[i] != ';')
            i++;
        end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (i < vlen && value[i] == '=') {
            bool match = end - start == plen && strncasecmp (value + start, param, plen) == 0;
            char *out = NULL;
            size_t o = 0;
            i++;
            while (i < vlen && (value[i] == ' ' || value[i] == '\t'))
                i++;
            if (match) {
                out = malloc (vlen - i + 1);
                if (!out)
                    return NULL;
            }
            if (i < vlen && value[i] == '"') {
                i++;
                while (i < vlen && value[i] != '"') {
                    /* A backslash quotes the next character, except that
                     * browsers send Windows paths unescaped: keep a
                     * backslash that quotes nothing special. */
                    if (value[i] == '\\' && i + 1 < vlen &&
                        (value[i + 1] == '"' || value[i + 1] == '\\'))
                        i++;
                    if (out)
                        out[o++] = value[i];
                    i++;
                }
                if (i < vlen)
                    i++; /* closing quote */
                while (i < vlen && value[i] != ';')
                    i++;
            } else {
                size_t vstart = i, vend;
                while (i < vlen && value[i] != ';')
                    i++;
                vend = i;
                while (vend > vstart && (value[vend - 1] == ' ' || value[vend - 1] == '\t'))
                    vend--;
                if (out) {
                    memcpy (out, value + vstart, vend - vstart);
                    o = vend - vstart;
                }
            }
            if (out) {
                out[o] = '\0';
                return out;
            }
        } else {
            /* A parameter without '=': skip it. */
            while (i < vlen && value[i] != ';')
                i++;
        }
    }
    return NULL;
}

/* RFC 5987 ext-value: charset'language'percent-encoded. Only UTF-8 and
 * ASCII charsets are decoded; others are kept as they come (then made
 * valid UTF-8 by the caller). */
static char *
s_ext_value (const char *ext)
{
    const char *q1 = strchr (ext, '\''), *q2;
    if (!q1)
        return NULL;
    q2 = strchr (q1 + 1, '\'');
    if (!q2)
        return NULL;
    return rt_url_decode (q2 + 1, strlen (q2 + 1), 0);
}

/* --- the parser ----------------------------------------------------- */

static void
s_damage (formdata_t *self, const char *note)
{
    if (!self->damaged) {
        self->damaged = true;
        snprintf (self->note, sizeof self->note, "%s", note);
    }
}

/* The next delimiter at or after `from`: "--boundary" at the start of a
 * line, followed by "--", or by blanks and a line end, or by the end of
 * the body. Returns its offset, or len when there is none. */
static size_t
s_find_delim (const uint8_t *body, size_t len, size_t from, const char *delim, size_t dlen)
{
    while (from < len) {
        const uint8_t *hit = memmem (body + from, len - from, delim, dlen);
        size_t at, p;
        if (!hit)
            return len;
        at = (size_t)(hit - body);
        p = at + dlen;
        if (at == 0 || body[at - 1] == '\n') {
            if (p + 1 < len && body[p] == '-' && body[p + 1] == '-')
                return at;
            while (p < len && (body[p] == ' ' || body[p] == '\t'))
                p++;
            if (p == len || body[p] == '\n' ||
                (body[p] == '\r' && p + 1 < len && body[p + 1] == '\n'))
                return at;
        }
        from = at + 1;
    }
    return len;
}

static int
s_add_part (formdata_t *self, const formdata_part_t *part)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        formdata_part_t *parts = realloc (self->parts, cap * sizeof *parts);
        if (!parts)
            return -1;
        self->parts = parts;
        self->cap = cap;
    }
    self->parts[self->count++] = *part;
    return 0;
}

static void
s_part_free (formdata_part_t *part)
{
    free (part->name);
    free (part->filename);
    free (part->content_type);
}

/* Reads the header lines of one part from body[*pos] up to the blank line,
 * filling the part's name, filename and content type. Returns 1 when the
 * block ended, 0 when it broke off (damaged), -1 out of memory. */
static int
s_read_headers (formdata_t *self, const uint8_t *body, size_t len, size_t *pos,
                formdata_part_t *part)
{
    size_t p = *pos, start = *pos;
    char *filename_ext = NULL;
    for (;;) {
        const uint8_t *nl;
        size_t line_end, colon, vstart, vend;
        nl = memchr (body + p, '\n', len - p);
        if (!nl) {
            s_damage (self, "a part's headers are not terminated");
            goto broke;
        }
        if ((size_t)(nl - body) - start > FORMDATA_MAX_HEADER) {
            s_damage (self, "a part's headers are too long");
            goto broke;
        }
        line_end = (size_t)(nl - body);
        if (line_end > p && body[line_end - 1] == '\r')
            line_end--;
        if (line_end == p) {
            *pos = (size_t)(nl - body) + 1;
            break; /* the blank line */
        }
        colon = p;
        while (colon < line_end && body[colon] != ':')
            colon++;
        if (colon < line_end) {
            const char *name = (const char *)body + p;
            size_t nlen = colon - p;
            vstart = colon + 1;
            while (vstart < line_end && (body[vstart] == ' ' || body[vstart] == '\t'))
                vstart++;
            vend = line_end;
            if (nlen == 19 && strncasecmp (name, "Content-Disposition", 19) == 0) {
                const char *v = (const char *)body + vstart;
                free (part->name);
                free (part->filename);
                free (filename_ext);
                part->name = s_param (v, vend - vstart, "name");
                part->filename = s_param (v, vend - vstart, "filename");
                filename_ext = s_param (v, vend - vstart, "filename*");
            } else if (nlen == 12 && strncasecmp (name, "Content-Type", 12) == 0) {
                size_t mend = vstart, i;
                while (mend < vend && body[mend] != ';')
                    mend++;
                while (mend > vstart && (body[mend - 1] == ' ' || body[mend - 1] == '\t'))
                    mend--;
                free (part->content_type);
                part->content_type = formdata_utf8_dup (body + vstart, mend - vstart);
                if (!part->content_type)
                    goto oom;
                for (i = 0; part->content_type[i]; i++)
                    part->content_type[i] = (char)tolower ((unsigned char)part->content_type[i]);
            }
        }
        p = (size_t)(nl - body) + 1;
    }
    /* filename* (RFC 5987) carries the exact name when both are sent. */
    if (filename_ext) {
        char *decoded = s_ext_value (filename_ext);
        if (decoded) {
            free (part->filename);
            part->filename = decoded;
        }
    }
    free (filename_ext);
    if (part->filename) {
        char *clean = formdata_utf8_dup (part->filename, strlen (part->filename));
        if (!clean)
            return -1;
        free (part->filename);
        part->filename = clean;
    }
    return 1;
broke:
    free (filename_ext);
    return 0;
oom:
    free (filename_ext);
    return -1;
}

formdata_t *
formdata_parse (const char *content_type, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    formdata_t *self = NULL;
    char *boundary = NULL, delim[S_MAX_BOUNDARY + 3];
    size_t dlen, blen, pos;
    if (!content_type || !formdata_is_type (content_type, "multipart/form-data")) {
        snprintf (err, errlen, "not multipart/form-data");
        return NULL;
    }
    boundary = s_param (content_type, strlen (content_type), "boundary");
    if (!boundary) {
        snprintf (err, errlen, "multipart/form-data without a boundary parameter");
        return NULL;
    }
    blen = strlen (boundary);
    if (blen == 0 || blen > S_MAX_BOUNDARY || strpbrk (boundary, "\r\n")) {
        snprintf (err, errlen, "multipart boundary of %zu characters is not usable", blen);
        free (boundary);
        return NULL;
    }
    dlen = (size_t)snprintf (delim, sizeof delim, "--%s", boundary);
    free (boundary);

    pos = s_find_delim (body, len, 0, delim, dlen);
    if (pos == len) {
        snprintf (err, errlen, "multipart body has no \"%.60s\" delimiter", delim);
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    for (;;) {
        formdata_part_t part = {0};
        size_t p = pos + dlen, next, end;
        int rc;
        if (p + 1 < len && body[p] == '-' && body[p + 1] == '-')
            break; /* the closing delimiter */
        while (p < len && body[p] != '\n')
            p++;
        if (p == len) {
            s_damage (self, "the body ends at a delimiter");
            break;
        }
        p++;
        if (self->count == FORMDATA_MAX_PARTS) {
            s_damage (self, "too many parts");
            break;
        }
        rc = s_read_headers (self, body, len, &p, &part);
        if (rc < 0) {
            s_part_free (&part);
            goto oom;
        }
        if (rc == 0) {
            s_part_free (&part);
            break;
        }
        next = s_find_delim (body, len, p, delim, dlen);
        end = next;
        if (next == len)
            s_damage (self, "no closing delimiter");
        else if (end > p && body[end - 1] == '\n') {
            end--;
            if (end > p && body[end - 1] == '\r')
                end--;
        }
        if (!part.name) {
            /* A part without a name has no field to fill. */
            s_damage (self, "a part without a name");
            s_part_free (&part);
        } else {
            if (!part.content_type) {
                part.content_type = strdup ("");
                if (!part.content_type) {
                    s_part_free (&part);
                    goto oom;
                }
            }
            part.data = body + p;
            part.len = end - p;
            if (s_add_part (self, &part) != 0) {
                s_part_free (&part);
                goto oom;
            }
        }
        if (next == len)
            break;
        pos = next;
    }
    return self;
oom:
    snprintf (err, errlen, "out of memory");
    formdata_destroy (&self);
    return NULL;
}

void
formdata_destroy (formdata_t **self_p)
{
    formdata_t *self;
    size_t i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; i < self->count; i++)
        s_part_free (&self->parts[i]);
    free (self->parts);
    free (self);
    *self_p = NULL;
}

size_t
formdata_count (const formdata_t *self)
{
    return self->count;
}

const formdata_part_t *
formdata_part (const formdata_t *self, size_t i)
{
    return i < self->count ? &self->parts[i] : NULL;
}

bool
formdata_damaged (const formdata_t *self)
{
    return self->damaged;
}

const char *
formdata_note (const formdata_t *self)
{
    return self->note;
}
