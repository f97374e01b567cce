#include "http_check.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int bad(http_response_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(http_response_t *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return -1;
}

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_text(unsigned char c) {
    return c == '\t' || (c >= 0x20 && c < 0x7F);
}

/* Copies a header value into out (cap bytes); -1 when it does not fit. */
static int copy_value(const char *v, size_t n, char *out, size_t cap) {
    if (n >= cap)
        return -1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

static int check_body(const char *body, size_t len, int status, const char *type, size_t type_len,
                      http_response_t *r) {
    if (len == 0)
        return 1;
    if (type == NULL)
        return bad(r, "a %d with a body and no Content-Type", status);
    static const char json[] = "application/json";
    if (type_len < sizeof(json) - 1 || strncasecmp(type, json, sizeof(json) - 1) != 0)
        return 1;
    json_error_t error;
    json_t *root = json_loadb(body, len, 0, &error);
    if (root == NULL)
        return bad(r, "a %d whose JSON body does not parse: %s", status, error.text);
    int shaped = !(status >= 400) ||
                 (json_is_object(root) && json_is_string(json_object_get(root, "error")) &&
                  json_is_string(json_object_get(root, "code")));
    json_decref(root);
    return shaped ? 1 : bad(r, "a %d whose body is not {\"error\", \"code\"}", status);
}

int http_check_response(const char *data, size_t len, int head_only, http_response_t *r) {
    memset(r, 0, sizeof(*r));
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
            end = data + i + 2; /* the CRLF that ends the last header line */
            break;
        }
    }
    if (end == NULL)
        return len > 65536 ? bad(r, "no end of head in 64 KiB") : 0;

    /* Status line. */
    const char *p = data;
    if ((size_t)(end - p) < 14 || memcmp(p, "HTTP/1.1 ", 9) != 0)
        return bad(r, "the status line does not start with \"HTTP/1.1 \"");
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return bad(r, "the status is not three digits");
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (r->status < 100 || r->status > 599 || p[12] != ' ')
        return bad(r, "status %d out of range, or no space after it", r->status);
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (eol == p + 13 || eol[1] != '\n')
        return bad(r, "no reason phrase");
    for (const char *c = p + 13; c < eol; c++)
        if (!is_text((unsigned char)*c))
            return bad(r, "a control byte in the reason phrase");

    /* Headers. */
    const char *type = NULL;
    size_t type_len = 0;
    int ids = 0, connections = 0;
    unsigned long long length = 0;
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL || eol[1] != '\n')
            return bad(r, "a bare CR or LF in the head");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p)
            return bad(r, "a header line without a name");
        for (const char *c = p; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return bad(r, "a header name with a byte that is no token character");
        const char *v = colon + 1;
        if (v < eol && *v == ' ')
            v++;
        for (const char *c = v; c < eol; c++)
            if (!is_text((unsigned char)*c))
                return bad(r, "a control byte in a header value");
        size_t name_len = (size_t)(colon - p), vlen = (size_t)(eol - v);
#define IS(name) (name_len == sizeof(name) - 1 && strncasecmp(p, name, name_len) == 0)
        if (IS("Content-Length")) {
            if (r->has_length++)
                return bad(r, "two Content-Length headers");
            if (vlen == 0 || vlen > 12)
                return bad(r, "a Content-Length that is no number");
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return bad(r, "a Content-Length that is no number");
                length = length * 10 + (unsigned)(v[i] - '0');
            }
        } else if (IS("Content-Type")) {
            type = v, type_len = vlen;
        } else if (IS("X-Request-Id")) {
            if (ids++ || copy_value(v, vlen, r->request_id, sizeof(r->request_id)) != 0)
                return bad(r, "two X-Request-Id headers, or one over 64 bytes");
        } else if (IS("Connection")) {
            if (connections++)
                return bad(r, "two Connection headers");
            r->connection_close = vlen == 5 && strncasecmp(v, "close", 5) == 0;
            r->keep_alive = vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0;
        } else if (IS("Sec-WebSocket-Accept")) {
            if (copy_value(v, vlen, r->accept, sizeof(r->accept)) != 0)
                return bad(r, "a Sec-WebSocket-Accept over 63 bytes");
        }
#undef IS
    }
    r->body_offset = (size_t)(end + 2 - data);

    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;
    if (bodyless && r->has_length)
        return bad(r, "a %d with a Content-Length", r->status);
    if (!bodyless && !r->has_length)
        return bad(r, "a %d without a Content-Length", r->status);
    r->body_len = (size_t)length;
    size_t body_here = bodyless || head_only ? 0 : r->body_len;
    if (len - r->body_offset < body_here)
        return 0;
    r->length = r->body_offset + body_here;
    if (body_here > 0 &&
        check_body(data + r->body_offset, body_here, r->status, type, type_len, r) < 0)
        return -1;
    return 1;
}

int http_check_generated_id(const char *id) {
    if (strlen(id) != 16)
        return 0;
    for (const char *c = id; *c != '\0'; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    return 1;
}
