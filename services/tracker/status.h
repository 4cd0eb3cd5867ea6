/*
 * status: the normalised shipment status every carrier is mapped into,
 * AfterShip's nine tags (../shared/reference/providers.md 1.6) with a
 * sub-status, and the one rule on moving between them.
 *
 * A tag says where the parcel is in words a customer knows; the
 * sub-status (AfterShip's `<Tag>_NNN`, e.g. "Delivered_004": delivered,
 * cash on delivery collected) says why. Each carrier's own codes map into
 * them through that carrier's table (carrier.h); trackerd keeps the raw
 * code beside the tag, so nothing the carrier said is lost to the mapping.
 *
 * Final tags (Delivered, Expired) end polling. A parcel never leaves a
 * final tag except into a return (an Exception whose sub-status is a
 * return: the carrier sends it back), because carriers do report stale
 * events after the delivery scan and a customer told "delivered" must not
 * then hear "in transit".
 */
#ifndef TRACKER_STATUS_H
#define TRACKER_STATUS_H

#include <stdbool.h>

#include "retain/v1/shipment.pb-c.h"

typedef enum {
    TAG_PENDING = 0,          /* registered, the carrier has nothing yet */
    TAG_INFO_RECEIVED,        /* the carrier has the label, not the parcel */
    TAG_IN_TRANSIT,           /* on its way */
    TAG_OUT_FOR_DELIVERY,     /* with the courier today */
    TAG_ATTEMPT_FAIL,         /* a delivery attempt failed */
    TAG_DELIVERED,            /* in the recipient's hands: final */
    TAG_AVAILABLE_FOR_PICKUP, /* waiting at a branch or a locker */
    TAG_EXCEPTION,            /* refused, returned, held, lost, cancelled */
    TAG_EXPIRED,              /* no news for 30 days: final */
    TAG_COUNT
} tracking_tag_t;

/* The tag's AfterShip name ("InTransit"); "" for an out-of-range value. */
const char *status_tag_name (tracking_tag_t tag);

/* The tag named `name` (AfterShip's spelling, case-sensitive) into *out;
 * -1 when no tag has that name. */
int status_tag_parse (const char *name, tracking_tag_t *out);

/* Whether polling stops at this tag. */
bool status_tag_final (tracking_tag_t tag);

/* Whether a sub-status names a return to the sender (the only way out of
 * a final tag). */
bool status_sub_is_return (const char *sub_status);

/* Whether a parcel at (from, from_sub) may move to (to, to_sub): false
 * only out of a final tag into anything but a return. */
bool status_may_move (tracking_tag_t from, const char *from_sub, tracking_tag_t to,
                      const char *to_sub);

/* The bus enum ShipmentStatus a tag is published as. */
Retain__V1__ShipmentStatus status_tag_proto (tracking_tag_t tag);

#endif
