#include "core/shared_buf.h"

#include <stdlib.h>

shared_buf_t *shared_buf_new(size_t len) {
    if (len > UINT32_MAX)
        return NULL;
    shared_buf_t *buf = malloc(sizeof(*buf) + len);
    if (buf == NULL)
        return NULL;
    atomic_init(&buf->refs, 1);
    buf->len = (uint32_t)len;
    return buf;
}

void shared_buf_unref(shared_buf_t *buf) {
    if (buf != NULL && atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) == 1)
        free(buf);
}
