/* The JSON form of a chat message, the same for REST answers and WebSocket
 * events (which add "type"). Rendered by hand: it is on the fan-out path. */
#ifndef CHATD_CHAT_MESSAGE_JSON_H
#define CHATD_CHAT_MESSAGE_JSON_H

#include "core/buf.h"
#include "store/store.h"

/* Appends the message object; type is the event type ("message") or NULL
 * for the REST shape. Returns 0 or -1 (out of memory). */
int message_json_render(buf_t *out, const store_message_t *msg, const char *type);

#endif
