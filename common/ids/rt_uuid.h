/*
 * rt_uuid: UUIDv7 (RFC 9562), the ids of envelopes and of retain's records.
 *
 * A v7 id starts with the unix time in milliseconds, so ids sort by creation
 * time and index well. Within one millisecond a generator keeps ids
 * increasing by using the 12-bit rand_a field as a counter seeded at random
 * (RFC 9562 section 6.2, method 1); the rest is from getrandom(2).
 */
#ifndef RT_UUID_H
#define RT_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_UUID_STR_LEN 36 /* without the terminating NUL */

typedef struct {
    uint8_t b[16];
} rt_uuid_t;

/* A new UUIDv7. Thread-safe; monotonic within the process. */
rt_uuid_t rt_uuid_v7 (void);

/* A name-based UUIDv8 (RFC 9562, appendix B.2's SHA-256 scheme): the
 * first 16 bytes of SHA-256(name) with the version and variant set. The
 * same name always makes the same id, so an idempotency key derived from
 * what a message is about ("shipment:<id>:Delivered") makes a replay name
 * the same message. */
rt_uuid_t rt_uuid_v8_name (const char *name, size_t len);

/* Writes the canonical lower-case form, 36 characters plus NUL, into out. */
void rt_uuid_format (const rt_uuid_t *id, char out[RT_UUID_STR_LEN + 1]);

/* Parses the canonical 8-4-4-4-12 form (either case). Returns 0 or -1. */
int rt_uuid_parse (const char *text, rt_uuid_t *out);

/* The unix milliseconds of a v7 id; 0 when the id is not version 7. */
int64_t rt_uuid_v7_time_ms (const rt_uuid_t *id);

#endif
