/*
 * retain-notifyd sends an operator's reply through Telegram once: a real
 * busd and notifyd (two replicas where it matters), a Telegram account of
 * the inbox "main" in notify.accounts, customers with Telegram identities
 * in crm, and a loopback Bot API of the test's own (on rt_http_server)
 * that records every sendMessage and answers each chat as the test
 * scripted it: ok, 429 with retry_after once, 500 always, 403 blocked, or
 * ok after a delay (so requests are in flight when a replica is killed).
 *
 * What a user would notice: one message in the chat for one request, with
 * the text asked for; the send delivered and MessageDelivered on the bus;
 * a replayed request sends nothing; a rate limit honoured and then the
 * message delivered; a provider down past the retries gives a dead letter
 * and MessageFailed (not permanent); a blocked bot gives MessageFailed
 * permanent with the provider's code; a customer with no Telegram
 * identity gives MessageFailed no_channel; a receipt for a message nobody
 * sent is counted; two replicas together keep the bot's rate and send
 * each of 200 messages once; a replica SIGKILLed with requests in flight
 * loses no message after its restart, and duplicates only those in
 * flight, counted by retain_notify_uncertain_resent_total.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_http_server.h"
#include "rt_test.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"

#define S_TOKEN     "123456:TESTTOKEN"
#define S_MAX_SEEN  4096
#define S_RATE      20 /* the bulk account's requests per second */
#define S_RATE_MSGS 200
#define S_KILL_MSGS 100

/* --- the fake Bot API --- */

typedef enum {
    S_OK = 0,    /* 200 ok at once */
    S_WAIT_ONCE, /* 429 retry_after 1 the first time, then ok */
    S_FAIL,      /* 500 always */
    S_BLOCKED,   /* 403 blocked by the user */
    S_SLOW,      /* 200 ok after slow_ms */
} s_mode_t;

/* One sendMessage the fake received. */
typedef struct {
    long long chat; /* chat_id */
    char text[96];  /* the text, cut */
    int64_t at_ms;  /* when it arrived (monotonic) */
} s_seen_t;

static struct {
    rt_http_server_t *server;
    int port;
    pthread_mutex_t lock;
    s_seen_t seen[S_MAX_SEEN];
    int nseen;
    int bad_token;           /* requests with another token in the path */
    int slow_ms;             /* S_SLOW's delay */
    long long wait_seen[16]; /* chats S_WAIT_ONCE answered 429 already */
    int nwait_seen;
} s_fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .slow_ms = 400};

static s_mode_t
s_mode_of (long long chat)
{
    if (chat >= 2000 && chat < 3000)
        return S_WAIT_ONCE;
    if (chat >= 3000 && chat < 4000)
        return S_FAIL;
    if (chat >= 4000 && chat < 5000)
        return S_BLOCKED;
    if (chat >= 20000 && chat < 30000)
        return S_SLOW;
    return S_OK;
}

static void
s_reply_ok (rt_http_request_t *req, long long chat, int n)
{
    char body[256];
    snprintf (body, sizeof body,
              "{\"ok\":true,\"result\":{\"message_id\":%d,\"chat\":{\"id\":%lld,"
              "\"type\":\"private\"},\"date\":1700000000,\"text\":\"x\"}}",
              n, chat);
    rt_http_reply (req, 200, "application/json", body, strlen (body));
}

typedef struct {
    rt_http_request_t *req;
    long long chat;
    int n;
    struct event *ev;
} s_later_t;

static void
s_later_cb (evutil_socket_t fd, short what, void *arg)
{
    s_later_t *l = arg;
    (void)fd;
    (void)what;
    s_reply_ok (l->req, l->chat, l->n);
    event_free (l->ev);
    free (l);
}

static void
s_send_message (rt_http_request_t *req, void *arg)
{
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    json_t *doc = json_loadb (body, len, 0, NULL);
    json_t *chat_id = json_object_get (doc, "chat_id");
    const char *text = json_string_value (json_object_get (doc, "text"));
    long long chat = json_is_integer (chat_id) ? (long long)json_integer_value (chat_id) : -1;
    s_mode_t mode = s_mode_of (chat);
    bool first_wait = false;
    int n;
    (void)arg;

    pthread_mutex_lock (&s_fake.lock);
    if (strcmp (rt_http_param (req, "bot"), "bot" S_TOKEN) != 0)
        s_fake.bad_token++;
    n = s_fake.nseen;
    if (s_fake.nseen < S_MAX_SEEN) {
        s_seen_t *s = &s_fake.seen[s_fake.nseen++];
        s->chat = chat;
        snprintf (s->text, sizeof s->text, "%s", text ? text : "");
        s->at_ms = rt_test_now_ms ();
    }
    if (mode == S_WAIT_ONCE) {
        first_wait = true;
        for (int i = 0; i < s_fake.nwait_seen; i++)
            first_wait = first_wait && s_fake.wait_seen[i] != chat;
        if (first_wait && s_fake.nwait_seen < 16)
            s_fake.wait_seen[s_fake.nwait_seen++] = chat;
    }
    pthread_mutex_unlock (&s_fake.lock);
    json_decref (doc);

    if (mode == S_WAIT_ONCE && first_wait) {
        static const char b[] = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many "
                                "Requests: retry after 1\",\"parameters\":{\"retry_after\":1}}";
        rt_http_reply (req, 429, "application/json", b, strlen (b));
    } else if (mode == S_FAIL) {
        static const char b[] =
            "{\"ok\":false,\"error_code\":500,\"description\":\"Internal Server Error\"}";
        rt_http_reply (req, 500, "application/json", b, strlen (b));
    } else if (mode == S_BLOCKED) {
        static const char b[] = "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: "
                                "bot was blocked by the user\"}";
        rt_http_reply (req, 403, "application/json", b, strlen (b));
    } else if (mode == S_SLOW) {
        s_later_t *l = calloc (1, sizeof *l);
        struct timeval tv = {s_fake.slow_ms / 1000, (s_fake.slow_ms % 1000) * 1000};
        assert_non_null (l);
        l->req = req;
        l->chat = chat;
        l->n = n;
        l->ev = evtimer_new (rt_http_base (req), s_later_cb, l);
        rt_http_defer (req);
        evtimer_add (l->ev, &tv);
    } else {
        s_reply_ok (req, chat, n);
    }
}

static void
s_fake_start (void)
{
    rt_http_server_config_t cfg = {
        .address = "127.0.0.1:0", .name = "fake-telegram", .threads = 2, .stop_timeout_ms = 2000};
    char err[256];
    s_fake.server = rt_http_server_new (&cfg, err, sizeof err);
    if (!s_fake.server)
        fail_msg ("fake Bot API: %s", err);
    assert_non_null (
        rt_http_route (s_fake.server, "POST", "/{bot}/sendMessage", s_send_message, NULL));
    if (rt_http_server_start (s_fake.server, err, sizeof err) != 0)
        fail_msg ("fake Bot API: %s", err);
    s_fake.port = rt_http_server_port (s_fake.server);
}

/* Requests the fake saw for chat (and text, when not NULL). */
static int
s_seen_count (long long chat, const char *text)
{
    int n = 0;
    pthread_mutex_lock (&s_fake.lock);
    for (int i = 0; i < s_fake.nseen; i++) {
        if (s_fake.seen[i].chat == chat && (!text || strcmp (s_fake.seen[i].text, text) == 0))
            n++;
    }
    pthread_mutex_unlock (&s_fake.lock);
    return n;
}

static int
s_seen_in (long long lo, long long hi)
{
    int n = 0;
    pthread_mutex_lock (&s_fake.lock);
    for (int i = 0; i < s_fake.nseen; i++)
        n += s_fake.seen[i].chat >= lo && s_fake.seen[i].chat < hi;
    pthread_mutex_unlock (&s_fake.lock);
    return n;
}

/* --- the system --- */

static rt_test_notify_t s_w;
static rt_test_notifyd_t s_n1, s_n2;

/* Starts a replica as member, its requests to the fake Bot API. */
static void
s_notifyd_start (rt_test_notifyd_t *n, const char *member, const char *log)
{
    char a_api[96];
    const char *const extra[] = {
        a_api,           "--request-timeout=2s", "--backoff=100ms", "--backoff-max=300ms",
        "--retry-max=3", "--poll=20ms",          "--sweep=300ms",   NULL};
    snprintf (a_api, sizeof a_api, "--telegram-api=http://127.0.0.1:%d", s_fake.port);
    rt_test_notifyd_start (n, s_w.t.dsn, s_w.busd.pub, NULL, member, log, extra);
}

/* A customer with a Telegram identity (inbox "main", its chat id), or on
 * Viber alone when viber is true. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], long long chat, bool viber)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (s_w.t.pg, "INSERT INTO crm.customers (id) VALUES ('%s')", id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " VALUES ('%s', 'main', '%lld', '%s')",
                        viber ? "viber" : "telegram", chat, id);
}

/* An operator's reply to customer as routerd asks for it: the envelope's
 * id is the message id (envelope_id NULL), or a fresh id for a replay. */
static void
s_request_pack (const char *message_id, const char *customer, const char *text,
                const char *envelope_id, ProtobufCBinaryData *packed)
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    m.message_id = (char *)message_id;
    m.customer_id = (char *)customer;
    m.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    m.conversation_id = "";
    m.text = (char *)text;
    m.operator_id = "op1";
    rt_test_notify_pack ("OutboundMessageRequested", customer, &m.base, "retain-routerd",
                         envelope_id ? envelope_id : message_id, packed);
}

static void
s_request (const char *message_id, const char *customer, const char *text)
{
    ProtobufCBinaryData p;
    s_request_pack (message_id, customer, text, NULL, &p);
    rt_test_notify_publish (s_w.db, &p, 1);
}

static int
s_setup (void **state)
{
    (void)state;
    s_fake_start ();
    rt_test_notify_open (&s_w, "notify_send", 0);
    s_notifyd_start (&s_n1, "n1", "notifyd-n1.log");
    /* The inbox's bot: 20 requests a second at most, one at a time to a
     * chat. */
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, token,"
                        " rate_per_s, burst, recipient_per_s, recipient_burst)"
                        " VALUES ('tg-main', 'main', 'telegram', 'telegram', '%s', %d, 1, 1, 1)",
                        S_TOKEN, S_RATE);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notifyd_stop (&s_n1);
    rt_test_notifyd_stop (&s_n2);
    rt_test_notify_close (&s_w);
    rt_http_server_destroy (&s_fake.server);
    return 0;
}

/* --- the tests --- */

static void
test_reply_delivered_once (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1], replay[RT_UUID_STR_LEN + 1];
    const char *text = "Добрий день! Your parcel <b>&</b> 'ships' today";
    ProtobufCBinaryData p;
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, 1001, false);
    rt_test_router_uuid (msg);
    s_request (msg, customer, text);

    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "delivered", 30000), 1);
    assert_int_equal (s_seen_count (1001, text), 1);
    assert_int_equal (s_seen_count (1001, NULL), 1);
    rt_test_notify_said_wait (s_w.t.pg, msg, &said, 15000);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    assert_true (strncmp (said.external, "1001:", 5) == 0);
    assert_int_equal (s_fake.bad_token, 0);

    /* The same request again, as a producer's retry with a new envelope:
     * the send is found, nothing is sent. */
    rt_test_router_uuid (replay);
    s_request_pack (msg, customer, text, replay, &p);
    rt_test_notify_publish (s_w.db, &p, 1);
    for (int i = 0;
         i < 300 && rt_test_metric (s_n1.admin_port, "retain_notify_replayed_total{type="
                                                     "\"OutboundMessageRequested\"}") < 1;
         i++)
        usleep (50 * 1000);
    assert_true (
        rt_test_metric (s_n1.admin_port,
                        "retain_notify_replayed_total{type=\"OutboundMessageRequested\"}") == 1);
    usleep (300 * 1000);
    assert_int_equal (s_seen_count (1001, NULL), 1);
    rt_test_notify_said (s_w.t.pg, msg, &said);
    assert_int_equal (said.delivered, 1);
}

static void
test_rate_limited_then_delivered (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    int64_t first = 0, second = 0;
    (void)state;
    s_customer (customer, 2001, false);
    rt_test_router_uuid (msg);
    s_request (msg, customer, "after the wait");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "delivered", 30000), 1);
    assert_int_equal (s_seen_count (2001, NULL), 2);
    pthread_mutex_lock (&s_fake.lock);
    for (int i = 0; i < s_fake.nseen; i++) {
        if (s_fake.seen[i].chat == 2001) {
            if (!first)
                first = s_fake.seen[i].at_ms;
            else
                second = s_fake.seen[i].at_ms;
        }
    }
    pthread_mutex_unlock (&s_fake.lock);
    /* retry_after = 1: not a moment sooner. */
    assert_true (second - first >= 950);
    assert_int_equal (rt_test_pg_long (s_w.t.pg, "SELECT count(*) FROM notify.accounts WHERE id ="
                                                 " 'tg-main' AND paused_until IS NOT NULL"),
                      1);
}

static void
test_provider_down_dead_letter (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, 3001, false);
    rt_test_router_uuid (msg);
    s_request (msg, customer, "into the void");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "failed", 30000), 1);
    /* --retry-max=3: three requests, then a dead letter with its reason. */
    assert_int_equal (s_seen_count (3001, NULL), 3);
    rt_test_notify_said_wait (s_w.t.pg, msg, &said, 15000);
    assert_int_equal (said.failed, 1);
    assert_false (said.permanent);
    assert_string_equal (said.code, "500");
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND failures = 3 AND last_reason <> ''",
                                           msg),
                      1);
    assert_true (rt_test_metric (s_n1.admin_port, "retain_notify_dead_letters_total") >= 1);
}

static void
test_blocked_permanent (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, 4001, false);
    rt_test_router_uuid (msg);
    s_request (msg, customer, "are you there?");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "failed", 30000), 1);
    assert_int_equal (s_seen_count (4001, NULL), 1);
    rt_test_notify_said_wait (s_w.t.pg, msg, &said, 15000);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "403");
}

static void
test_no_channel (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    s_customer (customer, 5001, true); /* Viber only */
    rt_test_router_uuid (msg);
    s_request (msg, customer, "hello on telegram");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "failed", 30000), 1);
    rt_test_notify_said_wait (s_w.t.pg, msg, &said, 15000);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "no_channel");
    assert_int_equal (s_seen_count (5001, NULL), 0);
}

static void
test_no_account (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    (void)state;
    /* Written to the bot "other", which has no sending account. */
    rt_test_router_uuid (customer);
    rt_test_router_sql (s_w.t.pg, "INSERT INTO crm.customers (id) VALUES ('%s')", customer);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id, customer_id)"
                        " VALUES ('telegram', 'other', '7001', '%s')",
                        customer);
    rt_test_router_uuid (msg);
    s_request (msg, customer, "through which bot?");
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "failed", 30000), 1);
    rt_test_notify_said_wait (s_w.t.pg, msg, &said, 15000);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "no_account");
    assert_int_equal (s_seen_count (7001, NULL), 0);
}

static void
test_text_over_limit (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], msg[RT_UUID_STR_LEN + 1];
    char *text = malloc (2 * 4097 + 1);
    rt_test_notify_said_t said;
    (void)state;
    assert_non_null (text);
    /* 4097 characters of two bytes each: over Telegram's 4096 characters
     * (not bytes). */
    for (int i = 0; i < 4097; i++)
        memcpy (text + 2 * i, "ї", 2);
    text[2 * 4097] = '\0';
    s_customer (customer, 6001, false);
    rt_test_router_uuid (msg);
    s_request (msg, customer, text);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, msg, "failed", 30000), 1);
    rt_test_notify_said_wait (s_w.t.pg, msg, &said, 15000);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "text_too_long");
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND last_reason LIKE '%%at most 4096%%'",
                                           msg),
                      1);
    assert_int_equal (s_seen_count (6001, NULL), 0);
    free (text);
}

static void
test_unknown_receipt_counted (void **state)
{
    Retain__V1__MessageDelivered d = RETAIN__V1__MESSAGE_DELIVERED__INIT;
    const char *series = "retain_notify_receipts_unknown_total{type=\"MessageDelivered\"}";
    ProtobufCBinaryData p;
    double before = rt_test_metric (s_n1.admin_port, series);
    (void)state;
    d.message_id = "";
    d.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    d.external_id = "nobody:42";
    d.delivered_at = 1700000000000;
    d.customer_id = "";
    rt_test_notify_pack ("MessageDelivered", "telegram:main:nobody", &d.base, "retain-ingestd",
                         NULL, &p);
    rt_test_notify_publish (s_w.db, &p, 1);
    for (int i = 0;
         i < 300 && rt_test_metric (s_n1.admin_port, series) < (before < 0 ? 1 : before + 1); i++)
        usleep (50 * 1000);
    assert_true (rt_test_metric (s_n1.admin_port, series) == (before < 0 ? 1 : before + 1));
}

static void
test_two_replicas_hold_the_rate (void **state)
{
    ProtobufCBinaryData *p = calloc (S_RATE_MSGS, sizeof *p);
    char (*customers)[RT_UUID_STR_LEN + 1] = calloc (S_RATE_MSGS, sizeof *customers);
    char text[32], sql[512];
    int max_window = 0, n;
    (void)state;
    assert_non_null (p);
    assert_non_null (customers);
    s_notifyd_start (&s_n2, "n2", "notifyd-n2.log");
    for (int i = 0; i < S_RATE_MSGS; i++) {
        char msg[RT_UUID_STR_LEN + 1];
        s_customer (customers[i], 10000 + i, false);
        rt_test_router_uuid (msg);
        snprintf (text, sizeof text, "bulk %d", i);
        s_request_pack (msg, customers[i], text, NULL, &p[i]);
    }
    rt_test_notify_publish (s_w.db, p, S_RATE_MSGS);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends s JOIN crm.identities i ON i.customer_id ="
              " s.customer_id WHERE i.external_user_id::bigint BETWEEN 10000 AND %d"
              " AND s.status = 'delivered'",
              10000 + S_RATE_MSGS - 1);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, sql, S_RATE_MSGS, 120000), S_RATE_MSGS);
    /* Every message exactly once. */
    for (int i = 0; i < S_RATE_MSGS; i++) {
        snprintf (text, sizeof text, "bulk %d", i);
        if (s_seen_count (10000 + i, text) != 1)
            fail_msg ("chat %d got %d requests", 10000 + i, s_seen_count (10000 + i, NULL));
    }
    /* Both replicas sent. */
    assert_int_equal (rt_test_pg_long (s_w.t.pg,
                                       "SELECT count(DISTINCT claimed_by) FROM notify.sends s"
                                       " JOIN crm.identities i ON i.customer_id = s.customer_id"
                                       " WHERE i.external_user_id::bigint BETWEEN 10000 AND 10199"),
                      2);
    /* At most rate x 1 s + burst in any one-second window. */
    pthread_mutex_lock (&s_fake.lock);
    for (int i = 0; i < s_fake.nseen; i++) {
        if (s_fake.seen[i].chat < 10000 || s_fake.seen[i].chat >= 10000 + S_RATE_MSGS)
            continue;
        n = 0;
        for (int j = i; j < s_fake.nseen; j++) {
            if (s_fake.seen[j].chat >= 10000 && s_fake.seen[j].chat < 10000 + S_RATE_MSGS &&
                s_fake.seen[j].at_ms < s_fake.seen[i].at_ms + 1000)
                n++;
        }
        if (n > max_window)
            max_window = n;
    }
    pthread_mutex_unlock (&s_fake.lock);
    printf ("two replicas, %d messages to one bot at %d/s: at most %d requests in one second\n",
            S_RATE_MSGS, S_RATE, max_window);
    assert_true (max_window <= S_RATE + 1);
    assert_true (max_window >= S_RATE / 2);
    free (p);
    free (customers);
}

static void
test_kill_in_flight (void **state)
{
    ProtobufCBinaryData *p = calloc (S_KILL_MSGS, sizeof *p);
    char (*ids)[RT_UUID_STR_LEN + 1] = calloc (S_KILL_MSGS, sizeof *ids);
    char text[32], sql[512];
    long long in_flight, dups = 0;
    double resent;
    (void)state;
    assert_non_null (p);
    assert_non_null (ids);
    /* A faster bot for this one, so many requests are in flight. */
    rt_test_router_sql (s_w.t.pg, "UPDATE notify.accounts SET rate_per_s = 200, burst = 20"
                                  " WHERE id = 'tg-main'");
    for (int i = 0; i < S_KILL_MSGS; i++) {
        char customer[RT_UUID_STR_LEN + 1];
        s_customer (customer, 20000 + i, false);
        rt_test_router_uuid (ids[i]);
        snprintf (text, sizeof text, "kill %d", i);
        s_request_pack (ids[i], customer, text, NULL, &p[i]);
    }
    rt_test_notify_publish (s_w.db, p, S_KILL_MSGS);
    /* Requests reach the fake; answers take 400 ms: kill n1 mid-flight. */
    for (int i = 0; i < 400 && s_seen_in (20000, 20000 + S_KILL_MSGS) < 30; i++)
        usleep (10 * 1000);
    assert_true (rt_test_kill (s_n1.pid, SIGKILL) != 0);
    s_n1.pid = 0;
    in_flight = rt_test_pg_long (s_w.t.pg, "SELECT count(*) FROM notify.sends WHERE status ="
                                           " 'sending' AND claimed_by = 'n1'");
    rt_test_pg_exec (s_w.t.pg, "CREATE TEMP TABLE in_flight AS SELECT id FROM notify.sends"
                               " WHERE status = 'sending' AND claimed_by = 'n1'");
    rt_test_notifyd_restart (&s_n1);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends s JOIN crm.identities i ON i.customer_id ="
              " s.customer_id WHERE i.external_user_id::bigint BETWEEN 20000 AND %d"
              " AND s.status = 'delivered'",
              20000 + S_KILL_MSGS - 1);
    assert_int_equal (rt_test_pg_wait_long (s_w.t.pg, sql, S_KILL_MSGS, 120000), S_KILL_MSGS);
    /* Every message reached its chat; the ones that reached it twice were
     * in flight at the kill. */
    for (int i = 0; i < S_KILL_MSGS; i++) {
        int seen;
        snprintf (text, sizeof text, "kill %d", i);
        seen = s_seen_count (20000 + i, text);
        if (seen < 1)
            fail_msg ("message %d never reached its chat", i);
        if (seen > 1) {
            dups++;
            if (rt_test_router_long (s_w.t.pg, "SELECT count(*) FROM in_flight WHERE id = '%s'",
                                     ids[i]) != 1)
                fail_msg ("message %d reached its chat %d times but was not in flight", i, seen);
        }
    }
    resent = rt_test_metric (s_n1.admin_port, "retain_notify_uncertain_resent_total");
    if (resent < 0)
        resent = 0;
    if (s_n2.pid > 0) {
        double r2 = rt_test_metric (s_n2.admin_port, "retain_notify_uncertain_resent_total");
        resent += r2 > 0 ? r2 : 0;
    }
    printf ("SIGKILL with %lld sends in flight: %lld messages reached their chat twice, "
            "%.0f sent again as uncertain\n",
            in_flight, dups, resent);
    assert_true (in_flight > 0);
    assert_true (dups <= in_flight);
    assert_true ((long long)resent == in_flight);
    free (p);
    free (ids);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_reply_delivered_once),
        cmocka_unit_test (test_rate_limited_then_delivered),
        cmocka_unit_test (test_provider_down_dead_letter),
        cmocka_unit_test (test_blocked_permanent),
        cmocka_unit_test (test_no_channel),
        cmocka_unit_test (test_no_account),
        cmocka_unit_test (test_text_over_limit),
        cmocka_unit_test (test_unknown_receipt_counted),
        cmocka_unit_test (test_two_replicas_hold_the_rate),
        cmocka_unit_test (test_kill_in_flight),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
