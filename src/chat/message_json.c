#include "chat/message_json.h"

#include "core/timeutil.h"

#include <inttypes.h>
#include <string.h>

static int append_time_field(buf_t *out, const char *name, int64_t ms) {
    if (ms == 0)
        return buf_printf(out, ",\"%s\":null", name);
    char ts[RFC3339_MS_LEN];
    time_format_rfc3339_ms(ms, ts);
    return buf_printf(out, ",\"%s\":\"%s\"", name, ts);
}

int message_json_render(buf_t *out, const store_message_t *msg, const char *type) {
    int rc = 0;
    rc |= buf_append_str(out, "{");
    if (type != NULL)
        rc |= buf_printf(out, "\"type\":\"%s\",", type);
    rc |= buf_printf(out, "\"id\":%" PRId64 ",\"sender_id\":%" PRId64 ",\"room_id\":%" PRId64,
                     msg->id, msg->sender_id, msg->room_id);
    rc |= buf_append_str(out, ",\"content\":");
    rc |= buf_append_json_string(out, msg->content, msg->content_len);
    rc |= append_time_field(out, "created_at", msg->created_at_ms);
    rc |= buf_append_str(out, ",\"sender\":");
    rc |= buf_append_json_string(out, msg->sender_email ? msg->sender_email : "",
                                 msg->sender_email ? strlen(msg->sender_email) : 0);
    rc |= buf_append_str(out, ",\"username\":");
    rc |= buf_append_json_string(out, msg->sender_username ? msg->sender_username : "",
                                 msg->sender_username ? strlen(msg->sender_username) : 0);
    if (msg->client_id != NULL) {
        rc |= buf_append_str(out, ",\"client_id\":");
        rc |= buf_append_json_string(out, msg->client_id, strlen(msg->client_id));
    }
    rc |= append_time_field(out, "edited_at", msg->edited_at_ms);
    if (msg->deleted)
        rc |= buf_append_str(out, ",\"deleted\":true");
    rc |= buf_append_str(out, "}");
    return rc == 0 ? 0 : -1;
}
