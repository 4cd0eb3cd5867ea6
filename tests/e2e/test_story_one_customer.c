/*
 * The product's first story, end to end: one customer across channels.
 *
 * Real processes on a database of the story's own: retain-busd,
 * retain-ingestd with its inboxes made by retainctl, retain-routerd, two
 * operators made with retainctl and online through the operator API. The
 * shop publishes OrderPlaced with the customer's phone (retainctl
 * publish, as a shop integration does); the customer then writes on
 * WhatsApp from that number (a webhook signed as Meta signs it) and on
 * Telegram, sharing their own contact. Through the operator API: one
 * customer (the order's), one open conversation, the same operator on it
 * throughout (the first to get it, who became the customer's manager),
 * and its timeline holding the order and both messages (the order came
 * before the first message, so before the conversation). Then an Instagram
 * message in which they type the number: a new Instagram identity on a
 * customer of its own (a typed number proves nothing), with a merge
 * suggestion on the cards; the operator merges accepting it, and
 * afterwards the Instagram identity is the one customer's, its message
 * waits in the same conversation, still the same operator's, and a reply
 * on Instagram goes out as OutboundMessageRequested on the bus.
 *
 * Every answer of the operator API is checked against the OpenAPI
 * document with tests/integration/openapi/check.mjs (node; without it the
 * story fails, never skips).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "retain/v1/message.pb-c.h"
#include "rt_test_story.h"

#define META_SECRET "meta-app-secret-e2e"
#define TG_SECRET   "tg-secret-e2e"

/* The customer: the number the shop has (in its national spelling), as
 * WhatsApp's wa_id and Telegram's contact give it, and as typed. */
#define PHONE_SHOP "067 111 22 33"
#define PHONE_E164 "+380671112233"
#define PHONE_WA   "380671112233"
#define TG_USER    "387164922"
#define IG_USER    "17841400000000777"
#define NAME       "Олена Коваленко"
#define ORDER_ID   "ord-7001"
#define TEXT_WA    "Доброго дня! Коли приїде моє замовлення?"
#define TEXT_IG    "Це знову я, Олена. Мій номер 067 111-22-33, я писала у WhatsApp"
#define TEXT_REPLY "Олено, посилка вже в дорозі: завтра у відділенні 📦"

/* The story's world. */
static struct {
    rt_test_story_t w;    /* the daemons, the database, the operator API */
    char anna[80];        /* key of op-anna, operator in care */
    char bob[80];         /* key of op-bob, operator in care */
    char customer[40];    /* the order's customer */
    char conv[40];        /* their one conversation */
    char op[80];          /* its operator, op-anna or op-bob */
    char key[80];         /* that operator's key */
    char other_key[80];   /* the other operator's key */
    char ig_customer[40]; /* the customer the Instagram message made */
    char ig_conv[40];     /* that customer's conversation */
    char suggestion[40];  /* the merge suggestion between the two */
} s;

/* --- the operator API --- */

static rt_test_api_reply_t
s_api (const char *method, const char *tmpl, const char *id, const char *query, const char *key,
       const char *body, const char *idem)
{
    return rt_test_api_call (&s.w.api, method, tmpl, id, query, key, body, idem);
}

/* Calls GET tmpl (id, query) as key until the answer satisfies ok or 30 s
 * pass; returns the last answer (200 asserted). */
static rt_test_api_reply_t
s_poll (const char *tmpl, const char *id, const char *query, const char *key, bool (*ok) (json_t *),
        const char *what)
{
    int64_t deadline = rt_test_now_ms () + 30000;
    for (;;) {
        rt_test_api_reply_t r = s_api ("GET", tmpl, id, query, key, NULL, NULL);
        if (r.status == 200 && ok (r.json))
            return r;
        if (rt_test_now_ms () > deadline)
            fail_msg ("%s: not within 30 s; the last answer (%ld): %s; see %s/%s", what, r.status,
                      r.body, rt_test_dir (), s.w.routerd.log);
        rt_test_api_reply_free (&r);
        usleep (100000);
    }
}

/* --- setup --- */

static int
s_setup (void **state)
{
    const char *routerd_extra[] = {"--tick=200ms", NULL};
    const rt_test_story_operator_t operators[] = {
        {"op-anna", "operator", s.anna}, {"op-bob", "operator", s.bob}, {NULL, NULL, NULL}};
    const rt_test_story_opts_t opts = {.name = "story_one_customer",
                                       .routerd_member = "story-1",
                                       .routerd_extra = routerd_extra,
                                       .team = "care",
                                       .team_name = "Customer care",
                                       .operators = operators};
    (void)state;
    rt_test_story_open (&s.w, &opts);
    rt_test_story_start (&s.w);
    /* The shop's channels: a WhatsApp number and an Instagram account at
     * Meta (one app secret), a Telegram bot. */
    rt_test_story_inbox (&s.w, "shop-wa", "whatsapp", META_SECRET);
    rt_test_story_inbox (&s.w, "shop-ig", "instagram", META_SECRET);
    rt_test_story_inbox (&s.w, "shop-bot", "telegram", TG_SECRET);
    /* ingestd reloads its inboxes every second. */
    usleep (1500000);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_story_stop (&s.w);
    return 0;
}

/* --- the story --- */

static bool
s_one_item (json_t *j)
{
    return json_array_size (json_object_get (j, "items")) == 1;
}

static void
test_operators_log_in (void **state)
{
    const char *keys[] = {s.anna, s.bob};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        rt_test_api_reply_t r = s_api ("PUT", "/v1/operators/me/presence", NULL, NULL, keys[i],
                                       "{\"presence\": \"online\"}", NULL);
        assert_int_equal (r.status, 200);
        assert_string_equal (rt_test_api_str (r.json, "presence"), "online");
        rt_test_api_reply_free (&r);
    }
}

/* The shop's integration publishes the order taken by phone. */
static void
test_order_by_phone (void **state)
{
    char json[1024];
    rt_test_api_reply_t r;
    (void)state;
    snprintf (json, sizeof json,
              "{\"order_id\": \"" ORDER_ID "\", \"customer_id\": \"shop-7001\","
              " \"customer_phone\": \"" PHONE_SHOP "\", \"customer_name\": \"" NAME "\","
              " \"total\": {\"amount_minor\": \"125000\", \"currency\": \"UAH\"},"
              " \"placed_at\": \"%lld\"}",
              (long long)time (NULL) * 1000LL);
    rt_test_story_publish (&s.w, "OrderPlaced", "shop-7001", json, "shop-site");

    /* The customer the order names, found by the number in E.164. */
    r = s_poll ("/v1/customers", NULL, "phone=%2B380671112233", s.anna, s_one_item,
                "the order's customer by phone");
    snprintf (s.customer, sizeof s.customer, "%s", rt_test_api_str (r.json, "items.0.id"));
    assert_string_equal (rt_test_api_str (r.json, "items.0.name"), NAME);
    assert_string_equal (rt_test_api_str (r.json, "items.0.shop_customer_id"), "shop-7001");
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/customers/{id}", s.customer, NULL, s.anna, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (rt_test_api_str (r.json, "orders.0.order_id"), ORDER_ID);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "identities")), 0);
    rt_test_api_reply_free (&r);
}

static bool
s_assigned_conv (json_t *j)
{
    return s_one_item (j) && rt_test_api_str (j, "items.0.assignee") != NULL;
}

/* The customer writes on WhatsApp from the number they ordered with. */
static void
test_whatsapp_from_that_number (void **state)
{
    char body[2048];
    rt_test_api_reply_t r;
    (void)state;
    snprintf (
        body, sizeof body,
        "{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"102290129340398\","
        " \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\":"
        " \"whatsapp\", \"metadata\": {\"display_phone_number\": \"380443334455\","
        " \"phone_number_id\": \"106540352242922\"}, \"contacts\": [{\"profile\":"
        " {\"name\": \"Olena\"}, \"wa_id\": \"" PHONE_WA "\"}], \"messages\": [{\"from\":"
        " \"" PHONE_WA "\", \"id\": \"wamid.E2E-STORY-ONE-0001\", \"timestamp\": \"%lld\","
        " \"type\": \"text\", \"text\": {\"body\": \"" TEXT_WA "\"}}]}}]}]}",
        (long long)time (NULL));
    rt_test_story_meta_post (&s.w, META_SECRET, "/hooks/whatsapp/shop-wa", body);

    r = s_poll ("/v1/conversations", NULL, NULL, s.anna, s_assigned_conv,
                "the WhatsApp message in an assigned conversation");
    snprintf (s.conv, sizeof s.conv, "%s", rt_test_api_str (r.json, "items.0.id"));
    snprintf (s.op, sizeof s.op, "%s", rt_test_api_str (r.json, "items.0.assignee"));
    /* The order's customer, not a new one. */
    assert_string_equal (rt_test_api_str (r.json, "items.0.customer.id"), s.customer);
    assert_string_equal (rt_test_api_str (r.json, "items.0.channel"), "whatsapp");
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "items.0.unanswered")), 1);
    assert_string_equal (rt_test_api_str (r.json, "items.0.last_message.text"), TEXT_WA);
    rt_test_api_reply_free (&r);
    if (strcmp (s.op, "op-anna") == 0) {
        snprintf (s.key, sizeof s.key, "%s", s.anna);
        snprintf (s.other_key, sizeof s.other_key, "%s", s.bob);
    } else {
        assert_string_equal (s.op, "op-bob");
        snprintf (s.key, sizeof s.key, "%s", s.bob);
        snprintf (s.other_key, sizeof s.other_key, "%s", s.anna);
    }

    /* The card: the WhatsApp identity, the number proven by it, and the
     * first operator became the customer's manager. */
    r = s_api ("GET", "/v1/customers/{id}", s.customer, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "identities")), 1);
    assert_string_equal (rt_test_api_str (r.json, "identities.0.channel"), "whatsapp");
    assert_string_equal (rt_test_api_str (r.json, "identities.0.external_user_id"), PHONE_WA);
    assert_string_equal (rt_test_api_str (r.json, "profile.manager"), s.op);
    {
        json_t *points = rt_test_api_at (r.json, "contact_points"), *p;
        size_t i;
        bool proven = false;
        json_array_foreach (points, i, p)
        {
            const char *v = json_string_value (json_object_get (p, "value"));
            if (v && strcmp (v, PHONE_E164) == 0 && json_is_true (json_object_get (p, "proven")))
                proven = true;
        }
        if (!proven)
            fail_msg ("WhatsApp did not prove %s: %s", PHONE_E164, r.body);
    }
    rt_test_api_reply_free (&r);
}

static bool
s_two_waiting (json_t *j)
{
    return s_one_item (j) && json_integer_value (rt_test_api_at (j, "items.0.unanswered")) == 2;
}

/* The same customer on Telegram, sharing their own contact. */
static void
test_telegram_contact_share (void **state)
{
    char body[1024];
    rt_test_api_reply_t r;
    (void)state;
    snprintf (body, sizeof body,
              "{\"update_id\": 915306436, \"message\": {\"message_id\": 4021, \"from\": {\"id\": "
              "" TG_USER ", \"is_bot\": false, \"first_name\": \"Олена\", \"last_name\":"
              " \"Коваленко\"}, \"chat\": {\"id\": " TG_USER ", \"first_name\": \"Олена\","
              " \"type\": \"private\"}, \"date\": %lld, \"contact\": {\"phone_number\": \"+"
              "" PHONE_WA "\", \"first_name\": \"Олена\", \"last_name\": \"Коваленко\","
              " \"user_id\": " TG_USER "}}}",
              (long long)time (NULL));
    rt_test_story_telegram_post (&s.w, "shop-bot", TG_SECRET, body);

    /* Still one conversation, the same one, the same operator, now with
     * two messages waiting and Telegram as the reply channel. */
    r = s_poll ("/v1/conversations", NULL, NULL, s.key, s_two_waiting,
                "the Telegram message in the same conversation");
    assert_string_equal (rt_test_api_str (r.json, "items.0.id"), s.conv);
    assert_string_equal (rt_test_api_str (r.json, "items.0.customer.id"), s.customer);
    assert_string_equal (rt_test_api_str (r.json, "items.0.assignee"), s.op);
    assert_string_equal (rt_test_api_str (r.json, "items.0.channel"), "telegram");
    rt_test_api_reply_free (&r);
    /* The other operator sees the same single conversation. */
    r = s_api ("GET", "/v1/conversations", NULL, NULL, s.other_key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 1);
    assert_string_equal (rt_test_api_str (r.json, "items.0.id"), s.conv);
    rt_test_api_reply_free (&r);

    /* One customer holds the number, with both identities. */
    r = s_api ("GET", "/v1/customers", NULL, "phone=067%20111%2022%2033", s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 1);
    assert_string_equal (rt_test_api_str (r.json, "items.0.id"), s.customer);
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/customers/{id}", s.customer, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "identities")), 2);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "conversations")), 1);
    assert_string_equal (rt_test_api_str (r.json, "conversations.0.id"), s.conv);
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_test_pg_long (s.w.pg, "SELECT count(*) FROM crm.customers"), 1);
}

/* The operator opening the conversation sees the whole history: the
 * order the shop took by phone and both messages. */
static void
test_timeline_whole_history (void **state)
{
    rt_test_api_reply_t r;
    bool order = false, wa = false, tg = false;
    json_t *e;
    size_t i;
    (void)state;
    r = s_api ("GET", "/v1/conversations/{id}/messages", s.conv, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    json_array_foreach (json_object_get (r.json, "items"), i, e)
    {
        const char *kind = json_string_value (json_object_get (e, "kind"));
        const char *channel = json_string_value (json_object_get (e, "channel"));
        const char *text = json_string_value (json_object_get (e, "text"));
        char *all = json_dumps (e, 0);
        if (kind && strcmp (kind, "order") == 0 && all && strstr (all, ORDER_ID))
            order = true;
        free (all);
        if (kind && strcmp (kind, "inbound") == 0 && channel && strcmp (channel, "whatsapp") == 0 &&
            text && strcmp (text, TEXT_WA) == 0)
            wa = true;
        if (kind && strcmp (kind, "inbound") == 0 && channel && strcmp (channel, "telegram") == 0)
            tg = true;
    }
    if (!wa || !tg || !order) {
        static char body[16384];
        snprintf (body, sizeof body, "%s", r.body);
        rt_test_api_reply_free (&r);
        fail_msg ("the timeline lacks%s%s%s: %s", order ? "" : " the order " ORDER_ID,
                  wa ? "" : " the WhatsApp message", tg ? "" : " the Telegram message", body);
    }
    rt_test_api_reply_free (&r);
}

static bool
s_two_convs (json_t *j)
{
    return json_array_size (json_object_get (j, "items")) == 2;
}

/* On Instagram they type the number: a claim, not a proof. */
static void
test_instagram_typed_number (void **state)
{
    char body[2048];
    rt_test_api_reply_t r;
    json_t *it, *sg;
    size_t i;
    long long now = (long long)time (NULL) * 1000LL;
    (void)state;
    snprintf (body, sizeof body,
              "{\"object\": \"instagram\", \"entry\": [{\"id\": \"17841405822304914\", \"time\":"
              " %lld, \"messaging\": [{\"sender\": {\"id\": \"" IG_USER "\"}, \"recipient\":"
              " {\"id\": \"17841405822304914\"}, \"timestamp\": %lld, \"message\": {\"mid\":"
              " \"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3E2E\", \"text\": \"" TEXT_IG "\"}}]}]}",
              now, now);
    rt_test_story_meta_post (&s.w, META_SECRET, "/hooks/instagram/shop-ig", body);

    /* A second customer and a second conversation: not merged. */
    r = s_poll ("/v1/conversations", NULL, NULL, s.key, s_two_convs,
                "the Instagram message's conversation");
    json_array_foreach (json_object_get (r.json, "items"), i, it)
    {
        if (strcmp (json_string_value (json_object_get (it, "id")), s.conv) == 0)
            continue;
        snprintf (s.ig_conv, sizeof s.ig_conv, "%s",
                  json_string_value (json_object_get (it, "id")));
        snprintf (s.ig_customer, sizeof s.ig_customer, "%s", rt_test_api_str (it, "customer.id"));
        assert_string_equal (rt_test_api_str (it, "channel"), "instagram");
    }
    assert_true (s.ig_conv[0] != '\0');
    assert_string_not_equal (s.ig_customer, s.customer);
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/customers/{id}", s.ig_customer, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_true (json_is_null (rt_test_api_at (r.json, "merged_into")));
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "identities")), 1);
    assert_string_equal (rt_test_api_str (r.json, "identities.0.channel"), "instagram");
    assert_string_equal (rt_test_api_str (r.json, "identities.0.external_user_id"), IG_USER);
    rt_test_api_reply_free (&r);

    /* The suggestion, on the card of either, naming the other. */
    {
        const char *cards[2][2] = {{s.customer, s.ig_customer}, {s.ig_customer, s.customer}};
        for (size_t c = 0; c < 2 && !s.suggestion[0]; c++) {
            r = s_api ("GET", "/v1/customers/{id}", cards[c][0], NULL, s.key, NULL, NULL);
            assert_int_equal (r.status, 200);
            json_array_foreach (rt_test_api_at (r.json, "suggestions"), i, sg)
            {
                const char *cand = json_string_value (json_object_get (sg, "candidate_id"));
                if (cand && strcmp (cand, cards[c][1]) == 0)
                    snprintf (s.suggestion, sizeof s.suggestion, "%s",
                              json_string_value (json_object_get (sg, "id")));
            }
            rt_test_api_reply_free (&r);
        }
    }
    if (!s.suggestion[0])
        fail_msg ("no merge suggestion between %s and %s on either card", s.customer,
                  s.ig_customer);
}

/* The operator accepts the suggestion: Instagram joins the conversation. */
static void
test_merge_joins_instagram (void **state)
{
    char body[512];
    rt_test_api_reply_t r;
    bool ig = false;
    json_t *e;
    size_t i;
    (void)state;
    snprintf (body, sizeof body,
              "{\"with\": \"%s\", \"reason\": \"the same number, typed on Instagram\","
              " \"suggestion_id\": \"%s\"}",
              s.ig_customer, s.suggestion);
    r = s_api ("POST", "/v1/customers/{id}/merge", s.customer, NULL, s.key, body, "story-1-merge");
    if (r.status != 200)
        fail_msg ("the merge: %ld %s", r.status, r.body);
    assert_string_equal (rt_test_api_str (r.json, "card.id"), s.customer);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "card.identities")), 3);
    assert_int_equal (json_array_size (rt_test_api_at (r.json, "card.suggestions")), 0);
    rt_test_api_reply_free (&r);

    /* The Instagram customer's id answers the one card. */
    r = s_api ("GET", "/v1/customers/{id}", s.ig_customer, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (rt_test_api_str (r.json, "id"), s.customer);
    assert_string_equal (rt_test_api_str (r.json, "merged_into"), s.customer);
    rt_test_api_reply_free (&r);

    /* One open conversation again, the same one, the same operator; the
     * Instagram message waits in it. */
    r = s_api ("GET", "/v1/conversations", NULL, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 1);
    assert_string_equal (rt_test_api_str (r.json, "items.0.id"), s.conv);
    assert_string_equal (rt_test_api_str (r.json, "items.0.customer.id"), s.customer);
    assert_string_equal (rt_test_api_str (r.json, "items.0.assignee"), s.op);
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "items.0.unanswered")), 3);
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/conversations/{id}", s.ig_conv, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (rt_test_api_str (r.json, "status"), "resolved");
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/conversations/{id}/messages", s.conv, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    json_array_foreach (json_object_get (r.json, "items"), i, e)
    {
        const char *kind = json_string_value (json_object_get (e, "kind"));
        const char *text = json_string_value (json_object_get (e, "text"));
        if (kind && strcmp (kind, "inbound") == 0 && text && strcmp (text, TEXT_IG) == 0)
            ig = true;
    }
    if (!ig)
        fail_msg ("the Instagram message is not in the conversation: %s", r.body);
    rt_test_api_reply_free (&r);
    {
        char sql[256];
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM crm.identities WHERE channel = 'instagram'"
                  " AND customer_id = '%s'",
                  s.customer);
        assert_int_equal (rt_test_pg_long (s.w.pg, sql), 1);
    }
    assert_int_equal (rt_test_router_doubly_open (s.w.pg), 0);
}

/* The operator answers on Instagram: the send is on the bus. */
static void
test_reply_on_instagram (void **state)
{
    char id[64], sql[256];
    rt_test_api_reply_t r;
    PGresult *res;
    Retain__V1__OutboundMessageRequested *out;
    unsigned char *payload;
    size_t len;
    (void)state;
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv, NULL, s.key,
               "{\"text\": \"" TEXT_REPLY "\", \"channel\": \"instagram\"}", "story-1-reply");
    if (r.status != 202)
        fail_msg ("the reply: %ld %s", r.status, r.body);
    snprintf (id, sizeof id, "%s", rt_test_api_str (r.json, "message_id"));
    rt_test_api_reply_free (&r);
    snprintf (
        sql, sizeof sql,
        "SELECT count(*) FROM bus.events WHERE type = 'OutboundMessageRequested' AND id = '%s'",
        id);
    assert_int_equal (rt_test_pg_wait_long (s.w.pg, sql, 1, 20000), 1);
    snprintf (
        sql, sizeof sql,
        "SELECT payload FROM bus.events WHERE type = 'OutboundMessageRequested' AND id = '%s'", id);
    res = PQexec (s.w.pg, sql);
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    payload = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, 0, 0), &len);
    PQclear (res);
    assert_non_null (payload);
    out = retain__v1__outbound_message_requested__unpack (NULL, len, payload);
    PQfreemem (payload);
    assert_non_null (out);
    assert_int_equal (out->channel, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_string_equal (out->customer_id, s.customer);
    assert_string_equal (out->conversation_id, s.conv);
    assert_string_equal (out->operator_id, s.op);
    assert_string_equal (out->text, TEXT_REPLY);
    retain__v1__outbound_message_requested__free_unpacked (out, NULL);

    /* Answered: nothing waits, and it is still the same operator's. */
    r = s_api ("GET", "/v1/conversations/{id}", s.conv, NULL, s.key, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "unanswered")), 0);
    assert_string_equal (rt_test_api_str (r.json, "assignee"), s.op);
    assert_string_equal (rt_test_api_str (r.json, "last_message.channel"), "instagram");
    rt_test_api_reply_free (&r);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_operators_log_in),
        cmocka_unit_test (test_order_by_phone),
        cmocka_unit_test (test_whatsapp_from_that_number),
        cmocka_unit_test (test_telegram_contact_share),
        cmocka_unit_test (test_timeline_whole_history),
        cmocka_unit_test (test_instagram_typed_number),
        cmocka_unit_test (test_merge_joins_instagram),
        cmocka_unit_test (test_reply_on_instagram),
        /* The answers recorded above, against the OpenAPI document. */
        cmocka_unit_test_prestate (rt_test_api_check_router, &s.w.api),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
