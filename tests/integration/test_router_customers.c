/*
 * retain-routerd's customers over real sockets and a real bus: busd and
 * routerd started as processes, events published through the outbox (the
 * producer path busd relays), the card read, searched, edited, merged and
 * unmerged through the operator API.
 *
 * The card's projection: an order placed, paid and shipped, its parcel's
 * status (an older status arriving late changes nothing), its delay,
 * points (an older balance arriving late changes nothing), tier, churn
 * risk and feedback, each on the card; a customer never seen (by a shop
 * id, by a retain id nobody has) becomes a new customer; a type routerd
 * does not take is skipped and counted; and the whole log handed to
 * routerd again (its offsets reset, as after a crash before a commit)
 * changes no card. Then each endpoint and each bad input of the issue
 * (400, 401, 404, 409, 422), a merge replayed with its Idempotency-Key,
 * a merge undone (identities and conversations back), a suggestion
 * rejected and one accepted, text in several scripts and strings that
 * look like SQL or HTML stored and returned verbatim.
 *
 * Every answer is recorded, and the last test checks the OpenAPI document
 * and every answer against it with tests/integration/openapi/check.mjs
 * (npm validators), as test_router_api.c does. Needs node on PATH;
 * without it the test fails, never skips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "retain/v1/customer.pb-c.h"
#include "retain/v1/loyalty.pb-c.h"
#include "retain/v1/order.pb-c.h"
#include "retain/v1/shipment.pb-c.h"
#include "rt_bus.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_test.h"
#include "rt_test_api.h"

#define DOC RT_TEST_SOURCE_DIR "/services/router/api/openapi.json"

#define TEXT_UK  "Олена Коваленко"
#define TEXT_SQL "'; DROP TABLE crm.customers; -- <script>alert(1)</script> &amp; 😀"

/* Unix ms the test's events are stamped around (2026-11-24T06:00:00Z). */
#define T0 1795500000000LL

/* The test's world. */
static struct {
    char dsn[1024];      /* the database */
    PGconn *pg;          /* the test's own connection */
    rt_db_t *db;         /* the producer's: events into the outbox */
    rt_test_busd_t busd; /* the bus */
    pid_t routerd;       /* retain-routerd */
    int admin_port;      /* its admin port */
    int http_port;       /* its operator API */
    char anna[80];       /* key of op-anna, operator in care */
    char olga[80];       /* key of op-olga, operator in sales */
    char root[80];       /* key of op-root, admin */
    rt_test_api_t api;   /* the operator API, its answers recorded */
    char olena[40];      /* the customer the card's events build */
    char card[65536];    /* her card's events part, before the replay */
} s;

/* --- HTTP --- */

/* Sends method to the route tmpl (its {id} filled with id) as key (NULL:
 * none), with query, body (of content type ctype, NULL: application/json)
 * and Idempotency-Key idem, all optional; recorded for the OpenAPI check. */
static rt_test_api_reply_t
s_call_as (const char *method, const char *tmpl, const char *id, const char *query, const char *key,
           const char *body, const char *ctype, const char *idem)
{
    rt_test_api_request_t req = {.method = method,
                                 .route = tmpl,
                                 .id = id,
                                 .query = query,
                                 .key = key,
                                 .body = body,
                                 .content_type = ctype,
                                 .idempotency = idem};
    return rt_test_api_send (&s.api, &req);
}

static rt_test_api_reply_t
s_call (const char *method, const char *tmpl, const char *id, const char *query, const char *body)
{
    return s_call_as (method, tmpl, id, query, s.anna, body, NULL, NULL);
}

/* The string at a path of members ("profile.name", "orders.0.status"). */
static const char *
s_str (json_t *j, const char *path)
{
    char buf[256], *tok, *save = NULL;
    snprintf (buf, sizeof buf, "%s", path);
    for (tok = strtok_r (buf, ".", &save); tok && j; tok = strtok_r (NULL, ".", &save)) {
        if (json_is_array (j))
            j = json_array_get (j, (size_t)atoi (tok));
        else
            j = json_object_get (j, tok);
    }
    return json_string_value (j);
}

/* --- the bus --- */

/* Publishes one event of type through the outbox, stamped at (0: now);
 * its id into id (may be NULL). */
static void
s_publish (const char *type, const char *key, const ProtobufCMessage *msg, int64_t at, char *id)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, msg, "shop-erp");
    ProtobufCBinaryData packed = {0};
    assert_non_null (env);
    if (at > 0)
        env->occurred_at = at;
    if (id)
        snprintf (id, 40, "%s", env->id);
    packed.data = rt_envelope_pack (env, &packed.len);
    assert_non_null (packed.data);
    assert_int_equal (rt_db_begin (s.db), 0);
    assert_int_equal (rt_outbox_append_batch (s.db, &packed, 1), 0);
    assert_int_equal (rt_db_commit (s.db), 0);
    free (packed.data);
    rt_envelope_free (env);
}

/* Waits until the card has taken n events in all. */
static void
s_wait_taken (long long n)
{
    long long got = rt_test_pg_wait_long (s.pg, "SELECT count(*) FROM crm.card_events", n, 30000);
    if (got < n)
        fail_msg ("the card took %lld events, not %lld; see %s/router_customers-routerd.log", got,
                  n, rt_test_dir ());
}

/* --- setup --- */

static void
s_operator (const char *id, const char *team, const char *role, char *key)
{
    const char *args[] = {"operator", "add",    "--id", id,           "--name", id,  "--team",
                          team,       "--role", role,   "--capacity", "8",      NULL};
    char *out = NULL;
    const char *t;
    assert_int_equal (rt_test_retainctl (s.dsn, args, &out), 0);
    t = strstr (out, "token: ");
    assert_non_null (t);
    sscanf (t + 7, "%79s", key);
    free (out);
}

static void
s_team (const char *id)
{
    const char *args[] = {"team", "add", "--id", id, "--name", id, NULL};
    assert_int_equal (rt_test_retainctl (s.dsn, args, NULL), 0);
}

static void
s_routerd_start (void)
{
    char dsn[1100], pub[96], admin[48], http[48];
    snprintf (dsn, sizeof dsn, "--pg-dsn=%s", s.dsn);
    snprintf (pub, sizeof pub, "--pub=%s", s.busd.pub);
    snprintf (admin, sizeof admin, "--admin=127.0.0.1:%d", s.admin_port);
    snprintf (http, sizeof http, "--http=127.0.0.1:%d", s.http_port);
    char *argv[] = {"retain-routerd", dsn, pub, admin, http, "--http-threads=2", NULL};
    s.routerd = rt_test_spawn ("retain-routerd", argv, NULL, "router_customers-routerd.log");
    if (!rt_test_wait_ready (s.admin_port, 30000))
        fail_msg ("retain-routerd not ready; see %s/router_customers-routerd.log", rt_test_dir ());
}

static int
s_setup (void **state)
{
    (void)state;
    rt_test_db_create ("router_customers", s.dsn, sizeof s.dsn);
    s.pg = rt_test_pg (s.dsn);
    rt_test_busd_start (&s.busd, s.dsn, "router_customers-busd.log", NULL, true);
    s.admin_port = rt_test_free_port ();
    s.http_port = rt_test_free_port ();
    rt_test_api_open (&s.api, "router_customers", s.http_port);
    s_routerd_start ();
    /* routerd applied the outbox's migrations: the producer's connection. */
    s.db = rt_db_new (s.dsn, "test-producer");
    assert_non_null (s.db);
    assert_int_equal (rt_db_connect (s.db), 0);
    assert_int_equal (rt_outbox_prepare (s.db), 0);
    s_team ("care");
    s_team ("sales");
    s_operator ("op-anna", "care", "operator", s.anna);
    s_operator ("op-olga", "sales", "operator", s.olga);
    s_operator ("op-root", "care", "admin", s.root);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s.routerd > 0)
        rt_test_stop (s.routerd, "retain-routerd");
    if (s.busd.pid > 0)
        rt_test_stop (s.busd.pid, "retain-busd");
    rt_db_destroy (&s.db);
    if (s.pg)
        PQfinish (s.pg);
    return 0;
}

/* --- the card's projection --- */

static void
test_card_from_events (void **state)
{
    Retain__V1__OrderPlaced placed = RETAIN__V1__ORDER_PLACED__INIT;
    Retain__V1__OrderPaid paid = RETAIN__V1__ORDER_PAID__INIT;
    Retain__V1__OrderShipped shipped = RETAIN__V1__ORDER_SHIPPED__INIT;
    Retain__V1__ShipmentStatusChanged sc = RETAIN__V1__SHIPMENT_STATUS_CHANGED__INIT;
    Retain__V1__ShipmentDelayed delayed = RETAIN__V1__SHIPMENT_DELAYED__INIT;
    Retain__V1__PointsEarned points = RETAIN__V1__POINTS_EARNED__INIT;
    Retain__V1__TierChanged tier = RETAIN__V1__TIER_CHANGED__INIT;
    Retain__V1__ChurnRiskChanged risk = RETAIN__V1__CHURN_RISK_CHANGED__INIT;
    Retain__V1__FeedbackReceived fb = RETAIN__V1__FEEDBACK_RECEIVED__INIT;
    Retain__V1__CouponIssued coupon = RETAIN__V1__COUPON_ISSUED__INIT;
    Retain__V1__Money total = RETAIN__V1__MONEY__INIT;
    rt_test_api_reply_t r;
    json_t *card;
    double skipped;
    (void)state;

    /* An order by phone names a shop customer nobody has seen. */
    total.amount_minor = 125000;
    total.currency = "UAH";
    placed.order_id = "ord-1";
    placed.customer_id = "shop-501";
    placed.total = &total;
    placed.placed_at = T0;
    placed.customer_phone = "067 111 22 33";
    placed.customer_email = "Olena@Example.COM";
    placed.customer_name = TEXT_UK;
    s_publish ("OrderPlaced", "shop-501", &placed.base, 0, NULL);
    s_wait_taken (1);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.customers"), 1);

    /* Found by the phone in another spelling, and by the e-mail. */
    r = s_call ("GET", "/v1/customers", NULL, "phone=%2B380671112233", NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 1);
    snprintf (s.olena, sizeof s.olena, "%s", s_str (r.json, "items.0.id"));
    assert_string_equal (s_str (r.json, "items.0.name"), TEXT_UK);
    assert_string_equal (s_str (r.json, "items.0.shop_customer_id"), "shop-501");
    rt_test_api_reply_free (&r);

    paid.order_id = "ord-1";
    paid.customer_id = "shop-501";
    paid.paid_at = T0 + 60000;
    paid.method = "card";
    s_publish ("OrderPaid", "shop-501", &paid.base, 0, NULL);
    shipped.order_id = "ord-1";
    shipped.customer_id = "shop-501";
    shipped.shipment_id = "sh-1";
    shipped.carrier = "nova_poshta";
    shipped.tracking_number = "20450000000001";
    shipped.shipped_at = T0 + 3600000;
    s_publish ("OrderShipped", "shop-501", &shipped.base, 0, NULL);
    /* The carrier's events name no customer: the order's is theirs. The
     * newer status first, then an older one that arrives late. */
    sc.shipment_id = "sh-1";
    sc.order_id = "ord-1";
    sc.carrier = "nova_poshta";
    sc.tracking_number = "20450000000001";
    sc.status = RETAIN__V1__SHIPMENT_STATUS__IN_TRANSIT;
    sc.location = "Київ";
    sc.changed_at = T0 + 7200000;
    sc.estimated_delivery = T0 + 86400000;
    s_publish ("ShipmentStatusChanged", "sh-1", &sc.base, 0, NULL);
    sc.status = RETAIN__V1__SHIPMENT_STATUS__LABEL_CREATED;
    sc.location = "Львів";
    sc.changed_at = T0 + 3600000;
    s_publish ("ShipmentStatusChanged", "sh-1", &sc.base, 0, NULL);
    delayed.shipment_id = "sh-1";
    delayed.order_id = "ord-1";
    delayed.delay_ms = 86400000;
    delayed.reason = "stalled";
    delayed.promised_by = T0 + 86400000;
    s_publish ("ShipmentDelayed", "sh-1", &delayed.base, 0, NULL);
    /* Loyalty names the retain id; the older balance comes last. */
    points.customer_id = s.olena;
    points.points = 125;
    points.balance = 300;
    points.reason = "order";
    s_publish ("PointsEarned", s.olena, &points.base, T0 + 100000, NULL);
    points.balance = 175;
    s_publish ("PointsEarned", s.olena, &points.base, T0 + 50000, NULL);
    tier.customer_id = s.olena;
    tier.previous_tier = "silver";
    tier.tier = "gold";
    tier.discount_percent = 7;
    s_publish ("TierChanged", s.olena, &tier.base, T0 + 100000, NULL);
    risk.customer_id = s.olena;
    risk.p_alive = 0.35;
    risk.segment = "at_risk";
    risk.risk = "high";
    s_publish ("ChurnRiskChanged", s.olena, &risk.base, T0 + 100000, NULL);
    fb.customer_id = s.olena;
    fb.order_id = "ord-1";
    fb.kind = "csat";
    fb.score = 2;
    fb.comment = TEXT_SQL;
    fb.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    s_publish ("FeedbackReceived", s.olena, &fb.base, T0 + 200000, NULL);
    /* A type routerd does not take: skipped and counted. */
    coupon.coupon_id = "cp-1";
    coupon.customer_id = s.olena;
    coupon.code = "SORRY10";
    s_publish ("CouponIssued", s.olena, &coupon.base, 0, NULL);
    s_wait_taken (11);
    for (int i = 0; i < 100; i++) {
        skipped =
            rt_test_metric (s.admin_port, "retain_router_skipped_total{type=\"CouponIssued\"}");
        if (skipped == 1)
            break;
        usleep (100000);
    }
    assert_true (skipped == 1);

    r = s_call ("GET", "/v1/customers/{id}", s.olena, NULL, NULL);
    assert_int_equal (r.status, 200);
    card = r.json;
    assert_string_equal (s_str (card, "id"), s.olena);
    assert_true (json_is_null (rt_test_api_at (card, "merged_into")));
    assert_string_equal (s_str (card, "shop_customer_id"), "shop-501");
    assert_string_equal (s_str (card, "profile.name"), TEXT_UK);
    assert_int_equal (json_integer_value (rt_test_api_at (card, "orders_count")), 1);
    assert_string_equal (s_str (card, "orders.0.order_id"), "ord-1");
    assert_string_equal (s_str (card, "orders.0.status"), "shipped");
    assert_int_equal (json_integer_value (rt_test_api_at (card, "orders.0.total.amount_minor")),
                      125000);
    assert_string_equal (s_str (card, "orders.0.total.currency"), "UAH");
    assert_string_equal (s_str (card, "orders.0.placed_at"), "2026-11-24T06:00:00.000Z");
    assert_string_equal (s_str (card, "orders.0.payment_method"), "card");
    assert_int_equal (json_array_size (rt_test_api_at (card, "shipments")), 1);
    assert_string_equal (s_str (card, "shipments.0.status"), "in_transit");
    assert_string_equal (s_str (card, "shipments.0.location"), "Київ");
    assert_string_equal (s_str (card, "shipments.0.carrier"), "nova_poshta");
    assert_string_equal (s_str (card, "shipments.0.tracking_number"), "20450000000001");
    assert_true (json_is_true (rt_test_api_at (card, "shipments.0.delayed")));
    assert_string_equal (s_str (card, "shipments.0.delay_reason"), "stalled");
    assert_int_equal (json_integer_value (rt_test_api_at (card, "loyalty.points")), 300);
    assert_string_equal (s_str (card, "loyalty.tier"), "gold");
    assert_string_equal (s_str (card, "loyalty.churn.risk"), "high");
    assert_string_equal (s_str (card, "loyalty.churn.segment"), "at_risk");
    assert_true (json_real_value (rt_test_api_at (card, "loyalty.churn.p_alive")) == 0.35);
    assert_int_equal (json_array_size (rt_test_api_at (card, "feedback")), 1);
    assert_int_equal (json_integer_value (rt_test_api_at (card, "feedback.0.score")), 2);
    assert_string_equal (s_str (card, "feedback.0.comment"), TEXT_SQL);
    assert_string_equal (s_str (card, "feedback.0.channel"), "telegram");
    /* The shop's phone and e-mail as identity normalised them. */
    assert_string_equal (s_str (card, "contact_points.0.value"), "olena@example.com");
    assert_string_equal (s_str (card, "contact_points.1.value"), "+380671112233");
    assert_string_equal (s_str (card, "contact_points.1.source"), "shop");
    assert_false (json_is_true (rt_test_api_at (card, "contact_points.1.proven")));
    /* OrderPlaced still goes to the timeline (none here: no conversation). */
    assert_int_equal (json_array_size (rt_test_api_at (card, "conversations")), 0);
    {
        /* Kept for the replay: everything the events made. */
        char *text = json_dumps (card, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null (text);
        assert_true (strlen (text) < sizeof s.card);
        snprintf (s.card, sizeof s.card, "%s", text);
        free (text);
    }
    rt_test_api_reply_free (&r);
}

static void
test_never_seen (void **state)
{
    Retain__V1__PointsEarned points = RETAIN__V1__POINTS_EARNED__INIT;
    Retain__V1__FeedbackReceived fb = RETAIN__V1__FEEDBACK_RECEIVED__INIT;
    rt_test_api_reply_t r;
    char id[40];
    (void)state;
    /* A shop id nobody has: a new customer holding it. */
    points.customer_id = "shop-never-seen";
    points.balance = 10;
    s_publish ("PointsEarned", "shop-never-seen", &points.base, 0, NULL);
    /* A retain id nobody has: a new customer too (identity never adopts
     * an unknown id), and no crash. */
    fb.customer_id = "01890000-0000-7000-8000-00000000abcd";
    fb.kind = "nps";
    fb.score = 9;
    fb.comment = "李雷: 很好";
    s_publish ("FeedbackReceived", fb.customer_id, &fb.base, 0, NULL);
    s_wait_taken (13);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.customers"), 3);
    assert_true (rt_test_wait_ready (s.admin_port, 1000));
    rt_test_pg_wait_long (s.pg,
                          "SELECT count(*) FROM crm.customers WHERE shop_customer_id ="
                          " 'shop-never-seen'",
                          1, 1000);
    {
        PGresult *res = PQexec (s.pg, "SELECT id FROM crm.customers WHERE shop_customer_id ="
                                      " 'shop-never-seen'");
        assert_int_equal (PQntuples (res), 1);
        snprintf (id, sizeof id, "%s", PQgetvalue (res, 0, 0));
        PQclear (res);
    }
    r = s_call ("GET", "/v1/customers/{id}", id, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "loyalty.points")), 10);
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.card_feedback WHERE"
                                             " comment = '李雷: 很好' AND score = 9"),
                      1);
}

/* The log handed to routerd again from the start (its offsets reset, as
 * after a crash between handling and commit): no card changes. */
static void
test_replay_changes_nothing (void **state)
{
    long long handled, customers;
    rt_test_api_reply_t r;
    char *text;
    double replays = 0;
    (void)state;
    customers = rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.customers");
    rt_test_stop (s.routerd, "retain-routerd");
    s.routerd = 0;
    handled = rt_test_pg_long (s.pg, "SELECT sum(pseq) FROM bus.offsets WHERE grp = 'router'"
                                     " AND stream IN ('order', 'shipment', 'loyalty', 'customer')");
    assert_true (handled >= 14);
    rt_test_pg_exec (s.pg, "UPDATE bus.offsets SET pseq = 0 WHERE grp = 'router'"
                           " AND stream IN ('order', 'shipment', 'loyalty', 'customer')");
    s_routerd_start ();
    {
        char sql[256];
        snprintf (sql, sizeof sql,
                  "SELECT sum(pseq) FROM bus.offsets WHERE grp = 'router'"
                  " AND stream IN ('order', 'shipment', 'loyalty', 'customer')");
        assert_true (rt_test_pg_wait_long (s.pg, sql, handled, 30000) >= handled);
    }
    for (int i = 0; i < 50 && replays < 8; i++) {
        replays = 0;
        const char *types[] = {"OrderPlaced", "OrderPaid", "PointsEarned", "FeedbackReceived",
                               "ShipmentStatusChanged"};
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
            char series[128];
            double v;
            snprintf (series, sizeof series, "retain_router_card_replays_total{type=\"%s\"}",
                      types[t]);
            v = rt_test_metric (s.admin_port, series);
            replays += v > 0 ? v : 0;
        }
        usleep (100000);
    }
    /* Every one of those seen again and passed over. */
    assert_true (replays >= 8);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.customers"), customers);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.card_events"), 13);
    r = s_call ("GET", "/v1/customers/{id}", s.olena, NULL, NULL);
    assert_int_equal (r.status, 200);
    text = json_dumps (r.json, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal (text, s.card);
    free (text);
    rt_test_api_reply_free (&r);
}

/* --- the endpoints --- */

static void
test_keys_and_ids (void **state)
{
    (void)state;
    rt_test_api_expect_problem (
        s_call_as ("GET", "/v1/customers/{id}", s.olena, NULL, NULL, NULL, NULL, NULL), 401,
        "unauthorized");
    rt_test_api_expect_problem (
        s_call_as ("PATCH", "/v1/customers/{id}", s.olena, NULL, NULL, "{}", NULL, NULL), 401,
        "unauthorized");
    rt_test_api_expect_problem (
        s_call ("GET", "/v1/customers/{id}", "0190a000-0000-7000-8000-0000000000ff", NULL, NULL),
        404, "not-found");
    rt_test_api_expect_problem (s_call ("GET", "/v1/customers/{id}", "nope", NULL, NULL), 404,
                                "not-found");
    /* Any operator reads a card, whatever their team. */
    {
        rt_test_api_reply_t r =
            s_call_as ("GET", "/v1/customers/{id}", s.olena, NULL, s.olga, NULL, NULL, NULL);
        assert_int_equal (r.status, 200);
        rt_test_api_reply_free (&r);
    }
}

static void
test_search (void **state)
{
    rt_test_api_reply_t r;
    (void)state;
    /* National spelling, in the default country. */
    r = s_call ("GET", "/v1/customers", NULL, "phone=067%20111-22-33", NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (s_str (r.json, "items.0.id"), s.olena);
    assert_string_equal (s_str (r.json, "items.0.phones.0"), "+380671112233");
    rt_test_api_reply_free (&r);
    r = s_call ("GET", "/v1/customers", NULL, "email=OLENA%40example.com", NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (s_str (r.json, "items.0.id"), s.olena);
    rt_test_api_reply_free (&r);
    /* A name's substring, in another case, in Cyrillic. */
    r = s_call ("GET", "/v1/customers", NULL, "q=%D0%BA%D0%BE%D0%B2%D0%B0%D0%BB", NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 1);
    assert_string_equal (s_str (r.json, "items.0.id"), s.olena);
    assert_true (json_is_null (json_object_get (r.json, "next_cursor")));
    rt_test_api_reply_free (&r);
    /* % and _ are themselves, not wildcards. */
    r = s_call ("GET", "/v1/customers", NULL, "q=%25", NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 0);
    rt_test_api_reply_free (&r);
    r = s_call ("GET", "/v1/customers", NULL, "phone=%2B380990000000", NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 0);
    rt_test_api_reply_free (&r);
    /* Bad queries: the number named. */
    r = s_call ("GET", "/v1/customers", NULL, "phone=call%20me", NULL);
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (s_str (r.json, "detail"), "call me"));
    rt_test_api_expect_problem (r, 400, "bad-query");
    rt_test_api_expect_problem (
        s_call ("GET", "/v1/customers", NULL, "phone=%2B380671112233&q=x", NULL), 400, "bad-query");
    rt_test_api_expect_problem (s_call ("GET", "/v1/customers", NULL, NULL, NULL), 400,
                                "bad-query");
    rt_test_api_expect_problem (s_call ("GET", "/v1/customers", NULL, "q=", NULL), 400,
                                "bad-query");
    rt_test_api_expect_problem (s_call ("GET", "/v1/customers", NULL, "q=x&cursor=nonsense", NULL),
                                400, "bad-cursor");
}

static void
test_patch (void **state)
{
    rt_test_api_reply_t r;
    (void)state;
    r = s_call_as ("PATCH", "/v1/customers/{id}", s.olena, NULL, s.anna,
                   "{\"birthday\": \"1990-03-14\", \"time_zone\": \"Europe/Kyiv\","
                   " \"preferred_channel\": \"viber\", \"manager\": \"op-anna\","
                   " \"notes\": \"" TEXT_SQL "\", \"locale\": \"uk-UA\"}",
                   "application/merge-patch+json", NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (s_str (r.json, "profile.birthday"), "1990-03-14");
    assert_string_equal (s_str (r.json, "profile.time_zone"), "Europe/Kyiv");
    assert_string_equal (s_str (r.json, "profile.preferred_channel"), "viber");
    assert_string_equal (s_str (r.json, "profile.notes"), TEXT_SQL);
    assert_string_equal (s_str (r.json, "profile.manager"), "op-anna");
    assert_string_equal (s_str (r.json, "profile.name"), TEXT_UK);
    rt_test_api_reply_free (&r);
    /* loyaltyd learns the birthday: CustomerUpserted on the bus. */
    assert_int_equal (rt_test_pg_wait_long (s.pg,
                                            "SELECT count(*) FROM bus.events WHERE"
                                            " type = 'CustomerUpserted'",
                                            1, 20000),
                      1);
    /* null clears a field. */
    r = s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"preferred_channel\": null}");
    assert_int_equal (r.status, 200);
    assert_true (json_is_null (rt_test_api_at (r.json, "profile.preferred_channel")));
    assert_string_equal (s_str (r.json, "profile.birthday"), "1990-03-14");
    rt_test_api_reply_free (&r);
    /* Bad input. */
    r = s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"shoe_size\": \"42\"}");
    assert_int_equal (r.status, 400);
    assert_non_null (strstr (s_str (r.json, "detail"), "shoe_size"));
    rt_test_api_expect_problem (r, 400, "unknown-field");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"name\": "), 400, "bad-json");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"name\": 5}"), 422, "invalid");
    rt_test_api_expect_problem (s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "[]"), 422,
                                "invalid");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"birthday\": \"1990-02-30\"}"),
        422, "invalid");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"time_zone\": \"Mars/Olympus\"}"),
        422, "invalid");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"preferred_channel\": \"fax\"}"),
        422, "invalid");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", s.olena, NULL, "{\"manager\": \"op-nobody\"}"), 422,
        "invalid");
    rt_test_api_expect_problem (s_call ("PATCH", "/v1/customers/{id}",
                                        "0190a000-0000-7000-8000-0000000000ff", NULL,
                                        "{\"name\": \"x\"}"),
                                404, "not-found");
    /* Nothing refused was written. */
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.customers WHERE"
                                             " birthday = '1990-03-14' AND manager = 'op-anna'"),
                      1);
}

/* Two customers with a Telegram and an Instagram identity and an open
 * conversation each; ids into a and b, their conversations into ca, cb. */
static void
s_pair (const char *a, const char *b, const char *ca, const char *cb, const char *team_b)
{
    char sql[4096];
    snprintf (sql, sizeof sql,
              "INSERT INTO crm.customers (id, name) VALUES ('%s', 'Ahmed'), ('%s', $q$%s$q$);"
              "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id) VALUES"
              " ('telegram', 'shop-bot', '%s', '%s'), ('instagram', 'shop', '%s', '%s');"
              "INSERT INTO routing.conversations (id, customer_id, team_id, channel, inbox,"
              " unanswered, waiting_since, created_at) VALUES"
              " ('%s', '%s', 'care', 'telegram', 'shop-bot', 1, now() - interval '5 minutes',"
              " now() - interval '1 hour'),"
              " ('%s', '%s', '%s', 'instagram', 'shop', 1, now() - interval '3 minutes',"
              " now() - interval '50 minutes');"
              "INSERT INTO routing.timeline (conversation_id, kind, event_id, channel, counted,"
              " body, occurred_at) VALUES"
              " ('%s', 'inbound', gen_random_uuid(), 'telegram', true, '{\"text\": \"hi\"}',"
              " now() - interval '5 minutes'),"
              " ('%s', 'inbound', gen_random_uuid(), 'instagram', true, '{\"text\": \"hey\"}',"
              " now() - interval '3 minutes')",
              a, b, TEXT_SQL, a, a, b, b, ca, a, cb, b, team_b, ca, cb);
    rt_test_pg_exec (s.pg, sql);
}

#define CU_A "0190b000-0000-7000-8000-0000000000a1"
#define CU_B "0190b000-0000-7000-8000-0000000000b2"
#define CV_A "0190b000-0000-7000-8000-0000000000c1"
#define CV_B "0190b000-0000-7000-8000-0000000000c2"

static void
test_merge_and_undo (void **state)
{
    rt_test_api_reply_t r, again;
    char merge_id[40], body[256];
    (void)state;
    s_pair (CU_A, CU_B, CV_A, CV_B, "sales");

    /* anna (care) sees A's conversation; B's is sales'. */
    r = s_call ("GET", "/v1/customers/{id}", CU_B, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "conversations")), 0);
    assert_string_equal (s_str (r.json, "profile.name"), TEXT_SQL);
    rt_test_api_reply_free (&r);
    r = s_call_as ("GET", "/v1/customers/{id}", CU_B, NULL, s.olga, NULL, NULL, NULL);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "conversations")), 1);
    assert_string_equal (s_str (r.json, "conversations.0.id"), CV_B);
    rt_test_api_reply_free (&r);

    /* B's order, on B's card. */
    {
        Retain__V1__OrderPlaced placed = RETAIN__V1__ORDER_PLACED__INIT;
        placed.order_id = "ord-b";
        placed.customer_id = CU_B;
        placed.placed_at = T0;
        s_publish ("OrderPlaced", CU_B, &placed.base, 0, NULL);
        s_wait_taken (14);
    }
    snprintf (body, sizeof body, "{\"with\": \"%s\", \"reason\": \"same person — сказала\"}", CU_B);
    r = s_call_as ("POST", "/v1/customers/{id}/merge", CU_A, NULL, s.root, body, NULL, "merge-1");
    assert_int_equal (r.status, 200);
    assert_false (r.replayed);
    snprintf (merge_id, sizeof merge_id, "%s", s_str (r.json, "merge_id"));
    assert_int_equal (strlen (merge_id), 36);
    assert_string_equal (s_str (r.json, "card.id"), CU_A);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "card.identities")), 2);
    assert_string_equal (s_str (r.json, "card.merges.0.id"), merge_id);
    assert_string_equal (s_str (r.json, "card.merges.0.reason"), "same person — сказала");
    /* B's history shows on A's card while the merge stands. */
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "card.orders_count")), 1);
    assert_string_equal (s_str (r.json, "card.orders.0.order_id"), "ord-b");
    assert_string_equal (s_str (r.json, "card.orders.0.customer_id"), CU_B);
    rt_test_api_reply_free (&r);
    /* The same key: the same merge, replayed, nothing merged twice. */
    again =
        s_call_as ("POST", "/v1/customers/{id}/merge", CU_A, NULL, s.root, body, NULL, "merge-1");
    assert_int_equal (again.status, 200);
    assert_true (again.replayed);
    assert_string_equal (s_str (again.json, "merge_id"), merge_id);
    rt_test_api_reply_free (&again);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.merges"), 1);
    /* Both conversations are A's now. */
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM routing.conversations WHERE"
                                             " customer_id = '" CU_A "'"),
                      2);
    /* B's id answers A's card, saying so. */
    r = s_call ("GET", "/v1/customers/{id}", CU_B, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (s_str (r.json, "id"), CU_A);
    assert_string_equal (s_str (r.json, "requested_id"), CU_B);
    assert_string_equal (s_str (r.json, "merged_into"), CU_A);
    rt_test_api_reply_free (&r);
    /* Merging or editing the absorbed one: 409. */
    snprintf (body, sizeof body, "{\"with\": \"%s\"}", CU_A);
    rt_test_api_expect_problem (s_call ("POST", "/v1/customers/{id}/merge", CU_B, NULL, body), 409,
                                "merged");
    rt_test_api_expect_problem (
        s_call ("PATCH", "/v1/customers/{id}", CU_B, NULL, "{\"name\": \"x\"}"), 409, "merged");

    /* The undo: identities and conversations back. */
    r = s_call ("POST", "/v1/merges/{id}/undo", merge_id, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_true (json_is_true (json_object_get (r.json, "undone")));
    rt_test_api_reply_free (&r);
    r = s_call_as ("GET", "/v1/customers/{id}", CU_B, NULL, s.olga, NULL, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (s_str (r.json, "id"), CU_B);
    assert_true (json_is_null (rt_test_api_at (r.json, "merged_into")));
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "identities")), 1);
    assert_string_equal (s_str (r.json, "identities.0.channel"), "instagram");
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "conversations")), 1);
    assert_string_equal (s_str (r.json, "conversations.0.id"), CV_B);
    assert_string_equal (s_str (r.json, "conversations.0.customer.id"), CU_B);
    assert_string_equal (s_str (r.json, "merges.0.undone_by"), "op-anna");
    assert_string_equal (s_str (r.json, "orders.0.order_id"), "ord-b");
    rt_test_api_reply_free (&r);
    r = s_call ("GET", "/v1/customers/{id}", CU_A, NULL, NULL);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "identities")), 1);
    assert_string_equal (s_str (r.json, "identities.0.channel"), "telegram");
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "orders_count")), 0);
    rt_test_api_reply_free (&r);
    rt_test_api_expect_problem (s_call ("POST", "/v1/merges/{id}/undo", merge_id, NULL, NULL), 409,
                                "undone");
    rt_test_api_expect_problem (
        s_call ("POST", "/v1/merges/{id}/undo", "0190b000-0000-7000-8000-0000000000ff", NULL, NULL),
        404, "not-found");

    /* Bad merges. */
    snprintf (body, sizeof body, "{\"with\": \"%s\"}", CU_A);
    rt_test_api_expect_problem (s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL, body), 422,
                                "same-customer");
    rt_test_api_expect_problem (s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL,
                                        "{\"with\": \"0190b000-0000-7000-8000-0000000000ff\"}"),
                                404, "not-found");
    rt_test_api_expect_problem (
        s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL, "{\"with\": \"nope\"}"), 404,
        "not-found");
    rt_test_api_expect_problem (
        s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL, "{\"with\": "), 400, "bad-json");
    rt_test_api_expect_problem (
        s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL, "{\"reason\": \"?\"}"), 422,
        "invalid");
    /* Two shop accounts are never one customer. */
    rt_test_pg_exec (s.pg,
                     "UPDATE crm.customers SET shop_customer_id = 'shop-a' WHERE id = '" CU_A "'");
    rt_test_pg_exec (s.pg,
                     "UPDATE crm.customers SET shop_customer_id = 'shop-b' WHERE id = '" CU_B "'");
    snprintf (body, sizeof body, "{\"with\": \"%s\"}", CU_B);
    rt_test_api_expect_problem (s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL, body), 422,
                                "shop-ids");
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.merges"), 1);
}

#define SG_1 "0190c000-0000-7000-8000-000000000001"
#define SG_2 "0190c000-0000-7000-8000-000000000002"
#define CU_C "0190c000-0000-7000-8000-0000000000c3"
#define CU_D "0190c000-0000-7000-8000-0000000000d4"

static void
test_suggestions (void **state)
{
    rt_test_api_reply_t r;
    char body[256];
    (void)state;
    rt_test_pg_exec (s.pg, "INSERT INTO crm.customers (id, name) VALUES ('" CU_C "', 'C'),"
                           " ('" CU_D "', 'D')");
    rt_test_pg_exec (s.pg,
                     "INSERT INTO crm.merge_suggestions (id, customer_id, candidate_id,"
                     " evidence) VALUES ('" SG_1 "', '" CU_C "', '" CU_D "',"
                     " '{\"phone\": \"+380671112299\", \"seen_in\": \"instagram message 1\"}')");
    r = s_call ("GET", "/v1/customers/{id}", CU_D, NULL, NULL);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "suggestions")), 1);
    assert_string_equal (s_str (r.json, "suggestions.0.candidate_id"), CU_C);
    assert_string_equal (s_str (r.json, "suggestions.0.evidence.phone"), "+380671112299");
    rt_test_api_reply_free (&r);
    r = s_call ("POST", "/v1/suggestions/{id}/reject", SG_1, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (s_str (r.json, "resolution"), "rejected");
    rt_test_api_reply_free (&r);
    /* Again: the same answer. */
    r = s_call ("POST", "/v1/suggestions/{id}/reject", SG_1, NULL, NULL);
    assert_int_equal (r.status, 200);
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.pg,
                                       "SELECT count(*) FROM crm.merge_suggestions WHERE"
                                       " resolution = 'rejected' AND resolved_by = 'op-anna'"),
                      1);
    r = s_call ("GET", "/v1/customers/{id}", CU_D, NULL, NULL);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "suggestions")), 0);
    rt_test_api_reply_free (&r);
    rt_test_api_expect_problem (s_call ("POST", "/v1/suggestions/{id}/reject",
                                        "0190c000-0000-7000-8000-0000000000ff", NULL, NULL),
                                404, "not-found");

    /* Accepted through the merge: marked merged, and then not rejectable. */
    rt_test_pg_exec (s.pg, "INSERT INTO crm.merge_suggestions (id, customer_id, candidate_id)"
                           " VALUES ('" SG_2 "', '" CU_C "', '" CU_A "')");
    snprintf (body, sizeof body, "{\"with\": \"%s\", \"suggestion_id\": \"%s\"}", CU_C, SG_2);
    rt_test_api_expect_problem (s_call ("POST", "/v1/customers/{id}/merge", CU_D, NULL, body), 422,
                                "invalid");
    r = s_call ("POST", "/v1/customers/{id}/merge", CU_A, NULL, body);
    assert_int_equal (r.status, 200);
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.pg, "SELECT count(*) FROM crm.merge_suggestions WHERE"
                                             " id = '" SG_2 "' AND resolution = 'merged'"),
                      1);
    rt_test_api_expect_problem (s_call ("POST", "/v1/suggestions/{id}/reject", SG_2, NULL, NULL),
                                409, "resolved");
}

static void
test_openapi (void **state)
{
    (void)state;
    rt_test_api_check (&s.api, DOC);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_card_from_events),
        cmocka_unit_test (test_never_seen),
        cmocka_unit_test (test_replay_changes_nothing),
        cmocka_unit_test (test_keys_and_ids),
        cmocka_unit_test (test_search),
        cmocka_unit_test (test_patch),
        cmocka_unit_test (test_merge_and_undo),
        cmocka_unit_test (test_suggestions),
        cmocka_unit_test (test_openapi),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
