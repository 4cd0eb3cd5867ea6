/*
 * rt_crypto: what verifying a provider's webhook takes.
 *
 * HMAC-SHA256 and HMAC-SHA1 (OpenSSL), comparison in constant time (a
 * signature check must not leak through its timing how many leading bytes
 * were right), hex and base64 codecs. Pure functions, thread-safe.
 */
#ifndef RT_CRYPTO_H
#define RT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Lower-case hex of bin into out (2*len + 1 bytes, NUL-terminated). */
void rt_hex_encode (const uint8_t *bin, size_t len, char *out);

/* Decodes hex (either case) into out (up to outlen bytes). Returns the
 * number of bytes, or -1 on an odd length, a non-hex character or too small
 * an out. */
long rt_hex_decode (const char *hex, size_t hexlen, uint8_t *out, size_t outlen);

/* Standard base64 with padding of bin into out (4*ceil(len/3) + 1 bytes). */
void rt_base64_encode (const uint8_t *bin, size_t len, char *out);

/* Decodes standard or URL-safe base64, padding optional, into out. Returns
 * the number of bytes, or -1 on bad input or too small an out. */
long rt_base64_decode (const char *text, size_t len, uint8_t *out, size_t outlen);

#endif
