/*
 * retainctl consent and suppress against a real busd and notifyd, as an
 * operator uses them when a customer calls: the shared fake of the
 * providers (Telegram and Twilio SMS accounts of the inbox "main"),
 * customers in crm, notifyd's quiet hours off so that the time of day
 * does not matter.
 *
 * What a user would notice: a marketing message goes once the operator
 * granted consent; withdrawn on Telegram, the next one goes by SMS, and
 * withdrawn everywhere, it fails no_consent with nothing sent; granted on
 * Telegram again, it goes there. `consent show` lists each word and the
 * changes newest first with the source operator:<name> and the reason. A
 * change made while busd is down is kept and reaches notifyd once busd is
 * back. An absorbed customer's consent is set on the survivor, saying so.
 * A number suppressed as the operator typed it, a local one, stops the
 * SMS to it (the notification fails `suppressed`, nothing sent); lifted,
 * the next one goes. Every bad input exits 2 (an address not suppressed
 * exits 1) with its reason, and nothing of notifyd's or the bus's changes.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "rt_test.h"
#include "rt_test_fake_provider.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

#define S_WAIT_MS  30000
#define S_QUIET_MS 1500 /* long enough for a send that was due to have gone */

static rt_test_notify_t s_w;
static rt_fake_provider_t *s_fake;
static rt_test_notifyd_t s_n;

/* --- retainctl --- */

/* retainctl with the arguments (NULL-ended) on the test's database; and
 * what it must have done: exited with want, printed every one of the
 * strings after what (NULL-ended). */
#define S_CTL(...)                   rt_test_retainctl_run (s_w.t.dsn, __VA_ARGS__)
#define S_EXPECT(r, want, what, ...) rt_test_retainctl_expect (r, want, what, NULL, __VA_ARGS__)

/* The JSON retainctl printed (owned); fails unless it exited 0. */
static json_t *
s_json (rt_test_ctl_t r, const char *what)
{
    json_t *doc;
    if (r.status != 0)
        fail_msg ("%s: exit %d:\n%s", what, r.status, r.out);
    doc = json_loads (r.out, 0, NULL);
    if (!doc)
        fail_msg ("%s printed no JSON:\n%s", what, r.out);
    free (r.out);
    return doc;
}

/* --- the world --- */

/* A customer preferring Telegram, on Telegram (chat) and SMS (number). */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *chat, const char *number)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, locale, preferred_channel)"
                        " VALUES ('%s', 'Olena', 'en', '%s')",
                        id, chat ? "telegram" : "sms");
    if (chat)
        rt_test_router_sql (s_w.t.pg,
                            "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                            " customer_id) VALUES ('telegram', 'main', '%s', '%s')",
                            chat, id);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                        " customer_id) VALUES ('sms', 'main', '%s', '%s')",
                        number, id);
}

/* Asks for a notification of template ("promo" is marketing, "parcel"
 * transactional); its id into id. */
static void
s_notify (const char *customer, const char *template_name, char id[RT_UUID_STR_LEN + 1])
{
    id[0] = '\0';
    rt_test_notify_request (
        s_w.db,
        &(rt_test_notify_request_t){.customer = customer,
                                    .template_name = template_name,
                                    .category =
                                        strcmp (template_name, "promo") == 0 ? "marketing" : NULL},
        id);
}

/* Asks for a notification of template, which must fail with code (on
 * the bus) and reach nobody on provider's recipient. */
static void
s_refused (const char *customer, const char *template_name, const char *code,
           rt_fake_kind_t provider, const char *recipient)
{
    char id[RT_UUID_STR_LEN + 1];
    rt_test_notify_said_t said;
    size_t before = rt_fake_provider_sent (s_fake, provider, recipient, NULL, 0);
    s_notify (customer, template_name, id);
    rt_test_notify_said_wait (s_w.t.pg, id, &said, S_WAIT_MS);
    assert_int_equal (said.failed, 1);
    assert_string_equal (said.code, code);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (rt_fake_provider_sent (s_fake, provider, recipient, NULL, 0), before);
}

/* Waits until notifyd holds the word (granted or not) on channel and
 * category for customer, from source. */
static void
s_holds (const char *customer, const char *channel, const char *category, bool granted,
         const char *source)
{
    char q[512];
    snprintf (q, sizeof q,
              "SELECT count(*) FROM notify.consent WHERE customer_id = '%s' AND channel = '%s'"
              " AND category = '%s' AND granted = %s AND source = '%s'",
              customer, channel, category, granted ? "true" : "false", source);
    if (rt_test_pg_wait_long (s_w.t.pg, q, 1, S_WAIT_MS) != 1)
        fail_msg ("notifyd did not record %s %s %s for %s from %s; see %s/%s", channel, category,
                  granted ? "granted" : "withdrawn", customer, source, rt_test_dir (), s_n.log);
}

static int
s_setup (void **state)
{
    /* Marketing needs a grant; no hour of the day holds anything back. */
    const char *const extra[] = {"--marketing-consent=opt-in",
                                 "--quiet-hours=none",
                                 "--fallback-chain=sms,telegram",
                                 "--poll=20ms",
                                 "--sweep=200ms",
                                 NULL};
    /* channel, provider, token, account id, sender */
    static const char *const accounts[][5] = {
        {"telegram", "telegram", "123456:TESTTOKEN", "", ""},
        {"sms", "twilio", "authtoken", "AC0123", "+15550000000"},
    };
    const char *base;
    (void)state;
    /* Who runs retainctl when --by is not given. */
    setenv ("USER", "olha", 1);
    s_fake = rt_fake_provider_start ();
    base = rt_fake_provider_base (s_fake);
    rt_test_notify_open (&s_w, "retainctl_consent", 0);
    rt_test_notifyd_start (&s_n, s_w.t.dsn, s_w.busd.pub, NULL, "n1", "retainctl-consent.log",
                           extra);
    /* The inbox "main" sends on Telegram and by SMS, both to the fake. */
    for (size_t i = 0; i < sizeof accounts / sizeof *accounts; i++)
        rt_test_router_sql (s_w.t.pg,
                            "INSERT INTO notify.accounts (id, inbox_id, channel, provider,"
                            " base_url, token, account_id, sender) VALUES ('%s-main', 'main',"
                            " '%s', '%s', '%s', '%s', '%s', '%s')",
                            accounts[i][0], accounts[i][0], accounts[i][1], base, accounts[i][2],
                            accounts[i][3], accounts[i][4]);
    rt_test_router_sql (s_w.t.pg, "INSERT INTO notify.templates (name, locale, text) VALUES"
                                  " ('parcel', 'en', 'Your parcel has arrived, {{name}}'),"
                                  " ('promo', 'en', 'Two for one this weekend, {{name}}')");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_notify_teardown (&s_n, &s_w, &s_fake);
    return 0;
}

/* --- consent --- */

/* Grant, withdraw on one channel, withdraw everywhere, grant on one
 * channel again: where each marketing message goes, and what show says. */
static void
test_withdraw_and_grant (void **state)
{
    const char *chat = "3101", *number = "+380503330001";
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], want[128];
    json_t *doc, *now, *history, *row;
    (void)state;
    s_customer (customer, chat, number);

    /* Opt-in: marketing needs a grant. */
    S_EXPECT (S_CTL ("consent", "set", "--customer", customer, "--grant", "--category", "marketing",
                     "--by", "olena", NULL),
              0, "grant", "consent granted: customer ", "every channel, marketing",
              "source operator:olena", NULL);
    s_holds (customer, "any", "marketing", true, "operator:olena");
    s_notify (customer, "promo", id);
    assert_int_equal (
        rt_fake_provider_sent_wait (s_fake, RT_FAKE_TELEGRAM, chat, 1, S_WAIT_MS, NULL, 0), 1);

    /* Not on Telegram any more: the next one goes by SMS. */
    S_EXPECT (S_CTL ("consent", "set", "--customer", customer, "--withdraw", "--channel",
                     "telegram", "--category", "marketing", "--by", "olena", "--reason",
                     "asked on the phone: no offers in Telegram", NULL),
              0, "withdraw telegram", "consent withdrawn: customer ", "telegram, marketing", NULL);
    s_holds (customer, "telegram", "marketing", false, "operator:olena");
    s_notify (customer, "promo", id);
    assert_int_equal (
        rt_fake_provider_sent_wait (s_fake, RT_FAKE_TWILIO, number, 1, S_WAIT_MS, NULL, 0), 1);
    assert_int_equal (rt_fake_provider_sent (s_fake, RT_FAKE_TELEGRAM, chat, NULL, 0), 1);

    /* show: the words, and the changes newest first, with their sources. */
    S_EXPECT (S_CTL ("consent", "show", "--customer", customer, NULL), 0, "show",
              "telegram    marketing      withdrawn  operator:olena",
              "any         marketing      granted    operator:olena",
              "asked on the phone: no offers in Telegram", NULL);
    doc = s_json (S_CTL ("consent", "show", "--customer", customer, "--json", NULL), "show --json");
    assert_string_equal (json_string_value (json_object_get (doc, "customer_id")), customer);
    now = json_object_get (doc, "consent");
    history = json_object_get (doc, "history");
    assert_int_equal (json_array_size (now), 2);
    assert_int_equal (json_array_size (history), 2);
    row = json_array_get (history, 0);
    assert_string_equal (json_string_value (json_object_get (row, "channel")), "telegram");
    assert_true (json_is_false (json_object_get (row, "granted")));
    assert_string_equal (json_string_value (json_object_get (row, "source")), "operator:olena");
    assert_string_equal (json_string_value (json_object_get (row, "reason")),
                         "asked on the phone: no offers in Telegram");
    assert_string_equal (
        json_string_value (json_object_get (json_array_get (history, 1), "channel")), "any");
    json_decref (doc);

    /* Nowhere: nothing is sent, the notification fails no_consent. */
    S_EXPECT (S_CTL ("consent", "set", "--customer", customer, "--withdraw", "--category",
                     "marketing", "--by", "olena", NULL),
              0, "withdraw everywhere", NULL);
    s_holds (customer, "any", "marketing", false, "operator:olena");
    s_refused (customer, "promo", "no_consent", RT_FAKE_TWILIO, number);
    assert_int_equal (rt_fake_provider_sent (s_fake, RT_FAKE_TELEGRAM, chat, NULL, 0), 1);

    /* Telegram again, by whoever runs retainctl ($USER): the newer word on
     * the channel wins over the older one everywhere. */
    S_EXPECT (S_CTL ("consent", "set", "--customer", customer, "--grant", "--channel", "telegram",
                     "--category", "marketing", NULL),
              0, "grant telegram", "source operator:olha", NULL);
    s_holds (customer, "telegram", "marketing", true, "operator:olha");
    s_notify (customer, "promo", id);
    assert_int_equal (
        rt_fake_provider_sent_wait (s_fake, RT_FAKE_TELEGRAM, chat, 2, S_WAIT_MS, NULL, 0), 2);

    /* Each change went on the bus from retainctl, keyed by the customer. */
    snprintf (want, sizeof want, "'%s'", customer);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM bus.events WHERE type ="
                                           " 'ConsentChanged' AND stream = 'customer' AND key = %s"
                                           " AND producer = 'retainctl'",
                                           want),
                      4);
}

/* Without --channel and --category: both categories, every channel, in
 * two events; an absorbed customer's consent is the survivor's; and a
 * change made while busd is down reaches notifyd once it is back. */
static void
test_everything_merged_busd_down (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], absorbed[RT_UUID_STR_LEN + 1], want[160];
    const char *const busd_log = "retainctl-consent-busd2.log";
    (void)state;
    s_customer (customer, "3102", "+380503330002");
    rt_test_router_uuid (absorbed);
    rt_test_router_sql (s_w.t.pg,
                        "INSERT INTO crm.customers (id, name, merged_into) VALUES ('%s', 'Olena"
                        " (old)', '%s')",
                        absorbed, customer);

    rt_test_stop (s_w.busd.pid, "retain-busd");
    s_w.busd.pid = 0;
    snprintf (want, sizeof want, "was merged into %s", customer);
    S_EXPECT (S_CTL ("consent", "set", "--customer", absorbed, "--withdraw", "--by", "olena",
                     "--reason", "moved abroad", NULL),
              0, "withdraw all, absorbed, busd down", want, "every channel, transactional",
              "every channel, marketing", NULL);
    assert_int_equal (rt_test_pg_long (s_w.t.pg, "SELECT count(*) FROM outbox.pending"), 2);
    usleep (S_QUIET_MS * 1000);
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.consent WHERE"
                                           " customer_id = '%s'",
                                           customer),
                      0);

    rt_test_busd_start (&s_w.busd, s_w.t.dsn, busd_log, NULL, true);
    s_holds (customer, "any", "transactional", false, "operator:olena");
    s_holds (customer, "any", "marketing", false, "operator:olena");
    assert_int_equal (rt_test_router_long (s_w.t.pg,
                                           "SELECT count(*) FROM notify.consent_history WHERE"
                                           " customer_id = '%s' AND reason = 'moved abroad'",
                                           customer),
                      2);
    S_EXPECT (S_CTL ("consent", "show", "--customer", absorbed, NULL), 0, "show absorbed", want,
              "any         transactional  withdrawn  operator:olena", "moved abroad", NULL);
}

/* --- suppressions --- */

static void
test_suppress_a_local_number (void **state)
{
    const char *number = "+380503330003";
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    json_t *doc, *row;
    long long changes;
    (void)state;
    s_customer (customer, NULL, number);

    /* As the customer said it on the phone: a Ukrainian number. */
    S_EXPECT (S_CTL ("suppress", "add", "--address", "050 333 00 03", "--reason",
                     "asked not to get SMS", "--by", "olena", NULL),
              0, "suppress add", "+380503330003 suppressed (source operator:olena)", NULL);
    S_EXPECT (S_CTL ("suppress", "list", NULL), 0, "suppress list", number, "operator:olena",
              "asked not to get SMS", NULL);
    doc = s_json (S_CTL ("suppress", "list", "--json", NULL), "suppress list --json");
    assert_int_equal (json_array_size (doc), 1);
    row = json_array_get (doc, 0);
    assert_string_equal (json_string_value (json_object_get (row, "address")), number);
    assert_string_equal (json_string_value (json_object_get (row, "source")), "operator:olena");
    json_decref (doc);

    s_refused (customer, "parcel", "suppressed", RT_FAKE_TWILIO, number);
    assert_int_equal (rt_fake_provider_sent (s_fake, RT_FAKE_TWILIO, number, NULL, 0), 0);

    /* Again: nothing changes. */
    changes = rt_test_pg_long (s_w.t.pg, "SELECT count(*) FROM notify.suppression_history");
    S_EXPECT (S_CTL ("suppress", "add", "--address", number, NULL), 0, "suppress add again",
              "already suppressed", "unchanged", NULL);
    assert_int_equal (rt_test_pg_long (s_w.t.pg, "SELECT count(*) FROM notify.suppression_history"),
                      changes);

    /* Lifted: the next one goes. */
    S_EXPECT (
        S_CTL ("suppress", "remove", "--address", "+38 (050) 333-00-03", "--by", "olena", NULL), 0,
        "suppress remove", "+380503330003 no longer suppressed", NULL);
    s_notify (customer, "parcel", id);
    assert_int_equal (
        rt_fake_provider_sent_wait (s_fake, RT_FAKE_TWILIO, number, 1, S_WAIT_MS, NULL, 0), 1);
    assert_int_equal (rt_test_notify_status_wait (s_w.t.pg, id, "sent", S_WAIT_MS), 1);
    S_EXPECT (S_CTL ("suppress", "list", NULL), 0, "suppress list, lifted", NULL);
    {
        char *out = S_CTL ("suppress", "list", NULL).out;
        if (strstr (out, number))
            fail_msg ("a lifted suppression is listed:\n%s", out);
        free (out);
    }

    /* An e-mail address, as notifyd compares it: lower-cased. */
    S_EXPECT (S_CTL ("suppress", "add", "--address", " Olena.K@Example.COM ", NULL), 0,
              "suppress an e-mail", "olena.k@example.com suppressed (source operator:olha)", NULL);
    assert_int_equal (rt_test_pg_long (s_w.t.pg, "SELECT count(*) FROM notify.suppressions WHERE"
                                                 " address = 'olena.k@example.com' AND"
                                                 " suppressed"),
                      1);
}

/* --- bad input --- */

/* Everything of notifyd's and the bus's that a command could change. */
static char *
s_fingerprint (void)
{
    char out[8192];
    rt_test_router_text (
        s_w.t.pg, out, sizeof out, "%s",
        "SELECT concat_ws(' | ',"
        " (SELECT string_agg(concat_ws(',', customer_id, channel, category, granted, source,"
        "   reason, at), ';' ORDER BY customer_id, channel, category) FROM notify.consent),"
        " (SELECT count(*) FROM notify.consent_history),"
        " (SELECT string_agg(concat_ws(',', address, suppressed, source, reason, at), ';'"
        "   ORDER BY address) FROM notify.suppressions),"
        " (SELECT count(*) FROM notify.suppression_history),"
        " (SELECT count(*) FROM outbox.pending),"
        " (SELECT count(*) FROM bus.events WHERE type = 'ConsentChanged'))");
    return strdup (out);
}

static void
test_bad_input (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], nobody[RT_UUID_STR_LEN + 1], nobody_said[128];
    char long_reason[600];
    char *before, *after;
    (void)state;
    s_customer (customer, "3104", "+380503330004");
    rt_test_router_uuid (nobody);
    snprintf (nobody_said, sizeof nobody_said, "no customer %s in crm.customers", nobody);
    memset (long_reason, 'x', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    const struct {
        const char *args[16];
        int status;
        const char *reason;
    } cases[] = {
        {{"consent", "set", "--withdraw"}, 2, "--customer is required"},
        {{"consent", "set", "--customer", "42", "--withdraw"},
         2,
         "--customer \"42\" is not a customer id (a UUID)"},
        {{"consent", "set", "--customer", nobody, "--withdraw"}, 2, nobody_said},
        {{"consent", "set", "--customer", customer, "--withdraw", "--channel", "fax"},
         2,
         "--channel \"fax\" must be one of"},
        {{"consent", "set", "--customer", customer, "--withdraw", "--category", "promo"},
         2,
         "--category \"promo\" must be transactional or marketing"},
        {{"consent", "set", "--customer", customer, "--grant", "--withdraw"},
         2,
         "give either --grant or --withdraw"},
        {{"consent", "set", "--customer", customer}, 2, "give either --grant or --withdraw"},
        {{"consent", "set", "--customer", customer, "--grant=maybe"}, 2, "true or false"},
        {{"consent", "set", "--customer", customer, "--withdraw", "--by", "ol\nena"},
         2,
         "--by holds a control character"},
        {{"consent", "set", "--customer", customer, "--withdraw", "--reason", long_reason},
         2,
         "--reason is longer than 500 bytes"},
        {{"consent", "show", "--customer", "olena"}, 2, "is not a customer id (a UUID)"},
        {{"consent", "show", "--customer", nobody}, 2, nobody_said},
        {{"suppress", "add"}, 2, "--address is required"},
        {{"suppress", "add", "--address", "hello"},
         2,
         "--address \"hello\" is neither an e-mail address nor a phone number"},
        {{"suppress", "add", "--address", "067 111"}, 2, "is neither an e-mail address"},
        {{"suppress", "add", "--address", "+380 67 111 22 33 ext 5"},
         2,
         "is neither an e-mail address"},
        {{"suppress", "add", "--address", "a@b@example.com"}, 2, "is not one e-mail address"},
        {{"suppress", "add", "--address", "a@example.com, b@example.com"},
         2,
         "is not one e-mail address"},
        {{"suppress", "add", "--address", "Olena <olena@example.com>"},
         2,
         "is not one e-mail address"},
        {{"suppress", "add", "--address", "+380503330004", "--reason", "a\tb"},
         2,
         "--reason holds a control character"},
        {{"suppress", "list", "--json=maybe"}, 2, "true or false"},
        {{"suppress", "remove", "--address", "0509999999"}, 1, "+380509999999 is not suppressed"},
    };
    before = s_fingerprint ();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[160];
        rt_test_ctl_t r;
        snprintf (what, sizeof what, "bad input %zu (%s %s %s)", i, cases[i].args[0],
                  cases[i].args[1], cases[i].args[2] ? cases[i].args[2] : "");
        r.status = rt_test_retainctl (s_w.t.dsn, cases[i].args, &r.out);
        rt_test_retainctl_expect (r, cases[i].status, what, NULL, cases[i].reason, NULL);
    }
    /* Long enough for an event that slipped into the outbox to be read. */
    usleep (S_QUIET_MS * 1000);
    after = s_fingerprint ();
    if (strcmp (before, after) != 0)
        fail_msg ("a refused command changed something:\nbefore: %s\nafter:  %s", before, after);
    free (after);
    free (before);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_withdraw_and_grant),
        cmocka_unit_test (test_everything_merged_busd_down),
        cmocka_unit_test (test_suppress_a_local_number),
        cmocka_unit_test (test_bad_input),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
