/* What the files of src/net share with each other; not a contract for the
 * rest of chatd (that is http.h, router.h and server.h).
 *
 * Ownership at a glance:
 *   net_loop_t      one per I/O thread; owned by the server.
 *   http_conn_t     one per TCP connection; owned by its loop, freed in the
 *                   handle's close callback.
 *   http_rx_t       parse state of the request being received; owned by the
 *                   connection, NULL between requests (an idle keep-alive
 *                   connection, or a future upgraded one, holds no parser).
 *   http_exchange_t one request from dispatch to the end of its response;
 *                   owned by itself: freed when the response is written, or
 *                   when it is answered after its connection closed.
 *   ws_conn_t       the WebSocket state of an upgraded connection (ws_conn.h);
 *                   owned by its http_conn_t from the upgrade on, freed with
 *                   it in the handle's close callback. */
#ifndef CHATD_NET_NET_INTERNAL_H
#define CHATD_NET_NET_INTERNAL_H

#include "core/buf.h"
#include "core/inbox.h"
#include "core/shared_buf.h"
#include "net/server.h"

#include <http_parser.h>
#include <limits.h>
#include <stdint.h>
#include <uv.h>

#define NET_READ_BUF_SIZE 65536
/* How long a closing connection keeps reading (and discarding) after its last
 * response, so that unread request bytes do not turn the close into a reset
 * that destroys the response on its way. */
#define NET_DRAIN_MS 1000

/* A connection refused at accept: the reason label of
 * chatd_connections_rejected_total. */
typedef enum {
    CONN_REJECT_MAX_CONNECTIONS,
    CONN_REJECT_PER_IP,
    CONN_REJECT_FD_LIMIT,
    CONN_REJECT_KINDS
} conn_reject_t;

/* Refusals are logged at most this often per loop and reason. */
#define NET_REJECT_LOG_MS 10000
/* A failed accept (EMFILE, ENFILE, ...) closes the loop's listener for this
 * long: accepting again at once would spin on the same error. */
#define NET_ACCEPT_PAUSE_MS 500
/* File descriptors kept free for the rest of the process (store
 * reconnects, files): a connection that would leave fewer is refused. At
 * most a quarter of the limit. */
#define NET_FD_HEADROOM 32

typedef struct net_loop_s net_loop_t;
typedef struct net_ip_counts_s net_ip_counts_t;
typedef struct http_conn_s http_conn_t;
typedef struct http_rx_s http_rx_t;
typedef struct http_exchange_s http_exchange_t;
typedef struct ws_conn_s ws_conn_t;

/* Most frames handed to one writev. */
#if defined(IOV_MAX) && IOV_MAX < 1024
#define NET_IOV_MAX IOV_MAX
#else
#define NET_IOV_MAX 1024
#endif

struct net_loop_s {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    inbox_t inbox;
    server_t *server;
    const server_options_t *opts;
    const config_t *cfg;
    int index;
    uv_thread_t thread;

    http_conn_t *conns; /* open HTTP connections (not yet closing), for sweeps and shutdown */
    size_t conn_count;  /* every connection, HTTP or WebSocket, until its close callback */

    /* WebSocket side (ws_conn.c, ws_out.c). */
    http_conn_t *ws_conns;    /* upgraded connections not yet closed, linked by prev/next */
    ws_conn_t *ws_dirty;      /* connections with frames to flush, linked by dirty_next */
    ws_conn_t *ws_dirty_tail; /* its last one: most are appended, flush_first ones pushed */
    uv_prepare_t ws_prepare;  /* flush before polling: sends made by close callbacks */
    uv_check_t ws_check;      /* flush after polling: sends made by I/O callbacks */
    int ws_flush_open;
    int ws_flushing;           /* the flush handles are started */
    int ws_drop_inbound;       /* shutdown: messages read are no longer delivered */
    int ws_shutdown_phase;     /* 0 none, 1 waiting for shutdown_ready, 2 closing */
    uint64_t ws_next_sweep_ms; /* liveness checks are rarer than HTTP deadline checks */
    shared_buf_t *ws_ping;     /* the empty ping frame every connection of the loop shares */
    uv_buf_t ws_iov[NET_IOV_MAX];

    uint64_t id_seed;
    uint64_t id_counter;

    /* Admission (conn_admit.c). */
    net_ip_counts_t *ip_counts; /* shared by every loop, owned by the server; NULL: no cap */
    int fd_limit;               /* RLIMIT_NOFILE at start; 0: not checked */
    int fd_headroom;
    uint64_t reject_logged_ms[CONN_REJECT_KINDS];
    uint64_t rejects_unlogged[CONN_REJECT_KINDS];
    /* A listener closed after a failed accept (NET_ACCEPT_PAUSE_MS). */
    int accept_paused; /* 1 closing, 2 closed: the sweep listens again at accept_resume_ms */
    uint64_t accept_resume_ms;

    int shutting_down;
    uint64_t shutdown_deadline_ms;
    int finished;
    int listener_open;
    int timer_open;
    int inbox_open;
    inbox_item_t shutdown_item;
    inbox_item_t force_item;

    /* Every read lands here first; a connection copies only what it must
     * keep. One per loop is enough: libuv hands it out and gets it back
     * within a single read callback. */
    char read_buf[NET_READ_BUF_SIZE];
};

typedef enum {
    CONN_READING,  /* receiving (or waiting for) a request */
    CONN_HANDLING, /* a request is with its handler or being written; not reading */
    CONN_DRAINING, /* last response written, FIN sent; discarding input until EOF */
    CONN_UPGRADED, /* a WebSocket connection now: ws_conn.c reads and closes it */
    CONN_CLOSED,   /* uv_close called; freed in the close callback */
} conn_state_t;

typedef enum {
    DEADLINE_NONE,
    DEADLINE_HEAD,  /* complete request head due (slowloris) */
    DEADLINE_BODY,  /* body stalled */
    DEADLINE_IDLE,  /* idle keep-alive */
    DEADLINE_DRAIN, /* closing connection */
} deadline_kind_t;

/* Upgrade seam: a connection handed to WebSocket keeps this object (the
 * uv_tcp_t cannot move), leaves the HTTP deadline list, and takes its
 * unparsed bytes (pending) as its first input; rx is already NULL then,
 * since a request is dispatched only after its parse state is freed. */
struct http_conn_s {
    uv_tcp_t tcp;
    net_loop_t *nl;
    http_conn_t *prev;
    http_conn_t *next;
    uint64_t deadline_ms; /* uv_now() scale */
    http_rx_t *rx;
    http_exchange_t *current; /* the request being handled or written */
    ws_conn_t *ws;            /* set by the upgrade */
    char *pending;            /* bytes read past the current request, not parsed yet */
    uint32_t pending_len;
    uint32_t pending_cap;
    uint8_t state;         /* conn_state_t */
    uint8_t deadline_kind; /* deadline_kind_t */
    uint8_t reading;
    uint8_t pumping;    /* conn_pump is on the stack: do not re-enter it */
    uint8_t ip_counted; /* counted in nl->ip_counts */
    uint8_t peer_family;
    uint8_t peer_addr[16];
};

/* http_parse.c: request parsing with the limits applied. */
typedef enum { RX_MORE, RX_DONE, RX_ERROR } rx_result_t;

struct http_rx_s {
    http_parser parser;
    buf_t url;
    buf_t head; /* header pairs: name NUL value NUL ... */
    size_t header_count;
    buf_t body;
    size_t max_body;
    int header_state; /* 0 nothing yet, 1 in a name, 2 in a value */
    int started;      /* the first byte of a message was seen */
    int method_known;
    int head_done;
    int keep_alive;
    int upgrade;
    int expect_continue; /* 1: the client waits for 100 Continue; 2: sent */
    int error_status;    /* set by the callback that stopped the parser */
};

/* Returns a fresh parse state, or NULL when memory runs out. */
http_rx_t *http_rx_new(size_t max_body);
void http_rx_free(http_rx_t *rx);
/* Parses up to len bytes; *used tells how many were consumed. RX_DONE: one
 * request is complete (the rest is the next request's); RX_ERROR: answer
 * http_rx_error_status() and close. */
rx_result_t http_rx_feed(http_rx_t *rx, const char *data, size_t len, size_t *used);
int http_rx_error_status(const http_rx_t *rx);
/* Keeps the header value received last (of a request that will not be
 * completed) as a header, for the error answer. */
void http_rx_end_partial(http_rx_t *rx);
/* Looks a header up among the complete ones received so far. */
const char *http_rx_header(const http_rx_t *rx, const char *name);

/* http_exchange.c: requests built from parse state. */
struct http_exchange_s {
    http_request_t req;
    http_conn_t *conn; /* NULL once the connection is gone */
    net_loop_t *nl;
    char *url_store;  /* path and query point into it */
    char *head_store; /* header names and values point into it */
    char *body_store;
    buf_t extra_headers; /* "Name: value\r\n" from http_add_header */
    buf_t out;           /* the serialised response */
    uv_write_t write_req;
    uint64_t start_ns;
    int status;
    size_t body_bytes;
    unsigned keep_alive : 1;
    unsigned head_only : 1;
    unsigned http10 : 1;
    unsigned answered : 1;
    unsigned writing : 1;
    char empty_body[1];
};

/* Builds the request from rx, taking its buffers (rx can be freed after).
 * rx may describe a partial request (for the errors the connection answers
 * itself) or be NULL. Returns NULL when memory runs out. */
http_exchange_t *http_exchange_new(http_conn_t *conn, http_rx_t *rx);
void http_exchange_free(http_exchange_t *x);
static inline http_exchange_t *http_exchange_of(http_request_t *req) {
    return (http_exchange_t *)req; /* req is the first member */
}
/* Formats the peer address of conn ("" when unknown). */
void http_conn_peer_name(const http_conn_t *conn, char *out, size_t outlen);

/* http_dispatch.c: CORS preflight, routing, 415, authentication, handler. */
void http_dispatch(http_exchange_t *x);

/* ws_upgrade.c: checks a WebSocket handshake request; returns 0, or answers
 * it (400, 403, 426) and returns -1. */
int ws_handshake_check(http_request_t *req);

/* http_response.c: the ways out of a request are http_respond* (http.h). */
/* Writes the access log line and counts the request in the metrics. */
void http_exchange_record(http_exchange_t *x);

/* http_conn.c */
void http_conn_accept(net_loop_t *nl);
/* The response of the connection's current request is done (written, or
 * failed with write_status < 0). */
void http_conn_response_done(http_conn_t *conn, int keep_alive, int write_status);
/* Closes expired connections; during shutdown, also idle ones. */
void http_conn_sweep(net_loop_t *nl, uint64_t now_ms);
/* Shutdown: closes connections with no request under way (all of them when
 * force is set). */
void http_conn_close_idle(net_loop_t *nl, int force);
/* Upgrade: takes conn out of HTTP's hands (list, deadlines, reading); its
 * pending bytes stay. */
void http_conn_detach(http_conn_t *conn);
/* Frees a connection whose handle has closed and tells the loop. */
void http_conn_destroy(http_conn_t *conn);

/* server.c */
/* Fills out with a fresh request id (16 hex digits, unique within the loop). */
void net_loop_request_id(net_loop_t *nl, char out[17]);
/* A connection of nl finished closing: the loop may be done. */
void net_loop_conn_gone(net_loop_t *nl);
/* Closes the loop's listener for NET_ACCEPT_PAUSE_MS (the sweep opens it
 * again): for an accept that fails, or a connection that cannot be taken. */
void net_loop_pause_accepting(net_loop_t *nl);

/* conn_admit.c: MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, descriptors. */
/* Open connections per client address, for every loop; NULL when out of
 * memory. */
net_ip_counts_t *net_ip_counts_new(void);
void net_ip_counts_free(net_ip_counts_t *t);
/* Decides whether a just-accepted connection (its peer recorded) is kept.
 * Returns 0 when it is, counted in the limits (net_conn_release gives them
 * back); -1 when it must be closed at once (the refusal is counted and
 * logged). */
int net_conn_admit(http_conn_t *conn);
void net_conn_release(http_conn_t *conn);
/* Counts a refusal in the metrics and logs it (rate-limited); peer may be
 * NULL. */
void net_note_reject(net_loop_t *nl, conn_reject_t reason, const char *peer);
const char *net_reject_name(conn_reject_t reason);

/* http_metrics.c */
/* Takes one of max connection slots; returns 0, or -1 when all are taken. */
int http_metrics_conn_acquire(int max);
void http_metrics_conn_release(void);
void http_metrics_conn_rejected(conn_reject_t reason);
void http_metrics_observe(const char *route, const char *method, int status, double seconds);
void ws_metrics_open(int delta);
void ws_metrics_slow_consumer(void);
void ws_metrics_frames_sent(uint64_t frames);

#endif
