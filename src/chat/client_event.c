#include "chat/client_event.h"

#include "chat/post.h"

#include <string.h>

static int fail(client_event_t *ev, const char *code, const char *message) {
    json_decref(ev->root);
    memset(ev, 0, sizeof(*ev));
    ev->error_code = code;
    ev->error_message = message;
    return -1;
}

static int parse_message(client_event_t *ev) {
    json_t *content = json_object_get(ev->root, "content");
    json_t *client_id = json_object_get(ev->root, "client_id");
    if (!json_is_string(content))
        return fail(ev, "validation_failed", "content must be a string");
    if (client_id != NULL && !json_is_null(client_id) && !json_is_string(client_id))
        return fail(ev, "validation_failed", "client_id must be a string");
    ev->content = json_string_value(content);
    ev->content_len = json_string_length(content);
    ev->client_id = json_string_value(client_id);
    ev->client_id_len = ev->client_id != NULL ? json_string_length(client_id) : 0;
    const char *problem =
        chat_post_validate(ev->content, ev->content_len, ev->client_id, ev->client_id_len);
    return problem != NULL ? fail(ev, "validation_failed", problem) : 0;
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
    json_error_t error;
    ev->root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
    if (ev->root == NULL || !json_is_object(ev->root))
        return fail(ev, "invalid_json", "events must be JSON objects");
    const char *type = json_string_value(json_object_get(ev->root, "type"));
    if (type == NULL)
        return fail(ev, "validation_failed", "type must be a string");
    if (strcmp(type, "message") == 0) {
        ev->type = CLIENT_EVENT_MESSAGE;
        return parse_message(ev);
    }
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
