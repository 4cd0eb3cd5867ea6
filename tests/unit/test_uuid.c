/*
 * test_uuid: envelope ids as a reader of the log sees them. Each is a valid
 * RFC 9562 version 7 id carrying the time it was made; ids made one after
 * another sort in that order, across threads too; the text form round-trips
 * and malformed text is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_uuid.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t
s_unix_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int
s_compare (const void *a, const void *b)
{
    return memcmp (a, b, sizeof (rt_uuid_t));
}

static void
test_version_variant_and_time (void **state)
{
    (void)state;
    int64_t before = s_unix_ms ();
    rt_uuid_t id = rt_uuid_v7 ();
    int64_t after = s_unix_ms ();
    assert_int_equal (id.b[6] >> 4, 7);
    assert_int_equal (id.b[8] >> 6, 2); /* variant 10 */
    int64_t ms = rt_uuid_v7_time_ms (&id);
    assert_true (ms >= before && ms <= after);

    char text[RT_UUID_STR_LEN + 1];
    rt_uuid_format (&id, text);
    assert_int_equal (strlen (text), RT_UUID_STR_LEN);
    /* The version shows as the first digit of the third group. */
    assert_int_equal (text[14], '7');
    assert_true (strchr ("89ab", text[19]) != NULL);
}

static void
test_ten_thousand_strictly_increasing (void **state)
{
    (void)state;
    enum { N = 10000 };
    rt_uuid_t *ids = malloc (N * sizeof *ids);
    char (*texts)[RT_UUID_STR_LEN + 1] = malloc (N * sizeof *texts);
    assert_non_null (ids);
    assert_non_null (texts);
    for (int i = 0; i < N; i++)
        ids[i] = rt_uuid_v7 ();
    for (int i = 0; i < N; i++) {
        rt_uuid_format (&ids[i], texts[i]);
        assert_int_equal (ids[i].b[6] >> 4, 7);
        assert_int_equal (ids[i].b[8] >> 6, 2);
        if (i > 0) {
            if (memcmp (&ids[i - 1], &ids[i], sizeof ids[i]) >= 0)
                fail_msg ("id %d (%s) does not follow %s", i, texts[i], texts[i - 1]);
            /* The text form sorts the same way, which is what a database
             * comparing them as text or as uuid sees. */
            assert_true (strcmp (texts[i - 1], texts[i]) < 0);
            assert_true (rt_uuid_v7_time_ms (&ids[i - 1]) <= rt_uuid_v7_time_ms (&ids[i]));
        }
    }
    free (ids);
    free (texts);
}

#define S_THREADS 4
#define S_PER     5000

static void *
s_make_ids (void *arg)
{
    rt_uuid_t *ids = arg;
    for (int i = 0; i < S_PER; i++)
        ids[i] = rt_uuid_v7 ();
    return NULL;
}

static void
test_threads_get_unique_increasing_ids (void **state)
{
    (void)state;
    rt_uuid_t *ids = malloc (S_THREADS * S_PER * sizeof *ids);
    assert_non_null (ids);
    pthread_t threads[S_THREADS];
    for (int t = 0; t < S_THREADS; t++)
        assert_int_equal (pthread_create (&threads[t], NULL, s_make_ids, ids + t * S_PER), 0);
    for (int t = 0; t < S_THREADS; t++)
        pthread_join (threads[t], NULL);
    /* Each thread's ids increase... */
    for (int t = 0; t < S_THREADS; t++) {
        for (int i = 1; i < S_PER; i++)
            assert_true (memcmp (&ids[t * S_PER + i - 1], &ids[t * S_PER + i], 16) < 0);
    }
    /* ...and no two threads ever got the same one. */
    qsort (ids, S_THREADS * S_PER, sizeof *ids, s_compare);
    for (int i = 1; i < S_THREADS * S_PER; i++)
        assert_true (memcmp (&ids[i - 1], &ids[i], 16) != 0);
    free (ids);
}

static void
test_format_parse_round_trip (void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++) {
        rt_uuid_t id = rt_uuid_v7 ();
        rt_uuid_t back;
        char text[RT_UUID_STR_LEN + 1];
        rt_uuid_format (&id, text);
        assert_int_equal (rt_uuid_parse (text, &back), 0);
        assert_memory_equal (&id, &back, sizeof id);
    }
    /* The RFC 9562 appendix A.6 example, in upper case. */
    rt_uuid_t id;
    assert_int_equal (rt_uuid_parse ("017F22E2-79B0-7CC3-98C4-DC0C0C07398F", &id), 0);
    assert_int_equal (rt_uuid_v7_time_ms (&id), 0x017F22E279B0LL);
    char text[RT_UUID_STR_LEN + 1];
    rt_uuid_format (&id, text);
    assert_string_equal (text, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}

static void
test_bad_text_is_rejected (void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",   /* short */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", /* long */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f ", /* trailing space */
        " 017f22e2-79b0-7cc3-98c4-dc0c0c07398f", /* leading space */
        "017f22e279b07cc398c4dc0c0c07398f",      /* no dashes */
        "017f22e2-79b07-cc3-98c4-dc0c0c07398f",  /* dash misplaced */
        "017f22e2_79b0_7cc3_98c4_dc0c0c07398f",  /* wrong separator */
        "017f22g2-79b0-7cc3-98c4-dc0c0c07398f",  /* not hex */
        "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}",
        "urn:uuid:017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
    };
    rt_uuid_t untouched;
    memset (&untouched, 0xAB, sizeof untouched);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rt_uuid_t id = untouched;
        if (rt_uuid_parse (bad[i], &id) != -1)
            fail_msg ("\"%s\" was accepted", bad[i]);
        assert_memory_equal (&id, &untouched, sizeof id);
    }
    rt_uuid_t id;
    assert_int_equal (rt_uuid_parse (NULL, &id), -1);
}

static void
test_time_of_other_versions_is_zero (void **state)
{
    (void)state;
    rt_uuid_t v4;
    assert_int_equal (rt_uuid_parse ("f81d4fae-7dec-41d0-a765-00a0c91e6bf6", &v4), 0);
    assert_int_equal (rt_uuid_v7_time_ms (&v4), 0);
    rt_uuid_t nil = {{0}};
    assert_int_equal (rt_uuid_v7_time_ms (&nil), 0);
}

/* A name-based v8 id is SHA-256's first 16 bytes with the version and
 * variant set (RFC 9562 B.2): the figures are Python's hashlib and uuid
 * over the same names, so a replay elsewhere names the same message. */
static void
test_v8_name_is_sha256_based_and_stable (void **state)
{
    (void)state;
    const char *name = "tracking:S-1:shipment_delivered";
    rt_uuid_t a = rt_uuid_v8_name (name, strlen (name));
    rt_uuid_t b = rt_uuid_v8_name (name, strlen (name));
    assert_memory_equal (a.b, b.b, sizeof a.b);
    char text[RT_UUID_STR_LEN + 1];
    rt_uuid_format (&a, text);
    assert_string_equal (text, "28eb235c-7c0b-891b-823d-4f78de11bbe2");
    rt_uuid_t e = rt_uuid_v8_name ("", 0);
    rt_uuid_format (&e, text);
    assert_string_equal (text, "e3b0c442-98fc-8c14-9afb-f4c8996fb924");
    rt_uuid_t other = rt_uuid_v8_name ("tracking:S-2:shipment_delivered", 31);
    assert_memory_not_equal (a.b, other.b, sizeof a.b);
    assert_int_equal (rt_uuid_v7_time_ms (&a), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_version_variant_and_time),
        cmocka_unit_test (test_ten_thousand_strictly_increasing),
        cmocka_unit_test (test_threads_get_unique_increasing_ids),
        cmocka_unit_test (test_format_parse_round_trip),
        cmocka_unit_test (test_bad_text_is_rejected),
        cmocka_unit_test (test_time_of_other_versions_is_zero),
        cmocka_unit_test (test_v8_name_is_sha256_based_and_stable),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
