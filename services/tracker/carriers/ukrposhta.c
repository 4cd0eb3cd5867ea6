/*
 * ukrposhta: Ukrposhta's Status Tracking API 0.0.1, the last status of a
 * batch of barcodes (providers.md 1.2).
 *
 * Reads account->base_url ("https://www.ukrposhta.ua/status-tracking/0.0.1")
 * and api_key (the StatusTracking bearer, one per sub-portal, issued with
 * the contract). Up to 100 barcodes are one POST {base}/statuses/last with
 * Authorization: Bearer <key> and a JSON array of the barcodes, in
 * capitals as Ukrposhta prints them.
 *
 * The answer is a JSON array of event objects {barcode, step, date, index,
 * name, event, eventName, country, eventReason, eventReason_id, ...}, the
 * last event of each barcode Ukrposhta knows, matched to the queries by
 * barcode; a barcode missing is found = false. date is Kyiv wall-clock
 * ("2026-07-01T14:30:00", carrier_kyiv_ms). A 404 says a barcode is not
 * registered, without saying which: for one barcode that is found =
 * false, for several a bad request, which the poller answers by asking for
 * each alone. 401 and 403 (the body may be the gateway's {"fault": {"code":
 * 900908, ...}}, a key without access to Status Tracking) stop the account.
 *
 * raw_code is the event code, except that the delivered event 41000 with
 * eventReason_id 10 is the parcel delivered back to its sender: its
 * raw_code is "41000/10", which the table maps to "returned" (code/reason,
 * as UPS's type/code). The answer carries the last status only: n_events
 * is 0.
 */
#include "adapter.h"
#include "carrier.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const carrier_t carrier_ukrposhta;

/* Event codes as integrators use them (providers.md 1.2: partially
 * unconfirmed; Ukrposhta's own event directory was not found). 1xxxx
 * acceptance, 2xxxx sorting and transit, 3xxxx delivery and redirection,
 * 4xxxx handover and return. */
static const carrier_code_t s_codes[] = {
    {"10100", TAG_IN_TRANSIT, "InTransit_001", false, "accepted from the sender"},
    {"10400", TAG_EXCEPTION, "Exception_001", false, "cancelled (unconfirmed)"},
    {"10600", TAG_EXCEPTION, "Exception_001", false, "cancelled (unconfirmed)"},
    {"10602", TAG_EXCEPTION, "Exception_001", false, "cancelled (unconfirmed)"},
    {"20700", TAG_IN_TRANSIT, "InTransit_001", false, "in transit (unconfirmed)"},
    {"20800", TAG_IN_TRANSIT, "InTransit_001", false, "sorting (unconfirmed)"},
    {"20900", TAG_IN_TRANSIT, "InTransit_001", false, "in transit (unconfirmed)"},
    {"21500", TAG_IN_TRANSIT, "InTransit_001", false, "handed over for delivery (unconfirmed)"},
    {"21700", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false,
     "arrived at the delivery office, ready for pickup (unconfirmed)"},
    {"31100", TAG_IN_TRANSIT, "InTransit_001", false, "at a transit node (unconfirmed)"},
    {"31200", TAG_EXCEPTION, "Exception_010", true, "returning to the sender (unconfirmed)"},
    {"31300", TAG_IN_TRANSIT, "InTransit_001", false, "redirected (unconfirmed)"},
    {"31400", TAG_IN_TRANSIT, "InTransit_001", false, "redirected (unconfirmed)"},
    {"41000", TAG_DELIVERED, "Delivered_001", false, "delivered"},
    {"41000/10", TAG_EXCEPTION, "Exception_011", true,
     "delivered back to the sender (41000 with eventReason_id 10)"},
    {"41010", TAG_EXCEPTION, "Exception_011", true, "returned to the sender (unconfirmed)"},
    {"41020", TAG_EXCEPTION, "Exception_011", true, "returned to the sender (unconfirmed)"},
    {"48000", TAG_DELIVERED, "Delivered_001", false, "delivered (another kind) (unconfirmed)"},
};

/* The eventReason_id that turns the delivered event into a return. */
#define S_REASON_RETURNED "10"

/* The UPU S10 check digit of 8 serial digits (UPU S10, 5.3): weights
 * 8 6 4 2 3 5 9 7, 11 less the sum mod 11, 10 read as 0 and 11 as 5. */
static int
s_s10_check (const char *serial)
{
    static const int weight[8] = {8, 6, 4, 2, 3, 5, 9, 7};
    int sum = 0;
    for (int i = 0; i < 8; i++)
        sum += (serial[i] - '0') * weight[i];
    int check = 11 - sum % 11;
    return check == 10 ? 0 : check == 11 ? 5 : check;
}

static bool
s_letters (const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalpha ((unsigned char)s[i]))
            return false;
    return true;
}

static bool
s_digits (const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit ((unsigned char)s[i]))
            return false;
    return true;
}

static int
s_number_check (const char *number, char *why, size_t whylen)
{
    size_t n = number ? strlen (number) : 0;
    if (n == 13 && s_digits (number, 13))
        return 0;
    if (n == 13 && s_letters (number, 2) && s_digits (number + 2, 9) &&
        s_letters (number + 11, 2)) {
        if (s_s10_check (number + 2) == number[10] - '0')
            return 0;
        snprintf (why, whylen, "the check digit of a UPU S10 number is %d, not %c",
                  s_s10_check (number + 2), number[10]);
        return -1;
    }
    snprintf (why, whylen,
              "Ukrposhta numbers are UPU S10 (2 letters, 9 digits, 2 letters: \"RB123456785UA\") "
              "or 13-digit domestic barcodes");
    return -1;
}

/* number in capitals into out (at most outlen - 1 bytes). */
static void
s_upper (const char *number, char *out, size_t outlen)
{
    size_t i = 0;
    for (; number[i] && i + 1 < outlen; i++)
        out[i] = (char)toupper ((unsigned char)number[i]);
    out[i] = '\0';
}

static int
s_build (const carrier_account_t *account, const carrier_query_t *queries, size_t n,
         carrier_request_t *out, char *err, size_t errlen)
{
    int base_len = 0;
    if (adapter_build_begin (&carrier_ukrposhta, account, "bearer", account->api_key, queries, n,
                             "barcodes", &base_len, out, err, errlen) != 0)
        return -1;
    json_t *barcodes = json_array ();
    for (size_t i = 0; i < n; i++) {
        char barcode[64];
        if (!queries[i].tracking_number || !queries[i].tracking_number[0]) {
            json_decref (barcodes);
            snprintf (err, errlen, "query %zu has no tracking number", i);
            return -1;
        }
        s_upper (queries[i].tracking_number, barcode, sizeof barcode);
        if (json_array_append_new (barcodes, json_string (barcode)) != 0) {
            json_decref (barcodes);
            snprintf (err, errlen, "query %zu's tracking number is not UTF-8", i);
            return -1;
        }
    }
    out->method = "POST";
    if (rt_http_outreq_url (out, account->api_key, "%.*s/statuses/last", base_len,
                            account->base_url) != 0 ||
        rt_http_outreq_header (out, "Authorization: Bearer %s", account->api_key) != 0 ||
        rt_http_outreq_json (out, barcodes) != 0)
        return adapter_build_oom (out, err, errlen);
    return 0;
}

/* The gateway's fault code (WSO2's {"fault": {"code", "message",
 * "description"}}) into code, its words into words; "" when the body has
 * none. */
static void
s_fault (const char *body, size_t len, char *code, size_t codelen, char *words, size_t wordslen)
{
    json_t *doc = body && len ? json_loadb (body, len, JSON_DECODE_INT_AS_REAL, NULL) : NULL;
    json_t *fault = json_object_get (doc, "fault");
    char buf[32];
    snprintf (code, codelen, "%s", carrier_json_text (fault, "code", buf, sizeof buf));
    const char *text = carrier_json_text (fault, "description", NULL, 0);
    if (!text[0])
        text = carrier_json_text (fault, "message", NULL, 0);
    if (!text[0])
        text = carrier_json_text (doc, "message", NULL, 0);
    snprintf (words, wordslen, "%s", text);
    json_decref (doc);
    /* A body without JSON may still name the code (a gateway's text). */
    if (!code[0] && body && len && memmem (body, len, "900908", 6))
        snprintf (code, codelen, "900908");
}

/* Fills r from Ukrposhta's last event of its barcode. */
static void
s_event (json_t *ev, carrier_result_t *r)
{
    char buf[32], reason_buf[32], code[CARRIER_CODE_MAX];
    const char *event = carrier_json_text (ev, "event", buf, sizeof buf);
    const char *reason = carrier_json_text (ev, "eventReason_id", reason_buf, sizeof reason_buf);
    if (!event[0])
        return;
    if (strcmp (event, "41000") == 0 && strcmp (reason, S_REASON_RETURNED) == 0) {
        snprintf (code, sizeof code, "%s/%s", event, reason);
        r->returning = true;
    } else {
        snprintf (code, sizeof code, "%s", event);
    }
    r->found = true;
    carrier_str_set (&r->raw_code, code);
    carrier_str_set (&r->raw_text, carrier_json_text (ev, "eventName", NULL, 0));
    const char *office = carrier_json_text (ev, "name", NULL, 0);
    carrier_str_set (&r->location,
                     office[0] ? office : carrier_json_text (ev, "index", buf, sizeof buf));
    r->status_at_ms = carrier_kyiv_ms (carrier_json_text (ev, "date", NULL, 0));
    carrier_result_map (&carrier_ukrposhta, r);
    if (r->mapped && r->tag == TAG_DELIVERED)
        r->delivered_ms = r->status_at_ms;
}

/* The latest event of barcode `number` among events (the last listed when
 * their dates tie or are missing). */
static json_t *
s_latest (json_t *events, const char *number)
{
    json_t *best = NULL;
    int64_t best_at = 0;
    for (size_t i = 0; i < json_array_size (events); i++) {
        json_t *ev = json_array_get (events, i);
        char buf[32];
        if (strcasecmp (carrier_json_text (ev, "barcode", buf, sizeof buf), number) != 0)
            continue;
        int64_t at = carrier_kyiv_ms (carrier_json_text (ev, "date", NULL, 0));
        if (!best || at >= best_at) {
            best = ev;
            best_at = at;
        }
    }
    return best;
}

static void
s_found (const carrier_query_t *queries, size_t n, int status, json_t *events,
         carrier_answer_t *out)
{
    for (size_t i = 0; i < json_array_size (events); i++) {
        if (!json_is_object (json_array_get (events, i))) {
            carrier_unexpected (out, status, "an event is not an object");
            return;
        }
    }
    if (carrier_results_new (out, n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *number = queries[i].tracking_number ? queries[i].tracking_number : "";
        json_t *ev = s_latest (events, number);
        if (ev)
            s_event (ev, &out->results[i]);
    }
}

static void
s_parse (const carrier_query_t *queries, size_t n, int status, int64_t retry_after_ms,
         const char *body, size_t len, carrier_answer_t *out)
{
    char code[CARRIER_CODE_MAX], words[CARRIER_REASON_MAX];
    if (adapter_parse_begin (&carrier_ukrposhta, n, status, retry_after_ms, out))
        return;
    if (status == 401 || status == 403) {
        s_fault (body, len, code, sizeof code, words, sizeof words);
        if (!code[0])
            snprintf (code, sizeof code, "%d", status);
        carrier_set (out, CARRIER_STOP_ACCOUNT, code, "the bearer is refused (HTTP %d)%s%s", status,
                     words[0] ? ": " : "", words);
        return;
    }
    if (status == 404) {
        if (n == 1) {
            adapter_not_found (out, n);
        } else {
            carrier_set (out, CARRIER_BAD_REQUEST, "404",
                         "a barcode of the %zu is not registered (HTTP 404)", n);
            carrier_answer_settle (out);
        }
        return;
    }
    if (status >= 400) {
        s_fault (body, len, code, sizeof code, words, sizeof words);
        if (!code[0])
            snprintf (code, sizeof code, "%d", status);
        carrier_set (out, CARRIER_BAD_REQUEST, code, "Ukrposhta refused the call (HTTP %d)%s%s",
                     status, words[0] ? ": " : "", words);
        return;
    }
    json_t *doc = carrier_json (status, body, len, out);
    if (!doc)
        return;
    if (json_is_object (doc) && json_object_get (doc, "barcode")) {
        /* One event for one barcode may come bare. */
        json_t *one = json_array ();
        json_array_append_new (one, doc);
        doc = one;
    }
    if (!json_is_array (doc))
        carrier_unexpected (out, status, "the answer is not an array of events");
    else
        s_found (queries, n, status, doc, out);
    json_decref (doc);
    carrier_answer_settle (out);
}

const carrier_t carrier_ukrposhta = {
    .name = "ukrposhta",
    .display = "Ukrposhta",
    .api_env = "RETAIN_TRACKER_UKRPOSHTA_API",
    .api_default = "https://www.ukrposhta.ua/status-tracking/0.0.1",
    .batch_max = 100,
    ADAPTER_CODES (s_codes),
    .number_check = s_number_check,
    .build = s_build,
    .parse = s_parse,
};
