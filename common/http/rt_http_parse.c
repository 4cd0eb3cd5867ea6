/*
 * rt_http_parse: the strict HTTP/1.1 request parser (see rt_http_parse.h).
 *
 * Why strict: retain sits behind proxies and load balancers that parse the
 * same bytes. Wherever two readings of a head could differ (a bare CR or
 * LF, a folded line, a space before a colon, two Content-Length values,
 * Content-Length beside Transfer-Encoding), one of the two parsers may see
 * a request boundary the other does not, which is how requests are
 * smuggled. Refusing every such head with 400 leaves one reading only.
 *
 * The head is scanned incrementally (a head trickling in one byte at a
 * time is looked at once in all), then parsed in one pass once complete:
 * the scanner already guarantees that every CR is followed by LF and that
 * no NUL occurs, so the parser splits lines at CR and checks the rest.
 */
#include "rt_codec.h"
#include "rt_http_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The digits of a Content-Length beyond which the value saturates (and so
 * is refused as too large, not as malformed). */
#define S_LENGTH_DIGITS 19
/* A chunk size is at most 16 hex digits (64 bits). */
#define S_CHUNK_DIGITS 16
/* A chunk-size line with its extensions. */
#define S_CHUNK_LINE_MAX 4096

static const rt_http_refusal_info_t s_refusals[RT_HTTP_REFUSAL_COUNT] = {
    [RT_HTTP_REFUSAL_NONE] = {200, "none", "none", false, ""},
    [RT_HTTP_REFUSAL_BAD_REQUEST_LINE] = {400, "bad_request_line", "bad-request-line", true,
                                          "the request line is malformed"},
    [RT_HTTP_REFUSAL_BAD_HEADER] = {400, "bad_header", "bad-header", true,
                                    "a header field is malformed"},
    [RT_HTTP_REFUSAL_BAD_CONTENT_LENGTH] = {400, "bad_content_length", "bad-content-length", true,
                                            "Content-Length is invalid"},
    [RT_HTTP_REFUSAL_AMBIGUOUS_FRAMING] = {400, "ambiguous_framing", "ambiguous-framing", true,
                                           "the body's length is ambiguous"},
    [RT_HTTP_REFUSAL_BAD_CHUNK] = {400, "bad_chunk", "bad-chunk", true,
                                   "the chunked body is malformed"},
    [RT_HTTP_REFUSAL_BAD_JSON] = {400, "bad_json", "bad-json", false, "the body is not valid JSON"},
    [RT_HTTP_REFUSAL_IDEMPOTENCY_MISSING] = {400, "idempotency_key_missing",
                                             "idempotency-key-missing", false,
                                             "this request needs an Idempotency-Key header"},
    [RT_HTTP_REFUSAL_IDEMPOTENCY_INVALID] = {400, "idempotency_key_invalid",
                                             "idempotency-key-invalid", false,
                                             "an Idempotency-Key is 1 to 255 visible ASCII "
                                             "characters"},
    [RT_HTTP_REFUSAL_UNAUTHORIZED] = {401, "unauthorized", "unauthorized", false,
                                      "valid credentials are required"},
    [RT_HTTP_REFUSAL_FORBIDDEN] = {403, "forbidden", "forbidden", false,
                                   "these credentials may not make this request"},
    [RT_HTTP_REFUSAL_NOT_FOUND] = {404, "not_found", "not-found", false, "no such resource"},
    [RT_HTTP_REFUSAL_METHOD_NOT_ALLOWED] = {405, "method_not_allowed", "method-not-allowed", false,
                                            "the resource does not accept this method"},
    [RT_HTTP_REFUSAL_HEADER_TIMEOUT] = {408, "header_timeout", "header-timeout", true,
                                        "the request's headers did not arrive in time"},
    [RT_HTTP_REFUSAL_BODY_TIMEOUT] = {408, "body_timeout", "body-timeout", true,
                                      "the request's body did not arrive in time"},
    [RT_HTTP_REFUSAL_IDEMPOTENCY_BUSY] = {409, "idempotency_key_in_progress",
                                          "idempotency-key-in-progress", false,
                                          "a request with this Idempotency-Key is still being "
                                          "processed; retry later"},
    [RT_HTTP_REFUSAL_TOO_LARGE] = {413, "too_large", "too-large", true,
                                   "the body is over the size limit"},
    [RT_HTTP_REFUSAL_EXPECTATION] = {417, "expectation", "expectation", true,
                                     "only Expect: 100-continue is supported"},
    [RT_HTTP_REFUSAL_IDEMPOTENCY_REUSED] = {422, "idempotency_key_reused", "idempotency-key-reused",
                                            false,
                                            "this Idempotency-Key was used with a different "
                                            "request"},
    [RT_HTTP_REFUSAL_TOO_MANY_PER_ADDRESS] = {429, "too_many_per_address", "too-many-per-address",
                                              true, "too many connections from this address"},
    [RT_HTTP_REFUSAL_HEADERS_TOO_LARGE] = {431, "headers_too_large", "headers-too-large", true,
                                           "the request line and headers are over the size limit"},
    [RT_HTTP_REFUSAL_TOO_MANY_HEADERS] = {431, "too_many_headers", "too-many-headers", true,
                                          "the request has too many header fields"},
    [RT_HTTP_REFUSAL_HANDLER] = {500, "handler", "internal", false, "the request was not answered"},
    [RT_HTTP_REFUSAL_UNSUPPORTED_CODING] = {501, "unsupported_coding", "unsupported-coding", true,
                                            "only the chunked transfer coding is supported"},
    [RT_HTTP_REFUSAL_TOO_MANY_CONNECTIONS] = {503, "too_many_connections", "too-many-connections",
                                              true, "the server is at its connection limit"},
    [RT_HTTP_REFUSAL_NO_MEMORY] = {503, "no_memory", "no-memory", true,
                                   "the server is out of memory"},
    [RT_HTTP_REFUSAL_IDEMPOTENCY_STORE] = {503, "idempotency_store", "idempotency-store", false,
                                           "the idempotency store is unavailable; retry later"},
    [RT_HTTP_REFUSAL_VERSION] = {505, "version", "version", true,
                                 "only HTTP/1.0 and HTTP/1.1 are supported"},
};

const rt_http_refusal_info_t *
rt_http_refusal_info (rt_http_refusal_t refusal)
{
    if ((int)refusal < 0 || refusal >= RT_HTTP_REFUSAL_COUNT)
        refusal = RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
    return &s_refusals[refusal];
}

const char *
rt_http_status_text (int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

bool
rt_http_is_tchar (unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte allowed in a field value: HTAB, SP, VCHAR, obs-text. */
static bool
s_is_value_byte (unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
s_is_ows (char c)
{
    return c == ' ' || c == '\t';
}

int
rt_http_scan_head (rt_http_scan_t *s, const char *buf, size_t len, size_t max_lines,
                   size_t *head_len, rt_http_refusal_t *refusal, const char **detail)
{
    size_t i = s->scan;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r') {
            if (i + 1 == len)
                break; /* look at this CR again when its next byte has come */
            if (buf[i + 1] != '\n') {
                *refusal =
                    s->lines == 0 ? RT_HTTP_REFUSAL_BAD_REQUEST_LINE : RT_HTTP_REFUSAL_BAD_HEADER;
                *detail = "a CR not followed by LF";
                return -1;
            }
            continue;
        }
        if (c == '\n') {
            if (i == s->line_start || buf[i - 1] != '\r') {
                *refusal =
                    s->lines == 0 ? RT_HTTP_REFUSAL_BAD_REQUEST_LINE : RT_HTTP_REFUSAL_BAD_HEADER;
                *detail = "a line ends in LF without CR";
                return -1;
            }
            if (i - 1 == s->line_start) {
                if (s->lines == 0) {
                    /* An empty line before the request line (a client's
                     * stray CRLF after a previous body). */
                    s->skip = i + 1;
                    s->line_start = i + 1;
                    continue;
                }
                *head_len = i + 1;
                s->scan = i + 1;
                return 1;
            }
            s->lines++;
            if (s->lines > max_lines + 1) {
                *refusal = RT_HTTP_REFUSAL_TOO_MANY_HEADERS;
                *detail = rt_http_refusal_info (*refusal)->detail;
                return -1;
            }
            s->line_start = i + 1;
            continue;
        }
        if (c == '\0') {
            *refusal =
                s->lines == 0 ? RT_HTTP_REFUSAL_BAD_REQUEST_LINE : RT_HTTP_REFUSAL_BAD_HEADER;
            *detail = "a NUL byte in the request head";
            return -1;
        }
    }
    s->scan = i;
    return 0;
}

/* Cuts the request line at line[0..] (NUL-terminated) into out. */
static rt_http_refusal_t
s_parse_request_line (char *line, rt_http_head_t *out, const char **detail)
{
    char *p = line;
    char *method = p;
    while (rt_http_is_tchar ((unsigned char)*p))
        p++;
    if (p == method || *p != ' ') {
        *detail = "the method is not a token followed by one space";
        return RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
    }
    *p++ = '\0';
    char *target = p;
    while ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p == target || *p != ' ') {
        *detail = "the request-target is not visible ASCII followed by one space";
        return RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
    }
    *p++ = '\0';
    if (strncmp (p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' ||
        p[7] > '9' || p[8] != '\0') {
        *detail = "the protocol is not HTTP/<digit>.<digit>";
        return RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
    }
    if (p[5] != '1') {
        *detail = rt_http_refusal_info (RT_HTTP_REFUSAL_VERSION)->detail;
        return RT_HTTP_REFUSAL_VERSION;
    }
    /* A later minor version is served as the highest one known. */
    out->minor = p[7] == '0' ? 0 : 1;

    /* origin-form, absolute-form (the path of it), or "*" for OPTIONS. */
    const char *path = target;
    if (target[0] != '/') {
        if (strcmp (target, "*") == 0 && strcmp (method, "OPTIONS") == 0)
            path = target;
        else if (strncasecmp (target, "http://", 7) == 0 ||
                 strncasecmp (target, "https://", 8) == 0) {
            const char *authority = strstr (target, "://") + 3;
            path = authority + strcspn (authority, "/?");
            if (path == authority) {
                *detail = "the absolute request-target has no host";
                return RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
            }
            if (*path != '/')
                path = "/"; /* "http://host" or "http://host?q": the root */
        } else {
            *detail = "the request-target is not a path";
            return RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
        }
    }
    out->method = method;
    out->target = target;
    out->path = path;
    out->path_len = strcspn (path, "?");
    out->query = path[out->path_len] == '?' ? path + out->path_len + 1 : path + out->path_len;
    out->query_len = strlen (out->query);
    if (path[out->path_len] != '?') {
        /* The query of "http://host?q" follows the authority, not path. */
        const char *q = strchr (target, '?');
        if (q) {
            out->query = q + 1;
            out->query_len = strlen (q + 1);
        }
    }
    return RT_HTTP_REFUSAL_NONE;
}

/* Cuts one field line (NUL-terminated) into name and value. */
static rt_http_refusal_t
s_parse_field (char *line, rt_http_field_t *field, const char **detail)
{
    char *p = line;
    if (s_is_ows (*p)) {
        *detail = "a folded header line (obs-fold)";
        return RT_HTTP_REFUSAL_BAD_HEADER;
    }
    while (rt_http_is_tchar ((unsigned char)*p))
        p++;
    if (p == line) {
        *detail = "a header field name is empty or not a token";
        return RT_HTTP_REFUSAL_BAD_HEADER;
    }
    if (*p != ':') {
        *detail = s_is_ows (*p) ? "whitespace between a header field name and its colon"
                                : "a header field name is not a token followed by a colon";
        return RT_HTTP_REFUSAL_BAD_HEADER;
    }
    *p++ = '\0';
    while (s_is_ows (*p))
        p++;
    char *value = p;
    char *last = p; /* one past the last non-whitespace byte */
    for (; *p; p++) {
        if (!s_is_value_byte ((unsigned char)*p)) {
            *detail = "a control byte in a header field value";
            return RT_HTTP_REFUSAL_BAD_HEADER;
        }
        if (!s_is_ows (*p))
            last = p + 1;
    }
    *last = '\0';
    field->name = line;
    field->value = value;
    return RT_HTTP_REFUSAL_NONE;
}

/* Content-Length: 1*DIGIT, saturating at UINT64_MAX. */
static int
s_parse_length (const char *value, uint64_t *length)
{
    const char *p = value;
    uint64_t n = 0;
    size_t digits = 0;
    if (*p == '\0')
        return -1;
    while (*p == '0' && p[1] != '\0')
        p++;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (++digits > S_LENGTH_DIGITS)
            n = UINT64_MAX;
        else
            n = n * 10 + (uint64_t)(*p - '0');
    }
    *length = n;
    return 0;
}

/* True when the comma-separated list `value` holds `token` (case-blind). */
static bool
s_list_has (const char *value, const char *token)
{
    size_t tlen = strlen (token);
    const char *p = value;
    while (*p) {
        while (s_is_ows (*p) || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && s_is_ows (end[-1]))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp (start, token, tlen) == 0)
            return true;
    }
    return false;
}

/* Transfer-Encoding: counts "chunked" and notes any other coding. */
static void
s_parse_codings (const char *value, int *chunked, bool *unsupported)
{
    const char *p = value;
    while (*p) {
        while (s_is_ows (*p) || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && s_is_ows (end[-1]))
            end--;
        if (end == start)
            continue;
        if (end - start == 7 && strncasecmp (start, "chunked", 7) == 0)
            (*chunked)++;
        else
            *unsupported = true;
    }
}

rt_http_refusal_t
rt_http_parse_head (char *head, size_t len, size_t skip, rt_http_head_t *out,
                    rt_http_field_t *fields, size_t max_fields, const char **detail)
{
    char *p = head + skip;
    char *end = head + len;
    char *eol;
    rt_http_refusal_t r;
    int hosts = 0, chunked = 0;
    bool te = false, te_unsupported = false, close = false, keep_alive = false, expect = false;

    memset (out, 0, sizeof *out);
    out->fields = fields;
    eol = memchr (p, '\r', (size_t)(end - p));
    if (!eol) {
        *detail = "the request line is missing";
        return RT_HTTP_REFUSAL_BAD_REQUEST_LINE;
    }
    *eol = '\0';
    r = s_parse_request_line (p, out, detail);
    if (r != RT_HTTP_REFUSAL_NONE)
        return r;
    p = eol + 2;
    for (;;) {
        eol = memchr (p, '\r', (size_t)(end - p));
        if (!eol || eol == p)
            break; /* the empty line that ends the head */
        *eol = '\0';
        if (out->nfields == max_fields) {
            *detail = rt_http_refusal_info (RT_HTTP_REFUSAL_TOO_MANY_HEADERS)->detail;
            return RT_HTTP_REFUSAL_TOO_MANY_HEADERS;
        }
        rt_http_field_t *f = &fields[out->nfields];
        r = s_parse_field (p, f, detail);
        if (r != RT_HTTP_REFUSAL_NONE)
            return r;
        out->nfields++;
        p = eol + 2;

        if (strcasecmp (f->name, "Content-Length") == 0) {
            uint64_t n;
            if (s_parse_length (f->value, &n) != 0) {
                *detail = "Content-Length is not a decimal number";
                return RT_HTTP_REFUSAL_BAD_CONTENT_LENGTH;
            }
            if (out->has_length && n != out->length) {
                *detail = "two different Content-Length values";
                return RT_HTTP_REFUSAL_BAD_CONTENT_LENGTH;
            }
            out->has_length = true;
            out->length = n;
        } else if (strcasecmp (f->name, "Transfer-Encoding") == 0) {
            te = true;
            s_parse_codings (f->value, &chunked, &te_unsupported);
        } else if (strcasecmp (f->name, "Connection") == 0) {
            close = close || s_list_has (f->value, "close");
            keep_alive = keep_alive || s_list_has (f->value, "keep-alive");
        } else if (strcasecmp (f->name, "Expect") == 0) {
            if (strcasecmp (f->value, "100-continue") == 0)
                out->expect_continue = true;
            else
                expect = true;
        } else if (strcasecmp (f->name, "Host") == 0)
            hosts++;
    }

    if (te && out->has_length) {
        *detail = "both Content-Length and Transfer-Encoding";
        return RT_HTTP_REFUSAL_AMBIGUOUS_FRAMING;
    }
    if (te && out->minor == 0) {
        *detail = "Transfer-Encoding in an HTTP/1.0 request";
        return RT_HTTP_REFUSAL_AMBIGUOUS_FRAMING;
    }
    if (te_unsupported) {
        *detail = rt_http_refusal_info (RT_HTTP_REFUSAL_UNSUPPORTED_CODING)->detail;
        return RT_HTTP_REFUSAL_UNSUPPORTED_CODING;
    }
    if (te && chunked != 1) {
        *detail = chunked ? "chunked applied more than once" : "Transfer-Encoding names no coding";
        return RT_HTTP_REFUSAL_AMBIGUOUS_FRAMING;
    }
    out->chunked = chunked == 1;
    if (out->minor == 1 ? hosts != 1 : hosts > 1) {
        *detail = hosts ? "more than one Host header" : "an HTTP/1.1 request without Host";
        return RT_HTTP_REFUSAL_BAD_HEADER;
    }
    if (expect) {
        *detail = rt_http_refusal_info (RT_HTTP_REFUSAL_EXPECTATION)->detail;
        return RT_HTTP_REFUSAL_EXPECTATION;
    }
    out->keep_alive = out->minor == 1 ? !close : keep_alive && !close;
    return RT_HTTP_REFUSAL_NONE;
}

/* The states of the chunked syntax (RFC 9112 section 7.1). */
enum {
    S_C_SIZE = 0,   /* hex digits of a chunk size */
    S_C_EXT,        /* chunk extensions, up to CR */
    S_C_SIZE_LF,    /* the LF after a size line */
    S_C_DATA,       /* chunk data */
    S_C_DATA_CR,    /* the CR after chunk data */
    S_C_DATA_LF,    /* the LF after chunk data */
    S_C_TRAILER,    /* at the start of a trailer line (or the final CRLF) */
    S_C_TRAILER_IN, /* inside a trailer field line */
    S_C_TRAILER_LF, /* the LF after a trailer field line */
    S_C_END_LF,     /* the LF of the final empty line */
    S_C_DONE        /* the body ended */
};

size_t
rt_http_chunked_feed (rt_http_chunked_t *c, const char *in, size_t len, rt_buf_t *body,
                      size_t max_body, size_t max_trailer, bool *done, rt_http_refusal_t *refusal,
                      const char **detail)
{
    size_t i = 0;
    *done = false;
    *refusal = RT_HTTP_REFUSAL_NONE;
    while (i < len && c->state != S_C_DONE) {
        unsigned char b = (unsigned char)in[i];
        switch (c->state) {
        case S_C_SIZE: {
            int v = rt_hex_value ((char)b);
            if (v >= 0) {
                if (++c->digits > S_CHUNK_DIGITS) {
                    *detail = "a chunk size over 64 bits";
                    goto bad;
                }
                c->remaining = c->remaining * 16 + (uint64_t)v;
            } else if (c->digits > 0 && (b == ';' || s_is_ows ((char)b)))
                c->state = S_C_EXT;
            else if (c->digits > 0 && b == '\r')
                c->state = S_C_SIZE_LF;
            else {
                *detail = "a chunk size is not hexadecimal";
                goto bad;
            }
            i++;
            break;
        }
        case S_C_EXT:
            if (b == '\r')
                c->state = S_C_SIZE_LF;
            else if (!s_is_value_byte (b) || ++c->line > S_CHUNK_LINE_MAX) {
                *detail = "a chunk extension is malformed or too long";
                goto bad;
            }
            i++;
            break;
        case S_C_SIZE_LF:
            if (b != '\n') {
                *detail = "a chunk size line does not end in CRLF";
                goto bad;
            }
            i++;
            if (c->remaining == 0) {
                c->state = S_C_TRAILER;
                break;
            }
            if (c->remaining > max_body || body->len + c->remaining > max_body) {
                *refusal = RT_HTTP_REFUSAL_TOO_LARGE;
                *detail = rt_http_refusal_info (*refusal)->detail;
                return i;
            }
            c->state = S_C_DATA;
            break;
        case S_C_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            if (!rt_buf_reserve_within (body, n, max_body)) {
                *refusal = RT_HTTP_REFUSAL_NO_MEMORY;
                *detail = rt_http_refusal_info (*refusal)->detail;
                return i;
            }
            rt_buf_put (body, in + i, n);
            i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = S_C_DATA_CR;
            break;
        }
        case S_C_DATA_CR:
            if (b != '\r') {
                *detail = "chunk data is not followed by CRLF";
                goto bad;
            }
            c->state = S_C_DATA_LF;
            i++;
            break;
        case S_C_DATA_LF:
            if (b != '\n') {
                *detail = "chunk data is not followed by CRLF";
                goto bad;
            }
            c->state = S_C_SIZE;
            c->digits = 0;
            c->line = 0;
            c->remaining = 0;
            i++;
            break;
        case S_C_TRAILER:
            if (b == '\r') {
                c->state = S_C_END_LF;
                i++;
                break;
            }
            c->state = S_C_TRAILER_IN;
            /* The byte is the first of a trailer field. */
            __attribute__ ((fallthrough));
        case S_C_TRAILER_IN:
            if (++c->trailer_bytes > max_trailer) {
                *refusal = RT_HTTP_REFUSAL_HEADERS_TOO_LARGE;
                *detail = "the trailer fields are over the size limit";
                return i;
            }
            if (b == '\r')
                c->state = S_C_TRAILER_LF;
            else if (!s_is_value_byte (b)) {
                *detail = "a control byte in a trailer field";
                goto bad;
            }
            i++;
            break;
        case S_C_TRAILER_LF:
            if (b != '\n') {
                *detail = "a trailer field does not end in CRLF";
                goto bad;
            }
            c->state = S_C_TRAILER;
            i++;
            break;
        case S_C_END_LF:
            if (b != '\n') {
                *detail = "the chunked body does not end in CRLF";
                goto bad;
            }
            c->state = S_C_DONE;
            i++;
            break;
        }
    }
    *done = c->state == S_C_DONE;
    return i;
bad:
    *refusal = RT_HTTP_REFUSAL_BAD_CHUNK;
    return i;
}
