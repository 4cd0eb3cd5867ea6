/*
 * rt_migrate: numbered SQL migrations per schema.
 *
 * Each schema's migrations are files NNN_name.sql compiled into the binary
 * (cmake/embed_sql.cmake). Applying takes a transaction-level advisory lock
 * on the schema, so concurrent daemons and retainctl never apply the same
 * migration twice; each file runs in its own transaction together with its
 * row in <schema>.schema_migrations (version, name, checksum, applied_at).
 * An applied file whose text changed since is an error (a migration is
 * never edited once released: add a new one).
 */
#ifndef RT_MIGRATE_H
#define RT_MIGRATE_H

#include <stddef.h>

#include "rt_db.h"

typedef struct {
    int version;      /* from the file name's number */
    const char *name; /* the file name */
    const char *sql;  /* its text */
} rt_migration_t;

typedef struct {
    const char *schema;
    const rt_migration_t *migrations; /* ascending by version */
    size_t count;
} rt_migration_set_t;

/* Applies what is missing of `set`. Returns the number applied (>= 0) or -1
 * with the reason in err. */
int rt_migrate_apply (rt_db_t *db, const rt_migration_set_t *set, char *err, size_t errlen);

#endif
