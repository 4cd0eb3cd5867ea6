/*
 * rt_test_fake_carrier_shapes: the five carriers' answers, as the fake
 * writes them (rt_test_fake_carrier.h lists the shapes and their sources).
 *
 * The answers are written with rt_jsonw, which appends text to one buffer
 * instead of building a tree: for Nova Poshta's hundred items of forty
 * members each that is what keeps an answer in microseconds (the test
 * prints the figure). Everything here runs with the fake's lock held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_jsonw.h"
#include "rt_test_fake_carrier_int.h"

/* --- writing answers (lock held) --- */

static void
s_json (fc_made_t *m, int status, const char *body)
{
    m->status = status;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_buf_puts (&m->body, body);
}

static void
s_text (fc_made_t *m, int status, const char *type, const char *body)
{
    m->status = status;
    snprintf (m->content_type, sizeof m->content_type, "%s", type ? type : "");
    rt_buf_puts (&m->body, body);
}

/* Nova Poshta's envelope after data: every list empty, as on success. */
static void
s_np_lists (rt_jsonw_t *w, const char *error, const char *code)
{
    static const char *const lists[] = {"warnings", "info", "messageCodes", "warningCodes",
                                        "infoCodes"};
    rt_jsonw_key (w, "errors");
    rt_jsonw_array (w);
    if (error)
        rt_jsonw_string (w, error);
    rt_jsonw_array_end (w);
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        rt_jsonw_key (w, lists[i]);
        rt_jsonw_array (w);
        rt_jsonw_array_end (w);
    }
    rt_jsonw_key (w, "errorCodes");
    rt_jsonw_array (w);
    if (code && *code)
        rt_jsonw_string (w, code);
    rt_jsonw_array_end (w);
}

/* Nova Poshta's refusal: HTTP 200, success false. */
static void
s_np_error (fc_made_t *m, const char *code, const char *text)
{
    rt_jsonw_t w;
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_kbool (&w, "success", false);
    rt_jsonw_key (&w, "data");
    rt_jsonw_array (&w);
    rt_jsonw_array_end (&w);
    s_np_lists (&w, text, code);
    rt_jsonw_object_end (&w);
}

/* Digits of a and b equal, and some there. */
static bool
s_same_phone (const char *a, const char *b)
{
    bool any = false;
    if (!a || !b)
        return false;
    for (;;) {
        while (*a && (*a < '0' || *a > '9'))
            a++;
        while (*b && (*b < '0' || *b > '9'))
            b++;
        if (!*a || !*b)
            return any && !*a && !*b;
        if (*a++ != *b++)
            return false;
        any = true;
    }
}

/* A waybill's RefEW: a UUID's shape, stable per parcel, into out[36]. */
static void
s_np_ref (uint64_t h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t g = h * 0x9e3779b97f4a7c15ULL;
    for (int i = 0, k = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        uint64_t bits = k < 16 ? h >> (4 * k) : g >> (4 * (k - 16));
        out[i] = hex[bits & 15];
        k++;
    }
}

/* One item. Written as text, not through the writer's members: all but
 * Number and RefEW were escaped once, when the state was set (the one
 * cost a hundred items would otherwise pay a hundred times), and a number
 * that reaches here is digits (the reader refuses others). */
static void
s_np_item (rt_jsonw_t *w, const char *number, const fc_parcel_t *p, const fc_state_t *s, bool full)
{
    char ref[36];
    rt_jsonw_raw (w, "{\"Number\":\"");
    rt_buf_puts (w->buf, number);
    if (!p) {
        rt_buf_puts (w->buf, "\",\"StatusCode\":\"3\",\"Status\":\"Номер не знайдено\"}");
        return;
    }
    s_np_ref (p->hash, ref);
    rt_buf_puts (w->buf, "\",\"RefEW\":\"");
    rt_buf_put (w->buf, ref, sizeof ref);
    rt_buf_puts (w->buf, "\",");
    rt_buf_puts (w->buf, s->f[full ? NP_MEMBERS_FULL : NP_MEMBERS_SHORT]);
    rt_buf_put (w->buf, "}", 1);
}

static void
s_answer_np (rt_fake_carrier_t *fc, const fc_ask_t *ask, fc_made_t *m)
{
    rt_jsonw_t w;
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_buf_reserve (&m->body, 512 + ask->n * 2048);
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_kbool (&w, "success", true);
    rt_jsonw_key (&w, "data");
    rt_jsonw_array (&w);
    for (size_t i = 0; i < ask->n; i++) {
        fc_parcel_t *p = fc_parcel_find (fc, RT_FC_NOVA_POSHTA, ask->numbers[i], "");
        if (!p) {
            fc->carriers[RT_FC_NOVA_POSHTA].stats.not_found++;
            s_np_item (&w, ask->numbers[i], NULL, NULL, false);
            continue;
        }
        const fc_state_t *s = p->history[p->n - 1];
        bool full = s_same_phone (ask->phones[i], s->f[NP_PHONE_RECIPIENT]) ||
                    s_same_phone (ask->phones[i], s->f[NP_PHONE_SENDER]);
        fc_parcel_fetched (fc, p);
        s_np_item (&w, ask->numbers[i], p, s, full);
    }
    rt_jsonw_array_end (&w);
    s_np_lists (&w, NULL, NULL);
    rt_jsonw_object_end (&w);
}

static void
s_ukrposhta_event (rt_jsonw_t *w, const fc_parcel_t *p, size_t step)
{
    const char *const *f = p->history[step]->f;
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "barcode", p->number);
    rt_jsonw_kint (w, "step", (int64_t)step + 1);
    rt_jsonw_kstring (w, "date", f[UP_DATE]);
    rt_jsonw_kstring (w, "index", f[UP_INDEX]);
    rt_jsonw_kstring (w, "name", f[UP_NAME]);
    rt_jsonw_key (w, "event");
    rt_jsonw_raw (w, f[UP_EVENT]);
    rt_jsonw_kstring (w, "eventName", f[UP_EVENT_NAME]);
    rt_jsonw_kstring (w, "country", f[UP_COUNTRY]);
    rt_jsonw_kstring (w, "eventReason", *f[UP_HAS_REASON] ? f[UP_REASON] : NULL);
    rt_jsonw_key (w, "eventReason_id");
    rt_jsonw_raw (w, *f[UP_REASON_ID] ? f[UP_REASON_ID] : "null");
    rt_jsonw_object_end (w);
}

static void
s_answer_ukrposhta (rt_fake_carrier_t *fc, const fc_ask_t *ask, fc_made_t *m)
{
    rt_jsonw_t w;
    size_t found = 0;
    rt_jsonw_init (&w, &m->body);
    if (!ask->single)
        rt_jsonw_array (&w);
    for (size_t i = 0; i < ask->n; i++) {
        fc_parcel_t *p = fc_parcel_find (fc, RT_FC_UKRPOSHTA, ask->numbers[i], "");
        if (!p) {
            fc->carriers[RT_FC_UKRPOSHTA].stats.not_found++;
            continue;
        }
        fc_parcel_fetched (fc, p);
        found++;
        for (size_t k = ask->all_events ? 0 : p->n - 1; k < p->n; k++)
            s_ukrposhta_event (&w, p, k);
    }
    if (!ask->single)
        rt_jsonw_array_end (&w);
    if (!found) {
        rt_buf_reset (&m->body);
        s_json (m, 404, "{\"code\":404,\"message\":\"Barcode not found\"}");
        return;
    }
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
}

/* Meest's {descrUA, descrRU, descrEN}. */
static void
s_meest_descr (rt_jsonw_t *w, const char *key, const char *ua, const char *en)
{
    rt_jsonw_key (w, key);
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "descrUA", ua);
    rt_jsonw_kstring (w, "descrRU", "");
    rt_jsonw_kstring (w, "descrEN", en);
    rt_jsonw_object_end (w);
}

/* Meest's envelope up to result's value. */
static void
s_meest_head (rt_jsonw_t *w, const char *status, const char *field, const char *message)
{
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "status", status);
    rt_jsonw_kstring (w, "info", "");
    rt_jsonw_kstring (w, "fieldName", field);
    rt_jsonw_kstring (w, "message", message);
    rt_jsonw_kstring (w, "messageDetails", "");
    rt_jsonw_key (w, "result");
}

static void
s_answer_meest (rt_fake_carrier_t *fc, const fc_ask_t *ask, fc_made_t *m)
{
    rt_jsonw_t w;
    fc_parcel_t *p = fc_parcel_find (fc, RT_FC_MEEST, ask->numbers[0], "");
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    s_meest_head (&w, "OK", "", "");
    rt_jsonw_array (&w);
    if (p) {
        fc_parcel_fetched (fc, p);
        for (size_t k = 0; k < p->n; k++) {
            const char *const *f = p->history[k]->f;
            rt_jsonw_object (&w);
            rt_jsonw_kstring (&w, "parcelNumber", p->number);
            rt_jsonw_kstring (&w, "barCode", p->number);
            rt_jsonw_kstring (&w, "eventDateTime", f[ME_DATE]);
            rt_jsonw_key (&w, "eventCode");
            rt_jsonw_raw (&w, f[ME_CODE]);
            rt_jsonw_kstring (&w, "eventCodeUPU", "");
            rt_jsonw_kstring (&w, "eventPlaces", "");
            s_meest_descr (&w, "eventCountryDescr", f[ME_COUNTRY], "");
            s_meest_descr (&w, "eventCityDescr", f[ME_CITY], "");
            s_meest_descr (&w, "eventDescr", f[ME_DESCR], f[ME_DESCR_EN]);
            s_meest_descr (&w, "eventDetailDescr", f[ME_DETAIL], "");
            rt_jsonw_object_end (&w);
        }
    } else {
        fc->carriers[RT_FC_MEEST].stats.not_found++;
    }
    rt_jsonw_array_end (&w);
    rt_jsonw_object_end (&w);
}

/* DHL's {address: {countryCode, addressLocality}}; nothing when both "". */
static void
s_dhl_place (rt_jsonw_t *w, const char *key, const char *country, const char *locality)
{
    if (!*country && !*locality)
        return;
    rt_jsonw_key (w, key);
    rt_jsonw_object (w);
    rt_jsonw_key (w, "address");
    rt_jsonw_object (w);
    if (*country)
        rt_jsonw_kstring (w, "countryCode", country);
    if (*locality)
        rt_jsonw_kstring (w, "addressLocality", locality);
    rt_jsonw_object_end (w);
    rt_jsonw_object_end (w);
}

/* One DHL status: the shipment's or an event's. */
static void
s_dhl_status (rt_jsonw_t *w, const char *const *f)
{
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "timestamp", f[DHL_TIMESTAMP]);
    s_dhl_place (w, "location", "", f[DHL_LOCATION]);
    rt_jsonw_kstring (w, "statusCode", f[DHL_CODE]);
    rt_jsonw_kstring (w, "status", f[DHL_STATUS]);
    rt_jsonw_kstring (w, "description", f[DHL_DESCRIPTION]);
    rt_jsonw_object_end (w);
}

static void
s_dhl_shipment (rt_jsonw_t *w, const fc_parcel_t *p)
{
    const char *const *f = p->history[p->n - 1]->f;
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "id", p->number);
    rt_jsonw_kstring (w, "service", p->service);
    s_dhl_place (w, "origin", f[DHL_ORIGIN_COUNTRY], f[DHL_ORIGIN]);
    s_dhl_place (w, "destination", f[DHL_DESTINATION_COUNTRY], f[DHL_DESTINATION]);
    rt_jsonw_key (w, "status");
    s_dhl_status (w, f);
    if (*f[DHL_ESTIMATED])
        rt_jsonw_kstring (w, "estimatedTimeOfDelivery", f[DHL_ESTIMATED]);
    rt_jsonw_key (w, "details");
    rt_jsonw_object (w);
    rt_jsonw_kbool (w, "proofOfDeliverySignedAvailable", false);
    rt_jsonw_kint (w, "totalNumberOfPieces", 1);
    rt_jsonw_object_end (w);
    rt_jsonw_key (w, "events");
    rt_jsonw_array (w);
    for (size_t k = p->n; k-- > 0;)
        s_dhl_status (w, p->history[k]->f);
    rt_jsonw_array_end (w);
    rt_jsonw_object_end (w);
}

static void
s_answer_dhl (rt_fake_carrier_t *fc, const fc_ask_t *ask, fc_made_t *m)
{
    rt_jsonw_t w;
    size_t found = 0;
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "shipments");
    rt_jsonw_array (&w);
    for (size_t i = 0; i < fc->nservices; i++) {
        if (ask->service && strcmp (ask->service, fc->services[i]) != 0)
            continue;
        fc_parcel_t *p = fc_parcel_find (fc, RT_FC_DHL, ask->numbers[0], fc->services[i]);
        if (!p)
            continue;
        fc_parcel_fetched (fc, p);
        s_dhl_shipment (&w, p);
        found++;
    }
    rt_jsonw_array_end (&w);
    rt_jsonw_object_end (&w);
    if (!found) {
        fc->carriers[RT_FC_DHL].stats.not_found++;
        rt_buf_reset (&m->body);
        s_json (m, 404,
                "{\"title\":\"No result found\",\"status\":404,\"detail\":\"No shipment with given "
                "tracking number found.\"}");
        return;
    }
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
}

/* UPS's {type, description, code, statusCode} of a state. */
static void
s_ups_status (rt_jsonw_t *w, const char *const *f, bool current)
{
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "type", f[UPS_TYPE]);
    rt_jsonw_kstring (w, "description", f[UPS_DESCRIPTION]);
    rt_jsonw_kstring (w, "code", f[UPS_CODE]);
    rt_jsonw_kstring (w, "statusCode", f[UPS_STATUS_CODE]);
    if (current)
        rt_jsonw_kstring (w, "simplifiedTextDescription", f[UPS_SIMPLIFIED]);
    rt_jsonw_object_end (w);
}

static void
s_ups_activity (rt_jsonw_t *w, const char *const *f)
{
    rt_jsonw_object (w);
    rt_jsonw_key (w, "location");
    rt_jsonw_object (w);
    rt_jsonw_key (w, "address");
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "city", f[UPS_CITY]);
    rt_jsonw_kstring (w, "stateProvince", f[UPS_PROVINCE]);
    rt_jsonw_kstring (w, "countryCode", f[UPS_COUNTRY]);
    rt_jsonw_kstring (w, "country", f[UPS_COUNTRY]);
    rt_jsonw_object_end (w);
    rt_jsonw_object_end (w);
    rt_jsonw_key (w, "status");
    s_ups_status (w, f, false);
    rt_jsonw_kstring (w, "date", f[UPS_DATE]);
    rt_jsonw_kstring (w, "time", f[UPS_TIME]);
    rt_jsonw_kstring (w, "gmtDate", f[UPS_GMT_DATE]);
    rt_jsonw_kstring (w, "gmtOffset", f[UPS_GMT_OFFSET]);
    rt_jsonw_kstring (w, "gmtTime", f[UPS_GMT_TIME]);
    rt_jsonw_object_end (w);
}

static void
s_ups_date (rt_jsonw_t *w, const char *type, const char *date)
{
    if (!*date)
        return;
    rt_jsonw_object (w);
    rt_jsonw_kstring (w, "type", type);
    rt_jsonw_kstring (w, "date", date);
    rt_jsonw_object_end (w);
}

static void
s_answer_ups (rt_fake_carrier_t *fc, const fc_ask_t *ask, fc_made_t *m)
{
    rt_jsonw_t w;
    fc_parcel_t *p = fc_parcel_find (fc, RT_FC_UPS, ask->numbers[0], "");
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "trackResponse");
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "shipment");
    rt_jsonw_array (&w);
    rt_jsonw_object (&w);
    rt_jsonw_kstring (&w, "inquiryNumber", ask->numbers[0]);
    if (!p) {
        fc->carriers[RT_FC_UPS].stats.not_found++;
        rt_jsonw_key (&w, "warnings");
        rt_jsonw_array (&w);
        rt_jsonw_object (&w);
        rt_jsonw_kstring (&w, "code", "TW0001");
        rt_jsonw_kstring (&w, "message", "Tracking Information Not Found");
        rt_jsonw_object_end (&w);
        rt_jsonw_array_end (&w);
    } else {
        const char *const *f = p->history[p->n - 1]->f;
        fc_parcel_fetched (fc, p);
        rt_jsonw_key (&w, "package");
        rt_jsonw_array (&w);
        rt_jsonw_object (&w);
        rt_jsonw_kstring (&w, "trackingNumber", p->number);
        rt_jsonw_key (&w, "deliveryDate");
        rt_jsonw_array (&w);
        s_ups_date (&w, "SDD", f[UPS_SDD]);
        s_ups_date (&w, "RDD", f[UPS_RDD]);
        s_ups_date (&w, "DEL", f[UPS_DEL]);
        rt_jsonw_array_end (&w);
        if (*f[UPS_DEL_TIME]) {
            rt_jsonw_key (&w, "deliveryTime");
            rt_jsonw_object (&w);
            rt_jsonw_kstring (&w, "type", "DEL");
            rt_jsonw_kstring (&w, "endTime", f[UPS_DEL_TIME]);
            rt_jsonw_object_end (&w);
        }
        rt_jsonw_key (&w, "currentStatus");
        s_ups_status (&w, f, true);
        rt_jsonw_key (&w, "activity");
        rt_jsonw_array (&w);
        for (size_t k = p->n; k-- > 0;)
            s_ups_activity (&w, p->history[k]->f);
        rt_jsonw_array_end (&w);
        rt_jsonw_kint (&w, "packageCount", 1);
        rt_jsonw_object_end (&w);
        rt_jsonw_array_end (&w);
    }
    rt_jsonw_object_end (&w);
    rt_jsonw_array_end (&w);
    rt_jsonw_object_end (&w);
    rt_jsonw_object_end (&w);
}

void
fc_answer_state (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const fc_ask_t *ask, fc_made_t *m)
{
    switch (carrier) {
    case RT_FC_NOVA_POSHTA:
        s_answer_np (fc, ask, m);
        break;
    case RT_FC_UKRPOSHTA:
        s_answer_ukrposhta (fc, ask, m);
        break;
    case RT_FC_MEEST:
        s_answer_meest (fc, ask, m);
        break;
    case RT_FC_DHL:
        s_answer_dhl (fc, ask, m);
        break;
    case RT_FC_UPS:
        s_answer_ups (fc, ask, m);
        break;
    case RT_FC_CARRIERS:
        break;
    }
}

/* UPS's error shape, {response: {errors: [{code, message}]}}. */
static void
s_ups_error (fc_made_t *m, int status, const char *code, const char *message)
{
    rt_jsonw_t w;
    m->status = status;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "response");
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "errors");
    rt_jsonw_array (&w);
    rt_jsonw_object (&w);
    rt_jsonw_kstring (&w, "code", code);
    rt_jsonw_kstring (&w, "message", message);
    rt_jsonw_object_end (&w);
    rt_jsonw_array_end (&w);
    rt_jsonw_object_end (&w);
    rt_jsonw_object_end (&w);
}

/* DHL's {title, status, detail}. */
static void
s_dhl_problem (fc_made_t *m, int status, const char *title, const char *detail)
{
    rt_jsonw_t w;
    m->status = status;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_kstring (&w, "title", title);
    rt_jsonw_kint (&w, "status", status);
    rt_jsonw_kstring (&w, "detail", detail);
    rt_jsonw_object_end (&w);
}

/* The WSO2 gateway's fault, as Ukrposhta's API answers refusals. */
static void
s_wso2_fault (fc_made_t *m, int status, int code, const char *message, const char *description)
{
    rt_jsonw_t w;
    m->status = status;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "fault");
    rt_jsonw_object (&w);
    rt_jsonw_kint (&w, "code", code);
    rt_jsonw_kstring (&w, "message", message);
    rt_jsonw_kstring (&w, "description", description);
    rt_jsonw_object_end (&w);
    rt_jsonw_object_end (&w);
}

static void
s_meest_error (fc_made_t *m, int status, const char *field, const char *message)
{
    rt_jsonw_t w;
    m->status = status;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    s_meest_head (&w, "Error", field, message);
    rt_jsonw_null (&w);
    rt_jsonw_object_end (&w);
}

void
fc_answer_bad_key (rt_fc_carrier_t carrier, bool oauth, bool missing, fc_made_t *m)
{
    switch (carrier) {
    case RT_FC_NOVA_POSHTA:
        if (missing)
            s_np_error (m, "20000200069", "API key is not specified");
        else
            s_np_error (m, "20000200068", "API authentication failed");
        break;
    case RT_FC_UKRPOSHTA:
        if (missing)
            s_wso2_fault (m, 401, 900902, "Missing Credentials",
                          "Required OAuth credentials not provided. Make sure your API invocation "
                          "call has a header: 'Authorization: Bearer ACCESS_TOKEN'");
        else
            s_wso2_fault (m, 401, 900908, "Resource forbidden ",
                          "Access failure for API: /status-tracking/0.0.1, version: 0.0.1 status: "
                          "(900908) - Resource forbidden ");
        break;
    case RT_FC_MEEST:
        s_meest_error (m, 401, "token", "Invalid token");
        break;
    case RT_FC_DHL:
        s_dhl_problem (m, 401, "Unauthorized", "Invalid or missing DHL-API-Key.");
        break;
    case RT_FC_UPS:
        if (oauth)
            s_ups_error (m, 401, "10401", "ClientId is Invalid");
        else
            s_ups_error (m, 401, "250002", "Invalid Authentication Information.");
        break;
    case RT_FC_CARRIERS:
        break;
    }
}

void
fc_answer_bad_request (rt_fc_carrier_t carrier, const fc_ask_t *ask, fc_made_t *m)
{
    char body[512];
    switch (carrier) {
    case RT_FC_NOVA_POSHTA:
        s_np_error (m, ask->bad_code, ask->bad_text);
        break;
    case RT_FC_UKRPOSHTA:
        snprintf (body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", ask->bad_status,
                  ask->bad_text);
        s_json (m, ask->bad_status, body);
        break;
    case RT_FC_MEEST:
        s_meest_error (m, ask->bad_status, "", ask->bad_text);
        break;
    case RT_FC_DHL:
        s_dhl_problem (m, ask->bad_status, "Bad request", ask->bad_text);
        break;
    case RT_FC_UPS:
        s_ups_error (m, ask->bad_status, ask->bad_code, ask->bad_text);
        break;
    case RT_FC_CARRIERS:
        break;
    }
}

void
fc_answer_rate_limit (rt_fc_carrier_t carrier, int retry_after_s, fc_made_t *m)
{
    switch (carrier) {
    case RT_FC_NOVA_POSHTA:
    case RT_FC_MEEST:
        s_text (m, 429, "text/plain", "Too Many Requests");
        break;
    case RT_FC_UKRPOSHTA:
        s_wso2_fault (m, 429, 900800, "Message throttled out", "You have exceeded your quota");
        break;
    case RT_FC_DHL:
        s_dhl_problem (m, 429, "Too many requests", "Too many requests within defined time period");
        break;
    case RT_FC_UPS:
        s_ups_error (m, 429, "429", "Quota Limit Exceeded");
        break;
    case RT_FC_CARRIERS:
        break;
    }
    if (retry_after_s > 0 && carrier != RT_FC_UPS)
        snprintf (m->retry_after, sizeof m->retry_after, "%d", retry_after_s);
}

void
fc_answer_token (const fc_token_t *t, int64_t issued_ms, int64_t life_s, fc_made_t *m)
{
    rt_jsonw_t w;
    char issued[24], expires[24];
    snprintf (issued, sizeof issued, "%lld", (long long)issued_ms);
    snprintf (expires, sizeof expires, "%lld", (long long)life_s);
    m->status = 200;
    snprintf (m->content_type, sizeof m->content_type, "%s", "application/json");
    rt_jsonw_init (&w, &m->body);
    rt_jsonw_object (&w);
    rt_jsonw_kstring (&w, "token_type", "Bearer");
    rt_jsonw_kstring (&w, "issued_at", issued);
    rt_jsonw_kstring (&w, "client_id", t->client_id);
    rt_jsonw_kstring (&w, "access_token", t->token);
    rt_jsonw_kstring (&w, "scope", "");
    rt_jsonw_kstring (&w, "expires_in", expires);
    rt_jsonw_kstring (&w, "refresh_count", "0");
    rt_jsonw_kstring (&w, "status", "approved");
    rt_jsonw_object_end (&w);
}

/* --- documented errors, by code --- */

typedef struct {
    const char *code;    /* as rt_fc_answer_t.error */
    int status;          /* HTTP status */
    const char *message; /* the carrier's words */
} s_error_t;

static const s_error_t s_np_errors[] = {
    {"20000100016", 200, "Service unavailable"},
    {"20000200068", 200, "API authentication failed"},
    {"20000200069", 200, "API key is not specified"},
    {"20000200157", 200, "DocumentNumber is empty"},
    {"20000200158", 200, "DocumentNumber is incorrect"},
    {"20000200159", 200, "Documents must be array"},
    {"20000300415", 200, "Document not found"},
};

static const s_error_t s_ups_errors[] = {
    {"10401", 401, "ClientId is Invalid"},
    {"250002", 401, "Invalid Authentication Information."},
    {"250003", 401, "Invalid Access License number"},
    {"151018", 400, "Invalid tracking number"},
    {"TW0001", 404, "Tracking Information Not Found"},
};

static const s_error_t *
s_error_find (rt_fc_carrier_t carrier, const char *code)
{
    const s_error_t *table = NULL;
    size_t n = 0;
    if (carrier == RT_FC_NOVA_POSHTA) {
        table = s_np_errors;
        n = sizeof s_np_errors / sizeof *s_np_errors;
    } else if (carrier == RT_FC_UPS) {
        table = s_ups_errors;
        n = sizeof s_ups_errors / sizeof *s_ups_errors;
    } else if (carrier == RT_FC_UKRPOSHTA) {
        static const s_error_t forbidden = {"900908", 401, "Resource forbidden "};
        table = &forbidden;
        n = 1;
    }
    for (size_t i = 0; code && i < n; i++)
        if (strcmp (table[i].code, code) == 0)
            return &table[i];
    return NULL;
}

bool
fc_error_known (rt_fc_carrier_t carrier, const char *name)
{
    return s_error_find (carrier, name) != NULL;
}

void
fc_answer_canned (rt_fc_carrier_t carrier, const fc_script_t *s, fc_made_t *m)
{
    char page[512];
    switch (s->answer.kind) {
    case RT_FC_SERVER_ERROR:
        s_text (m, s->answer.status ? s->answer.status : 503, "text/plain", "Service Unavailable");
        break;
    case RT_FC_HTML: {
        int status = s->answer.status ? s->answer.status : 502;
        snprintf (
            page, sizeof page,
            "<html>\r\n<head><title>%d Bad Gateway</title></head>\r\n<body>\r\n<center><h1>%d "
            "Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            status, status);
        s_text (m, status, "text/html", page);
        break;
    }
    case RT_FC_GARBAGE:
        s_text (m, 200, "application/json", "<<\x01 not json \xff\xfe {\"data\": [ ]]");
        break;
    case RT_FC_ERROR: {
        const s_error_t *e = s_error_find (carrier, s->error);
        if (carrier == RT_FC_NOVA_POSHTA)
            s_np_error (m, e->code, e->message);
        else if (carrier == RT_FC_UKRPOSHTA)
            fc_answer_bad_key (carrier, false, false, m);
        else
            s_ups_error (m, e->status, e->code, e->message);
        break;
    }
    case RT_FC_RAW:
        s_text (m, s->answer.status ? s->answer.status : 200, s->content_type,
                s->body ? s->body : "");
        break;
    case RT_FC_STATE:
    case RT_FC_TRUNCATED:
    case RT_FC_RATE_LIMIT:
        break;
    }
}
