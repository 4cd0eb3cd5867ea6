/*
 * rt_outbox: the transactional door onto the bus.
 *
 * A service that emits events while changing its own state writes them to
 * bus.outbox in the same transaction; busd drains the outbox into the log
 * (woken by NOTIFY) and de-duplicates on envelope id, so a replayed handler
 * that writes the same envelope again makes no second event.
 */
#ifndef RT_OUTBOX_H
#define RT_OUTBOX_H

#include "rt_db.h"
#include "retain/v1/envelope.pb-c.h"

/* Inserts the envelope into bus.outbox on db's connection, inside whatever
 * transaction is open there. The envelope must have id, type and key.
 * Returns 0 or -1 (reason in rt_db_error or logged). */
int rt_outbox_append (rt_db_t *db, const Retain__V1__Envelope *env);

#endif
