/* Token buckets by key, shared by every thread: RATE_LIMIT_MESSAGES per
 * sender, RATE_LIMIT_AUTH per client address.
 *
 * Each key has a bucket of `burst` tokens that refills at `rate` tokens per
 * `period_ms`; a request takes a token or is refused, and told how long until
 * the next one. A bucket is kept as one time (GCRA's "theoretical arrival
 * time"), so a full bucket and no bucket are the same thing.
 *
 * Memory is bounded: at most max_keys buckets (rounded up to a multiple of
 * the shard count), each a fixed-size entry. A bucket untouched for as long as
 * a full refill takes is full again and is dropped, on the next take in its
 * shard. When a shard is full of buckets all used within that time, the least
 * recently used one is dropped to make room: that key starts again with a
 * full bucket. Thread-safe: keys are spread over shards, each with a lock. */
#ifndef CHATD_CORE_RATELIMIT_H
#define CHATD_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys are short byte strings: a user id, an IPv4 or IPv6 address. */
#define RATELIMIT_KEY_MAX 16

typedef struct ratelimit_s ratelimit_t;

/* Returns a table, or NULL when out of memory or when rate, period_ms, burst
 * or max_keys is 0. Free it with ratelimit_free. */
ratelimit_t *ratelimit_new(uint32_t rate, uint64_t period_ms, uint32_t burst, size_t max_keys);
void ratelimit_free(ratelimit_t *rl);

/* Takes a token from key's bucket at now_ns (CLOCK_MONOTONIC nanoseconds,
 * time_monotonic_ns()). Returns true when allowed. Returns false when the
 * bucket is empty, with *retry_after_ns (when not NULL) set to the wait
 * until a token is there; a refusal takes nothing. Only the first
 * RATELIMIT_KEY_MAX bytes of key count. Out of memory, a new key is allowed
 * without being counted. */
bool ratelimit_take(ratelimit_t *rl, const void *key, size_t key_len, uint64_t now_ns,
                    uint64_t *retry_after_ns);

/* The Retry-After value for a wait: whole seconds, rounded up, at least 1. */
int64_t ratelimit_retry_after_s(uint64_t retry_after_ns);

/* Buckets held now (for tests and metrics). */
size_t ratelimit_key_count(ratelimit_t *rl);
/* Refusals since the table was made. */
uint64_t ratelimit_refused(ratelimit_t *rl);

#endif
