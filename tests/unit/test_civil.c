/*
 * rt_civil: day numbers against the C library's own calendar (timegm and
 * gmtime_r), leap years, and weekdays.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <time.h>

#include "rt_civil.h"

/* Every day from 1600 to 2400 agrees with glibc, both ways. */
static void
test_days_agree_with_the_c_library (void **state)
{
    (void)state;
    for (int64_t days = -135140; days <= 157000; days++) {
        time_t t = (time_t)(days * 86400);
        struct tm tm;
        assert_non_null (gmtime_r (&t, &tm));
        int64_t y;
        int m, d;
        rt_civil_date (days, &y, &m, &d);
        assert_int_equal (y, tm.tm_year + 1900);
        assert_int_equal (m, tm.tm_mon + 1);
        assert_int_equal (d, tm.tm_mday);
        assert_int_equal (rt_civil_days (y, m, d), days);
        assert_int_equal (rt_civil_weekday (days), (tm.tm_wday + 6) % 7);
        assert_true (rt_civil_valid (y, m, d));
    }
}

static void
test_validity (void **state)
{
    (void)state;
    assert_true (rt_civil_valid (2024, 2, 29));
    assert_false (rt_civil_valid (2023, 2, 29));
    assert_false (rt_civil_valid (1900, 2, 29)); /* a century, not a leap year */
    assert_true (rt_civil_valid (2000, 2, 29));  /* but every 400th is */
    assert_false (rt_civil_valid (2025, 4, 31));
    assert_true (rt_civil_valid (2025, 12, 31));
    assert_false (rt_civil_valid (2025, 13, 1));
    assert_false (rt_civil_valid (2025, 0, 1));
    assert_false (rt_civil_valid (2025, 1, 0));
    assert_int_equal (rt_civil_days (1970, 1, 1), 0);
    assert_int_equal (rt_civil_days (1969, 12, 31), -1);
    assert_int_equal (rt_civil_weekday (0), 3); /* a Thursday */
    assert_int_equal (rt_civil_weekday (-4), 6);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_days_agree_with_the_c_library),
        cmocka_unit_test (test_validity),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
