/*
 * rt_admin: the admin HTTP server, on a libevent loop of its own thread.
 *
 * The listening socket is made here rather than by evhttp_bind_socket, so a
 * failure reports the real cause (address in use, bad host) and port 0 can
 * be read back with getsockname.
 *
 * Stopping: libevent's loop may only be broken from another thread when
 * libevent's global threading support is switched on. Instead the loop
 * watches the read end of a pipe of its own; rt_admin_stop writes a byte,
 * the loop's callback breaks the loop on its own thread, and the stopping
 * thread joins it. No libevent object is touched by two threads at once.
 *
 * The admin thread blocks every signal, so SIGTERM and SIGINT reach a thread
 * of the daemon (whose blocking calls they are meant to interrupt) instead of
 * this one.
 */
#include "rt_admin.h"

#include "rt_log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_HOST_MAX 256

/* Sockets and requests are bounded so a misbehaving scraper cannot make the
 * admin thread hold much memory. */
#define S_TIMEOUT_SECONDS 10
#define S_MAX_HEADERS     8192
#define S_MAX_BODY        4096

struct rt_admin_t {
    struct event_base *base;  /* the admin thread's loop; owned */
    struct evhttp *http;      /* the server on base; owned */
    struct event *wake_event; /* watches wake[0] on base; owned */
    int wake[2];              /* pipe: rt_admin_stop writes, the loop breaks */
    pthread_t thread;         /* runs the loop */
    bool thread_started;      /* thread must be joined */
    int port;                 /* the port bound, after port 0 resolved */
    rt_metrics_t *metrics;    /* rendered on /metrics; lent, may be NULL */
    rt_admin_ready_fn ready;  /* decides /readyz; NULL means always ready */
    void *ready_arg;          /* passed to ready */
};

static void s_seterr (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_seterr (char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (err, errlen, fmt, args);
    va_end (args);
}

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

/* Returns a listening, non-blocking socket bound to address, or -1. */
static int
s_listen (const char *address, int *bound_port, char *err, size_t errlen)
{
    char host[S_HOST_MAX];
    const char *node = NULL;
    int port = 0;
    char service[16];
    struct addrinfo hints = {0};
    struct addrinfo *found = NULL;
    int fd = -1;

    if (!address || s_split_address (address, host, sizeof host, &node, &port) != 0) {
        s_seterr (err, errlen, "admin address \"%s\": expected host:port, :port or [v6]:port",
                  address ? address : "(null)");
        goto error;
    }
    snprintf (service, sizeof service, "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo (node, service, &hints, &found);
    if (rc != 0) {
        s_seterr (err, errlen, "admin address \"%s\": %s", address, gai_strerror (rc));
        goto error;
    }
    /* The first address that binds wins. */
    int saved_errno = 0;
    for (struct addrinfo *ai = found; ai; ai = ai->ai_next) {
        fd =
            socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen (fd, 128) == 0)
            break;
        saved_errno = errno;
        close (fd);
        fd = -1;
    }
    if (fd < 0) {
        s_seterr (err, errlen, "admin address \"%s\": %s", address, strerror (saved_errno));
        goto error;
    }

    struct sockaddr_storage bound;
    socklen_t boundlen = sizeof bound;
    if (getsockname (fd, (struct sockaddr *)&bound, &boundlen) != 0) {
        s_seterr (err, errlen, "admin address \"%s\": getsockname: %s", address, strerror (errno));
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

static void
s_reply_text (struct evhttp_request *req, int code, const char *reason, const char *content_type,
              const char *body, size_t len)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers (req);
    evhttp_add_header (headers, "Content-Type", content_type);
    evhttp_add_header (headers, "Cache-Control", "no-store");
    struct evbuffer *buf = evbuffer_new ();
    if (!buf) {
        evhttp_send_error (req, 500, "Internal Server Error");
        return;
    }
    evbuffer_add (buf, body, len);
    evhttp_send_reply (req, code, reason, buf);
    evbuffer_free (buf);
}

static void
s_reply_plain (struct evhttp_request *req, int code, const char *reason, const char *body)
{
    s_reply_text (req, code, reason, "text/plain; charset=utf-8", body, strlen (body));
}

static void
s_on_request (struct evhttp_request *req, void *arg)
{
    rt_admin_t *self = arg;
    enum evhttp_cmd_type method = evhttp_request_get_command (req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri (req);
    const char *path = uri ? evhttp_uri_get_path (uri) : NULL;
    if (!path)
        path = "";

    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header (evhttp_request_get_output_headers (req), "Allow", "GET, HEAD");
        s_reply_plain (req, 405, "Method Not Allowed", "method not allowed\n");
    } else if (strcmp (path, "/healthz") == 0)
        s_reply_plain (req, 200, "OK", "ok\n");
    else if (strcmp (path, "/readyz") == 0) {
        char why[256] = "";
        bool ready = self->ready ? self->ready (self->ready_arg, why, sizeof why) : true;
        if (ready)
            s_reply_plain (req, 200, "OK", "ready\n");
        else {
            char body[sizeof why + 2];
            why[sizeof why - 1] = '\0';
            snprintf (body, sizeof body, "%s\n", why[0] ? why : "not ready");
            s_reply_plain (req, 503, "Service Unavailable", body);
        }
    } else if (strcmp (path, "/metrics") == 0) {
        char *text = self->metrics ? rt_metrics_render (self->metrics) : strdup ("");
        if (!text) {
            s_reply_plain (req, 500, "Internal Server Error", "out of memory\n");
            return;
        }
        s_reply_text (req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text,
                      strlen (text));
        free (text);
    } else
        s_reply_plain (req, 404, "Not Found", "not found\n");
}

static void
s_on_wake (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rt_admin_t *self = arg;
    event_base_loopbreak (self->base);
}

static void *
s_run (void *arg)
{
    rt_admin_t *self = arg;
    event_base_dispatch (self->base);
    return NULL;
}

rt_admin_t *
rt_admin_start (const char *address, rt_metrics_t *metrics, rt_admin_ready_fn ready,
                void *ready_arg, char *err, size_t errlen)
{
    int fd = -1;
    struct evconnlistener *listener = NULL;
    rt_admin_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_seterr (err, errlen, "out of memory");
        return NULL;
    }
    self->wake[0] = -1;
    self->wake[1] = -1;
    self->metrics = metrics;
    self->ready = ready;
    self->ready_arg = ready_arg;

    fd = s_listen (address, &self->port, err, errlen);
    if (fd < 0)
        goto error;
    if (pipe2 (self->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        s_seterr (err, errlen, "admin: pipe: %s", strerror (errno));
        goto error;
    }
    self->base = event_base_new ();
    if (!self->base) {
        s_seterr (err, errlen, "admin: cannot create an event base");
        goto error;
    }
    self->http = evhttp_new (self->base);
    if (!self->http) {
        s_seterr (err, errlen, "admin: cannot create the HTTP server");
        goto error;
    }
    /* Let every method reach s_on_request, which answers 405; evhttp itself
     * would answer 501 to the ones it was not told about. */
    evhttp_set_allowed_methods (self->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                                EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_timeout (self->http, S_TIMEOUT_SECONDS);
    evhttp_set_max_headers_size (self->http, S_MAX_HEADERS);
    evhttp_set_max_body_size (self->http, S_MAX_BODY);
    evhttp_set_gencb (self->http, s_on_request, self);

    /* From here the listener owns fd and closes it when freed. */
    listener = evconnlistener_new (self->base, NULL, NULL,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!listener) {
        s_seterr (err, errlen, "admin: cannot listen on %s", address);
        goto error;
    }
    fd = -1;
    if (!evhttp_bind_listener (self->http, listener)) {
        s_seterr (err, errlen, "admin: cannot serve on %s", address);
        goto error;
    }
    listener = NULL; /* now freed by evhttp_free */

    self->wake_event = event_new (self->base, self->wake[0], EV_READ, s_on_wake, self);
    if (!self->wake_event || event_add (self->wake_event, NULL) != 0) {
        s_seterr (err, errlen, "admin: cannot watch the stop pipe");
        goto error;
    }

    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    int rc = pthread_create (&self->thread, NULL, s_run, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        s_seterr (err, errlen, "admin: cannot start the thread: %s", strerror (rc));
        goto error;
    }
    self->thread_started = true;
    rt_log (RT_LOG_INFO, "admin server listening", "address", "%s", address, "port", "%d",
            self->port, NULL);
    return self;

error:
    if (listener)
        evconnlistener_free (listener);
    if (fd >= 0)
        close (fd);
    rt_admin_stop (&self);
    return NULL;
}

int
rt_admin_port (const rt_admin_t *self)
{
    return self ? self->port : -1;
}

void
rt_admin_stop (rt_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_admin_t *self = *self_p;
    if (self->thread_started) {
        ssize_t rc;
        do {
            rc = write (self->wake[1], "x", 1);
        } while (rc < 0 && errno == EINTR);
        pthread_join (self->thread, NULL);
    }
    if (self->wake_event)
        event_free (self->wake_event);
    if (self->http)
        evhttp_free (self->http);
    if (self->base)
        event_base_free (self->base);
    if (self->wake[0] >= 0)
        close (self->wake[0]);
    if (self->wake[1] >= 0)
        close (self->wake[1]);
    free (self);
    *self_p = NULL;
}
