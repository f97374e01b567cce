/* WebSocket connections after the upgrade: frames in, control frames,
 * closing (handshake, errors, timeouts, shutdown) and liveness. The
 * out-queue and its flush are in ws_out.c.
 *
 * Reading never stops while a connection lives: even closing, it reads to
 * see the peer's close frame or EOF, so that unread input never turns the
 * close into a reset that destroys the close frame on its way. After our
 * close frame is out, FIN follows (uv_shutdown), and the TCP connection is
 * closed when the peer answers, at EOF, or after WS_CLOSE_GRACE_MS. */
#include "core/log.h"
#include "net/ws_conn.h"

#include <stdlib.h>
#include <string.h>

static void ws_list_link(ws_conn_t *ws) {
    http_conn_t *conn = ws->conn;
    net_loop_t *nl = conn->nl;
    conn->prev = NULL;
    conn->next = nl->ws_conns;
    if (nl->ws_conns != NULL)
        nl->ws_conns->prev = conn;
    nl->ws_conns = conn;
}

static void ws_list_unlink(ws_conn_t *ws) {
    http_conn_t *conn = ws->conn;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        conn->nl->ws_conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
}

void *ws_conn_user(const ws_conn_t *ws) {
    return ws->user;
}

int ws_conn_loop_index(const ws_conn_t *ws) {
    return ws->conn->nl->index;
}

static void on_tcp_closed(uv_handle_t *handle) {
    http_conn_t *conn = handle->data;
    ws_conn_t *ws = conn->ws;
    ws_unmark_dirty(ws);
    ws->handlers->on_closed(ws);
    ws_queue_free(ws);
    ws_parser_reset(&ws->parser);
    free(ws);
    conn->ws = NULL;
    ws_metrics_open(-1);
    http_conn_destroy(conn);
}

void ws_close_tcp(ws_conn_t *ws) {
    if (ws->state == WS_CLOSED)
        return;
    ws->state = WS_CLOSED;
    ws_list_unlink(ws);
    ws->conn->reading = 0;
    uv_close((uv_handle_t *)&ws->conn->tcp, on_tcp_closed);
}

void ws_begin_close(ws_conn_t *ws, uint16_t code, const char *reason, int abandon) {
    if (ws->state != WS_OPEN)
        return;
    ws->state = WS_CLOSING;
    ws->abandon = abandon != 0;
    ws->timer_ms = uv_now(&ws->conn->nl->loop) + WS_CLOSE_GRACE_MS;
    if (abandon)
        ws_queue_drop_unsent(ws);
    uint8_t frame[2 + WS_CONTROL_MAX];
    size_t len = ws_close_frame(frame, code, reason);
    shared_buf_t *buf = shared_buf_new(len);
    if (buf == NULL) {
        ws_close_tcp(ws);
        return;
    }
    memcpy(buf->data, frame, len);
    if (ws_queue_push(ws, buf) != 0) {
        ws_close_tcp(ws);
        return;
    }
    ws->close_queued = 1;
    ws_mark_dirty(ws);
}

void ws_conn_close(ws_conn_t *ws, uint16_t code, const char *reason) {
    ws_begin_close(ws, code, reason, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    free(req);
}

void ws_close_written(ws_conn_t *ws) {
    ws->close_written = 1;
    if (ws->close_received || ws->abandon) {
        ws_close_tcp(ws);
        return;
    }
    /* FIN tells the peer that nothing follows our close frame; its answer
     * (or its EOF) ends the connection. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&ws->conn->tcp, on_shutdown) != 0) {
        free(req);
        ws_close_tcp(ws);
    }
}

static int on_parsed_text(void *ctx, char *data, size_t len) {
    ws_conn_t *ws = ctx;
    /* Closing (or shutting down), messages are read but no longer delivered. */
    if (ws->state == WS_OPEN && !ws->conn->nl->ws_drop_inbound)
        ws->handlers->on_text(ws, data, len);
    return 0;
}

static int on_parsed_control(void *ctx, int opcode, const uint8_t *data, size_t len) {
    ws_conn_t *ws = ctx;
    if (opcode == WS_OP_PING) {
        if (ws->state == WS_OPEN)
            ws_send_pong(ws, data, len);
        return 0;
    }
    if (opcode != WS_OP_CLOSE)
        return 0; /* a pong: the read itself showed the peer alive */
    ws->close_received = 1;
    if (ws->state == WS_OPEN) {
        uint16_t code = len >= 2 ? (uint16_t)((data[0] << 8) | data[1]) : WS_CLOSE_NORMAL;
        ws_begin_close(ws, code, NULL, 0);
    } else if (ws->close_written) {
        ws_close_tcp(ws);
    }
    return 1; /* nothing may follow a close frame */
}

static const ws_parser_handlers_t parser_handlers = {on_parsed_text, on_parsed_control};

static const char *close_reason(int code) {
    switch (code) {
    case WS_CLOSE_UNSUPPORTED_DATA:
        return "binary messages are not accepted";
    case WS_CLOSE_INVALID_PAYLOAD:
        return "invalid UTF-8";
    case WS_CLOSE_TOO_BIG:
        return "message too big";
    case WS_CLOSE_INTERNAL:
        return "out of memory";
    default:
        return "protocol error";
    }
}

static void ws_feed(ws_conn_t *ws, uint8_t *data, size_t len) {
    if (ws->state == WS_CLOSED || ws->parser_done)
        return;
    int rc = ws_parser_feed(&ws->parser, data, len, &parser_handlers, ws);
    if (rc == 0)
        return;
    /* A close frame or an error: the parser is not fed again. */
    ws->parser_done = 1;
    ws_parser_reset(&ws->parser);
    if (rc == -1)
        return;
    int code = rc == -2 ? WS_CLOSE_INTERNAL : rc;
    ws_begin_close(ws, (uint16_t)code, close_reason(code), 0);
}

void ws_take_pending(ws_conn_t *ws) {
    http_conn_t *conn = ws->conn;
    char *data = conn->pending;
    size_t len = conn->pending_len;
    ws->input_pending = 0;
    conn->pending = NULL;
    conn->pending_len = conn->pending_cap = 0;
    ws_feed(ws, (uint8_t *)data, len);
    free(data);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    http_conn_t *conn = handle->data;
    (void)suggested;
    *buf = uv_buf_init(conn->nl->read_buf, sizeof(conn->nl->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    http_conn_t *conn = stream->data;
    ws_conn_t *ws = conn->ws;
    if (nread == 0)
        return;
    if (nread < 0) {
        ws_close_tcp(ws);
        return;
    }
    ws->last_rx_ms = uv_now(&conn->nl->loop);
    if (ws->input_pending)
        ws_take_pending(ws);
    ws_feed(ws, (uint8_t *)buf->base, (size_t)nread);
}

static uint64_t ping_due(const net_loop_t *nl, uint64_t now_ms) {
    int interval = nl->cfg->ws_ping_interval_ms;
    return interval > 0 ? now_ms + (uint64_t)interval : UINT64_MAX;
}

ws_conn_t *ws_conn_attach(http_conn_t *conn, const ws_handlers_t *handlers, void *user,
                          shared_buf_t *response) {
    net_loop_t *nl = conn->nl;
    ws_conn_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        shared_buf_unref(response);
        return NULL;
    }
    ws->conn = conn;
    ws->handlers = handlers;
    ws->user = user;
    ws_parser_init(&ws->parser, nl->cfg->max_message_bytes);
    if (ws_queue_push(ws, response) != 0) {
        free(ws);
        return NULL;
    }
    ws->response_queued = 1;
    http_conn_detach(conn);
    conn->ws = ws;
    ws_list_link(ws);
    ws_metrics_open(1);
    uint64_t now = uv_now(&nl->loop);
    ws->last_rx_ms = now;
    ws->timer_ms = ping_due(nl, now);
    /* Bytes that came with the upgrade request are parsed at the flush, not
     * here: the application gets the connection before its first message. */
    ws->input_pending = conn->pending_len > 0;
    ws_mark_dirty(ws);
    if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0)
        ws_close_tcp(ws);
    else
        conn->reading = 1;
    return ws;
}

/* Liveness checks need not be as fine as HTTP deadlines: with many
 * connections a pass costs, so it runs a few times per ping interval. */
static uint64_t sweep_every_ms(const config_t *cfg) {
    int shortest = cfg->ws_ping_interval_ms;
    if (cfg->ws_ping_timeout_ms > 0 && (shortest <= 0 || cfg->ws_ping_timeout_ms < shortest))
        shortest = cfg->ws_ping_timeout_ms;
    int ms = shortest > 0 ? shortest / 8 : 1000;
    return (uint64_t)(ms < 10 ? 10 : ms > 1000 ? 1000 : ms);
}

void ws_sweep(net_loop_t *nl, uint64_t now_ms) {
    if (now_ms < nl->ws_next_sweep_ms && !nl->shutting_down)
        return;
    nl->ws_next_sweep_ms = now_ms + sweep_every_ms(nl->cfg);
    int timeout = nl->cfg->ws_ping_timeout_ms;
    http_conn_t *next;
    for (http_conn_t *conn = nl->ws_conns; conn != NULL; conn = next) {
        next = conn->next;
        ws_conn_t *ws = conn->ws;
        if (ws->state == WS_CLOSING) {
            if (now_ms >= ws->timer_ms)
                ws_close_tcp(ws);
            continue;
        }
        if (timeout > 0 && now_ms - ws->last_rx_ms >= (uint64_t)timeout) {
            ws_begin_close(ws, WS_CLOSE_GOING_AWAY, "ping timeout", 1);
            continue;
        }
        if (now_ms >= ws->timer_ms) {
            ws->timer_ms = ping_due(nl, now_ms);
            if (ws_queue_push(ws, shared_buf_ref(nl->ws_ping)) == 0)
                ws_mark_dirty(ws);
        }
        ws_queue_trim(ws);
    }
}

void ws_close_all(net_loop_t *nl, uint64_t now_ms, int force) {
    http_conn_t *next;
    uint64_t give_up = nl->shutdown_deadline_ms;
    if (give_up < now_ms + WS_SHUTDOWN_CLOSE_MIN_MS)
        give_up = now_ms + WS_SHUTDOWN_CLOSE_MIN_MS;
    for (http_conn_t *conn = nl->ws_conns; conn != NULL; conn = next) {
        next = conn->next;
        ws_conn_t *ws = conn->ws;
        if (force) {
            ws_close_tcp(ws);
            continue;
        }
        ws_begin_close(ws, WS_CLOSE_GOING_AWAY, "server shutting down", 0);
        if (ws->state == WS_CLOSING && ws->timer_ms > give_up)
            ws->timer_ms = give_up;
    }
}
