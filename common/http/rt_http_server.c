/*
 * rt_http_server: the server's life (see rt_http_server.h; how its files
 * divide the work is in rt_http_internal.h).
 *
 * N workers, each a thread with its own libevent loop and a listener on
 * the one listening socket: the kernel hands each connection to one of
 * them, and the connection stays on that worker.
 *
 * The connection caps are counted under one mutex shared by the workers,
 * taken once per accept and once per close; refusals are counted by
 * reason in atomics and logged under a second mutex that keeps the log at
 * S_LOG_PER_SECOND lines a second, counting the rest into the next line,
 * so a flood of bad requests cannot fill the disk.
 *
 * Other threads reach a worker only through its post queue: a mutex, a
 * list and an eventfd its loop watches (libevent's own cross-thread
 * locking stays off, as in the rest of retain). Stopping goes the same
 * way: destroy sets a flag and wakes every worker; each stops accepting,
 * closes what awaits nothing, and leaves its loop once its deferred
 * requests are answered or stop_timeout_ms have passed.
 */
#include "rt_http_server.h"

#include "rt_http_internal.h"
#include "rt_log.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#define S_DEFAULT_ADDRESS         "127.0.0.1:8780"
#define S_DEFAULT_NAME            "http"
#define S_DEFAULT_MAX_BODY        (1024 * 1024)
#define S_DEFAULT_MAX_HEADER      (64 * 1024)
#define S_DEFAULT_MAX_HEADERS     100
#define S_DEFAULT_HEADER_TIMEOUT  10000
#define S_DEFAULT_BODY_TIMEOUT    30000
#define S_DEFAULT_IDLE_TIMEOUT    60000
#define S_DEFAULT_MAX_CONNECTIONS 10000
#define S_DEFAULT_PER_ADDRESS     256
#define S_DEFAULT_STOP_TIMEOUT    10000

/* Refusal log lines per second before they are only counted. */
#define S_LOG_PER_SECOND 20
/* Retry of accept after the process ran out of descriptors. */
#define S_ACCEPT_RETRY_MS 100
#define S_HOST_MAX        256

/* Splits "host:port", ":port" or "[v6]:port" into host (NULL for any
 * address) and port. */
static int
s_split_address (const char *address, char *host, size_t hostlen, const char **host_out, int *port)
{
    const char *colon = strrchr (address, ':');
    if (!colon)
        return -1;
    const char *h = address;
    size_t n = (size_t)(colon - address);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    } else if (memchr (h, ':', n))
        return -1; /* an IPv6 host must be bracketed */
    if (n >= hostlen)
        return -1;
    memcpy (host, h, n);
    host[n] = '\0';
    *host_out = n > 0 ? host : NULL;
    const char *p = colon + 1;
    if (*p == '\0')
        return -1;
    long value = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
        if (value > 65535)
            return -1;
    }
    *port = (int)value;
    return 0;
}

/* A listening, non-blocking socket bound to address, or -1 with err. */
static int
s_listen (const char *address, int *bound_port, char *err, size_t errlen)
{
    char host[S_HOST_MAX], service[16];
    const char *node = NULL;
    int port = 0, fd = -1, saved_errno = 0;
    struct addrinfo hints = {0};
    struct addrinfo *found = NULL;
    struct sockaddr_storage bound;
    socklen_t boundlen = sizeof bound;

    if (s_split_address (address, host, sizeof host, &node, &port) != 0) {
        rt_errf (err, errlen, "HTTP address \"%s\": expected host:port, :port or [v6]:port",
                 address);
        goto error;
    }
    snprintf (service, sizeof service, "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo (node, service, &hints, &found);
    if (rc != 0) {
        rt_errf (err, errlen, "HTTP address \"%s\": %s", address, gai_strerror (rc));
        goto error;
    }
    for (struct addrinfo *ai = found; ai; ai = ai->ai_next) {
        fd =
            socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen (fd, 1024) == 0)
            break;
        saved_errno = errno;
        close (fd);
        fd = -1;
    }
    if (fd < 0) {
        rt_errf (err, errlen, "HTTP address \"%s\": %s", address, strerror (saved_errno));
        goto error;
    }
    if (getsockname (fd, (struct sockaddr *)&bound, &boundlen) != 0) {
        rt_errf (err, errlen, "HTTP address \"%s\": getsockname: %s", address, strerror (errno));
        goto error;
    }
    if (bound.ss_family == AF_INET6)
        *bound_port = ntohs (((struct sockaddr_in6 *)&bound)->sin6_port);
    else
        *bound_port = ntohs (((struct sockaddr_in *)&bound)->sin_port);
    freeaddrinfo (found);
    return fd;
error:
    if (fd >= 0)
        close (fd);
    if (found)
        freeaddrinfo (found);
    return -1;
}

static rt_http_addr_t **
s_addr_slot (rt_http_server_t *srv, const unsigned char *key, size_t keylen)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < keylen; i++)
        h = (h ^ key[i]) * 16777619u;
    rt_http_addr_t **slot = &srv->addrs[h % RT_HTTP_ADDR_BUCKETS];
    while (*slot && !((*slot)->keylen == keylen && memcmp ((*slot)->key, key, keylen) == 0))
        slot = &(*slot)->next;
    return slot;
}

rt_http_refusal_t
rt_http_caps_take (rt_http_server_t *srv, const unsigned char *addr, size_t addrlen,
                   bool *by_address)
{
    rt_http_refusal_t verdict = RT_HTTP_REFUSAL_NONE;
    *by_address = false;
    pthread_mutex_lock (&srv->conn_lock);
    if (srv->total >= srv->config.max_connections)
        verdict = RT_HTTP_REFUSAL_TOO_MANY_CONNECTIONS;
    else {
        srv->total++;
        if (addrlen > 0) {
            rt_http_addr_t **slot = s_addr_slot (srv, addr, addrlen);
            if (!*slot) {
                *slot = calloc (1, sizeof **slot);
                if (*slot) {
                    memcpy ((*slot)->key, addr, addrlen);
                    (*slot)->keylen = addrlen;
                }
            }
            if (!*slot || (*slot)->count >= srv->config.max_connections_per_address)
                verdict = RT_HTTP_REFUSAL_TOO_MANY_PER_ADDRESS;
            else {
                (*slot)->count++;
                *by_address = true;
            }
        }
    }
    pthread_mutex_unlock (&srv->conn_lock);
    return verdict;
}

void
rt_http_caps_release (rt_http_server_t *srv, const unsigned char *addr, size_t addrlen,
                      bool by_address)
{
    pthread_mutex_lock (&srv->conn_lock);
    srv->total--;
    if (by_address) {
        rt_http_addr_t **slot = s_addr_slot (srv, addr, addrlen);
        if (*slot && --(*slot)->count == 0) {
            rt_http_addr_t *gone = *slot;
            *slot = gone->next;
            free (gone);
        }
    }
    pthread_mutex_unlock (&srv->conn_lock);
}

static void
s_log_refusal (rt_http_server_t *srv, const rt_http_refusal_info_t *info, const char *peer,
               const char *detail, const rt_http_request_t *req)
{
    time_t now = time (NULL);
    uint64_t suppressed = 0;
    bool write_line = false;
    pthread_mutex_lock (&srv->log_lock);
    if (now != srv->log_second) {
        suppressed = srv->log_suppressed;
        srv->log_suppressed = 0;
        srv->log_second = now;
        srv->log_lines = 0;
    }
    if (srv->log_lines < S_LOG_PER_SECOND) {
        srv->log_lines++;
        write_line = true;
    } else
        srv->log_suppressed++;
    pthread_mutex_unlock (&srv->log_lock);
    if (suppressed)
        rt_log (RT_LOG_WARN, "HTTP refusals not logged (rate limit)",
                rt_log_str ("server", srv->name),
                rt_log_uint ("count", (unsigned long long)suppressed));
    if (!write_line)
        return;
    rt_log (info->status >= 500 ? RT_LOG_WARN : RT_LOG_INFO, "HTTP request refused",
            rt_log_str ("server", srv->name), rt_log_str ("reason", info->label),
            rt_log_int ("status", info->status), rt_log_str ("peer", peer),
            rt_log_str ("detail", detail ? detail : info->detail),
            rt_log_str ("method", req ? rt_http_method (req) : ""),
            rt_log_str ("path", req ? rt_http_path (req) : ""));
}

void
rt_http_refusal_count (rt_http_server_t *srv, rt_http_refusal_t refusal,
                       const rt_http_request_t *req, const char *peer, const char *detail)
{
    const rt_http_refusal_info_t *info = rt_http_refusal_info (refusal);
    if (srv->refused[refusal])
        rt_counter_inc (srv->refused[refusal]);
    if (srv->config.refused)
        srv->config.refused (srv->config.refused_arg, req, info->status, info->label);
    s_log_refusal (srv, info, peer, detail, req);
}

void
rt_http_worker_check_done (rt_http_worker_t *w)
{
    if (w->stopping && w->nconns == 0 && w->ndeferred == 0)
        event_base_loopbreak (w->base);
}

static void
s_on_accept (struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa, int salen,
             void *arg)
{
    (void)listener;
    (void)salen;
    rt_http_conn_accept (arg, fd, sa);
}

static void
s_on_retry_accept (evutil_socket_t fd, short what, void *arg)
{
    rt_http_worker_t *w = arg;
    (void)fd;
    (void)what;
    if (w->listener)
        evconnlistener_enable (w->listener);
}

static void
s_on_accept_error (struct evconnlistener *listener, void *arg)
{
    rt_http_worker_t *w = arg;
    int error = EVUTIL_SOCKET_ERROR ();
    struct timeval tv = {0, S_ACCEPT_RETRY_MS * 1000};
    /* Out of descriptors: the socket stays readable, so pause instead of
     * spinning on it. */
    rt_log (RT_LOG_WARN, "HTTP accept failed", rt_log_str ("server", w->server->name),
            rt_log_str ("error", evutil_socket_error_to_string (error)));
    evconnlistener_disable (listener);
    evtimer_add (w->retry_accept, &tv);
}

static void
s_wake (rt_http_worker_t *w)
{
    uint64_t one = 1;
    ssize_t rc;
    do {
        rc = write (w->wake_fd, &one, sizeof one);
    } while (rc < 0 && errno == EINTR);
}

static void
s_on_stop_timeout (evutil_socket_t fd, short what, void *arg)
{
    rt_http_worker_t *w = arg;
    (void)fd;
    (void)what;
    if (w->ndeferred > 0)
        rt_log (RT_LOG_WARN, "HTTP server stopped with requests unanswered",
                rt_log_str ("server", w->server->name), rt_log_int ("requests", w->ndeferred));
    rt_http_conn_free_all (w);
    event_base_loopbreak (w->base);
}

static void
s_worker_stop (rt_http_worker_t *w)
{
    struct timeval tv = {w->server->config.stop_timeout_ms / 1000,
                         (w->server->config.stop_timeout_ms % 1000) * 1000};
    w->stopping = true;
    if (w->listener) {
        evconnlistener_free (w->listener);
        w->listener = NULL;
    }
    rt_http_conn_stop_all (w);
    evtimer_add (w->stop_timer, &tv);
    rt_http_worker_check_done (w);
}

static void
s_on_wake (evutil_socket_t fd, short what, void *arg)
{
    rt_http_worker_t *w = arg;
    uint64_t count;
    rt_http_post_t *list;
    (void)what;
    if (read (fd, &count, sizeof count) < 0 && errno != EAGAIN)
        rt_log (RT_LOG_ERROR, "HTTP worker wake-up unreadable",
                rt_log_str ("error", strerror (errno)));
    pthread_mutex_lock (&w->lock);
    list = w->posts;
    w->posts = w->posts_tail = NULL;
    pthread_mutex_unlock (&w->lock);
    while (list) {
        rt_http_post_t *next = list->next;
        if (list->req_fn)
            list->req_fn (list->req, list->arg);
        else
            list->task_fn (list->arg);
        free (list);
        list = next;
    }
    if (atomic_load (&w->server->stopping) && !w->stopping)
        s_worker_stop (w);
}

static void *
s_worker_run (void *arg)
{
    rt_http_worker_t *w = arg;
    event_base_dispatch (w->base);
    return NULL;
}

static int
s_worker_init (rt_http_server_t *srv, rt_http_worker_t *w, char *err, size_t errlen)
{
    w->server = srv;
    w->wake_fd = -1;
    pthread_mutex_init (&w->lock, NULL);
    w->base = event_base_new ();
    if (!w->base)
        goto error;
    w->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        goto error;
    w->wake_ev = event_new (w->base, w->wake_fd, EV_READ | EV_PERSIST, s_on_wake, w);
    w->stop_timer = evtimer_new (w->base, s_on_stop_timeout, w);
    w->retry_accept = evtimer_new (w->base, s_on_retry_accept, w);
    if (!w->wake_ev || !w->stop_timer || !w->retry_accept || event_add (w->wake_ev, NULL) != 0)
        goto error;
    w->listener = evconnlistener_new (w->base, s_on_accept, w, LEV_OPT_CLOSE_ON_EXEC, -1, srv->fd);
    if (!w->listener)
        goto error;
    evconnlistener_set_error_cb (w->listener, s_on_accept_error);
    return 0;
error:
    rt_errf (err, errlen, "HTTP server %s: cannot set up a worker: %s", srv->name,
             strerror (errno));
    return -1;
}

static void
s_worker_fini (rt_http_worker_t *w)
{
    rt_http_post_t *post = w->posts;
    while (post) {
        rt_http_post_t *next = post->next;
        free (post);
        post = next;
    }
    rt_http_conn_free_all (w);
    /* Requests still deferred after the bounded wait: their handlers were
     * told they are gone and must not touch them after destroy. */
    while (w->deferred) {
        rt_http_request_t *req = w->deferred;
        w->deferred = req->next;
        rt_http_request_free (req);
    }
    if (w->listener)
        evconnlistener_free (w->listener);
    if (w->retry_accept)
        event_free (w->retry_accept);
    if (w->stop_timer)
        event_free (w->stop_timer);
    if (w->wake_ev)
        event_free (w->wake_ev);
    if (w->base)
        event_base_free (w->base);
    if (w->wake_fd >= 0)
        close (w->wake_fd);
    pthread_mutex_destroy (&w->lock);
}

static int
s_name_ok (const char *name)
{
    if (!*name)
        return 0;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return 0;
    }
    return 1;
}

static int
s_metrics_init (rt_http_server_t *srv)
{
    rt_metrics_t *m = srv->config.metrics;
    char labels[256];
    if (!m)
        return 0;
    snprintf (labels, sizeof labels, "server=\"%s\"", srv->name);
    srv->connections =
        rt_metrics_gauge (m, "retain_http_connections", labels, "Open HTTP connections.");
    for (int r = 1; r < RT_HTTP_REFUSAL_COUNT; r++) {
        snprintf (labels, sizeof labels, "server=\"%s\",reason=\"%s\"", srv->name,
                  rt_http_refusal_info ((rt_http_refusal_t)r)->label);
        srv->refused[r] = rt_metrics_counter (m, "retain_http_refused_total", labels,
                                              "Requests and connections the server refused.");
        if (!srv->refused[r])
            return -1;
    }
    return srv->connections ? 0 : -1;
}

static int
s_canned_503 (rt_http_server_t *srv)
{
    const rt_http_refusal_info_t *info =
        rt_http_refusal_info (RT_HTTP_REFUSAL_TOO_MANY_CONNECTIONS);
    char *body = rt_http_problem_body (info->status, info->type, info->detail);
    int n;
    if (!body)
        return -1;
    n = asprintf (&srv->canned_503,
                  "HTTP/1.1 503 %s\r\nContent-Type: application/problem+json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
                  rt_http_status_text (503), strlen (body), body);
    free (body);
    if (n < 0) {
        srv->canned_503 = NULL;
        return -1;
    }
    srv->canned_503_len = (size_t)n;
    return 0;
}

rt_http_server_t *
rt_http_server_new (const rt_http_server_config_t *config, char *err, size_t errlen)
{
    rt_http_server_t *self = calloc (1, sizeof *self);
    rt_http_server_config_t *c;
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->fd = -1;
    pthread_mutex_init (&self->conn_lock, NULL);
    pthread_mutex_init (&self->log_lock, NULL);
    atomic_init (&self->stopping, false);
    self->config = *config;
    c = &self->config;
    self->address = strdup (c->address ? c->address : S_DEFAULT_ADDRESS);
    self->name = strdup (c->name ? c->name : S_DEFAULT_NAME);
    if (!self->address || !self->name) {
        rt_errf (err, errlen, "out of memory");
        goto error;
    }
    if (!s_name_ok (self->name)) {
        rt_errf (err, errlen, "HTTP server name \"%s\": letters, digits, '_' and '-' only",
                 self->name);
        goto error;
    }
    c->address = self->address;
    c->name = self->name;
    if (c->threads <= 0)
        c->threads = 1;
    if (c->max_body == 0)
        c->max_body = S_DEFAULT_MAX_BODY;
    if (c->max_header_bytes == 0)
        c->max_header_bytes = S_DEFAULT_MAX_HEADER;
    if (c->max_headers == 0)
        c->max_headers = S_DEFAULT_MAX_HEADERS;
    if (c->header_timeout_ms <= 0)
        c->header_timeout_ms = S_DEFAULT_HEADER_TIMEOUT;
    if (c->body_timeout_ms <= 0)
        c->body_timeout_ms = S_DEFAULT_BODY_TIMEOUT;
    if (c->idle_timeout_ms <= 0)
        c->idle_timeout_ms = S_DEFAULT_IDLE_TIMEOUT;
    if (c->max_connections <= 0)
        c->max_connections = S_DEFAULT_MAX_CONNECTIONS;
    if (c->max_connections_per_address <= 0)
        c->max_connections_per_address = S_DEFAULT_PER_ADDRESS;
    if (c->stop_timeout_ms <= 0)
        c->stop_timeout_ms = S_DEFAULT_STOP_TIMEOUT;
    if (rt_http_routes_init (&self->routes, c->metrics, self->name) != 0 ||
        s_metrics_init (self) != 0 || s_canned_503 (self) != 0) {
        rt_errf (err, errlen, "out of memory");
        goto error;
    }
    self->fd = s_listen (self->address, &self->port, err, errlen);
    if (self->fd < 0)
        goto error;
    return self;
error:
    rt_http_server_destroy (&self);
    return NULL;
}

rt_http_route_t *
rt_http_route (rt_http_server_t *self, const char *method, const char *pattern,
               rt_http_handler_fn handler, void *arg)
{
    assert (!self->started);
    if (self->started || !handler)
        return NULL;
    return rt_http_routes_add (&self->routes, method, pattern, handler, arg);
}

int
rt_http_server_start (rt_http_server_t *self, char *err, size_t errlen)
{
    sigset_t all, old;
    if (self->started) {
        rt_errf (err, errlen, "HTTP server %s already started", self->name);
        return -1;
    }
    self->workers = calloc ((size_t)self->config.threads, sizeof *self->workers);
    if (!self->workers) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    self->started = true;
    for (int i = 0; i < self->config.threads; i++) {
        self->nworkers++;
        if (s_worker_init (self, &self->workers[i], err, errlen) != 0)
            return -1;
    }
    /* Signals belong to the daemon's threads, not to the workers. */
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    for (int i = 0; i < self->nworkers; i++) {
        rt_http_worker_t *w = &self->workers[i];
        int rc = pthread_create (&w->thread, NULL, s_worker_run, w);
        if (rc != 0) {
            pthread_sigmask (SIG_SETMASK, &old, NULL);
            rt_errf (err, errlen, "HTTP server %s: cannot start a worker: %s", self->name,
                     strerror (rc));
            return -1;
        }
        w->started = true;
    }
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    rt_log (RT_LOG_INFO, "HTTP server listening", rt_log_str ("server", self->name),
            rt_log_str ("address", self->address), rt_log_int ("port", self->port),
            rt_log_int ("threads", self->nworkers));
    return 0;
}

int
rt_http_server_port (const rt_http_server_t *self)
{
    return self ? self->port : -1;
}

void
rt_http_server_destroy (rt_http_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_http_server_t *self = *self_p;
    atomic_store (&self->stopping, true);
    for (int i = 0; i < self->nworkers; i++) {
        if (self->workers[i].started)
            s_wake (&self->workers[i]);
    }
    for (int i = 0; i < self->nworkers; i++) {
        if (self->workers[i].started)
            pthread_join (self->workers[i].thread, NULL);
    }
    for (int i = 0; i < self->nworkers; i++)
        s_worker_fini (&self->workers[i]);
    free (self->workers);
    if (self->fd >= 0)
        close (self->fd);
    rt_http_routes_fini (&self->routes);
    for (int i = 0; i < RT_HTTP_ADDR_BUCKETS; i++) {
        while (self->addrs[i]) {
            rt_http_addr_t *next = self->addrs[i]->next;
            free (self->addrs[i]);
            self->addrs[i] = next;
        }
    }
    pthread_mutex_destroy (&self->conn_lock);
    pthread_mutex_destroy (&self->log_lock);
    free (self->canned_503);
    free (self->address);
    free (self->name);
    free (self);
    *self_p = NULL;
}

/* Queues a post on w and wakes its loop; takes post. */
static void
s_post (rt_http_worker_t *w, rt_http_post_t *post)
{
    bool was_empty;
    post->next = NULL;
    pthread_mutex_lock (&w->lock);
    was_empty = w->posts == NULL;
    if (w->posts_tail)
        w->posts_tail->next = post;
    else
        w->posts = post;
    w->posts_tail = post;
    pthread_mutex_unlock (&w->lock);
    /* One wake-up per batch: the loop drains the whole queue. */
    if (was_empty)
        s_wake (w);
}

int
rt_http_post (rt_http_request_t *req, rt_http_request_fn fn, void *arg)
{
    rt_http_post_t *post = calloc (1, sizeof *post);
    if (!post)
        return -1;
    post->req = req;
    post->req_fn = fn;
    post->arg = arg;
    s_post (req->worker, post);
    return 0;
}

rt_http_worker_t *
rt_http_request_worker (const rt_http_request_t *req)
{
    return req->worker;
}

int
rt_http_worker_post (rt_http_worker_t *w, rt_http_task_fn fn, void *arg)
{
    rt_http_post_t *post = calloc (1, sizeof *post);
    if (!post)
        return -1;
    post->task_fn = fn;
    post->arg = arg;
    s_post (w, post);
    return 0;
}
