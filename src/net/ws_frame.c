#include "net/ws_frame.h"

#include "core/utf8.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

void ws_parser_init(ws_parser_t *parser, size_t max_message) {
    memset(parser, 0, sizeof(*parser));
    parser->max_message = max_message;
}

void ws_parser_reset(ws_parser_t *parser) {
    free(parser->message);
    free(parser->control);
    ws_parser_init(parser, parser->max_message);
}

static int is_control(int opcode) {
    return opcode >= 0x8;
}

/* How many header bytes this frame has, once the first two are known. */
static size_t header_size(const uint8_t *header) {
    uint8_t len7 = header[1] & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((header[1] & 0x80) ? 4 : 0);
}

/* Checks a complete header and loads it. Returns 0 or a close code. */
static int accept_header(ws_parser_t *p) {
    const uint8_t *h = p->header;
    if (h[0] & 0x70)
        return WS_CLOSE_PROTOCOL_ERROR; /* RSV bits: no extension was agreed */
    if (!(h[1] & 0x80))
        return WS_CLOSE_PROTOCOL_ERROR; /* clients must mask */
    p->fin = (h[0] & 0x80) != 0;
    p->opcode = h[0] & 0x0F;
    uint8_t len7 = h[1] & 0x7F;
    uint64_t len = len7;
    size_t pos = 2;
    if (len7 == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        pos = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        if (len >> 63)
            return WS_CLOSE_PROTOCOL_ERROR;
        pos = 10;
    }
    /* RFC 6455 section 5.2: the length MUST use the fewest bytes. */
    if ((len7 == 126 && len < 126) || (len7 == 127 && len <= 0xFFFF))
        return WS_CLOSE_PROTOCOL_ERROR;
    memcpy(p->mask, h + pos, 4);
    p->payload_len = len;
    p->payload_done = 0;

    switch (p->opcode) {
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!p->fin || len > WS_CONTROL_MAX)
            return WS_CLOSE_PROTOCOL_ERROR;
        return 0;
    case WS_OP_TEXT:
        if (p->fragmented)
            return WS_CLOSE_PROTOCOL_ERROR;
        break;
    case WS_OP_CONTINUATION:
        if (!p->fragmented)
            return WS_CLOSE_PROTOCOL_ERROR;
        break;
    case WS_OP_BINARY:
        return p->fragmented ? WS_CLOSE_PROTOCOL_ERROR : WS_CLOSE_UNSUPPORTED_DATA;
    default:
        return WS_CLOSE_PROTOCOL_ERROR;
    }
    /* Refuse an oversized message as soon as its length is known. */
    if (len > p->max_message || p->message_len > p->max_message - len)
        return WS_CLOSE_TOO_BIG;
    return 0;
}

static void unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                   uint64_t offset) {
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ mask[(offset + i) & 3];
}

static int close_payload_valid(const uint8_t *data, size_t len) {
    if (len == 0)
        return 0;
    if (len == 1)
        return WS_CLOSE_PROTOCOL_ERROR;
    unsigned code = ((unsigned)data[0] << 8) | data[1];
    int code_ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                  (code >= 3000 && code <= 4999);
    if (!code_ok)
        return WS_CLOSE_PROTOCOL_ERROR;
    return utf8_valid(data + 2, len - 2) ? 0 : WS_CLOSE_INVALID_PAYLOAD;
}

/* The current frame's payload is complete in data (len bytes, unmasked). */
static int finish_frame(ws_parser_t *p, uint8_t *data, size_t len,
                        const ws_parser_handlers_t *handlers, void *ctx) {
    p->in_payload = 0;
    p->header_len = 0;
    if (is_control(p->opcode)) {
        int problem = p->opcode == WS_OP_CLOSE ? close_payload_valid(data, len) : 0;
        int stop = problem == 0 ? handlers->on_control(ctx, p->opcode, data, len) : 0;
        free(p->control);
        p->control = NULL;
        return problem != 0 ? problem : stop ? -1 : 0;
    }
    if (!p->fin) {
        p->fragmented = 1;
        return 0;
    }
    p->fragmented = 0;
    static uint8_t empty[1];
    if (data == NULL)
        data = empty; /* an empty fragmented message never got a buffer */
    int result = 0;
    if (!utf8_valid(data, len))
        result = WS_CLOSE_INVALID_PAYLOAD;
    else if (handlers->on_text(ctx, (char *)data, len) != 0)
        result = -1;
    free(p->message);
    p->message = NULL;
    p->message_len = p->message_cap = 0;
    return result;
}

/* Copies (unmasking) n payload bytes into the buffer of the frame's kind. */
static int buffer_payload(ws_parser_t *p, const uint8_t *src, size_t n) {
    uint8_t *dst;
    if (is_control(p->opcode)) {
        if (p->control == NULL && (p->control = malloc(WS_CONTROL_MAX)) == NULL)
            return -2;
        dst = p->control + p->payload_done;
    } else {
        if (n == 0)
            return 0;
        size_t need = p->message_len + (size_t)(p->payload_len - p->payload_done);
        if (need > p->message_cap) {
            /* +1 so an empty message still has a buffer to point at. */
            uint8_t *grown = realloc(p->message, need + 1);
            if (grown == NULL)
                return -2;
            p->message = grown;
            p->message_cap = need;
        }
        dst = p->message + p->message_len;
        p->message_len += n;
    }
    unmask(dst, src, n, p->mask, p->payload_done);
    p->payload_done += n;
    return 0;
}

int ws_parser_feed(ws_parser_t *p, uint8_t *data, size_t len, const ws_parser_handlers_t *handlers,
                   void *ctx) {
    while (len > 0 || (p->in_payload && p->payload_len == 0)) {
        if (!p->in_payload) {
            size_t need = p->header_len < 2 ? 2 : header_size(p->header);
            size_t n = need - p->header_len < len ? need - p->header_len : len;
            memcpy(p->header + p->header_len, data, n);
            p->header_len += (uint8_t)n;
            data += n;
            len -= n;
            if (p->header_len == 2 && header_size(p->header) > 2)
                continue;
            if (p->header_len < need)
                return 0;
            int problem = accept_header(p);
            if (problem != 0)
                return problem;
            p->in_payload = 1;
            continue;
        }
        uint64_t remaining = p->payload_len - p->payload_done;
        size_t n = remaining < len ? (size_t)remaining : len;
        int rc;
        if (n == remaining && p->payload_done == 0 && !is_control(p->opcode) && p->fin &&
            !p->fragmented) {
            /* The whole unfragmented frame is here: unmask in place, no copy. */
            unmask(data, data, n, p->mask, 0);
            rc = finish_frame(p, data, n, handlers, ctx);
        } else {
            if (buffer_payload(p, data, n) != 0)
                return -2;
            if (p->payload_done < p->payload_len) {
                data += n;
                len -= n;
                continue;
            }
            rc = is_control(p->opcode) ? finish_frame(p, p->control, p->payload_len, handlers, ctx)
                                       : finish_frame(p, p->message, p->message_len, handlers, ctx);
        }
        if (rc != 0)
            return rc;
        data += n;
        len -= n;
    }
    return 0;
}

size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, uint64_t payload_len) {
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

size_t ws_close_frame(uint8_t out[2 + WS_CONTROL_MAX], uint16_t code, const char *reason) {
    size_t reason_len = reason != NULL ? strlen(reason) : 0;
    if (reason_len > WS_CONTROL_MAX - 2)
        reason_len = WS_CONTROL_MAX - 2;
    out[0] = 0x80 | WS_OP_CLOSE;
    out[1] = (uint8_t)(2 + reason_len);
    out[2] = (uint8_t)(code >> 8);
    out[3] = (uint8_t)code;
    if (reason_len > 0)
        memcpy(out + 4, reason, reason_len);
    return 4 + reason_len;
}

int ws_accept_key(const char *key, size_t key_len, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char decoded[18];
    if (key_len != 24 || EVP_DecodeBlock(decoded, (const unsigned char *)key, 24) != 18 ||
        key[22] != '=' || key[23] != '=')
        return -1;
    unsigned char joined[24 + sizeof(guid) - 1];
    memcpy(joined, key, 24);
    memcpy(joined + 24, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(joined, sizeof(joined), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}
