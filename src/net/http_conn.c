/* HTTP/1.1 connections: reading, pipelining, limits, timeouts, closing.
 *
 * One request at a time: when a request is complete the connection stops
 * reading, keeps the bytes it has not parsed (the next pipelined requests),
 * and resumes only after the response is written. A handler that answers
 * synchronously would otherwise recurse through the next request; conn_pump
 * is the one loop that walks the queued requests instead.
 *
 * The connection itself (socket, list links, deadline, unparsed bytes) is
 * apart from the parse state of the request being received (rx), so that a
 * connection handed to another protocol can drop the HTTP state. */
#include "core/log.h"
#include "net/net_internal.h"

#include <stdlib.h>
#include <string.h>

static void conn_pump(http_conn_t *conn);

static void conn_set_deadline(http_conn_t *conn, deadline_kind_t kind) {
    const config_t *cfg = conn->nl->cfg;
    uint64_t ms = 0;
    if (kind == DEADLINE_HEAD)
        ms = (uint64_t)cfg->header_timeout_ms;
    else if (kind == DEADLINE_BODY || kind == DEADLINE_IDLE)
        ms = (uint64_t)cfg->idle_timeout_ms;
    else if (kind == DEADLINE_DRAIN)
        ms = NET_DRAIN_MS;
    conn->deadline_kind = (uint8_t)kind;
    conn->deadline_ms = kind == DEADLINE_NONE ? 0 : uv_now(&conn->nl->loop) + ms;
}

static void conn_link(http_conn_t *conn) {
    net_loop_t *nl = conn->nl;
    conn->prev = NULL;
    conn->next = nl->conns;
    if (nl->conns != NULL)
        nl->conns->prev = conn;
    nl->conns = conn;
}

static void conn_unlink(http_conn_t *conn) {
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        conn->nl->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
}

static void pending_drop(http_conn_t *conn) {
    free(conn->pending);
    conn->pending = NULL;
    conn->pending_len = conn->pending_cap = 0;
}

static int pending_append(http_conn_t *conn, const char *data, size_t len) {
    if (len == 0)
        return 0;
    if (len > UINT32_MAX - conn->pending_len)
        return -1;
    size_t need = conn->pending_len + len;
    if (need > conn->pending_cap) {
        char *grown = realloc(conn->pending, need);
        if (grown == NULL)
            return -1;
        conn->pending = grown;
        conn->pending_cap = (uint32_t)need;
    }
    memcpy(conn->pending + conn->pending_len, data, len);
    conn->pending_len = (uint32_t)need;
    return 0;
}

static void pending_consume(http_conn_t *conn, size_t n) {
    if (n >= conn->pending_len) {
        pending_drop(conn);
        return;
    }
    memmove(conn->pending, conn->pending + n, conn->pending_len - n);
    conn->pending_len -= (uint32_t)n;
}

void http_conn_destroy(http_conn_t *conn) {
    net_loop_t *nl = conn->nl;
    http_rx_free(conn->rx);
    free(conn->pending);
    net_conn_release(conn);
    free(conn);
    nl->conn_count--;
    net_loop_conn_gone(nl);
}

static void on_close(uv_handle_t *handle) {
    http_conn_destroy(handle->data);
}

static void on_close_free(uv_handle_t *handle) {
    free(handle->data);
}

static void conn_close(http_conn_t *conn) {
    if (conn->state == CONN_CLOSED)
        return;
    conn->state = CONN_CLOSED;
    conn_unlink(conn);
    http_exchange_t *x = conn->current;
    /* A request still with its handler outlives the connection; one being
     * written gets its write callback (cancelled) before the close callback. */
    if (x != NULL && !x->writing) {
        x->conn = NULL;
        conn->current = NULL;
    }
    http_rx_free(conn->rx);
    conn->rx = NULL;
    pending_drop(conn);
    uv_close((uv_handle_t *)&conn->tcp, on_close);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    http_conn_t *conn = handle->data;
    (void)suggested;
    *buf = uv_buf_init(conn->nl->read_buf, sizeof(conn->nl->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_update_reading(http_conn_t *conn) {
    /* An upgraded connection reads for the WebSocket side now. */
    if (conn->state == CONN_CLOSED || conn->state == CONN_UPGRADED)
        return;
    int want = conn->state == CONN_READING || conn->state == CONN_DRAINING;
    if (want && !conn->reading) {
        if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
            conn_close(conn);
            return;
        }
        conn->reading = 1;
    } else if (!want && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    free(req);
}

/* After the last response: send FIN, then read and discard until the client
 * closes too (or NET_DRAIN_MS passes). */
static void conn_drain(http_conn_t *conn) {
    conn->state = CONN_DRAINING;
    pending_drop(conn);
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(conn);
        return;
    }
    conn_set_deadline(conn, DEADLINE_DRAIN);
    conn_update_reading(conn);
}

static const char *error_code(int status, const char **message) {
    switch (status) {
    case 408:
        *message = "request took too long to arrive";
        return "request_timeout";
    case 413:
        *message = "request body too large";
        return "payload_too_large";
    case 431:
        *message = "request headers too large";
        return "headers_too_large";
    case 500:
        *message = "internal error";
        return "internal";
    default:
        *message = "malformed request";
        return "bad_request";
    }
}

/* Answers a request the connection cannot serve (with what was parsed of it,
 * for X-Request-Id and CORS), then closes. */
static void conn_fail(http_conn_t *conn, int status) {
    http_exchange_t *x = NULL;
    if (conn->rx != NULL) {
        http_rx_end_partial(conn->rx);
        x = http_exchange_new(conn, conn->rx);
    }
    http_rx_free(conn->rx);
    conn->rx = NULL;
    pending_drop(conn);
    if (x == NULL) {
        conn_close(conn);
        return;
    }
    x->keep_alive = 0;
    conn->state = CONN_HANDLING;
    conn->current = x;
    conn_set_deadline(conn, DEADLINE_NONE);
    const char *message;
    const char *code = error_code(status, &message);
    http_respond_error(&x->req, status, code, message);
}

static void conn_dispatch(http_conn_t *conn) {
    http_exchange_t *x = http_exchange_new(conn, conn->rx);
    http_rx_free(conn->rx);
    conn->rx = NULL;
    if (x == NULL) {
        log_error0("out of memory building a request");
        conn_close(conn);
        return;
    }
    conn->state = CONN_HANDLING;
    conn->current = x;
    conn_set_deadline(conn, DEADLINE_NONE);
    http_dispatch(x);
}

static void on_continue_written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

/* The client sent "Expect: 100-continue" and waits before sending its body.
 * A later response queues behind this write, so the order holds. */
static void conn_send_continue(http_conn_t *conn) {
    static char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(line, sizeof(line) - 1);
    int n = uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);
    if (n == (int)b.len)
        return;
    if (n < 0 && n != UV_EAGAIN)
        return; /* the next read or write reports the broken connection */
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    uv_write_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_write(req, (uv_stream_t *)&conn->tcp, &b, 1, on_continue_written) != 0)
        free(req);
}

/* Parses into the request being received and moves its deadline on. */
static rx_result_t conn_feed(http_conn_t *conn, const char *data, size_t len, size_t *used) {
    *used = 0;
    if (conn->rx == NULL) {
        conn->rx = http_rx_new(conn->nl->cfg->max_body_bytes);
        if (conn->rx == NULL)
            return RX_ERROR;
    }
    http_rx_t *rx = conn->rx;
    rx_result_t r = http_rx_feed(rx, data, len, used);
    if (r == RX_MORE) {
        if (rx->expect_continue == 1) {
            rx->expect_continue = 2;
            conn_send_continue(conn);
        }
        /* The head deadline runs from the first byte of a request (from the
         * accept for a new connection); a body only has to keep moving. */
        if (rx->head_done)
            conn_set_deadline(conn, DEADLINE_BODY);
        else if (rx->started && conn->deadline_kind != DEADLINE_HEAD)
            conn_set_deadline(conn, DEADLINE_HEAD);
    }
    return r;
}

static void conn_fail_rx(http_conn_t *conn) {
    conn_fail(conn, conn->rx != NULL ? http_rx_error_status(conn->rx) : 500);
}

static void conn_pump(http_conn_t *conn) {
    conn->pumping = 1;
    while (conn->state == CONN_READING && conn->pending_len > 0) {
        size_t used;
        rx_result_t r = conn_feed(conn, conn->pending, conn->pending_len, &used);
        if (r == RX_ERROR) {
            conn_fail_rx(conn);
            break;
        }
        pending_consume(conn, used);
        if (r == RX_DONE)
            conn_dispatch(conn);
    }
    conn->pumping = 0;
    conn_update_reading(conn);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    http_conn_t *conn = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(conn);
        return;
    }
    if (conn->state == CONN_DRAINING)
        return;
    if (conn->state != CONN_READING) {
        if (pending_append(conn, buf->base, (size_t)nread) != 0)
            conn_close(conn);
        conn_update_reading(conn);
        return;
    }
    conn->pumping = 1;
    size_t used;
    rx_result_t r = conn_feed(conn, buf->base, (size_t)nread, &used);
    if (r == RX_ERROR) {
        conn_fail_rx(conn);
    } else if (r == RX_DONE) {
        if (pending_append(conn, buf->base + used, (size_t)nread - used) != 0)
            conn_close(conn);
        else
            conn_dispatch(conn);
    }
    conn_pump(conn);
}

void http_conn_response_done(http_conn_t *conn, int keep_alive, int write_status) {
    conn->current = NULL;
    if (conn->state == CONN_CLOSED)
        return;
    if (write_status < 0) {
        conn_close(conn);
        return;
    }
    if (!keep_alive || conn->nl->shutting_down) {
        conn_drain(conn);
        return;
    }
    conn->state = CONN_READING;
    conn_set_deadline(conn, conn->pending_len > 0 ? DEADLINE_HEAD : DEADLINE_IDLE);
    if (!conn->pumping)
        conn_pump(conn);
}

void http_conn_detach(http_conn_t *conn) {
    conn_unlink(conn);
    conn_set_deadline(conn, DEADLINE_NONE);
    if (conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
    conn->current = NULL;
    conn->state = CONN_UPGRADED;
}

static void conn_record_peer(http_conn_t *conn) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        conn->peer_family = AF_INET;
        memcpy(conn->peer_addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        conn->peer_family = AF_INET6;
        memcpy(conn->peer_addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    }
}

void http_conn_accept(net_loop_t *nl) {
    /* libuv stops watching a listener whose connection is not taken with
     * uv_accept: without a handle to take it, pausing (which closes the
     * listener and what it holds) is the way to accept again later. */
    http_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        log_error0("out of memory accepting a connection");
        net_loop_pause_accepting(nl);
        return;
    }
    conn->nl = nl;
    if (uv_tcp_init(&nl->loop, &conn->tcp) != 0) {
        free(conn);
        net_loop_pause_accepting(nl);
        return;
    }
    conn->tcp.data = conn;
    if (uv_accept((uv_stream_t *)&nl->listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, on_close_free);
        return;
    }
    conn_record_peer(conn);
    if (net_conn_admit(conn) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, on_close_free);
        return;
    }
    nl->conn_count++;
    conn_link(conn);
    conn->state = CONN_READING;
    conn_set_deadline(conn, DEADLINE_HEAD);
    uv_tcp_nodelay(&conn->tcp, 1);
    conn_update_reading(conn);
}

void http_conn_sweep(net_loop_t *nl, uint64_t now_ms) {
    http_conn_t *next;
    for (http_conn_t *conn = nl->conns; conn != NULL; conn = next) {
        next = conn->next;
        if (conn->deadline_kind == DEADLINE_NONE || now_ms < conn->deadline_ms)
            continue;
        int request_under_way = conn->rx != NULL && conn->rx->started;
        if ((conn->deadline_kind == DEADLINE_HEAD || conn->deadline_kind == DEADLINE_BODY) &&
            request_under_way)
            conn_fail(conn, 408);
        else
            conn_close(conn);
    }
}

void http_conn_close_idle(net_loop_t *nl, int force) {
    http_conn_t *next;
    for (http_conn_t *conn = nl->conns; conn != NULL; conn = next) {
        next = conn->next;
        int idle = conn->state == CONN_READING && (conn->rx == NULL || !conn->rx->started);
        if (force || idle)
            conn_close(conn);
    }
}
