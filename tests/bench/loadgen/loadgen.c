/*
 * loadgen: an open-loop HTTP/1.1 load generator, for latency at a rate
 * that is really offered.
 *
 *   loadgen --url http://HOST:PORT/PATH --rate R --duration S
 *           [--method M] [--header 'Name: value']... [--body-file FILE]
 *           [--connections C] [--threads T] [--timeout S] [--drain S]
 *           [--seq-start N] [--record FILE]
 *
 * Why open loop. A closed-loop client (wrk, ab) sends a connection's next
 * request only when its answer arrives, so a slow server lowers its own
 * load, and the requests that would have queued behind a slow answer are
 * never sent, so never measured (coordinated omission). Here request i is
 * due at t0 + i/R whatever the server does. C keep-alive connections carry
 * the requests; when all are busy a due request waits for the next free
 * one, and its latency still counts from its due time, so queueing shows in
 * the figures instead of lowering the load. The achieved rate is printed
 * beside the target: a run more than 5% short says "rate_ok": false and
 * exits 1, since its latencies were not taken at the rate it claims.
 *
 * --rate 0 is a closed loop, for throughput: every connection sends its
 * next request as soon as the previous answer is in, until the duration
 * has passed; latency then counts from each send.
 *
 * The connections are opened before t0 (within --timeout), so the run
 * measures requests, not TCP handshakes; one the server closes later is
 * reopened when next used, and that reconnection is in the latency.
 *
 * Requests. The header values and the body (read from --body-file) are
 * templates: {seq} is the request's number (--seq-start + i), {seq%N} that
 * number modulo N, {due_us} its due time in unix microseconds; any other
 * brace is literal, so JSON bodies need no escaping. Content-Length is
 * computed. A request generator other than the template would be another
 * s_render; the rest of the program only sees bytes.
 *
 * Deadlines on everything: a request unanswered --timeout seconds after
 * its due time counts as a timeout (its connection is closed and reopened;
 * a request still queued then is never sent), and the run ends at
 * duration + --drain (default: the timeout), whatever is left then
 * counting as timeouts. The percentiles cover every request due in the
 * run: one without an answer (error or timeout) counts with the latency at
 * which it was given up, and never less than the timeout, so failures
 * cannot make the figures better.
 *
 * Output: one JSON line on stdout (see s_report). --record FILE also
 * writes one CSV line per request, "seq,due_us,status,latency_us" (status
 * 0: a connection error, -1: a timeout), so a benchmark can check what the
 * server did with each one. Exit status: 0, 1 when the rate fell short,
 * 2 on bad usage or setup.
 *
 * T threads (--threads) each run their own libevent loop with C/T of the
 * connections; thread k takes requests k, k+T, k+2T, ... This file is
 * the schedule, the figures and the command line; http.c the connections;
 * schedule.c the due times, the rate check and the percentiles, which
 * bench_bus shares.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"
#include "schedule.h"

#define MAX_HEADERS 32

static int64_t
s_wall_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval
s_tv (int64_t ns)
{
    if (ns < 0)
        ns = 0;
    struct timeval tv = {.tv_sec = ns / 1000000000, .tv_usec = (ns % 1000000000) / 1000};
    return tv;
}

/* ---- the schedule ------------------------------------------------------- */

static int64_t
s_due_ns (const loadgen_worker_t *w, int64_t j)
{
    const loadgen_config_t *cfg = w->cfg;
    if (cfg->rate <= 0)
        return w->due_ns[j];
    return loadgen_due_ns (cfg->t0_ns, cfg->rate, (int64_t)w->index + j * cfg->threads);
}

static uint64_t
s_seq (const loadgen_worker_t *w, int64_t j)
{
    return w->cfg->seq_start + (uint64_t)w->index + (uint64_t)j * (uint64_t)w->cfg->threads;
}

/* Records the fate of request j; errors and timeouts never count faster
 * than the timeout. */
static void
s_resolve (loadgen_worker_t *w, int64_t j, int status, int64_t now)
{
    int64_t lat_ns = now - s_due_ns (w, j);
    int64_t timeout_ns = (int64_t)(w->cfg->timeout_s * 1e9);
    if (status <= 0 && lat_ns < timeout_ns)
        lat_ns = timeout_ns;
    w->status[j] = status;
    w->lat_us[j] = lat_ns / 1000;
    w->resolved++;
    if (status > 0)
        w->last_answer_ns = now;
}

/* Closed loop: room for one more request. */
static int
s_grow (loadgen_worker_t *w)
{
    if (w->n < w->cap)
        return 0;
    int64_t cap = w->cap ? 2 * w->cap : 4096;
    int64_t *due = realloc (w->due_ns, (size_t)cap * sizeof *due);
    if (due)
        w->due_ns = due;
    int64_t *lat = realloc (w->lat_us, (size_t)cap * sizeof *lat);
    if (lat)
        w->lat_us = lat;
    int32_t *st = realloc (w->status, (size_t)cap * sizeof *st);
    if (st)
        w->status = st;
    if (!due || !lat || !st)
        return -1;
    w->cap = cap;
    return 0;
}

static void
s_idle_push (loadgen_worker_t *w, loadgen_conn_t *c)
{
    c->req = -1;
    w->idle[w->nidle++] = (int)(c - w->conn);
}

/* Makes and sends request j on connection c (see loadgen_conn_send). */
static int
s_send (loadgen_worker_t *w, loadgen_conn_t *c, int64_t j)
{
    const loadgen_config_t *cfg = w->cfg;
    int64_t due_us = cfg->wall0_us + (s_due_ns (w, j) - cfg->t0_ns) / 1000;
    return loadgen_conn_send (c, j, s_seq (w, j), due_us);
}

/* Sends what is due on the idle connections, gives up what waited past
 * its timeout, and arms the timer for the next due request. */
static void
s_pump (loadgen_worker_t *w)
{
    const loadgen_config_t *cfg = w->cfg;
    int64_t now = loadgen_mono_ns ();
    int64_t timeout_ns = (int64_t)(cfg->timeout_s * 1e9);
    int64_t end_ns = cfg->t0_ns + (int64_t)(cfg->duration_s * 1e9);

    if (cfg->rate <= 0) {
        while (w->nidle > 0 && now >= cfg->t0_ns && now < end_ns && !w->failed) {
            if (s_grow (w) != 0) {
                w->failed = true;
                break;
            }
            int64_t j = w->n++;
            w->due_ns[j] = now;
            w->status[j] = LOADGEN_STATUS_PENDING;
            loadgen_conn_t *c = &w->conn[w->idle[--w->nidle]];
            int rc = s_send (w, c, j);
            if (rc < 0)
                w->failed = true;
            if (rc != 0) {
                /* Left for the tick, so a refused connection is not a spin. */
                s_resolve (w, j, LOADGEN_STATUS_ERROR, now);
                s_idle_push (w, c);
                break;
            }
        }
        return;
    }
    while (w->next < w->n && !w->failed) {
        int64_t j = w->next, due = s_due_ns (w, j);
        if (due > now)
            break;
        if (now - due >= timeout_ns) {
            s_resolve (w, j, LOADGEN_STATUS_TIMEOUT, now); /* waited too long: never sent */
            w->next++;
            continue;
        }
        if (w->nidle == 0)
            break;
        loadgen_conn_t *c = &w->conn[w->idle[--w->nidle]];
        int rc = s_send (w, c, j);
        w->next++;
        if (rc < 0)
            w->failed = true;
        if (rc != 0) {
            s_resolve (w, j, LOADGEN_STATUS_ERROR, now);
            s_idle_push (w, c);
        }
    }
    if (w->next < w->n && w->nidle > 0 && !w->failed) {
        struct timeval tv = s_tv (s_due_ns (w, w->next) - now);
        evtimer_add (w->due_timer, &tv);
    }
}

/* Ends the loop when every request is resolved. */
static void
s_check_end (loadgen_worker_t *w, int64_t now)
{
    const loadgen_config_t *cfg = w->cfg;
    int64_t end_ns = cfg->t0_ns + (int64_t)(cfg->duration_s * 1e9);
    bool issuing = cfg->rate > 0 ? w->next < w->n : now < end_ns;
    if (w->failed || (!issuing && w->resolved == w->n))
        event_base_loopbreak (w->base);
}

void
loadgen_connected (loadgen_conn_t *c)
{
    loadgen_worker_t *w = c->worker;
    if (w->warming > 0 && --w->warming == 0)
        event_base_loopbreak (w->base); /* every connection is open */
}

/* A whole answer has arrived on c. */
void
loadgen_answered (loadgen_conn_t *c)
{
    loadgen_worker_t *w = c->worker;
    int64_t now = loadgen_mono_ns ();
    s_resolve (w, c->req, c->status, now);
    if (c->close_after)
        loadgen_conn_close (c);
    s_idle_push (w, c);
    s_pump (w);
    s_check_end (w, now);
}

/* The connection failed: the request in flight, if any, is an error; the
 * connection is reopened when next used. Before t0 it is one fewer
 * connection warming up. */
void
loadgen_failed (loadgen_conn_t *c)
{
    loadgen_worker_t *w = c->worker;
    int64_t now = loadgen_mono_ns ();
    bool was_warming = !c->connected && w->warming > 0;
    loadgen_conn_close (c);
    if (was_warming) {
        w->warm_failed++;
        if (--w->warming == 0)
            event_base_loopbreak (w->base);
        return;
    }
    if (c->req < 0)
        return;
    s_resolve (w, c->req, LOADGEN_STATUS_ERROR, now);
    s_idle_push (w, c);
    s_pump (w);
    s_check_end (w, now);
}

static void
s_due_cb (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    loadgen_worker_t *w = arg;
    s_pump (w);
    s_check_end (w, loadgen_mono_ns ());
}

/* Every few milliseconds: requests past their timeout are given up (their
 * connections closed), and at duration + drain the run ends. */
static void
s_tick_cb (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    loadgen_worker_t *w = arg;
    const loadgen_config_t *cfg = w->cfg;
    int64_t now = loadgen_mono_ns ();
    int64_t timeout_ns = (int64_t)(cfg->timeout_s * 1e9);
    int64_t hard_end = cfg->t0_ns + (int64_t)((cfg->duration_s + cfg->drain_s) * 1e9);

    for (int i = 0; i < w->nconns; i++) {
        loadgen_conn_t *c = &w->conn[i];
        if (c->req >= 0 && (now - s_due_ns (w, c->req) >= timeout_ns || now >= hard_end)) {
            int64_t j = c->req;
            loadgen_conn_close (c);
            s_resolve (w, j, LOADGEN_STATUS_TIMEOUT, now);
            s_idle_push (w, c);
        }
    }
    if (now >= hard_end) {
        /* Open loop: whatever is still queued is given up too. */
        for (; cfg->rate > 0 && w->next < w->n; w->next++)
            s_resolve (w, w->next, LOADGEN_STATUS_TIMEOUT, now);
        event_base_loopbreak (w->base);
        return;
    }
    s_pump (w);
    s_check_end (w, now);
}

static void
s_break_cb (evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    loadgen_worker_t *w = arg;
    event_base_loopbreak (w->base);
}

/* Opens every connection of w, waiting at most the timeout. */
static void
s_warm_up (loadgen_worker_t *w)
{
    for (int i = 0; i < w->nconns; i++) {
        loadgen_conn_t *c = &w->conn[i];
        if (loadgen_conn_connect (c) != 0)
            w->warm_failed++;
        else if (!c->connected)
            w->warming++;
    }
    if (w->warming > 0) {
        /* A timer of its own, not event_base_loopexit: that one would
         * stay pending and end the run itself later. */
        struct event *deadline = evtimer_new (w->base, s_break_cb, w);
        struct timeval tv = s_tv ((int64_t)(w->cfg->timeout_s * 1e9));
        if (!deadline || evtimer_add (deadline, &tv) != 0)
            w->failed = true;
        else
            event_base_dispatch (w->base);
        if (deadline)
            event_free (deadline);
    }
    /* What has not connected by now is a connection like any other that
     * failed: reopened when used. */
    for (int i = 0; i < w->nconns; i++)
        if (w->conn[i].fd >= 0 && !w->conn[i].connected) {
            w->warm_failed++;
            loadgen_conn_close (&w->conn[i]);
        }
    w->warming = 0;
}

static void *
s_worker_run (void *arg)
{
    loadgen_worker_t *w = arg;
    s_warm_up (w);
    pthread_barrier_wait (w->warm);
    pthread_barrier_wait (w->go); /* main has set t0 */

    int64_t now = loadgen_mono_ns ();
    struct timeval start = s_tv (w->cfg->t0_ns - now);
    struct timeval tick = {.tv_sec = 0, .tv_usec = 5000};
    event_add (w->tick, &tick);
    evtimer_add (w->start, &start);
    event_base_dispatch (w->base);
    for (int i = 0; i < w->nconns; i++)
        loadgen_conn_close (&w->conn[i]);
    return NULL;
}

static int
s_worker_init (loadgen_worker_t *w, const loadgen_config_t *cfg, int index, int nconns)
{
    struct event_config *ec = event_config_new ();
    w->cfg = cfg;
    w->index = index;
    w->nconns = nconns;
    if (!ec)
        return -1;
    /* Requests are due every few hundred microseconds: millisecond timers
     * would send them in bursts (honestly measured, but needlessly late).
     * The closed loop has no schedule, and skips the timerfd's cost. */
    if (cfg->rate > 0)
        event_config_set_flag (ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    w->base = event_base_new_with_config (ec);
    event_config_free (ec);
    if (!w->base)
        return -1;
    w->due_timer = evtimer_new (w->base, s_due_cb, w);
    w->start = evtimer_new (w->base, s_due_cb, w);
    w->tick = event_new (w->base, -1, EV_PERSIST, s_tick_cb, w);
    w->conn = calloc ((size_t)nconns, sizeof *w->conn);
    w->idle = calloc ((size_t)nconns, sizeof *w->idle);
    if (!w->due_timer || !w->start || !w->tick || !w->conn || !w->idle)
        return -1;
    for (int i = nconns - 1; i >= 0; i--) {
        w->conn[i].worker = w;
        w->conn[i].fd = -1;
        s_idle_push (w, &w->conn[i]);
    }
    if (cfg->rate > 0) {
        int64_t k = index, t = cfg->threads;
        w->n = cfg->scheduled > k ? (cfg->scheduled - k + t - 1) / t : 0;
        w->cap = w->n;
        w->lat_us = calloc ((size_t)w->n + 1, sizeof *w->lat_us);
        w->status = calloc ((size_t)w->n + 1, sizeof *w->status);
        if (!w->lat_us || !w->status)
            return -1;
        for (int64_t j = 0; j < w->n; j++)
            w->status[j] = LOADGEN_STATUS_PENDING;
    }
    return 0;
}

static void
s_worker_free (loadgen_worker_t *w)
{
    for (int i = 0; w->conn && i < w->nconns; i++) {
        loadgen_conn_close (&w->conn[i]);
        free (w->conn[i].out.data);
    }
    if (w->due_timer)
        event_free (w->due_timer);
    if (w->start)
        event_free (w->start);
    if (w->tick)
        event_free (w->tick);
    if (w->base)
        event_base_free (w->base);
    free (w->conn);
    free (w->idle);
    free (w->due_ns);
    free (w->lat_us);
    free (w->status);
    free (w->body.data);
}

/* ---- report ------------------------------------------------------------- */

static int
s_record (const loadgen_config_t *cfg, loadgen_worker_t *w, const char *path)
{
    FILE *f = fopen (path, "w");
    if (!f) {
        fprintf (stderr, "loadgen: %s: %s\n", path, strerror (errno));
        return -1;
    }
    for (int k = 0; k < cfg->threads; k++)
        for (int64_t j = 0; j < w[k].n; j++)
            fprintf (f, "%" PRIu64 ",%" PRId64 ",%d,%" PRId64 "\n", s_seq (&w[k], j),
                     cfg->wall0_us + (s_due_ns (&w[k], j) - cfg->t0_ns) / 1000, w[k].status[j],
                     w[k].lat_us[j]);
    if (fclose (f) != 0) {
        fprintf (stderr, "loadgen: %s: %s\n", path, strerror (errno));
        return -1;
    }
    return 0;
}

/* Prints the JSON line; returns whether the rate was met. Its fields:
 * mode ("open" or "closed"), target_rate (null when closed), achieved_rate
 * (answers of any status per second) and ok_rate (2xx answers per second),
 * both over elapsed_s (first due time to last answer, never less than
 * duration_s); scheduled (requests due), sent (written in full),
 * completed (answered); the answers by class (1xx ... 5xx, other), errors
 * and timeouts; p50/p90/p99/p999/max_ms over every request due; rate_ok. */
static bool
s_report (const loadgen_config_t *cfg, loadgen_worker_t *w)
{
    int64_t total = 0, sent = 0, answered = 0, errors = 0, timeouts = 0, last = cfg->t0_ns;
    int64_t klass[6] = {0};
    for (int k = 0; k < cfg->threads; k++) {
        total += w[k].n;
        sent += w[k].sent;
        if (w[k].last_answer_ns > last)
            last = w[k].last_answer_ns;
    }
    int64_t *lat = malloc ((size_t)(total + 1) * sizeof *lat), n = 0;
    if (!lat) {
        fprintf (stderr, "loadgen: out of memory\n");
        exit (2);
    }
    for (int k = 0; k < cfg->threads; k++)
        for (int64_t j = 0; j < w[k].n; j++) {
            int st = w[k].status[j];
            lat[n++] = w[k].lat_us[j];
            if (st == LOADGEN_STATUS_ERROR)
                errors++;
            else if (st == LOADGEN_STATUS_TIMEOUT)
                timeouts++;
            else {
                answered++;
                klass[st >= 100 && st < 600 ? st / 100 : 0]++;
            }
        }
    loadgen_sort_i64 (lat, n);
    /* Over the duration at least: answers that stopped early do not make a
     * short run look fast. */
    double elapsed = (double)(last - cfg->t0_ns) / 1e9;
    if (elapsed < cfg->duration_s)
        elapsed = cfg->duration_s;
    double achieved = (double)answered / elapsed;
    bool ok = loadgen_rate_ok (achieved, cfg->rate);
    char target[32];
    if (cfg->rate > 0)
        snprintf (target, sizeof target, "%.1f", cfg->rate);
    else
        snprintf (target, sizeof target, "null");
    printf ("{\"mode\":\"%s\",\"target_rate\":%s,\"achieved_rate\":%.1f,\"ok_rate\":%.1f,"
            "\"duration_s\":%.3f,\"elapsed_s\":%.3f,\"connections\":%d,\"threads\":%d,"
            "\"scheduled\":%" PRId64 ",\"sent\":%" PRId64 ",\"completed\":%" PRId64
            ",\"1xx\":%" PRId64 ",\"2xx\":%" PRId64 ",\"3xx\":%" PRId64 ",\"4xx\":%" PRId64
            ",\"5xx\":%" PRId64 ",\"other\":%" PRId64 ",\"errors\":%" PRId64
            ",\"timeouts\":%" PRId64 ",\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
            "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"rate_ok\":%s}\n",
            cfg->rate > 0 ? "open" : "closed", target, achieved, (double)klass[2] / elapsed,
            cfg->duration_s, elapsed, cfg->connections, cfg->threads, total, sent, answered,
            klass[1], klass[2], klass[3], klass[4], klass[5], klass[0], errors, timeouts,
            loadgen_pct_ms (lat, n, 0.50), loadgen_pct_ms (lat, n, 0.90),
            loadgen_pct_ms (lat, n, 0.99), loadgen_pct_ms (lat, n, 0.999),
            n ? (double)lat[n - 1] / 1000.0 : 0, ok ? "true" : "false");
    fflush (stdout);
    free (lat);
    return ok;
}

/* ---- setup -------------------------------------------------------------- */

static void
s_usage (void)
{
    fprintf (stderr, "usage: loadgen --url http://HOST:PORT/PATH --rate R --duration S\n"
                     "         [--method M] [--header 'Name: value']... [--body-file FILE]\n"
                     "         [--connections C] [--threads T] [--timeout S] [--drain S]\n"
                     "         [--seq-start N] [--record FILE]\n"
                     "  --rate 0: closed loop (each connection sends when answered)\n"
                     "  templates: {seq} {seq%%N} {due_us} in header values and the body\n");
}

static char *
s_read_file (const char *path, size_t *len)
{
    FILE *f = fopen (path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) { /* room for the NUL that ends the text */
            cap = cap ? 2 * cap : 4096;
            char *grown = realloc (buf, cap);
            if (!grown)
                goto fail;
            buf = grown;
        }
        size_t got = fread (buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror (f))
        goto fail;
    fclose (f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free (buf);
    fclose (f);
    return NULL;
}

/* Splits http://host[:port]/path (a name or an IPv4 address) and resolves
 * the host. */
static int
s_parse_url (const char *url, loadgen_config_t *cfg, char *host, size_t hostcap, char *port,
             const char **path)
{
    if (strncmp (url, "http://", 7) != 0) {
        fprintf (stderr, "loadgen: only http:// URLs\n");
        return -1;
    }
    const char *h = url + 7, *slash = strchr (h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen (h);
    *path = slash ? slash : "/";
    if (hl == 0 || hl >= hostcap) {
        fprintf (stderr, "loadgen: bad host in %s\n", url);
        return -1;
    }
    memcpy (host, h, hl);
    host[hl] = '\0';
    char *colon = strrchr (host, ':');
    char hostonly[256];
    snprintf (port, 8, "80");
    snprintf (hostonly, sizeof hostonly, "%s", host);
    if (colon) {
        snprintf (port, 8, "%.7s", colon + 1);
        hostonly[colon - host] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo (hostonly, port, &hints, &res);
    if (rc != 0) {
        fprintf (stderr, "loadgen: %s: %s\n", hostonly, gai_strerror (rc));
        return -1;
    }
    memcpy (&cfg->addr, res->ai_addr, res->ai_addrlen);
    cfg->addrlen = res->ai_addrlen;
    freeaddrinfo (res);
    return 0;
}

static bool
s_number (const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtod (s, &end);
    return errno == 0 && end != s && *end == '\0' && isfinite (*out) && *out >= 0;
}

int
main (int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"method", required_argument, NULL, 'm'},
                                         {"header", required_argument, NULL, 'H'},
                                         {"body-file", required_argument, NULL, 'b'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"connections", required_argument, NULL, 'c'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"drain", required_argument, NULL, 'D'},
                                         {"seq-start", required_argument, NULL, 's'},
                                         {"record", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    loadgen_config_t cfg = {.connections = 16, .threads = 1, .timeout_s = 10, .drain_s = -1};
    const char *url = NULL, *method = "GET", *body_file = NULL, *record = NULL;
    const char *headers[MAX_HEADERS];
    int nheaders = 0, opt, status = 2, unconnected = 0;
    pthread_barrier_t warm, go;
    double v, rate = -1, duration = -1;
    loadgen_worker_t *w = NULL;
    char host[256], port[8];
    const char *path;

    while ((opt = getopt_long (argc, argv, "u:m:H:b:r:d:c:t:T:D:s:o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'm':
            method = optarg;
            break;
        case 'H':
            if (nheaders == MAX_HEADERS || !strchr (optarg, ':')) {
                fprintf (stderr, "loadgen: bad or too many headers: %s\n", optarg);
                return 2;
            }
            headers[nheaders++] = optarg;
            break;
        case 'b':
            body_file = optarg;
            break;
        case 'r':
        case 'd':
        case 'T':
        case 'D':
            if (!s_number (optarg, &v)) {
                fprintf (stderr, "loadgen: not a number: %s\n", optarg);
                return 2;
            }
            if (opt == 'r')
                rate = v;
            else if (opt == 'd')
                duration = v;
            else if (opt == 'T')
                cfg.timeout_s = v;
            else
                cfg.drain_s = v;
            break;
        case 'c':
            cfg.connections = atoi (optarg);
            break;
        case 't':
            cfg.threads = atoi (optarg);
            break;
        case 's':
            cfg.seq_start = strtoull (optarg, NULL, 10);
            break;
        case 'o':
            record = optarg;
            break;
        default:
            s_usage ();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!url || rate < 0 || duration <= 0 || cfg.threads < 1 || cfg.threads > 64 ||
        cfg.connections < cfg.threads || cfg.connections > 100000 || cfg.timeout_s <= 0 ||
        optind != argc) {
        s_usage ();
        return 2;
    }
    cfg.rate = rate;
    cfg.duration_s = duration;
    if (cfg.drain_s < 0)
        cfg.drain_s = cfg.timeout_s;
    cfg.scheduled = rate > 0 ? (int64_t)llround (rate * duration) : 0;
    cfg.head_method = strcmp (method, "HEAD") == 0;
    signal (SIGPIPE, SIG_IGN);

    if (s_parse_url (url, &cfg, host, sizeof host, port, &path) != 0)
        return 2;
    {
        /* The head: request line, Host, the caller's headers. */
        size_t cap = strlen (method) + strlen (path) + strlen (host) + 64, len;
        for (int i = 0; i < nheaders; i++)
            cap += strlen (headers[i]) + 2;
        char *head = malloc (cap);
        if (!head)
            return 2;
        len = (size_t)snprintf (head, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host);
        for (int i = 0; i < nheaders; i++)
            len += (size_t)snprintf (head + len, cap - len, "%s\r\n", headers[i]);
        if (loadgen_template_parse (&cfg.head, head, len) != 0) {
            fprintf (stderr, "loadgen: bad placeholder in a header\n");
            goto cleanup;
        }
    }
    if (body_file) {
        size_t len = 0;
        char *body = s_read_file (body_file, &len);
        if (!body) {
            fprintf (stderr, "loadgen: %s: %s\n", body_file, strerror (errno));
            goto cleanup;
        }
        if (loadgen_template_parse (&cfg.body, body, len) != 0) {
            fprintf (stderr, "loadgen: bad placeholder in %s\n", body_file);
            goto cleanup;
        }
        cfg.has_body = true;
    }

    w = calloc ((size_t)cfg.threads, sizeof *w);
    if (!w)
        goto cleanup;
    for (int k = 0; k < cfg.threads; k++) {
        int share = cfg.connections / cfg.threads + (k < cfg.connections % cfg.threads);
        w[k].warm = &warm;
        w[k].go = &go;
        if (s_worker_init (&w[k], &cfg, k, share) != 0) {
            fprintf (stderr, "loadgen: out of memory or no event loop\n");
            goto cleanup;
        }
    }
    pthread_barrier_init (&warm, NULL, (unsigned)cfg.threads + 1);
    pthread_barrier_init (&go, NULL, (unsigned)cfg.threads + 1);
    for (int k = 0; k < cfg.threads; k++)
        if (pthread_create (&w[k].thread, NULL, s_worker_run, &w[k]) != 0) {
            fprintf (stderr, "loadgen: cannot start a thread\n");
            exit (2);
        }
    pthread_barrier_wait (&warm);
    /* t0 a little ahead, so that every loop is waiting when request 0 is
     * due; the threads read it after the second barrier. */
    cfg.t0_ns = loadgen_mono_ns () + 10 * 1000000;
    cfg.wall0_us = s_wall_us () + 10 * 1000;
    pthread_barrier_wait (&go);
    for (int k = 0; k < cfg.threads; k++)
        pthread_join (w[k].thread, NULL);
    pthread_barrier_destroy (&warm);
    pthread_barrier_destroy (&go);
    for (int k = 0; k < cfg.threads; k++) {
        if (w[k].failed) {
            fprintf (stderr, "loadgen: out of memory or a libevent failure during the run\n");
            goto cleanup;
        }
        unconnected += w[k].warm_failed;
    }
    if (unconnected > 0)
        fprintf (stderr, "loadgen: %d of %d connections could not be opened before t0\n",
                 unconnected, cfg.connections);
    if (record && s_record (&cfg, w, record) != 0)
        goto cleanup;
    status = s_report (&cfg, w) ? 0 : 1;
    if (status)
        fprintf (stderr, "loadgen: achieved rate more than %.0f%% short of the target\n",
                 LOADGEN_RATE_SHORTAGE * 100);
cleanup:
    for (int k = 0; w && k < cfg.threads; k++)
        s_worker_free (&w[k]);
    free (w);
    loadgen_template_free (&cfg.head);
    loadgen_template_free (&cfg.body);
    return status;
}
