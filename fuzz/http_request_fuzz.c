/* libFuzzer target: HTTP request handling, bytes in and responses out,
 * with the real server, route table, store and chat layer in process
 * (fuzz/common/inproc.c).
 *
 * The input is what a client sends on one connection, in one write or in
 * up to four, each read by the server before the next (the cuts come from a
 * hash of the input); then the client sends FIN and reads until the server
 * closes. The limits are set low (MAX_HEADER_BYTES 1024, MAX_BODY_BYTES
 * 2048) so that inputs of a few KiB reach them, and CORS_ORIGINS is a list.
 * The seeds carry tokens of users 1 and 2 signed with the harness's
 * secret.
 *
 * What the server must answer is worked out first, by parsing the input
 * with chatd's own request parser (http_rx_feed, which the connection
 * uses): each complete request up to the first that does not keep the
 * connection alive gets exactly one final response, in order; a request
 * the parser refuses gets its error status (400, 413, 431) and the
 * connection closes; an unfinished last request gets nothing. Checks:
 *  - every response is well-formed (common/http_check.h: status line,
 *    headers, one Content-Length matching the body, JSON bodies that parse,
 *    the error shape);
 *  - response i answers request i: it carries that request's X-Request-Id
 *    when it sent a valid one, else a generated id, never the same twice;
 *    no body after HEAD; Connection: close exactly when the connection ends;
 *    HTTP/1.0 keep-alive said back;
 *  - 100 Continue only to a request that asked for it;
 *  - never 500: nothing a client sends is an internal error;
 *  - nothing after the last response (up to a 101: the rest is WebSocket);
 *  - the server closes (never resets) the connection, and leaves nothing
 *    behind: no store job, no libuv request, no handle; ASan and LSan
 *    watch the rest. */
#include "common/http_check.h"
#include "common/inproc.h"
#include "net/net_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUESTS 512

typedef struct {
    int error_status; /* the connection's own answer to a broken request; 0 */
    int other_status; /* the same request read byte by byte (see below) */
    int head;
    int keep_alive;
    int expect_continue;
    int http10;
    char request_id[65];       /* the client's, when chatd takes it; "" */
    char partial_id[65];       /* a broken request's X-Request-Id as far as it got */
    char other_partial_id[65]; /* ... read byte by byte */
} expected_t;

/* A CORS list rather than "*": the origin checks and echoes run too. */
static const char *const settings[] = {"MAX_HEADER_BYTES=1024", "MAX_BODY_BYTES=2048",
                                       "CORS_ORIGINS=https://app.example,http://localhost:3000",
                                       NULL};

static void fail(const char *what, const char *detail, const inproc_client_t *c) {
    fprintf(stderr, "http_request_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    if (c != NULL)
        fprintf(stderr, "server sent %zu bytes:\n%.*s\n", c->in.len,
                (int)(c->in.len > 4000 ? 4000 : c->in.len), c->in.data ? c->in.data : "");
    abort();
}

/* API.md: X-Request-Id is echoed when it is 1-64 of [A-Za-z0-9._-]. */
static int request_id_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static void expect_from(expected_t *e, http_rx_t *rx) {
    memset(e, 0, sizeof(*e));
    e->head = rx->method_known && rx->parser.method == HTTP_HEAD;
    e->expect_continue = rx->expect_continue != 0;
    e->http10 = rx->parser.http_major == 1 && rx->parser.http_minor == 0;
    const char *id = http_rx_header(rx, "X-Request-Id");
    if (id != NULL && request_id_valid(id))
        snprintf(e->request_id, sizeof(e->request_id), "%s", id);
    if (id != NULL)
        snprintf(e->partial_id, sizeof(e->partial_id), "%s", id);
}

/* Parses a request that fails one byte at a time. What a broken request
 * leaves depends on how its bytes were read, in two ways that are
 * http-parser's. It hands a header value over in pieces, at the end of each
 * read, but not the piece it is in when it fails: one byte per read keeps
 * the most of a header it fails in. And it counts a header value's bytes
 * against the head limit when it reaches the value's end or the end of a
 * read: one read may parse a few more headers past the limit before it
 * notices (one byte per read notices at the limit), and a head that is both
 * too long and malformed fails as 431 or as 400 depending on where the
 * reads end (a well-formed one over the limit is always 431). What the
 * connection keeps lies between the one-read and the byte-by-byte parses.
 * Returns the parse state at the failure. */
static http_rx_t *parse_bytewise(const char *data, size_t size, size_t max_body) {
    http_rx_t *rx = http_rx_new(max_body);
    if (rx == NULL)
        abort();
    for (size_t i = 0; i < size; i++) {
        size_t used;
        rx_result_t r = http_rx_feed(rx, data + i, 1, &used);
        if (r == RX_ERROR)
            break;
        if (r == RX_DONE)
            fail("a request that fails in one read succeeds byte by byte", NULL, NULL);
    }
    http_rx_end_partial(rx);
    return rx;
}

/* The answers the input asks for. *trailing_continue: the unfinished last
 * request asked for 100 Continue. */
static size_t expected_answers(const uint8_t *data, size_t size, expected_t *exp,
                               int *trailing_continue, int *capped) {
    size_t max_body = inproc_config()->max_body_bytes;
    size_t n = 0, pos = 0;
    *trailing_continue = *capped = 0;
    while (pos < size) {
        if (n == MAX_REQUESTS) {
            *capped = 1;
            break;
        }
        http_rx_t *rx = http_rx_new(max_body);
        if (rx == NULL)
            abort();
        size_t used;
        rx_result_t r = http_rx_feed(rx, (const char *)data + pos, size - pos, &used);
        if (r == RX_MORE) {
            *trailing_continue = rx->expect_continue != 0;
            http_rx_free(rx);
            break;
        }
        if (r == RX_ERROR) {
            /* What the connection keeps lies between the two readings. */
            http_rx_end_partial(rx);
            http_rx_t *bytewise = parse_bytewise((const char *)data + pos, size - pos, max_body);
            expected_t other;
            expect_from(&exp[n], rx);
            expect_from(&other, bytewise);
            exp[n].error_status = http_rx_error_status(rx);
            exp[n].other_status = http_rx_error_status(bytewise);
            exp[n].head |= other.head;
            exp[n].expect_continue |= other.expect_continue;
            memcpy(exp[n++].other_partial_id, other.partial_id, sizeof(other.partial_id));
            http_rx_free(rx);
            http_rx_free(bytewise);
            break;
        }
        expect_from(&exp[n], rx);
        exp[n].keep_alive = rx->keep_alive && !rx->upgrade;
        http_rx_free(rx);
        pos += used;
        if (!exp[n++].keep_alive)
            break;
    }
    return n;
}

static void check_answers(const inproc_client_t *c, const expected_t *exp, size_t n,
                          int trailing_continue, int capped) {
    static char ids[MAX_REQUESTS][17];
    size_t nids = 0, off = 0, i = 0;
    if (c->reset)
        fail("the server reset the connection", NULL, c);
    while (off < c->in.len) {
        http_response_t r;
        int head = i < n && exp[i].head;
        int rc = http_check_response(c->in.data + off, c->in.len - off, head, &r);
        /* A broken HEAD request read in one piece fails before its method is
         * known: then its error has a body. It is the last response. */
        if (head && i < n && exp[i].error_status != 0 && rc == 1 && r.length < c->in.len - off)
            rc = http_check_response(c->in.data + off, c->in.len - off, 0, &r);
        if (rc == 0)
            fail("a response cut short", NULL, c);
        if (rc < 0)
            fail("a malformed response", r.why, c);
        off += r.length;
        if (r.status == 100) {
            if (!(i < n ? exp[i].expect_continue : trailing_continue))
                fail("100 Continue to a request that did not ask for it", NULL, c);
            continue;
        }
        if (i == n) {
            if (capped)
                return;
            fail("a response to no request", NULL, c);
        }
        const expected_t *e = &exp[i++];
        char detail[160];
        if (r.status == 500)
            fail("an internal error from client input", NULL, c);
        if (e->error_status != 0 && r.status != e->error_status && r.status != e->other_status) {
            snprintf(detail, sizeof(detail), "expected %d or %d, got %d", e->error_status,
                     e->other_status, r.status);
            fail("a broken request got another answer", detail, c);
        }
        /* A broken request keeps as much of its last header as it had read
         * when it failed (parse_bytewise): a valid prefix of either reading. */
        size_t id_len = strlen(r.request_id);
        int echoed = e->request_id[0] != '\0' && strcmp(r.request_id, e->request_id) == 0;
        int partial = e->error_status != 0 && id_len > 0 && request_id_valid(r.request_id) &&
                      (strncmp(r.request_id, e->partial_id, id_len) == 0 ||
                       strncmp(r.request_id, e->other_partial_id, id_len) == 0);
        if (!echoed && !partial) {
            if (e->request_id[0] != '\0' && e->error_status == 0)
                fail("the client's X-Request-Id was not echoed in order", e->request_id, c);
            if (!http_check_generated_id(r.request_id))
                fail("a response without a valid X-Request-Id", r.request_id, c);
            for (size_t k = 0; k < nids; k++)
                if (strcmp(ids[k], r.request_id) == 0)
                    fail("the same generated X-Request-Id twice", r.request_id, c);
            memcpy(ids[nids++], r.request_id, 17);
        }
        if (r.status == 101)
            return; /* WebSocket frames from here on */
        if (r.connection_close != !e->keep_alive)
            fail(e->keep_alive ? "Connection: close on a connection kept alive"
                               : "no Connection: close on the last response",
                 NULL, c);
        if (e->keep_alive && e->http10 && !r.keep_alive)
            fail("no Connection: keep-alive for an HTTP/1.0 client that asked", NULL, c);
    }
    if (i != n && !capped)
        fail("a complete request got no answer", NULL, c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    inproc_start(settings);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static expected_t exp[MAX_REQUESTS];
    int trailing_continue, capped;
    size_t n = expected_answers(data, size, exp, &trailing_continue, &capped);
    inproc_client_t c;
    inproc_connect(&c);
    /* One write for a quarter of the inputs, else two to four, cut and paced
     * as the input's hash says: the same requests read in pieces. */
    uint64_t h = inproc_hash(data, size);
    inproc_send_pieces(&c, data, size, 1 + (int)(h % 4), h >> 2);
    inproc_finish(&c);
    check_answers(&c, exp, n, trailing_continue, capped);
    inproc_client_free(&c);
    return 0;
}
