/*
 * rt_crypto: what verifying a provider's webhook takes.
 *
 * HMAC-SHA256 and HMAC-SHA1 (OpenSSL), comparison in constant time (a
 * signature check must not leak through its timing how many leading bytes
 * were right), and the one source of secret random bytes (keys, tokens,
 * the random bits of ids). Thread-safe. Hex and base64 are rt_codec's,
 * included here for the signature checks that need them.
 */
#ifndef RT_CRYPTO_H
#define RT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_codec.h"

#define RT_SHA256_LEN 32
#define RT_SHA1_LEN   20

/* HMAC-SHA256 of data under key into out (32 bytes). */
void rt_hmac_sha256 (const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[RT_SHA256_LEN]);

/* HMAC-SHA1 of data under key into out (20 bytes). */
void rt_hmac_sha1 (const void *key, size_t keylen, const void *data, size_t len,
                   uint8_t out[RT_SHA1_LEN]);

/* SHA-256 of data into out (32 bytes). */
void rt_sha256 (const void *data, size_t len, uint8_t out[RT_SHA256_LEN]);

/* True when a and b have the same length and bytes; the time taken depends
 * only on the lengths. */
bool rt_ct_equal (const void *a, size_t alen, const void *b, size_t blen);

/* Fills buf[0..len) with bytes from the kernel's CSPRNG (getrandom(2),
 * retried when interrupted). 0, or -1 with errno set (only a kernel
 * without getrandom fails). */
int rt_random (void *buf, size_t len);

#endif
