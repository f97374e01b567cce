#include "chat/client_event.h"

#include "chat/post.h"
#include "core/utf8.h"

#include <stdbool.h>
#include <string.h>

/* Decoded message strings longer than this take the general path. */
#define FAST_DECODED_MAX 2048

static int fail(client_event_t *ev, const char *code, const char *message) {
    json_decref(ev->root);
    memset(ev, 0, sizeof(*ev));
    ev->error_code = code;
    ev->error_message = message;
    return -1;
}

/* Validates the strings of a message event and fills ev; 0, or -1 with the
 * error set (and root released). */
static int accept_message(client_event_t *ev, const char *content, size_t content_len,
                          const char *client_id, size_t client_id_len) {
    ev->type = CLIENT_EVENT_MESSAGE;
    ev->content = content;
    ev->content_len = content_len;
    ev->client_id = client_id;
    ev->client_id_len = client_id != NULL ? client_id_len : 0;
    const char *problem =
        chat_post_validate(ev->content, ev->content_len, ev->client_id, ev->client_id_len);
    return problem != NULL ? fail(ev, "validation_failed", problem) : 0;
}

/* ------------------------------------------------------------ fast path */

/* Nearly every event a client sends is a message: one flat object of
 * "type", "content" and maybe "client_id". Parsing it into a jansson tree
 * costs a dozen allocations that live until the message is stored, so that
 * shape is read here instead, and everything else (other keys or types,
 * \u escapes, numbers, nesting, duplicates, bad UTF-8, anything malformed)
 * goes to jansson, whose verdict is then the only one. What this path
 * accepts, jansson accepts too, with the same strings. */

typedef struct {
    const char *at; /* the raw bytes between the quotes; NULL when absent */
    size_t len;
    bool escaped;
    bool is_null;
} raw_string_t;

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Scans a string literal at p (on its opening quote); the end of it, or
 * NULL when it needs jansson. */
static const char *scan_string(const char *p, const char *end, raw_string_t *out) {
    out->at = ++p;
    out->escaped = false;
    out->is_null = false;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            out->len = (size_t)(p - out->at);
            return p + 1;
        }
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (p + 1 >= end || strchr("\"\\/bfnrt", p[1]) == NULL || p[1] == '\0')
                return NULL;
            out->escaped = true;
            p++;
        }
        p++;
    }
    return NULL;
}

/* Decodes the simple escapes scan_string let through; returns the length. */
static size_t unescape(const raw_string_t *s, char *out) {
    if (!s->escaped) {
        memcpy(out, s->at, s->len);
        return s->len;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->at[i];
        if (c == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            c = to[strchr(from, s->at[++i]) - from];
        }
        out[n++] = c;
    }
    return n;
}

static raw_string_t *member_slot(const raw_string_t *key, raw_string_t *type, raw_string_t *content,
                                 raw_string_t *client_id) {
    if (key->escaped)
        return NULL;
    if (key->len == 4 && memcmp(key->at, "type", 4) == 0)
        return type;
    if (key->len == 7 && memcmp(key->at, "content", 7) == 0)
        return content;
    if (key->len == 9 && memcmp(key->at, "client_id", 9) == 0)
        return client_id;
    return NULL;
}

/* Reads the members of the object; false when jansson must look. */
static bool scan_members(const char *p, const char *end, raw_string_t *type, raw_string_t *content,
                         raw_string_t *client_id) {
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return false;
    for (;;) {
        raw_string_t key;
        p = skip_ws(p, end);
        if (p >= end || *p != '"' || (p = scan_string(p, end, &key)) == NULL)
            return false;
        raw_string_t *slot = member_slot(&key, type, content, client_id);
        if (slot == NULL || slot->at != NULL)
            return false; /* unknown or repeated */
        p = skip_ws(p, end);
        if (p >= end || *p++ != ':')
            return false;
        p = skip_ws(p, end);
        if (p < end && *p == '"') {
            p = scan_string(p, end, slot);
        } else if (slot == client_id && end - p >= 4 && memcmp(p, "null", 4) == 0) {
            *slot = (raw_string_t){.at = p, .is_null = true};
            p += 4;
        } else {
            return false;
        }
        if (p == NULL)
            return false;
        p = skip_ws(p, end);
        if (p >= end)
            return false;
        if (*p == '}')
            return skip_ws(p + 1, end) == end;
        if (*p++ != ',')
            return false;
    }
}

/* 1: parsed (0 or -1 in *rc, as client_event_parse returns), 0: not this
 * shape, use jansson. */
static int parse_fast(const char *data, size_t len, client_event_t *ev, int *rc) {
    raw_string_t type = {0}, content = {0}, client_id = {0};
    if (!scan_members(data, data + len, &type, &content, &client_id))
        return 0;
    if (type.at == NULL || type.escaped || type.len != 7 || memcmp(type.at, "message", 7) != 0 ||
        content.at == NULL)
        return 0;
    bool has_client_id = client_id.at != NULL && !client_id.is_null;
    if (content.len + 1 + (has_client_id ? client_id.len : 0) > FAST_DECODED_MAX)
        return 0;
    /* One jansson string owns both: content, NUL, client_id. */
    char decoded[FAST_DECODED_MAX + 1];
    size_t content_len = unescape(&content, decoded);
    decoded[content_len] = '\0';
    size_t client_id_len = has_client_id ? unescape(&client_id, decoded + content_len + 1) : 0;
    if (!utf8_valid((const uint8_t *)decoded, content_len) ||
        !utf8_valid((const uint8_t *)decoded + content_len + 1, client_id_len))
        return 0;
    ev->root = json_stringn_nocheck(decoded, content_len + 1 + client_id_len);
    if (ev->root == NULL)
        return 0;
    const char *strings = json_string_value(ev->root);
    *rc = accept_message(ev, strings, content_len, has_client_id ? strings + content_len + 1 : NULL,
                         client_id_len);
    return 1;
}

/* ------------------------------------------------------- jansson path */

static int parse_message(client_event_t *ev) {
    json_t *content = json_object_get(ev->root, "content");
    json_t *client_id = json_object_get(ev->root, "client_id");
    if (!json_is_string(content))
        return fail(ev, "validation_failed", "content must be a string");
    if (client_id != NULL && !json_is_null(client_id) && !json_is_string(client_id))
        return fail(ev, "validation_failed", "client_id must be a string");
    return accept_message(ev, json_string_value(content), json_string_length(content),
                          json_string_value(client_id),
                          client_id != NULL ? json_string_length(client_id) : 0);
}

static int parse_read(client_event_t *ev) {
    json_t *message_id = json_object_get(ev->root, "message_id");
    if (!json_is_integer(message_id) || json_integer_value(message_id) <= 0)
        return fail(ev, "validation_failed", "message_id must be a positive integer");
    ev->message_id = json_integer_value(message_id);
    return 0;
}

static int parse_auth(client_event_t *ev) {
    json_t *token = json_object_get(ev->root, "token");
    if (!json_is_string(token))
        return fail(ev, "validation_failed", "token must be a string");
    ev->token = json_string_value(token);
    return 0;
}

int client_event_parse(const char *data, size_t len, client_event_t *ev) {
    memset(ev, 0, sizeof(*ev));
    int rc;
    if (parse_fast(data, len, ev, &rc))
        return rc;
    json_error_t error;
    ev->root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
    if (ev->root == NULL || !json_is_object(ev->root))
        return fail(ev, "invalid_json", "events must be JSON objects");
    const char *type = json_string_value(json_object_get(ev->root, "type"));
    if (type == NULL)
        return fail(ev, "validation_failed", "type must be a string");
    if (strcmp(type, "message") == 0)
        return parse_message(ev);
    if (strcmp(type, "typing") == 0) {
        ev->type = CLIENT_EVENT_TYPING;
        return 0;
    }
    if (strcmp(type, "read") == 0) {
        ev->type = CLIENT_EVENT_READ;
        return parse_read(ev);
    }
    if (strcmp(type, "ping") == 0) {
        ev->type = CLIENT_EVENT_PING;
        return 0;
    }
    if (strcmp(type, "auth") == 0) {
        ev->type = CLIENT_EVENT_AUTH;
        return parse_auth(ev);
    }
    return fail(ev, "unknown_type", "unknown event type");
}

void client_event_free(client_event_t *ev) {
    json_decref(ev->root);
    ev->root = NULL;
}
