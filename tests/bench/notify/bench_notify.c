/*
 * bench_notify: the programs tests/bench/notify/run needs beside the
 * daemons (the script says what is measured and how it is checked).
 *
 *   bench_notify fake --listen HOST:PORT --record FILE [--threads T]
 *   bench_notify preload --ingress EP --events N --first C --run R
 *   bench_notify publish --pg-dsn DSN --events N --first C --run R --rate X
 *   bench_notify null --pg-dsn DSN --pub EP --group G [--batch-max B]
 *
 * fake is the Telegram Bot API's sendMessage on loopback, on retain's own
 * HTTP server (rt_http_server, T worker threads, default 1): every POST
 * /bot<token>/sendMessage is answered 200 with the documented success
 * ({"ok":true,"result":Message}, a fresh message_id) and recorded as one
 * CSV line "arrival_us,chat_id,text" in FILE: arrival_us is the request's
 * first byte (rt_http_arrival_us) in unix microseconds, so it compares
 * with PostgreSQL's commit timestamps. GET /stats answers {"requests":n}
 * after flushing FILE, so the script can count and then read it. It is
 * lighter than tests/support's fake of the five providers (which keeps
 * every header and body for the tests to inspect, needs cmocka, and
 * records no arrival time); its own ceiling is measured by the script
 * (loadgen, closed loop, at the connections notifyd opens). Runs until
 * SIGTERM.
 *
 * preload sends N OutboundMessageRequested envelopes to busd's ingress as
 * fast as busd acknowledges them (bench_events_preload), as routerd's
 * would look in the log: message i of run R
 * goes to customer C + i (S_CUSTOMER), on Telegram, keyed by the customer,
 * with the message id S_MESSAGE (R, 1, i) and the text S_TEXT (R, 't', i):
 * the fake's record names the message. Every envelope must be
 * acknowledged OK. Prints {"events":N,"acked":N,"seconds":s,
 * "events_per_s":x}.
 *
 * publish writes the same requests (phase 2, text S_TEXT (R, 'l', i)) into
 * the outbox open loop, as routerd does in its transactions: request i is
 * due at t0 + i/X (tests/bench/loadgen/schedule.c); whenever requests are
 * due, those due are written in one transaction together with their rows
 * of bench.requests (run, seq, due_us), whose commit timestamp
 * (pg_xact_commit_timestamp of the row) is the request's commit. One that
 * cannot be written on time (the previous commit still running) goes in
 * the next transaction, late, its due time kept. Prints {"events":N,
 * "seconds":s,"achieved_rate":r,"rate_ok":b,"transactions":t,
 * "max_batch":m}.
 *
 * null is one replica of consumer group G over the stream "message" whose
 * handler only unpacks each OutboundMessageRequested (bench_events_null):
 * what delivery from the log and the offset commits cost with no work,
 * one of the baselines of sends_per_s. Runs until SIGTERM and prints
 * {"handled":n,"other":m}.
 *
 * Exit status: 0, 1 on a failure (the reason on stderr), 2 on bad usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bench_events.h"
#include "rt_bus.h"
#include "rt_db.h"
#include "rt_http_server.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "schedule.h"
#include "retain/v1/message.pb-c.h"

#define DEADLINE_S 600  /* publish gives up after this */
#define BATCH_MAX  4096 /* requests one publish transaction takes at most */

/* The formats shared with run's SQL: customer n's id and Telegram chat. */
#define S_CUSTOMER "00000000-0000-4000-8000-%012lx"
#define S_CHAT     (1000000L) /* customer n's chat id is S_CHAT + n */

/* Message i of run r in phase p (1 throughput, 2 latency): its id. */
static void
s_message_id (char *out, size_t len, long run, int phase, long i)
{
    snprintf (out, len, "%08lx-%04x-4000-8000-%012lx", run, phase, i);
}

/* Its text, which the fake records: "r<run>-<t|l>-<i>". */
static void
s_text (char *out, size_t len, long run, char phase, long i)
{
    snprintf (out, len, "r%ld-%c-%ld", run, phase, i);
}

/* The request for message i of run/phase, to customer first + i (owned). */
static Retain__V1__Envelope *
s_request (long run, int phase, long first, long i)
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    char id[40], customer[40], text[64], conversation[48];
    s_message_id (id, sizeof id, run, phase, i);
    snprintf (customer, sizeof customer, S_CUSTOMER, first + i);
    s_text (text, sizeof text, run, phase == 1 ? 't' : 'l', i);
    snprintf (conversation, sizeof conversation, "bench-%ld-%d", run, phase);
    m.message_id = id;
    m.customer_id = customer;
    m.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    m.conversation_id = conversation;
    m.text = text;
    m.operator_id = "op-bench";
    return rt_envelope_new ("OutboundMessageRequested", customer, &m.base, "retain-routerd");
}

/* --- fake --- */

/* The fake's state, shared by its worker threads. */
typedef struct {
    pthread_mutex_t lock;       /* guards everything below */
    FILE *record;               /* the CSV of requests */
    long requests;              /* recorded so far */
    long next_id;               /* the next message_id answered */
    int64_t wall_minus_mono_us; /* unix us - monotonic us, taken at start */
} s_fake_t;

/* Whether a text is one the CSV can hold as it is. */
static bool
s_plain (const char *s)
{
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == ':'))
            return false;
    }
    return true;
}

/* Telegram's answer to a sendMessage without text. */
static const char s_empty[] =
    "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message text is empty\"}";

static void
s_on_send (rt_http_request_t *req, void *arg)
{
    s_fake_t *f = arg;
    int64_t at = rt_http_arrival_us (req) + f->wall_minus_mono_us;
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    json_t *doc = json_loadb (body, len, 0, NULL);
    json_t *chat = json_object_get (doc, "chat_id");
    const char *text = json_string_value (json_object_get (doc, "text"));
    char answer[256];
    long id;
    json_int_t chat_id = json_is_integer (chat) ? json_integer_value (chat) : 0;
    if (!text) {
        json_decref (doc);
        rt_http_reply (req, 400, "application/json", s_empty, strlen (s_empty));
        return;
    }
    pthread_mutex_lock (&f->lock);
    id = ++f->next_id;
    f->requests++;
    fprintf (f->record, "%" PRId64 ",%" JSON_INTEGER_FORMAT ",%s\n", at, chat_id,
             s_plain (text) ? text : "?");
    pthread_mutex_unlock (&f->lock);
    snprintf (answer, sizeof answer,
              "{\"ok\":true,\"result\":{\"message_id\":%ld,\"chat\":{\"id\":%" JSON_INTEGER_FORMAT
              ",\"type\":\"private\"},\"date\":%" PRId64 "}}",
              id, chat_id, at / 1000000);
    json_decref (doc);
    rt_http_reply (req, 200, "application/json", answer, strlen (answer));
}

static void
s_on_stats (rt_http_request_t *req, void *arg)
{
    s_fake_t *f = arg;
    char answer[64];
    pthread_mutex_lock (&f->lock);
    fflush (f->record);
    snprintf (answer, sizeof answer, "{\"requests\":%ld}", f->requests);
    pthread_mutex_unlock (&f->lock);
    rt_http_reply (req, 200, "application/json", answer, strlen (answer));
}

static int
s_fake (const char *listen, const char *record, int threads)
{
    rt_http_server_config_t config = {.address = listen,
                                      .name = "fake-telegram",
                                      .threads = threads,
                                      .max_connections_per_address = 10000,
                                      .idle_timeout_ms = 600000};
    rt_http_server_t *server = NULL;
    s_fake_t f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[256];
    int rc = 1;
    rt_signal_install ();
    f.wall_minus_mono_us = bench_events_wall_us () - loadgen_mono_ns () / 1000;
    f.record = fopen (record, "w");
    if (!f.record) {
        fprintf (stderr, "bench_notify fake: cannot write %s\n", record);
        return 1;
    }
    server = rt_http_server_new (&config, err, sizeof err);
    if (!server || !rt_http_route (server, "POST", "/{bot}/sendMessage", s_on_send, &f) ||
        !rt_http_route (server, "GET", "/stats", s_on_stats, &f) ||
        rt_http_server_start (server, err, sizeof err) != 0) {
        fprintf (stderr, "bench_notify fake: %s\n", server ? err : "no server");
        goto cleanup;
    }
    while (!rt_signal_stopping ())
        rt_signal_sleep_ms (200);
    rc = 0;
cleanup:
    rt_http_server_destroy (&server);
    if (fclose (f.record) != 0)
        rc = 1;
    return rc;
}

/* --- preload --- */

/* The preload's run and first customer. */
typedef struct {
    long run;   /* the run, in the ids and texts */
    long first; /* message i goes to customer first + i */
} s_preload_t;

static Retain__V1__Envelope *
s_make (long i, void *arg)
{
    const s_preload_t *p = arg;
    return s_request (p->run, 1, p->first, i);
}

/* --- publish --- */

#define S_REQUESTS "bench_notify_requests"
static const char *s_requests_sql =
    "INSERT INTO bench.requests (run, seq, due_us)"
    " SELECT $1::integer, s, d FROM unnest($2::bigint[], $3::bigint[]) AS x(s, d)";

/* Appends "v," to an array literal being built in buf. */
static void
s_append (char *buf, size_t len, size_t *used, int64_t v)
{
    int n = snprintf (buf + *used, len - *used, "%s%" PRId64, *used > 1 ? "," : "", v);
    if (n > 0 && (size_t)n < len - *used)
        *used += (size_t)n;
}

/* Writes requests [from, to) with their due times in one transaction. */
static int
s_publish_batch (rt_db_t *db, long run, long first, long from, long to, int64_t t0_ns, double rate,
                 int64_t wall_minus_mono_ns)
{
    static ProtobufCBinaryData packed[BATCH_MAX];
    static char seqs[BATCH_MAX * 22 + 4], dues[BATCH_MAX * 22 + 4];
    size_t n = (size_t)(to - from), su = 1, du = 1;
    char runs[24];
    int rc = -1;
    seqs[0] = dues[0] = '{';
    for (size_t k = 0; k < n; k++) {
        Retain__V1__Envelope *env = s_request (run, 2, first, from + (long)k);
        packed[k].data = env ? rt_envelope_pack (env, &packed[k].len) : NULL;
        rt_envelope_free (env);
        if (!packed[k].data) {
            for (size_t j = 0; j < k; j++)
                free (packed[j].data);
            fprintf (stderr, "bench_notify publish: out of memory\n");
            return -1;
        }
        s_append (seqs, sizeof seqs, &su, from + (long)k);
        s_append (dues, sizeof dues, &du,
                  (loadgen_due_ns (t0_ns, rate, from + (long)k) + wall_minus_mono_ns) / 1000);
    }
    snprintf (seqs + su, sizeof seqs - su, "}");
    snprintf (dues + du, sizeof dues - du, "}");
    snprintf (runs, sizeof runs, "%ld", run);
    if (rt_db_begin (db) == 0 && rt_outbox_append_batch (db, packed, n) == 0) {
        const char *v[3] = {runs, seqs, dues};
        PGresult *r = rt_db_exec_prepared (db, S_REQUESTS, 3, v, NULL, NULL, 0);
        if (r && rt_db_commit (db) == 0)
            rc = 0;
        PQclear (r);
    }
    if (rc != 0) {
        fprintf (stderr, "bench_notify publish: %s\n", rt_db_error (db));
        rt_db_rollback (db);
    }
    for (size_t k = 0; k < n; k++)
        free (packed[k].data);
    return rc;
}

static int
s_publish (const char *dsn, long events, long first, long run, double rate)
{
    rt_db_t *db = rt_db_new (dsn, "bench-notify-publish");
    int64_t t0, end, wall_minus_mono_ns;
    long sent = 0, transactions = 0, max_batch = 0;
    double s, achieved;
    int rc = 1;
    if (!db || rt_db_prepare (db, S_REQUESTS, s_requests_sql) != 0 ||
        rt_db_ensure_for (db, 10000) != 0 || rt_outbox_prepare (db) != 0) {
        fprintf (stderr, "bench_notify publish: %s\n", db ? rt_db_error (db) : "out of memory");
        goto cleanup;
    }
    {
        struct timespec w, m;
        clock_gettime (CLOCK_REALTIME, &w);
        clock_gettime (CLOCK_MONOTONIC, &m);
        wall_minus_mono_ns = ((int64_t)w.tv_sec - m.tv_sec) * 1000000000 + (w.tv_nsec - m.tv_nsec);
    }
    t0 = loadgen_mono_ns () + 10000000;
    while (sent < events) {
        int64_t now = loadgen_mono_ns (), next = loadgen_due_ns (t0, rate, sent);
        long due = sent;
        if (now - t0 > (int64_t)DEADLINE_S * 1000000000) {
            fprintf (stderr, "bench_notify publish: %ld of %ld by the deadline\n", sent, events);
            goto cleanup;
        }
        if (next > now) {
            struct timespec ts = {(time_t)((next - now) / 1000000000),
                                  (long)((next - now) % 1000000000)};
            nanosleep (&ts, NULL);
            continue;
        }
        while (due < events && due - sent < BATCH_MAX && loadgen_due_ns (t0, rate, due) <= now)
            due++;
        if (s_publish_batch (db, run, first, sent, due, t0, rate, wall_minus_mono_ns) != 0)
            goto cleanup;
        transactions++;
        if (due - sent > max_batch)
            max_batch = due - sent;
        sent = due;
    }
    end = loadgen_mono_ns ();
    /* From the first due time to the last commit. */
    s = (double)(end - t0) / 1e9;
    achieved = s > 0 ? (double)(events > 1 ? events - 1 : 1) / s : 0;
    printf ("{\"events\":%ld,\"seconds\":%.3f,\"achieved_rate\":%.1f,\"rate_ok\":%s,"
            "\"transactions\":%ld,\"max_batch\":%ld}\n",
            events, s, achieved, loadgen_rate_ok (achieved, rate) ? "true" : "false", transactions,
            max_batch);
    rc = 0;
cleanup:
    rt_db_destroy (&db);
    return rc;
}

static int
s_usage (void)
{
    fprintf (stderr,
             "usage: bench_notify fake --listen HOST:PORT --record FILE [--threads T]\n"
             "       bench_notify preload --ingress EP --events N --first C --run R\n"
             "       bench_notify publish --pg-dsn DSN --events N --first C --run R --rate X\n"
             "       bench_notify null --pg-dsn DSN --pub EP --group G [--batch-max B]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    static const struct option opts[] = {BENCH_EVENTS_OPTIONS,
                                         {"listen", required_argument, NULL, 'l'},
                                         {"record", required_argument, NULL, 'o'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"first", required_argument, NULL, 'f'},
                                         {"rate", required_argument, NULL, 'x'},
                                         {NULL, 0, NULL, 0}};
    bench_events_args_t a = BENCH_EVENTS_ARGS_INIT;
    const char *listen = NULL, *record = NULL, *cmd;
    long first = 0;
    double rate = 0;
    int threads = 1, o;
    if (argc < 2)
        return s_usage ();
    cmd = argv[1];
    optind = 2;
    while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        if (o == 'l')
            listen = optarg;
        else if (o == 'o')
            record = optarg;
        else if (o == 't')
            threads = atoi (optarg);
        else if (o == 'f')
            first = atol (optarg);
        else if (o == 'x')
            rate = atof (optarg);
        else if (!bench_events_option (o, optarg, &a))
            return s_usage ();
    }
    rt_log_init ("bench_notify", RT_LOG_WARN);
    if (strcmp (cmd, "fake") == 0 && listen && record && threads > 0)
        return s_fake (listen, record, threads);
    if (strcmp (cmd, "preload") == 0 && a.ingress && a.events > 0 && first >= 0) {
        s_preload_t p = {.run = a.run, .first = first};
        return bench_events_preload ("bench_notify", a.ingress, a.events, s_make, &p);
    }
    if (strcmp (cmd, "publish") == 0 && a.dsn && a.events > 0 && first >= 0 && rate > 0)
        return s_publish (a.dsn, a.events, first, a.run, rate);
    if (strcmp (cmd, "null") == 0 && a.dsn && a.pub && a.group && a.batch_max > 0)
        return bench_events_null ("bench_notify", a.dsn, a.pub, a.group, a.batch_max,
                                  "OutboundMessageRequested",
                                  &retain__v1__outbound_message_requested__descriptor);
    return s_usage ();
}
