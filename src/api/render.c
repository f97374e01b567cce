#include "api/render.h"

#include "core/timeutil.h"

#include <inttypes.h>
#include <string.h>

static int append_string_field(buf_t *out, const char *name, const char *value) {
    if (buf_printf(out, "\"%s\":", name) != 0)
        return -1;
    if (value == NULL)
        return buf_append_str(out, "null");
    return buf_append_json_string(out, value, strlen(value));
}

static int append_time(buf_t *out, const char *name, int64_t ms) {
    char ts[RFC3339_MS_LEN];
    time_format_rfc3339_ms(ms, ts);
    return buf_printf(out, "\"%s\":\"%s\"", name, ts);
}

int render_user(buf_t *out, const store_user_t *user) {
    int rc = buf_printf(out, "{\"id\":%" PRId64 ",", user->id);
    rc |= append_string_field(out, "email", user->email);
    rc |= buf_append_str(out, ",");
    rc |= append_string_field(out, "username", user->username);
    rc |= buf_append_str(out, ",");
    rc |= append_time(out, "created_at", user->created_at_ms);
    rc |= buf_append_str(out, "}");
    return rc == 0 ? 0 : -1;
}

int render_room(buf_t *out, const store_room_t *room) {
    int rc = buf_printf(out, "{\"id\":%" PRId64 ",", room->id);
    rc |= append_string_field(out, "name", room->name);
    rc |= buf_append_str(out, ",");
    rc |= append_time(out, "created_at", room->created_at_ms);
    rc |= buf_printf(out, ",\"is_private\":%s,\"member_count\":%" PRId64,
                     room->is_private ? "true" : "false", room->member_count);
    rc |= buf_printf(out,
                     ",\"unread_count\":%" PRId64 ",\"last_read_message_id\":", room->unread_count);
    rc |= room->last_read_message_id > 0 ? buf_printf(out, "%" PRId64, room->last_read_message_id)
                                         : buf_append_str(out, "null");
    rc |= buf_append_str(out, ",\"created_by\":");
    rc |= room->created_by > 0 ? buf_printf(out, "%" PRId64, room->created_by)
                               : buf_append_str(out, "null");
    rc |= buf_append_str(out, "}");
    return rc == 0 ? 0 : -1;
}

int render_member(buf_t *out, const store_member_t *member, int online) {
    int rc = buf_printf(out, "{\"id\":%" PRId64 ",", member->id);
    rc |= append_string_field(out, "username", member->username);
    rc |= buf_append_str(out, ",");
    rc |= append_time(out, "joined_at", member->joined_at_ms);
    rc |= buf_printf(out, ",\"online\":%s}", online ? "true" : "false");
    return rc == 0 ? 0 : -1;
}

int render_token_answer(buf_t *out, const char *token, const store_user_t *user) {
    int rc = buf_append_str(out, "{");
    rc |= append_string_field(out, "token", token);
    rc |= buf_append_str(out, ",\"user\":");
    rc |= render_user(out, user);
    rc |= buf_append_str(out, "}");
    return rc == 0 ? 0 : -1;
}
