/* Rooms, membership and direct messages (API.md "Rooms"). The access rules
 * live in the store, next to the data they read. */
#include "api/call.h"
#include "api/handlers.h"
#include "api/render.h"

/* Answers 200/201 with the room of a finished job, or the store's error. */
static void respond_room(api_call_t *call, int status, const char *what) {
    store_job_t *job = &call->job;
    if (job->out.status != STORE_OK) {
        api_respond_store_error(call->req, job->out.status, what);
        return;
    }
    buf_t out = BUF_INIT;
    api_respond_rendered(call->req, status, &out, render_room(&out, &job->out.room));
}

static void room_done_200(store_job_t *job) {
    api_call_t *call = job->data;
    respond_room(call, 200, "room");
    api_call_free(call);
}

static void room_done_201(store_job_t *job) {
    api_call_t *call = job->data;
    respond_room(call, 201, "room");
    api_call_free(call);
}

static void dm_done(store_job_t *job) {
    api_call_t *call = job->data;
    respond_room(call, job->out.created ? 201 : 200, "user");
    api_call_free(call);
}

/* Submits op for the room in the path, answering with the job's room. */
static void submit_room_op(http_request_t *req, store_op_t op, store_done_cb done) {
    api_call_t *call = api_call_new(req);
    if (call == NULL)
        return;
    api_call_job(call, op, done);
    call->job.in.room_id = req->params[0];
    api_call_submit(call);
}

static void rooms_listed(store_job_t *job) {
    api_call_t *call = job->data;
    if (api_job_failed(call, "room"))
        return;
    buf_t out = BUF_INIT;
    int rc = buf_append_str(&out, "[");
    for (size_t i = 0; i < job->out.room_count; i++) {
        if (i > 0)
            rc |= buf_append_str(&out, ",");
        rc |= render_room(&out, &job->out.rooms[i]);
    }
    rc |= buf_append_str(&out, "]");
    api_respond_rendered(call->req, 200, &out, rc);
    api_call_free(call);
}

void handle_rooms_list(http_request_t *req) {
    api_call_t *call = api_call_new(req);
    if (call == NULL)
        return;
    api_call_job(call, STORE_ROOMS_LIST, rooms_listed);
    api_call_submit(call);
}

void handle_room_create(http_request_t *req) {
    api_call_t *call = api_call_with_body(req);
    if (call == NULL)
        return;
    json_t *body = call->body;
    const char *name, *problem;
    size_t name_len;
    if (api_string_field(req, body, "name", true, &name, &name_len) != 0)
        goto fail;
    if ((problem = validate_room_name(name, name_len)) != NULL) {
        api_fail_validation(req, problem);
        goto fail;
    }
    json_t *is_private = json_object_get(body, "is_private");
    if (is_private != NULL && !json_is_boolean(is_private) && !json_is_null(is_private)) {
        api_fail_validation(req, "is_private must be a boolean");
        goto fail;
    }
    api_call_job(call, STORE_ROOM_CREATE, room_done_201);
    call->job.in.name = name;
    call->job.in.is_private = json_is_true(is_private);
    api_call_submit(call);
    return;
fail:
    api_call_free(call);
}

void handle_room_get(http_request_t *req) {
    submit_room_op(req, STORE_ROOM_GET, room_done_200);
}

void handle_room_join(http_request_t *req) {
    submit_room_op(req, STORE_ROOM_JOIN, room_done_200);
}

static void room_left(store_job_t *job) {
    api_call_t *call = job->data;
    if (job->out.status == STORE_OK)
        http_respond_empty(call->req, 204);
    else
        api_respond_store_error(call->req, job->out.status, "room");
    api_call_free(call);
}

void handle_room_leave(http_request_t *req) {
    submit_room_op(req, STORE_ROOM_LEAVE, room_left);
}

static void members_listed(store_job_t *job) {
    api_call_t *call = job->data;
    if (api_job_failed(call, "room"))
        return;
    buf_t out = BUF_INIT;
    int rc = buf_append_str(&out, "[");
    for (size_t i = 0; i < job->out.member_count; i++) {
        if (i > 0)
            rc |= buf_append_str(&out, ",");
        const store_member_t *member = &job->out.members[i];
        bool online = hub_is_online(call->app->chat.hub, job->in.room_id, member->id);
        rc |= render_member(&out, member, online);
    }
    rc |= buf_append_str(&out, "]");
    api_respond_rendered(call->req, 200, &out, rc);
    api_call_free(call);
}

void handle_room_members(http_request_t *req) {
    submit_room_op(req, STORE_ROOM_MEMBERS, members_listed);
}

/* POST /rooms/:id/members and POST /dms both name another user. */
static void submit_user_op(http_request_t *req, store_op_t op, store_done_cb done) {
    api_call_t *call = api_call_with_body(req);
    if (call == NULL)
        return;
    json_t *body = call->body;
    int64_t user_id;
    if (api_id_field(req, body, "user_id", &user_id) != 0) {
        api_call_free(call);
        return;
    }
    if (op == STORE_DM_OPEN && user_id == req->auth.user_id) {
        api_fail_validation(req, "user_id must be another user");
        api_call_free(call);
        return;
    }
    api_call_job(call, op, done);
    call->job.in.user_id = user_id;
    call->job.in.room_id = req->param_count > 0 ? req->params[0] : 0;
    api_call_submit(call);
}

static void member_added(store_job_t *job) {
    api_call_t *call = job->data;
    respond_room(call, 200, "room or user");
    api_call_free(call);
}

void handle_room_add_member(http_request_t *req) {
    submit_user_op(req, STORE_ROOM_ADD_MEMBER, member_added);
}

void handle_dm_open(http_request_t *req) {
    submit_user_op(req, STORE_DM_OPEN, dm_done);
}
