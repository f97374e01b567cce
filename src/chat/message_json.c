#include "chat/message_json.h"

#include "core/timeutil.h"

#include <string.h>

/* Rendered once per committed message on the writer thread, so no printf:
 * numbers and timestamps are written by hand. */

#define APPEND_LITERAL(out, text) buf_append(out, text, sizeof(text) - 1)

/* Writes v in decimal; returns the length (at most 20). */
static size_t format_int(char *out, int64_t v) {
    char digits[20];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = digits[--n];
    return len;
}

static int append_int(buf_t *out, int64_t v) {
    char text[20];
    return buf_append(out, text, format_int(text, v));
}

/* The last second each thread formatted: messages come many to a second,
 * and gmtime_r takes a lock. */
static _Thread_local int64_t formatted_second = INT64_MIN;
static _Thread_local char formatted[RFC3339_MS_LEN];

/* Like time_format_rfc3339_ms ("2026-11-24T10:15:30.123Z"). */
static void format_time(int64_t ms, char out[RFC3339_MS_LEN]) {
    int64_t second = ms / 1000, millis = ms % 1000;
    if (millis < 0) {
        millis += 1000;
        second--;
    }
    if (second != formatted_second) {
        time_format_rfc3339_ms(second * 1000, formatted);
        formatted_second = second;
    }
    memcpy(out, formatted, RFC3339_MS_LEN);
    out[20] = (char)('0' + millis / 100);
    out[21] = (char)('0' + millis / 10 % 10);
    out[22] = (char)('0' + millis % 10);
}

/* ,"name":"<time>" or ,"name":null for 0. */
static int append_time_field(buf_t *out, const char *name, int64_t ms) {
    int rc = APPEND_LITERAL(out, ",\"");
    rc |= buf_append_str(out, name);
    if (ms == 0)
        return rc | APPEND_LITERAL(out, "\":null");
    char text[RFC3339_MS_LEN + 3] = "\":\"";
    format_time(ms, text + 3);
    text[RFC3339_MS_LEN + 2] = '"'; /* over the NUL */
    return rc | buf_append(out, text, RFC3339_MS_LEN + 3);
}

static int append_string(buf_t *out, const char *s) {
    return s != NULL ? buf_append_json_string(out, s, strlen(s)) : APPEND_LITERAL(out, "\"\"");
}

int message_json_render(buf_t *out, const store_message_t *msg, const char *type) {
    int rc = APPEND_LITERAL(out, "{");
    if (type != NULL) {
        rc |= APPEND_LITERAL(out, "\"type\":\"");
        rc |= buf_append_str(out, type);
        rc |= APPEND_LITERAL(out, "\",");
    }
    rc |= APPEND_LITERAL(out, "\"id\":");
    rc |= append_int(out, msg->id);
    rc |= APPEND_LITERAL(out, ",\"sender_id\":");
    rc |= append_int(out, msg->sender_id);
    rc |= APPEND_LITERAL(out, ",\"room_id\":");
    rc |= append_int(out, msg->room_id);
    rc |= APPEND_LITERAL(out, ",\"content\":");
    rc |= buf_append_json_string(out, msg->content, msg->content_len);
    rc |= append_time_field(out, "created_at", msg->created_at_ms);
    rc |= APPEND_LITERAL(out, ",\"sender\":");
    rc |= append_string(out, msg->sender_email);
    rc |= APPEND_LITERAL(out, ",\"username\":");
    rc |= append_string(out, msg->sender_username);
    if (msg->client_id != NULL) {
        rc |= APPEND_LITERAL(out, ",\"client_id\":");
        rc |= append_string(out, msg->client_id);
    }
    rc |= append_time_field(out, "edited_at", msg->edited_at_ms);
    if (msg->deleted)
        rc |= APPEND_LITERAL(out, ",\"deleted\":true");
    rc |= APPEND_LITERAL(out, "}");
    return rc == 0 ? 0 : -1;
}
