/*
 * rt_http_idem_pg: the idempotency store in PostgreSQL (rt_http_idem.h's
 * interface), for a daemon whose replicas share their Idempotency-Keys: a
 * retry that reaches another replica replays the first one's answer, and
 * a reservation left by a replica that died is taken over once its lock
 * time has passed.
 *
 * A library of its own (rt_http_idem_pg), so rt_http itself does not need
 * libpq. Its table is http.idempotency, in a migration set of its own
 * (common/http/sql/) that the daemon applies with rt_http_idem_pg_migrate
 * beside its own schema.
 *
 * Blocking, over rt_db: each thread that calls the store (each HTTP
 * worker) gets a connection of its own on its first call, kept until the
 * store is destroyed. A lost connection is reconnected at the next call,
 * at most one attempt a second per thread, so a database that is down
 * costs a worker one failed connect a second and its requests a 503
 * ("idempotency-store"), never a wait. Every statement is prepared once
 * per connection (and again after a reconnect). Expired rows are deleted
 * by the store itself, at most 100 at a time, once a second per
 * connection.
 */
#ifndef RT_HTTP_IDEM_PG_H
#define RT_HTTP_IDEM_PG_H

#include <stddef.h>

#include "rt_db.h"
#include "rt_http_idem.h"

/* A store on the database at `dsn` (copied; connections are made when
 * first needed, so a database that is down does not stop this).
 * `config` may be NULL. NULL with err filled when out of memory. */
rt_http_idem_store_t *rt_http_idem_pg_new (const char *dsn, const rt_http_idem_config_t *config,
                                           char *err, size_t errlen);

/* Applies what is missing of the http schema's migrations on db (see
 * rt_migrate.h). Returns the number applied (>= 0), or -1 with err filled. */
int rt_http_idem_pg_migrate (rt_db_t *db, char *err, size_t errlen);

#endif
