/* Clocks and timestamp formatting. */
#ifndef CHATD_CORE_TIMEUTIL_H
#define CHATD_CORE_TIMEUTIL_H

#include <stdint.h>

#define RFC3339_MS_LEN 25 /* "2026-11-24T10:15:30.123Z" plus NUL */

int64_t time_wall_ms(void);       /* CLOCK_REALTIME, milliseconds since the epoch */
uint64_t time_monotonic_ns(void); /* CLOCK_MONOTONIC, nanoseconds */

/* Formats ms since the epoch as RFC 3339 UTC with milliseconds. */
void time_format_rfc3339_ms(int64_t epoch_ms, char out[RFC3339_MS_LEN]);

#endif
