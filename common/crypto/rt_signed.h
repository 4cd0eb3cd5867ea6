/*
 * rt_signed: the signed token behind every link retain hands a customer.
 *
 * notifyd's unsubscribe links now, loyaltyd's CSAT form and trackerd's
 * tracking page later: a daemon puts a few bytes of its own (a customer
 * id, a channel, a category) into a URL, and the daemon serving the URL
 * (ingestd, for anything that changes state) must know that retain made
 * that URL and that nobody changed it. A token is opaque to the customer
 * (base64url, no padding: it sits in a path segment as it is) but signed,
 * not encrypted: a payload holds ids, never a secret. It carries
 *
 *   version (1 byte, 1) | key id length (1) | key id (1-16 bytes) |
 *   expiry (8, big-endian unix seconds) | payload length (1) | payload |
 *   HMAC-SHA256 (32 bytes)
 *
 * The MAC is over a fixed label, the purpose string and every byte before
 * it, under the key the id names. The purpose ("unsubscribe", "csat") is
 * in the MAC and not in the token, so a token made for one purpose fails
 * the MAC check of every other: a CSAT link can never unsubscribe.
 *
 * Keys rotate. A key set is several (id, secret) pairs; the first signs,
 * every one verifies, found by the id the token names. To rotate: add the
 * new key to every verifying daemon's set, then put it first in the
 * signing daemons' sets, and drop the old one once the links it signed
 * have expired.
 *
 * Verifying refuses with one reason per way a token can be wrong
 * (rt_signed_status_t), in this order: not canonical base64url, too long
 * or with lengths out of bounds (malformed), another version (the layout
 * after the first byte is the version's), shorter than its own lengths say
 * (truncated), a key id not in the set, a MAC that does not match
 * (tampered, or made for another purpose), then an expiry in the past:
 * "expired" is said only of a token retain did make. The MAC is compared
 * in constant time (rt_ct_equal). Base64url has one spelling per token
 * (rt_codec's decoder refuses leftover bits), so no two texts verify as
 * the same token: a hash of the text names it (ingestd de-duplicates by
 * one).
 *
 * Thread-safe: a key set is read-only once parsed.
 */
#ifndef RT_SIGNED_H
#define RT_SIGNED_H

#include <stddef.h>
#include <stdint.h>

/* The most payload bytes a token carries. */
#define RT_SIGNED_PAYLOAD_MAX 160
/* The longest key id, in bytes ([A-Za-z0-9_-]). */
#define RT_SIGNED_KEY_ID_MAX 16
/* The shortest secret, in bytes: a key must be worth a MAC. */
#define RT_SIGNED_SECRET_MIN 16
/* The most keys in a set. */
#define RT_SIGNED_KEYS_MAX 16
/* Room for the longest token as text, its NUL included. */
#define RT_SIGNED_TOKEN_MAX 300

/* Why a token was refused. */
typedef enum {
    RT_SIGNED_OK = 0,      /* verified */
    RT_SIGNED_MALFORMED,   /* not canonical base64url, empty, or longer than any token */
    RT_SIGNED_TRUNCATED,   /* shorter than its lengths say */
    RT_SIGNED_VERSION,     /* a version this build does not read */
    RT_SIGNED_UNKNOWN_KEY, /* signed with a key not in the set (retired, or never ours) */
    RT_SIGNED_BAD_MAC,     /* changed, forged, or made for another purpose */
    RT_SIGNED_EXPIRED,     /* genuine, but past its expiry */
    RT_SIGNED_STATUS_COUNT
} rt_signed_status_t;

typedef struct rt_signed_keys_t rt_signed_keys_t;

/* Parses a key set: "id:secret[,id:secret...]", the first key signing.
 * Ids are 1 to RT_SIGNED_KEY_ID_MAX of [A-Za-z0-9_-], each once; a secret
 * is the bytes after the first ':' up to the next ',' (so it holds no
 * ','), at least RT_SIGNED_SECRET_MIN of them. NULL with the reason in err
 * (never quoting a secret) on an empty or malformed spec or out of memory.
 * Owned: rt_signed_keys_destroy, which wipes the secrets. */
rt_signed_keys_t *rt_signed_keys_parse (const char *spec, char *err, size_t errlen);
void rt_signed_keys_destroy (rt_signed_keys_t **self_p);

/* The id of the key that signs (lent). */
const char *rt_signed_keys_current (const rt_signed_keys_t *self);

/* Makes a token for purpose over payload[0..len) (len up to
 * RT_SIGNED_PAYLOAD_MAX) that expires at expires_s (unix seconds), signed
 * with the set's first key, into out (NUL-terminated; RT_SIGNED_TOKEN_MAX
 * is always enough). Returns its length, or -1 when len is too large,
 * purpose is empty or out is too small. */
long rt_signed_make (const rt_signed_keys_t *keys, const char *purpose, int64_t expires_s,
                     const uint8_t *payload, size_t len, char *out, size_t outlen);

/* Verifies token for purpose at now_s (unix seconds). On RT_SIGNED_OK the
 * payload is copied into payload (payload_cap bytes, at least
 * RT_SIGNED_PAYLOAD_MAX is always enough; less, and a longer payload is
 * MALFORMED), its length into *payload_len, and the expiry into
 * *expires_s (may be NULL). On any other status nothing is written. */
rt_signed_status_t rt_signed_verify (const rt_signed_keys_t *keys, const char *purpose,
                                     const char *token, int64_t now_s, uint8_t *payload,
                                     size_t payload_cap, size_t *payload_len, int64_t *expires_s);

/* A status's name, for logs and metric labels: "ok", "malformed",
 * "truncated", "version", "unknown_key", "bad_mac", "expired". */
const char *rt_signed_reason (rt_signed_status_t status);

/* --- the unsubscribe link's payload ---
 *
 * Made by notifyd (List-Unsubscribe, the link under a message), read by
 * ingestd's /u/{token}; one packing for both: channel (1 byte, the
 * Channel value of common.proto; 0 for every channel) | category length
 * (1) | category | customer id (the rest). */

/* The purpose unsubscribe tokens are made for. */
#define RT_SIGNED_PURPOSE_UNSUBSCRIBE "unsubscribe"
/* The longest category and customer id an unsubscribe token carries. */
#define RT_SIGNED_CATEGORY_MAX    32
#define RT_SIGNED_CUSTOMER_ID_MAX 96

/* What an unsubscribe link withdraws consent to. */
typedef struct {
    char customer_id[RT_SIGNED_CUSTOMER_ID_MAX + 1]; /* whose consent, non-empty */
    int channel;                                     /* Retain__V1__Channel; 0: every channel */
    char category[RT_SIGNED_CATEGORY_MAX + 1];       /* "marketing", ... ([a-z0-9_-], non-empty) */
} rt_signed_unsubscribe_t;

/* An unsubscribe token for *u expiring at expires_s into out, as
 * rt_signed_make. -1 also when u's fields are empty, too long, the
 * category not [a-z0-9_-] or the customer id holds a control byte. */
long rt_signed_unsubscribe_make (const rt_signed_keys_t *keys, const rt_signed_unsubscribe_t *u,
                                 int64_t expires_s, char *out, size_t outlen);

/* Verifies an unsubscribe token and unpacks it into *u. A genuine token
 * whose payload does not unpack (which only a signer's bug makes) is
 * MALFORMED; otherwise as rt_signed_verify. */
rt_signed_status_t rt_signed_unsubscribe_read (const rt_signed_keys_t *keys, const char *token,
                                               int64_t now_s, rt_signed_unsubscribe_t *u);

#endif
