/*
 * http.c: loadgen's HTTP/1.1 client side, one connection at a time.
 *
 * The sockets are driven directly (one send per request, a persistent
 * read event), not through bufferevents: the client's own cost per request
 * is taken from the same cores as the server's, so it is kept small. A
 * request is made from the templates into one buffer and leaves in one
 * write (TCP_NODELAY: nothing for Nagle to merge). An answer is framed by
 * its Content-Length, chunked encoding (trailers read and dropped) or the
 * connection's close; 1xx answers are skipped; the body is counted, never
 * kept. No pipelining: one request in flight per connection, so anything
 * the server sends while none is asked (a 408 before it closes) is
 * dropped.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "loadgen.h"

static void s_read_cb (evutil_socket_t fd, short what, void *arg);
static void s_write_cb (evutil_socket_t fd, short what, void *arg);

int
loadgen_bytes_add (loadgen_bytes_t *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (b->len + n > b->cap) {
        size_t cap = 2 * (b->len + n);
        char *grown = realloc (b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy (b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int
s_template_add (loadgen_template_t *t, loadgen_piece_t p)
{
    loadgen_piece_t *grown = realloc (t->piece, (t->npieces + 1) * sizeof *grown);
    if (!grown)
        return -1;
    t->piece = grown;
    t->piece[t->npieces++] = p;
    return 0;
}

/* Splits `text` (taken over) into pieces; -1 on a malformed {seq%N}. */
int
loadgen_template_parse (loadgen_template_t *t, char *text, size_t len)
{
    size_t i = 0, lit = 0;
    t->text = text;
    while (i < len) {
        loadgen_piece_t p = {.kind = LOADGEN_LIT};
        size_t taken = 0;
        if (text[i] == '{' && len - i >= 5 && memcmp (text + i, "{seq}", 5) == 0) {
            p.kind = LOADGEN_SEQ;
            taken = 5;
        } else if (text[i] == '{' && len - i >= 8 && memcmp (text + i, "{due_us}", 8) == 0) {
            p.kind = LOADGEN_DUE_US;
            taken = 8;
        } else if (text[i] == '{' && len - i >= 5 && memcmp (text + i, "{seq%", 5) == 0) {
            /* The text ends with a NUL (s_read_file, the head's snprintf),
             * so strtoull stops inside it. */
            char *end = NULL;
            if (text[i + 5] < '0' || text[i + 5] > '9')
                return -1;
            unsigned long long mod = strtoull (text + i + 5, &end, 10);
            if (end >= text + len || *end != '}' || mod == 0)
                return -1;
            p.kind = LOADGEN_SEQ_MOD;
            p.mod = mod;
            taken = (size_t)(end + 1 - (text + i));
        }
        if (!taken) {
            i++;
            continue;
        }
        if (i > lit &&
            s_template_add (t, (loadgen_piece_t){LOADGEN_LIT, text + lit, i - lit, 0}) != 0)
            return -1;
        if (s_template_add (t, p) != 0)
            return -1;
        i += taken;
        lit = i;
    }
    if (len > lit &&
        s_template_add (t, (loadgen_piece_t){LOADGEN_LIT, text + lit, len - lit, 0}) != 0)
        return -1;
    return 0;
}

void
loadgen_template_free (loadgen_template_t *t)
{
    free (t->text);
    free (t->piece);
    memset (t, 0, sizeof *t);
}

/* Appends the rendering of `t` for one request to `out`. */
static int
s_render (const loadgen_template_t *t, uint64_t seq, int64_t due_us, loadgen_bytes_t *out)
{
    for (size_t i = 0; i < t->npieces; i++) {
        const loadgen_piece_t *p = &t->piece[i];
        char num[32];
        int n;
        if (p->kind == LOADGEN_LIT) {
            if (loadgen_bytes_add (out, p->lit, p->len) != 0)
                return -1;
            continue;
        }
        if (p->kind == LOADGEN_SEQ)
            n = snprintf (num, sizeof num, "%" PRIu64, seq);
        else if (p->kind == LOADGEN_SEQ_MOD)
            n = snprintf (num, sizeof num, "%" PRIu64, seq % p->mod);
        else
            n = snprintf (num, sizeof num, "%" PRId64, due_us);
        if (loadgen_bytes_add (out, num, (size_t)n) != 0)
            return -1;
    }
    return 0;
}

void
loadgen_conn_close (loadgen_conn_t *c)
{
    if (c->rev)
        event_free (c->rev);
    if (c->wev)
        event_free (c->wev);
    if (c->fd >= 0)
        close (c->fd);
    c->rev = c->wev = NULL;
    c->fd = -1;
    c->connected = false;
    c->in_len = 0;
}

/* Starts a non-blocking connect: 0, or -1 (nothing left open). */
int
loadgen_conn_connect (loadgen_conn_t *c)
{
    const loadgen_config_t *cfg = c->worker->cfg;
    int one = 1;
    c->fd = socket (cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    /* A request leaves in one write: nothing for Nagle to merge. */
    setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->rev = event_new (c->worker->base, c->fd, EV_READ | EV_PERSIST, s_read_cb, c);
    c->wev = event_new (c->worker->base, c->fd, EV_WRITE, s_write_cb, c);
    if (!c->rev || !c->wev)
        goto fail;
    if (connect (c->fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) == 0)
        c->connected = true;
    else if (errno != EINPROGRESS)
        goto fail;
    if (event_add (c->rev, NULL) != 0 || (!c->connected && event_add (c->wev, NULL) != 0))
        goto fail;
    return 0;
fail:
    loadgen_conn_close (c);
    return -1;
}

/* Writes what is left of c's request: 0 (done or waiting for room), -1 on
 * a failed connection. A request counts as sent once its last byte is. */
static int
s_flush (loadgen_conn_t *c)
{
    bool wrote = false;
    while (c->out_off < c->out.len) {
        ssize_t n = send (c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return event_add (c->wev, NULL);
        if (n < 0)
            return -1;
        c->out_off += (size_t)n;
        wrote = true;
    }
    if (wrote)
        c->worker->sent++;
    return 0;
}

int
loadgen_conn_send (loadgen_conn_t *c, int64_t j, uint64_t seq, int64_t due_us)
{
    loadgen_worker_t *w = c->worker;
    const loadgen_config_t *cfg = w->cfg;
    char cl[48];
    int n;

    /* The body first, for its length; then head, length and body in one
     * buffer, for one write. */
    w->body.len = 0;
    c->out.len = 0;
    if (cfg->has_body && s_render (&cfg->body, seq, due_us, &w->body) != 0)
        return -1;
    if (s_render (&cfg->head, seq, due_us, &c->out) != 0)
        return -1;
    if (cfg->has_body)
        n = snprintf (cl, sizeof cl, "Content-Length: %zu\r\n\r\n", w->body.len);
    else
        n = snprintf (cl, sizeof cl, "\r\n");
    if (loadgen_bytes_add (&c->out, cl, (size_t)n) != 0 ||
        loadgen_bytes_add (&c->out, w->body.data, w->body.len) != 0)
        return -1;
    c->out_off = 0;
    c->in_len = 0;
    c->req = j;
    c->state = LOADGEN_STATUS_LINE;
    c->status = 0;
    c->content_length = -1;
    c->chunked = false;
    c->close_after = false;
    if (c->fd < 0 && loadgen_conn_connect (c) != 0)
        return 1;
    if (c->connected && s_flush (c) != 0) {
        loadgen_conn_close (c);
        return 1;
    }
    return 0;
}

/* One line of the answer's head from c->in at *pos: its length (without
 * the CR LF) with *line set, or -1 when it has not all arrived. */
static ssize_t
s_line (loadgen_conn_t *c, size_t *pos, char **line)
{
    char *start = c->in + *pos, *nl = memchr (start, '\n', c->in_len - *pos);
    if (!nl)
        return -1;
    size_t len = (size_t)(nl - start);
    *pos += len + 1;
    if (len > 0 && start[len - 1] == '\r')
        len--;
    start[len] = '\0';
    *line = start;
    return (ssize_t)len;
}

static void
s_header (loadgen_conn_t *c, char *line)
{
    char *colon = strchr (line, ':');
    if (!colon)
        return;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp (line, "Content-Length") == 0)
        c->content_length = strtoll (v, NULL, 10);
    else if (strcasecmp (line, "Transfer-Encoding") == 0 && strcasestr (v, "chunked"))
        c->chunked = true;
    else if (strcasecmp (line, "Connection") == 0 && strcasestr (v, "close"))
        c->close_after = true;
}

/* The head is over: what the body is. 1 when the answer is complete. */
static int
s_head_done (loadgen_conn_t *c)
{
    if (c->status >= 100 && c->status < 200) {
        c->state = LOADGEN_STATUS_LINE; /* 100 Continue and the like: the answer follows */
        c->content_length = -1;
        c->chunked = false;
        return 0;
    }
    if (c->worker->cfg->head_method || c->status == 204 || c->status == 304)
        return 1;
    if (c->chunked)
        c->state = LOADGEN_CHUNK_SIZE;
    else if (c->content_length >= 0) {
        c->left = c->content_length;
        c->state = LOADGEN_BODY;
        return c->left == 0;
    } else {
        c->close_after = true;
        c->state = LOADGEN_UNTIL_EOF;
    }
    return 0;
}

/* Parses what has arrived in c->in and keeps the unparsed rest: 1 when
 * the answer is complete, 0 when more is needed, -1 on a protocol error. */
static int
s_parse (loadgen_conn_t *c)
{
    size_t pos = 0, mark = 0;
    int done = 0;
    char *line;
    while (!done && pos < c->in_len) {
        ssize_t len;
        size_t n;
        mark = pos;
        switch (c->state) {
        case LOADGEN_STATUS_LINE:
            len = s_line (c, &pos, &line);
            if (len < 0)
                goto partial;
            if (len < 12 || strncmp (line, "HTTP/1.", 7) != 0)
                return -1;
            c->status = atoi (line + 9);
            if (line[7] == '0')
                c->close_after = true;
            c->state = LOADGEN_HEADERS;
            break;
        case LOADGEN_HEADERS:
            len = s_line (c, &pos, &line);
            if (len < 0)
                goto partial;
            if (len > 0)
                s_header (c, line);
            else
                done = s_head_done (c);
            break;
        case LOADGEN_BODY:
        case LOADGEN_CHUNK_DATA:
            n = c->in_len - pos;
            if ((int64_t)n > c->left)
                n = (size_t)c->left;
            pos += n;
            c->left -= (int64_t)n;
            if (c->left == 0 && c->state == LOADGEN_CHUNK_DATA)
                c->state = LOADGEN_CHUNK_END;
            else if (c->left == 0)
                done = 1;
            break;
        case LOADGEN_CHUNK_SIZE:
            len = s_line (c, &pos, &line);
            if (len < 0)
                goto partial;
            c->left = strtoll (line, NULL, 16);
            if (c->left < 0)
                return -1;
            c->state = c->left == 0 ? LOADGEN_TRAILERS : LOADGEN_CHUNK_DATA;
            break;
        case LOADGEN_CHUNK_END:
            len = s_line (c, &pos, &line);
            if (len < 0)
                goto partial;
            c->state = LOADGEN_CHUNK_SIZE;
            break;
        case LOADGEN_TRAILERS:
            len = s_line (c, &pos, &line);
            if (len < 0)
                goto partial;
            done = len == 0;
            break;
        case LOADGEN_UNTIL_EOF:
            pos = c->in_len;
            break;
        }
    }
    mark = pos;
partial:
    /* An incomplete line waits for the rest; one that fills the buffer
     * is not a head this program reads. */
    if (mark == 0 && c->in_len == sizeof c->in)
        return -1;
    memmove (c->in, c->in + mark, c->in_len - mark);
    c->in_len -= mark;
    return done;
}

static void
s_read_cb (evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    loadgen_conn_t *c = arg;
    ssize_t n = recv (fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n == 0 && c->req >= 0 && c->state == LOADGEN_UNTIL_EOF) {
        c->close_after = true;
        loadgen_answered (c); /* the close ends the body */
        return;
    }
    if (n <= 0) {
        loadgen_failed (c);
        return;
    }
    if (c->req < 0)
        return; /* nothing asked: a server's parting words (408, then a close) */
    c->in_len += (size_t)n;
    int rc = s_parse (c);
    if (rc < 0)
        loadgen_failed (c);
    else if (rc > 0)
        loadgen_answered (c);
}

/* Writable: the connect has ended, or a short write can go on. */
static void
s_write_cb (evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    loadgen_conn_t *c = arg;
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            loadgen_failed (c);
            return;
        }
        c->connected = true;
        loadgen_connected (c);
    }
    if (c->req >= 0 && s_flush (c) != 0)
        loadgen_failed (c);
}
