/*
 * api_conversations: the operator API's handlers of the conversations'
 * routes and of the operator's presence, each reading the request,
 * calling routing in one transaction and answering;
 * the server, the caller and the answers they share are in api.c
 * (api_int.h), apart so that a handler reads as its route's steps alone.
 *
 * Lists page by an opaque cursor: conversations in the order of their
 * wait (the longest waiting first, the answered ones after, by id among
 * equals), a timeline by its global seq. The cursor names the last row
 * given, so rows added meanwhile neither repeat nor push others out.
 *
 * A reply's message id: with an Idempotency-Key, a UUIDv7 of this moment
 * whose 74 bits after the time are the SHA-256 of the caller and the key;
 * before recording it, the conversation's outbound entries are searched
 * for those bits, so a request the idempotency store runs twice (a
 * reservation taken over after a crash) finds the first one's id and
 * routing records and sends nothing twice. Without the header, a new
 * UUIDv7.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_int.h"
#include "reply.h"
#include "routing.h"
#include "rt_attachment.h"
#include "rt_channel.h"
#include "rt_civil.h"
#include "rt_clock.h"
#include "rt_crypto.h"
#include "rt_form.h"
#include "rt_http_server.h"
#include "rt_log.h"
#include "rt_utf8.h"
#include "rt_uuid.h"

/* --- GET /v1/conversations --- */

void
api_list (rt_http_request_t *req, void *arg)
{
    api_t *self = arg;
    api_caller_t caller;
    rt_form_t *q = NULL;
    PGresult *res = NULL;
    const char *assignee, *team, *status, *cursor, *stmt;
    char key[24] = "", id[ROUTING_ID_LEN + 1] = "", limit_s[16], next[64];
    const char *v[7];
    rt_buf_t b = {0};
    rt_jsonw_t w;
    int limit, n;
    if (api_begin (self, req, &caller) != 0)
        return;
    q = api_query (req);
    if (!q)
        return;
    limit = api_limit (req, q);
    if (limit < 0)
        goto cleanup;
    assignee = rt_form_get (q, "assignee");
    if (assignee && strcmp (assignee, "me") == 0)
        assignee = caller.who;
    else if (assignee && strcmp (assignee, "unassigned") == 0)
        assignee = "";
    else if (assignee && !assignee[0]) {
        rt_http_problem (req, 400, "bad-query", "assignee must be me, unassigned or an id");
        goto cleanup;
    }
    team = rt_form_get (q, "team");
    status = rt_form_get (q, "status");
    if (status && strcmp (status, "open") != 0 && strcmp (status, "pending") != 0 &&
        strcmp (status, "snoozed") != 0 && strcmp (status, "resolved") != 0) {
        rt_http_problem (req, 400, "bad-query",
                         "status must be open, pending, snoozed or resolved");
        goto cleanup;
    }
    cursor = rt_form_get (q, "cursor");
    if (cursor) {
        rt_uuid_t u;
        const char *dot = strchr (cursor, '.');
        char *end;
        long long k;
        if (dot) {
            k = strtoll (cursor, &end, 10);
            (void)k;
        }
        if (!dot || end != dot || dot == cursor || strlen (dot + 1) != ROUTING_ID_LEN ||
            rt_uuid_parse (dot + 1, &u) != 0 || (size_t)(dot - cursor) >= sizeof key) {
            rt_http_problem (req, 400, "bad-cursor", "the cursor is not one this API gave");
            goto cleanup;
        }
        memcpy (key, cursor, (size_t)(dot - cursor));
        key[dot - cursor] = '\0';
        snprintf (id, sizeof id, "%s", dot + 1);
    }
    /* One more than the page: whether there is a next one. */
    snprintf (limit_s, sizeof limit_s, "%d", limit + 1);
    v[0] = caller.scope;
    v[1] = assignee;
    v[2] = team;
    v[3] = status;
    v[4] = cursor ? key : NULL;
    v[5] = cursor ? id : NULL;
    v[6] = limit_s;
    /* One statement per way in (api.c says why). */
    if (status && strcmp (status, "resolved") == 0)
        stmt = "api_list_done";
    else if (!assignee)
        stmt = caller.scope ? "api_list" : "api_list_all";
    else
        stmt = assignee[0] ? "api_list_held" : "api_list_nobody";
    res = rt_db_exec_prepared (caller.db, stmt, 7, v, NULL, NULL, 0);
    if (!res) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    n = PQntuples (res);
    rt_jsonw_init (&w, &b);
    rt_jsonw_object (&w);
    rt_jsonw_key (&w, "items");
    rt_jsonw_array (&w);
    for (int i = 0; i < n && i < limit; i++)
        api_conv_write (&w, res, i);
    rt_jsonw_array_end (&w);
    if (n > limit)
        snprintf (next, sizeof next, "%s.%s", PQgetvalue (res, limit - 1, C_KEY),
                  PQgetvalue (res, limit - 1, C_ID));
    rt_jsonw_kstring (&w, "next_cursor", n > limit ? next : NULL);
    rt_jsonw_object_end (&w);
    api_reply_written (req, 200, &b, &w);
cleanup:
    PQclear (res);
    rt_form_destroy (&q);
}

/* --- GET /v1/conversations/{id} --- */

void
api_get (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    if (api_begin (arg, req, &caller) != 0)
        return;
    api_reply_conv (req, &caller, rt_http_param (req, "id"), 200);
}

/* --- GET /v1/conversations/{id}/messages --- */

void
api_timeline (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    rt_form_t *q = NULL;
    PGresult *conv = NULL, *res = NULL;
    const char *id = rt_http_param (req, "id"), *cursor;
    const char *v[3];
    char limit_s[16], *end;
    json_t *items, *body, *b, *origin;
    int limit, n;
    if (api_begin (arg, req, &caller) != 0)
        return;
    conv = api_conv_get (req, &caller, id);
    if (!conv)
        return;
    q = api_query (req);
    if (!q)
        goto cleanup;
    limit = api_limit (req, q);
    if (limit < 0)
        goto cleanup;
    cursor = rt_form_get (q, "cursor");
    if (cursor) {
        long long seq = strtoll (cursor, &end, 10);
        if (!*cursor || *end || seq < 0) {
            rt_http_problem (req, 400, "bad-cursor", "the cursor is not one this API gave");
            goto cleanup;
        }
    }
    snprintf (limit_s, sizeof limit_s, "%d", limit + 1);
    v[0] = id;
    v[1] = cursor ? cursor : "0";
    v[2] = limit_s;
    res = rt_db_exec_prepared (caller.db, "api_timeline", 3, v, NULL, NULL, 0);
    if (!res) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    n = PQntuples (res);
    items = json_array ();
    for (int i = 0; i < n && i < limit; i++) {
        b = json_loads (PQgetvalue (res, i, 5), 0, NULL);
        if (!b)
            b = json_object ();
        origin = PQgetisnull (res, i, 7) ? NULL : json_loads (PQgetvalue (res, i, 7), 0, NULL);
        json_array_append_new (
            items,
            json_pack ("{s:I, s:s, s:o, s:o, s:o, s:O, s:o, s:s, s:o}", "seq",
                       (json_int_t)strtoll (PQgetvalue (res, i, 0), NULL, 10), "kind",
                       PQgetvalue (res, i, 1), "id", api_str_or_null (res, i, 2), "channel",
                       api_str_or_null (res, i, 3), "operator_id", api_str_or_null (res, i, 4),
                       "text",
                       json_is_string (json_object_get (b, "text")) ? json_object_get (b, "text")
                                                                    : json_null (),
                       "body", b, "at", PQgetvalue (res, i, 6), "origin",
                       json_is_object (origin) ? origin : json_null ()));
        if (origin && !json_is_object (origin))
            json_decref (origin);
    }
    body = json_pack ("{s:o, s:o}", "items", items, "next_cursor",
                      n > limit ? json_string (PQgetvalue (res, limit - 1, 0)) : json_null ());
    rt_http_reply_json (req, 200, body);
cleanup:
    PQclear (res);
    PQclear (conv);
    rt_form_destroy (&q);
}

/* --- POST /v1/conversations/{id}/messages --- */

/* A UUIDv7 of now whose bits after the time come from the caller and
 * their Idempotency-Key; *suffix gets those bits' text (22 characters). */
static void
s_derived_id (const char *principal, const char *key, char out[ROUTING_ID_LEN + 1], char suffix[23])
{
    rt_uuid_t u = rt_uuid_v7 ();
    uint8_t h[RT_SHA256_LEN];
    char *buf = NULL;
    size_t len;
    len = strlen (principal) + strlen (key) + 2;
    buf = malloc (len);
    if (buf) {
        snprintf (buf, len, "%s\n%s", principal, key);
        rt_sha256 (buf, strlen (buf), h);
        free (buf);
        /* Bytes 6-15 but the version nibble and the variant bits. */
        u.b[6] = (uint8_t)(0x70 | (h[0] & 0x0F));
        u.b[7] = h[1];
        u.b[8] = (uint8_t)(0x80 | (h[2] & 0x3F));
        memcpy (&u.b[9], &h[3], 7);
    }
    rt_uuid_format (&u, out);
    snprintf (suffix, 23, "%s", out + 14);
}

/* The body's "attachments" (absent: none) into out (room for
 * RT_ATTACHMENTS_MAX), strings lent by body; *n how many. 0, or -1 with
 * the field and why in detail. */
static int
s_attachments (const json_t *body, routing_attachment_t *out, size_t *n, char *detail, size_t len)
{
    const json_t *list = json_object_get (body, "attachments"), *a;
    char why[192];
    size_t i;
    *n = 0;
    if (!list)
        return 0;
    if (!json_is_array (list) || json_array_size (list) > RT_ATTACHMENTS_MAX) {
        snprintf (detail, len, "\"attachments\" must be an array of at most %d attachments",
                  RT_ATTACHMENTS_MAX);
        return -1;
    }
    json_array_foreach (list, i, a)
    {
        const json_t *name = json_object_get (a, "name"), *mime = json_object_get (a, "mime_type");
        routing_attachment_t *x = &out[i];
        if (!json_is_object (a) || (name && !json_is_string (name)) ||
            (mime && !json_is_string (mime))) {
            snprintf (detail, len,
                      "attachments[%zu] must be an object {kind, url, name?, mime_type?} of "
                      "strings",
                      i);
            return -1;
        }
        *x = (routing_attachment_t){.kind = json_string_value (json_object_get (a, "kind")),
                                    .url = json_string_value (json_object_get (a, "url")),
                                    .name = json_string_value (name),
                                    .mime_type = json_string_value (mime)};
        if (rt_attachment_check (x->kind, x->url, x->name, x->mime_type, why, sizeof why) != 0) {
            snprintf (detail, len, "attachments[%zu].%s", i, why);
            return -1;
        }
    }
    *n = json_array_size (list);
    return 0;
}

/* Whether the reply (text, and where the channel sends no media, its
 * attachments' links after it, as notifyd sends it) fits channel's text
 * limit; 422 reply-too-long when it does not. -1 when answered (or out
 * of memory, 500). */
static int
s_fits (rt_http_request_t *req, const char *used, const char *text,
        const routing_attachment_t *atts, size_t n)
{
    const rt_channel_t *uc = rt_channel_by_name (used);
    const char *urls[RT_ATTACHMENTS_MAX];
    char detail[256], *whole = NULL;
    long limit = uc ? uc->text_max : 0;
    size_t chars;
    bool links = uc && uc->caption_max <= 0 && n > 0;
    if (links) {
        for (size_t i = 0; i < n; i++)
            urls[i] = atts[i].url;
        whole = rt_attachment_text (text, urls, n);
        if (!whole) {
            rt_http_problem (req, 500, "internal", "out of memory");
            return -1;
        }
    }
    chars = rt_utf8_count (whole ? whole : text, strlen (whole ? whole : text));
    free (whole);
    if (limit > 0 && chars > (size_t)limit) {
        snprintf (detail, sizeof detail, "the reply%s has %zu characters; %s allows at most %ld",
                  links ? " with its attachments' links" : "", chars, used, limit);
        api_problem_ext (req, 422, "reply-too-long", detail,
                         json_pack ("{s:s, s:I}", "channel", used, "limit", (json_int_t)limit));
        return -1;
    }
    return 0;
}

/* The body's "reply_to" and "visibility" into *reply_to (lent by body,
 * NULL: none) and *vis; 422 invalid when they are not what they must be.
 * 0, or -1 when answered. */
static int
s_reply_fields (rt_http_request_t *req, const json_t *body, bool note, const char **reply_to,
                reply_visibility_t *vis)
{
    const json_t *jr = json_object_get (body, "reply_to"),
                 *jv = json_object_get (body, "visibility");
    const char *v = json_string_value (jv);
    *reply_to = json_string_value (jr);
    *vis = REPLY_VISIBILITY_NONE;
    rt_uuid_t u;
    if (jr && (!*reply_to || strlen (*reply_to) != ROUTING_ID_LEN ||
               rt_uuid_parse (*reply_to, &u) != 0)) {
        rt_http_problem (req, 422, "invalid",
                         "\"reply_to\" must be the id of an inbound message of this conversation");
        return -1;
    }
    if (jv) {
        if (v && strcmp (v, "public") == 0)
            *vis = REPLY_VISIBILITY_PUBLIC;
        else if (v && strcmp (v, "private") == 0)
            *vis = REPLY_VISIBILITY_PRIVATE;
        else {
            rt_http_problem (req, 422, "invalid", "\"visibility\" must be public or private");
            return -1;
        }
        if (!*reply_to) {
            rt_http_problem (req, 422, "invalid",
                             "\"visibility\" needs \"reply_to\": the comment the reply answers");
            return -1;
        }
    }
    if (note && *reply_to) {
        rt_http_problem (req, 422, "invalid",
                         "a note answers nobody: \"reply_to\" goes with a reply to the customer");
        return -1;
    }
    return 0;
}

/* Answers a refusal of reply_resolve. */
static void
s_reply_problem (rt_http_request_t *req, reply_status_t st, const reply_target_t *t,
                 const char *detail)
{
    static const char *const types[] = {
        [REPLY_NOT_COMMENT] = "not-a-comment",  [REPLY_LIVE_PUBLIC] = "public-reply-live",
        [REPLY_DELETED] = "comment-deleted",    [REPLY_CLOSED] = "private-reply-closed",
        [REPLY_ALREADY] = "private-reply-used",
    };
    switch (st) {
    case REPLY_NOT_FOUND:
        /* An unknown id is 404 wherever it is named (the path, or a body's
         * "with" in a merge): the same answer as an id of another
         * conversation, which says nothing of it. */
        rt_http_problem (req, 404, "not-found", detail);
        break;
    case REPLY_CLOSED:
        api_problem_ext (req, 422, types[st], detail,
                         json_pack ("{s:s}", "private_reply_until", t->until_text));
        break;
    case REPLY_NOT_COMMENT:
    case REPLY_LIVE_PUBLIC:
    case REPLY_DELETED:
    case REPLY_ALREADY:
        rt_http_problem (req, 422, types[st], detail);
        break;
    default:
        rt_log (RT_LOG_ERROR, "operator API: reply target not read", rt_log_str ("error", detail));
        rt_http_problem (req, 503, "database", "the database failed; try again");
        break;
    }
}

void
api_post_message (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    PGresult *conv = NULL, *res = NULL;
    const char *id = rt_http_param (req, "id"), *text, *chname, *key;
    json_t *body = NULL, *jpriv, *jtext;
    char msgid[ROUTING_ID_LEN + 1], suffix[23], err[256] = "", detail[256];
    const rt_channel_t *ch = NULL;
    routing_attachment_t atts[RT_ATTACHMENTS_MAX];
    size_t natts = 0;
    bool priv, replay = false;
    routing_status_t st;
    const char *reply_to = NULL;
    reply_visibility_t vis = REPLY_VISIBILITY_NONE;
    reply_target_t target = {0};
    reply_status_t rst;
    if (api_begin (arg, req, &caller) != 0)
        return;
    conv = api_conv_get (req, &caller, id);
    if (!conv)
        return;
    body = rt_http_body_json (req);
    if (!body)
        goto cleanup;
    jtext = json_object_get (body, "text");
    text = json_string_value (jtext);
    jpriv = json_object_get (body, "private");
    if (!json_is_object (body) || (jtext && !text) || (jpriv && !json_is_boolean (jpriv))) {
        rt_http_problem (req, 422, "invalid",
                         "the body must be an object with a string \"text\", and \"private\" "
                         "a boolean when given");
        goto cleanup;
    }
    if (s_attachments (body, atts, &natts, detail, sizeof detail) != 0) {
        rt_http_problem (req, 422, "invalid", detail);
        goto cleanup;
    }
    priv = json_is_true (jpriv);
    if (s_reply_fields (req, body, priv, &reply_to, &vis) != 0)
        goto cleanup;
    if (!text)
        text = "";
    if (!text[0] && (priv || natts == 0)) {
        rt_http_problem (req, 422, "invalid",
                         priv ? "a note needs a non-empty \"text\""
                              : "a reply needs a non-empty \"text\" or \"attachments\"");
        goto cleanup;
    }
    if (priv && natts > 0) {
        rt_http_problem (req, 422, "invalid",
                         "\"attachments\" go to the customer: a private note carries none");
        goto cleanup;
    }
    chname = json_string_value (json_object_get (body, "channel"));
    if (json_object_get (body, "channel") && !chname) {
        rt_http_problem (req, 422, "invalid", "\"channel\" must be a channel's name");
        goto cleanup;
    }
    if (chname) {
        ch = rt_channel_by_name (chname);
        if (!ch) {
            snprintf (detail, sizeof detail, "no channel \"%.64s\"", chname);
            rt_http_problem (req, 422, "invalid", detail);
            goto cleanup;
        }
    }
    key = rt_http_header (req, "Idempotency-Key");
    if (key)
        s_derived_id (rt_http_principal (req), key, msgid, suffix);
    else {
        rt_uuid_t u = rt_uuid_v7 ();
        rt_uuid_format (&u, msgid);
    }
    if (!priv && !reply_to &&
        s_fits (req, ch ? ch->name : PQgetvalue (conv, 0, C_CHANNEL), text, atts, natts) != 0)
        goto cleanup;
    if (rt_db_begin (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    if (key) {
        const char *v[2] = {id, suffix};
        res = rt_db_exec_prepared (caller.db, "api_sent", 2, v, NULL, NULL, 0);
        if (!res) {
            rt_db_rollback (caller.db);
            api_db_problem (req, caller.db);
            goto cleanup;
        }
        if (PQntuples (res) == 1) {
            snprintf (msgid, sizeof msgid, "%s", PQgetvalue (res, 0, 0));
            replay = true;
        }
    }
    if (reply_to) {
        /* Where the reply goes is the message's: the channel it came on,
         * under the comment or to its author. */
        rst = reply_resolve (caller.db, id, reply_to, vis, rt_clock_now_ms (), replay, &target,
                             detail, sizeof detail);
        if (rst != REPLY_OK) {
            rt_db_rollback (caller.db);
            s_reply_problem (req, rst, &target, detail);
            goto cleanup;
        }
        if (ch && target.origin && strcmp (ch->name, target.channel) != 0) {
            rt_db_rollback (caller.db);
            snprintf (detail, sizeof detail, "a reply to a comment goes on its channel (%s)",
                      target.channel);
            rt_http_problem (req, 422, "invalid", detail);
            goto cleanup;
        }
        if (!ch)
            ch = rt_channel_by_name (target.channel);
        if (s_fits (req, ch ? ch->name : PQgetvalue (conv, 0, C_CHANNEL), text, atts, natts) != 0) {
            rt_db_rollback (caller.db);
            goto cleanup;
        }
    }
    if (priv)
        st = routing_note (caller.db, id, caller.who, msgid, text, err, sizeof err);
    else {
        routing_outbound_t out = {.conversation_id = id,
                                  .operator_id = caller.who,
                                  .message_id = msgid,
                                  .text = text,
                                  .channel =
                                      ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED,
                                  .attachments = natts ? atts : NULL,
                                  .n_attachments = natts,
                                  .reply_to = reply_to,
                                  .reply_origin = target.origin,
                                  .public_reply = target.public_reply};
        routing_outbound_result_t r;
        st = routing_outbound (caller.db, &out, &r, err, sizeof err);
        if (st == ROUTING_OK)
            st = routing_outbound_emit (caller.db, &out, &r, err, sizeof err);
    }
    if (st != ROUTING_OK) {
        rt_db_rollback (caller.db);
        api_routing_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    rt_http_reply_json (req, 202, json_pack ("{s:s}", "message_id", msgid));
cleanup:
    reply_target_free (&target);
    PQclear (res);
    PQclear (conv);
    json_decref (body);
}

/* --- POST .../assign, resolve, snooze, reopen --- */

/* Unix ms of an RFC 3339 time ("2026-05-01T10:00:00Z", fraction and
 * offset optional parts), or -1. */
static int64_t
s_rfc3339 (const char *s)
{
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
    int64_t ms = 0, scale = 100;
    const char *p;
    if (!s || sscanf (s, "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19 || !rt_civil_valid (y, mo, d) || h > 23 || mi > 59 || sec > 60)
        return -1;
    p = s + n;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z')
        p++;
    else if ((*p == '+' || *p == '-') && sscanf (p + 1, "%2d:%2d", &oh, &om) == 2 &&
             strlen (p) == 6) {
        int sign = *p == '-' ? -1 : 1;
        oh *= sign;
        om *= sign;
        p += 6;
    } else
        return -1;
    if (*p)
        return -1;
    return ((rt_civil_days (y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - (oh * 3600 + om * 60)) *
               1000 +
           ms;
}

/* What one state change calls. */
typedef enum { S_RESOLVE, S_SNOOZE, S_REOPEN, S_ASSIGN } s_change_t;

static void
s_change (rt_http_request_t *req, void *arg, s_change_t what)
{
    api_caller_t caller;
    PGresult *conv = NULL;
    const char *id = rt_http_param (req, "id"), *op = NULL, *team = NULL;
    json_t *body = NULL, *jv;
    char err[256] = "";
    int64_t until = 0, version = 0;
    routing_status_t st;
    if (api_begin (arg, req, &caller) != 0)
        return;
    conv = api_conv_get (req, &caller, id);
    if (!conv)
        return;
    if (what == S_SNOOZE || what == S_ASSIGN) {
        body = rt_http_body_json (req);
        if (!body)
            goto cleanup;
        if (!json_is_object (body)) {
            rt_http_problem (req, 422, "invalid", "the body must be a JSON object");
            goto cleanup;
        }
    }
    if (what == S_SNOOZE) {
        until = s_rfc3339 (json_string_value (json_object_get (body, "until")));
        if (until < 0) {
            rt_http_problem (req, 422, "invalid", "\"until\" must be an RFC 3339 date-time");
            goto cleanup;
        }
        if (until <= rt_clock_now_ms ()) {
            rt_http_problem (req, 422, "invalid", "\"until\" must be in the future");
            goto cleanup;
        }
    }
    if (what == S_ASSIGN) {
        op = json_string_value (json_object_get (body, "operator_id"));
        team = json_string_value (json_object_get (body, "team_id"));
        jv = json_object_get (body, "version");
        if ((!op) == (!team) || (jv && !json_is_integer (jv))) {
            rt_http_problem (req, 422, "invalid",
                             "give exactly one of \"operator_id\" and \"team_id\" (strings), and "
                             "\"version\" an integer when given");
            goto cleanup;
        }
        version =
            jv ? json_integer_value (jv) : strtoll (PQgetvalue (conv, 0, C_VERSION), NULL, 10);
    }
    if (rt_db_begin (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    switch (what) {
    case S_RESOLVE:
        st = routing_resolve (caller.db, id, caller.who, err, sizeof err);
        break;
    case S_SNOOZE:
        st = routing_snooze (caller.db, id, until, caller.who, err, sizeof err);
        break;
    case S_REOPEN:
        st = routing_reopen (caller.db, id, caller.who, err, sizeof err);
        break;
    default:
        st = routing_transfer (caller.db, id, op, team, caller.who, version, NULL, err, sizeof err);
        break;
    }
    if (st != ROUTING_OK) {
        rt_db_rollback (caller.db);
        api_routing_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    api_reply_conv (req, &caller, id, 200);
cleanup:
    PQclear (conv);
    json_decref (body);
}

void
api_assign (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_ASSIGN);
}

void
api_resolve (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_RESOLVE);
}

void
api_snooze (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_SNOOZE);
}

void
api_reopen (rt_http_request_t *req, void *arg)
{
    s_change (req, arg, S_REOPEN);
}

/* --- PUT /v1/operators/me/presence --- */

void
api_presence (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    json_t *body;
    const char *p;
    char err[256] = "";
    size_t handed = 0;
    routing_status_t st;
    if (api_begin (arg, req, &caller) != 0)
        return;
    body = rt_http_body_json (req);
    if (!body)
        return;
    p = json_string_value (json_object_get (body, "presence"));
    if (!p ||
        (strcmp (p, "online") != 0 && strcmp (p, "away") != 0 && strcmp (p, "offline") != 0)) {
        rt_http_problem (req, 422, "invalid", "\"presence\" must be online, away or offline");
        goto cleanup;
    }
    if (rt_db_begin (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    st = routing_presence (caller.db, caller.who, p, rt_clock_now_ms (), &handed, err, sizeof err);
    if (st != ROUTING_OK) {
        rt_db_rollback (caller.db);
        api_routing_problem (req, st, err);
        goto cleanup;
    }
    if (rt_db_commit (caller.db) != 0) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    rt_http_reply_json (req, 200,
                        json_pack ("{s:s, s:s, s:I}", "operator_id", caller.who, "presence", p,
                                   "handed", (json_int_t)handed));
cleanup:
    json_decref (body);
}
