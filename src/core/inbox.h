/* A loop's inbox: any thread posts work items, the loop's thread runs them.
 *
 * This is how results come back to an I/O thread (store completions, crypto
 * results, and later published chat messages): the producer links an item
 * into the inbox under a short mutex and wakes the loop with uv_async_send;
 * the loop then runs every queued item in posting order.
 *
 * Items are intrusive: the producer embeds an inbox_item_t in its own object,
 * so posting never allocates. The item must stay valid until run() is called;
 * run() is called exactly once, on the loop thread, and may free the item. */
#ifndef CHATD_CORE_INBOX_H
#define CHATD_CORE_INBOX_H

#include <pthread.h>
#include <uv.h>

typedef struct inbox_item_s inbox_item_t;
typedef void (*inbox_run_cb)(inbox_item_t *item);

struct inbox_item_s {
    inbox_item_t *next;
    inbox_run_cb run;
};

typedef struct {
    uv_async_t async;
    pthread_mutex_t lock;
    inbox_item_t *head;
    inbox_item_t *tail;
    int closed;
} inbox_t;

/* Returns 0, or a negative libuv error. Call on the loop's thread. */
int inbox_init(inbox_t *inbox, uv_loop_t *loop);
/* Thread-safe. Producers must be stopped before inbox_close: an item posted
 * after it is never run. */
void inbox_post(inbox_t *inbox, inbox_item_t *item);
/* Runs what is queued now (and what those items post) without waiting for
 * the wake-up. Call on the loop's thread, not from inside an item: the items
 * it runs would overtake the rest of that item's batch. */
void inbox_drain(inbox_t *inbox);
/* Runs what is still queued, then closes the async handle (on_closed may be
 * NULL). Call on the loop's thread. */
void inbox_close(inbox_t *inbox, uv_close_cb on_closed);

#endif
