/*
 * test_ingest_telegram: telegram_handle against Update fixtures in the
 * shapes of the Bot API documentation (tests/fixtures/ingest/telegram).
 *
 * What a user would notice: the InboundMessage each update becomes, its
 * external id (a retry is the same id, an edit a different one), and a
 * clear status and label for every bad request, with no items. Leaks,
 * including on the error paths, are caught by running under
 * AddressSanitizer (RETAIN_SANITIZE=ON).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_test_channel.h"

#define SECRET   "tg_Secret-Token_0123"
#define PREVIOUS "tg_Old-Token_9876"

/* The handler under test, and where its requests come from. */
static const rt_test_channel_t s_ch = {.fixtures = "telegram",
                                       .handler = telegram_handle,
                                       .inbox = "shop-bot",
                                       .channel = RETAIN__V1__CHANNEL__TELEGRAM,
                                       .path = "/hooks/telegram/shop-bot",
                                       .public_url =
                                           "https://hooks.example.com/hooks/telegram/shop-bot",
                                       .now_ms = 1718009999000};

/* Calls the handler with body and the given method, content type and token
 * (NULL: header absent). */
static int
s_call (const ingest_inbox_t *inbox, const char *method, const char *ctype, const char *token,
        const char *body, size_t len, ingest_result_t *result)
{
    const ingest_header_t headers[] = {{"Content-Type", ctype},
                                       {"X-Telegram-Bot-Api-Secret-Token", token},
                                       {"User-Agent", "TelegramBot"}};
    return rt_test_channel_call (&s_ch, inbox, method, headers, 3, body, len, result);
}

/* Runs a fixture through a correctly configured inbox. */
static int
s_run (const char *name, ingest_result_t *result)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, name, &len);
    int rc = s_call (&inbox, "POST", "application/json", SECRET, body, len, result);
    free (body);
    return rc;
}

/* --- messages --- */

static void
test_text (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("text.json", &r), &r);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__TELEGRAM);
    assert_string_equal (m->inbox, "shop-bot");
    assert_string_equal (m->external_id, "387164922:4012");
    assert_string_equal (m->external_user_id, "387164922");
    assert_string_equal (m->display_name, "Олена Коваленко");
    assert_string_equal (m->text, "Добрий день! Where is my order #10452?");
    assert_string_equal (m->caption, "");
    assert_string_equal (m->thread_id, "387164922");
    assert_string_equal (m->reply_to, "");
    assert_string_equal (m->event, "message");
    assert_int_equal (m->sent_at, 1718000000000LL);
    assert_false (m->edited);
    assert_int_equal (m->n_attachments, 0);
    assert_string_equal (r.items[0].key, "telegram:shop-bot:387164922");
    assert_null (r.response);
    ingest_result_reset (&r);
}

static void
test_retry_same_id (void **state)
{
    ingest_result_t a, b;
    (void)state;
    rt_test_channel_inbound (s_run ("text.json", &a), &a);
    rt_test_channel_inbound (s_run ("text.json", &b), &b);
    assert_string_equal (a.items[0].external_id, b.items[0].external_id);
    ingest_result_reset (&a);
    ingest_result_reset (&b);
}

static void
test_edit_is_distinct (void **state)
{
    ingest_result_t orig, edit;
    Retain__V1__InboundMessage *m;
    (void)state;
    rt_test_channel_inbound (s_run ("text.json", &orig), &orig);
    m = rt_test_channel_inbound (s_run ("edited.json", &edit), &edit);
    assert_string_equal (m->external_id, "387164922:4012:edit:1718000095");
    assert_string_not_equal (m->external_id, orig.items[0].external_id);
    assert_true (m->edited);
    assert_int_equal (m->sent_at, 1718000095000LL);
    assert_string_equal (m->text, "Добрий день! Where is my order #10453?");
    ingest_result_reset (&orig);
    ingest_result_reset (&edit);
}

static void
test_edit_without_edit_date (void **state)
{
    ingest_result_t r;
    (void)state;
    rt_test_channel_fails (s_run ("edited_no_edit_date.json", &r), &r, 400, "malformed",
                           "edited_message.edit_date missing");
}

static void
test_photo_caption (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("photo_caption.json", &r), &r);
    assert_string_equal (m->caption, "The parcel arrived damaged");
    assert_string_equal (m->text, "The parcel arrived damaged");
    assert_int_equal (m->n_attachments, 1);
    /* The largest of the three sizes, though it is not the last. */
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[0]->file_id, "AgACAgIAAxkBAAIBZ2Z_large");
    assert_int_equal (m->attachments[0]->size, 118044);
    ingest_result_reset (&r);
}

static void
test_reply (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("reply.json", &r), &r);
    /* The external id of the message answered, in the same form as ours. */
    assert_string_equal (m->reply_to, "387164922:4017");
    assert_string_equal (m->text, "Thanks, which branch?");
    ingest_result_reset (&r);
}

static void
test_own_contact_gives_phone (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("contact.json", &r), &r);
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "contact");
    assert_string_equal (m->attachments[0]->phone, "380501234567");
    assert_string_equal (m->attachments[0]->name, "Олена Коваленко");
    assert_string_equal (m->phone, "+380501234567");
    ingest_result_reset (&r);
}

static void
test_other_contact_is_not_the_sender (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("contact_other.json", &r), &r);
    assert_string_equal (m->attachments[0]->phone, "+48 600 100 200");
    assert_string_equal (m->attachments[0]->name, "Marek");
    assert_string_equal (m->phone, "");
    ingest_result_reset (&r);
}

static void
test_location (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("location.json", &r), &r);
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "location");
    assert_float_equal (m->attachments[0]->latitude, 50.450001, 1e-9);
    assert_float_equal (m->attachments[0]->longitude, 30.523333, 1e-9);
    ingest_result_reset (&r);
}

static void
test_venue_is_one_location (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("venue.json", &r), &r);
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "location");
    assert_string_equal (m->attachments[0]->name,
                         "Nova Poshta branch 1, Khreshchatyk St, 22, Kyiv");
    assert_float_equal (m->attachments[0]->latitude, 50.4547, 1e-9);
    ingest_result_reset (&r);
}

static void
test_document (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("document.json", &r), &r);
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "document");
    assert_string_equal (m->attachments[0]->file_id, "BQACAgIAAxkBAAIBaGZ_invoice");
    assert_string_equal (m->attachments[0]->mime_type, "application/pdf");
    assert_string_equal (m->attachments[0]->name, "invoice-10452.pdf");
    assert_int_equal (m->attachments[0]->size, 48213);
    assert_string_equal (m->caption, "Invoice attached");
    assert_string_equal (m->text, "Invoice attached");
    ingest_result_reset (&r);
}

static void
test_voice (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("voice.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "voice");
    assert_string_equal (m->attachments[0]->mime_type, "audio/ogg");
    assert_string_equal (m->attachments[0]->file_id, "AwACAgIAAxkBAAIBaWZ_voice");
    assert_int_equal (m->attachments[0]->size, 24190);
    assert_string_equal (m->text, "");
    ingest_result_reset (&r);
}

static void
test_sticker (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("sticker.json", &r), &r);
    assert_string_equal (m->attachments[0]->kind, "sticker");
    assert_string_equal (m->attachments[0]->mime_type, "application/x-tgsticker");
    assert_string_equal (m->attachments[0]->file_id, "CAACAgIAAxkBAAIBamZ_sticker");
    ingest_result_reset (&r);
}

static void
test_animation_is_one_attachment (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("animation.json", &r), &r);
    /* Telegram repeats an animation as document: it is kept once. */
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "video");
    assert_string_equal (m->attachments[0]->mime_type, "video/mp4");
    assert_string_equal (m->attachments[0]->name, "happy.mp4");
    ingest_result_reset (&r);
}

static void
test_channel_post (void **state)
{
    ingest_result_t r;
    Retain__V1__InboundMessage *m;
    (void)state;
    m = rt_test_channel_inbound (s_run ("channel_post.json", &r), &r);
    assert_string_equal (m->external_id, "-1001987654321:88");
    assert_string_equal (m->external_user_id, "-1001987654321");
    assert_string_equal (m->display_name, "Shop News");
    assert_string_equal (m->thread_id, "-1001987654321");
    ingest_result_reset (&r);
}

static void
test_nothing_to_keep (void **state)
{
    static const char *names[] = {"callback_query.json", "my_chat_member.json",
                                  "service_message.json"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        ingest_result_t r;
        assert_int_equal (s_run (names[i], &r), 0);
        assert_int_equal (r.status, 0);
        assert_int_equal (r.count, 0);
        ingest_result_reset (&r);
    }
}

/* --- authentication --- */

static void
test_missing_token (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "text.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", NULL, body, len, &r), &r,
                           401, "missing_signature", "X-Telegram-Bot-Api-Secret-Token missing");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", "", body, len, &r), &r, 401,
                           "missing_signature", "missing");
    free (body);
}

static void
test_wrong_token (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_inbox_t other = rt_test_channel_inbox (&s_ch, "another-bots-token", "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "text.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", SECRET "x", body, len, &r),
                           &r, 403, "bad_signature", "does not match");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", "tg_Secret", body, len, &r),
                           &r, 403, "bad_signature", "does not match");
    /* The right token for another inbox. */
    rt_test_channel_fails (s_call (&other, "POST", "application/json", SECRET, body, len, &r), &r,
                           403, "bad_signature", "does not match");
    free (body);
}

static void
test_rotation (void **state)
{
    ingest_inbox_t rotating = rt_test_channel_inbox (&s_ch, SECRET, PREVIOUS);
    ingest_inbox_t rotated = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "text.json", &len);
    (void)state;
    rt_test_channel_inbound (
        s_call (&rotating, "POST", "application/json", PREVIOUS, body, len, &r), &r);
    ingest_result_reset (&r);
    rt_test_channel_inbound (s_call (&rotating, "POST", "application/json", SECRET, body, len, &r),
                             &r);
    ingest_result_reset (&r);
    /* Once the rotation is over the old token is refused. */
    rt_test_channel_fails (s_call (&rotated, "POST", "application/json", PREVIOUS, body, len, &r),
                           &r, 403, "bad_signature", "does not match");
    free (body);
}

static void
test_empty_secret_never_matches (void **state)
{
    /* An inbox whose secrets are empty (misconfigured) admits nobody,
     * however the token is spelt. */
    ingest_inbox_t none = rt_test_channel_inbox (&s_ch, "", "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "text.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&none, "POST", "application/json", "x", body, len, &r), &r, 403,
                           "bad_signature", "does not match");
    rt_test_channel_fails (s_call (&none, "POST", "application/json", "", body, len, &r), &r, 401,
                           "missing_signature", "missing");
    free (body);
}

/* --- the request's shape --- */

static void
test_method_and_content_type (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t len;
    char *body = rt_test_channel_fixture (s_ch.fixtures, "text.json", &len);
    (void)state;
    rt_test_channel_fails (s_call (&inbox, "GET", "application/json", SECRET, body, len, &r), &r,
                           405, "method_not_allowed", "GET");
    rt_test_channel_fails (s_call (&inbox, "PUT", "application/json", SECRET, body, len, &r), &r,
                           405, "method_not_allowed", "PUT");
    rt_test_channel_fails (s_call (&inbox, "POST", "text/plain", SECRET, body, len, &r), &r, 415,
                           "unsupported_media_type", "application/json");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/jsonp", SECRET, body, len, &r), &r,
                           415, "unsupported_media_type", "application/json");
    rt_test_channel_fails (s_call (&inbox, "POST", NULL, SECRET, body, len, &r), &r, 415,
                           "unsupported_media_type", "application/json");
    rt_test_channel_inbound (
        s_call (&inbox, "POST", "Application/JSON; charset=utf-8", SECRET, body, len, &r), &r);
    ingest_result_reset (&r);
    rt_test_channel_inbound (
        s_call (&inbox, "POST", "application/json ;charset=UTF-8", SECRET, body, len, &r), &r);
    ingest_result_reset (&r);
    free (body);
}

static void
test_malformed (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    (void)state;
    rt_test_channel_fails (s_run ("malformed.json", &r), &r, 400, "malformed", "not JSON");
    rt_test_channel_fails (s_run ("not_object.json", &r), &r, 400, "malformed",
                           "not a JSON object");
    rt_test_channel_fails (s_run ("duplicate_keys.json", &r), &r, 400, "malformed", "duplicate");
    rt_test_channel_fails (s_run ("missing_chat.json", &r), &r, 400, "malformed",
                           "message.chat missing");
    rt_test_channel_fails (s_run ("wrong_types.json", &r), &r, 400, "malformed",
                           "message.message_id is not an integer");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", SECRET, NULL, 0, &r), &r,
                           400, "malformed", "not JSON");
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", SECRET, "{}", 2, &r), &r,
                           400, "malformed", "update.update_id missing");
}

static void
test_wrong_types_inside (void **state)
{
    static const char *bodies[][2] = {
        {"{\"update_id\":1,\"message\":[]}", "update.message is not an object"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":\"x\"}}}",
         "message.chat.id is not an integer"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":-5,\"chat\":{\"id\":1}}}",
         "message.date is not a unix time"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":9223372036854775807,"
         "\"chat\":{\"id\":1}}}",
         "message.date is not a unix time"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"text\":5}}",
         "message.text is not a string"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"photo\":[]}}",
         "message.photo is empty"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"photo\":[{\"width\":1}]}}",
         "file_id missing"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"document\":{\"file_id\":\"a\",\"file_size\":-1}}}",
         "message.document.file_size is negative"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"location\":{\"latitude\":91,\"longitude\":0}}}",
         "message.location is not on Earth"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"contact\":{\"first_name\":\"a\"}}}",
         "message.contact.phone_number missing"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"text\":\"hi\",\"reply_to_message\":{\"chat\":{\"id\":1}}}}",
         "message.reply_to_message.message_id missing"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"text\":\"a\\u0000b\"}}",
         "not JSON"},
        {"{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1},"
         "\"text\":\"\xff\xfe\"}}",
         "not JSON"},
    };
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        ingest_result_t r;
        int rc = s_call (&inbox, "POST", "application/json", SECRET, bodies[i][0],
                         strlen (bodies[i][0]), &r);
        rt_test_channel_fails (rc, &r, 400, "malformed", bodies[i][1]);
    }
}

static void
test_hostile_bodies (void **state)
{
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    ingest_result_t r;
    size_t n = 200000, i;
    char *deep = malloc (n * 2 + 1);
    (void)state;
    /* Nesting far past any parser's stack: refused, not recursed into. */
    for (i = 0; i < n; i++) {
        deep[i] = '[';
        deep[n + i] = ']';
    }
    rt_test_channel_fails (s_call (&inbox, "POST", "application/json", SECRET, deep, 2 * n, &r), &r,
                           400, "malformed", "not JSON");
    /* A huge photo array of tiny sizes: linear, and the largest wins. */
    {
        size_t cap = 64 + 40 * 50000, o = 0;
        char *big = malloc (cap);
        o += (size_t)snprintf (big + o, cap - o,
                               "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,"
                               "\"chat\":{\"id\":1},\"photo\":[");
        for (i = 0; i < 50000; i++)
            o += (size_t)snprintf (big + o, cap - o, "%s{\"file_id\":\"p%zu\",\"width\":%zu}",
                                   i ? "," : "", i, i % 1000);
        o += (size_t)snprintf (big + o, cap - o, "]}}");
        rt_test_channel_inbound (s_call (&inbox, "POST", "application/json", SECRET, big, o, &r),
                                 &r);
        assert_string_equal (
            ((Retain__V1__InboundMessage *)r.items[0].msg)->attachments[0]->file_id, "p49999");
        ingest_result_reset (&r);
        free (big);
    }
    free (deep);
}

/* Posts a cut or flipped update with the right token. */
static int
s_post (void *arg, const char *body, size_t len, ingest_result_t *result)
{
    return s_call (arg, "POST", "application/json", SECRET, body, len, result);
}

/* Every prefix and many single-byte corruptions of real updates: each is
 * answered 200 or 400, never a crash or a leak. */
static void
test_truncations_and_flips (void **state)
{
    static const char *const names[] = {"text.json", "photo_caption.json", "contact.json",
                                        "venue.json", "reply.json"};
    ingest_inbox_t inbox = rt_test_channel_inbox (&s_ch, SECRET, "");
    (void)state;
    rt_test_channel_sweep (s_ch.fixtures, names, sizeof names / sizeof names[0], s_post, &inbox,
                           false);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_text),
        cmocka_unit_test (test_retry_same_id),
        cmocka_unit_test (test_edit_is_distinct),
        cmocka_unit_test (test_edit_without_edit_date),
        cmocka_unit_test (test_photo_caption),
        cmocka_unit_test (test_reply),
        cmocka_unit_test (test_own_contact_gives_phone),
        cmocka_unit_test (test_other_contact_is_not_the_sender),
        cmocka_unit_test (test_location),
        cmocka_unit_test (test_venue_is_one_location),
        cmocka_unit_test (test_document),
        cmocka_unit_test (test_voice),
        cmocka_unit_test (test_sticker),
        cmocka_unit_test (test_animation_is_one_attachment),
        cmocka_unit_test (test_channel_post),
        cmocka_unit_test (test_nothing_to_keep),
        cmocka_unit_test (test_missing_token),
        cmocka_unit_test (test_wrong_token),
        cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_empty_secret_never_matches),
        cmocka_unit_test (test_method_and_content_type),
        cmocka_unit_test (test_malformed),
        cmocka_unit_test (test_wrong_types_inside),
        cmocka_unit_test (test_hostile_bodies),
        cmocka_unit_test (test_truncations_and_flips),
    };
    return cmocka_run_group_tests (tests, rt_test_channel_setup, rt_test_channel_teardown);
}
