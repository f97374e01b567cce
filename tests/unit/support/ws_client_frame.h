/* WebSocket frames as a client sends them, for the tests of the parser and
 * of the server. */
#ifndef CHATD_TESTS_WS_CLIENT_FRAME_H
#define CHATD_TESTS_WS_CLIENT_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Writes one frame to out, which has room for len + 14 bytes: masked with
 * mask, or unmasked (which a server must refuse) when mask is NULL. The
 * length takes its shortest form. Returns the frame's size. */
size_t ws_client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                       const uint8_t *mask);

#endif
