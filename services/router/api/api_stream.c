/*
 * api_stream: GET /v1/stream, the operator's Server-Sent Events: new
 * messages, assignments, counters, status changes, SLA warnings and
 * breaches of the conversations the caller may see, complete whichever
 * replica handled them, resumable with Last-Event-ID.
 *
 * The feed is routing.stream (sql/routing/004_stream.sql: triggers fill
 * it in the writers' transactions, and its head explains the reading
 * order): rows are read in (xid, seq) order below the horizon of finished
 * transactions, and an event's id is "<xid>-<seq>".
 *
 * One reader per API, a thread of its own with its own connection
 * (blocking libpq, as everywhere in retain), LISTENing on routing_stream:
 * on a notification, and every second in case one was missed (a
 * transaction that ends without writing can move the horizon past rows
 * already committed behind it; while rows wait there the reader looks
 * every 50 ms), it reads the new rows once for every subscriber and posts
 * to each, on its HTTP worker (rt_http_worker_post), the events it may
 * see as one chunk. The reader's position is where the live feed is.
 *
 * A subscriber, with the position it has been given:
 *
 *   - without Last-Event-ID it starts at the live position ("now");
 *   - with one at or past the live position (it came from a replica whose
 *     reader was ahead) it is live at once, and skips rows up to its id;
 *   - with one behind, it catches up: pages of S_PAGE rows after its id
 *     and up to the live position, one page per round of the reader, then
 *     it is live. The backlog's end is the live position itself, and both
 *     are moved by the one reader thread, so no row falls between the
 *     backlog and the live feed and none is in both;
 *   - with one at or before what retention deleted (or naming a
 *     transaction that does not exist yet) it gets an event "reset" (its
 *     lists are to be reloaded) with the live position as its id, and is
 *     live.
 *
 * Who sees what is api.h's rule, applied to each row: the conversation's
 * team (as its transaction left it), or its assignee's team (now), or
 * anyone when it has neither; an assignment also goes to those who had
 * the conversation before, so their lists lose it. Admins see everything.
 *
 * Each subscriber is held by the reader (its list) and by its worker (the
 * request): the worker ends the stream (the client left, or fell more than
 * S_PENDING_MAX behind: it reconnects and resumes) and marks it closed;
 * the reader then drops it and posts its free to the worker, behind every
 * chunk posted to it before. A comment ": keepalive" goes to a subscriber
 * given nothing for S_KEEPALIVE_MS, so proxies keep the connection and a
 * client that left is found. Retention: the reader runs
 * routing.stream_prune at most once a minute, keeping what api_stream_new
 * was told (24 hours by default).
 *
 * At api_stop the reader stops first; the server's destroy then ends
 * every stream (rt_http_server.h) and the subscribers are freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api_int.h"
#include "rt_buf.h"
#include "rt_clock.h"
#include "rt_log.h"

/* Rows per read, live or of a backlog. */
#define S_PAGE 500
/* The reader's look when nothing woke it, and while rows wait behind the
 * horizon. */
#define S_POLL_MS 1000
#define S_HELD_MS 50
/* Silence after which a subscriber gets a keepalive comment. */
#define S_KEEPALIVE_MS 15000
/* Bytes a subscriber may have waiting in its connection before it is
 * ended. */
#define S_PENDING_MAX (1024 * 1024)
/* Retention when none is given, and how often it runs. */
#define S_RETENTION_MS (24LL * 3600 * 1000)
#define S_PRUNE_MS     60000
/* Between two connection attempts of the reader. */
#define S_RECONNECT_MS 1000
/* What EventSource waits before it reconnects. */
#define S_RETRY "retry: 2000\n\n"

/* A position in the feed: the last row given. */
typedef struct {
    uint64_t xid; /* its transaction */
    uint64_t seq; /* its seq */
} s_pos_t;

typedef enum {
    S_SUB_NEW,     /* registered, not yet looked at by the reader */
    S_SUB_CATCHUP, /* reading its backlog */
    S_SUB_LIVE     /* given the live feed */
} s_sub_state_t;

typedef struct s_sub_t {
    rt_http_worker_t *worker;       /* its request's worker */
    rt_http_request_t *req;         /* worker only: the stream, NULL once ended */
    char scope[ROUTING_OP_MAX + 1]; /* the caller's team */
    bool admin;                     /* sees everything */
    bool resume;                    /* came with a Last-Event-ID */
    s_pos_t from;                   /* that id */
    s_sub_state_t state;            /* reader only */
    s_pos_t pos;                    /* reader only: the last row it was given */
    int64_t last_ms;                /* reader only: when it was last posted to */
    atomic_bool closed;             /* the worker ended it: the reader drops it */
    struct s_sub_t *next;           /* the reader's list, or the incoming one */
} s_sub_t;

struct api_stream_t {
    char *dsn;               /* owned */
    rt_db_t *db;             /* the reader's connection */
    pthread_t thread;        /* the reader */
    bool started;            /* thread must be joined */
    int wake_fd;             /* eventfd: a new subscriber or the stop */
    atomic_bool stopping;    /* api_stream_stop was called */
    pthread_mutex_t lock;    /* guards incoming */
    s_sub_t *incoming;       /* registered by workers, not taken by the reader yet */
    s_sub_t *subs;           /* the reader's subscribers */
    s_pos_t live;            /* the live feed's position */
    bool live_known;         /* live was read (at the first connection with subscribers) */
    bool held;               /* rows wait behind the horizon */
    int64_t retry_ms;        /* no connection attempt before this (monotonic ms) */
    int64_t prune_ms;        /* the next retention run (monotonic ms) */
    int64_t retention_ms;    /* rows older than this are deleted */
    bool failing;            /* the database failed: logged once until it works again */
    rt_gauge_t *subscribers; /* retain_router_stream_subscribers */
};

/* A chunk for one subscriber, posted to its worker. */
typedef struct {
    s_sub_t *sub; /* whom it is for */
    size_t len;   /* bytes */
    char text[];  /* the events */
} s_msg_t;

/* --- SQL --- */

/* The live position at start: the last final row. */
static const char *s_sql_end =
    "SELECT xid::text, seq FROM routing.stream WHERE xid < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY xid DESC, seq DESC LIMIT 1";

/* Rows after ($1, $2), up to ($3, $4) when given, below the horizon: the
 * rows and the horizon in one statement, so in one snapshot. */
static const char *s_sql_read =
    "SELECT s.xid::text, s.seq, s.kind, s.team_id, s.assignee, o.team_id, s.prev_team_id,"
    " po.team_id, s.payload::text FROM routing.stream s"
    " LEFT JOIN routing.operators o ON o.id = s.assignee"
    " LEFT JOIN routing.operators po ON po.id = s.prev_assignee"
    " WHERE (s.xid, s.seq) > ($1::xid8, $2::bigint)"
    " AND ($3::xid8 IS NULL OR (s.xid, s.seq) <= ($3::xid8, $4::bigint))"
    " AND s.xid < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY s.xid, s.seq LIMIT $5::integer";

/* Whether committed rows wait behind the horizon (an older transaction
 * still runs): the newest row's xid, one step down the primary key's
 * index from its end, against the horizon. (A range condition on the
 * horizon made the planner scan the table: it cannot tell how few rows
 * lie above a value known only at run time.) */
static const char *s_sql_held =
    "SELECT COALESCE((SELECT xid FROM routing.stream ORDER BY xid DESC, seq DESC LIMIT 1)"
    " >= pg_snapshot_xmin(pg_current_snapshot()), false)";

/* What retention deleted last, and the next transaction id. */
static const char *s_sql_horizon =
    "SELECT (SELECT xid::text FROM routing.stream_pruned), (SELECT seq FROM routing.stream_pruned),"
    " pg_snapshot_xmax(pg_current_snapshot())::text";

static const char *s_sql_prune = "SELECT routing.stream_prune($1::interval)";

/* Columns of s_sql_read. */
enum {
    R_XID,
    R_SEQ,
    R_KIND,
    R_TEAM,
    R_ASSIGNEE,
    R_ASSIGNEE_TEAM,
    R_PREV_TEAM,
    R_PREV_TEAM_OF,
    R_DATA
};

/* --- positions --- */

static int
s_pos_cmp (s_pos_t a, s_pos_t b)
{
    if (a.xid != b.xid)
        return a.xid < b.xid ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

static bool
s_u64 (const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* "<xid>-<seq>", as the events' ids are written. */
static bool
s_pos_parse (const char *text, s_pos_t *out)
{
    const char *dash = strchr (text, '-');
    return dash && s_u64 (text, (size_t)(dash - text), &out->xid) &&
           s_u64 (dash + 1, strlen (dash + 1), &out->seq);
}

static s_pos_t
s_pos_of (PGresult *res, int row)
{
    s_pos_t p = {0, 0};
    const char *x = PQgetvalue (res, row, R_XID), *s = PQgetvalue (res, row, R_SEQ);
    s_u64 (x, strlen (x), &p.xid);
    s_u64 (s, strlen (s), &p.seq);
    return p;
}

/* --- on the worker --- */

static void
s_sub_end (s_sub_t *sub)
{
    rt_http_request_t *req = sub->req;
    sub->req = NULL;
    if (req)
        rt_http_stream_end (req);
    atomic_store (&sub->closed, true);
}

static void
s_on_gone (rt_http_request_t *req, void *arg)
{
    s_sub_t *sub = arg;
    (void)req;
    s_sub_end (sub);
}

/* Writes a chunk posted by the reader; a client too far behind is ended. */
static void
s_deliver (void *arg)
{
    s_msg_t *msg = arg;
    s_sub_t *sub = msg->sub;
    if (sub->req && (rt_http_stream_write (sub->req, msg->text, msg->len) != 0 ||
                     rt_http_stream_pending (sub->req) > S_PENDING_MAX)) {
        if (!rt_http_request_gone (sub->req))
            rt_log (RT_LOG_INFO, "operator stream: a subscriber fell behind, ended",
                    rt_log_str ("peer", rt_http_peer (sub->req)));
        s_sub_end (sub);
    }
    free (msg);
}

static void
s_sub_free (void *arg)
{
    free (arg);
}

/* --- the reader --- */

/* Posts text to sub's worker. */
static void
s_post (s_sub_t *sub, const char *text, size_t len)
{
    s_msg_t *msg;
    if (len == 0 || atomic_load (&sub->closed))
        return;
    msg = malloc (sizeof *msg + len);
    if (!msg)
        return;
    msg->sub = sub;
    msg->len = len;
    memcpy (msg->text, text, len);
    if (rt_http_worker_post (sub->worker, s_deliver, msg) != 0) {
        rt_log (RT_LOG_ERROR, "operator stream: out of memory, an event was not sent");
        free (msg);
    }
    sub->last_ms = rt_clock_mono_ms ();
}

static bool
s_eq (PGresult *res, int row, int col, const char *scope)
{
    return !PQgetisnull (res, row, col) && strcmp (PQgetvalue (res, row, col), scope) == 0;
}

/* api.h's rule of who sees what, for one row. */
static bool
s_visible (const s_sub_t *sub, PGresult *res, int row)
{
    if (sub->admin)
        return true;
    if (PQgetisnull (res, row, R_TEAM) && PQgetisnull (res, row, R_ASSIGNEE))
        return true;
    return s_eq (res, row, R_TEAM, sub->scope) || s_eq (res, row, R_ASSIGNEE_TEAM, sub->scope) ||
           s_eq (res, row, R_PREV_TEAM, sub->scope) || s_eq (res, row, R_PREV_TEAM_OF, sub->scope);
}

/* Appends the rows after sub's position that it may see, and moves its
 * position to the last row. */
static void
s_events_for (s_sub_t *sub, PGresult *res, rt_buf_t *out)
{
    int n = PQntuples (res);
    for (int i = 0; i < n; i++) {
        s_pos_t p = s_pos_of (res, i);
        if (s_pos_cmp (p, sub->pos) <= 0)
            continue;
        sub->pos = p;
        if (!s_visible (sub, res, i))
            continue;
        rt_buf_printf (out, "id: %" PRIu64 "-%" PRIu64 "\nevent: %s\ndata: %s\n\n", p.xid, p.seq,
                       PQgetvalue (res, i, R_KIND), PQgetvalue (res, i, R_DATA));
    }
}

/* Reads up to S_PAGE rows after `after` (up to `upto` when not NULL). */
static PGresult *
s_read (api_stream_t *self, s_pos_t after, const s_pos_t *upto)
{
    char a_x[24], a_s[24], u_x[24], u_s[24], limit[16];
    const char *v[5] = {a_x, a_s, upto ? u_x : NULL, upto ? u_s : NULL, limit};
    snprintf (a_x, sizeof a_x, "%" PRIu64, after.xid);
    snprintf (a_s, sizeof a_s, "%" PRIu64, after.seq);
    if (upto) {
        snprintf (u_x, sizeof u_x, "%" PRIu64, upto->xid);
        snprintf (u_s, sizeof u_s, "%" PRIu64, upto->seq);
    }
    snprintf (limit, sizeof limit, "%d", S_PAGE);
    return rt_db_exec_prepared (self->db, "stream_read", 5, v, NULL, NULL, 0);
}

/* The live feed: every new final row, to every live subscriber. 0, or -1
 * when the database failed. */
static int
s_read_live (api_stream_t *self)
{
    rt_buf_t out = {0};
    int n;
    for (;;) {
        PGresult *res = s_read (self, self->live, NULL);
        if (!res)
            return -1;
        n = PQntuples (res);
        for (s_sub_t *sub = self->subs; sub; sub = sub->next) {
            if (sub->state != S_SUB_LIVE || atomic_load (&sub->closed))
                continue;
            rt_buf_reset (&out);
            s_events_for (sub, res, &out);
            if (!out.failed)
                s_post (sub, out.data, out.len);
        }
        if (n > 0)
            self->live = s_pos_of (res, n - 1);
        PQclear (res);
        if (n < S_PAGE)
            break;
    }
    rt_buf_free (&out);
    {
        PGresult *res = rt_db_exec_prepared (self->db, "stream_held", 0, NULL, NULL, NULL, 0);
        if (!res)
            return -1;
        self->held = PQgetvalue (res, 0, 0)[0] == 't';
        PQclear (res);
    }
    return 0;
}

/* One page of a catching-up subscriber's backlog; live once it reaches
 * the live position. 0, or -1 when the database failed. */
static int
s_catch_up (api_stream_t *self, s_sub_t *sub)
{
    rt_buf_t out = {0};
    PGresult *res = s_read (self, sub->pos, &self->live);
    int n;
    if (!res)
        return -1;
    n = PQntuples (res);
    s_events_for (sub, res, &out);
    if (!out.failed)
        s_post (sub, out.data, out.len);
    rt_buf_free (&out);
    PQclear (res);
    if (n < S_PAGE) {
        sub->pos = self->live;
        sub->state = S_SUB_LIVE;
    }
    return 0;
}

/* Where a new subscriber starts (see the file head). 0, or -1 when the
 * database failed (it stays new). */
static int
s_place (api_stream_t *self, s_sub_t *sub)
{
    PGresult *res;
    bool reset = false;
    char text[160];
    int n;
    if (!sub->resume) {
        sub->pos = self->live;
        sub->state = S_SUB_LIVE;
        return 0;
    }
    res = rt_db_exec_prepared (self->db, "stream_horizon", 0, NULL, NULL, NULL, 0);
    if (!res)
        return -1;
    if (!PQgetisnull (res, 0, 0)) {
        s_pos_t pruned = {0, 0};
        const char *x = PQgetvalue (res, 0, 0), *s = PQgetvalue (res, 0, 1);
        s_u64 (x, strlen (x), &pruned.xid);
        s_u64 (s, strlen (s), &pruned.seq);
        reset = s_pos_cmp (sub->from, pruned) < 0;
    }
    {
        uint64_t xmax = 0;
        const char *x = PQgetvalue (res, 0, 2);
        s_u64 (x, strlen (x), &xmax);
        reset = reset || sub->from.xid >= xmax;
    }
    PQclear (res);
    if (reset) {
        n = snprintf (text, sizeof text,
                      "id: %" PRIu64 "-%" PRIu64 "\nevent: reset\ndata: {\"reason\": \"the events"
                      " since that id are no longer kept; reload\"}\n\n",
                      self->live.xid, self->live.seq);
        s_post (sub, text, (size_t)n);
        sub->pos = self->live;
        sub->state = S_SUB_LIVE;
    } else if (s_pos_cmp (sub->from, self->live) >= 0) {
        sub->pos = sub->from;
        sub->state = S_SUB_LIVE;
    } else {
        sub->pos = sub->from;
        sub->state = S_SUB_CATCHUP;
    }
    return 0;
}

/* Drops the subscribers their workers ended; their free goes to the
 * worker, behind every chunk posted to them. */
static void
s_reap (api_stream_t *self)
{
    s_sub_t **p = &self->subs;
    while (*p) {
        s_sub_t *sub = *p;
        if (!atomic_load (&sub->closed)) {
            p = &sub->next;
            continue;
        }
        *p = sub->next;
        if (self->subscribers)
            rt_gauge_add (self->subscribers, -1);
        if (rt_http_worker_post (sub->worker, s_sub_free, sub) != 0)
            rt_log (RT_LOG_ERROR, "operator stream: a subscriber could not be freed");
    }
}

static void
s_keepalives (api_stream_t *self)
{
    static const char ka[] = ": keepalive\n\n";
    int64_t now = rt_clock_mono_ms ();
    for (s_sub_t *sub = self->subs; sub; sub = sub->next) {
        if (now - sub->last_ms >= S_KEEPALIVE_MS)
            s_post (sub, ka, sizeof ka - 1);
    }
}

static void
s_prune (api_stream_t *self)
{
    char keep[48];
    const char *v[1] = {keep};
    int64_t now = rt_clock_mono_ms ();
    PGresult *res;
    if (now < self->prune_ms)
        return;
    snprintf (keep, sizeof keep, "%lld milliseconds", (long long)self->retention_ms);
    self->prune_ms = now + S_PRUNE_MS;
    res = rt_db_exec_prepared (self->db, "stream_prune", 1, v, NULL, NULL, 0);
    if (!res) {
        rt_log (RT_LOG_WARN, "operator stream: retention failed",
                rt_log_str ("error", rt_db_error (self->db)));
        return;
    }
    PQclear (res);
}

static int
s_on_connect (rt_db_t *db, void *arg)
{
    (void)arg;
    return rt_db_exec (db, "LISTEN routing_stream");
}

/* The connection up, LISTENing, and the live position known; false when
 * the database cannot be had now. */
static bool
s_up (api_stream_t *self)
{
    int64_t now = rt_clock_mono_ms ();
    if (!rt_db_is_ok (self->db)) {
        if (now < self->retry_ms)
            return false;
        if (rt_db_connect (self->db) != 0) {
            self->retry_ms = now + S_RECONNECT_MS;
            if (!self->failing)
                rt_log (RT_LOG_WARN, "operator stream: database unavailable",
                        rt_log_str ("error", rt_db_error (self->db)));
            self->failing = true;
            return false;
        }
    }
    if (!self->live_known && self->subs) {
        PGresult *res = rt_db_exec_prepared (self->db, "stream_end", 0, NULL, NULL, NULL, 0);
        if (!res)
            return false;
        if (PQntuples (res) == 1) {
            const char *x = PQgetvalue (res, 0, 0), *s = PQgetvalue (res, 0, 1);
            s_u64 (x, strlen (x), &self->live.xid);
            s_u64 (s, strlen (s), &self->live.seq);
        }
        PQclear (res);
        self->live_known = true;
    }
    return true;
}

/* Waits for a notification, a wake-up or the timeout; drains both. */
static void
s_wait (api_stream_t *self, int timeout_ms)
{
    PGconn *conn = rt_db_is_ok (self->db) ? rt_db_conn (self->db) : NULL;
    struct pollfd p[2] = {{.fd = self->wake_fd, .events = POLLIN},
                          {.fd = conn ? PQsocket (conn) : -1, .events = POLLIN}};
    uint64_t count;
    if (poll (p, conn ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
        rt_log (RT_LOG_WARN, "operator stream: poll failed",
                rt_log_str ("error", strerror (errno)));
    if (p[0].revents & POLLIN) {
        ssize_t rc = read (self->wake_fd, &count, sizeof count);
        (void)rc;
    }
    if (conn && (p[1].revents & POLLIN)) {
        PGnotify *n;
        if (!PQconsumeInput (conn)) {
            rt_db_invalidate (self->db);
            return;
        }
        while ((n = PQnotifies (conn)) != NULL)
            PQfreemem (n);
    }
}

static void *
s_run (void *arg)
{
    api_stream_t *self = arg;
    while (!atomic_load (&self->stopping)) {
        bool busy = false;
        s_sub_t *in;
        pthread_mutex_lock (&self->lock);
        in = self->incoming;
        self->incoming = NULL;
        pthread_mutex_unlock (&self->lock);
        while (in) {
            s_sub_t *next = in->next;
            in->next = self->subs;
            self->subs = in;
            in = next;
        }
        s_reap (self);
        if (!self->subs) {
            /* Nobody to give the feed to: nothing is read (reading every
             * event's payload for nobody cost more than the events), and
             * where "now" is is found again for the next subscriber. */
            self->live_known = false;
            self->held = false;
            if (s_up (self))
                s_prune (self);
        } else if (s_up (self)) {
            bool failed = s_read_live (self) != 0;
            for (s_sub_t *sub = self->subs; sub && !failed; sub = sub->next) {
                if (atomic_load (&sub->closed))
                    continue;
                if (sub->state == S_SUB_NEW)
                    failed = s_place (self, sub) != 0;
                if (!failed && sub->state == S_SUB_CATCHUP) {
                    failed = s_catch_up (self, sub) != 0;
                    busy = busy || sub->state == S_SUB_CATCHUP;
                }
            }
            if (!failed) {
                s_prune (self);
                self->failing = false;
            } else if (!self->failing) {
                self->failing = true;
                rt_log (RT_LOG_WARN, "operator stream: reading the feed failed",
                        rt_log_str ("error", rt_db_error (self->db)));
            }
        }
        s_keepalives (self);
        s_wait (self, busy ? 0 : self->held ? S_HELD_MS : S_POLL_MS);
    }
    return NULL;
}

/* --- the API's side --- */

api_stream_t *
api_stream_new (const char *dsn, int64_t retention_ms, rt_metrics_t *metrics, char *err,
                size_t errlen)
{
    api_stream_t *self = calloc (1, sizeof *self);
    sigset_t all, old;
    int rc;
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->wake_fd = -1;
    self->retention_ms = retention_ms > 0 ? retention_ms : S_RETENTION_MS;
    pthread_mutex_init (&self->lock, NULL);
    atomic_init (&self->stopping, false);
    self->dsn = strdup (dsn);
    self->db = self->dsn ? rt_db_new (self->dsn, "retain-routerd-stream") : NULL;
    self->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!self->db || self->wake_fd < 0) {
        rt_errf (err, errlen, "operator stream: out of resources");
        goto fail;
    }
    if (metrics)
        self->subscribers = rt_metrics_gauge (metrics, "retain_router_stream_subscribers", "",
                                              "Operators' event streams open on this replica.");
    rt_db_set_on_connect (self->db, s_on_connect, NULL);
    if (rt_db_prepare (self->db, "stream_end", s_sql_end) != 0 ||
        rt_db_prepare (self->db, "stream_read", s_sql_read) != 0 ||
        rt_db_prepare (self->db, "stream_held", s_sql_held) != 0 ||
        rt_db_prepare (self->db, "stream_horizon", s_sql_horizon) != 0 ||
        rt_db_prepare (self->db, "stream_prune", s_sql_prune) != 0) {
        rt_errf (err, errlen, "operator stream: statements not registered");
        goto fail;
    }
    /* Signals belong to the daemon's main thread. */
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    rc = pthread_create (&self->thread, NULL, s_run, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        rt_errf (err, errlen, "operator stream: cannot start the reader: %s", strerror (rc));
        goto fail;
    }
    self->started = true;
    return self;
fail:
    api_stream_destroy (&self);
    return NULL;
}

void
api_stream_stop (api_stream_t *self)
{
    uint64_t one = 1;
    ssize_t rc;
    if (!self || !self->started)
        return;
    atomic_store (&self->stopping, true);
    rc = write (self->wake_fd, &one, sizeof one);
    (void)rc;
    pthread_join (self->thread, NULL);
    self->started = false;
}

void
api_stream_destroy (api_stream_t **self_p)
{
    api_stream_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    api_stream_stop (self);
    /* The server is gone: nobody else holds a subscriber now. */
    while (self->subs) {
        s_sub_t *next = self->subs->next;
        free (self->subs);
        self->subs = next;
    }
    while (self->incoming) {
        s_sub_t *next = self->incoming->next;
        free (self->incoming);
        self->incoming = next;
    }
    rt_db_destroy (&self->db);
    if (self->wake_fd >= 0)
        close (self->wake_fd);
    pthread_mutex_destroy (&self->lock);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}

/* --- GET /v1/stream --- */

void
api_stream_get (rt_http_request_t *req, void *arg)
{
    api_t *api = arg;
    api_stream_t *self = api_streams (api);
    api_caller_t caller;
    rt_form_t *q = NULL;
    const char *last;
    s_sub_t *sub;
    s_pos_t from = {0, 0};
    uint64_t one = 1;
    ssize_t wrc;
    int rc;
    if (api_begin (api, req, &caller) != 0)
        return;
    q = api_query (req);
    if (!q)
        return;
    /* EventSource sends the header when it reconnects; a first connection
     * that resumes (a page reloaded) can only name it in the query. */
    last = rt_http_header (req, "Last-Event-ID");
    if (!last || !*last)
        last = rt_form_get (q, "last_event_id");
    if (last && *last && !s_pos_parse (last, &from)) {
        rt_http_problem (req, 400, "bad-last-event-id",
                         "Last-Event-ID must be an id this stream gave (\"<xid>-<seq>\")");
        goto cleanup;
    }
    sub = calloc (1, sizeof *sub);
    if (!sub) {
        rt_http_problem (req, 503, "internal", "out of memory");
        goto cleanup;
    }
    sub->worker = rt_http_request_worker (req);
    sub->admin = caller.scope == NULL;
    snprintf (sub->scope, sizeof sub->scope, "%s", caller.scope ? caller.scope : "");
    sub->resume = last && *last;
    sub->from = from;
    sub->last_ms = rt_clock_mono_ms ();
    atomic_init (&sub->closed, false);
    rt_http_header_add (req, "Cache-Control", "no-cache");
    rt_http_header_add (req, "X-Accel-Buffering", "no");
    rc = rt_http_stream_begin (req, 200, "text/event-stream");
    if (rc != 0) {
        free (sub); /* HEAD, or the client already left */
        goto cleanup;
    }
    sub->req = req;
    rt_http_on_gone (req, s_on_gone, sub);
    rt_http_stream_write (req, S_RETRY, sizeof S_RETRY - 1);
    if (self->subscribers)
        rt_gauge_add (self->subscribers, 1);
    pthread_mutex_lock (&self->lock);
    sub->next = self->incoming;
    self->incoming = sub;
    pthread_mutex_unlock (&self->lock);
    wrc = write (self->wake_fd, &one, sizeof one);
    (void)wrc;
cleanup:
    rt_form_destroy (&q);
}
