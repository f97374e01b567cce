#include "chat/events.h"

#include "chat/message_json.h"
#include "core/buf.h"
#include "net/ws.h"

#include <inttypes.h>
#include <string.h>

/* Frames rendered JSON; frees json. */
static shared_buf_t *frame_of(buf_t *json, int render_rc) {
    shared_buf_t *frame = render_rc == 0 ? ws_frame_text_buf(json->data, json->len) : NULL;
    buf_free(json);
    return frame;
}

shared_buf_t *event_message(const store_message_t *msg) {
    buf_t json = BUF_INIT;
    return frame_of(&json, message_json_render(&json, msg, "message"));
}

shared_buf_t *event_message_in(buf_t *scratch, const store_message_t *msg) {
    buf_reset(scratch);
    if (message_json_render(scratch, msg, "message") != 0)
        return NULL;
    return ws_frame_text_buf(scratch->data, scratch->len);
}

shared_buf_t *event_typing(int64_t room_id, int64_t user_id, const char *username) {
    buf_t json = BUF_INIT;
    int rc = buf_printf(
        &json, "{\"type\":\"typing\",\"room_id\":%" PRId64 ",\"user_id\":%" PRId64 ",\"username\":",
        room_id, user_id);
    rc |= buf_append_json_string(&json, username, strlen(username));
    rc |= buf_append_str(&json, "}");
    return frame_of(&json, rc);
}

shared_buf_t *event_presence(int64_t room_id, int64_t user_id, const char *username, bool online) {
    buf_t json = BUF_INIT;
    int rc = buf_printf(&json,
                        "{\"type\":\"presence\",\"room_id\":%" PRId64 ",\"user_id\":%" PRId64
                        ",\"username\":",
                        room_id, user_id);
    rc |= buf_append_json_string(&json, username, strlen(username));
    rc |= buf_printf(&json, ",\"status\":\"%s\"}", online ? "online" : "offline");
    return frame_of(&json, rc);
}

shared_buf_t *event_read(int64_t room_id, int64_t user_id, int64_t message_id) {
    buf_t json = BUF_INIT;
    int rc = buf_printf(&json,
                        "{\"type\":\"read\",\"room_id\":%" PRId64 ",\"user_id\":%" PRId64
                        ",\"message_id\":%" PRId64 "}",
                        room_id, user_id, message_id);
    return frame_of(&json, rc);
}

shared_buf_t *event_recovery(bool recovered, int64_t count_or_since) {
    buf_t json = BUF_INIT;
    int rc =
        recovered
            ? buf_printf(&json, "{\"type\":\"recovery\",\"recovered\":true,\"count\":%" PRId64 "}",
                         count_or_since)
            : buf_printf(&json, "{\"type\":\"recovery\",\"recovered\":false,\"since\":%" PRId64 "}",
                         count_or_since);
    return frame_of(&json, rc);
}

shared_buf_t *event_error(const char *code, const char *message) {
    buf_t json = BUF_INIT;
    int rc = buf_printf(&json, "{\"type\":\"error\",\"code\":\"%s\",\"error\":", code);
    rc |= buf_append_json_string(&json, message, strlen(message));
    rc |= buf_append_str(&json, "}");
    return frame_of(&json, rc);
}

shared_buf_t *event_pong(void) {
    static const char pong[] = "{\"type\":\"pong\"}";
    return ws_frame_text_buf(pong, sizeof(pong) - 1);
}
