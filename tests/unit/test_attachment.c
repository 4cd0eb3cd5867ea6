/*
 * test_attachment: common/channel/rt_attachment, what an outbound
 * attachment may be, as the operator API and notifyd both check it.
 *
 * What an operator notices: a photo or a document at an https address is
 * taken, anything else is refused naming the field that is wrong (a kind
 * retain does not send, a URL in the clear, without a host, too long or
 * with a space, a name or a type that is not one line of text); where a
 * channel sends no media the customer gets the text with each link on a
 * line of its own, and the channel table says which channels send media;
 * the record kept of an attachment names what was given and nothing more.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rt_attachment.h"
#include "rt_channel.h"

/* Refused, with err beginning with `field`. */
static void
s_refused (const char *kind, const char *url, const char *name, const char *mime, const char *field)
{
    char err[256] = "";
    if (rt_attachment_check (kind, url, name, mime, err, sizeof err) == 0)
        fail_msg ("taken: kind=%s url=%.60s", kind ? kind : "(null)", url ? url : "(null)");
    if (strncmp (err, field, strlen (field)) != 0)
        fail_msg ("refused with \"%s\", not naming %s first", err, field);
}

static void
test_taken (void **state)
{
    char err[256] = "";
    (void)state;
    assert_int_equal (
        rt_attachment_check ("image", "https://shop.example/p/7.jpg", NULL, NULL, err, sizeof err),
        0);
    assert_int_equal (rt_attachment_check ("document", "HTTPS://cdn.example/a/INV-2041.pdf?v=2",
                                           "Рахунок 2041.pdf", "application/pdf", err, sizeof err),
                      0);
    assert_int_equal (rt_attachment_check ("image", "https://a.example/x", "", "", err, sizeof err),
                      0);
}

static void
test_refused (void **state)
{
    char *url = malloc (RT_ATTACHMENT_URL_MAX + 2);
    char name[RT_ATTACHMENT_NAME_MAX + 2];
    (void)state;
    s_refused ("video", "https://shop.example/v.mp4", NULL, NULL, "kind");
    s_refused (NULL, "https://shop.example/v.mp4", NULL, NULL, "kind");
    s_refused ("image", NULL, NULL, NULL, "url");
    s_refused ("image", "", NULL, NULL, "url");
    s_refused ("image", "http://shop.example/p.jpg", NULL, NULL, "url");
    s_refused ("image", "ftp://shop.example/p.jpg", NULL, NULL, "url");
    s_refused ("image", "https://", NULL, NULL, "url");
    s_refused ("image", "https:///p.jpg", NULL, NULL, "url");
    s_refused ("image", "https://shop.example/a b.jpg", NULL, NULL, "url");
    s_refused ("image", "https://shop.example/\n.jpg", NULL, NULL, "url");
    s_refused ("image", "https://shop.example/\xff.jpg", NULL, NULL, "url");
    /* 2048 bytes pass, 2049 do not. */
    memcpy (url, "https://shop.example/", 21);
    memset (url + 21, 'a', RT_ATTACHMENT_URL_MAX - 21);
    url[RT_ATTACHMENT_URL_MAX] = '\0';
    {
        char err[256];
        assert_int_equal (rt_attachment_check ("image", url, NULL, NULL, err, sizeof err), 0);
    }
    url[RT_ATTACHMENT_URL_MAX] = 'a';
    url[RT_ATTACHMENT_URL_MAX + 1] = '\0';
    s_refused ("image", url, NULL, NULL, "url");
    free (url);
    memset (name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    s_refused ("document", "https://shop.example/a.pdf", name, NULL, "name");
    s_refused ("document", "https://shop.example/a.pdf", "a\r\nb.pdf", NULL, "name");
    s_refused ("document", "https://shop.example/a.pdf", NULL, "application/\x01pdf", "mime_type");
}

static void
test_links (void **state)
{
    const char *urls[] = {"https://shop.example/p/7.jpg", "https://shop.example/i/2041.pdf"};
    char *t;
    (void)state;
    t = rt_attachment_text ("Ось фото і рахунок", urls, 2);
    assert_string_equal (t, "Ось фото і рахунок\nhttps://shop.example/p/7.jpg\n"
                            "https://shop.example/i/2041.pdf");
    free (t);
    t = rt_attachment_text ("", urls, 1);
    assert_string_equal (t, "https://shop.example/p/7.jpg");
    free (t);
    t = rt_attachment_text (NULL, urls, 2);
    assert_string_equal (t, "https://shop.example/p/7.jpg\nhttps://shop.example/i/2041.pdf");
    free (t);
    t = rt_attachment_text ("only text", NULL, 0);
    assert_string_equal (t, "only text");
    free (t);
}

/* What a timeline entry and notify.sends keep of an attachment. */
static void
test_record (void **state)
{
    json_t *o;
    char *text;
    (void)state;
    o = rt_attachment_json ("document", "https://shop.example/i/2041.pdf", "Рахунок.pdf",
                            "application/pdf");
    text = json_dumps (o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal (text, "{\"kind\":\"document\",\"mime_type\":\"application/pdf\","
                               "\"name\":\"Рахунок.pdf\",\"url\":\"https://shop.example/i/"
                               "2041.pdf\"}");
    free (text);
    json_decref (o);
    o = rt_attachment_json ("image", "https://shop.example/p.jpg", "", NULL);
    text = json_dumps (o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal (text, "{\"kind\":\"image\",\"url\":\"https://shop.example/p.jpg\"}");
    free (text);
    json_decref (o);
}

/* Telegram sends media, with its 1024-character captions; the others take
 * links in the text for now. */
static void
test_which_channels_send_media (void **state)
{
    (void)state;
    assert_int_equal (rt_channel_by_value (RETAIN__V1__CHANNEL__TELEGRAM)->caption_max, 1024);
    for (size_t i = 0; i < rt_channel_count (); i++) {
        const rt_channel_t *ch = rt_channel_at (i);
        if (ch->value != RETAIN__V1__CHANNEL__TELEGRAM)
            assert_int_equal (ch->caption_max, 0);
        assert_true (ch->caption_max <= ch->text_max || ch->text_max == 0);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_taken),
        cmocka_unit_test (test_refused),
        cmocka_unit_test (test_links),
        cmocka_unit_test (test_record),
        cmocka_unit_test (test_which_channels_send_media),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
