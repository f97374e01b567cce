#include "core/validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_char_count(const char *s, size_t len) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    }
    return count;
}

/* Decodes the code point at s[*i] of valid UTF-8 and advances *i. */
static unsigned long utf8_next(const char *s, size_t len, size_t *i) {
    unsigned char c = (unsigned char)s[*i];
    int extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    unsigned long cp = extra == 0 ? c : c & (0x3F >> extra);
    (*i)++;
    for (int k = 0; k < extra && *i < len; k++, (*i)++)
        cp = (cp << 6) | ((unsigned char)s[*i] & 0x3F);
    return cp;
}

static int is_unicode_space(unsigned long cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static int only_whitespace(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (!is_unicode_space(utf8_next(s, len, &i)))
            return 0;
    }
    return 1;
}

static int has_control_chars(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return 1;
    }
    return 0;
}

static int email_local_char_ok(unsigned char c) {
    return isalnum(c) || strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL;
}

static int email_domain_ok(const char *domain, size_t len) {
    if (len == 0 || len > 253 || memchr(domain, '.', len) == NULL)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)domain[i];
        if (c == '.') {
            if (label == 0 || domain[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum(c) || c == '-' || c >= 0x80) {
            if (label == 0 && c == '-')
                return 0;
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0;
}

const char *validate_email(const char *email, size_t len, char *out) {
    if (len == 0)
        return "email is required";
    if (len > EMAIL_MAX_BYTES)
        return "email must be at most 254 bytes";
    const char *at = memchr(email, '@', len);
    if (at == NULL || memchr(at + 1, '@', len - (size_t)(at - email) - 1) != NULL)
        return "email must be a valid address";
    size_t local_len = (size_t)(at - email);
    if (local_len == 0 || local_len > 64 || email[0] == '.' || email[local_len - 1] == '.')
        return "email must be a valid address";
    for (size_t i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)email[i];
        if (!email_local_char_ok(c) && c < 0x80)
            return "email must be a valid address";
        if (c == '.' && email[i + 1] == '.')
            return "email must be a valid address";
    }
    if (!email_domain_ok(at + 1, len - local_len - 1))
        return "email must be a valid address";
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)email[i]);
    out[len] = '\0';
    return NULL;
}

const char *validate_password(const char *password, size_t len) {
    size_t chars = utf8_char_count(password, len);
    if (chars < PASSWORD_MIN_CHARS || chars > PASSWORD_MAX_CHARS)
        return "password must be 8 to 128 characters";
    return NULL;
}

const char *validate_username(const char *username, size_t len) {
    if (len == 0 || len > USERNAME_MAX_CHARS)
        return "username must be 1 to 32 characters";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)username[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return "username may contain only letters, digits, '_', '.' and '-'";
    }
    return NULL;
}

const char *validate_room_name(const char *name, size_t len) {
    size_t chars = utf8_char_count(name, len);
    if (chars == 0 || chars > ROOM_NAME_MAX_CHARS || only_whitespace(name, len))
        return "name must be 1 to 100 characters, not only whitespace";
    if (has_control_chars(name, len))
        return "name must not contain control characters";
    return NULL;
}

const char *validate_content(const char *content, size_t len) {
    size_t chars = utf8_char_count(content, len);
    if (chars == 0 || only_whitespace(content, len))
        return "content must not be empty or only whitespace";
    if (chars > CONTENT_MAX_CHARS)
        return "content must be at most 4000 characters";
    if (memchr(content, '\0', len) != NULL)
        return "content must not contain NUL characters";
    return NULL;
}

const char *validate_client_id(const char *client_id, size_t len) {
    size_t chars = utf8_char_count(client_id, len);
    if (chars == 0 || chars > CLIENT_ID_MAX_CHARS)
        return "client_id must be 1 to 64 characters";
    if (has_control_chars(client_id, len))
        return "client_id must not contain control characters";
    return NULL;
}

int parse_positive_id(const char *text, int64_t *out) {
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    *out = (int64_t)v;
    return 0;
}
