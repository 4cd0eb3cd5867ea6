/*
 * rt_test_tracker: trackerd's test world (rt_test_tracker.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "rt_clock.h"
#include "rt_test_tracker.h"
#include "retain/v1/order.pb-c.h"

void
rt_test_tracker_open (rt_test_tracker_t *t, const char *name, int64_t clock_at)
{
    memset (t, 0, sizeof *t);
    rt_test_notify_open (&t->w, name, clock_at);
    t->fake = rt_fake_carrier_start ();
    snprintf (t->link_keys, sizeof t->link_keys, "t1:%s",
              "0123456789abcdef0123456789abcdef0123456789abcdef");
}

void
rt_test_trackerd_start (rt_test_tracker_t *t, int i, const char *const extra[])
{
    char api[RT_FC_CARRIERS][600], http[64], keys[128], member[32], log[160], db[128];
    const char *argv[16 + RT_FC_CARRIERS];
    size_t k = 0;
    static const char *const flags[RT_FC_CARRIERS] = {"--nova-poshta-api", "--ukrposhta-api",
                                                      "--meest-api", "--dhl-api", "--ups-api"};
    assert_true (i >= 0 && i < RT_TEST_TRACKERD_MAX);
    for (int c = 0; c < RT_FC_CARRIERS; c++) {
        snprintf (api[c], sizeof api[c], "%s=%s", flags[c],
                  rt_fake_carrier_api (t->fake, (rt_fc_carrier_t)c));
        argv[k++] = api[c];
    }
    if (!t->http_port[i])
        t->http_port[i] = rt_test_free_port ();
    snprintf (http, sizeof http, "--http=127.0.0.1:%d", t->http_port[i]);
    snprintf (keys, sizeof keys, "--link-keys=%s", t->link_keys);
    argv[k++] = http;
    argv[k++] = keys;
    argv[k++] = "--link-base=https://shop.example/t/";
    argv[k++] = "--poll=50ms";
    argv[k++] = "--sweep=200ms";
    argv[k++] = "--backoff=200ms";
    argv[k++] = "--backoff-max=2s";
    argv[k++] = "--wait-default=500ms";
    argv[k++] = "--request-timeout=2s";
    for (size_t e = 0; extra && extra[e]; e++) {
        assert_true (k < sizeof argv / sizeof argv[0] - 1);
        argv[k++] = extra[e];
    }
    argv[k] = NULL;
    snprintf (member, sizeof member, "tracker-%d", i);
    /* The log is named after the world's database, as busd's is. */
    rt_test_db_name (t->w.t.dsn, db, sizeof db);
    snprintf (log, sizeof log, "%s-trackerd-%d.log", db, i);
    rt_test_clientd_start (&t->d[i], "retain-trackerd", t->w.t.dsn, t->w.busd.pub, t->w.t.clock,
                           member, log, argv);
}

void
rt_test_trackerd_kill (rt_test_tracker_t *t, int i)
{
    if (t->d[i].pid <= 0)
        return;
    rt_test_kill (t->d[i].pid, SIGKILL);
    rt_test_wait (t->d[i].pid, 10000);
    t->d[i].pid = 0;
}

void
rt_test_tracker_close (rt_test_tracker_t *t)
{
    for (int i = 0; i < RT_TEST_TRACKERD_MAX; i++)
        rt_test_clientd_stop (&t->d[i]);
    rt_test_notify_close (&t->w);
    rt_fake_carrier_stop (&t->fake);
}

void
rt_test_tracker_reconnect (rt_test_tracker_t *t)
{
    PQreset (t->w.t.pg);
    if (PQstatus (t->w.t.pg) != CONNECTION_OK)
        fail_msg ("rt_test_tracker_reconnect: %s", PQerrorMessage (t->w.t.pg));
    rt_db_invalidate (t->w.db);
    if (rt_db_ensure_for (t->w.db, 10000) != 0)
        fail_msg ("rt_test_tracker_reconnect: the publisher did not reconnect");
}

void
rt_test_tracker_clock_set (rt_test_tracker_t *t, int64_t at_ms)
{
    rt_test_notify_clock_set (&t->w, at_ms);
}

void
rt_test_tracker_account (rt_test_tracker_t *t, const char *id, const char *carrier, const char *key,
                         const char *secret, int min_interval_ms, int daily_quota)
{
    char interval[16], quota[16];
    const char *v[7];
    bool ups = strcmp (carrier, "ups") == 0;
    PGresult *r;
    snprintf (interval, sizeof interval, "%d", min_interval_ms);
    snprintf (quota, sizeof quota, "%d", daily_quota);
    v[0] = id;
    v[1] = carrier;
    v[2] = ups ? "" : key;
    v[3] = ups ? key : "";
    v[4] = secret ? secret : "";
    v[5] = interval;
    v[6] = quota;
    r = PQexecParams (t->w.t.pg,
                      "INSERT INTO tracking.accounts (id, carrier, is_default, api_key, client_id,"
                      " client_secret, min_interval_ms, daily_quota)"
                      " VALUES ($1, $2, true, $3, $4, $5, $6::integer, NULLIF($7::integer, 0))",
                      7, NULL, v, NULL, NULL, 0);
    if (PQresultStatus (r) != PGRES_COMMAND_OK)
        fail_msg ("rt_test_tracker_account: %s", PQerrorMessage (t->w.t.pg));
    PQclear (r);
}

void
rt_test_tracker_ship (rt_test_tracker_t *t, const rt_test_shipped_t *s)
{
    Retain__V1__OrderShipped m = RETAIN__V1__ORDER_SHIPPED__INIT;
#define S_STR(x) ((char *)((x) ? (x) : ""))
    m.shipment_id = S_STR (s->shipment_id);
    m.order_id = S_STR (s->order_id);
    m.customer_id = S_STR (s->customer_id);
    m.carrier = S_STR (s->carrier);
    m.tracking_number = S_STR (s->tracking_number);
    m.recipient_phone = S_STR (s->phone);
    m.service = S_STR (s->service);
    m.origin_city = S_STR (s->origin_city);
    m.destination_city = S_STR (s->destination_city);
#undef S_STR
    m.shipped_at = s->shipped_at;
    m.promised_by = s->promised_by;
    rt_test_notify_publish_one (t->w.db, "OrderShipped", s->order_id ? s->order_id : "", &m.base,
                                "shop", s->envelope_id);
}

long long
rt_test_tracker_published (rt_test_tracker_t *t, const char *type, const char *key)
{
    const char *v[2] = {type, key ? key : ""};
    PGresult *r = PQexecParams (t->w.t.pg,
                                "SELECT count(*) FROM bus.events WHERE producer = 'retain-trackerd'"
                                " AND type = $1 AND ($2 = '' OR key = $2)",
                                2, NULL, v, NULL, NULL, 0);
    long long n;
    if (PQresultStatus (r) != PGRES_TUPLES_OK)
        fail_msg ("rt_test_tracker_published: %s", PQerrorMessage (t->w.t.pg));
    n = strtoll (PQgetvalue (r, 0, 0), NULL, 10);
    PQclear (r);
    return n;
}

long long
rt_test_tracker_wait_published (rt_test_tracker_t *t, const char *type, const char *key,
                                long long want, int timeout_ms)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    long long n;
    for (;;) {
        n = rt_test_tracker_published (t, type, key);
        if (n >= want || rt_test_now_ms () >= until)
            return n;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep (&ts, NULL);
    }
}

void
rt_test_tracker_col (rt_test_tracker_t *t, const char *shipment_id, const char *col, char *out,
                     size_t outlen)
{
    char sql[256];
    const char *v[1] = {shipment_id};
    PGresult *r;
    snprintf (sql, sizeof sql, "SELECT (%s)::text FROM tracking.shipments WHERE id = $1", col);
    r = PQexecParams (t->w.t.pg, sql, 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus (r) != PGRES_TUPLES_OK)
        fail_msg ("rt_test_tracker_col %s: %s", col, PQerrorMessage (t->w.t.pg));
    snprintf (out, outlen, "%s", PQntuples (r) ? PQgetvalue (r, 0, 0) : "");
    PQclear (r);
}

bool
rt_test_tracker_wait_tag (rt_test_tracker_t *t, const char *shipment_id, const char *tag,
                          int timeout_ms)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    char got[64];
    for (;;) {
        rt_test_tracker_col (t, shipment_id, "tag", got, sizeof got);
        if (strcmp (got, tag) == 0)
            return true;
        if (rt_test_now_ms () >= until)
            return false;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep (&ts, NULL);
    }
}

bool
rt_test_tracker_settled (rt_test_tracker_t *t, int timeout_ms)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    for (;;) {
        if (rt_test_pg_long (t->w.t.pg, "SELECT count(*) FROM tracking.shipments"
                                        " WHERE poll_token IS NOT NULL") == 0)
            return true;
        if (rt_test_now_ms () >= until)
            return false;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep (&ts, NULL);
    }
}

void
rt_test_tracker_due (rt_test_tracker_t *t)
{
    rt_test_tracker_settled (t, 10000);
    rt_test_pg_exec (t->w.t.pg, "UPDATE tracking.shipments SET next_poll_at = 0 WHERE NOT final"
                                " AND poll_token IS NULL");
}
