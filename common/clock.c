/* SPDX-License-Identifier: Apache-2.0 */
/* Clock source; tests set a fake wall time so durations are tested without sleeping. */
#include "wp/clock.h"

#include <time.h>

static int64_t fake_ms = -1;

int64_t wp_clock_now_ms(void)
{
    struct timespec ts;

    if (fake_ms >= 0) {
        return fake_ms;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wp_clock_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wp_clock_set_fake(int64_t ms)
{
    fake_ms = ms;
}
