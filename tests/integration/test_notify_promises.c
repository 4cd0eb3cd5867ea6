/*
 * What retain-notifyd promises and a user would miss if it broke: a real
 * busd and notifyd on a clock file (15:00 UTC, the afternoon in Kyiv), the
 * shared fake of the providers, customers in crm. The inbox "main" has a
 * Telegram bot, WhatsApp Cloud and two Twilio SMS accounts (priority 0
 * and 1); the inbox "bulk" a Telegram bot whose per-chat budget does not
 * hold retries back, so their gaps are the backoff's alone.
 *
 * What a user would notice: an SMS account its provider refuses (20003),
 * rate-limits (429 with Retry-After) or an operator disables hands its
 * sends to the second account at once, each message sent once, and takes
 * them back when it is usable again; several messages to one chat leave
 * one a second, in order, none lost, while other chats' messages of the
 * same moment are not held back; a read receipt moves a send to read and
 * notifyd says so once, and a late delivery receipt does not move it
 * back; a notification due in an hour is not sent a moment before and is
 * sent once just after; a provider failing 5xx is retried after delays
 * that double up to the cap, each within [d/2, d), and is a dead letter
 * after --retry-max failures; an HTML page and a timeout are retried and
 * the message delivered once the provider recovers; an unsubscribe link
 * stops marketing on its channel (the next channel takes it, or
 * MessageFailed no_consent), a new grant lets it through; and a Telegram
 * group that became a supergroup gets the message once, at its new id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "rt_channel.h"
#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"
#include "retain/v1/customer.pb-c.h"
#include "retain/v1/message.pb-c.h"

/* 2026-01-15 15:00 UTC: 17:00 in Kyiv, outside the quiet hours. */
#define S_T0       1768489200000LL
#define S_HOUR     3600000LL
#define S_WAIT_MS  20000
#define S_QUIET_MS 1000 /* long enough for a send that was due to have gone */
#define S_SEEN_MAX 16   /* requests to one recipient a test looks at */

/* notifyd's retry settings, as started below. */
#define S_BACKOFF_MS     300
#define S_BACKOFF_MAX_MS 1000
#define S_RETRY_MAX      5
/* What a retry may come later than its backoff: the poll (20 ms), a
 * claim and a flush on a loaded machine. */
#define S_LATE_MS 300

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* The clock file's instant, as last set, and when (rt_test_now_ms). */
static int64_t s_clock_at, s_clock_mono;

/* --- the clock --- */

/* The instant notifyd reads now. */
static int64_t
s_clock_now (void)
{
    return s_clock_at + (rt_test_now_ms () - s_clock_mono);
}

/* Sets notifyd's clock to at. */
static void
s_clock_set (int64_t at)
{
    rt_test_notify_clock_set (&s_w, at);
    s_clock_at = at;
    s_clock_mono = rt_test_now_ms ();
}

/* --- what the fake received --- */

/* The requests of provider to recipient, oldest first, into got; how
 * many. */
static size_t
s_to (rt_fake_kind_t provider, const char *recipient, const rt_fake_request_t **got)
{
    return rt_fake_provider_sent (s_fake, provider, recipient, got, S_SEEN_MAX);
}

/* s_to until there are at least want, S_WAIT_MS at most. */
static size_t
s_to_wait (rt_fake_kind_t provider, const char *recipient, size_t want,
           const rt_fake_request_t **got)
{
    return rt_fake_provider_sent_wait (s_fake, provider, recipient, want, S_WAIT_MS, got,
                                       S_SEEN_MAX);
}

/* Which SMS account a Twilio request went through: 'A', 'B' or '?'. */
static char
s_via (const rt_fake_request_t *r)
{
    if (strstr (r->target, "/Accounts/AC0A/"))
        return 'A';
    if (strstr (r->target, "/Accounts/AC0B/"))
        return 'B';
    return '?';
}

/* The text a Telegram request carries (owned). */
static char *
s_text_of (const rt_fake_request_t *r)
{
    json_t *doc = json_loadb (r->body, r->body_len, 0, NULL);
    const char *text = json_string_value (json_object_get (doc, "text"));
    char *copy = strdup (text ? text : "");
    json_decref (doc);
    assert_non_null (copy);
    return copy;
}

/* --- publishing --- */

/* An operator's reply to customer on channel, its message id into id,
 * packed into *packed. */
static void
s_reply_pack (const char *customer, Retain__V1__Channel channel, const char *text,
              char id[RT_UUID_STR_LEN + 1], ProtobufCBinaryData *packed)
{
    Retain__V1__OutboundMessageRequested m = RETAIN__V1__OUTBOUND_MESSAGE_REQUESTED__INIT;
    rt_test_router_uuid (id);
    m.message_id = id;
    m.customer_id = (char *)customer;
    m.channel = channel;
    m.text = (char *)text;
    m.operator_id = "op-olha";
    rt_test_notify_pack ("OutboundMessageRequested", customer, &m.base, "retain-routerd", NULL,
                         packed);
}

/* s_reply_pack, published. */
static void
s_reply (const char *customer, Retain__V1__Channel channel, const char *text,
         char id[RT_UUID_STR_LEN + 1])
{
    ProtobufCBinaryData packed;
    s_reply_pack (customer, channel, text, id, &packed);
    rt_test_notify_publish (s_w.db, &packed, 1);
}

/* A notification of template for customer on channel (UNSPECIFIED:
 * notifyd's choice) in category (NULL: transactional), not before
 * not_before (0: at once); its id into id. */
static void
s_notify (const char *customer, const char *template_name, Retain__V1__Channel channel,
          const char *category, int64_t not_before, char id[RT_UUID_STR_LEN + 1])
{
    id[0] = '\0';
    rt_test_notify_request (s_w.db,
                            &(rt_test_notify_request_t){.customer = customer,
                                                        .template_name = template_name,
                                                        .channel = channel,
                                                        .category = category,
                                                        .not_before = not_before},
                            id);
}

/* A customer of the inbox (rt_test_notify_customer), in Kyiv. */
static void
s_customer (const char *inbox, const char *preferred, const char *identities,
            char id[RT_UUID_STR_LEN + 1])
{
    rt_test_notify_customer (s_w.t.pg, inbox, "Europe/Kyiv", preferred, identities, id);
}

/* retainctl notify account <verb> --id <id>: fails the test unless it
 * exits 0. */
static void
s_account (const char *verb, const char *id)
{
    const char *args[] = {"notify", "account", verb, "--id", id, NULL};
    char *out = NULL;
    int rc = rt_test_retainctl (s_w.t.dsn, args, &out);
    if (rc != 0)
        fail_msg ("retainctl notify account %s --id %s: exit %d\n%s", verb, id, rc, out);
    free (out);
}

/* What retainctl <args> prints as JSON (owned); fails the test unless it
 * exits 0 with a JSON line (stderr, merged in, may say which clock it
 * follows). */
static json_t *
s_ctl_json (const char *const args[])
{
    char *out = NULL, why[512];
    json_t *doc = NULL;
    int rc = rt_test_retainctl (s_w.t.dsn, args, &out);
    for (char *line = out; rc == 0 && line && *line && !doc;) {
        char *end = strchr (line, '\n');
        if (*line == '[' || *line == '{')
            doc = json_loadb (line, end ? (size_t)(end - line) : strlen (line), 0, NULL);
        line = end ? end + 1 : NULL;
    }
    snprintf (why, sizeof why, "%s", out ? out : "");
    free (out);
    if (!doc)
        fail_msg ("retainctl %s %s: exit %d, no JSON:\n%s", args[0], args[1], rc, why);
    return doc;
}

/* Waits until notifyd read a change of consent: its history holds the
 * change of source for customer on channel ("any": every one). */
static void
s_consent_wait (const char *customer, const char *channel, bool granted, const char *source)
{
    char q[512];
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent_history WHERE customer_id = '%s' AND"
              " channel = '%s' AND category = 'marketing' AND granted = %s AND source = '%s'",
              customer, channel, granted ? "true" : "false", source);
    if (rt_test_pg_wait_long (s_w.t.pg, q, 1, S_WAIT_MS) != 1)
        fail_msg ("notifyd did not record %s's consent on %s", source, channel);
}

/* A ConsentChanged about marketing, as its source publishes it on the
 * stream customer (ingestd's unsubscribe link: the link's channel,
 * granted false, source unsubscribe_link); waited for. */
static void
s_consent (const char *customer, Retain__V1__Channel channel, bool granted, const char *source)
{
    Retain__V1__ConsentChanged m = RETAIN__V1__CONSENT_CHANGED__INIT;
    m.customer_id = (char *)customer;
    m.channel = channel;
    m.category = "marketing";
    m.granted = granted;
    m.source = (char *)source;
    m.at = s_clock_now ();
    rt_test_notify_publish_one (
        s_w.db, "ConsentChanged", customer, &m.base,
        strcmp (source, "unsubscribe_link") == 0 ? "retain-ingestd" : "retain-routerd", NULL);
    s_consent_wait (customer,
                    channel == RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED ? "any"
                                                                        : rt_channel_name (channel),
                    granted, source);
}

/* A receipt from ingest: the provider says external_id was delivered
 * (read: and read). */
static void
s_receipt (Retain__V1__Channel channel, const char *external_id, bool read)
{
    Retain__V1__MessageDelivered d = RETAIN__V1__MESSAGE_DELIVERED__INIT;
    d.message_id = "";
    d.channel = channel;
    d.external_id = (char *)external_id;
    d.delivered_at = s_clock_now ();
    d.read = read;
    d.customer_id = "";
    rt_test_notify_publish_one (s_w.db, "MessageDelivered", external_id, &d.base, "retain-ingestd",
                                NULL);
}

/* Waits until the series moved past before (-1: absent); fails otherwise. */
static void
s_metric_wait (const char *series, double before)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    double base = before < 0 ? 0 : before;
    while (rt_test_metric (s_n.admin_port, series) <= base && rt_test_now_ms () < until)
        usleep (20 * 1000);
    if (rt_test_metric (s_n.admin_port, series) <= base)
        fail_msg ("%s did not move past %g", series, base);
}

/* --- the world --- */

static int
s_setup (void **state)
{
    const char *const extra[] = {"--request-timeout=1s",
                                 "--backoff=300ms",
                                 "--backoff-max=1s",
                                 "--retry-max=5",
                                 "--poll=20ms",
                                 "--sweep=200ms",
                                 "--fallback-chain=sms,telegram",
                                 "--receipt-wait=0",
                                 NULL};
    const char *base;
    (void)state;
    s_fake = rt_fake_provider_start ();
    base = rt_fake_provider_base (s_fake);
    rt_test_notify_open (&s_w, "notify_promises", S_T0);
    s_clock_at = S_T0;
    s_clock_mono = rt_test_now_ms ();
    /* retainctl reads the time on the same clock (account list: paused
     * until when). */
    setenv ("RETAIN_CLOCK_FILE", s_w.t.clock, 1);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, s_w.t.clock, "n1", "notifyd-promises.log",
                           extra);
    rt_test_router_sql (
        s_w.t.pg,
        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, base_url, token,"
        " account_id, sender, priority, rate_per_s, burst, recipient_per_s, recipient_burst)"
        " VALUES"
        " ('tg-main', 'main', 'telegram', 'telegram', '%s', '123456:TESTTOKEN', '', '', 0, 50,"
        "  10, 1, 1),"
        " ('tg-bulk', 'bulk', 'telegram', 'telegram', '%s', '654321:BULKTOKEN', '', '', 0, 50,"
        "  10, 50, 10),"
        " ('wa-main', 'main', 'whatsapp', 'meta', '%s', 'watoken', '1099', '', 0, 50, 10, 1, 1),"
        " ('sms-a', 'main', 'sms', 'twilio', '%s', 'tokena', 'AC0A', '+15550000001', 0, 50, 10,"
        "  1, 1),"
        " ('sms-b', 'main', 'sms', 'twilio', '%s', 'tokenb', 'AC0B', '+15550000002', 1, 50, 10,"
        "  1, 1)",
        base, base, base, base, base);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO notify.templates (name, locale, variant, text) VALUES"
                        " ('parcel', 'en', 'default', '{{name}}, your parcel has arrived'),"
                        " ('promo', 'en', 'default', '{{name}}, a gift for you this week')");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notify_teardown (&s_n, &s_w, &s_fake);
    return 0;
}

/* --- failover between two SMS accounts --- */

/* A transactional SMS to a new customer at number; waits until it is sent
 * and says which accounts its requests went through, in order ("AB":
 * refused by A, then sent through B), each with its status into
 * statuses. */
static void
s_sms (const char *number, char *via, size_t vialen, int statuses[S_SEEN_MAX])
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], ident[64];
    const rt_fake_request_t *got[S_SEEN_MAX];
    size_t n;
    snprintf (ident, sizeof ident, "sms=%s", number);
    s_customer ("main", "sms", ident, customer);
    s_notify (customer, "parcel", RETAIN__V1__CHANNEL__SMS, NULL, 0, id);
    if (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS) != 1)
        fail_msg ("the SMS to %s was not sent", number);
    usleep (S_QUIET_MS * 1000 / 2);
    n = s_to (RT_FAKE_TWILIO, number, got);
    assert_true (n < vialen);
    for (size_t i = 0; i < n; i++) {
        via[i] = s_via (got[i]);
        statuses[i] = got[i]->status;
    }
    via[n] = '\0';
}

/* s_sms, whose requests must have gone through want ("B": the second
 * account, at the first attempt). */
static void
s_sms_through (const char *number, const char *want)
{
    char via[S_SEEN_MAX + 1];
    int st[S_SEEN_MAX];
    s_sms (number, via, sizeof via, st);
    if (strcmp (via, want) != 0)
        fail_msg ("the SMS to %s went through %s, not %s", number, via, want);
}

/* The account's state, as retainctl notify account list --json says it. */
static void
s_account_state (const char *id, const char *want)
{
    const char *args[] = {"notify", "account", "list", "--json", NULL};
    char got[128];
    json_t *doc = s_ctl_json (args), *row;
    size_t i;
    const char *state = NULL;
    json_array_foreach (doc, i, row)
    {
        const char *v = json_string_value (json_object_get (row, "id"));
        if (v && strcmp (v, id) == 0)
            state = json_string_value (json_object_get (row, "state"));
    }
    snprintf (got, sizeof got, "%s", state ? state : "(none)");
    json_decref (doc);
    if (strcmp (got, want) != 0)
        fail_msg ("account %s is %s, not %s", id, got, want);
}

/* Twilio refuses the first account's credentials (20003): that message
 * and the next ones go through the second, each once; once an operator
 * resumes the first, new messages go through it again. */
static void
test_failover_when_stopped (void **state)
{
    char via[S_SEEN_MAX + 1];
    int st[S_SEEN_MAX];
    (void)state;
    rt_fake_provider_push (s_fake, RT_FAKE_TWILIO,
                           &(rt_fake_answer_t){.kind = RT_FAKE_ERROR, .error = "20003"});
    s_sms ("+380503330001", via, sizeof via, st);
    assert_string_equal (via, "AB");
    assert_int_equal (st[0], 401);
    assert_int_equal (st[1], 201);
    s_account_state ("sms-a", "stopped");

    s_sms_through ("+380503330002", "B");

    s_account ("resume", "sms-a");
    s_account_state ("sms-a", "active");
    s_sms_through ("+380503330003", "A");
}

/* An operator disables the first account: the second sends; enabled, the
 * first sends again. */
static void
test_failover_when_disabled (void **state)
{
    (void)state;
    s_account ("disable", "sms-a");
    s_account_state ("sms-a", "disabled");
    s_sms_through ("+380503330011", "B");
    s_account ("enable", "sms-a");
    s_sms_through ("+380503330012", "A");
}

/* Twilio rate-limits the first account for a minute (429, Retry-After):
 * the message it held back goes through the second at once, not a minute
 * later, and so does the next; a minute on, the first sends again. */
static void
test_failover_when_paused (void **state)
{
    char via[S_SEEN_MAX + 1];
    int st[S_SEEN_MAX];
    const rt_fake_request_t *got[S_SEEN_MAX];
    (void)state;
    rt_fake_provider_push (s_fake, RT_FAKE_TWILIO,
                           &(rt_fake_answer_t){.kind = RT_FAKE_RATE_LIMIT, .retry_after_s = 60});
    s_sms ("+380503330021", via, sizeof via, st);
    assert_string_equal (via, "AB");
    assert_int_equal (st[0], 429);
    assert_int_equal (s_to (RT_FAKE_TWILIO, "+380503330021", got), 2);
    if (got[1]->at_ms - got[0]->at_ms > 3000)
        fail_msg ("the second account took over %lld ms after the pause",
                  (long long)(got[1]->at_ms - got[0]->at_ms));
    s_account_state ("sms-a", "paused");

    s_sms_through ("+380503330022", "B");

    s_clock_set (s_clock_now () + 61000);
    s_account_state ("sms-a", "active");
    s_sms_through ("+380503330023", "A");
}

/* --- the per-recipient budget --- */

#define S_BUDGET_MSGS   4 /* to the one chat */
#define S_BUDGET_OTHERS 3 /* one each to other chats, in the same moment */

/* Four messages to one chat and one each to three others, asked for in
 * one moment: the chat gets its four one a second (recipient_per_s 1,
 * burst 1), in order, none lost; the others are not held back. */
static void
test_recipient_budget (void **state)
{
    ProtobufCBinaryData packed[S_BUDGET_MSGS + S_BUDGET_OTHERS];
    char customer[RT_UUID_STR_LEN + 1], other[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    char text[32], ident[32], chat[16];
    const rt_fake_request_t *got[S_SEEN_MAX], *theirs[S_SEEN_MAX];
    size_t n = 0;
    (void)state;
    s_customer ("main", "telegram", "telegram=2401", customer);
    for (int i = 0; i < S_BUDGET_MSGS; i++) {
        snprintf (text, sizeof text, "message %d of %d", i + 1, S_BUDGET_MSGS);
        s_reply_pack (customer, RETAIN__V1__CHANNEL__TELEGRAM, text, id, &packed[n++]);
    }
    for (int i = 0; i < S_BUDGET_OTHERS; i++) {
        snprintf (ident, sizeof ident, "telegram=%d", 2411 + i);
        s_customer ("main", "telegram", ident, other);
        s_reply_pack (other, RETAIN__V1__CHANNEL__TELEGRAM, "meanwhile", id, &packed[n++]);
    }
    rt_test_notify_publish (s_w.db, packed, n);

    assert_int_equal (s_to_wait (RT_FAKE_TELEGRAM, "2401", S_BUDGET_MSGS, got), S_BUDGET_MSGS);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, "2401", got), S_BUDGET_MSGS);
    for (int i = 0; i < S_BUDGET_MSGS; i++) {
        char *sent = s_text_of (got[i]);
        snprintf (text, sizeof text, "message %d of %d", i + 1, S_BUDGET_MSGS);
        if (strcmp (sent, text) != 0)
            fail_msg ("request %d to the chat carried \"%s\", not \"%s\"", i + 1, sent, text);
        free (sent);
        /* A token a second; a request's way to the fake varies by a
         * few milliseconds. */
        if (i > 0 && got[i]->at_ms - got[i - 1]->at_ms < 950)
            fail_msg ("messages %d and %d to one chat came %lld ms apart", i, i + 1,
                      (long long)(got[i]->at_ms - got[i - 1]->at_ms));
    }
    for (int i = 0; i < S_BUDGET_OTHERS; i++) {
        snprintf (chat, sizeof chat, "%d", 2411 + i);
        assert_int_equal (s_to (RT_FAKE_TELEGRAM, chat, theirs), 1);
        if (theirs[0]->at_ms > got[0]->at_ms + 500)
            fail_msg ("chat %s waited %lld ms behind the busy one", chat,
                      (long long)(theirs[0]->at_ms - got[0]->at_ms));
    }
}

/* --- read receipts --- */

/* WhatsApp says the message was read (before any delivered receipt): the
 * send is read and notifyd says MessageDelivered read once, with the
 * message id; a delivered receipt coming after, or the read one again,
 * changes nothing and says nothing. */
static void
test_read_receipt (void **state)
{
    const char *stale = "retain_notify_receipts_stale_total{type=\"MessageDelivered\"}";
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], wamid[64];
    const rt_fake_request_t *got[S_SEEN_MAX];
    rt_test_notify_said_t said;
    double before;
    (void)state;
    s_customer ("main", "whatsapp", "whatsapp=380503330031", customer);
    s_reply (customer, RETAIN__V1__CHANNEL__WHATSAPP, "Your order is packed", id);
    assert_int_equal (s_to_wait (RT_FAKE_WHATSAPP, "380503330031", 1, got), 1);
    snprintf (wamid, sizeof wamid, "%s", got[0]->id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS), 1);

    s_receipt (RETAIN__V1__CHANNEL__WHATSAPP, wamid, true);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "read", S_WAIT_MS), 1);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.read, 1);
    assert_string_equal (said.external, wamid);

    before = rt_test_metric (s_n.admin_port, stale);
    s_receipt (RETAIN__V1__CHANNEL__WHATSAPP, wamid, false);
    s_metric_wait (stale, before);
    before = rt_test_metric (s_n.admin_port, stale);
    s_receipt (RETAIN__V1__CHANNEL__WHATSAPP, wamid, true);
    s_metric_wait (stale, before);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "read", 0), 1);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.read, 1);
}

/* --- consent --- */

/* A marketing notification to customer: which providers' requests it
 * made (new ones to the customer's chat 2451 and number), or its
 * MessageFailed's code into code. */
static void
s_promo (const char *customer, size_t *telegram, size_t *sms, char *code, size_t codelen)
{
    const rt_fake_request_t *got[S_SEEN_MAX];
    size_t tg0 = s_to (RT_FAKE_TELEGRAM, "2451", got),
           sms0 = s_to (RT_FAKE_TWILIO, "+380503330051", got);
    char id[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    s_notify (customer, "promo", RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, "marketing", 0, id);
    code[0] = '\0';
    for (int64_t until = rt_test_now_ms () + S_WAIT_MS; rt_test_now_ms () < until;) {
        rt_test_notify_said (s_w.t.pg, id, &said);
        if (said.failed || rt_test_router_long (s_w.t.pg,
                                                "SELECT count(*) FROM notify.sends WHERE"
                                                " notification_id = '%s' AND status IN"
                                                " ('sent', 'delivered')",
                                                id) > 0)
            break;
        usleep (20 * 1000);
    }
    usleep (S_QUIET_MS * 1000 / 2);
    rt_test_notify_said (s_w.t.pg, id, &said);
    if (said.failed)
        snprintf (code, codelen, "%s", said.code);
    *telegram = s_to (RT_FAKE_TELEGRAM, "2451", got) - tg0;
    *sms = s_to (RT_FAKE_TWILIO, "+380503330051", got) - sms0;
}

/* Marketing with consent granted goes on Telegram; the unsubscribe link
 * (ConsentChanged from ingestd, stream customer) withdraws Telegram and
 * the next goes by SMS; withdrawn everywhere, it fails no_consent and
 * nothing is sent; a new grant on Telegram lets the next one through. */
static void
test_consent_withdrawn_and_granted (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], code[64];
    size_t tg, sms;
    (void)state;
    s_customer ("main", "telegram", "sms=+380503330051,telegram=2451", customer);
    s_consent (customer, RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, true, "import");
    s_promo (customer, &tg, &sms, code, sizeof code);
    assert_int_equal (tg, 1);
    assert_int_equal (sms, 0);

    s_consent (customer, RETAIN__V1__CHANNEL__TELEGRAM, false, "unsubscribe_link");
    s_promo (customer, &tg, &sms, code, sizeof code);
    assert_int_equal (tg, 0);
    assert_int_equal (sms, 1);

    s_consent (customer, RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, false, "unsubscribe_link");
    s_promo (customer, &tg, &sms, code, sizeof code);
    assert_string_equal (code, "no_consent");
    assert_int_equal (tg, 0);
    assert_int_equal (sms, 0);

    s_consent (customer, RETAIN__V1__CHANNEL__TELEGRAM, true, "operator:op-olha");
    s_promo (customer, &tg, &sms, code, sizeof code);
    assert_string_equal (code, "");
    assert_int_equal (tg, 1);
    assert_int_equal (sms, 0);
}

/* --- retries --- */

/* Telegram answers 503 every time: the attempts come after delays that
 * double from --backoff up to --backoff-max, each within [d/2, d) (and a
 * little late: the poll); the --retry-max-th failure is a dead letter,
 * MessageFailed not permanent, listed by retainctl notify failed. */
static void
test_backoff_then_dead_letter (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    const char *args[] = {"notify", "failed", "--json", NULL};
    const rt_fake_request_t *got[S_SEEN_MAX];
    rt_test_notify_said_t said;
    int64_t d = S_BACKOFF_MS;
    json_t *doc, *row, *listed = NULL;
    size_t i;
    (void)state;
    for (int k = 0; k < S_RETRY_MAX; k++)
        rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM,
                               &(rt_fake_answer_t){.kind = RT_FAKE_SERVER_ERROR});
    s_customer ("bulk", "telegram", "telegram=2461", customer);
    s_reply (customer, RETAIN__V1__CHANNEL__TELEGRAM, "Your refund is on its way", id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "failed", S_WAIT_MS), 1);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_false (said.permanent);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, "2461", got), S_RETRY_MAX);
    for (int k = 1; k<S_RETRY_MAX; k++, d = d * 2> S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : d * 2) {
        int64_t gap = got[k]->at_ms - got[k - 1]->at_ms;
        if (gap < d / 2 || gap >= d + S_LATE_MS)
            fail_msg ("retry %d came %lld ms after the attempt before it; its backoff is [%lld, "
                      "%lld) ms",
                      k, (long long)gap, (long long)(d / 2), (long long)d);
    }

    doc = s_ctl_json (args);
    json_array_foreach (doc, i, row)
    {
        const char *v = json_string_value (json_object_get (row, "message_id"));
        if (v && strcmp (v, id) == 0)
            listed = row;
    }
    if (!listed)
        fail_msg ("retainctl notify failed does not list %s", id);
    assert_int_equal (json_integer_value (json_object_get (listed, "attempts")), S_RETRY_MAX);
    assert_true (json_is_true (json_object_get (listed, "retryable")));
    json_decref (doc);
}

/* A proxy's HTML error page, then an answer later than the request
 * timeout: both retried, and the message delivered once the provider
 * answers again, said delivered once. */
static void
test_html_and_timeout_retried (void **state)
{
    const char *uncertain = "retain_notify_retry_uncertain_total";
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    const rt_fake_request_t *got[S_SEEN_MAX];
    rt_test_notify_said_t said;
    double before = rt_test_metric (s_n.admin_port, uncertain);
    int ok = 0;
    (void)state;
    rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM, &(rt_fake_answer_t){.kind = RT_FAKE_HTML});
    rt_fake_provider_push (
        s_fake, RT_FAKE_TELEGRAM,
        &(rt_fake_answer_t){.kind = RT_FAKE_SERVER_ERROR, .delay_ms = 1500}); /* past 1 s */
    s_customer ("bulk", "telegram", "telegram=2471", customer);
    s_reply (customer, RETAIN__V1__CHANNEL__TELEGRAM, "Your parcel is on its way", id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, "2471", got), 3);
    assert_int_equal (got[0]->answer, RT_FAKE_HTML);
    assert_int_equal (got[1]->answer, RT_FAKE_SERVER_ERROR);
    for (int k = 0; k < 3; k++)
        ok += got[k]->answer == RT_FAKE_SUCCESS;
    assert_int_equal (ok, 1);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    assert_string_equal (said.external, got[2]->id);
    assert_true (rt_test_metric (s_n.admin_port, uncertain) >= (before < 0 ? 0 : before) + 1);
}

/* --- a Telegram group that became a supergroup --- */

/* The group's chat answers 400 with migrate_to_chat_id: the same message
 * goes once to the supergroup's id, delivered and said once; the old
 * chat is not tried again, and the log says why crm keeps the old id. */
static void
test_group_migrated (void **state)
{
    const char *moved = "-1001234567890"; /* the fake's migrate_to_chat_id */
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], recipient[64], ext[64];
    const rt_fake_request_t *got[S_SEEN_MAX];
    rt_test_notify_said_t said;
    char *log;
    (void)state;
    rt_fake_provider_push (s_fake, RT_FAKE_TELEGRAM,
                           &(rt_fake_answer_t){.kind = RT_FAKE_ERROR, .error = "migrated"});
    s_customer ("main", "telegram", "telegram=-4001", customer);
    s_reply (customer, RETAIN__V1__CHANNEL__TELEGRAM, "The club meets on Friday", id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, "-4001", got), 1);
    assert_int_equal (got[0]->status, 400);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, moved, got), 1);
    assert_int_equal (got[0]->answer, RT_FAKE_SUCCESS);
    rt_test_router_text (s_w.t.pg, recipient, sizeof recipient,
                         "SELECT recipient FROM notify.sends WHERE id = '%s'", id);
    assert_string_equal (recipient, moved);
    rt_test_notify_said (s_w.t.pg, id, &said);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    snprintf (ext, sizeof ext, "%s", got[0]->id);
    assert_string_equal (said.external, ext);
    log = rt_test_log (s_n.log);
    if (!strstr (log, "crm's identity keeps the old id") || !strstr (log, moved))
        fail_msg ("notifyd's log does not say the chat moved");
    free (log);
}

/* --- not_before --- */

/* A notification due in an hour: nothing a few seconds before, once just
 * after. */
static void
test_not_before (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    const rt_fake_request_t *got[S_SEEN_MAX];
    int64_t due = s_clock_now () + S_HOUR;
    (void)state;
    s_customer ("main", "telegram", "telegram=2481", customer);
    s_notify (customer, "parcel", RETAIN__V1__CHANNEL__TELEGRAM, NULL, due, id);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "queued", S_WAIT_MS), 1);

    s_clock_set (due - 5000);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, "2481", got), 0);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "queued", 0), 1);

    s_clock_set (due + 1000);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "delivered", S_WAIT_MS), 1);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (s_to (RT_FAKE_TELEGRAM, "2481", got), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_failover_when_stopped),
        cmocka_unit_test (test_failover_when_disabled),
        /* Moves the clock a minute on. */
        cmocka_unit_test (test_failover_when_paused),
        cmocka_unit_test (test_recipient_budget),
        cmocka_unit_test (test_read_receipt),
        cmocka_unit_test (test_consent_withdrawn_and_granted),
        cmocka_unit_test (test_backoff_then_dead_letter),
        cmocka_unit_test (test_html_and_timeout_retried),
        cmocka_unit_test (test_group_migrated),
        /* Moves the clock an hour on. */
        cmocka_unit_test (test_not_before),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
