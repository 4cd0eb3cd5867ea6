/*
 * rt_test_notify: notifyd's test world, its replicas, what is published
 * to it and what it said (see rt_test_notify.h).
 */
#include "rt_test_notify.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "retain/v1/message.pb-c.h"
#include "retain/v1/notification.pb-c.h"
#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_outbox.h"
#include "rt_test_fake_provider.h"

/* --- retain-notifyd --- */

void
rt_test_notifyd_restart (rt_test_notifyd_t *n)
{
    rt_test_clientd_restart (n);
}

void
rt_test_notifyd_start (rt_test_notifyd_t *n, const char *dsn, const char *pub, const char *clock,
                       const char *member, const char *log, const char *const extra[])
{
    rt_test_clientd_start (n, "retain-notifyd", dsn, pub, clock, member, log, extra);
}

void
rt_test_notifyd_stop (rt_test_notifyd_t *n)
{
    rt_test_clientd_stop (n);
}

/* --- the world --- */

void
rt_test_notify_open (rt_test_notify_t *w, const char *name, int64_t clock_at)
{
    rt_test_router_opts_t opts = {.routing = false, .clock = clock_at != 0};
    char log[128], clock_arg[1100];
    const char *const busd_clock[] = {clock_arg, NULL};
    memset (w, 0, sizeof *w);
    rt_test_router_open (&w->t, name, &opts);
    if (clock_at)
        rt_test_notify_clock_set (w, clock_at);
    snprintf (log, sizeof log, "%s-busd.log", name);
    snprintf (clock_arg, sizeof clock_arg, "--clock-file=%s", w->t.clock);
    rt_test_busd_start (&w->busd, w->t.dsn, log, clock_at ? busd_clock : NULL, true);
    w->db = rt_test_router_connect (&w->t, "test-publisher");
}

void
rt_test_notify_close (rt_test_notify_t *w)
{
    if (w->busd.pid > 0) {
        rt_test_stop (w->busd.pid, "retain-busd");
        w->busd.pid = 0;
    }
    rt_db_destroy (&w->db);
    rt_test_router_close (&w->t);
}

void
rt_test_notify_teardown (rt_test_notifyd_t *n, rt_test_notify_t *w,
                         struct rt_fake_provider_t **fake)
{
    rt_test_notifyd_stop (n);
    rt_test_notify_close (w);
    rt_fake_provider_stop (fake);
}

void
rt_test_notify_clock_set (const rt_test_notify_t *w, int64_t at_ms)
{
    int64_t wall = 0, mono = 0;
    rt_clock_offsets (&wall, &mono);
    assert_int_equal (rt_clock_file_set (w->t.clock, at_ms - (rt_clock_now_ms () - wall), mono), 0);
}

/* --- customers --- */

void
rt_test_notify_customer (PGconn *pg, const char *inbox, const char *zone, const char *preferred,
                         const char *identities, char id[RT_UUID_STR_LEN + 1])
{
    char buf[256], *save = NULL;
    int k = 0;
    rt_test_router_uuid (id);
    rt_test_router_sql (pg,
                        "INSERT INTO crm.customers (id, name, locale, time_zone, preferred_channel)"
                        " VALUES ('%s', 'Olena', 'en', '%s', '%s')",
                        id, zone, preferred);
    assert_true (strlen (identities) < sizeof buf);
    snprintf (buf, sizeof buf, "%s", identities);
    for (char *p = strtok_r (buf, ",", &save); p; p = strtok_r (NULL, ",", &save), k++) {
        char *eq = strchr (p, '=');
        assert_non_null (eq);
        *eq = '\0';
        rt_test_router_sql (pg,
                            "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                            " customer_id, first_seen, last_seen) VALUES ('%s', '%s', '%s', '%s',"
                            " now() - interval '10 days', now() - interval '10 days' + %d *"
                            " interval '1 hour')",
                            p, inbox, eq + 1, id, k);
    }
}

/* --- publishing --- */

void
rt_test_notify_pack (const char *type, const char *key, const ProtobufCMessage *payload,
                     const char *producer, const char *id, ProtobufCBinaryData *packed)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, producer);
    assert_non_null (env);
    if (id) {
        free (env->id);
        env->id = strdup (id);
        assert_non_null (env->id);
    }
    packed->data = rt_envelope_pack (env, &packed->len);
    assert_non_null (packed->data);
    rt_envelope_free (env);
}

void
rt_test_notify_publish (rt_db_t *db, ProtobufCBinaryData *packed, size_t n)
{
    if (rt_db_begin (db) != 0 || rt_outbox_append_batch (db, packed, n) != 0 ||
        rt_db_commit (db) != 0) {
        char why[512];
        snprintf (why, sizeof why, "%s", rt_db_error (db));
        rt_db_rollback (db);
        fail_msg ("publishing: %s", why);
    }
    for (size_t i = 0; i < n; i++)
        free (packed[i].data);
}

void
rt_test_notify_publish_one (rt_db_t *db, const char *type, const char *key,
                            const ProtobufCMessage *payload, const char *producer, const char *id)
{
    ProtobufCBinaryData packed;
    rt_test_notify_pack (type, key, payload, producer, id, &packed);
    rt_test_notify_publish (db, &packed, 1);
}

void
rt_test_notify_request (rt_db_t *db, const rt_test_notify_request_t *q,
                        char id[RT_UUID_STR_LEN + 1])
{
    Retain__V1__NotificationRequested m = RETAIN__V1__NOTIFICATION_REQUESTED__INIT;
    Retain__V1__NotificationRequested__VariablesEntry entries[8], *ptrs[8];
    size_t n = 0;
    if (!id[0])
        rt_test_router_uuid (id);
    for (const char *const *v = q->vars; v && *v; v += 2, n++) {
        Retain__V1__NotificationRequested__VariablesEntry e =
            RETAIN__V1__NOTIFICATION_REQUESTED__VARIABLES_ENTRY__INIT;
        assert_true (n < 8);
        e.key = (char *)v[0];
        e.value = (char *)v[1];
        entries[n] = e;
        ptrs[n] = &entries[n];
    }
    m.notification_id = id;
    m.customer_id = (char *)q->customer;
    m.template_ = (char *)q->template_name;
    m.n_variables = n;
    m.variables = ptrs;
    m.preferred_channel = q->channel;
    m.category = (char *)(q->category ? q->category : "transactional");
    m.not_before = q->not_before;
    m.expires_at = q->expires_at;
    m.correlation = "";
    rt_test_notify_publish_one (db, "NotificationRequested", q->customer, &m.base,
                                "retain-loyaltyd", q->envelope_id);
}

/* --- what notifyd did --- */

void
rt_test_notify_said (PGconn *pg, const char *message_id, rt_test_notify_said_t *out)
{
    PGresult *r = PQexecParams (pg,
                                "SELECT type, payload FROM bus.events WHERE producer = "
                                "'retain-notifyd' AND type IN ('MessageDelivered', "
                                "'MessageFailed') ORDER BY seq",
                                0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    memset (out, 0, sizeof *out);
    for (int i = 0; i < PQntuples (r); i++) {
        const uint8_t *data = (const uint8_t *)PQgetvalue (r, i, 1);
        size_t len = (size_t)PQgetlength (r, i, 1);
        if (strcmp (PQgetvalue (r, i, 0), "MessageDelivered") == 0) {
            Retain__V1__MessageDelivered *d =
                retain__v1__message_delivered__unpack (NULL, len, data);
            assert_non_null (d);
            if (strcmp (d->message_id, message_id) == 0) {
                out->delivered++;
                out->read += d->read ? 1 : 0;
                snprintf (out->external, sizeof out->external, "%s", d->external_id);
            }
            retain__v1__message_delivered__free_unpacked (d, NULL);
        } else {
            Retain__V1__MessageFailed *f = retain__v1__message_failed__unpack (NULL, len, data);
            assert_non_null (f);
            if (strcmp (f->message_id, message_id) == 0) {
                out->failed++;
                out->permanent = f->permanent;
                snprintf (out->code, sizeof out->code, "%s", f->error_code);
                snprintf (out->error, sizeof out->error, "%s", f->error);
            }
            retain__v1__message_failed__free_unpacked (f, NULL);
        }
    }
    PQclear (r);
}

void
rt_test_notify_said_wait (PGconn *pg, const char *message_id, rt_test_notify_said_t *out,
                          int timeout_ms)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    do {
        rt_test_notify_said (pg, message_id, out);
        if (out->delivered || out->failed)
            return;
        usleep (50 * 1000);
    } while (rt_test_now_ms () < until);
}

long long
rt_test_notify_status_wait (PGconn *pg, const char *send_id, const char *status, int timeout_ms)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status = '%s'", send_id,
              status);
    return rt_test_pg_wait_long (pg, sql, 1, timeout_ms);
}
