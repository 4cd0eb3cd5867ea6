/*
 * meest: Meest's openAPI v3.0 tracking of one parcel (providers.md 1.3).
 *
 * Reads account->base_url ("https://api.meest.com/v3.0/openAPI") and
 * api_key (the token Meest's /auth gave for the contract's login). One
 * parcel a call: GET {base}/tracking/{number} with the header
 * "token: <token>"; the number goes into the path percent-encoded, and
 * log_url is the URL (the token is a header).
 *
 * The answer is {"status": "OK" | "Error", "info": ..., "result": [event,
 * ...]}, each event {eventDateTime, eventCode, eventDescr: {descrUA, ...},
 * eventCityDescr: {descrUA}, ...}. The events are the whole history; the
 * latest by eventDateTime (the last listed on a tie) is the current
 * status, and events[] is filled oldest first, whatever order Meest sent.
 * eventCode comes as a number or a string; raw_code is its text. An empty
 * result, or HTTP 404, is found = false. status "Error" is a refusal: of
 * the token (401, 403, or info naming the field "token": the account
 * stops) or of the request (a bad request, info's words kept). Times are
 * read as Kyiv wall-clock, as Meest is a Ukrainian carrier and writes them
 * without a zone (carrier_kyiv_ms; unconfirmed by a source).
 */
#include "adapter.h"
#include "carrier.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const carrier_t carrier_meest;

/* The codes one integrator names (providers.md 1.3): 1622 is delivered,
 * 2 the waybill created; 1825, 3 and 5700 end its polling but their
 * meaning is not confirmed anywhere, so they are an exception (a person
 * looks, polling goes on) rather than a "delivered" a customer would be
 * told. */
static const carrier_code_t s_codes[] = {
    {"2", TAG_INFO_RECEIVED, "InfoReceived_001", false, "waybill created (unconfirmed)"},
    {"1622", TAG_DELIVERED, "Delivered_001", false, "delivered"},
    {"1825", TAG_EXCEPTION, "Exception_001", false,
     "final for one integrator, meaning unconfirmed"},
    {"3", TAG_EXCEPTION, "Exception_001", false, "final for one integrator, meaning unconfirmed"},
    {"5700", TAG_EXCEPTION, "Exception_001", false,
     "final for one integrator, meaning unconfirmed"},
};

#define S_NUMBER_MIN 8
#define S_NUMBER_MAX 20

static int
s_number_check (const char *number, char *why, size_t whylen)
{
    if (adapter_number_fits (number, S_NUMBER_MIN, S_NUMBER_MAX, "-"))
        return 0;
    snprintf (why, whylen,
              "Meest numbers are %d to %d letters, digits and dashes (\"722-12345678\")",
              S_NUMBER_MIN, S_NUMBER_MAX);
    return -1;
}

static int
s_build (const carrier_account_t *account, const carrier_query_t *queries, size_t n,
         carrier_request_t *out, char *err, size_t errlen)
{
    int base_len = 0;
    if (adapter_build_begin (&carrier_meest, account, "token", account->api_key, queries, n,
                             "parcel", &base_len, out, err, errlen) != 0)
        return -1;
    rt_buf_t number = {0};
    rt_http_url_escape (&number, queries[0].tracking_number);
    if (adapter_get (out, account, base_len, account->api_key, "/tracking/", &number, "") != 0 ||
        rt_http_outreq_header (out, "token: %s", account->api_key) != 0)
        return adapter_build_oom (out, err, errlen);
    return 0;
}

/* obj[key].descrUA, "" when absent. */
static const char *
s_ua (const json_t *obj, const char *key)
{
    return carrier_json_text (json_object_get (obj, key), "descrUA", NULL, 0);
}

/* info's words and field (info is an object {fieldName, message,
 * messageDetails} or a string, with the same fields beside it). */
static void
s_info (json_t *doc, const char **field, const char **message)
{
    json_t *info = json_object_get (doc, "info");
    json_t *holder = json_is_object (info) ? info : doc;
    *field = carrier_json_text (holder, "fieldName", NULL, 0);
    *message = carrier_json_text (holder, "message", NULL, 0);
    if (!(*message)[0])
        *message = carrier_json_text (holder, "messageDetails", NULL, 0);
    if (!(*message)[0] && json_is_string (info))
        *message = json_string_value (info);
}

/* One event and its instant, to sort by. */
typedef struct {
    json_t *ev;    /* lent by the answer */
    int64_t at;    /* eventDateTime, 0 when unreadable */
    size_t listed; /* its place in result[], so that ties keep Meest's order */
} s_dated_t;

static int
s_by_time (const void *a, const void *b)
{
    const s_dated_t *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->listed < y->listed ? -1 : x->listed > y->listed;
}

static void
s_history (int status, json_t *result, carrier_answer_t *out)
{
    size_t n = json_array_size (result);
    for (size_t i = 0; i < n; i++) {
        if (!json_is_object (json_array_get (result, i))) {
            carrier_unexpected (out, status, "an event of result[] is not an object");
            return;
        }
    }
    if (carrier_results_new (out, 1) != 0 || n == 0)
        return;
    s_dated_t *dated = calloc (n, sizeof *dated);
    carrier_result_t *r = &out->results[0];
    if (!dated || carrier_events_new (r, n) != 0) {
        free (dated);
        carrier_set (out, CARRIER_RETRY, NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_array_get (result, i);
        dated[i] =
            (s_dated_t){ev, carrier_kyiv_ms (carrier_json_text (ev, "eventDateTime", NULL, 0)), i};
    }
    qsort (dated, n, sizeof *dated, s_by_time);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        carrier_event_t *e = &r->events[i];
        carrier_str_set (&e->code, carrier_json_text (dated[i].ev, "eventCode", buf, sizeof buf));
        carrier_str_set (&e->text, s_ua (dated[i].ev, "eventDescr"));
        carrier_str_set (&e->location, s_ua (dated[i].ev, "eventCityDescr"));
        e->at_ms = dated[i].at;
    }
    const carrier_event_t *last = &r->events[n - 1];
    r->found = true;
    carrier_str_set (&r->raw_code, last->code);
    carrier_str_set (&r->raw_text, last->text);
    carrier_str_set (&r->location, last->location);
    r->status_at_ms = last->at_ms;
    carrier_result_map (&carrier_meest, r);
    if (r->mapped && r->tag == TAG_DELIVERED)
        r->delivered_ms = last->at_ms;
    free (dated);
}

/* A 4xx other than 404: the token refused (401, 403) or the request. */
static void
s_refused (int status, const char *body, size_t len, carrier_answer_t *out)
{
    json_t *doc = body && len ? json_loadb (body, len, JSON_DECODE_INT_AS_REAL, NULL) : NULL;
    const char *field = "", *message = "";
    char code[16];
    s_info (doc, &field, &message);
    snprintf (code, sizeof code, "%d", status);
    if (status == 401 || status == 403)
        carrier_set (out, CARRIER_STOP_ACCOUNT, code, "the token is refused (HTTP %d)%s%s", status,
                     message[0] ? ": " : "", message);
    else
        carrier_set (out, CARRIER_BAD_REQUEST, code, "Meest refused the call (HTTP %d)%s%s", status,
                     message[0] ? ": " : "", message);
    json_decref (doc);
}

static void
s_parse (const carrier_query_t *queries, size_t n, int status, int64_t retry_after_ms,
         const char *body, size_t len, carrier_answer_t *out)
{
    (void)queries;
    if (adapter_parse_begin (&carrier_meest, n, status, retry_after_ms, out))
        return;
    if (status == 404) {
        adapter_not_found (out, 1);
        return;
    }
    if (status >= 400) {
        s_refused (status, body, len, out);
        return;
    }
    json_t *doc = carrier_json (status, body, len, out);
    if (!doc)
        return;
    const char *verdict = carrier_json_text (doc, "status", NULL, 0);
    const char *field = "", *message = "";
    json_t *result = json_object_get (doc, "result");
    s_info (doc, &field, &message);
    if (!json_is_object (doc)) {
        carrier_unexpected (out, status, "the answer is not an object");
    } else if (verdict[0] && strcasecmp (verdict, "OK") != 0) {
        /* An "Error" on 200: a token Meest no longer takes names the
         * field "token". */
        bool token = strcasecmp (field, "token") == 0;
        carrier_set (out, token ? CARRIER_STOP_ACCOUNT : CARRIER_BAD_REQUEST, field,
                     "Meest refused the call%s%s", message[0] ? ": " : "", message);
    } else if (!result || json_is_null (result)) {
        carrier_results_new (out, 1); /* nothing known of it yet */
    } else if (!json_is_array (result)) {
        carrier_unexpected (out, status, "result is not an array");
    } else {
        s_history (status, result, out);
    }
    json_decref (doc);
    carrier_answer_settle (out);
}

const carrier_t carrier_meest = {
    .name = "meest",
    .display = "Meest",
    .api_env = "RETAIN_TRACKER_MEEST_API",
    .api_default = "https://api.meest.com/v3.0/openAPI",
    .batch_max = 1,
    ADAPTER_CODES (s_codes),
    .number_check = s_number_check,
    .build = s_build,
    .parse = s_parse,
};
