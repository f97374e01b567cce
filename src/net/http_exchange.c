/* Requests as handlers see them: built from the parse state, with the
 * accessors of http.h. */
#include "core/timeutil.h"
#include "net/net_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* X-Request-Id values are echoed into headers and logs: accept only a short,
 * plain token. */
static int request_id_sane(const char *s) {
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok || n == 64)
            return 0;
    }
    return n > 0;
}

/* Points path and query into the URL (origin form), or rebuilds them from an
 * absolute-form URL. Returns 0, or -1 when the URL has no usable path. */
static int split_url(http_exchange_t *x) {
    char *url = x->url_store;
    http_request_t *req = &x->req;
    if (url[0] == '/' || strcmp(url, "*") == 0) {
        url[strcspn(url, "#")] = '\0';
        char *q = strchr(url, '?');
        if (q != NULL) {
            *q = '\0';
            req->query = q + 1;
        }
        req->path = url;
        return 0;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    size_t len = strlen(url);
    if (len > UINT16_MAX || http_parser_parse_url(url, len, 0, &u) != 0)
        return -1;
    const char *path = "/";
    size_t path_len = 1;
    if (u.field_set & (1 << UF_PATH)) {
        path = url + u.field_data[UF_PATH].off;
        path_len = u.field_data[UF_PATH].len;
    }
    int has_query = (u.field_set & (1 << UF_QUERY)) != 0;
    size_t query_len = has_query ? u.field_data[UF_QUERY].len : 0;
    char *store = malloc(path_len + query_len + 2);
    if (store == NULL)
        return -1;
    memcpy(store, path, path_len);
    store[path_len] = '\0';
    req->path = store;
    if (has_query) {
        memcpy(store + path_len + 1, url + u.field_data[UF_QUERY].off, query_len);
        store[path_len + 1 + query_len] = '\0';
        req->query = store + path_len + 1;
    }
    free(x->url_store);
    x->url_store = store;
    return 0;
}

static int take_headers(http_exchange_t *x, http_rx_t *rx) {
    size_t count = rx->header_count;
    x->head_store = buf_take(&rx->head);
    if (count == 0)
        return 0;
    x->req.headers = calloc(count, sizeof(http_header_t));
    if (x->req.headers == NULL)
        return -1;
    char *p = x->head_store;
    for (size_t i = 0; i < count; i++) {
        x->req.headers[i].name = p;
        p += strlen(p) + 1;
        x->req.headers[i].value = p;
        p += strlen(p) + 1;
    }
    x->req.header_count = count;
    return 0;
}

void http_conn_peer_name(const http_conn_t *conn, char *out, size_t outlen) {
    out[0] = '\0';
    if (conn->peer_family == 0 ||
        uv_inet_ntop(conn->peer_family, conn->peer_addr, out, outlen) != 0)
        out[0] = '\0';
}

http_exchange_t *http_exchange_new(http_conn_t *conn, http_rx_t *rx) {
    http_exchange_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    net_loop_t *nl = conn->nl;
    http_request_t *req = &x->req;
    x->conn = conn;
    x->nl = nl;
    x->start_ns = time_monotonic_ns();
    req->method = -1;
    req->method_name = "-";
    req->path = x->empty_body; /* "" until the URL says otherwise */
    req->body = x->empty_body;
    req->app = nl->opts->app;
    req->inbox = &nl->inbox;
    req->loop = &nl->loop;
    req->loop_index = nl->index;
    http_conn_peer_name(conn, req->remote_addr, sizeof(req->remote_addr));
    if (rx != NULL) {
        if (rx->method_known) {
            req->method = (int)rx->parser.method;
            req->method_name = http_method_str(rx->parser.method);
        }
        x->keep_alive = rx->keep_alive && !rx->upgrade;
        x->http10 = rx->parser.http_major == 1 && rx->parser.http_minor == 0;
        x->head_only = req->method == HTTP_HEAD;
        if (take_headers(x, rx) != 0)
            goto err;
        if (rx->url.len > 0) {
            x->url_store = buf_take(&rx->url);
            if (x->url_store == NULL || split_url(x) != 0)
                req->path = x->empty_body;
        }
        if (rx->body.data != NULL) {
            req->body_len = rx->body.len;
            x->body_store = buf_take(&rx->body);
            req->body = x->body_store;
        }
    }
    const char *client_id = http_request_header(req, "X-Request-Id");
    if (client_id != NULL && request_id_sane(client_id))
        strcpy(req->request_id, client_id);
    else
        net_loop_request_id(nl, req->request_id);
    return x;
err:
    http_exchange_free(x);
    return NULL;
}

void http_exchange_free(http_exchange_t *x) {
    free(x->req.headers);
    free(x->url_store);
    free(x->head_store);
    free(x->body_store);
    buf_free(&x->extra_headers);
    buf_free(&x->out);
    free(x);
}

const char *http_request_header(const http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->header_count; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a form-encoded value; -2 when malformed, holds a NUL, or does not
 * fit. */
static int query_decode(const char *s, size_t len, char *out, size_t outlen) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -2;
            c = hi * 16 + lo;
            i += 2;
        }
        if (n + 1 >= outlen)
            return -2;
        out[n++] = (char)c;
    }
    if (outlen == 0)
        return -2;
    out[n] = '\0';
    return (int)n;
}

int http_request_query(const http_request_t *req, const char *name, char *out, size_t outlen) {
    if (req->query == NULL)
        return -1;
    size_t name_len = strlen(name);
    const char *p = req->query;
    while (*p != '\0') {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq != NULL ? (size_t)(eq - p) : len;
        if (key_len == name_len && memcmp(p, name, name_len) == 0) {
            const char *value = eq != NULL ? eq + 1 : p + len;
            return query_decode(value, (size_t)(p + len - value), out, outlen);
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return -1;
}

static int header_name_ok(const char *s) {
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c >= 127 || c == ':')
            return 0;
    }
    return 1;
}

int http_add_header(http_request_t *req, const char *name, const char *value) {
    http_exchange_t *x = http_exchange_of(req);
    /* No CR or LF: a value must not be able to start a header of its own. */
    if (x->answered || !header_name_ok(name) || strpbrk(value, "\r\n") != NULL)
        return -1;
    size_t before = x->extra_headers.len;
    if (buf_printf(&x->extra_headers, "%s: %s\r\n", name, value) != 0) {
        x->extra_headers.len = before;
        return -1;
    }
    return 0;
}
