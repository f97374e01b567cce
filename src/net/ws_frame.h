/* RFC 6455 frames: an incremental parser for what clients send and a framer
 * for what the server sends.
 *
 * Written here rather than taken from wslay because it is the hot path and
 * the memory path (DESIGN.md, "Library facts"): the parser keeps no input
 * buffer of its own. It reads the loop's shared read buffer, unmasks a
 * complete unfragmented frame in place and hands it over without a copy;
 * only a frame split across reads, a fragmented message, or a control frame
 * split across reads is copied into a buffer allocated for that moment and
 * freed when the message is complete. */
#ifndef CHATD_NET_WS_FRAME_H
#define CHATD_NET_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED_DATA = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_INVALID_PAYLOAD = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN = 1013,
};

#define WS_CONTROL_MAX      125
#define WS_FRAME_HEADER_MAX 10 /* server frames are not masked */

/* What the parser reports. A handler returns 0 to go on, or non-zero to
 * stop parsing (the connection is closing); ws_parser_feed then returns -1. */
typedef struct {
    /* A complete text message, valid UTF-8. data is writable and valid only
     * during the call. */
    int (*on_text)(void *ctx, char *data, size_t len);
    /* A ping, pong or close frame (close: payload checked: a valid code and
     * UTF-8 reason, or empty). */
    int (*on_control)(void *ctx, int opcode, const uint8_t *data, size_t len);
} ws_parser_handlers_t;

typedef struct {
    uint8_t header[14];
    uint8_t header_len;
    uint8_t in_payload; /* 0: reading a header, 1: reading a payload */
    uint8_t opcode;
    uint8_t fin;
    uint8_t fragmented; /* a text message is open, awaiting continuations */
    uint8_t mask[4];
    uint64_t payload_len;
    uint64_t payload_done;
    size_t max_message; /* MAX_MESSAGE_BYTES */
    /* Allocated only while needed (see above); owned by the parser. */
    uint8_t *message;
    size_t message_len;
    size_t message_cap;
    uint8_t *control;
} ws_parser_t;

void ws_parser_init(ws_parser_t *parser, size_t max_message);
/* Frees what the parser holds. */
void ws_parser_reset(ws_parser_t *parser);

/* Parses len bytes of data (which may be modified: payloads are unmasked in
 * place). Returns 0 when all was consumed, -1 when a handler stopped
 * parsing, or a close code (1002, 1003, 1007, 1009) for a protocol error;
 * after an error the parser must not be fed again. -2: out of memory. */
int ws_parser_feed(ws_parser_t *parser, uint8_t *data, size_t len,
                   const ws_parser_handlers_t *handlers, void *ctx);

/* Writes the header of an unmasked server frame with FIN set into out and
 * returns its length (2, 4 or 10). */
size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, uint64_t payload_len);

/* Builds a close frame with code and reason (truncated to fit 125 bytes)
 * into out; returns its length. */
size_t ws_close_frame(uint8_t out[2 + WS_CONTROL_MAX], uint16_t code, const char *reason);

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64 of the SHA-1
 * of key + the RFC's GUID. out gets 28 characters and a NUL. Returns 0, or -1
 * when the key is not 24 characters of base64 (16 bytes). */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
