/* Answers: serialise the response, write it (uv_try_write first), then log
 * the request, count it, and hand the connection back for the next one. */
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "net/net_internal.h"

#include <string.h>

static const char *reason_phrase(int status) {
    const char *reason = http_status_str((enum http_status)status);
    return reason != NULL && strcmp(reason, "<unknown>") != 0 ? reason : "Unknown";
}

/* Access-Control-Allow-Origin goes on every response to a request with an
 * Origin: "*" in any mode, else the origin itself when it is listed. With a
 * list the answer depends on Origin, which caches must know (Vary). */
static int append_cors(buf_t *out, const http_request_t *req, const config_t *cfg) {
    const char *origin = http_request_header(req, "Origin");
    int rc = cfg->cors_any ? 0 : buf_append_str(out, "Vary: Origin\r\n");
    if (origin == NULL || rc != 0)
        return rc;
    if (cfg->cors_any)
        rc = buf_append_str(out, "Access-Control-Allow-Origin: *\r\n");
    else if (config_origin_allowed(cfg, origin, strlen(origin)))
        rc = buf_printf(out, "Access-Control-Allow-Origin: %s\r\n", origin);
    else
        return 0;
    return rc | buf_append_str(out, "Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n");
}

static int serialise(http_exchange_t *x, int status, const char *content_type, const char *body,
                     size_t len) {
    buf_t *out = &x->out;
    int bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
    int rc = buf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (!bodyless) {
        if (content_type != NULL)
            rc |= buf_printf(out, "Content-Type: %s\r\n", content_type);
        rc |= buf_printf(out, "Content-Length: %zu\r\n", len);
    }
    rc |= buf_printf(out, "X-Request-Id: %s\r\n", x->req.request_id);
    rc |= append_cors(out, &x->req, x->nl->cfg);
    if (x->extra_headers.len > 0)
        rc |= buf_append(out, x->extra_headers.data, x->extra_headers.len);
    if (!x->keep_alive)
        rc |= buf_append_str(out, "Connection: close\r\n");
    else if (x->http10)
        rc |= buf_append_str(out, "Connection: keep-alive\r\n");
    rc |= buf_append_str(out, "\r\n");
    /* HEAD is answered like GET without the body (Content-Length kept). */
    if (!bodyless && !x->head_only) {
        rc |= buf_append(out, body, len);
        x->body_bytes = len;
    }
    return rc;
}

void http_exchange_record(http_exchange_t *x) {
    http_request_t *req = &x->req;
    double seconds = (double)(time_monotonic_ns() - x->start_ns) / 1e9;
    const char *route = req->route != NULL ? req->route : "unmatched";
    log_info("request", LOG_S("method", req->method_name), LOG_S("route", route),
             LOG_I("status", x->status), LOG_I("bytes", x->body_bytes),
             LOG_D("duration_ms", seconds * 1000.0), LOG_S("request_id", req->request_id),
             LOG_S("remote", req->remote_addr));
    http_metrics_observe(route, req->method_name, x->status, seconds);
}

/* Logs and counts the request, frees it, and tells the connection. */
static void exchange_finish(http_exchange_t *x, int write_status) {
    http_exchange_record(x);
    http_conn_t *conn = x->conn;
    int keep_alive = x->keep_alive;
    http_exchange_free(x);
    if (conn != NULL)
        http_conn_response_done(conn, keep_alive, write_status);
}

static void on_write(uv_write_t *w, int status) {
    http_exchange_t *x = w->data;
    x->writing = 0;
    exchange_finish(x, status);
}

static void exchange_send(http_exchange_t *x) {
    http_conn_t *conn = x->conn;
    if (conn == NULL || conn->state == CONN_CLOSED) {
        exchange_finish(x, 0);
        return;
    }
    uv_stream_t *stream = (uv_stream_t *)&conn->tcp;
    uv_buf_t b = uv_buf_init(x->out.data, (unsigned)x->out.len);
    int n = uv_try_write(stream, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0 || (size_t)n == x->out.len) {
        exchange_finish(x, n < 0 ? n : 0);
        return;
    }
    b.base += n;
    b.len -= (size_t)n;
    x->write_req.data = x;
    x->writing = 1;
    int rc = uv_write(&x->write_req, stream, &b, 1, on_write);
    if (rc != 0) {
        x->writing = 0;
        exchange_finish(x, rc);
    }
}

void http_respond(http_request_t *req, int status, const char *content_type, const char *body,
                  size_t len) {
    http_exchange_t *x = http_exchange_of(req);
    if (x->answered) {
        log_error("request answered twice", LOG_S("request_id", req->request_id));
        return;
    }
    x->answered = 1;
    x->status = status;
    /* A shutting-down loop closes each connection after its response; so does
     * any answer the connection layer gives to a broken request. */
    if (x->nl->shutting_down || x->conn == NULL)
        x->keep_alive = 0;
    buf_reset(&x->out);
    if (serialise(x, status, content_type, body != NULL ? body : "", len) != 0) {
        log_error("out of memory writing a response", LOG_S("request_id", req->request_id));
        x->status = 500;
        x->body_bytes = 0;
        exchange_finish(x, UV_ENOMEM);
        return;
    }
    exchange_send(x);
}

void http_respond_json(http_request_t *req, int status, const char *json, size_t len) {
    http_respond(req, status, "application/json; charset=utf-8", json, len);
}

void http_respond_error(http_request_t *req, int status, const char *code, const char *message) {
    buf_t body = BUF_INIT;
    int rc = buf_append_str(&body, "{\"error\":");
    rc |= buf_append_json_string(&body, message, strlen(message));
    rc |= buf_append_str(&body, ",\"code\":");
    rc |= buf_append_json_string(&body, code, strlen(code));
    rc |= buf_append_str(&body, "}");
    if (rc != 0) {
        buf_free(&body);
        http_respond_json(req, status, "", 0);
        return;
    }
    http_respond_json(req, status, body.data, body.len);
    buf_free(&body);
}

void http_respond_empty(http_request_t *req, int status) {
    http_respond(req, status, NULL, "", 0);
}
