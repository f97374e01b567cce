#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(buf_t *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *data = realloc(b->data, cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const void *data, size_t len) {
    if (buf_reserve(b, len) != 0)
        return -1;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(buf_t *b, const char *s) {
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(buf_t *b, const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* The length of the well-formed UTF-8 sequence (RFC 3629) that starts at
 * s[0] >= 0x80, or 0 when there is none. */
static size_t utf8_sequence_length(const unsigned char *s, size_t n) {
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t extra;
    if (c >= 0xC2 && c <= 0xDF) {
        extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        extra = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        extra = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n <= extra || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= extra; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return extra + 1;
}

int buf_append_json_string(buf_t *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX. */
    if (len > (SIZE_MAX - 2) / 6 || buf_reserve(b, len * 6 + 2) != 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            *out++ = '\\';
            *out++ = '"';
            break;
        case '\\':
            *out++ = '\\';
            *out++ = '\\';
            break;
        case '\n':
            *out++ = '\\';
            *out++ = 'n';
            break;
        case '\r':
            *out++ = '\\';
            *out++ = 'r';
            break;
        case '\t':
            *out++ = '\\';
            *out++ = 't';
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                *out++ = '\\';
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 15];
            } else if (c < 0x80) {
                *out++ = (char)c;
            } else {
                /* JSON text is UTF-8 (RFC 8259): a byte that starts no
                 * well-formed sequence becomes U+FFFD, so that the output
                 * parses whatever s held (jansson's error texts quote the
                 * client's bytes, cut anywhere). */
                size_t n = utf8_sequence_length((const unsigned char *)s + i, len - i);
                if (n == 0) {
                    memcpy(out, "\xEF\xBF\xBD", 3);
                    out += 3;
                } else {
                    memcpy(out, s + i, n);
                    out += n;
                    i += n - 1;
                }
            }
        }
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
    b->data[b->len] = '\0';
    return 0;
}

void buf_reset(buf_t *b) {
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *buf_take(buf_t *b) {
    char *data = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
