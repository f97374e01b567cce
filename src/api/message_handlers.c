/* POST /rooms/:room_id/messages (through the chat layer's one message path)
 * and GET /rooms/:room_id/messages (cursor pages). */
#include "api/call.h"
#include "api/handlers.h"
#include "chat/message_json.h"

#include <stdio.h>
#include <string.h>

static void message_posted(chat_post_t *post) {
    api_call_t *call = post->data;
    store_job_t *job = &post->job;
    if (job->out.status != STORE_OK) {
        api_respond_store_error(call->req, job->out.status, "room");
    } else {
        buf_t out = BUF_INIT;
        int rc = message_json_render(&out, &job->out.message, NULL);
        api_respond_rendered(call->req, job->out.duplicate ? 200 : 201, &out, rc);
    }
    api_call_free(call);
}

void handle_message_post(http_request_t *req) {
    api_call_t *call = api_call_with_body(req);
    if (call == NULL)
        return;
    json_t *body = call->body;
    const char *content, *client_id, *problem;
    size_t content_len, client_id_len;
    if (api_string_field(req, body, "content", true, &content, &content_len) != 0 ||
        api_string_field(req, body, "client_id", false, &client_id, &client_id_len) != 0)
        goto fail;
    if ((problem = chat_post_validate(content, content_len, client_id, client_id_len)) != NULL) {
        api_fail_validation(req, problem);
        goto fail;
    }
    call->post.done = message_posted;
    call->post.data = call;
    int rc = chat_post_submit(&call->app->chat, req->inbox, &call->post, req->params[0],
                              req->auth.user_id, content, content_len, client_id);
    if (rc == CHAT_POST_RATE_LIMITED) {
        api_respond_rate_limited(req, call->post.retry_after_s, "too many messages, slow down");
        goto fail;
    }
    if (rc != 0) {
        http_respond_error(req, 503, "unavailable", "the database is busy, try again");
        goto fail;
    }
    return;
fail:
    api_call_free(call);
}

static void page_read(store_job_t *job) {
    api_call_t *call = job->data;
    if (api_job_failed(call, "room"))
        return;
    buf_t out = BUF_INIT;
    int rc = buf_append_str(&out, "{\"messages\":[");
    for (size_t i = 0; i < job->out.message_count; i++) {
        if (i > 0)
            rc |= buf_append_str(&out, ",");
        rc |= message_json_render(&out, &job->out.messages[i], NULL);
    }
    rc |= buf_printf(&out, "],\"has_more\":%s}", job->out.has_more ? "true" : "false");
    api_respond_rendered(call->req, 200, &out, rc);
    api_call_free(call);
}

/* Reads an optional id query parameter into *value: 0 if absent, -1 for
 * "0" when zero_ok (after=0: from the very first message). Answers 400 and
 * returns -1 when it is present but not an id. */
static int query_id(http_request_t *req, const char *name, int zero_ok, int64_t *value) {
    char text[32];
    int len = http_request_query(req, name, text, sizeof(text));
    *value = 0;
    if (len == -1)
        return 0;
    if (zero_ok && strcmp(text, "0") == 0) {
        *value = -1;
        return 0;
    }
    if (len < 0 || parse_positive_id(text, value) != 0) {
        char message[80];
        snprintf(message, sizeof(message), "%s must be a positive integer id", name);
        api_fail_validation(req, message);
        return -1;
    }
    return 0;
}

void handle_messages_list(http_request_t *req) {
    int64_t before, after, limit;
    if (query_id(req, "before", 0, &before) != 0 || query_id(req, "after", 1, &after) != 0)
        return;
    char text[32];
    int len = http_request_query(req, "limit", text, sizeof(text));
    limit = PAGE_LIMIT_DEFAULT;
    if (len != -1 && (len < 0 || parse_positive_id(text, &limit) != 0 || limit > PAGE_LIMIT_MAX)) {
        api_fail_validation(req, "limit must be an integer from 1 to 200");
        return;
    }
    api_call_t *call = api_call_new(req);
    if (call == NULL)
        return;
    api_call_job(call, STORE_MESSAGES_PAGE, page_read);
    call->job.in.room_id = req->params[0];
    call->job.in.before_id = before;
    call->job.in.after_id = after > 0 ? after : 0;
    call->job.in.from_start = after < 0;
    call->job.in.limit = (int)limit;
    api_call_submit(call);
}

static void read_marked(store_job_t *job) {
    api_call_t *call = job->data;
    if (api_job_failed(call, "room or message"))
        return;
    /* A marker that moved is broadcast by the commit hook. */
    http_respond_empty(call->req, 204);
    api_call_free(call);
}

void handle_room_read(http_request_t *req) {
    api_call_t *call = api_call_with_body(req);
    if (call == NULL)
        return;
    int64_t message_id;
    if (api_id_field(req, call->body, "message_id", &message_id) != 0) {
        api_call_free(call);
        return;
    }
    api_call_job(call, STORE_READ_MARK, read_marked);
    call->job.in.room_id = req->params[0];
    call->job.in.message_id = message_id;
    api_call_submit(call);
}
