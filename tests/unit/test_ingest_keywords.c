/*
 * test_ingest_keywords: ingest's opt keywords (services/ingest/keywords.c).
 * Every keyword of the table in the ways customers type it, the near
 * misses that are plain messages, and which messages are read at all: the
 * texting channels, not e-mail, not a photo's caption, not a comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "keywords.h"

static const struct {
    const char *text; /* what the customer sent */
    const char *opt;  /* what ingest makes of it */
} s_cases[] = {
    /* Twilio's defaults, as carriers print them and as people type them. */
    {"STOP", "out"},
    {"stop", "out"},
    {"Stop", "out"},
    {"sToP", "out"},
    {"STOPALL", "out"},
    {"StopAll", "out"},
    {"UNSUBSCRIBE", "out"},
    {"unsubscribe", "out"},
    {"CANCEL", "out"},
    {"end", "out"},
    {"Quit", "out"},
    {"REVOKE", "out"},
    {"optout", "out"},
    {"START", "in"},
    {"start", "in"},
    {"Yes", "in"},
    {"UNSTOP", "in"},
    /* Ukrainian and Russian, any case. */
    {"СТОП", "out"},
    {"стоп", "out"},
    {"Стоп", "out"},
    {"сТоП", "out"},
    {"ВІДПИСАТИСЯ", "out"},
    {"відписатися", "out"},
    {"Відписатись", "out"},
    {"ВІДПИСКА", "out"},
    {"відписка", "out"},
    {"ОТПИСАТЬСЯ", "out"},
    {"отписаться", "out"},
    {"Отписка", "out"},
    {"СТАРТ", "in"},
    {"старт", "in"},
    {"Підписатися", "in"},
    {"подписаться", "in"},
    /* Ukrainian typed with the Latin i (a Russian keyboard). */
    {"вiдписатися", "out"},
    {"ВIДПИСКА", "out"},
    /* White space around the word: spaces, new lines, tabs, a no-break
     * space, a zero-width space, a BOM. */
    {"Стоп ", "out"},
    {"  STOP  ", "out"},
    {"\nstop\r\n", "out"},
    {"\tСТОП\t", "out"},
    {"\xc2\xa0stop\xc2\xa0", "out"},
    {"\xe2\x80\x8bСтоп\xe2\x80\x8b", "out"},
    {"\xef\xbb\xbfSTOP", "out"},
    /* Trailing '.' and '!': still the keyword (a decision: see keywords.c). */
    {"STOP!", "out"},
    {"Стоп!!!", "out"},
    {"stop.", "out"},
    {"СТОП! ", "out"},
    {"start!", "in"},
    /* Near misses: plain messages. */
    {"stop it", ""},
    {"Stop sending me this", ""},
    {"don't stop", ""},
    {"STOP?", ""},
    {"Стоп?", ""},
    {"!STOP", ""},
    {"\"STOP\"", ""},
    {"STOPP", ""},
    {"STO P", ""},
    {"S T O P", ""},
    {"stop all", ""},
    {"opt out", ""},
    {"стоп стоп", ""},
    {"стопе", ""},
    {"нестоп", ""},
    {"відписатися будь ласка", ""},
    {"СТОП\xcc\x86", ""}, /* a combining mark makes another letter */
    {"STOP\xff", ""},     /* not UTF-8 */
    /* Not keywords in the table: a help request, a plain yes. */
    {"HELP", ""},
    {"INFO", ""},
    {"так", ""},
    {"да", ""},
    /* Nothing at all. */
    {"", ""},
    {"   ", ""},
    {"!", ""},
    {"...", ""},
};

static void
test_table (void **state)
{
    size_t i;
    char *padded;
    (void)state;
    for (i = 0; i < sizeof s_cases / sizeof *s_cases; i++) {
        const char *got = ingest_opt_keyword (s_cases[i].text);
        if (strcmp (got, s_cases[i].opt) != 0)
            fail_msg ("\"%s\": opt \"%s\", expected \"%s\"", s_cases[i].text, got, s_cases[i].opt);
    }
    assert_string_equal (ingest_opt_keyword (NULL), "");
    /* A long message that happens to end in STOP is a message. */
    padded = malloc (4096);
    memset (padded, ' ', 4095);
    padded[4095] = '\0';
    memcpy (padded + 4090, "STOP", 4);
    assert_string_equal (ingest_opt_keyword (padded), "");
    free (padded);
}

static Retain__V1__InboundMessage *
s_message (Retain__V1__Channel channel, const char *text)
{
    static const char *const id = "inbox-1";
    ingest_inbox_t inbox;
    Retain__V1__InboundMessage *msg;
    memset (&inbox, 0, sizeof inbox);
    inbox.id = id;
    inbox.channel = channel;
    msg = ingest_inbound_new (&inbox);
    assert_non_null (msg);
    assert_int_equal (ingest_set (&msg->text, text), 0);
    return msg;
}

/* What the InboundMessage says after it was added as an item. */
static char *
s_opt_added (Retain__V1__InboundMessage *msg)
{
    ingest_result_t result;
    char *opt;
    memset (&result, 0, sizeof result);
    assert_int_equal (ingest_item_add (&result, "InboundMessage", "m-1", &msg->base,
                                       ingest_channel_name (msg->channel), msg->inbox, "u-1"),
                      0);
    assert_int_equal (result.count, 1);
    opt = strdup (((Retain__V1__InboundMessage *)result.items[0].msg)->opt);
    ingest_result_reset (&result);
    return opt;
}

static void
test_channels (void **state)
{
    static const Retain__V1__Channel texting[] = {
        RETAIN__V1__CHANNEL__SMS,       RETAIN__V1__CHANNEL__WHATSAPP,
        RETAIN__V1__CHANNEL__VIBER,     RETAIN__V1__CHANNEL__TELEGRAM,
        RETAIN__V1__CHANNEL__MESSENGER, RETAIN__V1__CHANNEL__INSTAGRAM,
    };
    static const Retain__V1__Channel other[] = {
        RETAIN__V1__CHANNEL__EMAIL,
        RETAIN__V1__CHANNEL__WEBCHAT,
        RETAIN__V1__CHANNEL__PHONE,
    };
    size_t i;
    char *opt;
    (void)state;
    /* Every channel a customer texts on: the item carries the keyword. */
    for (i = 0; i < sizeof texting / sizeof *texting; i++) {
        opt = s_opt_added (s_message (texting[i], "Стоп"));
        assert_string_equal (opt, "out");
        free (opt);
        opt = s_opt_added (s_message (texting[i], "START"));
        assert_string_equal (opt, "in");
        free (opt);
        opt = s_opt_added (s_message (texting[i], "stop it"));
        assert_string_equal (opt, "");
        free (opt);
    }
    /* An e-mail whose body is "STOP", a web chat line, a call: no keyword. */
    for (i = 0; i < sizeof other / sizeof *other; i++) {
        opt = s_opt_added (s_message (other[i], "STOP"));
        assert_string_equal (opt, "");
        free (opt);
    }
}

static void
test_only_plain_messages (void **state)
{
    Retain__V1__InboundMessage *msg;
    Retain__V1__Origin *origin;
    char *opt;
    (void)state;

    /* A photo captioned "STOP" is a photo. */
    msg = s_message (RETAIN__V1__CHANNEL__TELEGRAM, "STOP");
    assert_non_null (ingest_attachment_add (msg, "image"));
    opt = s_opt_added (msg);
    assert_string_equal (opt, "");
    free (opt);

    /* "СТОП" under a public post is a comment, not a reply to retain. */
    msg = s_message (RETAIN__V1__CHANNEL__INSTAGRAM, "СТОП");
    origin = malloc (sizeof *origin);
    retain__v1__origin__init (origin);
    msg->origin = origin;
    opt = s_opt_added (msg);
    assert_string_equal (opt, "");
    free (opt);

    /* A channel event is no text message; "message" is. */
    msg = s_message (RETAIN__V1__CHANNEL__VIBER, "stop");
    assert_int_equal (ingest_set (&msg->event, "conversation_started"), 0);
    opt = s_opt_added (msg);
    assert_string_equal (opt, "");
    free (opt);
    msg = s_message (RETAIN__V1__CHANNEL__VIBER, "stop");
    assert_int_equal (ingest_set (&msg->event, "message"), 0);
    opt = s_opt_added (msg);
    assert_string_equal (opt, "out");
    free (opt);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_table),
        cmocka_unit_test (test_channels),
        cmocka_unit_test (test_only_plain_messages),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
