/* The loop's inbox: items posted from other threads run on the loop, each
 * once, in posting order; the eventfd wake-up is not lost when posts race
 * with the loop taking items; posts after close never run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/inbox.h"

#include <pthread.h>
#include <stdlib.h>

#define PRODUCERS    4
#define PER_PRODUCER 20000

typedef struct {
    inbox_item_t item;
    int producer;
    int seq;
} numbered_t;

static uv_loop_t loop;
static inbox_t inbox;
static int ran;
static int next_seq[PRODUCERS];
static uv_thread_t loop_thread;

static void on_item(inbox_item_t *item) {
    numbered_t *n = (numbered_t *)item;
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &loop_thread));
    /* Each producer's items in the order it posted them, none twice. */
    assert_int_equal(n->seq, next_seq[n->producer]);
    next_seq[n->producer]++;
    ran++;
}

static numbered_t *items;

static void on_tick(uv_timer_t *timer) {
    (void)timer;
}

static void *produce(void *arg) {
    int p = (int)(intptr_t)arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        numbered_t *n = &items[p * PER_PRODUCER + i];
        n->item.run = on_item;
        n->producer = p;
        n->seq = i;
        inbox_post(&inbox, &n->item);
    }
    return NULL;
}

static int setup(void **state) {
    (void)state;
    items = calloc(PRODUCERS * PER_PRODUCER, sizeof(*items));
    if (items == NULL || uv_loop_init(&loop) != 0 || inbox_init(&inbox, &loop) != 0)
        return -1;
    loop_thread = uv_thread_self();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(items);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static void test_posts_from_threads_all_run_in_order(void **state) {
    (void)state;
    pthread_t threads[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++)
        assert_int_equal(pthread_create(&threads[p], NULL, produce, (void *)(intptr_t)p), 0);
    /* Only wake-ups run items here. The ticking timer lets a loop whose
     * wake-up was lost come round to the deadline and fail. */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 100, 100);
    uint64_t deadline = uv_hrtime() + 30ull * 1000000000ull;
    while (ran < PRODUCERS * PER_PRODUCER && uv_hrtime() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(threads[p], NULL);
    assert_int_equal(ran, PRODUCERS * PER_PRODUCER);
}

static void test_drain_runs_without_a_wake_up(void **state) {
    (void)state;
    ran = 0;
    for (int p = 0; p < PRODUCERS; p++)
        next_seq[p] = 0;
    produce((void *)(intptr_t)0);
    inbox_drain(&inbox);
    assert_int_equal(ran, PER_PRODUCER);
    /* The wake-up those posts wrote finds nothing left: nothing runs twice. */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(ran, PER_PRODUCER);
}

static void test_posts_after_close_never_run(void **state) {
    (void)state;
    ran = 0;
    next_seq[1] = 0;
    numbered_t before = {.item.run = on_item, .producer = 1, .seq = 0};
    numbered_t after = {.item.run = on_item, .producer = 1, .seq = 1};
    inbox_post(&inbox, &before.item);
    inbox_close(&inbox, NULL); /* runs what is queued first */
    assert_int_equal(ran, 1);
    inbox_post(&inbox, &after.item);
    uv_run(&loop, UV_RUN_DEFAULT); /* the closed handle: nothing else is active */
    assert_int_equal(ran, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_from_threads_all_run_in_order),
        cmocka_unit_test(test_drain_runs_without_a_wake_up),
        cmocka_unit_test(test_posts_after_close_never_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
