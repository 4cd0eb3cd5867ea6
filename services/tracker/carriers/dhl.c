/*
 * dhl: DHL's Shipment Tracking - Unified API, v1.5 (providers.md 1.4).
 *
 * Reads account->base_url ("https://api-eu.dhl.com"), api_key (the app's
 * consumer key) and language ("en", "de"; NULL: DHL's default). One
 * number a call: GET {base}/track/shipments?trackingNumber=<n>
 * [&service=<s>][&language=<l>] with the header DHL-API-Key, every query
 * value percent-encoded. The query's service goes with it whenever it is
 * known: without it DHL may answer with another service's shipment of the
 * same number. The key is a header, so log_url is the URL as it is.
 *
 * 200 is {"shipments": [...]}: the one whose service is the query's (any,
 * when the query has none; none of them: found = false, as it is another
 * parcel). status.statusCode (pre-transit, transit, delivered, failure,
 * unknown) is raw_code, status.status or description its words, and the
 * events (DHL lists them newest first) are reversed to oldest first. 404
 * is "no shipment with given tracking number found": found = false. 401
 * (an unknown key) and 403 stop the account; 429 ("too many requests
 * within defined time period", DHL's daily or per-second quota) waits for
 * Retry-After. Errors are RFC 7807 problems ({"title", "status",
 * "detail"}), whose words are kept.
 *
 * Timestamps are ISO 8601. Most carry their offset; one that does not (an
 * Express checkpoint's local time) is read as UTC, the error then being
 * the place's offset, which is better than dropping the event.
 */
#include "adapter.h"
#include "carrier.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const carrier_t carrier_dhl;

/* status.statusCode (providers.md 1.4: DHL's reference, the C# client's
 * StatusCodeType, karrio's dhl_universal mapping). */
static const carrier_code_t s_codes[] = {
    {"pre-transit", TAG_INFO_RECEIVED, "InfoReceived_001", false,
     "DHL has the shipment's data, not yet the shipment"},
    {"transit", TAG_IN_TRANSIT, "InTransit_001", false, "in transit"},
    {"delivered", TAG_DELIVERED, "Delivered_001", false, "delivered"},
    {"failure", TAG_EXCEPTION, "Exception_001", false, "a delivery problem"},
    {"unknown", TAG_PENDING, "Pending_001", false, "no status known"},
};

#define S_NUMBER_MIN 10
#define S_NUMBER_MAX 39

static int
s_number_check (const char *number, char *why, size_t whylen)
{
    if (adapter_number_fits (number, S_NUMBER_MIN, S_NUMBER_MAX, ""))
        return 0;
    snprintf (why, whylen,
              "DHL tracking numbers are %d to %d letters and digits (\"1234567890\", "
              "\"JJD000390007882799\")",
              S_NUMBER_MIN, S_NUMBER_MAX);
    return -1;
}

static int
s_build (const carrier_account_t *account, const carrier_query_t *queries, size_t n,
         carrier_request_t *out, char *err, size_t errlen)
{
    int base_len = 0;
    if (adapter_build_begin (&carrier_dhl, account, "API key", account->api_key, queries, n,
                             "number", &base_len, out, err, errlen) != 0)
        return -1;
    rt_buf_t query = {0};
    rt_buf_puts (&query, "trackingNumber=");
    rt_http_url_escape (&query, queries[0].tracking_number);
    if (queries[0].service && queries[0].service[0]) {
        rt_buf_puts (&query, "&service=");
        rt_http_url_escape (&query, queries[0].service);
    }
    if (account->language && account->language[0]) {
        rt_buf_puts (&query, "&language=");
        rt_http_url_escape (&query, account->language);
    }
    if (adapter_get (out, account, base_len, account->api_key, "/track/shipments?", &query, "") !=
            0 ||
        rt_http_outreq_header (out, "DHL-API-Key: %s", account->api_key) != 0)
        return adapter_build_oom (out, err, errlen);
    return 0;
}

/* obj.location.address.addressLocality, or obj.address.addressLocality
 * (origin and destination have no location level). */
static const char *
s_locality (const json_t *obj)
{
    const json_t *address = json_object_get (json_object_get (obj, "location"), "address");
    if (!address)
        address = json_object_get (obj, "address");
    return carrier_json_text (address, "addressLocality", NULL, 0);
}

/* An event's or a status's words: its description, else its status. */
static const char *
s_words (const json_t *obj)
{
    const char *text = carrier_json_text (obj, "description", NULL, 0);
    return text[0] ? text : carrier_json_text (obj, "status", NULL, 0);
}

/* The shipment of the query's service among shipments, NULL when none. */
static json_t *
s_pick (json_t *shipments, const carrier_query_t *q)
{
    for (size_t i = 0; i < json_array_size (shipments); i++) {
        json_t *s = json_array_get (shipments, i);
        if (!json_is_object (s))
            continue;
        if (!q->service || !q->service[0] ||
            strcmp (carrier_json_text (s, "service", NULL, 0), q->service) == 0)
            return s;
    }
    return NULL;
}

static void
s_shipment (json_t *s, carrier_result_t *r)
{
    json_t *status = json_object_get (s, "status");
    const char *code = carrier_json_text (status, "statusCode", NULL, 0);
    if (!code[0])
        return;
    r->found = true;
    carrier_str_set (&r->raw_code, code);
    carrier_str_set (&r->raw_text, s_words (status));
    carrier_str_set (&r->location, s_locality (status));
    r->status_at_ms = carrier_iso_ms (carrier_json_text (status, "timestamp", NULL, 0));
    r->estimated_ms = carrier_iso_ms (carrier_json_text (s, "estimatedTimeOfDelivery", NULL, 0));
    carrier_str_set (&r->origin_city, s_locality (json_object_get (s, "origin")));
    carrier_str_set (&r->destination_city, s_locality (json_object_get (s, "destination")));
    carrier_result_map (&carrier_dhl, r);

    json_t *events = json_object_get (s, "events");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size (events); i++)
        n += json_is_object (json_array_get (events, i));
    if (carrier_events_new (r, n) != 0) {
        free (r->raw_code);
        r->raw_code = NULL; /* out of memory: carrier_answer_settle makes it RETRY */
        return;
    }
    size_t k = n;
    for (size_t i = 0; i < json_array_size (events); i++) {
        json_t *ev = json_array_get (events, i);
        if (!json_is_object (ev))
            continue;
        carrier_event_t *e = &r->events[--k];
        const char *ev_code = carrier_json_text (ev, "statusCode", NULL, 0);
        carrier_str_set (&e->code,
                         ev_code[0] ? ev_code : carrier_json_text (ev, "status", NULL, 0));
        carrier_str_set (&e->text, s_words (ev));
        carrier_str_set (&e->location, s_locality (ev));
        e->at_ms = carrier_iso_ms (carrier_json_text (ev, "timestamp", NULL, 0));
    }
    if (r->mapped && r->tag == TAG_DELIVERED) {
        json_t *pod = json_object_get (json_object_get (s, "details"), "proofOfDelivery");
        r->delivered_ms = carrier_iso_ms (carrier_json_text (pod, "timestamp", NULL, 0));
        if (!r->delivered_ms)
            r->delivered_ms = r->status_at_ms;
    }
}

/* An RFC 7807 problem's words: detail, else title. */
static void
s_problem (const char *body, size_t len, char *words, size_t wordslen)
{
    json_t *doc = body && len ? json_loadb (body, len, JSON_DECODE_INT_AS_REAL, NULL) : NULL;
    const char *text = carrier_json_text (doc, "detail", NULL, 0);
    if (!text[0])
        text = carrier_json_text (doc, "title", NULL, 0);
    snprintf (words, wordslen, "%s", text);
    json_decref (doc);
}

static void
s_parse (const carrier_query_t *queries, size_t n, int status, int64_t retry_after_ms,
         const char *body, size_t len, carrier_answer_t *out)
{
    char words[CARRIER_REASON_MAX], code[16];
    if (adapter_parse_begin (&carrier_dhl, n, status, retry_after_ms, out))
        return;
    snprintf (code, sizeof code, "%d", status);
    if (status == 404) {
        adapter_not_found (out, n);
        return;
    }
    if (status >= 400) {
        s_problem (body, len, words, sizeof words);
        carrier_set (out,
                     status == 401 || status == 403 ? CARRIER_STOP_ACCOUNT : CARRIER_BAD_REQUEST,
                     code, "%s (HTTP %d)", words[0] ? words : "DHL refused the call", status);
        return;
    }
    json_t *doc = carrier_json (status, body, len, out);
    if (!doc)
        return;
    json_t *shipments = json_object_get (doc, "shipments");
    if (!json_is_array (shipments)) {
        carrier_unexpected (out, status, "no shipments array");
    } else if (carrier_results_new (out, n) == 0) {
        for (size_t i = 0; i < n; i++) {
            json_t *s = s_pick (shipments, &queries[i]);
            if (s)
                s_shipment (s, &out->results[i]);
        }
    }
    json_decref (doc);
    carrier_answer_settle (out);
}

const carrier_t carrier_dhl = {
    .name = "dhl",
    .display = "DHL",
    .api_env = "RETAIN_TRACKER_DHL_API",
    .api_default = "https://api-eu.dhl.com",
    .batch_max = 1,
    /* The entry tier (providers.md 1.4): 1 call a second, 250 a day, and
     * DHL asks for at most 10 fetches of one shipment a day. */
    .min_interval_ms = 1000,
    .daily_quota = 250,
    .per_parcel_day = 10,
    ADAPTER_CODES (s_codes),
    .number_check = s_number_check,
    .build = s_build,
    .parse = s_parse,
};
