/*
 * rt_http_client: libcurl's multi interface on a libevent loop (see
 * rt_http_client.h), after curl's docs/examples/multi-event.c.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * persistent libevent event per socket, kept in curl's socket hash with
 * curl_multi_assign) and when to wake it (CURLMOPT_TIMERFUNCTION: one
 * timer); every wake-up calls curl_multi_socket_action, then collects the
 * finished transfers (curl_multi_info_read) and starts waiting ones.
 * Nothing calls back into libcurl from inside a libcurl callback.
 *
 * Why a queue of our own: libcurl would queue transfers beyond
 * CURLMOPT_MAX_HOST_CONNECTIONS itself, but counts the wait in
 * CURLOPT_TIMEOUT (curl issues 437, 4486), so the tail of a burst times
 * out without having been sent, and a caller could not tell it from a
 * provider that did not answer. Here a transfer is handed to libcurl only
 * when its host has a free slot, so libcurl's own caps (still set, as a
 * safety net) never make it wait. Hosts are kept in a list in turn order:
 * the host that last started a transfer goes to the back, so one busy host
 * cannot take every slot of the total cap. A host with nothing running
 * and nothing waiting is freed. The lists are linear: a daemon speaks to a
 * few providers, not thousands of hosts.
 *
 * Keep-alive: connections live in the multi handle's cache, which is sized
 * to max_total_connections (CURLMOPT_MAXCONNECTS; libcurl's default follows
 * the number of easy handles added, which here comes and goes), and a
 * finished transfer leaves the multi handle before its done callback, so a
 * follow-up submitted from the callback finds the connection idle. Nothing
 * forbids reuse. TLS sessions are shared through a curl share handle, so
 * even a new connection to a known host resumes its session. Each transfer
 * has an easy handle of its own, made at its start and cleaned up at its
 * end: keeping reset handles for later transfers was measured and saved
 * nothing (about 22 us of the client's CPU per request either way, 20,000
 * requests over 4 connections to a local server, and the same for
 * requests one after another; medians of 5), so the simpler way stays.
 *
 * A start that fails (out of memory) is reported from an event of its own
 * on the next loop turn, so a done callback never runs inside submit.
 *
 * One file past the usual size: the queue, the libcurl glue and the
 * assembly of a response all work on the one transfer struct, and read
 * best next to it.
 */
#include "rt_http_client.h"

#include "rt_clock.h"
#include "rt_log.h"

#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_DEFAULT_MAX_HOST        8
#define S_DEFAULT_MAX_TOTAL       64
#define S_DEFAULT_MAX_QUEUED      100000
#define S_DEFAULT_CONNECT_MS      5000
#define S_DEFAULT_TIMEOUT_MS      30000
#define S_DEFAULT_MAX_BODY        (1024 * 1024)
#define S_DEFAULT_MAX_HEADER      (64 * 1024)
#define S_DEFAULT_USER_AGENT      "retain"
#define S_RETRY_AFTER_MAX_SECONDS 2147483647LL /* RFC 9111 1.2.2: larger means this */

typedef struct s_host_t s_host_t;
typedef struct s_transfer_t s_transfer_t;
typedef struct s_sock_t s_sock_t;

/* One request, from submit to its done callback. */
struct s_transfer_t {
    rt_http_client_t *client;    /* owner */
    s_host_t *host;              /* its host's slots and queue; NULL once it left them */
    s_transfer_t *prev;          /* running list only */
    s_transfer_t *next;          /* host queue, running list or failed list */
    CURL *easy;                  /* while running */
    char *url;                   /* owned copy */
    char *method;                /* owned copy of the method to send */
    struct curl_slist *headers;  /* owned request header lines */
    char *body;                  /* owned copy of the request body; NULL: none */
    size_t body_len;             /* its length */
    long timeout_ms;             /* total timeout */
    long connect_timeout_ms;     /* connect timeout */
    rt_http_client_done_fn done; /* told at the end */
    void *arg;                   /* passed to done */
    char *resp;                  /* response body so far, NUL-terminated; owned */
    size_t resp_len;             /* bytes in resp */
    size_t resp_cap;             /* bytes allocated for resp */
    char *hdr;                   /* response fields as "name\0value\0" pairs; owned */
    size_t hdr_len;              /* bytes used in hdr */
    size_t hdr_cap;              /* bytes allocated for hdr */
    size_t nheaders;             /* pairs in hdr */
    size_t hdr_bytes;            /* raw header bytes of the current response */
    bool too_large;              /* a cap was passed: the transfer was aborted */
    int64_t submitted_us;        /* monotonic, at submit */
    int64_t started_us;          /* monotonic, when handed to libcurl */
    char error[CURL_ERROR_SIZE]; /* libcurl's (or our) message */
};

/* The connection slots and waiting requests of one scheme://host:port. */
struct s_host_t {
    char *key;          /* "scheme://host:port", host lower-cased; owned */
    int running;        /* transfers of this host handed to libcurl */
    s_transfer_t *head; /* first waiting request */
    s_transfer_t *tail; /* last waiting request */
    s_host_t *prev;     /* turn order */
    s_host_t *next;     /* turn order */
};

/* A socket libcurl asked us to watch. */
struct s_sock_t {
    struct event *ev; /* persistent read and/or write event; owned */
    s_sock_t *prev;   /* client's list (freed at destroy if libcurl kept it) */
    s_sock_t *next;   /* client's list */
};

struct rt_http_client_t {
    struct event_base *base;   /* the loop; lent */
    CURLM *multi;              /* the transfers and the connection cache; owned */
    CURLSH *share;             /* TLS sessions shared by every transfer; owned */
    struct event *timer;       /* libcurl's single timeout; owned */
    struct event *later;       /* reports failed starts off the submit path; owned */
    s_host_t *hosts;           /* hosts in turn order (head is asked first) */
    s_host_t *hosts_tail;      /* last host */
    s_transfer_t *running;     /* transfers handed to libcurl */
    s_transfer_t *failed;      /* transfers that could not start, to be told */
    s_transfer_t *failed_tail; /* last of them */
    s_sock_t *socks;           /* sockets being watched */
    size_t nqueued;            /* requests waiting in host queues */
    size_t nrunning;           /* transfers handed to libcurl */
    size_t nfailed;            /* transfers in the failed list */
    int max_host;              /* config, defaults applied */
    int max_total;             /* config */
    size_t max_queued;         /* config */
    long connect_timeout_ms;   /* config */
    long timeout_ms;           /* config */
    size_t max_body;           /* config */
    size_t max_header_bytes;   /* config */
    char *user_agent;          /* owned copy */
    char *ca_file;             /* owned copy, NULL: system store */
    bool tls_no_verify;        /* config */
    bool closing;              /* destroy is cancelling: submits fail */
    bool in_done;              /* a done callback is running (destroy is then a bug) */
};

/* --- names and parsing --- */

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

/* RFC 9110 tchar. */
static bool
s_is_tchar (unsigned char c)
{
    return isalnum (c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
s_is_token (const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_is_tchar ((unsigned char)s[i]))
            return false;
    return true;
}

/* A request line we would send: "Name: value" or libcurl's "Name;" (empty
 * value), no CR or LF anywhere (they would split it into two fields). */
static bool
s_header_line_ok (const char *line)
{
    size_t name = strcspn (line, ":;");
    if (line[name] == '\0' || !s_is_token (line, name))
        return false;
    return strpbrk (line, "\r\n") == NULL;
}

static bool
s_header_is (const char *line, const char *name)
{
    size_t n = strlen (name);
    return strncasecmp (line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
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

/* "scheme://host:port" of an http or https URL; -1 when it is neither or
 * malformed. */
static int
s_host_key (const char *url, char *key, size_t keylen, char *err, size_t errlen)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url ();
    if (!u) {
        rt_errf (err, errlen, "out of memory");
        goto cleanup;
    }
    CURLUcode uc = curl_url_set (u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        rt_errf (err, errlen, "malformed URL: %s", curl_url_strerror (uc));
        goto cleanup;
    }
    if (curl_url_get (u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp (scheme, "http") != 0 && strcmp (scheme, "https") != 0)) {
        rt_errf (err, errlen, "URL scheme is not http or https");
        goto cleanup;
    }
    if (curl_url_get (u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get (u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rt_errf (err, errlen, "URL has no host");
        goto cleanup;
    }
    int n = snprintf (key, keylen, "%s://%s:%s", scheme, host, port);
    if (n < 0 || (size_t)n >= keylen) {
        rt_errf (err, errlen, "URL host too long");
        goto cleanup;
    }
    for (char *p = key; *p; p++)
        *p = (char)tolower ((unsigned char)*p);
    rc = 0;
cleanup:
    curl_free (scheme);
    curl_free (host);
    curl_free (port);
    curl_url_cleanup (u);
    return rc;
}

/* --- hosts --- */

static void
s_host_unlink (rt_http_client_t *self, s_host_t *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        self->hosts = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        self->hosts_tail = h->prev;
    h->prev = h->next = NULL;
}

static void
s_host_append (rt_http_client_t *self, s_host_t *h)
{
    h->prev = self->hosts_tail;
    h->next = NULL;
    if (self->hosts_tail)
        self->hosts_tail->next = h;
    else
        self->hosts = h;
    self->hosts_tail = h;
}

static s_host_t *
s_host_get (rt_http_client_t *self, const char *key)
{
    for (s_host_t *h = self->hosts; h; h = h->next)
        if (strcmp (h->key, key) == 0)
            return h;
    s_host_t *h = calloc (1, sizeof *h);
    if (!h)
        return NULL;
    h->key = strdup (key);
    if (!h->key) {
        free (h);
        return NULL;
    }
    s_host_append (self, h);
    return h;
}

/* Frees a host with nothing running and nothing waiting. */
static void
s_host_release (rt_http_client_t *self, s_host_t *h)
{
    if (!h || h->running > 0 || h->head)
        return;
    s_host_unlink (self, h);
    free (h->key);
    free (h);
}

/* --- transfers --- */

static void
s_transfer_free (s_transfer_t *t)
{
    if (!t)
        return;
    free (t->url);
    free (t->method);
    curl_slist_free_all (t->headers);
    free (t->body);
    free (t->resp);
    free (t->hdr);
    free (t);
}

static size_t
s_on_body (char *data, size_t size, size_t count, void *arg)
{
    s_transfer_t *t = arg;
    size_t max = t->client->max_body;
    size_t n = size * count;
    size_t take = n <= max - t->resp_len ? n : max - t->resp_len;
    if (t->resp_len + take + 1 > t->resp_cap) {
        size_t cap = t->resp_cap ? t->resp_cap * 2 : 4096;
        if (cap < t->resp_len + take + 1)
            cap = t->resp_len + take + 1;
        if (cap > max + 1)
            cap = max + 1;
        char *grown = realloc (t->resp, cap);
        if (!grown) {
            snprintf (t->error, sizeof t->error, "out of memory for the response body");
            return 0;
        }
        t->resp = grown;
        t->resp_cap = cap;
    }
    memcpy (t->resp + t->resp_len, data, take);
    t->resp_len += take;
    t->resp[t->resp_len] = '\0';
    if (take < n) {
        t->too_large = true;
        snprintf (t->error, sizeof t->error, "response body over %zu bytes", max);
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    return n;
}

static int
s_hdr_append (s_transfer_t *t, const char *s, size_t len)
{
    if (t->hdr_len + len + 1 > t->hdr_cap) {
        size_t cap = t->hdr_cap ? t->hdr_cap * 2 : 1024;
        while (cap < t->hdr_len + len + 1)
            cap *= 2;
        char *grown = realloc (t->hdr, cap);
        if (!grown)
            return -1;
        t->hdr = grown;
        t->hdr_cap = cap;
    }
    memcpy (t->hdr + t->hdr_len, s, len);
    t->hdr[t->hdr_len + len] = '\0';
    t->hdr_len += len + 1;
    return 0;
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

/* Each header line of each response (libcurl passes them one by one, the
 * status line first): a new status line starts over, so what stays is the
 * final response's fields, not a 100 Continue's. */
static size_t
s_on_header (char *data, size_t size, size_t count, void *arg)
{
    s_transfer_t *t = arg;
    size_t n = size * count;
    if (n >= 5 && memcmp (data, "HTTP/", 5) == 0) {
        t->hdr_len = 0;
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
        t->hdr[t->hdr_len - 1] = ' '; /* the value's NUL becomes the joining space */
        if (s_hdr_append (t, line, len) != 0) {
            t->hdr[t->hdr_len - 1] = '\0';
            goto nomem;
        }
        return n;
    }
    s_trim (&line, &len);
    const char *colon = memchr (line, ':', len);
    if (!colon || colon == line)
        return n; /* the empty line that ends the head, or junk libcurl let by */
    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    s_trim (&value, &value_len);
    if (s_hdr_append (t, line, name_len) != 0 || s_hdr_append (t, value, value_len) != 0)
        goto nomem;
    t->nheaders++;
    return n;
nomem:
    snprintf (t->error, sizeof t->error, "out of memory for the response headers");
    return 0;
}

static rt_http_outcome_t
s_classify (const s_transfer_t *t, CURLcode rc)
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

/* What libcurl tells of a finished transfer, read before its handle is
 * cleaned up. */
typedef struct {
    long status;       /* CURLINFO_RESPONSE_CODE */
    long connects;     /* CURLINFO_NUM_CONNECTS: new connections it made */
    long request_size; /* CURLINFO_REQUEST_SIZE: bytes of request sent */
    curl_off_t total;  /* CURLINFO_TOTAL_TIME_T, microseconds */
} s_info_t;

static void
s_info_read (CURL *easy, s_info_t *info)
{
    memset (info, 0, sizeof *info);
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &info->status);
    curl_easy_getinfo (easy, CURLINFO_NUM_CONNECTS, &info->connects);
    curl_easy_getinfo (easy, CURLINFO_REQUEST_SIZE, &info->request_size);
    curl_easy_getinfo (easy, CURLINFO_TOTAL_TIME_T, &info->total);
}

/* Calls the transfer's done callback with what it got and frees it. `rc`
 * is libcurl's result; `info` NULL when the transfer never reached
 * libcurl. */
static void
s_tell (rt_http_client_t *self, s_transfer_t *t, rt_http_outcome_t outcome, CURLcode rc,
        const s_info_t *info)
{
    rt_http_response_t resp = {
        .outcome = outcome,
        .error = "",
        .body = t->resp ? t->resp : "",
        .body_len = t->resp_len,
        .retry_after_ms = -1,
        .queued_us = (t->started_us ? t->started_us : rt_clock_mono_us ()) - t->submitted_us,
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
            const char *p = t->hdr;
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
    s_transfer_free (t);
}

/* --- easy handles --- */

/* Sets every option of one transfer on a fresh handle. */
static int
s_easy_setup (rt_http_client_t *self, s_transfer_t *t, CURL *e)
{
    CURLcode rc = CURLE_OK;
    /* The first failure is kept; later calls on a failed handle are
     * harmless. */
#define S_SET(opt, val)                                                                            \
    do {                                                                                           \
        CURLcode r_ = curl_easy_setopt (e, opt, val);                                              \
        if (rc == CURLE_OK)                                                                        \
            rc = r_;                                                                               \
    } while (0)
    S_SET (CURLOPT_URL, t->url);
    S_SET (CURLOPT_PROTOCOLS_STR, "http,https");
    S_SET (CURLOPT_PRIVATE, t);
    S_SET (CURLOPT_SHARE, self->share);
    S_SET (CURLOPT_NOSIGNAL, 1L);
    S_SET (CURLOPT_ERRORBUFFER, t->error);
    S_SET (CURLOPT_WRITEFUNCTION, s_on_body);
    S_SET (CURLOPT_WRITEDATA, t);
    S_SET (CURLOPT_HEADERFUNCTION, s_on_header);
    S_SET (CURLOPT_HEADERDATA, t);
    S_SET (CURLOPT_TIMEOUT_MS, t->timeout_ms);
    S_SET (CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
    S_SET (CURLOPT_USERAGENT, self->user_agent);
    S_SET (CURLOPT_HTTPHEADER, t->headers);
    S_SET (CURLOPT_SSL_VERIFYPEER, self->tls_no_verify ? 0L : 1L);
    S_SET (CURLOPT_SSL_VERIFYHOST, self->tls_no_verify ? 0L : 2L);
    if (self->ca_file)
        S_SET (CURLOPT_CAINFO, self->ca_file);

    bool is_head = strcmp (t->method, "HEAD") == 0;
    bool is_get = strcmp (t->method, "GET") == 0;
    bool is_post = strcmp (t->method, "POST") == 0;
    if (is_head) {
        S_SET (CURLOPT_NOBODY, 1L);
    } else {
        /* Refuses an announced oversized body before it comes (not for
         * HEAD, whose Content-Length announces nothing to read). */
        S_SET (CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)self->max_body);
    }
    if (is_get && !t->body) {
        S_SET (CURLOPT_HTTPGET, 1L);
    } else if (!is_head) {
        bool needs_length =
            is_post || strcmp (t->method, "PUT") == 0 || strcmp (t->method, "PATCH") == 0;
        if (t->body || needs_length) {
            /* libcurl would strlen() a NULL size; an empty body is "". */
            S_SET (CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
            S_SET (CURLOPT_POSTFIELDS, t->body ? t->body : "");
        }
        if (!is_post)
            S_SET (CURLOPT_CUSTOMREQUEST, t->method);
    }
#undef S_SET
    if (rc != CURLE_OK) {
        snprintf (t->error, sizeof t->error, "%s", curl_easy_strerror (rc));
        return -1;
    }
    return 0;
}

static void
s_running_unlink (rt_http_client_t *self, s_transfer_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        self->running = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void
s_fail_later (rt_http_client_t *self, s_transfer_t *t)
{
    t->next = NULL;
    if (self->failed_tail)
        self->failed_tail->next = t;
    else
        self->failed = t;
    self->failed_tail = t;
    self->nfailed++;
    event_active (self->later, EV_TIMEOUT, 0);
}

/* Hands a transfer that left its host's queue to libcurl. */
static void
s_start (rt_http_client_t *self, s_transfer_t *t)
{
    s_host_t *host = t->host;
    t->started_us = rt_clock_mono_us ();
    CURL *easy = curl_easy_init ();
    if (!easy) {
        snprintf (t->error, sizeof t->error, "out of memory for a transfer");
        goto failed;
    }
    if (s_easy_setup (self, t, easy) != 0) {
        curl_easy_cleanup (easy);
        goto failed;
    }
    CURLMcode mc = curl_multi_add_handle (self->multi, easy);
    if (mc != CURLM_OK) {
        snprintf (t->error, sizeof t->error, "%s", curl_multi_strerror (mc));
        curl_easy_cleanup (easy);
        goto failed;
    }
    t->easy = easy;
    host->running++;
    self->nrunning++;
    t->prev = NULL;
    t->next = self->running;
    if (self->running)
        self->running->prev = t;
    self->running = t;
    return;
failed:
    t->host = NULL;
    s_fail_later (self, t);
    s_host_release (self, host);
}

/* Starts waiting requests while slots are free, hosts taking turns. */
static void
s_pump (rt_http_client_t *self)
{
    while (!self->closing && self->nrunning < (size_t)self->max_total && self->nqueued > 0) {
        s_host_t *h = self->hosts;
        while (h && !(h->head && h->running < self->max_host))
            h = h->next;
        if (!h)
            break;
        s_transfer_t *t = h->head;
        h->head = t->next;
        if (!h->head)
            h->tail = NULL;
        t->next = NULL;
        self->nqueued--;
        s_host_unlink (self, h);
        s_host_append (self, h);
        s_start (self, t);
    }
}

/* Takes a finished (or cancelled) transfer out of libcurl. */
static void
s_finish (rt_http_client_t *self, s_transfer_t *t, rt_http_outcome_t outcome, CURLcode rc)
{
    CURL *easy = t->easy;
    s_host_t *host = t->host;
    /* Out of the multi handle before done runs, so the connection is
     * idle in the cache for a follow-up submitted from the callback. */
    curl_multi_remove_handle (self->multi, easy);
    s_running_unlink (self, t);
    t->easy = NULL;
    t->host = NULL;
    host->running--;
    self->nrunning--;
    s_info_t info;
    s_info_read (easy, &info);
    curl_easy_cleanup (easy);
    s_tell (self, t, outcome, rc, &info);
    s_host_release (self, host);
}

static void
s_collect (rt_http_client_t *self)
{
    int left = 0;
    while (true) {
        CURLMsg *msg = curl_multi_info_read (self->multi, &left);
        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg does not survive curl_multi_remove_handle. */
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, &priv);
        s_transfer_t *t = (s_transfer_t *)priv;
        s_finish (self, t, s_classify (t, rc), rc);
    }
    s_pump (self);
}

/* --- libevent and libcurl --- */

static void
s_on_timeout (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rt_http_client_t *self = arg;
    int running = 0;
    curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s_collect (self);
}

static void
s_on_event (evutil_socket_t fd, short what, void *arg)
{
    rt_http_client_t *self = arg;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action (self->multi, fd, action, &running);
    s_collect (self);
}

static void
s_on_later (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rt_http_client_t *self = arg;
    /* Only the failures known now: one a callback causes waits for the
     * next turn, so a resubmitting caller cannot spin here. */
    s_transfer_t *t = self->failed;
    self->failed = self->failed_tail = NULL;
    while (t) {
        s_transfer_t *next = t->next;
        self->nfailed--;
        s_tell (self, t, RT_HTTP_OUTCOME_OTHER, CURLE_FAILED_INIT, NULL);
        t = next;
    }
    s_pump (self);
}

static void
s_sock_free (rt_http_client_t *self, s_sock_t *sock)
{
    if (sock->prev)
        sock->prev->next = sock->next;
    else
        self->socks = sock->next;
    if (sock->next)
        sock->next->prev = sock->prev;
    event_free (sock->ev);
    free (sock);
}

static int
s_on_socket (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    rt_http_client_t *self = userp;
    s_sock_t *sock = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sock)
            s_sock_free (self, sock);
        return 0;
    }
    short kind = (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    if (!sock) {
        sock = calloc (1, sizeof *sock);
        if (!sock)
            return -1;
        sock->ev = event_new (self->base, fd, kind, s_on_event, self);
        if (!sock->ev) {
            free (sock);
            return -1;
        }
        sock->next = self->socks;
        if (self->socks)
            self->socks->prev = sock;
        self->socks = sock;
        curl_multi_assign (self->multi, fd, sock);
    } else {
        event_del (sock->ev);
        event_assign (sock->ev, self->base, fd, kind, s_on_event, self);
    }
    event_add (sock->ev, NULL);
    return 0;
}

static int
s_on_timer (CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    rt_http_client_t *self = userp;
    if (timeout_ms < 0) {
        evtimer_del (self->timer);
        return 0;
    }
    /* 0 means at once: the loop's next turn, not from inside libcurl. */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add (self->timer, &tv);
    return 0;
}

/* --- the client --- */

rt_http_client_t *
rt_http_client_new (struct event_base *base, const rt_http_client_config_t *config, char *err,
                    size_t errlen)
{
    assert (base);
    rt_http_client_config_t c = {0};
    if (config)
        c = *config;
    if (c.max_host_connections < 0 || c.max_total_connections < 0 || c.connect_timeout_ms < 0 ||
        c.timeout_ms < 0) {
        rt_errf (err, errlen, "connection caps and timeouts must not be negative");
        return NULL;
    }
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rt_errf (err, errlen, "libcurl did not initialise");
        return NULL;
    }
    rt_http_client_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        curl_global_cleanup ();
        return NULL;
    }
    self->base = base;
    self->max_host = c.max_host_connections ? c.max_host_connections : S_DEFAULT_MAX_HOST;
    self->max_total = c.max_total_connections ? c.max_total_connections : S_DEFAULT_MAX_TOTAL;
    self->max_queued = c.max_queued ? c.max_queued : S_DEFAULT_MAX_QUEUED;
    self->connect_timeout_ms = c.connect_timeout_ms ? c.connect_timeout_ms : S_DEFAULT_CONNECT_MS;
    self->timeout_ms = c.timeout_ms ? c.timeout_ms : S_DEFAULT_TIMEOUT_MS;
    self->max_body = c.max_body ? c.max_body : S_DEFAULT_MAX_BODY;
    self->max_header_bytes = c.max_header_bytes ? c.max_header_bytes : S_DEFAULT_MAX_HEADER;
    self->tls_no_verify = c.tls_no_verify;
    self->user_agent = strdup (c.user_agent ? c.user_agent : S_DEFAULT_USER_AGENT);
    self->ca_file = c.ca_file ? strdup (c.ca_file) : NULL;
    self->multi = curl_multi_init ();
    self->share = curl_share_init ();
    self->timer = evtimer_new (base, s_on_timeout, self);
    self->later = event_new (base, -1, 0, s_on_later, self);
    if (!self->user_agent || (c.ca_file && !self->ca_file) || !self->multi || !self->share ||
        !self->timer || !self->later) {
        rt_errf (err, errlen, "out of memory");
        goto failed;
    }
    CURLMcode mc = CURLM_OK;
#define S_MSET(opt, val)                                                                           \
    do {                                                                                           \
        CURLMcode r_ = curl_multi_setopt (self->multi, opt, val);                                  \
        if (mc == CURLM_OK)                                                                        \
            mc = r_;                                                                               \
    } while (0)
    S_MSET (CURLMOPT_SOCKETFUNCTION, s_on_socket);
    S_MSET (CURLMOPT_SOCKETDATA, self);
    S_MSET (CURLMOPT_TIMERFUNCTION, s_on_timer);
    S_MSET (CURLMOPT_TIMERDATA, self);
    S_MSET (CURLMOPT_MAX_HOST_CONNECTIONS, (long)self->max_host);
    S_MSET (CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)self->max_total);
    S_MSET (CURLMOPT_MAXCONNECTS, (long)self->max_total);
#undef S_MSET
    if (mc != CURLM_OK) {
        rt_errf (err, errlen, "libcurl multi: %s", curl_multi_strerror (mc));
        goto failed;
    }
    if (curl_share_setopt (self->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
        CURLSHE_OK) {
        rt_errf (err, errlen, "libcurl cannot share TLS sessions");
        goto failed;
    }
    return self;
failed:
    rt_http_client_destroy (&self);
    return NULL;
}

int
rt_http_client_submit (rt_http_client_t *self, const rt_http_client_request_t *req, char *err,
                       size_t errlen)
{
    assert (self && req && req->done);
    if (self->closing) {
        rt_errf (err, errlen, "the client is being destroyed");
        return -1;
    }
    if (self->nqueued >= self->max_queued) {
        rt_errf (err, errlen, "too many requests waiting (%zu)", self->max_queued);
        return -1;
    }
    if (!req->url) {
        rt_errf (err, errlen, "no URL");
        return -1;
    }
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    if (!s_is_token (method, strlen (method))) {
        rt_errf (err, errlen, "method is not a token");
        return -1;
    }
    if (req->timeout_ms < 0 || req->connect_timeout_ms < 0) {
        rt_errf (err, errlen, "timeouts must not be negative");
        return -1;
    }
    bool has_expect = false;
    for (const char *const *h = req->headers; h && *h; h++) {
        if (!s_header_line_ok (*h)) {
            rt_errf (err, errlen, "malformed header line (want \"Name: value\", no CR or LF)");
            return -1;
        }
        if (s_header_is (*h, "Expect"))
            has_expect = true;
    }
    char key[1024];
    if (s_host_key (req->url, key, sizeof key, err, errlen) != 0)
        return -1;

    s_transfer_t *t = calloc (1, sizeof *t);
    if (!t)
        goto nomem;
    t->client = self;
    t->done = req->done;
    t->arg = req->arg;
    t->timeout_ms = req->timeout_ms ? req->timeout_ms : self->timeout_ms;
    t->connect_timeout_ms =
        req->connect_timeout_ms ? req->connect_timeout_ms : self->connect_timeout_ms;
    t->url = strdup (req->url);
    t->method = strdup (method);
    if (!t->url || !t->method)
        goto nomem;
    if (req->body) {
        t->body = malloc (req->body_len + 1);
        if (!t->body)
            goto nomem;
        memcpy (t->body, req->body, req->body_len);
        t->body[req->body_len] = '\0';
        t->body_len = req->body_len;
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *grown = curl_slist_append (t->headers, *h);
        if (!grown)
            goto nomem;
        t->headers = grown;
    }
    if (!has_expect) {
        /* libcurl would otherwise wait up to a second for a 100 Continue
         * before a body over 1 KiB, which few APIs send. */
        struct curl_slist *grown = curl_slist_append (t->headers, "Expect:");
        if (!grown)
            goto nomem;
        t->headers = grown;
    }
    s_host_t *host = s_host_get (self, key);
    if (!host)
        goto nomem;
    t->host = host;
    t->submitted_us = rt_clock_mono_us ();
    if (host->tail)
        host->tail->next = t;
    else
        host->head = t;
    host->tail = t;
    self->nqueued++;
    s_pump (self);
    return 0;
nomem:
    rt_errf (err, errlen, "out of memory");
    s_transfer_free (t);
    return -1;
}

size_t
rt_http_client_in_flight (const rt_http_client_t *self)
{
    if (!self)
        return 0;
    return self->nqueued + self->nrunning + self->nfailed;
}

void
rt_http_client_destroy (rt_http_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_http_client_t *self = *self_p;
    assert (!self->in_done);
    self->closing = true;
    while (self->running)
        s_finish (self, self->running, RT_HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK);
    for (s_host_t *h = self->hosts; h; h = h->next) {
        while (h->head) {
            s_transfer_t *t = h->head;
            h->head = t->next;
            self->nqueued--;
            s_tell (self, t, RT_HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, NULL);
        }
        h->tail = NULL;
    }
    while (self->failed) {
        s_transfer_t *t = self->failed;
        self->failed = t->next;
        self->nfailed--;
        s_tell (self, t, RT_HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, NULL);
    }
    self->failed_tail = NULL;
    while (self->hosts)
        s_host_release (self, self->hosts);
    /* Closes the kept connections (telling s_on_socket to stop watching
     * what it still watches); sockets it leaves are freed after it. */
    if (self->multi)
        curl_multi_cleanup (self->multi);
    while (self->socks)
        s_sock_free (self, self->socks);
    if (self->share)
        curl_share_cleanup (self->share);
    if (self->timer)
        event_free (self->timer);
    if (self->later)
        event_free (self->later);
    free (self->user_agent);
    free (self->ca_file);
    free (self);
    curl_global_cleanup ();
    *self_p = NULL;
}
