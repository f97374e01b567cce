/* JSON renderings of users, rooms and members for REST answers. Each
 * appends to out and returns 0, or -1 when out of memory. */
#ifndef CHATD_API_RENDER_H
#define CHATD_API_RENDER_H

#include "core/buf.h"
#include "store/store.h"

int render_user(buf_t *out, const store_user_t *user);
int render_room(buf_t *out, const store_room_t *room);
int render_member(buf_t *out, const store_member_t *member, int online);
/* {"token": token, "user": {...}} */
int render_token_answer(buf_t *out, const char *token, const store_user_t *user);

#endif
