/* Request parsing over http-parser, one fresh parser per request.
 *
 * The parser pauses itself at the end of each message, so pipelined bytes
 * after it stay unparsed until the request has been answered. The head size
 * limit is http-parser's own (process-global, set by server_start): it counts
 * the request line and every header byte up to the blank line, which is what
 * MAX_HEADER_BYTES means. A fresh parser per request keeps that count exact
 * (a reused one carries a chunked request's trailer bytes into the next). */
#include "net/net_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int rx_fail(http_rx_t *rx, int status) {
    rx->error_status = status;
    return -1;
}

/* Ends the header pair whose value is being received. */
static int commit_pair(http_rx_t *rx) {
    if (rx->header_state != 2)
        return 0;
    if (buf_append(&rx->head, "", 1) != 0)
        return -1;
    rx->header_count++;
    rx->header_state = 0;
    return 0;
}

static int on_message_begin(http_parser *p) {
    http_rx_t *rx = p->data;
    rx->started = 1;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    http_rx_t *rx = p->data;
    rx->method_known = 1;
    return buf_append(&rx->url, at, len) == 0 ? 0 : rx_fail(rx, 500);
}

/* Names and values may arrive in pieces across reads; a name after a value
 * starts the next pair. */
static int on_header_field(http_parser *p, const char *at, size_t len) {
    http_rx_t *rx = p->data;
    if (commit_pair(rx) != 0)
        return rx_fail(rx, 500);
    rx->header_state = 1;
    return buf_append(&rx->head, at, len) == 0 ? 0 : rx_fail(rx, 500);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    http_rx_t *rx = p->data;
    if (rx->header_state == 1 && buf_append(&rx->head, "", 1) != 0)
        return rx_fail(rx, 500);
    rx->header_state = 2;
    return buf_append(&rx->head, at, len) == 0 ? 0 : rx_fail(rx, 500);
}

static int on_headers_complete(http_parser *p) {
    http_rx_t *rx = p->data;
    if (commit_pair(rx) != 0)
        return rx_fail(rx, 500);
    rx->head_done = 1;
    int chunked = (p->flags & F_CHUNKED) != 0;
    const char *expect = http_rx_header(rx, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1)
        rx->expect_continue = 1;
    if (!chunked && p->content_length != ULLONG_MAX) {
        /* Refuse an oversized body before reading any of it. */
        if (p->content_length > rx->max_body)
            return rx_fail(rx, 413);
        if (p->content_length > 0 && buf_reserve(&rx->body, (size_t)p->content_length) != 0)
            return rx_fail(rx, 500);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    http_rx_t *rx = p->data;
    if (len > rx->max_body - rx->body.len)
        return rx_fail(rx, 413);
    return buf_append(&rx->body, at, len) == 0 ? 0 : rx_fail(rx, 500);
}

static int on_message_complete(http_parser *p) {
    http_rx_t *rx = p->data;
    rx->keep_alive = http_should_keep_alive(p);
    rx->upgrade = p->upgrade;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings rx_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

http_rx_t *http_rx_new(size_t max_body) {
    http_rx_t *rx = calloc(1, sizeof(*rx));
    if (rx == NULL)
        return NULL;
    http_parser_init(&rx->parser, HTTP_REQUEST);
    rx->parser.data = rx;
    rx->max_body = max_body;
    return rx;
}

void http_rx_free(http_rx_t *rx) {
    if (rx == NULL)
        return;
    buf_free(&rx->url);
    buf_free(&rx->head);
    buf_free(&rx->body);
    free(rx);
}

rx_result_t http_rx_feed(http_rx_t *rx, const char *data, size_t len, size_t *used) {
    size_t n = http_parser_execute(&rx->parser, &rx_settings, data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&rx->parser);
    *used = n;
    if (err == HPE_PAUSED)
        return RX_DONE;
    if (err != HPE_OK) {
        if (err == HPE_HEADER_OVERFLOW)
            rx->error_status = 431;
        else if (rx->error_status == 0)
            rx->error_status = 400;
        return RX_ERROR;
    }
    if (n != len) {
        rx->error_status = 400;
        return RX_ERROR;
    }
    return RX_MORE;
}

int http_rx_error_status(const http_rx_t *rx) {
    return rx->error_status != 0 ? rx->error_status : 400;
}

void http_rx_end_partial(http_rx_t *rx) {
    commit_pair(rx);
}

const char *http_rx_header(const http_rx_t *rx, const char *name) {
    const char *p = rx->head.data;
    for (size_t i = 0; i < rx->header_count; i++) {
        const char *value = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}
