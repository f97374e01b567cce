#include "api/call.h"

#include "core/log.h"
#include "core/timeutil.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

api_call_t *api_call_new(http_request_t *req) {
    api_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        http_respond_error(req, 500, "internal", "internal error");
        return NULL;
    }
    call->req = req;
    call->app = req->app;
    return call;
}

api_call_t *api_call_with_body(http_request_t *req) {
    json_t *body;
    if (api_parse_object(req, &body) != 0)
        return NULL;
    api_call_t *call = api_call_new(req);
    if (call == NULL) {
        json_decref(body);
        return NULL;
    }
    call->body = body;
    return call;
}

void api_call_free(api_call_t *call) {
    if (call == NULL)
        return;
    store_job_cleanup(&call->job);
    store_job_cleanup(&call->post.job);
    if (call->password != NULL) {
        sodium_memzero(call->password, call->password_len);
        free(call->password);
    }
    json_decref(call->body);
    free(call);
}

void api_call_job(api_call_t *call, store_op_t op, store_done_cb done) {
    memset(&call->job, 0, sizeof(call->job));
    call->job.op = op;
    call->job.auth_user_id = call->req->auth.user_id;
    call->job.reply_to = call->req->inbox;
    call->job.done = done;
    call->job.data = call;
}

int api_call_submit(api_call_t *call) {
    if (store_submit(call->app->store, &call->job) != 0) {
        http_respond_error(call->req, 503, "unavailable", "the database is busy, try again");
        api_call_free(call);
        return -1;
    }
    return 0;
}

int api_parse_object(http_request_t *req, json_t **out) {
    json_error_t error;
    /* jansson rejects invalid UTF-8 and \u0000 in strings by default. */
    json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        char message[200];
        snprintf(message, sizeof(message), "invalid JSON body: %s", error.text);
        http_respond_error(req, 400, "invalid_json", message);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        http_respond_error(req, 400, "invalid_json", "the body must be a JSON object");
        return -1;
    }
    *out = root;
    return 0;
}

bool api_job_failed(api_call_t *call, const char *what) {
    if (call->job.out.status == STORE_OK)
        return false;
    api_respond_store_error(call->req, call->job.out.status, what);
    api_call_free(call);
    return true;
}

void api_respond_rendered(http_request_t *req, int status, buf_t *out, int render_rc) {
    if (render_rc == 0)
        http_respond_json(req, status, out->data, out->len);
    else
        http_respond_error(req, 500, "internal", "internal error");
    buf_free(out);
}

void api_fail_validation(http_request_t *req, const char *message) {
    http_respond_error(req, 400, "validation_failed", message);
}

int api_string_field(http_request_t *req, json_t *obj, const char *name, bool required,
                     const char **value, size_t *len) {
    char message[128];
    json_t *field = json_object_get(obj, name);
    if (field == NULL || (json_is_null(field) && !required)) {
        if (!required) {
            *value = NULL;
            *len = 0;
            return 0;
        }
        snprintf(message, sizeof(message), "%s is required", name);
        api_fail_validation(req, message);
        return -1;
    }
    if (!json_is_string(field)) {
        snprintf(message, sizeof(message), "%s must be a string", name);
        api_fail_validation(req, message);
        return -1;
    }
    *value = json_string_value(field);
    *len = json_string_length(field);
    return 0;
}

int api_id_field(http_request_t *req, json_t *obj, const char *name, int64_t *value) {
    char message[128];
    json_t *field = json_object_get(obj, name);
    if (field == NULL) {
        snprintf(message, sizeof(message), "%s is required", name);
        api_fail_validation(req, message);
        return -1;
    }
    if (!json_is_integer(field) || json_integer_value(field) <= 0) {
        snprintf(message, sizeof(message), "%s must be a positive integer", name);
        api_fail_validation(req, message);
        return -1;
    }
    *value = (int64_t)json_integer_value(field);
    return 0;
}

void api_respond_store_error(http_request_t *req, store_status_t status, const char *what) {
    char message[64];
    switch (status) {
    case STORE_NOT_FOUND:
        snprintf(message, sizeof(message), "%s not found", what);
        http_respond_error(req, 404, "not_found", message);
        break;
    case STORE_FORBIDDEN:
        http_respond_error(req, 403, "forbidden", "you are not a member of this room");
        break;
    case STORE_CONFLICT:
        http_respond_error(req, 409, "conflict", "email already registered");
        break;
    case STORE_NO_USER:
        http_respond_error(req, 401, "invalid_token", "the token's user no longer exists");
        break;
    case STORE_UNAVAILABLE:
        http_respond_error(req, 503, "unavailable", "the database is unavailable");
        break;
    default:
        log_error("store job failed", LOG_S("request_id", req->request_id),
                  LOG_I("status", status));
        http_respond_error(req, 500, "internal", "internal error");
        break;
    }
}

void api_respond_rate_limited(http_request_t *req, int64_t retry_after_s, const char *message) {
    char seconds[24];
    snprintf(seconds, sizeof(seconds), "%" PRId64, retry_after_s);
    /* Out of memory the header is missing, but the answer is still 429. */
    (void)http_add_header(req, "Retry-After", seconds);
    http_respond_error(req, 429, "rate_limited", message);
}

int api_limit_auth(http_request_t *req) {
    app_t *app = req->app;
    ratelimit_t *limit = app->chat.auth_limit;
    if (limit == NULL)
        return 0;
    /* The address as bytes; an unknown one ("") is one key of its own. */
    unsigned char key[16];
    size_t key_len = 0;
    if (inet_pton(AF_INET, req->remote_addr, key) == 1)
        key_len = 4;
    else if (inet_pton(AF_INET6, req->remote_addr, key) == 1)
        key_len = 16;
    uint64_t wait_ns = 0;
    if (ratelimit_take(limit, key, key_len, time_monotonic_ns(), &wait_ns))
        return 0;
    api_respond_rate_limited(req, ratelimit_retry_after_s(wait_ns),
                             "too many requests to /auth from this address, retry later");
    return -1;
}
