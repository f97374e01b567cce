/* The HTTP server: THREADS I/O loops, each with its own SO_REUSEPORT
 * listener, connections and inbox. Loop 0 runs on the thread that calls
 * server_run; the others on threads of their own. A connection never moves
 * between loops. */
#ifndef CHATD_NET_SERVER_H
#define CHATD_NET_SERVER_H

#include "core/buf.h"
#include "core/config.h"
#include "net/router.h"

typedef struct server_s server_t;

typedef struct {
    const config_t *cfg;
    const route_t *routes;
    size_t route_count;
    /* For ROUTE_AUTH routes: returns 0 after filling req->auth, or answers
     * the request itself (401) and returns -1. Runs on the loop thread. */
    int (*authenticate)(http_request_t *req);
    void *app; /* copied into every request's app */
    /* Shutdown, WebSocket side: after SIGTERM the loops stop reading
     * WebSocket messages, then wait (within SHUTDOWN_TIMEOUT_MS) until all
     * of them have and this returns non-zero, meaning no accepted message
     * (from a socket or a request) is still on its way to being stored and
     * published, run what their inboxes still hold, and only then send 1001
     * to every WebSocket. NULL: no wait. Thread-safe. */
    int (*shutdown_ready)(void *app);
} server_options_t;

/* Binds every listener (an error when the address is taken) and starts the
 * loop threads. Returns 0, or -1 with a one-line reason in err. */
int server_start(server_t **out, const server_options_t *opts, char *err, size_t errlen);

/* Serves until SIGTERM or SIGINT, then shuts down gracefully: stop
 * accepting, let in-flight requests finish within SHUTDOWN_TIMEOUT_MS, close
 * every connection, stop the loops. Returns 0 on a clean shutdown. */
int server_run(server_t *server);

/* Frees the server after server_run returned. */
void server_free(server_t *server);

/* The libuv loop of I/O loop index, for a caller that drives the server
 * from its own thread with uv_run instead of calling server_run: the fuzz
 * targets (fuzz/README.md) serve and play the client on one thread, one
 * connection at a time, so each input is done when its callback returns.
 * With THREADS=1 no other thread runs a loop. */
uv_loop_t *server_loop(server_t *server, int index);

/* Appends the network metrics in Prometheus text format: open connections,
 * requests by route and status, request duration histogram, open
 * WebSockets, slow consumers closed, frames sent. Thread-safe. Returns 0 or
 * -1. */
int server_metrics_render(buf_t *out);

#endif
