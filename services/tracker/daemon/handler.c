/*
 * handler: the consumer group "tracker" (stream "order"). OrderShipped
 * registers its parcel through shipment.h in the round's transaction, so
 * the parcel exists exactly when the offset that consumed it is committed;
 * a replayed OrderShipped finds its row. A refused one (unknown carrier, a
 * number of the wrong format) is logged with its reason and counted, and
 * the stream goes on: the event is the shop's, and one bad parcel must not
 * hold every parcel after it.
 *
 * A new parcel is the "Shipped" moment: when the shop's settings let it
 * speak, its NotificationRequested (the tracking link) goes into the
 * outbox in the same transaction, so the customer hears of the parcel
 * exactly once, however often the OrderShipped is replayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_clock.h"
#include "rt_log.h"
#include "rt_outbox.h"
#include "shipment.h"
#include "trackerd.h"
#include "retain/v1/order.pb-c.h"

static void
s_count (handler_t *self, const char *name, const char *labels, const char *help)
{
    rt_counter_inc (rt_metrics_counter (self->metrics, name, labels, help));
}

/* The "Shipped" milestone of a parcel just registered, into the outbox. */
static int
s_milestone (handler_t *self, rt_db_t *db, const Retain__V1__OrderShipped *m, const char *id,
             const shipment_spec_t *spec, int64_t now)
{
    const milestone_t *ms = outcome_milestone_find (self->outcome, "Shipped");
    const carrier_t *carrier = carrier_find (m->carrier);
    ProtobufCBinaryData packed;
    parcel_t p;
    int got, rc;

    if (!ms || !carrier)
        return 0;
    memset (&p, 0, sizeof p);
    p.id = (char *)id;
    p.tracking_number = (char *)spec->tracking_number;
    p.customer_id = (char *)spec->customer_id;
    p.order_id = (char *)spec->order_id;
    p.origin_city = (char *)spec->origin_city;
    p.destination_city = (char *)spec->destination_city;
    p.shipped_at = spec->shipped_at_ms;
    p.promised_by = spec->promised_by_ms;
    got = outcome_pack_milestone (self->outcome, ms, &p, carrier, now, &packed);
    if (got <= 0)
        return got;
    rc = rt_outbox_append_batch (db, &packed, 1);
    free (packed.data);
    return rc;
}

static int
s_shipped (handler_t *self, rt_db_t *db, const Retain__V1__Envelope *event)
{
    Retain__V1__OrderShipped *m;
    shipment_spec_t spec;
    char id[SHIPMENT_ID_MAX], why[256];
    shipment_result_t r;
    int64_t now;

    m = retain__v1__order_shipped__unpack (NULL, event->payload.len, event->payload.data);
    if (!m) {
        rt_log (RT_LOG_WARN, "OrderShipped passed over: the payload is no OrderShipped",
                rt_log_str ("event", event->id), rt_log_int ("seq", (long long)event->seq));
        s_count (self, "retain_tracker_refused_total", "reason=\"unreadable\"",
                 "OrderShipped events no parcel came of, by reason");
        return 0;
    }
    spec = (shipment_spec_t){
        .id = m->shipment_id,
        .order_id = m->order_id,
        .customer_id = m->customer_id,
        .carrier = m->carrier,
        .account = m->carrier_account,
        .tracking_number = m->tracking_number,
        .service = m->service,
        .phone = m->recipient_phone,
        .origin_city = m->origin_city,
        .destination_city = m->destination_city,
        .shipped_at_ms = m->shipped_at > 0 ? m->shipped_at : event->occurred_at,
        .promised_by_ms = m->promised_by,
    };
    now = rt_clock_now_ms ();
    r = shipment_register (db, &spec, now, id, why, sizeof why);
    switch (r) {
    case SHIPMENT_CREATED:
        if (s_milestone (self, db, m, id, &spec, now) != 0) {
            rt_log (RT_LOG_WARN, "the shipped message was not queued, the round is retried",
                    rt_log_str ("shipment", id), rt_log_str ("error", rt_db_error (db)));
            retain__v1__order_shipped__free_unpacked (m, NULL);
            return -1;
        }
        s_count (self, "retain_tracker_registered_total", "", "parcels registered");
        rt_log (RT_LOG_INFO, "parcel registered", rt_log_str ("shipment", id),
                rt_log_str ("carrier", m->carrier), rt_log_str ("order", m->order_id));
        break;
    case SHIPMENT_KNOWN:
        s_count (self, "retain_tracker_known_total", "",
                 "OrderShipped events for parcels registered before");
        break;
    case SHIPMENT_REFUSED:
        rt_log (RT_LOG_WARN, "OrderShipped refused", rt_log_str ("reason", why),
                rt_log_str ("order", m->order_id), rt_log_str ("carrier", m->carrier),
                rt_log_str ("event", event->id));
        s_count (self, "retain_tracker_refused_total",
                 carrier_find (m->carrier) ? "reason=\"invalid\"" : "reason=\"unknown_carrier\"",
                 "OrderShipped events no parcel came of, by reason");
        break;
    case SHIPMENT_DB_ERROR:
        rt_log (RT_LOG_WARN, "OrderShipped not registered, the round is retried",
                rt_log_str ("error", rt_db_error (db)));
        retain__v1__order_shipped__free_unpacked (m, NULL);
        return -1;
    }
    retain__v1__order_shipped__free_unpacked (m, NULL);
    return 0;
}

void
handler_init (handler_t *self, const outcome_config_t *outcome, rt_metrics_t *metrics)
{
    memset (self, 0, sizeof *self);
    self->outcome = outcome;
    self->metrics = metrics;
}

/* The outbox's statement, once per connection (again after a reconnect:
 * the consumer's connection is a new one then). */
static int
s_prepare (handler_t *self, rt_db_t *db)
{
    if (self->prepared == db)
        return 0;
    if (rt_outbox_prepare (db) != 0) {
        rt_log (RT_LOG_ERROR, "the outbox's statement could not be prepared",
                rt_log_str ("error", rt_db_error (db)));
        return -1;
    }
    self->prepared = db;
    return 0;
}

int
handler_handle (rt_db_t *db, const Retain__V1__Envelope *event, void *arg)
{
    handler_t *self = arg;
    if (s_prepare (self, db) != 0)
        return -1;
    if (event->type && strcmp (event->type, "OrderShipped") == 0)
        return s_shipped (self, db, event);
    return 0;
}
