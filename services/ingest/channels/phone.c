/*
 * phone: call events from the shop's PBX.
 *
 *   POST /hooks/phone/{inbox}
 *   {"call_id": "...", "event": "started|answered|missed|ended|recording",
 *    "direction": "inbound|outbound", "from": "+380...", "to": "...",
 *    "operator": "ext 101", "duration_s": 65, "recording_url": "...",
 *    "timestamp": unix seconds or ms}
 *
 * Authentication, with the inbox secret (or the previous one during a
 * rotation): X-Retain-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
 * is preferred, since it also proves the body was not changed; a PBX that
 * can only add a fixed header sends X-Retain-Secret: <secret> instead, which
 * is compared in constant time. When a signature is present it decides:
 * a wrong one is not rescued by a right shared secret.
 *
 * Each event is one InboundMessage with event "call_<event>" and the call in
 * `call`; external id "<call_id>:<event>", so the PBX's retry is a duplicate
 * while each step of a call is kept. The customer is the far end: the caller
 * of an inbound call, the called number of an outbound one. A missed inbound
 * call carries the text "Missed call from <number>: please call back", so it
 * lands in the operators' queue like a message that awaits an answer; an
 * outbound call the customer did not pick up asks nothing of them.
 */
#include "channel.h"
#include "formdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_crypto.h"

/* Timestamps below this are seconds, above it milliseconds: 1e11 seconds is
 * the year 5138, 1e11 milliseconds is March 1973. */
#define PHONE_MS_THRESHOLD 100000000000.0

static const char *s_events[] = {"started", "answered", "missed", "ended", "recording"};

/* Checks the request's credentials; 0 or -1 with 401/403 set. Empty
 * secrets never verify: previous_secret is "" when there is none. */
static int
s_authenticate (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    const char *secrets[2] = {inbox->secret, inbox->previous_secret};
    const char *sig = ingest_header (req, "X-Retain-Signature");
    const char *shared = ingest_header (req, "X-Retain-Secret");
    bool ok = false;
    int i;

    if (sig && sig[0]) {
        uint8_t want[RT_SHA256_LEN], mac[RT_SHA256_LEN];
        if (strncasecmp (sig, "sha256=", 7) != 0 ||
            rt_hex_decode (sig + 7, strlen (sig + 7), want, sizeof want) != RT_SHA256_LEN)
            return ingest_fail (result, 403, "bad_signature",
                                "X-Retain-Signature is not sha256=<64 hex digits>");
        for (i = 0; i < 2; i++) {
            if (!secrets[i] || !secrets[i][0])
                continue;
            rt_hmac_sha256 (secrets[i], strlen (secrets[i]), req->body, req->body_len, mac);
            if (rt_ct_equal (mac, sizeof mac, want, sizeof want))
                ok = true;
        }
        if (!ok)
            return ingest_fail (result, 403, "bad_signature",
                                "X-Retain-Signature does not match the body");
        return 0;
    }
    if (shared && shared[0]) {
        for (i = 0; i < 2; i++) {
            if (secrets[i] && secrets[i][0] &&
                rt_ct_equal (shared, strlen (shared), secrets[i], strlen (secrets[i])))
                ok = true;
        }
        if (!ok)
            return ingest_fail (result, 403, "bad_signature", "X-Retain-Secret does not match");
        return 0;
    }
    return ingest_fail (result, 401, "missing_signature",
                        "neither X-Retain-Signature nor X-Retain-Secret is present");
}

/* An optional string member: "" when absent or null, -1 (failed) when of
 * another type. */
static int
s_string (const json_t *obj, const char *key, const char **out, ingest_result_t *result)
{
    json_t *v = json_object_get (obj, key);
    *out = "";
    if (!v || json_is_null (v))
        return 0;
    if (!json_is_string (v))
        return ingest_fail (result, 400, "malformed", "%s is not a string", key);
    *out = json_string_value (v);
    return 1;
}

/* An optional non-negative number no larger than max; -1 when absent. */
static int
s_number (const json_t *obj, const char *key, double max, double *out, ingest_result_t *result)
{
    json_t *v = json_object_get (obj, key);
    *out = -1;
    if (!v || json_is_null (v))
        return 0;
    if (!json_is_number (v))
        return ingest_fail (result, 400, "malformed", "%s is not a number", key);
    *out = json_number_value (v);
    if (!(*out >= 0 && *out <= max))
        return ingest_fail (result, 400, "malformed", "%s is out of range", key);
    return 1;
}

/* x rounded to the nearest integer; x is non-negative and bounded by the
 * range checks, so the conversion cannot overflow. */
static int64_t
s_round (double x)
{
    return (int64_t)(x + 0.5);
}

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* A CallInfo with every string our own, for free_unpacked. */
static Retain__V1__CallInfo *
s_call_new (const char *call_id, const char *direction, const char *from, const char *to,
            const char *recording_url, const char *operator_id, int64_t duration_ms)
{
    Retain__V1__CallInfo *c = malloc (sizeof *c);
    if (!c)
        return NULL;
    retain__v1__call_info__init (c);
    c->call_id = strdup (call_id);
    c->direction = strdup (direction);
    c->from = strdup (from);
    c->to = strdup (to);
    c->recording_url = strdup (recording_url);
    c->operator_id = strdup (operator_id);
    if (!c->call_id || !c->direction || !c->from || !c->to || !c->recording_url ||
        !c->operator_id) {
        protobuf_c_message_free_unpacked (&c->base, NULL);
        return NULL;
    }
    c->duration_ms = duration_ms;
    return c;
}

int
phone_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = NULL;
    json_t *root = NULL, *v;
    json_error_t jerr;
    const char *event = NULL, *direction, *from, *to, *operator_id, *recording_url, *customer;
    char call_id[160], number[64], event_name[32], *ext = NULL, *text = NULL;
    double duration_s, ts;
    bool outbound;
    size_t i;
    int rc = -1;

    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed", "%s not allowed: events are POSTed",
                            req->method);
    if (!formdata_is_type (ingest_header (req, "Content-Type"), "application/json"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type must be application/json");
    if (s_authenticate (inbox, req, result) != 0)
        return -1;

    root = json_loadb ((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ingest_fail (result, 400, "malformed", "body is not JSON: %s (line %d, column %d)",
                            jerr.text, jerr.line, jerr.column);
    if (!json_is_object (root)) {
        ingest_fail (result, 400, "malformed", "body is not a JSON object");
        goto cleanup;
    }

    /* PBXs name calls with strings ("1700000000.42") or numbers. */
    v = json_object_get (root, "call_id");
    if (json_is_integer (v))
        snprintf (call_id, sizeof call_id, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
    else if (json_is_string (v) && json_string_length (v) > 0 &&
             json_string_length (v) < sizeof call_id)
        snprintf (call_id, sizeof call_id, "%s", json_string_value (v));
    else {
        ingest_fail (result, 400, "malformed",
                     !v ? "call_id missing" : "call_id is not a string of 1 to %zu bytes",
                     sizeof call_id - 1);
        goto cleanup;
    }

    v = json_object_get (root, "event");
    if (!v || json_is_null (v)) {
        ingest_fail (result, 400, "malformed", "event missing");
        goto cleanup;
    }
    if (!json_is_string (v)) {
        ingest_fail (result, 400, "malformed", "event is not a string");
        goto cleanup;
    }
    for (i = 0; i < sizeof s_events / sizeof s_events[0]; i++) {
        if (strcmp (json_string_value (v), s_events[i]) == 0)
            event = s_events[i];
    }
    if (!event) {
        ingest_fail (result, 400, "malformed",
                     "unknown event \"%.40s\": expected started, answered, missed, ended or "
                     "recording",
                     json_string_value (v));
        goto cleanup;
    }

    if (s_string (root, "direction", &direction, result) < 0 ||
        s_string (root, "from", &from, result) < 0 || s_string (root, "to", &to, result) < 0 ||
        s_string (root, "operator", &operator_id, result) < 0 ||
        s_string (root, "recording_url", &recording_url, result) < 0 ||
        s_number (root, "duration_s", 1e7, &duration_s, result) < 0 ||
        s_number (root, "timestamp", 1e14, &ts, result) < 0)
        goto cleanup;
    if (direction[0] && strcmp (direction, "inbound") != 0 && strcmp (direction, "outbound") != 0) {
        ingest_fail (result, 400, "malformed", "direction is neither inbound nor outbound");
        goto cleanup;
    }
    outbound = strcmp (direction, "outbound") == 0;
    customer = outbound ? to : from;
    if (!customer[0]) {
        ingest_fail (result, 400, "malformed", "%s missing: who the customer is",
                     outbound ? "to" : "from");
        goto cleanup;
    }
    if (strcmp (event, "recording") == 0 && !recording_url[0]) {
        ingest_fail (result, 400, "malformed", "recording_url missing for a recording event");
        goto cleanup;
    }
    /* E.164 when it reads as a number (a national one in the inbox's
     * country), else as the PBX gave it (an extension, a withheld caller). */
    {
        char e164[RT_PHONE_E164_MAX + 1];
        snprintf (number, sizeof number, "%s",
                  ingest_phone (inbox, customer, NULL, e164) ? e164 : customer);
    }
    snprintf (event_name, sizeof event_name, "call_%s", event);

    msg = ingest_inbound_new (inbox);
    if (!msg || asprintf (&ext, "%s:%s", call_id, event) < 0) {
        ext = NULL;
        goto oom;
    }
    msg->call = s_call_new (call_id, direction, from, to, recording_url, operator_id,
                            duration_s > 0 ? s_round (duration_s * 1000) : 0);
    if (!msg->call || ingest_set (&msg->external_id, ext) != 0 ||
        ingest_set (&msg->external_user_id, number) != 0 || ingest_set (&msg->phone, number) != 0 ||
        ingest_set (&msg->thread_id, call_id) != 0 || ingest_set (&msg->event, event_name) != 0)
        goto oom;
    if (strcmp (event, "missed") == 0 && !outbound) {
        if (asprintf (&text, "Missed call from %s: please call back", number) < 0) {
            text = NULL;
            goto oom;
        }
        if (ingest_set (&msg->text, text) != 0)
            goto oom;
    }
    if (ts < 0)
        msg->sent_at = req->now_ms;
    else
        msg->sent_at = s_round (ts < PHONE_MS_THRESHOLD ? ts * 1000 : ts);

    rc = ingest_item_add (result, "InboundMessage", ext, &msg->base,
                          ingest_channel_name (inbox->channel), inbox->id, number);
    msg = NULL; /* the result's now, or freed */
    if (rc != 0)
        s_oom (result);
    goto cleanup;
oom:
    s_oom (result);
cleanup:
    free (text);
    free (ext);
    if (msg)
        protobuf_c_message_free_unpacked (&msg->base, NULL);
    json_decref (root);
    return rc;
}
