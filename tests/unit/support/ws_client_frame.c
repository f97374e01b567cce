#include "ws_client_frame.h"

#include <string.h>

size_t ws_client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                       const uint8_t *mask) {
    size_t pos = 0;
    out[pos++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t mask_bit = mask != NULL ? 0x80 : 0;
    if (len < 126) {
        out[pos++] = (uint8_t)(mask_bit | len);
    } else if (len <= 0xFFFF) {
        out[pos++] = mask_bit | 126;
        out[pos++] = (uint8_t)(len >> 8);
        out[pos++] = (uint8_t)len;
    } else {
        out[pos++] = mask_bit | 127;
        for (int i = 0; i < 8; i++)
            out[pos++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (mask != NULL) {
        memcpy(out + pos, mask, 4);
        pos += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[pos + i] = ((const uint8_t *)payload)[i] ^ (mask != NULL ? mask[i & 3] : 0);
    return pos + len;
}
