/*
 * ups: UPS's Track API v1, behind OAuth 2.0 client credentials
 * (providers.md 1.5).
 *
 * Reads account->base_url ("https://onlinetools.ups.com"; the sandbox is
 * "https://wwwcie.ups.com"), client_id and client_secret (for the token)
 * and access_token (the cached bearer, for tracking).
 *
 * The token: POST {base}/security/v1/oauth/token, Content-Type
 * application/x-www-form-urlencoded, body grant_type=client_credentials,
 * the client id and secret as Authorization: Basic. 200 is {access_token,
 * token_type: "Bearer", expires_in} with expires_in in seconds (14400, four
 * hours; sometimes a string). A refused client (401, 403) stops the
 * account; 400 is a bad request.
 *
 * Tracking, one number a call: GET {base}/api/track/v1/details/{number}
 * ?locale=en_US&returnSignature=false&returnMilestones=false&returnPOD=false
 * with Authorization: Bearer, transId (unique per request, at most 32
 * characters: the query's trans_id without its dashes, so that a UUID
 * fits) and transactionSrc: retain. In the answer's trackResponse.shipment[0],
 * the package of the queried number (else the first) holds currentStatus
 * {type, code, description}, deliveryDate [{type: SDD scheduled | RDD
 * rescheduled | DEL delivered, date YYYYMMDD}], deliveryTime {type DEL,
 * endTime} and activity[] (newest first: reversed into events, oldest
 * first), each {status {type, code, description}, date YYYYMMDD, time
 * HHMMSS, gmtDate, gmtTime, gmtOffset, location.address.city}. The
 * delivery's instant is its "D" activity's, else the DEL date at
 * deliveryTime's end. raw_code is currentStatus.type (the table is
 * keyed by the type letters: the numeric code is overloaded). 401 is
 * STOP_ACCOUNT with code "401", which the poller reads as a token to drop
 * and ask again for, once; a 404, or errors or warnings saying the number
 * is not found, are found = false. Errors are {"response": {"errors":
 * [{"code", "message"}]}}.
 *
 * An activity's date and time are the scan place's local time, without a
 * zone; its gmtDate and gmtTime (UPS-API Tracking.yaml) are the same
 * instant in UTC and are read first, then date and time less gmtOffset.
 * Without either (and for deliveryDate's dates, which are dates alone) the
 * local time is read as UTC, off by the place's offset at most.
 */
#include "adapter.h"
#include "carrier.h"

#include "rt_civil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const carrier_t carrier_ups;

/* status.type (providers.md 1.5: many clients agree). */
static const carrier_code_t s_codes[] = {
    {"D", TAG_DELIVERED, "Delivered_001", false, "delivered"},
    {"I", TAG_IN_TRANSIT, "InTransit_001", false, "in transit"},
    {"M", TAG_INFO_RECEIVED, "InfoReceived_001", false,
     "billing information received (the label, not yet the parcel)"},
    {"MV", TAG_EXCEPTION, "Exception_001", false, "billing information voided"},
    {"P", TAG_IN_TRANSIT, "InTransit_001", false, "picked up"},
    {"X", TAG_EXCEPTION, "Exception_001", false, "exception"},
    {"RS", TAG_EXCEPTION, "Exception_011", true, "returned to shipper"},
    /* Freight: a container freight station is a step, not the consignee. */
    {"DO", TAG_IN_TRANSIT, "InTransit_001", false, "delivered to the origin CFS (freight)"},
    {"DD", TAG_IN_TRANSIT, "InTransit_001", false, "delivered to the destination CFS (freight)"},
    {"W", TAG_IN_TRANSIT, "InTransit_001", false, "warehousing (freight)"},
    {"NA", TAG_PENDING, "Pending_001", false, "not available"},
    {"O", TAG_OUT_FOR_DELIVERY, "OutForDelivery_001", false, "out for delivery"},
};

/* transId's length at most (UPS's Track API). */
#define S_TRANS_MAX 32

/* The token's lifetime when the answer gives none it can be read by, and
 * the bounds one it gives is held to, in seconds. */
#define S_TOKEN_DEFAULT_S 3600
#define S_TOKEN_MIN_S     60
#define S_TOKEN_MAX_S     86400

/* The value of a 1Z number's character for its check digit: a digit
 * itself, a letter (ord - 63) mod 10 (A = 2, ..., Z = 7). */
static int
s_1z_value (char c)
{
    c = (char)toupper ((unsigned char)c);
    return isdigit ((unsigned char)c) ? c - '0' : (c - 63) % 10;
}

static int
s_number_check (const char *number, char *why, size_t whylen)
{
    size_t n = number ? strlen (number) : 0;
    bool alnum = n > 0;
    for (size_t i = 0; alnum && i < n; i++)
        alnum = isalnum ((unsigned char)number[i]) != 0;
    if (alnum && n >= 2 && strncasecmp (number, "1Z", 2) == 0) {
        /* 1Z, 6 shipper, 2 service, 7 package, 1 check: the odd places
         * (1-based, after 1Z) once, the even ones twice. */
        if (n != 18) {
            snprintf (why, whylen, "UPS 1Z numbers are 18 characters (\"1Z999AA10123456784\")");
            return -1;
        }
        int sum = 0;
        for (size_t i = 0; i < 15; i++)
            sum += s_1z_value (number[2 + i]) * (i % 2 ? 2 : 1);
        int check = (10 - sum % 10) % 10;
        if (!isdigit ((unsigned char)number[17]) || number[17] - '0' != check) {
            snprintf (why, whylen, "the check digit of this UPS 1Z number is %d, not %c", check,
                      number[17]);
            return -1;
        }
        return 0;
    }
    /* Other inquiry numbers (freight PROs, Mail Innovations, InfoNotice)
     * have forms of their own: bounded, alphanumeric. */
    if (alnum && n >= 7 && n <= 34)
        return 0;
    snprintf (why, whylen,
              "UPS tracking numbers are 1Z and 16 letters or digits (\"1Z999AA10123456784\"), "
              "or 7 to 34 letters and digits");
    return -1;
}

static int
s_build_token (const carrier_account_t *account, carrier_request_t *out, char *err, size_t errlen)
{
    int base_len = 0;
    memset (out, 0, sizeof *out);
    if (carrier_check_base (&carrier_ups, account, &base_len, err, errlen) != 0 ||
        carrier_check_secret (&carrier_ups, "client id", account->client_id, err, errlen) != 0 ||
        carrier_check_secret (&carrier_ups, "client secret", account->client_secret, err, errlen) !=
            0)
        return -1;
    out->method = "POST";
    out->body = strdup ("grant_type=client_credentials");
    if (!out->body ||
        rt_http_outreq_url (out, account->client_secret, "%.*s/security/v1/oauth/token", base_len,
                            account->base_url) != 0 ||
        rt_http_outreq_header (out, "Content-Type: application/x-www-form-urlencoded") != 0 ||
        rt_http_outreq_basic_auth (out, account->client_id, account->client_secret) != 0)
        return adapter_build_oom (out, err, errlen);
    out->body_len = strlen (out->body);
    return 0;
}

/* The first of UPS's errors ({"response": {"errors": [{"code",
 * "message"}]}}) into code and words; "" when none. */
static void
s_errors (json_t *doc, char *code, size_t codelen, char *words, size_t wordslen)
{
    json_t *errors = json_object_get (json_object_get (doc, "response"), "errors");
    json_t *first = json_array_get (errors, 0);
    char buf[32];
    snprintf (code, codelen, "%s", carrier_json_text (first, "code", buf, sizeof buf));
    snprintf (words, wordslen, "%s", carrier_json_text (first, "message", NULL, 0));
}

/* A JSON body (NULL when there is none to read). */
static json_t *
s_load (const char *body, size_t len)
{
    return body && len ? json_loadb (body, len, JSON_DECODE_INT_AS_REAL, NULL) : NULL;
}

/* expires_in in seconds, bounded; the default when unreadable. */
static int64_t
s_expires_s (json_t *doc)
{
    json_t *v = json_object_get (doc, "expires_in");
    double s = -1;
    if (json_is_number (v)) {
        s = json_number_value (v);
    } else if (json_is_string (v)) {
        char *end = NULL;
        s = strtod (json_string_value (v), &end);
        if (end == json_string_value (v) || *end != '\0')
            s = -1;
    }
    if (!(s >= 0)) /* NaN included */
        return S_TOKEN_DEFAULT_S;
    if (s < S_TOKEN_MIN_S)
        return S_TOKEN_MIN_S;
    if (s > S_TOKEN_MAX_S)
        return S_TOKEN_MAX_S;
    return (int64_t)s;
}

static int
s_parse_token (int status, int64_t retry_after_ms, const char *body, size_t len, char **token,
               int64_t *expires_ms, carrier_answer_t *out)
{
    char code[CARRIER_CODE_MAX], words[CARRIER_REASON_MAX];
    memset (out, 0, sizeof *out);
    *token = NULL;
    *expires_ms = 0;
    if (carrier_http_failed (status, retry_after_ms, out))
        return -1;
    if (status >= 400) {
        json_t *doc = s_load (body, len);
        s_errors (doc, code, sizeof code, words, sizeof words);
        json_decref (doc);
        /* UPS's own code ("10401" for a client id it does not know): a
         * token call's refusal pauses the account whatever its code. */
        if (!code[0])
            snprintf (code, sizeof code, "%d", status);
        carrier_set (out,
                     status == 401 || status == 403 ? CARRIER_STOP_ACCOUNT : CARRIER_BAD_REQUEST,
                     code, "UPS refused the client credentials (HTTP %d)%s%s", status,
                     words[0] ? ": " : "", words);
        return -1;
    }
    json_t *doc = carrier_json (status, body, len, out);
    if (!doc)
        return -1;
    const char *access = carrier_json_text (doc, "access_token", NULL, 0);
    const char *type = carrier_json_text (doc, "token_type", NULL, 0);
    int rc = -1;
    if (!access[0]) {
        carrier_unexpected (out, status, "no access_token");
    } else if (type[0] && strcasecmp (type, "Bearer") != 0) {
        carrier_unexpected (out, status, "a token_type other than Bearer");
    } else {
        *token = strdup (access);
        if (!*token) {
            carrier_set (out, CARRIER_RETRY, NULL, "out of memory");
        } else {
            *expires_ms = s_expires_s (doc) * 1000;
            out->verdict = CARRIER_OK;
            rc = 0;
        }
    }
    json_decref (doc);
    return rc;
}

/* trans_id's letters and digits, at most S_TRANS_MAX, into out; the
 * tracking number's when it has none. */
static void
s_trans_id (const carrier_query_t *q, char *out, size_t outlen)
{
    size_t n = 0;
    const char *src = q->trans_id && q->trans_id[0] ? q->trans_id : q->tracking_number;
    for (const char *p = src; *p && n + 1 < outlen && n < S_TRANS_MAX; p++)
        if (isalnum ((unsigned char)*p))
            out[n++] = *p;
    out[n] = '\0';
}

static int
s_build (const carrier_account_t *account, const carrier_query_t *queries, size_t n,
         carrier_request_t *out, char *err, size_t errlen)
{
    int base_len = 0;
    if (adapter_build_begin (&carrier_ups, account, "access token", account->access_token, queries,
                             n, "number", &base_len, out, err, errlen) != 0)
        return -1;
    char trans[S_TRANS_MAX + 1];
    s_trans_id (&queries[0], trans, sizeof trans);
    rt_buf_t number = {0};
    rt_http_url_escape (&number, queries[0].tracking_number);
    if (adapter_get (out, account, base_len, account->access_token, "/api/track/v1/details/",
                     &number,
                     "?locale=en_US&returnSignature=false&returnMilestones=false"
                     "&returnPOD=false") != 0 ||
        rt_http_outreq_header (out, "Authorization: Bearer %s", account->access_token) != 0 ||
        rt_http_outreq_header (out, "transId: %s", trans) != 0 ||
        rt_http_outreq_header (out, "transactionSrc: retain") != 0)
        return adapter_build_oom (out, err, errlen);
    return 0;
}

/* Reads exactly n digits at s into *v; false when they are not there. */
static bool
s_fixed (const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit ((unsigned char)s[i]))
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* "HHMMSS" or "HH:MM:SS" into seconds of the day; -1 when it is neither. */
static int
s_clock (const char *time)
{
    int h, mi, s;
    size_t n = strlen (time);
    bool colons = n == 8 && time[2] == ':' && time[5] == ':';
    if (!(n == 6 || colons) || !s_fixed (time, 2, &h) ||
        !s_fixed (time + (colons ? 3 : 2), 2, &mi) || !s_fixed (time + (colons ? 6 : 4), 2, &s) ||
        h > 23 || mi > 59 || s > 59)
        return -1;
    return h * 3600 + mi * 60 + s;
}

/* UPS's "YYYYMMDD" and a time of day ("": the date's midnight) in unix ms
 * as UTC; 0 when they are not a date and a time. */
static int64_t
s_when (const char *date, const char *time)
{
    int y, mo, d, secs = 0;
    if (strlen (date) != 8 || !s_fixed (date, 4, &y) || !s_fixed (date + 4, 2, &mo) ||
        !s_fixed (date + 6, 2, &d) || !rt_civil_valid (y, mo, d) || y < 1971)
        return 0;
    if (time[0])
        secs = s_clock (time);
    if (secs < 0)
        return 0;
    return (rt_civil_days (y, mo, d) * 86400 + secs) * 1000;
}

/* "+03:00" or "-0500" in seconds east of UTC into *off_s; false when it is
 * not an offset. */
static bool
s_offset (const char *text, int *off_s)
{
    int h, m;
    size_t n = strlen (text);
    if ((text[0] != '+' && text[0] != '-') || !(n == 6 || n == 5) || !s_fixed (text + 1, 2, &h) ||
        (n == 6 && text[3] != ':') || !s_fixed (text + n - 2, 2, &m) || h > 18 || m > 59)
        return false;
    *off_s = (text[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return true;
}

/* An activity's instant: gmtDate and gmtTime, else date and time less
 * gmtOffset, else date and time as UTC. */
static int64_t
s_activity_at (const json_t *a)
{
    int64_t at = s_when (carrier_json_text (a, "gmtDate", NULL, 0),
                         carrier_json_text (a, "gmtTime", NULL, 0));
    const char *time = carrier_json_text (a, "time", NULL, 0);
    if (at || !time[0])
        return at ? at : s_when (carrier_json_text (a, "date", NULL, 0), time);
    int off_s = 0;
    at = s_when (carrier_json_text (a, "date", NULL, 0), time);
    if (at && s_offset (carrier_json_text (a, "gmtOffset", NULL, 0), &off_s))
        at -= (int64_t)off_s * 1000;
    return at;
}

/* Whether UPS's words say the number is unknown. */
static bool
s_not_found (const char *words)
{
    return strcasestr (words, "not found") || strcasestr (words, "no tracking information");
}

/* Whether shipment's warnings say the number is unknown (200 with
 * "Tracking Information Not Found"). */
static bool
s_warned_not_found (json_t *shipment)
{
    json_t *warnings = json_object_get (shipment, "warnings");
    for (size_t i = 0; i < json_array_size (warnings); i++)
        if (s_not_found (carrier_json_text (json_array_get (warnings, i), "message", NULL, 0)))
            return true;
    return false;
}

static void
s_activity (json_t *activity, carrier_result_t *r)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size (activity); i++)
        n += json_is_object (json_array_get (activity, i));
    if (carrier_events_new (r, n) != 0) {
        free (r->raw_code);
        r->raw_code = NULL; /* out of memory: carrier_answer_settle makes it RETRY */
        return;
    }
    size_t k = n;
    for (size_t i = 0; i < json_array_size (activity); i++) {
        json_t *a = json_array_get (activity, i);
        if (!json_is_object (a))
            continue;
        json_t *st = json_object_get (a, "status");
        carrier_event_t *e = &r->events[--k];
        carrier_str_set (&e->code, carrier_json_text (st, "type", NULL, 0));
        carrier_str_set (&e->text, carrier_json_text (st, "description", NULL, 0));
        carrier_str_set (
            &e->location,
            carrier_json_text (json_object_get (json_object_get (a, "location"), "address"), "city",
                               NULL, 0));
        e->at_ms = s_activity_at (a);
    }
}

/* deliveryTime.endTime when deliveryTime is the delivery's, else "". */
static const char *
s_delivery_time (const json_t *pkg)
{
    const json_t *t = json_object_get (pkg, "deliveryTime");
    const char *end = carrier_json_text (t, "endTime", NULL, 0);
    return strcmp (carrier_json_text (t, "type", NULL, 0), "DEL") == 0 && s_clock (end) >= 0 ? end
                                                                                             : "";
}

static void
s_package (json_t *pkg, carrier_result_t *r)
{
    json_t *current = json_object_get (pkg, "currentStatus");
    const char *type = carrier_json_text (current, "type", NULL, 0);
    if (!type[0])
        return;
    r->found = true;
    carrier_str_set (&r->raw_code, type);
    carrier_str_set (&r->raw_text, carrier_json_text (current, "description", NULL, 0));
    carrier_result_map (&carrier_ups, r);
    s_activity (json_object_get (pkg, "activity"), r);
    if (r->n_events > 0) {
        const carrier_event_t *last = &r->events[r->n_events - 1];
        r->status_at_ms = last->at_ms;
        carrier_str_set (&r->location, last->location);
    }
    json_t *dates = json_object_get (pkg, "deliveryDate");
    int64_t scheduled = 0, rescheduled = 0;
    for (size_t i = 0; i < json_array_size (dates); i++) {
        json_t *d = json_array_get (dates, i);
        const char *kind = carrier_json_text (d, "type", NULL, 0);
        int64_t at = s_when (carrier_json_text (d, "date", NULL, 0), "");
        if (strcmp (kind, "SDD") == 0)
            scheduled = at;
        else if (strcmp (kind, "RDD") == 0)
            rescheduled = at;
        else if (strcmp (kind, "DEL") == 0)
            r->delivered_ms =
                s_when (carrier_json_text (d, "date", NULL, 0), s_delivery_time (pkg));
    }
    r->estimated_ms = rescheduled ? rescheduled : scheduled;
    /* The delivery scan has the instant the DEL date lacks. */
    for (size_t i = r->n_events; r->delivered_ms && i > 0; i--) {
        if (strcmp (r->events[i - 1].code, "D") == 0 && r->events[i - 1].at_ms) {
            r->delivered_ms = r->events[i - 1].at_ms;
            break;
        }
    }
}

/* The package of the query's number in shipment, else its first. */
static json_t *
s_pick (json_t *shipment, const carrier_query_t *q)
{
    json_t *packages = json_object_get (shipment, "package");
    for (size_t i = 0; q->tracking_number && i < json_array_size (packages); i++) {
        json_t *p = json_array_get (packages, i);
        if (strcasecmp (carrier_json_text (p, "trackingNumber", NULL, 0), q->tracking_number) == 0)
            return p;
    }
    return json_array_get (packages, 0);
}

static void
s_parse (const carrier_query_t *queries, size_t n, int status, int64_t retry_after_ms,
         const char *body, size_t len, carrier_answer_t *out)
{
    char code[CARRIER_CODE_MAX], words[CARRIER_REASON_MAX];
    if (adapter_parse_begin (&carrier_ups, n, status, retry_after_ms, out))
        return;
    if (status >= 400) {
        json_t *doc = s_load (body, len);
        s_errors (doc, code, sizeof code, words, sizeof words);
        json_decref (doc);
        if (status == 404 || (status != 401 && status != 403 && s_not_found (words))) {
            adapter_not_found (out, n);
            return;
        }
        bool refused = status == 401 || status == 403;
        if (refused || !code[0])
            snprintf (code, sizeof code, "%d", status);
        carrier_set (out, refused ? CARRIER_STOP_ACCOUNT : CARRIER_BAD_REQUEST, code,
                     "UPS refused the call (HTTP %d)%s%s", status, words[0] ? ": " : "", words);
        return;
    }
    json_t *doc = carrier_json (status, body, len, out);
    if (!doc)
        return;
    json_t *shipments = json_object_get (json_object_get (doc, "trackResponse"), "shipment");
    json_t *shipment = json_array_get (shipments, 0);
    json_t *pkg = s_pick (shipment, &queries[0]);
    if (!json_is_array (shipments)) {
        carrier_unexpected (out, status, "no trackResponse.shipment array");
    } else if (carrier_results_new (out, n) == 0 && json_is_object (pkg) &&
               !s_warned_not_found (shipment)) {
        s_package (pkg, &out->results[0]);
    }
    json_decref (doc);
    carrier_answer_settle (out);
}

const carrier_t carrier_ups = {
    .name = "ups",
    .display = "UPS",
    .api_env = "RETAIN_TRACKER_UPS_API",
    .api_default = "https://onlinetools.ups.com",
    .batch_max = 1,
    .needs_token = true,
    ADAPTER_CODES (s_codes),
    .number_check = s_number_check,
    .build = s_build,
    .parse = s_parse,
    .build_token = s_build_token,
    .parse_token = s_parse_token,
};
