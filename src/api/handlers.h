/* REST handlers (see api/routes.c for the table and docs/API.md for the
 * contract). Each answers its request exactly once, possibly later. */
#ifndef CHATD_API_HANDLERS_H
#define CHATD_API_HANDLERS_H

#include "net/http.h"

void handle_register(http_request_t *req);
void handle_login(http_request_t *req);
void handle_refresh(http_request_t *req);
void handle_me(http_request_t *req);

void handle_rooms_list(http_request_t *req);
void handle_room_create(http_request_t *req);
void handle_room_get(http_request_t *req);
void handle_room_join(http_request_t *req);
void handle_room_leave(http_request_t *req);
void handle_room_members(http_request_t *req);
void handle_room_add_member(http_request_t *req);
void handle_dm_open(http_request_t *req);

void handle_message_post(http_request_t *req);
void handle_messages_list(http_request_t *req);
void handle_room_read(http_request_t *req);

void handle_websocket(http_request_t *req);

void handle_health(http_request_t *req);
void handle_ready(http_request_t *req);
void handle_metrics(http_request_t *req);

#endif
