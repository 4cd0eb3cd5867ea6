/*
 * test_ingest_meta: meta_handle (services/ingest/channels/meta.c) on the
 * fixtures of tests/fixtures/ingest/meta, payloads in the shapes of Meta's
 * documentation for Messenger, Instagram and WhatsApp Cloud. Every fixture
 * is posted with the X-Hub-Signature-256 stored beside it (<name>.sig),
 * made outside retain by tests/fixtures/ingest/meta/sign.js with Node's
 * crypto, so retain's check is held to a third party's HMAC; only the body
 * test_too_many_items makes up is signed with rt_crypto. Leaks, including
 * on the refusal paths, are caught by AddressSanitizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_crypto.h"
#include "rt_test_channel.h"

#define SECRET       "test-app-secret"
#define VERIFY_TOKEN "meatyhamhock"
#define NOW_MS       1750000000000LL

/* The handler under test, and where its requests come from. */
static const rt_test_channel_t s_ch = {.fixtures = "meta",
                                       .handler = meta_handle,
                                       .inbox = "shop",
                                       .channel = RETAIN__V1__CHANNEL__MESSENGER,
                                       .path = "/hooks/meta/shop",
                                       .public_url = "https://hooks.example.com/hooks/meta/shop",
                                       .now_ms = NOW_MS};

/* The X-Hub-Signature-256 sign.js stored in sigfile, into out. */
static void
s_stored_sig (char *out, const char *sigfile)
{
    size_t len;
    char *sig = rt_test_channel_fixture_line (s_ch.fixtures, sigfile, &len);
    assert_int_equal (len, 7 + 2 * RT_SHA256_LEN);
    memcpy (out, sig, len + 1);
    free (sig);
}

/* A request to the inbox "shop" of channel. */
static void
s_init (rt_test_channel_call_t *c, Retain__V1__Channel channel)
{
    rt_test_channel_call_init (c, &s_ch, SECRET);
    c->inbox.channel = channel;
    json_object_set_new (c->config, "verify_token", json_string (VERIFY_TOKEN));
}

/* POSTs body with X-Hub-Signature-256 `sig` (NULL: unsigned). */
static int
s_post_body (rt_test_channel_call_t *c, const char *body, size_t len, const char *sig)
{
    return rt_test_channel_call_post (c, body, len, "application/json",
                                      sig ? "X-Hub-Signature-256" : NULL, sig);
}

/* POSTs a fixture with the signature `sigfile` holds (NULL: unsigned). */
static int
s_post_as (rt_test_channel_call_t *c, const char *fixture, const char *sigfile)
{
    size_t len;
    char sig[RT_TEST_CHANNEL_SIG_LEN];
    char *body = rt_test_channel_fixture (s_ch.fixtures, fixture, &len);
    int rc;
    if (sigfile)
        s_stored_sig (sig, sigfile);
    rc = s_post_body (c, body, len, sigfile ? sig : NULL);
    free (body);
    return rc;
}

/* POSTs a fixture signed as sign.js signed it (<fixture>.sig). */
static int
s_post (rt_test_channel_call_t *c, const char *fixture)
{
    char sigfile[256];
    snprintf (sigfile, sizeof sigfile, "%s.sig", fixture);
    return s_post_as (c, fixture, sigfile);
}

static Retain__V1__InboundMessage *
s_inbound (rt_test_channel_call_t *c, size_t i)
{
    return (Retain__V1__InboundMessage *)rt_test_channel_item (&c->result, i, "InboundMessage");
}

static Retain__V1__MessageDelivered *
s_delivered (rt_test_channel_call_t *c, size_t i)
{
    return (Retain__V1__MessageDelivered *)rt_test_channel_item (&c->result, i, "MessageDelivered");
}

static Retain__V1__MessageFailed *
s_failed (rt_test_channel_call_t *c, size_t i)
{
    return (Retain__V1__MessageFailed *)rt_test_channel_item (&c->result, i, "MessageFailed");
}

/* --- the handshake -------------------------------------------------- */

static int
s_get (rt_test_channel_call_t *c, const char *query)
{
    c->req.method = "GET";
    c->req.query = query;
    c->req.nheaders = 0;
    c->req.body = NULL;
    c->req.body_len = 0;
    return rt_test_channel_call_run (c);
}

static void
test_handshake (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_int_equal (
        s_get (&c, "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"), 0);
    assert_int_equal (c.result.status, 0);
    assert_string_equal (c.result.response, "1158201444");
    assert_string_equal (c.result.response_type, "text/plain");
    assert_int_equal (c.result.count, 0);

    rt_test_channel_call_refused (
        &c, s_get (&c, "hub.mode=subscribe&hub.challenge=1&hub.verify_token=meatyhamhoc"), 403,
        "verify_failed");
    rt_test_channel_call_refused (&c, s_get (&c, "hub.mode=subscribe&hub.challenge=1"), 403,
                                  "verify_failed");
    rt_test_channel_call_refused (
        &c, s_get (&c, "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=meatyhamhock"), 403,
        "verify_failed");
    rt_test_channel_call_refused (
        &c, s_get (&c, "hub.mode=subscribe&hub.verify_token=meatyhamhock"), 400, "malformed");
    rt_test_channel_call_refused (
        &c,
        s_get (&c, "hub.mode=subscribe&hub.challenge=%3Cscript%3E+x&hub.verify_token=meatyhamhock"),
        400, "malformed");
    rt_test_channel_call_refused (&c, s_get (&c, "hub.mode=subscribe&hub.challenge=%ZZ"), 400,
                                  "malformed");
    /* An inbox without a verify token refuses every handshake. */
    json_object_del (c.config, "verify_token");
    rt_test_channel_call_refused (
        &c, s_get (&c, "hub.mode=subscribe&hub.challenge=1&hub.verify_token="), 403,
        "verify_failed");
    rt_test_channel_call_done (&c);
}

/* --- Messenger and Instagram ----------------------------------------- */

static void
test_messenger_text (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    assert_int_equal (s_post (&c, "messenger_text.json"), 0);
    assert_int_equal (c.result.count, 1);
    m = s_inbound (&c, 0);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__MESSENGER);
    assert_string_equal (m->inbox, "shop");
    assert_string_equal (m->external_id, "m_1457764197618:41d102a3e1ae206a38");
    assert_string_equal (c.result.items[0].external_id, "m_1457764197618:41d102a3e1ae206a38");
    assert_string_equal (m->external_user_id, "6945781675536277");
    assert_string_equal (m->text, "hello, world!");
    assert_int_equal (m->sent_at, 1458692752478LL);
    assert_string_equal (c.result.items[0].key, "messenger:shop:6945781675536277");
    assert_null (m->origin); /* a plain direct message */
    rt_test_channel_call_done (&c);
}

static void
test_messenger_batch (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    Retain__V1__MessageDelivered *d;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    assert_int_equal (s_post (&c, "messenger_batch.json"), 0);
    /* 2 messages (the echo skipped), 2 delivered mids, 1 read watermark,
     * 1 postback (the reaction skipped), 1 standby message. */
    assert_int_equal (c.result.count, 7);

    m = s_inbound (&c, 0);
    assert_string_equal (m->text, "Is my parcel late? Привет 👋");
    assert_string_equal (m->reply_to, "m_ourQuestionAboutTheOrder");

    m = s_inbound (&c, 1);
    assert_string_equal (m->external_id, "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c");
    assert_string_equal (m->text, "");
    assert_int_equal (m->n_attachments, 5);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[0]->url,
                         "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg");
    assert_string_equal (m->attachments[1]->kind, "document");
    assert_string_equal (m->attachments[1]->url, "https://cdn.fbsbx.com/v/t59.2708-21/receipt.pdf");
    assert_string_equal (m->attachments[2]->kind, "sticker");
    assert_string_equal (m->attachments[3]->kind, "location");
    assert_true (m->attachments[3]->latitude > 55.75 && m->attachments[3]->latitude < 55.76);
    assert_true (m->attachments[3]->longitude > 37.61 && m->attachments[3]->longitude < 37.62);
    assert_string_equal (m->attachments[3]->name, "Pinned Location");
    assert_string_equal (m->attachments[4]->kind, "link");
    assert_string_equal (m->attachments[4]->url, "https://shop.example.com/p/42");
    assert_string_equal (m->attachments[4]->name, "Blue dress");

    d = s_delivered (&c, 2);
    assert_string_equal (d->external_id, "mid.1458668856218:ed81099e15d3f4f233");
    assert_string_equal (c.result.items[2].external_id,
                         "delivered:mid.1458668856218:ed81099e15d3f4f233");
    assert_false (d->read);
    assert_int_equal (d->delivered_at, 1458668856253LL);
    assert_int_equal (d->channel, RETAIN__V1__CHANNEL__MESSENGER);
    assert_string_equal (c.result.items[2].key, "messenger:shop:2290712341093344");
    d = s_delivered (&c, 3);
    assert_string_equal (d->external_id, "mid.1458668856219:ed81099e15d3f4f234");

    /* A read watermark names no message: it covers the user's thread. */
    d = s_delivered (&c, 4);
    assert_true (d->read);
    assert_string_equal (d->external_id, "");
    assert_string_equal (c.result.items[4].external_id, "read:2290712341093344:1458668856253");
    assert_int_equal (d->delivered_at, 1458668856253LL);

    m = s_inbound (&c, 5);
    assert_string_equal (m->external_id, "m_postbackTalkToAgent");
    assert_string_equal (m->text, "Talk to an agent");
    assert_string_equal (m->external_user_id, "2290712341093344");

    m = s_inbound (&c, 6);
    assert_string_equal (m->external_id, "m_standbyWhileAnotherAppOwnsTheThread");
    assert_string_equal (m->text, "anyone there?");
    rt_test_channel_call_done (&c);
}

static void
test_instagram_batch (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    Retain__V1__MessageDelivered *d;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_int_equal (s_post (&c, "instagram_batch.json"), 0);
    /* text, attachments, (echo skipped), read, (deleted skipped) */
    assert_int_equal (c.result.count, 3);
    m = s_inbound (&c, 0);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_string_equal (m->text, "Do you ship to Kazan?");
    assert_string_equal (m->external_user_id, "1254459154682919");
    assert_string_equal (c.result.items[0].key, "instagram:shop:1254459154682919");
    m = s_inbound (&c, 1);
    assert_int_equal (m->n_attachments, 2);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[1]->kind, "video");
    assert_string_equal (m->attachments[1]->url,
                         "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=2");
    d = s_delivered (&c, 2);
    assert_true (d->read);
    assert_string_equal (d->external_id,
                         "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE2");
    assert_string_equal (c.result.items[2].external_id,
                         "read:aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE2");
    rt_test_channel_call_done (&c);
}

/* --- comments and stories -------------------------------------------- */

/* Seven days after created_time (s): the private reply window. */
#define S_WEEK_MS (7LL * 24 * 3600 * 1000)

static void
test_facebook_comments (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    char ext[96];
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    assert_int_equal (s_post (&c, "messenger_feed_comments.json"), 0);
    /* 8 feed changes: the Page's own reply, a reaction and a hidden
     * comment are skipped; two comments, a photo comment, an edit and a
     * removal remain. */
    assert_int_equal (c.result.count, 5);

    m = s_inbound (&c, 0); /* a top-level comment under a post */
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__MESSENGER);
    assert_string_equal (m->external_id, "931122334455667_1200001");
    assert_string_equal (c.result.items[0].external_id, "931122334455667_1200001");
    assert_string_equal (m->external_user_id, "5817384712340011");
    assert_string_equal (c.result.items[0].key, "messenger:shop:5817384712340011");
    assert_string_equal (m->display_name, "Olena Kovalenko");
    assert_string_equal (m->text, "Is this dress available in size M?");
    assert_string_equal (m->event, "message");
    assert_false (m->edited);
    assert_int_equal (m->sent_at, 1750000600000LL);
    assert_string_equal (m->thread_id, "104361112346789_931122334455667");
    assert_string_equal (m->reply_to, ""); /* its parent is the post */
    assert_non_null (m->origin);
    assert_string_equal (m->origin->kind, "comment");
    assert_true (m->origin->public_);
    assert_string_equal (m->origin->comment_id, "931122334455667_1200001");
    assert_string_equal (m->origin->post_id, "104361112346789_931122334455667");
    assert_string_equal (m->origin->parent_id, "");
    assert_string_equal (m->origin->account_id, "104361112346789");
    assert_string_equal (m->origin->permalink,
                         "https://www.facebook.com/104361112346789/posts/931122334455667");
    assert_string_equal (m->origin->media_type, "added_photos");
    assert_int_equal (m->origin->private_reply_until, 1750000600000LL + S_WEEK_MS);

    m = s_inbound (&c, 1); /* a reply in the thread; the Page's reply before it skipped */
    assert_string_equal (m->external_id, "931122334455667_1200003");
    assert_string_equal (m->display_name, "Иван Петров");
    assert_string_equal (m->text, "And in blue? <b>'; DROP TABLE x; --</b>");
    assert_string_equal (m->reply_to, "931122334455667_1200001");
    assert_string_equal (m->origin->parent_id, "931122334455667_1200001");

    m = s_inbound (&c, 2); /* a photo without words */
    assert_string_equal (m->text, "");
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[0]->url,
                         "https://scontent.xx.fbcdn.net/v/t39.1997-6/comment_photo.jpg");

    m = s_inbound (&c, 3); /* the first comment, edited */
    assert_true (m->edited);
    assert_string_equal (m->external_id, "931122334455667_1200001");
    assert_string_equal (m->text, "Is this dress available in size M or L?");
    assert_non_null (strstr (c.result.items[3].external_id, "edited:931122334455667_1200001:"));

    m = s_inbound (&c, 4); /* the reply, removed */
    assert_string_equal (m->event, "deleted");
    assert_string_equal (c.result.items[4].external_id, "deleted:931122334455667_1200003");
    assert_string_equal (m->external_id, "931122334455667_1200003");
    assert_string_equal (m->origin->comment_id, "931122334455667_1200003");
    assert_string_equal (m->text, "");
    assert_int_equal (m->origin->private_reply_until, 0);

    /* The same edit again is the same item; another text another item. */
    snprintf (ext, sizeof ext, "%s", c.result.items[3].external_id);
    assert_int_equal (s_post (&c, "messenger_feed_comments.json"), 0);
    assert_string_equal (c.result.items[3].external_id, ext);
    assert_string_not_equal (c.result.items[3].external_id, c.result.items[0].external_id);

    /* A feed notification is a Page's: an Instagram inbox refuses it. */
    c.inbox.channel = RETAIN__V1__CHANNEL__INSTAGRAM;
    rt_test_channel_call_refused (&c, s_post (&c, "messenger_feed_comments.json"), 400,
                                  "wrong_object");
    rt_test_channel_call_done (&c);
}

static void
test_instagram_comments (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_int_equal (s_post (&c, "instagram_comments.json"), 0);
    /* 6 changes: the account's own reply and two mentions skipped. */
    assert_int_equal (c.result.count, 3);

    m = s_inbound (&c, 0);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_string_equal (m->external_id, "17865799348089039");
    /* The commenter's Instagram-scoped id is the one their DMs carry
     * (instagram_batch.json): one identity, one envelope key. */
    assert_string_equal (m->external_user_id, "1254459154682919");
    assert_string_equal (c.result.items[0].key, "instagram:shop:1254459154682919");
    assert_string_equal (m->display_name, "kazan_shopper");
    assert_string_equal (m->text, "How much is shipping to Kazan?");
    assert_string_equal (m->thread_id, "17887498072083520");
    assert_int_equal (m->sent_at, 1750003000000LL); /* the entry's time, in s */
    assert_string_equal (m->origin->kind, "comment");
    assert_true (m->origin->public_);
    assert_string_equal (m->origin->comment_id, "17865799348089039");
    assert_string_equal (m->origin->post_id, "17887498072083520");
    assert_string_equal (m->origin->media_type, "FEED");
    assert_string_equal (m->origin->account_id, "17841405822304914");
    assert_int_equal (m->origin->private_reply_until, 1750003000000LL + S_WEEK_MS);

    m = s_inbound (&c, 1); /* a reply under a reel, after the skipped echo */
    assert_string_equal (m->external_user_id, "1370011223344556");
    assert_string_equal (m->text, "Same question 🙏");
    assert_string_equal (m->reply_to, "17865799348089039");
    assert_string_equal (m->origin->parent_id, "17865799348089039");
    assert_string_equal (m->origin->media_type, "REELS");

    m = s_inbound (&c, 2); /* a live comment: no private reply after the broadcast */
    assert_string_equal (m->origin->kind, "live_comment");
    assert_int_equal (m->origin->private_reply_until, 0);
    rt_test_channel_call_done (&c);
}

static void
test_instagram_stories (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__INSTAGRAM);
    assert_int_equal (s_post (&c, "instagram_stories.json"), 0);
    assert_int_equal (c.result.count, 2);

    m = s_inbound (&c, 0); /* a reply to the shop's story: a direct message */
    assert_string_equal (m->external_id,
                         "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA1MDAx");
    assert_string_equal (m->external_user_id, "1254459154682919");
    assert_string_equal (m->text, "Is this one still in stock?");
    assert_string_equal (m->reply_to, "");
    assert_string_equal (m->origin->kind, "story_reply");
    assert_false (m->origin->public_);
    assert_string_equal (m->origin->post_id, "17999000111222333");
    assert_string_equal (m->origin->permalink, "https://lookaside.fbsbx.com/ig_messaging_cdn/"
                                               "?asset_id=17999000111&signature=abc");
    assert_string_equal (m->origin->account_id, "17841405822304914");

    m = s_inbound (&c, 1); /* the customer mentioned the shop in their story */
    assert_string_equal (m->origin->kind, "story_mention");
    assert_string_equal (m->origin->permalink, "https://lookaside.fbsbx.com/ig_messaging_cdn/"
                                               "?asset_id=17999000444&signature=def");
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "link");
    assert_string_equal (m->attachments[0]->url, m->origin->permalink);
    rt_test_channel_call_done (&c);
}

/* Comments with what cannot be read: refused whole, or accepted with
 * nothing to keep. */
static void
test_comments_bad_input (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    /* A good comment does not survive one without comment_id. */
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_feed_no_comment_id.json"), 400,
                                  "malformed");
    assert_non_null (strstr (c.result.reason, "entry[0].changes[1].value has no comment_id"));
    /* A field retain does not read (a rating) is answered 200, empty. */
    assert_int_equal (s_post (&c, "page_unknown_field.json"), 0);
    assert_int_equal (c.result.count, 0);
    assert_int_equal (c.result.status, 0);

    c.inbox.channel = RETAIN__V1__CHANNEL__INSTAGRAM;
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_ig_comment_no_from.json"), 400,
                                  "malformed");
    assert_non_null (strstr (c.result.reason, "entry[0].changes[0].value has no from.id"));
    /* A mention names no author or text, but it must name something. */
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_ig_mention_no_ids.json"), 400,
                                  "malformed");
    assert_non_null (strstr (c.result.reason, "neither comment_id nor media_id"));
    rt_test_channel_call_done (&c);
}

/* --- WhatsApp -------------------------------------------------------- */

static void
test_whatsapp_text (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_int_equal (s_post (&c, "whatsapp_text.json"), 0);
    assert_int_equal (c.result.count, 1);
    m = s_inbound (&c, 0);
    assert_int_equal (m->channel, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_string_equal (m->external_id,
                         "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
    assert_string_equal (m->external_user_id, "16505551234");
    assert_string_equal (m->phone, "+16505551234");
    assert_string_equal (m->display_name, "Sheena Nelson");
    assert_string_equal (m->text, "Does it come in another color?");
    assert_int_equal (m->sent_at, 1749416383000LL);
    assert_string_equal (c.result.items[0].key, "whatsapp:shop:16505551234");
    rt_test_channel_call_done (&c);
}

static const char *
s_wamid (int n)
{
    static char buf[64];
    snprintf (buf, sizeof buf, "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQ%04d", n);
    return buf;
}

static void
test_whatsapp_batch (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__InboundMessage *m;
    size_t i;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_int_equal (s_post (&c, "whatsapp_batch.json"), 0);
    /* 13 messages over two entries; the removed reaction is skipped, and
     * so is the template update change. */
    assert_int_equal (c.result.count, 12);
    for (i = 0; i < c.result.count; i++) {
        int n = (int)i + 1 + (i >= 9 ? 1 : 0);
        assert_string_equal (c.result.items[i].external_id, s_wamid (n));
    }

    m = s_inbound (&c, 0); /* image with caption */
    assert_string_equal (m->display_name, "Sheena Nelson");
    assert_int_equal (m->n_attachments, 1);
    assert_string_equal (m->attachments[0]->kind, "image");
    assert_string_equal (m->attachments[0]->file_id, "1003383421387256");
    assert_string_equal (m->attachments[0]->mime_type, "image/jpeg");
    assert_string_equal (m->caption, "The box arrived like this");
    assert_string_equal (m->text, "The box arrived like this");

    m = s_inbound (&c, 1); /* document, a reply, from the second contact */
    assert_string_equal (m->display_name, "Иван Петров");
    assert_string_equal (m->phone, "+79161234567");
    assert_string_equal (m->reply_to, s_wamid (900));
    assert_string_equal (m->attachments[0]->kind, "document");
    assert_string_equal (m->attachments[0]->name, "receipt.pdf");
    assert_string_equal (m->attachments[0]->mime_type, "application/pdf");
    assert_string_equal (m->caption, "Чек");
    assert_string_equal (c.result.items[1].key, "whatsapp:shop:79161234567");

    m = s_inbound (&c, 2); /* voice note */
    assert_string_equal (m->attachments[0]->kind, "voice");
    assert_string_equal (m->attachments[0]->mime_type, "audio/ogg; codecs=opus");

    m = s_inbound (&c, 3); /* location */
    assert_string_equal (m->attachments[0]->kind, "location");
    assert_true (m->attachments[0]->latitude > 37.48 && m->attachments[0]->latitude < 37.49);
    assert_true (m->attachments[0]->longitude < -122.14 && m->attachments[0]->longitude > -122.15);
    assert_string_equal (m->attachments[0]->name, "Main Street Beach");

    m = s_inbound (&c, 4); /* a shared contact */
    assert_string_equal (m->attachments[0]->kind, "contact");
    assert_string_equal (m->attachments[0]->name, "Barbara Johnson");
    assert_string_equal (m->attachments[0]->phone, "+1 (940) 555-1234");

    m = s_inbound (&c, 5); /* button reply */
    assert_string_equal (m->text, "Track my order");
    assert_string_equal (m->reply_to, s_wamid (901));
    m = s_inbound (&c, 6); /* list reply */
    assert_string_equal (m->text, "Return an item");
    m = s_inbound (&c, 7); /* template quick-reply button */
    assert_string_equal (m->text, "Stop promotions");
    assert_string_equal (m->reply_to, s_wamid (902));
    m = s_inbound (&c, 8); /* reaction */
    assert_string_equal (m->text, "👍");
    assert_string_equal (m->reply_to, s_wamid (903));
    m = s_inbound (&c, 9); /* sticker */
    assert_string_equal (m->attachments[0]->kind, "sticker");
    assert_string_equal (m->attachments[0]->mime_type, "image/webp");
    m = s_inbound (&c, 10); /* unsupported: kept, without text */
    assert_string_equal (m->text, "");
    assert_int_equal (m->n_attachments, 0);
    m = s_inbound (&c, 11); /* second entry: video */
    assert_string_equal (m->display_name, "Kim Lee");
    assert_string_equal (m->attachments[0]->kind, "video");
    assert_string_equal (m->text, "unboxing");
    rt_test_channel_call_done (&c);
}

static void
test_whatsapp_statuses (void **state)
{
    rt_test_channel_call_t c;
    Retain__V1__MessageDelivered *d;
    Retain__V1__MessageFailed *f;
    char ext[96];
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_int_equal (s_post (&c, "whatsapp_statuses.json"), 0);
    /* "sent" is skipped; delivered, read and two failures remain. */
    assert_int_equal (c.result.count, 4);

    d = s_delivered (&c, 0);
    assert_false (d->read);
    assert_string_equal (d->external_id, s_wamid (100));
    snprintf (ext, sizeof ext, "delivered:%s", s_wamid (100));
    assert_string_equal (c.result.items[0].external_id, ext);
    assert_int_equal (d->delivered_at, 1750263771000LL);
    assert_int_equal (d->channel, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_string_equal (c.result.items[0].key, "whatsapp:shop:16505551234");

    d = s_delivered (&c, 1);
    assert_true (d->read);
    assert_string_equal (d->external_id, s_wamid (100));
    snprintf (ext, sizeof ext, "read:%s", s_wamid (100));
    assert_string_equal (c.result.items[1].external_id, ext);

    f = s_failed (&c, 2);
    assert_string_equal (f->external_id, s_wamid (101));
    snprintf (ext, sizeof ext, "failed:%s", s_wamid (101));
    assert_string_equal (c.result.items[2].external_id, ext);
    assert_string_equal (f->error_code, "131026");
    assert_string_equal (f->error, "Message undeliverable: Message Undeliverable.");
    assert_true (f->permanent);

    f = s_failed (&c, 3);
    assert_string_equal (f->error_code, "131056");
    assert_false (f->permanent); /* a rate limit: try later */
    rt_test_channel_call_done (&c);
}

/* --- refusals -------------------------------------------------------- */

static void
test_signatures (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    rt_test_channel_call_refused (&c, s_post_as (&c, "messenger_text.json", NULL), 401,
                                  "missing_signature");
    /* Signed with the app secret of another app. */
    c.inbox.secret = "another-secret";
    rt_test_channel_call_refused (&c, s_post (&c, "messenger_text.json"), 403, "bad_signature");
    c.inbox.secret = SECRET;

    /* Tampered: sent with the signature Meta made for the original. */
    rt_test_channel_call_refused (&c, s_post (&c, "messenger_text_tampered.json"), 403,
                                  "bad_signature");
    /* Not sha256=<hex>: the old SHA-1 header form, bad hex, short. */
    c.headers[1].value = "sha1=0123456789abcdef0123456789abcdef01234567";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 403, "bad_signature");
    c.headers[1].value = "sha256=zz";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 403, "bad_signature");
    c.headers[1].value = "";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 401, "missing_signature");

    /* An inbox without a secret accepts nothing, not even the empty key's. */
    c.inbox.secret = "";
    rt_test_channel_call_refused (
        &c, s_post_as (&c, "messenger_text.json", "messenger_text.json.empty-key.sig"), 403,
        "bad_signature");
    rt_test_channel_call_done (&c);
}

static void
test_rotation (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    /* The fixtures' secret, first as the previous one, then as the new. */
    c.inbox.secret = "rotated-secret";
    c.inbox.previous_secret = SECRET;
    assert_int_equal (s_post (&c, "whatsapp_text.json"), 0);
    assert_int_equal (c.result.count, 1);
    c.inbox.secret = SECRET;
    c.inbox.previous_secret = "older-secret";
    assert_int_equal (s_post (&c, "whatsapp_text.json"), 0);
    assert_int_equal (c.result.count, 1);
    c.inbox.secret = "rotated-secret";
    c.inbox.previous_secret = "";
    rt_test_channel_call_refused (&c, s_post (&c, "whatsapp_text.json"), 403, "bad_signature");
    rt_test_channel_call_done (&c);
}

static void
test_wrong_object (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__INSTAGRAM);
    rt_test_channel_call_refused (&c, s_post (&c, "messenger_text.json"), 400, "wrong_object");
    assert_non_null (strstr (c.result.reason, "object \"page\" does not match inbox channel"));
    c.inbox.channel = RETAIN__V1__CHANNEL__MESSENGER;
    rt_test_channel_call_refused (&c, s_post (&c, "whatsapp_statuses.json"), 400, "wrong_object");
    c.inbox.channel = RETAIN__V1__CHANNEL__WHATSAPP;
    rt_test_channel_call_refused (&c, s_post (&c, "instagram_batch.json"), 400, "wrong_object");
    rt_test_channel_call_done (&c);
}

static void
test_malformed (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__WHATSAPP);
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_truncated.json"), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "JSON"));
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_not_object.json"), 400, "malformed");
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_wa_no_from.json"), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "entry[0].changes[0].value.messages[0] has no from"));
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_empty.json"), 400, "malformed");
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_no_entry.json"), 400, "malformed");
    /* A good first message does not survive a bad second one. */
    c.inbox.channel = RETAIN__V1__CHANNEL__MESSENGER;
    rt_test_channel_call_refused (&c, s_post (&c, "malformed_no_mid.json"), 400, "malformed");
    assert_non_null (strstr (c.result.reason, "entry[0].messaging[1]"));
    rt_test_channel_call_done (&c);
}

static void
test_method_and_type (void **state)
{
    rt_test_channel_call_t c;
    (void)state;
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    c.req.method = "PUT";
    rt_test_channel_call_refused (&c, s_post (&c, "messenger_text.json"), 405,
                                  "method_not_allowed");
    c.req.method = "POST";
    s_post (&c, "messenger_text.json");
    c.headers[0].value = "text/plain";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 415, "unsupported_media_type");
    c.headers[0].value = "application/json; charset=UTF-8";
    assert_int_equal (rt_test_channel_call_run (&c), 0);
    assert_int_equal (c.result.count, 1);
    c.headers[0].name = "X-Other";
    rt_test_channel_call_refused (&c, rt_test_channel_call_run (&c), 415, "unsupported_media_type");
    rt_test_channel_call_done (&c);
}

/* A notification with more receipts than Meta ever batches is refused
 * whole, not cut short. */
static void
test_too_many_items (void **state)
{
    rt_test_channel_call_t c;
    json_t *mids = json_array (), *root;
    char *body;
    int i;
    (void)state;
    for (i = 0; i < 5001; i++)
        json_array_append_new (mids, json_sprintf ("mid.%d", i));
    root = json_pack ("{s:s,s:[{s:s,s:[{s:{s:s},s:{s:o,s:I}}]}]}", "object", "page", "entry", "id",
                      "1", "messaging", "sender", "id", "42", "delivery", "mids", mids, "watermark",
                      (json_int_t)1458668856253LL);
    body = json_dumps (root, JSON_COMPACT);
    s_init (&c, RETAIN__V1__CHANNEL__MESSENGER);
    rt_test_channel_sha256_sig (SECRET, body, strlen (body), c.sig);
    rt_test_channel_call_refused (&c, s_post_body (&c, body, strlen (body), c.sig), 413,
                                  "too_many_items");
    free (body);
    json_decref (root);
    rt_test_channel_call_done (&c);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_handshake),          cmocka_unit_test (test_messenger_text),
        cmocka_unit_test (test_messenger_batch),    cmocka_unit_test (test_instagram_batch),
        cmocka_unit_test (test_whatsapp_text),      cmocka_unit_test (test_whatsapp_batch),
        cmocka_unit_test (test_whatsapp_statuses),  cmocka_unit_test (test_signatures),
        cmocka_unit_test (test_rotation),           cmocka_unit_test (test_wrong_object),
        cmocka_unit_test (test_malformed),          cmocka_unit_test (test_method_and_type),
        cmocka_unit_test (test_too_many_items),     cmocka_unit_test (test_facebook_comments),
        cmocka_unit_test (test_instagram_comments), cmocka_unit_test (test_instagram_stories),
        cmocka_unit_test (test_comments_bad_input),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
