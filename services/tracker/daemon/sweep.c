/*
 * sweep: what time alone decides about a parcel, on a thread and a
 * connection of its own.
 *
 * Every tick, at rt_clock's time (a test that sets the clock moves every
 * deadline at once), in batches, each batch one transaction with its
 * events in the outbox:
 *
 *   past_promise   the promised date passed and the parcel is not
 *                  delivered: ShipmentDelayed (loyaltyd decides the
 *                  apology), once.
 *   stalled        no news for the carrier's stuck_after (tracking.carriers:
 *                  Nova Poshta 3 days, Ukrposhta 7, ...) and not waiting
 *                  at a pickup point: ShipmentDelayed, once.
 *   storage        waiting at a pickup point whose free storage ends within
 *                  storage_lead_ms: the StorageReminder milestone's
 *                  NotificationRequested, once.
 *   expired        no news for the carrier's expire_after (30 days): the
 *                  tag Expired, final (polling stops), ShipmentStatusChanged.
 *
 * "Once" is the parcel's delays and milestones arrays, changed in the same
 * statement that finds the parcel, so a repeated tick, a second replica or
 * a crash after the commit says nothing twice. A parcel being polled is
 * left alone until its answer is recorded (the outcome writes those arrays
 * from its claim's copy); one whose lease ran out is taken, and the stale
 * claim is fenced off by clearing its token.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "rt_bus.h"
#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "rt_signal.h"
#include "trackerd.h"
#include "retain/v1/shipment.pb-c.h"

#define S_BATCH  500 /* parcels per transaction */
#define S_NAP_MS 200 /* how soon the thread notices a stop */

/* The columns every sweep statement returns, as parcel_t needs them. */
#define S_RETURNING                                                                                \
    " RETURNING s.id, s.order_id, s.customer_id, s.carrier, s.tracking_number,"                    \
    " COALESCE(s.promised_by, 0), COALESCE(s.carrier_eta, 0), s.tag, s.sub_status,"                \
    " COALESCE(s.storage_until, 0), s.news_at"

/* A row free to change: not under a live claim. */
#define S_FREE " AND (s.poll_token IS NULL OR s.lease_until <= $1::bigint)"

#define S_PAST_PROMISE "tracker_sweep_past_promise"
static const char *s_past_promise_sql =
    "UPDATE tracking.shipments s SET delays = s.delays || 'past_promise'::text,"
    "  poll_token = NULL, updated_at = now()"
    " WHERE s.id IN (SELECT s.id FROM tracking.shipments s"
    "   WHERE NOT s.final AND s.promised_by < $1::bigint"
    "     AND NOT ('past_promise' = ANY (s.delays))" S_FREE
    "   ORDER BY s.promised_by LIMIT $2::integer FOR UPDATE SKIP LOCKED)" S_RETURNING;

#define S_STALLED "tracker_sweep_stalled"
static const char *s_stalled_sql =
    "UPDATE tracking.shipments s SET delays = s.delays || 'stalled'::text,"
    "  poll_token = NULL, updated_at = now()"
    " WHERE s.id IN (SELECT s.id FROM tracking.shipments s"
    "   JOIN tracking.carriers c ON c.name = s.carrier"
    "   WHERE NOT s.final AND s.tag <> 'AvailableForPickup'"
    "     AND s.news_at < $1::bigint - (extract(epoch FROM c.stuck_after) * 1000)::bigint"
    "     AND NOT ('stalled' = ANY (s.delays))" S_FREE
    "   LIMIT $2::integer FOR UPDATE OF s SKIP LOCKED)" S_RETURNING;

#define S_STORAGE "tracker_sweep_storage"
static const char *s_storage_sql =
    "UPDATE tracking.shipments s SET milestones = s.milestones || $4::text,"
    "  poll_token = NULL, updated_at = now()"
    " WHERE s.id IN (SELECT s.id FROM tracking.shipments s"
    "   WHERE NOT s.final AND s.tag = 'AvailableForPickup'"
    "     AND s.storage_until > $1::bigint AND s.storage_until <= $1::bigint + $3::bigint"
    "     AND NOT ($4::text = ANY (s.milestones))" S_FREE
    "   LIMIT $2::integer FOR UPDATE SKIP LOCKED)" S_RETURNING;

/* Returns the status before as two more columns. */
#define S_EXPIRE "tracker_sweep_expire"
static const char *s_expire_sql =
    "WITH old AS (SELECT s.id, s.tag, s.sub_status FROM tracking.shipments s"
    "   JOIN tracking.carriers c ON c.name = s.carrier"
    "   WHERE NOT s.final"
    "     AND s.news_at < $1::bigint - (extract(epoch FROM c.expire_after) * 1000)::bigint" S_FREE
    "   LIMIT $2::integer FOR UPDATE OF s SKIP LOCKED)"
    " UPDATE tracking.shipments s SET tag = 'Expired', sub_status = 'Expired_001', final = true,"
    "  poll_token = NULL, updated_at = now()"
    " FROM old WHERE s.id = old.id" S_RETURNING ", old.tag, old.sub_status";

struct sweep_t {
    outcome_config_t config; /* copied; its strings and keys lent by the daemon */
    rt_db_t *db;             /* the sweep's own connection */
    int64_t every_ms;        /* between ticks */
    pthread_t thread;        /* runs s_main */
    bool started;            /* the thread was created */
    atomic_bool stop;        /* sweep_stop asks the thread to end */
};

/* A row of S_RETURNING as a parcel (strings lent by the result). */
static void
s_parcel (const PGresult *r, int i, parcel_t *p)
{
    memset (p, 0, sizeof *p);
    p->id = PQgetvalue (r, i, 0);
    p->order_id = PQgetvalue (r, i, 1);
    p->customer_id = PQgetvalue (r, i, 2);
    p->tracking_number = PQgetvalue (r, i, 4);
    p->promised_by = strtoll (PQgetvalue (r, i, 5), NULL, 10);
    p->carrier_eta = strtoll (PQgetvalue (r, i, 6), NULL, 10);
    p->tag = PQgetvalue (r, i, 7);
    p->sub_status = PQgetvalue (r, i, 8);
    p->storage_until = strtoll (PQgetvalue (r, i, 9), NULL, 10);
    p->news_at = strtoll (PQgetvalue (r, i, 10), NULL, 10);
}

typedef enum { S_KIND_PAST_PROMISE, S_KIND_STALLED, S_KIND_STORAGE, S_KIND_EXPIRE } s_kind_t;

/* One row's event into *out: 1 packed, 0 none, -1 failed. */
static int
s_pack (const sweep_t *self, s_kind_t kind, const milestone_t *reminder, const PGresult *r, int i,
        int64_t now, ProtobufCBinaryData *out, char *err, size_t errlen)
{
    parcel_t p;
    const carrier_t *carrier = carrier_find (PQgetvalue (r, i, 3));
    s_parcel (r, i, &p);
    if (!carrier) {
        rt_errf (err, errlen, "a parcel of an unknown carrier %s", PQgetvalue (r, i, 3));
        return -1;
    }
    switch (kind) {
    case S_KIND_PAST_PROMISE:
        return outcome_pack_delayed (&p, carrier, "past_promise", p.tag, now - p.promised_by,
                                     p.carrier_eta, 0, out, err, errlen) == 0
                   ? 1
                   : -1;
    case S_KIND_STALLED:
        return outcome_pack_delayed (&p, carrier, "stalled", p.tag, now - p.news_at, p.carrier_eta,
                                     0, out, err, errlen) == 0
                   ? 1
                   : -1;
    case S_KIND_STORAGE: {
        int got = outcome_pack_milestone (&self->config, reminder, &p, carrier, now, out);
        if (got < 0)
            rt_errf (err, errlen, "a storage reminder: out of memory");
        return got;
    }
    case S_KIND_EXPIRE: {
        Retain__V1__ShipmentStatusChanged m = RETAIN__V1__SHIPMENT_STATUS_CHANGED__INIT;
        tracking_tag_t before = TAG_PENDING;
        (void)status_tag_parse (PQgetvalue (r, i, 11), &before);
        m.shipment_id = p.id;
        m.order_id = p.order_id;
        m.customer_id = p.customer_id;
        m.carrier = (char *)carrier->name;
        m.tracking_number = p.tracking_number;
        m.status = status_tag_proto (TAG_EXPIRED);
        m.previous_status = status_tag_proto (before);
        m.carrier_status = "";
        m.location = "";
        m.changed_at = now;
        m.estimated_delivery = p.carrier_eta;
        m.tag = (char *)status_tag_name (TAG_EXPIRED);
        m.sub_status = p.sub_status;
        m.previous_tag = PQgetvalue (r, i, 11);
        m.previous_sub_status = PQgetvalue (r, i, 12);
        m.storage_until = p.storage_until;
        return rt_envelope_new_packed ("ShipmentStatusChanged", p.id, &m.base, TRACKERD_PRODUCER,
                                       out, err, errlen) == 0
                   ? 1
                   : -1;
    }
    }
    return 0;
}

/* One batch of one kind: the parcels it returns, or -1. */
static int
s_batch (sweep_t *self, s_kind_t kind, const char *stmt, int64_t now)
{
    static const char *labels[] = {"reason=\"past_promise\"", "reason=\"stalled\"",
                                   "reason=\"storage_reminder\"", "reason=\"expired\""};
    const milestone_t *reminder = outcome_milestone_find (&self->config, "StorageReminder");
    char at[24], limit[16], lead[24], err[256] = "";
    const char *v[4] = {at, limit, lead, reminder ? reminder->template : ""};
    int nparams = kind == S_KIND_STORAGE ? 4 : 2;
    ProtobufCBinaryData *packed = NULL;
    size_t n_packed = 0;
    PGresult *r = NULL;
    int n = -1;

    if (kind == S_KIND_STORAGE && !reminder)
        return 0;
    snprintf (at, sizeof at, "%lld", (long long)now);
    snprintf (limit, sizeof limit, "%d", S_BATCH);
    snprintf (lead, sizeof lead, "%lld", (long long)self->config.storage_lead_ms);
    if (rt_db_begin (self->db) != 0)
        return -1;
    r = rt_db_exec_prepared (self->db, stmt, nparams, v, NULL, NULL, 0);
    if (!r)
        goto cleanup;
    packed = calloc ((size_t)PQntuples (r) + 1, sizeof *packed);
    if (!packed)
        goto cleanup;
    for (int i = 0; i < PQntuples (r); i++) {
        int got = s_pack (self, kind, reminder, r, i, now, &packed[n_packed], err, sizeof err);
        if (got < 0)
            goto cleanup;
        n_packed += (size_t)got;
    }
    if (n_packed && rt_outbox_append_batch (self->db, packed, n_packed) != 0)
        goto cleanup;
    if (rt_db_commit (self->db) != 0)
        goto cleanup;
    n = PQntuples (r);
    for (int i = 0; i < n; i++) {
        rt_counter_inc (rt_metrics_counter (self->config.metrics, "retain_tracker_swept_total",
                                            labels[kind],
                                            "parcels time decided about, by what it decided"));
        rt_log (RT_LOG_INFO, "a parcel's deadline passed",
                rt_log_str ("shipment", PQgetvalue (r, i, 0)),
                rt_log_str ("what", labels[kind] + 8));
    }
cleanup:
    if (n < 0) {
        rt_db_rollback (self->db);
        rt_log (RT_LOG_WARN, "a sweep batch was rolled back: it runs again at the next tick",
                rt_log_str ("error", err[0] ? err : rt_db_error (self->db)));
    }
    for (size_t i = 0; packed && i < n_packed; i++)
        free (packed[i].data);
    free (packed);
    if (r)
        PQclear (r);
    return n;
}

static void
s_tick (sweep_t *self)
{
    static const struct {
        s_kind_t kind;
        const char *stmt;
    } steps[] = {{S_KIND_EXPIRE, S_EXPIRE},
                 {S_KIND_PAST_PROMISE, S_PAST_PROMISE},
                 {S_KIND_STALLED, S_STALLED},
                 {S_KIND_STORAGE, S_STORAGE}};
    int64_t now = rt_clock_now_ms ();
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        int n;
        /* Batches until one comes back short: a backlog drains in one tick. */
        do
            n = s_batch (self, steps[k].kind, steps[k].stmt, now);
        while (n == S_BATCH && !atomic_load (&self->stop));
    }
}

static void *
s_main (void *arg)
{
    sweep_t *self = arg;
    int64_t next = 0;
    while (!atomic_load (&self->stop)) {
        int64_t now = rt_clock_mono_ms ();
        if (now >= next && rt_db_ensure_for (self->db, 1000) == 0) {
            s_tick (self);
            next = now + self->every_ms;
        }
        rt_signal_sleep_ms (S_NAP_MS);
    }
    return NULL;
}

sweep_t *
sweep_start (const char *dsn, const outcome_config_t *config, int64_t every_ms, char *err,
             size_t errlen)
{
    sweep_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->config = *config;
    self->every_ms = every_ms;
    atomic_init (&self->stop, false);
    self->db = rt_db_new (dsn, "retain-trackerd-sweep");
    if (!self->db) {
        rt_errf (err, errlen, "out of memory");
        goto fail;
    }
    if (rt_outbox_prepare (self->db) != 0 ||
        rt_db_prepare (self->db, S_PAST_PROMISE, s_past_promise_sql) != 0 ||
        rt_db_prepare (self->db, S_STALLED, s_stalled_sql) != 0 ||
        rt_db_prepare (self->db, S_STORAGE, s_storage_sql) != 0 ||
        rt_db_prepare (self->db, S_EXPIRE, s_expire_sql) != 0) {
        rt_errf (err, errlen, "the sweep's statements: %s", rt_db_error (self->db));
        goto fail;
    }
    if (pthread_create (&self->thread, NULL, s_main, self) != 0) {
        rt_errf (err, errlen, "the sweep's thread could not start");
        goto fail;
    }
    self->started = true;
    return self;
fail:
    sweep_stop (&self);
    return NULL;
}

void
sweep_stop (sweep_t **self_p)
{
    sweep_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    if (self->started)
        pthread_join (self->thread, NULL);
    rt_db_destroy (&self->db);
    free (self);
    *self_p = NULL;
}
