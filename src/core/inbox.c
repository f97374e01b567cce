#include "core/inbox.h"

#include <stddef.h>

static inbox_item_t *inbox_take_all(inbox_t *inbox) {
    pthread_mutex_lock(&inbox->lock);
    inbox_item_t *items = inbox->head;
    inbox->head = inbox->tail = NULL;
    pthread_mutex_unlock(&inbox->lock);
    return items;
}

static void inbox_run_all(inbox_t *inbox) {
    inbox_item_t *item;
    /* Items may post more items to the same inbox; loop until it is empty so
     * nothing waits for another wake-up. */
    while ((item = inbox_take_all(inbox)) != NULL) {
        while (item != NULL) {
            inbox_item_t *next = item->next;
            item->run(item);
            item = next;
        }
    }
}

void inbox_drain(inbox_t *inbox) {
    inbox_run_all(inbox);
}

static void inbox_on_async(uv_async_t *async) {
    inbox_run_all((inbox_t *)async->data);
}

int inbox_init(inbox_t *inbox, uv_loop_t *loop) {
    inbox->head = inbox->tail = NULL;
    inbox->closed = 0;
    if (pthread_mutex_init(&inbox->lock, NULL) != 0)
        return UV_ENOMEM;
    int rc = uv_async_init(loop, &inbox->async, inbox_on_async);
    if (rc != 0) {
        pthread_mutex_destroy(&inbox->lock);
        return rc;
    }
    inbox->async.data = inbox;
    return 0;
}

void inbox_post(inbox_t *inbox, inbox_item_t *item) {
    item->next = NULL;
    pthread_mutex_lock(&inbox->lock);
    int closed = inbox->closed;
    if (!closed) {
        if (inbox->tail != NULL)
            inbox->tail->next = item;
        else
            inbox->head = item;
        inbox->tail = item;
    }
    pthread_mutex_unlock(&inbox->lock);
    if (!closed)
        uv_async_send(&inbox->async);
}

void inbox_close(inbox_t *inbox, uv_close_cb on_closed) {
    inbox_run_all(inbox);
    pthread_mutex_lock(&inbox->lock);
    inbox->closed = 1;
    pthread_mutex_unlock(&inbox->lock);
    uv_close((uv_handle_t *)&inbox->async, on_closed);
}
