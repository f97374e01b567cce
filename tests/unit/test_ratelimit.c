/* Token buckets: burst, refill, Retry-After, expiry of idle keys, the cap on
 * keys, and many threads on one bucket. Time is passed in, so nothing here
 * sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define MS     UINT64_C(1000000)
#define S      UINT64_C(1000000000)
#define T0     (UINT64_C(1000) * S) /* any monotonic start */
#define USER_A UINT64_C(7)
#define USER_B UINT64_C(8)

static bool take(ratelimit_t *rl, uint64_t key, uint64_t now, uint64_t *wait) {
    return ratelimit_take(rl, &key, sizeof(key), now, wait);
}

static void test_burst_then_refused(void **state) {
    (void)state;
    /* RATE_LIMIT_MESSAGES=10: 10 per second, burst 20. */
    ratelimit_t *rl = ratelimit_new(10, 1000, 20, 1024);
    assert_non_null(rl);
    for (int i = 0; i < 20; i++)
        assert_true(take(rl, USER_A, T0, NULL));
    uint64_t wait = 0;
    assert_false(take(rl, USER_A, T0, &wait));
    assert_int_equal(wait, 100 * MS);
    assert_int_equal(ratelimit_retry_after_s(wait), 1);
    /* A refusal takes nothing: the wait does not grow. */
    assert_false(take(rl, USER_A, T0 + 40 * MS, &wait));
    assert_int_equal(wait, 60 * MS);
    assert_int_equal(ratelimit_refused(rl), 2);
    /* Another key has a bucket of its own. */
    assert_true(take(rl, USER_B, T0, NULL));
    ratelimit_free(rl);
}

static void test_refill(void **state) {
    (void)state;
    ratelimit_t *rl = ratelimit_new(10, 1000, 20, 1024);
    for (int i = 0; i < 20; i++)
        assert_true(take(rl, USER_A, T0, NULL));
    /* One interval later, exactly one more token. */
    assert_false(take(rl, USER_A, T0 + 99 * MS, NULL));
    assert_true(take(rl, USER_A, T0 + 100 * MS, NULL));
    assert_false(take(rl, USER_A, T0 + 100 * MS, NULL));
    /* Half a second: five more. */
    for (int i = 0; i < 5; i++)
        assert_true(take(rl, USER_A, T0 + 600 * MS, NULL));
    assert_false(take(rl, USER_A, T0 + 600 * MS, NULL));
    /* A long pause refills to the burst, never beyond. */
    uint64_t later = T0 + 60 * S;
    for (int i = 0; i < 20; i++)
        assert_true(take(rl, USER_A, later, NULL));
    assert_false(take(rl, USER_A, later, NULL));
    /* Steady use at the rate is always allowed. */
    for (int i = 1; i <= 50; i++)
        assert_true(take(rl, USER_A, later + (uint64_t)i * 100 * MS, NULL));
    ratelimit_free(rl);
}

static void test_retry_after(void **state) {
    (void)state;
    assert_int_equal(ratelimit_retry_after_s(0), 1);
    assert_int_equal(ratelimit_retry_after_s(1), 1);
    assert_int_equal(ratelimit_retry_after_s(S), 1);
    assert_int_equal(ratelimit_retry_after_s(S + 1), 2);
    assert_int_equal(ratelimit_retry_after_s(59 * S + 1), 60);
    /* RATE_LIMIT_AUTH=30: 30 a minute, burst 30; a token every 2 s. */
    ratelimit_t *rl = ratelimit_new(30, 60000, 30, 1024);
    const uint8_t ip[4] = {192, 0, 2, 1};
    for (int i = 0; i < 30; i++)
        assert_true(ratelimit_take(rl, ip, sizeof(ip), T0, NULL));
    uint64_t wait = 0;
    assert_false(ratelimit_take(rl, ip, sizeof(ip), T0, &wait));
    assert_int_equal(wait, 2 * S);
    assert_int_equal(ratelimit_retry_after_s(wait), 2);
    assert_false(ratelimit_take(rl, ip, sizeof(ip), T0 + 500 * MS, &wait));
    assert_int_equal(ratelimit_retry_after_s(wait), 2); /* 1.5 s, rounded up */
    assert_true(ratelimit_take(rl, ip, sizeof(ip), T0 + 2 * S, NULL));
    /* Keys are bytes: another address, and the same bytes as text, differ. */
    const uint8_t other[4] = {192, 0, 2, 2};
    assert_true(ratelimit_take(rl, other, sizeof(other), T0, NULL));
    assert_true(ratelimit_take(rl, "192.0.2.1", 9, T0, NULL));
    ratelimit_free(rl);
}

static void test_idle_keys_expire(void **state) {
    (void)state;
    /* Burst 4 at 2 a second: a bucket untouched for 2 s is full again. */
    ratelimit_t *rl = ratelimit_new(2, 1000, 4, 4096);
    for (uint64_t k = 0; k < 100; k++)
        assert_true(take(rl, k, T0, NULL));
    assert_int_equal(ratelimit_key_count(rl), 100);
    /* Just before a full refill, nothing is dropped. */
    for (uint64_t k = 1000; k < 2000; k++)
        assert_true(take(rl, k, T0 + 2 * S - 1, NULL));
    assert_int_equal(ratelimit_key_count(rl), 1100);
    /* From then on the first 100 go as their shards are used; 1000 new
     * keys reach every shard. */
    for (uint64_t k = 5000; k < 6000; k++)
        assert_true(take(rl, k, T0 + 2 * S, NULL));
    assert_int_equal(ratelimit_key_count(rl), 2000);
    /* A dropped key comes back with a full bucket, as it would have had. */
    for (int i = 0; i < 4; i++)
        assert_true(take(rl, 0, T0 + 2 * S, NULL));
    assert_false(take(rl, 0, T0 + 2 * S, NULL));
    ratelimit_free(rl);
}

static void test_cap_on_keys(void **state) {
    (void)state;
    /* 160 keys at most (10 per shard). */
    ratelimit_t *rl = ratelimit_new(1, 1000, 2, 160);
    assert_true(take(rl, USER_A, T0, NULL));
    assert_true(take(rl, USER_A, T0, NULL));
    assert_false(take(rl, USER_A, T0, NULL));
    /* A flood of new keys within the refill time: the table stays at its
     * cap, and a key still being used is not the one dropped. */
    for (uint64_t k = 100; k < 10100; k++) {
        assert_true(take(rl, k, T0 + k, NULL));
        assert_false(take(rl, USER_A, T0 + k, NULL));
        assert_true(ratelimit_key_count(rl) <= 160);
    }
    assert_int_equal(ratelimit_key_count(rl), 160);
    ratelimit_free(rl);
}

static void test_bad_arguments(void **state) {
    (void)state;
    assert_null(ratelimit_new(0, 1000, 2, 16));
    assert_null(ratelimit_new(1, 0, 2, 16));
    assert_null(ratelimit_new(1, 1000, 0, 16));
    assert_null(ratelimit_new(1, 1000, 2, 0));
    ratelimit_free(NULL);
    /* A key longer than RATELIMIT_KEY_MAX counts by its first bytes. */
    ratelimit_t *rl = ratelimit_new(1, 1000, 1, 16);
    char long_a[40], long_b[40];
    memset(long_a, 'x', sizeof(long_a));
    memset(long_b, 'x', sizeof(long_b));
    long_b[39] = 'y';
    assert_true(ratelimit_take(rl, long_a, sizeof(long_a), T0, NULL));
    assert_false(ratelimit_take(rl, long_b, sizeof(long_b), T0, NULL));
    ratelimit_free(rl);
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS    4
#define PER_THREAD 5000

typedef struct {
    ratelimit_t *rl;
    int index;
    atomic_int *allowed_shared;
    int allowed_own;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        /* Time stands still: the shared key allows exactly its burst. */
        if (take(w->rl, USER_A, T0, NULL))
            atomic_fetch_add(w->allowed_shared, 1);
        /* Each thread's own keys, dropped and added again as the cap
         * makes room: never the shared key, used between any two of them. */
        uint64_t own = (uint64_t)(w->index + 1) * 1000000u + (uint64_t)(i % 300);
        if (take(w->rl, own, T0, NULL))
            w->allowed_own++;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    ratelimit_t *rl = ratelimit_new(100, 1000, 200, 512);
    atomic_int allowed_shared = 0;
    worker_t workers[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (worker_t){rl, i, &allowed_shared, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(atomic_load(&allowed_shared), 200);
    for (int i = 0; i < THREADS; i++)
        assert_true(workers[i].allowed_own > 0);
    assert_true(ratelimit_key_count(rl) <= 512);
    ratelimit_free(rl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_idle_keys_expire),
        cmocka_unit_test(test_cap_on_keys),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
