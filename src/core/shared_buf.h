/* An immutable, reference-counted byte buffer shared across threads: a
 * broadcast is rendered and framed once into one of these, and every
 * subscriber's out-queue holds a reference instead of a copy. The last
 * shared_buf_unref frees it, on whichever thread that happens. */
#ifndef CHATD_CORE_SHARED_BUF_H
#define CHATD_CORE_SHARED_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    _Atomic uint32_t refs;
    uint32_t len;
    uint8_t data[];
} shared_buf_t;

/* A buffer of len bytes (to be filled by the creator before it is shared),
 * with one reference. NULL when memory runs out or len > UINT32_MAX. */
shared_buf_t *shared_buf_new(size_t len);

static inline shared_buf_t *shared_buf_ref(shared_buf_t *buf) {
    atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
    return buf;
}

/* Drops one reference; NULL is ignored. */
void shared_buf_unref(shared_buf_t *buf);

#endif
