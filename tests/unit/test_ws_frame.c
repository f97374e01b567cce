/* The WebSocket frame parser and framer against RFC 6455's rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/ws_frame.h"
#include "support/ws_client_frame.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char texts[8][256];
    size_t text_lens[8];
    int text_count;
    int control_ops[8];
    uint8_t control_data[8][126];
    size_t control_lens[8];
    int control_count;
    int stop_after_text;
} seen_t;

static int on_text(void *ctx, char *data, size_t len) {
    seen_t *seen = ctx;
    assert_true(len < sizeof(seen->texts[0]));
    memcpy(seen->texts[seen->text_count], data, len);
    seen->text_lens[seen->text_count++] = len;
    return seen->stop_after_text;
}

static int on_control(void *ctx, int opcode, const uint8_t *data, size_t len) {
    seen_t *seen = ctx;
    seen->control_ops[seen->control_count] = opcode;
    if (len > 0)
        memcpy(seen->control_data[seen->control_count], data, len);
    seen->control_lens[seen->control_count++] = len;
    return 0;
}

static const ws_parser_handlers_t handlers = {on_text, on_control};
static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a client frame (masked unless masked == 0) to out; returns its size. */
static size_t client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                           int masked) {
    return ws_client_frame(out, fin, opcode, payload, len, masked ? mask_key : NULL);
}

static int feed_all(ws_parser_t *p, uint8_t *data, size_t len, seen_t *seen) {
    return ws_parser_feed(p, data, len, &handlers, seen);
}

static void test_single_text_frame(void **state) {
    (void)state;
    uint8_t buf[64];
    size_t n = client_frame(buf, 1, WS_OP_TEXT, "Hello", 5, 1);
    ws_parser_t p;
    ws_parser_init(&p, 1024);
    seen_t seen = {0};
    assert_int_equal(feed_all(&p, buf, n, &seen), 0);
    assert_int_equal(seen.text_count, 1);
    assert_memory_equal(seen.texts[0], "Hello", 5);
    assert_null(p.message); /* the fast path copies nothing */
    ws_parser_reset(&p);
}

static void test_byte_by_byte_and_fragments(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t n = 0;
    n += client_frame(buf + n, 0, WS_OP_TEXT, "Hel", 3, 1);
    n += client_frame(buf + n, 1, WS_OP_PING, "p", 1, 1); /* control between fragments */
    n += client_frame(buf + n, 0, WS_OP_CONTINUATION, "lo ", 3, 1);
    n += client_frame(buf + n, 1, WS_OP_CONTINUATION, "w\xc3\xb6rld", 6, 1);
    n += client_frame(buf + n, 1, WS_OP_TEXT, "", 0, 1);
    ws_parser_t p;
    ws_parser_init(&p, 1024);
    seen_t seen = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(feed_all(&p, buf + i, 1, &seen), 0);
    assert_int_equal(seen.text_count, 2);
    assert_int_equal(seen.text_lens[0], 12);
    assert_memory_equal(seen.texts[0], "Hello w\xc3\xb6rld", 12);
    assert_int_equal(seen.text_lens[1], 0);
    assert_int_equal(seen.control_count, 1);
    assert_int_equal(seen.control_ops[0], WS_OP_PING);
    assert_null(p.message);
    ws_parser_reset(&p);
}

static size_t last_text_len;
static int last_text_all_a;

static int on_text_length(void *ctx, char *data, size_t len) {
    (void)ctx;
    last_text_len = len;
    last_text_all_a = 1;
    for (size_t i = 0; i < len; i++)
        last_text_all_a &= data[i] == 'a';
    return 0;
}

static void test_extended_lengths(void **state) {
    (void)state;
    static const ws_parser_handlers_t length_handlers = {on_text_length, on_control};
    size_t sizes[] = {125, 126, 65535, 65536};
    for (size_t k = 0; k < 4; k++) {
        size_t len = sizes[k];
        char *payload = malloc(len);
        memset(payload, 'a', len);
        uint8_t *buf = malloc(len + 14);
        size_t n = client_frame(buf, 1, WS_OP_TEXT, payload, len, 1);
        for (int split = 0; split < 2; split++) {
            size_t frame_len = client_frame(buf, 1, WS_OP_TEXT, payload, len, 1);
            ws_parser_t p;
            ws_parser_init(&p, 65536);
            last_text_len = 0;
            /* In one read (in place) and in two reads (copied). */
            size_t first = split ? 7 : frame_len;
            assert_int_equal(ws_parser_feed(&p, buf, first, &length_handlers, NULL), 0);
            assert_int_equal(
                ws_parser_feed(&p, buf + first, frame_len - first, &length_handlers, NULL), 0);
            assert_int_equal(last_text_len, len);
            assert_true(last_text_all_a);
            assert_int_equal(n, frame_len);
            ws_parser_reset(&p);
        }
        free(payload);
        free(buf);
    }
}

static void test_limits_and_errors(void **state) {
    (void)state;
    uint8_t buf[256];
    ws_parser_t p;
    seen_t seen = {0};

    /* Over MAX_MESSAGE_BYTES: 1009 from the header alone. */
    ws_parser_init(&p, 10);
    size_t n = client_frame(buf, 1, WS_OP_TEXT, "0123456789A", 11, 1);
    assert_int_equal(feed_all(&p, buf, 6, &seen), WS_CLOSE_TOO_BIG);
    ws_parser_reset(&p);
    /* Exactly at the limit is fine. */
    ws_parser_init(&p, 10);
    n = client_frame(buf, 1, WS_OP_TEXT, "0123456789", 10, 1);
    assert_int_equal(feed_all(&p, buf, n, &seen), 0);
    ws_parser_reset(&p);
    /* The limit counts the reassembled message. */
    ws_parser_init(&p, 10);
    n = client_frame(buf, 0, WS_OP_TEXT, "012345", 6, 1);
    n += client_frame(buf + n, 1, WS_OP_CONTINUATION, "6789A", 5, 1);
    assert_int_equal(feed_all(&p, buf, n, &seen), WS_CLOSE_TOO_BIG);
    ws_parser_reset(&p);

    struct {
        int fin, opcode, masked;
        const char *payload;
        size_t len;
        int expect;
    } cases[] = {
        {1, WS_OP_BINARY, 1, "ab", 2, WS_CLOSE_UNSUPPORTED_DATA},
        {1, WS_OP_TEXT, 0, "ab", 2, WS_CLOSE_PROTOCOL_ERROR},
        {1, WS_OP_TEXT, 1, "\xc3\x28", 2, WS_CLOSE_INVALID_PAYLOAD},
        {1, WS_OP_TEXT, 1, "\xed\xa0\x80", 3, WS_CLOSE_INVALID_PAYLOAD}, /* surrogate */
        {1, WS_OP_TEXT, 1, "\xc0\xaf", 2, WS_CLOSE_INVALID_PAYLOAD},     /* overlong */
        {1, WS_OP_CONTINUATION, 1, "ab", 2, WS_CLOSE_PROTOCOL_ERROR},
        {1, 0x3, 1, "", 0, WS_CLOSE_PROTOCOL_ERROR},
        {0, WS_OP_PING, 1, "", 0, WS_CLOSE_PROTOCOL_ERROR},
        {1, WS_OP_CLOSE, 1, "\x03", 1, WS_CLOSE_PROTOCOL_ERROR},
        {1, WS_OP_CLOSE, 1, "\x03\xed", 2, WS_CLOSE_PROTOCOL_ERROR}, /* code 1005 */
        {1, WS_OP_CLOSE, 1, "\x03\xe8\xff", 3, WS_CLOSE_INVALID_PAYLOAD},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ws_parser_init(&p, 1024);
        n = client_frame(buf, cases[i].fin, cases[i].opcode, cases[i].payload, cases[i].len,
                         cases[i].masked);
        assert_int_equal(feed_all(&p, buf, n, &seen), cases[i].expect);
        ws_parser_reset(&p);
    }
    /* RSV bit set */
    ws_parser_init(&p, 1024);
    n = client_frame(buf, 1, WS_OP_TEXT, "a", 1, 1);
    buf[0] |= 0x40;
    assert_int_equal(feed_all(&p, buf, n, &seen), WS_CLOSE_PROTOCOL_ERROR);
    ws_parser_reset(&p);
    /* Control frame over 125 bytes */
    ws_parser_init(&p, 1024);
    char big[126];
    memset(big, 'x', sizeof(big));
    n = client_frame(buf, 1, WS_OP_PING, big, 126, 1);
    assert_int_equal(feed_all(&p, buf, n, &seen), WS_CLOSE_PROTOCOL_ERROR);
    ws_parser_reset(&p);
    /* A new text frame while a fragmented message is open */
    ws_parser_init(&p, 1024);
    n = client_frame(buf, 0, WS_OP_TEXT, "a", 1, 1);
    n += client_frame(buf + n, 1, WS_OP_TEXT, "b", 1, 1);
    assert_int_equal(feed_all(&p, buf, n, &seen), WS_CLOSE_PROTOCOL_ERROR);
    ws_parser_reset(&p);
}

/* A length in a longer form than needed is a protocol error (RFC 6455
 * section 5.2), as for wslay; found by fuzz/ws_frame_fuzz.c. */
static void test_length_not_minimal(void **state) {
    (void)state;
    static const uint8_t cases[][18] = {
        /* "abc" with a 16-bit length */
        {0x81, 0xfe, 0x00, 0x03, 0x37, 0xfa, 0x21, 0x3d, 'a' ^ 0x37, 'b' ^ 0xfa, 'c' ^ 0x21},
        /* "abc" with a 64-bit length */
        {0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x37, 0xfa, 0x21, 0x3d, 'a' ^ 0x37},
        /* 65535 bytes with a 64-bit length: the header alone decides */
        {0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x37, 0xfa, 0x21, 0x3d},
        /* a ping of one byte with a 16-bit length */
        {0x89, 0xfe, 0x00, 0x01, 0x37, 0xfa, 0x21, 0x3d, 'p' ^ 0x37},
        /* the fuzzer's input: 56 bytes with a 64-bit length */
        {0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x38, 0xfa, 0x21, 0x03, 0, 0, 0, 0, 0},
    };
    static const size_t lens[] = {11, 15, 14, 9, 18};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        ws_parser_t p;
        ws_parser_init(&p, 1 << 20);
        seen_t seen = {0};
        uint8_t buf[18];
        memcpy(buf, cases[i], lens[i]);
        assert_int_equal(feed_all(&p, buf, lens[i], &seen), WS_CLOSE_PROTOCOL_ERROR);
        assert_int_equal(seen.text_count + seen.control_count, 0);
        ws_parser_reset(&p);
    }
}

static void test_close_frame_and_stop(void **state) {
    (void)state;
    uint8_t buf[64];
    ws_parser_t p;
    ws_parser_init(&p, 1024);
    seen_t seen = {0};
    size_t n = client_frame(buf, 1, WS_OP_CLOSE,
                            "\x03\xe8"
                            "bye",
                            5, 1);
    assert_int_equal(feed_all(&p, buf, n, &seen), 0);
    assert_int_equal(seen.control_ops[0], WS_OP_CLOSE);
    assert_int_equal(seen.control_lens[0], 5);
    assert_memory_equal(seen.control_data[0],
                        "\x03\xe8"
                        "bye",
                        5);
    /* A handler that stops parsing: the second frame is not read. */
    seen_t stopper = {.stop_after_text = 1};
    n = client_frame(buf, 1, WS_OP_TEXT, "one", 3, 1);
    n += client_frame(buf + n, 1, WS_OP_TEXT, "two", 3, 1);
    assert_int_equal(ws_parser_feed(&p, buf, n, &handlers, &stopper), -1);
    assert_int_equal(stopper.text_count, 1);
    ws_parser_reset(&p);
}

static void test_framer(void **state) {
    (void)state;
    uint8_t h[WS_FRAME_HEADER_MAX];
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 5), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 5);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 126);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 70000), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7] << 16 | h[8] << 8 | h[9], 70000);
    uint8_t close[2 + WS_CONTROL_MAX];
    assert_int_equal(ws_close_frame(close, 1009, "too big"), 11);
    assert_int_equal(close[0], 0x88);
    assert_int_equal(close[1], 9);
    assert_int_equal(close[2] << 8 | close[3], 1009);
}

static void test_accept_key(void **state) {
    (void)state;
    char out[29];
    /* RFC 6455 section 1.3's example. */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(ws_accept_key("short", 5, out), -1);
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ!!", 24, out), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_text_frame),
        cmocka_unit_test(test_byte_by_byte_and_fragments),
        cmocka_unit_test(test_extended_lengths),
        cmocka_unit_test(test_limits_and_errors),
        cmocka_unit_test(test_length_not_minimal),
        cmocka_unit_test(test_close_frame_and_stop),
        cmocka_unit_test(test_framer),
        cmocka_unit_test(test_accept_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
