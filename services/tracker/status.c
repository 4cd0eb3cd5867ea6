/*
 * status: AfterShip's nine tags, their names, and the move rule (status.h).
 */
#include "status.h"

#include <string.h>

/* Indexed by tracking_tag_t: the one list of names. */
static const char *const s_names[TAG_COUNT] = {
    [TAG_PENDING] = "Pending",
    [TAG_INFO_RECEIVED] = "InfoReceived",
    [TAG_IN_TRANSIT] = "InTransit",
    [TAG_OUT_FOR_DELIVERY] = "OutForDelivery",
    [TAG_ATTEMPT_FAIL] = "AttemptFail",
    [TAG_DELIVERED] = "Delivered",
    [TAG_AVAILABLE_FOR_PICKUP] = "AvailableForPickup",
    [TAG_EXCEPTION] = "Exception",
    [TAG_EXPIRED] = "Expired",
};

/* The bus's enum per tag (shipment.proto names InfoReceived LABEL_CREATED,
 * AttemptFail DELIVERY_FAILED, AvailableForPickup AT_PICKUP_POINT). */
static const Retain__V1__ShipmentStatus s_proto[TAG_COUNT] = {
    [TAG_PENDING] = RETAIN__V1__SHIPMENT_STATUS__PENDING,
    [TAG_INFO_RECEIVED] = RETAIN__V1__SHIPMENT_STATUS__LABEL_CREATED,
    [TAG_IN_TRANSIT] = RETAIN__V1__SHIPMENT_STATUS__IN_TRANSIT,
    [TAG_OUT_FOR_DELIVERY] = RETAIN__V1__SHIPMENT_STATUS__OUT_FOR_DELIVERY,
    [TAG_ATTEMPT_FAIL] = RETAIN__V1__SHIPMENT_STATUS__DELIVERY_FAILED,
    [TAG_DELIVERED] = RETAIN__V1__SHIPMENT_STATUS__DELIVERED,
    [TAG_AVAILABLE_FOR_PICKUP] = RETAIN__V1__SHIPMENT_STATUS__AT_PICKUP_POINT,
    [TAG_EXCEPTION] = RETAIN__V1__SHIPMENT_STATUS__EXCEPTION,
    [TAG_EXPIRED] = RETAIN__V1__SHIPMENT_STATUS__EXPIRED,
};

const char *
status_tag_name (tracking_tag_t tag)
{
    if ((int)tag < 0 || tag >= TAG_COUNT)
        return "";
    return s_names[tag];
}

int
status_tag_parse (const char *name, tracking_tag_t *out)
{
    if (!name)
        return -1;
    for (int i = 0; i < TAG_COUNT; i++) {
        if (strcmp (s_names[i], name) == 0) {
            *out = (tracking_tag_t)i;
            return 0;
        }
    }
    return -1;
}

bool
status_tag_final (tracking_tag_t tag)
{
    return tag == TAG_DELIVERED || tag == TAG_EXPIRED;
}

/* The return sub-statuses: AfterShip's Exception_010 ("returning package
 * to sender") and Exception_011 ("returned to sender"). */
bool
status_sub_is_return (const char *sub_status)
{
    return sub_status &&
           (strcmp (sub_status, "Exception_010") == 0 || strcmp (sub_status, "Exception_011") == 0);
}

bool
status_may_move (tracking_tag_t from, const char *from_sub, tracking_tag_t to, const char *to_sub)
{
    (void)from_sub;
    if (!status_tag_final (from))
        return true;
    return to == TAG_EXCEPTION && status_sub_is_return (to_sub);
}

Retain__V1__ShipmentStatus
status_tag_proto (tracking_tag_t tag)
{
    if ((int)tag < 0 || tag >= TAG_COUNT)
        return RETAIN__V1__SHIPMENT_STATUS__SHIPMENT_STATUS_UNSPECIFIED;
    return s_proto[tag];
}
