/* libFuzzer target: client WebSocket events (src/chat/client_event.c).
 *
 * The input is one text message as the session receives it. Checks:
 *  - client_event_parse reads exactly len bytes (the input is copied into
 *    a buffer of that size, with no NUL after it) and returns 0 or -1.
 *  - On -1: nothing is left to release, and the error is one the API
 *    names: invalid_json exactly when the bytes are no JSON object (read
 *    again here with jansson), validation_failed or unknown_type
 *    otherwise, always with a message.
 *  - On 0: the event's fields are the message's own (the same strings of
 *    the same object) and valid as the REST path checks them: content and
 *    client_id pass chat_post_validate (no NUL, valid UTF-8), a read
 *    marker is a positive integer, a token a string. A message event read
 *    without a jansson tree (its root is one string holding the fields)
 *    must say what jansson reads from the same bytes, byte for byte.
 *  - The same bytes give the same answer twice. */
#include "chat/client_event.h"

#include "chat/post.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* post.c's submit path is never reached from parsing. */
int store_submit(store_t *store, store_job_t *job) {
    (void)store, (void)job;
    abort();
}

static void fail(const char *what) {
    fprintf(stderr, "client_event_fuzz: %s\n", what);
    abort();
}

static const char *const type_names[] = {"message", "typing", "read", "ping", "auth"};

static int same_string(const char *s, size_t len, const json_t *value) {
    return json_is_string(value) && json_string_length(value) == len &&
           memcmp(json_string_value(value), s, len) == 0;
}

static int inside(const char *s, size_t len, const json_t *holder) {
    const char *base = json_string_value(holder);
    size_t size = json_string_length(holder);
    return s >= base && s + len <= base + size;
}

/* object: what jansson reads from the message's bytes. */
static void check_message(const client_event_t *ev, const json_t *object) {
    json_t *content = json_object_get(object, "content");
    json_t *client_id = json_object_get(object, "client_id");
    int fast = json_is_string(ev->root);
    if (ev->content == NULL || !same_string(ev->content, ev->content_len, content) ||
        (fast ? !inside(ev->content, ev->content_len, ev->root)
              : ev->content != json_string_value(content)))
        fail("content is not the message's");
    if (client_id == NULL || json_is_null(client_id)) {
        if (ev->client_id != NULL || ev->client_id_len != 0)
            fail("a client_id out of nowhere");
    } else if (ev->client_id == NULL || !same_string(ev->client_id, ev->client_id_len, client_id) ||
               (fast ? !inside(ev->client_id, ev->client_id_len, ev->root)
                     : ev->client_id != json_string_value(client_id))) {
        fail("client_id is not the message's");
    }
    if (memchr(ev->content, '\0', ev->content_len) != NULL ||
        (ev->client_id != NULL && memchr(ev->client_id, '\0', ev->client_id_len) != NULL))
        fail("a NUL inside content or client_id");
    if (chat_post_validate(ev->content, ev->content_len, ev->client_id, ev->client_id_len) != NULL)
        fail("a message the REST path would refuse");
}

static void check_fields(const client_event_t *ev, const json_t *object);

static void check_event(const client_event_t *ev, const char *data, size_t len) {
    json_t *object = ev->root;
    if (json_is_string(ev->root)) {
        /* Read without a tree: only a message event may be. */
        if (ev->type != CLIENT_EVENT_MESSAGE)
            fail("an event other than a message without its JSON object");
        object = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(object))
            fail("a message event from bytes jansson does not read as an object");
    } else if (ev->root == NULL || !json_is_object(ev->root)) {
        fail("an event without its JSON object");
    }
    check_fields(ev, object);
    if (object != ev->root)
        json_decref(object);
}

static void check_fields(const client_event_t *ev, const json_t *object) {
    if (ev->error_code != NULL || ev->error_message != NULL)
        fail("an event with an error");
    if ((unsigned)ev->type >= sizeof(type_names) / sizeof(type_names[0]))
        fail("an event of no known type");
    const char *type = json_string_value(json_object_get(object, "type"));
    if (type == NULL || strcmp(type, type_names[ev->type]) != 0)
        fail("the event's type is not the message's");
    json_t *message_id = json_object_get(object, "message_id");
    json_t *token = json_object_get(object, "token");
    switch (ev->type) {
    case CLIENT_EVENT_MESSAGE:
        check_message(ev, object);
        break;
    case CLIENT_EVENT_READ:
        if (ev->message_id <= 0 || !json_is_integer(message_id) ||
            ev->message_id != json_integer_value(message_id))
            fail("message_id is not the message's positive integer");
        break;
    case CLIENT_EVENT_AUTH:
        if (ev->token == NULL || ev->token != json_string_value(token))
            fail("token is not the message's string");
        break;
    default:
        if (ev->content != NULL || ev->client_id != NULL || ev->token != NULL ||
            ev->message_id != 0)
            fail("fields set on an event that has none");
        break;
    }
}

static void check_error(const client_event_t *ev, const char *data, size_t len) {
    if (ev->root != NULL)
        fail("a failed parse left its JSON behind");
    if (ev->error_code == NULL || ev->error_message == NULL || ev->error_message[0] == '\0')
        fail("an error without code or message");
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    int is_object = json_is_object(root);
    const char *type = json_string_value(json_object_get(root, "type"));
    int known = 0;
    for (size_t i = 0; type != NULL && i < sizeof(type_names) / sizeof(type_names[0]); i++)
        known |= strcmp(type, type_names[i]) == 0;
    json_decref(root);
    if ((strcmp(ev->error_code, "invalid_json") == 0) != !is_object)
        fail("invalid_json for a JSON object, or another code for something else");
    if (strcmp(ev->error_code, "unknown_type") == 0 && (type == NULL || known))
        fail("unknown_type for a known type");
    if (strcmp(ev->error_code, "invalid_json") != 0 &&
        strcmp(ev->error_code, "unknown_type") != 0 &&
        strcmp(ev->error_code, "validation_failed") != 0)
        fail("an error code the API does not name");
    if (is_object && type != NULL && !known && strcmp(ev->error_code, "unknown_type") != 0)
        fail("an unknown type not reported as such");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    client_event_t ev, again;
    int rc = client_event_parse(copy, size, &ev);
    if (rc == 0)
        check_event(&ev, copy, size);
    else if (rc == -1)
        check_error(&ev, copy, size);
    else
        fail("client_event_parse returned neither 0 nor -1");
    int rc2 = client_event_parse(copy, size, &again);
    if (rc2 != rc || again.type != ev.type || again.error_code != ev.error_code ||
        again.error_message != ev.error_message || again.content_len != ev.content_len ||
        again.message_id != ev.message_id)
        fail("the same message parsed twice gave two answers");
    if (rc == 0) {
        client_event_free(&ev);
        client_event_free(&again);
    }
    free(copy);
    return 0;
}
