/*
 * rt_http_parse: the HTTP/1.1 request parser behind rt_http_server
 * (private to common/http; daemons use rt_http_server.h).
 *
 * Plain functions over bytes, no sockets and no libevent, so a fuzzer or a
 * unit test drives them alone. The server copies a request's head (request
 * line and header fields) into a buffer of its own as it arrives, asks
 * rt_http_scan_head whether the empty line that ends it has come, then has
 * rt_http_parse_head cut it in place into NUL-terminated pieces and decide
 * the framing of the body. Chunked bodies go through rt_http_chunked_feed.
 *
 * Strict by design (RFC 9112 where it lets a server choose): lines end in
 * CRLF, and a bare CR, a bare LF or a NUL anywhere in the head is refused;
 * obs-fold is refused; a field name must be a token with no space before
 * its colon; a field value holds only HTAB, SP, visible ASCII and obs-text
 * (0x80-0xFF, passed through as received); Content-Length is digits only,
 * and several of them must agree; Content-Length together with
 * Transfer-Encoding is refused, and "chunked" is the only transfer coding.
 * Every refusal is a value of rt_http_refusal_t with a fixed status and a
 * constant detail text that never echoes what the peer sent.
 */
#ifndef RT_HTTP_PARSE_H
#define RT_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_buf.h"

/* Why the server refused a request or a connection; each has one status,
 * one metric label and one problem type (rt_http_refusal_info). */
typedef enum {
    RT_HTTP_REFUSAL_NONE = 0,
    RT_HTTP_REFUSAL_BAD_REQUEST_LINE,     /* 400 */
    RT_HTTP_REFUSAL_BAD_HEADER,           /* 400 */
    RT_HTTP_REFUSAL_BAD_CONTENT_LENGTH,   /* 400: invalid or conflicting */
    RT_HTTP_REFUSAL_AMBIGUOUS_FRAMING,    /* 400: Content-Length and Transfer-Encoding */
    RT_HTTP_REFUSAL_BAD_CHUNK,            /* 400: malformed chunked body */
    RT_HTTP_REFUSAL_BAD_JSON,             /* 400: rt_http_body_json */
    RT_HTTP_REFUSAL_IDEMPOTENCY_MISSING,  /* 400: a route that requires Idempotency-Key */
    RT_HTTP_REFUSAL_IDEMPOTENCY_INVALID,  /* 400: a key over 255 bytes or not visible ASCII */
    RT_HTTP_REFUSAL_UNAUTHORIZED,         /* 401: the auth hook knows no such credentials */
    RT_HTTP_REFUSAL_FORBIDDEN,            /* 403: the auth hook refuses these credentials */
    RT_HTTP_REFUSAL_NOT_FOUND,            /* 404 */
    RT_HTTP_REFUSAL_METHOD_NOT_ALLOWED,   /* 405 */
    RT_HTTP_REFUSAL_HEADER_TIMEOUT,       /* 408 */
    RT_HTTP_REFUSAL_BODY_TIMEOUT,         /* 408 */
    RT_HTTP_REFUSAL_IDEMPOTENCY_BUSY,     /* 409: the key's first request is still running */
    RT_HTTP_REFUSAL_TOO_LARGE,            /* 413 */
    RT_HTTP_REFUSAL_EXPECTATION,          /* 417: an Expect other than 100-continue */
    RT_HTTP_REFUSAL_IDEMPOTENCY_REUSED,   /* 422: the key came with another request */
    RT_HTTP_REFUSAL_TOO_MANY_PER_ADDRESS, /* 429 */
    RT_HTTP_REFUSAL_HEADERS_TOO_LARGE,    /* 431: request line and headers over the bytes cap */
    RT_HTTP_REFUSAL_TOO_MANY_HEADERS,     /* 431: over the count cap */
    RT_HTTP_REFUSAL_HANDLER,              /* 500: a handler returned without answering */
    RT_HTTP_REFUSAL_UNSUPPORTED_CODING,   /* 501 */
    RT_HTTP_REFUSAL_TOO_MANY_CONNECTIONS, /* 503 */
    RT_HTTP_REFUSAL_NO_MEMORY,            /* 503 */
    RT_HTTP_REFUSAL_IDEMPOTENCY_STORE,    /* 503: the idempotency store failed */
    RT_HTTP_REFUSAL_VERSION,              /* 505 */
    RT_HTTP_REFUSAL_COUNT
} rt_http_refusal_t;

typedef struct {
    int status;         /* the HTTP status answered */
    const char *label;  /* metric label and log reason, e.g. "too_large" */
    const char *type;   /* problem type suffix, e.g. "too-large" */
    bool closes;        /* the connection is closed after the answer */
    const char *detail; /* the default detail text */
} rt_http_refusal_info_t;

/* The fixed facts of a refusal; never NULL for a value below COUNT. */
const rt_http_refusal_info_t *rt_http_refusal_info (rt_http_refusal_t refusal);

/* RFC 9110's reason phrase of a status ("Content Too Large"); "Unknown"
 * for one it does not name. */
const char *rt_http_status_text (int status);

/* True for a byte of an RFC 9110 token (tchar). */
bool rt_http_is_tchar (unsigned char c);

/* Where the search for the end of a head stopped, kept between calls so
 * a head arriving one byte at a time is scanned once. Zero it to start. */
typedef struct {
    size_t scan;       /* bytes already looked at */
    size_t line_start; /* offset where the current line starts */
    size_t skip;       /* bytes of empty lines before the request line */
    size_t lines;      /* complete lines, the request line included */
} rt_http_scan_t;

/* Looks at buf[0..len), which holds what arrived of a head (the first
 * `s->scan` bytes already scanned). Returns 1 and sets *head_len (bytes up
 * to and including the empty line) when the head is complete, 0 when more
 * is needed, -1 with *refusal and *detail set on a byte no head may hold
 * (NUL, CR without LF, LF without CR) or when more than max_lines lines
 * came (TOO_MANY_HEADERS). Empty lines before the request line are skipped
 * (RFC 9112 section 2.2) and counted in s->skip. */
int rt_http_scan_head (rt_http_scan_t *s, const char *buf, size_t len, size_t max_lines,
                       size_t *head_len, rt_http_refusal_t *refusal, const char **detail);

/* One header field; both strings point into the parsed head. */
typedef struct {
    const char *name;  /* as received (case kept) */
    const char *value; /* without surrounding whitespace; may hold 0x80-0xFF */
} rt_http_field_t;

/* A parsed head. Strings point into the buffer given to rt_http_parse_head. */
typedef struct {
    const char *method;      /* a token, e.g. "POST" */
    const char *target;      /* the raw request-target */
    const char *path;        /* start of the path within target (not terminated) */
    size_t path_len;         /* its length */
    const char *query;       /* start of the query (after '?') within target */
    size_t query_len;        /* its length, 0 when none */
    int minor;               /* HTTP/1.<minor>: 0 or 1 */
    rt_http_field_t *fields; /* the caller's array, filled in arrival order */
    size_t nfields;          /* fields used */
    bool has_length;         /* Content-Length given */
    uint64_t length;         /* its value */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool keep_alive;         /* the connection may serve another request */
    bool expect_continue;    /* Expect: 100-continue */
} rt_http_head_t;

/* Parses head[skip..len) in place (writes NULs into it). `fields` has room
 * for max_fields entries. Returns RT_HTTP_REFUSAL_NONE, or the refusal with
 * *detail set; method, target and path are set (all or none) once the
 * request line is valid, so a later refusal can still name them. */
rt_http_refusal_t rt_http_parse_head (char *head, size_t len, size_t skip, rt_http_head_t *out,
                                      rt_http_field_t *fields, size_t max_fields,
                                      const char **detail);

/* The state of a chunked body being decoded. Zero it to start. */
typedef struct {
    int state;            /* where in the chunk syntax the next byte is */
    uint64_t remaining;   /* data bytes left in the current chunk */
    size_t line;          /* bytes of the current size or trailer line */
    size_t digits;        /* hex digits of the current size */
    size_t trailer_bytes; /* bytes of trailer fields so far */
} rt_http_chunked_t;

/* Decodes in[0..len): chunk data is appended to body, which never grows
 * beyond max_body bytes (TOO_LARGE instead; NO_MEMORY when it cannot
 * grow); trailer fields are checked and dropped (at most max_trailer
 * bytes: HEADERS_TOO_LARGE). Returns the bytes consumed; sets *done once
 * the body and its trailer section ended (the bytes after it are not
 * consumed); *refusal on a malformed body. */
size_t rt_http_chunked_feed (rt_http_chunked_t *c, const char *in, size_t len, rt_buf_t *body,
                             size_t max_body, size_t max_trailer, bool *done,
                             rt_http_refusal_t *refusal, const char **detail);

#endif
