/* Routes: a static table of method + pattern -> handler.
 *
 * Patterns are literal segments and ":name" segments; a ":name" segment
 * matches a positive 64-bit decimal integer only (anything else is 404) and
 * lands in req->params in order. A path that matches some pattern with
 * another method gets 405 with Allow. */
#ifndef CHATD_NET_ROUTER_H
#define CHATD_NET_ROUTER_H

#include "net/http.h"

#include <stddef.h>

typedef void (*http_handler_fn)(http_request_t *req);

enum {
    ROUTE_AUTH = 1 << 0,      /* needs a valid bearer token: the authenticate hook runs first */
    ROUTE_JSON = 1 << 1,      /* has a JSON body: other content types get 415 */
    ROUTE_WEBSOCKET = 1 << 2, /* a WebSocket upgrade (net/ws.h); implies the auth hook */
};

typedef struct {
    const char *method; /* "GET", "POST", ... */
    const char *pattern;
    http_handler_fn handler;
    unsigned flags;
} route_t;

typedef enum { ROUTE_MATCHED, ROUTE_NO_PATH, ROUTE_WRONG_METHOD } route_match_t;

/* Finds the route for method + path. On ROUTE_MATCHED sets *route and the
 * params; on ROUTE_WRONG_METHOD writes the Allow list ("GET, POST") into
 * allow. */
route_match_t router_match(const route_t *routes, size_t count, const char *method,
                           const char *path, const route_t **route, int64_t *params,
                           size_t *param_count, char *allow, size_t allow_len);

#endif
