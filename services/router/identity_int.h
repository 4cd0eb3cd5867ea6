/*
 * identity_int: what identity.c (resolution) and identity_merge.c (merges,
 * undo, the card's edits) share. Not part of the contract.
 */
#ifndef ROUTER_IDENTITY_INT_H
#define ROUTER_IDENTITY_INT_H

#include <stddef.h>

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>

#include "identity.h"

/* A crm statement: its name and text, registered by identity_prepare. */
typedef struct {
    const char *name; /* "crm_..." */
    const char *sql;  /* with $n parameters */
} identity_stmt_t;

/* The statements of identity_merge.c, registered with identity.c's. */
extern const identity_stmt_t identity_merge_stmts[];
extern const size_t identity_merge_nstmts;

/* Runs a prepared crm statement with text parameters (NULL for SQL NULL).
 * Owned result, or NULL with err filled from rt_db_error. */
PGresult *identity_exec (rt_db_t *db, const char *name, int nparams, const char *const *values,
                         char *err, size_t errlen);

/* Puts one event of `type` with key `key` into the outbox on db (the
 * outbox's prepared statement). 0, or -1 with err filled. */
int identity_emit (rt_db_t *db, const char *type, const char *key, const ProtobufCMessage *payload,
                   char *err, size_t errlen);

/* Whether text is a canonical UUID. */
bool identity_id_ok (const char *text);

#endif
