/*
 * rt_outbox: append an envelope to bus.outbox in the caller's transaction.
 */
#include "rt_outbox.h"

#include <stdio.h>
#include <stdlib.h>

#include "rt_bus.h"
#include "rt_log.h"

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
    res = rt_db_exec_paramsv (db, "INSERT INTO bus.outbox (envelope) VALUES ($1)", 1, values,
                              lengths, formats, 0);
    free (data);
    if (!res)
        return -1;
    PQclear (res);
    return 0;
}
