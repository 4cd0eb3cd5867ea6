/*
 * The story of a comment answered: customers comment under the shop's
 * Instagram media and Facebook Page post, and an operator answers one in
 * public and one in private.
 *
 * Real processes on a database of the story's own: retain-busd,
 * retain-ingestd, retain-routerd and retain-notifyd; the shop's Instagram
 * account and Facebook Page made by retainctl (each inbox's app secret
 * and, beside it, its Page token and Page id for sending); Meta's Graph
 * API is the shared fake of the providers (rt_test_fake_provider), where
 * notifyd's --meta-api points. The comments come in as Meta's webhooks,
 * signed, into ingestd. Each reaches its customer's conversation with
 * where it was written (its origin: kind, comment, post, account, the
 * private reply's deadline). The operator answers the Instagram comment
 * in public: the fake gets exactly one POST /{comment-id}/replies with
 * the text, and the same request again (the same Idempotency-Key) sends
 * nothing more; then the Facebook comment in private: exactly one Send
 * API request whose recipient is the comment. What Meta would refuse is
 * refused by routerd's API first, each with its status and its reason:
 * an unknown or malformed reply_to, a visibility without reply_to or not
 * one of public and private, a visibility for a direct message, a public
 * reply to a live comment, a private reply after its 7 days, a second
 * private reply to one comment; none reaches Meta.
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

#include "rt_test_story.h"

#define META_SECRET "meta-app-secret-comments"
#define PAGE_TOKEN  "EAAGcommentsPageToken"
#define IG_ACCOUNT  "17841405822304914"
#define PAGE_ID     "104361112346789"
#define IG_USER     "1254459154682919"
#define FB_USER     "5817384712340011"
#define IG_MEDIA    "17887498072083520"
#define IG_COMMENT  "17865799348089039"
#define IG_LIVE     "17865799348089042"
#define FB_POST     PAGE_ID "_931122334455667"
#define FB_COMMENT  "931122334455667_1200001"
#define FB_OLD      "931122334455667_1100001"
#define TEXT_PUBLIC                                                                                \
    "Доставка по Україні безкоштовна від 1000 грн 🙂"
#define TEXT_PRIVATE "Вітаю! Розмір M є, надішлю вам фото в приват"

/* The story's world. */
static struct {
    rt_test_story_t w;   /* the daemons, the database, the fake: Meta's Graph API */
    char key[80];        /* op-olha's API key */
    char ig_conv[40];    /* the Instagram commenter's conversation */
    char fb_conv[40];    /* the Facebook commenter's conversation */
    char ig_comment[40]; /* the timeline ids of: the Instagram comment, */
    char ig_live[40];    /* the live comment, */
    char ig_direct[40];  /* a direct message, */
    char fb_comment[40]; /* the Facebook comment, */
    char fb_old[40];     /* and one 8 days old */
} s;

static rt_test_api_reply_t
s_api (const char *method, const char *tmpl, const char *id, const char *body, const char *idem)
{
    return rt_test_api_call (&s.w.api, method, tmpl, id, NULL, s.key, body, idem);
}

/* An inbox at Meta with its sending account (the Page token, the id). */
static void
s_meta_inbox (const char *id, const char *channel, const char *account_id, const char *token_file)
{
    const char *account[] = {"notify",   "account",      "set",      "--inbox",
                             id,         "--provider",   "meta",     "--token-file",
                             token_file, "--account-id", account_id, NULL};
    rt_test_story_inbox (&s.w, id, channel, META_SECRET);
    rt_test_story_ctl (&s.w, account, "notify account set");
}

static int
s_setup (void **state)
{
    const char *migrate[] = {"migrate", NULL};
    const char *routerd_extra[] = {"--tick=200ms", NULL};
    const char *notifyd_extra[] = {"--poll=20ms", "--request-timeout=2s", NULL};
    const rt_test_story_operator_t operators[] = {{"op-olha", "operator", s.key},
                                                  {NULL, NULL, NULL}};
    const rt_test_story_opts_t opts = {.name = "story_comment_reply",
                                       .fake = true,
                                       .routerd_member = "story-r1",
                                       .routerd_extra = routerd_extra,
                                       .notifyd_member = "story-n1",
                                       .notifyd_fake = "--meta-api",
                                       .notifyd_extra = notifyd_extra,
                                       .team = "care",
                                       .team_name = "Customer care",
                                       .operators = operators};
    char token_file[1024];
    (void)state;
    rt_test_story_open (&s.w, &opts);
    rt_test_story_ctl (&s.w, migrate, "migrate");
    snprintf (token_file, sizeof token_file, "%s/story-comment-reply-token", rt_test_dir ());
    rt_test_file_write (token_file, PAGE_TOKEN "\n");
    s_meta_inbox ("shop-ig", "instagram", IG_ACCOUNT, token_file);
    s_meta_inbox ("shop-fb", "messenger", PAGE_ID, token_file);
    unlink (token_file);
    rt_test_story_start (&s.w);
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

/* The entry of conv's timeline whose origin names comment_id (or, with
 * comment_id NULL, the inbound one whose text is text) into id; fails
 * after 30 s. Returns the timeline's answer (free it), item at *entry. */
static rt_test_api_reply_t
s_wait_entry (const char *conv, const char *comment_id, const char *text, char *id, json_t **entry)
{
    int64_t deadline = rt_test_now_ms () + 30000;
    for (;;) {
        rt_test_api_reply_t r = s_api ("GET", "/v1/conversations/{id}/messages", conv, NULL, NULL);
        json_t *e;
        size_t i;
        assert_int_equal (r.status, 200);
        json_array_foreach (json_object_get (r.json, "items"), i, e)
        {
            const char *c = rt_test_api_str (e, "origin.comment_id");
            const char *t = json_string_value (json_object_get (e, "text"));
            if ((comment_id && c && strcmp (c, comment_id) == 0) ||
                (!comment_id && t && strcmp (t, text) == 0 &&
                 json_is_null (json_object_get (e, "origin")))) {
                snprintf (id, 40, "%s", json_string_value (json_object_get (e, "id")));
                *entry = e;
                return r;
            }
        }
        if (rt_test_now_ms () > deadline)
            fail_msg ("no entry of %s in %s within 30 s: %s; see %s/%s",
                      comment_id ? comment_id : text, conv, r.body, rt_test_dir (),
                      s.w.routerd.log);
        rt_test_api_reply_free (&r);
        usleep (100 * 1000);
    }
}

/* The conversation of the customer on channel with external id user. */
static void
s_conv_of (const char *channel, const char *user, char *out)
{
    char sql[512];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM routing.conversations c JOIN crm.identities i"
              " ON i.customer_id = c.customer_id WHERE i.channel = '%s'"
              " AND i.external_user_id = '%s'",
              channel, user);
    assert_int_equal (rt_test_pg_wait_long (s.w.pg, sql, 1, 30000), 1);
    snprintf (sql, sizeof sql,
              "SELECT c.id FROM routing.conversations c JOIN crm.identities i"
              " ON i.customer_id = c.customer_id WHERE i.channel = '%s'"
              " AND i.external_user_id = '%s'",
              channel, user);
    PGresult *r = PQexec (s.w.pg, sql);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    snprintf (out, 40, "%s", PQgetvalue (r, 0, 0));
    PQclear (r);
}

static void
test_comments_come_in (void **state)
{
    char body[4096];
    long long now = (long long)time (NULL), old = now - 8 * 86400;
    rt_test_api_reply_t r;
    json_t *e;
    (void)state;
    r = s_api ("PUT", "/v1/operators/me/presence", NULL, "{\"presence\": \"online\"}", NULL);
    assert_int_equal (r.status, 200);
    rt_test_api_reply_free (&r);
    /* ingestd reloads its inboxes every second. */
    usleep (1500 * 1000);

    snprintf (body, sizeof body,
              "{\"object\": \"instagram\", \"entry\": [{\"id\": \"" IG_ACCOUNT "\", \"time\": %lld,"
              " \"changes\": [{\"field\": \"comments\", \"value\": {\"from\": {\"id\": \"" IG_USER
              "\", \"username\": \"kyiv_shopper\"}, \"media\": {\"id\": \"" IG_MEDIA
              "\", \"media_product_type\": \"FEED\"}, \"id\": \"" IG_COMMENT
              "\", \"text\": \"Скільки коштує доставка?\"}},"
              " {\"field\": \"live_comments\", \"value\": {\"from\": {\"id\": \"" IG_USER
              "\", \"username\": \"kyiv_shopper\"}, \"media\": {\"id\": \"17900011122233355\","
              " \"media_product_type\": \"LIVE\"}, \"id\": \"" IG_LIVE
              "\", \"text\": \"Покажіть зелену\"}}],"
              " \"messaging\": [{\"sender\": {\"id\": \"" IG_USER
              "\"}, \"recipient\": {\"id\": \"" IG_ACCOUNT
              "\"}, \"timestamp\": %lld, \"message\": {\"mid\": \"aWdfZAG1faXRlbTox\","
              " \"text\": \"І ще питання в директ\"}}]}]}",
              now, now * 1000);
    rt_test_story_meta_post (&s.w, META_SECRET, "/hooks/instagram/shop-ig", body);
    snprintf (
        body, sizeof body,
        "{\"object\": \"page\", \"entry\": [{\"id\": \"" PAGE_ID "\", \"time\": %lld,"
        " \"changes\": [{\"field\": \"feed\", \"value\": {\"from\": {\"id\": \"" FB_USER
        "\", \"name\": \"Олена Коваленко\"}, \"post\": {\"status_type\": \"added_photos\","
        " \"permalink_url\": \"https://www.facebook.com/" PAGE_ID "/posts/931122334455667\","
        " \"id\": \"" FB_POST "\"}, \"message\": \"А розмір M є?\", \"post_id\": \"" FB_POST
        "\", \"comment_id\": \"" FB_COMMENT "\", \"created_time\": %lld, \"item\": \"comment\","
        " \"parent_id\": \"" FB_POST "\", \"verb\": \"add\"}},"
        " {\"field\": \"feed\", \"value\": {\"from\": {\"id\": \"" FB_USER
        "\", \"name\": \"Олена Коваленко\"}, \"message\": \"А синя є?\", \"post_id\": \"" FB_POST
        "\", \"comment_id\": \"" FB_OLD "\", \"created_time\": %lld, \"item\": \"comment\","
        " \"parent_id\": \"" FB_POST "\", \"verb\": \"add\"}}]}]}",
        now, now, old);
    rt_test_story_meta_post (&s.w, META_SECRET, "/hooks/messenger/shop-fb", body);

    s_conv_of ("instagram", IG_USER, s.ig_conv);
    s_conv_of ("messenger", FB_USER, s.fb_conv);
    assert_string_not_equal (s.ig_conv, s.fb_conv);

    /* Each with where it was written. */
    r = s_wait_entry (s.ig_conv, IG_COMMENT, NULL, s.ig_comment, &e);
    assert_string_equal (rt_test_api_str (e, "kind"), "inbound");
    assert_string_equal (rt_test_api_str (e, "channel"), "instagram");
    assert_string_equal (rt_test_api_str (e, "origin.kind"), "comment");
    assert_string_equal (rt_test_api_str (e, "origin.post_id"), IG_MEDIA);
    assert_string_equal (rt_test_api_str (e, "origin.account_id"), IG_ACCOUNT);
    assert_string_equal (rt_test_api_str (e, "origin.media_type"), "FEED");
    assert_true (json_is_true (rt_test_api_at (e, "origin.public")));
    assert_non_null (rt_test_api_str (e, "origin.private_reply_until"));
    rt_test_api_reply_free (&r);
    r = s_wait_entry (s.ig_conv, IG_LIVE, NULL, s.ig_live, &e);
    assert_string_equal (rt_test_api_str (e, "origin.kind"), "live_comment");
    rt_test_api_reply_free (&r);
    r = s_wait_entry (s.ig_conv, NULL, "І ще питання в директ", s.ig_direct, &e);
    rt_test_api_reply_free (&r);
    r = s_wait_entry (s.fb_conv, FB_COMMENT, NULL, s.fb_comment, &e);
    assert_string_equal (rt_test_api_str (e, "channel"), "messenger");
    assert_string_equal (rt_test_api_str (e, "origin.kind"), "comment");
    assert_string_equal (rt_test_api_str (e, "origin.post_id"), FB_POST);
    assert_string_equal (rt_test_api_str (e, "origin.account_id"), PAGE_ID);
    assert_string_equal (rt_test_api_str (e, "text"), "А розмір M є?");
    rt_test_api_reply_free (&r);
    r = s_wait_entry (s.fb_conv, FB_OLD, NULL, s.fb_old, &e);
    rt_test_api_reply_free (&r);
    assert_int_equal (rt_fake_provider_count (s.w.fake, RT_FAKE_PROVIDERS), 0);
}

/* The request i the fake got, its body parsed (owned). */
static json_t *
s_request (size_t i, const char **target)
{
    const rt_fake_request_t *req = rt_fake_provider_request (s.w.fake, i);
    json_t *body;
    assert_non_null (req);
    assert_string_equal (req->method, "POST");
    *target = req->target;
    body = json_loads (req->body, 0, NULL);
    if (!json_is_object (body))
        fail_msg ("request %zu's body is no JSON object: %s", i, req->body);
    return body;
}

static void
test_public_reply_on_instagram (void **state)
{
    char body[512], id[40], sql[256];
    const char *target;
    rt_test_api_reply_t r;
    json_t *sent;
    (void)state;
    snprintf (body, sizeof body,
              "{\"text\": \"" TEXT_PUBLIC "\", \"reply_to\": \"%s\", \"visibility\": \"public\"}",
              s.ig_comment);
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.ig_conv, body, "ig-public-1");
    if (r.status != 202)
        fail_msg ("the public reply: %ld %s", r.status, r.body);
    snprintf (id, sizeof id, "%s", rt_test_api_str (r.json, "message_id"));
    rt_test_api_reply_free (&r);
    if (!rt_fake_provider_wait (s.w.fake, 1, 30000))
        fail_msg ("Meta got no request within 30 s; see %s/%s", rt_test_dir (), s.w.notifyd.log);
    sent = s_request (0, &target);
    assert_string_equal (target, "/v21.0/" IG_COMMENT "/replies?access_token=" PAGE_TOKEN);
    assert_int_equal (json_object_size (sent), 1);
    assert_string_equal (json_string_value (json_object_get (sent, "message")), TEXT_PUBLIC);
    json_decref (sent);

    /* The client's retry: the same answer, nothing sent again. */
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.ig_conv, body, "ig-public-1");
    assert_int_equal (r.status, 202);
    assert_string_equal (rt_test_api_str (r.json, "message_id"), id);
    rt_test_api_reply_free (&r);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status IN ('sent',"
              " 'delivered') AND external_id LIKE '17890000000%%'",
              id);
    assert_int_equal (rt_test_pg_wait_long (s.w.pg, sql, 1, 30000), 1);
    usleep (1500 * 1000);
    assert_int_equal (rt_fake_provider_count (s.w.fake, RT_FAKE_PROVIDERS), 1);
}

static void
test_private_reply_on_facebook (void **state)
{
    char body[512], sql[256];
    const char *target;
    rt_test_api_reply_t r;
    json_t *sent, *e;
    size_t i;
    bool seen = false;
    (void)state;
    snprintf (body, sizeof body,
              "{\"text\": \"" TEXT_PRIVATE "\", \"reply_to\": \"%s\", \"visibility\": \"private\"}",
              s.fb_comment);
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.fb_conv, body, "fb-private-1");
    if (r.status != 202)
        fail_msg ("the private reply: %ld %s", r.status, r.body);
    rt_test_api_reply_free (&r);
    if (!rt_fake_provider_wait (s.w.fake, 2, 30000))
        fail_msg ("Meta got no second request within 30 s; see %s/%s", rt_test_dir (),
                  s.w.notifyd.log);
    sent = s_request (1, &target);
    assert_string_equal (target, "/v21.0/" PAGE_ID "/messages?access_token=" PAGE_TOKEN);
    assert_string_equal (rt_test_api_str (sent, "recipient.comment_id"), FB_COMMENT);
    assert_null (rt_test_api_at (sent, "recipient.id"));
    assert_string_equal (rt_test_api_str (sent, "messaging_type"), "RESPONSE");
    assert_string_equal (rt_test_api_str (sent, "message.text"), TEXT_PRIVATE);
    json_decref (sent);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE reply_comment = '" FB_COMMENT "'"
              " AND NOT reply_public AND status IN ('sent', 'delivered')");
    assert_int_equal (rt_test_pg_wait_long (s.w.pg, sql, 1, 30000), 1);

    /* The timeline shows what the reply answered, and how. */
    r = s_api ("GET", "/v1/conversations/{id}/messages", s.fb_conv, NULL, NULL);
    assert_int_equal (r.status, 200);
    json_array_foreach (json_object_get (r.json, "items"), i, e)
    {
        const char *kind = rt_test_api_str (e, "kind");
        if (kind && strcmp (kind, "outbound") == 0) {
            assert_string_equal (rt_test_api_str (e, "body.reply_to"), s.fb_comment);
            assert_string_equal (rt_test_api_str (e, "body.visibility"), "private");
            assert_true (json_is_null (json_object_get (e, "origin")));
            seen = true;
        }
    }
    assert_true (seen);
    rt_test_api_reply_free (&r);
}

/* One refusal: status, problem type and a word of its detail. */
static void
s_refused (const char *conv, const char *body, long status, const char *type, const char *says)
{
    rt_test_api_reply_t r = s_api ("POST", "/v1/conversations/{id}/messages", conv, body, NULL);
    if (r.status != status || strcmp (rt_test_api_problem_type (&r), type) != 0 ||
        !rt_test_api_str (r.json, "detail") || !strstr (rt_test_api_str (r.json, "detail"), says))
        fail_msg ("%s: want %ld %s (\"%s\"), got %ld %s", body, status, type, says, r.status,
                  r.body);
    rt_test_api_reply_free (&r);
}

static void
test_refusals (void **state)
{
    char body[512];
    rt_test_api_reply_t r;
    (void)state;
    s_refused (s.ig_conv,
               "{\"text\": \"x\", \"reply_to\": \"01890a5d-ac96-774b-bcce-b302099a8057\"}", 404,
               "not-found", "01890a5d-ac96-774b-bcce-b302099a8057");
    /* A message of another conversation is no message of this one. */
    snprintf (body, sizeof body, "{\"text\": \"x\", \"reply_to\": \"%s\"}", s.fb_comment);
    s_refused (s.ig_conv, body, 404, "not-found", s.fb_comment);
    s_refused (s.ig_conv, "{\"text\": \"x\", \"reply_to\": \"'; DROP TABLE x; --\"}", 422,
               "invalid", "reply_to");
    s_refused (s.ig_conv, "{\"text\": \"x\", \"reply_to\": 17}", 422, "invalid", "reply_to");
    s_refused (s.ig_conv, "{\"text\": \"x\", \"visibility\": \"public\"}", 422, "invalid",
               "reply_to");
    snprintf (body, sizeof body, "{\"text\": \"x\", \"reply_to\": \"%s\", \"visibility\": \"all\"}",
              s.ig_comment);
    s_refused (s.ig_conv, body, 422, "invalid", "visibility");
    snprintf (body, sizeof body,
              "{\"text\": \"x\", \"reply_to\": \"%s\", \"visibility\": \"private\"}", s.ig_direct);
    s_refused (s.ig_conv, body, 422, "not-a-comment", "no comment");
    snprintf (body, sizeof body,
              "{\"text\": \"x\", \"reply_to\": \"%s\", \"visibility\": \"public\"}", s.ig_live);
    s_refused (s.ig_conv, body, 422, "public-reply-live", "live comment");
    snprintf (body, sizeof body,
              "{\"text\": \"x\", \"reply_to\": \"%s\", \"visibility\": \"private\"}", s.fb_old);
    s_refused (s.fb_conv, body, 422, "private-reply-closed", "possible until");
    r = s_api ("POST", "/v1/conversations/{id}/messages", s.fb_conv, body, NULL);
    assert_non_null (rt_test_api_str (r.json, "private_reply_until"));
    rt_test_api_reply_free (&r);
    snprintf (body, sizeof body,
              "{\"text\": \"again\", \"reply_to\": \"%s\", \"visibility\": \"private\"}",
              s.fb_comment);
    s_refused (s.fb_conv, body, 422, "private-reply-used", "one per comment");
    snprintf (body, sizeof body,
              "{\"text\": \"x\", \"reply_to\": \"%s\", \"channel\": \"telegram\"}", s.ig_comment);
    s_refused (s.ig_conv, body, 422, "invalid", "instagram");
    /* None of them reached Meta. */
    usleep (1000 * 1000);
    assert_int_equal (rt_fake_provider_count (s.w.fake, RT_FAKE_PROVIDERS), 2);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_comments_come_in),
        cmocka_unit_test (test_public_reply_on_instagram),
        cmocka_unit_test (test_private_reply_on_facebook),
        cmocka_unit_test (test_refusals),
        /* The answers recorded above, against the OpenAPI document. */
        cmocka_unit_test_prestate (rt_test_api_check_router, &s.w.api),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
