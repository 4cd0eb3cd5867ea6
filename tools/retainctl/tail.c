/*
 * retainctl tail: events from the log as JSON lines, payload decoded.
 *
 * Reads bus.events by seq (not the PUB socket), so it shows exactly what is
 * durable, from any point of the retained history, and with --follow keeps
 * printing new events as they commit.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_bus.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_pbjson.h"
#include "rt_signal.h"

static const rt_config_setting_t s_settings[] = {
    RETAINCTL_PG_DSN,
    {"stream", NULL, "", "only this stream"},
    {"from", NULL, "1", "first seq to print"},
    {"limit", NULL, "0", "stop after this many events (0: no limit)"},
    {"follow", NULL, "false", "keep printing new events as they arrive"},
    RETAINCTL_END};

/* A page of the log from seq $1 on ($2 one stream, '' for all), $3 events
 * at most. */
static const char *s_sql_page =
    "SELECT seq, stream, partition, pseq, id, type, key, occurred_at, producer, correlation_id,"
    " payload FROM bus.events WHERE seq >= $1::bigint AND ($2 = '' OR stream = $2)"
    " ORDER BY seq LIMIT $3::int";

static void
s_print_row (PGresult *res, int r)
{
    json_t *line = json_object ();
    const rt_bus_type_t *type = rt_bus_type_find (PQgetvalue (res, r, 5));
    size_t len = 0;
    unsigned char *payload = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, r, 10), &len);
    char *text;

    json_object_set_new (line, "seq", json_integer (strtoll (PQgetvalue (res, r, 0), NULL, 10)));
    json_object_set_new (line, "stream", json_string (PQgetvalue (res, r, 1)));
    json_object_set_new (line, "partition", json_integer (atoi (PQgetvalue (res, r, 2))));
    json_object_set_new (line, "pseq", json_integer (strtoll (PQgetvalue (res, r, 3), NULL, 10)));
    json_object_set_new (line, "id", json_string (PQgetvalue (res, r, 4)));
    json_object_set_new (line, "type", json_string (PQgetvalue (res, r, 5)));
    json_object_set_new (line, "key", json_string (PQgetvalue (res, r, 6)));
    json_object_set_new (line, "occurred_at",
                         json_integer (strtoll (PQgetvalue (res, r, 7), NULL, 10)));
    json_object_set_new (line, "producer", json_string (PQgetvalue (res, r, 8)));
    json_object_set_new (line, "correlation_id", json_string (PQgetvalue (res, r, 9)));
    if (type && payload) {
        ProtobufCMessage *msg = protobuf_c_message_unpack (type->desc, NULL, len, payload);
        if (msg) {
            json_object_set_new (line, "payload", rt_pbjson_dump (msg));
            protobuf_c_message_free_unpacked (msg, NULL);
        }
    }
    if (!json_object_get (line, "payload"))
        json_object_set_new (line, "payload_error", json_string ("payload does not decode"));
    text = json_dumps (line, JSON_COMPACT);
    if (text)
        printf ("%s\n", text);
    free (text);
    PQfreemem (payload);
    json_decref (line);
}

int
retainctl_tail (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char from[24], limit[24];
    const char *stream;
    int64_t next = 1, max = 0, printed = 0;
    bool follow = false;
    int rc;

    if (!retainctl_cmd_begin (&cmd, NULL, "Print events from the log as JSON lines.", s_settings,
                              argc, argv, &rc))
        goto cleanup;
    rc = 2;
    stream = rt_config_get (cmd.config, "stream");
    if (!retainctl_cmd_int (&cmd, "from", 1, INT64_MAX, &next) ||
        !retainctl_cmd_int (&cmd, "limit", 0, INT64_MAX, &max) ||
        !retainctl_cmd_bool (&cmd, "follow", &follow))
        goto cleanup;
    if (*stream && rt_bus_stream_index (stream) < 0) {
        fprintf (stderr, "%s: unknown stream \"%s\"\n", cmd.program, stream);
        goto cleanup;
    }
    rc = 1;
    if (!retainctl_cmd_connect (&cmd, RETAINCTL_DB_AS_IS))
        goto cleanup;
    for (;;) {
        PGresult *res;
        int r, n;
        snprintf (from, sizeof from, "%" PRId64, next);
        snprintf (limit, sizeof limit, "%d", 1000);
        res = retainctl_cmd_query (&cmd, s_sql_page, 3, (const char *[]){from, stream, limit});
        if (!res)
            goto cleanup;
        n = PQntuples (res);
        for (r = 0; r < n && (max == 0 || printed < max); r++, printed++) {
            s_print_row (res, r);
            next = strtoll (PQgetvalue (res, r, 0), NULL, 10) + 1;
        }
        PQclear (res);
        fflush (stdout);
        if (max > 0 && printed >= max)
            break;
        if (n == 1000)
            continue;
        if (!follow || rt_signal_sleep_ms (200))
            break;
    }
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}
