/* A loop's inbox: any thread posts work items, the loop's thread runs them.
 *
 * This is how results come back to an I/O thread (store completions, crypto
 * results, published chat messages): the producer links an item into the
 * inbox under a short mutex and, when the inbox was not already waking its
 * loop, writes to an eventfd the loop polls; the loop then runs every queued
 * item in posting order.
 *
 * Why not uv_async_t: a loop that finds an async handle in the middle of
 * uv_async_send spins until the sender finishes. Where the sender is a
 * low-priority thread preempted on the loop's own core, that spin lasts until
 * the kernel runs the sender again. Here the loop never waits for a
 * producer: it takes what is linked and goes on.
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
    uv_poll_t poll;
    int wake_fd; /* eventfd, owned */
    pthread_mutex_t lock;
    inbox_item_t *head;
    inbox_item_t *tail;
    int wake_owed; /* a post since the last take wrote (or will write) wake_fd */
    int closed;
} inbox_t;

/* Returns 0, or a negative libuv error. Call on the loop's thread. */
int inbox_init(inbox_t *inbox, uv_loop_t *loop);
/* Thread-safe. An item posted after inbox_close is never run; the inbox's
 * memory must outlive every producer that may still post. */
void inbox_post(inbox_t *inbox, inbox_item_t *item);
/* Runs what is queued now (and what those items post) without waiting for
 * the wake-up. Call on the loop's thread, not from inside an item: the items
 * it runs would overtake the rest of that item's batch. */
void inbox_drain(inbox_t *inbox);
/* Runs what is still queued, then closes the poll handle (on_closed may be
 * NULL) and the eventfd. Call on the loop's thread. */
void inbox_close(inbox_t *inbox, uv_close_cb on_closed);

#endif
