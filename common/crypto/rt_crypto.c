/*
 * rt_crypto: HMACs, constant-time comparison and random bytes.
 */
#include "rt_crypto.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

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

int
rt_random (void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom (p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
