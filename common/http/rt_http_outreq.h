/*
 * rt_http_outreq: a request to an outside API as an adapter builds it
 * (notifyd's providers, trackerd's carriers) for rt_http_client_submit:
 * the URL with a copy of it for logs with the credential masked, the
 * header lines, the body, all owned by the request.
 *
 * An adapter that puts a credential into a URL (Telegram's bot token)
 * names it to rt_http_outreq_url, so the URL it logs never shows it; a
 * credential in a header or the body is never in log_url. Every function
 * that can fail returns -1 when out of memory (or when the headers are
 * full), the request then as it was before the call.
 */
#ifndef RT_HTTP_OUTREQ_H
#define RT_HTTP_OUTREQ_H

#include <stddef.h>

#include <jansson.h>

#include "rt_buf.h"

#define RT_HTTP_OUTREQ_HEADERS 8 /* header lines at most */

typedef struct {
    char *url;                                 /* owned; may carry a credential */
    char *log_url;                             /* owned: url with the credential masked */
    const char *method;                        /* "GET", "POST" (static) */
    char *headers[RT_HTTP_OUTREQ_HEADERS + 1]; /* "Name: value" lines, owned, NULL-ended */
    char *body;                                /* owned; NULL for none */
    size_t body_len;                           /* its length */
} rt_http_outreq_t;

/* Sets req's url, and log_url with every occurrence of `secret` (NULL:
 * none) replaced by "***", from printf-style parts. 0 or -1. */
int rt_http_outreq_url (rt_http_outreq_t *req, const char *secret, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Appends a "Name: value" line to req's headers. 0 or -1. */
int rt_http_outreq_header (rt_http_outreq_t *req, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Makes req's body the compact JSON of doc, in insertion order (its
 * reference is stolen; NULL fails), and adds Content-Type:
 * application/json. 0 or -1. */
int rt_http_outreq_json (rt_http_outreq_t *req, json_t *doc);

/* Adds "Authorization: Basic <base64 of user:password>", the pair wiped
 * from memory after. 0 or -1. */
int rt_http_outreq_basic_auth (rt_http_outreq_t *req, const char *user, const char *password);

/* Frees what req owns and zeroes it; safe on a zeroed or freed request. */
void rt_http_outreq_free (rt_http_outreq_t *req);

/* Appends the percent-encoding of value (NULL: "") to b, RFC 3986's
 * unreserved characters kept: a path segment or a query value. */
void rt_http_url_escape (rt_buf_t *b, const char *value);

/* Appends name=value to an application/x-www-form-urlencoded body in b
 * ('&' between pairs), both encoded as HTML forms do (space as '+'). */
void rt_http_form_add (rt_buf_t *b, const char *name, const char *value);

#endif
