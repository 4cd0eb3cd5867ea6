/*
 * api: trackerd's HTTP server, for the shop's site and for the customer.
 *
 *   GET /v1/shipments?order_id=O   (or ?customer_id=C; one of them)
 *       an API key of the service "tracker" (`retainctl shipment key`):
 *       200 {"shipments": [...]}, each parcel with its tag and sub-status
 *       (AfterShip's), the carrier's own status, the dates (the carrier's
 *       estimate, retain's with its spread, the promise, the storage
 *       deadline, the delivery), the delays said, a fresh tracking link
 *       and every event the carrier reported, oldest first: "show the
 *       parcel on the customer's account page", as the shop's site does
 *       server to server. 400 without exactly one of the two.
 *   GET /t/{token}[?lang=uk|en]
 *       no key: the signed link (rt_signed's "tracking" purpose, made by
 *       outcome_link into the milestone messages) is the credential. The
 *       customer's page: the status in their language (?lang=, else the
 *       first language of Accept-Language the page speaks, else the
 *       first of s_words), the dates and the history, times in the page's
 *       zone. An unknown, malformed or expired link is 404, one page for
 *       each, so a guess learns nothing; the answers carry `Cache-Control:
 *       no-store`, `Referrer-Policy: no-referrer` and `X-Robots-Tag:
 *       noindex`, as a link that opens someone's parcel should.
 *   GET /openapi.json
 *       the document (api/openapi.json, carried in the binary).
 *
 * Every worker thread has its own connection (rt_db_local), its
 * statements prepared once; PostgreSQL down is 503 "database".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "rt_apikey.h"
#include "rt_buf.h"
#include "rt_clock.h"
#include "rt_db_local.h"
#include "rt_form.h"
#include "rt_http_server.h"
#include "rt_jsonw.h"
#include "rt_log.h"
#include "trackerd.h"

#define S_RECONNECT_MS 1000
#define S_LIST_MAX     "100" /* parcels one answer lists at most (an order has a few) */

#define S_LIST "tracker_api_list"
static const char *s_list_sql =
    "SELECT id, order_id, carrier, tracking_number, service, tag, sub_status, raw_code,"
    " raw_text, location, final, to_sender, tracking.iso(shipped_at), tracking.iso(promised_by),"
    " tracking.iso(carrier_eta), tracking.iso(delivered_at), tracking.iso(storage_until),"
    " tracking.iso(est_at), tracking.iso(est_low), tracking.iso(est_high),"
    " COALESCE(risk::text, ''), delays"
    " FROM tracking.shipments"
    " WHERE ($1 <> '' AND order_id = $1) OR ($2 <> '' AND customer_id = $2)"
    " ORDER BY shipped_at, id LIMIT " S_LIST_MAX;

/* Columns of S_LIST. */
enum {
    L_ID,
    L_ORDER,
    L_CARRIER,
    L_NUMBER,
    L_SERVICE,
    L_TAG,
    L_SUB,
    L_CODE,
    L_TEXT,
    L_LOCATION,
    L_FINAL,
    L_RETURNING,
    L_SHIPPED,
    L_PROMISED,
    L_CARRIER_ETA,
    L_DELIVERED,
    L_STORAGE,
    L_EST,
    L_EST_LOW,
    L_EST_HIGH,
    L_RISK,
    L_DELAYS,
};

#define S_EVENTS "tracker_api_events"
static const char *s_events_sql =
    "SELECT shipment_id, tracking.iso(at), code, text, location, COALESCE(tag, ''),"
    " COALESCE(sub_status, '') FROM tracking.events WHERE shipment_id = ANY($1::text[])"
    " ORDER BY shipment_id, at, code";

/* The page: $1 the shipment, $2 the page's zone. */
#define S_PAGE "tracker_api_page"
static const char *s_page_sql =
    "SELECT carrier, tracking_number, tag, raw_text, location, final,"
    " tracking.local(carrier_eta, $2, 'DD.MM.YYYY'), tracking.local(est_at, $2, 'DD.MM.YYYY'),"
    " tracking.local(storage_until, $2, 'DD.MM.YYYY'),"
    " tracking.local(delivered_at, $2, 'DD.MM.YYYY HH24:MI'), to_sender"
    " FROM tracking.shipments WHERE id = $1";

#define S_PAGE_EVENTS "tracker_api_page_events"
static const char *s_page_events_sql =
    "SELECT tracking.local(at, $2, 'DD.MM.YYYY HH24:MI'), text, location, COALESCE(tag, '')"
    " FROM tracking.events WHERE shipment_id = $1 ORDER BY at DESC, code DESC LIMIT 200";

/* The page's words, per language; the first is the default. A tag's
 * words are indexed by tracking_tag_t. */
typedef struct {
    const char *lang;       /* "uk" */
    const char *title;      /* the page's title */
    const char *carrier;    /* "carrier" */
    const char *number;     /* "tracking number" */
    const char *expected;   /* "expected delivery" */
    const char *retain_est; /* retain's own estimate */
    const char *storage;    /* "free storage until" */
    const char *delivered;  /* "delivered" (with its time) */
    const char *returning;  /* the parcel goes back */
    const char *history;    /* "history" */
    const char *none;       /* no events yet */
    const char *not_found;  /* the 404 page's words */
    const char *tags[TAG_COUNT];
} s_words_t;

static const s_words_t s_words[] = {
    {"uk",
     "Ваше відправлення",
     "Перевізник",
     "Номер відправлення",
     "Очікувана доставка",
     "Наш прогноз",
     "Безкоштовне зберігання до",
     "Отримано",
     "Відправлення повертається відправнику",
     "Історія",
     "Перевізник ще не повідомив подробиць.",
     "Посилання недійсне або застаріле.",
     {"Очікує передачі перевізнику", "Перевізник отримав дані", "У дорозі",
      "Кур'єр везе відправлення", "Невдала спроба доставки", "Доставлено",
      "Чекає у відділенні або поштоматі", "Затримка або проблема з доставкою",
      "Немає новин від перевізника"}},
    {"en",
     "Your parcel",
     "Carrier",
     "Tracking number",
     "Expected delivery",
     "Our estimate",
     "Free storage until",
     "Delivered",
     "The parcel is going back to the sender",
     "History",
     "The carrier has not reported any details yet.",
     "This link is invalid or has expired.",
     {"Waiting to be handed to the carrier", "The carrier has the details", "In transit",
      "Out for delivery", "Delivery attempt failed", "Delivered", "Waiting at the pickup point",
      "Delayed or a delivery problem", "No news from the carrier"}},
};

#define S_LANGS (sizeof s_words / sizeof s_words[0])

struct api_t {
    api_config_t cfg;           /* the settings (strings lent by the daemon) */
    rt_db_local_t *dbs;         /* a connection per worker thread */
    rt_apikey_auth_t *auth;     /* the keys of the service "tracker" */
    rt_http_server_t *server;   /* the server */
    rt_counter_t *page_refused; /* tracking links refused */
};

static int
s_register (rt_db_t *db, void *arg)
{
    (void)arg;
    if (rt_db_prepare (db, S_LIST, s_list_sql) != 0 ||
        rt_db_prepare (db, S_EVENTS, s_events_sql) != 0 ||
        rt_db_prepare (db, S_PAGE, s_page_sql) != 0 ||
        rt_db_prepare (db, S_PAGE_EVENTS, s_page_events_sql) != 0)
        return -1;
    return 0;
}

static void
s_db_problem (rt_http_request_t *req, rt_db_t *db)
{
    rt_log (RT_LOG_ERROR, "tracking API: query failed",
            rt_log_str ("error", db ? rt_db_error (db) : "no connection"));
    rt_http_problem (req, 503, "database", "the database failed; try again");
}

static const char *
s_tag_words (const s_words_t *w, const char *tag)
{
    tracking_tag_t t;
    return status_tag_parse (tag, &t) == 0 ? w->tags[t] : tag;
}

/* A text column written as a string, or null when empty. */
static void
s_knull (rt_jsonw_t *j, const char *key, const char *value)
{
    rt_jsonw_key (j, key);
    if (value[0])
        rt_jsonw_string (j, value);
    else
        rt_jsonw_null (j);
}

/* --- GET /v1/shipments --- */

static void
s_events_json (rt_jsonw_t *j, const PGresult *ev, int *k, const char *id)
{
    rt_jsonw_key (j, "events");
    rt_jsonw_array (j);
    for (; *k < PQntuples (ev) && strcmp (PQgetvalue (ev, *k, 0), id) == 0; (*k)++) {
        rt_jsonw_object (j);
        rt_jsonw_kstring (j, "at", PQgetvalue (ev, *k, 1));
        rt_jsonw_kstring (j, "code", PQgetvalue (ev, *k, 2));
        rt_jsonw_kstring (j, "text", PQgetvalue (ev, *k, 3));
        rt_jsonw_kstring (j, "location", PQgetvalue (ev, *k, 4));
        s_knull (j, "tag", PQgetvalue (ev, *k, 5));
        s_knull (j, "sub_status", PQgetvalue (ev, *k, 6));
        rt_jsonw_object_end (j);
    }
    rt_jsonw_array_end (j);
}

static void
s_shipment_json (api_t *self, rt_jsonw_t *j, const PGresult *r, int i, const PGresult *ev, int *k,
                 int64_t now)
{
    const carrier_t *carrier = carrier_find (PQgetvalue (r, i, L_CARRIER));
    char link[512];
    outcome_link (self->cfg.outcome, PQgetvalue (r, i, L_ID), now, link, sizeof link);
    rt_jsonw_object (j);
    rt_jsonw_kstring (j, "id", PQgetvalue (r, i, L_ID));
    rt_jsonw_kstring (j, "order_id", PQgetvalue (r, i, L_ORDER));
    rt_jsonw_kstring (j, "carrier", PQgetvalue (r, i, L_CARRIER));
    rt_jsonw_kstring (j, "carrier_name", carrier ? carrier->display : "");
    rt_jsonw_kstring (j, "tracking_number", PQgetvalue (r, i, L_NUMBER));
    s_knull (j, "service", PQgetvalue (r, i, L_SERVICE));
    rt_jsonw_kstring (j, "tag", PQgetvalue (r, i, L_TAG));
    rt_jsonw_kstring (j, "sub_status", PQgetvalue (r, i, L_SUB));
    rt_jsonw_kstring (j, "carrier_code", PQgetvalue (r, i, L_CODE));
    rt_jsonw_kstring (j, "carrier_status", PQgetvalue (r, i, L_TEXT));
    rt_jsonw_kstring (j, "location", PQgetvalue (r, i, L_LOCATION));
    rt_jsonw_kbool (j, "final", strcmp (PQgetvalue (r, i, L_FINAL), "t") == 0);
    rt_jsonw_kbool (j, "returning", strcmp (PQgetvalue (r, i, L_RETURNING), "t") == 0);
    rt_jsonw_kstring (j, "shipped_at", PQgetvalue (r, i, L_SHIPPED));
    s_knull (j, "promised_by", PQgetvalue (r, i, L_PROMISED));
    s_knull (j, "carrier_estimate", PQgetvalue (r, i, L_CARRIER_ETA));
    s_knull (j, "delivered_at", PQgetvalue (r, i, L_DELIVERED));
    s_knull (j, "storage_until", PQgetvalue (r, i, L_STORAGE));
    rt_jsonw_key (j, "estimate");
    if (PQgetvalue (r, i, L_EST)[0]) {
        rt_jsonw_object (j);
        rt_jsonw_kstring (j, "at", PQgetvalue (r, i, L_EST));
        rt_jsonw_kstring (j, "earliest", PQgetvalue (r, i, L_EST_LOW));
        rt_jsonw_kstring (j, "latest", PQgetvalue (r, i, L_EST_HIGH));
        rt_jsonw_key (j, "miss_probability");
        if (PQgetvalue (r, i, L_RISK)[0])
            rt_jsonw_raw (j, PQgetvalue (r, i, L_RISK));
        else
            rt_jsonw_null (j);
        rt_jsonw_object_end (j);
    } else {
        rt_jsonw_null (j);
    }
    rt_jsonw_key (j, "delays");
    {
        /* text[] as read: "{past_promise,stalled}" */
        const char *d = PQgetvalue (r, i, L_DELAYS);
        rt_jsonw_array (j);
        if (d[0] == '{')
            d++;
        while (*d && *d != '}') {
            size_t n = strcspn (d, ",}");
            rt_jsonw_stringn (j, d, n);
            d += n;
            if (*d == ',')
                d++;
        }
        rt_jsonw_array_end (j);
    }
    s_knull (j, "tracking_url", link);
    s_events_json (j, ev, k, PQgetvalue (r, i, L_ID));
    rt_jsonw_object_end (j);
}

static void
s_list (rt_http_request_t *req, void *arg)
{
    api_t *self = arg;
    const char *q = rt_http_query (req);
    char err[128];
    rt_form_t *f = rt_form_parse (q, strlen (q), err, sizeof err);
    const char *order, *customer;
    rt_db_t *db;
    PGresult *r = NULL, *ev = NULL;
    rt_buf_t ids = {0}, out = {0};
    rt_jsonw_t j;
    int k = 0;

    if (!f) {
        rt_http_problem (req, 400, "bad-query", err);
        return;
    }
    order = rt_form_get (f, "order_id");
    customer = rt_form_get (f, "customer_id");
    if (!order == !customer || (order && !order[0]) || (customer && !customer[0])) {
        rt_http_problem (req, 400, "bad-query", "give order_id or customer_id, one of them");
        goto cleanup;
    }
    db = rt_db_local_get (self->dbs, NULL);
    if (!db) {
        s_db_problem (req, NULL);
        goto cleanup;
    }
    r = rt_db_exec_prepared (db, S_LIST, 2,
                             (const char *[]){order ? order : "", customer ? customer : ""}, NULL,
                             NULL, 0);
    if (!r) {
        s_db_problem (req, db);
        goto cleanup;
    }
    rt_buf_array_begin (&ids);
    for (int i = 0; i < PQntuples (r); i++)
        rt_buf_array_text (&ids, PQgetvalue (r, i, L_ID));
    rt_buf_array_end (&ids);
    ev = rt_db_exec_prepared (db, S_EVENTS, 1, (const char *[]){ids.data}, NULL, NULL, 0);
    if (!ev || ids.failed) {
        s_db_problem (req, db);
        goto cleanup;
    }
    rt_jsonw_init (&j, &out);
    rt_jsonw_object (&j);
    rt_jsonw_key (&j, "shipments");
    rt_jsonw_array (&j);
    for (int i = 0; i < PQntuples (r); i++)
        s_shipment_json (self, &j, r, i, ev, &k, rt_clock_now_ms ());
    rt_jsonw_array_end (&j);
    rt_jsonw_object_end (&j);
    if (!rt_jsonw_ok (&j)) {
        rt_http_problem (req, 500, "internal", "out of memory");
        goto cleanup;
    }
    rt_http_reply (req, 200, "application/json", out.data, out.len);
cleanup:
    if (r)
        PQclear (r);
    if (ev)
        PQclear (ev);
    rt_buf_free (&ids);
    rt_buf_free (&out);
    rt_form_destroy (&f);
}

/* --- GET /t/{token} --- */

static const s_words_t *
s_lang_find (const char *tag, size_t len)
{
    for (size_t i = 0; i < S_LANGS; i++) {
        if (strlen (s_words[i].lang) == len && strncasecmp (s_words[i].lang, tag, len) == 0)
            return &s_words[i];
    }
    return NULL;
}

/* ?lang= first, then Accept-Language in the order given (q-values are
 * not weighed: browsers list by preference), then the first language. */
static const s_words_t *
s_lang (rt_http_request_t *req)
{
    const char *q = rt_http_query (req), *al = rt_http_header (req, "Accept-Language");
    const s_words_t *w;
    char err[64];
    rt_form_t *f = rt_form_parse (q, strlen (q), err, sizeof err);
    const char *lang = f ? rt_form_get (f, "lang") : NULL;
    w = lang ? s_lang_find (lang, strlen (lang)) : NULL;
    rt_form_destroy (&f);
    if (w)
        return w;
    while (al && *al) {
        size_t n;
        while (*al == ' ' || *al == ',')
            al++;
        n = strcspn (al, "-;, ");
        w = s_lang_find (al, n);
        if (w)
            return w;
        al += strcspn (al, ",");
    }
    return &s_words[0];
}

static void
s_page_head (rt_buf_t *b, const s_words_t *w)
{
    rt_buf_printf (b, "<!doctype html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">", w->lang);
    rt_buf_puts (b, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    "<meta name=\"robots\" content=\"noindex\"><title>");
    rt_buf_put_html (b, w->title);
    rt_buf_puts (b, "</title><style>body{font-family:system-ui,sans-serif;max-width:40em;"
                    "margin:2em auto;padding:0 1em;color:#222}h1{font-size:1.4em}"
                    ".status{font-size:1.2em;font-weight:600;margin:.5em 0}"
                    "dl{display:grid;grid-template-columns:auto 1fr;gap:.3em 1em}dt{color:#666}"
                    "dd{margin:0}ol{list-style:none;padding:0}li{border-left:3px solid #ccc;"
                    "padding:.2em .8em;margin:.4em 0}time{color:#666;display:block;"
                    "font-size:.9em}</style></head><body>");
}

static void
s_reply_page (rt_http_request_t *req, int status, rt_buf_t *b)
{
    rt_http_header_add (req, "Cache-Control", "no-store");
    rt_http_header_add (req, "Referrer-Policy", "no-referrer");
    rt_http_header_add (req, "X-Robots-Tag", "noindex");
    rt_http_header_add (req, "Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'");
    rt_http_reply (req, status, "text/html; charset=utf-8", b->data, b->len);
}

static void
s_not_found_page (rt_http_request_t *req, const s_words_t *w)
{
    rt_buf_t b = {0};
    s_page_head (&b, w);
    rt_buf_puts (&b, "<h1>");
    rt_buf_put_html (&b, w->title);
    rt_buf_puts (&b, "</h1><p>");
    rt_buf_put_html (&b, w->not_found);
    rt_buf_puts (&b, "</p></body></html>\n");
    s_reply_page (req, 404, &b);
    rt_buf_free (&b);
}

/* One "<dt>label</dt><dd>value</dd>" when value is set. */
static void
s_row (rt_buf_t *b, const char *label, const char *value)
{
    if (!value[0])
        return;
    rt_buf_puts (b, "<dt>");
    rt_buf_put_html (b, label);
    rt_buf_puts (b, "</dt><dd>");
    rt_buf_put_html (b, value);
    rt_buf_puts (b, "</dd>");
}

static void
s_page (rt_http_request_t *req, void *arg)
{
    api_t *self = arg;
    const s_words_t *w = s_lang (req);
    const char *token = rt_http_param (req, "token");
    const outcome_config_t *oc = self->cfg.outcome;
    uint8_t payload[RT_SIGNED_PAYLOAD_MAX + 1];
    size_t plen = 0;
    rt_signed_status_t st;
    PGresult *r = NULL, *ev = NULL;
    rt_buf_t b = {0};
    rt_db_t *db;
    const carrier_t *carrier;

    st = oc->link_keys ? rt_signed_verify (oc->link_keys, "tracking", token ? token : "",
                                           rt_clock_now_ms () / 1000, payload, sizeof payload - 1,
                                           &plen, NULL)
                       : RT_SIGNED_MALFORMED;
    if (st != RT_SIGNED_OK) {
        rt_counter_inc (self->page_refused);
        s_not_found_page (req, w);
        return;
    }
    payload[plen] = '\0';
    db = rt_db_local_get (self->dbs, NULL);
    if (!db) {
        s_db_problem (req, NULL);
        return;
    }
    r = rt_db_exec_prepared (db, S_PAGE, 2, (const char *[]){(char *)payload, self->cfg.page_zone},
                             NULL, NULL, 0);
    ev = r ? rt_db_exec_prepared (db, S_PAGE_EVENTS, 2,
                                  (const char *[]){(char *)payload, self->cfg.page_zone}, NULL,
                                  NULL, 0)
           : NULL;
    if (!r || !ev) {
        s_db_problem (req, db);
        goto cleanup;
    }
    if (PQntuples (r) != 1) {
        /* A link to a parcel since deleted reads as any dead link. */
        s_not_found_page (req, w);
        goto cleanup;
    }
    carrier = carrier_find (PQgetvalue (r, 0, 0));
    s_page_head (&b, w);
    rt_buf_puts (&b, "<h1>");
    rt_buf_put_html (&b, w->title);
    rt_buf_puts (&b, "</h1><p class=\"status\">");
    rt_buf_put_html (&b, s_tag_words (w, PQgetvalue (r, 0, 2)));
    rt_buf_puts (&b, "</p>");
    if (strcmp (PQgetvalue (r, 0, 10), "t") == 0) {
        rt_buf_puts (&b, "<p>");
        rt_buf_put_html (&b, w->returning);
        rt_buf_puts (&b, "</p>");
    }
    rt_buf_puts (&b, "<dl>");
    s_row (&b, w->carrier, carrier ? carrier->display : PQgetvalue (r, 0, 0));
    s_row (&b, w->number, PQgetvalue (r, 0, 1));
    if (strcmp (PQgetvalue (r, 0, 5), "t") != 0) {
        s_row (&b, w->expected, PQgetvalue (r, 0, 6));
        s_row (&b, w->retain_est, PQgetvalue (r, 0, 6)[0] ? "" : PQgetvalue (r, 0, 7));
    }
    s_row (&b, w->storage, PQgetvalue (r, 0, 8));
    s_row (&b, w->delivered, PQgetvalue (r, 0, 9));
    rt_buf_puts (&b, "</dl><h2>");
    rt_buf_put_html (&b, w->history);
    rt_buf_puts (&b, "</h2>");
    if (PQntuples (ev) == 0) {
        rt_buf_puts (&b, "<p>");
        rt_buf_put_html (&b, w->none);
        rt_buf_puts (&b, "</p>");
    } else {
        rt_buf_puts (&b, "<ol>");
        for (int i = 0; i < PQntuples (ev); i++) {
            const char *text = PQgetvalue (ev, i, 1);
            rt_buf_puts (&b, "<li><time>");
            rt_buf_put_html (&b, PQgetvalue (ev, i, 0));
            rt_buf_puts (&b, "</time>");
            /* The carrier's own words when it gave any, else the tag's. */
            rt_buf_put_html (&b, text[0] ? text : s_tag_words (w, PQgetvalue (ev, i, 3)));
            if (PQgetvalue (ev, i, 2)[0]) {
                rt_buf_puts (&b, " — ");
                rt_buf_put_html (&b, PQgetvalue (ev, i, 2));
            }
            rt_buf_puts (&b, "</li>");
        }
        rt_buf_puts (&b, "</ol>");
    }
    rt_buf_puts (&b, "</body></html>\n");
    if (b.failed) {
        rt_http_problem (req, 500, "internal", "out of memory");
        goto cleanup;
    }
    s_reply_page (req, 200, &b);
cleanup:
    if (r)
        PQclear (r);
    if (ev)
        PQclear (ev);
    rt_buf_free (&b);
}

/* --- GET /openapi.json --- */

static void
s_openapi (rt_http_request_t *req, void *arg)
{
    (void)arg;
    rt_http_reply (req, 200, "application/json", tracker_openapi_json, tracker_openapi_json_len);
}

/* --- the server --- */

api_t *
api_start (const api_config_t *config, char *err, size_t errlen)
{
    rt_http_server_config_t sc = {0};
    rt_http_route_t *r;
    api_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *config;
    self->page_refused =
        rt_metrics_counter (config->metrics, "retain_tracker_page_refused_total", "",
                            "tracking page links refused (malformed, expired, unknown key)");
    self->dbs = rt_db_local_new (config->dsn, "retain-trackerd-api", s_register, NULL,
                                 S_RECONNECT_MS, err, errlen);
    if (!self->dbs)
        goto fail;
    self->auth = rt_apikey_auth_new (config->dsn, "tracker", 0, config->metrics, err, errlen);
    if (!self->auth)
        goto fail;
    sc.address = config->address;
    sc.name = "tracker";
    sc.threads = config->threads;
    sc.metrics = config->metrics;
    self->server = rt_http_server_new (&sc, err, errlen);
    if (!self->server)
        goto fail;
    rt_http_server_auth (self->server, rt_apikey_auth_fn, self->auth);
    if (!rt_http_route (self->server, "GET", "/v1/shipments", s_list, self)) {
        rt_errf (err, errlen, "route GET /v1/shipments not registered");
        goto fail;
    }
    /* The page's link is its own credential, and the document is public. */
    r = rt_http_route (self->server, "GET", "/t/{token}", s_page, self);
    if (r)
        rt_http_route_auth (r, NULL, NULL);
    if (!r) {
        rt_errf (err, errlen, "route GET /t/{token} not registered");
        goto fail;
    }
    r = rt_http_route (self->server, "GET", "/openapi.json", s_openapi, self);
    if (r)
        rt_http_route_auth (r, NULL, NULL);
    if (!r) {
        rt_errf (err, errlen, "route GET /openapi.json not registered");
        goto fail;
    }
    if (rt_http_server_start (self->server, err, errlen) != 0)
        goto fail;
    return self;
fail:
    api_stop (&self);
    return NULL;
}

int
api_port (const api_t *self)
{
    return rt_http_server_port (self->server);
}

void
api_stop (api_t **self_p)
{
    api_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    rt_http_server_destroy (&self->server);
    rt_apikey_auth_destroy (&self->auth);
    rt_db_local_destroy (&self->dbs);
    free (self);
    *self_p = NULL;
}
