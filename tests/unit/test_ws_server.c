/* WebSocket connections end to end, in process: the server with an echo
 * route and a broadcast route, spoken to over raw sockets with masked
 * frames. Every wait has a deadline (poll with a timeout); nothing sleeps
 * and hopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"
#include "net/server.h"
#include "net/ws.h"
#include "net/ws_frame.h"
#include "support/net_client.h"
#include "support/test_server.h"
#include "support/ws_client_frame.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char rfc_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char rfc_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* ---- handlers ---------------------------------------------------------- */

static atomic_int ws_opened;
static atomic_int ws_closed;
static atomic_int in_flight;   /* deferred echoes not yet sent */
static atomic_int ready_calls; /* shutdown_ready consulted */

static void echo_on_closed(ws_conn_t *ws) {
    (void)ws;
    atomic_fetch_add(&ws_closed, 1);
}

/* A reply that comes back through the loop's inbox from another thread,
 * the way a stored message does. */
typedef struct {
    inbox_item_t item;
    inbox_t *inbox;
    ws_conn_t *ws;
    size_t len;
    char text[64];
} later_t;

static void later_run(inbox_item_t *item) {
    later_t *later = (later_t *)item;
    ws_conn_send_text(later->ws, later->text, later->len);
    free(later);
    atomic_fetch_sub(&in_flight, 1);
}

static void *later_thread(void *arg) {
    later_t *later = arg;
    poll(NULL, 0, 200); /* the store at work */
    inbox_post(later->inbox, &later->item);
    return NULL;
}

static void echo_later(ws_conn_t *ws, const char *text, size_t len) {
    later_t *later = calloc(1, sizeof(*later));
    assert_non_null(later);
    assert_true(len < sizeof(later->text));
    later->item.run = later_run;
    later->inbox = ws_conn_user(ws);
    later->ws = ws;
    later->len = len;
    memcpy(later->text, text, len);
    atomic_fetch_add(&in_flight, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, later_thread, later), 0);
    pthread_detach(th);
}

/* Echoes each message; "close-me" closes with 4000, "later:x" echoes x
 * after a trip through another thread. */
static void echo_on_text(ws_conn_t *ws, char *data, size_t len) {
    if (len == 8 && memcmp(data, "close-me", 8) == 0) {
        ws_conn_close(ws, 4000, "bye");
        assert_int_equal(ws_conn_send_text(ws, "late", 4), -1);
        return;
    }
    if (len > 6 && memcmp(data, "later:", 6) == 0) {
        echo_later(ws, data + 6, len - 6);
        return;
    }
    ws_conn_send_text(ws, data, len);
}

static const ws_handlers_t echo_handlers = {echo_on_text, echo_on_closed};

static void h_ws_echo(http_request_t *req) {
    if (req->params[0] == 404) {
        http_respond_error(req, 404, "not_found", "no such room");
        return;
    }
    assert_true(req->route_flags & ROUTE_WEBSOCKET);
    int loop_index = req->loop_index; /* req is gone after the upgrade */
    ws_conn_t *ws = http_upgrade_websocket(req, &echo_handlers, req->inbox);
    if (ws != NULL) {
        assert_int_equal(ws_conn_loop_index(ws), loop_index);
        atomic_fetch_add(&ws_opened, 1);
    }
}

/* Upgrades only after a while, as a handler that looks the room up first. */
static atomic_int slow_started;
static atomic_int slow_refused;

typedef struct {
    uv_timer_t timer;
    http_request_t *req;
} slow_upgrade_t;

static void on_slow_upgrade_closed(uv_handle_t *handle) {
    free(handle->data);
}

static void on_slow_upgrade(uv_timer_t *timer) {
    slow_upgrade_t *slow = timer->data;
    ws_conn_t *ws = http_upgrade_websocket(slow->req, &echo_handlers, slow->req->inbox);
    if (ws != NULL)
        atomic_fetch_add(&ws_opened, 1);
    else
        atomic_fetch_add(&slow_refused, 1);
    uv_close((uv_handle_t *)&slow->timer, on_slow_upgrade_closed);
}

static void h_ws_slow(http_request_t *req) {
    slow_upgrade_t *slow = calloc(1, sizeof(*slow));
    assert_non_null(slow);
    slow->req = req;
    uv_timer_init(req->loop, &slow->timer);
    slow->timer.data = slow;
    uv_timer_start(&slow->timer, on_slow_upgrade, 300, 0);
    atomic_fetch_add(&slow_started, 1);
}

/* The broadcast room: loop 0's connections (room tests run one loop). */
#define ROOM_MAX 16
static ws_conn_t *room[ROOM_MAX];

static void room_on_text(ws_conn_t *ws, char *data, size_t len) {
    (void)ws;
    shared_buf_t *frame = ws_frame_text_buf(data, len);
    assert_non_null(frame);
    for (int i = 0; i < ROOM_MAX; i++) {
        if (room[i] != NULL)
            ws_conn_send_frame(room[i], frame);
    }
    shared_buf_unref(frame);
}

static void room_on_closed(ws_conn_t *ws) {
    for (int i = 0; i < ROOM_MAX; i++) {
        if (room[i] == ws)
            room[i] = NULL;
    }
    atomic_fetch_add(&ws_closed, 1);
}

static const ws_handlers_t room_handlers = {room_on_text, room_on_closed};

static void h_ws_room(http_request_t *req) {
    ws_conn_t *ws = http_upgrade_websocket(req, &room_handlers, NULL);
    if (ws == NULL)
        return;
    atomic_fetch_add(&ws_opened, 1);
    for (int i = 0; i < ROOM_MAX; i++) {
        if (room[i] == NULL) {
            room[i] = ws;
            return;
        }
    }
    ws_conn_close(ws, 1013, "room full");
}

static void h_hello(http_request_t *req) {
    static const char body[] = "{\"hello\":\"world\"}";
    assert_int_equal(req->route_flags, 0);
    http_respond_json(req, 200, body, sizeof(body) - 1);
}

static int fake_authenticate(http_request_t *req) {
    const char *auth = http_request_header(req, "Authorization");
    char token[16];
    int ok =
        (auth != NULL && strcmp(auth, "Bearer good") == 0) ||
        (http_request_query(req, "token", token, sizeof(token)) >= 0 && strcmp(token, "good") == 0);
    if (!ok) {
        http_respond_error(req, 401, "missing_token", "missing or invalid token");
        return -1;
    }
    req->auth.user_id = 7;
    return 0;
}

static int test_shutdown_ready(void *app) {
    (void)app;
    atomic_fetch_add(&ready_calls, 1);
    return atomic_load(&in_flight) == 0;
}

static const route_t test_routes[] = {
    {"GET", "/ws/echo/:id", h_ws_echo, ROUTE_WEBSOCKET},
    {"GET", "/ws/room", h_ws_room, ROUTE_WEBSOCKET},
    {"GET", "/ws/slow", h_ws_slow, ROUTE_WEBSOCKET},
    {"GET", "/hello", h_hello, 0},
};

/* ---- the server under test ---------------------------------------------- */

static test_server_t srv;

static void start_server(void) {
    server_options_t opts = {.cfg = &srv.cfg,
                             .routes = test_routes,
                             .route_count = sizeof(test_routes) / sizeof(test_routes[0]),
                             .authenticate = fake_authenticate,
                             .shutdown_ready = test_shutdown_ready};
    test_server_start(&srv, &opts);
}

static void join_server(void) {
    test_server_join(&srv);
    /* on_closed ran exactly once for every upgraded connection. */
    assert_int_equal(atomic_load(&ws_closed), atomic_load(&ws_opened));
}

/* SIGTERM, then server_run must return 0 within the deadline. */
static void stop_server(void) {
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    join_server();
}

static int setup(void **state) {
    (void)state;
    test_server_config(&srv.cfg);
    memset(room, 0, sizeof(room));
    return 0;
}

/* ---- a raw client -------------------------------------------------------- */

typedef struct {
    int fin;
    int opcode;
    size_t len;
    uint8_t *payload; /* valid until the next frame is read */
} frame_t;

static uint8_t frame_payload[262144];

/* rcvbuf > 0 shrinks the socket's receive buffer (a slow reader). */
static client_t *client_open_rcvbuf(int rcvbuf) {
    return client_open_nodelay(srv.cfg.port, rcvbuf);
}

static client_t *client_open(void) {
    return client_open_rcvbuf(0);
}

/* Reads one HTTP response; what follows it stays in the client's buffer. */
static void client_read_response(client_t *c, response_t *r) {
    if (client_read(c, r, 0) != 0)
        fail_msg("no response");
}

/* A client frame, masked unless masked == 0; returns its size. */
static size_t build_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                          int masked) {
    static const uint8_t mask[4] = {0x11, 0x8f, 0x42, 0xd3};
    return ws_client_frame(out, fin, opcode, payload, len, masked ? mask : NULL);
}

static void ws_send_frame(client_t *c, int fin, int opcode, const void *payload, size_t len) {
    uint8_t *frame = test_malloc(len + 14);
    size_t n = build_frame(frame, fin, opcode, payload, len, 1);
    client_send(c, frame, n);
    test_free(frame);
}

static void ws_send_text(client_t *c, const char *text) {
    ws_send_frame(c, 1, WS_OP_TEXT, text, strlen(text));
}

/* Reads one server frame: 1, 0 at EOF, -1 at the deadline. */
static int ws_read_frame(client_t *c, frame_t *f, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        const uint8_t *b = (const uint8_t *)c->buf;
        if (c->len >= 2) {
            assert_int_equal(b[1] & 0x80, 0); /* servers do not mask */
            size_t head = 2;
            uint64_t len = b[1] & 0x7F;
            if (len == 126) {
                head = 4;
                len = c->len >= 4 ? ((uint64_t)b[2] << 8) | b[3] : 0;
            } else if (len == 127) {
                head = 10;
                len = 0;
                for (int i = 0; i < 8 && c->len >= 10; i++)
                    len = (len << 8) | b[2 + i];
            }
            assert_true(len <= sizeof(frame_payload));
            if (c->len >= head && c->len >= head + len) {
                f->fin = b[0] >> 7;
                f->opcode = b[0] & 0x0F;
                f->len = (size_t)len;
                memcpy(frame_payload, b + head, (size_t)len);
                f->payload = frame_payload;
                memmove(c->buf, c->buf + head + len, c->len - head - len);
                c->len -= head + len;
                return 1;
            }
        }
        int n = client_fill(c, deadline);
        if (n <= 0)
            return n;
    }
}

/* The next frame that is not a ping. */
static void ws_expect_frame(client_t *c, frame_t *f) {
    for (;;) {
        int rc = ws_read_frame(c, f, WAIT_MS);
        if (rc != 1)
            fail_msg("no frame (%s)", rc == 0 ? "EOF" : "timeout");
        if (f->opcode != WS_OP_PING)
            return;
    }
}

static void ws_expect_text(client_t *c, const char *text) {
    frame_t f;
    ws_expect_frame(c, &f);
    assert_int_equal(f.opcode, WS_OP_TEXT);
    assert_true(f.fin);
    assert_int_equal(f.len, strlen(text));
    assert_memory_equal(f.payload, text, f.len);
}

static int close_code(const frame_t *f) {
    return f->len >= 2 ? (f->payload[0] << 8) | f->payload[1] : -1;
}

/* Expects a close frame with code (skipping pings), optionally answers it,
 * then expects the server to close the TCP connection. */
static void ws_expect_close(client_t *c, int code, int answer) {
    frame_t f;
    ws_expect_frame(c, &f);
    if (f.opcode != WS_OP_CLOSE)
        fail_msg("expected a close frame, got opcode %d", f.opcode);
    assert_int_equal(close_code(&f), code);
    if (answer)
        ws_send_frame(c, 1, WS_OP_CLOSE, f.payload, 2);
    assert_true(client_sees_close(c, WAIT_MS));
}

/* Sends an upgrade request for path with extra header lines. */
static void send_upgrade(client_t *c, const char *path, const char *extra) {
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, rfc_key, extra);
    client_send(c, req, (size_t)n);
}

static client_t *ws_connect_with(const char *path, const char *extra, int rcvbuf) {
    client_t *c = client_open_rcvbuf(rcvbuf);
    send_upgrade(c, path, extra);
    response_t r;
    client_read_response(c, &r);
    if (r.status != 101)
        fail_msg("upgrade answered %d: %s", r.status, r.body);
    return c;
}

static client_t *ws_connect(const char *path) {
    return ws_connect_with(path, "Authorization: Bearer good\r\n", 0);
}

/* Sends an upgrade request that must be refused with status. */
static void expect_refusal(const char *raw, int status, const char *code, response_t *r) {
    client_t *c = client_open();
    client_send(c, raw, strlen(raw));
    client_read_response(c, r);
    assert_int_equal(r->status, status);
    if (code != NULL) {
        char expected[64];
        snprintf(expected, sizeof(expected), "\"code\":\"%s\"", code);
        if (strstr(r->body, expected) == NULL)
            fail_msg("expected %s in %s", expected, r->body);
    }
    assert_header(r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
}

static long long metric(const char *name) {
    buf_t out = BUF_INIT;
    assert_int_equal(server_metrics_render(&out), 0);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(out.data, key);
    long long value = p != NULL ? atoll(p + strlen(key)) : -1;
    buf_free(&out);
    return value;
}

static int wait_for_metric(const char *name, long long value) {
    int64_t deadline = now_ms() + WAIT_MS;
    while (metric(name) != value) {
        if (now_ms() > deadline)
            return 0;
        poll(NULL, 0, 5);
    }
    return 1;
}

/* ---- tests --------------------------------------------------------------- */

#define UPGRADE_HEAD                                                                               \
    "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer good\r\n"

static void test_handshake(void **state) {
    (void)state;
    start_server();
    /* RFC 6455's example key; permessage-deflate offered and declined. */
    client_t *c = client_open();
    send_upgrade(c, "/ws/echo/1",
                 "Authorization: Bearer good\r\nX-Request-Id: up-1\r\n"
                 "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    response_t r;
    client_read_response(c, &r);
    assert_int_equal(r.status, 101);
    assert_non_null(strstr(r.head, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_header(&r, "Upgrade", "websocket");
    assert_header(&r, "Connection", "Upgrade");
    assert_header(&r, "Sec-WebSocket-Accept", rfc_accept);
    assert_header(&r, "X-Request-Id", "up-1");
    char value[64];
    assert_null(find_header(&r, "Sec-WebSocket-Extensions", value, sizeof(value)));
    assert_null(find_header(&r, "Content-Length", value, sizeof(value)));
    ws_send_text(c, "hi");
    ws_expect_text(c, "hi");
    client_close(c);

    /* The token may come in the query. */
    c = ws_connect_with("/ws/echo/2?token=good", "", 0);
    ws_send_text(c, "q");
    ws_expect_text(c, "q");
    client_close(c);

    expect_refusal("GET /ws/echo/1 HTTP/1.1\r\n" UPGRADE_HEAD "Sec-WebSocket-Key: " //
                   "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
                   426, "upgrade_required", &r);
    assert_header(&r, "Sec-WebSocket-Version", "13");
    expect_refusal("GET /ws/echo/1 HTTP/1.1\r\n" UPGRADE_HEAD
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   426, "upgrade_required", &r);
    /* Not a handshake at all: an ordinary answer on a kept-alive connection. */
    c = client_open();
    static const char plain[] = "GET /ws/echo/1 HTTP/1.1\r\nHost: x\r\n\r\n";
    client_send(c, plain, sizeof(plain) - 1);
    client_read_response(c, &r);
    assert_int_equal(r.status, 426);
    assert_non_null(strstr(r.body, "\"code\":\"upgrade_required\""));
    assert_header(&r, "Upgrade", "websocket");
    client_close(c);
    expect_refusal("GET /ws/echo/1 HTTP/1.1\r\n" UPGRADE_HEAD
                   "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   400, "bad_request", &r);
    expect_refusal("GET /ws/echo/1 HTTP/1.1\r\n" UPGRADE_HEAD "Sec-WebSocket-Version: 13\r\n\r\n",
                   400, "bad_request", &r);
    /* Authentication, then the handler's own checks, before any upgrade. */
    expect_refusal("GET /ws/echo/1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   401, "missing_token", &r);
    expect_refusal("GET /ws/echo/404 HTTP/1.1\r\n" UPGRADE_HEAD
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   404, "not_found", &r);
    /* Plain HTTP still works beside. */
    c = client_open();
    static const char hello[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    client_send(c, hello, sizeof(hello) - 1);
    client_read_response(c, &r);
    assert_int_equal(r.status, 200);
    client_close(c);
    stop_server();
}

static void test_origin_list(void **state) {
    (void)state;
    srv.cfg.cors_any = 0;
    srv.cfg.cors_origin_count = 1;
    snprintf(srv.cfg.cors_origins[0], sizeof(srv.cfg.cors_origins[0]), "https://good.example");
    start_server();
    response_t r;
    expect_refusal("GET /ws/echo/1 HTTP/1.1\r\n" UPGRADE_HEAD
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n",
                   403, "forbidden", &r);
    client_t *c = ws_connect_with(
        "/ws/echo/1", "Authorization: Bearer good\r\nOrigin: https://good.example\r\n", 0);
    ws_send_text(c, "ok");
    ws_expect_text(c, "ok");
    client_close(c);
    c = ws_connect("/ws/echo/1"); /* no Origin: not a browser */
    ws_send_text(c, "ok");
    ws_expect_text(c, "ok");
    client_close(c);
    stop_server();
}

static void test_echo(void **state) {
    (void)state;
    srv.cfg.max_message_bytes = 100000;
    start_server();
    client_t *c = ws_connect("/ws/echo/1");
    ws_send_text(c, "Hello");
    ws_expect_text(c, "Hello");
    ws_send_text(c, "");
    ws_expect_text(c, "");

    /* Several frames in one write, then one frame a byte at a time. */
    uint8_t buf[512];
    size_t n = build_frame(buf, 1, WS_OP_TEXT, "one", 3, 1);
    n += build_frame(buf + n, 1, WS_OP_TEXT, "two", 3, 1);
    n += build_frame(buf + n, 1, WS_OP_TEXT, "thr\xc3\xa9\xc3\xa9", 7, 1);
    client_send(c, buf, n);
    ws_expect_text(c, "one");
    ws_expect_text(c, "two");
    ws_expect_text(c, "thr\xc3\xa9\xc3\xa9");
    /* More frames at once than one writev takes (IOV_MAX): all echoed, in order. */
    enum { BURST = 1500 };
    uint8_t *burst = test_malloc(BURST * 16);
    size_t burst_len = 0;
    for (int i = 0; i < BURST; i++) {
        char text[16];
        int len = snprintf(text, sizeof(text), "b%d", i);
        burst_len += build_frame(burst + burst_len, 1, WS_OP_TEXT, text, (size_t)len, 1);
    }
    client_send(c, burst, burst_len);
    test_free(burst);
    for (int i = 0; i < BURST; i++) {
        char text[16];
        snprintf(text, sizeof(text), "b%d", i);
        ws_expect_text(c, text);
    }
    n = build_frame(buf, 1, WS_OP_TEXT, "slowly", 6, 1);
    for (size_t i = 0; i < n; i++)
        client_send(c, buf + i, 1);
    ws_expect_text(c, "slowly");

    /* 16-bit and 64-bit lengths, both ways. */
    size_t sizes[] = {300, 70000};
    for (int k = 0; k < 2; k++) {
        char *big = test_malloc(sizes[k] + 1);
        for (size_t i = 0; i < sizes[k]; i++)
            big[i] = (char)('a' + i % 26);
        big[sizes[k]] = '\0';
        ws_send_text(c, big);
        ws_expect_text(c, big);
        test_free(big);
    }
    client_close(c);
    stop_server();
}

static void test_fragments_and_ping(void **state) {
    (void)state;
    start_server();
    client_t *c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 0, WS_OP_TEXT, "Hel", 3);
    ws_send_frame(c, 1, WS_OP_PING, "p1", 2); /* a control frame between fragments */
    ws_send_frame(c, 0, WS_OP_CONTINUATION, "lo ", 3);
    ws_send_frame(c, 1, WS_OP_CONTINUATION, "world", 5);
    frame_t f;
    assert_int_equal(ws_read_frame(c, &f, WAIT_MS), 1);
    assert_int_equal(f.opcode, WS_OP_PONG);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.payload, "p1", 2);
    ws_expect_text(c, "Hello world");

    char payload[125];
    memset(payload, 'x', sizeof(payload));
    ws_send_frame(c, 1, WS_OP_PING, payload, sizeof(payload));
    assert_int_equal(ws_read_frame(c, &f, WAIT_MS), 1);
    assert_int_equal(f.opcode, WS_OP_PONG);
    assert_int_equal(f.len, sizeof(payload));
    assert_memory_equal(f.payload, payload, sizeof(payload));
    /* An unsolicited pong is fine. */
    ws_send_frame(c, 1, WS_OP_PONG, "", 0);
    ws_send_text(c, "after");
    ws_expect_text(c, "after");
    client_close(c);
    stop_server();
}

static void test_close_handshake(void **state) {
    (void)state;
    start_server();
    /* The client closes: its code is echoed, then the server closes TCP. */
    client_t *c = ws_connect("/ws/echo/1");
    uint8_t close_payload[] = {0x03, 0xE8, 'b', 'y', 'e'};
    ws_send_frame(c, 1, WS_OP_CLOSE, close_payload, sizeof(close_payload));
    ws_expect_close(c, 1000, 0);
    client_close(c);

    c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 1, WS_OP_CLOSE, "", 0);
    ws_expect_close(c, 1000, 0);
    client_close(c);

    c = ws_connect("/ws/echo/1");
    uint8_t going[] = {0x0F, 0xA0}; /* 4000 */
    ws_send_frame(c, 1, WS_OP_CLOSE, going, sizeof(going));
    ws_expect_close(c, 4000, 0);
    client_close(c);

    /* The application closes: its frame, then TCP once the client answers. */
    c = ws_connect("/ws/echo/1");
    ws_send_text(c, "close-me");
    frame_t f;
    ws_expect_frame(c, &f);
    assert_int_equal(f.opcode, WS_OP_CLOSE);
    assert_int_equal(close_code(&f), 4000);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload + 2, "bye", 3);
    ws_send_frame(c, 1, WS_OP_CLOSE, f.payload, 2);
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);

    /* A client that just goes away. */
    c = ws_connect("/ws/echo/1");
    client_close(c);
    assert_true(wait_for_metric("chatd_websocket_connections", 0));
    stop_server();
}

static void test_protocol_errors(void **state) {
    (void)state;
    srv.cfg.max_message_bytes = 64;
    start_server();
    client_t *c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 1, WS_OP_BINARY, "\x01\x02", 2);
    ws_expect_close(c, 1003, 0);
    client_close(c);

    c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 1, WS_OP_TEXT, "ok\xff\xfe", 4);
    ws_expect_close(c, 1007, 0);
    client_close(c);

    char big[100];
    memset(big, 'a', sizeof(big));
    c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 1, WS_OP_TEXT, big, 64); /* exactly the limit passes */
    frame_t f;
    ws_expect_frame(c, &f);
    assert_int_equal(f.len, 64);
    ws_send_frame(c, 1, WS_OP_TEXT, big, sizeof(big));
    ws_expect_close(c, 1009, 1);
    client_close(c);

    /* Too big once reassembled. */
    c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 0, WS_OP_TEXT, big, 40);
    ws_send_frame(c, 1, WS_OP_CONTINUATION, big, 40);
    ws_expect_close(c, 1009, 0);
    client_close(c);

    c = ws_connect("/ws/echo/1");
    uint8_t raw[16];
    size_t n = build_frame(raw, 1, WS_OP_TEXT, "bare", 4, 0);
    client_send(c, raw, n);
    ws_expect_close(c, 1002, 0);
    client_close(c);

    /* A continuation with nothing to continue. */
    c = ws_connect("/ws/echo/1");
    ws_send_frame(c, 1, WS_OP_CONTINUATION, "x", 1);
    ws_expect_close(c, 1002, 0);
    client_close(c);
    stop_server();
}

/* A frame sent in the same write as the upgrade request is processed. */
static void test_pipelined_frame(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws/echo/1 HTTP/1.1\r\n" UPGRADE_HEAD
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     rfc_key);
    n += (int)build_frame((uint8_t *)req + n, 1, WS_OP_TEXT, "early", 5, 1);
    n += (int)build_frame((uint8_t *)req + n, 1, WS_OP_PING, "pp", 2, 1);
    client_send(c, req, (size_t)n);
    response_t r;
    client_read_response(c, &r);
    assert_int_equal(r.status, 101);
    ws_expect_text(c, "early");
    frame_t f;
    assert_int_equal(ws_read_frame(c, &f, WAIT_MS), 1);
    assert_int_equal(f.opcode, WS_OP_PONG);
    ws_send_text(c, "then");
    ws_expect_text(c, "then");
    client_close(c);
    stop_server();
}

static void test_ping_timeout(void **state) {
    (void)state;
    srv.cfg.ws_ping_interval_ms = 100;
    srv.cfg.ws_ping_timeout_ms = 300;
    start_server();
    client_t *silent = ws_connect("/ws/echo/1");
    client_t *chatty = ws_connect("/ws/echo/2");
    int pings_seen = 0;
    int chatty_pongs = 0;
    int closed_with = -1;
    int64_t deadline = now_ms() + WAIT_MS;
    /* The chatty client answers every ping; the silent one never speaks. */
    while (closed_with < 0 && now_ms() < deadline) {
        frame_t f;
        if (ws_read_frame(chatty, &f, 5) == 1 && f.opcode == WS_OP_PING) {
            ws_send_frame(chatty, 1, WS_OP_PONG, f.payload, f.len);
            chatty_pongs++;
        }
        int rc = ws_read_frame(silent, &f, 5);
        if (rc == 0)
            fail_msg("EOF before any close frame");
        if (rc == 1 && f.opcode == WS_OP_PING)
            pings_seen++;
        else if (rc == 1 && f.opcode == WS_OP_CLOSE)
            closed_with = close_code(&f);
    }
    assert_int_equal(closed_with, 1001);
    assert_true(pings_seen >= 1);
    assert_true(chatty_pongs >= 1);
    assert_true(client_sees_close(silent, WAIT_MS));
    /* The chatty one is still served. */
    ws_send_text(chatty, "still here");
    ws_expect_text(chatty, "still here");
    client_close(chatty);
    client_close(silent);
    stop_server();
}

#define SLOW_MESSAGE_BYTES 4000

static void make_message(char *out, int seq) {
    memset(out, '.', SLOW_MESSAGE_BYTES);
    int n = snprintf(out, 16, "m%08d", seq);
    out[n] = '-';
    out[SLOW_MESSAGE_BYTES] = '\0';
}

static int message_seq(const frame_t *f) {
    assert_int_equal(f->opcode, WS_OP_TEXT);
    assert_int_equal(f->len, SLOW_MESSAGE_BYTES);
    assert_int_equal(f->payload[0], 'm');
    return atoi((const char *)f->payload + 1);
}

static void test_slow_consumer(void **state) {
    (void)state;
    srv.cfg.threads = 1;
    srv.cfg.ws_outbound_limit_bytes = 64 * 1024;
    start_server();
    long long slow_before = metric("chatd_websocket_slow_consumers_closed_total");
    long long frames_before = metric("chatd_websocket_frames_sent_total");
    client_t *slow = ws_connect_with("/ws/room", "Authorization: Bearer good\r\n", 4096);
    client_t *fast = ws_connect("/ws/room");
    assert_true(wait_for_metric("chatd_websocket_connections", 2));
    /* The fast client posts and reads every broadcast, its own included,
     * until the slow one's backlog passes the limit. */
    char *message = test_malloc(SLOW_MESSAGE_BYTES + 1);
    int sent = 0;
    while (metric("chatd_websocket_slow_consumers_closed_total") == slow_before) {
        if (sent == 20000)
            fail_msg("the slow consumer was never closed");
        for (int k = 0; k < 8; k++) {
            make_message(message, sent + k);
            ws_send_text(fast, message);
        }
        for (int k = 0; k < 8; k++) {
            frame_t f;
            ws_expect_frame(fast, &f);
            assert_int_equal(message_seq(&f), sent + k);
        }
        sent += 8;
    }
    /* The rest of the room is unaffected. */
    for (int k = 0; k < 8; k++) {
        make_message(message, sent + k);
        ws_send_text(fast, message);
        frame_t f;
        ws_expect_frame(fast, &f);
        assert_int_equal(message_seq(&f), sent + k);
    }
    sent += 8;
    /* The slow one gets a gapless prefix, its 1013, and the end. */
    int next = 0;
    for (;;) {
        frame_t f;
        int rc = ws_read_frame(slow, &f, WAIT_MS);
        if (rc != 1)
            fail_msg("no close frame after message %d (%s)", next, rc == 0 ? "EOF" : "timeout");
        if (f.opcode == WS_OP_CLOSE) {
            assert_int_equal(close_code(&f), 1013);
            break;
        }
        assert_int_equal(message_seq(&f), next);
        next++;
    }
    assert_true(next > 0 && next < sent);
    assert_true(client_sees_close(slow, WAIT_MS));
    assert_true(wait_for_metric("chatd_websocket_connections", 1));
    assert_int_equal(metric("chatd_websocket_slow_consumers_closed_total"), slow_before + 1);
    assert_true(metric("chatd_websocket_frames_sent_total") >= frames_before + sent + next);
    test_free(message);
    client_close(slow);
    client_close(fast);
    stop_server();
}

/* SIGTERM: a message accepted before it is answered first, then every
 * socket gets 1001, and server_run returns 0. */
static void test_shutdown(void **state) {
    (void)state;
    start_server();
    int calls_before = atomic_load(&ready_calls);
    client_t *a = ws_connect("/ws/echo/1");
    client_t *b = ws_connect("/ws/echo/2");
    client_t *room_client = ws_connect("/ws/room");
    ws_send_text(a, "later:stored");
    int64_t deadline = now_ms() + WAIT_MS;
    while (atomic_load(&in_flight) == 0) {
        if (now_ms() > deadline)
            fail_msg("the message never reached the server");
        poll(NULL, 0, 2);
    }
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    ws_expect_text(a, "stored");
    ws_expect_close(a, 1001, 1);
    ws_expect_close(b, 1001, 1);
    ws_expect_close(room_client, 1001, 0); /* no answer: the grace time ends it */
    join_server();
    assert_true(atomic_load(&ready_calls) > calls_before);
    client_close(a);
    client_close(b);
    client_close(room_client);
}

/* A handler that upgrades once shutdown has begun gets a 503 instead. */
static void test_upgrade_during_shutdown(void **state) {
    (void)state;
    start_server();
    int started = atomic_load(&slow_started);
    int refused = atomic_load(&slow_refused);
    client_t *c = client_open();
    send_upgrade(c, "/ws/slow", "Authorization: Bearer good\r\n");
    int64_t deadline = now_ms() + WAIT_MS;
    while (atomic_load(&slow_started) == started) {
        if (now_ms() > deadline)
            fail_msg("the handler never started");
        poll(NULL, 0, 2);
    }
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    response_t r;
    client_read_response(c, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"unavailable\""));
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    join_server();
    assert_int_equal(atomic_load(&slow_refused), refused + 1);
    client_close(c);
}

static void test_metrics(void **state) {
    (void)state;
    start_server();
    long long frames_before = metric("chatd_websocket_frames_sent_total");
    client_t *c = ws_connect("/ws/echo/1");
    ws_send_text(c, "m");
    ws_expect_text(c, "m");
    buf_t out = BUF_INIT;
    assert_int_equal(server_metrics_render(&out), 0);
    assert_non_null(strstr(out.data, "# TYPE chatd_websocket_connections gauge\n"
                                     "chatd_websocket_connections 1\n"));
    assert_non_null(
        strstr(out.data, "# TYPE chatd_websocket_slow_consumers_closed_total counter\n"));
    assert_non_null(strstr(out.data, "# TYPE chatd_websocket_frames_sent_total counter\n"));
    assert_non_null(strstr(out.data, "chatd_http_requests_total{route=\"/ws/echo/:id\","
                                     "method=\"GET\",status=\"101\"}"));
    buf_free(&out);
    assert_true(wait_for_metric("chatd_websocket_frames_sent_total", frames_before + 1));
    client_close(c);
    assert_true(wait_for_metric("chatd_websocket_connections", 0));
    stop_server();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    log_configure(LOG_ERROR, LOG_FORMAT_JSON);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_handshake, setup),
        cmocka_unit_test_setup(test_origin_list, setup),
        cmocka_unit_test_setup(test_echo, setup),
        cmocka_unit_test_setup(test_fragments_and_ping, setup),
        cmocka_unit_test_setup(test_close_handshake, setup),
        cmocka_unit_test_setup(test_protocol_errors, setup),
        cmocka_unit_test_setup(test_pipelined_frame, setup),
        cmocka_unit_test_setup(test_ping_timeout, setup),
        cmocka_unit_test_setup(test_slow_consumer, setup),
        cmocka_unit_test_setup(test_shutdown, setup),
        cmocka_unit_test_setup(test_upgrade_during_shutdown, setup),
        cmocka_unit_test_setup(test_metrics, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
