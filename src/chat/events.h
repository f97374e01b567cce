/* Server -> client WebSocket events (API.md, "WebSocket"), rendered to JSON.
 * Every function returns a new frame (one reference) ready to queue, or NULL
 * when memory runs out. */
#ifndef CHATD_CHAT_EVENTS_H
#define CHATD_CHAT_EVENTS_H

#include "core/buf.h"
#include "core/shared_buf.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

shared_buf_t *event_message(const store_message_t *msg);
/* The same, rendered in scratch (reset first, kept for the next call), so a
 * caller that renders many messages allocates only the frames. */
shared_buf_t *event_message_in(buf_t *scratch, const store_message_t *msg);
shared_buf_t *event_typing(int64_t room_id, int64_t user_id, const char *username);
shared_buf_t *event_presence(int64_t room_id, int64_t user_id, const char *username, bool online);
shared_buf_t *event_read(int64_t room_id, int64_t user_id, int64_t message_id);
shared_buf_t *event_recovery(bool recovered, int64_t count_or_since);
shared_buf_t *event_error(const char *code, const char *message);
shared_buf_t *event_pong(void);

#endif
