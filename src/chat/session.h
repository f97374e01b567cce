/* A chat session: one WebSocket subscribed to one room for one user.
 *
 * It joins the room's hub subscribers and the room's presence, replays
 * what the client missed (`since=`) before any live message, and turns the
 * client's events (message, typing, read, ping, auth) into store jobs and
 * hub events. All on the connection's loop thread. */
#ifndef CHATD_CHAT_SESSION_H
#define CHATD_CHAT_SESSION_H

#include "chat/chat.h"
#include "net/http.h"

#include <stdint.h>

typedef struct chat_session_s chat_session_t;

/* Upgrades req (already authenticated and allowed into room_id) to a
 * WebSocket chat session. since < 0: no replay. Answers req either way
 * (500/503 when the session cannot start). */
void chat_session_start(chat_t *chat, http_request_t *req, int64_t room_id, int64_t since,
                        int64_t token_expires_at);

#endif
