/*
 * bench_tracker: the fake Nova Poshta tests/bench/tracker/run polls
 * (the script says what is measured and how it is checked).
 *
 *   bench_tracker fake --listen HOST:PORT --code C [--threads T]
 *   bench_tracker outbox --pg-dsn DSN --parcels N
 *
 * POST /v2.0/json/ is TrackingDocument.getStatusDocuments on retain's own
 * HTTP server (rt_http_server, keep-alive, T worker threads, default 1):
 * every document of the request is answered in Nova Poshta's envelope
 * ({success, data[], errors[], ...}, every value a string) with StatusCode
 * C and the fields a parcel in that state carries (Status, the cities, the
 * dates), as trackerd's adapter reads them. It keeps, per tracking number,
 * how often it was asked (a number asked twice is a failed check), and
 * GET /stats answers {"calls", "documents", "distinct", "repeated",
 * "max_batch"}. Lighter than tests/support's fake of the five carriers
 * (which needs cmocka and records every call for the tests to read); its
 * own ceiling is measured by the script (loadgen, closed loop, the same
 * request). Runs until SIGTERM.
 *
 * outbox reads every envelope in outbox.pending (what trackerd wrote for
 * busd) and checks the refresh's: exactly one ShipmentStatusChanged
 * InTransit>Delivered and one NotificationRequested (template
 * shipment_delivered) per parcel S-0 .. S-(N-1), nothing else. Prints
 * {"changed":c,"requested":r,"other":o,"ok":b} and exits 1 unless ok.
 *
 * Exit status: 0, 1 on a failure (the reason on stderr), 2 on bad usage.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <libpq-fe.h>

#include "rt_buf.h"
#include "rt_bus.h"
#include "rt_http_server.h"
#include "rt_jsonw.h"
#include "rt_log.h"
#include "rt_signal.h"
#include "retain/v1/notification.pb-c.h"
#include "retain/v1/shipment.pb-c.h"

/* Tracking numbers are 14 digits: a table indexed by their last 7 counts
 * each one asked (the script's numbers differ in those). */
#define S_SLOTS 10000000

typedef struct {
    pthread_mutex_t lock;
    const char *code; /* the StatusCode every document gets */
    uint8_t *asked;   /* per number's last 7 digits: times asked (saturating) */
    long calls;       /* requests */
    long documents;   /* documents asked for */
    long distinct;    /* numbers asked at least once */
    long repeated;    /* numbers asked more than once */
    long max_batch;   /* most documents in one request */
    long bad;         /* requests that were not getStatusDocuments */
} s_fake_t;

static const char *
s_words (const char *code)
{
    return strcmp (code, "9") == 0 ? "Відправлення отримано"
                                   : "Відправлення прямує до міста Львів.";
}

static void
s_on_track (rt_http_request_t *req, void *arg)
{
    s_fake_t *f = arg;
    size_t len;
    const char *body = rt_http_body (req, &len);
    json_error_t je;
    json_t *j = json_loadb (body, len, 0, &je), *docs;
    rt_buf_t out = {0};
    rt_jsonw_t w;
    size_t n;

    docs = json_object_get (json_object_get (j, "methodProperties"), "Documents");
    if (!json_is_array (docs) || !json_is_string (json_object_get (j, "apiKey"))) {
        pthread_mutex_lock (&f->lock);
        f->bad++;
        pthread_mutex_unlock (&f->lock);
        json_decref (j);
        rt_http_reply (req, 400, "text/plain", "bad request\n", 12);
        return;
    }
    n = json_array_size (docs);
    rt_jsonw_init (&w, &out);
    rt_jsonw_object (&w);
    rt_jsonw_kbool (&w, "success", true);
    rt_jsonw_key (&w, "data");
    rt_jsonw_array (&w);
    pthread_mutex_lock (&f->lock);
    f->calls++;
    f->documents += (long)n;
    if ((long)n > f->max_batch)
        f->max_batch = (long)n;
    for (size_t i = 0; i < n; i++) {
        const char *number =
            json_string_value (json_object_get (json_array_get (docs, i), "DocumentNumber"));
        size_t nl = number ? strlen (number) : 0;
        long slot = nl >= 7 ? strtol (number + nl - 7, NULL, 10) : 0;
        if (slot >= 0 && slot < S_SLOTS) {
            if (f->asked[slot] == 0)
                f->distinct++;
            else if (f->asked[slot] == 1)
                f->repeated++;
            if (f->asked[slot] < 255)
                f->asked[slot]++;
        }
        rt_jsonw_object (&w);
        rt_jsonw_kstring (&w, "Number", number ? number : "");
        rt_jsonw_kstring (&w, "StatusCode", f->code);
        rt_jsonw_kstring (&w, "Status", s_words (f->code));
        rt_jsonw_kstring (&w, "CitySender", "Київ");
        rt_jsonw_kstring (&w, "CityRecipient", "Львів");
        rt_jsonw_kstring (&w, "WarehouseRecipient", "Відділення №1: вул. Городоцька, 1");
        rt_jsonw_kstring (&w, "DateCreated", "2026-11-28 10:15:00");
        rt_jsonw_kstring (&w, "ScheduledDeliveryDate", "2026-12-01 12:00:00");
        rt_jsonw_kstring (&w, "TrackingUpdateDate", "2026-11-30 17:42:11");
        rt_jsonw_kstring (&w, "RecipientDateTime",
                          strcmp (f->code, "9") == 0 ? "2026-11-30 17:42:11" : "");
        rt_jsonw_kstring (&w, "ActualDeliveryDate",
                          strcmp (f->code, "9") == 0 ? "2026-11-30 17:42:11" : "");
        rt_jsonw_kstring (&w, "DocumentWeight", "1.5");
        rt_jsonw_kstring (&w, "DocumentCost", "70");
        rt_jsonw_object_end (&w);
    }
    pthread_mutex_unlock (&f->lock);
    rt_jsonw_array_end (&w);
    rt_jsonw_key (&w, "errors");
    rt_jsonw_array (&w);
    rt_jsonw_array_end (&w);
    rt_jsonw_key (&w, "warnings");
    rt_jsonw_array (&w);
    rt_jsonw_array_end (&w);
    rt_jsonw_key (&w, "info");
    rt_jsonw_array (&w);
    rt_jsonw_array_end (&w);
    rt_jsonw_key (&w, "errorCodes");
    rt_jsonw_array (&w);
    rt_jsonw_array_end (&w);
    rt_jsonw_object_end (&w);
    json_decref (j);
    rt_http_reply (req, 200, "application/json", out.data, out.len);
    rt_buf_free (&out);
}

static void
s_on_stats (rt_http_request_t *req, void *arg)
{
    s_fake_t *f = arg;
    char answer[256];
    pthread_mutex_lock (&f->lock);
    snprintf (answer, sizeof answer,
              "{\"calls\":%ld,\"documents\":%ld,\"distinct\":%ld,\"repeated\":%ld,"
              "\"max_batch\":%ld,\"bad\":%ld}",
              f->calls, f->documents, f->distinct, f->repeated, f->max_batch, f->bad);
    pthread_mutex_unlock (&f->lock);
    rt_http_reply (req, 200, "application/json", answer, strlen (answer));
}

/* POST /reset: forgets what was asked (between runs). */
static void
s_on_reset (rt_http_request_t *req, void *arg)
{
    s_fake_t *f = arg;
    pthread_mutex_lock (&f->lock);
    memset (f->asked, 0, S_SLOTS);
    f->calls = f->documents = f->distinct = f->repeated = f->max_batch = f->bad = 0;
    pthread_mutex_unlock (&f->lock);
    rt_http_reply (req, 200, "application/json", "{}", 2);
}

static int
s_fake (const char *listen, const char *code, int threads)
{
    rt_http_server_config_t config = {.address = listen,
                                      .name = "fake-nova-poshta",
                                      .threads = threads,
                                      .max_body = 1 << 20,
                                      .idle_timeout_ms = 600000};
    rt_http_server_t *server = NULL;
    s_fake_t f = {.lock = PTHREAD_MUTEX_INITIALIZER, .code = code};
    char err[256];
    int rc = 1;
    rt_signal_install ();
    f.asked = calloc (S_SLOTS, 1);
    if (!f.asked)
        return 1;
    server = rt_http_server_new (&config, err, sizeof err);
    if (!server || !rt_http_route (server, "POST", "/v2.0/json/", s_on_track, &f) ||
        !rt_http_route (server, "GET", "/stats", s_on_stats, &f) ||
        !rt_http_route (server, "POST", "/reset", s_on_reset, &f) ||
        rt_http_server_start (server, err, sizeof err) != 0) {
        fprintf (stderr, "bench_tracker fake: %s\n", server ? err : "no server");
        goto cleanup;
    }
    while (!rt_signal_stopping ())
        rt_signal_sleep_ms (200);
    rc = 0;
cleanup:
    rt_http_server_destroy (&server);
    free (f.asked);
    return rc;
}

/* --- outbox --- */

/* The parcel number n of a shipment id "S-n", -1 when it is none. */
static long
s_parcel (const char *id, long parcels)
{
    char *end;
    long n;
    if (strncmp (id, "S-", 2) != 0)
        return -1;
    n = strtol (id + 2, &end, 10);
    return *end || n < 0 || n >= parcels ? -1 : n;
}

static int
s_outbox (const char *dsn, long parcels)
{
    PGconn *pg = PQconnectdb (dsn);
    uint8_t *seen = calloc ((size_t)parcels, 1); /* bit 1: changed, bit 2: requested */
    long changed = 0, requested = 0, other = 0, last = 0;
    bool ok = true;
    if (PQstatus (pg) != CONNECTION_OK || !seen) {
        fprintf (stderr, "bench_tracker outbox: %s\n", PQerrorMessage (pg));
        PQfinish (pg);
        free (seen);
        return 1;
    }
    for (;;) {
        char from[24];
        const char *v[1] = {from};
        PGresult *r;
        snprintf (from, sizeof from, "%ld", last);
        r = PQexecParams (pg,
                          "SELECT id, envelope FROM outbox.pending WHERE id > $1::bigint"
                          " ORDER BY id LIMIT 10000",
                          1, NULL, v, NULL, NULL, 1);
        if (PQresultStatus (r) != PGRES_TUPLES_OK) {
            fprintf (stderr, "bench_tracker outbox: %s\n", PQerrorMessage (pg));
            PQclear (r);
            ok = false;
            break;
        }
        if (PQntuples (r) == 0) {
            PQclear (r);
            break;
        }
        for (int i = 0; i < PQntuples (r); i++) {
            uint64_t id_be;
            Retain__V1__Envelope *env;
            ProtobufCMessage *m;
            memcpy (&id_be, PQgetvalue (r, i, 0), 8);
            last = (long)__builtin_bswap64 (id_be);
            env = retain__v1__envelope__unpack (NULL, (size_t)PQgetlength (r, i, 1),
                                                (const uint8_t *)PQgetvalue (r, i, 1));
            m = env ? rt_envelope_payload (env) : NULL;
            if (m && strcmp (env->type, "ShipmentStatusChanged") == 0) {
                Retain__V1__ShipmentStatusChanged *c = (Retain__V1__ShipmentStatusChanged *)m;
                long n = s_parcel (c->shipment_id, parcels);
                if (n < 0 || (seen[n] & 1) || strcmp (c->previous_tag, "InTransit") != 0 ||
                    strcmp (c->tag, "Delivered") != 0)
                    ok = false;
                else
                    seen[n] |= 1;
                changed++;
            } else if (m && strcmp (env->type, "NotificationRequested") == 0) {
                Retain__V1__NotificationRequested *q = (Retain__V1__NotificationRequested *)m;
                long n = s_parcel (q->correlation, parcels);
                if (n < 0 || (seen[n] & 2) || strcmp (q->template_, "shipment_delivered") != 0)
                    ok = false;
                else
                    seen[n] |= 2;
                requested++;
            } else {
                other++;
                ok = false;
            }
            if (m)
                protobuf_c_message_free_unpacked (m, NULL);
            if (env)
                retain__v1__envelope__free_unpacked (env, NULL);
        }
        PQclear (r);
    }
    for (long n = 0; ok && n < parcels; n++)
        ok = seen[n] == 3;
    printf ("{\"changed\":%ld,\"requested\":%ld,\"other\":%ld,\"ok\":%s}\n", changed, requested,
            other, ok ? "true" : "false");
    PQfinish (pg);
    free (seen);
    return ok ? 0 : 1;
}

static int
s_usage (void)
{
    fprintf (stderr, "usage: bench_tracker fake --listen HOST:PORT --code C [--threads T]\n"
                     "       bench_tracker outbox --pg-dsn DSN --parcels N\n");
    return 2;
}

int
main (int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},  {"code", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'}, {"pg-dsn", required_argument, NULL, 'd'},
        {"parcels", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    const char *listen = NULL, *code = NULL, *dsn = NULL;
    long parcels = 0;
    int threads = 1, o;
    if (argc < 2)
        return s_usage ();
    optind = 2;
    while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        if (o == 'l')
            listen = optarg;
        else if (o == 'c')
            code = optarg;
        else if (o == 't')
            threads = atoi (optarg);
        else if (o == 'd')
            dsn = optarg;
        else if (o == 'n')
            parcels = atol (optarg);
        else
            return s_usage ();
    }
    rt_log_init ("bench_tracker", RT_LOG_WARN);
    if (strcmp (argv[1], "fake") == 0 && listen && code && threads > 0)
        return s_fake (listen, code, threads);
    if (strcmp (argv[1], "outbox") == 0 && dsn && parcels > 0)
        return s_outbox (dsn, parcels);
    return s_usage ();
}
