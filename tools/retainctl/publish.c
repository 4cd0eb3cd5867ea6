/*
 * retainctl publish: one event from JSON onto the bus, through the same
 * ingress door as any producer; prints busd's ack as JSON.
 *
 * The JSON becomes the type's protobuf message through its descriptor
 * (rt_pbjson), so every registered type works with no code here. With
 * CURVE, it presents the bus client's keys (rt_bus_client_settings: the
 * same settings, and the same variables, as every daemon's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "retainctl.h"
#include "rt_bus.h"
#include "rt_config.h"
#include "rt_pbjson.h"
#include "rt_producer.h"

static const rt_config_setting_t s_settings[] = {
    {"bus", "RETAIN_BUS_INGRESS", "tcp://127.0.0.1:7701",
     "busd ingress endpoint(s), comma-separated"},
    {"type", NULL, "", "event type, e.g. OrderPlaced (required)"},
    {"key", NULL, "", "partition key: customer, conversation or shipment id (required)"},
    {"json", NULL, "", "the payload as JSON (required); '-' reads it from stdin"},
    {"id", NULL, "", "envelope id (UUID); default a new UUIDv7. Reuse it to retry safely"},
    {"stream", NULL, "", "stream; default the type's own"},
    {"producer", NULL, "retainctl", "producer name recorded with the event"},
    {"correlation-id", NULL, "", "id of the event or request that caused this one"},
    {"timeout", NULL, "10s", "how long to wait for the ack"},
    {NULL, NULL, NULL, NULL}};

static char *
s_read_stdin (void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap);
    while (buf) {
        size_t n = fread (buf + len, 1, cap - len - 1, stdin);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            char *bigger = realloc (buf, cap * 2);
            if (!bigger) {
                free (buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

int
retainctl_publish (int argc, char **argv)
{
    char err[512];
    rt_config_t *config = rt_config_new (
        "retainctl publish", "Publish one event and wait until busd has committed it.", s_settings);
    rt_producer_t *producer = NULL;
    Retain__V1__Envelope *env = NULL;
    ProtobufCMessage *payload = NULL;
    json_t *json = NULL;
    char *text = NULL;
    const rt_bus_type_t *type;
    Retain__V1__Ack ack = RETAIN__V1__ACK__INIT;
    rt_bus_curve_t keys;
    json_error_t jerr;
    int64_t timeout_ms;
    int rc = 1;

    if (!config || rt_bus_client_declare (config) != 0)
        goto cleanup;
    if (!retainctl_parse (config, "retainctl publish", argc, argv, &rc))
        goto cleanup;
    /* The keys the producer presents to busd, when CURVE is on. */
    if (rt_bus_curve_read (config, &keys, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl publish: %s\n", err);
        rc = 2;
        goto cleanup;
    }
    if (!rt_config_get (config, "type")[0] || !rt_config_get (config, "key")[0] ||
        !rt_config_get (config, "json")[0]) {
        fprintf (stderr, "retainctl publish: --type, --key and --json are required\n");
        rc = 2;
        goto cleanup;
    }
    if (rt_config_get_ms (config, "timeout", &timeout_ms, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl publish: %s\n", err);
        rc = 2;
        goto cleanup;
    }
    type = rt_bus_type_find (rt_config_get (config, "type"));
    if (!type) {
        size_t n, i;
        const rt_bus_type_t *types = rt_bus_types (&n);
        fprintf (stderr,
                 "retainctl publish: unknown type \"%s\"; known:", rt_config_get (config, "type"));
        for (i = 0; i < n; i++)
            fprintf (stderr, " %s", types[i].type);
        fprintf (stderr, "\n");
        rc = 2;
        goto cleanup;
    }
    if (strcmp (rt_config_get (config, "json"), "-") == 0) {
        text = s_read_stdin ();
        json = text ? json_loads (text, 0, &jerr) : NULL;
    } else
        json = json_loads (rt_config_get (config, "json"), 0, &jerr);
    if (!json || !json_is_object (json)) {
        fprintf (stderr, "retainctl publish: --json is not a JSON object: %s\n",
                 json ? "not an object" : jerr.text);
        goto cleanup;
    }
    payload = rt_pbjson_parse (type->desc, json, err, sizeof err);
    if (!payload) {
        fprintf (stderr, "retainctl publish: %s: %s\n", type->type, err);
        goto cleanup;
    }
    env = rt_envelope_new (type->type, rt_config_get (config, "key"), payload,
                           rt_config_get (config, "producer"));
    if (!env)
        goto cleanup;
    if (rt_config_get (config, "id")[0]) {
        free (env->id);
        env->id = strdup (rt_config_get (config, "id"));
    }
    if (rt_config_get (config, "stream")[0]) {
        free (env->stream);
        env->stream = strdup (rt_config_get (config, "stream"));
    }
    free (env->correlation_id);
    env->correlation_id = strdup (rt_config_get (config, "correlation-id"));
    if (!env->id || !env->stream || !env->correlation_id)
        goto cleanup;
    /* Refused here with busd's own reasons, before anything is sent: a
     * type on another stream, text that is not UTF-8. */
    if (rt_envelope_check (env, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl publish: %s\n", err);
        rc = 2;
        goto cleanup;
    }
    producer = rt_producer_new (rt_config_get (config, "bus"), &keys, err, sizeof err);
    if (!producer) {
        fprintf (stderr, "retainctl publish: %s\n", err);
        goto cleanup;
    }
    if (rt_producer_send (producer, env, (int)timeout_ms, &ack, err, sizeof err) != 0) {
        fprintf (stderr, "retainctl publish: %s\n", err);
        goto cleanup;
    }
    printf ("{\"id\":\"%s\",\"status\":\"%s\",\"stream\":\"%s\",\"seq\":%llu,\"partition\":%u,"
            "\"pseq\":%llu}\n",
            env->id, ack.status == RETAIN__V1__ACK__STATUS__DUPLICATE ? "duplicate" : "ok",
            env->stream, (unsigned long long)ack.seq, ack.partition, (unsigned long long)ack.pseq);
    rc = 0;
cleanup:
    rt_producer_destroy (&producer);
    rt_envelope_free (env);
    if (payload)
        protobuf_c_message_free_unpacked (payload, NULL);
    json_decref (json);
    free (text);
    rt_config_destroy (&config);
    return rc;
}
