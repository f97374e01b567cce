/* A strict reader of chatd's HTTP/1.1 responses, for the fuzz targets:
 * what a well-formed answer is, checked byte by byte. */
#ifndef CHATD_FUZZ_HTTP_CHECK_H
#define CHATD_FUZZ_HTTP_CHECK_H

#include <stddef.h>

typedef struct {
    int status;
    size_t length;        /* the whole response: head and body */
    size_t body_offset;   /* from the start of the response */
    size_t body_len;      /* Content-Length (0 without one) */
    int has_length;       /* a Content-Length header */
    int connection_close; /* Connection: close */
    int keep_alive;       /* Connection: keep-alive */
    char request_id[65];  /* X-Request-Id, "" when absent */
    char accept[64];      /* Sec-WebSocket-Accept, "" when absent */
    char why[160];        /* what is wrong, when http_check_response returns -1 */
} http_response_t;

/* Reads one response at the start of data. head_only: it answers a HEAD
 * request (no body, whatever Content-Length says). Checks: the status line
 * ("HTTP/1.1 NNN Reason"), header names as tokens and values as printable
 * text (no CR or LF smuggled in), exactly one Content-Length on every
 * response that may have a body and none on 1xx, 204 and 304, at most one
 * X-Request-Id and Connection, a Content-Type on every non-empty body, JSON
 * bodies that parse, and error bodies (4xx, 5xx) shaped {"error", "code"}.
 * Returns 1 with *r filled, 0 when data ends before the response does, or
 * -1 with r->why. */
int http_check_response(const char *data, size_t len, int head_only, http_response_t *r);

/* True for the ids chatd generates: 16 lowercase hexadecimal digits. */
int http_check_generated_id(const char *id);

#endif
