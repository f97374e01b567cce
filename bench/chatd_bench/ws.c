#include "ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_make_key(char key[WS_KEY_LEN + 1]) {
    uint8_t nonce[16];
    if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        return -1;
    return EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce)) == WS_KEY_LEN ? 0 : -1;
}

int ws_accept_for(const char *key, char out[WS_ACCEPT_LEN + 1]) {
    char joined[128];
    int n = snprintf(joined, sizeof(joined), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(joined))
        return -1;
    uint8_t digest[SHA_DIGEST_LENGTH];
    if (SHA1((const unsigned char *)joined, (size_t)n, digest) == NULL)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, digest, sizeof(digest)) == WS_ACCEPT_LEN ? 0 : -1;
}

int ws_format_request(char *out, size_t cap, const char *host_port, const char *path,
                      const char *token, const char *key) {
    int n = snprintf(out, cap,
                     "GET %s%s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, token ? (strchr(path, '?') ? "&token=" : "?token=") : "",
                     token ? token : "", host_port, key);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

size_t ws_head_length(const uint8_t *p, size_t n) {
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            return i + 1;
    return 0;
}

/* Finds header name (case-insensitive) and returns its trimmed value. */
static const char *header_value(const char *head, size_t len, const char *name, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *line = memchr(head, '\n', len);
    const char *end = head + len;
    while (line != NULL && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

int ws_check_response(const uint8_t *head, size_t len, const char *key, int *status) {
    const char *h = (const char *)head;
    *status = 0;
    if (len < 12 || memcmp(h, "HTTP/1.1 ", 9) != 0)
        return -1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (h[i] < '0' || h[i] > '9')
            return -1;
        code = code * 10 + (h[i] - '0');
    }
    *status = code;
    if (code != 101)
        return -1;
    size_t vlen;
    const char *v = header_value(h, len, "Upgrade", &vlen);
    if (v == NULL || vlen != 9 || strncasecmp(v, "websocket", 9) != 0)
        return -1;
    char expect[WS_ACCEPT_LEN + 1];
    if (ws_accept_for(key, expect) != 0)
        return -1;
    v = header_value(h, len, "Sec-WebSocket-Accept", &vlen);
    if (v == NULL || vlen != WS_ACCEPT_LEN || memcmp(v, expect, WS_ACCEPT_LEN) != 0)
        return -1;
    return 0;
}

size_t ws_frame_header(uint8_t *hdr, int opcode, uint64_t len, const uint8_t mask[4]) {
    size_t n = 0;
    hdr[n++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        hdr[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[n++] = 0x80 | 126;
        hdr[n++] = (uint8_t)(len >> 8);
        hdr[n++] = (uint8_t)len;
    } else {
        hdr[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[n++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(hdr + n, mask, 4);
    return n + 4;
}

void ws_apply_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset) {
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

int ws_parse_header(const uint8_t *p, size_t n, ws_frame_t *f) {
    if (n < 2)
        return 0;
    if (p[0] & 0x70)
        return -1; /* no extension was negotiated */
    if (p[1] & 0x80)
        return -1; /* servers never mask */
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    uint64_t len = p[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        if (len >> 63)
            return -1;
        hl = 10;
    }
    switch (f->opcode) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BIN:
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!f->fin || len > 125)
            return -1;
        break;
    default:
        return -1;
    }
    f->header_len = hl;
    f->payload_len = len;
    return 1;
}
