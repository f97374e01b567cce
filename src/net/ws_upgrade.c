/* The WebSocket opening handshake (RFC 6455 section 4.2): the checks made
 * before a WebSocket route's handler runs, and the 101 answer that hands the
 * connection over to ws_conn.c. No extension is ever agreed: an offered
 * permessage-deflate is declined by not answering it. */
#include "core/config.h"
#include "core/log.h"
#include "net/ws_conn.h"

#include <string.h>
#include <strings.h>

/* True when the comma-separated list holds token (case-insensitive). */
static int has_token(const char *list, const char *token) {
    size_t token_len = strlen(token);
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == token_len && strncasecmp(p, token, token_len) == 0)
            return 1;
        p += len;
    }
    return 0;
}

static void answer_upgrade_required(http_request_t *req, const char *message) {
    http_add_header(req, "Upgrade", "websocket");
    http_add_header(req, "Sec-WebSocket-Version", "13");
    http_respond_error(req, 426, "upgrade_required", message);
}

int ws_handshake_check(http_request_t *req) {
    if (req->method != HTTP_GET) {
        http_respond_error(req, 400, "bad_request", "a WebSocket handshake is a GET request");
        return -1;
    }
    const char *upgrade = http_request_header(req, "Upgrade");
    const char *connection = http_request_header(req, "Connection");
    if (upgrade == NULL || !has_token(upgrade, "websocket") || connection == NULL ||
        !has_token(connection, "upgrade")) {
        answer_upgrade_required(req, "this endpoint speaks WebSocket only");
        return -1;
    }
    const char *version = http_request_header(req, "Sec-WebSocket-Version");
    if (version == NULL || !has_token(version, "13")) {
        answer_upgrade_required(req, "unsupported WebSocket version");
        return -1;
    }
    const char *key = http_request_header(req, "Sec-WebSocket-Key");
    char accept[29];
    if (key == NULL || ws_accept_key(key, strlen(key), accept) != 0) {
        http_respond_error(req, 400, "bad_request", "invalid Sec-WebSocket-Key");
        return -1;
    }
    /* Browsers send Origin; other clients need not, and pass. */
    const config_t *cfg = http_exchange_of(req)->nl->cfg;
    const char *origin = http_request_header(req, "Origin");
    if (!cfg->cors_any && origin != NULL && !config_origin_allowed(cfg, origin, strlen(origin))) {
        http_respond_error(req, 403, "forbidden", "origin not allowed");
        return -1;
    }
    return 0;
}

/* The 101 answer as a buffer for the out-queue, where it goes out before
 * any frame. NULL when memory runs out. */
static shared_buf_t *switching_protocols(http_exchange_t *x, const char *accept) {
    buf_t out = BUF_INIT;
    int rc = buf_printf(&out,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n"
                        "X-Request-Id: %s\r\n",
                        accept, x->req.request_id);
    if (x->extra_headers.len > 0)
        rc |= buf_append(&out, x->extra_headers.data, x->extra_headers.len);
    rc |= buf_append_str(&out, "\r\n");
    shared_buf_t *response = rc == 0 ? shared_buf_new(out.len) : NULL;
    if (response != NULL)
        memcpy(response->data, out.data, out.len);
    buf_free(&out);
    return response;
}

ws_conn_t *http_upgrade_websocket(http_request_t *req, const ws_handlers_t *handlers, void *user) {
    http_exchange_t *x = http_exchange_of(req);
    if (x->answered) {
        log_error("request answered twice", LOG_S("request_id", req->request_id));
        return NULL;
    }
    http_conn_t *conn = x->conn;
    if (conn == NULL || conn->state == CONN_CLOSED) {
        /* The client left while the handler worked: only the log remains. */
        x->answered = 1;
        x->status = 101;
        http_exchange_record(x);
        http_exchange_free(x);
        return NULL;
    }
    if (x->nl->shutting_down) {
        http_respond_error(req, 503, "unavailable", "the server is shutting down");
        return NULL;
    }
    const char *key = http_request_header(req, "Sec-WebSocket-Key");
    char accept[29];
    if (!(req->route_flags & ROUTE_WEBSOCKET) || key == NULL ||
        ws_accept_key(key, strlen(key), accept) != 0) {
        log_error("upgrade of a request that is no WebSocket handshake",
                  LOG_S("request_id", req->request_id));
        http_respond_error(req, 500, "internal", "internal error");
        return NULL;
    }
    shared_buf_t *response = switching_protocols(x, accept);
    ws_conn_t *ws = response != NULL ? ws_conn_attach(conn, handlers, user, response) : NULL;
    if (ws == NULL) {
        log_error("out of memory upgrading a connection", LOG_S("request_id", req->request_id));
        http_respond_error(req, 500, "internal", "internal error");
        return NULL;
    }
    x->answered = 1;
    x->status = 101;
    http_exchange_record(x);
    http_exchange_free(x);
    return ws;
}
