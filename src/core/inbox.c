#include "core/inbox.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static inbox_item_t *inbox_take_all(inbox_t *inbox) {
    pthread_mutex_lock(&inbox->lock);
    inbox_item_t *items = inbox->head;
    inbox->head = inbox->tail = NULL;
    /* The next post wakes the loop again. */
    inbox->wake_owed = 0;
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

static void inbox_on_wake(uv_poll_t *poll, int status, int events) {
    inbox_t *inbox = poll->data;
    (void)status;
    (void)events;
    /* Read before taking: a post after the take writes again, so it is not
     * lost; a write this read swallows belongs to an item the take gets. */
    uint64_t count;
    ssize_t n;
    do {
        n = read(inbox->wake_fd, &count, sizeof(count));
    } while (n < 0 && errno == EINTR);
    inbox_run_all(inbox);
}

int inbox_init(inbox_t *inbox, uv_loop_t *loop) {
    inbox->head = inbox->tail = NULL;
    inbox->wake_owed = 0;
    inbox->closed = 0;
    inbox->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (inbox->wake_fd < 0)
        return uv_translate_sys_error(errno);
    int rc = UV_ENOMEM;
    if (pthread_mutex_init(&inbox->lock, NULL) != 0)
        goto fail_fd;
    rc = uv_poll_init(loop, &inbox->poll, inbox->wake_fd);
    if (rc != 0)
        goto fail_lock;
    inbox->poll.data = inbox;
    rc = uv_poll_start(&inbox->poll, UV_READABLE, inbox_on_wake);
    if (rc != 0) {
        /* The handle is initialised: it must be closed, and then the fd. */
        uv_close((uv_handle_t *)&inbox->poll, NULL);
        goto fail_lock;
    }
    return 0;
fail_lock:
    pthread_mutex_destroy(&inbox->lock);
fail_fd:
    close(inbox->wake_fd);
    inbox->wake_fd = -1;
    return rc;
}

void inbox_post(inbox_t *inbox, inbox_item_t *item) {
    item->next = NULL;
    pthread_mutex_lock(&inbox->lock);
    if (!inbox->closed) {
        if (inbox->tail != NULL)
            inbox->tail->next = item;
        else
            inbox->head = item;
        inbox->tail = item;
        /* Under the lock, so the fd cannot be closed meanwhile. An eventfd
         * write does not block (the counter cannot come near its limit). */
        if (!inbox->wake_owed) {
            inbox->wake_owed = 1;
            uint64_t one = 1;
            ssize_t n;
            do {
                n = write(inbox->wake_fd, &one, sizeof(one));
            } while (n < 0 && errno == EINTR);
        }
    }
    pthread_mutex_unlock(&inbox->lock);
}

void inbox_close(inbox_t *inbox, uv_close_cb on_closed) {
    inbox_run_all(inbox);
    pthread_mutex_lock(&inbox->lock);
    inbox->closed = 1;
    pthread_mutex_unlock(&inbox->lock);
    /* uv_close takes the fd out of the loop's poll set at once, so it can
     * be closed now; the handle itself is done at on_closed. */
    uv_close((uv_handle_t *)&inbox->poll, on_closed);
    close(inbox->wake_fd);
    inbox->wake_fd = -1;
}
