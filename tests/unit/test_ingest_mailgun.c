/*
 * test_ingest_mailgun: mailgun_handle (services/ingest/channels/mailgun.c)
 * and its multipart parser (formdata.c) on the fixtures of
 * tests/fixtures/ingest/mailgun, inbound route posts in the shape of
 * Mailgun's documentation, urlencoded and multipart (CRLF, bare LF, cut
 * short). The fixtures are signed requests: their signature fields were
 * written outside retain, by tests/fixtures/ingest/mailgun/sign.js with
 * Node's crypto (hex HMAC-SHA256 of timestamp + token under the signing
 * key), so retain's check is held to a third party's HMAC; no signature
 * here is computed with retain's code. The request's clock is set near the
 * fixtures' timestamp.
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
#include "channels/formdata.h"
#include "rt_crypto.h"
#include "rt_form.h"

#define KEY        "test-signing-key"
#define TS         "1700000000"
#define TS_MS      1700000000000LL
#define TOKEN      "8b3a5c1e9f0d4a7b6c2e1f0a9d8c7b6a5e4d3c2b1a0f9e8d7c"
#define BOUNDARY   "7f1f0a6a2f0b4c9e8d3b2a1c0f9e8d7c"
#define MULTIPART  "multipart/form-data; boundary=" BOUNDARY
#define URLENCODED "application/x-www-form-urlencoded"

/* The handler under test, and where its requests come from: near the
 * fixtures' timestamp. */
static const rt_test_channel_t s_ch = {.fixtures = "mailgun",
                                       .handler = mailgun_handle,
                                       .inbox = "support",
                                       .channel = RETAIN__V1__CHANNEL__EMAIL,
                                       .path = "/hooks/mailgun/support",
                                       .public_url =
                                           "https://hooks.example.com/hooks/mailgun/support",
                                       .now_ms = TS_MS + 5000};

static char *
s_fixture (const char *name, size_t *len)
{
    return rt_test_channel_fixture (s_ch.fixtures, name, len);
}

/* Replaces the first `from` in data (binary, len bytes) by `to`. */
static char *
s_replace (const char *data, size_t len, const char *from, const char *to, size_t *out_len)
{
    const char *hit = memmem (data, len, from, strlen (from));
    size_t head, fl = strlen (from), tl = strlen (to);
    char *out;
    if (!hit) {
        out = malloc (len + 1);
        memcpy (out, data, len + 1);
        *out_len = len;
        return out;
    }
    head = (size_t)(hit - data);
    out = malloc (len - fl + tl + 1);
    assert_non_null (out);
    memcpy (out, data, head);
    memcpy (out + head, to, tl);
    memcpy (out + head + tl, hit + fl, len - head - fl);
    out[len - fl + tl] = '\0';
    *out_len = len - fl + tl;
    return out;
}

/* The signature sign.js wrote into the fixtures (all share one timestamp
 * and token), into out (65 bytes). */
static void
s_stored_signature (char *out)
{
    size_t len;
    char *raw = s_fixture ("urlencoded.form", &len), err[128];
    rt_form_t *form = rt_form_parse (raw, len, err, sizeof err);
    const char *sig;
    assert_non_null (form);
    sig = rt_form_get (form, "signature");
    assert_non_null (sig);
    assert_int_equal (strlen (sig), 2 * RT_SHA256_LEN);
    memcpy (out, sig, 2 * RT_SHA256_LEN + 1);
    rt_form_destroy (&form);
    free (raw);
}

/* The signature of the fixtures' timestamp and token under an empty key
 * (sign.js, empty_key.sig), into out (65 bytes). */
static void
s_empty_key_signature (char *out)
{
    size_t len;
    char *sig = rt_test_channel_fixture_line (s_ch.fixtures, "empty_key.sig", &len);
    assert_int_equal (len, 2 * RT_SHA256_LEN);
    memcpy (out, sig, len + 1);
    free (sig);
}

/* A request to the inbox "support", its tokens remembered. */
static void
s_init (rt_test_channel_call_t *c)
{
    rt_test_channel_call_init (c, &s_ch, KEY);
    c->req.replay_check = rt_test_channel_replay_check;
    c->req.replay_arg = &c->guard;
}

/* Posts a fixture as it is signed, or with its signature replaced by
 * `sig` (NULL: kept), and, when tamper_ts is set, the timestamp changed
 * after signing. */
static int
s_post_with (rt_test_channel_call_t *c, const char *fixture, const char *ctype, const char *sig,
             const char *tamper_ts)
{
    char stored[2 * RT_SHA256_LEN + 1];
    size_t len, len2;
    char *raw = s_fixture (fixture, &len), *signed_body;
    s_stored_signature (stored);
    int rc;
    signed_body = s_replace (raw, len, stored, sig ? sig : stored, &len2);
    free (raw);
    if (tamper_ts) {
        char *tampered = s_replace (signed_body, len2, TS, tamper_ts, &len2);
        free (signed_body);
        signed_body = tampered;
    }
    rc = rt_test_channel_call_post (c, signed_body, len2, ctype, NULL, NULL);
    free (signed_body);
    return rc;
}

/* Posts a fixture exactly as it is stored. */
static int
s_post (rt_test_channel_call_t *c, const char *fixture, const char *ctype)
{
    return s_post_with (c, fixture, ctype, NULL, NULL);
}

/* What every form of the fixture mail must give. */
static void
s_check_mail (rt_test_channel_call_t *c, Retain__V1__InboundMessage *m, const char *nl)
{
    char text[256];
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__EMAIL);
    assert_string_equal (m->inbox, "support");
    assert_string_equal (m->external_id, "CAF=kq8+reply-1042@mail.gmail.com");
    assert_string_equal (c->result.items[0].external_id, "CAF=kq8+reply-1042@mail.gmail.com");
    assert_string_equal (m->external_user_id, "Anna.Petrova@example.com");
    assert_string_equal (m->email, "Anna.Petrova@example.com");
    assert_string_equal (m->display_name, "Petrova, Anna");
    assert_string_equal (m->subject, "Re: Заказ #1042 задерживается");
    snprintf (text, sizeof text, "Здравствуйте!%sПосылка так и не пришла. Когда ждать?", nl);
    assert_string_equal (m->text, text);
    assert_string_equal (m->reply_to, "order-1042-shipped@shop.example.com");
    assert_string_equal (m->thread_id, "order-1042@shop.example.com");
    /* Date: Tue, 14 Nov 2023 23:13:10 +0100 */
    assert_int_equal (m->sent_at, 1699999990000LL);
    assert_string_equal (c->result.items[0].key, "email:support:Anna.Petrova@example.com");
}

static void
test_urlencoded (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c);
    assert_int_equal (s_post (&c, "urlencoded.form", URLENCODED), 0);
    m = rt_test_channel_call_inbound (&c);
    s_check_mail (&c, m, "\r\n");
    assert_int_equal (m->n_attachments, 0);
    assert_int_equal (c.guard.calls, 1);
    /* Remembered until the timestamp would be stale anyway. */
    assert_int_equal (c.guard.last_expires, TS_MS + 300000);
    rt_test_channel_call_done (&c);
}

static void
s_check_attachments (Retain__V1__InboundMessage *m, size_t png_size)
{
    assert_int_equal (m->n_attachments, 2);
    assert_string_equal (m->attachments[0]->kind, "document");
    assert_string_equal (m->attachments[0]->name, "receipt.pdf");
    assert_string_equal (m->attachments[0]->mime_type, "application/pdf");
    assert_int_equal (m->attachments[0]->size, 171);
    assert_string_equal (m->attachments[1]->kind, "image");
    assert_string_equal (m->attachments[1]->name, "фото посылки.png");
    assert_string_equal (m->attachments[1]->mime_type, "image/png");
    assert_int_equal (m->attachments[1]->size, png_size);
}

static void
test_multipart (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c);
    assert_int_equal (s_post (&c, "multipart.txt", MULTIPART), 0);
    m = rt_test_channel_call_inbound (&c);
    s_check_mail (&c, m, "\r\n");
    s_check_attachments (m, 33);

    /* Bare LF line ends, and a quoted boundary parameter. */
    c.req.replay_check = NULL;
    assert_int_equal (s_post (&c, "multipart_lf.txt",
                              "Multipart/Form-Data; charset=utf-8; boundary=\"" BOUNDARY "\""),
                      0);
    m = rt_test_channel_call_inbound (&c);
    s_check_mail (&c, m, "\n");
    s_check_attachments (m, 33);
    rt_test_channel_call_done (&c);
}

/* A body cut off inside the second file keeps the mail and what arrived of
 * the file. */
static void
test_multipart_truncated (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c);
    assert_int_equal (s_post (&c, "multipart_truncated.txt", MULTIPART), 0);
    m = rt_test_channel_call_inbound (&c);
    s_check_mail (&c, m, "\r\n");
    s_check_attachments (m, 23);
    rt_test_channel_call_done (&c);
}

static void
test_no_message_id (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    char first[128];
    (void)state;
    s_init (&c);
    c.req.replay_check = NULL;
    assert_int_equal (s_post (&c, "no_message_id.form", URLENCODED), 0);
    m = rt_test_channel_call_inbound (&c);
    assert_int_equal (strncmp (m->external_id, "sha256:", 7), 0);
    assert_int_equal (strlen (m->external_id), 7 + 64);
    assert_string_equal (m->thread_id, m->external_id);
    assert_string_equal (m->external_user_id, "bob@example.org");
    assert_string_equal (m->display_name, "Bob Smith");
    assert_string_equal (m->text, "Do you ship to Canada?\n"); /* stripped-text empty */
    assert_string_equal (m->reply_to, "");
    assert_int_equal (m->sent_at, 1699999990000LL);
    snprintf (first, sizeof first, "%s", m->external_id);
    /* Mailgun's retry of the same mail gets the same id. */
    assert_int_equal (s_post (&c, "no_message_id.form", URLENCODED), 0);
    assert_string_equal (rt_test_channel_call_inbound (&c)->external_id, first);
    rt_test_channel_call_done (&c);
}

static void
test_signature_refusals (void **state)
{
    rt_test_channel_call_t c;
    char empty_key[2 * RT_SHA256_LEN + 1];
    (void)state;
    s_init (&c);
    rt_test_channel_call_refused (&c, s_post (&c, "unsigned.form", URLENCODED), 401,
                                  "missing_signature");
    /* No hex signature at all. */
    rt_test_channel_call_refused (
        &c, s_post_with (&c, "urlencoded.form", URLENCODED, "SIGNATURE_PLACEHOLDER", NULL), 403,
        "bad_signature");
    /* Signed, then given another timestamp. */
    rt_test_channel_call_refused (
        &c, s_post_with (&c, "urlencoded.form", URLENCODED, NULL, "1700000001"), 403,
        "bad_signature");
    /* Signed with another inbox's key. */
    c.inbox.secret = "another-key";
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", URLENCODED), 403,
                                  "bad_signature");
    rt_test_channel_call_refused (&c, s_post (&c, "multipart.txt", MULTIPART), 403,
                                  "bad_signature");
    /* An inbox without a key accepts nothing, not even the empty key's. */
    c.inbox.secret = "";
    s_empty_key_signature (empty_key);
    rt_test_channel_call_refused (
        &c, s_post_with (&c, "urlencoded.form", URLENCODED, empty_key, NULL), 403, "bad_signature");
    /* None of these spent the token. */
    assert_int_equal (c.guard.calls, 0);
    rt_test_channel_call_done (&c);
}

static void
test_rotation (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c);
    c.req.replay_check = NULL;
    /* The fixtures' key, first as the previous one, then as the new. */
    c.inbox.secret = "rotated-key";
    c.inbox.previous_secret = KEY;
    assert_int_equal (s_post (&c, "urlencoded.form", URLENCODED), 0);
    assert_int_equal (c.result.count, 1);
    c.inbox.secret = KEY;
    c.inbox.previous_secret = "older-key";
    assert_int_equal (s_post (&c, "urlencoded.form", URLENCODED), 0);
    assert_int_equal (c.result.count, 1);
    c.inbox.secret = "rotated-key";
    c.inbox.previous_secret = "";
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", URLENCODED), 403,
                                  "bad_signature");
    rt_test_channel_call_done (&c);
}

static void
test_stale_and_replayed (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c);
    c.req.now_ms = TS_MS + 301000;
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", URLENCODED), 403, "stale");
    c.req.now_ms = TS_MS - 61000;
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", URLENCODED), 403, "stale");
    assert_int_equal (c.guard.calls, 0);

    /* A longer max_age accepts the same age. */
    json_object_set_new (c.config, "max_age", json_integer (600));
    c.req.now_ms = TS_MS + 301000;
    assert_int_equal (s_post (&c, "urlencoded.form", URLENCODED), 0);
    assert_int_equal (c.guard.last_expires, TS_MS + 600000);
    /* The same token again: replayed, whatever the body says. */
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", URLENCODED), 403, "replayed");
    rt_test_channel_call_refused (&c, s_post (&c, "multipart.txt", MULTIPART), 403, "replayed");
    assert_int_equal (c.guard.calls, 3);
    /* Without a guard the handler cannot tell, and takes it. */
    c.req.replay_check = NULL;
    assert_int_equal (s_post (&c, "urlencoded.form", URLENCODED), 0);
    rt_test_channel_call_done (&c);
}

static void
test_bad_input (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c);
    c.req.method = "GET";
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", URLENCODED), 405,
                                  "method_not_allowed");
    c.req.method = "POST";
    rt_test_channel_call_refused (&c, s_post (&c, "urlencoded.form", "application/json"), 415,
                                  "unsupported_media_type");
    c.headers[0].name = "X-None";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 415, "unsupported_media_type");
    rt_test_channel_call_refused (&c, s_post (&c, "malformed.form", URLENCODED), 400, "malformed");
    rt_test_channel_call_refused (&c, s_post (&c, "multipart.txt", "multipart/form-data"), 400,
                                  "malformed");
    assert_non_null (strstr (c.result.reason, "boundary"));
    rt_test_channel_call_refused (
        &c, s_post (&c, "multipart.txt", "multipart/form-data; boundary=nothere"), 400,
        "malformed");
    /* A multipart body labelled urlencoded: its '%' escapes are broken. */
    rt_test_channel_call_refused (&c, s_post (&c, "multipart.txt", URLENCODED), 400, "malformed");
    /* A well-formed multipart form without Mailgun's signature fields. */
    {
        static const char unsigned_mp[] = "--x\r\nContent-Disposition: form-data; name=\"from\"\r\n"
                                          "\r\nbob@example.org\r\n--x--\r\n";
        c.headers[0].value = "multipart/form-data; boundary=x";
        c.req.body = (const uint8_t *)unsigned_mp;
        c.req.body_len = sizeof unsigned_mp - 1;
        rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 401, "missing_signature");
    }
    rt_test_channel_call_refused (&c, s_post (&c, "no_sender.form", URLENCODED), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "address"));
    assert_int_equal (c.guard.calls, 0);
    rt_test_channel_call_done (&c);
}

/* Mailgun's decoded fields win over raw headers of the same name in
 * another case; a header spelt differently is still found. */
static void
test_field_names (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    char sig[2 * RT_SHA256_LEN + 1], *body = NULL;
    (void)state;
    s_init (&c);
    s_stored_signature (sig);
    assert_true (
        asprintf (&body,
                  "Subject=%%3D%%3FUTF-8%%3FB%%3F0J%%2FRgNC40LLQtdGC%%3F%%3D&"
                  "From=%%3D%%3FUTF-8%%3FB%%3F0JDQvdC90LA%%3D%%3F%%3D+%%3Canna%%40x.org%%3E&"
                  "Message-ID=%%3CUPPER%%40x.org%%3E&subject=%%D0%%9F%%D1%%80%%D0%%B8%%D0%%"
                  "B2%%D0%%B5%%D1%%82&from=%%D0%%90%%D0%%BD%%D0%%BD%%D0%%B0+%%3Canna%%40x."
                  "org%%3E&body-plain=hi&timestamp=%s&token=%s&signature=%s",
                  TS, TOKEN, sig) > 0);
    assert_int_equal (rt_test_channel_call_post (&c, body, strlen (body), URLENCODED, NULL, NULL),
                      0);
    m = rt_test_channel_call_inbound (&c);
    assert_string_equal (m->subject, "Привет");
    assert_string_equal (m->display_name, "Анна");
    assert_string_equal (m->external_user_id, "anna@x.org");
    assert_string_equal (m->external_id, "UPPER@x.org");
    free (body);
    rt_test_channel_call_done (&c);
}

/* --- formdata on its own --------------------------------------------- */

static void
test_formdata (void **state)
{
    static const char body[] = "preamble to ignore\r\n"
                               "--b\r\n"
                               "Content-Disposition: form-data; name=\"a\"\r\n"
                               "\r\n"
                               "one\r\n--bb not a delimiter\r\n--b- nor this\r\n"
                               "--b \t\r\n"
                               "content-disposition: form-data; name=f; "
                               "filename=\"C:\\dir\\x.txt\"; filename*=UTF-8''%E2%82%AC.txt\r\n"
                               "Content-Type: Text/Plain; charset=utf-8\r\n"
                               "\r\n"
                               "\r\n"
                               "--b\r\n"
                               "Content-Disposition: form-data\r\n"
                               "\r\n"
                               "nameless\r\n"
                               "--b--\r\n"
                               "epilogue";
    char err[128];
    formdata_t *fd = formdata_parse ("multipart/form-data; boundary=b", (const uint8_t *)body,
                                     sizeof body - 1, err, sizeof err);
    const formdata_part_t *p;
    char *clean;
    (void)state;
    assert_non_null (fd);
    assert_int_equal (formdata_count (fd), 2);
    p = formdata_part (fd, 0);
    assert_string_equal (p->name, "a");
    assert_null (p->filename);
    assert_int_equal (p->len, strlen ("one\r\n--bb not a delimiter\r\n--b- nor this"));
    assert_memory_equal (p->data, "one\r\n--bb", 9);
    p = formdata_part (fd, 1);
    assert_string_equal (p->name, "f");
    assert_string_equal (p->filename, "€.txt");
    assert_string_equal (p->content_type, "text/plain");
    assert_int_equal (p->len, 0);
    /* The nameless part is dropped and noted. */
    assert_true (formdata_damaged (fd));
    formdata_destroy (&fd);
    assert_null (fd);

    /* Headers that never end keep the parts before them. */
    {
        static const char cut[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                                  "--b\r\nContent-Disposition: form-data; name=\"b\"";
        fd = formdata_parse ("multipart/form-data; boundary=b", (const uint8_t *)cut,
                             sizeof cut - 1, err, sizeof err);
        assert_non_null (fd);
        assert_int_equal (formdata_count (fd), 1);
        assert_true (formdata_damaged (fd));
        assert_true (strlen (formdata_note (fd)) > 0);
        formdata_destroy (&fd);
    }
    assert_null (formdata_parse ("multipart/form-data", (const uint8_t *)"x", 1, err, sizeof err));
    assert_null (formdata_parse ("multipart/form-data; boundary=", (const uint8_t *)"x", 1, err,
                                 sizeof err));
    assert_null (
        formdata_parse ("text/plain; boundary=b", (const uint8_t *)"--b\r\n", 5, err, sizeof err));

    /* Form values become valid UTF-8. */
    clean = formdata_utf8_dup ("ok \xC3\xA9 \xC3 \xED\xA0\x80 \xF0\x9F\x98\x80 \x00z", 19);
    assert_string_equal (clean, "ok \xC3\xA9 \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                                "\xF0\x9F\x98\x80 \xEF\xBF\xBDz");
    free (clean);
    assert_true (formdata_is_type ("Application/JSON ; charset=utf-8", "application/json"));
    assert_false (formdata_is_type ("application/jsonx", "application/json"));
    assert_false (formdata_is_type (NULL, "application/json"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_urlencoded),          cmocka_unit_test (test_multipart),
        cmocka_unit_test (test_multipart_truncated), cmocka_unit_test (test_no_message_id),
        cmocka_unit_test (test_signature_refusals),  cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_stale_and_replayed),  cmocka_unit_test (test_bad_input),
        cmocka_unit_test (test_field_names),         cmocka_unit_test (test_formdata),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
