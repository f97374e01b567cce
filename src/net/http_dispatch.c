/* What happens to a complete request before its handler sees it: CORS
 * preflight, routing (404/405), the WebSocket handshake checks (ws.h), the
 * JSON content-type check (415) and authentication. */
#include "core/log.h"
#include "net/net_internal.h"

#include <string.h>
#include <strings.h>

#define ALL_METHODS "GET, POST, PUT, PATCH, DELETE, OPTIONS"

static void answer_preflight(http_exchange_t *x) {
    http_request_t *req = &x->req;
    const server_options_t *o = x->nl->opts;
    const route_t *route;
    int64_t params[HTTP_MAX_PATH_PARAMS];
    size_t nparams;
    char allow[128];
    route_match_t m = router_match(o->routes, o->route_count, "OPTIONS", req->path, &route, params,
                                   &nparams, allow, sizeof(allow));
    req->route = "preflight";
    int rc = http_add_header(req, "Access-Control-Allow-Methods",
                             m == ROUTE_WRONG_METHOD ? allow : ALL_METHODS);
    rc |= http_add_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    rc |= http_add_header(req, "Access-Control-Max-Age", "600");
    if (rc != 0) {
        http_respond_error(req, 500, "internal", "internal error");
        return;
    }
    http_respond_empty(req, 204);
}

/* application/json, any case, optionally with parameters (charset=...). */
static int is_json_type(const char *type) {
    static const char json[] = "application/json";
    while (*type == ' ' || *type == '\t')
        type++;
    if (strncasecmp(type, json, sizeof(json) - 1) != 0)
        return 0;
    char next = type[sizeof(json) - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

/* A JSON route takes a JSON body or none. A POST without a body and without a
 * content type is let through: the handler reports the missing JSON (400). */
static int content_type_ok(const http_request_t *req) {
    int writes = req->method == HTTP_POST || req->method == HTTP_PUT || req->method == HTTP_PATCH;
    if (req->body_len == 0 && !writes)
        return 1;
    const char *type = http_request_header(req, "Content-Type");
    if (type == NULL)
        return req->body_len == 0;
    return is_json_type(type);
}

void http_dispatch(http_exchange_t *x) {
    http_request_t *req = &x->req;
    const server_options_t *o = x->nl->opts;
    if (req->method == HTTP_OPTIONS && http_request_header(req, "Origin") != NULL &&
        http_request_header(req, "Access-Control-Request-Method") != NULL) {
        answer_preflight(x);
        return;
    }
    const route_t *route = NULL;
    char allow[128];
    /* HEAD is routed as GET; the response drops the body (http_response.c). */
    const char *method = req->method == HTTP_HEAD ? "GET" : req->method_name;
    route_match_t m = router_match(o->routes, o->route_count, method, req->path, &route,
                                   req->params, &req->param_count, allow, sizeof(allow));
    if (m == ROUTE_NO_PATH) {
        http_respond_error(req, 404, "not_found", "not found");
        return;
    }
    if (m == ROUTE_WRONG_METHOD) {
        http_add_header(req, "Allow", allow);
        http_respond_error(req, 405, "method_not_allowed", "method not allowed");
        return;
    }
    req->route = route->pattern;
    req->route_flags = route->flags;
    if ((route->flags & ROUTE_WEBSOCKET) && ws_handshake_check(req) != 0)
        return;
    if ((route->flags & ROUTE_JSON) && !content_type_ok(req)) {
        http_respond_error(req, 415, "unsupported_media_type",
                           "Content-Type must be application/json");
        return;
    }
    if (route->flags & (ROUTE_AUTH | ROUTE_WEBSOCKET)) {
        if (o->authenticate == NULL) {
            log_error("route needs authentication but none is configured",
                      LOG_S("route", route->pattern));
            http_respond_error(req, 500, "internal", "internal error");
            return;
        }
        if (o->authenticate(req) != 0)
            return;
    }
    route->handler(req);
}
