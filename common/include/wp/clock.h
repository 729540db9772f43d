/* SPDX-License-Identifier: Apache-2.0 */
/* Wall and monotonic time, replaceable by tests. */
#ifndef WP_COMMON_CLOCK_H
#define WP_COMMON_CLOCK_H

#include <stdint.h>

/* Wall-clock time in milliseconds since the epoch (or the fake time when set). */
int64_t wp_clock_now_ms(void);
/* Monotonic milliseconds, for timeouts and rates. */
int64_t wp_clock_mono_ms(void);
/* Tests: make wp_clock_now_ms() return ms from now on; ms < 0 restores the real clock. */
void wp_clock_set_fake(int64_t ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil);
 * month 1-12, day 1-31, not checked. */
int64_t wp_days_from_civil(int64_t y, int m, int d);
/* Is y-m-d a real date of the proleptic Gregorian calendar (month 1-12, leap years)? */
int wp_civil_valid(int64_t y, int m, int d);

#endif
