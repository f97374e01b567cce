#include "core/timeutil.h"

#include <time.h>

int64_t time_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t time_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void time_format_rfc3339_ms(int64_t epoch_ms, char out[RFC3339_MS_LEN]) {
    time_t secs = (time_t)(epoch_ms / 1000);
    int millis = (int)(epoch_ms % 1000);
    if (millis < 0) {
        millis += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Formatted by hand: snprintf's truncation warning cannot see tm's ranges. */
    int fields[] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    int widths[] = {4, 2, 2, 2, 2, 2};
    const char seps[] = "--T::.";
    char *p = out;
    for (int i = 0; i < 6; i++) {
        int v = fields[i] % 10000;
        for (int w = widths[i] - 1; w >= 0; w--) {
            p[w] = (char)('0' + v % 10);
            v /= 10;
        }
        p += widths[i];
        *p++ = seps[i];
    }
    p[0] = (char)('0' + millis / 100);
    p[1] = (char)('0' + millis / 10 % 10);
    p[2] = (char)('0' + millis % 10);
    p[3] = 'Z';
    p[4] = '\0';
}
