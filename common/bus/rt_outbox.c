/*
 * rt_outbox: appends envelopes to the outbox in the caller's transaction.
 *
 * The batch goes as one binary bytea[] parameter to a prepared
 * INSERT ... SELECT unnest: one round trip and one plan for any number of
 * envelopes, and the envelopes travel as their own bytes, not as hex text
 * twice their size.
 */
#include "rt_outbox.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt_buf.h"
#include "rt_bus.h"
#include "rt_log.h"

/* The prepared statement's name on every connection that registered it. */
#define S_BATCH_STMT "rt_outbox_append_batch"

/* PostgreSQL's type oid of bytea: the element type a binary array names. */
#define S_BYTEA_OID 17

static const char *s_sql_append = "INSERT INTO " RT_OUTBOX_PENDING " (envelope) VALUES ($1)";

/* ORDER BY the ordinality: rows take their ids in the order they are
 * inserted, and the drain follows the ids. */
static const char *s_sql_append_batch =
    "INSERT INTO " RT_OUTBOX_PENDING " (envelope)"
    " SELECT e FROM unnest($1::bytea[]) WITH ORDINALITY AS u(e, ord) ORDER BY ord";

int
rt_outbox_migrate (rt_db_t *db, char *err, size_t errlen)
{
    return rt_migrate_apply (db, &rt_migrations_outbox, err, errlen);
}

int
rt_outbox_append (rt_db_t *db, const Retain__V1__Envelope *env)
{
    const char *values[1];
    int lengths[1];
    int formats[1] = {1};
    size_t len;
    uint8_t *data;
    PGresult *res;

    char why[256];

    if (!env->id || !env->id[0]) {
        rt_log (RT_LOG_ERROR, "outbox: envelope without id");
        return -1;
    }
    /* Refused here, in the producer's transaction, rather than set aside
     * by busd later where nobody is waiting for the answer. */
    if (rt_envelope_check (env, why, sizeof why) != 0) {
        rt_log (RT_LOG_ERROR, "outbox: envelope refused", rt_log_str ("id", env->id),
                rt_log_str ("error", why));
        return -1;
    }
    data = rt_envelope_pack (env, &len);
    if (!data)
        return -1;
    values[0] = (const char *)data;
    lengths[0] = (int)len;
    res = rt_db_exec_paramsv (db, s_sql_append, 1, values, lengths, formats, 0);
    free (data);
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}

int
rt_outbox_prepare (rt_db_t *db)
{
    return rt_db_prepare (db, S_BATCH_STMT, s_sql_append_batch);
}

int
rt_outbox_bytea_array (rt_buf_t *array, const ProtobufCBinaryData *items, size_t n)
{
    uint64_t total = 20;
    size_t i;
    /* One parameter carries it all, and a parameter's length is an int. */
    for (i = 0; i < n && total <= INT_MAX; i++)
        total += 4 + (uint64_t)items[i].len;
    if (total > INT_MAX) {
        rt_log (RT_LOG_ERROR, "outbox: batch does not fit one parameter",
                rt_log_uint ("envelopes", n));
        return -1;
    }
    if (!rt_buf_reserve (array, (size_t)total)) {
        rt_log (RT_LOG_ERROR, "outbox: out of memory", rt_log_uint ("envelopes", n));
        return -1;
    }
    /* array_recv's format: dimensions (none for an empty array), a
     * has-nulls flag, the element type, each dimension's size and lower
     * bound, then each element's length and bytes. */
    rt_buf_put_be32 (array, n ? 1 : 0);
    rt_buf_put_be32 (array, 0);
    rt_buf_put_be32 (array, S_BYTEA_OID);
    if (n == 0)
        return 0;
    rt_buf_put_be32 (array, (uint32_t)n);
    rt_buf_put_be32 (array, 1);
    for (i = 0; i < n; i++) {
        rt_buf_put_be32 (array, (uint32_t)items[i].len);
        rt_buf_put (array, items[i].data, items[i].len);
    }
    return 0;
}

int
rt_outbox_append_batch (rt_db_t *db, const ProtobufCBinaryData *envelopes, size_t n)
{
    rt_buf_t array = {0};
    const char *values[1];
    int lengths[1];
    int formats[1] = {1};
    PGresult *res = NULL;
    int rc = -1;

    if (n == 0)
        return 0;
    if (rt_outbox_bytea_array (&array, envelopes, n) != 0)
        goto cleanup;
    values[0] = array.data;
    lengths[0] = (int)array.len;
    res = rt_db_exec_prepared (db, S_BATCH_STMT, 1, values, lengths, formats, 0);
    if (!res)
        goto cleanup;
    rc = 0;
cleanup:
    PQclear (res);
    rt_buf_free (&array);
    return rc;
}
