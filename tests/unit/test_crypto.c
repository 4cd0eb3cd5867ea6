/*
 * test_crypto: common/crypto against the published test vectors (RFC 4231
 * for HMAC-SHA256, RFC 2202 for HMAC-SHA1, FIPS 180-2 for SHA-256, RFC 4648
 * for base64), plus what a webhook check leans on: constant-time equality,
 * and codecs that refuse what is not canonical.
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

/* Bytes of a hex string (the vectors are written in hex). */
static size_t
s_bytes (const char *hex, uint8_t *out, size_t outlen)
{
    long n = rt_hex_decode (hex, strlen (hex), out, outlen);
    assert_true (n >= 0);
    return (size_t)n;
}

static void
s_repeat (uint8_t *out, uint8_t byte, size_t n)
{
    memset (out, byte, n);
}

/* RFC 4231, section 4: test cases 1 to 7. */
static void
test_hmac_sha256_rfc4231 (void **state)
{
    static const char *data_4 = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
                                "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
    static const char *data_6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char *data_7 =
        "This is a test using a larger than block-size key and a larger than block-size data. "
        "The key needs to be hashed before being used by the HMAC algorithm.";
    uint8_t key[256], data[256], mac[RT_SHA256_LEN];
    char hex[2 * RT_SHA256_LEN + 1];
    size_t klen, dlen;
    (void)state;

    s_repeat (key, 0x0b, 20);
    rt_hmac_sha256 (key, 20, "Hi There", 8, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    rt_hmac_sha256 ("Jefe", 4, "what do ya want for nothing?", 28, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    s_repeat (key, 0xaa, 20);
    s_repeat (data, 0xdd, 50);
    rt_hmac_sha256 (key, 20, data, 50, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

    klen = s_bytes ("0102030405060708090a0b0c0d0e0f10111213141516171819", key, sizeof key);
    dlen = s_bytes (data_4, data, sizeof data);
    assert_int_equal (klen, 25);
    assert_int_equal (dlen, 50);
    rt_hmac_sha256 (key, klen, data, dlen, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

    /* Case 5 is truncated to 128 bits. */
    s_repeat (key, 0x0c, 20);
    rt_hmac_sha256 (key, 20, "Test With Truncation", 20, mac);
    rt_hex_encode (mac, 16, hex);
    assert_string_equal (hex, "a3b6167473100ee06e0c796c2955552b");

    /* Keys longer than the block are hashed first. */
    s_repeat (key, 0xaa, 131);
    rt_hmac_sha256 (key, 131, data_6, strlen (data_6), mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    rt_hmac_sha256 (key, 131, data_7, strlen (data_7), mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* RFC 2202, section 3: test cases 1 to 7. */
static void
test_hmac_sha1_rfc2202 (void **state)
{
    static const char *data_6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char *data_7 =
        "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data";
    uint8_t key[128], data[64], mac[RT_SHA1_LEN];
    char hex[2 * RT_SHA1_LEN + 1];
    size_t klen;
    (void)state;

    s_repeat (key, 0x0b, 20);
    rt_hmac_sha1 (key, 20, "Hi There", 8, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "b617318655057264e28bc0b6fb378c8ef146be00");

    rt_hmac_sha1 ("Jefe", 4, "what do ya want for nothing?", 28, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");

    s_repeat (key, 0xaa, 20);
    s_repeat (data, 0xdd, 50);
    rt_hmac_sha1 (key, 20, data, 50, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "125d7342b9ac11cd91a39af48aa17b4f63f175d3");

    klen = s_bytes ("0102030405060708090a0b0c0d0e0f10111213141516171819", key, sizeof key);
    s_repeat (data, 0xcd, 50);
    rt_hmac_sha1 (key, klen, data, 50, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "4c9007f4026250c6bc8414f9bf50c86c2d7235da");

    s_repeat (key, 0x0c, 20);
    rt_hmac_sha1 (key, 20, "Test With Truncation", 20, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04");

    s_repeat (key, 0xaa, 80);
    rt_hmac_sha1 (key, 80, data_6, strlen (data_6), mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "aa4ae5e15272d00e95705637ce8a3b55ed402112");

    rt_hmac_sha1 (key, 80, data_7, strlen (data_7), mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "e8e99d0f45237d786d6bbaa7965c7808bbff1a91");
}

static void
test_hmac_empty_key_and_data (void **state)
{
    uint8_t mac[RT_SHA256_LEN], mac1[RT_SHA1_LEN];
    char hex[2 * RT_SHA256_LEN + 1];
    (void)state;
    /* A webhook with an empty body is still signed. */
    rt_hmac_sha256 ("", 0, "", 0, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    rt_hmac_sha256 ("key", 3, NULL, 0, mac);
    rt_hex_encode (mac, sizeof mac, hex);
    assert_string_equal (hex, "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0");
    rt_hmac_sha1 ("", 0, "", 0, mac1);
    rt_hex_encode (mac1, sizeof mac1, hex);
    assert_string_equal (hex, "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d");
}

/* FIPS 180-2, appendix B. */
static void
test_sha256 (void **state)
{
    uint8_t md[RT_SHA256_LEN];
    char hex[2 * RT_SHA256_LEN + 1];
    (void)state;
    rt_sha256 ("abc", 3, md);
    rt_hex_encode (md, sizeof md, hex);
    assert_string_equal (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rt_sha256 ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, md);
    rt_hex_encode (md, sizeof md, hex);
    assert_string_equal (hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    rt_sha256 ("", 0, md);
    rt_hex_encode (md, sizeof md, hex);
    assert_string_equal (hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_ct_equal (void **state)
{
    uint8_t a[64], b[64];
    size_t i;
    (void)state;
    assert_true (rt_ct_equal ("", 0, "", 0));
    assert_true (rt_ct_equal ("secret", 6, "secret", 6));
    assert_false (rt_ct_equal ("secret", 6, "secreT", 6));
    assert_false (rt_ct_equal ("secret", 6, "Secret", 6));
    /* A prefix is not equal, whichever side is shorter. */
    assert_false (rt_ct_equal ("secret", 6, "secre", 5));
    assert_false (rt_ct_equal ("secre", 5, "secret", 6));
    assert_false (rt_ct_equal ("", 0, "x", 1));
    /* Every single-bit difference, at every position, is seen. */
    for (i = 0; i < sizeof a; i++)
        a[i] = (uint8_t)(i * 37 + 11);
    memcpy (b, a, sizeof b);
    assert_true (rt_ct_equal (a, sizeof a, b, sizeof b));
    for (i = 0; i < 8 * sizeof a; i++) {
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_false (rt_ct_equal (a, sizeof a, b, sizeof b));
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* Embedded NULs are bytes like any other. */
    assert_false (rt_ct_equal ("a\0b", 3, "a\0c", 3));
    assert_true (rt_ct_equal ("a\0b", 3, "a\0b", 3));
}

static void
test_hex (void **state)
{
    uint8_t all[256], back[256], small[4];
    char hex[2 * 256 + 1];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof all; i++)
        all[i] = (uint8_t)i;
    rt_hex_encode (all, sizeof all, hex);
    assert_int_equal (strlen (hex), 512);
    assert_memory_equal (hex, "000102030405060708090a0b0c0d0e0f", 32);
    assert_string_equal (hex + 500, "fafbfcfdfeff");
    assert_int_equal (rt_hex_decode (hex, strlen (hex), back, sizeof back), 256);
    assert_memory_equal (all, back, sizeof all);

    assert_int_equal (rt_hex_decode ("DEADbeef", 8, small, sizeof small), 4);
    assert_memory_equal (small, "\xde\xad\xbe\xef", 4);
    rt_hex_encode (small, 0, hex);
    assert_string_equal (hex, "");
    assert_int_equal (rt_hex_decode ("", 0, small, sizeof small), 0);

    /* Odd length, non-hex characters, too small an output. */
    assert_int_equal (rt_hex_decode ("abc", 3, small, sizeof small), -1);
    assert_int_equal (rt_hex_decode ("zz", 2, small, sizeof small), -1);
    assert_int_equal (rt_hex_decode ("0g", 2, small, sizeof small), -1);
    assert_int_equal (rt_hex_decode (" 0", 2, small, sizeof small), -1);
    assert_int_equal (rt_hex_decode ("0\0", 2, small, sizeof small), -1);
    assert_int_equal (rt_hex_decode ("0x00", 4, small, sizeof small), -1);
    assert_int_equal (rt_hex_decode ("0011223344", 10, small, sizeof small), -1);
}

/* RFC 4648, section 10, both ways. */
static void
test_base64_rfc4648 (void **state)
{
    static const char *vectors[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    uint8_t out[16];
    char text[32];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const char *plain = vectors[i][0], *b64 = vectors[i][1];
        rt_base64_encode ((const uint8_t *)plain, strlen (plain), text);
        assert_string_equal (text, b64);
        assert_int_equal (rt_base64_decode (b64, strlen (b64), out, sizeof out), strlen (plain));
        assert_memory_equal (out, plain, strlen (plain));
    }
    /* Padding is optional. */
    assert_int_equal (rt_base64_decode ("Zm9vYg", 6, out, sizeof out), 4);
    assert_memory_equal (out, "foob", 4);
    assert_int_equal (rt_base64_decode ("Zg", 2, out, sizeof out), 1);
}

static void
test_base64_round_trip_and_url_safe (void **state)
{
    uint8_t all[256], back[256], mac[RT_SHA1_LEN];
    char text[4 * 86 + 1];
    size_t n;
    (void)state;
    for (n = 0; n < sizeof all; n++)
        all[n] = (uint8_t)(255 - n);
    /* Every length 0..256 round-trips. */
    for (n = 0; n <= sizeof all; n++) {
        rt_base64_encode (all, n, text);
        assert_int_equal (strlen (text), 4 * ((n + 2) / 3));
        assert_int_equal (rt_base64_decode (text, strlen (text), back, sizeof back), n);
        assert_memory_equal (all, back, n);
    }
    /* "+/" and "-_" decode alike. */
    assert_int_equal (rt_base64_decode ("+/+/", 4, back, sizeof back), 3);
    assert_memory_equal (back, "\xfb\xff\xbf", 3);
    assert_int_equal (rt_base64_decode ("-_-_", 4, back, sizeof back), 3);
    assert_memory_equal (back, "\xfb\xff\xbf", 3);
    /* A Twilio-style signature: base64 of an HMAC-SHA1. */
    rt_hmac_sha1 ("Jefe", 4, "what do ya want for nothing?", 28, mac);
    rt_base64_encode (mac, sizeof mac, text);
    assert_string_equal (text, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
}

static void
test_base64_bad_input (void **state)
{
    static const char *bad[] = {
        "Z",        /* one character of a quantum carries no byte */
        "Zm9vY",    /* the same after full quanta */
        "Zg===",    /* three pads */
        "Zg=====",  /* many pads */
        "Z===",     /* pads after one character */
        "Zm8==",    /* a pad too many for the length */
        "Zg=",      /* padding present but incomplete */
        "Zm9v=",    /* padding where none belongs */
        "Zm9v====", /* a whole quantum of padding */
        "=Zg=",     /* padding first */
        "Zg=a",     /* padding in the middle */
        "Zm9v Yg==", "Zm9v\nYg==", "Zm9v*g==", "Zh==", /* stray bits: "Zh==" is not "f" */
        "Zm9=",                                        /* stray bits in a two-byte tail */
    };
    uint8_t out[16];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (rt_base64_decode (bad[i], strlen (bad[i]), out, sizeof out) != -1)
            fail_msg ("\"%s\" was accepted", bad[i]);
    }
    /* Too small an output. */
    assert_int_equal (rt_base64_decode ("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal (rt_base64_decode ("Zm9vYmFy", 8, out, 6), 6);
    /* An embedded NUL is not a base64 character. */
    assert_int_equal (rt_base64_decode ("Zm\0v", 4, out, sizeof out), -1);
}

/* Random bytes: a large buffer is filled whole (getrandom may return
 * short reads; rt_random loops), two draws differ, and every byte value
 * turns up in 1 MiB (a buffer left partly unfilled would not). */
static void
test_random (void **state)
{
    enum { N = 1 << 20 };
    uint8_t *a = calloc (1, N), *b = calloc (1, N);
    bool seen[256] = {false};
    size_t distinct = 0, zero_tail = 0;
    (void)state;
    assert_non_null (a);
    assert_non_null (b);
    assert_int_equal (rt_random (a, 0), 0);
    assert_int_equal (rt_random (a, N), 0);
    assert_int_equal (rt_random (b, N), 0);
    assert_memory_not_equal (a, b, N);
    for (size_t i = 0; i < N; i++) {
        if (!seen[a[i]]) {
            seen[a[i]] = true;
            distinct++;
        }
    }
    assert_int_equal (distinct, 256);
    /* The last 64 bytes all zero would say the tail was never written. */
    for (size_t i = N - 64; i < N; i++)
        zero_tail += a[i] == 0;
    assert_true (zero_tail < 64);
    free (a);
    free (b);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_hmac_sha256_rfc4231),
        cmocka_unit_test (test_hmac_sha1_rfc2202),
        cmocka_unit_test (test_hmac_empty_key_and_data),
        cmocka_unit_test (test_sha256),
        cmocka_unit_test (test_ct_equal),
        cmocka_unit_test (test_hex),
        cmocka_unit_test (test_base64_rfc4648),
        cmocka_unit_test (test_base64_round_trip_and_url_safe),
        cmocka_unit_test (test_base64_bad_input),
        cmocka_unit_test (test_random),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
