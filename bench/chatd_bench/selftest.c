/* --selftest: the handshake, frame, scanner and histogram code against known
 * answers, and the read path fed a stream of frames cut at random places. */
#include "bench.h"
#include "scan.h"
#include "ws.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "selftest: %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_handshake(void) {
    char accept[WS_ACCEPT_LEN + 1], key[WS_KEY_LEN + 1], key2[WS_KEY_LEN + 1];
    /* RFC 6455 section 1.3 */
    CHECK(ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", accept) == 0);
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK(ws_make_key(key) == 0 && ws_make_key(key2) == 0);
    CHECK(strlen(key) == WS_KEY_LEN && strcmp(key, key2) != 0);

    char req[512];
    int n = ws_format_request(req, sizeof(req), "127.0.0.1:3000", "/ws/7", "tok", key);
    CHECK(n > 0 && strstr(req, "GET /ws/7?token=tok HTTP/1.1\r\n") == req);
    CHECK(strstr(req, "Sec-WebSocket-Version: 13\r\n") != NULL);
    CHECK(ws_format_request(req, 16, "h", "/ws/7", "tok", key) == -1);

    const char *key0 = "dGhlIHNhbXBsZSBub25jZQ==";
    char ok[] =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
        "Connection: Upgrade\r\nsec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n";
    char bad[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOX=\r\n\r\n";
    char denied[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    int status;
    CHECK(ws_head_length((uint8_t *)ok, strlen(ok)) == strlen(ok));
    CHECK(ws_head_length((uint8_t *)ok, strlen(ok) - 1) == 0);
    CHECK(ws_check_response((uint8_t *)ok, strlen(ok), key0, &status) == 0 && status == 101);
    CHECK(ws_check_response((uint8_t *)bad, strlen(bad), key0, &status) == -1);
    CHECK(ws_check_response((uint8_t *)denied, strlen(denied), key0, &status) == -1 &&
          status == 401);
}

static void test_frames(void) {
    uint8_t hdr[WS_MAX_HEADER], mask[4] = {1, 2, 3, 4};
    uint64_t lens[] = {0, 125, 126, 65535, 65536, 1u << 20};
    size_t hls[] = {6, 6, 8, 8, 14, 14};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t hl = ws_frame_header(hdr, WS_OP_TEXT, lens[i], mask);
        CHECK(hl == hls[i]);
        CHECK(hdr[0] == 0x81 && (hdr[1] & 0x80));
        CHECK(memcmp(hdr + hl - 4, mask, 4) == 0);
        /* The same header unmasked parses back as a server frame would. */
        hdr[1] &= 0x7f;
        ws_frame_t f;
        CHECK(ws_parse_header(hdr, hl - 4, &f) == 1);
        CHECK(f.payload_len == lens[i] && f.header_len == hl - 4 && f.fin && f.opcode == 1);
        for (size_t cut = 0; cut < hl - 4; cut++)
            CHECK(ws_parse_header(hdr, cut, &f) == 0);
    }
    uint8_t text[] = "Hello", copy[6];
    memcpy(copy, text, 6);
    ws_apply_mask(copy, 5, mask, 0);
    CHECK(memcmp(copy, text, 5) != 0);
    ws_apply_mask(copy, 2, mask, 0);
    ws_apply_mask(copy + 2, 3, mask, 2);
    CHECK(memcmp(copy, text, 5) == 0);

    ws_frame_t f;
    uint8_t rsv[] = {0xC1, 0x00}, masked[] = {0x81, 0x80}, bigping[] = {0x89, 126, 0, 200},
            fragping[] = {0x09, 0x00}, badop[] = {0x83, 0x00};
    CHECK(ws_parse_header(rsv, 2, &f) == -1);
    CHECK(ws_parse_header(masked, 2, &f) == -1);
    CHECK(ws_parse_header(bigping, 4, &f) == -1);
    CHECK(ws_parse_header(fragping, 2, &f) == -1);
    CHECK(ws_parse_header(badop, 2, &f) == -1);
}

static void test_scan(void) {
    char content[256], event[512];
    size_t n = scan_format_content(content, sizeof(content), 123456789, 0xabc, 3, 42, 64);
    CHECK(n == 64 && content[n - 1] != ' ');
    char small[32];
    CHECK(scan_format_content(small, sizeof(small), 1, 1, 1, 1, 64) == 0);
    int len = snprintf(event, sizeof(event),
                       "{\"type\":\"message\",\"id\":991,\"sender_id\":4,\"room_id\":7,"
                       "\"content\":\"%s\",\"created_at\":\"2026-11-24T10:15:30.123Z\"}",
                       content);
    bench_event_t ev;
    CHECK(scan_event((uint8_t *)event, (size_t)len, 0xabc, &ev) == EV_MESSAGE);
    CHECK(ev.id == 991 && ev.room_id == 7 && ev.marked && ev.ts_ns == 123456789 && ev.pub == 3 &&
          ev.seq == 42);
    CHECK(scan_event((uint8_t *)event, (size_t)len, 0xabd, &ev) == EV_MESSAGE && !ev.marked);
    const char *other_order = "{\"type\":\"message\",\"room_id\":7,\"content\":\"#T5#1:0:9# x\","
                              "\"id\":12}";
    CHECK(scan_event((uint8_t *)other_order, strlen(other_order), 1, &ev) == EV_MESSAGE);
    CHECK(ev.id == 12 && ev.room_id == 7 && ev.marked && ev.ts_ns == 5 && ev.seq == 9);
    const char *presence = "{\"type\":\"presence\",\"room_id\":1,\"user_id\":2}";
    CHECK(scan_event((uint8_t *)presence, strlen(presence), 1, &ev) == EV_PRESENCE);
    const char *error = "{\"type\":\"error\",\"code\":\"unavailable\",\"error\":\"busy\"}";
    CHECK(scan_event((uint8_t *)error, strlen(error), 1, &ev) == EV_ERROR);
    CHECK(ev.code_len == 11 && memcmp(ev.code, "unavailable", 11) == 0);
    CHECK(scan_event((uint8_t *)"[1]", 3, 1, &ev) == EV_OTHER);
    /* A marker cut short must not count. */
    const char *cut = "{\"type\":\"message\",\"id\":1,\"room_id\":7,\"content\":\"#T5#1:0:9";
    CHECK(scan_event((uint8_t *)cut, strlen(cut), 1, &ev) == EV_MESSAGE && !ev.marked);
}

static void test_hist(void) {
    static hist_t h;
    hist_reset(&h);
    CHECK(hist_quantile(&h, 0.5) == 0);
    for (uint64_t us = 1; us <= 100000; us++)
        hist_record(&h, us * 1000);
    CHECK(h.count == 100000 && h.max == 100000000);
    double p50 = (double)hist_quantile(&h, 0.5), p99 = (double)hist_quantile(&h, 0.99);
    CHECK(p50 > 50e6 * 0.984 && p50 < 50e6 * 1.016);
    CHECK(p99 > 99e6 * 0.984 && p99 < 99e6 * 1.016);
    CHECK(hist_quantile(&h, 1.0) == 100000000);
    hist_reset(&h);
    for (uint64_t v = 0; v < 64; v++)
        hist_record(&h, v);
    CHECK(hist_quantile(&h, 0.5) == 32);
}

/* Appends one unmasked server frame. */
static size_t put_frame(uint8_t *out, int first_byte, const void *p, size_t n) {
    size_t o = 0;
    out[o++] = (uint8_t)first_byte;
    if (n < 126) {
        out[o++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        out[o++] = 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    } else {
        out[o++] = 127;
        for (int i = 7; i >= 0; i--)
            out[o++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memcpy(out + o, p, n);
    return o + n;
}

/* Messages 1..N plus pings, a fragmented message and a large one, written to
 * a socket in random pieces: every message must be counted once, in order. */
static void test_stream(void) {
    enum { N = 2000 };
    static bench_t b;
    static room_t room;
    static conn_t c;
    memset(&b, 0, sizeof(b));
    b.run = 0x5eed;
    b.opt.rooms = 1;
    b.opt.size = 64;
    b.rooms = &room;
    room.id = 7;
    room.nsubs = 1;
    b.conns = &c;
    b.nconns = 1;
    b.epfd = -1;
    b.t_meas0 = 0;
    b.t_meas1 = UINT64_MAX;
    b.rbuf = malloc(1u << 20);
    int sv[2];
    if (b.rbuf == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        CHECK(0);
        return;
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    c.fd = sv[0];
    c.state = CS_OPEN;
    c.was_ready = 1;
    c.role = ROLE_SUB;

    size_t cap = 16u << 20, len = 0;
    uint8_t *stream = malloc(cap);
    char *big = malloc(70000), content[128], event[70300];
    if (stream == NULL || big == NULL) {
        CHECK(0);
        return;
    }
    for (int id = 1; id <= N; id++) {
        const char *body = content;
        scan_format_content(content, sizeof(content), 1000, b.run, 0, (uint64_t)id, 64);
        if (id == 500) { /* one message over 64 KiB: the 8-byte length form */
            memset(big, 'y', 69999);
            big[69999] = '\0';
            memcpy(big, content, strlen(content));
            body = big;
        }
        int n = snprintf(event, sizeof(event),
                         "{\"type\":\"message\",\"id\":%d,\"sender_id\":1,\"room_id\":7,"
                         "\"content\":\"%s\"}",
                         id, body);
        if (id == 900) { /* fragmented in three */
            len += put_frame(stream + len, 0x01, event, 10);
            len += put_frame(stream + len, 0x00, event + 10, 20);
            len += put_frame(stream + len, 0x80, event + 30, (size_t)n - 30);
        } else {
            len += put_frame(stream + len, 0x81, event, (size_t)n);
        }
        if (id % 700 == 0)
            len += put_frame(stream + len, 0x89, "ping!", 5);
    }
    srand(12345);
    for (size_t off = 0; off < len;) {
        size_t piece = 1 + (size_t)rand() % 3000;
        if (piece > len - off)
            piece = len - off;
        CHECK(write(sv[1], stream + off, piece) == (ssize_t)piece);
        off += piece;
        client_on_readable(&b, &c); /* one read takes all of a piece */
    }
    CHECK(c.state == CS_OPEN);
    CHECK(c.received == N && c.disorder == 0 && c.last_id == N && b.deliveries == N);
    CHECK(b.protocol_errors == 0 && b.other_events == 0 && c.in_len == 0);
    /* Two pings, two masked pongs with the same payload. */
    uint8_t pong[64];
    ssize_t got = read(sv[1], pong, sizeof(pong));
    CHECK(got == 2 * 11);
    if (got == 22) {
        CHECK(pong[0] == 0x8A && pong[1] == (0x80 | 5));
        ws_apply_mask(pong + 6, 5, pong + 2, 0);
        CHECK(memcmp(pong + 6, "ping!", 5) == 0);
    }
    close(sv[0]);
    close(sv[1]);
    free(stream);
    free(big);
    free(b.rbuf);
    free(c.out);
}

int selftest_run(void) {
    test_handshake();
    test_frames();
    test_scan();
    test_hist();
    test_stream();
    if (failures == 0)
        printf("chatd-bench selftest: ok\n");
    return failures == 0 ? 0 : -1;
}
