/*
 * libFuzzer targets for ingestd's channel handlers and parsers, one binary
 * per target, chosen at build time (tests/fuzz/CMakeLists.txt):
 *
 *   fuzz_<channel>      the harness holds the inbox secret and signs every
 *                       mutated input as the provider would, so the
 *                       mutation reaches the parser behind the check, where
 *                       the bugs would be: Telegram's secret token header;
 *                       the hex HMAC-SHA256 of the body in Viber's
 *                       X-Viber-Content-Signature, Meta's X-Hub-Signature-256
 *                       and the PBX's X-Retain-Signature; Twilio's
 *                       X-Twilio-Signature (Base64 HMAC-SHA1 of the URL and
 *                       the sorted parameters); Mailgun's signature field
 *                       (HMAC-SHA256 of the form's timestamp and token,
 *                       written into the form); web chat's visitor_signature
 *                       (HMAC-SHA256 of the visitor id, written into the
 *                       JSON).
 *   fuzz_<channel>_sig  the check itself: nothing is signed, the input
 *                       carries its own signature. Where the channel signs
 *                       in a header, the input's first line is that
 *                       header's value (the PBX's: two lines, signature and
 *                       shared secret; an empty line is no header) and the
 *                       rest is the body; Mailgun and web chat sign in the
 *                       body.
 *   fuzz_form, fuzz_mime  the form and MIME parsers alone.
 *
 * Signatures are computed with OpenSSL directly, not with rt_crypto, so
 * the harness does not lean on the code it drives. The secrets are the
 * fixtures' (tests/fixtures/ingest/<channel>), so a fixture that carries
 * its signature is a valid request to the _sig target as it is.
 *
 * At exit every target prints one line that tests/fuzz/run checks:
 *   retain-fuzz <target>: N runs, A accepted (I items), S refused at the
 *   signature, O refused for another reason
 * (runs: calls of the target; libFuzzer runs some inputs twice to look for
 * leaks). A signed target that accepts nothing is stuck at the signature
 * and fuzzes nothing behind it.
 *
 * With RETAIN_FUZZ_SIGNED_OUT=<dir> a signed target also writes each
 * request it signed into dir in its _sig target's format: that target's
 * seeds, valid requests made from the channel's fixtures.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "channel.h"
#include "channels/formdata.h"
#include "mime.h"
#include "rt_form.h"

/* Longest signature header value an unsigned input sets (a longer line is
 * cut): well past any valid one. */
#define S_MAX_VALUE 256
/* Mailgun's multipart boundary in the fixtures. */
#define S_BOUNDARY "7f1f0a6a2f0b4c9e8d3b2a1c0f9e8d7c"
/* The URL Twilio is said to have called (the handler's req->public_url). */
#define S_TWILIO_URL "https://hooks.example.com/hooks/twilio/shop-sms"
/* Arrival time: the Mailgun fixtures' timestamp, 5 s later. */
#define S_NOW_MS 1700000005000LL

/* One request as the handler will get it. */
typedef struct {
    const uint8_t *body;              /* the input's body, or owned */
    size_t len;                       /* its bytes */
    uint8_t *owned;                   /* a copy rewritten by signing; NULL when none */
    char values[2][S_MAX_VALUE + 80]; /* signature header values, "" for none */
    const char *content_type;         /* the body's media type */
    int64_t now_ms;                   /* when it arrived */
} s_req_t;

/* What a target drives. */
typedef struct {
    const char *name;                /* the channel, as in the fixture folders */
    ingest_handler_fn handler;       /* its handler */
    Retain__V1__Channel channels[3]; /* inbox channels every input is tried on */
    size_t nchannels;                /* their number */
    const char *secret;              /* the inbox secret */
    const char *headers[2];          /* the signature headers, filled from values */
    size_t nheaders;                 /* their number */
    void (*sign) (s_req_t *req);     /* signs req as the provider would */
} s_target_t;

/* Counts over the run, printed at exit. */
static struct {
    unsigned long inputs;    /* calls of the target */
    unsigned long accepted;  /* inputs a handler took (0) */
    unsigned long items;     /* items those made */
    unsigned long signature; /* refused at the signature (401, 403) */
    unsigned long other;     /* refused for another reason */
} s_stats;

static const char *s_signed_out; /* RETAIN_FUZZ_SIGNED_OUT, or NULL */

/* --- signing, as the providers do ------------------------------------ */

__attribute__ ((unused)) static void
s_hex (const uint8_t *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Hex HMAC-SHA256 of data under key into out (65 bytes). */
__attribute__ ((unused)) static void
s_hmac256_hex (const char *key, const void *data, size_t len, char *out)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC (EVP_sha256 (), key, (int)strlen (key), data, len, mac, &maclen);
    s_hex (mac, maclen, out);
}

static const s_target_t *s_target (void);

#if defined(FUZZ_TELEGRAM)
/* Telegram: the secret token, sent back as it was set. */
static void
s_sign_token (s_req_t *req)
{
    snprintf (req->values[0], sizeof req->values[0], "%s", s_target ()->secret);
}
#endif

#if defined(FUZZ_VIBER)
/* Viber: hex HMAC-SHA256 of the body. */
static void
s_sign_body_hex (s_req_t *req)
{
    s_hmac256_hex (s_target ()->secret, req->body, req->len, req->values[0]);
}
#endif

#if defined(FUZZ_META) || defined(FUZZ_PHONE)
/* Meta and the PBX: "sha256=" and the hex HMAC-SHA256 of the body. */
static void
s_sign_body_sha256 (s_req_t *req)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    s_hmac256_hex (s_target ()->secret, req->body, req->len, hex);
    snprintf (req->values[0], sizeof req->values[0], "sha256=%s", hex);
}
#endif

#if defined(FUZZ_TWILIO)
/* Twilio sorts parameters the way its SDKs' JavaScript and Java do: by
 * UTF-16 code unit. Each string becomes its code units; a byte that starts
 * no valid UTF-8 sequence sorts after every unit (Twilio sends UTF-8, so
 * that order is ingestd's choice, which the harness follows). Returns the
 * number of units written into out (room for strlen (s) units). */
static size_t
s_utf16 (const char *s, uint32_t *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        uint32_t cp;
        size_t len, i;
        if (p[0] < 0x80) {
            out[n++] = *p++;
            continue;
        }
        /* The sequence's length from its lead byte, and the lead's bits. */
        len = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
              : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
              : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                             : 0;
        if (!len)
            goto invalid;
        cp = p[0] & (0x7F >> len);
        for (i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80)
                goto invalid;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        p += len;
        if (cp >= 0x10000) {
            out[n++] = 0xD800 + ((cp - 0x10000) >> 10);
            out[n++] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
        } else
            out[n++] = cp;
        continue;
    invalid:
        out[n++] = 0x80000000u | *p++;
    }
    return n;
}

static int
s_utf16_cmp (const char *a, const char *b)
{
    uint32_t *x = malloc ((strlen (a) + 1) * sizeof *x), *y = malloc ((strlen (b) + 1) * sizeof *y);
    size_t nx, ny, i;
    int c = 0;
    if (!x || !y)
        abort ();
    nx = s_utf16 (a, x);
    ny = s_utf16 (b, y);
    for (i = 0; i < nx && i < ny && !c; i++)
        c = x[i] < y[i] ? -1 : x[i] > y[i];
    if (!c)
        c = nx < ny ? -1 : nx > ny;
    free (x);
    free (y);
    return c;
}

static int
s_pair_cmp (const void *pa, const void *pb)
{
    const rt_form_pair_t *a = *(const rt_form_pair_t *const *)pa;
    const rt_form_pair_t *b = *(const rt_form_pair_t *const *)pb;
    int c = s_utf16_cmp (a->name, b->name);
    return c ? c : s_utf16_cmp (a->value, b->value);
}

/* Twilio: Base64 HMAC-SHA1 of the URL followed by every parameter, sorted,
 * as name + value, a name sent several times with each distinct value. A
 * body that is no form is refused before the signature is read: any
 * header does. */
static void
s_sign_twilio (s_req_t *req)
{
    char err[160];
    rt_form_t *form = rt_form_parse ((const char *)req->body, req->len, err, sizeof err);
    const rt_form_pair_t **pairs;
    size_t n, i, o = 0, len = strlen (S_TWILIO_URL);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *data;
    snprintf (req->values[0], sizeof req->values[0], "x");
    if (!form)
        return;
    n = rt_form_count (form);
    pairs = malloc ((n + 1) * sizeof *pairs);
    if (!pairs)
        abort ();
    for (i = 0; i < n; i++) {
        pairs[i] = rt_form_pair (form, i);
        len += strlen (pairs[i]->name) + strlen (pairs[i]->value);
    }
    qsort (pairs, n, sizeof *pairs, s_pair_cmp);
    data = malloc (len + 1);
    if (!data)
        abort ();
    o = (size_t)sprintf (data, "%s", S_TWILIO_URL);
    for (i = 0; i < n; i++) {
        if (i > 0 && s_pair_cmp (&pairs[i - 1], &pairs[i]) == 0)
            continue;
        o += (size_t)sprintf (data + o, "%s%s", pairs[i]->name, pairs[i]->value);
    }
    HMAC (EVP_sha1 (), s_target ()->secret, (int)strlen (s_target ()->secret), (uint8_t *)data, o,
          mac, &maclen);
    EVP_EncodeBlock ((unsigned char *)req->values[0], mac, (int)maclen);
    free (data);
    free (pairs);
    rt_form_destroy (&form);
}
#endif

#if defined(FUZZ_MAILGUN) || defined(FUZZ_WEBCHAT)
/* Replaces len bytes of req's body at off with text (a copy owned by req). */
static void
s_splice (s_req_t *req, size_t off, size_t len, const char *text)
{
    size_t tl = strlen (text), nlen = req->len - len + tl;
    uint8_t *body = malloc (nlen + 1);
    if (!body)
        abort ();
    memcpy (body, req->body, off);
    memcpy (body + off, text, tl);
    memcpy (body + off + tl, req->body + off + len, req->len - off - len);
    free (req->owned);
    req->owned = body;
    req->body = body;
    req->len = nlen;
}
#endif

#if defined(FUZZ_MAILGUN)
/* One field of a Mailgun form, as mailgun.c reads it. */
typedef struct {
    char *name;          /* decoded; owned */
    char *value;         /* decoded (urlencoded) or NULL (multipart: data); owned */
    const uint8_t *data; /* the value's bytes */
    size_t len;          /* their number */
    bool file;           /* a file part, never a signature field */
    size_t off, span;    /* where the raw value sits in the body */
} s_field_t;

/* The fields of a Mailgun body, in order; NULL when it does not parse. */
static s_field_t *
s_mailgun_fields (const s_req_t *req, size_t *n, formdata_t **multipart)
{
    const char *body = (const char *)req->body;
    s_field_t *fields = NULL;
    char err[160];
    size_t start = 0, i, cap = 0;
    *n = 0;
    *multipart = NULL;
    if (formdata_is_type (req->content_type, "multipart/form-data")) {
        *multipart = formdata_parse (req->content_type, req->body, req->len, err, sizeof err);
        if (!*multipart)
            return NULL;
        *n = formdata_count (*multipart);
        fields = calloc (*n + 1, sizeof *fields);
        if (!fields)
            abort ();
        for (i = 0; i < *n; i++) {
            const formdata_part_t *p = formdata_part (*multipart, i);
            fields[i].name = strdup (p->name);
            fields[i].data = p->data;
            fields[i].len = p->len;
            fields[i].file = p->filename != NULL;
            fields[i].off = (size_t)(p->data - req->body);
            fields[i].span = p->len;
        }
        return fields;
    }
    /* Urlencoded: each '&'-separated part parsed alone keeps its place. */
    while (start < req->len) {
        size_t end = start, eq;
        rt_form_t *one;
        while (end < req->len && body[end] != '&')
            end++;
        one = rt_form_parse (body + start, end - start, err, sizeof err);
        if (!one) {
            for (i = 0; i < *n; i++) {
                free (fields[i].name);
                free (fields[i].value);
            }
            free (fields);
            *n = 0;
            return NULL;
        }
        if (rt_form_count (one) == 1) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                fields = realloc (fields, cap * sizeof *fields);
                if (!fields)
                    abort ();
            }
            memset (&fields[*n], 0, sizeof fields[*n]);
            fields[*n].name = strdup (rt_form_pair (one, 0)->name);
            fields[*n].value = strdup (rt_form_pair (one, 0)->value);
            fields[*n].data = (const uint8_t *)fields[*n].value;
            fields[*n].len = strlen (fields[*n].value);
            eq = start;
            while (eq < end && body[eq] != '=')
                eq++;
            fields[*n].off = eq < end ? eq + 1 : end;
            fields[*n].span = eq < end ? end - eq - 1 : 0;
            (*n)++;
        }
        rt_form_destroy (&one);
        start = end + 1;
    }
    return fields;
}

/* mailgun.c's lookup: the first plain field of that name, else the first
 * whose name differs only in case. */
static s_field_t *
s_mailgun_field (s_field_t *fields, size_t n, const char *name)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (!fields[i].file && strcmp (fields[i].name, name) == 0)
            return &fields[i];
    }
    for (i = 0; i < n; i++) {
        if (!fields[i].file && strcasecmp (fields[i].name, name) == 0)
            return &fields[i];
    }
    return NULL;
}

/* The field's value as mailgun.c reads it, into out; false when it would
 * refuse it (empty, too long, holding a NUL). */
static bool
s_mailgun_raw (const s_field_t *f, char *out, size_t max)
{
    if (!f || f->len == 0 || f->len >= max || memchr (f->data, '\0', f->len))
        return false;
    memcpy (out, f->data, f->len);
    out[f->len] = '\0';
    return true;
}

/* Mailgun: the hex HMAC-SHA256 of timestamp + token, as the signature
 * field's value (a form without one gets one at the end when it is
 * urlencoded). The clock is put just after the timestamp, so that every
 * signed input is fresh. */
static void
s_sign_mailgun (s_req_t *req)
{
    formdata_t *multipart = NULL;
    size_t n = 0, i;
    s_field_t *fields = s_mailgun_fields (req, &n, &multipart), *sig;
    char timestamp[32], token[256], data[sizeof timestamp + sizeof token], hex[65];
    if (!fields)
        goto cleanup;
    if (!s_mailgun_raw (s_mailgun_field (fields, n, "timestamp"), timestamp, sizeof timestamp) ||
        !s_mailgun_raw (s_mailgun_field (fields, n, "token"), token, sizeof token))
        goto cleanup;
    if (strspn (timestamp, "0123456789") == strlen (timestamp) && strlen (timestamp) <= 12)
        req->now_ms = strtoll (timestamp, NULL, 10) * 1000 + 5000;
    snprintf (data, sizeof data, "%s%s", timestamp, token);
    s_hmac256_hex (s_target ()->secret, data, strlen (data), hex);
    sig = s_mailgun_field (fields, n, "signature");
    if (sig)
        s_splice (req, sig->off, sig->span, hex);
    else if (!multipart) {
        char tail[80];
        snprintf (tail, sizeof tail, "&signature=%s", hex);
        s_splice (req, req->len, 0, tail);
    }
cleanup:
    for (i = 0; i < n; i++) {
        free (fields[i].name);
        free (fields[i].value);
    }
    free (fields);
    formdata_destroy (&multipart);
}
#endif

#if defined(FUZZ_WEBCHAT)
/* The span of the value of the first "visitor_signature" member written
 * plainly in a JSON text (the string's contents, or a bare token), as off
 * and len; false when there is none. */
static bool
s_json_member_value (const char *text, size_t len, size_t *off, size_t *vlen)
{
    static const char key[] = "\"visitor_signature\"";
    const char *hit = memmem (text, len, key, sizeof key - 1), *p, *end = text + len;
    if (!hit)
        return false;
    p = hit + sizeof key - 1;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p == end || *p++ != ':')
        return false;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p < end && *p == '"') {
        const char *q = ++p;
        while (q < end && *q != '"')
            q += *q == '\\' ? 2 : 1;
        if (q >= end)
            return false;
        *off = (size_t)(p - text);
        *vlen = (size_t)(q - p);
        return true;
    }
    *off = (size_t)(p - text);
    *vlen = 0;
    while (p + *vlen < end && p[*vlen] != ',' && p[*vlen] != '}')
        (*vlen)++;
    return true;
}

/* Web chat: the hex HMAC-SHA256 of visitor_id as visitor_signature. It is
 * written over the value in place so the rest of the input stays as the
 * fuzzer made it; when that does not give a body whose visitor_signature
 * is the right one (no such member, written with escapes, a nested one
 * first), the JSON is written out again with it set. A body that is no
 * object with a string visitor_id is refused before the signature. */
static void
s_sign_webchat (s_req_t *req)
{
    json_t *root = json_loadb ((const char *)req->body, req->len, JSON_REJECT_DUPLICATES, NULL);
    json_t *check = NULL;
    const char *visitor;
    char hex[65], *text;
    size_t off, vlen;
    if (!json_is_object (root) || !json_is_string (json_object_get (root, "visitor_id")))
        goto cleanup;
    visitor = json_string_value (json_object_get (root, "visitor_id"));
    s_hmac256_hex (s_target ()->secret, visitor, strlen (visitor), hex);
    if (s_json_member_value ((const char *)req->body, req->len, &off, &vlen)) {
        char quoted[68];
        snprintf (quoted, sizeof quoted, "%s", hex);
        if (req->body[off - 1] != '"')
            snprintf (quoted, sizeof quoted, "\"%s\"", hex);
        s_splice (req, off, vlen, quoted);
        check = json_loadb ((const char *)req->body, req->len, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_string (json_object_get (check, "visitor_signature")) &&
            strcmp (json_string_value (json_object_get (check, "visitor_signature")), hex) == 0)
            goto cleanup;
    }
    json_object_set_new (root, "visitor_signature", json_string (hex));
    text = json_dumps (root, JSON_COMPACT);
    if (text) {
        free (req->owned);
        req->owned = (uint8_t *)text;
        req->body = req->owned;
        req->len = strlen (text);
    }
cleanup:
    json_decref (check);
    json_decref (root);
}
#endif

/* --- the targets ------------------------------------------------------ */

#if defined(FUZZ_TELEGRAM)
static const s_target_t s_the_target = {
    .name = "telegram",
    .handler = telegram_handle,
    .channels = {RETAIN__V1__CHANNEL__TELEGRAM},
    .nchannels = 1,
    .secret = "tg_Secret-Token_0123",
    .headers = {"X-Telegram-Bot-Api-Secret-Token"},
    .nheaders = 1,
    .sign = s_sign_token,
};
#elif defined(FUZZ_VIBER)
static const s_target_t s_the_target = {
    .name = "viber",
    .handler = viber_handle,
    .channels = {RETAIN__V1__CHANNEL__VIBER},
    .nchannels = 1,
    .secret = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9",
    .headers = {"X-Viber-Content-Signature"},
    .nheaders = 1,
    .sign = s_sign_body_hex,
};
#elif defined(FUZZ_META)
static const s_target_t s_the_target = {
    .name = "meta",
    .handler = meta_handle,
    .channels = {RETAIN__V1__CHANNEL__WHATSAPP, RETAIN__V1__CHANNEL__MESSENGER,
                 RETAIN__V1__CHANNEL__INSTAGRAM},
    .nchannels = 3,
    .secret = "test-app-secret",
    .headers = {"X-Hub-Signature-256"},
    .nheaders = 1,
    .sign = s_sign_body_sha256,
};
#elif defined(FUZZ_WEBCHAT)
static const s_target_t s_the_target = {
    .name = "webchat",
    .handler = webchat_handle,
    .channels = {RETAIN__V1__CHANNEL__WEBCHAT},
    .nchannels = 1,
    .secret = "wc-test-secret-7d2e",
    .sign = s_sign_webchat,
};
#elif defined(FUZZ_PHONE)
static const s_target_t s_the_target = {
    .name = "phone",
    .handler = phone_handle,
    .channels = {RETAIN__V1__CHANNEL__PHONE},
    .nchannels = 1,
    .secret = "pbx-test-secret-91ab",
    .headers = {"X-Retain-Signature", "X-Retain-Secret"},
    .nheaders = 2,
    .sign = s_sign_body_sha256,
};
#elif defined(FUZZ_TWILIO)
static const s_target_t s_the_target = {
    .name = "twilio",
    .handler = twilio_handle,
    .channels = {RETAIN__V1__CHANNEL__SMS},
    .nchannels = 1,
    .secret = "test-auth-token",
    .headers = {"X-Twilio-Signature"},
    .nheaders = 1,
    .sign = s_sign_twilio,
};
#elif defined(FUZZ_MAILGUN)
static const s_target_t s_the_target = {
    .name = "mailgun",
    .handler = mailgun_handle,
    .channels = {RETAIN__V1__CHANNEL__EMAIL},
    .nchannels = 1,
    .secret = "test-signing-key",
    .sign = s_sign_mailgun,
};
#elif defined(FUZZ_FORM)
static const s_target_t s_the_target = {.name = "form"};
#elif defined(FUZZ_MIME)
static const s_target_t s_the_target = {.name = "mime"};
#else
#error "define one FUZZ_<TARGET>"
#endif

static const s_target_t *
s_target (void)
{
    return &s_the_target;
}

/* --- running a request ------------------------------------------------ */

#if !defined(FUZZ_FORM) && !defined(FUZZ_MIME)

static int
s_never_seen (void *arg, const char *nonce, int64_t expires_ms)
{
    (void)arg;
    (void)nonce;
    (void)expires_ms;
    return 0;
}

/* The request's body and media type from the input; an unsigned input's
 * first lines set the signature headers. */
static void
s_req_init (s_req_t *req, const uint8_t *data, size_t size, bool header_lines)
{
    size_t i;
    memset (req, 0, sizeof *req);
    req->body = data;
    req->len = size;
    req->now_ms = S_NOW_MS;
    for (i = 0; header_lines && i < s_target ()->nheaders; i++) {
        const uint8_t *nl = memchr (req->body, '\n', req->len);
        size_t line = nl ? (size_t)(nl - req->body) : req->len;
        size_t keep = line < S_MAX_VALUE ? line : S_MAX_VALUE;
        memcpy (req->values[i], req->body, keep);
        req->values[i][keep] = '\0';
        req->body += nl ? line + 1 : line;
        req->len -= nl ? line + 1 : line;
    }
    if (s_target ()->handler == twilio_handle)
        req->content_type = "application/x-www-form-urlencoded";
    else if (s_target ()->handler == mailgun_handle)
        req->content_type = req->len >= 2 && memcmp (req->body, "--", 2) == 0
                                ? "multipart/form-data; boundary=" S_BOUNDARY
                                : "application/x-www-form-urlencoded";
    else
        req->content_type = "application/json";
}

/* Writes a signed request into RETAIN_FUZZ_SIGNED_OUT, named by its hash. */
__attribute__ ((unused)) static void
s_write_signed (const s_req_t *req)
{
    char path[4096];
    uint64_t h = 1469598103934665603ULL;
    size_t i;
    FILE *f;
    for (i = 0; i < s_target ()->nheaders; i++) {
        const char *v = req->values[i];
        for (; *v; v++)
            h = (h ^ (uint8_t)*v) * 1099511628211ULL;
    }
    for (i = 0; i < req->len; i++)
        h = (h ^ req->body[i]) * 1099511628211ULL;
    snprintf (path, sizeof path, "%s/%016llx", s_signed_out, (unsigned long long)h);
    f = fopen (path, "wb");
    if (!f)
        return;
    for (i = 0; i < s_target ()->nheaders; i++)
        fprintf (f, "%s\n", req->values[i]);
    fwrite (req->body, 1, req->len, f);
    fclose (f);
}

/* Outcomes of one input, best last: what it got on its best channel. */
enum { S_SIGNATURE, S_OTHER, S_ACCEPTED };

static bool
s_is_signature_label (const char *label)
{
    return label &&
           (strcmp (label, "missing_signature") == 0 || strcmp (label, "bad_signature") == 0 ||
            strcmp (label, "stale") == 0 || strcmp (label, "replayed") == 0);
}

static void
s_handle (const s_req_t *req)
{
    const s_target_t *t = s_target ();
    json_t *config =
        json_pack ("{s:s, s:[s]}", "verify_token", "vt", "allowed_origins", "https://shop.example");
    ingest_header_t headers[3];
    size_t n = 0, i, items = 0;
    int best = S_SIGNATURE;
    headers[n++] = (ingest_header_t){"Content-Type", req->content_type};
    for (i = 0; i < t->nheaders; i++) {
        if (req->values[i][0])
            headers[n++] = (ingest_header_t){t->headers[i], req->values[i]};
    }
    for (i = 0; i < t->nchannels; i++) {
        ingest_inbox_t inbox = {"fuzz", t->channels[i], t->secret, "fuzz-previous-secret", config};
        ingest_request_t r;
        ingest_result_t result;
        int outcome;
        memset (&r, 0, sizeof r);
        r.method = "POST";
        r.path = "/hooks/fuzz/fuzz";
        r.query = "";
        r.headers = headers;
        r.nheaders = n;
        r.body = req->body;
        r.body_len = req->len;
        r.public_url = S_TWILIO_URL;
        r.now_ms = req->now_ms;
        r.replay_check = s_never_seen;
        memset (&result, 0, sizeof result);
        if (t->handler (&inbox, &r, &result) == 0) {
            outcome = S_ACCEPTED;
            items += result.count;
        } else
            outcome = s_is_signature_label (result.label) ? S_SIGNATURE : S_OTHER;
        if (outcome > best)
            best = outcome;
        ingest_result_reset (&result);
    }
    json_decref (config);
    s_stats.items += items;
    if (best == S_ACCEPTED)
        s_stats.accepted++;
    else if (best == S_OTHER)
        s_stats.other++;
    else
        s_stats.signature++;
}
#endif

static void
s_print_stats (void)
{
    fprintf (stderr,
             "retain-fuzz %s%s: %lu runs, %lu accepted (%lu items), %lu refused at the "
             "signature, %lu refused for another reason\n",
             s_target ()->name,
#if defined(FUZZ_UNSIGNED)
             "_sig",
#else
             "",
#endif
             s_stats.inputs, s_stats.accepted, s_stats.items, s_stats.signature, s_stats.other);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_signed_out = getenv ("RETAIN_FUZZ_SIGNED_OUT");
    atexit (s_print_stats);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_stats.inputs++;
#if defined(FUZZ_FORM)
    char err[128];
    rt_form_t *form = rt_form_parse ((const char *)data, size, err, sizeof err);
    if (form) {
        s_stats.accepted++;
        s_stats.items += rt_form_count (form);
        rt_form_sorted (form);
        rt_form_get (form, "Body");
        rt_form_destroy (&form);
    } else
        s_stats.other++;
#elif defined(FUZZ_MIME)
    mime_message_t *msg = mime_parse ((const char *)data, size);
    if (msg)
        s_stats.accepted++;
    else
        s_stats.other++;
    mime_free (&msg);
#else
    s_req_t req;
#if defined(FUZZ_UNSIGNED)
    s_req_init (&req, data, size, true);
#else
    s_req_init (&req, data, size, false);
    s_target ()->sign (&req);
    if (s_signed_out)
        s_write_signed (&req);
#endif
    s_handle (&req);
    free (req.owned);
#endif
    return 0;
}
