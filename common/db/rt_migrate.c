/*
 * rt_migrate: applies a schema's numbered migrations, once, in order.
 *
 * A session advisory lock keyed on the schema serialises every daemon and
 * retainctl that migrate at the same time; whoever comes second finds the
 * work done. Each file and its schema_migrations row commit together, so a
 * crash midway leaves the schema at a clean version.
 */
#include "rt_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "rt_codec.h"
#include "rt_log.h"

static void
s_sha256_hex (const char *text, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest (text, strlen (text), md, &mdlen, EVP_sha256 (), NULL);
    rt_hex_encode (md, mdlen < 32 ? mdlen : 32, out);
}

static int
s_fail (rt_db_t *db, char *err, size_t errlen, const char *what)
{
    snprintf (err, errlen, "%s: %s", what, rt_db_error (db));
    rt_db_rollback (db);
    return -1;
}

int
rt_migrate_apply (rt_db_t *db, const rt_migration_set_t *set, char *err, size_t errlen)
{
    char lock_key[128];
    char sql[512];
    const char *params[4];
    PGresult *res = NULL;
    int applied = 0;
    int rc = -1;
    size_t i;

    snprintf (lock_key, sizeof lock_key, "retain.migrate.%s", set->schema);
    params[0] = lock_key;
    res = rt_db_exec_params (db, "SELECT pg_advisory_lock(hashtext($1))", 1, params);
    if (!res)
        return s_fail (db, err, errlen, "taking the migration lock");
    PQclear (res);

    /* The schema name comes from our own build, never from input. */
    snprintf (sql, sizeof sql,
              "CREATE SCHEMA IF NOT EXISTS %s;"
              "CREATE TABLE IF NOT EXISTS %s.schema_migrations ("
              " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
              " applied_at timestamptz NOT NULL DEFAULT now())",
              set->schema, set->schema);
    if (rt_db_exec (db, sql) != 0) {
        s_fail (db, err, errlen, "creating schema_migrations");
        goto unlock;
    }

    for (i = 0; i < set->count; i++) {
        const rt_migration_t *m = &set->migrations[i];
        char version[16];
        char checksum[65];
        snprintf (version, sizeof version, "%d", m->version);
        s_sha256_hex (m->sql, checksum);
        snprintf (sql, sizeof sql, "SELECT checksum FROM %s.schema_migrations WHERE version = $1",
                  set->schema);
        params[0] = version;
        res = rt_db_exec_params (db, sql, 1, params);
        if (!res) {
            s_fail (db, err, errlen, "reading schema_migrations");
            goto unlock;
        }
        if (PQntuples (res) == 1) {
            int same = strcmp (PQgetvalue (res, 0, 0), checksum) == 0;
            PQclear (res);
            if (!same) {
                snprintf (err, errlen,
                          "%s migration %s was changed after it was applied; add a new "
                          "migration instead",
                          set->schema, m->name);
                goto unlock;
            }
            continue;
        }
        PQclear (res);
        if (rt_db_begin (db) != 0 || rt_db_exec (db, m->sql) != 0) {
            char what[256];
            snprintf (what, sizeof what, "applying %s/%s", set->schema, m->name);
            s_fail (db, err, errlen, what);
            goto unlock;
        }
        snprintf (sql, sizeof sql,
                  "INSERT INTO %s.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                  set->schema);
        params[0] = version;
        params[1] = m->name;
        params[2] = checksum;
        res = rt_db_exec_params (db, sql, 3, params);
        if (!res) {
            s_fail (db, err, errlen, "recording the migration");
            goto unlock;
        }
        PQclear (res);
        if (rt_db_commit (db) != 0) {
            s_fail (db, err, errlen, "committing the migration");
            goto unlock;
        }
        rt_log (RT_LOG_INFO, "migration applied", rt_log_str ("schema", set->schema),
                rt_log_str ("file", m->name));
        applied++;
    }
    rc = applied;
unlock:
    params[0] = lock_key;
    res = rt_db_exec_params (db, "SELECT pg_advisory_unlock(hashtext($1))", 1, params);
    PQclear (res);
    return rc;
}
