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
 * How a response is assembled and told is rt_http_client_response.c's;
 * the structs both files work on are in rt_http_client_internal.h.
 */
#include "rt_http_client_internal.h"

#include "rt_clock.h"
#include "rt_http_parse.h"
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

#define S_DEFAULT_MAX_HOST   8
#define S_DEFAULT_MAX_TOTAL  64
#define S_DEFAULT_MAX_QUEUED 100000
#define S_DEFAULT_CONNECT_MS 5000
#define S_DEFAULT_TIMEOUT_MS 30000
#define S_DEFAULT_MAX_BODY   (1024 * 1024)
#define S_DEFAULT_MAX_HEADER (64 * 1024)
#define S_DEFAULT_USER_AGENT "retain"

/* --- checking a request --- */

static bool
s_is_token (const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!rt_http_is_tchar ((unsigned char)s[i]))
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
s_host_unlink (rt_http_client_t *self, rt_http_client_host_t *h)
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
s_host_append (rt_http_client_t *self, rt_http_client_host_t *h)
{
    h->prev = self->hosts_tail;
    h->next = NULL;
    if (self->hosts_tail)
        self->hosts_tail->next = h;
    else
        self->hosts = h;
    self->hosts_tail = h;
}

static rt_http_client_host_t *
s_host_get (rt_http_client_t *self, const char *key)
{
    for (rt_http_client_host_t *h = self->hosts; h; h = h->next)
        if (strcmp (h->key, key) == 0)
            return h;
    rt_http_client_host_t *h = calloc (1, sizeof *h);
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
s_host_release (rt_http_client_t *self, rt_http_client_host_t *h)
{
    if (!h || h->running > 0 || h->head)
        return;
    s_host_unlink (self, h);
    free (h->key);
    free (h);
}

/* --- transfers --- */

void
rt_http_transfer_free (rt_http_transfer_t *t)
{
    if (!t)
        return;
    free (t->url);
    free (t->method);
    curl_slist_free_all (t->headers);
    free (t->body);
    rt_buf_free (&t->resp);
    rt_buf_free (&t->hdr);
    free (t);
}

/* --- easy handles --- */

/* Sets every option of one transfer on a fresh handle. */
static int
s_easy_setup (rt_http_client_t *self, rt_http_transfer_t *t, CURL *e)
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
    S_SET (CURLOPT_WRITEFUNCTION, rt_http_transfer_on_body);
    S_SET (CURLOPT_WRITEDATA, t);
    S_SET (CURLOPT_HEADERFUNCTION, rt_http_transfer_on_header);
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
s_running_unlink (rt_http_client_t *self, rt_http_transfer_t *t)
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
s_fail_later (rt_http_client_t *self, rt_http_transfer_t *t)
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
s_start (rt_http_client_t *self, rt_http_transfer_t *t)
{
    rt_http_client_host_t *host = t->host;
    t->started_us = rt_clock_elapsed_us ();
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
        rt_http_client_host_t *h = self->hosts;
        while (h && !(h->head && h->running < self->max_host))
            h = h->next;
        if (!h)
            break;
        rt_http_transfer_t *t = h->head;
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
s_finish (rt_http_client_t *self, rt_http_transfer_t *t, rt_http_outcome_t outcome, CURLcode rc)
{
    CURL *easy = t->easy;
    rt_http_client_host_t *host = t->host;
    /* Out of the multi handle before done runs, so the connection is
     * idle in the cache for a follow-up submitted from the callback. */
    curl_multi_remove_handle (self->multi, easy);
    s_running_unlink (self, t);
    t->easy = NULL;
    t->host = NULL;
    host->running--;
    self->nrunning--;
    rt_http_transfer_info_t info;
    rt_http_transfer_info_read (easy, &info);
    curl_easy_cleanup (easy);
    rt_http_transfer_tell (self, t, outcome, rc, &info);
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
        rt_http_transfer_t *t = (rt_http_transfer_t *)priv;
        s_finish (self, t, rt_http_transfer_classify (t, rc), rc);
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
    rt_http_transfer_t *t = self->failed;
    self->failed = self->failed_tail = NULL;
    while (t) {
        rt_http_transfer_t *next = t->next;
        self->nfailed--;
        rt_http_transfer_tell (self, t, RT_HTTP_OUTCOME_OTHER, CURLE_FAILED_INIT, NULL);
        t = next;
    }
    s_pump (self);
}

static void
s_sock_free (rt_http_client_t *self, rt_http_client_sock_t *sock)
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
    rt_http_client_sock_t *sock = socketp;
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

    rt_http_transfer_t *t = calloc (1, sizeof *t);
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
    rt_http_client_host_t *host = s_host_get (self, key);
    if (!host)
        goto nomem;
    t->host = host;
    t->submitted_us = rt_clock_elapsed_us ();
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
    rt_http_transfer_free (t);
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
    for (rt_http_client_host_t *h = self->hosts; h; h = h->next) {
        while (h->head) {
            rt_http_transfer_t *t = h->head;
            h->head = t->next;
            self->nqueued--;
            rt_http_transfer_tell (self, t, RT_HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK,
                                   NULL);
        }
        h->tail = NULL;
    }
    while (self->failed) {
        rt_http_transfer_t *t = self->failed;
        self->failed = t->next;
        self->nfailed--;
        rt_http_transfer_tell (self, t, RT_HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, NULL);
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
