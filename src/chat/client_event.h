/* Client -> server WebSocket events (API.md, "WebSocket"): one text message
 * parsed and validated into an event, apart from what the session does with
 * it. Pure: no I/O, no clock, no state, so it can be tested and fuzzed
 * alone. What needs the session (the token's signature and owner, the rate
 * limit, the store) is checked there. */
#ifndef CHATD_CHAT_CLIENT_EVENT_H
#define CHATD_CHAT_CLIENT_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CLIENT_EVENT_MESSAGE,
    CLIENT_EVENT_TYPING,
    CLIENT_EVENT_READ,
    CLIENT_EVENT_PING,
    CLIENT_EVENT_AUTH,
} client_event_type_t;

typedef struct {
    client_event_type_t type;
    /* What the strings below point into: the parsed object, or for a
     * message event read without building one, a single string holding
     * content and client_id. Owned by the event (client_event_free); a store
     * job that keeps the strings takes a reference of its own. */
    json_t *root;
    /* MESSAGE: content and client_id as chat_post_validate accepts them;
     * client_id is NULL when absent or null. */
    const char *content;
    size_t content_len;
    const char *client_id;
    size_t client_id_len;
    /* READ: a positive message id. */
    int64_t message_id;
    /* AUTH: the new token, not verified yet. */
    const char *token;
    /* On failure: the code and message of the error event to send back
     * (static strings). */
    const char *error_code;
    const char *error_message;
} client_event_t;

/* Parses exactly len bytes of data (no NUL needed). Returns 0 with *ev
 * filled, to be released with client_event_free; or -1 with
 * ev->error_code and ev->error_message set and nothing to release. */
int client_event_parse(const char *data, size_t len, client_event_t *ev);

void client_event_free(client_event_t *ev);

#endif
