/*
 * nova_poshta: Nova Poshta API 2.0, TrackingDocument.getStatusDocuments
 * (providers.md 1.1).
 *
 * Reads account->base_url ("https://api.novaposhta.ua/v2.0/json/", the
 * endpoint itself: every call of API 2.0 goes to the one URL), api_key
 * and language ("UA", "RU", "EN"; NULL: Nova Poshta's default). A batch of
 * up to 100 waybills is one POST of
 *   {"apiKey", "modelName": "TrackingDocument",
 *    "calledMethod": "getStatusDocuments",
 *    "methodProperties": {"Documents": [{"DocumentNumber", "Phone"?}],
 *                         "Language"?}}
 * The key travels in the body only, so log_url is the URL as it is. A
 * phone (the sender's or the recipient's) unlocks the full record; without
 * one most fields come back empty, the status does not.
 *
 * Every answer is HTTP 200 with {"success", "data", "errors",
 * "errorCodes", ...}. success false is classified by errorCodes (s_errors:
 * a key refused or missing stops the account, 20000100016 "service
 * unavailable" is retried, the documented validation errors and any code
 * not listed are a bad request, the code and errors[] kept). success true
 * has one item per waybill Nova Poshta knows, matched to the queries by
 * Number, never by position; a waybill missing from data[] and StatusCode
 * "3" ("number not found", which a fresh waybill shows until it is handed
 * in) are found = false. Every value is a string, and the dates come in
 * four spellings, all Kyiv wall-clock (carrier_kyiv_ms): TrackingUpdateDate
 * "2026-07-01 14:30:00", ScheduledDeliveryDate "01-07-2026 14:30:00",
 * RecipientDateTime "01.07.2026 14:30:00", DateScan "14:30 01.07.2026".
 *
 * The answer carries the last status only: n_events is 0 and raw_code is
 * StatusCode.
 */
#include "adapter.h"
#include "carrier.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const carrier_t carrier_nova_poshta;

/* StatusCode (providers.md 1.1: platx/go-nova-poshta's enum, a SalesDrive
 * normaliser, several CRMs; the legacy 14, 107, 108 from an older PHP
 * list), mapped as providers.md 1.6 suggests. */
static const carrier_code_t s_codes[] = {
    {"1", TAG_INFO_RECEIVED, "InfoReceived_001", false,
     "the sender created the waybill, the parcel is not handed in yet"},
    {"2", TAG_EXCEPTION, "Exception_001", false, "deleted (the waybill was cancelled)"},
    {"3", TAG_PENDING, "Pending_001", false, "number not found"},
    {"4", TAG_IN_TRANSIT, "InTransit_001", false, "in the sender's city (inter-regional)"},
    {"41", TAG_IN_TRANSIT, "InTransit_001", false, "in the city (local delivery)"},
    {"5", TAG_IN_TRANSIT, "InTransit_001", false, "on its way to the recipient's city"},
    {"6", TAG_IN_TRANSIT, "InTransit_001", false,
     "in the recipient's city, expected at the branch"},
    {"7", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false, "arrived at the branch"},
    {"8", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false,
     "arrived at the branch, in a parcel locker"},
    {"9", TAG_DELIVERED, "Delivered_001", false, "received"},
    {"10", TAG_DELIVERED, "Delivered_004", false,
     "received; the cash-on-delivery transfer is on its way to the sender"},
    {"11", TAG_DELIVERED, "Delivered_004", false,
     "received; the cash-on-delivery transfer is paid out"},
    {"12", TAG_INFO_RECEIVED, "InfoReceived_001", false, "Nova Poshta is assembling the parcel"},
    {"14", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false,
     "handed to the recipient for inspection (legacy)"},
    {"101", TAG_OUT_FOR_DELIVERY, "OutForDelivery_001", false,
     "on its way to the recipient (courier)"},
    {"102", TAG_EXCEPTION, "Exception_003", true, "refused; the sender ordered the return"},
    {"103", TAG_EXCEPTION, "Exception_003", true, "refused by the recipient"},
    {"104", TAG_IN_TRANSIT, "InTransit_001", false, "address changed (redirected)"},
    {"105", TAG_EXCEPTION, "Exception_010", true, "storage stopped: going back to the sender"},
    /* The return waybill of 106 is the backward delivery (documents or
     * money for the sender): the parcel itself is with the recipient. */
    {"106", TAG_DELIVERED, "Delivered_001", false,
     "received, and a return waybill created for the backward delivery"},
    {"107", TAG_AVAILABLE_FOR_PICKUP, "AvailableForPickup_001", false,
     "at the branch, paid storage being charged (legacy)"},
    {"108", TAG_EXCEPTION, "Exception_003", true, "refused by the recipient (legacy)"},
    {"111", TAG_ATTEMPT_FAIL, "AttemptFail_001", false,
     "delivery attempt failed (recipient absent or unreachable)"},
    {"112", TAG_IN_TRANSIT, "InTransit_001", false, "delivery date moved by the recipient"},
};

/* An errorCode of the envelope and what it comes to (providers.md 1.1:
 * shopanaio/carrier-api types/errors.ts). */
typedef struct {
    const char *code;          /* errorCodes[i] */
    carrier_verdict_t verdict; /* the class */
} s_error_t;

static const s_error_t s_errors[] = {
    {"20000200068", CARRIER_STOP_ACCOUNT}, /* API authentication failed: key expired or invalid */
    {"20000200069", CARRIER_STOP_ACCOUNT}, /* API key is not specified */
    {"20000100016", CARRIER_RETRY},        /* service unavailable */
    {"20000200157", CARRIER_BAD_REQUEST},  /* DocumentNumber is empty */
    {"20000200158", CARRIER_BAD_REQUEST},  /* DocumentNumber is incorrect */
    {"20000200159", CARRIER_BAD_REQUEST},  /* Documents must be an array */
    {"20000200161", CARRIER_BAD_REQUEST},  /* Documents not found */
    {"20000300415", CARRIER_BAD_REQUEST},  /* document not found */
    {"20000300416", CARRIER_BAD_REQUEST},  /* document not found by owner */
};

#define S_NUMBER_LEN 14

static int
s_number_check (const char *number, char *why, size_t whylen)
{
    size_t n = number ? strlen (number) : 0;
    bool digits = n == S_NUMBER_LEN;
    for (size_t i = 0; digits && i < n; i++)
        digits = isdigit ((unsigned char)number[i]) != 0;
    /* RomaBilka/parcel-tracking's detector: 59..., 20... and 1..., 14
     * digits each; shops' waybills today start with 20 or 59. */
    if (digits &&
        (number[0] == '1' || strncmp (number, "20", 2) == 0 || strncmp (number, "59", 2) == 0))
        return 0;
    snprintf (why, whylen,
              "Nova Poshta waybill numbers are 14 digits starting with 1, 20 or 59 "
              "(\"20450059800767\")");
    return -1;
}

/* Whether s is digits only (a phone as Nova Poshta takes it). */
static bool
s_all_digits (const char *s)
{
    if (!s[0])
        return false;
    for (; *s; s++)
        if (!isdigit ((unsigned char)*s))
            return false;
    return true;
}

static int
s_build (const carrier_account_t *account, const carrier_query_t *queries, size_t n,
         carrier_request_t *out, char *err, size_t errlen)
{
    int base_len = 0;
    if (adapter_build_begin (&carrier_nova_poshta, account, "API key", account->api_key, queries, n,
                             "waybills", &base_len, out, err, errlen) != 0)
        return -1;
    json_t *documents = json_array ();
    for (size_t i = 0; i < n; i++) {
        const carrier_query_t *q = &queries[i];
        if (!q->tracking_number || !q->tracking_number[0]) {
            json_decref (documents);
            snprintf (err, errlen, "query %zu has no tracking number", i);
            return -1;
        }
        /* json_pack refuses a string that is not UTF-8. */
        json_t *doc = json_pack ("{s:s}", "DocumentNumber", q->tracking_number);
        if (!doc) {
            json_decref (documents);
            snprintf (err, errlen, "query %zu's tracking number is not UTF-8", i);
            return -1;
        }
        if (q->phone && s_all_digits (q->phone))
            json_object_set_new (doc, "Phone", json_string (q->phone));
        json_array_append_new (documents, doc);
    }
    json_t *props = json_pack ("{s:o}", "Documents", documents);
    if (account->language && account->language[0])
        json_object_set_new (props, "Language", json_string (account->language));
    json_t *body = json_pack ("{s:s, s:s, s:s, s:o}", "apiKey", account->api_key, "modelName",
                              "TrackingDocument", "calledMethod", "getStatusDocuments",
                              "methodProperties", props);
    if (!body) { /* props is stolen even then */
        snprintf (err, errlen, "Nova Poshta account's API key is not UTF-8");
        return -1;
    }
    out->method = "POST";
    /* The endpoint is the base as configured, its trailing '/' included:
     * API 2.0 answers on "/v2.0/json/". */
    if (rt_http_outreq_url (out, account->api_key, "%s", account->base_url) != 0 ||
        rt_http_outreq_json (out, body) != 0)
        return adapter_build_oom (out, err, errlen);
    return 0;
}

/* The worst of errorCodes, its words in errors[] (the same index, else the
 * first). */
static void
s_refused (json_t *doc, carrier_answer_t *out)
{
    /* A verdict's weight: a refused key outweighs an outage, which
     * outweighs a bad field. */
    static const int weight[] = {
        [CARRIER_OK] = 0,    [CARRIER_WAIT] = 0,         [CARRIER_BAD_REQUEST] = 1,
        [CARRIER_RETRY] = 2, [CARRIER_STOP_ACCOUNT] = 3,
    };
    json_t *codes = json_object_get (doc, "errorCodes");
    json_t *errors = json_object_get (doc, "errors");
    carrier_verdict_t verdict = CARRIER_BAD_REQUEST;
    char code[CARRIER_CODE_MAX] = "", buf[32];
    size_t at = 0;
    for (size_t i = 0; i < json_array_size (codes); i++) {
        const char *c = carrier_json_as_text (json_array_get (codes, i), buf, sizeof buf);
        carrier_verdict_t v = CARRIER_BAD_REQUEST;
        for (size_t k = 0; k < sizeof s_errors / sizeof *s_errors; k++)
            if (strcmp (s_errors[k].code, c) == 0)
                v = s_errors[k].verdict;
        if (c[0] && (!code[0] || weight[v] > weight[verdict])) {
            verdict = v;
            snprintf (code, sizeof code, "%s", c);
            at = i;
        }
    }
    json_t *words = json_array_get (errors, at);
    if (!json_is_string (words))
        words = json_array_get (errors, 0);
    const char *text = json_is_string (words) ? json_string_value (words) : "";
    carrier_set (out, verdict, code, "%s", text[0] ? text : "Nova Poshta refused the call");
}

/* Fills r from Nova Poshta's item for it. */
static void
s_item (json_t *item, carrier_result_t *r)
{
    char buf[32];
    carrier_str_set (&r->raw_code, carrier_json_text (item, "StatusCode", buf, sizeof buf));
    carrier_str_set (&r->raw_text, carrier_json_text (item, "Status", NULL, 0));
    if (!r->raw_code || strcmp (r->raw_code, "3") == 0 || !r->raw_code[0])
        return; /* not found: the status is all there is */
    r->found = true;
    carrier_result_map (&carrier_nova_poshta, r);
    r->status_at_ms = carrier_kyiv_ms (carrier_json_text (item, "TrackingUpdateDate", NULL, 0));
    if (!r->status_at_ms)
        r->status_at_ms = carrier_kyiv_ms (carrier_json_text (item, "DateScan", NULL, 0));
    r->estimated_ms = carrier_kyiv_ms (carrier_json_text (item, "ScheduledDeliveryDate", NULL, 0));
    r->storage_until_ms = carrier_kyiv_ms (carrier_json_text (item, "DatePayedKeeping", NULL, 0));
    /* RecipientDateTime is the receipt itself; ActualDeliveryDate is also
     * filled when the parcel reaches the branch, so it is a delivery only
     * once the status says so. */
    r->delivered_ms = carrier_kyiv_ms (carrier_json_text (item, "RecipientDateTime", NULL, 0));
    if (!r->delivered_ms && r->mapped && r->tag == TAG_DELIVERED)
        r->delivered_ms = carrier_kyiv_ms (carrier_json_text (item, "ActualDeliveryDate", NULL, 0));
    carrier_str_set (&r->origin_city, carrier_json_text (item, "CitySender", NULL, 0));
    carrier_str_set (&r->destination_city, carrier_json_text (item, "CityRecipient", NULL, 0));
    carrier_str_set (&r->cod_state, carrier_json_text (item, "LastTransactionStatusGM", NULL, 0));
    if (r->mapped && r->tag == TAG_AVAILABLE_FOR_PICKUP)
        carrier_str_set (&r->location, carrier_json_text (item, "WarehouseRecipient", NULL, 0));
}

/* Whether item is Nova Poshta's record of waybill `number`. */
static bool
s_is (json_t *item, const char *number)
{
    char buf[32];
    return strcmp (carrier_json_text (item, "Number", buf, sizeof buf), number) == 0;
}

static void
s_found (const carrier_query_t *queries, size_t n, int status, json_t *data, carrier_answer_t *out)
{
    size_t nd = json_array_size (data);
    for (size_t i = 0; i < nd; i++) {
        if (!json_is_object (json_array_get (data, i))) {
            carrier_unexpected (out, status, "an item of data[] is not an object");
            return;
        }
    }
    if (carrier_results_new (out, n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *number = queries[i].tracking_number ? queries[i].tracking_number : "";
        /* Items usually come in query order: look there first. */
        json_t *item =
            i < nd && s_is (json_array_get (data, i), number) ? json_array_get (data, i) : NULL;
        for (size_t k = 0; !item && k < nd; k++)
            if (s_is (json_array_get (data, k), number))
                item = json_array_get (data, k);
        if (item)
            s_item (item, &out->results[i]);
    }
}

static void
s_parse (const carrier_query_t *queries, size_t n, int status, int64_t retry_after_ms,
         const char *body, size_t len, carrier_answer_t *out)
{
    if (adapter_parse_begin (&carrier_nova_poshta, n, status, retry_after_ms, out))
        return;
    json_t *doc = carrier_json (status, body, len, out);
    if (!doc)
        return;
    json_t *success = json_object_get (doc, "success");
    json_t *data = json_object_get (doc, "data");
    if (!json_is_object (doc) || !json_is_boolean (success))
        carrier_unexpected (out, status, "no boolean success");
    else if (json_is_false (success))
        s_refused (doc, out);
    else if (!json_is_array (data))
        carrier_unexpected (out, status, "data is not an array");
    else
        s_found (queries, n, status, data, out);
    json_decref (doc);
    carrier_answer_settle (out);
}

const carrier_t carrier_nova_poshta = {
    .name = "nova_poshta",
    .display = "Nova Poshta",
    .api_env = "RETAIN_TRACKER_NOVAPOSHTA_API",
    .api_default = "https://api.novaposhta.ua/v2.0/json/",
    .batch_max = 100,
    ADAPTER_CODES (s_codes),
    .number_check = s_number_check,
    .build = s_build,
    .parse = s_parse,
};
