/* WebSocket connections: what the layers above see of a socket after the
 * upgrade. All functions here run on the connection's loop thread.
 *
 * Handshake: routes with ROUTE_WEBSOCKET are checked by the dispatcher
 * before their handler runs: GET, `Upgrade: websocket`, `Connection:
 * upgrade`, `Sec-WebSocket-Version: 13` (426 otherwise), a valid
 * `Sec-WebSocket-Key` (400), and `Origin` against CORS_ORIGINS when that is a
 * list (403; no Origin passes). Authentication runs as for ROUTE_AUTH. The
 * handler then does its own checks (answering 401/403/404 like any request)
 * and calls http_upgrade_websocket. Extensions (permessage-deflate) are
 * declined by not answering them.
 *
 * Inbound: text messages (reassembled, UTF-8 checked, at most
 * MAX_MESSAGE_BYTES) go to on_text; pings are answered; binary frames close
 * with 1003, invalid UTF-8 1007, too big 1009, protocol errors 1002.
 *
 * Outbound: frames are queued by reference and each connection's queue is
 * flushed once per loop iteration with one writev. A connection whose
 * unsent backlog exceeds WS_OUTBOUND_LIMIT_BYTES is closed with 1013.
 *
 * Liveness: a ping every WS_PING_INTERVAL_MS; a peer silent for
 * WS_PING_TIMEOUT_MS is closed (1001 if it can still be written). */
#ifndef CHATD_NET_WS_H
#define CHATD_NET_WS_H

#include "core/shared_buf.h"
#include "net/http.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ws_conn_s ws_conn_t;

typedef struct {
    /* A complete text message; data is writable and valid during the call.
     * The handler may send, or close the connection, from here. */
    void (*on_text)(ws_conn_t *ws, char *data, size_t len);
    /* The connection is gone (either side closed it, an error, a timeout,
     * or shutdown). Called exactly once, from the socket's close callback,
     * never from inside a call of this header; ws is invalid once it
     * returns. Sending or closing from here does nothing (returns -1). */
    void (*on_closed)(ws_conn_t *ws);
} ws_handlers_t;

/* Answers req with 101 Switching Protocols and turns its connection into a
 * WebSocket connection that belongs to handlers (which must outlive it) and
 * user. req is invalid afterwards. Bytes the client sent right after its
 * request reach on_text only after this returns. Returns the connection, or
 * NULL when the client has gone, the server is shutting down (answered
 * 503), or memory ran out (answered 500); then nothing is called, and the
 * caller frees user. */
ws_conn_t *http_upgrade_websocket(http_request_t *req, const ws_handlers_t *handlers, void *user);

void *ws_conn_user(const ws_conn_t *ws);
/* The index of the connection's loop (0 .. THREADS-1). */
int ws_conn_loop_index(const ws_conn_t *ws);

/* Queues a reference to a complete frame (header and payload, as built by
 * ws_frame_text_buf); the caller keeps its own. Frames go out in the order
 * queued. Returns 0, or -1 when the connection is closing (nothing queued).
 * Exceeding the outbound limit closes the connection with 1013 and returns
 * -1. */
int ws_conn_send_frame(ws_conn_t *ws, shared_buf_t *frame);
/* on: the client waits for answers to requests of its own (a message it
 * posted, say), so this connection goes to the front of each flush; the
 * client can send its next request while the flush goes on. */
void ws_conn_set_flush_first(ws_conn_t *ws, int on);
/* Frames payload as one text message and queues it. Same returns. */
int ws_conn_send_text(ws_conn_t *ws, const char *payload, size_t len);
/* Sends a close frame with code and reason after what is already queued,
 * stops reading messages, and closes the TCP connection when the peer
 * answers or after a short grace time. */
void ws_conn_close(ws_conn_t *ws, uint16_t code, const char *reason);

/* A shared text frame: header and payload in one buffer, one reference. */
shared_buf_t *ws_frame_text_buf(const char *payload, size_t len);

#endif
