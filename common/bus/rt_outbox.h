/*
 * rt_outbox: the transactional door onto the bus.
 *
 * A service that emits events while changing its own state writes them to
 * the outbox in the same transaction; busd drains the outbox into the log
 * (woken by NOTIFY) and de-duplicates on envelope id, so a replayed handler
 * that writes the same envelope again makes no second event.
 *
 * The outbox is a schema of its own, `outbox`, with migrations of its own
 * (common/bus/sql, carried by every binary that links rt_bus): every daemon
 * that produces through it applies them at start (rt_outbox_migrate), and
 * so does busd, which drains it, before its own. A producer never needs
 * the bus's schema.
 *
 * Rows are taken in id order, which is the order of their inserts: one
 * key's events reach the log in the order its producer wrote them.
 */
#ifndef RT_OUTBOX_H
#define RT_OUTBOX_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "rt_buf.h"
#include "rt_db.h"
#include "rt_migrate.h"
#include "retain/v1/envelope.pb-c.h"

/* The names the outbox's SQL uses, for SQL written elsewhere (busd's
 * drain, retainctl, tests): the table producers insert into (id bigserial,
 * envelope bytea, created_at), the table busd sets unacceptable rows aside
 * in (id, envelope, reason, rejected_at), and the channel every inserting
 * statement NOTIFYs once. */
#define RT_OUTBOX_PENDING  "outbox.pending"
#define RT_OUTBOX_REJECTED "outbox.rejected"
#define RT_OUTBOX_CHANNEL  "outbox"

/* The outbox's migrations (generated from common/bus/sql). */
extern const rt_migration_set_t rt_migrations_outbox;

/* Applies what is missing of rt_migrations_outbox (rt_migrate_apply).
 * Returns the number applied (>= 0) or -1 with the reason in err. */
int rt_outbox_migrate (rt_db_t *db, char *err, size_t errlen);

/* Inserts the envelope into the outbox on db's connection, inside whatever
 * transaction is open there. The envelope is checked first as busd would
 * check it (rt_envelope_check) and must have an id. Not prepared: for
 * producers of a few events at a time. Returns 0 or -1 (reason in
 * rt_db_error or logged). */
int rt_outbox_append (rt_db_t *db, const Retain__V1__Envelope *env);

/* Registers the statement rt_outbox_append_batch runs with db (rt_db
 * prepares it on this and every later connection). Call once per handle,
 * after rt_outbox_migrate has made the table. 0, or -1 when preparing on
 * the live connection failed (reason in rt_db_error; it stays registered). */
int rt_outbox_prepare (rt_db_t *db);

/* Inserts n packed envelopes (rt_envelope_pack of envelopes made by
 * rt_envelope_new), in their order, in one statement on db's connection,
 * inside whatever transaction is open there. They are not checked again:
 * the caller checked what it put in them, and busd sets aside a row it
 * cannot accept. rt_outbox_prepare must have been called on db. n == 0
 * sends nothing. Returns 0 or -1 (reason in rt_db_error and
 * rt_db_sqlstate). */
int rt_outbox_append_batch (rt_db_t *db, const ProtobufCBinaryData *envelopes, size_t n);

/* Appends to array n byte strings as one binary bytea[] parameter
 * (array_recv's format, paramFormats 1), the way rt_outbox_append_batch
 * sends its batch; n == 0 makes an empty array. 0, or -1 (logged) when it
 * would not fit one parameter or memory ran out. */
int rt_outbox_bytea_array (rt_buf_t *array, const ProtobufCBinaryData *items, size_t n);

#endif
