/*
 * api_transcript: a conversation's transcript, for someone without an API
 * key (the shop's owner, a colleague in another team) to open by link.
 *
 *   POST /v1/conversations/{id}/transcript-link {"expires_in"?: seconds}
 *        201 {"url", "text_url", "expires_at"}: made by an operator who
 *        may see the conversation; valid 7 days unless asked otherwise
 *        (1 minute to 30 days).
 *   GET  /v1/transcripts/{token}[?format=json|text]
 *        no key: the link is the credential. 200 with the conversation,
 *        its customer and every timeline entry in order (JSON), or the
 *        same as plain text, a line per entry.
 *
 * The token is 32 bytes from the kernel's CSPRNG in hex; only its SHA-256
 * is stored (routing.transcript_links), so the table read by someone else
 * opens nothing. An unknown, malformed or expired token is 404, the same
 * answer for each, so a guess learns nothing; the answers carry
 * `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and
 * `X-Robots-Tag: noindex`, as a link that is a password should. The
 * transcript is read when the link is opened: messages that came after
 * the link was made are in it. Private notes are in it: the readers are
 * the shop's own people. At most S_ENTRIES_MAX entries are shown, the
 * answer saying so ("truncated") when there were more.
 *
 * In the text form a message's own line breaks are indented, so that no
 * line of a customer's text can pass for an entry of its own.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_int.h"
#include "rt_buf.h"
#include "rt_clock.h"
#include "rt_codec.h"
#include "rt_crypto.h"
#include "rt_log.h"

#define S_TOKEN_BYTES   32
#define S_TOKEN_HEX     (S_TOKEN_BYTES * 2)
#define S_TTL_DEFAULT_S (7 * 86400)
#define S_TTL_MIN_S     60
#define S_TTL_MAX_S     (30 * 86400)
#define S_ENTRIES_MAX   10000
/* Links expired longer ago than this are deleted when a link is made. */
#define S_PURGE_AFTER "interval '1 day'"

#define S_TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* $1 hash (hex), $2 conversation, $3 operator, $4 now and $5 expiry (unix ms). */
static const char *s_sql_add =
    "INSERT INTO routing.transcript_links (token_hash, conversation_id, created_by, created_at,"
    " expires_at) VALUES (decode($1, 'hex'), $2::uuid, $3, to_timestamp($4::float8 / 1000),"
    " to_timestamp($5::float8 / 1000)) RETURNING " S_TS ("expires_at");

/* $1 now (unix ms). */
static const char *s_sql_purge =
    "DELETE FROM routing.transcript_links"
    " WHERE expires_at < to_timestamp($1::float8 / 1000) - " S_PURGE_AFTER;

/* $1 hash (hex), $2 now: the conversation, its customer, the link's expiry. */
static const char *s_sql_open =
    "SELECT c.id, c.status, c.channel, " S_TS ("c.created_at") ", c.customer_id, cu.name, " S_TS (
        "l.expires_at") " FROM routing.transcript_links l"
                        " JOIN routing.conversations c ON c.id = l.conversation_id"
                        " JOIN crm.customers cu ON cu.id = c.customer_id"
                        " WHERE l.token_hash = decode($1, 'hex')"
                        " AND l.expires_at > to_timestamp($2::float8 / 1000)";

/* $1 conversation, $2 the most rows. */
static const char *s_sql_entries = "SELECT seq, kind, channel, operator_id, body::text, " S_TS (
    "occurred_at") " FROM routing.timeline WHERE conversation_id = $1::uuid ORDER BY seq"
                   " LIMIT $2::integer";

int
api_transcript_prepare (rt_db_t *db)
{
    if (rt_db_prepare (db, "api_tr_add", s_sql_add) != 0 ||
        rt_db_prepare (db, "api_tr_purge", s_sql_purge) != 0 ||
        rt_db_prepare (db, "api_tr_open", s_sql_open) != 0 ||
        rt_db_prepare (db, "api_tr_entries", s_sql_entries) != 0)
        return -1;
    return 0;
}

/* The token's hash as hex (65 bytes). */
static void
s_hash_hex (const char *token, char out[RT_SHA256_LEN * 2 + 1])
{
    uint8_t h[RT_SHA256_LEN];
    rt_sha256 (token, strlen (token), h);
    rt_hex_encode (h, sizeof h, out);
}

static void
s_link_headers (rt_http_request_t *req)
{
    rt_http_header_add (req, "Cache-Control", "no-store");
    rt_http_header_add (req, "Referrer-Policy", "no-referrer");
    rt_http_header_add (req, "X-Robots-Tag", "noindex");
}

/* --- POST /v1/conversations/{id}/transcript-link --- */

/* The link's lifetime asked in body (NULL: none), or -1 having answered. */
static long
s_ttl (rt_http_request_t *req, const json_t *body)
{
    const json_t *e = body ? json_object_get (body, "expires_in") : NULL;
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)body, key, value)
    {
        if (strcmp (key, "expires_in") != 0) {
            char detail[160];
            snprintf (detail, sizeof detail, "unknown field \"%.64s\"", key);
            rt_http_problem (req, 400, "bad-request", detail);
            return -1;
        }
    }
    if (!e)
        return S_TTL_DEFAULT_S;
    if (!json_is_integer (e) || json_integer_value (e) < S_TTL_MIN_S ||
        json_integer_value (e) > S_TTL_MAX_S) {
        rt_http_problem (req, 422, "invalid",
                         "expires_in is a number of seconds from 60 to 2592000 (30 days)");
        return -1;
    }
    return (long)json_integer_value (e);
}

void
api_transcript_link (rt_http_request_t *req, void *arg)
{
    api_caller_t caller;
    PGresult *conv = NULL, *res = NULL;
    json_t *body = NULL;
    const char *id = rt_http_param (req, "id");
    uint8_t raw[S_TOKEN_BYTES];
    char token[S_TOKEN_HEX + 1], hash[RT_SHA256_LEN * 2 + 1], now_s[24], until_s[24];
    char url[S_TOKEN_HEX + 32], text_url[S_TOKEN_HEX + 48];
    size_t len = 0;
    int64_t now;
    long ttl;

    if (api_begin (arg, req, &caller) != 0)
        return;
    conv = api_conv_get (req, &caller, id);
    if (!conv)
        return;
    rt_http_body (req, &len);
    if (len > 0) {
        body = rt_http_body_json (req);
        if (!body)
            goto cleanup;
        if (!json_is_object (body)) {
            rt_http_problem (req, 400, "bad-request", "the body is a JSON object");
            goto cleanup;
        }
    }
    ttl = s_ttl (req, body);
    if (ttl < 0)
        goto cleanup;
    if (rt_random (raw, sizeof raw) != 0) {
        rt_log (RT_LOG_ERROR, "transcript link: no random bytes");
        rt_http_problem (req, 500, "internal", "no random bytes");
        goto cleanup;
    }
    rt_hex_encode (raw, sizeof raw, token);
    s_hash_hex (token, hash);
    now = rt_clock_now_ms ();
    snprintf (now_s, sizeof now_s, "%lld", (long long)now);
    snprintf (until_s, sizeof until_s, "%lld", (long long)(now + (int64_t)ttl * 1000));
    {
        const char *v[1] = {now_s};
        PGresult *p = rt_db_exec_prepared (caller.db, "api_tr_purge", 1, v, NULL, NULL, 0);
        PQclear (p);
    }
    {
        const char *v[5] = {hash, PQgetvalue (conv, 0, C_ID), caller.who, now_s, until_s};
        res = rt_db_exec_prepared (caller.db, "api_tr_add", 5, v, NULL, NULL, 0);
    }
    if (!res || PQntuples (res) != 1) {
        api_db_problem (req, caller.db);
        goto cleanup;
    }
    snprintf (url, sizeof url, "/v1/transcripts/%s", token);
    snprintf (text_url, sizeof text_url, "/v1/transcripts/%s?format=text", token);
    rt_log (RT_LOG_INFO, "transcript link made", rt_log_str ("conversation", id),
            rt_log_str ("operator", caller.who), rt_log_int ("expires_in_s", ttl));
    s_link_headers (req);
    rt_http_reply_json (req, 201,
                        json_pack ("{s:s, s:s, s:s}", "url", url, "text_url", text_url,
                                   "expires_at", PQgetvalue (res, 0, 0)));
cleanup:
    json_decref (body);
    PQclear (res);
    PQclear (conv);
}

/* --- GET /v1/transcripts/{token} --- */

/* A member of a body as text, "" when absent. */
static const char *
s_member (const json_t *body, const char *key)
{
    const char *s = json_string_value (json_object_get (body, key));
    return s ? s : "";
}

/* Appends text with every line break followed by an indent. */
static void
s_indented (rt_buf_t *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        /* CRLF and a bare CR are line breaks as LF is. */
        if (*p == '\r' && p[1] == '\n')
            continue;
        if (*p == '\n' || *p == '\r')
            rt_buf_puts (out, "\n    ");
        else
            rt_buf_put (out, p, 1);
    }
}

/* One timeline entry as a line of the text form. */
static void
s_text_entry (rt_buf_t *out, const char *kind, const char *channel, const char *op,
              const json_t *body, const char *at)
{
    rt_buf_printf (out, "[%s] ", at);
    if (strcmp (kind, "inbound") == 0) {
        rt_buf_printf (out, "customer via %s: ", channel ? channel : "?");
        s_indented (out, s_member (body, "text"));
    } else if (strcmp (kind, "outbound") == 0) {
        rt_buf_printf (out, "%s via %s: ", op ? op : "retain", channel ? channel : "?");
        s_indented (out, s_member (body, "text"));
    } else if (strcmp (kind, "note") == 0) {
        rt_buf_printf (out, "note by %s: ", op ? op : "retain");
        s_indented (out, s_member (body, "text"));
    } else if (strcmp (kind, "assignment") == 0) {
        const char *to = s_member (body, "assignee");
        rt_buf_printf (out, "assigned to %s (%s)", *to ? to : "the queue",
                       *s_member (body, "reason") ? s_member (body, "reason") : "manual");
    } else if (strcmp (kind, "status") == 0) {
        rt_buf_printf (out, "status %s", s_member (body, "status"));
        if (*s_member (body, "why"))
            rt_buf_printf (out, " (%s)", s_member (body, "why"));
    } else {
        char *j = json_dumps (body, JSON_COMPACT | JSON_SORT_KEYS);
        rt_buf_printf (out, "%s: ", kind);
        s_indented (out, j ? j : "{}");
        free (j);
    }
    rt_buf_puts (out, "\n");
}

void
api_transcript_open (rt_http_request_t *req, void *arg)
{
    const char *token = rt_http_param (req, "token"), *format;
    char hash[RT_SHA256_LEN * 2 + 1], now_s[24], limit_s[16];
    rt_form_t *q = NULL;
    PGresult *head = NULL, *res = NULL;
    rt_db_t *db;
    bool text;
    int n;

    q = api_query (req);
    if (!q)
        return;
    format = rt_form_get (q, "format");
    if (format && strcmp (format, "json") != 0 && strcmp (format, "text") != 0) {
        rt_http_problem (req, 400, "bad-query", "format is json or text");
        goto cleanup;
    }
    text = format && strcmp (format, "text") == 0;
    /* Anything but the hex of a token is no token: 404 before the
     * database, like one that was never made. */
    if (!token || strlen (token) != S_TOKEN_HEX ||
        strspn (token, "0123456789abcdef") != S_TOKEN_HEX) {
        rt_http_problem (req, 404, "not-found", "no such transcript link, or it expired");
        goto cleanup;
    }
    db = api_db (arg);
    if (!db) {
        rt_http_problem (req, 503, "database", "the database is unavailable; try again");
        goto cleanup;
    }
    s_hash_hex (token, hash);
    snprintf (now_s, sizeof now_s, "%lld", (long long)rt_clock_now_ms ());
    {
        const char *v[2] = {hash, now_s};
        head = rt_db_exec_prepared (db, "api_tr_open", 2, v, NULL, NULL, 0);
    }
    if (!head) {
        api_db_problem (req, db);
        goto cleanup;
    }
    if (PQntuples (head) != 1) {
        rt_http_problem (req, 404, "not-found", "no such transcript link, or it expired");
        goto cleanup;
    }
    snprintf (limit_s, sizeof limit_s, "%d", S_ENTRIES_MAX + 1);
    {
        const char *v[2] = {PQgetvalue (head, 0, 0), limit_s};
        res = rt_db_exec_prepared (db, "api_tr_entries", 2, v, NULL, NULL, 0);
    }
    if (!res) {
        api_db_problem (req, db);
        goto cleanup;
    }
    n = PQntuples (res);
    s_link_headers (req);
    if (text) {
        rt_buf_t out = {0};
        rt_buf_printf (&out, "Conversation %s with %s (customer %s), on %s since %s; %s.\n",
                       PQgetvalue (head, 0, 0), PQgetvalue (head, 0, 5), PQgetvalue (head, 0, 4),
                       PQgetvalue (head, 0, 2), PQgetvalue (head, 0, 3), PQgetvalue (head, 0, 1));
        rt_buf_puts (&out, "\n");
        for (int i = 0; i < n && i < S_ENTRIES_MAX; i++) {
            json_t *b = json_loads (PQgetvalue (res, i, 4), 0, NULL);
            s_text_entry (&out, PQgetvalue (res, i, 1),
                          PQgetisnull (res, i, 2) ? NULL : PQgetvalue (res, i, 2),
                          PQgetisnull (res, i, 3) ? NULL : PQgetvalue (res, i, 3), b,
                          PQgetvalue (res, i, 5));
            json_decref (b);
        }
        if (n > S_ENTRIES_MAX)
            rt_buf_printf (&out, "\n(only the first %d entries are shown)\n", S_ENTRIES_MAX);
        if (out.failed)
            rt_http_problem (req, 500, "internal", "out of memory");
        else
            rt_http_reply (req, 200, "text/plain; charset=utf-8", out.data, out.len);
        rt_buf_free (&out);
    } else {
        json_t *items = json_array ();
        for (int i = 0; i < n && i < S_ENTRIES_MAX; i++) {
            json_t *b = json_loads (PQgetvalue (res, i, 4), 0, NULL);
            json_array_append_new (
                items,
                json_pack ("{s:s, s:o, s:o, s:o, s:s}", "kind", PQgetvalue (res, i, 1), "channel",
                           api_str_or_null (res, i, 2), "operator_id", api_str_or_null (res, i, 3),
                           "body", b ? b : json_object (), "at", PQgetvalue (res, i, 5)));
        }
        rt_http_reply_json (
            req, 200,
            json_pack ("{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s}, s:s, s:o, s:b}", "conversation",
                       "id", PQgetvalue (head, 0, 0), "status", PQgetvalue (head, 0, 1), "channel",
                       PQgetvalue (head, 0, 2), "created_at", PQgetvalue (head, 0, 3), "customer",
                       "id", PQgetvalue (head, 0, 4), "name", PQgetvalue (head, 0, 5), "expires_at",
                       PQgetvalue (head, 0, 6), "entries", items, "truncated", n > S_ENTRIES_MAX));
    }
cleanup:
    PQclear (res);
    PQclear (head);
    rt_form_destroy (&q);
}
