/*
 * rt_signed: signed link tokens (see rt_signed.h for the layout and the
 * order of the checks).
 *
 * The MAC input is S_LABEL, the purpose and its NUL, then the token's
 * bytes before the MAC: the label keeps these MACs apart from any other
 * HMAC a shared secret might someday make, and the NUL keeps purpose
 * "ab" with a token starting "c" apart from purpose "abc".
 *
 * Sizes are fixed and small (a token is at most 219 bytes), so everything
 * is on the stack; the only heap is the key set.
 */
#include "rt_signed.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_crypto.h"

#define S_VERSION 1
#define S_LABEL   "retain-signed-link"
/* The longest purpose string: a word, not a sentence. */
#define S_PURPOSE_MAX 64
/* version, key id length, expiry, payload length. */
#define S_FIXED   (1 + 1 + 8 + 1)
#define S_RAW_MAX (S_FIXED + RT_SIGNED_KEY_ID_MAX + RT_SIGNED_PAYLOAD_MAX + RT_SHA256_LEN)

typedef struct {
    char id[RT_SIGNED_KEY_ID_MAX + 1]; /* the key's id, as tokens carry it */
    uint8_t *secret;                   /* its secret, owned (wiped when freed) */
    size_t len;                        /* the secret's length */
} s_key_t;

struct rt_signed_keys_t {
    s_key_t keys[RT_SIGNED_KEYS_MAX]; /* the first signs */
    size_t count;                     /* keys in use */
};

static const char *const s_reasons[RT_SIGNED_STATUS_COUNT] = {
    "ok", "malformed", "truncated", "version", "unknown_key", "bad_mac", "expired"};

const char *
rt_signed_reason (rt_signed_status_t status)
{
    return (unsigned)status < RT_SIGNED_STATUS_COUNT ? s_reasons[status] : "unknown";
}

/* --- key sets ------------------------------------------------------------ */

static bool
s_id_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool
s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void
rt_signed_keys_destroy (rt_signed_keys_t **self_p)
{
    rt_signed_keys_t *self;
    size_t i;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; i < self->count; i++) {
        if (self->keys[i].secret) {
            explicit_bzero (self->keys[i].secret, self->keys[i].len);
            free (self->keys[i].secret);
        }
    }
    explicit_bzero (self, sizeof *self);
    free (self);
    *self_p = NULL;
}

/* Adds the entry spec[0..len) ("id:secret", surrounding whitespace
 * ignored) as the set's next key. 0, or -1 with err filled. */
static int
s_key_add (rt_signed_keys_t *self, const char *entry, size_t len, char *err, size_t errlen)
{
    const char *colon;
    size_t idlen, seclen, i;
    s_key_t *key;
    while (len > 0 && s_space (*entry)) {
        entry++;
        len--;
    }
    while (len > 0 && s_space (entry[len - 1]))
        len--;
    colon = memchr (entry, ':', len);
    if (!colon) {
        snprintf (err, errlen, "key %zu is not id:secret", self->count + 1);
        return -1;
    }
    idlen = (size_t)(colon - entry);
    seclen = len - idlen - 1;
    if (idlen == 0 || idlen > RT_SIGNED_KEY_ID_MAX) {
        snprintf (err, errlen, "key %zu: an id is 1 to %d characters", self->count + 1,
                  RT_SIGNED_KEY_ID_MAX);
        return -1;
    }
    for (i = 0; i < idlen; i++) {
        if (!s_id_char (entry[i])) {
            snprintf (err, errlen, "key %zu: an id is letters, digits, '_' and '-'",
                      self->count + 1);
            return -1;
        }
    }
    for (i = 0; i < self->count; i++) {
        if (strlen (self->keys[i].id) == idlen && memcmp (self->keys[i].id, entry, idlen) == 0) {
            snprintf (err, errlen, "key id %.*s is given twice", (int)idlen, entry);
            return -1;
        }
    }
    if (seclen < RT_SIGNED_SECRET_MIN) {
        snprintf (err, errlen, "key %.*s: its secret is shorter than %d bytes", (int)idlen, entry,
                  RT_SIGNED_SECRET_MIN);
        return -1;
    }
    if (self->count == RT_SIGNED_KEYS_MAX) {
        snprintf (err, errlen, "more than %d keys", RT_SIGNED_KEYS_MAX);
        return -1;
    }
    key = &self->keys[self->count];
    key->secret = malloc (seclen);
    if (!key->secret) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    memcpy (key->id, entry, idlen);
    key->id[idlen] = '\0';
    memcpy (key->secret, colon + 1, seclen);
    key->len = seclen;
    self->count++;
    return 0;
}

rt_signed_keys_t *
rt_signed_keys_parse (const char *spec, char *err, size_t errlen)
{
    rt_signed_keys_t *self;
    const char *p = spec, *comma;
    if (!spec || !*spec) {
        snprintf (err, errlen, "no keys");
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    for (;;) {
        comma = strchr (p, ',');
        if (s_key_add (self, p, comma ? (size_t)(comma - p) : strlen (p), err, errlen) != 0) {
            rt_signed_keys_destroy (&self);
            return NULL;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return self;
}

const char *
rt_signed_keys_current (const rt_signed_keys_t *self)
{
    return self->keys[0].id;
}

static const s_key_t *
s_key_find (const rt_signed_keys_t *self, const uint8_t *id, size_t len)
{
    size_t i;
    for (i = 0; i < self->count; i++) {
        if (strlen (self->keys[i].id) == len && memcmp (self->keys[i].id, id, len) == 0)
            return &self->keys[i];
    }
    return NULL;
}

/* --- tokens -------------------------------------------------------------- */

/* The MAC of raw[0..len) for purpose under key into mac. */
static void
s_mac (const s_key_t *key, const char *purpose, const uint8_t *raw, size_t len,
       uint8_t mac[RT_SHA256_LEN])
{
    uint8_t input[sizeof S_LABEL + S_PURPOSE_MAX + 1 + S_RAW_MAX];
    size_t plen = strlen (purpose), n = 0;
    memcpy (input, S_LABEL, sizeof S_LABEL); /* its NUL too */
    n += sizeof S_LABEL;
    memcpy (input + n, purpose, plen + 1);
    n += plen + 1;
    memcpy (input + n, raw, len);
    n += len;
    rt_hmac_sha256 (key->secret, key->len, input, n, mac);
    explicit_bzero (input, n);
}

long
rt_signed_make (const rt_signed_keys_t *keys, const char *purpose, int64_t expires_s,
                const uint8_t *payload, size_t len, char *out, size_t outlen)
{
    uint8_t raw[S_RAW_MAX];
    char b64[(S_RAW_MAX + 2) / 3 * 4 + 1];
    const s_key_t *key = &keys->keys[0];
    size_t idlen = strlen (key->id), n = 0, i, textlen;
    uint64_t expiry = (uint64_t)expires_s;
    if (!purpose || !*purpose || strlen (purpose) > S_PURPOSE_MAX || len > RT_SIGNED_PAYLOAD_MAX ||
        (len > 0 && !payload))
        return -1;
    raw[n++] = S_VERSION;
    raw[n++] = (uint8_t)idlen;
    memcpy (raw + n, key->id, idlen);
    n += idlen;
    for (i = 0; i < 8; i++)
        raw[n++] = (uint8_t)(expiry >> (56 - 8 * i));
    raw[n++] = (uint8_t)len;
    if (len > 0)
        memcpy (raw + n, payload, len);
    n += len;
    s_mac (key, purpose, raw, n, raw + n);
    n += RT_SHA256_LEN;
    rt_base64_encode (raw, n, b64);
    /* base64url without padding: '+' '/' become '-' '_', '=' goes. */
    textlen = strcspn (b64, "=");
    for (i = 0; i < textlen; i++) {
        if (b64[i] == '+')
            b64[i] = '-';
        else if (b64[i] == '/')
            b64[i] = '_';
    }
    if (textlen + 1 > outlen)
        return -1;
    memcpy (out, b64, textlen);
    out[textlen] = '\0';
    return (long)textlen;
}

rt_signed_status_t
rt_signed_verify (const rt_signed_keys_t *keys, const char *purpose, const char *token,
                  int64_t now_s, uint8_t *payload, size_t payload_cap, size_t *payload_len,
                  int64_t *expires_s)
{
    uint8_t raw[S_RAW_MAX], mac[RT_SHA256_LEN];
    size_t textlen, idlen, plen, total, i;
    long n;
    uint64_t expiry = 0;
    const s_key_t *key;
    if (!token || !purpose || !*purpose || strlen (purpose) > S_PURPOSE_MAX)
        return RT_SIGNED_MALFORMED;
    /* Bounded before it is scanned: a long path costs nothing more. */
    textlen = strnlen (token, RT_SIGNED_TOKEN_MAX);
    if (textlen == 0 || textlen == RT_SIGNED_TOKEN_MAX)
        return RT_SIGNED_MALFORMED;
    /* URL-safe letters only: rt_base64_decode would take '+', '/' and
     * '=' as well, and a token has one spelling. */
    for (i = 0; i < textlen; i++) {
        if (!s_id_char (token[i]))
            return RT_SIGNED_MALFORMED;
    }
    n = rt_base64_decode (token, textlen, raw, sizeof raw);
    if (n < 1)
        return RT_SIGNED_MALFORMED;
    if (raw[0] != S_VERSION)
        return RT_SIGNED_VERSION;
    if (n < 2)
        return RT_SIGNED_TRUNCATED;
    idlen = raw[1];
    if (idlen == 0 || idlen > RT_SIGNED_KEY_ID_MAX)
        return RT_SIGNED_MALFORMED;
    if ((size_t)n < S_FIXED + idlen)
        return RT_SIGNED_TRUNCATED;
    plen = raw[S_FIXED - 1 + idlen];
    if (plen > RT_SIGNED_PAYLOAD_MAX)
        return RT_SIGNED_MALFORMED;
    total = S_FIXED + idlen + plen + RT_SHA256_LEN;
    if ((size_t)n < total)
        return RT_SIGNED_TRUNCATED;
    if ((size_t)n > total)
        return RT_SIGNED_MALFORMED;
    key = s_key_find (keys, raw + 2, idlen);
    if (!key)
        return RT_SIGNED_UNKNOWN_KEY;
    s_mac (key, purpose, raw, total - RT_SHA256_LEN, mac);
    if (!rt_ct_equal (mac, sizeof mac, raw + total - RT_SHA256_LEN, RT_SHA256_LEN))
        return RT_SIGNED_BAD_MAC;
    for (i = 0; i < 8; i++)
        expiry = expiry << 8 | raw[2 + idlen + i];
    if ((int64_t)expiry <= now_s)
        return RT_SIGNED_EXPIRED;
    if (plen > payload_cap)
        return RT_SIGNED_MALFORMED;
    if (plen > 0)
        memcpy (payload, raw + S_FIXED + idlen, plen);
    *payload_len = plen;
    if (expires_s)
        *expires_s = (int64_t)expiry;
    return RT_SIGNED_OK;
}

/* --- the unsubscribe payload --------------------------------------------- */

static bool
s_category_ok (const char *s, size_t len)
{
    size_t i;
    if (len == 0 || len > RT_SIGNED_CATEGORY_MAX)
        return false;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool
s_customer_ok (const char *s, size_t len)
{
    size_t i;
    if (len == 0 || len > RT_SIGNED_CUSTOMER_ID_MAX)
        return false;
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    return true;
}

long
rt_signed_unsubscribe_make (const rt_signed_keys_t *keys, const rt_signed_unsubscribe_t *u,
                            int64_t expires_s, char *out, size_t outlen)
{
    uint8_t payload[2 + RT_SIGNED_CATEGORY_MAX + RT_SIGNED_CUSTOMER_ID_MAX];
    size_t clen = strnlen (u->category, sizeof u->category);
    size_t idlen = strnlen (u->customer_id, sizeof u->customer_id);
    if (u->channel < 0 || u->channel > 255 || !s_category_ok (u->category, clen) ||
        !s_customer_ok (u->customer_id, idlen))
        return -1;
    payload[0] = (uint8_t)u->channel;
    payload[1] = (uint8_t)clen;
    memcpy (payload + 2, u->category, clen);
    memcpy (payload + 2 + clen, u->customer_id, idlen);
    return rt_signed_make (keys, RT_SIGNED_PURPOSE_UNSUBSCRIBE, expires_s, payload,
                           2 + clen + idlen, out, outlen);
}

rt_signed_status_t
rt_signed_unsubscribe_read (const rt_signed_keys_t *keys, const char *token, int64_t now_s,
                            rt_signed_unsubscribe_t *u)
{
    uint8_t payload[RT_SIGNED_PAYLOAD_MAX];
    size_t len = 0, clen;
    rt_signed_status_t status = rt_signed_verify (keys, RT_SIGNED_PURPOSE_UNSUBSCRIBE, token, now_s,
                                                  payload, sizeof payload, &len, NULL);
    if (status != RT_SIGNED_OK)
        return status;
    if (len < 2)
        return RT_SIGNED_MALFORMED;
    clen = payload[1];
    if (2 + clen > len || !s_category_ok ((const char *)payload + 2, clen) ||
        !s_customer_ok ((const char *)payload + 2 + clen, len - 2 - clen))
        return RT_SIGNED_MALFORMED;
    memset (u, 0, sizeof *u);
    u->channel = payload[0];
    memcpy (u->category, payload + 2, clen);
    memcpy (u->customer_id, payload + 2 + clen, len - 2 - clen);
    return RT_SIGNED_OK;
}
