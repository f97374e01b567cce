/* A growable byte buffer. The buffer owns data; buf_free releases it.
 * Every append returns 0, or -1 when memory runs out (the buffer is then
 * left as it was). data is always NUL-terminated when non-NULL. */
#ifndef CHATD_CORE_BUF_H
#define CHATD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT                                                                                   \
    { NULL, 0, 0 }

int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *data, size_t len);
int buf_append_str(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included. Bytes of s that are
 * not well-formed UTF-8 become U+FFFD: the literal is valid JSON whatever s
 * holds. */
int buf_append_json_string(buf_t *b, const char *s, size_t len);
void buf_reset(buf_t *b);
/* Hands the bytes to the caller (who frees them) and empties the buffer. */
char *buf_take(buf_t *b);
void buf_free(buf_t *b);

#endif
