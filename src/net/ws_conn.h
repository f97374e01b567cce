/* What the WebSocket files of src/net share: the state of an upgraded
 * connection and the steps of its life. ws.h is what the rest of chatd sees.
 *
 * Life of a connection: OPEN (messages flow both ways) -> CLOSING (a close
 * frame is queued: nothing more is sent or delivered; reading goes on only
 * to see the peer's close) -> CLOSED (uv_close called). The handle's close
 * callback calls on_closed and frees everything; it is the only place that
 * calls on_closed, so no call of ws.h ever re-enters the application. */
#ifndef CHATD_NET_WS_CONN_H
#define CHATD_NET_WS_CONN_H

#include "net/net_internal.h"
#include "net/ws.h"
#include "net/ws_frame.h"

#include <stddef.h>
#include <stdint.h>

/* How long a closing connection waits for its close frame to go out and for
 * the peer's answer before the TCP connection is closed anyway. */
#define WS_CLOSE_GRACE_MS 2000
/* During shutdown, the least time the 1001 frames get even when waiting for
 * shutdown_ready used up SHUTDOWN_TIMEOUT_MS. */
#define WS_SHUTDOWN_CLOSE_MIN_MS 1000

typedef enum { WS_OPEN, WS_CLOSING, WS_CLOSED } ws_state_t;

struct ws_conn_s {
    http_conn_t *conn;
    const ws_handlers_t *handlers;
    void *user;
    ws_conn_t *dirty_next;
    /* Out-queue: a ring of frame references, oldest first, allocated while
     * frames come and freed by the sweep once the connection is idle. */
    shared_buf_t **queue;
    uv_write_t *write_req;  /* only while a write waits for the socket */
    size_t out_queue_bytes; /* queued bytes not yet taken by the kernel */
    uint64_t last_rx_ms;    /* uv_now() of the last byte received */
    uint64_t timer_ms;      /* open: when the next ping is due; closing: when to give up */
    uint32_t queue_head;
    uint32_t queue_count;
    uint32_t queue_cap;
    uint32_t head_offset;         /* bytes of the oldest frame already written */
    uint32_t inflight;            /* frames that write_req covers, from the oldest */
    uint8_t state;                /* ws_state_t */
    unsigned dirty : 1;           /* on the loop's dirty list */
    unsigned flush_first : 1;     /* waits for answers to its own requests: flushed first */
    unsigned input_pending : 1;   /* conn->pending still holds bytes read before the upgrade */
    unsigned response_queued : 1; /* the oldest queued buffer is the 101 answer */
    unsigned abandon : 1;         /* close TCP once the close frame is out: no answer awaited */
    unsigned close_queued : 1;    /* our close frame is the last frame queued */
    unsigned close_written : 1;   /* ... and the kernel has it */
    unsigned close_received : 1;  /* the peer's close frame arrived */
    unsigned parser_done : 1;     /* the parser stopped (error or close): input is discarded */
    ws_parser_t parser;
};

/* ws_conn.c */
/* Turns conn (detached from HTTP) into a WebSocket connection whose first
 * frame out is response (the 101; the reference is taken). Returns NULL when
 * memory runs out (nothing changed, response released). */
ws_conn_t *ws_conn_attach(http_conn_t *conn, const ws_handlers_t *handlers, void *user,
                          shared_buf_t *response);
/* Queues a close frame after what is queued and starts the close; does
 * nothing unless open. abandon: the peer is not expected to read or answer
 * (timeout, slow consumer): frames not yet started are dropped, and TCP is
 * closed as soon as the close frame is out. */
void ws_begin_close(ws_conn_t *ws, uint16_t code, const char *reason, int abandon);
/* The close frame has reached the kernel. */
void ws_close_written(ws_conn_t *ws);
/* Closes the TCP connection now (idempotent). */
void ws_close_tcp(ws_conn_t *ws);
/* Feeds the bytes read before the upgrade, once. */
void ws_take_pending(ws_conn_t *ws);
/* Pings, liveness and closing deadlines; called by the loop's sweep. */
void ws_sweep(net_loop_t *nl, uint64_t now_ms);
/* Shutdown: closes every connection of the loop with 1001 after what it
 * has queued (giving the close frames at least WS_SHUTDOWN_CLOSE_MIN_MS,
 * else until the shutdown deadline); force closes them at once. */
void ws_close_all(net_loop_t *nl, uint64_t now_ms, int force);

/* ws_out.c */
int ws_out_init(net_loop_t *nl);
void ws_out_close(net_loop_t *nl);
/* Appends a frame, taking the caller's reference; no limit applies.
 * Returns 0, or -1 when memory runs out (the reference is released). */
int ws_queue_push(ws_conn_t *ws, shared_buf_t *frame);
/* Releases the queued frames that have not started going out. */
void ws_queue_drop_unsent(ws_conn_t *ws);
/* Releases every queued frame and the queue (the connection is gone). */
void ws_queue_free(ws_conn_t *ws);
/* Frees an empty queue's array. */
void ws_queue_trim(ws_conn_t *ws);
/* Flushes ws at the end of this loop iteration. */
void ws_mark_dirty(ws_conn_t *ws);
/* Takes ws off the dirty list (before it is freed). */
void ws_unmark_dirty(ws_conn_t *ws);
/* Answers a ping (the outbound limit applies). Returns 0 or -1. */
int ws_send_pong(ws_conn_t *ws, const uint8_t *payload, size_t len);
/* A control frame (ping, pong) with payload; NULL when memory runs out. */
shared_buf_t *ws_control_frame(int opcode, const uint8_t *payload, size_t len);

#endif
