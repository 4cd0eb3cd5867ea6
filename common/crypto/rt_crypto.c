/*
 * rt_crypto: HMACs, constant-time comparison, hex and base64.
 */
#include "rt_crypto.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

void
rt_hmac_sha256 (const void *key, size_t keylen, const void *data, size_t len,
                uint8_t out[RT_SHA256_LEN])
{
    unsigned int outlen = RT_SHA256_LEN;
    HMAC (EVP_sha256 (), key, (int)keylen, data, len, out, &outlen);
}

void
rt_hmac_sha1 (const void *key, size_t keylen, const void *data, size_t len,
              uint8_t out[RT_SHA1_LEN])
{
    unsigned int outlen = RT_SHA1_LEN;
    HMAC (EVP_sha1 (), key, (int)keylen, data, len, out, &outlen);
}

void
rt_sha256 (const void *data, size_t len, uint8_t out[RT_SHA256_LEN])
{
    unsigned int outlen = RT_SHA256_LEN;
    EVP_Digest (data, len, out, &outlen, EVP_sha256 (), NULL);
}

bool
rt_ct_equal (const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    size_t i;
    if (alen != blen)
        return false;
    for (i = 0; i < alen; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}
