/* The order in which a loop flushes its WebSocket connections: the order
 * their frames came, except that a connection whose client waits for an
 * answer of its own (ws_conn_set_flush_first) goes before the others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/net_internal.h"
#include "net/ws.h"
#include "net/ws_conn.h"

#include <stdlib.h>
#include <string.h>

#define NCONNS 5

static net_loop_t *loop_state;
static http_conn_t conns[NCONNS];
static ws_conn_t wss[NCONNS];

static int setup(void **state) {
    (void)state;
    loop_state = calloc(1, sizeof(*loop_state));
    if (loop_state == NULL)
        return -1;
    /* Marked as flushing already: marking a connection dirty then starts
     * no libuv handle, so no loop is needed to look at the list. */
    loop_state->ws_flushing = 1;
    for (int i = 0; i < NCONNS; i++) {
        memset(&conns[i], 0, sizeof(conns[i]));
        memset(&wss[i], 0, sizeof(wss[i]));
        conns[i].nl = loop_state;
        wss[i].conn = &conns[i];
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(loop_state);
    return 0;
}

/* The dirty list as indexes into wss, -1 terminated. */
static void dirty_order(int *out) {
    int n = 0;
    for (ws_conn_t *ws = loop_state->ws_dirty; ws != NULL && n < NCONNS; ws = ws->dirty_next)
        out[n++] = (int)(ws - wss);
    out[n] = -1;
}

static void test_frames_order_then_waiting_senders_first(void **state) {
    (void)state;
    ws_conn_set_flush_first(&wss[3], 1);
    ws_mark_dirty(&wss[0]);
    ws_mark_dirty(&wss[1]);
    ws_mark_dirty(&wss[3]); /* a sender waiting for its own copy */
    ws_mark_dirty(&wss[2]);
    ws_mark_dirty(&wss[1]); /* already dirty: stays where it is */
    int order[NCONNS + 1];
    dirty_order(order);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 1);
    assert_int_equal(order[3], 2);
    assert_int_equal(order[4], -1);
    assert_ptr_equal(loop_state->ws_dirty_tail, &wss[2]);

    /* Taking one off keeps head and tail right. */
    ws_unmark_dirty(&wss[2]);
    assert_ptr_equal(loop_state->ws_dirty_tail, &wss[1]);
    ws_unmark_dirty(&wss[3]);
    dirty_order(order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], -1);
    ws_unmark_dirty(&wss[0]);
    ws_unmark_dirty(&wss[1]);
    assert_null(loop_state->ws_dirty);
    assert_null(loop_state->ws_dirty_tail);

    /* Once its answers are in, the sender is ordinary again. */
    ws_conn_set_flush_first(&wss[3], 0);
    ws_mark_dirty(&wss[4]);
    ws_mark_dirty(&wss[3]);
    dirty_order(order);
    assert_int_equal(order[0], 4);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], -1);
    ws_unmark_dirty(&wss[4]);
    ws_unmark_dirty(&wss[3]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_order_then_waiting_senders_first),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
