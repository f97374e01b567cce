/* The hub: rooms, fan-out through a loop's inbox, exclusion, presence and
 * the typing interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/hub.h"

#include <string.h>
#include <uv.h>

typedef struct {
    hub_sub_t sub;
    int64_t seen[16];
    int seen_count;
} test_sub_t;

static void record(hub_sub_t *sub, hub_event_t *event) {
    test_sub_t *t = (test_sub_t *)sub;
    t->seen[t->seen_count++] = event->message_id;
}

static void init_sub(test_sub_t *t, int64_t room, int64_t user) {
    memset(t, 0, sizeof(*t));
    t->sub.room_id = room;
    t->sub.user_id = user;
    t->sub.shard = 0;
    t->sub.deliver = record;
}

static hub_event_t *event(int64_t room, int64_t id, int64_t exclude) {
    shared_buf_t *frame = shared_buf_new(1);
    frame->data[0] = 'x';
    return hub_event_new(room, id, exclude, frame);
}

static void run_inbox(uv_loop_t *loop) {
    /* The inbox's async handle fires on the next loop turn. */
    for (int i = 0; i < 10; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

static void test_fan_out_by_room_in_order(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    inbox_t inbox;
    assert_int_equal(inbox_init(&inbox, &loop), 0);
    hub_t *hub = hub_new(2);
    test_sub_t a, b, c;
    init_sub(&a, 1, 10);
    init_sub(&b, 1, 11);
    init_sub(&c, 2, 10);
    assert_int_equal(hub_subscribe(hub, &inbox, &a.sub), 0);
    assert_int_equal(hub_subscribe(hub, &inbox, &b.sub), 0);
    assert_int_equal(hub_subscribe(hub, &inbox, &c.sub), 0);
    for (int64_t id = 1; id <= 5; id++)
        hub_publish(hub, event(1, id, 0));
    hub_publish(hub, event(2, 6, 0));
    hub_publish(hub, event(1, 7, 11)); /* not to user 11 */
    run_inbox(&loop);
    assert_int_equal(a.seen_count, 6);
    for (int i = 0; i < 5; i++)
        assert_int_equal(a.seen[i], i + 1);
    assert_int_equal(a.seen[5], 7);
    assert_int_equal(b.seen_count, 5);
    assert_int_equal(c.seen_count, 1);
    assert_int_equal(c.seen[0], 6);

    hub_unsubscribe(hub, &a.sub);
    hub_publish(hub, event(1, 8, 0));
    run_inbox(&loop);
    assert_int_equal(a.seen_count, 6);
    assert_int_equal(b.seen_count, 6);
    hub_unsubscribe(hub, &b.sub);
    hub_unsubscribe(hub, &c.sub);
    /* No subscribers left: publishing posts nothing (and leaks nothing). */
    hub_publish(hub, event(1, 9, 0));
    run_inbox(&loop);
    inbox_close(&inbox, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    hub_free(hub);
}

static void test_many_rooms_grow_the_table(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    inbox_t inbox;
    assert_int_equal(inbox_init(&inbox, &loop), 0);
    hub_t *hub = hub_new(1);
    enum { ROOMS = 500 };
    static test_sub_t subs[ROOMS];
    for (int i = 0; i < ROOMS; i++) {
        init_sub(&subs[i], i + 1, 1);
        assert_int_equal(hub_subscribe(hub, &inbox, &subs[i].sub), 0);
    }
    for (int i = 0; i < ROOMS; i++)
        hub_publish(hub, event(i + 1, 1000 + i, 0));
    run_inbox(&loop);
    for (int i = 0; i < ROOMS; i++) {
        assert_int_equal(subs[i].seen_count, 1);
        assert_int_equal(subs[i].seen[0], 1000 + i);
        hub_unsubscribe(hub, &subs[i].sub);
    }
    inbox_close(&inbox, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    hub_free(hub);
}

static void test_presence_and_typing(void **state) {
    (void)state;
    hub_t *hub = hub_new(1);
    assert_true(hub_presence_join(hub, 1, 7));
    assert_false(hub_presence_join(hub, 1, 7)); /* second device */
    assert_true(hub_presence_join(hub, 2, 7));  /* another room */
    assert_true(hub_is_online(hub, 1, 7));
    assert_false(hub_is_online(hub, 1, 8));
    assert_true(hub_typing_allowed(hub, 1, 7, 10000, 2000));
    assert_false(hub_typing_allowed(hub, 1, 7, 11999, 2000));
    assert_true(hub_typing_allowed(hub, 1, 7, 12000, 2000));
    assert_false(hub_typing_allowed(hub, 1, 8, 12000, 2000)); /* not connected */
    assert_false(hub_presence_leave(hub, 1, 7));
    assert_true(hub_is_online(hub, 1, 7));
    assert_true(hub_presence_leave(hub, 1, 7));
    assert_false(hub_is_online(hub, 1, 7));
    assert_true(hub_is_online(hub, 2, 7));
    for (int64_t user = 1; user <= 1000; user++)
        assert_true(hub_presence_join(hub, 3, user));
    for (int64_t user = 1; user <= 1000; user++)
        assert_true(hub_is_online(hub, 3, user));
    hub_free(hub); /* frees what is still present */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fan_out_by_room_in_order),
        cmocka_unit_test(test_many_rooms_grow_the_table),
        cmocka_unit_test(test_presence_and_typing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
