/*
 * reply: the origin an inbound message keeps, and the checks of a reply
 * that answers it (reply.h has the rules).
 *
 * The origin is stored as JSON of the proto's own field names, so that
 * what the API shows is what ingest wrote, and read back into a
 * Retain__V1__Origin for OutboundMessageRequested.reply_to. A stored
 * origin that lacks its comment_id (or is not an object) is no comment:
 * it can only be answered as a plain message, never crash a reply.
 */
#include "reply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rt_civil.h"

#define S_TARGET "routing_reply_target"

/* The inbound entry $2 of conversation $1: its channel, its origin,
 * whether its comment was removed since (an inbound "deleted" event of
 * the same comment) and whether a private reply answered it already. */
static const char *s_target_sql =
    "SELECT COALESCE(t.channel, ''), COALESCE(t.origin::text, ''),"
    " EXISTS (SELECT 1 FROM routing.timeline d WHERE d.conversation_id = t.conversation_id"
    " AND d.kind = 'inbound' AND d.body->>'event' = 'deleted'"
    " AND d.origin->>'comment_id' = t.origin->>'comment_id'),"
    " EXISTS (SELECT 1 FROM routing.timeline r WHERE r.conversation_id = t.conversation_id"
    " AND r.kind = 'outbound' AND r.body->>'reply_to' = t.event_id::text"
    " AND r.body->>'visibility' = 'private')"
    " FROM routing.timeline t WHERE t.conversation_id = $1::uuid AND t.event_id = $2::uuid"
    " AND t.kind = 'inbound'";

int
reply_prepare (rt_db_t *db)
{
    return rt_db_prepare (db, S_TARGET, s_target_sql);
}

/* --- the origin as JSON --- */

static int
s_set (json_t *j, const char *key, const char *value)
{
    if (!value || !value[0])
        return 0;
    return json_object_set_new (j, key, json_string (value));
}

char *
reply_origin_json (const Retain__V1__Origin *o, bool *oom)
{
    json_t *j;
    char *out;
    *oom = false;
    if (!o || !o->kind || !o->kind[0] || strcmp (o->kind, "direct") == 0)
        return NULL;
    j = json_object ();
    if (!j || s_set (j, "kind", o->kind) != 0 || s_set (j, "post_id", o->post_id) != 0 ||
        s_set (j, "comment_id", o->comment_id) != 0 || s_set (j, "parent_id", o->parent_id) != 0 ||
        s_set (j, "permalink", o->permalink) != 0 ||
        json_object_set_new (j, "public", json_boolean (o->public_)) != 0 ||
        s_set (j, "media_type", o->media_type) != 0 ||
        s_set (j, "account_id", o->account_id) != 0 ||
        (o->private_reply_until > 0 &&
         json_object_set_new (j, "private_reply_until",
                              json_integer ((json_int_t)o->private_reply_until)) != 0)) {
        json_decref (j);
        *oom = true;
        return NULL;
    }
    out = json_dumps (j, JSON_COMPACT);
    json_decref (j);
    if (!out)
        *oom = true;
    return out;
}

/* A string member copied (malloc), "" when absent; NULL when out of memory. */
static char *
s_str (const json_t *j, const char *key)
{
    const char *v = json_string_value (json_object_get (j, key));
    return strdup (v ? v : "");
}

/* The stored origin back as a message (owned), NULL when out of memory. */
static Retain__V1__Origin *
s_origin_from (const json_t *j)
{
    Retain__V1__Origin *o = malloc (sizeof *o);
    json_t *until = json_object_get (j, "private_reply_until");
    if (!o)
        return NULL;
    retain__v1__origin__init (o);
    o->kind = s_str (j, "kind");
    o->post_id = s_str (j, "post_id");
    o->comment_id = s_str (j, "comment_id");
    o->parent_id = s_str (j, "parent_id");
    o->permalink = s_str (j, "permalink");
    o->media_type = s_str (j, "media_type");
    o->account_id = s_str (j, "account_id");
    o->public_ = json_is_true (json_object_get (j, "public"));
    o->private_reply_until = json_is_integer (until) ? json_integer_value (until) : 0;
    if (!o->kind || !o->post_id || !o->comment_id || !o->parent_id || !o->permalink ||
        !o->media_type || !o->account_id) {
        protobuf_c_message_free_unpacked (&o->base, NULL);
        return NULL;
    }
    return o;
}

/* unix ms as RFC 3339 in UTC, to the second. */
static void
s_rfc3339 (int64_t ms, char *out, size_t len)
{
    int64_t s = ms / 1000, days = s / 86400, rem = s % 86400, y;
    int m, d;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    rt_civil_date (days, &y, &m, &d);
    snprintf (out, len, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(rem / 3600),
              (int)(rem / 60 % 60), (int)(rem % 60));
}

/* --- the checks --- */

void
reply_target_free (reply_target_t *target)
{
    if (target && target->origin) {
        protobuf_c_message_free_unpacked (&target->origin->base, NULL);
        target->origin = NULL;
    }
}

/* Whether a stored origin is a comment one can answer: its kind and its id. */
static bool
s_is_comment (const json_t *origin, bool *live)
{
    const char *kind = json_string_value (json_object_get (origin, "kind"));
    const char *id = json_string_value (json_object_get (origin, "comment_id"));
    *live = kind && strcmp (kind, "live_comment") == 0;
    return kind && (strcmp (kind, "comment") == 0 || *live) && id && id[0];
}

reply_status_t
reply_resolve (rt_db_t *db, const char *conversation_id, const char *reply_to,
               reply_visibility_t visibility, int64_t now, bool replay, reply_target_t *out,
               char *detail, size_t len)
{
    const char *v[2] = {conversation_id, reply_to};
    json_t *origin = NULL;
    PGresult *r;
    reply_status_t st = REPLY_OK;
    bool live = false, deleted, answered;

    memset (out, 0, sizeof *out);
    r = rt_db_exec_prepared (db, S_TARGET, 2, v, NULL, NULL, 0);
    if (!r) {
        snprintf (detail, len, "%s: %s", S_TARGET, rt_db_error (db));
        return REPLY_DB;
    }
    if (PQntuples (r) != 1) {
        snprintf (detail, len, "no inbound message %s in this conversation", reply_to);
        st = REPLY_NOT_FOUND;
        goto cleanup;
    }
    snprintf (out->channel, sizeof out->channel, "%s", PQgetvalue (r, 0, 0));
    if (PQgetvalue (r, 0, 1)[0])
        origin = json_loads (PQgetvalue (r, 0, 1), 0, NULL);
    deleted = strcmp (PQgetvalue (r, 0, 2), "t") == 0;
    answered = strcmp (PQgetvalue (r, 0, 3), "t") == 0;
    if (!json_is_object (origin) || !s_is_comment (origin, &live)) {
        if (visibility != REPLY_VISIBILITY_NONE) {
            snprintf (detail, len,
                      "message %s is no comment: \"visibility\" is for a reply to a comment",
                      reply_to);
            st = REPLY_NOT_COMMENT;
        }
        goto cleanup;
    }
    out->public_reply =
        visibility == REPLY_VISIBILITY_PUBLIC || (visibility == REPLY_VISIBILITY_NONE && !live);
    out->origin = s_origin_from (origin);
    if (!out->origin) {
        snprintf (detail, len, "out of memory");
        st = REPLY_DB;
        goto cleanup;
    }
    out->until = out->origin->private_reply_until;
    if (out->until > 0)
        s_rfc3339 (out->until, out->until_text, sizeof out->until_text);
    if (replay)
        goto cleanup;
    if (out->public_reply && live) {
        snprintf (detail, len,
                  "message %s is a live comment: Meta allows only a private reply, during the "
                  "broadcast",
                  reply_to);
        st = REPLY_LIVE_PUBLIC;
    } else if (out->public_reply && deleted) {
        snprintf (detail, len, "the author removed comment %s: there is nothing to reply under",
                  out->origin->comment_id);
        st = REPLY_DELETED;
    } else if (!out->public_reply && out->until > 0 && now > out->until) {
        snprintf (detail, len, "a private reply to message %s was possible until %s", reply_to,
                  out->until_text);
        st = REPLY_CLOSED;
    } else if (!out->public_reply && answered) {
        snprintf (detail, len,
                  "message %s has its private reply already: Meta allows one per comment",
                  reply_to);
        st = REPLY_ALREADY;
    }
cleanup:
    json_decref (origin);
    PQclear (r);
    return st;
}
