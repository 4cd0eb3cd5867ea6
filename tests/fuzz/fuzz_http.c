/*
 * libFuzzer target for the HTTP server's parser (common/http/
 * rt_http_parse.h): the input is what a client sends on one connection,
 * and the harness reads it as rt_http_conn.c does: scan for the end of a
 * head, parse the head, then read its body (Content-Length bytes, or the
 * chunked decoder with its trailers) and go on with the next request of
 * the pipeline, until the bytes end or a request is refused.
 *
 * Beyond the sanitizers, it checks what the server relies on:
 *   - scanning a head byte by byte, as a trickling client sends it, ends
 *     where scanning it at once does, with the same verdict;
 *   - the chunked decoder fed in small pieces consumes, decodes and
 *     refuses exactly as when fed at once, and never grows the body past
 *     its cap;
 *   - a parsed head's pieces lie inside the head (method, target, path,
 *     query, every field), and Content-Length with chunked never both.
 * A broken rule aborts, which libFuzzer reports as a crash.
 *
 * At exit it prints the line tests/fuzz/run reads:
 *   retain-fuzz http: N runs, A accepted (I items), 0 refused at the
 *   signature, O refused for another reason
 * where an input is accepted when at least one request in it parsed with
 * its body, items counts those requests, and the rest were refused.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_http_parse.h"

/* The server's defaults, smaller where a bound only costs fuzzing time. */
#define S_MAX_HEADERS 100
#define S_MAX_BODY    (16 * 1024)
#define S_MAX_TRAILER (8 * 1024)

static struct {
    unsigned long inputs;   /* calls of the target */
    unsigned long accepted; /* inputs with a request parsed whole */
    unsigned long items;    /* requests parsed whole */
    unsigned long other;    /* inputs with none */
} s_stats;

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf (stderr, "fuzz_http: broken rule: %s (line %d)\n", #cond, __LINE__);           \
            abort ();                                                                              \
        }                                                                                          \
    } while (0)

/* Scans buf[0..len) for a head's end at once and byte by byte; both must
 * agree. Returns the scanner's verdict, *head_len and the scan state. */
static int
s_scan (const char *buf, size_t len, size_t *head_len, rt_http_scan_t *scan)
{
    rt_http_scan_t whole = {0}, trickle = {0};
    rt_http_refusal_t r1 = RT_HTTP_REFUSAL_NONE, r2 = RT_HTTP_REFUSAL_NONE;
    const char *d1 = NULL, *d2 = NULL;
    size_t h1 = 0, h2 = 0;
    int rc1 = rt_http_scan_head (&whole, buf, len, S_MAX_HEADERS, &h1, &r1, &d1);
    int rc2 = 0;
    for (size_t n = 1; n <= len && rc2 == 0; n++)
        rc2 = rt_http_scan_head (&trickle, buf, n, S_MAX_HEADERS, &h2, &r2, &d2);
    S_CHECK (rc1 == rc2);
    if (rc1 == 1) {
        S_CHECK (h1 == h2 && h1 <= len && whole.skip == trickle.skip);
        S_CHECK (whole.lines == trickle.lines);
    }
    if (rc1 < 0)
        S_CHECK (r1 == r2 && r1 != RT_HTTP_REFUSAL_NONE && d1 && d2);
    *head_len = h1;
    *scan = whole;
    return rc1;
}

static bool
s_inside (const char *p, size_t n, const char *head, size_t len)
{
    return p >= head && p + n <= head + len;
}

/* Parses the head in a copy of buf[0..head_len) and checks its pieces. */
static rt_http_refusal_t
s_parse (const char *buf, size_t head_len, const rt_http_scan_t *scan, rt_http_head_t *h)
{
    size_t nfields = scan->lines > 0 ? scan->lines - 1 : 0;
    rt_http_field_t *fields = calloc (nfields ? nfields : 1, sizeof *fields);
    char *head = malloc (head_len + 1);
    const char *detail = NULL;
    rt_http_refusal_t r;
    S_CHECK (fields && head);
    memcpy (head, buf, head_len);
    head[head_len] = '\0';
    r = rt_http_parse_head (head, head_len, scan->skip, h, fields, nfields, &detail);
    if (h->method) {
        S_CHECK (h->target && h->path);
        S_CHECK (s_inside (h->method, strlen (h->method), head, head_len));
        S_CHECK (s_inside (h->target, strlen (h->target), head, head_len));
        /* An absolute target of no path is read as "/", a constant. */
        S_CHECK (s_inside (h->path, h->path_len, head, head_len) || strcmp (h->path, "/") == 0);
        S_CHECK (s_inside (h->query, h->query_len, head, head_len) || h->query_len == 0);
    }
    if (r == RT_HTTP_REFUSAL_NONE) {
        S_CHECK (h->method && h->nfields <= nfields && (h->minor == 0 || h->minor == 1));
        S_CHECK (!(h->chunked && h->has_length));
        for (size_t i = 0; i < h->nfields; i++) {
            S_CHECK (s_inside (fields[i].name, strlen (fields[i].name), head, head_len));
            S_CHECK (s_inside (fields[i].value, strlen (fields[i].value), head, head_len));
        }
    } else
        S_CHECK (detail != NULL);
    free (fields);
    free (head);
    h->fields = NULL; /* freed with the copy */
    return r;
}

/* Decodes a chunked body from in[0..len) at once and in pieces; both must
 * agree. Returns the bytes consumed, or 0 with *ok false on a refusal or
 * a body that did not end. */
static size_t
s_chunked (const char *in, size_t len, bool *ok)
{
    rt_http_chunked_t c1 = {0}, c2 = {0};
    rt_buf_t b1 = {0}, b2 = {0};
    rt_http_refusal_t r1, r2 = RT_HTTP_REFUSAL_NONE;
    const char *d1 = NULL, *d2 = NULL;
    bool done1 = false, done2 = false;
    size_t used1 =
        rt_http_chunked_feed (&c1, in, len, &b1, S_MAX_BODY, S_MAX_TRAILER, &done1, &r1, &d1);
    size_t used2 = 0;
    /* Pieces of 1 to 7 bytes, as reads from a socket might cut them. */
    for (size_t step = 1; used2 < len && !done2 && r2 == RT_HTTP_REFUSAL_NONE;
         step = step % 7 + 1) {
        size_t n = len - used2 < step ? len - used2 : step;
        size_t u = rt_http_chunked_feed (&c2, in + used2, n, &b2, S_MAX_BODY, S_MAX_TRAILER, &done2,
                                         &r2, &d2);
        S_CHECK (u <= n);
        used2 += u;
        if (u < n && !done2 && r2 == RT_HTTP_REFUSAL_NONE)
            S_CHECK (!"the decoder left bytes of a piece without a reason");
    }
    S_CHECK (used1 == used2 && done1 == done2 && r1 == r2);
    S_CHECK (b1.len == b2.len && (b1.len == 0 || memcmp (b1.data, b2.data, b1.len) == 0));
    S_CHECK (b1.len <= S_MAX_BODY && !b1.failed);
    if (r1 != RT_HTTP_REFUSAL_NONE)
        S_CHECK (d1 != NULL);
    rt_buf_free (&b1);
    rt_buf_free (&b2);
    *ok = done1 && r1 == RT_HTTP_REFUSAL_NONE;
    return used1;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t left = size, parsed = 0;
    s_stats.inputs++;
    for (;;) {
        rt_http_scan_t scan;
        rt_http_head_t h;
        size_t head_len;
        bool ok = true;
        if (s_scan (p, left, &head_len, &scan) != 1)
            break;
        if (s_parse (p, head_len, &scan, &h) != RT_HTTP_REFUSAL_NONE)
            break;
        p += head_len;
        left -= head_len;
        if (h.chunked) {
            size_t used = s_chunked (p, left, &ok);
            if (!ok)
                break;
            p += used;
            left -= used;
        } else if (h.has_length) {
            if (h.length > S_MAX_BODY || h.length > left)
                break;
            p += h.length;
            left -= (size_t)h.length;
        }
        parsed++;
        if (!h.keep_alive || left == 0)
            break;
    }
    s_stats.items += parsed;
    if (parsed > 0)
        s_stats.accepted++;
    else
        s_stats.other++;
    return 0;
}

static void
s_print_stats (void)
{
    fprintf (stderr,
             "retain-fuzz http: %lu runs, %lu accepted (%lu items), 0 refused at the "
             "signature, %lu refused for another reason\n",
             s_stats.inputs, s_stats.accepted, s_stats.items, s_stats.other);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit (s_print_stats);
    return 0;
}
