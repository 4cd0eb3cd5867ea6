/*
 * mailgun: Mailgun's inbound route webhook (a route's forward() action),
 * for inboxes of channel EMAIL.
 *
 * A POST of the parsed mail as a form: application/x-www-form-urlencoded,
 * or multipart/form-data when the mail has attachments (415 otherwise).
 * The signature is in the form itself: `signature` is the hex
 * HMAC-SHA256, keyed with the webhook signing key (the inbox secret, or
 * the previous one during a rotation), of `timestamp` followed by `token`.
 * It does not cover the rest of the body, so freshness and one-time use
 * stand in for that: a timestamp older than the inbox config's "max_age"
 * seconds (default 300) or more than 60 s ahead is "stale" (403), and a
 * token seen before is "replayed" (403), checked through req->replay_check
 * and remembered until the timestamp would be stale anyway. The order is
 * signature, then age, then replay, so that only genuine fresh tokens are
 * ever stored, and the replay check is the last step, so that a request
 * refused for another reason does not spend its token.
 *
 * The mail -> InboundMessage: Message-Id (brackets removed; without one, a
 * digest of sender, subject, date and text, stable across Mailgun's
 * retries) as the external id; the From header's address (domain lower
 * case) as the external user and e-mail, its display name, else the
 * envelope `sender`; subject; stripped-text (the reply without the quoted
 * thread), else body-plain, as text; In-Reply-To -> reply_to; the first id
 * of References, else In-Reply-To, else Message-Id -> thread_id; Date ->
 * sent_at (else the timestamp); files -> attachments (name, MIME type,
 * size) and, for a stored message's notification, the `attachments` JSON
 * list (URL, name, type, size). A field is looked up by its exact name,
 * then without regard to case ("Message-Id", "Message-ID").
 *
 * A multipart body that breaks off keeps the fields and files read before
 * the break: a mail is never dropped for a broken part, only refused when
 * even its signature could not be read (401).
 */
#include "channel.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "formdata.h"
#include "rt_crypto.h"
#include "rt_form.h"

#define S_DEFAULT_MAX_AGE 300
/* Mailgun's clock may run a little ahead of ours. */
#define S_MAX_AHEAD_MS 60000
/* Mailgun's token is 50 characters; timestamps are seconds. */
#define S_MAX_TOKEN 256
/* Strings of the request the handler made (cleaned copies). */
#define S_MAX_OWNED 32

/* One form field, whichever encoding it came in. */
typedef struct {
    const char *name;         /* lent */
    const uint8_t *data;      /* lent */
    size_t len;               /* bytes of data */
    const char *filename;     /* NULL for a plain field; lent */
    const char *content_type; /* the part's media type, "" when none; lent */
} s_field_t;

typedef struct {
    const ingest_inbox_t *inbox; /* lent */
    const ingest_request_t *req; /* lent */
    ingest_result_t *result;     /* what we fill */
    s_field_t *fields;           /* the form's fields, in order */
    size_t nfields;              /* their number */
    rt_form_t *form;             /* an urlencoded body, parsed */
    formdata_t *multipart;       /* a multipart body, parsed */
    char *owned[S_MAX_OWNED];    /* strings to free at the end */
    size_t nowned;               /* their number */
} s_ctx_t;

static int
s_oom (ingest_result_t *result)
{
    return ingest_fail (result, 503, "internal", "out of memory");
}

/* --- fields --------------------------------------------------------- */

static int
s_load_fields (s_ctx_t *ctx, const char *ctype)
{
    const ingest_request_t *req = ctx->req;
    char err[160];
    size_t i, n;
    if (formdata_is_type (ctype, "application/x-www-form-urlencoded")) {
        ctx->form = rt_form_parse ((const char *)req->body, req->body_len, err, sizeof err);
        if (!ctx->form)
            return ingest_fail (ctx->result, 400, "malformed", "form: %s", err);
        n = rt_form_count (ctx->form);
        ctx->fields = calloc (n ? n : 1, sizeof *ctx->fields);
        if (!ctx->fields)
            return s_oom (ctx->result);
        for (i = 0; i < n; i++) {
            const rt_form_pair_t *p = rt_form_pair (ctx->form, i);
            ctx->fields[i].name = p->name;
            ctx->fields[i].data = (const uint8_t *)p->value;
            ctx->fields[i].len = strlen (p->value);
            ctx->fields[i].content_type = "";
        }
    } else {
        ctx->multipart = formdata_parse (ctype, req->body, req->body_len, err, sizeof err);
        if (!ctx->multipart)
            return ingest_fail (ctx->result, strcmp (err, "out of memory") ? 400 : 503,
                                strcmp (err, "out of memory") ? "malformed" : "internal",
                                "multipart: %s", err);
        n = formdata_count (ctx->multipart);
        ctx->fields = calloc (n ? n : 1, sizeof *ctx->fields);
        if (!ctx->fields)
            return s_oom (ctx->result);
        for (i = 0; i < n; i++) {
            const formdata_part_t *p = formdata_part (ctx->multipart, i);
            ctx->fields[i].name = p->name;
            ctx->fields[i].data = p->data;
            ctx->fields[i].len = p->len;
            ctx->fields[i].filename = p->filename;
            ctx->fields[i].content_type = p->content_type;
        }
    }
    ctx->nfields = n;
    return 0;
}

/* The first plain field of that name; else the first whose name differs
 * only in case. Mailgun posts its own decoded fields ("subject", "from")
 * beside the mail's raw headers ("Subject", "From"), and the former are
 * the ones to read; headers come in whatever case the sender wrote. NULL
 * if none. */
static const s_field_t *
s_field (const s_ctx_t *ctx, const char *name)
{
    size_t i;
    for (i = 0; i < ctx->nfields; i++) {
        if (!ctx->fields[i].filename && strcmp (ctx->fields[i].name, name) == 0)
            return &ctx->fields[i];
    }
    for (i = 0; i < ctx->nfields; i++) {
        if (!ctx->fields[i].filename && strcasecmp (ctx->fields[i].name, name) == 0)
            return &ctx->fields[i];
    }
    return NULL;
}

/* Keeps s to be freed with the context; NULL (and s freed) when full. */
static char *
s_own (s_ctx_t *ctx, char *s)
{
    if (!s || ctx->nowned == S_MAX_OWNED) {
        free (s);
        return NULL;
    }
    ctx->owned[ctx->nowned++] = s;
    return s;
}

/* The field's value as valid UTF-8, owned by the context; "" when the
 * field is absent, NULL when out of memory. */
static const char *
s_text (s_ctx_t *ctx, const char *name)
{
    const s_field_t *f = s_field (ctx, name);
    if (!f)
        return "";
    return s_own (ctx, formdata_utf8_dup (f->data, f->len));
}

/* The field's raw bytes as a NUL-terminated string of at most max bytes,
 * or NULL when absent, too long or holding a NUL. */
static bool
s_raw (const s_ctx_t *ctx, const char *name, char *out, size_t max)
{
    const s_field_t *f = s_field (ctx, name);
    if (!f || f->len == 0 || f->len >= max || memchr (f->data, '\0', f->len))
        return false;
    memcpy (out, f->data, f->len);
    out[f->len] = '\0';
    return true;
}

/* --- signature, age, replay ---------------------------------------- */

static bool
s_signed_with (const char *secret, const char *timestamp, const char *token,
               const uint8_t sig[RT_SHA256_LEN])
{
    char data[2 * S_MAX_TOKEN];
    uint8_t mac[RT_SHA256_LEN];
    int n;
    /* An empty key is one anybody can sign with. */
    if (!secret || !*secret)
        return false;
    n = snprintf (data, sizeof data, "%s%s", timestamp, token);
    rt_hmac_sha256 (secret, strlen (secret), data, (size_t)n, mac);
    return rt_ct_equal (mac, sizeof mac, sig, RT_SHA256_LEN);
}

/* Verifies the signature and the age; fills *ts_s. */
static int
s_verify (s_ctx_t *ctx, const char *timestamp, const char *token, const char *signature,
          int64_t *ts_s)
{
    const json_t *max_age_v = json_object_get (ctx->inbox->config, "max_age");
    int64_t max_age = S_DEFAULT_MAX_AGE, ts_ms, now = ctx->req->now_ms;
    uint8_t sig[RT_SHA256_LEN];
    size_t i;
    if (rt_hex_decode (signature, strlen (signature), sig, sizeof sig) != RT_SHA256_LEN)
        return ingest_fail (ctx->result, 403, "bad_signature", "signature is not 64 hex digits");
    if (!s_signed_with (ctx->inbox->secret, timestamp, token, sig) &&
        !s_signed_with (ctx->inbox->previous_secret, timestamp, token, sig))
        return ingest_fail (ctx->result, 403, "bad_signature",
                            "signature does not match timestamp and token");
    for (i = 0; timestamp[i]; i++) {
        if (!isdigit ((unsigned char)timestamp[i]) || i >= 12)
            return ingest_fail (ctx->result, 400, "malformed",
                                "timestamp \"%.20s\" is not unix seconds", timestamp);
    }
    *ts_s = strtoll (timestamp, NULL, 10);
    if (json_is_integer (max_age_v) && json_integer_value (max_age_v) > 0 &&
        json_integer_value (max_age_v) < INT32_MAX)
        max_age = json_integer_value (max_age_v);
    ts_ms = *ts_s * 1000;
    if (now - ts_ms > max_age * 1000)
        return ingest_fail (ctx->result, 403, "stale",
                            "timestamp is %lld s old, more than max_age %lld s",
                            (long long)((now - ts_ms) / 1000), (long long)max_age);
    if (ts_ms - now > S_MAX_AHEAD_MS)
        return ingest_fail (ctx->result, 403, "stale", "timestamp is %lld s in the future",
                            (long long)((ts_ms - now) / 1000));
    return 0;
}

/* --- mail fields ---------------------------------------------------- */

/* The first message id in a header value ("<a@b> <c@d>" -> "a@b"), owned
 * by the context; "" when there is none, NULL when out of memory. */
static const char *
s_first_id (s_ctx_t *ctx, const char *value)
{
    const char *p = value, *end;
    while (*p && (isspace ((unsigned char)*p) || *p == ','))
        p++;
    if (*p == '<') {
        p++;
        end = strchr (p, '>');
        if (!end)
            end = p + strlen (p);
    } else {
        end = p;
        while (*end && !isspace ((unsigned char)*end) && *end != ',')
            end++;
    }
    while (p < end && isspace ((unsigned char)*p))
        p++;
    while (end > p && isspace ((unsigned char)end[-1]))
        end--;
    return s_own (ctx, strndup (p, (size_t)(end - p)));
}

/* Splits a From header ("Bob <bob@Example.COM>", "\"Doe, J\" <j@x.org>",
 * "bob@x.org (Bob)", "bob@x.org") into a display name and an address with
 * the domain in lower case. Both owned by the context; the address is ""
 * when there is none with an '@'. -1 when out of memory. */
static int
s_parse_from (s_ctx_t *ctx, const char *from, const char **name, const char **address)
{
    const char *lt = strrchr (from, '<'), *gt;
    const char *a = from, *a_end, *n = "", *n_end = "";
    char *addr, *disp, *at;
    size_t i, o;
    if (lt && (gt = strchr (lt, '>'))) {
        a = lt + 1;
        a_end = gt;
        n = from;
        n_end = lt;
    } else {
        const char *paren = strchr (from, '(');
        a_end = paren ? paren : from + strlen (from);
        if (paren) {
            const char *close = strrchr (paren, ')');
            n = paren + 1;
            n_end = close ? close : paren + strlen (paren);
        }
    }
    while (a < a_end && isspace ((unsigned char)*a))
        a++;
    while (a_end > a && isspace ((unsigned char)a_end[-1]))
        a_end--;
    addr = s_own (ctx, strndup (a, (size_t)(a_end - a)));
    if (!addr)
        return -1;
    at = strrchr (addr, '@');
    if (!at || at == addr || !at[1] || strpbrk (addr, " \t\"<>"))
        addr[0] = '\0';
    else {
        for (at++; *at; at++)
            *at = (char)tolower ((unsigned char)*at);
    }
    while (n < n_end && isspace ((unsigned char)*n))
        n++;
    while (n_end > n && isspace ((unsigned char)n_end[-1]))
        n_end--;
    if (n_end - n >= 2 && *n == '"' && n_end[-1] == '"') {
        n++;
        n_end--;
    }
    disp = s_own (ctx, malloc ((size_t)(n_end - n) + 1));
    if (!disp)
        return -1;
    for (i = 0, o = 0; n + i < n_end; i++) {
        if (n[i] == '\\' && n + i + 1 < n_end)
            i++;
        disp[o++] = n[i];
    }
    disp[o] = '\0';
    *name = disp;
    *address = addr;
    return 0;
}

/* An RFC 5322 date ("Fri, 26 Apr 2013 11:50:29 -0700") as unix ms; 0
 * when it does not parse. */
static int64_t
s_parse_date (const char *date)
{
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {{"GMT", 0},    {"UT", 0},     {"UTC", 0},    {"Z", 0},
                 {"EST", -300}, {"EDT", -240}, {"CST", -360}, {"CDT", -300},
                 {"MST", -420}, {"MDT", -360}, {"PST", -480}, {"PDT", -420}};
    struct tm tm;
    const char *p = date, *comma = strchr (date, ','), *rest;
    long offset = 0;
    size_t i;
    time_t t;
    if (comma && comma - date <= 4)
        p = comma + 1;
    memset (&tm, 0, sizeof tm);
    rest = strptime (p, " %d %b %Y %H:%M", &tm);
    if (!rest)
        return 0;
    if (*rest == ':') {
        rest = strptime (rest, ":%S", &tm);
        if (!rest)
            return 0;
    }
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if ((*rest == '+' || *rest == '-') && isdigit ((unsigned char)rest[1]) &&
        isdigit ((unsigned char)rest[2]) && isdigit ((unsigned char)rest[3]) &&
        isdigit ((unsigned char)rest[4])) {
        offset =
            ((rest[1] - '0') * 10 + (rest[2] - '0')) * 60 + (rest[3] - '0') * 10 + (rest[4] - '0');
        if (*rest == '-')
            offset = -offset;
    } else {
        for (i = 0; i < sizeof zones / sizeof zones[0]; i++) {
            size_t zl = strlen (zones[i].name);
            if (strncasecmp (rest, zones[i].name, zl) == 0 && !isalpha ((unsigned char)rest[zl])) {
                offset = zones[i].minutes;
                break;
            }
        }
    }
    t = timegm (&tm);
    if (t == (time_t)-1 || t < 0)
        return 0;
    return ((int64_t)t - offset * 60) * 1000;
}

static const char *
s_kind (const char *type)
{
    if (strncmp (type, "image/", 6) == 0)
        return "image";
    if (strncmp (type, "video/", 6) == 0)
        return "video";
    if (strncmp (type, "audio/", 6) == 0)
        return "audio";
    return "document";
}

static int
s_attachments (s_ctx_t *ctx, Retain__V1__InboundMessage *msg)
{
    const s_field_t *stored = s_field (ctx, "attachments");
    size_t i;
    for (i = 0; i < ctx->nfields; i++) {
        const s_field_t *f = &ctx->fields[i];
        Retain__V1__Attachment *a;
        if (!f->filename)
            continue;
        a = ingest_attachment_add (msg, s_kind (f->content_type));
        if (!a || ingest_set (&a->name, f->filename) != 0 ||
            ingest_set (&a->mime_type, f->content_type) != 0)
            return -1;
        a->size = f->len;
    }
    /* A stored message's notification lists its attachments as JSON. */
    if (stored) {
        json_t *list = json_loadb ((const char *)stored->data, stored->len, 0, NULL);
        json_t *item;
        int rc = 0;
        json_array_foreach (list, i, item)
        {
            const char *type = json_string_value (json_object_get (item, "content-type"));
            const json_t *size = json_object_get (item, "size");
            Retain__V1__Attachment *a = ingest_attachment_add (msg, s_kind (type ? type : ""));
            if (!a ||
                ingest_set (&a->url, json_string_value (json_object_get (item, "url"))) != 0 ||
                ingest_set (&a->name, json_string_value (json_object_get (item, "name"))) != 0 ||
                ingest_set (&a->mime_type, type) != 0) {
                rc = -1;
                break;
            }
            if (json_is_integer (size) && json_integer_value (size) > 0)
                a->size = (uint64_t)json_integer_value (size);
        }
        json_decref (list);
        return rc;
    }
    return 0;
}

/* An external id for a mail without Message-Id, the same for every
 * delivery of that mail. */
static const char *
s_digest_id (s_ctx_t *ctx, const char *from, const char *subject, const char *date,
             const char *body)
{
    char *joined = NULL, *id = NULL, hex[2 * RT_SHA256_LEN + 1];
    uint8_t digest[RT_SHA256_LEN];
    int n = asprintf (&joined, "%s\n%s\n%s\n%s", from, subject, date, body);
    if (n < 0)
        return NULL;
    rt_sha256 (joined, (size_t)n, digest);
    free (joined);
    rt_hex_encode (digest, sizeof digest, hex);
    if (asprintf (&id, "sha256:%s", hex) < 0)
        return NULL;
    return s_own (ctx, id);
}

/* --- the handler ---------------------------------------------------- */

static int
s_mail (s_ctx_t *ctx, const char *token, int64_t ts_s)
{
    const char *from = s_text (ctx, "from"), *sender = s_text (ctx, "sender");
    const char *subject = s_text (ctx, "subject"), *date = s_text (ctx, "Date");
    const char *stripped = s_text (ctx, "stripped-text"), *plain = s_text (ctx, "body-plain");
    const char *message_id_h = s_text (ctx, "Message-Id");
    const char *in_reply_to_h = s_text (ctx, "In-Reply-To");
    const char *references_h = s_text (ctx, "References");
    const char *name = "", *address = "", *message_id, *in_reply_to, *first_ref, *thread, *text;
    Retain__V1__InboundMessage *msg = NULL;
    int64_t sent_at;
    if (!from || !sender || !subject || !date || !stripped || !plain || !message_id_h ||
        !in_reply_to_h || !references_h)
        return s_oom (ctx->result);
    message_id = s_first_id (ctx, message_id_h);
    in_reply_to = s_first_id (ctx, in_reply_to_h);
    first_ref = s_first_id (ctx, references_h);
    if (!message_id || !in_reply_to || !first_ref || s_parse_from (ctx, from, &name, &address))
        return s_oom (ctx->result);
    if (!*address) {
        const char *ignored;
        if (s_parse_from (ctx, sender, &ignored, &address))
            return s_oom (ctx->result);
    }
    if (!*address)
        return ingest_fail (ctx->result, 400, "malformed",
                            "neither from nor sender holds an e-mail address");
    text = *stripped ? stripped : plain;
    if (!*message_id) {
        message_id = s_digest_id (ctx, address, subject, date, plain);
        if (!message_id)
            return s_oom (ctx->result);
    }
    thread = *first_ref ? first_ref : *in_reply_to ? in_reply_to : message_id;
    sent_at = *date ? s_parse_date (date) : 0;
    if (!sent_at)
        sent_at = ts_s * 1000;

    msg = ingest_inbound_new (ctx->inbox);
    if (!msg)
        return s_oom (ctx->result);
    msg->sent_at = sent_at;
    if (ingest_set (&msg->external_id, message_id) ||
        ingest_set (&msg->external_user_id, address) || ingest_set (&msg->email, address) ||
        ingest_set (&msg->display_name, name) || ingest_set (&msg->subject, subject) ||
        ingest_set (&msg->text, text) || ingest_set (&msg->reply_to, in_reply_to) ||
        ingest_set (&msg->thread_id, thread) || s_attachments (ctx, msg) != 0) {
        protobuf_c_message_free_unpacked (&msg->base, NULL);
        return s_oom (ctx->result);
    }
    if (ctx->req->replay_check) {
        int64_t max_age = S_DEFAULT_MAX_AGE;
        const json_t *v = json_object_get (ctx->inbox->config, "max_age");
        if (json_is_integer (v) && json_integer_value (v) > 0 && json_integer_value (v) < INT32_MAX)
            max_age = json_integer_value (v);
        /* After ts + max_age the timestamp is refused as stale anyway. */
        if (ctx->req->replay_check (ctx->req->replay_arg, token, (ts_s + max_age) * 1000) != 0) {
            protobuf_c_message_free_unpacked (&msg->base, NULL);
            return ingest_fail (ctx->result, 403, "replayed", "token was already used");
        }
    }
    if (ingest_item_add (ctx->result, "InboundMessage", message_id, &msg->base,
                         ingest_channel_name (ctx->inbox->channel), ctx->inbox->id, address) != 0)
        return s_oom (ctx->result);
    return 0;
}

int
mailgun_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    s_ctx_t ctx = {.inbox = inbox, .req = req, .result = result};
    const char *ctype = ingest_header (req, "Content-Type");
    char timestamp[32], token[S_MAX_TOKEN], signature[2 * RT_SHA256_LEN + 8];
    int64_t ts_s = 0;
    size_t i;
    int rc = -1;
    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed", "method %.16s not allowed: POST",
                            req->method);
    if (!formdata_is_type (ctype, "application/x-www-form-urlencoded") &&
        !formdata_is_type (ctype, "multipart/form-data"))
        return ingest_fail (result, 415, "unsupported_media_type",
                            "Content-Type %.60s is neither application/x-www-form-urlencoded nor "
                            "multipart/form-data",
                            ctype ? ctype : "(none)");
    if (s_load_fields (&ctx, ctype) != 0)
        goto cleanup;
    if (!s_field (&ctx, "signature") || !s_field (&ctx, "timestamp") || !s_field (&ctx, "token")) {
        ingest_fail (result, 401, "missing_signature", "signature, timestamp or token missing");
        goto cleanup;
    }
    if (!s_raw (&ctx, "signature", signature, sizeof signature) ||
        !s_raw (&ctx, "timestamp", timestamp, sizeof timestamp) ||
        !s_raw (&ctx, "token", token, sizeof token)) {
        ingest_fail (result, 403, "bad_signature",
                     "signature, timestamp or token is empty or too long");
        goto cleanup;
    }
    if (s_verify (&ctx, timestamp, token, signature, &ts_s) != 0)
        goto cleanup;
    rc = s_mail (&ctx, token, ts_s);
cleanup:
    for (i = 0; i < ctx.nowned; i++)
        free (ctx.owned[i]);
    free (ctx.fields);
    rt_form_destroy (&ctx.form);
    formdata_destroy (&ctx.multipart);
    return rc;
}
