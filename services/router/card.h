/*
 * card: the customer card's projection (schema crm, card_* tables): what
 * routerd learns of a customer from the bus, kept for the operator's
 * card beside who they are (identity.h).
 *
 * From the streams order, shipment, loyalty and customer: orders
 * (OrderPlaced, OrderPaid, OrderShipped, OrderCancelled, OrderRefunded:
 * total, status, times), parcels (ShipmentStatusChanged, ShipmentDelayed,
 * and the carrier and tracking number of OrderShipped), loyalty
 * (PointsEarned: the balance; TierChanged: the tier; ChurnRiskChanged:
 * risk, p_alive, segment) and feedback (FeedbackReceived).
 *
 * Every function runs on the caller's connection inside the consumer's
 * open transaction, like identity's. Each apply first claims its event
 * by envelope id (crm.card_events): a replay finds it taken and changes
 * nothing, not even whom it resolves. An event's own time guards each
 * fact, so an older event arriving after a newer one (a status the
 * carrier stamped earlier) changes nothing either.
 *
 * Whose card: OrderPlaced's customer is resolved by the handler (it also
 * feeds the timeline) and handed in. The others name theirs by
 * customer_id: a retain id, or else the shop's id, resolved through
 * identity_resolve (an id nobody knows makes a new customer, as any
 * event does). An order or parcel the card knows already keeps the
 * customer it was first written for; a parcel or feedback without a
 * customer id takes its order's. Rows stay on that customer: a card is
 * read over crm.family (the customer and everyone merged into them), so a
 * merge shows the absorbed customer's history on the survivor's card and
 * an undo takes it back with nothing moved.
 *
 * card_read builds the crm part of GET /v1/customers/{id}; the API adds
 * what only it may (the conversations the caller may see).
 *
 * Errors: CARD_ERR_DB (roll back) with the reason in err; everything else
 * is a verdict and leaves the transaction usable.
 */
#ifndef ROUTER_CARD_H
#define ROUTER_CARD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "identity.h"
#include "rt_db.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/envelope.pb-c.h"
#include "retain/v1/loyalty.pb-c.h"
#include "retain/v1/order.pb-c.h"
#include "retain/v1/shipment.pb-c.h"

/* Orders, parcels and feedback a card lists at most, the newest first. */
#define CARD_LIST_MAX 20

/* What an apply came to. */
typedef enum {
    CARD_TAKEN = 0,       /* applied (an older fact may have been kept instead) */
    CARD_REPLAYED = 1,    /* the event was taken before: nothing changed */
    CARD_NO_CUSTOMER = 2, /* the event names no customer the card could find */
    CARD_UNREADABLE = 3,  /* card_apply: the payload is not the type's message */
    CARD_ERR_DB = -1,     /* PostgreSQL or identity failed: roll back */
} card_status_t;

/* Whose card an apply wrote to. */
typedef struct {
    char customer_id[IDENTITY_ID_LEN + 1]; /* the customer resolved ("" when none) */
    bool is_new;                           /* identity made them for this event */
} card_result_t;

/* Registers the card's statements with db (prepared on this and every
 * later connection). Once per handle, after identity_prepare. 0, or -1
 * with the reason in err. */
int card_prepare (rt_db_t *db, char *err, size_t errlen);

/* Whether the card takes events of this type (all but OrderPlaced go
 * through card_apply; OrderPlaced through card_apply_order_placed). */
bool card_takes (const char *type);

/* Unpacks an event of a type card_takes and applies it with the function
 * below that fits. CARD_UNREADABLE when its payload does not unpack. */
card_status_t card_apply (rt_db_t *db, const Retain__V1__Envelope *env, card_result_t *out,
                          char *err, size_t errlen);

/* OrderPlaced for customer_id (resolved by the caller): the order's total,
 * currency, channel and time. */
card_status_t card_apply_order_placed (rt_db_t *db, const Retain__V1__OrderPlaced *m,
                                       const Retain__V1__Envelope *env, const char *customer_id,
                                       char *err, size_t errlen);

/* The order's payment, shipping (and its parcel), cancellation, refund. */
card_status_t card_apply_order_paid (rt_db_t *db, const Retain__V1__OrderPaid *m,
                                     const Retain__V1__Envelope *env, card_result_t *out, char *err,
                                     size_t errlen);
card_status_t card_apply_order_shipped (rt_db_t *db, const Retain__V1__OrderShipped *m,
                                        const Retain__V1__Envelope *env, card_result_t *out,
                                        char *err, size_t errlen);
card_status_t card_apply_order_cancelled (rt_db_t *db, const Retain__V1__OrderCancelled *m,
                                          const Retain__V1__Envelope *env, card_result_t *out,
                                          char *err, size_t errlen);
card_status_t card_apply_order_refunded (rt_db_t *db, const Retain__V1__OrderRefunded *m,
                                         const Retain__V1__Envelope *env, card_result_t *out,
                                         char *err, size_t errlen);

/* A parcel's status (moving only forward in the carrier's time) and its
 * delay. */
card_status_t card_apply_shipment_status_changed (rt_db_t *db,
                                                  const Retain__V1__ShipmentStatusChanged *m,
                                                  const Retain__V1__Envelope *env,
                                                  card_result_t *out, char *err, size_t errlen);
card_status_t card_apply_shipment_delayed (rt_db_t *db, const Retain__V1__ShipmentDelayed *m,
                                           const Retain__V1__Envelope *env, card_result_t *out,
                                           char *err, size_t errlen);

/* Loyalty: the balance after a change, the tier, the churn risk; each
 * guarded by the envelope's occurred_at. */
card_status_t card_apply_points_earned (rt_db_t *db, const Retain__V1__PointsEarned *m,
                                        const Retain__V1__Envelope *env, card_result_t *out,
                                        char *err, size_t errlen);
card_status_t card_apply_tier_changed (rt_db_t *db, const Retain__V1__TierChanged *m,
                                       const Retain__V1__Envelope *env, card_result_t *out,
                                       char *err, size_t errlen);
card_status_t card_apply_churn_risk_changed (rt_db_t *db, const Retain__V1__ChurnRiskChanged *m,
                                             const Retain__V1__Envelope *env, card_result_t *out,
                                             char *err, size_t errlen);

/* A rating or review, kept whole. */
card_status_t card_apply_feedback_received (rt_db_t *db, const Retain__V1__FeedbackReceived *m,
                                            const Retain__V1__Envelope *env, card_result_t *out,
                                            char *err, size_t errlen);

/* The card of customer_id as GET /v1/customers/{id} shows it, without the
 * conversations: *out gets the object (owned), or NULL when there is no
 * such customer (returns 0 then too). An absorbed customer's id reads
 * their survivor's card, with requested_id and merged_into saying so.
 * 0, or -1 with err filled. */
int card_read (rt_db_t *db, const char *customer_id, json_t **out, char *err, size_t errlen);

#endif
