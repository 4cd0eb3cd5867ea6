/*
 * rt_civil: calendar dates as day numbers, the arithmetic every module
 * that reads or writes a date shares (time zones, e-mail dates, purchase
 * histories).
 *
 * A day number counts days since 1970-01-01 in the proleptic Gregorian
 * calendar (negative before it), with no time zone: it names a calendar
 * date, not a moment. The formulas are H. Hinnant's days_from_civil and
 * civil_from_days ("chrono-Compatible Low-Level Date Algorithms"), exact
 * for every year an int64 day number can hold.
 */
#ifndef RT_CIVIL_H
#define RT_CIVIL_H

#include <stdbool.h>
#include <stdint.h>

/* The day number of y-m-d (month 1-12, day 1-31). A day past its month's
 * end rolls over (2025-02-30 is 2025-03-02): check rt_civil_valid first
 * where input is untrusted. */
int64_t rt_civil_days (int64_t y, int m, int d);

/* The date of a day number. */
void rt_civil_date (int64_t days, int64_t *y, int *m, int *d);

/* True when y-m-d is a date of the calendar (month 1-12, day within its
 * month, 29 February only in leap years). */
bool rt_civil_valid (int64_t y, int m, int d);

/* 0 Monday to 6 Sunday. */
int rt_civil_weekday (int64_t days);

#endif
