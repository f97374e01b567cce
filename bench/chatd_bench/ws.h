/* The client side of RFC 6455 that the load generator needs: the opening
 * handshake (request, Sec-WebSocket-Accept check), masked client frames and
 * a parser for server frame headers. No I/O here, so it can be self-tested. */
#ifndef CHATD_BENCH_WS_H
#define CHATD_BENCH_WS_H

#include <stddef.h>
#include <stdint.h>

#define WS_OP_CONT  0x0
#define WS_OP_TEXT  0x1
#define WS_OP_BIN   0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING  0x9
#define WS_OP_PONG  0xA

#define WS_KEY_LEN    24 /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define WS_MAX_HEADER 14 /* 2 + 8 length bytes + 4 mask bytes */

/* Base64 of 16 random bytes, NUL-terminated. Returns 0, or -1 when the
 * system has no randomness to give. */
int ws_make_key(char key[WS_KEY_LEN + 1]);

/* The Sec-WebSocket-Accept a server must answer to key, NUL-terminated.
 * Returns 0, or -1 if OpenSSL fails. */
int ws_accept_for(const char *key, char out[WS_ACCEPT_LEN + 1]);

/* Writes the GET request of the handshake. Returns its length, or -1 when it
 * does not fit in cap. token may be NULL. */
int ws_format_request(char *out, size_t cap, const char *host_port, const char *path,
                      const char *token, const char *key);

/* Looks for the end of a response head in p[0..n). Returns the head's length
 * (including the blank line) or 0 when it is not complete yet. */
size_t ws_head_length(const uint8_t *p, size_t n);

/* Checks a complete response head: 101, Upgrade: websocket and the accept
 * that matches key. Returns 0 when the upgrade succeeded, otherwise -1 with
 * the HTTP status in *status (0 when the status line is unreadable). */
int ws_check_response(const uint8_t *head, size_t len, const char *key, int *status);

/* Writes a final masked frame header for a payload of len bytes into hdr
 * (WS_MAX_HEADER bytes). Returns the header length. */
size_t ws_frame_header(uint8_t *hdr, int opcode, uint64_t len, const uint8_t mask[4]);

/* XORs p with the mask key, as if p started at byte offset of the payload. */
void ws_apply_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);

typedef struct {
    int opcode;
    int fin;
    size_t header_len;
    uint64_t payload_len;
} ws_frame_t;

/* Parses a server frame header at p[0..n). Returns 1 with *f filled when the
 * header is complete, 0 when more bytes are needed, -1 on a protocol error
 * (reserved bits, a masked server frame, a bad control frame or opcode). */
int ws_parse_header(const uint8_t *p, size_t n, ws_frame_t *f);

#endif
