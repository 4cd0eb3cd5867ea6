/*
 * The product's second story, end to end: nobody answers within the SLA.
 *
 * Real processes on a database of the story's own, every one following
 * one clock file the story moves: retain-busd, retain-ingestd (its
 * WhatsApp inbox made by retainctl), retain-routerd. The team "support"
 * opens Monday to Friday 09:00-18:00 in Kyiv (retainctl team hours) and
 * answers first within 2 business hours, warned at 80%, a breach flagged
 * for a supervisor and reassigned (retainctl sla set); two operators
 * online, a supervisor watching the event stream. A customer of the shop
 * (OrderPlaced by phone; their manager is olena) writes on WhatsApp
 * (a webhook signed as Meta signs it) on Friday at 17:00: due on Monday at
 * 10:00. The clock moved to Saturday noon breaches nothing; Monday 09:40
 * brings the warning; Monday 10:00 the breach: SlaBreached on the bus
 * exactly once, the conversation flagged "supervisor", taken from olena
 * and given to taras with ConversationAssigned's reason sla_escalation,
 * and the supervisor's stream says so. taras answers: the clocks stop, and
 * a week more breaches nothing again. And a newcomer, a customer the shop
 * has never seen, writing to support in business hours: their
 * conversation, support's once taken, counts under the same policy.
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

#include "retain/v1/conversation.pb-c.h"
#include "rt_clock.h"
#include "rt_test_sse.h"
#include "rt_test_story.h"
#include "rt_tz.h"

#define META_SECRET "meta-app-secret-sla"
#define PHONE_SHOP  "050 765 43 21"
#define PHONE_WA    "380507654321"
#define TEXT_WA     "Добрий вечір! Посилка не прийшла, що робити?"
#define TEXT_REPLY  "Перепрошуємо за очікування: відправили ще раз, ось номер ТТН"

#define HOURS "{\"zone\": \"Europe/Kyiv\", \"weekly\": \"mon-fri 09:00-18:00\"}"
#define POLICY                                                                                     \
    "{\"name\": \"support 2h\", \"team\": \"support\", \"clock\": \"business\","                   \
    " \"first_response_minutes\": 120, \"next_response_minutes\": 120,"                            \
    " \"warning\": {\"percent\": 80}, \"escalation\": {\"reassign\": true}}"

#define DAY_MS (24 * 3600000LL)

/* The story's world. */
static struct {
    rt_test_story_t w;     /* the daemons, the database, the clock file they follow */
    char olena[80];        /* key of op-olena, the customer's manager */
    char taras[80];        /* key of op-taras, the other operator of support */
    char sam[80];          /* key of op-sam, support's supervisor */
    char customer[40];     /* the shop's customer */
    char conv[40];         /* their conversation */
    rt_test_sse_t *stream; /* sam's event stream, read by a thread of the story's */
    int64_t fri_1700;      /* Friday 17:00 in Kyiv, unix ms */
    int64_t sat_1200;      /* the Saturday after, 12:00 */
    int64_t mon_0940;      /* the Monday after, 09:40: past the warning (09:36) */
    int64_t mon_1000;      /* that Monday, 10:00: due */
    int64_t next_1100;     /* the Monday a week later, 11:00 */
    int64_t next_1300;     /* that Monday, 13:00 */
} s;

/* --- the clock --- */

/* Every daemon's clock at `at` (unix ms) from now on. */
static void
s_clock_at (int64_t at)
{
    int64_t real = rt_clock_now_ms ();
    assert_int_equal (rt_clock_file_set (s.w.clock, at - real, 0), 0);
}

/* The instant of a local time in Kyiv on the day `days` after the local
 * day of `day` (unix ms). */
static int64_t
s_kyiv (const rt_tz_t *tz, int64_t day, int days, int hour, int minute)
{
    rt_tz_local_t l;
    int64_t at;
    /* Noon of the day, plus whole days: never near a DST change's hour. */
    assert_int_equal (rt_tz_local (tz, day, &l), 0);
    assert_int_equal (rt_tz_to_unix (tz, l.year, l.month, l.day, 12, 0, 0, &at), 0);
    assert_int_equal (rt_tz_local (tz, at + days * DAY_MS, &l), 0);
    assert_int_equal (rt_tz_to_unix (tz, l.year, l.month, l.day, hour, minute, 0, &at), 0);
    return at;
}

/* The Friday whose 17:00 is nearest ahead of half a day ago, and the
 * weekend after it. retainctl publish stamps its event with the real time
 * while busd follows the story's clock, and busd takes ids from a week
 * back to a day ahead of its clock: a Friday 17:00 within 12 hours back
 * and 157 hours ahead of now keeps the shop's event inside the window
 * whatever day the story runs on. */
static void
s_week (void)
{
    char err[256];
    rt_tz_t *tz = rt_tz_new ("Europe/Kyiv", err, sizeof err);
    rt_tz_local_t l;
    int64_t from = rt_clock_now_ms () - DAY_MS / 2, day = from;
    if (!tz)
        fail_msg ("Europe/Kyiv: %s", err);
    for (;;) {
        assert_int_equal (rt_tz_local (tz, day, &l), 0);
        if (l.weekday == 5 && s_kyiv (tz, day, 0, 17, 0) >= from)
            break;
        day += DAY_MS;
    }
    s.fri_1700 = s_kyiv (tz, day, 0, 17, 0);
    s.sat_1200 = s_kyiv (tz, day, 1, 12, 0);
    s.mon_0940 = s_kyiv (tz, day, 3, 9, 40);
    s.mon_1000 = s_kyiv (tz, day, 3, 10, 0);
    s.next_1100 = s_kyiv (tz, day, 10, 11, 0);
    s.next_1300 = s_kyiv (tz, day, 10, 13, 0);
    rt_tz_destroy (&tz);
}

/* An instant as the API writes it: 2026-12-07T08:00:00.000Z. */
static void
s_iso (int64_t ms, char out[64])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r (&t, &tm);
    snprintf (out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* --- the supervisor's stream --- */

static void
s_stream_start (void)
{
    s.stream = rt_test_sse_open (s.w.routerd.http_port, s.sam, NULL, NULL);
}

/* Ends the stream and records its answer for the OpenAPI check. */
static void
s_stream_stop (void)
{
    if (!s.stream || s.stream->joined)
        return;
    rt_test_sse_end (s.stream);
    /* Kept for the OpenAPI check as rt_test_api keeps an answer: an event
     * stream is held to its status and media type. */
    rt_test_api_record (&s.w.api, "GET", "/v1/stream", s.stream->url, s.stream->status,
                        s.stream->type, "");
}

/* The data of the first event `kind` about conversation conv in the
 * stream so far (owned), NULL for none. */
static json_t *
s_stream_find (const char *kind, const char *conv)
{
    size_t n;
    rt_test_sse_event_t *evs = rt_test_sse_events (s.stream, &n);
    json_t *found = NULL;
    for (size_t i = 0; i < n && !found; i++) {
        const char *id = rt_test_api_str (evs[i].data, "conversation_id");
        if (strcmp (evs[i].kind, kind) == 0 && id && strcmp (id, conv) == 0)
            found = json_incref (evs[i].data);
    }
    rt_test_sse_events_free (evs, n);
    return found;
}

/* Waits up to timeout_ms for s_stream_find to find one. */
static json_t *
s_stream_wait (const char *kind, const char *conv, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    json_t *j;
    while (!(j = s_stream_find (kind, conv)) && rt_test_now_ms () < deadline)
        usleep (100000);
    return j;
}

/* --- the operator API --- */

static rt_test_api_reply_t
s_api (const char *method, const char *tmpl, const char *id, const char *query, const char *key,
       const char *body, const char *idem)
{
    return rt_test_api_call (&s.w.api, method, tmpl, id, query, key, body, idem);
}

/* --- the bus --- */

static long long
s_breaches (void)
{
    rt_test_ingest_wait_drained (s.w.pg);
    return rt_test_pg_long (s.w.pg, "SELECT count(*) FROM bus.events WHERE type = 'SlaBreached'");
}

/* The payloads of the events of type, in log order (PQclear the
 * result). */
static PGresult *
s_events (const char *type)
{
    const char *v[1] = {type};
    PGresult *res =
        PQexecParams (s.w.pg, "SELECT payload FROM bus.events WHERE type = $1 ORDER BY seq", 1,
                      NULL, v, NULL, NULL, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("bus.events: %s", PQresultErrorMessage (res));
    return res;
}

static unsigned char *
s_payload (PGresult *res, int row, size_t *len)
{
    unsigned char *p = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, row, 0), len);
    assert_non_null (p);
    return p;
}

/* --- setup --- */

static void
s_ctl_file (const char *what, const char *text, const char *const args[])
{
    char path[1024];
    const char *argv[16];
    size_t n = 0;
    snprintf (path, sizeof path, "%s/story_sla-%s.json", rt_test_dir (), what);
    rt_test_file_write (path, text);
    for (; args[n]; n++)
        argv[n] = args[n];
    argv[n++] = "--file";
    argv[n++] = path;
    argv[n] = NULL;
    rt_test_story_ctl (&s.w, argv, what);
}

static int
s_setup (void **state)
{
    const char *hours[] = {"team", "hours", "--id", "support", NULL};
    const char *sla[] = {"sla", "set", NULL};
    const char *routerd_extra[] = {"--tick=200ms", NULL};
    const rt_test_story_operator_t operators[] = {{"op-olena", "operator", s.olena},
                                                  {"op-taras", "operator", s.taras},
                                                  {"op-sam", "supervisor", s.sam},
                                                  {NULL, NULL, NULL}};
    const rt_test_story_opts_t opts = {.name = "story_sla_breach",
                                       .clock = true,
                                       .routerd_member = "story-2",
                                       .routerd_extra = routerd_extra,
                                       .team = "support",
                                       .team_name = "Support",
                                       .operators = operators};
    (void)state;
    memset (&s, 0, sizeof s);
    s_week ();
    rt_test_story_open (&s.w, &opts);
    s_clock_at (s.fri_1700);
    rt_test_story_start (&s.w);
    rt_test_story_inbox (&s.w, "shop-wa", "whatsapp", META_SECRET);
    s_ctl_file ("hours", HOURS, hours);
    s_ctl_file ("policy", POLICY, sla);
    /* ingestd reloads its inboxes every second. */
    usleep (1500000);
    s_stream_start ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s.stream)
        rt_test_sse_close (s.stream);
    rt_test_story_stop (&s.w);
    return 0;
}

/* --- the story --- */

/* Two operators at work; the customer, the shop's, is olena's. */
static void
test_the_shop_and_its_customer (void **state)
{
    char json[1024], body[128];
    const char *keys[] = {s.olena, s.taras};
    rt_test_api_reply_t r;
    int64_t deadline;
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        r = s_api ("PUT", "/v1/operators/me/presence", NULL, NULL, keys[i],
                   "{\"presence\": \"online\"}", NULL);
        assert_int_equal (r.status, 200);
        rt_test_api_reply_free (&r);
    }
    snprintf (json, sizeof json,
              "{\"order_id\": \"ord-8001\", \"customer_id\": \"shop-8001\", \"customer_phone\":"
              " \"" PHONE_SHOP
              "\", \"customer_name\": \"Андрій Мельник\", \"placed_at\": \"%lld\"}",
              (long long)s.fri_1700 - 3 * DAY_MS);
    rt_test_story_publish (&s.w, "OrderPlaced", "shop-8001", json, "shop-site");
    deadline = rt_test_now_ms () + 30000;
    for (;;) {
        r = s_api ("GET", "/v1/customers", NULL, "phone=%2B380507654321", s.sam, NULL, NULL);
        assert_int_equal (r.status, 200);
        if (json_array_size (json_object_get (r.json, "items")) == 1)
            break;
        if (rt_test_now_ms () > deadline)
            fail_msg ("the order's customer never appeared; see %s/%s", rt_test_dir (),
                      s.w.routerd.log);
        rt_test_api_reply_free (&r);
        usleep (100000);
    }
    snprintf (s.customer, sizeof s.customer, "%s", rt_test_api_str (r.json, "items.0.id"));
    rt_test_api_reply_free (&r);
    snprintf (body, sizeof body, "{\"manager\": \"op-olena\"}");
    r = s_api ("PATCH", "/v1/customers/{id}", s.customer, NULL, s.sam, body, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (rt_test_api_str (r.json, "profile.manager"), "op-olena");
    rt_test_api_reply_free (&r);
}

/* A WhatsApp message from the number wa_id sent at `at` (unix ms), its
 * webhook signed as Meta signs it (X-Hub-Signature-256: sha256=<hex
 * HMAC-SHA256 of the body under the app secret>). */
static void
s_whatsapp (const char *wa_id, const char *name, const char *mid, const char *text, int64_t at)
{
    char body[2048];
    snprintf (
        body, sizeof body,
        "{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"102290129340398\","
        " \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\":"
        " \"whatsapp\", \"metadata\": {\"display_phone_number\": \"380443334455\","
        " \"phone_number_id\": \"106540352242922\"}, \"contacts\": [{\"profile\":"
        " {\"name\": \"%s\"}, \"wa_id\": \"%s\"}], \"messages\": [{\"from\":"
        " \"%s\", \"id\": \"%s\", \"timestamp\": \"%lld\","
        " \"type\": \"text\", \"text\": {\"body\": \"%s\"}}]}}]}]}",
        name, wa_id, wa_id, mid, (long long)(at / 1000), text);
    rt_test_story_meta_post (&s.w, META_SECRET, "/hooks/whatsapp/shop-wa", body);
}

/* Friday 17:00: the customer writes; 2 business hours are due on Monday
 * at 10:00. */
static void
test_message_on_friday_evening (void **state)
{
    char due[64];
    rt_test_api_reply_t r;
    int64_t deadline;
    (void)state;
    s_whatsapp (PHONE_WA, "Andrii", "wamid.E2E-STORY-SLA-0001", TEXT_WA, s.fri_1700);

    deadline = rt_test_now_ms () + 30000;
    for (;;) {
        r = s_api ("GET", "/v1/conversations", NULL, NULL, s.olena, NULL, NULL);
        assert_int_equal (r.status, 200);
        if (json_array_size (json_object_get (r.json, "items")) == 1 &&
            rt_test_api_str (r.json, "items.0.assignee"))
            break;
        if (rt_test_now_ms () > deadline)
            fail_msg ("no assigned conversation: %s; see %s/%s", r.body, rt_test_dir (),
                      s.w.routerd.log);
        rt_test_api_reply_free (&r);
        usleep (100000);
    }
    snprintf (s.conv, sizeof s.conv, "%s", rt_test_api_str (r.json, "items.0.id"));
    assert_string_equal (rt_test_api_str (r.json, "items.0.customer.id"), s.customer);
    assert_string_equal (rt_test_api_str (r.json, "items.0.assignee"), "op-olena");
    assert_string_equal (rt_test_api_str (r.json, "items.0.team"), "support");
    s_iso (s.mon_1000, due);
    if (!rt_test_api_str (r.json, "items.0.sla_due.due_at"))
        fail_msg ("no SLA clock on the conversation: %s", r.body);
    assert_string_equal (rt_test_api_str (r.json, "items.0.sla_due.kind"), "first_response");
    assert_string_equal (rt_test_api_str (r.json, "items.0.sla_due.due_at"), due);
    assert_false (json_is_true (rt_test_api_at (r.json, "items.0.sla_breached")));
    rt_test_api_reply_free (&r);
}

/* Saturday noon: closed, nothing counts. */
static void
test_weekend_breaches_nothing (void **state)
{
    char due[64];
    rt_test_api_reply_t r;
    json_t *j;
    (void)state;
    s_clock_at (s.sat_1200);
    /* Ticks every 200 ms: a dozen pass. */
    usleep (2500000);
    assert_int_equal (s_breaches (), 0);
    j = s_stream_find ("sla_warning", s.conv);
    if (j)
        fail_msg ("a warning on Saturday: %s", json_dumps (j, 0));
    r = s_api ("GET", "/v1/conversations/{id}", s.conv, NULL, s.olena, NULL, NULL);
    assert_int_equal (r.status, 200);
    s_iso (s.mon_1000, due);
    assert_string_equal (rt_test_api_str (r.json, "sla_due.due_at"), due);
    assert_false (json_is_true (rt_test_api_at (r.json, "sla_breached")));
    assert_string_equal (rt_test_api_str (r.json, "assignee"), "op-olena");
    rt_test_api_reply_free (&r);
}

/* Monday 09:40: 80% of the two hours are gone; the warning. */
static void
test_warning_on_monday_morning (void **state)
{
    char due[64];
    rt_test_api_reply_t r;
    json_t *j;
    (void)state;
    s_clock_at (s.mon_0940);
    j = s_stream_wait ("sla_warning", s.conv, 15000);
    if (!j)
        fail_msg ("no sla_warning in the supervisor's stream; see %s/%s", rt_test_dir (),
                  s.w.routerd.log);
    s_iso (s.mon_1000, due);
    assert_string_equal (rt_test_api_str (j, "sla.kind"), "first_response");
    assert_string_equal (rt_test_api_str (j, "sla.policy"), "support 2h");
    assert_string_equal (rt_test_api_str (j, "sla.due_at"), due);
    assert_string_equal (rt_test_api_str (j, "assignee"), "op-olena");
    json_decref (j);
    assert_int_equal (s_breaches (), 0);
    r = s_api ("GET", "/v1/conversations/{id}", s.conv, NULL, s.olena, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_false (json_is_true (rt_test_api_at (r.json, "sla_breached")));
    assert_string_equal (rt_test_api_str (r.json, "assignee"), "op-olena");
    rt_test_api_reply_free (&r);
}

/* Monday 10:00: nobody answered. The breach, once; the flag; taras. */
static void
test_breach_escalates (void **state)
{
    rt_test_api_reply_t r;
    PGresult *res;
    json_t *j;
    size_t len;
    unsigned char *p;
    Retain__V1__SlaBreached *b;
    bool escalated = false;
    (void)state;
    s_clock_at (s.mon_1000);
    if (rt_test_pg_wait_long (s.w.pg, "SELECT count(*) FROM bus.events WHERE type = 'SlaBreached'",
                              1, 20000) < 1)
        fail_msg ("no SlaBreached on the bus; see %s/%s", rt_test_dir (), s.w.routerd.log);

    res = s_events ("SlaBreached");
    assert_int_equal (PQntuples (res), 1);
    p = s_payload (res, 0, &len);
    b = retain__v1__sla_breached__unpack (NULL, len, p);
    PQfreemem (p);
    PQclear (res);
    assert_non_null (b);
    assert_string_equal (b->conversation_id, s.conv);
    assert_string_equal (b->customer_id, s.customer);
    assert_string_equal (b->operator_id, "op-olena");
    assert_string_equal (b->team_id, "support");
    assert_string_equal (b->kind, "first_response");
    assert_string_equal (b->policy, "support 2h");
    assert_int_equal (b->due_at, s.mon_1000);
    assert_true (b->breached_at >= s.mon_1000);
    assert_non_null (strstr (b->escalation, "reassign"));
    retain__v1__sla_breached__free_unpacked (b, NULL);

    /* The escalation: ConversationAssigned from olena to taras. */
    rt_test_ingest_wait_drained (s.w.pg);
    res = s_events ("ConversationAssigned");
    for (int i = 0; i < PQntuples (res); i++) {
        Retain__V1__ConversationAssigned *a;
        p = s_payload (res, i, &len);
        a = retain__v1__conversation_assigned__unpack (NULL, len, p);
        PQfreemem (p);
        assert_non_null (a);
        if (strcmp (a->reason, "sla_escalation") == 0) {
            assert_false (escalated);
            escalated = true;
            assert_string_equal (a->conversation_id, s.conv);
            assert_string_equal (a->operator_id, "op-taras");
            assert_string_equal (a->previous_operator_id, "op-olena");
            assert_string_equal (a->team_id, "support");
            assert_string_equal (a->by_operator_id, "");
        }
        retain__v1__conversation_assigned__free_unpacked (a, NULL);
    }
    PQclear (res);
    if (!escalated)
        fail_msg ("no ConversationAssigned with the reason sla_escalation");

    /* Flagged for a supervisor. */
    {
        char sql[256];
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM routing.conversations WHERE id = '%s'"
                  " AND 'supervisor' = ANY (flags)",
                  s.conv);
        assert_int_equal (rt_test_pg_long (s.w.pg, sql), 1);
    }
    /* What the operators and the supervisor see. */
    r = s_api ("GET", "/v1/conversations/{id}", s.conv, NULL, s.taras, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_string_equal (rt_test_api_str (r.json, "assignee"), "op-taras");
    assert_true (json_is_true (rt_test_api_at (r.json, "sla_breached")));
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "unanswered")), 1);
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/conversations", NULL, "assignee=me", s.olena, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_array_size (json_object_get (r.json, "items")), 0);
    rt_test_api_reply_free (&r);
    j = s_stream_wait ("sla_breached", s.conv, 10000);
    if (!j)
        fail_msg ("no sla_breached in the supervisor's stream");
    assert_string_equal (rt_test_api_str (j, "sla.kind"), "first_response");
    json_decref (j);
    j = s_stream_wait ("assignment", s.conv, 10000);
    assert_non_null (j);
    json_decref (j);

    /* Exactly once, however many ticks pass. */
    usleep (1500000);
    assert_int_equal (s_breaches (), 1);
}

/* taras answers: the clocks stop; a week later nothing breaches again. */
static void
test_reply_stops_the_clocks (void **state)
{
    rt_test_api_reply_t r;
    (void)state;
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.conv, NULL, s.taras,
               "{\"text\": \"" TEXT_REPLY "\"}", "story-2-reply");
    if (r.status != 202)
        fail_msg ("the reply: %ld %s", r.status, r.body);
    rt_test_api_reply_free (&r);
    r = s_api ("GET", "/v1/conversations/{id}", s.conv, NULL, s.taras, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_int_equal (json_integer_value (rt_test_api_at (r.json, "unanswered")), 0);
    assert_true (json_is_null (rt_test_api_at (r.json, "sla_due")));
    assert_false (json_is_true (rt_test_api_at (r.json, "sla_breached")));
    rt_test_api_reply_free (&r);

    s_clock_at (s.next_1100);
    usleep (2500000);
    assert_int_equal (s_breaches (), 1);
    r = s_api ("GET", "/v1/conversations/{id}", s.conv, NULL, s.taras, NULL, NULL);
    assert_int_equal (r.status, 200);
    assert_false (json_is_true (rt_test_api_at (r.json, "sla_breached")));
    assert_string_equal (rt_test_api_str (r.json, "assignee"), "op-taras");
    rt_test_api_reply_free (&r);
}

/* Someone the shop has never seen writes, in business hours: their
 * conversation is support's as soon as an operator of support takes it,
 * and support's policy counts for them as for a known customer (the
 * conversation's team's policy, README "SLA rules in plain words"). */
static void
test_newcomer_counts_too (void **state)
{
    char due[64];
    rt_test_api_reply_t r;
    int64_t deadline = rt_test_now_ms () + 30000;
    json_t *it, *theirs = NULL;
    size_t i;
    (void)state;
    s_whatsapp ("380991112233", "Newcomer", "wamid.E2E-STORY-SLA-0002",
                "Доброго дня, а є в наявності?", s.next_1100);
    for (;;) {
        r = s_api ("GET", "/v1/conversations", NULL, NULL, s.sam, NULL, NULL);
        assert_int_equal (r.status, 200);
        json_array_foreach (json_object_get (r.json, "items"), i, it)
        {
            if (strcmp (rt_test_api_str (it, "id"), s.conv) != 0 &&
                rt_test_api_str (it, "assignee"))
                theirs = it;
        }
        if (theirs)
            break;
        if (rt_test_now_ms () > deadline)
            fail_msg ("the newcomer's conversation was not assigned: %s", r.body);
        rt_test_api_reply_free (&r);
        usleep (100000);
    }
    assert_string_equal (rt_test_api_str (theirs, "team"), "support");
    s_iso (s.next_1300, due);
    if (!rt_test_api_str (theirs, "sla_due.due_at")) {
        static char body[16384];
        char *text = json_dumps (theirs, JSON_COMPACT);
        snprintf (body, sizeof body, "%s", text ? text : "");
        free (text);
        rt_test_api_reply_free (&r);
        fail_msg ("support's conversation with a new customer runs no SLA clock: %s", body);
    }
    assert_string_equal (rt_test_api_str (theirs, "sla_due.kind"), "first_response");
    assert_string_equal (rt_test_api_str (theirs, "sla_due.due_at"), due);
    rt_test_api_reply_free (&r);
}

static void
test_openapi (void **state)
{
    (void)state;
    s_stream_stop ();
    assert_int_equal (s.stream->status, 200);
    rt_test_api_check (&s.w.api, RT_TEST_API_ROUTER_DOC);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_the_shop_and_its_customer),
        cmocka_unit_test (test_message_on_friday_evening),
        cmocka_unit_test (test_weekend_breaches_nothing),
        cmocka_unit_test (test_warning_on_monday_morning),
        cmocka_unit_test (test_breach_escalates),
        cmocka_unit_test (test_reply_stops_the_clocks),
        cmocka_unit_test (test_newcomer_counts_too),
        cmocka_unit_test (test_openapi),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
