/*
 * rt_uuid: UUIDv7 (RFC 9562).
 *
 * Layout of a v7 id, big-endian:
 *   48 bits unix_ts_ms | 4 bits version (7) | 12 bits rand_a | 2 bits variant
 *   (10) | 62 bits rand_b.
 *
 * Monotonicity (section 6.2, method 1): rand_a is a counter. On a new
 * millisecond it is seeded at random with its top bit clear, leaving at
 * least 2048 increments before it overflows; within the same millisecond
 * (or when the clock steps back) it is incremented. On overflow the
 * timestamp is advanced by one millisecond ahead of the clock, as the RFC
 * allows, and the counter reseeded. The last (timestamp, counter) pair is
 * the module's one piece of process-wide state, which its header promises
 * ("monotonic within the process"); a mutex guards it.
 *
 * rand_b comes from getrandom(2) on every call, not from a pool: a pool
 * would be copied into a forked child and repeat ids there.
 */
#include "rt_uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_clock.h"
#include "rt_codec.h"
#include "rt_crypto.h"

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t s_last_ms = -1; /* timestamp of the last id; guarded by s_lock */
static uint16_t s_counter = 0; /* rand_a of the last id, 12 bits; guarded by s_lock */

/* Only a kernel without getrandom (before 3.17) fails here. An id
 * generator with no randomness would hand out colliding ids, so stopping
 * is the only safe answer. */
static void
s_random (void *buf, size_t len)
{
    if (rt_random (buf, len) != 0) {
        fprintf (stderr, "rt_uuid: getrandom: %s\n", strerror (errno));
        abort ();
    }
}

rt_uuid_t
rt_uuid_v7 (void)
{
    rt_uuid_t id;
    uint8_t rnd[10];
    /* Drawn before taking the lock: the syscall need not be serialised. */
    s_random (rnd, sizeof rnd);
    uint16_t seed = (uint16_t)(((rnd[8] << 8) | rnd[9]) & 0x07FF);

    int64_t now = rt_clock_now_ms ();
    pthread_mutex_lock (&s_lock);
    if (now > s_last_ms) {
        s_last_ms = now;
        s_counter = seed;
    } else if (s_counter < 0x0FFF)
        s_counter++;
    else {
        s_last_ms++;
        s_counter = seed;
    }
    int64_t ms = s_last_ms;
    uint16_t counter = s_counter;
    pthread_mutex_unlock (&s_lock);

    for (int i = 0; i < 6; i++)
        id.b[i] = (uint8_t)(ms >> (8 * (5 - i)));
    id.b[6] = (uint8_t)(0x70 | (counter >> 8));
    id.b[7] = (uint8_t)(counter & 0xFF);
    memcpy (id.b + 8, rnd, 8);
    id.b[8] = (uint8_t)((id.b[8] & 0x3F) | 0x80);
    return id;
}

rt_uuid_t
rt_uuid_v8_name (const char *name, size_t len)
{
    rt_uuid_t id;
    uint8_t h[RT_SHA256_LEN];
    rt_sha256 (name, len, h);
    memcpy (id.b, h, sizeof id.b);
    id.b[6] = (uint8_t)(0x80 | (id.b[6] & 0x0F));
    id.b[8] = (uint8_t)(0x80 | (id.b[8] & 0x3F));
    return id;
}

void
rt_uuid_format (const rt_uuid_t *id, char out[RT_UUID_STR_LEN + 1])
{
    /* 8-4-4-4-12: the groups' byte ranges. */
    static const int groups[5][2] = {{0, 4}, {4, 6}, {6, 8}, {8, 10}, {10, 16}};
    size_t o = 0;
    for (int g = 0; g < 5; g++) {
        if (g)
            out[o++] = '-';
        rt_hex_encode (id->b + groups[g][0], (size_t)(groups[g][1] - groups[g][0]), out + o);
        o += (size_t)(2 * (groups[g][1] - groups[g][0]));
    }
    out[o] = '\0';
}

int
rt_uuid_parse (const char *text, rt_uuid_t *out)
{
    rt_uuid_t id;
    if (!text || !out)
        return -1;
    size_t t = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (text[t] != '-')
                return -1;
            t++;
        }
        /* A NUL fails rt_hex_value, so a short text never reads past its end. */
        int hi = rt_hex_value (text[t]);
        if (hi < 0)
            return -1;
        int lo = rt_hex_value (text[t + 1]);
        if (lo < 0)
            return -1;
        id.b[i] = (uint8_t)((hi << 4) | lo);
        t += 2;
    }
    if (text[t] != '\0')
        return -1;
    *out = id;
    return 0;
}

int64_t
rt_uuid_v7_time_ms (const rt_uuid_t *id)
{
    if (!id || (id->b[6] >> 4) != 7)
        return 0;
    int64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | id->b[i];
    return ms;
}
