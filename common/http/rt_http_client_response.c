/*
 * rt_http_client_response: a response as libcurl hands it over, and what
 * its done callback is told (see rt_http_client.h; how the client's files
 * divide the work is in rt_http_client_internal.h).
 *
 * The body and the header lines are kept in the transfer's own buffers,
 * each under its cap: the body never allocates past max_body (plus its
 * NUL), and the header bytes of one response are counted as they come,
 * so a server that sends an endless head or body costs its cap, no more.
 * Header fields are kept as "name\0value\0" pairs and become the
 * rt_http_client_header_t array only once, at the end.
 */
#include "rt_http_client_internal.h"

#include "rt_clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9111 section 1.2.2: a larger delta means this. */
#define S_RETRY_AFTER_MAX_SECONDS 2147483647LL

const char *
rt_http_outcome_name (rt_http_outcome_t outcome)
{
    switch (outcome) {
    case RT_HTTP_OUTCOME_OK:
        return "ok";
    case RT_HTTP_OUTCOME_TIMEOUT:
        return "timeout";
    case RT_HTTP_OUTCOME_CONNECT_FAILED:
        return "connect_failed";
    case RT_HTTP_OUTCOME_DNS_FAILED:
        return "dns_failed";
    case RT_HTTP_OUTCOME_TLS_FAILED:
        return "tls_failed";
    case RT_HTTP_OUTCOME_TOO_LARGE:
        return "too_large";
    case RT_HTTP_OUTCOME_CANCELLED:
        return "cancelled";
    case RT_HTTP_OUTCOME_OTHER:
        break;
    }
    return "other";
}

const char *
rt_http_response_header (const rt_http_response_t *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp (resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

/* Retry-After (RFC 9110 10.2.3) in milliseconds: delta-seconds, or an
 * HTTP-date (any of its three forms, which all start with a day name)
 * less the response's Date, so a skew between our clock and the server's
 * does not distort the delay; without a usable Date, less our clock. */
static int64_t
s_retry_after_ms (const char *value, const char *date)
{
    if (!value)
        return -1;
    if (isdigit ((unsigned char)value[0])) {
        int64_t seconds = 0;
        for (const char *p = value; *p; p++) {
            if (!isdigit ((unsigned char)*p))
                return -1;
            if (seconds < S_RETRY_AFTER_MAX_SECONDS)
                seconds = seconds * 10 + (*p - '0');
        }
        if (seconds > S_RETRY_AFTER_MAX_SECONDS)
            seconds = S_RETRY_AFTER_MAX_SECONDS;
        return seconds * 1000;
    }
    if (!isalpha ((unsigned char)value[0]))
        return -1;
    time_t when = curl_getdate (value, NULL);
    if (when == -1)
        return -1;
    int64_t now_ms = rt_clock_now_ms ();
    if (date) {
        time_t server_now = curl_getdate (date, NULL);
        if (server_now != -1)
            now_ms = (int64_t)server_now * 1000;
    }
    int64_t delay = (int64_t)when * 1000 - now_ms;
    return delay < 0 ? 0 : delay;
}

size_t
rt_http_transfer_on_body (char *data, size_t size, size_t count, void *arg)
{
    rt_http_transfer_t *t = arg;
    size_t max = t->client->max_body;
    size_t n = size * count;
    size_t take = n <= max - t->resp.len ? n : max - t->resp.len;
    if (!rt_buf_reserve_within (&t->resp, take, max)) {
        snprintf (t->error, sizeof t->error, "out of memory for the response body");
        return 0;
    }
    rt_buf_put (&t->resp, data, take);
    if (take < n) {
        t->too_large = true;
        snprintf (t->error, sizeof t->error, "response body over %zu bytes", max);
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    return n;
}

static void
s_trim (const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r' ||
                        (*s)[*len - 1] == '\n'))
        (*len)--;
}

/* Appends s[0..len) and its NUL as one string of the pairs. */
static void
s_hdr_put (rt_http_transfer_t *t, const char *s, size_t len)
{
    rt_buf_put (&t->hdr, s, len);
    rt_buf_put (&t->hdr, "", 1);
}

/* Each header line of each response (libcurl passes them one by one, the
 * status line first): a new status line starts over, so what stays is the
 * final response's fields, not a 100 Continue's. */
size_t
rt_http_transfer_on_header (char *data, size_t size, size_t count, void *arg)
{
    rt_http_transfer_t *t = arg;
    size_t n = size * count;
    if (n >= 5 && memcmp (data, "HTTP/", 5) == 0) {
        rt_buf_reset (&t->hdr);
        t->nheaders = 0;
        t->hdr_bytes = n;
        return n;
    }
    t->hdr_bytes += n;
    if (t->hdr_bytes > t->client->max_header_bytes) {
        t->too_large = true;
        snprintf (t->error, sizeof t->error, "response headers over %zu bytes",
                  t->client->max_header_bytes);
        return 0;
    }
    const char *line = data;
    size_t len = n;
    if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
        /* obs-fold: the line continues the previous field's value. */
        s_trim (&line, &len);
        if (t->nheaders == 0 || len == 0)
            return n;
        t->hdr.len--; /* the value's NUL gives way to the joining space */
        rt_buf_put (&t->hdr, " ", 1);
        s_hdr_put (t, line, len);
    } else {
        s_trim (&line, &len);
        const char *colon = memchr (line, ':', len);
        if (!colon || colon == line)
            return n; /* the empty line that ends the head, or junk libcurl let by */
        size_t name_len = (size_t)(colon - line);
        const char *value = colon + 1;
        size_t value_len = len - name_len - 1;
        s_trim (&value, &value_len);
        s_hdr_put (t, line, name_len);
        s_hdr_put (t, value, value_len);
        t->nheaders++;
    }
    if (t->hdr.failed) {
        snprintf (t->error, sizeof t->error, "out of memory for the response headers");
        return 0;
    }
    return n;
}

rt_http_outcome_t
rt_http_transfer_classify (const rt_http_transfer_t *t, CURLcode rc)
{
    if (t->too_large)
        return RT_HTTP_OUTCOME_TOO_LARGE;
    switch (rc) {
    case CURLE_OK:
        return RT_HTTP_OUTCOME_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return RT_HTTP_OUTCOME_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return RT_HTTP_OUTCOME_CONNECT_FAILED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return RT_HTTP_OUTCOME_DNS_FAILED;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return RT_HTTP_OUTCOME_TLS_FAILED;
    case CURLE_FILESIZE_EXCEEDED:
        return RT_HTTP_OUTCOME_TOO_LARGE;
    default:
        return RT_HTTP_OUTCOME_OTHER;
    }
}

void
rt_http_transfer_info_read (CURL *easy, rt_http_transfer_info_t *info)
{
    memset (info, 0, sizeof *info);
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &info->status);
    curl_easy_getinfo (easy, CURLINFO_NUM_CONNECTS, &info->connects);
    curl_easy_getinfo (easy, CURLINFO_REQUEST_SIZE, &info->request_size);
    curl_easy_getinfo (easy, CURLINFO_TOTAL_TIME_T, &info->total);
}

void
rt_http_transfer_tell (rt_http_client_t *self, rt_http_transfer_t *t, rt_http_outcome_t outcome,
                       CURLcode rc, const rt_http_transfer_info_t *info)
{
    rt_http_response_t resp = {
        .outcome = outcome,
        .error = "",
        .body = t->resp.data ? t->resp.data : "",
        .body_len = t->resp.len,
        .retry_after_ms = -1,
        .queued_us = (t->started_us ? t->started_us : rt_clock_elapsed_us ()) - t->submitted_us,
    };
    if (outcome == RT_HTTP_OUTCOME_CANCELLED)
        resp.error = "cancelled: the client was destroyed";
    else if (outcome != RT_HTTP_OUTCOME_OK)
        resp.error = t->error[0] ? t->error : curl_easy_strerror (rc);
    if (info) {
        resp.status = (int)info->status;
        resp.total_us = (int64_t)info->total;
        /* A request went out, and not over a connection of its own. */
        resp.reused = info->request_size > 0 && info->connects == 0;
    }

    rt_http_client_header_t *fields = NULL;
    if (resp.status > 0 && t->nheaders > 0) {
        fields = calloc (t->nheaders, sizeof *fields);
        if (fields) {
            const char *p = t->hdr.data;
            for (size_t i = 0; i < t->nheaders; i++) {
                fields[i].name = p;
                p += strlen (p) + 1;
                fields[i].value = p;
                p += strlen (p) + 1;
            }
            resp.headers = fields;
            resp.nheaders = t->nheaders;
        }
    }
    resp.retry_after_ms = s_retry_after_ms (rt_http_response_header (&resp, "Retry-After"),
                                            rt_http_response_header (&resp, "Date"));

    self->in_done = true;
    t->done (t->arg, &resp);
    self->in_done = false;
    free (fields);
    rt_http_transfer_free (t);
}
