/*
 * test_signed: common/crypto's signed link tokens. A token made is read
 * back with its payload; every way a token can be wrong is refused with its
 * own reason; a key set rotates without breaking links already sent; a
 * token of one purpose is worth nothing for another; and no mutation of a
 * genuine token, by text or by byte, is ever accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_crypto.h"
#include "rt_signed.h"

#define NOW     1800000000
#define SECRET1 "k1:first-secret-0123456789abcdef"
#define SECRET2 "k2:second-secret-0123456789abcdef"

static rt_signed_keys_t *
s_keys (const char *spec)
{
    char err[128];
    rt_signed_keys_t *keys = rt_signed_keys_parse (spec, err, sizeof err);
    if (!keys)
        fail_msg ("keys %s: %s", spec, err);
    return keys;
}

static void
s_make (const rt_signed_keys_t *keys, const char *purpose, const char *payload, int64_t expires,
        char out[RT_SIGNED_TOKEN_MAX])
{
    long n = rt_signed_make (keys, purpose, expires, (const uint8_t *)payload, strlen (payload),
                             out, RT_SIGNED_TOKEN_MAX);
    assert_true (n > 0);
    assert_int_equal ((size_t)n, strlen (out));
}

static rt_signed_status_t
s_verify (const rt_signed_keys_t *keys, const char *purpose, const char *token, int64_t now)
{
    uint8_t payload[RT_SIGNED_PAYLOAD_MAX];
    size_t len = 0;
    return rt_signed_verify (keys, purpose, token, now, payload, sizeof payload, &len, NULL);
}

/* The token's bytes (the test's own decoding). */
static size_t
s_raw (const char *token, uint8_t *raw, size_t cap)
{
    long n = rt_base64_decode (token, strlen (token), raw, cap);
    assert_true (n > 0);
    return (size_t)n;
}

/* Bytes as a token would carry them: base64url without padding. */
static void
s_text (const uint8_t *raw, size_t len, char *out)
{
    char b64[512];
    size_t i;
    assert_true (len < 300);
    rt_base64_encode (raw, len, b64);
    for (i = 0; b64[i] && b64[i] != '='; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[i] = '\0';
}

static void
test_round_trip (void **state)
{
    rt_signed_keys_t *keys = s_keys (SECRET1);
    char token[RT_SIGNED_TOKEN_MAX];
    uint8_t payload[RT_SIGNED_PAYLOAD_MAX], big[RT_SIGNED_PAYLOAD_MAX + 1];
    size_t len = 0, i;
    int64_t expires = 0;
    (void)state;

    s_make (keys, "unsubscribe", "customer 42 / email / marketing", NOW + 3600, token);
    /* Opaque and URL-safe: it goes into a path segment as it is. */
    for (i = 0; token[i]; i++)
        assert_non_null (
            strchr ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", token[i]));
    assert_int_equal (
        rt_signed_verify (keys, "unsubscribe", token, NOW, payload, sizeof payload, &len, &expires),
        RT_SIGNED_OK);
    assert_int_equal (len, strlen ("customer 42 / email / marketing"));
    assert_memory_equal (payload, "customer 42 / email / marketing", len);
    assert_int_equal (expires, NOW + 3600);
    assert_string_equal (rt_signed_keys_current (keys), "k1");

    /* An empty payload and the largest one; one byte more is refused. */
    s_make (keys, "csat", "", NOW + 1, token);
    assert_int_equal (s_verify (keys, "csat", token, NOW), RT_SIGNED_OK);
    memset (big, 0xA5, sizeof big);
    assert_true (rt_signed_make (keys, "csat", NOW + 1, big, RT_SIGNED_PAYLOAD_MAX, token,
                                 sizeof token) > 0);
    assert_true (strlen (token) < RT_SIGNED_TOKEN_MAX);
    assert_int_equal (
        rt_signed_verify (keys, "csat", token, NOW, payload, sizeof payload, &len, NULL),
        RT_SIGNED_OK);
    assert_int_equal (len, RT_SIGNED_PAYLOAD_MAX);
    assert_memory_equal (payload, big, len);
    assert_int_equal (
        rt_signed_make (keys, "csat", NOW + 1, big, RT_SIGNED_PAYLOAD_MAX + 1, token, sizeof token),
        -1);
    /* Too small a buffer, and an empty purpose, are the caller's errors. */
    assert_int_equal (rt_signed_make (keys, "csat", NOW + 1, big, 10, token, 20), -1);
    assert_int_equal (rt_signed_make (keys, "", NOW + 1, big, 10, token, sizeof token), -1);
    /* A payload larger than the caller's buffer is not written past it. */
    assert_int_equal (
        rt_signed_verify (keys, "csat", token, NOW, payload, 4, &len, NULL) == RT_SIGNED_OK, 0);
    rt_signed_keys_destroy (&keys);
    assert_null (keys);
    rt_signed_keys_destroy (&keys);
}

static void
test_each_refusal (void **state)
{
    rt_signed_keys_t *keys = s_keys (SECRET1), *other = s_keys (SECRET2);
    char token[RT_SIGNED_TOKEN_MAX], bad[2 * RT_SIGNED_TOKEN_MAX];
    uint8_t raw[400];
    size_t n, i;
    (void)state;

    s_make (keys, "unsubscribe", "c-1|sms|marketing", NOW + 60, token);
    assert_int_equal (s_verify (keys, "unsubscribe", token, NOW), RT_SIGNED_OK);

    /* Malformed: empty, letters outside base64url, padding, too long. */
    assert_int_equal (s_verify (keys, "unsubscribe", "", NOW), RT_SIGNED_MALFORMED);
    snprintf (bad, sizeof bad, "%s=", token);
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_MALFORMED);
    snprintf (bad, sizeof bad, "%s", token);
    bad[5] = '+';
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_MALFORMED);
    bad[5] = '.';
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_MALFORMED);
    memset (bad, 'A', sizeof bad - 1);
    bad[sizeof bad - 1] = '\0';
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_MALFORMED);
    assert_string_equal (rt_signed_reason (RT_SIGNED_MALFORMED), "malformed");

    /* Truncated: the bytes end before the MAC does. */
    n = s_raw (token, raw, sizeof raw);
    s_text (raw, n - 1, bad);
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_TRUNCATED);
    s_text (raw, 6, bad);
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_TRUNCATED);
    assert_string_equal (rt_signed_reason (RT_SIGNED_TRUNCATED), "truncated");
    /* One byte too many is no token of any layout. */
    raw[n] = 0;
    s_text (raw, n + 1, bad);
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_MALFORMED);

    /* Another version. */
    raw[0] = 2;
    s_text (raw, n, bad);
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW), RT_SIGNED_VERSION);
    raw[0] = 1;
    assert_string_equal (rt_signed_reason (RT_SIGNED_VERSION), "version");

    /* A key the set does not hold. */
    assert_int_equal (s_verify (other, "unsubscribe", token, NOW), RT_SIGNED_UNKNOWN_KEY);
    assert_string_equal (rt_signed_reason (RT_SIGNED_UNKNOWN_KEY), "unknown_key");

    /* Tampered: a payload byte, the expiry pushed later, the MAC itself. */
    for (i = 0; i < n; i++) {
        uint8_t was = raw[i];
        rt_signed_status_t st;
        raw[i] ^= 0x01;
        s_text (raw, n, bad);
        st = s_verify (keys, "unsubscribe", bad, NOW);
        /* Every byte: the version, the lengths (bytes 1 and 12) and the
         * key id (2, 3) are refused by their own checks, the expiry, the
         * payload and the MAC by the MAC. */
        assert_int_not_equal (st, RT_SIGNED_OK);
        if (i >= 4 && i != 12)
            assert_int_equal (st, RT_SIGNED_BAD_MAC);
        else if (i == 2 || i == 3)
            assert_int_equal (st, RT_SIGNED_UNKNOWN_KEY);
        raw[i] = was;
    }
    assert_string_equal (rt_signed_reason (RT_SIGNED_BAD_MAC), "bad_mac");

    /* Expired: at its expiry and after, not before. */
    assert_int_equal (s_verify (keys, "unsubscribe", token, NOW + 59), RT_SIGNED_OK);
    assert_int_equal (s_verify (keys, "unsubscribe", token, NOW + 60), RT_SIGNED_EXPIRED);
    assert_int_equal (s_verify (keys, "unsubscribe", token, NOW + 86400), RT_SIGNED_EXPIRED);
    assert_string_equal (rt_signed_reason (RT_SIGNED_EXPIRED), "expired");
    /* A forged token is told it is forged, not that it expired. */
    s_text (raw, n, bad);
    bad[strlen (bad) - 3] = bad[strlen (bad) - 3] == 'A' ? 'B' : 'A';
    assert_int_equal (s_verify (keys, "unsubscribe", bad, NOW + 86400), RT_SIGNED_BAD_MAC);

    rt_signed_keys_destroy (&keys);
    rt_signed_keys_destroy (&other);
}

static void
test_rotation (void **state)
{
    rt_signed_keys_t *old = s_keys (SECRET1);
    rt_signed_keys_t *both = s_keys (SECRET2 "," SECRET1);
    rt_signed_keys_t *after = s_keys (SECRET2);
    char sent[RT_SIGNED_TOKEN_MAX], fresh[RT_SIGNED_TOKEN_MAX];
    (void)state;

    s_make (old, "unsubscribe", "c-7", NOW + 3600, sent);
    /* The new key signs; links sent under the old one still work. */
    assert_string_equal (rt_signed_keys_current (both), "k2");
    s_make (both, "unsubscribe", "c-7", NOW + 3600, fresh);
    assert_int_equal (s_verify (both, "unsubscribe", sent, NOW), RT_SIGNED_OK);
    assert_int_equal (s_verify (both, "unsubscribe", fresh, NOW), RT_SIGNED_OK);
    /* A verifier still on the old set does not know the new key yet. */
    assert_int_equal (s_verify (old, "unsubscribe", fresh, NOW), RT_SIGNED_UNKNOWN_KEY);
    /* Once the old key is dropped, its links are no longer ours. */
    assert_int_equal (s_verify (after, "unsubscribe", sent, NOW), RT_SIGNED_UNKNOWN_KEY);
    assert_int_equal (s_verify (after, "unsubscribe", fresh, NOW), RT_SIGNED_OK);
    /* Same id, another secret (a key replaced under its old name): forged. */
    {
        rt_signed_keys_t *renamed = s_keys ("k1:a-different-secret-of-k1-xyz");
        assert_int_equal (s_verify (renamed, "unsubscribe", sent, NOW), RT_SIGNED_BAD_MAC);
        rt_signed_keys_destroy (&renamed);
    }
    rt_signed_keys_destroy (&old);
    rt_signed_keys_destroy (&both);
    rt_signed_keys_destroy (&after);
}

static void
test_purpose_separation (void **state)
{
    rt_signed_keys_t *keys = s_keys (SECRET1);
    char csat[RT_SIGNED_TOKEN_MAX], unsub[RT_SIGNED_TOKEN_MAX];
    (void)state;
    s_make (keys, "csat", "c-9", NOW + 3600, csat);
    s_make (keys, "unsubscribe", "c-9", NOW + 3600, unsub);
    /* Same key, same payload, same expiry: different tokens, each good for
     * its own purpose only. */
    assert_string_not_equal (csat, unsub);
    assert_int_equal (s_verify (keys, "csat", csat, NOW), RT_SIGNED_OK);
    assert_int_equal (s_verify (keys, "unsubscribe", csat, NOW), RT_SIGNED_BAD_MAC);
    assert_int_equal (s_verify (keys, "unsubscribe", unsub, NOW), RT_SIGNED_OK);
    assert_int_equal (s_verify (keys, "csat", unsub, NOW), RT_SIGNED_BAD_MAC);
    /* The purpose's bytes are delimited: "unsub" + "scribe" is not it. */
    assert_int_equal (s_verify (keys, "unsub", unsub, NOW), RT_SIGNED_BAD_MAC);
    rt_signed_keys_destroy (&keys);
}

/* A small deterministic generator: the loop is the same on every run. */
static uint32_t
s_rand (uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void
test_mutations_never_accepted (void **state)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. %";
    rt_signed_keys_t *keys = s_keys (SECRET2 "," SECRET1);
    char token[RT_SIGNED_TOKEN_MAX], m[2 * RT_SIGNED_TOKEN_MAX];
    uint8_t raw[400];
    uint32_t seed = 20260101;
    size_t n, len, i, tries = 0;
    int round;
    (void)state;

    s_make (keys, "unsubscribe", "customer-123|email|marketing", NOW + 3600, token);
    n = s_raw (token, raw, sizeof raw);
    for (round = 0; round < 20000; round++) {
        int edits = 1 + (int)(s_rand (&seed) % 4), e;
        snprintf (m, sizeof m, "%s", token);
        for (e = 0; e < edits; e++) {
            len = strlen (m);
            if (len == 0)
                break;
            switch (s_rand (&seed) % 4) {
            case 0: /* replace a character */
                m[s_rand (&seed) % len] = alphabet[s_rand (&seed) % (sizeof alphabet - 1)];
                break;
            case 1: /* delete one */
                if (len > 1) {
                    i = s_rand (&seed) % len;
                    memmove (m + i, m + i + 1, len - i);
                }
                break;
            case 2: /* insert one */
                if (len + 2 < sizeof m) {
                    i = s_rand (&seed) % (len + 1);
                    memmove (m + i + 1, m + i, len - i + 1);
                    m[i] = alphabet[s_rand (&seed) % (sizeof alphabet - 1)];
                }
                break;
            default: /* cut the end */
                m[s_rand (&seed) % len] = '\0';
                break;
            }
        }
        if (strcmp (m, token) == 0)
            continue;
        tries++;
        if (s_verify (keys, "unsubscribe", m, NOW) == RT_SIGNED_OK)
            fail_msg ("mutated token accepted: %s (from %s)", m, token);
    }
    /* By byte: flip random bits of the decoded token and re-encode. */
    for (round = 0; round < 20000; round++) {
        uint8_t copy[400];
        int flips = 1 + (int)(s_rand (&seed) % 3), f;
        memcpy (copy, raw, n);
        for (f = 0; f < flips; f++)
            copy[s_rand (&seed) % n] ^= (uint8_t)(1u << (s_rand (&seed) % 8));
        if (memcmp (copy, raw, n) == 0)
            continue;
        tries++;
        s_text (copy, n, m);
        if (s_verify (keys, "unsubscribe", m, NOW) == RT_SIGNED_OK)
            fail_msg ("token with flipped bits accepted: %s", m);
    }
    assert_true (tries > 39000);
    assert_int_equal (s_verify (keys, "unsubscribe", token, NOW), RT_SIGNED_OK);
    rt_signed_keys_destroy (&keys);
}

static void
test_key_sets (void **state)
{
    static const char *const bad[] = {
        "",                                            /* nothing */
        "k1",                                          /* no secret */
        ":a-secret-long-enough-0123",                  /* no id */
        "k1:tiny",                                     /* a weak secret */
        "k 1:a-secret-long-enough-0123",               /* an id with a space */
        "k1234567890123456:a-secret-long-enough-0123", /* an id too long */
        SECRET1 "," SECRET1,                           /* an id twice */
        SECRET1 ",",                                   /* an empty entry */
    };
    char err[128], spec[2048];
    size_t i;
    rt_signed_keys_t *keys;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        keys = rt_signed_keys_parse (bad[i], err, sizeof err);
        if (keys)
            fail_msg ("key set accepted: \"%s\"", bad[i]);
        assert_true (err[0] != '\0');
        /* The reason never quotes a secret. */
        assert_null (strstr (err, "secret-0123"));
        assert_null (strstr (err, "tiny"));
    }
    /* Whitespace around entries (a value read from a file) is not part of
     * the key. */
    keys = rt_signed_keys_parse (" k2:second-secret-0123456789abcdef ,\n" SECRET1 "\n", err,
                                 sizeof err);
    assert_non_null (keys);
    assert_string_equal (rt_signed_keys_current (keys), "k2");
    {
        rt_signed_keys_t *plain = s_keys (SECRET1);
        char token[RT_SIGNED_TOKEN_MAX];
        s_make (plain, "csat", "x", NOW + 10, token);
        assert_int_equal (s_verify (keys, "csat", token, NOW), RT_SIGNED_OK);
        rt_signed_keys_destroy (&plain);
    }
    rt_signed_keys_destroy (&keys);
    /* At most RT_SIGNED_KEYS_MAX keys. */
    spec[0] = '\0';
    for (i = 0; i <= RT_SIGNED_KEYS_MAX; i++) {
        char entry[64];
        snprintf (entry, sizeof entry, "%sk%zu:secret-number-%zu-0123456789", i ? "," : "", i, i);
        strcat (spec, entry);
    }
    assert_null (rt_signed_keys_parse (spec, err, sizeof err));
    *strrchr (spec, ',') = '\0';
    keys = rt_signed_keys_parse (spec, err, sizeof err);
    assert_non_null (keys);
    rt_signed_keys_destroy (&keys);
}

static void
test_unsubscribe_payload (void **state)
{
    rt_signed_keys_t *keys = s_keys (SECRET1);
    rt_signed_unsubscribe_t u, back;
    char token[RT_SIGNED_TOKEN_MAX];
    (void)state;

    memset (&u, 0, sizeof u);
    snprintf (u.customer_id, sizeof u.customer_id, "0190a5c2-7b1e-7000-8000-00000000002a");
    snprintf (u.category, sizeof u.category, "marketing");
    u.channel = 8; /* any Channel value */
    assert_true (rt_signed_unsubscribe_make (keys, &u, NOW + 3600, token, sizeof token) > 0);
    memset (&back, 0x55, sizeof back);
    assert_int_equal (rt_signed_unsubscribe_read (keys, token, NOW, &back), RT_SIGNED_OK);
    assert_string_equal (back.customer_id, u.customer_id);
    assert_string_equal (back.category, "marketing");
    assert_int_equal (back.channel, 8);
    assert_int_equal (rt_signed_unsubscribe_read (keys, token, NOW + 3600, &back),
                      RT_SIGNED_EXPIRED);

    /* An unsubscribe read of a token of another purpose: forged. */
    s_make (keys, "csat", "\x08\x09marketingc-1", NOW + 3600, token);
    assert_int_equal (rt_signed_unsubscribe_read (keys, token, NOW, &back), RT_SIGNED_BAD_MAC);
    /* A genuine unsubscribe token whose payload does not unpack. */
    s_make (keys, RT_SIGNED_PURPOSE_UNSUBSCRIBE, "\x08\x40marketing", NOW + 3600, token);
    assert_int_equal (rt_signed_unsubscribe_read (keys, token, NOW, &back), RT_SIGNED_MALFORMED);

    /* What cannot be packed is refused when made. */
    snprintf (u.category, sizeof u.category, "Marketing!");
    assert_int_equal (rt_signed_unsubscribe_make (keys, &u, NOW + 1, token, sizeof token), -1);
    snprintf (u.category, sizeof u.category, "marketing");
    u.customer_id[0] = '\0';
    assert_int_equal (rt_signed_unsubscribe_make (keys, &u, NOW + 1, token, sizeof token), -1);
    snprintf (u.customer_id, sizeof u.customer_id, "a\nb");
    assert_int_equal (rt_signed_unsubscribe_make (keys, &u, NOW + 1, token, sizeof token), -1);
    snprintf (u.customer_id, sizeof u.customer_id, "c-1");
    u.channel = 300;
    assert_int_equal (rt_signed_unsubscribe_make (keys, &u, NOW + 1, token, sizeof token), -1);
    rt_signed_keys_destroy (&keys);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_each_refusal),
        cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_purpose_separation),
        cmocka_unit_test (test_mutations_never_accepted),
        cmocka_unit_test (test_key_sets),
        cmocka_unit_test (test_unsubscribe_payload),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
