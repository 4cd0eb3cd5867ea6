/*
 * parts: an operator's reply as the sends that carry it, and what the
 * sender reads back of a send's media.
 *
 * A reply is text and up to RT_ATTACHMENTS_MAX attachments (rt_attachment.h;
 * parts_refusal refuses the rest with bad_attachment). Where its channel
 * sends no media (rt_channel's caption_max 0) it is one send: the text
 * with each attachment's URL on a line of its own after it (parts_text),
 * and its attachments kept as the record of those links. Where it does
 * (Telegram, one medium a request), the reply becomes parts (notify 008):
 * one send per attachment in their order, the text the first one's
 * caption when it fits a caption, else a message of its own before them;
 * a single medium with a text that fits its caption is one send, no parts.
 *
 * Why parts rather than one send of several requests: a send is the unit
 * of notifyd's contract (committed `sending` before its request, one
 * answer, one outcome), and everything that keeps "nothing lost, nothing
 * twice" (the claim, the lease, the crash policy, the fencing of late
 * answers) works per send. All the parts are made in the consumer's
 * transaction of the request, part 1 under the message id and part k under
 * notify.part_id(message, k), so a replay finds them and a crash leaves
 * all or none. 008's triggers keep their order (a part is due once the one
 * before it is sent) and fail the rest when one fails; outcome.c says the
 * message's events once, under its id. Telegram's sendMediaGroup would be
 * one request, but it takes 2-10 media of which documents group only with
 * documents, one refused item fails the whole album, and it answers
 * several messages: no better for the contract, and not for a text over
 * a caption.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "notifyd.h"
#include "rt_attachment.h"
#include "rt_log.h"
#include "rt_utf8.h"

/* A new send; $9 the status ('queued', or 'failed' with $10-$11), $13
 * the operator who wrote it ('' none), $14 its attachments (JSON, ''
 * none), $15 its part of $16 (0: the message whole), whose id is
 * notify.part_id past the first (notify 008, whose trigger holds a part
 * until the one before it is sent), $17 the comment it answers ('' none),
 * $18 its kind, $19 whether in public (notify 011). */
#define S_INSERT "notify_parts_insert"
static const char *s_insert_sql =
    "INSERT INTO notify.sends (id, event_id, customer_id, conversation_id, channel, inbox,"
    "  recipient, text, status, last_verdict, last_code, last_reason, next_at, created_at,"
    "  updated_at, operator_id, attachments, part_of, part, parts, reply_comment, reply_kind,"
    "  reply_public)"
    " VALUES (CASE WHEN $15::integer > 1 THEN notify.part_id($1::uuid, $15::integer)"
    "               ELSE $1::uuid END, $2::uuid, NULLIF($3, '')::uuid, $4, $5, $6, $7, $8, $9,"
    "  CASE WHEN $9 = 'failed' THEN 'refused' END, $10, $11, to_timestamp($12::bigint / 1000.0),"
    "  to_timestamp($12::bigint / 1000.0), to_timestamp($12::bigint / 1000.0), NULLIF($13, ''),"
    "  NULLIF($14, '')::jsonb, CASE WHEN $15::integer > 0 THEN $1::uuid END,"
    "  NULLIF($15::integer, 0), NULLIF($16::integer, 0), NULLIF($17, ''), NULLIF($18, ''),"
    "  NULLIF($17, '') IS NOT NULL AND $19::boolean)"
    " ON CONFLICT (id) DO NOTHING";

/* A send's media and its place among its message's parts, which the claim
 * does not carry: read for the sends it says have them. */
#define S_READ "notify_parts_read"
static const char *s_read_sql =
    "SELECT COALESCE(attachments::text, ''), COALESCE(part_of::text, ''), COALESCE(part, 0),"
    " COALESCE(parts, 0) FROM notify.sends WHERE id = $1::uuid";

/* One send of a reply: the whole message, or one part of it. */
typedef struct {
    const char *text; /* its text, or its medium's caption ("" for none) */
    int medium;       /* the attachment it carries as a medium, -1 for none */
} s_part_t;

int
parts_prepare (rt_db_t *db)
{
    return rt_db_prepare (db, S_INSERT, s_insert_sql) != 0 ||
                   rt_db_prepare (db, S_READ, s_read_sql) != 0
               ? -1
               : 0;
}

const char *
parts_refusal (const Retain__V1__OutboundMessageRequested *m, char *reason, size_t len)
{
    char why[192];
    if (m->n_attachments > RT_ATTACHMENTS_MAX) {
        snprintf (reason, len, "%zu attachments; a message carries at most %d", m->n_attachments,
                  RT_ATTACHMENTS_MAX);
        return "bad_attachment";
    }
    for (size_t i = 0; i < m->n_attachments; i++) {
        const Retain__V1__Attachment *a = m->attachments[i];
        if (rt_attachment_check (a->kind, a->url, a->name, a->mime_type, why, sizeof why) != 0) {
            snprintf (reason, len, "attachment %zu: %s", i + 1, why);
            return "bad_attachment";
        }
    }
    return NULL;
}

const char *
parts_text (const Retain__V1__OutboundMessageRequested *m, const rt_channel_t *ch, char **owned)
{
    const char *urls[RT_ATTACHMENTS_MAX];
    *owned = NULL;
    if (m->n_attachments == 0 || !ch || ch->caption_max > 0 ||
        m->n_attachments > RT_ATTACHMENTS_MAX)
        return m->text ? m->text : "";
    for (size_t i = 0; i < m->n_attachments; i++)
        urls[i] = m->attachments[i]->url;
    *owned = rt_attachment_text (m->text, urls, m->n_attachments);
    return *owned;
}

/* The JSON array notify.sends keeps of attachments [from, to) (owned),
 * NULL when out of memory. */
static char *
s_json (const Retain__V1__OutboundMessageRequested *m, size_t from, size_t to)
{
    json_t *a = json_array ();
    char *text;
    for (size_t i = from; a && i < to; i++) {
        const Retain__V1__Attachment *x = m->attachments[i];
        json_t *o = rt_attachment_json (x->kind, x->url, x->name, x->mime_type);
        if (!o || json_array_append_new (a, o) != 0) {
            json_decref (a);
            return NULL;
        }
    }
    text = a ? json_dumps (a, JSON_COMPACT) : NULL;
    json_decref (a);
    return text;
}

/* How m goes out on ch, into parts (room for RT_ATTACHMENTS_MAX + 1);
 * how many (the head comment's rule). */
static size_t
s_plan (const Retain__V1__OutboundMessageRequested *m, const rt_channel_t *ch, const char *text,
        s_part_t *parts)
{
    size_t n = 0;
    if (!ch || ch->caption_max <= 0 || m->n_attachments == 0) {
        parts[0] = (s_part_t){text, -1};
        return 1;
    }
    if ((long)rt_utf8_count (text, strlen (text)) > ch->caption_max)
        parts[n++] = (s_part_t){text, -1};
    for (size_t i = 0; i < m->n_attachments; i++) {
        parts[n] = (s_part_t){n == 0 ? text : "", (int)i};
        n++;
    }
    return n;
}

/* Inserts send number part (0: the message whole) of parts, queued or
 * failed with code and reason, carrying text and attachments (JSON, NULL
 * none). 0 or -1. */
static int
s_insert (rt_db_t *db, const Retain__V1__Envelope *event,
          const Retain__V1__OutboundMessageRequested *m, const parts_where_t *at, const char *text,
          const char *attachments, size_t part, size_t parts, const char *code, const char *reason)
{
    char part_s[8], parts_s[8];
    PGresult *r;
    const Retain__V1__Origin *o = m->reply_to;
    bool comment = o && o->comment_id && o->comment_id[0];
    snprintf (part_s, sizeof part_s, "%zu", part);
    snprintf (parts_s, sizeof parts_s, "%zu", parts);
    const char *v[19] = {m->message_id,
                         event->id,
                         m->customer_id && m->customer_id[0] ? m->customer_id : "",
                         m->conversation_id ? m->conversation_id : "",
                         at->channel,
                         at->inbox,
                         at->recipient,
                         text ? text : "",
                         code ? "failed" : "queued",
                         code,
                         code ? reason : NULL,
                         at->now,
                         m->operator_id ? m->operator_id : "",
                         attachments ? attachments : "",
                         part_s,
                         parts_s,
                         comment ? o->comment_id : "",
                         comment && o->kind ? o->kind : "",
                         comment && m->public_reply ? "true" : "false"};
    r = rt_db_exec_prepared (db, S_INSERT, 19, v, NULL, NULL, 0);
    if (!r) {
        rt_log (RT_LOG_WARN, "the consumer's statement failed", rt_log_str ("step", "insert"),
                rt_log_str ("error", rt_db_error (db)));
        return -1;
    }
    PQclear (r);
    return 0;
}

int
parts_refused (rt_db_t *db, const Retain__V1__Envelope *event,
               const Retain__V1__OutboundMessageRequested *m, const parts_where_t *at,
               const char *code, const char *reason)
{
    return s_insert (db, event, m, at, m->text, NULL, 0, 0, code, reason);
}

int
parts_queue (rt_db_t *db, const Retain__V1__Envelope *event,
             const Retain__V1__OutboundMessageRequested *m, const rt_channel_t *ch,
             const parts_where_t *at, const char *text)
{
    s_part_t parts[RT_ATTACHMENTS_MAX + 1];
    size_t n = s_plan (m, ch, text, parts);
    for (size_t k = 0; k < n; k++) {
        /* The whole message keeps all its attachments (the record of the
         * links in its text); a part, the medium it carries. */
        bool some = parts[k].medium >= 0 || (n == 1 && m->n_attachments > 0);
        char *json = NULL;
        int rc;
        if (parts[k].medium >= 0)
            json = s_json (m, (size_t)parts[k].medium, (size_t)parts[k].medium + 1);
        else if (some)
            json = s_json (m, 0, m->n_attachments);
        if (some && !json) {
            rt_log (RT_LOG_WARN, "out of memory", rt_log_str ("step", "attachments"));
            return -1;
        }
        rc = s_insert (db, event, m, at, parts[k].text, json, n > 1 ? k + 1 : 0, n > 1 ? n : 0,
                       NULL, NULL);
        free (json);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* --- the sender's side --- */

int
parts_read (rt_db_t *db, notify_claim_t *c)
{
    const char *v[1] = {c->id};
    PGresult *r;
    if (!c->attached)
        return 0;
    r = rt_db_exec_prepared (db, S_READ, 1, v, NULL, NULL, 0);
    if (!r || PQntuples (r) != 1) {
        PQclear (r);
        return -1;
    }
    free (c->attachments);
    free (c->part_of);
    c->attachments = strdup (PQgetvalue (r, 0, 0));
    c->part_of = strdup (PQgetvalue (r, 0, 1));
    c->part = atoi (PQgetvalue (r, 0, 2));
    c->parts = atoi (PQgetvalue (r, 0, 3));
    PQclear (r);
    return c->attachments && c->part_of ? 0 : -1;
}

/* A string member of a JSON object, NULL when absent or empty. */
static const char *
s_str (const json_t *o, const char *key)
{
    const char *v = json_string_value (json_object_get (o, key));
    return v && v[0] ? v : NULL;
}

int
parts_media (const notify_claim_t *c, json_t **doc, provider_attachment_t *out)
{
    json_t *item;
    size_t i;
    *doc = NULL;
    if (!c->attachments || !c->attachments[0])
        return 0;
    *doc = json_loads (c->attachments, 0, NULL);
    if (!json_is_array (*doc) || json_array_size (*doc) > RT_ATTACHMENTS_MAX)
        return -1;
    json_array_foreach (*doc, i, item)
    {
        out[i] = (provider_attachment_t){.kind = s_str (item, "kind"),
                                         .url = s_str (item, "url"),
                                         .name = s_str (item, "name"),
                                         .mime_type = s_str (item, "mime_type")};
    }
    return (int)json_array_size (*doc);
}
