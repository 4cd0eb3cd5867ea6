/*
 * test_fake_carrier: the fake carriers (tests/support/
 * rt_test_fake_carrier.h) with plain libcurl, each carrier's documented
 * shape checked against what the carriers document
 * (../shared/reference/providers.md section 1 and the sources the header
 * names), not against what the fake happens to write.
 *
 * What trackerd's tests and benchmark rely on, so what is checked here:
 * every carrier answers a known parcel at its real path with its
 * documented fields (strings where the carrier sends strings, its times
 * in its format and zone, DST included), an unknown one with its
 * documented "not found", a wrong key with its documented refusal; Nova
 * Poshta's short record without the right Phone and its limit of 100
 * documents; a history answered in the carrier's order; DHL's service
 * telling two shipments apart; UPS's token issued, expired and revoked;
 * every scripted answer; spacing, quotas and per-parcel fetches enforced
 * and counted; a delay that times a client out while another request is
 * answered at once; and what a call of 100 documents costs (printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "rt_buf.h"
#include "rt_test.h"
#include "rt_test_fake_carrier.h"

/* Instants and what each carrier's clock shows at them (Europe/Kyiv is
 * UTC+2 until Sunday 29 March 2026 01:00 UTC, UTC+3 after; New York is
 * UTC-4 from 8 March 2026). */
#define T_WINTER     1772359200000LL /* 2026-03-01 10:00:00 UTC: Kyiv 12:00:00 */
#define T_BEFORE_DST 1774744200000LL /* 2026-03-29 00:30:00 UTC: Kyiv 02:30:00 */
#define T_AFTER_DST  1774747800000LL /* 2026-03-29 01:30:00 UTC: Kyiv 04:30:00 */
#define T_SUMMER     1774882800000LL /* 2026-03-30 15:00:00 UTC: Kyiv 18:00:00 */
#define T_UPS_SCAN   1773169475000LL /* 2026-03-10 19:04:35 UTC: New York 15:04:35 */
#define T_UPS_DUE    1773331200000LL /* 2026-03-12 16:00:00 UTC: New York 12:00:00 */
#define T_LATE       1775001540000LL /* 2026-03-31 23:59:00 UTC: a minute before the UTC day ends */

typedef struct {
    rt_fake_carrier_t *fake; /* the carriers */
    CURL *curl;              /* one handle, so its connections are kept alive */
    int64_t now_ms;          /* the fake's clock, when a test gives it one */
} s_fixture_t;

/* One answer as the client saw it. */
typedef struct {
    long status;          /* HTTP status, 0 when none came */
    CURLcode result;      /* libcurl's result */
    rt_buf_t body;        /* the body, whole */
    char type[128];       /* Content-Type, "" when none */
    char retry_after[32]; /* Retry-After, "" when none */
} s_reply_t;

static int64_t
s_clock (void *arg)
{
    return ((s_fixture_t *)arg)->now_ms;
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->fake = rt_fake_carrier_start ();
    f->curl = curl_easy_init ();
    assert_non_null (f->curl);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    curl_easy_cleanup (f->curl);
    rt_fake_carrier_stop (&f->fake);
    assert_null (f->fake);
    free (f);
    return 0;
}

static size_t
s_on_body (char *data, size_t size, size_t n, void *arg)
{
    rt_buf_put (&((s_reply_t *)arg)->body, data, size * n);
    return size * n;
}

static size_t
s_on_header (char *data, size_t size, size_t n, void *arg)
{
    s_reply_t *r = arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp (data, "Retry-After:", 12) == 0) {
        const char *v = data + 12;
        size_t vlen = len - 12;
        while (vlen && *v == ' ') {
            v++;
            vlen--;
        }
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
            vlen--;
        snprintf (r->retry_after, sizeof r->retry_after, "%.*s", (int)vlen, v);
    }
    return len;
}

static void
s_reply_free (s_reply_t *r)
{
    rt_buf_free (&r->body);
}

/* Prepares handle h for one exchange into r (reset first). */
static struct curl_slist *
s_prepare (CURL *h, const char *method, const char *url, const char *const *headers,
           const char *body, const char *userpwd, long timeout_ms, s_reply_t *r)
{
    struct curl_slist *list = NULL;
    s_reply_free (r);
    memset (r, 0, sizeof *r);
    curl_easy_reset (h);
    curl_easy_setopt (h, CURLOPT_URL, url);
    curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt (h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE, (long)strlen (body));
    }
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append (list, headers[i]);
    curl_easy_setopt (h, CURLOPT_HTTPHEADER, list);
    if (userpwd) {
        curl_easy_setopt (h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt (h, CURLOPT_USERPWD, userpwd);
    }
    curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
    curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (h, CURLOPT_HEADERDATA, r);
    return list;
}

/* After an exchange on h: its status and type into r. */
static void
s_finish (CURL *h, s_reply_t *r)
{
    char *type = NULL;
    curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo (h, CURLINFO_CONTENT_TYPE, &type);
    snprintf (r->type, sizeof r->type, "%s", type ? type : "");
    rt_buf_put (&r->body, "", 0);
}

/* One exchange on h; the HTTP status (0 when none came). */
static long
s_call_on (CURL *h, const char *method, const char *url, const char *const *headers,
           const char *body, const char *userpwd, long timeout_ms, s_reply_t *r)
{
    struct curl_slist *list = s_prepare (h, method, url, headers, body, userpwd, timeout_ms, r);
    r->result = curl_easy_perform (h);
    s_finish (h, r);
    curl_slist_free_all (list);
    return r->status;
}

static long
s_call (s_fixture_t *f, const char *method, const char *url, const char *const *headers,
        const char *body, s_reply_t *r)
{
    return s_call_on (f->curl, method, url, headers, body, NULL, 0, r);
}

/* "<api of carrier><path>". */
static const char *
s_url (s_fixture_t *f, rt_fc_carrier_t carrier, const char *path, char *out, size_t len)
{
    snprintf (out, len, "%s%s", rt_fake_carrier_api (f->fake, carrier), path);
    return out;
}

static json_t *
s_json (const s_reply_t *r)
{
    json_error_t error;
    json_t *doc = json_loadb (r->body.data ? r->body.data : "", r->body.len, 0, &error);
    if (!doc)
        fail_msg ("not JSON (%s): %.*s", error.text, (int)r->body.len, r->body.data);
    return doc;
}

static const char *
s_str (json_t *obj, const char *key)
{
    json_t *v = json_object_get (obj, key);
    if (!json_is_string (v))
        fail_msg ("%s is not a string", key);
    return json_string_value (v);
}

static json_t *
s_at (json_t *doc, const char *key, size_t i)
{
    json_t *v = json_array_get (json_object_get (doc, key), i);
    if (!v)
        fail_msg ("%s has no entry %zu", key, i);
    return v;
}

/* A Nova Poshta getStatusDocuments body for numbers (with phones, may be
 * NULL) and key; owned. */
static char *
s_np_body (const char *key, const char *const *numbers, const char *const *phones, size_t n)
{
    json_t *docs = json_array ();
    for (size_t i = 0; i < n; i++)
        json_array_append_new (docs, json_pack ("{s:s, s:s}", "DocumentNumber", numbers[i], "Phone",
                                                phones && phones[i] ? phones[i] : ""));
    json_t *doc = json_pack ("{s:s, s:s, s:s, s:{s:o, s:s}}", "apiKey", key, "modelName",
                             "TrackingDocument", "calledMethod", "getStatusDocuments",
                             "methodProperties", "Documents", docs, "Language", "UA");
    char *text = json_dumps (doc, JSON_COMPACT);
    json_decref (doc);
    assert_non_null (text);
    return text;
}

/* POSTs body to Nova Poshta; the answer's JSON (owned), its status 200. */
static json_t *
s_np_post (s_fixture_t *f, const char *body, s_reply_t *r)
{
    char url[256];
    const char *headers[] = {"Content-Type: application/json", NULL};
    assert_int_equal (
        s_call (f, "POST", s_url (f, RT_FC_NOVA_POSHTA, "", url, sizeof url), headers, body, r),
        200);
    return s_json (r);
}

/* Nova Poshta's envelope lists, all arrays. */
static void
s_np_envelope (json_t *doc, bool success)
{
    static const char *const lists[] = {"data",         "errors",     "warnings",     "info",
                                        "messageCodes", "errorCodes", "warningCodes", "infoCodes"};
    assert_true (json_is_boolean (json_object_get (doc, "success")));
    assert_int_equal (json_is_true (json_object_get (doc, "success")), success);
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        if (!json_is_array (json_object_get (doc, lists[i])))
            fail_msg ("Nova Poshta's %s is not an array", lists[i]);
}

/* A refusal: success false, errorCodes [code] (none when code is NULL)
 * and some words in errors. */
static void
s_np_refused (json_t *doc, const char *code)
{
    s_np_envelope (doc, false);
    assert_int_equal (json_array_size (json_object_get (doc, "data")), 0);
    assert_true (json_array_size (json_object_get (doc, "errors")) >= 1);
    json_t *codes = json_object_get (doc, "errorCodes");
    if (code) {
        assert_int_equal (json_array_size (codes), 1);
        assert_string_equal (json_string_value (json_array_get (codes, 0)), code);
    }
}

/* --- the bases trackerd is configured with --- */

static void
test_bases (void **state)
{
    s_fixture_t *f = *state;
    char want[256];
    const char *base = rt_fake_carrier_base (f->fake);
    assert_true (strncmp (base, "http://127.0.0.1:", 17) == 0);
    snprintf (want, sizeof want, "%s/v2.0/json/", base);
    assert_string_equal (rt_fake_carrier_api (f->fake, RT_FC_NOVA_POSHTA), want);
    snprintf (want, sizeof want, "%s/status-tracking/0.0.1", base);
    assert_string_equal (rt_fake_carrier_api (f->fake, RT_FC_UKRPOSHTA), want);
    snprintf (want, sizeof want, "%s/v3.0/openAPI", base);
    assert_string_equal (rt_fake_carrier_api (f->fake, RT_FC_MEEST), want);
    assert_string_equal (rt_fake_carrier_api (f->fake, RT_FC_DHL), base);
    assert_string_equal (rt_fake_carrier_api (f->fake, RT_FC_UPS), base);
    static const char *const names[] = {"nova_poshta", "ukrposhta", "meest", "dhl", "ups"};
    for (int i = 0; i < RT_FC_CARRIERS; i++) {
        assert_int_equal (rt_fake_carrier_find (names[i]), i);
        assert_string_equal (rt_fake_carrier_name ((rt_fc_carrier_t)i), names[i]);
    }
    assert_int_equal (rt_fake_carrier_find ("novaposhta"), RT_FC_CARRIERS);
}

/* --- Nova Poshta --- */

static const rt_fc_np_state_t s_np_at_branch = {
    .status_code = "7",
    .status = "Прибув на відділення",
    .created_ms = T_WINTER,
    .scheduled_ms = T_SUMMER,
    .payed_keeping_ms = T_AFTER_DST,
    .updated_ms = T_BEFORE_DST,
    .city_sender = "Київ",
    .city_recipient = "Львів",
    .warehouse_sender = "Відділення №1: вул. Пирогівський шлях, 135",
    .warehouse_recipient = "Відділення №5 (до 30 кг): вул. Городоцька, 120",
    .cod_status = "Очікує отримання",
    .redelivery_sum = "1250",
    .phone_recipient = "380958860454",
    .phone_sender = "380671112233",
    .recipient_name = "Олена Петренко",
};

static void
test_nova_poshta_records (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    rt_fake_carrier_account (f->fake, RT_FC_NOVA_POSHTA, "0123456789abcdef0123456789abcdef", NULL);
    rt_fake_carrier_np_set (f->fake, "20450059800767", &s_np_at_branch);

    const char *numbers[] = {"20450059800767", "20450059800767", "20450000000001"};
    const char *phones[] = {"380958860454", "380500000000", ""};
    char *body = s_np_body ("0123456789abcdef0123456789abcdef", numbers, phones, 3);
    json_t *doc = s_np_post (f, body, &r);
    assert_string_equal (r.type, "application/json");
    s_np_envelope (doc, true);
    assert_int_equal (json_array_size (json_object_get (doc, "data")), 3);
    assert_int_equal (json_array_size (json_object_get (doc, "errors")), 0);

    /* The full record: every value a string but the Possibility* flags. */
    json_t *item = s_at (doc, "data", 0);
    const char *key;
    json_t *value;
    json_object_foreach (item, key, value)
    {
        if (strncmp (key, "Possibility", 11) == 0)
            assert_true (json_is_boolean (value));
        else if (!json_is_string (value))
            fail_msg ("Nova Poshta's %s is not a string", key);
    }
    assert_string_equal (s_str (item, "Number"), "20450059800767");
    assert_string_equal (s_str (item, "StatusCode"), "7");
    assert_string_equal (s_str (item, "Status"), "Прибув на відділення");
    /* Kyiv time: EET before 29 March, EEST after. */
    assert_string_equal (s_str (item, "DateCreated"), "2026-03-01 12:00:00");
    assert_string_equal (s_str (item, "TrackingUpdateDate"), "2026-03-29 02:30:00");
    assert_string_equal (s_str (item, "DatePayedKeeping"), "2026-03-29 04:30:00");
    assert_string_equal (s_str (item, "ScheduledDeliveryDate"), "2026-03-30 18:00:00");
    assert_string_equal (s_str (item, "RecipientDateTime"), "");
    assert_string_equal (s_str (item, "ActualDeliveryDate"), "");
    assert_string_equal (s_str (item, "CitySender"), "Київ");
    assert_string_equal (s_str (item, "CityRecipient"), "Львів");
    assert_string_equal (s_str (item, "WarehouseRecipient"),
                         "Відділення №5 (до 30 кг): вул. Городоцька, 120");
    assert_string_equal (s_str (item, "LastTransactionStatusGM"), "Очікує отримання");
    assert_string_equal (s_str (item, "RedeliverySum"), "1250");
    assert_string_equal (s_str (item, "RecipientFullName"), "Олена Петренко");
    assert_string_equal (s_str (item, "PhoneRecipient"), "380958860454");
    assert_string_equal (s_str (item, "PhoneSender"), "380671112233");
    assert_true (strlen (s_str (item, "RefEW")) == 36);

    /* Another phone: the short record, the status and places still there. */
    item = s_at (doc, "data", 1);
    assert_string_equal (s_str (item, "StatusCode"), "7");
    assert_string_equal (s_str (item, "ScheduledDeliveryDate"), "2026-03-30 18:00:00");
    assert_string_equal (s_str (item, "CityRecipient"), "Львів");
    assert_string_equal (s_str (item, "RecipientFullName"), "");
    assert_string_equal (s_str (item, "PhoneRecipient"), "");
    assert_string_equal (s_str (item, "PhoneSender"), "");
    assert_string_equal (s_str (item, "RecipientAddress"), "");
    assert_string_equal (s_str (item, "SenderAddress"), "");

    /* Unknown: an item with StatusCode "3", not an envelope error. */
    item = s_at (doc, "data", 2);
    assert_string_equal (s_str (item, "Number"), "20450000000001");
    assert_string_equal (s_str (item, "StatusCode"), "3");
    assert_string_equal (s_str (item, "Status"), "Номер не знайдено");
    json_decref (doc);

    /* A new state is the current one; received fills both receipt fields. */
    rt_fc_np_state_t got = s_np_at_branch;
    got.status_code = "9";
    got.status = "Відправлення отримано";
    got.received_ms = T_SUMMER;
    got.updated_ms = T_SUMMER;
    rt_fake_carrier_np_set (f->fake, "20450059800767", &got);
    doc = s_np_post (f, body, &r);
    item = s_at (doc, "data", 0);
    assert_string_equal (s_str (item, "StatusCode"), "9");
    assert_string_equal (s_str (item, "RecipientDateTime"), "2026-03-30 18:00:00");
    assert_string_equal (s_str (item, "ActualDeliveryDate"), "2026-03-30 18:00:00");
    json_decref (doc);
    free (body);

    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, 2);
    assert_int_equal (st.documents, 6);
    assert_int_equal (st.not_found, 2);
    assert_int_equal (rt_fake_carrier_fetches (f->fake, RT_FC_NOVA_POSHTA, "20450059800767"), 4);
    rt_fc_call_t call;
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 1, &call));
    assert_int_equal (call.documents, 3);
    assert_int_equal (call.status, 200);
    assert_int_equal (call.outcome, RT_FC_ANSWERED);
    assert_string_equal (call.number, "20450059800767");
    assert_false (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 2, &call));
    s_reply_free (&r);
}

static void
test_nova_poshta_refusals (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    const char *key = "0123456789abcdef0123456789abcdef";
    const char *one[] = {"20450059800767"};
    rt_fake_carrier_account (f->fake, RT_FC_NOVA_POSHTA, key, NULL);

    /* Credentials: HTTP 200, success false, the code. */
    char *body = s_np_body ("ffffffffffffffffffffffffffffffff", one, NULL, 1);
    json_t *doc = s_np_post (f, body, &r);
    s_np_refused (doc, "20000200068");
    json_decref (doc);
    free (body);
    body = s_np_body ("", one, NULL, 1);
    doc = s_np_post (f, body, &r);
    s_np_refused (doc, "20000200069");
    json_decref (doc);
    free (body);

    /* The documents. */
    const char *wrong[] = {"2045005980076A"};
    body = s_np_body (key, wrong, NULL, 1);
    doc = s_np_post (f, body, &r);
    s_np_refused (doc, "20000200158");
    json_decref (doc);
    free (body);
    const char *empty[] = {""};
    body = s_np_body (key, empty, NULL, 1);
    doc = s_np_post (f, body, &r);
    s_np_refused (doc, "20000200157");
    json_decref (doc);
    free (body);
    char not_array[256];
    snprintf (not_array, sizeof not_array,
              "{\"apiKey\":\"%s\",\"modelName\":\"TrackingDocument\",\"calledMethod\":"
              "\"getStatusDocuments\",\"methodProperties\":{\"Documents\":\"20450059800767\"}}",
              key);
    doc = s_np_post (f, not_array, &r);
    s_np_refused (doc, "20000200159");
    json_decref (doc);

    /* 100 documents are one call; 101 are refused. */
    const char *many[101];
    char numbers[101][16];
    for (int i = 0; i < 101; i++) {
        snprintf (numbers[i], sizeof numbers[i], "%014d", 20450000 + i);
        many[i] = numbers[i];
    }
    body = s_np_body (key, many, NULL, 100);
    doc = s_np_post (f, body, &r);
    s_np_envelope (doc, true);
    assert_int_equal (json_array_size (json_object_get (doc, "data")), 100);
    json_decref (doc);
    free (body);
    body = s_np_body (key, many, NULL, 101);
    doc = s_np_post (f, body, &r);
    s_np_refused (doc, NULL);
    json_decref (doc);
    free (body);

    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, 7);
    assert_int_equal (st.bad_key, 2);
    assert_int_equal (st.bad_request, 4);
    rt_fc_call_t call;
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 0, &call));
    assert_int_equal (call.outcome, RT_FC_BAD_KEY);
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 6, &call));
    assert_int_equal (call.outcome, RT_FC_BAD_REQUEST);
    assert_int_equal (call.documents, 101);
    s_reply_free (&r);
}

/* --- Ukrposhta --- */

static void
test_ukrposhta (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    const char *auth[] = {"Authorization: Bearer 5ad1cb74-status-tracking",
                          "Content-Type: application/json", NULL};
    rt_fake_carrier_account (f->fake, RT_FC_UKRPOSHTA, "5ad1cb74-status-tracking", NULL);
    rt_fc_ukrposhta_state_t accepted = {.event = 10100,
                                        .event_name = "Прийнято",
                                        .at_ms = T_WINTER,
                                        .index = "01001",
                                        .name = "Київ 1"};
    rt_fc_ukrposhta_state_t arrived = {.event = 21700,
                                       .event_name = "Надійшло до відділення",
                                       .at_ms = T_SUMMER,
                                       .index = "79000",
                                       .name = "Львів 1"};
    rt_fc_ukrposhta_state_t returned = {.event = 41000,
                                        .event_name = "Повернуто відправнику",
                                        .at_ms = T_AFTER_DST,
                                        .index = "01001",
                                        .name = "Київ 1",
                                        .event_reason_id = 10,
                                        .event_reason = "За закінченням терміну зберігання"};
    rt_fake_carrier_ukrposhta_set (f->fake, "0500123456789", &accepted);
    rt_fake_carrier_ukrposhta_set (f->fake, "0500123456789", &arrived);
    rt_fake_carrier_ukrposhta_set (f->fake, "RB123456789UA", &returned);

    /* The batch: the known barcodes' last events, the unknown left out. */
    s_url (f, RT_FC_UKRPOSHTA, "/statuses/last", url, sizeof url);
    assert_int_equal (s_call (f, "POST", url, auth,
                              "[\"0500123456789\",\"0500000000000\",\"RB123456789UA\"]", &r),
                      200);
    json_t *doc = s_json (&r);
    assert_true (json_is_array (doc));
    assert_int_equal (json_array_size (doc), 2);
    json_t *ev = json_array_get (doc, 0);
    assert_string_equal (s_str (ev, "barcode"), "0500123456789");
    assert_true (json_is_integer (json_object_get (ev, "event")));
    assert_int_equal (json_integer_value (json_object_get (ev, "event")), 21700);
    assert_string_equal (s_str (ev, "eventName"), "Надійшло до відділення");
    assert_string_equal (s_str (ev, "date"), "2026-03-30T18:00:00");
    assert_string_equal (s_str (ev, "index"), "79000");
    assert_string_equal (s_str (ev, "name"), "Львів 1");
    assert_true (json_is_null (json_object_get (ev, "eventReason_id")));
    ev = json_array_get (doc, 1);
    assert_int_equal (json_integer_value (json_object_get (ev, "event")), 41000);
    assert_int_equal (json_integer_value (json_object_get (ev, "eventReason_id")), 10);
    assert_string_equal (s_str (ev, "date"), "2026-03-29T04:30:00");
    json_decref (doc);

    /* None known: 404. */
    assert_int_equal (s_call (f, "POST", url, auth, "[\"0500000000000\"]", &r), 404);

    /* One barcode's whole history, oldest first. */
    s_url (f, RT_FC_UKRPOSHTA, "/statuses?barcode=0500123456789", url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, auth, NULL, &r), 200);
    doc = s_json (&r);
    assert_int_equal (json_array_size (doc), 2);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (doc, 0), "event")),
                      10100);
    assert_string_equal (s_str (json_array_get (doc, 0), "date"), "2026-03-01T12:00:00");
    json_decref (doc);

    /* A wrong bearer: 401 with 900908. */
    const char *wrong[] = {"Authorization: Bearer someone-else", NULL};
    s_url (f, RT_FC_UKRPOSHTA, "/statuses/last", url, sizeof url);
    assert_int_equal (s_call (f, "POST", url, wrong, "[\"0500123456789\"]", &r), 401);
    assert_non_null (strstr (r.body.data, "900908"));
    assert_int_equal (s_call (f, "POST", url, NULL, "[\"0500123456789\"]", &r), 401);

    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_UKRPOSHTA, &st);
    assert_int_equal (st.calls, 5);
    assert_int_equal (st.documents, 7);
    assert_int_equal (st.not_found, 2);
    assert_int_equal (st.bad_key, 2);
    s_reply_free (&r);
}

/* --- Meest --- */

static void
test_meest (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    const char *token[] = {"token: meest-token-1", NULL};
    rt_fake_carrier_account (f->fake, RT_FC_MEEST, "meest-token-1", NULL);
    rt_fc_meest_state_t created = {
        .event_code = 2, .descr = "Створено накладну", .at_ms = T_WINTER, .city = "Київ"};
    rt_fc_meest_state_t delivered = {.event_code = 1622,
                                     .descr = "Доставлено",
                                     .descr_en = "Delivered",
                                     .at_ms = T_SUMMER,
                                     .city = "Львів"};
    rt_fake_carrier_meest_set (f->fake, "722-1234567", &created);
    rt_fake_carrier_meest_set (f->fake, "722-1234567", &delivered);

    s_url (f, RT_FC_MEEST, "/tracking/722-1234567", url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, token, NULL, &r), 200);
    json_t *doc = s_json (&r);
    assert_string_equal (s_str (doc, "status"), "OK");
    json_t *result = json_object_get (doc, "result");
    assert_int_equal (json_array_size (result), 2);
    json_t *ev = json_array_get (result, 0);
    assert_true (json_is_integer (json_object_get (ev, "eventCode")));
    assert_int_equal (json_integer_value (json_object_get (ev, "eventCode")), 2);
    ev = json_array_get (result, 1);
    assert_int_equal (json_integer_value (json_object_get (ev, "eventCode")), 1622);
    assert_string_equal (s_str (json_object_get (ev, "eventDescr"), "descrUA"), "Доставлено");
    assert_string_equal (s_str (json_object_get (ev, "eventDescr"), "descrEN"), "Delivered");
    assert_string_equal (s_str (json_object_get (ev, "eventCityDescr"), "descrUA"), "Львів");
    assert_string_equal (s_str (ev, "eventDateTime"), "2026-03-30 18:00:00");
    assert_string_equal (s_str (ev, "parcelNumber"), "722-1234567");
    json_decref (doc);

    s_url (f, RT_FC_MEEST, "/tracking/722-0000000", url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, token, NULL, &r), 200);
    doc = s_json (&r);
    assert_int_equal (json_array_size (json_object_get (doc, "result")), 0);
    json_decref (doc);

    const char *wrong[] = {"token: another", NULL};
    assert_int_equal (s_call (f, "GET", url, wrong, NULL, &r), 401);
    assert_int_equal (s_call (f, "GET", url, NULL, NULL, &r), 401);
    s_reply_free (&r);
}

/* --- DHL --- */

static void
test_dhl (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    const char *key[] = {"DHL-API-Key: dhl-consumer-key", NULL};
    rt_fake_carrier_account (f->fake, RT_FC_DHL, "dhl-consumer-key", NULL);
    rt_fc_dhl_state_t picked = {.service = "express",
                                .status_code = "pre-transit",
                                .status = "SHIPMENT INFORMATION RECEIVED",
                                .description = "Shipment information received",
                                .at_ms = T_WINTER,
                                .location = "Bonn",
                                .origin = "Bonn",
                                .origin_country = "DE",
                                .destination = "Kyiv",
                                .destination_country = "UA"};
    rt_fc_dhl_state_t moving = picked;
    moving.status_code = "transit";
    moving.status = "PROCESSED AT LEIPZIG - GERMANY";
    moving.description = "Processed at Leipzig";
    moving.at_ms = T_AFTER_DST;
    moving.location = "Leipzig";
    moving.estimated_ms = T_SUMMER;
    rt_fc_dhl_state_t other = {.service = "parcel-de",
                               .status_code = "delivered",
                               .status = "Zugestellt",
                               .at_ms = T_SUMMER,
                               .destination = "Berlin",
                               .destination_country = "DE"};
    rt_fake_carrier_dhl_set (f->fake, "1234567890", &picked);
    rt_fake_carrier_dhl_set (f->fake, "1234567890", &moving);
    rt_fake_carrier_dhl_set (f->fake, "1234567890", &other);

    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=1234567890&service=express&language=en",
           url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);
    json_t *doc = s_json (&r);
    assert_int_equal (json_array_size (json_object_get (doc, "shipments")), 1);
    json_t *sh = s_at (doc, "shipments", 0);
    assert_string_equal (s_str (sh, "id"), "1234567890");
    assert_string_equal (s_str (sh, "service"), "express");
    json_t *status = json_object_get (sh, "status");
    assert_string_equal (s_str (status, "statusCode"), "transit");
    assert_string_equal (s_str (status, "timestamp"), "2026-03-29T01:30:00Z");
    assert_string_equal (s_str (sh, "estimatedTimeOfDelivery"), "2026-03-30T15:00:00Z");
    json_t *origin = json_object_get (json_object_get (sh, "origin"), "address");
    assert_string_equal (s_str (origin, "addressLocality"), "Bonn");
    assert_string_equal (s_str (origin, "countryCode"), "DE");
    /* Events newest first, as DHL answers. */
    json_t *events = json_object_get (sh, "events");
    assert_int_equal (json_array_size (events), 2);
    assert_string_equal (s_str (json_array_get (events, 0), "statusCode"), "transit");
    assert_string_equal (s_str (json_array_get (events, 1), "statusCode"), "pre-transit");
    assert_string_equal (s_str (json_array_get (events, 1), "timestamp"), "2026-03-01T10:00:00Z");
    json_decref (doc);

    /* Without service: every shipment of the number. */
    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=1234567890", url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);
    doc = s_json (&r);
    assert_int_equal (json_array_size (json_object_get (doc, "shipments")), 2);
    json_decref (doc);
    assert_int_equal (rt_fake_carrier_fetches (f->fake, RT_FC_DHL, "1234567890"), 3);

    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=9999999999", url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 404);
    doc = s_json (&r);
    assert_int_equal (json_integer_value (json_object_get (doc, "status")), 404);
    json_decref (doc);
    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=1234567890&service=freight", url,
           sizeof url);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 404);

    const char *wrong[] = {"DHL-API-Key: not-mine", NULL};
    assert_int_equal (s_call (f, "GET", url, wrong, NULL, &r), 401);
    s_reply_free (&r);
}

/* --- UPS --- */

/* A UPS token through the fake, into token; the answer's status. */
static long
s_ups_token (s_fixture_t *f, const char *userpwd, const char *form, char *token, size_t len,
             s_reply_t *r)
{
    char url[256];
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    s_url (f, RT_FC_UPS, "/security/v1/oauth/token", url, sizeof url);
    long status = s_call_on (f->curl, "POST", url, headers, form, userpwd, 0, r);
    if (status == 200 && token) {
        json_t *doc = s_json (r);
        snprintf (token, len, "%s", s_str (doc, "access_token"));
        json_decref (doc);
    }
    return status;
}

static long
s_ups_track (s_fixture_t *f, const char *number, const char *token, bool with_headers, s_reply_t *r)
{
    char url[256], auth[128];
    snprintf (auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *full[] = {auth, "transId: 7f4b2d00e9a14c3b", "transactionSrc: retain", NULL};
    const char *bare[] = {auth, NULL};
    char path[128];
    snprintf (path, sizeof path, "/api/track/v1/details/%s?locale=en_US", number);
    return s_call (f, "GET", s_url (f, RT_FC_UPS, path, url, sizeof url),
                   with_headers ? full : bare, NULL, r);
}

/* An answer in UPS's error shape, {response: {errors: [{code, message}]}},
 * its code `code` (any when NULL). */
static void
s_ups_code (const s_reply_t *r, const char *code)
{
    json_t *doc = s_json (r);
    json_t *err = json_array_get (json_object_get (json_object_get (doc, "response"), "errors"), 0);
    if (!err)
        fail_msg ("not UPS's error shape: %s", r->body.data);
    if (code)
        assert_string_equal (s_str (err, "code"), code);
    else
        assert_true (strlen (s_str (err, "code")) > 0);
    assert_true (strlen (s_str (err, "message")) > 0);
    json_decref (doc);
}

static void
test_ups (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char token[128];
    f->now_ms = T_UPS_SCAN;
    rt_fake_carrier_clock (f->fake, s_clock, f);
    rt_fake_carrier_account (f->fake, RT_FC_UPS, "ups-client", "ups-secret");
    rt_fc_ups_state_t label = {.type = "M",
                               .code = "MP",
                               .status_code = "003",
                               .description = "Shipper created a label",
                               .at_ms = T_WINTER,
                               .tz = "America/New_York",
                               .city = "Atlanta",
                               .province = "GA",
                               .country = "US"};
    rt_fc_ups_state_t moving = {.type = "I",
                                .code = "DP",
                                .status_code = "005",
                                .description = "Departed from Facility",
                                .simplified = "On the Way",
                                .at_ms = T_UPS_SCAN,
                                .tz = "America/New_York",
                                .city = "Louisville",
                                .province = "KY",
                                .country = "US",
                                .scheduled_ms = T_UPS_DUE};
    rt_fake_carrier_ups_set (f->fake, "1Z5338FF0107346023", &label);
    rt_fake_carrier_ups_set (f->fake, "1Z5338FF0107346023", &moving);

    /* The token: every value a string, expires_in "14399". */
    assert_int_equal (s_ups_token (f, "ups-client:ups-secret", "grant_type=client_credentials",
                                   token, sizeof token, &r),
                      200);
    json_t *doc = s_json (&r);
    const char *key;
    json_t *value;
    json_object_foreach (doc, key, value)
    {
        if (!json_is_string (value))
            fail_msg ("UPS's token %s is not a string", key);
    }
    assert_string_equal (s_str (doc, "token_type"), "Bearer");
    assert_string_equal (s_str (doc, "expires_in"), "14399");
    assert_string_equal (s_str (doc, "status"), "approved");
    assert_string_equal (s_str (doc, "client_id"), "ups-client");
    assert_true (strtoll (s_str (doc, "issued_at"), NULL, 10) == T_UPS_SCAN);
    json_decref (doc);
    char last[128];
    assert_true (rt_fake_carrier_ups_token (f->fake, last, sizeof last));
    assert_string_equal (last, token);

    assert_int_equal (
        s_ups_token (f, "ups-client:wrong", "grant_type=client_credentials", NULL, 0, &r), 401);
    s_ups_code (&r, "10401");
    assert_int_equal (s_ups_token (f, "ups-client:ups-secret", "grant_type=password", NULL, 0, &r),
                      400);

    /* Tracking: the package, activity newest first, local dates. */
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", token, true, &r), 200);
    doc = s_json (&r);
    json_t *shipment =
        json_array_get (json_object_get (json_object_get (doc, "trackResponse"), "shipment"), 0);
    assert_string_equal (s_str (shipment, "inquiryNumber"), "1Z5338FF0107346023");
    json_t *pkg = s_at (shipment, "package", 0);
    assert_string_equal (s_str (pkg, "trackingNumber"), "1Z5338FF0107346023");
    json_t *current = json_object_get (pkg, "currentStatus");
    assert_string_equal (s_str (current, "type"), "I");
    assert_string_equal (s_str (current, "code"), "DP");
    assert_string_equal (s_str (current, "statusCode"), "005");
    assert_string_equal (s_str (current, "simplifiedTextDescription"), "On the Way");
    json_t *sdd = s_at (pkg, "deliveryDate", 0);
    assert_string_equal (s_str (sdd, "type"), "SDD");
    assert_string_equal (s_str (sdd, "date"), "20260312");
    json_t *act = s_at (pkg, "activity", 0);
    assert_string_equal (s_str (json_object_get (act, "status"), "type"), "I");
    assert_string_equal (s_str (act, "date"), "20260310");
    assert_string_equal (s_str (act, "time"), "150435");
    assert_string_equal (s_str (act, "gmtDate"), "20260310");
    assert_string_equal (s_str (act, "gmtTime"), "19:04:35");
    assert_string_equal (s_str (act, "gmtOffset"), "-04:00");
    assert_string_equal (
        s_str (json_object_get (json_object_get (act, "location"), "address"), "city"),
        "Louisville");
    act = s_at (pkg, "activity", 1);
    assert_string_equal (s_str (json_object_get (act, "status"), "type"), "M");
    assert_string_equal (s_str (act, "date"), "20260301");
    assert_string_equal (s_str (act, "time"), "050000");
    json_decref (doc);

    /* Unknown: 200 with the TW0001 warning, as UPS answers. */
    assert_int_equal (s_ups_track (f, "1Z0000000000000000", token, true, &r), 200);
    doc = s_json (&r);
    shipment =
        json_array_get (json_object_get (json_object_get (doc, "trackResponse"), "shipment"), 0);
    assert_string_equal (s_str (s_at (shipment, "warnings", 0), "code"), "TW0001");
    assert_null (json_object_get (shipment, "package"));
    json_decref (doc);

    /* transId and transactionSrc are required. */
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", token, false, &r), 400);
    s_ups_code (&r, NULL);

    /* A token the fake never issued, one expired, one revoked: 401. */
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", "forged", true, &r), 401);
    s_ups_code (&r, "250002");
    f->now_ms = T_UPS_SCAN + 14399 * 1000LL;
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", token, true, &r), 401);
    s_ups_code (&r, "250002");
    assert_int_equal (s_ups_token (f, "ups-client:ups-secret", "grant_type=client_credentials",
                                   token, sizeof token, &r),
                      200);
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", token, true, &r), 200);
    rt_fake_carrier_ups_revoke (f->fake, token);
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", token, true, &r), 401);

    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_UPS, &st);
    assert_int_equal (st.token_calls, 4);
    assert_int_equal (st.tokens_issued, 2);
    assert_int_equal (st.calls, 7);
    assert_int_equal (st.bad_key, 4);
    assert_int_equal (st.bad_request, 2);
    s_reply_free (&r);
}

/* --- scripts --- */

static void
s_push (s_fixture_t *f, rt_fc_carrier_t carrier, rt_fc_answer_t answer)
{
    rt_fake_carrier_push (f->fake, carrier, &answer);
}

static void
test_scripts (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    const char *one[] = {"20450059800767"};
    rt_fake_carrier_np_set (f->fake, "20450059800767", &s_np_at_branch);
    char *body = s_np_body ("0123456789abcdef0123456789abcdef", one, NULL, 1);
    s_url (f, RT_FC_NOVA_POSHTA, "", url, sizeof url);

    /* The stateful answer, to compare a truncated one with. */
    json_decref (s_np_post (f, body, &r));
    size_t whole = r.body.len;

    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_RATE_LIMIT, .retry_after_s = 7});
    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_RATE_LIMIT});
    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_SERVER_ERROR});
    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_SERVER_ERROR, .status = 500});
    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_HTML});
    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_TRUNCATED});
    s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_GARBAGE});
    s_push (f, RT_FC_NOVA_POSHTA,
            (rt_fc_answer_t){.kind = RT_FC_RAW,
                             .status = 418,
                             .content_type = "text/plain",
                             .body = "short and stout"});

    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 429);
    assert_string_equal (r.retry_after, "7");
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 429);
    assert_string_equal (r.retry_after, "");
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 503);
    assert_true (strncmp (r.type, "text/plain", 10) == 0);
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 500);
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 502);
    assert_true (strncmp (r.type, "text/html", 9) == 0);
    assert_non_null (strstr (r.body.data, "<html>"));
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 200);
    assert_int_equal (r.body.len, whole / 2);
    assert_null (json_loadb (r.body.data, r.body.len, 0, NULL));
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 200);
    assert_string_equal (r.type, "application/json");
    assert_null (json_loadb (r.body.data, r.body.len, 0, NULL));
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 418);
    assert_string_equal (r.type, "text/plain");
    assert_string_equal (r.body.data, "short and stout");

    /* Nova Poshta's documented errors: HTTP 200, success false, the code. */
    static const char *const np_codes[] = {"20000100016", "20000200068", "20000200069",
                                           "20000200157", "20000200158", "20000200159",
                                           "20000300415"};
    for (size_t i = 0; i < sizeof np_codes / sizeof *np_codes; i++) {
        s_push (f, RT_FC_NOVA_POSHTA, (rt_fc_answer_t){.kind = RT_FC_ERROR, .error = np_codes[i]});
        json_t *doc = s_np_post (f, body, &r);
        s_np_refused (doc, np_codes[i]);
        json_decref (doc);
    }
    /* The script is empty again: the state. */
    json_t *doc = s_np_post (f, body, &r);
    s_np_envelope (doc, true);
    json_decref (doc);

    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, 17);
    assert_int_equal (st.scripted, 15);
    rt_fc_call_t call;
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 6, &call));
    assert_int_equal (call.outcome, RT_FC_SCRIPTED);
    assert_int_equal (call.answer, RT_FC_TRUNCATED);
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 16, &call));
    assert_int_equal (call.outcome, RT_FC_ANSWERED);
    free (body);

    /* Ukrposhta's 900908. */
    s_push (f, RT_FC_UKRPOSHTA, (rt_fc_answer_t){.kind = RT_FC_ERROR, .error = "900908"});
    s_url (f, RT_FC_UKRPOSHTA, "/statuses/last", url, sizeof url);
    assert_int_equal (s_call (f, "POST", url, NULL, "[\"0500123456789\"]", &r), 401);
    assert_non_null (strstr (r.body.data, "900908"));

    /* UPS's documented errors, with their statuses. */
    static const struct {
        const char *code; /* the error */
        long status;      /* its HTTP status */
    } ups[] = {{"10401", 401}, {"250002", 401}, {"250003", 401}, {"151018", 400}, {"TW0001", 404}};
    for (size_t i = 0; i < sizeof ups / sizeof *ups; i++) {
        s_push (f, RT_FC_UPS, (rt_fc_answer_t){.kind = RT_FC_ERROR, .error = ups[i].code});
        assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", "any", true, &r), ups[i].status);
        s_ups_code (&r, ups[i].code);
    }
    /* A script for UPS's token route leaves the tracking route's alone;
     * UPS sends no Retry-After. */
    s_push (f, RT_FC_UPS,
            (rt_fc_answer_t){.kind = RT_FC_RATE_LIMIT, .retry_after_s = 5, .oauth = true});
    assert_int_equal (s_ups_token (f, "c:s", "grant_type=client_credentials", NULL, 0, &r), 429);
    assert_string_equal (r.retry_after, "");
    s_ups_code (&r, NULL);
    assert_int_equal (s_ups_token (f, "c:s", "grant_type=client_credentials", NULL, 0, &r), 200);
    assert_int_equal (s_ups_track (f, "1Z5338FF0107346023", "forged", true, &r), 401);

    /* DHL's 429 and its Retry-After. */
    s_push (f, RT_FC_DHL, (rt_fc_answer_t){.kind = RT_FC_RATE_LIMIT, .retry_after_s = 3});
    const char *key[] = {"DHL-API-Key: k", NULL};
    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=1234567890", url, sizeof url);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 429);
    assert_string_equal (r.retry_after, "3");
    doc = s_json (&r);
    assert_string_equal (s_str (doc, "detail"), "Too many requests within defined time period");
    json_decref (doc);
    s_reply_free (&r);
}

/* --- limits --- */

static void
test_spacing (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    const char *one[] = {"20450059800767"};
    rt_fake_carrier_np_set (f->fake, "20450059800767", &s_np_at_branch);
    rt_fake_carrier_limits (f->fake, RT_FC_NOVA_POSHTA, &(rt_fc_limits_t){.min_interval_ms = 500});
    char *mine = s_np_body ("0123456789abcdef0123456789abcdef", one, NULL, 1);
    char *theirs = s_np_body ("fedcba9876543210fedcba9876543210", one, NULL, 1);
    s_url (f, RT_FC_NOVA_POSHTA, "", url, sizeof url);

    assert_int_equal (s_call (f, "POST", url, NULL, mine, &r), 200);
    assert_int_equal (s_call (f, "POST", url, NULL, mine, &r), 429);
    assert_string_equal (r.retry_after, "");
    /* Spacing is per account: another key is not held back. */
    assert_int_equal (s_call (f, "POST", url, NULL, theirs, &r), 200);
    usleep (550 * 1000);
    assert_int_equal (s_call (f, "POST", url, NULL, mine, &r), 200);

    rt_fc_call_t c0, c1, c3;
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 0, &c0));
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 1, &c1));
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 3, &c3));
    assert_int_equal (c1.outcome, RT_FC_TOO_SOON);
    assert_true (c1.arrival_us - c0.arrival_us < 500 * 1000);
    assert_true (c3.arrival_us - c0.arrival_us >= 500 * 1000);
    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.too_soon, 1);
    assert_int_equal (rt_fake_carrier_fetches (f->fake, RT_FC_NOVA_POSHTA, "20450059800767"), 3);
    free (mine);
    free (theirs);

    /* DHL says when to come back. */
    rt_fc_dhl_state_t moving = {.status_code = "transit", .status = "In transit"};
    rt_fake_carrier_dhl_set (f->fake, "1234567890", &moving);
    rt_fake_carrier_limits (f->fake, RT_FC_DHL, &(rt_fc_limits_t){.min_interval_ms = 1000});
    const char *key[] = {"DHL-API-Key: k", NULL};
    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=1234567890&service=express", url,
           sizeof url);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 429);
    assert_string_equal (r.retry_after, "1");
    json_t *doc = s_json (&r);
    assert_int_equal (json_integer_value (json_object_get (doc, "status")), 429);
    assert_string_equal (s_str (doc, "detail"), "Too many requests within defined time period");
    json_decref (doc);
    s_reply_free (&r);
}

static void
test_quota (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    f->now_ms = T_LATE;
    rt_fake_carrier_clock (f->fake, s_clock, f);
    rt_fc_dhl_state_t moving = {.status_code = "transit", .status = "In transit"};
    rt_fake_carrier_dhl_set (f->fake, "1234567890", &moving);
    rt_fake_carrier_limits (f->fake, RT_FC_DHL, &(rt_fc_limits_t){.daily_quota = 2});
    const char *key[] = {"DHL-API-Key: k", NULL};
    s_url (f, RT_FC_DHL, "/track/shipments?trackingNumber=1234567890", url, sizeof url);

    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);
    /* Past the quota: 429 until 24:00 GMT, a minute away. */
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 429);
    assert_string_equal (r.retry_after, "60");
    assert_int_equal (rt_fake_carrier_fetches (f->fake, RT_FC_DHL, "1234567890"), 2);
    rt_fake_carrier_day_reset (f->fake);
    assert_int_equal (rt_fake_carrier_fetches (f->fake, RT_FC_DHL, "1234567890"), 0);
    assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);

    /* The next UTC day: a new quota, and fetches counted anew. */
    f->now_ms += 2 * 60 * 1000;
    rt_fake_carrier_limits (f->fake, RT_FC_DHL, &(rt_fc_limits_t){.parcel_daily_max = 2});
    for (int i = 0; i < 3; i++)
        assert_int_equal (s_call (f, "GET", url, key, NULL, &r), 200);
    assert_int_equal (rt_fake_carrier_fetches (f->fake, RT_FC_DHL, "1234567890"), 3);
    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_DHL, &st);
    assert_int_equal (st.over_quota, 1);
    assert_int_equal (st.over_fetches, 1);
    assert_int_equal (st.calls, 7);

    /* The others refuse with a bare 429. */
    rt_fake_carrier_np_set (f->fake, "20450059800767", &s_np_at_branch);
    rt_fake_carrier_limits (f->fake, RT_FC_NOVA_POSHTA, &(rt_fc_limits_t){.daily_quota = 1});
    const char *one[] = {"20450059800767"};
    char *body = s_np_body ("0123456789abcdef0123456789abcdef", one, NULL, 1);
    s_url (f, RT_FC_NOVA_POSHTA, "", url, sizeof url);
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 200);
    assert_int_equal (s_call (f, "POST", url, NULL, body, &r), 429);
    assert_string_equal (r.retry_after, "");
    rt_fc_call_t call;
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_NOVA_POSHTA, 1, &call));
    assert_int_equal (call.outcome, RT_FC_OVER_QUOTA);
    free (body);
    s_reply_free (&r);
}

/* --- a delay holds one request, not the server --- */

static void
test_delay (void **state)
{
    s_fixture_t *f = *state;
    s_reply_t late[2] = {{0}}, r = {0};
    CURL *handles[2];
    struct curl_slist *lists[2];
    char url[256];
    const char *token[] = {"token: meest-token-1", NULL};
    rt_fc_meest_state_t created = {.event_code = 2, .descr = "Створено накладну"};
    rt_fake_carrier_meest_set (f->fake, "722-1234567", &created);
    s_url (f, RT_FC_MEEST, "/tracking/722-1234567", url, sizeof url);

    /* Two requests delayed past their clients' timeout: with two workers,
     * a worker that slept through a delay would leave none for a third. */
    s_push (f, RT_FC_MEEST, (rt_fc_answer_t){.kind = RT_FC_STATE, .delay_ms = 3000});
    s_push (f, RT_FC_MEEST, (rt_fc_answer_t){.kind = RT_FC_STATE, .delay_ms = 3000});
    CURLM *multi = curl_multi_init ();
    int64_t start = rt_test_now_ms ();
    for (int i = 0; i < 2; i++) {
        handles[i] = curl_easy_init ();
        lists[i] = s_prepare (handles[i], "GET", url, token, NULL, NULL, 1000, &late[i]);
        curl_multi_add_handle (multi, handles[i]);
    }
    int running = 2;
    while (rt_fake_carrier_calls (f->fake, RT_FC_MEEST) < 2) {
        if (rt_test_now_ms () - start > 2500)
            fail_msg ("the delayed requests did not arrive");
        curl_multi_perform (multi, &running);
        curl_multi_poll (multi, NULL, 0, 10, NULL);
    }

    int64_t asked = rt_test_now_ms ();
    assert_int_equal (s_call (f, "GET", url, token, NULL, &r), 200);
    int64_t answered = rt_test_now_ms () - asked;
    assert_true (answered < 1500);

    while (running > 0) {
        curl_multi_perform (multi, &running);
        curl_multi_poll (multi, NULL, 0, 50, NULL);
    }
    int64_t took = rt_test_now_ms () - start;
    CURLMsg *msg;
    int left, timed_out = 0;
    while ((msg = curl_multi_info_read (multi, &left)))
        if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OPERATION_TIMEDOUT)
            timed_out++;
    assert_int_equal (timed_out, 2);
    assert_true (took >= 1000 && took < 3000);
    printf ("fake carrier: a request answered in %lld ms while two waited out their 1 s "
            "timeout\n",
            (long long)answered);
    for (int i = 0; i < 2; i++) {
        curl_multi_remove_handle (multi, handles[i]);
        curl_easy_cleanup (handles[i]);
        curl_slist_free_all (lists[i]);
        s_reply_free (&late[i]);
    }
    curl_multi_cleanup (multi);

    rt_fc_call_t call;
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_MEEST, 0, &call));
    assert_int_equal (call.outcome, RT_FC_SCRIPTED);
    assert_int_equal (call.answer, RT_FC_STATE);
    assert_true (rt_fake_carrier_call (f->fake, RT_FC_MEEST, 2, &call));
    assert_int_equal (call.outcome, RT_FC_ANSWERED);
    s_reply_free (&r);
}

/* --- what a call of 100 documents costs --- */

static double
s_seconds (clockid_t clock)
{
    struct timespec ts;
    clock_gettime (clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_speed (void **state)
{
    enum { PARCELS = 100000, DOCS = 100, BODIES = 10, CALLS = 300 };
    s_fixture_t *f = *state;
    s_reply_t r = {0};
    char url[256];
    char (*numbers)[16] = calloc (PARCELS, sizeof *numbers);
    const char **list = calloc (PARCELS, sizeof *list);
    assert_non_null (numbers);
    assert_non_null (list);
    for (int i = 0; i < PARCELS; i++) {
        snprintf (numbers[i], sizeof numbers[i], "2045%010d", i);
        list[i] = numbers[i];
    }
    double t0 = s_seconds (CLOCK_MONOTONIC);
    rt_fake_carrier_np_set_many (f->fake, list, PARCELS, &s_np_at_branch);
    double set_ms = (s_seconds (CLOCK_MONOTONIC) - t0) * 1e3;

    char *bodies[BODIES];
    for (int b = 0; b < BODIES; b++)
        bodies[b] = s_np_body ("0123456789abcdef0123456789abcdef", list + b * 9973, NULL, DOCS);
    s_url (f, RT_FC_NOVA_POSHTA, "", url, sizeof url);
    json_t *doc = s_np_post (f, bodies[0], &r);
    assert_int_equal (json_array_size (json_object_get (doc, "data")), DOCS);
    assert_string_equal (s_str (s_at (doc, "data", 0), "Number"), list[0]);
    assert_string_equal (s_str (s_at (doc, "data", DOCS - 1), "StatusCode"), "7");
    json_decref (doc);
    size_t bytes = r.body.len;

    /* The fake runs on its own threads: the process's CPU less this
     * thread's (curl and the test) is the fake's. */
    double wall = s_seconds (CLOCK_MONOTONIC), cpu = s_seconds (CLOCK_PROCESS_CPUTIME_ID);
    double mine = s_seconds (CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < CALLS; i++) {
        assert_int_equal (s_call (f, "POST", url, NULL, bodies[i % BODIES], &r), 200);
        assert_int_equal (r.body.len, bytes);
    }
    mine = (s_seconds (CLOCK_THREAD_CPUTIME_ID) - mine) / CALLS * 1e6;
    cpu = (s_seconds (CLOCK_PROCESS_CPUTIME_ID) - cpu) / CALLS * 1e6 - mine;
    wall = (s_seconds (CLOCK_MONOTONIC) - wall) / CALLS * 1e6;
    printf ("fake carrier: %d parcels set in %.1f ms; a %d-document Nova Poshta call (%zu "
            "bytes) over keep-alive: %.0f us wall, the fake's CPU %.0f us, curl's %.0f us\n",
            PARCELS, set_ms, DOCS, bytes, wall, cpu, mine);

    rt_fc_stats_t st;
    rt_fake_carrier_stats (f->fake, RT_FC_NOVA_POSHTA, &st);
    assert_int_equal (st.calls, CALLS + 1);
    assert_int_equal (st.documents, (CALLS + 1) * DOCS);
    assert_int_equal (st.not_found, 0);
    for (int b = 0; b < BODIES; b++)
        free (bodies[b]);
    free (list);
    free (numbers);
    s_reply_free (&r);
}

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_bases, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_nova_poshta_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_nova_poshta_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ukrposhta, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_meest, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_dhl, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ups, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scripts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_spacing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_quota, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_delay, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_speed, s_setup, s_teardown),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return failed;
}
