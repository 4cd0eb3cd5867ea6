/*
 * rt_http_outreq: requests to outside APIs as adapters build them
 * (rt_http_outreq.h).
 */
#include "rt_http_outreq.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_codec.h"

/* A copy of s with every occurrence of secret replaced by "***". */
static char *
s_mask (const char *s, const char *secret)
{
    rt_buf_t b = {0};
    size_t slen;
    const char *p = s, *hit;
    if (!secret || !secret[0])
        return strdup (s);
    slen = strlen (secret);
    hit = strstr (p, secret);
    while (hit) {
        rt_buf_put (&b, p, (size_t)(hit - p));
        rt_buf_puts (&b, "***");
        p = hit + slen;
        hit = strstr (p, secret);
    }
    rt_buf_puts (&b, p);
    if (b.failed || !b.data) {
        rt_buf_free (&b);
        return NULL;
    }
    return b.data;
}

int
rt_http_outreq_url (rt_http_outreq_t *req, const char *secret, const char *fmt, ...)
{
    va_list args;
    char *url = NULL, *masked;
    int n;
    va_start (args, fmt);
    n = vasprintf (&url, fmt, args);
    va_end (args);
    if (n < 0)
        return -1;
    masked = s_mask (url, secret);
    if (!masked) {
        free (url);
        return -1;
    }
    free (req->url);
    free (req->log_url);
    req->url = url;
    req->log_url = masked;
    return 0;
}

int
rt_http_outreq_header (rt_http_outreq_t *req, const char *fmt, ...)
{
    size_t i = 0;
    va_list args;
    char *line = NULL;
    int n;
    while (i < RT_HTTP_OUTREQ_HEADERS && req->headers[i])
        i++;
    if (i == RT_HTTP_OUTREQ_HEADERS)
        return -1;
    va_start (args, fmt);
    n = vasprintf (&line, fmt, args);
    va_end (args);
    if (n < 0)
        return -1;
    req->headers[i] = line;
    return 0;
}

int
rt_http_outreq_json (rt_http_outreq_t *req, json_t *doc)
{
    char *body;
    if (!doc)
        return -1;
    /* Compact and in insertion order: what a test reads back field by
     * field, and what the other side's support sees. */
    body = json_dumps (doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref (doc);
    if (!body)
        return -1;
    free (req->body);
    req->body = body;
    req->body_len = strlen (body);
    return rt_http_outreq_header (req, "Content-Type: application/json");
}

int
rt_http_outreq_basic_auth (rt_http_outreq_t *req, const char *user, const char *password)
{
    char *pair = NULL, *b64;
    size_t len;
    int rc;
    if (asprintf (&pair, "%s:%s", user ? user : "", password ? password : "") < 0)
        return -1;
    len = strlen (pair);
    b64 = malloc (4 * ((len + 2) / 3) + 1);
    if (!b64) {
        memset (pair, 0, len);
        free (pair);
        return -1;
    }
    rt_base64_encode ((const uint8_t *)pair, len, b64);
    rc = rt_http_outreq_header (req, "Authorization: Basic %s", b64);
    /* The pair is the credential: not left in freed memory. */
    memset (pair, 0, len);
    memset (b64, 0, strlen (b64));
    free (pair);
    free (b64);
    return rc;
}

void
rt_http_outreq_free (rt_http_outreq_t *req)
{
    if (!req)
        return;
    free (req->url);
    free (req->log_url);
    for (size_t i = 0; i < RT_HTTP_OUTREQ_HEADERS; i++)
        free (req->headers[i]);
    free (req->body);
    memset (req, 0, sizeof *req);
}

static bool
s_unreserved (unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void
s_escape (rt_buf_t *b, const char *value, bool plus_for_space)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (s_unreserved (*p)) {
            rt_buf_put (b, p, 1);
        } else if (*p == ' ' && plus_for_space) {
            rt_buf_put (b, "+", 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rt_buf_put (b, esc, 3);
        }
    }
}

void
rt_http_url_escape (rt_buf_t *b, const char *value)
{
    s_escape (b, value ? value : "", false);
}

void
rt_http_form_add (rt_buf_t *b, const char *name, const char *value)
{
    if (b->len > 0)
        rt_buf_put (b, "&", 1);
    s_escape (b, name ? name : "", true);
    rt_buf_put (b, "=", 1);
    s_escape (b, value ? value : "", true);
}
