/*
 * meta_comments: the public side of Meta's webhooks for MESSENGER and
 * INSTAGRAM inboxes: Page feed comments, Instagram comments and mentions,
 * and the origin (comment, story reply, story mention) a message carries.
 * Apart from meta.c because a comment is not a direct message: it is
 * answered in public or by a private reply, it is edited and removed, and
 * it names a post; meta.c hands it every entry's changes[] (meta_change).
 *
 * Comments arrive as entry[].changes[] beside the messaging lists, each
 * with its "field" (developers.facebook.com/docs/graph-api/webhooks/
 * reference/page, .../reference/instagram, and
 * developers.facebook.com/docs/instagram-platform/webhooks/examples):
 *   feed (page)    value.item "comment": InboundMessage with an origin of
 *                  kind comment. comment_id -> external_id and
 *                  origin.comment_id; from {id, name} -> the user;
 *                  message -> text; photo / video (URLs) -> attachments;
 *                  created_time (s) -> sent_at; post_id -> thread_id and
 *                  origin.post_id; parent_id, when it is a comment rather
 *                  than the post -> reply_to and origin.parent_id;
 *                  post.permalink_url and post.status_type. verb add is a
 *                  new comment; edited the same comment again with
 *                  edited = true (item "edited:<id>:<hash of the text>", so
 *                  each distinct edit is kept once); remove an event
 *                  "deleted" (item "deleted:<id>"): the operator must not
 *                  answer in public under a comment that is gone. Other
 *                  items (posts, reactions, shares) and verbs (hide,
 *                  unhide, block) are skipped: not a customer's words.
 *   comments,      (instagram) value.id, text, from {id, username},
 *   live_comments  media {id, media_product_type}, parent_id: the same
 *                  shape of InboundMessage; the time is the entry's.
 *   mentions       (instagram) value {comment_id, media_id} only: an
 *                  @mention on someone else's media names neither its
 *                  author nor its text, which only the Graph API's
 *                  mentioned_comment / mentioned_media give, and ingest
 *                  calls no one; with no customer to attach it to it is
 *                  skipped once its ids are checked.
 *   Any other field (ratings, story_insights, ...) is skipped.
 * A comment whose from.id is the entry's id (the Page or the Instagram
 * account) is the shop's own reply coming back: skipped, as echoes are.
 * A private reply may be sent for 7 days after a comment (Messenger and
 * Instagram "Private Replies"), hence origin.private_reply_until; for a
 * live comment only during the broadcast, which the webhook does not say.
 *
 * Identity: an Instagram comment's from.id is documented as the
 * commenter's Instagram-scoped ID, the id their direct messages carry as
 * sender.id, so comments and DMs meet on one identity. On Facebook the
 * feed's from.id is a Page-scoped user id of the Pages API, which Meta does
 * not document as equal to the Messenger PSID (a private reply is
 * addressed by comment_id precisely because the PSID is not known): the
 * two may be two identities of one customer, joined by routerd's merge
 * suggestion, never guessed here.
 */
#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"

/* A 7-day private reply window (Messenger and Instagram Private Replies). */
#define S_PRIVATE_REPLY_MS (7LL * 24 * 3600 * 1000)

/* An Origin of the given kind with every string malloc'd. */
static Retain__V1__Origin *
s_origin_new (const char *kind, const char *account)
{
    Retain__V1__Origin *o = malloc (sizeof *o);
    if (!o)
        return NULL;
    retain__v1__origin__init (o);
    o->kind = o->post_id = o->comment_id = o->parent_id = o->permalink = o->media_type =
        o->account_id = NULL;
    if (ingest_set (&o->kind, kind) != 0 || meta_empty (&o->post_id) ||
        meta_empty (&o->comment_id) || meta_empty (&o->parent_id) || meta_empty (&o->permalink) ||
        meta_empty (&o->media_type) || ingest_set (&o->account_id, account) != 0) {
        protobuf_c_message_free_unpacked (&o->base, NULL);
        return NULL;
    }
    return o;
}

/* The story a direct message answers or mentions, as its origin; 0 when
 * it is a plain message, -1 out of memory. */
int
meta_story_origin (Retain__V1__InboundMessage *msg, const json_t *message, const char *account)
{
    const json_t *story = json_object_get (json_object_get (message, "reply_to"), "story");
    const char *kind = NULL, *id = NULL, *url = NULL;
    size_t i;
    json_t *att;
    if (json_is_object (story)) {
        kind = "story_reply";
        id = meta_str (story, "id");
        url = meta_str (story, "url");
    } else {
        json_array_foreach (json_object_get (message, "attachments"), i, att)
        {
            const char *type = meta_str (att, "type");
            if (type && strcmp (type, "story_mention") == 0) {
                kind = "story_mention";
                url = meta_str (json_object_get (att, "payload"), "url");
                break;
            }
        }
    }
    if (!kind)
        return 0;
    msg->origin = s_origin_new (kind, account);
    if (!msg->origin || ingest_set (&msg->origin->post_id, id) != 0 ||
        ingest_set (&msg->origin->permalink, url) != 0)
        return -1;
    return 0;
}

/* --- comments -------------------------------------------------------- */

/* What a comment notification says, lent from its JSON. */
typedef struct {
    const char *kind;       /* origin kind: "comment", "live_comment" */
    const char *id;         /* the comment id */
    const char *user;       /* the commenter's id */
    const char *name;       /* their name or username */
    const char *text;       /* the comment's text; NULL when none */
    const char *post_id;    /* the post or media commented on; NULL when not given */
    const char *parent_id;  /* the comment answered; NULL for a top-level comment */
    const char *permalink;  /* the post's URL; NULL when not given */
    const char *media_type; /* media_product_type or status_type; NULL when not given */
    const char *photo;      /* URL of a photo in the comment; NULL when none */
    const char *video;      /* URL of a video in the comment; NULL when none */
    int64_t at_ms;          /* when it was written (or sent), unix ms; 0 unknown */
    bool edited;            /* an edit of an earlier notification's comment */
    bool deleted;           /* removed: an event "deleted" */
    bool private_reply;     /* a private reply is possible for 7 days */
} s_comment_t;

/* FNV-1a, 64 bits: tells one edit's text from another's in its item id. */
static uint64_t
s_fnv1a (const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int
s_comment_attachment (Retain__V1__InboundMessage *msg, const char *kind, const char *url)
{
    Retain__V1__Attachment *a;
    if (!url || !*url)
        return 0;
    a = ingest_attachment_add (msg, kind);
    return a ? ingest_set (&a->url, url) : -1;
}

/* One comment as an InboundMessage with its origin. */
static int
s_comment_add (meta_ctx_t *ctx, const s_comment_t *c, const char *account)
{
    Retain__V1__InboundMessage *msg = ingest_inbound_new (ctx->inbox);
    Retain__V1__Origin *o;
    char *ext = NULL;
    int rc;
    if (!msg)
        return meta_oom (ctx->result);
    if (c->deleted)
        rc = asprintf (&ext, "deleted:%s", c->id);
    else if (c->edited)
        rc = asprintf (&ext, "edited:%s:%016llx", c->id,
                       (unsigned long long)s_fnv1a (c->text ? c->text : ""));
    else
        rc = asprintf (&ext, "%s", c->id);
    if (rc < 0) {
        ext = NULL;
        goto oom;
    }
    msg->origin = s_origin_new (c->kind, account);
    o = msg->origin;
    if (!o || ingest_set (&msg->external_id, c->id) != 0 ||
        ingest_set (&msg->external_user_id, c->user) != 0 ||
        ingest_set (&msg->display_name, c->name) != 0 ||
        ingest_set (&msg->thread_id, c->post_id) != 0 ||
        ingest_set (&msg->reply_to, c->parent_id) != 0 ||
        ingest_set (&msg->event, c->deleted ? "deleted" : "message") != 0 ||
        ingest_set (&o->post_id, c->post_id) != 0 || ingest_set (&o->comment_id, c->id) != 0 ||
        ingest_set (&o->parent_id, c->parent_id) != 0 ||
        ingest_set (&o->permalink, c->permalink) != 0 ||
        ingest_set (&o->media_type, c->media_type) != 0)
        goto oom;
    /* A removed comment keeps its ids only: its words are gone. */
    if (!c->deleted && (ingest_set (&msg->text, c->text) != 0 ||
                        s_comment_attachment (msg, "image", c->photo) != 0 ||
                        s_comment_attachment (msg, "video", c->video) != 0))
        goto oom;
    msg->sent_at = c->at_ms;
    msg->edited = c->edited;
    o->public_ = true;
    if (c->private_reply && c->at_ms > 0 && !c->deleted)
        o->private_reply_until = c->at_ms + S_PRIVATE_REPLY_MS;
    rc = meta_add (ctx, "InboundMessage", ext, &msg->base, c->user);
    free (ext);
    return rc;
oom:
    free (ext);
    protobuf_c_message_free_unpacked (&msg->base, NULL);
    return meta_oom (ctx->result);
}

/* The commenter from value.from; refuses the notification when missing. */
static int
s_comment_from (meta_ctx_t *ctx, const json_t *value, const char *name_key, s_comment_t *c,
                const char *path)
{
    const json_t *from = json_object_get (value, "from");
    c->user = meta_str (from, "id");
    c->name = meta_str (from, name_key);
    if (!c->user || !*c->user)
        return ingest_fail (ctx->result, 400, "malformed", "%s.value has no from.id", path);
    return 0;
}

/* A Page feed change (object "page", field "feed"). */
static int
s_feed_change (meta_ctx_t *ctx, const json_t *value, const char *account, const char *path)
{
    const char *item = meta_str (value, "item"), *verb = meta_str (value, "verb");
    const json_t *post = json_object_get (value, "post");
    s_comment_t c = {0};
    if (!json_is_object (value))
        return ingest_fail (ctx->result, 400, "malformed", "%s.value is not an object", path);
    if (!item || strcmp (item, "comment") != 0)
        return 0; /* posts, reactions, shares, likes: not a customer's words to answer */
    if (!verb)
        verb = "add";
    if (strcmp (verb, "add") != 0 && strcmp (verb, "edited") != 0 && strcmp (verb, "remove") != 0)
        return 0; /* hide, unhide, block: the Page's moderation */
    c.kind = "comment";
    c.id = meta_str (value, "comment_id");
    if (!c.id || !*c.id)
        return ingest_fail (ctx->result, 400, "malformed", "%s.value has no comment_id", path);
    if (s_comment_from (ctx, value, "name", &c, path) != 0)
        return -1;
    if (account && strcmp (c.user, account) == 0)
        return 0; /* the Page's own comment coming back */
    c.text = meta_str (value, "message");
    c.post_id = meta_str (value, "post_id");
    c.parent_id = meta_str (value, "parent_id");
    /* A top-level comment's parent is the post itself. */
    if (c.parent_id && c.post_id && strcmp (c.parent_id, c.post_id) == 0)
        c.parent_id = NULL;
    c.permalink = meta_str (post, "permalink_url");
    c.media_type = meta_str (post, "status_type");
    c.photo = meta_str (value, "photo");
    c.video = meta_str (value, "video");
    c.at_ms = meta_seconds_ms (meta_int64 (json_object_get (value, "created_time")));
    c.edited = strcmp (verb, "edited") == 0;
    c.deleted = strcmp (verb, "remove") == 0;
    c.private_reply = true;
    return s_comment_add (ctx, &c, account);
}

/* An entry's time: Meta stamps Instagram entries in ms or s. */
static int64_t
s_entry_ms (const json_t *entry, int64_t now_ms)
{
    int64_t t = meta_int64 (json_object_get (entry, "time"));
    if (t <= 0)
        return now_ms;
    return t >= 100000000000LL ? t : meta_seconds_ms (t);
}

/* An Instagram comment (field "comments" or "live_comments"). */
static int
s_ig_comment (meta_ctx_t *ctx, const json_t *value, bool live, const char *account, int64_t at_ms,
              const char *path)
{
    const json_t *media = json_object_get (value, "media");
    s_comment_t c = {0};
    if (!json_is_object (value))
        return ingest_fail (ctx->result, 400, "malformed", "%s.value is not an object", path);
    c.kind = live ? "live_comment" : "comment";
    c.id = meta_str (value, "id");
    if (!c.id || !*c.id)
        return ingest_fail (ctx->result, 400, "malformed", "%s.value has no id", path);
    if (s_comment_from (ctx, value, "username", &c, path) != 0)
        return -1;
    if (account && strcmp (c.user, account) == 0)
        return 0; /* the account's own reply coming back */
    c.text = meta_str (value, "text");
    c.post_id = meta_str (media, "id");
    c.media_type = meta_str (media, "media_product_type");
    c.parent_id = meta_str (value, "parent_id");
    c.at_ms = at_ms;
    c.private_reply = !live;
    return s_comment_add (ctx, &c, account);
}

/* An Instagram @mention (field "mentions"): checked, then skipped (see the
 * head of the file). */
static int
s_ig_mention (meta_ctx_t *ctx, const json_t *value, const char *path)
{
    const char *comment_id = meta_str (value, "comment_id"),
               *media_id = meta_str (value, "media_id");
    if (!json_is_object (value))
        return ingest_fail (ctx->result, 400, "malformed", "%s.value is not an object", path);
    if ((!comment_id || !*comment_id) && (!media_id || !*media_id))
        return ingest_fail (ctx->result, 400, "malformed",
                            "%s.value has neither comment_id nor media_id", path);
    return 0;
}

/* One of an entry's changes[]: a messaging event in the dashboard's test
 * shape, a comment, or something skipped. */
int
meta_change (meta_ctx_t *ctx, const json_t *entry, const json_t *change, const char *path)
{
    const json_t *value = json_object_get (change, "value");
    const char *field = meta_str (change, "field");
    const char *account = meta_str (entry, "id");
    bool instagram = ctx->channel == RETAIN__V1__CHANNEL__INSTAGRAM;
    char vpath[112];
    if (json_is_object (json_object_get (value, "sender"))) {
        snprintf (vpath, sizeof vpath, "%s.value", path);
        return meta_messaging_event (ctx, value, account, vpath);
    }
    if (!field)
        return 0;
    if (!instagram && strcmp (field, "feed") == 0)
        return s_feed_change (ctx, value, account, path);
    if (instagram && (strcmp (field, "comments") == 0 || strcmp (field, "live_comments") == 0))
        return s_ig_comment (ctx, value, strcmp (field, "live_comments") == 0, account,
                             s_entry_ms (entry, ctx->req->now_ms), path);
    if (instagram && strcmp (field, "mentions") == 0)
        return s_ig_mention (ctx, value, path);
    return 0; /* ratings, story_insights, page fields we do not read */
}
