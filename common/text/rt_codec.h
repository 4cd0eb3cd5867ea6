/*
 * rt_codec: hex and base64, once for all of retain.
 *
 * Hex is what signatures travel in (webhook HMACs, hashes); base64 is what
 * protobuf's JSON mapping, Twilio's signatures and MIME use. Decoders are
 * strict: a byte that does not belong, padding that does not complete the
 * last quantum, or leftover bits that are not zero make an error, so one
 * value has one spelling. Pure functions, thread-safe.
 */
#ifndef RT_CODEC_H
#define RT_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* The value of a hex digit of either case, or -1. */
int rt_hex_value (char c);

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
