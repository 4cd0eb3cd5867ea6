/*
 * shipment: registering a parcel to follow, the one way in for OrderShipped
 * (trackerd's consumer) and `retainctl shipment add` alike.
 *
 * Registration checks what a carrier would refuse later, while the shop
 * can still hear why: the carrier is one trackerd knows, the tracking
 * number has that carrier's format (carrier.h's number_check), the phone
 * (Nova Poshta's key to the full record) is a phone, the named account is
 * the carrier's. A parcel is unique on (carrier, tracking number, service):
 * registering it again, from a repeated OrderShipped or a second command,
 * finds the first row and changes nothing.
 */
#ifndef TRACKER_SHIPMENT_H
#define TRACKER_SHIPMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_db.h"
#include "rt_migrate.h"

#define SHIPMENT_ID_MAX 128 /* a shipment id's bytes at most, NUL included */
#define SHIPMENT_FIELD_MAX                                                                         \
    256 /* an order or customer id's, a service's or a city's bytes at most */

/* tracking's migrations (sql/, generated). */
extern const rt_migration_set_t rt_migrations_tracking;

/* A parcel to register. Strings are lent; NULL reads as "". */
typedef struct {
    const char *id;               /* the shop's shipment id; "": retain makes one */
    const char *order_id;         /* the order it carries */
    const char *customer_id;      /* crm's customer */
    const char *carrier;          /* carrier.h's name: "nova_poshta" */
    const char *account;          /* a carrier account id; "": the carrier's default */
    const char *tracking_number;  /* spaces and dashes are dropped before the check */
    const char *service;          /* DHL's service */
    const char *phone;            /* the recipient's phone, any common form */
    const char *origin_city;      /* the lane, when the shop knows it */
    const char *destination_city; /* */
    int64_t shipped_at_ms;        /* unix ms; 0: now_ms */
    int64_t promised_by_ms;       /* unix ms the shop promised delivery by; 0: none */
} shipment_spec_t;

typedef enum {
    SHIPMENT_CREATED = 0, /* a new parcel, due for its first poll at once */
    SHIPMENT_KNOWN,       /* the parcel was registered before: nothing changed */
    SHIPMENT_REFUSED,     /* bad input: why says what (the carrier named, the format) */
    SHIPMENT_DB_ERROR,    /* PostgreSQL failed: rt_db_error; the caller retries */
} shipment_result_t;

/* Registers spec on db (inside the caller's transaction, if one is open)
 * at now_ms; the parcel's id into id (SHIPMENT_ID_MAX) on CREATED and
 * KNOWN. A refusal fills why and writes nothing. */
shipment_result_t shipment_register (rt_db_t *db, const shipment_spec_t *spec, int64_t now_ms,
                                     char *id, char *why, size_t whylen);

#endif
