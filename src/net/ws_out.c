/* The out-queue of a WebSocket connection and its flush.
 *
 * A queue holds references to complete frames (shared buffers, often one
 * broadcast frame shared by every subscriber) plus how much of the oldest
 * one is already written. Queuing marks the connection dirty; once per loop
 * iteration every dirty connection is flushed with one writev of everything
 * it holds (uv_try_write). Only when the kernel takes less than that does a
 * uv_write_t get allocated, for the rest; the queue waits for its callback.
 *
 * Two handles run the flush: the check handle after polling, for what I/O
 * callbacks queued, and the prepare handle before polling, for what close
 * callbacks (on_closed) queued after the check had run. Both are started only
 * while something is dirty. */
#include "core/log.h"
#include "net/ws_conn.h"

#include <stdlib.h>
#include <string.h>

#define QUEUE_MIN_CAP 8
#define QUEUE_MAX_CAP (1u << 30)

static shared_buf_t *queue_at(const ws_conn_t *ws, uint32_t i) {
    return ws->queue[(ws->queue_head + i) & (ws->queue_cap - 1)];
}

/* Doubles the ring (a power of two), unwrapping it. */
static int queue_grow(ws_conn_t *ws) {
    uint32_t cap = ws->queue_cap != 0 ? ws->queue_cap * 2 : QUEUE_MIN_CAP;
    if (cap > QUEUE_MAX_CAP)
        return -1;
    shared_buf_t **grown = malloc((size_t)cap * sizeof(*grown));
    if (grown == NULL)
        return -1;
    for (uint32_t i = 0; i < ws->queue_count; i++)
        grown[i] = queue_at(ws, i);
    free(ws->queue);
    ws->queue = grown;
    ws->queue_cap = cap;
    ws->queue_head = 0;
    return 0;
}

int ws_queue_push(ws_conn_t *ws, shared_buf_t *frame) {
    if (ws->queue_count == ws->queue_cap && queue_grow(ws) != 0) {
        shared_buf_unref(frame);
        return -1;
    }
    ws->queue[(ws->queue_head + ws->queue_count) & (ws->queue_cap - 1)] = frame;
    ws->queue_count++;
    ws->out_queue_bytes += frame->len;
    return 0;
}

static void queue_pop(ws_conn_t *ws) {
    shared_buf_unref(ws->queue[ws->queue_head]);
    ws->queue_head = (ws->queue_head + 1) & (ws->queue_cap - 1);
    ws->queue_count--;
}

void ws_queue_drop_unsent(ws_conn_t *ws) {
    /* What libuv is writing, or a frame cut in the middle, must go out
     * whole, or the stream is broken. */
    uint32_t keep = ws->write_req != NULL ? ws->inflight : ws->head_offset > 0 ? 1 : 0;
    while (ws->queue_count > keep) {
        uint32_t last = (ws->queue_head + ws->queue_count - 1) & (ws->queue_cap - 1);
        ws->out_queue_bytes -= ws->queue[last]->len;
        shared_buf_unref(ws->queue[last]);
        ws->queue_count--;
    }
}

void ws_queue_free(ws_conn_t *ws) {
    while (ws->queue_count > 0)
        queue_pop(ws);
    free(ws->queue);
    ws->queue = NULL;
    ws->queue_cap = ws->queue_head = ws->head_offset = 0;
    ws->out_queue_bytes = 0;
}

void ws_queue_trim(ws_conn_t *ws) {
    if (ws->queue_count > 0 || ws->queue == NULL || ws->write_req != NULL)
        return;
    free(ws->queue);
    ws->queue = NULL;
    ws->queue_cap = ws->queue_head = 0;
}

/* The kernel took n bytes from the front of the queue. */
static void queue_consume(ws_conn_t *ws, size_t n) {
    uint64_t frames = 0;
    ws->out_queue_bytes -= n;
    while (n > 0) {
        size_t left = queue_at(ws, 0)->len - ws->head_offset;
        if (n < left) {
            ws->head_offset += (uint32_t)n;
            break;
        }
        n -= left;
        ws->head_offset = 0;
        queue_pop(ws);
        if (ws->response_queued)
            ws->response_queued = 0; /* the 101 answer is no frame */
        else
            frames++;
    }
    if (frames > 0)
        ws_metrics_frames_sent(frames);
}

/* Points the loop's iovec at the queued bytes; returns how many buffers. */
static unsigned fill_iov(ws_conn_t *ws, size_t *total) {
    uv_buf_t *iov = ws->conn->nl->ws_iov;
    unsigned n = ws->queue_count < NET_IOV_MAX ? ws->queue_count : NET_IOV_MAX;
    size_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        shared_buf_t *frame = queue_at(ws, i);
        uint32_t skip = i == 0 ? ws->head_offset : 0;
        iov[i] = uv_buf_init((char *)frame->data + skip, frame->len - skip);
        sum += frame->len - skip;
    }
    *total = sum;
    return n;
}

static void on_write(uv_write_t *req, int status) {
    ws_conn_t *ws = req->data;
    uint32_t frames = ws->inflight;
    free(req);
    ws->write_req = NULL;
    ws->inflight = 0;
    /* Cancelled writes come back before the close callback frees ws. */
    if (ws->state == WS_CLOSED)
        return;
    if (status < 0) {
        ws_close_tcp(ws);
        return;
    }
    size_t written = 0;
    for (uint32_t i = 0; i < frames; i++)
        written += queue_at(ws, i)->len - (i == 0 ? ws->head_offset : 0);
    queue_consume(ws, written);
    if (ws->queue_count > 0)
        ws_mark_dirty(ws);
    else if (ws->close_queued && !ws->close_written)
        ws_close_written(ws);
}

/* The socket is full: libuv writes the rest when it can. */
static void write_rest(ws_conn_t *ws) {
    size_t total;
    unsigned n = fill_iov(ws, &total);
    uv_write_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        ws_close_tcp(ws);
        return;
    }
    req->data = ws;
    if (uv_write(req, (uv_stream_t *)&ws->conn->tcp, ws->conn->nl->ws_iov, n, on_write) != 0) {
        free(req);
        ws_close_tcp(ws);
        return;
    }
    ws->write_req = req;
    ws->inflight = n;
}

static void flush_one(ws_conn_t *ws) {
    if (ws->state != WS_CLOSED && ws->input_pending)
        ws_take_pending(ws);
    if (ws->state == WS_CLOSED || ws->write_req != NULL)
        return;
    while (ws->queue_count > 0) {
        size_t total;
        unsigned n = fill_iov(ws, &total);
        int written = uv_try_write((uv_stream_t *)&ws->conn->tcp, ws->conn->nl->ws_iov, n);
        if (written == UV_EAGAIN)
            written = 0;
        if (written < 0) {
            ws_close_tcp(ws);
            return;
        }
        queue_consume(ws, (size_t)written);
        if ((size_t)written < total) {
            write_rest(ws);
            return;
        }
    }
    if (ws->close_queued && !ws->close_written)
        ws_close_written(ws);
}

static void flush_stop(net_loop_t *nl) {
    if (!nl->ws_flushing)
        return;
    nl->ws_flushing = 0;
    uv_prepare_stop(&nl->ws_prepare);
    uv_check_stop(&nl->ws_check);
}

/* Flushing may dirty more connections (bytes read before an upgrade are
 * parsed here, and their handlers send): take the list until it stays empty. */
static void flush_all(net_loop_t *nl) {
    while (nl->ws_dirty != NULL) {
        ws_conn_t *list = nl->ws_dirty;
        nl->ws_dirty = nl->ws_dirty_tail = NULL;
        while (list != NULL) {
            ws_conn_t *ws = list;
            list = ws->dirty_next;
            ws->dirty_next = NULL;
            ws->dirty = 0;
            flush_one(ws);
        }
    }
    flush_stop(nl);
}

static void on_prepare(uv_prepare_t *handle) {
    flush_all(handle->data);
}

static void on_check(uv_check_t *handle) {
    flush_all(handle->data);
}

void ws_mark_dirty(ws_conn_t *ws) {
    if (ws->dirty)
        return;
    net_loop_t *nl = ws->conn->nl;
    ws->dirty = 1;
    /* Connections are flushed in the order their frames came, except those
     * whose client waits for its own answers (a sender, for its own copy of
     * the message): they go first, so an acknowledgement does not wait for
     * a whole room's fan-out, and the sender's next message can arrive
     * while that fan-out is written. */
    if (ws->flush_first || nl->ws_dirty == NULL) {
        ws->dirty_next = nl->ws_dirty;
        nl->ws_dirty = ws;
        if (nl->ws_dirty_tail == NULL)
            nl->ws_dirty_tail = ws;
    } else {
        ws->dirty_next = NULL;
        nl->ws_dirty_tail->dirty_next = ws;
        nl->ws_dirty_tail = ws;
    }
    if (!nl->ws_flushing) {
        nl->ws_flushing = 1;
        uv_prepare_start(&nl->ws_prepare, on_prepare);
        uv_check_start(&nl->ws_check, on_check);
    }
}

void ws_unmark_dirty(ws_conn_t *ws) {
    if (!ws->dirty)
        return;
    net_loop_t *nl = ws->conn->nl;
    ws_conn_t *before = NULL;
    ws_conn_t **link = &nl->ws_dirty;
    while (*link != NULL && *link != ws) {
        before = *link;
        link = &(*link)->dirty_next;
    }
    if (*link == ws) {
        *link = ws->dirty_next;
        if (nl->ws_dirty_tail == ws)
            nl->ws_dirty_tail = before;
    }
    ws->dirty = 0;
    ws->dirty_next = NULL;
}

void ws_conn_set_flush_first(ws_conn_t *ws, int on) {
    ws->flush_first = on != 0;
}

shared_buf_t *ws_control_frame(int opcode, const uint8_t *payload, size_t len) {
    if (len > WS_CONTROL_MAX)
        return NULL;
    shared_buf_t *frame = shared_buf_new(2 + len);
    if (frame == NULL)
        return NULL;
    frame->data[0] = (uint8_t)(0x80 | opcode);
    frame->data[1] = (uint8_t)len;
    if (len > 0)
        memcpy(frame->data + 2, payload, len);
    return frame;
}

int ws_out_init(net_loop_t *nl) {
    nl->ws_ping = ws_control_frame(WS_OP_PING, NULL, 0);
    if (nl->ws_ping == NULL)
        return -1;
    uv_prepare_init(&nl->loop, &nl->ws_prepare);
    uv_check_init(&nl->loop, &nl->ws_check);
    nl->ws_prepare.data = nl->ws_check.data = nl;
    nl->ws_flush_open = 1;
    return 0;
}

void ws_out_close(net_loop_t *nl) {
    if (!nl->ws_flush_open)
        return;
    nl->ws_flush_open = 0;
    uv_close((uv_handle_t *)&nl->ws_prepare, NULL);
    uv_close((uv_handle_t *)&nl->ws_check, NULL);
}

/* Queues a frame the application sends; over the outbound limit the
 * connection is closed as a slow consumer instead. */
static int send_limited(ws_conn_t *ws, shared_buf_t *frame) {
    size_t limit = ws->conn->nl->cfg->ws_outbound_limit_bytes;
    if (limit > 0 && ws->out_queue_bytes + frame->len > limit) {
        ws_metrics_slow_consumer();
        log_warn("closing a slow WebSocket consumer", LOG_I("backlog_bytes", ws->out_queue_bytes),
                 LOG_I("limit_bytes", limit), LOG_I("loop", ws->conn->nl->index));
        ws_begin_close(ws, WS_CLOSE_TRY_AGAIN, "slow consumer", 1);
        return -1;
    }
    if (ws_queue_push(ws, shared_buf_ref(frame)) != 0) {
        ws_begin_close(ws, WS_CLOSE_INTERNAL, "out of memory", 1);
        return -1;
    }
    ws_mark_dirty(ws);
    return 0;
}

int ws_conn_send_frame(ws_conn_t *ws, shared_buf_t *frame) {
    if (ws->state != WS_OPEN)
        return -1;
    return send_limited(ws, frame);
}

/* A pong counts against the outbound limit too: a client that sends pings
 * and reads nothing must not grow its queue without bound. */
int ws_send_pong(ws_conn_t *ws, const uint8_t *payload, size_t len) {
    shared_buf_t *pong = ws_control_frame(WS_OP_PONG, payload, len);
    if (pong == NULL) {
        ws_begin_close(ws, WS_CLOSE_INTERNAL, "out of memory", 1);
        return -1;
    }
    int rc = send_limited(ws, pong);
    shared_buf_unref(pong);
    return rc;
}

shared_buf_t *ws_frame_text_buf(const char *payload, size_t len) {
    uint8_t header[WS_FRAME_HEADER_MAX];
    size_t header_len = ws_frame_header(header, WS_OP_TEXT, len);
    if (len > UINT32_MAX - header_len)
        return NULL;
    shared_buf_t *frame = shared_buf_new(header_len + len);
    if (frame == NULL)
        return NULL;
    memcpy(frame->data, header, header_len);
    if (len > 0)
        memcpy(frame->data + header_len, payload, len);
    return frame;
}

int ws_conn_send_text(ws_conn_t *ws, const char *payload, size_t len) {
    if (ws->state != WS_OPEN)
        return -1;
    shared_buf_t *frame = ws_frame_text_buf(payload, len);
    if (frame == NULL) {
        ws_begin_close(ws, WS_CLOSE_INTERNAL, "out of memory", 1);
        return -1;
    }
    int rc = send_limited(ws, frame);
    shared_buf_unref(frame);
    return rc;
}
