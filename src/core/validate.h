/* Validation of client input, shared by the REST handlers and (later) the
 * WebSocket protocol. Each check returns NULL when the value is acceptable,
 * or a message naming the field for a 400 validation_failed. */
#ifndef CHATD_CORE_VALIDATE_H
#define CHATD_CORE_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#define EMAIL_MAX_BYTES     254
#define PASSWORD_MIN_CHARS  8
#define PASSWORD_MAX_CHARS  128
#define USERNAME_MAX_CHARS  32
#define ROOM_NAME_MAX_CHARS 100
#define CONTENT_MAX_CHARS   4000
#define CLIENT_ID_MAX_CHARS 64
#define PAGE_LIMIT_DEFAULT  50
#define PAGE_LIMIT_MAX      200

/* Unicode code points in valid UTF-8 text (continuation bytes not counted). */
size_t utf8_char_count(const char *s, size_t len);

/* Checks the syntax and writes the lower-cased address into out
 * (EMAIL_MAX_BYTES + 1 bytes). */
const char *validate_email(const char *email, size_t len, char *out);
const char *validate_password(const char *password, size_t len);
const char *validate_username(const char *username, size_t len);
const char *validate_room_name(const char *name, size_t len);
const char *validate_content(const char *content, size_t len);
const char *validate_client_id(const char *client_id, size_t len);

/* Parses a positive decimal int64 with nothing else around it. Returns 0 and
 * sets *out, or -1. */
int parse_positive_id(const char *text, int64_t *out);

#endif
